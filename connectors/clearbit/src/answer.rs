//! What one answer of the combined or the Reveal endpoint means, from its status code and body: both
//! speak the same status codes and error bodies.

use enrich_core::ConnectorError;
use enrich_http::{Failure, status_failure};
use reqwest::StatusCode;
use serde_json::Value;

/// Which Clearbit API answered: they differ only in what a found record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// Enrichment's combined lookup: `{person, company}`.
    Combined,
    /// Reveal: `{ip, domain, fuzzy, company, …}`, a record only with a company.
    Reveal,
    /// The Company API: the company itself is the body.
    Company,
}

impl Api {
    /// The fields of which at least one must be an object for the answer to be a record.
    fn record_fields(self) -> &'static [&'static str] {
        match self {
            Self::Combined => &["person", "company"],
            Self::Reveal => &["company"],
            Self::Company => &[],
        }
    }

    /// What stands for the key asked for in what Clearbit says.
    fn placeholder(self) -> &'static str {
        match self {
            Self::Combined => "<email>",
            Self::Reveal => "<ip>",
            Self::Company => "<domain>",
        }
    }
}

/// What one request came to, when it came to something.
#[derive(Debug, PartialEq)]
pub(crate) enum Answer {
    /// 200 or 201 with a person, a company or both (Reveal: a company): the whole body.
    Record(Value),
    /// 404 `unknown_record`, or 200 with neither a person nor a company.
    NotFound,
    /// 202: Clearbit is fetching the record; the body means nothing yet.
    Queued,
    /// 422: this email (or IP address) can never be looked up, and why.
    Invalid(String),
}

/// Reads one answer of `api`. `asked` is what was asked for (an email, an IP address): it is blanked
/// out of anything Clearbit says, so that no error message or log line carries it. `endpoint` (without
/// the query) is what a wrong-route answer names.
pub(crate) fn interpret(
    api: Api,
    status: StatusCode,
    body: &[u8],
    asked: &str,
    endpoint: &str,
) -> Result<Answer, Failure> {
    match status {
        // A 201 is a found record too (and billed as one).
        StatusCode::OK | StatusCode::CREATED => parse_record(api, status, body),
        StatusCode::ACCEPTED => Ok(Answer::Queued),
        StatusCode::NOT_FOUND => interpret_not_found(&ErrorBody::parse(body), endpoint),
        _ => interpret_error(status, &ErrorBody::parse(body).without(asked, api.placeholder())),
    }
}

/// Only a 404 of type `unknown_record` is an answer about the person; any other (`unknown_route`, or
/// a proxy's page) says the requests go to the wrong place, which no lookup will mend.
fn interpret_not_found(error: &ErrorBody, endpoint: &str) -> Result<Answer, Failure> {
    match error.kind.as_deref() {
        Some("unknown_record") => Ok(Answer::NotFound),
        kind => {
            let what = kind.map_or_else(|| "without a Clearbit error body".to_owned(), str::to_owned);
            Err(Failure::Final(ConnectorError::Fatal(format!(
                "Clearbit answered 404 {what} for {endpoint}: check base_url"
            ))))
        }
    }
}

fn parse_record(api: Api, status: StatusCode, body: &[u8]) -> Result<Answer, Failure> {
    let broken = |problem: String| Failure::Retryable {
        reason: format!("Clearbit answered {} with {problem}", status.as_u16()),
        rate_limited: false,
    };
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(response)) if api == Api::Company => Ok(Answer::Record(Value::Object(response))),
        Ok(Value::Object(response)) => {
            // A person or company that is neither a record nor null is a broken answer, not "no record".
            let fields = api.record_fields();
            let broken_field = fields.iter().find(|field| {
                response.get(**field).is_some_and(|value| !value.is_null() && !value.is_object())
            });
            if let Some(field) = broken_field {
                return Err(broken(format!("a `{field}` that is not an object")));
            }
            if fields.iter().all(|field| response.get(*field).is_none_or(Value::is_null)) {
                Ok(Answer::NotFound)
            } else {
                Ok(Answer::Record(Value::Object(response)))
            }
        }
        Ok(_) => Err(broken("a body that is not a JSON object".to_owned())),
        Err(error) => Err(broken(format!("a body that is not valid JSON ({error})"))),
    }
}

