//! `enrich report NAME`: the connection's users by match, industry, company size and technologies.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use enrich_core::redact;

use crate::cli::ReportFormat;
use crate::config::Config;
use crate::render;
use crate::report::{Population, Tally};
use crate::store::State;

pub fn show(
    config: &Config,
    name: &str,
    format: ReportFormat,
    html: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let connection = config.connection(name).map_err(anyhow::Error::msg)?;
    let source =
        connection.source.build(None).with_context(|| format!("cannot build the source of `{name}`"))?;
    // A property the source writes about every check (it has no source attribute) is known for users
    // found or not; a property of what was found only for found users.
    let about_the_check: Vec<String> =
        source.properties().into_iter().filter(|property| property.path.is_none()).map(|p| p.name).collect();
    let segments = source.segments().into_iter().map(|segment| {
        let population =
            if about_the_check.contains(&segment.property) { Population::Checked } else { Population::Found };
        (segment, population)
    });
    let mut tally = Tally::new(segments);
    // Opening takes the connection's lock: this fails, saying so, while the connection syncs.
    let store = State::of(config)?.open(name)?;
    for user in store.users() {
        tally.add(&user?.1);
    }
    let runs = store.connection()?.runs;
    drop(store); // the lock, released before the output is written
    let report = tally.report(name, Utc::now()).with_history(&runs);

    // Segment values are what a service sent: they pass the redaction point like any other text.
    if let Some(path) = html {
        std::fs::write(path, redact::text(&render::report::html(&report)).as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("{}: the report of `{name}` as a web page", path.display());
    }
    let shown = match format {
        ReportFormat::Table => render::report::table(&report),
        ReportFormat::Json => format!("{}\n", serde_json::to_string_pretty(&report)?),
        ReportFormat::Csv => render::report::csv(&report),
    };
    write!(std::io::stdout().lock(), "{}", redact::text(&shown))?;
    Ok(ExitCode::SUCCESS)
}
