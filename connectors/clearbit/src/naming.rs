//! Human-readable property names for Clearbit attribute paths such as `company.metrics.employeesRange`.
//!
//! A name is derived from the path: `Person` or `Company`, then every segment split on camelCase and
//! snake_case into Title Case words, with acronyms and brands spelled as people write them. Objects that
//! only group attributes (`geo`, `category`, `metrics`…) are left out of the name, and a few attributes
//! whose derived name would mislead are named by hand.

/// Names chosen by hand, where the derived name would mislead or read badly.
const OVERRIDES: &[(&str, &str)] = &[
    // The key may never be `id`, and a bare "ID" would not say whose.
    ("person.id", "Person Clearbit ID"),
    ("company.id", "Company Clearbit ID"),
    // "Employment Name" and "Employment Title" are not what anyone calls an employer or a job title.
    ("person.employment.name", "Person Employer"),
    ("person.employment.domain", "Person Employer Domain"),
    ("person.employment.title", "Person Job Title"),
    ("person.employment.role", "Person Job Role"),
    ("person.employment.subRole", "Person Job Sub Role"),
    ("person.employment.seniority", "Person Job Seniority"),
    // A true/false flag, not the name of a provider.
    ("person.emailProvider", "Person Free Email Provider"),
    ("company.emailProvider", "Company Free Email Provider"),
    // Whether Clearbit matched the person loosely.
    ("person.fuzzy", "Person Fuzzy Match"),
    // The total funding raised; "Company Raised" says too little.
    ("company.metrics.raised", "Company Funds Raised"),
];

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

/// The name an attribute gets unless another attribute already took it. `path` starts with `person`
/// or `company`.
pub(crate) fn preferred_name(path: &[&str]) -> String {
    let dotted = path.join(".");
    match OVERRIDES.iter().find(|(attribute, _)| *attribute == dotted) {
        Some((_, name)) => (*name).to_owned(),
        None => derive(path, true),
    }
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
    fn names_the_attributes_people_segment_by() {
        assert_eq!(name("company.site.url"), "Company Website URL");
        assert_eq!(name("company.url"), "Company URL");
        assert_eq!(name("company.metrics.employeesRange"), "Company Employees Range");
        assert_eq!(name("company.category.industry"), "Company Industry");
        assert_eq!(name("company.tech"), "Company Tech");
        assert_eq!(name("person.employment.title"), "Person Job Title");
        assert_eq!(name("person.name.fullName"), "Person Full Name");
        assert_eq!(name("person.id"), "Person Clearbit ID");
        assert_eq!(name("company.id"), "Company Clearbit ID");
    }

    #[test]
    fn unknown_attributes_get_a_derived_name() {
        assert_eq!(
            name("company.metrics.roleCounts.customer_service"),
            "Company Role Counts Customer Service"
        );
        assert_eq!(name("person.brandNewThing.subField"), "Person Brand New Thing Sub Field");
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
