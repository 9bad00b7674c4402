//! The Clearbit Enrichment API look-alike: combined, person and company lookups with Clearbit's
//! authentication, status codes, error bodies, billing and rate-limit headers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ClearbitRequest, EmulatorConfig, Scripted, generate, lock, samples, status_code};

/// Shared mailboxes Clearbit refuses to look up.
const ROLE_MAILBOXES: &[&str] =
    &["info", "admin", "support", "sales", "noreply", "no-reply", "contact", "hello"];

#[derive(Debug)]
pub(crate) struct Clearbit {
    config: EmulatorConfig,
    book: Mutex<Book>,
}

/// What the server remembers between requests.
#[derive(Debug, Default)]
struct Book {
    scripts: HashMap<String, VecDeque<Scripted>>,
    requests: Vec<ClearbitRequest>,
    /// Clearbit bills an email once per period however often it is asked for.
    billed: HashSet<String>,
    /// The Unix minute `requests_this_minute` counts for.
    minute: u64,
    requests_this_minute: u32,
}

#[derive(Debug, Clone, Copy)]
enum Endpoint {
    Combined,
    Person,
    Company,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Endpoint::Combined => "/v2/combined/find",
            Endpoint::Person => "/v2/people/find",
            Endpoint::Company => "/v2/companies/find",
        }
    }
}

#[derive(Debug, Deserialize)]
struct FindParams {
    email: Option<String>,
    domain: Option<String>,
}

/// An answer before it is dressed as an HTTP response.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn found(record: &Value) -> Reply {
        Reply { status: 200, body: record.to_string() }
    }

    fn error(status: u16, kind: &str, message: &str) -> Reply {
        Reply { status, body: json!({"error": {"type": kind, "message": message}}).to_string() }
    }

    /// The error body Clearbit sends with `status`.
    fn canonical(status: u16) -> Reply {
        let (kind, message) = match status {
            202 => ("queued", "Your request is being processed; ask again in a few seconds"),
            400 => ("bad_request", "The request is malformed"),
            401 => ("invalid_api_key", "Invalid API key"),
            402 => ("over_quota", "You have used up your plan's lookups for this period"),
            404 => ("unknown_record", "Unknown email address"),
            422 => ("email_invalid", "Invalid email address"),
            429 => ("rate_limit", "Rate limit exceeded"),
            500..=599 => ("server_error", "Something went wrong on our side; please try again"),
            _ => ("error", "Unexpected error"),
        };
        Reply::error(status, kind, message)
    }

    fn is_billable(&self) -> bool {
        matches!(self.status, 200 | 201 | 202 | 404)
    }
}

impl Clearbit {
    pub(crate) fn new(config: EmulatorConfig) -> Clearbit {
        Clearbit { config, book: Mutex::default() }
    }

    pub(crate) fn script(&self, email: &str, answers: Vec<Scripted>) {
        lock(&self.book).scripts.entry(email.to_lowercase()).or_default().extend(answers);
    }

    pub(crate) fn requests(&self) -> Vec<ClearbitRequest> {
        lock(&self.book).requests.clone()
    }

    /// The answer to an authorized lookup, with the quota it is subject to: none for scripted answers,
    /// which are given exactly as scripted.
    async fn answer(&self, endpoint: Endpoint, key: &str) -> (Reply, Option<u64>) {
        let scripted = lock(&self.book).scripts.get_mut(key).and_then(VecDeque::pop_front);
        match scripted {
            Some(scripted) => (scripted_reply(endpoint, key, scripted).await, None),
            None => (self.lookup(endpoint, key), self.config.quota),
        }
    }

    /// Clearbit's normal answer.
    fn lookup(&self, endpoint: Endpoint, key: &str) -> Reply {
        match endpoint {
            Endpoint::Company if !is_plausible_domain(key) => {
                Reply::error(422, "domain_invalid", "Invalid domain name")
            }
            Endpoint::Company => match company_at(key) {
                Some(company) => Reply::found(&company),
                None => Reply::error(404, "unknown_record", "Unknown domain"),
            },
            Endpoint::Combined | Endpoint::Person => {
                if let Err(refusal) = check_email(key) {
                    refusal
                } else if !samples::covers(key) && generate::is_unknown(key, self.config.not_found_share) {
                    Reply::canonical(404)
                } else {
                    found(endpoint, key)
                }
            }
        }
    }
}

