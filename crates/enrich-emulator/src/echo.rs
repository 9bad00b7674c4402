//! The `Echo` scripted answer: an error message quoting what the request carried (its `Authorization`
//! header and the email or identity, in upper case), as careless services and proxies do. Clients must
//! keep such messages out of their logs, terminal and state.

use serde_json::Value;

/// The message quoting `authorization` (as received) and `subject` in upper case.
pub(crate) fn message(authorization: Option<&str>, subject: &str) -> String {
    format!(
        "cannot serve {} for the request with Authorization: {}",
        subject.to_uppercase(),
        authorization.unwrap_or("(none)")
    )
}

/// The first identity of a Heap request body, or an empty text.
pub(crate) fn first_identity(body: &[u8]) -> String {
    let body: Value = serde_json::from_slice(body).unwrap_or_default();
    let identity = match body.get("users") {
        Some(users) => &users[0]["identity"],
        None => &body["identity"],
    };
    identity.as_str().unwrap_or_default().to_owned()
}
