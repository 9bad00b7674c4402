//! Companies by domain, and answers kept across runs, end to end: with `lookup: company_by_domain` the
//! real binary asks Clearbit's Company API once per distinct work domain, writes every colleague the
//! company's `Company …` properties, skips free-mail domains (counted), and writes colleagues who join
//! later from the company the state kept, without a lookup. Reveal's answers are kept the same way: a
//! user at an address an earlier run looked up gets its company with no new Reveal lookup.

mod support;

use std::collections::BTreeSet;

use enrich_emulator::EmulatorConfig;
use serde_json::Value;
use support::{CSV_USERS, Row, Workspace, row};

const DOMAINS: usize = 30;

/// 300 colleagues at 30 work domains, and 10 users with free mail.
fn roster() -> Vec<Row> {
    let colleagues =
        (0..300).map(|n| row(&format!("user-{n}"), &format!("person{n}@company{}.io", n % DOMAINS), 0));
    let free_mail = (0..10).map(|n| row(&format!("free-{n}"), &format!("someone{n}@gmail.com"), 0));
    colleagues.chain(free_mail).collect()
}

fn company_by_domain(workspace: &Workspace) -> String {
    format!(
        "      lookup: company_by_domain\n      company_base_url: {}\n",
        workspace.emulator.clearbit_url()
    )
}

fn text<'a>(user: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a str> {
    user.get(name).and_then(Value::as_str)
}

#[tokio::test(flavor = "multi_thread")]
async fn one_lookup_per_work_domain_and_none_for_colleagues_who_come_later() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace.write_config(&company_by_domain(&workspace));
    let mut rows = roster();
    workspace.write_roster(&rows);

    let first = workspace.enrich(&["sync", "main"]).await;
    first.success();
    let requests = workspace.emulator.clearbit_requests();
    assert!(requests.iter().all(|request| request.path == "/v2/companies/find"), "the Company API only");
    let asked: BTreeSet<&str> = requests.iter().map(|request| request.email.as_str()).collect();
    assert_eq!(requests.len(), DOMAINS, "one lookup per domain: {asked:?}");
    assert_eq!(asked.len(), DOMAINS);
    assert!(!asked.contains("gmail.com"), "a free-mail domain is no company");
    assert_eq!(first.figure("lookups"), DOMAINS as u64, "{first}");
    assert_eq!(first.figure("lookups saved"), 300 - DOMAINS as u64, "{first}");
    assert_eq!(first.figure("skipped by the source"), 10, "{first}");

    let heap = workspace.emulator.heap_users();
    assert_eq!(heap.len(), 300, "the free-mail users are not written");
    for (identity, user) in &heap {
        assert!(text(user, "Company Name").is_some_and(|name| !name.is_empty()), "{identity}: {user:?}");
        let other: Vec<&String> = user
            .keys()
            .filter(|name| !name.starts_with("Company ") && !name.starts_with("Clearbit: "))
            .collect();
        assert!(other.is_empty(), "{identity}: only company properties, got {other:?}");
        assert!(!user.contains_key("Clearbit: Match"), "{identity}: no person was looked up");
    }

    // Five colleagues join: written from the companies the state kept, without a lookup.
    rows.extend((0..5).map(|n| row(&format!("newcomer-{n}"), &format!("new{n}@company{n}.io"), 0)));
    workspace.write_roster(&rows);
    let preview = workspace.enrich(&["sync", "main", "--dry-run"]).await;
    assert!(preview.success().stdout.contains("kept results    5 users"), "{preview}");
    let second = workspace.enrich(&["sync", "main"]).await;
    second.success();
    assert_eq!(workspace.emulator.clearbit_requests().len(), DOMAINS, "no new lookup:\n{second}");
    assert_eq!(second.figure("lookups"), 0, "{second}");
    assert_eq!(second.figure("lookups saved"), 5, "{second}");
    let heap = workspace.emulator.heap_users();
    for n in 0..5 {
        let newcomer = &heap[&format!("newcomer-{n}")];
        let colleague = &heap[&format!("user-{n}")];
        assert_eq!(text(newcomer, "Company Name"), text(colleague, "Company Name"), "newcomer-{n}");
        assert_eq!(
            text(newcomer, "Clearbit: Date Last Checked"),
            text(colleague, "Clearbit: Date Last Checked"),
            "checked as of the kept lookup, so due again when it expires"
        );
    }

    let export = workspace.enrich(&["state", "export", "main", "state.jsonl"]).await;
    assert!(export.success().stdout.contains(&format!("{DOMAINS} kept results")), "{export}");
}

