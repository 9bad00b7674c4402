//! Per-minute budgets shared by every worker of a state database, booked as a GCRA (a token bucket
//! without a burst): each request of a key starts one interval after the one booked before it, by the
//! server's clock, so that workers with skewed clocks still agree.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use enrich_core::SharedBudget;

use crate::{PostgresState, Session, failed, stored};

/// Books a request of `interval_us` and returns, in microseconds from now, when it may start.
const BOOK: &str = "
    WITH now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS us)
    INSERT INTO enrich_rate_budgets AS budget (key_hash, next_start_us)
    SELECT $1, now.us + $2 FROM now
    ON CONFLICT (key_hash) DO UPDATE
    SET next_start_us = greatest(budget.next_start_us, (SELECT us FROM now)) + $2
    RETURNING next_start_us - $2 - (SELECT us FROM now)";

#[async_trait]
impl SharedBudget for PostgresState {
    async fn book(&self, key: u64, per_minute: NonZeroU32) -> Result<Duration, String> {
        let interval_us = 60_000_000 / i64::from(per_minute.get());
        let database = Arc::clone(&self.database);
        let session = Arc::clone(&self.budget_session);
        let runtime = self.runtime.0.as_ref().ok_or("the state runtime stopped")?;
        let booked = runtime.spawn(async move {
            let mut kept = session.lock().await;
            let open = match kept.take() {
                Some(open) => open,
                None => Session::open(database).await?,
            };
            let row = open
                .client
                .lock()
                .await
                .query_one(BOOK, &[&stored(key), &interval_us])
                .await
                .map_err(|error| failed("booking the rate budget", &error))?;
            // Kept for the next booking only when it worked: a failed session is opened anew.
            *kept = Some(open);
            Ok::<i64, enrich_core::StateError>(row.get(0))
        });
        let start_us = booked.await.map_err(|error| error.to_string())?.map_err(|error| error.0)?;
        Ok(Duration::from_micros(u64::try_from(start_us).unwrap_or(0)))
    }
}
