//! `enrich init`: writes a connection file from a few questions, then validates and checks it.
//!
//! Answers are read from standard input a line at a time, so the setup works without a terminal too
//! (`enrich init < answers.txt`); an empty answer takes the default shown in brackets.

use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use enrich_core::Starter;
use enrich_csv::DetectedColumns;

use crate::config;
use crate::registry::SourceConfig;

/// Services at other addresses than the real ones: a proxy, or a stand-in such as the emulator.
#[derive(Debug, Default)]
pub struct ServiceUrls {
    pub source: Option<String>,
    pub sink: Option<String>,
}

/// What the answers decided.
#[derive(Debug)]
struct Answers {
    name: String,
    source: Starter,
    key_variable: String,
    app_id: String,
    region: String,
    roster: PathBuf,
    columns: Columns,
    /// What the source's own questions add to its section.
    source_lines: String,
}

#[derive(Debug)]
struct Columns {
    email: String,
    identity: String,
    last_seen: String,
    ip: Option<String>,
}

pub async fn run(path: &Path, force: bool, urls: &ServiceUrls) -> anyhow::Result<ExitCode> {
    if path.exists() && !force {
        anyhow::bail!("{} exists already; `enrich init --force` replaces it", path.display());
    }
    let stdin = std::io::stdin();
    let mut questions = Questions { input: stdin.lock(), echo: !stdin.is_terminal() };
    let answers = ask_all(&mut questions, path)?;
    std::fs::write(path, yaml(&answers, urls)).with_context(|| format!("cannot write {}", path.display()))?;
    println!("{}: written", path.display());
    if std::env::var_os(&answers.key_variable).is_none() {
        println!(
            "next: export {}=… (the key, never written in the file), then `enrich validate` and `enrich check`",
            answers.key_variable
        );
        return Ok(ExitCode::FAILURE);
    }
    let config = match config::load(path) {
        Ok(config) => config,
        Err(errors) => return Ok(super::config_problems(path, &errors.0)),
    };
    config.connections.iter().for_each(crate::registry::register_secrets);
    let valid = super::validate(&config)?;
    if valid != ExitCode::SUCCESS {
        return Ok(valid);
    }
    super::check::run(&config, &answers.name).await
}

fn ask_all(questions: &mut Questions<impl BufRead>, path: &Path) -> anyhow::Result<Answers> {
    let name = questions.ask("Connection name", Some("main"), |text| {
        let fits = text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if fits { Ok(text.to_owned()) } else { Err("use letters, digits, - and _ only".to_owned()) }
    })?;
    let source = ask_source(questions)?;
    let key_variable =
        questions.ask("Environment variable holding the API key", Some(source.key_variable), |text| {
            let fits = text.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
                && text.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if fits {
                Ok(text.to_owned())
            } else {
                Err("name a variable, such as CLEARBIT_API_KEY".to_owned())
            }
        })?;
    let app_id = questions.ask("Heap app id (the environment id on Heap's Projects page)", None, |text| {
        if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
            Ok(text.to_owned())
        } else {
            Err("digits only, such as 1234567890".to_owned())
        }
    })?;
    let region = questions.ask("Heap region (us or eu)", Some("us"), |text| match text {
        "us" | "eu" => Ok(text.to_owned()),
        _ => Err("answer us or eu".to_owned()),
    })?;
    let folder = path.parent().unwrap_or(Path::new(""));
    let (roster, detected) =
        questions.ask("Roster: the CSV file of users exported from Heap", Some("users.csv"), |text| {
            let resolved = folder.join(text);
            enrich_csv::detect_columns(&resolved).map(|detected| (PathBuf::from(text), detected))
        })?;
    questions.say(&format!("  its columns: {}", detected.header.join(", ")));
    let columns = ask_columns(questions, &detected)?;
    let source_lines = ask_choices(questions, &source)?;
    Ok(Answers { name, source, key_variable, app_id, region, roster, columns, source_lines })
}

