//! The record phase: what a completed lookup leaves for its users. Found and not-found checks become
//! pending writes, stored and then handed to the writer; pending, invalid and failed lookups are
//! committed at once, since nothing needs writing.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::mpsc;

use super::cached::{self, Origin};
use super::read::DueUser;
use super::write::Writes;
use crate::digest::stable_hash;
use crate::events::{InternalEvent, LookupFailed, ValuesCut};
use crate::{
    ConnectorError, KeyKind, Lookup, LookupKey, Outcome, PendingWrite, Properties, PropertySet,
    PropertyValue, Record, RunSummary, Segment, Source, StateError, StateStore, UserRecord, UserState,
    UserUpdate, ValueRules,
};

/// Records the lookups of one run as they complete.
pub(super) struct Recorder<'a> {
    pub(super) connection: &'a str,
    pub(super) store: &'a dyn StateStore,
    pub(super) source: &'a dyn Source,
    /// The sink's rules, which every check's values are fitted to before anything else.
    pub(super) rules: ValueRules,
    pub(super) segments: Vec<Segment>,
    pub(super) sender: &'a mpsc::Sender<Writes>,
    /// Names derived for attributes the source's catalogue does not know (property → attribute path).
    pub(super) derived: BTreeMap<String, String>,
    pub(super) names: NameTable,
}

/// The connection's property names, each at its position ([`crate::ConnectionState::property_names`]).
pub(super) struct NameTable {
    names: Vec<String>,
    positions: HashMap<String, usize>,
    /// Names were added since the table was last stored.
    grown: bool,
}

impl NameTable {
    pub(super) fn new(names: Vec<String>) -> Self {
        let positions = names.iter().enumerate().map(|(at, name)| (name.clone(), at)).collect();
        Self { names, positions, grown: false }
    }

    /// The set of these names, each added to the table if it is new.
    fn set_of<'n>(&mut self, names: impl Iterator<Item = &'n String>) -> PropertySet {
        let mut set = PropertySet::default();
        for name in names {
            let position = match self.positions.get(name) {
                Some(position) => *position,
                None => {
                    self.names.push(name.clone());
                    self.positions.insert(name.clone(), self.names.len() - 1);
                    self.grown = true;
                    self.names.len() - 1
                }
            };
            set.insert(position);
        }
        set
    }

    /// Stores the table if it grew: before any user state that refers to its new positions.
    fn store_if_grown(&mut self, store: &dyn StateStore) -> Result<(), StateError> {
        if self.grown {
            let mut state = store.connection()?;
            state.property_names.clone_from(&self.names);
            store.put_connection(&state)?;
            self.grown = false;
        }
        Ok(())
    }
}

