//! `spawnwatch run`: a live source in front of the shared pipeline.
//!
//! The source pushes into a bounded channel without ever blocking (a full channel drops
//! and counts); this thread owns the process table, feeds the workers, writes the
//! `--record` copy, prints the stats line, restarts the source when a part of it stops
//! on its own (see [`crate::restart`]), and on a stop request (or when the output's
//! reader is gone) stops the source, drains what it already sent, flushes every alert
//! and returns.

use crate::incident::summary::table;
use crate::pipeline::{Counters, Options, Pipeline, Report, Rules};
use crate::record::SourceEvent;
use crate::restart::{Backoff, Restarts};
use crate::service::StatsFile;
use crate::sink::{Delivery, Figures, OutputFigures, Sink};
use crate::source::live::{LiveCounters, LiveSink, SourceEnd};
use crate::source::Choice;
use crossbeam_channel::{bounded, unbounded, Receiver};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::source::live::LiveSource;

pub struct RunConfig {
    pub stats_interval: Duration,
    /// Every normalised event, as spawnwatch event lines.
    pub record: Option<Box<dyn Sink>>,
    /// Set by a signal handler to stop.
    pub stop: Arc<AtomicBool>,
    /// Called on every turn of the loop (about every 200 ms): hot reload hooks in here.
    pub on_turn: Box<dyn FnMut(&Pipeline)>,
    /// How soon a source that stopped on its own is started again.
    pub restart: Backoff,
    /// Each destination's figures, when there are several or a network one.
    pub outputs: Vec<Arc<OutputFigures>>,
    /// Where the latest stats line is kept (`--stats-file`), for `service status`.
    pub stats_file: Option<StatsFile>,
}

/// How often the loop wakes without events, to notice a stop request.
const TURN: Duration = Duration::from_millis(200);

/// Starts a live source: it begins sending into the sink, then snapshots the processes
/// already running (in that order, so nothing falls in the gap). Called again to
/// restart a source that stopped on its own.
pub type Start =
    Box<dyn FnMut(LiveSink) -> Result<(Box<dyn LiveSource>, Vec<SourceEvent>), String>>;

/// Which live sensor this process is: the host's one sensor (`run`), or `selftest`'s
/// probe, which must be able to run beside it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Sensor,
    Selftest,
}

