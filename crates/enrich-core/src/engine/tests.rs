//! Engine tests with in-memory fakes of every connector.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use futures::StreamExt;

use super::*;
use crate::{
    ConnectorError, DirectoryError, KeyKind, Lookup, LookupHints, MemoryStateStore, Outcome, PendingWrite,
    Properties, PropertyInfo, PropertyKind, PropertyValue, Record, Refused, UserRecord, UserState,
    UserStream, UserUpdate, ValueRules,
};

#[derive(Debug, Default)]
struct FakeSource {
    answers: Mutex<HashMap<String, Result<Lookup, ConnectorError>>>,
    /// Lookups of these emails never finish.
    hang: Vec<String>,
    /// Emails at this domain are declined.
    declined_domain: Option<String>,
    /// Users without a usable email are looked up by their IP address.
    falls_back_to_ip: bool,
    asked: Mutex<Vec<String>>,
    /// The IP hint of each lookup, in order.
    hinted_ips: Mutex<Vec<Option<std::net::IpAddr>>>,
    /// Keys one request takes: above 1 it is a batch source.
    keys_per_request: usize,
    /// The keys of each batch request, in order.
    requests: Mutex<Vec<Vec<String>>>,
    /// Answers are kept in the state for later users of their key.
    keeps_results: bool,
    /// Users are looked up by their email's domain.
    by_domain: bool,
}

impl FakeSource {
    fn with(answers: &[(&str, Result<Lookup, ConnectorError>)]) -> Self {
        let answers = answers.iter().map(|(email, answer)| ((*email).to_owned(), answer.clone())).collect();
        Self { answers: Mutex::new(answers), ..Self::default() }
    }

    fn answer(&self, email: &str, answer: Result<Lookup, ConnectorError>) {
        self.answers.lock().unwrap().insert(email.to_owned(), answer);
    }

    fn in_batches_of(self, keys_per_request: usize) -> Self {
        Self { keys_per_request, ..self }
    }

    fn asked(&self) -> Vec<String> {
        let mut asked = self.asked.lock().unwrap().clone();
        asked.sort();
        asked
    }
}

#[async_trait]
impl Source for FakeSource {
    fn kind(&self) -> &'static str {
        "fake"
    }
    fn key_kind(&self) -> KeyKind {
        if self.by_domain { KeyKind::Domain } else { KeyKind::Email }
    }
    fn checked_property(&self) -> &str {
        "Fake: Date Last Checked"
    }
    fn properties(&self) -> Vec<PropertyInfo> {
        vec![PropertyInfo {
            name: "Company Name".into(),
            path: Some("company.name".into()),
            kind: PropertyKind::Text,
            description: "The company's name".into(),
            derived: false,
        }]
    }
    fn max_in_flight(&self) -> usize {
        3
    }
    fn max_keys_per_request(&self) -> usize {
        self.keys_per_request.max(1)
    }
    async fn lookup_batch(
        &self,
        keys: &[(LookupKey, LookupHints)],
        stop: &CancellationToken,
    ) -> Vec<Option<Result<Lookup, ConnectorError>>> {
        self.requests.lock().unwrap().push(keys.iter().map(|(key, _)| key.to_string()).collect());
        let mut answers = Vec::new();
        for (key, hints) in keys {
            answers.push(self.lookup(key, hints, stop).await);
        }
        answers
    }
    fn declines(&self, key: &LookupKey) -> Option<&'static str> {
        let domain = self.declined_domain.as_deref()?;
        key.to_string().ends_with(&format!("@{domain}")).then_some("declined domain")
    }
    fn fallback_key(&self, user: &UserRecord) -> Option<LookupKey> {
        user.ip.filter(|_| self.falls_back_to_ip).map(LookupKey::Ip)
    }
    fn caches(&self, _key: &LookupKey) -> bool {
        self.keeps_results
    }
    async fn lookup(
        &self,
        key: &LookupKey,
        hints: &LookupHints,
        _stop: &CancellationToken,
    ) -> Option<Result<Lookup, ConnectorError>> {
        let email = key.to_string();
        self.asked.lock().unwrap().push(email.clone());
        self.hinted_ips.lock().unwrap().push(hints.ip);
        if self.hang.contains(&email) {
            std::future::pending::<()>().await;
        }
        let answer = self.answers.lock().unwrap().get(&email).cloned();
        Some(answer.unwrap_or(Ok(Lookup::NotFound(Record::default()))))
    }
    async fn check(&self) -> Result<String, ConnectorError> {
        Ok("fine".into())
    }
}

#[derive(Debug)]
struct FakeSink {
    max_batch: usize,
    answers: Mutex<Vec<Result<(), ConnectorError>>>,
    /// Identities refused one by one, with this reason.
    refuse: Vec<String>,
    /// Users without identity cannot be addressed, as with Heap.
    needs_identity: bool,
    /// What the sink takes of values.
    rules: ValueRules,
    batches: Mutex<Vec<Vec<UserUpdate>>>,
}

impl FakeSink {
    fn new(max_batch: usize) -> Self {
        Self {
            max_batch,
            answers: Mutex::default(),
            refuse: Vec::new(),
            needs_identity: false,
            rules: ValueRules::default(),
            batches: Mutex::default(),
        }
    }

    fn refusing(self, identities: &[&str]) -> Self {
        Self { refuse: identities.iter().map(|identity| (*identity).to_owned()).collect(), ..self }
    }

    fn failing_first(self, answers: Vec<Result<(), ConnectorError>>) -> Self {
        *self.answers.lock().unwrap() = answers;
        self
    }

    fn written(&self) -> HashMap<String, Properties> {
        let batches = self.batches.lock().unwrap();
        let written = batches.iter().flatten();
        written.map(|update| (update.state_key().into_owned(), update.properties.clone())).collect()
    }
}

#[async_trait]
impl Sink for FakeSink {
    fn kind(&self) -> &'static str {
        "fake"
    }
    fn max_batch(&self) -> usize {
        self.max_batch
    }
    fn cannot_address(&self, user: &UserRecord) -> Option<&'static str> {
        (self.needs_identity && user.identity.is_none()).then_some("no identity")
    }
    async fn write(&self, batch: &[UserUpdate]) -> Result<Refused, ConnectorError> {
        assert!(batch.len() <= self.max_batch, "batch of {} over the limit", batch.len());
        let mut answers = self.answers.lock().unwrap();
        if !answers.is_empty() {
            answers.remove(0)?;
        }
        let (refused, taken): (Vec<_>, Vec<_>) = batch.iter().enumerate().partition(|(_, update)| {
            self.refuse.iter().any(|refused| update.identity.as_ref() == Some(refused))
        });
        self.batches.lock().unwrap().push(taken.into_iter().map(|(_, update)| update.clone()).collect());
        Ok(refused.into_iter().map(|(at, _)| (at, "400: refused identity".to_owned())).collect())
    }
    async fn check(&self) -> Result<String, ConnectorError> {
        Ok("fine".into())
    }
}

