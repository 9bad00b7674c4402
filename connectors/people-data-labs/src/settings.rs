//! What the CLI's registry needs of the `type: people_data_labs` config section.

use std::sync::Arc;

use enrich_core::{
    Billing, Choice, ConnectorError, FieldError, PropertyInfo, Secret, SharedBudget, Source, SourceSettings,
    Starter,
};
use secrecy::ExposeSecret;

use crate::{PeopleDataLabsConfig, PeopleDataLabsSource};

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
        };
        Some(Starter { kind: "people_data_labs", key_variable: "PDL_API_KEY", choices: &[SCOPE] })
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
}
