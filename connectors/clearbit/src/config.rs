//! What a Clearbit source is built from, and the checks that need no network.

use std::time::Duration;

use enrich_core::FieldError;
use reqwest::Url;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::catalogue::SELECTION_CATALOGUE;
use enrich_core::selection::{PropertiesConfig, PropertySelection};

/// Where Clearbit's Enrichment API answers person and combined lookups.
pub(crate) const DEFAULT_BASE_URL: &str = "https://person.clearbit.com";

/// Where Clearbit's Company API answers lookups by domain.
pub(crate) const DEFAULT_COMPANY_BASE_URL: &str = "https://company.clearbit.com";

/// Where Clearbit Reveal answers IP lookups.
pub(crate) const DEFAULT_REVEAL_BASE_URL: &str = "https://reveal.clearbit.com";

/// The API version whose answers the catalogue describes: `ultimateParent` (2019-12-19), `subRole`
/// (2018-11-16) and `metrics.trafficRank` (2022-12-15) all need it or a later one.
pub(crate) const DEFAULT_API_VERSION: &str = "2022-12-15";

/// The shortest timeout of a streaming request: the streaming host holds a request up to 60 seconds
/// while it fetches the record, and then needs time to send it.
const STREAM_MIN_TIMEOUT: Duration = Duration::from_secs(65);

/// The settings of one Clearbit source. Every field but `api_key` has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClearbitConfig {
    /// The secret key (`sk_…`) of the Clearbit account.
    pub api_key: SecretString,
    /// Defaults to `https://person.clearbit.com`; another host serves tests and emulators. Must be
    /// https, except on this machine (localhost, 127.0.0.0/8, ::1), where only an emulator answers.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Whether lookups go to Clearbit's streaming host, which holds a request until the record is
    /// fetched (up to 60 seconds) instead of answering 202. The host is `base_url`'s with `person.`
    /// turned into `person-stream.`, as the official clients do it; a `base_url` whose host does not
    /// start with `person.` (an emulator, which serves both ways) is used as it is. A 202 from it is
    /// left for the next run at once. Clearbit leaves streaming requests out of its per-minute limit;
    /// `requests_per_minute` still paces them.
    #[serde(default)]
    pub stream: bool,
    /// How long one request may take before it counts as failed (and is retried); at least 65 seconds
    /// with `stream`, whatever is set here.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Requests in flight at once: Clearbit's documented limit is 5.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// Requests started per minute, retries and re-asks included: Clearbit allows 600 per key. Lower it
    /// when other programs share the key; the source also slows down when Clearbit's rate-limit headers
    /// say the minute's allowance is running out.
    #[serde(default = "default_requests_per_minute")]
    pub requests_per_minute: u32,
    /// How often a queued lookup (202) is asked again before it is left for the next run (never with
    /// `stream`).
    #[serde(default = "default_pending_retries")]
    pub pending_retries: u32,
    /// The pause before the first re-ask of a queued lookup; it doubles at each further one.
    #[serde(default = "default_pending_delay", with = "humantime_serde")]
    pub pending_delay: Duration,
    /// How often a rate-limited, failed or timed-out request is retried.
    #[serde(default = "default_max_retries")]
    pub max_retries: usize,
    /// The first pause between retries; it grows exponentially, with jitter, up to 30 seconds. A 429
    /// saying that Clearbit's rate-limit window is spent waits for the window's reset instead.
    #[serde(default = "default_retry_delay", with = "humantime_serde")]
    pub retry_delay: Duration,
    /// How long one request is retried for, from its first failure: no retry starts after that, even
    /// with retries left.
    #[serde(default = "default_max_retry_time", with = "humantime_serde")]
    pub max_retry_time: Duration,
    /// Whether addresses at free and consumer mailbox providers (gmail.com, yahoo.co.uk, …; the list
    /// is enrich-core's `src/free_email_domains.txt`) are left out of lookups: Clearbit finds no company behind them,
    /// at best a person, and bills the lookup all the same.
    #[serde(default)]
    pub skip_free_email_domains: bool,
    /// Which attributes this connection writes, and under which names; by default every attribute,
    /// under the catalogue's names.
    #[serde(default)]
    pub properties: PropertiesConfig,
    /// The API version asked for in the `API-Version` header (a date, such as `2022-12-15`); without it,
    /// answers take the shape the account was pinned to at its first request.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// How long an email Clearbit refused as invalid (422) waits before it is asked again: 422s are not
    /// billed, and a domain that did not resolve may come back.
    #[serde(default = "default_invalid_retry_after", with = "humantime_serde")]
    pub invalid_retry_after: Duration,
    /// Clearbit Reveal as the fallback for users whose email found no company (or who have none): their
    /// latest IP address is looked up instead. Absent: no Reveal lookups.
    #[serde(default)]
    pub reveal: Option<RevealConfig>,
    /// What users are looked up by: `combined` (person and company by email) or `company_by_domain`.
    #[serde(default)]
    pub lookup: LookupMode,
    /// Where the Company API answers with `lookup: company_by_domain`; defaults to
    /// `https://company.clearbit.com`, https except for a local emulator.
    #[serde(default)]
    pub company_base_url: Option<String>,
}

