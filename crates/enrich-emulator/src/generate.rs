//! Records for addresses the real samples do not cover, shaped like Clearbit's. Every choice comes from a
//! stream seeded by a stable hash of the email or domain, so one input always yields the same record, on
//! every run and machine (std's `DefaultHasher` promises neither).

mod tables;

use serde_json::{Value, json};
use tables::{
    CATEGORIES, CITIES, City, EMPLOYEE_RANGES, FIRST_NAMES, FREE_MAIL_DOMAINS, JOBS, LAST_NAMES, OFFICES,
    TECHNOLOGIES,
};

pub(crate) fn is_free_mail(domain: &str) -> bool {
    FREE_MAIL_DOMAINS.contains(&domain)
}

/// Whether Clearbit has no record of this email: true for about `share` of all emails.
pub(crate) fn is_unknown(email: &str, share: f64) -> bool {
    // Salted so the decision does not correlate with the draws that build the record.
    Draw::seeded(&format!("unknown:{email}")).chance(share)
}

/// The person behind `email`, employed by `employer` (a company record) if there is one.
pub(crate) fn person(email: &str, employer: Option<&Value>) -> Value {
    let mut draw = Draw::seeded(email);
    let (local_part, domain) = email.rsplit_once('@').unwrap_or((email, ""));
    let (given_name, family_name) = name_in_local_part(local_part).unwrap_or_else(|| {
        let given_name = draw.pick(FIRST_NAMES).0;
        (given_name.to_owned(), (*draw.pick(LAST_NAMES)).to_owned())
    });
    let gender = FIRST_NAMES.iter().find(|(name, _)| *name == given_name).map(|(_, gender)| *gender);
    let id = draw.uuid();
    let handle = format!("{given_name}{family_name}").to_lowercase();
    let city = draw.pick(CITIES);
    let job = draw.pick(JOBS);
    let employment = match employer {
        Some(company) => json!({
            "domain": company["domain"],
            "name": company["name"],
            "title": job.title,
            "role": job.role,
            "subRole": job.sub_role,
            "seniority": job.seniority,
        }),
        None => json!({
            "domain": null, "name": null, "title": null, "role": null, "subRole": null, "seniority": null,
        }),
    };
    let employer_name = employer.and_then(|company| company["name"].as_str());
    let bio = employer_name.and_then(|name| draw.maybe(0.6, |_| format!("{} at {name}.", job.title)));
    let site = draw.maybe(0.2, |_| format!("https://{handle}.me"));
    let avatar = draw.maybe(0.5, |_| format!("https://d1ts43dypk8bqh.cloudfront.net/v1/avatars/{id}"));

    let github = match draw.maybe(0.3, |draw| draw.between(1_000, 90_000_000)) {
        Some(github_id) => json!({
            "handle": handle,
            "id": draw.string_or_number(github_id),
            "avatar": format!("https://avatars.githubusercontent.com/u/{github_id}?v=4"),
            "company": employer_name,
            "blog": site,
            "followers": draw.between(0, 3_000),
            "following": draw.between(0, 300),
        }),
        None => json!({
            "handle": null, "id": null, "avatar": null, "company": null, "blog": null, "followers": null,
            "following": null,
        }),
    };
    let twitter = match draw.maybe(0.4, |draw| draw.between(10_000_000, 1_700_000_000_000_000_000)) {
        Some(twitter_id) => json!({
            "handle": handle,
            "id": draw.string_or_number(twitter_id),
            "bio": bio,
            "followers": draw.between(0, 20_000),
            "following": draw.between(0, 2_000),
            "statuses": draw.between(0, 40_000),
            "favorites": draw.between(0, 60_000),
            "location": city.city,
            "site": site,
            "avatar": format!("https://pbs.twimg.com/profile_images/{twitter_id}/avatar_normal.jpg"),
        }),
        None => json!({
            "handle": null, "id": null, "bio": null, "followers": null, "following": null, "statuses": null,
            "favorites": null, "location": null, "site": null, "avatar": null,
        }),
    };
    let gravatar = match draw.maybe(0.35, |draw| format!("{:016x}{:016x}", draw.next(), draw.next())) {
        Some(digest) => {
            let image = format!("https://secure.gravatar.com/avatar/{digest}");
            let urls: Vec<Value> =
                site.iter().map(|url| json!({"value": url, "title": "Personal Website"})).collect();
            json!({
                "handle": handle,
                "urls": urls,
                "avatar": image,
                "avatars": [{"url": image, "type": "thumbnail"}],
            })
        }
        None => json!({"handle": null, "urls": [], "avatar": null, "avatars": []}),
    };
    let facebook = draw.maybe(0.3, |_| handle.clone());
    let linkedin = draw.maybe(0.8, |draw| {
        format!("in/{}-{}-{:x}", given_name.to_lowercase(), family_name.to_lowercase(), draw.next() >> 28)
    });

    json!({
        "id": id,
        "name": {
            "fullName": format!("{given_name} {family_name}"),
            "givenName": given_name,
            "familyName": family_name,
        },
        "email": email,
        "gender": gender,
        "location": format!("{}, {}, {}", city.city, city.state_code, city.country_code),
        "timeZone": city.time_zone,
        "utcOffset": city.utc_offset,
        "geo": {
            "city": city.city,
            "state": city.state,
            "stateCode": city.state_code,
            "country": city.country,
            "countryCode": city.country_code,
            "lat": city.lat,
            "lng": city.lng,
        },
        "bio": bio,
        "site": site,
        "avatar": avatar,
        "employment": employment,
        "facebook": {"handle": facebook},
        "github": github,
        "twitter": twitter,
        "linkedin": {"handle": linkedin},
        "googleplus": {"handle": null},
        "aboutme": {"handle": null, "bio": null, "avatar": null},
        "gravatar": gravatar,
        "fuzzy": draw.chance(0.05),
        "emailProvider": is_free_mail(domain),
        "indexedAt": draw.timestamp(),
    })
}

