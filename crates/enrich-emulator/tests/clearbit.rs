//! The Clearbit look-alike, driven over HTTP as a connector would drive the real API.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use enrich_emulator::{Emulator, EmulatorConfig, Scripted};
use serde_json::{Value, json};

const KEY: &str = "sk_emulator_secret";

async fn start(config: EmulatorConfig) -> Emulator {
    Emulator::start(config).await.expect("the emulator starts")
}

/// Every generated email is found, so tests about other behaviour are not disturbed by 404s.
fn always_found() -> EmulatorConfig {
    EmulatorConfig { not_found_share: 0.0, ..EmulatorConfig::default() }
}

async fn get(emulator: &Emulator, path: &str, param: (&str, &str)) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}{path}", emulator.clearbit_url()))
        .query(&[param])
        .bearer_auth(KEY)
        .send()
        .await
        .expect("the emulator answers")
}

/// A combined lookup with the right key: the status and the parsed body.
async fn combined(emulator: &Emulator, email: &str) -> (u16, Value) {
    let response = get(emulator, "/v2/combined/find", ("email", email)).await;
    (response.status().as_u16(), response.json().await.expect("a JSON body"))
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/../../connectors/clearbit/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("the fixture exists")).expect("valid JSON")
}

fn error_type(body: &Value) -> &str {
    body["error"]["type"].as_str().expect("an error body")
}

