//! The reading phase (the plan): users stream in from the directory; one row per identity is kept
//! (the most recently seen); those in the window whose last check is older than the refresh interval
//! are due, grouped by lookup key (users sharing an email share one lookup), pending ones and the
//! oldest checks first, at most `max_lookups_per_run` keys.
//!
//! The plan never lives whole in memory: every usable row goes through three sorts that spill to
//! temporary files past a budget (by identity, to keep one row each; by key, to group the due users;
//! by priority, to order the lookups), and a capped run keeps only its best keys in a bounded heap.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashSet};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::cached::{Answered, Kept};
use super::spill::Spill;
use super::{Connection, EngineError, PROGRESS_EVERY, SyncRequest};
use crate::events::{InternalEvent, RowSkipped, SeveralEmails};
use crate::{
    DirectoryError, DueRule, KeyKind, LookupKey, Outcome, RunSummary, Sink, SkipReason, Source, StateError,
    StateStore, UserRecord, UserState,
};

/// How many bytes of entries each of the reading phase's sorts holds in memory before it writes a
/// sorted run to disk. The engine's tests use a few hundred, so that every one of them plans through
/// runs on disk.
#[cfg(not(test))]
const SPILL_BUDGET: usize = 4 << 20;
#[cfg(test)]
const SPILL_BUDGET: usize = 512;

/// A due user with what is remembered of it.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct DueUser {
    pub(super) record: UserRecord,
    pub(super) previous: Option<UserState>,
}

/// One lookup of the plan: a key and every due user it serves.
pub(super) type PlannedLookup = (LookupKey, Vec<DueUser>);

/// The lookups of a run, in the order they should happen, read from disk as they are needed, and the
/// keys served from a kept result without one.
pub(super) struct Plan {
    pub(super) lookups: u64,
    /// The users of both.
    pub(super) users: u64,
    pub(super) order: Box<dyn Iterator<Item = Result<PlannedLookup, EngineError>> + Send>,
    /// Held in memory: only keys a source keeps results for (domains, addresses) are served.
    pub(super) served: Vec<Answered>,
}

impl Plan {
    pub(super) fn empty() -> Self {
        Self { lookups: 0, users: 0, order: Box::new(std::iter::empty()), served: Vec::new() }
    }
}

/// Users the reading phase passes over.
pub(super) struct Skip<'a> {
    /// Identities whose check an interrupted run fetched: written without a lookup.
    pub(super) resumed: &'a HashSet<String>,
    /// Digests of keys forgotten on request.
    pub(super) suppressed: &'a BTreeSet<u64>,
}

/// Reads the roster and plans the lookups; the keys with a fresh kept result come apart, unlooked-up.
pub(super) async fn read_due_users(
    connection: &Connection,
    store: &dyn StateStore,
    request: &SyncRequest,
    skip: &Skip<'_>,
    now: DateTime<Utc>,
    summary: &mut RunSummary,
) -> Result<Plan, EngineError> {
    let rows = read_rows(connection, store, request, skip, now, summary).await?;
    let due = one_row_per_identity(rows, summary)?;
    if summary.identities_with_several_emails > 0 {
        let identities = summary.identities_with_several_emails;
        SeveralEmails { connection: &connection.name, identities }.emit();
    }
    let kept = Kept { store, source: connection.source.as_ref(), refresh: connection.schedule.refresh, now };
    order_lookups(due, connection.schedule.max_lookups_per_run, &kept, summary)
}

/// Where a row sorts among the rows read: by identity, the most recently seen first, and among those
/// seen equally recently the first read (the sort is stable).
type RowOrder = (String, Reverse<DateTime<Utc>>);

/// A usable roster row, judged.
#[derive(Serialize, Deserialize)]
struct Row {
    /// Its place in the roster, which orders the users of a key.
    seq: u64,
    key_digest: u64,
    fate: Fate,
}

