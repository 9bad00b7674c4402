//! `cargo xtask bench`: how the release-built `enrich` binary performs against the emulator on loopback,
//! measured from outside as a user would see it (wall time, CPU time and peak memory of the process),
//! each figure against its target; plus a criterion benchmark of the mapping, and a plain sequential
//! client side by side. Prints the table and writes it, with a description of the machine, to
//! `BENCHMARKS.md`. Generated files go to `target/bench/`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use chrono::Utc;
use enrich_emulator::{Emulator, EmulatorConfig};
use serde_json::{Map, Value, json};

use crate::{Profile, build_enrich, workspace_root};

const KEY: &str = "sk_bench_7a1c3e5f9b2d4f6a8c0e1b3d5f7a9c2e";
/// About what Clearbit takes to answer with a record it holds.
const LATENCY: Duration = Duration::from_millis(100);
/// The users of the network-bound benchmarks.
const USERS: usize = 2_000;
/// What the emulator announces when a benchmark is not about the rate limit: more than any run spends,
/// so that the source, which obeys the announced budget, is never held back by it.
const UNLIMITED_PER_MINUTE: u32 = 1_000_000;
/// How often a running `enrich` is sampled for its memory and checked for its exit.
const POLL: Duration = Duration::from_millis(10);

pub(crate) async fn bench() -> anyhow::Result<()> {
    let started = Instant::now();
    let root = workspace_root();
    // Before building, so that the load average tells of other work on the machine, not of ours.
    let machine = Machine::describe();
    let enrich = build_enrich(&root, Profile::Release)?;
    let folder = root.join("target/bench");
    if folder.exists() {
        std::fs::remove_dir_all(&folder).context("cannot clear target/bench")?;
    }
    std::fs::create_dir_all(&folder)?;
    let bench = Bench { enrich, folder, clock_ticks_per_second: clock_ticks_per_second() };

    let mut rows = mapping(&root, &bench.folder)?;
    rows.extend(throughput_at_the_limit(&bench).await?);
    rows.push(issue_5_check(&bench).await?);
    let latency_bound = latency_bound(&bench).await?;
    rows.push(latency_bound.row);
    rows.push(engine_overhead(&bench).await?);
    rows.extend(roster_scale(&bench).await?);
    rows.push(sequential_peer(&bench, latency_bound.wall).await?);

    let table = table(&rows);
    let took = started.elapsed();
    println!("\n{table}\ncargo xtask bench took {} (the release build included)", seconds(took));
    std::fs::write(root.join("BENCHMARKS.md"), benchmarks_md(&machine, &table, took))?;
    println!("wrote BENCHMARKS.md");
    Ok(())
}

/// The binary under test, where the benchmarks keep their files, and how to read CPU times.
#[derive(Debug)]
struct Bench {
    enrich: PathBuf,
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

/// A folder with `enrich.yaml`, the roster (`users.csv`) and the state, wired to its own emulator.
#[derive(Debug)]
struct BenchConnection {
    folder: PathBuf,
    emulator: Emulator,
}

/// One `enrich sync`, as seen from outside.
#[derive(Debug)]
struct Measured {
    wall: Duration,
    /// User and system time of the process.
    cpu: Duration,
    /// The most resident memory the process had (VmHWM), in bytes, as last sampled.
    peak_rss: u64,
    /// What it printed: the run's figures.
    summary: String,
}

impl Measured {
    /// The figure the summary shows for `label`.
    fn figure(&self, label: &str) -> anyhow::Result<u64> {
        self.summary
            .lines()
            .find_map(|line| line.trim().strip_prefix(label)?.trim().parse().ok())
            .with_context(|| format!("no `{label}` figure in:\n{}", self.summary))
    }

