//! Loading `enrich.yaml`: YAML syntax, `${VAR}` substitution, then every section typed and validated,
//! collecting every problem in the file before reporting, each with its connection and field.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use enrich_core::{FieldError, Schedule};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml::Value;

use crate::registry::{SinkConfig, SourceConfig, UsersConfig};

/// One problem in a config file: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// `3:7` for syntax errors, `connections.NAME.source.api_key` for everything else.
    pub location: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(location) if location.starts_with(|c: char| c.is_ascii_digit()) => {
                write!(f, "{}:{location}: {}", self.file.display(), self.message)
            }
            Some(location) => write!(f, "{}: {location}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Every problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A config file that loaded without a single problem.
#[derive(Debug)]
pub struct Config {
    pub path: PathBuf,
    /// Resolved against the config file's folder.
    pub state_dir: PathBuf,
    pub connections: Vec<ConnectionConfig>,
    /// Fields holding a secret written literally in the file rather than as `${VAR}`.
    pub literal_secrets: Vec<String>,
}

/// One connection: where users come from, where they are looked up, where properties go.
#[derive(Debug)]
pub struct ConnectionConfig {
    pub name: String,
    pub source: SourceConfig,
    pub sink: SinkConfig,
    pub users: UsersConfig,
    pub schedule: Schedule,
}

impl Config {
    pub fn connection(&self, name: &str) -> Result<&ConnectionConfig, String> {
        self.connections.iter().find(|connection| connection.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.connections.iter().map(|c| c.name.as_str()).collect();
            format!(
                "no connection named `{name}` in {}; it defines: {}",
                self.path.display(),
                known.join(", ")
            )
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    state_dir: Option<PathBuf>,
    connections: serde_yaml::Mapping,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnection {
    source: Value,
    sink: Value,
    users: Value,
    #[serde(default)]
    schedule: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ScheduleConfig {
    #[serde(with = "humantime_serde")]
    every: Duration,
    #[serde(with = "humantime_serde")]
    backfill: Duration,
    #[serde(with = "humantime_serde")]
    refresh: Duration,
    max_lookups_per_run: Option<u64>,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        let Schedule { every, backfill, refresh, max_lookups_per_run } = Schedule::default();
        Self { every, backfill, refresh, max_lookups_per_run }
    }
}

impl ScheduleConfig {
    fn validate(&self) -> Vec<FieldError> {
        let mut problems: Vec<FieldError> =
            [("every", self.every), ("refresh", self.refresh), ("backfill", self.backfill)]
                .into_iter()
                .filter(|(_, duration)| duration.is_zero())
                .map(|(field, _)| FieldError::new(field, "must be longer than zero (e.g. 24h, 7d)"))
                .collect();
        if self.max_lookups_per_run == Some(0) {
            problems.push(FieldError::new(
                "max_lookups_per_run",
                "must be at least 1; leave it out for no limit",
            ));
        }
        problems
    }

    fn schedule(&self) -> Schedule {
        Schedule {
            every: self.every,
            backfill: self.backfill,
            refresh: self.refresh,
            max_lookups_per_run: self.max_lookups_per_run,
        }
    }
}

/// Reads and checks a config file; `Err` holds every problem found.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        let hint = if error.kind() == std::io::ErrorKind::NotFound {
            " (pass another file with -c/--config or ENRICH_CONFIG)"
        } else {
            ""
        };
        one_error(path, None, format!("cannot read the config file: {error}{hint}"))
    })?;
    let config = parse(path, &text, &|name| std::env::var(name).ok())?;
    warn_if_secrets_are_exposed(&config);
    Ok(config)
}

/// A file that others can read must not hold a key: say so, without refusing to run.
fn warn_if_secrets_are_exposed(config: &Config) {
    use std::os::unix::fs::PermissionsExt;

    let Ok(metadata) = std::fs::metadata(&config.path) else { return };
    if metadata.permissions().mode() & 0o077 != 0 && !config.literal_secrets.is_empty() {
        tracing::warn!(
            "{} is readable by other users and holds a secret written out at {}: \
             use ${{VAR}} references (e.g. api_key: ${{CLEARBIT_API_KEY}}) or `chmod 600` the file",
            config.path.display(),
            config.literal_secrets.join(", ")
        );
    }
}

