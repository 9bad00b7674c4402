//! From a combined `{person, company}` response to properties an analytics tool accepts, through the
//! shared [`PropertySelection`]: every non-null attribute the connection selects becomes one property,
//! known or not (an attribute Clearbit adds tomorrow comes through under a name derived from its path).

use enrich_core::selection::PropertySelection;
use enrich_core::{PropertyValue, Record};
use serde_json::Value;

use crate::catalogue::{COMPANY_SOURCE, MATCH};

/// Maps a combined response: every attribute the selection includes, `Clearbit: Match`, and
/// `Clearbit: Company Source` when there is a company. A missing or null `person` or `company`
/// contributes nothing.
pub fn map_combined(response: &Value, selection: &PropertySelection) -> Record {
    let person = response.get("person").and_then(Value::as_object);
    let company = response.get("company").and_then(Value::as_object);
    let record = selection.map([("person", person), ("company", company)]);
    let mut record = with_match(record, person.is_some(), company.is_some());
    if company.is_some() {
        record.properties.insert(COMPANY_SOURCE.to_owned(), PropertyValue::Text("enrichment".to_owned()));
    }
    record
}

/// Maps a Company API answer (the company itself): the company's attributes the selection includes
/// and `Clearbit: Company Source` = `enrichment`, as the combined lookup writes them.
pub fn map_company(response: &Value, selection: &PropertySelection) -> Record {
    let mut record = selection.map([("company", response.as_object())]);
    record.properties.insert(COMPANY_SOURCE.to_owned(), PropertyValue::Text("enrichment".to_owned()));
    record
}

/// What a check that found nothing writes.
pub(crate) fn not_found() -> Record {
    with_match(Record::default(), false, false)
}

fn with_match(mut record: Record, person: bool, company: bool) -> Record {
    let found = match (person, company) {
        (true, true) => "person and company",
        (false, true) => "company only",
        (true, false) => "person only",
        (false, false) => "not found",
    };
    record.properties.insert(MATCH.to_owned(), PropertyValue::Text(found.to_owned()));
    record
}

#[cfg(test)]
mod tests {
    use enrich_core::ValueRules;
    use serde_json::json;

    use super::*;
    use enrich_core::selection::PropertiesConfig;
    use serde_json::Map;
    use std::collections::HashSet;

    fn map(response: &Value) -> Record {
        map_combined(response, &crate::every_attribute())
    }

    fn person(attributes: &Value) -> Record {
        map(&json!({ "person": attributes, "company": null }))
    }

    fn text(value: &str) -> PropertyValue {
        PropertyValue::Text(value.into())
    }

    fn list(items: &[&str]) -> PropertyValue {
        PropertyValue::List(items.iter().map(|item| (*item).to_owned()).collect())
    }

    /// A destination's limit on text, whichever: the source gives its values whole, the sink's rules
    /// cut them.
    fn within_500_bytes(record: &Record) -> (enrich_core::Properties, Vec<String>) {
        let rules = ValueRules { max_text_bytes: Some(500), ..ValueRules::default() };
        let mut properties = record.properties.clone();
        let cut = rules.fit(&mut properties);
        (properties, cut)
    }

    /// The properties of a record but `Clearbit: Match` and `Clearbit: Company Source`.
    fn attributes(record: &Record) -> Vec<(&str, String)> {
        let written =
            record.properties.iter().filter(|(name, _)| ![MATCH, COMPANY_SOURCE].contains(&name.as_str()));
        written.map(|(name, value)| (name.as_str(), value.to_string())).collect()
    }

    #[test]
    fn says_what_clearbit_found() {
        let found = |response: Value| map(&response).properties[MATCH].to_string();
        assert_eq!(
            found(json!({ "person": { "bio": "x" }, "company": { "name": "y" } })),
            "person and company"
        );
        assert_eq!(found(json!({ "person": null, "company": { "name": "y" } })), "company only");
        assert_eq!(found(json!({ "person": { "bio": "x" } })), "person only");
        assert_eq!(
            not_found().properties.into_iter().collect::<Vec<_>>(),
            [(MATCH.to_owned(), text("not found"))]
        );
    }

