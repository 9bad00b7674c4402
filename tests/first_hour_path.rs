//! A new user's path through the README, in its order, end to end against the emulator: `enrich init`
//! answered on standard input, then validate, check with the cost preview, a dry run, the sync (with
//! `enrich status` during it), the report with its view over time, and the status after.

mod support;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use chrono::Utc;
use enrich_emulator::EmulatorConfig;
use support::{Run, Workspace};

/// A roster as a Heap export names its columns, with dates as `YYYY-MM-DD HH:MM`: two users share a
/// mailbox, one is at a free-mail domain, one was seen before the backfill window.
fn write_heap_export(workspace: &Workspace) {
    let seen = |days: i64| (Utc::now() - chrono::Duration::days(days)).format("%Y-%m-%d %H:%M").to_string();
    let rows = [
        ("u1", "team@acme-industries.com", 1),
        ("u2", "team@acme-industries.com", 2),
        ("u3", "jane.doe@gmail.com", 1),
        ("u4", "ana@northwind.io", 3),
        ("old", "old@northwind.io", 30),
    ];
    let mut csv = String::from("User ID,Identity,Email Address,Last Seen,Plan\n");
    for (index, (identity, email, days)) in rows.into_iter().enumerate() {
        csv.push_str(&format!("{index},{identity},{email},{},pro\n", seen(days)));
    }
    std::fs::write(workspace.path("users.csv"), csv).unwrap();
}