/// What a Clearbit source looks users up by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LookupMode {
    /// The person and their company by email, from the combined endpoint.
    #[default]
    Combined,
    /// The company alone by the domain of a work email, from the Company API: one lookup for every
    /// colleague at the domain, kept for `refresh` for the colleagues who come later. Free-mail
    /// domains are skipped.
    CompanyByDomain,
}

/// Where Reveal lookups go; the key, limits and retries are the source's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevealConfig {
    /// Defaults to `https://reveal.clearbit.com`; https, except for a local emulator.
    #[serde(default)]
    pub base_url: Option<String>,
}

impl RevealConfig {
    fn base_url(&self) -> &str {
        self.base_url.as_deref().unwrap_or(DEFAULT_REVEAL_BASE_URL).trim_end_matches('/')
    }

    /// The Reveal lookup's URL, without the query.
    pub(crate) fn endpoint(&self) -> Result<Url, String> {
        enrich_http::endpoint(self.base_url(), "v1/companies/find")
    }
}

/// `base` with `path` appended to its own path.
fn default_api_version() -> String {
    DEFAULT_API_VERSION.to_owned()
}

fn default_invalid_retry_after() -> Duration {
    Duration::from_secs(30 * 24 * 60 * 60)
}

fn default_timeout() -> Duration {
    Duration::from_secs(20)
}

fn default_max_concurrency() -> usize {
    5
}

fn default_requests_per_minute() -> u32 {
    600
}

fn default_pending_retries() -> u32 {
    3
}

fn default_pending_delay() -> Duration {
    Duration::from_secs(2)
}

fn default_max_retries() -> usize {
    5
}

fn default_retry_delay() -> Duration {
    Duration::from_millis(500)
}

fn default_max_retry_time() -> Duration {
    Duration::from_secs(120)
}

