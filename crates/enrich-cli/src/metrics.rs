//! `enrich run --metrics`: per connection, counters of the runs since the process started and gauges of
//! the last run and the status, in Prometheus' text exposition format. A few counters and gauges, kept
//! under one mutex and written out by hand, need no metrics library.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use enrich_core::{CancellationToken, ConnectionState, ConnectionStatus, RunRecord, RunSummary, SyncReport};
use tokio::net::TcpListener;

/// The outcomes a lookup ends with, as the `outcome` label names them.
const OUTCOMES: [&str; 5] = ["found", "not_found", "pending", "invalid", "failed"];

/// The statuses a connection can have, as the `status` label names them.
const STATUSES: [&str; 3] = ["waiting_for_data", "connected", "error"];

/// What `enrich run` has done since it started, and what the state says, per connection.
#[derive(Debug)]
pub struct Metrics {
    connections: Mutex<BTreeMap<String, ConnectionMetrics>>,
}

#[derive(Debug, Default)]
struct ConnectionMetrics {
    status: Option<ConnectionStatus>,
    runs: u64,
    lookups: u64,
    lookups_saved: u64,
    /// Users, in the order of [`OUTCOMES`].
    outcomes: [u64; 5],
    written: u64,
    last_run: Option<LastRun>,
}

#[derive(Debug)]
struct LastRun {
    seconds: f64,
    finished_at: f64,
}

impl LastRun {
    fn of(run: &RunRecord) -> Self {
        Self {
            seconds: (run.finished_at - run.started_at).num_milliseconds() as f64 / 1000.0,
            finished_at: run.finished_at.timestamp_millis() as f64 / 1000.0,
        }
    }
}

fn outcomes(summary: &RunSummary) -> [u64; 5] {
    [summary.found, summary.not_found, summary.pending, summary.invalid, summary.failed]
}

fn status_label(status: &ConnectionStatus) -> &'static str {
    match status {
        ConnectionStatus::WaitingForData => STATUSES[0],
        ConnectionStatus::Connected => STATUSES[1],
        // The reason stays out of the label: one series per distinct error message would pile up.
        ConnectionStatus::Error(_) => STATUSES[2],
    }
}

impl Metrics {
    /// Every counter of these connections starts at 0, so that rates are defined from the start.
    pub fn new<'a>(connections: impl IntoIterator<Item = &'a str>) -> Self {
        let connections = connections.into_iter().map(|name| (name.to_owned(), Default::default())).collect();
        Self { connections: Mutex::new(connections) }
    }

    fn with_connection(&self, name: &str, update: impl FnOnce(&mut ConnectionMetrics)) {
        let mut connections = self.connections.lock().unwrap_or_else(PoisonError::into_inner);
        update(connections.entry(name.to_owned()).or_default());
    }

    /// What the state says of the connection: its status and its last run, whichever process ran it.
    pub fn observe(&self, name: &str, state: &ConnectionState) {
        self.with_connection(name, |metrics| {
            metrics.status = Some(state.status.clone());
            metrics.last_run = state.last_run().map(LastRun::of);
        });
    }

    pub fn record(&self, name: &str, report: &SyncReport) {
        let run = &report.run;
        self.with_connection(name, |metrics| {
            metrics.status = Some(report.status.clone());
            metrics.runs += 1;
            metrics.lookups += run.summary.lookups;
            metrics.lookups_saved += run.summary.lookups_saved;
            for (total, count) in metrics.outcomes.iter_mut().zip(outcomes(&run.summary)) {
                *total += count;
            }
            metrics.written += run.summary.written;
            metrics.last_run = Some(LastRun::of(run));
        });
    }

    /// The text exposition format, version 0.0.4. Connection names need no escaping in labels: the
    /// config allows only letters, digits, `-`, `_` and `.` in them.
    pub fn render(&self) -> String {
        let connections = self.connections.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::new();
        for family in &FAMILIES {
            let _ = writeln!(
                out,
                "# HELP {} {}\n# TYPE {} {}",
                family.name, family.help, family.name, family.kind
            );
            for (connection, metrics) in connections.iter() {
                for (label, value) in (family.samples)(metrics) {
                    let label =
                        label.map_or_else(String::new, |(name, value)| format!(",{name}=\"{value}\""));
                    let _ = writeln!(out, "{}{{connection=\"{connection}\"{label}}} {value}", family.name);
                }
            }
        }
        out
    }
}

/// A label beside `connection`, as (name, value).
type Label = Option<(&'static str, &'static str)>;

/// One metric: what it is, and its samples for one connection.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: fn(&ConnectionMetrics) -> Vec<(Label, f64)>,
}

