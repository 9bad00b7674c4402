//! From a combined `{person, company}` response to properties an analytics tool accepts.
//!
//! Every non-null attribute becomes one property, known or not: nested objects are walked, so an
//! attribute Clearbit adds tomorrow still comes through under a name derived from its path. Values
//! become numbers or strings below the length limit, nothing else.

use enrich_core::property::MAX_TEXT_BYTES;
use enrich_core::{Properties, PropertyValue};
use serde_json::{Map, Value};

use crate::naming::{path_name, preferred_name};

/// The properties of one response, and which of them had to be cut to fit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mapping {
    pub properties: Properties,
    /// Names of the properties whose text was cut at the length limit.
    pub truncated: Vec<String>,
}

/// Maps a combined response; a missing or null `person` or `company` contributes nothing.
pub fn map_combined(response: &Value) -> Mapping {
    let mut mapping = Mapping::default();
    for record in ["person", "company"] {
        if let Some(Value::Object(attributes)) = response.get(record) {
            mapping.add_object(&mut vec![record], attributes);
        }
    }
    mapping
}

/// Fields that say what an object in an array is, in order of preference: a Gravatar avatar is its
/// `url`, a Gravatar link its `value`.
const MEANINGFUL_FIELDS: &[&str] = &["url", "value", "name", "handle", "domain"];

impl Mapping {
    fn add_object<'a>(&mut self, path: &mut Vec<&'a str>, object: &'a Map<String, Value>) {
        for (key, value) in object {
            path.push(key);
            match value {
                Value::Object(inner) => self.add_object(path, inner),
                _ => {
                    if let Some((value, cut)) = convert(key, value) {
                        self.add(path, value, cut);
                    }
                }
            }
            path.pop();
        }
    }

    fn add(&mut self, path: &[&str], value: PropertyValue, cut: bool) {
        let name = self.free_name(path);
        if cut {
            self.truncated.push(name.clone());
        }
        self.properties.insert(name, value);
    }

    /// The preferred name, else the name of the whole path, else that name numbered: names stay unique
    /// however Clearbit's attributes evolve.
    fn free_name(&self, path: &[&str]) -> String {
        let preferred = preferred_name(path);
        if !self.properties.contains_key(&preferred) {
            return preferred;
        }
        let full = path_name(path);
        let mut candidate = full.clone();
        let mut number = 2;
        while self.properties.contains_key(&candidate) {
            candidate = format!("{full} {number}");
            number += 1;
        }
        candidate
    }
}

/// The property value of one non-object attribute, and whether its text was cut; `None` when there is
/// nothing to write (null, blank, empty list). `key` is the attribute's own name.
fn convert(key: &str, value: &Value) -> Option<(PropertyValue, bool)> {
    match value {
        Value::Null | Value::Object(_) => None,
        Value::Bool(flag) => Some(PropertyValue::text(flag.to_string())),
        // Identifiers such as `twitter.id` arrive as numbers or strings; as text they stay one property
        // of one type, and nobody sums them.
        Value::Number(number) if key == "id" => Some(PropertyValue::text(number.to_string())),
        Value::Number(number) => Some((PropertyValue::Number(number.clone()), false)),
        Value::String(text) if text.trim().is_empty() => None,
        Value::String(text) => Some(PropertyValue::text(text.as_str())),
        Value::Array(items) => {
            let mut parts = Vec::new();
            flatten(items, &mut parts);
            (!parts.is_empty()).then(|| join_within_limit(&parts))
        }
    }
}

