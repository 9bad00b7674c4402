//! The Heap Connect directory: the roster read from the tables Heap Connect syncs to a warehouse.
//!
//! Heap Connect writes one schema per environment (`main_production`), with a `users` table (`user_id`,
//! `identity`, `email`, `last_modified`, one column per custom user property) and a `sessions` table
//! (`user_id`, `time`, `ip`, …). There is no "last seen" column: it is the latest session's `time`, and
//! the user's IP address (for IP-keyed sources, and as a match hint) is that session's `ip`. The sync
//! may write a user's row more than once: the latest `last_modified` wins. Users without an identity
//! (anonymous ones, most of them) cannot be addressed in Heap: they are left out in SQL, not reported,
//! unless `anonymous: true` asks for them, addressed by `user_id` (for a warehouse sink).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use enrich_core::{ConnectorError, FieldError, UserDirectory, UserStream, ensure_valid};
use secrecy::SecretString;
use serde::Deserialize;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use crate::database::{Database, TlsMode, error_message, url_problem};
use crate::identifier::{name_problem, quoted};
use crate::rows::{ColumnKind, RowPlace, UserColumns, user_stream, window_start};

const USERS_TABLE: &str = "users";
const SESSIONS_TABLE: &str = "sessions";
const USER_ID: &str = "user_id";
/// The identity column; as `email_property`, it says that identities are the email addresses.
const IDENTITY: &str = "identity";
const LAST_MODIFIED: &str = "last_modified";
const SESSION_TIME: &str = "time";
const SESSION_IP: &str = "ip";

/// Columns a table must have, each with the kind it must be of (`None`: any).
type NeededColumns<'a> = Vec<(&'a str, Option<ColumnKind>)>;

/// The `heap_connect` users config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeapConnectConfig {
    /// `postgres://user:password@host:5432/database` (Redshift: port 5439). A secret: it holds the
    /// password.
    pub url: SecretString,
    /// Heap Connect's schema for the environment, such as `main_production`; exactly as written (case
    /// included).
    pub schema: String,
    /// The `users` column holding each user's email, or `identity` when identities are emails.
    pub email_property: String,
    /// The `users` columns holding the person's first and last names, if the environment has such
    /// properties: sent to the source as match hints.
    #[serde(default)]
    pub given_name_property: Option<String>,
    #[serde(default)]
    pub family_name_property: Option<String>,
    /// By default `require`, or `disable` for a server on this machine: see [`TlsMode`].
    #[serde(default)]
    pub tls: Option<TlsMode>,
    /// Include users without an identity (anonymous ones), addressed by their `user_id`.
    #[serde(default)]
    pub anonymous: bool,
}

impl HeapConnectConfig {
    /// Every problem in this config, found without the network. Messages never quote the URL.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut problems = Vec::new();
        if let Some(problem) = url_problem(&self.url) {
            problems.push(FieldError::new("url", problem));
        }
        if let Some(problem) = name_problem(&self.schema) {
            problems.push(FieldError::new(
                "schema",
                format!("{problem}: name Heap Connect's schema, such as main_production"),
            ));
        }
        for (field, column) in [
            ("given_name_property", &self.given_name_property),
            ("family_name_property", &self.family_name_property),
        ] {
            if let Some(problem) = column.as_deref().and_then(name_problem) {
                problems
                    .push(FieldError::new(field, format!("{problem}: name a users column, or leave it out")));
            }
        }
        if let Some(problem) = name_problem(&self.email_property) {
            problems.push(FieldError::new(
                "email_property",
                format!(
                    "{problem}: name the users column holding the email, or `identity` when identities \
                     are emails"
                ),
            ));
        }
        problems
    }
}

/// Users read from a Heap Connect schema.
#[derive(Debug)]
pub struct HeapConnectDirectory {
    database: Database,
    schema: String,
    /// `None` when identities are the emails.
    email_column: Option<String>,
    given_name_column: Option<String>,
    family_name_column: Option<String>,
    /// Users without an identity are read too.
    anonymous: bool,
}

