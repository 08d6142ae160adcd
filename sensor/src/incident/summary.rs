//! The incident summary: one row per incident, kept while alerts come (written or
//! suppressed by storm suppression: both count), shown as a table for people at the
//! end of a replay and after each `run` stats interval in which something happened.

use super::read::printable;
use super::{Server, Sighting};
use chrono::{DateTime, Utc};
use dsl::ast::Severity;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeSet;

/// Incidents kept at most; past it the least recently active tenth is forgotten (a
/// sensor running for weeks must not grow without bound). One that alerts again
/// starts over.
const KEPT_MAX: usize = 10_000;

/// One incident, as the table shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub incident: String,
    pub host: Option<String>,
    pub server: Server,
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
    /// Processes that alerted.
    pub processes: usize,
    /// Alerts, the suppressed ones included.
    pub alerts: u64,
    pub suppressed: u64,
    pub rules: BTreeSet<String>,
    pub severity: Severity,
}

#[derive(Debug)]
pub struct IncidentLog {
    incidents: FxHashMap<String, Kept>,
    /// [`KEPT_MAX`] for a running sensor; none for a report, which must show all.
    kept_max: usize,
    /// Incidents with alerts since [`IncidentLog::take_changed`] last ran.
    changed: FxHashSet<String>,
}

type Starts = Vec<Option<DateTime<Utc>>>;

#[derive(Debug)]
struct Kept {
    row: Row,
    /// The starts seen of each (pid, program).
    processes: FxHashMap<(u32, Option<String>), Starts>,
}

impl Default for IncidentLog {
    fn default() -> IncidentLog {
        IncidentLog {
            incidents: FxHashMap::default(),
            kept_max: KEPT_MAX,
            changed: FxHashSet::default(),
        }
    }
}

impl IncidentLog {
    /// A log that forgets nothing.
    pub fn unbounded() -> IncidentLog {
        IncidentLog {
            kept_max: usize::MAX,
            ..IncidentLog::default()
        }
    }

    /// Counts an alert, written or (`suppressed`) not.
    pub fn record(&mut self, sighting: &Sighting, suppressed: bool) {
        if !self.incidents.contains_key(&sighting.incident) && self.incidents.len() >= self.kept_max
        {
            self.forget_oldest();
        }
        let kept = self
            .incidents
            .entry(sighting.incident.clone())
            .or_insert_with(|| Kept {
                row: Row {
                    incident: sighting.incident.clone(),
                    host: sighting.host.clone(),
                    server: sighting.server.clone(),
                    first: sighting.time,
                    last: sighting.time,
                    processes: 0,
                    alerts: 0,
                    suppressed: 0,
                    rules: BTreeSet::new(),
                    severity: sighting.severity,
                },
                processes: FxHashMap::default(),
            });
        let row = &mut kept.row;
        fill_server(&mut row.server, &sighting.server);
        row.first = earliest(row.first, sighting.time);
        row.last = row.last.max(sighting.time);
        let starts = kept.processes.entry(sighting.process.clone()).or_default();
        if !starts.iter().any(|&start| same_start(start, sighting.time)) {
            starts.push(sighting.time);
            row.processes += 1;
        }
        row.alerts += 1;
        row.suppressed += u64::from(suppressed);
        if !row.rules.contains(&sighting.rule) {
            row.rules.insert(sighting.rule.clone());
        }
        if rank(sighting.severity) > rank(row.severity) {
            row.severity = sighting.severity;
        }
        if !self.changed.contains(&sighting.incident) {
            self.changed.insert(sighting.incident.clone());
        }
    }

    /// Counts `n` suppressed alerts of which only the number is known (an
    /// `alert-summary` line read back).
    pub fn add_suppressed(&mut self, incident: &str, n: u64) {
        if let Some(kept) = self.incidents.get_mut(incident) {
            kept.row.alerts += n;
            kept.row.suppressed += n;
        }
    }

    /// Every incident, by host and first alert.
    pub fn rows(&self) -> Vec<Row> {
        sorted(self.incidents.values().map(|k| k.row.clone()).collect())
    }

    /// The incidents that had alerts since the last call.
    pub fn take_changed(&mut self) -> Vec<Row> {
        let rows = self
            .changed
            .drain()
            .filter_map(|id| self.incidents.get(&id))
            .map(|k| k.row.clone())
            .collect();
        sorted(rows)
    }

