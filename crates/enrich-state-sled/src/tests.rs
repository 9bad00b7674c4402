use std::os::unix::fs::PermissionsExt;

use chrono::Utc;
use enrich_core::{ConnectionStatus, Outcome, Properties, PropertyValue, UserUpdate};

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
    assert_eq!(store.user_count().unwrap(), 3);
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
    for path in [
        state_dir.path().join("state"),
        state_dir.path().join("state/a"),
        state_dir.path().join("state/a/users"),
    ] {
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
    assert!(store.connection().unwrap().suppressed.contains(&42));
}

/// Every byte of every file under `folder`.
fn bytes_under(folder: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            bytes.extend(bytes_under(&path));
        } else {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    bytes
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

#[test]
fn forget_leaves_no_trace_in_any_file_and_its_suppression_outlives_connection_json() {
    let state_dir = tempfile::tempdir().unwrap();
    let folder = state_dir.path().join("a");
    {
        let store = SledStateStore::open(state_dir.path(), "a").unwrap();
        let mut write = pending("forgotten-identity");
        write.update.properties.insert("Person Name".into(), PropertyValue::text("Zebulon Quirk").0);
        store.put_pending(&[write]).unwrap();
        store.put_users(&[("forgotten-identity".into(), user_state(Outcome::Found))]).unwrap();
        store.put_users(&[("kept".into(), UserState { key_hash: 7, ..user_state(Outcome::Found) })]).unwrap();
        store.put_connection(&ConnectionState::default()).unwrap();
        store.flush().unwrap();
        assert!(holds(&bytes_under(&folder), "Zebulon Quirk"), "the test writes what it looks for");
        assert_eq!(store.forget(42).unwrap(), ["forgotten-identity"]);
        let bytes = bytes_under(&folder);
        assert!(!holds(&bytes, "Zebulon Quirk") && !holds(&bytes, "forgotten-identity"));
        assert!(store.user("kept").unwrap().is_some(), "the copy holds the others");
        store.put_users(&[("later".into(), user_state(Outcome::NotFound))]).unwrap();
    }
    std::fs::remove_file(folder.join(CONNECTION_FILE)).unwrap();
    let store = SledStateStore::open(state_dir.path(), "a").unwrap();
    assert!(store.connection().unwrap().suppressed.contains(&42), "kept with the users");
    assert_eq!(store.user_count().unwrap(), 2);
}

#[test]
fn a_replacement_interrupted_between_its_renames_is_finished() {
    let state_dir = tempfile::tempdir().unwrap();
    let folder = state_dir.path().join("a");
    {
        let store = SledStateStore::open(state_dir.path(), "a").unwrap();
        store.put_users(&[("u1".into(), user_state(Outcome::Found))]).unwrap();
        store.flush().unwrap();
    }
    // The copy is complete, the old database moved aside, the copy not yet in place.
    copy_without(&open_db(&folder.join(USERS_DIR)).unwrap(), &folder.join(COPY_DIR), &HashSet::new(), 1)
        .unwrap();
    std::fs::rename(folder.join(USERS_DIR), folder.join(REPLACED_DIR)).unwrap();
    let store = SledStateStore::open(state_dir.path(), "a").unwrap();
    assert!(store.user("u1").unwrap().is_some());
    assert!(!folder.join(REPLACED_DIR).exists() && !folder.join(COPY_DIR).exists());
}

/// A store with two users and its connection state saved, closed.
fn saved_store(state_dir: &Path) {
    let store = SledStateStore::open(state_dir, "a").unwrap();
    store
        .put_users(&[("u1".into(), user_state(Outcome::Found)), ("u2".into(), user_state(Outcome::Found))])
        .unwrap();
    store.put_connection(&ConnectionState { users_enriched: 2, ..ConnectionState::default() }).unwrap();
}

#[test]
fn a_database_older_than_its_connection_file_is_damaged() {
    let state_dir = tempfile::tempdir().unwrap();
    saved_store(state_dir.path());
    let saved = std::fs::read(state_dir.path().join("a/connection.json")).unwrap();
    {
        let store = SledStateStore::open(state_dir.path(), "a").unwrap();
        store.put_connection(&ConnectionState::default()).unwrap();
    }
    // As if sled had dropped the last save: the file is one save ahead of the database.
    let text = String::from_utf8(saved).unwrap().replace("\"seal\": 1", "\"seal\": 3");
    std::fs::write(state_dir.path().join("a/connection.json"), text).unwrap();
    let error = SledStateStore::open(state_dir.path(), "a").unwrap_err();
    assert!(error.0.contains("is damaged") && error.0.contains("records are missing"), "{}", error.0);
    assert!(error.0.contains("enrich state reset a"), "{}", error.0);
}

#[test]
fn a_lost_database_is_damaged_and_reset_starts_over_keeping_the_forgotten() {
    let state_dir = tempfile::tempdir().unwrap();
    saved_store(state_dir.path());
    SledStateStore::open(state_dir.path(), "a").unwrap().forget(42).unwrap();
    std::fs::remove_dir_all(state_dir.path().join("a/users")).unwrap();
    let error = SledStateStore::open(state_dir.path(), "a").unwrap_err();
    assert!(error.0.contains("is damaged"), "{}", error.0);

    assert_eq!(SledStateStore::reset(state_dir.path(), "a").unwrap(), 1);
    assert_eq!(
        read_connection_state(state_dir.path(), "a").unwrap().status,
        ConnectionStatus::WaitingForData
    );
    let store = SledStateStore::open(state_dir.path(), "a").unwrap();
    assert_eq!(store.user_count().unwrap(), 0);
    assert!(store.connection().unwrap().suppressed.contains(&42));
}

#[test]
fn an_empty_database_beside_a_file_counting_enriched_users_is_damaged() {
    let state_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(state_dir.path().join("a")).unwrap();
    // As an earlier version, without seals, saved it.
    std::fs::write(state_dir.path().join("a/connection.json"), r#"{"users_enriched": 2}"#).unwrap();
    let error = SledStateStore::open(state_dir.path(), "a").unwrap_err();
    assert!(error.0.contains("counts 2 users enriched, the database holds none"), "{}", error.0);
    let status = read_connection_state(state_dir.path(), "a").unwrap().status;
    assert!(matches!(status, ConnectionStatus::Error(reason) if reason.contains("is damaged")));
}

#[test]
fn random_bytes_in_the_database_are_reported_never_a_fresh_start() {
    use std::os::unix::fs::FileExt;

    // Each offset is a separate case: sled panics on some, drops records at others.
    for offset in [0, 64, 4096, 100_000] {
        let state_dir = tempfile::tempdir().unwrap();
        {
            let store = SledStateStore::open(state_dir.path(), "a").unwrap();
            for index in 0..500 {
                store.put_users(&[(format!("user{index}"), user_state(Outcome::Found))]).unwrap();
            }
            store.put_connection(&ConnectionState::default()).unwrap();
        }
        let db = state_dir.path().join("a/users/db");
        let file = OpenOptions::new().write(true).open(&db).unwrap();
        file.write_all_at(&[0x5a; 64], offset).unwrap();
        drop(file);
        match SledStateStore::open(state_dir.path(), "a") {
            Err(error) => assert!(error.0.contains("is damaged"), "offset {offset}: {}", error.0),
            Ok(store) => {
                assert_eq!(store.user_count().unwrap(), 500, "offset {offset}: opened, so nothing lost")
            }
        }
    }
}

#[test]
fn disk_errors_read_as_one_plain_sentence() {
    let full = sled::Error::Io(std::io::Error::from_raw_os_error(28));
    assert_eq!(describe(&full), "no space left on the device");
    // sled's copy of an I/O error: its kind, and a debug dump as the message.
    let copied = std::io::Error::new(ErrorKind::PermissionDenied, "Os { code: 13, kind: PermissionDenied }");
    assert_eq!(describe(&sled::Error::Io(copied)), "permission denied");
}
