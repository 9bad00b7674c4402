//! People Data Labs end to end: a batch source asks each email once, in bulk requests of at most 100
//! people, writes human-readable properties to Heap and never a free plan's placeholder; an account
//! out of credits stops the run at the first answer and records nobody.

mod support;

use std::collections::BTreeSet;

use enrich_emulator::EmulatorConfig;
use serde_json::Value;
use support::{CSV_USERS, Workspace, row};

const PDL_KEY: &str = "pdl_e2e_0123456789abcdef0123456789abcdef0123456789abcdef0123456789";

/// User `n`'s email: users 230 to 249 share the email of users 0 to 19.
fn email(n: usize) -> String {
    format!("person{}@company{}.com", n % 230, n % 230 % 17)
}

/// 250 users and 230 distinct emails.
fn roster(workspace: &Workspace) -> BTreeSet<String> {
    let rows: Vec<_> = (0..250).map(|n| row(&format!("user-{n}"), &email(n), 0)).collect();
    workspace.write_roster(&rows);
    (0..250).map(email).collect()
}

async fn start(config: EmulatorConfig) -> Workspace {
    let workspace = Workspace::start(EmulatorConfig { pdl_key: PDL_KEY.into(), ..config }).await;
    let source = format!(
        "      type: people_data_labs\n      api_key: ${{PDL_API_KEY}}\n      base_url: {}\n      \
         retry_delay: 5ms",
        workspace.emulator.pdl_url()
    );
    workspace.write_config_sections(&source, CSV_USERS, "");
    workspace
}

async fn sync(workspace: &Workspace) -> support::Run {
    let mut command = workspace.command(&["sync", "main"]);
    command.env("PDL_API_KEY", PDL_KEY);
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap();
    support::Run::from(output)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_asks_each_email_once_in_bulk_and_writes_no_placeholder() {
    let config = EmulatorConfig { pdl_free_plan: true, pdl_credits: Some(1000), ..EmulatorConfig::default() };
    let workspace = start(config).await;
    let emails = roster(&workspace);
    let first = sync(&workspace).await;
    first.success();

    let requests = workspace.emulator.pdl_requests();
    let sizes: Vec<usize> = requests.iter().map(|request| request.emails.len()).collect();
    assert_eq!(requests.len(), emails.len().div_ceil(100), "⌈{} / 100⌉ requests: {sizes:?}", emails.len());
    assert!(sizes.iter().all(|size| *size <= 100), "{sizes:?}");
    assert!(requests.iter().all(|request| request.path == "/v5/person/bulk" && request.authorized));
    assert!(requests.iter().all(|request| !request.key_in_url), "the key never goes in the URL");
    let mut asked: Vec<String> = requests.iter().flat_map(|request| request.emails.clone()).collect();
    asked.sort();
    assert_eq!(asked, emails.iter().cloned().collect::<Vec<_>>(), "each email asked once");
    assert_eq!(first.figure("lookups"), emails.len() as u64, "{first}");

    let heap = workspace.emulator.heap_users();
    assert_eq!(heap.len(), 250);
    let found: Vec<_> = heap.values().filter(|user| user.contains_key("Company Name")).collect();
    assert!(found.len() > 150, "most people are found: {}", found.len());
    for user in &found {
        assert!(user.contains_key("Person Job Title") && user.contains_key("People Data Labs: Likelihood"));
        assert!(
            ["Person City", "Person Location", "Person Work Email"]
                .iter()
                .all(|name| !user.contains_key(*name)),
            "a free plan's placeholder was written: {user:?}"
        );
    }
    for user in heap.values() {
        assert!(user.contains_key("People Data Labs: Date Last Checked"));
        assert!(
            user.values()
                .all(|value| !matches!(value, Value::Bool(_))
                    && !matches!(value.as_str(), Some("true" | "false"))),
            "{user:?}"
        );
    }
    let matches: BTreeSet<&str> =
        heap.values().filter_map(|user| user["People Data Labs: Match"].as_str()).collect();
    assert!(matches.contains("person and company") && matches.contains("not found"), "{matches:?}");

    let found_emails: BTreeSet<String> = (0..250)
        .filter(|n| heap[&format!("user-{n}")]["People Data Labs: Match"] != "not found")
        .map(email)
        .collect();
    assert_eq!(first.figure("credits left"), 1000 - found_emails.len() as u64, "one credit a person found");

    let second = sync(&workspace).await;
    second.success();
    assert_eq!(workspace.emulator.pdl_requests().len(), requests.len(), "a second sync asks nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_credits_stops_at_the_first_answer_and_records_nobody() {
    let workspace = start(EmulatorConfig { pdl_credits: Some(0), ..EmulatorConfig::default() }).await;
    let emails = roster(&workspace);
    let run = sync(&workspace).await;
    run.failure();
    assert!(run.stdout.contains("out of credits") || run.stderr.contains("out of credits"), "{run}");
    let requests = workspace.emulator.pdl_requests();
    assert_eq!(requests.iter().map(|request| request.status).collect::<Vec<_>>(), [402]);
    assert!(workspace.emulator.heap_users().is_empty());

    // Nobody was recorded: once credits are bought, every email is asked, each once.
    workspace.emulator.set_pdl_credits(None);
    sync(&workspace).await.success();
    let asked: usize =
        workspace.emulator.pdl_requests()[1..].iter().map(|request| request.emails.len()).sum();
    assert_eq!(asked, emails.len());
    assert_eq!(workspace.emulator.heap_users().len(), 250);
}
