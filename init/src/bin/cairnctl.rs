//! `cairnctl`: the operator's command line for a Cairn node, a client of the control API
//! (`org.cairn.Init1` on the D-Bus system bus; docs/services.md).
//!
//! Exit codes, for scripts:
//!   0  success
//!   1  the request failed (no such service, it cannot start, the node is shutting down)
//!   2  bad usage
//!   3  the control API cannot be reached (dbus down, or not a Cairn node)
//!   4  permission denied (changes need root or the operator group)

use cairn_init::control::{ServiceInfo, SystemStatus, UpdateProgress, BUS_NAME, OBJECT_PATH};
use std::process::ExitCode;

const USAGE: &str = "usage: cairnctl [--json] [--address BUS] COMMAND
commands:
  status                 slot, version, boot id, uptime, root hash
  services               every service: state, readiness, pid, restarts, last exit
  logs NAME [-n LINES]   recent output of a service (default 50 lines; journalctl -u NAME has all)
  start NAME | stop NAME | restart NAME
  reboot [--yes]         print what a reboot costs (OS uptime lost, each criterion's new ETA,
                         the downtime against the margin to the next confirmation), ask on a
                         terminal, and reboot; without a terminal only with --yes
  poweroff
  update check           ask the update repository for a newer release (TUF metadata verified)
  update install [SOURCE]
                         install a signed bundle into the other slot: SOURCE is a file, a block
                         device it was written to, or an http(s) URL; without SOURCE, the newest
                         release the repository offers. It boots on trial at the next reboot
                         (root only). Downloads resume after a dropped connection.
                         --repo URL: the repository (default: `repository` in
                         /data/cairn/update/config.toml, else /etc/cairn/update/config.toml;
                         `ca_file` there: the PEM CA an https mirror is verified against)
  update status          each slot: version, signature, bootable, on trial, failed boots
  update progress        the install of this boot, whoever runs it (the update service, or
                         another cairnctl): stage, bytes, rate, ETA, or how it ended
  update reboot          reboot into the installed slot
  update poll [--once]   (the update service) check the repository every `poll_interval_s`
                         with jitter, install what this node's rollout wave is offered, and
                         reboot by the `reboot` policy (now, confirm, or a UTC window like
                         03:00-05:00); --once: one check now
  eligibility            whether the node meets each reward criterion (OS uptime, confirmed
                         blocks), when it will, and the margin to its next confirmation, as the
                         eligibility service last sampled them (rules: [rules] in
                         /data/cairn/eligibility.toml, else /etc/cairn/eligibility.toml)
  eligibility --metrics   the same in Prometheus's text format (also in
                         /run/cairn/metrics/eligibility.prom for node_exporter's textfile collector)
  eligibility track [--once]
                         (the eligibility service) sample fluxd and the uptime every
                         `interval_s` into the history on /data/cairn/eligibility
  hardening              the security baseline audit (JSON)
  network check [FILE]   check /data/cairn/network.toml (static addresses) and show the
                         dhcpcd configuration it gives; `cairnctl restart network` applies it
  network run -- CMD...  (the network service) write that configuration, then exec CMD
  provision              (PID 1, at boot) apply first-boot configuration: NoCloud, ConfigDrive,
                         the ESP's cairn.toml (docs/provisioning.md); the report is in status
  firewall apply         (PID 1, at boot) apply the nftables firewall with the operator's rules
                         from /data/cairn/firewall.d/*.nft (docs/provisioning.md)
  ssh run -- SSHD...     (the ssh service) make the host key if there is none, then exec sshd
  udev run -- UDEVD...   (the udev service, bare metal) exec udevd, with a helper that replays
                         the devices found before it and waits for them (`udev settle`)
options:
  --json                 machine-readable output
  --address BUS          D-Bus address (default: the system bus; env CAIRNCTL_BUS_ADDRESS)
exit codes: 0 ok, 1 request failed, 2 usage, 3 API unreachable, 4 permission denied";

#[zbus::proxy(interface = "org.cairn.Init1.Manager", default_service = "org.cairn.Init1", default_path = "/org/cairn/Init1")]
trait Manager {
    fn status(&self) -> zbus::Result<SystemStatus>;
    fn list_services(&self) -> zbus::Result<Vec<ServiceInfo>>;
    fn logs(&self, name: &str, lines: u32) -> zbus::Result<Vec<String>>;
    fn start_service(&self, name: &str) -> zbus::Result<()>;
    fn stop_service(&self, name: &str) -> zbus::Result<()>;
    fn restart_service(&self, name: &str) -> zbus::Result<()>;
    fn reboot(&self) -> zbus::Result<()>;
    fn reboot_for_update(&self) -> zbus::Result<()>;
    fn power_off(&self) -> zbus::Result<()>;
    fn update_progress(&self) -> zbus::Result<UpdateProgress>;
}

/// A failure, with the exit code it maps to.
struct Failure(u8, String);

fn fail(e: zbus::Error) -> Failure {
    match &e {
        zbus::Error::MethodError(name, msg, _) => {
            let msg = msg.clone().unwrap_or_default();
            match name.as_str() {
                "org.cairn.Init1.Error.AccessDenied" | "org.freedesktop.DBus.Error.AccessDenied" => {
                    Failure(4, format!("permission denied: {msg}; run as root or as a member of the operator group"))
                }
                "org.freedesktop.DBus.Error.ServiceUnknown" | "org.freedesktop.DBus.Error.NameHasNoOwner" => {
                    Failure(3, format!("{BUS_NAME} is not on the bus: is this a Cairn node that finished booting? ({msg})"))
                }
                _ => Failure(1, msg),
            }
        }
        _ => Failure(3, format!("cannot reach the control API: {e} (is this a Cairn node? is dbus running?)")),
    }
}

fn connect(address: Option<&str>) -> Result<ManagerProxyBlocking<'static>, Failure> {
    let conn = match address {
        Some(a) => zbus::blocking::connection::Builder::address(a).and_then(|b| b.build()),
        None => zbus::blocking::Connection::system(),
    }
    .map_err(|e| Failure(3, format!("cannot connect to D-Bus: {e} (is this a Cairn node? is dbus running?)")))?;
    ManagerProxyBlocking::builder(&conn).destination(BUS_NAME).and_then(|b| b.path(OBJECT_PATH)).and_then(|b| b.build()).map_err(fail)
}

fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string(v).unwrap_or_else(|_| "null".into()));
}

/// `cairnctl network ...`: local, no D-Bus (the network service runs it before the bus
/// may be up).
fn network(args: &[String]) -> Result<(), Failure> {
    use cairn_init::netconfig::{prepare, read_config, render, Paths, Source};
    let paths = Paths::node();
    match args.first().map(String::as_str) {
        Some("check") => {
            let path = args.get(1).map(std::path::PathBuf::from).unwrap_or(paths.config.clone());
            let cfg = read_config(&path)
                .map_err(|e| Failure(1, format!("{e}; the node keeps its last good network configuration")))?
                .ok_or_else(|| Failure(1, format!("there is no {}: every interface uses DHCP", path.display())))?;
            let base = std::fs::read_to_string(&paths.base).unwrap_or_default();
            print!("{}", render(&base, &cfg));
            eprintln!("{} is valid; `cairnctl restart network` applies it", path.display());
            Ok(())
        }
        Some("run") if args.get(1).map(String::as_str) == Some("--") && args.len() > 2 => {
            let prepared = prepare(&paths).map_err(|e| Failure(1, e.to_string()))?;
            if let Some(e) = &prepared.rejected {
                let fallback = if prepared.source == Source::LastGood { "using the last good one" } else { "using DHCP on every interface" };
                eprintln!("network: ERROR: {e}; {fallback} ({})", paths.last_good.display());
            } else if prepared.source == Source::Config {
                eprintln!("network: static addresses from {}", paths.config.display());
            }
            use std::os::unix::process::CommandExt;
            // execve(2): become the network client, so the supervisor's pid is dhcpcd's.
            let e = std::process::Command::new(&args[2]).args(&args[3..]).exec();
            Err(Failure(1, format!("cannot run {}: {e}", args[2])))
        }
        _ => Err(Failure(2, USAGE.into())),
    }
}

/// `provision`, `firewall apply`, `ssh run`, `udev run`: local steps of the boot, no D-Bus.
fn boot_step(args: &[String]) -> Option<Result<(), Failure>> {
    use cairn_init::boot_config;
    let code = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["provision"] => boot_config::provision(),
        ["firewall", "apply"] => boot_config::firewall(),
        ["ssh", "run", "--", _, ..] => boot_config::ssh_run(&args[3..]),
        ["udev", "run", "--", _, ..] => cairn_init::udev::run(&args[3..]),
        ["udev", "settle"] => cairn_init::udev::settle(),
        _ => return None,
    };
    // The step printed its own report; the exit code says whether all was well.
    Some(if code == 0 { Ok(()) } else { Err(Failure(1, "see the lines above".into())) })
}

fn run(args: &[String]) -> Result<(), Failure> {
    if args.first().map(String::as_str) == Some("network") {
        return network(&args[1..]);
    }
    if let Some(done) = boot_step(args) {
        return done;
    }
    let json = args.iter().any(|a| a == "--json");
    let mut address = std::env::var("CAIRNCTL_BUS_ADDRESS").ok();
    let mut words: Vec<&str> = Vec::new();
    let mut lines: u32 = 50;
    let mut repo: Option<String> = None;
    let mut once = false;
    let mut metrics = false;
    let mut yes = false;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--json" => {}
            "--once" => once = true,
            "--metrics" => metrics = true,
            "--yes" | "-y" => yes = true,
            "--address" => {
                i += 1;
                address = Some(args.get(i).cloned().ok_or_else(|| Failure(2, "--address needs a value".into()))?);
            }
            "--repo" => {
                i += 1;
                repo = Some(args.get(i).cloned().ok_or_else(|| Failure(2, "--repo needs a URL".into()))?);
            }
            "-n" | "--lines" => {
                i += 1;
                lines = args.get(i).and_then(|v| v.parse().ok()).ok_or_else(|| Failure(2, "-n needs a number of lines".into()))?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            w if w.starts_with('-') => return Err(Failure(2, format!("unknown option {w}\n{USAGE}"))),
            w => words.push(w),
        }
        i += 1;
    }
    if words == ["hardening"] {
        let t = std::fs::read_to_string("/run/cairn/hardening.json").map_err(|e| Failure(1, format!("no hardening report in /run/cairn/hardening.json: {e}")))?;
        println!("{t}");
        return Ok(());
    }
    if words.first() == Some(&"eligibility") {
        return eligibility(&words[1..], json, metrics, once);
    }
    if words.first() == Some(&"update") {
        return update(&words[1..], json, repo, once, || connect(address.as_deref()));
    }
    let api = || connect(address.as_deref());
    let done = |what: &str| {
        if json {
            print_json(&serde_json::json!({ "ok": true }));
        } else {
            println!("{what}");
        }
    };
    match words.as_slice() {
        ["status"] => {
            let s = api()?.status().map_err(fail)?;
            let config = cairn_init::boot_config::status_lines();
            if json {
                let mut v = serde_json::to_value(&s).unwrap_or_default();
                v["config"] = serde_json::json!(config);
                print_json(&v);
            } else {
                println!("slot       {}", s.slot);
                println!("version    {}", s.version);
                println!("boot id    {}", s.boot_id);
                println!("uptime     {}", cairn_init::eligibility::show::duration(s.uptime_s));
                println!("root hash  {}", s.root_hash);
                println!("ready      {}", if s.ready { "yes" } else { "not yet (services starting)" });
                for line in config {
                    println!("config     {line}");
                }
            }
        }
        ["services"] => {
            let list = api()?.list_services().map_err(fail)?;
            if json {
                print_json(&list);
            } else {
                println!("{:<18} {:<14} {:<10} {:>7} {:>8}  LAST EXIT / NOTE", "SERVICE", "STATE", "READY", "PID", "RESTARTS");
                for s in list {
                    let pid = if s.pid == 0 { "-".to_owned() } else { s.pid.to_string() };
                    let mut note = if s.error.is_empty() { s.last_exit.clone() } else { s.error.clone() };
                    if s.next_start_ms > 0 {
                        note = format!("{note} (next start in {} ms)", s.next_start_ms);
                    }
                    println!("{:<18} {:<14} {:<10} {:>7} {:>8}  {}", s.name, s.state, s.readiness, pid, s.restarts, note);
                }
            }
        }
        ["logs", name] => {
            let out = api()?.logs(name, lines).map_err(fail)?;
            if json {
                print_json(&out);
            } else {
                for l in out {
                    println!("{l}");
                }
            }
        }
        ["start", name] => {
            api()?.start_service(name).map_err(fail)?;
            done(&format!("{name}: start requested"));
        }
        ["stop", name] => {
            api()?.stop_service(name).map_err(fail)?;
            done(&format!("{name}: stop requested"));
        }
        ["restart", name] => {
            api()?.restart_service(name).map_err(fail)?;
            done(&format!("{name}: restart requested"));
        }
        ["reboot"] => reboot(json, yes, || api()?.reboot().map_err(fail))?,
        ["poweroff"] => {
            api()?.power_off().map_err(fail)?;
            done("poweroff requested");
        }
        _ => return Err(Failure(2, USAGE.into())),
    }
    Ok(())
}

/// `cairnctl reboot`: nothing reboots the node without saying what it costs. The cost is the
/// eligibility tracker's (its last report); the operator confirms on a terminal, a script
/// with --yes.
fn reboot(json: bool, yes: bool, request: impl FnOnce() -> Result<(), Failure>) -> Result<(), Failure> {
    use cairn_init::eligibility::{cost, tracker};
    use std::io::IsTerminal;
    let report = tracker::read_report(std::path::Path::new(tracker::REPORT));
    let unknown = report.as_ref().err().map(|e| format!("the cost of a reboot is not known: {}", cairn_init::log::chain(e)));
    let cost = report.ok().and_then(|r| r.reboot_cost);
    if !json {
        match &cost {
            Some(c) => print!("{}", cost::text(c)),
            None => println!("{}", unknown.as_deref().unwrap_or("the cost of a reboot is not known")),
        }
    }
    let go = if yes {
        true
    } else if std::io::stdin().is_terminal() && !json {
        use std::io::Write;
        print!("Reboot now? [y/N] ");
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        matches!(line.trim(), "y" | "Y" | "yes")
    } else {
        false
    };
    if json {
        print_json(&serde_json::json!({ "reboot_cost": cost, "cost_unknown": unknown, "rebooting": go }));
    }
    if !go {
        let why = if yes || std::io::stdin().is_terminal() && !json { "not confirmed" } else { "no terminal to ask on: run `cairnctl reboot --yes` to reboot anyway" };
        return Err(Failure(1, format!("not rebooting: {why}")));
    }
    request()?;
    if !json {
        println!("reboot requested");
    }
    Ok(())
}

/// `cairnctl eligibility ...`: the tracker's report, or the tracker itself (the service).
fn eligibility(words: &[&str], json: bool, metrics: bool, once: bool) -> Result<(), Failure> {
    use cairn_init::eligibility::{self, show, tracker};
    let failed = |e: tracker::TrackerError| Failure(1, cairn_init::log::chain(&e));
    match words {
        [] => {
            let r = tracker::read_report(std::path::Path::new(tracker::REPORT)).map_err(failed)?;
            if metrics {
                print!("{}", eligibility::metrics::render(&r));
            } else if json {
                print_json(&r);
            } else {
                print!("{}", show::table(&r));
            }
            Ok(())
        }
        ["track"] => tracker::track(once).map_err(failed),
        _ => Err(Failure(2, USAGE.into())),
    }
}

/// `cairnctl update ...`: the install engine runs in this process (as root), never in PID 1.
fn update(words: &[&str], json: bool, repo_flag: Option<String>, once: bool, api: impl Fn() -> Result<ManagerProxyBlocking<'static>, Failure>) -> Result<(), Failure> {
    use cairn_init::update;
    let sys = cairn_init::sys::RealSys;
    let failed = |e: update::UpdateError| {
        let code = if matches!(e, update::UpdateError::NotRoot) { 4 } else { 1 };
        Failure(code, cairn_init::log::chain(&e))
    };
    // `--repo URL`: the repository for this command, over the configured one.
    let repository = || -> Result<String, Failure> {
        match repo_flag.clone() {
            Some(url) => Ok(url),
            None => update::config().map_err(failed)?.repository.ok_or(update::UpdateError::NoRepository).map_err(failed),
        }
    };
    // The repository's HTTPS: a private mirror's own CA (`ca_file`), else the public roots.
    // An offline install (a file, a USB stick) does not depend on it.
    let online = match words {
        ["check" | "poll"] | ["install"] => true,
        ["install", source] => source.starts_with("https://"),
        _ => false,
    };
    if online {
        update::config().and_then(|c| c.apply_tls()).map_err(failed)?;
    }
    match words {
        ["check"] => {
            let c = update::check(&sys, &repository()?).map_err(failed)?;
            if json {
                print_json(&c);
            } else {
                match &c.offer {
                    Some(o) => println!("{} offers {} ({} MiB{}); running {}: `cairnctl update install` installs it", c.repository, o.version, o.length >> 20, if o.security { ", security release" } else { "" }, c.running),
                    None => println!("{}", cairn_init::log::chain(&update::UpdateError::UpToDate { running: c.running.clone(), failed: c.failed.clone() })),
                }
                if let Some(p) = &c.pending {
                    println!("{p} is installed in the other slot and waits for its reboot (`cairnctl update reboot`)");
                }
                if let Some(h) = &c.held_back {
                    let turn = h.from.as_deref().map_or("this rollout does not reach it".to_owned(), |t| format!("its wave opens {t}"));
                    println!("{} is rolling out: open to {}% of nodes; this node (seed {}): {turn}. `cairnctl update install` installs it now", h.version, h.open_percent, c.seed);
                }
            }
        }
        ["install", rest @ ..] if rest.len() <= 1 => {
            let source = match rest.first() {
                Some(s) => update::Source::parse(s),
                None => {
                    let c = update::check(&sys, &repository()?).map_err(failed)?;
                    // The operator asked: a release still rolling out is installed ahead of
                    // this node's wave.
                    let o = c.offer.or(c.held_back.map(|h| h.offer)).ok_or_else(|| failed(update::UpdateError::UpToDate { running: c.running.clone(), failed: c.failed.clone() }))?;
                    if !json {
                        eprintln!("installing {} from {}", o.version, c.repository);
                    }
                    update::Source::Url { url: o.url, expected: Some((o.length, o.sha256)) }
                }
            };
            let started = std::time::Instant::now();
            let mut bar = Bar::new(json);
            let mut resumed = Vec::new();
            let mut checkpoints = cairn_init::checkpoint::Checkpoints::from_env();
            let (slot, m) = update::install_from(&sys, &source, &mut |p| {
                bar.show(p);
                checkpoints.at(&p);
            }, &mut |e| {
                let cairn_updater::download::Event::Resumed { offset, after } = e;
                eprintln!("download resumed at byte {offset} (after: {after})");
                resumed.push(offset);
            })
            .map_err(failed)?;
            bar.end();
            let secs = started.elapsed().as_secs_f64();
            if json {
                print_json(&serde_json::json!({"ok": true, "slot": slot.to_string(), "version": m.version.to_string(), "seconds": secs, "resumed_at": resumed}));
            } else {
                println!("installed {} into slot {slot} in {secs:.1} s; it boots on trial at the next reboot (`cairnctl update reboot`)", m.version);
            }
        }
        ["status"] => {
            let st = update::status(&sys).map_err(failed)?;
            if json {
                print_json(&st);
            } else {
                println!("{:<5} {:<8} {:<10} {:<9} {:<12} {:>6}  SIGNATURE", "SLOT", "RUNNING", "VERSION", "BOOTABLE", "ON TRIAL", "FAILS");
                for s in &st.slots {
                    let yes = |b: bool| if b { "yes" } else { "no" };
                    println!("{:<5} {:<8} {:<10} {:<9} {:<12} {:>6}  {}", s.slot, yes(s.running), s.version.as_deref().unwrap_or("-"), yes(s.bootable), if s.on_trial { format!("yes ({} left)", s.tries_left) } else { "no".into() }, s.failed_boots, s.signature);
                }
                println!("next boot: slot {}", st.next_boot.as_deref().unwrap_or("none"));
                if let Some(f) = &st.last_failure {
                    println!("last failed trial: {} in slot {}: {}", f.version, f.slot, f.reason);
                }
            }
        }
        ["poll"] => {
            let mut bar = Bar::new(json);
            let result = update::poll(&sys, repo_flag, once, &mut |p| bar.show(p), &mut || api().map_err(|f| f.1)?.reboot_for_update().map_err(|e| fail(e).1));
            bar.end();
            result.map_err(failed)?;
        }
        ["progress"] => {
            let p = api()?.update_progress().map_err(fail)?;
            if json {
                print_json(&p);
            } else {
                println!("{}", describe_progress(&p));
            }
        }
        ["reboot"] => {
            api()?.reboot_for_update().map_err(fail)?;
            if json {
                print_json(&serde_json::json!({ "ok": true }));
            } else {
                println!("reboot requested");
            }
        }
        _ => return Err(Failure(2, USAGE.into())),
    }
    Ok(())
}

/// One line for `cairnctl update progress`.
fn describe_progress(p: &UpdateProgress) -> String {
    let who = format!("{} (PID {})", p.source, p.pid);
    let bytes = || {
        let pct = (p.done * 100).checked_div(p.total).unwrap_or(0);
        let mut s = format!("{} {} / {} MiB {pct}%", p.stage, p.done >> 20, p.total >> 20);
        if !p.step.is_empty() {
            s = format!("{}: {}", p.stage, p.step);
        }
        if p.rate > 0 {
            s.push_str(&format!(", {:.1} MiB/s, ETA {} s", p.rate as f64 / 1_048_576.0, p.eta_s));
        }
        s
    };
    match p.state.as_str() {
        "none" => "no update install this boot".to_owned(),
        "installing" if p.stage.is_empty() => format!("installing {who}: verifying the bundle, {} s so far", p.elapsed_s),
        "installing" => format!("installing {who}: {}, {} s so far", bytes(), p.elapsed_s),
        "installed" => format!("installed {} from {} in {} s; it boots on trial at the next reboot", p.version, p.source, p.elapsed_s),
        "failed" => format!("the install of {} failed after {} s: {}", p.source, p.elapsed_s, p.error),
        _ => format!("the install of {who} ended without finishing (killed?) at {}", bytes()),
    }
}

/// Install progress on stderr: a bar redrawn in place on a terminal, a line per tenth
/// otherwise (logs, serial consoles), a JSON object per tenth with --json (stdout keeps the
/// one result object).
struct Bar {
    json: bool,
    tty: bool,
    rate: cairn_init::update::progress::StageRate,
    last_tenth: Option<(cairn_updater::install::Stage, u64)>,
}

impl Bar {
    fn new(json: bool) -> Bar {
        use std::io::IsTerminal;
        Bar { json, tty: std::io::stderr().is_terminal() && !json, rate: Default::default(), last_tenth: None }
    }

    fn show(&mut self, p: cairn_updater::install::Progress) {
        if p.total == 0 {
            return;
        }
        let (bytes_per_s, eta) = self.rate.update(&p, std::time::Instant::now());
        let rate = bytes_per_s as f64 / 1_048_576.0;
        let pct = p.done * 100 / p.total;
        if self.tty {
            let stage = format!("{:?}", p.stage).to_lowercase();
            let line = format!("{stage:<12} {:>4} / {} MiB  {pct:>3}%  {rate:.1} MiB/s  ETA {eta:.0} s", p.done >> 20, p.total >> 20);
            let filled = usize::try_from(pct / 5).unwrap_or(0);
            eprint!("\r[{}{}] {line}  ", "#".repeat(filled), " ".repeat(20 - filled.min(20)));
            return;
        }
        if self.last_tenth == Some((p.stage, pct / 10)) && p.step.is_none() {
            return;
        }
        self.last_tenth = Some((p.stage, pct / 10));
        if self.json {
            eprintln!("{}", serde_json::json!({"progress": p, "rate_mib_s": (rate * 10.0).round() / 10.0, "eta_s": eta}));
        } else if let Some(step) = p.step {
            eprintln!("committing: {step}");
        } else {
            let stage = format!("{:?}", p.stage).to_lowercase();
            eprintln!("{stage:<12} {:>4} / {} MiB  {pct:>3}%  {rate:.1} MiB/s  ETA {eta:.0} s", p.done >> 20, p.total >> 20);
        }
    }

    fn end(&self) {
        if self.tty {
            eprintln!();
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, msg)) => {
            if code == 2 {
                eprintln!("{msg}");
            } else {
                eprintln!("cairnctl: {msg}");
            }
            ExitCode::from(code)
        }
    }
}
