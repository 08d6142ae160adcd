//! The stages every source shares: process table -> bounded channel -> worker pool ->
//! single writer. Live and replay differ only in what feeds [`Pipeline::push`].
//!
//! The table is updated by the one thread that calls `push`, in event order, before the
//! events fan out; workers evaluate the rules (swappable at any time, see [`Rules`]); the
//! writer is the only thread that touches the output, through a [`Delivery`]: an output
//! that fails holds alerts back and never stops the pipeline.
//!
//! Events travel to the workers in batches: one channel hand-over (and at most one
//! wake-up) per batch rather than per event is what lets replay use more than one core.
//! A live source calls [`Pipeline::flush`] whenever it has nothing more waiting, so a
//! lone event is never held back: the table thread evaluates it itself.
//!
//! `--workers N` is the number of threads doing per-event work, and the table thread is
//! one of them: the pool has N - 1 threads (with none, the table thread evaluates each
//! batch itself). Two busy threads per core had cost replay 10-17 % more CPU time for
//! the same work. The pool also runs a source's [`Job`]s (replay parses JSON-lines
//! chunks this way) when no batch is waiting, and so does a thread waiting for a job's
//! result ([`JobQueue::help_until`]). Evaluation goes first: it is what frees the
//! process table thread, which the parsed chunks wait for.

use crate::alert::alert_line;
use crate::event::ProcessEvent;
use crate::facts::HostFacts;
use crate::incident::summary::{IncidentLog, Row};
use crate::incident::{Incident, Sighting};
use crate::latency::AlertLatency;
use crate::record::SourceEvent;
use crate::sink::{Delivery, Figures, Hangups, Sink, Tally};
use crate::storm::{StormGuard, StormKey, StormLimits};
use crate::table::{ProcessTable, TableLimits};
use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use crossbeam_channel::{bounded, select_biased, Receiver, RecvTimeoutError, Sender};
use dsl::{RuleSet, Scratch};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The rule set the workers use; a reload swaps it atomically, so each event is
/// evaluated against exactly one whole set.
pub type Rules = Arc<ArcSwap<RuleSet>>;

#[derive(Clone, Debug)]
pub struct Options {
    pub workers: usize,
    /// Write alerts in input order instead of as they complete.
    pub ordered: bool,
    /// Add to each alert which parts of the rule's condition held, with the values.
    pub explain: bool,
    /// Capacity of each channel, in events (rounded up to whole batches).
    pub capacity: usize,
    /// How many ancestors each event carries.
    pub ancestor_limit: usize,
    /// The live host, asked for `listens` when a rule tests it; `None` in replay.
    pub host: Option<&'static dyn HostFacts>,
    pub table: TableLimits,
    pub storm: StormLimits,
    /// SIGHUPs so far: the output is reopened after each.
    pub hangups: Hangups,
    /// Called on the writer thread when the output's reader is gone for good (stdout
    /// closed by `| head`): replay exits there; `run` polls [`Pipeline::output_ended`].
    pub on_output_ended: fn(),
}

impl Default for Options {
    fn default() -> Options {
        Options {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            ordered: false,
            explain: false,
            capacity: 4096,
            ancestor_limit: 32,
            host: None,
            table: TableLimits::default(),
            storm: StormLimits::default(),
            hangups: Hangups::default(),
            on_output_ended: || {},
        }
    }
}

/// What the pipeline did, for the closing summary.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Process creations evaluated against the rules.
    pub evaluated: u64,
    /// Alerts written, by rule id.
    pub alerts: BTreeMap<String, u64>,
    /// Alerts held back by storm suppression (summarised instead).
    pub suppressed: u64,
    /// What became of the output: write errors, alerts lost.
    pub output: Tally,
    /// The same for `run --record`'s copy of the events.
    pub record: Option<Tally>,
    /// Every incident, by host and first alert.
    pub incidents: Vec<Row>,
}

