//! The [`StateStore`] of enrich on sled: what each connection remembers between runs, in the state
//! folder (`state_dir`, `.enrich` by default). This crate depends on enrich-core only; nothing but the
//! CLI depends on it.
//!
//! Layout, one folder per connection:
//! - `NAME/users/`: a sled database, one tree, with keys
//!   - `u\0IDENTITY` → the user's [`UserState`] as JSON,
//!   - `p\0IDENTITY` → a [`PendingWrite`]: a check whose write the sink has not acknowledged yet,
//!   - `format` → the layout version;
//!     a user's state and the removal of its pending write are one atomic batch.
//! - `NAME/connection.json`: the [`ConnectionState`] (status, run history), replaced atomically.
//!
//! sled locks its database for one process, so a connection cannot sync twice at once, even from two
//! processes; the connection file needs no lock, so `enrich status` reads it while a sync runs.
//! Folders are created readable by their owner only.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use enrich_core::{ConnectionState, PendingWrite, StateError, StateStore, UserState};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The layout version, stored under `format`.
const FORMAT: &[u8] = b"2";

/// How much of the state sled may cache in memory: enough for a run's working set, small enough that
/// memory stays flat with a million users.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// How often sled writes its buffers to disk: checks stored as pending writes survive a killed process
/// unless they arrived within this window.
const FLUSH_EVERY_MS: u64 = 100;

const USER: &[u8] = b"u\0";
const PENDING: &[u8] = b"p\0";

/// The state of one connection, held open (and locked) for as long as this value lives.
#[derive(Debug)]
pub struct SledStateStore {
    folder: PathBuf,
    db: sled::Db,
}

impl SledStateStore {
    /// Opens (or creates) a connection's state. Fails clearly when another enrich process is syncing
    /// the same connection, or when the folder was written by an incompatible version.
    pub fn open(state_dir: &Path, connection: &str) -> Result<Self, StateError> {
        let folder = connection_folder(state_dir, connection);
        create_private_dir(&folder)?;
        let users = folder.join("users");
        let db = sled::Config::new()
            .path(&users)
            .cache_capacity(CACHE_BYTES)
            .flush_every_ms(Some(FLUSH_EVERY_MS))
            .open()
            .map_err(|error| {
                let text = error.to_string();
                if text.contains("could not acquire lock") {
                    StateError(format!(
                        "connection `{connection}` is already syncing in another enrich process \
                         (its state {} is locked)",
                        users.display()
                    ))
                } else {
                    StateError(format!("cannot open {}: {text}", users.display()))
                }
            })?;
        let store = Self { folder, db };
        match store.db.get("format").map_err(|error| store.error(&error))? {
            None => {
                store.db.insert("format", FORMAT).map_err(|error| store.error(&error))?;
            }
            Some(format) if format.as_ref() == FORMAT => {}
            Some(format) => {
                return Err(StateError(format!(
                    "{} was written in state format {} by another version of enrich; this one reads format {}",
                    users.display(),
                    String::from_utf8_lossy(&format),
                    String::from_utf8_lossy(FORMAT)
                )));
            }
        }
        Ok(store)
    }

    /// How many users have a state.
    pub fn user_count(&self) -> usize {
        self.db.scan_prefix(USER).count()
    }

    fn error(&self, error: &dyn std::fmt::Display) -> StateError {
        StateError(format!("{}: {error}", self.folder.display()))
    }

    fn decode<T: DeserializeOwned>(&self, what: &str, bytes: &[u8]) -> Result<T, StateError> {
        serde_json::from_slice(bytes)
            .map_err(|error| self.error(&format!("corrupt record for {what}: {error}")))
    }
}

/// A connection's state as last saved, read without taking the connection's lock, so that it can be
/// shown while the connection syncs. A connection that never ran has the default state.
pub fn read_connection_state(state_dir: &Path, connection: &str) -> Result<ConnectionState, StateError> {
    read_connection_file(&connection_folder(state_dir, connection).join(CONNECTION_FILE))
}

const CONNECTION_FILE: &str = "connection.json";

fn read_connection_file(path: &Path) -> Result<ConnectionState, StateError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|error| StateError(format!("{}: corrupt connection state: {error}", path.display()))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(ConnectionState::default()),
        Err(error) => Err(StateError(format!("cannot read {}: {error}", path.display()))),
    }
}

