//! The configured state: a sled folder on this machine, or a PostgreSQL database that any number of
//! workers share. The commands reach either through this module alone.

use std::path::PathBuf;
use std::sync::Arc;

use enrich_core::{ConnectionState, SharedBudget, StateError, StateStore};
use enrich_state_postgres::PostgresState;
use enrich_state_sled::SledStateStore;

use crate::config::{Config, StateConfig};

#[derive(Debug)]
pub enum State {
    Sled(PathBuf),
    Postgres(PostgresState),
}

impl State {
    pub fn of(config: &Config) -> Result<Self, StateError> {
        Ok(match &config.state {
            StateConfig::Sled { path } => Self::Sled(path.clone()),
            StateConfig::Postgres { url } => Self::Postgres(PostgresState::new(url)?),
        })
    }

    /// Where the state is, for messages: the folder, or the URL without its password.
    pub fn shown(&self) -> String {
        match self {
            Self::Sled(folder) => folder.display().to_string(),
            Self::Postgres(database) => database.shown().to_owned(),
        }
    }

    /// Where workers sharing this state book their provider keys' requests: in its database.
    pub fn shared_budget(&self) -> Option<Arc<dyn SharedBudget>> {
        match self {
            Self::Sled(_) => None,
            Self::Postgres(database) => Some(Arc::new(database.clone())),
        }
    }

    /// Opens a connection's state, taking its lock for as long as the store lives.
    pub fn open(&self, connection: &str) -> Result<Arc<dyn StateStore>, StateError> {
        Ok(match self {
            Self::Sled(folder) => Arc::new(SledStateStore::open(folder, connection)?),
            Self::Postgres(database) => Arc::new(database.open(connection)?),
        })
    }

    /// Opens a connection's state to sync it; a sled folder says so to `enrich status` while it syncs.
    pub fn open_to_sync(&self, connection: &str) -> Result<Arc<dyn StateStore>, StateError> {
        Ok(match self {
            Self::Sled(folder) => {
                let store = SledStateStore::open(folder, connection)?;
                store.mark_syncing(chrono::Utc::now())?;
                Arc::new(store)
            }
            Self::Postgres(database) => {
                let store = database.open(connection)?;
                store.mark_syncing()?;
                Arc::new(store)
            }
        })
    }

    /// Opens a connection's state if it was ever saved, creating nothing: a dry run of a connection
    /// that never ran needs no state.
    pub fn open_existing(&self, connection: &str) -> Result<Option<Arc<dyn StateStore>>, StateError> {
        Ok(match self {
            Self::Sled(folder) => SledStateStore::open_existing(folder, connection)?
                .map(|store| Arc::new(store) as Arc<dyn StateStore>),
            Self::Postgres(database) => Some(Arc::new(database.open(connection)?)),
        })
    }

    /// When the sync in progress on a connection started: a sled folder's lock file says it, and on
    /// PostgreSQL the row its syncing session wrote while that session holds the connection's lock.
    pub fn syncing_since(
        &self,
        connection: &str,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, StateError> {
        match self {
            Self::Sled(folder) => Ok(enrich_state_sled::syncing_since(folder, connection)),
            Self::Postgres(database) => database.syncing_since(connection),
        }
    }

    /// A connection's state as last saved, read without its lock, while it syncs.
    pub fn connection_state(&self, connection: &str) -> Result<ConnectionState, StateError> {
        Ok(self.connection_states(&[connection.to_owned()])?.pop().unwrap_or_default())
    }

    /// The connections' states as last saved, read without their locks (in one session of a database).
    pub fn connection_states(&self, connections: &[String]) -> Result<Vec<ConnectionState>, StateError> {
        match self {
            Self::Sled(folder) => connections
                .iter()
                .map(|connection| enrich_state_sled::read_connection_state(folder, connection))
                .collect(),
            Self::Postgres(database) => database.connection_states(connections),
        }
    }

    /// Starts a connection's state over, keeping its history and forgotten keys; how many of those.
    pub fn reset(&self, connection: &str) -> Result<usize, StateError> {
        match self {
            Self::Sled(folder) => SledStateStore::reset(folder, connection),
            Self::Postgres(database) => database.open(connection)?.reset(),
        }
    }
}
