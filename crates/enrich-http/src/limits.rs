//! Keeping within a service's limits: requests in flight, requests per minute at this source's own
//! pace, what the service's rate-limit headers say is left of the current window, and no request at
//! all after an answer that refused the account.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use enrich_core::{CancellationToken, ConnectorError, SharedBudget};
use governor::{DefaultDirectRateLimiter, Quota};
use reqwest::StatusCode;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::Failure;

/// The services count requests per minute: a reset further away than that means the two clocks disagree,
/// and waiting for it would stall every lookup for nothing.
const LONGEST_WINDOW: Duration = Duration::from_secs(60);

/// What a service's rate-limit headers said of its current window, as the connector reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// When the window resets, in Unix seconds: it tells one window from the next.
    pub reset: u64,
    /// Requests the window still admits, when the answer said.
    pub remaining: Option<u64>,
}

/// What every request of one source waits for before it starts.
#[derive(Debug)]
pub struct Limits {
    /// The service's name, for log lines.
    provider: &'static str,
    /// One permit per request in flight, held only while it is.
    in_flight: Semaphore,
    /// This source's own pace, `requests_per_minute`.
    pace: DefaultDirectRateLimiter,
    /// What the service's headers said of its current window; `None` when unknown or over.
    window: Mutex<Option<ServerWindow>>,
    /// The first answer that refused the account or the route: every request after it, those waiting
    /// for a permit included, fails with it unasked.
    refused: OnceLock<ConnectorError>,
    /// The key's budget shared with other workers, when there is one.
    shared: Option<SharedPace>,
}

/// One key's per-minute budget, booked by every worker that uses the key.
#[derive(Debug)]
struct SharedPace {
    budget: Arc<dyn SharedBudget>,
    /// The key's digest: the budget never sees the key.
    key: u64,
    per_minute: NonZeroU32,
}

impl SharedPace {
    /// Books a request and waits for its turn; a budget out of reach leaves this worker's own pace.
    async fn wait(&self) {
        match self.budget.book(self.key, self.per_minute).await {
            Ok(wait) => tokio::time::sleep(wait).await,
            Err(problem) => tracing::warn!(
                "the shared rate budget cannot be booked ({problem}); keeping to this worker's own pace"
            ),
        }
    }
}

impl Limits {
    pub fn new(provider: &'static str, requests_per_minute: NonZeroU32, max_concurrency: NonZeroU32) -> Self {
        // A burst of a minute's worth would spend the service's whole window in the first second of a run
        // that starts late in it; one request per concurrency slot keeps the start quick and safe.
        let quota =
            Quota::per_minute(requests_per_minute).allow_burst(max_concurrency.min(requests_per_minute));
        Self {
            provider,
            in_flight: Semaphore::new(max_concurrency.get() as usize),
            pace: DefaultDirectRateLimiter::direct(quota),
            window: Mutex::new(None),
            refused: OnceLock::new(),
            shared: None,
        }
    }

    /// Books every request in `budget` too, at `per_minute`, under a digest of the source's `kind` and
    /// its `api_key`: workers sharing a key share its budget, and the budget never sees the key.
    pub fn share(
        &mut self,
        budget: Arc<dyn SharedBudget>,
        kind: &str,
        api_key: &str,
        per_minute: NonZeroU32,
    ) {
        let key = enrich_core::digest::stable_hash([kind.as_bytes(), api_key.as_bytes()]);
        self.shared = Some(SharedPace { budget, key, per_minute });
    }

    /// Sends one request within the limits, in flight while it holds their permit; `None` when `stop`
    /// came first. A fatal answer holds for every later request: nobody else is asked (nor billed).
    pub async fn send<T>(
        &self,
        stop: &CancellationToken,
        request: impl Future<Output = Result<T, Failure>>,
    ) -> Result<Option<T>, Failure> {
        let Some(_in_flight) = self.admit(stop).await else { return Ok(None) };
        if let Some(refusal) = self.refused.get() {
            return Err(Failure::Final(refusal.clone()));
        }
        let answer = request.await;
        if let Err(Failure::Final(refusal @ ConnectorError::Fatal(_))) = &answer {
            let _ = self.refused.set(refusal.clone());
        }
        answer.map(Some)
    }

