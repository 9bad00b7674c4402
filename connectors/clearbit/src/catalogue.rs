//! Every Clearbit attribute this source knows, with the Heap property it becomes: the single source of
//! names for known attributes (an attribute Clearbit adds later is named by [`crate::naming`]), and
//! the [`Catalogue`] the shared property selection reads.
//!
//! Names are stable across releases: a property renamed here would split a user's history in two.

use std::sync::LazyLock;

use PropertyKind::{Date, Flag, List, Number, Text, Url};
use enrich_core::selection::Catalogue;
use enrich_core::{PropertyInfo, PropertyKind};

use crate::naming::NAMING;

/// The property every completed check writes with its time; the engine writes it.
pub(crate) const DATE_LAST_CHECKED: &str = "Clearbit: Date Last Checked";

/// The property every completed check writes with what Clearbit found: `person and company`,
/// `company only`, `person only` or `not found`.
pub(crate) const MATCH: &str = "Clearbit: Match";

/// Where a user's company came from: `enrichment` (their email) or `reveal` (their IP address).
pub(crate) const COMPANY_SOURCE: &str = "Clearbit: Company Source";

/// Reveal's own fields about how it matched an IP address to a company.
pub(crate) const REVEAL_FUZZY: &str = "Clearbit: Reveal Fuzzy";
pub(crate) const REVEAL_TYPE: &str = "Clearbit: Reveal Type";
pub(crate) const REVEAL_CONFIDENCE: &str = "Clearbit: Reveal Confidence";
pub(crate) const REVEAL_FIELDS: [&str; 3] = [REVEAL_FUZZY, REVEAL_TYPE, REVEAL_CONFIDENCE];

