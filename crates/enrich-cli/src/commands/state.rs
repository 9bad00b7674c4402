//! `enrich state reset`: starting a connection's state over, knowingly.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use enrich_state_sled::SledStateStore;

use super::plural;
use crate::config::Config;

/// `enrich state reset NAME [--yes]`.
pub fn reset(config: &Config, name: &str, yes: bool) -> anyhow::Result<ExitCode> {
    let connection = config.connection(name).map_err(anyhow::Error::msg)?;
    let folder = config.state_dir.join(&connection.name);
    if !yes
        && !confirmed(&format!(
            "Reset the state in {}? Every user of `{name}` is looked up again at the next sync, and each \
         lookup is paid for. Type yes to reset: ",
            folder.display()
        ))?
    {
        eprintln!("error: {name}: not reset");
        return Ok(ExitCode::FAILURE);
    }
    let suppressed = SledStateStore::reset(&config.state_dir, &connection.name)?;
    println!(
        "{name}: state reset in {}; every user will be looked up again at the next sync; {suppressed} \
         email{} forgotten on request stay{} forgotten",
        folder.display(),
        plural(suppressed as u64),
        if suppressed == 1 { "s" } else { "" }
    );
    Ok(ExitCode::SUCCESS)
}

/// Asks on the terminal; refuses to guess when there is none.
pub(super) fn confirmed(question: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("not on a terminal, so nobody can confirm: add --yes to go ahead without asking");
    }
    let mut err = std::io::stderr().lock();
    write!(err, "{question}")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(is_yes(&answer))
}

fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_yes_confirms() {
        for answer in ["yes\n", "Y\n", " y "] {
            assert!(super::is_yes(answer), "{answer:?}");
        }
        for answer in ["\n", "no\n", "yess", ""] {
            assert!(!super::is_yes(answer), "{answer:?}");
        }
    }
}
