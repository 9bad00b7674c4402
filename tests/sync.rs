//! `enrich sync` end to end: the real binary against the emulated Clearbit and Heap, configured only
//! through the config file a user writes.

mod support;

use std::collections::BTreeSet;

use enrich_emulator::{EmulatorConfig, Scripted};
use serde_json::Value;
use support::{KEY, Workspace, row};

#[tokio::test(flavor = "multi_thread")]
async fn enriches_users_seen_this_week_once_and_then_is_connected() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    let mut rows = vec![
        row("chris", "bchris@calvinklein.com", 1),
        row("alex", "alex@alexmaccaw.com", 2),
        row("alex-again", "Alex@AlexMacCaw.com", 3), // shares alex's email: one lookup
        row("stale", "stale.user@acme-industries.com", 9),
        row("no-email", "", 1),
        row("malformed", "not-an-email", 1),
        row("role", "info@acme-industries.com", 1), // Clearbit answers 422
    ];
    rows.extend(
        (0..40).map(|i| row(&format!("user-{i}"), &format!("person{i}@company{}.com", i % 7), i % 6)),
    );
    workspace.write_roster(&rows);

    // Traced, so that the key's absence is checked in every log line of every crate.
    let first = workspace.enrich_with(&["sync", "main"], KEY, Some("trace")).await;
    first.success();

    let asked: Vec<String> = workspace.emulator.clearbit_requests().into_iter().map(|r| r.email).collect();
    let distinct: BTreeSet<&String> = asked.iter().collect();
    assert_eq!(asked.len(), distinct.len(), "one lookup per email: {asked:?}");
    assert_eq!(asked.len(), 40 + 3, "40 generated users, chris, alex and the role mailbox");
    assert!(!asked.iter().any(|email| email.starts_with("stale")), "a user seen 9 days ago is not due");
    assert!(
        workspace
            .emulator
            .clearbit_requests()
            .iter()
            .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {KEY}"))),
        "every lookup carries the secret key"
    );
    assert_eq!(first.figure("users read"), rows.len() as u64);
    assert_eq!(first.figure("lookups"), 43);
    assert_eq!(first.figure("invalid"), 1);

    let requests = workspace.emulator.heap_requests();
    assert!(requests.iter().all(|request| request.users.len() <= 1000 && request.app_id == support::APP_ID));
    let heap = workspace.emulator.heap_users();
    let chris = &heap["chris"];
    assert_eq!(chris["Company Website URL"], Value::from("http://calvinklein.us"));
    assert!(chris.contains_key("Clearbit: Date Last Checked"));
    assert_eq!(heap["alex"], heap["alex-again"]);
    assert!(!heap.contains_key("stale") && !heap.contains_key("no-email") && !heap.contains_key("role"));
    for (identity, properties) in &heap {
        for (name, value) in properties {
            assert!(!name.eq_ignore_ascii_case("id"), "{identity} has an `id` property");
            match value {
                Value::Number(_) => {}
                Value::String(text) => assert!(text.chars().count() < 1024, "{identity}.{name} is too long"),
                other => panic!("{identity}.{name} is {other}, which Heap refuses"),
            }
        }
    }
    let written = first.figure("written");
    assert_eq!(written, heap.len() as u64);
    assert_eq!(written, first.figure("found") + first.figure("not found"));

    let second = workspace.enrich(&["sync", "main"]).await;
    second.success();
    assert_eq!(second.figure("lookups"), 0);
    assert_eq!(workspace.emulator.clearbit_requests().len(), 43, "the second sync asks Clearbit nothing");

    let status = workspace.enrich(&["status"]).await;
    status.success();
    assert!(status.stdout.starts_with("main: Connected"), "{status}");
    let json = workspace.enrich(&["status", "main", "--format", "json"]).await;
    let json: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(json["connections"][0]["status"], "Connected");

    for run in [&first, &second, &status] {
        assert!(!run.stdout.contains(KEY) && !run.stderr.contains(KEY), "the key leaked:\n{run}");
    }
    let state = workspace.state_bytes();
    assert!(
        !state.windows(KEY.len()).any(|window| window == KEY.as_bytes()),
        "the key is in the state folder"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn waits_for_data_until_a_first_user_is_found() {
    let workspace =
        Workspace::start(EmulatorConfig { not_found_share: 1.0, ..EmulatorConfig::default() }).await;
    workspace.write_roster(&[row("u1", "nobody@unknown-firm.com", 0)]);
    let before = workspace.enrich(&["status"]).await;
    assert!(before.stdout.starts_with("main: Waiting For Data"), "{before}");
    workspace.enrich(&["sync", "main"]).await.success();
    let after = workspace.enrich(&["status"]).await;
    assert!(after.stdout.starts_with("main: Waiting For Data"), "nothing found yet: {after}");
    let heap = workspace.emulator.heap_users();
    assert_eq!(
        heap["u1"].keys().collect::<Vec<_>>(),
        vec!["Clearbit: Date Last Checked", "Clearbit: Match"],
        "checked, nothing found"
    );
    assert_eq!(heap["u1"]["Clearbit: Match"], "not found");
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_in_batches_of_at_most_a_thousand() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    let rows: Vec<_> =
        (0..2300).map(|i| row(&format!("u{i}"), &format!("p{i}@firm{}.io", i % 50), 0)).collect();
    workspace.write_roster(&rows);
    workspace.enrich(&["sync", "main"]).await.success();
    let sizes: Vec<usize> =
        workspace.emulator.heap_requests().iter().map(|request| request.users.len()).collect();
    assert!(sizes.iter().all(|&size| size <= 1000), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 2300);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_heap_finds_too_large_is_split_until_it_fits() {
    let limit = 40 * 1024;
    let workspace =
        Workspace::start(EmulatorConfig { heap_body_limit: limit, ..EmulatorConfig::default() }).await;
    let rows: Vec<_> =
        (0..300).map(|i| row(&format!("u{i}"), &format!("p{i}@firm{}.io", i % 20), 0)).collect();
    workspace.write_roster(&rows);
    workspace.enrich(&["sync", "main"]).await.success();
    let requests = workspace.emulator.heap_requests();
    assert!(requests.len() > 1, "the batch of 300 was split");
    assert_eq!(workspace.emulator.heap_users().len(), 300);
    for request in requests {
        assert!(serde_json::to_vec(&request).unwrap().len() < limit, "every accepted request fits");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_key_stops_the_run_with_one_clear_line() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace.write_roster(&[row("u1", "a@firm.io", 0), row("u2", "b@firm.io", 0)]);
    let wrong = "sk_wrong_000000000000000000000000";
    let run = workspace.enrich_with(&["sync", "main"], wrong, Some("debug")).await;
    run.failure();
    let last = run.stderr.lines().last().unwrap();
    assert!(last.starts_with("error: main: ") && last.contains("401") && last.contains("api_key"), "{run}");
    assert!(!run.stderr.contains(wrong) && !run.stdout.contains(wrong), "the key leaked: {run}");
    assert!(workspace.emulator.heap_requests().is_empty());
    let status = workspace.enrich(&["status"]).await;
    assert!(status.stdout.starts_with("main: Error: "), "{status}");

    // With the right key the next run succeeds and the status recovers.
    workspace.enrich(&["sync", "main"]).await.success();
    let status = workspace.enrich(&["status"]).await;
    assert!(!status.stdout.contains("Error"), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn over_quota_stops_lookups_but_keeps_what_was_found() {
    let workspace = Workspace::start(EmulatorConfig { quota: Some(3), ..EmulatorConfig::default() }).await;
    let rows: Vec<_> = (0..20).map(|i| row(&format!("u{i}"), &format!("p{i}@firm.io"), 0)).collect();
    workspace.write_roster(&rows);
    workspace.write_config("      max_concurrency: 1");
    let run = workspace.enrich(&["sync", "main"]).await;
    run.failure();
    assert!(run.stderr.contains("402"), "{run}");
    assert_eq!(
        workspace.emulator.heap_users().len(),
        3,
        "the three looked up before the quota ran out are written"
    );
    assert!(workspace.emulator.clearbit_requests().len() < 20, "lookups stop at the first 402");
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_answers_are_retried_and_pending_ones_wait_for_the_next_run() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace.emulator.script_clearbit("busy@firm.io", vec![Scripted::Status(429), Scripted::Status(503)]);
    workspace.emulator.script_clearbit("limited@firm.io", vec![Scripted::RateLimit400]);
    workspace.emulator.script_clearbit("queued@firm.io", vec![Scripted::Status(202); 10]);
    workspace.write_roster(&[
        row("busy", "busy@firm.io", 0),
        row("limited", "limited@firm.io", 0),
        row("queued", "queued@firm.io", 0),
    ]);
    workspace.write_config("      pending_retries: 2");
    let run = workspace.enrich(&["sync", "main"]).await;
    run.success();
    assert_eq!(run.figure("pending"), 1);
    let heap = workspace.emulator.heap_users();
    assert!(heap.contains_key("busy") && heap.contains_key("limited") && !heap.contains_key("queued"));
    let asked =
        |email: &str| workspace.emulator.clearbit_requests().iter().filter(|r| r.email == email).count();
    assert_eq!(asked("busy@firm.io"), 3);
    assert_eq!(asked("queued@firm.io"), 3, "asked, then re-asked twice");

    // The pending user is asked again at the next run; the others are not.
    let next = workspace.enrich(&["sync", "main"]).await;
    next.success();
    assert_eq!(next.figure("lookups"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_heap_refuses_is_failed_and_retried_next_run() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace.emulator.script_heap(vec![Scripted::Body(400, "invalid app_id".into())]);
    workspace.write_roster(&[row("u1", "a@firm.io", 0)]);
    let run = workspace.enrich(&["sync", "main"]).await;
    run.failure();
    assert_eq!(run.figure("failed"), 1);
    assert!(run.stderr.contains("invalid app_id"), "Heap's answer is shown: {run}");
    let next = workspace.enrich(&["sync", "main"]).await;
    next.success();
    assert_eq!(next.figure("written"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_roster_rows_are_reported_by_line_and_the_rest_is_read() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    let today = chrono::Utc::now().format("%Y-%m-%d");
    let csv = format!(
        "identity,last_seen,email\nu1,{today},a@firm.io\nu2,yesterday-ish,b@firm.io\n,{today},c@firm.io\nu4,{today}\n"
    );
    std::fs::write(workspace.path("users.csv"), csv).unwrap();
    let run = workspace.enrich(&["sync", "main"]).await;
    run.success();
    assert_eq!(run.figure("bad rows skipped"), 3);
    for line in ["users.csv:3", "users.csv:4", "users.csv:5"] {
        assert!(run.stderr.contains(line), "{line} is named: {run}");
    }
    assert_eq!(workspace.emulator.heap_users().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_company_only_connection_writes_no_personal_data() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace
        .write_roster(&[row("chris", "bchris@calvinklein.com", 0), row("p", "someone.else@uber.com", 0)]);
    workspace.write_config("      properties: { include: [company.*] }");
    workspace.enrich(&["sync", "main"]).await.success();
    let heap = workspace.emulator.heap_users();
    assert_eq!(heap["chris"]["Company Website URL"], "http://calvinklein.us");
    for (identity, properties) in &heap {
        let personal: Vec<&String> = properties.keys().filter(|name| name.starts_with("Person ")).collect();
        assert!(personal.is_empty(), "{identity} got {personal:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forgotten_person_is_removed_and_never_looked_up_again() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace.write_roster(&[row("u1", "Private.Person@firm.io", 0), row("u2", "other@firm.io", 0)]);
    workspace.write_config_with("", "    schedule: { refresh: 1ms }\n");
    workspace.enrich(&["sync", "main"]).await.success();
    let forget = workspace.enrich(&["forget", "main", "private.person@FIRM.io"]).await;
    forget.success();
    assert!(forget.stdout.contains("1 user removed from the state (u1)"), "{forget}");
    assert!(forget.stdout.contains("user_deletion"), "says what to do on Heap's side: {forget}");

    let next = workspace.enrich(&["sync", "main"]).await;
    next.success();
    assert_eq!(next.figure("skipped by the source"), 1);
    let asked: Vec<String> = workspace.emulator.clearbit_requests().into_iter().map(|r| r.email).collect();
    assert_eq!(
        asked.iter().filter(|email| email.as_str() == "private.person@firm.io").count(),
        1,
        "{asked:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_mask_emails_unless_asked_and_the_key_never_shows() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace.emulator.script_clearbit("private.person@firm.io", vec![Scripted::Status(500); 10]);
    workspace.write_roster(&[row("u1", "private.person@firm.io", 0)]);
    workspace.write_config("      max_retries: 1");
    let masked = workspace.enrich(&["sync", "main"]).await;
    assert!(masked.stderr.contains("p***@firm.io") && !masked.stderr.contains("private.person"), "{masked}");
    let full = workspace.enrich(&["sync", "main", "--log-pii"]).await;
    assert!(full.stderr.contains("private.person@firm.io"), "{full}");
    // RUST_LOG works as ENRICH_LOG does; at trace level every crate logs, and still no key.
    let mut command = workspace.command(&["sync", "main"]);
    command.env("RUST_LOG", "trace");
    let traced =
        support::Run::from(tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap());
    assert!(traced.stderr.contains("TRACE"), "trace logging is on: {traced}");
    assert!(!traced.stderr.contains(KEY) && !traced.stdout.contains(KEY), "the key leaked");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_readable_config_with_a_key_written_out_gets_a_warning() {
    use std::os::unix::fs::PermissionsExt;

    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace.write_roster(&[]);
    let path = workspace.path("enrich.yaml");
    let text = std::fs::read_to_string(&path).unwrap().replace("${CLEARBIT_API_KEY}", KEY);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = workspace.enrich(&["validate"]).await;
    run.success();
    assert!(run.stderr.contains("readable by other users") && run.stderr.contains("source.api_key"), "{run}");
    assert!(!run.stderr.contains(KEY));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let private = workspace.enrich(&["validate"]).await;
    assert!(!private.stderr.contains("readable by other users"), "{private}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_later_is_reported_exactly_and_loses_nothing_recorded_before() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    let rows = [row("u1", "a@firm.io", 0), row("u2", "b@firm.io", 0)];
    workspace.write_roster(&rows);
    workspace.enrich(&["sync", "main"]).await.success();
    let config = std::fs::read_to_string(workspace.path("enrich.yaml")).unwrap();

    std::fs::write(workspace.path("enrich.yaml"), config.replace("    sink:", "    sink: [unclosed"))
        .unwrap();
    let broken_yaml = workspace.enrich(&["sync", "main"]).await;
    broken_yaml.failure();
    assert!(
        broken_yaml.stderr.contains("error: enrich.yaml:") && broken_yaml.stderr.contains("invalid YAML"),
        "{broken_yaml}"
    );
    std::fs::write(workspace.path("enrich.yaml"), &config).unwrap();

    std::fs::write(workspace.path("users.csv"), "identity,email\nu1,a@firm.io\n").unwrap();
    let no_column = workspace.enrich(&["sync", "main"]).await;
    no_column.failure();
    assert!(no_column.stderr.contains("last_seen"), "names the missing column: {no_column}");
    let status = workspace.enrich(&["status"]).await;
    assert!(status.stdout.starts_with("main: Error: users.csv"), "{status}");

    workspace.write_roster(&rows);
    let again = workspace.enrich(&["sync", "main"]).await;
    again.success();
    assert_eq!(again.figure("lookups"), 0, "both users are still known as checked");
    assert!(workspace.enrich(&["status"]).await.stdout.starts_with("main: Connected"));
}
