//! The `postgres_table` sink: properties written to a warehouse table beside Heap Connect's, one row per
//! Heap `user_id`, for users Heap's API cannot address (anonymous ones) and for joins in SQL.
//!
//! The table (and its schema) is created when missing:
//! `user_id TEXT PRIMARY KEY, identity TEXT, checked_at TIMESTAMPTZ, properties JSONB`, the properties
//! keyed by the same human-readable names as in Heap, `checked_at` the time of the check (not of the
//! write: a check written by a later run keeps its time). A write upserts each user's row: new values
//! replace old ones, a property sent empty (no longer true) is removed from the object, the rest stay.
//! It speaks PostgreSQL's dialect (10 or later: `jsonb - text[]`, `ON CONFLICT`); Redshift has neither
//! JSONB nor `ON CONFLICT` (it has SUPER and MERGE), so the sink refuses nothing there but the first
//! write fails with the server's message: see docs/connectors.md.

use async_trait::async_trait;
use enrich_core::{
    ConnectorError, FieldError, Properties, PropertyValue, Refused, Sink, UserRecord, UserUpdate,
    ensure_valid,
};
use futures::future::try_join_all;
use secrecy::SecretString;
use serde::Deserialize;
use tokio::sync::OnceCell;
use tokio_postgres::types::ToSql;

use crate::database::{Database, TlsMode, error_message, url_problem};
use crate::identifier::{name_problem, quoted};

/// Users a write carries at most: one statement each, pipelined in one transaction.
const MAX_BATCH: usize = 500;

/// Why a user cannot have a row: the table is keyed by Heap's `user_id`.
const NO_USER_ID: &str = "no Heap user_id: the roster must have one (heap_connect, or user_id in a query)";

/// The `postgres_table` sink config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresTableConfig {
    /// `postgres://user:password@host:5432/database`. A secret: it holds the password.
    pub url: SecretString,
    /// `schema.table`, such as `enrich.clearbit_reveal`; each part exactly as written (case included).
    pub table: String,
    /// By default `require`, or `disable` for a server on this machine: see [`TlsMode`].
    #[serde(default)]
    pub tls: Option<TlsMode>,
}

impl PostgresTableConfig {
    /// Every problem in this config, found without the network. Messages never quote the URL.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut problems = Vec::new();
        if let Some(problem) = url_problem(&self.url) {
            problems.push(FieldError::new("url", problem));
        }
        match self.table.split_once('.') {
            Some((schema, table)) => {
                for (part, name) in [("schema", schema), ("table", table)] {
                    if let Some(problem) = name_problem(name) {
                        problems.push(FieldError::new("table", format!("the {part} name {problem}")));
                    }
                }
            }
            None => problems.push(FieldError::new(
                "table",
                "must name the schema and the table, such as enrich.clearbit_reveal",
            )),
        }
        problems
    }
}

/// Writes users' properties to a PostgreSQL table. Its `Debug` shows no password.
#[derive(Debug)]
pub struct PostgresTableSink {
    database: Database,
    schema: String,
    table: String,
    /// Set once the table is known to exist (created if it was missing).
    created: OnceCell<()>,
}

impl PostgresTableSink {
    pub fn new(config: &PostgresTableConfig) -> Result<Self, ConnectorError> {
        ensure_valid("postgres_table sink", &config.validate())?;
        let (schema, table) = config.table.split_once('.').unwrap_or_default();
        Ok(Self {
            database: Database::new(&config.url, config.tls)?,
            schema: schema.to_owned(),
            table: table.to_owned(),
            created: OnceCell::new(),
        })
    }

    /// The table as SQL names it.
    fn qualified(&self) -> String {
        format!("{}.{}", quoted(&self.schema), quoted(&self.table))
    }

