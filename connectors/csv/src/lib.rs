//! The CSV user directory of enrich: the roster read from a file such as a Heap users export. It is
//! no one service's: any source and sink work with it.
//!
//! The file needs a header row with the identity, last-seen and email columns the config names
//! (`identity`, `last_seen` by default; no email column when identities are emails); `user_id` is
//! passed on when present, and so are `given_name`, `family_name` and `ip_address`, which sources send
//! as match hints; other columns are ignored. `enrich validate` reads the header and names the column
//! a misnamed setting most likely meant. A bad row is reported and skipped; the rest of the file is
//! still read. Fields may not span
//! lines: a quote left open is reported on its line, and the lines after it are read as rows.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use csv::ByteRecord;
use enrich_core::{
    ConnectorError, DirectoryError, FieldError, PersonName, UserDirectory, UserRecord, UserStream,
};
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use enrich_core::error::shorten;

mod detect;
pub use detect::{DetectedColumns, detect_columns};
mod settings;

/// As `email_property`, says that identities are the email addresses.
const IDENTITY_COLUMN: &str = "identity";
const USER_ID_COLUMN: &str = "user_id";
/// Optional columns a source may send with the lookup to raise its match rate.
const GIVEN_NAME_COLUMN: &str = "given_name";
const FAMILY_NAME_COLUMN: &str = "family_name";
const IP_COLUMN: &str = "ip_address";
/// Rows read ahead of the engine: enough to keep it busy, small enough that memory stays flat.
const ROWS_IN_FLIGHT: usize = 1024;
/// Longer fields are refused: user data is short, so they mean a broken file (an unclosed quote).
const MAX_FIELD_BYTES: usize = 64 * 1024;
/// The longest line the reader goes back over after an unbalanced quote: a row is far shorter.
const MAX_LINE_BYTES: u64 = 16 * MAX_FIELD_BYTES as u64;
/// How much of an unreadable value a message quotes.
const MAX_QUOTED_CHARS: usize = 60;
const ACCEPTED_DATES: &str = "RFC 3339 (2026-11-28T10:00:00Z), YYYY-MM-DD, YYYY-MM-DD HH:MM[:SS[.fff]] or \
     YYYY-MM-DDTHH:MM[:SS[.fff]] in UTC, or Unix epoch seconds or milliseconds";

/// The `csv` users config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvUsersConfig {
    /// The file, relative to the config file's folder unless absolute.
    pub path: PathBuf,
    /// The column holding each user's email, or `identity` when identities are emails.
    pub email_property: String,
    /// The column holding the IP address of each user's latest session (for Clearbit Reveal, and as a
    /// match hint); `ip_address` by default.
    #[serde(default)]
    pub ip_property: Option<String>,
    /// The column holding each user's identity.
    #[serde(default = "default_identity_property")]
    pub identity_property: String,
    /// The column holding when each user was last seen.
    #[serde(default = "default_last_seen_property")]
    pub last_seen_property: String,
}

fn default_identity_property() -> String {
    IDENTITY_COLUMN.to_owned()
}

fn default_last_seen_property() -> String {
    "last_seen".to_owned()
}

