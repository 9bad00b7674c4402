//! Sinks: where properties are written (Heap's user properties, later a warehouse table).

use std::borrow::Cow;
use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{ConnectorError, Properties, UserRecord};

/// The properties to write for one user, addressed however the sink can.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserUpdate {
    /// `None` for an anonymous user, whom only a sink keyed by `user_id` can address.
    pub identity: Option<String>,
    pub user_id: Option<String>,
    pub properties: Properties,
    /// When the check these properties come from was made. Pending writes stored before this field
    /// existed carry none: they are written as checked when read.
    #[serde(default = "Utc::now")]
    pub checked_at: DateTime<Utc>,
}

impl UserUpdate {
    /// What the state keeps this user under: see [`crate::user::state_key`].
    pub fn state_key(&self) -> Cow<'_, str> {
        crate::user::state_key(self.identity.as_deref(), self.user_id.as_deref())
    }
}

/// Users of a batch the destination refused one by one: their positions in the batch, each with the
/// destination's reason. The rest of the batch was acknowledged.
pub type Refused = Vec<(usize, String)>;

/// What a destination accepts of property names: sources name their properties for people, and the
/// destination's rules are checked against every name a configured source can write.
#[derive(Debug, Clone, Copy, Default)]
pub struct ValueRules {
    /// The destination, for messages: `Heap`.
    pub destination: &'static str,
    /// Names the destination refuses in any casing (Heap's `id`).
    pub forbidden_names: &'static [&'static str],
    /// The destination's own properties, which a property of that name would overwrite.
    pub built_in_names: &'static [&'static str],
}

impl ValueRules {
    /// Why the destination cannot take a property called `name`, or `None`.
    pub fn name_problem(&self, name: &str) -> Option<String> {
        let destination = self.destination;
        if let Some(forbidden) =
            self.forbidden_names.iter().find(|forbidden| forbidden.eq_ignore_ascii_case(name))
        {
            return Some(format!("{destination} refuses the key {forbidden} in any casing"));
        }
        let own = self.built_in_names.iter().find(|own| own.eq_ignore_ascii_case(name))?;
        Some(format!("`{own}` is one of {destination}'s built-in user properties, which it would overwrite"))
    }
}

/// A destination for user properties, built from a validated config by its connector crate.
#[async_trait]
pub trait Sink: Send + Sync + Debug {
    /// The config `type:` it was built from, such as `heap`.
    fn kind(&self) -> &'static str;
    /// The most users one `write` may carry.
    fn max_batch(&self) -> usize;
    /// Why this sink cannot address a user (Heap: one without identity), or `None` when it can. Such
    /// users are skipped before any lookup, counted under the reason, and never sent.
    fn cannot_address(&self, _user: &UserRecord) -> Option<&'static str> {
        None
    }
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
