//! `enrich map`: how a source response maps to properties, without network; with `--connection`, as
//! that connection's sink receives them.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use enrich_core::ValueRules;

/// Prints the properties of one Clearbit combined response, fitted to `rules`.
pub fn clearbit(file: Option<&Path>, rules: ValueRules) -> anyhow::Result<ExitCode> {
    let (name, text) = match file {
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
    let response: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{name} is not a JSON document"))?;
    if !response.is_object() || (response.get("person").is_none() && response.get("company").is_none()) {
        bail!("{name} is not a Clearbit combined response: expected an object with `person` and `company`");
    }
    let mut properties =
        enrich_clearbit::map_combined(&response, &enrich_clearbit::every_attribute()).properties;
    for property in rules.fit(&mut properties) {
        eprintln!("warning: `{property}` was longer than {} accepts and was cut", rules.destination);
    }
    println!("{}", serde_json::to_string_pretty(&properties)?);
    Ok(ExitCode::SUCCESS)
}
