//! The Clearbit source: one combined lookup per email, within Clearbit's concurrency and rate limits,
//! retried with backoff, with queued (202) lookups asked again a few times before they are left for the
//! next run (or, on the streaming host, left at once). With Reveal configured, a user whose email found
//! no company (or who has no usable email) is looked up by the IP address of their latest session.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use enrich_core::free_email::{is_free_email, is_free_mail_domain};
use enrich_core::{
    CancellationToken, ConnectorError, KeyKind, Lookup, LookupHints, LookupKey, PropertyInfo, Record,
    ResultCache, Segment, SharedBudget, Source, UserRecord,
};
use enrich_http::{Failure, Limits, RetryPolicy, Window};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Client, Url};
use secrecy::{ExposeSecret, SecretString};

use crate::answer::{Answer, Api, interpret};
use crate::catalogue::{COMPANY_SOURCE, DATE_LAST_CHECKED, MATCH, REVEAL_FIELDS};
use crate::config::{ClearbitConfig, LookupMode, RevealConfig};
use crate::mapping::{map_combined, map_company, not_found};
use crate::reveal::{RevealAnswers, RevealOutcome, is_public, map_reveal};
use enrich_core::selection::PropertySelection;

/// The name errors and log lines give the service.
const PROVIDER: &str = "Clearbit";

/// The address `check()` looks up: Clearbit's own founder, whom Clearbit always knows.
const CHECK_EMAIL: &str = "alex@clearbit.com";

/// The domain the Company API check looks up: Clearbit's own.
const CHECK_DOMAIN: &str = "clearbit.com";

/// The address the Reveal check looks up: a well-known public one (Google's DNS resolver).
const CHECK_IP: &str = "8.8.8.8";

/// A combined record is tens of kilobytes; a larger answer is refused unread.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Lookups in flight per request permit: lookups sleeping before they ask again for a queued record
/// hold no permit, and must not keep others from using it.
const LOOKUPS_PER_PERMIT: usize = 4;

/// Clearbit Enrichment (with Reveal as its fallback), or Reveal alone, as a [`Source`]. Its `Debug`
/// shows no key.
#[derive(Debug)]
pub struct ClearbitSource {
    client: Client,
    /// What users are looked up by: email (Enrichment, with Reveal as the fallback), an email's domain
    /// (the Company API), or IP (Reveal only).
    key_kind: KeyKind,
    /// `…/v2/combined/find`, or `…/v2/companies/find` when looking companies up by domain.
    enrichment: Endpoint,
    /// `…/v1/companies/find` with its answers of this run, when Reveal is configured.
    reveal: Option<(Endpoint, RevealAnswers)>,
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

/// One of Clearbit's lookup URLs.
#[derive(Debug)]
struct Endpoint {
    api: Api,
    /// Without the query.
    url: Url,
    /// The URL as messages name it: without credentials a proxy URL may carry.
    shown: String,
}

impl Endpoint {
    fn new(api: Api, url: Url) -> Self {
        Self { api, shown: enrich_http::shown_url(&url), url }
    }
}

/// One request to make: where, with which query, and what it asks about (blanked out of answers).
#[derive(Debug)]
struct Ask<'a> {
    endpoint: &'a Endpoint,
    query: Vec<(&'static str, String)>,
    asked: &'a str,
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
        match config.lookup {
            LookupMode::Combined => Self::build(config, KeyKind::Email),
            LookupMode::CompanyByDomain => Self::build(config, KeyKind::Domain),
        }
    }

    /// Reveal alone, looking users up by IP address (`type: clearbit_reveal`): `base_url` is Reveal's
    /// (by default `https://reveal.clearbit.com`).
    pub fn reveal_only(config: &ClearbitConfig) -> Result<Self, ConnectorError> {
        let reveal = RevealConfig { base_url: config.base_url.clone() };
        let config = ClearbitConfig { reveal: Some(reveal), ..config.clone() };
        Self::build(&config, KeyKind::Ip)
    }