impl CsvUsersConfig {
    /// Problems found in the config itself; see [`Self::validate_path`] and [`Self::validate_header`]
    /// for the file.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut problems = Vec::new();
        if self.path.as_os_str().is_empty() {
            problems.push(FieldError::new("path", "must name the CSV file of users"));
        }
        if self.ip_property.as_deref().is_some_and(|column| column.trim().is_empty()) {
            problems.push(FieldError::new("ip_property", "must name the column holding the IP address"));
        }
        if self.email_property.trim().is_empty() {
            problems.push(FieldError::new(
                "email_property",
                "must name the column holding the email, or be `identity` when identities are emails",
            ));
        }
        for (field, column) in
            [("identity_property", &self.identity_property), ("last_seen_property", &self.last_seen_property)]
        {
            if column.trim().is_empty() {
                problems.push(FieldError::new(field, "must name a column of the file"));
            }
        }
        problems
    }

    /// Problems of the header of the file at `resolved` (this config's `path` as the caller resolved
    /// it): a configured column it lacks is said on the setting naming it, with the column it most
    /// likely meant. For `enrich validate`: the file may change before a run, which checks again.
    pub fn validate_header(&self, resolved: &Path) -> Vec<FieldError> {
        if !self.validate().is_empty() || self.validate_path(resolved).is_some() {
            // Said by `validate` and `validate_path`.
            return Vec::new();
        }
        let header = File::open(resolved).map_err(|error| error.to_string()).and_then(|file| {
            let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(file);
            reader.byte_headers().cloned().map_err(|error| error.to_string())
        });
        match header.map(|header| locate_columns(&header, &ColumnNames::of(self))) {
            Err(error) => vec![FieldError::new("path", format!("cannot be read: {error}"))],
            Ok(Ok(_)) => Vec::new(),
            Ok(Err(problems)) => problems.fields,
        }
    }

    /// A problem when `resolved`, this config's `path` as the caller resolved it, is not a file.
    pub fn validate_path(&self, resolved: &Path) -> Option<FieldError> {
        let problem = match resolved.metadata() {
            Ok(metadata) if metadata.is_file() => return None,
            Ok(_) => "is not a file".to_owned(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => "no such file".to_owned(),
            Err(error) => format!("cannot be read ({error})"),
        };
        let shown = if resolved == self.path {
            format!("{}", resolved.display())
        } else {
            format!("{} (resolved to {})", self.path.display(), resolved.display())
        };
        Some(FieldError::new("path", format!("{problem}: {shown}")))
    }
}

/// Which column holds a user's email.
#[derive(Debug, Clone, PartialEq, Eq)]
enum EmailColumn {
    /// Identities are email addresses.
    Identity,
    /// The column of this name, as configured (trimmed).
    Named(String),
}

/// The configured names of the columns the directory reads.
#[derive(Debug, Clone)]
struct ColumnNames {
    identity: String,
    last_seen: String,
    email: EmailColumn,
    /// The column of the IP address of each user's latest session.
    ip: String,
}

impl ColumnNames {
    fn of(config: &CsvUsersConfig) -> Self {
        let email = if header_key(&config.email_property) == header_key(&config.identity_property) {
            EmailColumn::Identity
        } else {
            EmailColumn::Named(config.email_property.trim().to_owned())
        };
        Self {
            identity: config.identity_property.trim().to_owned(),
            last_seen: config.last_seen_property.trim().to_owned(),
            email,
            ip: config.ip_property.as_deref().unwrap_or(IP_COLUMN).trim().to_owned(),
        }
    }
}

/// Users read from a CSV file.
#[derive(Debug)]
pub struct CsvDirectory {
    /// Already resolved by the caller.
    path: PathBuf,
    columns: ColumnNames,
}

impl CsvDirectory {
    /// The roster at `path` (already resolved), with the columns `config` names.
    pub fn new(path: PathBuf, config: &CsvUsersConfig) -> Self {
        Self { path, columns: ColumnNames::of(config) }
    }
}

#[async_trait]
impl UserDirectory for CsvDirectory {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    /// Streams every row: a file cannot be filtered more cheaply than the engine drops users outside
    /// `seen_since` itself.
    async fn users(&self, _seen_since: DateTime<Utc>) -> Result<UserStream, ConnectorError> {
        let path = self.path.clone();
        let names = self.columns.clone();
        let (reader, columns) = tokio::task::spawn_blocking(move || open_roster(&path, &names))
            .await
            .map_err(|error| ConnectorError::Fatal(format!("opening the file failed: {error}")))?
            .map_err(ConnectorError::Fatal)?;
        let file_name = self
            .path
            .file_name()
            .map_or_else(|| self.path.display().to_string(), |name| name.to_string_lossy().into_owned());
        let (sender, receiver) = mpsc::channel(ROWS_IN_FLIGHT);
        let reading = tokio::task::spawn_blocking(move || read_rows(reader, &columns, &file_name, &sender));
        Ok(user_stream(receiver, reading))
    }
}

/// Where each column the directory uses sits in a row.
#[derive(Debug)]
struct Columns {
    identity: usize,
    last_seen: usize,
    /// `None` when identities are the emails.
    email: Option<usize>,
    user_id: Option<usize>,
    given_name: Option<usize>,
    family_name: Option<usize>,
    ip: Option<usize>,
    /// How many fields the header has, and so every row must have.
    count: usize,
}

