//! What a run would cost before it spends: the figures of `enrich check`, of `--dry-run` on `sync` and
//! `backfill`, and of backfill's confirmation. Planned by the engine's own reading phase
//! (`enrich_core::plan`): the due rules exist once.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use enrich_core::{
    EngineError, LookupKey, MemoryStateStore, RunPlan, SourceSettings, StateStore, SyncRequest,
};

use super::config_folder;
use crate::config::{Config, ConnectionConfig};
use crate::registry::build_connection;
use crate::render::{rough_duration, thousands};
use crate::store::State;

/// A planned run and what it costs.
#[derive(Debug)]
pub struct Preview {
    pub plan: RunPlan,
    pub cost: Cost,
}

/// Plans the run `request` describes without a lookup or a write; a connection that never ran is
/// planned against an empty state, created nowhere. The inner `Err` is a fatal roster error. The
/// lookups are counted as the plan hands them over: none is kept, however many users are due.
pub async fn plan(
    config: &Config,
    connection: &ConnectionConfig,
    request: &SyncRequest,
) -> anyhow::Result<Result<Preview, String>> {
    // No budget: a plan books no request.
    let built = build_connection(connection, config_folder(config), None)
        .with_context(|| format!("cannot build connection `{}`", connection.name))?;
    let store: Arc<dyn StateStore> = match State::of(config)?.open_existing(&connection.name)? {
        Some(store) => store,
        None => Arc::new(MemoryStateStore::default()),
    };
    let mut cost = Cost::new(&*connection.source);
    match enrich_core::plan(&built, store.as_ref(), request, |key, users| cost.add(key, users)).await {
        Ok(plan) => Ok(Ok(Preview { plan, cost })),
        Err(EngineError::Connection(error)) => Ok(Err(error)),
        Err(EngineError::State(error)) => Err(error.into()),
    }
}

/// What a plan costs: lookups are what is billed, users are who they serve; the source says how it
/// bills and which keys are worth counting apart.
#[derive(Debug)]
pub struct Cost {
    pub due_users: u64,
    /// Distinct lookup keys this run looks up: each one a possibly billed lookup.
    pub lookups: u64,
    /// The keys the source flags (`at free-mail domains`) and how many there are.
    pub flagged_keys: Option<(&'static str, u64)>,
    /// Keys serving more than one user, and how many users they serve.
    pub shared_keys: u64,
    pub shared_users: u64,
    /// The source's billing rule, in its provider's words.
    pub billing: &'static str,
    /// The source's configured pace.
    pub lookups_per_minute: u64,
    /// Which keys `flagged_keys` counts.
    flagged: Option<fn(&LookupKey) -> bool>,
}

impl Cost {
    /// Nothing looked up yet, at the source's pace and billing.
    pub fn new(source: &dyn SourceSettings) -> Self {
        let billing = source.billing();
        Self {
            due_users: 0,
            lookups: 0,
            flagged_keys: billing.flagged.map(|(label, _)| (label, 0)),
            shared_keys: 0,
            shared_users: 0,
            billing: billing.rule,
            lookups_per_minute: source.lookups_per_minute().max(1),
            flagged: billing.flagged.map(|(_, flagged)| flagged),
        }
    }

    /// Counts one lookup of the plan, serving `users` users.
    pub fn add(&mut self, key: &LookupKey, users: u64) {
        self.lookups += 1;
        self.due_users += users;
        if users > 1 {
            self.shared_keys += 1;
            self.shared_users += users;
        }
        if let (Some((_, keys)), Some(flagged)) = (&mut self.flagged_keys, self.flagged)
            && flagged(key)
        {
            *keys += 1;
        }
    }

    /// The time the lookups take at the source's pace.
    pub fn time(&self) -> Duration {
        Duration::from_secs(self.lookups * 60 / self.lookups_per_minute)
    }
}

/// The preview, one labelled line each, indented under a heading the caller writes.
pub fn lines(Preview { plan, cost }: &Preview) -> Vec<String> {
    let summary = &plan.summary;
    let not_due: Vec<String> = [
        (summary.outside_window, "outside the window"),
        (summary.no_email, "without email"),
        (summary.malformed_email, "with a malformed email"),
        (summary.bad_rows, "bad rows"),
        (summary.duplicate_identities, "duplicate identities"),
        (summary.up_to_date, "checked recently"),
        (summary.skipped, "skipped by the source (free mail, forgotten)"),
        (summary.unaddressable, "skipped by the sink (anonymous users for Heap)"),
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
            "lookup keys     {} distinct: {}{} shared by {} users",
            thousands(cost.lookups),
            cost.flagged_keys.map_or(String::new(), |(label, keys)| format!("{} {label}, ", thousands(keys))),
            thousands(cost.shared_keys),
            thousands(cost.shared_users)
        ),
        format!("billed lookups  ≈ {} ({})", thousands(cost.lookups), cost.billing),
        format!(
            "time            ≈ {} at {} lookups/min",
            rough_duration(cost.time()),
            cost.lookups_per_minute
        ),
    ];
    if summary.resumed > 0 {
        lines.push(format!("resumed         {} fetched results written without a lookup", summary.resumed));
    }
    if summary.lookups_saved > 0 {
        let users = thousands(summary.lookups_saved);
        lines.push(format!(
            "kept results    {users} users written from earlier lookups of their key, without one"
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use enrich_core::LookupKey;

    use super::*;

    /// The cost of these lookups, counted as a plan hands them over.
    fn cost_of(lookups: &[(LookupKey, u64)], source: &dyn SourceSettings) -> Cost {
        let mut cost = Cost::new(source);
        for (key, users) in lookups {
            cost.add(key, *users);
        }
        cost
    }

    #[test]
    fn lookups_are_keys_and_users_are_who_they_serve() {
        let key = |email: &str| LookupKey::Email(email.to_owned());
        let lookups = [(key("a@gmail.com"), 1), (key("team@acme.com"), 3), (key("b@acme.com"), 1)];
        let clearbit = |requests_per_minute: u32| {
            let config =
                serde_json::json!({ "api_key": "sk_test", "requests_per_minute": requests_per_minute });
            serde_json::from_value::<enrich_clearbit::ClearbitConfig>(config).unwrap()
        };
        let cost = cost_of(&lookups, &clearbit(600));
        assert_eq!(
            (cost.due_users, cost.lookups, cost.flagged_keys, cost.shared_keys, cost.shared_users),
            (5, 3, Some(("at free-mail domains", 1)), 1, 3)
        );
        assert_eq!(
            cost.billing,
            "each email Clearbit answers, found or not, is billed once a billing period"
        );
        assert_eq!((cost.lookups_per_minute, cost.time()), (600, Duration::ZERO));
        assert_eq!(cost_of(&lookups, &clearbit(1)).time(), Duration::from_secs(180));
    }

    #[test]
    fn the_source_says_its_billing_and_which_keys_it_flags() {
        let config = serde_json::json!({ "api_key": "sk_test" });
        let reveal: enrich_clearbit::ClearbitRevealConfig = serde_json::from_value(config).unwrap();
        let cost = cost_of(&[(LookupKey::Ip("8.8.8.8".parse().unwrap()), 1)], &reveal);
        assert_eq!(cost.flagged_keys, None);
        let preview = Preview { plan: RunPlan { summary: enrich_core::RunSummary::default() }, cost };
        let lines = lines(&preview).join("\n");
        assert!(lines.contains("1 distinct: 0 shared by 0 users"), "{lines}");
        assert!(lines.contains("(each IP address looked up counts against the Reveal plan)"), "{lines}");
    }
}
