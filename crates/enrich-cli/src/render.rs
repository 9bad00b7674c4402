//! How results look on a terminal and in JSON.

pub mod report;

use std::fmt::Write;

use chrono::{DateTime, Utc};
use enrich_core::{ConnectionState, ConnectionStatus, PropertyInfo, RunKind, RunRecord, RunSummary};
use serde_json::json;

use crate::config::ConnectionConfig;

/// One line describing a connection, as `enrich validate` lists it.
pub fn connection_line(connection: &ConnectionConfig) -> String {
    let schedule = connection.schedule;
    format!(
        "{}: {} → {} → {}; every {}, backfill {}, refresh {}",
        connection.name,
        connection.users.describe(),
        connection.source.describe(),
        connection.sink.describe(),
        short_duration(schedule.every),
        short_duration(schedule.backfill),
        short_duration(schedule.refresh)
    )
}

/// A duration as a person writes it in the config: `24h`, `7d`, `90m`.
fn short_duration(duration: std::time::Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0 => format!("{}ms", duration.as_millis()),
        _ if seconds.is_multiple_of(86_400) && seconds / 86_400 != 1 => format!("{}d", seconds / 86_400),
        _ if seconds.is_multiple_of(3600) => format!("{}h", seconds / 3600),
        _ if seconds.is_multiple_of(60) => format!("{}m", seconds / 60),
        _ => format!("{seconds}s"),
    }
}

/// What a figure counts: lookups and users are different things (users sharing an email share one
/// lookup), so every figure of users says so; the label of the others names what they count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Users,
    Named,
}

impl Unit {
    /// The word after a value: `users`, `user`, or none.
    fn after(self, value: u64) -> &'static str {
        match self {
            Self::Users if value == 1 => " user",
            Self::Users => " users",
            Self::Named => "",
        }
    }
}

/// The figures of a run, labelled, in the order a reader follows them.
fn figures(summary: &RunSummary) -> Vec<(&'static str, u64, Unit)> {
    use Unit::*;
    let all = [
        ("users read", summary.read, Named),
        ("bad rows skipped", summary.bad_rows, Named),
        ("outside the window", summary.outside_window, Users),
        ("without email", summary.no_email, Users),
        ("without IP", summary.no_ip, Users),
        ("malformed email", summary.malformed_email, Users),
        ("duplicate identities", summary.duplicate_identities, Named),
        ("with several emails", summary.identities_with_several_emails, Users),
        ("checked recently", summary.up_to_date, Users),
        ("due", summary.due, Users),
        ("skipped by the source", summary.skipped, Users),
        ("skipped by the sink", summary.unaddressable, Users),
        ("deferred by the limit", summary.deferred, Users),
        ("resumed without lookup", summary.resumed, Users),
        ("lookups", summary.lookups, Named),
        ("lookups saved", summary.lookups_saved, Users),
        ("found", summary.found, Users),
        ("not found", summary.not_found, Users),
        ("pending", summary.pending, Users),
        ("invalid", summary.invalid, Users),
        ("written", summary.written, Users),
        ("of them unchanged", summary.unchanged, Users),
        ("properties cleared", summary.cleared, Named),
        ("values cut to fit", summary.values_cut, Named),
        ("failed", summary.failed, Users),
        ("left for next run", summary.aborted, Users),
    ];
    // The headline figures always show; the rest only when they happened.
    const ALWAYS: [&str; 9] =
        ["users read", "due", "lookups", "found", "not found", "pending", "invalid", "written", "failed"];
    let credits = summary.credits_left.map(|credits| ("credits left", credits, Named));
    all.into_iter().filter(|(label, value, _)| *value > 0 || ALWAYS.contains(label)).chain(credits).collect()
}

/// How many reasons a run summary lists.
const TOP_REASONS: usize = 5;

