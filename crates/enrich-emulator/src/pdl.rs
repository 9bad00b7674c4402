//! A loopback People Data Labs: person enrichment, bulk (`POST /v5/person/bulk`) and single
//! (`GET /v5/person/enrich`), and company enrichment by website (`GET /v5/company/enrich`), as PDL's v5
//! docs describe them. The key is read from `X-Api-Key` or the
//! `api_key` parameter; every answer carries PDL's rate-limit and credit headers; a found person is
//! billed one credit, and with none left the answer is 402; text is lower case unless `titlecase`; on
//! a free plan contact and location fields hold `true`/`false` in place of their values. The people are
//! the Clearbit emulator's, in PDL's shape, and so are the companies (none at a mailbox provider's domain).

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::clearbit::{company_at, person_and_company};
use crate::generate::{self, Draw};
use crate::{EmulatorConfig, lock, samples, status_code};

/// PDL's per-minute limit on the free plan, reported in the headers.
const RATE_LIMIT_PER_MINUTE: u64 = 100;

/// At most this many people a bulk request.
const MAX_BULK: usize = 100;

/// Fields a free plan answers with `true` or `false` (the docs name contact fields; the JS SDK types
/// these as possibly boolean).
const FREE_PLAN_FIELDS: &[&str] = &[
    "emails",
    "work_email",
    "personal_emails",
    "recommended_personal_email",
    "mobile_phone",
    "phone_numbers",
    "street_addresses",
    "location_name",
    "location_locality",
    "location_region",
    "location_metro",
    "location_street_address",
    "location_address_line_2",
    "location_postal_code",
    "location_geo",
    "location_names",
    "regions",
    "birth_date",
    "birth_year",
];

/// One request the PDL server received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PdlRequest {
    /// `/v5/person/bulk`, `/v5/person/enrich` or `/v5/company/enrich`.
    pub path: String,
    /// The emails asked for, lowercased, in order (for a company, its website); left out of the JSON
    /// log (personal data).
    #[serde(skip_serializing)]
    pub emails: Vec<String>,
    /// Whether the request carried the configured key.
    pub authorized: bool,
    /// Whether the key came in the URL (`api_key=`) rather than the `X-Api-Key` header.
    pub key_in_url: bool,
    /// The status of the call.
    pub status: u16,
}

#[derive(Debug)]
pub(crate) struct Pdl {
    config: EmulatorConfig,
    book: Mutex<Book>,
}

#[derive(Debug, Default)]
struct Book {
    credits: Option<u64>,
    requests: Vec<PdlRequest>,
    /// (Unix minute, requests in it).
    window: (u64, u64),
}

/// What a call answered, before its headers.
struct Answer {
    status: u16,
    body: Value,
}

impl Pdl {
    pub(crate) fn new(config: EmulatorConfig) -> Pdl {
        let book = Book { credits: config.pdl_credits, ..Book::default() };
        Pdl { config, book: Mutex::new(book) }
    }

    pub(crate) fn set_credits(&self, credits: Option<u64>) {
        lock(&self.book).credits = credits;
    }

    pub(crate) fn requests(&self) -> Vec<PdlRequest> {
        lock(&self.book).requests.clone()
    }

    /// One person's answer, billed when found: `None` credits left is a 402 for anyone found.
    fn person(&self, email: &str, min_likelihood: u64, titlecase: bool) -> Answer {
        let (person, company) = person_and_company(email);
        let likelihood = 4 + (Draw::seeded(&format!("likelihood:{email}")).unit() * 7.0) as u64;
        let unknown = !samples::covers(email) && generate::is_unknown(email, self.config.not_found_share);
        if unknown || likelihood < min_likelihood {
            return error(404, "not_found", "No records were found matching your request");
        }
        if let Some(out_of_credits) = self.bill() {
            return out_of_credits;
        }
        let mut data = pdl_person(email, &person, company.as_ref());
        if !titlecase {
            data.values_mut().for_each(lower_case);
        }
        if self.config.pdl_free_plan {
            for field in FREE_PLAN_FIELDS {
                if let Some(value) = data.get_mut(*field) {
                    *value = Value::Bool(!is_empty(value));
                }
            }
        }
        Answer { status: 200, body: json!({ "status": 200, "likelihood": likelihood, "data": data }) }
    }

