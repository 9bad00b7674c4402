//! The CSV user directory: the header, each kind of bad row with its line, dates and encodings.

use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use enrich_core::{ConnectorError, DirectoryError, PersonName, UserDirectory, UserRecord};
use enrich_csv::{CsvDirectory, CsvUsersConfig};
use futures::StreamExt;
use serde_json::json;
use tempfile::TempDir;

/// A `users.csv` holding these bytes, in a folder that lives as long as the returned guard.
fn users_file(contents: impl AsRef<[u8]>) -> (TempDir, CsvDirectory) {
    users_file_with_email(contents, "email")
}

fn users_file_with_email(contents: impl AsRef<[u8]>, email_property: &str) -> (TempDir, CsvDirectory) {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("users.csv");
    std::fs::write(&path, contents).unwrap();
    (folder, CsvDirectory::new(path, &config(json!({"path": "users.csv", "email_property": email_property}))))
}

fn config(fields: serde_json::Value) -> CsvUsersConfig {
    serde_json::from_value(fields).unwrap()
}

async fn read(directory: &CsvDirectory) -> Vec<Result<UserRecord, DirectoryError>> {
    directory.users(Utc::now()).await.unwrap().collect().await
}

/// Why the directory refuses to stream the file at all.
async fn open_error(directory: &CsvDirectory) -> ConnectorError {
    match directory.users(Utc::now()).await {
        Ok(_) => panic!("{} should not open", directory.describe()),
        Err(error) => error,
    }
}

fn user(identity: &str, email: Option<&str>, last_seen: DateTime<Utc>) -> UserRecord {
    UserRecord {
        identity: Some(identity.into()),
        user_id: None,
        email: email.map(Into::into),
        ip: None,
        name: PersonName::default(),
        last_seen,
    }
}

fn at(year: i32, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, month, day, hour, minute, second).unwrap()
}

const ACCEPTED_FORMATS: &str = "accepted formats: RFC 3339 (2026-11-28T10:00:00Z), YYYY-MM-DD, \
     YYYY-MM-DD HH:MM[:SS[.fff]] or YYYY-MM-DDTHH:MM[:SS[.fff]] in UTC, or Unix epoch seconds or milliseconds";

fn bad_row(line: u64, message: &str) -> Result<UserRecord, DirectoryError> {
    Err(DirectoryError::BadRow { location: format!("users.csv:{line}"), message: message.into() })
}

const UNBALANCED_QUOTE: &str = "has an unbalanced quote: a field opened with `\"` is not closed on its line; \
     the row is skipped and the next line read as a row";

#[tokio::test]
async fn reads_every_user_with_extra_columns_ignored() {
    let (_folder, directory) = users_file(
        " Identity ,EMAIL,plan,last_seen,User_ID\n\
         u-1,alex@clearbit.com,pro,2026-11-28T10:00:00Z,101\n\
         u-2,,free,2026-11-27T09:30:00Z,\n\
         u-3,  ,free,2026-11-26,102\n",
    );

    let users = read(&directory).await;

    let mut first = user("u-1", Some("alex@clearbit.com"), at(2026, 11, 28, 10, 0, 0));
    first.user_id = Some("101".into());
    let mut third = user("u-3", None, at(2026, 11, 26, 0, 0, 0));
    third.user_id = Some("102".into());
    assert_eq!(users, [Ok(first), Ok(user("u-2", None, at(2026, 11, 27, 9, 30, 0))), Ok(third)]);
}

#[tokio::test]
async fn passes_names_and_ip_addresses_on_as_match_hints() {
    let (_folder, directory) = users_file(
        "identity,email,last_seen,given_name,Family_Name,ip_address\n\
         u-1,ada@acme.com,2026-11-28, Ada ,Lovelace,203.0.113.7\n\
         u-2,bo@acme.com,2026-11-28,,,not an address\n",
    );
    let users = read(&directory).await;
    let mut ada = user("u-1", Some("ada@acme.com"), at(2026, 11, 28, 0, 0, 0));
    ada.name = PersonName { given: Some("Ada".into()), family: Some("Lovelace".into()) };
    ada.ip = Some("203.0.113.7".parse().unwrap());
    assert_eq!(users, [Ok(ada), Ok(user("u-2", Some("bo@acme.com"), at(2026, 11, 28, 0, 0, 0)))]);
}

