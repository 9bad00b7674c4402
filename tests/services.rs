//! Right against the services as documented: what is no longer true is cleared in Heap, an account or
//! configuration problem stops the run at once without recording anybody wrongly, a user Heap refuses
//! fails alone, nothing fetched is paid for twice, and no redirect is followed.

mod support;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use enrich_emulator::{Emulator, EmulatorConfig, Scripted};
use serde_json::{Map, Value};
use support::{APP_ID, KEY, Run, Workspace, row};

const CHECKED: &str = "Clearbit: Date Last Checked";

/// Every generated email is found, so that the figures do not depend on the not-found share.
fn always_found() -> EmulatorConfig {
    EmulatorConfig { not_found_share: 0.0, ..EmulatorConfig::default() }
}

/// The config of connection `main`, with the given Clearbit base_url, Heap app_id and extra lines.
fn write_config(workspace: &Workspace, clearbit_url: &str, app_id: &str, extra_source: &str, schedule: &str) {
    let config = format!(
        "connections:
  main:
    source:
      type: clearbit
      api_key: ${{CLEARBIT_API_KEY}}
      base_url: {clearbit_url}
      retry_delay: 5ms
      pending_delay: 5ms
      requests_per_minute: 1000000
{extra_source}
    sink:
      type: heap
      app_id: \"{app_id}\"
      base_url: {heap}
      retry_delay: 5ms
      requests_per_second: 1000
    users:
      type: csv
      path: users.csv
      email_property: email
{schedule}",
        heap = workspace.emulator.heap_url(),
    );
    std::fs::write(workspace.path("enrich.yaml"), config).unwrap();
}

fn write_good_config(workspace: &Workspace, extra_source: &str, schedule: &str) {
    write_config(workspace, &workspace.emulator.clearbit_url(), APP_ID, extra_source, schedule);
}

