//! What a People Data Labs source is built from, and the checks that need no network.

use std::time::Duration;

use enrich_core::FieldError;
use enrich_core::selection::{PropertiesConfig, PropertySelection};
use reqwest::Url;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::catalogue::SELECTION_CATALOGUE;

/// Where PDL's v5 API answers.
pub(crate) const DEFAULT_BASE_URL: &str = "https://api.peopledatalabs.com";

/// PDL's bulk endpoint takes 1 to 100 people a request.
pub(crate) const MAX_BULK: usize = 100;

/// The settings of one People Data Labs source. Every field but `api_key` has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeopleDataLabsConfig {
    /// The API key of the PDL account, sent in the `X-Api-Key` header (never in the URL, which proxies
    /// log).
    pub api_key: SecretString,
    /// Defaults to `https://api.peopledatalabs.com`; another host serves tests and emulators. Must be
    /// https, except on this machine (localhost, 127.0.0.0/8, ::1).
    #[serde(default)]
    pub base_url: Option<String>,
    /// People per bulk request, 1 to 100. PDL suggests 80 (and gzip) where answers of 100 rich records
    /// end in a 502.
    #[serde(default = "default_max_keys_per_request")]
    pub max_keys_per_request: usize,
    /// The lowest likelihood (1 to 10) PDL may answer a match with; a weaker one is "not found", and
    /// not billed. PDL's own default, 2, means a 10–30% chance of being the person asked for.
    #[serde(default = "default_min_likelihood")]
    pub min_likelihood: u8,
    /// Whether PDL capitalises its text ("Sean Thorne"); it answers in lower case otherwise.
    #[serde(default = "default_titlecase")]
    pub titlecase: bool,
    /// Requests started per minute, retries included: 100 on PDL's free plan, 1,000 on paid ones. The
    /// source also slows down when PDL's `x-ratelimit-*` headers say the minute is running out.
    #[serde(default = "default_requests_per_minute")]
    pub requests_per_minute: u32,
    /// Bulk requests in flight at once. With one, a refused key or an account out of credits is
    /// answered once, and nothing else is sent.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// How long one bulk request may take before it counts as failed (and is retried).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// How often a rate-limited, failed or timed-out request is retried.
    #[serde(default = "default_max_retries")]
    pub max_retries: usize,
    /// The first pause between retries; it grows exponentially, with jitter, up to 30 seconds.
    #[serde(default = "default_retry_delay", with = "humantime_serde")]
    pub retry_delay: Duration,
    /// How long one request is retried for, from its first failure.
    #[serde(default = "default_max_retry_time", with = "humantime_serde")]
    pub max_retry_time: Duration,
    /// Which fields this connection writes, and under which names (`include`/`exclude` globs over
    /// field names such as `job_company_*`, `rename` by field); by default every catalogued field,
    /// under the catalogue's names.
    #[serde(default)]
    pub properties: PropertiesConfig,
    /// What users are looked up by: `person` (the person and their company by email, in bulk) or
    /// `company_by_domain` (the company alone, by the email's domain as its `website`).
    #[serde(default)]
    pub lookup: LookupMode,
}

/// What a People Data Labs source looks users up by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LookupMode {
    /// Person enrichment by email, up to 100 a bulk request.
    #[default]
    Person,
    /// Company enrichment (`GET /v5/company/enrich?website=`), once per work domain, the answer kept
    /// for `refresh` for the colleagues who come later. Free-mail domains are skipped.
    CompanyByDomain,
}

fn default_max_keys_per_request() -> usize {
    MAX_BULK
}

fn default_min_likelihood() -> u8 {
    6
}

fn default_titlecase() -> bool {
    true
}

fn default_requests_per_minute() -> u32 {
    100
}

fn default_max_concurrency() -> usize {
    1
}

fn default_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_max_retries() -> usize {
    5
}

fn default_retry_delay() -> Duration {
    Duration::from_secs(1)
}

fn default_max_retry_time() -> Duration {
    Duration::from_secs(300)
}