/// Running totals, readable while the pipeline runs (for the live stats line).
#[derive(Debug, Default)]
pub struct Counters {
    pub evaluated: AtomicU64,
    pub alerts: AtomicU64,
    pub suppressed: AtomicU64,
    pub latency: AlertLatency,
    pub output: Arc<Figures>,
    /// The incidents so far, alerts written and suppressed.
    pub incidents: Mutex<IncidentLog>,
}

impl Report {
    pub fn total_alerts(&self) -> u64 {
        self.alerts.values().sum()
    }

    /// Alerts, and recorded events, that could not be written.
    pub fn lost(&self) -> u64 {
        self.output.lost + self.record.as_ref().map_or(0, |r| r.lost)
    }
}

/// One alert on its way to the writer.
struct Alert {
    sighting: Sighting,
    time: DateTime<Utc>,
    line: String,
    /// When its batch's first event arrived, for [`AlertLatency`].
    queued: Instant,
}

/// At most this many events go to a worker in one hand-over.
const BATCH: usize = 64;

/// Work a source hands to the worker pool. A job must not block: the threads that run
/// jobs (the pool, and the table thread while it waits) are the ones that drain the
/// pipeline. For the same reason only a source's own thread may submit jobs, never the
/// table thread.
pub type Job = Box<dyn FnOnce() + Send>;

/// Where sources queue [`Job`]s, and where the pool and waiting threads take them.
#[derive(Clone)]
pub struct JobQueue {
    submit: Sender<Job>,
    take: Receiver<Job>,
}

impl JobQueue {
    /// A queue of at most `capacity` jobs not yet taken.
    pub fn new(capacity: usize) -> JobQueue {
        let (submit, take) = bounded(capacity.max(1));
        JobQueue { submit, take }
    }

    /// Queues a job, waiting while the queue is full, unless `cancel` closes first
    /// (whoever wanted the result is gone): then the job is dropped and this is false.
    pub fn submit_unless<T>(&self, job: Job, cancel: &Receiver<T>) -> bool {
        select_biased! {
            recv(cancel) -> _ => false,
            send(self.submit, job) -> _ => true,
        }
    }

    /// The taking end alone, for test threads that end with the queue.
    #[cfg(test)]
    pub fn taker(&self) -> Receiver<Job> {
        self.take.clone()
    }

    /// Runs queued jobs until `results` has something (or is closed), then returns it:
    /// a thread waiting for a job's result does jobs meanwhile instead of idling, and
    /// without any pool thread it is the one that runs them.
    pub fn help_until<T>(&self, results: &Receiver<T>) -> Option<T> {
        loop {
            select_biased! {
                recv(results) -> result => return result.ok(),
                recv(self.take) -> job => {
                    if let Ok(job) = job {
                        job();
                    }
                }
            }
        }
    }
}

/// Events for one worker, numbered in input order.
struct Batch {
    seq: u64,
    events: Vec<ProcessEvent>,
    /// When the first of `events` arrived: no event of the batch waited longer.
    queued: Instant,
}

type LastLine = Box<dyn FnOnce(&Counters) -> Option<String> + Send>;

enum ToWriter {
    /// The alerts of one batch, in event order. Empty only in ordered mode.
    Evaluated { seq: u64, alerts: Vec<Alert> },
    /// A line of the sensor's own (a reload failure), written as is.
    Sensor(String),
    /// A stats line: not an alert, so neither held nor lost as one.
    Stats(String),
    /// Time passes: close storm windows older than the limit.
    Tick(DateTime<Utc>),
    /// Makes the closing line (the final stats line) from the final counters, once
    /// everything else is written.
    Last(LastLine),
}

pub struct Pipeline {
    table: ProcessTable,
    ancestor_limit: usize,
    host: Option<&'static dyn HostFacts>,
    /// Events not yet handed to the workers, and the number of the batch they will form.
    pending: Vec<ProcessEvent>,
    pending_since: Instant,
    batch_seq: u64,
    to_workers: Sender<Batch>,
    /// The table thread's own: for [`Pipeline::flush`], and for every batch when the
    /// pool has no thread.
    own: Evaluator,
    jobs: JobQueue,
    to_writer: Sender<ToWriter>,
    workers: Vec<JoinHandle<()>>,
    writer: JoinHandle<Report>,
    counters: Arc<Counters>,
}

