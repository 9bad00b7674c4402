//! Users as a directory reports them, and the keys sources look them up by.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One user from a directory: who they are in the analytics tool and what a source can look up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The analytics tool's identity (Heap's `identity`): how Heap addresses the user. `None` for an
    /// anonymous user, who is then addressed by `user_id` (a directory gives one or the other, or both).
    pub identity: Option<String>,
    /// The analytics tool's internal user id, where the directory knows it (warehouse sinks).
    pub user_id: Option<String>,
    pub email: Option<String>,
    /// The IP address of the user's latest session, for IP-keyed sources (and a match hint for others).
    pub ip: Option<IpAddr>,
    /// The person's name, where the directory has it: a match hint for sources.
    pub name: PersonName,
    pub last_seen: DateTime<Utc>,
}

/// A person's name as a roster holds it, either part possibly missing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonName {
    pub given: Option<String>,
    pub family: Option<String>,
}

/// What a source may send with a lookup to raise its match rate (Clearbit's `given_name`,
/// `family_name`, `ip_address`): taken from the first user of a key that has each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookupHints {
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub ip: Option<IpAddr>,
}

impl LookupHints {
    /// The hints of users sharing one key.
    pub fn of<'a>(users: impl IntoIterator<Item = &'a UserRecord>) -> Self {
        let mut hints = Self::default();
        for user in users {
            let text = |value: &Option<String>| {
                value.as_deref().map(str::trim).filter(|text| !text.is_empty()).map(str::to_owned)
            };
            hints.given_name = hints.given_name.or_else(|| text(&user.name.given));
            hints.family_name = hints.family_name.or_else(|| text(&user.name.family));
            hints.ip = hints.ip.or(user.ip);
        }
        hints
    }
}

/// Why a directory's identity is none, if it is blank: directories report such rows instead of passing
/// them on. How long an identity may be is the sink's rule ([`crate::ValueRules::max_identity_chars`]).
pub fn identity_problem(identity: &str) -> Option<&'static str> {
    identity.trim().is_empty().then_some("identity is empty")
}

/// What the state keeps a user under: the identity, or for an anonymous user (no identity) its `user_id`
/// behind [`ANONYMOUS_KEY_PREFIX`]. The engine trims identities, so no identity starts with a space and
/// no anonymous user's key can meet an identity equal to its `user_id`.
pub fn state_key<'a>(identity: Option<&'a str>, user_id: Option<&str>) -> Cow<'a, str> {
    match identity {
        Some(identity) => Cow::Borrowed(identity),
        None => Cow::Owned(format!("{ANONYMOUS_KEY_PREFIX}{}", user_id.unwrap_or_default())),
    }
}

/// What starts the state key of an anonymous user: ` user_id 42`.
pub const ANONYMOUS_KEY_PREFIX: &str = " user_id ";

/// What a source looks users up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Email,
    Ip,
    /// The domain of a work email: one company for every colleague.
    Domain,
}

/// A normalised lookup key: users with equal keys share one lookup.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LookupKey {
    Email(String),
    Ip(IpAddr),
    /// An email's domain, lower-cased and in ASCII.
    Domain(String),
}

impl LookupKey {
    /// A stable hash of the key, kept in state instead of the key itself: it tells a changed email
    /// apart, and lets a person be found and forgotten on request, without storing the email.
    pub fn digest(&self) -> u64 {
        let text = self.to_string();
        crate::digest::stable_hash([text.as_bytes()])
    }
}

impl fmt::Display for LookupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Email(email) | Self::Domain(email) => f.write_str(email),
            Self::Ip(ip) => ip.fmt(f),
        }
    }
}

/// Why a user in the window is not looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SkipReason {
    NoEmail,
    MalformedEmail,
    NoIp,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoEmail => "no email",
            Self::MalformedEmail => "malformed email",
            Self::NoIp => "no IP address",
        })
    }
}

impl UserRecord {
    /// What the state keeps this user under: see [`state_key`].
    pub fn state_key(&self) -> Cow<'_, str> {
        state_key(self.identity.as_deref(), self.user_id.as_deref())
    }

    /// The key a source of the given kind looks this user up by, or why there is none.
    pub fn lookup_key(&self, kind: KeyKind) -> Result<LookupKey, SkipReason> {
        match kind {
            KeyKind::Email => self.normalized_email().map(LookupKey::Email),
            KeyKind::Domain => {
                let email = self.normalized_email()?;
                let (_, domain) = email.rsplit_once('@').ok_or(SkipReason::MalformedEmail)?;
                Ok(LookupKey::Domain(domain.to_owned()))
            }
            KeyKind::Ip => self.ip.map(LookupKey::Ip).ok_or(SkipReason::NoIp),
        }
    }

    fn normalized_email(&self) -> Result<String, SkipReason> {
        let email = self.email.as_deref().map(str::trim).unwrap_or_default();
        if email.is_empty() {
            Err(SkipReason::NoEmail)
        } else {
            normalize_email(email).ok_or(SkipReason::MalformedEmail)
        }
    }
}

