//! Sinks: where properties are written (Heap's user properties, later a warehouse table).

use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{ConnectorError, Properties};

/// The properties to write for one user, addressed however the sink can.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserUpdate {
    pub identity: String,
    pub user_id: Option<String>,
    pub properties: Properties,
}

/// Users of a batch the destination refused one by one: their positions in the batch, each with the
/// destination's reason. The rest of the batch was acknowledged.
pub type Refused = Vec<(usize, String)>;

/// A destination for user properties, built from a validated config by its connector crate.
#[async_trait]
pub trait Sink: Send + Sync + Debug {
    /// The config `type:` it was built from, such as `heap`.
    fn kind(&self) -> &'static str;
    /// The most users one `write` may carry.
    fn max_batch(&self) -> usize;
    /// Writes one batch; `Ok` means the destination acknowledged every user in it but those it
    /// refused one by one.
    async fn write(&self, batch: &[UserUpdate]) -> Result<Refused, ConnectorError>;
    /// One harmless live call proving the destination accepts this configuration.
    async fn check(&self) -> Result<String, ConnectorError>;
    /// What only the first sync can prove, once `checked_property` (written by every check) shows in
    /// the destination; `None` when [`Sink::check`] proves it all.
    fn first_sync_proves(&self, _checked_property: &str) -> Option<String> {
        None
    }
}
