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

/// Whether a host name or address (`localhost`, `127.0.0.1`, `[::1]`) is only reachable on this
/// machine: the one place plain http or an unencrypted database connection is acceptable.
pub fn is_loopback_host(host: &str) -> bool {
    // IPv6 hosts come in brackets in URLs: `[::1]`.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn loopback_hosts() {
        for host in ["localhost", "LOCALHOST", "127.0.0.1", "127.8.9.10", "[::1]", "::1"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["example.com", "10.0.0.1", "192.168.1.2", "[2001:db8::1]", "localhost.example.com"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
