//! The [`StateStore`] of enrich on sled: what each connection remembers between runs, in the state
//! folder (`state_dir`, `.enrich` by default). This crate depends on enrich-core only; nothing but the
//! CLI depends on it.
//!
//! Layout, one folder per connection:
//! - `NAME/users/`: a sled database, one tree, with keys
//!   - `u\0IDENTITY` → the user's [`UserState`] as JSON,
//!   - `p\0IDENTITY` → a [`PendingWrite`]: a check whose write the sink has not acknowledged yet,
//!   - `s\0DIGEST` → nothing: a lookup key forgotten on request, never looked up again,
//!   - `seal` → how many times the connection state was saved (see below),
//!   - `format` → the layout version;
//!     a user's state and the removal of its pending write are one atomic batch.
//! - `NAME/connection.json`: the [`ConnectionState`] (status, run history, forgotten keys again) and
//!   the seal, replaced atomically.
//! - `NAME/lock`: locked while a store is open; holds the process id and start of a sync in progress.
//! - `NAME/space.reserve`: zeros, removed to make room for recording a failure on a full disk.
//!
//! A lock of our own keeps other processes off a connection, so a connection cannot sync twice at
//! once, even while `forget` replaces the database; the connection file needs no lock, so `enrich
//! status` reads it while a sync runs. Folders are created readable by their owner only.
//!
//! sled checks a checksum on every record, but when it opens a damaged log it drops everything after
//! the first bad record as if a write had been torn, and some damage makes it panic. So a store reads
//! every record when it opens, and each save of the connection state bumps the seal in the database
//! (flushed) before writing it into `connection.json`: a database whose seal is older than the file's
//! lost records, and is reported damaged rather than silently used as a fresh start.

use std::collections::HashSet;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock};

use chrono::{DateTime, Utc};
use enrich_core::{
    CachedResult, ConnectionState, ConnectionStatus, PendingWrite, StateError, StateStore, UserState,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The layout version, stored under `format`.
const FORMAT: &[u8] = b"2";

/// How much of the state sled may cache in memory (it counts encoded bytes: decoded pages take about
/// twice as much). A run reads users in roster order and writes them in plan order, so a larger cache
/// hardly ever hits; 16 MiB made a million-user run peak near 120 MB.
const CACHE_BYTES: u64 = 4 * 1024 * 1024;

/// How often sled writes its buffers to disk: checks stored as pending writes survive a killed process
/// unless they arrived within this window.
const FLUSH_EVERY_MS: u64 = 100;

const USER: &[u8] = b"u\0";
const PENDING: &[u8] = b"p\0";
const SUPPRESSED: &[u8] = b"s\0";
/// Results kept per key digest (`c\0` + the digest, big-endian).
const CACHED: &[u8] = b"c\0";
const SEAL: &[u8] = b"seal";

const USERS_DIR: &str = "users";
/// A copy of the database being written by `forget`, renamed over `users/` once complete.
const COPY_DIR: &str = "users.new";
/// The database `forget` replaced, removed once the copy is in place.
const REPLACED_DIR: &str = "users.old";
const LOCK_FILE: &str = "lock";
/// Space set aside while the disk has some, given up to record a failure when it has none.
const RESERVE_FILE: &str = "space.reserve";
/// Room for `connection.json` with its longest history.
const RESERVE_BYTES: usize = 256 * 1024;
const CONNECTION_FILE: &str = "connection.json";

/// The state of one connection, held open (and locked) for as long as this value lives.
#[derive(Debug)]
pub struct SledStateStore {
    folder: PathBuf,
    /// Locked for as long as this value lives; holds `PID SINCE` while a run syncs (see
    /// [`SledStateStore::mark_syncing`]).
    lock: File,
    /// `None` only if `forget` failed between closing the old database and opening its copy.
    db: RwLock<Option<sled::Db>>,
}

/// What `connection.json` holds: the connection state and the seal of the database it goes with.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ConnectionFile {
    #[serde(flatten)]
    state: ConnectionState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seal: Option<u64>,
}