/// `enrich init` with the emulator's addresses, given `answers` on standard input, with the key in the
/// environment (`with_key`) or not.
async fn init(workspace: &Workspace, with_key: bool, answers: &str) -> Run {
    let (clearbit, heap) = (workspace.emulator.clearbit_url(), workspace.emulator.heap_url());
    let mut command = workspace.command(&["init", "--source-url", &clearbit, "--sink-url", &heap]);
    if !with_key {
        command.env_remove("CLEARBIT_API_KEY");
    }
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let answers = answers.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().unwrap();
        child.stdin.take().unwrap().write_all(answers.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    });
    Run::from(output.await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_path_from_init_to_report_and_status() {
    // Slow answers, so that `enrich status` sees the sync at work.
    let workspace =
        Workspace::start(EmulatorConfig { latency: Duration::from_millis(700), ..EmulatorConfig::default() })
            .await;
    std::fs::remove_file(workspace.path("enrich.yaml")).unwrap();
    write_heap_export(&workspace);

    // init: every question but the app id takes its default; the columns come from the header.
    let answers = "\n\n\n1234567890\n\n\n\n\n\n\n\n\n";
    let setup = init(&workspace, true, answers).await;
    setup.success();
    for asked in [
        "Heap app id",
        "Column of the email [Email Address]",
        "Column of when the user was last seen [Last Seen]",
    ] {
        assert!(setup.stderr.contains(asked), "asks {asked:?}: {setup}");
    }
    assert!(
        setup.stderr.contains("its columns: User ID, Identity, Email Address, Last Seen, Plan"),
        "{setup}"
    );
    assert!(setup.stdout.starts_with("enrich.yaml: written\nenrich.yaml: valid, 1 connection\n"), "{setup}");
    assert!(setup.stdout.contains("✓ a sync now: "), "init ends with check's cost preview: {setup}");
    let config = std::fs::read_to_string(workspace.path("enrich.yaml")).unwrap();
    for line in [
        "api_key: ${CLEARBIT_API_KEY}",
        "skip_free_email_domains: true",
        "app_id: \"1234567890\"",
        "email_property: \"Email Address\"",
        "identity_property: \"Identity\"",
        "last_seen_property: \"Last Seen\"",
    ] {
        assert!(config.contains(line), "{line:?} in:\n{config}");
    }
    assert!(!config.contains(support::KEY), "the key is never written:\n{config}");

    let again = init(&workspace, true, answers).await;
    again.failure();
    assert!(
        again.stderr.contains("enrich.yaml exists already; `enrich init --force` replaces it"),
        "{again}"
    );
    assert_eq!(std::fs::read_to_string(workspace.path("enrich.yaml")).unwrap(), config, "left as it was");

    let validate = workspace.enrich(&["validate"]).await;
    validate.success();
    assert!(
        validate.stdout.contains("main: users from users.csv → clearbit → heap app 1234567890"),
        "{validate}"
    );

    // The cost: 4 users in the window (one seen 30 days ago is not), the one at gmail.com skipped: 3
    // users due, at 2 distinct emails: 2 billed lookups.
    let check = workspace.enrich(&["check"]).await;
    check.success();
    let preview =
        check.stdout.lines().find(|line| line.contains("a sync now")).unwrap_or_else(|| panic!("{check}"));
    assert!(preview.contains("≈ 2 billed lookups for 3 users"), "{check}");
    let dry = workspace.enrich(&["sync", "--dry-run"]).await;
    dry.success();
    assert!(
        dry.stdout.contains("users due       3 of 5 read (1 outside the window, 1 skipped by the source"),
        "{dry}"
    );
    assert!(dry.stdout.contains("billed lookups  ≈ 2 "), "{dry}");
    let looked_up_before = workspace.emulator.clearbit_requests().len();
    assert_eq!(looked_up_before, 2, "init's check and check itself: one lookup each; the dry run none");

    let mut sync = workspace.command(&["sync"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let during = workspace.status_while_syncing(&mut sync, &["status"]).await;
    during.success();
    assert!(during.stdout.starts_with("main: Waiting For Data\n  syncing     since "), "{during}");
    let synced =
        Run::from(tokio::task::spawn_blocking(move || sync.wait_with_output()).await.unwrap().unwrap());
    synced.success();
    assert_eq!((synced.figure("lookups"), synced.figure("skipped by the source")), (2, 1), "{synced}");
    assert_eq!(synced.figure("written"), 3, "the skipped user gets no write: {synced}");
    assert_eq!(workspace.emulator.clearbit_requests().len(), looked_up_before + 2, "as the preview said");

    let report = workspace.enrich(&["report"]).await;
    report.success();
    let over_time = report.stdout.split("\nOver time: ").nth(1).unwrap_or_else(|| panic!("{report}"));
    let runs: Vec<&str> = over_time.lines().skip(2).collect();
    assert_eq!(runs.len(), 1, "{report}");
    let found = synced.figure("found");
    let checked = found + synced.figure("not found");
    let columns: Vec<&str> = runs[0].split_whitespace().skip(3).collect();
    let rate = format!("{:.1}%", found as f64 * 100.0 / checked as f64);
    assert_eq!(columns, ["sync", &found.to_string(), &checked.to_string(), &rate], "{report}");

    let after = workspace.enrich(&["status"]).await;
    after.success();
    assert!(after.stdout.starts_with("main: Connected\n  next run    due "), "{after}");
    assert!(after.stdout.contains(&format!("enriched    {found} users found")), "{after}");
    assert!(!after.stdout.contains("syncing"), "{after}");
}

#[tokio::test(flavor = "multi_thread")]
async fn init_without_the_key_in_the_environment_says_what_to_export() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    std::fs::remove_file(workspace.path("enrich.yaml")).unwrap();
    write_heap_export(&workspace);
    // A wrong answer is asked again, saying what fits.
    let setup = init(&workspace, false, "\n\n\n12ab\n1234567890\n\n\nEmail\n\n\n\n\n\n\n").await;
    setup.failure();
    assert!(setup.stderr.contains("12ab\n  digits only, such as 1234567890\nHeap app id"), "{setup}");
    assert!(
        setup.stderr.contains("Email\n  answer one of: User ID, Identity, Email Address, Last Seen, Plan\n"),
        "{setup}"
    );
    assert!(
        setup.stdout.ends_with(
            "enrich.yaml: written\nnext: export CLEARBIT_API_KEY=… (the key, never written in the file), then \
             `enrich validate` and `enrich check`\n"
        ),
        "{setup}"
    );
    assert!(workspace.emulator.clearbit_requests().is_empty(), "nothing checked without the key");
}

/// On a PostgreSQL state `enrich status` says "syncing since …" from the row the syncing session
/// wrote, while pg_locks shows it holding the connection's lock.
#[tokio::test(flavor = "multi_thread")]
async fn status_says_syncing_on_a_postgres_state_too() {
    let workspace =
        Workspace::start(EmulatorConfig { latency: Duration::from_millis(700), ..EmulatorConfig::default() })
            .await;
    write_heap_export(&workspace);
    // A connection of this test's own in the shared test database.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let name = format!("first-hour-{}-{nanos}", std::process::id());
    let config = std::fs::read_to_string(workspace.path("enrich.yaml"))
        .unwrap()
        .replace("  main:\n", &format!("  {name}:\n"));
    let columns = "email_property: \"Email Address\"\n      identity_property: Identity\n      last_seen_property: Last Seen";
    let config = config.replace("email_property: email", columns);
    let state = format!("state:\n  type: postgres\n  url: {}\n", support::postgres_url());
    std::fs::write(workspace.path("enrich.yaml"), format!("{state}{config}")).unwrap();

    let before = workspace.enrich(&["status", &name]).await;
    before.success();
    assert!(before.stdout.contains("never run"), "{before}");
    let mut sync =
        workspace.command(&["sync", &name]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let during = workspace.status_while_syncing(&mut sync, &["status", &name]).await;
    during.success();
    assert!(
        during.stdout.starts_with(&format!("{name}: Waiting For Data\n  syncing     since ")),
        "{during}"
    );
    assert!(!during.stdout.contains("never run"), "{during}");
    let synced = tokio::task::spawn_blocking(move || sync.wait_with_output()).await.unwrap().unwrap();
    assert!(synced.status.success(), "{}", String::from_utf8_lossy(&synced.stderr));
    let after = workspace.enrich(&["status", &name]).await;
    after.success();
    assert!(!after.stdout.contains("syncing"), "the lock went with the sync's session: {after}");
    assert!(after.stdout.contains("next run    due "), "{after}");
}
