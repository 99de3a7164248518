//! First-boot configuration and operator access, each from a first boot of the test image
//! with what a cloud or a person hands a node: a NoCloud seed, a ConfigDrive, the ESP's
//! `cairn.toml`, and bad input of every kind. The operator logs in over real SSH through
//! QEMU's port forwarding, with a key made here.

use cairn_qemu_tests::machine::BOOT_TIMEOUT;
use cairn_qemu_tests::seed::{self, keypair, ssh, wait_ssh};
use cairn_qemu_tests::{image::test_image, workspace, Firmware, HarnessError, Machine, MachineConfig};
use std::path::{Path, PathBuf};
use std::time::Duration;

type R = Result<(), HarnessError>;

const PRIVKEY: &str = "5J2Hf3T8LpjKEkY46qhPLFF8DjQfCSBh6aWRfeDwQSMJKomvHFa";
const OUTPOINT: &str = "59ca9df148fdfb901f8c617a55470c08585b6ac09f9aa1bc83eac19ffc25f619";

/// Files a test makes (seeds, keys); not the machine's directory, which QEMU's start remakes.
fn artifacts(name: &str) -> PathBuf {
    let d = workspace().join("target/qemu-tests/artifacts").join(name);
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::create_dir_all(&d);
    d
}

fn config(name: &str, ssh_port: u16, drives: &[PathBuf]) -> Result<MachineConfig, HarnessError> {
    let mut c = MachineConfig::new(name, &test_image()?.disk_path(), Firmware::Bios);
    c.host_port_forwards.push((ssh_port, 22));
    c.extra_drives.extend(drives.iter().cloned());
    Ok(c)
}

fn ready(m: &Machine) -> R {
    m.wait_for_ready(BOOT_TIMEOUT)?;
    m.wait_for_agent(Duration::from_secs(60))?;
    Ok(())
}

fn flux_toml() -> String {
    format!("[flux]\nzelnodeprivkey = \"{PRIVKEY}\"\nzelnodeoutpoint = \"{OUTPOINT}\"\nzelnodeindex = 0\nexternalip = \"203.0.113.7\"\n")
}

fn nocloud(dir: &Path, instance: &str, user_data: &str) -> Result<PathBuf, HarnessError> {
    seed::fat(&dir.join("seed.img"), "CIDATA", &[("meta-data", &format!("instance-id: {instance}\nlocal-hostname: from-meta-data\n")), ("user-data", user_data)])
}

/// The node as the operator sees it: hostname, machine id, host key, RPC password.
fn identity(m: &Machine) -> Result<[String; 4], HarnessError> {
    Ok([
        m.succeed("hostname")?.trim().to_owned(),
        m.succeed("cat /data/etc/machine-id")?.trim().to_owned(),
        m.succeed("cat /data/cairn/ssh/ssh_host_ed25519_key.pub")?.trim().to_owned(),
        m.succeed("grep ^rpcpassword= /data/flux/fluxd/flux.conf")?.trim().to_owned(),
    ])
}

