//! Loopback look-alikes of Clearbit's Enrichment and Reveal APIs and Heap's Add User Properties API, for enrich's demo,
//! end-to-end tests and benchmarks.
//!
//! Both servers follow what `EXTERNAL-APIS.md` records about the real services: Clearbit's authentication,
//! status codes, error bodies, billing and rate-limit headers, with its real sample records for a few
//! addresses and deterministic generated ones for every other; Heap's validation rules and property
//! merging. Tests can script answers (201, 403, redirects, …) and read back every request, move a person
//! to a new employer or opt them out, lapse the plan or change the quota, and have Clearbit answer in an
//! older API version's shape; Heap can refuse chosen identities and refuse or silently drop unknown app
//! ids. For retry and load testing, both can inject faults into a seeded share of requests, and Clearbit
//! can enforce its rate and concurrency limits.
//!
//! Connectors must never depend on this crate: they reach it only through the base URLs they are
//! configured with, exactly as they reach the real services.

mod clearbit;
mod echo;
mod faults;
mod generate;
mod heap;
mod pdl;
mod samples;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clearbit::Clearbit;
pub use crate::faults::{ApiFaultCounts, FaultCounts, Faults};
use crate::heap::Heap;
use crate::pdl::Pdl;
pub use crate::pdl::PdlRequest;

/// How the emulated services behave.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The secret key Clearbit accepts.
    pub clearbit_key: String,
    /// The `app_id` of the emulated Heap environment: only its users are kept.
    pub heap_app_id: String,
    /// How Heap answers a request for another app_id: refused with 400 `Invalid app_id` (false, the
    /// default), or, as Heap has been reported to do, accepted with 200 and silently dropped (true).
    pub heap_accepts_unknown_app_ids: bool,
    /// Identities Heap refuses: a request carrying one is answered 400 and nothing of it is kept, as
    /// Heap does with a request holding any user it cannot take.
    pub heap_refused_identities: BTreeSet<String>,
    /// Whether Heap keeps what it is sent (the request log, each user's merged properties): true, the
    /// default; false acknowledges writes and keeps nothing of them, so that a benchmark of a million
    /// users measures enrich, not the emulator's memory.
    pub heap_keeps_writes: bool,
    /// The Clearbit API version answers take when a request sends no `API-Version` header: the one the
    /// account was pinned to at its first request.
    pub clearbit_account_api_version: String,
    /// Added before every Clearbit answer, to stand in for the real service's lookup time. Lookups refused
    /// by the rate or concurrency limit are answered at once, as a service does before any lookup work.
    pub latency: Duration,
    /// A uniformly drawn extra latency, from zero to this, for each Clearbit lookup (seeded by `seed`).
    pub latency_jitter: Duration,
    /// Share of generated (non-sample) emails Clearbit does not know and answers 404.
    pub not_found_share: f64,
    /// After this many billed lookups, Clearbit answers 402 to any email it has not billed yet
    /// ([`Emulator::set_clearbit_quota`] changes it).
    pub quota: Option<u64>,
    /// Reported in `X-RateLimit-Limit`; enforced only with `enforce_rate_limit`. Lookups, with the key or
    /// not, are counted in
    /// fixed windows of one Unix minute, the window `X-RateLimit-Reset` ends (Unix seconds);
    /// `X-RateLimit-Remaining` is how many more lookups the window admits. Refused lookups are not
    /// counted.
    pub rate_limit_per_minute: u32,
    /// Whether Clearbit answers lookups beyond `rate_limit_per_minute` in a window with 429 `rate_limit`
    /// ("Rate limit exceeded") and `X-RateLimit-Remaining: 0`. Off by default.
    pub enforce_rate_limit: bool,
    /// Clearbit answers a lookup arriving while this many are being answered with 400 `rate_limit`
    /// ("Limit is N concurrent requests"), as seen in the wild with N = 5. None: no limit.
    pub max_concurrent_requests: Option<usize>,
    /// Heap answers 413 Payload Too Large to request bodies over this many bytes. Heap documents no
    /// limit; 16 MiB holds 1000 fully enriched users several times over.
    pub heap_body_limit: usize,
    /// Faults injected into Clearbit lookups, after authentication and in place of the normal answer.
    /// Scripted answers come first and draw no fault. A faulted answer is given as drawn, whatever the
    /// quota, and bills the email if its status is billable (202, 200).
    pub clearbit_faults: Faults,
    /// Faults injected into Heap requests. A faulted request is neither recorded nor merged, except a
    /// `slow` one, which is handled normally after the delay. `queued` must be 0: Heap queues nothing.
    pub heap_faults: Faults,
    /// The API key People Data Labs accepts.
    pub pdl_key: String,
    /// People Data Labs credits left: a found person spends one; with none left the answer is 402.
    /// `None`: no limit.
    pub pdl_credits: Option<u64>,
    /// Whether People Data Labs answers as on a free plan: `true`/`false` in place of contact and
    /// location values.
    pub pdl_free_plan: bool,
    /// Seeds which requests get faults and how much latency jitter: the same seed and the same requests
    /// in the same order give the same faults.
    pub seed: u64,
}

