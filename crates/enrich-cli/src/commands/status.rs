//! `enrich status`: each connection's status, last run and history, read without locking.

use std::io::Write;
use std::process::ExitCode;

use enrich_core::{ConnectionStatus, redact};
use enrich_state_sled::{read_connection_state, syncing_since};

use crate::cli::Format;
use crate::config::{Config, ConnectionConfig};
use crate::render;

pub fn show(config: &Config, name: Option<&str>, format: Format, history: bool) -> anyhow::Result<ExitCode> {
    let connections: Vec<&ConnectionConfig> = match name {
        Some(name) => vec![config.connection(name).map_err(anyhow::Error::msg)?],
        None => config.connections.iter().collect(),
    };
    let mut states = Vec::new();
    for connection in connections {
        states.push(render::StatusOf {
            connection,
            state: read_connection_state(&config.state_dir, &connection.name)?,
            syncing_since: syncing_since(&config.state_dir, &connection.name),
        });
    }
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
