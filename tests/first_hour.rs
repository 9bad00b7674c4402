//! A new user's first hour, end to end against the emulator: what a sync costs before it spends,
//! then the sync, its report and its status.

mod support;

use enrich_emulator::EmulatorConfig;
use support::{Workspace, row};

/// Two users share a mailbox, one is at a free-mail domain, one was seen before the window, one has
/// no email: 4 users due, 3 distinct lookups (1 at a free-mail domain, 1 shared by 2 users).
fn roster(workspace: &Workspace) {
    workspace.write_roster(&[
        row("u1", "team@acme-industries.com", 1),
        row("u2", "team@acme-industries.com", 2),
        row("u3", "jane.doe@gmail.com", 1),
        row("u4", "ana@northwind.io", 3),
        row("old", "old@northwind.io", 30),
        row("anonymous", "", 1),
    ]);
}

#[tokio::test(flavor = "multi_thread")]
async fn check_and_dry_runs_say_what_a_sync_costs_without_spending() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    roster(&workspace);
    let check = workspace.enrich(&["check", "main"]).await;
    check.success();
    assert!(
        check.stdout.contains("✓ a sync now: ≈ 3 billed lookups for 4 users, ≈ 0 s at 1000000/min"),
        "{check}"
    );
    assert!(
        check.stdout.contains("lookup keys     3 distinct: 1 at free-mail domains, 1 shared by 2 users"),
        "{check}"
    );
    assert_eq!(workspace.emulator.clearbit_requests().len(), 1, "only check's own lookup: {check}");

    for args in [&["sync", "main", "--dry-run"][..], &["backfill", "main", "--since", "60d", "--dry-run"]] {
        let dry = workspace.enrich(args).await;
        dry.success();
        assert!(dry.stdout.contains("nothing was looked up or written"), "{dry}");
        assert!(dry.stdout.contains("billed lookups  ≈ "), "{dry}");
    }
    let dry = workspace.enrich(&["sync", "main", "--dry-run"]).await;
    assert!(
        dry.stdout.contains("users due       4 of 6 read (1 outside the window, 1 without email)"),
        "{dry}"
    );
    let backfill = workspace.enrich(&["backfill", "main", "--since", "60d", "--dry-run"]).await;
    assert!(backfill.stdout.contains("users due       5 of 6 read (1 without email)"), "{backfill}");
    assert!(backfill.stdout.contains("billed lookups  ≈ 4 "), "{backfill}");
    assert_eq!(workspace.emulator.clearbit_requests().len(), 1, "dry runs look nothing up");
    assert!(workspace.emulator.heap_requests().is_empty(), "dry runs write nothing");
    assert!(!workspace.path(".enrich/main").exists(), "dry runs create no state");

    let sync = workspace.enrich(&["sync", "main"]).await;
    sync.success();
    assert_eq!(sync.figure("looked up"), 3, "the dry run's plan is the run's: {sync}");
    let after = workspace.enrich(&["sync", "main", "--dry-run"]).await;
    assert!(after.stdout.contains("users due       0 of 6 read"), "checked users are not due: {after}");
    assert!(after.stdout.contains("4 checked recently"), "{after}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_costly_backfill_asks_first_on_a_terminal() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    roster(&workspace);
    let declined = workspace.on_a_terminal("backfill main --since 60d --confirm-over 2", "no").await;
    declined.failure();
    assert!(declined.stdout.contains("this backfill costs more than 2 lookups"), "{declined}");
    assert!(declined.stdout.contains("billed lookups  ≈ 4"), "shows the cost: {declined}");
    assert!(workspace.emulator.clearbit_requests().is_empty(), "a no spends nothing");

    let under = workspace.on_a_terminal("backfill main --since 60d --confirm-over 4", "").await;
    under.success();
    assert!(!under.stdout.contains("Type yes"), "4 lookups are not over 4: {under}");
    assert_eq!(workspace.emulator.clearbit_requests().len(), 4);
}
