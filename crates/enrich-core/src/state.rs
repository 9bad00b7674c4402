//! What enrich remembers between runs: per user, the last check and what was written; per
//! connection, its status and run history. Storage engines implement [`StateStore`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::CachedResult;

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
    /// Stable hash of the IP address offered to the source with an email's lookup (Clearbit sends it as
    /// a match hint, and asks Reveal about it when the email found no company), so that forgetting the
    /// address reaches this user too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_hash: Option<u64>,
    pub outcome: Outcome,
    /// The last completed check (found, not found or invalid).
    pub checked_at: Option<DateTime<Utc>>,
    /// The last attempt, whatever its outcome.
    pub attempted_at: DateTime<Utc>,
    /// Why the user is invalid or failed; stored redacted.
    #[serde(serialize_with = "crate::redact::serialize_stored_option")]
    pub detail: Option<String>,
    /// When the sink last acknowledged properties for this user.
    pub written_at: Option<DateTime<Utc>>,
    /// Stable hash of the properties last acknowledged (without the check date).
    pub properties_hash: Option<u64>,
    /// How many properties the last acknowledged write carried.
    pub properties_written: usize,
    /// The properties the last acknowledged check left set, as positions in the connection's
    /// [`ConnectionState::property_names`]: a later check that yields fewer clears the rest. Names
    /// (kept once per connection), not hashes, since a property dropped from the selection or renamed
    /// must still be named to be cleared.
    #[serde(default, skip_serializing_if = "PropertySet::is_empty")]
    pub written: PropertySet,
    /// The names themselves, sorted, as records stored before the names moved to the connection held
    /// them: read and honoured, never written again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub written_properties: Vec<String>,
    /// The values of the source's report segments (property name → value) as last written.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub segments: BTreeMap<String, String>,
}

/// A set of positions in a connection's [`ConnectionState::property_names`], one bit each: what a user
/// carries in a few bytes, however many and however long the names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PropertySet(Vec<u64>);

impl PropertySet {
    pub fn insert(&mut self, position: usize) {
        let (word, bit) = (position / 64, position % 64);
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << bit;
    }

    pub fn contains(&self, position: usize) -> bool {
        self.0.get(position / 64).is_some_and(|word| word & (1 << (position % 64)) != 0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|word| *word == 0)
    }

    /// The positions in the set, in order.
    pub fn positions(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.0.len() * 64).filter(|position| self.contains(*position))
    }
}

/// How long a completed check stays good: found and not-found answers for `refresh`, an invalid key
/// for `invalid_retry_after` (`None`: while the key stays the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueRule {
    pub refresh: Duration,
    pub invalid_retry_after: Option<Duration>,
}

impl UserState {
    /// A blank state to build on for a user never checked: pending, nothing written.
    pub fn fresh(key_hash: u64, now: DateTime<Utc>) -> Self {
        Self {
            key_hash,
            fallback_hash: None,
            outcome: Outcome::Pending,
            checked_at: None,
            attempted_at: now,
            detail: None,
            written_at: None,
            properties_hash: None,
            properties_written: 0,
            written: PropertySet::default(),
            written_properties: Vec::new(),
            segments: BTreeMap::new(),
        }
    }

    /// Whether this state came from a lookup of the key with this digest, or of one sent along with it:
    /// what `forget` removes.
    pub fn concerns(&self, key_hash: u64) -> bool {
        self.key_hash == key_hash || self.fallback_hash == Some(key_hash)
    }

