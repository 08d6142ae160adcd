//! Output lines read back: what the terminal view and `spawnwatch report` draw. Both
//! work from the JSON every output writes, so they show exactly what a SIEM got, and
//! the report reads files written by any spawnwatch (an alert without `incident`, from
//! before incidents, is grouped under its oldest known ancestor).
//!
//! Everything read is the attackers' as much as ours: a command line or a host name
//! holds whatever the web shell's operator typed. Readers print it escaped.

use super::{Server, Sighting};
use chrono::{DateTime, Utc};
use dsl::ast::Severity;
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;

/// One line of spawnwatch's output.
#[derive(Debug)]
pub enum OutputLine {
    Alert(Box<AlertRecord>),
    /// Storm suppression's count of alerts not written.
    Summary(SummaryRecord),
    /// The sensor's own alert (a rule reload refused, a source stopped).
    Sensor(Box<SensorRecord>),
    Stats,
    /// A JSON object of a kind this version does not know.
    Other,
}

impl OutputLine {
    /// Reads one line; an error when it is not a JSON object of a known shape.
    pub fn parse(line: &str) -> Result<OutputLine, serde_json::Error> {
        let value: Value = serde_json::from_str(line)?;
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Ok(match kind {
            "alert" => OutputLine::Alert(Box::new(serde_json::from_value(value)?)),
            "alert-summary" => OutputLine::Summary(serde_json::from_value(value)?),
            "sensor" => OutputLine::Sensor(Box::new(SensorRecord::from(value)?)),
            "stats" => OutputLine::Stats,
            _ => OutputLine::Other,
        })
    }
}

#[derive(Debug, Deserialize)]
pub struct AlertRecord {
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub incident: Option<String>,
    pub rule: RuleRecord,
    pub process: ProcessFields,
    #[serde(default)]
    pub parent: ProcessFields,
    /// Parent first.
    #[serde(default)]
    pub ancestors: Vec<ProcessFields>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct RuleRecord {
    pub id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub attack: Vec<String>,
}

impl RuleRecord {
    /// As named; an unknown name is informational.
    pub fn severity(&self) -> Severity {
        self.severity
            .as_deref()
            .and_then(Severity::from_name)
            .unwrap_or(Severity::Informational)
    }
}

/// The fields of a process that alert lines carry (`ancestors` carry fewer).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct ProcessFields {
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(default)]
    pub exe: Option<String>,
    #[serde(default)]
    pub image_path: Option<String>,
    #[serde(default)]
    pub command_line: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

impl ProcessFields {
    /// Whether both can be the same process: the same pid and no other program.
    pub fn same_process(&self, other: &ProcessFields) -> bool {
        self.pid == other.pid
            && match (&self.exe, &other.exe) {
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => true,
            }
    }

    /// Takes what `other` knows and this does not.
    pub fn fill_from(&mut self, other: &ProcessFields) {
        for (slot, value) in [
            (&mut self.exe, &other.exe),
            (&mut self.image_path, &other.image_path),
            (&mut self.command_line, &other.command_line),
            (&mut self.user, &other.user),
        ] {
            if slot.is_none() {
                slot.clone_from(value);
            }
        }
    }

    /// The program's name: `exe`, else the image path, else `?`.
    pub fn program(&self) -> &str {
        self.exe
            .as_deref()
            .or(self.image_path.as_deref())
            .unwrap_or("?")
    }
}

impl AlertRecord {
    pub fn time(&self) -> Option<DateTime<Utc>> {
        parse_time(self.timestamp.as_deref())
    }

    /// The process tree of the alert, from the oldest known ancestor down to the
    /// process that matched. A parent known only by the child's ppid is its top.
    pub fn chain(&self) -> Vec<ProcessFields> {
        let mut chain: Vec<ProcessFields> = self.ancestors.iter().rev().cloned().collect();
        match chain.last_mut() {
            Some(parent) if parent.same_process(&self.parent) => parent.fill_from(&self.parent),
            Some(_) => {}
            None if self.parent.pid.is_some() => chain.push(self.parent.clone()),
            None => {}
        }
        chain.push(self.process.clone());
        chain
    }

    /// The incident's id: as the line says, or for a line from before incidents, its
    /// host and oldest known ancestor.
    pub fn incident_id(&self, chain: &[ProcessFields]) -> String {
        match &self.incident {
            Some(id) => id.clone(),
            None => super::id(
                self.hostname.as_deref(),
                chain[0].pid.unwrap_or_default(),
                None,
            ),
        }
    }

    /// Where in `chain` the process the incident is grouped under is: the topmost
    /// with the id's pid, else the top.
    pub fn server_index(&self, chain: &[ProcessFields], incident: &str) -> usize {
        let pid = super::pid_in_id(incident);
        chain
            .iter()
            .position(|p| p.pid.is_some() && p.pid == pid)
            .unwrap_or(0)
    }

