//! What each subcommand does. Results go to standard output, problems to standard error.

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::Utc;
use enrich_core::{ConnectionState, StateStore, SyncRequest};
use enrich_state_sled::SledStateStore;

use crate::cli::{Cli, Command, Format, MapSource};
use crate::config::{self, Config};
use crate::registry::build_connection;
use crate::render;

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate => validate(&cli.config),
        Command::Sync { name } => match load(&cli.config) {
            Ok(config) => sync(&config, &name).await,
            Err(code) => Ok(code),
        },
        Command::Status { name, format } => match load(&cli.config) {
            Ok(config) => status(&config, name.as_deref(), format),
            Err(code) => Ok(code),
        },
        Command::Map { source: MapSource::Clearbit { file } } => map_clearbit(file.as_deref()),
    }
}

/// Loads the config, printing every problem when there are any.
fn load(path: &Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|errors| {
        for error in &errors.0 {
            eprintln!("error: {error}");
        }
        let count = errors.0.len();
        eprintln!("{count} problem{} in {}", if count == 1 { "" } else { "s" }, path.display());
        ExitCode::FAILURE
    })
}

fn validate(path: &Path) -> anyhow::Result<ExitCode> {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    let mut out = std::io::stdout().lock();
    let count = config.connections.len();
    writeln!(out, "{}: valid, {count} connection{}", path.display(), if count == 1 { "" } else { "s" })?;
    for connection in &config.connections {
        writeln!(out, "  {}", render::connection_line(connection))?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn sync(config: &Config, name: &str) -> anyhow::Result<ExitCode> {
    let connection_config = config.connection(name).map_err(anyhow::Error::msg)?;
    let store = open_store(&config.state_dir)?;
    let folder = config.path.parent().unwrap_or(Path::new(""));
    let connection = build_connection(connection_config, folder)
        .with_context(|| format!("cannot build connection `{name}`"))?;
    let request = SyncRequest::scheduled(&connection.schedule, Utc::now());
    let report = enrich_core::sync(&connection, store, request).await?;
    print!("{}", render::run_summary(name, &report.run, &report.status));
    if let Some(error) = &report.run.error {
        eprintln!("error: {name}: {error}");
        return Ok(ExitCode::FAILURE);
    }
    let failed = report.run.summary.failed;
    if failed > 0 {
        eprintln!(
            "error: {name}: {failed} user{} failed and will be retried at the next run (the log above says why)",
            if failed == 1 { "" } else { "s" }
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn status(config: &Config, name: Option<&str>, format: Format) -> anyhow::Result<ExitCode> {
    let connections: Vec<&config::ConnectionConfig> = match name {
        Some(name) => vec![config.connection(name).map_err(anyhow::Error::msg)?],
        None => config.connections.iter().collect(),
    };
    // A state folder that does not exist yet means nothing has run: do not create it just to look.
    let store = if config.state_dir.exists() { Some(open_store(&config.state_dir)?) } else { None };
    let mut states = Vec::new();
    for connection in connections {
        let state = match &store {
            Some(store) => store.connection(&connection.name)?.unwrap_or_default(),
            None => ConnectionState::default(),
        };
        states.push((connection, state));
    }
    let mut out = std::io::stdout().lock();
    match format {
        Format::Text => write!(out, "{}", render::status_text(&states))?,
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&render::status_json(&states))?)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn open_store(state_dir: &Path) -> anyhow::Result<Arc<dyn StateStore>> {
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("cannot create the state folder {}", state_dir.display()))?;
    Ok(Arc::new(SledStateStore::open(state_dir)?))
}

fn map_clearbit(file: Option<&Path>) -> anyhow::Result<ExitCode> {
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
    let mapping = enrich_clearbit::map_combined(&response);
    for property in &mapping.truncated {
        eprintln!("warning: `{property}` was longer than Heap accepts and was cut");
    }
    println!("{}", serde_json::to_string_pretty(&mapping.properties)?);
    Ok(ExitCode::SUCCESS)
}
