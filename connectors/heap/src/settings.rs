//! What the CLI's registry needs of the `type: heap` sink section.

use std::sync::Arc;

use enrich_core::{ConnectorError, FieldError, Secret, Sink, SinkSettings, ValueRules};

use crate::{HeapSink, HeapSinkConfig};

/// Heap's own user properties: a property written under one of these names would overwrite what Heap
/// records itself.
const BUILT_IN_NAMES: &[&str] = &[
    "Email",
    "Identity",
    "Handle",
    "User ID",
    "Join Date",
    "Last Modified",
    "Initial Browser",
    "Initial Referrer",
    "Initial Referring Domain",
    "Initial Landing Page",
    "Initial Landing Page Query",
    "Initial Landing Page Hash",
    "Initial Device Type",
    "Initial Country",
    "Initial Region",
    "Initial City",
    "Initial Platform",
    "Initial Marketing Channel",
    "Initial UTM Source",
    "Initial UTM Medium",
    "Initial UTM Campaign",
    "Initial UTM Term",
    "Initial UTM Content",
    "Initial Search Keyword",
];

/// Heap's rules: `id` is refused in any casing, its own properties are not to be overwritten, text
/// values stay below 1024 bytes, and identities are at most 255 characters long.
pub(crate) const VALUE_RULES: ValueRules = ValueRules {
    destination: "Heap",
    forbidden_names: &["id"],
    built_in_names: BUILT_IN_NAMES,
    max_text_bytes: Some(1023),
    max_identity_chars: Some(255),
};

impl SinkSettings for HeapSinkConfig {
    fn validate(&self) -> Vec<FieldError> {
        HeapSinkConfig::validate(self)
    }

    fn build(&self) -> Result<Arc<dyn Sink>, ConnectorError> {
        Ok(Arc::new(HeapSink::new(self)?))
    }

    fn describe(&self) -> String {
        format!("heap app {}", self.app_id)
    }

    /// The app_id is no secret (Heap's JavaScript snippet shows it); a `base_url` may carry credentials.
    fn secrets(&self) -> Vec<Secret<'_>> {
        self.base_url.as_deref().map(Secret::Url).into_iter().collect()
    }

    fn value_rules(&self) -> ValueRules {
        VALUE_RULES
    }

    fn deleting_users(&self) -> Option<&'static str> {
        Some(
            "Heap still holds their properties. To delete the users there, use Heap's User Deletion API:\n  \
             POST /api/public/v0/auth_token (HTTP Basic app_id:api_key) for a token, then\n  \
             POST /api/public/v0/user_deletion with {\"users\": [{\"identity\": …}]} for each identity above",
        )
    }
}
