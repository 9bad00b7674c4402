//! How `enrich report` looks: aligned tables, CSV, and a self-contained HTML page of bar charts.

use std::borrow::Cow;
use std::fmt::Write;

use chrono::SecondsFormat;

use super::time;
use crate::report::{Breakdown, Report, RunPoint};

/// The row of users without a value, in tables and charts.
const NO_VALUE: &str = "(no value)";

/// One row of a breakdown as a table or a chart shows it.
struct Row<'a> {
    label: &'a str,
    users: u64,
    share: f64,
    /// Users without a value, shown apart from the values.
    without_value: bool,
}

/// The values, then the users without one (when there are any).
fn rows(breakdown: &Breakdown) -> Vec<Row<'_>> {
    let values = breakdown.values.iter().map(|value| Row {
        label: &value.value,
        users: value.users,
        share: value.share,
        without_value: false,
    });
    let none = (breakdown.without_value > 0).then(|| Row {
        label: NO_VALUE,
        users: breakdown.without_value,
        share: breakdown.share(breakdown.without_value),
        without_value: true,
    });
    values.chain(none).collect()
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// What the headline says of the match rate.
fn match_rate(report: &Report) -> String {
    match report.match_rate {
        Some(rate) => format!("{}: {} found of {} checked", percent(rate), report.found, report.checked()),
        None => format!("none yet: no check completed; `enrich sync {}` runs one", report.connection),
    }
}

/// Which users a breakdown counts, and how a list counts them.
fn population(breakdown: &Breakdown) -> String {
    let mut text = format!("of {} {} users", breakdown.users, breakdown.population.describe());
    if breakdown.list {
        let entries = breakdown.values.len() + breakdown.values_left_out;
        let _ = write!(text, ", each counted once for every entry");
        if breakdown.values_left_out > 0 {
            let _ = write!(text, "; the {} most common of {entries} entries", breakdown.values.len());
        }
    }
    text
}

/// The title, and the property when the connection names it otherwise.
fn heading(breakdown: &Breakdown) -> String {
    if breakdown.property == breakdown.title {
        breakdown.title.clone()
    } else {
        format!("{} (property {})", breakdown.title, breakdown.property)
    }
}

/// The report as aligned tables for a terminal.
pub fn table(report: &Report) -> String {
    let mut out =
        format!("{}: report of {} users at {}\n", report.connection, report.users, time(report.reported_at));
    let _ = writeln!(out, "  match rate  {}", match_rate(report));
    let uncounted = report.users - report.checked();
    if uncounted > 0 {
        let _ = writeln!(
            out,
            "  not counted {uncounted} users without a completed check (pending, invalid, failed)"
        );
    }
    for breakdown in &report.breakdowns {
        let _ = writeln!(out, "\n{}, {}", heading(breakdown), population(breakdown));
        if breakdown.users == 0 {
            let _ = writeln!(out, "  none yet");
            continue;
        }
        // Lists have no total: a user with several entries is in several rows.
        let total = (!breakdown.list).then_some(Row {
            label: "total",
            users: breakdown.users,
            share: 1.0,
            without_value: false,
        });
        let rows: Vec<Row> = rows(breakdown).into_iter().chain(total).collect();
        let width = rows.iter().map(|row| row.label.chars().count()).chain([5]).max().unwrap_or(5);
        let users_width = breakdown.users.to_string().len().max(5);
        let _ = writeln!(out, "  {:<width$}  {:>users_width$}  {:>6}", "VALUE", "USERS", "SHARE");
        for Row { label, users, share, .. } in rows {
            let _ = writeln!(out, "  {label:<width$}  {users:>users_width$}  {:>6}", percent(share));
        }
    }
    over_time_table(&mut out, &report.over_time);
    out
}

/// What the view over time shows, as its heading says it.
const OVER_TIME: &str = "Over time: users enriched by each run and its match rate, oldest first";

