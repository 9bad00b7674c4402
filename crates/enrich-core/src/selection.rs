//! Which attributes of a source's answers one connection writes, and under which names: the
//! `properties:` field every source config may hold (`include`/`exclude`/`rename`), checked against
//! the source's [`Catalogue`] and compiled; names for attributes the catalogue does not know; and the
//! walk from a JSON answer to a [`Record`] (nested objects, lists joined). Any source uses it.

mod flatten;
pub mod naming;

use std::collections::{BTreeMap, HashMap, HashSet};

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use crate::{FieldError, PropertyInfo, PropertyKind};
pub use naming::Naming;

/// What the shared selection code knows of one source's attributes.
#[derive(Debug)]
pub struct Catalogue {
    /// The provider, for messages: `Clearbit`.
    pub provider: &'static str,
    /// Every known attribute, each with its path (`company.site.url`, `job_title`).
    pub attributes: Vec<PropertyInfo>,
    /// Paths of attributes the provider no longer maintains: written only when `include` names them.
    pub deprecated: &'static [&'static str],
    /// The properties every check writes about itself, listed first; no rename may take their names.
    pub check_properties: Vec<PropertyInfo>,
    /// The objects every attribute path starts in (`person`, `company`), or none for flat answers.
    pub roots: &'static [&'static str],
    /// How attributes the catalogue does not know are named, or `None` to leave them out: a source
    /// whose unknown fields are no attributes (PDL's `experience` objects) writes only the catalogue.
    pub naming: Option<Naming>,
    /// Whether `true`/`false` are values (`Person Fuzzy Match`), or placeholders never written (PDL's
    /// free plans answer `true` in place of a city).
    pub booleans_are_values: bool,
    by_path: HashMap<String, usize>,
}

impl Catalogue {
    pub fn new(
        provider: &'static str,
        attributes: Vec<PropertyInfo>,
        check_properties: Vec<PropertyInfo>,
    ) -> Self {
        let by_path =
            attributes.iter().enumerate().map(|(index, info)| (path_of(info).to_owned(), index)).collect();
        Self {
            provider,
            attributes,
            deprecated: &[],
            check_properties,
            roots: &[],
            naming: None,
            booleans_are_values: false,
            by_path,
        }
    }

    /// The catalogue entry of an attribute path.
    pub fn known(&self, path: &str) -> Option<&PropertyInfo> {
        self.by_path.get(path).map(|&index| &self.attributes[index])
    }

    pub fn is_deprecated(&self, path: &str) -> bool {
        self.deprecated.contains(&path)
    }

    fn paths(&self) -> impl Iterator<Item = &str> {
        self.attributes.iter().map(path_of)
    }
}

/// The path of a catalogue entry, which every entry has.
pub fn path_of(attribute: &PropertyInfo) -> &str {
    attribute.path.as_deref().unwrap_or_default()
}

/// The `properties` field of a source config, as written:
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
    /// Property names by attribute path, in place of the catalogue's or derived ones.
    pub rename: BTreeMap<String, String>,
}

/// A [`PropertiesConfig`] checked against a catalogue and compiled.
#[derive(Debug, Clone)]
pub struct PropertySelection {
    catalogue: &'static Catalogue,
    /// `None` includes everything but deprecated attributes.
    include: Option<GlobSet>,
    /// Deprecated attributes `include` names by their exact path: only these are written.
    chosen_deprecated: HashSet<String>,
    exclude: GlobSet,
    /// Every catalogued or renamed attribute with all that mapping it needs, in the order of their
    /// names, so that a record's properties come out of its entries already sorted.
    entries: Vec<Entry>,
    /// The place in `entries` of each attribute path. Looked up for every attribute of every answer,
    /// so with a hasher quicker than std's: its keys are the catalogue's and the config's, which no
    /// answer can add to.
    places: rustc_hash::FxHashMap<String, usize>,
    /// In lower case, the names a derived name must not take: every catalogue name, renamed or not, and
    /// every rename, so that one property never stands for two attributes, whichever a record holds.
    reserved: HashSet<String>,
}

/// What mapping one catalogued or renamed attribute needs, worked out once per selection rather than
/// once per attribute of every answer.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    /// The catalogue's kind, for a catalogued attribute.
    known: Option<PropertyKind>,
    included: bool,
}

impl PropertySelection {
    /// Every attribute under the catalogue's names.
    pub fn everything(catalogue: &'static Catalogue) -> Self {
        Self::compiled(catalogue, None, HashSet::new(), GlobSet::empty(), &BTreeMap::new())
    }