    /// Whether a user with this state and the given key must be looked up now.
    pub fn is_due(&self, key_hash: u64, now: DateTime<Utc>, rule: DueRule) -> bool {
        if key_hash != self.key_hash {
            return true;
        }
        // A check stamped in the future (a clock set forward, then fixed) proves nothing: due.
        let older_than = |age: Duration| {
            self.checked_at.is_none_or(|checked| {
                checked > now
                    || chrono::Duration::from_std(age)
                        .ok()
                        .and_then(|age| checked.checked_add_signed(age))
                        .is_some_and(|due_at| due_at <= now)
            })
        };
        match self.outcome {
            Outcome::Pending | Outcome::Failed => true,
            Outcome::Invalid => rule.invalid_retry_after.is_some_and(older_than),
            Outcome::Found | Outcome::NotFound => older_than(rule.refresh),
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
    /// The last run stopped on a fatal error; stored redacted.
    Error(#[serde(serialize_with = "crate::redact::serialize_stored")] String),
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
    /// `enrich run` started it on the connection's schedule.
    Scheduled,
    /// `enrich sync` started it.
    Manual,
    /// `enrich backfill` started it over a wider window.
    Backfill { since: DateTime<Utc> },
}

impl fmt::Display for RunKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Scheduled => f.write_str("scheduled"),
            Self::Manual => f.write_str("manual"),
            Self::Backfill { .. } => f.write_str("backfill"),
        }
    }
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
    /// Users an IP-keyed source (Reveal) could not look up: no IP address known.
    pub no_ip: u64,
    pub malformed_email: u64,
    /// Rows repeating an identity already read: only the most recently seen row of an identity is used
    /// (the first of those seen equally recently).
    pub duplicate_identities: u64,
    /// Identities whose rows carry different emails.
    pub identities_with_several_emails: u64,
    /// Checked recently enough: not due.
    pub up_to_date: u64,
    pub due: u64,
    /// Users the source declined to look up (e.g. free email domains), or forgotten on request.
    pub skipped: u64,
    /// Users the sink cannot address (Heap: anonymous users): skipped before any lookup.
    pub unaddressable: u64,
    /// Due users left for the next run by `max_lookups_per_run`.
    pub deferred: u64,
    /// Users whose results were fetched by an earlier, interrupted run and written now, without a lookup.
    pub resumed: u64,
    pub lookups: u64,
    /// Users written without a lookup of their own: from a result an earlier lookup of their key left
    /// in the state, or by sharing one lookup with other users of their key.
    pub lookups_saved: u64,
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
    /// Values cut to fit the sink's limits (counted per lookup).
    pub values_cut: u64,
    /// Users whose properties had not changed since the last write: only the check date was written.
    pub unchanged: u64,
    /// Properties no longer true (a new employer, no longer found, a narrowed selection), written
    /// empty so that the destination drops their old values.
    pub cleared: u64,
    pub batches: u64,
    /// Why users were skipped, invalid or failed, with how many users each reason concerned.
    pub reasons: BTreeMap<String, u64>,
    /// The credits the source's account had left at the end of the run, when its service says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits_left: Option<u64>,
}

/// How many distinct reasons a run keeps; the rest are counted together.
const MAX_REASONS: usize = 50;
const OTHER_REASONS: &str = "other reasons";

impl RunSummary {
    /// Counts `users` under `reason`, redacted.
    pub fn note(&mut self, reason: &str, users: u64) {
        let reason = crate::redact::stored(reason);
        let reason = if self.reasons.contains_key(&reason) || self.reasons.len() < MAX_REASONS {
            reason.as_str()
        } else {
            OTHER_REASONS
        };
        *self.reasons.entry(reason.to_owned()).or_default() += users;
    }

    /// Takes back `users` counted under `reason` (a row replaced by a more recent one of its identity).
    pub fn unnote(&mut self, reason: &str, users: u64) {
        let reason = if self.reasons.contains_key(reason) { reason } else { OTHER_REASONS };
        if let Some(count) = self.reasons.get_mut(reason) {
            *count = count.saturating_sub(users);
            if *count == 0 {
                self.reasons.remove(reason);
            }
        }
    }

    /// The most frequent reasons, most users first.
    pub fn top_reasons(&self, count: usize) -> Vec<(&str, u64)> {
        let mut reasons: Vec<(&str, u64)> =
            self.reasons.iter().map(|(reason, users)| (reason.as_str(), *users)).collect();
        reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        reasons.truncate(count);
        reasons
    }
}

/// One run of a connection, kept in its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub kind: RunKind,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub seen_since: DateTime<Utc>,
    pub summary: RunSummary,
    /// The fatal error that stopped the run, if one did; stored redacted.
    #[serde(serialize_with = "crate::redact::serialize_stored_option")]
    pub error: Option<String>,
    /// The run was asked to stop (Ctrl-C, SIGTERM) before it was done.
    #[serde(default)]
    pub stopped_early: bool,
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
    /// Users whose last completed check found them, as `enrich report` counts them: counted again
    /// after every run and every `forget`.
    pub users_enriched: u64,
    /// Properties written under a name derived from an attribute the source's catalogue does not know
    /// (property name → attribute path), so listings can show them.
    pub derived_properties: BTreeMap<String, String>,
    /// Digests of lookup keys forgotten on request (`enrich forget`): never looked up again.
    pub suppressed: BTreeSet<u64>,
    /// Every property name a check of this connection left set, once each, in the order first met:
    /// user states name what they carry by position here ([`UserState::written`]). Stored before any
    /// user state that refers to a new position.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub property_names: Vec<String>,
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

const BUSY: &str = "is already syncing in another enrich process";

impl StateError {
    /// Another process, on this machine or another, holds the connection's lock.
    pub fn busy(connection: &str, how: &str) -> Self {
        Self(format!("connection `{connection}` {BUSY} ({how})"))
    }

