//! The care every output gets, whatever it is: lines it cannot take wait in a bounded
//! queue and go out, in order, once it works again (a full disk that is cleared loses
//! nothing); the first failure is said on stderr at once and again at most once a
//! minute while it lasts; everything is counted for the stats line; an output whose
//! reader is gone for good ends quietly; and the output is reopened on SIGHUP or when
//! its path names another file (log rotation, checked at most once a second).
//!
//! The queue is also the write buffer: lines gather until the owner flushes (at the
//! end of a burst) or until a chunk's worth waits.

use super::{Line, Sink};
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Lines that may wait for an output that fails; beyond, counted lines are lost.
pub const HELD_MAX: usize = 10_000;
/// Bytes that make a write worth doing before the owner flushes.
const WRITE_AT: usize = 64 << 10;
/// A failure that lasts is said again this often.
const REPEAT_REPORT: Duration = Duration::from_secs(60);
/// How often the path is checked for a rotated file.
const PATH_CHECK: Duration = Duration::from_secs(1);

/// SIGHUPs received so far: each output compares with the count it last saw.
pub type Hangups = Arc<AtomicU64>;
/// The time, for the once-a-second and once-a-minute decisions (tests drive it).
pub type Clock = Box<dyn Fn() -> Instant + Send>;
/// Where messages for the user go (stderr; tests keep them).
pub type Say = Box<dyn FnMut(String) + Send>;

/// Messages to stderr, as `spawnwatch: MESSAGE`.
pub fn say_on_stderr() -> Say {
    Box::new(|message| eprintln!("spawnwatch: {message}"))
}

/// `n` of `noun`, which is given in the plural: `1 alert`, `2 alerts`.
pub(super) fn counted(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {}", noun.strip_suffix('s').unwrap_or(noun))
    } else {
        format!("{n} {noun}")
    }
}

/// The form of a word that agrees with a count of `n`.
pub(super) fn agree(n: u64, singular: &'static str, plural: &'static str) -> &'static str {
    if n == 1 {
        singular
    } else {
        plural
    }
}

/// Running figures, readable while the output is written (the stats line).
#[derive(Debug, Default)]
pub struct Figures {
    /// Counted lines written.
    pub written: AtomicU64,
    /// Failed attempts to write or to reopen.
    pub write_errors: AtomicU64,
    /// Counted lines waiting for the output.
    pub unwritten: AtomicU64,
    /// Counted lines dropped: the queue was full, or the program ended first.
    pub lost: AtomicU64,
    /// The output's reader is gone for good; nothing more is written.
    pub ended: AtomicBool,
}

/// What became of an output, at the end.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub name: String,
    pub write_errors: u64,
    pub lost: u64,
    pub ended: bool,
}

pub struct Delivery {
    sink: Box<dyn Sink>,
    /// What the counted lines are, for messages: "alerts", "events".
    noun: &'static str,
    queue: VecDeque<Line>,
    queued_bytes: usize,
    /// Counted lines in `queue`.
    held: u64,
    figures: Arc<Figures>,
    failure: Option<Failure>,
    reopen_failed: bool,
    hangups: Hangups,
    hangups_seen: u64,
    next_path_check: Instant,
    clock: Clock,
    say: Say,
}

/// An output failing since its first error.
pub(super) struct Failure {
    last_report: Instant,
    /// Failed attempts so far.
    pub(super) attempts: u64,
    /// Counted lines written since, and lost since.
    written: u64,
    lost: u64,
}

impl Failure {
    /// Notes a failed attempt at `now`: `Some(true)` for the first (to be said at
    /// once), `Some(false)` when the last report is a minute old (to be said again).
    pub(super) fn report_due(failure: &mut Option<Failure>, now: Instant) -> Option<bool> {
        let Some(lasting) = failure.as_mut() else {
            *failure = Some(Failure {
                last_report: now,
                attempts: 1,
                written: 0,
                lost: 0,
            });
            return Some(true);
        };
        lasting.attempts += 1;
        if now.duration_since(lasting.last_report) < REPEAT_REPORT {
            return None;
        }
        lasting.last_report = now;
        Some(false)
    }
}