    /// Waits until a request may start; it is in flight until the permit is dropped. `None` once `stop`
    /// is cancelled, however far the wait had got: no request starts after a stop.
    async fn admit(&self, stop: &CancellationToken) -> Option<SemaphorePermit<'_>> {
        tokio::select! {
            biased;
            () = stop.cancelled() => None,
            permit = self.wait_for_turn() => Some(permit),
        }
    }

    /// The concurrency permit comes first: a request holding a pace permit while it queued for a
    /// concurrency slot would start late, in a burst with others that did the same.
    async fn wait_for_turn(&self) -> SemaphorePermit<'_> {
        let permit = self.in_flight.acquire().await.expect("the request semaphore is never closed");
        self.pace.until_ready().await;
        if let Some(shared) = &self.shared {
            shared.wait().await;
        }
        loop {
            let turn = {
                let mut window = lock(&self.window);
                let now = Instant::now();
                match window.as_mut() {
                    Some(current) if current.ends_at > now => current.book(now),
                    _ => {
                        *window = None;
                        return permit;
                    }
                }
            };
            match turn {
                Turn::StartAt(start) => {
                    tokio::time::sleep_until(start.into()).await;
                    return permit;
                }
                // Then the window is over, and the next answer tells of the new one.
                Turn::WaitForReset(reset) => tokio::time::sleep_until(reset.into()).await,
            }
        }
    }

    /// Takes in what an answer's rate-limit headers said. A 429 that does not say how many requests
    /// remain means the window is spent; one that says some remain is about something else (a burst or
    /// concurrency limit), which a backoff answers better than waiting up to a minute for the reset.
    pub fn observe(&self, status: StatusCode, window: Option<Window>) {
        let Some(Window { reset, remaining }) = window else { return };
        let remaining = match remaining {
            Some(remaining) => u32::try_from(remaining).unwrap_or(u32::MAX),
            None if status == StatusCode::TOO_MANY_REQUESTS => 0,
            None => return,
        };
        let now = Instant::now();
        let Some(ends_at) = reset_instant(reset, now) else { return };
        let mut window = lock(&self.window);
        let spent_before = match window.as_mut() {
            Some(current) if current.reset == reset => {
                let spent_before = current.remaining == 0;
                // Answers overtake one another: the lowest count is the latest.
                current.remaining = current.remaining.min(remaining);
                spent_before
            }
            // The answer of a request admitted in a window already over.
            Some(current) if current.reset > reset => return,
            _ => {
                *window = Some(ServerWindow { reset, ends_at, remaining, next_start: now });
                false
            }
        };
        if remaining == 0 && !spent_before {
            tracing::info!(
                resets_in = ?ends_at - now,
                "{}'s rate limit for this window is spent: no lookup starts until it resets",
                self.provider
            );
        }
    }

    /// How long no request may start because the service's window is spent.
    pub fn pause_left(&self) -> Option<Duration> {
        let window = lock(&self.window);
        let window = window.as_ref().filter(|window| window.remaining == 0)?;
        Some(window.ends_at.saturating_duration_since(Instant::now())).filter(|left| !left.is_zero())
    }
}

/// The service's current rate-limit window, as its headers last described it and as this source has
/// spent it since.
#[derive(Debug)]
struct ServerWindow {
    /// The reset, in Unix seconds: it tells one window from the next.
    reset: u64,
    /// When the window ends, on this machine's clock.
    ends_at: Instant,
    /// Requests it still admits: the service's latest count, less the requests started since.
    remaining: u32,
    /// The earliest start of the next request, so that what remains is spread until `ends_at`.
    next_start: Instant,
}

/// When a request may start.
#[derive(Debug, PartialEq)]
enum Turn {
    StartAt(Instant),
    /// The window is spent: no request starts before it resets.
    WaitForReset(Instant),
}

impl ServerWindow {
    /// Books one request. What remains of the window is spread evenly over the time left, so a low
    /// remainder slows requests down instead of letting them run into a 429; a high one costs nothing,
    /// as the pace is slower than the spread anyway.
    fn book(&mut self, now: Instant) -> Turn {
        if self.remaining == 0 {
            return Turn::WaitForReset(self.ends_at);
        }
        let start = self.next_start.max(now);
        self.next_start = start + self.ends_at.saturating_duration_since(start) / self.remaining;
        self.remaining -= 1;
        Turn::StartAt(start)
    }
}

/// `reset` (Unix seconds) on this machine's monotonic clock, at most [`LONGEST_WINDOW`] away; `None`
/// when it has passed.
fn reset_instant(reset: u64, now: Instant) -> Option<Instant> {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let left = Duration::from_secs(reset).saturating_sub(since_epoch).min(LONGEST_WINDOW);
    (!left.is_zero()).then(|| now + left)
}

