//! What enrich remembers between runs: per user, the last check and what was written; per
//! connection, its status and run history. Storage engines implement [`StateStore`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How the last attempt for a user ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Found,
    NotFound,
    /// The source was still fetching the record: asked again at the next run.
    Pending,
    /// The key can never be looked up: not asked again while it stays the same.
    Invalid,
    /// The lookup or the write failed: due again at the next run.
    Failed,
}

/// What is remembered of one user of one connection. Holds no email and no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserState {
    /// Stable hash of the lookup key, so that a changed email is looked up again.
    pub key_hash: u64,
    pub outcome: Outcome,
    /// The last completed check (found, not found or invalid).
    pub checked_at: Option<DateTime<Utc>>,
    /// The last attempt, whatever its outcome.
    pub attempted_at: DateTime<Utc>,
    /// Why the user is invalid or failed.
    pub detail: Option<String>,
    /// When the sink last acknowledged properties for this user.
    pub written_at: Option<DateTime<Utc>>,
    /// Stable hash of the properties last acknowledged (without the check date).
    pub properties_hash: Option<u64>,
    /// How many properties the last acknowledged write carried.
    pub properties_written: usize,
}

impl UserState {
    /// Whether a user with this state and the given key must be looked up now.
    pub fn is_due(&self, key_hash: u64, now: DateTime<Utc>, refresh: Duration) -> bool {
        if key_hash != self.key_hash {
            return true;
        }
        match self.outcome {
            Outcome::Pending | Outcome::Failed => true,
            Outcome::Invalid => false,
            Outcome::Found | Outcome::NotFound => self.checked_at.is_none_or(|checked| {
                chrono::Duration::from_std(refresh).is_ok_and(|refresh| checked + refresh <= now)
            }),
        }
    }
}

/// A connection's status, as `enrich status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectionStatus {
    /// No source properties have reached the sink yet.
    #[default]
    WaitingForData,
    Connected,
    /// The last run stopped on a fatal error.
    Error(String),
}

impl fmt::Display for ConnectionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WaitingForData => f.write_str("Waiting For Data"),
            Self::Connected => f.write_str("Connected"),
            Self::Error(reason) => write!(f, "Error: {reason}"),
        }
    }
}

/// Why a run happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunKind {
    /// A scheduled or manual sync over the connection's backfill window.
    Sync,
    /// A one-off run over a wider window, on request.
    Backfill { since: DateTime<Utc> },
}

/// The figures of one run. Outcomes count users; `lookups` counts distinct keys looked up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunSummary {
    /// Users the directory returned.
    pub read: u64,
    /// Rows of the roster that could not be used.
    pub bad_rows: u64,
    pub outside_window: u64,
    pub no_email: u64,
    pub malformed_email: u64,
    /// The same identity more than once in the roster: only the first is used.
    pub duplicate_identities: u64,
    /// Checked recently enough: not due.
    pub up_to_date: u64,
    pub due: u64,
    pub lookups: u64,
    pub found: u64,
    pub not_found: u64,
    pub pending: u64,
    pub invalid: u64,
    /// Users whose lookup or write failed: due again at the next run.
    pub failed: u64,
    /// Due users left for the next run because the run stopped on a fatal error.
    pub aborted: u64,
    /// Users whose properties the sink acknowledged.
    pub written: u64,
    pub batches: u64,
}

/// One run of a connection, kept in its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub kind: RunKind,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub seen_since: DateTime<Utc>,
    pub summary: RunSummary,
    /// The fatal error that stopped the run, if one did.
    pub error: Option<String>,
}

/// How many runs a connection's history keeps.
pub const RUN_HISTORY: usize = 100;

/// What is remembered of one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectionState {
    pub status: ConnectionStatus,
    /// When source properties first reached the sink.
    pub first_data_at: Option<DateTime<Utc>>,
    /// Users whose found properties the sink acknowledged at least once.
    pub users_enriched: u64,
    /// The latest runs, oldest first, at most [`RUN_HISTORY`].
    pub runs: Vec<RunRecord>,
}

impl ConnectionState {
    pub fn last_run(&self) -> Option<&RunRecord> {
        self.runs.last()
    }

    pub fn push_run(&mut self, run: RunRecord) {
        self.runs.push(run);
        let excess = self.runs.len().saturating_sub(RUN_HISTORY);
        self.runs.drain(..excess);
    }
}