/// The source type, among those the registry offers.
fn ask_source(questions: &mut Questions<impl BufRead>) -> anyhow::Result<Starter> {
    let starters = SourceConfig::starters();
    let kinds: Vec<&str> = starters.iter().map(|starter| starter.kind).collect();
    let question = format!("Provider ({})", kinds.join(" or "));
    questions.ask(&question, kinds.first().copied(), |text| {
        let at = one_of(&kinds, text)?;
        Ok(starters[at])
    })
}

/// The source's own questions, each skipped when an earlier answer makes it moot; the lines the
/// answers add to its section.
fn ask_choices(questions: &mut Questions<impl BufRead>, source: &Starter) -> anyhow::Result<String> {
    let mut chosen: Vec<&str> = Vec::new();
    let mut lines = String::new();
    for choice in source.choices {
        if choice.not_after.iter().any(|answer| chosen.contains(answer)) {
            continue;
        }
        let names: Vec<&str> = choice.answers.iter().map(|(answer, _)| *answer).collect();
        let at = questions.ask(choice.question, names.first().copied(), |text| one_of(&names, text))?;
        let (answer, added) = choice.answers[at];
        chosen.push(answer);
        lines.push_str(added);
    }
    Ok(lines)
}

/// Which of `answers` the text is: one whole, or the first letters of only one.
fn one_of(answers: &[&str], text: &str) -> Result<usize, String> {
    if let Some(at) = answers.iter().position(|answer| *answer == text) {
        return Ok(at);
    }
    let starting: Vec<usize> =
        (0..answers.len()).filter(|&at| !text.is_empty() && answers[at].starts_with(text)).collect();
    match starting.as_slice() {
        [at] => Ok(*at),
        _ => Err(format!("answer {}", answers.join(" or "))),
    }
}

/// The roster's columns, each asked with what the header suggests as the default.
fn ask_columns(
    questions: &mut Questions<impl BufRead>,
    detected: &DetectedColumns,
) -> anyhow::Result<Columns> {
    let in_header = |text: &str| {
        if detected.header.iter().any(|column| column == text) {
            Ok(text.to_owned())
        } else {
            Err(format!("answer one of: {}", detected.header.join(", ")))
        }
    };
    let email = questions.ask("Column of the email", detected.email.as_deref(), in_header)?;
    let identity = questions.ask("Column of the Heap identity", detected.identity.as_deref(), in_header)?;
    let last_seen =
        questions.ask("Column of when the user was last seen", detected.last_seen.as_deref(), in_header)?;
    let ip = questions.ask(
        "Column of the IP address of the latest session (none if there is none)",
        Some(detected.ip.as_deref().unwrap_or("none")),
        |text| if text == "none" { Ok(None) } else { in_header(text).map(Some) },
    )?;
    Ok(Columns { email, identity, last_seen, ip })
}

/// Questions on standard error, answers from a line reader.
struct Questions<R> {
    input: R,
    /// Whether to repeat each answer after its question: input that is not typed is not shown.
    echo: bool,
}

impl<R: BufRead> Questions<R> {
    /// Asks until `accept` takes the answer (or the default, for an empty one); what it refuses, it
    /// says why.
    fn ask<T>(
        &mut self,
        question: &str,
        default: Option<&str>,
        accept: impl Fn(&str) -> Result<T, String>,
    ) -> anyhow::Result<T> {
        loop {
            let prompt = match default {
                Some(default) => format!("{question} [{default}]: "),
                None => format!("{question}: "),
            };
            eprint!("{prompt}");
            let mut line = String::new();
            if self.input.read_line(&mut line)? == 0 {
                anyhow::bail!("no answer to \"{question}\": standard input ended");
            }
            let answer = match (line.trim(), default) {
                ("", Some(default)) => default,
                (answer, _) => answer,
            };
            if self.echo {
                eprintln!("{answer}");
            }
            match accept(answer) {
                Ok(value) => return Ok(value),
                Err(problem) => eprintln!("  {problem}"),
            }
        }
    }

