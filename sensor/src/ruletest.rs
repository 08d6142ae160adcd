//! `spawnwatch test`: the examples that ship beside the rules, run against them.
//!
//! A `*.tests` file beside a `*.rules` file holds one example per line:
//!
//! ```text
//! # comment
//! match   CAR-2021-02-001 {"exe":"cmd.exe","command_line":"cmd /c whoami","ancestors":[{"exe":"w3wp.exe"}]}
//! nomatch CAR-2021-02-001 {"exe":"cmd.exe","parent_exe":"explorer.exe"}
//! ```
//!
//! The event is a compact spawnwatch event: the new process's CAR fields at the top,
//! `ancestors` parent first (or `parent_exe` / `parent_image_path` /
//! `parent_command_line` for the parent alone). It goes through the process table like a
//! recorded event, so the test sees what replay and live would.

use crate::event::ProcessEvent;
use crate::record::{Action, Location, Origin, ParentFields, ProcessRecord, SourceEvent, Text};
use crate::table::ProcessTable;
use dsl::{RuleId, RuleSet, Scratch};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};

/// One example from a tests file.
#[derive(Debug)]
pub struct Example {
    pub file: String,
    pub line: usize,
    pub rule: String,
    pub should_match: bool,
    pub event_text: String,
    event: Result<Map<String, Value>, String>,
}

/// Reads examples from a tests file's text; lines that cannot be read become examples
/// that fail with the reason.
pub fn parse(file: &str, text: &str) -> Vec<Example> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| parse_line(file, i + 1, l.trim()))
        .collect()
}

fn parse_line(file: &str, line: usize, text: &str) -> Example {
    let (verdict, rest) = first_word(text);
    let (rule, event_text) = first_word(rest);
    let should_match = verdict == "match";
    let event = match verdict {
        "match" | "nomatch" => serde_json::from_str::<Value>(event_text)
            .map_err(|e| format!("the event is not JSON: {e}"))
            .and_then(|v| match v {
                Value::Object(map) => Ok(map),
                _ => Err("the event must be a JSON object".to_string()),
            }),
        other => Err(format!(
            "a test line starts with `match` or `nomatch`, not `{other}`"
        )),
    };
    Example {
        file: file.to_string(),
        line,
        rule: rule.to_string(),
        should_match,
        event_text: event_text.to_string(),
        event,
    }
}

/// The first whitespace-separated word and the rest, trimmed.
fn first_word(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    match text.find(char::is_whitespace) {
        Some(i) => (&text[..i], text[i..].trim()),
        None => (text, ""),
    }
}

/// The outcome of running examples.
#[derive(Debug, Default)]
pub struct Outcome {
    pub passed: usize,
    /// Each failure, ready to print.
    pub failures: Vec<String>,
    /// Rules lacking a positive or a negative example.
    pub untested: Vec<String>,
}

pub fn run(rules: &RuleSet, examples: &[Example]) -> Outcome {
    let ids: HashMap<&str, RuleId> = rules
        .ids()
        .map(|id| (rules.meta(id).id.as_str(), id))
        .collect();
    let mut scratch = Scratch::new();
    let mut outcome = Outcome::default();
    let mut coverage: BTreeMap<&str, (bool, bool)> = rules
        .ids()
        .map(|id| (rules.meta(id).id.as_str(), (false, false)))
        .collect();
    for example in examples {
        let at = format!("{}:{}", example.file, example.line);
        let Some(&id) = ids.get(example.rule.as_str()) else {
            outcome
                .failures
                .push(format!("FAIL {at}: no rule `{}` is loaded", example.rule));
            continue;
        };
        let event = match &example.event {
            Ok(map) => build_event(map),
            Err(e) => Err(e.clone()),
        };
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                outcome.failures.push(format!("FAIL {at}: {e}"));
                continue;
            }
        };
        let mut matched = Vec::new();
        rules.evaluate(&event, &mut scratch, &mut matched);
        let entry = coverage.entry(rules.meta(id).id.as_str()).or_default();
        if example.should_match {
            entry.0 = true;
        } else {
            entry.1 = true;
        }
        if matched.contains(&id) == example.should_match {
            outcome.passed += 1;
            continue;
        }
        let expected = if example.should_match {
            "should match but did not"
        } else {
            "should not match but did"
        };
        let steps: Vec<String> = dsl::explain::explain(rules, id, &event, &mut scratch)
            .iter()
            .map(|s| format!("    {}", s.render()))
            .collect();
        outcome.failures.push(format!("FAIL {at}: {} {expected}\n  event: {}\n  condition (yes/no per part, [value seen]):\n{}", example.rule, example.event_text, steps.join("\n")));
    }
    outcome.untested = coverage
        .into_iter()
        .filter(|(_, (pos, neg))| !pos || !neg)
        .map(|(rule, (pos, neg))| {
            let missing: Vec<&str> = [(!pos).then_some("match"), (!neg).then_some("nomatch")]
                .into_iter()
                .flatten()
                .collect();
            format!("rule {rule} has no `{}` example", missing.join("` or `"))
        })
        .collect();
    outcome
}

