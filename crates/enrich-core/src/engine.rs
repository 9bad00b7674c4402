//! The sync engine: one run of one connection.
//!
//! 1. **Resume**: checks an interrupted run fetched but never saw acknowledged are written first,
//!    without a new lookup.
//! 2. **Read**: users stream in from the directory; those in the window whose last check is older
//!    than the refresh interval are due, grouped by lookup key (users sharing an email share one
//!    lookup), pending ones and the oldest checks first, at most `max_lookups_per_run` keys.
//! 3. **Look up and write**: lookups run with bounded concurrency; every completed check is stored as a
//!    pending write, then travels through a bounded channel to a writer that batches for the sink, so a
//!    slow sink slows lookups down instead of filling memory. A user's state is committed only after the
//!    sink acknowledged the write that carried it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::digest::stable_hash;
use crate::events::{
    BatchFailed, BatchWritten, InternalEvent, LookupFailed, RowSkipped, RunFinished, RunStarted, RunStopped,
    SeveralEmails, UsersRefused, ValuesCut,
};
use crate::{
    ConnectionStatus, ConnectorError, DirectoryError, DueRule, Lookup, LookupHints, LookupKey, Outcome,
    PendingWrite, Properties, PropertyValue, Record, RunKind, RunRecord, RunSummary, Segment, Sink,
    SkipReason, Source, StateError, StateStore, UserDirectory, UserRecord, UserState, UserUpdate,
};

/// When a connection runs, which users it covers, and how much one run may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// How often `enrich run` syncs the connection.
    pub every: Duration,
    /// Only users seen within this window are enriched.
    pub backfill: Duration,
    /// A user checked more recently than this is not due.
    pub refresh: Duration,
    /// At most this many lookups a run; the rest wait for the next run, oldest checks first.
    pub max_lookups_per_run: Option<u64>,
}

impl Default for Schedule {
    fn default() -> Self {
        const DAY: Duration = Duration::from_secs(24 * 60 * 60);
        Self { every: DAY, backfill: DAY * 7, refresh: DAY, max_lookups_per_run: None }
    }
}

/// A connection built from its config: everything the engine needs to run it.
#[derive(Debug, Clone)]
pub struct Connection {
    pub name: String,
    pub source: Arc<dyn Source>,
    pub sink: Arc<dyn Sink>,
    pub users: Arc<dyn UserDirectory>,
    pub schedule: Schedule,
}

/// What one run covers, and how to stop it early.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub kind: RunKind,
    pub seen_since: DateTime<Utc>,
    /// Cancelled to stop the run: no new lookup starts, lookups in flight get [`STOP_GRACE`] to finish
    /// (later ones are abandoned unrecorded), and every result already fetched is written.
    pub stop: CancellationToken,
    /// Told how the run advances.
    pub progress: Arc<dyn Progress>,
}

/// Told how a run advances, for progress bars and periodic log lines. Every method has a default that
/// ignores the news.
pub trait Progress: Send + Sync + std::fmt::Debug {
    /// Roster rows read so far (told every [`PROGRESS_EVERY`] rows and at the end).
    fn read(&self, _rows: u64) {}
    /// The lookups this run will make, for that many users.
    fn planned(&self, _lookups: u64, _users: u64) {}
    /// One lookup finished, for that many users.
    fn looked_up(&self, _users: u64) {}
    /// The sink acknowledged that many more users.
    fn written(&self, _users: u64) {}
}

/// Progress nobody watches.
#[derive(Debug)]
pub struct Unobserved;

impl Progress for Unobserved {}

/// How many roster rows pass between two reports of reading progress.
pub const PROGRESS_EVERY: u64 = 10_000;

impl SyncRequest {
    /// A scheduled or manual run over the connection's backfill window.
    pub fn over_window(kind: RunKind, schedule: &Schedule, now: DateTime<Utc>) -> Self {
        let window = chrono::Duration::from_std(schedule.backfill).unwrap_or(chrono::Duration::MAX);
        let seen_since = now.checked_sub_signed(window).unwrap_or(DateTime::<Utc>::MIN_UTC);
        Self { kind, seen_since, stop: CancellationToken::new(), progress: Arc::new(Unobserved) }
    }

