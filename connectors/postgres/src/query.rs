//! The query directory: the roster is what a query of one's own returns, for warehouses laid out in
//! some other way than Heap Connect's.
//!
//! The query returns the columns `identity`, `email` and `last_seen` (`timestamp`, read as UTC, or
//! `timestamptz`), and may return `user_id` (an integer or text), `ip` (`inet` or text), `given_name` and
//! `family_name` (sent to the source as match hints, with `ip`); other columns are ignored. `$1` is bound to the window's start and is required: without it the window
//! would not be applied in SQL and every user would be read, every run. Rows with a NULL or overlong
//! identity are reported and skipped.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use enrich_core::{ConnectorError, FieldError, UserDirectory, UserStream, ensure_valid};
use secrecy::SecretString;
use serde::Deserialize;
use tokio_postgres::Column;

use crate::database::{Database, TlsMode, error_message, url_problem};
use crate::rows::{ColumnKind, RowPlace, UserColumns, user_stream, window_start};

const EXAMPLE: &str = "SELECT identity, email, last_seen FROM users WHERE last_seen >= $1";

/// The `postgres` users config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresQueryConfig {
    /// `postgres://user:password@host:5432/database`. A secret: it holds the password.
    pub url: SecretString,
    /// Returns `identity`, `email`, `last_seen`, optionally `user_id` and `ip`, for the users seen since
    /// `$1`.
    pub query: String,
    /// By default `require`, or `disable` for a server on this machine: see [`TlsMode`].
    #[serde(default)]
    pub tls: Option<TlsMode>,
}

impl PostgresQueryConfig {
    /// Every problem in this config, found without the network. Messages never quote the URL.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut problems = Vec::new();
        if let Some(problem) = url_problem(&self.url) {
            problems.push(FieldError::new("url", problem));
        }
        if let Some(problem) = query_problem(&self.query) {
            problems.push(FieldError::new("query", problem));
        }
        problems
    }
}

/// What is wrong with the query, as far as can be told without the server.
fn query_problem(query: &str) -> Option<String> {
    if query.trim().is_empty() {
        return Some(format!("is empty: write one such as {EXAMPLE}"));
    }
    let parameters = parameter_numbers(query);
    if !parameters.contains(&1) {
        return Some(format!(
            "does not use $1, the start of the window: without it every user is read at every run \
             (as in {EXAMPLE})"
        ));
    }
    let others: Vec<String> =
        parameters.iter().filter(|&&number| number != 1).map(|number| format!("${number}")).collect();
    if !others.is_empty() {
        return Some(format!("uses {}: only $1, the start of the window, is given", others.join(", ")));
    }
    None
}