    fn build(config: &ClearbitConfig, key_kind: KeyKind) -> Result<Self, ConnectorError> {
        // `ensure_valid` words the refusal as every component's is, and refuses any problem.
        let selection = config.selection().map_err(|problems| {
            enrich_core::ensure_valid("Clearbit", &problems).expect_err("a config with problems is refused")
        })?;
        let (enrichment, field) = match key_kind {
            KeyKind::Domain => {
                (config.company_endpoint().map(|url| Endpoint::new(Api::Company, url)), "company_base_url")
            }
            KeyKind::Email | KeyKind::Ip => {
                (config.endpoint().map(|url| Endpoint::new(Api::Combined, url)), "base_url")
            }
        };
        let enrichment = enrichment
            .map_err(|error| ConnectorError::Fatal(format!("invalid Clearbit {field}: {error}")))?;
        let reveal = match &config.reveal {
            Some(reveal) => Some(reveal.endpoint().map_err(|error| {
                ConnectorError::Fatal(format!("invalid Clearbit reveal.base_url: {error}"))
            })?),
            None => None,
        };
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
            key_kind,
            enrichment,
            reveal: reveal.map(|url| (Endpoint::new(Api::Reveal, url), RevealAnswers::default())),
            api_version,
            api_warned: AtomicBool::new(false),
            invalid_retry_after: config.invalid_retry_after,
            api_key: config.api_key.clone(),
            limits,
            max_concurrency: config.max_concurrency,
            requests_per_minute: at_least_one(config.requests_per_minute),
            timeout,
            retries,
            // Company lookups go to the Company API's own host, never the person streaming host.
            stream: config.stream && key_kind != KeyKind::Domain,
            pending_retries: config.pending_retries,
            pending_delay: config.pending_delay,
            skip_free_email_domains: config.skip_free_email_domains,
            selection,
        })
    }

    /// Sends one request and reads its answer.
    async fn request(&self, ask: &Ask<'_>) -> Result<Answer, Failure> {
        let endpoint = ask.endpoint;
        let response = self
            .client
            .get(endpoint.url.clone())
            .query(&ask.query)
            .bearer_auth(self.api_key.expose_secret())
            .header("API-Version", self.api_version.clone())
            .send()
            .await
            .map_err(|error| enrich_http::transport_failure(PROVIDER, self.timeout, error))?;
        let status = response.status();
        self.limits.observe(status, rate_limit_window(response.headers()));
        self.heed_api_warning(response.headers());
        if status.is_redirection() {
            let redirect = enrich_http::redirected(PROVIDER, status, response.headers(), &endpoint.shown);
            return Err(Failure::Final(redirect));
        }
        let body = enrich_http::read_body(PROVIDER, self.timeout, response, MAX_ANSWER_BYTES).await?;
        interpret(endpoint.api, status, &body, ask.asked, &endpoint.shown)
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
    async fn ask(&self, ask: &Ask<'_>, stop: &CancellationToken) -> Result<Option<Answer>, ConnectorError> {
        let attempt = || self.limits.send(stop, self.request(ask));
        self.retries.run(PROVIDER, &self.limits, stop, attempt).await
    }

    /// One lookup of a person and company (by email) or a company (by domain), asked again while
    /// Clearbit fetches the record (202), as often as `pending_retries` allows.
    async fn lookup_record(
        &self,
        ask: &Ask<'_>,
        stop: &CancellationToken,
    ) -> Option<Result<Lookup, ConnectorError>> {
        let mut delay = self.pending_delay;
        let mut re_asks_left = self.pending_retries;
        let mut queued = false;
        loop {
            let answer = match self.ask(ask, stop).await {
                Ok(Some(answer)) => answer,
                // Stopped: a record Clearbit is fetching stays pending, anything else never happened.
                Ok(None) => return queued.then_some(Ok(Lookup::Pending)),
                Err(error) => return Some(Err(error)),
            };
            let lookup = match answer {
                Answer::Record(response) if ask.endpoint.api == Api::Company => {
                    Lookup::Found(map_company(&response, &self.selection))
                }
                Answer::Record(response) => Lookup::Found(map_combined(&response, &self.selection)),
                // Only `Company …` properties come from a company lookup: no `Clearbit: Match`.
                Answer::NotFound if ask.endpoint.api == Api::Company => Lookup::NotFound(Record::default()),
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

    /// An email lookup, with Reveal asked about the hinted address when the email found no company.
    async fn lookup_email_or_ip(
        &self,
        email: &str,
        hints: &LookupHints,
        stop: &CancellationToken,
    ) -> Option<Result<Lookup, ConnectorError>> {
        let fallback_ip = hints.ip.filter(|ip| self.reveal.is_some() && is_public(*ip));
        // A free-mail address would only find a person, if anything: with Reveal, its address speaks
        // for the company instead.
        let email_lookup = if self.skip_free_email_domains && is_free_email(email) {
            Lookup::NotFound(Record::default())
        } else {
            let ask = Ask { endpoint: &self.enrichment, query: lookup_query(email, hints), asked: email };
            match self.lookup_record(&ask, stop).await? {
                Ok(lookup) => lookup,
                Err(error) => return Some(Err(error)),
            }
        };
        let emailed = match email_lookup {
            Lookup::Found(record) if !record.properties.contains_key(COMPANY_SOURCE) => record,
            Lookup::NotFound(record) => record,
            settled => return Some(Ok(settled)),
        };
        let Some(ip) = fallback_ip else { return Some(Ok(found_if_any(emailed))) };
        match self.lookup_ip(ip, stop).await {
            // Stopped before Reveal answered: what the email found is written, Reveal asked next time.
            None | Some(Ok(None)) => Some(Ok(found_if_any(emailed))),
            Some(Ok(Some(company))) => Some(Ok(Lookup::Found(merged(emailed, company)))),
            Some(Err(error)) => Some(Err(error)),
        }
    }

    /// One Reveal lookup per address and run, however many users share it; `None` when stopped first.
    async fn lookup_ip(&self, ip: IpAddr, stop: &CancellationToken) -> Option<RevealOutcome> {
        let Some((endpoint, answers)) = &self.reveal else {
            return Some(Err(ConnectorError::Fatal(
                "Clearbit Enrichment looks users up by email; set reveal: to look IP addresses up".to_owned(),
            )));
        };
        answers
            .get(ip, || async {
                let shown = ip.to_string();
                let ask = Ask { endpoint, query: vec![("ip", shown.clone())], asked: &shown };
                match self.ask(&ask, stop).await {
                    Ok(None) => None,
                    Ok(Some(Answer::Record(response))) => {
                        Some(Ok(Some(map_reveal(&response, &self.selection))))
                    }
                    // Reveal does not queue; an invalid address has no company either.
                    Ok(Some(Answer::NotFound | Answer::Queued | Answer::Invalid(_))) => Some(Ok(None)),
                    Err(error) => Some(Err(error)),
                }
            })
            .await
    }
}

/// A record with properties beyond `Clearbit: Match` is a found one (a person, say).
fn found_if_any(record: Record) -> Lookup {
    if record.properties.keys().any(|name| name != MATCH) {
        Lookup::Found(record)
    } else {
        Lookup::NotFound(record)
    }
}

/// What the email found (a person, or nothing) with the company Reveal found.
fn merged(mut emailed: Record, company: Record) -> Record {
    emailed.properties.extend(company.properties);
    emailed.derived.extend(company.derived);
    emailed
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
        self.key_kind
    }

    fn checked_property(&self) -> &str {
        DATE_LAST_CHECKED
    }

    /// The selection's properties, without Reveal's fields when Reveal is not asked, and without
    /// `Clearbit: Match` (which is about emails) when only Reveal is.
    fn properties(&self) -> Vec<PropertyInfo> {
        let mut properties = self.selection.properties();
        properties.retain(|property| match property.name.as_str() {
            MATCH => self.key_kind == KeyKind::Email,
            name if REVEAL_FIELDS.contains(&name) => self.reveal.is_some(),
            // A company lookup writes the company's attributes only.
            _ if self.key_kind == KeyKind::Domain => {
                property.path.as_deref().is_none_or(|path| path.starts_with("company."))
            }
            _ => true,
        });
        properties
    }

    /// The breakdowns the integration exists for: match rate, industry, company size, technologies.
    fn segments(&self) -> Vec<Segment> {
        let match_segment = Segment { title: "Match".into(), property: MATCH.into(), list: false };
        let company_source =
            Segment { title: "Company Source".into(), property: COMPANY_SOURCE.into(), list: false };
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
        let about_the_lookup = match self.key_kind {
            KeyKind::Email if self.reveal.is_some() => vec![match_segment, company_source],
            KeyKind::Email => vec![match_segment],
            KeyKind::Ip => vec![company_source],
            KeyKind::Domain => Vec::new(),
        };
        about_the_lookup.into_iter().chain(named).collect()
    }

    fn max_in_flight(&self) -> usize {
        self.max_concurrency.saturating_mul(LOOKUPS_PER_PERMIT)
    }

    fn declines(&self, key: &LookupKey) -> Option<&'static str> {
        match key {
            LookupKey::Email(email)
                if self.skip_free_email_domains && self.reveal.is_none() && is_free_email(email) =>
            {
                Some("free email domain")
            }
            LookupKey::Domain(domain) if is_free_mail_domain(domain) => Some("free email domain"),
            LookupKey::Ip(ip) if !is_public(*ip) => Some("private or reserved IP address"),
            LookupKey::Email(_) | LookupKey::Ip(_) | LookupKey::Domain(_) => None,
        }
    }

    /// A company's domain and an address's company are the same for every user who has them.
    fn caches(&self, key: &LookupKey) -> bool {
        matches!(key, LookupKey::Domain(_) | LookupKey::Ip(_))
    }

    fn use_cache(&self, cache: Option<ResultCache>) {
        if let Some((_, answers)) = &self.reveal {
            answers.use_cache(cache);
        }
    }

    /// With Reveal, a user without a usable email is looked up by a public IP address.
    fn fallback_key(&self, user: &UserRecord) -> Option<LookupKey> {
        let ip = user.ip.filter(|ip| self.reveal.is_some() && is_public(*ip))?;
        Some(LookupKey::Ip(ip))
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
            LookupKey::Email(email) => self.lookup_email_or_ip(email, hints, stop).await,
            LookupKey::Domain(domain) => {
                let ask = Ask {
                    endpoint: &self.enrichment,
                    query: vec![("domain", domain.clone())],
                    asked: domain,
                };
                self.lookup_record(&ask, stop).await
            }
            LookupKey::Ip(ip) => Some(match self.lookup_ip(*ip, stop).await? {
                Ok(Some(company)) => Ok(Lookup::Found(company)),
                Ok(None) => Ok(Lookup::NotFound(Record::default())),
                Err(error) => Err(error),
            }),
        }
    }

    /// Any answer but a refusal of the key or the account proves the key works; a queued or refused
    /// address is no reason to ask again.
    async fn check(&self) -> Result<String, ConnectorError> {
        let mut asks = Vec::new();
        match self.key_kind {
            KeyKind::Email => {
                let query = lookup_query(CHECK_EMAIL, &LookupHints::default());
                asks.push(Ask { endpoint: &self.enrichment, query, asked: CHECK_EMAIL });
            }
            KeyKind::Domain => {
                let query = vec![("domain", CHECK_DOMAIN.to_owned())];
                asks.push(Ask { endpoint: &self.enrichment, query, asked: CHECK_DOMAIN });
            }
            KeyKind::Ip => {}
        }
        if let Some((endpoint, _)) = &self.reveal {
            asks.push(Ask { endpoint, query: vec![("ip", CHECK_IP.to_owned())], asked: CHECK_IP });
        }
        let mut said = Vec::new();
        for ask in &asks {
            let answer = self.ask(ask, &CancellationToken::new()).await?;
            let outcome =
                match answer.ok_or_else(|| ConnectorError::Fatal("the check was stopped".to_owned()))? {
                    Answer::Record(_) => "record found, billed as one",
                    Answer::NotFound => "no record, billed as one",
                    Answer::Queued => "record queued, billed as one",
                    Answer::Invalid(_) => "refused as invalid, not billed",
                };
            said.push(format!("one lookup of {}: {outcome}", ask.asked));
        }
        Ok(format!("key accepted ({})", said.join("; ")))
    }
}
