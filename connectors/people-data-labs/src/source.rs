//! The People Data Labs source: up to 100 emails a bulk request (or, looking companies up by domain,
//! one company enrichment per work domain), within PDL's per-minute limit and the window its headers
//! announce, retried with backoff; a refused key or an account out of credits stops every later request.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::DateTime;
use enrich_core::free_email::is_free_mail_domain;
use enrich_core::selection::PropertySelection;
use enrich_core::{
    CancellationToken, ConnectorError, KeyKind, Lookup, LookupHints, LookupKey, PropertyInfo, Segment,
    SharedBudget, Source,
};
use enrich_http::{Failure, Limits, RetryPolicy, Window};
use reqwest::header::HeaderMap;
use reqwest::{Client, RequestBuilder, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::answer::{PROVIDER, PersonAnswer, interpret, interpret_company};
use crate::catalogue::{DATE_LAST_CHECKED, LIKELIHOOD, MATCH};
use crate::config::{LookupMode, PeopleDataLabsConfig};

/// The address `check()` looks up: PDL's own co-founder, whom its docs use as the example record.
const CHECK_EMAIL: &str = "sean@peopledatalabs.com";

/// The domain `check()` looks up when looking companies up: PDL's own.
const CHECK_DOMAIN: &str = "peopledatalabs.com";

/// PDL keeps bulk answers below about 1 MB; a larger one is refused unread.
const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// People Data Labs as a [`Source`]. Its `Debug` shows no key.
#[derive(Debug)]
pub struct PeopleDataLabsSource {
    client: Client,
    /// People by email, or companies by the email's domain.
    key_kind: KeyKind,
    /// `…/v5/person/bulk`, or `…/v5/company/enrich`.
    endpoint: Url,
    /// The endpoint as messages name it: without credentials a proxy URL may carry.
    endpoint_shown: String,
    api_key: SecretString,
    /// Concurrency, pace, PDL's window, and the first refusal of the key or the account.
    limits: Limits,
    requests_per_minute: NonZeroU32,
    retries: RetryPolicy,
    timeout: Duration,
    max_keys_per_request: usize,
    max_concurrency: usize,
    min_likelihood: u8,
    titlecase: bool,
    /// Which fields are written, under which names.
    selection: PropertySelection,
    /// `x-totallimit-remaining` of the latest answer; -1 until one said.
    credits_left: AtomicI64,
}

impl PeopleDataLabsSource {
    /// Builds the source from a config, refusing one that [`PeopleDataLabsConfig::validate`] finds
    /// fault with.
    pub fn new(config: &PeopleDataLabsConfig) -> Result<Self, ConnectorError> {
        enrich_core::ensure_valid(PROVIDER, &config.validate())?;
        let selection = config.selection().map_err(|problems| {
            enrich_core::ensure_valid(PROVIDER, &problems).expect_err("a config with problems is refused")
        })?;
        let endpoint = config
            .endpoint()
            .map_err(|error| ConnectorError::Fatal(format!("invalid {PROVIDER} base_url: {error}")))?;
        let at_least_one = |number: u32| NonZeroU32::new(number).unwrap_or(NonZeroU32::MIN);
        let limits = Limits::new(
            PROVIDER,
            at_least_one(config.requests_per_minute),
            at_least_one(u32::try_from(config.max_concurrency).unwrap_or(u32::MAX)),
        );
        let (key_kind, max_keys_per_request) = match config.lookup {
            LookupMode::Person => (KeyKind::Email, config.max_keys_per_request),
            LookupMode::CompanyByDomain => (KeyKind::Domain, 1),
        };
        Ok(Self {
            client: enrich_http::client(config.timeout)?,
            key_kind,
            endpoint_shown: enrich_http::shown_url(&endpoint),
            endpoint,
            api_key: config.api_key.clone(),
            limits,
            requests_per_minute: at_least_one(config.requests_per_minute),
            retries: RetryPolicy::new(config.retry_delay, config.max_retries, config.max_retry_time),
            timeout: config.timeout,
            max_keys_per_request,
            max_concurrency: config.max_concurrency,
            min_likelihood: config.min_likelihood,
            titlecase: config.titlecase,
            selection,
            credits_left: AtomicI64::new(-1),
        })
    }

    /// Books every request in a budget shared with the other workers that use this key too, so that
    /// together they keep to `requests_per_minute`.
    pub fn with_shared_budget(mut self, budget: Arc<dyn SharedBudget>) -> Self {
        let api_key = self.api_key.expose_secret();
        self.limits.share(budget, "people_data_labs", api_key, self.requests_per_minute);
        self
    }

    /// The bulk body: each person by email (and name, when known), numbered in `metadata` so that
    /// answers are matched to them whatever their order.
    fn bulk_body(&self, people: &[(&str, &LookupHints)]) -> Value {
        let requests: Vec<Value> = people
            .iter()
            .enumerate()
            .map(|(index, (email, hints))| {
                let mut params = json!({ "email": [email] });
                if let (Some(first), Some(last)) = (&hints.given_name, &hints.family_name) {
                    params["first_name"] = json!(first);
                    params["last_name"] = json!(last);
                }
                json!({ "params": params, "metadata": { "index": index.to_string() } })
            })
            .collect();
        json!({ "requests": requests, "min_likelihood": self.min_likelihood, "titlecase": self.titlecase })
    }

    /// Sends one bulk request and reads its answer.
    async fn request(&self, body: &Value, asked: usize) -> Result<Vec<PersonAnswer>, Failure> {
        let (status, body) = self.exchange(self.client.post(self.endpoint.clone()).json(body)).await?;
        interpret(status, &body, asked, &self.endpoint_shown, &self.selection)
    }

    /// Sends one company enrichment and reads its answer.
    async fn request_company(&self, domain: &str) -> Result<Lookup, Failure> {
        let query = [
            ("website", domain.to_owned()),
            ("min_likelihood", self.min_likelihood.to_string()),
            ("titlecase", self.titlecase.to_string()),
        ];
        let (status, body) = self.exchange(self.client.get(self.endpoint.clone()).query(&query)).await?;
        interpret_company(status, &body, &self.endpoint_shown, &self.selection)
    }

    /// Sends a request with the key, heeds the limits and credits its answer announces, and reads it.
    async fn exchange(&self, request: RequestBuilder) -> Result<(StatusCode, Vec<u8>), Failure> {
        let response = request
            .header("X-Api-Key", self.api_key.expose_secret())
            .send()
            .await
            .map_err(|error| enrich_http::transport_failure(PROVIDER, self.timeout, error))?;
        let status = response.status();
        self.limits.observe(status, rate_limit_window(response.headers()));
        if let Some(credits) = number(response.headers(), "x-totallimit-remaining") {
            self.credits_left.store(i64::try_from(credits).unwrap_or(i64::MAX), Ordering::Relaxed);
        }
        if status.is_redirection() {
            let redirect =
                enrich_http::redirected(PROVIDER, status, response.headers(), &self.endpoint_shown);
            return Err(Failure::Final(redirect));
        }
        let body = enrich_http::read_body(PROVIDER, self.timeout, response, MAX_ANSWER_BYTES).await?;
        Ok((status, body.to_vec()))
    }

    /// One company enrichment, retried as the policy says; `None` when `stop` came before an answer.
    async fn lookup_company(
        &self,
        key: &LookupKey,
        stop: &CancellationToken,
    ) -> Option<Result<Lookup, ConnectorError>> {
        let LookupKey::Domain(domain) = key else {
            return Some(Err(ConnectorError::Fatal(format!("{PROVIDER} looks companies up by domain only"))));
        };
        let attempt = || self.limits.send(stop, self.request_company(domain));
        self.retries.run(PROVIDER, &self.limits, stop, attempt).await.transpose()
    }

    /// One bulk request, retried as the policy says; `None` when `stop` came before an answer.
    async fn ask(
        &self,
        people: &[(&str, &LookupHints)],
        stop: &CancellationToken,
    ) -> Result<Option<Vec<PersonAnswer>>, ConnectorError> {
        let body = self.bulk_body(people);
        let attempt = || self.limits.send(stop, self.request(&body, people.len()));
        self.retries.run(PROVIDER, &self.limits, stop, attempt).await
    }
}

/// What PDL's `x-ratelimit-*` headers say of the current minute: `x-ratelimit-remaining` is a dict
/// such as `{'minute': 99, 'day': None}`, `x-ratelimit-reset` a UTC time (or Unix seconds).
fn rate_limit_window(headers: &HeaderMap) -> Option<Window> {
    let reset = headers.get("x-ratelimit-reset")?.to_str().ok()?.trim().trim_matches('"');
    let reset = match reset.parse::<u64>() {
        Ok(seconds) => seconds,
        Err(_) => u64::try_from(DateTime::parse_from_rfc3339(reset).ok()?.timestamp()).ok()?,
    };
    let remaining =
        headers.get("x-ratelimit-remaining").and_then(|value| value.to_str().ok()).and_then(minute);
    Some(Window { reset, remaining })
}

/// The `minute` of a Python- or JSON-style dict, or a bare number.
fn minute(text: &str) -> Option<u64> {
    if let Ok(number) = text.trim().parse() {
        return Some(number);
    }
    let json: Value = serde_json::from_str(&text.replace('\'', "\"").replace("None", "null")).ok()?;
    json.get("minute")?.as_u64()
}

fn number(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

#[async_trait]
impl Source for PeopleDataLabsSource {
    fn kind(&self) -> &'static str {
        "people_data_labs"
    }

    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn key_kind(&self) -> KeyKind {
        self.key_kind
    }

    fn checked_property(&self) -> &str {
        DATE_LAST_CHECKED
    }

    /// The catalogue; looking companies up, only the company's fields and what says when and how surely.
    fn properties(&self) -> Vec<PropertyInfo> {
        let mut properties = self.selection.properties();
        if self.key_kind == KeyKind::Domain {
            properties.retain(|property| match &property.path {
                Some(field) => field.starts_with("job_company_"),
                None => [DATE_LAST_CHECKED, LIKELIHOOD].contains(&property.name.as_str()),
            });
        }
        properties
    }

    /// The match rate, then the breakdowns by field, under the names the selection gives them.
    fn segments(&self) -> Vec<Segment> {
        let fields = [
            ("Company Industry", "job_company_industry"),
            ("Company Employees Range", "job_company_size"),
            ("Person Job Role", "job_title_role"),
        ];
        let companies_only = self.key_kind == KeyKind::Domain;
        let named = fields
            .into_iter()
            .filter(|(_, field)| self.selection.includes(field))
            .filter(|(_, field)| !companies_only || field.starts_with("job_company_"))
            .filter_map(|(title, field)| {
                let property = self.selection.name_of(field)?.to_owned();
                Some(Segment { title: title.into(), property, list: false })
            });
        let matched = Segment { title: "Match".into(), property: MATCH.into(), list: false };
        let matched = (!companies_only).then_some(matched);
        matched.into_iter().chain(named).collect()
    }

    fn declines(&self, key: &LookupKey) -> Option<&'static str> {
        matches!(key, LookupKey::Domain(domain) if is_free_mail_domain(domain)).then_some("free email domain")
    }

    /// A company is the same for every colleague at its domain.
    fn caches(&self, key: &LookupKey) -> bool {
        matches!(key, LookupKey::Domain(_))
    }

    fn max_in_flight(&self) -> usize {
        self.max_concurrency
    }

    fn max_keys_per_request(&self) -> usize {
        self.max_keys_per_request
    }

    fn credits_left(&self) -> Option<u64> {
        u64::try_from(self.credits_left.load(Ordering::Relaxed)).ok()
    }

    async fn lookup(
        &self,
        key: &LookupKey,
        hints: &LookupHints,
        stop: &CancellationToken,
    ) -> Option<Result<Lookup, ConnectorError>> {
        match self.key_kind {
            KeyKind::Domain => self.lookup_company(key, stop).await,
            _ => self.lookup_batch(&[(key.clone(), hints.clone())], stop).await.pop().flatten(),
        }
    }

    async fn lookup_batch(
        &self,
        keys: &[(LookupKey, LookupHints)],
        stop: &CancellationToken,
    ) -> Vec<Option<Result<Lookup, ConnectorError>>> {
        if self.key_kind == KeyKind::Domain {
            let mut answers = Vec::with_capacity(keys.len());
            for (key, _) in keys {
                answers.push(self.lookup_company(key, stop).await);
            }
            return answers;
        }
        let mut people = Vec::with_capacity(keys.len());
        for (key, hints) in keys {
            match key {
                LookupKey::Email(email) => people.push((email.as_str(), hints)),
                LookupKey::Ip(_) | LookupKey::Domain(_) => {
                    let error = ConnectorError::Fatal(format!("{PROVIDER} looks users up by email only"));
                    return keys.iter().map(|_| Some(Err(error.clone()))).collect();
                }
            }
        }
        match self.ask(&people, stop).await {
            Ok(Some(answers)) => answers.into_iter().map(Some).collect(),
            Ok(None) => Vec::new(),
            Err(error) => keys.iter().map(|_| Some(Err(error.clone()))).collect(),
        }
    }

    /// Any answer but a refusal of the key or the account proves the key works.
    async fn check(&self) -> Result<String, ConnectorError> {
        if self.key_kind == KeyKind::Domain {
            let key = LookupKey::Domain(CHECK_DOMAIN.to_owned());
            let outcome = match self.lookup_company(&key, &CancellationToken::new()).await {
                Some(Ok(Lookup::Found(_))) => "company found, billed one credit",
                Some(Ok(_)) => "no company found, not billed",
                Some(Err(error)) => return Err(error),
                None => return Err(ConnectorError::Fatal("the check was stopped".to_owned())),
            };
            return Ok(format!("key accepted (one lookup of {CHECK_DOMAIN}: {outcome})"));
        }
        let hints = LookupHints::default();
        let answers = self
            .ask(&[(CHECK_EMAIL, &hints)], &CancellationToken::new())
            .await?
            .ok_or_else(|| ConnectorError::Fatal("the check was stopped".to_owned()))?;
        let outcome = match answers.into_iter().next() {
            Some(Ok(Lookup::Found(_))) => "person found, billed one credit",
            Some(Ok(Lookup::NotFound(_))) => "nobody found, not billed",
            Some(Err(error @ ConnectorError::Fatal(_))) => return Err(error),
            _ => "no usable answer, not billed",
        };
        let credits =
            self.credits_left().map_or_else(String::new, |credits| format!("; {credits} credits left"));
        Ok(format!("key accepted (one lookup of {CHECK_EMAIL}: {outcome}{credits})"))
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn reads_pdl_rate_limit_headers_in_either_form() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-reset", HeaderValue::from_static("2022-02-23T20:19:55Z"));
        headers.insert(
            "x-ratelimit-remaining",
            HeaderValue::from_static("{'minute': 99, 'day': None, 'month': None}"),
        );
        assert_eq!(rate_limit_window(&headers), Some(Window { reset: 1_645_647_595, remaining: Some(99) }));
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static(r#"{"minute": 7}"#));
        assert_eq!(rate_limit_window(&headers).unwrap().remaining, Some(7));
        headers.insert("x-ratelimit-reset", HeaderValue::from_static("soon"));
        assert_eq!(rate_limit_window(&headers), None);
    }
}
