//! The source against a local HTTP server answering as Clearbit does, status by status, and against
//! the emulator enforcing Clearbit's limits.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use enrich_clearbit::{ClearbitConfig, ClearbitSource, every_attribute, map_combined};
use enrich_core::{
    CancellationToken, ConnectorError, KeyKind, Lookup, LookupHints, LookupKey, PropertyKind, PropertyValue,
    Record, Source,
};
use enrich_emulator::{Emulator, EmulatorConfig};
use futures::StreamExt;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

const KEY: &str = "sk_test_0123456789secret";
const EMAIL: &str = "jane.doe@example.com";
/// Retries the tests allow, so that the number of requests an exhausted lookup makes is known.
const MAX_RETRIES: u64 = 2;

fn config(server_uri: &str, overrides: Value) -> ClearbitConfig {
    let mut fields = json!({
        "api_key": KEY,
        "base_url": server_uri,
        "retry_delay": "1ms",
        "pending_delay": "1ms",
        "max_retries": MAX_RETRIES,
        // Fast enough that no test but those about the pace waits for it.
        "requests_per_minute": 60_000,
    });
    if let (Some(fields), Value::Object(overrides)) = (fields.as_object_mut(), overrides) {
        fields.extend(overrides);
    }
    serde_json::from_value(fields).unwrap()
}

fn source(server: &MockServer) -> ClearbitSource {
    source_with(server, json!({}))
}

fn source_with(server: &MockServer, overrides: Value) -> ClearbitSource {
    ClearbitSource::new(&config(&server.uri(), overrides)).unwrap()
}

async fn lookup(source: &ClearbitSource, email: &str) -> Result<Lookup, ConnectorError> {
    let never_stopped = CancellationToken::new();
    source
        .lookup(&LookupKey::Email(email.to_owned()), &LookupHints::default(), &never_stopped)
        .await
        .expect("never stopped")
}

/// Clearbit's answer for an email it knows nothing about.
fn unknown_record() -> ResponseTemplate {
    clearbit_error(404, "unknown_record", "Unknown person.")
}

/// The request the source must make for `email`, key included.
fn find(email: &str) -> MockBuilder {
    Mock::given(method("GET"))
        .and(path("/v2/combined/find"))
        .and(query_param("email", email))
        .and(header("authorization", format!("Bearer {KEY}")))
}

fn clearbit_error(status: u16, kind: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "error": { "type": kind, "message": message } }))
}

/// An answer carrying Clearbit's rate-limit headers, the window ending `reset_in_seconds` from now.
fn with_rate_limit(answer: ResponseTemplate, remaining: u32, reset_in_seconds: u64) -> ResponseTemplate {
    let reset = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + reset_in_seconds;
    answer
        .insert_header("x-ratelimit-limit", "600")
        .insert_header("x-ratelimit-remaining", remaining.to_string())
        .insert_header("x-ratelimit-reset", reset.to_string())
}

fn calvinklein() -> Value {
    serde_json::from_str(include_str!("../fixtures/combined-real-calvinklein-2016.json")).unwrap()
}

/// A completed check that found nothing: it says so in `Clearbit: Match`, and in nothing else.
fn not_found() -> Lookup {
    let mut record = Record::default();
    record.properties.insert("Clearbit: Match".to_owned(), PropertyValue::Text("not found".to_owned()));
    Lookup::NotFound(record)
}

/// The message of an error, after checking it gives away neither the key nor the email.
fn message(error: &ConnectorError) -> String {
    let text = error.to_string();
    for secret in [KEY, EMAIL, "jane.doe%40example.com", "jane.doe"] {
        assert!(!text.contains(secret), "{text:?} gives away {secret:?}");
    }
    text
}

#[tokio::test]
async fn a_200_is_the_mapped_record() {
    let server = MockServer::start().await;
    find(EMAIL)
        .respond_with(ResponseTemplate::new(200).set_body_json(calvinklein()))
        .expect(1)
        .mount(&server)
        .await;

    let Lookup::Found(record) = lookup(&source(&server), EMAIL).await.unwrap() else { panic!("not found") };
    assert_eq!(record, map_combined(&calvinklein(), &every_attribute()));
    assert!(record.properties.contains_key("Company Website URL"));
}

