//! The Reveal look-alike: the company whose network an IP address belongs to, with Clearbit's key,
//! statuses and error bodies, and scripted answers such as Hull's published shape.

use enrich_emulator::{Emulator, EmulatorConfig, Scripted};
use serde_json::{Value, json};

const KEY: &str = "sk_emulator_secret";
const OFFICE_IP: &str = "81.2.69.160";

async fn reveal(emulator: &Emulator, ip: &str, key: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}/v1/companies/find", emulator.clearbit_url()))
        .query(&[("ip", ip)])
        .bearer_auth(key)
        .send()
        .await
        .expect("the emulator answers");
    (response.status().as_u16(), response.json().await.expect("a JSON body"))
}

#[tokio::test]
async fn an_assigned_address_names_its_company_others_are_unknown() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emulator.assign_network(OFFICE_IP, "northwind.io");

    let (status, body) = reveal(&emulator, OFFICE_IP, KEY).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ip"], OFFICE_IP);
    assert_eq!(body["domain"], "northwind.io");
    assert_eq!(
        (&body["fuzzy"], &body["type"], &body["confidenceScore"]),
        (&json!(false), &json!("company"), &json!("very_high"))
    );
    assert_eq!(body["company"]["domain"], "northwind.io");

    let (status, body) = reveal(&emulator, "81.2.69.161", KEY).await;
    assert_eq!((status, &body["error"]["type"]), (404, &json!("unknown_record")));
    let (status, body) = reveal(&emulator, "not-an-ip", KEY).await;
    assert_eq!((status, &body["error"]["type"]), (422, &json!("invalid_ip")));
    let (status, _) = reveal(&emulator, OFFICE_IP, "sk_wrong").await;
    assert_eq!(status, 401);

    let asked: Vec<(String, String, u16)> = emulator
        .clearbit_requests()
        .into_iter()
        .map(|request| (request.path, request.email, request.status))
        .collect();
    assert_eq!(asked[0], ("/v1/companies/find".to_owned(), OFFICE_IP.to_owned(), 200));
    assert_eq!(asked.len(), 4);
}

#[tokio::test]
async fn scripts_answer_in_any_shape() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let hull =
        json!({ "ip": OFFICE_IP, "domain": "uber.com", "fuzzy": false, "company": { "name": "Uber" } });
    emulator.script_clearbit(OFFICE_IP, vec![Scripted::Body(200, hull.to_string()), Scripted::Status(503)]);

    assert_eq!(reveal(&emulator, OFFICE_IP, KEY).await, (200, hull));
    assert_eq!(reveal(&emulator, OFFICE_IP, KEY).await.0, 503);
    assert_eq!(reveal(&emulator, OFFICE_IP, KEY).await.0, 404, "then unknown, as no network was assigned");
}