/// A state store failed: the run cannot record progress, so it stops.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state store: {0}")]
pub struct StateError(pub String);

/// Durable memory of users and connections. Writes of one call are atomic.
pub trait StateStore: Send + Sync + fmt::Debug {
    fn user(&self, connection: &str, identity: &str) -> Result<Option<UserState>, StateError>;
    fn put_users(&self, connection: &str, users: &[(String, UserState)]) -> Result<(), StateError>;
    fn connection(&self, connection: &str) -> Result<Option<ConnectionState>, StateError>;
    fn put_connection(&self, connection: &str, state: &ConnectionState) -> Result<(), StateError>;
    /// Makes everything written so far durable.
    fn flush(&self) -> Result<(), StateError>;
}

/// A [`StateStore`] in memory, for tests.
#[derive(Debug, Default)]
pub struct MemoryStateStore {
    users: Mutex<HashMap<(String, String), UserState>>,
    connections: Mutex<HashMap<String, ConnectionState>>,
}

impl MemoryStateStore {
    /// Every user state of a connection, for assertions.
    pub fn users_of(&self, connection: &str) -> HashMap<String, UserState> {
        let users = self.users.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        users
            .iter()
            .filter(|((owner, _), _)| owner == connection)
            .map(|((_, identity), state)| (identity.clone(), state.clone()))
            .collect()
    }
}

impl StateStore for MemoryStateStore {
    fn user(&self, connection: &str, identity: &str) -> Result<Option<UserState>, StateError> {
        let users = self.users.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(users.get(&(connection.to_owned(), identity.to_owned())).cloned())
    }

    fn put_users(&self, connection: &str, updates: &[(String, UserState)]) -> Result<(), StateError> {
        let mut users = self.users.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for (identity, state) in updates {
            users.insert((connection.to_owned(), identity.clone()), state.clone());
        }
        Ok(())
    }

    fn connection(&self, connection: &str) -> Result<Option<ConnectionState>, StateError> {
        let connections = self.connections.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(connections.get(connection).cloned())
    }

    fn put_connection(&self, connection: &str, state: &ConnectionState) -> Result<(), StateError> {
        let mut connections = self.connections.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        connections.insert(connection.to_owned(), state.clone());
        Ok(())
    }

    fn flush(&self) -> Result<(), StateError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(outcome: Outcome, checked_hours_ago: Option<i64>, now: DateTime<Utc>) -> UserState {
        UserState {
            key_hash: 7,
            outcome,
            checked_at: checked_hours_ago.map(|hours| now - chrono::Duration::hours(hours)),
            attempted_at: now,
            detail: None,
            written_at: None,
            properties_hash: None,
            properties_written: 0,
        }
    }

    #[test]
    fn due_rules() {
        let now = Utc::now();
        let day = Duration::from_secs(24 * 3600);
        assert!(!state(Outcome::Found, Some(23), now).is_due(7, now, day));
        assert!(state(Outcome::Found, Some(24), now).is_due(7, now, day));
        assert!(!state(Outcome::NotFound, Some(1), now).is_due(7, now, day));
        assert!(state(Outcome::Found, Some(1), now).is_due(8, now, day), "a new email is due");
        assert!(state(Outcome::Pending, Some(1), now).is_due(7, now, day));
        assert!(state(Outcome::Failed, None, now).is_due(7, now, day));
        assert!(!state(Outcome::Invalid, Some(1000), now).is_due(7, now, day));
    }

    #[test]
    fn status_reads_as_the_product_says() {
        assert_eq!(ConnectionStatus::WaitingForData.to_string(), "Waiting For Data");
        assert_eq!(ConnectionStatus::Connected.to_string(), "Connected");
        assert_eq!(ConnectionStatus::Error("bad key".into()).to_string(), "Error: bad key");
    }

    #[test]
    fn history_is_capped() {
        let now = Utc::now();
        let mut connection = ConnectionState::default();
        for _ in 0..RUN_HISTORY + 5 {
            connection.push_run(RunRecord {
                kind: RunKind::Sync,
                started_at: now,
                finished_at: now,
                seen_since: now,
                summary: RunSummary::default(),
                error: None,
            });
        }
        assert_eq!(connection.runs.len(), RUN_HISTORY);
    }
}