/// The company that owns `domain`; everyone at one domain gets this same company.
pub(crate) fn company(domain: &str) -> Value {
    let mut draw = Draw::seeded(domain);
    let label = brand_label(domain);
    let name = brand_name(label);
    let category = draw.pick(CATEGORIES);
    let size_weights: Vec<u32> = EMPLOYEE_RANGES.iter().map(|range| range.weight).collect();
    let size_rank = draw.weighted(&size_weights);
    let size = &EMPLOYEE_RANGES[size_rank];
    let employees = draw.between(size.min, size.max);
    let kind = match domain.rsplit('.').next() {
        Some("edu") => "education",
        Some("gov") => "government",
        Some("org") => "nonprofit",
        // Only the larger companies tend to be listed.
        _ if size_rank >= 4 && draw.chance(0.5) => "public",
        _ => "private",
    };
    let public = kind == "public";
    let office = draw.pick(OFFICES);
    let city = &office.city;
    let description = format!("{name} {}.", category.blurb);
    let url = format!("https://{domain}");
    let phone = draw.maybe(0.5, |draw| phone_number(draw, city));

    let alias_count = draw.below(3);
    let domain_aliases: Vec<String> = draw
        .distinct(&["net", "io", "co", "org", "de", "co.uk"], alias_count)
        .into_iter()
        .map(|tld| format!("{label}.{tld}"))
        .filter(|alias| alias != domain)
        .collect();
    let tech_count = draw.below(9);
    let tech = draw.distinct(TECHNOLOGIES, tech_count);
    let mut tech_categories: Vec<&str> = Vec::new();
    for (_, category) in &tech {
        if !tech_categories.contains(category) {
            tech_categories.push(category);
        }
    }

    // Bigger companies get better (smaller) traffic ranks.
    let worst_rank = 20_000_000 / 4u64.pow(size_rank as u32);
    let alexa_global_rank = draw.maybe(0.6, |draw| draw.between(worst_rank / 20 + 1, worst_rank));
    let alexa_us_rank = alexa_global_rank.map(|rank| rank / draw.between(2, 8) + 1);
    let traffic_rank = ["very_low", "low", "medium", "high", "very_high"][size_rank / 2];

    let legal_name =
        draw.maybe(0.7, |draw| format!("{name}{}", draw.pick(&[" Inc.", ", Inc.", " LLC", " Ltd", " GmbH"])));
    let location = format!(
        "{} {}, {}, {} {}, {}",
        office.street_number,
        office.street_name,
        city.city,
        city.state_code,
        office.postal_code,
        city.country,
    );
    let us_ein = match city.country_code {
        "US" => draw.maybe(0.5, |draw| draw.between(100_000_000, 999_999_999).to_string()),
        _ => None,
    };
    let ticker = public
        .then(|| label.chars().filter(char::is_ascii_alphabetic).take(4).collect::<String>().to_uppercase());
    // Funding grows with size: up to $5M for the smallest companies, a few hundred million for the largest.
    let most_raised = 5 * (size_rank as u64 + 1).pow(2);
    let raised = if public { None } else { draw.maybe(0.4, |draw| draw.between(1, most_raised) * 1_000_000) };
    let site_emails: Vec<String> = draw.maybe(0.5, |_| format!("hello@{domain}")).into_iter().collect();

    let twitter = match draw.maybe(0.7, |draw| draw.between(10_000_000, 1_600_000_000)) {
        Some(twitter_id) => json!({
            "handle": name.replace(' ', ""),
            "id": draw.string_or_number(twitter_id),
            "bio": description,
            "followers": draw.between(10, 500_000),
            "following": draw.between(10, 2_000),
            "location": city.city,
            "site": url,
            "avatar": format!("https://pbs.twimg.com/profile_images/{twitter_id}/logo_normal.png"),
        }),
        None => json!({
            "handle": null, "id": null, "bio": null, "followers": null, "following": null, "location": null,
            "site": null, "avatar": null,
        }),
    };

    json!({
        "id": draw.uuid(),
        "name": name,
        "legalName": legal_name,
        "domain": domain,
        "domainAliases": domain_aliases,
        "url": url,
        "site": {
            "url": url,
            "title": format!("{name} | {}", category.tags[0]),
            "h1": draw.maybe(0.5, |_| format!("Welcome to {name}")),
            "metaDescription": description,
            "metaAuthor": null,
            "phoneNumbers": phone.iter().collect::<Vec<_>>(),
            "emailAddresses": site_emails,
        },
        "category": {
            "sector": category.sector,
            "industryGroup": category.industry_group,
            "industry": category.industry,
            "subIndustry": category.sub_industry,
            "sicCode": category.sic_code,
            "naicsCode": category.naics_code,
            "gicsCode": category.gics_code,
        },
        "tags": category.tags,
        "description": description,
        "foundedYear": draw.maybe(0.8, |draw| draw.between(1950, 2022)),
        "location": location,
        "timeZone": city.time_zone,
        "utcOffset": city.utc_offset,
        "geo": {
            "streetNumber": office.street_number,
            "streetName": office.street_name,
            "subPremise": null,
            "streetAddress": format!("{} {}", office.street_number, office.street_name),
            "city": city.city,
            "postalCode": office.postal_code,
            "state": city.state,
            "stateCode": city.state_code,
            "country": city.country,
            "countryCode": city.country_code,
            "lat": city.lat,
            "lng": city.lng,
        },
        "identifiers": {
            "usEIN": us_ein,
            "usCIK": public.then(|| format!("{:010}", draw.between(1_000, 1_999_999))),
        },
        "metrics": {
            "alexaUsRank": alexa_us_rank,
            "alexaGlobalRank": alexa_global_rank,
            "trafficRank": traffic_rank,
            "googleRank": null,
            "employees": employees,
            "employeesRange": size.label,
            "marketCap": public.then(|| employees * draw.between(150_000, 1_500_000)),
            "raised": raised,
            "annualRevenue": public.then(|| employees * draw.between(80_000, 400_000)),
            "estimatedAnnualRevenue": size.estimated_annual_revenue,
            "fiscalYearEnd": draw.pick(&[12, 12, 12, 3, 6, 9]),
        },
        "facebook": {
            "handle": draw.maybe(0.6, |_| label.to_owned()),
            "likes": draw.maybe(0.4, |draw| draw.between(10, 2_000_000)),
        },
        "linkedin": {"handle": draw.maybe(0.8, |_| format!("company/{label}"))},
        "twitter": twitter,
        "crunchbase": {"handle": draw.maybe(0.5, |_| format!("organization/{label}"))},
        "logo": draw.maybe(0.9, |_| format!("https://logo.clearbit.com/{domain}")),
        "emailProvider": false,
        "type": kind,
        "ticker": ticker,
        "phone": phone,
        "tech": tech.iter().map(|(slug, _)| slug).collect::<Vec<_>>(),
        "techCategories": tech_categories,
        "parent": {"domain": null},
        "ultimateParent": {"domain": null},
        "indexedAt": draw.timestamp(),
    })
}

