//! Runs over time: `enrich run` on a schedule, backfills, change detection, cost limits, and a sync
//! killed again and again that still ends with every user in Heap, paying for few extra lookups.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use enrich_emulator::EmulatorConfig;
use serde_json::Value;
use support::{Workspace, row};

/// `enrich status main --history --format json`, parsed.
async fn history(workspace: &Workspace) -> Vec<Value> {
    let run = workspace.enrich(&["status", "main", "--history", "--format", "json"]).await;
    let json: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|_| panic!("{run}"));
    json["connections"][0]["runs"].as_array().cloned().unwrap_or_default()
}

fn spawn(workspace: &Workspace, args: &[&str]) -> Child {
    workspace.command(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("enrich starts")
}

fn terminate(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn run_keeps_the_schedule_and_a_run_with_nothing_due_costs_nothing() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace.write_roster(
        &(0..20).map(|i| row(&format!("u{i}"), &format!("p{i}@firm.io"), 0)).collect::<Vec<_>>(),
    );
    workspace.write_config_with("", "    schedule:\n      every: 3s\n");
    let mut runner = spawn(&workspace, &["run"]);

    while history(&workspace).await.len() < 2 {
        assert!(runner.try_wait().unwrap().is_none(), "enrich run stopped before its second run");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let second_lock = workspace.enrich(&["run"]).await;
    second_lock.failure();
    assert!(second_lock.stderr.contains("another `enrich run` is already running"), "{second_lock}");

    terminate(&runner);
    let status = tokio::task::spawn_blocking(move || runner.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0), "a graceful stop exits 0");

    let runs = history(&workspace).await;
    assert!(runs.iter().all(|run| run["kind"] == "Scheduled"), "{runs:#?}");
    let (first, second) = (&runs[0]["summary"], &runs[1]["summary"]);
    assert_eq!(first["lookups"], 20);
    assert_eq!((second["lookups"].as_u64(), second["written"].as_u64()), (Some(0), Some(0)), "{second}");
    assert_eq!(workspace.emulator.clearbit_requests().len(), 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_reaches_users_the_window_left_out() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace.write_roster(&[row("recent", "recent@firm.io", 1), row("older", "older@firm.io", 10)]);
    workspace.enrich(&["sync", "main"]).await.success();
    assert!(
        !workspace.emulator.heap_users().contains_key("older"),
        "10 days ago is outside the 7-day window"
    );

    let backfill = workspace.enrich(&["backfill", "main", "--since", "30d"]).await;
    backfill.success();
    assert!(backfill.stdout.contains("backfill of users seen since"), "{backfill}");
    assert_eq!(backfill.figure("lookups"), 1, "the recent user was checked already");
    assert!(workspace.emulator.heap_users().contains_key("older"));

    let by_date = workspace.enrich(&["backfill", "main", "--since", "2020-01-01"]).await;
    by_date.success();
    let bad = workspace.enrich(&["backfill", "main", "--since", "last tuesday"]).await;
    assert_eq!(bad.code, Some(2), "{bad}");
    assert!(bad.stderr.contains("expected a duration such as 30d"), "{bad}");

    let kinds: Vec<Value> = history(&workspace).await.iter().map(|run| run["kind"].clone()).collect();
    assert_eq!(kinds[0], "Manual");
    assert!(kinds[1]["Backfill"]["since"].is_string(), "{kinds:?}");
    let text = workspace.enrich(&["status", "main", "--history"]).await;
    assert_eq!(text.stdout.matches("figures").count(), 3, "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn max_lookups_per_run_spreads_the_cost_over_runs() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace.write_roster(
        &(0..10).map(|i| row(&format!("u{i}"), &format!("p{i}@firm.io"), 0)).collect::<Vec<_>>(),
    );
    workspace.write_config_with("", "    schedule:\n      max_lookups_per_run: 4\n");
    let first = workspace.enrich(&["sync", "main"]).await;
    first.success();
    assert_eq!((first.figure("lookups"), first.figure("deferred by the limit")), (4, 6));
    let second = workspace.enrich(&["sync", "main"]).await;
    assert_eq!(second.figure("lookups"), 4);
    let third = workspace.enrich(&["sync", "main"]).await;
    assert_eq!(third.figure("lookups"), 2);
    assert_eq!(workspace.emulator.heap_users().len(), 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_syncs_resume_without_paying_twice() {
    const USERS: usize = 600;
    let workspace =
        Workspace::start(EmulatorConfig { latency: Duration::from_millis(20), ..EmulatorConfig::default() })
            .await;
    let rows: Vec<_> =
        (0..USERS).map(|i| row(&format!("u{i}"), &format!("person{i}@firm{}.io", i % 40), 0)).collect();
    workspace.write_roster(&rows);

    // Each run is killed once it has made that many more lookups: an event, not a guess at how fast a
    // loaded machine starts the process.
    let kills = [60, 120, 90];
    for lookups in kills {
        let mut child = spawn(&workspace, &["sync", "main"]);
        let target = workspace.emulator.clearbit_requests_received() + lookups;
        while workspace.emulator.clearbit_requests_received() < target && child.try_wait().unwrap().is_none()
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        child.kill().unwrap(); // SIGKILL: no chance to clean up
        child.wait().unwrap();
    }
    let lookups_before_last = workspace.emulator.clearbit_requests().len();
    let last = workspace.enrich(&["sync", "main"]).await;
    last.success();

    let heap = workspace.emulator.heap_users();
    let missing: Vec<_> =
        rows.iter().filter(|row| !heap.contains_key(&row.identity)).map(|row| &row.identity).collect();
    assert!(missing.is_empty(), "every due user ends in Heap; missing {missing:?}");
    // In flight at a kill: up to max_in_flight (4 × max_concurrency 5) lookups, plus checks that
    // arrived within the state store's 100 ms flush interval (5 concurrent / 20 ms ≈ 25).
    let per_kill = 20 + 25;
    let lookups = workspace.emulator.clearbit_requests().len();
    let bound = USERS + kills.len() * per_kill;
    println!(
        "kill-and-resume: {lookups} lookups for {USERS} distinct emails after {} SIGKILLs \
         ({lookups_before_last} before the last run; bound {bound}); the last run resumed {} checks",
        kills.len(),
        last.figure("resumed without lookup")
    );
    assert!(lookups <= bound, "{lookups} lookups exceed {bound}");
    assert!(lookups_before_last > 0, "the killed runs did work");
}
