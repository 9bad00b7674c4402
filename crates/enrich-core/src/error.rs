//! The three kinds of failure a connector can report, so the engine knows what to do next.

/// A connector's failure, classified by what the engine must do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// Worth trying again later (the connector already retried with backoff): the user is recorded
    /// as failed and is due again at the next run.
    #[error("{0}")]
    Transient(String),
    /// Permanent for this one user or batch (the service rejected it): recorded, the run goes on.
    #[error("{0}")]
    Rejected(String),
    /// Nothing more can succeed for this connection (bad key, over quota): the run stops, what was
    /// already fetched is still written, and the connection's status becomes `Error`.
    #[error("{0}")]
    Fatal(String),
}

impl ConnectorError {
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Fatal(_))
    }
}

/// The start of `text`, at most `max_chars` characters, marked with `…` when cut: messages quote
/// other parties' text without letting it run on.
pub fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}
