//! Clearbit Reveal end to end: the real binary reads a Heap Connect roster from a real PostgreSQL
//! server (each user's IP address from their latest session), looks emails up in the emulated
//! Clearbit, and falls back to Reveal for identified users whose email found no company (personal
//! mail, not found) or who have no email. Users whose email found a company are never revealed; each
//! public address is asked once however many users share it; private ones never; a second run asks
//! nothing; no address is stored in clear. A second connection, Reveal alone, writes every user's
//! company to a warehouse table keyed by Heap's `user_id` (`postgres_table`).
//!
//! Needs `ENRICH_TEST_POSTGRES_URL` (`cargo xtask test` sets it, or `eval "$(.ci/postgres start)"`).

mod support;

use enrich_emulator::EmulatorConfig;
use serde_json::{Map, Value};
use support::{Workspace, postgres_url, psql};

const HEAP_CONNECT_TABLES: &str = include_str!("fixtures/heap_connect_schema.sql");

/// Two offices whose networks Reveal knows, one address it does not, one private.
const NORTHWIND_OFFICE: &str = "81.2.69.10";
const PINECREST_OFFICE: &str = "81.2.69.11";
const ACME_OFFICE: &str = "81.2.69.12";
const UNKNOWN_NETWORK: &str = "81.2.69.13";
const HOME_ROUTER: &str = "10.0.0.5";

/// (user_id, identity, email, IP of the latest session; an older session came from elsewhere).
const USERS: &[(i64, &str, Option<&str>, &str)] = &[
    (1, "ana", Some("ana.berg@gmail.com"), NORTHWIND_OFFICE), // personal mail: a person at best
    (2, "bo", None, NORTHWIND_OFFICE),                        // no email, same office: no second lookup
    (3, "cy", Some("cy@gone.io"), PINECREST_OFFICE),          // Clearbit does not know the email
    (4, "di", Some("di@acme.io"), ACME_OFFICE),               // found by email: never revealed
    (5, "ed", None, HOME_ROUTER),                             // a private address is never sent
    (6, "fay", Some("fay@gmail.com"), UNKNOWN_NETWORK),       // Reveal knows nothing either
];

/// A Heap Connect schema with [`USERS`], dropped when the test ends.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    fn create(url: &str) -> Self {
        let schema = Self { url: url.to_owned(), name: format!("e2e_reveal_{}", std::process::id()) };
        let name = &schema.name;
        let mut sql = format!("CREATE SCHEMA {name}; {}", HEAP_CONNECT_TABLES.replace("{schema}", name));
        for (user_id, identity, email, ip) in USERS {
            let email = email.map_or("NULL".to_owned(), |email| format!("'{email}'"));
            sql += &format!(
                "INSERT INTO {name}.users VALUES ({user_id}, '{identity}', NULL, {email}, now(), now());
                 INSERT INTO {name}.sessions VALUES
                     ({user_id}, {user_id}0, now() - interval '3 days', '81.2.69.200', 'UK'),
                     ({user_id}, {user_id}1, now() - interval '1 hour', '{ip}', 'UK');"
            );
        }
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

fn text<'a>(properties: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    properties.get(name).and_then(Value::as_str).filter(|value| !value.is_empty())
}

