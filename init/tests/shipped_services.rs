//! Every service definition the images ship (image/services/) parses and validates, and the
//! dependency graph of each profile's set is sound; the deliberately broken test definitions
//! are broken for the reason they claim.

use cairn_init::service::definition::{self, DefinitionError};
use cairn_init::service::order;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

fn services_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../image/services")
}

#[test]
fn shipped_definitions_are_valid_and_broken_ones_say_why() {
    let dirs = [services_dir(), services_dir().join("test")];
    let dirs: Vec<&std::path::Path> = dirs.iter().map(|p| p.as_path()).collect();
    // Binaries are checked on the node; here only the definitions.
    let loaded = definition::load(&dirs, &|c| !c.contains("no-such"));
    assert!(loaded.len() >= 10, "{loaded:?}");
    let mut defs = BTreeMap::new();
    let mut broken = BTreeSet::new();
    for l in &loaded {
        match (&l.def, l.name.as_str()) {
            (Err(DefinitionError::Parse { reason, .. }), "test-broken-key") => assert!(reason.contains("restart_policy"), "{reason}"),
            (Err(DefinitionError::MissingBinary(_)), "test-missing") => {}
            (Err(e), name) => panic!("{name}: {e}"),
            (Ok(d), name) => {
                defs.insert(name.to_owned(), d.clone());
            }
        }
        if l.def.is_err() {
            broken.insert(l.name.clone());
        }
    }
    let bad = order::check(&defs, &broken);
    let bad_names: Vec<&str> = bad.keys().map(String::as_str).collect();
    assert_eq!(bad_names, ["test-cycle-a", "test-cycle-b"], "{bad:?}");
    assert!(bad.values().all(|e| matches!(e, DefinitionError::Cycle(_))));
}

#[test]
fn container_runtimes_stop_main_process_only() {
    let loaded = definition::load(&[services_dir().as_path()], &|_| true);
    for name in ["containerd", "docker"] {
        let def = loaded.iter().find(|l| l.name == name).and_then(|l| l.def.clone().ok()).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(def.stop.mode, definition::StopMode::MainProcess, "{name}");
    }
}
