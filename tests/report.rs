//! `enrich report` end to end: after a sync against the emulator, the report counts what Heap
//! received, in every format, and its HTML page renders one bar chart per breakdown in Chromium.

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use enrich_emulator::EmulatorConfig;
use serde_json::{Map, Value};
use support::{Workspace, row};

const CHROMIUM: &str = "/usr/bin/chromium";

/// A workspace whose connection `main` synced `users` users: at twelve company domains, so that
/// industries repeat, and at gmail.com, where Clearbit finds people without a company.
async fn synced(users: usize) -> Workspace {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    let rows: Vec<_> = (0..users)
        .map(|i| {
            let domain = if i % 10 == 9 { "gmail.com".to_owned() } else { format!("company{}.com", i % 12) };
            row(&format!("user-{i:03}"), &format!("person{i}@{domain}"), (i % 5) as i64)
        })
        .collect();
    workspace.write_roster(&rows);
    workspace.enrich(&["sync", "main"]).await.success();
    workspace
}

/// `enrich report main --format json`, parsed.
async fn json_report(workspace: &Workspace) -> Value {
    let run = workspace.enrich(&["report", "main", "--format", "json"]).await;
    run.success();
    serde_json::from_str(&run.stdout).unwrap_or_else(|error| panic!("{error}: {run}"))
}

fn breakdown<'a>(report: &'a Value, title: &str) -> &'a Value {
    let breakdowns = report["breakdowns"].as_array().unwrap();
    breakdowns.iter().find(|breakdown| breakdown["title"] == title).unwrap_or_else(|| panic!("no {title}"))
}

/// A breakdown's values and their users.
fn counted(breakdown: &Value) -> BTreeMap<String, u64> {
    let values = breakdown["values"].as_array().unwrap();
    values
        .iter()
        .map(|value| (value["value"].as_str().unwrap().to_owned(), value["users"].as_u64().unwrap()))
        .collect()
}

/// Heap's users by the value of `property`, each entry of a `, `-joined list counted once per user.
fn heap_counts(
    heap: &BTreeMap<String, Map<String, Value>>,
    property: &str,
    list: bool,
) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for value in heap.values().filter_map(|properties| properties.get(property)) {
        let text = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
        let mut entries: Vec<&str> = if list { text.split(", ").collect() } else { vec![&text] };
        entries.dedup();
        for entry in entries {
            *counts.entry(entry.to_owned()).or_default() += 1;
        }
    }
    counts
}

/// The fields of one CSV line (RFC 4180 quoting).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let (mut quoted, mut characters) = (false, line.chars().peekable());
    while let Some(character) = characters.next() {
        match character {
            '"' if quoted && characters.peek() == Some(&'"') => {
                characters.next();
                fields.last_mut().unwrap().push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            _ => fields.last_mut().unwrap().push(character),
        }
    }
    fields
}