    /// Compiles a config, or says everything wrong with it. Fields are relative to `properties`, such as
    /// `include[1]` or `rename.company.metrics.employeesRange`.
    pub fn new(catalogue: &'static Catalogue, config: &PropertiesConfig) -> Result<Self, Vec<FieldError>> {
        let mut problems = Vec::new();
        let include = config.include.as_ref().map(|globs| {
            if globs.is_empty() {
                problems.push(FieldError::new(
                    "include",
                    "is empty, which would write no attribute: list globs of attribute paths, or leave \
                     include out to write every attribute",
                ));
            }
            compile_globs(catalogue, "include", globs, &mut problems)
        });
        let exclude = compile_globs(catalogue, "exclude", &config.exclude, &mut problems);
        let chosen_deprecated = config
            .include
            .iter()
            .flatten()
            .map(|glob| glob.trim())
            .filter(|path| catalogue.is_deprecated(path))
            .map(str::to_owned)
            .collect();
        let selection = Self::compiled(catalogue, include, chosen_deprecated, exclude, &config.rename);
        problems.extend(selection.rename_problems(&config.rename));
        if problems.is_empty() { Ok(selection) } else { Err(problems) }
    }

    /// [`Self::new`] for the `properties` field of a source config: fields are named from the source's
    /// section, such as `properties.include[1]`.
    pub fn of_field(
        catalogue: &'static Catalogue,
        config: &PropertiesConfig,
    ) -> Result<Self, Vec<FieldError>> {
        Self::new(catalogue, config).map_err(|problems| {
            let under = |problem: FieldError| {
                FieldError::new(format!("properties.{}", problem.field), problem.message)
            };
            problems.into_iter().map(under).collect()
        })
    }

    fn compiled(
        catalogue: &'static Catalogue,
        include: Option<GlobSet>,
        chosen_deprecated: HashSet<String>,
        exclude: GlobSet,
        renames: &BTreeMap<String, String>,
    ) -> Self {
        let mut names: HashMap<String, String> = catalogue
            .attributes
            .iter()
            .map(|attribute| (path_of(attribute).to_owned(), attribute.name.clone()))
            .collect();
        let mut reserved: HashSet<String> = names.values().map(|name| name.to_lowercase()).collect();
        for (path, name) in renames {
            let name = name.trim();
            reserved.insert(name.to_lowercase());
            names.insert(path.clone(), name.to_owned());
        }
        let mut named: Vec<(String, String)> = names.into_iter().collect();
        named.sort_by(|(path_a, name_a), (path_b, name_b)| name_a.cmp(name_b).then(path_a.cmp(path_b)));
        let places = named.iter().enumerate().map(|(place, (path, _))| (path.clone(), place)).collect();
        let mut selection =
            Self { catalogue, include, chosen_deprecated, exclude, entries: Vec::new(), places, reserved };
        selection.entries = named
            .into_iter()
            .map(|(path, name)| Entry {
                known: catalogue.known(&path).map(|attribute| attribute.kind),
                included: selection.matches(&path),
                name,
            })
            .collect();
        selection
    }

    /// The place in `entries` of a catalogued or renamed attribute.
    fn place(&self, path: &str) -> Option<usize> {
        self.places.get(path).copied()
    }

    fn entry(&self, path: &str) -> Option<&Entry> {
        self.place(path).map(|place| &self.entries[place])
    }

