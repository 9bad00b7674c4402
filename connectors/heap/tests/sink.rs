//! The Heap sink against a mock Heap: request shape, batching, retries and how failures are classified.

use std::time::{Duration, Instant};

use enrich_core::{ConnectorError, PropertyValue, Sink, UserUpdate};
use enrich_heap::{HeapSink, HeapSinkConfig};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const ENDPOINT: &str = "/api/add_user_properties";

fn config(base_url: &str) -> HeapSinkConfig {
    serde_json::from_value(json!({
        "app_id": "1234567890",
        "base_url": base_url,
        "max_retries": 2,
        "retry_delay": "1ms",
    }))
    .unwrap()
}

fn sink(base_url: &str) -> HeapSink {
    HeapSink::new(&config(base_url)).unwrap()
}

fn update(identity: &str, properties: &[(&str, PropertyValue)]) -> UserUpdate {
    UserUpdate {
        identity: Some(identity.to_owned()),
        user_id: None,
        properties: properties.iter().cloned().map(|(key, value)| (key.to_owned(), value)).collect(),
        checked_at: chrono::Utc::now(),
    }
}

fn text(value: &str) -> PropertyValue {
    PropertyValue::text(value)
}

fn body(request: &Request) -> Value {
    serde_json::from_slice(&request.body).unwrap()
}

async fn answering(status: u16, answer: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(ENDPOINT))
        .respond_with(ResponseTemplate::new(status).set_body_string(answer))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn writes_the_bulk_form_with_the_app_id_and_no_credentials() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(ENDPOINT))
        .and(header("user-agent", concat!("enrich/", env!("CARGO_PKG_VERSION"))))
        .and(body_json(json!({
            "app_id": "1234567890",
            "users": [
                {"identity": "alex@clearbit.com",
                 "properties": {"Company Employees": 1001, "Company Name": "Clearbit"}},
                {"identity": "u-2", "properties": {}},
            ],
        })))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let batch = [
        update(
            "alex@clearbit.com",
            &[("Company Name", text("Clearbit")), ("Company Employees", PropertyValue::from(1001))],
        ),
        update("u-2", &[]),
    ];

    sink(&server.uri()).write(&batch).await.unwrap();

    let requests = server.received_requests().await.unwrap();
    assert!(requests[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn an_empty_batch_sends_nothing() {
    let server = answering(200, "").await;
    sink(&server.uri()).write(&[]).await.unwrap();
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn splits_a_batch_larger_than_heap_takes() {
    let server = answering(200, "").await;
    let heap = sink(&server.uri());
    assert_eq!(heap.max_batch(), 1000);
    let batch: Vec<UserUpdate> =
        (0..1500).map(|n| update(&format!("user-{n}"), &[("Person Name", text("Alex"))])).collect();

    heap.write(&batch).await.unwrap();

    let requests = server.received_requests().await.unwrap();
    let sizes: Vec<usize> =
        requests.iter().map(|request| body(request)["users"].as_array().unwrap().len()).collect();
    assert_eq!(sizes, [1000, 500]);
    assert_eq!(body(&requests[1])["users"][0]["identity"], "user-1000");
}

#[tokio::test]
async fn retries_after_being_rate_limited() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(ENDPOINT))
        .respond_with(ResponseTemplate::new(429))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(ENDPOINT))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;

    sink(&server.uri()).write(&[update("u-1", &[("Company Name", text("Clearbit"))])]).await.unwrap();
}

#[tokio::test]
async fn gives_up_on_a_failing_server_with_its_last_answer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(ENDPOINT))
        .respond_with(ResponseTemplate::new(503).set_body_string("  upstream overloaded\n"))
        .expect(3) // the first try and max_retries = 2
        .mount(&server)
        .await;

    let error = sink(&server.uri()).write(&[update("u-1", &[])]).await.unwrap_err();

    assert_eq!(
        error,
        ConnectorError::Transient(
            "Heap did not take the batch of 1 users after 3 tries: 503 Service Unavailable: upstream overloaded"
                .into()
        )
    );
}

