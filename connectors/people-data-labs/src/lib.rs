//! The People Data Labs source of enrich: looks users up by email with PDL's bulk person enrichment
//! (up to 100 people a request), and maps each person found to human-readable properties named by
//! its catalogue, with the same names as the Clearbit catalogue where the meaning is the same.
//!
//! It speaks PDL's v5 API (the `X-Api-Key` header, statuses of the call and of each person, the
//! `x-ratelimit-*` and `x-totallimit-remaining` headers, free plans' `true`/`false` placeholders) and
//! implements [`enrich_core::Source`] with [`enrich_core::Source::lookup_batch`]. It must not depend on
//! the CLI, on YAML or on the emulator.

mod answer;
mod catalogue;
mod config;
mod mapping;
mod settings;
mod source;

pub use catalogue::catalogue;
pub use config::{LookupMode, PeopleDataLabsConfig};
pub use mapping::{map_company, map_person};
pub use source::PeopleDataLabsSource;