/// The lower-cased address when it is plausibly deliverable (`local@domain.tld`), else `None`. An
/// internationalised domain is written in its ASCII (punycode) form, so that `carol@bücher.de` and
/// `carol@xn--bcher-kva.de` are one key.
///
/// Deliberately stricter than RFC 5322: quoted local parts and IP-literal domains are never
/// enrichable, so looking them up would only spend money.
pub fn normalize_email(raw: &str) -> Option<String> {
    let lowered = raw.trim().to_lowercase();
    let (local, domain) = lowered.split_once('@')?;
    let domain = idna::domain_to_ascii(domain).ok()?;
    let email = format!("{local}@{domain}");
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels.last().is_some_and(|tld| tld.len() >= 2 && !tld.chars().all(|c| c.is_ascii_digit()));
    (local_ok && domain_ok).then_some(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses_and_lowercases_them() {
        assert_eq!(normalize_email(" Alex@ClearBit.com "), Some("alex@clearbit.com".into()));
        assert_eq!(
            normalize_email("first.last+tag@mail.example.co.uk"),
            Some("first.last+tag@mail.example.co.uk".into())
        );
    }

    #[test]
    fn writes_international_domains_in_ascii() {
        assert_eq!(normalize_email("Carol@Bücher.de"), Some("carol@xn--bcher-kva.de".into()));
        assert_eq!(normalize_email("carol@xn--bcher-kva.de"), Some("carol@xn--bcher-kva.de".into()));
        assert_eq!(normalize_email("José@exämple.com"), Some("josé@xn--exmple-cua.com".into()));
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "alex",
            "alex@",
            "@clearbit.com",
            "alex@clearbit",
            "alex@@clearbit.com",
            "al ex@clearbit.com",
            "alex@clear_bit.com",
            ".alex@clearbit.com",
            "alex..m@clearbit.com",
            "alex@-clearbit.com",
            "alex@clearbit.c",
            "alex@1.2.3.4",
            "a@b@c.com",
        ] {
            assert_eq!(normalize_email(bad), None, "{bad:?} must be rejected");
        }
    }

    #[test]
    fn lookup_key_says_why_there_is_none() {
        let mut user = UserRecord {
            identity: Some("u1".into()),
            user_id: None,
            email: None,
            ip: None,
            name: PersonName::default(),
            last_seen: Utc::now(),
        };
        assert_eq!(user.lookup_key(KeyKind::Email), Err(SkipReason::NoEmail));
        assert_eq!(user.lookup_key(KeyKind::Ip), Err(SkipReason::NoIp));
        user.email = Some("not-an-email".into());
        assert_eq!(user.lookup_key(KeyKind::Email), Err(SkipReason::MalformedEmail));
        assert_eq!(user.lookup_key(KeyKind::Domain), Err(SkipReason::MalformedEmail));
        user.email = Some("A@B.io".into());
        assert_eq!(user.lookup_key(KeyKind::Email), Ok(LookupKey::Email("a@b.io".into())));
        assert_eq!(user.lookup_key(KeyKind::Domain), Ok(LookupKey::Domain("b.io".into())));
    }

    #[test]
    fn an_anonymous_user_is_kept_apart_from_an_identity_equal_to_its_user_id() {
        assert_eq!(state_key(Some("42"), Some("7")), "42");
        assert_eq!(state_key(None, Some("42")), " user_id 42");
        assert_ne!(state_key(None, Some("42")), state_key(Some("42"), None));
        assert_ne!(state_key(None, Some("42")), state_key(Some("user_id 42"), None));
    }

    #[test]
    fn hints_take_each_part_from_the_first_user_that_has_it() {
        let user = |given: Option<&str>, family: Option<&str>, ip: Option<&str>| UserRecord {
            identity: Some("u".into()),
            user_id: None,
            email: Some("a@b.io".into()),
            ip: ip.map(|ip| ip.parse().unwrap()),
            name: PersonName { given: given.map(Into::into), family: family.map(Into::into) },
            last_seen: Utc::now(),
        };
        let users = [
            user(Some(" "), None, None),
            user(Some("Ada"), None, Some("203.0.113.7")),
            user(Some("Bo"), Some("Lovelace"), None),
        ];
        let hints = LookupHints::of(&users);
        assert_eq!(hints.given_name.as_deref(), Some("Ada"));
        assert_eq!(hints.family_name.as_deref(), Some("Lovelace"));
        assert_eq!(hints.ip, Some("203.0.113.7".parse().unwrap()));
    }
}
