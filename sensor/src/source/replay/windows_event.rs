//! Sysmon 1/5 and Security 4688/4689 to process events: one mapping over the field
//! table, whatever carried the fields (EVTX, nested JSON, flat JSON).

use super::fields::{Doc, Key, Val};
use super::time::{from_epoch, parse_time};
use crate::record::{
    Action, Origin, ParentFields, ProcessRecord, ReadItem, SourceEvent, Text, NO_PID,
};
use chrono::{DateTime, Utc};
use compact_str::format_compact;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    SysmonCreate,
    SysmonTerminate,
    SecurityCreate,
    SecurityExit,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::SysmonCreate => "Sysmon event 1",
            Kind::SysmonTerminate => "Sysmon event 5",
            Kind::SecurityCreate => "Security event 4688",
            Kind::SecurityExit => "Security event 4689",
        }
    }
}

/// Where an event says it came from, as far as the record tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Provider {
    Sysmon,
    Security,
    Other,
    /// No channel or provider field at all (a trimmed export).
    Unknown,
}

fn provider(doc: &Doc) -> Provider {
    let mut seen = false;
    let mut security = false;
    for key in [
        Key::Provider,
        Key::SourceName,
        Key::ProviderName,
        Key::EventSourceName,
        Key::Channel,
    ] {
        let Some(name) = doc.str(key) else { continue };
        seen = true;
        let lower = name.to_ascii_lowercase();
        if lower.contains("sysmon") {
            return Provider::Sysmon;
        }
        security |= lower.contains("security");
    }
    match (seen, security) {
        (false, _) => Provider::Unknown,
        (true, true) => Provider::Security,
        (true, false) => Provider::Other,
    }
}

fn kind(doc: &Doc) -> Option<Kind> {
    let id = doc.number(Key::EventId).ok()??;
    let provider = provider(doc);
    // Ids 1 and 5 are common in other channels (Kernel-General 1 is a time change):
    // without a channel or provider to go by, only a record with Sysmon's fields counts.
    let sysmon_like = || doc.get(Key::Image).is_some() || doc.get(Key::ParentImage).is_some();
    let sysmon = provider == Provider::Sysmon || (provider == Provider::Unknown && sysmon_like());
    let security = matches!(provider, Provider::Security | Provider::Unknown);
    match id {
        1 if sysmon => Some(Kind::SysmonCreate),
        5 if sysmon => Some(Kind::SysmonTerminate),
        4688 if security => Some(Kind::SecurityCreate),
        4689 if security => Some(Kind::SecurityExit),
        _ => None,
    }
}

/// Maps one Windows event record. `fallback_time` is the EVTX record header's time, used
/// when the fields carry none that parses.
pub(crate) fn map_windows(
    doc: &mut Doc,
    origin: Origin,
    fallback_time: Option<DateTime<Utc>>,
) -> ReadItem {
    let Some(kind) = kind(doc) else {
        return ReadItem::Skipped;
    };
    super::ecs::complete(doc, kind);
    let location = origin.location;
    match build(doc, kind, origin, fallback_time) {
        Ok(event) => ReadItem::Event(Box::new(event)),
        Err((kind, message)) => ReadItem::Malformed {
            kind,
            location,
            message,
        },
    }
}

