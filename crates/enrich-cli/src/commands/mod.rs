//! What each subcommand does. Results go to standard output, problems to standard error.

mod check;
mod init;
mod map;
mod preview;
mod properties;
mod report;
mod state;
mod status;
mod sync;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::cli::{Cli, Command, StateAction};
use crate::config::{self, Config};
use crate::render;

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Completions { shell } => {
            std::io::stdout().write_all(&crate::complete::registration(*shell)?)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::definition()).render(&mut std::io::stdout())?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Init { force, source_url, sink_url } => {
            let urls = init::ServiceUrls { source: source_url.clone(), sink: sink_url.clone() };
            return init::run(&cli.config, *force, &urls).await;
        }
        _ => {}
    }
    let config = match config::load(&cli.config) {
        Ok(config) => config,
        Err(errors) => return Ok(config_problems(&cli.config, &errors.0)),
    };
    config.connections.iter().for_each(crate::registry::register_secrets);
    match cli.command {
        Command::Validate => validate(&config),
        Command::Sync { name, dry_run } => sync::manual(&config, config.chosen(name)?, dry_run).await,
        Command::Backfill { name, since, dry_run, confirm_over, yes } => {
            let ask = if yes || dry_run { None } else { Some(confirm_over) };
            sync::backfill(&config, config.chosen(name)?, since, dry_run, ask).await
        }
        Command::Run { names, metrics, .. } => sync::on_schedule(&config, &names, metrics).await,
        Command::Status { name, format, history } => status::show(&config, name.as_deref(), format, history),
        Command::Report { name, format, html } => {
            report::show(&config, config.chosen(name)?, format, html.as_deref())
        }
        Command::Properties { name, format } => properties::list(&config, config.chosen(name)?, format),
        Command::Forget { name, email } => forget(&config, &name, &email),
        Command::Check { name } => check::run(&config, config.chosen(name)?).await,
        Command::State { action: StateAction::Reset { name, yes } } => {
            state::reset(&config, config.chosen(name)?, yes)
        }
        Command::State { action: StateAction::Export { name, file } } => state::export(&config, &name, &file),
        Command::State { action: StateAction::Import { name, file } } => state::import(&config, &name, &file),
        Command::Map { file, connection } => map::show(&config, config.chosen(connection)?, file.as_deref()),
        Command::Completions { .. } | Command::Man | Command::Init { .. } => {
            unreachable!("handled before loading the config")
        }
    }
}

pub fn plural(count: u64) -> &'static str {
    if count == 1 { "" } else { "s" }
}

/// Prints every problem of the config file, then how many there are.
fn config_problems(path: &Path, problems: &[config::ConfigError]) -> ExitCode {
    for problem in problems {
        // Secrets may not be registered yet: a problem quoting a URL may still hold a password.
        eprintln!("error: {}", enrich_core::redact::text(&problem.to_string()));
    }
    let count = problems.len();
    eprintln!("{count} problem{} in {}", plural(count as u64), path.display());
    ExitCode::FAILURE
}

fn validate(config: &Config) -> anyhow::Result<ExitCode> {
    let roster_problems: Vec<config::ConfigError> = config
        .connections
        .iter()
        .flat_map(|connection| {
            connection.users.validate_roster(config_folder(config)).into_iter().map(|problem| {
                config::ConfigError {
                    file: config.path.clone(),
                    location: Some(format!("connections.{}.users.{}", connection.name, problem.field)),
                    message: problem.message,
                }
            })
        })
        .collect();
    if !roster_problems.is_empty() {
        return Ok(config_problems(&config.path, &roster_problems));
    }
    let mut out = std::io::stdout().lock();
    let count = config.connections.len();
    writeln!(out, "{}: valid, {count} connection{}", config.path.display(), plural(count as u64))?;
    for connection in &config.connections {
        writeln!(out, "  {}", render::connection_line(connection))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `enrich forget NAME EMAIL`.
fn forget(config: &Config, name: &str, email: &str) -> anyhow::Result<ExitCode> {
    let connection = config.connection(name).map_err(anyhow::Error::msg)?;
    let key = match (email.trim().parse(), enrich_core::user::normalize_email(email)) {
        (Ok(ip), _) => enrich_core::LookupKey::Ip(ip),
        (Err(_), Some(normalized)) => enrich_core::LookupKey::Email(normalized),
        (Err(_), None) => anyhow::bail!("{email:?} is neither an email address nor an IP address"),
    };
    let store = crate::store::State::of(config)?.open(&connection.name)?;
    let forgotten = store.forget(key.digest())?;
    // The figure `enrich status` shows counts the users still remembered, as `enrich report` does.
    let mut state = store.connection()?;
    state.users_enriched = enrich_core::found_users(store.as_ref())?;
    store.put_connection(&state)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{name}: forgot {key}: {} user{} removed from the state{}",
        forgotten.len(),
        plural(forgotten.len() as u64),
        if forgotten.is_empty() { String::new() } else { format!(" ({})", shown_keys(&forgotten)) }
    )?;
    let what = if matches!(key, enrich_core::LookupKey::Ip(_)) { "address" } else { "email" };
    writeln!(out, "{name}: this {what} will not be looked up again; remove it from the roster too")?;
    if let Some(deletion) = connection.sink.deleting_users().filter(|_| !forgotten.is_empty()) {
        writeln!(out, "{deletion}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// State keys as people read them: identities, and anonymous users as `user_id 42`.
fn shown_keys(keys: &[String]) -> String {
    keys.iter().map(|key| key.trim_start()).collect::<Vec<_>>().join(", ")
}

/// The folder config paths are relative to.
fn config_folder(config: &Config) -> &Path {
    config.path.parent().unwrap_or(Path::new(""))
}
