//! `spawnwatch run`: a live source in front of the shared pipeline.
//!
//! The source pushes into a bounded channel without ever blocking (a full channel drops
//! and counts); this thread owns the process table, feeds the workers, writes the
//! `--record` copy, prints the stats line, and on a stop request (or when the output's
//! reader is gone) stops the source, drains what it already sent, flushes every alert
//! and returns.

use crate::pipeline::{Counters, Options, Pipeline, Report, Rules};
use crate::record::SourceEvent;
use crate::sink::{Delivery, Figures, Sink};
use crate::source::live::{LiveCounters, LiveSink};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the runner needs from a platform's live source.
pub trait LiveSource {
    /// The source's own figures for the stats line (events by kind, losses, ...).
    fn stats(&self) -> Value;
    /// Stops producing events; returns once the source has let go of its sink.
    fn stop(self: Box<Self>);
}

pub struct RunConfig {
    pub stats_interval: Duration,
    /// Every normalised event, as spawnwatch event lines.
    pub record: Option<Box<dyn Sink>>,
    /// Set by a signal handler to stop.
    pub stop: Arc<AtomicBool>,
    /// Called on every turn of the loop (about every 200 ms): hot reload hooks in here.
    pub on_turn: Box<dyn FnMut(&Pipeline)>,
}

/// How often the loop wakes without events, to notice a stop request.
const TURN: Duration = Duration::from_millis(200);

/// Starts a live source: it begins sending into the sink, then snapshots the processes
/// already running (in that order, so nothing falls in the gap).
pub type Start =
    Box<dyn FnOnce(LiveSink) -> Result<(Box<dyn LiveSource>, Vec<SourceEvent>), String>>;

/// Runs until `config.stop` is set, then drains and returns the pipeline's report.
pub fn run(
    start: Start,
    rules: Rules,
    sink: Box<dyn Sink>,
    options: &Options,
    mut config: RunConfig,
) -> Result<Report, String> {
    let (tx, rx) = bounded(options.capacity);
    let counters = Arc::new(LiveCounters::default());
    let mut pipeline = Pipeline::start(rules, sink, options);
    let mut record =
        (config.record.take()).map(|sink| Delivery::new(sink, "events", options.hangups.clone()));
    let record_figures = record.as_ref().map(Delivery::figures);
    let (source, seed) = start(LiveSink::new(tx, counters.clone()))?;
    let seeded = seed.len();
    for event in seed {
        forward(event, &mut pipeline, &mut record);
    }
    eprintln!("spawnwatch: running: {seeded} processes already running are known as parents; Ctrl+C stops");
    let started = Instant::now();
    let mut last_stats = Instant::now();
    while !config.stop.load(Ordering::Relaxed) && !pipeline.output_ended() {
        match rx.recv_timeout(TURN) {
            Ok(event) => forward(event, &mut pipeline, &mut record),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        // A burst travels in batches; its last event must not wait for the next one.
        let idle = rx.is_empty();
        if idle {
            pipeline.flush();
        }
        if let Some(record) = record.as_mut() {
            record.maintain();
            if idle {
                record.flush();
            }
        }
        (config.on_turn)(&pipeline);
        if last_stats.elapsed() >= config.stats_interval {
            last_stats = Instant::now();
            emit_stats(
                &pipeline,
                source.stats(),
                &counters,
                record_figures.as_deref(),
                started,
            );
            pipeline.tick(chrono::Utc::now());
        }
    }
    let final_figures = source.stats();
    source.stop();
    drain(&rx, &mut pipeline, &mut record);
    let recorded = record.map(Delivery::finish);
    let mut report = pipeline
        .finish_with(move |totals, table_entries| {
            Some(stats_line(
                totals,
                table_entries,
                final_figures,
                &counters,
                record_figures.as_deref(),
                started,
            ))
        })
        .map_err(|e| format!("the pipeline failed: {e}"))?;
    report.record = recorded;
    Ok(report)
}

fn forward(event: SourceEvent, pipeline: &mut Pipeline, record: &mut Option<Delivery>) {
    if let Some(record) = record.as_mut() {
        let line = crate::source::replay::spawnwatch_line::to_event_line(&event);
        record.push(line, true);
    }
    pipeline.push(event);
}

/// Everything the source sent before it stopped.
fn drain(rx: &Receiver<SourceEvent>, pipeline: &mut Pipeline, record: &mut Option<Delivery>) {
    while let Ok(event) = rx.try_recv() {
        forward(event, pipeline, record);
    }
}

/// One stats line on stderr and as a JSON line of kind `stats` in the output.
fn emit_stats(
    pipeline: &Pipeline,
    source: Value,
    counters: &LiveCounters,
    record: Option<&Figures>,
    started: Instant,
) {
    pipeline.write_stats_line(stats_line(
        pipeline.counters(),
        pipeline.table_len(),
        source,
        counters,
        record,
        started,
    ));
}

/// The stats figures as a JSON line, also printed on stderr.
fn stats_line(
    p: &Counters,
    table_entries: usize,
    mut source: Value,
    counters: &LiveCounters,
    record: Option<&Figures>,
    started: Instant,
) -> String {
    if let Some(figures) = source.as_object_mut() {
        figures.remove("kind");
    }
    let load = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
    let mut stats = json!({
        "kind": "stats",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "uptime_s": started.elapsed().as_secs(),
        "received": counters.sent.load(Ordering::Relaxed),
        "dropped_at_channel": counters.dropped.load(Ordering::Relaxed),
        "evaluated": p.evaluated.load(Ordering::Relaxed),
        "alerts": p.alerts.load(Ordering::Relaxed),
        "suppressed": p.suppressed.load(Ordering::Relaxed),
        "write_errors": load(&p.output.write_errors),
        "alerts_unwritten": load(&p.output.unwritten),
        "alerts_lost": load(&p.output.lost),
        "alert_latency_us": p.latency.take(),
        "table_entries": table_entries,
        "source": source,
    });
    if let Some(record) = record {
        stats["record"] = json!({
            "write_errors": load(&record.write_errors),
            "events_unwritten": load(&record.unwritten),
            "events_lost": load(&record.lost),
        });
    }
    eprintln!("spawnwatch: stats {}", human(&stats));
    stats.to_string()
}

/// `key=value` pairs of a stats object, nested objects flattened with dots.
fn human(stats: &Value) -> String {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    if k == "kind" || k == "timestamp" {
                        continue;
                    }
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            other => out.push(format!("{prefix}={other}")),
        }
    }
    let mut out = Vec::new();
    walk("", stats, &mut out);
    out.join(" ")
}