impl Book {
    /// Bills `email` for a billable answer; once the quota is spent, an email not billed yet gets 402.
    fn bill(&mut self, email: &str, reply: Reply, quota: Option<u64>) -> Reply {
        if self.billed.contains(email) {
            return reply;
        }
        if quota.is_some_and(|quota| self.billed.len() as u64 >= quota) {
            return Reply::canonical(402);
        }
        if reply.is_billable() {
            self.billed.insert(email.to_owned());
        }
        reply
    }

    /// Counts one request in the current minute; returns that count and when the next minute starts.
    fn count_towards_rate_limit(&mut self) -> (u32, u64) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let minute = now / 60;
        if minute != self.minute {
            self.minute = minute;
            self.requests_this_minute = 0;
        }
        self.requests_this_minute += 1;
        (self.requests_this_minute, (minute + 1) * 60)
    }
}

pub(crate) fn router(clearbit: Arc<Clearbit>) -> Router {
    Router::new()
        .route(Endpoint::Combined.path(), lookup_route(Endpoint::Combined))
        .route(Endpoint::Person.path(), lookup_route(Endpoint::Person))
        .route(Endpoint::Company.path(), lookup_route(Endpoint::Company))
        .route("/_emulator/clearbit/requests", get(request_log))
        .with_state(clearbit)
}

fn lookup_route(endpoint: Endpoint) -> MethodRouter<Arc<Clearbit>> {
    get(move |state, query, headers| find(endpoint, state, query, headers))
}

async fn find(
    endpoint: Endpoint,
    State(clearbit): State<Arc<Clearbit>>,
    Query(params): Query<FindParams>,
    headers: HeaderMap,
) -> Response {
    tokio::time::sleep(clearbit.config.latency).await;
    let key = match endpoint {
        Endpoint::Company => params.domain,
        Endpoint::Combined | Endpoint::Person => params.email,
    }
    .unwrap_or_default()
    .to_lowercase();
    let authorization = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    let refusal = authenticate(authorization, &clearbit.config.clearbit_key).err();
    let authorized = refusal.is_none();
    let (reply, quota) = match refusal {
        Some(refusal) => (refusal, None),
        None => clearbit.answer(endpoint, &key).await,
    };

    let mut book = lock(&clearbit.book);
    let reply = book.bill(&key, reply, quota);
    let (used, reset) = book.count_towards_rate_limit();
    book.requests.push(ClearbitRequest {
        path: endpoint.path().to_owned(),
        email: key,
        authorized,
        authorization: authorization.map(str::to_owned),
        status: reply.status,
    });
    drop(book);

    let limit = clearbit.config.rate_limit_per_minute;
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
        (HeaderName::from_static("x-ratelimit-limit"), HeaderValue::from(limit)),
        (HeaderName::from_static("x-ratelimit-remaining"), HeaderValue::from(limit.saturating_sub(used))),
        (HeaderName::from_static("x-ratelimit-reset"), HeaderValue::from(reset)),
    ];
    (status_code(reply.status), headers, reply.body).into_response()
}

async fn request_log(State(clearbit): State<Arc<Clearbit>>) -> Json<Vec<ClearbitRequest>> {
    Json(clearbit.requests())
}

async fn scripted_reply(endpoint: Endpoint, key: &str, mut scripted: Scripted) -> Reply {
    loop {
        return match scripted {
            Scripted::Delay(pause, then) => {
                tokio::time::sleep(pause).await;
                scripted = *then;
                continue;
            }
            Scripted::Status(status) => Reply::canonical(status),
            Scripted::Body(status, body) => Reply { status, body },
            Scripted::RateLimit400 => Reply::error(400, "rate_limit", "Limit is 5 concurrent requests"),
            Scripted::Found => found(endpoint, key),
        };
    }
}

