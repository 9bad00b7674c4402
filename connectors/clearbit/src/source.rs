//! The Clearbit source: one combined lookup per email, within Clearbit's concurrency and rate limits,
//! retried with backoff, with queued (202) lookups asked again a few times before they are left for the
//! next run (or, on the streaming host, left at once).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use enrich_core::{
    CancellationToken, ConnectorError, KeyKind, Lookup, LookupHints, LookupKey, PropertyInfo, Segment,
    SharedBudget, Source,
};
use reqwest::header::{HeaderMap, HeaderValue, LOCATION};
use reqwest::{Client, StatusCode, Url, redirect};
use secrecy::{ExposeSecret, SecretString};

use crate::answer::{Answer, Failure, interpret};
use crate::catalogue::{DATE_LAST_CHECKED, MATCH};
use crate::config::ClearbitConfig;
use crate::free_email::is_free_email;
use crate::limits::Limits;
use crate::mapping::{map_combined, not_found};
use crate::selection::PropertySelection;

const USER_AGENT: &str = concat!("enrich/", env!("CARGO_PKG_VERSION"));

/// The address `check()` looks up: Clearbit's own founder, whom Clearbit always knows.
const CHECK_EMAIL: &str = "alex@clearbit.com";

/// The longest pause between two retries of one request.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

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
    /// The first answer that refused the account or the route (401, 402, 403, unknown_route, a
    /// redirect): every lookup after it, those waiting for a permit included, fails with it unasked.
    refused: OnceLock<ConnectorError>,
    invalid_retry_after: Duration,
    api_key: SecretString,
    limits: Limits,
    max_concurrency: usize,
    requests_per_minute: NonZeroU32,
    timeout: Duration,
    retries: ExponentialBuilder,
    max_retry_time: Duration,
    /// Whether `endpoint` is on the streaming host, where a 202 is not worth asking again.
    stream: bool,
    pending_retries: u32,
    pending_delay: Duration,
    skip_free_email_domains: bool,
    selection: PropertySelection,
}

/// How a request's retries ended, for the message of a request that never succeeded.
#[derive(Debug, Default)]
struct RetryTally {
    retries: usize,
    first_failure: Option<Instant>,
    out_of_time: bool,
}

