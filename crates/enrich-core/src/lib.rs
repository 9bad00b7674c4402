//! The heart of enrich: the traits every connector implements, the property types they exchange, and
//! the sync engine that drives a connection from its user directory through its source to its sink.
//!
//! This crate must not depend on any connector, HTTP client, YAML parser or storage engine: those
//! depend on it, never the other way round. Anything here is testable with in-memory fakes.

pub mod budget;
pub mod cache;
pub mod config;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod connector;
pub mod digest;
pub mod directory;
pub mod engine;
pub mod error;
pub mod events;
pub mod free_email;
pub mod property;
pub mod redact;
pub mod selection;
pub mod sink;
pub mod source;
pub mod state;
pub mod user;

pub use budget::SharedBudget;
pub use cache::{CachedResult, ResultCache};
pub use config::{FieldError, ensure_valid, is_loopback_host};
pub use connector::{Billing, Choice, Secret, SinkSettings, SourceSettings, Starter, UsersSettings};
pub use directory::{DirectoryError, UserDirectory, UserStream};
pub use engine::{Connection, EngineError, Progress, RunPlan, Schedule, SyncReport, SyncRequest, plan, sync};
pub use error::ConnectorError;
pub use property::{ListItems, Properties, PropertyInfo, PropertyKind, PropertyValue, Record, Segment};
pub use sink::{Refused, Sink, UserUpdate, ValueRules};
pub use source::{Lookup, Source};
pub use state::{
    ConnectionState, ConnectionStatus, DueRule, MemoryStateStore, Outcome, PendingWrite, PropertySet,
    RunKind, RunRecord, RunSummary, StateError, StateStore, UserState, found_users,
};
pub use tokio_util::sync::CancellationToken;
pub use user::{KeyKind, LookupHints, LookupKey, PersonName, SkipReason, UserRecord};