impl Default for EmulatorConfig {
    fn default() -> EmulatorConfig {
        EmulatorConfig {
            clearbit_key: "sk_emulator_secret".to_owned(),
            heap_app_id: "1234567890".to_owned(),
            heap_accepts_unknown_app_ids: false,
            heap_refused_identities: BTreeSet::new(),
            heap_keeps_writes: true,
            clearbit_account_api_version: clearbit::LATEST_API_VERSION.to_owned(),
            latency: Duration::ZERO,
            latency_jitter: Duration::ZERO,
            not_found_share: 0.15,
            quota: None,
            rate_limit_per_minute: 600,
            enforce_rate_limit: false,
            max_concurrent_requests: None,
            heap_body_limit: 16 * 1024 * 1024,
            clearbit_faults: Faults::default(),
            heap_faults: Faults::default(),
            pdl_key: "pdl_emulator_key".to_owned(),
            pdl_credits: None,
            pdl_free_plan: false,
            seed: 0,
        }
    }
}

impl EmulatorConfig {
    /// Names what makes this configuration impossible to serve.
    fn check(&self) -> Result<(), String> {
        self.clearbit_faults.check().map_err(|problem| format!("Clearbit faults: {problem}"))?;
        self.heap_faults.check().map_err(|problem| format!("Heap faults: {problem}"))?;
        if self.heap_faults.queued != 0.0 {
            return Err("Heap faults: queued is a Clearbit fault; Heap queues nothing".to_owned());
        }
        if self.max_concurrent_requests == Some(0) {
            return Err("max_concurrent_requests must be at least 1".to_owned());
        }
        Ok(())
    }
}

/// An answer a test scripts in place of the normal one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scripted {
    /// This status with the body the service sends with it (Clearbit: its JSON error body for the code,
    /// e.g. `queued` for 202; Heap: the status' reason phrase).
    Status(u16),
    /// This status with exactly this body, e.g. malformed JSON.
    Body(u16, String),
    /// Clearbit: the record (sample or generated) with 200, whatever the email, quota or not-found share
    /// would say. Heap: normal handling.
    Found,
    /// Clearbit: the record with 201, which Clearbit also sends for a found record. Heap: normal handling.
    Created,
    /// This redirect status (301, 302, 307, …) with this `Location`, as a proxy or a moved host answers.
    Redirect(u16, String),
    /// Clearbit's 400 `rate_limit` answer ("Limit is 5 concurrent requests"); a plain 400 from Heap.
    RateLimit400,
    /// This status with an error message quoting the request's `Authorization` header and the email
    /// (Heap: the first user's identity) in upper case: Clearbit's JSON error body, Heap's plain text.
    Echo(u16),
    /// Waits, then gives the wrapped answer.
    Delay(Duration, Box<Scripted>),
}

/// One request the Clearbit server received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClearbitRequest {
    /// The endpoint asked, e.g. `/v2/combined/find`; any other path was answered 404 `unknown_route`.
    pub path: String,
    /// The `email` asked for, lowercased; for company lookups, the `domain`; for Reveal, the `ip`.
    pub email: String,
    /// Whether the request carried the configured key.
    pub authorized: bool,
    /// The raw `Authorization` header, so tests can check what was sent; left out of the JSON log.
    #[serde(skip_serializing)]
    pub authorization: Option<String>,
    /// The `API-Version` header, if one was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// The match-rate parameters sent with the lookup (`given_name`, `family_name`, `ip_address`, …),
    /// in the order sent; left out of the JSON log (personal data).
    #[serde(skip_serializing)]
    pub hints: Vec<(String, String)>,
    /// The status it was answered with; [`ClearbitRequest::DROPPED`] when the connection was cut.
    pub status: u16,
}

