//! What `enrich report` shows: how a connection's users break down by the source's report segments
//! (match rate, industry, company size, technologies), counted from the users' states.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use enrich_core::{Outcome, RunKind, RunRecord, Segment, UserState};
use serde::Serialize;

/// How many entries of a list segment a report shows: the most common ones.
pub const LIST_TOP: usize = 15;

/// A connection's report.
#[derive(Debug, Serialize)]
pub struct Report {
    pub connection: String,
    pub reported_at: DateTime<Utc>,
    /// Users with a state, whatever their outcome.
    pub users: u64,
    /// Users whose last check completed and found them.
    pub found: u64,
    /// Users whose last check completed and found nothing.
    pub not_found: u64,
    /// `found / (found + not_found)`; none before a check completed.
    pub match_rate: Option<f64>,
    pub breakdowns: Vec<Breakdown>,
    /// The runs kept in the history, oldest first.
    pub over_time: Vec<RunPoint>,
}

impl Report {
    /// Users whose last check completed: the ones a match rate is of.
    pub fn checked(&self) -> u64 {
        self.found + self.not_found
    }

    /// The report with the view over time of the connection's run history.
    pub fn with_history(self, runs: &[RunRecord]) -> Self {
        Self { over_time: runs.iter().map(RunPoint::of).collect(), ..self }
    }
}

/// One run as the view over time shows it: what its lookups found.
#[derive(Debug, Serialize)]
pub struct RunPoint {
    pub started_at: DateTime<Utc>,
    /// `scheduled`, `sync` or `backfill`.
    pub kind: &'static str,
    /// Users the run found: enriched by it.
    pub enriched: u64,
    /// Users whose lookup completed in the run, found or not.
    pub checked: u64,
    /// `enriched / checked`; none when no lookup completed.
    pub match_rate: Option<f64>,
}

impl RunPoint {
    fn of(run: &RunRecord) -> Self {
        let checked = run.summary.found + run.summary.not_found;
        Self {
            started_at: run.started_at,
            kind: match run.kind {
                RunKind::Scheduled => "scheduled",
                RunKind::Manual => "sync",
                RunKind::Backfill { .. } => "backfill",
            },
            enriched: run.summary.found,
            checked,
            match_rate: (checked > 0).then(|| run.summary.found as f64 / checked as f64),
        }
    }
}

/// Which users a breakdown counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Population {
    /// Found or not found: for a property every completed check writes (`Clearbit: Match`).
    Checked,
    /// Found only: for a property of what was found (`Company Industry`).
    Found,
}

impl Population {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Checked => "checked",
            Self::Found => "found",
        }
    }
}

/// Users by the values of one segment.
#[derive(Debug, Serialize)]
pub struct Breakdown {
    /// What the breakdown is called: `Company Industry`.
    pub title: String,
    /// The property as the connection names it.
    pub property: String,
    /// Each entry of the `, `-joined value counts once per user.
    pub list: bool,
    pub population: Population,
    /// How many users the population holds: what shares are of.
    pub users: u64,
    /// The most users first (then by value); a list's [`LIST_TOP`] most common entries.
    pub values: Vec<ValueCount>,
    /// Distinct entries of a list beyond its top.
    pub values_left_out: usize,
    /// Users of the population without a value.
    pub without_value: u64,
}

impl Breakdown {
    /// The share of the population `users` is, from 0 to 1.
    pub fn share(&self, users: u64) -> f64 {
        if self.users == 0 { 0.0 } else { users as f64 / self.users as f64 }
    }
}

#[derive(Debug, Serialize)]
pub struct ValueCount {
    pub value: String,
    pub users: u64,
    /// Of the breakdown's population, from 0 to 1.
    pub share: f64,
}

/// Counts users' states into a [`Report`], one state at a time, so the state is streamed.
#[derive(Debug)]
pub struct Tally {
    users: u64,
    found: u64,
    not_found: u64,
    segments: Vec<SegmentTally>,
}

#[derive(Debug)]
struct SegmentTally {
    segment: Segment,
    population: Population,
    with_value: u64,
    counts: HashMap<String, u64>,
}

impl Tally {
    pub fn new(segments: impl IntoIterator<Item = (Segment, Population)>) -> Self {
        let segments = segments
            .into_iter()
            .map(|(segment, population)| SegmentTally {
                segment,
                population,
                with_value: 0,
                counts: HashMap::new(),
            })
            .collect();
        Self { users: 0, found: 0, not_found: 0, segments }
    }