    /// A one-off run over users seen since the given time.
    pub fn backfill(since: DateTime<Utc>) -> Self {
        Self {
            kind: RunKind::Backfill { since },
            seen_since: since,
            stop: CancellationToken::new(),
            progress: Arc::new(Unobserved),
        }
    }

    pub fn with_stop(self, stop: CancellationToken) -> Self {
        Self { stop, ..self }
    }

    pub fn with_progress(self, progress: Arc<dyn Progress>) -> Self {
        Self { progress, ..self }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub run: RunRecord,
    pub status: ConnectionStatus,
}

/// How long the writer waits for a batch to fill before sending what it has, so results do not sit
/// unwritten while slow lookups trickle in.
const WRITE_LINGER: Duration = Duration::from_secs(2);

/// How long lookups in flight may finish once a run is asked to stop.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Runs one sync of `connection`. Errors of the connection (bad key, unreadable roster) end up in
/// the report and the stored status; only a failing state store is an `Err`, since then nothing can
/// be recorded.
pub async fn sync(
    connection: &Connection,
    store: Arc<dyn StateStore>,
    request: SyncRequest,
) -> Result<SyncReport, StateError> {
    let started_at = Utc::now();
    let name = connection.name.as_str();
    RunStarted { connection: name, seen_since: request.seen_since, users: &connection.users.describe() }
        .emit();

    // Stopped by the caller, or by the run itself on a fatal error.
    let stop = request.stop.child_token();
    let mut summary = RunSummary::default();
    let (sender, receiver) = mpsc::channel(connection.sink.max_batch().max(1) * 2);
    let writer = tokio::spawn(write_loop(WriteContext {
        connection: name.to_owned(),
        sink: Arc::clone(&connection.sink),
        store: Arc::clone(&store),
        stop: stop.clone(),
        progress: Arc::clone(&request.progress),
        receiver,
    }));

    let resumed = store.pending()?;
    summary.resumed = resumed.len() as u64;
    let resumed_identities: HashSet<String> =
        resumed.iter().map(|pending| pending.update.state_key().into_owned()).collect();
    for pending in resumed {
        if sender.send(pending).await.is_err() {
            break;
        }
    }

    let suppressed = store.connection()?.suppressed;
    let _lent = cached::Lent::to(&connection.source, &store, connection.schedule.refresh);
    let mut fatal = None;
    let (plan, served) = if stop.is_cancelled() {
        (Vec::new(), Vec::new())
    } else {
        let skip = Skip { resumed: &resumed_identities, suppressed: &suppressed };
        match read_due_users(connection, store.as_ref(), &request, &skip, started_at, &mut summary).await {
            Ok(plan) => plan,
            Err(EngineError::Connection(error)) => {
                fatal = Some(error);
                (Vec::new(), Vec::new())
            }
            Err(EngineError::State(error)) => return Err(error),
        }
    };
    let planned_users: u64 = plan.iter().map(|(_, users)| users.len() as u64).sum::<u64>()
        + served.iter().map(|(_, users, ..)| users.len() as u64).sum::<u64>();
    request.progress.planned(plan.len() as u64, planned_users);

    let source = connection.source.as_ref();
    let looked_up = futures::stream::iter(in_requests(plan, source.max_keys_per_request()))
        .map(|batch| look_up_batch(source, batch, &suppressed, stop.clone()))
        .buffer_unordered(source.max_in_flight().max(1))
        .flat_map(futures::stream::iter);
    let mut lookups = futures::stream::iter(served).chain(looked_up);
    let abandon = async {
        stop.cancelled().await;
        tokio::time::sleep(STOP_GRACE).await;
    };
    tokio::pin!(abandon);

    let segments = source.segments();
    let mut processed_users = 0;
    let mut derived = BTreeMap::new();
    loop {
        let next = tokio::select! {
            next = lookups.next() => next,
            () = &mut abandon => break,
        };
        let Some((key, users, result, origin)) = next else { break };
        let Some(result) = result else { continue };
        if let Err(ConnectorError::Fatal(message)) = result {
            // Not a completed lookup: its users stay due, counted as aborted below.
            stop.cancel();
            fatal.get_or_insert(message);
            continue;
        }
        processed_users += users.len() as u64;
        request.progress.looked_up(users.len() as u64);
        cached::count(&mut summary, origin, users.len());
        // Users served from a kept result are checked as of its lookup, and due again when it expires.
        let now = match origin {
            cached::Origin::Cached(checked_at) => checked_at,
            cached::Origin::LookedUp => Utc::now(),
        };
        let key_hash = key.digest();
        let fallback_hash = sent_address_hash(&key, &users, &suppressed);
        match result {
            Ok(lookup @ (Lookup::Found(_) | Lookup::NotFound(_))) => {
                cached::keep(store.as_ref(), source, &key, &lookup, origin, now)?;
                let (outcome, record) = match lookup {
                    Lookup::Found(record) => (Outcome::Found, record),
                    Lookup::NotFound(record) => (Outcome::NotFound, record),
                    Lookup::Pending | Lookup::Invalid(_) => unreachable!("matched above"),
                };
                let count =
                    if outcome == Outcome::Found { &mut summary.found } else { &mut summary.not_found };
                *count += users.len() as u64;
                if !record.cut.is_empty() {
                    summary.values_cut += record.cut.len() as u64;
                    ValuesCut { connection: name, properties: &record.cut }.emit();
                }
                let Record { properties, derived: new_names, .. } = record;
                derived.extend(new_names.into_iter().map(|(path, property)| (property, path)));
                let digests = (key_hash, fallback_hash);
                let check =
                    Check::new(outcome, digests, properties, source.checked_property(), &segments, now);
                let mut pending = Vec::with_capacity(users.len());
                for user in users {
                    let prepared = check.pending_write(user);
                    summary.unchanged += u64::from(prepared.unchanged);
                    summary.cleared += prepared.cleared;
                    pending.push(prepared.write);
                }
                // Stored before it is sent: a run killed now writes it next time without a new lookup.
                store.put_pending(&pending)?;
                for write in pending {
                    if sender.send(write).await.is_err() {
                        break;
                    }
                }
            }
            Ok(Lookup::Pending) => {
                summary.pending += users.len() as u64;
                record(store.as_ref(), &users, (key_hash, fallback_hash), |previous| UserState {
                    outcome: Outcome::Pending,
                    detail: None,
                    attempted_at: now,
                    ..previous
                })?;
            }
            Ok(Lookup::Invalid(reason)) => {
                summary.invalid += users.len() as u64;
                summary.note(&format!("invalid: {reason}"), users.len() as u64);
                record(store.as_ref(), &users, (key_hash, fallback_hash), |previous| UserState {
                    outcome: Outcome::Invalid,
                    checked_at: Some(now),
                    detail: Some(reason.clone()),
                    attempted_at: now,
                    ..previous
                })?;
            }
            Err(error) => {
                let message = error.to_string();
                LookupFailed { connection: name, key: &key, users: users.len(), error: &message }.emit();
                summary.failed += users.len() as u64;
                summary.note(&message, users.len() as u64);
                record(store.as_ref(), &users, (key_hash, fallback_hash), |previous| UserState {
                    outcome: Outcome::Failed,
                    detail: Some(message.clone()),
                    attempted_at: now,
                    ..previous
                })?;
            }
        }
    }
    // Lookups never started, or abandoned after the grace period, are not recorded: still due.
    drop(lookups);
    summary.aborted += planned_users - processed_users;
    drop(sender);
    let written = writer.await.map_err(|panic| StateError(format!("the writer task failed: {panic}")))??;

    summary.written = written.written;
    summary.batches = written.batches;
    summary.failed += written.failed;
    summary.aborted += written.aborted;
    for (reason, users) in &written.reasons {
        summary.note(reason, *users);
    }
    let fatal = fatal.or(written.fatal);
    summary.credits_left = source.credits_left();

    let mut state = store.connection()?;
    if written.data_reached && state.first_data_at.is_none() {
        state.first_data_at = Some(Utc::now());
    }
    // Counted, not added up: it agrees with `enrich report` whatever later checks changed.
    state.users_enriched = crate::found_users(store.as_ref())?;
    state.derived_properties.extend(derived);
    state.status = match &fatal {
        Some(error) => {
            RunStopped { connection: name, error }.emit();
            ConnectionStatus::Error(error.clone())
        }
        None if state.first_data_at.is_some() => ConnectionStatus::Connected,
        None => ConnectionStatus::WaitingForData,
    };
    let run = RunRecord {
        kind: request.kind,
        started_at,
        finished_at: Utc::now(),
        seen_since: request.seen_since,
        summary,
        error: fatal,
        stopped_early: request.stop.is_cancelled(),
    };
    RunFinished { connection: name, summary: &run.summary }.emit();
    state.push_run(run.clone());
    store.put_connection(&state)?;
    store.flush()?;
    Ok(SyncReport { run, status: state.status })
}

/// What a run would do now, worked out by the run's own reading phase: no lookup, no write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPlan {
    /// The reading phase's figures (read, outside the window, due, deferred, …); `resumed` counts
    /// the checks an interrupted run fetched, and `lookups_saved` the users of keys with a kept result,
    /// both written without a lookup.
    pub summary: RunSummary,
    /// Each lookup the run would make, in its order, with how many users it serves.
    pub lookups: Vec<(LookupKey, u64)>,
}

