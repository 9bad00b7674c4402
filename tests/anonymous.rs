//! Anonymous users end to end: the real binary reads a Heap Connect roster with `anonymous: true` from a
//! real PostgreSQL server. A Reveal-only connection writes every user, anonymous ones by `user_id`, to a
//! warehouse table (`postgres_table`), each row stamped with the time of its check even when a later
//! run writes it; an anonymous user is remembered apart from an identified user whose identity equals
//! its `user_id`. The same roster given to a Heap connection skips the anonymous users before any
//! lookup, with a counted reason, and Heap receives none of them. Second runs look nothing up.
//! Forgetting an IP address removes the anonymous users keyed by it and the identified user whose
//! email lookup fell back to it.
//!
//! Needs `ENRICH_TEST_POSTGRES_URL` (`cargo xtask test` sets it, or `eval "$(.ci/postgres start)"`).

mod support;

use enrich_emulator::EmulatorConfig;
use support::{Workspace, postgres_url, psql};

const HEAP_CONNECT_TABLES: &str = include_str!("fixtures/heap_connect_schema.sql");

/// Networks Reveal knows, and one it does not.
const NORTHWIND_OFFICE: &str = "81.2.69.10";
const PINECREST_OFFICE: &str = "81.2.69.11";
const ACME_OFFICE: &str = "81.2.69.12";
const UNKNOWN_NETWORK: &str = "81.2.69.13";

/// (user_id, identity, email, IP of the latest session).
const USERS: &[(i64, Option<&str>, Option<&str>, &str)] = &[
    (1, None, None, NORTHWIND_OFFICE),                    // anonymous
    (2, None, None, NORTHWIND_OFFICE),                    // anonymous, same office: no second lookup
    (3, None, None, PINECREST_OFFICE),                    // anonymous
    (5, Some("1"), None, UNKNOWN_NETWORK),                // identified as "1", which is user 1's user_id
    (6, Some("gus"), Some("gus@gmail.com"), ACME_OFFICE), // personal mail: falls back to Reveal
];

