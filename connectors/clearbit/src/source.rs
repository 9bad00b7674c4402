//! The Clearbit source: one combined lookup per email, within Clearbit's concurrency and rate limits,
//! retried with backoff, with queued (202) lookups asked again a few times before they are left for the
//! next run (or, on the streaming host, left at once).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use enrich_core::{
    CancellationToken, ConnectorError, KeyKind, Lookup, LookupHints, LookupKey, PropertyInfo, Segment,
    SharedBudget, Source,
};
use enrich_http::{Failure, Limits, RetryPolicy, Window};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Client, Url};
use secrecy::{ExposeSecret, SecretString};

use crate::answer::{Answer, interpret};
use crate::catalogue::{DATE_LAST_CHECKED, MATCH};
use crate::config::ClearbitConfig;
use crate::free_email::is_free_email;
use crate::mapping::{map_combined, not_found};
use crate::selection::PropertySelection;

/// The name errors and log lines give the service.
const PROVIDER: &str = "Clearbit";

/// The address `check()` looks up: Clearbit's own founder, whom Clearbit always knows.
const CHECK_EMAIL: &str = "alex@clearbit.com";

/// A combined record is tens of kilobytes; a larger answer is refused unread.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Lookups in flight per request permit: lookups sleeping before they ask again for a queued record
/// hold no permit, and must not keep others from using it.
const LOOKUPS_PER_PERMIT: usize = 4;

/// Clearbit Enrichment as a [`Source`]. Its `Debug` shows no key.
#[derive(Debug)]
pub struct ClearbitSource {
    client: Client,
    /// `…/v2/combined/find`, without the query.
    endpoint: Url,
    /// The endpoint as messages name it: without credentials a proxy URL may carry.
    endpoint_shown: String,
    api_version: HeaderValue,
    /// Whether Clearbit's `X-API-Warn` was logged already: once is enough.
    api_warned: AtomicBool,
    invalid_retry_after: Duration,
    api_key: SecretString,
    /// Concurrency, pace, Clearbit's window, and the first answer that refused the account or the route
    /// (401, 402, 403, unknown_route, a redirect), after which nothing is asked.
    limits: Limits,
    max_concurrency: usize,
    requests_per_minute: NonZeroU32,
    timeout: Duration,
    retries: RetryPolicy,
    /// Whether `endpoint` is on the streaming host, where a 202 is not worth asking again.
    stream: bool,
    pending_retries: u32,
    pending_delay: Duration,
    skip_free_email_domains: bool,
    selection: PropertySelection,
}

impl ClearbitSource {
    /// Books every lookup in a budget shared with the other workers that use this key too, so that
    /// together they keep to `requests_per_minute`.
    pub fn with_shared_budget(mut self, budget: Arc<dyn SharedBudget>) -> Self {
        let api_key = self.api_key.expose_secret();
        self.limits.share(budget, "clearbit", api_key, self.requests_per_minute);
        self
    }

    /// Builds the source from a config, refusing one that [`ClearbitConfig::validate`] finds fault with.
    pub fn new(config: &ClearbitConfig) -> Result<Self, ConnectorError> {
        // `ensure_valid` words the refusal as every component's is, and refuses any problem.
        let selection = config.selection().map_err(|problems| {
            enrich_core::ensure_valid("Clearbit", &problems).expect_err("a config with problems is refused")
        })?;
        let endpoint = config
            .endpoint()
            .map_err(|error| ConnectorError::Fatal(format!("invalid Clearbit base_url: {error}")))?;
        // Both are at least 1 once the config is valid.
        let at_least_one = |number: u32| NonZeroU32::new(number).unwrap_or(NonZeroU32::MIN);
        let limits = Limits::new(
            PROVIDER,
            at_least_one(config.requests_per_minute),
            at_least_one(u32::try_from(config.max_concurrency).unwrap_or(u32::MAX)),
        );
        let timeout = config.request_timeout();
        let client = enrich_http::client(timeout)?;
        let retries = RetryPolicy::new(config.retry_delay, config.max_retries, config.max_retry_time);
        let api_version = HeaderValue::from_str(&config.api_version).map_err(|_| {
            ConnectorError::Fatal(format!("invalid Clearbit api_version {:?}", config.api_version))
        })?;
        Ok(Self {
            client,
            endpoint_shown: enrich_http::shown_url(&endpoint),
            endpoint,
            api_version,
            api_warned: AtomicBool::new(false),
            invalid_retry_after: config.invalid_retry_after,
            api_key: config.api_key.clone(),
            limits,
            max_concurrency: config.max_concurrency,
            requests_per_minute: at_least_one(config.requests_per_minute),
            timeout,
            retries,
            stream: config.stream,
            pending_retries: config.pending_retries,
            pending_delay: config.pending_delay,
            skip_free_email_domains: config.skip_free_email_domains,
            selection,
        })
    }