impl SledStateStore {
    /// Opens (or creates) a connection's state. Fails clearly when another enrich process is syncing
    /// the same connection, when the folder was written by an incompatible version, or when the
    /// database is damaged.
    pub fn open(state_dir: &Path, connection: &str) -> Result<Self, StateError> {
        let (folder, lock) = lock_connection(state_dir, connection)?;
        let saved = read_connection_file(&folder.join(CONNECTION_FILE))?;
        match open_checked(&folder, &saved) {
            Ok(db) => Ok(Self { folder, lock, db: RwLock::new(Some(db)) }),
            Err(error) => {
                // Shown by `enrich status` too, when its file can be written.
                let _ = record_failure(&folder, saved, &error.to_string());
                Err(error)
            }
        }
    }

    /// Says in the lock file that a run syncs the connection since `since`, for `enrich status`;
    /// emptied when the store closes.
    pub fn mark_syncing(&self, since: DateTime<Utc>) -> Result<(), StateError> {
        let path = self.folder.join(LOCK_FILE);
        let line = format!("{} {}", std::process::id(), since.to_rfc3339());
        self.lock
            .set_len(0)
            .and_then(|()| self.lock.write_all_at(line.as_bytes(), 0))
            .map_err(|error| io_error(&path, &error))
    }

    /// Opens a connection's state if it was ever saved, and `None` otherwise, creating nothing: a
    /// dry run of a connection that never ran needs no folder.
    pub fn open_existing(state_dir: &Path, connection: &str) -> Result<Option<Self>, StateError> {
        if !connection_folder(state_dir, connection).join(CONNECTION_FILE).exists() {
            return Ok(None);
        }
        Self::open(state_dir, connection).map(Some)
    }

    /// Starts a connection's state over: a fresh database, keeping the run history and every key
    /// forgotten on request (from `connection.json` and whatever of the old database is readable).
    /// Returns how many forgotten keys stay suppressed.
    pub fn reset(state_dir: &Path, connection: &str) -> Result<usize, StateError> {
        let (folder, lock) = lock_connection(state_dir, connection)?;
        let mut saved = read_connection_file(&folder.join(CONNECTION_FILE))?;
        let users = folder.join(USERS_DIR);
        if let Some(Ok(old)) = without_panic(|| open_db(&users).and_then(|db| suppressed_keys(&db))) {
            saved.state.suppressed.extend(old);
        }
        remove_db(&folder, &users).map_err(|error| io_error(&users, &error))?;
        let db = open_db(&users).map_err(|error| open_error(&folder, &error))?;
        check_format(&db, &users).map_err(|error| StateError(format!("{}: {error}", users.display())))?;
        let store = Self { folder, lock, db: RwLock::new(Some(db)) };
        // No longer the damage that called for the reset; as a run without error would leave it.
        saved.state.status = if saved.state.first_data_at.is_some() {
            ConnectionStatus::Connected
        } else {
            ConnectionStatus::WaitingForData
        };
        store.put_connection(&saved.state)?;
        Ok(saved.state.suppressed.len())
    }

    /// How many users have a state.
    pub fn user_count(&self) -> Result<usize, StateError> {
        Ok(self.db()?.scan_prefix(USER).count())
    }

    fn db(&self) -> Result<sled::Db, StateError> {
        let db = self.db.read().unwrap_or_else(PoisonError::into_inner);
        db.clone().ok_or_else(|| self.closed())
    }

    fn closed(&self) -> StateError {
        self.error(&"closed after a failed rewrite; run the command again")
    }

    fn error(&self, error: &dyn std::fmt::Display) -> StateError {
        StateError(format!("{}: {error}", self.folder.display()))
    }

    fn sled_error(&self, error: &sled::Error) -> StateError {
        match error {
            sled::Error::Corruption { .. } => damaged(&self.folder, "sled found a bad record"),
            _ => self.error(&describe(error)),
        }
    }

    fn decode<T: DeserializeOwned>(&self, what: &str, bytes: &[u8]) -> Result<T, StateError> {
        serde_json::from_slice(bytes)
            .map_err(|error| self.error(&format!("corrupt record for {what}: {error}")))
    }

    fn pending_in(&self, db: &sled::Db) -> Result<Vec<PendingWrite>, StateError> {
        db.scan_prefix(PENDING)
            .map(|entry| {
                let (_, bytes) = entry.map_err(|error| self.sled_error(&error))?;
                self.decode("a pending write", &bytes)
            })
            .collect()
    }