impl PeopleDataLabsConfig {
    fn base_url(&self) -> &str {
        self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL).trim_end_matches('/')
    }

    /// `…/v5/person/bulk`, or `…/v5/company/enrich` when looking companies up by domain.
    pub(crate) fn endpoint(&self) -> Result<Url, String> {
        let path = match self.lookup {
            LookupMode::Person => "v5/person/bulk",
            LookupMode::CompanyByDomain => "v5/company/enrich",
        };
        enrich_http::endpoint(self.base_url(), path)
    }

    /// The compiled property selection; else every problem, under `properties.`.
    pub(crate) fn selection(&self) -> Result<PropertySelection, Vec<FieldError>> {
        PropertySelection::of_field(&SELECTION_CATALOGUE, &self.properties)
    }

    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let key = self.api_key.expose_secret();
        if key.trim().is_empty() {
            errors.push(FieldError::new(
                "api_key",
                "is empty: set the API key of your People Data Labs account",
            ));
        } else if key.contains(char::is_whitespace) || HeaderValue::from_str(key).is_err() {
            errors.push(FieldError::new(
                "api_key",
                "contains spaces or characters an HTTP header cannot carry: look for a stray line break",
            ));
        }
        if let Some(problem) = enrich_http::base_url_problem(self.base_url(), DEFAULT_BASE_URL) {
            errors.push(FieldError::new("base_url", problem));
        }
        if !(1..=MAX_BULK).contains(&self.max_keys_per_request) {
            errors.push(FieldError::new(
                "max_keys_per_request",
                format!(
                    "must be 1 to {MAX_BULK}, as PDL's bulk endpoint takes, got {}",
                    self.max_keys_per_request
                ),
            ));
        }
        if !(1..=10).contains(&self.min_likelihood) {
            errors.push(FieldError::new(
                "min_likelihood",
                format!("must be 1 to 10, got {}", self.min_likelihood),
            ));
        }
        if self.requests_per_minute == 0 {
            errors.push(FieldError::new(
                "requests_per_minute",
                "must be at least 1; PDL allows 100 a minute on the free plan, 1,000 on paid ones",
            ));
        }
        if self.max_concurrency == 0 {
            errors.push(FieldError::new("max_concurrency", "must be at least 1"));
        }
        if self.timeout.is_zero() {
            errors.push(FieldError::new("timeout", "must be longer than zero, such as 60s"));
        }
        if self.max_retry_time.is_zero() {
            errors.push(FieldError::new(
                "max_retry_time",
                "must be longer than zero, such as 5m (max_retries: 0 turns retries off)",
            ));
        }
        errors.extend(self.selection().err().unwrap_or_default());
        errors
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config(fields: serde_json::Value) -> PeopleDataLabsConfig {
        serde_json::from_value(fields).unwrap()
    }

    #[test]
    fn defaults_follow_pdl_and_the_issue() {
        let config = config(json!({ "api_key": "k".repeat(64) }));
        assert!(config.validate().is_empty());
        assert_eq!((config.max_keys_per_request, config.min_likelihood, config.titlecase), (100, 6, true));
        assert_eq!(config.requests_per_minute, 100);
        assert_eq!(config.endpoint().unwrap().as_str(), "https://api.peopledatalabs.com/v5/person/bulk");
    }

    #[test]
    fn every_problem_is_named_by_its_field() {
        let config = config(json!({
            "api_key": " ", "base_url": "http://pdl.example.com", "max_keys_per_request": 101,
            "min_likelihood": 0, "requests_per_minute": 0, "max_concurrency": 0,
        }));
        let fields: Vec<String> = config.validate().into_iter().map(|problem| problem.field).collect();
        assert_eq!(
            fields,
            [
                "api_key",
                "base_url",
                "max_keys_per_request",
                "min_likelihood",
                "requests_per_minute",
                "max_concurrency"
            ]
        );
    }

    #[test]
    fn properties_are_chosen_and_renamed_with_the_nearest_field_named() {
        let properties = json!({
            "include": ["job_company_*", "job_titel"],
            "exclude": ["job_company_ticker"],
            "rename": {
                "job_company_size": "Company Size",
                "job_company_nmae": "Employer",
                "experience": "Career",
                "full_name": "Name",
            },
        });
        let problems = config(json!({ "api_key": "k", "properties": properties })).validate();
        let found: Vec<(&str, &str)> =
            problems.iter().map(|problem| (problem.field.as_str(), problem.message.as_str())).collect();
        assert_eq!(
            found,
            [
                (
                    "properties.include[1]",
                    "`job_titel` matches no People Data Labs attribute; did you mean `job_title`?"
                ),
                (
                    "properties.rename.experience",
                    "`experience` is no People Data Labs attribute this source writes, so the rename would \
                     never apply"
                ),
                (
                    "properties.rename.full_name",
                    "`full_name` is left out by include or exclude, so the rename would never apply"
                ),
                (
                    "properties.rename.job_company_nmae",
                    "`job_company_nmae` is no People Data Labs attribute, so the rename would never apply; \
                     did you mean `job_company_name`?"
                ),
            ]
        );
        let chosen =
            json!({ "include": ["job_company_*"], "rename": { "job_company_size": "Company Size" } });
        let selection = config(json!({ "api_key": "k", "properties": chosen })).selection().unwrap();
        let names: Vec<String> = selection.properties().into_iter().map(|property| property.name).collect();
        assert!(names.contains(&"Company Size".to_owned()) && names.contains(&"Company Name".to_owned()));
        assert!(
            !names.contains(&"Person Job Title".to_owned())
                && names[0] == "People Data Labs: Date Last Checked"
        );
    }
}
