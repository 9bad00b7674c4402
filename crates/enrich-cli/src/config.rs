//! Loading `enrich.yaml`: YAML syntax, `${VAR}` substitution, then every section typed and validated,
//! collecting every problem in the file before reporting, each with its connection and field.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use enrich_core::{FieldError, Schedule};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_norway::{Mapping, Value};
use typed::{joined, listed, typed, variants};

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
    /// Where the connections' state is kept.
    pub state: StateConfig,
    pub connections: Vec<ConnectionConfig>,
    /// Fields holding a secret written literally in the file rather than as `${VAR}`.
    pub literal_secrets: Vec<String>,
    /// `api_key` fields read from one environment variable, by path (`connections.main.source.api_key`
    /// → `CLEARBIT_API_KEY`): an error about the key names the variable to set.
    pub key_variables: Vec<(String, String)>,
}

/// Where the state is kept: `state: { type: sled, path: .enrich }` (the default; `state_dir: PATH`
/// says the same) or `state: { type: postgres, url: ${ENRICH_STATE_URL} }`, shared by any number of
/// workers.
#[derive(Debug)]
pub enum StateConfig {
    /// A folder on this machine, resolved against the config file's folder.
    Sled {
        path: PathBuf,
    },
    Postgres {
        url: secrecy::SecretString,
    },
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum RawState {
    Sled { path: Option<PathBuf> },
    Postgres { url: secrecy::SecretString },
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
    /// The name given, or the only connection's when none is given and the file defines one.
    pub fn chosen(&self, name: Option<String>) -> anyhow::Result<&str> {
        if let Some(name) = name {
            return Ok(self.connection(&name).map_err(anyhow::Error::msg)?.name.as_str());
        }
        match self.connections.as_slice() {
            [only] => Ok(only.name.as_str()),
            all => {
                let names: Vec<&str> = all.iter().map(|connection| connection.name.as_str()).collect();
                anyhow::bail!(
                    "{} defines {} connections: name one ({})",
                    self.path.display(),
                    all.len(),
                    names.join(", ")
                )
            }
        }
    }

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
    state: Option<RawState>,
    state_dir: Option<PathBuf>,
    connections: Mapping,
}

/// A connection's sections, typed one by one so that a missing section does not hide the others' problems.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnection {
    source: Option<Value>,
    sink: Option<Value>,
    users: Option<Value>,
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

/// The names of the connections a file defines, read leniently (no variable need be set, no section
/// be valid), for shell completion; none when it cannot be read.
pub fn connection_names(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let Ok(Value::Mapping(file)) = serde_norway::from_str::<Value>(text.trim_start_matches('\u{feff}'))
    else {
        return Vec::new();
    };
    match file.get("connections") {
        Some(Value::Mapping(connections)) => {
            connections.keys().filter_map(Value::as_str).map(str::to_owned).collect()
        }
        _ => Vec::new(),
    }
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

/// `api_key` fields written as one `${VAR}` reference, with the variable.
fn key_variables_of(value: &Value, at: &str, found: &mut Vec<(String, String)>) {
    match value {
        Value::Mapping(mapping) => {
            for (key, child) in mapping {
                let Some(key) = key.as_str() else { continue };
                let child_at = if at.is_empty() { key.to_owned() } else { format!("{at}.{key}") };
                let variable =
                    child.as_str().and_then(|text| text.trim().strip_prefix("${")?.strip_suffix('}'));
                match variable {
                    Some(variable) if key == "api_key" => found.push((child_at, variable.to_owned())),
                    _ => key_variables_of(child, &child_at, found),
                }
            }
        }
        Value::Tagged(tagged) => key_variables_of(&tagged.value, at, found),
        _ => {}
    }
}

impl Config {
    /// A run's error in the user's terms: "set api_key" becomes "set the environment variable
    /// CLEARBIT_API_KEY" when the connection's key comes from it.
    pub fn in_user_terms(&self, connection: &str, error: &str) -> String {
        let field = format!("connections.{connection}.source.api_key");
        match self.key_variables.iter().find(|(path, _)| *path == field) {
            Some((_, variable)) => error.replace(
                "set api_key to",
                &format!(
                    "set the environment variable {variable} (which api_key reads in {}) to",
                    self.path.display()
                ),
            ),
            None => error.to_owned(),
        }
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

/// The longest duration a setting may hold: beyond it date arithmetic leaves the calendar, and no
/// schedule or timeout means it.
const LONGEST: Duration = Duration::from_secs(10 * 31_557_600);

/// Parses config text; `env` looks up `${VAR}` references.
pub fn parse(path: &Path, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let mut error = |location: String, message: String| {
        errors.push(ConfigError { file: path.to_owned(), location: Some(location), message });
    };
    // Editors on Windows save UTF-8 with a byte order mark; it is not part of the YAML.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut document: Value = serde_norway::from_str(text).map_err(|yaml| {
        let at = yaml.location().map(|at| (at.line(), at.column()));
        let message = yaml.to_string();
        // The error's text repeats the location, which the location column already says.
        let message = match at {
            Some((line, column)) => message.replace(&format!(" at line {line} column {column}"), ""),
            None => message,
        };
        let (line, column) = at.unwrap_or((1, 1));
        one_error(path, Some(format!("{line}:{column}")), format!("invalid YAML: {message}"))
    })?;
    let mut secrets_written_out = Vec::new();
    literal_secrets(&document, "", &mut secrets_written_out);
    let mut key_variables = Vec::new();
    key_variables_of(&document, "", &mut key_variables);
    let mut problems = substitute_env(&mut document, "", env);
    too_long_durations(&document, "", &mut problems);
    for problem in problems {
        error(root_or(problem.field), problem.message);
    }
    let raw: RawConfig = match typed(document) {
        Ok(raw) => raw,
        Err(problems) => {
            for problem in problems {
                error(root_or(problem.field), problem.message);
            }
            return Err(ConfigErrors(errors));
        }
    };
    let folder = path.parent().map(Path::to_owned).unwrap_or_default();
    let state = state_config(&folder, raw.state, raw.state_dir).unwrap_or_else(|(field, message)| {
        error(field.to_owned(), message);
        StateConfig::Sled { path: folder.join(".enrich") }
    });
    if raw.connections.is_empty() {
        error("connections".into(), "no connection is defined".into());
    }
    let mut connections = Vec::new();
    for (name, value) in raw.connections {
        let Some(name) = name.as_str().map(str::to_owned) else {
            error("connections".into(), format!("connection names must be text, got {}", brief(&name)));
            continue;
        };
        let at = format!("connections.{name}");
        if let Err(problem) = check_connection_name(&name) {
            error(at.clone(), problem);
        }
        let mut problems = Vec::new();
        if let Some(connection) = connection(&name, value, &folder, &mut problems) {
            connections.push(connection);
        }
        for problem in problems {
            error(joined(&at, &problem.field), problem.message);
        }
    }
    if errors.is_empty() {
        Ok(Config {
            path: path.to_owned(),
            state,
            connections,
            literal_secrets: secrets_written_out,
            key_variables,
        })
    } else {
        Err(ConfigErrors(errors))
    }
}

/// The `state:` section, or `state_dir:` as earlier versions had it; the field and problem if wrong.
fn state_config(
    folder: &Path,
    state: Option<RawState>,
    state_dir: Option<PathBuf>,
) -> Result<StateConfig, (&'static str, String)> {
    match (state, state_dir) {
        (Some(_), Some(_)) => Err((
            "state_dir",
            "set `state:` or `state_dir:`, not both (state_dir is the older spelling)".into(),
        )),
        (Some(RawState::Postgres { url }), None) => match enrich_postgres::url_problem(&url) {
            Some(problem) => Err(("state.url", problem)),
            None => Ok(StateConfig::Postgres { url }),
        },
        (Some(RawState::Sled { path }), None) | (None, path) => {
            Ok(StateConfig::Sled { path: folder.join(path.unwrap_or_else(|| PathBuf::from(".enrich"))) })
        }
    }
}

/// A problem of the whole document is placed at its start.
fn root_or(field: String) -> String {
    if field.is_empty() { "1:1".to_owned() } else { field }
}

fn one_error(path: &Path, location: Option<String>, message: String) -> ConfigErrors {
    ConfigErrors(vec![ConfigError { file: path.to_owned(), location, message }])
}

/// A connection's name is a folder under `state_dir`: one plain path component, never `.` or `..`,
/// and never mistaken for an option on the command line.
fn check_connection_name(name: &str) -> Result<(), String> {
    let valid = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.len() <= 100
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "connection names start with a letter or digit and use letters, digits, `-`, `_` and `.` \
             (at most 100), got {name:?}"
        ))
    }
}

