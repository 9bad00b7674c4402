//! From one person PDL found to properties, through the shared [`PropertySelection`]: values whole, as
//! the sink's rules fit them to the destination.
//!
//! Each field the selection includes with a value becomes one property; fields the catalogue does not
//! name (the `experience`, `education` and `emails` objects, …) are not written. On a free plan PDL
//! answers `true` or `false` in place of contact and location values: such a placeholder is never
//! written as a value, since `true` is not a city.

use enrich_core::selection::PropertySelection;
use enrich_core::{PropertyValue, Record};
use serde_json::{Map, Value};

use crate::catalogue::{LIKELIHOOD, MATCH};

/// Maps the `data` of a person PDL found with this `likelihood`, with `People Data Labs: Match`.
pub fn map_person(
    data: &Map<String, Value>,
    likelihood: Option<u64>,
    selection: &PropertySelection,
) -> Record {
    let mut record = selection.map([("", Some(data))]);
    let company = data
        .get("job_company_name")
        .is_some_and(|name| name.as_str().is_some_and(|name| !name.trim().is_empty()));
    let matched = if company { "person and company" } else { "person only" };
    record.properties.insert(MATCH.to_owned(), PropertyValue::text(matched));
    if let Some(likelihood) = likelihood {
        record.properties.insert(LIKELIHOOD.to_owned(), PropertyValue::Number(likelihood.into()));
    }
    record
}

/// Maps a company PDL found (company enrichment's flat fields) under the names a person's current
/// company has, through the same selection: `X` is the person's `job_company_X`, `location.X` their
/// `job_company_location_X`.
pub fn map_company(
    company: &Map<String, Value>,
    likelihood: Option<u64>,
    selection: &PropertySelection,
) -> Record {
    let mut fields = Map::new();
    for (field, value) in company {
        match (field.as_str(), value) {
            ("location", Value::Object(location)) => fields.extend(
                location.iter().map(|(part, value)| (format!("job_company_location_{part}"), value.clone())),
            ),
            _ => {
                fields.insert(format!("job_company_{field}"), value.clone());
            }
        }
    }
    let mut record = selection.map([("", Some(&fields))]);
    if let Some(likelihood) = likelihood {
        record.properties.insert(LIKELIHOOD.to_owned(), PropertyValue::Number(likelihood.into()));
    }
    record
}

/// What a check writes when PDL has no such person.
pub(crate) fn not_found() -> Record {
    let mut record = Record::default();
    record.properties.insert(MATCH.to_owned(), PropertyValue::text("not found"));
    record
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::catalogue::every_field;

    fn map(data: &Value) -> Record {
        map_person(data.as_object().unwrap(), Some(8), &every_field())
    }

    #[test]
    fn catalogued_fields_become_named_properties() {
        let record = map(&json!({
            "full_name": "Sean Thorne", "job_title": "Co-Founder", "job_company_name": "People Data Labs",
            "job_company_founded": 2015, "job_title_levels": ["cxo", "owner", "cxo"], "experience": [{"title": {}}],
        }));
        let text = |name: &str| record.properties.get(name).map(ToString::to_string);
        assert_eq!(text("Person Full Name").as_deref(), Some("Sean Thorne"));
        assert_eq!(text("Company Name").as_deref(), Some("People Data Labs"));
        assert_eq!(record.properties["Company Founded Year"], PropertyValue::from(2015));
        assert_eq!(text("Person Job Seniority").as_deref(), Some("cxo, owner"));
        assert_eq!(text(MATCH).as_deref(), Some("person and company"));
        assert_eq!(record.properties[LIKELIHOOD], PropertyValue::from(8));
        assert_eq!(record.properties.len(), 7, "{:?}", record.properties);
    }

    #[test]
    fn free_plan_placeholders_are_never_values() {
        let record = map(&json!({
            "full_name": "sean thorne", "work_email": true, "mobile_phone": false, "location_name": true,
            "location_locality": false, "location_names": true, "phone_numbers": true, "countries": [true],
        }));
        let names: Vec<&str> = record.properties.keys().map(String::as_str).collect();
        assert_eq!(names, ["People Data Labs: Likelihood", "People Data Labs: Match", "Person Full Name"]);
        assert_eq!(record.properties[MATCH], PropertyValue::text("person only"));
    }

    #[test]
    fn a_company_has_the_names_of_a_persons_current_company() {
        let company = json!({
            "name": "People Data Labs", "website": "peopledatalabs.com", "founded": 2015, "size": "11-50",
            "location": { "locality": "San Francisco", "country": "United States" }, "tags": ["data"],
        });
        let record = map_company(company.as_object().unwrap(), Some(6), &every_field());
        let names: Vec<&str> = record.properties.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "Company City",
                "Company Country",
                "Company Domain",
                "Company Employees Range",
                "Company Founded Year",
                "Company Name",
                "People Data Labs: Likelihood"
            ]
        );
        assert_eq!(record.properties["Company City"], PropertyValue::text("San Francisco"));
    }

    #[test]
    fn long_text_is_given_whole() {
        let record = map(&json!({ "summary": "x".repeat(5000) }));
        assert_eq!(
            record.properties["Person Bio"],
            PropertyValue::text("x".repeat(5000)),
            "the sink's rules cut it"
        );
    }
}
