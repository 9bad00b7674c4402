//! The catalogue: it covers every attribute Clearbit documents, lists them as a connection writes them,
//! and names every attribute of a record that has them all.

use std::collections::BTreeSet;

use enrich_clearbit::{catalogue, every_attribute, map_combined};
use serde_json::Value;

/// Every attribute of Clearbit's Person and Company, as its documentation lists them.
const DOCUMENTED_PATHS: &[&str] = &[
    "person.id",
    "person.name.fullName",
    "person.name.givenName",
    "person.name.familyName",
    "person.email",
    "person.gender",
    "person.location",
    "person.timeZone",
    "person.utcOffset",
    "person.geo.city",
    "person.geo.state",
    "person.geo.stateCode",
    "person.geo.country",
    "person.geo.countryCode",
    "person.geo.lat",
    "person.geo.lng",
    "person.bio",
    "person.site",
    "person.avatar",
    "person.employment.domain",
    "person.employment.name",
    "person.employment.title",
    "person.employment.role",
    "person.employment.subRole",
    "person.employment.seniority",
    "person.facebook.handle",
    "person.github.handle",
    "person.github.id",
    "person.github.avatar",
    "person.github.company",
    "person.github.blog",
    "person.github.followers",
    "person.github.following",
    "person.twitter.handle",
    "person.twitter.id",
    "person.twitter.bio",
    "person.twitter.followers",
    "person.twitter.following",
    "person.twitter.statuses",
    "person.twitter.favorites",
    "person.twitter.location",
    "person.twitter.site",
    "person.twitter.avatar",
    "person.linkedin.handle",
    "person.googleplus.handle",
    "person.gravatar.handle",
    "person.gravatar.urls",
    "person.gravatar.avatar",
    "person.gravatar.avatars",
    "person.aboutme.handle",
    "person.aboutme.bio",
    "person.aboutme.avatar",
    "person.fuzzy",
    "person.emailProvider",
    "person.indexedAt",
    "person.phone",
    "person.activeAt",
    "person.inactiveAt",
    "company.id",
    "company.name",
    "company.legalName",
    "company.domain",
    "company.domainAliases",
    "company.url",
    "company.site.url",
    "company.site.title",
    "company.site.h1",
    "company.site.metaDescription",
    "company.site.metaAuthor",
    "company.site.phoneNumbers",
    "company.site.emailAddresses",
    "company.tags",
    "company.category.sector",
    "company.category.industryGroup",
    "company.category.industry",
    "company.category.subIndustry",
    "company.category.sicCode",
    "company.category.naicsCode",
    "company.category.gicsCode",
    "company.category.sic4Codes",
    "company.category.naics6Codes",
    "company.category.naics6Codes2022",
    "company.description",
    "company.foundedYear",
    "company.location",
    "company.timeZone",
    "company.utcOffset",
    "company.geo.streetNumber",
    "company.geo.streetName",
    "company.geo.subPremise",
    "company.geo.streetAddress",
    "company.geo.city",
    "company.geo.state",
    "company.geo.stateCode",
    "company.geo.postalCode",
    "company.geo.country",
    "company.geo.countryCode",
    "company.geo.lat",
    "company.geo.lng",
    "company.identifiers.usEIN",
    "company.identifiers.usCIK",
    "company.metrics.raised",
    "company.metrics.alexaUsRank",
    "company.metrics.alexaGlobalRank",
    "company.metrics.trafficRank",
    "company.metrics.googleRank",
    "company.metrics.employees",
    "company.metrics.employeesRange",
    "company.metrics.marketCap",
    "company.metrics.annualRevenue",
    "company.metrics.estimatedAnnualRevenue",
    "company.metrics.fiscalYearEnd",
    "company.metrics.roleCounts.communications",
    "company.metrics.roleCounts.customer_service",
    "company.metrics.roleCounts.education",
    "company.metrics.roleCounts.engineering",
    "company.metrics.roleCounts.finance",
    "company.metrics.roleCounts.health_professional",
    "company.metrics.roleCounts.human_resources",
    "company.metrics.roleCounts.information_technology",
    "company.metrics.roleCounts.leadership",
    "company.metrics.roleCounts.legal",
    "company.metrics.roleCounts.marketing",
    "company.metrics.roleCounts.operations",
    "company.metrics.roleCounts.product",
    "company.metrics.roleCounts.public_relations",
    "company.metrics.roleCounts.real_estate",
    "company.metrics.roleCounts.recruiting",
    "company.metrics.roleCounts.research",
    "company.metrics.roleCounts.sales",
    "company.facebook.handle",
    "company.facebook.likes",
    "company.linkedin.handle",
    "company.crunchbase.handle",
    "company.twitter.handle",
    "company.twitter.id",
    "company.twitter.bio",
    "company.twitter.followers",
    "company.twitter.following",
    "company.twitter.location",
    "company.twitter.site",
    "company.twitter.avatar",
    "company.logo",
    "company.emailProvider",
    "company.type",
    "company.ticker",
    "company.phone",
    "company.tech",
    "company.techCategories",
    "company.parent.domain",
    "company.ultimateParent.domain",
    "company.indexedAt",
];