/// "jane.doe", "jane_doe" and "jane-doe" name their owner; other local parts get a name from the tables.
fn name_in_local_part(local_part: &str) -> Option<(String, String)> {
    let mut parts = local_part.split(['.', '_', '-']);
    let (Some(given_name), Some(family_name), None) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let is_name = |part: &str| part.len() >= 2 && part.chars().all(|c| c.is_ascii_alphabetic());
    (is_name(given_name) && is_name(family_name)).then(|| (capitalized(given_name), capitalized(family_name)))
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars.flat_map(char::to_lowercase)).collect(),
        None => String::new(),
    }
}

/// The label that names the organisation: "acme" in both mail.acme.com and acme.co.uk.
fn brand_label(domain: &str) -> &str {
    let mut labels: Vec<&str> = domain.split('.').collect();
    labels.pop();
    if labels.len() > 1
        && labels.last().is_some_and(|label| ["co", "com", "ac", "org", "net"].contains(label))
    {
        labels.pop();
    }
    labels.last().copied().unwrap_or(domain)
}

/// "acme" → "Acme", "blue-harbor" → "Blue Harbor", "ibm" → "IBM" (short labels are usually acronyms).
fn brand_name(label: &str) -> String {
    if label.len() <= 3 {
        return label.to_uppercase();
    }
    label.split('-').map(capitalized).collect::<Vec<_>>().join(" ")
}

