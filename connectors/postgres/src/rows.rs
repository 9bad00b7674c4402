//! From result rows to users: the column types each value may have, the window's start as the
//! statement's `$1`, and the stream of users as the server sends the rows.

use std::error::Error as StdError;
use std::net::IpAddr;
use std::pin::Pin;

use chrono::{DateTime, NaiveDateTime, Utc};
use enrich_core::{DirectoryError, PersonName, UserRecord, UserStream};
use futures::StreamExt;
use tokio_postgres::types::{FromSql, ToSql, Type};
use tokio_postgres::{Client, Row, RowStream, Statement};

use crate::database::{ConnectionTask, error_message};

type DecodeError = Box<dyn StdError + Sync + Send>;

/// What a column of a result must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnKind {
    Text,
    /// Heap's `user_id` is a BIGINT; a query may return it as any integer or as text.
    UserId,
    Timestamp,
    Ip,
}

impl ColumnKind {
    pub(crate) fn accepts(self, ty: &Type) -> bool {
        match self {
            Self::Text => <&str as FromSql>::accepts(ty),
            Self::UserId => UserIdText::accepts(ty),
            Self::Timestamp => UtcTime::accepts(ty),
            Self::Ip => IpValue::accepts(ty),
        }
    }

    /// The types accepted, for messages.
    pub(crate) fn expected(self) -> &'static str {
        match self {
            Self::Text => "text, varchar or char",
            Self::UserId => "an integer or text",
            Self::Timestamp => "timestamp or timestamptz",
            Self::Ip => "inet or text",
        }
    }
}

/// A point in time from a `timestamptz`, or from a `timestamp` read as UTC (Heap Connect's times are).
struct UtcTime(DateTime<Utc>);

impl<'a> FromSql<'a> for UtcTime {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, DecodeError> {
        if *ty == Type::TIMESTAMPTZ {
            DateTime::<Utc>::from_sql(ty, raw).map(Self)
        } else {
            NaiveDateTime::from_sql(ty, raw).map(|time| Self(time.and_utc()))
        }
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMP || *ty == Type::TIMESTAMPTZ
    }
}

/// A user id as text, from an integer or a text column.
struct UserIdText(String);

impl<'a> FromSql<'a> for UserIdText {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, DecodeError> {
        let text = match *ty {
            Type::INT2 => i16::from_sql(ty, raw)?.to_string(),
            Type::INT4 => i32::from_sql(ty, raw)?.to_string(),
            Type::INT8 => i64::from_sql(ty, raw)?.to_string(),
            _ => <&str>::from_sql(ty, raw)?.trim().to_owned(),
        };
        Ok(Self(text))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::INT2 | Type::INT4 | Type::INT8) || <&str as FromSql>::accepts(ty)
    }
}

/// An IP address from an `inet` or a text column.
struct IpValue(IpAddr);

impl<'a> FromSql<'a> for IpValue {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, DecodeError> {
        if *ty == Type::INET {
            IpAddr::from_sql(ty, raw).map(Self)
        } else {
            // The value is personal data: the message does not quote it.
            <&str>::from_sql(ty, raw)?.trim().parse().map(Self).map_err(|_| "not an IP address".into())
        }
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INET || <&str as FromSql>::accepts(ty)
    }
}

/// The window's start as the statement's only parameter takes it: a `timestamptz` as it is, a
/// `timestamp` in UTC. The message says what else the parameter turned out to be.
pub(crate) fn window_start(
    statement: &Statement,
    seen_since: DateTime<Utc>,
) -> Result<Box<dyn ToSql + Sync + Send>, String> {
    match statement.params() {
        [ty] if *ty == Type::TIMESTAMPTZ => Ok(Box::new(seen_since)),
        [ty] if *ty == Type::TIMESTAMP => Ok(Box::new(seen_since.naive_utc())),
        [ty] => Err(format!(
            "$1 is used as {}, where it must be compared with a timestamp or timestamptz \
             (write $1::timestamptz)",
            ty.name()
        )),
        params => Err(format!(
            "the query takes {} parameters; it must take exactly one, $1, the start of the window",
            params.len()
        )),
    }
}

/// Where the values of a user sit in each row of a result.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UserColumns {
    pub(crate) identity: usize,
    /// `None` when identities are the emails.
    pub(crate) email: Option<usize>,
    pub(crate) last_seen: usize,
    pub(crate) user_id: Option<usize>,
    pub(crate) ip: Option<usize>,
    /// The person's name, a match hint for sources.
    pub(crate) given_name: Option<usize>,
    pub(crate) family_name: Option<usize>,
    /// A row without identity is an anonymous user, addressed by its user id, rather than a bad row.
    pub(crate) anonymous: bool,
}

