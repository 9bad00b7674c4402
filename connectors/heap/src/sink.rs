//! The Heap sink: user properties written through the bulk form of Heap's Add User Properties API.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use enrich_core::{ConnectorError, FieldError, PropertyValue, Refused, Sink, UserRecord, UserUpdate};
use governor::{DefaultDirectRateLimiter, Quota};
use reqwest::header::LOCATION;
use reqwest::{StatusCode, Url, redirect};
use serde::{Deserialize, Deserializer, Serialize};

use enrich_core::error::shorten;

use crate::settings::VALUE_RULES;

/// Heap's API host for accounts hosted in the US (the default) and in the EU.
const US_BASE_URL: &str = "https://heapanalytics.com";
const EU_BASE_URL: &str = "https://c.eu.heap-api.com";
const ENDPOINT_PATH: &str = "api/add_user_properties";
/// Heap takes at most this many users in one bulk request.
const MAX_USERS_PER_REQUEST: usize = 1000;
/// The longest wait between two tries, however many tries came before.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);
/// How much of Heap's answer an error message quotes.
const MAX_ANSWER_CHARS: usize = 300;

/// The `heap` sink's config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeapSinkConfig {
    /// The environment id from Heap's Projects page (digits, written as a string or a number).
    #[serde(deserialize_with = "app_id_digits")]
    pub app_id: String,
    /// Where the Heap account is hosted: `us` (`https://heapanalytics.com`, the default) or `eu`
    /// (`https://c.eu.heap-api.com`).
    pub region: Option<Region>,
    /// Heap's API root, in place of the region's: a proxy, or an emulator. Must be https, except on
    /// this machine (localhost, 127.0.0.0/8, ::1), where only an emulator answers.
    pub base_url: Option<String>,
    /// How long one request may take, answer included.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// How many times a request is tried again after a transient failure.
    #[serde(default = "default_max_retries")]
    pub max_retries: usize,
    /// The wait before the first retry; later waits grow exponentially, with jitter.
    #[serde(default = "default_retry_delay", with = "humantime_serde")]
    pub retry_delay: Duration,
    /// Requests started per second, retries included. Heap documents only 30 requests per 30 seconds
    /// per identity; one bulk request every 100 ms keeps well clear of whatever else it enforces.
    #[serde(default = "default_requests_per_second")]
    pub requests_per_second: u32,
}

/// Where a Heap account is hosted, which decides its API host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    Us,
    Eu,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_max_retries() -> usize {
    5
}

fn default_retry_delay() -> Duration {
    Duration::from_millis(500)
}

fn default_requests_per_second() -> u32 {
    10
}

/// YAML reads `app_id: 1234567890` as a number, while Heap wants those digits as a string.
fn app_id_digits<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "the numeric environment id from Heap's Projects page")]
    enum AppId {
        Text(String),
        Number(u64),
    }
    Ok(match AppId::deserialize(deserializer)? {
        AppId::Text(text) => text,
        AppId::Number(number) => number.to_string(),
    })
}

impl HeapSinkConfig {
    /// Every problem in the config, found without touching the network.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut problems = Vec::new();
        if self.app_id.is_empty() || !self.app_id.bytes().all(|byte| byte.is_ascii_digit()) {
            problems.push(FieldError::new(
                "app_id",
                format!(
                    "must be the numeric environment id from Heap's Projects page, got {:?}",
                    self.app_id
                ),
            ));
        }
        if self.region.is_some() && self.base_url.is_some() {
            problems.push(FieldError::new(
                "region",
                "picks Heap's host, which base_url sets too: keep one of the two",
            ));
        }
        if let Err(message) = self.endpoint() {
            problems.push(FieldError::new("base_url", message));
        }
        if self.timeout.is_zero() {
            problems.push(FieldError::new("timeout", "must be longer than zero, such as 30s"));
        }
        if self.requests_per_second == 0 {
            problems.push(FieldError::new("requests_per_second", "must be at least 1, such as 10"));
        }
        problems
    }

    /// The Add User Properties URL under `base_url`, which may carry a path prefix (a proxy).
    fn endpoint(&self) -> Result<Url, String> {
        let region_host = match self.region {
            Some(Region::Eu) => EU_BASE_URL,
            Some(Region::Us) | None => US_BASE_URL,
        };
        let base = self.base_url.as_deref().unwrap_or(region_host);
        let mut url = Url::parse(base)
            .map_err(|error| format!("must be an absolute http(s) URL, got {base:?} ({error})"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(format!("must be an absolute http(s) URL, got {base:?}"));
        }
        // Plain http would hand users' properties to anyone on the way.
        if url.scheme() == "http" && !url.host_str().is_some_and(enrich_core::is_loopback_host) {
            return Err("uses plain http: use https://; plain http is only allowed for a local emulator \
                 (localhost, 127.0.0.1, ::1)"
                .to_owned());
        }
        // Without a trailing slash, joining would replace the last segment of a path prefix.
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        url.join(ENDPOINT_PATH).map_err(|error| format!("cannot take a path, got {base:?} ({error})"))
    }
}

