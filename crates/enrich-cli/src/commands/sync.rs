//! `enrich sync`, `enrich backfill` and `enrich run`: running connections, once or on their schedule.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use enrich_core::{CancellationToken, RunKind, SharedBudget, StateStore, SyncReport, SyncRequest, redact};

use super::{config_folder, plural, preview};
use crate::config::{Config, ConnectionConfig};
use crate::metrics::{self, Metrics};
use crate::registry::build_connection;
use crate::render;
use crate::store::State;

/// `enrich sync NAME [--dry-run]`.
pub async fn manual(config: &Config, name: &str, dry_run: bool) -> anyhow::Result<ExitCode> {
    let connection = config.connection(name).map_err(anyhow::Error::msg)?;
    let request = SyncRequest::over_window(RunKind::Manual, &connection.schedule, Utc::now());
    if dry_run {
        return dry(config, connection, &request).await;
    }
    once(config, connection, request).await
}

/// `enrich backfill NAME --since … [--dry-run]`; with `ask_over`, asks on a terminal before more
/// lookups than that.
pub async fn backfill(
    config: &Config,
    name: &str,
    since: DateTime<Utc>,
    dry_run: bool,
    ask_over: Option<u64>,
) -> anyhow::Result<ExitCode> {
    let connection = config.connection(name).map_err(anyhow::Error::msg)?;
    let request = SyncRequest::backfill(since);
    if dry_run {
        return dry(config, connection, &request).await;
    }
    if let Some(limit) = ask_over
        && std::io::stdin().is_terminal()
        && !confirm_cost(config, connection, &request, limit).await?
    {
        eprintln!("error: {name}: backfill not started");
        return Ok(ExitCode::FAILURE);
    }
    once(config, connection, request).await
}