#[derive(Debug)]
struct FakeDirectory {
    rows: Vec<Result<UserRecord, DirectoryError>>,
}

#[async_trait]
impl UserDirectory for FakeDirectory {
    fn describe(&self) -> String {
        "fake.csv".into()
    }
    async fn users(&self, _seen_since: DateTime<Utc>) -> Result<UserStream, ConnectorError> {
        Ok(futures::stream::iter(self.rows.clone()).boxed())
    }
}

/// One instant for every row, so that rows seen the same number of days ago are seen equally recently.
static TEST_START: std::sync::LazyLock<DateTime<Utc>> = std::sync::LazyLock::new(Utc::now);

fn user(identity: &str, email: Option<&str>, seen_days_ago: i64) -> Result<UserRecord, DirectoryError> {
    Ok(UserRecord {
        identity: Some(identity.into()),
        user_id: None,
        email: email.map(Into::into),
        ip: None,
        name: crate::PersonName::default(),
        last_seen: *TEST_START - chrono::Duration::days(seen_days_ago),
    })
}

fn found(company: &str) -> Result<Lookup, ConnectorError> {
    let mut properties = Properties::new();
    properties.insert("Company Name".into(), PropertyValue::text(company));
    Ok(Lookup::Found(Record { properties, ..Record::default() }))
}

struct Harness {
    source: Arc<FakeSource>,
    sink: Arc<FakeSink>,
    store: Arc<MemoryStateStore>,
    connection: Connection,
}

fn harness(source: FakeSource, sink: FakeSink, rows: Vec<Result<UserRecord, DirectoryError>>) -> Harness {
    harness_with(source, sink, rows, Schedule::default())
}

fn harness_with(
    source: FakeSource,
    sink: FakeSink,
    rows: Vec<Result<UserRecord, DirectoryError>>,
    schedule: Schedule,
) -> Harness {
    let source = Arc::new(source);
    let rules = sink.rules;
    let sink = Arc::new(sink);
    let connection = Connection {
        name: "test".into(),
        source: source.clone(),
        sink: sink.clone(),
        rules,
        users: Arc::new(FakeDirectory { rows }),
        schedule,
    };
    Harness { source, sink, store: Arc::new(MemoryStateStore::default()), connection }
}

impl Harness {
    /// The names of the properties a user's state says were last written, sorted.
    fn written_names(&self, identity: &str) -> Vec<String> {
        let table = self.store.connection().unwrap().property_names;
        let state = &self.store.user_states()[identity];
        assert!(state.written_properties.is_empty(), "names are kept once per connection, not per user");
        let mut names: Vec<String> =
            state.written.positions().map(|position| table[position].clone()).collect();
        names.sort();
        names
    }

    async fn run(&self) -> SyncReport {
        let request = SyncRequest::over_window(RunKind::Manual, &self.connection.schedule, Utc::now());
        sync(&self.connection, self.store.clone(), request).await.unwrap()
    }
}

#[tokio::test]
async fn enriches_due_users_once_per_email_and_then_is_connected() {
    let h = harness(
        FakeSource::with(&[
            ("a@acme.com", found("Acme")),
            ("c@nowhere.io", Ok(Lookup::NotFound(Record::default()))),
        ]),
        FakeSink::new(2),
        vec![
            user("u1", Some("A@acme.com"), 1),
            user("u2", Some("a@acme.com"), 2), // shares u1's email
            user("u3", Some("c@nowhere.io"), 3),
            user("u4", None, 1),
            user("u5", Some("not an email"), 1),
            user("u6", Some("old@acme.com"), 30), // outside the 7-day window
            Err(DirectoryError::BadRow { location: "fake.csv:8".into(), message: "bad date".into() }),
        ],
    );
    let report = h.run().await;
    let s = &report.run.summary;
    assert_eq!((s.read, s.bad_rows, s.outside_window, s.no_email, s.malformed_email), (6, 1, 1, 1, 1));
    assert_eq!((s.due, s.lookups, s.found, s.not_found, s.written), (3, 2, 2, 1, 3));
    assert_eq!(h.source.asked(), vec!["a@acme.com", "c@nowhere.io"]);
    assert_eq!(report.status, ConnectionStatus::Connected);

    let written = h.sink.written();
    assert_eq!(written["u1"]["Company Name"], PropertyValue::Text("Acme".into()));
    assert_eq!(written["u1"], written["u2"]);
    assert!(written["u1"].contains_key("Fake: Date Last Checked"));
    assert_eq!(
        written["u3"].keys().collect::<Vec<_>>(),
        vec!["Fake: Date Last Checked"],
        "not found: date only"
    );
    assert!(h.sink.batches.lock().unwrap().iter().all(|batch| batch.len() <= 2));

    let states = h.store.user_states();
    assert_eq!(states["u1"].outcome, Outcome::Found);
    assert!(states["u1"].written_at.is_some());
    assert_eq!(h.store.connection().unwrap().users_enriched, 2);

    // Everything was checked just now: a second run looks nothing up.
    let again = h.run().await;
    assert_eq!((again.run.summary.due, again.run.summary.lookups, again.run.summary.up_to_date), (0, 0, 3));
    assert_eq!(h.source.asked().len(), 2);
    assert_eq!(again.status, ConnectionStatus::Connected);
}

#[tokio::test]
async fn waits_for_data_until_something_is_found() {
    let h = harness(FakeSource::default(), FakeSink::new(10), vec![user("u1", Some("x@y.com"), 0)]);
    let report = h.run().await;
    assert_eq!(report.run.summary.not_found, 1);
    assert_eq!(report.status, ConnectionStatus::WaitingForData);
}

#[tokio::test]
async fn pending_invalid_and_failed_users_are_recorded_and_only_some_come_back() {
    let h = harness(
        FakeSource::with(&[
            ("p@q.com", Ok(Lookup::Pending)),
            ("i@q.com", Ok(Lookup::Invalid("email_invalid".into()))),
            ("f@q.com", Err(ConnectorError::Transient("503 after 5 retries".into()))),
        ]),
        FakeSink::new(10),
        vec![user("p", Some("p@q.com"), 0), user("i", Some("i@q.com"), 0), user("f", Some("f@q.com"), 0)],
    );
    let report = h.run().await;
    let s = &report.run.summary;
    assert_eq!((s.pending, s.invalid, s.failed, s.written), (1, 1, 1, 0));
    let reasons = s.top_reasons(5);
    assert!(
        reasons.contains(&("503 after 5 retries", 1)) && reasons.contains(&("invalid: email_invalid", 1))
    );
    let states = h.store.user_states();
    assert_eq!(states["f"].detail.as_deref(), Some("503 after 5 retries"));
    assert_eq!(states["i"].outcome, Outcome::Invalid);

    // Invalid is never asked again; pending and failed are.
    let again = h.run().await;
    assert_eq!((again.run.summary.due, again.run.summary.up_to_date), (2, 1));
}

