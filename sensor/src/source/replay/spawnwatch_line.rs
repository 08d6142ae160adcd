//! spawnwatch's own event lines, as the live sensor writes them with `--record`, and
//! their inverse.
//!
//! ```text
//! {"timestamp":"2026-11-27T10:00:00.123Z","hostname":"WEB01","action":"create","pid":4242,"ppid":1000,"image_path":"C:\\Windows\\System32\\cmd.exe",...}
//! {"timestamp":"2026-11-27T10:00:01.000Z","hostname":"WEB01","action":"terminate","pid":4242}
//! ```
//! Required: `action` (create | terminate | existing), `pid`, `timestamp`; a create also
//! needs `image_path` or `exe`. Unknown keys are ignored.

use super::fields::{known, Doc, Key, Val};
use super::time::{format_time, parse_time};
use crate::record::{Action, Origin, ParentFields, ProcessRecord, ReadItem, SourceEvent, Text};
use serde::Serialize;

type Problem = (&'static str, String);

/// Maps one parsed spawnwatch line.
pub(crate) fn map_line(doc: &mut Doc, origin: Origin) -> ReadItem {
    let location = origin.location;
    match build(doc, origin) {
        Ok(event) => ReadItem::Event(Box::new(event)),
        Err((kind, message)) => ReadItem::Malformed {
            kind,
            location,
            message,
        },
    }
}

fn build(doc: &mut Doc, origin: Origin) -> Result<SourceEvent, Problem> {
    let action = match required_str(doc, Key::Action)? {
        "create" => Action::Create,
        "terminate" => Action::Terminate,
        "existing" => Action::Existing,
        other => {
            return Err((
                "bad-value",
                format!("`action` is {other:?}; expected create, terminate or existing"),
            ))
        }
    };
    let pid = required(doc, Key::Pid, pid_of(doc, Key::Pid))?;
    let written = required_str(doc, Key::Timestamp)?;
    let timestamp = parse_time(written).ok_or_else(|| {
        (
            "bad-value",
            format!("`timestamp` {written:?} is not an RFC 3339 time"),
        )
    })?;
    let mut process = ProcessRecord {
        pid,
        ppid: pid_of(doc, Key::Ppid)?,
        creator_pid: pid_of(doc, Key::CreatorPid)?,
        exe: string(doc, Key::Exe)?,
        image_path: string(doc, Key::ImagePath)?,
        command_line: string(doc, Key::LineCommandLine)?,
        argv: strings(doc, Key::Argv)?,
        user: string(doc, Key::LineUser)?,
        effective_user: string(doc, Key::EffectiveUser)?,
        listens: None,
        sid: string(doc, Key::Sid)?,
        integrity_level: string(doc, Key::LineIntegrityLevel)?,
        current_working_directory: string(doc, Key::Cwd)?,
        original_file_name: string(doc, Key::LineOriginalFileName)?,
        exe_deleted: flag(doc, Key::ExeDeleted)?,
        exe_memfd: flag(doc, Key::ExeMemfd)?,
        ..Default::default()
    };
    if action == Action::Create && process.image_path.is_none() && process.exe.is_none() {
        return Err((
            "missing-field",
            "a create without `image_path` or `exe`".to_string(),
        ));
    }
    let mut parent = ParentFields {
        exe: string(doc, Key::ParentExe)?,
        image_path: string(doc, Key::ParentImagePath)?,
        command_line: string(doc, Key::LineParentCommandLine)?,
        ..Default::default()
    };
    process.fill_exe();
    parent.fill_exe();
    Ok(SourceEvent {
        timestamp: Some(timestamp),
        hostname: string(doc, Key::LineHostname)?,
        action,
        process,
        parent,
        origin,
    })
}

fn wrong_type(key: Key, expected: &str, found: &Val) -> Problem {
    (
        "wrong-type",
        format!(
            "`{}` must be {expected}, not {}",
            key.name(),
            found.type_name()
        ),
    )
}

fn required<T>(doc: &Doc, key: Key, value: Result<Option<T>, Problem>) -> Result<T, Problem> {
    value?.ok_or_else(|| match doc.get(key) {
        None => ("missing-field", format!("no `{}`", key.name())),
        Some(found) => wrong_type(key, "set", found),
    })
}

fn required_str<'d>(doc: &'d Doc, key: Key) -> Result<&'d str, Problem> {
    match doc.get(key) {
        None | Some(Val::Null) => Err(("missing-field", format!("no `{}`", key.name()))),
        Some(Val::Str(s)) => Ok(s),
        Some(other) => Err(wrong_type(key, "a string", other)),
    }
}

