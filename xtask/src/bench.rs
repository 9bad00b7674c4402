//! `cargo xtask bench`: how the release-built `enrich` binary performs against the emulator on loopback,
//! measured from outside as a user would see it (wall time, CPU time and peak memory of the process),
//! each figure against its target; plus a criterion benchmark of the mapping, and a plain sequential
//! client side by side. Prints the table and writes it, with a description of the machine, to
//! `BENCHMARKS.md`. Generated files go to `target/bench/`.
//!
//! The emulator runs as its own release-built process (`enrich-emulator`), not inside this debug-built
//! task: unoptimized, it would be what limits the fast runs.

use std::fmt::Write as _;
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use chrono::Utc;
use serde_json::{Map, Value, json};

use crate::{Profile, Target, build, workspace_root};

const KEY: &str = "sk_bench_7a1c3e5f9b2d4f6a8c0e1b3d5f7a9c2e";
const APP_ID: &str = "1234567890";
/// About what Clearbit takes to answer with a record it holds.
const LATENCY: Duration = Duration::from_millis(100);
/// The users of the network-bound benchmarks.
const USERS: usize = 2_000;
/// What the emulator announces when a benchmark is not about the rate limit: more than any run spends,
/// so that the source, which obeys the announced budget, is never held back by it.
const UNLIMITED_PER_MINUTE: u32 = 1_000_000;
/// How often a running `enrich` is sampled for its memory and checked for its exit.
const POLL: Duration = Duration::from_millis(10);

/// Which benchmarks to run, and at what size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// One group alone (`--only NAME`), printed and not written to BENCHMARKS.md.
    pub(crate) only: Option<Group>,
    /// Every size divided by this (`--shrink N`), to check a benchmark works without paying for it.
    pub(crate) shrink: usize,
}

/// The benchmarks `--only` can pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    Mapping,
    Network,
    Overhead,
    Roster,
    Backlog,
    Projection,
}

impl Group {
    pub(crate) const NAMES: &str = "mapping, network, overhead, roster, backlog, projection";

    pub(crate) fn named(name: &str) -> Option<Group> {
        Some(match name {
            "mapping" => Group::Mapping,
            "network" => Group::Network,
            "overhead" => Group::Overhead,
            "roster" => Group::Roster,
            "backlog" => Group::Backlog,
            "projection" => Group::Projection,
            _ => return None,
        })
    }
}

impl Options {
    fn runs(&self, group: Group) -> bool {
        self.only.is_none_or(|only| only == group)
    }

    /// `users` divided by `--shrink`, at least one.
    fn size(&self, users: usize) -> usize {
        (users / self.shrink.max(1)).max(1)
    }
}

pub(crate) async fn bench(options: Options) -> anyhow::Result<()> {
    let started = Instant::now();
    let root = workspace_root();
    // The figures describe a commit: what they measured must be one.
    let full = options.only.is_none() && options.shrink <= 1;
    if full && command_output("git", &["status", "--porcelain"]).is_none_or(|changes| !changes.is_empty()) {
        bail!("the work tree has uncommitted changes (or git cannot tell): commit them, then measure");
    }
    // Before building, so that the load average tells of other work on the machine, not of ours.
    let machine = Machine::describe();
    // Built together, so that cargo compiles their dependencies once: enrich's own code is what a
    // release build of it alone gives, though shared dependencies carry the union of their features.
    let [enrich, emulator, mapping_bench] = build(
        &root,
        Profile::Release,
        [
            Target::ENRICH,
            Target::bin("enrich-emulator", "enrich-emulator"),
            Target::bench("enrich-clearbit", "mapping"),
        ],
    )?;
    let folder = root.join("target/bench");
    if folder.exists() {
        std::fs::remove_dir_all(&folder).context("cannot clear target/bench")?;
    }
    std::fs::create_dir_all(&folder)?;
    let bench = Bench { enrich, emulator, folder, clock_ticks_per_second: clock_ticks_per_second() };

    let mut rows = Vec::new();
    if options.runs(Group::Mapping) {
        rows.extend(mapping(&mapping_bench, &bench.folder)?);
    }
    if options.runs(Group::Network) {
        rows.extend(network_bound(&bench).await?);
    }
    if options.runs(Group::Overhead) {
        rows.push(engine_overhead(&bench, options.size(20_000)).await?);
    }
    if options.runs(Group::Roster) {
        rows.extend(roster_scale(&bench, options.size(1_000_000)).await?);
    }
    if options.runs(Group::Backlog) {
        rows.extend(due_backlog(&bench, options.size(1_000_000)).await?);
    }
    if options.runs(Group::Projection) {
        rows.push(projection(&bench, options.shrink).await?);
    }

    let table = table(&rows);
    let took = started.elapsed();
    println!("\n{table}\ncargo xtask bench took {} (the release build included)", seconds(took));
    if full {
        std::fs::write(root.join("BENCHMARKS.md"), benchmarks_md(&machine, &table, took))?;
        println!("wrote BENCHMARKS.md");
    }
    Ok(())
}

/// The benchmarks that wait on the network. The peer spends over three minutes waiting on answers, as
/// do the benchmarks bound by the rate limit or the latency: they run side by side, each against its
/// own emulator, which keeps the whole task within a few minutes. The benchmarks of CPU time and
/// memory run alone.
async fn network_bound(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let (peer, network_bound) = tokio::join!(sequential_peer(bench), async {
        let mut rows = throughput_at_the_limit(bench).await?;
        rows.push(issue_5_check(bench).await?);
        let latency_bound = latency_bound(bench).await?;
        anyhow::Ok((rows, latency_bound))
    });
    let (mut rows, latency_bound) = network_bound?;
    rows.push(latency_bound.row);
    rows.push(peer_row(peer?, latency_bound.wall));
    Ok(rows)
}

