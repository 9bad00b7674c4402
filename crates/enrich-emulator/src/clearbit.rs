//! The Clearbit Enrichment API look-alike: combined, person and company lookups, and Reveal's IP
//! lookups, with Clearbit's authentication, status codes, error bodies, billing, rate limits and
//! injected faults.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::echo;
use crate::faults::{Cut, Fault, FaultDraw, broken_body, first_half};
use crate::generate::Draw;
use crate::{ClearbitRequest, EmulatorConfig, FaultCounts, Scripted, generate, lock, samples, status_code};

/// The newest API version whose changes the emulator knows: answers in it have every field.
pub(crate) const LATEST_API_VERSION: &str = "2022-12-15";
/// Versions before this one get an `X-API-Warn` header (`ultimate_parent` is their last snake_case field).
const DEPRECATED_BEFORE: &str = "2019-12-19";

/// Shared mailboxes Clearbit refuses to look up.
const ROLE_MAILBOXES: &[&str] =
    &["info", "admin", "support", "sales", "noreply", "no-reply", "contact", "hello"];

#[derive(Debug)]
pub(crate) struct Clearbit {
    config: EmulatorConfig,
    book: Mutex<Book>,
}

/// What the server remembers between requests.
#[derive(Debug)]
struct Book {
    scripts: HashMap<String, VecDeque<Scripted>>,
    requests: Vec<ClearbitRequest>,
    /// Requests received, counted on arrival (the log above is written on answering).
    received: u64,
    /// Clearbit bills an email once per period however often it is asked for.
    billed: HashSet<String>,
    /// Emails (or domains) asked for at least once: only a first ask can be queued.
    asked: HashSet<String>,
    /// People who changed jobs: email → the domain of their new employer.
    employers: HashMap<String, String>,
    /// Reveal's knowledge: IP address → the domain of the company whose network it is. Other addresses
    /// are answered 404 `unknown_record`.
    networks: HashMap<String, String>,
    /// People who opted out, or whose record was deleted: answered 404 `unknown_record`.
    opted_out: HashSet<String>,
    /// The account's quota of billed emails, `config.quota` until a test changes it.
    quota: Option<u64>,
    /// The plan lapsed or the key was disabled: every lookup with the key is answered 403.
    lapsed: bool,
    /// The Unix minute `requests_this_minute` counts for.
    minute: u64,
    /// Lookups admitted in `minute`.
    requests_this_minute: u32,
    /// Lookups admitted and not answered yet.
    in_flight: usize,
    faults: FaultDraw,
    /// Its own stream, so the faults a seed gives do not depend on whether jitter is configured.
    latency_jitter: Draw,
    rate_limited: u64,
    concurrency_limited: u64,
}

/// What the rate-limit headers of one answer say.
#[derive(Debug, Clone, Copy)]
struct RateLimitStatus {
    limit: u32,
    remaining: u32,
    /// Unix seconds when the next window starts.
    reset: u64,
}

/// An admitted lookup, counted as being answered until dropped (also when the client goes away).
#[derive(Debug)]
struct InFlight<'a>(&'a Clearbit);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        lock(&self.0.book).in_flight -= 1;
    }
}

#[derive(Debug, Clone, Copy)]
enum Endpoint {
    Combined,
    Person,
    Company,
    Reveal,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Endpoint::Combined => "/v2/combined/find",
            Endpoint::Person => "/v2/people/find",
            Endpoint::Company => "/v2/companies/find",
            Endpoint::Reveal => "/v1/companies/find",
        }
    }
}

#[derive(Debug, Deserialize)]
struct FindParams {
    email: Option<String>,
    domain: Option<String>,
    ip: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    ip_address: Option<String>,
}

impl FindParams {
    /// The match-rate hints sent, by name.
    fn hints(&self) -> Vec<(String, String)> {
        [
            ("given_name", &self.given_name),
            ("family_name", &self.family_name),
            ("ip_address", &self.ip_address),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name.to_owned(), value.clone()?)))
        .collect()
    }
}

/// An answer before it is dressed as an HTTP response.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: String,
    /// Set when a `dropped` fault cuts the connection instead of delivering the answer.
    cut: Option<Cut>,
    /// Where a redirect points.
    location: Option<String>,
}

impl Reply {
    fn new(status: u16, body: String) -> Reply {
        Reply { status, body, cut: None, location: None }
    }

    fn found(record: &Value) -> Reply {
        Reply::new(200, record.to_string())
    }

