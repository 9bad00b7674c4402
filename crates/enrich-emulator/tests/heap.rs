//! The Heap look-alike, driven over HTTP as the Heap connector would drive the real API.

use std::time::Duration;

use enrich_emulator::{Emulator, EmulatorConfig, HeapRequest, HeapUser, Scripted};
use serde_json::{Map, Value, json};

const APP_ID: &str = "1234567890";

async fn post_raw(emulator: &Emulator, body: String) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("{}/api/add_user_properties", emulator.heap_url()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the emulator answers");
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn post(emulator: &Emulator, body: Value) -> (u16, String) {
    post_raw(emulator, body.to_string()).await
}

fn properties(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(properties) => properties,
        other => panic!("not an object: {other}"),
    }
}

#[tokio::test]
async fn single_and_bulk_requests_are_recorded_and_merged() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let single =
        json!({"app_id": APP_ID, "identity": "ada", "properties": {"company": "Acme", "employees": 40}});
    assert_eq!(post(&emulator, single).await.0, 200);
    let bulk = json!({"app_id": APP_ID, "users": [
        {"identity": "ada", "properties": {"company": "Acme Robotics", "title": "CTO"}},
        {"identity": "grace", "properties": {"company": "Navy"}},
    ]});
    assert_eq!(post(&emulator, bulk).await.0, 200);

    let requests = emulator.heap_requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0],
        HeapRequest {
            app_id: APP_ID.to_owned(),
            users: vec![HeapUser {
                identity: "ada".to_owned(),
                properties: properties(json!({"company": "Acme", "employees": 40})),
            }],
        }
    );
    assert_eq!(requests[1].users.len(), 2);

    let users = emulator.heap_users();
    assert_eq!(
        users["ada"],
        properties(json!({"company": "Acme Robotics", "employees": 40, "title": "CTO"})),
        "later values overwrite, others stay"
    );
    assert_eq!(users["grace"], properties(json!({"company": "Navy"})));
    emulator.shutdown().await;
}

#[tokio::test]
async fn requests_heap_would_reject_answer_400_and_are_not_recorded() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let user = |identity: &str, properties: Value| json!({"identity": identity, "properties": properties});
    let too_many: Vec<Value> = (0..1001).map(|index| user(&format!("u{index}"), json!({"a": 1}))).collect();
    let rejected = [
        (json!({"app_id": "999", "identity": "ada", "properties": {"a": 1}}), "app_id"),
        (json!({"identity": "ada", "properties": {"a": 1}}), "app_id"),
        (json!({"app_id": APP_ID, "users": too_many}), "Too many users"),
        (json!({"app_id": APP_ID, "properties": {"a": 1}}), "identity"),
        (json!({"app_id": APP_ID, "identity": "", "properties": {"a": 1}}), "identity"),
        (json!({"app_id": APP_ID, "identity": "x".repeat(256), "properties": {"a": 1}}), "identity"),
        (json!({"app_id": APP_ID, "identity": 7, "properties": {"a": 1}}), "identity"),
        (json!({"app_id": APP_ID, "identity": "ada"}), "properties"),
        (json!({"app_id": APP_ID, "identity": "ada", "properties": {"a": true}}), "number or a string"),
        (json!({"app_id": APP_ID, "identity": "ada", "properties": {"a": null}}), "number or a string"),
        (json!({"app_id": APP_ID, "identity": "ada", "properties": {"a": [1]}}), "number or a string"),
        (json!({"app_id": APP_ID, "identity": "ada", "properties": {"a": {"b": 1}}}), "number or a string"),
        (
            json!({"app_id": APP_ID, "identity": "ada", "properties": {"a": "x".repeat(1024)}}),
            "shorter than 1024",
        ),
        (json!({"app_id": APP_ID, "identity": "ada", "properties": {"id": 1}}), "reserved"),
        (json!({"app_id": APP_ID, "identity": "ada", "properties": {"ID": "1"}}), "reserved"),
        (
            json!({"app_id": APP_ID, "users": [user("ok", json!({"a": 1})), user("bad", json!({"Id": 1}))]}),
            "users[1]: property \"Id\" is reserved",
        ),
        (json!(["not", "an", "object"]), "object"),
    ];
    for (body, problem) in rejected {
        let (status, message) = post(&emulator, body).await;
        assert_eq!(status, 400, "{message}");
        assert!(message.contains(problem), "{message:?} does not name {problem:?}");
    }
    let (status, message) = post_raw(&emulator, "{\"app_id\": ".to_owned()).await;
    assert_eq!(status, 400);
    assert!(message.starts_with("Malformed JSON"), "{message}");
    // An empty bulk request is how a client proves its app_id: accepted, and it changes nothing.
    let (status, _) = post(&emulator, json!({"app_id": APP_ID, "users": []})).await;
    assert_eq!(status, 200);

    assert!(emulator.heap_requests().is_empty());
    assert!(emulator.heap_users().is_empty());

    // The limits themselves are fine.
    let longest_value = "x".repeat(1023);
    let at_limits =
        json!({"app_id": APP_ID, "identity": "x".repeat(255), "properties": {"a": longest_value, "b": 1.5}});
    assert_eq!(post(&emulator, at_limits).await.0, 200);
    emulator.shutdown().await;
}

