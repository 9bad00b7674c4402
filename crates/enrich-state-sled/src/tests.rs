use std::os::unix::fs::PermissionsExt;

use chrono::Utc;
use enrich_core::{ConnectionStatus, Outcome, Properties, UserUpdate};

use super::*;

fn user_state(outcome: Outcome) -> UserState {
    UserState {
        key_hash: 42,
        outcome,
        checked_at: Some(Utc::now()),
        attempted_at: Utc::now(),
        detail: None,
        written_at: None,
        properties_hash: Some(7),
        properties_written: 12,
        written_properties: vec!["Company Industry".to_owned()],
        segments: [("Company Industry".to_owned(), "Banks".to_owned())].into(),
    }
}

fn pending(identity: &str) -> PendingWrite {
    PendingWrite {
        update: UserUpdate { identity: identity.into(), user_id: None, properties: Properties::new() },
        acknowledged: user_state(Outcome::Found),
        previous: user_state(Outcome::Pending),
        first_enrichment: true,
    }
}

#[test]
fn users_pending_writes_and_connection_state_survive_reopening() {
    let state_dir = tempfile::tempdir().unwrap();
    {
        let store = SledStateStore::open(state_dir.path(), "a").unwrap();
        store.put_users(&[("u1".into(), user_state(Outcome::Found))]).unwrap();
        store.put_users(&[("odd\0id".into(), user_state(Outcome::Invalid))]).unwrap();
        store.put_pending(&[pending("u2"), pending("u3")]).unwrap();
        // Committing u3 forgets its pending write.
        store.put_users(&[("u3".into(), user_state(Outcome::Found))]).unwrap();
        let state = ConnectionState { status: ConnectionStatus::Connected, ..ConnectionState::default() };
        store.put_connection(&state).unwrap();
        store.flush().unwrap();
    }
    let store = SledStateStore::open(state_dir.path(), "a").unwrap();
    assert_eq!(store.user("u1").unwrap().unwrap().outcome, Outcome::Found);
    assert_eq!(store.user("odd\0id").unwrap().unwrap().outcome, Outcome::Invalid);
    assert_eq!(store.user("nobody").unwrap(), None);
    assert_eq!(store.user_count(), 3);
    let identities: Vec<String> = store.users().map(|user| user.unwrap().0).collect();
    assert_eq!(identities, ["odd\0id", "u1", "u3"]);
    assert_eq!(store.user("u1").unwrap().unwrap().segments["Company Industry"], "Banks");
    let pending: Vec<String> =
        store.pending().unwrap().into_iter().map(|write| write.update.identity).collect();
    assert_eq!(pending, ["u2"]);
    assert_eq!(store.connection().unwrap().status, ConnectionStatus::Connected);
    assert_eq!(read_connection_state(state_dir.path(), "a").unwrap().status, ConnectionStatus::Connected);
    assert_eq!(read_connection_state(state_dir.path(), "b").unwrap(), ConnectionState::default());
}

#[test]
fn connections_are_separate_and_each_is_locked_while_open() {
    let state_dir = tempfile::tempdir().unwrap();
    let a = SledStateStore::open(state_dir.path(), "a").unwrap();
    let b = SledStateStore::open(state_dir.path(), "b").unwrap();
    a.put_users(&[("u1".into(), user_state(Outcome::Found))]).unwrap();
    assert_eq!(b.user("u1").unwrap(), None);
    // sled takes an flock, held per open file: a second open in this process is refused exactly as
    // another process's would be.
    let error = SledStateStore::open(state_dir.path(), "a").unwrap_err();
    assert!(error.0.contains("connection `a` is already syncing in another enrich process"), "{}", error.0);
    // The connection file is readable all the while.
    assert!(read_connection_state(state_dir.path(), "a").is_ok());
    drop(a);
    assert!(SledStateStore::open(state_dir.path(), "a").is_ok(), "released when closed");
}

#[test]
fn folders_and_files_are_private() {
    let state_dir = tempfile::tempdir().unwrap();
    let store = SledStateStore::open(&state_dir.path().join("state"), "a").unwrap();
    store.put_connection(&ConnectionState::default()).unwrap();
    for path in [state_dir.path().join("state"), state_dir.path().join("state/a")] {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", path.display());
    }
    let mode =
        std::fs::metadata(state_dir.path().join("state/a/connection.json")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn refuses_another_format() {
    let state_dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(state_dir.path().join("a/users")).unwrap();
        db.insert("format", b"99".as_slice()).unwrap();
        db.flush().unwrap();
    }
    let error = SledStateStore::open(state_dir.path(), "a").unwrap_err();
    assert!(error.0.contains("state format 99"), "{}", error.0);
}

#[test]
fn forget_removes_every_user_of_a_key_and_their_pending_writes() {
    let state_dir = tempfile::tempdir().unwrap();
    let store = SledStateStore::open(state_dir.path(), "a").unwrap();
    let other = UserState { key_hash: 99, ..user_state(Outcome::Found) };
    store.put_users(&[("u1".into(), user_state(Outcome::Found)), ("u2".into(), other)]).unwrap();
    store.put_pending(&[pending("u3")]).unwrap();
    assert_eq!(store.forget(42).unwrap(), ["u1", "u3"]);
    assert_eq!(store.user("u1").unwrap(), None);
    assert!(store.user("u2").unwrap().is_some(), "another person stays");
    assert!(store.pending().unwrap().is_empty());
    assert!(store.forget(42).unwrap().is_empty());
}
