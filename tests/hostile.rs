//! enrich under hostile input and faults: services that echo secrets, broken and binary rosters,
//! huge answers, signals in the middle of a run, spreadsheet formulas in reports.

mod support;

use std::fmt::Write as _;

use enrich_emulator::{EmulatorConfig, Scripted};
use support::{CSV_USERS, KEY, Run, Workspace};

/// A roster of `identity,last_seen,email,plan` rows, all seen today.
fn roster(rows: &[(&str, &str)]) -> String {
    let today = chrono::Utc::now().format("%Y-%m-%d");
    let mut csv = String::from("identity,last_seen,email,plan\n");
    for (identity, email) in rows {
        let _ = writeln!(csv, "{identity},{today},{email},pro");
    }
    csv
}

/// Where `needle` shows in a text, to say so when it must not.
fn find_in<'a>(needle: &str, places: &[(&'a str, &[u8])]) -> Vec<&'a str> {
    let needle = needle.as_bytes();
    places
        .iter()
        .filter(|(_, bytes)| bytes.windows(needle.len()).any(|window| window.eq_ignore_ascii_case(needle)))
        .map(|(name, _)| *name)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn echoed_secrets_and_emails_appear_nowhere() {
    const PROXY_PASSWORD: &str = "proxy-pass-5150";
    // What reqwest sends for `proxyuser:proxy-pass-5150@` in the base_url: `Basic` + this.
    const PROXY_CREDENTIALS: &str = "cHJveHl1c2VyOnByb3h5LXBhc3MtNTE1MA==";
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    // Clearbit quotes the key and the email in its error; Heap quotes the proxy's Basic credentials and
    // the identity (an email) in its refusal of the other user's not-found write.
    workspace.emulator.script_clearbit("echo500@acme.com", vec![Scripted::Echo(500); 2]);
    workspace.emulator.script_clearbit("echo400@acme.com", vec![Scripted::Status(404)]);
    workspace.emulator.script_heap(vec![Scripted::Echo(400)]);
    std::fs::write(
        workspace.path("users.csv"),
        roster(&[("u-500", "ECHO500@ACME.COM"), ("echo400@acme.com", "ECHO400@ACME.COM")]),
    )
    .unwrap();
    workspace.write_config("      max_retries: 1");
    let config = std::fs::read_to_string(workspace.path("enrich.yaml")).unwrap();
    let heap = workspace.emulator.heap_url();
    let proxied = heap.replace("http://", &format!("http://proxyuser:{PROXY_PASSWORD}@"));
    std::fs::write(workspace.path("enrich.yaml"), config.replace(&heap, &proxied)).unwrap();

    let mut runs = Vec::new();
    for args in [&["sync", "main"][..], &["status", "main"], &["status", "main", "--format", "json"]] {
        let mut command = workspace.command(args);
        command.env("RUST_LOG", "trace");
        runs.push(Run::from(command.output().unwrap()));
    }
    let sync = &runs[0];
    assert_eq!(sync.figure("failed"), 2, "both users failed on an echoing answer:\n{sync}");
    let requests = workspace.emulator.clearbit_requests();
    assert!(
        requests.iter().all(|request| request.authorization.as_deref() == Some(&format!("Bearer {KEY}")))
    );
    assert!(sync.stderr.contains("E***@ACME.COM"), "the echoed message is logged, masked:\n{sync}");

    let connection_json = std::fs::read(workspace.path(".enrich/main/connection.json")).unwrap();
    let state = workspace.state_bytes();
    let mut places: Vec<(String, &[u8])> =
        vec![("connection.json".into(), &connection_json), ("the state folder".into(), &state)];
    for (run, name) in runs.iter().zip(["sync", "status", "status --format json"]) {
        places.push((format!("the stdout of {name}"), run.stdout.as_bytes()));
        places.push((format!("the stderr of {name}"), run.stderr.as_bytes()));
    }
    let places: Vec<(&str, &[u8])> = places.iter().map(|(name, bytes)| (name.as_str(), *bytes)).collect();
    for secret in [KEY, PROXY_PASSWORD, PROXY_CREDENTIALS, "echo500@acme.com"] {
        assert_eq!(find_in(secret, &places), Vec::<&str>::new(), "{secret} leaked");
    }
    // The identity is an email the state keeps as the roster wrote it; its upper-case echo is not kept.
    let echoed = "ECHO400@ACME.COM";
    assert!(
        !places
            .iter()
            .any(|(_, bytes)| bytes.windows(echoed.len()).any(|window| window == echoed.as_bytes()))
    );
    println!(
        "echo: the key, the proxy password and both echoed emails found in 0 of {} places",
        places.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stray_quote_costs_one_row_and_says_where() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    let rows: Vec<(String, String)> =
        (1..=202).map(|n| (format!("u-{n}"), format!("person{n}@firm.io"))).collect();
    let rows: Vec<(&str, &str)> = rows.iter().map(|(id, email)| (id.as_str(), email.as_str())).collect();
    let csv = roster(&rows).replacen("person61@firm.io,pro", "person61@firm.io,\"pro", 1);
    std::fs::write(workspace.path("users.csv"), csv).unwrap();

    let run = workspace.enrich(&["sync", "main"]).await;
    run.success();
    let (read, bad) = (run.figure("users read"), run.figure("bad rows skipped"));
    println!("stray quote: 202 data lines, {read} users read, {bad} bad row reported");
    assert_eq!((read, bad), (201, 1), "{run}");
    assert!(run.stderr.contains("users.csv:62: has an unbalanced quote"), "{run}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_binary_roster_is_refused_without_echoing_its_bytes() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    // Bytes of every value, commas and line breaks among them, as a picture or an archive holds.
    let mut state = 0x2545_f491_u32;
    let binary: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[1]
        })
        .collect();
    std::fs::write(workspace.path("users.csv"), &binary).unwrap();

    let sync = workspace.enrich(&["sync", "main"]).await;
    sync.failure();
    let status = workspace.enrich(&["status", "main", "--format", "json"]).await;
    let connection_json = std::fs::read(workspace.path(".enrich/main/connection.json")).unwrap();
    for (place, bytes) in [
        ("sync's stdout", sync.stdout.as_bytes()),
        ("sync's stderr", sync.stderr.as_bytes()),
        ("status", status.stdout.as_bytes()),
        ("connection.json", &connection_json),
    ] {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.chars().any(|c| c == char::REPLACEMENT_CHARACTER || (c.is_control() && c != '\n')),
            "{place} holds bytes of the roster:\n{text}"
        );
        assert!(!binary.windows(6).any(|window| bytes.windows(6).any(|shown| shown == window)), "{place}");
    }
    assert!(sync.stderr.contains("is not a CSV text file"), "{sync}");
    println!("binary roster: 0 bytes of it in the output, the status or connection.json");
}

