//! Names for attributes the catalogue does not know, such as `company.metrics.newThing`, derived from
//! their path by the rules the catalogue's names follow.
//!
//! A name is `Person` or `Company`, then every segment split on camelCase and snake_case into Title Case
//! words, with acronyms and brands spelled as people write them. Objects that only group attributes
//! (`geo`, `category`, `metrics`…) are left out of the name.

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

/// The name an attribute gets unless another property already took it. `path` starts with `person`
/// or `company`.
pub(crate) fn preferred_name(path: &[&str]) -> String {
    derive(path, true)
}

/// The name derived from every segment of the path, groups included: what an attribute is called when
/// its preferred name is taken.
pub(crate) fn path_name(path: &[&str]) -> String {
    derive(path, false)
}

fn derive(path: &[&str], leave_groups_out: bool) -> String {
    let mut words = Vec::new();
    for (depth, segment) in path.iter().enumerate() {
        let group = path[..=depth].join(".");
        let is_group = depth + 1 < path.len() && GROUPS_LEFT_OUT.contains(&group.as_str());
        if !(leave_groups_out && is_group) {
            words.extend(split_words(segment).into_iter().map(spell));
        }
    }
    words.join(" ")
}

/// `alexaUsRank` → `alexa`, `Us`, `Rank`; `usEIN` → `us`, `EIN`; `sic4Codes` → `sic4`, `Codes`;
/// `customer_service` → `customer`, `service`.
fn split_words(segment: &str) -> Vec<&str> {
    let mut words = Vec::new();
    for part in segment.split(|c: char| c == '_' || c == '-' || c == '.' || c.is_whitespace()) {
        let chars: Vec<(usize, char)> = part.char_indices().collect();
        let mut start = 0;
        for (position, &(index, c)) in chars.iter().enumerate().skip(1) {
            let previous = chars[position - 1].1;
            let next_is_lower = chars.get(position + 1).is_some_and(|(_, next)| next.is_lowercase());
            let starts_word = c.is_uppercase()
                && (previous.is_lowercase()
                    || previous.is_ascii_digit()
                    || (previous.is_uppercase() && next_is_lower));
            if starts_word {
                words.push(&part[start..index]);
                start = index;
            }
        }
        words.push(&part[start..]);
    }
    words.retain(|word| !word.is_empty());
    words
}

fn spell(word: &str) -> String {
    let lower = word.to_lowercase();
    if let Some((_, spelling)) = SPELLINGS.iter().find(|(known, _)| *known == lower) {
        return (*spelling).to_owned();
    }
    let mut chars = word.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue;

    fn name(dotted: &str) -> String {
        preferred_name(&dotted.split('.').collect::<Vec<_>>())
    }

    #[test]
    fn splits_camel_and_snake_case() {
        assert_eq!(split_words("alexaUsRank"), ["alexa", "Us", "Rank"]);
        assert_eq!(split_words("usEIN"), ["us", "EIN"]);
        assert_eq!(split_words("HTMLTitle"), ["HTML", "Title"]);
        assert_eq!(split_words("sic4Codes"), ["sic4", "Codes"]);
        assert_eq!(split_words("customer_service"), ["customer", "service"]);
        assert_eq!(split_words("h1"), ["h1"]);
        assert_eq!(split_words("__"), Vec::<&str>::new());
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
            let path = catalogue::path_of(attribute);
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
        assert_eq!(path_name(&path), "Company Metrics Alexa US Rank");
        assert_eq!(path_name(&["person", "employment", "title"]), "Person Employment Title");
    }
}
