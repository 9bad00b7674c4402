//! What one answer of the bulk endpoint means: the status of the call, then each person's own.

use enrich_core::selection::PropertySelection;
use enrich_core::{ConnectorError, Lookup, Record};
use enrich_http::{Failure, status_failure};
use reqwest::StatusCode;
use serde_json::{Map, Value};

use crate::mapping::{map_company, map_person, not_found};

pub(crate) const PROVIDER: &str = "People Data Labs";

/// What one person's lookup came to.
pub(crate) type PersonAnswer = Result<Lookup, ConnectorError>;

/// Reads the answer to a bulk request of `asked` people: one answer per person, in the order asked.
/// `endpoint` (without credentials) is what a wrong-route answer names.
pub(crate) fn interpret(
    status: StatusCode,
    body: &[u8],
    asked: usize,
    endpoint: &str,
    selection: &PropertySelection,
) -> Result<Vec<PersonAnswer>, Failure> {
    if status == StatusCode::OK {
        return parse_items(body, asked, selection);
    }
    // Nobody matched: not billed, and a completed check of each.
    nothing_found(status, body, endpoint)
        .map(|()| (0..asked).map(|_| Ok(Lookup::NotFound(not_found()))).collect())
}

/// Reads the answer to a company enrichment (`GET /v5/company/enrich`): the company's fields are the
/// body itself. A company not found writes nothing but the check date; a website PDL cannot take (400)
/// is invalid.
pub(crate) fn interpret_company(
    status: StatusCode,
    body: &[u8],
    endpoint: &str,
    selection: &PropertySelection,
) -> Result<Lookup, Failure> {
    match status {
        StatusCode::OK => match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(company)) => {
                let likelihood = company.get("likelihood").and_then(Value::as_u64);
                Ok(Lookup::Found(map_company(&company, likelihood, selection)))
            }
            _ => Err(Failure::Retryable {
                reason: format!("{PROVIDER} answered 200 with a body that is not a JSON object"),
                rate_limited: false,
            }),
        },
        StatusCode::BAD_REQUEST => Ok(Lookup::Invalid(ErrorBody::parse(body).summary(status))),
        _ => nothing_found(status, body, endpoint).map(|()| Lookup::NotFound(Record::default())),
    }
}

/// `Ok` for PDL's 404 `not_found`; else the failure a status other than 200 means.
fn nothing_found(status: StatusCode, body: &[u8], endpoint: &str) -> Result<(), Failure> {
    let error = ErrorBody::parse(body);
    if status == StatusCode::NOT_FOUND {
        return match error.kind.as_deref() {
            Some("not_found") => Ok(()),
            _ => Err(Failure::Final(ConnectorError::Fatal(format!(
                "{PROVIDER} answered 404 without its error body for {endpoint}: check base_url"
            )))),
        };
    }
    match refusal(status, &error.summary(status)) {
        Some(refusal) => Err(Failure::Final(refusal)),
        None => Err(status_failure(PROVIDER, status, &error.summary(status))),
    }
}

/// What a status that refuses the key or the account means: the run stops at once.
fn refusal(status: StatusCode, summary: &str) -> Option<ConnectorError> {
    let message = match status.as_u16() {
        401 => {
            format!("{PROVIDER} rejected the API key ({summary}): set api_key to the key of your PDL account")
        }
        402 => format!(
            "{PROVIDER} says the account is out of credits ({summary}): lookups stop until credits are added"
        ),
        403 => format!("{PROVIDER} refused the account ({summary}): the key may have been disabled"),
        _ => return None,
    };
    Some(ConnectorError::Fatal(message))
}

/// The 200 body: an array with one item per person asked, in order, each carrying back its
/// `metadata`; an item's `metadata.index` wins over its place, should the two disagree.
fn parse_items(
    body: &[u8],
    asked: usize,
    selection: &PropertySelection,
) -> Result<Vec<PersonAnswer>, Failure> {
    let broken = |problem: String| Failure::Retryable {
        reason: format!("{PROVIDER} answered 200 with {problem}"),
        rate_limited: false,
    };
    let items = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items,
        Ok(_) => return Err(broken("a body that is not a JSON array".to_owned())),
        Err(error) => return Err(broken(format!("a body that is not valid JSON ({error})"))),
    };
    let mut answers: Vec<Option<PersonAnswer>> = (0..asked).map(|_| None).collect();
    for (place, item) in items.iter().enumerate() {
        let index = item
            .pointer("/metadata/index")
            .and_then(Value::as_str)
            .and_then(|index| index.parse::<usize>().ok())
            .unwrap_or(place);
        if let Some(slot) = answers.get_mut(index) {
            *slot = Some(person(item, selection));
        }
    }
    Ok(answers
        .into_iter()
        .map(|answer| {
            answer.unwrap_or_else(|| {
                Err(ConnectorError::Transient(format!(
                    "{PROVIDER}'s bulk answer had no item for this person"
                )))
            })
        })
        .collect())
}

