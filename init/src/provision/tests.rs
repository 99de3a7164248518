use super::*;
use crate::sys::Recorder;

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICNyYsl3lBRT8Vxs6biOdm8P4tPINHyUDYy+8eS2UhMq test@host";
const PRIVKEY: &str = "5J2Hf3T8LpjKEkY46qhPLFF8DjQfCSBh6aWRfeDwQSMJKomvHFa";

struct Node {
    _t: tempfile::TempDir,
    paths: Paths,
}

/// A node in a temporary directory: a FAT "disk" labelled `label` as vdb (the recording
/// `Sys` mounts nothing, so a volume's files are put where it would be mounted).
fn node(label: &str) -> Node {
    let t = tempfile::tempdir().expect("test setup");
    let r = t.path();
    let paths = Paths {
        sys_block: r.join("sys/block"),
        dev: r.join("dev"),
        sys_net: r.join("sys/net"),
        mnt: r.join("mnt"),
        esp: Some(r.join("dev/vda1").display().to_string()),
        state: r.join("data/cairn/provision/state.json"),
        report: r.join("run/provision.json"),
        hostname: r.join("data/etc/hostname"),
        machine_id: r.join("data/etc/machine-id"),
        authorized_keys: r.join("data/cairn/ssh/authorized_keys/operator"),
        host_keys: r.join("data/cairn/ssh"),
        network: r.join("data/cairn/network.toml"),
        flux_conf: r.join("data/flux/fluxd/flux.conf"),
    };
    std::fs::create_dir_all(paths.sys_block.join("vdb")).expect("test setup");
    std::fs::create_dir_all(&paths.dev).expect("test setup");
    std::fs::create_dir_all(paths.mnt.join("esp")).expect("test setup");
    set_volume(&paths, label, true);
    Node { _t: t, paths }
}

fn set_volume(paths: &Paths, label: &str, fat: bool) {
    let mut head = vec![0u8; 36 * 1024];
    if fat {
        head[510..512].copy_from_slice(&[0x55, 0xaa]);
        head[54..59].copy_from_slice(b"FAT12");
        head[43..43 + label.len()].copy_from_slice(label.as_bytes());
    } else {
        head[1080..1082].copy_from_slice(&[0x53, 0xef]);
        head[1144..1144 + label.len()].copy_from_slice(label.as_bytes());
    }
    std::fs::write(paths.dev.join("vdb"), head).expect("test setup");
}

fn seed(n: &Node, instance: &str, user_data: &str) {
    let d = n.paths.mnt.join("cidata");
    std::fs::create_dir_all(&d).expect("test setup");
    std::fs::write(d.join("meta-data"), format!("instance-id: {instance}\nlocal-hostname: from-meta\n")).expect("test setup");
    std::fs::write(d.join("user-data"), user_data).expect("test setup");
}