/// The numbers of the `$N` placeholders in the query, sorted, without repeats. A `$` followed by a digit
/// is always a placeholder outside literals and comments (a dollar-quote tag cannot start with a digit).
fn parameter_numbers(query: &str) -> Vec<u64> {
    let mut numbers: Vec<u64> = query
        .split('$')
        .skip(1)
        .filter_map(|after| {
            let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    numbers
}

/// Users read with a query of one's own.
#[derive(Debug)]
pub struct PostgresQueryDirectory {
    database: Database,
    query: String,
}

impl PostgresQueryDirectory {
    /// Builds the directory from a config, refusing one that [`PostgresQueryConfig::validate`] finds
    /// fault with. Connects to nothing until [`UserDirectory::users`].
    pub fn new(config: &PostgresQueryConfig) -> Result<Self, ConnectorError> {
        ensure_valid("postgres users", &config.validate())?;
        Ok(Self { database: Database::new(&config.url, config.tls)?, query: config.query.clone() })
    }
}

/// Where the user's values are in the query's result, or every problem with its columns.
fn locate_columns(columns: &[Column]) -> Result<UserColumns, String> {
    let mut problems = Vec::new();
    let mut find = |name: &str, kind: ColumnKind| {
        let mut found =
            columns.iter().enumerate().filter(|(_, column)| column.name().eq_ignore_ascii_case(name));
        let (at, column) = found.next()?;
        if found.next().is_some() {
            problems.push(format!("returns the column {name} more than once"));
        } else if !kind.accepts(column.type_()) {
            problems.push(format!(
                "returns {name} as {}, not {} (cast it: {name}::{})",
                column.type_().name(),
                kind.expected(),
                match kind {
                    ColumnKind::Text | ColumnKind::UserId => "text",
                    ColumnKind::Timestamp => "timestamptz",
                    ColumnKind::Ip => "inet",
                }
            ));
        }
        Some(at)
    };
    let identity = find("identity", ColumnKind::Text);
    let email = find("email", ColumnKind::Text);
    let last_seen = find("last_seen", ColumnKind::Timestamp);
    let user_id = find("user_id", ColumnKind::UserId);
    let ip = find("ip", ColumnKind::Ip);
    let given_name = find("given_name", ColumnKind::Text);
    let family_name = find("family_name", ColumnKind::Text);
    let missing: Vec<&str> = [("identity", identity), ("email", email), ("last_seen", last_seen)]
        .into_iter()
        .filter(|(_, at)| at.is_none())
        .map(|(name, _)| name)
        .collect();
    if !missing.is_empty() {
        let returned: Vec<&str> = columns.iter().map(Column::name).collect();
        problems.insert(
            0,
            format!(
                "returns no column {} (it returns: {}); it must return identity, email and last_seen, \
                 and may return user_id, ip, given_name and family_name",
                missing.join(", "),
                returned.join(", ")
            ),
        );
    }
    match (identity, last_seen) {
        (Some(identity), Some(last_seen)) if problems.is_empty() => {
            let anonymous = false;
            Ok(UserColumns { identity, email, last_seen, user_id, ip, given_name, family_name, anonymous })
        }
        _ => Err(format!("the query {}", problems.join("; "))),
    }
}

#[async_trait]
impl UserDirectory for PostgresQueryDirectory {
    /// `users query on postgres://user@host:5432/database`: never the password.
    fn describe(&self) -> String {
        format!("users query on {}", self.database.shown())
    }

    async fn users(&self, seen_since: DateTime<Utc>) -> Result<UserStream, ConnectorError> {
        let (client, connection) = self.database.connect().await?;
        let statement = client
            .prepare(&self.query)
            .await
            .map_err(|error| ConnectorError::Fatal(format!("the query failed: {}", error_message(&error))))?;
        let columns = locate_columns(statement.columns()).map_err(ConnectorError::Fatal)?;
        let window = window_start(&statement, seen_since).map_err(ConnectorError::Fatal)?;
        let rows = client
            .query_raw(&statement, [window])
            .await
            .map_err(|error| ConnectorError::Fatal(format!("the query failed: {}", error_message(&error))))?;
        Ok(user_stream(client, connection, rows, columns, RowPlace::QueryRow))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(query: &str) -> PostgresQueryConfig {
        PostgresQueryConfig {
            url: SecretString::from("postgres://enrich:pa55word@127.0.0.1:5432/analytics".to_owned()),
            query: query.to_owned(),
            tls: None,
        }
    }

    #[test]
    fn reads_the_documented_yaml() {
        let config: PostgresQueryConfig = serde_norway::from_str(
            "url: postgres://enrich:pa55word@127.0.0.1/db\nquery: |\n  SELECT identity, email, last_seen\n  \
             FROM app.users WHERE last_seen >= $1\ntls: require\n",
        )
        .unwrap();
        assert!(config.validate().is_empty(), "{:?}", config.validate());
        assert_eq!(config.tls, Some(TlsMode::Require));
        assert!(!format!("{config:?}").contains("pa55word"));
    }

    #[test]
    fn the_query_must_apply_the_window_with_1_and_nothing_else() {
        assert_eq!(query_problem(EXAMPLE), None);
        assert_eq!(query_problem("SELECT * FROM u WHERE seen >= $1::timestamptz AND seen2 >= $1"), None);
        assert!(query_problem("  ").unwrap().starts_with("is empty"));
        let without = query_problem("SELECT identity, email, last_seen FROM users").unwrap();
        assert!(without.contains("does not use $1") && without.contains("every user is read"), "{without}");
        assert!(query_problem("SELECT … WHERE a >= $10").unwrap().contains("does not use $1"));
        assert_eq!(
            query_problem("SELECT … WHERE a >= $1 AND b = $2 AND c = $2").as_deref(),
            Some("uses $2: only $1, the start of the window, is given")
        );
        assert_eq!(parameter_numbers("SELECT $$text$$, $tag$x$tag$, $3, $1"), vec![1, 3]);
    }

    #[test]
    fn validate_and_describe_never_show_the_password() {
        let directory = PostgresQueryDirectory::new(&config(EXAMPLE)).unwrap();
        assert_eq!(directory.describe(), "users query on postgres://enrich@127.0.0.1:5432/analytics");
        assert!(!format!("{directory:?}").contains("pa55word"));
        let refused = PostgresQueryDirectory::new(&config("SELECT 1")).unwrap_err().to_string();
        assert!(refused.starts_with("invalid postgres users config: query: does not use $1"), "{refused}");
    }
}
