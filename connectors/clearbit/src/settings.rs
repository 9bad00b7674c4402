//! What the CLI's registry needs of Clearbit's config sections: `type: clearbit` and `type:
//! clearbit_reveal`.

use std::sync::Arc;

use enrich_core::{
    Billing, Choice, ConnectorError, FieldError, LookupKey, PropertyInfo, Secret, SharedBudget, Source,
    SourceSettings, Starter,
};
use secrecy::ExposeSecret;
use serde::Deserialize;

use crate::{ClearbitConfig, ClearbitSource, is_free_email};

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
        };
        const FREE_MAIL: Choice = Choice {
            question: "Skip emails at free-mail domains such as gmail.com (yes or no)",
            answers: &[
                ("yes", "skip_free_email_domains: true\n"),
                ("no", "skip_free_email_domains: false\n"),
            ],
        };
        Some(Starter { kind: "clearbit", key_variable: "CLEARBIT_API_KEY", choices: &[SCOPE, FREE_MAIL] })
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

    fn billing(&self) -> Billing {
        Billing { rule: "each IP address looked up counts against the Reveal plan", flagged: None }
    }
}

/// The source, booking its requests in `budget` too when there is one.
fn sharing(source: ClearbitSource, budget: Option<Arc<dyn SharedBudget>>) -> ClearbitSource {
    match budget {
        Some(budget) => source.with_shared_budget(budget),
        None => source,
    }
}