impl Pipeline {
    pub fn start(rules: Rules, sink: Box<dyn Sink>, options: &Options) -> Pipeline {
        let (to_workers, from_table) = bounded::<Batch>(options.capacity.div_ceil(BATCH));
        let (to_writer, from_workers) = bounded::<ToWriter>(options.capacity);
        let jobs = JobQueue::new(options.workers.max(1) * 2);
        let evaluator = || Evaluator::new(to_writer.clone(), rules.clone(), options);
        let pool = options.workers.max(1) - 1;
        let workers = (0..pool)
            .map(|i| {
                let worker = Worker {
                    batches: from_table.clone(),
                    jobs: jobs.take.clone(),
                    evaluator: evaluator(),
                };
                std::thread::Builder::new()
                    .name(format!("worker-{i}"))
                    .spawn(move || worker.run())
                    .expect("spawn worker thread")
            })
            .collect();
        let output = Delivery::new(sink, "alerts", options.hangups.clone());
        let counters = Arc::new(Counters {
            output: output.figures(),
            ..Counters::default()
        });
        let on_ended = options.on_output_ended;
        let (ordered, storm, totals) = (
            options.ordered,
            StormGuard::new(options.storm),
            counters.clone(),
        );
        let writer = std::thread::Builder::new()
            .name("writer".into())
            .spawn(move || {
                Writer {
                    output,
                    storm,
                    totals,
                    unflushed: Vec::new(),
                    on_ended: Some(on_ended),
                }
                .run(&from_workers, ordered)
            })
            .expect("spawn writer thread");
        Pipeline {
            table: ProcessTable::new(options.table),
            ancestor_limit: options.ancestor_limit,
            host: options.host,
            pending: Vec::with_capacity(BATCH),
            pending_since: Instant::now(),
            batch_seq: 0,
            to_workers,
            own: evaluator(),
            jobs,
            to_writer,
            workers,
            writer,
            counters,
        }
    }

    /// Applies one event to the process table and queues a process creation for the
    /// workers; a full batch is handed over, waiting while they are all busy (replay
    /// never drops), or evaluated here when the pool has no thread. A partial batch
    /// waits for [`Pipeline::flush`] or `finish`.
    pub fn push(&mut self, mut event: SourceEvent) {
        if self.pending.is_empty() {
            self.pending_since = Instant::now();
        }
        let Some(process) = self.table.apply(&mut event) else {
            return;
        };
        let event = ProcessEvent {
            timestamp: event.timestamp,
            hostname: event.hostname,
            process,
            ancestor_limit: self.ancestor_limit,
            origin: event.origin,
            host: self.host,
        };
        self.counters.evaluated.fetch_add(1, Ordering::Relaxed);
        self.pending.push(event);
        if self.pending.len() == BATCH {
            self.hand_over();
        }
    }

    /// Evaluates the queued events on this thread now. A live source calls this
    /// whenever nothing more is waiting: the thread would idle, and a lone event's
    /// alert is out without waiting for a worker to wake up.
    pub fn flush(&mut self) {
        if let Some(batch) = self.take_batch() {
            // A false return (the writer is gone) is reported by `finish`.
            _ = self.own.evaluate(&batch);
        }
    }

    /// A full batch goes to the pool, or is evaluated here when the pool has no thread.
    fn hand_over(&mut self) {
        let Some(batch) = self.take_batch() else {
            return;
        };
        if self.workers.is_empty() {
            _ = self.own.evaluate(&batch);
        } else {
            // Sending fails only if every worker died, which `finish` reports.
            _ = self.to_workers.send(batch);
        }
    }

    fn take_batch(&mut self) -> Option<Batch> {
        if self.pending.is_empty() {
            return None;
        }
        let batch = Batch {
            seq: self.batch_seq,
            events: std::mem::replace(&mut self.pending, Vec::with_capacity(BATCH)),
            queued: self.pending_since,
        };
        self.batch_seq += 1;
        Some(batch)
    }

