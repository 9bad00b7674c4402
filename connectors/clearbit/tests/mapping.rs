//! The mapping of real Clearbit responses: snapshots of every property, values as the source gives them
//! (whole: a sink's rules fit them), and what a connection's `properties` selection leaves out.

use std::collections::BTreeSet;

use enrich_clearbit::{PropertiesConfig, PropertySelection, map_combined};
use enrich_core::{PropertyValue, Record};
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

fn map(response: &Value) -> Record {
    map_combined(response, &enrich_clearbit::every_attribute())
}

fn selection(properties: Value) -> PropertySelection {
    let config: PropertiesConfig = serde_json::from_value(properties).unwrap();
    enrich_clearbit::property_selection(&config).unwrap()
}

fn text<'a>(record: &'a Record, name: &str) -> Option<&'a str> {
    record.properties.get(name).and_then(PropertyValue::as_text)
}

#[test]
fn snapshots_of_every_fixture() {
    for (name, response) in responses() {
        let Record { properties, derived } = map(&response);
        assert_eq!(derived, [], "{name}: the catalogue knows every attribute of the fixtures");
        insta::assert_json_snapshot!(name, properties);
    }
}

#[test]
fn every_value_is_a_number_a_text_or_a_list_of_texts_with_something_in_it() {
    for (name, response) in responses() {
        let Record { properties, .. } = map(&response);
        assert!(properties.len() > 1, "{name}");
        for (key, value) in &properties {
            assert!(!key.trim().eq_ignore_ascii_case("id"), "{name}: the key {key:?} is forbidden");
            match value {
                PropertyValue::Number(number) => {
                    assert!(number.is_i64() || number.is_u64() || number.is_f64(), "{name}: {key}")
                }
                PropertyValue::Text(text) => assert!(!text.trim().is_empty(), "{name}: {key} is empty"),
                PropertyValue::List(items) => {
                    assert!(!items.is_empty(), "{name}: {key} is empty");
                    assert!(items.iter().all(|item| !item.trim().is_empty()), "{name}: {key} has a blank");
                }
            }
        }
    }
}

#[test]
fn names_are_unique_title_case_and_say_whose() {
    for (name, response) in responses() {
        let Record { properties, .. } = map(&response);
        let lower_case: BTreeSet<String> = properties.keys().map(|key| key.to_lowercase()).collect();
        assert_eq!(lower_case.len(), properties.len(), "{name}: names differing only in case");
        for key in properties.keys() {
            assert!(
                ["Person ", "Company ", "Clearbit: "].iter().any(|whose| key.starts_with(whose)),
                "{key}"
            );
            assert!(key.split(' ').all(|word| word.starts_with(|c: char| c.is_uppercase())), "{name}: {key}");
        }
    }
}

#[test]
fn every_check_says_what_clearbit_found() {
    let found: Vec<(&str, String)> = responses()
        .iter()
        .map(|(name, response)| (*name, map(response).properties["Clearbit: Match"].to_string()))
        .collect();
    assert_eq!(
        found,
        [
            ("calvinklein", "person and company".to_owned()),
            ("person_alex_2016", "person only".to_owned()),
            ("person_alex_latest", "person only".to_owned()),
            ("company_uber_2016", "company only".to_owned()),
            ("company_uber_latest", "company only".to_owned()),
        ]
    );
}

#[test]
fn the_real_response_carries_what_users_segment_by() {
    let record = map(&calvinklein());
    assert_eq!(text(&record, "Company Website URL"), Some("http://calvinklein.us"));
    assert_eq!(text(&record, "Company Industry"), Some("Textiles, Apparel & Luxury Goods"));
    assert_eq!(text(&record, "Company Employees Range"), Some("1000+"));
    assert_eq!(text(&record, "Person Job Title"), Some("Vice President, Global Digital Marketing"));
    assert_eq!(text(&record, "Company Twitter ID"), Some("18647765"));
    assert_eq!(record.properties.get("Company Employees"), Some(&PropertyValue::from(1001)));
}

