//! The `enrich` commands that need no network: validate, map, help, and their errors.

mod support;

use enrich_emulator::EmulatorConfig;
use support::Workspace;

#[tokio::test(flavor = "multi_thread")]
async fn validate_accepts_a_good_file_and_lists_its_connections() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace.write_roster(&[]);
    let run = workspace.enrich(&["validate"]).await;
    run.success();
    assert!(run.stdout.starts_with("enrich.yaml: valid, 1 connection"), "{run}");
    assert!(run.stdout.contains("main: users from users.csv → clearbit → heap app 1234567890"), "{run}");
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_reports_every_problem_and_syncs_refuse_to_start() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    std::fs::write(
        workspace.path("enrich.yaml"),
        "connections:\n  main:\n    source: {type: clearbit, api_key: pk_live_abc}\n    sink: {type: heap, app_id: web}\n    users: {type: csv, path: nowhere.csv, email_property: email}\n",
    )
    .unwrap();
    let run = workspace.enrich(&["validate"]).await;
    run.failure();
    let errors: Vec<&str> =
        run.stderr.lines().filter(|line| line.starts_with("error: enrich.yaml: ")).collect();
    assert_eq!(errors.len(), 3, "{run}");
    assert!(run.stderr.contains("3 problems in enrich.yaml"), "{run}");
    let sync = workspace.enrich(&["sync", "main"]).await;
    sync.failure();
    assert!(workspace.emulator.clearbit_requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn config_file_comes_from_the_flag_or_the_environment() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace.write_roster(&[]);
    std::fs::rename(workspace.path("enrich.yaml"), workspace.path("other.yaml")).unwrap();
    let run = |args: &[&str], config_variable: Option<&str>| {
        let mut command = workspace.command(args);
        if let Some(path) = config_variable {
            command.env("ENRICH_CONFIG", path);
        }
        support::Run::from(command.output().unwrap())
    };
    let default = run(&["validate"], None);
    default.failure();
    assert!(default.stderr.contains("enrich.yaml: cannot read the config file"), "{default}");
    assert!(default.stderr.contains("-c/--config or ENRICH_CONFIG"), "{default}");

    let from_environment = run(&["validate"], Some("other.yaml"));
    from_environment.success();
    assert!(from_environment.stdout.starts_with("other.yaml: valid"), "{from_environment}");
    let flag_wins = run(&["-c", "missing.yaml", "validate"], Some("other.yaml"));
    flag_wins.failure();
    assert!(flag_wins.stderr.contains("missing.yaml: cannot read the config file"), "{flag_wins}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_connection_names_list_the_known_ones() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace.write_roster(&[]);
    let run = workspace.enrich(&["sync", "mian"]).await;
    run.failure();
    assert!(
        run.stderr.contains("no connection named `mian`") && run.stderr.contains("it defines: main"),
        "{run}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn map_prints_the_heap_properties_of_a_response() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../connectors/clearbit/fixtures/combined-real-calvinklein-2016.json"
    );
    workspace.write_roster(&[]);
    let run = workspace.enrich(&["map", fixture]).await;
    run.success();
    let properties: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(properties["Company Website URL"], "http://calvinklein.us");
    assert!(properties.get("Clearbit: Date Last Checked").is_none());

    std::fs::write(workspace.path("bad.json"), "{\"person\": ").unwrap();
    let bad = workspace.enrich(&["map", "bad.json"]).await;
    bad.failure();
    assert!(bad.stderr.contains("bad.json is not a JSON document"), "{bad}");

    // An answer of another lookup than the connection's says what was expected.
    std::fs::write(workspace.path("reveal.json"), r#"{"ip": "203.0.113.7", "company": {"name": "Acme"}}"#)
        .unwrap();
    let other = workspace.enrich(&["map", "reveal.json"]).await;
    other.failure();
    assert!(
        other.stderr.contains("reveal.json: expected an answer of Clearbit's combined lookup"),
        "{other}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn properties_lists_what_the_connection_writes_as_configured() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace.write_roster(&[]);
    let all = workspace.enrich(&["properties", "main"]).await;
    all.success();
    assert!(all.stdout.contains("Company Website URL") && all.stdout.contains("Person Job Title"), "{all}");
    let total: usize = all.stdout.lines().last().unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(total > 140, "every catalogued attribute and the two Clearbit: properties: {total}");

    workspace.write_config(
        "      properties:\n        include: [company.*]\n        rename: { company.metrics.employeesRange: Company Size }",
    );
    let json = workspace.enrich(&["properties", "main", "--format", "json"]).await;
    json.success();
    let listed: Vec<serde_json::Value> = serde_json::from_str(&json.stdout).unwrap();
    let names: Vec<&str> = listed.iter().map(|property| property["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"Company Size") && !names.contains(&"Company Employees Range"), "{names:?}");
    assert!(!names.iter().any(|name| name.starts_with("Person ")), "company only: {names:?}");
    assert!(listed.iter().all(|property| !property["description"].as_str().unwrap().is_empty()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_property_selection_is_a_validate_error() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace.write_roster(&[]);
    workspace.write_config(
        "      properties:\n        include: ['company.[']\n        rename: { company.name: ID }",
    );
    let run = workspace.enrich(&["validate"]).await;
    run.failure();
    assert!(run.stderr.contains("connections.main.source.properties.include[0]"), "{run}");
    assert!(run.stderr.contains("connections.main.source.properties.rename.company.name"), "{run}");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_proves_each_part_and_names_what_is_wrong() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace.write_roster(&[
        support::row("u1", "a@firm.io", 1),
        support::row("u2", "", 2),
        support::row("u3", "old@firm.io", 30),
    ]);
    let good = workspace.enrich(&["check", "main"]).await;
    good.success();
    let lines: Vec<&str> = good.stdout.lines().collect();
    assert!(lines.iter().take(4).all(|line| line.starts_with('✓')), "{good}");
    assert!(good.stdout.contains("billed as one"), "the check says it costs a lookup: {good}");
    assert!(
        good.stdout.contains("3 users read, 2 seen within the backfill window, 1 of them with a valid email"),
        "{good}"
    );
    assert_eq!(workspace.emulator.clearbit_requests().len(), 1);
    assert!(workspace.emulator.heap_requests().is_empty(), "the sink check writes nothing");

    let bad = workspace.enrich_with(&["check", "main"], "sk_wrong_key_000000000000", None).await;
    bad.failure();
    let source_line = bad.stdout.lines().nth(1).unwrap();
    assert!(source_line.starts_with("✗ clearbit:") && source_line.contains("401"), "{bad}");
    assert!(bad.stdout.contains("1 of 5 checks failed"), "{bad}");
}

#[tokio::test(flavor = "multi_thread")]
async fn completions_and_the_manual_come_from_the_command_line_definition() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    let bash = workspace.enrich(&["completions", "bash"]).await;
    bash.success();
    // Dynamic: the shell asks `enrich` itself, which knows the subcommands and the connections.
    assert!(
        bash.stdout.contains("COMPLETE=\"bash\"") && bash.stdout.contains("-F _clap_complete_enrich enrich"),
        "{bash}"
    );
    let man = workspace.enrich(&["man"]).await;
    man.success();
    assert!(man.stdout.starts_with(".ie") || man.stdout.contains(".TH"), "{man}");
    assert!(man.stdout.contains("enrich"), "{man}");
}

/// What a person sees, as snapshots: a sync's summary and the status after it (`check`'s lines are
/// pinned by `check_proves_each_part_and_names_what_is_wrong`).
#[tokio::test(flavor = "multi_thread")]
async fn terminal_output_of_sync_status_and_check() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    let domains = ["northwind.io", "pinecrest.health", "acme-industries.com"];
    let mut rows: Vec<_> = (0..12)
        .map(|i| support::row(&format!("u{i:02}"), &format!("person{i}@{}", domains[i % 3]), 1))
        .collect();
    rows.push(support::row("role", "info@northwind.io", 1));
    rows.push(support::row("anonymous", "", 1));
    rows.push(support::row("stale", "stale@northwind.io", 30));
    workspace.write_roster(&rows);

    let sync = workspace.enrich(&["sync", "main"]).await;
    sync.success();
    insta::assert_snapshot!("sync_summary", support::redact_times(&sync.stdout));
    let status = workspace.enrich(&["status"]).await;
    insta::assert_snapshot!("status", support::redact_times(&status.stdout));
}
