//! The Heap connector of enrich: a [`Sink`](enrich_core::Sink) writing user properties through Heap's
//! bulk Add User Properties API.
//!
//! It enforces Heap's own rules (at most 1000 users a request, identities of at most 255 characters, no
//! property named `id`) so that a bad row or value is reported here rather than refused by Heap. Configs
//! are plain serde types: this crate knows nothing of the CLI, of how configs are written, or of the
//! emulator it is tested against in end-to-end tests.

mod settings;
mod sink;

pub use sink::{HeapSink, HeapSinkConfig, Region};