impl HeapConnectDirectory {
    /// Builds the directory from a config, refusing one that [`HeapConnectConfig::validate`] finds fault
    /// with. Connects to nothing until [`UserDirectory::users`].
    pub fn new(config: &HeapConnectConfig) -> Result<Self, ConnectorError> {
        ensure_valid("heap_connect users", &config.validate())?;
        Ok(Self {
            database: Database::new(&config.url, config.tls)?,
            schema: config.schema.clone(),
            email_column: (config.email_property != IDENTITY).then(|| config.email_property.clone()),
            given_name_column: config.given_name_property.clone(),
            family_name_column: config.family_name_property.clone(),
            anonymous: config.anonymous,
        })
    }

    /// The optional `users` columns the roster reads, in the order the query returns them after
    /// user_id, identity, last_seen and ip, with the name the query gives each.
    fn optional_columns(&self) -> Vec<(&str, &'static str)> {
        [
            (&self.email_column, "email"),
            (&self.given_name_column, "given_name"),
            (&self.family_name_column, "family_name"),
        ]
        .into_iter()
        .filter_map(|(column, alias)| Some((column.as_deref()?, alias)))
        .collect()
    }

    /// A table as messages name it: `main_production.users`.
    fn shown(&self, table: &str) -> String {
        format!("{}.{table}", self.schema)
    }

    /// The columns each table must have.
    fn required_columns(&self) -> [(&'static str, NeededColumns<'_>); 2] {
        let mut users = vec![
            (USER_ID, Some(ColumnKind::UserId)),
            (IDENTITY, Some(ColumnKind::Text)),
            (LAST_MODIFIED, None),
        ];
        for (column, _) in self.optional_columns() {
            users.push((column, Some(ColumnKind::Text)));
        }
        let sessions = vec![
            (USER_ID, Some(ColumnKind::UserId)),
            (SESSION_TIME, Some(ColumnKind::Timestamp)),
            (SESSION_IP, Some(ColumnKind::Ip)),
        ];
        [(USERS_TABLE, users), (SESSIONS_TABLE, sessions)]
    }

