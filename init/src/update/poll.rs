//! `cairnctl update poll`: the update service (issue 9 items 7 and 8). It checks the
//! repository with jitter (the first check at a random point of the first interval, later
//! ones an interval apart give or take a quarter: `cairn_updater::rollout::poll_delay`),
//! installs what the check offers this node (its rollout wave included), and reboots into
//! it by the operator's policy (`cairn_updater::reboot`). Without a repository or an
//! update keyring it says so and ends: nothing to do on this node.

use super::{check, config, install_from, Source, UpdateError, STATE, DEFAULT_POLL_INTERVAL_S};
use crate::sys::Sys;
use cairn_updater::install::Progress;
use cairn_updater::reboot::moment::{decide_moment, Batch, Confirmation, Moment, Restart, KERNEL_AFTER_S};
use cairn_updater::reboot::{self, Decision};
use cairn_updater::rollout::SEEDS;
use std::path::Path;
use std::time::Duration;

const SEED: &str = "seed";

/// This node's rollout seed, drawn once and kept in `STATE/seed`.
pub fn seed() -> Result<u16, UpdateError> {
    let path = Path::new(STATE).join(SEED);
    if let Some(s) = std::fs::read_to_string(&path).ok().and_then(|t| t.trim().parse::<u16>().ok()).filter(|s| *s < SEEDS) {
        return Ok(s);
    }
    let seed = loop {
        // Rejection sampling: every seed equally likely. A failed getrandom must not give
        // seed 0, which would put this node in the first wave of every rollout.
        let mut b = [0u8; 2];
        rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).map_err(|e| super::io("cannot draw the rollout seed with getrandom", Path::new(STATE))(e.into()))?;
        let r = u16::from_le_bytes(b);
        if r < u16::MAX - u16::MAX % SEEDS {
            break r % SEEDS;
        }
    };
    std::fs::create_dir_all(STATE).map_err(super::io("cannot create", Path::new(STATE)))?;
    cairn_updater::tuf::client::persist(Path::new(STATE), SEED, format!("{seed}\n").as_bytes()).map_err(UpdateError::Trust)?;
    Ok(seed)
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // getrandom(2) blocks only until the kernel's pool is first seeded, long past at boot.
    let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty());
    b
}

/// A number in 0..1 for the jitter.
fn random_unit() -> f64 {
    f64::from(u32::from_le_bytes(random_bytes::<4>())) / f64::from(u32::MAX)
}

/// What one poll did.
#[derive(Debug)]
pub enum Polled {
    Nothing(String),
    Installed { version: String, slot: String, decision: Decision, deadline: Option<i64> },
}

/// Checks once and installs what is offered; says what it did.
fn poll_once(sys: &dyn Sys, repository: &str, policy: reboot::Policy, progress: &mut dyn FnMut(Progress)) -> Result<Polled, UpdateError> {
    let c = check(sys, repository)?;
    let Some(o) = c.offer else {
        let mut why = crate::log::chain(&UpdateError::UpToDate { running: c.running, failed: c.failed });
        if let Some(p) = c.pending {
            why.push_str(&format!("; {p} is installed and waits for its reboot"));
        }
        if let Some(h) = c.held_back {
            why.push_str(&format!("; {} is rolling out to {}% of nodes, this node's turn: {}", h.version, h.open_percent, h.from.as_deref().unwrap_or("not in this rollout")));
        }
        return Ok(Polled::Nothing(why));
    };
    println!("installing {} from {}", o.version, c.repository);
    let (slot, m) = install_from(sys, &Source::Url { url: o.url, expected: Some((o.length, o.sha256)) }, progress, &mut |e| {
        let cairn_updater::download::Event::Resumed { offset, after } = e;
        println!("download resumed at byte {offset} (after: {after})");
    })?;
    let deadline = m.deadline.as_deref().filter(|_| m.security).and_then(cairn_updater::tuf::time::parse);
    let decision = reboot::decide(policy, cairn_updater::tuf::time::now(), deadline);
    Ok(Polled::Installed { version: m.version.to_string(), slot: slot.to_string(), decision, deadline })
}

