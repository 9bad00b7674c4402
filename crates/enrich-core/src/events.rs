//! Every log line the engine produces comes from one of these small typed events, so that what is
//! logged (and what is never logged, such as emails) is decided in one place; every text they carry
//! passes through [`crate::redact`].

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};

use crate::redact::text as redacted;
use crate::{LookupKey, RunSummary};

/// Whether logs may show emails and IP addresses in full (`--log-pii`); off by default.
static LOG_PII: AtomicBool = AtomicBool::new(false);

/// Lets logs show personal data in full, for debugging a single user.
pub fn log_pii(enabled: bool) {
    LOG_PII.store(enabled, Ordering::Relaxed);
}

/// Whether `--log-pii` is on.
pub(crate) fn pii_shown() -> bool {
    LOG_PII.load(Ordering::Relaxed)
}

/// A lookup key as logs show it: `a***@example.com` and `203.0.113.x` unless `--log-pii`.
#[derive(Debug)]
pub struct Masked<'a>(pub &'a LookupKey);

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if pii_shown() {
            return self.0.fmt(f);
        }
        match self.0 {
            LookupKey::Email(email) => {
                let (local, domain) = email.split_once('@').unwrap_or((email, ""));
                let first = local.chars().next().map(String::from).unwrap_or_default();
                write!(f, "{first}***@{domain}")
            }
            // A company's domain is no one's personal data.
            LookupKey::Domain(domain) => f.write_str(domain),
            LookupKey::Ip(IpAddr::V4(ip)) => {
                let [a, b, c, _] = ip.octets();
                write!(f, "{a}.{b}.{c}.x")
            }
            LookupKey::Ip(IpAddr::V6(ip)) => {
                let segments = ip.segments();
                write!(f, "{:x}:{:x}:{:x}::x", segments[0], segments[1], segments[2])
            }
        }
    }
}

/// Something worth telling the operator about.
pub trait InternalEvent {
    fn emit(self);
}

#[derive(Debug)]
pub struct RunStarted<'a> {
    pub connection: &'a str,
    pub seen_since: DateTime<Utc>,
    pub users: &'a str,
}

impl InternalEvent for RunStarted<'_> {
    fn emit(self) {
        tracing::info!(connection = self.connection, seen_since = %self.seen_since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), users = self.users, "sync started");
    }
}

#[derive(Debug)]
pub struct RowSkipped<'a> {
    pub connection: &'a str,
    pub reason: &'a str,
}

impl InternalEvent for RowSkipped<'_> {
    fn emit(self) {
        tracing::warn!(connection = self.connection, "skipped a roster row: {}", redacted(self.reason));
    }
}

#[derive(Debug)]
pub struct LookupFailed<'a> {
    pub connection: &'a str,
    pub key: &'a LookupKey,
    pub users: usize,
    pub error: &'a str,
}

impl InternalEvent for LookupFailed<'_> {
    fn emit(self) {
        tracing::warn!(
            connection = self.connection,
            key = %Masked(self.key),
            users = self.users,
            "lookup failed, due again next run: {}",
            redacted(self.error)
        );
    }
}

#[derive(Debug)]
pub struct ValuesCut<'a> {
    pub connection: &'a str,
    pub properties: &'a [String],
}

impl InternalEvent for ValuesCut<'_> {
    fn emit(self) {
        tracing::warn!(
            connection = self.connection,
            "cut to fit the sink's limit: {}",
            self.properties.join(", ")
        );
    }
}

#[derive(Debug)]
pub struct BatchWritten<'a> {
    pub connection: &'a str,
    pub users: usize,
}

impl InternalEvent for BatchWritten<'_> {
    fn emit(self) {
        tracing::debug!(connection = self.connection, users = self.users, "batch acknowledged");
    }
}

#[derive(Debug)]
pub struct BatchFailed<'a> {
    pub connection: &'a str,
    pub users: usize,
    pub error: &'a str,
}

impl InternalEvent for BatchFailed<'_> {
    fn emit(self) {
        tracing::warn!(
            connection = self.connection,
            users = self.users,
            "write failed, users due again next run: {}",
            redacted(self.error)
        );
    }
}

#[derive(Debug)]
pub struct UsersRefused<'a> {
    pub connection: &'a str,
    pub users: u64,
    pub error: &'a str,
}

impl InternalEvent for UsersRefused<'_> {
    fn emit(self) {
        tracing::warn!(
            connection = self.connection,
            users = self.users,
            "the sink refused users, whose checks stay pending (no new lookup): {}",
            self.error
        );
    }
}

#[derive(Debug)]
pub struct SeveralEmails<'a> {
    pub connection: &'a str,
    pub identities: u64,
}

impl InternalEvent for SeveralEmails<'_> {
    fn emit(self) {
        tracing::warn!(
            connection = self.connection,
            identities = self.identities,
            "{} identities have several emails in the roster: each is enriched from its most recently seen row",
            self.identities
        );
    }
}

#[derive(Debug)]
pub struct RunStopped<'a> {
    pub connection: &'a str,
    pub error: &'a str,
}

impl InternalEvent for RunStopped<'_> {
    fn emit(self) {
        tracing::error!(connection = self.connection, "sync stopped: {}", redacted(self.error));
    }
}

#[derive(Debug)]
pub struct RunFinished<'a> {
    pub connection: &'a str,
    pub summary: &'a RunSummary,
}

impl InternalEvent for RunFinished<'_> {
    fn emit(self) {
        let s = self.summary;
        tracing::info!(
            connection = self.connection,
            read = s.read,
            due = s.due,
            lookups = s.lookups,
            lookups_saved = s.lookups_saved,
            found = s.found,
            not_found = s.not_found,
            pending = s.pending,
            invalid = s.invalid,
            failed = s.failed,
            written = s.written,
            cleared = s.cleared,
            "sync finished"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_data_is_masked_unless_asked_for() {
        let email = LookupKey::Email("alex@clearbit.com".into());
        let ip = LookupKey::Ip("203.0.113.7".parse().unwrap());
        assert_eq!(Masked(&email).to_string(), "a***@clearbit.com");
        assert_eq!(Masked(&ip).to_string(), "203.0.113.x");
        log_pii(true);
        assert_eq!(Masked(&email).to_string(), "alex@clearbit.com");
        log_pii(false);
    }
}