    /// What the incident summary keeps of this alert.
    pub fn sighting(&self) -> Sighting {
        let chain = self.chain();
        let incident = self.incident_id(&chain);
        let at = self.server_index(&chain, &incident);
        let server = &chain[at];
        Sighting {
            server: Server {
                pid: server.pid.unwrap_or_default(),
                exe: server.exe.clone(),
                image_path: server.image_path.clone(),
                account: chain[at..].iter().find_map(|p| p.user.clone()),
            },
            incident,
            host: self.hostname.clone(),
            process: (
                self.process.pid.unwrap_or_default(),
                self.process.exe.as_deref().map(str::to_lowercase),
            ),
            rule: self.rule.id.clone(),
            severity: self.rule.severity(),
            time: self.time(),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct SummaryRecord {
    #[serde(default)]
    pub incident: Option<String>,
    /// Only its id.
    #[serde(default)]
    pub rule: Option<RuleRecord>,
    #[serde(default)]
    pub suppressed: u64,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug)]
pub struct SensorRecord {
    pub time: Option<DateTime<Utc>>,
    pub hostname: Option<String>,
    pub rule: RuleRecord,
    /// What else the line says: its diagnostics, or its source's state.
    pub detail: String,
}

impl SensorRecord {
    fn from(value: Value) -> Result<SensorRecord, serde_json::Error> {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(String::from);
        let detail = match (value.get("diagnostics"), value.get("source")) {
            (Some(Value::String(d)), _) => d.clone(),
            (_, Some(Value::Object(source))) => source
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{k}={s}"),
                    other => format!("{k}={other}"),
                })
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        };
        Ok(SensorRecord {
            time: parse_time(value.get("timestamp").and_then(Value::as_str)),
            hostname: text(value.get("hostname")),
            rule: RuleRecord::deserialize(value.get("rule").unwrap_or(&Value::Null))?,
            detail,
        })
    }
}

fn parse_time(text: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `text` with control characters and bidirectional controls escaped (`\u{1b}`).
pub fn printable(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CMD_UNDER_W3WP: &str = r#"{"kind":"alert","timestamp":"2019-05-24T01:33:53.1124866Z","hostname":"IEWIN7","incident":"IEWIN7/2580/-","rule":{"id":"CAR-2021-02-001","title":"t","severity":"high","attack":["T1505.003"]},"process":{"pid":2404,"ppid":2580,"exe":"cmd.exe","command_line":"cmd /c net user","user":"IIS APPPOOL\\DefaultAppPool"},"parent":{"pid":2580,"exe":"w3wp.exe","image_path":"c:\\w3wp.exe","command_line":"w3wp -ap x","user":null,"listens":null},"ancestors":[{"pid":2580,"exe":"w3wp.exe","image_path":"c:\\w3wp.exe"},{"pid":600,"exe":"svchost.exe","image_path":null}],"source":{"kind":"replay","file":"x","line":null,"record":1}}"#;

    fn alert(line: &str) -> AlertRecord {
        match OutputLine::parse(line).unwrap() {
            OutputLine::Alert(alert) => *alert,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_chain_runs_from_the_oldest_ancestor_with_the_parents_details() {
        let alert = alert(CMD_UNDER_W3WP);
        let chain = alert.chain();
        let pids: Vec<_> = chain.iter().map(|p| p.pid.unwrap()).collect();
        assert_eq!(pids, [600, 2580, 2404]);
        assert_eq!(chain[1].command_line.as_deref(), Some("w3wp -ap x"));
        let sighting = alert.sighting();
        assert_eq!(sighting.incident, "IEWIN7/2580/-");
        assert_eq!(sighting.server.exe.as_deref(), Some("w3wp.exe"));
        assert_eq!(
            sighting.server.account.as_deref(),
            Some(r"IIS APPPOOL\DefaultAppPool"),
            "the server's user is unknown: its child's"
        );
        assert_eq!(sighting.severity, Severity::High);
    }

    #[test]
    fn a_line_from_before_incidents_groups_under_its_oldest_ancestor() {
        let old = CMD_UNDER_W3WP.replace(r#""incident":"IEWIN7/2580/-","#, "");
        assert_eq!(alert(&old).sighting().incident, "IEWIN7/600/-");
        let orphan =
            r#"{"kind":"alert","rule":{"id":"R"},"process":{"pid":5},"parent":{"pid":77}}"#;
        let orphan = alert(orphan);
        let chain = orphan.chain();
        assert_eq!(chain.len(), 2, "the unknown parent by its pid");
        assert_eq!(orphan.incident_id(&chain), "-/77/-");
    }

    #[test]
    fn other_kinds_and_bad_lines() {
        assert!(matches!(
            OutputLine::parse(r#"{"kind":"stats","received":1}"#),
            Ok(OutputLine::Stats)
        ));
        assert!(matches!(
            OutputLine::parse(r#"{"kind":"new-kind"}"#),
            Ok(OutputLine::Other)
        ));
        assert!(OutputLine::parse("not json").is_err());
        assert!(OutputLine::parse(r#"{"kind":"alert","rule":{"id":"R"}}"#).is_err());
        let sensor = r#"{"kind":"sensor","timestamp":"2026-11-27T10:00:00.000Z","hostname":"h","rule":{"id":"spawnwatch.source-stopped","title":"stopped","severity":"high","attack":[]},"source":{"session":"kernel","state":"stopped"}}"#;
        match OutputLine::parse(sensor).unwrap() {
            OutputLine::Sensor(s) => assert_eq!(s.detail, "session=kernel state=stopped"),
            other => panic!("{other:?}"),
        }
    }
}
