//! Free and consumer mailbox domains: a connection may skip their addresses, behind which a source
//! finds no company, rather than pay for the lookup; a company lookup by domain skips them always. The list is `free_email_domains.txt`, which says
//! where it comes from and how to extend it.

use std::collections::HashSet;
use std::sync::LazyLock;

static FREE_EMAIL_DOMAINS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| domains().collect());

/// The domains of the list, as written.
fn domains() -> impl Iterator<Item = &'static str> {
    include_str!("free_email_domains.txt")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
}

/// Whether `email` is at a listed domain: exactly that domain, in any casing (`mail.yahoo.com` is not
/// `yahoo.com`).
pub fn is_free_email(email: &str) -> bool {
    email.rsplit_once('@').is_some_and(|(_, domain)| is_free_mail_domain(domain))
}

/// Whether `domain` is a listed mailbox provider's, in any casing.
pub fn is_free_mail_domain(domain: &str) -> bool {
    FREE_EMAIL_DOMAINS.contains(domain.to_ascii_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_listed_domains_exactly_in_any_casing() {
        for free in [
            "jane@gmail.com",
            "Jane.Doe@GoogleMail.com",
            "j@YAHOO.CO.UK",
            "j@hotmail.fr",
            "j@outlook.com",
            "j@live.com.mx",
            "j@icloud.com",
            "j@proton.me",
            "j@gmx.de",
            "j@web.de",
            "j@mail.ru",
            "j@yandex.ru",
            "j@qq.com",
            "j@163.com",
            "j@hey.com",
        ] {
            assert!(is_free_email(free), "{free}");
        }
        for work in [
            "jane@clearbit.com",
            "jane@mail.yahoo.com",
            "jane@gmail.com.evil.io",
            "jane@notgmail.com",
            "att@att.com",
            "gmail.com",
            "",
        ] {
            assert!(!is_free_email(work), "{work}");
        }
    }

    #[test]
    fn the_list_is_lower_case_domains_without_duplicates() {
        let mut seen = HashSet::new();
        for domain in domains() {
            let labels: Vec<&str> = domain.split('.').collect();
            assert!(
                labels.len() >= 2
                    && labels.iter().all(|label| {
                        !label.is_empty()
                            && label.bytes().all(|byte| {
                                byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-'
                            })
                    }),
                "`{domain}` is not a lower-case domain name"
            );
            assert!(seen.insert(domain), "`{domain}` is listed twice");
        }
        assert!(seen.len() > 300, "{} domains", seen.len());
    }
}
