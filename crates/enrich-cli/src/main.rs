//! The `enrich` command: loads YAML connection definitions, builds them from the connector registry
//! and runs them with the engine of enrich-core. This is the only crate that knows every connector.

mod cli;
mod commands;
mod complete;
mod config;
mod metrics;
mod progress;
mod registry;
mod render;
mod report;
mod store;

use std::process::ExitCode;

use enrich_core::redact;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, LogFormat};

/// jemalloc rather than glibc's allocator, whose per-thread arenas kept what each thread freed: a
/// long sync held over twice the memory it used (`cargo xtask bench --only backlog`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    // Whatever enrich creates (the state, a report) is its owner's only, including the files sled
    // creates on its own.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    complete::answer_if_asked();
    let cli = Cli::parse_checked();
    init_logging(&cli);
    enrich_core::events::log_pii(cli.log_pii);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        // The reader went away (`enrich completions zsh | head`): nothing is left to tell it.
        Err(error)
            if error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|error| error.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {}", redact::text(&format!("{error:#}")));
            ExitCode::FAILURE
        }
    }
}

/// Logs go to standard error, so that standard output carries only the command's result. `-q` wins
/// over `ENRICH_LOG` and `RUST_LOG`: only errors are logged.
fn init_logging(cli: &Cli) {
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    // The connectors' own crates log at the level asked too, whichever are registered.
    let mut default = format!("warn,enrich={level},enrich_core={level}");
    for connector in registry::connector_crates() {
        default.push_str(&format!(",{connector}={level}"));
    }
    let filter = if cli.quiet {
        EnvFilter::new("error")
    } else {
        EnvFilter::try_from_env("ENRICH_LOG")
            .or_else(|_| EnvFilter::try_from_env("RUST_LOG"))
            .unwrap_or_else(|_| EnvFilter::new(default))
    };
    let logs =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(|| RedactedStderr).with_target(false);
    match cli.log_format {
        LogFormat::Human => logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
        // The event's fields at the top level, beside `message`, as log collectors index them.
        LogFormat::Json => {
            progress::log_lines_only();
            logs.json().flatten_event(true).init()
        }
    }
}

/// Standard error for log lines, each passed through the redaction point: whatever crate logs it (an
/// HTTP client at trace level included), no secret and no unmasked email reaches the terminal.
struct RedactedStderr;

impl std::io::Write for RedactedStderr {
    /// The formatter hands over one whole event at a time.
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(line);
        std::io::stderr().write_all(redact::text(&text).as_bytes())?;
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
