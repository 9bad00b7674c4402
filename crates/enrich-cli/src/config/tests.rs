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
    assert!(matches!(&config.state, StateConfig::Sled { path } if *path == folder.path().join("state")));
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
    assert!(matches!(&config.state, StateConfig::Sled { path } if *path == folder.path().join(".enrich")));
    let spelled_out = GOOD.replace("state_dir: state\n", "state: { type: sled, path: kept }\n");
    let config = parse_in(folder.path(), &spelled_out).unwrap();
    assert!(matches!(&config.state, StateConfig::Sled { path } if *path == folder.path().join("kept")));
}

#[test]
fn state_on_postgres_takes_a_url_from_the_environment() {
    use secrecy::ExposeSecret;

    let folder = folder();
    let text = GOOD.replace("state_dir: state\n", "state:\n  type: postgres\n  url: ${STATE_URL}\n");
    let env = |name: &str| match name {
        "STATE_URL" => Some("postgres://enrich:pw@db.internal/enrich".to_owned()),
        _ => env(name),
    };
    let config = parse(&folder.path().join("enrich.yaml"), &text, &env).unwrap();
    assert!(
        matches!(&config.state, StateConfig::Postgres { url } if url.expose_secret().ends_with("/enrich")),
        "{:?}",
        config.state
    );
    let bad = problems(
        &GOOD.replace("state_dir: state\n", "state: { type: postgres, url: \"mysql://u:hunter2@h/db\" }\n"),
    );
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].contains("state.url: must be a postgres://") && !bad[0].contains("hunter2"), "{bad:?}");
    let both = problems(&GOOD.replace("state_dir: state\n", "state_dir: a\nstate: { type: sled }\n"));
    assert!(both[0].contains("state_dir: set `state:` or `state_dir:`, not both"), "{both:?}");
    let unknown = problems(&GOOD.replace("state_dir: state\n", "state: { type: redis }\n"));
    assert!(unknown[0].contains("state"), "{unknown:?}");
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
        "connections.clearbit-heap.users.colour: unknown field; the fields here are `path`",
        "connections.clearbit-heap.schedule.every: expected a duration such as 30s, 15m, 24h or 7d, got \"often\"",
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
    // Every registered source type is listed, whichever connectors the registry holds.
    let sources = variants::<SourceConfig>();
    assert!(sources.starts_with(&["clearbit", "clearbit_reveal"]), "{sources:?}");
    let sources = listed(sources);
    assert_eq!(
        found,
        [
            format!(
                "enrich.yaml: connections.clearbit-heap.source.type: unknown source type `hubspot`; \
                 the known source types are {sources}"
            ),
            "enrich.yaml: connections.clearbit-heap.sink.type: unknown sink type `amplitude`; \
             the known sink types are `heap`, `postgres_table`"
                .to_owned(),
        ]
    );
    let found = problems(&GOOD.replace("      type: heap\n", ""));
    assert_eq!(
        found,
        ["enrich.yaml: connections.clearbit-heap.sink: missing `type`; the known sink types are `heap`, \
             `postgres_table`"]
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
    assert!(problems(&format!("{GOOD}colour: blue\n"))[0].contains("enrich.yaml: colour: unknown field"));
    let found = problems(&GOOD.replace("    schedule:", "    shedule:\n      every: 1h\n    schedule:"));
    assert!(found[0].contains("connections.clearbit-heap.shedule: unknown field"), "{found:?}");
    let found = problems(&GOOD.replace("      api_key:", "      bse_url: x\n      api_key:"));
    assert!(found[0].contains("connections.clearbit-heap.source.bse_url: unknown field"), "{found:?}");
}

#[test]
fn missing_sections_and_bad_names() {
    let found = problems("connections:\n  \"bad name\":\n    source: {type: clearbit, api_key: sk_x}\n");
    assert!(found.iter().any(|p| p.contains("connection names start with")), "{found:#?}");
    for section in ["sink", "users"] {
        let missing = format!("connections.bad name.{section}: missing; every connection has");
        assert!(found.iter().any(|p| p.contains(&missing)), "{found:#?}");
    }
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
    let urls: Value = serde_norway::from_str(
        "a: {url: 'postgres://enrich:hunter2@db:5432/x'}\nb: {url: 'postgres://enrich@db/x'}\nc: {url: '${URL}'}",
    )
    .unwrap();
    literal_secrets(&urls, "", &mut found);
    assert_eq!(found, ["a.url"], "only a URL with a password is a secret");
}

#[test]
fn type_errors_name_the_field_and_say_what_was_expected_in_words() {
    let text = GOOD.replace(
        "api_key: ${CLEARBIT_API_KEY}",
        "api_key: ${CLEARBIT_API_KEY}\n      max_concurrency: five\n      timeout: [1]\n      skip_free_email_domains: maybe",
    );
    let text =
        text.replace("app_id: \"1234567890\"", "app_id: \"1234567890\"\n      requests_per_second: -3");
    let text = text.replace("backfill: 30d", "backfill: 30d\n      max_lookups_per_run: 1.5");
    let found = problems(&text);
    assert_eq!(
        found,
        [
            "enrich.yaml: connections.clearbit-heap.source.max_concurrency: expected a whole number, got \"five\"",
            "enrich.yaml: connections.clearbit-heap.source.timeout: expected a duration such as 30s, 15m, 24h or 7d, got a list",
            "enrich.yaml: connections.clearbit-heap.source.skip_free_email_domains: expected true or false, got \"maybe\"",
            "enrich.yaml: connections.clearbit-heap.sink.requests_per_second: expected a whole number, got -3",
            "enrich.yaml: connections.clearbit-heap.schedule.max_lookups_per_run: expected a whole number, got 1.5",
        ]
    );
}

