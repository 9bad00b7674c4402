//! Clearbit's `properties:` selection: the shared [`PropertySelection`] over Clearbit's catalogue.

use enrich_core::FieldError;
use enrich_core::selection::{PropertiesConfig, PropertySelection};

use crate::catalogue::SELECTION_CATALOGUE;

/// Every Clearbit attribute under the catalogue's names, but deprecated ones.
pub fn every_attribute() -> PropertySelection {
    PropertySelection::everything(&SELECTION_CATALOGUE)
}

/// A `properties:` config checked against Clearbit's catalogue and compiled.
pub fn property_selection(config: &PropertiesConfig) -> Result<PropertySelection, Vec<FieldError>> {
    PropertySelection::new(&SELECTION_CATALOGUE, config)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use enrich_core::selection::path_of;

    use super::*;
    use crate::catalogue;

    fn config(properties: serde_json::Value) -> PropertiesConfig {
        serde_json::from_value(properties).unwrap()
    }

    fn problems(properties: serde_json::Value) -> Vec<(String, String)> {
        property_selection(&config(properties))
            .unwrap_err()
            .into_iter()
            .map(|problem| (problem.field, problem.message))
            .collect()
    }

    fn chosen(properties: serde_json::Value) -> PropertySelection {
        property_selection(&config(properties)).unwrap()
    }

    #[test]
    fn everything_by_default() {
        let everything = every_attribute();
        for attribute in catalogue::attributes() {
            let path = path_of(attribute);
            assert_eq!(everything.includes(path), !SELECTION_CATALOGUE.is_deprecated(path), "{path}");
        }
        assert!(everything.includes("company.metrics.newThing"));
        assert_eq!(chosen(json!({})).properties(), everything.properties());
    }

    #[test]
    fn deprecated_attributes_are_written_only_when_named() {
        let companies = chosen(json!({ "include": ["company.*"] }));
        assert!(!companies.includes("company.logo") && !companies.includes("company.metrics.alexaUsRank"));
        let named = chosen(json!({ "include": ["company.*", "company.logo"] }));
        assert!(named.includes("company.logo"));
        assert!(!named.includes("company.metrics.alexaUsRank"));
        assert!(named.properties().iter().any(|property| property.name == "Company Logo"));
        let excluded = chosen(json!({ "include": ["company.logo"], "exclude": ["company.logo"] }));
        assert!(!excluded.includes("company.logo"));
    }

    #[test]
    fn a_star_matches_at_any_depth() {
        let companies = chosen(json!({ "include": ["company.*"] }));
        assert!(companies.includes("company.name"));
        assert!(companies.includes("company.metrics.roleCounts.sales"));
        assert!(companies.includes("company.newObject.field"));
        assert!(!companies.includes("person.name.fullName"));
        assert!(!companies.includes("person.newThing"));
    }

    #[test]
    fn exclude_wins_over_include() {
        let chosen = chosen(json!({ "exclude": ["person.geo.*", "person.avatar"] }));
        assert!(!chosen.includes("person.geo.city"));
        assert!(!chosen.includes("person.geo.newField"));
        assert!(!chosen.includes("person.avatar"));
        assert!(chosen.includes("person.gravatar.avatar"));
        assert!(chosen.includes("person.geo"), "a glob for a group's members leaves the group's name");
    }

    #[test]
    fn renames_apply_to_known_and_unknown_paths() {
        let renamed = chosen(json!({ "rename": {
            "company.metrics.employeesRange": " Company Size ",
            "company.metrics.newThing": "Company Novelty",
        }}));
        assert_eq!(renamed.name_of("company.metrics.employeesRange"), Some("Company Size"));
        assert_eq!(renamed.name_of("company.metrics.newThing"), Some("Company Novelty"));
        assert_eq!(renamed.name_of("company.metrics.otherThing"), None);
        assert!(renamed.reserves("company novelty") && renamed.reserves("company employees range"));
    }

    #[test]
    fn renamed_attributes_may_swap_names() {
        let swapped = chosen(json!({ "rename": {
            "company.name": "Company Legal Name",
            "company.legalName": "Company Name",
        }}));
        assert_eq!(swapped.name_of("company.name"), Some("Company Legal Name"));
    }

    #[test]
    fn the_listing_puts_the_check_first_then_sorts_by_name() {
        let listed = chosen(json!({
            "include": ["company.metrics.*", "person.employment.title", "company.metrics.alexaUsRank"],
            "exclude": ["company.metrics.roleCounts.*"],
            "rename": { "company.metrics.raised": "Company Amount Raised" },
        }))
        .properties();
        let names: Vec<&str> = listed.iter().map(|property| property.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Clearbit: Date Last Checked",
                "Clearbit: Match",
                "Clearbit: Company Source",
                "Clearbit: Reveal Fuzzy",
                "Clearbit: Reveal Type",
                "Clearbit: Reveal Confidence",
                "Company Alexa US Rank",
                "Company Amount Raised",
                "Company Annual Revenue",
                "Company Employees",
                "Company Employees Range",
                "Company Estimated Annual Revenue",
                "Company Fiscal Year End",
                "Company Google Rank",
                "Company Market Cap",
                "Company Traffic Rank",
                "Person Job Title",
            ]
        );
        let raised = &listed[7];
        assert_eq!(raised.path.as_deref(), Some("company.metrics.raised"));
        assert!(raised.description.contains("funding"));
    }

    #[test]
    fn an_invalid_glob_is_reported_with_its_position() {
        let found = problems(json!({ "include": ["company.*", "company.[metrics"] }));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "include[1]");
        assert!(found[0].1.starts_with("`company.[metrics` is not a valid glob: "), "{}", found[0].1);
    }

    #[test]
    fn a_glob_matching_no_attribute_is_reported_with_the_nearest_one() {
        let found = problems(json!({
            "include": ["compnay.*", "company.metrics.employeeRange"],
            "exclude": ["person.geo", "person.shoeSize"],
        }));
        assert_eq!(
            found,
            [
                (
                    "include[0]".into(),
                    "`compnay.*` matches no Clearbit attribute; did you mean `company.*`?".into()
                ),
                (
                    "include[1]".into(),
                    "`company.metrics.employeeRange` matches no Clearbit attribute; did you mean \
                     `company.metrics.employeesRange`?"
                        .into()
                ),
                (
                    "exclude[0]".into(),
                    "`person.geo` matches no Clearbit attribute; did you mean `person.geo.*`?".into()
                ),
                ("exclude[1]".into(), "`person.shoeSize` matches no Clearbit attribute".into()),
            ]
        );
    }

    #[test]
    fn an_empty_include_is_reported() {
        assert_eq!(problems(json!({ "include": [] }))[0].0, "include");
    }

    #[test]
    fn a_rename_key_must_be_one_attribute_path() {
        let found = problems(json!({ "rename": {
            "employeesRange": "Size",
            "company..range": "Range",
            "person.": "Someone",
            "company.geo": "Company Place",
        }}));
        let fields: Vec<&str> = found.iter().map(|(field, _)| field.as_str()).collect();
        assert_eq!(
            fields,
            ["rename.company..range", "rename.company.geo", "rename.employeesRange", "rename.person."]
        );
        assert!(found[0].1.contains("rename keys start with person. or company."), "{}", found[0].1);
        assert!(
            found[1].1.contains("group of attributes") && found[1].1.contains("company.geo."),
            "{}",
            found[1].1
        );
    }

    #[test]
    fn a_rename_that_would_never_apply_is_reported_with_the_name_meant() {
        let found = problems(json!({
            "include": ["company.*"],
            "rename": { "company.metrics.employeeRange": "Size", "person.name.fullName": "Name" },
        }));
        assert_eq!(
            found,
            [
                (
                    "rename.company.metrics.employeeRange".into(),
                    "`company.metrics.employeeRange` is no Clearbit attribute, so the rename would never \
                     apply; did you mean `company.metrics.employeesRange`?"
                        .into()
                ),
                (
                    "rename.person.name.fullName".into(),
                    "`person.name.fullName` is left out by include or exclude, so the rename would never apply"
                        .into()
                ),
            ]
        );
    }

    #[test]
    fn a_rename_to_an_empty_name_is_reported() {
        let found = problems(json!({ "rename": { "company.name": "  " } }));
        assert_eq!(found[0].0, "rename.company.name");
        assert!(found[0].1.contains("empty name"), "{}", found[0].1);
    }

    #[test]
    fn a_rename_to_a_name_the_check_writes_is_reported() {
        let found = problems(json!({ "rename": { "company.type": "Clearbit: match" } }));
        assert_eq!(
            found,
            [("rename.company.type".into(), "renames to `Clearbit: Match`, which every check writes".into())]
        );
    }

    #[test]
    fn a_rename_to_a_name_already_taken_is_reported() {
        let found = problems(json!({ "rename": {
            "company.tech": "Company Industry",
            "company.metrics.newThing": "Company Size",
            "company.metrics.employeesRange": "company size",
        }}));
        assert_eq!(
            found,
            [
                (
                    "rename.company.metrics.newThing".into(),
                    "renames to `Company Size`, which is already the name of `company.metrics.employeesRange`"
                        .into()
                ),
                (
                    "rename.company.tech".into(),
                    "renames to `Company Industry`, which is already the name of `company.category.industry`"
                        .into()
                ),
            ]
        );
    }

    #[test]
    fn a_rename_may_take_the_name_of_an_excluded_attribute() {
        let chosen = chosen(json!({
            "exclude": ["company.category.industry"],
            "rename": { "company.category.subIndustry": "Company Industry" },
        }));
        assert_eq!(chosen.name_of("company.category.subIndustry"), Some("Company Industry"));
    }
}
