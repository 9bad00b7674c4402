//! The contract of a [`StateStore`], as one suite that every storage engine runs against itself
//! (feature `conformance`): `enrich_core::state_store_conformance!(open)` defines one test per check,
//! where `open(test, name)` opens (and locks) the state of connection `name` in a store kept apart for
//! the test named `test`.

use chrono::Utc;

use crate::{
    CachedResult, ConnectionState, ConnectionStatus, Outcome, PendingWrite, Properties, StateError,
    StateStore, UserState, UserUpdate,
};

/// Opens the state of one connection; the store is closed (and unlocked) when dropped.
pub type Open<'a> = &'a dyn Fn(&str) -> Result<Box<dyn StateStore>, StateError>;

/// Defines the suite's tests in the calling module, each calling `$open` for its stores.
#[macro_export]
macro_rules! state_store_conformance {
    ($open:expr) => {
        $crate::state_store_conformance!(@tests $open;
            users_pending_writes_and_connection_state_survive_reopening,
            connections_are_separate_and_each_is_locked_while_open,
            users_stream_in_identity_order_past_any_page,
            the_last_state_of_an_identity_in_one_call_wins,
            forget_removes_every_user_of_a_key_and_their_pending_writes,
            forget_reaches_users_whose_lookup_sent_the_key_along,
            an_anonymous_user_is_kept_apart_from_an_identity_equal_to_its_user_id,
            forgotten_keys_stay_suppressed_whatever_connection_state_is_saved,
            a_failure_is_recorded_as_the_status,
            kept_results_survive_reopening_and_forget_drops_its_key,
        );
    };
    (@tests $open:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let open = $open;
                $crate::conformance::$name(&|connection: &str| open(stringify!($name), connection));
            }
        )*
    };
}

pub fn user_state(key_hash: u64, outcome: Outcome) -> UserState {
    UserState {
        key_hash,
        fallback_hash: None,
        outcome,
        checked_at: Some(Utc::now()),
        attempted_at: Utc::now(),
        detail: None,
        written_at: None,
        properties_hash: Some(7),
        properties_written: 12,
        written: [0, 3, 70].into_iter().fold(crate::PropertySet::default(), |mut set, position| {
            set.insert(position);
            set
        }),
        written_properties: vec!["Company Industry".to_owned()],
        segments: [("Company Industry".to_owned(), "Banks".to_owned())].into(),
    }
}

pub fn pending(identity: &str, key_hash: u64) -> PendingWrite {
    PendingWrite {
        update: UserUpdate {
            identity: Some(identity.into()),
            user_id: None,
            properties: Properties::new(),
            checked_at: Utc::now(),
        },
        acknowledged: user_state(key_hash, Outcome::Found),
        previous: user_state(key_hash, Outcome::Pending),
    }
}

/// A pending write of an anonymous user (no identity), addressed by `user_id`.
fn anonymous_pending(user_id: &str, key_hash: u64) -> PendingWrite {
    let mut write = pending("", key_hash);
    write.update.identity = None;
    write.update.user_id = Some(user_id.into());
    write
}

/// A user looked up by one key with another sent along (an email with its address).
fn sent_along(key_hash: u64, fallback_hash: u64) -> UserState {
    UserState { fallback_hash: Some(fallback_hash), ..user_state(key_hash, Outcome::Found) }
}

fn identities(store: &dyn StateStore) -> Vec<String> {
    store.users().map(|user| user.unwrap().0).collect()
}

fn pending_identities(store: &dyn StateStore) -> Vec<String> {
    let mut identities: Vec<String> =
        store.pending().unwrap().iter().map(|write| write.update.state_key().into_owned()).collect();
    identities.sort();
    identities
}

