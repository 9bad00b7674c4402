//! The sync engine: one run of one connection, in phases, each a module:
//!
//! 1. [`resume`]: checks an interrupted run fetched but never saw acknowledged are written first,
//!    without a new lookup.
//! 2. [`read`] (the plan): users stream in from the directory; those in the window whose last check
//!    is older than the refresh interval are due, grouped by lookup key (users sharing an email share
//!    one lookup), pending ones and the oldest checks first, at most `max_lookups_per_run` keys.
//! 3. [`lookup`]: lookups run with bounded concurrency; [`record`]: every completed check is stored as
//!    a pending write, then travels through a bounded channel to the [`write`]r, which batches for the
//!    sink, so a slow sink slows lookups down instead of filling memory. A user's state is committed
//!    only after the sink acknowledged the write that carried it.
//! 4. [`finish`]: the run's figures, status and history are stored.

mod cached;
mod finish;
mod lookup;
mod read;
mod record;
mod resume;
mod spill;
mod write;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::events::{InternalEvent, RunStarted};
use crate::{
    ConnectionState, ConnectionStatus, LookupKey, RunKind, RunRecord, RunSummary, Sink, Source, StateError,
    StateStore, UserDirectory, ValueRules,
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
    /// What the sink takes of values, from its config ([`crate::SinkSettings::value_rules`], the one
    /// definition): every check is fitted to them before it is hashed or written.
    pub rules: ValueRules,
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

/// How long lookups in flight may finish once a run is asked to stop.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Why a run, or a plan, cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The connection cannot run (an unreadable roster, a refused key): a run stops, and its report
    /// and the stored status say why.
    #[error("{0}")]
    Connection(String),
    /// The state store failed: nothing more can be recorded.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Runs one sync of `connection`. Errors of the connection (bad key, unreadable roster) end up in
/// the report and the stored status; only a failing state store is an `Err`, since then nothing can
/// be recorded.
pub async fn sync(
    connection: &Connection,
    store: Arc<dyn StateStore>,
    request: SyncRequest,
) -> Result<SyncReport, StateError> {
    // The run is a task of the runtime, not the caller's future: polled by `block_on`'s thread, each
    // request it made and each answer it got crossed threads, a futex wake-up every time.
    let connection = connection.clone();
    let run = tokio::spawn(async move { run(&connection, store, request).await });
    match tokio_util::task::AbortOnDropHandle::new(run).await {
        Ok(report) => report,
        // A bug, not the state's fault: it stops the process as it would have without the task.
        Err(failed) if failed.is_panic() => std::panic::resume_unwind(failed.into_panic()),
        Err(cancelled) => Err(StateError(format!("the run was cancelled: {cancelled}"))),
    }
}

async fn run(
    connection: &Connection,
    store: Arc<dyn StateStore>,
    request: SyncRequest,
) -> Result<SyncReport, StateError> {
    let started_at = Utc::now();
    RunStarted {
        connection: &connection.name,
        seen_since: request.seen_since,
        users: &connection.users.describe(),
    }
    .emit();

    // Stopped by the caller, or by the run itself on a fatal error.
    let stop = request.stop.child_token();
    let mut summary = RunSummary::default();
    let (sender, writer) = write::start(connection, &store, stop.clone(), &request.progress);

    let resumed = resume::resume(store.as_ref(), connection.rules, &sender).await?;
    summary.resumed = resumed.len() as u64;
    let ConnectionState { suppressed, property_names, .. } = store.connection()?;
    let _lent = cached::Lent::to(&connection.source, &store, connection.schedule.refresh);
    let mut fatal = None;
    let plan = if stop.is_cancelled() {
        read::Plan::empty()
    } else {
        let skip = read::Skip { resumed: &resumed, suppressed: &suppressed };
        match read::read_due_users(connection, store.as_ref(), &request, &skip, started_at, &mut summary)
            .await
        {
            Ok(plan) => plan,
            Err(EngineError::Connection(error)) => {
                fatal = Some(error);
                read::Plan::empty()
            }
            Err(EngineError::State(error)) => return Err(error),
        }
    };

    let mut recorder = record::Recorder {
        connection: &connection.name,
        store: store.as_ref(),
        source: connection.source.as_ref(),
        rules: connection.rules,
        segments: connection.source.segments(),
        sender: &sender,
        derived: Default::default(),
        names: record::NameTable::new(property_names),
    };
    let progress = request.progress.as_ref();
    let lookup_fatal =
        lookup::look_up(plan, &mut recorder, &suppressed, &stop, progress, &mut summary).await?;
    let derived = recorder.derived;
    drop(sender);
    let written = writer.await.map_err(|panic| StateError(format!("the writer task failed: {panic}")))??;

    let fatal = fatal.or(lookup_fatal);
    let finished = finish::Finished { started_at, summary, fatal, derived, written };
    finish::finish(connection, store.as_ref(), request, finished)
}

/// What a run would do now, worked out by the run's own reading phase: no lookup, no write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPlan {
    /// The reading phase's figures (read, outside the window, due, deferred, …); `resumed` counts
    /// the checks an interrupted run fetched, and `lookups_saved` the users of keys with a kept result,
    /// both written without a lookup.
    pub summary: RunSummary,
}

/// Plans a run of `connection` as [`sync`] would (same due rules, grouping, order and cap), for a
/// dry run or a cost preview. Each lookup the run would make is handed to `each_lookup` in its order,
/// with how many users it serves, as the plan is read from disk: a plan keeps none of them, however
/// many users are due.
pub async fn plan(
    connection: &Connection,
    store: &dyn StateStore,
    request: &SyncRequest,
    mut each_lookup: impl FnMut(&LookupKey, u64),
) -> Result<RunPlan, EngineError> {
    let resumed = resume::resumed_identities(store)?;
    let suppressed = store.connection()?.suppressed;
    let mut summary = RunSummary { resumed: resumed.len() as u64, ..RunSummary::default() };
    let skip = read::Skip { resumed: &resumed, suppressed: &suppressed };
    let plan = read::read_due_users(connection, store, request, &skip, Utc::now(), &mut summary).await?;
    summary.lookups_saved = plan.served.iter().map(|(_, users, ..)| users.len() as u64).sum();
    for lookup in plan.order {
        let (key, users) = lookup?;
        each_lookup(&key, users.len() as u64);
    }
    Ok(RunPlan { summary })
}

#[cfg(test)]
mod tests;