    /// Takes one credit for a match; `Some` 402 when none is left.
    fn bill(&self) -> Option<Answer> {
        match &mut lock(&self.book).credits {
            Some(0) => {
                Some(error(402, "payment_required", "You have hit your account maximum (all matches used)"))
            }
            Some(credits) => {
                *credits -= 1;
                None
            }
            None => None,
        }
    }

    /// A company's answer by website, billed when found; the fields are the body itself.
    fn company(&self, website: &str, titlecase: bool) -> Answer {
        if !website.contains('.') {
            return error(
                400,
                "invalid_request_error",
                "The request contained either missing or invalid parameters.",
            );
        }
        let Some(company) = company_at(website) else {
            return error(404, "not_found", "No records were found matching your request");
        };
        if let Some(out_of_credits) = self.bill() {
            return out_of_credits;
        }
        let mut body = pdl_company(&company);
        if !titlecase {
            body.values_mut().for_each(lower_case);
        }
        body.insert("status".to_owned(), json!(200));
        body.insert("likelihood".to_owned(), json!(8));
        Answer { status: 200, body: Value::Object(body) }
    }

    /// The key check every call starts with; `Some` refusal when the key is missing or wrong.
    fn refuses(&self, headers: &HeaderMap, key_in_url: Option<&str>) -> Option<Answer> {
        let key = headers.get("x-api-key").and_then(|value| value.to_str().ok()).or(key_in_url);
        (key != Some(self.config.pdl_key.as_str()))
            .then(|| error(401, "authentication_error", "Request contained a missing or invalid key"))
    }