fn user_data(host: &str) -> String {
    format!("hostname = \"{host}\"\nssh_authorized_keys = [\"{KEY}\"]\n[flux]\nzelnodeprivkey = \"{PRIVKEY}\"\nzelnodeoutpoint = \"{}\"\nzelnodeindex = 0\n", "ab".repeat(32))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[test]
fn a_nocloud_seed_is_applied_once_per_instance_and_a_new_instance_renews_the_identity() {
    use std::os::unix::fs::PermissionsExt;
    let n = node("cidata");
    seed(&n, "iid-1", &user_data("node-1"));
    let r = run(&Recorder::default(), &n.paths);
    assert_eq!(r.sources.len(), 1, "{r:?}");
    assert_eq!((r.sources[0].kind, r.sources[0].outcome), (Kind::Nocloud, Outcome::Applied), "{r:?}");
    assert_eq!(read(&n.paths.hostname), "node-1\n");
    assert!(read(&n.paths.authorized_keys).contains(KEY));
    let conf = read(&n.paths.flux_conf);
    assert!(conf.contains(&format!("zelnodeprivkey={PRIVKEY}")) && conf.contains("rpcpassword="), "{conf}");
    assert_eq!(std::fs::metadata(&n.paths.flux_conf).expect("test setup").permissions().mode() & 0o777, 0o600);
    assert!(!r.new_instance);

    // The same seed again: nothing is rewritten.
    std::fs::write(&n.paths.machine_id, "0123\n").expect("test setup");
    std::fs::write(n.paths.host_keys.join("ssh_host_ed25519_key"), "k").expect("test setup");
    let again = run(&Recorder::default(), &n.paths);
    assert_eq!(again.sources[0].outcome, Outcome::Unchanged);
    assert!(again.applied.is_empty(), "{again:?}");
    assert_eq!(read(&n.paths.flux_conf), conf, "same instance: same RPC credentials");

    // A clone: another instance id, the same user-data.
    seed(&n, "iid-2", &user_data("node-1"));
    let clone = run(&Recorder::default(), &n.paths);
    assert!(clone.new_instance, "{clone:?}");
    assert!(!n.paths.machine_id.exists() && !n.paths.host_keys.join("ssh_host_ed25519_key").exists());
    let renewed = read(&n.paths.flux_conf);
    let pw = |c: &str| c.lines().find(|l| l.starts_with("rpcpassword=")).map(str::to_owned);
    assert_ne!(pw(&renewed), pw(&conf), "a new instance gets new RPC credentials");
    assert!(renewed.contains(PRIVKEY));
}

#[test]
fn a_broken_source_is_refused_whole_and_the_last_good_configuration_stays() {
    let n = node("cidata");
    seed(&n, "iid-1", &user_data("good"));
    run(&Recorder::default(), &n.paths);
    let keys = read(&n.paths.authorized_keys);
    for (bad, says) in [
        ("#cloud-config\nhostname: [oops\n".to_owned(), "not valid YAML"),
        (user_data("bad host"), "hostname"),
        (format!("hostname = \"other\"\nssh_authorized_keys = [\"{}\"]\n", &KEY[..40]), "ssh_authorized_keys[0]"),
        ("hostname = \"other\"\n[[network.interface]]\nname = \"eth0\"\naddresses = [\"10.0.0.300/24\"]\n".to_owned(), "network"),
        ("hostname = \"other\"\ncolour = \"blue\"\n".to_owned(), "colour"),
    ] {
        seed(&n, "iid-1", &bad);
        let r = run(&Recorder::default(), &n.paths);
        assert_eq!(r.sources[0].outcome, Outcome::Refused, "{bad}: {r:?}");
        let e = r.sources[0].error.clone().unwrap_or_default();
        assert!(e.contains(says), "{bad}: {e}");
        assert!(r.has_errors() && r.lines().iter().any(|l| l.starts_with("ERROR: NoCloud") && l.contains("last good")), "{:?}", r.lines());
        assert_eq!(read(&n.paths.hostname), "good\n", "{bad}");
        assert_eq!(read(&n.paths.authorized_keys), keys);
    }
    // Fixed again: applied again (the refused ones were never recorded as applied).
    seed(&n, "iid-1", &user_data("fixed"));
    assert_eq!(run(&Recorder::default(), &n.paths).sources[0].outcome, Outcome::Applied);
    assert_eq!(read(&n.paths.hostname), "fixed\n");
}

#[test]
fn a_cidata_volume_that_is_not_fat_or_iso_is_not_mounted() {
    let n = node("cidata");
    set_volume(&n.paths, "cidata", false);
    let rec = Recorder::default();
    let r = run(&rec, &n.paths);
    assert_eq!(r.sources[0].outcome, Outcome::Refused);
    assert!(r.sources[0].error.as_deref().is_some_and(|e| e.contains("ext2/3/4, not FAT or ISO 9660")), "{r:?}");
    assert!(!rec.calls().iter().any(|c| c.contains("vdb")), "{:?}", rec.calls());
}

#[test]
fn the_esp_file_goes_over_the_cloud_and_loses_its_flux_table_once_imported() {
    let n = node("config-2");
    let d = n.paths.mnt.join("config-2/openstack/latest");
    std::fs::create_dir_all(&d).expect("test setup");
    std::fs::write(d.join("meta_data.json"), format!("{{\"uuid\": \"u-1\", \"hostname\": \"cloud-name\", \"public_keys\": {{\"k\": \"{KEY}\"}}}}")).expect("test setup");
    std::fs::write(d.join("user_data"), "#cloud-config\nhostname: cloud-ud\npackages: [htop]\n").expect("test setup");
    let esp = format!("# edited on my laptop\nhostname = \"esp-name\"\n{}", &user_data("x")[user_data("x").find("[flux]").expect("test setup")..]);
    std::fs::write(n.paths.mnt.join("esp/cairn.toml"), &esp).expect("test setup");
    let r = run(&Recorder::default(), &n.paths);
    assert_eq!(r.sources.iter().map(|s| (s.kind, s.outcome)).collect::<Vec<_>>(), [(Kind::ConfigDrive, Outcome::Applied), (Kind::Esp, Outcome::Applied)], "{r:?}");
    assert_eq!(r.sources[0].ignored, ["packages"]);
    assert_eq!(read(&n.paths.hostname), "esp-name\n");
    assert!(read(&n.paths.authorized_keys).contains(KEY), "the cloud's keys stay where the ESP gives none");
    assert!(read(&n.paths.flux_conf).contains(PRIVKEY));
    let wiped = read(&n.paths.mnt.join("esp-write/cairn.toml"));
    assert!(!wiped.contains(PRIVKEY) && wiped.contains("# edited on my laptop") && wiped.contains("esp-name"), "{wiped}");
    assert_eq!(r.instance_id.as_deref(), Some("u-1"));
}
