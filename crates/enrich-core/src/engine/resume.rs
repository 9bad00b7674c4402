//! The resume phase: checks an interrupted run fetched but never saw acknowledged are written first,
//! without a new lookup.

use std::collections::HashSet;

use tokio::sync::mpsc;

use crate::{PendingWrite, StateError, StateStore};

/// Hands every pending write to the writer; returns their users' state keys, which the reading phase passes
/// over.
pub(super) async fn resume(
    store: &dyn StateStore,
    writer: &mpsc::Sender<PendingWrite>,
) -> Result<HashSet<String>, StateError> {
    let pending = store.pending()?;
    let identities = pending.iter().map(|write| write.update.state_key().into_owned()).collect();
    for write in pending {
        if writer.send(write).await.is_err() {
            break;
        }
    }
    Ok(identities)
}

/// The identities a run would resume, for a plan that writes nothing.
pub(super) fn resumed_identities(store: &dyn StateStore) -> Result<HashSet<String>, StateError> {
    Ok(store.pending()?.iter().map(|write| write.update.state_key().into_owned()).collect())
}
