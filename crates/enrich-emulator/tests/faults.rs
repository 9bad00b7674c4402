//! Injected faults and enforced limits, seen from the client's side.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use enrich_emulator::{ClearbitRequest, Emulator, EmulatorConfig, Faults, Scripted};
use serde_json::{Value, json};

const KEY: &str = "sk_emulator_secret";
const APP_ID: &str = "1234567890";
/// Heap's success: 200 with an empty body.
const HEAP_SUCCESS: Outcome = Outcome::NotJson(200, String::new());

/// Every generated email is found, so any status but 200 is a fault or a limit.
fn always_found() -> EmulatorConfig {
    EmulatorConfig { not_found_share: 0.0, ..EmulatorConfig::default() }
}

async fn start(config: EmulatorConfig) -> Emulator {
    Emulator::start(config).await.expect("the emulator starts")
}

/// What the client made of one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// The request or the body failed.
    Broken,
    /// A whole body that is not JSON, e.g. Heap's empty success.
    NotJson(u16, String),
    Json(u16, Value),
}

impl Outcome {
    async fn of(sent: reqwest::Result<reqwest::Response>) -> Outcome {
        let Ok(response) = sent else { return Outcome::Broken };
        let status = response.status().as_u16();
        match response.bytes().await {
            Err(_) => Outcome::Broken,
            Ok(body) => match serde_json::from_slice(&body) {
                Ok(json) => Outcome::Json(status, json),
                Err(_) => Outcome::NotJson(status, String::from_utf8_lossy(&body).into_owned()),
            },
        }
    }

    fn status(&self) -> Option<u16> {
        match self {
            Outcome::Broken => None,
            Outcome::NotJson(status, _) | Outcome::Json(status, _) => Some(*status),
        }
    }
}

async fn lookup(client: &reqwest::Client, emulator: &Emulator, email: &str) -> Outcome {
    let sent = client
        .get(format!("{}/v2/combined/find", emulator.clearbit_url()))
        .query(&[("email", email)])
        .bearer_auth(KEY)
        .send()
        .await;
    Outcome::of(sent).await
}

/// Posts one user.
async fn post_user(client: &reqwest::Client, emulator: &Emulator, identity: &str) -> Outcome {
    let body = json!({"app_id": APP_ID, "identity": identity, "properties": {"plan": "pro"}});
    let sent =
        client.post(format!("{}/api/add_user_properties", emulator.heap_url())).json(&body).send().await;
    Outcome::of(sent).await
}

fn error_type(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Json(_, body) => body["error"]["type"].as_str().expect("an error body"),
        other => panic!("not a JSON answer: {other:?}"),
    }
}

fn count(outcomes: &[Outcome], matches: impl Fn(&Outcome) -> bool) -> u64 {
    outcomes.iter().filter(|&outcome| matches(outcome)).count() as u64
}

#[tokio::test]
async fn clearbit_faults_come_at_about_their_shares_and_are_counted() {
    let faults: Faults =
        "429=0.1,5xx=0.1,queued=0.1,slow=0.1,drop=0.1,malformed=0.1,slow-delay-ms=50".parse().unwrap();
    let emulator = start(EmulatorConfig { clearbit_faults: faults, seed: 7, ..always_found() }).await;
    let client = reqwest::Client::new();
    let (mut outcomes, mut held) = (Vec::new(), 0);
    for index in 0..400 {
        let started = Instant::now();
        outcomes.push(lookup(&client, &emulator, &format!("user{index}@company{index}.com")).await);
        if started.elapsed() >= Duration::from_millis(50) {
            held += 1;
        }
    }

    let counts = emulator.fault_counts().clearbit;
    let seen = [
        (counts.too_many_requests, count(&outcomes, |outcome| outcome.status() == Some(429))),
        (counts.server_error, count(&outcomes, |outcome| matches!(outcome.status(), Some(500 | 502 | 503)))),
        (counts.queued, count(&outcomes, |outcome| outcome.status() == Some(202))),
        (counts.dropped, count(&outcomes, |outcome| *outcome == Outcome::Broken)),
        (counts.malformed, count(&outcomes, |outcome| matches!(outcome, Outcome::NotJson(200, _)))),
    ];
    for (counted, observed) in seen {
        assert_eq!(counted, observed, "{counts:?}");
        assert!((15..=70).contains(&counted), "about 40 of 400 expected: {counts:?}");
    }
    assert!((15..=70).contains(&counts.slow), "{counts:?}");
    assert!(held >= counts.slow, "{held} answers took 50 ms, {} were slowed", counts.slow);
    let whole = count(&outcomes, |outcome| matches!(outcome, Outcome::Json(200, _)));
    assert_eq!(whole, 400 - counts.total() + counts.slow, "the others are answered normally");

    let requests = emulator.clearbit_requests();
    assert_eq!(requests.len(), 400, "every lookup is logged once, dropped ones too");
    let logged_dropped = requests.iter().filter(|request| request.status == ClearbitRequest::DROPPED).count();
    assert_eq!(logged_dropped as u64, counts.dropped);
    emulator.shutdown().await;
}