/// Opens the file and finds its columns; the message says what is wrong with the file as a whole.
fn open_roster(path: &Path, names: &ColumnNames) -> Result<(csv::Reader<File>, Columns), String> {
    let file = File::open(path).map_err(|error| format!("cannot be read: {error}"))?;
    // Flexible, so that a row with the wrong number of fields is one bad row rather than the end of
    // the reading. The csv crate drops a UTF-8 byte order mark before the header.
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(file);
    let header = reader.byte_headers().map_err(|error| format!("cannot be read: {error}"))?;
    let columns = locate_columns(header, names).map_err(|problems| problems.summary)?;
    Ok((reader, columns))
}

/// Why a header does not fit the config: one line for the run's error, and one problem per setting
/// for `enrich validate`.
#[derive(Debug)]
struct ColumnProblems {
    summary: String,
    fields: Vec<FieldError>,
}

fn locate_columns(header: &ByteRecord, names: &ColumnNames) -> Result<Columns, ColumnProblems> {
    let whole = |message: String| ColumnProblems {
        fields: vec![FieldError::new("path", message.clone())],
        summary: message,
    };
    // Quoted in messages, so never raw bytes: a binary file must not reach the terminal or the status.
    let header_names: Vec<String> = header
        .iter()
        .map(|name| {
            std::str::from_utf8(name)
                .ok()
                .filter(|name| !name.chars().any(|c| c.is_control() && !c.is_whitespace()))
        })
        .collect::<Option<Vec<&str>>>()
        .ok_or_else(|| {
            whole("is not a CSV text file: its first line holds bytes that are not UTF-8 text".to_owned())
        })?
        .into_iter()
        .map(|name| name.trim().to_owned())
        .collect();
    let keys: Vec<String> = header_names.iter().map(|name| header_key(name)).collect();
    let mut required = vec![
        ("identity_property", names.identity.as_str()),
        ("last_seen_property", names.last_seen.as_str()),
    ];
    if let EmailColumn::Named(email) = &names.email {
        required.push(("email_property", email));
    }
    if header_names.is_empty() {
        let columns: Vec<&str> = required.iter().map(|(_, column)| *column).collect();
        return Err(whole(format!(
            "is empty: a header row naming the columns {} is required",
            columns.join(", ")
        )));
    }
    let mut repeated = Vec::new();
    let mut position = |name: &str| {
        let key = header_key(name);
        let mut found = keys.iter().enumerate().filter(|(_, header)| **header == key).map(|(at, _)| at);
        let first = found.next();
        if found.next().is_some() {
            repeated.push(name.to_owned());
        }
        first
    };
    let user_id = position(USER_ID_COLUMN);
    let given_name = position(GIVEN_NAME_COLUMN);
    let family_name = position(FAMILY_NAME_COLUMN);
    let ip = position(&names.ip);
    let required_positions: Vec<Option<usize>> = required.iter().map(|(_, name)| position(name)).collect();
    let shown = shorten(&header_names.join(", "), MAX_QUOTED_CHARS * 4);
    let mut fields: Vec<FieldError> = required
        .iter()
        .zip(&required_positions)
        .filter(|(_, found)| found.is_none())
        .map(|((field, column), _)| {
            let fix =
                match enrich_core::config::nearest(column, header_names.iter().map(String::as_str)).first() {
                    Some(meant) => format!("; write {field}: {meant:?}"),
                    None => String::new(),
                };
            FieldError::new(
                *field,
                format!("no column {column:?} in the file (its header has: {shown}){fix}"),
            )
        })
        .collect();
    let missing: Vec<&str> = required
        .iter()
        .zip(&required_positions)
        .filter(|(_, found)| found.is_none())
        .map(|((_, column), _)| *column)
        .collect();
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!("lacks the column(s) {}", missing.join(", ")));
    }
    if !repeated.is_empty() {
        let message = format!("has the column(s) {} more than once", repeated.join(", "));
        fields.push(FieldError::new("path", format!("{message} (the header has: {shown})")));
        problems.push(message);
    }
    if !problems.is_empty() {
        return Err(ColumnProblems {
            summary: format!("{} (the header has: {shown})", problems.join(" and ")),
            fields,
        });
    }
    // Every required column was found; their positions come in the order of `required`.
    let found: Vec<usize> = required_positions.into_iter().flatten().collect();
    Ok(Columns {
        identity: found[0],
        last_seen: found[1],
        email: found.get(2).copied(),
        user_id,
        given_name,
        family_name,
        ip,
        count: header_names.len(),
    })
}