    fn say(&self, text: &str) {
        eprintln!("{text}");
    }
}

/// The connection file the answers describe.
fn yaml(answers: &Answers, urls: &ServiceUrls) -> String {
    format!(
        "# Written by `enrich init`. The README's reference lists every setting; `enrich validate` checks them.\n\
         state_dir: .enrich   # where enrich remembers users and runs; relative to this file\n\
         connections:\n  {}:\n{}{}{}",
        answers.name,
        source_section(answers, urls.source.as_deref()),
        sink_section(answers, urls.sink.as_deref()),
        users_section(answers)
    )
}

/// A value as a JSON string, which YAML reads as it is whatever it holds.
fn quoted(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

fn source_section(answers: &Answers, url: Option<&str>) -> String {
    let mut out = format!(
        "    source:\n      type: {}\n      api_key: ${{{}}}   # read from the environment: never write the key here\n",
        answers.source.kind, answers.key_variable
    );
    if let Some(url) = url {
        for field in answers.source.url_fields {
            let _ = writeln!(out, "      {field}: {}", quoted(url));
        }
    }
    for line in answers.source_lines.lines() {
        let _ = writeln!(out, "      {line}");
    }
    out
}

fn sink_section(answers: &Answers, url: Option<&str>) -> String {
    // An address of its own replaces the region's host.
    let host = match url {
        Some(url) => format!("base_url: {}", quoted(url)),
        None => format!("region: {}", answers.region),
    };
    format!("    sink:\n      type: heap\n      app_id: {}\n      {host}\n", quoted(&answers.app_id))
}

fn users_section(answers: &Answers) -> String {
    let columns = &answers.columns;
    let mut out = format!(
        "    users:\n      type: csv\n      path: {}\n      email_property: {}\n      identity_property: {}\n      \
         last_seen_property: {}\n",
        quoted(&answers.roster.to_string_lossy()),
        quoted(&columns.email),
        quoted(&columns.identity),
        quoted(&columns.last_seen)
    );
    if let Some(ip) = &columns.ip {
        let _ = writeln!(out, "      ip_property: {}", quoted(ip));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(lines: &str, roster_header: &str) -> anyhow::Result<Answers> {
        let folder = tempfile::tempdir().unwrap();
        std::fs::write(folder.path().join("users.csv"), format!("{roster_header}\n")).unwrap();
        let mut questions = Questions { input: lines.as_bytes(), echo: false };
        ask_all(&mut questions, &folder.path().join("enrich.yaml"))
    }

    #[test]
    fn defaults_and_detected_columns_fill_empty_answers() {
        let answers =
            answered("\n\n\n1234567890\n\n\n\n\n\n\n\n\n", "Identity,Email Address,Last Seen").unwrap();
        assert_eq!(answers.name, "main");
        assert_eq!(answers.source.kind, "clearbit");
        assert_eq!(answers.key_variable, "CLEARBIT_API_KEY");
        assert_eq!(answers.columns.email, "Email Address");
        assert_eq!(answers.columns.last_seen, "Last Seen");
        assert_eq!(answers.columns.ip, None);
        assert_eq!(
            answers.source_lines, "skip_free_email_domains: true\n",
            "all attributes, free mail skipped"
        );
    }

    #[test]
    fn a_wrong_answer_is_asked_again_and_an_ended_input_is_an_error() {
        let answers = answered(
            "main\nhubspot\npeople_data_labs\n\nabc\n42\nmars\neu\n\nwho\n\n\n\n\nsome\ncompany\n",
            "identity,email,last_seen",
        )
        .unwrap();
        assert_eq!((answers.source.kind, answers.app_id.as_str()), ("people_data_labs", "42"));
        assert!(answers.source_lines.starts_with("lookup: company_by_domain"), "`some` is asked again");
        assert_eq!((answers.key_variable.as_str(), answers.region.as_str()), ("PDL_API_KEY", "eu"));
        assert_eq!(answers.columns.email, "email", "`who` is not a column: asked again");

        let ended = answered("main\nclearbit\n", "identity,email,last_seen").unwrap_err();
        assert_eq!(
            ended.to_string(),
            "no answer to \"Environment variable holding the API key\": standard input ended"
        );
    }

    #[test]
    fn the_file_reads_back_as_the_answers() {
        // `company` makes the free-mail question moot: it is not asked, and the next line is no answer.
        let answers =
            answered("\n\n\n1234567890\n\n\n\n\nSeen: at\n\ncomp\n", "Identity,Email Address,Seen: at")
                .unwrap();
        let urls = ServiceUrls { source: Some("http://127.0.0.1:9/clearbit/".into()), sink: None };
        let text = yaml(&answers, &urls);
        let read: serde_json::Value = serde_norway::from_str(&text).unwrap();
        let main = &read["connections"]["main"];
        assert_eq!(main["users"]["last_seen_property"], "Seen: at");
        assert_eq!(main["source"]["lookup"], "company_by_domain");
        assert_eq!(main["source"]["skip_free_email_domains"], serde_json::Value::Null);
        for field in ["base_url", "company_base_url"] {
            assert_eq!(
                main["source"][field], "http://127.0.0.1:9/clearbit/",
                "every API at the given address"
            );
        }
        assert_eq!(main["sink"]["app_id"], "1234567890");
    }

    #[test]
    fn an_answer_is_taken_by_its_first_letters_when_they_are_no_other_answers() {
        assert_eq!(one_of(&["yes", "no"], "y"), Ok(0));
        assert_eq!(one_of(&["clearbit", "clearbit_reveal"], "clearbit"), Ok(0), "whole beats a prefix");
        assert!(one_of(&["all", "allow"], "al").is_err(), "ambiguous");
        assert!(one_of(&["yes", "no"], "").is_err());
    }

    #[test]
    fn every_answer_of_every_offered_provider_writes_a_valid_connection() {
        let starters = SourceConfig::starters();
        let kinds: Vec<&str> = starters.iter().map(|starter| starter.kind).collect();
        assert_eq!(kinds, ["clearbit", "people_data_labs"], "Reveal alone is not offered");
        let folder = tempfile::tempdir().unwrap();
        std::fs::write(folder.path().join("users.csv"), "identity,email,last_seen\n").unwrap();
        for starter in starters {
            // Every combination of answers, as lines on standard input (a skipped question's is left over).
            let mut combinations = vec![String::new()];
            for choice in starter.choices {
                combinations = combinations
                    .iter()
                    .flat_map(|before| {
                        choice.answers.iter().map(move |(answer, _)| format!("{before}{answer}\n"))
                    })
                    .collect();
            }
            for input in combinations {
                let mut questions = Questions { input: input.as_bytes(), echo: false };
                let source_lines = ask_choices(&mut questions, &starter).unwrap();
                let answers = Answers {
                    name: "main".into(),
                    source: starter,
                    key_variable: starter.key_variable.into(),
                    app_id: "42".into(),
                    region: "eu".into(),
                    roster: "users.csv".into(),
                    columns: Columns {
                        email: "email".into(),
                        identity: "identity".into(),
                        last_seen: "last_seen".into(),
                        ip: None,
                    },
                    source_lines,
                };
                let urls = ServiceUrls { source: Some("http://127.0.0.1:9/".into()), sink: None };
                let text = yaml(&answers, &urls);
                let key = |name: &str| (name == starter.key_variable).then(|| "sk_test".to_owned());
                let parsed = config::parse(&folder.path().join("enrich.yaml"), &text, &key);
                let config = parsed.unwrap_or_else(|errors| panic!("{text}\n{errors:?}"));
                assert_eq!(config.connections[0].source.describe().split(' ').next(), Some(starter.kind));
            }
        }
    }
}
