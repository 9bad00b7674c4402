//! Property values as analytics tools accept them: numbers, and strings below a length limit.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::digest::stable_hash;

/// The properties written for one user, ordered by name so output and hashes are deterministic.
pub type Properties = BTreeMap<String, PropertyValue>;

/// Strings are cut so that they stay below this many bytes (and so below as many characters).
pub const MAX_TEXT_BYTES: usize = 1023;

/// What a completed check produced for one key: the properties to write, and the names of the values
/// that had to be cut to fit, so a run can report cuts instead of losing data silently.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    pub properties: Properties,
    pub cut: Vec<String>,
    /// Properties named by derivation from an attribute the source's catalogue does not know yet, as
    /// (attribute path, property name).
    pub derived: Vec<(String, String)>,
}

/// The kind of value a property holds, as a listing shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PropertyKind {
    Text,
    Number,
    /// Several values joined with `, `.
    List,
    /// `true` or `false`.
    Flag,
    /// An RFC 3339 date and time.
    Date,
    Url,
}

impl fmt::Display for PropertyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Number => "number",
            Self::List => "list",
            Self::Flag => "flag",
            Self::Date => "date",
            Self::Url => "URL",
        })
    }
}

/// One property a source writes, for listings and documentation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertyInfo {
    /// The property's name in the destination, e.g. `Company Website URL`.
    pub name: String,
    /// The source attribute it comes from (`company.site.url`), or `None` for properties the source
    /// writes about the check itself (`Clearbit: Date Last Checked`).
    pub path: Option<String>,
    pub kind: PropertyKind,
    /// One line a marketer understands.
    pub description: String,
    /// Named by derivation from an attribute the catalogue does not know.
    pub derived: bool,
}

/// A property worth breaking users down by in reports: the match rate, industry, company size, tech.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// What the breakdown is called, whatever the property's configured name: `Company Industry`.
    pub title: String,
    /// The property as this connection names it.
    pub property: String,
    /// The value is a `, `-joined list whose items are counted one by one (`Company Tech`).
    pub list: bool,
}

/// One property value: a number or a string, nothing else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PropertyValue {
    Number(serde_json::Number),
    Text(String),
}

impl PropertyValue {
    /// A text value, cut at a character boundary below [`MAX_TEXT_BYTES`]. The flag says whether
    /// it was cut, so that callers can report it rather than lose data silently.
    pub fn text(value: impl Into<String>) -> (Self, bool) {
        let mut value = value.into();
        let cut = value.len() > MAX_TEXT_BYTES;
        if cut {
            let mut end = MAX_TEXT_BYTES;
            while !value.is_char_boundary(end) {
                end -= 1;
            }
            value.truncate(end);
        }
        (Self::Text(value), cut)
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text),
            Self::Number(_) => None,
        }
    }
}

/// The text of a list's items without blanks or repeats, joined with `, ` within the length limit, for
/// any source that flattens lists. Whole items beyond the limit are left out rather than one cut in the
/// middle, which would make a wrong domain or URL out of a right one.
#[derive(Debug, Default)]
pub struct JoinedList {
    joined: String,
    /// Where each item joined so far is in `joined` (at most the few that fit in the limit), and their
    /// hashes: a repeat is found without a copy of each item, and in constant time however long the list.
    items: Vec<(usize, usize)>,
    hashes: HashSet<u64>,
    /// An item did not fit: the rest of the list is left out.
    cut: bool,
}

impl JoinedList {
    /// Adds one item, unless it is blank, a repeat, or the list is full.
    pub fn add(&mut self, part: &str) {
        if self.cut || part.trim().is_empty() || self.is_repeat(part) {
            return;
        }
        let separator = if self.joined.is_empty() { "" } else { ", " };
        if self.joined.len() + separator.len() + part.len() > MAX_TEXT_BYTES {
            self.cut = true;
            // Only a single part too long for the limit on its own is cut.
            if self.joined.is_empty() {
                self.joined = part.to_owned();
            }
            return;
        }
        self.joined.push_str(separator);
        let start = self.joined.len();
        self.joined.push_str(part);
        self.items.push((start, self.joined.len()));
        self.hashes.insert(stable_hash([part.as_bytes()]));
    }

    fn is_repeat(&self, part: &str) -> bool {
        self.hashes.contains(&stable_hash([part.as_bytes()]))
            && self.items.iter().any(|&(start, end)| self.joined[start..end] == *part)
    }

    /// Whether an item did not fit: nothing more is added.
    pub fn is_full(&self) -> bool {
        self.cut
    }

    /// The value and whether it was cut; `None` when no item had text.
    pub fn finish(self) -> Option<(PropertyValue, bool)> {
        if self.joined.is_empty() {
            return None;
        }
        let (value, cut_text) = PropertyValue::text(self.joined);
        Some((value, self.cut || cut_text))
    }
}

impl From<i64> for PropertyValue {
    fn from(value: i64) -> Self {
        Self::Number(value.into())
    }
}

impl fmt::Display for PropertyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(number) => number.fmt(f),
            Self::Text(text) => f.write_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        let long = "é".repeat(600); // 1200 bytes
        let (value, cut) = PropertyValue::text(long);
        assert!(cut);
        let text = value.as_text().unwrap();
        assert!(text.len() <= MAX_TEXT_BYTES);
        assert_eq!(text.len(), 1022, "511 two-byte characters fit");
        let (short, cut) = PropertyValue::text("short");
        assert!(!cut);
        assert_eq!(short, PropertyValue::Text("short".into()));
    }

    #[test]
    fn serializes_as_bare_number_or_string() {
        let mut properties = Properties::new();
        properties.insert("Company Employees".into(), PropertyValue::from(1001));
        properties.insert("Company Name".into(), PropertyValue::text("Calvin Klein").0);
        assert_eq!(
            serde_json::to_string(&properties).unwrap(),
            r#"{"Company Employees":1001,"Company Name":"Calvin Klein"}"#
        );
    }
}
