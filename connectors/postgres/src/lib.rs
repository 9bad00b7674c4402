//! User directories of enrich read from warehouses that speak the PostgreSQL protocol (PostgreSQL itself,
//! Amazon Redshift): [`HeapConnectDirectory`] reads the `users` and `sessions` tables Heap Connect syncs,
//! [`PostgresQueryDirectory`] runs a query of one's own; and a sink, [`PostgresTableSink`], writing
//! properties to a table keyed by Heap's `user_id`.
//!
//! Both filter users to the window in SQL, stream the rows as the server sends them (memory does not
//! grow with the roster), report a bad row and go on, and turn a schema that does not fit (a missing
//! table or column, a column of the wrong type) into one fatal error that names the table and column.
//! Connections use TLS through rustls (ring, the Mozilla roots); the password is never shown.
//!
//! [`Database`] (URL checks, TLS, sessions in UTC, errors without the password) is public for the
//! PostgreSQL state store, which reaches its server the same way.
//!
//! This crate depends on `enrich-core` only: configs are plain serde types, and it knows nothing of the
//! CLI, of YAML or of the other connectors.

mod database;
mod heap_connect;
mod identifier;
mod query;
mod rows;
mod settings;
mod table_sink;

pub use database::{ConnectionTask, Database, TlsMode, error_message, url_problem};
pub use heap_connect::{HeapConnectConfig, HeapConnectDirectory};
pub use query::{PostgresQueryConfig, PostgresQueryDirectory};
pub use table_sink::{PostgresTableConfig, PostgresTableSink};