fn interpret_error(status: StatusCode, error: &ErrorBody) -> Result<Answer, Failure> {
    let summary = match error.detail() {
        Some(detail) => format!("{status}, {detail}"),
        None => status.to_string(),
    };
    let retry = |reason: String, rate_limited| Err(Failure::Retryable { reason, rate_limited });
    let stop = |error| Err(Failure::Final(error));
    // Clearbit has been seen to answer its concurrency limit with a 400 of type `rate_limit`.
    let rate_limited = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::BAD_REQUEST && error.kind.as_deref() == Some("rate_limit"));
    match status.as_u16() {
        422 => Ok(Answer::Invalid(error.detail().unwrap_or(summary))),
        401 => stop(ConnectorError::Fatal(format!(
            "Clearbit rejected the API key ({summary}): set api_key to the secret key (sk_…) of your \
             Clearbit account"
        ))),
        402 => stop(ConnectorError::Fatal(format!(
            "Clearbit says the account is over its quota ({summary}): lookups stop until the quota renews \
             or the plan is raised"
        ))),
        403 => stop(ConnectorError::Fatal(format!(
            "Clearbit refused the account ({summary}): the plan may have lapsed or the key been disabled"
        ))),
        _ if rate_limited => retry(format!("Clearbit is rate limiting ({summary})"), true),
        _ => Err(status_failure("Clearbit", status, &summary)),
    }
}

/// What Clearbit said went wrong: a slug such as `invalid_api_key` and a sentence, either of which may
/// be missing. Clearbit sends `{"error": {"type", "message"}}`, sometimes an array of such errors, and
/// sometimes only `{"message"}`; any other body yields nothing rather than an error.
#[derive(Debug, Default, PartialEq)]
struct ErrorBody {
    kind: Option<String>,
    message: Option<String>,
}

impl ErrorBody {
    fn parse(body: &[u8]) -> Self {
        let Ok(body) = serde_json::from_slice::<Value>(body) else {
            return Self::default();
        };
        match body.get("error") {
            Some(error @ Value::Object(_)) => Self::from_object(error),
            Some(Value::Array(errors)) => {
                let errors: Vec<Self> = errors.iter().map(Self::from_object).collect();
                let messages: Vec<&str> =
                    errors.iter().filter_map(|error| error.message.as_deref()).collect();
                Self {
                    kind: errors.iter().find_map(|error| error.kind.clone()),
                    message: (!messages.is_empty()).then(|| messages.join("; ")),
                }
            }
            Some(Value::String(message)) => Self { kind: None, message: non_blank(message) },
            _ => {
                Self { kind: None, message: body.get("message").and_then(Value::as_str).and_then(non_blank) }
            }
        }
    }

    fn from_object(error: &Value) -> Self {
        let field = |name| error.get(name).and_then(Value::as_str).and_then(non_blank);
        Self { kind: field("type"), message: field("message") }
    }

    fn without(self, asked: &str, placeholder: &str) -> Self {
        let blank = |text: String| text.replace(asked, placeholder);
        Self { kind: self.kind.map(blank), message: self.message.map(blank) }
    }

    /// `type: message`, or whichever of the two Clearbit sent.
    fn detail(&self) -> Option<String> {
        match (&self.kind, &self.message) {
            (Some(kind), Some(message)) => Some(format!("{kind}: {message}")),
            (Some(text), None) | (None, Some(text)) => Some(text.clone()),
            (None, None) => None,
        }
    }
}

