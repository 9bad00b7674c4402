//! The one point every text passes before it is logged, printed, stored in state or shown in a report:
//! configured secrets, `Basic`/`Bearer` credentials and the credentials of URLs are removed, and emails
//! are masked (`e***@acme.com`, whatever their case).
//!
//! Secrets are registered once, by whoever reads the configuration; services quote what they were sent
//! in their error messages, so anything a connector reports may hold them.

use std::borrow::Cow;
use std::sync::{LazyLock, RwLock};

use regex::{Captures, Regex};

/// What a removed secret reads as.
pub const REDACTED: &str = "[redacted]";

/// Shorter secrets are not searched for: they would blank out ordinary words.
const MIN_SECRET_CHARS: usize = 4;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// `Authorization` credentials, whatever the secret: `Bearer sk_…`, `Basic c2s6`.
static CREDENTIALS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b(bearer|basic)\s+([A-Za-z0-9._~+/=-]+)").expect("valid"));

/// The user and password of a URL: `https://user:password@host`.
static URL_CREDENTIALS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s@]+@").expect("valid"));

/// An email, with its `@` written plainly or percent-encoded as in a query string. The local part
/// leaves out the few characters that also separate a query string's fields (`=`, `&`, `?`, `/`, `%`).
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)([\w.!#$'*+^`{|}~-])[\w.!#$'*+^`{|}~-]*(?:@|%40)([\w-]+(?:\.[\w-]+)+)").expect("valid")
});

/// Removes `secret` from every text from now on.
pub fn register_secret(secret: &str) {
    let secret = secret.trim();
    if secret.chars().count() < MIN_SECRET_CHARS {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !secrets.iter().any(|known| known == secret) {
        secrets.push(secret.to_owned());
        // The longest first, so that a secret containing another is removed whole.
        secrets.sort_by_key(|known| std::cmp::Reverse(known.len()));
    }
}

/// Removes the password of `url` (`scheme://user:password@host`), if it has one, from every text.
pub fn register_url(url: &str) {
    let Some(found) = URL_CREDENTIALS.captures(url) else { return };
    let user_info = found[0][found[1].len()..].trim_end_matches('@');
    register_secret(user_info);
    if let Some((_, password)) = user_info.split_once(':') {
        register_secret(password);
    }
}

/// A text fit for logs and the terminal: secrets removed, emails masked unless `--log-pii`.
pub fn text(text: &str) -> Cow<'_, str> {
    clean(text, !crate::events::pii_shown())
}

/// A text fit for the state: secrets removed, emails masked even with `--log-pii`.
pub fn stored(text: &str) -> String {
    clean(text, true).into_owned()
}

fn clean(text: &str, mask_emails: bool) -> Cow<'_, str> {
    let mut text = Cow::Borrowed(text);
    {
        let secrets = SECRETS.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        for secret in secrets.iter() {
            if text.contains(secret.as_str()) {
                text = Cow::Owned(text.replace(secret.as_str(), REDACTED));
            }
        }
    }
    text = replace(text, &CREDENTIALS, |found| {
        if looks_like_a_credential(&found[2]) {
            format!("{} {REDACTED}", &found[1])
        } else {
            found[0].to_owned()
        }
    });
    text = replace(text, &URL_CREDENTIALS, |found| format!("{}{REDACTED}@", &found[1]));
    if mask_emails {
        text = replace(text, &EMAIL, |found| format!("{}***@{}", &found[1], &found[2]));
    }
    text
}

/// Tells `Bearer sk_live_x1` and `Basic dXNlcjpwYXNz` from words such as `Basic plan`: a credential
/// holds a digit, a symbol, or a capital after its first letter.
fn looks_like_a_credential(token: &str) -> bool {
    token.chars().skip(1).any(|c| !c.is_ascii_lowercase()) || token.chars().any(|c| !c.is_ascii_alphabetic())
}

fn replace<'t>(text: Cow<'t, str>, pattern: &Regex, with: impl Fn(&Captures<'_>) -> String) -> Cow<'t, str> {
    match pattern.replace_all(&text, |found: &Captures<'_>| with(found)) {
        Cow::Borrowed(_) => text,
        Cow::Owned(replaced) => Cow::Owned(replaced),
    }
}

/// Serializes a stored text through [`stored`], so that no state file holds what it removes.
pub(crate) fn serialize_stored<S: serde::Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&stored(text))
}

/// [`serialize_stored`] for an optional text.
pub(crate) fn serialize_stored_option<S: serde::Serializer>(
    text: &Option<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match text {
        Some(text) => serializer.serialize_some(&stored(text)),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_registered_secrets_and_credentials_anywhere() {
        register_secret("sk_redact_test_0123");
        register_secret("abc"); // too short to search for
        register_url("postgres://reader:pg-pass-77@db.example/users");
        let said = "failed for key sk_redact_test_0123 (Authorization: Bearer sk_other), \
                    Basic dXNlcjpwYXNz, proxy https://me:pa55@proxy.example/x, abc, Basic plan";
        assert_eq!(
            stored(said),
            "failed for key [redacted] (Authorization: Bearer [redacted]), Basic [redacted], \
             proxy https://[redacted]@proxy.example/x, abc, Basic plan"
        );
        assert_eq!(stored("password pg-pass-77 refused"), "password [redacted] refused");
    }

    #[test]
    fn masks_emails_in_any_case_and_encoding() {
        assert_eq!(stored("ECHO500@ACME.COM is unknown"), "E***@ACME.COM is unknown");
        assert_eq!(stored("?email=Carol%40bücher.de&x=1"), "?email=C***@bücher.de&x=1");
        assert_eq!(stored("a***@example.com"), "a***@example.com", "a masked email stays as it is");
        assert_eq!(stored("no email @ here, 1.5@2"), "no email @ here, 1.5@2");
    }

    #[test]
    fn leaves_clean_text_borrowed() {
        assert!(matches!(text("sync finished: 3 users"), Cow::Borrowed(_)));
    }
}
