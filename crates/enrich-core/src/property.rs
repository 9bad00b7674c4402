//! Property values as sources produce them: numbers, text and lists, with no destination's limits (a
//! sink's [`crate::ValueRules`] fit them to what it takes).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::digest::stable_hash;

/// The properties written for one user, ordered by name so output and hashes are deterministic.
pub type Properties = BTreeMap<String, PropertyValue>;

/// What a completed check produced for one key: the properties to write, whole, as the source gave them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    pub properties: Properties,
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

/// One property value: a number, a text or a list of texts, nothing else. A sink receives numbers and
/// text only: the engine joins lists by the sink's [`crate::ValueRules`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PropertyValue {
    Number(serde_json::Number),
    Text(String),
    /// A list's items in order, without blanks or repeats (a JSON array).
    List(Vec<String>),
}

impl PropertyValue {
    pub fn text(value: impl Into<String>) -> Self {
        Self::Text(value.into())
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text),
            Self::Number(_) | Self::List(_) => None,
        }
    }
}

/// A list's items without blanks or repeats, in order, for any source that flattens lists.
#[derive(Debug, Default)]
pub struct ListItems {
    items: Vec<String>,
    /// Once the list is long, each item's hash and where the first item with that hash is: a repeat is
    /// found in constant time however long the list. Short lists, the usual ones, need no index.
    first_with_hash: HashMap<u64, usize>,
}

/// Lists shorter than this are searched for a repeat item by item.
const INDEXED_FROM: usize = 16;

impl ListItems {
    /// Adds one item, unless it is blank or a repeat.
    pub fn add(&mut self, item: &str) {
        if item.trim().is_empty() || self.contains(item) {
            return;
        }
        self.items.push(item.to_owned());
        let count = self.items.len();
        if count >= INDEXED_FROM {
            // The whole list once it becomes long, then each new item.
            let first_unindexed = if count == INDEXED_FROM { 0 } else { count - 1 };
            for at in first_unindexed..count {
                self.first_with_hash.entry(stable_hash([self.items[at].as_bytes()])).or_insert(at);
            }
        }
    }

    fn contains(&self, item: &str) -> bool {
        let same = |known: &String| known == item;
        if self.items.len() < INDEXED_FROM {
            return self.items.iter().any(same);
        }
        // Another item with the same hash is told apart by comparing with every item.
        self.first_with_hash
            .get(&stable_hash([item.as_bytes()]))
            .is_some_and(|&first| self.items[first] == item || self.items.iter().any(same))
    }

    /// The list; `None` when no item had text.
    pub fn finish(self) -> Option<PropertyValue> {
        (!self.items.is_empty()).then_some(PropertyValue::List(self.items))
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
            Self::List(items) => f.write_str(&items.join(", ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_keeps_its_first_distinct_items_in_order() {
        let mut list = ListItems::default();
        for item in ["b", " ", "a", "b", "", "c", "a"] {
            list.add(item);
        }
        assert_eq!(list.finish(), Some(PropertyValue::List(vec!["b".into(), "a".into(), "c".into()])));
        let mut blank = ListItems::default();
        blank.add("  ");
        assert_eq!(blank.finish(), None);
        // Long lists are indexed: repeats of items before and after the index was built are dropped.
        let mut long = ListItems::default();
        let items: Vec<String> = (0..40).map(|n| format!("item-{n}")).collect();
        for item in items.iter().chain(items.iter().rev()) {
            long.add(item);
        }
        assert_eq!(long.finish(), Some(PropertyValue::List(items)));
    }

    #[test]
    fn serializes_as_bare_number_string_or_array() {
        let mut properties = Properties::new();
        properties.insert("Company Employees".into(), PropertyValue::from(1001));
        properties.insert("Company Name".into(), PropertyValue::text("Calvin Klein"));
        properties.insert("Company Tech".into(), PropertyValue::List(vec!["nginx".into(), "rust".into()]));
        let json = serde_json::to_string(&properties).unwrap();
        assert_eq!(
            json,
            r#"{"Company Employees":1001,"Company Name":"Calvin Klein","Company Tech":["nginx","rust"]}"#
        );
        assert_eq!(serde_json::from_str::<Properties>(&json).unwrap(), properties);
    }
}