    /// Where a source queues [`Job`]s for the workers (waiting while the queue is full).
    pub fn jobs(&self) -> JobQueue {
        self.jobs.clone()
    }

    /// Writes a line of the sensor's own (a sensor alert).
    pub fn write_sensor_line(&self, line: String) {
        let _ = self.to_writer.send(ToWriter::Sensor(line));
    }

    /// Writes a stats line.
    pub fn write_stats_line(&self, line: String) {
        let _ = self.to_writer.send(ToWriter::Stats(line));
    }

    /// Whether the output's reader is gone for good: time to stop.
    pub fn output_ended(&self) -> bool {
        self.counters.output.ended.load(Ordering::Relaxed)
    }

    /// Closes storm windows that ended by `now` (live sources call this periodically).
    pub fn tick(&self, now: DateTime<Utc>) {
        let _ = self.to_writer.send(ToWriter::Tick(now));
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Process entries currently in the table.
    pub fn table_len(&self) -> usize {
        self.table.len()
    }

    /// Lets the workers drain, flushes every alert and returns what was done.
    pub fn finish(self) -> io::Result<Report> {
        self.finish_with(|_, _| None)
    }

    /// Like [`Pipeline::finish`], and writes `last_line` (given the final counters and
    /// table size) after every alert and storm summary.
    pub fn finish_with(
        mut self,
        last_line: impl FnOnce(&Counters, usize) -> Option<String> + Send + 'static,
    ) -> io::Result<Report> {
        self.flush();
        drop(self.to_workers);
        drop(self.own);
        for worker in self.workers {
            if worker.join().is_err() {
                return Err(io::Error::other("a worker thread panicked"));
            }
        }
        let table_entries = self.table.len();
        let last = Box::new(move |totals: &Counters| last_line(totals, table_entries));
        let _ = self.to_writer.send(ToWriter::Last(last));
        drop(self.to_writer);
        let mut report = self
            .writer
            .join()
            .map_err(|_| io::Error::other("the writer thread panicked"))?;
        report.evaluated = self.counters.evaluated.load(Ordering::Relaxed);
        Ok(report)
    }
}

/// One thread of the pool: evaluates batches, and runs jobs while none is waiting.
struct Worker {
    batches: Receiver<Batch>,
    jobs: Receiver<Job>,
    evaluator: Evaluator,
}

impl Worker {
    fn run(mut self) {
        loop {
            select_biased! {
                recv(self.batches) -> batch => {
                    // Closed: the pipeline is finishing.
                    let Ok(batch) = batch else { return };
                    if !self.evaluator.evaluate(&batch) {
                        return;
                    }
                }
                recv(self.jobs) -> job => {
                    // The pipeline's own queue keeps this channel open.
                    if let Ok(job) = job {
                        job();
                    }
                }
            }
        }
    }
}

/// Runs the rules over batches and sends the alerts to the writer.
struct Evaluator {
    to_writer: Sender<ToWriter>,
    rules: Rules,
    ordered: bool,
    explain: bool,
    scratch: Scratch,
    matched: Vec<dsl::RuleId>,
}

impl Evaluator {
    fn new(to_writer: Sender<ToWriter>, rules: Rules, options: &Options) -> Evaluator {
        Evaluator {
            to_writer,
            rules,
            ordered: options.ordered,
            explain: options.explain,
            scratch: Scratch::new(),
            matched: Vec::new(),
        }
    }