    fn forget_oldest(&mut self) {
        let mut by_age: Vec<(Option<DateTime<Utc>>, String)> = self
            .incidents
            .values()
            .map(|k| (k.row.last, k.row.incident.clone()))
            .collect();
        by_age.sort_unstable();
        for (_, id) in by_age.into_iter().take(self.kept_max / 10) {
            self.incidents.remove(&id);
            self.changed.remove(&id);
        }
    }
}

fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What a later alert knows of the server that an earlier one did not.
fn fill_server(server: &mut Server, seen: &Server) {
    for (slot, value) in [
        (&mut server.exe, &seen.exe),
        (&mut server.image_path, &seen.image_path),
        (&mut server.account, &seen.account),
    ] {
        if slot.is_none() {
            slot.clone_from(value);
        }
    }
}

/// Severities in order, informational first.
pub fn rank(severity: Severity) -> usize {
    Severity::ALL
        .iter()
        .position(|&s| s == severity)
        .unwrap_or(0)
}

fn sorted(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort_by(|a, b| (&a.host, a.first, &a.incident).cmp(&(&b.host, b.first, &b.incident)));
    rows
}

/// The rows as a table for a terminal, under a heading line, each row indented.
pub fn table(heading: &str, rows: &[Row], indent: &str) -> String {
    let mut cells = vec![[
        "HOST",
        "WEB SERVER",
        "ACCOUNT",
        "TIME (UTC)",
        "PROCESSES",
        "ALERTS",
        "SEVERITY",
        "RULES",
    ]
    .map(String::from)];
    cells.extend(rows.iter().map(|row| {
        let alerts = match row.suppressed {
            0 => row.alerts.to_string(),
            n => format!("{} ({n} suppressed)", row.alerts),
        };
        // A program's name on Linux is the attacker's choice, escape sequences and all.
        [
            row.host.as_deref().unwrap_or("-"),
            &server_label(&row.server),
            row.server.account.as_deref().unwrap_or("-"),
            &span(row.first, row.last),
            &row.processes.to_string(),
            &alerts,
            row.severity.name(),
            &row.rules.iter().cloned().collect::<Vec<_>>().join(", "),
        ]
        .map(|cell| printable(cell).into_owned())
    }));
    let widths: Vec<usize> = (0..8)
        .map(|c| {
            cells
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!("{heading}\n");
    for row in &cells {
        let mut line = indent.to_string();
        for (c, cell) in row.iter().enumerate() {
            let gap = if c == 0 { "" } else { "  " };
            let pad = widths[c] - cell.chars().count();
            // Counts to the right, the rest to the left; the last column unpadded.
            match c {
                4 | 5 => line.push_str(&format!("{gap}{}{cell}", " ".repeat(pad))),
                7 => line.push_str(&format!("{gap}{cell}")),
                _ => line.push_str(&format!("{gap}{cell}{}", " ".repeat(pad))),
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `w3wp.exe 748`: the server's program and pid.
pub fn server_label(server: &Server) -> String {
    let program = server
        .exe
        .as_deref()
        .or(server.image_path.as_deref())
        .unwrap_or("?");
    format!("{program} {}", server.pid)
}

/// `2019-05-27 01:28:42 - 01:28:48`: the second date only when it differs, the end
/// only when it is another second.
pub fn span(first: Option<DateTime<Utc>>, last: Option<DateTime<Utc>>) -> String {
    let (Some(first), Some(last)) = (first, last) else {
        return "-".into();
    };
    let start = first.format("%Y-%m-%d %H:%M:%S").to_string();
    if last.timestamp() == first.timestamp() {
        start
    } else if last.date_naive() == first.date_naive() {
        format!("{start} - {}", last.format("%H:%M:%S"))
    } else {
        format!("{start} - {}", last.format("%Y-%m-%d %H:%M:%S"))
    }
}

/// Whether two sightings of one pid and program are one start: within a second (Sysmon
/// and the Security log record one start milliseconds apart), or both without a time.
/// Later, the pid was used again.
fn same_start(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).num_milliseconds().abs() < 1000,
        (a, b) => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sighting(incident: &str, pid: u32, rule: &str, severity: Severity, secs: i64) -> Sighting {
        let time = DateTime::from_timestamp(1_700_000_000 + secs, 0);
        Sighting {
            incident: incident.into(),
            host: Some("WEB01".into()),
            server: Server {
                pid: 748,
                exe: Some("w3wp.exe".into()),
                image_path: None,
                account: None,
            },
            // Each alert of a process has the process's start as its time.
            process: (pid, Some("cmd.exe".into())),
            rule: rule.into(),
            severity,
            time,
        }
    }

    #[test]
    fn a_process_recorded_twice_counts_once_and_a_pid_used_again_counts_again() {
        let mut log = IncidentLog::default();
        let seen = |pid, exe: &str, secs| Sighting {
            process: (pid, Some(exe.into())),
            ..sighting("a", pid, "CAR", Severity::High, secs)
        };
        let mut at_ms = |pid, exe: &str, ms| {
            let mut sighting = seen(pid, exe, 0);
            sighting.time = sighting
                .time
                .map(|t| t + chrono::Duration::milliseconds(ms));
            log.record(&sighting, false);
        };
        // Sysmon's and the Security log's record of one start, a moment apart.
        at_ms(10, "cmd.exe", 0);
        at_ms(10, "cmd.exe", 4);
        // The pid used again, by another program, then by the same one much later.
        at_ms(10, "whoami.exe", 20);
        at_ms(10, "cmd.exe", 60_000);
        assert_eq!(log.rows()[0].processes, 3);
    }

    #[test]
    fn a_row_counts_processes_rules_severity_and_suppressed_alerts() {
        let mut log = IncidentLog::default();
        log.record(&sighting("a", 10, "CAR", Severity::High, 7), false);
        log.record(&sighting("a", 10, "SW-1", Severity::Low, 7), false);
        log.record(&sighting("a", 11, "SW-1", Severity::Critical, 1), true);
        log.record(&sighting("b", 12, "SW-1", Severity::Low, 3), false);
        log.add_suppressed("a", 4);
        let rows = log.rows();
        assert_eq!(rows.len(), 2);
        let a = rows.iter().find(|r| r.incident == "a").unwrap();
        assert_eq!(a.processes, 2, "one process, two rules: counted once");
        assert_eq!((a.alerts, a.suppressed), (7, 5));
        assert_eq!(a.severity, Severity::Critical);
        assert_eq!(a.rules.iter().collect::<Vec<_>>(), ["CAR", "SW-1"]);
        assert_eq!(
            (a.first, a.last),
            (
                DateTime::from_timestamp(1_700_000_001, 0),
                DateTime::from_timestamp(1_700_000_007, 0)
            )
        );
    }

    #[test]
    fn changed_rows_are_those_since_the_last_look() {
        let mut log = IncidentLog::default();
        log.record(&sighting("a", 10, "CAR", Severity::High, 0), false);
        log.record(&sighting("b", 11, "CAR", Severity::High, 1), false);
        assert_eq!(log.take_changed().len(), 2);
        assert!(log.take_changed().is_empty(), "nothing happened since");
        log.record(&sighting("b", 12, "CAR", Severity::High, 2), false);
        let changed = log.take_changed();
        assert_eq!(changed.len(), 1);
        assert_eq!(
            (changed[0].incident.as_str(), changed[0].processes),
            ("b", 2)
        );
    }

    #[test]
    fn the_table_aligns_its_columns() {
        let mut log = IncidentLog::default();
        log.record(
            &sighting("a", 10, "CAR-2021-02-001", Severity::High, 0),
            false,
        );
        log.record(&sighting("a", 11, "SW-WIN-002", Severity::High, 66), true);
        assert_eq!(
            table("incidents: 1", &log.rows(), "  "),
            "incidents: 1\n\
             \x20 HOST   WEB SERVER    ACCOUNT  TIME (UTC)                      PROCESSES            ALERTS  SEVERITY  RULES\n\
             \x20 WEB01  w3wp.exe 748  -        2023-11-14 22:13:20 - 22:14:26          2  2 (1 suppressed)  high      CAR-2021-02-001, SW-WIN-002\n"
        );
    }

    #[test]
    fn control_characters_in_a_program_name_are_escaped_in_the_table() {
        let mut log = IncidentLog::default();
        let mut hostile = sighting("b", 12, "R", Severity::Low, 0);
        hostile.server.exe = Some("\u{1b}[2Jnginx".into());
        log.record(&hostile, false);
        let table = table("", &log.rows(), "");
        assert!(table.contains("\\u{1b}[2Jnginx 748"), "{table}");
        assert!(!table.contains('\u{1b}'), "{table:?}");
    }
}