/// Header names are matched trimmed and case-insensitively.
fn header_key(name: &str) -> String {
    name.trim().to_lowercase()
}

/// Reads rows until the file ends, the engine stops listening, or the file cannot be read further.
fn read_rows(
    mut reader: csv::Reader<File>,
    columns: &Columns,
    file_name: &str,
    sender: &mpsc::Sender<Result<UserRecord, DirectoryError>>,
) {
    let mut record = ByteRecord::new();
    loop {
        let item = match reader.read_byte_record(&mut record) {
            Ok(false) => return,
            Ok(true) => {
                // Where the row starts. Like the csv crate's own errors, this counts blank lines just
                // before the row in, so it may point at them.
                let start = record.position().cloned().unwrap_or_else(csv::Position::new);
                if spans_lines(&record) {
                    // A quote left open swallows the lines after it into one field: report it and read
                    // those lines again as rows, so that one stray `"` loses one row, not the rest.
                    match skip_to_next_line(&mut reader, &start) {
                        Ok(line) => Err(DirectoryError::BadRow {
                            location: format!("{file_name}:{line}"),
                            message: UNBALANCED_QUOTE.to_owned(),
                        }),
                        Err(error) => Err(DirectoryError::Fatal(format!(
                            "{file_name}:{}: {UNBALANCED_QUOTE}, and the lines after it cannot be read: {error}",
                            start.line()
                        ))),
                    }
                } else {
                    let location = format!("{file_name}:{}", start.line());
                    user_from_row(&record, columns)
                        .map_err(|message| DirectoryError::BadRow { location, message })
                }
            }
            Err(error) => Err(DirectoryError::Fatal(format!("cannot be read any further: {error}"))),
        };
        let stop = matches!(item, Err(DirectoryError::Fatal(_)));
        if sender.blocking_send(item).is_err() || stop {
            return;
        }
    }
}

const UNBALANCED_QUOTE: &str = "has an unbalanced quote: a field opened with `\"` is not closed on its line; \
     the row is skipped and the next line read as a row";

/// Whether a field of the row holds a line break: only a quote left open makes one in a roster.
fn spans_lines(row: &ByteRecord) -> bool {
    row.iter().any(|field| field.contains(&b'\n') || field.contains(&b'\r'))
}

/// Moves the reader to the line after the row starting at `row_start`, and tells that row's line. The
/// csv crate's row start may be the line break ending the line before (`\r\n`) or blank lines.
fn skip_to_next_line(reader: &mut csv::Reader<File>, row_start: &csv::Position) -> std::io::Result<u64> {
    let file = reader.get_mut();
    file.seek(SeekFrom::Start(row_start.byte()))?;
    let mut lines = BufReader::new(&mut *file).take(MAX_LINE_BYTES);
    let mut line = Vec::new();
    let mut row_line = row_start.line();
    // Line breaks before the row, then the row's line up to its end.
    while lines.read_until(b'\n', &mut line)? > 0 && line.iter().all(|&byte| byte == b'\r' || byte == b'\n') {
        row_line += 1;
    }
    let content = line.iter().position(|&byte| byte != b'\r' && byte != b'\n').unwrap_or(line.len());
    let line_length = match line[content..].iter().position(|&byte| byte == b'\r' || byte == b'\n') {
        Some(end) if line[content + end..].starts_with(b"\r\n") => content + end + 2,
        Some(end) => content + end + 1,
        None => line.len(),
    };
    let next_byte = row_start.byte() + line_length as u64;
    let mut next_line = csv::Position::new();
    next_line.set_byte(next_byte).set_line(row_line + 1);
    // Raw: the file has moved under the reader, which a plain seek to where it stands would not see.
    reader.seek_raw(SeekFrom::Start(next_byte), next_line).map_err(std::io::Error::other)?;
    Ok(row_line)
}

