//! User directories: where the roster of users to enrich comes from (a CSV export, a warehouse).

use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;

use crate::{ConnectorError, UserRecord};

/// A problem with the roster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// One row is unusable: it is reported and skipped, the rest is read.
    #[error("{location}: {message}")]
    BadRow { location: String, message: String },
    /// The roster cannot be read any further.
    #[error("{0}")]
    Fatal(String),
}

/// Users streamed one by one, so memory does not grow with the roster.
pub type UserStream = BoxStream<'static, Result<UserRecord, DirectoryError>>;

#[async_trait]
pub trait UserDirectory: Send + Sync + Debug {
    /// Where the users come from, for messages: `users.csv`, `main_production.users`.
    fn describe(&self) -> String;
    /// Streams the users seen since the given time. A directory that can filter cheaply (SQL)
    /// should; the engine drops users outside the window either way.
    async fn users(&self, seen_since: DateTime<Utc>) -> Result<UserStream, ConnectorError>;
}
