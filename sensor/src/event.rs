//! The event the workers evaluate: a new process with its ancestry as the process
//! table knew it when the process started.

use crate::facts::HostFacts;
use crate::record::{Origin, ProcessRecord, Text};
use crate::table::Entry;
use chrono::{DateTime, Utc};
use dsl::{Field, Value};
use std::sync::Arc;

#[derive(Debug)]
pub struct ProcessEvent {
    pub timestamp: Option<DateTime<Utc>>,
    pub hostname: Option<Text>,
    /// The new process, linked to its ancestors as they were when it started.
    pub process: Arc<Entry>,
    /// How many of those ancestors the event shows.
    pub ancestor_limit: usize,
    pub origin: Origin,
    /// The live host, to find out `listens` when a rule asks; `None` in replay.
    pub host: Option<&'static dyn HostFacts>,
}

impl ProcessEvent {
    /// The parent, grandparent, ... up to the limit.
    pub fn ancestors(&self) -> impl Iterator<Item = &Entry> {
        self.process.ancestors().take(self.ancestor_limit)
    }

    /// The process `depth` steps up: 0 is the new process.
    pub fn at(&self, depth: u32) -> Option<&ProcessRecord> {
        self.entry(depth).map(|e| &e.record)
    }

    fn entry(&self, depth: u32) -> Option<&Entry> {
        match depth {
            0 => Some(&self.process),
            d => self.ancestors().nth(d as usize - 1),
        }
    }

    /// Whether the process `depth` steps up listens: as its source said, else as the
    /// host says now (asked once a rule gets this far; see [`crate::facts`]).
    fn listens(&self, depth: u32) -> Option<bool> {
        let entry = self.entry(depth)?;
        entry
            .record
            .listens
            .or_else(|| entry.facts.listens(&entry.record, self.host?))
    }
}

impl dsl::Event for ProcessEvent {
    fn value(&self, depth: u32, field: Field) -> Option<Value<'_>> {
        match field {
            Field::Hostname => self.hostname.as_deref().map(Value::Text),
            Field::Listens => self.listens(depth).map(Value::Flag),
            _ => record_value(self.at(depth)?, field),
        }
    }

    fn ancestor_count(&self) -> u32 {
        self.process.ancestor_count().min(self.ancestor_limit) as u32
    }
}

/// A record's value for a field, as the rules see it.
pub fn record_value(r: &ProcessRecord, field: Field) -> Option<Value<'_>> {
    fn text(s: &Option<Text>) -> Option<Value<'_>> {
        s.as_deref().map(Value::Text)
    }
    fn number(n: Option<u32>) -> Option<Value<'static>> {
        n.map(|n| Value::Number(n.into()))
    }
    match field {
        Field::Exe => text(&r.exe),
        Field::ImagePath => text(&r.image_path),
        Field::CommandLine => text(&r.command_line),
        Field::Pid => number(r.known_pid()),
        Field::Ppid => number(r.ppid),
        Field::CreatorPid => number(r.creator_pid),
        Field::User => text(&r.user),
        Field::EffectiveUser => text(&r.effective_user),
        Field::Listens => r.listens.map(Value::Flag),
        Field::ExeDeleted => r.exe_deleted.map(Value::Flag),
        Field::ExeMemfd => r.exe_memfd.map(Value::Flag),
        Field::Sid => text(&r.sid),
        Field::IntegrityLevel => text(&r.integrity_level),
        Field::CurrentWorkingDirectory => text(&r.current_working_directory),
        Field::OriginalFileName => text(&r.original_file_name),
        Field::Description => text(&r.description),
        Field::Product => text(&r.product),
        Field::Company => text(&r.company),
        Field::FileVersion => text(&r.file_version),
        Field::Hashes => text(&r.hashes),
        Field::LogonId => text(&r.logon_id),
        Field::TerminalSessionId => text(&r.terminal_session_id),
        Field::Hostname => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Location, SourceEvent};
    use crate::table::ProcessTable;
    use dsl::Event;

    /// pid 5 under 4 under 3 under 2 under 1, shown up to `limit` ancestors.
    fn chain_of_five(limit: usize) -> ProcessEvent {
        let mut table = ProcessTable::default();
        let mut last = None;
        for pid in 1..=5 {
            last = table.apply(&mut SourceEvent::created(pid, pid - 1, "sh"));
        }
        ProcessEvent {
            timestamp: None,
            hostname: None,
            process: last.unwrap(),
            ancestor_limit: limit,
            origin: Origin {
                kind: "test",
                file: None,
                location: Location::Live,
            },
            host: None,
        }
    }

    #[test]
    fn ancestors_stop_at_the_limit() {
        let event = chain_of_five(2);
        assert_eq!(event.ancestor_count(), 2);
        assert_eq!(event.at(2).map(|r| r.pid), Some(3));
        assert_eq!(event.at(3), None);
        let pids: Vec<u32> = event.ancestors().map(|e| e.record.pid).collect();
        assert_eq!(pids, [4, 3]);
        assert_eq!(chain_of_five(32).ancestor_count(), 4);
    }
}
