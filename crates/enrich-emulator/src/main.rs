//! `enrich-emulator`: serves the Clearbit and Heap look-alikes on loopback until Ctrl-C or SIGTERM, for the
//! demo and for trying enrich by hand. Prints `clearbit=URL heap=URL` once both servers listen.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use enrich_emulator::{Emulator, EmulatorConfig};

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
    /// The only app_id Heap accepts.
    #[arg(long, default_value_t = EmulatorConfig::default().heap_app_id)]
    app_id: String,
    /// Milliseconds added before every Clearbit answer.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Share of generated emails Clearbit does not know (answers 404), from 0 to 1.
    #[arg(long, default_value_t = EmulatorConfig::default().not_found_share, value_parser = parse_share)]
    not_found_share: f64,
    /// Billed lookups after which Clearbit answers 402.
    #[arg(long)]
    quota: Option<u64>,
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
        latency: Duration::from_millis(args.latency_ms),
        not_found_share: args.not_found_share,
        quota: args.quota,
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