/// Streams the roster into a sort by identity, each usable row judged on the way.
async fn read_rows(
    connection: &Connection,
    store: &dyn StateStore,
    request: &SyncRequest,
    skip: &Skip<'_>,
    now: DateTime<Utc>,
    summary: &mut RunSummary,
) -> Result<Spill<RowOrder, Row>, EngineError> {
    let name = connection.name.as_str();
    let progress = request.progress.as_ref();
    let mut users = match connection.users.users(request.seen_since).await {
        Ok(users) => users,
        Err(error) => {
            return Err(EngineError::Connection(format!("{}: {error}", connection.users.describe())));
        }
    };
    let source = connection.source.as_ref();
    let key_kind = source.key_kind();
    let judge = DueJudge {
        store,
        source,
        sink: connection.sink.as_ref(),
        skip,
        rule: DueRule {
            refresh: connection.schedule.refresh,
            invalid_retry_after: source.invalid_retry_after(),
        },
        now,
    };
    let mut rows = Spill::new(SPILL_BUDGET);
    while let Some(item) = users.next().await {
        let mut user = match item {
            Ok(user) => user,
            Err(DirectoryError::BadRow { location, message }) => {
                summary.bad_rows += 1;
                summary.note(&format!("bad row: {message}"), 1);
                RowSkipped { connection: name, reason: &format!("{location}: {message}") }.emit();
                continue;
            }
            Err(DirectoryError::Fatal(message)) => {
                return Err(EngineError::Connection(format!("{}: {message}", connection.users.describe())));
            }
        };
        summary.read += 1;
        if summary.read.is_multiple_of(PROGRESS_EVERY) {
            progress.read(summary.read);
        }
        if user.last_seen < request.seen_since {
            summary.outside_window += 1;
            continue;
        }
        let key = match user.lookup_key(key_kind).or_else(|reason| source.fallback_key(&user).ok_or(reason)) {
            Ok(key) => key,
            Err(SkipReason::NoEmail) => {
                summary.no_email += 1;
                continue;
            }
            Err(SkipReason::NoIp) => {
                summary.no_ip += 1;
                continue;
            }
            Err(SkipReason::MalformedEmail) => {
                summary.malformed_email += 1;
                continue;
            }
        };
        // Identities are trimmed like emails: ` u1` and `u1` are one user.
        if let Some(identity) = user.identity.as_mut().filter(|identity| identity.trim() != *identity) {
            *identity = identity.trim().to_owned();
        }
        let state_key = user.state_key().into_owned();
        if skip.resumed.contains(&state_key) {
            continue;
        }
        let key_digest = key.digest();
        let order = (state_key, Reverse(user.last_seen));
        let fate = judge.fate(user, key, key_digest)?;
        rows.push(order, &Row { seq: summary.read, key_digest, fate }).map_err(spill_failed)?;
    }
    progress.read(summary.read);
    Ok(rows)
}

/// The row an identity is enriched from: its most recently seen one (the first of equals), so that
/// an identity listed with several emails gets the same one every run.
struct Chosen {
    identity: String,
    key_digest: u64,
    several_emails: bool,
}

/// Keeps each identity's chosen row and counts what became of it; the due ones go into a sort by key,
/// in roster order within a key.
fn one_row_per_identity(
    rows: Spill<RowOrder, Row>,
    summary: &mut RunSummary,
) -> Result<Spill<(LookupKey, u64), DueUser>, EngineError> {
    let mut due = Spill::new(SPILL_BUDGET);
    let mut chosen: Option<Chosen> = None;
    for entry in rows.sorted().map_err(spill_failed)? {
        let ((identity, _), row) = entry.map_err(spill_failed)?;
        if let Some(chosen) = chosen.as_mut().filter(|chosen| chosen.identity == identity) {
            summary.duplicate_identities += 1;
            if row.key_digest != chosen.key_digest && !chosen.several_emails {
                chosen.several_emails = true;
                summary.identities_with_several_emails += 1;
            }
            continue;
        }
        match row.fate {
            Fate::Due(key, user) => {
                summary.due += 1;
                due.push((key, row.seq), &*user).map_err(spill_failed)?;
            }
            Fate::UpToDate => summary.up_to_date += 1,
            Fate::Skipped(reason) => {
                summary.skipped += 1;
                summary.note(&format!("skipped: {reason}"), 1);
            }
            Fate::Unaddressable(reason) => {
                summary.unaddressable += 1;
                summary.note(&reason, 1);
            }
        }
        chosen = Some(Chosen { identity, key_digest: row.key_digest, several_emails: false });
    }
    Ok(due)
}

/// Lower comes first: pending lookups (the source is fetching them), then never checked users, then
/// the oldest checks.
type Priority = (u8, Option<DateTime<Utc>>);

fn priority(user: &DueUser) -> Priority {
    match &user.previous {
        Some(state) if state.outcome == Outcome::Pending => (0, None),
        None => (1, None),
        Some(state) => (2, state.checked_at),
    }
}

/// Groups the due users by key and orders the keys by their most urgent user: all of them through a
/// sort on disk, or, when the run is capped, only the best `max_lookups_per_run` in a bounded heap.
fn order_lookups(
    due: Spill<(LookupKey, u64), DueUser>,
    max_lookups: Option<u64>,
    kept: &Kept<'_>,
    summary: &mut RunSummary,
) -> Result<Plan, EngineError> {
    let mut order = match max_lookups {
        Some(limit) => {
            Order::Capped { limit: usize::try_from(limit).unwrap_or(usize::MAX), best: BinaryHeap::new() }
        }
        None => Order::Uncapped { sorted: Spill::new(SPILL_BUDGET), lookups: 0, users: 0 },
    };
    let mut served = Vec::new();
    let mut place = |lookup: PlannedLookup, order: &mut Order, summary: &mut RunSummary| {
        match kept.serve(lookup)? {
            Ok(answered) => served.push(answered),
            Err((key, users)) => order.add(key, users, summary).map_err(spill_failed)?,
        }
        Ok::<_, EngineError>(())
    };
    let mut group: Option<PlannedLookup> = None;
    for entry in due.sorted().map_err(spill_failed)? {
        let ((key, _), user) = entry.map_err(spill_failed)?;
        match &mut group {
            Some((current, users)) if *current == key => users.push(user),
            _ => {
                if let Some(complete) = group.replace((key, vec![user])) {
                    place(complete, &mut order, summary)?;
                }
            }
        }
    }
    if let Some(complete) = group {
        place(complete, &mut order, summary)?;
    }
    let mut plan = order.into_plan().map_err(spill_failed)?;
    plan.users += served.iter().map(|(_, users, ..)| users.len() as u64).sum::<u64>();
    plan.served = served;
    Ok(plan)
}