    /// Sends one request and reads its answer.
    async fn request(&self, email: &str, hints: &LookupHints) -> Result<Answer, Failure> {
        let response = self
            .client
            .get(self.endpoint.clone())
            .query(&lookup_query(email, hints))
            .bearer_auth(self.api_key.expose_secret())
            .header("API-Version", self.api_version.clone())
            .send()
            .await
            .map_err(|error| enrich_http::transport_failure(PROVIDER, self.timeout, error))?;
        let status = response.status();
        self.limits.observe(status, rate_limit_window(response.headers()));
        self.heed_api_warning(response.headers());
        if status.is_redirection() {
            let redirect =
                enrich_http::redirected(PROVIDER, status, response.headers(), &self.endpoint_shown);
            return Err(Failure::Final(redirect));
        }
        let body = enrich_http::read_body(PROVIDER, self.timeout, response, MAX_ANSWER_BYTES).await?;
        interpret(status, &body, email, &self.endpoint_shown)
    }

    /// Logs Clearbit's warning about a deprecated API version, once per source.
    fn heed_api_warning(&self, headers: &HeaderMap) {
        let Some(warning) = headers.get("X-API-Warn").and_then(|value| value.to_str().ok()) else { return };
        if !self.api_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(api_version = ?self.api_version, "Clearbit warns about the API version: {warning}");
        }
    }

    /// One request, retried with backoff while it fails in a way that may pass, as often as
    /// `max_retries` and for as long as `max_retry_time` allow; `None` when `stop` came before an answer.
    async fn ask(
        &self,
        email: &str,
        hints: &LookupHints,
        stop: &CancellationToken,
    ) -> Result<Option<Answer>, ConnectorError> {
        let attempt = || self.limits.send(stop, self.request(email, hints));
        self.retries.run(PROVIDER, &self.limits, stop, attempt).await
    }

    async fn lookup_email(
        &self,
        email: &str,
        hints: &LookupHints,
        stop: &CancellationToken,
    ) -> Option<Result<Lookup, ConnectorError>> {
        let mut delay = self.pending_delay;
        let mut re_asks_left = self.pending_retries;
        let mut queued = false;
        loop {
            let answer = match self.ask(email, hints, stop).await {
                Ok(Some(answer)) => answer,
                // Stopped: a record Clearbit is fetching stays pending, anything else never happened.
                Ok(None) => return queued.then_some(Ok(Lookup::Pending)),
                Err(error) => return Some(Err(error)),
            };
            let lookup = match answer {
                Answer::Record(response) => Lookup::Found(map_combined(&response, &self.selection)),
                Answer::NotFound => Lookup::NotFound(not_found()),
                Answer::Invalid(reason) => Lookup::Invalid(reason),
                // The streaming host held the request as long as it would: asking again now costs
                // another minute of a request slot for little chance.
                Answer::Queued if self.stream || re_asks_left == 0 => Lookup::Pending,
                Answer::Queued => {
                    tracing::debug!(?delay, "Clearbit is still fetching a record; asking again");
                    queued = true;
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = stop.cancelled() => return Some(Ok(Lookup::Pending)),
                    }
                    delay = delay.saturating_mul(2);
                    re_asks_left -= 1;
                    continue;
                }
            };
            return Some(Ok(lookup));
        }
    }
}