/// The user in one row, or what is wrong with the row. Messages quote no identity or email (personal
/// data) and at most the start of a date.
fn user_from_row(row: &ByteRecord, columns: &Columns) -> Result<UserRecord, String> {
    if row.len() != columns.count {
        return Err(format!("has {} fields where the header has {}", row.len(), columns.count));
    }
    if let Some((at, field)) = row.iter().enumerate().find(|(_, field)| field.len() > MAX_FIELD_BYTES) {
        return Err(format!(
            "field {} is {} bytes long, more than the {} KiB a field may hold (an unclosed quote?)",
            at + 1,
            field.len(),
            MAX_FIELD_BYTES / 1024
        ));
    }
    let text = |at: usize, name: &str| {
        std::str::from_utf8(&row[at]).map_err(|error| {
            format!(
                "{name} is not valid UTF-8 (byte 0x{:02X} after {} valid bytes): save the file as UTF-8",
                row[at][error.valid_up_to()],
                error.valid_up_to()
            )
        })
    };
    let identity = text(columns.identity, "identity")?;
    if let Some(problem) = enrich_core::user::identity_problem(identity) {
        return Err(problem.to_owned());
    }
    let last_seen = parse_last_seen(text(columns.last_seen, "last_seen")?)?;
    let email = match columns.email {
        None => Some(identity),
        Some(at) => Some(text(at, "email")?).filter(|email| !email.trim().is_empty()),
    };
    let optional = |column: Option<usize>, name: &str| -> Result<Option<String>, String> {
        match column {
            None => Ok(None),
            Some(at) => Ok(Some(text(at, name)?.trim()).filter(|value| !value.is_empty()).map(str::to_owned)),
        }
    };
    let user_id = optional(columns.user_id, USER_ID_COLUMN)?;
    let name = PersonName {
        given: optional(columns.given_name, GIVEN_NAME_COLUMN)?,
        family: optional(columns.family_name, FAMILY_NAME_COLUMN)?,
    };
    // A hint that is not an address is no hint: the user is still looked up by email.
    let ip = optional(columns.ip, "IP address")?.and_then(|ip| ip.parse().ok());
    Ok(UserRecord {
        identity: Some(identity.to_owned()),
        user_id,
        email: email.map(str::to_owned),
        ip,
        name,
        last_seen,
    })
}

/// RFC 3339 (any offset, converted to UTC); a date, or a date and a time to the minute or second
/// (`YYYY-MM-DD HH:MM:SS.fff` is Heap's export), in UTC; or Unix epoch seconds or milliseconds
/// (more than 11 digits: milliseconds, since seconds reach 11 digits only in the year 5138).
fn parse_last_seen(value: &str) -> Result<DateTime<Utc>, String> {
    const NAIVE: [&str; 4] =
        ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"];
    let value = value.trim();
    if value.is_empty() {
        return Err(format!("last_seen is empty; accepted formats: {ACCEPTED_DATES}"));
    }
    let epoch = || {
        let number: i64 = value.parse().ok().filter(|_| value.bytes().all(|byte| byte.is_ascii_digit()))?;
        if value.len() > 11 {
            DateTime::from_timestamp_millis(number)
        } else {
            DateTime::from_timestamp(number, 0)
        }
    };
    DateTime::parse_from_rfc3339(value)
        .map(|time| time.to_utc())
        .ok()
        .or_else(|| {
            NAIVE
                .iter()
                .find_map(|format| NaiveDateTime::parse_from_str(value, format).ok())
                .map(|time| time.and_utc())
        })
        .or_else(|| {
            NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .ok()
                .map(|date| date.and_time(NaiveTime::MIN).and_utc())
        })
        .or_else(epoch)
        .ok_or_else(|| {
            format!(
                "last_seen {:?} is not a date; accepted formats: {ACCEPTED_DATES}",
                shorten(value, MAX_QUOTED_CHARS)
            )
        })
}

/// The rows as a stream. The channel closes when the reading ends; a reading that panicked must not
/// pass for the end of the file, so it then ends the stream with a fatal error.
fn user_stream(
    receiver: mpsc::Receiver<Result<UserRecord, DirectoryError>>,
    reading: JoinHandle<()>,
) -> UserStream {
    futures::stream::unfold((receiver, Some(reading)), |(mut receiver, reading)| async move {
        if let Some(item) = receiver.recv().await {
            return Some((item, (receiver, reading)));
        }
        match reading?.await {
            Ok(()) => None,
            Err(error) => {
                Some((Err(DirectoryError::Fatal(format!("reading stopped: {error}"))), (receiver, None)))
            }
        }
    })
    .boxed()
}