/// Every text that reads as a duration longer than `LONGEST`, wherever it is: the connectors' own
/// timeouts as well as the schedule.
fn too_long_durations(value: &Value, at: &str, problems: &mut Vec<FieldError>) {
    match value {
        Value::String(text)
            if humantime_serde::re::humantime::parse_duration(text)
                .is_ok_and(|duration| duration > LONGEST) =>
        {
            problems
                .push(FieldError::new(at, format!("expected a duration of at most 10 years, got {text:?}")));
        }
        Value::Mapping(mapping) => {
            for (key, child) in mapping {
                too_long_durations(child, &joined(at, &brief(key)), problems);
            }
        }
        Value::Sequence(items) => {
            for (index, child) in items.iter().enumerate() {
                too_long_durations(child, &format!("{at}[{index}]"), problems);
            }
        }
        _ => {}
    }
}

/// A key or value as the file shows it, for messages.
fn brief(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "nothing".to_owned(),
        Value::Bool(value) => value.to_string(),
        Value::Number(number) => number.to_string(),
        Value::Sequence(_) => "a list".to_owned(),
        Value::Mapping(_) => "a mapping".to_owned(),
        Value::Tagged(tagged) => format!("{} {}", tagged.tag, brief(&tagged.value)),
    }
}

/// Types one connection, pushing every problem of every section into `problems`.
fn connection(
    name: &str,
    value: Value,
    folder: &Path,
    problems: &mut Vec<FieldError>,
) -> Option<ConnectionConfig> {
    let raw: RawConnection = typed(value).map_err(|found| problems.extend(found)).ok()?;
    let mut required = |section: &str, value: Option<Value>| {
        if value.is_none() {
            problems
                .push(FieldError::new(section, "missing; every connection has a source, a sink and users"));
        }
        value
    };
    let (source, sink, users) =
        (required("source", raw.source), required("sink", raw.sink), required("users", raw.users));
    let source = source.and_then(|value| {
        tagged_section("source", value, problems, |source: &SourceConfig| source.validate())
    });
    let sink =
        sink.and_then(|value| tagged_section("sink", value, problems, |sink: &SinkConfig| sink.validate()));
    let users = users.and_then(|value| {
        tagged_section("users", value, problems, |users: &UsersConfig| users.validate(folder))
    });
    if let (Some(source), Some(sink)) = (&source, &sink) {
        problems.extend(names_the_sink_refuses(source, sink));
    }
    let schedule = match raw.schedule {
        None => Some(ScheduleConfig::default()),
        Some(value) => section("schedule", value, problems, ScheduleConfig::validate),
    };
    Some(ConnectionConfig {
        name: name.to_owned(),
        source: source?,
        sink: sink?,
        users: users?,
        schedule: schedule?.schedule(),
    })
}

