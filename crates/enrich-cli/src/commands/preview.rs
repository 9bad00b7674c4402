//! What a run would cost before it spends: the figures of `enrich check`, of `--dry-run` on `sync` and
//! `backfill`, and of backfill's confirmation. Planned by the engine's own reading phase
//! (`enrich_core::plan`): the due rules exist once.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use enrich_core::{EngineError, LookupKey, MemoryStateStore, RunPlan, StateStore, SyncRequest};

use super::config_folder;
use crate::config::{Config, ConnectionConfig};
use crate::registry::build_connection;
use crate::render::{rough_duration, thousands};
use crate::store::State;

/// Plans the run `request` describes without a lookup or a write; a connection that never ran is
/// planned against an empty state, created nowhere. The inner `Err` is a fatal roster error.
pub async fn plan(
    config: &Config,
    connection: &ConnectionConfig,
    request: &SyncRequest,
) -> anyhow::Result<Result<RunPlan, String>> {
    // No budget: a plan books no request.
    let built = build_connection(connection, config_folder(config), None)
        .with_context(|| format!("cannot build connection `{}`", connection.name))?;
    let store: Arc<dyn StateStore> = match State::of(config)?.open_existing(&connection.name)? {
        Some(store) => store,
        None => Arc::new(MemoryStateStore::default()),
    };
    match enrich_core::plan(&built, store.as_ref(), request).await {
        Ok(plan) => Ok(Ok(plan)),
        Err(EngineError::Connection(error)) => Ok(Err(error)),
        Err(EngineError::State(error)) => Err(error.into()),
    }
}

/// What a plan costs: lookups are what is billed, users are who they serve.
#[derive(Debug, PartialEq, Eq)]
pub struct Cost {
    pub due_users: u64,
    /// Distinct lookup keys this run looks up: each one a billed lookup.
    pub lookups: u64,
    pub free_mail_keys: u64,
    /// Keys serving more than one user, and how many users they serve.
    pub shared_keys: u64,
    pub shared_users: u64,
    /// At the source's configured pace.
    pub time: Duration,
}

impl Cost {
    pub fn of(plan: &RunPlan, lookups_per_minute: u32) -> Self {
        let lookups = plan.lookups.len() as u64;
        let is_free_mail =
            |key: &LookupKey| matches!(key, LookupKey::Email(email) if enrich_clearbit::is_free_email(email));
        let shared = plan.lookups.iter().filter(|(_, users)| *users > 1);
        Self {
            due_users: plan.lookups.iter().map(|(_, users)| users).sum(),
            lookups,
            free_mail_keys: plan.lookups.iter().filter(|(key, _)| is_free_mail(key)).count() as u64,
            shared_keys: shared.clone().count() as u64,
            shared_users: shared.map(|(_, users)| users).sum(),
            time: Duration::from_secs(lookups * 60 / u64::from(lookups_per_minute.max(1))),
        }
    }
}

/// The preview, one labelled line each, indented under a heading the caller writes.
pub fn lines(plan: &RunPlan, cost: &Cost, lookups_per_minute: u32) -> Vec<String> {
    let summary = &plan.summary;
    let not_due: Vec<String> = [
        (summary.outside_window, "outside the window"),
        (summary.no_email, "without email"),
        (summary.malformed_email, "with a malformed email"),
        (summary.bad_rows, "bad rows"),
        (summary.duplicate_identities, "duplicate identities"),
        (summary.up_to_date, "checked recently"),
        (summary.skipped, "skipped by the source (free mail, forgotten)"),
        (summary.deferred, "deferred by max_lookups_per_run"),
    ]
    .into_iter()
    .filter(|(count, _)| *count > 0)
    .map(|(count, label)| format!("{} {label}", thousands(count)))
    .collect();
    let not_due = if not_due.is_empty() { String::new() } else { format!(" ({})", not_due.join(", ")) };
    let mut lines = vec![
        format!("users due       {} of {} read{not_due}", thousands(cost.due_users), thousands(summary.read)),
        format!(
            "lookup keys     {} distinct: {} at free-mail domains, {} shared by {} users",
            thousands(cost.lookups),
            thousands(cost.free_mail_keys),
            thousands(cost.shared_keys),
            thousands(cost.shared_users)
        ),
        format!(
            "billed lookups  ≈ {} (each email answered, found or not, is billed once a billing period)",
            thousands(cost.lookups)
        ),
        format!("time            ≈ {} at {lookups_per_minute} lookups/min", rough_duration(cost.time)),
    ];
    if summary.resumed > 0 {
        lines.push(format!("resumed         {} fetched results written without a lookup", summary.resumed));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_are_keys_and_users_are_who_they_serve() {
        let key = |email: &str| LookupKey::Email(email.to_owned());
        let plan = RunPlan {
            summary: enrich_core::RunSummary::default(),
            lookups: vec![(key("a@gmail.com"), 1), (key("team@acme.com"), 3), (key("b@acme.com"), 1)],
        };
        let cost = Cost::of(&plan, 600);
        assert_eq!(
            cost,
            Cost {
                due_users: 5,
                lookups: 3,
                free_mail_keys: 1,
                shared_keys: 1,
                shared_users: 3,
                time: Duration::ZERO
            }
        );
        assert_eq!(Cost::of(&plan, 1).time, Duration::from_secs(180));
    }
}