/// The binaries, where the benchmarks keep their files, and how to read CPU times.
#[derive(Debug)]
struct Bench {
    enrich: PathBuf,
    emulator: PathBuf,
    folder: PathBuf,
    /// The unit of the CPU times in `/proc`.
    clock_ticks_per_second: f64,
}

/// How the source paces itself against the emulator.
#[derive(Debug, Clone, Copy)]
struct Pace {
    requests_per_minute: u32,
    max_concurrency: usize,
}

impl Pace {
    const UNLIMITED: Pace = Pace { requests_per_minute: UNLIMITED_PER_MINUTE, max_concurrency: 20 };
}

/// How the emulator behaves for one benchmark.
#[derive(Debug, Clone, Copy)]
struct EmulatorSettings {
    latency: Duration,
    /// Up to this much more latency, drawn for each lookup.
    latency_jitter: Duration,
    /// Announced in `X-RateLimit-*`, which the source obeys.
    rate_limit_per_minute: u32,
    /// Whether lookups over the rate limit are refused with 429.
    enforce_rate_limit: bool,
    /// Lookups arriving while this many are being answered are refused with 400.
    max_concurrent: Option<usize>,
}

impl EmulatorSettings {
    /// Answers after `latency`, announcing a budget no run exhausts.
    fn unlimited(latency: Duration) -> EmulatorSettings {
        EmulatorSettings {
            latency,
            latency_jitter: Duration::ZERO,
            rate_limit_per_minute: UNLIMITED_PER_MINUTE,
            enforce_rate_limit: false,
            max_concurrent: None,
        }
    }

    /// Clearbit's limits, enforced, as the source is told to keep them.
    fn enforcing(pace: Pace, latency: Duration) -> EmulatorSettings {
        EmulatorSettings {
            rate_limit_per_minute: pace.requests_per_minute,
            enforce_rate_limit: true,
            max_concurrent: Some(pace.max_concurrency),
            ..EmulatorSettings::unlimited(latency)
        }
    }
}

/// The `enrich-emulator` binary serving one benchmark; stopped when dropped.
#[derive(Debug)]
struct EmulatorProcess {
    child: Child,
    clearbit_url: String,
    heap_url: String,
}

impl EmulatorProcess {
    fn start(binary: &Path, settings: EmulatorSettings) -> anyhow::Result<EmulatorProcess> {
        let milliseconds = |duration: Duration| duration.as_millis().to_string();
        let mut command = Command::new(binary);
        command
            .args(["--key", KEY, "--app-id", APP_ID])
            // Heap's side of a million users would fill the emulator's memory; no benchmark reads it.
            .arg("--heap-forgets-writes")
            .args(["--latency-ms", &milliseconds(settings.latency)])
            .args(["--latency-jitter-ms", &milliseconds(settings.latency_jitter)])
            .args(["--rate-limit-per-minute", &settings.rate_limit_per_minute.to_string()]);
        if settings.enforce_rate_limit {
            command.arg("--enforce-rate-limit");
        }
        if let Some(max) = settings.max_concurrent {
            command.args(["--max-concurrent", &max.to_string()]);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the emulator")?;
        // Its first line says where it listens: `clearbit=URL heap=URL`.
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            std::io::BufReader::new(stdout).read_line(&mut line)?;
        }
        let url = |service: &str| {
            line.split_whitespace()
                .find_map(|field| field.strip_prefix(service)?.strip_prefix('=').map(str::to_owned))
                .with_context(|| format!("the emulator did not say where it listens: {line:?}"))
        };
        let (clearbit_url, heap_url) = (url("clearbit")?, url("heap")?);
        Ok(EmulatorProcess { child, clearbit_url, heap_url })
    }

