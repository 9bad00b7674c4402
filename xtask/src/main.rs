//! Project chores, run as `cargo xtask <task>` (the cargo-xtask pattern: plain Rust, no extra tools).
//!
//! - `demo`: the main job end to end on the emulator: starts emulated Clearbit and Heap on loopback,
//!   writes a roster of a few hundred users, runs `enrich validate`, `enrich sync` (twice) and
//!   `enrich status` and `enrich report` on `config/demo.yaml` exactly as a user would, and shows what
//!   Heap received;
//!   `demo --warehouse` does the same with the roster in PostgreSQL as Heap Connect's schema.
//! - `test`: every test, none skipped: starts PostgreSQL and finds or installs Chromium and zsh first.
//! - `docs`: rewrites docs/properties.md from `enrich properties --format markdown`.
//! - `bench`: measures the release-built binary against the emulator and writes `BENCHMARKS.md`.
//! - `postgres start|stop`: a throwaway PostgreSQL server on loopback for the warehouse tests.

mod bench;
mod postgres;
mod test;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use chrono::{Duration, Utc};
use enrich_emulator::{Emulator, EmulatorConfig};

const DEMO_KEY: &str = "sk_demo_4c1e2f7a9b3d5e6f8a0b1c2d3e4f5a6b";
const DEMO_PDL_KEY: &str = "pdl_demo_7d2e9a4c1b3f5e6a8c0d2f4b6a8c0e2d4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c";

fn main() -> anyhow::Result<()> {
    let task = std::env::args().nth(1);
    match task.as_deref() {
        Some("demo") => {
            let flags: Vec<String> = std::env::args().skip(2).collect();
            let flag = |name: &str| flags.iter().any(|flag| flag == name);
            tokio::runtime::Runtime::new()?.block_on(demo(flag("--warehouse"), flag("--people-data-labs")))
        }
        Some("test") => test::test(),
        Some("docs") => docs(),
        Some("bench") => tokio::runtime::Runtime::new()?.block_on(bench::bench(bench_options()?)),
        Some("postgres") => match std::env::args().nth(2).as_deref() {
            Some("start") => {
                let url = postgres::start()?;
                println!("export ENRICH_TEST_POSTGRES_URL={url}");
                Ok(())
            }
            Some("stop") => postgres::stop(),
            _ => bail!("usage: cargo xtask postgres start|stop"),
        },
        _ => {
            eprintln!(
                "usage: cargo xtask TASK\n\n  demo [--warehouse] [--people-data-labs]   run the main job end to end against the emulator\n  \
                 test   every test, with PostgreSQL, Chromium and zsh set up first\n  \
                 docs   rewrite docs/properties.md, the property reference\n  \
                 bench [--only GROUP] [--shrink N]   measure the release binary against the emulator; writes\n         \
                 BENCHMARKS.md (not with --only or --shrink, which check benchmarks at a smaller size)\n  \
                 postgres start|stop   a PostgreSQL server on loopback for the warehouse tests"
            );
            std::process::exit(2)
        }
    }
}

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_owned()
}

/// The cargo profile a task builds with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    /// Quick to build: for the demo and the docs.
    Dev,
    /// What users run: for the benchmarks.
    Release,
}

/// An executable for cargo to build.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    package: &'static str,
    /// `bin` or `bench`: both cargo's option and the kind its messages report.
    kind: &'static str,
    name: &'static str,
}

impl Target {
    pub(crate) const ENRICH: Target = Target::bin("enrich-cli", "enrich");

    pub(crate) const fn bin(package: &'static str, name: &'static str) -> Target {
        Target { package, kind: "bin", name }
    }

    pub(crate) const fn bench(package: &'static str, name: &'static str) -> Target {
        Target { package, kind: "bench", name }
    }
}