impl Recorder<'_> {
    /// Records one completed lookup (or kept result) for every user of its key; `fallback_hash` is the
    /// digest of the address sent along with the key, if one was.
    pub(super) async fn record(
        &mut self,
        key: &LookupKey,
        users: Vec<DueUser>,
        (result, origin): (Result<Lookup, ConnectorError>, Origin),
        fallback_hash: Option<u64>,
        summary: &mut RunSummary,
    ) -> Result<(), StateError> {
        // Users served from a kept result are checked as of its lookup, and due again when it expires.
        let now = match origin {
            Origin::Cached(checked_at) => checked_at,
            Origin::LookedUp => Utc::now(),
        };
        if let Ok(lookup @ (Lookup::Found(_) | Lookup::NotFound(_))) = &result {
            cached::keep(self.store, self.source, key, lookup, origin, now)?;
        }
        let digests = Digests {
            key: key.digest(),
            sent_address: fallback_hash,
            by_domain: matches!(key, LookupKey::Domain(_)),
        };
        let count = users.len() as u64;
        match result {
            Ok(Lookup::Found(record)) => {
                summary.found += count;
                self.record_check(Outcome::Found, digests, record, users, summary, now).await
            }
            Ok(Lookup::NotFound(record)) => {
                summary.not_found += count;
                self.record_check(Outcome::NotFound, digests, record, users, summary, now).await
            }
            Ok(Lookup::Pending) => {
                summary.pending += count;
                commit_without_write(self.store, &users, digests, |previous| UserState {
                    outcome: Outcome::Pending,
                    detail: None,
                    attempted_at: now,
                    ..previous
                })
            }
            Ok(Lookup::Invalid(reason)) => {
                summary.invalid += count;
                summary.note(&format!("invalid: {reason}"), count);
                commit_without_write(self.store, &users, digests, |previous| UserState {
                    outcome: Outcome::Invalid,
                    checked_at: Some(now),
                    detail: Some(reason.clone()),
                    attempted_at: now,
                    ..previous
                })
            }
            Err(error) => {
                let message = error.to_string();
                LookupFailed { connection: self.connection, key, users: users.len(), error: &message }.emit();
                summary.failed += count;
                summary.note(&message, count);
                commit_without_write(self.store, &users, digests, |previous| UserState {
                    outcome: Outcome::Failed,
                    detail: Some(message.clone()),
                    attempted_at: now,
                    ..previous
                })
            }
        }
    }

    /// Stores a found or not-found check as each user's pending write, then hands the writes over.
    async fn record_check(
        &mut self,
        outcome: Outcome,
        digests: Digests,
        record: Record,
        users: Vec<DueUser>,
        summary: &mut RunSummary,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        // Fitted first: the hash and the writes are of what the sink takes.
        let Record { mut properties, derived } = record;
        let segment_values = segment_values(&self.segments, &properties);
        let cut = self.rules.fit(&mut properties);
        if !cut.is_empty() {
            summary.values_cut += cut.len() as u64;
            ValuesCut { connection: self.connection, properties: &cut }.emit();
        }
        self.derived.extend(derived.into_iter().map(|(path, property)| (property, path)));
        let checked_property = self.source.checked_property();
        let mut check =
            Check::new(outcome, digests, properties, checked_property, segment_values, now, &mut self.names);
        self.names.store_if_grown(self.store)?;
        let mut pending = Vec::with_capacity(users.len());
        let mut users = users.into_iter();
        // The last user takes the check's properties rather than a copy: most keys have one user.
        let last = users.next_back();
        for user in users {
            pending.push(check.pending_write(user, &self.names, Cow::Borrowed(&check.properties)));
        }
        if let Some(user) = last {
            let properties = std::mem::take(&mut check.properties);
            pending.push(check.pending_write(user, &self.names, Cow::Owned(properties)));
        }
        for prepared in &pending {
            summary.unchanged += u64::from(prepared.unchanged);
            summary.cleared += prepared.cleared;
        }
        let pending: Vec<PendingWrite> = pending.into_iter().map(|prepared| prepared.write).collect();
        // Stored before it is sent: once the store has it on disk (sled: within its 100 ms flush), a run
        // killed writes it next time without a new lookup.
        self.store.put_pending(&pending)?;
        // A closed channel means the writer stopped; what it did not take stays pending.
        let _ = self.sender.send(pending).await;
        Ok(())
    }
}

/// The values of the source's report segments, which each user's state keeps: bounded whatever the sink
/// takes (a warehouse table takes a whole list of technologies), lists at whole items.
fn segment_values(segments: &[Segment], properties: &Properties) -> BTreeMap<String, String> {
    const KEPT: ValueRules = ValueRules {
        destination: "the state",
        forbidden_names: &[],
        built_in_names: &[],
        max_text_bytes: Some(1023),
        max_identity_chars: None,
    };
    let mut kept: Properties = segments
        .iter()
        .filter_map(|segment| Some((segment.property.clone(), properties.get(&segment.property)?.clone())))
        .collect();
    KEPT.fit(&mut kept);
    kept.into_iter().map(|(name, value)| (name, value.to_string())).collect()
}

fn properties_hash(properties: &Properties) -> u64 {
    let encoded = serde_json::to_vec(properties).unwrap_or_default();
    stable_hash([encoded.as_slice()])
}

/// Records an outcome that needs no write, building each user's new state from its previous one
/// (with the current key and the address sent along with it).
fn commit_without_write(
    store: &dyn StateStore,
    users: &[DueUser],
    digests: Digests,
    update: impl Fn(UserState) -> UserState,
) -> Result<(), StateError> {
    let now = Utc::now();
    let key_hash = digests.key;
    let states: Vec<(String, UserState)> = users
        .iter()
        .map(|user| {
            let previous = user.previous.clone().unwrap_or_else(|| UserState::fresh(key_hash, now));
            let state = UserState { key_hash, fallback_hash: digests.fallback_of(&user.record), ..previous };
            (user.record.state_key().into_owned(), update(state))
        })
        .collect();
    store.put_users(&states)
}

/// What a user's state must answer to for `forget`: the key's digest, and a second one — the address
/// sent along with an email's lookup, or, for users looked up by their email's domain, their email.
#[derive(Clone, Copy)]
struct Digests {
    key: u64,
    sent_address: Option<u64>,
    by_domain: bool,
}

