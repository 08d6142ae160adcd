//! `spawnwatch report`: alert files (the JSON lines `replay` and `run` write, of any
//! version) drawn as one HTML page for the write-up after an exercise. Reading and
//! grouping are here: each incident's alerts grown into one process tree
//! ([`crate::incident::tree`]) and counted as the sensor counts them
//! ([`crate::incident::summary`]); the page is [`page`].
//!
//! Nothing read is dropped without a count: lines that are not spawnwatch output,
//! storm summaries of incidents the files hold no alert of, are counted, said on
//! stderr and on the page.

mod page;

use crate::incident::read::{OutputLine, RuleRecord, SensorRecord};
use crate::incident::summary::{IncidentLog, Row};
use crate::incident::tree::Tree;
use chrono::{DateTime, Utc};
use dsl::ast::Severity;
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// The alerts of all the files read, by incident.
#[derive(Default)]
pub struct Report {
    log: IncidentLog,
    incidents: FxHashMap<String, Incident>,
    /// Every rule that fired, by id (titles and ATT&CK ids as its first alert said).
    rules: BTreeMap<String, RuleRecord>,
    sensor: Vec<SensorRecord>,
    pub read: Reading,
}

/// What the files held, line by line.
#[derive(Debug, Default, PartialEq)]
pub struct Reading {
    pub files: Vec<String>,
    pub alerts: u64,
    /// Storm summaries and the alerts they stand for.
    pub summaries: u64,
    pub suppressed: u64,
    /// Summaries of an incident with no alert in the files (their alerts are not in
    /// any incident's count).
    pub summaries_alone: u64,
    pub sensor: u64,
    /// Stats lines and JSON objects of kinds this version does not know.
    pub other: u64,
    pub unreadable: u64,
    /// `FILE:LINE: what is wrong` of the first unreadable line.
    pub first_unreadable: Option<String>,
}

/// One incident's tree and the alerts on it.
#[derive(Default)]
struct Incident {
    tree: Tree,
    hits: Vec<Hit>,
    /// Alerts storm suppression left out, by rule id.
    suppressed: BTreeMap<String, u64>,
}

impl Incident {
    /// The tree's nodes with alerts: a process seen twice (a recording holding both
    /// its Sysmon and its Security event, some milliseconds apart) is one.
    fn alerting_processes(&self) -> usize {
        let nodes: BTreeSet<usize> = self.hits.iter().map(|h| h.node).collect();
        nodes.len()
    }
}

/// An alert, at the tree node of the process that matched.
struct Hit {
    node: usize,
    rule: String,
    severity: Severity,
    time: Option<DateTime<Utc>>,
}

impl Report {
    pub fn new() -> Report {
        Report {
            log: IncidentLog::unbounded(),
            ..Report::default()
        }
    }

    /// Reads the output lines of `input`, named `name` in messages.
    pub fn read(&mut self, name: &str, input: impl Read) -> io::Result<()> {
        self.read.files.push(name.to_string());
        for (number, line) in BufReader::new(input).split(b'\n').enumerate() {
            let line = line?;
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches('\r');
            if text.trim().is_empty() {
                continue;
            }
            match OutputLine::parse(text) {
                Ok(line) => self.add(line),
                Err(error) => {
                    self.read.unreadable += 1;
                    self.read
                        .first_unreadable
                        .get_or_insert_with(|| format!("{name}:{}: {error}", number + 1));
                }
            }
        }
        Ok(())
    }

    fn add(&mut self, line: OutputLine) {
        match line {
            OutputLine::Alert(alert) => {
                self.read.alerts += 1;
                let sighting = alert.sighting();
                self.log.record(&sighting, false);
                let incident = self.incidents.entry(sighting.incident).or_default();
                let grown = incident.tree.grow(&alert.chain());
                incident.hits.push(Hit {
                    node: *grown.nodes.last().expect("a chain ends with its process"),
                    rule: alert.rule.id.clone(),
                    severity: alert.rule.severity(),
                    time: alert.time(),
                });
                self.rules
                    .entry(alert.rule.id.clone())
                    .or_insert(alert.rule);
            }
            OutputLine::Summary(summary) => {
                self.read.summaries += 1;
                self.read.suppressed += summary.suppressed;
                let known = summary
                    .incident
                    .as_deref()
                    .and_then(|id| Some((id, self.incidents.get_mut(id)?)));
                match known {
                    Some((id, incident)) => {
                        let rule = summary.rule.map(|r| r.id).unwrap_or_default();
                        *incident.suppressed.entry(rule).or_default() += summary.suppressed;
                        self.log.add_suppressed(id, summary.suppressed);
                    }
                    None => self.read.summaries_alone += 1,
                }
            }
            OutputLine::Sensor(sensor) => {
                self.read.sensor += 1;
                self.sensor.push(*sensor);
            }
            OutputLine::Stats | OutputLine::Other => self.read.other += 1,
        }
    }

    /// Every incident, by host and first alert.
    fn rows(&self) -> Vec<Row> {
        self.log.rows()
    }

    /// What to say on stderr when the page is written.
    pub fn said(&self, output: &Path) -> String {
        let rows = self.rows();
        let mut hosts: Vec<_> = rows.iter().map(|r| &r.host).collect();
        hosts.dedup();
        let r = &self.read;
        let mut said = format!(
            "wrote {}: {} alert(s) in {} incident(s) on {} host(s), from {} file(s)",
            output.display(),
            r.alerts,
            rows.len(),
            hosts.len(),
            r.files.len()
        );
        if r.suppressed > 0 {
            said += &format!("; {} more suppressed by storm suppression", r.suppressed);
        }
        for warning in self.warnings() {
            said += &format!("\n  {warning}");
        }
        said
    }

