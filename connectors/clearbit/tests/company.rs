//! `lookup: company_by_domain`: one Company API lookup per work domain, its statuses read as
//! Enrichment's, and the answers the source keeps across runs (domains, and Reveal's addresses).

use std::sync::Arc;
use std::time::Duration;

use enrich_clearbit::{ClearbitConfig, ClearbitSource};
use enrich_core::{
    CancellationToken, KeyKind, Lookup, LookupHints, LookupKey, MemoryStateStore, PropertyValue, Record,
    ResultCache, Source, StateStore,
};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

const KEY: &str = "sk_test_0123456789secret";
/// A public address (reserved and documentation ranges are never sent).
const OFFICE_IP: &str = "81.2.69.160";

fn source(server: &MockServer, overrides: Value) -> ClearbitSource {
    let mut fields = json!({
        "api_key": KEY,
        "lookup": "company_by_domain",
        "company_base_url": server.uri(),
        "retry_delay": "1ms",
        "pending_delay": "1ms",
        "pending_retries": 2,
        "max_retries": 1,
    });
    if let (Some(fields), Value::Object(overrides)) = (fields.as_object_mut(), overrides) {
        fields.extend(overrides);
    }
    ClearbitSource::new(&serde_json::from_value::<ClearbitConfig>(fields).unwrap()).unwrap()
}

fn uber() -> Value {
    serde_json::from_str(include_str!("../fixtures/docs-company-uber-latest.json")).unwrap()
}

/// The request the source must make for `domain`, key included.
fn find(domain: &str) -> MockBuilder {
    Mock::given(method("GET"))
        .and(path("/v2/companies/find"))
        .and(query_param("domain", domain))
        .and(header("authorization", format!("Bearer {KEY}")))
}

fn clearbit_error(status: u16, kind: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "error": { "type": kind, "message": message } }))
}

async fn lookup(source: &ClearbitSource, key: LookupKey) -> Lookup {
    let never_stopped = CancellationToken::new();
    source.lookup(&key, &LookupHints::default(), &never_stopped).await.expect("never stopped").unwrap()
}

fn domain(name: &str) -> LookupKey {
    LookupKey::Domain(name.to_owned())
}

#[tokio::test]
async fn a_200_is_the_company_alone() {
    let server = MockServer::start().await;
    find("uber.com")
        .respond_with(ResponseTemplate::new(200).set_body_json(uber()))
        .expect(1)
        .mount(&server)
        .await;
    let source = source(&server, json!({}));
    assert_eq!(source.key_kind(), KeyKind::Domain);
    let Lookup::Found(record) = lookup(&source, domain("uber.com")).await else { panic!("not found") };
    assert_eq!(record.properties["Company Name"], PropertyValue::Text("Uber".into()));
    assert_eq!(record.properties["Clearbit: Company Source"], PropertyValue::Text("enrichment".into()));
    let not_company: Vec<&String> = record
        .properties
        .keys()
        .filter(|name| !name.starts_with("Company ") && *name != "Clearbit: Company Source")
        .collect();
    assert!(not_company.is_empty(), "only Company … properties: {not_company:?}");
}

#[tokio::test]
async fn a_202_is_asked_again_and_one_that_lasts_is_pending() {
    let server = MockServer::start().await;
    find("uber.com").respond_with(ResponseTemplate::new(202)).up_to_n_times(1).expect(1).mount(&server).await;
    find("uber.com")
        .respond_with(ResponseTemplate::new(200).set_body_json(uber()))
        .expect(1)
        .mount(&server)
        .await;
    find("lyft.com").respond_with(ResponseTemplate::new(202)).expect(3).mount(&server).await;
    // `stream` is about the person host: the Company API's 202 is asked again all the same.
    let source = source(&server, json!({ "stream": true }));
    assert!(matches!(lookup(&source, domain("uber.com")).await, Lookup::Found(_)));
    assert_eq!(lookup(&source, domain("lyft.com")).await, Lookup::Pending, "after 2 re-asks");
}

#[tokio::test]
async fn a_404_is_not_found_and_writes_no_match_property() {
    let server = MockServer::start().await;
    let unknown = clearbit_error(404, "unknown_record", "Unknown domain");
    find("nowhere.example").respond_with(unknown).expect(1).mount(&server).await;
    let source = source(&server, json!({}));
    assert_eq!(lookup(&source, domain("nowhere.example")).await, Lookup::NotFound(Record::default()));
}