    /// The identities of the users and pending writes whose states concern the key with this digest.
    fn identities_of(&self, db: &sled::Db, key_hash: u64) -> Result<Vec<String>, StateError> {
        let mut identities = Vec::new();
        for entry in db.scan_prefix(USER) {
            let (key, bytes) = entry.map_err(|error| self.sled_error(&error))?;
            let state: UserState = self.decode("a user", &bytes)?;
            if state.concerns(key_hash) {
                identities.push(String::from_utf8_lossy(&key[USER.len()..]).into_owned());
            }
        }
        for write in self.pending_in(db)? {
            if write.acknowledged.concerns(key_hash) {
                identities.push(write.update.state_key().into_owned());
            }
        }
        identities.sort();
        identities.dedup();
        Ok(identities)
    }

    /// Replaces the database with a copy lacking the given keys and holding `suppressed`: sled keeps
    /// removed values in its log until it reuses the space, so removing is not erasing.
    fn replace_without(
        &self,
        slot: &mut Option<sled::Db>,
        keys: &HashSet<Vec<u8>>,
        suppressed: u64,
    ) -> Result<(), StateError> {
        let db = slot.as_ref().ok_or_else(|| self.closed())?;
        let copy_dir = self.folder.join(COPY_DIR);
        copy_without(db, &copy_dir, keys, suppressed).map_err(|error| self.sled_error(&error))?;
        // Closed before its folder moves: sled writes some files by path. The lock file keeps other
        // processes out meanwhile.
        drop(slot.take());
        let users = self.folder.join(USERS_DIR);
        let replaced = self.folder.join(REPLACED_DIR);
        let swap = || -> std::io::Result<()> {
            std::fs::rename(&users, &replaced)?;
            std::fs::rename(&copy_dir, &users)?;
            std::fs::remove_dir_all(&replaced)?;
            File::open(&self.folder)?.sync_all()
        };
        swap().map_err(|error| io_error(&users, &error))?;
        *slot = Some(open_db(&users).map_err(|error| self.sled_error(&error))?);
        Ok(())
    }
}

/// When the sync in progress on a connection started, if a live process syncs it now; read without
/// taking the lock, so that it never delays a run.
pub fn syncing_since(state_dir: &Path, connection: &str) -> Option<DateTime<Utc>> {
    let text = std::fs::read_to_string(connection_folder(state_dir, connection).join(LOCK_FILE)).ok()?;
    let (pid, since) = text.trim().split_once(' ')?;
    let pid = rustix::process::Pid::from_raw(pid.parse().ok()?)?;
    // A process killed outright leaves its line behind.
    match rustix::process::test_kill_process(pid) {
        Ok(()) | Err(rustix::io::Errno::PERM) => {}
        Err(_) => return None,
    }
    DateTime::parse_from_rfc3339(since).ok().map(|since| since.to_utc())
}

impl Drop for SledStateStore {
    fn drop(&mut self) {
        // No longer syncing; the lock goes with the file.
        let _ = self.lock.set_len(0);
    }
}

/// A connection's state as last saved, read without taking the connection's lock, so that it can be
/// shown while the connection syncs. A connection that never ran has the default state.
pub fn read_connection_state(state_dir: &Path, connection: &str) -> Result<ConnectionState, StateError> {
    Ok(read_connection_file(&connection_folder(state_dir, connection).join(CONNECTION_FILE))?.state)
}

fn record_failure(folder: &Path, mut saved: ConnectionFile, message: &str) -> Result<(), StateError> {
    saved.state.status = ConnectionStatus::Error(message.to_owned());
    write_connection_file(folder, &saved).or_else(|_| {
        let reserve = folder.join(RESERVE_FILE);
        std::fs::remove_file(&reserve).map_err(|error| io_error(&reserve, &error))?;
        write_connection_file(folder, &saved)
    })
}