#[tokio::test]
async fn one_seed_always_gives_the_same_faults() {
    let faults: Faults = "429=0.2,5xx=0.2,queued=0.2,drop=0.1,malformed=0.1".parse().unwrap();
    let client = reqwest::Client::new();
    let mut runs = Vec::new();
    for seed in [11, 11, 12] {
        let emulator = start(EmulatorConfig { clearbit_faults: faults, seed, ..always_found() }).await;
        for index in 0..60 {
            lookup(&client, &emulator, &format!("user{}@acme.com", index % 40)).await;
        }
        runs.push(emulator.clearbit_requests().iter().map(|request| request.status).collect::<Vec<_>>());
        emulator.shutdown().await;
    }
    assert_eq!(runs[0], runs[1]);
    assert_ne!(runs[0], runs[2], "another seed, other faults");
}

#[tokio::test]
async fn queued_emails_answer_202_then_200() {
    let faults = Faults { queued: 1.0, ..Faults::default() };
    let emulator = start(EmulatorConfig { clearbit_faults: faults, ..always_found() }).await;
    let client = reqwest::Client::new();
    for email in ["first@acme.com", "second@acme.com"] {
        let queued = lookup(&client, &emulator, email).await;
        assert_eq!((queued.status(), error_type(&queued)), (Some(202), "queued"));
        for _ in 0..2 {
            let Outcome::Json(200, record) = lookup(&client, &emulator, email).await else {
                panic!("{email} is found once queued");
            };
            assert_eq!(record["person"]["email"], email);
        }
    }
    assert_eq!(emulator.fault_counts().clearbit.queued, 2);
    emulator.shutdown().await;
}

#[tokio::test]
async fn dropped_connections_fail_the_request_or_its_body() {
    let faults = Faults { dropped: 1.0, ..Faults::default() };
    let emulator =
        start(EmulatorConfig { clearbit_faults: faults, heap_faults: faults, ..always_found() }).await;
    let client = reqwest::Client::new();
    let find = || client.get(format!("{}/v2/combined/find?email=cut%40acme.com", emulator.clearbit_url()));

    assert!(find().bearer_auth(KEY).send().await.is_err(), "the first is cut before the head");
    let after_head = find().bearer_auth(KEY).send().await.expect("the second is cut after the head");
    assert_eq!(after_head.status(), 200);
    assert!(after_head.bytes().await.is_err(), "and its body fails");

    let statuses: Vec<u16> = emulator.clearbit_requests().iter().map(|request| request.status).collect();
    assert_eq!(statuses, [ClearbitRequest::DROPPED; 2], "each logged once: the client did not retry");

    for identity in ["ada", "grace"] {
        assert_eq!(post_user(&client, &emulator, identity).await, Outcome::Broken);
    }
    assert!(emulator.heap_requests().is_empty());
    let counts = emulator.fault_counts();
    assert_eq!((counts.clearbit.dropped, counts.heap.dropped), (2, 2));
    emulator.shutdown().await;
}

