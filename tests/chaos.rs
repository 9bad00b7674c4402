//! The chaos test: Clearbit and Heap failing in every way they do, one kind at a time and all at once.
//! Every due user must end in Heap or be recorded with its reason, nobody may be written twice with
//! different data, and retries must stay bounded.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use enrich_emulator::{EmulatorConfig, Faults};
use serde_json::Value;
use support::{Workspace, row};

const USERS: usize = 150;
const MAX_RETRIES: usize = 5;

fn only(kind: &str, share: f64) -> Faults {
    let mut faults = Faults { slow_delay: Duration::from_millis(200), ..Faults::default() };
    match kind {
        "429" => faults.too_many_requests = share,
        "5xx" => faults.server_error = share,
        "queued" => faults.queued = share,
        "slow" => faults.slow = share,
        "drop" => faults.dropped = share,
        "malformed" => faults.malformed = share,
        other => panic!("no fault {other}"),
    }
    faults
}

async fn survive(label: &str, clearbit_faults: Faults, heap_faults: Faults) {
    // A small body limit makes Heap refuse big requests (413), so the sink splits a run's writes into
    // many requests, each of which can meet a fault.
    let heap_body_limit = 64 * 1024;
    let config = EmulatorConfig {
        clearbit_faults,
        heap_faults,
        seed: 7,
        heap_body_limit,
        ..EmulatorConfig::default()
    };
    let workspace = Workspace::start(config).await;
    // 100 distinct emails, some shared by several users.
    let rows: Vec<_> =
        (0..USERS).map(|i| row(&format!("u{i}"), &format!("p{}@firm{}.io", i % 100, i % 9), 0)).collect();
    workspace.write_roster(&rows);
    workspace.write_config(&format!("      max_retries: {MAX_RETRIES}\n      pending_retries: 4"));

    let first = workspace.enrich(&["sync", "main"]).await;
    assert!(first.code == Some(0) || first.code == Some(1), "{first}");
    let accounted =
        first.figure("written") + first.figure("failed") + first.figure("pending") + first.figure("invalid");
    assert_eq!(
        accounted,
        first.figure("due"),
        "{label}: every due user is written or recorded with a reason:\n{first}"
    );

    let mut runs = 1;
    while workspace.emulator.heap_users().len() < USERS {
        assert!(runs < 6, "{label}: users still missing after {runs} runs");
        workspace.enrich(&["sync", "main"]).await;
        runs += 1;
    }

    // The same property never gets two values for one user.
    let mut seen: BTreeMap<(String, String), Value> = BTreeMap::new();
    for request in workspace.emulator.heap_requests() {
        for user in request.users {
            for (name, value) in user.properties {
                if name == "Clearbit: Date Last Checked" {
                    continue;
                }
                let previous =
                    seen.entry((user.identity.clone(), name.clone())).or_insert_with(|| value.clone());
                assert_eq!(*previous, value, "{label}: {} got two values for {name}", user.identity);
            }
        }
    }
    let lookups = workspace.emulator.clearbit_requests().len();
    let bound = 100 * (1 + MAX_RETRIES);
    let faults = workspace.emulator.fault_counts();
    println!(
        "chaos {label}: {USERS} users, 100 emails, {lookups} lookups (bound {bound}), {} Clearbit and {} Heap \
         faults injected, {runs} run(s) until every user was in Heap",
        faults.clearbit.total(),
        faults.heap.total()
    );
    assert!(lookups <= bound, "{label}: {lookups} lookups for 100 emails");
    assert!(faults.clearbit.total() + faults.heap.total() > 0, "{label}: no fault was injected");
}

#[tokio::test(flavor = "multi_thread")]
async fn clearbit_failing_one_way_at_a_time() {
    for kind in ["429", "5xx", "queued", "slow", "drop", "malformed"] {
        survive(&format!("Clearbit {kind}=0.2"), only(kind, 0.2), Faults::default()).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn heap_failing_one_way_at_a_time() {
    // A malformed 200 from Heap would mean Heap took the write: not a failure to survive.
    for kind in ["429", "5xx", "slow", "drop"] {
        survive(&format!("Heap {kind}=0.2"), Faults::default(), only(kind, 0.2)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn both_failing_every_way_at_once() {
    let clearbit = Faults {
        too_many_requests: 0.1,
        server_error: 0.1,
        queued: 0.1,
        slow: 0.05,
        slow_delay: Duration::from_millis(200),
        dropped: 0.1,
        malformed: 0.1,
    };
    let heap = Faults {
        too_many_requests: 0.1,
        server_error: 0.1,
        slow: 0.05,
        slow_delay: Duration::from_millis(200),
        dropped: 0.1,
        ..Faults::default()
    };
    survive("everything", clearbit, heap).await;
}