    /// What the reader of the page and of stderr must know was left out.
    fn warnings(&self) -> Vec<String> {
        let r = &self.read;
        let mut warnings = Vec::new();
        if r.unreadable > 0 {
            warnings.push(format!(
                "{} line(s) are not spawnwatch output and were passed over (first: {})",
                r.unreadable,
                r.first_unreadable.as_deref().unwrap_or_default()
            ));
        }
        if r.summaries_alone > 0 {
            warnings.push(format!(
                "{} storm summary line(s) name an incident none of whose alerts are in \
                 these files; their suppressed alerts are in no incident",
                r.summaries_alone
            ));
        }
        if r.alerts == 0 {
            warnings.push("no alerts in these files".to_string());
        }
        warnings
    }
}

/// `spawnwatch report`: reads `inputs` (`-` is stdin), writes the page to `output`.
pub fn run(inputs: &[PathBuf], output: &Path) -> Result<String, String> {
    let mut report = Report::new();
    for input in inputs {
        let name = input.display().to_string();
        let result = if input.as_os_str() == "-" {
            report.read("stdin", io::stdin().lock())
        } else {
            std::fs::File::open(input).and_then(|file| report.read(&name, file))
        };
        result.map_err(|e| format!("{name}: {e}"))?;
    }
    let written = std::fs::File::create(output).and_then(|file| {
        let mut out = io::BufWriter::new(file);
        out.write_all(page::render(&report).as_bytes())?;
        out.flush()
    });
    written.map_err(|e| {
        format!(
            "{}: {e} (give -o a path in a directory you can write)",
            output.display()
        )
    })?;
    Ok(report.said(output))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CMD: &str = r#"{"kind":"alert","timestamp":"2019-05-24T01:33:53Z","hostname":"IEWIN7","incident":"IEWIN7/2580/-","rule":{"id":"CAR-2021-02-001","title":"Webshell tree","severity":"high","attack":["T1505.003"]},"process":{"pid":2404,"exe":"cmd.exe","command_line":"cmd /c net user","user":"IIS APPPOOL\\DefaultAppPool"},"parent":{"pid":2580,"exe":"w3wp.exe"},"ancestors":[{"pid":2580,"exe":"w3wp.exe"}]}"#;

    fn net(pid: u32) -> String {
        format!(
            r#"{{"kind":"alert","timestamp":"2019-05-24T01:33:54Z","hostname":"IEWIN7","incident":"IEWIN7/2580/-","rule":{{"id":"SW-WIN-002","title":"Tool","severity":"medium"}},"process":{{"pid":{pid},"exe":"net.exe","command_line":"net user"}},"parent":{{"pid":2404,"exe":"cmd.exe"}},"ancestors":[{{"pid":2404,"exe":"cmd.exe"}},{{"pid":2580,"exe":"w3wp.exe"}}]}}"#
        )
    }

    const SUMMARY: &str = r#"{"kind":"alert-summary","incident":"IEWIN7/2580/-","rule":{"id":"SW-WIN-002"},"suppressed":5,"message":"5 more"}"#;

    fn report(text: &str) -> Report {
        let mut report = Report::new();
        report.read("alerts.jsonl", text.as_bytes()).unwrap();
        report
    }

    #[test]
    fn alerts_of_an_incident_grow_one_tree_and_summaries_count_in_it() {
        let text = [CMD.to_string(), net(788), net(789), SUMMARY.to_string()].join("\n");
        let report = report(&text);
        let rows = report.rows();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].processes, rows[0].alerts, rows[0].suppressed),
            (3, 8, 5)
        );
        let incident = &report.incidents["IEWIN7/2580/-"];
        assert_eq!(incident.tree.nodes.len(), 4, "w3wp, cmd and two net");
        assert_eq!(incident.tree.nodes[1].children.len(), 2);
        assert_eq!(incident.suppressed["SW-WIN-002"], 5);
        assert_eq!(incident.alerting_processes(), 3);
        assert_eq!(report.rules["CAR-2021-02-001"].attack, ["T1505.003"]);
    }

    #[test]
    fn what_is_not_an_alert_is_counted_and_said() {
        let alone = SUMMARY.replace("IEWIN7/2580/-", "WEB02/1/-");
        let text = format!(
            "{CMD}\r\nnot json\n\n{{\"kind\":\"stats\"}}\n{alone}\n\u{ff}\u{fe}\n{{\"kind\":\"alert\"}}"
        );
        let report = report(&text);
        let r = &report.read;
        assert_eq!(
            (r.alerts, r.other, r.unreadable, r.summaries_alone),
            (1, 1, 3, 1)
        );
        assert!(r
            .first_unreadable
            .as_deref()
            .unwrap()
            .starts_with("alerts.jsonl:2: "));
        let said = report.said(Path::new("r.html"));
        assert!(
            said.starts_with(
                "wrote r.html: 1 alert(s) in 1 incident(s) on 1 host(s), from 1 file(s)"
            ),
            "{said}"
        );
        assert!(
            said.contains("3 line(s) are not spawnwatch output"),
            "{said}"
        );
        assert!(said.contains("1 storm summary line(s)"), "{said}");
    }
}