/// Written to a temporary file then renamed over the old one, so a reader never sees half a file.
fn write_connection_file(folder: &Path, saved: &ConnectionFile) -> Result<(), StateError> {
    let path = folder.join(CONNECTION_FILE);
    let temporary = folder.join("connection.json.tmp");
    let bytes = serde_json::to_vec_pretty(saved).map_err(|error| io_error(&path, &error.into()))?;
    let write = || -> std::io::Result<()> {
        let mut file =
            OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temporary)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, &path)
    };
    write().map_err(|error| {
        let _ = std::fs::remove_file(&temporary);
        io_error(&path, &error)
    })
}

fn read_connection_file(path: &Path) -> Result<ConnectionFile, StateError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|error| StateError(format!("{}: corrupt connection state: {error}", path.display()))),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(ConnectionFile::default()),
        Err(error) => Err(io_error(path, &error)),
    }
}

/// Connection names are checked by the config (letters, digits, `-`, `_`, `.`), so they are safe
/// folder names.
fn connection_folder(state_dir: &Path, connection: &str) -> PathBuf {
    state_dir.join(connection)
}

/// Creates the connection's folder, takes its lock and finishes a `forget` a crash interrupted.
fn lock_connection(state_dir: &Path, connection: &str) -> Result<(PathBuf, File), StateError> {
    let folder = connection_folder(state_dir, connection);
    create_private_dir(&folder)?;
    let path = folder.join(LOCK_FILE);
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|error| io_error(&path, &error))?;
    if lock.try_lock().is_err() {
        return Err(StateError::busy(connection, &format!("its state {} is locked", folder.display())));
    }
    finish_replacing(&folder).map_err(|error| io_error(&folder, &error))?;
    Ok((folder, lock))
}

/// Completes or undoes a replacement of the database that a crash interrupted. A copy is renamed into
/// place only once complete, and the replaced database still holds what was forgotten.
fn finish_replacing(folder: &Path) -> std::io::Result<()> {
    let users = folder.join(USERS_DIR);
    let copy = folder.join(COPY_DIR);
    let replaced = folder.join(REPLACED_DIR);
    if !users.exists() && replaced.exists() && copy.exists() {
        std::fs::rename(&copy, &users)?;
    }
    for leftover in [copy, replaced] {
        if leftover.exists() {
            std::fs::remove_dir_all(leftover)?;
        }
    }
    Ok(())
}

fn create_private_dir(folder: &Path) -> Result<(), StateError> {
    DirBuilder::new().recursive(true).mode(0o700).create(folder).map_err(|error| io_error(folder, &error))?;
    // Also for folders an earlier version created with the default mode.
    std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700))
        .map_err(|error| io_error(folder, &error))
}

/// Opens the database, checks it and reserves space for recording a failure.
fn open_checked(folder: &Path, saved: &ConnectionFile) -> Result<sled::Db, StateError> {
    let users = folder.join(USERS_DIR);
    let db = without_panic(|| open_db(&users))
        .ok_or_else(|| damaged(folder, "sled cannot read it"))?
        .map_err(|error| open_error(folder, &error))?;
    verify(&db, saved).map_err(|problem| damaged(folder, &problem))?;
    check_format(&db, &users).map_err(|error| StateError(format!("{}: {error}", users.display())))?;
    reserve_space(&folder.join(RESERVE_FILE));
    Ok(db)
}

/// Best effort: without the reserve, a failure on a full disk is reported but not recorded.
fn reserve_space(path: &Path) {
    let reserved = std::fs::metadata(path).is_ok_and(|metadata| metadata.len() >= RESERVE_BYTES as u64);
    if !reserved && std::fs::write(path, vec![0; RESERVE_BYTES]).is_err() {
        let _ = std::fs::remove_file(path);
    }
}

/// How long an open waits for sled's own file lock to be let go by a handle of this process that was
/// just closed: sled's background threads release it a moment after the last handle is dropped.
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

fn open_db(users: &Path) -> sled::Result<sled::Db> {
    create_private_dir(users).map_err(|error| std::io::Error::other(error.0))?;
    let config =
        sled::Config::new().path(users).cache_capacity(CACHE_BYTES).flush_every_ms(Some(FLUSH_EVERY_MS));
    let started = std::time::Instant::now();
    loop {
        // Our own lock file keeps other processes out, so a held sled lock is this process's closing
        // handle (or an older enrich's, which the wait does not outlast).
        match config.open() {
            Err(error) if is_held(&error) && started.elapsed() < RELEASE_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            opened => return opened,
        }
    }
}

