//! The source against a local HTTP server answering as PDL's docs say it does.

use enrich_core::{CancellationToken, ConnectorError, Lookup, LookupHints, LookupKey, Source};
use enrich_people_data_labs::{PeopleDataLabsConfig, PeopleDataLabsSource};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "pdl_test_key_0123456789abcdef0123456789abcdef0123456789abcdef0123";

fn source(server: &MockServer, extra: &Value) -> PeopleDataLabsSource {
    let mut fields =
        json!({ "api_key": KEY, "base_url": server.uri(), "retry_delay": "10ms", "max_retries": 2 });
    fields.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let config: PeopleDataLabsConfig = serde_json::from_value(fields).unwrap();
    PeopleDataLabsSource::new(&config).unwrap()
}

fn keys(emails: &[&str]) -> Vec<(LookupKey, LookupHints)> {
    emails.iter().map(|email| (LookupKey::Email((*email).to_owned()), LookupHints::default())).collect()
}

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/bulk_response.json")).unwrap()
}

#[tokio::test]
async fn asks_in_one_bulk_request_with_the_key_in_a_header_and_maps_each_answer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v5/person/bulk"))
        .and(header("x-api-key", KEY))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture())
                .insert_header("x-totallimit-remaining", "1342"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let source = source(&server, &json!({}));
    let answers = source
        .lookup_batch(&keys(&["sean@peopledatalabs.com", "nobody@example.com"]), &CancellationToken::new())
        .await;

    let request = &server.received_requests().await.unwrap()[0];
    assert!(!request.url.as_str().contains(KEY), "the key never goes in the URL");
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!((body["min_likelihood"].clone(), body["titlecase"].clone()), (json!(6), json!(true)));
    assert_eq!(
        body["requests"][1],
        json!({"params": {"email": ["nobody@example.com"]}, "metadata": {"index": "1"}})
    );

    let Some(Ok(Lookup::Found(record))) = &answers[0] else { panic!("{answers:?}") };
    let text = |name: &str| record.properties.get(name).map(ToString::to_string);
    assert_eq!(text("Company Name").as_deref(), Some("People Data Labs"));
    assert_eq!(text("Person Job Title").as_deref(), Some("Co-Founder and Chief Executive Officer"));
    assert_eq!(text("People Data Labs: Likelihood").as_deref(), Some("10"));
    for placeholder in ["Person Location", "Person City", "Person Work Email", "Person Phone"] {
        assert_eq!(text(placeholder), None, "a free plan's placeholder is no value: {placeholder}");
    }
    assert!(record.properties.values().all(|value| !matches!(value.to_string().as_str(), "true" | "false")));
    assert!(matches!(&answers[1], Some(Ok(Lookup::NotFound(_)))));
    assert_eq!(source.credits_left(), Some(1342));
}

#[tokio::test]
async fn out_of_credits_stops_at_the_first_answer() {
    let server = MockServer::start().await;
    let body = json!({"status": 402, "error": {"type": "payment_required", "message": "You have hit your account maximum (all matches used)"}});
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(402).set_body_json(body))
        .mount(&server)
        .await;
    let source = source(&server, &json!({}));
    let stop = CancellationToken::new();
    let first = source.lookup_batch(&keys(&["a@x.com", "b@x.com"]), &stop).await;
    assert!(first.iter().all(|answer| matches!(answer, Some(Err(ConnectorError::Fatal(message))) if message.contains("out of credits"))));
    let second = source.lookup(&LookupKey::Email("c@x.com".into()), &LookupHints::default(), &stop).await;
    assert!(matches!(second, Some(Err(ConnectorError::Fatal(_)))));
    assert_eq!(server.received_requests().await.unwrap().len(), 1, "nothing asked after the 402");
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture()))
        .mount(&server)
        .await;
    let source = source(&server, &json!({ "max_retries": 3, "max_retry_time": "10s", "timeout": "5s" }));
    let answers = source
        .lookup_batch(&keys(&["sean@peopledatalabs.com", "nobody@example.com"]), &CancellationToken::new())
        .await;
    assert!(matches!(&answers[0], Some(Ok(Lookup::Found(_)))), "{answers:?}");
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_redirect_is_never_followed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(307).insert_header("location", "https://elsewhere.example/v5/person/bulk"),
        )
        .mount(&server)
        .await;
    let source = source(&server, &json!({}));
    let answers = source.lookup_batch(&keys(&["a@x.com"]), &CancellationToken::new()).await;
    assert!(
        matches!(&answers[0], Some(Err(ConnectorError::Fatal(message))) if message.contains("elsewhere.example"))
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}