    /// Whether the connection is busy elsewhere, rather than its state failing.
    pub fn is_busy(&self) -> bool {
        self.0.contains(BUSY)
    }
}

/// A completed check on its way to the sink: what to write, and the states to commit once the sink
/// acknowledged it (or failed it). Stored before it is sent, so that a run killed before the
/// acknowledgement writes it at the next run without paying for a second lookup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingWrite {
    pub update: crate::UserUpdate,
    /// The state to commit once the sink acknowledged the write.
    pub acknowledged: UserState,
    /// The state before the check, kept (as failed) if the sink refuses the write.
    pub previous: UserState,
}

/// Durable memory of one connection: its users and its own state. Writes of one call are atomic.
pub trait StateStore: Send + Sync + fmt::Debug {
    /// A user's state, by its [`UserRecord::state_key`](crate::UserRecord::state_key) (as every
    /// identity below is).
    fn user(&self, identity: &str) -> Result<Option<UserState>, StateError>;
    /// Every user's state, for reports; streamed so a million users need not fit in memory.
    fn users(&self) -> Box<dyn Iterator<Item = Result<(String, UserState), StateError>> + '_>;
    /// Commits users' states and forgets their pending writes.
    fn put_users(&self, users: &[(String, UserState)]) -> Result<(), StateError>;
    /// Remembers checks whose write is not acknowledged yet.
    fn put_pending(&self, writes: &[PendingWrite]) -> Result<(), StateError>;
    /// Every check whose write was never acknowledged (an interrupted run's).
    fn pending(&self) -> Result<Vec<PendingWrite>, StateError>;
    /// The result kept for the key with this digest (see [`crate::cache`]), fresh or not.
    fn cached(&self, key_hash: u64) -> Result<Option<CachedResult>, StateError>;
    /// Keeps results by key digest, replacing older ones.
    fn put_cached(&self, results: &[(u64, CachedResult)]) -> Result<(), StateError>;
    /// Every kept result, for `enrich state export`.
    fn cached_results(&self) -> Box<dyn Iterator<Item = Result<(u64, CachedResult), StateError>> + '_>;
    /// A privacy request: removes every user whose state [`UserState::concerns`] the key with this
    /// digest, their pending writes (those whose acknowledged state concerns it too) and the key's kept
    /// result, leaving no trace of them in storage, and adds the digest to the connection's `suppressed`
    /// keys, durably with the users' states; returns the identities removed.
    fn forget(&self, key_hash: u64) -> Result<Vec<String>, StateError>;
    fn connection(&self) -> Result<ConnectionState, StateError>;
    fn put_connection(&self, state: &ConnectionState) -> Result<(), StateError>;
    /// Makes everything written so far durable.
    fn flush(&self) -> Result<(), StateError>;
    /// Records `Error: message` as the connection's status, after a run stopped on it.
    fn record_failure(&self, message: &str) -> Result<(), StateError> {
        let mut state = self.connection()?;
        state.status = ConnectionStatus::Error(message.to_owned());
        self.put_connection(&state)
    }
}

/// How many users the last completed check found: streamed, so memory stays flat.
pub fn found_users(store: &dyn StateStore) -> Result<u64, StateError> {
    let mut found = 0;
    for user in store.users() {
        found += u64::from(user?.1.outcome == Outcome::Found);
    }
    Ok(found)
}

/// A [`StateStore`] in memory, for tests.
#[derive(Debug, Default)]
pub struct MemoryStateStore {
    users: Mutex<HashMap<String, UserState>>,
    pending: Mutex<HashMap<String, PendingWrite>>,
    cached: Mutex<BTreeMap<u64, CachedResult>>,
    connection: Mutex<ConnectionState>,
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MemoryStateStore {
    /// Every user state, for assertions.
    pub fn user_states(&self) -> HashMap<String, UserState> {
        locked(&self.users).clone()
    }
}

impl StateStore for MemoryStateStore {
    fn user(&self, identity: &str) -> Result<Option<UserState>, StateError> {
        Ok(locked(&self.users).get(identity).cloned())
    }

    fn users(&self) -> Box<dyn Iterator<Item = Result<(String, UserState), StateError>> + '_> {
        Box::new(self.user_states().into_iter().map(Ok))
    }

    fn put_users(&self, updates: &[(String, UserState)]) -> Result<(), StateError> {
        let mut users = locked(&self.users);
        let mut pending = locked(&self.pending);
        for (identity, state) in updates {
            users.insert(identity.clone(), state.clone());
            pending.remove(identity);
        }
        Ok(())
    }

    fn put_pending(&self, writes: &[PendingWrite]) -> Result<(), StateError> {
        let mut pending = locked(&self.pending);
        for write in writes {
            pending.insert(write.update.state_key().into_owned(), write.clone());
        }
        Ok(())
    }