fn over_time_table(out: &mut String, runs: &[RunPoint]) {
    let _ = writeln!(out, "\n{OVER_TIME}");
    if runs.is_empty() {
        let _ = writeln!(out, "  no run yet");
        return;
    }
    let _ = writeln!(
        out,
        "  {:<23}  {:<9}  {:>8}  {:>7}  {:>10}",
        "STARTED", "RUN", "ENRICHED", "CHECKED", "MATCH RATE"
    );
    for run in runs {
        let _ = writeln!(
            out,
            "  {}  {:<9}  {:>8}  {:>7}  {:>10}",
            time(run.started_at),
            run.kind,
            run.enriched,
            run.checked,
            run.match_rate.map_or_else(|| "–".to_owned(), percent)
        );
    }
}

/// The report in long format, one row per value: `segment,value,users,share`, share from 0 to 1 and
/// an empty value for the users without one. Then one row per run, segment `Over time`: its start
/// (RFC 3339), the users it enriched and its match rate (empty when no lookup completed).
pub fn csv(report: &Report) -> String {
    let mut out = String::from("segment,value,users,share\n");
    for breakdown in &report.breakdowns {
        for row in rows(breakdown) {
            let value = if row.without_value { "" } else { row.label };
            let _ = writeln!(
                out,
                "{},{},{},{:.4}",
                csv_field(&breakdown.title),
                csv_field(value),
                row.users,
                row.share
            );
        }
    }
    for run in &report.over_time {
        let rate = run.match_rate.map_or_else(String::new, |rate| format!("{rate:.4}"));
        let started = run.started_at.to_rfc3339_opts(SecondsFormat::Secs, true);
        let _ = writeln!(out, "Over time,{started},{},{rate}", run.enriched);
    }
    out
}

/// A CSV field, quoted when it holds a separator, a quote or a line break (RFC 4180). A text a
/// spreadsheet would run as a formula (`=HYPERLINK(…)`, `+1`, `@SUM`…) is prefixed with `'`, so it reads
/// as text: values come from a service, not from whoever opens the file.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.into_owned()
    }
}

/// The report as one HTML page needing nothing from the network: inline CSS, bar charts drawn with
/// CSS, no scripts; its content security policy forbids loading anything else.
pub fn html(report: &Report) -> String {
    let connection = escape(&report.connection);
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{connection}: enrich report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n\
         <header>\n<h1>{connection}</h1>\n\
         <p>enrich report of {users} users, at <time datetime=\"{datetime}\">{time}</time></p>\n</header>\n",
        users = report.users,
        datetime = report.reported_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        time = time(report.reported_at),
    );
    let rate = report.match_rate.map_or_else(|| "–".to_owned(), percent);
    let figures = [
        ("match-rate", rate, "match rate".to_owned()),
        ("found", report.found.to_string(), "found".to_owned()),
        ("checked", report.checked().to_string(), "checked".to_owned()),
        ("users", report.users.to_string(), "users in the state".to_owned()),
    ];
    out.push_str("<section class=\"summary\">\n");
    for (class, figure, label) in figures {
        let _ =
            writeln!(out, "<p class=\"figure {class}\"><strong>{figure}</strong> <span>{label}</span></p>");
    }
    out.push_str("</section>\n");
    for breakdown in &report.breakdowns {
        chart(&mut out, breakdown);
    }
    over_time_chart(&mut out, &report.over_time);
    let _ = write!(
        out,
        "<footer>Counted by enrich {} from the state of connection {connection}: every user as last \
         checked.</footer>\n</main>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION"),
    );
    out
}

