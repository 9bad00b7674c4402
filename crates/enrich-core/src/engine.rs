//! The sync engine: one run of one connection.
//!
//! Users stream in from the directory; those in the window whose last check is older than the
//! refresh interval are due. Users sharing a key share one lookup. Found and not-found results
//! travel through a bounded channel to a writer that batches them for the sink, so a slow sink
//! slows lookups down instead of filling memory. A user's state is committed only after the sink
//! acknowledged the write that carried it.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::digest::stable_hash;
use crate::events::{
    BatchFailed, BatchWritten, InternalEvent, LookupFailed, RowSkipped, RunFinished, RunStarted, RunStopped,
};
use crate::{
    ConnectionStatus, ConnectorError, DirectoryError, Lookup, LookupKey, Outcome, Properties, PropertyValue,
    RunKind, RunRecord, RunSummary, Sink, SkipReason, Source, StateError, StateStore, UserDirectory,
    UserRecord, UserState, UserUpdate,
};

/// When a connection runs and which users it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// How often `enrich run` syncs the connection.
    pub every: Duration,
    /// Only users seen within this window are enriched.
    pub backfill: Duration,
    /// A user checked more recently than this is not due.
    pub refresh: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        const DAY: Duration = Duration::from_secs(24 * 60 * 60);
        Self { every: DAY, backfill: DAY * 7, refresh: DAY }
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

/// What one run covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub kind: RunKind,
    pub seen_since: DateTime<Utc>,
}

impl SyncRequest {
    /// A regular run over the connection's backfill window.
    pub fn scheduled(schedule: &Schedule, now: DateTime<Utc>) -> Self {
        let window = chrono::Duration::from_std(schedule.backfill).unwrap_or(chrono::Duration::MAX);
        let seen_since = now.checked_sub_signed(window).unwrap_or(DateTime::<Utc>::MIN_UTC);
        Self { kind: RunKind::Sync, seen_since }
    }

    /// A one-off run over users seen since the given time.
    pub fn backfill(since: DateTime<Utc>) -> Self {
        Self { kind: RunKind::Backfill { since }, seen_since: since }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub run: RunRecord,
    pub status: ConnectionStatus,
}

/// How long the writer waits for a batch to fill before sending what it has, so results do not
/// sit unwritten while slow lookups trickle in.
const WRITE_LINGER: Duration = Duration::from_secs(2);

/// Runs one sync of `connection`. Errors of the connection (bad key, unreadable roster) end up in
/// the report and the stored status; only a failing state store is an `Err`, since then nothing
/// can be recorded.
pub async fn sync(
    connection: &Connection,
    store: Arc<dyn StateStore>,
    request: SyncRequest,
) -> Result<SyncReport, StateError> {
    let started_at = Utc::now();
    let name = connection.name.as_str();
    RunStarted { connection: name, seen_since: request.seen_since, users: &connection.users.describe() }
        .emit();

    let mut summary = RunSummary::default();
    let mut fatal: Option<String> = None;
    let due = match read_due_users(connection, store.as_ref(), &request, started_at, &mut summary).await? {
        Ok(due) => due,
        Err(error) => {
            fatal = Some(error);
            BTreeMap::new()
        }
    };

    let stop = Arc::new(AtomicBool::new(fatal.is_some()));
    let (sender, receiver) = mpsc::channel(connection.sink.max_batch().max(1) * 2);
    let writer = tokio::spawn(write_loop(WriteContext {
        connection: name.to_owned(),
        sink: Arc::clone(&connection.sink),
        store: Arc::clone(&store),
        stop: Arc::clone(&stop),
        receiver,
    }));

    let source = connection.source.as_ref();
    let mut lookups = futures::stream::iter(due)
        .map(|(key, users)| {
            let stop = Arc::clone(&stop);
            async move {
                if stop.load(Ordering::SeqCst) {
                    return (key, users, None);
                }
                let result = source.lookup(&key).await;
                (key, users, Some(result))
            }
        })
        .buffer_unordered(source.max_in_flight().max(1));

    let mut lookup_error = None::<String>;
    while let Some((key, users, result)) = lookups.next().await {
        let Some(result) = result else {
            summary.aborted += users.len() as u64;
            continue;
        };
        summary.lookups += 1;
        let now = Utc::now();
        let key_hash = key_hash(&key);
        match result {
            Ok(lookup @ (Lookup::Found(_) | Lookup::NotFound)) => {
                let (outcome, properties) = match lookup {
                    Lookup::Found(properties) => (Outcome::Found, properties),
                    _ => (Outcome::NotFound, Properties::new()),
                };
                let count =
                    if outcome == Outcome::Found { &mut summary.found } else { &mut summary.not_found };
                *count += users.len() as u64;
                let properties_hash = properties_hash(&properties);
                for user in users {
                    let pending = PendingWrite::completed(
                        user,
                        outcome,
                        key_hash,
                        &properties,
                        properties_hash,
                        source.checked_property(),
                        now,
                    );
                    if sender.send(pending).await.is_err() {
                        break;
                    }
                }
            }
            Ok(Lookup::Pending) => {
                summary.pending += users.len() as u64;
                record(store.as_ref(), name, &users, key_hash, |previous| UserState {
                    outcome: Outcome::Pending,
                    detail: None,
                    attempted_at: now,
                    ..previous
                })?;
            }
            Ok(Lookup::Invalid(reason)) => {
                summary.invalid += users.len() as u64;
                record(store.as_ref(), name, &users, key_hash, |previous| UserState {
                    outcome: Outcome::Invalid,
                    checked_at: Some(now),
                    detail: Some(reason.clone()),
                    attempted_at: now,
                    ..previous
                })?;
            }
            Err(ConnectorError::Fatal(message)) => {
                stop.store(true, Ordering::SeqCst);
                summary.lookups -= 1;
                summary.aborted += users.len() as u64;
                lookup_error.get_or_insert(message);
            }
            Err(error @ (ConnectorError::Transient(_) | ConnectorError::Rejected(_))) => {
                let message = error.to_string();
                LookupFailed { connection: name, users: users.len(), error: &message }.emit();
                summary.failed += users.len() as u64;
                record(store.as_ref(), name, &users, key_hash, |previous| UserState {
                    outcome: Outcome::Failed,
                    detail: Some(message.clone()),
                    attempted_at: now,
                    ..previous
                })?;
            }
        }
    }
    drop(lookups);
    drop(sender);
    let written = writer.await.map_err(|panic| StateError(format!("the writer task failed: {panic}")))??;

    summary.written = written.written;
    summary.batches = written.batches;
    summary.failed += written.failed;
    summary.aborted += written.aborted;
    fatal = fatal.or(lookup_error).or(written.fatal);

    let mut state = store.connection(name)?.unwrap_or_default();
    if written.data_reached && state.first_data_at.is_none() {
        state.first_data_at = Some(Utc::now());
    }
    state.users_enriched += written.newly_enriched;
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
    };
    RunFinished { connection: name, summary: &run.summary }.emit();
    state.push_run(run.clone());
    store.put_connection(name, &state)?;
    store.flush()?;
    Ok(SyncReport { run, status: state.status })
}