/// An optional string: null, `""` and `"-"` are unknown.
fn string(doc: &mut Doc, key: Key) -> Result<Option<Text>, Problem> {
    match doc.take(key) {
        None | Some(Val::Null) => Ok(None),
        Some(Val::Str(s)) => Ok(known(&s).is_some().then(|| s.into())),
        Some(other) => Err(wrong_type(key, "a string", &other)),
    }
}

/// An optional list of strings (`argv`): null is unknown, `[]` an empty list.
fn strings(doc: &mut Doc, key: Key) -> Result<Option<Box<[Text]>>, Problem> {
    match doc.take(key) {
        None | Some(Val::Null) => Ok(None),
        Some(Val::Strings(list)) => Ok(Some(list.into_iter().map(Text::from).collect())),
        Some(Val::Array) => Err((
            "wrong-type",
            format!(
                "`{}` must be a list of strings; it holds other values",
                key.name()
            ),
        )),
        Some(other) => Err(wrong_type(key, "a list of strings", &other)),
    }
}

/// An optional yes/no (`exe_deleted`): true, false or null.
fn flag(doc: &mut Doc, key: Key) -> Result<Option<bool>, Problem> {
    match doc.take(key) {
        None | Some(Val::Null) => Ok(None),
        Some(Val::Bool(yes)) => Ok(Some(yes)),
        Some(other) => Err(wrong_type(key, "true or false", &other)),
    }
}

/// An optional process id: a JSON number from 0 to 2^32-1, or null.
fn pid_of(doc: &Doc, key: Key) -> Result<Option<u32>, Problem> {
    match doc.get(key) {
        None | Some(Val::Null) => Ok(None),
        Some(Val::UInt(n)) => u32::try_from(*n).map(Some).map_err(|_| {
            (
                "bad-value",
                format!("`{}` {n} is not a process id", key.name()),
            )
        }),
        Some(other @ (Val::Int(_) | Val::Float(_))) => Err((
            "bad-value",
            format!(
                "`{}` must be a whole number from 0 to 4294967295 ({other:?})",
                key.name()
            ),
        )),
        Some(other) => Err(wrong_type(key, "a number", other)),
    }
}

#[derive(Serialize)]
struct Line<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hostname: Option<&'a str>,
    action: &'static str,
    pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    ppid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exe_deleted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exe_memfd: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command_line: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    argv: Option<&'a [Text]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    effective_user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_image_path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_command_line: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    creator_pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    integrity_level: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    original_file_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_working_directory: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exe: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_exe: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
}