/// One breakdown as a table of bars, each as long as its users next to the longest.
fn chart(out: &mut String, breakdown: &Breakdown) {
    let _ = write!(
        out,
        "<section class=\"chart\" data-segment=\"{}\" data-property=\"{}\" data-users=\"{}\">\n\
         <h2>{}</h2>\n<p class=\"about\">{}</p>\n",
        escape(&breakdown.title),
        escape(&breakdown.property),
        breakdown.users,
        escape(&heading(breakdown)),
        escape(&population(breakdown)),
    );
    let rows = rows(breakdown);
    let Some(longest) = rows.iter().map(|row| row.users).max() else {
        out.push_str("<p class=\"empty\">No users yet.</p>\n</section>\n");
        return;
    };
    out.push_str(
        "<table class=\"bars\">\n<thead><tr><th scope=\"col\" class=\"label\">Value</th>\
         <th scope=\"col\"><span class=\"hidden\">Bar</span></th>\
         <th scope=\"col\" class=\"count\">Users</th><th scope=\"col\" class=\"share\">Share</th></tr></thead>\n<tbody>\n",
    );
    for row in rows {
        let label = escape(row.label);
        let (class, value) =
            if row.without_value { ("bar none", String::new()) } else { ("bar", label.clone()) };
        let _ = writeln!(
            out,
            "<tr class=\"{class}\" data-value=\"{value}\" data-users=\"{users}\">\
             <th scope=\"row\" class=\"label\" title=\"{label}\">{label}</th>\
             <td><span class=\"track\"><span class=\"fill\" style=\"width: {width:.1}%\"></span></span></td>\
             <td class=\"count\">{users}</td><td class=\"share\">{share}</td></tr>",
            users = row.users,
            width = row.users as f64 * 100.0 / longest as f64,
            share = percent(row.share),
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

/// The SVG chart's size, in its own units; it scales to the page's width.
const SVG_WIDTH: f64 = 720.0;
const SVG_HEIGHT: f64 = 220.0;
/// Room around the plot for the axes' labels: left, right, top, bottom.
const MARGINS: (f64, f64, f64, f64) = (44.0, 48.0, 12.0, 26.0);

/// The run history as an inline SVG chart: a bar per run for the users it enriched (the left
/// scale), and the match rate of the runs as a line over them (the right scale, 0 to 100%).
fn over_time_chart(out: &mut String, runs: &[RunPoint]) {
    let _ = write!(
        out,
        "<section class=\"over-time chart\" data-runs=\"{}\">\n<h2>Over time</h2>\n\
         <p class=\"about\">Users enriched by each run (bars, left scale) and its match rate (line, \
         right scale), oldest first</p>\n",
        runs.len()
    );
    if runs.is_empty() {
        out.push_str("<p class=\"empty\">No run yet.</p>\n</section>\n");
        return;
    }
    let (left, right, top, bottom) = MARGINS;
    let (plot_width, plot_height) = (SVG_WIDTH - left - right, SVG_HEIGHT - top - bottom);
    let most = runs.iter().map(|run| run.enriched).max().unwrap_or(0).max(1);
    let step = plot_width / runs.len() as f64;
    let base = top + plot_height;
    let _ = writeln!(
        out,
        "<svg class=\"runs\" viewBox=\"0 0 {SVG_WIDTH} {SVG_HEIGHT}\" role=\"img\" \
         aria-label=\"{OVER_TIME}\">\n\
         <line class=\"axis\" x1=\"{left}\" y1=\"{base}\" x2=\"{x2}\" y2=\"{base}\"/>\n\
         <text class=\"scale\" x=\"{lx}\" y=\"{top_label}\" text-anchor=\"end\">{most}</text>\n\
         <text class=\"scale\" x=\"{lx}\" y=\"{base}\" text-anchor=\"end\">0</text>\n\
         <text class=\"scale\" x=\"{rx}\" y=\"{top_label}\">100%</text>\n\
         <text class=\"scale\" x=\"{rx}\" y=\"{base}\">0%</text>",
        x2 = left + plot_width,
        lx = left - 6.0,
        rx = left + plot_width + 6.0,
        top_label = top + 8.0,
    );
    let mut line = Vec::new();
    for (index, run) in runs.iter().enumerate() {
        let center = left + step * (index as f64 + 0.5);
        let height = run.enriched as f64 / most as f64 * plot_height;
        let rate = run.match_rate.map_or_else(|| "none".to_owned(), percent);
        let _ = writeln!(
            out,
            "<rect class=\"enriched\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{height:.1}\" \
             data-started=\"{started}\" data-users=\"{users}\"><title>{shown}: {users} users enriched, match rate \
             {rate}</title></rect>",
            x = center - step * 0.35,
            y = base - height,
            width = step * 0.7,
            started = run.started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            users = run.enriched,
            shown = time(run.started_at),
        );
        if let Some(rate) = run.match_rate {
            line.push((center, base - rate * plot_height));
        }
    }
    // A dot per run too: a line through one run alone draws nothing.
    for (x, y) in &line {
        let _ = writeln!(out, "<circle class=\"rate-point\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\"/>");
    }
    if !line.is_empty() {
        let points: Vec<String> = line.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = writeln!(out, "<polyline class=\"match-rate\" points=\"{}\"/>", points.join(" "));
    }
    let (first, last) = (&runs[0], &runs[runs.len() - 1]);
    let _ = write!(
        out,
        "<text class=\"scale\" x=\"{left}\" y=\"{SVG_HEIGHT}\">{}</text>\n\
         <text class=\"scale\" x=\"{x}\" y=\"{SVG_HEIGHT}\" text-anchor=\"end\">{}</text>\n</svg>\n</section>\n",
        first.started_at.format("%Y-%m-%d %H:%M"),
        last.started_at.format("%Y-%m-%d %H:%M"),
        x = left + plot_width,
    );
}

/// Text safe inside HTML elements and quoted attributes.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(character),
        }
    }
    escaped
}