    fn shown(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    fn failed(&self, doing: &str, error: &tokio_postgres::Error) -> ConnectorError {
        ConnectorError::Transient(format!("cannot {doing} {}: {}", self.shown(), error_message(error)))
    }

    async fn create_table(&self, client: &tokio_postgres::Client) -> Result<(), ConnectorError> {
        let sql = format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {table} (
                 user_id TEXT PRIMARY KEY,
                 identity TEXT,
                 checked_at TIMESTAMPTZ NOT NULL,
                 properties JSONB NOT NULL DEFAULT '{{}}'
             )",
            schema = quoted(&self.schema),
            table = self.qualified(),
        );
        client.batch_execute(&sql).await.map_err(|error| self.failed("create", &error))
    }

    /// One row's upsert: the properties set merged over the old ones, the cleared ones removed.
    fn upsert_sql(&self) -> String {
        format!(
            "INSERT INTO {table} AS old (user_id, identity, checked_at, properties)
             VALUES ($1, $2, $3, $4::text::jsonb)
             ON CONFLICT (user_id) DO UPDATE SET
                 identity = COALESCE(EXCLUDED.identity, old.identity),
                 checked_at = EXCLUDED.checked_at,
                 properties = (old.properties || EXCLUDED.properties) - $5::text[]",
            table = self.qualified()
        )
    }
}

/// The properties to set, as a JSON object, and the names to remove (those sent empty).
fn split_cleared(properties: &Properties) -> (String, Vec<String>) {
    let (cleared, set): (Properties, Properties) = properties
        .iter()
        .map(|(name, value)| (name.clone(), value.clone()))
        .partition(|(_, value)| matches!(value, PropertyValue::Text(text) if text.is_empty()));
    let json = serde_json::to_string(&set).unwrap_or_else(|_| "{}".to_owned());
    (json, cleared.into_keys().collect())
}

#[async_trait]
impl Sink for PostgresTableSink {
    fn kind(&self) -> &'static str {
        "postgres_table"
    }

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    fn cannot_address(&self, user: &UserRecord) -> Option<&'static str> {
        user.user_id.is_none().then_some(NO_USER_ID)
    }

    /// Users without a Heap `user_id` are refused one by one: the table is keyed by it.
    async fn write(&self, batch: &[UserUpdate]) -> Result<Refused, ConnectorError> {
        let (mut client, connection) = self.database.connect().await?;
        self.created.get_or_try_init(|| self.create_table(&client)).await?;
        let transaction = client.transaction().await.map_err(|error| self.failed("write to", &error))?;
        let statement =
            transaction.prepare(&self.upsert_sql()).await.map_err(|error| self.failed("write to", &error))?;
        let mut refused = Refused::new();
        let mut rows = Vec::with_capacity(batch.len());
        for (at, update) in batch.iter().enumerate() {
            let Some(user_id) = update.user_id.as_deref() else {
                refused.push((at, NO_USER_ID.to_owned()));
                continue;
            };
            let (properties, cleared) = split_cleared(&update.properties);
            rows.push((user_id, update.identity.as_deref(), update.checked_at, properties, cleared));
        }
        // The statements are pipelined: one round trip's wait for the whole batch, not one per user.
        try_join_all(rows.iter().map(|(user_id, identity, checked_at, properties, cleared)| {
            let parameters: [&(dyn ToSql + Sync); 5] = [user_id, identity, checked_at, properties, cleared];
            transaction.execute_raw(&statement, parameters)
        }))
        .await
        .map_err(|error| self.failed("write to", &error))?;
        transaction.commit().await.map_err(|error| self.failed("write to", &error))?;
        connection.finish(client).await;
        Ok(refused)
    }

    /// Connects and says whether the table exists (a write creates it).
    async fn check(&self) -> Result<String, ConnectorError> {
        let (client, connection) = self.database.connect().await?;
        let exists = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&self.qualified()])
            .await
            .map_err(|error| {
                ConnectorError::Fatal(format!("cannot look for {}: {}", self.shown(), error_message(&error)))
            })?
            .get::<_, bool>(0);
        connection.finish(client).await;
        Ok(if exists {
            format!("connected as {}; table {} exists", self.database.user(), self.shown())
        } else {
            format!(
                "connected as {}; table {} will be created at the first write",
                self.database.user(),
                self.shown()
            )
        })
    }
}
