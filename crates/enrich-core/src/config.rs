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

/// The candidates a misspelt `name` most likely meant, best first (at most three): those that contain
/// it or that it contains, and those spelt alike, compared in lower case without punctuation.
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let plain =
        |text: &str| text.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect();
    let wanted: String = plain(name);
    let mut scored: Vec<(f64, &str)> = candidates
        .into_iter()
        .filter_map(|candidate| {
            let other: String = plain(candidate);
            let contained = !wanted.is_empty() && (other.contains(&wanted) || wanted.contains(&other));
            let score = if contained { 1.0 } else { strsim::jaro_winkler(&wanted, &other) };
            (score >= 0.85 && !other.is_empty()).then_some((score, candidate))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored.dedup_by_key(|(_, candidate)| *candidate);
    scored.into_iter().take(3).map(|(_, candidate)| candidate).collect()
}

#[cfg(test)]
mod tests {
    use super::{is_loopback_host, nearest};

    #[test]
    fn nearest_names_a_misspelt_or_partial_name() {
        let columns = ["identity", "last_seen", "Email Address", "plan"];
        assert_eq!(nearest("email", columns), ["Email Address"]);
        assert_eq!(nearest("lastseen", columns), ["last_seen"]);
        assert_eq!(nearest("country", columns), Vec::<&str>::new());
        let paths = ["company.metrics.employeesRange", "company.metrics.employees", "person.name.fullName"];
        assert_eq!(nearest("company.metrics.employeeRange", paths)[0], "company.metrics.employeesRange");
    }

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
