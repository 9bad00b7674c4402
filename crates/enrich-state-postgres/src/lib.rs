//! The [`StateStore`] of enrich on PostgreSQL (`state: { type: postgres, url: … }`): the state of every
//! connection in one database that any number of workers share. This crate depends on enrich-core and
//! on the PostgreSQL connector for reaching the server (URL checks, TLS, errors without the password);
//! nothing but the CLI depends on it.
//!
//! Tables (created and migrated by enrich itself, see [`migrations`]): `enrich_connections` (one row
//! per connection: its id and its [`ConnectionState`] as JSON), `enrich_users` and
//! `enrich_pending_writes` (per connection and identity, with the lookup key's digest and that of the
//! address sent along with it, so that `forget` finds a person's rows by index), `enrich_suppressed_keys` (the forget list) and `enrich_rate_budgets` (per-minute budgets of
//! provider keys that workers share: see [`SharedBudget`](enrich_core::SharedBudget)).
//! Each call of the store is one transaction, committed before it returns: a check is acknowledged by
//! the sink only after its pending write is committed, on whichever machine the run is.
//!
//! One run per connection across the cluster: opening a connection's store takes a session-level
//! advisory lock on the connection's id and holds it for as long as the store lives. PostgreSQL ends a
//! session whose client is gone (a killed process's socket is closed by its kernel; a vanished host is
//! detected by TCP keepalives, which each session sets to about 25 s), and that releases the lock, so
//! another worker takes the connection over and writes its pending writes without looking them up again.
//!
//! A store opened to sync writes its session's pid and the time into its connection's row
//! (`mark_syncing`); `syncing_since` reads them back only while pg_locks shows that session holding
//! the lock, so `enrich status` says "syncing since …" on a shared state too.
//!
//! The trait is synchronous, as sled's calls are: each call runs on a small runtime of the store's
//! own and the caller waits for it, which works alike from async code and plain threads.

mod budget;
mod migrations;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use enrich_core::{
    CachedResult, ConnectionState, ConnectionStatus, PendingWrite, StateError, StateStore, UserState,
};
use enrich_postgres::{ConnectionTask, Database, error_message};
use secrecy::SecretString;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use tokio_postgres::Client;

/// The first key of every advisory lock enrich takes ("enri"), so that its locks do not meet another
/// application's in the same database; the second is the connection's id.
const LOCK_NAMESPACE: i32 = 0x656e_7269;

/// How many users `users()` fetches at a time.
const PAGE: i64 = 1_000;

/// A state database: where to reach it, and the runtime its calls run on. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PostgresState {
    database: Arc<Database>,
    runtime: Arc<Runtime>,
    /// The session rate budgets are booked on, opened at the first booking.
    budget_session: Arc<Mutex<Option<Session>>>,
}

/// A runtime that may be dropped anywhere, async code included.
#[derive(Debug)]
struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// One session with the server, used by one call at a time.
#[derive(Debug)]
struct Session {
    client: Mutex<Client>,
    _task: ConnectionTask,
}

impl PostgresState {
    /// The database at `url`; nothing is connected yet.
    pub fn new(url: &SecretString) -> Result<Self, StateError> {
        let database = Database::new(url, None).map_err(|error| StateError(format!("state url: {error}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("enrich-state")
            .enable_all()
            .build()
            .map_err(|error| StateError(format!("cannot start the state runtime: {error}")))?;
        Ok(Self {
            database: Arc::new(database),
            runtime: Arc::new(Runtime(Some(runtime))),
            budget_session: Arc::default(),
        })
    }

    /// The URL without the password.
    pub fn shown(&self) -> &str {
        self.database.shown()
    }

    /// Runs `job` on the store's runtime and waits for it.
    fn call<T: Send + 'static>(
        &self,
        job: impl Future<Output = Result<T, StateError>> + Send + 'static,
    ) -> Result<T, StateError> {
        let shown = self.shown().to_owned();
        let stopped = || StateError(format!("{shown}: the state runtime stopped"));
        let runtime = self.runtime.0.as_ref().ok_or_else(stopped)?;
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = sender.send(job.await);
        });
        receiver.recv().map_err(|_| stopped())?.map_err(|error| StateError(format!("{shown}: {}", error.0)))
    }
}

