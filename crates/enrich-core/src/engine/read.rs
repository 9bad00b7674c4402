//! The reading phase (the plan): users stream in from the directory; one row per identity is kept
//! (the most recently seen); those in the window whose last check is older than the refresh interval
//! are due, grouped by lookup key (users sharing an email share one lookup), pending ones and the
//! oldest checks first, at most `max_lookups_per_run` keys.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::{Connection, EngineError, PROGRESS_EVERY, SyncRequest};
use crate::digest::stable_hash;
use crate::events::{InternalEvent, RowSkipped, SeveralEmails};
use crate::{
    DirectoryError, DueRule, LookupKey, Outcome, RunSummary, SkipReason, Source, StateError, StateStore,
    UserRecord, UserState,
};

/// A due user with what is remembered of it.
#[derive(Debug)]
pub(super) struct DueUser {
    pub(super) record: UserRecord,
    pub(super) previous: Option<UserState>,
}

/// The lookups of a run, in the order they should happen.
pub(super) type Plan = Vec<(LookupKey, Vec<DueUser>)>;

/// Users the reading phase passes over.
pub(super) struct Skip<'a> {
    /// Identities whose check an interrupted run fetched: written without a lookup.
    pub(super) resumed: &'a HashSet<String>,
    /// Digests of keys forgotten on request.
    pub(super) suppressed: &'a BTreeSet<u64>,
}

/// Reads the roster and plans the lookups.
pub(super) async fn read_due_users(
    connection: &Connection,
    store: &dyn StateStore,
    request: &SyncRequest,
    skip: &Skip<'_>,
    now: DateTime<Utc>,
    summary: &mut RunSummary,
) -> Result<Plan, EngineError> {
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
        skip,
        rule: DueRule {
            refresh: connection.schedule.refresh,
            invalid_retry_after: source.invalid_retry_after(),
        },
        now,
    };
    let mut planner = Planner::default();
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
        if user.identity.trim() != user.identity {
            user.identity = user.identity.trim().to_owned();
        }
        if skip.resumed.contains(&user.identity) {
            continue;
        }
        let digest = key.digest();
        if !planner.takes(&user, digest, summary) {
            continue;
        }
        let fate = judge.fate(&user.identity, key, digest, summary)?;
        planner.settle(user, fate);
    }
    progress.read(summary.read);
    if summary.identities_with_several_emails > 0 {
        SeveralEmails { connection: name, identities: summary.identities_with_several_emails }.emit();
    }
    let mut plan: Plan = planner.due.into_iter().collect();
    // Pending lookups first (Clearbit is fetching them), then never checked, then the oldest checks.
    plan.sort_by_cached_key(|(_, users)| users.iter().map(priority).min());
    if let Some(limit) = connection.schedule.max_lookups_per_run {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        if plan.len() > limit {
            summary.deferred = plan.drain(limit..).map(|(_, users)| users.len() as u64).sum();
        }
    }
    Ok(plan)
}

/// Decides whether a roster row is skipped, due or up to date.
struct DueJudge<'a> {
    store: &'a dyn StateStore,
    source: &'a dyn Source,
    skip: &'a Skip<'a>,
    rule: DueRule,
    now: DateTime<Utc>,
}

impl DueJudge<'_> {
    /// What becomes of a user with this key, counted in the summary.
    fn fate(
        &self,
        identity: &str,
        key: LookupKey,
        digest: u64,
        summary: &mut RunSummary,
    ) -> Result<Fate, StateError> {
        let declined = if self.skip.suppressed.contains(&digest) {
            Some("forgotten on request")
        } else {
            self.source.declines(&key)
        };
        if let Some(reason) = declined {
            summary.skipped += 1;
            summary.note(&format!("skipped: {reason}"), 1);
            return Ok(Fate::Skipped(reason));
        }
        let previous = self.store.user(identity)?;
        if previous.as_ref().is_none_or(|state| state.is_due(digest, self.now, self.rule)) {
            summary.due += 1;
            Ok(Fate::Due(key, previous))
        } else {
            summary.up_to_date += 1;
            Ok(Fate::UpToDate)
        }
    }
}

/// What the reading phase made of an identity's row: due (with the user's state), up to date, or
/// skipped (and why).
enum Fate {
    Due(LookupKey, Option<UserState>),
    UpToDate,
    Skipped(&'static str),
}

/// The row an identity is enriched from: its most recently seen one (the first of equals), so that
/// an identity listed with several emails gets the same one every run.
struct Chosen {
    last_seen: DateTime<Utc>,
    key_digest: u64,
    several_emails: bool,
    /// How the row was counted, so that a more recent row can take its place (a due row's state is
    /// held by the plan, not here); `None` until settled.
    counted: Option<Fate>,
}

/// The due users of a run, grouped by key, with one row per identity. Remembers every identity read
/// (a hash, a time and a digest each), so that a later, more recent row can replace an earlier one.
#[derive(Default)]
struct Planner {
    due: BTreeMap<LookupKey, Vec<DueUser>>,
    chosen: HashMap<u64, Chosen>,
}

impl Planner {
    /// Whether this row is the one to use for its identity so far; counts the duplicate if the
    /// identity was read before, and takes back what its earlier row was counted as if this one
    /// replaces it.
    fn takes(&mut self, user: &UserRecord, key_digest: u64, summary: &mut RunSummary) -> bool {
        let identity_hash = stable_hash([user.identity.as_bytes()]);
        let Some(chosen) = self.chosen.get_mut(&identity_hash) else {
            let chosen =
                Chosen { last_seen: user.last_seen, key_digest, several_emails: false, counted: None };
            self.chosen.insert(identity_hash, chosen);
            return true;
        };
        summary.duplicate_identities += 1;
        if chosen.key_digest != key_digest && !chosen.several_emails {
            chosen.several_emails = true;
            summary.identities_with_several_emails += 1;
        }
        if user.last_seen <= chosen.last_seen {
            return false;
        }
        match chosen.counted.take() {
            Some(Fate::Skipped(reason)) => {
                summary.skipped -= 1;
                summary.unnote(&format!("skipped: {reason}"), 1);
            }
            Some(Fate::Due(key, _)) => {
                summary.due -= 1;
                if let Some(users) = self.due.get_mut(&key) {
                    users.retain(|due| due.record.identity != user.identity);
                    if users.is_empty() {
                        self.due.remove(&key);
                    }
                }
            }
            Some(Fate::UpToDate) => summary.up_to_date -= 1,
            None => {}
        }
        chosen.last_seen = user.last_seen;
        chosen.key_digest = key_digest;
        true
    }

    /// Records what became of the row [`Planner::takes`] chose.
    fn settle(&mut self, user: UserRecord, fate: Fate) {
        let identity_hash = stable_hash([user.identity.as_bytes()]);
        let Some(chosen) = self.chosen.get_mut(&identity_hash) else { return };
        chosen.counted = Some(match fate {
            Fate::Due(key, previous) => {
                self.due.entry(key.clone()).or_default().push(DueUser { record: user, previous });
                Fate::Due(key, None)
            }
            counted @ (Fate::UpToDate | Fate::Skipped(_)) => counted,
        });
    }
}

/// Lower comes first.
fn priority(user: &DueUser) -> (u8, Option<DateTime<Utc>>) {
    match &user.previous {
        Some(state) if state.outcome == Outcome::Pending => (0, None),
        None => (1, None),
        Some(state) => (2, state.checked_at),
    }
}