impl ClearbitConfig {
    /// The API root as configured, with no trailing slash.
    fn base_url(&self) -> &str {
        self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL).trim_end_matches('/')
    }

    /// The combined lookup's URL, without the query: on the streaming host with `stream`.
    pub(crate) fn endpoint(&self) -> Result<Url, String> {
        let mut url = enrich_http::endpoint(self.base_url(), "v2/combined/find")?;
        if self.stream
            && let Some(domain) = url.host_str().and_then(|host| host.strip_prefix("person."))
        {
            let host = format!("person-stream.{domain}");
            url.set_host(Some(&host)).map_err(|error| error.to_string())?;
        }
        Ok(url)
    }

    /// The Company API's lookup URL, without the query.
    pub(crate) fn company_endpoint(&self) -> Result<Url, String> {
        enrich_http::endpoint(self.company_base_url(), "v2/companies/find")
    }

    fn company_base_url(&self) -> &str {
        self.company_base_url.as_deref().unwrap_or(DEFAULT_COMPANY_BASE_URL).trim_end_matches('/')
    }

    /// How long one request may take.
    pub(crate) fn request_timeout(&self) -> Duration {
        if self.stream { self.timeout.max(STREAM_MIN_TIMEOUT) } else { self.timeout }
    }

    /// Every problem in this config, all at once. Messages never quote the key.
    pub fn validate(&self) -> Vec<FieldError> {
        self.selection().err().unwrap_or_default()
    }

    /// The compiled property selection of a config without problems; else every problem, never empty.
    pub(crate) fn selection(&self) -> Result<PropertySelection, Vec<FieldError>> {
        let mut errors = Vec::new();
        if let Some(problem) = api_key_problem(self.api_key.expose_secret()) {
            errors.push(FieldError::new("api_key", problem));
        }
        if let Some(problem) = enrich_http::base_url_problem(self.base_url(), DEFAULT_BASE_URL) {
            errors.push(FieldError::new("base_url", problem));
        }
        let reveal_problem = self
            .reveal
            .as_ref()
            .and_then(|reveal| enrich_http::base_url_problem(reveal.base_url(), DEFAULT_REVEAL_BASE_URL));
        if let Some(problem) = reveal_problem {
            errors.push(FieldError::new("reveal.base_url", problem));
        }
        if let Some(problem) =
            enrich_http::base_url_problem(self.company_base_url(), DEFAULT_COMPANY_BASE_URL)
        {
            errors.push(FieldError::new("company_base_url", problem));
        }
        if self.max_concurrency == 0 {
            errors.push(FieldError::new("max_concurrency", "must be at least 1"));
        }
        if self.requests_per_minute == 0 {
            errors.push(FieldError::new(
                "requests_per_minute",
                "must be at least 1; Clearbit allows 600 a minute per key",
            ));
        }
        if self.timeout.is_zero() {
            errors.push(FieldError::new("timeout", "must be longer than zero, such as 20s"));
        }
        if !is_api_version(&self.api_version) {
            errors.push(FieldError::new(
                "api_version",
                format!("must be a date such as {DEFAULT_API_VERSION}, got {:?}", self.api_version),
            ));
        }
        if self.invalid_retry_after.is_zero() {
            errors.push(FieldError::new("invalid_retry_after", "must be longer than zero, such as 30d"));
        }
        if self.max_retry_time.is_zero() {
            errors.push(FieldError::new(
                "max_retry_time",
                "must be longer than zero, such as 2m (max_retries: 0 turns retries off)",
            ));
        }
        match PropertySelection::of_field(&SELECTION_CATALOGUE, &self.properties) {
            Ok(selection) if errors.is_empty() => return Ok(selection),
            Ok(_) => {}
            Err(problems) => errors.extend(problems),
        }
        Err(errors)
    }
}

/// `YYYY-MM-DD`, as Clearbit names its versions.
fn is_api_version(version: &str) -> bool {
    version.len() == 10
        && version.bytes().enumerate().all(|(at, byte)| match at {
            4 | 7 => byte == b'-',
            _ => byte.is_ascii_digit(),
        })
}

