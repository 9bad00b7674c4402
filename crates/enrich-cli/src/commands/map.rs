//! `enrich map`: how one answer of a connection's provider maps to properties, as its sink receives
//! them, without network.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, anyhow};

use crate::config::Config;

/// Prints the properties one answer in `file` (standard input without one) maps to for connection
/// `name`, fitted to its sink's rules.
pub fn show(config: &Config, name: &str, file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let connection = config.connection(name).map_err(anyhow::Error::msg)?;
    let (input, text) = match file {
        Some(path) if path != Path::new("-") => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            (path.display().to_string(), text)
        }
        _ => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("cannot read standard input")?;
            ("standard input".to_owned(), text)
        }
    };
    let answer: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{input} is not a JSON document"))?;
    let record = connection.source.map_answer(&answer).map_err(|problem| anyhow!("{input}: {problem}"))?;
    let mut properties = record.properties;
    let rules = connection.sink.value_rules();
    for property in rules.fit(&mut properties) {
        eprintln!("warning: `{property}` was longer than {} accepts and was cut", rules.destination);
    }
    println!("{}", serde_json::to_string_pretty(&properties)?);
    Ok(ExitCode::SUCCESS)
}
