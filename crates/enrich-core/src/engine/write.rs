//! The writer task: batches pending writes for the sink and commits each user's state once the sink
//! acknowledged the batch that carried it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Connection, Progress};
use crate::events::{BatchFailed, BatchWritten, InternalEvent, UsersRefused};
use crate::{ConnectorError, Outcome, PendingWrite, Sink, StateError, StateStore, UserState, UserUpdate};

/// How long the writer waits for a batch to fill before sending what it has, so results do not sit
/// unwritten while slow lookups trickle in.
const WRITE_LINGER: Duration = Duration::from_secs(2);

/// What a pending write commits, once its update has gone to the sink.
struct StatesOfWrite {
    acknowledged: UserState,
    previous: UserState,
}

/// What travels to the writer: the pending writes of one key's users (or a chunk of resumed ones),
/// one message for all of them, since each message may wake the writer's thread.
pub(super) type Writes = Vec<PendingWrite>;

struct WriteContext {
    connection: String,
    sink: Arc<dyn Sink>,
    store: Arc<dyn StateStore>,
    stop: CancellationToken,
    progress: Arc<dyn Progress>,
    receiver: mpsc::Receiver<Writes>,
}

#[derive(Debug, Default)]
pub(super) struct WriteReport {
    pub(super) written: u64,
    pub(super) batches: u64,
    pub(super) failed: u64,
    pub(super) aborted: u64,
    /// Found properties were acknowledged by the sink in this run.
    pub(super) data_reached: bool,
    pub(super) fatal: Option<String>,
    /// Why writes failed, with how many users each time.
    pub(super) reasons: Vec<(String, u64)>,
}

/// Starts the writer task: what is sent on the returned channel is written, and the task reports once
/// the channel is closed. The channel is bounded, so a slow sink slows the lookups down.
pub(super) fn start(
    connection: &Connection,
    store: &Arc<dyn StateStore>,
    stop: CancellationToken,
    progress: &Arc<dyn Progress>,
) -> (mpsc::Sender<Writes>, JoinHandle<Result<WriteReport, StateError>>) {
    // One batch of single-user keys waits while another is written: enough to keep the sink busy, and
    // each write holds a user's full properties.
    let (sender, receiver) = mpsc::channel(connection.sink.max_batch().max(1));
    let writer = tokio::spawn(write_loop(WriteContext {
        connection: connection.name.clone(),
        sink: Arc::clone(&connection.sink),
        store: Arc::clone(store),
        stop,
        progress: Arc::clone(progress),
        receiver,
    }));
    (sender, writer)
}

/// How many messages the writer takes at once when several wait.
const RECEIVE_AT_ONCE: usize = 64;

/// Batches pending writes for the sink and commits each user's state once its batch is acknowledged.
async fn write_loop(mut context: WriteContext) -> Result<WriteReport, StateError> {
    let max_batch = context.sink.max_batch().max(1);
    let mut report = WriteReport::default();
    let mut batch: Vec<PendingWrite> = Vec::with_capacity(max_batch);
    let mut received: Vec<Writes> = Vec::with_capacity(RECEIVE_AT_ONCE);
    let mut deadline = tokio::time::Instant::now();
    loop {
        let receive = context.receiver.recv_many(&mut received, RECEIVE_AT_ONCE);
        let count = if batch.is_empty() {
            receive.await
        } else {
            match tokio::time::timeout_at(deadline, receive).await {
                Ok(count) => count,
                Err(_elapsed) => {
                    write_batch(&context, std::mem::take(&mut batch), &mut report).await?;
                    continue;
                }
            }
        };
        // Nothing received: the channel is closed and empty.
        if count == 0 {
            break;
        }
        for pending in received.drain(..).flatten() {
            if batch.is_empty() {
                deadline = tokio::time::Instant::now() + WRITE_LINGER;
            }
            batch.push(pending);
            if batch.len() >= max_batch {
                write_batch(&context, std::mem::take(&mut batch), &mut report).await?;
            }
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
