//! `lookup: company_by_domain`: one company enrichment (`GET /v5/company/enrich?website=`) per work
//! domain, answered as PDL's docs say (the company's fields are the body itself).

use enrich_core::{
    CancellationToken, KeyKind, Lookup, LookupHints, LookupKey, PropertyValue, Record, Source,
};
use enrich_people_data_labs::{PeopleDataLabsConfig, PeopleDataLabsSource};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "pdl_test_key_0123456789abcdef0123456789abcdef0123456789abcdef0123";

fn source(server: &MockServer) -> PeopleDataLabsSource {
    let fields = json!({
        "api_key": KEY, "base_url": server.uri(), "retry_delay": "10ms", "max_retries": 2,
        "lookup": "company_by_domain",
    });
    PeopleDataLabsSource::new(&serde_json::from_value::<PeopleDataLabsConfig>(fields).unwrap()).unwrap()
}

/// The documented company answer (D-OUT-C, fields of the company schema).
fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/company_response.json")).unwrap()
}

async fn answer(server: &MockServer, website: &str, response: ResponseTemplate) -> Lookup {
    Mock::given(method("GET"))
        .and(path("/v5/company/enrich"))
        .and(query_param("website", website))
        .and(header("x-api-key", KEY))
        .respond_with(response)
        .expect(1)
        .mount(server)
        .await;
    let key = (LookupKey::Domain(website.to_owned()), LookupHints::default());
    let mut answers = source(server).lookup_batch(&[key], &CancellationToken::new()).await;
    answers.pop().flatten().expect("an answer").expect("not an error")
}

fn pdl_error(status: u16, kind: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({ "status": status, "error": { "type": kind, "message": message } }))
}

#[tokio::test]
async fn a_200_is_the_company_under_the_names_of_a_persons_current_company() {
    let server = MockServer::start().await;
    let Lookup::Found(record) =
        answer(&server, "peopledatalabs.com", ResponseTemplate::new(200).set_body_json(fixture())).await
    else {
        panic!("not found")
    };
    let text = |name: &str| record.properties.get(name).map(ToString::to_string);
    assert_eq!(text("Company Name").as_deref(), Some("People Data Labs"));
    assert_eq!(text("Company Domain").as_deref(), Some("peopledatalabs.com"));
    assert_eq!(text("Company City").as_deref(), Some("san francisco"));
    assert_eq!(record.properties["Company Founded Year"], PropertyValue::from(2015));
    assert_eq!(text("People Data Labs: Likelihood").as_deref(), Some("6"));
    let other: Vec<&String> = record
        .properties
        .keys()
        .filter(|name| !name.starts_with("Company ") && !name.starts_with("People Data Labs: "))
        .collect();
    assert!(other.is_empty(), "only the company: {other:?}");
    assert!(!record.properties.contains_key("People Data Labs: Match"), "no person was asked for");
    let request = &server.received_requests().await.unwrap()[0];
    assert!(!request.url.as_str().contains(KEY), "the key never goes in the URL");
}

#[tokio::test]
async fn a_404_is_not_found_and_writes_only_the_check_date() {
    let server = MockServer::start().await;
    let unknown = pdl_error(404, "not_found", "No records were found matching your request");
    assert_eq!(answer(&server, "nowhere.example", unknown).await, Lookup::NotFound(Record::default()));
}

#[tokio::test]
async fn a_400_is_invalid() {
    let server = MockServer::start().await;
    let refused = pdl_error(
        400,
        "invalid_request_error",
        "The request contained either missing or invalid parameters.",
    );
    let Lookup::Invalid(reason) = answer(&server, "bad.example", refused).await else {
        panic!("not invalid")
    };
    assert!(reason.contains("invalid parameters"), "{reason}");
}

#[tokio::test]
async fn one_domain_a_request_free_mail_declined_companies_kept() {
    let server = MockServer::start().await;
    let source = source(&server);
    assert_eq!(source.key_kind(), KeyKind::Domain);
    assert_eq!(source.max_keys_per_request(), 1, "company enrichment takes one website");
    assert_eq!(source.declines(&LookupKey::Domain("gmail.com".into())), Some("free email domain"));
    assert_eq!(source.declines(&LookupKey::Domain("peopledatalabs.com".into())), None);
    assert!(source.caches(&LookupKey::Domain("peopledatalabs.com".into())));
    let names: Vec<String> = source.properties().into_iter().map(|property| property.name).collect();
    assert!(names.contains(&"Company Name".to_owned()), "{names:?}");
    assert!(!names.iter().any(|name| name.starts_with("Person ")), "{names:?}");
}