#[tokio::test]
async fn reads_ip_addresses_from_the_configured_column() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("users.csv");
    std::fs::write(
        &path,
        "identity,email,last_seen,ip_address,Last IP\nu-1,ada@acme.com,2026-11-28,81.2.69.1,81.2.69.160\n",
    )
    .unwrap();
    let names = json!({"path": "users.csv", "email_property": "email", "ip_property": " last ip "});
    let users = read(&CsvDirectory::new(path, &config(names))).await;
    assert_eq!(users[0].as_ref().unwrap().ip, Some("81.2.69.160".parse().unwrap()));
    let config: CsvUsersConfig = serde_json::from_value(
        serde_json::json!({ "path": "users.csv", "email_property": "email", "ip_property": " " }),
    )
    .unwrap();
    assert_eq!(config.validate()[0].field, "ip_property");
}

#[tokio::test]
async fn passes_emails_as_written() {
    let (_folder, directory) = users_file("identity,email,last_seen\nu-1, Alex@ClearBit.com ,2026-11-28\n");
    let users = read(&directory).await;
    assert_eq!(users[0].as_ref().unwrap().email.as_deref(), Some(" Alex@ClearBit.com "));
}

#[tokio::test]
async fn identities_may_be_the_emails() {
    let (_folder, directory) =
        users_file_with_email("identity,last_seen\nalex@clearbit.com,2026-11-28\n", " Identity ");
    let users = read(&directory).await;
    assert_eq!(users, [Ok(user("alex@clearbit.com", Some("alex@clearbit.com"), at(2026, 11, 28, 0, 0, 0)))]);
}

#[tokio::test]
async fn the_email_column_is_matched_case_insensitively() {
    let (_folder, directory) =
        users_file_with_email("identity,last_seen, work email \nu-1,2026-11-28,a@b.io\n", "Work Email");
    let users = read(&directory).await;
    assert_eq!(users[0].as_ref().unwrap().email.as_deref(), Some("a@b.io"));
}

#[tokio::test]
async fn accepts_rfc3339_dates_heaps_export_format_and_epoch_times() {
    let (_folder, directory) = users_file(
        "identity,email,last_seen\n\
         u-1,,2026-11-28T10:00:00+02:00\n\
         u-2,,2026-11-28 10:00:00\n\
         u-3,,2026-11-28 10:00:00.250\n\
         u-4,,2026-11-28\n\
         u-5,, 2026-11-28t10:00:00.5z \n\
         u-6,,2026-11-28 10:00\n\
         u-7,,2026-11-28T10:00:00\n\
         u-8,,1795860000\n\
         u-9,,1795860000250\n",
    );

    let seen: Vec<DateTime<Utc>> =
        read(&directory).await.into_iter().map(|user| user.unwrap().last_seen).collect();

    let ten = at(2026, 11, 28, 10, 0, 0);
    assert_eq!(
        seen,
        [
            at(2026, 11, 28, 8, 0, 0),
            ten,
            ten + chrono::Duration::milliseconds(250),
            at(2026, 11, 28, 0, 0, 0),
            ten + chrono::Duration::milliseconds(500),
            ten,
            ten,
            ten,
            ten + chrono::Duration::milliseconds(250),
        ]
    );
}