    fn error(status: u16, kind: &str, message: &str) -> Reply {
        Reply::new(status, json!({"error": {"type": kind, "message": message}}).to_string())
    }

    /// The error body Clearbit sends with `status`.
    fn canonical(status: u16) -> Reply {
        let (kind, message) = match status {
            202 => ("queued", "Your request is being processed; ask again in a few seconds"),
            400 => ("bad_request", "The request is malformed"),
            401 => ("invalid_api_key", "Invalid API key"),
            402 => ("over_quota", "You have used up your plan's lookups for this period"),
            403 => ("forbidden", "Your plan does not include this API, or the key was disabled"),
            404 => ("unknown_record", "Unknown email address"),
            422 => ("email_invalid", "Invalid email address"),
            429 => ("rate_limit", "Rate limit exceeded"),
            500..=599 => ("server_error", "Something went wrong on our side; please try again"),
            _ => ("error", "Unexpected error"),
        };
        Reply::error(status, kind, message)
    }

    fn is_billable(&self) -> bool {
        self.cut.is_none() && matches!(self.status, 200 | 201 | 202 | 404)
    }

    /// The status the request log shows.
    fn logged_status(&self) -> u16 {
        if self.cut.is_some() { ClearbitRequest::DROPPED } else { self.status }
    }

    fn into_response(self, rate_limit: RateLimitStatus, api_version: &str) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(HeaderName::from_static("x-ratelimit-limit"), HeaderValue::from(rate_limit.limit));
        headers.insert(
            HeaderName::from_static("x-ratelimit-remaining"),
            HeaderValue::from(rate_limit.remaining),
        );
        headers.insert(HeaderName::from_static("x-ratelimit-reset"), HeaderValue::from(rate_limit.reset));
        if let Ok(version) = HeaderValue::from_str(api_version) {
            headers.insert(HeaderName::from_static("x-api-version"), version);
        }
        if api_version < DEPRECATED_BEFORE
            && let Ok(warning) = HeaderValue::from_str(&format!(
                "API version {api_version} is deprecated: send API-Version: {LATEST_API_VERSION}"
            ))
        {
            headers.insert(HeaderName::from_static("x-api-warn"), warning);
        }
        if let Some(location) = self.location.and_then(|location| HeaderValue::from_str(&location).ok()) {
            headers.insert(header::LOCATION, location);
        }
        let body = match self.cut {
            Some(cut) => broken_body(cut, &self.body),
            None => Body::from(self.body),
        };
        (status_code(self.status), headers, body).into_response()
    }
}

impl Clearbit {
    pub(crate) fn new(config: EmulatorConfig) -> Clearbit {
        let book = Book {
            scripts: HashMap::new(),
            requests: Vec::new(),
            received: 0,
            billed: HashSet::new(),
            asked: HashSet::new(),
            employers: HashMap::new(),
            networks: HashMap::new(),
            opted_out: HashSet::new(),
            quota: config.quota,
            lapsed: false,
            minute: 0,
            requests_this_minute: 0,
            in_flight: 0,
            faults: FaultDraw::new(config.clearbit_faults, config.seed, "clearbit"),
            latency_jitter: Draw::seeded(&format!("clearbit latency:{}", config.seed)),
            rate_limited: 0,
            concurrency_limited: 0,
        };
        Clearbit { config, book: Mutex::new(book) }
    }

    pub(crate) fn script(&self, email: &str, answers: Vec<Scripted>) {
        lock(&self.book).scripts.entry(email.to_lowercase()).or_default().extend(answers);
    }

    pub(crate) fn change_employer(&self, email: &str, domain: &str) {
        lock(&self.book).employers.insert(email.to_lowercase(), domain.to_lowercase());
    }

    pub(crate) fn assign_network(&self, ip: &str, domain: &str) {
        lock(&self.book).networks.insert(ip.to_lowercase(), domain.to_lowercase());
    }

    pub(crate) fn opt_out(&self, email: &str) {
        lock(&self.book).opted_out.insert(email.to_lowercase());
    }

    pub(crate) fn set_quota(&self, quota: Option<u64>) {
        lock(&self.book).quota = quota;
    }

    pub(crate) fn set_lapsed(&self, lapsed: bool) {
        lock(&self.book).lapsed = lapsed;
    }

    /// The domain of the employer `email`'s person moved to, if they changed jobs.
    fn new_employer(&self, email: &str) -> Option<String> {
        lock(&self.book).employers.get(email).cloned()
    }