/// The text of every item, nested arrays included, without blanks or repeats.
fn flatten(items: &[Value], parts: &mut Vec<String>) {
    for item in items {
        let part = match item {
            Value::Null => None,
            Value::Bool(flag) => Some(flag.to_string()),
            Value::Number(number) => Some(number.to_string()),
            Value::String(text) => Some(text.clone()),
            Value::Array(inner) => {
                flatten(inner, parts);
                None
            }
            Value::Object(object) => summarize(object),
        };
        if let Some(part) = part.filter(|part| !part.trim().is_empty() && !parts.contains(part)) {
            parts.push(part);
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

/// The parts joined with `, `, leaving out whole parts beyond the length limit rather than cutting one
/// in the middle, which would make a wrong domain or URL out of a right one.
fn join_within_limit(parts: &[String]) -> (PropertyValue, bool) {
    let mut joined = String::new();
    for part in parts {
        let separator = if joined.is_empty() { "" } else { ", " };
        if joined.len() + separator.len() + part.len() > MAX_TEXT_BYTES {
            // Only a single part too long for the limit on its own is cut.
            let (value, _) = if joined.is_empty() {
                PropertyValue::text(part.as_str())
            } else {
                PropertyValue::text(joined)
            };
            return (value, true);
        }
        joined.push_str(separator);
        joined.push_str(part);
    }
    PropertyValue::text(joined)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn person(attributes: &Value) -> Mapping {
        map_combined(&json!({ "person": attributes, "company": null }))
    }

    fn text(value: &str) -> PropertyValue {
        PropertyValue::Text(value.into())
    }

    #[test]
    fn booleans_become_words() {
        let mapping = person(&json!({ "fuzzy": true, "emailProvider": false }));
        assert_eq!(mapping.properties["Person Fuzzy Match"], text("true"));
        assert_eq!(mapping.properties["Person Free Email Provider"], text("false"));
    }

    #[test]
    fn numbers_stay_numbers_up_to_64_bits() {
        let mapping = map_combined(&json!({ "company": {
            "metrics": { "raised": 10_610_000_000_i64, "marketCap": u64::MAX, "employees": 20313 },
            "geo": { "lat": 37.7752315 },
            "utcOffset": -7,
        }}));
        let number = |name: &str| match &mapping.properties[name] {
            PropertyValue::Number(number) => number.clone(),
            other => panic!("{name} is {other:?}"),
        };
        assert_eq!(number("Company Funds Raised").as_i64(), Some(10_610_000_000));
        assert_eq!(number("Company Market Cap").as_u64(), Some(u64::MAX));
        assert_eq!(number("Company Employees").as_u64(), Some(20313));
        assert_eq!(number("Company Latitude").as_f64(), Some(37.7752315));
        assert_eq!(number("Company UTC Offset").as_i64(), Some(-7));
    }

    #[test]
    fn social_ids_are_text_whether_sent_as_numbers_or_strings() {
        let mapping = person(&json!({ "twitter": { "id": 2006261 }, "github": { "id": "2142" } }));
        assert_eq!(mapping.properties["Person Twitter ID"], text("2006261"));
        assert_eq!(mapping.properties["Person GitHub ID"], text("2142"));
        let big = person(&json!({ "twitter": { "id": 1_234_567_890_123_456_789_u64 } }));
        assert_eq!(big.properties["Person Twitter ID"], text("1234567890123456789"));
    }

    #[test]
    fn nulls_blanks_and_empty_lists_are_left_out() {
        let mapping = person(&json!({
            "bio": null, "site": "", "avatar": "  ", "gravatar": { "avatars": [], "urls": [null, ""] },
            "facebook": { "handle": null }, "github": null,
        }));
        assert_eq!(mapping, Mapping::default());
    }

    #[test]
    fn lists_are_joined_without_repeats() {
        let mapping = map_combined(&json!({ "company": {
            "tech": ["mixpanel", "nginx", "mixpanel"],
            "category": { "sic4Codes": [4121, 7372] },
            "nested": [["a", "b"], ["c"], []],
        }}));
        assert_eq!(mapping.properties["Company Tech"], text("mixpanel, nginx"));
        assert_eq!(mapping.properties["Company SIC4 Codes"], text("4121, 7372"));
        assert_eq!(mapping.properties["Company Nested"], text("a, b, c"));
    }

    #[test]
    fn objects_in_lists_are_reduced_to_their_meaningful_field() {
        let mapping = person(&json!({ "gravatar": {
            "avatars": [{ "url": "http://a/1", "type": "thumbnail" }, { "url": "http://a/2" }],
            "urls": [{ "value": "http://alexmaccaw.com", "title": "Personal Website" }],
        }, "accounts": [{ "service": "x", "followers": 3 }, { "url": null }] }));
        assert_eq!(mapping.properties["Person Gravatar Avatars"], text("http://a/1, http://a/2"));
        assert_eq!(mapping.properties["Person Gravatar URLs"], text("http://alexmaccaw.com"));
        assert_eq!(mapping.properties["Person Accounts"], text(r#"{"followers":3,"service":"x"}"#));
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary_and_reported() {
        let bio = "é".repeat(600); // 1200 bytes
        let mapping = person(&json!({ "bio": bio }));
        let cut = mapping.properties["Person Bio"].as_text().unwrap();
        assert_eq!(cut, "é".repeat(511));
        assert_eq!(mapping.truncated, ["Person Bio"]);
    }

    #[test]
    fn long_lists_lose_whole_items_not_half_of_one() {
        let aliases: Vec<String> = (0..100).map(|n| format!("alias-{n:03}.example.com")).collect();
        let mapping = map_combined(&json!({ "company": { "domainAliases": aliases } }));
        let joined = mapping.properties["Company Domain Aliases"].as_text().unwrap();
        assert!(joined.len() <= MAX_TEXT_BYTES);
        assert!(joined.ends_with(".example.com"), "{joined}");
        assert!(joined.split(", ").all(|alias| aliases.contains(&alias.to_owned())));
        assert_eq!(mapping.truncated, ["Company Domain Aliases"]);
    }

    #[test]
    fn a_single_overlong_item_is_cut() {
        let mapping = person(&json!({ "tags": ["ü".repeat(700)] }));
        assert_eq!(mapping.properties["Person Tags"].as_text().unwrap().len(), 1022);
        assert_eq!(mapping.truncated, ["Person Tags"]);
    }

    #[test]
    fn colliding_names_fall_back_to_the_whole_path_then_a_number() {
        // Attributes are walked in key order: `category.industry` claims "Company Industry" before a
        // hypothetical top-level `industry`, and `employees` claims "Company Employees" before `metrics`.
        let mapping = map_combined(&json!({ "company": {
            "category": { "industry": "Software" },
            "industry": "Hardware",
            "metrics": { "employees": 10 },
            "employees": 12,
        }}));
        let names: Vec<(&str, String)> =
            mapping.properties.iter().map(|(name, value)| (name.as_str(), value.to_string())).collect();
        assert_eq!(
            names,
            [
                ("Company Employees", "12".to_owned()),
                ("Company Industry", "Software".to_owned()),
                // The whole path says "Company Industry" too.
                ("Company Industry 2", "Hardware".to_owned()),
                ("Company Metrics Employees", "10".to_owned()),
            ]
        );
    }

    #[test]
    fn anything_but_an_object_for_person_or_company_is_ignored() {
        assert_eq!(map_combined(&json!({ "person": "x", "company": [1] })), Mapping::default());
        assert_eq!(map_combined(&json!(null)), Mapping::default());
    }
}