    /// Evaluates a batch and sends its alerts on; false once the writer is gone.
    fn evaluate(&mut self, batch: &Batch) -> bool {
        let rules = self.rules.load();
        let (scratch, matched) = (&mut self.scratch, &mut self.matched);
        let mut alerts = Vec::new();
        for event in &batch.events {
            matched.clear();
            rules.evaluate(event, scratch, matched);
            alerts.extend(matched.iter().map(|&id| {
                let meta = rules.meta(id);
                let anchor = dsl::explain::anchor(&rules, id, event, scratch);
                let incident = Incident::of(event, anchor);
                Alert {
                    sighting: incident.sighting(event, meta),
                    time: event.timestamp.unwrap_or_else(Utc::now),
                    queued: batch.queued,
                    line: alert_line(
                        event,
                        meta,
                        &incident.id,
                        self.explain
                            .then(|| dsl::explain::explain(&rules, id, event, scratch))
                            .as_deref(),
                    ),
                }
            }));
        }
        if alerts.is_empty() && !self.ordered {
            return true;
        }
        let seq = batch.seq;
        self.to_writer
            .send(ToWriter::Evaluated { seq, alerts })
            .is_ok()
    }
}

/// The only owner of the output.
struct Writer {
    output: Delivery,
    storm: StormGuard,
    totals: Arc<Counters>,
    /// When each alert written since the last flush was queued.
    unflushed: Vec<Instant>,
    /// Called once when the output's reader is gone for good.
    on_ended: Option<fn()>,
}

/// How long the writer waits for a message before it looks after the output anyway:
/// a held alert is retried and a rotated file noticed even when nothing happens.
const WRITER_WAKE: Duration = Duration::from_secs(1);

impl Writer {
    fn run(mut self, rx: &Receiver<ToWriter>, ordered: bool) -> Report {
        let mut alerts_by_rule: HashMap<String, u64> = HashMap::new();
        let mut pending: BTreeMap<u64, Vec<Alert>> = BTreeMap::new();
        let mut next = 0u64;
        let mut last = None;
        loop {
            let message = match rx.recv_timeout(WRITER_WAKE) {
                Ok(message) => Some(message),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            self.output.maintain();
            match message {
                None => {}
                Some(ToWriter::Sensor(line)) => _ = self.push(line, true),
                Some(ToWriter::Stats(line)) => _ = self.push(line, false),
                Some(ToWriter::Last(line)) => last = Some(line),
                Some(ToWriter::Tick(now)) => {
                    for line in self.storm.close_expired(Some(now)) {
                        self.push(line, true);
                    }
                }
                Some(ToWriter::Evaluated { alerts, .. }) if !ordered => {
                    self.write(alerts, &mut alerts_by_rule)
                }
                Some(ToWriter::Evaluated { seq, alerts }) => {
                    pending.insert(seq, alerts);
                    while let Some(alerts) = pending.remove(&next) {
                        self.write(alerts, &mut alerts_by_rule);
                        next += 1;
                    }
                }
            }
            // Whoever tails the output (a SIEM forwarder) sees each alert once the
            // burst it came in has been written, not at exit.
            if rx.is_empty() {
                self.flush();
            }
        }
        for line in self.storm.close_expired(None) {
            self.push(line, true);
        }
        self.flush();
        // Nobody reads any more: no closing line, not even its copy on stderr.
        let last = last.filter(|_| !self.output.ended());
        if let Some(line) = last.and_then(|make| make(&self.totals)) {
            self.push(line, false);
            self.flush();
        }
        Report {
            evaluated: 0,
            alerts: alerts_by_rule.into_iter().collect(),
            suppressed: self.storm.suppressed_total,
            output: self.output.finish(),
            record: None,
            incidents: self.totals.incidents.lock().unwrap().rows(),
        }
    }

    /// Queues a line; false when it will never be written.
    fn push(&mut self, line: String, alert: bool) -> bool {
        let queued = self.output.push(line, alert);
        self.notice_end();
        queued
    }

    /// Writes out what is queued; once it is all out, the alerts' latency is known.
    fn flush(&mut self) {
        if self.output.flush() {
            let now = Instant::now();
            for queued in self.unflushed.drain(..) {
                self.totals.latency.record(now - queued);
            }
        }
        self.notice_end();
    }

    fn notice_end(&mut self) {
        if self.output.ended() {
            self.unflushed.clear();
            if let Some(on_ended) = self.on_ended.take() {
                on_ended();
            }
        }
    }

    fn write(&mut self, alerts: Vec<Alert>, by_rule: &mut HashMap<String, u64>) {
        for alert in alerts {
            let (pass, summary) = self.storm.admit(&StormKey::of(&alert.sighting), alert.time);
            if let Some(summary) = summary {
                self.push(summary, true);
            }
            let log = &self.totals.incidents;
            log.lock().unwrap().record(&alert.sighting, !pass);
            if pass {
                if self.push(alert.line, true) {
                    self.unflushed.push(alert.queued);
                }
                *by_rule.entry(alert.sighting.rule).or_default() += 1;
                self.totals.alerts.fetch_add(1, Ordering::Relaxed);
            } else {
                self.totals.suppressed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Action, Location, Origin};
    use crate::sink::Memory;
    use dsl::ir::{CheckedRule, Cond, Pattern, TextOp, TextTest};
    use dsl::FieldRef;

    fn rule(id: &str, field: &str, value: &str) -> CheckedRule {
        CheckedRule {
            meta: crate::alert::tests::meta(id, format!("{field} is {value}")),
            condition: Cond::Text(TextTest {
                field: FieldRef::from_name(field).unwrap(),
                op: TextOp::Equals,
                patterns: vec![Pattern {
                    text: value.into(),
                    case_sensitive: false,
                }],
            }),
            exceptions: vec![],
        }
    }

    fn create(pid: u32, ppid: u32, exe: &str) -> SourceEvent {
        SourceEvent {
            hostname: Some("WEB01".into()),
            origin: Origin {
                kind: "replay",
                file: Some("test.jsonl".into()),
                location: Location::Line(pid as u64),
            },
            ..SourceEvent::created(pid, ppid, exe)
        }
    }

    fn run(
        rules: Vec<CheckedRule>,
        events: Vec<SourceEvent>,
        options: Options,
    ) -> (Vec<serde_json::Value>, Report) {
        let memory = Memory::default();
        let rules: Rules = Arc::new(ArcSwap::from_pointee(RuleSet::compile(&rules)));
        let mut pipeline = Pipeline::start(rules, Box::new(memory.clone()), &options);
        for e in events {
            pipeline.push(e);
        }
        let report = pipeline.finish().unwrap();
        let lines = memory
            .lines()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (lines, report)
    }

    #[test]
    fn ordered_output_follows_input_order_with_many_workers() {
        let events: Vec<SourceEvent> = (1..=2000).map(|pid| create(pid, 1, "cmd.exe")).collect();
        let options = Options {
            workers: 4,
            ordered: true,
            capacity: 8,
            storm: StormLimits {
                limit: 0,
                ..StormLimits::default()
            },
            ..Options::default()
        };
        let (lines, report) = run(vec![rule("R1", "exe", "cmd.exe")], events, options);
        let pids: Vec<u64> = lines
            .iter()
            .map(|l| l["process"]["pid"].as_u64().unwrap())
            .collect();
        assert_eq!(pids, (1..=2000).collect::<Vec<u64>>());
        assert_eq!(report.evaluated, 2000);
        assert_eq!(report.alerts["R1"], 2000);
    }

    #[test]
    fn every_matching_rule_gives_one_alert_and_all_are_flushed() {
        let events = vec![
            create(10, 1, "w3wp.exe"),
            create(11, 10, "cmd.exe"),
            create(12, 10, "notepad.exe"),
        ];
        let rules = vec![
            rule("A", "exe", "cmd.exe"),
            rule("B", "parent_exe", "w3wp.exe"),
        ];
        let (lines, report) = run(
            rules,
            events,
            Options {
                ordered: true,
                ..Options::default()
            },
        );
        let got: Vec<(String, u64)> = lines
            .iter()
            .map(|l| {
                (
                    l["rule"]["id"].as_str().unwrap().to_string(),
                    l["process"]["pid"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, [("A".into(), 11), ("B".into(), 11), ("B".into(), 12)]);
        assert_eq!(report.total_alerts(), 3);
    }

    #[test]
    fn alert_has_every_key_with_parent_and_ancestors_from_the_table() {
        let mut svchost = create(700, 4, "svchost.exe");
        svchost.process.image_path = Some(r"C:\Windows\System32\svchost.exe".into());
        let mut w3wp = create(1000, 700, "w3wp.exe");
        w3wp.process.command_line = Some("w3wp.exe -ap DefaultAppPool".into());
        let cmd = create(4242, 1000, "cmd.exe");
        let (lines, _) = run(
            vec![rule("R", "exe", "cmd.exe")],
            vec![svchost, w3wp, cmd],
            Options::default(),
        );
        assert_eq!(lines.len(), 1);
        let a = &lines[0];
        assert_eq!(a["kind"], "alert");
        assert_eq!(a["hostname"], "WEB01");
        assert_eq!(a["timestamp"], serde_json::Value::Null);
        assert_eq!(a["rule"]["severity"], "high");
        assert_eq!(a["rule"]["attack"], serde_json::json!(["T1505.003"]));
        let process = a["process"].as_object().unwrap();
        for key in [
            "pid",
            "ppid",
            "creator_pid",
            "exe",
            "image_path",
            "command_line",
            "user",
            "sid",
            "integrity_level",
            "current_working_directory",
            "original_file_name",
        ] {
            assert!(process.contains_key(key), "process.{key} missing");
        }
        assert_eq!(
            a["parent"],
            serde_json::json!({"pid": 1000, "exe": "w3wp.exe", "image_path": null, "command_line": "w3wp.exe -ap DefaultAppPool", "user": null, "listens": null})
        );
        assert_eq!(
            a["ancestors"],
            serde_json::json!([
                {"pid": 1000, "exe": "w3wp.exe", "image_path": null},
                {"pid": 700, "exe": "svchost.exe", "image_path": "C:\\Windows\\System32\\svchost.exe"}
            ])
        );
        assert_eq!(
            a["source"],
            serde_json::json!({"kind": "replay", "file": "test.jsonl", "line": 4242, "record": null})
        );
    }

    #[test]
    fn an_event_shows_its_ancestors_up_to_the_limit() {
        let mut events: Vec<_> = (1..5).map(|pid| create(pid, pid - 1, "sh")).collect();
        events.push(create(5, 4, "cmd.exe"));
        let (lines, _) = run(
            vec![rule("R", "exe", "cmd.exe")],
            events,
            Options {
                ancestor_limit: 2,
                ..Options::default()
            },
        );
        let pids: Vec<_> = lines[0]["ancestors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["pid"].as_u64().unwrap())
            .collect();
        assert_eq!(pids, [4, 3]);
    }

    #[test]
    fn an_unknown_parent_still_has_its_pid() {
        let (lines, _) = run(
            vec![rule("R", "exe", "cmd.exe")],
            vec![create(5, 77, "cmd.exe")],
            Options::default(),
        );
        assert_eq!(
            lines[0]["parent"],
            serde_json::json!({"pid": 77, "exe": null, "image_path": null, "command_line": null, "user": null, "listens": null})
        );
        assert_eq!(lines[0]["ancestors"], serde_json::json!([]));
    }

    fn ordered_with_storm_limit(limit: u32) -> Options {
        Options {
            ordered: true,
            storm: StormLimits {
                limit,
                ..StormLimits::default()
            },
            ..Options::default()
        }
    }

    #[test]
    fn a_storm_of_alerts_under_one_parent_is_summarised() {
        let mut events = vec![create(10, 1, "w3wp.exe")];
        events.extend((100..600).map(|pid| create(pid, 10, "cmd.exe")));
        let options = ordered_with_storm_limit(5);
        let (lines, report) = run(vec![rule("R", "exe", "cmd.exe")], events, options);
        assert_eq!(lines.len(), 6);
        assert!(lines[..5].iter().all(|l| l["kind"] == "alert"));
        assert_eq!(lines[5]["kind"], "alert-summary");
        assert_eq!(lines[5]["suppressed"], 495);
        assert_eq!(report.suppressed, 495);
        assert_eq!(report.alerts["R"], 5);
    }

    /// A web shell's loop of `cmd /c whoami`: each whoami has its own shell for a
    /// parent, but all are one incident, under the web server: one storm.
    #[test]
    fn a_storm_through_many_shells_of_one_web_server_is_one_storm_of_its_incident() {
        let mut events = vec![create(10, 1, "w3wp.exe")];
        for i in 0..100 {
            events.push(create(1000 + i, 10, "cmd.exe"));
            events.push(create(5000 + i, 1000 + i, "whoami.exe"));
        }
        let checked = dsl::check::check_sources(&[dsl::Source::new(
            "t.rules",
            r#"rule R { title: "t" severity: high attack: [T1505.003]
                condition: exe == "whoami.exe" and ancestor[2](exe == "w3wp.exe") }"#,
        )]);
        let options = ordered_with_storm_limit(5);
        let (lines, report) = run(checked.rules, events, options);
        assert_eq!(lines.len(), 6, "5 alerts and the summary");
        assert!(lines.iter().all(|l| l["incident"] == "WEB01/10/-"));
        assert_eq!(lines[5]["kind"], "alert-summary");
        assert_eq!(lines[5]["suppressed"], 95);
        assert_eq!(
            lines[5]["parent"],
            serde_json::json!({"pid": 10, "image_path": "w3wp.exe"})
        );
        let incident = &report.incidents[..];
        assert_eq!(incident.len(), 1);
        assert_eq!(
            (
                incident[0].processes,
                incident[0].alerts,
                incident[0].suppressed
            ),
            (100, 100, 95),
            "suppressed alerts count in the incident"
        );
    }

    #[test]
    fn sensor_lines_pass_through_and_terminates_are_not_evaluated() {
        let memory = Memory::default();
        let rules: Rules = Arc::new(ArcSwap::from_pointee(RuleSet::compile(&[rule(
            "R", "exe", "cmd.exe",
        )])));
        let mut pipeline = Pipeline::start(rules, Box::new(memory.clone()), &Options::default());
        let mut end = create(5, 1, "cmd.exe");
        end.action = Action::Terminate;
        pipeline.push(end);
        pipeline.write_sensor_line(r#"{"kind":"stats"}"#.into());
        let report = pipeline.finish().unwrap();
        assert_eq!(report.evaluated, 0);
        assert_eq!(memory.lines(), [r#"{"kind":"stats"}"#]);
    }

    /// The disk fills after the first alert and is cleared after the second: the
    /// second waits, nothing is lost, and the figures say what happened meanwhile.
    #[test]
    fn an_output_that_fails_holds_alerts_until_it_works_again() {
        let memory = Memory::default();
        let failures = memory.failures();
        let rules: Rules = Arc::new(ArcSwap::from_pointee(RuleSet::compile(&[rule(
            "R", "exe", "cmd.exe",
        )])));
        let mut pipeline = Pipeline::start(rules, Box::new(memory.clone()), &Options::default());
        pipeline.push(create(10, 1, "cmd.exe"));
        pipeline.flush();
        memory.fail_with(Some(io::ErrorKind::StorageFull));
        pipeline.push(create(11, 1, "cmd.exe"));
        pipeline.flush();
        let failure = failures.recv_timeout(Duration::from_secs(30));
        assert_eq!(failure, Ok(io::ErrorKind::StorageFull));
        let output = pipeline.counters().output.clone();
        assert!(output.write_errors.load(Ordering::Relaxed) >= 1);
        memory.fail_with(None);
        pipeline.push(create(12, 1, "cmd.exe"));
        let report = pipeline.finish().unwrap();
        assert_eq!(memory.alert_pids(), [10, 11, 12]);
        assert_eq!(report.output.lost, 0);
        assert!(report.output.write_errors >= 1);
        assert_eq!(output.unwritten.load(Ordering::Relaxed), 0);
    }
}
