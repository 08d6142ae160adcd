//! Alert lines: one JSON object per line, every key present (null when unknown), so a
//! SIEM can map the fields once.

use crate::event::{record_value, ProcessEvent};
use crate::record::{Location, ProcessRecord};
use crate::table::Entry;
use dsl::explain::Step;
use dsl::ir::RuleMeta;
use dsl::{Field, Value};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

/// The alert for `rule` firing on `event`, in `incident` (see [`crate::incident`]), as
/// one line without the newline; with `explain`, each part of the condition with its
/// result and the value it saw.
///
/// Serialised straight from the records: building a `serde_json::Value` first cost
/// about 100,000 instructions an alert.
pub fn alert_line(
    event: &ProcessEvent,
    rule: &RuleMeta,
    incident: &str,
    explain: Option<&[Step]>,
) -> String {
    let record = &event.process.record;
    let unknown_parent = ProcessRecord::default();
    let parent = event.ancestors().next();
    let alert = AlertJson {
        kind: "alert",
        timestamp: event
            .timestamp
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        hostname: event.hostname.as_deref(),
        incident,
        rule: RuleJson {
            id: &rule.id,
            title: &rule.title,
            severity: rule.severity.name(),
            attack: &rule.attack,
        },
        process: Fields::of(&event.process, &PROCESS_FIELDS),
        // The parent as far as known: its pid comes from the child's ppid even when
        // the table has no entry for it.
        parent: match parent {
            Some(entry) => Fields::of(entry, &PARENT_FIELDS),
            None => Fields {
                record: &unknown_parent,
                pid: record.ppid,
                listens: None,
                fields: &PARENT_FIELDS,
            },
        },
        ancestors: event
            .ancestors()
            .map(|e| Fields::of(e, &ANCESTOR_FIELDS))
            .collect(),
        source: source_json(event),
        explain: explain.map(|steps| steps.iter().map(StepJson::from).collect()),
    };
    // Strings, numbers, booleans and nulls only: serializing to a String cannot fail.
    serde_json::to_string(&alert).expect("an alert serializes")
}

#[derive(Serialize)]
struct AlertJson<'a> {
    kind: &'static str,
    timestamp: Option<String>,
    hostname: Option<&'a str>,
    incident: &'a str,
    rule: RuleJson<'a>,
    process: Fields<'a>,
    parent: Fields<'a>,
    ancestors: Vec<Fields<'a>>,
    source: SourceJson<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    explain: Option<Vec<StepJson<'a>>>,
}

#[derive(Serialize)]
struct RuleJson<'a> {
    id: &'a str,
    title: &'a str,
    severity: &'static str,
    attack: &'a [String],
}

#[derive(Serialize)]
struct SourceJson<'a> {
    kind: &'static str,
    file: Option<&'a str>,
    line: Option<u64>,
    record: Option<u64>,
}

#[derive(Serialize)]
struct StepJson<'a> {
    depth: usize,
    test: &'a str,
    value: Option<&'a str>,
    held: bool,
}

impl<'a> From<&'a Step> for StepJson<'a> {
    fn from(step: &'a Step) -> StepJson<'a> {
        StepJson {
            depth: step.indent,
            test: &step.text,
            value: step.value.as_deref(),
            held: step.held,
        }
    }
}

/// A key of a process object: a field under the name the rules use, or `argv`.
#[derive(Copy, Clone)]
enum Column {
    Field(Field),
    /// The arguments as a JSON list (null when the source did not give them apart).
    Argv,
}