/// The operator logs in with the key and runs `cairnctl status` without sudo; a password
/// and root are refused even with the same key in root's authorized keys.
fn operator_access(m: &Machine, port: u16, key: &Path, key_line: &str) -> R {
    let s = wait_ssh(port, "operator", key, Duration::from_secs(120))?;
    assert!(s.ok, "the operator's key login failed: {}", s.stderr);
    let s = ssh(port, "operator", Some(key), &[], "id -un; id -Gn; cairnctl status")?;
    assert!(s.ok, "cairnctl status as operator: {}{}", s.stdout, s.stderr);
    assert!(s.stdout.starts_with("operator\noperator"), "logged in as {:?}", s.stdout.lines().take(2).collect::<Vec<_>>());
    assert!(s.stdout.contains("ready      yes"), "{}", s.stdout);
    // The everyday tools of an operator's shell, from Debian.
    let s = ssh(port, "operator", Some(key), &[], "ps -e -o comm= | grep -c . && free -m | grep -q Mem: && ip -br addr && df -h /data && top -bn1 | head -1 && less --version | head -1")?;
    assert!(s.ok, "tools in the operator's shell: {}{}", s.stdout, s.stderr);
    let pw = ssh(port, "operator", None, &["-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive"], "true")?;
    assert!(!pw.ok && pw.stderr.contains("Permission denied (publickey)"), "a password login was not refused as keys-only: {}", pw.stderr);
    m.succeed(&format!("cp /data/cairn/ssh/authorized_keys/operator /data/cairn/ssh/authorized_keys/root && grep -qF '{}' /data/cairn/ssh/authorized_keys/root", key_line.split_whitespace().nth(1).unwrap_or_default()))?;
    let root = ssh(port, "root", Some(key), &[], "true")?;
    assert!(!root.ok && root.stderr.contains("Permission denied"), "root logged in: {}", root.stderr);
    m.succeed("rm /data/cairn/ssh/authorized_keys/root")?;
    Ok(())
}

fn mode_and_owner(m: &Machine, path: &str) -> Result<String, HarnessError> {
    Ok(m.succeed(&format!("stat -c '%a %U' {path}"))?.trim().to_owned())
}

#[test]
fn a_nocloud_seed_names_the_node_lets_the_operator_in_by_key_survives_a_reboot_and_a_new_instance_renews_its_identity() -> R {
    let name = "provision_nocloud";
    let dir = artifacts(name);
    let (key, line) = keypair(&dir, "operator")?;
    let user_data = format!("hostname = \"flux-node-a\"\nssh_authorized_keys = [\"{line}\"]\n{}", flux_toml());
    let seed = nocloud(&dir, "iid-a", &user_data)?;
    let port = seed::free_port();
    let mut m = Machine::start(config(name, port, &[seed])?)?;
    ready(&m)?;
    let first = identity(&m)?;
    assert_eq!(first[0], "flux-node-a");
    operator_access(&m, port, &key, &line)?;
    assert_eq!(mode_and_owner(&m, "/data/flux/fluxd/flux.conf")?, "600 root");
    m.succeed(&format!("grep -qx 'zelnodeprivkey={PRIVKEY}' /data/flux/fluxd/flux.conf && grep -qx 'zelnodeoutpoint={OUTPOINT}' /data/flux/fluxd/flux.conf && grep -qx externalip=203.0.113.7 /data/flux/fluxd/flux.conf"))?;
    let status = m.succeed("cairnctl status")?;
    assert!(status.contains("NoCloud /dev/vdb: applied"), "{status}");

    // A reboot: everything as it was, nothing applied again.
    m.reboot()?;
    ready(&m)?;
    assert_eq!(identity(&m)?, first, "the configuration and identity survive a reboot");
    assert!(m.succeed("cairnctl status")?.contains("NoCloud /dev/vdb: unchanged"));
    assert!(wait_ssh(port, "operator", &key, Duration::from_secs(120))?.ok);

    // The disk cloned into another instance: same user-data, new instance id.
    m.shutdown(Duration::from_secs(120))?;
    nocloud(&dir, "iid-b", &user_data)?;
    m.restart()?;
    ready(&m)?;
    let second = identity(&m)?;
    assert_eq!(second[0], first[0], "the hostname is the user-data's");
    for (i, what) in [(1, "machine id"), (2, "SSH host key"), (3, "RPC password")] {
        assert_ne!(second[i], first[i], "a new instance id must give a new {what}");
    }
    assert!(m.succeed("cairnctl status")?.contains("new instance iid-b"));
    assert!(wait_ssh(port, "operator", &key, Duration::from_secs(120))?.ok, "the operator's key still works on the clone");
    Ok(())
}