pub fn users_pending_writes_and_connection_state_survive_reopening(open: Open) {
    let u1 = user_state(42, Outcome::Found);
    let u2 = pending("u2", 42);
    {
        let store = open("a").unwrap();
        store.put_users(&[("u1".into(), u1.clone())]).unwrap();
        store.put_users(&[("odd\0id".into(), user_state(42, Outcome::Invalid))]).unwrap();
        store.put_pending(&[u2.clone(), pending("u3", 42)]).unwrap();
        // Committing u3 forgets its pending write.
        store.put_users(&[("u3".into(), user_state(42, Outcome::Found))]).unwrap();
        let state = ConnectionState { status: ConnectionStatus::Connected, ..ConnectionState::default() };
        store.put_connection(&state).unwrap();
        store.flush().unwrap();
    }
    let store = open("a").unwrap();
    assert_eq!(store.user("u1").unwrap(), Some(u1), "exactly as put");
    assert_eq!(store.user("odd\0id").unwrap().unwrap().outcome, Outcome::Invalid);
    assert_eq!(store.user("nobody").unwrap(), None);
    assert_eq!(identities(store.as_ref()), ["odd\0id", "u1", "u3"]);
    assert_eq!(pending_identities(store.as_ref()), ["u2"]);
    assert_eq!(store.pending().unwrap(), [u2], "exactly as put");
    assert_eq!(store.connection().unwrap().status, ConnectionStatus::Connected);
}

pub fn connections_are_separate_and_each_is_locked_while_open(open: Open) {
    let a = open("a").unwrap();
    let b = open("b").unwrap();
    a.put_users(&[("u1".into(), user_state(42, Outcome::Found))]).unwrap();
    assert_eq!(b.user("u1").unwrap(), None);
    // A second open in this process is refused exactly as another process's would be.
    let error = open("a").unwrap_err();
    assert!(error.is_busy(), "{}", error.0);
    drop(a);
    assert!(open("a").is_ok(), "released when closed");
}

pub fn users_stream_in_identity_order_past_any_page(open: Open) {
    let store = open("a").unwrap();
    let users: Vec<(String, UserState)> = (0..2_500)
        .rev()
        .map(|index| (format!("user{index:05}"), user_state(index, Outcome::Found)))
        .collect();
    store.put_users(&users).unwrap();
    let streamed = identities(store.as_ref());
    assert_eq!(streamed.len(), 2_500);
    assert!(streamed.windows(2).all(|pair| pair[0] < pair[1]), "sorted, each once");
    assert_eq!(store.user("user01234").unwrap().unwrap().key_hash, 1234);
}

pub fn the_last_state_of_an_identity_in_one_call_wins(open: Open) {
    let store = open("a").unwrap();
    store.put_pending(&[pending("u1", 1), pending("u1", 2)]).unwrap();
    assert_eq!(store.pending().unwrap()[0].acknowledged.key_hash, 2);
    store
        .put_users(&[
            ("u1".into(), user_state(1, Outcome::Failed)),
            ("u1".into(), user_state(2, Outcome::Found)),
        ])
        .unwrap();
    assert_eq!(store.user("u1").unwrap().unwrap().outcome, Outcome::Found);
    assert!(store.pending().unwrap().is_empty());
    // u64 digests above i64::MAX are kept as they are.
    store.put_users(&[("u2".into(), user_state(u64::MAX, Outcome::Found))]).unwrap();
    assert_eq!(store.user("u2").unwrap().unwrap().key_hash, u64::MAX);
}

pub fn forget_removes_every_user_of_a_key_and_their_pending_writes(open: Open) {
    let store = open("a").unwrap();
    store
        .put_users(&[
            ("u1".into(), user_state(42, Outcome::Found)),
            ("u2".into(), user_state(99, Outcome::Found)),
        ])
        .unwrap();
    store.put_pending(&[pending("u3", 42)]).unwrap();
    assert_eq!(store.forget(42).unwrap(), ["u1", "u3"]);
    assert_eq!(store.user("u1").unwrap(), None);
    assert!(store.user("u2").unwrap().is_some(), "another person stays");
    assert!(store.pending().unwrap().is_empty());
    assert!(store.forget(42).unwrap().is_empty());
    assert!(store.connection().unwrap().suppressed.contains(&42));
    drop(store);
    assert!(open("a").unwrap().connection().unwrap().suppressed.contains(&42), "durably");
}

pub fn forget_reaches_users_whose_lookup_sent_the_key_along(open: Open) {
    let store = open("a").unwrap();
    store.put_users(&[("u1".into(), sent_along(42, 7)), ("u2".into(), sent_along(42, 8))]).unwrap();
    let mut u3 = pending("u3", 43);
    u3.acknowledged.fallback_hash = Some(7);
    store.put_pending(&[u3]).unwrap();
    assert_eq!(store.forget(7).unwrap(), ["u1", "u3"]);
    assert_eq!(store.user("u1").unwrap(), None);
    assert!(store.user("u2").unwrap().is_some(), "another address stays");
    assert!(store.pending().unwrap().is_empty());
    drop(store);
    let store = open("a").unwrap();
    assert_eq!(store.user("u2").unwrap().unwrap().fallback_hash, Some(8), "kept as put");
    assert!(store.connection().unwrap().suppressed.contains(&7));
}