#[tokio::test(flavor = "multi_thread")]
async fn the_report_counts_what_heap_received_in_every_format() {
    let workspace = synced(120).await;
    let heap = workspace.emulator.heap_users();
    let report = json_report(&workspace).await;

    let matches = heap_counts(&heap, "Clearbit: Match", false);
    let not_found = matches.get("not found").copied().unwrap_or(0);
    let found = heap.len() as u64 - not_found;
    assert_eq!(report["connection"], "main");
    assert_eq!((report["found"].as_u64(), report["not_found"].as_u64()), (Some(found), Some(not_found)));
    assert!(not_found > 0 && found > 60, "a realistic mix: {found} found, {not_found} not found");
    let rate = report["match_rate"].as_f64().unwrap();
    assert!((rate - found as f64 / heap.len() as f64).abs() < 1e-9, "{rate}");

    let matched = breakdown(&report, "Match");
    assert_eq!(matched["property"], "Clearbit: Match");
    assert_eq!((matched["population"].as_str(), matched["users"].as_u64()), (Some("checked"), Some(120)));
    assert_eq!(counted(matched), matches);
    assert!(matches.contains_key("person only"), "gmail.com users have no company: {matches:?}");

    let industry = breakdown(&report, "Company Industry");
    let industries = heap_counts(&heap, "Company Industry", false);
    assert_eq!((industry["population"].as_str(), industry["users"].as_u64()), (Some("found"), Some(found)));
    assert_eq!(counted(industry), industries);
    assert!(industries.values().any(|&users| users > 1), "industries repeat: {industries:?}");
    let with_industry: u64 = industries.values().sum();
    assert_eq!(
        industry["without_value"].as_u64(),
        Some(found - with_industry),
        "the people without a company"
    );
    let shares = industry["values"].as_array().unwrap();
    assert!(
        shares.windows(2).all(|pair| pair[0]["users"].as_u64() >= pair[1]["users"].as_u64()),
        "most first"
    );
    let first = &shares[0];
    let share = first["users"].as_f64().unwrap() / found as f64;
    assert!((first["share"].as_f64().unwrap() - share).abs() < 1e-9, "{first}");

    assert_eq!(
        counted(breakdown(&report, "Company Employees Range")),
        heap_counts(&heap, "Company Employees Range", false)
    );

    let tech = breakdown(&report, "Company Tech");
    let entries = heap_counts(&heap, "Company Tech", true);
    let top = counted(tech);
    assert_eq!(top.len(), 15, "the 15 most common of {} entries", entries.len());
    assert_eq!(tech["values_left_out"].as_u64(), Some(entries.len() as u64 - 15));
    for (entry, users) in &top {
        assert_eq!(entries.get(entry), Some(users), "{entry}");
    }
    let least_shown = top.values().min().unwrap();
    assert!(entries.iter().all(|(entry, users)| top.contains_key(entry) || users <= least_shown));

    // CSV: the same figures, one row per value, and the users without a value under an empty value.
    let csv = workspace.enrich(&["report", "main", "--format", "csv"]).await;
    csv.success();
    let mut lines = csv.stdout.lines();
    assert_eq!(lines.next(), Some("segment,value,users,share"));
    let rows: Vec<Vec<String>> = lines.map(csv_fields).collect();
    assert!(rows.iter().all(|row| row.len() == 4), "{csv}");
    let industry_rows: BTreeMap<&str, u64> = rows
        .iter()
        .filter(|row| row[0] == "Company Industry" && !row[1].is_empty())
        .map(|row| (row[1].as_str(), row[2].parse().unwrap()))
        .collect();
    assert_eq!(industry_rows, industries.iter().map(|(value, users)| (value.as_str(), *users)).collect());
    let without = rows.iter().find(|row| row[0] == "Company Industry" && row[1].is_empty()).unwrap();
    assert_eq!(without[2].parse::<u64>().unwrap(), found - with_industry);
    assert_eq!(rows.iter().filter(|row| row[0] == "Company Tech").count(), 15 + 1, "the top and no value");

    // The terminal: titled tables, one line per value.
    let table = workspace.enrich(&["report", "main"]).await;
    table.success();
    let match_rate = format!("match rate  {:.1}%: {found} found of 120 checked", rate * 100.0);
    assert!(table.stdout.contains(&match_rate), "{table}");
    let heading = format!("\nCompany Industry, of {found} found users\n");
    let start = table.stdout.find(&heading).unwrap_or_else(|| panic!("{table}")) + heading.len();
    let section = table.stdout[start..].split("\n\n").next().unwrap();
    // Each row: the value, its users and its share, the figures aligned on the right.
    let rows: BTreeMap<&str, u64> = section
        .lines()
        .skip(1)
        .map(|line| {
            let (rest, _share) = line.trim_end().rsplit_once(' ').unwrap();
            let (value, users) = rest.trim_end().rsplit_once(' ').unwrap();
            (value.trim(), users.parse().unwrap())
        })
        .collect();
    let mut expected: BTreeMap<&str, u64> =
        industries.iter().map(|(value, users)| (value.as_str(), *users)).collect();
    expected.insert("(no value)", found - with_industry);
    expected.insert("total", found);
    assert_eq!(rows, expected, "{table}");
}