/// The source's property names the sink would refuse or overwrite (`id`, Heap's `Email`): a rename in
/// `properties`, since catalogues are checked against every sink by the tests.
fn names_the_sink_refuses(source: &SourceConfig, sink: &SinkConfig) -> Vec<FieldError> {
    let rules = sink.value_rules();
    let refused = source.properties().into_iter().filter_map(|property| {
        let problem = rules.name_problem(&property.name)?;
        let field = match &property.path {
            Some(path) => format!("source.properties.rename.{path}"),
            None => "source".to_owned(),
        };
        Some(FieldError::new(field, format!("renames to `{}`: {problem}", property.name)))
    });
    refused.collect()
}

/// A section whose `type:` chooses its variant of `T`: `type` is checked against the variants, then
/// the rest is typed as that variant.
fn tagged_section<T: DeserializeOwned>(
    name: &str,
    mut value: Value,
    problems: &mut Vec<FieldError>,
    validate: impl Fn(&T) -> Vec<FieldError>,
) -> Option<T> {
    let known = variants::<T>();
    let known_types = || format!("the known {name} types are {}", listed(known));
    let Value::Mapping(fields) = &mut value else {
        let message =
            format!("expected a mapping of `field: value` lines with a `type`, got {}", brief(&value));
        problems.push(FieldError::new(name, message));
        return None;
    };
    let kind = match fields.shift_remove("type") {
        None => {
            problems.push(FieldError::new(name, format!("missing `type`; {}", known_types())));
            return None;
        }
        Some(Value::String(kind)) if known.contains(&kind.as_str()) => kind,
        Some(other) => {
            let message = format!("unknown {name} type `{}`; {}", brief(&other), known_types());
            problems.push(FieldError::new(joined(name, "type"), message));
            return None;
        }
    };
    let mut variant = Mapping::new();
    variant.insert(Value::String(kind), value);
    section(name, Value::Mapping(variant), problems, validate)
}

/// Types one section and validates it; problems get the section's name as a prefix.
fn section<T: DeserializeOwned>(
    name: &str,
    value: Value,
    problems: &mut Vec<FieldError>,
    validate: impl Fn(&T) -> Vec<FieldError>,
) -> Option<T> {
    let prefixed = |problem: FieldError| FieldError { field: joined(name, &problem.field), ..problem };
    match typed::<T>(value) {
        Ok(config) => {
            let found = validate(&config);
            let valid = found.is_empty();
            problems.extend(found.into_iter().map(prefixed));
            valid.then_some(config)
        }
        Err(found) => {
            problems.extend(found.into_iter().map(prefixed));
            None
        }
    }
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
mod typed;