#[tokio::test]
async fn a_fatal_lookup_stops_the_run_and_sets_the_error_status() {
    let rows = (0..40).map(|i| user(&format!("u{i}"), Some(&format!("a{i:02}@x.com")), 0)).collect();
    let source = FakeSource::with(&[("a00@x.com", Err(ConnectorError::Fatal("bad key".into())))]);
    let h = harness(source, FakeSink::new(10), rows);
    let report = h.run().await;
    assert_eq!(report.status, ConnectionStatus::Error("bad key".into()));
    assert_eq!(report.run.error.as_deref(), Some("bad key"));
    let s = &report.run.summary;
    assert!(h.source.asked().len() < 40, "lookups stop after a fatal error");
    assert_eq!(s.written + s.aborted, 40, "every user is either written or left due: {s:?}");
    // Users left over are due again at the next run.
    let states = h.store.user_states();
    assert_eq!(states.len() as u64, s.written);
}

#[tokio::test]
async fn a_rejected_batch_marks_its_users_failed_keeps_their_checks_and_others_go_on() {
    let sink = FakeSink::new(2).failing_first(vec![Err(ConnectorError::Rejected("400: bad".into()))]);
    let rows = (0..5).map(|i| user(&format!("u{i}"), Some(&format!("u{i}@x.com")), 0)).collect();
    let h = harness(FakeSource::default(), sink, rows);
    let report = h.run().await;
    let s = &report.run.summary;
    assert_eq!((s.failed, s.written), (2, 3));
    let failed: Vec<_> =
        h.store.user_states().into_values().filter(|u| u.outcome == Outcome::Failed).collect();
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|u| u.detail.as_deref() == Some("400: bad") && u.written_at.is_none()));
    assert_eq!(h.store.pending().unwrap().len(), 2, "their checks stay pending writes");
    let again = h.run().await;
    let s = &again.run.summary;
    assert_eq!((s.resumed, s.lookups, s.written), (2, 0, 2), "a refusal never costs a second lookup");
    assert_eq!(h.source.asked().len(), 5);
}

#[tokio::test]
async fn users_refused_one_by_one_fail_alone_and_stay_pending() {
    let sink = FakeSink::new(10).refusing(&["u2"]);
    let h = harness(FakeSource::default(), sink, users(5));
    let report = h.run().await;
    let s = &report.run.summary;
    assert_eq!((s.failed, s.written), (1, 4));
    assert_eq!(s.top_reasons(5), vec![("400: refused identity", 1)]);
    let states = h.store.user_states();
    assert_eq!(states["u2"].outcome, Outcome::Failed);
    assert_eq!(states["u2"].detail.as_deref(), Some("400: refused identity"));
    assert_eq!(states["u1"].outcome, Outcome::NotFound);
    let pending = h.store.pending().unwrap();
    assert_eq!(
        pending.iter().map(|write| write.update.identity.as_deref()).collect::<Vec<_>>(),
        [Some("u2")]
    );
}

#[tokio::test]
async fn a_record_holding_the_names_themselves_is_cleared_from_them_and_stored_compact() {
    let h = harness_with(
        FakeSource::with(&[("u0@x.com", found("Acme"))]),
        FakeSink::new(10),
        users(1),
        always_refresh(),
    );
    let legacy = UserState {
        key_hash: LookupKey::Email("u0@x.com".into()).digest(),
        fallback_hash: None,
        outcome: Outcome::Found,
        checked_at: Some(Utc::now() - chrono::Duration::days(2)),
        attempted_at: Utc::now() - chrono::Duration::days(2),
        detail: None,
        written_at: Some(Utc::now() - chrono::Duration::days(2)),
        properties_hash: Some(1),
        properties_written: 3,
        written: Default::default(),
        written_properties: vec![
            "Company Name".into(),
            "Company Tech".into(),
            "Fake: Date Last Checked".into(),
        ],
        segments: Default::default(),
    };
    h.store.put_users(&[("u0".to_owned(), legacy)]).unwrap();
    let report = h.run().await;
    assert_eq!(report.run.summary.cleared, 1);
    assert_eq!(h.sink.written()["u0"]["Company Tech"], PropertyValue::Text(String::new()));
    assert_eq!(h.written_names("u0"), ["Company Name", "Fake: Date Last Checked"]);
}

#[tokio::test]
async fn properties_no_longer_true_are_written_empty_and_counted() {
    let mut two = Properties::new();
    two.insert("Company Name".into(), PropertyValue::text("Acme"));
    two.insert("Company Tech".into(), PropertyValue::text("rust"));
    let source =
        FakeSource::with(&[("u0@x.com", Ok(Lookup::Found(Record { properties: two, ..Record::default() })))]);
    let h = harness_with(source, FakeSink::new(10), users(1), always_refresh());
    h.run().await;
    assert_eq!(h.written_names("u0"), ["Company Name", "Company Tech", "Fake: Date Last Checked"]);

    // A new employer without tech: the old tech is cleared.
    h.source.answer("u0@x.com", found("Bolt"));
    h.sink.batches.lock().unwrap().clear();
    let second = h.run().await;
    assert_eq!(second.run.summary.cleared, 1);
    let written = &h.sink.written()["u0"];
    assert_eq!(written["Company Tech"], PropertyValue::Text(String::new()));
    assert_eq!(written["Company Name"], PropertyValue::Text("Bolt".into()));

    // No longer found: everything but the check date is cleared.
    h.source.answer("u0@x.com", Ok(Lookup::NotFound(Record::default())));
    h.sink.batches.lock().unwrap().clear();
    let third = h.run().await;
    assert_eq!(third.run.summary.cleared, 1);
    assert_eq!(h.sink.written()["u0"]["Company Name"], PropertyValue::Text(String::new()));
    assert_eq!(h.written_names("u0"), ["Fake: Date Last Checked"]);

    // Nothing left to clear: only the check date goes.
    h.sink.batches.lock().unwrap().clear();
    let fourth = h.run().await;
    assert_eq!((fourth.run.summary.cleared, fourth.run.summary.unchanged), (0, 1));
    assert_eq!(h.sink.written()["u0"].len(), 1);
}

