//! The report's page: one HTML file with its style and script inside, nothing fetched
//! (exercise networks are often offline; its Content-Security-Policy forbids loading
//! anything, so a slip shows in the browser's console and in the browser test).
//!
//! Drawn on the server side, so it opens at once with 10,000 alerts and reads without
//! the script: the timeline (each host's incidents as bars over that host's own time
//! span), then per host each incident's process tree as nested `<details>` (collapsible
//! without script), the rules that fired with their ATT&CK ids, and the sensor's own
//! alerts. The script only filters by host, severity and rule. Every value read from
//! the alert files goes through maud's escaping and [`printable`].

use super::{Incident, Report};
use crate::incident::read::printable;
use crate::incident::summary::{rank, server_label, span, Row};
use crate::incident::tree::Tree;
use chrono::{DateTime, Utc};
use dsl::ast::Severity;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use std::borrow::Cow;
use std::collections::BTreeSet;

const STYLE: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");
/// Inline style and script only: nothing from any network, not even a font.
const POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:";

pub fn render(report: &Report) -> String {
    let rows = report.rows();
    let hosts = by_host(&rows);
    let rules: BTreeSet<&String> = rows.iter().flat_map(|r| &r.rules).collect();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy" content=(POLICY);
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "spawnwatch report" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    h1 { "spawnwatch report" }
                    p.meta { (overview(report, &rows, hosts.len())) }
                    @for warning in report.warnings() {
                        p.warning { (printable(&warning)) }
                    }
                }
                nav.filters {
                    label { "Host " select #f-host {
                        option value="" { "all" }
                        @for group in &hosts { option value=(group.key()) { (group.name()) } }
                    } }
                    label { "Severity " select #f-severity {
                        @for severity in Severity::ALL {
                            option value=(rank(severity)) { (severity.name()) " and above" }
                        }
                    } }
                    label { "Rule " select #f-rule {
                        option value="" { "all" }
                        @for rule in &rules { option value=(rule) { (printable(rule)) } }
                    } }
                    button #expand type="button" { "Expand all" }
                    button #collapse type="button" { "Collapse all" }
                    span #shown {}
                }
                section #timeline {
                    h2 { "Timeline" }
                    @for group in &hosts { (lane(group)) }
                }
                @for group in &hosts {
                    section.host data-host=(group.key()) {
                        h2 { (group.name()) }
                        @for (n, row) in &group.incidents {
                            (incident(*n, row, &report.incidents[&row.incident], report))
                        }
                    }
                }
                @if !report.sensor.is_empty() { (sensor_alerts(report)) }
                script { (PreEscaped(SCRIPT)) }
            }
        }
    }
    .into_string()
}

/// A host's incidents, each with its number in page order.
struct HostGroup<'a> {
    host: Option<&'a str>,
    incidents: Vec<(usize, &'a Row)>,
}

impl HostGroup<'_> {
    /// The value the filters match.
    fn key(&self) -> &str {
        self.host.unwrap_or_default()
    }

    fn name(&self) -> Cow<'_, str> {
        printable(self.host.unwrap_or("(no host)"))
    }
}

/// The rows, numbered in page order, grouped by host (they come sorted by host).
fn by_host(rows: &[Row]) -> Vec<HostGroup<'_>> {
    let mut hosts: Vec<HostGroup> = Vec::new();
    for (n, row) in rows.iter().enumerate() {
        let host = row.host.as_deref();
        match hosts.last_mut() {
            Some(group) if group.host == host => group.incidents.push((n, row)),
            _ => hosts.push(HostGroup {
                host,
                incidents: vec![(n, row)],
            }),
        }
    }
    hosts
}

/// `1 alert`, `2 alerts`, `2 processes`.
fn counted(n: u64, noun: &str) -> String {
    match (n, noun.ends_with('s')) {
        (1, _) => format!("1 {noun}"),
        (_, true) => format!("{n} {noun}es"),
        (_, false) => format!("{n} {noun}s"),
    }
}

fn overview(report: &Report, rows: &[Row], hosts: usize) -> String {
    let r = &report.read;
    let first = rows.iter().filter_map(|r| r.first).min();
    let last = rows.iter().filter_map(|r| r.last).max();
    let mut text = format!(
        "{} in {} on {}, {} (UTC)",
        counted(r.alerts, "alert"),
        counted(rows.len() as u64, "incident"),
        counted(hosts as u64, "host"),
        span(first, last)
    );
    if r.suppressed > 0 {
        text += &format!(
            "; {} more alerts suppressed by storm suppression",
            r.suppressed
        );
    }
    text += &format!(". Read from {}.", r.files.join(", "));
    printable(&text).into_owned()
}

/// Sub-rows of a timeline lane at most: bars that overlap in time stack up to this.
const LANE_ROWS_MAX: usize = 8;

