use super::*;
use std::cell::RefCell;

/// An nft that refuses any ruleset containing `bad`, and records what it applied.
fn fake(applied: &RefCell<Vec<String>>) -> impl Fn(&str, bool) -> Result<(), String> + '_ {
    move |r: &str, check: bool| {
        if r.contains("bad") {
            return Err("Error: syntax error, unexpected bad".into());
        }
        if !check {
            applied.borrow_mut().push(r.to_owned());
        }
        Ok(())
    }
}

fn paths(t: &Path) -> Paths {
    Paths { additions: t.join("firewall.d"), last_good: t.join("last-good.nft"), report: t.join("firewall.json") }
}

#[test]
fn operator_rules_go_in_and_a_refused_file_keeps_the_last_good_ruleset() {
    let t = tempfile::tempdir().expect("test setup");
    let p = paths(t.path());
    std::fs::create_dir_all(&p.additions).expect("test setup");
    std::fs::write(p.additions.join("10-web.nft"), "tcp dport 8443 accept\n").expect("test setup");
    let applied = RefCell::new(Vec::new());
    let r = apply(&p, &fake(&applied));
    assert_eq!((r.applied, r.error.clone()), (Applied::Configured, None));
    assert!(applied.borrow()[0].contains("\t\ttcp dport 8443 accept\n"));
    // A broken file: nothing of it is applied; the ruleset with 8443 stays.
    std::fs::write(p.additions.join("20-typo.nft"), "tcp dport bad accept\n").expect("test setup");
    let r = apply(&p, &fake(&applied));
    assert_eq!(r.applied, Applied::LastGood);
    assert!(r.error.as_deref().is_some_and(|e| e.contains("refused by nft") && e.contains("unexpected bad")), "{r:?}");
    assert!(applied.borrow()[1].contains("8443") && !applied.borrow()[1].contains("bad"));
    // Never applied before: the base rules alone.
    std::fs::remove_file(&p.last_good).expect("test setup");
    let r = apply(&p, &fake(&applied));
    assert_eq!(r.applied, Applied::Base);
    assert!(!applied.borrow()[2].contains("8443"));
    assert!(r.line().starts_with("ERROR: "), "{}", r.line());
}

#[test]
fn the_public_ports_are_flux_s_and_rpc_ports_are_not_among_them() {
    let r = render("");
    for open in ["tcp dport 22 accept", "tcp dport 16125 accept", "16126-16129", "16196-16199"] {
        assert!(r.contains(open), "{open} missing:\n{r}");
    }
    for closed in ["16124", "16123", "16224", "16225", "8384"] {
        assert!(!r.contains(closed), "{closed} must not be open:\n{r}");
    }
    assert!(r.contains("policy drop") && !r.contains("flush ruleset") && !r.contains("hook forward"));
}

/// The real nft (Debian's nftables on the build host, as root: `nft -c` asks the kernel)
/// takes the ruleset as written, with and without an operator rule.
#[test]
fn debian_nft_accepts_the_ruleset() {
    assert!(Path::new("/usr/sbin/nft").is_file(), "nft is missing on the host: apt-get install nftables (./dev setup does)");
    if !nix::unistd::geteuid().is_root() {
        panic!("`nft -c` needs root (CAP_NET_ADMIN): run the tests as root, as ./dev test does in CI");
    }
    run_nft(&render(""), true).expect("the base ruleset");
    run_nft(&render("tcp dport 8443 accept\n"), true).expect("with an operator rule");
    let e = run_nft(&render("tcp dport eighty accept\n"), true).expect_err("must be refused");
    assert!(e.contains("eighty") || e.to_lowercase().contains("error"), "{e}");
}