impl Session {
    /// A new session, with the schema migrated to this version's.
    async fn open(database: Arc<Database>) -> Result<Self, StateError> {
        let (mut client, task) =
            database.connect().await.map_err(|error| StateError(format!("state database: {error}")))?;
        // A worker that vanishes without closing its socket is noticed in about 10 + 3 × 5 s.
        client
            .batch_execute(
                "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3",
            )
            .await
            .map_err(|error| failed("setting keepalives", &error))?;
        migrations::apply(&mut client).await?;
        Ok(Session { client: Mutex::new(client), _task: task })
    }
}

impl PostgresState {
    /// Opens a connection's state and takes its lock for as long as the store lives; fails at once when
    /// another process (on any machine) is syncing the connection.
    pub fn open(&self, connection: &str) -> Result<PostgresStateStore, StateError> {
        let database = Arc::clone(&self.database);
        let name = connection.to_owned();
        let (session, connection_id) = self.call(async move {
            let session = Session::open(database).await?;
            let id = {
                let client = session.client.lock().await;
                let id = connection_id(&client, &name).await?;
                let key =
                    i32::try_from(id).map_err(|_| StateError(format!("connection id {id} is too large")))?;
                let locked: bool = client
                    .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&LOCK_NAMESPACE, &key])
                    .await
                    .map_err(|error| failed("taking the connection's lock", &error))?
                    .get(0);
                if !locked {
                    return Err(StateError::busy(
                        &name,
                        "it holds the connection's lock in the state database",
                    ));
                }
                id
            };
            Ok((session, id))
        })?;
        Ok(PostgresStateStore { state: self.clone(), session: Arc::new(session), connection_id })
    }

    /// The connections' states as last saved, read without their locks (while they sync); a connection
    /// that never ran has the default state.
    pub fn connection_states(&self, names: &[String]) -> Result<Vec<ConnectionState>, StateError> {
        let database = Arc::clone(&self.database);
        let names = names.to_vec();
        self.call(async move {
            let session = Session::open(database).await?;
            let client = session.client.lock().await;
            let mut states = Vec::with_capacity(names.len());
            for name in &names {
                let row = client
                    .query_opt("SELECT id FROM enrich_connections WHERE name = $1", &[name])
                    .await
                    .map_err(|error| failed("reading a connection", &error))?;
                states.push(match row {
                    Some(row) => read_connection(&client, row.get(0)).await?,
                    None => ConnectionState::default(),
                });
            }
            Ok(states)
        })
    }
}

impl PostgresState {
    /// When the sync in progress on a connection started, as its syncing session wrote it: only while
    /// that session holds the connection's lock, which pg_locks shows to every session.
    pub fn syncing_since(&self, connection: &str) -> Result<Option<DateTime<Utc>>, StateError> {
        let database = Arc::clone(&self.database);
        let name = connection.to_owned();
        self.call(async move {
            let session = Session::open(database).await?;
            let client = session.client.lock().await;
            let row = client
                .query_opt(
                    "SELECT c.syncing_since FROM enrich_connections c JOIN pg_locks l \
                       ON l.locktype = 'advisory' AND l.granted AND l.pid = c.syncing_pid \
                      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                      AND l.classid = $1::int4::oid AND l.objid = c.id::oid AND l.objsubid = 2 \
                     WHERE c.name = $2",
                    &[&LOCK_NAMESPACE, &name],
                )
                .await
                .map_err(|error| failed("reading who syncs the connection", &error))?;
            Ok(row.and_then(|row| row.get(0)))
        })
    }
}