/// Connection names are checked by the config (letters, digits, `-`, `_`, `.`), so they are safe
/// folder names.
fn connection_folder(state_dir: &Path, connection: &str) -> PathBuf {
    state_dir.join(connection)
}

fn create_private_dir(folder: &Path) -> Result<(), StateError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(folder)
        .map_err(|error| StateError(format!("cannot create {}: {error}", folder.display())))
}

fn key(prefix: &[u8], identity: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + identity.len());
    key.extend_from_slice(prefix);
    key.extend_from_slice(identity.as_bytes());
    key
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StateError> {
    serde_json::to_vec(value).map_err(|error| StateError(format!("cannot encode state: {error}")))
}

impl StateStore for SledStateStore {
    fn user(&self, identity: &str) -> Result<Option<UserState>, StateError> {
        let bytes = self.db.get(key(USER, identity)).map_err(|error| self.error(&error))?;
        bytes.map(|bytes| self.decode(&format!("user {identity:?}"), &bytes)).transpose()
    }

    fn users(&self) -> Box<dyn Iterator<Item = Result<(String, UserState), StateError>> + '_> {
        Box::new(self.db.scan_prefix(USER).map(|entry| {
            let (key, bytes) = entry.map_err(|error| self.error(&error))?;
            let identity = String::from_utf8_lossy(&key[USER.len()..]).into_owned();
            let state = self.decode("a user", &bytes)?;
            Ok((identity, state))
        }))
    }

    fn put_users(&self, users: &[(String, UserState)]) -> Result<(), StateError> {
        let mut batch = sled::Batch::default();
        for (identity, state) in users {
            batch.insert(key(USER, identity), encode(state)?);
            batch.remove(key(PENDING, identity));
        }
        self.db.apply_batch(batch).map_err(|error| self.error(&error))
    }

    fn put_pending(&self, writes: &[PendingWrite]) -> Result<(), StateError> {
        let mut batch = sled::Batch::default();
        for write in writes {
            batch.insert(key(PENDING, &write.update.identity), encode(write)?);
        }
        self.db.apply_batch(batch).map_err(|error| self.error(&error))
    }

    fn pending(&self) -> Result<Vec<PendingWrite>, StateError> {
        self.db
            .scan_prefix(PENDING)
            .map(|entry| {
                let (_, bytes) = entry.map_err(|error| self.error(&error))?;
                self.decode("a pending write", &bytes)
            })
            .collect()
    }

    /// Scans every user: a privacy request is rare, and the state deliberately has no index by email.
    fn forget(&self, key_hash: u64) -> Result<Vec<String>, StateError> {
        let mut forgotten = Vec::new();
        let mut batch = sled::Batch::default();
        for user in self.users() {
            let (identity, state) = user?;
            if state.key_hash == key_hash {
                forgotten.push(identity);
            }
        }
        for write in self.pending()? {
            if write.acknowledged.key_hash == key_hash {
                forgotten.push(write.update.identity);
            }
        }
        forgotten.sort();
        forgotten.dedup();
        for identity in &forgotten {
            batch.remove(key(USER, identity));
            batch.remove(key(PENDING, identity));
        }
        self.db.apply_batch(batch).map_err(|error| self.error(&error))?;
        self.db.flush().map_err(|error| self.error(&error))?;
        Ok(forgotten)
    }

    fn connection(&self) -> Result<ConnectionState, StateError> {
        read_connection_file(&self.folder.join(CONNECTION_FILE))
    }

    /// Written to a temporary file then renamed over the old one, so a reader never sees half a file.
    fn put_connection(&self, state: &ConnectionState) -> Result<(), StateError> {
        let path = self.folder.join(CONNECTION_FILE);
        let temporary = self.folder.join("connection.json.tmp");
        let bytes = serde_json::to_vec_pretty(state).map_err(|error| self.error(&error))?;
        let write = || -> std::io::Result<()> {
            let mut file =
                OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temporary)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&temporary, &path)
        };
        write().map_err(|error| self.error(&format!("cannot save {}: {error}", path.display())))
    }

    fn flush(&self) -> Result<(), StateError> {
        self.db.flush().map(drop).map_err(|error| self.error(&error))
    }
}

#[cfg(test)]
mod tests;
