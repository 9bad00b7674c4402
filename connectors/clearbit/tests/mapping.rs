//! The mapping of real Clearbit responses: snapshots of every property, and the rules Heap imposes.

use std::collections::BTreeSet;

use enrich_clearbit::{Mapping, map_combined};
use enrich_core::PropertyValue;
use serde_json::{Value, json};

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).expect("fixtures are JSON")
}

fn calvinklein() -> Value {
    fixture(include_str!("../fixtures/combined-real-calvinklein-2016.json"))
}

fn person_only(text: &str) -> Value {
    json!({ "person": fixture(text), "company": null })
}

fn company_only(text: &str) -> Value {
    json!({ "person": null, "company": fixture(text) })
}

/// Every fixture, as the combined response it is or is wrapped into.
fn responses() -> [(&'static str, Value); 5] {
    [
        ("calvinklein", calvinklein()),
        ("person_alex_2016", person_only(include_str!("../fixtures/docs-person-alex-2016.json"))),
        ("person_alex_latest", person_only(include_str!("../fixtures/docs-person-alex-latest.json"))),
        ("company_uber_2016", company_only(include_str!("../fixtures/docs-company-uber-2016.json"))),
        ("company_uber_latest", company_only(include_str!("../fixtures/docs-company-uber-latest.json"))),
    ]
}

#[test]
fn snapshots_of_every_fixture() {
    for (name, response) in responses() {
        let Mapping { properties, truncated } = map_combined(&response);
        assert_eq!(truncated, Vec::<String>::new(), "{name}: no fixture value is near the limit");
        insta::assert_json_snapshot!(name, properties);
    }
}

#[test]
fn every_value_is_one_heap_accepts() {
    for (name, response) in responses() {
        let Mapping { properties, .. } = map_combined(&response);
        assert!(!properties.is_empty(), "{name}");
        for (key, value) in &properties {
            assert!(!key.trim().eq_ignore_ascii_case("id"), "{name}: the key {key:?} is forbidden");
            match value {
                PropertyValue::Number(number) => {
                    assert!(number.is_i64() || number.is_u64() || number.is_f64(), "{name}: {key}")
                }
                PropertyValue::Text(text) => {
                    assert!(!text.is_empty(), "{name}: {key} is empty");
                    assert!(text.chars().count() < 1024, "{name}: {key} is too long");
                }
            }
        }
    }
}

#[test]
fn names_are_unique_title_case_and_say_whose() {
    for (name, response) in responses() {
        let Mapping { properties, .. } = map_combined(&response);
        let lower_case: BTreeSet<String> = properties.keys().map(|key| key.to_lowercase()).collect();
        assert_eq!(lower_case.len(), properties.len(), "{name}: names differing only in case");
        for key in properties.keys() {
            assert!(key.starts_with("Person ") || key.starts_with("Company "), "{name}: {key}");
            assert!(key.split(' ').all(|word| word.starts_with(|c: char| c.is_uppercase())), "{name}: {key}");
        }
    }
}

#[test]
fn the_real_response_carries_what_users_segment_by() {
    let Mapping { properties, .. } = map_combined(&calvinklein());
    let text = |name: &str| properties.get(name).and_then(PropertyValue::as_text).map(str::to_owned);
    assert_eq!(text("Company Website URL").as_deref(), Some("http://calvinklein.us"));
    assert_eq!(text("Company Industry").as_deref(), Some("Textiles, Apparel & Luxury Goods"));
    assert_eq!(text("Company Employees Range").as_deref(), Some("1000+"));
    assert_eq!(text("Person Job Title").as_deref(), Some("Vice President, Global Digital Marketing"));
    assert_eq!(text("Company Twitter ID").as_deref(), Some("18647765"));
    assert_eq!(properties.get("Company Employees"), Some(&PropertyValue::from(1001)));
}

#[test]
fn large_amounts_stay_exact_numbers() {
    let Mapping { properties, .. } =
        map_combined(&company_only(include_str!("../fixtures/docs-company-uber-latest.json")));
    assert_eq!(properties.get("Company Funds Raised"), Some(&PropertyValue::from(10_610_000_000)));
}

#[test]
fn attributes_nobody_named_yet_come_through() {
    let mut response = calvinklein();
    response["company"]["metrics"]["roleCounts"] = json!({ "marketing": "10-50", "human_resources": null });
    response["person"]["brandNewScore"] = json!(0.93);
    let Mapping { properties, .. } = map_combined(&response);
    assert_eq!(
        properties.get("Company Role Counts Marketing").and_then(PropertyValue::as_text),
        Some("10-50")
    );
    assert!(!properties.contains_key("Company Role Counts Human Resources"));
    assert_eq!(properties.get("Person Brand New Score").map(ToString::to_string).as_deref(), Some("0.93"));
}