impl ClearbitSource {
    /// Books every lookup in a budget shared with the other workers that use this key too, so that
    /// together they keep to `requests_per_minute`.
    pub fn with_shared_budget(mut self, budget: Arc<dyn SharedBudget>) -> Self {
        let key = enrich_core::digest::stable_hash([
            b"clearbit".as_slice(),
            self.api_key.expose_secret().as_bytes(),
        ]);
        self.limits.share(budget, key, self.requests_per_minute);
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
            at_least_one(config.requests_per_minute),
            at_least_one(u32::try_from(config.max_concurrency).unwrap_or(u32::MAX)),
        );
        let timeout = config.request_timeout();
        // A redirect would carry the key to wherever it points, over plain http too: never followed.
        let client = Client::builder()
            .user_agent(USER_AGENT)
            .timeout(timeout)
            .redirect(redirect::Policy::none())
            .build()
            .map_err(|error| ConnectorError::Fatal(format!("cannot set up the HTTP client: {error}")))?;
        let retries = ExponentialBuilder::new()
            .with_jitter()
            .with_min_delay(config.retry_delay)
            .with_max_delay(MAX_RETRY_DELAY)
            .with_max_times(config.max_retries);
        let api_version = HeaderValue::from_str(&config.api_version).map_err(|_| {
            ConnectorError::Fatal(format!("invalid Clearbit api_version {:?}", config.api_version))
        })?;
        let mut shown = endpoint.clone();
        // Both only fail for URLs that cannot have credentials, which then have none to remove.
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        Ok(Self {
            client,
            endpoint_shown: shown.to_string(),
            endpoint,
            api_version,
            api_warned: AtomicBool::new(false),
            refused: OnceLock::new(),
            invalid_retry_after: config.invalid_retry_after,
            api_key: config.api_key.clone(),
            limits,
            max_concurrency: config.max_concurrency,
            requests_per_minute: at_least_one(config.requests_per_minute),
            timeout,
            retries,
            max_retry_time: config.max_retry_time,
            stream: config.stream,
            pending_retries: config.pending_retries,
            pending_delay: config.pending_delay,
            skip_free_email_domains: config.skip_free_email_domains,
            selection,
        })
    }

    /// One request, started within the limits and in flight while it holds their permit; `None` when
    /// `stop` came first.
    async fn ask_once(
        &self,
        email: &str,
        hints: &LookupHints,
        stop: &CancellationToken,
    ) -> Result<Option<Answer>, Failure> {
        let Some(_in_flight) = self.limits.admit(stop).await else { return Ok(None) };
        if let Some(refusal) = self.refused.get() {
            return Err(Failure::Final(refusal.clone()));
        }
        let answer = self.request(email, hints).await;
        if let Err(Failure::Final(refusal @ ConnectorError::Fatal(_))) = &answer {
            // A fatal answer holds for every email: nobody else is asked (nor billed) after it.
            let _ = self.refused.set(refusal.clone());
        }
        answer.map(Some)
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
            .map_err(|error| self.transport_failure(error))?;
        let status = response.status();
        self.limits.observe(status, response.headers());
        self.heed_api_warning(response.headers());
        if status.is_redirection() {
            return Err(Failure::Final(self.redirected(status, response.headers())));
        }
        let body = self.read_body(response).await?;
        interpret(status, &body, email, &self.endpoint_shown)
    }

    /// A redirect is a configuration problem: `base_url` points somewhere that sends requests on.
    fn redirected(&self, status: StatusCode, headers: &HeaderMap) -> ConnectorError {
        let location = headers.get(LOCATION).and_then(|value| value.to_str().ok()).unwrap_or("nowhere");
        ConnectorError::Fatal(format!(
            "Clearbit answered {status} for {}, redirecting to {location}: redirects are not followed \
             (they would carry the key elsewhere); check base_url",
            self.endpoint_shown
        ))
    }

    /// Logs Clearbit's warning about a deprecated API version, once per source.
    fn heed_api_warning(&self, headers: &HeaderMap) {
        let Some(warning) = headers.get("X-API-Warn").and_then(|value| value.to_str().ok()) else { return };
        if !self.api_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(api_version = ?self.api_version, "Clearbit warns about the API version: {warning}");
        }
    }

    /// The body, unless it is larger than [`MAX_ANSWER_BYTES`]: then the lookup fails at once rather
    /// than spending memory and minutes on mapping it.
    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, Failure> {
        let status = response.status();
        let too_large = || {
            Failure::Final(ConnectorError::Rejected(format!(
                "Clearbit answered {status} with more than {} KiB, far more than any record: not read",
                MAX_ANSWER_BYTES / 1024
            )))
        };
        if response.content_length().is_some_and(|length| length > MAX_ANSWER_BYTES as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|error| self.transport_failure(error))? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// One request, retried with backoff while it fails in a way that may pass, as often as
    /// `max_retries` and for as long as `max_retry_time` allow; `None` when `stop` came before an answer.
    async fn ask(
        &self,
        email: &str,
        hints: &LookupHints,
        stop: &CancellationToken,
    ) -> Result<Option<Answer>, ConnectorError> {
        let mut tally = RetryTally::default();
        let stopped = stop.clone();
        let answer = (|| self.ask_once(email, hints, stop))
            .retry(self.retries)
            // A stop ends the pause at once; the next attempt then starts nothing.
            .sleep(move |delay| {
                let stopped = stopped.clone();
                async move {
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = stopped.cancelled() => {}
                    }
                }
            })
            .when(Failure::is_retryable)
            .adjust(|failure, backoff| {
                let first_failure = *tally.first_failure.get_or_insert_with(Instant::now);
                let mut delay = backoff?;
                // Once Clearbit said when its window resets, no request starts before then anyway.
                if failure.is_rate_limited()
                    && let Some(pause) = self.limits.pause_left()
                {
                    delay = pause;
                }
                if first_failure.elapsed() + delay > self.max_retry_time {
                    tally.out_of_time = true;
                    return None;
                }
                tally.retries += 1;
                Some(delay)
            })
            .notify(|failure, delay| {
                if let Failure::Retryable { reason, rate_limited } = failure {
                    if *rate_limited {
                        tracing::debug!(%reason, ?delay, "retrying a Clearbit lookup");
                    } else {
                        tracing::warn!(%reason, ?delay, "retrying a Clearbit lookup");
                    }
                }
            })
            .await;
        answer.map_err(|failure| match failure {
            Failure::Retryable { reason, .. } if tally.out_of_time => ConnectorError::Transient(format!(
                "{reason}; gave up after {} retries, as max_retry_time ({:?}) ran out",
                tally.retries, self.max_retry_time
            )),
            Failure::Retryable { reason, .. } => {
                ConnectorError::Transient(format!("{reason}; gave up after {} retries", tally.retries))
            }
            Failure::Final(error) => error,
        })
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

    /// A request that got no HTTP answer. reqwest's message would carry the URL, and with it the email.
    fn transport_failure(&self, error: reqwest::Error) -> Failure {
        let reason = if error.is_timeout() {
            format!("Clearbit did not answer within {:?}", self.timeout)
        } else {
            let error = error.without_url();
            let mut reason = format!("cannot reach Clearbit: {error}");
            let mut cause = std::error::Error::source(&error);
            while let Some(inner) = cause {
                reason.push_str(&format!(": {inner}"));
                cause = inner.source();
            }
            reason
        };
        Failure::Retryable { reason, rate_limited: false }
    }
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
