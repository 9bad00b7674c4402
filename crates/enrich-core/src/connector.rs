//! What a connector's config section offers the CLI: checks without network, the component it builds,
//! how listings describe it and which of its values are secrets. Every connector config implements one
//! of these traits, so that registering a connector is one line in the CLI's registry and no command
//! holds a provider's name or rules.

use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use crate::{
    ConnectorError, FieldError, LookupKey, PropertyInfo, Record, SharedBudget, Sink, Source, UserDirectory,
    ValueRules,
};

/// A configured value the redaction point must hide wherever it shows up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret<'a> {
    /// A key or password, hidden as it is.
    Text(&'a str),
    /// A URL whose credentials (user, password) are hidden.
    Url(&'a str),
}

/// Keys a cost preview counts apart, with what they are: `("at free-mail domains", is_free_mail)`.
pub type FlaggedKeys = (&'static str, fn(&LookupKey) -> bool);

/// How a source's lookups are billed, for cost previews (`enrich check`, `--dry-run`).
#[derive(Debug, Clone, Copy)]
pub struct Billing {
    /// What one billed lookup is, in the provider's terms.
    pub rule: &'static str,
    /// Keys the provider answers poorly, or a setting of the source skips.
    pub flagged: Option<FlaggedKeys>,
}

/// What `enrich init` asks about a type of source beyond its key, and what each answer writes, so that
/// the command holds no provider's name or options.
#[derive(Debug, Clone, Copy)]
pub struct Starter {
    /// The `type:` the section is written with: `clearbit`.
    pub kind: &'static str,
    /// The environment variable the key usually lives in: `CLEARBIT_API_KEY`.
    pub key_variable: &'static str,
    /// The fields `enrich init --source-url` writes its address to: every API the section may call.
    pub url_fields: &'static [&'static str],
    pub choices: &'static [Choice],
}

/// One question of a [`Starter`]: its answers, the first being the default, each with the lines it adds
/// to the source section (YAML indented as inside the section, each line ending in a newline). An
/// answer is taken whole or by its first letters, when they are no other answer's (`y`, `comp`).
#[derive(Debug, Clone, Copy)]
pub struct Choice {
    pub question: &'static str,
    pub answers: &'static [(&'static str, &'static str)],
    /// Not asked after an earlier choice was answered with one of these: its answer would not matter.
    pub not_after: &'static [&'static str],
}

/// A source's config section (`source: { type: … }`).
pub trait SourceSettings: Debug + Send + Sync {
    /// What `enrich init` asks to write a section of this type, or `None` when it does not offer it.
    fn starter() -> Option<Starter>
    where
        Self: Sized;
    /// Every problem found without network, by field.
    fn validate(&self) -> Vec<FieldError>;
    /// The source, booking its requests in `budget` too when there is one (workers sharing a key).
    fn build(&self, budget: Option<Arc<dyn SharedBudget>>) -> Result<Arc<dyn Source>, ConnectorError>;
    /// The source as a listing names it: `clearbit (reveal fallback)`.
    fn describe(&self) -> String;
    /// Every secret of the section.
    fn secrets(&self) -> Vec<Secret<'_>>;
    /// The lookups a minute the configured pace allows (keys, not requests), for time estimates.
    fn lookups_per_minute(&self) -> u64;
    /// How the provider bills the lookups.
    fn billing(&self) -> Billing;
    /// Every property the section, as configured, can write (a valid section's), for the sink's
    /// [`ValueRules`].
    fn properties(&self) -> Vec<PropertyInfo>;
    /// One answer of the provider, as a file holds it, mapped as this (valid) section's lookups map
    /// theirs: its lookup mode, its selection and names; whole values, before any sink's rules. For
    /// `enrich map`: the problem says what answer was expected instead.
    fn map_answer(&self, answer: &serde_json::Value) -> Result<Record, String>;
}

/// A sink's config section (`sink: { type: … }`).
pub trait SinkSettings: Debug + Send + Sync {
    fn validate(&self) -> Vec<FieldError>;
    fn build(&self) -> Result<Arc<dyn Sink>, ConnectorError>;
    /// The destination as a listing names it: `heap app 12345`.
    fn describe(&self) -> String;
    fn secrets(&self) -> Vec<Secret<'_>>;
    /// How to delete forgotten users from the destination, which enrich does not do, for `enrich
    /// forget`; `None` when there is nothing to say.
    fn deleting_users(&self) -> Option<&'static str> {
        None
    }
    /// What the destination accepts of property names: checked against every property the source
    /// can write, without network, before any run.
    fn value_rules(&self) -> ValueRules {
        ValueRules::default()
    }
}

/// A user directory's config section (`users: { type: … }`); paths in it are relative to `folder`,
/// the config file's.
pub trait UsersSettings: Debug + Send + Sync {
    fn validate(&self, folder: &Path) -> Vec<FieldError>;
    /// Problems of the roster itself (a CSV header lacking a configured column), for `enrich
    /// validate`: other commands leave the roster to the run, which reads it again.
    fn validate_roster(&self, _folder: &Path) -> Vec<FieldError> {
        Vec::new()
    }
    fn build(&self, folder: &Path) -> Result<Arc<dyn UserDirectory>, ConnectorError>;
    /// The roster as a listing names it: `users from users.csv`.
    fn describe(&self) -> String;
    fn secrets(&self) -> Vec<Secret<'_>>;
}
