//! `enrich-emulator`: serves the Clearbit and Heap look-alikes on loopback until Ctrl-C or SIGTERM, for the
//! demo and for trying enrich by hand. Prints `clearbit=URL heap=URL` once both servers listen.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use clap::builder::RangedU64ValueParser;
use enrich_emulator::{Emulator, EmulatorConfig, Faults};

/// Loopback servers that behave like Clearbit's Enrichment API and Heap's Add User Properties API.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Where the Clearbit look-alike listens (loopback only; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    clearbit_addr: SocketAddr,
    /// Where the Heap look-alike listens (loopback only; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    heap_addr: SocketAddr,
    /// The secret key Clearbit accepts.
    #[arg(long, default_value_t = EmulatorConfig::default().clearbit_key)]
    key: String,
    /// The app_id of the emulated Heap environment.
    #[arg(long, default_value_t = EmulatorConfig::default().heap_app_id)]
    app_id: String,
    /// Answer requests for another app_id with 200 and drop them, as Heap has been reported to do,
    /// instead of refusing them with 400 Invalid app_id.
    #[arg(long)]
    accept_unknown_app_ids: bool,
    /// The Clearbit API version answers take without an API-Version header (older ones lack fields
    /// and get X-API-Warn).
    #[arg(long, value_name = "YYYY-MM-DD", default_value_t = EmulatorConfig::default().clearbit_account_api_version)]
    account_api_version: String,
    /// Milliseconds added before every Clearbit answer.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Up to this many more milliseconds, drawn uniformly for each Clearbit answer.
    #[arg(long, default_value_t = 0)]
    latency_jitter_ms: u64,
    /// Share of generated emails Clearbit does not know (answers 404), from 0 to 1.
    #[arg(long, default_value_t = EmulatorConfig::default().not_found_share, value_parser = parse_share)]
    not_found_share: f64,
    /// Billed lookups after which Clearbit answers 402.
    #[arg(long)]
    quota: Option<u64>,
    /// Clearbit lookups allowed per minute, reported in X-RateLimit-Limit.
    #[arg(long, default_value_t = EmulatorConfig::default().rate_limit_per_minute)]
    rate_limit_per_minute: u32,
    /// Answer Clearbit lookups beyond the allowance of the current Unix minute with 429.
    #[arg(long)]
    enforce_rate_limit: bool,
    /// Answer a Clearbit lookup arriving while this many are being answered with 400 rate_limit (Clearbit
    /// documents 5).
    #[arg(long, value_name = "N", value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    max_concurrent: Option<usize>,
    /// Faults injected into Clearbit lookups, as NAME=SHARE pairs separated by commas, each share from 0
    /// to 1 and all adding up to at most 1: 429, 5xx (500, 502, 503 in turn), queued (202 to an email's
    /// first ask), slow (held slow-delay-ms longer, default 2000), drop (connection cut), malformed
    /// (a 200 that is not JSON). E.g. 429=0.2,5xx=0.1,slow=0.1,slow-delay-ms=500
    #[arg(long, alias = "faults", value_name = "FAULTS")]
    clearbit_faults: Option<Faults>,
    /// Faults injected into Heap requests, as for --clearbit-faults but without queued. Faulted requests
    /// are not recorded, except slow ones.
    #[arg(long, value_name = "FAULTS")]
    heap_faults: Option<Faults>,
    /// Acknowledge Heap writes without keeping them (no request log, no users' properties): for
    /// benchmarks of millions of users, whose writes would otherwise fill the memory.
    #[arg(long)]
    heap_forgets_writes: bool,
    /// Seeds which requests get faults and how much jitter: a rerun with the same seed and the same
    /// requests in the same order meets the same faults.
    #[arg(long, default_value_t = EmulatorConfig::default().seed)]
    seed: u64,
}

fn parse_share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(format!("{text:?} is not a share between 0 and 1")),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = EmulatorConfig {
        clearbit_key: args.key,
        heap_app_id: args.app_id,
        heap_accepts_unknown_app_ids: args.accept_unknown_app_ids,
        clearbit_account_api_version: args.account_api_version,
        latency: Duration::from_millis(args.latency_ms),
        latency_jitter: Duration::from_millis(args.latency_jitter_ms),
        not_found_share: args.not_found_share,
        quota: args.quota,
        rate_limit_per_minute: args.rate_limit_per_minute,
        enforce_rate_limit: args.enforce_rate_limit,
        max_concurrent_requests: args.max_concurrent,
        clearbit_faults: args.clearbit_faults.unwrap_or_default(),
        heap_faults: args.heap_faults.unwrap_or_default(),
        seed: args.seed,
        heap_keeps_writes: !args.heap_forgets_writes,
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start_on(config, args.clearbit_addr, args.heap_addr)
        .await
        .context("cannot start the emulator")?;
    {
        // Whoever started us reads the URLs from this line, so it must not sit in a buffer.
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "clearbit={} heap={}", emulator.clearbit_url(), emulator.heap_url())?;
        stdout.flush()?;
    }
    stop_requested().await.context("cannot listen for Ctrl-C or SIGTERM")?;
    emulator.shutdown().await;
    Ok(())
}

async fn stop_requested() -> io::Result<()> {
    #[cfg(unix)]
    {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted,
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await
}
