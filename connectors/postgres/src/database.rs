//! Reaching the warehouse: the URL, TLS, the connection, and server errors worded for people, never
//! with the password.

use std::error::Error as StdError;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use enrich_core::ConnectorError;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::task::JoinHandle;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::ErrorPosition;
use tokio_postgres::{Client, Config};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How long reaching the server may take when the URL sets no `connect_timeout`: without one, an
/// unreachable host would hang the run for minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Shown to the warehouse's administrators in `pg_stat_activity`.
const APPLICATION_NAME: &str = "enrich";
const URL_EXAMPLE: &str = "postgres://user:password@host:5432/database";

/// Whether the connection to the warehouse is encrypted.
///
/// With TLS, the server's certificate is always verified, against the Mozilla roots and the host name:
/// there is no unverified mode, since it would hand the password and the users' emails to whoever sits
/// between enrich and the warehouse. Redshift's certificates pass; a server with a self-signed
/// certificate is reachable only with `disable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, plain TCP when it does not.
    Prefer,
    /// TLS, or no connection.
    Require,
}

impl TlsMode {
    /// The mode when the config sets none: `require` for a server across the network, which the
    /// password and personal data (emails) would otherwise cross in the clear, and where `prefer` could
    /// be downgraded by anyone on the way; `disable` for a server on this machine (loopback or a Unix
    /// socket), where encryption protects nothing and servers often carry self-signed certificates
    /// (Debian's default cluster does) that a verifying client must refuse.
    fn default_for(config: &Config) -> Self {
        let local = config.get_hosts().iter().all(|host| match host {
            Host::Tcp(name) => enrich_core::is_loopback_host(name),
            Host::Unix(_) => true,
        });
        if local { Self::Disable } else { Self::Require }
    }

    fn ssl_mode(self) -> SslMode {
        match self {
            Self::Disable => SslMode::Disable,
            Self::Prefer => SslMode::Prefer,
            Self::Require => SslMode::Require,
        }
    }
}

/// What is wrong with a warehouse URL, if anything. Messages never quote the URL: it holds the password.
pub fn url_problem(url: &SecretString) -> Option<String> {
    parse_url(url.expose_secret()).err()
}

fn parse_url(url: &str) -> Result<Config, String> {
    if url.trim().is_empty() {
        return Err(format!("is empty: set the warehouse's URL, such as {URL_EXAMPLE}"));
    }
    if url.trim() != url {
        return Err("has leading or trailing spaces or line breaks".to_owned());
    }
    if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
        return Err(format!("must be a postgres:// or postgresql:// URL, such as {URL_EXAMPLE}"));
    }
    // The parser takes the first `@` as the end of the password: the rest of the password would be
    // taken for the host, and shown in messages.
    if url.matches('@').count() > 1 {
        return Err(
            "contains `@` more than once: write an `@` in the user name or password as %40".to_owned()
        );
    }
    let query = url.split_once('?').map_or("", |(_, query)| query);
    if query.split('&').any(|parameter| parameter.split('=').next() == Some("sslmode")) {
        return Err(
            "sets sslmode: leave it out and set `tls` (disable, prefer or require) instead".to_owned()
        );
    }
    let config = Config::from_str(url).map_err(|error| {
        format!("is not a valid PostgreSQL URL ({}): use one such as {URL_EXAMPLE}", chain(&error))
    })?;
    if config.get_hosts().is_empty() {
        return Err(format!("names no host: use one such as {URL_EXAMPLE}"));
    }
    if config.get_user().is_none_or(str::is_empty) {
        return Err(format!("names no user: use one such as {URL_EXAMPLE}"));
    }
    Ok(config)
}

/// A warehouse as the directories reach it.
pub struct Database {
    /// The parsed URL, with the password; its `Debug` does not show it.
    config: Config,
    tls_mode: TlsMode,
    tls: MakeRustlsConnect,
    /// The URL without the password, for messages.
    shown: String,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database").field("url", &self.shown).field("tls", &self.tls_mode).finish()
    }
}

impl Database {
    /// The warehouse at a URL that [`url_problem`] accepts.
    pub fn new(url: &SecretString, tls_mode: Option<TlsMode>) -> Result<Self, ConnectorError> {
        let mut config = parse_url(url.expose_secret())
            .map_err(|problem| ConnectorError::Fatal(format!("invalid url: {problem}")))?;
        let tls_mode = tls_mode.unwrap_or_else(|| TlsMode::default_for(&config));
        config.ssl_mode(tls_mode.ssl_mode());
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name(APPLICATION_NAME);
        }
        let shown = shown_url(&config);
        Ok(Self { config, tls_mode, tls: tls_connector()?, shown })
    }

    /// The URL without the password: `postgres://user@host:5432/database`.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    pub(crate) fn user(&self) -> &str {
        self.config.get_user().unwrap_or_default()
    }

    /// A new session, in UTC, so that a `timestamp` compared with a `timestamptz` is read as UTC.
    pub async fn connect(&self) -> Result<(Client, ConnectionTask), ConnectorError> {
        tracing::debug!(url = %self.shown, tls = ?self.tls_mode, "connecting to the warehouse");
        let (client, connection) =
            self.config.connect(self.tls.clone()).await.map_err(|error| {
                ConnectorError::Fatal(format!("cannot connect: {}", error_message(&error)))
            })?;
        let task = ConnectionTask(Some(tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(error = %error_message(&error), "the warehouse connection ended");
            }
        })));
        client.batch_execute("SET timezone TO 'UTC'").await.map_err(|error| {
            ConnectorError::Fatal(format!(
                "cannot set the session's time zone to UTC: {}",
                error_message(&error)
            ))
        })?;
        Ok((client, task))
    }
}

