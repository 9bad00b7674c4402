//! Sinks: where properties are written (Heap's user properties, later a warehouse table).

use std::borrow::Cow;
use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{ConnectorError, Properties, PropertyValue, UserRecord};

/// The properties to write for one user, addressed however the sink can.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserUpdate {
    /// `None` for an anonymous user, whom only a sink keyed by `user_id` can address.
    pub identity: Option<String>,
    pub user_id: Option<String>,
    pub properties: Properties,
    /// When the check these properties come from was made. Pending writes stored before this field
    /// existed carry none: they are written as checked when read.
    #[serde(default = "Utc::now")]
    pub checked_at: DateTime<Utc>,
}

impl UserUpdate {
    /// What the state keeps this user under: see [`crate::user::state_key`].
    pub fn state_key(&self) -> Cow<'_, str> {
        crate::user::state_key(self.identity.as_deref(), self.user_id.as_deref())
    }
}

/// Users of a batch the destination refused one by one: their positions in the batch, each with the
/// destination's reason. The rest of the batch was acknowledged.
pub type Refused = Vec<(usize, String)>;

/// What a destination accepts of names, values and identities. Sources produce plain values and name
/// them for people; the names are checked against the rules before any run (every name a configured
/// source can write), and the values of each check are fitted to them before they are written.
#[derive(Debug, Clone, Copy, Default)]
pub struct ValueRules {
    /// The destination, for messages: `Heap`.
    pub destination: &'static str,
    /// Names the destination refuses in any casing (Heap's `id`).
    pub forbidden_names: &'static [&'static str],
    /// The destination's own properties, which a property of that name would overwrite.
    pub built_in_names: &'static [&'static str],
    /// The longest text value in bytes, or `None` for no limit.
    pub max_text_bytes: Option<usize>,
    /// The longest identity in characters, or `None` for no limit.
    pub max_identity_chars: Option<usize>,
}

impl ValueRules {
    /// Fits a check's values to the destination: lists joined with `, `, text cut at a character
    /// boundary to the text limit. Returns the names of the values cut, to be reported rather than
    /// lost silently.
    pub fn fit(&self, properties: &mut Properties) -> Vec<String> {
        let mut cut = Vec::new();
        for (name, value) in properties.iter_mut() {
            let was_cut = match value {
                PropertyValue::Number(_) => false,
                PropertyValue::Text(text) => self.max_text_bytes.is_some_and(|max| cut_text(text, max)),
                PropertyValue::List(items) => {
                    let (joined, was_cut) = join_items(items, self.max_text_bytes);
                    *value = PropertyValue::Text(joined);
                    was_cut
                }
            };
            if was_cut {
                cut.push(name.clone());
            }
        }
        cut
    }

    /// Whether the destination takes an identity of this length.
    pub fn identity_fits(&self, identity: &str) -> bool {
        self.max_identity_chars.is_none_or(|max| identity.chars().nth(max).is_none())
    }

    /// Why the destination cannot take a property called `name`, or `None`.
    pub fn name_problem(&self, name: &str) -> Option<String> {
        let destination = self.destination;
        if let Some(forbidden) =
            self.forbidden_names.iter().find(|forbidden| forbidden.eq_ignore_ascii_case(name))
        {
            return Some(format!("{destination} refuses the key {forbidden} in any casing"));
        }
        let own = self.built_in_names.iter().find(|own| own.eq_ignore_ascii_case(name))?;
        Some(format!("`{own}` is one of {destination}'s built-in user properties, which it would overwrite"))
    }
}

/// Cuts `text` at a character boundary to at most `max` bytes; whether it was cut.
fn cut_text(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    true
}

/// The items joined with `, ` while they fit in `max` bytes, and whether some were left out. Whole items
/// are left out rather than one cut in the middle, which would make a wrong domain or URL out of a
/// right one; only a first item too long on its own is cut.
fn join_items(items: &[String], max: Option<usize>) -> (String, bool) {
    let max = max.unwrap_or(usize::MAX);
    let whole = items.iter().map(|item| item.len() + 2).sum::<usize>().saturating_sub(2);
    let mut joined = String::with_capacity(whole.min(max));
    for (at, item) in items.iter().enumerate() {
        let separator = if at == 0 { "" } else { ", " };
        if joined.len() + separator.len() + item.len() > max {
            if at == 0 {
                joined.push_str(item);
                cut_text(&mut joined, max);
            }
            return (joined, true);
        }
        joined.push_str(separator);
        joined.push_str(item);
    }
    (joined, false)
}