const PROCESS_FIELDS: [Column; 22] = [
    Column::Field(Field::Pid),
    Column::Field(Field::Ppid),
    Column::Field(Field::CreatorPid),
    Column::Field(Field::Exe),
    Column::Field(Field::ImagePath),
    Column::Field(Field::CommandLine),
    Column::Argv,
    Column::Field(Field::User),
    Column::Field(Field::EffectiveUser),
    Column::Field(Field::Sid),
    Column::Field(Field::IntegrityLevel),
    Column::Field(Field::CurrentWorkingDirectory),
    Column::Field(Field::OriginalFileName),
    Column::Field(Field::Description),
    Column::Field(Field::Product),
    Column::Field(Field::Company),
    Column::Field(Field::FileVersion),
    Column::Field(Field::Hashes),
    Column::Field(Field::LogonId),
    Column::Field(Field::TerminalSessionId),
    Column::Field(Field::ExeDeleted),
    Column::Field(Field::ExeMemfd),
];
const PARENT_FIELDS: [Column; 6] = [
    Column::Field(Field::Pid),
    Column::Field(Field::Exe),
    Column::Field(Field::ImagePath),
    Column::Field(Field::CommandLine),
    Column::Field(Field::User),
    Column::Field(Field::Listens),
];
const ANCESTOR_FIELDS: [Column; 3] = [
    Column::Field(Field::Pid),
    Column::Field(Field::Exe),
    Column::Field(Field::ImagePath),
];

/// Some fields of a record as a JSON object, every one present (null when unknown).
struct Fields<'a> {
    record: &'a ProcessRecord,
    /// Written for `pid` (a parent known only by the child's ppid has no record).
    pid: Option<u32>,
    /// Written for `listens`: what the rules saw, if any asked (the alert asks no one).
    listens: Option<bool>,
    fields: &'static [Column],
}

impl<'a> Fields<'a> {
    fn of(entry: &'a Entry, fields: &'static [Column]) -> Fields<'a> {
        Fields {
            record: &entry.record,
            pid: entry.record.known_pid(),
            listens: entry.record.listens.or(entry.facts.known_listens()),
            fields,
        }
    }
}

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.fields.len()))?;
        for &column in self.fields {
            let field = match column {
                Column::Argv => {
                    map.serialize_entry("argv", &self.record.argv)?;
                    continue;
                }
                Column::Field(field) => field,
            };
            let value = match field {
                Field::Pid => self.pid.map(|pid| Value::Number(pid.into())),
                Field::Listens => self.listens.map(Value::Flag),
                _ => record_value(self.record, field),
            };
            match value {
                Some(Value::Text(text)) => map.serialize_entry(field.name(), text)?,
                Some(Value::Number(n)) => map.serialize_entry(field.name(), &n)?,
                Some(Value::Flag(yes)) => map.serialize_entry(field.name(), &yes)?,
                None => map.serialize_entry(field.name(), &())?,
            }
        }
        map.end()
    }
}

