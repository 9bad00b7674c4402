//! The documentation matches the code: every config example in README.md and config/enrich.example.yaml
//! passes `enrich validate`, and docs/properties.md is what `enrich properties` lists.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use enrich_emulator::EmulatorConfig;
use support::{Run, Workspace};

fn repository_file(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// The ```yaml blocks of a Markdown text.
fn yaml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "```yaml" {
            let block: Vec<&str> = lines.by_ref().take_while(|line| line.trim() != "```").collect();
            blocks.push(block.join("\n") + "\n");
        }
    }
    blocks
}

/// `NAME` of every `${NAME}` in the text.
fn variables(text: &str) -> BTreeSet<String> {
    text.split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}'))
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// A value of the right shape for a variable: a secret key, a database URL, or text.
fn dummy_value(variable: &str) -> &'static str {
    if variable.ends_with("_URL") {
        "postgres://enrich:dummy-password@db.example.com:5439/analytics"
    } else if variable.ends_with("_KEY") {
        "sk_dummy_0123456789abcdef0123456789abcdef"
    } else {
        "dummy"
    }
}

/// The README's examples, and the example file users copy (its roster path is beside it).
#[test]
fn every_readme_config_example_passes_validate() {
    let readme = repository_file("README.md");
    let mut examples: Vec<String> =
        yaml_blocks(&readme).into_iter().filter(|block| block.contains("connections:")).collect();
    assert!(!examples.is_empty(), "README.md has no ```yaml block with `connections:`");
    examples.push(repository_file("config/enrich.example.yaml"));
    for example in &examples {
        let folder = tempfile::tempdir().unwrap();
        std::fs::write(folder.path().join("enrich.yaml"), example).unwrap();
        std::fs::write(folder.path().join("users.csv"), "identity,last_seen,email\n").unwrap();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_enrich"));
        command.arg("validate").current_dir(folder.path()).env_remove("ENRICH_CONFIG");
        for variable in variables(example) {
            command.env(&variable, dummy_value(&variable));
        }
        let run = Run::from(command.output().unwrap());
        assert_eq!(run.code, Some(0), "a README example is not valid:\n{example}\n{run}");
    }
    eprintln!("config examples: {} validated (README.md and config/enrich.example.yaml)", examples.len());
}

/// docs/properties.md's table is `enrich properties --format markdown` of a default connection;
/// `cargo xtask docs` rewrites it.
#[tokio::test(flavor = "multi_thread")]
async fn the_property_reference_is_current() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace.write_roster(&[]);
    let run = workspace.enrich(&["properties", "main", "--format", "markdown"]).await;
    run.success();
    let page = repository_file("docs/properties.md");
    let start = page.find(REFERENCE_START).expect("docs/properties.md has the table's start marker")
        + REFERENCE_START.len();
    let end = page.find(REFERENCE_END).expect("docs/properties.md has the table's end marker");
    assert!(
        page[start..end].trim() == run.stdout.trim(),
        "docs/properties.md differs from `enrich properties`: run `cargo xtask docs`"
    );
}

const REFERENCE_START: &str = "<!-- properties:start (cargo xtask docs) -->";
const REFERENCE_END: &str = "<!-- properties:end -->";
