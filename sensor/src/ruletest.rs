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
//! recorded event, so the test sees what replay and live would. A key that is no field
//! is an error with a did-you-mean: read as absent, a misspelt field would let a
//! `nomatch` example pass for the wrong reason.

use crate::event::ProcessEvent;
use crate::record::{Action, Location, Origin, ParentFields, ProcessRecord, SourceEvent, Text};
use crate::table::ProcessTable;
use dsl::ast::Span;
use dsl::{Diagnostic, Field, FieldRef, RuleId, RuleSet, Scratch, Source};
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
    event: Map<String, Value>,
}

/// Reads the examples of a tests file. A line that cannot be read, or a file that is
/// not UTF-8, gives an error rendered as the rule checker renders its own (file, line,
/// column, caret, hint); it counts as a failure.
pub fn parse(source: &Source) -> Vec<Result<Example, String>> {
    let sources = std::slice::from_ref(source);
    if let Some(error) = source.encoding_error(0) {
        return vec![Err(error.render(sources))];
    }
    // Where a part of a line (a slice of the source text) is, for a diagnostic.
    let at = |part: &str, len: usize| {
        let start = part.as_ptr() as usize - source.text.as_ptr() as usize;
        Span {
            file: 0,
            start,
            end: start + len,
        }
    };
    source
        .text
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(_, text)| !text.is_empty() && !text.starts_with('#'))
        .map(|(line, text)| {
            parse_line(&source.name, line, text, &at).map_err(|error| error.render(sources))
        })
        .collect()
}

fn parse_line(
    file: &str,
    line: usize,
    text: &str,
    at: &dyn Fn(&str, usize) -> Span,
) -> Result<Example, Diagnostic> {
    let (verdict, rest) = first_word(text);
    let (rule, event_text) = first_word(rest);
    let should_match = match verdict {
        "match" => true,
        "nomatch" => false,
        other => {
            return Err(Diagnostic::error(
                "bad-test",
                format!("a test line starts with `match` or `nomatch`, not `{other}`"),
                at(verdict, verdict.len()),
            ))
        }
    };
    let event = match serde_json::from_str::<Value>(event_text) {
        Ok(Value::Object(map)) => map,
        Ok(_) => {
            return Err(Diagnostic::error(
                "bad-event",
                "the event must be a JSON object",
                at(event_text, event_text.len()),
            ))
        }
        Err(e) => {
            // The event is on one line: serde's column (in bytes) is the place in it.
            let mut column = e.column().saturating_sub(1).min(event_text.len());
            while !event_text.is_char_boundary(column) {
                column -= 1;
            }
            let message = e.to_string();
            let message = message.split(" at line ").next().unwrap_or(&message);
            return Err(Diagnostic::error(
                "bad-event",
                format!("the event is not JSON: {message}"),
                at(&event_text[column..], 1),
            ));
        }
    };
    if let Some((key, hint)) = unknown_key(&event) {
        let quoted = format!("\"{key}\"");
        let span = match event_text.find(&quoted) {
            Some(i) => at(&event_text[i..], quoted.len()),
            None => at(event_text, 1),
        };
        return Err(Diagnostic::error(
            "unknown-field",
            format!("unknown field `{key}` in the event"),
            span,
        )
        .with_hint(hint));
    }
    Ok(Example {
        file: file.to_string(),
        line,
        rule: rule.to_string(),
        should_match,
        event_text: event_text.to_string(),
        event,
    })
}

/// The first key of the event or of its ancestors that no rule could read, with a hint:
/// the field it probably meant, or what the keys may be. Without this, a misspelled
/// field would be absent, and a `nomatch` example would pass for the wrong reason.
fn unknown_key(event: &Map<String, Value>) -> Option<(&str, String)> {
    let own = event
        .keys()
        .find(|k| *k != "ancestors" && FieldRef::from_name(k).is_none());
    let ancestors = || {
        let list = event.get("ancestors")?.as_array()?;
        list.iter()
            .filter_map(Value::as_object)
            .flat_map(|a| a.keys())
            .find(|k| Field::from_name(k).is_none())
    };
    let (key, in_ancestor) = match own {
        Some(key) => (key, false),
        None => (ancestors()?, true),
    };
    let valid_here = |name: &str| {
        Field::from_name(name).is_some() || (!in_ancestor && FieldRef::from_name(name).is_some())
    };
    let hint = match dsl::check::field_suggestion(key).filter(|s| valid_here(s)) {
        Some(field) => format!("did you mean `{field}`?"),
        None if in_ancestor => "an ancestor's keys are the CAR field names: exe, image_path, command_line, pid, ...".to_string(),
        None => "the keys are the CAR field names (exe, image_path, command_line, pid, ...), their `parent_` forms, and `ancestors`".to_string(),
    };
    Some((key.as_str(), hint))
}