    /// How many lookups the emulator refused: with 429 over the rate limit, and with 400 over the
    /// concurrency limit.
    async fn refused(&self) -> anyhow::Result<(usize, usize)> {
        let log: Vec<Value> =
            reqwest::get(format!("{}/_emulator/clearbit/requests", self.clearbit_url)).await?.json().await?;
        let answered = |status: u64| log.iter().filter(|request| request["status"] == status).count();
        Ok((answered(429), answered(400)))
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        // The emulator serves until stopped; it may have failed and exited already.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A folder with `enrich.yaml`, the roster (`users.csv`) and the state, wired to its own emulator.
#[derive(Debug)]
struct BenchConnection {
    folder: PathBuf,
    emulator: EmulatorProcess,
}

/// One `enrich sync`, as seen from outside.
#[derive(Debug)]
struct Measured {
    wall: Duration,
    /// User and system time of the process.
    cpu: Duration,
    /// The most resident memory the process had (`VmHWM`), in bytes, as last sampled.
    peak_rss: u64,
    /// What it printed: the run's figures.
    summary: String,
}

impl Measured {
    /// The figure the summary shows for `label`.
    fn figure(&self, label: &str) -> anyhow::Result<u64> {
        self.summary
            .lines()
            // `written  2000 users`: the value, then what it counts.
            .find_map(|line| line.trim().strip_prefix(label)?.split_whitespace().next()?.parse().ok())
            .with_context(|| format!("no `{label}` figure in:\n{}", self.summary))
    }

    /// Fails unless the run looked up `lookups` emails and wrote every user: a run that did less would
    /// measure something else.
    fn ensure_complete(&self, lookups: usize) -> anyhow::Result<()> {
        let (looked_up, written, failed) =
            (self.figure("lookups")?, self.figure("written")?, self.figure("failed")?);
        ensure!(
            looked_up == lookups as u64 && written == looked_up && failed == 0,
            "the run should have looked up and written {lookups} users:\n{}",
            self.summary
        );
        Ok(())
    }
}

impl Bench {
    /// A connection named `name` under `target/bench`, with its own emulator.
    fn connection(
        &self,
        name: &str,
        settings: EmulatorSettings,
        pace: Pace,
    ) -> anyhow::Result<BenchConnection> {
        self.capped_connection(name, settings, pace, None)
    }

    /// A connection as [`Bench::connection`] makes, with `max_lookups_per_run` when given.
    fn capped_connection(
        &self,
        name: &str,
        settings: EmulatorSettings,
        pace: Pace,
        max_lookups_per_run: Option<usize>,
    ) -> anyhow::Result<BenchConnection> {
        let folder = self.folder.join(name);
        std::fs::create_dir_all(&folder)?;
        let emulator = EmulatorProcess::start(&self.emulator, settings)?;
        let config = format!(
            "state_dir: state
connections:
  bench:
    source:
      type: clearbit
      api_key: ${{CLEARBIT_API_KEY}}
      base_url: {clearbit}
      requests_per_minute: {requests_per_minute}
      max_concurrency: {max_concurrency}
    sink:
      type: heap
      app_id: \"{APP_ID}\"
      base_url: {heap}
    users:
      type: csv
      path: users.csv
      email_property: email
{schedule}",
            schedule = max_lookups_per_run
                .map(|limit| format!("    schedule:\n      max_lookups_per_run: {limit}\n"))
                .unwrap_or_default(),
            clearbit = emulator.clearbit_url,
            heap = emulator.heap_url,
            requests_per_minute = pace.requests_per_minute,
            max_concurrency = pace.max_concurrency,
        );
        std::fs::write(folder.join("enrich.yaml"), config)?;
        Ok(BenchConnection { folder, emulator })
    }

    /// Runs `enrich sync bench` in the connection's folder, its output in `RUN.out` and `RUN.log`
    /// there. A failed run is an error: it measures nothing worth reporting.
    async fn sync(&self, connection: &BenchConnection, run: &str) -> anyhow::Result<Measured> {
        let out = connection.folder.join(format!("{run}.out"));
        let log = connection.folder.join(format!("{run}.log"));
        let mut command = Command::new(&self.enrich);
        command
            .current_dir(&connection.folder)
            .args(["--config", "enrich.yaml", "sync", "bench"])
            .env("CLEARBIT_API_KEY", KEY)
            // The user's logging settings would change what is measured.
            .env_remove("ENRICH_LOG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out)?)
            .stderr(std::fs::File::create(&log)?);
        let ticks = self.clock_ticks_per_second;
        let (status, mut measured) = tokio::task::spawn_blocking(move || measure(command, ticks)).await??;
        measured.summary = std::fs::read_to_string(&out)?;
        if !status.success() {
            bail!("enrich sync failed ({status}); its log is {}:\n{}", log.display(), measured.summary);
        }
        Ok(measured)
    }
}

impl Bench {
    /// What the state holds per user, in bytes: the user lines of `enrich state export`, which are
    /// the stored records in JSON, averaged.
    fn state_bytes_per_user(&self, connection: &BenchConnection) -> anyhow::Result<f64> {
        let file = connection.folder.join("state.jsonl");
        let status = Command::new(&self.enrich)
            .current_dir(&connection.folder)
            .args(["--config", "enrich.yaml", "state", "export", "bench"])
            .arg(&file)
            .env("CLEARBIT_API_KEY", KEY)
            .stdout(Stdio::null())
            .status()
            .context("cannot run enrich state export")?;
        ensure!(status.success(), "enrich state export failed ({status})");
        let export = std::fs::read_to_string(&file)?;
        let users: Vec<usize> =
            export.lines().filter(|line| line.starts_with(r#"{"user":"#)).map(str::len).collect();
        ensure!(!users.is_empty(), "the export holds no user: {}", file.display());
        Ok(users.iter().sum::<usize>() as f64 / users.len() as f64)
    }
}

/// Runs `command` to its end: its wall time, its CPU time and its peak resident memory.
///
/// The CPU time is exact: once a child is reaped, the kernel adds its times to this process' `cutime`
/// and `cstime`, and no other child of ours ends meanwhile. The peak memory is the child's `VmHWM`, a
/// high-water mark, sampled every [`POLL`] until it exits.
fn measure(mut command: Command, clock_ticks_per_second: f64) -> anyhow::Result<(ExitStatus, Measured)> {
    let cpu_before = children_cpu_ticks()?;
    let started = Instant::now();
    let mut child = command.spawn().context("cannot start enrich")?;
    let mut peak_rss = 0;
    let status = loop {
        if let Some(sampled) = peak_rss_of(child.id()) {
            peak_rss = peak_rss.max(sampled);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(POLL);
    };
    let wall = started.elapsed();
    let cpu_ticks = children_cpu_ticks()? - cpu_before;
    let cpu = Duration::from_secs_f64(cpu_ticks as f64 / clock_ticks_per_second);
    Ok((status, Measured { wall, cpu, peak_rss, summary: String::new() }))
}

/// `cutime + cstime` of this process: the CPU time of its reaped children, in clock ticks.
fn children_cpu_ticks() -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The fields after the command name, which may hold spaces, start with field 3; cutime and cstime
    // are fields 16 and 17.
    let (_, fields) = stat.rsplit_once(')').context("unexpected /proc/self/stat")?;
    let fields: Vec<&str> = fields.split_whitespace().collect();
    let field = |number: usize| -> anyhow::Result<u64> {
        Ok(fields.get(number - 3).context("/proc/self/stat is too short")?.parse()?)
    };
    Ok(field(16)? + field(17)?)
}

/// `VmHWM` of a running process, in bytes.
fn peak_rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kilobytes = status.lines().find_map(|line| line.strip_prefix("VmHWM:"))?;
    Some(kilobytes.trim().trim_end_matches("kB").trim().parse::<u64>().ok()? * 1024)
}

/// The unit of `/proc`'s CPU times: `getconf CLK_TCK`, which is 100 on every Linux we know of.
fn clock_ticks_per_second() -> f64 {
    command_output("getconf", &["CLK_TCK"]).and_then(|ticks| ticks.parse().ok()).unwrap_or(100.0)
}

/// Writes a roster of `users` users, each with an email of their own, where every `due_every`th one was
/// seen an hour ago and the others a month ago, outside the default 7-day window.
fn write_roster(connection: &BenchConnection, users: usize, due_every: usize) -> anyhow::Result<()> {
    let now = Utc::now();
    let recent = (now - chrono::Duration::hours(1)).to_rfc3339();
    let month_ago = (now - chrono::Duration::days(30)).to_rfc3339();
    let mut file = std::io::BufWriter::new(std::fs::File::create(connection.folder.join("users.csv"))?);
    writeln!(file, "identity,last_seen,email")?;
    for n in 0..users {
        let seen = if n % due_every == 0 { &recent } else { &month_ago };
        let email = email(n);
        writeln!(file, "{email},{seen},{email}")?;
    }
    file.flush()?;
    Ok(())
}

/// The email of the `n`th user of every roster: spread over a few hundred companies.
fn email(n: usize) -> String {
    format!("person{n}@firm{}.io", n % 500)
}

/// One line of the results table.
#[derive(Debug)]
struct Row {
    what: String,
    measured: String,
    target: String,
    verdict: Verdict,
}

#[derive(Debug, Clone, Copy)]
enum Verdict {
    Pass,
    Fail,
    /// A figure the issue asks to report, without a target.
    Reported,
}

impl Verdict {
    fn of(met: bool) -> Verdict {
        if met { Verdict::Pass } else { Verdict::Fail }
    }

    fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Reported => "-",
        }
    }
}

/// Mapping one full combined response: criterion's estimates from `connectors/clearbit/benches/mapping.rs`.
fn mapping(mapping_bench: &Path, folder: &Path) -> anyhow::Result<Vec<Row>> {
    const TARGET: Duration = Duration::from_micros(20);
    progress("mapping: criterion benchmark of map_combined (about 10 s)");
    let criterion_home = folder.join("criterion");
    // Shorter than criterion's defaults (3 s and 5 s), which a function this quick does not need.
    let output = Command::new(mapping_bench)
        .args(["--bench", "--noplot", "--warm-up-time", "1", "--measurement-time", "3"])
        .env("CRITERION_HOME", &criterion_home)
        .stderr(Stdio::null())
        .output()
        .context("cannot run the mapping benchmark")?;
    std::fs::write(folder.join("mapping.out"), &output.stdout)?;
    if !output.status.success() {
        bail!("the mapping benchmark failed; its output is in target/bench/mapping.out");
    }
    // One folder per benchmark of the group, each with criterion's estimates of the time per iteration.
    let group = criterion_home.join("map_combined");
    let mut rows = Vec::new();
    for entry in
        std::fs::read_dir(&group).with_context(|| format!("criterion wrote no {}", group.display()))?
    {
        let benchmark = entry?.path();
        let estimates_path = benchmark.join("new/estimates.json");
        let (Some(name), Ok(estimates)) =
            (benchmark.file_name().and_then(|name| name.to_str()), std::fs::read_to_string(&estimates_path))
        else {
            continue;
        };
        let estimates: Value = serde_json::from_str(&estimates)?;
        // What criterion prints as `time`: the slope of a linear sampling, else the mean.
        let nanoseconds = ["slope", "mean"]
            .iter()
            .find_map(|estimate| estimates[estimate]["point_estimate"].as_f64())
            .with_context(|| format!("no estimate in {}", estimates_path.display()))?;
        rows.push(Row {
            what: format!("Mapping one full combined response ({name}), default selection"),
            measured: format!("{:.2} µs", nanoseconds / 1000.0),
            target: "≤ 20 µs".to_owned(),
            verdict: Verdict::of(Duration::from_secs_f64(nanoseconds / 1e9) <= TARGET),
        });
    }
    ensure!(!rows.is_empty(), "criterion wrote no estimates under {}", group.display());
    rows.sort_by(|a, b| a.what.cmp(&b.what));
    Ok(rows)
}

/// 2,000 due users against Clearbit's limit scaled up tenfold and enforced: how close to the limit the
/// source runs, and whether it ever runs into it.
async fn throughput_at_the_limit(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    const PACE: Pace = Pace { requests_per_minute: 6_000, max_concurrency: 20 };
    progress("throughput at the limit: 2,000 users, 6,000/min enforced (about 20 s)");
    let connection =
        bench.connection("throughput-at-the-limit", EmulatorSettings::enforcing(PACE, LATENCY), PACE)?;
    write_roster(&connection, USERS, 1)?;
    let run = bench.sync(&connection, "sync").await?;
    run.ensure_complete(USERS)?;
    let (too_many, too_concurrent) = connection.emulator.refused().await?;
    let achieved = USERS as f64 / run.wall.as_secs_f64();
    let share = achieved / (f64::from(PACE.requests_per_minute) / 60.0);
    Ok(vec![
        Row {
            what: "Throughput at the limit: 2,000 users, 6,000/min enforced, 100 ms latency, 20 concurrent"
                .to_owned(),
            measured: format!("{achieved:.1} lookups/s in {} = {share:.3} of the limit", seconds(run.wall)),
            target: "≥ 0.95".to_owned(),
            verdict: Verdict::of(share >= 0.95),
        },
        Row {
            what: "… lookups the emulator refused meanwhile (429 over the rate, 400 over the concurrency)"
                .to_owned(),
            measured: format!("{too_many} × 429, {too_concurrent} × 400"),
            target: "0".to_owned(),
            verdict: Verdict::of(too_many + too_concurrent == 0),
        },
    ])
}

/// Issue 5: Clearbit's real limits, 600 a minute and 5 at once, both enforced.
async fn issue_5_check(bench: &Bench) -> anyhow::Result<Row> {
    const USERS: usize = 300;
    const PACE: Pace = Pace { requests_per_minute: 600, max_concurrency: 5 };
    const SLACK: f64 = 1.15;
    progress("issue 5: 300 users at 600/min and 5 concurrent, both enforced (about 30 s)");
    // Real answers vary: the concurrency limit is easiest to trip when they do.
    let settings = EmulatorSettings { latency_jitter: LATENCY, ..EmulatorSettings::enforcing(PACE, LATENCY) };
    let connection = bench.connection("issue-5", settings, PACE)?;
    write_roster(&connection, USERS, 1)?;
    let run = bench.sync(&connection, "sync").await?;
    run.ensure_complete(USERS)?;
    let (too_many, too_concurrent) = connection.emulator.refused().await?;
    let allowed = Duration::from_secs(60) * USERS as u32 / PACE.requests_per_minute;
    let ratio = run.wall.as_secs_f64() / allowed.as_secs_f64();
    Ok(Row {
        what: "Issue 5: 300 users, 600/min and 5 concurrent enforced, 100–200 ms latency".to_owned(),
        measured: format!(
            "{} = {ratio:.3} × the {} the limit allows; {too_many} × 429, {too_concurrent} × 400",
            seconds(run.wall),
            seconds(allowed),
        ),
        target: "≤ 1.15 ×, no refusal".to_owned(),
        verdict: Verdict::of(ratio <= SLACK && too_many + too_concurrent == 0),
    })
}

/// The latency-bound row, and enrich's time for the peer to be compared with.
#[derive(Debug)]
struct LatencyBound {
    row: Row,
    wall: Duration,
}

/// 2,000 due users, no rate limit: how close to `concurrency / latency` lookups run.
async fn latency_bound(bench: &Bench) -> anyhow::Result<LatencyBound> {
    progress("latency-bound: 2,000 users, no limit, 100 ms latency, 20 concurrent (about 10 s)");
    let connection =
        bench.connection("latency-bound", EmulatorSettings::unlimited(LATENCY), Pace::UNLIMITED)?;
    write_roster(&connection, USERS, 1)?;
    let run = bench.sync(&connection, "sync").await?;
    run.ensure_complete(USERS)?;
    let achieved = USERS as f64 / run.wall.as_secs_f64();
    let bound = Pace::UNLIMITED.max_concurrency as f64 / LATENCY.as_secs_f64();
    let share = achieved / bound;
    let row = Row {
        what: "Latency-bound: 2,000 users, no limit, 100 ms latency, 20 concurrent".to_owned(),
        measured: format!(
            "{achieved:.1} lookups/s in {} = {share:.3} of the {bound:.0}/s 20 concurrent allow",
            seconds(run.wall)
        ),
        target: "≥ 0.9".to_owned(),
        verdict: Verdict::of(share >= 0.9),
    };
    Ok(LatencyBound { row, wall: run.wall })
}

/// What the engine itself costs: CPU time per enriched user when Clearbit answers at once.
async fn engine_overhead(bench: &Bench, users: usize) -> anyhow::Result<Row> {
    const TARGET: Duration = Duration::from_micros(150);
    progress(&format!("engine overhead: {} users, instant answers", thousands(users)));
    let connection =
        bench.connection("engine-overhead", EmulatorSettings::unlimited(Duration::ZERO), Pace::UNLIMITED)?;
    write_roster(&connection, users, 1)?;
    let run = bench.sync(&connection, "sync").await?;
    run.ensure_complete(users)?;
    let per_user = run.cpu / users as u32;
    Ok(Row {
        what: format!(
            "Engine overhead: CPU time of the whole process per enriched user, {} users, instant answers",
            thousands(users)
        ),
        measured: format!(
            "{:.0} µs ({} CPU in {} wall)",
            per_user.as_secs_f64() * 1e6,
            seconds(run.cpu),
            seconds(run.wall)
        ),
        target: "≤ 150 µs".to_owned(),
        verdict: Verdict::of(per_user <= TARGET),
    })
}

/// A roster of `rows` rows where 1% is due, then the same roster again with nothing due, then the
/// state they leave.
async fn roster_scale(bench: &Bench, rows: usize) -> anyhow::Result<Vec<Row>> {
    const DUE_EVERY: usize = 100;
    const MAX_PEAK_RSS: u64 = 100_000_000;
    const NOTHING_DUE_MAX: Duration = Duration::from_secs(3);
    const MAX_STATE_PER_USER: f64 = 1_000.0;
    let checked = rows.div_ceil(DUE_EVERY);
    progress(&format!("roster scale: {} rows, 1% due, then again with nothing due", thousands(rows)));
    let connection =
        bench.connection("roster-scale", EmulatorSettings::unlimited(Duration::ZERO), Pace::UNLIMITED)?;
    write_roster(&connection, rows, DUE_EVERY)?;
    let first = bench.sync(&connection, "first").await?;
    first.ensure_complete(checked)?;
    let second = bench.sync(&connection, "second").await?;
    second.ensure_complete(0)?;
    let state = disk_usage(&connection.folder.join("state"))?;
    let per_user = bench.state_bytes_per_user(&connection)?;
    let figures = |run: &Measured| {
        format!(
            "{}, {:.0} rows/s, peak RSS {}",
            seconds(run.wall),
            rows as f64 / run.wall.as_secs_f64(),
            megabytes(run.peak_rss)
        )
    };
    let rows = thousands(rows);
    let checked_text = thousands(checked);
    Ok(vec![
        Row {
            what: format!("Roster scale: {rows} CSV rows, 1% due ({checked_text} lookups, instant answers)"),
            measured: figures(&first),
            target: "peak RSS ≤ 100 MB".to_owned(),
            verdict: Verdict::of(first.peak_rss <= MAX_PEAK_RSS),
        },
        Row {
            what: format!("Nothing due: the same {rows} rows right after"),
            measured: figures(&second),
            target: "≤ 3 s".to_owned(),
            verdict: Verdict::of(second.wall <= NOTHING_DUE_MAX),
        },
        Row {
            what: format!("State per checked user, pending writes acknowledged ({checked_text} users)"),
            measured: format!("{per_user:.0} bytes a user, as `enrich state export` writes it"),
            target: "≤ 1 KB".to_owned(),
            verdict: Verdict::of(per_user <= MAX_STATE_PER_USER),
        },
        Row {
            what: "State folder on disk after both runs (sled keeps removed values in its log)".to_owned(),
            measured: format!(
                "{} ({:.1} KB per user checked)",
                megabytes(state),
                state as f64 / 1e3 / checked as f64
            ),
            target: "reported".to_owned(),
            verdict: Verdict::Reported,
        },
    ])
}

/// A first run over `users` due users, instant answers: capped, twice (the second run takes the next
/// ones), then uncapped. The plan must not live whole in memory either way.
async fn due_backlog(bench: &Bench, users: usize) -> anyhow::Result<Vec<Row>> {
    const CAP: usize = 1_000;
    const MAX_PEAK_RSS: u64 = 100_000_000;
    let cap = CAP.min(users);
    let text = thousands(users);
    progress(&format!("due backlog: {text} due users capped at {cap} a run, twice, then uncapped"));
    let capped = bench.capped_connection(
        "backlog-capped",
        EmulatorSettings::unlimited(Duration::ZERO),
        Pace::UNLIMITED,
        Some(cap),
    )?;
    write_roster(&capped, users, 1)?;
    let first = bench.sync(&capped, "first").await?;
    first.ensure_complete(cap)?;
    let next = bench.sync(&capped, "second").await?;
    next.ensure_complete(cap.min(users - cap))?;
    let uncapped =
        bench.connection("backlog-uncapped", EmulatorSettings::unlimited(Duration::ZERO), Pace::UNLIMITED)?;
    write_roster(&uncapped, users, 1)?;
    let all = bench.sync(&uncapped, "sync").await?;
    all.ensure_complete(users)?;
    let figures = |run: &Measured| {
        format!("peak RSS {}, {} wall, {} CPU", megabytes(run.peak_rss), seconds(run.wall), seconds(run.cpu))
    };
    Ok(vec![
        Row {
            what: format!(
                "Due backlog: first run over {text} due users, `max_lookups_per_run: {cap}` (exactly {cap} lookups, \
                 the next run the next {cap})"
            ),
            measured: format!("{}; next run {}", figures(&first), figures(&next)),
            target: "peak RSS < 100 MB".to_owned(),
            verdict: Verdict::of(first.peak_rss.max(next.peak_rss) < MAX_PEAK_RSS),
        },
        Row {
            what: format!("Due backlog: first run over {text} due users, uncapped, instant answers"),
            measured: format!(
                "{} ({:.0} µs CPU per user)",
                figures(&all),
                all.cpu.as_secs_f64() * 1e6 / users as f64
            ),
            target: "peak RSS < 100 MB".to_owned(),
            verdict: Verdict::of(all.peak_rss < MAX_PEAK_RSS),
        },
    ])
}

/// A 10,000,000-row roster, 1% due, projected from the peak memory and time of three measured sizes
/// by a least-squares line.
async fn projection(bench: &Bench, shrink: usize) -> anyhow::Result<Row> {
    const TARGET_ROWS: f64 = 10_000_000.0;
    const DUE_EVERY: usize = 100;
    let sizes = [250_000 / shrink.max(1), 500_000 / shrink.max(1), 1_000_000 / shrink.max(1)];
    let mut points = Vec::new();
    for rows in sizes {
        progress(&format!("projection: {} rows, 1% due", thousands(rows)));
        let connection = bench.connection(
            &format!("projection-{rows}"),
            EmulatorSettings::unlimited(Duration::ZERO),
            Pace::UNLIMITED,
        )?;
        write_roster(&connection, rows, DUE_EVERY)?;
        let run = bench.sync(&connection, "first").await?;
        run.ensure_complete(rows.div_ceil(DUE_EVERY))?;
        points.push((rows as f64, run.peak_rss as f64, run.wall.as_secs_f64()));
    }
    let rss = least_squares(points.iter().map(|(rows, rss, _)| (*rows, *rss)));
    let wall = least_squares(points.iter().map(|(rows, _, wall)| (*rows, *wall)));
    let measured: Vec<String> = points
        .iter()
        .map(|(rows, rss, wall)| {
            format!("{}: {} in {wall:.1} s", thousands(*rows as usize), megabytes(*rss as u64))
        })
        .collect();
    Ok(Row {
        what: "Projection: a 10,000,000-row roster, 1% due, from a line through three measured sizes"
            .to_owned(),
        measured: format!(
            "peak RSS {} and {:.0} s projected ({:.1} bytes and {:.2} µs per row); measured {}",
            megabytes((rss.0 + rss.1 * TARGET_ROWS) as u64),
            wall.0 + wall.1 * TARGET_ROWS,
            rss.1,
            wall.1 * 1e6,
            measured.join(", ")
        ),
        target: "reported".to_owned(),
        verdict: Verdict::Reported,
    })
}

/// The intercept and slope of the least-squares line through `points`.
fn least_squares(points: impl Iterator<Item = (f64, f64)> + Clone) -> (f64, f64) {
    let n = points.clone().count() as f64;
    let (sum_x, sum_y) = points.clone().fold((0.0, 0.0), |(x, y), point| (x + point.0, y + point.1));
    let (mean_x, mean_y) = (sum_x / n, sum_y / n);
    let (covariance, variance) = points.fold((0.0, 0.0), |(c, v), (x, y)| {
        (c + (x - mean_x) * (y - mean_y), v + (x - mean_x) * (x - mean_x))
    });
    let slope = if variance > 0.0 { covariance / variance } else { 0.0 };
    (mean_y - slope * mean_x, slope)
}

/// The disk space the files under `folder` take, as `du` counts it (allocated blocks).
fn disk_usage(folder: &Path) -> anyhow::Result<u64> {
    use std::os::unix::fs::MetadataExt as _;
    let mut bytes = 0;
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        let metadata = entry.metadata()?;
        bytes += if metadata.is_dir() { disk_usage(&entry.path())? } else { metadata.blocks() * 512 };
    }
    Ok(bytes)
}

/// The latency-bound benchmark's users through a plain client that, as Clearbit's official client
/// libraries do, asks for one email at a time, then writes that user to Heap, then goes on: its time.
async fn sequential_peer(bench: &Bench) -> anyhow::Result<Duration> {
    progress("sequential peer: 2,000 users one request at a time, alongside the next three (about 3.5 min)");
    let emulator = EmulatorProcess::start(&bench.emulator, EmulatorSettings::unlimited(LATENCY))?;
    let (clearbit, heap) = (&emulator.clearbit_url, &emulator.heap_url);
    let client = reqwest::Client::new();
    let started = Instant::now();
    for n in 0..USERS {
        let email = email(n);
        let response = client
            .get(format!("{clearbit}/v2/combined/find"))
            .query(&[("email", &email)])
            .bearer_auth(KEY)
            .send()
            .await?;
        let mut properties = Map::new();
        match response.status().as_u16() {
            200 => flatten("", &response.json().await?, &mut properties),
            404 => {}
            status => bail!("the peer's lookup of {email} was answered {status}"),
        }
        properties.insert("Clearbit: Date Last Checked".to_owned(), json!(Utc::now().to_rfc3339()));
        let user = json!({ "app_id": APP_ID, "identity": email, "properties": properties });
        let response = client.post(format!("{heap}/api/add_user_properties")).json(&user).send().await?;
        ensure!(
            response.status().is_success(),
            "Heap refused the peer's write of {email}: {}",
            response.status()
        );
    }
    Ok(started.elapsed())
}

fn peer_row(peer_wall: Duration, enrich_wall: Duration) -> Row {
    Row {
        what:
            "A sequential peer: the latency-bound run's 2,000 users, one lookup and one Heap write at a time"
                .to_owned(),
        measured: format!(
            "{} (no such client takes less than 2,000 × 100 ms = 200 s); enrich took {} = {:.3} × the peer's time",
            seconds(peer_wall),
            seconds(enrich_wall),
            enrich_wall.as_secs_f64() / peer_wall.as_secs_f64()
        ),
        target: "reported".to_owned(),
        verdict: Verdict::Reported,
    }
}

/// A Clearbit record as a plain client writes it to Heap: one property per scalar attribute, named by its
/// path; lists joined with `, `; strings kept below Heap's 1024 characters.
fn flatten(path: &str, value: &Value, properties: &mut Map<String, Value>) {
    let text = |text: &str| json!(text.chars().take(1023).collect::<String>());
    match value {
        Value::Object(attributes) => {
            for (key, value) in attributes {
                let path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                flatten(&path, value, properties);
            }
        }
        Value::Null => {}
        Value::Array(items) if items.is_empty() => {}
        Value::Array(items) => {
            let items: Vec<String> = items
                .iter()
                .map(|item| item.as_str().map_or_else(|| item.to_string(), str::to_owned))
                .collect();
            properties.insert(path.to_owned(), text(&items.join(", ")));
        }
        Value::Bool(flag) => {
            properties.insert(path.to_owned(), text(&flag.to_string()));
        }
        Value::Number(_) => {
            properties.insert(path.to_owned(), value.clone());
        }
        Value::String(string) => {
            properties.insert(path.to_owned(), text(string));
        }
    }
}

/// Where the benchmarks ran.
#[derive(Debug)]
struct Machine {
    cpus: usize,
    cpu_model: String,
    memory: String,
    rustc: String,
    load_average: String,
    commit: String,
    date: String,
}

impl Machine {
    fn describe() -> Machine {
        let proc_file =
            |name: &str| std::fs::read_to_string(Path::new("/proc").join(name)).unwrap_or_default();
        let cpu_model = proc_file("cpuinfo")
            .lines()
            .find_map(|line| Some(line.strip_prefix("model name")?.split_once(':')?.1.trim().to_owned()))
            .unwrap_or_else(|| "unknown".to_owned());
        let memory = proc_file("meminfo")
            .lines()
            .find_map(|line| {
                line.strip_prefix("MemTotal:")?.trim().trim_end_matches("kB").trim().parse::<u64>().ok()
            })
            .map_or_else(
                || "unknown".to_owned(),
                |kilobytes| format!("{:.1} GiB", kilobytes as f64 / 1024.0 / 1024.0),
            );
        let load_average = proc_file("loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" ");
        let commit =
            command_output("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model,
            memory,
            rustc: command_output("rustc", &["--version"]).unwrap_or_else(|| "rustc unknown".to_owned()),
            load_average,
            commit,
            date: Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        }
    }
}

/// What a successful command run in the workspace printed, trimmed.
fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).current_dir(workspace_root()).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from("| benchmark | measured | target | result |\n|---|---|---|---|\n");
    for row in rows {
        let _ =
            writeln!(out, "| {} | {} | {} | {} |", row.what, row.measured, row.target, row.verdict.label());
    }
    out
}