/// The update service's loop (`once`: one check, no wait, errors returned). `repository`
/// overrides the configured one; `reboot` asks PID 1 to reboot (through the control API).
pub fn poll(sys: &dyn Sys, repository: Option<String>, once: bool, progress: &mut dyn FnMut(Progress), reboot: &mut dyn FnMut() -> Result<(), String>) -> Result<(), UpdateError> {
    let cfg = config()?;
    let policy = cfg.reboot_policy()?;
    let Some(repository) = repository.or(cfg.repository.clone()) else {
        println!("{}; not polling", UpdateError::NoRepository);
        return Ok(());
    };
    if !Path::new(super::IMAGE_ROOT).exists() {
        println!("{}; not polling", UpdateError::NoTrust);
        return Ok(());
    }
    let interval = Duration::from_secs(cfg.poll_interval_s.unwrap_or(DEFAULT_POLL_INTERVAL_S).max(60));
    let mut first = true;
    loop {
        if !once {
            let wait = cairn_updater::rollout::poll_delay(interval, first, random_unit());
            println!("next update check of {repository} in {} s", wait.as_secs());
            std::thread::sleep(wait);
        }
        first = false;
        match poll_once(sys, &repository, policy, progress) {
            Ok(Polled::Nothing(why)) => println!("{why}"),
            Ok(Polled::Installed { version, slot, decision, deadline }) => {
                println!("installed {version} into slot {slot}");
                if let Decision::Operator = decision {
                    println!("reboot policy \"confirm\": `cairnctl update reboot` boots it");
                    if once {
                        return Ok(());
                    }
                    continue;
                }
                let restart = restart_into(sys, &slot);
                let mut said = None;
                loop {
                    let now = cairn_updater::tuf::time::now();
                    let moment = decide_moment(policy, now, deadline, restart, confirmation(), batch(&cfg));
                    if said != Some(moment) {
                        println!("{}", describe(moment, restart, &slot));
                        said = Some(moment);
                    }
                    let wait = match moment {
                        Moment::Now => break,
                        Moment::Operator => return Ok(()),
                        _ if once => return Ok(()),
                        // Asked again a minute on: the window, the deadline and the chain move.
                        Moment::At(t) => u64::try_from(t - now).unwrap_or(0).min(60),
                        // "Just confirmed" lasts half an hour: asked often enough not to miss it.
                        Moment::AfterConfirmation => 10,
                    };
                    std::thread::sleep(Duration::from_secs(wait.max(1)));
                }
                let c = confirmation();
                let since = c.margin_s.map(|m| format!("; the node confirmed {} s ago", c.window_s.saturating_sub(m))).unwrap_or_default();
                println!("rebooting into slot {slot} ({version}){since}");
                reboot().map_err(UpdateError::RebootRequest)?;
                return Ok(());
            }
            Err(e) if once => return Err(e),
            Err(e) => println!("update check failed: {}", crate::log::chain(&e)),
        }
        if once {
            return Ok(());
        }
    }
}

/// What the restart into `slot` costs: soft if PID 1 will start it so (same kernel and
/// initramfs, soft reboots on), with this node's measured downtimes where it has them.
fn restart_into(sys: &dyn Sys, slot: &str) -> Restart {
    use crate::eligibility::{cost, tracker};
    let report = tracker::read_report(Path::new(tracker::REPORT)).ok();
    let soft_on = config().map_or(true, |c| c.soft_reboot != Some(false));
    let (running, hash) = crate::soft_reboot::running();
    let to = cairn_updater::slot::Slot::parse(slot).ok();
    let soft = soft_on && matches!((running, to), (Some(r), Some(t)) if crate::soft_reboot::plan(sys, r, &hash, t).is_ok());
    if soft {
        let down_s = report.as_ref().and_then(|r| r.soft_reboots.last()).map_or(60, |s| s.down_ms.div_ceil(1000));
        Restart::Soft { down_s }
    } else {
        let down_s = report.as_ref().and_then(|r| r.reboot_cost.as_ref()).map_or(cost::ASSUMED_DOWN_S, |c| c.downtime_s);
        Restart::Full { down_s }
    }
}

/// The kernel's uptime, against the configured wait of a batched full reboot.
fn batch(cfg: &super::Config) -> Batch {
    let uptime_s = crate::eligibility::tracker::uptime().as_secs();
    Batch { uptime_s, kernel_after_s: cfg.kernel_after_days.map_or(KERNEL_AFTER_S, |d| d.saturating_mul(86_400)) }
}

/// The node's confirmation as the eligibility tracker last reported it.
fn confirmation() -> Confirmation {
    use crate::eligibility::tracker;
    let rules = tracker::config().rules;
    let margin_s = tracker::read_report(Path::new(tracker::REPORT)).ok().and_then(|r| r.confirmation_margin).map(|m| m.seconds);
    Confirmation { margin_s, window_s: rules.confirm_within_blocks * rules.block_time_s, earliest_s: rules.confirm_not_before_blocks * rules.block_time_s }
}

fn describe(m: Moment, restart: Restart, slot: &str) -> String {
    let how = match restart {
        Restart::Soft { down_s } => format!("a soft reboot (about {down_s} s of service, no OS uptime)"),
        Restart::Full { down_s } => format!("a full reboot (about {down_s} s down, the OS uptime lost)"),
    };
    match m {
        Moment::Now => format!("slot {slot} needs {how}: now"),
        Moment::At(t) => format!("slot {slot} needs {how}: at {} (reboot policy)", cairn_updater::tuf::time::format(t)),
        Moment::Operator => format!("slot {slot} needs {how}: when the operator runs `cairnctl update reboot`"),
        Moment::AfterConfirmation => format!("slot {slot} needs {how}: waiting for the node's next confirmation, so the restart costs none"),
    }
}
