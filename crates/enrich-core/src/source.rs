//! Sources: services that turn a lookup key into properties (Clearbit Enrichment and Reveal).

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::{
    ConnectorError, KeyKind, LookupHints, LookupKey, PropertyInfo, Record, ResultCache, Segment, UserRecord,
};

/// What a source answered for one key.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// A record was found; these are the properties it maps to.
    Found(Record),
    /// The source has no record for this key: a completed check, which may still write properties
    /// saying so (`Clearbit: Match` = `not found`).
    NotFound(Record),
    /// The source is still fetching the record (Clearbit's 202); ask again at the next run.
    Pending,
    /// The key cannot be looked up (Clearbit's 422): not asked again for
    /// [`Source::invalid_retry_after`].
    Invalid(String),
}

/// A source of properties, built from a validated config by its connector crate.
#[async_trait]
pub trait Source: Send + Sync + Debug {
    /// The config `type:` it was built from, such as `clearbit`.
    fn kind(&self) -> &'static str;
    /// The service's name as people know it (`Clearbit`, `People Data Labs`), for messages and listings.
    fn name(&self) -> &'static str {
        self.kind()
    }
    /// What users are looked up by.
    fn key_kind(&self) -> KeyKind;
    /// The property written with the time of every completed check, e.g. `Clearbit: Date Last Checked`.
    fn checked_property(&self) -> &str;
    /// Every property this source, as configured, can write: its catalogue.
    fn properties(&self) -> Vec<PropertyInfo>;
    /// The properties reports break users down by; the state keeps their values for each user.
    fn segments(&self) -> Vec<Segment> {
        Vec::new()
    }
    /// How many lookups (batches, for a batch source) the engine may have in flight at once; the source
    /// enforces its own request concurrency and rate limits underneath.
    fn max_in_flight(&self) -> usize;
    /// The credits the account has left, as the service last said (People Data Labs'
    /// `x-totallimit-remaining`); `None` when it does not say.
    fn credits_left(&self) -> Option<u64> {
        None
    }
    /// How many keys one [`Source::lookup_batch`] takes: more than 1 for a service with a bulk endpoint.
    fn max_keys_per_request(&self) -> usize {
        1
    }
    /// Why this source declines to look a key up even though it is well formed (a free email domain
    /// when the connection skips those), or `None` to look it up. Declined users are counted, not
    /// recorded, so a changed setting takes effect at the next run.
    fn declines(&self, _key: &LookupKey) -> Option<&'static str> {
        None
    }
    /// The key a user without a usable key of [`Source::key_kind`] is looked up by instead (Clearbit
    /// with Reveal: the IP address of a user without an email), or `None` to skip the user.
    fn fallback_key(&self, _user: &UserRecord) -> Option<LookupKey> {
        None
    }
    /// Whether the answer for this key is kept in the state for `refresh` and given to users who come
    /// with the same key later, without a lookup: for keys that name something many users share (a
    /// company's domain, an office's address), not a person. By default nothing is kept.
    fn caches(&self, _key: &LookupKey) -> bool {
        false
    }
    /// Hands the source the run's [`ResultCache`] (and `None` at the end of the run), for lookups it
    /// makes of its own accord beyond the engine's keys, such as Clearbit's Reveal fallback.
    fn use_cache(&self, _cache: Option<ResultCache>) {}
    /// How long an invalid key stays invalid before it is asked again (`None`: while it stays the same).
    fn invalid_retry_after(&self) -> Option<Duration> {
        None
    }
    /// Looks one key up, already retried as the service's rules say; `hints` may raise the match rate.
    /// Once `stop` is cancelled no new request starts, whatever the lookup waits for (a concurrency
    /// slot, the rate limit, a retry): a lookup stopped before it sent anything returns `None` and its
    /// users stay due; one that reached the service returns what it got.
    async fn lookup(
        &self,
        key: &LookupKey,
        hints: &LookupHints,
        stop: &CancellationToken,
    ) -> Option<Result<Lookup, ConnectorError>>;
    /// Looks up to [`Source::max_keys_per_request`] keys up at once, answering for each key in order
    /// (an answer missing at the end counts as `None`). `stop` is honoured as by [`Source::lookup`]; the
    /// default looks the keys up one after the other.
    async fn lookup_batch(
        &self,
        keys: &[(LookupKey, LookupHints)],
        stop: &CancellationToken,
    ) -> Vec<Option<Result<Lookup, ConnectorError>>> {
        let mut answers = Vec::with_capacity(keys.len());
        for (key, hints) in keys {
            answers.push(self.lookup(key, hints, stop).await);
        }
        answers
    }
    /// One cheap live call proving the credentials work; describes what it did.
    async fn check(&self) -> Result<String, ConnectorError>;
}
