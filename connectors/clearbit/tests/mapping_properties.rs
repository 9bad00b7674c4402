//! Whatever JSON Clearbit sends under `person` and `company`, the mapping gives numbers, texts and lists
//! of texts, whole (a sink's rules fit them), under names Heap accepts, one property per attribute, and
//! never panics.

use std::collections::HashSet;

use enrich_clearbit::{every_attribute, map_combined};
use enrich_core::{Properties, PropertyValue, ValueRules};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Keys Clearbit uses, so that generated records reach catalogued attributes and their groups, and
/// keys that spell the same name or path in other ways (case, underscores, dots), so that collisions are
/// frequent.
const KEYS: &[&str] = &[
    "id",
    "ID",
    "Id",
    "name",
    "fullName",
    "site",
    "url",
    "site.url",
    "geo",
    "city",
    "geo.city",
    "lat",
    "metrics",
    "employees",
    "metrics.employees",
    "roleCounts",
    "marketing",
    "twitter",
    "avatars",
    "value",
    "emailProvider",
    "newThing",
    "new_thing",
    "new.thing",
    "NewThing",
    "",
];

/// Words Clearbit's names spell with inner capitals, as brands do.
const BRANDS: &[&str] = &["GitHub", "LinkedIn"];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(str::to_owned),
        1 => "[a-zA-Z0-9_. -]{0,12}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |number| number.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        // Multibyte text around and beyond the length limit.
        "[aé日😀 ,]{300,1200}".prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn record() -> impl Strategy<Value = Value> {
    let attributes = || {
        prop_oneof![
            1 => Just(Value::Null),
            4 => prop::collection::vec((key(), json_value()), 0..10)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    };
    (attributes(), attributes()).prop_map(|(person, company)| json!({ "person": person, "company": company }))
}

/// Attributes with something to write: every value that is not an object, not null, not blank and not
/// a list of nothing.
fn written_attributes(value: &Value) -> usize {
    match value {
        Value::Object(object) => object.values().map(written_attributes).sum(),
        leaf => usize::from(!is_blank(leaf)),
    }
}

fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.trim().is_empty(),
        Value::Array(items) => items.iter().all(is_blank),
        // An object in a list is blank when all of its fields are null.
        Value::Object(object) => object.values().all(Value::is_null),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

fn is_camel_case(word: &str) -> bool {
    let chars: Vec<char> = word.chars().collect();
    !BRANDS.contains(&word) && chars.windows(2).any(|pair| pair[0].is_lowercase() && pair[1].is_uppercase())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn writes_plain_values_one_property_per_attribute(response in record()) {
        let record = map_combined(&response, &every_attribute());
        for (name, value) in &record.properties {
            prop_assert!(!name.trim().eq_ignore_ascii_case("id"), "{name:?}");
            prop_assert!(!name.contains('.'), "{name:?}");
            prop_assert!(!name.split(' ').any(is_camel_case), "{name:?}");
            if let PropertyValue::List(items) = value {
                let distinct: HashSet<&String> = items.iter().collect();
                prop_assert!(!items.is_empty() && distinct.len() == items.len(), "{name}: {items:?}");
                prop_assert!(items.iter().all(|item| !item.trim().is_empty()), "{name}: {items:?}");
            }
        }
        let lower_case: HashSet<String> = record.properties.keys().map(|name| name.to_lowercase()).collect();
        prop_assert_eq!(lower_case.len(), record.properties.len(), "names differing only in case");
        // One property per attribute, plus `Clearbit: Match` (and `Clearbit: Company Source` with a
        // company): no two attributes were merged into one.
        let attributes = written_attributes(&response["person"]) + written_attributes(&response["company"]);
        let about_the_check = 1 + usize::from(response["company"].is_object());
        prop_assert_eq!(record.properties.len(), attributes + about_the_check);
        for (_, name) in &record.derived {
            prop_assert!(record.properties.contains_key(name), "{name} is reported but not written");
        }
    }

    #[test]
    fn a_list_is_given_whole_and_a_sinks_limit_keeps_its_first_items_that_fit(
        items in prop::collection::vec(prop_oneof![
            4 => "[a-c]{1,3}",
            // At most 900 bytes: an item too long on its own is a unit test of its own.
            1 => "[aé日 ]{0,300}",
        ], 0..400),
    ) {
        let record = map_combined(&json!({ "company": { "tech": items } }), &every_attribute());
        // Any destination's limit on text, above the longest item.
        let limit = 1000;
        // The rule, written plainly: distinct non-blank items, joined until the next would not fit.
        let mut distinct: Vec<&str> = Vec::new();
        for item in &items {
            if !item.trim().is_empty() && !distinct.contains(&item.as_str()) {
                distinct.push(item);
            }
        }
        let mut expected = String::new();
        let mut cut = false;
        for item in &distinct {
            let separator = if expected.is_empty() { "" } else { ", " };
            if expected.len() + separator.len() + item.len() > limit {
                cut = true;
                break;
            }
            expected = format!("{expected}{separator}{item}");
        }
        match record.properties.get("Company Tech") {
            None => prop_assert!(distinct.is_empty()),
            Some(value) => {
                let whole: Vec<String> = distinct.iter().map(|item| (*item).to_owned()).collect();
                prop_assert_eq!(value, &PropertyValue::List(whole));
                let mut fitted = Properties::from([("Company Tech".to_owned(), value.clone())]);
                let was_cut = ValueRules { max_text_bytes: Some(limit), ..ValueRules::default() }.fit(&mut fitted);
                prop_assert_eq!(fitted["Company Tech"].as_text(), Some(expected.as_str()));
                prop_assert_eq!(was_cut.is_empty(), !cut);
            }
        }
    }
}