/// One host's incidents as bars over the host's own time span; overlapping ones on
/// sub-rows.
fn lane(group: &HostGroup) -> Markup {
    let incidents = &group.incidents;
    let first = incidents.iter().filter_map(|(_, r)| r.first).min();
    let last = incidents.iter().filter_map(|(_, r)| r.last).max();
    // Percent of the span; a span under a millisecond is one point.
    // Percent of the span; a span under a millisecond is one point.
    let place = |t: Option<DateTime<Utc>>| match (first, last, t) {
        (Some(a), Some(b), Some(t)) if (b - a).num_milliseconds() > 0 => {
            (t - a).num_milliseconds() as f64 * 100.0 / (b - a).num_milliseconds() as f64
        }
        _ => 0.0,
    };
    // The right end of each sub-row's last bar; bars come by start.
    let mut ends: Vec<f64> = Vec::new();
    let bars: Vec<(usize, &Row, f64, f64, usize)> = incidents
        .iter()
        .map(|&(n, row)| {
            // At least 0.8% wide, so one alert is seen; the last ones end at 100%.
            let left = place(row.first).min(99.2);
            let width = (place(row.last) - left).max(0.8).min(100.0 - left);
            let sub_row = match ends.iter().position(|&end| end < left) {
                Some(r) => r,
                None if ends.len() < LANE_ROWS_MAX => {
                    ends.push(0.0);
                    ends.len() - 1
                }
                None => LANE_ROWS_MAX - 1,
            };
            ends[sub_row] = left + width;
            (n, row, left, width, sub_row)
        })
        .collect();
    html! {
        div.lane data-host=(group.key()) {
            div.lane-host { (group.name()) }
            div.track style=(format!("height:{}px", 4 + 16 * ends.len())) {
                @for (n, row, left, width, sub_row) in bars {
                    a class=(format!("bar sev-{}", row.severity.name()))
                        id=(format!("bar-{n}")) href=(format!("#incident-{n}"))
                        style=(format!("left:{left:.3}%;width:{width:.3}%;top:{}px", 2 + 16 * sub_row))
                        title=(printable(&format!("{} · {} · {}", server_label(&row.server), span(row.first, row.last), counted(row.alerts, "alert")))) {}
                }
            }
            div.lane-span { (span(first, last)) }
        }
    }
}

fn incident(n: usize, row: &Row, incident: &Incident, report: &Report) -> Markup {
    let alerts = match row.suppressed {
        0 => counted(row.alerts, "alert"),
        s => format!("{} ({s} suppressed)", counted(row.alerts, "alert")),
    };
    html! {
        article.incident id=(format!("incident-{n}")) data-host=(row.host.as_deref().unwrap_or_default())
            data-severity=(rank(row.severity)) {
            details open {
                summary {
                    span class=(format!("severity sev-{}", row.severity.name())) { (row.severity.name()) }
                    " " strong { (printable(&server_label(&row.server))) }
                    @if let Some(account) = &row.server.account { " " span.user { (printable(account)) } }
                    " · " (span(row.first, row.last))
                    " · " (counted(incident.alerting_processes() as u64, "process")) " · " (alerts)
                    " · " code.id { (printable(&row.incident)) }
                }
                table.rules {
                    tr { th { "Rule" } th { "Title" } th { "Severity" } th { "ATT&CK" } th { "Alerts" } }
                    @for rule in &row.rules {
                        (rule_row(rule, incident, report))
                    }
                }
                (PreEscaped(tree(&incident.tree, incident, report)))
            }
        }
    }
}

fn rule_row(id: &str, incident: &Incident, report: &Report) -> Markup {
    let rule = report.rules.get(id);
    let alerts = incident.hits.iter().filter(|h| h.rule == id).count();
    let suppressed = incident.suppressed.get(id).copied().unwrap_or_default();
    let severity = rule.map_or(Severity::Informational, |r| r.severity());
    html! {
        tr data-rule=(id) {
            td { code { (printable(id)) } }
            td { (printable(rule.map_or("", |r| &r.title))) }
            td { span class=(format!("severity sev-{}", severity.name())) { (severity.name()) } }
            td { @for technique in rule.map_or(&[][..], |r| &r.attack) { code.attack { (printable(technique)) } " " } }
            td.count {
                (alerts)
                @if suppressed > 0 { " + " (suppressed) " suppressed" }
            }
        }
    }
}

/// The tree as nested lists; a process with children is a `<details>`. Built without
/// recursion: an alert file may hold a chain of any depth.
fn tree(tree: &Tree, incident: &Incident, report: &Report) -> String {
    let mut hits: Vec<Vec<usize>> = vec![Vec::new(); tree.nodes.len()];
    for (h, hit) in incident.hits.iter().enumerate() {
        hits[hit.node].push(h);
    }
    let mut out = String::from("<ul class=\"tree\">");
    let mut stack: Vec<(usize, bool)> = tree.roots.iter().rev().map(|&r| (r, false)).collect();
    while let Some((n, closing)) = stack.pop() {
        if closing {
            out.push_str("</ul></details></li>");
            continue;
        }
        let node = &tree.nodes[n];
        let line = process(node, &hits[n], incident, report).into_string();
        let class = if hits[n].is_empty() {
            "node"
        } else {
            "node alerted"
        };
        if node.children.is_empty() {
            out.push_str(&format!("<li class=\"{class} leaf\">{line}</li>"));
        } else {
            out.push_str(&format!(
                "<li class=\"{class}\"><details open><summary>{line}</summary><ul>"
            ));
            stack.push((n, true));
            stack.extend(node.children.iter().rev().map(|&c| (c, false)));
        }
    }
    out.push_str("</ul>");
    out
}

