//! Retrying one request with backoff while it fails in a way that may pass.

use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use enrich_core::{CancellationToken, ConnectorError};

use crate::{Failure, Limits};

/// The longest pause between two retries of one request.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// How often and for how long a request is retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    backoff: ExponentialBuilder,
    max_retry_time: Duration,
}

/// How a request's retries ended, for the message of a request that never succeeded.
#[derive(Debug, Default)]
struct RetryTally {
    retries: usize,
    first_failure: Option<Instant>,
    out_of_time: bool,
}

impl RetryPolicy {
    /// At most `max_retries` retries, the first after `retry_delay` (then growing exponentially, with
    /// jitter, up to 30 seconds), none starting later than `max_retry_time` after the first failure.
    pub fn new(retry_delay: Duration, max_retries: usize, max_retry_time: Duration) -> Self {
        let backoff = ExponentialBuilder::new()
            .with_jitter()
            .with_min_delay(retry_delay)
            .with_max_delay(MAX_RETRY_DELAY)
            .with_max_times(max_retries);
        Self { backoff, max_retry_time }
    }

    /// Runs `attempt` until it succeeds, fails for good, or the policy says stop; `None` when `stop`
    /// came before an answer. A rate-limited failure waits for the window `limits` knows to reset.
    pub async fn run<T, F, Fut>(
        &self,
        provider: &str,
        limits: &Limits,
        stop: &CancellationToken,
        attempt: F,
    ) -> Result<Option<T>, ConnectorError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, Failure>>,
    {
        let mut tally = RetryTally::default();
        let stopped = stop.clone();
        let answer = attempt
            .retry(self.backoff)
            // A stop ends the pause at once; the next attempt then starts nothing.
            .sleep(move |delay| {
                let stopped = stopped.clone();
                async move {
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = stopped.cancelled() => {}
                    }
                }
            })
            .when(Failure::is_retryable)
            .adjust(|failure, backoff| {
                let first_failure = *tally.first_failure.get_or_insert_with(Instant::now);
                let mut delay = backoff?;
                // Once the service said when its window resets, no request starts before then anyway.
                if failure.is_rate_limited()
                    && let Some(pause) = limits.pause_left()
                {
                    delay = pause;
                }
                if first_failure.elapsed() + delay > self.max_retry_time {
                    tally.out_of_time = true;
                    return None;
                }
                tally.retries += 1;
                Some(delay)
            })
            .notify(|failure, delay| {
                if let Failure::Retryable { reason, rate_limited } = failure {
                    if *rate_limited {
                        tracing::debug!(%reason, ?delay, "retrying a {provider} request");
                    } else {
                        tracing::warn!(%reason, ?delay, "retrying a {provider} request");
                    }
                }
            })
            .await;
        answer.map_err(|failure| match failure {
            Failure::Retryable { reason, .. } if tally.out_of_time => ConnectorError::Transient(format!(
                "{reason}; gave up after {} retries, as max_retry_time ({:?}) ran out",
                tally.retries, self.max_retry_time
            )),
            Failure::Retryable { reason, .. } => {
                ConnectorError::Transient(format!("{reason}; gave up after {} retries", tally.retries))
            }
            Failure::Final(error) => error,
        })
    }
}
