//! The [`StateStore`] of enrich on sled: what every connection remembers between runs, in one folder
//! on disk (`state_dir`, `.enrich` by default).
//!
//! Layout, in three trees:
//! - `users`: `connection \0 identity` → the user's [`UserState`] as JSON;
//! - `connections`: `connection` → its [`ConnectionState`] (status, run history) as JSON;
//! - `meta`: `format` → the layout version, so a future layout can migrate or refuse old folders.
//!
//! sled holds an exclusive lock on the folder: a second process opening it gets a clear "in use" error.
//! This crate depends on enrich-core only; nothing but the CLI depends on it.

use std::path::{Path, PathBuf};

use enrich_core::{ConnectionState, StateError, StateStore, UserState};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The layout version written to `meta/format`.
const FORMAT: &[u8] = b"1";

/// How much of the state sled may cache in memory: enough for a run's working set, small enough that
/// memory stays flat with a million users.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// State kept in a sled database folder.
#[derive(Debug)]
pub struct SledStateStore {
    path: PathBuf,
    db: sled::Db,
    users: sled::Tree,
    connections: sled::Tree,
}

impl SledStateStore {
    /// Opens (or creates) the state folder. Fails clearly when another enrich process holds it or
    /// when it was written by an incompatible version.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let db = sled::Config::new().path(path).cache_capacity(CACHE_BYTES).open().map_err(|error| {
            let text = error.to_string();
            if text.contains("could not acquire lock") {
                StateError(format!(
                    "{} is in use by another enrich process (a sync or `enrich run` is already running)",
                    path.display()
                ))
            } else {
                StateError(format!("cannot open {}: {text}", path.display()))
            }
        })?;
        let store = Self {
            path: path.to_owned(),
            users: open_tree(&db, "users")?,
            connections: open_tree(&db, "connections")?,
            db,
        };
        let meta = open_tree(&store.db, "meta")?;
        match meta.get("format").map_err(|error| store.error(&error))? {
            None => {
                meta.insert("format", FORMAT).map_err(|error| store.error(&error))?;
            }
            Some(format) if format.as_ref() == FORMAT => {}
            Some(format) => {
                return Err(StateError(format!(
                    "{} was written in state format {} by another version of enrich; this one reads format {}",
                    path.display(),
                    String::from_utf8_lossy(&format),
                    String::from_utf8_lossy(FORMAT)
                )));
            }
        }
        Ok(store)
    }

    /// How many users of a connection have a state.
    pub fn user_count(&self, connection: &str) -> usize {
        self.users.scan_prefix(connection_prefix(connection)).count()
    }

    fn error(&self, error: &dyn std::fmt::Display) -> StateError {
        StateError(format!("{}: {error}", self.path.display()))
    }

    fn decode<T: DeserializeOwned>(&self, what: &str, bytes: &[u8]) -> Result<T, StateError> {
        serde_json::from_slice(bytes)
            .map_err(|error| self.error(&format!("corrupt record for {what}: {error}")))
    }

    fn encode<T: Serialize>(&self, value: &T) -> Result<Vec<u8>, StateError> {
        serde_json::to_vec(value).map_err(|error| self.error(&error))
    }
}

fn open_tree(db: &sled::Db, name: &str) -> Result<sled::Tree, StateError> {
    db.open_tree(name).map_err(|error| StateError(format!("cannot open the {name} tree: {error}")))
}

/// Connection names never contain NUL (the config refuses them), so the prefix is unambiguous
/// whatever the identity holds.
fn connection_prefix(connection: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(connection.len() + 1);
    key.extend_from_slice(connection.as_bytes());
    key.push(0);
    key
}

fn user_key(connection: &str, identity: &str) -> Vec<u8> {
    let mut key = connection_prefix(connection);
    key.extend_from_slice(identity.as_bytes());
    key
}

impl StateStore for SledStateStore {
    fn user(&self, connection: &str, identity: &str) -> Result<Option<UserState>, StateError> {
        let bytes = self.users.get(user_key(connection, identity)).map_err(|error| self.error(&error))?;
        bytes.map(|bytes| self.decode(&format!("user {identity:?}"), &bytes)).transpose()
    }

    fn put_users(&self, connection: &str, users: &[(String, UserState)]) -> Result<(), StateError> {
        let mut batch = sled::Batch::default();
        for (identity, state) in users {
            batch.insert(user_key(connection, identity), self.encode(state)?);
        }
        self.users.apply_batch(batch).map_err(|error| self.error(&error))
    }

    fn connection(&self, connection: &str) -> Result<Option<ConnectionState>, StateError> {
        let bytes = self.connections.get(connection).map_err(|error| self.error(&error))?;
        bytes.map(|bytes| self.decode(&format!("connection {connection:?}"), &bytes)).transpose()
    }

    fn put_connection(&self, connection: &str, state: &ConnectionState) -> Result<(), StateError> {
        self.connections.insert(connection, self.encode(state)?).map_err(|error| self.error(&error))?;
        Ok(())
    }

    fn flush(&self) -> Result<(), StateError> {
        self.db.flush().map(drop).map_err(|error| self.error(&error))
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use enrich_core::{ConnectionStatus, Outcome};

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
        }
    }

    #[test]
    fn users_and_connections_survive_reopening() {
        let folder = tempfile::tempdir().unwrap();
        {
            let store = SledStateStore::open(folder.path()).unwrap();
            store
                .put_users(
                    "a",
                    &[
                        ("u1".into(), user_state(Outcome::Found)),
                        ("odd\0id".into(), user_state(Outcome::Invalid)),
                    ],
                )
                .unwrap();
            store.put_users("ab", &[("u1".into(), user_state(Outcome::NotFound))]).unwrap();
            let state = ConnectionState { status: ConnectionStatus::Connected, ..ConnectionState::default() };
            store.put_connection("a", &state).unwrap();
            store.flush().unwrap();
        }
        let store = SledStateStore::open(folder.path()).unwrap();
        assert_eq!(store.user("a", "u1").unwrap().unwrap().outcome, Outcome::Found);
        assert_eq!(store.user("a", "odd\0id").unwrap().unwrap().outcome, Outcome::Invalid);
        assert_eq!(store.user("ab", "u1").unwrap().unwrap().outcome, Outcome::NotFound);
        assert_eq!(store.user("a", "nobody").unwrap(), None);
        assert_eq!(store.user_count("a"), 2, "connection `ab` is not counted under `a`");
        assert_eq!(store.connection("a").unwrap().unwrap().status, ConnectionStatus::Connected);
        assert_eq!(store.connection("b").unwrap(), None);
    }

    #[test]
    fn a_second_process_gets_a_clear_error() {
        let folder = tempfile::tempdir().unwrap();
        let _first = SledStateStore::open(folder.path()).unwrap();
        // sled takes an flock, which is held per open file: a second open in the same process is
        // refused exactly as another process's would be.
        match SledStateStore::open(folder.path()) {
            Err(StateError(message)) => {
                assert!(message.contains("in use by another enrich process"), "{message}")
            }
            Ok(_) => panic!("opened a folder another handle holds"),
        }
    }

    #[test]
    fn refuses_another_format() {
        let folder = tempfile::tempdir().unwrap();
        {
            let db = sled::open(folder.path()).unwrap();
            db.open_tree("meta").unwrap().insert("format", b"99".as_slice()).unwrap();
            db.flush().unwrap();
        }
        let error = SledStateStore::open(folder.path()).unwrap_err();
        assert!(error.0.contains("state format 99"), "{}", error.0);
    }
}