/// A destination for user properties, built from a validated config by its connector crate.
#[async_trait]
pub trait Sink: Send + Sync + Debug {
    /// The config `type:` it was built from, such as `heap`.
    fn kind(&self) -> &'static str;
    /// The most users one `write` may carry.
    fn max_batch(&self) -> usize;
    /// Why this sink cannot address a user (Heap: one without identity, or with one too long), or `None`
    /// when it can. Such users are skipped before any lookup, counted under the reason, and never sent.
    fn cannot_address(&self, _user: &UserRecord) -> Option<&'static str> {
        None
    }
    /// Writes one batch; `Ok` means the destination acknowledged every user in it but those it
    /// refused one by one.
    async fn write(&self, batch: &[UserUpdate]) -> Result<Refused, ConnectorError>;
    /// One harmless live call proving the destination accepts this configuration.
    async fn check(&self) -> Result<String, ConnectorError>;
    /// What only the first sync can prove, once `checked_property` (written by every check) shows in
    /// the destination; `None` when [`Sink::check`] proves it all.
    fn first_sync_proves(&self, _checked_property: &str) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rules like Heap's: text below 1024 bytes, identities of at most 255 characters.
    const HEAP_LIKE: ValueRules = ValueRules {
        destination: "Heap",
        forbidden_names: &["id"],
        built_in_names: &[],
        max_text_bytes: Some(1023),
        max_identity_chars: Some(255),
    };

    fn fitted(rules: ValueRules, value: PropertyValue) -> (PropertyValue, Vec<String>) {
        let mut properties = Properties::from([("P".to_owned(), value)]);
        let cut = rules.fit(&mut properties);
        (properties.remove("P").unwrap(), cut)
    }

    fn list(items: impl IntoIterator<Item = String>) -> PropertyValue {
        PropertyValue::List(items.into_iter().collect())
    }

    #[test]
    fn a_long_list_loses_whole_items_not_half_of_one() {
        let aliases: Vec<String> = (0..100).map(|n| format!("alias-{n:03}.example.com")).collect();
        let (value, cut) = fitted(HEAP_LIKE, list(aliases.clone()));
        let joined = value.as_text().unwrap();
        let kept: Vec<&str> = joined.split(", ").collect();
        assert_eq!(kept, aliases[..kept.len()], "the first items, whole and in order");
        assert!(joined.len() <= 1023 && joined.len() + ", alias-000.example.com".len() > 1023, "{joined}");
        assert_eq!(kept.len(), 44, "23 bytes an item with its separator");
        assert_eq!(cut, ["P"]);
    }

    #[test]
    fn text_is_cut_at_a_character_boundary_to_1023_bytes_at_most() {
        let (value, cut) = fitted(HEAP_LIKE, PropertyValue::text("é".repeat(600)));
        assert_eq!(value.as_text().unwrap(), "é".repeat(511), "511 two-byte characters fit");
        assert_eq!(cut, ["P"]);
        let (value, cut) = fitted(HEAP_LIKE, PropertyValue::text("a".repeat(1024)));
        assert_eq!(value.as_text().unwrap().len(), 1023);
        assert_eq!(cut, ["P"]);
        let (value, cut) = fitted(HEAP_LIKE, PropertyValue::text("a".repeat(1023)));
        assert_eq!(value.as_text().unwrap().len(), 1023);
        assert!(cut.is_empty());
        let (value, cut) = fitted(HEAP_LIKE, list(["ü".repeat(700)]));
        assert_eq!(value.as_text().unwrap(), "ü".repeat(511), "a single item too long alone is cut");
        assert_eq!(cut, ["P"]);
    }

    #[test]
    fn without_a_limit_nothing_is_cut_and_lists_are_joined_whole() {
        let rules = ValueRules::default();
        let tech: Vec<String> = (0..10_000).map(|n| format!("tech-{n}")).collect();
        let (value, cut) = fitted(rules, list(tech.clone()));
        assert_eq!(value, PropertyValue::Text(tech.join(", ")));
        assert!(cut.is_empty());
        let (value, cut) = fitted(rules, PropertyValue::text("é".repeat(1000)));
        assert_eq!(value.as_text().unwrap().len(), 2000);
        assert!(cut.is_empty());
        let (value, cut) = fitted(rules, PropertyValue::from(7));
        assert_eq!(value, PropertyValue::from(7));
        assert!(cut.is_empty());
        assert!(rules.identity_fits(&"x".repeat(10_000)));
    }

    #[test]
    fn identities_fit_up_to_the_limit_in_characters() {
        assert!(HEAP_LIKE.identity_fits(&"ü".repeat(255)), "255 characters, 510 bytes");
        assert!(!HEAP_LIKE.identity_fits(&"a".repeat(256)));
    }
}