/// Reveal's answers outlive the run that asked: an office address is looked up once per `refresh`.
#[tokio::test(flavor = "multi_thread")]
async fn a_user_at_an_address_an_earlier_run_revealed_gets_its_company_without_a_lookup() {
    const OFFICE: &str = "81.2.69.10";
    let workspace =
        Workspace::start(EmulatorConfig { not_found_share: 0.0, ..EmulatorConfig::default() }).await;
    workspace.emulator.assign_network(OFFICE, "northwind.io");
    let users = "    users:\n      type: csv\n      path: users.csv\n      email_property: email\n      \
                 ip_property: ip\n";
    let reveal = format!("      reveal:\n        base_url: {}\n", workspace.emulator.clearbit_url());
    workspace.write_config_of(&reveal, users, "");
    let now = chrono::Utc::now().to_rfc3339();
    let roster = |rows: &[(&str, &str)]| {
        let lines: String =
            rows.iter().map(|(identity, email)| format!("{identity},{now},{email},{OFFICE}\n")).collect();
        std::fs::write(workspace.path("users.csv"), format!("identity,last_seen,email,ip\n{lines}")).unwrap();
    };
    let reveal_lookups = || {
        workspace
            .emulator
            .clearbit_requests()
            .iter()
            .filter(|request| request.path == "/v1/companies/find")
            .count()
    };

    roster(&[("ana", "ana.berg@gmail.com")]);
    workspace.enrich(&["sync", "main"]).await.success();
    assert_eq!(reveal_lookups(), 1, "personal mail: the office address is revealed");

    // A colleague with personal mail, and one without email, at the same office, a run later.
    roster(&[("ana", "ana.berg@gmail.com"), ("bo", "bo.lund@gmail.com"), ("cy", "")]);
    let second = workspace.enrich(&["sync", "main"]).await;
    second.success();
    assert_eq!(reveal_lookups(), 1, "the address is not asked again:\n{second}");
    let heap = workspace.emulator.heap_users();
    for identity in ["ana", "bo", "cy"] {
        let user = &heap[identity];
        assert_eq!(text(user, "Clearbit: Company Source"), Some("reveal"), "{identity}: {user:?}");
        assert_eq!(text(user, "Company Name"), text(&heap["ana"], "Company Name"), "{identity}");
    }
    assert_eq!(second.figure("lookups"), 1, "bo's email only: {second}");
    let state = String::from_utf8_lossy(&workspace.state_bytes()).into_owned();
    assert!(!state.contains(OFFICE), "the address is kept by digest, never in clear");
}

/// The same mode for People Data Labs: one company enrichment per website.
#[tokio::test(flavor = "multi_thread")]
async fn people_data_labs_enriches_each_website_once() {
    const PDL_KEY: &str = "pdl_e2e_0123456789abcdef0123456789abcdef0123456789abcdef0123456789";
    let workspace =
        Workspace::start(EmulatorConfig { pdl_key: PDL_KEY.into(), ..EmulatorConfig::default() }).await;
    let source = format!(
        "      type: people_data_labs\n      api_key: ${{PDL_API_KEY}}\n      base_url: {}\n      \
         retry_delay: 5ms\n      lookup: company_by_domain",
        workspace.emulator.pdl_url()
    );
    workspace.write_config_sections(&source, CSV_USERS, "");
    let mut rows: Vec<Row> =
        (0..60).map(|n| row(&format!("user-{n}"), &format!("p{n}@firm{}.com", n % 6), 0)).collect();
    rows.extend((0..4).map(|n| row(&format!("free-{n}"), &format!("p{n}@yahoo.com"), 0)));
    workspace.write_roster(&rows);
    let sync = || {
        let mut command = workspace.command(&["sync", "main"]);
        command.env("PDL_API_KEY", PDL_KEY);
        async move {
            support::Run::from(tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap())
        }
    };

    let first = sync().await;
    first.success();
    let requests = workspace.emulator.pdl_requests();
    assert!(requests.iter().all(|request| request.path == "/v5/company/enrich" && !request.key_in_url));
    let websites: BTreeSet<&str> =
        requests.iter().flat_map(|request| request.emails.iter().map(String::as_str)).collect();
    assert_eq!((requests.len(), websites.len()), (6, 6), "one request per website: {websites:?}");
    assert_eq!(first.figure("skipped by the source"), 4, "{first}");
    assert_eq!(first.figure("lookups saved"), 54, "{first}");
    let heap = workspace.emulator.heap_users();
    assert_eq!(heap.len(), 60);
    assert!(
        heap.values().all(|user| text(user, "Company Name").is_some_and(|name| !name.is_empty())),
        "{heap:?}"
    );
    assert!(heap.values().all(|user| !user.keys().any(|name| name.starts_with("Person "))));

    rows.extend((0..2).map(|n| row(&format!("newcomer-{n}"), &format!("new{n}@firm{n}.com"), 0)));
    workspace.write_roster(&rows);
    let second = sync().await;
    second.success();
    assert_eq!(workspace.emulator.pdl_requests().len(), 6, "no new lookup:\n{second}");
    let heap = workspace.emulator.heap_users();
    assert_eq!(text(&heap["newcomer-1"], "Company Name"), text(&heap["user-1"], "Company Name"));
}