    pub(crate) fn requests(&self) -> Vec<ClearbitRequest> {
        lock(&self.book).requests.clone()
    }

    pub(crate) fn received(&self) -> u64 {
        lock(&self.book).received
    }

    /// Clearbit's part of the counts; Heap's are left at zero.
    pub(crate) fn fault_counts(&self) -> FaultCounts {
        let book = lock(&self.book);
        FaultCounts {
            clearbit: book.faults.counts(),
            rate_limited: book.rate_limited,
            concurrency_limited: book.concurrency_limited,
            ..FaultCounts::default()
        }
    }

    /// Lets a lookup in, or refuses it as Clearbit does when too many are being answered or, if enforced,
    /// the window's allowance is spent. Refused lookups count towards neither limit.
    fn admit(&self) -> (RateLimitStatus, Result<InFlight<'_>, Reply>) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let limit = self.config.rate_limit_per_minute;
        let mut book = lock(&self.book);
        if now / 60 != book.minute {
            book.minute = now / 60;
            book.requests_this_minute = 0;
        }
        let admission =
            if let Some(max) = self.config.max_concurrent_requests.filter(|&max| book.in_flight >= max) {
                book.concurrency_limited += 1;
                Err(Reply::error(400, "rate_limit", &format!("Limit is {max} concurrent requests")))
            } else if self.config.enforce_rate_limit && book.requests_this_minute >= limit {
                book.rate_limited += 1;
                Err(Reply::canonical(429))
            } else {
                book.requests_this_minute += 1;
                book.in_flight += 1;
                Ok(InFlight(self))
            };
        let remaining = limit.saturating_sub(book.requests_this_minute);
        (RateLimitStatus { limit, remaining, reset: (book.minute + 1) * 60 }, admission)
    }

    /// The configured latency plus this lookup's jitter.
    fn latency(&self) -> Duration {
        let jitter_share = lock(&self.book).latency_jitter.unit();
        self.config.latency + self.config.latency_jitter.mul_f64(jitter_share)
    }

