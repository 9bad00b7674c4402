//! How a sync shows it is advancing: a progress bar on a terminal, a log line every few seconds
//! otherwise (a log file or CI would only fill with bar redraws).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use enrich_core::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Set when logs are JSON: a bar drawn between JSON lines would break them.
static LOG_LINES_ONLY: AtomicBool = AtomicBool::new(false);

/// Shows progress as log lines even on a terminal.
pub fn log_lines_only() {
    LOG_LINES_ONLY.store(true, Ordering::Relaxed);
}

/// The progress display for a sync in the foreground.
pub fn for_stderr() -> std::sync::Arc<dyn Progress> {
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) && !LOG_LINES_ONLY.load(Ordering::Relaxed) {
        std::sync::Arc::new(Bar::new())
    } else {
        std::sync::Arc::new(LogLines::default())
    }
}

/// An indicatif bar of users looked up, with rate and ETA.
#[derive(Debug)]
struct Bar {
    bar: ProgressBar,
    written: Mutex<u64>,
}

impl Bar {
    fn new() -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Self { bar, written: Mutex::new(0) }
    }
}

impl Progress for Bar {
    fn read(&self, rows: u64) {
        self.bar.set_message(format!("reading the roster: {rows} rows"));
    }

    fn planned(&self, lookups: u64, users: u64) {
        self.bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{bar:30}] {pos}/{len} users looked up · {per_sec} · ETA {eta} · {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        self.bar.set_length(users);
        self.bar.set_message(format!("{lookups} lookups"));
    }

    fn looked_up(&self, users: u64) {
        self.bar.inc(users);
    }

    fn written(&self, users: u64) {
        let mut written = self.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *written += users;
        self.bar.set_message(format!("{written} users written"));
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// How often a sync without a terminal says how far it got.
const LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct LogLines {
    state: Mutex<LogState>,
}

#[derive(Debug, Default)]
struct LogState {
    planned_users: u64,
    looked_up: u64,
    written: u64,
    started: Option<Instant>,
    last_line: Option<Instant>,
}

impl LogLines {
    fn update(&self, change: impl FnOnce(&mut LogState)) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        change(&mut state);
        let now = Instant::now();
        let started = *state.started.get_or_insert(now);
        if state.last_line.is_some_and(|last| now - last < LOG_EVERY) || state.planned_users == 0 {
            return;
        }
        state.last_line = Some(now);
        let elapsed = (now - started).as_secs_f64().max(0.001);
        let per_second = state.looked_up as f64 / elapsed;
        // Users, not lookups: users sharing an email are served by one lookup.
        tracing::info!(
            users_looked_up = state.looked_up,
            users_due = state.planned_users,
            users_written = state.written,
            users_per_second = format!("{per_second:.1}"),
            eta = eta(state.planned_users.saturating_sub(state.looked_up), per_second),
            "progress"
        );
    }
}

impl Progress for LogLines {
    fn planned(&self, _lookups: u64, users: u64) {
        self.update(|state| {
            state.planned_users = users;
            state.last_line = Some(Instant::now());
        });
    }

    fn looked_up(&self, users: u64) {
        self.update(|state| state.looked_up += users);
    }

    fn written(&self, users: u64) {
        self.update(|state| state.written += users);
    }
}

/// The time left for `remaining` users at `per_second`, as a person reads it; unknown before the
/// first lookup finished.
fn eta(remaining: u64, per_second: f64) -> String {
    if per_second <= 0.0 {
        return "unknown".to_owned();
    }
    let seconds = (remaining as f64 / per_second).ceil();
    crate::render::rough_duration(Duration::from_secs_f64(seconds.min(u32::MAX.into())))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_eta_follows_the_pace_so_far() {
        assert_eq!(super::eta(600, 10.0), "1 min");
        assert_eq!(super::eta(5, 10.0), "1 s");
        assert_eq!(super::eta(5, 0.0), "unknown");
    }
}
