//! The Clearbit source: one combined lookup per email, within Clearbit's concurrency limit, retried
//! with backoff, with queued (202) lookups asked again a few times before they are left for next run.

use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use enrich_core::{ConnectorError, KeyKind, Lookup, LookupKey, PropertyInfo, Source};
use reqwest::{Client, Url};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::answer::{Answer, Failure, interpret};
use crate::catalogue::DATE_LAST_CHECKED;
use crate::config::ClearbitConfig;
use crate::mapping::{map_combined, not_found};
use crate::selection::PropertySelection;

const USER_AGENT: &str = concat!("enrich/", env!("CARGO_PKG_VERSION"));

/// The address `check()` looks up: Clearbit's own founder, whom Clearbit always knows.
const CHECK_EMAIL: &str = "alex@clearbit.com";

/// The longest pause between two retries of one request.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// Lookups in flight per request permit: lookups sleeping before they ask again for a queued record
/// hold no permit, and must not keep others from using it.
const LOOKUPS_PER_PERMIT: usize = 4;

/// Clearbit Enrichment as a [`Source`]. Its `Debug` shows no key.
#[derive(Debug)]
pub struct ClearbitSource {
    client: Client,
    /// `…/v2/combined/find`, without the query.
    endpoint: Url,
    api_key: SecretString,
    /// One permit per request in flight, held only while it is.
    requests: Semaphore,
    max_concurrency: usize,
    timeout: Duration,
    retries: ExponentialBuilder,
    max_retries: usize,
    pending_retries: u32,
    pending_delay: Duration,
    selection: PropertySelection,
}

impl ClearbitSource {
    /// Builds the source from a config, refusing one that [`ClearbitConfig::validate`] finds fault with.
    pub fn new(config: &ClearbitConfig) -> Result<Self, ConnectorError> {
        // `ensure_valid` words the refusal as every component's is, and refuses any problem.
        let selection = config.selection().map_err(|problems| {
            enrich_core::ensure_valid("Clearbit", &problems).expect_err("a config with problems is refused")
        })?;
        let endpoint = Url::parse(&format!("{}/v2/combined/find", config.base_url()))
            .map_err(|error| ConnectorError::Fatal(format!("invalid Clearbit base_url: {error}")))?;
        let client = Client::builder()
            .user_agent(USER_AGENT)
            .timeout(config.timeout)
            .build()
            .map_err(|error| ConnectorError::Fatal(format!("cannot set up the HTTP client: {error}")))?;
        let retries = ExponentialBuilder::new()
            .with_jitter()
            .with_min_delay(config.retry_delay)
            .with_max_delay(MAX_RETRY_DELAY)
            .with_max_times(config.max_retries);
        Ok(Self {
            client,
            endpoint,
            api_key: config.api_key.clone(),
            requests: Semaphore::new(config.max_concurrency),
            max_concurrency: config.max_concurrency,
            timeout: config.timeout,
            retries,
            max_retries: config.max_retries,
            pending_retries: config.pending_retries,
            pending_delay: config.pending_delay,
            selection,
        })
    }

    /// One request, made while holding a permit.
    async fn ask_once(&self, email: &str) -> Result<Answer, Failure> {
        let _permit = self.requests.acquire().await.expect("the request semaphore is never closed");
        let response = self
            .client
            .get(self.endpoint.clone())
            .query(&[("email", email)])
            .bearer_auth(self.api_key.expose_secret())
            .send()
            .await
            .map_err(|error| self.transport_failure(error))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|error| self.transport_failure(error))?;
        interpret(status, &body, email)
    }

    /// One request, retried with backoff while it fails in a way that may pass.
    async fn ask(&self, email: &str) -> Result<Answer, ConnectorError> {
        let answer = (|| self.ask_once(email))
            .retry(self.retries)
            .when(Failure::is_retryable)
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
            Failure::Retryable { reason, .. } => {
                ConnectorError::Transient(format!("{reason}; gave up after {} retries", self.max_retries))
            }
            Failure::Final(error) => error,
        })
    }

    async fn lookup_email(&self, email: &str) -> Result<Lookup, ConnectorError> {
        let mut delay = self.pending_delay;
        let mut re_asks_left = self.pending_retries;
        loop {
            match self.ask(email).await? {
                Answer::Record(response) => {
                    return Ok(Lookup::Found(map_combined(&response, &self.selection)));
                }
                Answer::NotFound => return Ok(Lookup::NotFound(not_found())),
                Answer::Invalid(reason) => return Ok(Lookup::Invalid(reason)),
                Answer::Queued if re_asks_left == 0 => return Ok(Lookup::Pending),
                Answer::Queued => {
                    tracing::debug!(?delay, "Clearbit is still fetching a record; asking again");
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                    re_asks_left -= 1;
                }
            }
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

    fn max_in_flight(&self) -> usize {
        self.max_concurrency.saturating_mul(LOOKUPS_PER_PERMIT)
    }

    async fn lookup(&self, key: &LookupKey) -> Result<Lookup, ConnectorError> {
        match key {
            LookupKey::Email(email) => self.lookup_email(email).await,
            LookupKey::Ip(_) => Err(ConnectorError::Fatal(
                "Clearbit Enrichment looks users up by email, not by IP address".to_owned(),
            )),
        }
    }

    /// Any answer but a refusal of the key or the account proves the key works; a queued or refused
    /// address is no reason to ask again.
    async fn check(&self) -> Result<String, ConnectorError> {
        let outcome = match self.ask(CHECK_EMAIL).await? {
            Answer::Record(_) => "record found, billed as one",
            Answer::NotFound => "no record, billed as one",
            Answer::Queued => "record queued, billed as one",
            Answer::Invalid(_) => "address refused, not billed",
        };
        Ok(format!("key accepted (one lookup of {CHECK_EMAIL}: {outcome})"))
    }
}
