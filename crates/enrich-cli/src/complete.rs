//! Shell completions that know the connection file: clap_complete's dynamic completion, where the
//! shell asks `enrich` itself (`COMPLETE=bash enrich -- enrich sync <TAB>`) and the names of the
//! connections come from the config file the command line names.

use std::ffi::OsString;
use std::path::PathBuf;

use clap_complete::CompletionCandidate;
use clap_complete::env::Shells;

/// The environment variable through which the shell asks for completions.
const VARIABLE: &str = "COMPLETE";

/// Answers the shell's completion request, if this run is one, and exits.
pub fn answer_if_asked() {
    clap_complete::CompleteEnv::with_factory(crate::cli::Cli::definition).var(VARIABLE).complete();
}

/// The script a shell sources to complete `enrich`: `enrich completions bash` prints what
/// `COMPLETE=bash enrich` does.
pub fn registration(shell: clap_complete::Shell) -> anyhow::Result<Vec<u8>> {
    let name = shell.to_string();
    let shells = Shells::builtins();
    let completer =
        shells.completer(&name).ok_or_else(|| anyhow::anyhow!("no dynamic completion for {name}"))?;
    // The binary as it was started, as clap_complete names it: a relative path made absolute.
    let started = std::env::args_os().next().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("enrich"));
    let program = match std::env::current_dir() {
        Ok(folder) if started.components().count() > 1 => folder.join(started),
        _ => started,
    };
    let mut script = Vec::new();
    completer.write_registration(VARIABLE, "enrich", "enrich", &program.to_string_lossy(), &mut script)?;
    Ok(script)
}

/// The connections of the config file the command line being completed names (`-c`, `--config`,
/// `ENRICH_CONFIG`, else `enrich.yaml`); none when it cannot be read.
pub fn connection_names() -> Vec<CompletionCandidate> {
    let words: Vec<OsString> = std::env::args_os().skip_while(|word| word != "--").skip(1).collect();
    let path = config_named(&words)
        .or_else(|| std::env::var_os("ENRICH_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("enrich.yaml"));
    crate::config::connection_names(&path).into_iter().map(CompletionCandidate::new).collect()
}

/// The value of `-c FILE`, `--config FILE` or `--config=FILE` among the words typed so far.
fn config_named(words: &[OsString]) -> Option<PathBuf> {
    let mut words = words.iter().map(|word| word.to_string_lossy());
    while let Some(word) = words.next() {
        if word == "-c" || word == "--config" {
            return words.next().map(|path| PathBuf::from(path.as_ref()));
        }
        if let Some(path) = word.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_file_is_read_from_the_words_typed() {
        let words = |line: &str| -> Vec<OsString> { line.split(' ').map(OsString::from).collect() };
        assert_eq!(config_named(&words("enrich -c prod.yaml sync")), Some(PathBuf::from("prod.yaml")));
        assert_eq!(config_named(&words("enrich sync --config=a.yaml")), Some(PathBuf::from("a.yaml")));
        assert_eq!(config_named(&words("enrich sync main")), None);
    }
}