/// One item of a bulk answer: its own `status` decides.
fn person(item: &Value, selection: &PropertySelection) -> PersonAnswer {
    let status = item.get("status").and_then(Value::as_u64).unwrap_or(0);
    let status = StatusCode::from_u16(u16::try_from(status).unwrap_or(0)).unwrap_or(StatusCode::OK);
    match (status, item.get("data")) {
        (StatusCode::OK, Some(Value::Object(data))) => {
            Ok(Lookup::Found(map_person(data, item.get("likelihood").and_then(Value::as_u64), selection)))
        }
        (StatusCode::OK, _) => {
            Err(ConnectorError::Transient(format!("{PROVIDER} answered 200 for a person without their data")))
        }
        (StatusCode::NOT_FOUND, _) => Ok(Lookup::NotFound(not_found())),
        (status, _) => {
            let summary = ErrorBody::from_item(item).summary(status);
            match refusal(status, &summary) {
                Some(refusal) => Err(refusal),
                None if status == StatusCode::BAD_REQUEST => Ok(Lookup::Invalid(summary)),
                None => Err(match status_failure(PROVIDER, status, &summary) {
                    Failure::Retryable { reason, .. } => ConnectorError::Transient(reason),
                    Failure::Final(error) => error,
                }),
            }
        }
    }
}

/// What PDL said went wrong: `{"error": {"type", "message"}}`, the type a string or a list of them.
#[derive(Debug, Default, PartialEq)]
struct ErrorBody {
    kind: Option<String>,
    message: Option<String>,
}

impl ErrorBody {
    fn parse(body: &[u8]) -> Self {
        serde_json::from_slice::<Value>(body).map(|body| Self::from_item(&body)).unwrap_or_default()
    }

    fn from_item(item: &Value) -> Self {
        let Some(Value::Object(error)) = item.get("error") else { return Self::default() };
        Self {
            kind: kind_of(error),
            message: error.get("message").and_then(Value::as_str).map(str::to_owned),
        }
    }

    /// `status, type: message`, with whichever of the two PDL sent.
    fn summary(&self, status: StatusCode) -> String {
        match (&self.kind, &self.message) {
            (Some(kind), Some(message)) => format!("{status}, {kind}: {message}"),
            (Some(text), None) | (None, Some(text)) => format!("{status}, {text}"),
            (None, None) => status.to_string(),
        }
    }
}

fn kind_of(error: &Map<String, Value>) -> Option<String> {
    match error.get("type")? {
        Value::String(kind) => Some(kind.clone()),
        Value::Array(kinds) => {
            let kinds: Vec<&str> = kinds.iter().filter_map(Value::as_str).collect();
            (!kinds.is_empty()).then(|| kinds.join(", "))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::catalogue::every_field;

    const ENDPOINT: &str = "https://api.peopledatalabs.com/v5/person/bulk";

    fn answers(body: &Value, asked: usize) -> Vec<PersonAnswer> {
        interpret(StatusCode::OK, body.to_string().as_bytes(), asked, ENDPOINT, &every_field()).unwrap()
    }

    #[test]
    fn items_are_matched_by_metadata_and_then_by_order() {
        let body = json!([
            {"status": 404, "error": {"type": "not_found", "message": "No records were found matching your request"}, "metadata": {"index": "1"}},
            {"status": 200, "likelihood": 9, "data": {"full_name": "Ada"}, "metadata": {"index": "0"}},
            {"status": 400, "error": {"type": ["invalid_request_error"], "message": "Does not meet minimum combination of required data points."}},
        ]);
        let answers = answers(&body, 4);
        assert!(
            matches!(&answers[0], Ok(Lookup::Found(record)) if record.properties.contains_key("Person Full Name"))
        );
        assert!(matches!(&answers[1], Ok(Lookup::NotFound(_))));
        assert!(
            matches!(&answers[2], Ok(Lookup::Invalid(reason)) if reason.contains("invalid_request_error"))
        );
        assert!(matches!(&answers[3], Err(ConnectorError::Transient(_))), "no item for the fourth");
    }

    #[test]
    fn a_persons_own_402_or_429_counts_for_that_person() {
        let body =
            json!([{"status": 402, "error": {"type": "payment_required"}}, {"status": 429}, {"status": 503}]);
        let answers = answers(&body, 3);
        assert!(
            matches!(&answers[0], Err(ConnectorError::Fatal(message)) if message.contains("out of credits"))
        );
        assert!(matches!(&answers[1], Err(ConnectorError::Transient(_))));
        assert!(matches!(&answers[2], Err(ConnectorError::Transient(_))));
    }

    #[test]
    fn the_call_status_decides_first() {
        let call = |status: u16, body: &str| {
            interpret(StatusCode::from_u16(status).unwrap(), body.as_bytes(), 2, ENDPOINT, &every_field())
        };
        let out = r#"{"status": 402, "error": {"type": "payment_required", "message": "You have hit your account maximum (all matches used)"}}"#;
        assert!(
            matches!(call(402, out), Err(Failure::Final(ConnectorError::Fatal(message))) if message.contains("out of credits"))
        );
        assert!(
            matches!(call(401, "{}"), Err(Failure::Final(ConnectorError::Fatal(message))) if message.contains("API key"))
        );
        assert!(call(429, "{}").unwrap_err().is_rate_limited());
        assert!(call(502, "<html>").unwrap_err().is_retryable());
        let nobody = r#"{"status": 404, "error": {"type": "not_found", "message": "No records"}}"#;
        assert!(matches!(
            &call(404, nobody).unwrap()[..],
            [Ok(Lookup::NotFound(_)), Ok(Lookup::NotFound(_))]
        ));
        assert!(
            matches!(call(404, "<html>"), Err(Failure::Final(ConnectorError::Fatal(message))) if message.contains("base_url"))
        );
        assert!(call(200, "{}").unwrap_err().is_retryable(), "an object is not the bulk answer");
    }
}
