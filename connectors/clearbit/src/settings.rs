//! What the CLI's registry needs of Clearbit's config sections: `type: clearbit` and `type:
//! clearbit_reveal`.

use std::sync::Arc;

use enrich_core::selection::PropertySelection;
use enrich_core::{
    Billing, Choice, ConnectorError, FieldError, LookupKey, PropertyInfo, Record, Secret, SharedBudget,
    Source, SourceSettings, Starter,
};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;

use crate::{
    ClearbitConfig, ClearbitSource, LookupMode, is_free_email, map_combined, map_company, map_reveal,
};

/// `type: clearbit_reveal`: Reveal alone, keyed by IP address; `base_url` is Reveal's.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct ClearbitRevealConfig(pub ClearbitConfig);

impl SourceSettings for ClearbitConfig {
    fn starter() -> Option<Starter> {
        const SCOPE: Choice = Choice {
            question: "Look up each person with their company, or companies alone by work domain (all or company)",
            answers: &[
                ("all", ""),
                (
                    "company",
                    "lookup: company_by_domain   # one lookup per work domain, company properties only\n",
                ),
            ],
            not_after: &[],
        };
        // Companies by domain never look a free-mail domain up.
        const FREE_MAIL: Choice = Choice {
            question: "Skip emails at free-mail domains such as gmail.com (yes or no)",
            answers: &[
                ("yes", "skip_free_email_domains: true\n"),
                ("no", "skip_free_email_domains: false\n"),
            ],
            not_after: &["company"],
        };
        Some(Starter {
            kind: "clearbit",
            key_variable: "CLEARBIT_API_KEY",
            url_fields: &["base_url", "company_base_url"],
            choices: &[SCOPE, FREE_MAIL],
        })
    }

    fn validate(&self) -> Vec<FieldError> {
        ClearbitConfig::validate(self)
    }

    fn build(&self, budget: Option<Arc<dyn SharedBudget>>) -> Result<Arc<dyn Source>, ConnectorError> {
        Ok(Arc::new(sharing(ClearbitSource::new(self)?, budget)))
    }

    fn describe(&self) -> String {
        let fallback = if self.reveal.is_some() { " (reveal fallback)" } else { "" };
        format!("clearbit{fallback}")
    }

    fn secrets(&self) -> Vec<Secret<'_>> {
        let reveal_url = self.reveal.as_ref().and_then(|reveal| reveal.base_url.as_deref());
        let urls = [self.base_url.as_deref(), reveal_url].into_iter().flatten().map(Secret::Url);
        std::iter::once(Secret::Text(self.api_key.expose_secret())).chain(urls).collect()
    }

    fn lookups_per_minute(&self) -> u64 {
        self.requests_per_minute.into()
    }

    fn properties(&self) -> Vec<PropertyInfo> {
        self.selection().map(|selection| selection.properties()).unwrap_or_default()
    }

    fn map_answer(&self, answer: &Value) -> Result<Record, String> {
        let selection = valid_selection(self)?;
        match self.lookup {
            LookupMode::Combined if has_all(answer, &["person", "company"]) => {
                Ok(map_combined(answer, &selection))
            }
            LookupMode::Combined => {
                Err("expected an answer of Clearbit's combined lookup: an object with `person` and `company`"
                    .into())
            }
            LookupMode::CompanyByDomain if has_all(answer, &["domain"]) => {
                Ok(map_company(answer, &selection))
            }
            LookupMode::CompanyByDomain => {
                Err("expected an answer of Clearbit's Company API: a company, an object with `domain`".into())
            }
        }
    }

    fn billing(&self) -> Billing {
        Billing {
            rule: "each email Clearbit answers, found or not, is billed once a billing period",
            flagged: Some(("at free-mail domains", is_free_mail)),
        }
    }
}

fn is_free_mail(key: &LookupKey) -> bool {
    matches!(key, LookupKey::Email(email) if is_free_email(email))
}

