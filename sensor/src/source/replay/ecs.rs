//! Elastic's ECS fields (Winlogbeat's and Elastic Agent's Sysmon and Security modules)
//! as the raw event fields they stand for. The modules move `winlog.event_data`'s
//! `ProcessId`, `Image`, `CommandLine`, ... to `process.*` (and split `User` into
//! `user.domain` and `user.name`), and what `process.pid` is named in the raw event
//! depends on the event: Sysmon's `ProcessId`, 4688's `NewProcessId`. A raw field the
//! record still has wins.

use super::fields::{Doc, Key, Str, Val};
use super::windows_event::Kind;
use compact_str::format_compact;

/// Fills the raw fields of a `kind` event from the ECS fields the record has.
pub(crate) fn complete(doc: &mut Doc<'_>, kind: Kind) {
    let pairs: &[(Key, Key)] = match kind {
        Kind::SysmonCreate => &[
            (Key::ProcessId, Key::EcsPid),
            (Key::Image, Key::EcsExecutable),
            (Key::CommandLine, Key::EcsCommandLine),
            (Key::CurrentDirectory, Key::EcsWorkingDirectory),
            (Key::OriginalFileName, Key::EcsOriginalFileName),
            (Key::ParentProcessId, Key::EcsParentPid),
            (Key::ParentImage, Key::EcsParentExecutable),
            (Key::ParentCommandLine, Key::EcsParentCommandLine),
        ],
        Kind::SysmonTerminate | Kind::SecurityExit => &[
            (Key::ProcessId, Key::EcsPid),
            (Key::Image, Key::EcsExecutable),
            (Key::ProcessName, Key::EcsExecutable),
        ],
        Kind::SecurityCreate => &[
            (Key::NewProcessId, Key::EcsPid),
            (Key::NewProcessName, Key::EcsExecutable),
            (Key::CommandLine, Key::EcsCommandLine),
            (Key::ProcessId, Key::EcsParentPid),
            (Key::ParentProcessName, Key::EcsParentExecutable),
        ],
    };
    for &(raw, ecs) in pairs {
        fill(doc, raw, ecs);
    }
    if kind == Kind::SysmonCreate && doc.get(Key::User).is_none() {
        if let Some(name) = doc.str(Key::EcsUserName) {
            let user = match doc.str(Key::EcsUserDomain) {
                Some(domain) => format_compact!("{domain}\\{name}"),
                None => name.into(),
            };
            doc.set(Key::User, Val::Str(Str::Unescaped(user)));
        }
    }
    if doc.get(Key::Hostname).is_none() {
        fill(doc, Key::Computer, Key::EcsHostName);
    }
}