/// `cmd.exe 2404  IIS APPPOOL\DefaultAppPool  01:33:53.112  [CAR-2021-02-001]` and the
/// whole command line.
fn process(
    node: &crate::incident::tree::Node,
    hits: &[usize],
    incident: &Incident,
    report: &Report,
) -> Markup {
    let p = &node.process;
    let time = hits.iter().filter_map(|&h| incident.hits[h].time).min();
    html! {
        span.proc {
            span.exe { (printable(p.program())) }
            " " span.pid { (p.pid.map_or("?".to_string(), |p| p.to_string())) }
            @if let Some(user) = &p.user { " " span.user { (printable(user)) } }
            @if let Some(time) = time { " " span.time { (time.format("%Y-%m-%d %H:%M:%S%.3f")) } }
            @for &h in hits {
                @let hit = &incident.hits[h];
                @let title = report.rules.get(&hit.rule).map(|r| format!("{} ({})", r.title, r.attack.join(", ")));
                " " span class=(format!("hit sev-{}", hit.severity.name())) title=[title.map(|t| printable(&t).into_owned())] {
                    (printable(&hit.rule))
                }
            }
            @if let Some(command_line) = &p.command_line {
                br; code.cmd { (printable(command_line)) }
            }
        }
    }
}

fn sensor_alerts(report: &Report) -> Markup {
    html! {
        section #sensor {
            h2 { "The sensor's own alerts" }
            table.rules {
                tr { th { "Time (UTC)" } th { "Host" } th { "Severity" } th { "What" } th { "Detail" } }
                @for alert in &report.sensor {
                    tr {
                        td { (span(alert.time, alert.time)) }
                        td { (printable(alert.hostname.as_deref().unwrap_or("-"))) }
                        td { span class=(format!("severity sev-{}", alert.rule.severity().name())) { (alert.rule.severity().name()) } }
                        td { (printable(&alert.rule.title)) " " code { (printable(&alert.rule.id)) } }
                        td { pre { @for line in alert.detail.lines() { (printable(line)) "\n" } } }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(incident: &str, time: &str, command_line: &str) -> String {
        serde_json::json!({
            "kind": "alert", "timestamp": time, "hostname": "WEB01", "incident": incident,
            "rule": {"id": "R1", "title": "<i>t</i>", "severity": "high", "attack": ["T1505.003"]},
            "process": {"pid": 2, "exe": "cmd.exe", "command_line": command_line},
            "parent": {"pid": 1, "exe": "w3wp.exe"},
        })
        .to_string()
    }

    fn page(lines: &[String]) -> String {
        let mut report = Report::new();
        report.read("a.jsonl", lines.join("\n").as_bytes()).unwrap();
        render(&report)
    }

    #[test]
    fn incidents_under_a_millisecond_apart_share_the_timeline_point() {
        let page = page(&[
            alert("WEB01/1/-", "2026-11-27T10:00:00.0000001Z", "a"),
            alert("WEB01/9/-", "2026-11-27T10:00:00.0000009Z", "b"),
        ]);
        assert!(page.contains("left:0.000%;width:0.800%;top:2px"), "{page}");
        assert!(page.contains("left:0.000%;width:0.800%;top:18px"), "{page}");
    }

    #[test]
    fn the_last_incident_of_a_lane_ends_at_its_right_edge() {
        let page = page(&[
            alert("WEB01/1/-", "2026-11-27T10:00:00Z", "a"),
            alert("WEB01/9/-", "2026-11-27T10:01:40Z", "b"),
        ]);
        assert!(page.contains("left:0.000%;width:0.800%;top:2px"), "{page}");
        assert!(page.contains("left:99.200%;width:0.800%;top:2px"), "{page}");
    }

    #[test]
    fn what_the_alerts_hold_is_text_never_markup() {
        let page = page(&[alert(
            "WEB01/1/-",
            "2026-11-27T10:00:00Z",
            "cmd /c echo <script>alert(1)</script> \u{202e}txt.exe",
        )]);
        assert_eq!(page.matches("<script>").count(), 1, "the page's own");
        assert!(page.contains("echo &lt;script&gt;alert(1)&lt;/script&gt; \\u{202e}txt.exe"));
        assert!(page.contains("&lt;i&gt;t&lt;/i&gt;"));
        assert!(page.contains("1 alert in 1 incident on 1 host"), "{page}");
        assert!(page.contains(" · 1 process · 1 alert"), "{page}");
    }
}