impl Delivery {
    /// Writes to `sink`, reporting on stderr; `hangups` counts SIGHUPs.
    pub fn new(sink: Box<dyn Sink>, noun: &'static str, hangups: Hangups) -> Delivery {
        Delivery::driven(sink, noun, hangups, Box::new(Instant::now), say_on_stderr())
    }

    /// Like [`Delivery::new`], on the given clock, with messages going to `say`.
    pub fn driven(
        sink: Box<dyn Sink>,
        noun: &'static str,
        hangups: Hangups,
        clock: Clock,
        say: Say,
    ) -> Delivery {
        let hangups_seen = hangups.load(Ordering::Relaxed);
        Delivery {
            sink,
            noun,
            queue: VecDeque::new(),
            queued_bytes: 0,
            held: 0,
            figures: Arc::default(),
            failure: None,
            reopen_failed: false,
            hangups,
            hangups_seen,
            next_path_check: clock() + PATH_CHECK,
            clock,
            say,
        }
    }

    pub fn figures(&self) -> Arc<Figures> {
        self.figures.clone()
    }

    /// Queues a line (`counted`: an alert or event, not a stats line). False when it
    /// will never be written: the queue is full (a counted line is then lost) or the
    /// output ended.
    pub fn push(&mut self, text: String, counted: bool) -> bool {
        if self.figures.ended.load(Ordering::Relaxed) {
            return false;
        }
        if self.queue.len() >= HELD_MAX {
            if counted {
                if self.failure.as_ref().is_some_and(|f| f.lost == 0) {
                    (self.say)(format!(
                        "{HELD_MAX} {noun} wait for {}: from now on {noun} are lost until it works again",
                        self.sink.name(),
                        noun = self.noun,
                    ));
                }
                self.lose(1);
            }
            return false;
        }
        self.queued_bytes += text.len();
        self.held += u64::from(counted);
        self.queue.push_back(Line { text, counted });
        if self.failure.is_none() && self.queued_bytes >= WRITE_AT {
            self.flush();
        }
        true
    }

    /// Writes out everything queued (or retries, while the output fails); true when
    /// nothing is left waiting.
    pub fn flush(&mut self) -> bool {
        if self.figures.ended.load(Ordering::Relaxed) {
            return true;
        }
        if self.queue.is_empty() && self.failure.is_none() {
            return true;
        }
        let result = self.sink.write(self.queue.make_contiguous());
        let delivered = result
            .as_ref()
            .map_or_else(|s| s.delivered, |()| self.queue.len());
        let mut written = 0;
        for line in self.queue.drain(..delivered) {
            self.queued_bytes -= line.text.len();
            written += u64::from(line.counted);
        }
        self.held -= written;
        self.figures.written.fetch_add(written, Ordering::Relaxed);
        if let Some(failure) = self.failure.as_mut() {
            failure.written += written;
        }
        match result {
            Ok(()) => self.recovered(),
            Err(stopped) => self.failed(stopped.error),
        }
        self.figures.unwritten.store(self.held, Ordering::Relaxed);
        self.queue.is_empty()
    }

    /// Reopens the output if a SIGHUP came since the last call, or if its path names
    /// another file (checked at most once a second). Lines already queued go to the
    /// old file first when they can.
    pub fn maintain(&mut self) {
        let hangups = self.hangups.load(Ordering::Relaxed);
        if hangups != self.hangups_seen {
            self.hangups_seen = hangups;
            self.reopen("SIGHUP");
            return;
        }
        let now = (self.clock)();
        if now >= self.next_path_check {
            self.next_path_check = now + PATH_CHECK;
            if self.sink.replaced() {
                self.reopen("its path now names another file, or none");
            }
        }
    }

    /// Whether the output's reader is gone for good.
    pub fn ended(&self) -> bool {
        self.figures.ended.load(Ordering::Relaxed)
    }