#[tokio::test]
async fn answers_are_deterministic_and_colleagues_share_their_company() {
    let (first, second) = (start(always_found()).await, start(always_found()).await);
    let (status, jane) = combined(&first, "jane.doe@northwind-traders.com").await;
    assert_eq!(status, 200);
    assert_eq!(combined(&first, "jane.doe@northwind-traders.com").await.1, jane);
    assert_eq!(combined(&second, "Jane.Doe@Northwind-Traders.com").await.1, jane, "same on another server");

    assert_eq!(jane["person"]["name"]["fullName"], "Jane Doe", "named after a first.last local part");
    assert_eq!(jane["company"]["name"], "Northwind Traders");
    assert_eq!(jane["company"]["domain"], "northwind-traders.com");
    assert_eq!(jane["person"]["employment"]["domain"], "northwind-traders.com");
    assert_eq!(jane["person"]["employment"]["name"], "Northwind Traders");

    let (_, colleague) = combined(&first, "bob@northwind-traders.com").await;
    assert_eq!(colleague["company"], jane["company"]);
    assert_ne!(colleague["person"]["id"], jane["person"]["id"]);
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test]
async fn generated_records_have_clearbits_shape() {
    let emulator = start(always_found()).await;
    let (_, record) = combined(&emulator, "sam@blue-harbor.io").await;
    let company = &record["company"];
    for field in [
        "id",
        "name",
        "legalName",
        "domain",
        "domainAliases",
        "site",
        "category",
        "tags",
        "description",
        "foundedYear",
        "location",
        "timeZone",
        "utcOffset",
        "geo",
        "identifiers",
        "metrics",
        "facebook",
        "linkedin",
        "twitter",
        "crunchbase",
        "logo",
        "emailProvider",
        "type",
        "ticker",
        "phone",
        "tech",
        "techCategories",
        "parent",
        "ultimateParent",
        "indexedAt",
    ] {
        assert!(company.get(field).is_some(), "company.{field} is missing");
    }
    for field in ["sector", "industryGroup", "industry", "subIndustry", "sicCode", "naicsCode"] {
        assert!(company["category"][field].is_string(), "category.{field}");
    }
    assert!(company["metrics"]["employees"].is_u64());
    assert!(company["description"].as_str().unwrap().len() <= 255);

    let person = &record["person"];
    for field in [
        "id",
        "name",
        "email",
        "location",
        "timeZone",
        "utcOffset",
        "geo",
        "bio",
        "site",
        "avatar",
        "employment",
        "facebook",
        "github",
        "twitter",
        "linkedin",
        "googleplus",
        "gravatar",
        "fuzzy",
        "emailProvider",
        "indexedAt",
    ] {
        assert!(person.get(field).is_some(), "person.{field} is missing");
    }
    let role = person["employment"]["role"].as_str().unwrap();
    assert!(role.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{role}");
    assert_eq!(person["email"], "sam@blue-harbor.io");
    emulator.shutdown().await;
}

#[tokio::test]
async fn twitter_ids_come_both_as_numbers_and_as_strings() {
    let emulator = start(always_found()).await;
    let (mut numbers, mut strings) = (0, 0);
    for index in 0..60 {
        let (_, record) = combined(&emulator, &format!("someone@company-{index}.com")).await;
        match &record["company"]["twitter"]["id"] {
            Value::Number(_) => numbers += 1,
            Value::String(_) => strings += 1,
            _ => {}
        }
    }
    assert!(numbers > 0 && strings > 0, "{numbers} numbers, {strings} strings");
    emulator.shutdown().await;
}

#[tokio::test]
async fn sample_emails_get_the_real_samples() {
    // Samples are never "unknown", however many generated emails are.
    let emulator = start(EmulatorConfig { not_found_share: 1.0, ..EmulatorConfig::default() }).await;
    assert_eq!(
        combined(&emulator, "bchris@calvinklein.com").await,
        (200, fixture("combined-real-calvinklein-2016.json"))
    );
    assert_eq!(
        combined(&emulator, "alex@alexmaccaw.com").await,
        (200, json!({"person": fixture("docs-person-alex-latest.json"), "company": null}))
    );

    let (status, uber) = combined(&emulator, "dara@uber.com").await;
    assert_eq!(status, 200);
    assert_eq!(uber["company"], fixture("docs-company-uber-latest.json"));
    assert_eq!(uber["person"]["email"], "dara@uber.com");
    assert_eq!(uber["person"]["employment"]["name"], "Uber");
    emulator.shutdown().await;
}

#[tokio::test]
async fn mailbox_providers_give_a_person_without_company() {
    let emulator = start(always_found()).await;
    let (status, record) = combined(&emulator, "someone@gmail.com").await;
    assert_eq!(status, 200);
    assert_eq!(record["company"], Value::Null);
    assert_eq!(record["person"]["emailProvider"], true);
    assert_eq!(record["person"]["employment"]["domain"], Value::Null);
    emulator.shutdown().await;
}

#[tokio::test]
async fn person_and_company_endpoints_answer_their_part() {
    let emulator = start(always_found()).await;
    let (_, record) = combined(&emulator, "kim@acme-robotics.com").await;

    let person = get(&emulator, "/v2/people/find", ("email", "kim@acme-robotics.com")).await;
    assert_eq!(person.status(), 200);
    assert_eq!(person.json::<Value>().await.unwrap(), record["person"]);

    let company = get(&emulator, "/v2/companies/find", ("domain", "acme-robotics.com")).await;
    assert_eq!(company.status(), 200);
    assert_eq!(company.json::<Value>().await.unwrap(), record["company"]);

    let uber = get(&emulator, "/v2/companies/find", ("domain", "uber.com")).await;
    assert_eq!(uber.json::<Value>().await.unwrap(), fixture("docs-company-uber-latest.json"));

    let mailbox = get(&emulator, "/v2/companies/find", ("domain", "gmail.com")).await;
    assert_eq!(mailbox.status(), 404);
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_secret_key_is_required_as_bearer_or_basic_user() {
    let emulator = start(always_found()).await;
    let url = format!("{}/v2/combined/find?email=jane.doe%40acme.com", emulator.clearbit_url());
    let client = reqwest::Client::new();

    let missing = client.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(error_type(&missing.json().await.unwrap()), "auth_required");

    let wrong = client.get(&url).bearer_auth("sk_wrong").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(error_type(&wrong.json().await.unwrap()), "invalid_api_key");

    let with_password = client.get(&url).basic_auth(KEY, Some("password")).send().await.unwrap();
    assert_eq!(with_password.status(), 401);

    assert_eq!(client.get(&url).bearer_auth(KEY).send().await.unwrap().status(), 200);
    assert_eq!(client.get(&url).basic_auth(KEY, None::<&str>).send().await.unwrap().status(), 200);
    assert_eq!(client.get(&url).basic_auth(KEY, Some("")).send().await.unwrap().status(), 200);

    let requests = emulator.clearbit_requests();
    let seen: Vec<(bool, u16)> =
        requests.iter().map(|request| (request.authorized, request.status)).collect();
    assert_eq!(seen, [(false, 401), (false, 401), (false, 401), (true, 200), (true, 200), (true, 200)]);
    assert_eq!(requests[0].authorization, None);
    assert_eq!(requests[3].authorization.as_deref(), Some("Bearer sk_emulator_secret"));
    assert!(requests.iter().all(|request| request.email == "jane.doe@acme.com"));
    emulator.shutdown().await;
}

#[tokio::test]
async fn invalid_and_role_emails_answer_422() {
    let emulator = start(always_found()).await;
    for invalid in ["not-an-email", "jane@localhost", "jane doe@acme.com", "@acme.com"] {
        let (status, body) = combined(&emulator, invalid).await;
        assert_eq!((status, error_type(&body)), (422, "email_invalid"), "{invalid}");
        assert_eq!(body["error"]["message"], "Invalid email address");
    }
    for role in ["info@acme.com", "support@acme.com", "no-reply@acme.com", "hello@acme.com"] {
        let (status, body) = combined(&emulator, role).await;
        assert_eq!((status, error_type(&body)), (422, "email_invalid"), "{role}");
        assert!(body["error"]["message"].as_str().unwrap().contains("Role"), "{body}");
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_quota_counts_each_billed_email_once() {
    let emulator = start(EmulatorConfig { quota: Some(2), ..always_found() }).await;
    assert_eq!(combined(&emulator, "one@acme.com").await.0, 200);
    assert_eq!(combined(&emulator, "info@acme.com").await.0, 422, "not billed");
    assert_eq!(combined(&emulator, "two@acme.com").await.0, 200);
    assert_eq!(combined(&emulator, "one@acme.com").await.0, 200, "asking again costs nothing");

    let (status, body) = combined(&emulator, "three@acme.com").await;
    assert_eq!((status, error_type(&body)), (402, "over_quota"));
    emulator.shutdown().await;
}

#[tokio::test]
async fn scripted_answers_come_first_then_normal_behaviour_resumes() {
    let emulator = start(EmulatorConfig { not_found_share: 1.0, ..EmulatorConfig::default() }).await;
    let email = "queued@acme.com";
    emulator.script_clearbit(
        email,
        vec![
            Scripted::Status(202),
            Scripted::Delay(Duration::from_millis(50), Box::new(Scripted::RateLimit400)),
            Scripted::Body(500, "{not json".to_owned()),
            Scripted::Status(503),
            Scripted::Found,
        ],
    );

    let (status, body) = combined(&emulator, email).await;
    assert_eq!((status, error_type(&body)), (202, "queued"));

    let started = Instant::now();
    let (status, body) = combined(&emulator, email).await;
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!((status, error_type(&body)), (400, "rate_limit"));
    assert_eq!(body["error"]["message"], "Limit is 5 concurrent requests");

    let malformed = get(&emulator, "/v2/combined/find", ("email", email)).await;
    assert_eq!(malformed.status(), 500);
    assert_eq!(malformed.text().await.unwrap(), "{not json");

    let (status, body) = combined(&emulator, email).await;
    assert_eq!((status, error_type(&body)), (503, "server_error"));

    let (status, found) = combined(&emulator, email).await;
    assert_eq!(status, 200);
    assert_eq!(found["person"]["email"], email);

    let (status, body) = combined(&emulator, email).await;
    assert_eq!((status, error_type(&body)), (404, "unknown_record"), "back to normal: unknown");
    assert_eq!(body["error"]["message"], "Unknown email address");

    // Other emails were never scripted.
    assert_eq!(combined(&emulator, "other@acme.com").await.0, 404);
    emulator.shutdown().await;
}

#[tokio::test]
async fn about_the_configured_share_of_generated_emails_is_unknown() {
    let emulator = start(EmulatorConfig::default()).await;
    let client = reqwest::Client::new();
    let mut unknown = 0;
    for index in 0..1000 {
        let response = client
            .get(format!("{}/v2/combined/find", emulator.clearbit_url()))
            .query(&[("email", format!("user{index}@company{}.com", index % 37))])
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            404 => unknown += 1,
            200 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert!((100..=200).contains(&unknown), "{unknown} of 1000 unknown, expected about 150");
    emulator.shutdown().await;
}

#[tokio::test]
async fn every_answer_carries_rate_limit_headers() {
    let emulator = start(always_found()).await;
    let header = |response: &reqwest::Response, name: &str| -> u64 {
        response.headers()[name].to_str().unwrap().parse().unwrap()
    };
    let first = get(&emulator, "/v2/combined/find", ("email", "a@acme.com")).await;
    let unauthorized = reqwest::Client::new()
        .get(format!("{}/v2/combined/find?email=a%40acme.com", emulator.clearbit_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);

    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    for response in [&first, &unauthorized] {
        assert_eq!(header(response, "x-ratelimit-limit"), 600);
        let reset = header(response, "x-ratelimit-reset");
        assert_eq!(reset % 60, 0, "a minute boundary");
        assert!(reset > now - 1 && reset <= now + 60, "{reset} vs {now}");
    }
    // Both fall in the same minute unless the test straddles a boundary.
    let (first_remaining, second_remaining) =
        (header(&first, "x-ratelimit-remaining"), header(&unauthorized, "x-ratelimit-remaining"));
    assert!(first_remaining == 599 && (second_remaining == 598 || second_remaining == 599));
    emulator.shutdown().await;
}

#[tokio::test]
async fn latency_is_added_before_answering() {
    let emulator = start(EmulatorConfig { latency: Duration::from_millis(200), ..always_found() }).await;
    let started = Instant::now();
    assert_eq!(combined(&emulator, "slow@acme.com").await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_request_log_is_served_without_the_key() {
    let emulator = start(always_found()).await;
    combined(&emulator, "logged@acme.com").await;
    let log: Value = reqwest::get(format!("{}/_emulator/clearbit/requests", emulator.clearbit_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        log,
        json!([{"path": "/v2/combined/find", "email": "logged@acme.com", "authorized": true, "status": 200}])
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_both_servers() {
    let emulator = start(always_found()).await;
    let (clearbit_url, heap_url) = (emulator.clearbit_url(), emulator.heap_url());
    assert_eq!(combined(&emulator, "a@acme.com").await.0, 200);
    emulator.shutdown().await;
    assert!(reqwest::get(format!("{clearbit_url}/v2/combined/find")).await.is_err());
    assert!(reqwest::get(format!("{heap_url}/_emulator/requests")).await.is_err());
}

#[tokio::test]
async fn non_loopback_addresses_are_refused() {
    let outside = "0.0.0.0:0".parse().unwrap();
    let loopback = "127.0.0.1:0".parse().unwrap();
    let error = Emulator::start_on(EmulatorConfig::default(), loopback, outside).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert!(error.to_string().contains("loopback"), "{error}");
}

#[tokio::test]
async fn a_job_change_moves_the_person_to_the_new_company() {
    let emulator = start(always_found()).await;
    let (_, before) = combined(&emulator, "jane.doe@northwind-traders.com").await;
    emulator.change_employer("Jane.Doe@northwind-traders.com", "blue-harbor.io");
    let (status, after) = combined(&emulator, "jane.doe@northwind-traders.com").await;
    assert_eq!(status, 200);
    assert_eq!(after["company"]["domain"], "blue-harbor.io");
    assert_eq!(after["person"]["employment"]["domain"], "blue-harbor.io");
    assert_eq!(after["person"]["name"], before["person"]["name"], "the same person");
    assert_ne!(after["company"], before["company"]);
}

#[tokio::test]
async fn an_opted_out_person_is_an_unknown_record() {
    let emulator = start(always_found()).await;
    assert_eq!(combined(&emulator, "sam@blue-harbor.io").await.0, 200);
    emulator.opt_out("sam@blue-harbor.io");
    let (status, body) = combined(&emulator, "sam@blue-harbor.io").await;
    assert_eq!((status, error_type(&body)), (404, "unknown_record"));
}

#[tokio::test]
async fn a_path_it_does_not_serve_is_an_unknown_route() {
    let emulator = start(always_found()).await;
    let response = get(&emulator, "/v1/v2/combined/find", ("email", "sam@blue-harbor.io")).await;
    assert_eq!(response.status().as_u16(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_type(&body), "unknown_route");
    let requests = emulator.clearbit_requests();
    assert_eq!(requests.len(), 1, "logged with the path asked");
    assert_eq!((requests[0].path.as_str(), requests[0].status), ("/v1/v2/combined/find", 404));
}

#[tokio::test]
async fn scripts_a_201_a_403_and_a_redirect() {
    let emulator = start(always_found()).await;
    let email = "sam@blue-harbor.io";
    emulator.script_clearbit(
        email,
        vec![
            Scripted::Created,
            Scripted::Status(403),
            Scripted::Redirect(302, "http://elsewhere.test/x".into()),
        ],
    );
    let (status, record) = combined(&emulator, email).await;
    assert_eq!((status, record["company"]["domain"].as_str()), (201, Some("blue-harbor.io")));
    let (status, body) = combined(&emulator, email).await;
    assert_eq!((status, error_type(&body)), (403, "forbidden"));
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/v2/combined/find", emulator.clearbit_url()))
        .query(&[("email", email)])
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status().as_u16(), 302);
    assert_eq!(redirect.headers()["location"], "http://elsewhere.test/x");
}

#[tokio::test]
async fn answers_take_the_shape_of_the_api_version_asked_or_pinned() {
    let emulator =
        start(EmulatorConfig { clearbit_account_api_version: "2016-01-01".into(), ..always_found() }).await;
    let ask = |version: Option<&'static str>| {
        let mut request = reqwest::Client::new()
            .get(format!("{}/v2/combined/find", emulator.clearbit_url()))
            .query(&[("email", "jane.doe@northwind-traders.com"), ("given_name", "Jane")])
            .bearer_auth(KEY);
        if let Some(version) = version {
            request = request.header("API-Version", version);
        }
        request.send()
    };
    let latest = ask(Some("2022-12-15")).await.unwrap();
    assert_eq!(latest.headers()["x-api-version"], "2022-12-15");
    assert!(!latest.headers().contains_key("x-api-warn"));
    let latest: Value = latest.json().await.unwrap();

    let pinned = ask(None).await.unwrap();
    assert_eq!(pinned.headers()["x-api-version"], "2016-01-01");
    assert!(pinned.headers()["x-api-warn"].to_str().unwrap().contains("deprecated"));
    let pinned: Value = pinned.json().await.unwrap();
    assert!(pinned["company"].get("ultimateParent").is_none());
    assert_eq!(pinned["company"]["ultimate_parent"], latest["company"]["ultimateParent"]);
    assert!(pinned["company"]["metrics"].get("trafficRank").is_none());
    assert!(pinned["person"]["employment"].get("subRole").is_none());
    assert!(latest["person"]["employment"].get("subRole").is_some());

    let requests = emulator.clearbit_requests();
    assert_eq!(requests[0].api_version.as_deref(), Some("2022-12-15"));
    assert_eq!(requests[1].api_version, None);
    assert_eq!(requests[0].hints, [("given_name".to_owned(), "Jane".to_owned())]);
}
