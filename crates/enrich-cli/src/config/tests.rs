//! Every bad-config case reports clearly, all at once, with its connection and field.

use std::path::Path;

use super::*;

const GOOD: &str = r#"
state_dir: state
connections:
  clearbit-heap:
    source:
      type: clearbit
      api_key: ${CLEARBIT_API_KEY}
    sink:
      type: heap
      app_id: "1234567890"
    users:
      type: csv
      path: users.csv
      email_property: email
    schedule:
      every: 12h
      backfill: 30d
"#;

/// A folder holding `users.csv`, with the config file placed in it.
fn folder() -> tempfile::TempDir {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("users.csv"), "identity,last_seen,email\n").unwrap();
    folder
}

fn env(name: &str) -> Option<String> {
    match name {
        "CLEARBIT_API_KEY" => Some("sk_test_0123456789".into()),
        "PUBLISHABLE" => Some("pk_test_0123456789".into()),
        _ => None,
    }
}

fn parse_in(folder: &Path, text: &str) -> Result<Config, ConfigErrors> {
    parse(&folder.join("enrich.yaml"), text, &env)
}

/// The messages, without the folder, for readable assertions.
fn problems(text: &str) -> Vec<String> {
    let folder = folder();
    let errors = parse_in(folder.path(), text).expect_err("the config must be refused");
    errors
        .0
        .iter()
        .map(|error| error.to_string().replace(&format!("{}/", folder.path().display()), ""))
        .collect()
}

#[test]
fn a_good_file_loads_with_defaults_and_resolved_paths() {
    let folder = folder();
    let config = parse_in(folder.path(), GOOD).unwrap();
    assert_eq!(config.state_dir, folder.path().join("state"));
    let connection = config.connection("clearbit-heap").unwrap();
    assert_eq!(connection.schedule.every, Duration::from_secs(12 * 3600));
    assert_eq!(connection.schedule.backfill, Duration::from_secs(30 * 86400));
    assert_eq!(connection.schedule.refresh, Duration::from_secs(86400), "default refresh");
    let unknown = config.connection("nope").unwrap_err();
    assert!(unknown.contains("it defines: clearbit-heap"), "{unknown}");
}

#[test]
fn state_dir_defaults_to_dot_enrich_beside_the_file() {
    let folder = folder();
    let config = parse_in(folder.path(), &GOOD.replace("state_dir: state\n", "")).unwrap();
    assert_eq!(config.state_dir, folder.path().join(".enrich"));
}

#[test]
fn syntax_errors_give_line_and_column() {
    let found = problems("connections:\n  a:\n    source: [unclosed\n");
    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("enrich.yaml:"), "{found:?}");
    let location = found[0].split(':').nth(1).unwrap();
    assert!(location.parse::<u32>().is_ok(), "a line number: {found:?}");
    assert!(found[0].contains("invalid YAML"), "{found:?}");
}

#[test]
fn every_problem_is_reported_at_once_with_connection_and_field() {
    let text = GOOD
        .replace("${CLEARBIT_API_KEY}", "${PUBLISHABLE}")
        .replace("\"1234567890\"", "my-app")
        .replace("path: users.csv", "path: missing.csv")
        .replace("every: 12h", "every: often")
        .replace("type: csv", "type: csv\n      colour: blue");
    let found = problems(&text);
    let expect = [
        "connections.clearbit-heap.source.api_key",
        "connections.clearbit-heap.sink.app_id",
        "connections.clearbit-heap.users: unknown field `colour`",
        "connections.clearbit-heap.schedule.every: invalid value: string \"often\", expected a duration such as 30s",
    ];
    for expected in expect {
        assert!(found.iter().any(|problem| problem.contains(expected)), "{expected} missing from {found:#?}");
    }
    let key = found.iter().find(|p| p.contains("api_key")).unwrap();
    assert!(key.contains("secret key"), "{key}");
    assert!(!key.contains("pk_test_0123456789"), "the key itself never appears: {key}");
}