/// Builds `targets` with `profile` in one cargo invocation, which compiles what they share once, and
/// returns their executables in the same order, as cargo reports them.
pub(crate) fn build<const N: usize>(
    root: &Path,
    profile: Profile,
    targets: [Target; N],
) -> anyhow::Result<[PathBuf; N]> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(root).args(["build", "--message-format=json-render-diagnostics"]);
    if profile == Profile::Release {
        command.arg("--release");
    }
    for target in &targets {
        command.args(["--package", target.package, &format!("--{}", target.kind), target.name]);
    }
    let output = command.stderr(Stdio::inherit()).output().context("cannot run cargo")?;
    let names: Vec<&str> = targets.iter().map(|target| target.name).collect();
    if !output.status.success() {
        bail!("building {} failed", names.join(", "));
    }
    let messages: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let executable = |target: &Target| {
        messages
            .iter()
            .filter(|message| {
                message["target"]["name"] == target.name
                    && message["target"]["kind"]
                        .as_array()
                        .is_some_and(|kinds| kinds.contains(&target.kind.into()))
            })
            .find_map(|message| message["executable"].as_str().map(PathBuf::from))
            .with_context(|| format!("cargo did not report the {} executable", target.name))
    };
    let executables = targets.iter().map(executable).collect::<anyhow::Result<Vec<_>>>()?;
    Ok(executables.try_into().expect("one executable per target"))
}

/// The demo; with `warehouse`, the roster lives in a Heap Connect-shaped schema in PostgreSQL (started
/// on loopback for the demo and stopped after it) instead of a CSV file; with `people_data_labs`, the
/// source is the emulated People Data Labs instead of Clearbit (with a CSV roster).
async fn demo(warehouse: bool, people_data_labs: bool) -> anyhow::Result<()> {
    let root = workspace_root();
    let [enrich] = build(&root, Profile::Dev, [Target::ENRICH])?;
    let demo_dir = root.join("target/demo");
    if demo_dir.exists() {
        std::fs::remove_dir_all(&demo_dir).context("cannot clear target/demo")?;
    }
    std::fs::create_dir_all(&demo_dir)?;

    let config = EmulatorConfig {
        clearbit_key: DEMO_KEY.into(),
        pdl_key: DEMO_PDL_KEY.into(),
        // About what Clearbit takes for a cached record, at ten times its rate limit.
        latency: std::time::Duration::from_millis(50),
        rate_limit_per_minute: 6000,
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start(config).await.context("cannot start the emulator")?;
    println!(
        "emulated Clearbit at {}, People Data Labs at {}, Heap at {}",
        emulator.clearbit_url(),
        emulator.pdl_url(),
        emulator.heap_url()
    );

    let roster = demo_roster();
    std::fs::write(demo_dir.join("users.csv"), &roster.csv)?;
    let (config_file, warehouse_url) = if warehouse {
        let url = postgres::start()?;
        load_heap_connect_schema(&url, &roster.csv)?;
        println!(
            "loaded the roster into PostgreSQL as Heap Connect's schema demo_heap (users, sessions), with \
             {ANONYMOUS_VISITORS} anonymous visitors"
        );
        for (domain, ip) in DEMO_OFFICES {
            emulator.assign_network(ip, domain);
        }
        ("config/demo-warehouse.yaml", Some(url))
    } else if people_data_labs {
        ("config/demo-people-data-labs.yaml", None)
    } else {
        ("config/demo.yaml", None)
    };
    println!(
        "wrote target/demo/users.csv: {} users, {} seen in the past week, {} without an email\n",
        roster.users, roster.recent, roster.without_email
    );

    let run = |args: &[&str]| {
        let mut command = Command::new(&enrich);
        command
            .current_dir(&root)
            .args(["--config", config_file])
            .args(args)
            .env("CLEARBIT_API_KEY", DEMO_KEY)
            .env("PDL_API_KEY", DEMO_PDL_KEY)
            .env("EMULATOR_CLEARBIT_URL", emulator.clearbit_url())
            .env("EMULATOR_PDL_URL", emulator.pdl_url())
            .env("EMULATOR_HEAP_URL", emulator.heap_url())
            .env("HEAP_CONNECT_URL", warehouse_url.clone().unwrap_or_default());
        let shown = format!("$ enrich --config {config_file} {}", args.join(" "));
        async move {
            println!("{shown}");
            let status = tokio::task::spawn_blocking(move || command.status()).await??;
            println!();
            anyhow::Ok(status)
        }
    };
    if !run(&["validate"]).await?.success() {
        bail!("{config_file} is not valid");
    }
    let first = run(&["sync", "demo"]).await?;
    print!("{}", heap_table(&emulator));
    let second = run(&["sync", "demo"]).await?;
    // The second connection: every user's company by the address of their latest session, Reveal alone,
    // into a warehouse table.
    let revealed = if warehouse { Some(run(&["sync", "reveal"]).await?) } else { None };
    run(&["status"]).await?;
    run(&["report", "demo"]).await?;
    emulator.shutdown().await;
    if warehouse {
        postgres::stop()?;
    }
    if !first.success() || !second.success() || revealed.is_some_and(|run| !run.success()) {
        bail!("a demo sync failed");
    }
    Ok(())
}

/// The company networks the demo's emulated Reveal knows: the sessions of these companies' people come
/// from their office, and so do those of people with personal mail or none, spread over the offices.
const DEMO_OFFICES: [(&str, &str); 4] = [
    ("northwind.io", "81.2.69.10"),
    ("pinecrest.health", "81.2.69.11"),
    ("uber.com", "81.2.69.12"),
    ("brightpath.edu", "81.2.69.13"),
];

/// Visitors who never identified themselves, added to the warehouse roster for the `reveal` connection
/// (`anonymous: true`): most from the offices, every fifth from a network Reveal does not know.
const ANONYMOUS_VISITORS: u32 = 40;

/// Heap Connect's tables, as the warehouse tests create them.
const HEAP_CONNECT_TABLES: &str = include_str!("../../tests/fixtures/heap_connect_schema.sql");

const REFERENCE_START: &str = "<!-- properties:start (cargo xtask docs) -->";
const REFERENCE_END: &str = "<!-- properties:end -->";

/// Rewrites docs/properties.md's table with what `enrich properties` lists for a connection with
/// Clearbit's default selection.
/// `cargo xtask bench`'s flags: `--only GROUP` and `--shrink N`.
fn bench_options() -> anyhow::Result<bench::Options> {
    let mut options = bench::Options { only: None, shrink: 1 };
    let mut flags = std::env::args().skip(2);
    while let Some(flag) = flags.next() {
        let value = flags.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--only" => {
                let group = bench::Group::named(&value).with_context(|| {
                    format!("no benchmark group {value:?}; the groups: {}", bench::Group::NAMES)
                })?;
                options.only = Some(group);
            }
            "--shrink" => options.shrink = value.parse().with_context(|| format!("--shrink {value:?}"))?,
            _ => bail!("unknown flag {flag}: cargo xtask bench [--only GROUP] [--shrink N]"),
        }
    }
    Ok(options)
}