pub fn run_summary(name: &str, run: &RunRecord, status: &ConnectionStatus) -> String {
    // The error itself is said once, on the `error:` line that ends the command.
    let status = if run.error.is_some() { "Error (below)".to_owned() } else { status.to_string() };
    let mut out = format!("{name}: {} finished in {}; status {status}\n", kind(run), elapsed(run));
    for (label, value, unit) in figures(&run.summary) {
        let _ = writeln!(out, "  {label:<22}{value:>8}{}", unit.after(value));
    }
    let reasons = run.summary.top_reasons(TOP_REASONS);
    if !reasons.is_empty() {
        let _ = writeln!(out, "  why users were skipped, invalid or failed (most first):");
        for (reason, users) in reasons {
            let _ = writeln!(out, "  {users:>8}  {reason}");
        }
    }
    out
}

/// A run on one line, for the log of `enrich run`: one event per run.
pub fn run_line(run: &RunRecord, status: &ConnectionStatus) -> String {
    format!("{} finished in {}; status {status}; {}", kind(run), elapsed(run), figures_line(&run.summary))
}

fn elapsed(run: &RunRecord) -> String {
    format!("{:.1}s", (run.finished_at - run.started_at).num_milliseconds() as f64 / 1000.0)
}

/// The figures of a run on one line: `users read 324 · due 265 users · lookups 253 · found 240 users · …`.
fn figures_line(summary: &RunSummary) -> String {
    let figures: Vec<String> = figures(summary)
        .into_iter()
        .map(|(label, value, unit)| format!("{label} {value}{}", unit.after(value)))
        .collect();
    figures.join(" · ")
}

fn kind(run: &RunRecord) -> String {
    let what = match &run.kind {
        RunKind::Scheduled => "scheduled sync",
        RunKind::Manual => "sync",
        RunKind::Backfill { .. } => "backfill",
    };
    format!("{what} of users seen since {}", time(run.seen_since))
}

/// `7315` as `7,315`.
pub fn thousands(count: u64) -> String {
    let digits = count.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A rough duration as a person says it: `40 s`, `12 min`, `2 h 5 min`.
pub fn rough_duration(time: std::time::Duration) -> String {
    let seconds = time.as_secs();
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min", (seconds + 30) / 60),
        _ => format!("{} h {} min", seconds / 3600, seconds % 3600 / 60),
    }
}

pub fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn next_run(connection: &ConnectionConfig, state: &ConnectionState) -> Option<DateTime<Utc>> {
    let every = chrono::Duration::from_std(connection.schedule.every).ok()?;
    state.last_run().and_then(|run| run.started_at.checked_add_signed(every))
}

/// A connection as `enrich status` shows it.
pub struct StatusOf<'a> {
    pub connection: &'a ConnectionConfig,
    pub state: ConnectionState,
    /// When the run syncing it now started.
    pub syncing_since: Option<DateTime<Utc>>,
}

