//! A rate budget that workers on several machines share, such as one provider key's per-minute limit:
//! each worker keeps to its own pace, and books every request in the shared budget too.

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use async_trait::async_trait;

/// Where workers book their requests, so that together they keep to a limit.
#[async_trait]
pub trait SharedBudget: Send + Sync + fmt::Debug {
    /// Books one request under `key` (a digest, never a secret) for a limit of `per_minute`; returns
    /// how long to wait before it may start.
    async fn book(&self, key: u64, per_minute: NonZeroU32) -> Result<Duration, String>;
}
