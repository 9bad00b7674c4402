//! The lookup phase: the plan cut into requests of `source.max_keys_per_request()` keys, asked with
//! bounded concurrency, each completed lookup recorded as it arrives. Once the run is stopped no
//! request starts, and lookups still in flight after [`STOP_GRACE`] are abandoned unrecorded.

use std::collections::BTreeSet;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::cached::{self, Answered, Origin};
use super::read::{DueUser, Plan, PlannedLookup};
use super::record::Recorder;
use super::{EngineError, Progress, STOP_GRACE};
use crate::{ConnectorError, LookupHints, LookupKey, RunSummary, Source, StateError};

/// Looks the plan up and records each answer; returns the fatal error that stopped the lookups, if
/// one did. Users of lookups never started or abandoned are counted as aborted: still due.
pub(super) async fn look_up(
    plan: Plan,
    recorder: &mut Recorder<'_>,
    suppressed: &BTreeSet<u64>,
    stop: &CancellationToken,
    progress: &dyn Progress,
    summary: &mut RunSummary,
) -> Result<Option<String>, StateError> {
    progress.planned(plan.lookups, plan.users);
    let source = recorder.source;
    let served = futures::stream::iter(plan.served.into_iter().map(Ok));
    let looked_up = futures::stream::iter(in_requests(plan.order, source.max_keys_per_request()))
        .map(|batch| async {
            match batch {
                Ok(batch) => look_up_batch(source, batch, suppressed, stop.clone()).await,
                Err(error) => vec![Err(error)],
            }
        })
        .buffer_unordered(source.max_in_flight().max(1))
        .flat_map(futures::stream::iter);
    let mut lookups = served.chain(looked_up);
    let abandon = async {
        stop.cancelled().await;
        tokio::time::sleep(STOP_GRACE).await;
    };
    tokio::pin!(abandon);

    let mut fatal = None;
    let mut processed_users = 0;
    loop {
        let next = tokio::select! {
            next = lookups.next() => next,
            () = &mut abandon => break,
        };
        let (key, users, result, origin) = match next {
            None => break,
            Some(Ok(answered)) => answered,
            Some(Err(EngineError::State(error))) => return Err(error),
            Some(Err(EngineError::Connection(message))) => {
                stop.cancel();
                fatal.get_or_insert(message);
                continue;
            }
        };
        let Some(result) = result else { continue };
        if let Err(ConnectorError::Fatal(message)) = result {
            // Not a completed lookup: its users stay due, counted as aborted below.
            stop.cancel();
            fatal.get_or_insert(message);
            continue;
        }
        processed_users += users.len() as u64;
        progress.looked_up(users.len() as u64);
        cached::count(summary, origin, users.len());
        let fallback_hash = sent_address_hash(&key, &users, suppressed);
        recorder.record(&key, users, (result, origin), fallback_hash, summary).await?;
    }
    summary.aborted += plan.users - processed_users;
    Ok(fatal)
}

/// The plan cut into the batches of one request each, in order, read as requests start.
fn in_requests(
    mut order: impl Iterator<Item = Result<PlannedLookup, EngineError>>,
    keys_per_request: usize,
) -> impl Iterator<Item = Result<Vec<PlannedLookup>, EngineError>> {
    std::iter::from_fn(move || {
        let batch: Result<Vec<PlannedLookup>, EngineError> =
            order.by_ref().take(keys_per_request.max(1)).collect();
        match batch {
            Ok(batch) if batch.is_empty() => None,
            batch => Some(batch),
        }
    })
}

/// Looks one batch up: each key with its users and its answer.
async fn look_up_batch(
    source: &dyn Source,
    batch: Vec<PlannedLookup>,
    suppressed: &BTreeSet<u64>,
    stop: CancellationToken,
) -> Vec<Result<Answered, EngineError>> {
    let mut answers = Vec::new();
    if !stop.is_cancelled() {
        let keys: Vec<(LookupKey, LookupHints)> =
            batch.iter().map(|(key, users)| (key.clone(), hints_of(users, suppressed))).collect();
        answers = source.lookup_batch(&keys, &stop).await;
    }
    let mut answers = answers.into_iter();
    batch
        .into_iter()
        .map(|(key, users)| Ok((key, users, answers.next().flatten(), Origin::LookedUp)))
        .collect()
}

/// The hints sent with a key's lookup. A forgotten address is never sent, neither as a hint nor as a
/// source's fallback.
fn hints_of(users: &[DueUser], suppressed: &BTreeSet<u64>) -> LookupHints {
    let mut hints = LookupHints::of(users.iter().map(|user| &user.record));
    hints.ip = hints.ip.filter(|ip| !suppressed.contains(&LookupKey::Ip(*ip).digest()));
    hints
}

/// The digest of the address offered with an email's lookup (Clearbit's hint, Reveal's fallback), which
/// the users' states keep so that forgetting the address reaches them.
fn sent_address_hash(key: &LookupKey, users: &[DueUser], suppressed: &BTreeSet<u64>) -> Option<u64> {
    let LookupKey::Email(_) = key else { return None };
    // The address [`hints_of`] sends: the first user's that has one, unless it was forgotten.
    let ip = users.iter().find_map(|user| user.record.ip)?;
    Some(LookupKey::Ip(ip).digest()).filter(|digest| !suppressed.contains(digest))
}