const PROCESS_KEYS: [&str; 20] = [
    "exe",
    "image_path",
    "command_line",
    "pid",
    "ppid",
    "creator_pid",
    "user",
    "sid",
    "integrity_level",
    "current_working_directory",
    "original_file_name",
    "description",
    "product",
    "company",
    "file_version",
    "hashes",
    "logon_id",
    "terminal_session_id",
    "hostname",
    "ancestors",
];

/// The example's process and ancestors, placed in a fresh process table.
fn build_event(map: &Map<String, Value>) -> Result<ProcessEvent, String> {
    let hostname = text(map, "hostname")?;
    let mut chain: Vec<Map<String, Value>> = match map.get("ancestors") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_object()
                    .cloned()
                    .ok_or_else(|| "each ancestor must be a JSON object".to_string())
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("`ancestors` must be a list of objects, parent first".to_string()),
    };
    let parent_keys: Map<String, Value> = map
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("parent_")
                .map(|base| (base.to_string(), v.clone()))
        })
        .collect();
    if !parent_keys.is_empty() {
        match chain.first_mut() {
            Some(parent) => parent.extend(parent_keys),
            None => chain.push(parent_keys),
        }
    }
    for key in map.keys() {
        if !PROCESS_KEYS.contains(&key.as_str()) && !key.starts_with("parent_") {
            return Err(format!(
                "unknown key `{key}` in the event (fields are CAR names: {})",
                PROCESS_KEYS.join(", ")
            ));
        }
    }
    // The process first, then up the ancestry: a level's pid is its own `pid`, or the
    // `ppid` the level below names, or made up; its ppid is the next level's pid.
    let levels: Vec<&Map<String, Value>> = std::iter::once(map).chain(chain.iter()).collect();
    let mut pids = Vec::with_capacity(levels.len());
    for (i, fields) in levels.iter().enumerate() {
        let named_by_child = match i {
            0 => None,
            _ => number(levels[i - 1], "ppid")?,
        };
        pids.push(
            number(fields, "pid")?
                .or(named_by_child)
                .unwrap_or(10_000 + i as u32),
        );
    }
    // Placed oldest first, as they would have started.
    let mut table = ProcessTable::default();
    let mut placed = None;
    for (i, fields) in levels.iter().enumerate().rev() {
        let ppid = number(fields, "ppid")?.or(pids.get(i + 1).copied());
        let mut process = record(fields, pids[i], ppid)?;
        process.fill_exe();
        let mut event = SourceEvent {
            timestamp: None,
            hostname: hostname.clone(),
            action: Action::Create,
            process,
            parent: ParentFields::default(),
            origin: Origin {
                kind: "test",
                file: None,
                location: Location::Live,
            },
        };
        placed = table.apply(&mut event).map(|p| (p, event));
    }
    let (placed, event) = placed.ok_or("an empty event")?;
    Ok(ProcessEvent {
        timestamp: None,
        hostname: event.hostname,
        process: placed,
        ancestor_limit: 32,
        origin: event.origin,
    })
}

fn record(
    fields: &Map<String, Value>,
    pid: u32,
    ppid: Option<u32>,
) -> Result<ProcessRecord, String> {
    Ok(ProcessRecord {
        pid,
        ppid,
        creator_pid: number(fields, "creator_pid")?,
        exe: text(fields, "exe")?,
        image_path: text(fields, "image_path")?,
        command_line: text(fields, "command_line")?,
        user: text(fields, "user")?,
        sid: text(fields, "sid")?,
        integrity_level: text(fields, "integrity_level")?,
        current_working_directory: text(fields, "current_working_directory")?,
        original_file_name: text(fields, "original_file_name")?,
        description: text(fields, "description")?,
        product: text(fields, "product")?,
        company: text(fields, "company")?,
        file_version: text(fields, "file_version")?,
        hashes: text(fields, "hashes")?,
        logon_id: text(fields, "logon_id")?,
        terminal_session_id: text(fields, "terminal_session_id")?,
    })
}

fn text(fields: &Map<String, Value>, key: &str) -> Result<Option<Text>, String> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.into())),
        Some(other) => Err(format!("`{key}` must be a string, not {other}")),
    }
}

fn number(fields: &Map<String, Value>, key: &str) -> Result<Option<u32>, String> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| format!("`{key}` must be a number")),
    }
}