fn benchmarks_md(machine: &Machine, table: &str, took: Duration) -> String {
    format!(
        "# Benchmarks

Written by `cargo xtask bench` on {date}; run it again to refresh this file.

It builds `enrich` in release mode, runs it against the emulator on loopback
(`crates/enrich-emulator`, release-built, in its own process) exactly as a user would, and measures
the `enrich` process from outside: wall time, CPU time (user + system) and peak resident memory
(`VmHWM`). The mapping figures come from criterion (`connectors/clearbit/benches/mapping.rs`). This
run took {took} from the start of the task, the release build included; each run's files, its output
and log among them, are in `target/bench/`.

## Machine

- CPUs: {cpus} (`nproc`), {cpu_model}
- memory: {memory}
- {rustc}
- commit: {commit}
- load average when the run started: {load_average} (other work on the machine slows every figure)

## Results

{table}
## How to read it

- **Throughput at the limit** divides the lookups achieved per second, over the whole run from
  process start to exit, by what the enforced limit allows (6,000 a minute = 100 a second); 1.0 is
  the limit itself (a little more is possible: the source starts with one request per concurrency
  slot at once, which a per-minute window admits). The emulator counts lookups in fixed Unix minutes
  as Clearbit does, and refuses those over the limit with 429 and those over 20 at once with 400: the
  source must stay under both by its own pacing, not by retrying.
- **Issue 5** is the same check at Clearbit's real limits, 600 a minute and 5 at once, with answers
  taking 100 to 200 ms: 300 lookups cannot take less than 30 s, and should not take much more.
- **Latency-bound**: with no rate limit, 20 lookups in flight each taking 100 ms allow 200 a second.
- **Mapping** is criterion's time for `map_combined` over one whole answer with the default
  selection, dropping the record included, allocating with jemalloc as `enrich` does. The selection
  is compiled once per connection into its entries (path → name, kind, included) in name order, so
  each attribute costs one hash look-up and a record's properties are built in one pass.
- **Engine overhead** is the CPU time of the whole `enrich sync` process (start-up, reading the
  roster, the state, both HTTP clients, the mapping, the writes) divided by the users it enriched,
  with the emulator answering at once. The 150 µs threshold is the issue's (#17): a backlog of a
  million users then costs two and a half minutes of one core.
- **Roster scale** reads a million-row CSV roster where every hundredth user was seen within the
  7-day window and the others a month ago; rows per second count every row read. **Nothing due**
  reads it again right after, when the due users have just been checked. Memory must not grow with
  the roster: the plan is sorted through temporary files past a fixed budget.
- **State per checked user** averages the user lines of `enrich state export` after both runs: the
  stored records in JSON, once every pending write was acknowledged. **State folder on disk** is what
  `du` counts for the sled folder, which also holds the pending writes' removed values until sled
  reclaims its log.
- **Due backlog** is a first sync where every one of a million users is due (a team's first run, or
  `backfill --since 1y`): capped by `max_lookups_per_run`, then the next capped run, which must take
  the next users, then uncapped. Memory must not grow with the backlog either way.
- **Projection**: a line through the peak memory and time of three roster sizes (1% due), read at
  10,000,000 rows.
- **The sequential peer** is a plain client written for this comparison (`xtask/src/bench.rs`),
  doing what Clearbit's official client libraries do: one lookup at a time, each answer written to
  Heap before the next lookup, against the same emulator settings as the latency-bound run. It runs
  alongside the three benchmarks above it that wait on the network (each with its own emulator),
  which saves three minutes; the benchmarks of CPU time and memory run alone.
- `cargo xtask bench --only GROUP --shrink N` runs one group (mapping, network, overhead, roster,
  backlog, projection) at a size divided by N, to check it works; it prints the table and leaves this
  file alone.
{profiles}",
        date = machine.date,
        took = seconds(took),
        cpus = machine.cpus,
        cpu_model = machine.cpu_model,
        memory = machine.memory,
        rustc = machine.rustc,
        commit = machine.commit,
        load_average = machine.load_average,
        // Written by hand from profiles, for as long as a row fails.
        profiles = if table.contains("| FAIL |") { include_str!("bench-profiles.md") } else { "" },
    )
}

fn progress(step: &str) {
    println!("bench: {step}");
}

fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

/// `1234567` as `1,234,567`.
fn thousands(count: usize) -> String {
    let digits = count.to_string();
    let mut out = String::new();
    for (at, digit) in digits.chars().enumerate() {
        if at > 0 && (digits.len() - at).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}