fn source_json(event: &ProcessEvent) -> SourceJson<'_> {
    let (line, record) = match event.origin.location {
        Location::Line(n) => (Some(n), None),
        Location::Record(n) => (None, Some(n)),
        Location::Live => (None, None),
    };
    SourceJson {
        kind: event.origin.kind,
        file: event.origin.file.as_deref(),
        line,
        record,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::event::ProcessEvent;
    use crate::record::{Origin, SourceEvent, Text};
    use crate::table::ProcessTable;
    use dsl::ast::{Severity, Span};

    /// A rule's metadata for tests: high severity, T1505.003.
    pub(crate) fn meta(id: &str, title: String) -> RuleMeta {
        RuleMeta {
            id: id.into(),
            title,
            description: String::new(),
            severity: Severity::High,
            attack: vec!["T1505.003".into()],
            references: vec![],
            enabled: true,
            span: Span::default(),
        }
    }

    /// The exact bytes, key order included: a SIEM's parser may depend on more than
    /// the JSON's meaning.
    #[test]
    fn an_alert_line_is_written_exactly_so() {
        let mut table = ProcessTable::default();
        let mut w3wp = SourceEvent::created(1000, 4, "w3wp.exe");
        w3wp.process.image_path = Some(r"C:\Windows\System32\inetsrv\w3wp.exe".into());
        table.apply(&mut w3wp);
        let mut cmd = SourceEvent::created(4242, 1000, "cmd.exe");
        cmd.process.command_line = Some(r#"cmd.exe /c "whoami""#.into());
        let event = ProcessEvent {
            timestamp: chrono::DateTime::from_timestamp(1_795_000_000, 5_000_000),
            hostname: Some("WEB01".into()),
            process: table.apply(&mut cmd).unwrap(),
            ancestor_limit: 32,
            origin: Origin {
                kind: "replay",
                file: Some("x.jsonl".into()),
                location: Location::Line(7),
            },
            host: None,
        };
        let rule = meta("R-1", "t".into());
        let steps = [Step {
            indent: 0,
            text: "exe == \"cmd.exe\"".into(),
            value: Some("cmd.exe".into()),
            held: true,
        }];
        assert_eq!(
            alert_line(&event, &rule, "WEB01/1000/-", None),
            concat!(
                r#"{"kind":"alert","timestamp":"2026-11-18T11:06:40.005Z","hostname":"WEB01","incident":"WEB01/1000/-","#,
                r#""rule":{"id":"R-1","title":"t","severity":"high","attack":["T1505.003"]},"#,
                r#""process":{"pid":4242,"ppid":1000,"creator_pid":null,"exe":"cmd.exe","image_path":null,"#,
                r#""command_line":"cmd.exe /c \"whoami\"","argv":null,"user":null,"effective_user":null,"sid":null,"integrity_level":null,"#,
                r#""current_working_directory":null,"original_file_name":null,"description":null,"product":null,"#,
                r#""company":null,"file_version":null,"hashes":null,"logon_id":null,"terminal_session_id":null,"exe_deleted":null,"exe_memfd":null},"#,
                r#""parent":{"pid":1000,"exe":"w3wp.exe","image_path":"C:\\Windows\\System32\\inetsrv\\w3wp.exe","command_line":null,"user":null,"listens":null},"#,
                r#""ancestors":[{"pid":1000,"exe":"w3wp.exe","image_path":"C:\\Windows\\System32\\inetsrv\\w3wp.exe"}],"#,
                r#""source":{"kind":"replay","file":"x.jsonl","line":7,"record":null}}"#,
            )
        );
        let explained = alert_line(&event, &rule, "WEB01/1000/-", Some(&steps));
        assert!(
            explained.ends_with(r#""record":null},"explain":[{"depth":0,"test":"exe == \"cmd.exe\"","value":"cmd.exe","held":true}]}"#),
            "{explained}"
        );
    }

    /// A Linux process: its argv as a list, both users, and whether its parent
    /// listens as the rules found out (asked of the host only because a rule did).
    #[test]
    fn argv_users_and_listens_as_the_rules_saw_them() {
        let host = crate::facts::tests::fake_host(&[1000]);
        let mut table = ProcessTable::default();
        let mut node = SourceEvent::created(1000, 1, "node");
        node.process.command_line = Some("node server.js".into());
        table.apply(&mut node);
        let mut sudo = SourceEvent::created(4242, 1000, "sudo");
        sudo.process.argv = Some(["sudo", "-n", "-l"].map(Text::from).into());
        sudo.process.user = Some("www-data".into());
        sudo.process.effective_user = Some("root".into());
        let event = ProcessEvent {
            timestamp: None,
            hostname: None,
            process: table.apply(&mut sudo).unwrap(),
            ancestor_limit: 32,
            origin: Origin {
                kind: "proc-connector",
                file: None,
                location: Location::Live,
            },
            host: Some(host),
        };
        let line = |event: &ProcessEvent| -> serde_json::Value {
            serde_json::from_str(&alert_line(event, &meta("R", "t".into()), "-/1000/-", None))
                .unwrap()
        };
        let before = line(&event);
        assert_eq!(
            before["process"]["argv"],
            serde_json::json!(["sudo", "-n", "-l"])
        );
        assert_eq!(before["process"]["user"], "www-data");
        assert_eq!(before["process"]["effective_user"], "root");
        assert_eq!(
            before["parent"]["listens"],
            serde_json::Value::Null,
            "no rule asked"
        );
        assert_eq!(
            dsl::Event::value(&event, 1, Field::Listens),
            Some(Value::Flag(true))
        );
        let after = line(&event);
        assert_eq!(after["parent"]["listens"], true);
    }
}