#[tokio::test]
async fn a_record_is_mapped_with_the_connections_selection() {
    let server = MockServer::start().await;
    find(EMAIL).respond_with(ResponseTemplate::new(200).set_body_json(calvinklein())).mount(&server).await;
    let selection =
        json!({ "include": ["company.*"], "rename": { "company.metrics.employeesRange": "Company Size" } });
    let source = source_with(&server, json!({ "properties": selection }));

    let Lookup::Found(record) = lookup(&source, EMAIL).await.unwrap() else { panic!("not found") };
    assert!(
        record.properties.keys().all(|name| !name.starts_with("Person")),
        "{:?}",
        record.properties.keys()
    );
    assert_eq!(record.properties["Company Size"], PropertyValue::Text("1000+".into()));
}

#[tokio::test]
async fn sends_the_key_as_a_bearer_token_and_says_who_asks() {
    let server = MockServer::start().await;
    Mock::given(method("GET")).respond_with(unknown_record()).mount(&server).await;

    lookup(&source(&server), "a+b@example.com").await.unwrap();
    let requests = server.received_requests().await.unwrap();
    let request = &requests[0];
    assert_eq!(request.headers["authorization"], format!("Bearer {KEY}").as_str());
    assert!(request.headers["user-agent"].to_str().unwrap().starts_with("enrich/"));
    assert_eq!(request.url.path(), "/v2/combined/find");
    assert_eq!(request.url.query(), Some("email=a%2Bb%40example.com"));
    assert_eq!(request.headers["api-version"], "2022-12-15", "the version the catalogue describes");
}

#[tokio::test]
async fn sends_the_configured_api_version_and_the_match_hints() {
    let server = MockServer::start().await;
    Mock::given(method("GET")).respond_with(unknown_record()).mount(&server).await;
    let source = source_with(&server, json!({ "api_version": "2019-12-19" }));
    let hints = LookupHints {
        given_name: Some("Ada".into()),
        family_name: Some("Lovelace".into()),
        ip: Some("203.0.113.7".parse().unwrap()),
    };
    source.lookup(&LookupKey::Email(EMAIL.into()), &hints, &CancellationToken::new()).await.unwrap().unwrap();
    let request = &server.received_requests().await.unwrap()[0];
    assert_eq!(request.headers["api-version"], "2019-12-19");
    let query: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
    let expected =
        [("email", EMAIL), ("given_name", "Ada"), ("family_name", "Lovelace"), ("ip_address", "203.0.113.7")];
    assert_eq!(query, expected.map(|(name, value)| (name.to_owned(), value.to_owned())));
}

#[tokio::test]
async fn a_201_is_a_found_record() {
    let server = MockServer::start().await;
    find(EMAIL).respond_with(ResponseTemplate::new(201).set_body_json(calvinklein())).mount(&server).await;
    assert!(matches!(lookup(&source(&server), EMAIL).await, Ok(Lookup::Found(_))));
}

#[tokio::test]
async fn a_404_of_another_type_is_a_wrong_base_url_and_fatal() {
    let server = MockServer::start().await;
    find(EMAIL)
        .respond_with(clearbit_error(404, "unknown_route", "No such route"))
        .expect(1)
        .mount(&server)
        .await;
    let error = lookup(&source(&server), EMAIL).await.unwrap_err();
    assert_eq!(
        error,
        ConnectorError::Fatal(format!(
            "Clearbit answered 404 unknown_route for {}/v2/combined/find: check base_url",
            server.uri()
        ))
    );
}

#[tokio::test]
async fn a_403_stops_the_connection_at_once() {
    let server = MockServer::start().await;
    find(EMAIL).respond_with(clearbit_error(403, "forbidden", "Plan lapsed")).expect(1).mount(&server).await;
    let error = lookup(&source(&server), EMAIL).await.unwrap_err();
    assert!(error.is_fatal(), "{error:?}");
    assert!(message(&error).contains("forbidden: Plan lapsed"), "{error}");
}

#[tokio::test]
async fn after_a_fatal_answer_no_other_email_is_asked() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(clearbit_error(403, "forbidden", "Plan lapsed"))
        .expect(1)
        .mount(&server)
        .await;
    let source = source(&server);
    let first = lookup(&source, EMAIL).await.unwrap_err();
    let second = lookup(&source, "someone.else@example.com").await.unwrap_err();
    assert_eq!(first, second, "the same refusal, without asking");
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_names_the_location() {
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET")).respond_with(unknown_record()).expect(0).mount(&elsewhere).await;
    let server = MockServer::start().await;
    let location = format!("{}/v2/combined/find?email=x", elsewhere.uri());
    find(EMAIL)
        .respond_with(ResponseTemplate::new(302).insert_header("Location", location.as_str()))
        .expect(1)
        .mount(&server)
        .await;
    let error = lookup(&source(&server), EMAIL).await.unwrap_err();
    assert!(error.is_fatal(), "{error:?}");
    assert!(message(&error).contains(&format!("redirecting to {location}")), "{error}");
}