/// Person attributes: (path, property name, kind, description).
const PERSON: &[(&str, &str, PropertyKind, &str)] = &[
    (
        "person.id",
        // The key may never be `id`, and a bare "ID" would not say whose.
        "Person Clearbit ID",
        Text,
        "Clearbit's own identifier for the person; for matching with Clearbit exports, not for analysis",
    ),
    ("person.name.fullName", "Person Full Name", Text, "The person's full name, such as Alex MacCaw"),
    ("person.name.givenName", "Person Given Name", Text, "The person's first name, such as Alex"),
    ("person.name.familyName", "Person Family Name", Text, "The person's last name, such as MacCaw"),
    (
        "person.email",
        "Person Email",
        Text,
        "The email address Clearbit found the person by (Heap's own Email property is left alone)",
    ),
    ("person.gender", "Person Gender", Text, "The person's gender as Clearbit infers it, such as female"),
    (
        "person.location",
        "Person Location",
        Text,
        "Where the person is, as one line of text, such as San Francisco, CA, US",
    ),
    (
        "person.timeZone",
        "Person Time Zone",
        Text,
        "The person's time zone, such as America/Los_Angeles; good for timing emails",
    ),
    (
        "person.utcOffset",
        "Person UTC Offset",
        Number,
        "Hours between the person's local time and UTC, such as -8",
    ),
    ("person.geo.city", "Person City", Text, "The city the person lives or works in, such as San Francisco"),
    ("person.geo.state", "Person State", Text, "The person's state or region, such as California"),
    ("person.geo.stateCode", "Person State Code", Text, "The short code of the person's state, such as CA"),
    (
        "person.geo.country",
        "Person Country",
        Text,
        "The person's country, such as United States; good for segmenting by market",
    ),
    (
        "person.geo.countryCode",
        "Person Country Code",
        Text,
        "The two-letter code of the person's country, such as US",
    ),
    ("person.geo.lat", "Person Latitude", Number, "The latitude of where the person is, for maps"),
    ("person.geo.lng", "Person Longitude", Number, "The longitude of where the person is, for maps"),
    ("person.bio", "Person Bio", Text, "The short biography the person gives of themselves online"),
    ("person.site", "Person Website", Url, "The person's own website"),
    ("person.avatar", "Person Avatar", Url, "A link to the person's profile picture"),
    (
        "person.employment.domain",
        "Person Employer Domain",
        Text,
        "The website domain of the person's employer, such as clearbit.com",
    ),
    (
        "person.employment.name",
        // "Employment Name" is not what anyone calls an employer.
        "Person Employer",
        Text,
        "The company the person works for, such as Clearbit",
    ),
    (
        "person.employment.title",
        "Person Job Title",
        Text,
        "The person's job title, such as Head of Marketing",
    ),
    (
        "person.employment.role",
        "Person Job Role",
        Text,
        "The person's line of work, such as marketing, sales or engineering; good for segmenting by team",
    ),
    (
        "person.employment.subRole",
        "Person Job Sub Role",
        Text,
        "A finer line of work within the job role, such as ceo or product_marketing",
    ),
    (
        "person.employment.seniority",
        "Person Job Seniority",
        Text,
        "How senior the person is: executive, director or manager; good for finding decision makers",
    ),
    ("person.facebook.handle", "Person Facebook Handle", Text, "The person's Facebook user name"),
    (
        "person.github.handle",
        "Person GitHub Handle",
        Text,
        "The person's GitHub user name; a sign of a technical user",
    ),
    ("person.github.id", "Person GitHub ID", Text, "GitHub's number for the person's account"),
    ("person.github.avatar", "Person GitHub Avatar", Url, "A link to the person's GitHub profile picture"),
    ("person.github.company", "Person GitHub Company", Text, "The company the person names on GitHub"),
    ("person.github.blog", "Person GitHub Blog", Url, "The website the person links to from GitHub"),
    (
        "person.github.followers",
        "Person GitHub Followers",
        Number,
        "How many people follow the person on GitHub",
    ),
    (
        "person.github.following",
        "Person GitHub Following",
        Number,
        "How many people the person follows on GitHub",
    ),
    ("person.twitter.handle", "Person Twitter Handle", Text, "The person's Twitter user name, without the @"),
    ("person.twitter.id", "Person Twitter ID", Text, "Twitter's number for the person's account"),
    ("person.twitter.bio", "Person Twitter Bio", Text, "The bio on the person's Twitter profile"),
    (
        "person.twitter.followers",
        "Person Twitter Followers",
        Number,
        "How many accounts follow the person on Twitter; a measure of reach",
    ),
    (
        "person.twitter.following",
        "Person Twitter Following",
        Number,
        "How many accounts the person follows on Twitter",
    ),
    ("person.twitter.statuses", "Person Twitter Statuses", Number, "How many tweets the person has posted"),
    ("person.twitter.favorites", "Person Twitter Favorites", Number, "How many tweets the person has liked"),
    ("person.twitter.location", "Person Twitter Location", Text, "The location the person gives on Twitter"),
    ("person.twitter.site", "Person Twitter Website", Url, "The website the person links to from Twitter"),
    ("person.twitter.avatar", "Person Twitter Avatar", Url, "A link to the person's Twitter profile picture"),
    (
        "person.linkedin.handle",
        "Person LinkedIn Handle",
        Text,
        "The path of the person's LinkedIn profile, such as in/jane-doe",
    ),
    (
        "person.googleplus.handle",
        "Person Google Plus Handle",
        Text,
        "Deprecated, Google+ closed in 2019: the person's Google+ user name",
    ),
    ("person.gravatar.handle", "Person Gravatar Handle", Text, "The person's Gravatar user name"),
    (
        "person.gravatar.urls",
        "Person Gravatar URLs",
        List,
        "The websites the person lists on Gravatar, separated by commas",
    ),
    ("person.gravatar.avatar", "Person Gravatar Avatar", Url, "A link to the person's main Gravatar picture"),
    (
        "person.gravatar.avatars",
        "Person Gravatar Avatars",
        List,
        "Links to every Gravatar picture of the person, separated by commas",
    ),
    ("person.aboutme.handle", "Person About Me Handle", Text, "The person's about.me user name"),
    ("person.aboutme.bio", "Person About Me Bio", Text, "The bio on the person's about.me page"),
    ("person.aboutme.avatar", "Person About Me Avatar", Url, "A link to the person's about.me picture"),
    (
        "person.fuzzy",
        "Person Fuzzy Match",
        Flag,
        "Whether Clearbit matched the person loosely rather than by the exact email, so the data may be \
         someone else's: true or false",
    ),
    (
        "person.emailProvider",
        // A true/false flag, not the name of a provider.
        "Person Free Email Provider",
        Flag,
        "Whether the email is from a free provider such as Gmail, so a personal rather than a work \
         address: true or false",
    ),
    (
        "person.indexedAt",
        "Person Indexed At",
        Date,
        "When Clearbit last refreshed what it knows about the person",
    ),
    ("person.phone", "Person Phone", Text, "The person's phone number"),
    (
        "person.activeAt",
        "Person Active At",
        Date,
        "When the person's email address became active, as far as Clearbit knows",
    ),
    (
        "person.inactiveAt",
        "Person Inactive At",
        Date,
        "When the person's email address stopped being active, such as after they left the job it was for",
    ),
];