type Problem = (&'static str, String);

fn build(
    doc: &Doc,
    kind: Kind,
    origin: Origin,
    fallback_time: Option<DateTime<Utc>>,
) -> Result<SourceEvent, Problem> {
    let mut process = ProcessRecord::default();
    let mut parent = ParentFields::default();
    let action = match kind {
        Kind::SysmonCreate => {
            process.pid = created_pid(doc, kind, Key::ProcessId, Key::Image)?;
            process.ppid = pid(doc, kind, Key::ParentProcessId)?;
            process.image_path = doc.text(Key::Image);
            process.command_line = doc.text(Key::CommandLine);
            process.current_working_directory = doc.text(Key::CurrentDirectory);
            process.user = windows_user(doc);
            process.integrity_level = doc.text(Key::IntegrityLevel);
            process.original_file_name = doc.text(Key::OriginalFileName);
            process.description = doc.text(Key::Description);
            process.product = doc.text(Key::Product);
            process.company = doc.text(Key::Company);
            process.file_version = doc.text(Key::FileVersion);
            process.hashes = doc.text(Key::Hashes);
            process.logon_id = doc.text(Key::LogonId);
            process.terminal_session_id = doc.text(Key::TerminalSessionId);
            parent.image_path = doc.text(Key::ParentImage);
            parent.command_line = doc.text(Key::ParentCommandLine);
            parent.user = doc.text(Key::ParentUser);
            Action::Create
        }
        Kind::SysmonTerminate => {
            process.pid = required_pid(doc, kind, Key::ProcessId)?;
            process.image_path = doc.text(Key::Image);
            process.user = windows_user(doc);
            Action::Terminate
        }
        Kind::SecurityCreate => {
            process.pid = created_pid(doc, kind, Key::NewProcessId, Key::NewProcessName)?;
            process.ppid = pid(doc, kind, Key::ProcessId)?;
            process.creator_pid = process.ppid;
            process.image_path = doc.text(Key::NewProcessName);
            process.command_line = doc.text(Key::CommandLine);
            process.integrity_level = doc.text(Key::MandatoryLabel).map(integrity_level);
            (process.user, process.sid, process.logon_id) = account(doc, true);
            parent.image_path = doc.text(Key::ParentProcessName);
            Action::Create
        }
        Kind::SecurityExit => {
            process.pid = required_pid(doc, kind, Key::ProcessId)?;
            process.image_path = doc.text(Key::ProcessName);
            (process.user, process.sid, _) = account(doc, false);
            Action::Terminate
        }
    };
    process.fill_exe();
    parent.fill_exe();
    Ok(SourceEvent {
        timestamp: timestamp(doc).or(fallback_time),
        // A lower-cased `hostname` (spawnwatch's key) last: shippers add their own.
        hostname: [Key::Hostname, Key::Computer, Key::LineHostname]
            .into_iter()
            .find_map(|key| doc.text(key)),
        action,
        process,
        parent,
        origin,
    })
}

/// Sysmon's `User`; in an export that lower-cased it, the key reads as spawnwatch's
/// `user` (the same meaning), which the exact spelling of keys gives it.
fn windows_user(doc: &Doc) -> Option<Text> {
    doc.text(Key::User).or_else(|| doc.text(Key::LineUser))
}

fn pid(doc: &Doc, kind: Kind, key: Key) -> Result<Option<u32>, Problem> {
    let bad = |shown: String| {
        (
            "bad-value",
            format!(
                "{}: {} {shown} is not a process id",
                kind.label(),
                key.name()
            ),
        )
    };
    match doc.number(key).map_err(bad)? {
        None => Ok(None),
        Some(n) => u32::try_from(n).map(Some).map_err(|_| bad(n.to_string())),
    }
}

fn required_pid(doc: &Doc, kind: Kind, key: Key) -> Result<u32, Problem> {
    pid(doc, kind, key)?.ok_or_else(|| {
        (
            "missing-field",
            format!("{} without {}", kind.label(), key.name()),
        )
    })
}

/// A created process's pid, or [`NO_PID`] when the record has none but names the image
/// (some NXLog exports drop Sysmon's `ProcessId`): the rules need only the names.
fn created_pid(doc: &Doc, kind: Kind, key: Key, image: Key) -> Result<u32, Problem> {
    match pid(doc, kind, key)? {
        Some(pid) => Ok(pid),
        None if doc.str(image).is_some() => Ok(NO_PID),
        None => required_pid(doc, kind, key),
    }
}

/// The account a 4688/4689 names: for a 4688 the new process's (`Target*`) when the
/// record has one, else the creator's (`Subject*`). `DOMAIN\NAME`, the SID and the
/// logon session of that account.
fn account(doc: &Doc, target_first: bool) -> (Option<Text>, Option<Text>, Option<Text>) {
    let target = (
        Key::TargetUserName,
        Key::TargetDomainName,
        Key::TargetUserSid,
        Key::TargetLogonId,
    );
    let subject = (
        Key::SubjectUserName,
        Key::SubjectDomainName,
        Key::SubjectUserSid,
        Key::SubjectLogonId,
    );
    let (name, domain, sid, logon) = if target_first && doc.str(Key::TargetUserName).is_some() {
        target
    } else {
        subject
    };
    let user = doc.str(name).map(|name| match doc.str(domain) {
        Some(domain) => format_compact!("{domain}\\{name}"),
        None => name.into(),
    });
    (user, doc.text(sid), doc.text(logon))
}

/// 4688's `MandatoryLabel` SID as the level's name; other values as they are.
fn integrity_level(label: Text) -> Text {
    let name = match label.to_ascii_uppercase().strip_prefix("S-1-16-") {
        Some("0") => "Untrusted",
        Some("4096") => "Low",
        Some("8192") => "Medium",
        Some("8448") => "Medium Plus",
        Some("12288") => "High",
        Some("16384") => "System",
        Some("20480") => "Protected",
        _ => return label,
    };
    name.into()
}

/// The collector's or the log's time first (`@timestamp`, `TimeCreated`,
/// `TimeGenerated`), Sysmon's `UtcTime` last: every event kind in a file carries the
/// former, so Sysmon and Security events of one file stay on one clock even where a
/// collector wrote local time marked `Z` (the OTRF files: `@timestamp` is `UtcTime`
/// minus the lab's UTC offset). Each as text, or as a number since 1970.
fn timestamp(doc: &Doc) -> Option<DateTime<Utc>> {
    [
        Key::AtTimestamp,
        Key::TimeCreated,
        Key::TimeGenerated,
        Key::UtcTime,
    ]
    .into_iter()
    .find_map(|key| match doc.get(key)? {
        Val::Str(text) => parse_time(text),
        Val::UInt(n) => from_epoch(*n as f64),
        Val::Float(n) => from_epoch(*n),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Location;
    use chrono::TimeZone;

    fn origin() -> Origin {
        Origin {
            kind: "replay",
            file: Some("t.json".into()),
            location: Location::Line(7),
        }
    }

    fn map(line: &str) -> ReadItem {
        map_windows(&mut Doc::parse(line.as_bytes()).unwrap(), origin(), None)
    }

    fn event(line: &str) -> SourceEvent {
        match map(line) {
            ReadItem::Event(e) => *e,
            other => panic!("not an event: {other:?} for {line}"),
        }
    }

    fn malformed(line: &str) -> (&'static str, String) {
        match map(line) {
            ReadItem::Malformed {
                kind,
                location,
                message,
            } => {
                assert_eq!(location, Location::Line(7));
                (kind, message)
            }
            other => panic!("not malformed: {other:?}"),
        }
    }

    const SYSMON_1: &str = r##"{"SourceName":"Microsoft-Windows-Sysmon","Channel":"Microsoft-Windows-Sysmon/Operational","Hostname":"MXS01.azsentinel.local","TimeCreated":"2021-03-14T01:40:16.147Z","@timestamp":"2021-03-14T01:40:16.147Z","EventID":1,"UtcTime":"2021-03-14 06:40:16.146","ProcessId":"11624","Image":"C:\\Windows\\System32\\cmd.exe","OriginalFileName":"Cmd.Exe","Description":"Windows Command Processor","Product":"Microsoft\u00ae Windows\u00ae Operating System","Company":"Microsoft Corporation","FileVersion":"10.0.17763.1 (WinBuild.160101.0800)","Hashes":"SHA1=ABC,IMPHASH=DEF","LogonId":"0x3e7","TerminalSessionId":"0","CommandLine":"\"cmd.exe\" /c whoami","CurrentDirectory":"c:\\windows\\system32\\inetsrv\\","User":"NT AUTHORITY\\SYSTEM","IntegrityLevel":"System","ParentProcessId":"7764","ParentImage":"C:\\Windows\\System32\\inetsrv\\w3wp.exe","ParentCommandLine":"c:\\windows\\system32\\inetsrv\\w3wp.exe -ap \"MSExchangeOWAAppPool\"","ParentUser":"NT AUTHORITY\\SYSTEM"}"##;

    #[test]
    fn sysmon_1_flat() {
        let e = event(SYSMON_1);
        assert_eq!(e.action, Action::Create);
        assert_eq!(e.hostname.as_deref(), Some("MXS01.azsentinel.local"));
        assert_eq!(
            e.timestamp,
            Some(
                Utc.with_ymd_and_hms(2021, 3, 14, 1, 40, 16).unwrap()
                    + chrono::Duration::milliseconds(147)
            )
        );
        let p = &e.process;
        assert_eq!(p.pid, 11624);
        assert_eq!(p.ppid, Some(7764));
        assert_eq!(p.creator_pid, None);
        assert_eq!(p.exe.as_deref(), Some("cmd.exe"));
        assert_eq!(
            p.image_path.as_deref(),
            Some(r"C:\Windows\System32\cmd.exe")
        );
        assert_eq!(p.command_line.as_deref(), Some(r##""cmd.exe" /c whoami"##));
        assert_eq!(p.user.as_deref(), Some(r"NT AUTHORITY\SYSTEM"));
        assert_eq!(p.integrity_level.as_deref(), Some("System"));
        assert_eq!(p.original_file_name.as_deref(), Some("Cmd.Exe"));
        assert_eq!(p.description.as_deref(), Some("Windows Command Processor"));
        assert_eq!(
            p.product.as_deref(),
            Some("Microsoft® Windows® Operating System")
        );
        assert_eq!(p.company.as_deref(), Some("Microsoft Corporation"));
        assert_eq!(
            p.file_version.as_deref(),
            Some("10.0.17763.1 (WinBuild.160101.0800)")
        );
        assert_eq!(p.hashes.as_deref(), Some("SHA1=ABC,IMPHASH=DEF"));
        assert_eq!(p.logon_id.as_deref(), Some("0x3e7"));
        assert_eq!(p.terminal_session_id.as_deref(), Some("0"));
        assert_eq!(
            p.current_working_directory.as_deref(),
            Some(r"c:\windows\system32\inetsrv\")
        );
        assert_eq!(e.parent.exe.as_deref(), Some("w3wp.exe"));
        assert_eq!(e.parent.user.as_deref(), Some(r"NT AUTHORITY\SYSTEM"));
        assert_eq!(
            e.parent.command_line.as_deref(),
            Some(r##"c:\windows\system32\inetsrv\w3wp.exe -ap "MSExchangeOWAAppPool""##)
        );
        assert_eq!(e.origin, origin());
    }

    #[test]
    fn sysmon_1_nested_and_flat_agree() {
        let nested = r##"{"Event":{"#attributes":{"xmlns":"http://schemas.microsoft.com/win/2004/08/events/event"},"System":{"Provider":{"#attributes":{"Name":"Microsoft-Windows-Sysmon","Guid":"{5770385F-C22A-43E0-BF4C-06F5698FFBD9}"}},"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","Computer":"MXS01.azsentinel.local","TimeCreated":{"#attributes":{"SystemTime":"2021-03-14T01:40:16.147000Z"}}},"EventData":{"UtcTime":"2021-03-14 06:40:16.146","ProcessId":11624,"Image":"C:\\Windows\\System32\\cmd.exe","OriginalFileName":"Cmd.Exe","Description":"Windows Command Processor","Product":"Microsoft\u00ae Windows\u00ae Operating System","Company":"Microsoft Corporation","FileVersion":"10.0.17763.1 (WinBuild.160101.0800)","Hashes":"SHA1=ABC,IMPHASH=DEF","LogonId":"0x3e7","TerminalSessionId":"0","CommandLine":"\"cmd.exe\" /c whoami","CurrentDirectory":"c:\\windows\\system32\\inetsrv\\","User":"NT AUTHORITY\\SYSTEM","IntegrityLevel":"System","ParentProcessId":7764,"ParentImage":"C:\\Windows\\System32\\inetsrv\\w3wp.exe","ParentCommandLine":"c:\\windows\\system32\\inetsrv\\w3wp.exe -ap \"MSExchangeOWAAppPool\"","ParentUser":"NT AUTHORITY\\SYSTEM"}}}"##;
        assert_eq!(event(nested), event(SYSMON_1));
    }

    #[test]
    fn sysmon_5() {
        let e = event(
            r##"{"EventID":"5","Channel":"Microsoft-Windows-Sysmon/Operational","Computer":"W","UtcTime":"2021-03-14 06:40:17.000","ProcessId":11624,"Image":"C:\\Windows\\System32\\cmd.exe"}"##,
        );
        assert_eq!(e.action, Action::Terminate);
        assert_eq!(e.process.pid, 11624);
        assert_eq!(e.process.exe.as_deref(), Some("cmd.exe"));
        assert_eq!(e.hostname.as_deref(), Some("W"));
        // Only UtcTime: Sysmon's `YYYY-MM-DD hh:mm:ss.sss`, UTC.
        assert_eq!(
            e.timestamp,
            Some(Utc.with_ymd_and_hms(2021, 3, 14, 6, 40, 17).unwrap())
        );
    }

    const SEC_4688: &str = r##"{"SourceName":"Microsoft-Windows-Security-Auditing","Channel":"Security","Hostname":"MXS01.azsentinel.local","TimeCreated":"2021-03-14T01:40:16.148Z","@timestamp":"2021-03-14T01:40:16.148Z","EventID":4688,"SubjectUserSid":"S-1-5-18","SubjectUserName":"MXS01$","SubjectDomainName":"AZSENTINEL","SubjectLogonId":"0x3e7","NewProcessId":"0x2d68","NewProcessName":"C:\\Windows\\System32\\cmd.exe","ProcessId":"0x1e54","CommandLine":"\"cmd.exe\" /c whoami","TargetUserSid":"S-1-0-0","TargetUserName":"-","TargetDomainName":"-","ParentProcessName":"C:\\Windows\\System32\\inetsrv\\w3wp.exe","MandatoryLabel":"S-1-16-16384"}"##;

    #[test]
    fn security_4688_with_parent_name() {
        let e = event(SEC_4688);
        assert_eq!(e.action, Action::Create);
        let p = &e.process;
        assert_eq!(p.pid, 0x2d68);
        assert_eq!(p.ppid, Some(0x1e54));
        assert_eq!(p.creator_pid, Some(0x1e54));
        assert_eq!(p.exe.as_deref(), Some("cmd.exe"));
        assert_eq!(p.user.as_deref(), Some(r"AZSENTINEL\MXS01$"));
        assert_eq!(p.sid.as_deref(), Some("S-1-5-18"));
        assert_eq!(p.logon_id.as_deref(), Some("0x3e7"));
        assert_eq!(p.integrity_level.as_deref(), Some("System"));
        assert_eq!(e.parent.exe.as_deref(), Some("w3wp.exe"));
        assert_eq!(e.parent.command_line, None);
        assert_eq!(
            e.timestamp,
            Some(
                Utc.with_ymd_and_hms(2021, 3, 14, 1, 40, 16).unwrap()
                    + chrono::Duration::milliseconds(148)
            )
        );
    }

    #[test]
    fn security_4688_old_layout_and_target_account() {
        let e = event(
            r##"{"EventID":4688,"Computer":"PC","TimeGenerated":"2022-05-13T08:54:08.42Z","SubjectUserName":"admin","SubjectDomainName":"CORP","NewProcessId":"0x824","NewProcessName":"C:\\Windows\\System32\\whoami.exe","ProcessId":"0xf60","TargetUserName":"svc","TargetDomainName":"CORP","TargetUserSid":"S-1-5-21-1-2-3-1001","TargetLogonId":"0x1a2b","SubjectLogonId":"0x3e7","MandatoryLabel":"S-1-16-12288"}"##,
        );
        assert_eq!(e.process.pid, 0x824);
        assert_eq!(e.process.user.as_deref(), Some(r"CORP\svc"));
        assert_eq!(e.process.sid.as_deref(), Some("S-1-5-21-1-2-3-1001"));
        assert_eq!(e.process.logon_id.as_deref(), Some("0x1a2b"));
        assert_eq!(e.process.integrity_level.as_deref(), Some("High"));
        assert_eq!(e.process.command_line, None);
        assert_eq!(e.parent, ParentFields::default());
        assert_eq!(e.hostname.as_deref(), Some("PC"));
        assert!(e.timestamp.is_some());
    }

    #[test]
    fn integrity_levels() {
        for (sid, name) in [
            ("S-1-16-0", "Untrusted"),
            ("S-1-16-4096", "Low"),
            ("S-1-16-8192", "Medium"),
            ("S-1-16-8448", "Medium Plus"),
            ("S-1-16-12288", "High"),
            ("S-1-16-16384", "System"),
            ("S-1-16-20480", "Protected"),
            ("S-1-16-28672", "S-1-16-28672"),
            (
                "Mandatory Label\\High Mandatory Level",
                "Mandatory Label\\High Mandatory Level",
            ),
        ] {
            assert_eq!(integrity_level(sid.into()), name);
        }
    }

    #[test]
    fn security_4689() {
        let e = event(
            r##"{"EventID":"4689","Channel":"Security","ProcessId":"0x2d68","ProcessName":"C:\\Windows\\System32\\cmd.exe","SubjectUserName":"MXS01$","SubjectDomainName":"AZSENTINEL","Status":"0x0"}"##,
        );
        assert_eq!(e.action, Action::Terminate);
        assert_eq!(e.process.pid, 0x2d68);
        assert_eq!(e.process.exe.as_deref(), Some("cmd.exe"));
        assert_eq!(e.process.user.as_deref(), Some(r"AZSENTINEL\MXS01$"));
    }

    #[test]
    fn pids_as_numbers_decimal_and_hex_strings() {
        for (written, pid) in [("4242", 4242), ("\"4242\"", 4242), ("\"0x1092\"", 0x1092)] {
            let e = event(&format!(
                r##"{{"EventID":1,"Channel":"Sysmon","ProcessId":{written},"ParentProcessId":{written}}}"##
            ));
            assert_eq!(e.process.pid, pid);
            assert_eq!(e.process.ppid, Some(pid));
        }
    }

    #[test]
    fn dash_means_unknown() {
        let e = event(
            r##"{"EventID":1,"Channel":"Sysmon","ProcessId":1,"ParentProcessId":"-","Image":"-","CommandLine":"","User":"-","ParentImage":"-"}"##,
        );
        assert_eq!(e.process.ppid, None);
        assert_eq!(e.process.image_path, None);
        assert_eq!(e.process.exe, None);
        assert_eq!(e.process.command_line, None);
        assert_eq!(e.process.user, None);
        assert_eq!(e.parent, ParentFields::default());
    }

    #[test]
    fn a_create_without_its_pid_is_kept_with_what_it_has() {
        for line in [
            r##"{"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","Image":"C:\\Windows\\System32\\cmd.exe","ParentProcessId":"7764","ParentImage":"C:\\Windows\\System32\\inetsrv\\w3wp.exe"}"##,
            r##"{"EventID":4688,"Channel":"Security","NewProcessName":"C:\\Windows\\System32\\cmd.exe","ProcessId":"0x1e54","ParentProcessName":"C:\\Windows\\System32\\inetsrv\\w3wp.exe"}"##,
        ] {
            let e = event(line);
            assert_eq!(e.process.known_pid(), None, "{line}");
            assert_eq!(e.process.exe.as_deref(), Some("cmd.exe"));
            assert_eq!(e.parent.exe.as_deref(), Some("w3wp.exe"));
            assert!(e.process.ppid.is_some());
        }
        // A terminate names its process only by pid: without one it is malformed.
        let (kind, message) = malformed(
            r##"{"EventID":5,"Channel":"Sysmon","Image":"C:\\Windows\\System32\\cmd.exe"}"##,
        );
        assert_eq!(
            (kind, message.as_str()),
            ("missing-field", "Sysmon event 5 without ProcessId")
        );
    }

    #[test]
    fn missing_and_bad_pids_are_malformed() {
        let (kind, message) = malformed(r##"{"EventID":4688,"Channel":"Security"}"##);
        assert_eq!(kind, "missing-field");
        assert!(message.contains("NewProcessId"), "{message}");
        let (kind, message) = malformed(r##"{"EventID":1,"Channel":"Sysmon","ProcessId":"0xZZ"}"##);
        assert_eq!(kind, "bad-value");
        assert!(
            message.contains("ProcessId") && message.contains("0xZZ"),
            "{message}"
        );
        let (kind, _) = malformed(r##"{"EventID":1,"Channel":"Sysmon","ProcessId":99999999999}"##);
        assert_eq!(kind, "bad-value");
    }

    #[test]
    fn other_events_and_channels_are_skipped() {
        for line in [
            r##"{"EventID":10,"Channel":"Microsoft-Windows-Sysmon/Operational","SourceProcessId":1}"##,
            r##"{"EventID":1,"Channel":"System","SourceName":"Microsoft-Windows-Kernel-General","NewTime":"x"}"##,
            r##"{"EventID":1,"NewTime":"x"}"##,
            r##"{"EventID":4688,"Channel":"Application","NewProcessId":"0x1"}"##,
            r##"{"EventID":"x"}"##,
        ] {
            assert!(matches!(map(line), ReadItem::Skipped), "{line}");
        }
        // No channel, but Sysmon's fields: mapped.
        assert!(matches!(
            map(r##"{"EventID":1,"ProcessId":3,"Image":"C:\\a.exe"}"##),
            ReadItem::Event(_)
        ));
    }

    /// An export that lower-cased every key: `user` and `hostname` are spawnwatch's
    /// own spellings, and mean the same in a Windows event.
    #[test]
    fn lower_cased_user_and_hostname() {
        let e = event(
            r##"{"eventid":1,"channel":"Microsoft-Windows-Sysmon/Operational","processid":5,"image":"C:\\a.exe","user":"CORP\\svc","hostname":"WEB09"}"##,
        );
        assert_eq!(e.process.user.as_deref(), Some(r"CORP\svc"));
        assert_eq!(e.hostname.as_deref(), Some("WEB09"));
        let e = event(
            r##"{"EventID":1,"Channel":"Sysmon","ProcessId":5,"Image":"a","Computer":"WEB09","hostname":"collector01"}"##,
        );
        assert_eq!(e.hostname.as_deref(), Some("WEB09"));
    }

    #[test]
    fn fallback_time_when_fields_have_none() {
        let t = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
        let mut doc =
            Doc::parse(br##"{"EventID":4689,"ProcessId":"0x10","TimeCreated":"junk"}"##).unwrap();
        match map_windows(&mut doc, origin(), Some(t)) {
            ReadItem::Event(e) => assert_eq!(e.timestamp, Some(t)),
            other => panic!("{other:?}"),
        }
    }
}
