//! `enrich state reset`: starting a connection's state over, knowingly; `enrich state export` and
//! `import`: moving a connection's state between stores (sled and PostgreSQL) without paying for any
//! user again.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use enrich_core::{ConnectionState, PendingWrite, StateStore, UserState};
use serde::{Deserialize, Serialize};

use super::plural;
use crate::config::Config;
use crate::store::State;

/// `enrich state reset NAME [--yes]`.
pub fn reset(config: &Config, name: &str, yes: bool) -> anyhow::Result<ExitCode> {
    let connection = config.connection(name).map_err(anyhow::Error::msg)?;
    let state = State::of(config)?;
    let folder = state.shown();
    if !yes
        && !confirmed(&format!(
            "Reset the state in {}? Every user of `{name}` is looked up again at the next sync, and each \
         lookup is paid for. Type yes to reset: ",
            folder
        ))?
    {
        eprintln!("error: {name}: not reset");
        return Ok(ExitCode::FAILURE);
    }
    let suppressed = state.reset(&connection.name)?;
    println!(
        "{name}: state reset in {folder}; every user will be looked up again at the next sync; {suppressed} \
         email{} forgotten on request stay{} forgotten",
        plural(suppressed as u64),
        if suppressed == 1 { "s" } else { "" }
    );
    Ok(ExitCode::SUCCESS)
}

/// One line of an export file. The first is the header, then the connection, users and pending writes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Record {
    Header { format: String, version: u32 },
    Connection(ConnectionState),
    User { identity: String, state: UserState },
    Pending(Box<PendingWrite>),
}

const FORMAT: &str = "enrich-state";
const VERSION: u32 = 1;
/// Users written to the store per call.
const BATCH: usize = 1_000;

/// `enrich state export NAME FILE`.
pub fn export(config: &Config, name: &str, file: &Path) -> anyhow::Result<ExitCode> {
    let connection = config.connection(name).map_err(anyhow::Error::msg)?;
    let store = State::of(config)?.open(&connection.name)?;
    let mut out =
        BufWriter::new(File::create(file).with_context(|| format!("cannot create {}", file.display()))?);
    let (users, pending) =
        write_export(store.as_ref(), &mut out).with_context(|| format!("cannot write {}", file.display()))?;
    println!(
        "{name}: exported {users} user{}, {pending} pending write{} and the connection's status and history to {}",
        plural(users),
        plural(pending),
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn write_export(store: &dyn StateStore, out: &mut impl Write) -> anyhow::Result<(u64, u64)> {
    let mut line = |record: &Record| -> anyhow::Result<()> {
        serde_json::to_writer(&mut *out, record)?;
        out.write_all(b"\n")?;
        Ok(())
    };
    line(&Record::Header { format: FORMAT.to_owned(), version: VERSION })?;
    line(&Record::Connection(store.connection()?))?;
    let mut users = 0;
    for user in store.users() {
        let (identity, state) = user?;
        line(&Record::User { identity, state })?;
        users += 1;
    }
    let pending = store.pending()?;
    for write in &pending {
        line(&Record::Pending(Box::new(write.clone())))?;
    }
    out.flush()?;
    Ok((users, pending.len() as u64))
}

/// `enrich state import NAME FILE`.
pub fn import(config: &Config, name: &str, file: &Path) -> anyhow::Result<ExitCode> {
    let connection = config.connection(name).map_err(anyhow::Error::msg)?;
    let state = State::of(config)?;
    let store = state.open(&connection.name)?;
    if store.users().next().is_some() || !store.pending()?.is_empty() {
        anyhow::bail!(
            "the state of `{name}` in {} already holds users: import only into an empty state",
            state.shown()
        );
    }
    let input = BufReader::new(File::open(file).with_context(|| format!("cannot open {}", file.display()))?);
    let (users, pending) =
        read_import(store.as_ref(), input).with_context(|| format!("cannot import {}", file.display()))?;
    println!(
        "{name}: imported {users} user{} and {pending} pending write{} into {}",
        plural(users),
        plural(pending),
        state.shown()
    );
    Ok(ExitCode::SUCCESS)
}

/// Loads the records into the store; the connection state last, once every user is in.
fn read_import(store: &dyn StateStore, input: impl BufRead) -> anyhow::Result<(u64, u64)> {
    let mut lines = input.lines().enumerate();
    let header = lines.next().map(|(_, line)| line).transpose()?.unwrap_or_default();
    match serde_json::from_str(&header) {
        Ok(Record::Header { format, version }) if format == FORMAT && version == VERSION => {}
        _ => anyhow::bail!("line 1: not an export of enrich state version {VERSION}"),
    }
    let (mut connection, mut users, mut pending) = (None, Vec::new(), Vec::new());
    let (mut user_count, mut pending_count) = (0, 0);
    for (index, line) in lines {
        let record: Record = serde_json::from_str(&line?).with_context(|| format!("line {}", index + 1))?;
        match record {
            Record::Header { .. } => anyhow::bail!("line {}: a second header", index + 1),
            Record::Connection(state) => connection = Some(state),
            Record::User { identity, state } => {
                users.push((identity, state));
                user_count += 1;
            }
            Record::Pending(write) => {
                pending.push(*write);
                pending_count += 1;
            }
        }
        if users.len() >= BATCH {
            store.put_users(&std::mem::take(&mut users))?;
        }
    }
    store.put_users(&users)?;
    store.put_pending(&pending)?;
    let connection = connection.context("the file holds no connection state")?;
    store.put_connection(&connection)?;
    Ok((user_count, pending_count))
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
    use enrich_core::conformance::{pending, user_state};
    use enrich_core::{MemoryStateStore, Outcome};

    use super::*;

    #[test]
    fn an_export_imports_into_another_store_as_it_was() {
        let from = MemoryStateStore::default();
        let users: Vec<(String, UserState)> =
            (0..2_500).map(|index| (format!("u{index:04}"), user_state(index, Outcome::Found))).collect();
        from.put_users(&users).unwrap();
        from.put_pending(&[pending("p1", 9)]).unwrap();
        from.forget(7).unwrap();
        from.put_connection(&ConnectionState { users_enriched: 2_500, ..from.connection().unwrap() })
            .unwrap();
        let mut file = Vec::new();
        assert_eq!(write_export(&from, &mut file).unwrap(), (2_499, 1));

        let to = MemoryStateStore::default();
        assert_eq!(read_import(&to, file.as_slice()).unwrap(), (2_499, 1));
        assert_eq!(to.user_states(), from.user_states());
        assert_eq!(to.pending().unwrap(), from.pending().unwrap());
        assert_eq!(to.connection().unwrap(), from.connection().unwrap());
        assert!(to.connection().unwrap().suppressed.contains(&7), "the forgotten stay forgotten");
    }

    #[test]
    fn a_file_that_is_not_an_export_is_refused() {
        let error = read_import(&MemoryStateStore::default(), "{\"user\": 1}\n".as_bytes()).unwrap_err();
        assert_eq!(error.to_string(), "line 1: not an export of enrich state version 1");
    }

    #[test]
    fn only_yes_confirms() {
        for answer in ["yes\n", "Y\n", " y "] {
            assert!(is_yes(answer), "{answer:?}");
        }
        for answer in ["\n", "no\n", "yess", ""] {
            assert!(!is_yes(answer), "{answer:?}");
        }
    }
}