/// A Heap Connect schema with [`USERS`], dropped when the test ends.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    fn create(url: &str) -> Self {
        let schema = Self { url: url.to_owned(), name: format!("e2e_anonymous_{}", std::process::id()) };
        let name = &schema.name;
        let mut sql = format!("CREATE SCHEMA {name}; {}", HEAP_CONNECT_TABLES.replace("{schema}", name));
        let quoted = |text: Option<&str>| text.map_or("NULL".to_owned(), |text| format!("'{text}'"));
        for (user_id, identity, email, ip) in USERS {
            let (identity, email) = (quoted(*identity), quoted(*email));
            sql += &format!(
                "INSERT INTO {name}.users VALUES ({user_id}, {identity}, NULL, {email}, now(), now());
                 INSERT INTO {name}.sessions VALUES ({user_id}, {user_id}1, now() - interval '1 hour', '{ip}', 'UK');"
            );
        }
        // The warehouse table exists already and refuses every row until the constraint is dropped.
        sql += &format!(
            "CREATE TABLE {name}.clearbit_reveal (user_id TEXT PRIMARY KEY, identity TEXT,
                 checked_at TIMESTAMPTZ NOT NULL, properties JSONB NOT NULL DEFAULT '{{}}',
                 CONSTRAINT closed CHECK (false));"
        );
        psql(url, &sql).expect("the Heap Connect schema is created");
        schema
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Err(error) = psql(&self.url, &format!("DROP SCHEMA {} CASCADE", self.name)) {
            eprintln!("the test schema {} was not dropped: {error}", self.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_users_reach_the_warehouse_by_user_id_and_heap_never() {
    let url = postgres_url();
    let schema = tokio::task::spawn_blocking({
        let url = url.clone();
        move || Schema::create(&url)
    })
    .await
    .unwrap();
    let workspace =
        Workspace::start(EmulatorConfig { not_found_share: 0.0, ..EmulatorConfig::default() }).await;
    let emulator = &workspace.emulator;
    emulator.assign_network(NORTHWIND_OFFICE, "northwind.io");
    emulator.assign_network(PINECREST_OFFICE, "pinecrest.health");
    emulator.assign_network(ACME_OFFICE, "initech.com");
    let users = format!(
        "    users:\n      type: heap_connect\n      url: ${{HEAP_CONNECT_URL}}\n      schema: {}\n      \
         email_property: email\n      anonymous: true\n      tls: disable\n",
        schema.name
    );
    let reveal = format!("      reveal:\n        base_url: {}\n", emulator.clearbit_url());
    let table = format!("{}.clearbit_reveal", schema.name);
    let warehouse = format!(
        "  warehouse:
    source:
      type: clearbit_reveal
      api_key: ${{CLEARBIT_API_KEY}}
      base_url: {clearbit}
      requests_per_minute: 1000000
    sink:
      type: postgres_table
      url: ${{HEAP_CONNECT_URL}}
      table: {table}
      tls: disable
{users}",
        clearbit = emulator.clearbit_url(),
    );
    workspace.write_config_of(&reveal, &users, &warehouse);
    let enrich = |args: &[&str]| {
        let mut command = workspace.command(args);
        command.env("HEAP_CONNECT_URL", &url);
        async move {
            support::Run::from(tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap())
        }
    };
    let sql = |query: &str| psql(&url, query).unwrap();
    let validated = enrich(&["validate"]).await;
    validated.success();
    assert!(
        validated.stdout.contains(&format!("schema {}, anonymous ones included", schema.name)),
        "{validated}"
    );

    // The table refuses the writes: the checks wait as pending writes.
    let refused = enrich(&["sync", "warehouse"]).await;
    assert_eq!(refused.figure("lookups"), 4, "one Reveal lookup per address:\n{refused}");
    assert_eq!(refused.figure("failed"), 5, "{refused}");
    let checks_done = chrono::Utc::now();
    sql(&format!("ALTER TABLE {table} DROP CONSTRAINT closed"));
    let written = enrich(&["sync", "warehouse"]).await;
    written.success();
    assert_eq!((written.figure("lookups"), written.figure("resumed without lookup")), (0, 5), "{written}");
    let rows = sql(&format!(
        "SELECT user_id, coalesce(identity, '-'), coalesce(properties->>'Company Domain', '-'),
                checked_at < '{checks_done}'
                AND to_char(checked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                    = properties->>'Clearbit: Date Last Checked'
         FROM {table} ORDER BY user_id"
    ));
    assert_eq!(
        rows.lines().collect::<Vec<_>>(),
        [
            "1|-|northwind.io|t",
            "2|-|northwind.io|t",
            "3|-|pinecrest.health|t",
            "5|1|-|t",
            "6|gus|initech.com|t"
        ],
        "anonymous users by user_id; checked_at is the time of the check, before the run that wrote it"
    );
    let requests = emulator.clearbit_requests().len();
    let again = enrich(&["sync", "warehouse"]).await;
    again.success();
    assert_eq!((again.figure("lookups"), again.figure("checked recently")), (0, 5), "{again}");
    assert_eq!(emulator.clearbit_requests().len(), requests, "a second run asks nothing");

    // Heap cannot address anonymous users: skipped before any lookup, at every run.
    let reason = "3  skipped by heap: no identity (anonymous user)";
    for run in ["first", "second"] {
        let requests = emulator.clearbit_requests().len();
        let main = enrich(&["sync", "main"]).await;
        main.success();
        assert_eq!(main.figure("skipped by the sink"), 3, "{run} run:\n{main}");
        assert!(main.stdout.contains(reason), "{run} run:\n{main}");
        let lookups = if run == "first" { 2 } else { 0 };
        assert_eq!(main.figure("lookups"), lookups, "{run} run: user 5's address and gus's email:\n{main}");
        let asked: Vec<String> =
            emulator.clearbit_requests()[requests..].iter().map(|request| request.email.clone()).collect();
        assert!(!asked.iter().any(|key| key == NORTHWIND_OFFICE || key == PINECREST_OFFICE), "{asked:?}");
    }
    let status = enrich(&["status", "main"]).await;
    assert!(status.stdout.contains("skipped by the sink 3"), "{status}");
    let heap = emulator.heap_users();
    assert_eq!(heap.keys().collect::<Vec<_>>(), ["1", "gus"], "Heap receives no anonymous user");
    assert_eq!(heap["gus"]["Clearbit: Company Source"], "reveal", "gus's email fell back to Reveal");

    let forgot = enrich(&["forget", "main", ACME_OFFICE]).await;
    forgot.success();
    assert!(forgot.stdout.contains("1 user removed from the state (gus)"), "{forgot}");
    let forgot = enrich(&["forget", "warehouse", NORTHWIND_OFFICE]).await;
    forgot.success();
    assert!(forgot.stdout.contains("2 users removed from the state (user_id 1, user_id 2)"), "{forgot}");
    drop(schema);
}
