//! The Heap connectors of enrich: a [`Sink`](enrich_core::Sink) writing user properties through Heap's
//! bulk Add User Properties API, and a [`UserDirectory`](enrich_core::UserDirectory) reading the roster
//! of users from a CSV export.
//!
//! Both enforce Heap's own rules (at most 1000 users a request, identities of at most 255 characters, no
//! property named `id`) so that a bad row or value is reported here rather than refused by Heap. Configs
//! are plain serde types: this crate knows nothing of the CLI, of how configs are written, or of the
//! emulator it is tested against in end-to-end tests.

mod csv_users;
mod sink;

pub use csv_users::{CsvDirectory, CsvUsersConfig};
pub use sink::{HeapSink, HeapSinkConfig, Region};

/// The start of `text`, at most `max_chars` characters, marked with `…` when cut: messages quote
/// other parties' text without letting it run on.
fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}