/// The window stays usable even if a task panicked while holding it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix_now() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    fn headers(remaining: u32, reset: u64) -> Option<Window> {
        Some(Window { reset, remaining: Some(remaining.into()) })
    }

    fn limits() -> Limits {
        Limits::new("Acme", NonZeroU32::new(600).unwrap(), NonZeroU32::new(5).unwrap())
    }

    fn remaining(limits: &Limits) -> Option<u32> {
        lock(&limits.window).as_ref().map(|window| window.remaining)
    }

    #[test]
    fn spreads_what_remains_evenly_until_the_reset() {
        let now = Instant::now();
        let ends_at = now + Duration::from_secs(4);
        let mut window = ServerWindow { reset: 0, ends_at, remaining: 4, next_start: now };
        let second = now + Duration::from_secs(1);
        assert_eq!(window.book(now), Turn::StartAt(now));
        assert_eq!(window.book(now), Turn::StartAt(second));
        // A request asking later than its turn starts at once, and the rest spread from there.
        let late = now + Duration::from_millis(2500);
        assert_eq!(window.book(late), Turn::StartAt(late));
        assert_eq!(window.book(late), Turn::StartAt(late + Duration::from_millis(750)));
        assert_eq!(window.book(late), Turn::WaitForReset(ends_at));
    }

    #[test]
    fn a_plentiful_window_lets_requests_start_at_once() {
        let now = Instant::now();
        let mut window = ServerWindow {
            reset: 0,
            ends_at: now + Duration::from_secs(30),
            remaining: 600,
            next_start: now,
        };
        let starts: Vec<Turn> = (0..5).map(|_| window.book(now)).collect();
        let spacing = Duration::from_secs(30) / 600;
        assert!(
            starts.iter().all(|turn| matches!(turn, Turn::StartAt(start) if *start <= now + spacing * 5))
        );
    }

    #[test]
    fn keeps_the_lowest_count_of_a_window_and_ignores_older_windows() {
        let limits = limits();
        let reset = unix_now() + 30;
        limits.observe(StatusCode::OK, headers(10, reset));
        limits.observe(StatusCode::OK, headers(12, reset));
        assert_eq!(remaining(&limits), Some(10));
        limits.observe(StatusCode::OK, headers(500, reset + 60));
        assert_eq!(remaining(&limits), Some(500), "a new window");
        limits.observe(StatusCode::OK, headers(3, reset));
        assert_eq!(remaining(&limits), Some(500), "a late answer from the old window");
    }

    #[test]
    fn a_spent_window_pauses_until_the_reset() {
        let limits = limits();
        assert_eq!(limits.pause_left(), None);
        limits.observe(StatusCode::OK, headers(0, unix_now() + 3));
        let pause = limits.pause_left().unwrap();
        assert!(pause > Duration::from_secs(1) && pause <= Duration::from_secs(3), "{pause:?}");
    }

    #[test]
    fn a_429_pauses_until_the_reset_unless_it_says_requests_remain() {
        let limits = limits();
        let without_remaining = Some(Window { reset: unix_now() + 3, remaining: None });
        limits.observe(StatusCode::TOO_MANY_REQUESTS, without_remaining);
        assert!(limits.pause_left().is_some());

        let limits = self::limits();
        limits.observe(StatusCode::TOO_MANY_REQUESTS, headers(7, unix_now() + 3));
        assert_eq!(limits.pause_left(), None);
        assert_eq!(remaining(&limits), Some(7));
    }

    #[tokio::test]
    async fn a_stop_ends_every_wait_for_a_turn() {
        let limits = Limits::new("Acme", NonZeroU32::new(600).unwrap(), NonZeroU32::new(1).unwrap());
        let stop = CancellationToken::new();
        let first = limits.admit(&stop).await;
        assert!(first.is_some());
        // The only slot is taken: the next request waits for it, until the stop.
        let waiting = limits.admit(&stop);
        stop.cancel();
        assert!(waiting.await.is_none());
        drop(first);
        assert!(limits.admit(&stop).await.is_none(), "a free slot after a stop starts nothing either");
    }

    #[tokio::test]
    async fn after_a_fatal_answer_no_request_is_sent() {
        let limits = limits();
        let stop = CancellationToken::new();
        let refusal = ConnectorError::Fatal("402: out of credits".into());
        let first = limits.send(&stop, async { Err::<(), _>(Failure::Final(refusal.clone())) }).await;
        assert_eq!(first, Err(Failure::Final(refusal.clone())));
        let mut sent = false;
        let second = limits
            .send(&stop, async {
                sent = true;
                Ok(())
            })
            .await;
        assert_eq!(second, Err(Failure::Final(refusal)));
        assert!(!sent, "the second request is never sent");
    }

    #[test]
    fn answers_without_usable_headers_change_nothing() {
        let limits = limits();
        limits.observe(StatusCode::OK, None);
        limits.observe(StatusCode::TOO_MANY_REQUESTS, None);
        limits.observe(StatusCode::OK, Some(Window { reset: unix_now() + 3, remaining: None }));
        limits.observe(StatusCode::OK, headers(0, unix_now() - 5));
        assert_eq!(remaining(&limits), None);
        assert_eq!(limits.pause_left(), None);
    }

    #[test]
    fn a_reset_far_away_is_taken_as_one_minute() {
        let now = Instant::now();
        let ends_at = reset_instant(unix_now() + 3600, now).unwrap();
        assert_eq!(ends_at, now + LONGEST_WINDOW);
        assert_eq!(reset_instant(unix_now().saturating_sub(1), now), None);
    }
}