/// The first whitespace-separated word and the rest, trimmed: both slices of `text`.
fn first_word(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    match text.find(char::is_whitespace) {
        Some(i) => (&text[..i], text[i..].trim()),
        None => (text, &text[text.len()..]),
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

pub fn run(rules: &RuleSet, examples: &[Result<Example, String>]) -> Outcome {
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
        let example = match example {
            Ok(example) => example,
            Err(unreadable) => {
                outcome.failures.push(unreadable.clone());
                continue;
            }
        };
        let at = format!("{}:{}", example.file, example.line);
        let Some(&id) = ids.get(example.rule.as_str()) else {
            outcome
                .failures
                .push(format!("FAIL {at}: no rule `{}` is loaded", example.rule));
            continue;
        };
        let event = match build_event(&example.event) {
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
        outcome.failures.push(format!("FAIL {at}: {} {expected}\n  event: {}\n  condition (yes/no per part, [value seen]):\n{}", example.rule, readable(&example.event_text), steps.join("\n")));
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

/// How much of an event a failure shows: the condition's report names the values
/// that mattered, and a whole recorded command line would bury it.
const SHOWN_CHARS: usize = 200;

/// `text`, cut after [`SHOWN_CHARS`] chars with a note of how long it was.
fn readable(text: &str) -> String {
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!(
            "{}... ({} chars in all)",
            &text[..cut],
            text.chars().count()
        ),
        None => text.to_string(),
    }
}

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
        host: None,
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
        effective_user: text(fields, "effective_user")?,
        listens: flag(fields, "listens")?,
        exe_deleted: flag(fields, "exe_deleted")?,
        exe_memfd: flag(fields, "exe_memfd")?,
        argv: None,
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

fn flag(fields: &Map<String, Value>, key: &str) -> Result<Option<bool>, String> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(yes)) => Ok(Some(*yes)),
        Some(_) => Err(format!("`{key}` must be true or false")),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> RuleSet {
        dsl::load(&[Source::new(
            "t.rules",
            "rule T { title: \"t\" severity: low attack: T1059 condition: parent_exe == \"w3wp.exe\" and exe == \"cmd.exe\" }",
        )])
        .unwrap()
        .rules
    }

    /// Each example of a tests file: passed, or the failure as printed.
    fn outcomes(text: &[u8]) -> Vec<Result<(), String>> {
        let source = Source::from_bytes("t.tests", text.to_vec());
        let rules = rules();
        parse(&source)
            .into_iter()
            .map(|example| {
                let outcome = run(&rules, &[example]);
                match outcome.failures.first() {
                    None => Ok(()),
                    Some(failure) => Err(failure.clone()),
                }
            })
            .collect()
    }

    #[test]
    fn an_unknown_field_is_an_error_at_its_place_with_a_did_you_mean() {
        let got = outcomes(
            b"# the parent key is misspelled: without the error this would pass as nomatch\nnomatch T {\"exe\":\"cmd.exe\",\"parent_exee\":\"w3wp.exe\"}\n",
        );
        assert_eq!(
            got,
            [Err("error[unknown-field]: unknown field `parent_exee` in the event\n --> t.tests:2:28\n  |\n2 | nomatch T {\"exe\":\"cmd.exe\",\"parent_exee\":\"w3wp.exe\"}\n  |                            ^^^^^^^^^^^^^\n  = help: did you mean `parent_exe`?".to_string())]
        );
    }

    #[test]
    fn unknown_fields_of_ancestors_and_sysmon_spellings_are_errors_too() {
        let got = outcomes(
            b"match T {\"exe\":\"cmd.exe\",\"ancestors\":[{\"exee\":\"w3wp.exe\"}]}\nmatch T {\"exe\":\"cmd.exe\",\"ParentImage\":\"C:\\\\w3wp.exe\"}\nmatch T {\"exe\":\"cmd.exe\",\"ancestors\":[{\"parent_exe\":\"w3wp.exe\"}]}\n",
        );
        let errors: Vec<String> = got.into_iter().map(|r| r.unwrap_err()).collect();
        assert!(errors[0].contains("unknown field `exee`"), "{}", errors[0]);
        assert!(errors[0].contains("--> t.tests:1:40"), "{}", errors[0]);
        assert!(errors[0].contains("did you mean `exe`?"), "{}", errors[0]);
        assert!(
            errors[1].contains("did you mean `parent_image_path`?"),
            "{}",
            errors[1]
        );
        // `parent_exe` is no key of an ancestor (the next ancestor is its parent).
        assert!(
            errors[2].contains("unknown field `parent_exe`"),
            "{}",
            errors[2]
        );
        assert!(!errors[2].contains("did you mean"), "{}", errors[2]);
    }

    #[test]
    fn every_valid_key_passes() {
        let got = outcomes(
            b"match T {\"exe\":\"cmd.exe\",\"image_path\":\"C:\\\\cmd.exe\",\"command_line\":\"cmd\",\"pid\":5,\"ppid\":4,\"creator_pid\":4,\"user\":\"u\",\"sid\":\"S-1\",\"integrity_level\":\"High\",\"current_working_directory\":\"C:\\\\\",\"original_file_name\":\"Cmd.Exe\",\"hostname\":\"h\",\"parent_command_line\":\"w3wp -ap\",\"ancestors\":[{\"exe\":\"w3wp.exe\",\"pid\":4,\"user\":\"u\"}]}\n",
        );
        assert_eq!(got, [Ok(())]);
    }

    #[test]
    fn a_byte_order_mark_is_ignored_and_bytes_that_are_not_utf8_are_located() {
        let mut bom = "\u{FEFF}".as_bytes().to_vec();
        bom.extend_from_slice(b"match T {\"exe\":\"cmd.exe\",\"parent_exe\":\"w3wp.exe\"}\n");
        assert_eq!(outcomes(&bom), [Ok(())]);
        let latin1 = b"match T {\"exe\":\"cmd.exe\",\"parent_exe\":\"w3wp.exe\"}\nnomatch T {\"exe\":\"caf\xE9.exe\"}\n";
        let got = outcomes(latin1);
        assert_eq!(got.len(), 1, "the file is refused as a whole: {got:?}");
        let error = got[0].clone().unwrap_err();
        assert!(
            error.starts_with("error[not-utf8]: the file is not UTF-8 text: byte 0xE9 cannot be read\n --> t.tests:2:22\n"),
            "{error}"
        );
    }

    #[test]
    fn lines_that_are_not_examples_point_at_the_mistake() {
        let got = outcomes(b"matches T {}\nmatch T {\"exe\": cmd}\nmatch T [1]\n");
        let errors: Vec<String> = got.into_iter().map(|r| r.unwrap_err()).collect();
        assert!(
            errors[0].starts_with("error[bad-test]: a test line starts with `match` or `nomatch`, not `matches`\n --> t.tests:1:1"),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].starts_with(
                "error[bad-event]: the event is not JSON: expected value\n --> t.tests:2:17"
            ),
            "{}",
            errors[1]
        );
        assert!(
            errors[2].contains("the event must be a JSON object"),
            "{}",
            errors[2]
        );
    }

    #[test]
    fn a_failing_example_shows_its_event_cut_to_a_readable_length() {
        let long = "A".repeat(5000);
        let text = format!("match T {{\"exe\":\"cmd.exe\",\"command_line\":\"{long}\"}}\n");
        let failure = outcomes(text.as_bytes())[0].clone().unwrap_err();
        let event = failure
            .lines()
            .find(|l| l.starts_with("  event: "))
            .unwrap();
        assert!(event.len() < 300, "{event}");
        assert!(event.ends_with("... (5035 chars in all)"), "{event}");
    }
}
