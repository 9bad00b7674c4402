//! The engine's side of the result cache ([`crate::cache`]): due users whose key has a fresh kept
//! result are written from it instead of being looked up, and the answers of keys the source caches
//! are kept for the users who come later.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::read::{DueUser, PlannedLookup};
use crate::cache::fresh_result;
use crate::{
    CachedResult, ConnectorError, Lookup, LookupKey, ResultCache, RunSummary, Source, StateError, StateStore,
};

/// Where an answer came from: a lookup now, or a result kept since the given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    LookedUp,
    Cached(DateTime<Utc>),
}

/// A key with its users, its answer (`None`: it was not asked) and where the answer came from.
pub(super) type Answered = (LookupKey, Vec<DueUser>, Option<Result<Lookup, ConnectorError>>, Origin);

/// The kept results a run's plan may serve users from.
pub(super) struct Kept<'a> {
    pub(super) store: &'a dyn StateStore,
    pub(super) source: &'a dyn Source,
    pub(super) refresh: Duration,
    pub(super) now: DateTime<Utc>,
}

impl Kept<'_> {
    /// The key's users served from its fresh kept result (they cost no lookup, nor a place under the
    /// cap), or the lookup back when the source keeps none for it or it expired.
    pub(super) fn serve(&self, lookup: PlannedLookup) -> Result<Result<Answered, PlannedLookup>, StateError> {
        let (key, users) = lookup;
        if !self.source.caches(&key) {
            return Ok(Err((key, users)));
        }
        Ok(match fresh_result(self.store, &key, self.refresh, self.now)? {
            Some(result) => {
                let origin = Origin::Cached(result.checked_at);
                Ok((key, users, Some(Ok(result.into_lookup())), origin))
            }
            None => Err((key, users)),
        })
    }
}

/// Counts an answer for `users` users: a lookup shared by all of them, or none at all.
pub(super) fn count(summary: &mut RunSummary, origin: Origin, users: usize) {
    match origin {
        Origin::LookedUp => {
            summary.lookups += 1;
            summary.lookups_saved += users.saturating_sub(1) as u64;
        }
        Origin::Cached(_) => summary.lookups_saved += users as u64,
    }
}

/// Keeps a looked-up answer for the users who come later with its key, if the source caches it.
pub(super) fn keep(
    store: &dyn StateStore,
    source: &dyn Source,
    key: &LookupKey,
    lookup: &Lookup,
    origin: Origin,
    now: DateTime<Utc>,
) -> Result<(), StateError> {
    // Asked first: most keys are emails, which no source keeps, and a found record is worth no copy.
    if origin != Origin::LookedUp || !source.caches(key) {
        return Ok(());
    }
    match CachedResult::of(lookup, now) {
        Some(result) => store.put_cached(&[(key.digest(), result)]),
        None => Ok(()),
    }
}

/// Hands the source the run's cache, and takes it back when dropped, so that the store (and its lock)
/// is not held past the run.
pub(super) struct Lent(Arc<dyn Source>);

impl Lent {
    pub(super) fn to(source: &Arc<dyn Source>, store: &Arc<dyn StateStore>, refresh: Duration) -> Self {
        source.use_cache(Some(ResultCache::new(Arc::clone(store), refresh)));
        Self(Arc::clone(source))
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        self.0.use_cache(None);
    }
}