fn docs() -> anyhow::Result<()> {
    let root = workspace_root();
    let [enrich] = build(&root, Profile::Dev, [Target::ENRICH])?;
    let folder = root.join("target/docs");
    std::fs::create_dir_all(&folder)?;
    std::fs::write(folder.join("users.csv"), "identity,last_seen,email\n")?;
    std::fs::write(
        folder.join("enrich.yaml"),
        "connections:\n  docs:\n    source: { type: clearbit, api_key: sk_docs }\n    \
         sink: { type: heap, app_id: \"1\" }\n    users: { type: csv, path: users.csv, email_property: email }\n",
    )?;
    let output = Command::new(&enrich)
        .current_dir(&folder)
        .args(["properties", "docs", "--format", "markdown"])
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        bail!("enrich properties failed");
    }
    let reference = String::from_utf8(output.stdout)?;
    let path = root.join("docs/properties.md");
    let page = std::fs::read_to_string(&path)?;
    let start = page.find(REFERENCE_START).context("docs/properties.md lacks the table's start marker")?;
    let end = page.find(REFERENCE_END).context("docs/properties.md lacks the table's end marker")?;
    let updated = format!("{}{REFERENCE_START}\n{}\n{}", &page[..start], reference.trim(), &page[end..]);
    std::fs::write(&path, updated)?;
    println!(
        "docs/properties.md: property reference rewritten ({} properties)",
        reference.lines().count() - 2
    );
    Ok(())
}

