//! Every People Data Labs person field this source writes, with the Heap property it becomes: the single
//! source of names. Where a Clearbit attribute means the same thing, the name is Clearbit's (`Company
//! Name`, `Person Job Title`), so that dashboards survive a change of provider; the value vocabularies
//! may still differ (PDL's industries and roles are its own lists).
//!
//! Names are stable across releases: a property renamed here would split a user's history in two.

use PropertyKind::{Date, List, Number, Text, Url};
use std::sync::LazyLock;

use enrich_core::selection::{Catalogue, PropertySelection};
use enrich_core::{PropertyInfo, PropertyKind};

use crate::answer::PROVIDER;

/// The property every completed check writes with its time; the engine writes it.
pub(crate) const DATE_LAST_CHECKED: &str = "People Data Labs: Date Last Checked";

/// What PDL found at the last check: `person and company`, `person only` or `not found`, the words of
/// `Clearbit: Match`.
pub(crate) const MATCH: &str = "People Data Labs: Match";

/// How sure PDL is that the person found is the one asked for, 1 to 10 (logarithmic).
pub(crate) const LIKELIHOOD: &str = "People Data Labs: Likelihood";

/// Person fields: (field of `data`, property name, kind, description).
pub(crate) const FIELDS: &[(&str, &str, PropertyKind, &str)] = &[
    ("full_name", "Person Full Name", Text, "The person's full name, such as Sean Thorne"),
    ("first_name", "Person Given Name", Text, "The person's first name, such as Sean"),
    ("last_name", "Person Family Name", Text, "The person's last name, such as Thorne"),
    ("sex", "Person Gender", Text, "The person's sex as PDL records it: male or female"),
    ("birth_year", "Person Birth Year", Number, "The year the person was born"),
    (
        "headline",
        "Person Headline",
        Text,
        "The person's own headline, such as senior data engineer at people data labs",
    ),
    ("summary", "Person Bio", Text, "The person's own summary of themselves"),
    (
        "industry",
        "Person Industry",
        Text,
        "The industry the person works in, from PDL's list, such as computer software",
    ),
    (
        "job_title",
        "Person Job Title",
        Text,
        "The person's current job title, such as Co-Founder and Chief Executive Officer",
    ),
    (
        "job_title_role",
        "Person Job Role",
        Text,
        "The role of the current job, from PDL's list, such as operations",
    ),
    (
        "job_title_sub_role",
        "Person Job Sub Role",
        Text,
        "The sub-role of the current job, from PDL's list, such as logistics",
    ),
    (
        "job_title_class",
        "Person Job Class",
        Text,
        "The class of the current job: general_and_administrative, research_and_development, sales_and_marketing, services or unemployed",
    ),
    (
        "job_title_levels",
        "Person Job Seniority",
        List,
        "The levels of the current job, such as cxo, owner (unpaid, training, entry, manager, senior, partner, director, vp, owner, cxo)",
    ),
    (
        "job_start_date",
        "Person Job Start Date",
        Text,
        "When the current job started: YYYY, YYYY-MM or YYYY-MM-DD",
    ),
    ("job_last_changed", "Person Job Last Changed", Text, "When PDL last saw the current job change"),
    ("job_last_verified", "Person Job Last Verified", Text, "When PDL last confirmed the current job"),
    (
        "inferred_salary",
        "Person Inferred Salary",
        Text,
        "PDL's estimate of the person's salary range, such as 70,000-85,000",
    ),
    (
        "inferred_years_experience",
        "Person Years of Experience",
        Number,
        "PDL's estimate of the person's years of work experience",
    ),
    (
        "location_name",
        "Person Location",
        Text,
        "Where the person lives, such as Berkeley, California, United States",
    ),
    ("location_locality", "Person City", Text, "The person's city, such as Berkeley"),
    ("location_region", "Person State", Text, "The person's state or region, such as California"),
    (
        "location_metro",
        "Person Metro Area",
        Text,
        "The person's metropolitan area, such as San Francisco, California",
    ),
    ("location_country", "Person Country", Text, "The person's country, such as United States"),
    ("location_continent", "Person Continent", Text, "The person's continent, such as North America"),
    ("location_postal_code", "Person Postal Code", Text, "The person's postal code"),
    (
        "location_geo",
        "Person Coordinates",
        Text,
        "The person's location as latitude,longitude, such as 37.87,-122.27",
    ),
    ("countries", "Person Countries", List, "Every country the person is known to have lived in"),
    (
        "linkedin_url",
        "Person LinkedIn URL",
        Url,
        "The person's LinkedIn profile, such as linkedin.com/in/seanthorne",
    ),
    ("linkedin_username", "Person LinkedIn Handle", Text, "The person's LinkedIn name, such as seanthorne"),
    ("twitter_url", "Person Twitter URL", Url, "The person's Twitter profile"),
    ("github_url", "Person GitHub URL", Url, "The person's GitHub profile"),
    ("facebook_url", "Person Facebook URL", Url, "The person's Facebook profile"),
    ("work_email", "Person Work Email", Text, "The person's current work email (a paid plan's field)"),
    (
        "mobile_phone",
        "Person Phone",
        Text,
        "The person's mobile phone number, such as +15558675309 (a paid plan's field)",
    ),
    ("skills", "Person Skills", List, "The person's skills, A to Z"),
    ("interests", "Person Interests", List, "The person's interests, A to Z"),
    (
        "job_company_name",
        "Company Name",
        Text,
        "The name of the person's current company, such as People Data Labs",
    ),
    (
        "job_company_website",
        "Company Domain",
        Text,
        "The website of the current company, such as peopledatalabs.com",
    ),
    (
        "job_company_industry",
        "Company Industry",
        Text,
        "The current company's industry, from PDL's list (not Clearbit's), such as computer software",
    ),
    (
        "job_company_size",
        "Company Employees Range",
        Text,
        "The current company's self-reported size: 1-10, 11-50, 51-200, 201-500, 501-1000, 1001-5000, 5001-10000 or 10001+",
    ),
    (
        "job_company_employee_count",
        "Company PDL Profiles",
        Number,
        "How many PDL profiles work at the current company (not its headcount)",
    ),
    ("job_company_founded", "Company Founded Year", Number, "The year the current company was founded"),
    (
        "job_company_type",
        "Company Type",
        Text,
        "The current company's type: educational, government, nonprofit, private, public or public_subsidiary",
    ),
    ("job_company_ticker", "Company Ticker", Text, "The current company's stock ticker, when public"),
    (
        "job_company_inferred_revenue",
        "Company Estimated Annual Revenue",
        Text,
        "PDL's estimate of the current company's revenue range, such as $25M-$50M",
    ),
    (
        "job_company_total_funding_raised",
        "Company Raised",
        Number,
        "The funding the current company has raised, in US dollars",
    ),
    (
        "job_company_12mo_employee_growth_rate",
        "Company Employee Growth Rate",
        Number,
        "The change of the current company's headcount over 12 months, as a fraction (-0.14 is 14% fewer)",
    ),
    ("job_company_linkedin_url", "Company LinkedIn URL", Url, "The current company's LinkedIn page"),
    (
        "job_company_id",
        "Company PDL ID",
        Text,
        "PDL's identifier of the current company; for matching with PDL exports",
    ),
    ("job_company_location_name", "Company Location", Text, "Where the current company has its headquarters"),
    ("job_company_location_locality", "Company City", Text, "The city of the current company's headquarters"),
    (
        "job_company_location_region",
        "Company State",
        Text,
        "The state or region of the current company's headquarters",
    ),
    (
        "job_company_location_metro",
        "Company Metro Area",
        Text,
        "The metropolitan area of the current company's headquarters",
    ),
    (
        "job_company_location_country",
        "Company Country",
        Text,
        "The country of the current company's headquarters",
    ),
    (
        "job_company_location_continent",
        "Company Continent",
        Text,
        "The continent of the current company's headquarters",
    ),
    (
        "job_company_location_street_address",
        "Company Street Address",
        Text,
        "The street address of the current company's headquarters",
    ),
    (
        "job_company_location_address_line_2",
        "Company Address Line 2",
        Text,
        "The second address line of the current company's headquarters",
    ),
    (
        "job_company_location_postal_code",
        "Company Postal Code",
        Text,
        "The postal code of the current company's headquarters",
    ),
    (
        "job_company_location_geo",
        "Company Coordinates",
        Text,
        "The current company's headquarters as latitude,longitude",
    ),
];