#[cfg(target_os = "linux")]
impl LiveSource for crate::source::proc_connector::ProcConnector {
    fn stats(&self) -> Value {
        crate::source::proc_connector::ProcConnector::stats(self).to_json()
    }
    fn stop(self: Box<Self>) {
        crate::source::proc_connector::ProcConnector::stop(*self)
    }
}

/// The live source of the platform this binary was built for.
#[cfg(target_os = "linux")]
pub fn platform_source() -> Result<Start, String> {
    use crate::source::proc_connector::{seed, ProcConnector};
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("spawnwatch: warning: not running as root: other users' processes will lack image paths and command lines (run with sudo)");
    }
    Ok(Box::new(|sink| {
        let source = ProcConnector::start(sink)?;
        Ok((Box::new(source) as Box<dyn LiveSource>, seed()))
    }))
}

#[cfg(windows)]
impl LiveSource for crate::source::etw::EtwSource {
    fn stats(&self) -> Value {
        crate::source::etw::EtwSource::stats(self).to_json()
    }
    fn stop(self: Box<Self>) {
        crate::source::etw::EtwSource::stop(*self)
    }
}

#[cfg(windows)]
pub fn platform_source() -> Result<Start, String> {
    use crate::source::etw::{is_elevated, EtwOptions, EtwSource, NEEDS_ADMIN};
    if is_elevated() == Some(false) {
        return Err(NEEDS_ADMIN.to_string());
    }
    // The table is per host: seeds and live events must carry the same name.
    let hostname = std::env::var("COMPUTERNAME").ok();
    Ok(Box::new(move |sink| {
        let options = EtwOptions {
            hostname: hostname.clone(),
            ..EtwOptions::default()
        };
        let source = EtwSource::start(sink, options)?;
        let seed = EtwSource::seed().into_iter().map(|mut e| {
            e.hostname = hostname.as_deref().map(crate::record::Text::from);
            e
        });
        Ok((Box::new(source) as Box<dyn LiveSource>, seed.collect()))
    }))
}