pub fn an_anonymous_user_is_kept_apart_from_an_identity_equal_to_its_user_id(open: Open) {
    let store = open("a").unwrap();
    let anonymous = anonymous_pending("42", 1);
    let key = anonymous.update.state_key().into_owned();
    store.put_pending(&[anonymous, pending("42", 2)]).unwrap();
    assert_eq!(pending_identities(store.as_ref()), [key.clone(), "42".to_owned()]);
    store.put_users(&[(key.clone(), user_state(1, Outcome::Found))]).unwrap();
    assert_eq!(
        pending_identities(store.as_ref()),
        ["42"],
        "committing the anonymous user drops only its write"
    );
    store.put_users(&[("42".into(), user_state(2, Outcome::NotFound))]).unwrap();
    drop(store);
    let store = open("a").unwrap();
    assert_eq!(store.user(&key).unwrap().unwrap().key_hash, 1);
    assert_eq!(store.user("42").unwrap().unwrap().key_hash, 2);
    assert_eq!(store.forget(1).unwrap(), [key]);
    assert!(store.user("42").unwrap().is_some());
}

pub fn forgotten_keys_stay_suppressed_whatever_connection_state_is_saved(open: Open) {
    let store = open("a").unwrap();
    store.forget(42).unwrap();
    // A run that read the connection state before the forget saves it without the key.
    store.put_connection(&ConnectionState::default()).unwrap();
    assert!(store.connection().unwrap().suppressed.contains(&42));
    let with_another = ConnectionState { suppressed: [7].into(), ..ConnectionState::default() };
    store.put_connection(&with_another).unwrap();
    assert_eq!(store.connection().unwrap().suppressed, [7, 42].into());
}

pub fn a_failure_is_recorded_as_the_status(open: Open) {
    let store = open("a").unwrap();
    store.put_connection(&ConnectionState { users_enriched: 3, ..ConnectionState::default() }).unwrap();
    store.record_failure("bad key").unwrap();
    let state = store.connection().unwrap();
    assert_eq!(state.status, ConnectionStatus::Error("bad key".into()));
    assert_eq!(state.users_enriched, 3, "the rest is kept");
}

pub fn cached_result(company: &str) -> CachedResult {
    // A kept result holds the source's values, lists included.
    let tech = crate::PropertyValue::List(vec!["nginx".to_owned(), "rust".to_owned()]);
    let properties = [
        ("Company Name".to_owned(), crate::PropertyValue::Text(company.to_owned())),
        ("Company Tech".to_owned(), tech),
    ]
    .into();
    CachedResult { outcome: Outcome::Found, checked_at: Utc::now(), properties }
}

pub fn kept_results_survive_reopening_and_forget_drops_its_key(open: Open) {
    let acme = cached_result("Acme");
    {
        let store = open("a").unwrap();
        store.put_cached(&[(42, cached_result("Old name")), (u64::MAX, cached_result("Initech"))]).unwrap();
        store.put_cached(&[(42, acme.clone())]).unwrap();
        store.flush().unwrap();
    }
    let store = open("a").unwrap();
    assert_eq!(store.cached(42).unwrap(), Some(acme), "the latest, exactly as put");
    assert_eq!(store.cached(7).unwrap(), None);
    assert!(open("b").is_ok_and(|other| other.cached(42).unwrap().is_none()), "per connection");
    let kept: Vec<u64> = store.cached_results().map(|kept| kept.unwrap().0).collect();
    assert_eq!(kept.len(), 2);
    assert!(kept.contains(&42) && kept.contains(&u64::MAX), "{kept:?}");
    store.forget(42).unwrap();
    assert_eq!(store.cached(42).unwrap(), None, "a forgotten key's result goes too");
    assert!(store.cached(u64::MAX).unwrap().is_some(), "another key's stays");
    drop(store);
    assert_eq!(open("a").unwrap().cached(42).unwrap(), None, "durably");
}
