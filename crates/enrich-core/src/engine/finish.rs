//! The finish phase: the writer's figures join the run's, and the connection's status, counts and
//! history are stored.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::write::WriteReport;
use super::{Connection, SyncReport, SyncRequest};
use crate::events::{InternalEvent, RunFinished, RunStopped};
use crate::{ConnectionStatus, RunRecord, RunSummary, StateError, StateStore};

/// What the earlier phases of a run leave for its end.
pub(super) struct Finished {
    pub(super) started_at: DateTime<Utc>,
    pub(super) summary: RunSummary,
    /// The fatal error that stopped the reading or the lookups, if one did.
    pub(super) fatal: Option<String>,
    /// Names derived for attributes the source's catalogue does not know (property → attribute path).
    pub(super) derived: BTreeMap<String, String>,
    pub(super) written: WriteReport,
}

/// Records the run in the connection's state and reports how it ended.
pub(super) fn finish(
    connection: &Connection,
    store: &dyn StateStore,
    request: SyncRequest,
    finished: Finished,
) -> Result<SyncReport, StateError> {
    let Finished { started_at, mut summary, fatal, derived, written } = finished;
    let name = connection.name.as_str();
    summary.written = written.written;
    summary.batches = written.batches;
    summary.failed += written.failed;
    summary.aborted += written.aborted;
    for (reason, users) in &written.reasons {
        summary.note(reason, *users);
    }
    let fatal = fatal.or(written.fatal);
    summary.credits_left = connection.source.credits_left();

    let mut state = store.connection()?;
    if written.data_reached && state.first_data_at.is_none() {
        state.first_data_at = Some(Utc::now());
    }
    // Counted, not added up: it agrees with `enrich report` whatever later checks changed.
    state.users_enriched = crate::found_users(store)?;
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
