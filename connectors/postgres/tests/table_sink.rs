//! The `postgres_table` sink against a real PostgreSQL server: the table is created with its schema,
//! rows are upserted by Heap `user_id` with the time of their check, properties no longer true are
//! removed, users without a `user_id` are refused one by one.

mod support;

use chrono::{DateTime, Utc};
use enrich_core::{Properties, PropertyValue, Sink, UserUpdate};
use enrich_postgres::{PostgresTableConfig, PostgresTableSink};
use serde_json::{Value, json};
use support::{Scratch, server_url};

fn sink(url: &str, table: &str) -> PostgresTableSink {
    let config: PostgresTableConfig =
        serde_json::from_value(json!({ "url": url, "table": table, "tls": "disable" })).unwrap();
    PostgresTableSink::new(&config).unwrap()
}

/// When every update's check was made: a day before the test, not when it is written.
fn checked_at() -> DateTime<Utc> {
    "2026-01-02T03:04:05Z".parse().unwrap()
}

fn update(user_id: Option<&str>, identity: Option<&str>, properties: &[(&str, &str)]) -> UserUpdate {
    let properties: Properties = properties
        .iter()
        .map(|(name, value)| ((*name).to_owned(), PropertyValue::Text((*value).to_owned())))
        .collect();
    UserUpdate {
        identity: identity.map(str::to_owned),
        user_id: user_id.map(str::to_owned),
        properties,
        checked_at: checked_at(),
    }
}

async fn rows(scratch: &Scratch, table: &str) -> Vec<(String, Option<String>, Value)> {
    let sql =
        format!("SELECT user_id, identity, properties::text FROM {} ORDER BY user_id", scratch.table(table));
    let rows = scratch.client.query(&sql, &[]).await.unwrap();
    rows.iter()
        .map(|row| (row.get(0), row.get(1), serde_json::from_str(row.get::<_, &str>(2)).unwrap()))
        .collect()
}

#[tokio::test]
async fn creates_the_table_upserts_by_user_id_and_removes_what_is_no_longer_true() {
    let url = server_url();
    let scratch = Scratch::new(&url, "Table Sink").await;
    // The schema is the sink's to create: the scratch one is dropped first.
    scratch.client.batch_execute(&format!("DROP SCHEMA {}", support::quoted(&scratch.name))).await.unwrap();
    let sink = sink(&url, &format!("{}.reveal", scratch.name));
    assert!(sink.check().await.unwrap().ends_with("will be created at the first write"));

    let refused = sink
        .write(&[
            update(
                Some("1"),
                Some("ana"),
                &[("Company Name", "Acme"), ("Clearbit: Company Source", "reveal")],
            ),
            update(Some("2"), None, &[("Company Name", "Initech")]),
            update(None, Some("csv-user"), &[("Company Name", "Nobody")]),
        ])
        .await
        .unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, 2);
    assert!(refused[0].1.starts_with("no Heap user_id"), "{refused:?}");
    assert_eq!(
        rows(&scratch, "reveal").await,
        [
            (
                "1".to_owned(),
                Some("ana".to_owned()),
                json!({ "Company Name": "Acme", "Clearbit: Company Source": "reveal" })
            ),
            ("2".to_owned(), None, json!({ "Company Name": "Initech" })),
        ]
    );
    let sql = format!("SELECT DISTINCT checked_at FROM {}", scratch.table("reveal"));
    let times: Vec<DateTime<Utc>> =
        scratch.client.query(&sql, &[]).await.unwrap().iter().map(|row| row.get(0)).collect();
    assert_eq!(times, [checked_at()], "the time of the check, not of the write");

    sink.write(&[update(Some("1"), None, &[("Company Name", ""), ("Company Domain", "acme.io")])])
        .await
        .unwrap();
    let rows = rows(&scratch, "reveal").await;
    assert_eq!(
        rows[0],
        (
            "1".to_owned(),
            Some("ana".to_owned()),
            json!({ "Company Domain": "acme.io", "Clearbit: Company Source": "reveal" })
        ),
        "a cleared property is removed, the identity kept"
    );
    assert!(sink.check().await.unwrap().ends_with("exists"));
}

#[test]
fn a_user_without_a_user_id_cannot_have_a_row() {
    let sink = sink("postgres://u:p@127.0.0.1/db", "enrich.reveal");
    let user = |user_id: Option<&str>| enrich_core::UserRecord {
        identity: Some("csv-user".into()),
        user_id: user_id.map(str::to_owned),
        email: None,
        ip: None,
        name: enrich_core::PersonName::default(),
        last_seen: Utc::now(),
    };
    assert!(sink.cannot_address(&user(None)).is_some_and(|reason| reason.starts_with("no Heap user_id")));
    assert_eq!(sink.cannot_address(&user(Some("7"))), None);
}

#[test]
fn the_table_must_name_its_schema() {
    let config: PostgresTableConfig =
        serde_json::from_value(json!({ "url": "postgres://u:secret@h/db", "table": "reveal" })).unwrap();
    let problems = config.validate();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].field, "table");
    assert!(!format!("{problems:?}").contains("secret"));
}
