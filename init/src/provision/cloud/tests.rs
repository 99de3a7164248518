use super::*;

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICNyYsl3lBRT8Vxs6biOdm8P4tPINHyUDYy+8eS2UhMq test@host";

fn no_mac(_: &str) -> Option<String> {
    None
}

#[test]
fn cloud_config_takes_the_hostname_and_every_users_keys_and_names_the_rest() {
    let text = format!(
        "#cloud-config\nhostname: node-9\nssh_authorized_keys:\n  - {KEY}\nusers:\n  - default\n  - name: alice\n    sudo: ALL=(ALL) NOPASSWD:ALL\n    ssh_authorized_keys: ['{KEY}']\npackage_update: true\nruncmd: [reboot]\n"
    );
    let p = user_data(&text).expect("valid");
    assert_eq!(p.config.hostname.as_deref(), Some("node-9"));
    assert_eq!(p.config.ssh_authorized_keys.map(|k| k.len()), Some(2));
    assert_eq!(p.ignored, ["users[].sudo", "package_update", "runcmd"]);
}

#[test]
fn broken_user_data_is_refused_with_its_reason() {
    assert!(user_data("#cloud-config\nhostname: [unclosed\n").expect_err("must be refused").contains("not valid YAML"));
    assert!(user_data("#!/bin/sh\nrm -rf /\n").expect_err("must be refused").contains("runs no scripts"));
    assert!(user_data("#cloud-config\nssh_authorized_keys: ['ssh-ed25519 AAAA']\n").expect_err("must be refused").contains("ssh_authorized_keys[0]"));
    assert!(user_data("hostname = \"x\"\nbogus = 1\n").expect_err("must be refused").contains("bogus"));
}

#[test]
fn meta_data_gives_the_instance_and_a_hostname() {
    assert_eq!(meta_data("instance-id: iid-1\nlocal-hostname: n1\n").expect("test setup"), (Some("iid-1".into()), Some("n1".into())));
    assert!(meta_data("instance-id: 'a b'\n").is_err());
}

#[test]
fn network_config_v2_becomes_static_interfaces() {
    let text = "version: 2\nethernets:\n  eth0:\n    addresses: [192.0.2.10/24]\n    gateway4: 192.0.2.1\n    nameservers:\n      addresses: [192.0.2.53]\n  eth1:\n    dhcp4: true\n";
    let (n, ignored) = network_config(text, &no_mac).expect("test setup");
    let n = n.expect("one static interface");
    assert_eq!(n.interface.len(), 1);
    assert_eq!((n.interface[0].name.as_str(), n.interface[0].gateway.as_deref()), ("eth0", Some("192.0.2.1")));
    assert!(ignored.is_empty());
    let by_mac = |m: &str| (m == "52:54:00:12:34:56").then(|| "ens3".to_owned());
    let text = "network:\n  version: 2\n  ethernets:\n    id0:\n      match: {macaddress: '52:54:00:12:34:56'}\n      addresses: [192.0.2.10/24]\n      routes: [{to: default, via: 192.0.2.254}]\n";
    let n = network_config(text, &by_mac).expect("test setup").0.expect("test setup");
    assert_eq!((n.interface[0].name.as_str(), n.interface[0].gateway.as_deref()), ("ens3", Some("192.0.2.254")));
    assert!(network_config("version: 2\nethernets:\n  eth0:\n    addresses: [10.0.0.1]\n", &no_mac).expect_err("must be refused").contains("prefix"));
    assert!(network_config("version: 1\nconfig: []\n", &no_mac).expect("test setup").1[0].contains("version 1"));
}

#[test]
fn openstack_meta_and_network_data() {
    let m = format!("{{\"uuid\": \"83679162-1378-4288-a2d4-70e13ec132aa\", \"hostname\": \"node-3.novalocal\", \"public_keys\": {{\"mykey\": \"{KEY}\\n\"}}}}");
    let p = openstack_meta_data(&m).expect("test setup");
    assert_eq!(p.config.instance_id.as_deref(), Some("83679162-1378-4288-a2d4-70e13ec132aa"));
    assert_eq!(p.config.hostname.as_deref(), Some("node-3"));
    assert_eq!(p.config.ssh_authorized_keys.expect("test setup")[0], KEY);
    let by_mac = |m: &str| (m == "fa:16:3e:00:00:01").then(|| "eth0".to_owned());
    let n = r#"{"links": [{"id": "tap1", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:01"}],
        "networks": [{"id": "n1", "link": "tap1", "type": "ipv4", "ip_address": "198.51.100.5", "netmask": "255.255.255.0",
                      "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "198.51.100.1"}]}],
        "services": [{"type": "dns", "address": "198.51.100.53"}]}"#;
    let n = openstack_network_data(n, &by_mac).expect("test setup").expect("test setup");
    assert_eq!(n.interface[0].addresses, ["198.51.100.5/24"]);
    assert_eq!(n.interface[0].dns, ["198.51.100.53"]);
}
