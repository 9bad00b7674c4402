//! The command line, as clap sees it. The help text is the manual: keep it exact.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::{Arg, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use clap_complete::ArgValueCandidates;

use crate::complete::connection_names;

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
    #[arg(
        short,
        long,
        global = true,
        help_heading = "Global options",
        env = "ENRICH_CONFIG",
        default_value = "enrich.yaml"
    )]
    pub config: PathBuf,

    /// Log more (-v: debug, -vv: trace). ENRICH_LOG (or RUST_LOG) takes tracing filter directives instead.
    #[arg(short, long, global = true, help_heading = "Global options", action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Log only errors.
    #[arg(short, long, global = true, help_heading = "Global options", conflicts_with = "verbose")]
    pub quiet: bool,

    /// Show emails and IP addresses in logs in full (masked as a***@example.com by default).
    #[arg(long, global = true, help_heading = "Global options")]
    pub log_pii: bool,

    /// How log lines on standard error look: `human`, one line of text per event, or `json`, one
    /// JSON object per event (`timestamp`, `level`, `message` and the event's fields), for log
    /// collectors. Results on standard output, and the `error:` lines a command ends with, stay text.
    #[arg(long, global = true, help_heading = "Global options", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a connection file from a few questions, then validate and check it.
    ///
    /// Asks for the provider and the environment variable holding its key, the Heap app id and
    /// region, the roster file (its columns guessed from its header), then the provider's own
    /// questions (each person or companies alone by work domain; for Clearbit, whether to skip
    /// free-mail domains). Answers are read from standard input a line at a time, so they may be
    /// piped; an empty answer takes the default in brackets, and so do the first letters of an
    /// answer. Writes the file
    /// `--config` names (enrich.yaml), never over an existing one without `--force`.
    #[command(after_help = "Examples:\n  enrich init\n  enrich -c prod.yaml init --force < answers.txt")]
    Init {
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
        /// The provider's APIs at another address than their own: a proxy, or a stand-in such as the
        /// emulator (written as every address of the source: `base_url`, and Clearbit's
        /// `company_base_url`).
        #[arg(long, value_name = "URL")]
        source_url: Option<String>,
        /// Heap's API at another address (written as the sink's `base_url`, in place of the region).
        #[arg(long, value_name = "URL")]
        sink_url: Option<String>,
    },

    /// Check the connection file without touching the network; report every problem at once.
    ///
    /// Each problem names the file, the connection and the field. Unset ${VAR} references,
    /// unknown fields or types, publishable Clearbit keys, non-numeric Heap app ids and missing
    /// user files are all reported. Exits 1 if there is any problem.
    Validate,

    /// Prove a connection works before any sync: keys, destination, roster.
    ///
    /// Checks the config; looks up one fixed address with the source's key (billed as one lookup,
    /// and said so); sends the sink an empty write to prove it accepts the app id; reads the roster
    /// and counts the users in the backfill window and those with an email. One line per part,
    /// ✓ or ✗ with what to do; exits 1 if any part fails.
    #[command(
        after_help = "Examples:\n  enrich check                 the only connection of enrich.yaml\n  enrich -c prod.yaml check main"
    )]
    Check {
        /// The connection's name in the config file; may be left out when it defines only one.
        #[arg(add = ArgValueCandidates::new(connection_names))]
        name: Option<String>,
    },

    /// Run one sync of a connection now.
    ///
    /// Users seen within the backfill window (7 days by default) whose last check is older than
    /// the refresh interval (24 hours by default) are looked up, once per distinct email; found
    /// and not-found results are written to the sink in batches; the state folder remembers each
    /// user only once the sink acknowledged it. Ends with a summary of the run.
    #[command(
        after_help = "Examples:\n  enrich sync --dry-run        what a sync now would cost, spending nothing\n  enrich sync main"
    )]
    Sync {
        /// The connection's name in the config file; may be left out when it defines only one.
        #[arg(add = ArgValueCandidates::new(connection_names))]
        name: Option<String>,
        /// Only say what the sync would do and cost (users due, distinct lookup keys, billed
        /// lookups, time at the configured rate): nothing is looked up or written.
        #[arg(long)]
        dry_run: bool,
    },

    /// Enrich users seen longer ago than the backfill window, once.
    ///
    /// Runs one sync over users seen since the given time instead of the connection's `backfill`
    /// window; users checked within the refresh interval are still not looked up again. Recorded in
    /// the run history as a backfill. On a terminal, a backfill of more lookups than
    /// `--confirm-over` shows what it costs and asks first.
    #[command(
        after_help = "Examples:\n  enrich backfill --since 90d --dry-run\n  enrich backfill main --since 2026-01-01 --yes"
    )]
    Backfill {
        /// The connection's name in the config file; may be left out when it defines only one.
        #[arg(add = ArgValueCandidates::new(connection_names))]
        name: Option<String>,
        /// How far back: a duration (`30d`, `12w`) or a date (`2026-01-01`, `2026-01-01T00:00:00Z`).
        #[arg(long, value_parser = parse_since)]
        since: chrono::DateTime<chrono::Utc>,
        /// Only say what the backfill would do and cost: nothing is looked up or written.
        #[arg(long)]
        dry_run: bool,
        /// Ask on a terminal before a backfill of more billed lookups than this.
        #[arg(long, value_name = "LOOKUPS", env = "ENRICH_CONFIRM_OVER", default_value_t = 1000)]
        confirm_over: u64,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },

    /// Keep every connection (or the named ones) on its schedule until stopped.
    ///
    /// A connection whose last run is older than its `schedule.every` runs at once; then each runs
    /// every `schedule.every`, never twice at the same time. The log says when each next run is due.
    /// Ctrl-C or SIGTERM stops gracefully: no new lookup starts, lookups in flight finish (or are
    /// abandoned unrecorded after 10 s), fetched results are written, state is saved, exit 0.
    /// Only one `enrich run` works on a state folder at a time; any number share a PostgreSQL state,
    /// each connection running on one of them at a time (a busy one is tried again every 5 s). A run
    /// that fails, or a state that cannot be read, is tried again a minute later.
    ///
    /// With `--metrics`, serves Prometheus metrics on http://ADDRESS/metrics (`/health` answers
    /// `200 ok`), per connection: counters of the runs since it started (runs, lookups, users by the
    /// outcome of their lookup, users written), and gauges of the last run's duration and end and of
    /// the status (1 for the current one). The log says the address it listens on (port 0 picks a
    /// free one).
    Run {
        /// Only these connections.
        #[arg(add = ArgValueCandidates::new(connection_names))]
        names: Vec<String>,
        /// Serve Prometheus metrics on this address, such as 127.0.0.1:9464.
        #[arg(long, value_name = "ADDRESS")]
        metrics: Option<SocketAddr>,
        /// Allow a `--metrics` address other than loopback. The endpoint has no authentication and
        /// no TLS: anyone who reaches it reads connection names, statuses and figures.
        #[arg(long, requires = "metrics")]
        metrics_public: bool,
    },

    /// Show each connection's status and its last run.
    ///
    /// `Waiting For Data` until Clearbit properties first reached the sink, then `Connected`;
    /// `Error: <reason>` after a run stopped on a fatal error or on its state (damaged, disk full),
    /// until the next good run, with what to do next. Readable while a sync runs, which it shows as
    /// "syncing since …". Exits 1 when a connection shown is in `Error`, for monitoring.
    #[command(
        after_help = "Examples:\n  enrich status                every connection; exit 1 if one is in Error\n  enrich status main --history --format json"
    )]
    Status {
        /// Only this connection.
        #[arg(add = ArgValueCandidates::new(connection_names))]
        name: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// List every run kept (the latest 100) instead of the last one.
        #[arg(long)]
        history: bool,
    },

    /// Show how a connection's users break down: match rate, industry, company size, technologies.
    ///
    /// Counts the connection's state, not the sink: each user by the values last written for the
    /// properties the source reports on. The match rate (`Clearbit: Match`) counts the users whose
    /// last check completed, found or not found; users never checked, pending, invalid or failed are
    /// not counted. The other breakdowns count found users: every value of `Company Industry` and
    /// `Company Employees Range`, and the 15 most common entries of a list such as `Company Tech`,
    /// where a user counts once for each entry. Users last checked by a version of enrich that kept
    /// no report values count as `(no value)` until their next check. Then the view over time: each
    /// run of the history (the latest 100) with the users it enriched and its match rate.
    ///
    /// The state is locked while the connection syncs (`enrich sync`, `backfill`, or a run of `enrich
    /// run`): then the report fails with "already syncing"; try again once the run has finished.
    Report {
        /// The connection's name in the config file; may be left out when it defines only one.
        #[arg(add = ArgValueCandidates::new(connection_names))]
        name: Option<String>,
        /// `table`: aligned tables; `json`: one document; `csv`: one row per value
        /// (segment,value,users,share, share from 0 to 1, an empty value for users without one),
        /// then one per run (`Over time`, its start, the users it enriched, its match rate).
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
        /// Also write the report as a self-contained HTML page with a bar chart per breakdown and a
        /// chart of the runs over time (no scripts, fonts or images from the network).
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },

    /// List every property a connection writes, with what it means.
    ///
    /// The source's catalogue as this connection's `properties:` settings select and rename it, and
    /// the `Clearbit:` properties about each check. Attributes Clearbit returned that the catalogue
    /// does not know yet are written under a name derived from their path, and listed as derived once
    /// a run has seen them.
    Properties {
        /// The connection's name in the config file; may be left out when it defines only one.
        #[arg(add = ArgValueCandidates::new(connection_names))]
        name: Option<String>,
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },

    /// Forget a person: remove them from a connection's state and never look their email up again.
    ///
    /// For privacy requests. Removes every user of the connection looked up by this email, and any
    /// result fetched for them but not yet written, rewriting the state database so that no file of
    /// the state folder holds them any more; later runs skip the email (a hash of it is kept in the
    /// database and in connection.json). Prints the identities removed and how to delete the users on
    /// Heap's side, which enrich does not do for you. An IP address forgets the users a Reveal
    /// connection looked up by it, and those whose email lookup was given it (Reveal's fallback).
    Forget {
        /// The connection's name in the config file.
        #[arg(add = ArgValueCandidates::new(connection_names))]
        name: String,
        /// The person's email address, or an IP address.
        email: String,
    },

    /// Look after a connection's state: reset it, or move it between state stores.
    State {
        #[command(subcommand)]
        action: StateAction,
    },

    /// Print a shell completion script: `source <(enrich completions bash)` in ~/.bashrc.
    ///
    /// The script asks `enrich` itself what fits where the cursor is (the same as `COMPLETE=bash
    /// enrich`), so subcommands, options and connection names complete; the names come from the
    /// file the line names with -c/--config, else ENRICH_CONFIG, else enrich.yaml. Source it anew
    /// at each shell start (as above) rather than saving it: it fits the binary that printed it.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Print the manual page (roff): `enrich man > enrich.1 && man ./enrich.1`.
    Man,

    /// Show how one answer of a connection's provider maps to properties, without network.
    ///
    /// Reads one answer as the provider's API gives it for one lookup (a Clearbit combined response, a
    /// Clearbit company, a Reveal answer, a People Data Labs person or company: whatever the
    /// connection's source looks up) and prints the properties it becomes, as JSON: named by the
    /// connection's `properties:` selection and fitted to its sink's rules (Heap: text cut below 1024
    /// bytes, lists at whole items). The date of the check is left out: it is the time of a check.
    Map {
        /// The answer's file; standard input when absent or `-`.
        file: Option<PathBuf>,
        /// The connection's name in the config file; may be left out when it defines only one.
        #[arg(long, value_name = "NAME", add = ArgValueCandidates::new(connection_names))]
        connection: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum StateAction {
    /// Start a connection's state over, knowingly: when it is damaged and no backup can be restored.
    ///
    /// Deletes what the connection remembers of its users: when each was last checked, and results
    /// fetched but not yet written. Keeps the run history and the emails forgotten on request, and
    /// clears an `Error` status. Every user is looked up again at the next sync, and each lookup is
    /// paid for. Asks for confirmation on a terminal.
    Reset {
        /// The connection's name in the config file; may be left out when it defines only one.
        #[arg(add = ArgValueCandidates::new(connection_names))]
        name: Option<String>,
        /// Do not ask for confirmation (needed when not on a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Write a connection's whole state (users, pending writes, status, history, forgotten keys) to
    /// a file, one JSON record a line, to import it elsewhere, e.g. from sled into PostgreSQL.
    ///
    /// Opening takes the connection's lock: stop its runs first. The file holds user identities and
    /// fetched properties: it is created readable by its owner only.
    Export {
        /// The connection's name in the config file.
        #[arg(add = ArgValueCandidates::new(connection_names))]
        name: String,
        /// The file to write.
        file: PathBuf,
    },
    /// Load a connection's state from a file `enrich state export` wrote, into the state store of
    /// this config; refuses a connection whose state already holds users.
    Import {
        /// The connection's name in the config file.
        #[arg(add = ArgValueCandidates::new(connection_names))]
        name: String,
        /// The file to read.
        file: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
    Markdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

impl Cli {
    /// The command line as parsed, completed and shown. A subcommand's help leaves the global options
    /// to `enrich --help`: each subcommand holds hidden copies of them, which clap then does not add
    /// again, so that they are still accepted after its name.
    pub fn definition() -> clap::Command {
        let command = Self::command();
        let globals: Vec<Arg> = command.get_arguments().filter(|arg| arg.is_global_set()).cloned().collect();
        command.mut_subcommands(|subcommand| without_globals_in_help(subcommand, &globals))
    }

    /// Parses the command line, exiting with a usage error (status 2) on what clap cannot check alone.
    pub fn parse_checked() -> Self {
        let matches = Self::definition().get_matches();
        let cli = Self::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
        if let Command::Run { metrics: Some(address), metrics_public: false, .. } = &cli.command
            && !address.ip().is_loopback()
        {
            Self::command()
                .error(
                    ErrorKind::ArgumentConflict,
                    format!(
                        "--metrics {address} is not a loopback address; the metrics endpoint has no \
                         authentication, so serving it to other machines takes --metrics-public"
                    ),
                )
                .exit();
        }
        cli
    }
}

/// `subcommand` with the global options hidden from its help (and its subcommands'), and a line
/// saying where they are.
fn without_globals_in_help(subcommand: clap::Command, globals: &[Arg]) -> clap::Command {
    let pointer = "Global options (-c/--config, -v, -q, --log-pii, --log-format): see `enrich --help`.";
    let after_help = match subcommand.get_after_help() {
        Some(examples) => format!("{examples}\n\n{pointer}"),
        None => pointer.to_owned(),
    };
    let hidden = globals.iter().map(|global| global.clone().hide(true));
    subcommand
        .args(hidden)
        .after_help(after_help)
        .mut_subcommands(|nested| without_globals_in_help(nested, globals))
}

/// `30d` (that long ago) or a date or time: the start of a backfill window.
fn parse_since(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(duration) = humantime_serde::re::humantime::parse_duration(text) {
        let ago = chrono::Duration::from_std(duration).map_err(|_| format!("{text} is too long ago"))?;
        return chrono::Utc::now().checked_sub_signed(ago).ok_or_else(|| format!("{text} is too long ago"));
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    chrono::DateTime::parse_from_rfc3339(text).map(|time| time.to_utc()).map_err(|_| {
        format!("expected a duration such as 30d or 12w, or a date such as 2026-01-01, got {text:?}")
    })
}