    /// Logs the call and adds PDL's headers.
    fn respond(
        &self,
        path: &str,
        emails: Vec<String>,
        authorized: bool,
        key_in_url: bool,
        answer: &Answer,
    ) -> Response {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let mut book = lock(&self.book);
        let minute = now / 60;
        book.window = if book.window.0 == minute { (minute, book.window.1 + 1) } else { (minute, 1) };
        let remaining = RATE_LIMIT_PER_MINUTE.saturating_sub(book.window.1);
        let credits = book.credits;
        book.requests.push(PdlRequest {
            path: path.to_owned(),
            emails,
            authorized,
            key_in_url,
            status: answer.status,
        });
        drop(book);
        let reset = DateTime::<Utc>::from_timestamp(((minute + 1) * 60) as i64, 0).unwrap_or_default();
        let mut headers = HeaderMap::new();
        let mut add = |name: &'static str, value: String| {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        add("x-ratelimit-remaining", format!("{{'minute': {remaining}, 'day': None, 'month': None}}"));
        add(
            "x-ratelimit-limit",
            format!("{{'minute': {RATE_LIMIT_PER_MINUTE}, 'day': None, 'month': None}}"),
        );
        add("x-ratelimit-reset", reset.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        if let Some(credits) = credits {
            add("x-totallimit-remaining", credits.to_string());
        }
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        (status_code(answer.status), headers, answer.body.to_string()).into_response()
    }
}

fn error(status: u16, kind: &str, message: &str) -> Answer {
    Answer { status, body: json!({ "status": status, "error": { "type": kind, "message": message } }) }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

fn lower_case(value: &mut Value) {
    match value {
        Value::String(text) => *text = text.to_lowercase(),
        Value::Array(items) => items.iter_mut().for_each(lower_case),
        Value::Object(fields) => fields.values_mut().for_each(lower_case),
        _ => {}
    }
}

/// A Clearbit-shaped person and company in PDL's person shape.
fn pdl_person(email: &str, person: &Value, company: Option<&Value>) -> Map<String, Value> {
    let none = Value::Null;
    let company = company.unwrap_or(&none);
    let employment = &person["employment"];
    let handle = |value: &Value| value.as_str().map(|handle| format!("linkedin.com/{handle}"));
    let mut data = json!({
        "id": person["id"],
        "full_name": person["name"]["fullName"],
        "first_name": person["name"]["givenName"],
        "last_name": person["name"]["familyName"],
        "sex": person["gender"],
        "job_title": employment["title"],
        "job_title_role": employment["role"],
        "job_title_sub_role": employment["subRole"],
        "job_title_levels": employment["seniority"].as_str().map_or_else(Vec::new, |level| vec![level]),
        "industry": company["category"]["industry"].as_str().map(linkedin_industry),
        "location_name": person["location"],
        "location_locality": person["geo"]["city"],
        "location_region": person["geo"]["state"],
        "location_country": person["geo"]["country"],
        "linkedin_url": handle(&person["linkedin"]["handle"]),
        "work_email": company["domain"].is_string().then_some(email),
        "emails": [{ "address": email, "type": "current_professional" }],
        "mobile_phone": person["phone"],
        "phone_numbers": [],
        "dataset_version": "29.1",
    });
    // The current company's fields are the company's, prefixed (its location's flattened).
    for (field, value) in pdl_company(company) {
        match value {
            Value::Object(location) => {
                for (part, value) in location {
                    data[format!("job_company_{field}_{part}")] = value;
                }
            }
            value => data[format!("job_company_{field}")] = value,
        }
    }
    data.as_object().cloned().unwrap_or_default()
}

/// PDL's industry, from its own canonical list (LinkedIn's industries, in lower case whatever
/// `titlecase` says), for the emulator's Clearbit-style industry: the two vocabularies differ.
fn linkedin_industry(clearbit: &str) -> &'static str {
    const INDUSTRIES: &[(&str, &str)] = &[
        ("Internet Software & Services", "internet"),
        ("Software", "computer software"),
        ("IT Services", "information technology and services"),
        ("Communications Equipment", "telecommunications"),
        ("Capital Markets", "investment management"),
        ("Banks", "banking"),
        ("Insurance", "insurance"),
        ("Health Care Providers & Services", "hospital & health care"),
        ("Biotechnology", "biotechnology"),
        ("Textiles, Apparel & Luxury Goods", "apparel & fashion"),
        ("Internet & Catalog Retail", "retail"),
        ("Media", "publishing"),
        ("Road & Rail", "transportation/trucking/railroad"),
        ("Professional Services", "management consulting"),
        ("Oil, Gas & Consumable Fuels", "oil & energy"),
    ];
    INDUSTRIES.iter().find(|(known, _)| *known == clearbit).map_or("computer software", |(_, pdl)| pdl)
}

/// A Clearbit-shaped company in PDL's company shape.
fn pdl_company(company: &Value) -> Map<String, Value> {
    let handle = |value: &Value| value.as_str().map(|handle| format!("linkedin.com/{handle}"));
    let geo = &company["geo"];
    let fields = json!({
        "name": company["name"],
        "website": company["domain"],
        "industry": company["category"]["industry"].as_str().map(linkedin_industry),
        "size": company["metrics"]["employees"].as_u64().map(size_range),
        "founded": company["foundedYear"],
        "employee_count": company["metrics"]["employees"],
        "type": company["type"],
        "linkedin_url": handle(&company["linkedin"]["handle"]),
        "location": {
            "name": company["location"],
            "locality": geo["city"],
            "region": geo["state"],
            "country": geo["country"],
            "street_address": geo["streetAddress"],
            "postal_code": geo["postalCode"],
        },
    });
    fields.as_object().cloned().unwrap_or_default()
}

/// PDL's company size range for a headcount.
fn size_range(employees: u64) -> &'static str {
    const RANGES: &[(u64, &str)] = &[
        (10, "1-10"),
        (50, "11-50"),
        (200, "51-200"),
        (500, "201-500"),
        (1_000, "501-1000"),
        (5_000, "1001-5000"),
        (10_000, "5001-10000"),
    ];
    RANGES.iter().find(|(most, _)| employees <= *most).map_or("10001+", |(_, range)| range)
}