#[tokio::test]
async fn an_api_warning_is_heeded_without_failing_the_lookup() {
    let server = MockServer::start().await;
    find(EMAIL)
        .respond_with(unknown_record().insert_header("X-API-Warn", "API version 2016-01-01 is deprecated"))
        .expect(2)
        .mount(&server)
        .await;
    let source = source(&server);
    for _ in 0..2 {
        assert_eq!(lookup(&source, EMAIL).await, Ok(not_found()));
    }
}

#[tokio::test]
async fn a_200_without_person_or_company_is_not_found() {
    let server = MockServer::start().await;
    find(EMAIL)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "person": null, "company": null })))
        .mount(&server)
        .await;
    assert_eq!(lookup(&source(&server), EMAIL).await, Ok(not_found()));
}

#[tokio::test]
async fn a_404_is_not_found() {
    let server = MockServer::start().await;
    find(EMAIL)
        .respond_with(clearbit_error(404, "unknown_record", "Unknown person."))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(lookup(&source(&server), EMAIL).await, Ok(not_found()));
}

#[tokio::test]
async fn a_422_is_invalid_with_clearbits_reason() {
    let server = MockServer::start().await;
    find(EMAIL)
        .respond_with(clearbit_error(422, "email_invalid", "Invalid email: jane.doe@example.com"))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(
        lookup(&source(&server), EMAIL).await,
        Ok(Lookup::Invalid("email_invalid: Invalid email: <email>".into()))
    );
}

#[tokio::test]
async fn a_202_is_asked_again_until_the_record_is_there() {
    let server = MockServer::start().await;
    find(EMAIL).respond_with(ResponseTemplate::new(202)).up_to_n_times(2).expect(2).mount(&server).await;
    find(EMAIL)
        .respond_with(ResponseTemplate::new(200).set_body_json(calvinklein()))
        .expect(1)
        .mount(&server)
        .await;
    assert!(matches!(lookup(&source(&server), EMAIL).await, Ok(Lookup::Found(_))));
}

#[tokio::test]
async fn a_202_that_lasts_is_pending() {
    let server = MockServer::start().await;
    // The first ask, then `pending_retries` re-asks.
    find(EMAIL).respond_with(ResponseTemplate::new(202)).expect(3).mount(&server).await;
    let source = source_with(&server, json!({ "pending_retries": 2 }));
    assert_eq!(lookup(&source, EMAIL).await, Ok(Lookup::Pending));
}

#[tokio::test]
async fn a_401_stops_the_connection_at_once() {
    let server = MockServer::start().await;
    find(EMAIL)
        .respond_with(clearbit_error(401, "invalid_api_key", "Invalid API key."))
        .expect(1)
        .mount(&server)
        .await;

    let error = lookup(&source(&server), EMAIL).await.unwrap_err();
    assert!(error.is_fatal(), "{error:?}");
    let message = message(&error);
    assert!(message.contains("invalid_api_key") && message.contains("secret key (sk_…)"), "{message}");
}

#[tokio::test]
async fn a_402_stops_the_connection_at_once() {
    let server = MockServer::start().await;
    find(EMAIL).respond_with(ResponseTemplate::new(402)).expect(1).mount(&server).await;

    let error = lookup(&source(&server), EMAIL).await.unwrap_err();
    assert!(error.is_fatal(), "{error:?}");
    assert!(message(&error).contains("over its quota (402 Payment Required)"), "{error}");
}

#[tokio::test]
async fn a_429_is_retried() {
    let server = MockServer::start().await;
    find(EMAIL).respond_with(ResponseTemplate::new(429)).up_to_n_times(1).expect(1).mount(&server).await;
    find(EMAIL)
        .respond_with(ResponseTemplate::new(200).set_body_json(calvinklein()))
        .expect(1)
        .mount(&server)
        .await;
    assert!(matches!(lookup(&source(&server), EMAIL).await, Ok(Lookup::Found(_))));
}

