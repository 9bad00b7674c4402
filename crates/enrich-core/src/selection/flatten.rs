//! From a JSON answer to properties an analytics tool accepts.
//!
//! Every non-null attribute the selection includes becomes one property: nested objects are walked,
//! so an attribute the provider adds tomorrow still comes through under a name derived from its path
//! (when the catalogue derives names), reported as derived. Values become numbers, strings or lists of
//! strings, whole: the sink's rules fit them to the destination.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::{Naming, PropertySelection};
use crate::{ListItems, Properties, PropertyKind, PropertyValue, Record};

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
            dotted: String::with_capacity(64),
            entry_values: self.entries.iter().map(|_| None).collect(),
            derived_values: Vec::new(),
            taken: HashSet::new(),
            numbered: HashMap::new(),
        };
        for (root, attributes) in roots {
            if let Some(attributes) = attributes {
                mapper.dotted.clear();
                mapper.dotted.push_str(root);
                let mut path = if root.is_empty() { Vec::new() } else { vec![root] };
                mapper.add_object(&mut path, attributes);
            }
        }
        mapper.finish()
    }
}

/// One answer on its way to a record. Looking an attribute up costs no allocation: its dotted path is
/// kept in one buffer, and a catalogued attribute's names come precomputed from the selection.
struct Mapper<'a> {
    selection: &'a PropertySelection,
    /// What the answer derived; its properties are put together at the end, by [`Self::finish`].
    record: Record,
    /// The dotted path of the attribute at hand (`company.site.url`).
    dotted: String,
    /// The value of each entry of the selection, in the selection's order of names; `None` until
    /// written. Only a key with a dot in it spelling the same path comes to an entry twice.
    entry_values: Vec<Option<PropertyValue>>,
    /// The properties under derived names.
    derived_values: Vec<(String, PropertyValue)>,
    /// The derived names written so far, in lower case: names differing only in case would read as
    /// one. Catalogued and renamed names are unique among the included attributes, and a derived name
    /// never takes one of those.
    taken: HashSet<String>,
    /// The last number appended to each name (in lower case) to tell attributes apart.
    numbered: HashMap<String, usize>,
}

impl<'a> Mapper<'a> {
    fn add_object<'v>(&mut self, path: &mut Vec<&'v str>, object: &'v Map<String, Value>) {
        for (key, value) in object {
            // Nothing to write, and no path to build.
            if value.is_null() {
                continue;
            }
            let parent = self.dotted.len();
            if !self.dotted.is_empty() {
                self.dotted.push('.');
            }
            self.dotted.push_str(key);
            path.push(key);
            match value {
                Value::Object(inner) => self.add_object(path, inner),
                _ => self.add_attribute(path, key, value),
            }
            path.pop();
            self.dotted.truncate(parent);
        }
    }

    fn add_attribute(&mut self, path: &[&str], key: &str, value: &Value) {
        let selection: &'a PropertySelection = self.selection;
        let place = selection.place(&self.dotted);
        let entry = place.map(|place| &selection.entries[place]);
        let included = entry.map_or_else(|| selection.matches(&self.dotted), |entry| entry.included);
        if !included {
            return;
        }
        // Identifiers and codes (`twitter.id`, which arrives as a number or a string; `category.sicCode`)
        // are text however they arrive: each property keeps one type, and nobody sums them.
        let keeps_numbers = match entry.and_then(|entry| entry.known) {
            Some(kind) => kind == PropertyKind::Number,
            None => !key.eq_ignore_ascii_case("id"),
        };
        let Some(value) = self.convert(keeps_numbers, value) else { return };
        let unwritten = place.filter(|&place| self.entry_values[place].is_none());
        let (name, catalogued) = match (unwritten, selection.catalogue.naming) {
            (Some(place), _) => {
                self.entry_values[place] = Some(value);
                let entry = &selection.entries[place];
                (entry.name.as_str(), entry.known.is_some())
            }
            (None, Some(naming)) => {
                let name = self.derived_name(&naming, path);
                self.taken.insert(name.to_lowercase());
                self.derived_values.push((name, value));
                (self.derived_values[self.derived_values.len() - 1].0.as_str(), false)
            }
            (None, None) => return,
        };
        // Whatever is not written under its catalogue name is reported, renamed or not, so that
        // listings can show attributes the catalogue does not know yet.
        if !catalogued {
            self.record.derived.push((self.dotted.clone(), name.to_owned()));
        }
    }

    /// The record, its properties collected at once: the entries' come in the order of their names,
    /// so sorting them costs one comparison each, and the tree is built in bulk rather than searched
    /// at every insertion.
    fn finish(self) -> Record {
        let Self { selection, mut record, entry_values, derived_values, .. } = self;
        let mut properties = Vec::with_capacity(entry_values.len() + derived_values.len());
        let written = selection.entries.iter().zip(entry_values);
        properties
            .extend(written.filter_map(|(entry, value)| value.map(|value| (entry.name.clone(), value))));
        properties.extend(derived_values);
        record.properties = Properties::from_iter(properties);
        record
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

    /// The property value of one non-object, non-null attribute; `None` when there is nothing to write
    /// (blank, empty list, a boolean placeholder).
    fn convert(&self, keeps_numbers: bool, value: &Value) -> Option<PropertyValue> {
        match value {
            Value::Null | Value::Object(_) => None,
            Value::Bool(flag) => self.booleans_are_values().then(|| PropertyValue::text(flag.to_string())),
            Value::Number(number) if keeps_numbers => Some(PropertyValue::Number(number.clone())),
            Value::Number(number) => Some(PropertyValue::text(number.to_string())),
            Value::String(text) if is_blank(text) => None,
            Value::String(text) => Some(PropertyValue::text(text.as_str())),
            Value::Array(items) => {
                let mut list = ListItems::default();
                self.add_items(&mut list, items);
                list.finish()
            }
        }
    }

    fn booleans_are_values(&self) -> bool {
        self.selection.catalogue.booleans_are_values
    }

    /// Adds the text of a list's items, nested lists included, to `list`.
    fn add_items(&self, list: &mut ListItems, items: &[Value]) {
        for item in items {
            match item {
                Value::Null => {}
                Value::Bool(flag) if self.booleans_are_values() => {
                    list.add(if *flag { "true" } else { "false" })
                }
                Value::Bool(_) => {}
                Value::Number(number) => list.add(&number.to_string()),
                Value::String(text) => list.add(text),
                Value::Array(inner) => self.add_items(list, inner),
                Value::Object(object) => {
                    if let Some(summary) = summarize(object) {
                        list.add(&summary);
                    }
                }
            }
        }
    }
}

/// Whether a text has nothing but white space: `trim().is_empty()`, stopping at the first character
/// that is not.
fn is_blank(text: &str) -> bool {
    text.chars().all(char::is_whitespace)
}

/// An object in an array, as its meaningful field, else as compact JSON; `None` when all is null.
fn summarize(object: &Map<String, Value>) -> Option<Cow<'_, str>> {
    let meaningful = MEANINGFUL_FIELDS.iter().find_map(|field| match object.get(*field) {
        Some(Value::String(text)) if !text.trim().is_empty() => Some(Cow::Borrowed(text.as_str())),
        Some(Value::Number(number)) => Some(Cow::Owned(number.to_string())),
        _ => None,
    });
    meaningful.or_else(|| {
        (!object.values().all(Value::is_null)).then(|| Cow::Owned(Value::from(object.clone()).to_string()))
    })
}
