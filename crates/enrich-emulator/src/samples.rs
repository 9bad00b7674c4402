//! The real Clearbit answers kept in `connectors/clearbit/fixtures`, served for the addresses they
//! describe so that the demo and the tests meet genuine records next to generated ones.

use std::sync::LazyLock;

use serde_json::Value;

const CALVIN_KLEIN_EMAIL: &str = "bchris@calvinklein.com";
const ALEX_EMAIL: &str = "alex@alexmaccaw.com";

/// A real combined answer: `{person, company}`.
static CALVIN_KLEIN: LazyLock<Value> = LazyLock::new(|| {
    parse(include_str!("../../../connectors/clearbit/fixtures/combined-real-calvinklein-2016.json"))
});
/// The documentation's person example.
static ALEX: LazyLock<Value> = LazyLock::new(|| {
    parse(include_str!("../../../connectors/clearbit/fixtures/docs-person-alex-latest.json"))
});
/// The documentation's company example.
static UBER: LazyLock<Value> = LazyLock::new(|| {
    parse(include_str!("../../../connectors/clearbit/fixtures/docs-company-uber-latest.json"))
});

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("the Clearbit fixtures are valid JSON")
}

/// The person and company of an email whose whole answer is a sample.
pub(crate) fn person_and_company(email: &str) -> Option<(Value, Option<Value>)> {
    match email {
        CALVIN_KLEIN_EMAIL => Some((CALVIN_KLEIN["person"].clone(), Some(CALVIN_KLEIN["company"].clone()))),
        // The documentation's person comes without a company: the combined answer says so with a null.
        ALEX_EMAIL => Some((ALEX.clone(), None)),
        _ => None,
    }
}

/// The sample company behind `domain`, matched on its main domain or any of its aliases.
pub(crate) fn company(domain: &str) -> Option<Value> {
    company_ref(domain).cloned()
}

/// Whether `email` is answered from the samples, as a sample person or at a sample company: those are
/// never "unknown".
pub(crate) fn covers(email: &str) -> bool {
    let domain = email.rsplit_once('@').map_or("", |(_, domain)| domain);
    matches!(email, CALVIN_KLEIN_EMAIL | ALEX_EMAIL) || company_ref(domain).is_some()
}

fn company_ref(domain: &str) -> Option<&'static Value> {
    let is_named = |company: &&Value| {
        company["domain"] == domain
            || company["domainAliases"]
                .as_array()
                .is_some_and(|aliases| aliases.iter().any(|alias| alias == domain))
    };
    [&*UBER, &CALVIN_KLEIN["company"]].into_iter().find(is_named)
}