impl Digests {
    fn fallback_of(&self, user: &UserRecord) -> Option<u64> {
        if self.by_domain {
            return user.lookup_key(KeyKind::Email).ok().map(|email| email.digest());
        }
        self.sent_address
    }
}

/// One completed check of one key, shared by every user with that key: what depends only on the
/// check is worked out once, not once per user.
struct Check<'a> {
    outcome: Outcome,
    key_hash: u64,
    digests: Digests,
    properties: Properties,
    properties_hash: u64,
    /// The names this check leaves set, the check date included, sorted.
    names: Vec<String>,
    /// The same names as a set of the connection's.
    written: PropertySet,
    checked_property: &'a str,
    /// The values of the source's report segments, which the state keeps.
    segment_values: BTreeMap<String, String>,
    now: DateTime<Utc>,
}

/// One user's write of a check.
struct PreparedWrite {
    write: PendingWrite,
    /// Nothing changed since the last acknowledged write: only the check date is sent.
    unchanged: bool,
    /// Properties last written that this check no longer yields, sent empty.
    cleared: u64,
}

impl<'a> Check<'a> {
    fn new(
        outcome: Outcome,
        digests: Digests,
        properties: Properties,
        checked_property: &'a str,
        segment_values: BTreeMap<String, String>,
        now: DateTime<Utc>,
        table: &mut NameTable,
    ) -> Self {
        let properties_hash = properties_hash(&properties);
        let mut names: Vec<String> = properties.keys().cloned().collect();
        if let Err(at) = names.binary_search_by(|name| name.as_str().cmp(checked_property)) {
            names.insert(at, checked_property.to_owned());
        }
        let written = table.set_of(names.iter());
        Self {
            outcome,
            key_hash: digests.key,
            digests,
            properties,
            properties_hash,
            names,
            written,
            checked_property,
            segment_values,
            now,
        }
    }

    /// The names last acknowledged for a user that this check no longer yields (from the table, or
    /// from a record that still holds the names themselves).
    fn no_longer_true<'t>(&self, previous: &'t UserState, table: &'t NameTable) -> Vec<&'t String> {
        let dropped = previous.written.positions().filter(|position| !self.written.contains(*position));
        let mut names: Vec<&String> = dropped.filter_map(|position| table.names.get(position)).collect();
        names.extend(
            previous.written_properties.iter().filter(|name| self.names.binary_search(name).is_err()),
        );
        names
    }

    /// What to write for one user: everything (with what is no longer true emptied), or only the check
    /// date when nothing changed since the last acknowledged write. `properties` are the check's, lent
    /// or given.
    fn pending_write(
        &self,
        user: DueUser,
        table: &NameTable,
        properties: Cow<'_, Properties>,
    ) -> PreparedWrite {
        let properties_hash = self.properties_hash;
        let previous = user.previous.unwrap_or_else(|| UserState::fresh(self.key_hash, self.now));
        let cleared = self.no_longer_true(&previous, table);
        let unchanged = previous.written_at.is_some()
            && previous.outcome == self.outcome
            && previous.properties_hash == Some(properties_hash)
            && cleared.is_empty();
        let mut properties = if unchanged { Properties::new() } else { properties.into_owned() };
        // Heap has no null: an empty value is how a property is cleared.
        properties.extend(cleared.iter().map(|name| ((*name).clone(), PropertyValue::Text(String::new()))));
        properties.insert(
            self.checked_property.to_owned(),
            PropertyValue::Text(self.now.to_rfc3339_opts(SecondsFormat::Secs, true)),
        );
        let fallback_hash = self.digests.fallback_of(&user.record);
        let acknowledged = UserState {
            key_hash: self.key_hash,
            fallback_hash,
            outcome: self.outcome,
            checked_at: Some(self.now),
            attempted_at: self.now,
            detail: None,
            written_at: Some(self.now),
            properties_hash: Some(properties_hash),
            properties_written: self.names.len(),
            written: self.written.clone(),
            written_properties: Vec::new(),
            segments: self.segment_values.clone(),
        };
        let cleared = cleared.len() as u64;
        let write = PendingWrite {
            update: UserUpdate {
                identity: user.record.identity,
                user_id: user.record.user_id,
                properties,
                checked_at: self.now,
            },
            acknowledged,
            previous: UserState { key_hash: self.key_hash, fallback_hash, ..previous },
        };
        PreparedWrite { write, unchanged, cleared }
    }
}