/// The catalogue as the shared property selection reads it: flat fields of `data`, nothing written
/// that the catalogue does not name, booleans never values (free plans' placeholders).
pub(crate) static SELECTION_CATALOGUE: LazyLock<Catalogue> = LazyLock::new(|| {
    let (about_the_check, fields) = entries();
    Catalogue::new(PROVIDER, fields, about_the_check)
});

/// Every property this source can write: the three about the check, then the fields, by name.
pub fn catalogue() -> Vec<PropertyInfo> {
    every_field().properties()
}

/// Every catalogued field under the catalogue's names: the default selection.
pub(crate) fn every_field() -> PropertySelection {
    PropertySelection::everything(&SELECTION_CATALOGUE)
}

/// The properties about the check, and the fields.
fn entries() -> (Vec<PropertyInfo>, Vec<PropertyInfo>) {
    let info = |name: &str, path: Option<&str>, kind, description: &str| PropertyInfo {
        name: name.to_owned(),
        path: path.map(str::to_owned),
        kind,
        description: description.to_owned(),
        derived: false,
    };
    let about_the_check = [
        info(
            DATE_LAST_CHECKED,
            None,
            Date,
            "When People Data Labs was last asked about the user (UTC), whether it found anything or not",
        ),
        info(
            MATCH,
            None,
            Text,
            "What People Data Labs found for the user's email at the last check: person and company, person only, or not found",
        ),
        info(
            LIKELIHOOD,
            None,
            Number,
            "How sure People Data Labs is that the person found is the user, 1 to 10 (logarithmic: 2 is a 10-30% chance)",
        ),
    ];
    let fields =
        FIELDS.iter().map(|(field, name, kind, description)| info(name, Some(field), *kind, description));
    (about_the_check.into(), fields.collect())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn names_are_unique_and_fields_too() {
        let names: HashSet<String> = catalogue().iter().map(|info| info.name.to_lowercase()).collect();
        assert_eq!(names.len(), FIELDS.len() + 3);
        let fields: HashSet<&str> = FIELDS.iter().map(|(field, ..)| *field).collect();
        assert_eq!(fields.len(), FIELDS.len());
    }

    #[test]
    fn shares_clearbit_names_where_the_meaning_is_the_same() {
        let name_of =
            |field: &str| FIELDS.iter().find(|(known, ..)| *known == field).map(|(_, name, ..)| *name);
        for (field, clearbit) in [
            ("job_company_name", "Company Name"),
            ("job_company_industry", "Company Industry"),
            ("job_title", "Person Job Title"),
            ("job_company_size", "Company Employees Range"),
            ("location_country", "Person Country"),
        ] {
            assert_eq!(name_of(field), Some(clearbit), "{field}");
        }
    }
}
