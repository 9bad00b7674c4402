//! The store against a real PostgreSQL: `eval "$(.ci/postgres start)"` sets ENRICH_TEST_POSTGRES_URL.

use std::sync::LazyLock;

use secrecy::SecretString;

use super::*;

/// The test server, or a failure saying how to start one.
pub(crate) fn test_state() -> PostgresState {
    static STATE: LazyLock<PostgresState> = LazyLock::new(|| {
        let url = std::env::var("ENRICH_TEST_POSTGRES_URL").unwrap_or_else(|_| {
            panic!(
                "ENRICH_TEST_POSTGRES_URL is not set: run `eval \"$(.ci/postgres start)\"` first \
                 (or `cargo xtask test`, which does)"
            )
        });
        PostgresState::new(&SecretString::from(url)).expect("a valid test URL")
    });
    STATE.clone()
}

/// A connection name of this test run's own, so that runs and tests never meet in the shared server.
fn unique(test: &str, connection: &str) -> String {
    static RUN: LazyLock<String> = LazyLock::new(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        format!("{}-{}", std::process::id(), nanos.as_nanos())
    });
    format!("{test}.{connection}.{}", *RUN)
}

fn open_in(test: &str, connection: &str) -> Result<Box<dyn StateStore>, StateError> {
    Ok(Box::new(test_state().open(&unique(test, connection))?))
}

mod conformance {
    enrich_core::state_store_conformance!(super::open_in);
}

#[test]
fn status_reads_a_connection_while_it_is_locked() {
    let name = unique("status", "a");
    let state = test_state();
    let store = state.open(&name).unwrap();
    store.put_connection(&ConnectionState { users_enriched: 5, ..ConnectionState::default() }).unwrap();
    let read = state.connection_states(&[name, unique("status", "never-ran")]).unwrap();
    assert_eq!(read[0].users_enriched, 5);
    assert_eq!(read[1], ConnectionState::default());
}

#[test]
fn a_connection_is_syncing_while_the_session_that_said_so_holds_its_lock() {
    let name = unique("syncing", "a");
    let state = test_state();
    let store = state.open(&name).unwrap();
    assert_eq!(state.syncing_since(&name).unwrap(), None, "opened, not syncing");
    store.mark_syncing().unwrap();
    let since = state.syncing_since(&name).unwrap().expect("syncing");
    assert_eq!(state.syncing_since(&name).unwrap(), Some(since), "one start, read again");
    drop(store);
    assert_eq!(state.syncing_since(&name).unwrap(), None, "the lock went with the session");
    let reopened = state.open(&name).unwrap();
    assert_eq!(state.syncing_since(&name).unwrap(), None, "another session holds the lock, not syncing");
    drop(reopened);
    assert_eq!(state.syncing_since(&unique("syncing", "never-ran")).unwrap(), None);
}

#[test]
fn reset_keeps_history_and_forgotten_keys() {
    use enrich_core::conformance::{pending, user_state};
    let store = test_state().open(&unique("reset", "a")).unwrap();
    store.put_users(&[("u1".into(), user_state(1, enrich_core::Outcome::Found))]).unwrap();
    store.put_pending(&[pending("u2", 2)]).unwrap();
    store.forget(3).unwrap();
    store.record_failure("damaged").unwrap();
    assert_eq!(store.reset().unwrap(), 1);
    assert_eq!(store.users().count(), 0);
    assert!(store.pending().unwrap().is_empty());
    assert_eq!(store.connection().unwrap().status, ConnectionStatus::WaitingForData);
}

/// Runs SQL in a session of `state`'s database.
fn execute(state: &PostgresState, sql: &str) {
    let database = Arc::clone(&state.database);
    let sql = sql.to_owned();
    state
        .call(async move {
            let session = Session::open(database).await?;
            let client = session.client.lock().await;
            client.batch_execute(&sql).await.map_err(|error| failed("test SQL", &error))
        })
        .unwrap();
}

#[test]
fn migrations_apply_once_and_a_newer_schema_is_refused() {
    // A database of its own: the test changes the schema itself.
    let server = std::env::var("ENRICH_TEST_POSTGRES_URL").unwrap();
    let name = unique("schema", "db").replace(['.', '-'], "_");
    execute(&test_state(), &format!("CREATE DATABASE {name}"));
    let (base, _) = server.rsplit_once('/').unwrap();
    let own = PostgresState::new(&SecretString::from(format!("{base}/{name}"))).unwrap();
    drop(own.open("a").unwrap());
    drop(own.open("a").unwrap());
    execute(
        &own,
        "DO $$ BEGIN IF (SELECT count(*) FROM enrich_schema_migrations) <> 5 THEN \
         RAISE 'migrations applied more than once'; END IF; END $$",
    );
    execute(&own, "INSERT INTO enrich_schema_migrations (version) VALUES (99)");
    let error = own.open("a").unwrap_err();
    assert!(
        error.0.contains("schema version 99, from a newer enrich") && error.0.contains("upgrade"),
        "{}",
        error.0
    );
    drop(own);
    execute(&test_state(), &format!("DROP DATABASE {name} WITH (FORCE)"));
}

#[test]
fn a_bad_url_is_refused_without_its_password() {
    let error = PostgresState::new(&SecretString::from("mysql://u:hunter2@h/db".to_owned())).unwrap_err();
    assert!(error.0.starts_with("state url: ") && !error.0.contains("hunter2"), "{}", error.0);
}

#[tokio::test]
async fn workers_booking_one_key_are_spaced_by_its_interval_together() {
    use enrich_core::SharedBudget;
    use std::num::NonZeroU32;
    use std::time::{Duration, Instant};

    // Two workers of one database; a key of this test run's own.
    let workers = [
        test_state(),
        PostgresState::new(&SecretString::from(std::env::var("ENRICH_TEST_POSTGRES_URL").unwrap())).unwrap(),
    ];
    let key = enrich_core::digest::stable_hash([unique("budget", "key").as_bytes()]);
    let per_minute = NonZeroU32::new(600).unwrap(); // one request every 100 ms
    // The server books by its clock, read at some moment of each call: a start lies between the call's
    // beginning and its end, plus the wait the booking returned.
    let origin = Instant::now();
    let mut starts = Vec::new();
    for turn in 0..10 {
        let called = origin.elapsed();
        let wait = workers[turn % 2].book(key, per_minute).await.unwrap();
        starts.push((called + wait, origin.elapsed() + wait));
    }
    starts.sort();
    let interval = Duration::from_millis(100);
    for pair in starts.windows(2) {
        let (earliest, _) = pair[0];
        let (_, latest) = pair[1];
        assert!(latest - earliest >= interval, "two starts closer than the interval: {starts:?}");
    }
    assert!(starts[9].1 - starts[0].0 >= interval * 9, "{starts:?}");
    let other_key = workers[0].book(key.wrapping_add(1), per_minute).await.unwrap();
    assert_eq!(other_key, Duration::ZERO, "another key has a budget of its own");
}