/// What Clearbit's `X-RateLimit-*` headers say of the current window.
fn rate_limit_window(headers: &HeaderMap) -> Option<Window> {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok();
    Some(Window { reset: number("x-ratelimit-reset")?, remaining: number("x-ratelimit-remaining") })
}

/// The lookup's query: the email, and the hints Clearbit says raise the match rate.
fn lookup_query(email: &str, hints: &LookupHints) -> Vec<(&'static str, String)> {
    let mut query = vec![("email", email.to_owned())];
    query.extend(hints.given_name.clone().map(|name| ("given_name", name)));
    query.extend(hints.family_name.clone().map(|name| ("family_name", name)));
    query.extend(hints.ip.map(|ip| ("ip_address", ip.to_string())));
    query
}

#[async_trait]
impl Source for ClearbitSource {
    fn kind(&self) -> &'static str {
        "clearbit"
    }

    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn key_kind(&self) -> KeyKind {
        KeyKind::Email
    }

    fn checked_property(&self) -> &str {
        DATE_LAST_CHECKED
    }

    fn properties(&self) -> Vec<PropertyInfo> {
        self.selection.properties()
    }

    /// The breakdowns the integration exists for: match rate, industry, company size, technologies.
    fn segments(&self) -> Vec<Segment> {
        let match_segment = Segment { title: "Match".into(), property: MATCH.into(), list: false };
        let catalogued = [
            ("Company Industry", "company.category.industry", false),
            ("Company Employees Range", "company.metrics.employeesRange", false),
            ("Company Tech", "company.tech", true),
        ];
        let named = catalogued.into_iter().filter(|(_, path, _)| self.selection.includes(path)).filter_map(
            |(title, path, list)| {
                let property = self.selection.name_of(path)?.to_owned();
                Some(Segment { title: title.into(), property, list })
            },
        );
        std::iter::once(match_segment).chain(named).collect()
    }

    fn max_in_flight(&self) -> usize {
        self.max_concurrency.saturating_mul(LOOKUPS_PER_PERMIT)
    }

    fn declines(&self, key: &LookupKey) -> Option<&'static str> {
        match key {
            LookupKey::Email(email) if self.skip_free_email_domains && is_free_email(email) => {
                Some("free email domain")
            }
            _ => None,
        }
    }

    fn invalid_retry_after(&self) -> Option<Duration> {
        Some(self.invalid_retry_after)
    }

    async fn lookup(
        &self,
        key: &LookupKey,
        hints: &LookupHints,
        stop: &CancellationToken,
    ) -> Option<Result<Lookup, ConnectorError>> {
        match key {
            LookupKey::Email(email) => self.lookup_email(email, hints, stop).await,
            LookupKey::Ip(_) => Some(Err(ConnectorError::Fatal(
                "Clearbit Enrichment looks users up by email, not by IP address".to_owned(),
            ))),
        }
    }

    /// Any answer but a refusal of the key or the account proves the key works; a queued or refused
    /// address is no reason to ask again.
    async fn check(&self) -> Result<String, ConnectorError> {
        let answer = self.ask(CHECK_EMAIL, &LookupHints::default(), &CancellationToken::new()).await?;
        let outcome = match answer.ok_or_else(|| ConnectorError::Fatal("the check was stopped".to_owned()))? {
            Answer::Record(_) => "record found, billed as one",
            Answer::NotFound => "no record, billed as one",
            Answer::Queued => "record queued, billed as one",
            Answer::Invalid(_) => "address refused, not billed",
        };
        Ok(format!("key accepted (one lookup of {CHECK_EMAIL}: {outcome})"))
    }
}