#[tokio::test]
async fn scripted_answers_are_given_first_and_not_recorded() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emulator.script_heap(vec![
        Scripted::Status(429),
        Scripted::Delay(Duration::from_millis(20), Box::new(Scripted::Status(500))),
        Scripted::Body(400, "nope".to_owned()),
        Scripted::Found,
    ]);
    let body = json!({"app_id": APP_ID, "identity": "ada", "properties": {"a": 1}});
    assert_eq!(post(&emulator, body.clone()).await, (429, "Too Many Requests".to_owned()));
    assert_eq!(post(&emulator, body.clone()).await.0, 500);
    assert_eq!(post(&emulator, body.clone()).await, (400, "nope".to_owned()));
    assert!(emulator.heap_requests().is_empty());

    assert_eq!(post(&emulator, body.clone()).await.0, 200, "Found: normal handling");
    assert_eq!(post(&emulator, body).await.0, 200, "script used up");
    assert_eq!(emulator.heap_requests().len(), 2);
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_request_log_is_served() {
    let emulator =
        Emulator::start(EmulatorConfig { heap_app_id: "42".to_owned(), ..EmulatorConfig::default() })
            .await
            .unwrap();
    post(&emulator, json!({"app_id": 42, "identity": "ada", "properties": {"a": "b"}})).await;
    let log: Value = reqwest::get(format!("{}/_emulator/requests", emulator.heap_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log, json!([{"app_id": "42", "users": [{"identity": "ada", "properties": {"a": "b"}}]}]));
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_request_with_a_refused_identity_is_refused_whole() {
    let config =
        EmulatorConfig { heap_refused_identities: ["bad".to_owned()].into(), ..EmulatorConfig::default() };
    let emulator = Emulator::start(config).await.unwrap();
    let bulk = json!({"app_id": APP_ID, "users": [
        {"identity": "ada", "properties": {"company": "Acme"}},
        {"identity": "bad", "properties": {"company": "Acme"}},
    ]});
    assert_eq!(post(&emulator, bulk).await, (400, "users[1]: identity is refused".to_owned()));
    assert!(emulator.heap_users().is_empty(), "nothing of it is kept");
    let good = json!({"app_id": APP_ID, "users": [{"identity": "ada", "properties": {"company": "Acme"}}]});
    assert_eq!(post(&emulator, good).await.0, 200);
}

#[tokio::test]
async fn a_heap_that_forgets_writes_acknowledges_them_and_keeps_nothing() {
    let config = EmulatorConfig { heap_keeps_writes: false, ..EmulatorConfig::default() };
    let emulator = Emulator::start(config).await.unwrap();
    let bulk = json!({"app_id": APP_ID, "users": [{"identity": "ada", "properties": {"company": "Acme"}}]});
    assert_eq!(post(&emulator, bulk).await.0, 200);
    assert!(emulator.heap_users().is_empty() && emulator.heap_requests().is_empty());
    let wrong_app = json!({"app_id": "999", "users": [{"identity": "ada", "properties": {}}]});
    assert_eq!(post(&emulator, wrong_app).await.0, 400, "it still checks what it is sent");
}

#[tokio::test]
async fn an_unknown_app_id_is_refused_or_silently_dropped() {
    let body = json!({"app_id": "999", "users": [{"identity": "ada", "properties": {"company": "Acme"}}]});
    let refusing = Emulator::start(EmulatorConfig::default()).await.unwrap();
    assert_eq!(post(&refusing, body.clone()).await, (400, "Invalid app_id: 999".to_owned()));
    let accepting =
        Emulator::start(EmulatorConfig { heap_accepts_unknown_app_ids: true, ..EmulatorConfig::default() })
            .await
            .unwrap();
    assert_eq!(post(&accepting, body).await.0, 200);
    assert!(accepting.heap_users().is_empty() && accepting.heap_requests().is_empty());
}

#[tokio::test]
async fn scripts_a_redirect() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emulator.script_heap(vec![Scripted::Redirect(301, "http://elsewhere.test/api".into())]);
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/api/add_user_properties", emulator.heap_url()))
        .json(&json!({"app_id": APP_ID, "users": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 301);
    assert_eq!(response.headers()["location"], "http://elsewhere.test/api");
}