/// Prints what the run would do and cost; looks nothing up, writes nothing.
async fn dry(
    config: &Config,
    connection: &ConnectionConfig,
    request: &SyncRequest,
) -> anyhow::Result<ExitCode> {
    let name = &connection.name;
    let preview = match preview::plan(config, connection, request).await? {
        Ok(preview) => preview,
        Err(error) => {
            eprintln!("error: {name}: {}", redact::text(&error));
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{name}: dry run of a {} of users seen since {}; nothing was looked up or written",
        if matches!(request.kind, RunKind::Backfill { .. }) { "backfill" } else { "sync" },
        render::time(request.seen_since)
    )?;
    for line in preview::lines(&preview) {
        writeln!(out, "  {line}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Shows the cost of a backfill over `limit` lookups and asks whether to go ahead.
async fn confirm_cost(
    config: &Config,
    connection: &ConnectionConfig,
    request: &SyncRequest,
    limit: u64,
) -> anyhow::Result<bool> {
    // A roster error is the run's to report.
    let Ok(preview) = preview::plan(config, connection, request).await? else { return Ok(true) };
    if preview.cost.lookups <= limit {
        return Ok(true);
    }
    let mut question = format!("{}: this backfill costs more than {limit} lookups:\n", connection.name);
    for line in preview::lines(&preview) {
        question.push_str(&format!("  {line}\n"));
    }
    question.push_str("Type yes to start it: ");
    super::state::confirmed(&question)
}

/// One run in the foreground, stopped gracefully by Ctrl-C; prints the summary.
async fn once(
    config: &Config,
    connection: &ConnectionConfig,
    request: SyncRequest,
) -> anyhow::Result<ExitCode> {
    let stop = stop_on_signals();
    let request = request.with_stop(stop).with_progress(crate::progress::for_stderr());
    let state = State::of(config)?;
    let store = state.open_to_sync(&connection.name)?;
    let report = run_connection(config, connection, (store, state.shared_budget()), request).await?;
    let name = &connection.name;
    print!("{}", redact::text(&render::run_summary(name, &report.run, &report.status)));
    if let Some(error) = &report.run.error {
        eprintln!("error: {name}: {}", redact::text(&config.in_user_terms(name, error)));
        return Ok(ExitCode::FAILURE);
    }
    let summary = &report.run.summary;
    if summary.read == 0 && summary.bad_rows > 0 {
        eprintln!(
            "error: {name}: none of the {} rows of the roster is usable (the log above says why); `enrich validate` checks its columns",
            summary.bad_rows
        );
        return Ok(ExitCode::FAILURE);
    }
    let failed = summary.failed;
    if failed > 0 {
        eprintln!(
            "error: {name}: {failed} user{} failed and will be retried at the next run (the log above says why)",
            plural(failed)
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Builds the connection and runs it on its state, opened (and locked) by the caller, booking its
/// lookups in the shared budget when there is one.
async fn run_connection(
    config: &Config,
    connection: &ConnectionConfig,
    (store, budget): (Arc<dyn StateStore>, Option<Arc<dyn SharedBudget>>),
    request: SyncRequest,
) -> anyhow::Result<SyncReport> {
    let built = build_connection(connection, config_folder(config), budget)
        .with_context(|| format!("cannot build connection `{}`", connection.name))?;
    let report = enrich_core::sync(&built, Arc::clone(&store), request).await;
    report.map_err(|error| {
        // The status says so too, when its file can still be written: the database may be what
        // failed (a full disk, say).
        if let Err(unsaved) = store.record_failure(&error.to_string()) {
            tracing::debug!("the status was not updated: {unsaved}");
        }
        error.into()
    })
}

/// A token cancelled by the first Ctrl-C or SIGTERM; a second one exits at once.
fn stop_on_signals() -> CancellationToken {
    let stop = CancellationToken::new();
    let cancel = stop.clone();
    tokio::spawn(async move {
        let Ok(mut terminate) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return;
        };
        let signal = async {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        };
        signal.await;
        tracing::warn!(
            "stopping: no new lookups; finishing those in flight and writing what was fetched (again to quit at once)"
        );
        cancel.cancel();
        let again = async {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        };
        again.await;
        eprintln!(
            "error: stopped at once; lookups in flight, and checks fetched in the last moment, are not \
             recorded and will be made again"
        );
        std::process::exit(130);
    });
    stop
}

/// `enrich run`: every selected connection on its schedule, until stopped; with `metrics_on`, serves
/// the metrics of its runs there.
pub async fn on_schedule(
    config: &Config,
    names: &[String],
    metrics_on: Option<SocketAddr>,
) -> anyhow::Result<ExitCode> {
    let connections: Vec<&ConnectionConfig> = if names.is_empty() {
        config.connections.iter().collect()
    } else {
        names
            .iter()
            .map(|name| config.connection(name))
            .collect::<Result<_, _>>()
            .map_err(anyhow::Error::msg)?
    };
    let state = State::of(config)?;
    // A database is shared by any number of runners: the connections' locks keep each run single.
    let _lock = match &state {
        State::Sled(folder) => Some(lock_runner(folder)?),
        State::Postgres(_) => None,
    };
    let metrics = Arc::new(Metrics::new(connections.iter().map(|connection| connection.name.as_str())));
    let stop = stop_on_signals();
    // Stopped with the runs, also when every connection gave up on its own.
    let stop_serving = stop.child_token();
    let server = match metrics_on {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot serve metrics on {address}"))?;
            let url = format!("http://{}/metrics", listener.local_addr()?);
            tracing::info!(%url, "serving Prometheus metrics");
            Some(tokio::spawn(metrics::serve(listener, Arc::clone(&metrics), stop_serving.clone())))
        }
        None => None,
    };
    tracing::info!(
        connections = connections.len(),
        state = %state.shown(),
        "running on schedule until stopped (Ctrl-C or SIGTERM)"
    );
    let runs = connections
        .into_iter()
        .map(|connection| keep_on_schedule(config, &state, connection, &metrics, stop.clone()));
    futures::future::join_all(runs).await;
    stop_serving.cancel();
    if let Some(server) = server
        && let Err(error) = server.await?
    {
        tracing::error!("the metrics server stopped: {error}");
    }
    tracing::info!("stopped; state saved");
    Ok(ExitCode::SUCCESS)
}

/// How long to wait before trying again after a failed run.
const FAILED_RETRY: Duration = Duration::from_secs(60);
/// How long to wait before trying again when another process is syncing a connection: short, so that
/// a worker takes over a dead one's connection soon after its lock is released.
const BUSY_RETRY: Duration = Duration::from_secs(5);

/// Runs one connection whenever it is due, one run at a time, until `stop`. A run that another
/// process did meanwhile (a shared state) counts as done.
async fn keep_on_schedule(
    config: &Config,
    state: &State,
    connection: &ConnectionConfig,
    metrics: &Metrics,
    stop: CancellationToken,
) {
    let name = connection.name.as_str();
    let every = chrono::Duration::from_std(connection.schedule.every).unwrap_or(chrono::Duration::MAX);
    // When to try again, and the last run then: void once another run is recorded.
    let mut retry: Option<(DateTime<Utc>, Option<DateTime<Utc>>)> = None;
    while !stop.is_cancelled() {
        let saved = match state.connection_state(name) {
            Ok(saved) => saved,
            Err(error) => {
                // A database may be back in a minute; a damaged folder says so every minute.
                tracing::error!(
                    connection = name,
                    "cannot read its state: {error}; trying again in 1 minute"
                );
                tokio::select! {
                    () = tokio::time::sleep(FAILED_RETRY) => continue,
                    () = stop.cancelled() => return,
                }
            }
        };
        metrics.observe(name, &saved);
        let last_run = saved.last_run().map(|run| run.started_at);
        let due = match retry.take() {
            Some((at, seen)) if seen == last_run => at,
            _ => last_run.map_or_else(Utc::now, |started| {
                started.checked_add_signed(every).unwrap_or(DateTime::<Utc>::MAX_UTC)
            }),
        };
        let wait = (due - Utc::now()).to_std().unwrap_or_default();
        if !wait.is_zero() {
            tracing::info!(connection = name, next_run = %render::time(due), "next run due");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => return,
            }
        }
        let store = match state.open_to_sync(name) {
            Ok(store) => store,
            Err(error) if error.is_busy() => {
                tracing::debug!(connection = name, "{error}; trying again in {}s", BUSY_RETRY.as_secs());
                retry =
                    Some((Utc::now() + chrono::Duration::from_std(BUSY_RETRY).unwrap_or_default(), last_run));
                continue;
            }
            Err(error) => {
                tracing::error!(
                    connection = name,
                    "cannot open its state: {error}; trying again in 1 minute"
                );
                retry = Some((
                    Utc::now() + chrono::Duration::from_std(FAILED_RETRY).unwrap_or_default(),
                    last_run,
                ));
                continue;
            }
        };
        if store.connection().is_ok_and(|now| now.last_run().map(|run| run.started_at) != last_run) {
            continue; // another process ran it while this one waited
        }
        let request = SyncRequest::over_window(RunKind::Scheduled, &connection.schedule, Utc::now())
            .with_stop(stop.clone());
        match run_connection(config, connection, (store, state.shared_budget()), request).await {
            Ok(report) => {
                metrics.record(name, &report);
                tracing::info!(connection = name, "{}", render::run_line(&report.run, &report.status));
            }
            Err(error) => {
                tracing::error!(connection = name, "run failed: {error:#}; trying again in 1 minute");
                retry = Some((
                    Utc::now() + chrono::Duration::from_std(FAILED_RETRY).unwrap_or_default(),
                    last_run,
                ));
            }
        }
    }
}

/// Only one `enrich run` per state folder: a second would double every scheduled run.
fn lock_runner(folder: &Path) -> anyhow::Result<File> {
    std::fs::create_dir_all(folder)
        .with_context(|| format!("cannot create the state folder {}", folder.display()))?;
    let path = folder.join("run.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    if file.try_lock().is_err() {
        let holder = std::fs::read_to_string(&path).unwrap_or_default();
        anyhow::bail!(
            "another `enrich run` is already running on {} (process {})",
            folder.display(),
            holder.trim()
        );
    }
    file.set_len(0)?;
    write!(file, "{}", std::process::id())?;
    Ok(file)
}
