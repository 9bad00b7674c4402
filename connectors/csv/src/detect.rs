//! Guessing a roster's columns from its header, for `enrich init`: exports name them in many ways
//! (`email`, `Email Address`, `Last Seen`, `user_id`…).

use std::path::Path;

/// The header of a roster and the columns it most likely holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetectedColumns {
    /// Every column name, in the file's order.
    pub header: Vec<String>,
    pub email: Option<String>,
    pub identity: Option<String>,
    pub last_seen: Option<String>,
    pub ip: Option<String>,
}

/// Reads the header of the CSV file at `path` and guesses which column holds what.
pub fn detect_columns(path: &Path) -> Result<DetectedColumns, String> {
    let file =
        std::fs::File::open(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(file);
    let header =
        reader.headers().map_err(|error| format!("cannot read the header of {}: {error}", path.display()))?;
    Ok(columns_of(header.iter().map(str::to_owned).collect()))
}

/// The guesses for a header: for each role, the first column whose simplified name (lowercase, letters
/// and digits only) is one of the names that role goes by, in the order of preference.
fn columns_of(header: Vec<String>) -> DetectedColumns {
    let find = |names: &[&str]| {
        names.iter().find_map(|wanted| header.iter().find(|column| simplified(column) == *wanted).cloned())
    };
    DetectedColumns {
        email: find(&["email", "emailaddress", "useremail", "mail", "workemail"]),
        identity: find(&["identity", "useridentity", "userid", "id"]),
        last_seen: find(&[
            "lastseen",
            "lastseenat",
            "lastactive",
            "lastsession",
            "lastsessiontime",
            "lastvisit",
        ]),
        ip: find(&["ipaddress", "ip", "lastip", "lastipaddress"]),
        header,
    }
}

fn simplified(column: &str) -> String {
    column.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn the_names_of_common_exports_are_recognised() {
        let heap = columns_of(header(&["User ID", "Identity", "Email Address", "Last Seen", "IP Address"]));
        assert_eq!(heap.email.as_deref(), Some("Email Address"));
        assert_eq!(heap.identity.as_deref(), Some("Identity"));
        assert_eq!(heap.last_seen.as_deref(), Some("Last Seen"));
        assert_eq!(heap.ip.as_deref(), Some("IP Address"));

        let plain = columns_of(header(&["user_id", "email", "last_seen_at"]));
        assert_eq!(
            plain.identity.as_deref(),
            Some("user_id"),
            "an identity column is preferred, else the id"
        );
        assert_eq!(plain.last_seen.as_deref(), Some("last_seen_at"));
        assert_eq!(plain.ip, None);
    }

    #[test]
    fn a_header_without_known_names_guesses_nothing() {
        let odd = columns_of(header(&["who", "when", "contact"]));
        assert_eq!((odd.email, odd.identity, odd.last_seen, odd.ip), (None, None, None, None));
        assert_eq!(odd.header, header(&["who", "when", "contact"]));
    }
}
