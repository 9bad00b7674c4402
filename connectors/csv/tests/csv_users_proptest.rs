//! Whatever bytes a roster holds, the CSV reader never panics, never stops the run for one bad row,
//! never yields fewer users than lines less the bad rows it reports, and only hands the engine users it
//! can address.

use chrono::{DateTime, Utc};
use enrich_core::{DirectoryError, UserDirectory};
use enrich_csv::CsvDirectory;
use futures::StreamExt;
use proptest::prelude::*;

/// Rows built from pieces that trip CSV readers: quotes, separators, line breaks, bad UTF-8, BOMs.
fn row_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b",".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\xff\xfe".to_vec()),
        Just(b"\xef\xbb\xbf".to_vec()),
        Just(b"2026-11-28".to_vec()),
        Just(b"2026-11-28T10:00:00Z".to_vec()),
        Just(b"a@b.io".to_vec()),
        Just("é".repeat(200).into_bytes()),
        "[a-z0-9 @.]{0,12}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn any_roster_is_read_row_by_row(rows in proptest::collection::vec(row_bytes(), 0..20)) {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("users.csv");
        let mut contents = b"identity,last_seen,email\n".to_vec();
        for row in &rows {
            contents.extend_from_slice(row);
            contents.push(b'\n');
        }
        std::fs::write(&path, &contents).unwrap();

        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let items = runtime.block_on(async {
            let config = serde_json::from_value(serde_json::json!({"path": "-", "email_property": "email"})).unwrap();
            let directory = CsvDirectory::new(path.clone(), &config);
            let stream = directory.users(DateTime::<Utc>::MIN_UTC).await.expect("the header is valid");
            stream.collect::<Vec<_>>().await
        });
        // Every line holding anything is a user or a reported bad row: a stray quote swallows nothing.
        // (A line holding only a byte order mark may be read as blank.)
        let rows_written = &contents[contents.iter().position(|&byte| byte == b'\n').unwrap() + 1..];
        let data_lines = rows_written
            .split(|&byte| byte == b'\n' || byte == b'\r')
            .filter(|line| !line.strip_prefix(b"\xef\xbb\xbf").unwrap_or(line).is_empty())
            .count();
        prop_assert!(items.len() >= data_lines, "{} rows read from {data_lines} lines", items.len());
        for item in items {
            match item {
                Ok(user) => {
                    let identity = user.identity.as_deref().unwrap_or_default();
                    prop_assert!(!identity.trim().is_empty());
                }
                Err(DirectoryError::BadRow { location, .. }) => {
                    prop_assert!(location.starts_with("users.csv:"), "{location}");
                }
                Err(DirectoryError::Fatal(message)) => prop_assert!(false, "one bad row stopped the run: {message}"),
            }
        }
    }
}