#[tokio::test]
async fn a_refused_app_id_is_fatal_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(ENDPOINT))
        .respond_with(ResponseTemplate::new(400).set_body_string("Invalid app_id"))
        .expect(2) // the batch, then the empty request telling the app_id from the users
        .mount(&server)
        .await;

    let error = sink(&server.uri())
        .write(&[update("u-1", &[("Company Name", text("Secret Corp"))]), update("u-2", &[])])
        .await
        .unwrap_err();

    assert_eq!(
        error,
        ConnectorError::Fatal(
            "Heap refused app_id 1234567890 (400 Bad Request): Invalid app_id; check app_id, region and \
             base_url"
                .into()
        )
    );
}

#[tokio::test]
async fn a_batch_refused_for_one_identity_writes_every_other_user() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(ENDPOINT))
        .and(body_string_contains(r#""identity":"bad""#))
        .respond_with(ResponseTemplate::new(400).set_body_string("users[3]: identity is refused"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(ENDPOINT))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let mut batch: Vec<UserUpdate> = (0..7).map(|n| update(&format!("u-{n}"), &[])).collect();
    batch.insert(3, update("bad", &[]));

    let refused = sink(&server.uri()).write(&batch).await.unwrap();

    assert_eq!(
        refused,
        [(3, "Heap refused the user (400 Bad Request): users[3]: identity is refused".to_owned())]
    );
    let mut written: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|request| !String::from_utf8_lossy(&request.body).contains(r#""identity":"bad""#))
        .flat_map(|request| body(request)["users"].as_array().unwrap().clone())
        .map(|user| user["identity"].as_str().unwrap().to_owned())
        .collect();
    written.sort();
    assert_eq!(written, ["u-0", "u-1", "u-2", "u-3", "u-4", "u-5", "u-6"]);
}

#[tokio::test]
async fn a_401_or_403_stops_the_run() {
    for status in [401, 403] {
        let server = answering(status, "Forbidden").await;
        let error = sink(&server.uri()).write(&[update("u-1", &[])]).await.unwrap_err();
        assert!(error.is_fatal(), "{status}: {error:?}");
        assert_eq!(server.received_requests().await.unwrap().len(), 1, "{status}: not retried");
    }
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_names_the_location() {
    let elsewhere = answering(200, "").await;
    let location = format!("{}{ENDPOINT}", elsewhere.uri());
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(301).insert_header("Location", location.as_str()))
        .mount(&server)
        .await;

    let error =
        sink(&server.uri()).write(&[update("u-1", &[("Company Name", text("Acme"))])]).await.unwrap_err();

    assert!(error.is_fatal(), "{error:?}");
    assert!(error.to_string().contains(&format!("redirecting to {location}")), "{error}");
    assert!(elsewhere.received_requests().await.unwrap().is_empty(), "the redirect was followed");
}

#[tokio::test]
async fn a_long_answer_is_cut() {
    let server = answering(422, &"x".repeat(5000)).await;
    let error = sink(&server.uri()).write(&[update("u-1", &[])]).await.unwrap_err().to_string();
    assert!(error.contains(&format!("{}…;", "x".repeat(300))), "{error}");
    assert!(error.len() < 450);
}

#[tokio::test]
async fn drops_properties_named_id_in_any_casing() {
    let server = answering(200, "").await;
    let batch = [update(
        "u-1",
        &[("id", text("1")), ("ID", text("2")), ("Id", text("3")), ("Company Name", text("Clearbit"))],
    )];

    sink(&server.uri()).write(&batch).await.unwrap();

    let requests = server.received_requests().await.unwrap();
    assert_eq!(body(&requests[0])["users"][0]["properties"], json!({"Company Name": "Clearbit"}));
}

#[tokio::test]
async fn refuses_an_overlong_identity_without_sending_or_quoting_it() {
    let server = answering(200, "").await;
    let identity = "a".repeat(256);
    let batch = [update("fine", &[]), update(&identity, &[])];

    let refused = sink(&server.uri()).write(&batch).await.unwrap();

    assert_eq!(refused.len(), 1);
    let (at, message) = &refused[0];
    assert_eq!(*at, 1);
    assert_eq!(message, "identity longer than 255 characters");
    assert!(!message.contains(&identity));
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(body(&requests[0])["users"].as_array().unwrap().len(), 1, "only the fine user is sent");
    // 255 characters, however many bytes, are fine.
    sink(&server.uri()).write(&[update(&"é".repeat(255), &[])]).await.unwrap();
}

#[tokio::test]
async fn an_anonymous_user_is_neither_addressable_nor_sent() {
    let server = answering(200, "").await;
    let sink = sink(&server.uri());
    let anonymous = UserUpdate { identity: None, user_id: Some("42".into()), ..update("", &[]) };

    let refused = sink.write(&[anonymous, update("fine", &[])]).await.unwrap();

    assert_eq!(refused, [(0, "no identity (anonymous user)".to_owned())]);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(body(&requests[0])["users"], json!([{ "identity": "fine", "properties": {} }]));
    let user = |identity: Option<&str>| enrich_core::UserRecord {
        identity: identity.map(str::to_owned),
        user_id: Some("42".into()),
        email: None,
        ip: None,
        name: enrich_core::PersonName::default(),
        last_seen: chrono::Utc::now(),
    };
    assert_eq!(sink.cannot_address(&user(None)), Some("no identity (anonymous user)"));
    assert_eq!(sink.cannot_address(&user(Some("u1"))), None);
    // Too long for Heap: skipped before any lookup, as at a write.
    let long = "a".repeat(256);
    assert_eq!(sink.cannot_address(&user(Some(&long))), Some("identity longer than 255 characters"));
    assert_eq!(sink.cannot_address(&user(Some(&"é".repeat(255)))), None);
}

#[tokio::test]
async fn a_base_url_may_carry_a_path_prefix() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/heap/api/add_user_properties"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    sink(&format!("{}/heap", server.uri())).write(&[update("u-1", &[])]).await.unwrap();
}

#[tokio::test]
async fn an_unreachable_host_is_transient_and_the_message_hides_the_query() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let heap = sink(&format!("http://127.0.0.1:{port}/?token=hush"));

    let error = heap.write(&[update("u-1", &[])]).await.unwrap_err();

    let ConnectorError::Transient(message) = error else { panic!("expected Transient, got {error:?}") };
    assert!(message.starts_with("Heap did not take the batch of 1 users after 3 tries: "), "{message}");
    assert!(!message.contains("hush"), "{message}");
}

#[tokio::test]
async fn a_slow_answer_times_out_and_is_transient() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(ENDPOINT))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    let mut config = config(&server.uri());
    config.timeout = Duration::from_millis(50);
    config.max_retries = 1;

    let error = HeapSink::new(&config).unwrap().write(&[update("u-1", &[])]).await.unwrap_err();

    assert!(
        matches!(&error, ConnectorError::Transient(message) if message.contains("timed out")),
        "{error:?}"
    );
}