/// Plans a run of `connection` as [`sync`] would (same due rules, grouping, order and cap), for a
/// dry run or a cost preview. The inner `Err` is a fatal roster error.
pub async fn plan(
    connection: &Connection,
    store: &dyn StateStore,
    request: &SyncRequest,
) -> Result<Result<RunPlan, String>, StateError> {
    let resumed: HashSet<String> =
        store.pending()?.iter().map(|pending| pending.update.state_key().into_owned()).collect();
    let suppressed = store.connection()?.suppressed;
    let mut summary = RunSummary { resumed: resumed.len() as u64, ..RunSummary::default() };
    let skip = Skip { resumed: &resumed, suppressed: &suppressed };
    match read_due_users(connection, store, request, &skip, Utc::now(), &mut summary).await {
        Ok((plan, served)) => {
            summary.lookups_saved = served.iter().map(|(_, users, ..)| users.len() as u64).sum();
            let lookups = plan.into_iter().map(|(key, users)| (key, users.len() as u64)).collect();
            Ok(Ok(RunPlan { summary, lookups }))
        }
        Err(EngineError::Connection(error)) => Ok(Err(error)),
        Err(EngineError::State(error)) => Err(error),
    }
}

/// A due user with what is remembered of it.
#[derive(Debug)]
struct DueUser {
    record: UserRecord,
    previous: Option<UserState>,
}