/// Writes user properties to one Heap environment.
#[derive(Debug)]
pub struct HeapSink {
    client: reqwest::Client,
    endpoint: Url,
    app_id: String,
    /// `requests_per_second`, one request at a time: no burst.
    pace: DefaultDirectRateLimiter,
    backoff: ExponentialBuilder,
    /// Tries per request, for messages.
    attempts: usize,
}

impl HeapSink {
    /// Builds the sink; a config that [`HeapSinkConfig::validate`] would refuse is a fatal error.
    pub fn new(config: &HeapSinkConfig) -> Result<Self, ConnectorError> {
        enrich_core::ensure_valid("heap sink", &config.validate())?;
        let endpoint = config.endpoint().map_err(ConnectorError::Fatal)?;
        // A redirect would send users' properties wherever it points: never followed.
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(redirect::Policy::none())
            .user_agent(concat!("enrich/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| ConnectorError::Fatal(format!("cannot build the HTTP client: {error}")))?;
        let backoff = ExponentialBuilder::new()
            .with_jitter()
            .with_min_delay(config.retry_delay)
            .with_max_delay(MAX_RETRY_DELAY)
            .with_max_times(config.max_retries);
        // At least 1 once the config is valid.
        let requests_per_second = NonZeroU32::new(config.requests_per_second).unwrap_or(NonZeroU32::MIN);
        let pace = DefaultDirectRateLimiter::direct(
            Quota::per_second(requests_per_second).allow_burst(NonZeroU32::MIN),
        );
        Ok(Self {
            client,
            endpoint,
            app_id: config.app_id.clone(),
            pace,
            backoff,
            attempts: config.max_retries.saturating_add(1),
        })
    }

    /// Sends one request, trying again while the failure is transient.
    async fn post_with_retries(&self, request: &AddUserProperties<'_>) -> Result<(), Failure> {
        (|| self.post(request))
            .retry(self.backoff)
            .when(Failure::is_transient)
            .notify(|failure, delay| {
                tracing::warn!(
                    users = request.users.len(),
                    ?delay,
                    "Heap did not take the request, retrying: {failure}"
                );
            })
            .await
    }

    async fn post(&self, request: &AddUserProperties<'_>) -> Result<(), Failure> {
        self.pace.until_ready().await;
        let response = self
            .client
            .post(self.endpoint.clone())
            .json(request)
            .send()
            .await
            .map_err(|error| Failure::Transient(describe_request_error(error)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status.is_redirection() {
            let location = response.headers().get(LOCATION).and_then(|value| value.to_str().ok());
            return Err(Failure::Fatal(format!(
                "Heap answered {status}, redirecting to {}: redirects are not followed; check region and \
                 base_url",
                location.unwrap_or("nowhere")
            )));
        }
        // Heap's answer explains a refusal; when it cannot be read, the status alone has to do.
        let answer = quote_answer(&response.text().await.unwrap_or_default());
        if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status.is_server_error()
        {
            Err(Failure::Transient(format!("{status}: {answer}")))
        } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            Err(Failure::Fatal(format!(
                "Heap refused access ({status}): {answer}; check app_id, region and base_url"
            )))
        } else {
            Err(Failure::Refused { status, answer })
        }
    }

    /// Whether Heap takes a request with no users for this app_id: after a refusal, tells a refused
    /// app_id (every request will fail: the run must stop) from refused users.
    async fn ensure_app_id_taken(&self) -> Result<(), ConnectorError> {
        let request = AddUserProperties { app_id: &self.app_id, users: Vec::new() };
        match self.post_with_retries(&request).await {
            Ok(()) => Ok(()),
            Err(Failure::Refused { status, answer }) => Err(ConnectorError::Fatal(format!(
                "Heap refused app_id {} ({status}): {answer}; check app_id, region and base_url",
                self.app_id
            ))),
            Err(Failure::Fatal(message)) => Err(ConnectorError::Fatal(message)),
            Err(Failure::Transient(detail)) => Err(ConnectorError::Transient(format!(
                "Heap did not answer a check of app_id {} after {} tries: {detail}",
                self.app_id, self.attempts
            ))),
        }
    }

    /// One request's body for these users of the batch, without the properties Heap refuses to take.
    fn request_for<'a>(&'a self, batch: &'a [UserUpdate], users: &[usize]) -> AddUserProperties<'a> {
        let mut users_with_id_key = 0;
        let users = users
            .iter()
            .map(|&at| {
                let user = &batch[at];
                let properties: BTreeMap<&str, &PropertyValue> = user
                    .properties
                    .iter()
                    .filter(|(key, _)| !key.eq_ignore_ascii_case("id"))
                    .map(|(key, value)| (key.as_str(), value))
                    .collect();
                if properties.len() < user.properties.len() {
                    users_with_id_key += 1;
                }
                HeapUser { identity: user.identity.as_deref().unwrap_or_default(), properties }
            })
            .collect();
        if users_with_id_key > 0 {
            tracing::warn!(
                users = users_with_id_key,
                "dropped a property named `id`: Heap refuses that key in any casing"
            );
        }
        AddUserProperties { app_id: &self.app_id, users }
    }
}

#[async_trait]
impl Sink for HeapSink {
    fn kind(&self) -> &'static str {
        "heap"
    }

    fn max_batch(&self) -> usize {
        MAX_USERS_PER_REQUEST
    }

    /// Heap's API addresses users by identity alone: anonymous users are not its to enrich, nor
    /// users whose identity is longer than Heap takes.
    fn cannot_address(&self, user: &UserRecord) -> Option<&'static str> {
        identity_problem(user.identity.as_deref())
    }

    /// Users Heap refuses one by one are refused alone: a request Heap refuses (400) is split in
    /// halves down to single users, as one it finds too large (413) is, once an empty request showed
    /// that Heap takes the app_id itself.
    async fn write(&self, batch: &[UserUpdate]) -> Result<Refused, ConnectorError> {
        // A user Heap cannot address would have it refuse every request carrying it: never sent.
        let mut refused = Refused::new();
        let mut sendable = Vec::with_capacity(batch.len());
        for (at, user) in batch.iter().enumerate() {
            match identity_problem(user.identity.as_deref()) {
                Some(problem) => refused.push((at, problem.to_owned())),
                None => sendable.push(at),
            }
        }
        let mut app_id_taken = false;
        // A stack of parts still to send, the first on top.
        let mut unsent: Vec<&[usize]> = sendable.chunks(MAX_USERS_PER_REQUEST).rev().collect();
        while let Some(users) = unsent.pop() {
            let (status, answer) = match self.post_with_retries(&self.request_for(batch, users)).await {
                Ok(()) => continue,
                Err(Failure::Refused { status, answer }) => (status, answer),
                Err(Failure::Fatal(message)) => return Err(ConnectorError::Fatal(message)),
                Err(Failure::Transient(detail)) => {
                    return Err(ConnectorError::Transient(format!(
                        "Heap did not take the batch of {} users after {} tries: {detail}",
                        users.len(),
                        self.attempts
                    )));
                }
            };
            if status != StatusCode::PAYLOAD_TOO_LARGE && !app_id_taken {
                self.ensure_app_id_taken().await?;
                app_id_taken = true;
            }
            if let [user] = users {
                refused.push((*user, format!("Heap refused the user ({status}): {answer}")));
            } else {
                tracing::debug!(users = users.len(), %status, "Heap refused a request, splitting it");
                let (first, second) = users.split_at(users.len() / 2);
                unsent.extend([second, first]);
            }
        }
        refused.sort_unstable();
        Ok(refused)
    }

    /// Sends the bulk form with no users. Heap answers 200 to app ids it does not know, so this
    /// proves the host and the request are right, not the app_id.
    async fn check(&self) -> Result<String, ConnectorError> {
        self.ensure_app_id_taken().await?;
        Ok(format!(
            "Heap took a request for app_id {} at {}, which proves the host and the request only: Heap \
             answers 200 to app ids it does not know",
            self.app_id,
            self.endpoint.host_str().unwrap_or_default()
        ))
    }

    fn first_sync_proves(&self, checked_property: &str) -> Option<String> {
        Some(format!("the first sync proves the app_id once {checked_property:?} shows on users in Heap"))
    }
}

/// Why Heap cannot address a user with this identity, if it cannot. The reason quotes no identity.
fn identity_problem(identity: Option<&str>) -> Option<&'static str> {
    match identity {
        None => Some(NO_IDENTITY),
        Some(identity) if !VALUE_RULES.identity_fits(identity) => Some(&IDENTITY_TOO_LONG),
        Some(_) => None,
    }
}