#[tokio::test]
async fn an_identity_with_several_emails_uses_its_most_recently_seen_row_every_run() {
    let rows = vec![
        user("u1", Some("old@x.com"), 3),
        user("u1", Some("new@x.com"), 1),
        user("u1", Some("tie@x.com"), 1),
        user(" u2 ", Some("b@x.com"), 0),
        user("u2", Some("b@x.com"), 0),
    ];
    let h = harness_with(FakeSource::default(), FakeSink::new(10), rows, always_refresh());
    let first = h.run().await;
    let s = &first.run.summary;
    assert_eq!((s.due, s.lookups, s.duplicate_identities, s.identities_with_several_emails), (2, 2, 3, 1));
    assert_eq!(h.source.asked(), ["b@x.com", "new@x.com"]);
    let written = h.sink.written();
    let mut identities: Vec<&String> = written.keys().collect();
    identities.sort();
    assert_eq!(identities, ["u1", "u2"], "identities are trimmed");
    h.run().await;
    assert_eq!(h.source.asked(), ["b@x.com", "b@x.com", "new@x.com", "new@x.com"], "the same row every run");
}

#[tokio::test]
async fn invalid_keys_are_asked_again_after_the_sources_interval() {
    #[derive(Debug)]
    struct RetriesInvalid(FakeSource);
    #[async_trait]
    impl Source for RetriesInvalid {
        fn kind(&self) -> &'static str {
            "fake"
        }
        fn key_kind(&self) -> KeyKind {
            KeyKind::Email
        }
        fn checked_property(&self) -> &str {
            "Fake: Date Last Checked"
        }
        fn properties(&self) -> Vec<PropertyInfo> {
            Vec::new()
        }
        fn max_in_flight(&self) -> usize {
            1
        }
        fn invalid_retry_after(&self) -> Option<Duration> {
            Some(Duration::ZERO)
        }
        async fn lookup(
            &self,
            key: &LookupKey,
            hints: &LookupHints,
            stop: &CancellationToken,
        ) -> Option<Result<Lookup, ConnectorError>> {
            self.0.lookup(key, hints, stop).await
        }
        async fn check(&self) -> Result<String, ConnectorError> {
            Ok("fine".into())
        }
    }
    let source = Arc::new(RetriesInvalid(FakeSource::with(&[(
        "i@q.com",
        Ok(Lookup::Invalid("email_invalid".into())),
    )])));
    let connection = Connection {
        name: "test".into(),
        source: source.clone(),
        sink: Arc::new(FakeSink::new(10)),
        rules: ValueRules::default(),
        users: Arc::new(FakeDirectory { rows: vec![user("i", Some("i@q.com"), 0)] }),
        schedule: Schedule::default(),
    };
    let store = Arc::new(MemoryStateStore::default());
    for _ in 0..2 {
        let request = SyncRequest::over_window(RunKind::Manual, &connection.schedule, Utc::now());
        sync(&connection, store.clone(), request).await.unwrap();
    }
    assert_eq!(source.0.asked().len(), 2);
}

#[tokio::test]
async fn an_unreadable_roster_is_an_error_status() {
    let h = harness(
        FakeSource::default(),
        FakeSink::new(2),
        vec![user("u1", Some("a@b.com"), 0), Err(DirectoryError::Fatal("disk on fire".into()))],
    );
    let report = h.run().await;
    assert_eq!(report.status, ConnectionStatus::Error("fake.csv: disk on fire".into()));
    assert!(h.source.asked().is_empty());
}

#[tokio::test]
async fn duplicate_identities_are_used_once() {
    let h = harness(
        FakeSource::default(),
        FakeSink::new(10),
        vec![user("u1", Some("a@b.com"), 0), user("u1", Some("c@d.com"), 0)],
    );
    let report = h.run().await;
    assert_eq!((report.run.summary.duplicate_identities, report.run.summary.lookups), (1, 1));
    assert_eq!(h.source.asked(), ["a@b.com"], "ties: the first row");
}

/// Refreshing every run, so that a second run checks everyone again.
fn always_refresh() -> Schedule {
    Schedule { refresh: Duration::ZERO, ..Schedule::default() }
}

fn users(count: usize) -> Vec<Result<UserRecord, DirectoryError>> {
    (0..count).map(|i| user(&format!("u{i}"), Some(&format!("u{i}@x.com")), 0)).collect()
}

#[tokio::test]
async fn unchanged_properties_are_not_written_again_but_the_check_date_is() {
    let source = FakeSource::with(&[("u0@x.com", found("Acme")), ("u1@x.com", found("Bolt"))]);
    let h = harness_with(source, FakeSink::new(10), users(2), always_refresh());
    h.run().await;
    h.source.answer("u1@x.com", found("Bolt Inc"));
    h.sink.batches.lock().unwrap().clear();
    let second = h.run().await;
    assert_eq!(second.run.summary.unchanged, 1);
    let written = h.sink.written();
    assert_eq!(written["u0"].keys().collect::<Vec<_>>(), vec!["Fake: Date Last Checked"]);
    assert_eq!(
        written["u1"]["Company Name"],
        PropertyValue::Text("Bolt Inc".into()),
        "changed: written in full"
    );
    assert_eq!(
        h.store.user_states()["u0"].properties_written,
        2,
        "the state still knows what the user carries"
    );
}

#[tokio::test]
async fn checks_whose_write_failed_are_written_next_run_without_a_new_lookup() {
    let sink =
        FakeSink::new(10).failing_first(vec![Err(ConnectorError::Transient("503 after 5 tries".into()))]);
    let h = harness(FakeSource::with(&[("u0@x.com", found("Acme"))]), sink, users(1));
    let first = h.run().await;
    assert_eq!((first.run.summary.failed, first.run.summary.written), (1, 0));
    assert_eq!(h.store.pending().unwrap().len(), 1, "the check is kept");

    let second = h.run().await;
    let s = &second.run.summary;
    assert_eq!((s.resumed, s.lookups, s.written), (1, 0, 1));
    assert_eq!(h.source.asked().len(), 1, "paid once");
    assert!(h.store.pending().unwrap().is_empty());
    assert_eq!(h.sink.written()["u0"]["Company Name"], PropertyValue::Text("Acme".into()));
    assert_eq!(second.status, ConnectionStatus::Connected);
}

#[tokio::test]
async fn max_lookups_per_run_defers_the_rest_and_takes_never_checked_users_first() {
    let schedule = Schedule { max_lookups_per_run: Some(2), ..always_refresh() };
    let h = harness_with(FakeSource::default(), FakeSink::new(10), users(5), schedule);
    let first = h.run().await;
    assert_eq!((first.run.summary.lookups, first.run.summary.deferred), (2, 3));
    let checked_first: Vec<String> = h.source.asked();
    let second = h.run().await;
    assert_eq!(second.run.summary.lookups, 2);
    let asked_second = h.source.asked();
    let second_round: Vec<&String> =
        asked_second.iter().filter(|email| !checked_first.contains(email)).collect();
    assert_eq!(second_round.len(), 2, "the second run asks users never checked before: {asked_second:?}");
}

