//! Company lookups by domain, as the Clearbit Company API and PDL's company enrichment answer them:
//! the company for a work domain, none for a mailbox provider's, a refusal for what is no domain.

use enrich_emulator::{Emulator, EmulatorConfig, Scripted};
use serde_json::Value;

const CLEARBIT_KEY: &str = "sk_emulator_secret";
const PDL_KEY: &str = "pdl_emulator_key";

async fn start() -> Emulator {
    let config = EmulatorConfig { pdl_credits: Some(1), ..EmulatorConfig::default() };
    Emulator::start(config).await.expect("the emulator starts")
}

async fn clearbit(emulator: &Emulator, domain: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}/v2/companies/find", emulator.clearbit_url()))
        .query(&[("domain", domain)])
        .bearer_auth(CLEARBIT_KEY)
        .send()
        .await
        .expect("the emulator answers");
    (response.status().as_u16(), response.json().await.unwrap_or_default())
}

async fn pdl(emulator: &Emulator, website: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}/v5/company/enrich", emulator.pdl_url()))
        .query(&[("website", website), ("titlecase", "true")])
        .header("X-Api-Key", PDL_KEY)
        .send()
        .await
        .expect("the emulator answers");
    (response.status().as_u16(), response.json().await.expect("a JSON body"))
}

#[tokio::test]
async fn clearbit_answers_a_company_by_domain_with_the_documented_statuses() {
    let emulator = start().await;
    let (status, company) = clearbit(&emulator, "northwind.io").await;
    assert_eq!(status, 200);
    assert_eq!(company["domain"], "northwind.io", "the company itself is the body: {company}");
    assert!(company["name"].is_string() && company.get("person").is_none());
    assert_eq!(clearbit(&emulator, "northwind.io").await.1, company, "the same every time");
    let (status, missing) = clearbit(&emulator, "gmail.com").await;
    assert_eq!((status, missing["error"]["type"].as_str()), (404, Some("unknown_record")), "no company");
    assert_eq!(clearbit(&emulator, "not-a-domain").await.0, 422);
    emulator.script_clearbit("queued.io", vec![Scripted::Status(202), Scripted::Found]);
    assert_eq!(clearbit(&emulator, "queued.io").await.0, 202, "queued while Clearbit fetches it");
    assert_eq!(clearbit(&emulator, "queued.io").await.0, 200, "then found");
}

#[tokio::test]
async fn pdl_enriches_a_company_by_website_and_bills_a_credit_for_a_match() {
    let emulator = start().await;
    let (status, company) = pdl(&emulator, "northwind.io").await;
    assert_eq!(status, 200);
    assert_eq!((company["status"].as_u64(), company["website"].as_str()), (Some(200), Some("northwind.io")));
    assert!(company["name"].is_string() && company["likelihood"].is_u64() && company.get("data").is_none());
    assert!(company["location"].is_object(), "{company}");
    let (status, missing) = pdl(&emulator, "gmail.com").await;
    assert_eq!((status, missing["error"]["type"].as_str()), (404, Some("not_found")), "not billed");
    assert_eq!(pdl(&emulator, "").await.0, 400, "no website");
    assert_eq!(pdl(&emulator, "globex.com").await.0, 402, "the one credit went to the first match");
    let asked: Vec<String> = emulator.pdl_requests().into_iter().flat_map(|request| request.emails).collect();
    assert_eq!(asked, ["northwind.io", "gmail.com", "", "globex.com"]);
}