#[test]
fn large_amounts_stay_exact_numbers() {
    let record = map(&company_only(include_str!("../fixtures/docs-company-uber-latest.json")));
    assert_eq!(record.properties.get("Company Funds Raised"), Some(&PropertyValue::from(10_610_000_000)));
}

#[test]
fn attributes_nobody_named_yet_come_through_and_are_reported() {
    let mut response = calvinklein();
    response["company"]["metrics"]["newThing"] = json!("10-50");
    response["company"]["metrics"]["roleCounts"] = json!({ "marketing": "10-50", "human_resources": null });
    response["person"]["newObject"] = json!({ "field": 0.93, "empty": null });
    let record = map(&response);
    assert_eq!(text(&record, "Company New Thing"), Some("10-50"));
    assert_eq!(text(&record, "Company Role Counts Marketing"), Some("10-50"));
    assert!(!record.properties.contains_key("Company Role Counts Human Resources"));
    assert_eq!(
        record.properties.get("Person New Object Field").map(ToString::to_string).as_deref(),
        Some("0.93")
    );
    assert_eq!(
        record.derived,
        [
            ("person.newObject.field".to_owned(), "Person New Object Field".to_owned()),
            ("company.metrics.newThing".to_owned(), "Company New Thing".to_owned()),
        ]
    );
}

#[test]
fn a_company_only_connection_writes_nothing_about_the_person() {
    let companies = selection(json!({ "include": ["company.*"] }));
    let mut response = calvinklein();
    response["person"]["newObject"] = json!({ "field": "personal" });
    let record = map_combined(&response, &companies);
    let people: Vec<&String> = record.properties.keys().filter(|name| name.starts_with("Person")).collect();
    assert_eq!(people, Vec::<&String>::new());
    assert!(record.derived.iter().all(|(path, _)| path.starts_with("company.")), "{:?}", record.derived);
    let all = map(&calvinklein());
    let company_properties = all.properties.keys().filter(|name| !name.starts_with("Person")).count();
    assert_eq!(record.properties.len(), company_properties, "every company attribute is still written");
    assert_eq!(text(&record, "Clearbit: Match"), Some("person and company"));
}

#[test]
fn excluded_attributes_are_left_out_at_any_depth() {
    let chosen = selection(json!({ "exclude": ["person.geo.*", "person.avatar", "company.site.*"] }));
    let record = map_combined(&calvinklein(), &chosen);
    for left_out in
        ["Person City", "Person Latitude", "Person Avatar", "Company Website URL", "Company Website H1"]
    {
        assert!(!record.properties.contains_key(left_out), "{left_out}");
    }
    assert!(record.properties.contains_key("Company City"));
    assert!(record.properties.contains_key("Company Twitter Avatar"));
}

#[test]
fn renamed_attributes_are_written_under_their_new_name() {
    let renamed = selection(json!({ "rename": { "company.metrics.employeesRange": "Company Size" } }));
    let record = map_combined(&calvinklein(), &renamed);
    assert_eq!(text(&record, "Company Size"), Some("1000+"));
    assert!(!record.properties.contains_key("Company Employees Range"));
    assert_eq!(record.derived, [], "a renamed catalogue attribute is still a known one");
}

#[test]
fn the_documented_yaml_shape_parses() {
    let yaml = r#"
include: [company.*]
exclude: [person.geo.*, person.avatar]
rename: { company.metrics.employeesRange: "Company Size" }
"#;
    let config: PropertiesConfig = serde_norway::from_str(yaml).unwrap();
    assert_eq!(config.include, Some(vec!["company.*".to_owned()]));
    assert_eq!(config.exclude, ["person.geo.*", "person.avatar"]);
    assert_eq!(config.rename["company.metrics.employeesRange"], "Company Size");
    assert!(enrich_clearbit::property_selection(&config).is_ok());
}