fn api_key_problem(key: &str) -> Option<&'static str> {
    if key.trim().is_empty() {
        Some("is empty: set the secret key (sk_…) of your Clearbit account")
    } else if key.starts_with("pk_") {
        Some(
            "is a publishable key (pk_…), which is meant for browsers: use the secret key (sk_…) \
             from the Clearbit dashboard, not the publishable one",
        )
    } else if key.contains(char::is_whitespace) || HeaderValue::from_str(key).is_err() {
        Some("contains spaces or characters an HTTP header cannot carry: look for a stray line break")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config(overrides: serde_json::Value) -> ClearbitConfig {
        let mut fields = json!({ "api_key": "sk_0123456789abcdef" });
        if let (Some(fields), serde_json::Value::Object(overrides)) = (fields.as_object_mut(), overrides) {
            fields.extend(overrides);
        }
        serde_json::from_value(fields).unwrap()
    }

    #[test]
    fn defaults_fill_every_optional_field() {
        let config = config(json!({}));
        assert_eq!(config.base_url(), "https://person.clearbit.com");
        assert_eq!(config.endpoint().unwrap().as_str(), "https://person.clearbit.com/v2/combined/find");
        assert!(!config.stream);
        assert_eq!(config.timeout, Duration::from_secs(20));
        assert_eq!(config.request_timeout(), Duration::from_secs(20));
        assert_eq!(config.max_concurrency, 5);
        assert_eq!(config.requests_per_minute, 600);
        assert_eq!(config.pending_retries, 3);
        assert_eq!(config.pending_delay, Duration::from_secs(2));
        assert_eq!(config.max_retries, 5);
        assert_eq!(config.retry_delay, Duration::from_millis(500));
        assert_eq!(config.max_retry_time, Duration::from_secs(120));
        assert!(!config.skip_free_email_domains);
        assert_eq!(config.api_version, "2022-12-15");
        assert_eq!(config.invalid_retry_after, Duration::from_secs(30 * 86_400));
        assert_eq!(config.lookup, LookupMode::Combined);
        assert_eq!(
            config.company_endpoint().unwrap().as_str(),
            "https://company.clearbit.com/v2/companies/find"
        );
        assert_eq!(config.validate(), []);
    }

    #[test]
    fn durations_are_human_readable() {
        let config = config(json!({
            "timeout": "1m 30s", "pending_delay": "250ms", "retry_delay": "1ms", "max_retry_time": "5m",
        }));
        assert_eq!(config.timeout, Duration::from_secs(90));
        assert_eq!(config.pending_delay, Duration::from_millis(250));
        assert_eq!(config.retry_delay, Duration::from_millis(1));
        assert_eq!(config.max_retry_time, Duration::from_secs(300));
    }

    #[test]
    fn stream_asks_the_streaming_host_and_waits_longer() {
        let streaming = config(json!({ "stream": true }));
        assert_eq!(
            streaming.endpoint().unwrap().as_str(),
            "https://person-stream.clearbit.com/v2/combined/find"
        );
        assert_eq!(streaming.request_timeout(), Duration::from_secs(65));
        let patient = config(json!({ "stream": true, "timeout": "90s" }));
        assert_eq!(patient.request_timeout(), Duration::from_secs(90));
        // A host of another shape (an emulator serves both ways) is asked as it is.
        let emulator = config(json!({ "stream": true, "base_url": "http://127.0.0.1:9000/clearbit/" }));
        assert_eq!(emulator.endpoint().unwrap().as_str(), "http://127.0.0.1:9000/clearbit/v2/combined/find");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let fields = json!({ "api_key": "sk_x", "apikey": "sk_x" });
        let error = serde_json::from_value::<ClearbitConfig>(fields).unwrap_err();
        assert!(error.to_string().contains("apikey"), "{error}");
    }

    #[test]
    fn reports_every_problem_at_once() {
        let problems = json!({
            "api_key": "",
            "base_url": "clearbit.com",
            "max_concurrency": 0,
            "requests_per_minute": 0,
            "timeout": "0s",
            "max_retry_time": "0s",
            "api_version": "latest",
            "invalid_retry_after": "0s",
        });
        let config = config(problems);
        let fields: Vec<_> = config.validate().into_iter().map(|error| error.field).collect();
        assert_eq!(
            fields,
            [
                "api_key",
                "base_url",
                "max_concurrency",
                "requests_per_minute",
                "timeout",
                "api_version",
                "invalid_retry_after",
                "max_retry_time"
            ]
        );
    }

    #[test]
    fn property_selection_problems_are_reported_under_properties() {
        let properties = json!({
            "include": ["company.*", "company.metrics.employeeRange"],
            "rename": { "company.metrics.employeesRange": "" },
        });
        let errors = config(json!({ "api_key": "sk_secret987", "properties": properties })).validate();
        let fields: Vec<&str> = errors.iter().map(|error| error.field.as_str()).collect();
        assert_eq!(fields, ["properties.include[1]", "properties.rename.company.metrics.employeesRange"]);
        assert!(errors.iter().all(|error| !error.message.contains("secret987")), "{errors:?}");
    }

    #[test]
    fn the_selection_is_everything_by_default_and_refused_fields_are_named() {
        assert_eq!(config(json!({})).properties, PropertiesConfig::default());
        let fields = json!({ "api_key": "sk_x", "properties": { "includes": ["company.*"] } });
        let error = serde_json::from_value::<ClearbitConfig>(fields).unwrap_err();
        assert!(error.to_string().contains("includes"), "{error}");
    }

    #[test]
    fn a_publishable_key_is_refused_without_being_quoted() {
        let errors = config(json!({ "api_key": "pk_publishable123" })).validate();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "api_key");
        assert!(errors[0].message.contains("secret key (sk_…)"), "{}", errors[0]);
        assert!(!errors[0].message.contains("publishable123"), "{}", errors[0]);
    }

    #[test]
    fn a_key_with_a_line_break_is_refused_without_being_quoted() {
        let errors = config(json!({ "api_key": "sk_secret123\n" })).validate();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(!errors[0].message.contains("secret123"), "{}", errors[0]);
    }

    #[test]
    fn base_url_must_be_absolute_https() {
        for bad in ["ftp://person.clearbit.com", "/v2", "mailto:alex@clearbit.com", "http//x"] {
            let errors = config(json!({ "base_url": bad })).validate();
            assert_eq!(errors.len(), 1, "{bad}: {errors:?}");
            assert_eq!(errors[0].field, "base_url");
        }
        for good in ["https://person.clearbit.com/", "https://10.0.0.7:8443/clearbit"] {
            assert_eq!(config(json!({ "base_url": good })).validate(), [], "{good}");
        }
    }

    #[test]
    fn company_by_domain_asks_the_company_api_at_a_checked_url() {
        let by_domain = config(json!({ "lookup": "company_by_domain" }));
        assert_eq!(by_domain.lookup, LookupMode::CompanyByDomain);
        let local = config(json!({ "company_base_url": "http://127.0.0.1:9000/clearbit/" }));
        assert_eq!(
            local.company_endpoint().unwrap().as_str(),
            "http://127.0.0.1:9000/clearbit/v2/companies/find"
        );
        let errors = config(json!({ "company_base_url": "http://company.clearbit.com" })).validate();
        let fields: Vec<&str> = errors.iter().map(|error| error.field.as_str()).collect();
        assert_eq!(fields, ["company_base_url"]);
        let error =
            serde_json::from_value::<ClearbitConfig>(json!({ "api_key": "sk_x", "lookup": "domain" }));
        assert!(error.unwrap_err().to_string().contains("company_by_domain"), "the choices are named");
    }

    #[test]
    fn plain_http_is_only_for_this_machine() {
        for local in [
            "http://127.0.0.1:8080",
            "http://127.8.9.10",
            "http://localhost/clearbit",
            "http://LOCALHOST:3000",
            "http://[::1]:8080",
        ] {
            assert_eq!(config(json!({ "base_url": local })).validate(), [], "{local}");
        }
        for remote in [
            "http://person.clearbit.com",
            "http://10.0.0.7:8080",
            "http://[::ffff:7f00:1]",
            "http://localhost.example.com",
            "http://user:sk_in_url@proxy.example.com",
        ] {
            let errors = config(json!({ "base_url": remote })).validate();
            assert_eq!(errors.len(), 1, "{remote}: {errors:?}");
            assert_eq!(errors[0].field, "base_url");
            assert!(errors[0].message.contains("use https://"), "{}", errors[0]);
            assert!(errors[0].message.contains("only allowed for a local emulator"), "{}", errors[0]);
            assert!(!errors[0].message.contains("sk_in_url"), "{}", errors[0]);
        }
    }
}