/// The lookups of a run, in the order they should happen.
type Plan = Vec<(LookupKey, Vec<DueUser>)>;

/// The plan cut into the batches of one request each, in order.
fn in_requests(plan: Plan, keys_per_request: usize) -> Vec<Plan> {
    let mut lookups = plan.into_iter().peekable();
    let mut batches = Vec::new();
    while lookups.peek().is_some() {
        batches.push(lookups.by_ref().take(keys_per_request.max(1)).collect());
    }
    batches
}

/// Looks one batch up: each key with its users and its answer, `None` when it was not asked.
async fn look_up_batch(
    source: &dyn Source,
    batch: Plan,
    suppressed: &std::collections::BTreeSet<u64>,
    stop: CancellationToken,
) -> Vec<cached::Answered> {
    let mut answers = Vec::new();
    if !stop.is_cancelled() {
        let keys: Vec<(LookupKey, LookupHints)> =
            batch.iter().map(|(key, users)| (key.clone(), hints_of(users, suppressed))).collect();
        answers = source.lookup_batch(&keys, &stop).await;
    }
    let mut answers = answers.into_iter();
    batch
        .into_iter()
        .map(|(key, users)| (key, users, answers.next().flatten(), cached::Origin::LookedUp))
        .collect()
}

/// The hints sent with a key's lookup. A forgotten address is never sent, neither as a hint nor as a
/// source's fallback.
fn hints_of(users: &[DueUser], suppressed: &std::collections::BTreeSet<u64>) -> LookupHints {
    let mut hints = LookupHints::of(users.iter().map(|user| &user.record));
    hints.ip = hints.ip.filter(|ip| !suppressed.contains(&LookupKey::Ip(*ip).digest()));
    hints
}