/// Fields that hold a secret: API keys, and URLs with a password in them.
fn literal_secrets(value: &Value, at: &str, found: &mut Vec<String>) {
    match value {
        Value::Mapping(mapping) => {
            for (key, child) in mapping {
                let Some(key) = key.as_str() else { continue };
                let child_at = if at.is_empty() { key.to_owned() } else { format!("{at}.{key}") };
                let secret = match (key, child.as_str()) {
                    ("api_key", Some(text)) => !text.contains("${"),
                    ("url", Some(text)) => {
                        !text.contains("${")
                            && text.split_once("://").is_some_and(|(_, rest)| {
                                rest.split('@').next().is_some_and(|credentials| {
                                    rest.contains('@') && credentials.contains(':')
                                })
                            })
                    }
                    _ => false,
                };
                if secret {
                    found.push(child_at);
                } else {
                    literal_secrets(child, &child_at, found);
                }
            }
        }
        Value::Tagged(tagged) => literal_secrets(&tagged.value, at, found),
        _ => {}
    }
}

/// Parses config text; `env` looks up `${VAR}` references.
pub fn parse(path: &Path, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let mut error = |location: Option<String>, message: String| {
        errors.push(ConfigError { file: path.to_owned(), location, message });
    };
    let mut document: Value = serde_yaml::from_str(text).map_err(|yaml| {
        let location = yaml.location().map(|at| format!("{}:{}", at.line(), at.column()));
        let message = yaml.to_string();
        // serde_yaml appends " at line L column C"; the location already says it.
        let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
        one_error(path, location, format!("invalid YAML: {message}"))
    })?;
    let mut secrets_written_out = Vec::new();
    literal_secrets(&document, "", &mut secrets_written_out);
    for problem in substitute_env(&mut document, "", env) {
        error(Some(problem.field), problem.message);
    }
    let raw: RawConfig = match typed(document) {
        Ok(raw) => raw,
        Err(problem) => {
            error(Some(problem.field).filter(|field| !field.is_empty()), problem.message);
            return Err(ConfigErrors(errors));
        }
    };
    let folder = path.parent().map(Path::to_owned).unwrap_or_default();
    let state_dir = folder.join(raw.state_dir.unwrap_or_else(|| PathBuf::from(".enrich")));
    if raw.connections.is_empty() {
        error(Some("connections".into()), "no connection is defined".into());
    }
    let mut connections = Vec::new();
    for (name, value) in raw.connections {
        let Some(name) = name.as_str().map(str::to_owned) else {
            error(Some("connections".into()), format!("connection names must be text, found {name:?}"));
            continue;
        };
        let at = format!("connections.{name}");
        if let Err(problem) = check_connection_name(&name) {
            error(Some(at.clone()), problem);
        }
        let mut problems = Vec::new();
        if let Some(connection) = connection(&name, value, &folder, &mut problems) {
            connections.push(connection);
        }
        for problem in problems {
            let location =
                if problem.field.is_empty() { at.clone() } else { format!("{at}.{}", problem.field) };
            error(Some(location), problem.message);
        }
    }
    if errors.is_empty() {
        Ok(Config { path: path.to_owned(), state_dir, connections, literal_secrets: secrets_written_out })
    } else {
        Err(ConfigErrors(errors))
    }
}

fn one_error(path: &Path, location: Option<String>, message: String) -> ConfigErrors {
    ConfigErrors(vec![ConfigError { file: path.to_owned(), location, message }])
}

fn check_connection_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 100
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(format!("connection names use letters, digits, `-`, `_` and `.` (at most 100), got {name:?}"))
    }
}

/// Types one connection, pushing every problem of every section into `problems`.
fn connection(
    name: &str,
    value: Value,
    folder: &Path,
    problems: &mut Vec<FieldError>,
) -> Option<ConnectionConfig> {
    let raw: RawConnection = typed(value).map_err(|problem| problems.push(problem)).ok()?;
    let source = section::<SourceConfig>("source", raw.source, problems, SourceConfig::validate);
    let sink = section::<SinkConfig>("sink", raw.sink, problems, SinkConfig::validate);
    let users = section::<UsersConfig>("users", raw.users, problems, |users| users.validate(folder));
    let schedule = match raw.schedule {
        None => Some(ScheduleConfig::default()),
        Some(value) => section::<ScheduleConfig>("schedule", value, problems, ScheduleConfig::validate),
    };
    Some(ConnectionConfig {
        name: name.to_owned(),
        source: source?,
        sink: sink?,
        users: users?,
        schedule: schedule?.schedule(),
    })
}

