//! Clearbit Reveal: the mapping of its answers (Hull's published shape and the documented one) and
//! the lookups by IP address, alone and as the fallback of an email that found no company.

use enrich_clearbit::{ClearbitConfig, ClearbitSource, every_attribute, map_combined, map_reveal};
use enrich_core::{
    CancellationToken, ConnectorError, KeyKind, Lookup, LookupHints, LookupKey, PersonName, PropertyValue,
    Source, UserRecord,
};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk_test_0123456789secret";
/// A public address (reserved and documentation ranges are never sent).
const OFFICE_IP: &str = "81.2.69.160";

/// The answer shape Hull published: `ip`, `domain`, `fuzzy`, `company`.
fn hull_answer() -> Value {
    serde_json::from_str(include_str!("../fixtures/reveal-hull.json")).unwrap()
}

/// The documented shape: the match's `type` and confidence too, as a word or as a number.
fn documented_answer(confidence: (&str, Value)) -> Value {
    let mut answer = hull_answer();
    answer["fuzzy"] = json!(true);
    answer["type"] = json!("company");
    answer["geoIP"] = json!({ "city": "London", "country": "United Kingdom" });
    answer[confidence.0] = confidence.1;
    answer
}

fn text(value: &str) -> PropertyValue {
    PropertyValue::Text(value.to_owned())
}

#[test]
fn snapshots_of_reveal_answers() {
    let selection = every_attribute();
    insta::assert_json_snapshot!("reveal_hull", map_reveal(&hull_answer(), &selection).properties);
    let documented = map_reveal(&documented_answer(("confidenceScore", json!("very_high"))), &selection);
    insta::assert_json_snapshot!("reveal_documented", documented.properties);
}

#[test]
fn the_confidence_is_read_from_either_spelling() {
    let selection = every_attribute();
    let word = map_reveal(&documented_answer(("confidenceScore", json!("high"))), &selection);
    let number = map_reveal(&documented_answer(("confidence_score", json!(87))), &selection);
    assert_eq!(word.properties["Clearbit: Reveal Confidence"], text("high"));
    assert_eq!(number.properties["Clearbit: Reveal Confidence"], text("87"));
    assert_eq!(number.properties["Clearbit: Reveal Type"], text("company"));
    assert_eq!(number.properties["Clearbit: Reveal Fuzzy"], text("true"));
}

#[test]
fn a_revealed_company_has_enrichments_names_and_says_where_it_came_from() {
    let selection = every_attribute();
    let revealed = map_reveal(&hull_answer(), &selection).properties;
    let enriched = map_combined(&json!({ "person": null, "company": hull_answer()["company"] }), &selection);
    assert_eq!(enriched.properties["Clearbit: Company Source"], text("enrichment"));
    assert_eq!(revealed["Clearbit: Company Source"], text("reveal"));
    for (name, value) in &enriched.properties {
        if name.starts_with("Company ") {
            assert_eq!(revealed.get(name), Some(value), "{name}");
        }
    }
    assert_eq!(revealed["Company Industry"], text("Road & Rail"));
}

#[test]
fn an_answer_without_company_writes_no_company_source() {
    let answer = json!({ "ip": OFFICE_IP, "domain": null, "fuzzy": true, "company": null });
    let record = map_reveal(&answer, &every_attribute());
    assert!(!record.properties.contains_key("Clearbit: Company Source"), "{:?}", record.properties);
}

fn config(server: &MockServer, overrides: Value) -> ClearbitConfig {
    let mut fields = json!({
        "api_key": KEY,
        "base_url": server.uri(),
        "reveal": { "base_url": server.uri() },
        "retry_delay": "1ms",
        "max_retries": 2,
        "requests_per_minute": 60_000,
    });
    if let (Some(fields), Value::Object(overrides)) = (fields.as_object_mut(), overrides) {
        fields.extend(overrides);
    }
    serde_json::from_value(fields).unwrap()
}

async fn lookup(source: &ClearbitSource, key: LookupKey, ip: Option<&str>) -> Result<Lookup, ConnectorError> {
    let hints = LookupHints { ip: ip.map(|ip| ip.parse().unwrap()), ..LookupHints::default() };
    source.lookup(&key, &hints, &CancellationToken::new()).await.expect("never stopped")
}

fn email(address: &str) -> LookupKey {
    LookupKey::Email(address.to_owned())
}

fn ip(address: &str) -> LookupKey {
    LookupKey::Ip(address.parse().unwrap())
}