    pub fn add(&mut self, state: &UserState) {
        self.users += 1;
        match state.outcome {
            Outcome::Found => self.found += 1,
            Outcome::NotFound => self.not_found += 1,
            Outcome::Pending | Outcome::Invalid | Outcome::Failed => return,
        }
        for tally in &mut self.segments {
            if tally.population == Population::Found && state.outcome != Outcome::Found {
                continue;
            }
            let Some(value) = state.segments.get(&tally.segment.property) else { continue };
            // A list's entries count once per user, even if the list repeats one.
            let entries: BTreeSet<&str> = if tally.segment.list {
                value.split(", ").filter(|entry| !entry.is_empty()).collect()
            } else {
                BTreeSet::from([value.as_str()])
            };
            if entries.is_empty() {
                continue;
            }
            tally.with_value += 1;
            for entry in entries {
                *tally.counts.entry(canonical(entry)).or_default() += 1;
            }
        }
    }

    pub fn report(self, connection: &str, reported_at: DateTime<Utc>) -> Report {
        let checked = self.found + self.not_found;
        let breakdowns = self
            .segments
            .into_iter()
            .map(|tally| {
                let users = match tally.population {
                    Population::Checked => checked,
                    Population::Found => self.found,
                };
                let mut counts: Vec<(String, u64)> = tally.counts.into_iter().collect();
                counts.sort_by(|(a, a_users), (b, b_users)| b_users.cmp(a_users).then_with(|| a.cmp(b)));
                // Sizes and revenue ranges read in their own order, smallest first.
                if !tally.segment.list && counts.iter().all(|(value, _)| lower_bound(value).is_some()) {
                    counts.sort_by(|(a, _), (b, _)| {
                        lower_bound(a).unwrap_or(0.0).total_cmp(&lower_bound(b).unwrap_or(0.0))
                    });
                }
                let shown = if tally.segment.list { LIST_TOP.min(counts.len()) } else { counts.len() };
                let values_left_out = counts.len() - shown;
                counts.truncate(shown);
                let mut breakdown = Breakdown {
                    title: tally.segment.title,
                    property: tally.segment.property,
                    list: tally.segment.list,
                    population: tally.population,
                    users,
                    values: Vec::with_capacity(counts.len()),
                    values_left_out,
                    without_value: users - tally.with_value,
                };
                breakdown.values = counts
                    .into_iter()
                    .map(|(value, users)| ValueCount { value, users, share: breakdown.share(users) })
                    .collect();
                breakdown
            })
            .collect();
        Report {
            connection: connection.to_owned(),
            reported_at,
            users: self.users,
            found: self.found,
            not_found: self.not_found,
            match_rate: (checked > 0).then(|| self.found as f64 / checked as f64),
            breakdowns,
            over_time: Vec::new(),
        }
    }
}

/// One spelling for the variants of a range the source's vocabularies use (`10k-50k` of the older
/// API and `10K-50K` of the newer one): the range with upper-case magnitudes.
fn canonical(value: &str) -> String {
    if lower_bound(value).is_some() { value.to_uppercase() } else { value.to_owned() }
}

/// The lower bound of a range such as `11-50`, `1K-5K`, `100K+`, `$1M-$10M` or `$10B+`; `None` for
/// any other value.
fn lower_bound(value: &str) -> Option<f64> {
    let (low, rest) = amount(value)?;
    match rest {
        "" | "+" => Some(low),
        _ => {
            let (_, end) = amount(rest.strip_prefix('-')?)?;
            end.is_empty().then_some(low)
        }
    }
}