/// A due user with what is remembered of it.
#[derive(Debug)]
struct DueUser {
    record: UserRecord,
    previous: Option<UserState>,
}

/// Reads the roster and groups the due users by lookup key. The inner `Err` is a fatal roster error.
async fn read_due_users(
    connection: &Connection,
    store: &dyn StateStore,
    request: &SyncRequest,
    now: DateTime<Utc>,
    summary: &mut RunSummary,
) -> Result<Result<BTreeMap<LookupKey, Vec<DueUser>>, String>, StateError> {
    let name = connection.name.as_str();
    let mut users = match connection.users.users(request.seen_since).await {
        Ok(users) => users,
        Err(error) => return Ok(Err(format!("{}: {error}", connection.users.describe()))),
    };
    let key_kind = connection.source.key_kind();
    let mut due: BTreeMap<LookupKey, Vec<DueUser>> = BTreeMap::new();
    let mut due_identities = HashSet::new();
    while let Some(item) = users.next().await {
        let user = match item {
            Ok(user) => user,
            Err(DirectoryError::BadRow { location, message }) => {
                summary.bad_rows += 1;
                RowSkipped { connection: name, reason: &format!("{location}: {message}") }.emit();
                continue;
            }
            Err(DirectoryError::Fatal(message)) => {
                return Ok(Err(format!("{}: {message}", connection.users.describe())));
            }
        };
        summary.read += 1;
        if user.last_seen < request.seen_since {
            summary.outside_window += 1;
            continue;
        }
        let key = match user.lookup_key(key_kind) {
            Ok(key) => key,
            Err(SkipReason::NoEmail | SkipReason::NoIp) => {
                summary.no_email += 1;
                continue;
            }
            Err(SkipReason::MalformedEmail) => {
                summary.malformed_email += 1;
                continue;
            }
        };
        if due_identities.contains(&user.identity) {
            summary.duplicate_identities += 1;
            continue;
        }
        let previous = store.user(name, &user.identity)?;
        let is_due = previous
            .as_ref()
            .is_none_or(|state| state.is_due(key_hash(&key), now, connection.schedule.refresh));
        if is_due {
            summary.due += 1;
            due_identities.insert(user.identity.clone());
            due.entry(key).or_default().push(DueUser { record: user, previous });
        } else {
            summary.up_to_date += 1;
        }
    }
    Ok(Ok(due))
}

fn key_hash(key: &LookupKey) -> u64 {
    let text = key.to_string();
    stable_hash([text.as_bytes()])
}

