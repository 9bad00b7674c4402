//! `enrich status`: each connection's status, last run and history, read without locking.

use std::io::Write;
use std::process::ExitCode;

use enrich_core::{ConnectionStatus, redact};

use crate::cli::Format;
use crate::config::{Config, ConnectionConfig};
use crate::render;
use crate::store::State;

pub fn show(config: &Config, name: Option<&str>, format: Format, history: bool) -> anyhow::Result<ExitCode> {
    let connections: Vec<&ConnectionConfig> = match name {
        Some(name) => vec![config.connection(name).map_err(anyhow::Error::msg)?],
        None => config.connections.iter().collect(),
    };
    let names: Vec<String> = connections.iter().map(|connection| connection.name.clone()).collect();
    let state = State::of(config)?;
    let saved = state.connection_states(&names)?;
    let states: Vec<render::StatusOf<'_>> = connections
        .into_iter()
        .zip(saved)
        .map(|(connection, saved)| {
            Ok(render::StatusOf {
                connection,
                state: saved,
                syncing_since: state.syncing_since(&connection.name)?,
            })
        })
        .collect::<Result<_, enrich_core::StateError>>()?;
    let mut out = std::io::stdout().lock();
    match format {
        // The state is stored redacted; a state written by an older release may not be.
        Format::Text => write!(out, "{}", redact::text(&render::status_text(&states, history)))?,
        Format::Json => {
            let json = serde_json::to_string_pretty(&render::status_json(&states, history))?;
            writeln!(out, "{}", redact::text(&json))?
        }
    }
    // For monitoring: a connection in `Error` needs someone.
    let failing = states.iter().any(|shown| matches!(shown.state.status, ConnectionStatus::Error(_)));
    Ok(if failing { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