#[tokio::test]
async fn a_422_is_invalid_with_clearbits_reason_without_the_domain() {
    let server = MockServer::start().await;
    let invalid = clearbit_error(422, "domain_invalid", "Invalid domain name: bad.example");
    find("bad.example").respond_with(invalid).expect(1).mount(&server).await;
    let source = source(&server, json!({}));
    let Lookup::Invalid(reason) = lookup(&source, domain("bad.example")).await else { panic!("not invalid") };
    assert!(reason.contains("Invalid domain name"), "{reason}");
    assert!(!reason.contains("bad.example"), "the domain is blanked out: {reason}");
}

#[tokio::test]
async fn free_mail_domains_are_declined_and_shared_keys_are_kept() {
    let server = MockServer::start().await;
    let source = source(&server, json!({}));
    assert_eq!(source.declines(&domain("gmail.com")), Some("free email domain"));
    assert_eq!(source.declines(&domain("uber.com")), None);
    assert!(source.caches(&domain("uber.com")));
    assert!(source.caches(&LookupKey::Ip(OFFICE_IP.parse().unwrap())));
    assert!(!source.caches(&LookupKey::Email("jane@uber.com".into())), "a person's data is not shared");
    let names: Vec<String> = source.properties().into_iter().map(|property| property.name).collect();
    assert!(
        names.contains(&"Company Name".to_owned())
            && names.contains(&"Clearbit: Date Last Checked".to_owned())
    );
    assert!(!names.iter().any(|name| name.starts_with("Person ") || name == "Clearbit: Match"), "{names:?}");
}

#[tokio::test]
async fn the_check_looks_one_domain_up() {
    let server = MockServer::start().await;
    find("clearbit.com")
        .respond_with(ResponseTemplate::new(200).set_body_json(uber()))
        .expect(1)
        .mount(&server)
        .await;
    let said = source(&server, json!({})).check().await.unwrap();
    assert!(said.contains("one lookup of clearbit.com: record found"), "{said}");
}

/// Reveal's answers outlive the run: the next run (a new source, or the same one in `enrich run`)
/// takes the address's company from the state instead of asking again.
#[tokio::test]
async fn a_reveal_answer_is_kept_for_the_next_runs() {
    let server = MockServer::start().await;
    let answer = json!({ "ip": OFFICE_IP, "domain": "uber.com", "fuzzy": false, "company": uber() });
    Mock::given(method("GET"))
        .and(path("/v1/companies/find"))
        .and(query_param("ip", OFFICE_IP))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .expect(1)
        .mount(&server)
        .await;
    let email_unknown = clearbit_error(404, "unknown_record", "Unknown person.");
    Mock::given(method("GET"))
        .and(path("/v2/combined/find"))
        .respond_with(email_unknown)
        .mount(&server)
        .await;
    let config =
        json!({ "lookup": "combined", "base_url": server.uri(), "reveal": { "base_url": server.uri() } });
    let store: Arc<dyn StateStore> = Arc::new(MemoryStateStore::default());
    let hints = LookupHints { ip: Some(OFFICE_IP.parse().unwrap()), ..LookupHints::default() };
    let never_stopped = CancellationToken::new();
    let day = Duration::from_secs(24 * 3600);
    for run in 0..3 {
        let source = source(&server, config.clone());
        source.use_cache(Some(ResultCache::new(Arc::clone(&store), day)));
        let email = LookupKey::Email(format!("person{run}@uber.com"));
        let found = source.lookup(&email, &hints, &never_stopped).await.unwrap().unwrap();
        let Lookup::Found(record) = found else { panic!("run {run}: {found:?}") };
        assert_eq!(record.properties["Clearbit: Company Source"], PropertyValue::Text("reveal".into()));
        assert_eq!(record.properties["Company Name"], PropertyValue::Text("Uber".into()), "run {run}");
        source.use_cache(None);
    }
    // `expect(1)` is verified when the server drops: three runs, one Reveal lookup.
    let kept = store.cached(LookupKey::Ip(OFFICE_IP.parse().unwrap()).digest()).unwrap();
    assert!(kept.is_some(), "kept by digest");
    // Expired: asked again.
    let expired = ResultCache::new(Arc::clone(&store), Duration::ZERO);
    assert_eq!(expired.get(&LookupKey::Ip(OFFICE_IP.parse().unwrap())).unwrap(), None);
}