impl SourceSettings for ClearbitRevealConfig {
    /// Reveal alone addresses anonymous users, whom the Heap sink `enrich init` writes cannot address.
    fn starter() -> Option<Starter> {
        None
    }

    fn validate(&self) -> Vec<FieldError> {
        self.0.validate()
    }

    fn build(&self, budget: Option<Arc<dyn SharedBudget>>) -> Result<Arc<dyn Source>, ConnectorError> {
        Ok(Arc::new(sharing(ClearbitSource::reveal_only(&self.0)?, budget)))
    }

    fn describe(&self) -> String {
        "clearbit_reveal".to_owned()
    }

    fn secrets(&self) -> Vec<Secret<'_>> {
        SourceSettings::secrets(&self.0)
    }

    fn lookups_per_minute(&self) -> u64 {
        self.0.requests_per_minute.into()
    }

    fn properties(&self) -> Vec<PropertyInfo> {
        SourceSettings::properties(&self.0)
    }

    fn map_answer(&self, answer: &Value) -> Result<Record, String> {
        if !has_all(answer, &["ip", "company"]) {
            return Err("expected an answer of Clearbit Reveal: an object with `ip` and `company`".into());
        }
        Ok(map_reveal(answer, &valid_selection(&self.0)?))
    }

    fn billing(&self) -> Billing {
        Billing { rule: "each IP address looked up counts against the Reveal plan", flagged: None }
    }
}

/// The selection of a section the config loader validated.
fn valid_selection(config: &ClearbitConfig) -> Result<PropertySelection, String> {
    config.selection().map_err(|_| "the section is not valid: `enrich validate` says why".to_owned())
}

/// Whether `answer` is an object with each of these fields (Clearbit sends them `null` when empty).
fn has_all(answer: &Value, fields: &[&str]) -> bool {
    answer.as_object().is_some_and(|object| fields.iter().all(|field| object.contains_key(*field)))
}

/// The source, booking its requests in `budget` too when there is one.
fn sharing(source: ClearbitSource, budget: Option<Arc<dyn SharedBudget>>) -> ClearbitSource {
    match budget {
        Some(budget) => source.with_shared_budget(budget),
        None => source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: Value) -> ClearbitConfig {
        let Value::Object(extra) = extra else { panic!("a section is an object") };
        let mut section = serde_json::json!({ "api_key": "sk_test" });
        section.as_object_mut().unwrap().extend(extra);
        serde_json::from_value(section).unwrap()
    }

    #[test]
    fn an_answer_is_mapped_as_the_lookup_mode_maps_it_or_says_what_was_expected() {
        let combined =
            serde_json::json!({ "person": null, "company": { "name": "Acme", "domain": "acme.io" } });
        let company = serde_json::json!({ "name": "Acme", "domain": "acme.io" });
        let reveal = serde_json::json!({ "ip": "203.0.113.7", "company": { "name": "Acme" } });
        let by_email = config(serde_json::json!({}));
        let by_domain = config(serde_json::json!({ "lookup": "company_by_domain" }));
        let name = |record: Record| record.properties["Company Name"].as_text().map(str::to_owned);
        assert_eq!(by_email.map_answer(&combined).map(name), Ok(Some("Acme".into())));
        assert_eq!(by_domain.map_answer(&company).map(name), Ok(Some("Acme".into())));
        let reveal_only = ClearbitRevealConfig(config(serde_json::json!({})));
        let revealed = reveal_only.map_answer(&reveal).unwrap();
        assert_eq!(revealed.properties["Clearbit: Company Source"].as_text(), Some("reveal"));

        let problem = by_email.map_answer(&company).unwrap_err();
        assert!(problem.contains("combined lookup: an object with `person` and `company`"), "{problem}");
        let problem = by_domain.map_answer(&serde_json::json!([1])).unwrap_err();
        assert!(problem.contains("Company API"), "{problem}");
        assert!(reveal_only.map_answer(&serde_json::json!({ "person": {} })).is_err());
    }
}