/// The connection's id, its row created on first use.
async fn connection_id(client: &Client, name: &str) -> Result<i64, StateError> {
    client
        .execute("INSERT INTO enrich_connections (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", &[&name])
        .await
        .map_err(|error| failed("recording the connection", &error))?;
    let row = client
        .query_one("SELECT id FROM enrich_connections WHERE name = $1", &[&name])
        .await
        .map_err(|error| failed("reading the connection", &error))?;
    Ok(row.get(0))
}

/// The saved state with every suppressed key, which has a table of its own so that no later save of
/// the state can drop one.
async fn read_connection(client: &Client, id: i64) -> Result<ConnectionState, StateError> {
    let row = client
        .query_one("SELECT state FROM enrich_connections WHERE id = $1", &[&id])
        .await
        .map_err(|error| failed("reading the connection state", &error))?;
    let bytes: Option<Vec<u8>> = row.get(0);
    let mut state: ConnectionState = match bytes {
        Some(bytes) => decode("the connection state", &bytes)?,
        None => ConnectionState::default(),
    };
    let rows = client
        .query("SELECT key_hash FROM enrich_suppressed_keys WHERE connection_id = $1", &[&id])
        .await
        .map_err(|error| failed("reading the forgotten keys", &error))?;
    state.suppressed.extend(rows.iter().map(|row| digest(row.get(0))));
    Ok(state)
}

/// The state of one connection, locked for as long as this value lives.
#[derive(Debug)]
pub struct PostgresStateStore {
    state: PostgresState,
    session: Arc<Session>,
    connection_id: i64,
}

impl PostgresStateStore {
    /// Runs `job` with this store's session and connection id.
    fn with_session<T: Send + 'static, F>(
        &self,
        job: impl FnOnce(Arc<Session>, i64) -> F,
    ) -> Result<T, StateError>
    where
        F: Future<Output = Result<T, StateError>> + Send + 'static,
    {
        self.state.call(job(Arc::clone(&self.session), self.connection_id))
    }

    /// Says that this store's session syncs the connection, from now (on the server's clock) for as
    /// long as it holds the lock: [`PostgresState::syncing_since`] reads it.
    pub fn mark_syncing(&self) -> Result<(), StateError> {
        self.with_session(|session, id| async move {
            let client = session.client.lock().await;
            client
                .execute(
                    "UPDATE enrich_connections SET syncing_pid = pg_backend_pid(), syncing_since = now() \
                     WHERE id = $1",
                    &[&id],
                )
                .await
                .map_err(|error| failed("recording the sync", &error))?;
            Ok(())
        })
    }

    /// Starts the connection's state over: no user and no pending write, keeping the run history and
    /// every key forgotten on request. Returns how many forgotten keys stay suppressed.
    pub fn reset(&self) -> Result<usize, StateError> {
        self.with_session(|session, id| async move {
            let mut client = session.client.lock().await;
            let transaction =
                client.transaction().await.map_err(|error| failed("starting a reset", &error))?;
            for table in ["enrich_users", "enrich_pending_writes", "enrich_kept_results"] {
                transaction
                    .execute(&format!("DELETE FROM {table} WHERE connection_id = $1"), &[&id])
                    .await
                    .map_err(|error| failed("resetting", &error))?;
            }
            transaction.commit().await.map_err(|error| failed("resetting", &error))
        })?;
        let mut state = self.connection()?;
        state.status = if state.first_data_at.is_some() {
            ConnectionStatus::Connected
        } else {
            ConnectionStatus::WaitingForData
        };
        self.put_connection(&state)?;
        Ok(state.suppressed.len())
    }

    /// Up to [`PAGE`] users after `after`, in identity order.
    fn page(&self, after: Option<Vec<u8>>) -> Result<Vec<(String, UserState)>, StateError> {
        self.with_session(|session, id| async move {
            let client = session.client.lock().await;
            let after = after.unwrap_or_default();
            let rows = client
                .query(
                    "SELECT identity, state FROM enrich_users WHERE connection_id = $1 AND identity > $2 \
                     ORDER BY identity LIMIT $3",
                    &[&id, &after, &PAGE],
                )
                .await
                .map_err(|error| failed("reading users", &error))?;
            rows.iter()
                .map(|row| {
                    let identity: Vec<u8> = row.get(0);
                    let state: Vec<u8> = row.get(1);
                    Ok((String::from_utf8_lossy(&identity).into_owned(), decode("a user", &state)?))
                })
                .collect()
        })
    }
}

