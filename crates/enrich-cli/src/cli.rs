//! The command line, as clap sees it. The help text is the manual: keep it exact.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Keeps analytics users enriched with company and person data.
///
/// enrich reads the users of an analytics tool (a CSV export of Heap users), looks each one with an
/// email up in Clearbit's Enrichment API, and writes every Person and Company attribute back as a
/// human-readable Heap user property (`Company Industry`, `Company Employees Range`, `Person Job
/// Title`…) plus `Clearbit: Date Last Checked`. Connections are declared in a YAML file.
///
/// Exit status: 0 when the command did all it was asked; 1 when the config is invalid, a connection
/// stopped on a fatal error, or users failed (they are due again at the next run); 2 on a usage error.
#[derive(Debug, Parser)]
#[command(name = "enrich", version, max_term_width = 100)]
pub struct Cli {
    /// The connection file.
    #[arg(short, long, global = true, env = "ENRICH_CONFIG", default_value = "enrich.yaml")]
    pub config: PathBuf,

    /// Log more (-v: debug, -vv: trace). ENRICH_LOG takes tracing filter directives instead.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Log only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the connection file without touching the network; report every problem at once.
    ///
    /// Each problem names the file, the connection and the field. Unset ${VAR} references,
    /// unknown fields or types, publishable Clearbit keys, non-numeric Heap app ids and missing
    /// user files are all reported. Exits 1 if there is any problem.
    Validate,

    /// Run one sync of a connection now.
    ///
    /// Users seen within the backfill window (7 days by default) whose last check is older than
    /// the refresh interval (24 hours by default) are looked up, once per distinct email; found
    /// and not-found results are written to the sink in batches; the state folder remembers each
    /// user only once the sink acknowledged it. Ends with a summary of the run.
    Sync {
        /// The connection's name in the config file.
        name: String,
    },

    /// Show each connection's status and its last run.
    ///
    /// `Waiting For Data` until Clearbit properties first reached the sink, then `Connected`;
    /// `Error: <reason>` after a run stopped on a fatal error, until the next good run.
    Status {
        /// Only this connection.
        name: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },

    /// Show how a source response maps to properties, without any network or config.
    Map {
        #[command(subcommand)]
        source: MapSource,
    },
}

#[derive(Debug, Subcommand)]
pub enum MapSource {
    /// Map one Clearbit combined response (`{"person": …, "company": …}`) to the Heap properties it
    /// becomes, printed as JSON. `Clearbit: Date Last Checked` is left out: it is the time of the check.
    Clearbit {
        /// The response file; standard input when absent or `-`.
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}
