//! What the end-to-end tests share: a workspace folder with a roster and a config file, the emulator,
//! and a way to run the real `enrich` binary in it.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{DateTime, Duration, Utc};
use enrich_emulator::{Emulator, EmulatorConfig};

pub const KEY: &str = "sk_e2e_5f1d2c3b4a5968778695a4b3c2d1e0f9";
pub const APP_ID: &str = "1234567890";

/// The `users:` section of a roster in `users.csv` with its emails in column `email`.
pub const CSV_USERS: &str =
    "    users:\n      type: csv\n      path: users.csv\n      email_property: email\n";

/// One roster row.
pub struct Row {
    pub identity: String,
    pub email: String,
    pub last_seen: DateTime<Utc>,
}

pub fn row(identity: &str, email: &str, days_ago: i64) -> Row {
    Row { identity: identity.into(), email: email.into(), last_seen: Utc::now() - Duration::days(days_ago) }
}

/// A folder with `enrich.yaml`, `users.csv` and the state folder, wired to an emulator.
pub struct Workspace {
    pub folder: tempfile::TempDir,
    pub emulator: Emulator,
}

impl Workspace {
    pub async fn start(config: EmulatorConfig) -> Self {
        // Unless a test enforces a limit, the emulator announces a budget the tests never exhaust, so
        // that the source (which obeys the announced budget) runs at full speed.
        let rate_limit_per_minute =
            if config.enforce_rate_limit { config.rate_limit_per_minute } else { 1_000_000 };
        let config = EmulatorConfig {
            clearbit_key: KEY.into(),
            heap_app_id: APP_ID.into(),
            rate_limit_per_minute,
            ..config
        };
        let emulator = Emulator::start(config).await.expect("the emulator starts");
        let workspace = Self { folder: tempfile::tempdir().unwrap(), emulator };
        workspace.write_config("");
        workspace
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.folder.path().join(name)
    }

    /// Writes the config of connection `main`, with `extra_source` lines added under `source:`.
    pub fn write_config(&self, extra_source: &str) {
        self.write_config_with(extra_source, "");
    }

    /// Writes the config of connection `main` with extra `source:` lines and extra connection sections.
    pub fn write_config_with(&self, extra_source: &str, extra_sections: &str) {
        self.write_config_of(extra_source, CSV_USERS, extra_sections);
    }

    /// Writes the config of connection `main` with the given `users:` section.
    pub fn write_config_of(&self, extra_source: &str, users: &str, extra_sections: &str) {
        let source = format!(
            "      type: clearbit
      api_key: ${{CLEARBIT_API_KEY}}
      base_url: {clearbit}
      retry_delay: 5ms
      pending_delay: 5ms
      requests_per_minute: 1000000
{extra_source}",
            clearbit = self.emulator.clearbit_url(),
        );
        self.write_config_sections(&source, users, extra_sections);
    }

    /// Writes the config of connection `main` with the given `source:` fields and `users:` section,
    /// writing to the emulated Heap.
    pub fn write_config_sections(&self, source: &str, users: &str, extra_sections: &str) {
        let config = format!(
            "connections:
  main:
    source:
{source}
    sink:
      type: heap
      app_id: \"{APP_ID}\"
      base_url: {heap}
      retry_delay: 5ms
      requests_per_second: 1000
{users}{extra_sections}",
            heap = self.emulator.heap_url(),
        );
        std::fs::write(self.path("enrich.yaml"), config).unwrap();
    }

    pub fn write_roster(&self, rows: &[Row]) {
        let mut csv = String::from("identity,last_seen,email,plan\n");
        for row in rows {
            let _ = writeln!(csv, "{},{},{},pro", row.identity, row.last_seen.to_rfc3339(), row.email);
        }
        std::fs::write(self.path("users.csv"), csv).unwrap();
    }

    /// Runs `enrich ARGS` in the folder with the key in the environment.
    pub async fn enrich(&self, args: &[&str]) -> Run {
        self.enrich_with(args, KEY, None).await
    }