/// A leading amount (`$`, digits, a magnitude K, M, B or T in any case) and what follows it.
fn amount(text: &str) -> Option<(f64, &str)> {
    let text = text.strip_prefix('$').unwrap_or(text);
    let digits = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let number: f64 = text[..digits].parse().ok()?;
    let rest = &text[digits..];
    let magnitude = match rest.chars().next().map(|c| c.to_ascii_uppercase()) {
        Some('K') => 1e3,
        Some('M') => 1e6,
        Some('B') => 1e9,
        Some('T') => 1e12,
        _ => return Some((number, rest)),
    };
    Some((number * magnitude, &rest[1..]))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ranges_read_in_their_order_and_their_variants_are_one_value() {
        let mut tally = Tally::new([(segment("Size", false), Population::Found)]);
        for size in ["251-1K", "10k-50k", "1-10", "10K-50K", "100K+", "10K-50K", "11-50"] {
            tally.add(&user(Outcome::Found, &[("Size", size)]));
        }
        let report = tally.report("main", Utc::now());
        let values: Vec<(&str, u64)> =
            report.breakdowns[0].values.iter().map(|value| (value.value.as_str(), value.users)).collect();
        assert_eq!(values, [("1-10", 1), ("11-50", 1), ("251-1K", 1), ("10K-50K", 3), ("100K+", 1)]);
        assert_eq!(lower_bound("$1M-$10M"), Some(1e6));
        assert_eq!(lower_bound("Banks"), None);
        assert_eq!(lower_bound("2-factor"), None);
    }

    use super::*;

    fn segment(title: &str, list: bool) -> Segment {
        Segment { title: title.into(), property: format!("P {title}"), list }
    }

    fn user(outcome: Outcome, segments: &[(&str, &str)]) -> UserState {
        let segments =
            segments.iter().map(|(title, value)| (format!("P {title}"), (*value).to_owned())).collect();
        UserState { outcome, segments, ..UserState::fresh(1, Utc::now()) }
    }

    fn values(breakdown: &Breakdown) -> Vec<(&str, u64)> {
        breakdown.values.iter().map(|value| (value.value.as_str(), value.users)).collect()
    }

    #[test]
    fn counts_completed_checks_and_found_users_only() {
        let mut tally = Tally::new([
            (segment("Match", false), Population::Checked),
            (segment("Industry", false), Population::Found),
            (segment("Tech", true), Population::Found),
        ]);
        let users = [
            user(Outcome::Found, &[("Match", "company only"), ("Industry", "Banks"), ("Tech", "aws, jira")]),
            user(
                Outcome::Found,
                &[("Match", "person and company"), ("Industry", "Banks"), ("Tech", "aws, aws")],
            ),
            user(Outcome::Found, &[("Match", "person only")]),
            user(Outcome::NotFound, &[("Match", "not found")]),
            user(Outcome::Pending, &[("Match", "company only"), ("Industry", "Banks")]),
            user(Outcome::Failed, &[("Match", "company only"), ("Industry", "Banks")]),
            user(Outcome::Invalid, &[]),
        ];
        users.iter().for_each(|state| tally.add(state));
        let report = tally.report("main", Utc::now());
        assert_eq!((report.users, report.found, report.not_found), (7, 3, 1));
        assert_eq!(report.match_rate, Some(0.75));

        let [matched, industry, tech] = &report.breakdowns[..] else { panic!("three breakdowns") };
        assert_eq!(matched.users, 4, "of every completed check");
        assert_eq!(
            values(matched),
            [("company only", 1), ("not found", 1), ("person and company", 1), ("person only", 1)]
        );
        assert_eq!((industry.users, industry.without_value), (3, 1), "of found users");
        assert_eq!(values(industry), [("Banks", 2)]);
        assert!((industry.values[0].share - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(values(tech), [("aws", 2), ("jira", 1)], "an entry counts once per user");
        assert_eq!(tech.without_value, 1);
    }

    #[test]
    fn lists_keep_their_most_common_entries() {
        let mut tally = Tally::new([(segment("Tech", true), Population::Found)]);
        let all: Vec<String> = (0..LIST_TOP + 3).map(|i| format!("t{i:02}")).collect();
        tally.add(&user(Outcome::Found, &[("Tech", &all.join(", "))]));
        tally.add(&user(Outcome::Found, &[("Tech", "t17, t16")]));
        let report = tally.report("main", Utc::now());
        let tech = &report.breakdowns[0];
        assert_eq!(tech.values.len(), LIST_TOP);
        assert_eq!(values(tech)[..3], [("t16", 2), ("t17", 2), ("t00", 1)]);
        assert_eq!(tech.values_left_out, 3);
    }

    #[test]
    fn an_empty_state_reports_no_match_rate() {
        let report = Tally::new([(segment("Match", false), Population::Checked)]).report("main", Utc::now());
        assert_eq!(report.match_rate, None);
        assert!(report.breakdowns[0].values.is_empty());
    }
}