#[cfg(not(any(target_os = "linux", windows)))]
pub fn platform_source() -> Result<Start, String> {
    Err(format!(
        "live monitoring is not available on {}: it runs on Windows (ETW) and Linux (the kernel's process connector). `spawnwatch replay` works on recorded logs here.",
        std::env::consts::OS
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Action;
    use crate::sink::{ChannelSink, Memory};
    use arc_swap::ArcSwap;
    use dsl::RuleSet;

    /// A source that sends a fixed batch from its own thread, then asks to stop.
    struct Batch(Option<std::thread::JoinHandle<()>>);
    impl LiveSource for Batch {
        fn stats(&self) -> Value {
            json!({"kind": "test"})
        }
        fn stop(mut self: Box<Self>) {
            self.0.take().unwrap().join().unwrap();
        }
    }

    fn event(pid: u32, action: Action) -> SourceEvent {
        SourceEvent {
            action,
            ..SourceEvent::created(pid, 1, "sh")
        }
    }

    #[test]
    fn stops_on_request_drains_records_and_writes_final_stats() {
        let stop = Arc::new(AtomicBool::new(false));
        let output = Memory::default();
        let recorded = Memory::default();
        let stop_from_source = stop.clone();
        let start: Start = Box::new(move |sink: LiveSink| {
            let handle = std::thread::spawn(move || {
                for pid in 2..52 {
                    assert!(sink.push(event(pid, Action::Create)));
                }
                stop_from_source.store(true, Ordering::Relaxed);
            });
            Ok((
                Box::new(Batch(Some(handle))) as Box<dyn LiveSource>,
                vec![event(1, Action::Existing)],
            ))
        });
        let rules: Rules = Arc::new(ArcSwap::from_pointee(RuleSet::compile(&[])));
        let config = RunConfig {
            stats_interval: Duration::from_secs(3600),
            record: Some(Box::new(recorded.clone())),
            stop,
            on_turn: Box::new(|_| {}),
        };
        let options = Options {
            capacity: 1000,
            ..Options::default()
        };
        let report = run(start, rules, Box::new(output.clone()), &options, config).unwrap();
        assert_eq!(
            report.evaluated, 50,
            "every event sent before the stop is evaluated"
        );
        assert_eq!(
            recorded.lines().len(),
            51,
            "the seed and every event are recorded"
        );
        let lines = output.lines();
        let stats: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
        assert_eq!(stats["kind"], "stats");
        assert_eq!(stats["received"], 50);
        assert_eq!(stats["dropped_at_channel"], 0);
        assert_eq!(stats["evaluated"], 50);
        assert_eq!(
            (
                stats["write_errors"].as_u64(),
                stats["alerts_unwritten"].as_u64()
            ),
            (Some(0), Some(0))
        );
        assert_eq!(stats["record"]["events_lost"], 0);
        assert_eq!(
            stats["alert_latency_us"],
            Value::Null,
            "no alert, no figures"
        );
    }

    #[test]
    fn a_lone_event_is_alerted_while_running_not_held_for_a_full_batch() {
        let stop = Arc::new(AtomicBool::new(false));
        let (written, lines) = crossbeam_channel::unbounded();
        let after_stop = lines.clone();
        let (seen_tx, seen) = crossbeam_channel::bounded(1);
        let stop_from_source = stop.clone();
        let start: Start = Box::new(move |sink: LiveSink| {
            let handle = std::thread::spawn(move || {
                assert!(sink.push(event(2, Action::Create)));
                // The alert must come out while the source is still running.
                let line = lines.recv_timeout(Duration::from_secs(30));
                seen_tx.send(line.ok()).unwrap();
                stop_from_source.store(true, Ordering::Relaxed);
            });
            Ok((Box::new(Batch(Some(handle))) as Box<dyn LiveSource>, vec![]))
        });
        let rules = dsl::load(&[dsl::Source::new(
            "t.rules",
            "rule T { title: \"t\" severity: high attack: [T1505.003] condition: exe == \"sh\" }",
        )])
        .unwrap()
        .rules;
        let config = RunConfig {
            stats_interval: Duration::from_secs(3600),
            record: None,
            stop,
            on_turn: Box::new(|_| {}),
        };
        let rules: Rules = Arc::new(ArcSwap::from_pointee(rules));
        run(
            start,
            rules,
            Box::new(ChannelSink(written)),
            &Options::default(),
            config,
        )
        .unwrap();
        let line = seen.recv().unwrap().expect("no alert while running");
        assert!(line.contains(r#""id":"T""#), "{line}");
        // The final stats line is made after the last alert is out, so it counts it.
        let last: Value = serde_json::from_str(&after_stop.try_iter().last().unwrap()).unwrap();
        assert_eq!(last["kind"], "stats");
        assert_eq!(last["alerts"], 1);
        assert_eq!(last["alert_latency_us"]["count"], 1);
        assert!(last["alert_latency_us"]["p99"].is_u64());
    }

    /// A source that runs `produce` on its own thread, then holds on to its sink
    /// (the channel stays open) until it is stopped.
    struct Held {
        thread: Option<std::thread::JoinHandle<()>>,
        release: Option<crossbeam_channel::Sender<()>>,
    }

    impl Held {
        fn start(produce: impl FnOnce(&LiveSink) + Send + 'static) -> Start {
            Box::new(move |sink: LiveSink| {
                let (release, released) = crossbeam_channel::bounded::<()>(0);
                let thread = std::thread::spawn(move || {
                    produce(&sink);
                    let _ = released.recv();
                });
                let source = Held {
                    thread: Some(thread),
                    release: Some(release),
                };
                Ok((Box::new(source) as Box<dyn LiveSource>, vec![]))
            })
        }
    }

    impl LiveSource for Held {
        fn stats(&self) -> Value {
            json!({"kind": "test"})
        }
        fn stop(mut self: Box<Self>) {
            drop(self.release.take());
            self.thread.take().unwrap().join().unwrap();
        }
    }

    fn alert_on_sh() -> Rules {
        let loaded = dsl::load(&[dsl::Source::new(
            "t.rules",
            "rule T { title: \"t\" severity: high attack: [T1505.003] condition: exe == \"sh\" }",
        )])
        .unwrap();
        Arc::new(ArcSwap::from_pointee(loaded.rules))
    }

    fn config(stop: Arc<AtomicBool>, record: Option<Box<dyn Sink>>) -> RunConfig {
        RunConfig {
            stats_interval: Duration::from_secs(3600),
            record,
            stop,
            on_turn: Box::new(|_| {}),
        }
    }

    /// `spawnwatch run | head -1`: once the reader has gone, the sensor stops by itself
    /// (no stop request), cleanly, and loses nothing it should count.
    #[test]
    fn a_closed_output_stops_the_sensor_by_itself() {
        let output = Memory::default();
        output.fail_with(Some(std::io::ErrorKind::BrokenPipe));
        let (done, finished) = crossbeam_channel::bounded(1);
        let sink = Box::new(output.clone());
        std::thread::spawn(move || {
            let start = Held::start(|sink| assert!(sink.push(event(2, Action::Create))));
            let config = config(Arc::new(AtomicBool::new(false)), None);
            let report = run(start, alert_on_sh(), sink, &Options::default(), config);
            let _ = done.send(report);
        });
        let report = finished
            .recv_timeout(Duration::from_secs(30))
            .expect("the sensor kept running after its output was closed")
            .unwrap();
        assert!(report.output.ended);
        assert_eq!((report.output.lost, report.output.write_errors), (0, 0));
    }

    /// The disk of the --record file is full for the first ten events and cleared
    /// before the next ten: the sensor keeps running and every event is recorded.
    #[test]
    fn a_failing_record_file_stops_nothing_and_loses_no_event() {
        let recorded = Memory::default();
        recorded.fail_with(Some(std::io::ErrorKind::StorageFull));
        let failures = recorded.failures();
        let stop = Arc::new(AtomicBool::new(false));
        let (disk, stop_from_source) = (recorded.clone(), stop.clone());
        let start = Held::start(move |sink| {
            for pid in 2..12 {
                assert!(sink.push(event(pid, Action::Create)));
            }
            let failed = failures.recv_timeout(Duration::from_secs(30));
            assert_eq!(failed, Ok(std::io::ErrorKind::StorageFull));
            disk.fail_with(None);
            for pid in 12..22 {
                assert!(sink.push(event(pid, Action::Create)));
            }
            stop_from_source.store(true, Ordering::Relaxed);
        });
        let rules: Rules = Arc::new(ArcSwap::from_pointee(RuleSet::compile(&[])));
        let output = Box::new(Memory::default());
        let record: Box<dyn Sink> = Box::new(recorded.clone());
        let config = config(stop, Some(record));
        let report = run(start, rules, output, &Options::default(), config).unwrap();
        assert_eq!(report.evaluated, 20);
        let pids: Vec<u64> = recorded
            .lines()
            .iter()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["pid"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(pids, (2..22).collect::<Vec<u64>>());
        let record = report.record.unwrap();
        assert_eq!(record.lost, 0);
        assert!(record.write_errors >= 1);
    }
}
