//! Why one request came to no answer, and what the status codes every service shares mean.

use enrich_core::ConnectorError;
use reqwest::StatusCode;

/// Why one request came to no answer.
#[derive(Debug, PartialEq)]
pub enum Failure {
    /// Worth asking again after a pause: rate limits, server errors, timeouts, broken bodies.
    Retryable { reason: String, rate_limited: bool },
    /// Asking again cannot help.
    Final(ConnectorError),
}

impl Failure {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. })
    }

    pub fn is_rate_limited(&self) -> bool {
        matches!(self, Self::Retryable { rate_limited: true, .. })
    }
}

/// What an error status means when the service says nothing more particular about it: 429 and 5xx
/// pass, another 4xx refuses this request only. `summary` is the status with what the body said.
/// Statuses that refuse the key or the account (401, 402, 403) each connector words itself, with
/// what to do about them.
pub fn status_failure(provider: &str, status: StatusCode, summary: &str) -> Failure {
    let retry = |reason: String, rate_limited| Failure::Retryable { reason, rate_limited };
    match status.as_u16() {
        429 => retry(format!("{provider} is rate limiting ({summary})"), true),
        500..=599 => retry(format!("{provider} failed ({summary})"), false),
        400..=499 => {
            Failure::Final(ConnectorError::Rejected(format!("{provider} refused the lookup ({summary})")))
        }
        _ => Failure::Final(ConnectorError::Rejected(format!(
            "{provider} gave an unexpected answer ({summary})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_and_server_errors_pass_other_refusals_do_not() {
        let failure = |status: u16| status_failure("Acme", StatusCode::from_u16(status).unwrap(), "x");
        assert!(failure(429).is_rate_limited());
        assert!(failure(503).is_retryable() && !failure(503).is_rate_limited());
        assert_eq!(
            failure(400),
            Failure::Final(ConnectorError::Rejected("Acme refused the lookup (x)".into()))
        );
        assert!(matches!(failure(304), Failure::Final(ConnectorError::Rejected(_))));
    }
}