#[tokio::test]
async fn check_sends_an_empty_bulk_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(ENDPOINT))
        .and(body_json(json!({"app_id": "1234567890", "users": []})))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;

    let done = sink(&server.uri()).check().await.unwrap();
    assert!(done.starts_with("Heap took a request for app_id 1234567890 at 127.0.0.1"), "{done}");
    assert!(done.ends_with("Heap answers 200 to app ids it does not know"), "{done}");
}

#[tokio::test]
async fn check_reports_a_refused_app_id_as_fatal() {
    let server = answering(400, "Invalid app_id").await;
    let error = sink(&server.uri()).check().await.unwrap_err();
    assert_eq!(
        error,
        ConnectorError::Fatal(
            "Heap refused app_id 1234567890 (400 Bad Request): Invalid app_id; check app_id, region and base_url"
                .into()
        )
    );
}

#[tokio::test]
async fn check_reports_an_unavailable_heap_as_transient() {
    let server = answering(502, "").await;
    let error = sink(&server.uri()).check().await.unwrap_err();
    assert_eq!(
        error,
        ConnectorError::Transient(
            "Heap did not answer a check of app_id 1234567890 after 3 tries: 502 Bad Gateway: no explanation given"
                .into()
        )
    );
}

#[test]
fn config_defaults_and_a_numeric_app_id() {
    let config: HeapSinkConfig = serde_json::from_value(json!({"app_id": 1234567890})).unwrap();
    assert_eq!(config.app_id, "1234567890");
    assert_eq!(config.base_url, None);
    assert_eq!(config.timeout, Duration::from_secs(30));
    assert_eq!(config.max_retries, 5);
    assert_eq!(config.retry_delay, Duration::from_millis(500));
    assert_eq!(config.requests_per_second, 10);
    assert!(config.validate().is_empty());
    assert!(HeapSink::new(&config).is_ok());
}