impl ClearbitRequest {
    /// The `status` of a request whose connection a `dropped` fault cut, whatever was sent before.
    pub const DROPPED: u16 = 0;
}

/// One request the Heap server accepted, in bulk form whichever form it came in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeapRequest {
    pub app_id: String,
    pub users: Vec<HeapUser>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeapUser {
    pub identity: String,
    pub properties: Map<String, Value>,
}

/// The running Clearbit and Heap servers. Dropping it stops them too, without waiting.
#[derive(Debug)]
pub struct Emulator {
    clearbit_addr: SocketAddr,
    heap_addr: SocketAddr,
    pdl_addr: SocketAddr,
    clearbit: Arc<Clearbit>,
    heap: Arc<Heap>,
    pdl: Arc<Pdl>,
    /// Closing this channel tells the servers to stop.
    stop: watch::Sender<()>,
    servers: [JoinHandle<()>; 3],
}

impl Emulator {
    /// Starts both servers on free loopback ports.
    pub async fn start(config: EmulatorConfig) -> io::Result<Emulator> {
        let any_loopback_port = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        Emulator::start_on(config, any_loopback_port, any_loopback_port).await
    }

    /// Starts both servers on the given loopback addresses; any other address is refused, as the
    /// emulator has no business being reachable from elsewhere. So is an impossible configuration, such
    /// as fault shares outside `[0, 1]` or adding up to more than 1.
    pub async fn start_on(
        config: EmulatorConfig,
        clearbit_addr: SocketAddr,
        heap_addr: SocketAddr,
    ) -> io::Result<Emulator> {
        config.check().map_err(|problem| io::Error::new(io::ErrorKind::InvalidInput, problem))?;
        if let Some(outside) = [clearbit_addr, heap_addr].into_iter().find(|addr| !addr.ip().is_loopback()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{outside} is not a loopback address: the emulator only listens on 127.0.0.1 or ::1"),
            ));
        }
        let clearbit_listener = TcpListener::bind(clearbit_addr).await?;
        let heap_listener = TcpListener::bind(heap_addr).await?;
        let clearbit_addr = clearbit_listener.local_addr()?;
        let heap_addr = heap_listener.local_addr()?;
        // People Data Labs listens next to Clearbit, on a port of its own.
        let pdl_listener = TcpListener::bind(SocketAddr::new(clearbit_addr.ip(), 0)).await?;
        let pdl_addr = pdl_listener.local_addr()?;
        let pdl = Arc::new(Pdl::new(config.clone()));

        let heap = Arc::new(Heap::new(&config));
        let heap_body_limit = config.heap_body_limit;
        let clearbit = Arc::new(Clearbit::new(config));
        let (stop, stopped) = watch::channel(());
        let servers = [
            spawn_server(clearbit_listener, clearbit::router(Arc::clone(&clearbit)), stopped.clone()),
            spawn_server(heap_listener, heap::router(Arc::clone(&heap), heap_body_limit), stopped.clone()),
            spawn_server(pdl_listener, pdl::router(Arc::clone(&pdl)), stopped),
        ];
        Ok(Emulator { clearbit_addr, heap_addr, pdl_addr, clearbit, heap, pdl, stop, servers })
    }

    /// The Clearbit base URL, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn clearbit_url(&self) -> String {
        format!("http://{}", self.clearbit_addr)
    }

    /// The Heap base URL, e.g. `http://127.0.0.1:41235` (no trailing slash).
    pub fn heap_url(&self) -> String {
        format!("http://{}", self.heap_addr)
    }

    /// The People Data Labs base URL, e.g. `http://127.0.0.1:41236` (no trailing slash).
    pub fn pdl_url(&self) -> String {
        format!("http://{}", self.pdl_addr)
    }

    /// Every call the People Data Labs server answered, in order.
    pub fn pdl_requests(&self) -> Vec<PdlRequest> {
        self.pdl.requests()
    }

    /// Changes the People Data Labs credits left (`None`: no limit), as a purchase or a new period does.
    pub fn set_pdl_credits(&self, credits: Option<u64>) {
        self.pdl.set_credits(credits);
    }

    /// Scripted answers for one email (or, for company lookups, domain), used in order before normal
    /// behaviour resumes. Adds to any answers still scripted for it.
    pub fn script_clearbit(&self, email: &str, answers: Vec<Scripted>) {
        self.clearbit.script(email, answers);
    }

    /// A job change: from now on Clearbit reports `email`'s person as employed by the company at
    /// `domain`, with that company's record.
    pub fn change_employer(&self, email: &str, domain: &str) {
        self.clearbit.change_employer(email, domain);
    }

    /// Reveal's knowledge: from now on Clearbit Reveal answers `ip` with the company at `domain` (the
    /// generated or sample record, `fuzzy: false`, `type: company`, `confidenceScore: very_high`). Other
    /// addresses are answered 404 `unknown_record`; a scripted `Found` for one is `company: null`.
    pub fn assign_network(&self, ip: &str, domain: &str) {
        self.clearbit.assign_network(ip, domain);
    }

    /// An opt-out (or a deleted record): from now on Clearbit answers 404 `unknown_record` for `email`.
    pub fn opt_out(&self, email: &str) {
        self.clearbit.opt_out(email);
    }

    /// Changes the quota of billed emails, as a plan change or a new billing period does.
    pub fn set_clearbit_quota(&self, quota: Option<u64>) {
        self.clearbit.set_quota(quota);
    }

    /// While lapsed (a plan that ran out, a disabled key), Clearbit answers every lookup with the key
    /// 403 `forbidden`.
    pub fn set_clearbit_plan_lapsed(&self, lapsed: bool) {
        self.clearbit.set_lapsed(lapsed);
    }

    /// Scripted answers for the next Heap requests (any body), in order.
    pub fn script_heap(&self, answers: Vec<Scripted>) {
        self.heap.script(answers);
    }

    /// Every lookup the Clearbit server answered, in the order it answered them, including those the
    /// enforced limits refused and those whose connection a fault cut (status [`ClearbitRequest::DROPPED`]).
    pub fn clearbit_requests(&self) -> Vec<ClearbitRequest> {
        self.clearbit.requests()
    }

    /// How many lookups the Clearbit server has received, counted as they arrive, before any answer.
    pub fn clearbit_requests_received(&self) -> u64 {
        self.clearbit.received()
    }

    /// Every fault injected so far, and every lookup the enforced limits refused.
    pub fn fault_counts(&self) -> FaultCounts {
        FaultCounts { heap: self.heap.fault_counts(), ..self.clearbit.fault_counts() }
    }

    /// Every request the Heap server accepted, in order.
    pub fn heap_requests(&self) -> Vec<HeapRequest> {
        self.heap.requests()
    }

    /// Identity → properties, merged as Heap holds them (later values overwrite earlier ones).
    pub fn heap_users(&self) -> BTreeMap<String, Map<String, Value>> {
        self.heap.users()
    }

    /// Stops both servers, letting requests in flight finish.
    pub async fn shutdown(self) {
        let Emulator { stop, servers, .. } = self;
        drop(stop);
        for server in servers {
            // A server task only fails if a handler panicked, which the test that caused it reports.
            let _ = server.await;
        }
    }
}

fn spawn_server(listener: TcpListener, router: Router, mut stop: watch::Receiver<()>) -> JoinHandle<()> {
    tokio::spawn(async move {
        // `changed` fails once the sender is gone, which is the stop signal.
        let stopped = async move { while stop.changed().await.is_ok() {} };
        // axum retries failed accepts, so serving only ends on shutdown and never with an error.
        let _ = axum::serve(listener, router).with_graceful_shutdown(stopped).await;
    })
}

/// Locks shared state even if a handler panicked while holding it: one failing test must not wedge
/// the emulator for the others.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Scripted codes are test input: an impossible one becomes a 500 rather than a panic.
fn status_code(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
