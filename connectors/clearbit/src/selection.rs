//! Which attributes one connection writes, and under which names: the `properties` field of its config,
//! checked and compiled.

use std::collections::{BTreeMap, HashMap, HashSet};

use enrich_core::{FieldError, PropertyInfo};
use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use crate::catalogue::{self, HEAP_BUILT_IN_NAMES, path_of};

/// The `properties` field of a Clearbit config, as written:
///
/// ```yaml
/// properties:
///   include: [company.*]
///   exclude: [person.geo.*, person.avatar]
///   rename: { company.metrics.employeesRange: "Company Size" }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PropertiesConfig {
    /// Globs over attribute paths, where `*` matches dots too; when absent, every attribute is included.
    pub include: Option<Vec<String>>,
    /// Globs over attribute paths left out even when included.
    pub exclude: Vec<String>,
    /// Property names by attribute path, known or not, in place of the catalogue's or derived ones.
    pub rename: BTreeMap<String, String>,
}

/// A [`PropertiesConfig`] checked and compiled. The default selects every attribute under the
/// catalogue's names.
#[derive(Debug, Clone)]
pub struct PropertySelection {
    /// `None` includes everything but deprecated attributes.
    include: Option<GlobSet>,
    /// Deprecated attributes `include` names by their exact path: only these are written.
    chosen_deprecated: HashSet<String>,
    exclude: GlobSet,
    /// The name of every catalogued or renamed attribute, by path.
    names: HashMap<String, String>,
    /// In lower case, the names a derived name must not take: every catalogue name, renamed or not, and
    /// every rename, so that one property never stands for two attributes, whichever a record holds.
    reserved: HashSet<String>,
}

impl Default for PropertySelection {
    fn default() -> Self {
        Self::compiled(None, GlobSet::empty(), &BTreeMap::new())
    }
}

impl PropertySelection {
    /// Compiles a config, or says everything wrong with it. Fields are relative to `properties`, such as
    /// `include[1]` or `rename.company.metrics.employeesRange`.
    pub fn new(config: &PropertiesConfig) -> Result<Self, Vec<FieldError>> {
        let mut problems = Vec::new();
        let include = config.include.as_ref().map(|globs| {
            if globs.is_empty() {
                problems.push(FieldError::new(
                    "include",
                    "is empty, which would write no attribute: list globs such as company.*, or leave \
                     include out to write every attribute",
                ));
            }
            compile_globs("include", globs, &mut problems)
        });
        let exclude = compile_globs("exclude", &config.exclude, &mut problems);
        let mut selection = Self::compiled(include, exclude, &config.rename);
        selection.chosen_deprecated = config
            .include
            .iter()
            .flatten()
            .map(|glob| glob.trim())
            .filter(|path| catalogue::is_deprecated(path))
            .map(str::to_owned)
            .collect();
        problems.extend(selection.rename_problems(&config.rename));
        if problems.is_empty() { Ok(selection) } else { Err(problems) }
    }

    fn compiled(include: Option<GlobSet>, exclude: GlobSet, renames: &BTreeMap<String, String>) -> Self {
        let mut names: HashMap<String, String> = catalogue::attributes()
            .iter()
            .map(|attribute| (path_of(attribute).to_owned(), attribute.name.clone()))
            .collect();
        let mut reserved: HashSet<String> = names.values().map(|name| name.to_lowercase()).collect();
        for (path, name) in renames {
            let name = name.trim();
            reserved.insert(name.to_lowercase());
            names.insert(path.clone(), name.to_owned());
        }
        Self { include, chosen_deprecated: HashSet::new(), exclude, names, reserved }
    }

    /// Whether the attribute at `path` (such as `company.site.url`) is written. A deprecated attribute
    /// is written only when `include` names it exactly: a glob such as `company.*` does not bring back
    /// what Clearbit no longer maintains.
    pub(crate) fn includes(&self, path: &str) -> bool {
        let included = if catalogue::is_deprecated(path) {
            self.chosen_deprecated.contains(path)
        } else {
            self.include.as_ref().is_none_or(|include| include.is_match(path))
        };
        included && !self.exclude.is_match(path)
    }

    /// Every property a connection with this selection can write: the two about the check first, then
    /// the included catalogue entries, renamed, by name.
    pub fn properties(&self) -> Vec<PropertyInfo> {
        let mut attributes: Vec<PropertyInfo> = catalogue::attributes()
            .iter()
            .filter(|attribute| self.includes(path_of(attribute)))
            .map(|attribute| PropertyInfo {
                name: self.names[path_of(attribute)].clone(),
                ..attribute.clone()
            })
            .collect();
        attributes.sort_by(|a, b| a.name.cmp(&b.name));
        catalogue::check_properties().into_iter().chain(attributes).collect()
    }

    /// The catalogue's or the config's name for an attribute; `None` when it is to be derived.
    pub(crate) fn name_of(&self, path: &str) -> Option<&str> {
        self.names.get(path).map(String::as_str)
    }