#[tokio::test]
async fn malformed_answers_are_200_with_a_body_that_is_not_json() {
    let faults = Faults { malformed: 1.0, ..Faults::default() };
    let (faulty, sound) = (
        start(EmulatorConfig { clearbit_faults: faults, ..always_found() }).await,
        start(always_found()).await,
    );
    let client = reqwest::Client::new();
    let Outcome::NotJson(200, body) = lookup(&client, &faulty, "half@acme.com").await else {
        panic!("a whole 200 body that is not JSON");
    };
    let Outcome::Json(200, record) = lookup(&client, &sound, "half@acme.com").await else {
        panic!("the record");
    };
    let record = record.to_string();
    assert!(record.starts_with(&body) && body.len() < record.len(), "the start of the record: {body}");
    assert_eq!(faulty.fault_counts().clearbit.malformed, 1);
    faulty.shutdown().await;
    sound.shutdown().await;
}

#[tokio::test]
async fn heap_requests_hit_by_a_fault_are_not_recorded_unless_only_slowed() {
    let faults: Faults =
        "429=0.15,5xx=0.15,drop=0.15,malformed=0.15,slow=0.15,slow-delay-ms=5".parse().unwrap();
    let emulator = start(EmulatorConfig { heap_faults: faults, seed: 3, ..EmulatorConfig::default() }).await;
    let client = reqwest::Client::new();
    let (mut accepted, mut outcomes) = (Vec::new(), Vec::new());
    for index in 0..300 {
        let identity = format!("user{index}");
        let outcome = post_user(&client, &emulator, &identity).await;
        if outcome == HEAP_SUCCESS {
            accepted.push(identity);
        }
        outcomes.push(outcome);
    }
    let counts = emulator.fault_counts().heap;
    let seen = [
        (counts.too_many_requests, count(&outcomes, |outcome| outcome.status() == Some(429))),
        (counts.server_error, count(&outcomes, |outcome| matches!(outcome.status(), Some(500 | 502 | 503)))),
        (counts.dropped, count(&outcomes, |outcome| *outcome == Outcome::Broken)),
        (
            counts.malformed,
            count(&outcomes, |outcome| outcome.status() == Some(200) && *outcome != HEAP_SUCCESS),
        ),
    ];
    for (counted, observed) in seen {
        assert_eq!(counted, observed, "{counts:?}");
        assert!((20..=70).contains(&counted), "about 45 of 300 expected: {counts:?}");
    }
    assert!((20..=70).contains(&counts.slow), "{counts:?}");

    let recorded: Vec<String> =
        emulator.heap_requests().into_iter().map(|request| request.users[0].identity.clone()).collect();
    assert_eq!(recorded, accepted, "exactly the requests answered with Heap's success");
    assert_eq!(recorded.len() as u64, 300 - counts.total() + counts.slow, "slowed ones are recorded");
    assert_eq!(emulator.heap_users().len(), recorded.len());
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_enforced_rate_limit_answers_429_with_truthful_headers() {
    wait_clear_of_a_minute_boundary().await;
    let emulator =
        start(EmulatorConfig { rate_limit_per_minute: 3, enforce_rate_limit: true, ..always_found() }).await;
    let client = reqwest::Client::new();
    let next_minute = (unix_now() / 60 + 1) * 60;
    let mut answers = Vec::new();
    for index in 0..5 {
        let response = client
            .get(format!("{}/v2/combined/find?email=user{index}%40acme.com", emulator.clearbit_url()))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        let header = |name: &str| response.headers()[name].to_str().unwrap().parse::<u64>().unwrap();
        let rate_headers =
            (header("x-ratelimit-limit"), header("x-ratelimit-remaining"), header("x-ratelimit-reset"));
        answers.push((response.status().as_u16(), rate_headers, response.json::<Value>().await.unwrap()));
    }
    for (index, (status, rate_headers, _)) in answers.iter().take(3).enumerate() {
        assert_eq!((*status, *rate_headers), (200, (3, 2 - index as u64, next_minute)));
    }
    for (status, rate_headers, body) in &answers[3..] {
        assert_eq!((*status, *rate_headers), (429, (3, 0, next_minute)));
        assert_eq!(body, &json!({"error": {"type": "rate_limit", "message": "Rate limit exceeded"}}));
    }
    let statuses: Vec<u16> = emulator.clearbit_requests().iter().map(|request| request.status).collect();
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert_eq!(emulator.fault_counts().rate_limited, 2);
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_lookup_beyond_the_concurrency_limit_gets_the_400_rate_limit() {
    let config = EmulatorConfig {
        latency: Duration::from_millis(400),
        max_concurrent_requests: Some(2),
        ..always_found()
    };
    let emulator = start(config).await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let outcomes = tokio::join!(
        lookup(&client, &emulator, "one@acme.com"),
        lookup(&client, &emulator, "two@acme.com"),
        lookup(&client, &emulator, "three@acme.com"),
    );
    let outcomes = [outcomes.0, outcomes.1, outcomes.2];
    let refused: Vec<_> = outcomes.iter().filter(|outcome| outcome.status() == Some(400)).collect();
    assert_eq!(refused.len(), 1, "{outcomes:?}");
    assert_eq!(
        refused[0],
        &Outcome::Json(
            400,
            json!({"error": {"type": "rate_limit", "message": "Limit is 2 concurrent requests"}})
        )
    );
    assert_eq!(count(&outcomes, |outcome| matches!(outcome, Outcome::Json(200, _))), 2);
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(emulator.fault_counts().concurrency_limited, 1);

    assert_eq!(
        lookup(&client, &emulator, "four@acme.com").await.status(),
        Some(200),
        "the slots are free again"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn scripted_answers_win_over_faults() {
    let always_failing = Faults { server_error: 1.0, ..Faults::default() };
    let config =
        EmulatorConfig { clearbit_faults: always_failing, heap_faults: always_failing, ..always_found() };
    let emulator = start(config).await;
    let client = reqwest::Client::new();
    emulator.script_clearbit("scripted@acme.com", vec![Scripted::Found, Scripted::Status(404)]);
    assert!(matches!(lookup(&client, &emulator, "scripted@acme.com").await, Outcome::Json(200, _)));
    assert_eq!(lookup(&client, &emulator, "scripted@acme.com").await.status(), Some(404));
    assert_eq!(lookup(&client, &emulator, "scripted@acme.com").await.status(), Some(500), "script used up");

    emulator.script_heap(vec![Scripted::Found]);
    assert_eq!(post_user(&client, &emulator, "ada").await, HEAP_SUCCESS);
    assert_eq!(post_user(&client, &emulator, "grace").await.status(), Some(500));
    assert_eq!(emulator.heap_users().keys().collect::<Vec<_>>(), ["ada"]);

    let counts = emulator.fault_counts();
    assert_eq!(
        (counts.clearbit.server_error, counts.heap.server_error),
        (1, 1),
        "scripted answers draw none"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_inspection_routes_never_get_faults() {
    let every_fault = Faults { dropped: 1.0, ..Faults::default() };
    let emulator =
        start(EmulatorConfig { clearbit_faults: every_fault, heap_faults: every_fault, ..always_found() })
            .await;
    for log in [
        format!("{}/_emulator/clearbit/requests", emulator.clearbit_url()),
        format!("{}/_emulator/requests", emulator.heap_url()),
    ] {
        let response = reqwest::get(&log).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.json::<Value>().await.unwrap(), json!([]));
    }
    assert_eq!(emulator.fault_counts(), Default::default());
    emulator.shutdown().await;
}

#[tokio::test]
async fn impossible_fault_settings_are_refused() {
    let too_much = Faults { too_many_requests: 0.6, dropped: 0.6, ..Faults::default() };
    let error = Emulator::start(EmulatorConfig { clearbit_faults: too_much, ..EmulatorConfig::default() })
        .await
        .unwrap_err();
    assert!(error.to_string().contains("Clearbit faults: the fault shares add up to"), "{error}");

    let queued = Faults { queued: 0.1, ..Faults::default() };
    let error = Emulator::start(EmulatorConfig { heap_faults: queued, ..EmulatorConfig::default() })
        .await
        .unwrap_err();
    assert!(error.to_string().contains("queued is a Clearbit fault"), "{error}");
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Rate-limit windows are Unix minutes: a test counting in one must not straddle two.
async fn wait_clear_of_a_minute_boundary() {
    let into_minute = unix_now() % 60;
    if into_minute >= 57 {
        tokio::time::sleep(Duration::from_secs(61 - into_minute)).await;
    }
}