    /// The answer to an authorized lookup, with the quota it is subject to: none for scripted answers and
    /// faults, which are given exactly as scripted or drawn.
    async fn answer(
        &self,
        endpoint: Endpoint,
        key: &str,
        authorization: Option<&str>,
    ) -> (Reply, Option<u64>) {
        let (scripted, fault) = {
            let mut book = lock(&self.book);
            let first_ask = book.asked.insert(key.to_owned());
            let scripted = book.scripts.get_mut(key).and_then(VecDeque::pop_front);
            // Scripted answers win, and draw no fault so they leave the seeded sequence alone.
            let fault = if scripted.is_none() { book.faults.next(first_ask) } else { None };
            (scripted, fault)
        };
        if let Some(scripted) = scripted {
            return (self.scripted_reply(endpoint, key, authorization, scripted).await, None);
        }
        let reply = match fault {
            None => return (self.lookup(endpoint, key), lock(&self.book).quota),
            Some(Fault::Slow(delay)) => {
                tokio::time::sleep(delay).await;
                return (self.lookup(endpoint, key), lock(&self.book).quota);
            }
            Some(Fault::TooManyRequests) => Reply::canonical(429),
            Some(Fault::ServerError(status)) => Reply::canonical(status),
            Some(Fault::Queued) => Reply::canonical(202),
            Some(Fault::Malformed) => Reply::new(200, first_half(&self.found(endpoint, key).body)),
            Some(Fault::Dropped(cut)) => Reply { cut: Some(cut), ..self.found(endpoint, key) },
        };
        (reply, None)
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
            Endpoint::Reveal if key.parse::<IpAddr>().is_err() => {
                Reply::error(422, "invalid_ip", "Invalid IP address")
            }
            Endpoint::Reveal if !lock(&self.book).networks.contains_key(key) => {
                Reply::error(404, "unknown_record", "Unknown IP address")
            }
            Endpoint::Reveal => self.found(endpoint, key),
            Endpoint::Combined | Endpoint::Person => {
                if let Err(refusal) = check_email(key) {
                    refusal
                } else if lock(&self.book).opted_out.contains(key)
                    || (!samples::covers(key) && generate::is_unknown(key, self.config.not_found_share))
                {
                    Reply::canonical(404)
                } else {
                    self.found(endpoint, key)
                }
            }
        }
    }

    /// The record Clearbit holds for `key`, answered 200.
    fn found(&self, endpoint: Endpoint, key: &str) -> Reply {
        let person_and_company = || match self.new_employer(key) {
            // A job change: the person as known at the new employer.
            Some(domain) => {
                let company = company_at(&domain);
                (generate::person(key, company.as_ref()), company)
            }
            None => person_and_company(key),
        };
        match endpoint {
            Endpoint::Combined => {
                let (person, company) = person_and_company();
                Reply::found(&json!({"person": person, "company": company}))
            }
            Endpoint::Person => Reply::found(&person_and_company().0),
            // Asked for by name, even a mailbox provider's domain has a company behind it.
            Endpoint::Company => Reply::found(&company_at(key).unwrap_or_else(|| generate::company(key))),
            Endpoint::Reveal => Reply::found(&self.revealed(key)),
        }
    }

    /// Reveal's answer for an address: the company whose network it is, or none (`company: null`).
    fn revealed(&self, ip: &str) -> Value {
        let domain = lock(&self.book).networks.get(ip).cloned();
        let company = domain.as_deref().and_then(company_at);
        json!({
            "ip": ip,
            "domain": domain,
            "fuzzy": company.is_none(),
            "type": if company.is_some() { "company" } else { "isp" },
            "confidenceScore": if company.is_some() { "very_high" } else { "low" },
            "company": company,
        })
    }

    async fn scripted_reply(
        &self,
        endpoint: Endpoint,
        key: &str,
        authorization: Option<&str>,
        mut scripted: Scripted,
    ) -> Reply {
        loop {
            return match scripted {
                Scripted::Delay(pause, then) => {
                    tokio::time::sleep(pause).await;
                    scripted = *then;
                    continue;
                }
                Scripted::Status(status) => Reply::canonical(status),
                Scripted::Body(status, body) => Reply::new(status, body),
                Scripted::RateLimit400 => Reply::error(400, "rate_limit", "Limit is 5 concurrent requests"),
                Scripted::Found => self.found(endpoint, key),
                Scripted::Created => Reply { status: 201, ..self.found(endpoint, key) },
                Scripted::Redirect(status, location) => {
                    Reply { location: Some(location), ..Reply::new(status, String::new()) }
                }
                Scripted::Echo(status) => Reply::error(status, "error", &echo::message(authorization, key)),
            };
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
}

pub(crate) fn router(clearbit: Arc<Clearbit>) -> Router {
    Router::new()
        .route(Endpoint::Combined.path(), lookup_route(Endpoint::Combined))
        .route(Endpoint::Person.path(), lookup_route(Endpoint::Person))
        .route(Endpoint::Company.path(), lookup_route(Endpoint::Company))
        .route(Endpoint::Reveal.path(), lookup_route(Endpoint::Reveal))
        .route("/_emulator/clearbit/requests", get(request_log))
        .fallback(unknown_route)
        .with_state(clearbit)
}

/// What Clearbit answers for a path it does not serve: a wrong `base_url` or a proxy's path. Logged
/// like a lookup (with the path asked), so tests can count what a misconfigured client sends.
async fn unknown_route(
    State(clearbit): State<Arc<Clearbit>>,
    uri: Uri,
    Query(params): Query<FindParams>,
    headers: HeaderMap,
) -> Response {
    let reply = Reply::error(404, "unknown_route", "Unknown route; see https://dashboard.clearbit.com/docs");
    let authorization = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    let request = ClearbitRequest {
        path: uri.path().to_owned(),
        email: params
            .email
            .clone()
            .or(params.domain.clone())
            .or(params.ip.clone())
            .unwrap_or_default()
            .to_lowercase(),
        authorized: authenticate(authorization, &clearbit.config.clearbit_key).is_ok(),
        authorization: authorization.map(str::to_owned),
        api_version: headers.get("api-version").and_then(|value| value.to_str().ok()).map(str::to_owned),
        hints: params.hints(),
        status: reply.status,
    };
    lock(&clearbit.book).requests.push(request);
    (status_code(reply.status), [(header::CONTENT_TYPE, "application/json")], reply.body).into_response()
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
    lock(&clearbit.book).received += 1;
    let hints = params.hints();
    let key = match endpoint {
        Endpoint::Company => params.domain,
        Endpoint::Reveal => params.ip,
        Endpoint::Combined | Endpoint::Person => params.email,
    }
    .unwrap_or_default()
    .to_lowercase();
    let authorization = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    let asked_version = headers.get("api-version").and_then(|value| value.to_str().ok()).map(str::to_owned);
    let api_version =
        asked_version.clone().unwrap_or_else(|| clearbit.config.clearbit_account_api_version.clone());
    let refusal = authenticate(authorization, &clearbit.config.clearbit_key).err();
    let authorized = refusal.is_none();
    let (rate_limit, admission) = clearbit.admit();
    let (reply, quota) = match admission {
        // Refused at the door, without the lookup time.
        Err(limited) => (limited, None),
        Ok(_in_flight) => {
            tokio::time::sleep(clearbit.latency()).await;
            match refusal {
                Some(refusal) => (refusal, None),
                None if lock(&clearbit.book).lapsed => (Reply::canonical(403), None),
                None => clearbit.answer(endpoint, &key, authorization).await,
            }
        }
    };

    let mut book = lock(&clearbit.book);
    let reply = book.bill(&key, reply, quota);
    book.requests.push(ClearbitRequest {
        path: endpoint.path().to_owned(),
        email: key,
        authorized,
        authorization: authorization.map(str::to_owned),
        api_version: asked_version,
        hints,
        status: reply.logged_status(),
    });
    drop(book);
    in_api_version(endpoint, reply, &api_version).into_response(rate_limit, &api_version)
}

/// A found record in the shape `version` gives it: older versions lack the fields added since, and
/// spell `ultimateParent` in snake case.
fn in_api_version(endpoint: Endpoint, reply: Reply, version: &str) -> Reply {
    if version >= LATEST_API_VERSION || !matches!(reply.status, 200 | 201) || reply.cut.is_some() {
        return reply;
    }
    let Ok(mut body) = serde_json::from_str::<Value>(&reply.body) else { return reply };
    match endpoint {
        Endpoint::Combined => {
            if let Some(person) = body.get_mut("person") {
                person_in_api_version(person, version);
            }
            if let Some(company) = body.get_mut("company") {
                company_in_api_version(company, version);
            }
        }
        Endpoint::Person => person_in_api_version(&mut body, version),
        Endpoint::Company => company_in_api_version(&mut body, version),
        Endpoint::Reveal => {
            if let Some(company) = body.get_mut("company") {
                company_in_api_version(company, version);
            }
        }
    }
    Reply { body: body.to_string(), ..reply }
}

fn person_in_api_version(person: &mut Value, version: &str) {
    if version < "2018-11-16"
        && let Some(Value::Object(employment)) = person.get_mut("employment")
    {
        employment.remove("subRole");
    }
}

fn company_in_api_version(company: &mut Value, version: &str) {
    let Value::Object(company) = company else { return };
    if version < "2022-12-15"
        && let Some(Value::Object(metrics)) = company.get_mut("metrics")
    {
        metrics.remove("trafficRank");
    }
    if version < DEPRECATED_BEFORE
        && let Some(parent) = company.remove("ultimateParent")
    {
        company.insert("ultimate_parent".to_owned(), parent);
    }
}

async fn request_log(State(clearbit): State<Arc<Clearbit>>) -> Json<Vec<ClearbitRequest>> {
    Json(clearbit.requests())
}

pub(crate) fn person_and_company(email: &str) -> (Value, Option<Value>) {
    if let Some(sample) = samples::person_and_company(email) {
        return sample;
    }
    let domain = email.rsplit_once('@').map_or("", |(_, domain)| domain);
    let company = company_at(domain);
    (generate::person(email, company.as_ref()), company)
}

/// The employer Clearbit reports for addresses at `domain`: none for mailbox providers.
pub(crate) fn company_at(domain: &str) -> Option<Value> {
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
    fn latency_jitter_is_drawn_up_to_its_bound_from_the_seed() {
        let latencies = |seed| {
            let clearbit = Clearbit::new(EmulatorConfig {
                latency: Duration::from_millis(100),
                latency_jitter: Duration::from_millis(50),
                seed,
                ..EmulatorConfig::default()
            });
            (0..200).map(|_| clearbit.latency()).collect::<Vec<_>>()
        };
        let drawn = latencies(1);
        let (least, most) = (drawn.iter().min().unwrap(), drawn.iter().max().unwrap());
        assert!(*least >= Duration::from_millis(100) && *least < Duration::from_millis(105), "{least:?}");
        assert!(*most <= Duration::from_millis(150) && *most > Duration::from_millis(145), "{most:?}");
        assert_eq!(drawn, latencies(1));
        assert_ne!(drawn, latencies(2));
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
