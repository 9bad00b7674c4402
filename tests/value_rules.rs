//! Each sink's own value rules, end to end: the real binary looks the same users up for Heap and for a
//! warehouse table (`postgres_table`, on a real PostgreSQL server). Heap receives a 2,000-byte value cut
//! below 1,024 bytes, reported as cut, and skips an identity of 300 characters before any lookup; the
//! table, which has no such limits, gets the value whole and writes the long identity.
//!
//! Needs `ENRICH_TEST_POSTGRES_URL` (`cargo xtask test` sets it, or `eval "$(.ci/postgres start)"`).

mod support;

use enrich_emulator::{EmulatorConfig, Scripted};
use support::{Workspace, postgres_url, psql};

const BIO_EMAIL: &str = "bio@acme.io";
const LONG_EMAIL: &str = "long@acme.io";

/// A schema of its own for the table, dropped when the test ends.
struct Schema {
    url: String,
    name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Err(error) = psql(&self.url, &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name)) {
            eprintln!("the test schema {} was not dropped: {error}", self.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn heap_gets_values_cut_and_long_identities_skipped_and_a_table_gets_both_whole() {
    let url = postgres_url();
    let schema = Schema { url: url.clone(), name: format!("e2e_value_rules_{}", std::process::id()) };
    let workspace =
        Workspace::start(EmulatorConfig { not_found_share: 0.0, ..EmulatorConfig::default() }).await;
    let emulator = &workspace.emulator;
    let bio = "é".repeat(1000); // 2,000 bytes
    let answer = serde_json::json!({ "person": { "bio": bio }, "company": null }).to_string();
    emulator.script_clearbit(BIO_EMAIL, vec![Scripted::Body(200, answer); 2]);
    let long_identity = "x".repeat(300);
    let seen = chrono::Utc::now().to_rfc3339();
    let roster = format!(
        "identity,email,user_id,last_seen\nbio,{BIO_EMAIL},1,{seen}\n{long_identity},{LONG_EMAIL},2,{seen}\n"
    );
    std::fs::write(workspace.path("users.csv"), roster).unwrap();
    let table = format!("{}.enriched", schema.name);
    let warehouse = format!(
        "  warehouse:
    source:
      type: clearbit
      api_key: ${{CLEARBIT_API_KEY}}
      base_url: {clearbit}
      requests_per_minute: 1000000
    sink:
      type: postgres_table
      url: ${{WAREHOUSE_URL}}
      table: {table}
      tls: disable
{users}",
        clearbit = emulator.clearbit_url(),
        users = support::CSV_USERS,
    );
    workspace.write_config_with("", &warehouse);
    let enrich = |args: &[&str]| {
        let mut command = workspace.command(args);
        command.env("WAREHOUSE_URL", &url);
        async move {
            support::Run::from(tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap())
        }
    };

    let heap = enrich(&["sync", "main"]).await;
    heap.success();
    assert_eq!(heap.figure("values cut to fit"), 1, "{heap}");
    assert_eq!((heap.figure("lookups"), heap.figure("skipped by the sink")), (1, 1), "{heap}");
    assert!(heap.stdout.contains("1  skipped by heap: identity longer than 255 characters"), "{heap}");
    let asked: Vec<String> =
        emulator.clearbit_requests().iter().map(|request| request.email.clone()).collect();
    assert_eq!(asked, [BIO_EMAIL], "nothing is paid for a user Heap cannot take");
    let written = emulator.heap_users();
    assert_eq!(written.keys().collect::<Vec<_>>(), ["bio"]);
    let heap_bio = written["bio"]["Person Bio"].as_str().unwrap();
    assert_eq!(heap_bio, "é".repeat(511), "1,022 bytes: cut at a character boundary, below 1,024");

    let table_run = enrich(&["sync", "warehouse"]).await;
    table_run.success();
    assert_eq!(table_run.figure("lookups"), 2, "{table_run}");
    assert!(!table_run.stdout.contains("values cut to fit"), "nothing cut:\n{table_run}");
    let rows = psql(
        &url,
        &format!(
            "SELECT user_id, char_length(identity),
                    CASE WHEN user_id = '1' THEN octet_length(properties->>'Person Bio') END
             FROM {table} ORDER BY user_id"
        ),
    )
    .unwrap();
    assert_eq!(
        rows.lines().collect::<Vec<_>>(),
        ["1|3|2000", "2|300|"],
        "the bio whole; the long identity written"
    );
    println!(
        "Heap: bio cut from 2,000 to {} bytes, identity of 300 skipped; table: both whole",
        heap_bio.len()
    );
    drop(schema);
}