const FAMILIES: [Family; 8] = [
    Family {
        name: "enrich_runs_total",
        kind: "counter",
        help: "Runs finished since enrich started.",
        samples: |metrics| vec![(None, metrics.runs as f64)],
    },
    Family {
        name: "enrich_lookups_total",
        kind: "counter",
        help: "Lookups made: one per distinct email a run looked up.",
        samples: |metrics| vec![(None, metrics.lookups as f64)],
    },
    Family {
        name: "enrich_lookups_saved_total",
        kind: "counter",
        help: "Users written without a lookup of their own: sharing a key looked up, or from a result kept \
               by an earlier lookup of their key.",
        samples: |metrics| vec![(None, metrics.lookups_saved as f64)],
    },
    Family {
        name: "enrich_lookup_outcomes_total",
        kind: "counter",
        help: "Users by how their lookup ended; users sharing an email share one lookup, and failed \
               includes users whose write failed.",
        samples: |metrics| {
            let outcomes = OUTCOMES.iter().zip(metrics.outcomes);
            outcomes.map(|(outcome, users)| (Some(("outcome", *outcome)), users as f64)).collect()
        },
    },
    Family {
        name: "enrich_users_written_total",
        kind: "counter",
        help: "Users whose properties the sink acknowledged.",
        samples: |metrics| vec![(None, metrics.written as f64)],
    },
    Family {
        name: "enrich_last_run_duration_seconds",
        kind: "gauge",
        help: "How long the last run took.",
        samples: |metrics| metrics.last_run.iter().map(|run| (None, run.seconds)).collect(),
    },
    Family {
        name: "enrich_last_run_finished_timestamp_seconds",
        kind: "gauge",
        help: "When the last run finished, in seconds since the Unix epoch.",
        samples: |metrics| metrics.last_run.iter().map(|run| (None, run.finished_at)).collect(),
    },
    Family {
        name: "enrich_connection_status",
        kind: "gauge",
        help: "The connection's status: 1 for the current one (`enrich status` tells an error's reason).",
        samples: |metrics| {
            let Some(current) = metrics.status.as_ref().map(status_label) else { return Vec::new() };
            STATUSES
                .iter()
                .map(|status| (Some(("status", *status)), f64::from(u8::from(*status == current))))
                .collect()
        },
    },
];

/// Serves `/metrics` and `/health` until `stop`.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(exposition))
        .route("/health", get(|| async { "ok" }))
        .with_state(metrics);
    axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await
}

async fn exposition(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], metrics.render())
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};
    use enrich_core::RunKind;

    use super::*;

    fn report(found: u64, status: ConnectionStatus) -> SyncReport {
        let finished_at = Utc::now();
        SyncReport {
            run: RunRecord {
                kind: RunKind::Scheduled,
                started_at: finished_at - Duration::milliseconds(1500),
                finished_at,
                seen_since: finished_at,
                summary: RunSummary {
                    lookups: found + 1,
                    lookups_saved: found * 10,
                    found,
                    not_found: 1,
                    written: found + 1,
                    ..Default::default()
                },
                error: None,
                stopped_early: false,
            },
            status,
        }
    }

    #[test]
    fn runs_add_up_and_the_status_is_the_latest() {
        let metrics = Metrics::new(["main", "idle"]);
        metrics.observe("main", &ConnectionState::default());
        metrics.record("main", &report(3, ConnectionStatus::Connected));
        metrics.record("main", &report(2, ConnectionStatus::Error("over quota".into())));
        let text = metrics.render();
        for line in [
            "enrich_runs_total{connection=\"main\"} 2",
            "enrich_runs_total{connection=\"idle\"} 0",
            "enrich_lookups_total{connection=\"main\"} 7",
            "enrich_lookups_saved_total{connection=\"main\"} 50",
            "enrich_lookup_outcomes_total{connection=\"main\",outcome=\"found\"} 5",
            "enrich_lookup_outcomes_total{connection=\"main\",outcome=\"not_found\"} 2",
            "enrich_lookup_outcomes_total{connection=\"main\",outcome=\"failed\"} 0",
            "enrich_users_written_total{connection=\"main\"} 7",
            "enrich_last_run_duration_seconds{connection=\"main\"} 1.5",
            "enrich_connection_status{connection=\"main\",status=\"connected\"} 0",
            "enrich_connection_status{connection=\"main\",status=\"error\"} 1",
        ] {
            assert!(text.lines().any(|sample| sample == line), "no `{line}` in:\n{text}");
        }
        assert!(!text.contains("status{connection=\"idle\""), "a status only once it is known:\n{text}");
        assert!(!text.contains("duration_seconds{connection=\"idle\""), "no run yet:\n{text}");
    }
}