#[tokio::test(flavor = "multi_thread")]
async fn users_without_a_company_by_email_get_one_by_ip_and_each_address_is_asked_once() {
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
    emulator.opt_out("cy@gone.io");
    emulator.assign_network(NORTHWIND_OFFICE, "northwind.io");
    emulator.assign_network(PINECREST_OFFICE, "pinecrest.health");
    emulator.assign_network(ACME_OFFICE, "initech.com");
    let users = format!(
        "    users:\n      type: heap_connect\n      url: ${{HEAP_CONNECT_URL}}\n      schema: {}\n      \
         email_property: email\n      tls: disable\n",
        schema.name
    );
    let reveal = format!("      reveal:\n        base_url: {}\n", emulator.clearbit_url());
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
      table: {schema}.clearbit_reveal
      tls: disable
{users}",
        clearbit = emulator.clearbit_url(),
        schema = schema.name,
    );
    workspace.write_config_of(&reveal, &users, &warehouse);

    // `enrich ARGS` with the warehouse's URL, logging at debug (where no address may appear in clear).
    let enrich = |args: &[&str]| {
        let mut command = workspace.command(args);
        command.env("HEAP_CONNECT_URL", &url).env("ENRICH_LOG", "debug");
        async move {
            support::Run::from(tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap())
        }
    };
    let first = enrich(&["sync", "main"]).await;
    first.success();

    let asked = |path: &str| -> Vec<String> {
        let mut keys: Vec<String> = emulator
            .clearbit_requests()
            .into_iter()
            .filter(|request| request.path == path)
            .map(|request| request.email)
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(
        asked("/v2/combined/find"),
        ["ana.berg@gmail.com", "cy@gone.io", "di@acme.io", "fay@gmail.com"]
    );
    assert_eq!(
        asked("/v1/companies/find"),
        [NORTHWIND_OFFICE, PINECREST_OFFICE, UNKNOWN_NETWORK],
        "one Reveal lookup per public address; none for a company found by email, none for a private one"
    );

    let heap = emulator.heap_users();
    let company = |identity: &str| {
        let properties = &heap[identity];
        (text(properties, "Clearbit: Company Source"), text(properties, "Company Domain"))
    };
    assert_eq!(company("ana"), (Some("reveal"), Some("northwind.io")));
    assert_eq!(company("bo"), (Some("reveal"), Some("northwind.io")));
    assert_eq!(company("cy"), (Some("reveal"), Some("pinecrest.health")));
    assert_eq!(company("di"), (Some("enrichment"), Some("acme.io")));
    assert_eq!(company("fay"), (None, None));
    assert!(!heap.contains_key("ed"), "a user without email and with a private address is not looked up");
    assert_eq!(text(&heap["ana"], "Clearbit: Match"), Some("person only"), "what the email found stays");
    assert_eq!(text(&heap["bo"], "Clearbit: Reveal Confidence"), Some("very_high"));
    assert_eq!(first.figure("without email"), 1);
    assert_eq!(first.figure("lookups"), 5, "four emails and bo's address");

    let requests = emulator.clearbit_requests().len();
    let second = enrich(&["sync", "main"]).await;
    second.success();
    assert_eq!(second.figure("lookups"), 0);
    assert_eq!(emulator.clearbit_requests().len(), requests, "a second run asks nothing");

    let state = workspace.state_bytes();
    for ip in [NORTHWIND_OFFICE, PINECREST_OFFICE, UNKNOWN_NETWORK] {
        assert!(!state.windows(ip.len()).any(|window| window == ip.as_bytes()), "{ip} is stored in clear");
        assert!(!first.stderr.contains(ip), "{ip} is logged in clear:\n{}", first.stderr);
    }

    let before = emulator.clearbit_requests().len();
    enrich(&["sync", "warehouse"]).await.success();
    assert_eq!(emulator.clearbit_requests().len() - before, 4, "one Reveal lookup per public address");
    let table = format!("{}.clearbit_reveal", schema.name);
    let rows = psql(
        &url,
        &format!(
            "SELECT user_id, identity, properties->>'Company Domain', properties->>'Clearbit: Company Source', \
             properties ? 'Clearbit: Date Last Checked' FROM {table} ORDER BY user_id"
        ),
    )
    .unwrap();
    assert_eq!(
        rows.lines().collect::<Vec<_>>(),
        [
            "1|ana|northwind.io|reveal|t",
            "2|bo|northwind.io|reveal|t",
            "3|cy|pinecrest.health|reveal|t",
            "4|di|initech.com|reveal|t",
            "6|fay|||t",
        ]
    );
    let before = emulator.clearbit_requests().len();
    enrich(&["sync", "warehouse"]).await.success();
    assert_eq!(emulator.clearbit_requests().len(), before, "a second run looks nothing up");

    let forgot = enrich(&["forget", "warehouse", NORTHWIND_OFFICE]).await;
    forgot.success();
    assert!(forgot.stdout.contains("2 users removed from the state (ana, bo)"), "{forgot}");
    assert!(forgot.stdout.contains("this address will not be looked up again"), "{forgot}");
    drop(schema);
}