/// Company attributes but the role counts: (path, property name, kind, description).
const COMPANY: &[(&str, &str, PropertyKind, &str)] = &[
    (
        "company.id",
        "Company Clearbit ID",
        Text,
        "Clearbit's own identifier for the company; for matching with Clearbit exports, not for analysis",
    ),
    ("company.name", "Company Name", Text, "The company's usual name, such as Uber"),
    (
        "company.legalName",
        "Company Legal Name",
        Text,
        "The company's registered legal name, such as Calvin Klein Inc",
    ),
    (
        "company.domain",
        "Company Domain",
        Text,
        "The company's main website domain, such as uber.com; the surest way to tell companies apart",
    ),
    (
        "company.domainAliases",
        "Company Domain Aliases",
        List,
        "The company's other website domains, separated by commas",
    ),
    ("company.url", "Company URL", Url, "The address of the company's website, such as http://uber.com"),
    (
        "company.site.url",
        "Company Website URL",
        Url,
        "The address of the company website Clearbit read the title, heading and contact details from",
    ),
    ("company.site.title", "Company Website Title", Text, "The title of the company's home page"),
    ("company.site.h1", "Company Website H1", Text, "The main heading of the company's home page"),
    (
        "company.site.metaDescription",
        "Company Website Meta Description",
        Text,
        "The summary the company's home page gives search engines",
    ),
    (
        "company.site.metaAuthor",
        "Company Website Meta Author",
        Text,
        "The author the company's home page names for search engines",
    ),
    (
        "company.site.phoneNumbers",
        "Company Website Phone Numbers",
        List,
        "Phone numbers found on the company's website, separated by commas",
    ),
    (
        "company.site.emailAddresses",
        "Company Website Email Addresses",
        List,
        "Email addresses found on the company's website, separated by commas",
    ),
    (
        "company.tags",
        "Company Tags",
        List,
        "Clearbit's labels for what the company is and does, such as B2B, SaaS, E-commerce; good for \
         segmenting by business model",
    ),
    (
        "company.category.sector",
        "Company Sector",
        Text,
        "The broadest level of the company's industry, such as Information Technology",
    ),
    (
        "company.category.industryGroup",
        "Company Industry Group",
        Text,
        "The level of the company's industry below the sector, such as Software & Services",
    ),
    (
        "company.category.industry",
        "Company Industry",
        Text,
        "The company's industry, such as Internet Software & Services; good for conversion by industry",
    ),
    (
        "company.category.subIndustry",
        "Company Sub Industry",
        Text,
        "The finest level of the company's industry, such as Application Software",
    ),
    (
        "company.category.sicCode",
        "Company SIC Code",
        Text,
        "The company's Standard Industrial Classification (SIC) code, such as 47",
    ),
    (
        "company.category.naicsCode",
        "Company NAICS Code",
        Text,
        "The company's North American Industry Classification System (NAICS) code, such as 51",
    ),
    (
        "company.category.gicsCode",
        "Company GICS Code",
        Text,
        "The company's Global Industry Classification Standard (GICS) code, such as 45102010",
    ),
    (
        "company.category.sic4Codes",
        "Company SIC4 Codes",
        List,
        "Every four-digit SIC code that applies to the company, separated by commas",
    ),
    (
        "company.category.naics6Codes",
        "Company NAICS6 Codes",
        List,
        "Every six-digit NAICS code that applies to the company, separated by commas",
    ),
    (
        "company.category.naics6Codes2022",
        // As derivation named it before the catalogue knew it: users may hold it under that name.
        "Company NAICS6 Codes2022",
        List,
        "Every six-digit code of the 2022 edition of NAICS that applies to the company, separated by commas",
    ),
    (
        "company.description",
        "Company Description",
        Text,
        "A short description of what the company does, of at most 255 characters",
    ),
    (
        "company.foundedYear",
        "Company Founded Year",
        Number,
        "The year the company was founded, such as 2009; good for telling start-ups from established firms",
    ),
    (
        "company.location",
        "Company Location",
        Text,
        "The address of the company's headquarters, as one line of text",
    ),
    (
        "company.timeZone",
        "Company Time Zone",
        Text,
        "The time zone of the company's headquarters, such as America/Los_Angeles",
    ),
    (
        "company.utcOffset",
        "Company UTC Offset",
        Number,
        "Hours between the local time of the company's headquarters and UTC, such as -7",
    ),
    (
        "company.geo.streetNumber",
        "Company Street Number",
        Text,
        "The street number of the company's headquarters, such as 1455",
    ),
    (
        "company.geo.streetName",
        "Company Street Name",
        Text,
        "The street of the company's headquarters, such as Market Street",
    ),
    (
        "company.geo.subPremise",
        "Company Sub Premise",
        Text,
        "The suite, floor or unit of the company's headquarters, such as Suite 400",
    ),
    (
        "company.geo.streetAddress",
        "Company Street Address",
        Text,
        "The street address of the company's headquarters, such as 1455 Market Street",
    ),
    (
        "company.geo.city",
        "Company City",
        Text,
        "The city of the company's headquarters, such as San Francisco",
    ),
    (
        "company.geo.state",
        "Company State",
        Text,
        "The state or region of the company's headquarters, such as California",
    ),
    (
        "company.geo.stateCode",
        "Company State Code",
        Text,
        "The short code of the state of the company's headquarters, such as CA",
    ),
    (
        "company.geo.postalCode",
        "Company Postal Code",
        Text,
        "The postal code of the company's headquarters, such as 94103",
    ),
    (
        "company.geo.country",
        "Company Country",
        Text,
        "The country of the company's headquarters, such as United States; good for segmenting by market",
    ),
    (
        "company.geo.countryCode",
        "Company Country Code",
        Text,
        "The two-letter code of the country of the company's headquarters, such as US",
    ),
    ("company.geo.lat", "Company Latitude", Number, "The latitude of the company's headquarters, for maps"),
    ("company.geo.lng", "Company Longitude", Number, "The longitude of the company's headquarters, for maps"),
    (
        "company.identifiers.usEIN",
        "Company US EIN",
        Text,
        "The company's US Employer Identification Number (its tax ID), such as 452647441",
    ),
    (
        "company.identifiers.usCIK",
        "Company US CIK",
        Text,
        "The company's Central Index Key at the US SEC, for companies that file reports there",
    ),
    (
        "company.metrics.raised",
        // The total funding raised; "Company Raised" says too little.
        "Company Funds Raised",
        Number,
        "The total funding the company has raised, in US dollars; good for finding well-funded prospects",
    ),
    (
        "company.metrics.alexaUsRank",
        "Company Alexa US Rank",
        Number,
        "Deprecated, not updated since June 2023: the rank of the company's website by US traffic on Alexa",
    ),
    (
        "company.metrics.alexaGlobalRank",
        "Company Alexa Global Rank",
        Number,
        "Deprecated, not updated since June 2023: the rank of the company's website by world traffic on Alexa",
    ),
    (
        "company.metrics.trafficRank",
        "Company Traffic Rank",
        Text,
        "Clearbit's rating of the traffic of the company's website, such as very_high, high, medium or low",
    ),
    (
        "company.metrics.googleRank",
        "Company Google Rank",
        Number,
        "The Google PageRank of the company's website, from 0 to 10",
    ),
    (
        "company.metrics.employees",
        "Company Employees",
        Number,
        "How many people the company employs, as Clearbit estimates it, such as 20313",
    ),
    (
        "company.metrics.employeesRange",
        "Company Employees Range",
        Text,
        "Clearbit's headcount bracket for the company, such as 51-250; good for segmenting by company size",
    ),
    (
        "company.metrics.marketCap",
        "Company Market Cap",
        Number,
        "The stock market value of a listed company, in US dollars",
    ),
    (
        "company.metrics.annualRevenue",
        "Company Annual Revenue",
        Number,
        "The company's yearly revenue in US dollars, where it is published",
    ),
    (
        "company.metrics.estimatedAnnualRevenue",
        "Company Estimated Annual Revenue",
        Text,
        "Clearbit's bracket for the company's yearly revenue, such as $10M-$50M; good for sizing accounts",
    ),
    (
        "company.metrics.fiscalYearEnd",
        "Company Fiscal Year End",
        Number,
        "The month the company's fiscal year ends, from 1 (January) to 12 (December); useful for timing deals",
    ),
    ("company.facebook.handle", "Company Facebook Handle", Text, "The name of the company's Facebook page"),
    (
        "company.facebook.likes",
        "Company Facebook Likes",
        Number,
        "How many people like the company's Facebook page",
    ),
    (
        "company.linkedin.handle",
        "Company LinkedIn Handle",
        Text,
        "The path of the company's LinkedIn page, such as company/uber-com",
    ),
    (
        "company.crunchbase.handle",
        "Company Crunchbase Handle",
        Text,
        "The path of the company's Crunchbase profile, such as organization/uber",
    ),
    (
        "company.twitter.handle",
        "Company Twitter Handle",
        Text,
        "The company's Twitter user name, without the @",
    ),
    ("company.twitter.id", "Company Twitter ID", Text, "Twitter's number for the company's account"),
    ("company.twitter.bio", "Company Twitter Bio", Text, "The bio on the company's Twitter profile"),
    (
        "company.twitter.followers",
        "Company Twitter Followers",
        Number,
        "How many accounts follow the company on Twitter; a measure of its audience",
    ),
    (
        "company.twitter.following",
        "Company Twitter Following",
        Number,
        "How many accounts the company follows on Twitter",
    ),
    (
        "company.twitter.location",
        "Company Twitter Location",
        Text,
        "The location the company gives on Twitter",
    ),
    ("company.twitter.site", "Company Twitter Website", Url, "The website the company links to from Twitter"),
    (
        "company.twitter.avatar",
        "Company Twitter Avatar",
        Url,
        "A link to the company's Twitter profile picture",
    ),
    (
        "company.logo",
        "Company Logo",
        Url,
        "Deprecated, logo.clearbit.com shut down in December 2025: a link to the company's logo",
    ),
    (
        "company.emailProvider",
        // A true/false flag, not the name of a provider.
        "Company Free Email Provider",
        Flag,
        "Whether the domain is a free email provider such as gmail.com rather than the user's employer: \
         true or false",
    ),
    (
        "company.type",
        "Company Type",
        Text,
        "What kind of organisation it is: private, public, nonprofit, education, government or personal",
    ),
    ("company.ticker", "Company Ticker", Text, "The stock ticker of a listed company, such as UBER"),
    ("company.phone", "Company Phone", Text, "The company's main phone number"),
    (
        "company.tech",
        "Company Tech",
        List,
        "Technologies the company's website uses, such as salesforce, google_analytics; good for \
         retention by complementary technology",
    ),
    (
        "company.techCategories",
        "Company Tech Categories",
        List,
        "The kinds of technology the company uses, such as crm, analytics, advertising",
    ),
    (
        "company.parent.domain",
        "Company Parent Domain",
        Text,
        "The website domain of the company that owns this one, if any",
    ),
    (
        "company.ultimateParent.domain",
        "Company Ultimate Parent Domain",
        Text,
        "The website domain of the company at the top of the group this one belongs to",
    ),
    (
        "company.indexedAt",
        "Company Indexed At",
        Date,
        "When Clearbit last refreshed what it knows about the company",
    ),
];