fn reveal() -> wiremock::MockBuilder {
    Mock::given(method("GET")).and(path("/v1/companies/find"))
}

fn combined() -> wiremock::MockBuilder {
    Mock::given(method("GET")).and(path("/v2/combined/find"))
}

fn clearbit_error(status: u16, kind: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "error": { "type": kind, "message": "no" } }))
}

#[tokio::test]
async fn reveal_alone_looks_an_address_up_by_its_status() {
    let server = MockServer::start().await;
    reveal()
        .and(query_param("ip", OFFICE_IP))
        .respond_with(ResponseTemplate::new(200).set_body_json(hull_answer()))
        .expect(1)
        .mount(&server)
        .await;
    reveal()
        .and(query_param("ip", "81.2.69.161"))
        .respond_with(clearbit_error(404, "unknown_record"))
        .mount(&server)
        .await;
    reveal()
        .and(query_param("ip", "81.2.69.162"))
        .respond_with(clearbit_error(422, "invalid_ip"))
        .mount(&server)
        .await;
    let source = ClearbitSource::reveal_only(&config(&server, json!({}))).unwrap();
    assert_eq!(source.key_kind(), KeyKind::Ip);

    let Lookup::Found(record) = lookup(&source, ip(OFFICE_IP), None).await.unwrap() else {
        panic!("not found")
    };
    assert_eq!(record.properties["Company Name"], text("Uber"));
    assert!(matches!(lookup(&source, ip("81.2.69.161"), None).await, Ok(Lookup::NotFound(_))));
    assert!(matches!(lookup(&source, ip("81.2.69.162"), None).await, Ok(Lookup::NotFound(_))));
    // Asked again in the same run, the address costs nothing more.
    lookup(&source, ip(OFFICE_IP), None).await.unwrap();
}

#[tokio::test]
async fn reveal_follows_enrichments_rules_for_refusals_and_failures() {
    let server = MockServer::start().await;
    reveal()
        .and(query_param("ip", OFFICE_IP))
        .respond_with(clearbit_error(403, "forbidden"))
        .mount(&server)
        .await;
    reveal()
        .and(query_param("ip", "81.2.69.161"))
        .respond_with(ResponseTemplate::new(503))
        .expect(3)
        .mount(&server)
        .await;
    let source = ClearbitSource::reveal_only(&config(&server, json!({}))).unwrap();

    let transient = lookup(&source, ip("81.2.69.161"), None).await.unwrap_err();
    assert!(matches!(transient, ConnectorError::Transient(_)), "{transient:?}");
    let fatal = lookup(&source, ip(OFFICE_IP), None).await.unwrap_err();
    assert!(matches!(&fatal, ConnectorError::Fatal(message) if !message.contains(OFFICE_IP)), "{fatal:?}");
}

#[test]
fn private_and_reserved_addresses_are_declined_and_never_a_fallback() {
    let config: ClearbitConfig = serde_json::from_value(json!({ "api_key": KEY, "reveal": {} })).unwrap();
    let source = ClearbitSource::new(&config).unwrap();
    assert_eq!(source.declines(&ip("192.168.1.20")), Some("private or reserved IP address"));
    assert_eq!(source.declines(&ip(OFFICE_IP)), None);
    let user = |address: &str| UserRecord {
        identity: Some("u1".into()),
        user_id: None,
        email: None,
        ip: Some(address.parse().unwrap()),
        name: PersonName::default(),
        last_seen: chrono::Utc::now(),
    };
    assert_eq!(source.fallback_key(&user("10.0.0.7")), None);
    assert_eq!(source.fallback_key(&user(OFFICE_IP)), Some(ip(OFFICE_IP)));
    let without_reveal: ClearbitConfig = serde_json::from_value(json!({ "api_key": KEY })).unwrap();
    assert_eq!(ClearbitSource::new(&without_reveal).unwrap().fallback_key(&user(OFFICE_IP)), None);
}

