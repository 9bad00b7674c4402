//! `enrich init`: writes a connection file from a few questions, then validates and checks it.
//!
//! Answers are read from standard input a line at a time, so the setup works without a terminal too
//! (`enrich init < answers.txt`); an empty answer takes the default shown in brackets.

use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use enrich_csv::DetectedColumns;

use crate::config;

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
    provider: Provider,
    key_variable: String,
    app_id: String,
    region: String,
    roster: PathBuf,
    columns: Columns,
    company_only: bool,
    skip_free_mail: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    Clearbit,
    PeopleDataLabs,
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
    let provider =
        questions.ask("Provider (clearbit or people_data_labs)", Some("clearbit"), |text| match text {
            "clearbit" => Ok(Provider::Clearbit),
            "people_data_labs" | "pdl" => Ok(Provider::PeopleDataLabs),
            _ => Err("answer clearbit or people_data_labs".to_owned()),
        })?;
    let default_variable = match provider {
        Provider::Clearbit => "CLEARBIT_API_KEY",
        Provider::PeopleDataLabs => "PDL_API_KEY",
    };
    let key_variable =
        questions.ask("Environment variable holding the API key", Some(default_variable), |text| {
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
    let (company_only, skip_free_mail) = match provider {
        Provider::Clearbit => (
            questions.ask(
                "Write all attributes, or the company's only (all or company)",
                Some("all"),
                |text| match text {
                    "all" => Ok(false),
                    "company" => Ok(true),
                    _ => Err("answer all or company".to_owned()),
                },
            )?,
            questions.ask(
                "Skip emails at free-mail domains such as gmail.com (yes or no)",
                Some("yes"),
                yes_or_no,
            )?,
        ),
        // People Data Labs looks up people: its answers have no company-only selection or free-mail list.
        Provider::PeopleDataLabs => (false, false),
    };
    Ok(Answers {
        name,
        provider,
        key_variable,
        app_id,
        region,
        roster,
        columns,
        company_only,
        skip_free_mail,
    })
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

fn yes_or_no(text: &str) -> Result<bool, String> {
    match text {
        "yes" | "y" => Ok(true),
        "no" | "n" => Ok(false),
        _ => Err("answer yes or no".to_owned()),
    }
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
    let kind = match answers.provider {
        Provider::Clearbit => "clearbit",
        Provider::PeopleDataLabs => "people_data_labs",
    };
    let mut out = format!(
        "    source:\n      type: {kind}\n      api_key: ${{{}}}   # read from the environment: never write the key here\n",
        answers.key_variable
    );
    if let Some(url) = url {
        let _ = writeln!(out, "      base_url: {}", quoted(url));
    }
    if answers.provider == Provider::Clearbit {
        let _ = writeln!(out, "      skip_free_email_domains: {}", answers.skip_free_mail);
        if answers.company_only {
            out.push_str("      properties:\n        include: [\"company.*\"]   # company data only: no personal data\n");
        }
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
        assert_eq!(answers.provider, Provider::Clearbit);
        assert_eq!(answers.key_variable, "CLEARBIT_API_KEY");
        assert_eq!(answers.columns.email, "Email Address");
        assert_eq!(answers.columns.last_seen, "Last Seen");
        assert_eq!(answers.columns.ip, None);
        assert!(!answers.company_only && answers.skip_free_mail);
    }

    #[test]
    fn a_wrong_answer_is_asked_again_and_an_ended_input_is_an_error() {
        let answers =
            answered("main\nhubspot\npdl\n\nabc\n42\nmars\neu\n\nwho\n\n\n\n\n", "identity,email,last_seen")
                .unwrap();
        assert_eq!((answers.provider, answers.app_id.as_str()), (Provider::PeopleDataLabs, "42"));
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
        let answers = answered(
            "\n\n\n1234567890\n\n\n\n\nSeen: at\n\ncompany\nno\n",
            "Identity,Email Address,Seen: at",
        )
        .unwrap();
        let text = yaml(&answers, &ServiceUrls::default());
        let read: serde_json::Value = serde_norway::from_str(&text).unwrap();
        let main = &read["connections"]["main"];
        assert_eq!(main["users"]["last_seen_property"], "Seen: at");
        assert_eq!(main["source"]["properties"]["include"][0], "company.*");
        assert_eq!(main["source"]["skip_free_email_domains"], false);
        assert_eq!(main["sink"]["app_id"], "1234567890");
    }
}
