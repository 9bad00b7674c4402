//! Clearbit's rules for naming attributes the catalogue does not know, such as
//! `company.metrics.newThing` (derived by [`enrich_core::selection::Naming`]): `Person` or `Company`,
//! then every segment in Title Case words, with acronyms and brands spelled as people write them.
//! Objects that only group attributes (`geo`, `category`, `metrics`…) are left out of the name.

use enrich_core::selection::Naming;

/// The rules the catalogue's own names follow.
pub(crate) const NAMING: Naming = Naming { groups_left_out: GROUPS_LEFT_OUT, spellings: SPELLINGS };

/// Objects that only group attributes: their own name is left out of their attributes' names, so that
/// `company.category.industry` is `Company Industry`.
const GROUPS_LEFT_OUT: &[&str] = &[
    "person.name",
    "person.geo",
    "company.geo",
    "company.category",
    "company.metrics",
    "company.identifiers",
];

/// Words not spelled in plain Title Case, by their lower-case form.
const SPELLINGS: &[(&str, &str)] = &[
    ("aboutme", "About Me"),
    ("cik", "CIK"),
    ("ein", "EIN"),
    ("gics", "GICS"),
    ("github", "GitHub"),
    ("googleplus", "Google Plus"),
    ("h1", "H1"),
    ("id", "ID"),
    ("ids", "IDs"),
    ("lat", "Latitude"),
    ("linkedin", "LinkedIn"),
    ("lng", "Longitude"),
    ("naics", "NAICS"),
    ("naics6", "NAICS6"),
    ("sic", "SIC"),
    ("sic4", "SIC4"),
    ("site", "Website"),
    ("url", "URL"),
    ("urls", "URLs"),
    ("us", "US"),
    ("utc", "UTC"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use enrich_core::selection::path_of;

    use crate::catalogue;

    fn name(dotted: &str) -> String {
        NAMING.preferred_name(&dotted.split('.').collect::<Vec<_>>())
    }

    #[test]
    fn spells_acronyms_in_capitals_and_other_words_in_title_case() {
        assert_eq!(name("company.identifiers.usEIN"), "Company US EIN");
        assert_eq!(name("company.identifiers.usCIK"), "Company US CIK");
        assert_eq!(name("company.metrics.alexaUsRank"), "Company Alexa US Rank");
        assert_eq!(name("company.category.naicsCode"), "Company NAICS Code");
        assert_eq!(name("company.category.sic4Codes"), "Company SIC4 Codes");
        assert_eq!(name("company.category.gicsCode"), "Company GICS Code");
        assert_eq!(name("company.site.h1"), "Company Website H1");
        assert_eq!(name("person.utcOffset"), "Person UTC Offset");
        assert_eq!(name("person.gravatar.urls"), "Person Gravatar URLs");
        assert_eq!(name("person.github.id"), "Person GitHub ID");
        assert_eq!(name("person.linkedin.handle"), "Person LinkedIn Handle");
        assert_eq!(name("person.geo.lng"), "Person Longitude");
    }

    #[test]
    fn the_catalogue_names_by_the_same_rules_except_where_derivation_would_mislead() {
        const NAMED_BY_HAND: &[&str] = &[
            "person.id",
            "company.id",
            "person.employment.name",
            "person.employment.domain",
            "person.employment.title",
            "person.employment.role",
            "person.employment.subRole",
            "person.employment.seniority",
            "person.emailProvider",
            "company.emailProvider",
            "person.fuzzy",
            "company.metrics.raised",
        ];
        for attribute in catalogue::attributes() {
            let path = path_of(attribute);
            if NAMED_BY_HAND.contains(&path) {
                assert_ne!(name(path), attribute.name, "{path} is named as derivation would");
            } else {
                assert_eq!(name(path), attribute.name, "{path}");
            }
        }
    }

    #[test]
    fn unknown_attributes_get_a_derived_name() {
        assert_eq!(name("company.metrics.newThing"), "Company New Thing");
        assert_eq!(name("person.newObject.field"), "Person New Object Field");
        assert_eq!(name("person.brandNewThing.sub_field"), "Person Brand New Thing Sub Field");
    }

    #[test]
    fn a_group_keeps_its_name_when_it_is_the_attribute_itself() {
        // Should Clearbit ever send `geo` as a plain string, it is still named.
        assert_eq!(name("person.geo"), "Person Geo");
    }

    #[test]
    fn the_path_name_keeps_every_segment() {
        let path = ["company", "metrics", "alexaUsRank"];
        assert_eq!(NAMING.path_name(&path), "Company Metrics Alexa US Rank");
        assert_eq!(NAMING.path_name(&["person", "employment", "title"]), "Person Employment Title");
    }
}