/// Heap's user as a later write left it: the properties with a value (not cleared).
fn set_properties(properties: &Map<String, Value>) -> BTreeMap<String, Value> {
    properties
        .iter()
        .filter(|(_, value)| value.as_str() != Some(""))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// The properties the latest request carrying this identity wrote in full (not a check date alone).
fn last_full_write(workspace: &Workspace, identity: &str) -> Map<String, Value> {
    workspace
        .emulator
        .heap_requests()
        .into_iter()
        .flat_map(|request| request.users)
        .rfind(|user| user.identity == identity && user.properties.len() > 1)
        .map(|user| user.properties)
        .unwrap_or_else(|| panic!("{identity} was never written in full"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_change_and_an_opt_out_clear_every_old_property_in_heap() {
    let workspace = Workspace::start(always_found()).await;
    // Calvin Klein's real record is far richer than a generated company or a not-found answer.
    workspace.write_roster(&[
        row("mover", "bchris@calvinklein.com", 0),
        row("leaver", "alex@alexmaccaw.com", 0),
        row("stayer", "jane.doe@northwind-traders.com", 0),
    ]);
    // Everyone is due again at every run.
    write_good_config(&workspace, "", "    schedule:\n      refresh: 1ms\n");
    workspace.enrich(&["sync", "main"]).await.success();
    let before = workspace.emulator.heap_users();

    workspace.emulator.change_employer("bchris@calvinklein.com", "blue-harbor.io");
    workspace.emulator.opt_out("alex@alexmaccaw.com");
    let second = workspace.enrich(&["sync", "main"]).await;
    second.success();

    let after = workspace.emulator.heap_users();
    for identity in ["mover", "leaver"] {
        let new = last_full_write(&workspace, identity);
        let written = set_properties(&new);
        let stale: Vec<String> =
            set_properties(&after[identity]).into_keys().filter(|name| !written.contains_key(name)).collect();
        assert!(stale.is_empty(), "{identity} keeps old properties in Heap: {stale:?}");
        let cleared = before[identity].keys().filter(|name| after[identity][*name] == "").count();
        assert!(cleared > 0, "{identity}: nothing was cleared");
    }
    assert_eq!(after["mover"]["Company Domain"], "blue-harbor.io");
    let left: Vec<String> = set_properties(&after["leaver"]).into_keys().collect();
    assert_eq!(left, [CHECKED, "Clearbit: Match"], "only the check is left of the opted-out person");
    assert_eq!(after["leaver"]["Clearbit: Match"], "not found");
    let cleared_in_heap: usize = ["mover", "leaver"]
        .iter()
        .map(|identity| after[*identity].values().filter(|value| value.as_str() == Some("")).count())
        .sum();
    assert_eq!(second.figure("properties cleared"), cleared_in_heap as u64, "{second}");
    assert_eq!(set_properties(&after["stayer"]).len(), set_properties(&before["stayer"]).len());
}

/// What breaks a connection for one run, and how it is mended.
#[derive(Debug, Clone, Copy)]
enum Breakage {
    WrongBaseUrl,
    PlanLapsed,
    OverQuota,
    RefusedAppId,
}

impl Breakage {
    fn apply(self, workspace: &Workspace) {
        let clearbit = workspace.emulator.clearbit_url();
        let extra = "      max_concurrency: 1";
        write_config(workspace, &clearbit, APP_ID, extra, "");
        match self {
            Self::WrongBaseUrl => write_config(workspace, &format!("{clearbit}/v1"), APP_ID, extra, ""),
            Self::PlanLapsed => workspace.emulator.set_clearbit_plan_lapsed(true),
            Self::OverQuota => workspace.emulator.set_clearbit_quota(Some(0)),
            Self::RefusedAppId => write_config(workspace, &clearbit, "987654321", extra, ""),
        }
    }

    fn mend(self, workspace: &Workspace) {
        write_good_config(workspace, "      max_concurrency: 1", "");
        workspace.emulator.set_clearbit_plan_lapsed(false);
        workspace.emulator.set_clearbit_quota(None);
    }

    /// What `enrich status` shows after the broken run.
    fn error(self, workspace: &Workspace) -> String {
        match self {
            Self::WrongBaseUrl => format!(
                "Error: Clearbit answered 404 unknown_route for {}/v1/v2/combined/find: check base_url",
                workspace.emulator.clearbit_url()
            ),
            Self::PlanLapsed => "Error: Clearbit refused the account (403 Forbidden, forbidden:".to_owned(),
            Self::OverQuota => {
                "Error: Clearbit says the account is over its quota (402 Payment Required".to_owned()
            }
            Self::RefusedAppId => {
                "Error: Heap refused app_id 987654321 (400 Bad Request): Invalid app_id: 987654321".to_owned()
            }
        }
    }
}

/// Lookups Clearbit answered with something it bills, per email (a wrong route is not a lookup).
fn billed_lookups(emulator: &Emulator) -> BTreeMap<String, usize> {
    let mut billed = BTreeMap::new();
    for request in emulator.clearbit_requests() {
        if request.path == "/v2/combined/find" && matches!(request.status, 200 | 201 | 202 | 404) {
            *billed.entry(request.email).or_default() += 1;
        }
    }
    billed
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_or_configuration_problem_stops_at_once_and_nothing_is_paid_twice() {
    const USERS: usize = 30;
    for breakage in
        [Breakage::WrongBaseUrl, Breakage::PlanLapsed, Breakage::OverQuota, Breakage::RefusedAppId]
    {
        let workspace = Workspace::start(always_found()).await;
        let rows: Vec<_> =
            (0..USERS).map(|i| row(&format!("u{i}"), &format!("person{i}@firm{}.io", i % 4), 0)).collect();
        workspace.write_roster(&rows);
        breakage.apply(&workspace);

        let broken = workspace.enrich(&["sync", "main"]).await;
        broken.failure();
        let status = workspace.enrich(&["status"]).await;
        let expected = breakage.error(&workspace);
        assert!(status.stdout.starts_with(&format!("main: {expected}")), "{breakage:?}: {status}");
        assert!(workspace.emulator.heap_users().is_empty(), "{breakage:?}: Heap was written to");
        let asked = workspace.emulator.clearbit_requests().len();
        match breakage {
            // The first answer stops every lookup, those already waiting for a request permit too.
            Breakage::WrongBaseUrl | Breakage::PlanLapsed | Breakage::OverQuota => {
                assert_eq!(asked, 1, "{breakage:?}");
            }
            // Found out at the first write: what was fetched stays pending, written next run.
            Breakage::RefusedAppId => {}
        }

        breakage.mend(&workspace);
        let good = workspace.enrich(&["sync", "main"]).await;
        good.success();
        assert_eq!(workspace.emulator.heap_users().len(), USERS, "{breakage:?}: everyone is written");
        let billed = billed_lookups(&workspace.emulator);
        assert_eq!(billed.len(), USERS, "{breakage:?}: everyone is looked up");
        assert!(billed.values().all(|&times| times == 1), "{breakage:?}: paid twice: {billed:?}");
        let status = workspace.enrich(&["status"]).await;
        assert!(status.stdout.starts_with("main: Connected"), "{breakage:?}: {status}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_heap_refuses_fails_alone_and_is_never_looked_up_again() {
    let config = EmulatorConfig { heap_refused_identities: ["u7".to_owned()].into(), ..always_found() };
    let workspace = Workspace::start(config).await;
    let rows: Vec<_> = (0..20).map(|i| row(&format!("u{i}"), &format!("person{i}@firm.io"), 0)).collect();
    workspace.write_roster(&rows);
    write_good_config(&workspace, "", "");

    let first = workspace.enrich(&["sync", "main"]).await;
    let heap = workspace.emulator.heap_users();
    assert_eq!(heap.len(), 19, "every other user of the batch is written in the same run: {first}");
    assert!(!heap.contains_key("u7"));
    assert_eq!((first.figure("written"), first.figure("failed")), (19, 1), "{first}");
    assert!(first.stdout.contains("users[0]: identity is refused"), "Heap's message is shown: {first}");

    let second = workspace.enrich(&["sync", "main"]).await;
    assert_eq!(second.figure("lookups"), 0, "{second}");
    assert_eq!(second.figure("resumed without lookup"), 1, "{second}");
    assert_eq!(billed_lookups(&workspace.emulator)["person7@firm.io"], 1, "a refusal is not paid twice");
    let status = workspace.enrich(&["status"]).await;
    assert!(status.stdout.starts_with("main: Connected"), "{status}");
}

/// A second emulator on another loopback host, which must never hear from enrich.
async fn another_host() -> Emulator {
    let elsewhere = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), 0));
    Emulator::start_on(EmulatorConfig { clearbit_key: KEY.into(), ..always_found() }, elsewhere, elsewhere)
        .await
        .expect("another loopback host: 127.0.0.2 must be routable to this machine")
}

fn assert_stopped_by_redirect(run: &Run, location: &str) {
    run.failure();
    assert!(
        run.stdout.contains(&format!("redirecting to {location}")) || run.stderr.contains(location),
        "{run}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_redirect_is_followed_so_the_key_and_the_data_stay_put() {
    let elsewhere = another_host().await;
    let workspace = Workspace::start(always_found()).await;
    workspace.write_roster(&[row("u1", "person1@firm.io", 0)]);
    write_good_config(&workspace, "", "");

    let location = format!("{}/v2/combined/find", elsewhere.clearbit_url());
    workspace.emulator.script_clearbit("person1@firm.io", vec![Scripted::Redirect(302, location.clone())]);
    let run = workspace.enrich(&["sync", "main"]).await;
    let heard = elsewhere.clearbit_requests();
    let with_key = heard.iter().filter(|request| request.authorization.is_some()).count();
    assert!(heard.is_empty(), "another host got {} lookups, {with_key} with the key", heard.len());
    assert_stopped_by_redirect(&run, &location);
    let status = workspace.enrich(&["status"]).await;
    assert!(status.stdout.contains(&format!("redirecting to {location}")), "{status}");

    let location = format!("{}/api/add_user_properties", elsewhere.heap_url());
    workspace.emulator.script_heap(vec![Scripted::Redirect(307, location.clone())]);
    let run = workspace.enrich(&["sync", "main"]).await;
    assert!(elsewhere.heap_requests().is_empty(), "users' properties went to another host");
    assert_stopped_by_redirect(&run, &location);
    assert!(workspace.emulator.heap_users().is_empty());

    let mended = workspace.enrich(&["sync", "main"]).await;
    mended.success();
    assert_eq!(mended.figure("lookups"), 0, "the fetched result was kept: {mended}");
    assert_eq!(workspace.emulator.heap_users().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_identity_with_several_emails_is_enriched_from_its_latest_row_every_run() {
    let workspace = Workspace::start(always_found()).await;
    workspace.write_roster(&[
        row("u1", "old.job@northwind-traders.com", 5),
        row(" u1 ", "new.job@blue-harbor.io", 1),
        row("u2", "person2@firm.io", 0),
    ]);
    write_good_config(&workspace, "", "    schedule:\n      refresh: 1ms\n");
    for _ in 0..2 {
        let run = workspace.enrich(&["sync", "main"]).await;
        run.success();
        assert_eq!(run.figure("lookups"), 2, "{run}");
        assert_eq!(run.figure("with several emails"), 1, "{run}");
        let warnings = run.stderr.matches("have several emails").count();
        assert_eq!(warnings, 1, "one warning per run: {run}");
    }
    let asked: Vec<String> = workspace.emulator.clearbit_requests().into_iter().map(|r| r.email).collect();
    assert_eq!(asked.iter().filter(|email| email.starts_with("old.job")).count(), 0, "{asked:?}");
    assert_eq!(asked.iter().filter(|email| email.starts_with("new.job")).count(), 2, "{asked:?}");
    let heap = workspace.emulator.heap_users();
    assert_eq!(heap.keys().collect::<Vec<_>>(), ["u1", "u2"], "the identity is trimmed");
    assert_eq!(heap["u1"]["Company Domain"], "blue-harbor.io");
}

#[tokio::test(flavor = "multi_thread")]
async fn lookups_pin_the_api_version_and_send_the_rosters_match_hints() {
    let workspace = Workspace::start(always_found()).await;
    let today = chrono::Utc::now().to_rfc3339();
    let csv = format!(
        "identity,last_seen,email,given_name,family_name,ip_address\n\
         u1,{today},ada@firm.io,Ada,Lovelace,203.0.113.7\n\
         u2,{today},bo@firm.io,,,\n"
    );
    std::fs::write(workspace.path("users.csv"), csv).unwrap();
    write_good_config(&workspace, "", "");
    workspace.enrich(&["sync", "main"]).await.success();
    let requests = workspace.emulator.clearbit_requests();
    assert!(requests.iter().all(|request| request.api_version.as_deref() == Some("2022-12-15")));
    let hints: BTreeMap<String, Vec<(String, String)>> =
        requests.into_iter().map(|request| (request.email, request.hints)).collect();
    let pair = |name: &str, value: &str| (name.to_owned(), value.to_owned());
    assert_eq!(
        hints["ada@firm.io"],
        [pair("given_name", "Ada"), pair("family_name", "Lovelace"), pair("ip_address", "203.0.113.7")]
    );
    assert_eq!(hints["bo@firm.io"], []);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_201_is_written_as_found_and_an_invalid_email_is_asked_again_after_its_interval() {
    let workspace = Workspace::start(always_found()).await;
    workspace.write_roster(&[row("u1", "created@firm.io", 0), row("u2", "info@firm.io", 0)]);
    workspace.emulator.script_clearbit("created@firm.io", vec![Scripted::Created]);
    write_good_config(&workspace, "      invalid_retry_after: 1ms", "");
    let first = workspace.enrich(&["sync", "main"]).await;
    first.success();
    assert_eq!((first.figure("found"), first.figure("invalid")), (1, 1), "{first}");
    assert_eq!(workspace.emulator.heap_users()["u1"]["Company Domain"], "firm.io");
    let second = workspace.enrich(&["sync", "main"]).await;
    assert_eq!(second.figure("lookups"), 1, "only the invalid email, its interval over: {second}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deprecated_api_version_is_warned_about_once_per_run() {
    let workspace = Workspace::start(always_found()).await;
    let rows: Vec<_> = (0..5).map(|i| row(&format!("u{i}"), &format!("person{i}@firm.io"), 0)).collect();
    workspace.write_roster(&rows);
    write_good_config(&workspace, "      api_version: \"2016-01-01\"", "");
    let run = workspace.enrich(&["sync", "main"]).await;
    run.success();
    assert_eq!(run.figure("lookups"), 5);
    assert_eq!(run.stderr.matches("Clearbit warns about the API version").count(), 1, "{run}");
    assert!(
        workspace.emulator.clearbit_requests().iter().all(|r| r.api_version.as_deref() == Some("2016-01-01"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_says_heap_cannot_confirm_an_app_id() {
    let config = EmulatorConfig { heap_accepts_unknown_app_ids: true, ..always_found() };
    let workspace = Workspace::start(config).await;
    workspace.write_roster(&[row("u1", "person1@firm.io", 0)]);
    write_config(&workspace, &workspace.emulator.clearbit_url(), "555", "", "");
    let check = workspace.enrich(&["check", "main"]).await;
    check.success();
    assert!(check.stdout.contains("Heap took a request for app_id 555"), "{check}");
    assert!(check.stdout.contains("Heap answers 200 to app ids it does not know"), "{check}");
    assert!(
        check.stdout.contains(&format!("the first sync proves the app_id once \"{CHECKED}\" shows")),
        "{check}"
    );
    // What check cannot see, a sync does not see either: the data goes nowhere.
    workspace.enrich(&["sync", "main"]).await.success();
    assert!(workspace.emulator.heap_users().is_empty());
}