fn phone_number(draw: &mut Draw, city: &City) -> String {
    format!("{} {:03}-{:04}", city.phone_prefix, draw.between(200, 999), draw.between(0, 9_999))
}

/// 64-bit FNV-1a: tiny, stable and well spread for short strings like emails.
pub(crate) fn fnv1a(text: &str) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    text.bytes().fold(OFFSET_BASIS, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(PRIME))
}

/// A deterministic stream of choices (SplitMix64 seeded with the FNV-1a hash of a text).
#[derive(Debug)]
pub(crate) struct Draw {
    state: u64,
}

impl Draw {
    pub(crate) fn seeded(text: &str) -> Draw {
        Draw { state: fnv1a(text) }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^ (mixed >> 31)
    }

    /// An evenly spread number in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        // The top 53 bits fill an f64's mantissa exactly.
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with the given probability.
    pub(crate) fn chance(&mut self, probability: f64) -> bool {
        self.unit() < probability
    }

    /// A number in `0..count`.
    fn below(&mut self, count: usize) -> usize {
        (self.next() % count as u64) as usize
    }

    /// A number in `low..=high`.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// `count` different items, in draw order.
    fn distinct<T: Copy>(&mut self, items: &[T], count: usize) -> Vec<T> {
        let mut remaining = items.to_vec();
        (0..count.min(items.len())).map(|_| remaining.swap_remove(self.below(remaining.len()))).collect()
    }

    /// An index into `weights`, chosen in proportion to them.
    fn weighted(&mut self, weights: &[u32]) -> usize {
        let mut target = self.next() % weights.iter().map(|&weight| u64::from(weight)).sum::<u64>();
        for (index, &weight) in weights.iter().enumerate() {
            if target < u64::from(weight) {
                return index;
            }
            target -= u64::from(weight);
        }
        unreachable!("the target is below the sum of the weights")
    }

    /// `Some` with the given probability: most Clearbit fields are often null.
    fn maybe<T>(&mut self, probability: f64, make: impl FnOnce(&mut Draw) -> T) -> Option<T> {
        if self.chance(probability) { Some(make(self)) } else { None }
    }

    /// Clearbit sends social ids sometimes as numbers, sometimes as strings: parsers must take both.
    fn string_or_number(&mut self, id: u64) -> Value {
        if self.chance(0.5) { json!(id) } else { json!(id.to_string()) }
    }

    fn uuid(&mut self) -> String {
        let (high, low) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            high >> 32,
            (high >> 16) & 0xffff,
            high & 0x0fff,
            (low >> 48) & 0x3fff | 0x8000,
            low & 0xffff_ffff_ffff
        )
    }

    /// An `indexedAt` timestamp in Clearbit's format, within the last few years.
    fn timestamp(&mut self) -> String {
        format!(
            "{}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            self.between(2023, 2025),
            self.between(1, 12),
            self.between(1, 28),
            self.between(0, 23),
            self.between(0, 59),
            self.between(0, 59),
            self.between(0, 999)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn names_come_from_first_dot_last_local_parts() {
        assert_eq!(name_in_local_part("jane.doe"), Some(("Jane".into(), "Doe".into())));
        assert_eq!(name_in_local_part("JANE_DOE"), Some(("Jane".into(), "Doe".into())));
        assert_eq!(name_in_local_part("jdoe"), None);
        assert_eq!(name_in_local_part("jane.doe.2"), None);
    }

    #[test]
    fn company_names_come_from_the_brand_label() {
        assert_eq!(brand_name(brand_label("mail.blue-harbor.co.uk")), "Blue Harbor");
        assert_eq!(brand_name(brand_label("ibm.com")), "IBM");
    }

    #[test]
    fn employee_counts_fall_in_their_range() {
        for domain in ["a.com", "b.io", "c.net", "delta.org", "echo.de", "foxtrot.co.uk"] {
            let company = company(domain);
            let employees = company["metrics"]["employees"].as_u64().unwrap();
            let range = company["metrics"]["employeesRange"].as_str().unwrap();
            let bucket = EMPLOYEE_RANGES.iter().find(|bucket| bucket.label == range).unwrap();
            assert!((bucket.min..=bucket.max).contains(&employees), "{domain}: {employees} not in {range}");
        }
    }
}
