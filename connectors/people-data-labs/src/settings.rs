//! What the CLI's registry needs of the `type: people_data_labs` config section.

use std::sync::Arc;

use enrich_core::{
    Billing, Choice, ConnectorError, FieldError, PropertyInfo, Record, Secret, SharedBudget, Source,
    SourceSettings, Starter,
};
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::{LookupMode, PeopleDataLabsConfig, PeopleDataLabsSource, map_company, map_person};

impl SourceSettings for PeopleDataLabsConfig {
    fn starter() -> Option<Starter> {
        const SCOPE: Choice = Choice {
            question: "Look up each person, or companies alone by work domain (all or company)",
            answers: &[
                ("all", ""),
                (
                    "company",
                    "lookup: company_by_domain   # one lookup per work domain, company properties only\n",
                ),
            ],
            not_after: &[],
        };
        Some(Starter {
            kind: "people_data_labs",
            key_variable: "PDL_API_KEY",
            url_fields: &["base_url"],
            choices: &[SCOPE],
        })
    }

    fn validate(&self) -> Vec<FieldError> {
        PeopleDataLabsConfig::validate(self)
    }

    fn build(&self, budget: Option<Arc<dyn SharedBudget>>) -> Result<Arc<dyn Source>, ConnectorError> {
        let source = PeopleDataLabsSource::new(self)?;
        Ok(Arc::new(match budget {
            Some(budget) => source.with_shared_budget(budget),
            None => source,
        }))
    }

    fn describe(&self) -> String {
        format!("people_data_labs ({} a request)", self.max_keys_per_request)
    }

    fn secrets(&self) -> Vec<Secret<'_>> {
        let url = self.base_url.as_deref().map(Secret::Url);
        std::iter::once(Secret::Text(self.api_key.expose_secret())).chain(url).collect()
    }

    /// Each request carries up to `max_keys_per_request` people.
    fn lookups_per_minute(&self) -> u64 {
        u64::from(self.requests_per_minute) * self.max_keys_per_request as u64
    }

    /// A person's answer (single or one bulk item: `data` with `likelihood`), or a company's.
    fn map_answer(&self, answer: &Value) -> Result<Record, String> {
        let selection = self
            .selection()
            .map_err(|_| "the section is not valid: `enrich validate` says why".to_owned())?;
        let likelihood = answer.get("likelihood").and_then(Value::as_u64);
        match (self.lookup, answer.get("data").and_then(Value::as_object), answer.as_object()) {
            (LookupMode::Person, Some(data), _) => Ok(map_person(data, likelihood, &selection)),
            (LookupMode::Person, None, _) => {
                Err("expected an answer of PDL's person enrichment: an object with `data`".into())
            }
            (LookupMode::CompanyByDomain, _, Some(company)) if company.contains_key("name") => {
                Ok(map_company(company, likelihood, &selection))
            }
            (LookupMode::CompanyByDomain, ..) => {
                Err("expected an answer of PDL's company enrichment: a company, an object with `name`".into())
            }
        }
    }

    fn properties(&self) -> Vec<PropertyInfo> {
        self.selection().map(|selection| selection.properties()).unwrap_or_default()
    }

    fn billing(&self) -> Billing {
        Billing {
            rule: "People Data Labs bills one credit for each person found; not found is free",
            flagged: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_looks_up_a_full_request_per_request_allowed() {
        let config =
            serde_json::json!({ "api_key": "k", "requests_per_minute": 10, "max_keys_per_request": 50 });
        let config: PeopleDataLabsConfig = serde_json::from_value(config).unwrap();
        assert_eq!(config.lookups_per_minute(), 500);
        assert_eq!(config.billing().flagged.map(|(label, _)| label), None);
        assert_eq!(config.describe(), "people_data_labs (50 a request)");
        assert_eq!(config.secrets(), [Secret::Text("k")]);
    }

    #[test]
    fn an_answer_is_mapped_as_the_lookup_mode_maps_it_or_says_what_was_expected() {
        let config = |lookup: &str| -> PeopleDataLabsConfig {
            serde_json::from_value(serde_json::json!({ "api_key": "k", "lookup": lookup })).unwrap()
        };
        let person = serde_json::json!({ "likelihood": 8, "data": { "job_title": "Founder" } });
        let record = config("person").map_answer(&person).unwrap();
        assert_eq!(record.properties["Person Job Title"].as_text(), Some("Founder"));
        assert_eq!(record.properties["People Data Labs: Likelihood"], 8.into());
        let company = serde_json::json!({ "name": "Acme", "website": "acme.io", "likelihood": 6 });
        let record = config("company_by_domain").map_answer(&company).unwrap();
        assert_eq!(record.properties["Company Name"].as_text(), Some("Acme"));

        let expected = config("person").map_answer(&company).unwrap_err();
        assert!(expected.contains("person enrichment: an object with `data`"), "{expected}");
        let expected = config("company_by_domain").map_answer(&person).unwrap_err();
        assert!(expected.contains("company enrichment"), "{expected}");
    }
}