/// How messages point at a bad row.
#[derive(Debug, Clone)]
pub(crate) enum RowPlace {
    /// By table and user id: `main_production.users user_id 42`.
    UserIdIn(String),
    /// By position in a query's result, with the user id when there is one: `query row 7, user_id 42`.
    QueryRow,
}

impl RowPlace {
    fn locate(&self, row: &Row, number: u64, columns: &UserColumns) -> String {
        let user_id = columns
            .user_id
            .and_then(|at| row.try_get::<_, Option<UserIdText>>(at).ok().flatten())
            .map(|UserIdText(user_id)| user_id);
        match (self, user_id) {
            (Self::UserIdIn(table), Some(user_id)) => format!("{table} user_id {user_id}"),
            (Self::UserIdIn(table), None) => format!("{table} row {number}"),
            (Self::QueryRow, Some(user_id)) => format!("query row {number}, user_id {user_id}"),
            (Self::QueryRow, None) => format!("query row {number}"),
        }
    }
}

/// The column's value; the message names the column.
fn value<'a, T: FromSql<'a>>(row: &'a Row, at: usize) -> Result<Option<T>, String> {
    row.try_get::<_, Option<T>>(at).map_err(|error| {
        let name = row.columns()[at].name();
        match error.source() {
            Some(cause) => format!("{name} cannot be read: {cause}"),
            None => format!("{name} cannot be read: {error}"),
        }
    })
}

/// The user in one row, or what is wrong with the row. Messages quote no identity, email or IP address
/// (personal data).
fn user_from_row(row: &Row, columns: &UserColumns) -> Result<UserRecord, String> {
    let identity: Option<String> = value(row, columns.identity)?;
    if identity.is_none() && !columns.anonymous {
        return Err("identity is NULL".to_owned());
    }
    if let Some(problem) = identity.as_deref().and_then(enrich_core::user::identity_problem) {
        return Err(problem.to_owned());
    }
    let UtcTime(last_seen) = value(row, columns.last_seen)?.ok_or("last_seen is NULL")?;
    let email = match columns.email {
        None => identity.clone(),
        Some(at) => value::<String>(row, at)?.filter(|email| !email.trim().is_empty()),
    };
    let user_id = match columns.user_id {
        None => None,
        Some(at) => value::<UserIdText>(row, at)?.map(|UserIdText(user_id)| user_id),
    };
    let ip = match columns.ip {
        None => None,
        Some(at) => value::<IpValue>(row, at)?.map(|IpValue(ip)| ip),
    };
    let name_part = |column: Option<usize>| -> Result<Option<String>, String> {
        let Some(at) = column else { return Ok(None) };
        Ok(value::<String>(row, at)?.map(|part| part.trim().to_owned()).filter(|part| !part.is_empty()))
    };
    let name = PersonName { given: name_part(columns.given_name)?, family: name_part(columns.family_name)? };
    let user_id = user_id.filter(|user_id| !user_id.is_empty());
    if identity.is_none() && user_id.is_none() {
        return Err("identity and user_id are both NULL".to_owned());
    }
    Ok(UserRecord { identity, user_id, email, ip, name, last_seen })
}

/// What a stream of users holds while the rows come in.
struct Reading {
    client: Client,
    connection: ConnectionTask,
    rows: Pin<Box<RowStream>>,
    columns: UserColumns,
    place: RowPlace,
    /// Rows received so far.
    number: u64,
}

/// The users of a running query, decoded as the server sends the rows. The driver reads the socket
/// only as fast as the stream is read, so memory stays flat; dropping the stream closes the connection.
pub(crate) fn user_stream(
    client: Client,
    connection: ConnectionTask,
    rows: RowStream,
    columns: UserColumns,
    place: RowPlace,
) -> UserStream {
    let reading = Reading { client, connection, rows: Box::pin(rows), columns, place, number: 0 };
    futures::stream::unfold(Some(reading), |reading| async move {
        let mut reading = reading?;
        match reading.rows.next().await {
            Some(Ok(row)) => {
                reading.number += 1;
                let user = user_from_row(&row, &reading.columns).map_err(|message| DirectoryError::BadRow {
                    location: reading.place.locate(&row, reading.number, &reading.columns),
                    message,
                });
                Some((user, Some(reading)))
            }
            Some(Err(error)) => {
                let message =
                    format!("reading stopped after {} rows: {}", reading.number, error_message(&error));
                Some((Err(DirectoryError::Fatal(message)), None))
            }
            None => {
                reading.connection.finish(reading.client).await;
                None
            }
        }
    })
    .boxed()
}