fn catalogue_paths() -> BTreeSet<String> {
    catalogue().into_iter().filter_map(|attribute| attribute.path).collect()
}

fn all_fields() -> Value {
    serde_json::from_str(include_str!("../fixtures/synthetic-all-fields.json")).unwrap()
}

/// The path of every non-object value, arrays included as one attribute.
fn leaf_paths(value: &Value, path: &str, paths: &mut BTreeSet<String>) {
    match value {
        Value::Object(object) => {
            for (key, inner) in object {
                let inner_path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                leaf_paths(inner, &inner_path, paths);
            }
        }
        _ => {
            paths.insert(path.to_owned());
        }
    }
}

#[test]
fn the_catalogue_covers_every_documented_attribute_and_no_other() {
    let documented: BTreeSet<String> = DOCUMENTED_PATHS.iter().map(|path| (*path).to_owned()).collect();
    assert_eq!(documented.len(), DOCUMENTED_PATHS.len(), "a path is listed twice");
    let catalogued = catalogue_paths();
    let missing: Vec<&String> = documented.difference(&catalogued).collect();
    let undocumented: Vec<&String> = catalogued.difference(&documented).collect();
    assert_eq!((missing, undocumented), (vec![], vec![]));
}

#[test]
fn the_catalogue_listing() {
    let rows: Vec<String> = catalogue()
        .iter()
        .map(|attribute| {
            let path = attribute.path.as_deref().unwrap_or_default();
            format!("{} | {} | {} | {}", attribute.name, attribute.kind, path, attribute.description)
        })
        .collect();
    insta::assert_snapshot!(rows.join("\n"));
}

#[test]
fn a_default_connection_lists_the_check_then_the_whole_catalogue_by_name() {
    let listed = every_attribute().properties();
    let names: Vec<&str> = listed.iter().map(|property| property.name.as_str()).collect();
    let about_the_check = [
        "Clearbit: Date Last Checked",
        "Clearbit: Match",
        "Clearbit: Company Source",
        "Clearbit: Reveal Fuzzy",
        "Clearbit: Reveal Type",
        "Clearbit: Reveal Confidence",
    ];
    assert_eq!(names[..about_the_check.len()], about_the_check);
    assert!(names[about_the_check.len()..].is_sorted(), "{names:?}");
    // Deprecated attributes are catalogued, but written only when a selection names them.
    let deprecated: Vec<String> = catalogue()
        .into_iter()
        .filter(|attribute| attribute.description.starts_with("Deprecated"))
        .map(|attribute| attribute.name)
        .collect();
    assert_eq!(
        deprecated,
        ["Person Google Plus Handle", "Company Alexa US Rank", "Company Alexa Global Rank", "Company Logo"]
    );
    assert!(listed.iter().all(|property| !deprecated.contains(&property.name)));
    assert_eq!(listed.len(), catalogue().len() - deprecated.len() + about_the_check.len());
    assert!(listed[..about_the_check.len()].iter().all(|property| property.path.is_none()));
}

#[test]
fn the_synthetic_record_fills_every_catalogued_attribute() {
    let mut paths = BTreeSet::new();
    leaf_paths(&all_fields(), "", &mut paths);
    assert_eq!(paths, catalogue_paths());
}

#[test]
fn a_record_with_every_attribute() {
    let record = map_combined(&all_fields(), &every_attribute());
    assert_eq!(record.derived, []);
    let written: BTreeSet<&str> = record.properties.keys().map(String::as_str).collect();
    let listed: BTreeSet<String> =
        every_attribute().properties().into_iter().map(|property| property.name).collect();
    // The check date is the engine's; Reveal's own fields come only from Reveal.
    let expected: BTreeSet<&str> = listed
        .iter()
        .map(String::as_str)
        .filter(|name| *name != "Clearbit: Date Last Checked" && !name.starts_with("Clearbit: Reveal"))
        .collect();
    assert_eq!(written, expected, "every catalogued property is written, under its listed name");
    insta::assert_json_snapshot!(record.properties);
}