    /// Fails unless the run looked up `lookups` emails and every user was written: a run that did less
    /// would measure something else.
    fn ensure_complete(&self, lookups: usize) -> anyhow::Result<()> {
        let (looked_up, failed) = (self.figure("looked up")?, self.figure("failed")?);
        ensure!(
            looked_up == lookups as u64 && failed == 0 && self.figure("written")? == looked_up,
            "the run should have looked up and written {lookups} users:\n{}",
            self.summary
        );
        Ok(())
    }
}

impl Bench {
    async fn connection(
        &self,
        name: &str,
        emulator: EmulatorConfig,
        pace: Pace,
    ) -> anyhow::Result<BenchConnection> {
        let folder = self.folder.join(name);
        std::fs::create_dir_all(&folder)?;
        let emulator = Emulator::start(EmulatorConfig { clearbit_key: KEY.to_owned(), ..emulator })
            .await
            .context("cannot start the emulator")?;
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
      app_id: \"{app_id}\"
      base_url: {heap}
    users:
      type: csv
      path: users.csv
      email_property: email
",
            clearbit = emulator.clearbit_url(),
            heap = emulator.heap_url(),
            requests_per_minute = pace.requests_per_minute,
            max_concurrency = pace.max_concurrency,
            app_id = EmulatorConfig::default().heap_app_id,
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
        let (status, wall, cpu, peak_rss) =
            tokio::task::spawn_blocking(move || measure(command, ticks)).await??;
        let summary = std::fs::read_to_string(&out)?;
        if !status.success() {
            bail!("enrich sync failed ({status}); see {}:\n{summary}", log.display());
        }
        Ok(Measured { wall, cpu, peak_rss, summary })
    }
}

/// Runs `command` to its end: its wall time, its CPU time and its peak resident memory.
///
/// The CPU time is exact: once a child is reaped, the kernel adds its times to this process' `cutime`
/// and `cstime`, and no other child runs meanwhile. The peak memory is the child's `VmHWM`, a high-water
/// mark, sampled every [`POLL`] until it exits.
fn measure(
    mut command: Command,
    clock_ticks_per_second: f64,
) -> anyhow::Result<(std::process::ExitStatus, Duration, Duration, u64)> {
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
    let cpu = Duration::from_secs_f64((children_cpu_ticks()? - cpu_before) as f64 / clock_ticks_per_second);
    Ok((status, wall, cpu, peak_rss))
}

/// `cutime + cstime` of this process: the CPU time of its reaped children, in clock ticks.
fn children_cpu_ticks() -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The fields after the command name, which may hold spaces, start at field 3 (state); cutime and
    // cstime are fields 16 and 17.
    let fields: Vec<&str> =
        stat.rsplit_once(')').context("unexpected /proc/self/stat")?.1.split_whitespace().collect();
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

/// Mapping one full combined response, by criterion (`connectors/clearbit/benches/mapping.rs`).
fn mapping(root: &Path, folder: &Path) -> anyhow::Result<Vec<Row>> {
    const TARGET: Duration = Duration::from_micros(20);
    progress("mapping: criterion benchmark of map_combined");
    let criterion_home = folder.join("criterion");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root)
        .args(["bench", "--package", "enrich-clearbit", "--bench", "mapping", "--", "--noplot"])
        .env("CRITERION_HOME", &criterion_home)
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo bench")?;
    std::fs::write(folder.join("mapping.out"), &output.stdout)?;
    if !output.status.success() {
        bail!("cargo bench of the mapping failed; its output is in target/bench/mapping.out");
    }
    // One folder per benchmark of the group, each with criterion's estimates of the time per iteration.
    let group = criterion_home.join("map_combined");
    let mut rows = Vec::new();
    for entry in
        std::fs::read_dir(&group).with_context(|| format!("criterion wrote no {}", group.display()))?
    {
        let benchmark = entry?.path();
        let Some(name) = benchmark.file_name().and_then(|name| name.to_str()).map(str::to_owned) else {
            continue;
        };
        let estimates_path = benchmark.join("new/estimates.json");
        let Ok(estimates) = std::fs::read_to_string(&estimates_path) else { continue };
        let estimates: Value = serde_json::from_str(&estimates)?;
        // What criterion prints as `time`: the slope of a linear sampling, else the mean.
        let nanoseconds = ["slope", "mean"]
            .iter()
            .find_map(|estimate| estimates[estimate]["point_estimate"].as_f64())
            .with_context(|| format!("no estimate in {}", estimates_path.display()))?;
        let time = Duration::from_secs_f64(nanoseconds / 1e9);
        rows.push(Row {
            what: format!("Mapping one full combined response ({name}), default selection"),
            measured: format!("{:.2} µs", nanoseconds / 1000.0),
            target: "≤ 20 µs".to_owned(),
            verdict: Verdict::of(time <= TARGET),
        });
    }
    ensure!(!rows.is_empty(), "criterion wrote no estimates under {}", group.display());
    rows.sort_by(|a, b| a.what.cmp(&b.what));
    Ok(rows)
}

