//! The Heap Connect directory against a real PostgreSQL server holding Heap Connect's tables: which users
//! come out (once each, with the right last seen), and what is said when the schema does not fit.

mod support;

use chrono::{DateTime, Duration, DurationRound, Utc};
use enrich_core::{ConnectorError, UserDirectory, UserRecord};
use enrich_postgres::{HeapConnectConfig, HeapConnectDirectory, TlsMode};
use secrecy::SecretString;
use support::{Scratch, collect, server_url, sort_users, user, with_password};
use tokio_postgres::types::ToSql;

fn config(url: &str, schema: &str, email_property: &str) -> HeapConnectConfig {
    HeapConnectConfig {
        url: SecretString::from(url.to_owned()),
        schema: schema.to_owned(),
        email_property: email_property.to_owned(),
        given_name_property: None,
        family_name_property: None,
        tls: None,
        anonymous: false,
    }
}

fn directory(url: &str, schema: &str, email_property: &str) -> HeapConnectDirectory {
    HeapConnectDirectory::new(&config(url, schema, email_property)).expect("a valid config")
}

async fn fatal(directory: &HeapConnectDirectory) -> String {
    match directory.users(Utc::now() - Duration::days(7)).await {
        Ok(_) => panic!("{} should not be readable", directory.describe()),
        Err(ConnectorError::Fatal(message)) => message,
        Err(other) => panic!("not fatal: {other:?}"),
    }
}

/// Now, to the microsecond, as the server stores times.
fn now() -> DateTime<Utc> {
    Utc::now().duration_trunc(Duration::microseconds(1)).unwrap()
}