fn non_blank(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENDPOINT: &str = "https://person.clearbit.com/v2/combined/find";

    fn parse(body: &str) -> ErrorBody {
        ErrorBody::parse(body.as_bytes())
    }

    fn fatal(status: StatusCode, body: &[u8]) -> String {
        match interpret(Api::Combined, status, body, "a@b.io", ENDPOINT) {
            Err(Failure::Final(ConnectorError::Fatal(message))) => message,
            other => panic!("{status} should be fatal, got {other:?}"),
        }
    }

    #[test]
    fn a_201_is_a_found_record() {
        let record = br#"{"person": {"id": "p"}, "company": null}"#;
        assert!(matches!(
            interpret(Api::Combined, StatusCode::CREATED, record, "a@b.io", ENDPOINT),
            Ok(Answer::Record(_))
        ));
    }

    #[test]
    fn only_a_404_unknown_record_is_not_found() {
        let unknown_record = br#"{"error": {"type": "unknown_record", "message": "Unknown email address"}}"#;
        assert_eq!(
            interpret(Api::Combined, StatusCode::NOT_FOUND, unknown_record, "a@b.io", ENDPOINT),
            Ok(Answer::NotFound)
        );
        let unknown_route = br#"{"error": {"type": "unknown_route", "message": "Unknown route"}}"#;
        assert_eq!(
            fatal(StatusCode::NOT_FOUND, unknown_route),
            "Clearbit answered 404 unknown_route for https://person.clearbit.com/v2/combined/find: check base_url"
        );
        assert_eq!(
            fatal(StatusCode::NOT_FOUND, b"<html>Not Found</html>"),
            "Clearbit answered 404 without a Clearbit error body for \
             https://person.clearbit.com/v2/combined/find: check base_url"
        );
    }

    #[test]
    fn account_refusals_are_fatal() {
        for status in [StatusCode::UNAUTHORIZED, StatusCode::PAYMENT_REQUIRED, StatusCode::FORBIDDEN] {
            fatal(status, br#"{"error": {"type": "forbidden", "message": "Plan lapsed"}}"#);
        }
        assert!(
            fatal(StatusCode::FORBIDDEN, b"").contains("the plan may have lapsed or the key been disabled")
        );
    }

    #[test]
    fn parses_the_documented_error_object() {
        let error = parse(r#"{"error": {"type": "invalid_api_key", "message": "Invalid API key."}}"#);
        assert_eq!(error.kind.as_deref(), Some("invalid_api_key"));
        assert_eq!(error.detail().as_deref(), Some("invalid_api_key: Invalid API key."));
    }

    #[test]
    fn parses_an_array_of_errors() {
        let error = parse(
            r#"{"error": [{"type": "email_invalid", "message": "Invalid email."},
                          {"type": "other", "message": "And more."}]}"#,
        );
        assert_eq!(error.detail().as_deref(), Some("email_invalid: Invalid email.; And more."));
    }

    #[test]
    fn parses_a_bare_message() {
        assert_eq!(parse(r#"{"message": "Too busy"}"#).detail().as_deref(), Some("Too busy"));
        assert_eq!(parse(r#"{"error": "Too busy"}"#).detail().as_deref(), Some("Too busy"));
    }

    #[test]
    fn parses_a_type_without_message() {
        assert_eq!(
            parse(r#"{"error": {"type": "unknown_record"}}"#).detail().as_deref(),
            Some("unknown_record")
        );
    }

    #[test]
    fn tolerates_anything_else() {
        for body in ["", "<html>502 Bad Gateway</html>", "[]", "null", r#"{"error": 5}"#, r#"{"error": []}"#]
        {
            assert_eq!(parse(body), ErrorBody::default(), "{body:?}");
        }
    }

    #[test]
    fn blanks_the_email_out_of_what_clearbit_says() {
        let error = parse(r#"{"error": {"type": "email_invalid", "message": "a@b.io is invalid"}}"#)
            .without("a@b.io", "<email>");
        assert_eq!(error.detail().as_deref(), Some("email_invalid: <email> is invalid"));
    }

    #[test]
    fn a_200_needs_a_json_object_with_a_person_or_a_company() {
        let record = br#"{"person": null, "company": {"name": "Uber"}}"#;
        assert!(matches!(
            interpret(Api::Combined, StatusCode::OK, record, "a@b.io", ENDPOINT),
            Ok(Answer::Record(_))
        ));
        for empty in [&br#"{"person": null, "company": null}"#[..], b"{}"] {
            assert_eq!(
                interpret(Api::Combined, StatusCode::OK, empty, "a@b.io", ENDPOINT),
                Ok(Answer::NotFound)
            );
        }
        let not_objects =
            [&br#"{"person": "alex@clearbit.com"}"#[..], br#"{"person": null, "company": [1]}"#];
        for broken in
            [&b"{\"person\": {"[..], b"[1, 2]", b"", b"<html></html>"].into_iter().chain(not_objects)
        {
            let failure = interpret(Api::Combined, StatusCode::OK, broken, "a@b.io", ENDPOINT).unwrap_err();
            assert!(failure.is_retryable(), "{failure:?}");
        }
    }

    #[test]
    fn a_reveal_answer_is_a_record_only_with_a_company() {
        let found =
            br#"{"ip": "203.0.113.9", "domain": "uber.com", "fuzzy": false, "company": {"name": "Uber"}}"#;
        assert!(matches!(
            interpret(Api::Reveal, StatusCode::OK, found, "203.0.113.9", ENDPOINT),
            Ok(Answer::Record(_))
        ));
        let without = br#"{"ip": "203.0.113.9", "domain": null, "fuzzy": true, "company": null}"#;
        assert_eq!(
            interpret(Api::Reveal, StatusCode::OK, without, "203.0.113.9", ENDPOINT),
            Ok(Answer::NotFound)
        );
        let broken = br#"{"ip": "203.0.113.9", "company": "Uber"}"#;
        assert!(
            interpret(Api::Reveal, StatusCode::OK, broken, "203.0.113.9", ENDPOINT)
                .unwrap_err()
                .is_retryable()
        );
    }

    #[test]
    fn a_400_is_retried_only_when_it_is_a_rate_limit() {
        let rate_limit = br#"{"error": {"type": "rate_limit", "message": "Limit is 5 concurrent requests"}}"#;
        let failure =
            interpret(Api::Combined, StatusCode::BAD_REQUEST, rate_limit, "a@b.io", ENDPOINT).unwrap_err();
        assert_eq!(
            failure,
            Failure::Retryable {
                reason:
                    "Clearbit is rate limiting (400 Bad Request, rate_limit: Limit is 5 concurrent requests)"
                        .into(),
                rate_limited: true
            }
        );
        let other = br#"{"error": {"type": "invalid_param", "message": "Bad webhook_url"}}"#;
        assert_eq!(
            interpret(Api::Combined, StatusCode::BAD_REQUEST, other, "a@b.io", ENDPOINT),
            Err(Failure::Final(ConnectorError::Rejected(
                "Clearbit refused the lookup (400 Bad Request, invalid_param: Bad webhook_url)".into()
            )))
        );
    }

    #[test]
    fn a_422_says_why_without_the_status_when_clearbit_says_why() {
        let body = br#"{"error": {"type": "email_invalid", "message": "Invalid email."}}"#;
        assert_eq!(
            interpret(Api::Combined, StatusCode::UNPROCESSABLE_ENTITY, body, "a@b.io", ENDPOINT),
            Ok(Answer::Invalid("email_invalid: Invalid email.".into()))
        );
        assert_eq!(
            interpret(Api::Combined, StatusCode::UNPROCESSABLE_ENTITY, b"", "a@b.io", ENDPOINT),
            Ok(Answer::Invalid("422 Unprocessable Entity".into()))
        );
    }
}
