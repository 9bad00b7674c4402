//! What the warehouse tests share: the server they run against, a throwaway schema per test, and Heap
//! Connect's tables.
//!
//! The tests need a real PostgreSQL server: `eval "$(.ci/postgres start)"` starts one and sets
//! `ENRICH_TEST_POSTGRES_URL` (a superuser on loopback, with password authentication); `cargo xtask test`
//! does that and runs every test. Without it, each test fails saying so.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Utc};
use enrich_core::{DirectoryError, UserRecord};
use futures::StreamExt;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};

pub const URL_VARIABLE: &str = "ENRICH_TEST_POSTGRES_URL";

const HEAP_CONNECT_TABLES: &str = include_str!("../../../../tests/fixtures/heap_connect_schema.sql");

/// The server's URL; without one the test fails, saying how to get it.
pub fn server_url() -> String {
    std::env::var(URL_VARIABLE).ok().filter(|url| !url.is_empty()).unwrap_or_else(|| {
        panic!(
            "{URL_VARIABLE} is not set: `cargo xtask test` starts a PostgreSQL server and runs every test \
             (or eval \"$(.ci/postgres start)\" before cargo test)"
        )
    })
}

/// The test URL with its password replaced.
pub fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (credentials, host) = rest.rsplit_once('@').expect("the test URL has credentials");
    let user = credentials.split(':').next().unwrap();
    format!("{scheme}://{user}:{password}@{host}")
}

pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("the test server answers");
    tokio::spawn(connection);
    client
}

/// A schema of its own for one test, dropped with everything in it when the test ends, failed or not.
pub struct Scratch {
    url: String,
    pub name: String,
    pub client: Client,
}

impl Scratch {
    /// A new schema named after `label`, made unique; `label` may hold any character, and must be short
    /// enough (40 bytes) for the server to keep the name whole.
    pub async fn new(url: &str, label: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        assert!(label.len() <= 40, "{label:?} is too long a schema name");
        let name = format!("{label} {}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let client = connect(url).await;
        client
            .batch_execute(&format!("CREATE SCHEMA {}", quoted(&name)))
            .await
            .expect("the schema is created");
        Self { url: url.to_owned(), name, client }
    }

    /// `"schema"."table"`.
    pub fn table(&self, table: &str) -> String {
        format!("{}.{}", quoted(&self.name), quoted(table))
    }

    pub async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) {
        self.client.execute(sql, params).await.unwrap_or_else(|error| panic!("{sql}: {error:?}"));
    }

    /// Heap Connect's `users` and `sessions` tables (the fixture the binary's tests and the demo share),
    /// with `time` of the given type and, when given, one extra (custom property) column in `users`.
    pub async fn create_heap_connect_tables(&self, time_type: &str, extra_user_column: Option<&str>) {
        let mut sql = HEAP_CONNECT_TABLES.replace("{schema}", &quoted(&self.name));
        sql += &format!("ALTER TABLE {} ALTER COLUMN time TYPE {time_type};", self.table("sessions"));
        if let Some(column) = extra_user_column {
            sql += &format!("ALTER TABLE {} ADD COLUMN {column};", self.table("users"));
        }
        self.client.batch_execute(&sql).await.expect("the tables are created");
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let (url, drop_schema) = (self.url.clone(), format!("DROP SCHEMA {} CASCADE", quoted(&self.name)));
        // Drop cannot await, and may run while the test's runtime unwinds: a runtime of its own.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
                let client = connect(&url).await;
                client.batch_execute(&drop_schema).await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(_))) && !std::thread::panicking() {
            panic!("the test schema {:?} could not be dropped: {dropped:?}", self.name);
        }
    }
}

pub fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Everything a directory's stream gave: the users, and the bad rows and fatal errors.
pub async fn collect(
    stream: enrich_core::UserStream,
) -> (Vec<UserRecord>, Vec<(String, String)>, Vec<String>) {
    let (mut users, mut bad_rows, mut fatal) = (Vec::new(), Vec::new(), Vec::new());
    let items: Vec<_> = stream.collect().await;
    for item in items {
        match item {
            Ok(user) => users.push(user),
            Err(DirectoryError::BadRow { location, message }) => bad_rows.push((location, message)),
            Err(DirectoryError::Fatal(message)) => fatal.push(message),
        }
    }
    sort_users(&mut users);
    (users, bad_rows, fatal)
}

/// In a stable order to compare: by user id (as a number where it is one), then identity.
pub fn sort_users(users: &mut [UserRecord]) {
    users.sort_by_key(|user| {
        let user_id = user.user_id.clone().unwrap_or_default();
        (user_id.len(), user_id, user.identity.clone())
    });
}

pub fn user(user_id: i64, identity: &str, email: Option<&str>, last_seen: DateTime<Utc>) -> UserRecord {
    UserRecord {
        identity: Some(identity.to_owned()),
        user_id: Some(user_id.to_string()),
        email: email.map(str::to_owned),
        ip: None,
        name: enrich_core::PersonName::default(),
        last_seen,
    }
}