/// 2,000 due users against Clearbit's limit scaled up tenfold and enforced: how close to the limit the
/// source runs, and whether it ever runs into it.
async fn throughput_at_the_limit(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    const PER_MINUTE: u32 = 6_000;
    const CONCURRENCY: usize = 20;
    progress("throughput at the limit: 2,000 users, 6,000/min enforced (about 20 s)");
    let emulator = EmulatorConfig {
        latency: LATENCY,
        rate_limit_per_minute: PER_MINUTE,
        enforce_rate_limit: true,
        max_concurrent_requests: Some(CONCURRENCY),
        ..EmulatorConfig::default()
    };
    let pace = Pace { requests_per_minute: PER_MINUTE, max_concurrency: CONCURRENCY };
    let connection = bench.connection("throughput-at-the-limit", emulator, pace).await?;
    write_roster(&connection, USERS, 1)?;
    let run = bench.sync(&connection, "sync").await?;
    run.ensure_complete(USERS)?;
    let refused = connection.emulator.fault_counts();
    let achieved = USERS as f64 / run.wall.as_secs_f64();
    let share = achieved / (f64::from(PER_MINUTE) / 60.0);
    connection.emulator.shutdown().await;
    Ok(vec![
        Row {
            what: "Throughput at the limit: 2,000 users, 6,000/min enforced, 100 ms latency, 20 concurrent"
                .to_owned(),
            measured: format!("{achieved:.1} lookups/s in {} = {share:.3} of the limit", seconds(run.wall)),
            target: "≥ 0.95".to_owned(),
            verdict: Verdict::of(share >= 0.95),
        },
        Row {
            what: "… lookups the emulator refused meanwhile (429 rate limit, 400 concurrency)".to_owned(),
            measured: format!("{} × 429, {} × 400", refused.rate_limited, refused.concurrency_limited),
            target: "0".to_owned(),
            verdict: Verdict::of(refused.rate_limited + refused.concurrency_limited == 0),
        },
    ])
}