/// Attributes Clearbit no longer maintains: listed and selectable by their exact path, but left out of
/// every selection that does not name them.
const DEPRECATED: &[&str] = &[
    "person.googleplus.handle",
    "company.metrics.alexaUsRank",
    "company.metrics.alexaGlobalRank",
    "company.logo",
];

/// The roles of `company.metrics.roleCounts`: (key, the role in a name, the people in a description).
const ROLES: &[(&str, &str, &str)] = &[
    ("communications", "Communications", "communications"),
    ("customer_service", "Customer Service", "customer service"),
    ("education", "Education", "education"),
    ("engineering", "Engineering", "engineering"),
    ("finance", "Finance", "finance"),
    ("health_professional", "Health Professional", "health care"),
    ("human_resources", "Human Resources", "human resources"),
    ("information_technology", "Information Technology", "information technology"),
    ("leadership", "Leadership", "leadership"),
    ("legal", "Legal", "legal"),
    ("marketing", "Marketing", "marketing"),
    ("operations", "Operations", "operations"),
    ("product", "Product", "product"),
    ("public_relations", "Public Relations", "public relations"),
    ("real_estate", "Real Estate", "real estate"),
    ("recruiting", "Recruiting", "recruiting"),
    ("research", "Research", "research"),
    ("sales", "Sales", "sales"),
];