/// One spawnwatch event line for `--record` (a JSON object, no newline). The origin is
/// not written: a replay of the line gets its own. An event without a timestamp is
/// written without one, and a replay reports that line as missing it.
pub fn to_event_line(event: &SourceEvent) -> String {
    let p = &event.process;
    let line = Line {
        timestamp: event.timestamp.as_ref().map(format_time),
        hostname: event.hostname.as_deref(),
        action: match event.action {
            Action::Create => "create",
            Action::Terminate => "terminate",
            Action::Existing => "existing",
        },
        pid: p.pid,
        ppid: p.ppid,
        image_path: p.image_path.as_deref(),
        exe_deleted: p.exe_deleted,
        exe_memfd: p.exe_memfd,
        command_line: p.command_line.as_deref(),
        argv: p.argv.as_deref(),
        user: p.user.as_deref(),
        effective_user: p.effective_user.as_deref(),
        parent_image_path: event.parent.image_path.as_deref(),
        parent_command_line: event.parent.command_line.as_deref(),
        creator_pid: p.creator_pid,
        integrity_level: p.integrity_level.as_deref(),
        original_file_name: p.original_file_name.as_deref(),
        current_working_directory: p.current_working_directory.as_deref(),
        exe: p.exe.as_deref(),
        parent_exe: event.parent.exe.as_deref(),
        sid: p.sid.as_deref(),
    };
    // Strings and integers only: serializing to a String cannot fail.
    serde_json::to_string(&line).expect("an event line serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Location;
    use chrono::{TimeZone, Utc};

    fn origin(line: u64) -> Origin {
        Origin {
            kind: "replay",
            file: Some("rec.jsonl".into()),
            location: Location::Line(line),
        }
    }

    fn map(line: &str) -> ReadItem {
        map_line(&mut Doc::parse(line.as_bytes()).unwrap(), origin(3))
    }

    fn problem(line: &str) -> (&'static str, String) {
        match map(line) {
            ReadItem::Malformed { kind, message, .. } => (kind, message),
            other => panic!("not malformed: {other:?}"),
        }
    }

    const CREATE: &str = r##"{"timestamp":"2026-11-27T10:00:00.123Z","hostname":"WEB01","action":"create","pid":4242,"ppid":1000,"image_path":"C:\\Windows\\System32\\cmd.exe","command_line":"cmd.exe /c whoami","user":"IIS APPPOOL\\DefaultAppPool","parent_image_path":"C:\\Windows\\System32\\inetsrv\\w3wp.exe","parent_command_line":"w3wp.exe -ap x","creator_pid":1000,"integrity_level":"High","original_file_name":"Cmd.Exe","current_working_directory":"C:\\Windows\\System32\\inetsrv\\","exe":"cmd.exe","parent_exe":"w3wp.exe","sid":"S-1-5-82-1","unknown":{"x":[1]}}"##;

    #[test]
    fn reads_a_create_line() {
        let ReadItem::Event(e) = map(CREATE) else {
            panic!("no event")
        };
        assert_eq!(e.action, Action::Create);
        assert_eq!(
            e.timestamp,
            Some(
                Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap()
                    + chrono::Duration::milliseconds(123)
            )
        );
        assert_eq!(e.hostname.as_deref(), Some("WEB01"));
        assert_eq!(e.process.pid, 4242);
        assert_eq!(e.process.ppid, Some(1000));
        assert_eq!(e.process.creator_pid, Some(1000));
        assert_eq!(
            e.process.user.as_deref(),
            Some(r"IIS APPPOOL\DefaultAppPool")
        );
        assert_eq!(e.process.sid.as_deref(), Some("S-1-5-82-1"));
        assert_eq!(e.parent.exe.as_deref(), Some("w3wp.exe"));
        assert_eq!(e.parent.command_line.as_deref(), Some("w3wp.exe -ap x"));
        assert_eq!(e.origin, origin(3));
    }

    #[test]
    fn terminate_existing_and_exe_only() {
        let ReadItem::Event(e) = map(
            r##"{"timestamp":"2026-11-27T10:00:01.000Z","hostname":"WEB01","action":"terminate","pid":4242}"##,
        ) else {
            panic!()
        };
        assert_eq!(e.action, Action::Terminate);
        assert_eq!(e.process.exe, None);
        let ReadItem::Event(e) = map(
            r##"{"timestamp":"2026-11-27T10:00:01Z","action":"existing","pid":4,"exe":"System"}"##,
        ) else {
            panic!()
        };
        assert_eq!(e.action, Action::Existing);
        assert_eq!(e.process.exe.as_deref(), Some("System"));
        let ReadItem::Event(e) = map(
            r##"{"timestamp":"2026-11-27T10:00:01Z","action":"create","pid":4,"image_path":"/usr/bin/id"}"##,
        ) else {
            panic!()
        };
        assert_eq!(e.process.exe.as_deref(), Some("id"));
    }

    #[test]
    fn argv_is_a_list_of_strings() {
        let t = r##""timestamp":"2026-11-27T10:00:01Z","action":"create","pid":1,"exe":"sh""##;
        let ReadItem::Event(e) = map(&format!(r#"{{{t},"argv":["sh","-c","id"]}}"#)) else {
            panic!()
        };
        assert_eq!(
            e.process.argv.as_deref(),
            Some(&["sh", "-c", "id"].map(Text::from)[..])
        );
        for (wrong, message) in [
            (
                r#""sh -c id""#,
                "`argv` must be a list of strings, not a string",
            ),
            (
                r#"["sh",1]"#,
                "`argv` must be a list of strings; it holds other values",
            ),
            ("{}", "`argv` must be a list of strings, not an object"),
        ] {
            let got = problem(&format!(r#"{{{t},"argv":{wrong}}}"#));
            assert_eq!(got, ("wrong-type", message.to_string()), "{wrong}");
        }
    }

    #[test]
    fn missing_and_mistyped_keys_are_named() {
        let t = r##""timestamp":"2026-11-27T10:00:01Z""##;
        for (line, kind, key) in [
            (format!(r##"{{{t},"pid":1}}"##), "missing-field", "action"),
            (
                format!(r##"{{{t},"action":"terminate"}}"##),
                "missing-field",
                "pid",
            ),
            (
                r##"{"action":"terminate","pid":1}"##.to_string(),
                "missing-field",
                "timestamp",
            ),
            (
                format!(r##"{{{t},"action":"create","pid":1}}"##),
                "missing-field",
                "image_path",
            ),
            (
                format!(r##"{{{t},"action":"terminate","pid":"1"}}"##),
                "wrong-type",
                "pid",
            ),
            (
                format!(r##"{{{t},"action":1,"pid":1}}"##),
                "wrong-type",
                "action",
            ),
            (
                format!(r##"{{{t},"action":"terminate","pid":1,"ppid":"2"}}"##),
                "wrong-type",
                "ppid",
            ),
            (
                format!(r##"{{{t},"action":"create","pid":1,"exe":7}}"##),
                "wrong-type",
                "exe",
            ),
            (
                r##"{"timestamp":5,"action":"terminate","pid":1}"##.to_string(),
                "wrong-type",
                "timestamp",
            ),
            (
                format!(r##"{{{t},"action":"terminate","pid":-1}}"##),
                "bad-value",
                "pid",
            ),
            (
                format!(r##"{{{t},"action":"terminate","pid":4294967296}}"##),
                "bad-value",
                "pid",
            ),
            (
                format!(r##"{{{t},"action":"spawn","pid":1}}"##),
                "bad-value",
                "action",
            ),
            (
                r##"{"timestamp":"soon","action":"terminate","pid":1}"##.to_string(),
                "bad-value",
                "timestamp",
            ),
        ] {
            let (got_kind, message) = problem(&line);
            assert_eq!(got_kind, kind, "{line}: {message}");
            assert!(message.contains(key), "{line}: {message}");
        }
        let line = r#"{"timestamp":"2026-11-27T10:00:00Z","action":"create","pid":1,"exe":"x","exe_memfd":"yes"}"#;
        let (kind, message) = problem(line);
        assert_eq!(kind, "wrong-type");
        assert_eq!(message, "`exe_memfd` must be true or false, not a string");
    }

    #[test]
    fn round_trip() {
        let ReadItem::Event(original) = map(CREATE) else {
            panic!()
        };
        let line = to_event_line(&original);
        assert!(!line.contains('\n'));
        assert!(line.starts_with(r##"{"timestamp":"2026-11-27T10:00:00.123Z","hostname":"WEB01","action":"create","pid":4242,"##), "{line}");
        let ReadItem::Event(again) = map(&line) else {
            panic!("{line}")
        };
        assert_eq!(again, original);

        // Sparse events, every action, sub-millisecond time.
        for action in [Action::Create, Action::Terminate, Action::Existing] {
            let event = SourceEvent {
                timestamp: Some(
                    Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
                        + chrono::Duration::nanoseconds(7),
                ),
                hostname: None,
                action,
                process: ProcessRecord {
                    pid: u32::MAX,
                    exe: Some("a \"quoted\" \\ näme".into()),
                    argv: Some(["sh", "-c", "echo \"it's\" \\", ""].map(Text::from).into()),
                    effective_user: Some("root".into()),
                    exe_deleted: Some(action == Action::Create),
                    exe_memfd: Some(false),
                    ..ProcessRecord::default()
                },
                parent: ParentFields::default(),
                origin: origin(3),
            };
            let ReadItem::Event(again) = map(&to_event_line(&event)) else {
                panic!()
            };
            assert_eq!(*again, event);
        }
    }
}
