//! `enrich check NAME`: proves a connection works before any sync, one line per part.

use std::io::Write;
use std::process::ExitCode;

use chrono::Utc;
use enrich_core::{RunKind, SyncRequest};

use super::{config_folder, preview};
use crate::config::Config;
use crate::render;

/// One checked part: what was found, or what is wrong and what to do.
struct Line {
    ok: bool,
    text: String,
}

pub async fn run(config: &Config, name: &str) -> anyhow::Result<ExitCode> {
    let connection = config.connection(name).map_err(anyhow::Error::msg)?;
    let mut lines = vec![Line { ok: true, text: format!("{}: the config is valid", config.path.display()) }];

    let source = connection.source.build(None);
    lines.push(match &source {
        Err(error) => Line { ok: false, text: format!("source: {error}") },
        Ok(source) => match source.check().await {
            Ok(done) => Line { ok: true, text: format!("{}: {done}", source.kind()) },
            Err(error) => Line { ok: false, text: format!("{}: {error}", source.kind()) },
        },
    });
    lines.push(match connection.sink.build() {
        Err(error) => Line { ok: false, text: format!("sink: {error}") },
        Ok(sink) => match sink.check().await {
            Ok(done) => {
                // What a live call cannot prove, the first sync shows in the destination's own UI.
                let proof = source
                    .as_ref()
                    .ok()
                    .and_then(|source| sink.first_sync_proves(source.checked_property()))
                    .map_or(String::new(), |proof| format!("; {proof}"));
                Line { ok: true, text: format!("{}: {done}{proof}", sink.kind()) }
            }
            Err(error) => Line { ok: false, text: format!("{}: {error}", sink.kind()) },
        },
    });
    lines.extend(users_lines(config, connection).await);

    let mut out = std::io::stdout().lock();
    for line in &lines {
        // Services' answers are quoted: they pass the redaction point.
        writeln!(out, "{} {}", if line.ok { "✓" } else { "✗" }, enrich_core::redact::text(&line.text))?;
    }
    let failed = lines.iter().filter(|line| !line.ok).count();
    if failed > 0 {
        writeln!(out, "{failed} of {} checks failed; fix them before `enrich sync {name}`", lines.len())?;
        return Ok(ExitCode::FAILURE);
    }
    writeln!(out, "ready: `enrich sync {name}` runs it now, `enrich run` keeps it on schedule")?;
    Ok(ExitCode::SUCCESS)
}

/// Plans a sync now as the engine would, without a lookup or a write: what the roster holds and
/// what the sync will cost. Fails when no row of the window is usable.
async fn users_lines(config: &Config, connection: &crate::config::ConnectionConfig) -> Vec<Line> {
    let describe = match connection.users.build(config_folder(config)) {
        Ok(directory) => directory.describe(),
        Err(error) => return vec![Line { ok: false, text: format!("users: {error}") }],
    };
    let request = SyncRequest::over_window(RunKind::Manual, &connection.schedule, Utc::now());
    let preview = match preview::plan(config, connection, &request).await {
        Ok(Ok(preview)) => preview,
        Ok(Err(error)) => return vec![Line { ok: false, text: error }],
        Err(error) => return vec![Line { ok: false, text: format!("{error:#}") }],
    };
    let summary = &preview.plan.summary;
    let in_window = summary.read - summary.outside_window;
    let usable = in_window - summary.no_email - summary.malformed_email;
    let bad = if summary.bad_rows > 0 {
        format!("; {} bad rows will be skipped", summary.bad_rows)
    } else {
        String::new()
    };
    let counts = format!(
        "{describe}: {} users read, {} seen within the backfill window, {} of them with a valid email{bad}",
        summary.read, in_window, usable
    );
    if usable == 0 {
        return vec![Line {
            ok: false,
            text: format!("{counts}: no user to enrich; {}", no_usable_hint(summary)),
        }];
    }
    let cost = &preview.cost;
    let mut cost_text = format!(
        "a sync now: ≈ {} billed lookups for {} users, ≈ {} at {}/min",
        render::thousands(cost.lookups),
        render::thousands(cost.due_users),
        render::rough_duration(cost.time()),
        cost.lookups_per_minute
    );
    for line in preview::lines(&preview) {
        cost_text.push_str(&format!("\n    {line}"));
    }
    vec![Line { ok: true, text: counts }, Line { ok: true, text: cost_text }]
}

/// What to look at when no row of the window can be enriched.
fn no_usable_hint(summary: &enrich_core::RunSummary) -> &'static str {
    if summary.read == 0 && summary.bad_rows > 0 {
        "every row is bad (the log says why)"
    } else if summary.read == summary.outside_window && summary.read > 0 {
        "every user was seen before the backfill window: widen `schedule.backfill`, or `enrich backfill --since`"
    } else if summary.read == 0 {
        "the roster is empty"
    } else {
        "no user has a valid email: is `email_property` the column holding it?"
    }
}