/// The digest of the address offered with an email's lookup (Clearbit's hint, Reveal's fallback), which
/// the users' states keep so that forgetting the address reaches them.
fn sent_address_hash(
    key: &LookupKey,
    users: &[DueUser],
    suppressed: &std::collections::BTreeSet<u64>,
) -> Option<u64> {
    let LookupKey::Email(_) = key else { return None };
    hints_of(users, suppressed).ip.map(|ip| LookupKey::Ip(ip).digest())
}

/// Users the reading phase passes over.
struct Skip<'a> {
    /// Identities whose check an interrupted run fetched: written without a lookup.
    resumed: &'a HashSet<String>,
    /// Digests of keys forgotten on request.
    suppressed: &'a std::collections::BTreeSet<u64>,
}

/// Why a phase of a run cannot go on.
#[derive(Debug)]
enum EngineError {
    /// The connection cannot run (an unreadable roster, a refused key): the run stops, and the report
    /// and the stored status say why.
    Connection(String),
    /// The state store failed: nothing more can be recorded.
    State(StateError),
}

impl From<StateError> for EngineError {
    fn from(error: StateError) -> Self {
        Self::State(error)
    }
}

/// Reads the roster and plans the lookups; the keys with a fresh kept result come apart, unlooked-up.
async fn read_due_users(
    connection: &Connection,
    store: &dyn StateStore,
    request: &SyncRequest,
    skip: &Skip<'_>,
    now: DateTime<Utc>,
    summary: &mut RunSummary,
) -> Result<(Plan, Vec<cached::Answered>), EngineError> {
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
        if let Some(identity) = user.identity.as_mut().filter(|identity| identity.trim() != *identity) {
            *identity = identity.trim().to_owned();
        }
        if skip.resumed.contains(user.state_key().as_ref()) {
            continue;
        }
        let digest = key.digest();
        if !planner.takes(&user, digest, summary) {
            continue;
        }
        let fate = judge.fate(&user, key, digest, summary)?;
        planner.settle(user, fate);
    }
    progress.read(summary.read);
    if summary.identities_with_several_emails > 0 {
        SeveralEmails { connection: name, identities: summary.identities_with_several_emails }.emit();
    }
    let mut plan: Plan = planner.due.into_iter().collect();
    let served = cached::take_cached(store, source, &mut plan, connection.schedule.refresh, now)?;
    // Pending lookups first (Clearbit is fetching them), then never checked, then the oldest checks.
    plan.sort_by_cached_key(|(_, users)| users.iter().map(priority).min());
    if let Some(limit) = connection.schedule.max_lookups_per_run {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        if plan.len() > limit {
            summary.deferred = plan.drain(limit..).map(|(_, users)| users.len() as u64).sum();
        }
    }
    Ok((plan, served))
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
    /// What becomes of a user with this key, counted in the summary.
    fn fate(
        &self,
        user: &UserRecord,
        key: LookupKey,
        digest: u64,
        summary: &mut RunSummary,
    ) -> Result<Fate, StateError> {
        if let Some(reason) = self.sink.cannot_address(user) {
            let reason = format!("skipped by {}: {reason}", self.sink.kind());
            summary.unaddressable += 1;
            summary.note(&reason, 1);
            return Ok(Fate::Unaddressable(reason));
        }
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
        let previous = self.store.user(&user.state_key())?;
        if previous.as_ref().is_none_or(|state| state.is_due(digest, self.now, self.rule)) {
            summary.due += 1;
            Ok(Fate::Due(key, previous))
        } else {
            summary.up_to_date += 1;
            Ok(Fate::UpToDate)
        }
    }
}