#[tokio::test]
async fn a_400_rate_limit_is_retried() {
    let server = MockServer::start().await;
    find(EMAIL)
        .respond_with(clearbit_error(400, "rate_limit", "Limit is 5 concurrent requests"))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    find(EMAIL)
        .respond_with(ResponseTemplate::new(200).set_body_json(calvinklein()))
        .expect(1)
        .mount(&server)
        .await;
    assert!(matches!(lookup(&source(&server), EMAIL).await, Ok(Lookup::Found(_))));
}

#[tokio::test]
async fn a_lasting_503_is_transient_once_retries_are_spent() {
    let server = MockServer::start().await;
    find(EMAIL)
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({ "message": "Service down" })))
        .expect(MAX_RETRIES + 1)
        .mount(&server)
        .await;

    let error = lookup(&source(&server), EMAIL).await.unwrap_err();
    assert!(matches!(error, ConnectorError::Transient(_)), "{error:?}");
    assert_eq!(
        message(&error),
        "Clearbit failed (503 Service Unavailable, Service down); gave up after 2 retries"
    );
}

#[tokio::test]
async fn another_400_rejects_this_lookup_only() {
    let server = MockServer::start().await;
    find(EMAIL)
        .respond_with(clearbit_error(400, "invalid_param", "jane.doe@example.com: bad location"))
        .expect(1)
        .mount(&server)
        .await;

    let error = lookup(&source(&server), EMAIL).await.unwrap_err();
    assert!(matches!(error, ConnectorError::Rejected(_)), "{error:?}");
    assert_eq!(
        message(&error),
        "Clearbit refused the lookup (400 Bad Request, invalid_param: <email>: bad location)"
    );
}

#[tokio::test]
async fn a_broken_200_body_is_retried_then_transient() {
    let server = MockServer::start().await;
    find(EMAIL)
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"person": {"name": "#))
        .expect(MAX_RETRIES + 1)
        .mount(&server)
        .await;

    let error = lookup(&source(&server), EMAIL).await.unwrap_err();
    assert!(matches!(error, ConnectorError::Transient(_)), "{error:?}");
    assert!(message(&error).contains("not valid JSON"), "{error}");
}

#[tokio::test]
async fn a_slow_answer_times_out_and_is_transient() {
    let server = MockServer::start().await;
    find(EMAIL)
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .expect(MAX_RETRIES + 1)
        .mount(&server)
        .await;

    let error = lookup(&source_with(&server, json!({ "timeout": "50ms" })), EMAIL).await.unwrap_err();
    assert!(matches!(error, ConnectorError::Transient(_)), "{error:?}");
    assert!(message(&error).starts_with("Clearbit did not answer within 50ms"), "{error}");
}

#[tokio::test]
async fn an_unreachable_host_is_transient_and_the_message_has_no_url() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let source = ClearbitSource::new(&config(&format!("http://127.0.0.1:{closed_port}"), json!({}))).unwrap();

    let error = lookup(&source, EMAIL).await.unwrap_err();
    assert!(matches!(error, ConnectorError::Transient(_)), "{error:?}");
    assert!(message(&error).starts_with("cannot reach Clearbit"), "{error}");
}

#[tokio::test]
async fn requests_in_flight_stay_within_max_concurrency() {
    let server = MockServer::start().await;
    let delay = Duration::from_millis(100);
    Mock::given(method("GET")).respond_with(unknown_record().set_delay(delay)).mount(&server).await;
    let source = source_with(&server, json!({ "max_concurrency": 2 }));
    assert_eq!(source.max_in_flight(), 8);

    let started = Instant::now();
    let emails: Vec<String> = (0..6).map(|n| format!("user{n}@example.com")).collect();
    let lookups = emails.iter().map(|email| lookup(&source, email));
    for result in futures::future::join_all(lookups).await {
        assert_eq!(result, Ok(not_found()));
    }
    // Six requests, two at a time: three rounds.
    assert!(started.elapsed() >= delay * 3, "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_lookup_waiting_on_a_202_holds_no_request_permit() {
    let server = MockServer::start().await;
    let queued = "queued@example.com";
    find(queued).respond_with(ResponseTemplate::new(202)).mount(&server).await;
    find(EMAIL).respond_with(unknown_record()).mount(&server).await;
    let source =
        source_with(&server, json!({ "max_concurrency": 1, "pending_delay": "150ms", "pending_retries": 2 }));

    let timed = |email| {
        let source = &source;
        async move {
            let result = lookup(source, email).await;
            (result, Instant::now())
        }
    };
    let ((queued_result, queued_done), (found_result, found_done)) = tokio::join!(timed(queued), async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        timed(EMAIL).await
    });
    assert_eq!(queued_result, Ok(Lookup::Pending));
    assert_eq!(found_result, Ok(not_found()));
    assert!(found_done < queued_done, "the second lookup waited for the first one's pauses");
}