#[test]
fn a_missing_users_file_is_named() {
    let found = problems(&GOOD.replace("path: users.csv", "path: missing.csv"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("connections.clearbit-heap.users.path") && found[0].contains("missing.csv"),
        "{found:?}"
    );
}

#[test]
fn unknown_types_list_the_known_ones() {
    let found =
        problems(&GOOD.replace("type: clearbit", "type: hubspot").replace("type: heap", "type: amplitude"));
    assert_eq!(
        found,
        [
            "enrich.yaml: connections.clearbit-heap.source.type: unknown source type `hubspot`; \
             the known source types are `clearbit`",
            "enrich.yaml: connections.clearbit-heap.sink.type: unknown sink type `amplitude`; \
             the known sink types are `heap`",
        ]
    );
    let found = problems(&GOOD.replace("      type: heap\n", ""));
    assert_eq!(
        found,
        ["enrich.yaml: connections.clearbit-heap.sink: missing `type`; the known sink types are `heap`"]
    );
}

#[test]
fn unset_variables_are_named() {
    let found = problems(&GOOD.replace("${CLEARBIT_API_KEY}", "${NOT_SET_ANYWHERE}"));
    assert!(
        found.iter().any(|p| p.contains("connections.clearbit-heap.source.api_key")
            && p.contains("environment variable NOT_SET_ANYWHERE is not set")),
        "{found:#?}"
    );
}

#[test]
fn unknown_fields_at_every_level() {
    assert!(problems(&format!("{GOOD}colour: blue\n"))[0].contains("unknown field `colour`"));
    let found = problems(&GOOD.replace("    schedule:", "    shedule:\n      every: 1h\n    schedule:"));
    assert!(
        found[0].contains("connections.clearbit-heap") && found[0].contains("unknown field `shedule`"),
        "{found:?}"
    );
    let found = problems(&GOOD.replace("      api_key:", "      bse_url: x\n      api_key:"));
    assert!(
        found[0].contains("connections.clearbit-heap.source") && found[0].contains("`bse_url`"),
        "{found:?}"
    );
}

#[test]
fn missing_sections_and_bad_names() {
    let found = problems("connections:\n  \"bad name\":\n    source: {type: clearbit, api_key: sk_x}\n");
    assert!(found.iter().any(|p| p.contains("connection names use")), "{found:#?}");
    assert!(found.iter().any(|p| p.contains("missing field `sink`")), "{found:#?}");
    assert!(problems("connections: {}\n")[0].contains("no connection is defined"));
}

#[test]
fn environment_references_expand_inside_strings() {
    let lookup = |name: &str| (name == "HOST").then(|| "127.0.0.1:9".to_owned());
    assert_eq!(expand("http://${HOST}/v2", &lookup).unwrap(), "http://127.0.0.1:9/v2");
    assert_eq!(expand("cost $5 and $${HOST}", &lookup).unwrap(), "cost $5 and ${HOST}");
    assert!(expand("${HOST", &lookup).unwrap_err().contains("without a closing"));
    assert!(expand("${NOPE}", &lookup).unwrap_err().contains("NOPE is not set"));
    assert!(expand("${a-b}", &lookup).unwrap_err().contains("not a valid"));
}

#[test]
fn secrets_written_out_are_found_and_references_are_not() {
    let folder = folder();
    let written_out = GOOD.replace("${CLEARBIT_API_KEY}", "sk_live_written_out");
    let config = parse_in(folder.path(), &written_out).unwrap();
    assert_eq!(config.literal_secrets, ["connections.clearbit-heap.source.api_key"]);
    assert!(parse_in(folder.path(), GOOD).unwrap().literal_secrets.is_empty());

    let mut found = Vec::new();
    let urls: Value = serde_yaml::from_str(
        "a: {url: 'postgres://enrich:hunter2@db:5432/x'}\nb: {url: 'postgres://enrich@db/x'}\nc: {url: '${URL}'}",
    )
    .unwrap();
    literal_secrets(&urls, "", &mut found);
    assert_eq!(found, ["a.url"], "only a URL with a password is a secret");
}
