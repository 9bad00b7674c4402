//! A dry run counts the lookups of its plan as they are read from disk and keeps none: its peak
//! memory does not grow with the users due.

mod support;

use std::process::Stdio;
use std::time::Duration;

use enrich_emulator::EmulatorConfig;
use support::{Workspace, row};

/// Due users, each with an email of their own (one lookup each), at a few hundred companies.
fn write_due_users(workspace: &Workspace, users: usize) {
    let rows: Vec<_> =
        (0..users).map(|n| row(&format!("u{n}"), &format!("person{n}@firm{}.io", n % 500), 1)).collect();
    workspace.write_roster(&rows);
}

/// `enrich sync main --dry-run` over `users` due users (`written` as the preview writes the number):
/// its peak resident memory (`VmHWM`, sampled
/// until it exits), in bytes.
fn dry_run_peak(workspace: &Workspace, users: usize, written: &str) -> u64 {
    write_due_users(workspace, users);
    let mut child = workspace
        .command(&["sync", "main", "--dry-run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut peak = 0;
    let status = loop {
        peak = peak.max(peak_rss_of(child.id()).unwrap_or(0));
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert!(status.success(), "{out}");
    let keys = format!("lookup keys     {written} distinct");
    assert!(out.contains(&keys), "every due user's key is counted: {out}");
    peak
}

fn peak_rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kilobytes = status.lines().find_map(|line| line.strip_prefix("VmHWM:"))?;
    Some(kilobytes.trim().trim_end_matches("kB").trim().parse::<u64>().ok()? * 1024)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_over_four_times_the_due_users_takes_no_more_memory() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    // Both past the plan's 4 MiB in-memory sort budget, so that both plan through files. Keeping
    // every key (as the plan once did) took about 90 bytes each: 11 MB more for the larger roster.
    let smaller = dry_run_peak(&workspace, 40_000, "40,000");
    let larger = dry_run_peak(&workspace, 160_000, "160,000");
    let grown = larger.saturating_sub(smaller);
    assert!(
        grown < 4 << 20,
        "a dry run over 160,000 due users peaked at {:.1} MB, over 40,000 at {:.1} MB: {:.1} MB more",
        larger as f64 / 1e6,
        smaller as f64 / 1e6,
        grown as f64 / 1e6
    );
    assert!(workspace.emulator.clearbit_requests().is_empty(), "a dry run looks nothing up");
}
