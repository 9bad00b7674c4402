//! `enrich properties NAME`: every property a connection writes, with what it means.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use enrich_core::{PropertyInfo, PropertyKind};

use crate::cli::ListFormat;
use crate::config::Config;
use crate::render;
use crate::store::State;

pub fn list(config: &Config, name: &str, format: ListFormat) -> anyhow::Result<ExitCode> {
    let connection = config.connection(name).map_err(anyhow::Error::msg)?;
    let source =
        connection.source.build(None).with_context(|| format!("cannot build the source of `{name}`"))?;
    let mut properties = source.properties();
    // Attributes the catalogue did not know, seen by earlier runs of this connection (unless a newer
    // catalogue lists them by now).
    let state = State::of(config)?.connection_state(name)?;
    let listed: std::collections::HashSet<String> = properties.iter().map(|p| p.name.clone()).collect();
    let derived = state.derived_properties.into_iter().filter(|(property, _)| !listed.contains(property));
    properties.extend(derived.map(|(property, path)| PropertyInfo {
        description: format!(
            "{}'s `{path}`, an attribute this version of enrich has no description for",
            source.name()
        ),
        name: property,
        path: Some(path),
        kind: PropertyKind::Text,
        derived: true,
    }));
    let mut out = std::io::stdout().lock();
    match format {
        ListFormat::Table => write!(out, "{}", render::properties_table(&properties))?,
        ListFormat::Markdown => write!(out, "{}", render::properties_markdown(&properties, source.name()))?,
        ListFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&properties)?)?,
    }
    Ok(ExitCode::SUCCESS)
}