#[tokio::test]
async fn a_capped_backlog_is_taken_in_runs_of_exactly_the_cap_each_key_once() {
    // Every identity also has an older row with another email, which must never be asked.
    let mut rows = users(300);
    rows.extend((0..300).map(|i| user(&format!("u{i}"), Some(&format!("old{i}@x.com")), 1)));
    let schedule = Schedule { max_lookups_per_run: Some(40), ..Schedule::default() };
    let h = harness_with(FakeSource::default(), FakeSink::new(25), rows, schedule);
    for run in 0..8_u64 {
        let report = h.run().await;
        let s = &report.run.summary;
        let expected = 40.min(300 - run * 40);
        assert_eq!((s.lookups, s.written), (expected, expected), "run {run}");
        let due = 300 - run * 40;
        assert_eq!((s.due, s.deferred, s.duplicate_identities), (due, due - expected, 300), "run {run}");
    }
    assert_eq!(h.run().await.run.summary.lookups, 0, "everyone is checked");
    let mut expected: Vec<String> = (0..300).map(|i| format!("u{i}@x.com")).collect();
    expected.sort();
    assert_eq!(h.source.asked(), expected, "each most recent email once, never an older row's");
}

#[tokio::test]
async fn an_uncapped_backlog_is_looked_up_once_per_key_pending_lookups_first() {
    // 200 users, two to an email, planned through runs on disk.
    let rows: Vec<_> =
        (0..200).map(|i| user(&format!("u{i}"), Some(&format!("shared{}@x.com", i / 2)), 0)).collect();
    let h = harness(FakeSource::default(), FakeSink::new(50), rows);
    let pending_key = LookupKey::Email("shared77@x.com".into());
    let pending = UserState {
        key_hash: pending_key.digest(),
        fallback_hash: None,
        outcome: Outcome::Pending,
        checked_at: None,
        attempted_at: Utc::now(),
        detail: None,
        written_at: None,
        properties_hash: None,
        properties_written: 0,
        written: Default::default(),
        written_properties: Vec::new(),
        segments: Default::default(),
    };
    h.store.put_users(&[("u155".to_owned(), pending)]).unwrap();
    let report = h.run().await;
    let s = &report.run.summary;
    assert_eq!((s.due, s.lookups, s.written), (200, 100, 200));
    assert_eq!(h.source.asked.lock().unwrap()[0], "shared77@x.com", "the pending lookup first");
    let asked = h.source.asked();
    let mut distinct = asked.clone();
    distinct.dedup();
    assert_eq!((asked.len(), distinct.len()), (100, 100), "each email once");
}

#[tokio::test]
async fn declined_keys_are_counted_and_never_looked_up() {
    let source = FakeSource { declined_domain: Some("gmail.com".into()), ..FakeSource::default() };
    let rows = vec![user("a", Some("a@gmail.com"), 0), user("b", Some("b@firm.io"), 0)];
    let h = harness(source, FakeSink::new(10), rows);
    let report = h.run().await;
    assert_eq!((report.run.summary.skipped, report.run.summary.lookups), (1, 1));
    assert_eq!(h.source.asked(), vec!["b@firm.io"]);
}

#[tokio::test]
async fn cuts_and_derived_names_are_reported() {
    let mut record = Record::default();
    record.properties.insert("Company Bio".into(), PropertyValue::text("x".repeat(2000)));
    record.derived.push(("company.newThing".into(), "Company New Thing".into()));
    let sink = FakeSink { rules: HEAP_LIKE, ..FakeSink::new(10) };
    let h = harness(FakeSource::with(&[("u0@x.com", Ok(Lookup::Found(record)))]), sink, users(1));
    let report = h.run().await;
    assert_eq!(report.run.summary.values_cut, 1);
    let state = h.store.connection().unwrap();
    assert_eq!(state.derived_properties["Company New Thing"], "company.newThing");
}