    pub fn catalogue(&self) -> &'static Catalogue {
        self.catalogue
    }

    /// Whether the attribute at `path` (such as `company.site.url`) is written. A deprecated attribute
    /// is written only when `include` names it exactly: a glob such as `company.*` does not bring back
    /// what the provider no longer maintains.
    pub fn includes(&self, path: &str) -> bool {
        self.entry(path).map_or_else(|| self.matches(path), |entry| entry.included)
    }

    /// What [`Self::includes`] says, worked out from the globs.
    fn matches(&self, path: &str) -> bool {
        let included = if self.catalogue.is_deprecated(path) {
            self.chosen_deprecated.contains(path)
        } else {
            self.include.as_ref().is_none_or(|include| include.is_match(path))
        };
        included && !self.exclude.is_match(path)
    }

    /// Every property a connection with this selection can write: those about the check first, then
    /// the included catalogue entries, renamed, by name.
    pub fn properties(&self) -> Vec<PropertyInfo> {
        let mut attributes: Vec<PropertyInfo> = self
            .catalogue
            .attributes
            .iter()
            .filter(|attribute| self.includes(path_of(attribute)))
            .map(|attribute| PropertyInfo {
                name: self.entries[self.places[path_of(attribute)]].name.clone(),
                ..attribute.clone()
            })
            .collect();
        attributes.sort_by(|a, b| a.name.cmp(&b.name));
        self.catalogue.check_properties.iter().cloned().chain(attributes).collect()
    }

    /// The catalogue's or the config's name for an attribute; `None` when it is to be derived.
    pub fn name_of(&self, path: &str) -> Option<&str> {
        self.entry(path).map(|entry| entry.name.as_str())
    }

    /// Whether a derived name must stay clear of `lower_case_name`.
    pub fn reserves(&self, lower_case_name: &str) -> bool {
        self.reserved.contains(lower_case_name)
    }

    fn rename_problems(&self, renames: &BTreeMap<String, String>) -> Vec<FieldError> {
        let catalogue = self.catalogue;
        let provider = catalogue.provider;
        // Who holds each name (in lower case): included attributes keep the catalogue's unless renamed.
        let mut holders: HashMap<String, &str> = catalogue
            .paths()
            .filter(|path| self.includes(path) && !renames.contains_key(*path))
            .map(|path| (self.entries[self.places[path]].name.to_lowercase(), path))
            .collect();
        let mut problems = Vec::new();
        for (path, name) in renames {
            let name = name.trim();
            let problem = if let Some(problem) = shape_problem(catalogue, path) {
                Some(problem)
            } else if let Some(member) = first_member(catalogue, path) {
                Some(format!("`{path}` is a group of attributes: rename each one, such as `{member}`"))
            } else if catalogue.known(path).is_none()
                && let Some(meant) = nearest_path_or_group(catalogue, path)
            {
                // A path the provider may add later can be renamed; one a typo away from a known one is a typo.
                Some(format!(
                    "`{path}` is no {provider} attribute, so the rename would never apply; did you mean `{meant}`?"
                ))
            } else if catalogue.known(path).is_none() && catalogue.naming.is_none() {
                Some(format!(
                    "`{path}` is no {provider} attribute this source writes, so the rename would never apply"
                ))
            } else if !self.includes(path) {
                Some(format!("`{path}` is left out by include or exclude, so the rename would never apply"))
            } else if name.is_empty() {
                Some("renames to an empty name: give a name, or leave the attribute out of rename".to_owned())
            } else if let Some(check) =
                catalogue.check_properties.iter().find(|check| check.name.eq_ignore_ascii_case(name))
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

/// Why `path` cannot be an attribute path: outside the catalogue's roots, or with an empty segment.
fn shape_problem(catalogue: &Catalogue, path: &str) -> Option<String> {
    let rest = match catalogue.roots {
        [] => Some(path),
        roots => roots.iter().find_map(|root| path.strip_prefix(root)?.strip_prefix('.')),
    };
    if rest.is_some_and(|rest| rest.split('.').all(|segment| !segment.is_empty())) {
        return None;
    }
    let example = catalogue.paths().last().unwrap_or_default();
    let starts: Vec<String> = catalogue.roots.iter().map(|root| format!("{root}.")).collect();
    let rule = if starts.is_empty() {
        String::new()
    } else {
        format!(": rename keys start with {}", starts.join(" or "))
    };
    Some(format!("`{path}` is not a {} attribute path{rule}, such as {example}", catalogue.provider))
}

/// The first known attribute inside `path`, when `path` groups attributes (`person.geo`).
fn first_member<'c>(catalogue: &'c Catalogue, path: &str) -> Option<&'c str> {
    let prefix = format!("{path}.");
    catalogue.paths().find(|member| member.starts_with(&prefix))
}

/// One glob set of every glob that compiles, with a problem for every other one and every glob that
/// matches no known attribute.
fn compile_globs(
    catalogue: &Catalogue,
    field: &str,
    patterns: &[String],
    problems: &mut Vec<FieldError>,
) -> GlobSet {
    let mut set = GlobSetBuilder::new();
    for (index, pattern) in patterns.iter().enumerate() {
        let field = format!("{field}[{index}]");
        match Glob::new(pattern) {
            Ok(glob) => {
                let matcher = glob.compile_matcher();
                if !catalogue.paths().any(|path| matcher.is_match(path)) {
                    problems.push(FieldError::new(field, matches_nothing(catalogue, pattern)));
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
fn matches_nothing(catalogue: &Catalogue, pattern: &str) -> String {
    let mut message = format!("`{pattern}` matches no {} attribute", catalogue.provider);
    if let Some(suggestion) = nearest_path_or_group(catalogue, pattern) {
        message.push_str(&format!("; did you mean `{suggestion}`?"));
    }
    message
}

/// The attribute path or group glob (`person.geo.*`) within a few typing mistakes of `pattern`.
fn nearest_path_or_group(catalogue: &Catalogue, pattern: &str) -> Option<String> {
    let paths = catalogue.paths().map(str::to_owned);
    let groups = catalogue.paths().flat_map(|path| {
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
    use super::edit_distance;

    #[test]
    fn edit_distance_counts_typing_mistakes() {
        assert_eq!(edit_distance("company.*", "compnay.*"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("géo", "geo"), 1);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
