//! Results kept per lookup key across runs, for keys that name something many users share (a company's
//! domain, an office's IP address): a user who comes later with the same key is written from the kept
//! result, without a lookup, until it is older than `refresh`. Kept by the key's digest, never the key.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Lookup, LookupKey, Outcome, Properties, Record, StateError, StateStore};

/// A found or not-found answer for one key, as the state keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedResult {
    /// [`Outcome::Found`] or [`Outcome::NotFound`].
    pub outcome: Outcome,
    /// When the source answered: the check date of every user written from it.
    pub checked_at: DateTime<Utc>,
    pub properties: Properties,
}

impl CachedResult {
    /// A completed answer, to keep; `None` for one that settles nothing for long (pending, invalid).
    pub fn of(lookup: &Lookup, checked_at: DateTime<Utc>) -> Option<Self> {
        let (outcome, record) = match lookup {
            Lookup::Found(record) => (Outcome::Found, record),
            Lookup::NotFound(record) => (Outcome::NotFound, record),
            Lookup::Pending | Lookup::Invalid(_) => return None,
        };
        Some(Self { outcome, checked_at, properties: record.properties.clone() })
    }

    /// Whether it still stands at `now`: answered less than `refresh` ago (and not in the future).
    pub fn is_fresh(&self, refresh: Duration, now: DateTime<Utc>) -> bool {
        let age = now.signed_duration_since(self.checked_at);
        // A refresh beyond chrono's range never runs out.
        age >= chrono::TimeDelta::zero()
            && chrono::Duration::from_std(refresh).ok().is_none_or(|refresh| age < refresh)
    }

    /// The answer as the source gave it.
    pub fn into_lookup(self) -> Lookup {
        let record = Record { properties: self.properties, ..Record::default() };
        match self.outcome {
            Outcome::Found => Lookup::Found(record),
            _ => Lookup::NotFound(record),
        }
    }
}

/// The result for `key` kept in `store`, if it is still fresh.
pub fn fresh_result(
    store: &dyn StateStore,
    key: &LookupKey,
    refresh: Duration,
    now: DateTime<Utc>,
) -> Result<Option<CachedResult>, StateError> {
    Ok(store.cached(key.digest())?.filter(|result| result.is_fresh(refresh, now)))
}

/// A run's cache, handed to a source (see [`crate::Source::use_cache`]) for the lookups it makes of
/// its own accord, such as Clearbit's Reveal fallback of an email that found no company.
#[derive(Debug, Clone)]
pub struct ResultCache {
    store: Arc<dyn StateStore>,
    refresh: Duration,
}

impl ResultCache {
    pub fn new(store: Arc<dyn StateStore>, refresh: Duration) -> Self {
        Self { store, refresh }
    }

    /// The fresh answer kept for `key`, if any.
    pub fn get(&self, key: &LookupKey) -> Result<Option<Lookup>, StateError> {
        Ok(fresh_result(self.store.as_ref(), key, self.refresh, Utc::now())?.map(CachedResult::into_lookup))
    }

    /// Keeps a completed answer for `key` (pending and invalid ones are not kept).
    pub fn put(&self, key: &LookupKey, lookup: &Lookup) -> Result<(), StateError> {
        match CachedResult::of(lookup, Utc::now()) {
            Some(result) => self.store.put_cached(&[(key.digest(), result)]),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_is_fresh_for_refresh_and_never_from_the_future() {
        let now = Utc::now();
        let hour = Duration::from_secs(3600);
        let result = |hours_ago: i64| CachedResult {
            outcome: Outcome::Found,
            checked_at: now - chrono::Duration::hours(hours_ago),
            properties: Properties::new(),
        };
        assert!(result(0).is_fresh(hour * 24, now));
        assert!(result(23).is_fresh(hour * 24, now));
        assert!(!result(24).is_fresh(hour * 24, now));
        assert!(!result(-1).is_fresh(hour * 24, now), "a clock set forward, then fixed");
        assert!(result(1).is_fresh(Duration::MAX, now), "no overflow");
    }

    #[test]
    fn only_completed_answers_are_kept() {
        let now = Utc::now();
        assert!(CachedResult::of(&Lookup::Pending, now).is_none());
        assert!(CachedResult::of(&Lookup::Invalid("bad".into()), now).is_none());
        let found = CachedResult::of(&Lookup::Found(Record::default()), now).unwrap();
        assert_eq!(found.outcome, Outcome::Found);
        assert_eq!(found.into_lookup(), Lookup::Found(Record::default()));
        let missing = CachedResult::of(&Lookup::NotFound(Record::default()), now).unwrap();
        assert_eq!(missing.into_lookup(), Lookup::NotFound(Record::default()));
    }
}
