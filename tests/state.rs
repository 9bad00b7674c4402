//! The state folder under hostile conditions: a forget that must leave no trace, a damaged database, a
//! full disk, permissions, a clock that went forward and back.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use enrich_core::StateStore;
use enrich_emulator::EmulatorConfig;
use enrich_state_sled::SledStateStore;
use serde_json::Value;
use support::{Row, Workspace, row};

/// The documentation's person, answered by the emulator with a name, a bio and more of their own.
const PERSON: &str = "Alex@AlexMacCaw.com";

/// The roster: the person (Heap identity = email, as is common) and others.
fn roster_with_the_person(others: usize) -> Vec<Row> {
    let mut rows = vec![row(PERSON, PERSON, 0)];
    rows.extend(
        (0..others).map(|index| row(&format!("u{index}"), &format!("user{index}@firm{index}.io"), 0)),
    );
    rows
}

/// The person's text values in Heap that no other user has: what the state must not keep of them.
fn distinctive_values(workspace: &Workspace) -> Vec<String> {
    let heap = workspace.emulator.heap_users();
    let text_values = |properties: &serde_json::Map<String, Value>| -> Vec<String> {
        properties
            .iter()
            .filter(|(name, _)| !name.starts_with("Clearbit:"))
            .filter_map(|(_, value)| value.as_str().map(str::to_owned))
            .collect()
    };
    // What others have, and the property names, are no trace of this person.
    let common: Vec<String> = heap
        .iter()
        .flat_map(|(identity, properties)| {
            let values = if identity == PERSON { Vec::new() } else { text_values(properties) };
            values.into_iter().chain(properties.keys().cloned())
        })
        .collect();
    let mut values: Vec<String> = text_values(&heap[PERSON])
        .into_iter()
        .filter(|value| value.len() >= 6 && !common.iter().any(|other| other.contains(value.as_str())))
        .collect();
    values.sort();
    values.dedup();
    values
}

/// What of `needles` the state folder holds, compared without regard to case.
fn traces(workspace: &Workspace, needles: &[String]) -> Vec<String> {
    let bytes = workspace.state_bytes().to_ascii_lowercase();
    needles
        .iter()
        .filter(|needle| {
            let needle = needle.to_ascii_lowercase();
            bytes.windows(needle.len()).any(|window| window == needle.as_bytes())
        })
        .cloned()
        .collect()
}

fn lookups_of(workspace: &Workspace, email: &str) -> usize {
    let email = email.to_ascii_lowercase();
    workspace.emulator.clearbit_requests().iter().filter(|request| request.email == email).count()
}

fn heap_writes_of(workspace: &Workspace, identity: &str) -> usize {
    let requests = workspace.emulator.heap_requests();
    requests.iter().flat_map(|request| &request.users).filter(|user| user.identity == identity).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn forget_leaves_no_trace_in_any_file_of_the_state_even_after_the_next_sync() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace.write_roster(&roster_with_the_person(5));
    workspace.enrich(&["sync", "main"]).await.success();
    let mut needles = distinctive_values(&workspace);
    assert!(needles.iter().any(|value| value == "Alex MacCaw"), "the person's name is written: {needles:?}");
    needles.push(PERSON.to_owned());
    let before = traces(&workspace, &needles);
    assert!(before.contains(&PERSON.to_owned()), "the test finds what it looks for: {before:?}");

    workspace.enrich(&["forget", "main", "alex@alexmaccaw.com"]).await.success();
    assert_eq!(traces(&workspace, &needles), Vec::<String>::new(), "after forget");
    let next = workspace.enrich(&["sync", "main"]).await;
    next.success();
    assert_eq!(next.figure("skipped by the source"), 1, "the person is still in the roster");
    let after = traces(&workspace, &needles);
    assert_eq!(after, Vec::<String>::new(), "of {} values held before forget: {before:?}", before.len());
}

