//! `cargo xtask test`: the whole suite with everything it needs, none of it skipped: a throwaway
//! PostgreSQL server on loopback for the warehouse tests (started through `.ci/postgres`, installed when
//! missing, stopped at the end when this task started it), Chromium for the HTML report test and zsh
//! for the completion test (installed with apt-get when missing). Ends with the figures the long tests print, the number of
//! tests run and the wall time.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

/// Where the report test looks for Chromium, and where Debian's package puts it.
const CHROMIUM: &str = "/usr/bin/chromium";
/// Where the completion test looks for zsh.
const ZSH: &str = "/usr/bin/zsh";

/// Lines worth reading in a passing run: how many lookups a kill cost, what chaos did, what was checked.
const FIGURES: [&str; 4] = ["kill-and-resume", "chaos", "extreme values", "config examples"];

pub fn test() -> anyhow::Result<()> {
    let started = Instant::now();
    let root = crate::workspace_root();
    ensure_installed(CHROMIUM, "chromium", "the report page test")?;
    ensure_installed(ZSH, "zsh", "the zsh completion test")?;
    let already_running = crate::postgres::running();
    let url = crate::postgres::start()?;
    let outcome = suite(&root, &url);
    if !already_running {
        crate::postgres::stop()?;
    }
    let (tests, figures) = outcome?;
    println!("\n== figures");
    for line in figures {
        println!("{line}");
    }
    println!("cargo xtask test: every test of the workspace ran, in {:.0?}", started.elapsed());
    // The closing line test runners end with: a failing test ends the task before it, with cargo's own.
    println!("tests: {tests} passed, 0 failed");
    Ok(())
}

/// Installs a Debian package with apt-get unless `binary` exists already.
fn ensure_installed(binary: &str, package: &str, needed_by: &str) -> anyhow::Result<()> {
    if Path::new(binary).exists() {
        return Ok(());
    }
    println!("== installing {package} for {needed_by} (apt-get install {package})");
    let installed = Command::new("sh")
        .args([
            "-c",
            &format!(
                "apt-get update -qq && apt-get install -y -qq --no-install-recommends {package} >/dev/null"
            ),
        ])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("cannot run apt-get")?;
    if !installed.success() || !Path::new(binary).exists() {
        bail!(
            "{package} is missing at {binary} and apt-get could not install it: run as root, or install it"
        );
    }
    Ok(())
}

/// Runs the tests and the mapping benchmark in test mode; returns how many tests passed and the figure
/// lines they printed.
fn suite(root: &Path, postgres_url: &str) -> anyhow::Result<(u64, Vec<String>)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("== cargo test --workspace --locked (PostgreSQL at 127.0.0.1, Chromium at {CHROMIUM})");
    // --show-output prints what the passing tests printed, once, after each test binary: the figures.
    let mut child = Command::new(&cargo)
        .current_dir(root)
        .args(["test", "--workspace", "--locked", "--", "--show-output"])
        .env("ENRICH_TEST_POSTGRES_URL", postgres_url)
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run cargo test")?;
    let (mut passed, mut figures, mut skipped) = (0, Vec::new(), Vec::new());
    for line in BufReader::new(child.stdout.take().context("no output")?).lines() {
        let line = line?;
        println!("{line}");
        if let Some(count) = line.strip_prefix("test result: ok. ").and_then(|rest| rest.split(' ').next()) {
            passed += count.parse::<u64>().unwrap_or(0);
        }
        if line.starts_with("skipped") {
            skipped.push(line);
        } else if FIGURES.iter().any(|figure| line.starts_with(figure)) {
            figures.push(line);
        }
    }
    if !child.wait()?.success() {
        bail!("cargo test failed");
    }
    // A test that cannot get what it needs must fail, not pass saying it did nothing.
    if !skipped.is_empty() {
        bail!("tests passed without running:\n{}", skipped.join("\n"));
    }
    println!("== the mapping benchmark, in test mode (timings are measured by cargo xtask bench)");
    let bench = Command::new(&cargo)
        .current_dir(root)
        .args(["bench", "--locked", "-p", "enrich-clearbit", "--bench", "mapping", "--", "--test"])
        .status()?;
    if !bench.success() {
        bail!("the mapping benchmark failed in test mode");
    }
    Ok((passed, figures))
}