/// How the lookups are being ordered.
enum Order {
    Capped { limit: usize, best: BinaryHeap<Candidate> },
    Uncapped { sorted: Spill<(Priority, LookupKey), Vec<DueUser>>, lookups: u64, users: u64 },
}

impl Order {
    fn add(&mut self, key: LookupKey, users: Vec<DueUser>, summary: &mut RunSummary) -> std::io::Result<()> {
        let priority = users.iter().map(priority).min().unwrap_or((u8::MAX, None));
        match self {
            Self::Capped { limit, best } => {
                best.push(Candidate { priority, key, users });
                if best.len() > *limit
                    && let Some(worst) = best.pop()
                {
                    summary.deferred += worst.users.len() as u64;
                }
                Ok(())
            }
            Self::Uncapped { sorted, lookups, users: planned_users } => {
                *lookups += 1;
                *planned_users += users.len() as u64;
                sorted.push((priority, key), &users)
            }
        }
    }

    fn into_plan(self) -> std::io::Result<Plan> {
        let (lookups, users, order): (_, _, Box<dyn Iterator<Item = _> + Send>) = match self {
            Self::Capped { best, .. } => {
                let best = best.into_sorted_vec();
                let users = best.iter().map(|candidate| candidate.users.len() as u64).sum();
                let lookups = best.len() as u64;
                let order = best.into_iter().map(|candidate| Ok((candidate.key, candidate.users)));
                (lookups, users, Box::new(order))
            }
            Self::Uncapped { sorted, lookups, users } => {
                let order = sorted.sorted()?.map(|entry| entry.map(|((_, key), users)| (key, users)));
                (lookups, users, Box::new(order.map(|entry| entry.map_err(spill_failed))))
            }
        };
        Ok(Plan { lookups, users, order, served: Vec::new() })
    }
}

/// A lookup competing for a place in a capped run, ranked by priority, then by key.
struct Candidate {
    priority: Priority,
    key: LookupKey,
    users: Vec<DueUser>,
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&self.priority, &self.key).cmp(&(&other.priority, &other.key))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for Candidate {}

/// A temporary file of the plan failed (a full disk): the run cannot go on.
fn spill_failed(error: impl std::fmt::Display) -> EngineError {
    let folder = std::env::temp_dir();
    EngineError::Connection(format!("cannot keep the run's plan in {}: {error}", folder.display()))
}

/// Decides whether a roster row is skipped, due or up to date.
struct DueJudge<'a> {
    store: &'a dyn StateStore,
    source: &'a dyn Source,
    sink: &'a dyn Sink,
    skip: &'a Skip<'a>,
    rule: DueRule,
    now: DateTime<Utc>,
}

impl DueJudge<'_> {
    /// Whether a user looked up by their email's domain asked to be forgotten by their email.
    fn email_forgotten(&self, user: &UserRecord, key: &LookupKey) -> bool {
        matches!(key, LookupKey::Domain(_))
            && !self.skip.suppressed.is_empty()
            && user
                .lookup_key(KeyKind::Email)
                .is_ok_and(|email| self.skip.suppressed.contains(&email.digest()))
    }

    /// What becomes of a user with this key (counted once the identity's row is chosen).
    fn fate(&self, user: UserRecord, key: LookupKey, digest: u64) -> Result<Fate, StateError> {
        if let Some(reason) = self.sink.cannot_address(&user) {
            return Ok(Fate::Unaddressable(format!("skipped by {}: {reason}", self.sink.kind())));
        }
        let declined = if self.skip.suppressed.contains(&digest) || self.email_forgotten(&user, &key) {
            Some("forgotten on request")
        } else {
            self.source.declines(&key)
        };
        if let Some(reason) = declined {
            return Ok(Fate::Skipped(reason.to_owned()));
        }
        let previous = self.store.user(&user.state_key())?;
        if previous.as_ref().is_none_or(|state| state.is_due(digest, self.now, self.rule)) {
            Ok(Fate::Due(key, Box::new(DueUser { record: user, previous })))
        } else {
            Ok(Fate::UpToDate)
        }
    }
}

/// What the reading phase made of a row: due (with the user's state), up to date, skipped (and why),
/// or one the sink cannot address (with the reason it is counted under).
#[derive(Serialize, Deserialize)]
enum Fate {
    Due(LookupKey, Box<DueUser>),
    UpToDate,
    Skipped(String),
    Unaddressable(String),
}
