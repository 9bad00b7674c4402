//! Scale-out on a shared PostgreSQL state: two `enrich run` workers share three connections, the
//! holder of the big one is killed (SIGKILL) mid-run, and the other takes it over, writes what was
//! fetched without paying for it again and finishes; `enrich status` from a third process shows it.
//!
//! Needs `ENRICH_TEST_POSTGRES_URL` (`cargo xtask test` sets it, or `eval "$(.ci/postgres start)"`);
//! without it the test fails saying so. Each run uses a database of its own, dropped at the end.

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use enrich_emulator::EmulatorConfig;
use support::{Workspace, psql};

/// Users of each connection; `main` is the one whose worker is killed.
const CONNECTIONS: [(&str, usize); 3] = [("main", 300), ("second", 40), ("third", 40)];
/// Lookups in flight at most: `max_concurrency` 2 × 4 lookups per permit.
const MAX_CONCURRENCY: usize = 2;
const IN_FLIGHT: usize = MAX_CONCURRENCY * 4;

/// A database of its own on the test server, dropped when the test ends, passed or not.
struct Database {
    server: String,
    name: String,
    url: String,
}

impl Database {
    fn create() -> Self {
        let server = std::env::var("ENRICH_TEST_POSTGRES_URL").expect(
            "ENRICH_TEST_POSTGRES_URL is not set: `cargo xtask test` starts a PostgreSQL server and runs every \
             test (or eval \"$(.ci/postgres start)\" before cargo test)",
        );
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let name = format!("enrich_cluster_{}_{nanos}", std::process::id());
        psql(&server, &format!("CREATE DATABASE {name}")).unwrap();
        let (base, _) = server.rsplit_once('/').expect("the URL names a database");
        Self { url: format!("{base}/{name}"), server, name }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = psql(&self.server, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

fn write_config(workspace: &Workspace) {
    let mut config = String::from("state:\n  type: postgres\n  url: ${ENRICH_STATE_URL}\nconnections:\n");
    for (name, _) in CONNECTIONS {
        let _ = write!(
            config,
            "  {name}:
    source:
      type: clearbit
      api_key: ${{CLEARBIT_API_KEY}}
      base_url: {clearbit}
      requests_per_minute: 1000000
      max_concurrency: {MAX_CONCURRENCY}
    sink:
      type: heap
      app_id: \"{app_id}\"
      base_url: {heap}
      requests_per_second: 1000
    users:
      type: csv
      path: {name}.csv
      email_property: email
    schedule:
      every: 1h
",
            clearbit = workspace.emulator.clearbit_url(),
            heap = workspace.emulator.heap_url(),
            app_id = support::APP_ID,
        );
    }
    std::fs::write(workspace.path("enrich.yaml"), config).unwrap();
}

fn write_rosters(workspace: &Workspace) -> usize {
    let last_seen = chrono::Utc::now().to_rfc3339();
    let mut users = 0;
    for (name, count) in CONNECTIONS {
        let mut csv = String::from("identity,last_seen,email\n");
        for index in 0..count {
            let _ = writeln!(csv, "{name}-{index},{last_seen},{name}{index}@firm{}.io", index % 30);
        }
        std::fs::write(workspace.path(&format!("{name}.csv")), csv).unwrap();
        users += count;
    }
    users
}

fn worker(workspace: &Workspace, url: &str) -> Child {
    workspace
        .command(&["run"])
        .env("ENRICH_STATE_URL", url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("enrich run starts")
}

/// How many times each email was looked up.
fn lookups_by_email(workspace: &Workspace) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for request in workspace.emulator.clearbit_requests() {
        *counts.entry(request.email).or_default() += 1;
    }
    counts
}

/// Polls `done` every 20 ms; fails after `patience`, saying what was awaited.
async fn wait_for(what: &str, patience: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < patience, "waited {patience:?} for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_share_connections_and_one_takes_over_when_the_other_is_killed() {
    let database = Database::create();
    let workspace =
        Workspace::start(EmulatorConfig { latency: Duration::from_millis(50), ..EmulatorConfig::default() })
            .await;
    write_config(&workspace);
    let users = write_rosters(&workspace);

    let mut first = worker(&workspace, &database.url);
    // The first worker holds `main` once its lookups begin; the second starts while it runs.
    let main_looked_up = || {
        workspace
            .emulator
            .clearbit_requests()
            .iter()
            .filter(|request| request.email.starts_with("main"))
            .count()
    };
    wait_for("the first worker's lookups", Duration::from_secs(60), || main_looked_up() >= 20).await;
    let mut second = worker(&workspace, &database.url);
    wait_for("100 lookups of main", Duration::from_secs(60), || main_looked_up() >= 100).await;

    let twice: Vec<(String, usize)> =
        lookups_by_email(&workspace).into_iter().filter(|(_, count)| *count > 1).collect();
    assert!(twice.is_empty(), "no email is looked up twice while both workers live: {twice:?}");
    first.kill().unwrap(); // SIGKILL: its session ends with its socket, and its locks with the session
    first.wait().unwrap();
    let killed_at = Instant::now();
    let at_kill = workspace.emulator.clearbit_requests().len();
    let heap_at_kill = workspace.emulator.heap_users().len();

    let takeover = wait_for("the second worker to take over", Duration::from_secs(60), || {
        workspace.emulator.clearbit_requests().len() > at_kill
            || workspace.emulator.heap_users().len() > heap_at_kill
    })
    .await;
    wait_for("every user in Heap", Duration::from_secs(180), || {
        workspace.emulator.heap_users().len() == users
    })
    .await;
    let finished = killed_at.elapsed();
    // Every request that reached Clearbit, answered or cut off by the kill: each may be billed.
    let lookups = workspace.emulator.clearbit_requests_received() as usize;
    let distinct = lookups_by_email(&workspace).len();
    println!(
        "cluster: {users} users, {distinct} distinct emails, {lookups} lookups received ({} extra; {at_kill} \
         answered before the SIGKILL); takeover {takeover:.1?} after the kill, every user in Heap {finished:.1?} \
         after it",
        lookups - distinct
    );
    assert!(
        lookups <= distinct + IN_FLIGHT,
        "{lookups} lookups for {distinct} emails: more than {IN_FLIGHT} extra"
    );
    assert!(takeover < Duration::from_secs(30), "taken over {takeover:?} after the kill, not within 30 s");

    let status = workspace.command(&["status"]).env("ENRICH_STATE_URL", &database.url).output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    for (name, _) in CONNECTIONS {
        let line = status.lines().find(|line| line.trim_start().starts_with(name)).unwrap_or_default();
        assert!(line.contains("Connected"), "{name} is connected in `enrich status`:\n{status}");
    }
    assert!(!workspace.path(".enrich").exists(), "no local state folder");
    second.kill().unwrap();
    second.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_state_moves_from_sled_to_postgres_without_paying_again() {
    let database = Database::create();
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    let rows: Vec<_> = (0..20).map(|i| support::row(&format!("u{i}"), &format!("p{i}@firm.io"), 0)).collect();
    workspace.write_roster(&rows);
    workspace.enrich(&["sync", "main"]).await.success();
    let export = workspace.enrich(&["state", "export", "main", "main.jsonl"]).await;
    assert!(export.success().stdout.contains("exported 20 users"), "{export}");

    let on_sled = std::fs::read_to_string(workspace.path("enrich.yaml")).unwrap();
    let on_postgres = format!("state:\n  type: postgres\n  url: {}\n{on_sled}", database.url);
    std::fs::write(workspace.path("enrich.yaml"), on_postgres).unwrap();
    let import = workspace.enrich(&["state", "import", "main", "main.jsonl"]).await;
    assert!(import.success().stdout.contains("imported 20 users, 0 pending writes"), "{import}");
    let again = workspace.enrich(&["state", "import", "main", "main.jsonl"]).await;
    assert!(again.failure().stderr.contains("already holds users"), "{again}");

    let sync = workspace.enrich(&["sync", "main"]).await;
    assert_eq!(sync.success().figure("lookups"), 0, "every user was checked already:\n{sync}");
    assert_eq!(workspace.emulator.clearbit_requests().len(), 20);
    let status = workspace.enrich(&["status", "main", "--history"]).await;
    assert_eq!(status.success().stdout.matches("figures").count(), 2, "the sled run's history came along");
}