/// Types one section and validates it; problems get the section's name as a prefix.
fn section<T: DeserializeOwned + Typed>(
    name: &str,
    value: Value,
    problems: &mut Vec<FieldError>,
    validate: impl Fn(&T) -> Vec<FieldError>,
) -> Option<T> {
    let prefixed = |problem: FieldError| {
        let message = explain(name, T::TYPES, &problem);
        let field =
            if problem.field.is_empty() { name.to_owned() } else { format!("{name}.{}", problem.field) };
        FieldError { field, message }
    };
    match typed::<T>(value) {
        Ok(config) => {
            let found = validate(&config);
            let valid = found.is_empty();
            problems.extend(found.into_iter().map(prefixed));
            valid.then_some(config)
        }
        Err(problem) => {
            problems.push(prefixed(problem));
            None
        }
    }
}

/// A section whose variants are chosen by `type:`; lists the types it knows for error messages.
pub trait Typed {
    const TYPES: &'static [&'static str];
}

impl Typed for ScheduleConfig {
    const TYPES: &'static [&'static str] = &[];
}

/// serde's message, reworded where it speaks of Rust rather than of the config file.
fn explain(section: &str, types: &[&str], problem: &FieldError) -> String {
    let known = || types.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ");
    let message = &problem.message;
    if problem.field == "type" && message.starts_with("unknown variant") {
        let given = message.split('`').nth(1).unwrap_or_default();
        format!("unknown {section} type `{given}`; the known {section} types are {}", known())
    } else if problem.field.is_empty() && message == "missing field `type`" && !types.is_empty() {
        format!("missing `type`; the known {section} types are {}", known())
    } else if message.ends_with("expected a duration") {
        format!("{message} such as 30s, 15m, 24h or 7d")
    } else {
        message.clone()
    }
}

/// Deserializes a YAML value, naming the field a type error is in.
fn typed<T: DeserializeOwned>(value: Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let field = error.path().to_string();
        let field = if field == "." { String::new() } else { field };
        FieldError::new(field, error.into_inner().to_string())
    })
}

/// Replaces `${VAR}` in every string with the environment's value (`$${` writes a literal `${`).
/// Returns a problem for every unset or malformed reference, named by its field.
fn substitute_env(value: &mut Value, at: &str, env: &dyn Fn(&str) -> Option<String>) -> Vec<FieldError> {
    let mut problems = Vec::new();
    match value {
        Value::String(text) if text.contains('$') => match expand(text, env) {
            Ok(expanded) => *text = expanded,
            Err(message) => problems.push(FieldError::new(at, message)),
        },
        Value::Mapping(mapping) => {
            for (key, child) in mapping.iter_mut() {
                let key = key.as_str().map_or_else(|| format!("{key:?}"), str::to_owned);
                let child_at = if at.is_empty() { key } else { format!("{at}.{key}") };
                problems.extend(substitute_env(child, &child_at, env));
            }
        }
        Value::Sequence(items) => {
            for (index, child) in items.iter_mut().enumerate() {
                problems.extend(substitute_env(child, &format!("{at}[{index}]"), env));
            }
        }
        Value::Tagged(tagged) => problems.extend(substitute_env(&mut tagged.value, at, env)),
        _ => {}
    }
    problems
}

fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        if let Some(literal) = after.strip_prefix("${") {
            out.push_str("${");
            rest = literal;
        } else if let Some(reference) = after.strip_prefix('{') {
            let end =
                reference.find('}').ok_or_else(|| format!("`${{` without a closing `}}` in {text:?}"))?;
            let name = &reference[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`${{{name}}}` is not a valid environment variable reference"));
            }
            let value = env(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
            out.push_str(&value);
            rest = &reference[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests;