#[tokio::test(start_paused = true)]
async fn a_stopped_run_writes_what_it_fetched_and_abandons_the_rest_unrecorded() {
    let source = FakeSource { hang: vec!["u0@x.com".into()], ..FakeSource::default() };
    let h = Arc::new(harness(source, FakeSink::new(10), users(3)));
    let stop = CancellationToken::new();
    let run = {
        let h = Arc::clone(&h);
        let request = SyncRequest::over_window(RunKind::Scheduled, &h.connection.schedule, Utc::now())
            .with_stop(stop.clone());
        tokio::spawn(async move { sync(&h.connection, h.store.clone(), request).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    let report = run.await.unwrap();
    let s = &report.run.summary;
    assert!(report.run.stopped_early);
    assert_eq!((s.lookups, s.written, s.aborted), (2, 2, 1), "{s:?}");
    assert!(!h.store.user_states().contains_key("u0"), "the abandoned lookup is not recorded");
    assert_eq!(report.status, ConnectionStatus::WaitingForData, "stopping is not an error");
}

#[derive(Debug, Default)]
struct CountedProgress {
    planned: Mutex<(u64, u64)>,
    looked_up: Mutex<u64>,
    written: Mutex<u64>,
}

impl Progress for CountedProgress {
    fn planned(&self, lookups: u64, users: u64) {
        *self.planned.lock().unwrap() = (lookups, users);
    }
    fn looked_up(&self, users: u64) {
        *self.looked_up.lock().unwrap() += users;
    }
    fn written(&self, users: u64) {
        *self.written.lock().unwrap() += users;
    }
}

#[tokio::test]
async fn progress_is_told_what_the_summary_says() {
    let rows = vec![
        user("a", Some("same@x.com"), 0),
        user("b", Some("same@x.com"), 0),
        user("c", Some("c@x.com"), 0),
    ];
    let h = harness(FakeSource::default(), FakeSink::new(2), rows);
    let progress = Arc::new(CountedProgress::default());
    let request = SyncRequest::over_window(RunKind::Manual, &h.connection.schedule, Utc::now())
        .with_progress(progress.clone());
    let report = sync(&h.connection, h.store.clone(), request).await.unwrap();
    assert_eq!(*progress.planned.lock().unwrap(), (2, 3));
    assert_eq!(*progress.looked_up.lock().unwrap(), 3);
    assert_eq!(*progress.written.lock().unwrap(), report.run.summary.written);
}

#[tokio::test]
async fn a_more_recent_row_takes_back_what_the_earlier_one_was_counted_as() {
    let source = FakeSource { declined_domain: Some("gmail.com".into()), ..FakeSource::default() };
    let rows = vec![
        user("u1", Some("u1@gmail.com"), 2),
        user("u1", Some("u1@firm.io"), 1),
        user("u2", Some("u2@firm.io"), 2),
        user("u2", Some("u2@gmail.com"), 1),
    ];
    let h = harness(source, FakeSink::new(10), rows);
    let report = h.run().await;
    let s = &report.run.summary;
    assert_eq!((s.read, s.duplicate_identities, s.due, s.skipped, s.up_to_date), (4, 2, 1, 1, 0));
    assert_eq!(s.top_reasons(5), vec![("skipped: declined domain", 1)]);
    assert_eq!(h.source.asked(), ["u1@firm.io"]);
}

#[tokio::test]
async fn users_without_a_usable_email_are_looked_up_by_the_sources_fallback_key() {
    let with_ip = |identity: &str, email: Option<&str>, ip: &str| {
        user(identity, email, 1).map(|user| UserRecord { ip: Some(ip.parse().unwrap()), ..user })
    };
    let source = FakeSource { falls_back_to_ip: true, ..FakeSource::with(&[("81.2.69.160", found("Acme"))]) };
    let h = harness(
        source,
        FakeSink::new(10),
        vec![
            with_ip("u1", None, "81.2.69.160"),
            with_ip("u2", Some("not an email"), "81.2.69.160"), // shares u1's address: one lookup
            with_ip("u3", Some("c@acme.com"), "81.2.69.161"),   // has an email: looked up by it
            user("u4", None, 1),                                // neither
        ],
    );
    let s = h.run().await.run.summary;
    assert_eq!((s.no_email, s.malformed_email, s.due, s.lookups, s.found), (1, 0, 3, 2, 2));
    assert_eq!(h.source.asked(), vec!["81.2.69.160", "c@acme.com"]);
    assert_eq!(h.sink.written()["u2"]["Company Name"], PropertyValue::text("Acme"));
    let ip_digest = LookupKey::Ip("81.2.69.160".parse().unwrap()).digest();
    assert_eq!(h.store.user("u1").unwrap().unwrap().key_hash, ip_digest);
    assert_eq!(h.run().await.run.summary.lookups, 0, "a second run looks nothing up");
}

#[tokio::test]
async fn a_forgotten_address_is_never_sent_as_a_hint() {
    let with_ip = |identity: &str, email: &str, ip: &str| {
        user(identity, Some(email), 1).map(|user| UserRecord { ip: Some(ip.parse().unwrap()), ..user })
    };
    let h = harness(
        FakeSource::default(),
        FakeSink::new(10),
        vec![with_ip("u1", "a@acme.com", "81.2.69.160"), with_ip("u2", "b@acme.com", "81.2.69.161")],
    );
    h.store.forget(LookupKey::Ip("81.2.69.160".parse().unwrap()).digest()).unwrap();
    h.run().await;
    let mut hinted = h.source.hinted_ips.lock().unwrap().clone();
    hinted.sort();
    assert_eq!(hinted, [None, Some("81.2.69.161".parse().unwrap())]);
}

#[tokio::test]
async fn a_batch_source_is_asked_in_full_requests_once_per_email() {
    // 25 users, 23 emails: u0 and u1 share one, u2 and u3 another.
    let rows: Vec<_> = (0..25)
        .map(|n| {
            let shared = match n {
                1 => 0,
                3 => 2,
                n => n,
            };
            user(&format!("u{n}"), Some(&format!("person{shared}@acme.com")), 1)
        })
        .collect();
    let h = harness(FakeSource::default().in_batches_of(10), FakeSink::new(100), rows);
    let report = h.run().await;

    let requests = h.source.requests.lock().unwrap().clone();
    let sizes: Vec<usize> = requests.iter().map(Vec::len).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 23, "{sizes:?}");
    assert_eq!(sizes.len(), 3, "⌈23 / 10⌉ requests: {sizes:?}");
    assert!(sizes.iter().all(|size| *size <= 10), "{sizes:?}");
    let asked = h.source.asked();
    let mut distinct = asked.clone();
    distinct.dedup();
    assert_eq!(asked, distinct, "each email asked once");
    assert_eq!(report.run.summary.lookups, 23);
    assert_eq!(report.run.summary.not_found, 25);
    assert_eq!(h.sink.written().len(), 25);
}

#[tokio::test]
async fn a_fatal_answer_in_a_batch_records_none_of_its_users() {
    let out_of_credits = || Err(ConnectorError::Fatal("402: out of credits".into()));
    let source = FakeSource::with(&[("a@acme.com", out_of_credits()), ("b@acme.com", out_of_credits())])
        .in_batches_of(5);
    let rows = vec![user("u1", Some("a@acme.com"), 1), user("u2", Some("b@acme.com"), 1)];
    let h = harness(source, FakeSink::new(100), rows);
    let report = h.run().await;
    assert_eq!(report.status, ConnectionStatus::Error("402: out of credits".into()));
    assert_eq!(h.source.requests.lock().unwrap().len(), 1);
    assert_eq!(report.run.summary.aborted, 2);
    assert!(h.store.user_states().is_empty(), "nobody recorded");
    assert!(h.sink.written().is_empty());
}

/// A user without identity, known by Heap's `user_id`, at an address.
fn anonymous(user_id: &str, ip: &str) -> Result<UserRecord, DirectoryError> {
    let user = user("", None, 1)?;
    Ok(UserRecord { identity: None, user_id: Some(user_id.into()), ip: Some(ip.parse().unwrap()), ..user })
}

#[tokio::test]
async fn anonymous_users_are_remembered_by_user_id_apart_from_an_equal_identity() {
    let source = FakeSource { falls_back_to_ip: true, ..FakeSource::with(&[("81.2.69.160", found("Acme"))]) };
    let rows =
        vec![anonymous("42", "81.2.69.160"), anonymous("43", "81.2.69.160"), user("42", Some("a@b.io"), 1)];
    let h = harness(source, FakeSink::new(10), rows);
    let s = h.run().await.run.summary;
    assert_eq!((s.due, s.lookups, s.found, s.written, s.duplicate_identities), (3, 2, 2, 3, 0));
    let written = h.sink.written();
    assert_eq!(written[" user_id 42"]["Company Name"], PropertyValue::text("Acme"));
    assert!(!written["42"].contains_key("Company Name"), "the identity 42 is another user");
    let states = h.store.user_states();
    assert_eq!(states.len(), 3, "{:?}", states.keys());
    assert_eq!(h.run().await.run.summary.lookups, 0, "a second run looks nothing up");
}

#[tokio::test]
async fn users_the_sink_cannot_address_are_skipped_before_any_lookup() {
    let source = FakeSource { falls_back_to_ip: true, ..FakeSource::default() };
    let sink = FakeSink { needs_identity: true, ..FakeSink::new(10) };
    let rows =
        vec![anonymous("42", "81.2.69.160"), anonymous("43", "81.2.69.161"), user("u1", Some("a@b.io"), 1)];
    let h = harness(source, sink, rows);
    for run in 0..2 {
        let s = h.run().await.run.summary;
        assert_eq!((s.unaddressable, s.skipped, s.due), (2, 0, 1 - run), "run {run}");
        assert_eq!(s.top_reasons(5), vec![("skipped by fake: no identity", 2)], "run {run}");
    }
    assert_eq!(h.source.asked(), ["a@b.io"], "looked up once, and never the anonymous users");
    assert_eq!(h.sink.written().into_keys().collect::<Vec<_>>(), ["u1"]);
}

#[tokio::test]
async fn forgetting_an_address_reaches_users_whose_email_lookup_sent_it() {
    let with_ip = |identity: &str, email: &str, ip: &str| {
        user(identity, Some(email), 1).map(|user| UserRecord { ip: Some(ip.parse().unwrap()), ..user })
    };
    let rows = vec![with_ip("u1", "a@gmail.com", "81.2.69.160"), with_ip("u2", "b@gmail.com", "81.2.69.161")];
    let h = harness(FakeSource::default(), FakeSink::new(10), rows);
    h.run().await;
    let address = LookupKey::Ip("81.2.69.160".parse().unwrap()).digest();
    assert_eq!(h.store.user("u1").unwrap().unwrap().fallback_hash, Some(address));
    assert_eq!(h.store.forget(address).unwrap(), ["u1"]);
    assert!(h.store.user("u2").unwrap().is_some());
}

#[tokio::test]
async fn an_update_carries_the_time_of_its_check() {
    let h = harness(FakeSource::default(), FakeSink::new(10), vec![user("u1", Some("a@b.io"), 1)]);
    h.run().await;
    let update = h.sink.batches.lock().unwrap()[0][0].clone();
    let state = h.store.user("u1").unwrap().unwrap();
    assert_eq!(Some(update.checked_at), state.checked_at);
}

#[tokio::test]
async fn kept_results_serve_later_users_without_a_lookup_or_a_slot_of_the_cap() {
    let source = FakeSource {
        keeps_results: true,
        ..FakeSource::with(&[
            ("a@acme.com", found("Acme")),
            ("n@none.io", Ok(Lookup::NotFound(Record::default()))),
        ])
    };
    let schedule = Schedule { max_lookups_per_run: Some(2), ..Schedule::default() };
    let rows = vec![user("u1", Some("a@acme.com"), 0), user("u2", Some("n@none.io"), 0)];
    let h = harness_with(source, FakeSink::new(10), rows, schedule);
    let first = h.run().await.run.summary;
    assert_eq!((first.lookups, first.lookups_saved), (2, 0));
    let kept = |email: &str| h.store.cached(LookupKey::Email(email.into()).digest()).unwrap().unwrap();
    assert_eq!((kept("a@acme.com").outcome, kept("n@none.io").outcome), (Outcome::Found, Outcome::NotFound));

    // Later users of both keys are written from what was kept; the cap's two slots go to new keys.
    let later = ["a@acme.com", "a@acme.com", "n@none.io", "b@beta.io", "c@gamma.io", "d@delta.io"];
    let rows = later.iter().enumerate().map(|(n, email)| user(&format!("v{n}"), Some(email), 0)).collect();
    let connection = Connection { users: Arc::new(FakeDirectory { rows }), ..h.connection.clone() };
    let request = SyncRequest::over_window(RunKind::Manual, &connection.schedule, Utc::now());
    let second = sync(&connection, h.store.clone(), request).await.unwrap().run.summary;
    assert_eq!((second.lookups, second.lookups_saved, second.deferred), (2, 3, 1), "{second:?}");
    assert_eq!(h.source.asked(), ["a@acme.com", "b@beta.io", "c@gamma.io", "n@none.io"]);
    let written = h.sink.written();
    assert_eq!(written["v0"]["Company Name"], PropertyValue::Text("Acme".into()));
    assert_eq!(
        written["v0"]["Fake: Date Last Checked"], written["u1"]["Fake: Date Last Checked"],
        "as of the lookup"
    );
    assert_eq!(
        written["v2"].keys().collect::<Vec<_>>(),
        ["Fake: Date Last Checked"],
        "not found is kept too"
    );
    assert_eq!(
        h.store.user_states()["v0"].checked_at,
        Some(kept("a@acme.com").checked_at),
        "due when it expires"
    );
}

#[tokio::test]
async fn an_expired_result_is_looked_up_again_and_a_source_that_keeps_none_reads_none() {
    let digest = LookupKey::Email("a@acme.com".into()).digest();
    let stale = crate::CachedResult {
        outcome: Outcome::Found,
        checked_at: Utc::now() - chrono::Duration::days(2),
        properties: Properties::new(),
    };
    for keeps_results in [true, false] {
        let source = FakeSource { keeps_results, ..FakeSource::with(&[("a@acme.com", found("Acme"))]) };
        let h = harness(source, FakeSink::new(10), vec![user("u1", Some("a@acme.com"), 0)]);
        h.store.put_cached(&[(digest, stale.clone())]).unwrap();
        assert_eq!(h.run().await.run.summary.lookups, 1, "keeps results: {keeps_results}");
        let kept = h.store.cached(digest).unwrap().unwrap();
        assert_eq!(
            kept.checked_at > stale.checked_at,
            keeps_results,
            "only a source that keeps results renews"
        );
    }
}

#[tokio::test]
async fn forgetting_an_email_reaches_a_user_looked_up_by_its_domain() {
    let source = FakeSource { by_domain: true, ..FakeSource::with(&[("acme.com", found("Acme"))]) };
    let rows = vec![user("u1", Some("ann@acme.com"), 1), user("u2", Some("bob@acme.com"), 1)];
    let h = harness(source, FakeSink::new(10), rows);
    assert_eq!(h.run().await.run.summary.lookups, 1);
    let ann = LookupKey::Email("ann@acme.com".into()).digest();
    assert_eq!(h.store.forget(ann).unwrap(), ["u1"]);
    let again = h.run().await.run.summary;
    assert_eq!((again.lookups, again.skipped, again.up_to_date), (0, 1, 1), "{again:?}");
    assert_eq!(again.top_reasons(5), vec![("skipped: forgotten on request", 1)]);
    assert!(h.store.user("u1").unwrap().is_none(), "nothing of her is written back");
}

/// Rules like Heap's: text below 1024 bytes.
const HEAP_LIKE: ValueRules = ValueRules {
    destination: "Heap",
    forbidden_names: &[],
    built_in_names: &[],
    max_text_bytes: Some(1023),
    max_identity_chars: Some(255),
};

/// A found answer with a 2,000-byte bio and 100 domain aliases of 21 bytes each, as a source gives it.
fn long_values() -> Properties {
    let aliases = (0..100).map(|n| format!("alias-{n:03}.example.com")).collect();
    Properties::from([
        ("Company Bio".to_owned(), PropertyValue::text("é".repeat(1000))),
        ("Company Domain Aliases".to_owned(), PropertyValue::List(aliases)),
    ])
}

fn found_properties(properties: Properties) -> Result<Lookup, ConnectorError> {
    Ok(Lookup::Found(Record { properties, ..Record::default() }))
}

#[tokio::test]
async fn the_sinks_rules_fit_values_before_they_are_hashed_and_written() {
    let source = FakeSource::with(&[("u0@x.com", found_properties(long_values()))]);
    let sink = FakeSink { rules: HEAP_LIKE, ..FakeSink::new(10) };
    let h = harness_with(source, sink, users(1), always_refresh());
    let first = h.run().await.run.summary;
    assert_eq!(first.values_cut, 2);
    let written = h.sink.written().remove("u0").unwrap();
    assert_eq!(written["Company Bio"], PropertyValue::text("é".repeat(511)), "1022 bytes, whole characters");
    let aliases = written["Company Domain Aliases"].as_text().unwrap();
    let kept: Vec<&str> = aliases.split(", ").collect();
    assert_eq!(kept.len(), 44, "23 bytes an item with its separator: 44 fit in 1023");
    assert!(kept.iter().enumerate().all(|(n, alias)| *alias == format!("alias-{n:03}.example.com")));

    // A source that gave these values already fitted (as sources did before sinks owned the rules)
    // leaves the user unchanged: the hash is of what the sink takes, as it always was.
    let mut fitted = written;
    fitted.remove("Fake: Date Last Checked");
    h.source.answer("u0@x.com", found_properties(fitted));
    let second = h.run().await.run.summary;
    assert_eq!((second.unchanged, second.values_cut), (1, 0));
}

#[tokio::test]
async fn a_sink_without_limits_takes_every_value_whole_and_lists_joined() {
    let source = FakeSource::with(&[("u0@x.com", found_properties(long_values()))]);
    let h = harness(source, FakeSink::new(10), users(1));
    assert_eq!(h.run().await.run.summary.values_cut, 0);
    let written = h.sink.written().remove("u0").unwrap();
    assert_eq!(written["Company Bio"].as_text().unwrap().len(), 2000);
    let aliases = written["Company Domain Aliases"].as_text().unwrap();
    assert_eq!(aliases.split(", ").count(), 100);
    assert_eq!(aliases.len(), 100 * 23 - 2);
}

#[tokio::test]
async fn a_kept_result_keeps_the_sources_values_and_is_fitted_when_served() {
    let source = FakeSource {
        keeps_results: true,
        ..FakeSource::with(&[("a@acme.com", found_properties(long_values()))])
    };
    let sink = FakeSink { rules: HEAP_LIKE, ..FakeSink::new(10) };
    let h = harness(source, sink, vec![user("u1", Some("a@acme.com"), 0)]);
    assert_eq!(h.run().await.run.summary.values_cut, 2);
    let kept = h.store.cached(LookupKey::Email("a@acme.com".into()).digest()).unwrap().unwrap();
    assert_eq!(kept.properties, long_values(), "the source's values, whole");

    let rows = vec![user("v1", Some("a@acme.com"), 0)];
    let connection = Connection { users: Arc::new(FakeDirectory { rows }), ..h.connection.clone() };
    let request = SyncRequest::over_window(RunKind::Manual, &connection.schedule, Utc::now());
    let served = sync(&connection, h.store.clone(), request).await.unwrap().run.summary;
    assert_eq!((served.lookups, served.lookups_saved, served.values_cut), (0, 1, 2));
    assert_eq!(h.sink.written()["v1"], h.sink.written()["u1"], "cut at whole items as at the lookup");
}

#[tokio::test]
async fn a_resumed_write_stored_for_a_sink_without_limits_is_fitted_to_this_ones() {
    // Fetched under a warehouse table, not acknowledged, then the connection moved to Heap-like rules.
    let sink = FakeSink { rules: HEAP_LIKE, ..FakeSink::new(10) };
    let h = harness_with(FakeSource::default(), sink, users(1), always_refresh());
    let now = Utc::now();
    let state = UserState::fresh(LookupKey::Email("u0@x.com".into()).digest(), now);
    let update =
        UserUpdate { identity: Some("u0".into()), user_id: None, properties: long_values(), checked_at: now };
    h.store.put_pending(&[PendingWrite { update, acknowledged: state.clone(), previous: state }]).unwrap();
    let summary = h.run().await.run.summary;
    assert_eq!((summary.resumed, summary.lookups), (1, 0));
    let written = h.sink.written().remove("u0").unwrap();
    assert_eq!(written["Company Bio"].as_text().unwrap().len(), 1022);
    assert_eq!(written["Company Domain Aliases"].as_text().unwrap().split(", ").count(), 44);
}

#[tokio::test]
async fn a_plan_hands_each_lookup_over_in_the_runs_order_read_from_disk() {
    // 3,000 users, three to an email, planned through runs on disk; one key's lookup is pending.
    let rows: Vec<_> =
        (0..3000).map(|i| user(&format!("u{i}"), Some(&format!("shared{}@x.com", i / 3)), 0)).collect();
    let pending_key = LookupKey::Email("shared777@x.com".into());
    let pending =
        UserState { outcome: Outcome::Pending, ..UserState::fresh(pending_key.digest(), Utc::now()) };
    for (schedule, lookups) in
        [(Schedule::default(), 1000), (Schedule { max_lookups_per_run: Some(10), ..Schedule::default() }, 10)]
    {
        let h = harness_with(FakeSource::default(), FakeSink::new(50), rows.clone(), schedule);
        h.store.put_users(&[("u2333".to_owned(), pending.clone())]).unwrap();
        let request = SyncRequest::over_window(RunKind::Manual, &schedule, Utc::now());
        let mut handed = Vec::new();
        let planned = plan(&h.connection, h.store.as_ref(), &request, |key, users| {
            handed.push((key.to_string(), users))
        })
        .await
        .unwrap();
        assert_eq!(handed.len(), lookups, "{schedule:?}");
        assert_eq!(handed[0], ("shared777@x.com".to_owned(), 3), "the pending lookup first");
        assert!(handed.iter().all(|(_, users)| *users == 3), "each key with its three users");
        let mut distinct: Vec<&String> = handed.iter().map(|(key, _)| key).collect();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), lookups, "each key once");
        let s = &planned.summary;
        assert_eq!((s.due, s.deferred, s.lookups), (3000, 3000 - 3 * lookups as u64, 0), "{schedule:?}");
        assert!(h.source.asked().is_empty() && h.sink.written().is_empty(), "no lookup, no write");
    }
}
