//! The People Data Labs look-alike, driven over HTTP as PDL's docs describe the real API.

use enrich_emulator::{Emulator, EmulatorConfig};
use serde_json::{Value, json};

const KEY: &str = "pdl_emulator_key";

async fn emulator(config: EmulatorConfig) -> Emulator {
    Emulator::start(EmulatorConfig { not_found_share: 0.0, ..config }).await.unwrap()
}

async fn bulk(emulator: &Emulator, key: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/v5/person/bulk", emulator.pdl_url()))
        .header("X-Api-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.unwrap())
}

fn people(emails: &[&str]) -> Value {
    let requests: Vec<Value> = emails
        .iter()
        .enumerate()
        .map(|(index, email)| json!({"params": {"email": [email]}, "metadata": {"index": index.to_string()}}))
        .collect();
    json!({ "requests": requests, "min_likelihood": 1, "titlecase": true })
}

#[tokio::test]
async fn bulk_answers_each_person_in_order_with_its_metadata_and_the_headers() {
    let emulator = emulator(EmulatorConfig { pdl_credits: Some(10), ..EmulatorConfig::default() }).await;
    let (status, headers, body) = bulk(&emulator, KEY, &people(&["ada@acme.io", "bob@globex.com"])).await;
    assert_eq!(status, 200);
    let items = body.as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        (items[0]["status"].clone(), items[1]["metadata"].clone()),
        (json!(200), json!({"index": "1"}))
    );
    assert!(items[0]["data"]["job_company_name"].is_string() && items[0]["likelihood"].is_u64());
    assert_eq!(headers["x-totallimit-remaining"], "8", "a credit a person found");
    assert!(headers["x-ratelimit-remaining"].to_str().unwrap().starts_with("{'minute': "));
    assert!(headers["x-ratelimit-reset"].to_str().unwrap().ends_with('Z'));
    let requests = emulator.pdl_requests();
    assert_eq!(requests[0].emails, ["ada@acme.io", "bob@globex.com"]);
    assert!(requests[0].authorized && !requests[0].key_in_url);
}

#[tokio::test]
async fn a_wrong_key_too_many_people_and_no_credits_are_refused() {
    let emulator = emulator(EmulatorConfig { pdl_credits: Some(1), ..EmulatorConfig::default() }).await;
    assert_eq!(bulk(&emulator, "wrong", &people(&["a@acme.io"])).await.0, 401);
    let many: Vec<String> = (0..101).map(|n| format!("p{n}@acme.io")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(bulk(&emulator, KEY, &people(&many)).await.0, 400);
    // The last credit goes to the first person found; the second is answered 402 in the bulk answer.
    let (status, _, body) = bulk(&emulator, KEY, &people(&["a@acme.io", "b@acme.io"])).await;
    assert_eq!((status, body[1]["status"].clone()), (200, json!(402)));
    let (status, _, body) = bulk(&emulator, KEY, &people(&["c@acme.io"])).await;
    assert_eq!((status, body["error"]["type"].clone()), (402, json!("payment_required")));
}

#[tokio::test]
async fn a_free_plan_answers_placeholders_and_text_is_lower_case_without_titlecase() {
    let emulator = emulator(EmulatorConfig { pdl_free_plan: true, ..EmulatorConfig::default() }).await;
    let response = reqwest::Client::new()
        .get(format!("{}/v5/person/enrich", emulator.pdl_url()))
        .query(&[("api_key", KEY), ("email", "ada.lovelace@acme.io"), ("min_likelihood", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    let data = &body["data"];
    assert_eq!((data["work_email"].clone(), data["phone_numbers"].clone()), (json!(true), json!(false)));
    assert!(data["location_locality"].is_boolean());
    let name = data["full_name"].as_str().unwrap();
    assert_eq!(name, name.to_lowercase(), "lower case unless titlecase");
    assert!(emulator.pdl_requests()[0].key_in_url, "the log says the key came in the URL");
}

#[tokio::test]
async fn industries_are_pdls_own_lower_case_names_even_with_titlecase() {
    let emulator = emulator(EmulatorConfig::default()).await;
    let emails: Vec<String> = (0..40).map(|n| format!("person{n}@company{n}.com")).collect();
    let emails: Vec<&str> = emails.iter().map(String::as_str).collect();
    let (status, _, body) = bulk(&emulator, KEY, &people(&emails)).await;
    assert_eq!(status, 200);
    let industries: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|item| item["data"]["job_company_industry"].as_str())
        .collect();
    assert!(industries.len() > 10, "{body}");
    for industry in &industries {
        assert_eq!(*industry, industry.to_lowercase(), "PDL's canonical industries are lower case");
        assert!(
            !industry.contains("Software & Services") && !industry.contains("Internet Software"),
            "{industry}"
        );
    }
    assert!(industries.iter().any(|industry| industry.contains(' ')), "{industries:?}");
}
