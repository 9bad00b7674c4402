//! The Clearbit Enrichment source of enrich: looks users up by email in Clearbit's combined
//! (person and company) endpoint and maps every attribute of the answer to a human-readable property,
//! named by its catalogue (or derived from the attribute's path when the catalogue does not know it),
//! for the attributes each connection selects.
//!
//! It speaks Clearbit's HTTP API (status codes, error bodies, concurrency and rate limits with the
//! rate-limit headers, queued lookups, the streaming host, retries with backoff) and implements
//! [`enrich_core::Source`]. It must not depend on the CLI, on YAML or on the emulator (its tests may):
//! the config is any serde format, and the base URL is whatever host answers.

mod answer;
mod catalogue;
mod config;
mod mapping;
mod naming;
mod reveal;
mod selection;
mod settings;
mod source;

pub use catalogue::catalogue;
pub use config::{ClearbitConfig, LookupMode, RevealConfig};
pub use enrich_core::free_email::is_free_email;
pub use enrich_core::selection::{PropertiesConfig, PropertySelection};
pub use mapping::{map_combined, map_company};
pub use reveal::{is_public, map_reveal};
pub use selection::{every_attribute, property_selection};
pub use settings::ClearbitRevealConfig;
pub use source::ClearbitSource;
