//! Alert lines: one JSON object per line, every key present (null when unknown), so a
//! SIEM can map the fields once.

use crate::event::{record_value, ProcessEvent};
use crate::record::{Location, ProcessRecord};
use dsl::explain::Step;
use dsl::ir::RuleMeta;
use dsl::{Field, Value};
use serde_json::{json, Map, Value as Json};

/// The alert for `rule` firing on `event`, as one line without the newline; with
/// `explain`, each part of the condition with its result and the value it saw.
pub fn alert_line(event: &ProcessEvent, rule: &RuleMeta, explain: Option<&[Step]>) -> String {
    let parent = event.ancestors.first().map(|e| &e.record);
    let mut alert = json!({
        "kind": "alert",
        "timestamp": event.timestamp.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        "hostname": event.hostname,
        "rule": {
            "id": rule.id,
            "title": rule.title,
            "severity": rule.severity.name(),
            "attack": rule.attack,
        },
        "process": process_json(&event.process.record, &PROCESS_FIELDS),
        "parent": parent_json(event.process.record.ppid, parent),
        "ancestors": event.ancestors.iter().map(|e| process_json(&e.record, &ANCESTOR_FIELDS)).collect::<Vec<_>>(),
        "source": source_json(event),
    });
    if let Some(steps) = explain {
        alert["explain"] = steps
            .iter()
            .map(|s| json!({"depth": s.indent, "test": s.text, "value": s.value, "held": s.held}))
            .collect();
    }
    alert.to_string()
}

const PROCESS_FIELDS: [Field; 11] = [
    Field::Pid,
    Field::Ppid,
    Field::CreatorPid,
    Field::Exe,
    Field::ImagePath,
    Field::CommandLine,
    Field::User,
    Field::Sid,
    Field::IntegrityLevel,
    Field::CurrentWorkingDirectory,
    Field::OriginalFileName,
];
const PARENT_FIELDS: [Field; 4] = [Field::Pid, Field::Exe, Field::ImagePath, Field::CommandLine];
const ANCESTOR_FIELDS: [Field; 3] = [Field::Pid, Field::Exe, Field::ImagePath];

fn process_json(record: &ProcessRecord, fields: &[Field]) -> Json {
    let map: Map<String, Json> = fields
        .iter()
        .map(|&f| {
            let value = match record_value(record, f) {
                Some(Value::Text(s)) => Json::from(s),
                Some(Value::Number(n)) => Json::from(n),
                None => Json::Null,
            };
            (f.name().to_string(), value)
        })
        .collect();
    Json::Object(map)
}

/// The parent as far as known: its pid comes from the child's ppid even when the table
/// has no entry for it.
fn parent_json(ppid: Option<u32>, parent: Option<&ProcessRecord>) -> Json {
    match parent {
        Some(record) => process_json(record, &PARENT_FIELDS),
        None => {
            let unknown = ProcessRecord::default();
            let mut json = process_json(&unknown, &PARENT_FIELDS);
            json["pid"] = ppid.map_or(Json::Null, Json::from);
            json
        }
    }
}

fn source_json(event: &ProcessEvent) -> Json {
    let (line, record) = match event.origin.location {
        Location::Line(n) => (Some(n), None),
        Location::Record(n) => (None, Some(n)),
        Location::Live => (None, None),
    };
    json!({
        "kind": event.origin.kind,
        "file": event.origin.file.as_deref(),
        "line": line,
        "record": record,
    })
}
