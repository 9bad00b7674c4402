//! Every log line the engine produces comes from one of these small typed events, so that what is
//! logged (and what is never logged, such as emails) is decided in one place.

use chrono::{DateTime, Utc};

use crate::RunSummary;

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
        tracing::warn!(connection = self.connection, "skipped a roster row: {}", self.reason);
    }
}

#[derive(Debug)]
pub struct LookupFailed<'a> {
    pub connection: &'a str,
    pub users: usize,
    pub error: &'a str,
}

impl InternalEvent for LookupFailed<'_> {
    fn emit(self) {
        tracing::warn!(
            connection = self.connection,
            users = self.users,
            "lookup failed, due again next run: {}",
            self.error
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
            self.error
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
        tracing::error!(connection = self.connection, "sync stopped: {}", self.error);
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
            found = s.found,
            not_found = s.not_found,
            pending = s.pending,
            invalid = s.invalid,
            failed = s.failed,
            written = s.written,
            "sync finished"
        );
    }
}