/// The record Clearbit holds for `key`, answered 200.
fn found(endpoint: Endpoint, key: &str) -> Reply {
    match endpoint {
        Endpoint::Combined => {
            let (person, company) = person_and_company(key);
            Reply::found(&json!({"person": person, "company": company}))
        }
        Endpoint::Person => Reply::found(&person_and_company(key).0),
        // Asked for by name, even a mailbox provider's domain has a company behind it.
        Endpoint::Company => Reply::found(&company_at(key).unwrap_or_else(|| generate::company(key))),
    }
}

fn person_and_company(email: &str) -> (Value, Option<Value>) {
    if let Some(sample) = samples::person_and_company(email) {
        return sample;
    }
    let domain = email.rsplit_once('@').map_or("", |(_, domain)| domain);
    let company = company_at(domain);
    (generate::person(email, company.as_ref()), company)
}

/// The employer Clearbit reports for addresses at `domain`: none for mailbox providers.
fn company_at(domain: &str) -> Option<Value> {
    if generate::is_free_mail(domain) {
        return None;
    }
    Some(samples::company(domain).unwrap_or_else(|| generate::company(domain)))
}

/// Refuses emails Clearbit will not look up, with its 422 answer.
fn check_email(email: &str) -> Result<(), Reply> {
    let Some((local_part, domain)) = email.split_once('@') else {
        return Err(Reply::canonical(422));
    };
    if local_part.is_empty() || local_part.contains(char::is_whitespace) || !is_plausible_domain(domain) {
        return Err(Reply::canonical(422));
    }
    if ROLE_MAILBOXES.contains(&local_part) {
        return Err(Reply::error(
            422,
            "email_invalid",
            "Role-based email addresses (such as info@) are not looked up",
        ));
    }
    Ok(())
}

fn is_plausible_domain(domain: &str) -> bool {
    domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !domain.contains(['@', ' ', '\t'])
}

/// Clearbit takes the secret key as a Bearer token, or as the Basic user name with an empty password.
fn authenticate(authorization: Option<&str>, key: &str) -> Result<(), Reply> {
    let Some(authorization) = authorization else {
        return Err(Reply::error(
            401,
            "auth_required",
            "An API key is required: send it as a Bearer token or as the Basic auth user name",
        ));
    };
    let presented = match authorization.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Some(token.trim().to_owned()),
        Some((scheme, credentials)) if scheme.eq_ignore_ascii_case("basic") => {
            decode_base64(credentials.trim())
                .and_then(|decoded| String::from_utf8(decoded).ok())
                .and_then(|pair| pair.strip_suffix(':').map(str::to_owned))
        }
        _ => None,
    };
    if presented.as_deref() == Some(key) {
        Ok(())
    } else {
        Err(Reply::error(401, "invalid_api_key", "Invalid API key provided"))
    }
}

/// Standard base64 with optional padding; `None` on any other character.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut decoded = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut buffered_bits = 0;
    for byte in text.trim_end_matches('=').bytes() {
        let sextet = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(sextet);
        buffered_bits += 6;
        if buffered_bits >= 8 {
            buffered_bits -= 8;
            decoded.push((buffer >> buffered_bits) as u8);
            buffer &= (1 << buffered_bits) - 1;
        }
    }
    Some(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(decode_base64("c2tfa2V5Og==").as_deref(), Some(&b"sk_key:"[..]));
        assert_eq!(decode_base64("c2tfa2V5Og").as_deref(), Some(&b"sk_key:"[..]));
        assert_eq!(decode_base64("YWJj").as_deref(), Some(&b"abc"[..]));
        assert_eq!(decode_base64("not base64!"), None);
    }

    #[test]
    fn emails_are_checked_like_clearbit_does() {
        assert!(check_email("jane.doe@acme.com").is_ok());
        for invalid in
            ["", "jane", "jane@localhost", "@acme.com", "ja ne@acme.com", "jane@acme..com", "info@acme.com"]
        {
            assert_eq!(check_email(invalid).map_err(|reply| reply.status), Err(422), "{invalid}");
        }
    }
}