    /// Checks that both tables exist with the columns the roster needs, of usable types: one message
    /// naming every missing or mistyped column, rather than the server's first complaint.
    async fn check_tables(&self, client: &Client) -> Result<(), String> {
        let mut problems = Vec::new();
        for (table, required) in self.required_columns() {
            let columns = self.table_columns(client, table).await?;
            for (name, kind) in required {
                match columns.iter().find(|(column, _)| column == name) {
                    None => {
                        let mut problem = format!("{} has no column {}", self.shown(table), quoted(name));
                        if let Some((other, _)) =
                            columns.iter().find(|(column, _)| column.eq_ignore_ascii_case(name))
                        {
                            problem
                                .push_str(&format!(" (it has {}: names are matched exactly)", quoted(other)));
                        }
                        problems.push(problem);
                    }
                    Some((_, ty)) => match kind {
                        Some(kind) if !kind.accepts(ty) => problems.push(format!(
                            "{}.{} is {}, not {}",
                            self.shown(table),
                            quoted(name),
                            ty.name(),
                            kind.expected()
                        )),
                        _ => {}
                    },
                }
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
    }

    /// The names and types of a table's columns, as the server describes `SELECT *` on it.
    async fn table_columns(&self, client: &Client, table: &str) -> Result<Vec<(String, Type)>, String> {
        let probe = format!("SELECT * FROM {}.{} WHERE FALSE", quoted(&self.schema), quoted(table));
        match client.prepare(&probe).await {
            Ok(statement) => Ok(statement
                .columns()
                .iter()
                .map(|column| (column.name().to_owned(), column.type_().clone()))
                .collect()),
            Err(error) => Err(match error.code() {
                Some(code)
                    if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::INVALID_SCHEMA_NAME =>
                {
                    self.missing_table(client, table).await
                }
                Some(code) if *code == SqlState::INSUFFICIENT_PRIVILEGE => format!(
                    "user {} may not read {}: {}",
                    self.database.user(),
                    self.shown(table),
                    error_message(&error)
                ),
                _ => format!("cannot read {}: {}", self.shown(table), error_message(&error)),
            }),
        }
    }

    /// Says whether the schema or only the table is missing, and suggests a schema that differs in case.
    async fn missing_table(&self, client: &Client, table: &str) -> String {
        let schemas = client
            .query(
                "SELECT nspname::text FROM pg_catalog.pg_namespace WHERE lower(nspname) = lower($1)",
                &[&self.schema],
            )
            .await;
        let names: Vec<String> =
            schemas.map(|rows| rows.iter().map(|row| row.get(0)).collect()).unwrap_or_default();
        if names.contains(&self.schema) {
            format!(
                "table {} does not exist (has Heap Connect synced this environment yet?)",
                self.shown(table)
            )
        } else if let Some(other) = names.first() {
            format!(
                "schema {} does not exist; there is {} (names are matched exactly)",
                quoted(&self.schema),
                quoted(other)
            )
        } else {
            format!(
                "schema {} does not exist, or user {} may not see it",
                quoted(&self.schema),
                self.database.user()
            )
        }
    }

    /// One row per identified user (every user, with `anonymous`) with a session since `$1`: the user's
    /// latest row, and the latest
    /// session's time as `last_seen` and its `ip`. Sessions are filtered before they are ranked, which
    /// is the same as filtering on their latest, and cheaper. Column order: user_id, identity,
    /// last_seen, ip, then the optional columns (email, given_name, family_name) that are configured.
    fn roster_query(&self) -> String {
        let users = format!("{}.{}", quoted(&self.schema), quoted(USERS_TABLE));
        let sessions = format!("{}.{}", quoted(&self.schema), quoted(SESSIONS_TABLE));
        let (user_id, identity, last_modified, time, ip) = (
            quoted(USER_ID),
            quoted(IDENTITY),
            quoted(LAST_MODIFIED),
            quoted(SESSION_TIME),
            quoted(SESSION_IP),
        );
        let optional = self.optional_columns();
        let optional_select: String =
            optional.iter().map(|(column, alias)| format!(", {} AS {alias}", quoted(column))).collect();
        let optional_output: String = optional.iter().map(|(_, alias)| format!(", u.{alias}")).collect();
        let identified = if self.anonymous { "" } else { " AND u.identity IS NOT NULL" };
        // ROW_NUMBER rather than DISTINCT ON, which Redshift lacks.
        format!(
            "WITH latest_users AS (
                SELECT {user_id} AS user_id, {identity} AS identity{optional_select}, ROW_NUMBER() OVER (
                    PARTITION BY {user_id} ORDER BY {last_modified} DESC NULLS LAST
                ) AS recency
                FROM {users}
            ), last_sessions AS (
                SELECT {user_id} AS user_id, {time} AS last_seen, {ip} AS ip, ROW_NUMBER() OVER (
                    PARTITION BY {user_id} ORDER BY {time} DESC
                ) AS recency
                FROM {sessions}
                WHERE {time} >= $1
            )
            SELECT u.user_id, u.identity, s.last_seen, s.ip{optional_output}
            FROM latest_users u JOIN last_sessions s ON s.user_id = u.user_id AND s.recency = 1
            WHERE u.recency = 1{identified}"
        )
    }
}

#[async_trait]
impl UserDirectory for HeapConnectDirectory {
    /// `Heap Connect schema main_production on postgres://user@host:5439/database`: never the password.
    fn describe(&self) -> String {
        format!("Heap Connect schema {} on {}", self.schema, self.database.shown())
    }

