//! The Heap Add User Properties look-alike: validates requests as Heap does and keeps the merged user
//! properties, so tests can check what a sync wrote, unless an injected fault lost the request.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value};

use crate::echo;
use crate::faults::{Cut, Fault, FaultDraw, broken_body, first_half};
use crate::{ApiFaultCounts, EmulatorConfig, HeapRequest, HeapUser, Scripted, lock, status_code};

const MAX_USERS_PER_REQUEST: usize = 1000;
const MAX_IDENTITY_CHARS: usize = 255;
/// Property strings must be shorter than this.
const VALUE_CHARS_LIMIT: usize = 1024;
/// What a `malformed` fault cuts in half. Heap answers success with an empty body, so any body will do.
const MALFORMED_SOURCE: &str = r#"{"status":"ok"}"#;

#[derive(Debug)]
pub(crate) struct Heap {
    app_id: String,
    accepts_unknown_app_ids: bool,
    refused_identities: BTreeSet<String>,
    keeps_writes: bool,
    book: Mutex<Book>,
}

/// What the server remembers between requests.
#[derive(Debug)]
struct Book {
    scripts: VecDeque<Scripted>,
    requests: Vec<HeapRequest>,
    users: BTreeMap<String, Map<String, Value>>,
    faults: FaultDraw,
}

impl Heap {
    pub(crate) fn new(config: &EmulatorConfig) -> Heap {
        let book = Book {
            scripts: VecDeque::new(),
            requests: Vec::new(),
            users: BTreeMap::new(),
            faults: FaultDraw::new(config.heap_faults, config.seed, "heap"),
        };
        Heap {
            app_id: config.heap_app_id.clone(),
            accepts_unknown_app_ids: config.heap_accepts_unknown_app_ids,
            refused_identities: config.heap_refused_identities.clone(),
            keeps_writes: config.heap_keeps_writes,
            book: Mutex::new(book),
        }
    }

    pub(crate) fn script(&self, answers: Vec<Scripted>) {
        lock(&self.book).scripts.extend(answers);
    }

    pub(crate) fn requests(&self) -> Vec<HeapRequest> {
        lock(&self.book).requests.clone()
    }

    pub(crate) fn users(&self) -> BTreeMap<String, Map<String, Value>> {
        lock(&self.book).users.clone()
    }

    pub(crate) fn fault_counts(&self) -> ApiFaultCounts {
        lock(&self.book).faults.counts()
    }

    /// Heap's normal handling: validate, then record and merge, or refuse with 400 and keep nothing.
    fn accept(&self, body: &[u8]) -> Response {
        let request = match parse_request(body) {
            Ok(request) => request,
            Err(problem) => return (StatusCode::BAD_REQUEST, problem).into_response(),
        };
        if request.app_id != self.app_id {
            // Reported of the real Heap: an unknown environment's data is taken and goes nowhere.
            if self.accepts_unknown_app_ids {
                return StatusCode::OK.into_response();
            }
            return (StatusCode::BAD_REQUEST, format!("Invalid app_id: {}", request.app_id)).into_response();
        }
        if let Some(at) =
            request.users.iter().position(|user| self.refused_identities.contains(&user.identity))
        {
            return (StatusCode::BAD_REQUEST, format!("users[{at}]: identity is refused")).into_response();
        }
        // An empty bulk request (how `enrich check` proves the app_id) changes nothing: not recorded.
        if request.users.is_empty() || !self.keeps_writes {
            return StatusCode::OK.into_response();
        }
        let mut book = lock(&self.book);
        for user in &request.users {
            book.users.entry(user.identity.clone()).or_default().extend(user.properties.clone());
        }
        book.requests.push(request);
        StatusCode::OK.into_response()
    }
}

pub(crate) fn router(heap: Arc<Heap>, body_limit: usize) -> Router {
    Router::new()
        .route("/api/add_user_properties", post(add_user_properties))
        .route("/_emulator/requests", get(request_log))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(heap)
}

async fn add_user_properties(State(heap): State<Arc<Heap>>, headers: HeaderMap, body: Bytes) -> Response {
    let (scripted, fault) = {
        let mut book = lock(&heap.book);
        let scripted = book.scripts.pop_front();
        // Scripted answers win, and draw no fault so they leave the seeded sequence alone.
        let fault = if scripted.is_none() { book.faults.next(false) } else { None };
        (scripted, fault)
    };
    match scripted {
        Some(scripted) => {
            let authorization = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
            scripted_answer(&heap, scripted, authorization, &body).await
        }
        None => faulted_answer(&heap, fault, &body).await,
    }
}