static CATALOGUE: LazyLock<Vec<PropertyInfo>> = LazyLock::new(|| {
    let listed = PERSON.iter().chain(COMPANY).map(|&(path, name, kind, description)| PropertyInfo {
        name: name.to_owned(),
        path: Some(path.to_owned()),
        kind,
        description: description.to_owned(),
        derived: false,
    });
    // The names are the ones these attributes had when they were still named by derivation.
    let role_counts = ROLES.iter().map(|(key, role, people)| PropertyInfo {
        name: format!("Company Role Counts {role}"),
        path: Some(format!("company.metrics.roleCounts.{key}")),
        kind: Text,
        description: format!("How many of the company's people work in {people}, as a bracket such as 10-50"),
        derived: false,
    });
    listed.chain(role_counts).collect()
});

/// The catalogue as the shared property selection reads it: attributes under `person` and `company`,
/// unknown ones named by derivation, booleans written as words.
pub(crate) static SELECTION_CATALOGUE: LazyLock<Catalogue> = LazyLock::new(|| {
    let mut catalogue = Catalogue::new("Clearbit", CATALOGUE.clone(), check_properties().into());
    catalogue.deprecated = DEPRECATED;
    catalogue.roots = &["person", "company"];
    catalogue.naming = Some(NAMING);
    catalogue.booleans_are_values = true;
    catalogue
});