    async fn users(&self, seen_since: DateTime<Utc>) -> Result<UserStream, ConnectorError> {
        let (client, connection) = self.database.connect().await?;
        self.check_tables(&client).await.map_err(ConnectorError::Fatal)?;
        let statement = client.prepare(&self.roster_query()).await.map_err(|error| {
            ConnectorError::Fatal(format!("cannot query the users: {}", error_message(&error)))
        })?;
        let window = window_start(&statement, seen_since).map_err(ConnectorError::Fatal)?;
        let rows = client.query_raw(&statement, [window]).await.map_err(|error| {
            ConnectorError::Fatal(format!("cannot query the users: {}", error_message(&error)))
        })?;
        let optional = self.optional_columns();
        let position = |alias: &str| optional.iter().position(|(_, named)| *named == alias).map(|at| 4 + at);
        let columns = UserColumns {
            user_id: Some(0),
            identity: 1,
            last_seen: 2,
            email: position("email"),
            ip: Some(3),
            given_name: position("given_name"),
            family_name: position("family_name"),
            anonymous: self.anonymous,
        };
        Ok(user_stream(client, connection, rows, columns, RowPlace::UserIdIn(self.shown(USERS_TABLE))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> HeapConnectConfig {
        serde_norway::from_str(yaml).unwrap()
    }

    const GOOD: &str = "
url: postgres://enrich:pa55word@warehouse.example.com:5439/analytics
schema: main_production
email_property: email
";

    #[test]
    fn reads_the_documented_yaml() {
        let config = config(&format!("{GOOD}tls: prefer\n"));
        assert_eq!(config.schema, "main_production");
        assert_eq!(config.tls, Some(TlsMode::Prefer));
        assert!(config.validate().is_empty());
        assert!(!format!("{config:?}").contains("pa55word"));
        let unknown = serde_norway::from_str::<HeapConnectConfig>(&format!("{GOOD}table: users\n"));
        assert!(unknown.unwrap_err().to_string().contains("unknown field `table`"));
        let bad_tls = serde_norway::from_str::<HeapConnectConfig>(&format!("{GOOD}tls: verify-full\n"));
        assert!(bad_tls.unwrap_err().to_string().contains("`disable`, `prefer`, `require`"));
    }

    #[test]
    fn validate_lists_every_problem_without_the_password() {
        let config = config("url: mysql://enrich:pa55word@h/db\nschema: ''\nemail_property: \"a\\0b\"\n");
        let problems = config.validate();
        let fields: Vec<&str> = problems.iter().map(|problem| problem.field.as_str()).collect();
        assert_eq!(fields, ["url", "schema", "email_property"]);
        assert!(problems.iter().all(|problem| !problem.message.contains("pa55word")), "{problems:?}");
        let refused = HeapConnectDirectory::new(&config).unwrap_err().to_string();
        assert!(refused.starts_with("invalid heap_connect users config: url: must be"), "{refused}");
    }

    #[test]
    fn describes_the_schema_and_the_url_without_the_password() {
        let directory = HeapConnectDirectory::new(&config(GOOD)).unwrap();
        assert_eq!(
            directory.describe(),
            "Heap Connect schema main_production on postgres://enrich@warehouse.example.com:5439/analytics"
        );
        assert!(!format!("{directory:?}").contains("pa55word"));
    }

    #[test]
    fn quotes_every_name_in_the_roster_query() {
        let config =
            config("url: postgres://u:p@h/db\nschema: 'odd \"schema\"'\nemail_property: 'Work \"Email\"'\n");
        assert!(config.validate().is_empty());
        let query = HeapConnectDirectory::new(&config).unwrap().roster_query();
        assert!(query.contains(r#"FROM "odd ""schema"""."users""#), "{query}");
        assert!(query.contains(r#""Work ""Email""" AS email"#), "{query}");
        let identities =
            HeapConnectDirectory::new(&HeapConnectConfig { email_property: IDENTITY.to_owned(), ..config })
                .unwrap()
                .roster_query();
        assert!(!identities.contains("AS email") && !identities.contains("u.email"), "{identities}");
    }
}