async fn scripted_answer(
    heap: &Heap,
    mut scripted: Scripted,
    authorization: Option<&str>,
    body: &[u8],
) -> Response {
    loop {
        return match scripted {
            Scripted::Delay(pause, then) => {
                tokio::time::sleep(pause).await;
                scripted = *then;
                continue;
            }
            Scripted::Status(status) => reason_phrase(status),
            Scripted::RateLimit400 => reason_phrase(400),
            Scripted::Body(status, body) => (status_code(status), body).into_response(),
            Scripted::Found | Scripted::Created => heap.accept(body),
            Scripted::Redirect(status, location) => {
                (status_code(status), [(header::LOCATION, location)]).into_response()
            }
            Scripted::Echo(status) => {
                (status_code(status), echo::message(authorization, &echo::first_identity(body)))
                    .into_response()
            }
        };
    }
}

/// The answer with `fault`, if any: only the normal and the slow answers record the request.
async fn faulted_answer(heap: &Heap, fault: Option<Fault>, body: &[u8]) -> Response {
    match fault {
        // Heap queues nothing, so drawing with `first_ask` false never yields `Queued`.
        None | Some(Fault::Queued) => heap.accept(body),
        Some(Fault::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            heap.accept(body)
        }
        Some(Fault::TooManyRequests) => reason_phrase(429),
        Some(Fault::ServerError(status)) => reason_phrase(status),
        Some(Fault::Malformed) => (StatusCode::OK, first_half(MALFORMED_SOURCE)).into_response(),
        // Always before the head: Heap clients need not read a 200's body, so a cut after it would pass
        // for a success.
        Some(Fault::Dropped(_)) => broken_body(Cut::BeforeHead, "").into_response(),
    }
}

fn reason_phrase(status: u16) -> Response {
    let status = status_code(status);
    (status, status.canonical_reason().unwrap_or("Error")).into_response()
}

async fn request_log(State(heap): State<Arc<Heap>>) -> Json<Vec<HeapRequest>> {
    Json(heap.requests())
}

/// Reads either form (single `{app_id, identity, properties}` or bulk `{app_id, users}`), or names what
/// Heap would reject.
fn parse_request(body: &[u8]) -> Result<HeapRequest, String> {
    let request: Value = serde_json::from_slice(body).map_err(|error| format!("Malformed JSON: {error}"))?;
    let Value::Object(mut request) = request else {
        return Err("The request body must be a JSON object".to_owned());
    };
    let given_app_id = match request.get("app_id") {
        Some(Value::String(given)) => given.clone(),
        Some(Value::Number(given)) => given.to_string(),
        _ => return Err("app_id is required".to_owned()),
    };
    let users = match request.remove("users") {
        None => vec![parse_user(Value::Object(request))?],
        Some(Value::Array(users)) if users.len() > MAX_USERS_PER_REQUEST => {
            return Err(format!(
                "Too many users: {} in one request, at most {MAX_USERS_PER_REQUEST} are allowed",
                users.len()
            ));
        }
        Some(Value::Array(users)) => users
            .into_iter()
            .enumerate()
            .map(|(index, user)| parse_user(user).map_err(|problem| format!("users[{index}]: {problem}")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("users must be an array".to_owned()),
    };
    Ok(HeapRequest { app_id: given_app_id, users })
}

fn parse_user(user: Value) -> Result<HeapUser, String> {
    let Value::Object(mut user) = user else {
        return Err("a user must be an object".to_owned());
    };
    let identity = match user.remove("identity") {
        Some(Value::String(identity)) if identity.is_empty() => return Err("identity is empty".to_owned()),
        Some(Value::String(identity)) if identity.chars().count() > MAX_IDENTITY_CHARS => {
            return Err(format!("identity is longer than {MAX_IDENTITY_CHARS} characters"));
        }
        Some(Value::String(identity)) => identity,
        Some(_) => return Err("identity must be a string".to_owned()),
        None => return Err("identity is required".to_owned()),
    };
    let Some(Value::Object(properties)) = user.remove("properties") else {
        return Err("properties must be an object".to_owned());
    };
    for (key, value) in &properties {
        check_property(key, value)?;
    }
    Ok(HeapUser { identity, properties })
}

fn check_property(key: &str, value: &Value) -> Result<(), String> {
    if key.eq_ignore_ascii_case("id") {
        return Err(format!("property {key:?} is reserved"));
    }
    match value {
        Value::Number(_) => Ok(()),
        Value::String(text) if text.chars().count() < VALUE_CHARS_LIMIT => Ok(()),
        Value::String(_) => {
            Err(format!("property {key:?} must be shorter than {VALUE_CHARS_LIMIT} characters"))
        }
        Value::Null | Value::Bool(_) | Value::Array(_) | Value::Object(_) => {
            Err(format!("property {key:?} must be a number or a string, not {value}"))
        }
    }
}