/// Loads the demo roster (CSV with identity, last_seen, email, plan) into a schema shaped like Heap
/// Connect's: `users` (one row per user, a `user_id`, the email as a column) and `sessions` (the
/// latest session of each user at its last-seen time, from the user's office: see [`DEMO_OFFICES`]).
fn load_heap_connect_schema(url: &str, roster_csv: &str) -> anyhow::Result<()> {
    let tables = HEAP_CONNECT_TABLES.replace("{schema}", "demo_heap");
    let offices: Vec<String> =
        DEMO_OFFICES.iter().map(|(domain, ip)| format!("('{domain}', '{ip}')")).collect();
    let offices = offices.join(", ");
    let script = format!(
        "SET client_min_messages TO warning;\n\
         DROP SCHEMA IF EXISTS demo_heap CASCADE;\n\
         CREATE SCHEMA demo_heap;\n{tables}\
         ALTER TABLE demo_heap.users ADD COLUMN plan text;\n\
         CREATE TABLE demo_heap.roster (identity text, last_seen timestamptz, email text, plan text);\n\
         COPY demo_heap.roster FROM STDIN WITH (FORMAT csv, HEADER true);\n{roster_csv}\\.\n\
         INSERT INTO demo_heap.users (user_id, identity, email, plan, last_modified) \
         SELECT row_number() OVER (ORDER BY identity), identity, NULLIF(email, ''), plan, \
         now() AT TIME ZONE 'UTC' FROM demo_heap.roster;\n\
         CREATE TEMP TABLE offices (n serial, domain text, ip text);\n\
         INSERT INTO offices (domain, ip) VALUES {offices};\n\
         INSERT INTO demo_heap.sessions (user_id, session_id, time, ip) SELECT u.user_id, 1, \
         r.last_seen AT TIME ZONE 'UTC', COALESCE(\
             (SELECT ip FROM offices WHERE domain = split_part(r.email, '@', 2)), \
             CASE WHEN r.email = '' OR split_part(r.email, '@', 2) IN ('gmail.com', 'outlook.com') \
                  THEN (SELECT ip FROM offices WHERE n = 1 + u.user_id % {count}) END) \
         FROM demo_heap.users u JOIN demo_heap.roster r USING (identity);\n\
         INSERT INTO demo_heap.users (user_id, last_modified) \
         SELECT 100000 + n, now() AT TIME ZONE 'UTC' FROM generate_series(1, {ANONYMOUS_VISITORS}) n;\n\
         INSERT INTO demo_heap.sessions (user_id, session_id, time, ip) SELECT user_id, 1, \
         now() AT TIME ZONE 'UTC' - interval '1 hour' * (user_id % 100), \
         CASE WHEN user_id % 5 = 0 THEN '81.2.70.' || user_id % 200 \
              ELSE (SELECT ip FROM offices WHERE n = 1 + user_id % {count}) END \
         FROM demo_heap.users WHERE identity IS NULL;\n\
         DROP TABLE demo_heap.roster;\n",
        count = DEMO_OFFICES.len()
    );
    let mut psql = Command::new("psql")
        .args([url, "--quiet", "--no-psqlrc", "--set", "ON_ERROR_STOP=1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("cannot run psql (it comes with PostgreSQL: see .ci/postgres)")?;
    std::io::Write::write_all(psql.stdin.as_mut().context("psql has no input")?, script.as_bytes())?;
    drop(psql.stdin.take());
    if !psql.wait()?.success() {
        bail!("psql could not load the demo roster");
    }
    Ok(())
}

struct Roster {
    csv: String,
    users: usize,
    recent: usize,
    without_email: usize,
}

/// A few hundred users as a Heap export would list them: most seen this week, some long ago, some
/// anonymous, a few sharing a mailbox, and the people of Clearbit's real sample responses.
fn demo_roster() -> Roster {
    const FIRST: [&str; 12] =
        ["ana", "ben", "chloe", "dev", "emma", "farid", "grace", "hiro", "ines", "jonas", "kara", "liam"];
    const LAST: [&str; 10] =
        ["silva", "okafor", "martin", "nguyen", "schmidt", "rossi", "kim", "haddad", "berg", "costa"];
    const DOMAINS: [&str; 14] = [
        "northwind.io",
        "acmeanalytics.com",
        "bluefinlabs.com",
        "quantumleap.ai",
        "harborfreight.co",
        "pinecrest.health",
        "ledgerline.finance",
        "brightpath.edu",
        "gmail.com",
        "outlook.com",
        "atlasrobotics.com",
        "verdant.energy",
        "copperkettle.shop",
        "uber.com",
    ];
    let now = Utc::now();
    let mut csv = String::from("identity,last_seen,email,plan\n");
    let (mut users, mut recent, mut without_email) = (0, 0, 0);
    let mut add = |identity: &str, days_ago: i64, email: &str| {
        let seen = now - Duration::days(days_ago) - Duration::minutes(17 * users as i64 % 1440);
        let _ = writeln!(
            csv,
            "{identity},{},{email},{}",
            seen.to_rfc3339(),
            ["free", "pro", "enterprise"][users % 3]
        );
        users += 1;
        recent += usize::from(days_ago < 7);
        without_email += usize::from(email.is_empty());
    };
    add("bchris@calvinklein.com", 0, "bchris@calvinklein.com");
    add("alex@alexmaccaw.com", 1, "alex@alexmaccaw.com");
    for i in 0..320 {
        let first = FIRST[i % FIRST.len()];
        let last = LAST[(i / FIRST.len()) % LAST.len()];
        let domain = DOMAINS[(i * 7 + i / 5) % DOMAINS.len()];
        // One in ten was last seen weeks ago: outside the default 7-day window.
        let days_ago = if i % 10 == 9 { 10 + (i % 40) as i64 } else { (i % 7) as i64 };
        match i % 25 {
            // Anonymous visitors: Heap knows them by a generated identity only.
            3 | 17 => add(&format!("anon-{i:04}"), days_ago, ""),
            // A shared team mailbox: one lookup serves every user behind it.
            11 => add(&format!("user-{i:04}"), days_ago, "team@northwind.io"),
            _ => {
                let email = format!("{first}.{last}{i}@{domain}");
                add(&email, days_ago, &email);
            }
        }
    }
    add("user-9001", 0, "info@northwind.io"); // a role mailbox: Clearbit refuses it
    add("user-9002", 0, "not-an-email"); // malformed: never looked up
    Roster { csv, users, recent, without_email }
}

/// A table of what the emulated Heap holds: a few users, then how they spread over industries.
fn heap_table(emulator: &Emulator) -> String {
    let users = emulator.heap_users();
    let requests = emulator.heap_requests();
    let mut out = format!("Heap received {} request(s) carrying {} users:\n", requests.len(), users.len());
    let columns = ["Company Name", "Company Industry", "Company Employees Range", "Person Job Title"];
    let text = |properties: &serde_json::Map<String, serde_json::Value>, name: &str| {
        properties
            .get(name)
            .map_or_else(|| "-".to_owned(), |value| value.as_str().map_or(value.to_string(), str::to_owned))
    };
    let _ = writeln!(
        out,
        "  {:<34} {:<22} {:<34} {:<10} {}",
        "identity", columns[0], columns[1], "Employees", columns[3]
    );
    for (identity, properties) in users.iter().filter(|(_, p)| p.contains_key("Company Name")).take(8) {
        let _ = writeln!(
            out,
            "  {:<34} {:<22} {:<34} {:<10} {}",
            clip(identity, 34),
            clip(&text(properties, columns[0]), 22),
            clip(&text(properties, columns[1]), 34),
            text(properties, columns[2]),
            clip(&text(properties, columns[3]), 40)
        );
    }
    let mut industries: BTreeMap<String, usize> = BTreeMap::new();
    for properties in users.values() {
        *industries.entry(text(properties, "Company Industry")).or_default() += 1;
    }
    let mut industries: Vec<_> = industries.into_iter().collect();
    industries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let _ = writeln!(out, "\n  users by Company Industry (- = no company found):");
    for (industry, count) in industries {
        let _ = writeln!(out, "  {count:>5}  {industry}");
    }
    let example = users.values().map(serde_json::Map::len).max().unwrap_or(0);
    let _ = writeln!(
        out,
        "\n  the richest user carries {example} properties, `Clearbit: Date Last Checked` included\n"
    );
    out
}

fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(width - 1).collect();
        format!("{cut}…")
    }
}