fn is_held(error: &sled::Error) -> bool {
    matches!(error, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

fn open_error(folder: &Path, error: &sled::Error) -> StateError {
    let users = folder.join(USERS_DIR);
    match error {
        sled::Error::Corruption { .. } => damaged(folder, "sled found a bad record"),
        // Another version of enrich, which relied on sled's lock alone.
        error if is_held(error) => StateError(format!(
            "{} is already in use by another enrich process (its state {} is locked)",
            folder.display(),
            users.display()
        )),
        _ => StateError(format!("cannot open {}: {}", users.display(), describe(error))),
    }
}

/// Removes the database, through a rename so that a crash leaves no half-removed folder in place.
fn remove_db(folder: &Path, users: &Path) -> std::io::Result<()> {
    if users.exists() {
        let replaced = folder.join(REPLACED_DIR);
        std::fs::rename(users, &replaced)?;
        std::fs::remove_dir_all(replaced)?;
    }
    Ok(())
}

fn check_format(db: &sled::Db, users: &Path) -> Result<(), String> {
    match db.get("format").map_err(|error| describe(&error))? {
        None => db.insert("format", FORMAT).map(drop).map_err(|error| describe(&error)),
        Some(format) if format.as_ref() == FORMAT => Ok(()),
        Some(format) => Err(format!(
            "written in state format {} by another version of enrich; this one reads format {} ({})",
            String::from_utf8_lossy(&format),
            String::from_utf8_lossy(FORMAT),
            users.display()
        )),
    }
}

/// Reads every record once, and compares the database's seal with the one `connection.json` saw.
fn verify(db: &sled::Db, saved: &ConnectionFile) -> Result<(), String> {
    match without_panic(|| db.iter().try_for_each(|entry| entry.map(drop))) {
        None => return Err("sled cannot read all of it".to_owned()),
        Some(Err(error)) => return Err(describe(&error)),
        Some(Ok(())) => {}
    }
    let sealed = seal(db)?;
    match saved.seal {
        Some(expected) if sealed < expected => Err(format!(
            "its last save of the connection state is number {sealed}, connection.json's is number \
             {expected}: records are missing"
        )),
        // Saved by a version without seals.
        None if saved.state.users_enriched > 0 && db.scan_prefix(USER).next().is_none() => Err(format!(
            "connection.json counts {} users enriched, the database holds none",
            saved.state.users_enriched
        )),
        _ => Ok(()),
    }
}

fn seal(db: &sled::Db) -> Result<u64, String> {
    match db.get(SEAL).map_err(|error| describe(&error))? {
        None => Ok(0),
        Some(bytes) => {
            let bytes: [u8; 8] =
                bytes.as_ref().try_into().map_err(|_| "its seal is not a number".to_owned())?;
            Ok(u64::from_be_bytes(bytes))
        }
    }
}

fn suppressed_key(digest: u64) -> Vec<u8> {
    key(SUPPRESSED, &digest.to_be_bytes())
}

fn suppressed_keys(db: &sled::Db) -> sled::Result<Vec<u64>> {
    db.scan_prefix(SUPPRESSED)
        .keys()
        .filter_map(|key| {
            key.map(|key| key[SUPPRESSED.len()..].try_into().ok().map(u64::from_be_bytes)).transpose()
        })
        .collect()
}

/// Writes a fresh database at `path` with every record of `db` but `keys`, and `suppressed` added.
fn copy_without(db: &sled::Db, path: &Path, keys: &HashSet<Vec<u8>>, suppressed: u64) -> sled::Result<()> {
    if path.exists() {
        std::fs::remove_dir_all(path)?;
    }
    let copy = open_db(path)?;
    const BATCH: usize = 10_000;
    let mut batch = sled::Batch::default();
    for (index, entry) in db.iter().enumerate() {
        let (key, value) = entry?;
        if !keys.contains(key.as_ref()) {
            batch.insert(key, value);
        }
        if (index + 1) % BATCH == 0 {
            copy.apply_batch(std::mem::take(&mut batch))?;
        }
    }
    batch.insert(suppressed_key(suppressed), &[]);
    copy.apply_batch(batch)?;
    copy.flush()?;
    Ok(())
}

/// Runs `f`, turning a panic into `None` without printing it: sled panics on some damaged files.
fn without_panic<T>(f: impl FnOnce() -> T) -> Option<T> {
    // The hook is the process's: one swap at a time, so that the original is always put back.
    static HOOK: Mutex<()> = Mutex::new(());
    let _swapping = HOOK.lock().unwrap_or_else(PoisonError::into_inner);
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    panic::set_hook(hook);
    result.ok()
}

fn damaged(folder: &Path, problem: &str) -> StateError {
    let connection = folder.file_name().unwrap_or_default().to_string_lossy();
    StateError(format!(
        "the state in {} is damaged ({problem}); restore that folder from a backup, or start over with \
         `enrich state reset {connection}`, after which every user is looked up (and paid for) again",
        folder.display()
    ))
}

/// sled's text for its errors, without the debug dump it gives for some I/O errors.
fn describe(error: &sled::Error) -> String {
    match error {
        sled::Error::Io(error) => io_text(error),
        sled::Error::Corruption { .. } => "a damaged record".to_owned(),
        other => other.to_string(),
    }
}

fn io_text(error: &std::io::Error) -> String {
    match error.kind() {
        ErrorKind::StorageFull => "no space left on the device".to_owned(),
        ErrorKind::Other => error.to_string(),
        // sled copies I/O errors as their kind and a debug dump.
        kind if error.raw_os_error().is_none() && error.get_ref().is_some() => kind.to_string(),
        _ => error.to_string(),
    }
}

fn io_error(path: &Path, error: &std::io::Error) -> StateError {
    StateError(format!("{}: {}", path.display(), io_text(error)))
}

fn key(prefix: &[u8], identity: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + identity.len());
    key.extend_from_slice(prefix);
    key.extend_from_slice(identity);
    key
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StateError> {
    serde_json::to_vec(value).map_err(|error| StateError(format!("cannot encode state: {error}")))
}

impl StateStore for SledStateStore {
    fn user(&self, identity: &str) -> Result<Option<UserState>, StateError> {
        let bytes =
            self.db()?.get(key(USER, identity.as_bytes())).map_err(|error| self.sled_error(&error))?;
        bytes.map(|bytes| self.decode(&format!("user {identity:?}"), &bytes)).transpose()
    }

    fn users(&self) -> Box<dyn Iterator<Item = Result<(String, UserState), StateError>> + '_> {
        let db = match self.db() {
            Ok(db) => db,
            Err(error) => return Box::new(std::iter::once(Err(error))),
        };
        Box::new(db.scan_prefix(USER).map(|entry| {
            let (key, bytes) = entry.map_err(|error| self.sled_error(&error))?;
            let identity = String::from_utf8_lossy(&key[USER.len()..]).into_owned();
            let state = self.decode("a user", &bytes)?;
            Ok((identity, state))
        }))
    }

    fn put_users(&self, users: &[(String, UserState)]) -> Result<(), StateError> {
        let mut batch = sled::Batch::default();
        for (identity, state) in users {
            batch.insert(key(USER, identity.as_bytes()), encode(state)?);
            batch.remove(key(PENDING, identity.as_bytes()));
        }
        self.db()?.apply_batch(batch).map_err(|error| self.sled_error(&error))
    }

    /// One write is inserted alone: each sled batch writes out its log buffer (a `pwrite` and a
    /// `sync_file_range` on sled's I/O threads), which cost more than the rest of a user's check.
    /// A lone insert reaches the disk with the next flush, within [`FLUSH_EVERY_MS`].
    fn put_pending(&self, writes: &[PendingWrite]) -> Result<(), StateError> {
        let db = self.db()?;
        let result = match writes {
            [write] => db.insert(key(PENDING, write.update.state_key().as_bytes()), encode(write)?).map(drop),
            writes => {
                let mut batch = sled::Batch::default();
                for write in writes {
                    batch.insert(key(PENDING, write.update.state_key().as_bytes()), encode(write)?);
                }
                db.apply_batch(batch)
            }
        };
        result.map_err(|error| self.sled_error(&error))
    }

    fn pending(&self) -> Result<Vec<PendingWrite>, StateError> {
        self.pending_in(&self.db()?)
    }

    /// Scans every user (a privacy request is rare, and the state deliberately has no index by
    /// email), then replaces the database with a copy without them.
    fn forget(&self, key_hash: u64) -> Result<Vec<String>, StateError> {
        let mut slot = self.db.write().unwrap_or_else(PoisonError::into_inner);
        let db = slot.clone().ok_or_else(|| self.closed())?;
        let forgotten = self.identities_of(&db, key_hash)?;
        drop(db);
        let mut keys: HashSet<Vec<u8>> = forgotten
            .iter()
            .flat_map(|identity| [key(USER, identity.as_bytes()), key(PENDING, identity.as_bytes())])
            .collect();
        keys.insert(key(CACHED, &key_hash.to_be_bytes()));
        self.replace_without(&mut slot, &keys, key_hash)?;
        let mut saved = read_connection_file(&self.folder.join(CONNECTION_FILE))?;
        saved.state.suppressed.insert(key_hash);
        write_connection_file(&self.folder, &saved)?;
        Ok(forgotten)
    }

    fn cached(&self, key_hash: u64) -> Result<Option<CachedResult>, StateError> {
        let bytes =
            self.db()?.get(key(CACHED, &key_hash.to_be_bytes())).map_err(|error| self.sled_error(&error))?;
        bytes.map(|bytes| self.decode("a kept result", &bytes)).transpose()
    }

    fn put_cached(&self, results: &[(u64, CachedResult)]) -> Result<(), StateError> {
        let mut batch = sled::Batch::default();
        for (key_hash, result) in results {
            batch.insert(key(CACHED, &key_hash.to_be_bytes()), encode(result)?);
        }
        self.db()?.apply_batch(batch).map_err(|error| self.sled_error(&error))
    }

    fn cached_results(&self) -> Box<dyn Iterator<Item = Result<(u64, CachedResult), StateError>> + '_> {
        let db = match self.db() {
            Ok(db) => db,
            Err(error) => return Box::new(std::iter::once(Err(error))),
        };
        Box::new(db.scan_prefix(CACHED).map(|entry| {
            let (key, bytes) = entry.map_err(|error| self.sled_error(&error))?;
            let digest = key[CACHED.len()..].try_into().map(u64::from_be_bytes);
            let digest = digest.map_err(|_| {
                StateError(format!("{}: a kept result under a bad key", self.folder.display()))
            })?;
            Ok((digest, self.decode("a kept result", &bytes)?))
        }))
    }

    /// The file's state, with every key forgotten on request that the database holds: the database
    /// keeps them even if the file is lost.
    fn connection(&self) -> Result<ConnectionState, StateError> {
        let mut state = read_connection_file(&self.folder.join(CONNECTION_FILE))?.state;
        state.suppressed.extend(suppressed_keys(&self.db()?).map_err(|error| self.sled_error(&error))?);
        Ok(state)
    }

    /// The forgotten keys and a new seal go into the database first (flushed), then the file.
    fn put_connection(&self, state: &ConnectionState) -> Result<(), StateError> {
        let db = self.db()?;
        let next = seal(&db).map_err(|problem| damaged(&self.folder, &problem))? + 1;
        let mut batch = sled::Batch::default();
        for digest in &state.suppressed {
            batch.insert(suppressed_key(*digest), &[]);
        }
        batch.insert(SEAL, &next.to_be_bytes());
        db.apply_batch(batch).map_err(|error| self.sled_error(&error))?;
        db.flush().map_err(|error| self.sled_error(&error))?;
        write_connection_file(&self.folder, &ConnectionFile { state: state.clone(), seal: Some(next) })
    }

    fn flush(&self) -> Result<(), StateError> {
        self.db()?.flush().map(drop).map_err(|error| self.sled_error(&error))
    }

    /// Without touching the database, which may be what failed; on a full disk, gives up the space
    /// reserved for this.
    fn record_failure(&self, message: &str) -> Result<(), StateError> {
        record_failure(&self.folder, read_connection_file(&self.folder.join(CONNECTION_FILE))?, message)
    }
}

#[cfg(test)]
mod tests;