    /// A last attempt to write what waits; whatever still cannot be written is lost.
    /// Then the output is closed (see [`Sink::close`]).
    pub fn finish(mut self) -> Tally {
        self.flush();
        let lost_inside = self.sink.close();
        self.figures.lost.fetch_add(lost_inside, Ordering::Relaxed);
        if self.held > 0 {
            let held = self.held;
            self.lose(held);
            self.held = 0;
            self.figures.unwritten.store(0, Ordering::Relaxed);
            (self.say)(format!(
                "{} could not be written to {} before the end and {} lost",
                counted(held, self.noun),
                self.sink.name(),
                agree(held, "is", "are"),
            ));
        }
        let figures = &self.figures;
        Tally {
            name: self.sink.name().to_string(),
            write_errors: figures.write_errors.load(Ordering::Relaxed),
            lost: figures.lost.load(Ordering::Relaxed),
            ended: figures.ended.load(Ordering::Relaxed),
        }
    }

    fn lose(&mut self, n: u64) {
        self.figures.lost.fetch_add(n, Ordering::Relaxed);
        if let Some(failure) = self.failure.as_mut() {
            failure.lost += n;
        }
    }

    fn failed(&mut self, error: io::Error) {
        if self.sink.ended(&error) {
            self.figures.ended.store(true, Ordering::Relaxed);
            self.queue.clear();
            self.queued_bytes = 0;
            self.held = 0;
            return;
        }
        self.figures.write_errors.fetch_add(1, Ordering::Relaxed);
        let now = (self.clock)();
        let (name, noun, held) = (self.sink.name(), self.noun, self.held);
        match Failure::report_due(&mut self.failure, now) {
            Some(true) => (self.say)(format!(
                "cannot write to {name}: {error}; {} {} (up to {HELD_MAX}, then {noun} are lost) and {} written once it works again",
                counted(held, noun),
                agree(held, "waits", "wait"),
                agree(held, "is", "are"),
            )),
            Some(false) => (self.say)(format!(
                "still cannot write to {name}: {error}; {} {}, {} lost so far",
                counted(held, noun),
                agree(held, "waits", "wait"),
                self.failure.as_ref().map_or(0, |f| f.lost)
            )),
            None => {}
        }
    }

    fn recovered(&mut self) {
        if let Some(failure) = self.failure.take() {
            (self.say)(format!(
                "writing to {} works again: {} that waited {} written, {} {} lost",
                self.sink.name(),
                counted(failure.written, self.noun),
                agree(failure.written, "is", "are"),
                failure.lost,
                agree(failure.lost, "was", "were"),
            ));
        }
    }