#[test]
fn a_region_picks_heaps_host_and_excludes_base_url() {
    let eu: HeapSinkConfig = serde_json::from_value(json!({"app_id": "1", "region": "eu"})).unwrap();
    assert!(eu.validate().is_empty());
    let both: HeapSinkConfig =
        serde_json::from_value(json!({"app_id": "1", "region": "us", "base_url": "https://heap.example"}))
            .unwrap();
    assert_eq!(both.validate()[0].field, "region");
    let unknown = serde_json::from_value::<HeapSinkConfig>(json!({"app_id": "1", "region": "apac"}));
    assert!(unknown.unwrap_err().to_string().contains("unknown variant `apac`"));
}

#[test]
fn config_refuses_unknown_fields_and_non_numeric_ids() {
    let unknown = serde_json::from_value::<HeapSinkConfig>(json!({"app_id": "1", "api_key": "x"}));
    assert!(unknown.unwrap_err().to_string().contains("unknown field `api_key`"));
    let negative = serde_json::from_value::<HeapSinkConfig>(json!({"app_id": -1}));
    assert!(negative.unwrap_err().to_string().contains("numeric environment id"));
}

#[test]
fn validate_lists_every_problem() {
    let mut config = config("ftp://heap.example");
    config.app_id = "prod".into();
    config.timeout = Duration::ZERO;
    config.requests_per_second = 0;

    let problems: Vec<String> = config.validate().iter().map(ToString::to_string).collect();

    assert_eq!(
        problems,
        [
            r#"app_id: must be the numeric environment id from Heap's Projects page, got "prod""#,
            r#"base_url: must be an absolute http(s) URL, got "ftp://heap.example""#,
            "timeout: must be longer than zero, such as 30s",
            "requests_per_second: must be at least 1, such as 10",
        ]
    );
    assert!(matches!(HeapSink::new(&config), Err(ConnectorError::Fatal(_))));
    for base_url in ["heapanalytics.com", "/api", ""] {
        let problems = self::config(base_url).validate();
        assert_eq!(problems.len(), 1, "{base_url:?}");
        assert_eq!(problems[0].field, "base_url");
    }
    let mut empty = self::config("https://heapanalytics.com");
    empty.app_id = String::new();
    assert_eq!(empty.validate()[0].field, "app_id");
}

#[test]
fn plain_http_is_only_for_this_machine() {
    for local in
        ["http://127.0.0.1:8080", "http://127.1.2.3/heap", "http://localhost:3000", "http://[::1]:80"]
    {
        assert!(config(local).validate().is_empty(), "{local}");
    }
    for remote in ["http://heapanalytics.com", "http://10.1.2.3:8080", "http://localhost.example.com"] {
        let problems: Vec<String> = config(remote).validate().iter().map(ToString::to_string).collect();
        assert_eq!(
            problems,
            ["base_url: uses plain http: use https://; plain http is only allowed for a local emulator \
              (localhost, 127.0.0.1, ::1)"],
            "{remote}"
        );
        assert!(matches!(HeapSink::new(&config(remote)), Err(ConnectorError::Fatal(_))));
    }
}

#[tokio::test]
async fn requests_keep_to_requests_per_second_retries_included() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(ENDPOINT))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(ENDPOINT))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let mut config = config(&server.uri());
    config.requests_per_second = 20;
    let heap = HeapSink::new(&config).unwrap();

    // Two retried requests, then three more: six requests, one every 50 ms.
    let started = Instant::now();
    for n in 0..4 {
        heap.write(&[update(&format!("u-{n}"), &[])]).await.unwrap();
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 6);
    assert!(started.elapsed() >= Duration::from_millis(250), "{:?}", started.elapsed());
}