    /// Whether a derived name must stay clear of `lower_case_name`.
    pub(crate) fn reserves(&self, lower_case_name: &str) -> bool {
        self.reserved.contains(lower_case_name)
    }

    fn rename_problems(&self, renames: &BTreeMap<String, String>) -> Vec<FieldError> {
        // Who holds each name (in lower case): included attributes keep the catalogue's unless renamed.
        let mut holders: HashMap<String, &str> = catalogue::attributes()
            .iter()
            .map(path_of)
            .filter(|path| self.includes(path) && !renames.contains_key(*path))
            .map(|path| (self.names[path].to_lowercase(), path))
            .collect();
        let mut problems = Vec::new();
        for (path, name) in renames {
            let name = name.trim();
            let problem = if !is_attribute_path(path) {
                Some(format!(
                    "`{path}` is not a Clearbit attribute path: rename keys start with person. or company., \
                     such as company.metrics.employeesRange"
                ))
            } else if let Some(member) = first_member(path) {
                Some(format!("`{path}` is a group of attributes: rename each one, such as `{member}`"))
            } else if !is_catalogued(path)
                && let Some(meant) = nearest_path_or_group(path)
            {
                // A path Clearbit may add later can be renamed; one a typo away from a known one is a typo.
                Some(format!(
                    "`{path}` is no Clearbit attribute, so the rename would never apply; did you mean `{meant}`?"
                ))
            } else if !self.includes(path) {
                Some(format!("`{path}` is left out by include or exclude, so the rename would never apply"))
            } else if name.is_empty() {
                Some("renames to an empty name: give a name, or leave the attribute out of rename".to_owned())
            } else if name.eq_ignore_ascii_case("id") {
                Some(format!("renames to `{name}`: Heap refuses the key id in any casing"))
            } else if let Some(own) = HEAP_BUILT_IN_NAMES.iter().find(|own| own.eq_ignore_ascii_case(name)) {
                Some(format!(
                    "renames to `{own}`, one of Heap's built-in user properties, which it would overwrite"
                ))
            } else if let Some(check) =
                catalogue::check_properties().into_iter().find(|check| check.name.eq_ignore_ascii_case(name))
            {
                Some(format!("renames to `{}`, which every check writes", check.name))
            } else if let Some(holder) = holders.get(&name.to_lowercase()) {
                Some(format!("renames to `{name}`, which is already the name of `{holder}`"))
            } else {
                holders.insert(name.to_lowercase(), path);
                None
            };
            if let Some(problem) = problem {
                problems.push(FieldError::new(format!("rename.{path}"), problem));
            }
        }
        problems
    }
}

/// `person.…` or `company.…`, with no empty segment.
fn is_attribute_path(path: &str) -> bool {
    let rest = path.strip_prefix("person.").or_else(|| path.strip_prefix("company."));
    rest.is_some_and(|rest| rest.split('.').all(|segment| !segment.is_empty()))
}

/// Whether the catalogue knows the attribute at `path`.
fn is_catalogued(path: &str) -> bool {
    catalogue::attributes().iter().any(|attribute| path_of(attribute) == path)
}

/// The first known attribute inside `path`, when `path` groups attributes (`person.geo`).
fn first_member(path: &str) -> Option<&'static str> {
    let prefix = format!("{path}.");
    catalogue::attributes().iter().map(path_of).find(|member| member.starts_with(&prefix))
}

/// One glob set of every glob that compiles, with a problem for every other one and every glob that
/// matches no known attribute.
fn compile_globs(field: &str, patterns: &[String], problems: &mut Vec<FieldError>) -> GlobSet {
    let mut set = GlobSetBuilder::new();
    for (index, pattern) in patterns.iter().enumerate() {
        let field = format!("{field}[{index}]");
        match Glob::new(pattern) {
            Ok(glob) => {
                let matcher = glob.compile_matcher();
                if !catalogue::attributes().iter().any(|attribute| matcher.is_match(path_of(attribute))) {
                    problems.push(FieldError::new(field, matches_nothing(pattern)));
                }
                set.add(glob);
            }
            Err(error) => problems
                .push(FieldError::new(field, format!("`{pattern}` is not a valid glob: {}", error.kind()))),
        }
    }
    set.build().unwrap_or_else(|error| {
        problems.push(FieldError::new(field, format!("cannot be compiled: {error}")));
        GlobSet::empty()
    })
}

/// Most likely a typo: the message suggests the nearest attribute path or group.
fn matches_nothing(pattern: &str) -> String {
    let mut message = format!("`{pattern}` matches no Clearbit attribute");
    if let Some(suggestion) = nearest_path_or_group(pattern) {
        message.push_str(&format!("; did you mean `{suggestion}`?"));
    }
    message
}