/// Why Heap cannot take an anonymous user.
const NO_IDENTITY: &str = "no identity (anonymous user)";

/// Why Heap cannot take a user whose identity is longer than its rules allow.
static IDENTITY_TOO_LONG: LazyLock<String> = LazyLock::new(|| {
    let max = VALUE_RULES.max_identity_chars.unwrap_or_default();
    format!("identity longer than {max} characters")
});

/// The bulk form of Add User Properties.
#[derive(Debug, Serialize)]
struct AddUserProperties<'a> {
    app_id: &'a str,
    users: Vec<HeapUser<'a>>,
}

#[derive(Debug, Serialize)]
struct HeapUser<'a> {
    identity: &'a str,
    properties: BTreeMap<&'a str, &'a PropertyValue>,
}

/// Why one request did not succeed.
#[derive(Debug)]
enum Failure {
    /// Worth another try: 429, 408, 5xx, a timeout or a lost connection.
    Transient(String),
    /// Heap refused the request itself: trying it again would not help.
    Refused { status: StatusCode, answer: String },
    /// Nothing sent to this Heap can succeed (a redirect, 401, 403): the run must stop.
    Fatal(String),
}

impl Failure {
    fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Transient(detail) | Self::Fatal(detail) => f.write_str(detail),
            Self::Refused { status, answer } => write!(f, "{status}: {answer}"),
        }
    }
}

/// The error and its causes, without the URL: a base_url may carry credentials for a proxy.
fn describe_request_error(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut description = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(source) = cause {
        description.push_str(": ");
        description.push_str(&source.to_string());
        cause = source.source();
    }
    description
}

/// Heap's answer on one line, cut to a length that fits in a message.
fn quote_answer(body: &str) -> String {
    let body = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if body.is_empty() { "no explanation given".to_owned() } else { shorten(&body, MAX_ANSWER_CHARS) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_picks_the_host() {
        let config = |region: Option<Region>| HeapSinkConfig {
            app_id: "1".into(),
            region,
            base_url: None,
            timeout: default_timeout(),
            max_retries: 0,
            retry_delay: default_retry_delay(),
            requests_per_second: 1,
        };
        let endpoint = |region| config(region).endpoint().unwrap().to_string();
        assert_eq!(endpoint(None), "https://heapanalytics.com/api/add_user_properties");
        assert_eq!(endpoint(Some(Region::Us)), "https://heapanalytics.com/api/add_user_properties");
        assert_eq!(endpoint(Some(Region::Eu)), "https://c.eu.heap-api.com/api/add_user_properties");
    }
}