fn properties_hash(properties: &Properties) -> u64 {
    let encoded = serde_json::to_vec(properties).unwrap_or_default();
    stable_hash([encoded.as_slice()])
}

/// A blank state to build on for a user never seen before.
fn fresh_state(key_hash: u64, now: DateTime<Utc>) -> UserState {
    UserState {
        key_hash,
        outcome: Outcome::Pending,
        checked_at: None,
        attempted_at: now,
        detail: None,
        written_at: None,
        properties_hash: None,
        properties_written: 0,
    }
}

/// Records an outcome that needs no write, building each user's new state from its previous one
/// (with the current key).
fn record(
    store: &dyn StateStore,
    connection: &str,
    users: &[DueUser],
    key_hash: u64,
    update: impl Fn(UserState) -> UserState,
) -> Result<(), StateError> {
    let now = Utc::now();
    let states: Vec<(String, UserState)> = users
        .iter()
        .map(|user| {
            let previous = user.previous.clone().unwrap_or_else(|| fresh_state(key_hash, now));
            (user.record.identity.clone(), update(UserState { key_hash, ..previous }))
        })
        .collect();
    store.put_users(connection, &states)
}

/// A completed check on its way to the sink, with the state to commit once it is acknowledged.
#[derive(Debug)]
struct PendingWrite {
    update: UserUpdate,
    /// The state to commit once the sink acknowledged the write.
    acknowledged: UserState,
    /// The state before this run, kept if the write fails.
    previous: UserState,
    /// The first acknowledged write of found properties for this user.
    first_enrichment: bool,
}

impl PendingWrite {
    fn completed(
        user: DueUser,
        outcome: Outcome,
        key_hash: u64,
        properties: &Properties,
        properties_hash: u64,
        checked_property: &str,
        now: DateTime<Utc>,
    ) -> Self {
        let mut properties = properties.clone();
        properties.insert(
            checked_property.to_owned(),
            PropertyValue::Text(now.to_rfc3339_opts(SecondsFormat::Secs, true)),
        );
        let previous = user.previous.unwrap_or_else(|| fresh_state(key_hash, now));
        let first_enrichment = outcome == Outcome::Found
            && !(previous.outcome == Outcome::Found && previous.written_at.is_some());
        let acknowledged = UserState {
            key_hash,
            outcome,
            checked_at: Some(now),
            attempted_at: now,
            detail: None,
            written_at: Some(now),
            properties_hash: Some(properties_hash),
            properties_written: properties.len(),
        };
        Self {
            update: UserUpdate { identity: user.record.identity, user_id: user.record.user_id, properties },
            acknowledged,
            previous: UserState { key_hash, ..previous },
            first_enrichment,
        }
    }
}

struct WriteContext {
    connection: String,
    sink: Arc<dyn Sink>,
    store: Arc<dyn StateStore>,
    stop: Arc<AtomicBool>,
    receiver: mpsc::Receiver<PendingWrite>,
}

#[derive(Debug, Default)]
struct WriteReport {
    written: u64,
    batches: u64,
    failed: u64,
    aborted: u64,
    newly_enriched: u64,
    /// Found properties were acknowledged by the sink in this run.
    data_reached: bool,
    fatal: Option<String>,
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
        // The sink refused the connection: these users stay due for the next run.
        report.aborted += batch.len() as u64;
        return Ok(());
    }
    let updates: Vec<UserUpdate> = batch.iter().map(|pending| pending.update.clone()).collect();
    let name = context.connection.as_str();
    match context.sink.write(&updates).await {
        Ok(()) => {
            let states: Vec<(String, UserState)> = batch
                .into_iter()
                .map(|pending| {
                    if pending.first_enrichment {
                        report.newly_enriched += 1;
                    }
                    report.data_reached |= pending.acknowledged.outcome == Outcome::Found;
                    (pending.update.identity, pending.acknowledged)
                })
                .collect();
            context.store.put_users(name, &states)?;
            report.written += states.len() as u64;
            report.batches += 1;
            BatchWritten { connection: name, users: states.len() }.emit();
        }
        Err(ConnectorError::Fatal(message)) => {
            context.stop.store(true, Ordering::SeqCst);
            report.aborted += batch.len() as u64;
            report.fatal = Some(message);
        }
        Err(error) => {
            let message = error.to_string();
            BatchFailed { connection: name, users: batch.len(), error: &message }.emit();
            let now = Utc::now();
            let states: Vec<(String, UserState)> = batch
                .into_iter()
                .map(|pending| {
                    let state = UserState {
                        outcome: Outcome::Failed,
                        detail: Some(message.clone()),
                        attempted_at: now,
                        ..pending.previous
                    };
                    (pending.update.identity, state)
                })
                .collect();
            report.failed += states.len() as u64;
            context.store.put_users(name, &states)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
