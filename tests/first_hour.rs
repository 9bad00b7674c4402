//! A new user's first hour, end to end against the emulator: what a sync costs before it spends,
//! then the sync, its report and its status.

mod support;

use std::process::Stdio;
use std::time::Duration;

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
    assert_eq!(sync.figure("lookups"), 3, "the dry run's plan is the run's: {sync}");
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

#[tokio::test(flavor = "multi_thread")]
async fn status_says_syncing_during_a_run_and_what_to_do_after_an_error() {
    let workspace =
        Workspace::start(EmulatorConfig { latency: Duration::from_secs(2), ..EmulatorConfig::default() })
            .await;
    roster(&workspace);
    let mut sync =
        workspace.command(&["sync", "main"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let during = workspace.status_while_syncing(&mut sync, &["status", "main"]).await;
    during.success();
    assert!(during.stdout.starts_with("main: Waiting For Data\n  syncing     since "), "{during}");
    assert!(!during.stdout.contains("never run"), "{during}");
    assert!(tokio::task::spawn_blocking(move || sync.wait()).await.unwrap().unwrap().success());
    let after = workspace.enrich(&["status", "main"]).await;
    after.success();
    assert!(!after.stdout.contains("syncing"), "{after}");
    assert!(after.stdout.contains("next run    due "), "{after}");

    // Only the user seen before the window is still due: a backfill looks it up, with a wrong key.
    let wrong = "sk_wrong_000000000000000000000000";
    let failed = workspace.enrich_with(&["backfill", "main", "--since", "60d"], wrong, None).await;
    failed.failure();
    let status = workspace.enrich(&["status", "main"]).await;
    status.failure();
    assert!(status.stdout.starts_with("main: Error: "), "{status}");
    assert!(
        status.stdout.contains("`enrich check main` proves it and `enrich sync main` runs it now"),
        "says what to do next: {status}"
    );
    assert!(!status.stdout.contains("next run    due"), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn status_and_report_count_the_same_users_after_a_forget() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    roster(&workspace);
    workspace.enrich(&["sync", "main"]).await.success();
    let (enriched, reported) = enriched_and_found(&workspace).await;
    assert_eq!((enriched.as_str(), reported.as_str()), ("4", "4"));
    workspace.enrich(&["forget", "main", "team@acme-industries.com"]).await.success();
    let (enriched, reported) = enriched_and_found(&workspace).await;
    assert_eq!((enriched.as_str(), reported.as_str()), ("2", "2"), "the two users of the mailbox are gone");
}

/// The users `enrich status` says are enriched, and those `enrich report` counts as found.
async fn enriched_and_found(workspace: &Workspace) -> (String, String) {
    let status = workspace.enrich(&["status", "main"]).await;
    let enriched = status.stdout.split("enriched    ").nth(1).and_then(|rest| rest.split(' ').next());
    let report = workspace.enrich(&["report", "main"]).await;
    let found = report.stdout.split("%: ").nth(1).and_then(|rest| rest.split(' ').next());
    (
        enriched.unwrap_or_else(|| panic!("{status}")).to_owned(),
        found.unwrap_or_else(|| panic!("{report}")).to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_roster_without_a_usable_row_fails_check_and_sync() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    std::fs::write(
        workspace.path("users.csv"),
        "identity,last_seen,email\nu1,soon,a@firm.io\nu2,later,b@firm.io\n",
    )
    .unwrap();
    let check = workspace.enrich(&["check", "main"]).await;
    check.failure();
    assert!(check.stdout.contains("✗ ") && check.stdout.contains("every row is bad"), "{check}");
    assert!(!check.stdout.contains("ready"), "{check}");
    let sync = workspace.enrich(&["sync", "main"]).await;
    sync.failure();
    assert!(sync.stderr.contains("none of the 2 rows of the roster is usable"), "{sync}");
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_names_the_column_a_misnamed_setting_meant() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    std::fs::write(
        workspace.path("users.csv"),
        "identity,last_seen,Email Address\nu1,1795860000,a@firm.io\n",
    )
    .unwrap();
    let run = workspace.enrich(&["validate"]).await;
    run.failure();
    assert!(
        run.stderr.contains(
            "connections.main.users.email_property: no column \"email\" in the file (its header has: identity, last_seen, Email Address); write email_property: \"Email Address\""
        ),
        "{run}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn output_cut_short_by_a_pipe_is_no_error() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    roster(&workspace);
    let enrich = env!("CARGO_BIN_EXE_enrich");
    for command in ["completions zsh", "man", "properties main"] {
        let mut shell = std::process::Command::new("sh");
        shell.args(["-c", &format!("{enrich} {command} | head -1 >/dev/null")]);
        shell.current_dir(workspace.folder.path()).env("CLEARBIT_API_KEY", support::KEY);
        let run = support::Run::from(shell.output().unwrap());
        assert!(run.stderr.is_empty(), "`enrich {command} | head -1` printed an error: {run}");
    }
}

/// The user's path of the README, in its order: validate, check with the cost preview, a dry run,
/// the sync, the report, the status (during a run: `status_says_syncing_during_a_run_…`).
#[tokio::test(flavor = "multi_thread")]
async fn the_readme_path_from_validate_to_status() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    roster(&workspace);
    let validate = workspace.enrich(&["validate"]).await;
    validate.success();
    assert!(validate.stdout.starts_with("enrich.yaml: valid, 1 connection"), "{validate}");
    let check = workspace.enrich(&["check", "main"]).await;
    check.success();
    assert!(check.stdout.contains("≈ 3 billed lookups for 4 users"), "{check}");
    let dry = workspace.enrich(&["sync", "main", "--dry-run"]).await;
    dry.success();
    assert!(dry.stdout.contains("billed lookups  ≈ 3 "), "{dry}");
    let sync = workspace.enrich(&["sync", "main"]).await;
    sync.success();
    assert_eq!((sync.figure("lookups"), sync.figure("written")), (3, 4), "{sync}");
    assert_eq!(workspace.emulator.clearbit_requests().len(), 1 + 3, "check's lookup, then the sync's");
    let (enriched, found) = enriched_and_found(&workspace).await;
    assert_eq!(enriched, found, "status and report agree");
    let status = workspace.enrich(&["status"]).await;
    status.success();
    assert!(status.stdout.starts_with("main: Connected\n  next run    due "), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_name_may_be_left_out_when_the_file_defines_one_connection() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    roster(&workspace);
    let dry = workspace.enrich(&["sync", "--dry-run"]).await;
    dry.success();
    assert!(dry.stdout.starts_with("main: dry run of a sync"), "{dry}");

    let config = std::fs::read_to_string(workspace.path("enrich.yaml")).unwrap();
    let connection = config.split_once("  main:\n").unwrap().1;
    std::fs::write(workspace.path("enrich.yaml"), format!("{config}  second:\n{connection}")).unwrap();
    let ambiguous = workspace.enrich(&["sync", "--dry-run"]).await;
    ambiguous.failure();
    assert!(
        ambiguous.stderr.contains("enrich.yaml defines 2 connections: name one (main, second)"),
        "{ambiguous}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_key_is_said_once_naming_the_variable_to_set() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    roster(&workspace);
    let run =
        workspace.enrich_with(&["sync", "main"], "sk_wrong_000000000000000000000000", Some("off")).await;
    run.failure();
    let last = run.stderr.lines().last().unwrap();
    assert!(
        last.contains("set the environment variable CLEARBIT_API_KEY (which api_key reads in enrich.yaml)"),
        "{run}"
    );
    let told = format!("{}{}", run.stdout, run.stderr).matches("401").count();
    assert_eq!(told, 1, "the error is said once: {run}");
}

#[tokio::test(flavor = "multi_thread")]
async fn subcommand_help_shows_examples_and_sets_the_global_options_apart() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    for command in ["check", "sync", "backfill", "status"] {
        let help = workspace.enrich(&[command, "--help"]).await;
        help.success();
        assert!(help.stdout.contains("\nExamples:\n  enrich "), "{help}");
        assert!(!help.stdout.contains("\nGlobal options:\n"), "they are `enrich --help`'s: {help}");
        assert!(!help.stdout.contains("Show emails and IP addresses"), "{help}");
        assert!(
            help.stdout.contains(
                "Global options (-c/--config, -v, -q, --log-pii, --log-format): see `enrich --help`."
            ),
            "{help}"
        );
    }
    let help = workspace.enrich(&["--help"]).await;
    assert!(help.stdout.contains("\nGlobal options:\n") && help.stdout.contains("--log-format"), "{help}");
    // Hidden from a subcommand's help, still accepted after its name.
    roster(&workspace);
    let validate =
        workspace.enrich(&["validate", "--config", "enrich.yaml", "-q", "--log-format", "json"]).await;
    validate.success();
}
