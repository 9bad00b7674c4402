//! Names for attributes a catalogue does not know, such as `company.metrics.newThing`, derived from
//! their path by the rules the catalogue's names follow.
//!
//! A name is every segment of the path split on camelCase and snake_case into Title Case words, with
//! acronyms and brands spelled as people write them. Objects that only group attributes (`geo`,
//! `metrics`…) are left out of the name.

/// A source's naming rules.
#[derive(Debug, Clone, Copy)]
pub struct Naming {
    /// Objects that only group attributes: their own name is left out of their attributes' names, so
    /// that `company.category.industry` is `Company Industry`.
    pub groups_left_out: &'static [&'static str],
    /// Words not spelled in plain Title Case, by their lower-case form: `("url", "URL")`.
    pub spellings: &'static [(&'static str, &'static str)],
}

impl Naming {
    /// The name an attribute gets unless another property already took it.
    pub fn preferred_name(&self, path: &[&str]) -> String {
        self.derive(path, true)
    }

    /// The name derived from every segment of the path, groups included: what an attribute is called
    /// when its preferred name is taken.
    pub fn path_name(&self, path: &[&str]) -> String {
        self.derive(path, false)
    }

    fn derive(&self, path: &[&str], leave_groups_out: bool) -> String {
        let mut words = Vec::new();
        for (depth, segment) in path.iter().enumerate() {
            let is_group = depth + 1 < path.len() && self.is_group(&path[..=depth]);
            if !(leave_groups_out && is_group) {
                words.extend(split_words(segment).into_iter().map(|word| self.spell(word)));
            }
        }
        words.join(" ")
    }

    fn is_group(&self, path: &[&str]) -> bool {
        self.groups_left_out.iter().any(|group| {
            let mut segments = group.split('.');
            path.iter().all(|segment| segments.next() == Some(segment)) && segments.next().is_none()
        })
    }

    fn spell(&self, word: &str) -> String {
        let lower = word.to_lowercase();
        if let Some((_, spelling)) = self.spellings.iter().find(|(known, _)| *known == lower) {
            return (*spelling).to_owned();
        }
        let mut chars = word.chars();
        chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
    }
}

/// `alexaUsRank` → `alexa`, `Us`, `Rank`; `usEIN` → `us`, `EIN`; `sic4Codes` → `sic4`, `Codes`;
/// `customer_service` → `customer`, `service`.
pub fn split_words(segment: &str) -> Vec<&str> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const NAMING: Naming = Naming { groups_left_out: &["company.metrics"], spellings: &[("us", "US")] };

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
    fn groups_are_left_out_of_the_preferred_name_only() {
        let path = ["company", "metrics", "alexaUsRank"];
        assert_eq!(NAMING.preferred_name(&path), "Company Alexa US Rank");
        assert_eq!(NAMING.path_name(&path), "Company Metrics Alexa US Rank");
        assert_eq!(NAMING.preferred_name(&["company", "metrics"]), "Company Metrics");
    }
}