    #[test]
    fn booleans_become_words() {
        let record = person(&json!({ "fuzzy": true, "emailProvider": false }));
        assert_eq!(record.properties["Person Fuzzy Match"], text("true"));
        assert_eq!(record.properties["Person Free Email Provider"], text("false"));
    }

    #[test]
    fn numbers_stay_numbers_up_to_64_bits() {
        let record = map(&json!({ "company": {
            "metrics": { "raised": 10_610_000_000_i64, "marketCap": u64::MAX, "employees": 20313 },
            "geo": { "lat": 37.7752315 },
            "utcOffset": -7,
        }}));
        let number = |name: &str| match &record.properties[name] {
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
    fn identifiers_and_codes_are_text_whether_sent_as_numbers_or_strings() {
        let record = person(&json!({ "twitter": { "id": 2006261 }, "github": { "id": "2142" } }));
        assert_eq!(record.properties["Person Twitter ID"], text("2006261"));
        assert_eq!(record.properties["Person GitHub ID"], text("2142"));
        let big = person(&json!({ "twitter": { "id": 1_234_567_890_123_456_789_u64 } }));
        assert_eq!(big.properties["Person Twitter ID"], text("1234567890123456789"));
        let codes =
            map(&json!({ "company": { "category": { "sicCode": 47 }, "identifiers": { "usEIN": 1 } } }));
        assert_eq!(codes.properties["Company SIC Code"], text("47"));
        assert_eq!(codes.properties["Company US EIN"], text("1"));
        let unknown = map(&json!({ "company": { "stockExchange": { "id": 7, "rank": 3 } } }));
        assert_eq!(unknown.properties["Company Stock Exchange ID"], text("7"));
        assert_eq!(unknown.properties["Company Stock Exchange Rank"], PropertyValue::from(3));
    }

    #[test]
    fn nulls_blanks_and_empty_lists_are_left_out() {
        let record = person(&json!({
            "bio": null, "site": "", "avatar": "  ", "gravatar": { "avatars": [], "urls": [null, ""] },
            "facebook": { "handle": null }, "github": null,
        }));
        assert_eq!(attributes(&record), []);
        assert_eq!(record.properties[MATCH], text("person only"));
    }

    #[test]
    fn lists_are_joined_without_repeats() {
        let record = map(&json!({ "company": {
            "tech": ["mixpanel", "nginx", "mixpanel"],
            "category": { "sic4Codes": [4121, 7372] },
            "nested": [["a", "b"], ["c"], []],
        }}));
        assert_eq!(record.properties["Company Tech"], list(&["mixpanel", "nginx"]));
        assert_eq!(record.properties["Company SIC4 Codes"], list(&["4121", "7372"]));
        assert_eq!(record.properties["Company Nested"], list(&["a", "b", "c"]));
    }

    #[test]
    fn objects_in_lists_are_reduced_to_their_meaningful_field() {
        let record = person(&json!({ "gravatar": {
            "avatars": [{ "url": "http://a/1", "type": "thumbnail" }, { "url": "http://a/2" }],
            "urls": [{ "value": "http://alexmaccaw.com", "title": "Personal Website" }],
        }, "accounts": [{ "service": "x", "followers": 3 }, { "url": null }] }));
        assert_eq!(record.properties["Person Gravatar Avatars"], list(&["http://a/1", "http://a/2"]));
        assert_eq!(record.properties["Person Gravatar URLs"], list(&["http://alexmaccaw.com"]));
        assert_eq!(record.properties["Person Accounts"], list(&[r#"{"followers":3,"service":"x"}"#]));
    }

    #[test]
    fn long_text_is_given_whole_and_cut_by_the_sinks_rule() {
        let bio = "é".repeat(600); // 1200 bytes
        let record = person(&json!({ "bio": bio }));
        assert_eq!(record.properties["Person Bio"], text(&bio), "the source's value, whole");
        let (fitted, cut) = within_500_bytes(&record);
        assert_eq!(fitted["Person Bio"], text(&"é".repeat(250)), "at a character boundary");
        assert_eq!(cut, ["Person Bio"]);
    }

    #[test]
    fn long_lists_are_given_whole_and_lose_whole_items_to_the_sinks_rule() {
        let aliases: Vec<String> = (0..100).map(|n| format!("alias-{n:03}.example.com")).collect();
        let record = map(&json!({ "company": { "domainAliases": aliases } }));
        assert_eq!(record.properties["Company Domain Aliases"], PropertyValue::List(aliases.clone()));
        let (fitted, cut) = within_500_bytes(&record);
        let joined = fitted["Company Domain Aliases"].as_text().unwrap();
        assert!(joined.len() <= 500 && joined.len() + ", alias-000.example.com".len() > 500, "{joined}");
        let kept: Vec<&str> = joined.split(", ").collect();
        assert_eq!(kept, aliases[..kept.len()], "the first items, whole and in order");
        assert_eq!(cut, ["Company Domain Aliases"]);
    }

    #[test]
    fn a_list_of_any_length_is_given_whole_without_repeats() {
        let tech: Vec<String> = (0..100_000).map(|n| format!("tech-{n}")).collect();
        let record = map(&json!({ "company": { "tech": tech } }));
        assert_eq!(record.properties["Company Tech"], PropertyValue::List(tech));
        let repeated = map(&json!({ "company": { "tech": vec!["nginx"; 100_000] } }));
        assert_eq!(repeated.properties["Company Tech"], list(&["nginx"]));
        let (fitted, cut) = within_500_bytes(&repeated);
        assert_eq!((&fitted["Company Tech"], cut), (&text("nginx"), Vec::<String>::new()));
    }

    #[test]
    fn many_attributes_with_one_name_are_numbered_in_turn() {
        let keys: Map<String, Value> =
            (1..=2000).map(|n| (format!("a{}b", "_".repeat(n)), json!(n))).collect();
        let record = map(&json!({ "company": keys }));
        let names: HashSet<&str> = record.derived.iter().map(|(_, name)| name.as_str()).collect();
        assert_eq!(names.len(), 2000);
        assert!(names.contains("Company A B") && names.contains("Company A B 2000"));
    }

    #[test]
    fn a_single_overlong_item_is_given_whole_and_cut_by_the_sinks_rule() {
        let record = person(&json!({ "tags": ["ü".repeat(700)] }));
        assert_eq!(record.properties["Person Tags"], list(&[&"ü".repeat(700)]));
        let (fitted, cut) = within_500_bytes(&record);
        assert_eq!(fitted["Person Tags"], text(&"ü".repeat(250)));
        assert_eq!(cut, ["Person Tags"]);
    }

    #[test]
    fn unknown_attributes_are_named_by_derivation_and_reported() {
        let record = map(&json!({
            "person": { "newObject": { "field": "x" } },
            "company": { "metrics": { "newThing": 3, "employees": 10 } },
        }));
        assert_eq!(
            attributes(&record),
            [
                ("Company Employees", "10".into()),
                ("Company New Thing", "3".into()),
                ("Person New Object Field", "x".into())
            ]
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
    fn a_derived_name_never_takes_a_catalogue_name_even_one_absent_from_the_record() {
        // `company.category.industry` is not in this record, and still owns "Company Industry".
        let record = map(&json!({ "company": { "industry": "Hardware", "employees": 12, "metrics": {} } }));
        assert_eq!(
            attributes(&record),
            [("Company Employees 2", "12".into()), ("Company Industry 2", "Hardware".into())]
        );
        assert_eq!(
            record.derived,
            [
                ("company.employees".to_owned(), "Company Employees 2".to_owned()),
                ("company.industry".to_owned(), "Company Industry 2".to_owned()),
            ]
        );
    }

    #[test]
    fn colliding_derived_names_fall_back_to_the_whole_path_then_a_number() {
        // Attributes are walked in key order.
        let record = map(&json!({ "company": {
            "aNewThing": "a",
            "a_new_thing": "b",
            "category": { "aNewThing": "c" },
        }}));
        let names: Vec<&str> = record.derived.iter().map(|(_, name)| name.as_str()).collect();
        assert_eq!(names, ["Company A New Thing", "Company A New Thing 2", "Company Category A New Thing"]);
    }

    #[test]
    fn a_key_with_a_dot_does_not_overwrite_the_attribute_it_spells() {
        let record =
            map(&json!({ "company": { "site": { "url": "http://a.io" }, "site.url": "http://b.io" } }));
        assert_eq!(record.properties["Company Website URL"], text("http://a.io"));
        assert_eq!(record.derived, [("company.site.url".to_owned(), "Company Website URL 2".to_owned())]);
    }

    #[test]
    fn the_selection_chooses_and_renames_attributes_known_or_not() {
        let config: PropertiesConfig = serde_json::from_value(json!({
            "include": ["company.*"],
            "exclude": ["company.geo.*"],
            "rename": { "company.metrics.employeesRange": "Company Size", "company.metrics.newThing": "Company Novelty" },
        }))
        .unwrap();
        let selection = crate::property_selection(&config).unwrap();
        let record = map_combined(
            &json!({
                "person": { "name": { "fullName": "Jane Doe" }, "newThing": 1 },
                "company": { "geo": { "city": "Paris" }, "metrics": { "employeesRange": "51-250", "newThing": 2, "otherThing": 3 } },
            }),
            &selection,
        );
        assert_eq!(
            attributes(&record),
            [
                ("Company Novelty", "2".into()),
                ("Company Other Thing", "3".into()),
                ("Company Size", "51-250".into())
            ]
        );
        assert_eq!(record.properties[MATCH], text("person and company"));
        assert_eq!(
            record.derived,
            [
                ("company.metrics.newThing".to_owned(), "Company Novelty".to_owned()),
                ("company.metrics.otherThing".to_owned(), "Company Other Thing".to_owned()),
            ]
        );
    }

    #[test]
    fn renames_that_reorder_names_keep_each_value_with_its_attribute() {
        // Renames move names to either end of the order the selection keeps its names in, among
        // catalogued and derived ones; each value must still land under its own attribute's name.
        let config: PropertiesConfig = serde_json::from_value(json!({
            "rename": {
                "company.name": "zz Name Last",
                "person.name.fullName": "AA Name First",
                "company.metrics.newThing": "Company Metrics Novelty",
            },
        }))
        .unwrap();
        let selection = crate::property_selection(&config).unwrap();
        let record = map_combined(
            &json!({
                "person": { "name": { "fullName": "Jane Doe" }, "bio": "Writes", "zebra": "z" },
                "company": {
                    "name": "Acme", "legalName": "Acme Inc.", "aardvark": 1,
                    "metrics": { "newThing": 2, "employees": 10 },
                },
            }),
            &selection,
        );
        assert_eq!(
            attributes(&record),
            [
                ("AA Name First", "Jane Doe".into()),
                ("Company Aardvark", "1".into()),
                ("Company Employees", "10".into()),
                ("Company Legal Name", "Acme Inc.".into()),
                ("Company Metrics Novelty", "2".into()),
                ("Person Bio", "Writes".into()),
                ("Person Zebra", "z".into()),
                ("zz Name Last", "Acme".into()),
            ]
        );
        assert_eq!(
            record.derived,
            [
                ("person.zebra".to_owned(), "Person Zebra".to_owned()),
                ("company.aardvark".to_owned(), "Company Aardvark".to_owned()),
                ("company.metrics.newThing".to_owned(), "Company Metrics Novelty".to_owned()),
            ]
        );
    }

    #[test]
    fn anything_but_an_object_for_person_or_company_is_ignored() {
        for response in [json!({ "person": "x", "company": [1] }), json!(null)] {
            assert_eq!(map(&response), not_found());
        }
    }
}