/// Every known attribute, person ones first, in the order of Clearbit's documentation.
pub fn catalogue() -> Vec<PropertyInfo> {
    CATALOGUE.clone()
}

#[cfg(test)]
pub(crate) fn attributes() -> &'static [PropertyInfo] {
    &CATALOGUE
}

/// The properties every completed check writes about itself, whatever Clearbit found.
pub(crate) fn check_properties() -> [PropertyInfo; 6] {
    let about_the_check = |name: &str, kind, description: &str| PropertyInfo {
        name: name.to_owned(),
        path: None,
        kind,
        description: description.to_owned(),
        derived: false,
    };
    [
        about_the_check(
            DATE_LAST_CHECKED,
            Date,
            "When Clearbit was last asked about the user (UTC), whether it found anything or not",
        ),
        about_the_check(
            MATCH,
            Text,
            "What Clearbit found for the user's email at the last check: person and company, company \
             only, person only, or not found",
        ),
        about_the_check(
            COMPANY_SOURCE,
            Text,
            "Where the company came from: enrichment (the user's email) or reveal (the IP address of their \
             latest session)",
        ),
        about_the_check(
            REVEAL_FUZZY,
            Flag,
            "Reveal: whether the IP address was matched to the company loosely rather than exactly",
        ),
        about_the_check(
            REVEAL_TYPE,
            Text,
            "Reveal: what kind of network the IP address belongs to, such as company, education or isp",
        ),
        about_the_check(
            REVEAL_CONFIDENCE,
            Text,
            "Reveal: how sure the match is, as Clearbit says it: very_high, high, medium, low or a score",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use enrich_core::selection::path_of;

    use super::*;

    /// Words that must be spelled in capitals wherever they appear.
    const ACRONYMS: &[&str] = &["URL", "URLs", "ID", "NAICS", "SIC", "EIN", "CIK", "UTC", "GICS", "US", "H1"];

    fn names() -> impl Iterator<Item = &'static str> {
        attributes().iter().map(|attribute| attribute.name.as_str())
    }

    #[test]
    fn paths_and_names_are_unique_whatever_the_case() {
        let paths: HashSet<&str> = attributes().iter().map(path_of).collect();
        assert_eq!(paths.len(), attributes().len());
        let names: HashSet<String> = names().map(str::to_lowercase).collect();
        assert_eq!(names.len(), attributes().len());
    }

    #[test]
    fn names_say_whose_attribute_they_are() {
        for attribute in attributes() {
            let prefix = if path_of(attribute).starts_with("person.") { "Person " } else { "Company " };
            assert!(attribute.name.starts_with(prefix), "{attribute:?}");
        }
    }

    #[test]
    fn names_are_title_case_with_acronyms_in_capitals() {
        for name in names() {
            for word in name.split(' ') {
                assert!(word.starts_with(|c: char| c.is_uppercase()), "{name}: {word}");
                let acronym = ACRONYMS.iter().find(|acronym| acronym.eq_ignore_ascii_case(word));
                assert!(acronym.is_none_or(|acronym| *acronym == word), "{name}: {word}");
            }
        }
    }

    #[test]
    fn every_entry_has_a_one_line_description() {
        for attribute in attributes().iter().chain(&check_properties()) {
            let description = &attribute.description;
            assert!(description.starts_with(|c: char| c.is_uppercase()), "{attribute:?}");
            assert!(!description.contains('\n') && !description.ends_with('.'), "{attribute:?}");
            assert!(description.len() < 140, "{} is too long to read at a glance", attribute.name);
        }
    }

    #[test]
    fn deprecated_attributes_are_catalogued_and_say_so() {
        for path in DEPRECATED {
            let attribute =
                SELECTION_CATALOGUE.known(path).unwrap_or_else(|| panic!("{path} is not catalogued"));
            assert!(attribute.description.starts_with("Deprecated, "), "{attribute:?}");
        }
        let said: Vec<&str> = attributes()
            .iter()
            .filter(|attribute| attribute.description.starts_with("Deprecated"))
            .map(path_of)
            .collect();
        assert_eq!(said, DEPRECATED);
    }

    #[test]
    fn looks_attributes_up_by_path() {
        assert_eq!(
            SELECTION_CATALOGUE.known("company.site.url").map(|attribute| attribute.name.as_str()),
            Some("Company Website URL")
        );
        assert_eq!(
            SELECTION_CATALOGUE.known("company.metrics.roleCounts.customer_service").map(|a| a.kind),
            Some(Text)
        );
        assert_eq!(SELECTION_CATALOGUE.known("company.metrics"), None);
    }
}
