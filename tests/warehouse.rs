//! `enrich sync` with the roster in a Heap Connect warehouse: the real binary reads 100,000 users from a
//! real PostgreSQL server laid out as Heap Connect lays out Redshift, and enriches exactly those seen this
//! week that have an identity and an email, once per email.
//!
//! Needs `ENRICH_TEST_POSTGRES_URL` (`cargo xtask test` sets it, or `eval "$(.ci/postgres start)"`);
//! without it the test fails saying so. The schema is built with `psql`, which comes with the server.

mod support;

use std::collections::BTreeSet;
use std::time::Instant;

use enrich_emulator::EmulatorConfig;
use support::{Run, Workspace, postgres_url, psql};

const USERS: u32 = 100_000;

const HEAP_CONNECT_TABLES: &str = include_str!("fixtures/heap_connect_schema.sql");

/// A schema laid out as Heap Connect's, dropped when the test ends, passed or not.
struct HeapConnectSchema {
    url: String,
    name: String,
}

impl HeapConnectSchema {
    /// `USERS` users, in the categories of `n % 50` (n = user_id):
    /// - 0: identified, with an email and sessions this week: the ones to enrich. Emails are shared in
    ///   pairs (`p{n/100}`), and each has an older duplicate row with a stale email that must not win;
    /// - 5: anonymous (no identity), with an email and a session this week;
    /// - 10: identified, without an email, seen this week;
    /// - 30: identified, with an email, never seen;
    /// - others: identified, with an email, seen only before this week.
    fn create(url: &str) -> Self {
        let schema = Self { url: url.to_owned(), name: format!("e2e_heap_connect_{}", std::process::id()) };
        let name = &schema.name;
        let tables = HEAP_CONNECT_TABLES.replace("{schema}", name);
        psql(
            url,
            &format!(
                "CREATE SCHEMA {name};
                 {tables}
                 CREATE TEMP TABLE clock AS SELECT now() AT TIME ZONE 'UTC' AS now;
                 INSERT INTO {name}.users
                     SELECT n,
                         CASE WHEN n % 50 = 5 THEN NULL ELSE 'user-' || n END,
                         NULL,
                         CASE WHEN n % 50 = 10 THEN NULL
                              WHEN n % 50 = 0 THEN 'P' || (n / 100) || '@Firm' || (n / 100 % 13) || '.io'
                              ELSE 'someone' || n || '@firm.io' END,
                         now - interval '90 days',
                         now - interval '1 day'
                     FROM generate_series(1, {USERS}) AS n, clock;
                 INSERT INTO {name}.users
                     SELECT n, 'user-' || n, NULL, 'stale' || n || '@old.io', now - interval '90 days',
                         now - interval '30 days'
                     FROM generate_series(50, {USERS}, 50) AS n, clock;
                 INSERT INTO {name}.sessions
                     SELECT n, n * 10 + k, now - make_interval(hours => k * 20), '192.0.2.1'
                     FROM generate_series(50, {USERS}, 50) AS n, generate_series(1, 3) AS k, clock;
                 INSERT INTO {name}.sessions
                     SELECT n, n * 10, now - interval '2 days', NULL
                     FROM generate_series(1, {USERS}) AS n, clock WHERE n % 50 IN (5, 10);
                 INSERT INTO {name}.sessions
                     SELECT n, n * 10, now - make_interval(days => 8 + n % 20), NULL
                     FROM generate_series(1, {USERS}) AS n, clock WHERE n % 50 NOT IN (0, 5, 10, 30);
                 ANALYZE {name}.users;
                 ANALYZE {name}.sessions;"
            ),
        )
        .expect("the Heap Connect schema is created");
        schema
    }
}

impl Drop for HeapConnectSchema {
    fn drop(&mut self) {
        // Not a panic: this may run while a failed test unwinds.
        if let Err(error) = psql(&self.url, &format!("DROP SCHEMA {} CASCADE", self.name)) {
            eprintln!("the test schema {} was not dropped: {error}", self.name);
        }
    }
}

fn write_config(workspace: &Workspace, schema: &str) {
    let users = format!(
        "    users:\n      type: heap_connect\n      url: ${{HEAP_CONNECT_URL}}\n      schema: {schema}\n      \
         email_property: email\n"
    );
    workspace.write_config_of("", &users, "");
}

#[tokio::test(flavor = "multi_thread")]
async fn enriches_the_heap_connect_users_seen_this_week_once_per_email() {
    let url = postgres_url();
    let created = Instant::now();
    let schema = tokio::task::spawn_blocking({
        let url = url.clone();
        move || HeapConnectSchema::create(&url)
    })
    .await
    .unwrap();
    eprintln!("created {USERS} Heap Connect users in {:.1?}", created.elapsed());
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    write_config(&workspace, &schema.name);

    let mut command = workspace.command(&["sync", "main"]);
    command.env("HEAP_CONNECT_URL", &url).env("ENRICH_LOG", "debug");
    let synced = Instant::now();
    let run = Run::from(tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap());
    eprintln!("enrich sync over {USERS} warehouse users took {:.1?}", synced.elapsed());
    run.success();

    let targets: Vec<u32> = (50..=USERS).step_by(50).collect();
    let expected_emails: BTreeSet<String> =
        targets.iter().map(|n| format!("p{}@firm{}.io", n / 100, n / 100 % 13)).collect();
    let asked: Vec<String> = workspace.emulator.clearbit_requests().into_iter().map(|r| r.email).collect();
    let asked_once: BTreeSet<String> = asked.iter().cloned().collect();
    assert_eq!(asked.len(), asked_once.len(), "one lookup per email");
    assert_eq!(asked_once, expected_emails, "exactly the emails of the users seen this week");

    let written: BTreeSet<String> = workspace.emulator.heap_users().into_keys().collect();
    let expected_identities: BTreeSet<String> = targets.iter().map(|n| format!("user-{n}")).collect();
    assert_eq!(written, expected_identities, "exactly the identified users seen this week with an email");

    // The warehouse filtered the window and the anonymous users: only categories 0 and 10 were read.
    assert_eq!(run.figure("users read"), 2 * targets.len() as u64);
    assert_eq!(run.figure("without email"), targets.len() as u64);
    for zero in ["outside the window", "bad rows skipped", "duplicate identities"] {
        assert!(!run.stdout.contains(zero), "the summary shows `{zero}` only when it is not zero:\n{run}");
    }
    assert_eq!(run.figure("lookups"), expected_emails.len() as u64);
    assert_eq!(run.figure("written"), targets.len() as u64);

    let password = url.rsplit_once('@').and_then(|(credentials, _)| credentials.rsplit_once(':')).unwrap().1;
    assert!(!run.stdout.contains(password) && !run.stderr.contains(password), "the password leaked:\n{run}");
    let state = workspace.state_bytes();
    assert!(
        !state.windows(password.len()).any(|window| window == password.as_bytes()),
        "the password is in the state folder"
    );
    drop(schema);
}
