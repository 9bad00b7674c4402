//! `cargo xtask postgres`: the throwaway PostgreSQL server the warehouse tests run against, started and
//! stopped through `.ci/postgres`, the one script developers and CI share.

use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// What `.ci/postgres start` prints before the URL, for `eval`.
const URL_EXPORT: &str = "export ENRICH_TEST_POSTGRES_URL=";

/// Starts the server on 127.0.0.1 (installing PostgreSQL first when it is missing), or finds it already
/// running, and returns the URL to set as `ENRICH_TEST_POSTGRES_URL`.
pub fn start() -> anyhow::Result<String> {
    let printed = run_script("start")?;
    printed
        .lines()
        .find_map(|line| line.strip_prefix(URL_EXPORT))
        .map(str::to_owned)
        .context(".ci/postgres start printed no URL")
}

/// Stops the server and deletes its files; does nothing when none is running.
pub fn stop() -> anyhow::Result<()> {
    run_script("stop")?;
    Ok(())
}

/// Whether the server runs already (started by someone else, who will stop it).
pub fn running() -> bool {
    let script = crate::workspace_root().join(".ci/postgres");
    Command::new("bash").arg(script).arg("running").status().is_ok_and(|status| status.success())
}

/// Runs `.ci/postgres ACTION`, letting its messages through, and returns what it printed on stdout.
fn run_script(action: &str) -> anyhow::Result<String> {
    let script = crate::workspace_root().join(".ci/postgres");
    let output = Command::new("bash")
        .arg(&script)
        .arg(action)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !output.status.success() {
        bail!(".ci/postgres {action} failed ({})", output.status);
    }
    String::from_utf8(output.stdout).context(".ci/postgres printed something other than UTF-8")
}