#[tokio::test]
async fn an_email_without_company_falls_back_to_one_reveal_lookup_per_address() {
    let server = MockServer::start().await;
    combined()
        .and(query_param("email", "ana@gmail.com"))
        .respond_with(clearbit_error(404, "unknown_record"))
        .mount(&server)
        .await;
    let person_only = json!({ "person": { "name": { "fullName": "Bo Berg" } }, "company": null });
    combined()
        .and(query_param("email", "bo@gmail.com"))
        .respond_with(ResponseTemplate::new(200).set_body_json(person_only))
        .mount(&server)
        .await;
    reveal()
        .respond_with(ResponseTemplate::new(200).set_body_json(hull_answer()))
        .expect(1)
        .mount(&server)
        .await;
    let source = ClearbitSource::new(&config(&server, json!({}))).unwrap();

    for address in ["ana@gmail.com", "bo@gmail.com"] {
        let Lookup::Found(record) = lookup(&source, email(address), Some(OFFICE_IP)).await.unwrap() else {
            panic!("{address}: Reveal's company was not taken")
        };
        assert_eq!(record.properties["Clearbit: Company Source"], text("reveal"), "{address}");
        assert_eq!(record.properties["Company Name"], text("Uber"), "{address}");
    }
    let Lookup::Found(bo) = lookup(&source, email("bo@gmail.com"), Some(OFFICE_IP)).await.unwrap() else {
        panic!("not found")
    };
    assert_eq!(bo.properties["Person Full Name"], text("Bo Berg"));
    assert_eq!(bo.properties["Clearbit: Match"], text("person only"));
}

#[tokio::test]
async fn an_email_that_found_a_company_is_never_revealed() {
    let server = MockServer::start().await;
    let company = json!({ "person": null, "company": hull_answer()["company"] });
    combined().respond_with(ResponseTemplate::new(200).set_body_json(company)).mount(&server).await;
    reveal()
        .respond_with(ResponseTemplate::new(200).set_body_json(hull_answer()))
        .expect(0)
        .mount(&server)
        .await;
    let source = ClearbitSource::new(&config(&server, json!({}))).unwrap();

    let Lookup::Found(record) = lookup(&source, email("ana@uber.com"), Some(OFFICE_IP)).await.unwrap() else {
        panic!("not found")
    };
    assert_eq!(record.properties["Clearbit: Company Source"], text("enrichment"));
}

#[tokio::test]
async fn a_skipped_free_mail_address_asks_reveal_only() {
    let server = MockServer::start().await;
    combined().respond_with(clearbit_error(404, "unknown_record")).expect(0).mount(&server).await;
    reveal()
        .respond_with(ResponseTemplate::new(200).set_body_json(hull_answer()))
        .expect(1)
        .mount(&server)
        .await;
    let source = ClearbitSource::new(&config(&server, json!({ "skip_free_email_domains": true }))).unwrap();

    assert_eq!(source.declines(&email("ana@gmail.com")), None);
    let found = lookup(&source, email("ana@gmail.com"), Some(OFFICE_IP)).await.unwrap();
    assert!(matches!(found, Lookup::Found(_)), "{found:?}");
    let alone = lookup(&source, email("bo@gmail.com"), Some("10.0.0.1")).await.unwrap();
    assert!(matches!(alone, Lookup::NotFound(_)), "a private address is not sent: {alone:?}");
}

#[tokio::test]
async fn check_makes_one_reveal_call_when_configured() {
    let server = MockServer::start().await;
    combined().respond_with(clearbit_error(404, "unknown_record")).expect(1).mount(&server).await;
    reveal().respond_with(clearbit_error(404, "unknown_record")).expect(1).mount(&server).await;
    let said = ClearbitSource::new(&config(&server, json!({}))).unwrap().check().await.unwrap();
    assert_eq!(
        said,
        "key accepted (one lookup of alex@clearbit.com: no record, billed as one; one lookup of 8.8.8.8: no \
         record, billed as one)"
    );
}

#[test]
fn lists_reveals_fields_only_when_reveal_is_asked() {
    let names = |source: ClearbitSource| -> Vec<String> {
        source
            .properties()
            .into_iter()
            .map(|property| property.name)
            .filter(|name| name.starts_with("Clearbit"))
            .collect()
    };
    let with_reveal: ClearbitConfig =
        serde_json::from_value(json!({ "api_key": KEY, "reveal": {} })).unwrap();
    assert_eq!(
        names(ClearbitSource::new(&with_reveal).unwrap()),
        [
            "Clearbit: Date Last Checked",
            "Clearbit: Match",
            "Clearbit: Company Source",
            "Clearbit: Reveal Fuzzy",
            "Clearbit: Reveal Type",
            "Clearbit: Reveal Confidence"
        ]
    );
    assert_eq!(
        names(ClearbitSource::reveal_only(&with_reveal).unwrap())[..2],
        ["Clearbit: Date Last Checked", "Clearbit: Company Source"]
    );
}