/// `u64` digests are stored in `bigint` columns bit for bit.
fn stored(digest: u64) -> i64 {
    i64::from_ne_bytes(digest.to_ne_bytes())
}

fn digest(stored: i64) -> u64 {
    u64::from_ne_bytes(stored.to_ne_bytes())
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StateError> {
    serde_json::to_vec(value).map_err(|error| StateError(format!("cannot encode state: {error}")))
}

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, StateError> {
    serde_json::from_slice(bytes).map_err(|error| StateError(format!("corrupt record for {what}: {error}")))
}

fn failed(what: &str, error: &tokio_postgres::Error) -> StateError {
    StateError(format!("{what}: {}", error_message(error)))
}

/// Rows to upsert, keyed by identity (a [`UserState`]'s state key): the last of an identity in one
/// call wins.
type Rows = BTreeMap<Vec<u8>, Row>;

/// One user's or pending write's row: its digests (the key's, the address sent along) and payload.
struct Row {
    key_hash: i64,
    fallback_hash: Option<i64>,
    payload: Vec<u8>,
}

impl Row {
    fn of<T: Serialize>(state: &UserState, payload: &T) -> Result<Self, StateError> {
        Ok(Self {
            key_hash: stored(state.key_hash),
            fallback_hash: state.fallback_hash.map(stored),
            payload: encode(payload)?,
        })
    }
}

/// Upserts `rows` into `table` and, when `clear_pending`, removes their pending writes, in one
/// transaction.
async fn upsert(
    session: Arc<Session>,
    id: i64,
    table: &'static str,
    rows: Rows,
    clear_pending: bool,
) -> Result<(), StateError> {
    let mut identities = Vec::with_capacity(rows.len());
    let mut hashes = Vec::with_capacity(rows.len());
    let mut fallback_hashes = Vec::with_capacity(rows.len());
    let mut payloads = Vec::with_capacity(rows.len());
    for (identity, row) in rows {
        identities.push(identity);
        hashes.push(row.key_hash);
        fallback_hashes.push(row.fallback_hash);
        payloads.push(row.payload);
    }
    let payload = if table == "enrich_users" { "state" } else { "write" };
    let mut client = session.client.lock().await;
    let transaction = client.transaction().await.map_err(|error| failed("starting a write", &error))?;
    transaction
        .execute(
            &format!(
                "INSERT INTO {table} (connection_id, identity, key_hash, fallback_hash, {payload}) \
                 SELECT $1, * FROM unnest($2::bytea[], $3::int8[], $4::int8[], $5::bytea[]) \
                 ON CONFLICT (connection_id, identity) DO UPDATE \
                 SET key_hash = excluded.key_hash, fallback_hash = excluded.fallback_hash, \
                     {payload} = excluded.{payload}"
            ),
            &[&id, &identities, &hashes, &fallback_hashes, &payloads],
        )
        .await
        .map_err(|error| failed("writing", &error))?;
    if clear_pending {
        transaction
            .execute(
                "DELETE FROM enrich_pending_writes WHERE connection_id = $1 AND identity = ANY($2)",
                &[&id, &identities],
            )
            .await
            .map_err(|error| failed("writing", &error))?;
    }
    transaction.commit().await.map_err(|error| failed("committing", &error))
}

impl StateStore for PostgresStateStore {
    fn user(&self, identity: &str) -> Result<Option<UserState>, StateError> {
        let identity = identity.as_bytes().to_vec();
        let bytes: Option<Vec<u8>> = self.with_session(|session, id| async move {
            let client = session.client.lock().await;
            let row = client
                .query_opt(
                    "SELECT state FROM enrich_users WHERE connection_id = $1 AND identity = $2",
                    &[&id, &identity],
                )
                .await
                .map_err(|error| failed("reading a user", &error))?;
            Ok(row.map(|row| row.get(0)))
        })?;
        bytes.map(|bytes| decode("a user", &bytes)).transpose()
    }

    /// Pages through the users in identity order, one page in memory at a time.
    fn users(&self) -> Box<dyn Iterator<Item = Result<(String, UserState), StateError>> + '_> {
        let mut page = Vec::new().into_iter();
        let mut after: Option<Vec<u8>> = None;
        let mut done = false;
        Box::new(std::iter::from_fn(move || {
            loop {
                if let Some((identity, state)) = page.next() {
                    return Some(Ok((identity, state)));
                }
                if done {
                    return None;
                }
                match self.page(after.clone()) {
                    Ok(next) => {
                        done = next.len() < PAGE as usize;
                        after = next.last().map(|(identity, _)| identity.as_bytes().to_vec());
                        page = next.into_iter();
                    }
                    Err(error) => {
                        done = true;
                        return Some(Err(error));
                    }
                }
            }
        }))
    }

    fn put_users(&self, users: &[(String, UserState)]) -> Result<(), StateError> {
        let mut rows = Rows::new();
        for (identity, state) in users {
            rows.insert(identity.as_bytes().to_vec(), Row::of(state, state)?);
        }
        self.with_session(|session, id| upsert(session, id, "enrich_users", rows, true))
    }

    fn put_pending(&self, writes: &[PendingWrite]) -> Result<(), StateError> {
        let mut rows = Rows::new();
        for write in writes {
            rows.insert(write.update.state_key().as_bytes().to_vec(), Row::of(&write.acknowledged, write)?);
        }
        self.with_session(|session, id| upsert(session, id, "enrich_pending_writes", rows, false))
    }

    fn pending(&self) -> Result<Vec<PendingWrite>, StateError> {
        let payloads: Vec<Vec<u8>> = self.with_session(|session, id| async move {
            let client = session.client.lock().await;
            let rows = client
                .query("SELECT write FROM enrich_pending_writes WHERE connection_id = $1", &[&id])
                .await
                .map_err(|error| failed("reading pending writes", &error))?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })?;
        payloads.iter().map(|bytes| decode("a pending write", bytes)).collect()
    }

    /// Deletes the rows and suppresses the key in one transaction, then vacuums both tables so that
    /// the space of the deleted rows is reclaimed. PostgreSQL's write-ahead log, replicas and backups
    /// keep them until they are recycled, as they keep everything else of that database.
    fn forget(&self, key_hash: u64) -> Result<Vec<String>, StateError> {
        self.with_session(|session, id| async move {
            let mut client = session.client.lock().await;
            let key = stored(key_hash);
            let transaction = client.transaction().await.map_err(|error| failed("starting a forget", &error))?;
            let mut forgotten = Vec::new();
            transaction
                .execute(
                    "DELETE FROM enrich_kept_results WHERE connection_id = $1 AND key_hash = $2",
                    &[&id, &key],
                )
                .await
                .map_err(|error| failed("forgetting", &error))?;
            for table in ["enrich_users", "enrich_pending_writes"] {
                let rows = transaction
                    .query(
                        &format!(
                            "DELETE FROM {table} WHERE connection_id = $1 AND (key_hash = $2 OR fallback_hash = $2) \
                             RETURNING identity"
                        ),
                        &[&id, &key],
                    )
                    .await
                    .map_err(|error| failed("forgetting", &error))?;
                forgotten.extend(rows.iter().map(|row| String::from_utf8_lossy(row.get(0)).into_owned()));
            }
            transaction
                .execute(
                    "INSERT INTO enrich_suppressed_keys (connection_id, key_hash) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING",
                    &[&id, &key],
                )
                .await
                .map_err(|error| failed("forgetting", &error))?;
            transaction.commit().await.map_err(|error| failed("forgetting", &error))?;
            client
                .batch_execute("VACUUM enrich_users, enrich_pending_writes, enrich_kept_results")
                .await
                .map_err(|error| failed("vacuuming after forgetting", &error))?;
            forgotten.sort();
            forgotten.dedup();
            Ok(forgotten)
        })
    }

    fn cached(&self, key_hash: u64) -> Result<Option<CachedResult>, StateError> {
        let bytes: Option<Vec<u8>> = self.with_session(move |session, id| async move {
            let client = session.client.lock().await;
            let row = client
                .query_opt(
                    "SELECT result FROM enrich_kept_results WHERE connection_id = $1 AND key_hash = $2",
                    &[&id, &stored(key_hash)],
                )
                .await
                .map_err(|error| failed("reading a kept result", &error))?;
            Ok(row.map(|row| row.get(0)))
        })?;
        bytes.map(|bytes| decode("a kept result", &bytes)).transpose()
    }

    fn put_cached(&self, results: &[(u64, CachedResult)]) -> Result<(), StateError> {
        // The last result of a key in one call wins: an upsert cannot touch one row twice.
        let mut rows = BTreeMap::new();
        for (key_hash, result) in results {
            rows.insert(stored(*key_hash), encode(result)?);
        }
        let (hashes, payloads): (Vec<i64>, Vec<Vec<u8>>) = rows.into_iter().unzip();
        self.with_session(|session, id| async move {
            let client = session.client.lock().await;
            client
                .execute(
                    "INSERT INTO enrich_kept_results (connection_id, key_hash, result) \
                     SELECT $1, * FROM unnest($2::int8[], $3::bytea[]) \
                     ON CONFLICT (connection_id, key_hash) DO UPDATE SET result = excluded.result",
                    &[&id, &hashes, &payloads],
                )
                .await
                .map_err(|error| failed("keeping results", &error))?;
            Ok(())
        })
    }

    /// All at once: there is one per distinct shared key (domains, office addresses), not per user.
    fn cached_results(&self) -> Box<dyn Iterator<Item = Result<(u64, CachedResult), StateError>> + '_> {
        let rows: Result<Vec<(i64, Vec<u8>)>, StateError> = self.with_session(|session, id| async move {
            let client = session.client.lock().await;
            let rows = client
                .query("SELECT key_hash, result FROM enrich_kept_results WHERE connection_id = $1", &[&id])
                .await
                .map_err(|error| failed("reading kept results", &error))?;
            Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
        });
        match rows {
            Ok(rows) => Box::new(
                rows.into_iter()
                    .map(|(key_hash, bytes)| Ok((digest(key_hash), decode("a kept result", &bytes)?))),
            ),
            Err(error) => Box::new(std::iter::once(Err(error))),
        }
    }

    fn connection(&self) -> Result<ConnectionState, StateError> {
        self.with_session(|session, id| async move {
            let client = session.client.lock().await;
            read_connection(&client, id).await
        })
    }

    /// The suppressed keys go into their own table as well, so that they outlive any later save.
    fn put_connection(&self, state: &ConnectionState) -> Result<(), StateError> {
        let bytes = encode(state)?;
        let suppressed: Vec<i64> = state.suppressed.iter().copied().map(stored).collect();
        self.with_session(|session, id| async move {
            let mut client = session.client.lock().await;
            let transaction =
                client.transaction().await.map_err(|error| failed("starting a save", &error))?;
            transaction
                .execute("UPDATE enrich_connections SET state = $2 WHERE id = $1", &[&id, &bytes])
                .await
                .map_err(|error| failed("saving the connection state", &error))?;
            transaction
                .execute(
                    "INSERT INTO enrich_suppressed_keys (connection_id, key_hash) \
                     SELECT $1, * FROM unnest($2::int8[]) ON CONFLICT DO NOTHING",
                    &[&id, &suppressed],
                )
                .await
                .map_err(|error| failed("saving the forgotten keys", &error))?;
            transaction.commit().await.map_err(|error| failed("saving the connection state", &error))
        })
    }

    /// Every call is committed before it returns.
    fn flush(&self) -> Result<(), StateError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