/// The terminal report of a roster whose every answer the emulator derives from the email: the same
/// tables on every run, but for the report's time.
#[tokio::test(flavor = "multi_thread")]
async fn the_terminal_report_of_a_known_roster() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    let domains = ["northwind.io", "pinecrest.health", "acme-industries.com", "gmail.com"];
    let rows: Vec<_> =
        (0..24).map(|i| row(&format!("u{i:02}"), &format!("person{i}@{}", domains[i % 4]), 1)).collect();
    workspace.write_roster(&rows);
    workspace.enrich(&["sync", "main"]).await.success();

    let run = workspace.enrich(&["report", "main"]).await;
    run.success();
    let (first, tables) = run.stdout.split_once('\n').unwrap();
    let time = first.strip_prefix("main: report of 24 users at ").unwrap_or_else(|| panic!("{run}"));
    assert!(chrono::NaiveDateTime::parse_from_str(time, "%Y-%m-%d %H:%M:%S UTC").is_ok(), "{first}");
    insta::assert_snapshot!(support::redact_times(tables));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_report_during_a_sync_says_the_connection_is_syncing() {
    let workspace =
        Workspace::start(EmulatorConfig { latency: Duration::from_secs(3), ..Default::default() }).await;
    workspace.write_roster(&[row("chris", "chris@northwind.io", 1)]);
    let mut sync =
        workspace.command(&["sync", "main"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // The state folder appears when the sync opens (and locks) it, seconds before its one lookup ends.
    while !workspace.path(".enrich/main/users").exists() {
        assert!(sync.try_wait().unwrap().is_none(), "the sync ended before opening its state");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let during = workspace.enrich(&["report", "main"]).await;
    during.failure();
    assert!(
        during.stderr.contains("connection `main` is already syncing in another enrich process"),
        "{during}"
    );

    let status = tokio::task::spawn_blocking(move || sync.wait()).await.unwrap().unwrap();
    assert!(status.success());
    let after = workspace.enrich(&["report", "main"]).await;
    after.success();
    assert!(after.stdout.contains("match rate  100.0%: 1 found of 1 checked"), "{after}");
}

/// Runs headless Chromium on `page` with `arguments`; kills it if it takes over a minute.
fn chromium(page: &Path, arguments: &[&str]) -> Vec<u8> {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(CHROMIUM)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .args(["--no-first-run", &format!("--user-data-dir={}", profile.path().display())])
        .args(arguments)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    // Read while it runs, so that a full pipe cannot stall it.
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).map(|_| bytes)
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("chromium took over a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = stderr.join().unwrap().unwrap();
    assert!(status.success(), "chromium failed: {}", String::from_utf8_lossy(&stderr));
    stdout.join().unwrap().unwrap()
}

/// The value of attribute `name` in an element's start tag, with the entities Chromium writes undone.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let value = &tag[start..start + tag[start..].find('"')?];
    Some(value.replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_html_report_renders_a_bar_chart_per_breakdown_in_chromium() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: `cargo xtask test` installs Chromium (apt-get install chromium) and runs every test"
    );
    let workspace = synced(120).await;
    let report = json_report(&workspace).await;
    let run = workspace.enrich(&["report", "main", "--html", "report.html"]).await;
    run.success();
    assert!(run.stderr.contains("report.html: the report of `main` as a web page"), "{run}");
    let page = workspace.path("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    for external in ["<script", "http://", "https://", "@import", "url("] {
        assert!(!html.contains(external), "the page loads nothing: {external}");
    }

    let dom = String::from_utf8(chromium(&page, &["--dump-dom"])).unwrap();
    assert!(dom.contains("<h1>main</h1>"), "{dom}");
    let time = attribute(&dom[dom.find("<time ").unwrap()..], "datetime").unwrap();
    let age = chrono::Utc::now() - chrono::DateTime::parse_from_rfc3339(&time).unwrap().to_utc();
    assert!(age < chrono::Duration::minutes(1), "the report's time: {time}");
    let rate = format!("{:.1}%", report["match_rate"].as_f64().unwrap() * 100.0);
    assert!(dom.contains(&format!("<strong>{rate}</strong> <span>match rate</span>")), "{dom}");

    let charts: Vec<&str> = dom.split("<section class=\"chart\"").skip(1).collect();
    let breakdowns = report["breakdowns"].as_array().unwrap();
    assert_eq!(charts.len(), breakdowns.len(), "one chart per breakdown");
    for (chart, breakdown) in charts.iter().zip(breakdowns) {
        let chart = &chart[..chart.find("</section>").unwrap()];
        assert_eq!(attribute(chart, "data-segment").as_deref(), breakdown["title"].as_str());
        let bars: Vec<(String, u64)> = chart
            .split("<tr class=\"bar")
            .skip(1)
            .map(|bar| {
                (
                    attribute(bar, "data-value").unwrap(),
                    attribute(bar, "data-users").unwrap().parse().unwrap(),
                )
            })
            .collect();
        let mut expected: Vec<(String, u64)> = breakdown["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|value| (value["value"].as_str().unwrap().to_owned(), value["users"].as_u64().unwrap()))
            .collect();
        if let Some(without) = breakdown["without_value"].as_u64().filter(|&users| users > 0) {
            expected.push((String::new(), without));
        }
        assert_eq!(bars, expected, "the bars of {}", breakdown["title"]);
        assert_eq!(chart.matches("<span class=\"fill\" style=\"width: ").count(), expected.len());
    }

    let screenshot = workspace.path("report.png");
    let argument = format!("--screenshot={}", screenshot.display());
    chromium(&page, &[&argument, "--window-size=1200,1600"]);
    let png = std::fs::read(&screenshot).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{} bytes", png.len());
}

/// Three runs: 24 users (18 found), 8 more (6 found), then one with nothing due. The report's view
/// over time has one entry per run in every format, and the HTML page draws it as an SVG chart.
#[tokio::test(flavor = "multi_thread")]
async fn the_report_shows_each_run_over_time_in_every_format() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: `cargo xtask test` installs Chromium (apt-get install chromium) and runs every test"
    );
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    let domains = ["northwind.io", "pinecrest.health", "acme-industries.com", "gmail.com"];
    let users = |count: usize| -> Vec<_> {
        (0..count).map(|i| row(&format!("u{i:02}"), &format!("person{i}@{}", domains[i % 4]), 1)).collect()
    };
    let mut found = Vec::new();
    for count in [24, 32, 32] {
        workspace.write_roster(&users(count));
        let sync = workspace.enrich(&["sync", "main"]).await;
        sync.success();
        found.push((sync.figure("found"), sync.figure("found") + sync.figure("not found")));
    }
    assert_eq!((found[0], found[2]), ((18, 24), (0, 0)), "the runs this test is about: {found:?}");
    let rate = |(enriched, checked): (u64, u64)| (checked > 0).then(|| enriched as f64 / checked as f64);

    let report = json_report(&workspace).await;
    let runs = report["over_time"].as_array().unwrap();
    let points: Vec<((u64, u64), Option<f64>)> = runs
        .iter()
        .map(|run| {
            let figures = (run["enriched"].as_u64().unwrap(), run["checked"].as_u64().unwrap());
            (figures, run["match_rate"].as_f64())
        })
        .collect();
    let expected: Vec<((u64, u64), Option<f64>)> =
        found.iter().map(|&figures| (figures, rate(figures))).collect();
    assert_eq!(points, expected, "{report}");
    assert!(runs.iter().all(|run| run["kind"] == "sync"), "{report}");

    let table = workspace.enrich(&["report", "main"]).await;
    let section = table.stdout.split("\nOver time: ").nth(1).unwrap_or_else(|| panic!("{table}"));
    let lines: Vec<&str> = section.lines().skip(2).collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].ends_with("sync             18       24       75.0%"), "{table}");
    assert!(lines[2].ends_with("sync              0        0           –"), "{table}");

    let csv = workspace.enrich(&["report", "main", "--format", "csv"]).await;
    let over_time: Vec<Vec<String>> =
        csv.stdout.lines().map(csv_fields).filter(|row| row[0] == "Over time").collect();
    let figures: Vec<(u64, String)> =
        over_time.iter().map(|row| (row[2].parse().unwrap(), row[3].clone())).collect();
    let expected: Vec<(u64, String)> = found
        .iter()
        .map(|&figures| (figures.0, rate(figures).map_or_else(String::new, |rate| format!("{rate:.4}"))))
        .collect();
    assert_eq!(figures, expected, "{csv}");
    let started = |text: &str| chrono::DateTime::parse_from_rfc3339(text).unwrap().timestamp();
    assert_eq!(started(&over_time[0][1]), started(runs[0]["started_at"].as_str().unwrap()));

    workspace.enrich(&["report", "main", "--html", "report.html"]).await.success();
    let dom = String::from_utf8(chromium(&workspace.path("report.html"), &["--dump-dom"])).unwrap();
    let chart = dom.split("<section class=\"over-time chart\"").nth(1).unwrap_or_else(|| panic!("{dom}"));
    let chart = &chart[..chart.find("</section>").unwrap()];
    assert_eq!(attribute(chart, "data-runs").as_deref(), Some("3"));
    let bars: Vec<(u64, f64)> = chart
        .split("<rect class=\"enriched\"")
        .skip(1)
        .map(|bar| {
            (
                attribute(bar, "data-users").unwrap().parse().unwrap(),
                attribute(bar, "height").unwrap().parse().unwrap(),
            )
        })
        .collect();
    let enriched: Vec<u64> = found.iter().map(|(enriched, _)| *enriched).collect();
    assert_eq!(bars.iter().map(|(users, _)| *users).collect::<Vec<_>>(), enriched);
    let scale = bars[0].1 / 18.0;
    assert!(
        bars.iter().all(|(users, height)| (*users as f64 * scale - height).abs() < 0.1),
        "bars scale: {bars:?}"
    );
    let line =
        chart.split("<polyline class=\"match-rate\" points=\"").nth(1).unwrap_or_else(|| panic!("{chart}"));
    let points: Vec<&str> = line[..line.find('"').unwrap()].split(' ').collect();
    assert_eq!(points.len(), 2, "the run without a completed lookup has no match rate: {points:?}");
    let rates: Vec<f64> =
        points.iter().map(|point| point.split(',').nth(1).unwrap().parse().unwrap()).collect();
    // The line's height is the rate on the plot: the lower, the higher the rate.
    let (first, second) = (rate(found[0]).unwrap(), rate(found[1]).unwrap());
    assert_eq!(rates[0] < rates[1], first > second, "{rates:?} for {first} and {second}");
}
