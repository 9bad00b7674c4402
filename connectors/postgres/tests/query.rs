//! The query directory against a real PostgreSQL server: a query of one's own, its window, its bad rows,
//! and what is said when its columns or its `$1` do not fit.

mod support;

use std::net::IpAddr;

use chrono::{DateTime, Duration, DurationRound, Utc};
use enrich_core::{ConnectorError, UserDirectory, UserRecord};
use enrich_postgres::{PostgresQueryConfig, PostgresQueryDirectory};
use futures::StreamExt;
use secrecy::SecretString;
use support::{Scratch, collect, server_url};

fn directory(url: &str, query: &str) -> PostgresQueryDirectory {
    PostgresQueryDirectory::new(&PostgresQueryConfig {
        url: SecretString::from(url.to_owned()),
        query: query.to_owned(),
        tls: None,
    })
    .expect("a valid config")
}

async fn fatal(directory: &PostgresQueryDirectory) -> String {
    match directory.users(Utc::now() - Duration::days(7)).await {
        Ok(_) => panic!("{} should fail", directory.describe()),
        Err(ConnectorError::Fatal(message)) => message,
        Err(other) => panic!("not fatal: {other:?}"),
    }
}

/// A `people` table of an application's own, with `seen_at` of the given type, and its rows.
async fn people(scratch: &Scratch, seen_type: &str, ip_type: &str, now: DateTime<Utc>) {
    scratch
        .client
        .batch_execute(&format!(
            "CREATE TABLE {} (id BIGINT, ident TEXT, mail VARCHAR(200), seen_at {seen_type}, \
             last_ip {ip_type}, plan TEXT)",
            scratch.table("people")
        ))
        .await
        .unwrap();
    let insert = format!(
        "INSERT INTO {} VALUES ($1, $2, $3, $4::text::{seen_type}, $5::text::{ip_type}, 'pro')",
        scratch.table("people")
    );
    let long = "y".repeat(256);
    let rows = [
        (1_i64, Some("ann"), Some("ann@firm.io"), now - Duration::hours(2), Some("192.0.2.7")),
        (2, Some("bob, \"the\" builder"), None, now - Duration::days(6), Some("2001:db8::1")),
        (3, Some("old"), Some("old@firm.io"), now - Duration::days(9), None),
        // Seen an hour after the window's start: in, whatever the server's time zone.
        (4, Some("edge"), Some("edge@firm.io"), now - Duration::days(7) + Duration::hours(1), None),
        (5, None, Some("anon@firm.io"), now - Duration::days(1), None),
        (6, Some(long.as_str()), Some("long@firm.io"), now - Duration::days(1), None),
        // An `inet` column cannot hold what a text one can.
        (
            7,
            Some("bad-ip"),
            Some("ip@firm.io"),
            now - Duration::days(1),
            (ip_type == "TEXT").then_some("not an IP"),
        ),
    ];
    for (id, ident, mail, seen_at, ip) in rows {
        // As text, so that a `timestamp` column holds the UTC wall time whatever the session's zone.
        let seen_at = seen_at.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string();
        let seen_at =
            if seen_type == "TIMESTAMP" { seen_at.trim_end_matches("+00").to_owned() } else { seen_at };
        scratch.execute(&insert, &[&id, &ident, &mail, &seen_at, &ip]).await;
    }
}

fn record(
    user_id: &str,
    identity: &str,
    email: Option<&str>,
    ip: Option<&str>,
    last_seen: DateTime<Utc>,
) -> UserRecord {
    UserRecord {
        identity: Some(identity.to_owned()),
        user_id: Some(user_id.to_owned()),
        email: email.map(str::to_owned),
        ip: ip.map(|ip| ip.parse::<IpAddr>().unwrap()),
        name: enrich_core::PersonName::default(),
        last_seen,
    }
}

#[tokio::test]
async fn reads_what_the_query_returns_in_the_window_in_utc_whatever_the_session_zone() {
    let url = server_url();
    let now = Utc::now().duration_trunc(Duration::microseconds(1)).unwrap();
    let since = now - Duration::days(7);
    // Far from UTC, so that reading a `timestamp` in the session's zone would move users across the edge.
    let zoned_url = format!("{url}?options=-c%20TimeZone%3DPacific%2FKiritimati");
    for (seen_type, ip_type, comparison) in [
        ("TIMESTAMP", "TEXT", "seen_at >= $1::timestamptz"),
        ("TIMESTAMP", "INET", "seen_at >= $1"),
        ("TIMESTAMPTZ", "INET", "seen_at >= $1"),
    ] {
        let scratch = Scratch::new(&url, &format!("query {seen_type} {ip_type}")).await;
        people(&scratch, seen_type, ip_type, now).await;
        let query = format!(
            "SELECT id AS user_id, ident AS identity, mail AS email, seen_at AS last_seen, last_ip AS ip, plan
             FROM {} WHERE {comparison} ORDER BY id",
            scratch.table("people")
        );
        let (users, bad_rows, fatal) =
            collect(directory(&zoned_url, &query).users(since).await.unwrap()).await;
        let case = format!("{seen_type}, ip {ip_type}, {comparison}");
        assert_eq!(fatal, Vec::<String>::new(), "{case}");
        let mut expected = vec![
            record("1", "ann", Some("ann@firm.io"), Some("192.0.2.7"), now - Duration::hours(2)),
            record("2", "bob, \"the\" builder", None, Some("2001:db8::1"), now - Duration::days(6)),
            record("4", "edge", Some("edge@firm.io"), None, since + Duration::hours(1)),
            // How long an identity may be is the sink's rule, not the directory's.
            record("6", &"y".repeat(256), Some("long@firm.io"), None, now - Duration::days(1)),
        ];
        let mut expected_bad = vec![("query row 4, user_id 5".to_owned(), "identity is NULL".to_owned())];
        if ip_type == "TEXT" {
            expected_bad.push((
                "query row 6, user_id 7".to_owned(),
                "ip cannot be read: not an IP address".to_owned(),
            ));
        } else {
            expected.push(record("7", "bad-ip", Some("ip@firm.io"), None, now - Duration::days(1)));
        }
        assert_eq!(users, expected, "{case}");
        assert_eq!(bad_rows, expected_bad, "{case}");
    }
}

