//! From a JSON answer to properties an analytics tool accepts.
//!
//! Every non-null attribute the selection includes becomes one property: nested objects are walked,
//! so an attribute the provider adds tomorrow still comes through under a name derived from its path
//! (when the catalogue derives names), reported as derived. Values become numbers or strings, lists
//! are joined, nothing else.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::{Naming, PropertySelection};
use crate::{JoinedList, PropertyKind, PropertyValue, Record};

/// Fields that say what an object in an array is, in order of preference: a Gravatar avatar is its
/// `url`, a Gravatar link its `value`.
const MEANINGFUL_FIELDS: &[&str] = &["url", "value", "name", "handle", "domain"];

impl PropertySelection {
    /// Maps the attributes under each root object (`("person", …)`; `""` for an answer whose fields are
    /// the attributes) the selection includes; a missing root contributes nothing.
    pub fn map<'v>(
        &self,
        roots: impl IntoIterator<Item = (&'static str, Option<&'v Map<String, Value>>)>,
    ) -> Record {
        let mut mapper = Mapper {
            selection: self,
            record: Record::default(),
            taken: HashSet::new(),
            numbered: HashMap::new(),
        };
        for (root, attributes) in roots {
            if let Some(attributes) = attributes {
                let mut path = if root.is_empty() { Vec::new() } else { vec![root] };
                mapper.add_object(&mut path, attributes);
            }
        }
        mapper.record
    }
}

/// One answer on its way to a record.
struct Mapper<'a> {
    selection: &'a PropertySelection,
    record: Record,
    /// The names written so far, in lower case: names differing only in case would read as one.
    taken: HashSet<String>,
    /// The last number appended to each name (in lower case) to tell attributes apart.
    numbered: HashMap<String, usize>,
}

impl Mapper<'_> {
    fn add_object<'v>(&mut self, path: &mut Vec<&'v str>, object: &'v Map<String, Value>) {
        for (key, value) in object {
            path.push(key);
            match value {
                Value::Object(inner) => self.add_object(path, inner),
                _ => {
                    let dotted = path.join(".");
                    if self.selection.includes(&dotted)
                        && let Some((value, cut)) = self.convert(&dotted, key, value)
                    {
                        self.add(path, dotted, value, cut);
                    }
                }
            }
            path.pop();
        }
    }

    fn add(&mut self, path: &[&str], dotted: String, value: PropertyValue, cut: bool) {
        let catalogue = self.selection.catalogue;
        // A fixed name is taken only when a key with a dot in it spelled the same path.
        let fixed = self.selection.name_of(&dotted).filter(|name| !self.taken.contains(&name.to_lowercase()));
        let name = match (fixed, catalogue.naming) {
            (Some(name), _) => name.to_owned(),
            (None, Some(naming)) => self.derived_name(&naming, path),
            (None, None) => return,
        };
        // Whatever is not written under its catalogue name is reported, renamed or not, so that
        // listings can show attributes the catalogue does not know yet.
        if fixed.is_none() || catalogue.known(&dotted).is_none() {
            self.record.derived.push((dotted, name.clone()));
        }
        self.taken.insert(name.to_lowercase());
        if cut {
            self.record.cut.push(name.clone());
        }
        self.record.properties.insert(name, value);
    }

    /// The preferred name, else the name of the whole path, else that name numbered: clear of every
    /// catalogue name and rename, and of the names already written, however the attributes evolve.
    fn derived_name(&mut self, naming: &Naming, path: &[&str]) -> String {
        let free = |name: &str| {
            let name = name.to_lowercase();
            !self.taken.contains(&name) && !self.selection.reserves(&name)
        };
        let preferred = naming.preferred_name(path);
        if free(&preferred) {
            return preferred;
        }
        let full = naming.path_name(path);
        if free(&full) {
            return full;
        }
        // Numbering goes on from the last number given to this name, so that many attributes with one
        // name (`a_b`, `a__b`, `aB`…) cost one try each, not one per name before them.
        let key = full.to_lowercase();
        let mut number = self.numbered.get(&key).copied().unwrap_or(1);
        let candidate = loop {
            number += 1;
            let candidate = format!("{full} {number}");
            if free(&candidate) {
                break candidate;
            }
        };
        self.numbered.insert(key, number);
        candidate
    }

    /// Whether a number sent for the attribute at `path` stays a number. Identifiers and codes
    /// (`twitter.id`, which arrives as a number or a string; `category.sicCode`) are text however they
    /// arrive: each property keeps one type, and nobody sums them.
    fn keeps_numbers(&self, path: &str, key: &str) -> bool {
        match self.selection.catalogue.known(path) {
            Some(attribute) => attribute.kind == PropertyKind::Number,
            None => !key.eq_ignore_ascii_case("id"),
        }
    }

    /// The property value of one non-object attribute, and whether its text was cut; `None` when there
    /// is nothing to write (null, blank, empty list, a boolean placeholder). `key` is the last segment
    /// of `path`.
    fn convert(&self, path: &str, key: &str, value: &Value) -> Option<(PropertyValue, bool)> {
        match value {
            Value::Null | Value::Object(_) => None,
            Value::Bool(flag) => self.booleans_are_values().then(|| PropertyValue::text(flag.to_string())),
            Value::Number(number) if self.keeps_numbers(path, key) => {
                Some((PropertyValue::Number(number.clone()), false))
            }
            Value::Number(number) => Some(PropertyValue::text(number.to_string())),
            Value::String(text) if text.trim().is_empty() => None,
            Value::String(text) => Some(PropertyValue::text(text.as_str())),
            Value::Array(items) => {
                let mut list = JoinedList::default();
                self.add_items(&mut list, items);
                list.finish()
            }
        }
    }

    fn booleans_are_values(&self) -> bool {
        self.selection.catalogue.booleans_are_values
    }

    /// Adds the text of a list's items, nested lists included, to `list`; reading stops once an item
    /// did not fit, so a list of any length costs no more than its first kilobyte.
    fn add_items(&self, list: &mut JoinedList, items: &[Value]) {
        for item in items {
            if list.is_full() {
                return;
            }
            let part = match item {
                Value::Null => None,
                Value::Bool(flag) => self.booleans_are_values().then(|| flag.to_string()),
                Value::Number(number) => Some(number.to_string()),
                Value::String(text) => Some(text.clone()),
                Value::Array(inner) => {
                    self.add_items(list, inner);
                    None
                }
                Value::Object(object) => summarize(object),
            };
            if let Some(part) = part {
                list.add(part);
            }
        }
    }
}

/// An object in an array, as its meaningful field, else as compact JSON; `None` when all is null.
fn summarize(object: &Map<String, Value>) -> Option<String> {
    let meaningful = MEANINGFUL_FIELDS.iter().find_map(|field| match object.get(*field) {
        Some(Value::String(text)) if !text.trim().is_empty() => Some(text.clone()),
        Some(Value::Number(number)) => Some(number.to_string()),
        _ => None,
    });
    meaningful
        .or_else(|| (!object.values().all(Value::is_null)).then(|| Value::from(object.clone()).to_string()))
}