    fn reopen(&mut self, why: &str) {
        self.flush();
        match self.sink.reopen() {
            Ok(reopened) => {
                if reopened {
                    (self.say)(format!("reopened {} ({why})", self.sink.name()));
                }
                self.reopen_failed = false;
                // The new file may work where the old one failed.
                self.flush();
            }
            Err(e) => {
                self.figures.write_errors.fetch_add(1, Ordering::Relaxed);
                if !self.reopen_failed {
                    (self.say)(format!(
                        "cannot reopen {} ({why}): {e}; still writing to the file open before",
                        self.sink.name()
                    ));
                }
                self.reopen_failed = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::file::FileSink;
    use crate::sink::Memory;
    use std::sync::Mutex;

    /// A clock the test moves, and the messages said.
    struct Driven {
        now: Arc<Mutex<Instant>>,
        said: Arc<Mutex<Vec<String>>>,
        hangups: Hangups,
    }

    impl Driven {
        fn new() -> Driven {
            Driven {
                now: Arc::new(Mutex::new(Instant::now())),
                said: Arc::default(),
                hangups: Hangups::default(),
            }
        }

        fn delivery(&self, sink: Box<dyn Sink>) -> Delivery {
            let (now, said) = (self.now.clone(), self.said.clone());
            Delivery::driven(
                sink,
                "alerts",
                self.hangups.clone(),
                Box::new(move || *now.lock().unwrap()),
                Box::new(move |m| said.lock().unwrap().push(m)),
            )
        }

        fn advance(&self, by: Duration) {
            *self.now.lock().unwrap() += by;
        }

        /// The messages said since the last call.
        fn said(&self) -> Vec<String> {
            std::mem::take(&mut *self.said.lock().unwrap())
        }
    }

    fn alert(n: u32) -> String {
        format!(r#"{{"kind":"alert","n":{n}}}"#)
    }

    #[test]
    fn a_failing_output_is_reported_at_once_then_once_a_minute_and_loses_nothing() {
        let driven = Driven::new();
        let memory = Memory::default();
        let mut delivery = driven.delivery(Box::new(memory.clone()));
        let figures = delivery.figures();
        memory.fail_with(Some(io::ErrorKind::StorageFull));
        delivery.push(alert(1), true);
        assert!(!delivery.flush());
        let said = driven.said();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].starts_with("cannot write to memory: "), "{said:?}");
        assert_eq!(figures.write_errors.load(Ordering::Relaxed), 1);
        assert_eq!(figures.unwritten.load(Ordering::Relaxed), 1);

        for n in 2..=5 {
            driven.advance(Duration::from_secs(20));
            delivery.push(alert(n), true);
            delivery.flush();
            let said = driven.said();
            if n == 4 {
                assert_eq!(said.len(), 1, "60 s after the first: {said:?}");
                assert!(said[0].starts_with("still cannot write to memory"));
            } else {
                assert!(said.is_empty(), "at {} s: {said:?}", (n - 1) * 20);
            }
        }
        delivery.push(r#"{"kind":"stats"}"#.into(), false);
        delivery.flush();
        assert_eq!(figures.write_errors.load(Ordering::Relaxed), 6);
        assert_eq!(
            figures.unwritten.load(Ordering::Relaxed),
            5,
            "stats not counted"
        );

        memory.fail_with(None);
        assert!(delivery.flush());
        let said = driven.said();
        assert_eq!(
            said,
            ["writing to memory works again: 5 alerts that waited are written, 0 were lost"]
        );
        let mut expected: Vec<String> = (1..=5).map(alert).collect();
        expected.push(r#"{"kind":"stats"}"#.into());
        assert_eq!(memory.lines(), expected);
        assert_eq!(figures.unwritten.load(Ordering::Relaxed), 0);
        let tally = delivery.finish();
        assert_eq!((tally.write_errors, tally.lost), (6, 0));
    }

    /// One alert is "1 alert waits", not "1 alerts wait".
    #[test]
    fn one_alert_is_spoken_of_in_the_singular() {
        let driven = Driven::new();
        let memory = Memory::default();
        let mut delivery = driven.delivery(Box::new(memory.clone()));
        memory.fail_with(Some(io::ErrorKind::StorageFull));
        delivery.push(alert(1), true);
        delivery.flush();
        driven.advance(REPEAT_REPORT);
        delivery.flush();
        let said = driven.said();
        assert!(
            said[0].ends_with("; 1 alert waits (up to 10000, then alerts are lost) and is written once it works again"),
            "{said:?}"
        );
        assert!(
            said[1].ends_with("; 1 alert waits, 0 lost so far"),
            "{said:?}"
        );
        memory.fail_with(None);
        delivery.flush();
        assert_eq!(
            driven.said(),
            ["writing to memory works again: 1 alert that waited is written, 0 were lost"]
        );
        memory.fail_with(Some(io::ErrorKind::StorageFull));
        delivery.push(alert(2), true);
        delivery.finish();
        assert_eq!(
            driven.said().last().unwrap(),
            "1 alert could not be written to memory before the end and is lost"
        );
    }

    #[test]
    fn beyond_the_queue_alerts_are_lost_and_counted_and_the_rest_lost_at_the_end() {
        let driven = Driven::new();
        let memory = Memory::default();
        let mut delivery = driven.delivery(Box::new(memory.clone()));
        memory.fail_with(Some(io::ErrorKind::StorageFull));
        let pushed = HELD_MAX as u32 + 5;
        let queued = (0..pushed)
            .filter(|&n| delivery.push(alert(n), true))
            .count();
        assert_eq!(queued, HELD_MAX);
        delivery.flush();
        let figures = delivery.figures();
        assert_eq!(figures.lost.load(Ordering::Relaxed), 5);
        assert_eq!(figures.unwritten.load(Ordering::Relaxed), HELD_MAX as u64);
        let tally = delivery.finish();
        assert_eq!(tally.lost, pushed as u64);
        let said = driven.said();
        assert_eq!(
            said.len(),
            3,
            "the failure, the first loss, the end: {said:?}"
        );
        assert_eq!(
            said[1],
            "10000 alerts wait for memory: from now on alerts are lost until it works again"
        );
        assert!(
            said.last()
                .unwrap()
                .starts_with("10000 alerts could not be written to memory"),
            "{said:?}"
        );
    }

    #[test]
    fn a_closed_pipe_ends_the_output_quietly() {
        let driven = Driven::new();
        let memory = Memory::default();
        let mut delivery = driven.delivery(Box::new(memory.clone()));
        memory.fail_with(Some(io::ErrorKind::BrokenPipe));
        delivery.push(alert(1), true);
        delivery.flush();
        assert!(delivery.ended());
        assert!(!delivery.push(alert(2), true));
        let tally = delivery.finish();
        assert!(tally.ended);
        assert_eq!((tally.write_errors, tally.lost), (0, 0));
        assert!(driven.said().is_empty());
    }

    fn rotate(path: &std::path::Path) -> std::path::PathBuf {
        let rotated = path.with_extension("jsonl.1");
        std::fs::rename(path, &rotated).unwrap();
        std::fs::write(path, "").unwrap();
        rotated
    }

    fn read(path: &std::path::Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    /// A delivery to `alerts.jsonl` in a new directory.
    fn to_file(driven: &Driven) -> (tempfile::TempDir, std::path::PathBuf, Delivery) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let delivery = driven.delivery(Box::new(FileSink::open(&path).unwrap()));
        (dir, path, delivery)
    }

    #[test]
    fn a_rotated_file_is_reopened_within_a_second_by_the_clock() {
        let driven = Driven::new();
        let (_dir, path, mut delivery) = to_file(&driven);
        delivery.push("one".into(), true);
        delivery.flush();
        let rotated = rotate(&path);
        driven.advance(Duration::from_millis(999));
        delivery.maintain();
        delivery.push("two".into(), true);
        delivery.flush();
        assert_eq!(
            read(&rotated),
            "one\ntwo\n",
            "not checked again within a second"
        );
        driven.advance(Duration::from_millis(1));
        delivery.maintain();
        delivery.push("three".into(), true);
        delivery.flush();
        assert_eq!(read(&path), "three\n");
        assert_eq!(
            driven.said(),
            [format!(
                "reopened {} (its path now names another file, or none)",
                path.display()
            )]
        );
    }

    #[test]
    fn sighup_reopens_at_once() {
        let driven = Driven::new();
        let (_dir, path, mut delivery) = to_file(&driven);
        delivery.push("one".into(), true);
        let rotated = rotate(&path);
        driven.hangups.fetch_add(1, Ordering::Relaxed);
        delivery.maintain();
        delivery.push("two".into(), true);
        delivery.flush();
        assert_eq!(
            read(&rotated),
            "one\n",
            "what was queued went to the old file"
        );
        assert_eq!(read(&path), "two\n");
        assert_eq!(
            driven.said(),
            [format!("reopened {} (SIGHUP)", path.display())]
        );
    }

    #[test]
    fn a_reopen_that_fails_keeps_the_old_file_and_is_said_once() {
        let driven = Driven::new();
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let path = logs.join("alerts.jsonl");
        let mut delivery = driven.delivery(Box::new(FileSink::open(&path).unwrap()));
        let moved = dir.path().join("moved");
        std::fs::rename(&logs, &moved).unwrap();
        for _ in 0..3 {
            driven.advance(PATH_CHECK);
            delivery.maintain();
        }
        delivery.push("still here".into(), true);
        delivery.flush();
        assert_eq!(read(&moved.join("alerts.jsonl")), "still here\n");
        let said = driven.said();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].starts_with("cannot reopen"), "{said:?}");
        assert_eq!(delivery.figures().write_errors.load(Ordering::Relaxed), 3);
    }
}
