//! `spawnwatch replay`: recorded logs through the same pipeline as the live sensor.

use crate::incident::summary::table;
use crate::pipeline::{Options, Pipeline, Report, Rules};
use crate::record::ReadItem;
use crate::source::replay::{self, Input, Items, ReplayError};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What was read, for the closing summary.
#[derive(Debug, Default)]
pub struct ReadCounts {
    pub files: u64,
    pub unreadable_files: u64,
    /// Files a directory walk found that are plainly not logs, and the first of them.
    pub not_logs: u64,
    pub first_not_log: String,
    pub records: u64,
    pub process_events: u64,
    /// Process creations whose record gave no pid: evaluated, not linked to children.
    pub without_pid: u64,
    pub skipped: u64,
    /// Per kind: how many, and where the first one was.
    pub malformed: BTreeMap<&'static str, (u64, String)>,
}

impl ReadCounts {
    fn malformed_total(&self) -> u64 {
        self.malformed.values().map(|(n, _)| n).sum()
    }

    /// Whether an input could not be read, or there was none: exit code 2, as grep
    /// gives when a file it was asked to read cannot be.
    pub fn input_failed(&self) -> bool {
        self.unreadable_files > 0 || self.files == 0
    }
}

/// Replays `inputs` and returns what was read and alerted. Errors that stop one input
/// (it is missing, unreadable, not a log) are printed and counted; the others go on.
pub fn replay(
    inputs: &[PathBuf],
    rules: Rules,
    sink: Box<dyn crate::sink::Sink>,
    options: &Options,
) -> Result<(ReadCounts, Report), String> {
    let inputs = replay::expand(inputs);
    let mut pipeline = Pipeline::start(rules, sink, options);
    let jobs = pipeline.jobs();
    let mut counts = ReadCounts::default();
    let mut progress = Progress::new();
    // Each input is opened while the one before is consumed: EVTX and zip readers
    // parse on their own thread, so the next file's parsing overlaps this one's
    // evaluation. The table still sees the files one after another, in order.
    let mut opened = inputs
        .into_iter()
        .map(|input| input.and_then(|input| Ok((replay::read(&input, &jobs)?, input))))
        .peekable();
    while let Some(opened_one) = opened.next() {
        opened.peek();
        match opened_one {
            Ok((items, input)) => {
                read_one(&input, items, &mut pipeline, &mut counts, &mut progress)
            }
            Err(e) => not_read(&e, &mut counts, &mut progress),
        }
    }
    progress.clear();
    let report = pipeline
        .finish()
        .map_err(|e| format!("writing alerts failed: {e}"))?;
    Ok((counts, report))
}

/// Counts an input that could not be read; reports it unless it is a file a directory
/// walk found that is plainly not a log.
fn not_read(e: &ReplayError, counts: &mut ReadCounts, progress: &mut Progress) {
    if e.passed_over() {
        if counts.not_logs == 0 {
            counts.first_not_log = e.name().to_string();
        }
        counts.not_logs += 1;
        return;
    }
    progress.clear();
    eprintln!("spawnwatch: {e}");
    counts.unreadable_files += 1;
}

fn read_one(
    input: &Input,
    items: Items,
    pipeline: &mut Pipeline,
    counts: &mut ReadCounts,
    progress: &mut Progress,
) {
    counts.files += 1;
    for item in items {
        counts.records += 1;
        match item {
            ReadItem::Event(event) => {
                counts.process_events += 1;
                counts.without_pid += u64::from(event.process.known_pid().is_none());
                pipeline.push(*event);
            }
            ReadItem::Skipped => counts.skipped += 1,
            ReadItem::Malformed {
                kind,
                location,
                message,
            } => {
                let first = counts
                    .malformed
                    .entry(kind)
                    .or_insert_with(|| (0, format!("{} {location}: {message}", input.name())));
                first.0 += 1;
            }
        }
        if counts.records.is_multiple_of(4096) {
            progress.show(input.name(), counts);
        }
    }
}

