//! Hostile config files and extreme values: every problem is said in words with its field, all at once,
//! and no command panics (exit code 101) whatever the file or the arguments hold.

mod support;

use enrich_emulator::EmulatorConfig;
use support::{Run, Workspace, row};

/// The config of connection `main` with these lines added to its sections.
fn with_lines(workspace: &Workspace, source: &str, schedule: &str) {
    workspace.write_config_with(source, &format!("    schedule:\n{schedule}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn type_errors_name_the_field_in_words_and_all_are_reported_at_once() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace.write_roster(&[]);
    with_lines(
        &workspace,
        "      max_concurrency: five\n      timeout: soon\n",
        "      max_lookups_per_run: lots\n",
    );
    let run = workspace.enrich(&["validate"]).await;
    run.failure();
    for expected in [
        "enrich.yaml: connections.main.source.max_concurrency: expected a whole number, got \"five\"",
        "enrich.yaml: connections.main.source.timeout: expected a duration such as 30s, 15m, 24h or 7d, \
         got \"soon\"",
        "enrich.yaml: connections.main.schedule.max_lookups_per_run: expected a whole number, got \"lots\"",
    ] {
        assert!(run.stderr.contains(expected), "{expected}\nmissing from {run}");
    }
    assert!(run.stderr.contains("3 problems in enrich.yaml"), "{run}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_config_saved_with_a_byte_order_mark_is_read() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace.write_roster(&[row("u1", "a@firm.io", 0)]);
    let config = std::fs::read_to_string(workspace.path("enrich.yaml")).unwrap();
    std::fs::write(workspace.path("enrich.yaml"), format!("\u{feff}{config}")).unwrap();
    workspace.enrich(&["validate"]).await.success();
    workspace.enrich(&["sync", "main"]).await.success();
    assert_eq!(workspace.emulator.clearbit_requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_names_that_are_not_one_folder_name_are_refused() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace.write_roster(&[row("u1", "a@firm.io", 0)]);
    let config = std::fs::read_to_string(workspace.path("enrich.yaml")).unwrap();
    for name in [".", "..", "-x"] {
        let renamed = config.replace("  main:", &format!("  {name:?}:"));
        std::fs::write(workspace.path("enrich.yaml"), renamed).unwrap();
        let validate = workspace.enrich(&["validate"]).await;
        validate.failure();
        let expected =
            format!("enrich.yaml: connections.{name}: connection names start with a letter or digit");
        assert!(validate.stderr.contains(&expected), "{validate}");
        workspace.enrich(&["sync", "--", name]).await.failure();
    }
    assert!(!workspace.path(".enrich").exists(), "no state was written anywhere");
    assert!(workspace.emulator.clearbit_requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn durations_beyond_ten_years_are_validate_errors_naming_the_field() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace.write_roster(&[]);
    with_lines(
        &workspace,
        "      timeout: 1000000y\n",
        "      every: 1000000y\n      refresh: 1000000y\n      backfill: 11y\n",
    );
    let run = workspace.enrich(&["validate"]).await;
    run.failure();
    for field in ["source.timeout", "schedule.every", "schedule.refresh", "schedule.backfill"] {
        let expected = format!("connections.main.{field}: expected a duration of at most 10 years");
        assert!(run.stderr.contains(&expected), "{expected}\nmissing from {run}");
    }
}

/// Every command, run against a file of extreme values and with extreme arguments: each ends with
/// exit 0, 1 or 2 (a usage error), never a panic.
#[tokio::test(flavor = "multi_thread")]
async fn no_command_panics_on_extreme_values() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace.write_roster(&[row("u1", "a@firm.io", 0), row("u2", "b@firm.io", 4000)]);
    let longest = "      every: 10y\n      refresh: 10y\n      backfill: 10y\n      \
                   max_lookups_per_run: 18446744073709551615\n";
    let too_long = "      every: 1000000y\n      refresh: 1000000y\n      backfill: 1000000y\n";
    let huge_numbers = "      max_concurrency: 18446744073709551615\n      \
                        requests_per_minute: 18446744073709551615\n      timeout: 10y\n";
    let files = [
        ("", longest),
        ("", too_long),
        (huge_numbers, longest),
        ("      max_concurrency: -1\n      timeout: 0s\n", "      every: 1ns\n      refresh: 1ns\n"),
    ];
    let commands: [&[&str]; 12] = [
        &["validate"],
        &["status"],
        &["status", "main", "--history", "--format", "json"],
        &["sync", "main"],
        &["check", "main"],
        &["backfill", "main", "--since", "1000000y"],
        &["backfill", "main", "--since", "0001-01-01"],
        &["backfill", "main", "--since", "9999-12-31T23:59:59Z"],
        &["backfill", "main", "--since", "18446744073709551615s"],
        &["properties", "main"],
        &["report", "main"],
        &["sync", "main"],
    ];
    let mut runs = 0;
    for (source, schedule) in files {
        with_lines(&workspace, source, schedule);
        for args in commands {
            let run = workspace.enrich(args).await;
            assert_no_panic(&run, args);
            runs += 1;
        }
        let run = run_until_its_first_run_or_exit(&workspace);
        assert_no_panic(&run, &["run"]);
        runs += 1;
    }
    eprintln!("extreme values: {runs} commands run, none panicked");
}

fn assert_no_panic(run: &Run, args: &[&str]) {
    assert!(matches!(run.code, Some(0..=2)), "enrich {} exited {:?}:\n{run}", args.join(" "), run.code);
    assert!(!run.stderr.contains("panicked"), "enrich {}:\n{run}", args.join(" "));
}

/// `enrich run`, stopped with SIGTERM once it has logged its first run (or its refusal to start).
fn run_until_its_first_run_or_exit(workspace: &Workspace) -> Run {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let mut child =
        workspace.command(&["run"]).stderr(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut stderr = String::new();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        stderr.push_str(&line);
        stderr.push('\n');
        if line.contains("next run due") || line.contains("run failed") {
            let pid = child.id().to_string();
            assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
            break;
        }
    }
    for line in lines {
        stderr.push_str(&line.unwrap());
        stderr.push('\n');
    }
    let output = child.wait_with_output().unwrap();
    Run { code: output.status.code(), stdout: String::from_utf8_lossy(&output.stdout).into_owned(), stderr }
}
