//! `enrich check NAME`: proves a connection works before any sync, one line per part.

use std::io::Write;
use std::process::ExitCode;

use chrono::Utc;
use enrich_core::{DirectoryError, KeyKind};
use futures::StreamExt;

use super::config_folder;
use crate::config::Config;

/// One checked part: what was found, or what is wrong and what to do.
struct Line {
    ok: bool,
    text: String,
}

pub async fn run(config: &Config, name: &str) -> anyhow::Result<ExitCode> {
    let connection = config.connection(name).map_err(anyhow::Error::msg)?;
    let mut lines = vec![Line { ok: true, text: format!("{}: the config is valid", config.path.display()) }];

    let source = connection.source.build();
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
                let proof = source.as_ref().map_or(String::new(), |source| {
                    format!(
                        "; the first sync proves the app_id once {:?} shows on users in Heap",
                        source.checked_property()
                    )
                });
                Line { ok: true, text: format!("{}: {done}{proof}", sink.kind()) }
            }
            Err(error) => Line { ok: false, text: format!("{}: {error}", sink.kind()) },
        },
    });
    lines.push(users_line(connection, config_folder(config)).await);

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

/// Reads the whole roster of the window once, counting what a sync would see.
async fn users_line(connection: &crate::config::ConnectionConfig, folder: &std::path::Path) -> Line {
    let directory = match connection.users.build(folder) {
        Ok(directory) => directory,
        Err(error) => return Line { ok: false, text: format!("users: {error}") },
    };
    let window = chrono::Duration::from_std(connection.schedule.backfill).unwrap_or(chrono::Duration::MAX);
    let since = Utc::now().checked_sub_signed(window).unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
    let mut users = match directory.users(since).await {
        Ok(users) => users,
        Err(error) => return Line { ok: false, text: format!("{}: {error}", directory.describe()) },
    };
    let (mut read, mut in_window, mut with_email, mut bad_rows) = (0_u64, 0_u64, 0_u64, 0_u64);
    while let Some(item) = users.next().await {
        match item {
            Ok(user) => {
                read += 1;
                if user.last_seen >= since {
                    in_window += 1;
                    with_email += u64::from(user.lookup_key(KeyKind::Email).is_ok());
                }
            }
            Err(DirectoryError::BadRow { .. }) => bad_rows += 1,
            Err(DirectoryError::Fatal(message)) => {
                return Line { ok: false, text: format!("{}: {message}", directory.describe()) };
            }
        }
    }
    let bad = if bad_rows > 0 { format!("; {bad_rows} bad rows will be skipped") } else { String::new() };
    Line {
        ok: true,
        text: format!(
            "{}: {read} users read, {in_window} seen within the backfill window, {with_email} of them with a valid email{bad}",
            directory.describe()
        ),
    }
}