#[test]
fn a_section_of_the_wrong_kind_is_named_without_a_trailing_dot() {
    assert_eq!(
        problems("connections:\n  main: 5\n"),
        ["enrich.yaml: connections.main: expected a mapping of `field: value` lines, got 5"]
    );
    let found = problems(
        &GOOD.replace("    schedule:\n      every: 12h\n      backfill: 30d\n", "    schedule: weekly\n"),
    );
    assert_eq!(
        found,
        [
            "enrich.yaml: connections.clearbit-heap.schedule: expected a mapping of `field: value` lines, got \"weekly\""
        ]
    );
}

#[test]
fn a_byte_order_mark_is_not_part_of_the_file() {
    let folder = folder();
    assert!(parse_in(folder.path(), &format!("\u{feff}{GOOD}")).is_ok());
}

#[test]
fn durations_beyond_ten_years_are_refused_wherever_they_are() {
    let text = GOOD
        .replace("every: 12h", "every: 1000000y\n      refresh: 11y")
        .replace("backfill: 30d", "backfill: 3653d")
        .replace("app_id: \"1234567890\"", "app_id: \"1234567890\"\n      timeout: 100000000h");
    let found = problems(&text);
    let at_most = "expected a duration of at most 10 years, got";
    for (field, given) in [
        ("sink.timeout", "100000000h"),
        ("schedule.every", "1000000y"),
        ("schedule.refresh", "11y"),
        ("schedule.backfill", "3653d"),
    ] {
        let expected = format!("enrich.yaml: connections.clearbit-heap.{field}: {at_most} \"{given}\"");
        assert!(found.contains(&expected), "{expected} missing from {found:#?}");
    }
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(parse_in(folder().path(), &GOOD.replace("every: 12h", "every: 10y")).is_ok());
}

#[test]
fn connection_names_are_one_plain_folder_name() {
    for name in [".", "..", ".hidden", "-flag", "a/b", "a b", ""] {
        let found = problems(&GOOD.replace("  clearbit-heap:", &format!("  {name:?}:")));
        assert!(
            found.iter().any(|p| p.contains("connection names start with a letter or digit")),
            "{name}: {found:#?}"
        );
    }
    for name in ["a", "7", "eu.clearbit-heap_2"] {
        assert!(
            parse_in(folder().path(), &GOOD.replace("  clearbit-heap:", &format!("  {name:?}:"))).is_ok()
        );
    }
}

/// Text that looks like a config file: known keys and odd values, at odd indents.
fn config_like() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    const KEYS: [&str; 14] = [
        "connections",
        "state_dir",
        "main",
        "source",
        "sink",
        "users",
        "schedule",
        "type",
        "api_key",
        "every",
        "refresh",
        "path",
        "max_concurrency",
        "- x",
    ];
    const VALUES: [&str; 10] =
        ["", "clearbit", "heap", "csv", "${X}", "1000000y", "[1, {a: b}]", "!tag x", "&a x", "*a"];
    let key = prop_oneof![proptest::sample::select(&KEYS[..]).prop_map(str::to_owned), "[a-z_]{1,8}"];
    let value = prop_oneof![
        proptest::sample::select(&VALUES[..]).prop_map(str::to_owned),
        "-?[0-9]{1,25}(\\.[0-9]+)?",
        "[ -~]{0,12}",
    ];
    let line = (0..4usize, key, value)
        .prop_map(|(depth, key, value)| format!("{}{key}: {value}", "  ".repeat(depth)));
    prop_oneof![
        proptest::collection::vec(line, 0..24).prop_map(|lines| lines.join("\n")),
        "\\PC{0,200}",
        proptest::collection::vec(any::<u8>(), 0..200)
            .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

    /// Whatever the text, parsing ends (no panic) and every problem says where it is.
    #[test]
    fn any_text_is_loaded_or_refused_with_located_problems(text in config_like()) {
        let folder = folder();
        if let Err(errors) = parse_in(folder.path(), &text) {
            proptest::prop_assert!(!errors.0.is_empty());
            for error in errors.0 {
                let location = error.location.clone().unwrap_or_default();
                proptest::prop_assert!(!location.is_empty() && !error.message.is_empty(), "{error}");
            }
        }
    }
}

#[test]
fn a_rename_to_a_name_the_sink_refuses_or_owns_is_reported() {
    let renamed = GOOD.replace(
        "api_key: ${CLEARBIT_API_KEY}",
        "api_key: ${CLEARBIT_API_KEY}\n      properties:\n        rename: { company.id: ID, person.email: email }",
    );
    assert_eq!(
        problems(&renamed),
        [
            "enrich.yaml: connections.clearbit-heap.source.properties.rename.company.id: renames to `ID`: Heap \
             refuses the key id in any casing",
            "enrich.yaml: connections.clearbit-heap.source.properties.rename.person.email: renames to `email`: \
             `Email` is one of Heap's built-in user properties, which it would overwrite",
        ]
    );
    // A table has no such rules.
    let table = renamed.replace(
        "type: heap\n      app_id: \"1234567890\"",
        "type: postgres_table\n      url: postgres://enrich@localhost/enrich\n      table: enrich.users",
    );
    parse_in(folder().path(), &table).unwrap_or_else(|errors| panic!("{errors}"));
}

#[test]
fn no_registered_source_names_a_property_as_the_heap_sink_refuses() {
    for kind in variants::<SourceConfig>() {
        let config = GOOD.replace("type: clearbit", &format!("type: {kind}"));
        let config = parse_in(folder().path(), &config).unwrap_or_else(|errors| panic!("{kind}: {errors}"));
        assert!(config.connections[0].source.properties().len() > 10, "{kind} lists its catalogue");
    }
}