    fn pending(&self) -> Result<Vec<PendingWrite>, StateError> {
        Ok(locked(&self.pending).values().cloned().collect())
    }

    fn forget(&self, key_hash: u64) -> Result<Vec<String>, StateError> {
        let mut users = locked(&self.users);
        let mut pending = locked(&self.pending);
        let mut forgotten: Vec<String> = users
            .iter()
            .filter(|(_, state)| state.concerns(key_hash))
            .map(|(identity, _)| identity.clone())
            .collect();
        forgotten.extend(
            pending
                .iter()
                .filter(|(_, write)| write.acknowledged.concerns(key_hash))
                .map(|(identity, _)| identity.clone()),
        );
        forgotten.sort();
        forgotten.dedup();
        for identity in &forgotten {
            users.remove(identity);
            pending.remove(identity);
        }
        locked(&self.cached).remove(&key_hash);
        locked(&self.connection).suppressed.insert(key_hash);
        Ok(forgotten)
    }

    fn cached(&self, key_hash: u64) -> Result<Option<CachedResult>, StateError> {
        Ok(locked(&self.cached).get(&key_hash).cloned())
    }

    fn put_cached(&self, results: &[(u64, CachedResult)]) -> Result<(), StateError> {
        locked(&self.cached).extend(results.iter().cloned());
        Ok(())
    }

    fn cached_results(&self) -> Box<dyn Iterator<Item = Result<(u64, CachedResult), StateError>> + '_> {
        let results: Vec<_> = locked(&self.cached).clone().into_iter().map(Ok).collect();
        Box::new(results.into_iter())
    }

    fn connection(&self) -> Result<ConnectionState, StateError> {
        Ok(locked(&self.connection).clone())
    }

    fn put_connection(&self, state: &ConnectionState) -> Result<(), StateError> {
        *locked(&self.connection) = state.clone();
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
            ..UserState::fresh(7, now)
        }
    }

    #[test]
    fn due_rules() {
        let now = Utc::now();
        let day = Duration::from_secs(24 * 3600);
        let rule = DueRule { refresh: day, invalid_retry_after: Some(day * 30) };
        assert!(!state(Outcome::Found, Some(23), now).is_due(7, now, rule));
        assert!(state(Outcome::Found, Some(24), now).is_due(7, now, rule));
        assert!(!state(Outcome::NotFound, Some(1), now).is_due(7, now, rule));
        assert!(state(Outcome::Found, Some(1), now).is_due(8, now, rule), "a new email is due");
        assert!(state(Outcome::Pending, Some(1), now).is_due(7, now, rule));
        assert!(state(Outcome::Failed, None, now).is_due(7, now, rule));
        assert!(!state(Outcome::Invalid, Some(29 * 24), now).is_due(7, now, rule));
        assert!(state(Outcome::Invalid, Some(30 * 24), now).is_due(7, now, rule), "asked again after 30d");
        let never = DueRule { invalid_retry_after: None, ..rule };
        assert!(!state(Outcome::Invalid, Some(1000 * 24), now).is_due(7, now, never));
        let beyond_the_calendar =
            DueRule { refresh: Duration::from_secs(1_000_000 * 366 * 24 * 3600), ..rule };
        assert!(!state(Outcome::Found, Some(1), now).is_due(7, now, beyond_the_calendar), "no overflow");
    }

    #[test]
    fn a_check_stamped_in_the_future_is_due() {
        let now = Utc::now();
        let day = Duration::from_secs(24 * 3600);
        let rule = DueRule { refresh: day, invalid_retry_after: Some(day * 30) };
        assert!(state(Outcome::Found, Some(-1), now).is_due(7, now, rule), "a clock set forward, then fixed");
        assert!(!state(Outcome::Found, Some(0), now).is_due(7, now, rule), "checked just now");
    }

    #[test]
    fn a_property_set_holds_positions_past_a_word() {
        let mut set = PropertySet::default();
        assert!(set.is_empty());
        for position in [0, 5, 63, 64, 130] {
            set.insert(position);
        }
        assert_eq!(set.positions().collect::<Vec<_>>(), [0, 5, 63, 64, 130]);
        assert!(!set.contains(6) && !set.contains(1000));
        assert_eq!(serde_json::to_string(&set).unwrap(), format!("[{},{},4]", 1_u64 | 1 << 5 | 1 << 63, 1));
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
                kind: RunKind::Manual,
                started_at: now,
                finished_at: now,
                seen_since: now,
                summary: RunSummary::default(),
                error: None,
                stopped_early: false,
            });
        }
        assert_eq!(connection.runs.len(), RUN_HISTORY);
    }
}