#[tokio::test(flavor = "multi_thread")]
async fn map_cuts_a_list_of_100000_items_to_its_first_items_for_heap_only() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    let tech: Vec<String> = (0..100_000).map(|n| format!("tech-{n:06}")).collect();
    let response = serde_json::json!({ "person": null, "company": { "name": "Acme", "tech": tech } });
    std::fs::write(workspace.path("answer.json"), response.to_string()).unwrap();
    workspace.write_roster(&[]);
    // A warehouse table too, which map reads the sink's rules of and never connects to.
    let warehouse = format!(
        "  warehouse:\n    source:\n      type: clearbit\n      api_key: ${{CLEARBIT_API_KEY}}\n    sink:\n      \
         type: postgres_table\n      url: postgres://enrich@127.0.0.1:9/warehouse\n      table: enrich.users\n      \
         tls: disable\n{CSV_USERS}"
    );
    workspace.write_config_with("", &warehouse);

    let started = std::time::Instant::now();
    let map = workspace.enrich(&["map", "answer.json", "--connection", "main"]).await;
    let elapsed = started.elapsed();
    map.success();
    let properties: serde_json::Value = serde_json::from_str(&map.stdout).unwrap();
    let joined = properties["Company Tech"].as_str().unwrap();
    let items: Vec<&str> = joined.split(", ").collect();
    assert_eq!(items, tech[..items.len()], "the first items, in order, whole");
    assert!(joined.len() <= 1023 && joined.len() + ", tech-000000".len() > 1023, "{joined}");
    assert!(map.stderr.contains("`Company Tech` was longer than Heap accepts and was cut"), "{map}");
    println!("map: 100,000 tech items cut to the first {} in {elapsed:?} (debug build)", items.len());

    // The table's sink has no limit: every item, joined.
    let whole = workspace.enrich(&["map", "answer.json", "--connection", "warehouse"]).await;
    whole.success();
    let properties: serde_json::Value = serde_json::from_str(&whole.stdout).unwrap();
    assert_eq!(properties["Company Tech"].as_str().unwrap().split(", ").count(), 100_000);
    assert!(!whole.stderr.contains("was cut"), "{whole}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversize_or_malformed_answer_fails_that_user_only() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    let huge = serde_json::json!({ "person": null, "company": { "tech": vec!["x".repeat(1000); 3000] } });
    workspace.emulator.script_clearbit("huge@acme.io", vec![Scripted::Body(200, huge.to_string())]);
    let string_person = r#"{"person": "alex@acme.io", "company": null}"#.to_owned();
    workspace.emulator.script_clearbit("string@acme.io", vec![Scripted::Body(200, string_person); 2]);
    std::fs::write(
        workspace.path("users.csv"),
        roster(&[("u-huge", "huge@acme.io"), ("u-string", "string@acme.io"), ("u-fine", "fine@acme.io")]),
    )
    .unwrap();
    workspace.write_config("      max_retries: 1");

    let run = workspace.enrich(&["sync", "main"]).await;
    let figures = (run.figure("failed"), run.figure("not found") + run.figure("found"));
    println!("oversize (3 MB) and string-person answers: {} failed, {} checked", figures.0, figures.1);
    assert_eq!(figures, (2, 1), "{run}");
    assert!(run.stdout.contains("with more than 1024 KiB"), "{run}");
    assert!(run.stdout.contains("a `person` that is not an object"), "{run}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_internationalised_domain_is_one_lookup_in_either_spelling() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    std::fs::write(
        workspace.path("users.csv"),
        roster(&[("u-1", "carol@bücher.de"), ("u-2", "carol@xn--bcher-kva.de"), ("u-3", "Carol@BÜCHER.de")]),
    )
    .unwrap();
    let run = workspace.enrich(&["sync", "main"]).await;
    run.success();
    let asked: Vec<String> =
        workspace.emulator.clearbit_requests().into_iter().map(|request| request.email).collect();
    println!("IDN: 3 spellings of one address, {} lookup(s): {asked:?}", asked.len());
    assert_eq!(asked, ["carol@xn--bcher-kva.de"], "{run}");
    assert_eq!(run.figure("lookups"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn quiet_wins_over_rust_log() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    std::fs::write(workspace.path("users.csv"), roster(&[("u-1", "a@acme.io")])).unwrap();
    let mut command = workspace.command(&["-q", "sync", "main"]);
    command.env("RUST_LOG", "debug");
    let run = Run::from(command.output().unwrap());
    run.success();
    println!("-q with RUST_LOG=debug: {} bytes on stderr", run.stderr.len());
    assert_eq!(run.stderr, "", "{run}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_report_csv_turns_formulas_into_text() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    let formula = r#"=HYPERLINK("http://evil.example","click")"#;
    let record = serde_json::json!({ "person": null, "company": {
        "name": "Evil", "category": { "industry": formula }, "metrics": { "employeesRange": "+1-10" },
        "tech": ["@SUM(A1)", "-2+3", "\tnginx"],
    }});
    workspace.emulator.script_clearbit("a@evil.example", vec![Scripted::Body(200, record.to_string())]);
    std::fs::write(workspace.path("users.csv"), roster(&[("u-1", "a@evil.example")])).unwrap();
    workspace.enrich(&["sync", "main"]).await.success();

    let report = workspace.enrich(&["report", "main", "--format", "csv"]).await;
    report.success();
    let values: Vec<&str> = report.stdout.lines().skip(1).filter_map(|line| line.split(',').nth(1)).collect();
    let formulas: Vec<&&str> = values
        .iter()
        .filter(|value| value.trim_start_matches('"').starts_with(['=', '+', '-', '@', '\t', '\r']))
        .collect();
    println!("report CSV: {} cells, {} starting as a formula", values.len(), formulas.len());
    assert!(formulas.is_empty(), "{}", report.stdout);
    assert!(
        report.stdout.contains(r#""'=HYPERLINK(""http://evil.example"",""click"")""#),
        "{}",
        report.stdout
    );
    assert!(report.stdout.contains("'+1-10") && report.stdout.contains("'@SUM(A1)"), "{}", report.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn after_sigterm_no_lookup_starts_and_what_was_fetched_is_written() {
    const USERS: usize = 100;
    // Slow answers keep lookups in flight at the signal; the pace (one every 2 s after a burst of 5) keeps
    // many more waiting for the rate limiter and for a concurrency slot, and leaves a loaded machine
    // ample time to deliver the signal before the next request is due.
    let config = EmulatorConfig { latency: std::time::Duration::from_secs(2), ..EmulatorConfig::default() };
    let workspace = Workspace::start(config).await;
    let rows: Vec<(String, String)> =
        (0..USERS).map(|n| (format!("u-{n}"), format!("person{n}@firm.io"))).collect();
    let rows: Vec<(&str, &str)> = rows.iter().map(|(id, email)| (id.as_str(), email.as_str())).collect();
    std::fs::write(workspace.path("users.csv"), roster(&rows)).unwrap();
    workspace.write_config("");
    let config = std::fs::read_to_string(workspace.path("enrich.yaml")).unwrap();
    let paced =
        config.replace("requests_per_minute: 1000000", "requests_per_minute: 30\n      max_concurrency: 5");
    std::fs::write(workspace.path("enrich.yaml"), paced).unwrap();

    let child = workspace.command(&["sync", "main"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    // Just after the 6th request arrived (the burst of 5, then one at the pace): the next is 2 s away.
    while workspace.emulator.clearbit_requests_received() < 6 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let signalled = std::time::Instant::now();
    let kill = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let received_at_signal = workspace.emulator.clearbit_requests_received();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    let exited_after = signalled.elapsed();
    let run = Run::from(output);

    let received_after = workspace.emulator.clearbit_requests_received() - received_at_signal;
    let answered = workspace.emulator.clearbit_requests().len();
    let written = workspace.emulator.heap_users().len();
    println!(
        "SIGTERM: {received_after} requests after the signal; {answered} answered, {written} written to \
         Heap, {} left for the next run; exited {exited_after:?} after the signal",
        run.figure("left for next run")
    );
    assert_eq!(received_after, 0, "lookups started after SIGTERM:\n{run}");
    assert_eq!(written, answered, "every answer fetched is written:\n{run}");
    assert_eq!(run.figure("left for next run") as usize, USERS - answered, "{run}");
}