/// Prints the closing summary on stderr.
pub fn print_summary(counts: &ReadCounts, report: &Report, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    let mut out = std::io::stderr().lock();
    let _ = writeln!(
        out,
        "spawnwatch: replayed {} file(s){}: {} events read, {} process events, {} skipped, {} malformed",
        counts.files,
        if counts.unreadable_files > 0 { format!(" ({} unreadable)", counts.unreadable_files) } else { String::new() },
        counts.records,
        counts.process_events,
        counts.skipped,
        counts.malformed_total(),
    );
    if counts.without_pid > 0 {
        let _ = writeln!(
            out,
            "  without a process id: {} process creations (evaluated; no child can be linked to them)",
            counts.without_pid
        );
    }
    for (kind, (n, first)) in &counts.malformed {
        let _ = writeln!(out, "  malformed {kind}: {n} (first: {first})");
    }
    if counts.not_logs > 0 {
        let _ = writeln!(
            out,
            "  not logs, passed over: {} file(s) in the directories (first: {})",
            counts.not_logs, counts.first_not_log
        );
    }
    let alerts: Vec<String> = report
        .alerts
        .iter()
        .map(|(rule, n)| format!("{rule} x{n}"))
        .collect();
    let _ = writeln!(
        out,
        "  alerts: {}{}",
        report.total_alerts(),
        if alerts.is_empty() {
            String::new()
        } else {
            format!(" ({})", alerts.join(", "))
        }
    );
    if !report.incidents.is_empty() {
        let heading = format!("  incidents: {}", report.incidents.len());
        let _ = write!(out, "{}", table(&heading, &report.incidents, "    "));
    }
    let output = &report.output;
    if output.lost > 0 {
        let _ = writeln!(
            out,
            "  lost: {} alerts could not be written to {} ({} write errors)",
            output.lost, output.name, output.write_errors
        );
    }
    let rate = if secs > 0.0 {
        counts.records as f64 / secs
    } else {
        0.0
    };
    let _ = writeln!(out, "  {secs:.2} s, {rate:.0} events/s");
}

/// A one-line status on stderr while a long replay runs, only when stderr is a terminal.
struct Progress {
    enabled: bool,
    started: Instant,
    last: Instant,
    shown: bool,
}

impl Progress {
    fn new() -> Progress {
        let now = Instant::now();
        Progress {
            enabled: std::io::stderr().is_terminal(),
            started: now,
            last: now,
            shown: false,
        }
    }

    fn show(&mut self, file: &str, counts: &ReadCounts) {
        if !self.enabled
            || self.last.elapsed() < Duration::from_millis(250)
            || self.started.elapsed() < Duration::from_secs(1)
        {
            return;
        }
        self.last = Instant::now();
        self.shown = true;
        eprint!(
            "\r\x1b[2K{file}: {} events read, {} process events ({:.0}/s)",
            counts.records,
            counts.process_events,
            counts.records as f64 / self.started.elapsed().as_secs_f64()
        );
    }

    fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[2K");
            self.shown = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::Memory;
    use arc_swap::ArcSwap;
    use std::sync::Arc;

    /// With one worker the table thread also parses every chunk and evaluates every
    /// batch; with two it shares the parsing with a pool thread. Channels hold one
    /// batch: each stage waits on the others, and none may wait forever.
    #[test]
    fn a_large_input_goes_through_one_and_two_workers_in_order() {
        let events = 40_000;
        let mut file = tempfile::NamedTempFile::new().unwrap();
        for pid in 1..=events {
            writeln!(
                file,
                r#"{{"timestamp":"2026-11-27T10:00:00Z","action":"create","pid":{pid},"ppid":1,"exe":"cmd.exe"}}"#
            )
            .unwrap();
        }
        let loaded = dsl::load(&[dsl::Source::new(
            "t.rules",
            r#"rule T { title: "t" severity: high attack: [T1505.003] condition: exe == "cmd.exe" }"#,
        )])
        .unwrap();
        let rules: Rules = Arc::new(ArcSwap::from_pointee(loaded.rules));
        for workers in [1, 2] {
            let memory = Memory::default();
            let options = Options {
                workers,
                ordered: true,
                capacity: 64,
                storm: crate::storm::StormLimits {
                    limit: 0,
                    ..Default::default()
                },
                ..Options::default()
            };
            let (counts, report) = replay(
                &[file.path().to_path_buf()],
                rules.clone(),
                Box::new(memory.clone()),
                &options,
            )
            .unwrap();
            assert_eq!(counts.process_events, events);
            assert_eq!(report.total_alerts(), events);
            assert_eq!(
                memory.alert_pids(),
                (1..=events).collect::<Vec<u64>>(),
                "{workers} workers"
            );
        }
    }
}