#[tokio::test]
async fn a_429_with_a_reset_waits_for_the_reset_instead_of_backing_off() {
    let server = MockServer::start().await;
    find(EMAIL)
        .respond_with(with_rate_limit(clearbit_error(429, "rate_limit", "Rate limit exceeded"), 0, 2))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    find(EMAIL).respond_with(unknown_record()).expect(1).mount(&server).await;

    // With a 1 ms backoff, a blind retry would come at once and spend the retries on more 429s.
    let started = Instant::now();
    assert_eq!(lookup(&source(&server), EMAIL).await, Ok(not_found()));
    // The reset is the Unix second two from now: between one and two seconds away.
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_spent_window_holds_every_lookup_until_it_resets() {
    let server = MockServer::start().await;
    find(EMAIL).respond_with(with_rate_limit(unknown_record(), 0, 2)).mount(&server).await;
    Mock::given(method("GET")).respond_with(unknown_record()).mount(&server).await;
    let source = source(&server);

    lookup(&source, EMAIL).await.unwrap();
    // Measured from the first answer, which spent the window: the next lookup waits for the reset.
    let spent = Instant::now();
    lookup(&source, "someone.else@example.com").await.unwrap();
    assert!(spent.elapsed() >= Duration::from_millis(900), "{:?}", spent.elapsed());
}

#[tokio::test]
async fn a_low_remainder_is_spread_until_the_reset() {
    let server = MockServer::start().await;
    Mock::given(method("GET")).respond_with(with_rate_limit(unknown_record(), 2, 3)).mount(&server).await;
    let source = source(&server);
    lookup(&source, EMAIL).await.unwrap();

    // Two requests left for two to three seconds: the first now, the second after about half of it,
    // and the third only once the window is over.
    let started = Instant::now();
    let emails = ["a@example.com", "b@example.com", "c@example.com"];
    let mut finished: Vec<Duration> = futures::future::join_all(emails.map(|email| {
        let source = &source;
        async move {
            lookup(source, email).await.unwrap();
            started.elapsed()
        }
    }))
    .await;
    finished.sort();
    assert!(finished[0] < Duration::from_millis(500), "{finished:?}");
    assert!(finished[1] >= Duration::from_millis(900), "{finished:?}");
    assert!(finished[2] >= Duration::from_millis(1900), "{finished:?}");
}

#[tokio::test]
async fn retries_stop_once_max_retry_time_runs_out() {
    let server = MockServer::start().await;
    find(EMAIL).respond_with(ResponseTemplate::new(503)).mount(&server).await;
    let source = source_with(
        &server,
        json!({ "max_retries": 100, "retry_delay": "100ms", "max_retry_time": "300ms" }),
    );

    let error = lookup(&source, EMAIL).await.unwrap_err();
    assert!(matches!(error, ConnectorError::Transient(_)), "{error:?}");
    let message = message(&error);
    assert!(message.ends_with("retries, as max_retry_time (300ms) ran out"), "{message}");
    let requests = server.received_requests().await.unwrap().len();
    assert!((2..10).contains(&requests), "{requests} requests");
}

#[tokio::test]
async fn requests_keep_to_requests_per_minute() {
    let server = MockServer::start().await;
    Mock::given(method("GET")).respond_with(unknown_record()).mount(&server).await;
    // One request every 50 ms, after a burst of max_concurrency.
    let source = source_with(&server, json!({ "requests_per_minute": 1200, "max_concurrency": 2 }));

    let started = Instant::now();
    let emails: Vec<String> = (0..8).map(|n| format!("user{n}@example.com")).collect();
    futures::future::join_all(emails.iter().map(|email| lookup(&source, email))).await;
    assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
}

#[tokio::test]
async fn on_the_streaming_host_a_202_is_pending_without_asking_again() {
    let server = MockServer::start().await;
    find(EMAIL).respond_with(ResponseTemplate::new(202)).expect(1).mount(&server).await;
    let source = source_with(&server, json!({ "stream": true, "pending_retries": 3 }));
    assert_eq!(lookup(&source, EMAIL).await, Ok(Lookup::Pending));
}

#[tokio::test]
async fn free_email_domains_are_declined_only_when_the_connection_says_so() {
    let server = MockServer::start().await;
    let key = |email: &str| LookupKey::Email(email.to_owned());
    let skipping = source_with(&server, json!({ "skip_free_email_domains": true }));
    assert_eq!(skipping.declines(&key("jane@gmail.com")), Some("free email domain"));
    assert_eq!(skipping.declines(&key("jane@GMX.de")), Some("free email domain"));
    assert_eq!(skipping.declines(&key(EMAIL)), None);
    assert_eq!(skipping.declines(&LookupKey::Ip("81.2.69.160".parse().unwrap())), None);
    assert_eq!(source(&server).declines(&key("jane@gmail.com")), None);
}

/// Against the emulator enforcing Clearbit's limits (scaled up tenfold to keep the test short): no
/// lookup is refused, and the run takes about the time the limit allows.
#[tokio::test(flavor = "multi_thread")]
async fn three_hundred_lookups_meet_neither_the_rate_nor_the_concurrency_limit() {
    const LOOKUPS: usize = 300;
    const PER_MINUTE: u32 = 6000;
    let emulator = Emulator::start(EmulatorConfig {
        clearbit_key: KEY.to_owned(),
        enforce_rate_limit: true,
        rate_limit_per_minute: PER_MINUTE,
        max_concurrent_requests: Some(5),
        latency: Duration::from_millis(15),
        latency_jitter: Duration::from_millis(20),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let source = ClearbitSource::new(&config(
        &emulator.clearbit_url(),
        json!({ "requests_per_minute": PER_MINUTE, "max_concurrency": 5 }),
    ))
    .unwrap();

    let started = Instant::now();
    let emails: Vec<String> = (0..LOOKUPS).map(|n| format!("person{n}@firm{}.io", n % 20)).collect();
    // As the engine does: at most max_in_flight lookups at once.
    let results: Vec<_> = futures::stream::iter(&emails)
        .map(|email| lookup(&source, email))
        .buffer_unordered(source.max_in_flight())
        .collect()
        .await;
    let elapsed = started.elapsed();

    let failures: Vec<_> = results.iter().filter(|result| result.is_err()).collect();
    assert!(failures.is_empty(), "{failures:?}");
    let counts = emulator.fault_counts();
    assert_eq!((counts.rate_limited, counts.concurrency_limited), (0, 0), "{counts:?}");
    let requests = emulator.clearbit_requests();
    assert_eq!(requests.len(), LOOKUPS, "every lookup asked once, no retry");
    let allowed = Duration::from_secs(60) * LOOKUPS as u32 / PER_MINUTE;
    println!(
        "{LOOKUPS} lookups at {PER_MINUTE}/min with 5 concurrent: {elapsed:?}, {:.2}× the {allowed:?} the \
         limit allows; no 429, no concurrency 400",
        elapsed.as_secs_f64() / allowed.as_secs_f64()
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn check_accepts_any_answer_but_a_refused_key_or_account() {
    let server = MockServer::start().await;
    find("alex@clearbit.com").respond_with(unknown_record()).up_to_n_times(1).mount(&server).await;
    find("alex@clearbit.com").respond_with(clearbit_error(402, "quota", "Over quota")).mount(&server).await;
    let source = source(&server);

    let description = source.check().await.unwrap();
    assert_eq!(description, "key accepted (one lookup of alex@clearbit.com: no record, billed as one)");
    assert!(source.check().await.unwrap_err().is_fatal());
}

#[tokio::test]
async fn check_fails_on_a_rejected_key() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(clearbit_error(401, "invalid_api_key", "Invalid API key."))
        .mount(&server)
        .await;
    let error = source(&server).check().await.unwrap_err();
    assert!(error.is_fatal(), "{error:?}");
    message(&error);
}

#[test]
fn describes_itself_without_the_key() {
    let source = ClearbitSource::new(&config("https://person.clearbit.com", json!({}))).unwrap();
    assert_eq!(source.kind(), "clearbit");
    assert_eq!(source.key_kind(), KeyKind::Email);
    assert_eq!(source.checked_property(), "Clearbit: Date Last Checked");
    assert_eq!(source.max_in_flight(), 20);
    let debug = format!("{source:?}");
    assert!(!debug.contains(KEY) && !debug.contains("0123456789secret"), "{debug}");
}

#[test]
fn lists_what_this_connection_writes() {
    let everything = ClearbitSource::new(&config("https://person.clearbit.com", json!({}))).unwrap();
    let without_reveal: Vec<_> = every_attribute()
        .properties()
        .into_iter()
        .filter(|property| !property.name.starts_with("Clearbit: Reveal"))
        .collect();
    assert_eq!(everything.properties(), without_reveal);
    let check = &everything.properties()[..2];
    assert_eq!((check[0].name.as_str(), check[0].kind), ("Clearbit: Date Last Checked", PropertyKind::Date));
    assert_eq!((check[1].name.as_str(), check[1].kind), ("Clearbit: Match", PropertyKind::Text));

    let selection = json!({ "include": ["company.metrics.employees*"], "rename": {
        "company.metrics.employeesRange": "Company Size",
    }});
    let chosen =
        ClearbitSource::new(&config("https://person.clearbit.com", json!({ "properties": selection })));
    let listed: Vec<(String, Option<String>)> =
        chosen.unwrap().properties().into_iter().map(|property| (property.name, property.path)).collect();
    let path = |path: &str| Some(path.to_owned());
    assert_eq!(
        listed,
        [
            ("Clearbit: Date Last Checked".to_owned(), None),
            ("Clearbit: Match".to_owned(), None),
            ("Clearbit: Company Source".to_owned(), None),
            ("Company Employees".to_owned(), path("company.metrics.employees")),
            ("Company Size".to_owned(), path("company.metrics.employeesRange")),
        ]
    );
}

#[test]
fn refuses_an_invalid_config_without_quoting_the_key() {
    let properties = json!({ "exclude": ["persn.*"] });
    let mut config =
        config("https://person.clearbit.com", json!({ "max_concurrency": 0, "properties": properties }));
    config.api_key = "pk_live_abc987".into();
    let error = ClearbitSource::new(&config).unwrap_err();
    assert!(error.is_fatal());
    let text = error.to_string();
    for field in ["api_key", "max_concurrency", "properties.exclude[0]"] {
        assert!(text.contains(field), "{text}");
    }
    assert!(!text.contains("abc987"), "{text}");
}

#[tokio::test]
async fn an_ip_address_is_not_a_key_it_can_look_up() {
    let source = ClearbitSource::new(&config("https://person.clearbit.com", json!({}))).unwrap();
    let ip = LookupKey::Ip("192.0.2.1".parse().unwrap());
    let error =
        source.lookup(&ip, &LookupHints::default(), &CancellationToken::new()).await.unwrap().unwrap_err();
    assert!(error.is_fatal(), "{error:?}");
}

/// A budget shared with other workers that makes every request wait 30 ms, and records its bookings.
#[derive(Debug, Default)]
struct SlowBudget(std::sync::Mutex<Vec<(u64, u32)>>);

#[async_trait::async_trait]
impl enrich_core::SharedBudget for SlowBudget {
    async fn book(&self, key: u64, per_minute: std::num::NonZeroU32) -> Result<Duration, String> {
        self.0.lock().unwrap().push((key, per_minute.get()));
        Ok(Duration::from_millis(30))
    }
}

#[tokio::test]
async fn every_lookup_books_the_shared_budget_and_waits_its_turn() {
    let server = MockServer::start().await;
    find(EMAIL)
        .respond_with(ResponseTemplate::new(200).set_body_json(calvinklein()))
        .expect(3)
        .mount(&server)
        .await;
    let budget = std::sync::Arc::new(SlowBudget::default());
    let source = source(&server).with_shared_budget(budget.clone());
    let started = Instant::now();
    for _ in 0..3 {
        lookup(&source, EMAIL).await.unwrap();
    }
    assert!(started.elapsed() >= Duration::from_millis(90), "each lookup waited for its turn");
    let bookings = budget.0.lock().unwrap().clone();
    assert_eq!(bookings.len(), 3);
    assert!(bookings.iter().all(|booking| *booking == bookings[0] && booking.1 == 60_000), "{bookings:?}");
    let other_key =
        ClearbitSource::new(&config(&server.uri(), json!({ "api_key": "sk_test_another_key_0123" })))
            .unwrap()
            .with_shared_budget(budget.clone());
    lookup(&other_key, EMAIL).await.ok();
    assert_ne!(budget.0.lock().unwrap()[3].0, bookings[0].0, "one budget per key");
}
