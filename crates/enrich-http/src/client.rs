//! The client every HTTP connector uses, and what it makes of answers before a connector reads them.

use std::time::Duration;

use enrich_core::ConnectorError;
use reqwest::header::{HeaderMap, LOCATION};
use reqwest::{Client, StatusCode, Url, redirect};

use crate::Failure;

pub const USER_AGENT: &str = concat!("enrich/", env!("CARGO_PKG_VERSION"));

/// A client with enrich's user agent and `timeout` that follows no redirect: a redirect would carry
/// the key (or the users' data) wherever it points, over plain http too.
pub fn client(timeout: Duration) -> Result<Client, ConnectorError> {
    Client::builder()
        .user_agent(USER_AGENT)
        .timeout(timeout)
        .redirect(redirect::Policy::none())
        .build()
        .map_err(|error| ConnectorError::Fatal(format!("cannot set up the HTTP client: {error}")))
}

/// What is wrong with a `base_url`, `example` being the service's own. The URL is never quoted: it may
/// carry credentials for a proxy.
pub fn base_url_problem(base_url: &str, example: &str) -> Option<String> {
    match Url::parse(base_url) {
        Ok(url) if !url.has_host() || !matches!(url.scheme(), "http" | "https") => {
            Some(format!("must be an https URL, such as {example}"))
        }
        // Plain http would send the key in the clear, to anyone on the way.
        Ok(url) if url.scheme() == "http" && !url.host_str().is_some_and(enrich_core::is_loopback_host) => Some(
            "uses plain http, which would send the API key unencrypted: use https://; plain http is only \
             allowed for a local emulator (localhost, 127.0.0.1, ::1)"
                .to_owned(),
        ),
        Ok(_) => None,
        Err(error) => Some(format!("is not an absolute URL ({error}): use one such as {example}")),
    }
}

/// An endpoint under `base_url`: `path` appended to whatever path the base already has (a proxy's prefix).
pub fn endpoint(base_url: &str, path: &str) -> Result<Url, String> {
    let mut url = Url::parse(base_url).map_err(|error| error.to_string())?;
    url.set_path(&format!("{}/{path}", url.path().trim_end_matches('/')));
    Ok(url)
}

/// `url` as messages name it: without the credentials a proxy URL may carry.
pub fn shown_url(url: &Url) -> String {
    let mut shown = url.clone();
    // Both only fail for URLs that cannot have credentials, which then have none to remove.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// A redirect is a configuration problem: `base_url` points somewhere that sends requests on.
pub fn redirected(provider: &str, status: StatusCode, headers: &HeaderMap, endpoint: &str) -> ConnectorError {
    let location = headers.get(LOCATION).and_then(|value| value.to_str().ok()).unwrap_or("nowhere");
    ConnectorError::Fatal(format!(
        "{provider} answered {status} for {endpoint}, redirecting to {location}: redirects are not \
         followed (they would carry the key elsewhere); check base_url"
    ))
}

/// The body, unless it is larger than `max_bytes`: then the request fails at once rather than
/// spending memory and minutes on reading it.
pub async fn read_body(
    provider: &str,
    timeout: Duration,
    mut response: reqwest::Response,
    max_bytes: usize,
) -> Result<Vec<u8>, Failure> {
    let status = response.status();
    let too_large = || {
        Failure::Final(ConnectorError::Rejected(format!(
            "{provider} answered {status} with more than {} KiB, far more than any answer: not read",
            max_bytes / 1024
        )))
    };
    if response.content_length().is_some_and(|length| length > max_bytes as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) =
        response.chunk().await.map_err(|error| transport_failure(provider, timeout, error))?
    {
        if body.len() + chunk.len() > max_bytes {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A request that got no HTTP answer. reqwest's message would carry the URL, and with it what was
/// looked up.
pub fn transport_failure(provider: &str, timeout: Duration, error: reqwest::Error) -> Failure {
    let reason = if error.is_timeout() {
        format!("{provider} did not answer within {timeout:?}")
    } else {
        let error = error.without_url();
        let mut reason = format!("cannot reach {provider}: {error}");
        let mut cause = std::error::Error::source(&error);
        while let Some(inner) = cause {
            reason.push_str(&format!(": {inner}"));
            cause = inner.source();
        }
        reason
    };
    Failure::Retryable { reason, rate_limited: false }
}