/// Issue 5: Clearbit's real limits, 600 a minute and 5 at once, both enforced.
async fn issue_5_check(bench: &Bench) -> anyhow::Result<Row> {
    const USERS: usize = 300;
    const PER_MINUTE: u32 = 600;
    const CONCURRENCY: usize = 5;
    const SLACK: f64 = 1.15;
    progress("issue 5: 300 users at 600/min and 5 concurrent, both enforced (about 30 s)");
    let emulator = EmulatorConfig {
        latency: LATENCY,
        // Real answers vary: the concurrency limit is easiest to trip when they do.
        latency_jitter: LATENCY,
        rate_limit_per_minute: PER_MINUTE,
        enforce_rate_limit: true,
        max_concurrent_requests: Some(CONCURRENCY),
        ..EmulatorConfig::default()
    };
    let pace = Pace { requests_per_minute: PER_MINUTE, max_concurrency: CONCURRENCY };
    let connection = bench.connection("issue-5", emulator, pace).await?;
    write_roster(&connection, USERS, 1)?;
    let run = bench.sync(&connection, "sync").await?;
    run.ensure_complete(USERS)?;
    let refused = connection.emulator.fault_counts();
    let allowed = Duration::from_secs(60) * USERS as u32 / PER_MINUTE;
    let ratio = run.wall.as_secs_f64() / allowed.as_secs_f64();
    connection.emulator.shutdown().await;
    Ok(Row {
        what: "Issue 5: 300 users, 600/min and 5 concurrent enforced, 100–200 ms latency".to_owned(),
        measured: format!(
            "{} = {ratio:.3} × the {} allowed; {} × 429, {} × 400",
            seconds(run.wall),
            seconds(allowed),
            refused.rate_limited,
            refused.concurrency_limited
        ),
        target: "≤ 1.15 ×, no refusal".to_owned(),
        verdict: Verdict::of(ratio <= SLACK && refused.rate_limited + refused.concurrency_limited == 0),
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
    let connection = bench.connection("latency-bound", unlimited(LATENCY), Pace::UNLIMITED).await?;
    write_roster(&connection, USERS, 1)?;
    let run = bench.sync(&connection, "sync").await?;
    run.ensure_complete(USERS)?;
    connection.emulator.shutdown().await;
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

/// The emulator answering after `latency`, announcing a budget no run exhausts.
fn unlimited(latency: Duration) -> EmulatorConfig {
    EmulatorConfig { latency, rate_limit_per_minute: UNLIMITED_PER_MINUTE, ..EmulatorConfig::default() }
}

/// What the engine itself costs: CPU time per enriched user when Clearbit answers at once.
async fn engine_overhead(bench: &Bench) -> anyhow::Result<Row> {
    const USERS: usize = 20_000;
    const TARGET: Duration = Duration::from_micros(500);
    progress("engine overhead: 20,000 users, instant answers");
    let connection = bench.connection("engine-overhead", unlimited(Duration::ZERO), Pace::UNLIMITED).await?;
    write_roster(&connection, USERS, 1)?;
    let run = bench.sync(&connection, "sync").await?;
    run.ensure_complete(USERS)?;
    connection.emulator.shutdown().await;
    let per_user = run.cpu / USERS as u32;
    Ok(Row {
        what: "Engine overhead: CPU time per enriched user, 20,000 users, instant answers".to_owned(),
        measured: format!(
            "{:.0} µs ({} CPU over {} wall)",
            per_user.as_secs_f64() * 1e6,
            seconds(run.cpu),
            seconds(run.wall)
        ),
        target: "< 500 µs".to_owned(),
        verdict: Verdict::of(per_user < TARGET),
    })
}

/// A million-row roster where 1% is due, then the same roster again with nothing due, then the state
/// folder they leave.
async fn roster_scale(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    const ROWS: usize = 1_000_000;
    const DUE_EVERY: usize = 100;
    const MAX_PEAK_RSS: u64 = 100_000_000;
    const NOTHING_DUE_MAX: Duration = Duration::from_secs(3);
    progress("roster scale: 1,000,000 rows, 1% due, then again with nothing due");
    let connection = bench.connection("roster-scale", unlimited(Duration::ZERO), Pace::UNLIMITED).await?;
    write_roster(&connection, ROWS, DUE_EVERY)?;
    let first = bench.sync(&connection, "first").await?;
    first.ensure_complete(ROWS / DUE_EVERY)?;
    let second = bench.sync(&connection, "second").await?;
    second.ensure_complete(0)?;
    connection.emulator.shutdown().await;
    let state = disk_usage(&connection.folder.join("state"))?;
    let rows_per_second = |run: &Measured| ROWS as f64 / run.wall.as_secs_f64();
    Ok(vec![
        Row {
            what: "Roster scale: 1,000,000 CSV rows, 1% due (10,000 lookups, instant answers)".to_owned(),
            measured: format!(
                "{}, {:.0} rows/s, peak RSS {}",
                seconds(first.wall),
                rows_per_second(&first),
                megabytes(first.peak_rss)
            ),
            target: "peak RSS ≤ 100 MB".to_owned(),
            verdict: Verdict::of(first.peak_rss <= MAX_PEAK_RSS),
        },
        Row {
            what: "Nothing due: the same 1,000,000 rows right after".to_owned(),
            measured: format!(
                "{}, {:.0} rows/s, peak RSS {}",
                seconds(second.wall),
                rows_per_second(&second),
                megabytes(second.peak_rss)
            ),
            target: "≤ 3 s".to_owned(),
            verdict: Verdict::of(second.wall <= NOTHING_DUE_MAX),
        },
        Row {
            what: "State on disk after both runs (10,000 users checked)".to_owned(),
            measured: format!(
                "{} ({} per user checked)",
                megabytes(state),
                kilobytes(state / (ROWS / DUE_EVERY) as u64)
            ),
            target: "bounded (reported)".to_owned(),
            verdict: Verdict::Reported,
        },
    ])
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
/// libraries do, asks for one email at a time, then writes that user to Heap, then goes on.
async fn sequential_peer(bench: &Bench, enrich_wall: Duration) -> anyhow::Result<Row> {
    progress("sequential peer: the latency-bound run's 2,000 users, one request at a time (about 3.5 min)");
    let connection = bench.connection("sequential-peer", unlimited(LATENCY), Pace::UNLIMITED).await?;
    let (clearbit, heap) = (connection.emulator.clearbit_url(), connection.emulator.heap_url());
    let app_id = EmulatorConfig::default().heap_app_id;
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
        let user = json!({ "app_id": app_id, "identity": email, "properties": properties });
        let response = client.post(format!("{heap}/api/add_user_properties")).json(&user).send().await?;
        ensure!(
            response.status().is_success(),
            "Heap refused the peer's write of {email}: {}",
            response.status()
        );
    }
    let wall = started.elapsed();
    connection.emulator.shutdown().await;
    Ok(Row {
        what:
            "A sequential peer: the latency-bound run's 2,000 users, one lookup and one Heap write at a time"
                .to_owned(),
        measured: format!(
            "{} ({:.1} users/s); enrich took {} = {:.3} × the peer's time",
            seconds(wall),
            USERS as f64 / wall.as_secs_f64(),
            seconds(enrich_wall),
            enrich_wall.as_secs_f64() / wall.as_secs_f64()
        ),
        target: "reported".to_owned(),
        verdict: Verdict::Reported,
    })
}

/// A Clearbit record as a plain client writes it to Heap: one property per scalar attribute, named by its
/// path; lists joined with `, `; strings kept below Heap's 1024 characters.
fn flatten(path: &str, value: &Value, properties: &mut Map<String, Value>) {
    let joined = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
    match value {
        Value::Object(attributes) => {
            for (key, value) in attributes {
                flatten(&joined(key), value, properties);
            }
        }
        Value::Null => {}
        Value::Array(items) if items.is_empty() => {}
        Value::Array(items) => {
            let text: Vec<String> = items
                .iter()
                .map(|item| item.as_str().map_or_else(|| item.to_string(), str::to_owned))
                .collect();
            properties.insert(path.to_owned(), json!(clip(&text.join(", "))));
        }
        Value::Bool(flag) => {
            properties.insert(path.to_owned(), json!(flag.to_string()));
        }
        Value::Number(_) => {
            properties.insert(path.to_owned(), value.clone());
        }
        Value::String(text) => {
            properties.insert(path.to_owned(), json!(clip(text)));
        }
    }
}

/// At most 1023 characters.
fn clip(text: &str) -> String {
    text.chars().take(1023).collect()
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
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| Some(line.strip_prefix("model name")?.split_once(':')?.1.trim().to_owned()))
            .unwrap_or_else(|| "unknown".to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find_map(|line| {
                line.strip_prefix("MemTotal:")?.trim().trim_end_matches("kB").trim().parse::<u64>().ok()
            })
            .map_or_else(
                || "unknown".to_owned(),
                |kilobytes| format!("{:.1} GiB", kilobytes as f64 / 1024.0 / 1024.0),
            );
        let load_average = std::fs::read_to_string("/proc/loadavg")
            .map(|load| load.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".to_owned());
        let dirty =
            command_output("git", &["status", "--porcelain"]).is_some_and(|changes| !changes.is_empty());
        let commit = command_output("git", &["rev-parse", "--short", "HEAD"]).map_or_else(
            || "unknown".to_owned(),
            |commit| if dirty { format!("{commit} with uncommitted changes") } else { commit },
        );
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model,
            memory,
            rustc: command_output("rustc", &["--version"]).unwrap_or_else(|| "unknown".to_owned()),
            load_average,
            commit,
            date: Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        }
    }
}

/// What a successful command printed, trimmed.
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

Written by `cargo xtask bench` on {date}; run it again to refresh this file. It builds `enrich` in
release mode, runs it against the emulator on loopback (`crates/enrich-emulator`) exactly as a user
would, and measures the process from outside: wall time, CPU time (user + system) and peak resident
memory (`VmHWM`). The mapping figures come from criterion (`connectors/clearbit/benches/mapping.rs`).
This run took {took}, the release build included. Its files, each run's output and log among them,
are in `target/bench/`.

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
  the limit itself. The emulator counts lookups in fixed Unix minutes as Clearbit does, and refuses
  those over the limit with 429 and those over 20 at once with 400: the source must stay under both
  by its own pacing, not by retrying.
- **Issue 5** is the same check at Clearbit's real limits, 600 a minute and 5 at once, with answers
  taking 100 to 200 ms: 300 lookups cannot take less than 30 s, and should not take much more.
- **Latency-bound**: with no rate limit, 20 lookups in flight each taking 100 ms allow 200 a second.
- **Engine overhead** is the CPU time of the whole `enrich sync` process (start-up, reading the
  roster, the state, both HTTP clients, the mapping, the writes) divided by the users it enriched,
  with the emulator answering at once in another process. The 500 µs threshold: at Clearbit's
  limit of 10 lookups a second per key, 500 µs a user is 0.5% of one core, so the engine is never
  what limits a sync, even at ten times that limit.
- **Roster scale** reads a million-row CSV roster where every hundredth user was seen within the
  7-day window and the others a month ago; rows per second count every row read. **Nothing due**
  reads it again right after, when the due users have just been checked. Memory must not grow with
  the roster: only due users are held.
- **State on disk** is what `du` counts for the state folder (sled) after both runs.
- **The sequential peer** is a plain client written for this comparison (in `xtask/src/bench.rs`),
  doing what Clearbit's official client libraries do: one lookup at a time, each answer written to
  Heap before the next lookup, against the same emulator settings as the latency-bound run.
",
        date = machine.date,
        took = seconds(took),
        cpus = machine.cpus,
        cpu_model = machine.cpu_model,
        memory = machine.memory,
        rustc = machine.rustc,
        commit = machine.commit,
        load_average = machine.load_average,
    )
}

fn progress(step: &str) {
    println!("bench: {step}");
}

fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn kilobytes(bytes: u64) -> String {
    format!("{:.1} KB", bytes as f64 / 1e3)
}
