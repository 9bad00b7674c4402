//! The resume phase: checks an interrupted run fetched but never saw acknowledged are written first,
//! without a new lookup.

use std::collections::HashSet;

use tokio::sync::mpsc;

use super::write::Writes;
use crate::{StateError, StateStore, ValueRules};

/// How many pending writes go to the writer in one message.
const CHUNK: usize = 1000;

/// Hands every pending write to the writer, fitted to the sink's `rules` (they may have been stored for
/// another sink of the connection); returns their users' state keys, which the reading phase passes over.
pub(super) async fn resume(
    store: &dyn StateStore,
    rules: ValueRules,
    writer: &mpsc::Sender<Writes>,
) -> Result<HashSet<String>, StateError> {
    let mut pending = store.pending()?;
    for write in &mut pending {
        rules.fit(&mut write.update.properties);
    }
    let identities = pending.iter().map(|write| write.update.state_key().into_owned()).collect();
    let mut pending = pending.into_iter().peekable();
    while pending.peek().is_some() {
        if writer.send(pending.by_ref().take(CHUNK).collect()).await.is_err() {
            break;
        }
    }
    Ok(identities)
}

/// The identities a run would resume, for a plan that writes nothing.
pub(super) fn resumed_identities(store: &dyn StateStore) -> Result<HashSet<String>, StateError> {
    Ok(store.pending()?.iter().map(|write| write.update.state_key().into_owned()).collect())
}