/// The attribute path or group glob (`person.geo.*`) within a few typing mistakes of `pattern`.
fn nearest_path_or_group(pattern: &str) -> Option<String> {
    let paths = catalogue::attributes().iter().map(|attribute| path_of(attribute).to_owned());
    let groups = catalogue::attributes().iter().flat_map(|attribute| {
        let path = path_of(attribute);
        path.match_indices('.').map(|(end, _)| format!("{}.*", &path[..end])).collect::<Vec<_>>()
    });
    let most_mistakes = (pattern.chars().count() / 3).min(3);
    // Groups first: on a tie, `person.geo` more likely means `person.geo.*` than `person.bio`.
    groups
        .chain(paths)
        .map(|candidate| (edit_distance(pattern, &candidate), candidate))
        .filter(|(distance, _)| *distance <= most_mistakes)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, a_char) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, b_char) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(a_char != *b_char);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config(properties: serde_json::Value) -> PropertiesConfig {
        serde_json::from_value(properties).unwrap()
    }

    fn problems(properties: serde_json::Value) -> Vec<(String, String)> {
        PropertySelection::new(&config(properties))
            .unwrap_err()
            .into_iter()
            .map(|problem| (problem.field, problem.message))
            .collect()
    }

    fn selection(properties: serde_json::Value) -> PropertySelection {
        PropertySelection::new(&config(properties)).unwrap()
    }

    #[test]
    fn everything_by_default() {
        let everything = PropertySelection::default();
        for attribute in catalogue::attributes() {
            let path = path_of(attribute);
            assert_eq!(everything.includes(path), !catalogue::is_deprecated(path), "{path}");
        }
        assert!(everything.includes("company.metrics.newThing"));
        assert_eq!(selection(json!({})).properties(), everything.properties());
    }

    #[test]
    fn deprecated_attributes_are_written_only_when_named() {
        let companies = selection(json!({ "include": ["company.*"] }));
        assert!(!companies.includes("company.logo") && !companies.includes("company.metrics.alexaUsRank"));
        let named = selection(json!({ "include": ["company.*", "company.logo"] }));
        assert!(named.includes("company.logo"));
        assert!(!named.includes("company.metrics.alexaUsRank"));
        assert!(named.properties().iter().any(|property| property.name == "Company Logo"));
        let excluded = selection(json!({ "include": ["company.logo"], "exclude": ["company.logo"] }));
        assert!(!excluded.includes("company.logo"));
    }

    #[test]
    fn a_star_matches_at_any_depth() {
        let companies = selection(json!({ "include": ["company.*"] }));
        assert!(companies.includes("company.name"));
        assert!(companies.includes("company.metrics.roleCounts.sales"));
        assert!(companies.includes("company.newObject.field"));
        assert!(!companies.includes("person.name.fullName"));
        assert!(!companies.includes("person.newThing"));
    }

    #[test]
    fn exclude_wins_over_include() {
        let chosen = selection(json!({ "exclude": ["person.geo.*", "person.avatar"] }));
        assert!(!chosen.includes("person.geo.city"));
        assert!(!chosen.includes("person.geo.newField"));
        assert!(!chosen.includes("person.avatar"));
        assert!(chosen.includes("person.gravatar.avatar"));
        assert!(chosen.includes("person.geo"), "a glob for a group's members leaves the group's name");
    }

    #[test]
    fn renames_apply_to_known_and_unknown_paths() {
        let renamed = selection(json!({ "rename": {
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
        let swapped = selection(json!({ "rename": {
            "company.name": "Company Legal Name",
            "company.legalName": "Company Name",
        }}));
        assert_eq!(swapped.name_of("company.name"), Some("Company Legal Name"));
    }

    #[test]
    fn the_listing_puts_the_check_first_then_sorts_by_name() {
        let listed = selection(json!({
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
    fn a_rename_to_an_empty_name_or_id_is_reported() {
        let found = problems(json!({ "rename": { "company.name": "  ", "company.id": "ID" } }));
        assert_eq!(found[0].0, "rename.company.id");
        assert!(found[0].1.contains("refuses the key id"), "{}", found[0].1);
        assert_eq!(found[1].0, "rename.company.name");
        assert!(found[1].1.contains("empty name"), "{}", found[1].1);
    }

    #[test]
    fn a_rename_to_a_name_heap_or_the_check_writes_is_reported() {
        let found = problems(json!({ "rename": {
            "person.email": "email",
            "person.geo.city": "Initial City",
            "company.type": "Clearbit: match",
        }}));
        assert_eq!(
            found,
            [
                (
                    "rename.company.type".into(),
                    "renames to `Clearbit: Match`, which every check writes".into()
                ),
                (
                    "rename.person.email".into(),
                    "renames to `Email`, one of Heap's built-in user properties, which it would overwrite"
                        .into()
                ),
                (
                    "rename.person.geo.city".into(),
                    "renames to `Initial City`, one of Heap's built-in user properties, which it would \
                     overwrite"
                        .into()
                ),
            ]
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
        let chosen = selection(json!({
            "exclude": ["company.category.industry"],
            "rename": { "company.category.subIndustry": "Company Industry" },
        }));
        assert_eq!(chosen.name_of("company.category.subIndustry"), Some("Company Industry"));
    }

    #[test]
    fn edit_distance_counts_typing_mistakes() {
        assert_eq!(edit_distance("company.*", "compnay.*"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("géo", "geo"), 1);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
