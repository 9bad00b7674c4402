//! Shell completions, run by the shells themselves: the script `enrich completions SHELL` prints is
//! sourced in bash and zsh, and its completion function asked what follows `enrich sync ` and the
//! like. Connection names come from the config file the line names (`-c`), else `enrich.yaml`.

mod support;

use std::path::Path;
use std::process::Command;

use enrich_emulator::EmulatorConfig;
use support::Workspace;

const ZSH: &str = "/usr/bin/zsh";

/// `enrich.yaml` defines `main` (the workspace's) and `second-one`; `prod.yaml` defines `prod`.
async fn workspace_with_two_files() -> Workspace {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    let config = std::fs::read_to_string(workspace.path("enrich.yaml")).unwrap();
    let connection = config.split_once("  main:\n").unwrap().1;
    std::fs::write(workspace.path("enrich.yaml"), format!("{config}  second-one:\n{connection}")).unwrap();
    std::fs::write(workspace.path("prod.yaml"), format!("connections:\n  prod:\n{connection}")).unwrap();
    workspace
}

/// Runs `script` in `shell` in the workspace, the completion script of `shell` written to `script.sh`.
async fn in_shell(workspace: &Workspace, shell: &str, arguments: &[&str], script: &str) -> String {
    let registration = workspace.enrich(&["completions", shell]).await;
    registration.success();
    std::fs::write(workspace.path("script.sh"), &registration.stdout).unwrap();
    let output = Command::new(arguments[0])
        .args(&arguments[1..])
        .arg(script)
        .current_dir(workspace.folder.path())
        .env_remove("ENRICH_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && stderr.is_empty(), "{shell} failed: {stderr}");
    String::from_utf8(output.stdout).unwrap()
}

/// What each completion offered, one line per line completed: the candidates joined by `|`.
fn offered(output: &str) -> Vec<Vec<&str>> {
    output.lines().map(|line| line.split('|').filter(|word| !word.is_empty()).collect()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn bash_completes_connection_names_from_the_config_file() {
    let workspace = workspace_with_two_files().await;
    let output = in_shell(
        &workspace,
        "bash",
        &["bash", "--norc", "--noprofile", "-c"],
        r#"source ./script.sh
        complete_line() {
            COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMP_TYPE=9; COMPREPLY=()
            _clap_complete_enrich enrich "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            local IFS='|'; echo "${COMPREPLY[*]}"
        }
        complete_line enrich sync ''
        complete_line enrich sync s
        complete_line enrich -c prod.yaml report ''
        complete_line enrich run main ''
        complete_line enrich sy"#,
    )
    .await;
    let lines = offered(&output);
    assert_eq!(lines.len(), 5, "{output}");
    assert_eq!(lines[0][..2], ["main", "second-one"], "{output}");
    assert!(lines[0].contains(&"--dry-run"), "{output}");
    assert_eq!(lines[1], ["second-one"], "{output}");
    assert_eq!(lines[2][0], "prod", "names from the file -c names: {output}");
    assert!(!lines[2].contains(&"main"), "{output}");
    assert_eq!(lines[3][..2], ["main", "second-one"], "enrich run takes several: {output}");
    assert_eq!(lines[4], ["sync"], "{output}");
}

#[tokio::test(flavor = "multi_thread")]
async fn zsh_completes_connection_names_from_the_config_file() {
    assert!(
        Path::new(ZSH).exists(),
        "{ZSH} is missing: `cargo xtask test` installs zsh (apt-get install zsh) and runs every test"
    );
    let workspace = workspace_with_two_files().await;
    // The completion system's widgets work only while a person completes a line: `compdef` and
    // `_describe` are stood in for, `_describe` printing the candidates it was given.
    let output = in_shell(
        &workspace,
        "zsh",
        &[ZSH, "-f", "-c"],
        r#"compdef() { :; }
        _describe() { local -a offered=("${(@P)${@[-1]}}"); print -r -- "${(j:|:)offered[@]%%:*}"; }
        source ./script.sh
        complete_line() {
            local words=("$@"); local CURRENT=$#
            _clap_dynamic_completer_enrich
        }
        complete_line enrich status ''
        complete_line enrich -c prod.yaml check ''"#,
    )
    .await;
    let lines = offered(&output);
    assert_eq!(lines.len(), 2, "{output}");
    assert_eq!(lines[0][..2], ["main", "second-one"], "{output}");
    assert!(lines[0].contains(&"--history"), "{output}");
    assert_eq!(lines[1][0], "prod", "{output}");
}