/// The person and three others synced, then the person forgotten.
async fn synced_then_forgotten() -> Workspace {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace.write_roster(&roster_with_the_person(3));
    workspace.enrich(&["sync", "main"]).await.success();
    workspace.enrich(&["forget", "main", PERSON]).await.success();
    workspace
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_connection_file_does_not_bring_a_forgotten_person_back() {
    let workspace = synced_then_forgotten().await;
    let heap_writes = heap_writes_of(&workspace, PERSON);

    std::fs::remove_file(workspace.path(".enrich/main/connection.json")).unwrap();
    let next = workspace.enrich(&["sync", "main"]).await;
    next.success();
    assert_eq!(lookups_of(&workspace, PERSON), 1, "looked up by the first sync only");
    assert_eq!(heap_writes_of(&workspace, PERSON), heap_writes, "nothing written to Heap for them since");
    assert_eq!(next.figure("checked recently"), 3, "the others are remembered");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_database_is_reported_not_started_afresh() {
    let workspace = synced_then_forgotten().await;

    std::fs::remove_dir_all(workspace.path(".enrich/main/users")).unwrap();
    let next = workspace.enrich(&["sync", "main"]).await;
    next.failure();
    assert!(next.stderr.contains("is damaged") && next.stderr.contains("enrich state reset main"), "{next}");
    assert_eq!(workspace.emulator.clearbit_requests().len(), 4, "no lookup since the first sync");

    // Starting over knowingly keeps the forgotten person forgotten.
    workspace.enrich(&["state", "reset", "main", "--yes"]).await.success();
    let over = workspace.enrich(&["sync", "main"]).await;
    over.success();
    assert_eq!(over.figure("lookups"), 3, "{over}");
    assert_eq!(lookups_of(&workspace, PERSON), 1);
}

/// 64 bytes that are not sled's, the same every run.
fn noise() -> [u8; 64] {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    std::array::from_fn(|_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state.to_le_bytes()[0]
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn random_bytes_in_the_database_stop_the_sync_until_it_is_reset_knowingly() {
    use std::os::unix::fs::FileExt;

    let workspace = Workspace::start(EmulatorConfig::default()).await;
    let rows: Vec<Row> =
        (0..20).map(|index| row(&format!("u{index}"), &format!("p{index}@firm.io"), 0)).collect();
    workspace.write_roster(&rows);
    workspace.enrich(&["sync", "main"]).await.success();

    let db = workspace.path(".enrich/main/users/db");
    let file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    file.write_all_at(&noise(), file.metadata().unwrap().len() / 2).unwrap();
    drop(file);
    let damaged = workspace.enrich(&["sync", "main"]).await;
    damaged.failure();
    assert!(damaged.stderr.contains(".enrich/main is damaged"), "names the folder: {damaged}");
    assert!(
        damaged.stderr.contains("restore") && damaged.stderr.contains("enrich state reset main"),
        "{damaged}"
    );
    assert!(!damaged.stderr.contains("panicked"), "{damaged}");
    assert_eq!(workspace.emulator.clearbit_requests().len(), 20, "no lookup after the damage");

    let unconfirmed = workspace.enrich(&["state", "reset", "main"]).await;
    unconfirmed.failure();
    assert!(unconfirmed.stderr.contains("--yes"), "no terminal to confirm on: {unconfirmed}");
    let declined = reset_on_a_terminal(&workspace, "no").await;
    declined.failure();
    assert!(
        declined.stdout.contains("Every user of `main` is looked up again"),
        "asks, saying the cost: {declined}"
    );
    assert!(workspace.enrich(&["sync", "main"]).await.stderr.contains("is damaged"), "not reset");
    let reset = reset_on_a_terminal(&workspace, "yes").await;
    reset.success();
    assert!(reset.stdout.contains("every user will be looked up again"), "{reset}");
    let again = workspace.enrich(&["sync", "main"]).await;
    again.success();
    assert_eq!(again.figure("lookups"), 20);
}

/// `enrich state reset main` on a terminal, answered `answer`.
async fn reset_on_a_terminal(workspace: &Workspace, answer: &str) -> support::Run {
    workspace.on_a_terminal("state reset main", answer).await
}

/// A tmpfs of its own, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(at)
            .status();
        assert!(
            mounted.as_ref().is_ok_and(std::process::ExitStatus::success),
            "this test fills a small disk of its own: it needs `mount -t tmpfs` to work, which takes root \
             (run the tests as root, as CI does); mount said {mounted:?}"
        );
        Self(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the disk holding `folder` but for `spare` bytes.
fn fill(folder: &Path, spare: u64) -> PathBuf {
    use std::io::Write;

    let path = folder.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![1u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let length = file.metadata().unwrap().len();
    file.set_len(length.saturating_sub(spare)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_is_one_line_recorded_in_the_status_and_loses_nothing_done_before() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    let state = workspace.path(".enrich");
    let _disk = Tmpfs::mount(&state, "16m");
    let rows: Vec<Row> =
        (0..600).map(|index| row(&format!("u{index}"), &format!("p{index}@firm.io"), 0)).collect();
    workspace.write_roster(&rows[..50]);
    workspace.enrich(&["sync", "main"]).await.success();

    let filler = fill(&state, 1024 * 1024);
    workspace.write_roster(&rows);
    let full = workspace.enrich(&["sync", "main"]).await;
    full.failure();
    let errors: Vec<&str> = full.stderr.lines().filter(|line| line.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{full}");
    assert!(errors[0].contains("no space left on the device"), "{full}");
    for debug_text in ["Os {", "code: 28", "panicked"] {
        assert!(!full.stderr.contains(debug_text), "{full}");
    }
    let status = workspace.enrich(&["status", "main"]).await;
    assert!(status.stdout.starts_with("main: Error: state store:"), "{status}");
    assert!(status.stdout.contains("no space left on the device"), "{status}");

    std::fs::remove_file(filler).unwrap();
    let after = workspace.enrich(&["sync", "main"]).await;
    after.success();
    assert_eq!(after.figure("checked recently"), 50, "the first sync's users are still recorded: {after}");
    assert_eq!(workspace.emulator.heap_users().len(), 600);
    for done in &rows[..50] {
        assert_eq!(lookups_of(&workspace, &done.email), 1, "{} was looked up again", done.email);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_folder_and_file_of_the_state_is_its_owners_only() {
    let workspace = synced_then_forgotten().await;
    workspace.enrich(&["sync", "main"]).await.success();
    let mut open = Vec::new();
    collect_open(&workspace.path(".enrich"), &mut open);
    assert_eq!(open, Vec::<String>::new(), "folders 0700, files 0600");
}

/// Paths under `folder` that anyone but their owner may read, with their mode.
fn collect_open(folder: &Path, open: &mut Vec<String>) {
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        let private = if path.is_dir() { 0o700 } else { 0o600 };
        if mode != private {
            open.push(format!("{} {mode:o}", path.display()));
        }
        if path.is_dir() {
            collect_open(&path, open);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_check_stamped_in_the_future_does_not_keep_a_user_checked() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace.write_roster(&[row("u1", "someone@firm.io", 0)]);
    workspace.enrich(&["sync", "main"]).await.success();
    {
        // As a run with the clock set a month forward would have stamped it.
        let store = SledStateStore::open(&workspace.path(".enrich"), "main").unwrap();
        let mut state = store.user("u1").unwrap().unwrap();
        state.checked_at = Some(chrono::Utc::now() + chrono::Duration::days(30));
        store.put_users(&[("u1".to_owned(), state)]).unwrap();
        store.flush().unwrap();
    }
    let next = workspace.enrich(&["sync", "main"]).await;
    next.success();
    assert_eq!(next.figure("lookups"), 1, "{next}");
}