#[tokio::test]
async fn names_are_read_as_match_hints() {
    let url = server_url();
    let query = "SELECT 'u1' AS identity, 'ada@firm.io' AS email, $1::timestamptz AS last_seen, \
                 ' Ada ' AS given_name, '' AS family_name";
    let since = Utc::now().duration_trunc(Duration::microseconds(1)).unwrap();
    let (users, bad_rows, fatal) = collect(directory(&url, query).users(since).await.unwrap()).await;
    assert_eq!((bad_rows.len(), fatal.len()), (0, 0));
    let name = &users[0].name;
    assert_eq!((name.given.as_deref(), name.family.as_deref()), (Some("Ada"), None));
}

#[tokio::test]
async fn a_query_whose_columns_do_not_fit_is_refused_with_every_reason() {
    let url = server_url();
    let scratch = Scratch::new(&url, "query columns").await;
    people(&scratch, "TIMESTAMP", "TEXT", Utc::now()).await;
    let people = scratch.table("people");

    let message =
        fatal(&directory(&url, &format!("SELECT ident, mail FROM {people} WHERE seen_at >= $1"))).await;
    assert_eq!(
        message,
        "the query returns no column identity, email, last_seen (it returns: ident, mail); it must return \
         identity, email and last_seen, and may return user_id, ip, given_name and family_name"
    );
    let message = fatal(&directory(
        &url,
        &format!(
            "SELECT ident AS identity, mail AS email, seen_at::text AS last_seen, id::float8 AS user_id, \
             ident AS Email FROM {people} WHERE seen_at >= $1"
        ),
    ))
    .await;
    assert_eq!(
        message,
        "the query returns the column email more than once; returns last_seen as text, not timestamp or \
         timestamptz (cast it: last_seen::timestamptz); returns user_id as float8, not an integer or text \
         (cast it: user_id::text)"
    );
}

#[tokio::test]
async fn a_query_the_server_refuses_or_whose_1_is_no_time_is_refused_clearly() {
    let url = server_url();
    let scratch = Scratch::new(&url, "query errors").await;
    people(&scratch, "TIMESTAMPTZ", "TEXT", Utc::now()).await;
    let people = scratch.table("people");
    let columns = "ident AS identity, mail AS email, seen_at AS last_seen";

    let message = fatal(&directory(&url, &format!("SELECT {columns} FROM {people} WHERE ident >= $1"))).await;
    assert_eq!(
        message,
        "$1 is used as text, where it must be compared with a timestamp or timestamptz \
         (write $1::timestamptz)"
    );
    let missing =
        format!("SELECT {columns} FROM {}.nowhere WHERE seen_at >= $1", support::quoted(&scratch.name));
    let message = fatal(&directory(&url, &missing)).await;
    assert!(
        message
            .starts_with(&format!("the query failed: relation \"{}.nowhere\" does not exist", scratch.name)),
        "{message}"
    );
    assert!(message.ends_with("(SQLSTATE 42P01)"), "{message}");
    let message =
        fatal(&directory(&url, &format!("SELECT {columns}, nope FROM {people} WHERE seen_at >= $1"))).await;
    assert!(
        message.starts_with("the query failed: column \"nope\" does not exist at character"),
        "{message}"
    );
    assert!(message.ends_with("(SQLSTATE 42703)"), "{message}");
}

#[tokio::test]
async fn a_stream_given_up_half_way_closes_its_connection() {
    let url = server_url();
    let scratch = Scratch::new(&url, "given up").await;
    let application = format!("enrich-test-{}", std::process::id());
    // Endless for a test: a set-returning function in the select list streams, where one in FROM
    // would be computed whole before the first row.
    let query = "SELECT 'user-' || n AS identity, 'p' || n || '@firm.io' AS email, now() AS last_seen
         FROM (SELECT generate_series(1, 2000000000) AS n) AS series WHERE now() >= $1";
    let directory = directory(&format!("{url}?application_name={application}"), query);
    let mut users = directory.users(Utc::now() - Duration::days(7)).await.unwrap();
    for _ in 0..3 {
        users.next().await.unwrap().unwrap();
    }
    let connections =
        format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = '{application}'");
    let open = || async { scratch.client.query_one(&connections, &[]).await.unwrap().get::<_, i64>(0) };
    assert_eq!(open().await, 1, "the reading's connection is open");
    drop(users);
    let closed_within = std::time::Instant::now();
    while open().await != 0 {
        assert!(closed_within.elapsed().as_secs() < 10, "the connection outlived the stream");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