#[test]
fn a_config_drive_names_the_node_lets_the_operator_in_by_key_writes_the_flux_identity_and_survives_a_reboot() -> R {
    let name = "provision_configdrive";
    let dir = artifacts(name);
    let (key, line) = keypair(&dir, "operator")?;
    // OpenStack's own metadata names the node and gives the key; user_data (Cairn's TOML)
    // the Flux identity.
    let meta = format!("{{\"uuid\": \"0b6f5a3c-0000-4000-8000-000000000001\", \"hostname\": \"node-b.novalocal\", \"public_keys\": {{\"laptop\": \"{line}\"}}}}");
    let drive = seed::iso(&dir.join("config-2.iso"), "config-2", &[("openstack/latest/meta_data.json", &meta), ("openstack/latest/user_data", &flux_toml())])?;
    let port = seed::free_port();
    let m = Machine::start(config(name, port, &[drive])?)?;
    ready(&m)?;
    assert_eq!(m.succeed("hostname")?.trim(), "node-b");
    operator_access(&m, port, &key, &line)?;
    assert_eq!(mode_and_owner(&m, "/data/flux/fluxd/flux.conf")?, "600 root");
    m.succeed(&format!("grep -qx 'zelnodeprivkey={PRIVKEY}' /data/flux/fluxd/flux.conf"))?;
    assert!(m.succeed("cairnctl status")?.contains("ConfigDrive /dev/vdb: applied"));
    m.reboot()?;
    ready(&m)?;
    assert_eq!(m.succeed("hostname")?.trim(), "node-b", "the configuration survives a reboot");
    assert!(m.succeed("cairnctl status")?.contains("ConfigDrive /dev/vdb: unchanged"));
    assert!(wait_ssh(port, "operator", &key, Duration::from_secs(120))?.ok);
    Ok(())
}

/// The ESP's cairn.toml, read in the guest (it is FAT: mounted read-only for a look).
fn esp_file(m: &Machine) -> Result<String, HarnessError> {
    m.succeed("d=$(for b in /sys/class/block/*; do grep -qx PARTNAME=esp $b/uevent && echo /dev/${b##*/}; done | head -1); mkdir -p /run/t-esp && mount -o ro $d /run/t-esp && cat /run/t-esp/cairn.toml; umount /run/t-esp")
}

#[test]
fn a_cairn_toml_on_the_esp_configures_a_flashed_node_and_its_flux_key_leaves_the_esp() -> R {
    let name = "provision_esp";
    let dir = artifacts(name);
    let (key, line) = keypair(&dir, "operator")?;
    let text = format!("# Written on the operator's laptop after flashing.\nhostname = \"flux-node-c\"\nssh_authorized_keys = [\"{line}\"]\n\n{}", flux_toml());
    let (offset, esp) = seed::esp_with(&dir, Some(&text))?;
    let port = seed::free_port();
    let mut m = Machine::prepare(config(name, port, &[])?)?;
    m.write_disk(offset, &esp)?;
    m.restart()?;
    ready(&m)?;
    assert_eq!(m.succeed("hostname")?.trim(), "flux-node-c");
    operator_access(&m, port, &key, &line)?;
    assert_eq!(mode_and_owner(&m, "/data/flux/fluxd/flux.conf")?, "600 root");
    m.succeed(&format!("grep -qx 'zelnodeprivkey={PRIVKEY}' /data/flux/fluxd/flux.conf"))?;
    let left = esp_file(&m)?;
    assert!(!left.contains(PRIVKEY) && !left.contains("zelnodeoutpoint"), "the Flux identity is still on the ESP:\n{left}");
    assert!(left.contains("hostname = \"flux-node-c\"") && left.contains("# Written on the operator's laptop"), "the rest of the file must stay:\n{left}");
    m.reboot()?;
    ready(&m)?;
    assert_eq!(m.succeed("hostname")?.trim(), "flux-node-c", "the configuration survives a reboot");
    m.succeed(&format!("grep -qx 'zelnodeprivkey={PRIVKEY}' /data/flux/fluxd/flux.conf"))?;
    assert!(wait_ssh(port, "operator", &key, Duration::from_secs(120))?.ok);
    Ok(())
}