/// The task that drives a connection. Dropped before [`Self::finish`], it ends the connection at once:
/// otherwise a reading given up half-way would go on receiving (and discarding) the rest of the result.
#[derive(Debug)]
pub struct ConnectionTask(Option<JoinHandle<()>>);

impl ConnectionTask {
    /// Closes the connection politely once the client is done with it.
    pub async fn finish(mut self, client: Client) {
        drop(client);
        if let Some(task) = self.0.take() {
            // The task logs its own failure; a cancelled or panicked one has nothing more to say.
            let _ = task.await;
        }
    }
}

impl Drop for ConnectionTask {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// Verified TLS through rustls with ring and the Mozilla roots. The provider is named rather than taken
/// from the process default, which another crate may have set differently or not at all.
fn tls_connector() -> Result<MakeRustlsConnect, ConnectorError> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|error| ConnectorError::Fatal(format!("cannot set up TLS: {error}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

fn shown_url(config: &Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(at, host)| {
            let port = ports.get(at).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) if name.contains(':') => format!("[{name}]:{port}"),
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    let user = config.get_user().unwrap_or_default();
    // PostgreSQL's default database is the one named after the user.
    let database = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{}/{database}", hosts.join(","))
}

/// A driver or server error in one line: the server's message with its detail, hint and SQLSTATE, or
/// the driver's message with its causes. Neither ever carries the password.
pub fn error_message(error: &tokio_postgres::Error) -> String {
    let Some(db) = error.as_db_error() else {
        let mut message = chain(error);
        if rejected_certificate(error) {
            message.push_str(
                " (enrich verifies the server's certificate against the public roots and the host name; \
                 a server with a self-signed certificate is reachable only with `tls: disable`)",
            );
        }
        return message;
    };
    let mut message = db.message().to_owned();
    if let Some(ErrorPosition::Original(position)) = db.position() {
        message.push_str(&format!(" at character {position}"));
    }
    for (label, text) in [("detail", db.detail()), ("hint", db.hint())] {
        if let Some(text) = text {
            message.push_str(&format!("; {label}: {text}"));
        }
    }
    format!("{message} (SQLSTATE {})", db.code().code())
}

/// The error and its causes, `: `-separated.
fn chain(error: &dyn StdError) -> String {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        let text = error.to_string();
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = error.source();
    }
    message
}

/// Whether the TLS handshake failed on the server's certificate.
fn rejected_certificate(error: &tokio_postgres::Error) -> bool {
    // rustls' error reaches tokio-postgres wrapped in the `io::Error` of tokio-rustls.
    error
        .source()
        .and_then(|cause| cause.downcast_ref::<std::io::Error>())
        .and_then(|io| io.get_ref())
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|tls| matches!(tls, rustls::Error::InvalidCertificate(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(url: &str) -> SecretString {
        SecretString::from(url.to_owned())
    }

    #[test]
    fn shows_the_url_without_the_password() {
        let database = Database::new(
            &secret("postgres://enrich:s3cr%40t-pw@warehouse.example.com:5439/analytics"),
            None,
        )
        .unwrap();
        assert_eq!(database.shown(), "postgres://enrich@warehouse.example.com:5439/analytics");
        let debug = format!("{database:?}");
        assert!(!debug.contains("s3cr") && debug.contains("warehouse.example.com"), "{debug}");
        let defaults = Database::new(&secret("postgresql://enrich:pw@[::1]"), None).unwrap();
        assert_eq!(defaults.shown(), "postgres://enrich@[::1]:5432/enrich");
    }

    #[test]
    fn requires_tls_across_the_network_and_not_on_this_machine() {
        let mode = |url: &str| Database::new(&secret(url), None).unwrap().tls_mode;
        assert_eq!(mode("postgres://u:p@redshift.example.com:5439/dev"), TlsMode::Require);
        assert_eq!(mode("postgres://u:p@10.0.0.5/dev"), TlsMode::Require);
        assert_eq!(mode("postgres://u:p@127.0.0.1:5432/dev"), TlsMode::Disable);
        assert_eq!(mode("postgres://u:p@localhost/dev"), TlsMode::Disable);
        assert_eq!(mode("postgres://u:p@%2Fvar%2Frun%2Fpostgresql/dev"), TlsMode::Disable);
        let chosen = Database::new(&secret("postgres://u:p@127.0.0.1/dev"), Some(TlsMode::Require)).unwrap();
        assert_eq!(chosen.tls_mode, TlsMode::Require);
    }

    #[test]
    fn url_problems_are_worded_without_the_password() {
        let password = "hunter2-very-secret";
        for (url, expected) in [
            (String::new(), "is empty"),
            (format!(" postgres://u:{password}@h/db"), "leading or trailing"),
            (format!("mysql://u:{password}@h/db"), "must be a postgres://"),
            (format!("host=h user=u password={password}"), "must be a postgres://"),
            (format!("postgres://u:{password}@x@h/db"), "`@` more than once"),
            (format!("postgres://u:{password}@h/db?sslmode=require"), "set `tls`"),
            (format!("postgres://u:{password}@h:port/db"), "not a valid PostgreSQL URL"),
            (format!("postgres://u:{password}@h/db?bogus=1"), "not a valid PostgreSQL URL"),
            (format!("postgres://u:{password}@/db"), "names no host"),
            ("postgres://h/db".to_owned(), "names no user"),
        ] {
            let problem = url_problem(&secret(&url)).unwrap_or_else(|| panic!("{url:?} is accepted"));
            assert!(problem.contains(expected), "{url:?}: {problem}");
            assert!(!problem.contains(password), "{problem}");
        }
        assert_eq!(url_problem(&secret("postgresql://u:p@h:5439/db?connect_timeout=5")), None);
    }
}