    /// The command `enrich ARGS` in the folder, with the key in the environment, not yet started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_enrich"));
        command
            .args(args)
            .current_dir(self.folder.path())
            .env("CLEARBIT_API_KEY", KEY)
            .env_remove("ENRICH_CONFIG")
            .env_remove("ENRICH_LOG");
        command
    }

    /// Runs `enrich ARGS` with another key, or with `ENRICH_LOG` set to the given filter.
    pub async fn enrich_with(&self, args: &[&str], key: &str, log: Option<&str>) -> Run {
        let mut command = self.command(args);
        command.env("CLEARBIT_API_KEY", key);
        if let Some(filter) = log {
            command.env("ENRICH_LOG", filter);
        }
        let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap();
        Run::from(output)
    }

    /// `enrich ARGS` on a terminal (util-linux's `script` gives it one), answering `answer` to its
    /// question; standard error is merged into standard output by the terminal.
    pub async fn on_a_terminal(&self, args: &str, answer: &str) -> Run {
        use std::io::Write;
        use std::process::Stdio;

        let command_line = format!("{} {args}", env!("CARGO_BIN_EXE_enrich"));
        let mut command = Command::new("script");
        command
            .args(["-qec", &command_line, "/dev/null"])
            .current_dir(self.folder.path())
            .env("CLEARBIT_API_KEY", KEY)
            .env_remove("ENRICH_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let answer = format!("{answer}\n");
        let output = tokio::task::spawn_blocking(move || {
            let mut child =
                command.spawn().expect("util-linux's `script` runs a command on a terminal: install it");
            child.stdin.take().unwrap().write_all(answer.as_bytes()).unwrap();
            child.wait_with_output().unwrap()
        });
        Run::from(output.await.unwrap())
    }

    /// `enrich STATUS_ARGS` repeated until it says "syncing" while `sync` runs; fails if the sync ends
    /// first.
    pub async fn status_while_syncing(&self, sync: &mut std::process::Child, status_args: &[&str]) -> Run {
        loop {
            let status = self.enrich(status_args).await;
            if status.stdout.contains("syncing") {
                return status;
            }
            assert!(sync.try_wait().unwrap().is_none(), "the sync ended before status saw it: {status}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Every file of the state folder, concatenated, to search for what must never be stored.
    pub fn state_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        collect_files(&self.path(".enrich"), &mut bytes);
        bytes
    }
}

fn collect_files(folder: &Path, bytes: &mut Vec<u8>) {
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_files(&path, bytes);
        } else {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
}

/// What one run of the binary printed.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn success(&self) -> &Self {
        assert_eq!(self.code, Some(0), "enrich failed:\n{self}");
        self
    }

    pub fn failure(&self) -> &Self {
        assert_eq!(self.code, Some(1), "enrich should have failed:\n{self}");
        self
    }

    /// The figure a sync summary shows for `label`.
    pub fn figure(&self, label: &str) -> u64 {
        self.stdout
            .lines()
            .find_map(|line| {
                let line = line.trim();
                // `found  11 users`: the value, then what it counts.
                let value = line.strip_prefix(label)?.split_whitespace().next()?;
                value.parse().ok()
            })
            .unwrap_or_else(|| panic!("no `{label}` figure in:\n{self}"))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {:?}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// The text with every `YYYY-MM-DD HH:MM:SS UTC` time and every `finished in 1.2s` duration replaced,
/// so terminal output can be snapshot-tested.
pub fn redact_times(text: &str) -> String {
    const TIME: &str = "0000-00-00 00:00:00 UTC";
    let shape_matches = |candidate: &[u8]| {
        candidate.len() == TIME.len()
            && candidate.iter().zip(TIME.as_bytes()).all(|(byte, shape)| match shape {
                b'0' => byte.is_ascii_digit(),
                other => byte == other,
            })
    };
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes.get(at..at + TIME.len()).is_some_and(shape_matches) {
            out.push_str("<time>");
            at += TIME.len();
        } else if let Some(rest) = text[at..].strip_prefix("finished in ") {
            let start = text.len() - rest.len();
            let end = rest.find('s').map_or(text.len(), |seconds| start + seconds + 1);
            out.push_str("finished in <elapsed>");
            at = end;
        } else {
            let next = text[at..].chars().next().expect("in bounds");
            out.push(next);
            at += next.len_utf8();
        }
    }
    out
}

/// Runs SQL on the test server with `psql` (it comes with the server), stopping at the first error;
/// returns what it printed, unaligned (`|` between columns), without headers.
pub fn psql(url: &str, sql: &str) -> Result<String, String> {
    let output = Command::new("psql")
        .args(["--no-psqlrc", "--quiet", "--set", "ON_ERROR_STOP=1", "--no-align", "--tuples-only"])
        .args(["--dbname", url, "--command", sql])
        .output()
        .map_err(|error| format!("psql (it comes with the PostgreSQL server) cannot run: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!("psql failed: {}", String::from_utf8_lossy(&output.stderr)))
    }
}

/// The test PostgreSQL server's URL, or a failure saying how to get one.
pub fn postgres_url() -> String {
    std::env::var("ENRICH_TEST_POSTGRES_URL").expect(
        "ENRICH_TEST_POSTGRES_URL is not set: `cargo xtask test` starts a PostgreSQL server and runs every test \
         (or eval \"$(.ci/postgres start)\" before cargo test)",
    )
}