#[derive(Debug, Deserialize)]
struct BulkBody {
    #[serde(default)]
    requests: Vec<Value>,
    min_likelihood: Option<u64>,
    #[serde(default)]
    titlecase: bool,
}

#[derive(Debug, Deserialize)]
struct KeyParam {
    api_key: Option<String>,
    email: Option<String>,
    website: Option<String>,
    min_likelihood: Option<u64>,
    #[serde(default)]
    titlecase: bool,
}

/// The emails of one bulk item's `params.email`, a string or a list.
fn email_of(request: &Value) -> String {
    let email = &request["params"]["email"];
    email.as_str().or_else(|| email[0].as_str()).unwrap_or_default().to_lowercase()
}

async fn bulk(
    State(pdl): State<Arc<Pdl>>,
    Query(query): Query<KeyParam>,
    headers: HeaderMap,
    body: Json<BulkBody>,
) -> Response {
    let path = "/v5/person/bulk";
    let key_in_url = query.api_key.is_some();
    let emails: Vec<String> = body.requests.iter().map(email_of).collect();
    if let Some(refusal) = pdl.refuses(&headers, query.api_key.as_deref()) {
        return pdl.respond(path, emails, false, key_in_url, &refusal);
    }
    if body.requests.is_empty() || body.requests.len() > MAX_BULK {
        let refusal = error(400, "invalid_request_error", "The request must contain 1-100 request objects");
        return pdl.respond(path, emails, true, key_in_url, &refusal);
    }
    if lock(&pdl.book).credits == Some(0) {
        let refusal = error(402, "payment_required", "You have hit your account maximum (all matches used)");
        return pdl.respond(path, emails, true, key_in_url, &refusal);
    }
    let min_likelihood = body.min_likelihood.unwrap_or(2);
    let items: Vec<Value> = body
        .requests
        .iter()
        .zip(&emails)
        .map(|(request, email)| {
            let mut item = pdl.person(email, min_likelihood, body.titlecase).body;
            if let Some(metadata) = request.get("metadata") {
                item["metadata"] = metadata.clone();
            }
            item
        })
        .collect();
    pdl.respond(path, emails, true, key_in_url, &Answer { status: 200, body: Value::Array(items) })
}

async fn enrich(State(pdl): State<Arc<Pdl>>, Query(query): Query<KeyParam>, headers: HeaderMap) -> Response {
    let path = "/v5/person/enrich";
    let key_in_url = query.api_key.is_some();
    let email = query.email.clone().unwrap_or_default().to_lowercase();
    let answer = match pdl.refuses(&headers, query.api_key.as_deref()) {
        Some(refusal) => refusal,
        None => pdl.person(&email, query.min_likelihood.unwrap_or(2), query.titlecase),
    };
    let authorized = answer.status != 401;
    pdl.respond(path, vec![email], authorized, key_in_url, &answer)
}

async fn company_enrich(
    State(pdl): State<Arc<Pdl>>,
    Query(query): Query<KeyParam>,
    headers: HeaderMap,
) -> Response {
    let path = "/v5/company/enrich";
    let key_in_url = query.api_key.is_some();
    let website = query.website.clone().unwrap_or_default().to_lowercase();
    let answer = match pdl.refuses(&headers, query.api_key.as_deref()) {
        Some(refusal) => refusal,
        None => pdl.company(&website, query.titlecase),
    };
    let authorized = answer.status != 401;
    pdl.respond(path, vec![website], authorized, key_in_url, &answer)
}

pub(crate) fn router(pdl: Arc<Pdl>) -> Router {
    Router::new()
        .route("/v5/person/bulk", post(bulk))
        .route("/v5/person/enrich", get(enrich))
        .route("/v5/company/enrich", get(company_enrich))
        .with_state(pdl)
}