pub fn status_text(shown: &[StatusOf<'_>], history: bool) -> String {
    let mut out = String::new();
    for StatusOf { connection, state, syncing_since } in shown {
        let name = &connection.name;
        let _ = writeln!(out, "{name}: {}", state.status);
        if let Some(since) = syncing_since {
            let _ = writeln!(
                out,
                "  syncing     since {}; the figures below are of the last finished run",
                time(*since)
            );
        }
        let Some(last) = state.last_run() else {
            if syncing_since.is_none() {
                let _ = writeln!(out, "  never run; `enrich sync {name}` runs it now");
            }
            continue;
        };
        match (&state.status, next_run(connection, state)) {
            (ConnectionStatus::Error(_), _) => {
                let _ = writeln!(
                    out,
                    "  next        fix what the error says, then `enrich check {name}` proves it and `enrich sync {name}` runs it now"
                );
            }
            (_, Some(next)) if syncing_since.is_none() => {
                let _ = writeln!(out, "  next run    due {}", time(next));
            }
            _ => {}
        }
        let _ = writeln!(out, "  enriched    {} users found at their last check", state.users_enriched);
        let runs: Vec<&RunRecord> = if history { state.runs.iter().rev().collect() } else { vec![last] };
        for run in runs {
            let _ = writeln!(
                out,
                "  {:<10}  {} → {}, {}",
                if history { "run" } else { "last run" },
                time(run.started_at),
                time(run.finished_at),
                kind(run)
            );
            let _ = writeln!(out, "  figures     {}", figures_line(&run.summary));
            if let Some(line) = how_it_stopped(run) {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
    out
}

/// Why a run ended before its work was done, if it did: a run stopped on request after its last
/// lookup left nothing to say.
fn how_it_stopped(run: &RunRecord) -> Option<String> {
    match &run.error {
        Some(error) => Some(format!("stopped by  {error}")),
        None if run.stopped_early && run.summary.aborted > 0 => Some(format!(
            "stopped early on request; {} users left are due at the next run",
            run.summary.aborted
        )),
        None => None,
    }
}

pub fn status_json(shown: &[StatusOf<'_>], history: bool) -> serde_json::Value {
    let connections: Vec<serde_json::Value> = shown
        .iter()
        .map(|StatusOf { connection, state, syncing_since }| {
            let (status, error) = match &state.status {
                ConnectionStatus::WaitingForData => ("Waiting For Data", None),
                ConnectionStatus::Connected => ("Connected", None),
                ConnectionStatus::Error(reason) => ("Error", Some(reason.as_str())),
            };
            let mut entry = json!({
                "name": connection.name,
                "status": status,
                "error": error,
                "syncing_since": syncing_since,
                "first_data_at": state.first_data_at,
                "users_enriched": state.users_enriched,
                "next_run_due": next_run(connection, state),
                "last_run": state.last_run(),
            });
            if history {
                entry["runs"] = json!(state.runs);
            }
            entry
        })
        .collect();
    json!({ "connections": connections })
}

fn origin(property: &PropertyInfo) -> String {
    let path = property.path.as_deref().unwrap_or("(the check)");
    if property.derived { format!("{path} (derived)") } else { path.to_owned() }
}

/// Properties as an aligned table for a terminal.
pub fn properties_table(properties: &[PropertyInfo]) -> String {
    let name_width = properties.iter().map(|p| p.name.chars().count()).max().unwrap_or(0).max(8);
    let origin_width = properties.iter().map(|p| origin(p).chars().count()).max().unwrap_or(0).max(9);
    let mut out =
        format!("{:<name_width$}  {:<6}  {:<origin_width$}  DESCRIPTION\n", "PROPERTY", "KIND", "ATTRIBUTE");
    for property in properties {
        let _ = writeln!(
            out,
            "{:<name_width$}  {:<6}  {:<origin_width$}  {}",
            property.name,
            property.kind.to_string(),
            origin(property),
            property.description
        );
    }
    let _ = writeln!(out, "{} properties", properties.len());
    out
}

/// Properties as a Markdown table: the README's property reference is this output.
pub fn properties_markdown(properties: &[PropertyInfo], provider: &str) -> String {
    let cell = |text: &str| text.replace('|', "\\|");
    let mut out = format!("| Property | Kind | {provider} attribute | Description |\n|---|---|---|---|\n");
    for property in properties {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            cell(&property.name),
            property.kind,
            property.path.as_deref().map_or_else(|| "—".to_owned(), |path| format!("`{path}`")),
            cell(&property.description)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_run_stopped_on_request_is_called_stopped_early_only_when_work_was_left() {
        let now = Utc::now();
        let run = |aborted| RunRecord {
            kind: RunKind::Manual,
            started_at: now,
            finished_at: now,
            seen_since: now,
            summary: RunSummary { aborted, ..RunSummary::default() },
            error: None,
            stopped_early: true,
        };
        assert_eq!(how_it_stopped(&run(0)), None);
        assert_eq!(
            how_it_stopped(&run(3)).as_deref(),
            Some("stopped early on request; 3 users left are due at the next run")
        );
    }

    #[test]
    fn counts_and_durations_read_as_people_write_them() {
        assert_eq!(thousands(7315), "7,315");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(rough_duration(Duration::from_secs(7315 * 60 / 600)), "12 min");
        assert_eq!(rough_duration(Duration::from_secs(45)), "45 s");
        assert_eq!(rough_duration(Duration::from_secs(7500)), "2 h 5 min");
    }
}
