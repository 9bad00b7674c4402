//! What the CLI's registry needs of this crate's sections: the `postgres_table` sink, and the
//! `heap_connect` and `postgres` user directories.

use std::path::Path;
use std::sync::Arc;

use enrich_core::{ConnectorError, FieldError, Secret, Sink, SinkSettings, UserDirectory, UsersSettings};
use secrecy::ExposeSecret;

use crate::{
    HeapConnectConfig, HeapConnectDirectory, PostgresQueryConfig, PostgresQueryDirectory,
    PostgresTableConfig, PostgresTableSink,
};

impl SinkSettings for PostgresTableConfig {
    fn validate(&self) -> Vec<FieldError> {
        PostgresTableConfig::validate(self)
    }

    fn build(&self) -> Result<Arc<dyn Sink>, ConnectorError> {
        Ok(Arc::new(PostgresTableSink::new(self)?))
    }

    fn describe(&self) -> String {
        format!("table {}", self.table)
    }

    fn secrets(&self) -> Vec<Secret<'_>> {
        vec![Secret::Url(self.url.expose_secret())]
    }
}

impl UsersSettings for HeapConnectConfig {
    fn validate(&self, _folder: &Path) -> Vec<FieldError> {
        HeapConnectConfig::validate(self)
    }

    fn build(&self, _folder: &Path) -> Result<Arc<dyn UserDirectory>, ConnectorError> {
        Ok(Arc::new(HeapConnectDirectory::new(self)?))
    }

    fn describe(&self) -> String {
        let anonymous = if self.anonymous { ", anonymous ones included" } else { "" };
        format!("users from Heap Connect schema {}{anonymous}", self.schema)
    }

    fn secrets(&self) -> Vec<Secret<'_>> {
        vec![Secret::Url(self.url.expose_secret())]
    }
}

impl UsersSettings for PostgresQueryConfig {
    fn validate(&self, _folder: &Path) -> Vec<FieldError> {
        PostgresQueryConfig::validate(self)
    }

    fn build(&self, _folder: &Path) -> Result<Arc<dyn UserDirectory>, ConnectorError> {
        Ok(Arc::new(PostgresQueryDirectory::new(self)?))
    }

    fn describe(&self) -> String {
        "users from a PostgreSQL query".to_owned()
    }

    fn secrets(&self) -> Vec<Secret<'_>> {
        vec![Secret::Url(self.url.expose_secret())]
    }
}