fn fill(doc: &mut Doc<'_>, raw: Key, ecs: Key) {
    if doc.get(raw).is_none() {
        if let Some(value) = doc.get(ecs).cloned() {
            doc.set(raw, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::windows_event::map_windows;
    use super::*;
    use crate::record::{Location, Origin, ReadItem, SourceEvent};

    fn event(line: &str) -> SourceEvent {
        let origin = Origin {
            kind: "replay",
            file: None,
            location: Location::Line(1),
        };
        let mut doc = Doc::parse(line.as_bytes()).unwrap();
        match map_windows(&mut doc, origin, None) {
            ReadItem::Event(e) => *e,
            other => panic!("not an event: {other:?}"),
        }
    }

    /// Winlogbeat's Sysmon module: the process fields moved to `process.*`.
    const SYSMON: &str = r##"{"@timestamp":"2024-05-02T10:00:01.123Z","event":{"code":"1","provider":"Microsoft-Windows-Sysmon","action":"Process Create (rule: ProcessCreate)"},"host":{"name":"web01.corp.local"},"process":{"pid":4242,"executable":"C:\\Windows\\System32\\cmd.exe","command_line":"cmd.exe /c whoami","working_directory":"C:\\Windows\\System32\\inetsrv\\","pe":{"original_file_name":"Cmd.Exe"},"parent":{"pid":1000,"executable":"C:\\Windows\\System32\\inetsrv\\w3wp.exe","command_line":"w3wp.exe -ap \"DefaultAppPool\""}},"user":{"domain":"IIS APPPOOL","name":"DefaultAppPool"},"winlog":{"channel":"Microsoft-Windows-Sysmon/Operational","computer_name":"WEB01","event_id":"1","provider_name":"Microsoft-Windows-Sysmon","user":{"identifier":"S-1-5-18"},"event_data":{"IntegrityLevel":"High","RuleName":"-"}}}"##;

    #[test]
    fn sysmon_module_fields_are_read_from_process() {
        let e = event(SYSMON);
        assert_eq!(e.process.pid, 4242);
        assert_eq!(e.process.ppid, Some(1000));
        assert_eq!(e.process.exe.as_deref(), Some("cmd.exe"));
        assert_eq!(e.process.command_line.as_deref(), Some("cmd.exe /c whoami"));
        assert_eq!(
            e.process.user.as_deref(),
            Some(r"IIS APPPOOL\DefaultAppPool")
        );
        assert_eq!(e.process.integrity_level.as_deref(), Some("High"));
        assert_eq!(e.process.original_file_name.as_deref(), Some("Cmd.Exe"));
        assert_eq!(e.parent.exe.as_deref(), Some("w3wp.exe"));
        assert_eq!(
            e.parent.command_line.as_deref(),
            Some(r#"w3wp.exe -ap "DefaultAppPool""#)
        );
        // winlog.computer_name (the event's host) rather than host.name (the shipper's).
        assert_eq!(e.hostname.as_deref(), Some("WEB01"));
        assert!(e.timestamp.is_some());
    }

    #[test]
    fn an_elasticsearch_hit_and_dotted_keys_read_the_same() {
        let hit = format!(r#"{{"_index":"winlogbeat-8.13.0","_id":"x","_source":{SYSMON}}}"#);
        assert_eq!(event(&hit), event(SYSMON));
        let dotted = r##"{"winlog.event_id":1,"winlog.channel":"Microsoft-Windows-Sysmon/Operational","process.pid":4242,"process.executable":"C:\\Windows\\System32\\cmd.exe","process.parent.pid":1000,"process.parent.executable":"C:\\Windows\\System32\\inetsrv\\w3wp.exe","host.name":"web01"}"##;
        let e = event(dotted);
        assert_eq!((e.process.pid, e.process.ppid), (4242, Some(1000)));
        assert_eq!(e.parent.exe.as_deref(), Some("w3wp.exe"));
        assert_eq!(e.hostname.as_deref(), Some("web01"));
    }

    #[test]
    fn security_4688_process_pid_is_the_new_process() {
        let e = event(
            r##"{"winlog":{"channel":"Security","event_id":4688,"provider_name":"Microsoft-Windows-Security-Auditing","event_data":{"SubjectUserName":"WEB01$","SubjectDomainName":"CORP","MandatoryLabel":"S-1-16-16384"}},"process":{"pid":11624,"executable":"C:\\Windows\\System32\\cmd.exe","command_line":"cmd /c whoami","parent":{"pid":7764,"executable":"C:\\Windows\\System32\\inetsrv\\w3wp.exe"}}}"##,
        );
        assert_eq!(e.process.pid, 11624);
        assert_eq!(e.process.ppid, Some(7764));
        assert_eq!(e.process.user.as_deref(), Some(r"CORP\WEB01$"));
        assert_eq!(e.parent.exe.as_deref(), Some("w3wp.exe"));
    }

    #[test]
    fn winlogbeat_6_fields_at_the_top() {
        let e = event(
            r##"{"@timestamp":"2019-05-14T09:01:02.113Z","beat":{"version":"6.7.1"},"computer_name":"WEB08","event_id":1,"log_name":"Microsoft-Windows-Sysmon/Operational","source_name":"Microsoft-Windows-Sysmon","process_id":2212,"event_data":{"ProcessId":"4242","Image":"C:\\Windows\\System32\\cmd.exe","ParentProcessId":"1000","ParentImage":"C:\\Windows\\System32\\inetsrv\\w3wp.exe"}}"##,
        );
        assert_eq!((e.process.pid, e.process.ppid), (4242, Some(1000)));
        assert_eq!(e.parent.exe.as_deref(), Some("w3wp.exe"));
        assert_eq!(e.hostname.as_deref(), Some("WEB08"));
    }

    #[test]
    fn raw_event_data_wins_over_ecs() {
        let e = event(
            r##"{"winlog":{"channel":"Microsoft-Windows-Sysmon/Operational","event_id":1,"event_data":{"ProcessId":"7","Image":"C:\\a\\raw.exe"}},"process":{"pid":8,"executable":"C:\\a\\ecs.exe"}}"##,
        );
        assert_eq!(e.process.pid, 7);
        assert_eq!(e.process.exe.as_deref(), Some("raw.exe"));
    }
}
