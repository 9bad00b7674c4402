//! Names from the config (a schema, a column) put into SQL: checked, then quoted, so that no name can
//! change what a query means.

/// The longest name Redshift accepts, in bytes (PostgreSQL cuts names at 63).
const MAX_NAME_BYTES: usize = 127;

/// `name` as a quoted identifier: in double quotes, with inner double quotes doubled. PostgreSQL and
/// Redshift then read exactly this name, whatever it contains, in the case it is written in.
pub(crate) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// What is wrong with `name` as the name of a schema or a column, if anything.
pub(crate) fn name_problem(name: &str) -> Option<String> {
    if name.trim().is_empty() {
        Some("is empty".to_owned())
    } else if name.contains('\0') {
        Some("contains a NUL character, which no PostgreSQL name can".to_owned())
    } else if name.trim() != name {
        Some(format!("{name:?} has leading or trailing spaces"))
    } else if name.len() > MAX_NAME_BYTES {
        Some(format!("is {} bytes long; names have at most {MAX_NAME_BYTES}", name.len()))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_names_so_that_they_stay_names() {
        assert_eq!(quoted("main_production"), "\"main_production\"");
        assert_eq!(quoted("Work Email"), "\"Work Email\"");
        assert_eq!(quoted("x\"; DROP TABLE users; --"), "\"x\"\"; DROP TABLE users; --\"");
    }

    #[test]
    fn refuses_names_no_server_would_take() {
        assert_eq!(name_problem("main_production"), None);
        assert_eq!(name_problem("Zoë's \"email\""), None);
        assert_eq!(name_problem("").as_deref(), Some("is empty"));
        assert_eq!(name_problem("  ").as_deref(), Some("is empty"));
        assert!(name_problem("a\0b").unwrap().contains("NUL"));
        assert!(name_problem(" email").unwrap().contains("leading or trailing"));
        assert!(name_problem(&"x".repeat(128)).unwrap().contains("at most 127"));
    }
}