/// Boots again with `drive` as the configuration volume and `esp_text` as the ESP's
/// cairn.toml; each must be reported as refused, and the node keeps its last good config.
fn bad_boot(m: &mut Machine, dir: &Path, esp_text: &str, says: &[&str], port: u16, key: &Path) -> R {
    m.shutdown(Duration::from_secs(120))?;
    let (offset, esp) = seed::esp_with(dir, Some(esp_text))?;
    m.write_disk(offset, &esp)?;
    m.restart()?;
    ready(m)?;
    let status = m.succeed("cairnctl status")?;
    for s in says {
        assert!(status.lines().any(|l| l.contains("ERROR") && l.contains(s)), "`cairnctl status` does not report {s:?}:\n{status}");
    }
    let console = m.console_log();
    for s in says {
        assert!(console.contains(s), "the console does not show {s:?}");
    }
    let journal = m.succeed("journalctl -b --no-pager -o cat | grep 'config: ERROR' || true")?;
    assert!(says.iter().all(|s| journal.contains(s)), "the journal does not have every error: {journal}");
    assert_eq!(m.succeed("hostname")?.trim(), "good-node", "the last good hostname stays");
    assert!(ssh(port, "operator", Some(key), &[], "true")?.ok, "the last good keys stay");
    Ok(())
}

#[test]
fn bad_configuration_of_every_kind_is_reported_the_node_reaches_ready_and_keeps_its_last_good_configuration() -> R {
    let name = "provision_bad";
    let dir = artifacts(name);
    let (key, line) = keypair(&dir, "operator")?;
    // The good configuration is the #cloud-config providers inject, every user's keys going
    // to `operator`, with keys Cairn does not take: those are listed, not dropped silently.
    let good = format!("#cloud-config\nhostname: good-node\nusers:\n  - default\n  - name: alice\n    sudo: ALL=(ALL) NOPASSWD:ALL\n    ssh_authorized_keys: ['{line}']\npackages: [htop]\n");
    let seed_path = nocloud(&dir, "iid-good", &good)?;
    let port = seed::free_port();
    let mut m = Machine::start(config(name, port, std::slice::from_ref(&seed_path))?)?;
    ready(&m)?;
    assert_eq!(m.succeed("hostname")?.trim(), "good-node");
    assert!(wait_ssh(port, "operator", &key, Duration::from_secs(120))?.ok);
    let status = m.succeed("cairnctl status")?;
    assert!(status.contains("not applied (Cairn does not take these keys): users[].sudo, packages"), "{status}");

    // Broken YAML in the cloud's user-data; an unknown key in the ESP's TOML.
    nocloud(&dir, "iid-good", "#cloud-config\nhostname: [oops\n")?;
    bad_boot(&mut m, &dir, "hostname = \"esp-name\"\nhostnme = \"typo\"\n", &["not valid YAML", "hostnme"], port, &key)?;
    // A malformed SSH key line; broken TOML.
    let half = &line[..line.len() / 2];
    nocloud(&dir, "iid-good", &format!("hostname = \"other\"\nssh_authorized_keys = [\"{half}\"]\n"))?;
    bad_boot(&mut m, &dir, "hostname = \"esp-name\n", &["ssh_authorized_keys[0]", "TOML parse error"], port, &key)?;
    // A configuration volume that is neither FAT nor ISO 9660; an address that is not one.
    seed::ext4(&seed_path, "cidata", &[("meta-data", "instance-id: iid-x\n"), ("user-data", "hostname = \"ext4-name\"\n")])?;
    bad_boot(&mut m, &dir, "[[network.interface]]\nname = \"eth0\"\naddresses = [\"192.0.2.300/24\"]\n", &["not FAT or ISO 9660", "192.0.2.300"], port, &key)?;
    // The network kept its last good configuration too: no network.toml was written.
    m.fail("test -e /data/cairn/network.toml")?;
    Ok(())
}