#[tokio::test]
async fn reports_each_bad_row_with_its_line_and_reads_on() {
    let long_identity = "x".repeat(256);
    let (_folder, directory) = users_file(format!(
        "identity,email,last_seen\n\
         u-1,a@b.io\n\
         ,a@b.io,2026-11-28\n\
         {long_identity},a@b.io,2026-11-28\n\
         u-4,a@b.io,yesterday\n\
         u-5,a@b.io,\n\
         u-6,a@b.io,2026-11-28,extra\n\
         u-7,a@b.io,{}\n\
         u-8,a@b.io,2026-11-28\n",
        "9".repeat(100),
    ));

    let users = read(&directory).await;

    assert_eq!(
        users,
        [
            bad_row(2, "has 2 fields where the header has 3"),
            bad_row(3, "identity is empty"),
            // How long an identity may be is the sink's rule, not the roster's.
            Ok(user(&long_identity, Some("a@b.io"), at(2026, 11, 28, 0, 0, 0))),
            bad_row(5, &format!(r#"last_seen "yesterday" is not a date; {ACCEPTED_FORMATS}"#)),
            bad_row(6, &format!("last_seen is empty; {ACCEPTED_FORMATS}")),
            bad_row(7, "has 4 fields where the header has 3"),
            bad_row(8, &format!(r#"last_seen "{}…" is not a date; {ACCEPTED_FORMATS}"#, "9".repeat(60))),
            Ok(user("u-8", Some("a@b.io"), at(2026, 11, 28, 0, 0, 0))),
        ]
    );
}

#[tokio::test]
async fn a_field_spanning_lines_is_an_unbalanced_quote_and_the_lines_after_it_are_rows() {
    let (_folder, directory) = users_file(
        "identity,email,last_seen,note\n\
         u-1,a@b.io,never,\"two\nlines\"\n\
         u-2,a@b.io,never,\n",
    );
    let users = read(&directory).await;
    let never = format!(r#"last_seen "never" is not a date; {ACCEPTED_FORMATS}"#);
    assert_eq!(
        users,
        [bad_row(2, UNBALANCED_QUOTE), bad_row(3, "has 1 fields where the header has 4"), bad_row(4, &never)]
    );
}

#[tokio::test]
async fn a_stray_quote_costs_one_row_not_the_rest_of_the_file() {
    let mut file = String::from("identity,last_seen,email,plan\n");
    for row in 1..=202 {
        let plan = if row == 61 { "\"pro" } else { "pro" };
        file.push_str(&format!("u-{row},2026-11-28,u{row}@b.io,{plan}\r\n"));
    }
    let (_folder, directory) = users_file(file);
    let users = read(&directory).await;
    let bad: Vec<_> = users.iter().filter(|user| user.is_err()).collect();
    assert_eq!(bad, [&bad_row(62, UNBALANCED_QUOTE)]);
    assert_eq!(users.len() - bad.len(), 201);
}

#[tokio::test]
async fn a_huge_field_is_reported_without_being_quoted() {
    let huge = "z".repeat(70_000);
    let (_folder, directory) = users_file(format!(
        "identity,email,last_seen,note\nu-1,a@b.io,2026-11-28,\"{huge}\"\nu-2,,2026-11-28,\n"
    ));

    let users = read(&directory).await;

    assert_eq!(
        users[0],
        bad_row(2, "field 4 is 70000 bytes long, more than the 64 KiB a field may hold (an unclosed quote?)")
    );
    assert!(users[1].is_ok());
}

#[tokio::test]
async fn latin1_bytes_make_a_bad_row_only_in_a_column_that_is_used() {
    let mut contents = b"identity,email,last_seen,company\n".to_vec();
    contents.extend_from_slice(b"u-1,caf\xe9@example.com,2026-11-28,Acme\n");
    contents.extend_from_slice(b"u-2,a@b.io,2026-11-28,Soci\xe9t\xe9 G\xe9n\xe9rale\n");
    let (_folder, directory) = users_file(contents);

    let users = read(&directory).await;

    assert_eq!(
        users[0],
        bad_row(2, "email is not valid UTF-8 (byte 0xE9 after 3 valid bytes): save the file as UTF-8")
    );
    assert_eq!(users[1], Ok(user("u-2", Some("a@b.io"), at(2026, 11, 28, 0, 0, 0))));
}

#[tokio::test]
async fn a_byte_order_mark_does_not_hide_the_first_column() {
    let (_folder, directory) = users_file("\u{feff}identity,email,last_seen\r\nu-1,a@b.io,2026-11-28\r\n");
    assert_eq!(read(&directory).await, [Ok(user("u-1", Some("a@b.io"), at(2026, 11, 28, 0, 0, 0)))]);
}

#[tokio::test]
async fn missing_columns_are_named_together_with_the_columns_found() {
    let (_folder, directory) = users_file_with_email("Identity,Name,Email\nu-1,Alex,a@b.io\n", "Work Email");

    let error = open_error(&directory).await;

    assert_eq!(
        error,
        ConnectorError::Fatal(
            "lacks the column(s) last_seen, Work Email (the header has: Identity, Name, Email)".into()
        )
    );
}

#[tokio::test]
async fn a_repeated_column_is_ambiguous() {
    let (_folder, directory) = users_file("identity,email,last_seen,Email\nu-1,a@b.io,2026-11-28,c@d.io\n");
    let error = open_error(&directory).await;
    assert_eq!(
        error,
        ConnectorError::Fatal(
            "has the column(s) email more than once (the header has: identity, email, last_seen, Email)"
                .into()
        )
    );
}

#[tokio::test]
async fn an_empty_file_has_no_header() {
    let (_folder, directory) = users_file("");
    let error = open_error(&directory).await;
    assert_eq!(
        error,
        ConnectorError::Fatal(
            "is empty: a header row naming the columns identity, last_seen, email is required".into()
        )
    );
}

#[tokio::test]
async fn a_header_alone_is_an_empty_roster() {
    let (_folder, directory) = users_file("identity,email,last_seen\n");
    assert!(read(&directory).await.is_empty());
}

#[tokio::test]
async fn a_missing_file_cannot_be_read() {
    let directory = CsvDirectory::new(
        "/nonexistent/users.csv".into(),
        &config(json!({"path": "-", "email_property": "email"})),
    );
    assert_eq!(directory.describe(), "/nonexistent/users.csv");
    let error = open_error(&directory).await;
    assert!(
        matches!(&error, ConnectorError::Fatal(message) if message.starts_with("cannot be read: ")),
        "{error:?}"
    );
}

#[tokio::test]
async fn streams_a_roster_larger_than_the_read_ahead() {
    let mut contents = String::from("identity,email,last_seen\n");
    for n in 0..5000 {
        contents.push_str(&format!("u-{n},u{n}@example.com,2026-11-28\n"));
    }
    let (_folder, directory) = users_file(contents);

    let users = read(&directory).await;

    assert_eq!(users.len(), 5000);
    assert_eq!(users[4999].as_ref().unwrap().identity.as_deref(), Some("u-4999"));
    // A consumer that stops early releases the reading instead of blocking it.
    let first_three: Vec<_> = directory.users(Utc::now()).await.unwrap().take(3).collect().await;
    assert_eq!(first_three.len(), 3);
}

#[test]
fn config_validation() {
    let config: CsvUsersConfig =
        serde_json::from_value(serde_json::json!({"path": "users.csv", "email_property": " "})).unwrap();
    let problems: Vec<String> = config.validate().iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        [
            "email_property: must name the column holding the email, or be `identity` when identities are emails"
        ]
    );
    let unknown = serde_json::from_value::<CsvUsersConfig>(
        serde_json::json!({"path": "u.csv", "email_property": "email", "delimiter": ";"}),
    );
    assert!(unknown.unwrap_err().to_string().contains("unknown field `delimiter`"));
}

#[test]
fn validate_path_names_the_file_as_written_and_as_resolved() {
    let folder = tempfile::tempdir().unwrap();
    let config: CsvUsersConfig =
        serde_json::from_value(serde_json::json!({"path": "users.csv", "email_property": "email"})).unwrap();
    let resolved = folder.path().join("users.csv");

    let missing = config.validate_path(&resolved).unwrap();
    assert_eq!(missing.field, "path");
    assert_eq!(missing.message, format!("no such file: users.csv (resolved to {})", resolved.display()));

    assert_eq!(config.validate_path(folder.path()).unwrap().message.split(':').next(), Some("is not a file"));

    std::fs::write(&resolved, "identity,email,last_seen\n").unwrap();
    assert_eq!(config.validate_path(&resolved), None);
    assert_eq!(
        config.validate_path(Path::new("users.csv")).map(|problem| problem.message),
        Some("no such file: users.csv".into())
    );
}

#[test]
fn validate_reads_the_header_and_names_the_column_a_setting_meant() {
    let folder = tempfile::tempdir().unwrap();
    let resolved = folder.path().join("users.csv");
    std::fs::write(&resolved, "Identity,Last Seen,Email Address,Plan\n").unwrap();
    let heap_export = config(json!({"path": "users.csv", "email_property": "email"}));
    let problems: Vec<String> =
        heap_export.validate_header(&resolved).iter().map(ToString::to_string).collect();
    let header = "(its header has: Identity, Last Seen, Email Address, Plan)";
    assert_eq!(
        problems,
        [
            format!(
                "last_seen_property: no column \"last_seen\" in the file {header}; write last_seen_property: \"Last Seen\""
            ),
            format!(
                "email_property: no column \"email\" in the file {header}; write email_property: \"Email Address\""
            ),
        ]
    );
    let fixed = config(
        json!({"path": "users.csv", "email_property": "Email Address", "last_seen_property": "last seen"}),
    );
    assert!(fixed.validate_header(&resolved).is_empty());
}

#[tokio::test]
async fn identity_and_last_seen_columns_are_configurable() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("users.csv");
    std::fs::write(&path, "user,seen,mail\nu1,2026-11-29 10:00,a@x.io\n").unwrap();
    let names = json!({"path": "users.csv", "email_property": "mail", "identity_property": "user", "last_seen_property": "seen"});
    let users: Vec<_> =
        CsvDirectory::new(path, &config(names)).users(Utc::now()).await.unwrap().collect().await;
    assert_eq!(users, [Ok(user("u1", Some("a@x.io"), at(2026, 11, 29, 10, 0, 0)))]);
}
