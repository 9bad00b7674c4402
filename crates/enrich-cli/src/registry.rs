//! The connector registry: every source, sink and user directory the CLI knows, matched on the YAML
//! `type:` field. Adding a connector is adding a variant here; there is no global registration.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use enrich_clearbit::{ClearbitConfig, ClearbitSource};
use enrich_core::redact::{register_secret, register_url};
use enrich_core::{Connection, ConnectorError, FieldError, SharedBudget, Sink, Source, UserDirectory};
use enrich_csv::{CsvDirectory, CsvUsersConfig};
use enrich_heap::{HeapSink, HeapSinkConfig};
use enrich_people_data_labs::{PeopleDataLabsConfig, PeopleDataLabsSource};
use enrich_postgres::{
    HeapConnectConfig, HeapConnectDirectory, PostgresQueryConfig, PostgresQueryDirectory,
    PostgresTableConfig, PostgresTableSink,
};
use secrecy::ExposeSecret;
use serde::Deserialize;

use crate::config::ConnectionConfig;

#[derive(Debug, Deserialize)]
// Written with `type:` in the file; the config loader takes `type` out and names the variant with it, so
// that serde keeps track of the fields inside (an internally tagged enum would lose their names).
#[serde(rename_all = "snake_case")]
pub enum SourceConfig {
    Clearbit(ClearbitConfig),
    /// Reveal alone, keyed by IP address; `base_url` is Reveal's.
    ClearbitReveal(ClearbitConfig),
    PeopleDataLabs(PeopleDataLabsConfig),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkConfig {
    Heap(HeapSinkConfig),
    PostgresTable(PostgresTableConfig),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsersConfig {
    Csv(CsvUsersConfig),
    HeapConnect(HeapConnectConfig),
    Postgres(PostgresQueryConfig),
}

impl SourceConfig {
    pub fn validate(&self) -> Vec<FieldError> {
        match self {
            Self::Clearbit(config) | Self::ClearbitReveal(config) => config.validate(),
            Self::PeopleDataLabs(config) => config.validate(),
        }
    }

    pub fn build(&self) -> Result<Arc<dyn Source>, ConnectorError> {
        self.build_sharing(None)
    }

    /// The source, booking its requests in `budget` too when there is one.
    pub fn build_sharing(
        &self,
        budget: Option<Arc<dyn SharedBudget>>,
    ) -> Result<Arc<dyn Source>, ConnectorError> {
        match self {
            Self::Clearbit(config) => Ok(Arc::new(with_budget(ClearbitSource::new(config)?, budget))),
            Self::ClearbitReveal(config) => {
                Ok(Arc::new(with_budget(ClearbitSource::reveal_only(config)?, budget)))
            }
            Self::PeopleDataLabs(config) => {
                let source = PeopleDataLabsSource::new(config)?;
                Ok(Arc::new(match budget {
                    Some(budget) => source.with_shared_budget(budget),
                    None => source,
                }))
            }
        }
    }

    /// The pace the source is configured to keep, for time estimates.
    pub fn lookups_per_minute(&self) -> u32 {
        match self {
            Self::Clearbit(config) | Self::ClearbitReveal(config) => config.requests_per_minute,
            Self::PeopleDataLabs(config) => config.requests_per_minute,
        }
    }
}

/// The source, booking its requests in `budget` too when there is one.
fn with_budget(source: ClearbitSource, budget: Option<Arc<dyn SharedBudget>>) -> ClearbitSource {
    match budget {
        Some(budget) => source.with_shared_budget(budget),
        None => source,
    }
}

impl SinkConfig {
    pub fn validate(&self) -> Vec<FieldError> {
        match self {
            Self::Heap(config) => config.validate(),
            Self::PostgresTable(config) => config.validate(),
        }
    }

    pub fn build(&self) -> Result<Arc<dyn Sink>, ConnectorError> {
        match self {
            Self::Heap(config) => Ok(Arc::new(HeapSink::new(config)?)),
            Self::PostgresTable(config) => Ok(Arc::new(PostgresTableSink::new(config)?)),
        }
    }
}

impl UsersConfig {
    /// Checks the section, resolving paths against the config file's folder.
    pub fn validate(&self, folder: &Path) -> Vec<FieldError> {
        match self {
            Self::Csv(config) => {
                let mut problems = config.validate();
                problems.extend(config.validate_path(&resolve(folder, &config.path)));
                problems
            }
            Self::HeapConnect(config) => config.validate(),
            Self::Postgres(config) => config.validate(),
        }
    }

    /// Problems of the roster itself (a CSV header lacking a configured column), for `enrich
    /// validate`: other commands leave the roster to the run, which reads it again.
    pub fn validate_roster(&self, folder: &Path) -> Vec<FieldError> {
        match self {
            Self::Csv(config) => config.validate_header(&resolve(folder, &config.path)),
            Self::HeapConnect(_) | Self::Postgres(_) => Vec::new(),
        }
    }

    pub fn build(&self, folder: &Path) -> Result<Arc<dyn UserDirectory>, ConnectorError> {
        Ok(match self {
            Self::Csv(config) => Arc::new(CsvDirectory::new(resolve(folder, &config.path), config)),
            Self::HeapConnect(config) => Arc::new(HeapConnectDirectory::new(config)?),
            Self::Postgres(config) => Arc::new(PostgresQueryDirectory::new(config)?),
        })
    }
}

fn resolve(folder: &Path, path: &Path) -> PathBuf {
    folder.join(path)
}

/// Tells the redaction point every secret of the connection (keys, passwords, URLs with credentials),
/// so that no log line, message or state record shows them.
pub fn register_secrets(config: &ConnectionConfig) {
    match &config.source {
        SourceConfig::Clearbit(config) | SourceConfig::ClearbitReveal(config) => {
            register_secret(config.api_key.expose_secret());
            config.base_url.as_deref().map(register_url);
            config.reveal.as_ref().and_then(|reveal| reveal.base_url.as_deref()).map(register_url);
        }
        SourceConfig::PeopleDataLabs(config) => {
            register_secret(config.api_key.expose_secret());
            config.base_url.as_deref().map(register_url);
        }
    }
    match &config.sink {
        SinkConfig::Heap(config) => {
            config.base_url.as_deref().map(register_url);
        }
        SinkConfig::PostgresTable(config) => register_url(config.url.expose_secret()),
    }
    match &config.users {
        UsersConfig::Csv(_) => {}
        UsersConfig::HeapConnect(HeapConnectConfig { url, .. })
        | UsersConfig::Postgres(PostgresQueryConfig { url, .. }) => register_url(url.expose_secret()),
    }
}

/// Builds the runtime connection from its checked config; its source books its requests in `budget`
/// (shared with other workers) when there is one.
pub fn build_connection(
    config: &ConnectionConfig,
    folder: &Path,
    budget: Option<Arc<dyn SharedBudget>>,
) -> Result<Connection, ConnectorError> {
    Ok(Connection {
        name: config.name.clone(),
        source: config.source.build_sharing(budget)?,
        sink: config.sink.build()?,
        users: config.users.build(folder)?,
        schedule: config.schedule,
    })
}