/// Runs until `config.stop` is set, then drains and returns the pipeline's report. A
/// source that fails to start is an error; one that stops later is restarted.
pub fn run(
    mut start: Start,
    rules: Rules,
    sink: Box<dyn Sink>,
    options: &Options,
    mut config: RunConfig,
) -> Result<Report, String> {
    // Before any of the sensor's threads start: they inherit it.
    #[cfg(target_os = "linux")]
    crate::sched::prefer_short_slices();
    let (tx, rx) = bounded(options.capacity);
    let (ends_tx, ends) = unbounded();
    let counters = Arc::new(LiveCounters::default());
    // Kept here, so the channel stays open while the source is down.
    let live_sink = LiveSink::new(tx, counters.clone()).reporting_ends_to(ends_tx);
    let mut pipeline = Pipeline::start(rules, sink, options);
    let mut record =
        (config.record.take()).map(|sink| Delivery::new(sink, "events", options.hangups.clone()));
    let (source, seed) = start(live_sink.clone())?;
    let mut fallbacks = announce_fallback(source.as_ref(), &pipeline);
    let mut source = Some(source);
    let seeded = seed.len();
    for event in seed {
        forward(event, &mut pipeline, &mut record);
    }
    eprintln!("spawnwatch: running: {seeded} processes already running are known as parents; Ctrl+C stops");
    let started = Instant::now();
    let mut restarts = Restarts::new(config.restart, started);
    let mut run_figures = RunFigures {
        counters,
        record: record.as_ref().map(Delivery::figures),
        started,
        restarts: 0,
        outputs: std::mem::take(&mut config.outputs),
        stats_file: config.stats_file.take(),
        fallbacks,
    };
    let mut last_stats = Instant::now();
    while !config.stop.load(Ordering::Relaxed) && !pipeline.output_ended() {
        if let Ok(event) = rx.recv_timeout(TURN) {
            forward(event, &mut pipeline, &mut record);
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
        if let Ok(end) = ends.try_recv() {
            stop_after_end(end, &mut source, &ends, &mut restarts, &pipeline);
        }
        if restarts.due(Instant::now()) {
            match start(live_sink.clone()) {
                Ok((restarted, seed)) => {
                    // Processes started while blind become known parents.
                    for event in seed {
                        forward(event, &mut pipeline, &mut record);
                    }
                    fallbacks += announce_fallback(restarted.as_ref(), &pipeline);
                    source = Some(restarted);
                    if let Some(line) = restarts.started(Instant::now()) {
                        pipeline.write_sensor_line(line);
                    }
                }
                Err(e) => restarts.start_failed(&e, Instant::now()),
            }
        }
        (config.on_turn)(&pipeline);
        if last_stats.elapsed() >= config.stats_interval {
            last_stats = Instant::now();
            let figures = source_stats(source.as_deref());
            run_figures.restarts = restarts.count();
            run_figures.fallbacks = fallbacks;
            emit_stats(&pipeline, figures, &run_figures);
            pipeline.tick(chrono::Utc::now());
        }
    }
    let final_figures = source.map_or(Value::Null, |source| source.stop());
    drop(live_sink);
    drain(&rx, &mut pipeline, &mut record);
    let recorded = record.map(Delivery::finish);
    run_figures.restarts = restarts.count();
    run_figures.fallbacks = fallbacks;
    let mut report = pipeline
        .finish_with(move |totals, table_entries| {
            let line = stats_line(totals, table_entries, final_figures, &run_figures);
            keep_stats(run_figures.stats_file.as_ref(), &line);
            Some(line)
        })
        .map_err(|e| format!("the pipeline failed: {e}"))?;
    report.record = recorded;
    Ok(report)
}

/// A part of the source stopped: say so, and stop the rest of it (a restart starts the
/// whole source, so its parts stay consistent). Reports from the parts stopped here
/// are dropped: they are this same outage.
fn stop_after_end(
    end: SourceEnd,
    source: &mut Option<Box<dyn LiveSource>>,
    ends: &Receiver<SourceEnd>,
    restarts: &mut Restarts,
    pipeline: &Pipeline,
) {
    let Some(stopped) = source.take() else {
        return;
    };
    pipeline.write_sensor_line(restarts.ended(end, Instant::now()));
    stopped.stop();
    while ends.try_recv().is_ok() {}
}

/// A source started as a fallback is told to the SIEM at once; 1 if it was.
fn announce_fallback(source: &dyn LiveSource, pipeline: &Pipeline) -> u64 {
    let Some(fallback) = source.fallback() else {
        return 0;
    };
    pipeline.write_sensor_line(fallback.sensor_line());
    1
}

fn source_stats(source: Option<&dyn LiveSource>) -> Value {
    source.map_or(Value::Null, LiveSource::stats)
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

/// The run's own figures for the stats line, beside the pipeline's and the source's.
struct RunFigures {
    counters: Arc<LiveCounters>,
    /// The `--record` output's.
    record: Option<Arc<Figures>>,
    started: Instant,
    restarts: u64,
    outputs: Vec<Arc<OutputFigures>>,
    /// `--stats-file`: where the latest stats line is kept.
    stats_file: Option<StatsFile>,
    /// Starts of a fallback source (the connector in place of eBPF).
    fallbacks: u64,
}

/// One stats line on stderr and as a JSON line of kind `stats` in the output.
fn emit_stats(pipeline: &Pipeline, source: Value, run: &RunFigures) {
    let line = stats_line(pipeline.counters(), pipeline.table_len(), source, run);
    keep_stats(run.stats_file.as_ref(), &line);
    pipeline.write_stats_line(line);
}

fn keep_stats(file: Option<&StatsFile>, line: &str) {
    if let Some(file) = file {
        file.save(line);
    }
}

/// The stats figures as a JSON line, also printed on stderr.
fn stats_line(p: &Counters, table_entries: usize, mut source: Value, run: &RunFigures) -> String {
    if let Some(figures) = source.as_object_mut() {
        figures.remove("kind");
    }
    let load = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
    let mut stats = json!({
        "kind": "stats",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "uptime_s": run.started.elapsed().as_secs(),
        "received": load(&run.counters.sent),
        "dropped_at_channel": load(&run.counters.dropped),
        "evaluated": p.evaluated.load(Ordering::Relaxed),
        "alerts": p.alerts.load(Ordering::Relaxed),
        "suppressed": p.suppressed.load(Ordering::Relaxed),
        "write_errors": load(&p.output.write_errors),
        "alerts_unwritten": load(&p.output.unwritten),
        "alerts_lost": load(&p.output.lost),
        "alert_latency_us": p.latency.take(),
        "table_entries": table_entries,
        "session_restarts": run.restarts,
        "source_fallbacks": run.fallbacks,
        "source": source,
    });
    if !run.outputs.is_empty() {
        add_outputs(&mut stats, &run.outputs);
    }
    if let Some(record) = &run.record {
        stats["record"] = json!({
            "write_errors": load(&record.write_errors),
            "events_unwritten": load(&record.unwritten),
            "events_lost": load(&record.lost),
        });
    }
    eprintln!("spawnwatch: stats {}", human(&stats));
    let changed = p.incidents.lock().unwrap().take_changed();
    if !changed.is_empty() {
        let heading = format!(
            "spawnwatch: incidents with alerts since the last stats line: {}",
            changed.len()
        );
        eprint!("{}", table(&heading, &changed, "  "));
    }
    stats.to_string()
}

/// Each destination's figures under `outputs`; the totals count theirs too.
fn add_outputs(stats: &mut Value, outputs: &[Arc<OutputFigures>]) {
    let mut each = serde_json::Map::new();
    for output in outputs {
        let figures = output.to_json();
        for (total, own) in [
            ("write_errors", "failures"),
            ("alerts_unwritten", "queued"),
            ("alerts_lost", "dropped"),
        ] {
            let sum = stats[total].as_u64().unwrap_or(0) + figures[own].as_u64().unwrap_or(0);
            stats[total] = sum.into();
        }
        each.insert(output.name.clone(), figures);
    }
    stats["outputs"] = Value::Object(each);
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

/// The live source of the platform this binary was built for (Linux: `choice`).
#[cfg(target_os = "linux")]
pub fn platform_source(_role: Role, choice: Choice) -> Result<Start, String> {
    for warning in crate::source::proc_connector::check_privileges()? {
        eprintln!("spawnwatch: warning: {warning}");
    }
    Ok(Box::new(move |sink| {
        crate::source::linux::start(choice, sink)
    }))
}

#[cfg(windows)]
impl LiveSource for crate::source::etw::EtwSource {
    fn stats(&self) -> Value {
        crate::source::etw::EtwSource::stats(self).to_json()
    }
    fn stop(self: Box<Self>) -> Value {
        // Taken just before stopping (EtwSource::stop consumes it and returns nothing).
        let stats = crate::source::etw::EtwSource::stats(&self).to_json();
        crate::source::etw::EtwSource::stop(*self);
        stats
    }
}

/// On Windows the role's named mutex is taken here and held for as long as the returned
/// `Start` lives: a second sensor would stop the first one's sessions (same names).
#[cfg(windows)]
pub fn platform_source(role: Role, choice: Choice) -> Result<Start, String> {
    use crate::source::etw::{
        is_elevated, EtwOptions, EtwSource, InstanceLock, SessionNames, NEEDS_ADMIN,
    };
    if choice != Choice::Auto {
        return Err(
            "--source chooses between Linux's live sources; on Windows the live source is ETW"
                .into(),
        );
    }
    if is_elevated() == Some(false) {
        return Err(NEEDS_ADMIN.to_string());
    }
    let names = match role {
        Role::Sensor => SessionNames::SENSOR,
        Role::Selftest => SessionNames::SELFTEST,
    };
    let lock = InstanceLock::acquire(&names)?;
    let hostname = crate::host::hostname();
    Ok(Box::new(move |sink| {
        let _held = &lock;
        let options = EtwOptions {
            hostname: hostname.clone(),
            ..EtwOptions::default()
        };
        let source = EtwSource::start(sink, options, names)?;
        let seed = EtwSource::seed(hostname.as_deref());
        Ok((Box::new(source) as Box<dyn LiveSource>, seed))
    }))
}

#[cfg(not(any(target_os = "linux", windows)))]
pub fn platform_source(_role: Role, _choice: Choice) -> Result<Start, String> {
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
    use crate::source::live::Fallback;
    use arc_swap::ArcSwap;
    use dsl::RuleSet;
    use std::sync::atomic::AtomicUsize;

    /// A source that sends a fixed batch from its own thread, then asks to stop.
    struct Batch(Option<std::thread::JoinHandle<()>>);
    impl LiveSource for Batch {
        fn stats(&self) -> Value {
            json!({"kind": "test"})
        }
        fn stop(mut self: Box<Self>) -> Value {
            self.0.take().unwrap().join().unwrap();
            self.stats()
        }
    }

    fn config(stop: Arc<AtomicBool>) -> RunConfig {
        RunConfig {
            stats_interval: Duration::from_secs(3600),
            record: None,
            stop,
            on_turn: Box::new(|_| {}),
            restart: Backoff::default(),
            outputs: Vec::new(),
            stats_file: None,
        }
    }

    fn no_rules() -> Rules {
        Arc::new(ArcSwap::from_pointee(RuleSet::compile(&[])))
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
            let stop_from_source = stop_from_source.clone();
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
        let rules = no_rules();
        let kept = tempfile::tempdir().unwrap();
        let stats_path = kept.path().join("stats.json");
        let config = RunConfig {
            record: Some(Box::new(recorded.clone())),
            stats_file: Some(StatsFile::new(stats_path.clone())),
            ..config(stop)
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
        assert_eq!(
            std::fs::read_to_string(&stats_path).unwrap(),
            format!("{}\n", lines.last().unwrap()),
            "--stats-file keeps the final stats line"
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
            let (lines, seen_tx) = (lines.clone(), seen_tx.clone());
            let stop_from_source = stop_from_source.clone();
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
        let rules: Rules = Arc::new(ArcSwap::from_pointee(rules));
        run(
            start,
            rules,
            Box::new(ChannelSink(written)),
            &Options::default(),
            config(stop),
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

    /// What the fake source does when started for the n-th time (1-based).
    enum Turn {
        /// Sends an event, then its session stops from outside (`logman stop`).
        SendThenEnd,
        /// Does not start.
        Fail,
        /// Sends an event, then the test is over: asks the sensor to stop.
        SendThenStop,
    }

    /// A `Start` playing `turns` in order, and how many times it was called.
    fn scripted(turns: Vec<Turn>, stop: Arc<AtomicBool>) -> (Start, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let start: Start = Box::new(move |sink: LiveSink| {
            let n = counted.fetch_add(1, Ordering::Relaxed);
            let stop = stop.clone();
            let pid = 10 + n as u32;
            let handle = match turns.get(n) {
                Some(Turn::Fail) => return Err(format!("start {} refused", n + 1)),
                Some(Turn::SendThenEnd) => std::thread::spawn(move || {
                    assert!(sink.push(event(pid, Action::Create)));
                    sink.ended("fake-session", "stopped from outside");
                }),
                Some(Turn::SendThenStop) | None => std::thread::spawn(move || {
                    assert!(sink.push(event(pid, Action::Create)));
                    stop.store(true, Ordering::Relaxed);
                }),
            };
            let seed = vec![event(100 + pid, Action::Existing)];
            Ok((Box::new(Batch(Some(handle))) as Box<dyn LiveSource>, seed))
        });
        (start, calls)
    }

    /// Runs a scripted source to its end; the sensor's output lines, parsed. A watchdog
    /// stops a run that would otherwise never end, so a broken restart fails, not hangs.
    fn run_script(turns: Vec<Turn>, restart: Backoff) -> (Vec<Value>, usize, Report) {
        let stop = Arc::new(AtomicBool::new(false));
        let (start, calls) = scripted(turns, stop.clone());
        let (finished, watchdog) = crossbeam_channel::bounded::<()>(1);
        let stop_on_timeout = stop.clone();
        std::thread::spawn(move || {
            if watchdog.recv_timeout(Duration::from_secs(60)).is_err() {
                stop_on_timeout.store(true, Ordering::Relaxed);
            }
        });
        let output = Memory::default();
        let config = RunConfig {
            restart,
            ..config(stop)
        };
        let report = run(
            start,
            no_rules(),
            Box::new(output.clone()),
            &Options::default(),
            config,
        )
        .unwrap();
        let _ = finished.send(());
        let lines = output.lines();
        let parsed = lines.iter().map(|l| serde_json::from_str(l).unwrap());
        (parsed.collect(), calls.load(Ordering::Relaxed), report)
    }

    fn sensor_lines(lines: &[Value]) -> Vec<&Value> {
        lines.iter().filter(|l| l["kind"] == "sensor").collect()
    }

    #[test]
    fn a_source_that_stops_on_its_own_is_restarted_and_the_siem_told() {
        let turns = vec![Turn::SendThenEnd, Turn::SendThenStop];
        let (lines, calls, report) = run_script(turns, Backoff::default());
        assert_eq!(calls, 2, "started, then restarted once");
        assert_eq!(
            report.evaluated, 2,
            "events from before and after the restart"
        );
        let sensor = sensor_lines(&lines);
        assert_eq!(sensor.len(), 2, "{lines:#?}");
        for line in &sensor {
            assert_eq!(line["rule"]["id"], "spawnwatch.source-stopped");
            assert_eq!(line["rule"]["severity"], "high");
            assert_eq!(line["source"]["session"], "fake-session");
            assert_eq!(line["source"]["reason"], "stopped from outside");
        }
        assert_eq!(sensor[0]["source"]["state"], "stopped");
        assert_eq!(sensor[1]["source"]["state"], "restarted");
        assert!(sensor[1]["source"]["blind_ms"].is_u64());
        assert_eq!(sensor[1]["source"]["attempts"], 1);
        let stats = lines.last().unwrap();
        assert_eq!(stats["kind"], "stats");
        assert_eq!(stats["session_restarts"], 1);
        assert!(
            stats["source"].is_object(),
            "the restarted source's figures"
        );
    }

    #[test]
    fn a_restart_that_fails_is_tried_again() {
        let turns = vec![
            Turn::SendThenEnd,
            Turn::Fail,
            Turn::Fail,
            Turn::SendThenStop,
        ];
        let quick = Backoff {
            first: Duration::ZERO,
            max: Duration::from_secs(60),
        };
        let (lines, calls, _) = run_script(turns, quick);
        assert_eq!(calls, 4);
        let sensor = sensor_lines(&lines);
        assert_eq!(sensor.len(), 2, "{lines:#?}");
        assert_eq!(sensor[1]["source"]["state"], "restarted");
        assert_eq!(sensor[1]["source"]["attempts"], 3);
        assert_eq!(lines.last().unwrap()["session_restarts"], 1);
    }

    /// Runs `start`'s source without rules until `stop`; the output lines, parsed.
    fn run_to_end(start: Start, stop: Arc<AtomicBool>) -> Vec<Value> {
        let output = Memory::default();
        let options = Options::default();
        run(
            start,
            no_rules(),
            Box::new(output.clone()),
            &options,
            config(stop),
        )
        .unwrap();
        let lines = output.lines();
        lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// A source whose reader hands on one last event while it stops (the connector's
    /// reader finishing the receive it was in).
    struct LastWord {
        sink: Option<LiveSink>,
        emitted: u64,
    }
    impl LiveSource for LastWord {
        fn stats(&self) -> Value {
            json!({"kind": "test", "emitted": self.emitted})
        }
        fn stop(mut self: Box<Self>) -> Value {
            let sink = self.sink.take().unwrap();
            assert!(sink.push(event(99, Action::Create)));
            self.emitted += 1;
            self.stats()
        }
    }

    #[test]
    fn the_final_stats_count_what_the_source_sent_while_stopping() {
        let start: Start = Box::new(|sink: LiveSink| {
            let source = LastWord {
                sink: Some(sink),
                emitted: 0,
            };
            Ok((Box::new(source) as Box<dyn LiveSource>, vec![]))
        });
        let lines = run_to_end(start, Arc::new(AtomicBool::new(true)));
        let stats = lines.last().unwrap();
        assert_eq!(
            (&stats["received"], &stats["source"]["emitted"]),
            (&json!(1), &json!(1)),
            "every event the source emitted was received: {stats}"
        );
    }

    /// A source standing in for a better one that could not start.
    struct StandIn(Batch);
    impl LiveSource for StandIn {
        fn stats(&self) -> Value {
            self.0.stats()
        }
        fn stop(self: Box<Self>) -> Value {
            Box::new(self.0).stop()
        }
        fn fallback(&self) -> Option<Fallback> {
            Some(Fallback {
                running: "proc-connector",
                instead_of: "ebpf",
                reason: "the kernel has no BTF".into(),
            })
        }
    }

    #[test]
    fn a_fallback_source_is_told_to_the_siem_at_once_and_counted() {
        let stop = Arc::new(AtomicBool::new(false));
        let stop_from_source = stop.clone();
        let start: Start = Box::new(move |sink: LiveSink| {
            let stop = stop_from_source.clone();
            let handle = std::thread::spawn(move || {
                assert!(sink.push(event(2, Action::Create)));
                stop.store(true, Ordering::Relaxed);
            });
            let source = StandIn(Batch(Some(handle)));
            Ok((Box::new(source) as Box<dyn LiveSource>, vec![]))
        });
        let lines = run_to_end(start, stop);
        let first = &lines[0];
        assert_eq!(first["kind"], "sensor", "the first line: {lines:#?}");
        assert_eq!(first["rule"]["id"], "spawnwatch.source-fallback");
        assert_eq!(first["source"]["session"], "proc-connector");
        assert_eq!(first["source"]["instead_of"], "ebpf");
        assert_eq!(first["source"]["reason"], "the kernel has no BTF");
        assert_eq!(lines.last().unwrap()["source_fallbacks"], 1);
    }

    /// A source that runs `produce` on its own thread, then holds on to its sink
    /// (the channel stays open) until it is stopped.
    struct Held {
        thread: Option<std::thread::JoinHandle<()>>,
        release: Option<crossbeam_channel::Sender<()>>,
    }

    impl Held {
        /// Starts once: a restart would find `produce` already used.
        fn start(produce: impl FnOnce(&LiveSink) + Send + 'static) -> Start {
            let mut produce = Some(produce);
            Box::new(move |sink: LiveSink| {
                let produce = produce.take().ok_or("started twice")?;
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
        fn stop(mut self: Box<Self>) -> Value {
            drop(self.release.take());
            self.thread.take().unwrap().join().unwrap();
            self.stats()
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
            let config = config(Arc::new(AtomicBool::new(false)));
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

    /// An output that notes the scheduler slice of the thread writing to it.
    #[cfg(target_os = "linux")]
    struct SliceOfWriter(crossbeam_channel::Sender<u64>);

    #[cfg(target_os = "linux")]
    impl Sink for SliceOfWriter {
        fn name(&self) -> &str {
            "slice"
        }
        fn write(&mut self, _: &[crate::sink::Line]) -> Result<(), crate::sink::Stopped> {
            let slice = crate::sched::current().map_or(0, |attr| attr.sched_runtime);
            let _ = self.0.send(slice);
            Ok(())
        }
    }

    /// The writer waits for a CPU after each alert on a busy host unless it runs with a
    /// short slice (see `crate::sched`); it gets one from the thread that runs `run`.
    /// Needs Linux 6.12 or later, where a thread's slice can be set and read.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_writer_runs_with_a_short_scheduler_slice() {
        let (slices, written) = crossbeam_channel::unbounded();
        // On its own thread: the slice is asked for the thread that runs `run`.
        std::thread::spawn(move || {
            let stop = Arc::new(AtomicBool::new(false));
            let stop_from_source = stop.clone();
            let start = Held::start(move |sink| {
                assert!(sink.push(event(2, Action::Create)));
                stop_from_source.store(true, Ordering::Relaxed);
            });
            let sink = Box::new(SliceOfWriter(slices));
            run(
                start,
                alert_on_sh(),
                sink,
                &Options::default(),
                config(stop),
            )
            .unwrap();
        })
        .join()
        .unwrap();
        let slice = written.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(slice, crate::sched::SHORT_SLICE_NS);
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
        let config = RunConfig {
            record: Some(record),
            ..config(stop)
        };
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
