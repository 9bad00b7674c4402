//! What config validation reports, shared by every connector's config type.

use std::fmt;

use crate::ConnectorError;

/// One problem in a component's config, found without touching the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field, relative to the component: `api_key`, `base_url`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Turns a component's validation problems into the fatal error its constructor returns, so that a
/// component built without `enrich validate` still refuses a bad config.
pub fn ensure_valid(component: &str, problems: &[FieldError]) -> Result<(), ConnectorError> {
    if problems.is_empty() {
        return Ok(());
    }
    let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
    Err(ConnectorError::Fatal(format!("invalid {component} config: {}", problems.join("; "))))
}