const STYLE: &str = "
:root { color-scheme: light dark; --ink: #1d2433; --muted: #5b6474; --line: #e3e6ec; --bar: #3b6fd8;
  --none: #a9b0bc; --card: #ffffff; --page: #f5f6f8; --rate: #d9782d; }
@media (prefers-color-scheme: dark) { :root { --ink: #e8ebf1; --muted: #9aa3b2; --line: #2c3340;
  --bar: #6d9bff; --none: #5d6575; --card: #171b22; --page: #0f1217; --rate: #f0a05a; } }
* { box-sizing: border-box; }
body { margin: 0; padding: 2rem 1.5rem 3rem; background: var(--page); color: var(--ink);
  font: 15px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; }
main { max-width: 60rem; margin: 0 auto; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
header p, .about, .empty, footer { color: var(--muted); margin: 0; }
.summary { display: flex; flex-wrap: wrap; gap: 1rem; margin: 1.5rem 0; }
.figure, .chart { background: var(--card); border: 1px solid var(--line); border-radius: 8px; }
.figure { margin: 0; padding: .8rem 1.1rem; min-width: 9rem; }
.figure strong { display: block; font-size: 1.8rem; font-variant-numeric: tabular-nums; }
.figure span { color: var(--muted); }
.chart { padding: 1.1rem 1.25rem 1.25rem; margin: 1rem 0; break-inside: avoid; }
.chart h2 { font-size: 1.15rem; margin: 0; }
.about { margin: .15rem 0 .8rem; }
table.bars { width: 100%; border-collapse: collapse; table-layout: fixed; }
.bars th, .bars td { padding: .22rem .4rem; }
.bars thead th { font-size: .8rem; font-weight: 600; color: var(--muted); text-align: left; }
th.label { width: 32%; text-align: left; font-weight: normal; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap; }
.bars .count, .bars .share { width: 4.5rem; text-align: right; font-variant-numeric: tabular-nums; }
td.share { color: var(--muted); }
.track, .fill { display: block; height: .9rem; border-radius: 3px; print-color-adjust: exact;
  -webkit-print-color-adjust: exact; }
.track { background: var(--line); }
.fill { min-width: 2px; background: var(--bar); }
.none .fill { background: var(--none); }
.none th.label { color: var(--muted); font-style: italic; }
.hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
footer { margin-top: 2rem; font-size: .85rem; }
svg.runs { display: block; width: 100%; height: auto; }
svg .axis { stroke: var(--line); }
svg .scale { fill: var(--muted); font-size: 11px; }
svg .enriched { fill: var(--bar); }
svg .match-rate { fill: none; stroke: var(--rate); stroke-width: 2; }
svg .rate-point { fill: var(--rate); }
";
