use std::os::unix::fs::PermissionsExt;

use enrich_core::{ConnectionStatus, Outcome, PropertyValue};

use super::*;

/// The suite's states, of the key with digest 42.
fn user_state(outcome: Outcome) -> UserState {
    enrich_core::conformance::user_state(42, outcome)
}

fn pending(identity: &str) -> PendingWrite {
    enrich_core::conformance::pending(identity, 42)
}

mod conformance {
    use std::sync::LazyLock;

    use super::*;

    /// One state folder for the suite: each test uses connection names of its own.
    static STATE_DIR: LazyLock<tempfile::TempDir> = LazyLock::new(|| tempfile::tempdir().unwrap());

    fn open_in(test: &str, connection: &str) -> Result<Box<dyn StateStore>, StateError> {
        Ok(Box::new(SledStateStore::open(&STATE_DIR.path().join(test), connection)?))
    }

    enrich_core::state_store_conformance!(open_in);
}

#[test]
fn the_connection_file_is_readable_while_the_connection_syncs() {
    let state_dir = tempfile::tempdir().unwrap();
    let store = SledStateStore::open(state_dir.path(), "a").unwrap();
    let state = ConnectionState { status: ConnectionStatus::Connected, ..ConnectionState::default() };
    store.put_connection(&state).unwrap();
    assert_eq!(read_connection_state(state_dir.path(), "a").unwrap().status, ConnectionStatus::Connected);
    assert_eq!(read_connection_state(state_dir.path(), "b").unwrap(), ConnectionState::default());
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
        write.update.properties.insert("Person Name".into(), PropertyValue::text("Zebulon Quirk"));
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