/// Fills Heap Connect's tables with users that exercise every rule, and returns those that must come out
/// for a window starting at `since`, and the bad rows expected (location suffix, message).
async fn heap_connect_roster(
    scratch: &Scratch,
    email_column: &str,
    zoned_times: bool,
    now: DateTime<Utc>,
    since: DateTime<Utc>,
) -> (Vec<UserRecord>, Vec<(String, &'static str)>) {
    let days = |n: i64| now - Duration::days(n);
    let long_identity = "x".repeat(300);
    // (user_id, identity, email, last_modified)
    let rows = [
        // Duplicated by the sync: the latest row wins, email included.
        (1_i64, Some("alice"), Some("old-alice@acme.com"), days(20)),
        (1, Some("alice"), Some("alice@acme.com"), days(1)),
        (1, Some("alice"), Some("older-alice@acme.com"), days(40)),
        // Identities with quotes, unicode, commas and spaces; an exact duplicate row.
        (2, Some("o'brien \"the\" user"), Some("ob@example.com"), days(3)),
        (2, Some("o'brien \"the\" user"), Some("ob@example.com"), days(3)),
        (3, Some("Zoë 北京 ✓"), Some("zoe@example.cn"), days(3)),
        (4, Some(" with, comma  and spaces "), None, days(3)),
        (5, Some("blank-email"), Some("  "), days(3)),
        // Seen before the window only.
        (6, Some("stale"), Some("stale@acme.com"), days(3)),
        // Anonymous: no identity, left out.
        (7, None, Some("anon@acme.com"), days(3)),
        // Never had a session.
        (8, Some("no-sessions"), Some("nobody@acme.com"), days(3)),
        // Longer than Heap takes: read, since how long an identity may be is the sink's rule.
        (9, Some(long_identity.as_str()), Some("long@acme.com"), days(3)),
        // A bad row: reported, not read.
        (10, Some(""), Some("empty@acme.com"), days(3)),
        // Seen exactly at the window's start: in.
        (11, Some("boundary"), Some("edge@acme.com"), days(3)),
        // Anonymous at first, identified later: the latest row counts.
        (12, None, None, days(30)),
        (12, Some("identified-later"), Some("later@acme.com"), days(2)),
        // Identified at first, the latest row anonymous: left out.
        (13, Some("was-identified"), Some("was@acme.com"), days(30)),
        (13, None, None, days(2)),
    ];
    let insert_user = format!(
        "INSERT INTO {} (user_id, identity, handle, {}, joindate, last_modified) \
         VALUES ($1, $2, $2, $3, $4, $4)",
        scratch.table("users"),
        support::quoted(email_column)
    );
    for (user_id, identity, email, last_modified) in &rows {
        scratch.execute(&insert_user, &[user_id, identity, email, &last_modified.naive_utc()]).await;
    }
    let sessions: Vec<(i64, DateTime<Utc>)> = vec![
        (1, days(30)),
        (1, now - Duration::hours(1)),
        (1, days(3)),
        (2, days(2)),
        (3, days(6) + Duration::microseconds(123_457)),
        (4, days(1)),
        (5, days(5)),
        (6, days(8)),
        (6, days(30)),
        (7, days(1)),
        (9, days(1)),
        (10, days(1)),
        (11, since),
        (11, since - Duration::microseconds(1)),
        (12, days(4)),
        (13, days(1)),
    ];
    // Each session comes from its own address, `81.2.69.{session_id}`: a user's is their latest's.
    let insert_session = format!(
        "INSERT INTO {} (user_id, session_id, time, ip) VALUES ($1, $2, $3, '81.2.69.' || $2::bigint::text)",
        scratch.table("sessions")
    );
    for (session_id, (user_id, time)) in (1_i64..).zip(&sessions) {
        let naive = time.naive_utc();
        let time: &(dyn ToSql + Sync) = if zoned_times { time } else { &naive };
        scratch.execute(&insert_session, &[user_id, &session_id, time]).await;
    }
    let from_session = |user: UserRecord, session_id: u8| UserRecord {
        ip: Some(std::net::Ipv4Addr::new(81, 2, 69, session_id).into()),
        ..user
    };
    let mut expected = vec![
        from_session(user(1, "alice", Some("alice@acme.com"), now - Duration::hours(1)), 2),
        from_session(user(2, "o'brien \"the\" user", Some("ob@example.com"), days(2)), 4),
        from_session(
            user(3, "Zoë 北京 ✓", Some("zoe@example.cn"), days(6) + Duration::microseconds(123_457)),
            5,
        ),
        from_session(user(4, " with, comma  and spaces ", None, days(1)), 6),
        from_session(user(5, "blank-email", None, days(5)), 7),
        from_session(user(9, &long_identity, Some("long@acme.com"), days(1)), 11),
        from_session(user(11, "boundary", Some("edge@acme.com"), since), 13),
        from_session(user(12, "identified-later", Some("later@acme.com"), days(4)), 15),
    ];
    sort_users(&mut expected);
    let bad_rows = vec![("users user_id 10".to_owned(), "identity is empty")];
    (expected, bad_rows)
}

async fn reads_the_roster(time_type: &str) {
    let url = server_url();
    let scratch = Scratch::new(&url, &format!("roster {time_type}")).await;
    scratch.create_heap_connect_tables(time_type, None).await;
    let now = now();
    let since = now - Duration::days(7);
    let (expected, expected_bad) =
        heap_connect_roster(&scratch, "email", time_type == "TIMESTAMPTZ", now, since).await;

    let directory = directory(&url, &scratch.name, "email");
    let (users, bad_rows, fatal) =
        collect(directory.users(since).await.expect("the roster is readable")).await;
    assert_eq!(fatal, Vec::<String>::new());
    assert_eq!(users, expected);
    let (mut bad_rows, mut expected_bad) = (bad_rows, expected_bad);
    bad_rows.sort();
    expected_bad.sort();
    assert_eq!(bad_rows.len(), expected_bad.len(), "{bad_rows:?}");
    for ((location, message), (suffix, expected_message)) in bad_rows.iter().zip(&expected_bad) {
        assert_eq!(location, &format!("{}.{suffix}", scratch.name));
        assert_eq!(message, expected_message);
    }
}

#[tokio::test]
async fn reads_each_identified_user_seen_in_the_window_once_from_timestamp_sessions() {
    reads_the_roster("TIMESTAMP").await;
}

#[tokio::test]
async fn reads_each_identified_user_seen_in_the_window_once_from_timestamptz_sessions() {
    reads_the_roster("TIMESTAMPTZ").await;
}

#[tokio::test]
async fn anonymous_users_come_out_by_user_id_when_asked_for() {
    let url = server_url();
    let scratch = Scratch::new(&url, "anonymous").await;
    scratch.create_heap_connect_tables("TIMESTAMPTZ", None).await;
    let now = now();
    let since = now - Duration::days(7);
    let (identified, _) = heap_connect_roster(&scratch, "email", true, now, since).await;
    let directory = HeapConnectDirectory::new(&HeapConnectConfig {
        anonymous: true,
        ..config(&url, &scratch.name, "email")
    })
    .unwrap();
    let (users, _, fatal) = collect(directory.users(since).await.unwrap()).await;
    assert_eq!(fatal, Vec::<String>::new());
    let anonymous = |user_id: i64, email: Option<&str>, session_id: u8| UserRecord {
        identity: None,
        ip: Some(std::net::Ipv4Addr::new(81, 2, 69, session_id).into()),
        ..user(user_id, "", email, now - Duration::days(1))
    };
    let mut expected = identified;
    // User 7 never had an identity; user 13's latest row has none.
    expected.extend([anonymous(7, Some("anon@acme.com"), 10), anonymous(13, None, 16)]);
    sort_users(&mut expected);
    assert_eq!(users, expected);
}

#[tokio::test]
async fn quotes_odd_schema_and_column_names_and_reads_emails_from_identities() {
    let url = server_url();
    let scratch = Scratch::new(&url, "odd \"schema\"; DROP SCHEMA public; --").await;
    scratch.create_heap_connect_tables("TIMESTAMP", Some("\"Work \"\"Email\"\"\" TEXT")).await;
    let now = now();
    let since = now - Duration::days(7);
    let (expected, _) = heap_connect_roster(&scratch, "Work \"Email\"", false, now, since).await;

    let (users, _, fatal) =
        collect(directory(&url, &scratch.name, "Work \"Email\"").users(since).await.unwrap()).await;
    assert_eq!(fatal, Vec::<String>::new());
    assert_eq!(users, expected, "the custom property column holds the emails");

    let (users, _, _) = collect(directory(&url, &scratch.name, "identity").users(since).await.unwrap()).await;
    let emails: Vec<(Option<&str>, Option<&str>)> =
        users.iter().map(|user| (user.identity.as_deref(), user.email.as_deref())).collect();
    assert!(emails.iter().all(|(identity, email)| identity == email), "{emails:?}");
    assert_eq!(users.len(), expected.len());
}

#[tokio::test]
async fn reads_names_from_the_configured_columns_as_match_hints() {
    let url = server_url();
    let scratch = Scratch::new(&url, "names as hints").await;
    scratch
        .create_heap_connect_tables("TIMESTAMP", Some("\"First Name\" TEXT, ADD COLUMN last_name TEXT"))
        .await;
    let now = now();
    let since = now - Duration::days(7);
    let (expected, _) = heap_connect_roster(&scratch, "email", false, now, since).await;
    let users_table = scratch.table("users");
    scratch.execute(&format!("UPDATE {users_table} SET \"First Name\" = ' Alice ', last_name = 'Liddell' WHERE identity = 'alice'"), &[]).await;
    let directory = HeapConnectDirectory::new(&HeapConnectConfig {
        given_name_property: Some("First Name".to_owned()),
        family_name_property: Some("last_name".to_owned()),
        ..config(&url, &scratch.name, "email")
    })
    .unwrap();
    let (users, _, fatal) = collect(directory.users(since).await.unwrap()).await;
    assert_eq!(fatal, Vec::<String>::new());
    assert_eq!(users.len(), expected.len());
    let is_alice = |user: &&UserRecord| user.identity.as_deref() == Some("alice");
    let alice = users.iter().find(is_alice).unwrap();
    assert_eq!(alice.email.as_deref(), Some("alice@acme.com"), "the email stays in its place");
    assert_eq!((alice.name.given.as_deref(), alice.name.family.as_deref()), (Some("Alice"), Some("Liddell")));
    assert!(users.iter().filter(|user| !is_alice(user)).all(|user| user.name == Default::default()));
}

#[tokio::test]
async fn a_missing_schema_or_table_is_named() {
    let url = server_url();
    let scratch = Scratch::new(&url, "Missing_Table").await;
    scratch
        .client
        .batch_execute(&format!("CREATE TABLE {} (user_id BIGINT)", scratch.table("sessions")))
        .await
        .unwrap();

    let message = fatal(&directory(&url, &scratch.name, "email")).await;
    assert_eq!(
        message,
        format!(
            "table {}.users does not exist (has Heap Connect synced this environment yet?)",
            scratch.name
        )
    );
    let message = fatal(&directory(&url, "no_such_schema_anywhere", "email")).await;
    assert_eq!(message, "schema \"no_such_schema_anywhere\" does not exist, or user enrich may not see it");
    let message = fatal(&directory(&url, &scratch.name.to_lowercase(), "email")).await;
    assert!(
        message
            .ends_with(&format!("there is {} (names are matched exactly)", support::quoted(&scratch.name))),
        "{message}"
    );
}

#[tokio::test]
async fn missing_and_mistyped_columns_are_all_named_with_their_table() {
    let url = server_url();
    let scratch = Scratch::new(&url, "columns").await;
    scratch
        .client
        .batch_execute(&format!(
            "CREATE TABLE {} (user_id BIGINT, identity BIGINT, \"Work_Email\" TEXT);
             CREATE TABLE {} (user_id BIGINT, time TEXT);",
            scratch.table("users"),
            scratch.table("sessions")
        ))
        .await
        .unwrap();

    let message = fatal(&directory(&url, &scratch.name, "work_email")).await;
    let schema = &scratch.name;
    assert_eq!(
        message,
        format!(
            "{schema}.users.\"identity\" is int8, not text, varchar or char; \
             {schema}.users has no column \"last_modified\"; \
             {schema}.users has no column \"work_email\" (it has \"Work_Email\": names are matched exactly); \
             {schema}.sessions.\"time\" is text, not timestamp or timestamptz; \
             {schema}.sessions has no column \"ip\""
        )
    );
}

#[tokio::test]
async fn a_wrong_password_is_refused_without_showing_it() {
    let url = server_url();
    let password = "not-the-password-7f3a9c";
    let directory = directory(&with_password(&url, password), "main_production", "email");
    let message = fatal(&directory).await;
    assert!(
        message.starts_with("cannot connect: password authentication failed for user \"enrich\""),
        "{message} (the test server must ask for passwords, as .ci/postgres sets it up)"
    );
    for shown in [message, directory.describe(), format!("{directory:?}")] {
        assert!(!shown.contains(password), "the password leaked: {shown}");
    }
    assert!(
        directory
            .describe()
            .starts_with("Heap Connect schema main_production on postgres://enrich@127.0.0.1:")
    );
}

#[tokio::test]
async fn requiring_tls_of_a_server_without_it_fails_clearly() {
    let url = server_url();
    let directory = HeapConnectDirectory::new(&HeapConnectConfig {
        tls: Some(TlsMode::Require),
        ..config(&url, "main_production", "email")
    })
    .unwrap();
    let message = fatal(&directory).await;
    assert_eq!(message, "cannot connect: error performing TLS handshake: server does not support TLS");
}