/// What the reading phase made of an identity's row: due (with the user's state), up to date,
/// skipped (and why), or one the sink cannot address (with the reason it was counted under).
enum Fate {
    Due(LookupKey, Option<UserState>),
    UpToDate,
    Skipped(&'static str),
    Unaddressable(String),
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
        let identity_hash = stable_hash([user.state_key().as_bytes()]);
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
            Some(Fate::Unaddressable(reason)) => {
                summary.unaddressable -= 1;
                summary.unnote(&reason, 1);
            }
            Some(Fate::Due(key, _)) => {
                summary.due -= 1;
                if let Some(users) = self.due.get_mut(&key) {
                    users.retain(|due| due.record.state_key() != user.state_key());
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
        let identity_hash = stable_hash([user.state_key().as_bytes()]);
        let Some(chosen) = self.chosen.get_mut(&identity_hash) else { return };
        chosen.counted = Some(match fate {
            Fate::Due(key, previous) => {
                self.due.entry(key.clone()).or_default().push(DueUser { record: user, previous });
                Fate::Due(key, None)
            }
            counted @ (Fate::UpToDate | Fate::Skipped(_) | Fate::Unaddressable(_)) => counted,
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

fn properties_hash(properties: &Properties) -> u64 {
    let encoded = serde_json::to_vec(properties).unwrap_or_default();
    stable_hash([encoded.as_slice()])
}

/// A blank state to build on for a user never seen before.
fn fresh_state(key_hash: u64, now: DateTime<Utc>) -> UserState {
    UserState {
        key_hash,
        fallback_hash: None,
        outcome: Outcome::Pending,
        checked_at: None,
        attempted_at: now,
        detail: None,
        written_at: None,
        properties_hash: None,
        properties_written: 0,
        written_properties: Vec::new(),
        segments: BTreeMap::new(),
    }
}

/// Records an outcome that needs no write, building each user's new state from its previous one
/// (with the current key and the address sent along with it).
fn record(
    store: &dyn StateStore,
    users: &[DueUser],
    (key_hash, fallback_hash): (u64, Option<u64>),
    update: impl Fn(UserState) -> UserState,
) -> Result<(), StateError> {
    let now = Utc::now();
    let states: Vec<(String, UserState)> = users
        .iter()
        .map(|user| {
            let previous = user.previous.clone().unwrap_or_else(|| fresh_state(key_hash, now));
            let state = UserState { key_hash, fallback_hash, ..previous };
            (user.record.state_key().into_owned(), update(state))
        })
        .collect();
    store.put_users(&states)
}

/// One completed check of one key, shared by every user with that key: what depends only on the
/// check is worked out once, not once per user.
struct Check<'a> {
    outcome: Outcome,
    key_hash: u64,
    /// The digest of the address sent along with the key, if one was.
    fallback_hash: Option<u64>,
    properties: Properties,
    properties_hash: u64,
    /// The names this check leaves set, the check date included, sorted.
    names: Vec<String>,
    checked_property: &'a str,
    /// The values of the source's report segments, which the state keeps.
    segment_values: BTreeMap<String, String>,
    now: DateTime<Utc>,
}

/// One user's write of a check.
struct PreparedWrite {
    write: PendingWrite,
    /// Nothing changed since the last acknowledged write: only the check date is sent.
    unchanged: bool,
    /// Properties last written that this check no longer yields, sent empty.
    cleared: u64,
}

impl<'a> Check<'a> {
    fn new(
        outcome: Outcome,
        (key_hash, fallback_hash): (u64, Option<u64>),
        properties: Properties,
        checked_property: &'a str,
        segments: &[Segment],
        now: DateTime<Utc>,
    ) -> Self {
        let segment_values = segments
            .iter()
            .filter_map(|segment| {
                let value = properties.get(&segment.property)?;
                Some((segment.property.clone(), value.to_string()))
            })
            .collect();
        let properties_hash = properties_hash(&properties);
        let mut names: Vec<String> = properties.keys().cloned().collect();
        if let Err(at) = names.binary_search_by(|name| name.as_str().cmp(checked_property)) {
            names.insert(at, checked_property.to_owned());
        }
        Self {
            outcome,
            key_hash,
            fallback_hash,
            properties,
            properties_hash,
            names,
            checked_property,
            segment_values,
            now,
        }
    }

    /// The names last acknowledged for a user that this check no longer yields.
    fn no_longer_true<'p>(&self, previous: &'p UserState) -> Vec<&'p String> {
        previous.written_properties.iter().filter(|name| self.names.binary_search(name).is_err()).collect()
    }

    /// What to write for one user: everything (with what is no longer true emptied), or only the check
    /// date when nothing changed since the last acknowledged write.
    fn pending_write(&self, user: DueUser) -> PreparedWrite {
        let properties_hash = self.properties_hash;
        let previous = user.previous.unwrap_or_else(|| fresh_state(self.key_hash, self.now));
        let cleared = self.no_longer_true(&previous);
        let unchanged = previous.written_at.is_some()
            && previous.outcome == self.outcome
            && previous.properties_hash == Some(properties_hash)
            && cleared.is_empty();
        let mut properties = if unchanged { Properties::new() } else { self.properties.clone() };
        // Heap has no null: an empty value is how a property is cleared.
        properties.extend(cleared.iter().map(|name| ((*name).clone(), PropertyValue::Text(String::new()))));
        properties.insert(
            self.checked_property.to_owned(),
            PropertyValue::Text(self.now.to_rfc3339_opts(SecondsFormat::Secs, true)),
        );
        let acknowledged = UserState {
            key_hash: self.key_hash,
            fallback_hash: self.fallback_hash,
            outcome: self.outcome,
            checked_at: Some(self.now),
            attempted_at: self.now,
            detail: None,
            written_at: Some(self.now),
            properties_hash: Some(properties_hash),
            properties_written: self.names.len(),
            written_properties: self.names.clone(),
            segments: self.segment_values.clone(),
        };
        let cleared = cleared.len() as u64;
        let write = PendingWrite {
            update: UserUpdate {
                identity: user.record.identity,
                user_id: user.record.user_id,
                properties,
                checked_at: self.now,
            },
            acknowledged,
            previous: UserState { key_hash: self.key_hash, fallback_hash: self.fallback_hash, ..previous },
        };
        PreparedWrite { write, unchanged, cleared }
    }
}

/// What a pending write commits, once its update has gone to the sink.
struct StatesOfWrite {
    acknowledged: UserState,
    previous: UserState,
}

struct WriteContext {
    connection: String,
    sink: Arc<dyn Sink>,
    store: Arc<dyn StateStore>,
    stop: CancellationToken,
    progress: Arc<dyn Progress>,
    receiver: mpsc::Receiver<PendingWrite>,
}

#[derive(Debug, Default)]
struct WriteReport {
    written: u64,
    batches: u64,
    failed: u64,
    aborted: u64,
    /// Found properties were acknowledged by the sink in this run.
    data_reached: bool,
    fatal: Option<String>,
    /// Why writes failed, with how many users each time.
    reasons: Vec<(String, u64)>,
}

/// Batches pending writes for the sink and commits each user's state once its batch is acknowledged.
async fn write_loop(mut context: WriteContext) -> Result<WriteReport, StateError> {
    let max_batch = context.sink.max_batch().max(1);
    let mut report = WriteReport::default();
    let mut batch: Vec<PendingWrite> = Vec::with_capacity(max_batch);
    let mut deadline = tokio::time::Instant::now();
    loop {
        let next = if batch.is_empty() {
            context.receiver.recv().await
        } else {
            match tokio::time::timeout_at(deadline, context.receiver.recv()).await {
                Ok(next) => next,
                Err(_elapsed) => {
                    write_batch(&context, std::mem::take(&mut batch), &mut report).await?;
                    continue;
                }
            }
        };
        let Some(pending) = next else { break };
        if batch.is_empty() {
            deadline = tokio::time::Instant::now() + WRITE_LINGER;
        }
        batch.push(pending);
        if batch.len() >= max_batch {
            write_batch(&context, std::mem::take(&mut batch), &mut report).await?;
        }
    }
    write_batch(&context, batch, &mut report).await?;
    Ok(report)
}

async fn write_batch(
    context: &WriteContext,
    batch: Vec<PendingWrite>,
    report: &mut WriteReport,
) -> Result<(), StateError> {
    if batch.is_empty() {
        return Ok(());
    }
    if report.fatal.is_some() {
        // The sink refused the connection: these stay pending for the next run.
        report.aborted += batch.len() as u64;
        return Ok(());
    }
    // The updates move out of the batch rather than being copied: a batch of rich users is megabytes.
    let (updates, states): (Vec<UserUpdate>, Vec<StatesOfWrite>) = batch
        .into_iter()
        .map(|pending| {
            let states = StatesOfWrite { acknowledged: pending.acknowledged, previous: pending.previous };
            (pending.update, states)
        })
        .unzip();
    let name = context.connection.as_str();
    let refused = match context.sink.write(&updates).await {
        Ok(refused) => refused,
        Err(ConnectorError::Fatal(message)) => {
            context.stop.cancel();
            report.aborted += updates.len() as u64;
            report.fatal = Some(message);
            return Ok(());
        }
        Err(ConnectorError::Transient(message)) => {
            // The checks stay pending: the next run writes them without looking them up again.
            BatchFailed { connection: name, users: updates.len(), error: &message }.emit();
            report.failed += updates.len() as u64;
            report.reasons.push((message, updates.len() as u64));
            return Ok(());
        }
        Err(ConnectorError::Rejected(message)) => {
            (0..updates.len()).map(|at| (at, message.clone())).collect()
        }
    };
    let mut reasons: Vec<Option<String>> = vec![None; updates.len()];
    for (at, reason) in refused {
        if let Some(slot) = reasons.get_mut(at) {
            *slot = Some(reason);
        }
    }
    let mut acknowledged = Vec::with_capacity(updates.len());
    let mut refused = Vec::new();
    for ((update, states), reason) in updates.into_iter().zip(states).zip(reasons) {
        match reason {
            None => acknowledged.push((update.state_key().into_owned(), states)),
            Some(reason) => refused.push((update, states, reason)),
        }
    }
    commit_acknowledged(context, acknowledged, report)?;
    keep_refused(context, refused, report)
}

/// Commits the states of the users the sink acknowledged (and so drops their pending writes).
fn commit_acknowledged(
    context: &WriteContext,
    acknowledged: Vec<(String, StatesOfWrite)>,
    report: &mut WriteReport,
) -> Result<(), StateError> {
    if acknowledged.is_empty() {
        return Ok(());
    }
    let states: Vec<(String, UserState)> = acknowledged
        .into_iter()
        .map(|(identity, states)| {
            report.data_reached |= states.acknowledged.outcome == Outcome::Found;
            (identity, states.acknowledged)
        })
        .collect();
    context.store.put_users(&states)?;
    report.written += states.len() as u64;
    report.batches += 1;
    context.progress.written(states.len() as u64);
    BatchWritten { connection: &context.connection, users: states.len() }.emit();
    Ok(())
}

/// Records the users the sink refused as failed, with its reason, and keeps their checks as pending
/// writes: a refusal is the destination's problem, and must never cost a second lookup.
fn keep_refused(
    context: &WriteContext,
    refused: Vec<(UserUpdate, StatesOfWrite, String)>,
    report: &mut WriteReport,
) -> Result<(), StateError> {
    if refused.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let mut failed = Vec::with_capacity(refused.len());
    let mut pending = Vec::with_capacity(refused.len());
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for (update, states, reason) in refused {
        *reasons.entry(reason.clone()).or_default() += 1;
        let state = UserState {
            outcome: Outcome::Failed,
            detail: Some(reason),
            attempted_at: now,
            ..states.previous.clone()
        };
        failed.push((update.state_key().into_owned(), state));
        pending.push(PendingWrite { update, acknowledged: states.acknowledged, previous: states.previous });
    }
    for (reason, users) in reasons {
        UsersRefused { connection: &context.connection, users, error: &reason }.emit();
        report.failed += users;
        report.reasons.push((reason, users));
    }
    // Committing a state drops its pending write: the write is stored again right after.
    context.store.put_users(&failed)?;
    context.store.put_pending(&pending)
}

mod cached;
#[cfg(test)]
mod tests;
