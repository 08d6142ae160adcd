//! The thread that sends a network destination's spool: it reads lines from the spool
//! in order, writes them to the destination's [`Sink`], and removes them from the
//! spool once the destination holds them ([`Sink::unconfirmed`]). After any error it
//! starts again from the oldest line not confirmed, retrying sooner at first, then
//! every few seconds. A failure is said at once, again at most once a minute while it
//! lasts, and when it ends, as for every output ([`super::delivery`]).

use super::delivery::{agree, counted, Failure, Say};
use super::spool::{Pos, SpoolReader, Waited};
use super::Sink;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Lines per write: a syslog burst, an HTTP request.
const BATCH_LINES: usize = 500;
const BATCH_BYTES: usize = 1 << 20;
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// How often the destination is asked about lines written but not yet confirmed, once
/// nothing more comes to send: it has no way to tell us.
const CONFIRM_POLL: Duration = Duration::from_millis(100);
/// At the end, how long the spool may take to empty while the destination works;
/// what is left stays spooled for the next start.
pub const DRAIN: Duration = Duration::from_secs(30);

/// Figures of the sending side, for the stats line.
#[derive(Debug, Default)]
pub struct SendFigures {
    /// Failed attempts to connect or send.
    pub failures: AtomicU64,
    /// Lines the destination refused for good (HTTP 400), dropped.
    pub rejected: Arc<AtomicU64>,
    /// Milliseconds since the epoch of the last line confirmed; 0 for never.
    pub last_success_ms: AtomicI64,
}

pub struct Forwarder {
    pub reader: SpoolReader,
    pub sink: Box<dyn Sink>,
    pub figures: Arc<SendFigures>,
    pub say: Say,
    /// Where the spool is, for messages.
    pub spool: String,
}

impl Forwarder {
    /// Sends until the spool is closed and empty. Once it is closed, the first failure
    /// ends it (after the retry due, if one was), and so does [`DRAIN`]: what is left
    /// stays spooled for the next start.
    pub fn run(mut self) {
        let mut cursor = self.reader.head();
        let mut written: VecDeque<Pos> = VecDeque::new();
        let mut failure: Option<Failure> = None;
        let mut retry = RETRY_FIRST;
        let mut retry_at: Option<Instant> = None;
        let mut closed_at: Option<Instant> = None;
        let mut failures_at_close = 0;
        loop {
            let now = Instant::now();
            if !written.is_empty() {
                match self.sink.unconfirmed() {
                    Ok(n) => self.confirm(&mut written, n, &mut failure),
                    Err(error) => {
                        self.failed(&error.to_string(), &mut failure);
                        written.clear();
                        cursor = self.reader.head();
                        retry_at = Some(now + retry);
                    }
                }
            }
            let failures = self.figures.failures.load(Ordering::Relaxed);
            if closed_at.is_none() && self.reader.closed() {
                closed_at = Some(now);
                failures_at_close = failures;
            }
            if let Some(closed) = closed_at {
                let empty = written.is_empty() && self.reader.empty();
                if empty || failures > failures_at_close || now >= closed + DRAIN {
                    break;
                }
            }
            if let Some(at) = retry_at {
                if now < at {
                    std::thread::sleep((at - now).min(Duration::from_millis(250)));
                    continue;
                }
            }
            let batch = match self.reader.read(&mut cursor, BATCH_LINES, BATCH_BYTES) {
                Ok(batch) => batch,
                Err(error) => {
                    self.failed(
                        &format!("cannot read the spool {}: {error}", self.spool),
                        &mut failure,
                    );
                    retry_at = Some(now + RETRY_MAX);
                    continue;
                }
            };
            if batch.is_empty() {
                // Checked again soon while lines wait to be confirmed.
                let wait = if written.is_empty() {
                    Duration::from_secs(1)
                } else {
                    CONFIRM_POLL
                };
                if self.reader.wait(cursor, wait) == Waited::Closed {
                    // The wait returns at once now: only confirmations are awaited.
                    std::thread::sleep(CONFIRM_POLL);
                }
                continue;
            }
            let (lines, ends): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|s| (s.line, s.end)).unzip();
            match self.sink.write(&lines) {
                Ok(()) => {
                    written.extend(ends);
                    retry = RETRY_FIRST;
                    retry_at = None;
                }
                Err(stopped) => {
                    self.failed(&stopped.error.to_string(), &mut failure);
                    written.clear();
                    cursor = self.reader.head();
                    retry_at = Some(Instant::now() + retry);
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
        }
        self.sink.close();
        let left = self.reader.figures().queued.load(Ordering::Relaxed);
        if left > 0 {
            (self.say)(format!(
                "{} for {} {} in the spool {} and {} sent first when spawnwatch next starts with this destination",
                counted(left, "lines"),
                self.sink.name(),
                agree(left, "stays", "stay"),
                self.spool,
                agree(left, "is", "are"),
            ));
        }
    }

    /// All but the last `unconfirmed` lines written are held by the destination.
    fn confirm(
        &mut self,
        written: &mut VecDeque<Pos>,
        unconfirmed: usize,
        failure: &mut Option<Failure>,
    ) {
        let done = written.len().saturating_sub(unconfirmed);
        if done == 0 {
            return;
        }
        self.reader.ack(written.drain(..done));
        let now = chrono::Utc::now().timestamp_millis();
        self.figures.last_success_ms.store(now, Ordering::Relaxed);
        if let Some(failure) = failure.take() {
            (self.say)(format!(
                "sending to {} works again after {} failed {}; the lines that waited in the spool are being sent",
                self.sink.name(),
                failure.attempts,
                agree(failure.attempts, "attempt", "attempts"),
            ));
        }
    }

    fn failed(&mut self, error: &str, failure: &mut Option<Failure>) {
        self.figures.failures.fetch_add(1, Ordering::Relaxed);
        let spool = self.reader.figures();
        let (queued, dropped) = (
            spool.queued.load(Ordering::Relaxed),
            spool.dropped.load(Ordering::Relaxed),
        );
        let name = self.sink.name().to_string();
        match Failure::report_due(failure, Instant::now()) {
            Some(true) => (self.say)(format!(
                "cannot send to {name}: {error}; {} {} in the spool {} (up to its size cap, then the oldest are dropped) and {} sent once it works again",
                counted(queued, "lines"),
                agree(queued, "waits", "wait"),
                self.spool,
                agree(queued, "is", "are"),
            )),
            Some(false) => (self.say)(format!(
                "still cannot send to {name}: {error}; {} {} in the spool, {dropped} dropped so far",
                counted(queued, "lines"),
                agree(queued, "waits", "wait"),
            )),
            None => {}
        }
    }
}

/// A network destination as its [`super::Delivery`] sees it: lines go into the spool,
/// and a [`Forwarder`] thread sends them from there.
pub struct SpoolSink {
    writer: super::spool::SpoolWriter,
    forwarder: Option<std::thread::JoinHandle<()>>,
    figures: Arc<SendFigures>,
}

impl SpoolSink {
    /// Starts `forwarder` on a thread of its own.
    pub fn start(writer: super::spool::SpoolWriter, forwarder: Forwarder) -> SpoolSink {
        let figures = forwarder.figures.clone();
        let thread = std::thread::Builder::new()
            .name("forward".into())
            .spawn(move || forwarder.run())
            .expect("spawn forwarding thread");
        SpoolSink {
            writer,
            forwarder: Some(thread),
            figures,
        }
    }
}

impl Sink for SpoolSink {
    fn name(&self) -> &str {
        self.writer.name()
    }

    fn write(&mut self, lines: &[super::Line]) -> Result<(), super::Stopped> {
        self.writer.write(lines)
    }

    /// Waits for the forwarder to send what it can (see [`DRAIN`]). Lines left in the
    /// spool are not lost: the next start sends them. Those dropped are.
    fn close(&mut self) -> u64 {
        self.writer.close();
        if let Some(thread) = self.forwarder.take() {
            let _ = thread.join();
        }
        self.writer.figures().dropped.load(Ordering::Relaxed)
            + self.figures.rejected.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sink::collectors::Collector;
    use crate::sink::spool::{self, SpoolFigures};
    use crate::sink::syslog::{Secure, Syslog, Transport};
    use crate::sink::Line;
    use crossbeam_channel::{unbounded, Receiver};
    use std::collections::BTreeMap;
    use std::path::Path;

    /// A network destination as the sensor runs it: spool, forwarding thread, sink.
    pub(crate) struct Sending {
        pub sink: SpoolSink,
        pub said: Receiver<String>,
        pub spool: Arc<SpoolFigures>,
        pub send: Arc<SendFigures>,
    }

    impl Sending {
        /// `sink` is made with the figures it counts in.
        pub(crate) fn start(
            dir: &Path,
            max_bytes: u64,
            sink: impl FnOnce(&SendFigures) -> Box<dyn Sink>,
        ) -> Sending {
            let (writer, reader, _) = spool::open(dir, max_bytes).unwrap();
            let (tell, said) = unbounded();
            let send = Arc::new(SendFigures::default());
            let sink = sink(&send);
            let spool = writer.figures();
            let forwarder = Forwarder {
                reader,
                sink,
                figures: send.clone(),
                say: Box::new(move |m| {
                    let _ = tell.send(m);
                }),
                spool: dir.display().to_string(),
            };
            Sending {
                sink: SpoolSink::start(writer, forwarder),
                said,
                spool,
                send,
            }
        }

        pub(crate) fn write(&mut self, numbers: std::ops::Range<u32>) {
            let lines: Vec<Line> = numbers
                .map(|n| Line {
                    text: format!(r#"{{"kind":"alert","n":{n}}}"#),
                    counted: true,
                })
                .collect();
            self.sink.write(&lines).unwrap();
        }

        /// The first message said from now that starts with `start`, waiting up to a
        /// minute.
        pub(crate) fn said(&self, start: &str) -> String {
            loop {
                let said = self
                    .said
                    .recv_timeout(Duration::from_secs(60))
                    .unwrap_or_else(|_| panic!("never said: {start}..."));
                if said.starts_with(start) {
                    return said;
                }
            }
        }

        pub(crate) fn load(figure: &AtomicU64) -> u64 {
            figure.load(Ordering::Relaxed)
        }
    }

    fn syslog(
        collector: &Collector,
        tls: Option<Secure>,
    ) -> impl FnOnce(&SendFigures) -> Box<dyn Sink> {
        let transport = if tls.is_some() {
            Transport::Tls
        } else {
            Transport::Tcp
        };
        let address = collector.address.to_string();
        move |_| Box::new(Syslog::new("collector".into(), address, transport, tls).unwrap())
    }

    /// The `n` of the alert in a syslog message.
    fn number(message: &str) -> u32 {
        let alert: serde_json::Value =
            serde_json::from_str(&message[message.find('{').unwrap()..]).unwrap();
        alert["n"].as_u64().unwrap() as u32
    }

    fn numbers(messages: &[String]) -> Vec<u32> {
        messages.iter().map(|m| number(m)).collect()
    }

    /// Waits up to a minute for `condition`, checking it every few milliseconds.
    pub(crate) fn wait_until(what: &str, condition: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !condition() {
            assert!(Instant::now() < deadline, "waited a minute for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_collector_that_is_down_gets_every_line_in_order_once_it_is_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut collector = Collector::down(None);
        let mut sending = Sending::start(dir.path(), 1 << 20, syslog(&collector, None));
        for burst in 0..10 {
            sending.write(burst * 10..burst * 10 + 10);
        }
        let said = sending.said("cannot send to collector: ");
        assert!(said.contains("in the spool"), "{said}");
        assert!(Sending::load(&sending.send.failures) >= 1);
        assert_eq!(Sending::load(&sending.spool.queued), 100);

        collector.start();
        assert_eq!(
            numbers(&collector.messages(100)),
            (0..100).collect::<Vec<_>>()
        );
        sending.said("sending to collector works again after ");
        assert_eq!(sending.sink.close(), 0);
        assert_eq!(Sending::load(&sending.spool.sent), 100);
        assert_eq!(Sending::load(&sending.spool.queued), 0);
        assert_eq!(Sending::load(&sending.spool.bytes), 0);
        assert!(collector.seen.try_recv().is_err(), "nothing sent twice");
    }

    /// Lines the collector had when it was killed, unconfirmed, are sent again; those
    /// confirmed before are not. Every line arrives; the duplicates are counted.
    #[test]
    fn a_killed_and_restarted_collector_gets_every_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut collector = Collector::up(None);
        let mut sending = Sending::start(dir.path(), 1 << 20, syslog(&collector, None));
        sending.write(0..50);
        assert_eq!(
            numbers(&collector.messages(50)),
            (0..50).collect::<Vec<_>>()
        );
        wait_until("the first 50 lines confirmed", || {
            Sending::load(&sending.spool.sent) == 50
        });
        sending.write(50..80);
        collector.messages(30);
        collector.kill();
        sending.write(80..100);
        sending.said("cannot send to collector: ");
        collector.start();
        let mut times: BTreeMap<u32, u32> = (0..80).map(|n| (n, 1)).collect();
        while times.len() < 100 {
            for n in numbers(&collector.messages(1)) {
                *times.entry(n).or_default() += 1;
            }
        }
        assert_eq!(sending.sink.close(), 0);
        let sent_twice: Vec<u32> = times
            .iter()
            .filter(|(_, &t)| t > 1)
            .map(|(&n, _)| n)
            .collect();
        eprintln!("sent twice after the kill: {} lines", sent_twice.len());
        assert!(
            sent_twice.iter().all(|&n| n >= 50),
            "confirmed lines were sent again: {sent_twice:?}"
        );
        assert_eq!(
            times.keys().copied().collect::<Vec<_>>(),
            (0..100).collect::<Vec<_>>()
        );
        assert_eq!(Sending::load(&sending.spool.queued), 0);
    }

    #[test]
    fn a_full_spool_drops_the_oldest_lines_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut collector = Collector::down(None);
        let mut sending = Sending::start(dir.path(), 4096, syslog(&collector, None));
        sending.write(0..1);
        sending.said("cannot send to collector: ");
        for n in 1..300 {
            sending.write(n..n + 1);
        }
        let dropped = Sending::load(&sending.spool.dropped);
        assert!(dropped > 0, "4 KiB hold no 300 lines");
        assert!(Sending::load(&sending.spool.bytes) <= 4096);
        collector.start();
        let kept = 300 - dropped as u32;
        assert_eq!(
            numbers(&collector.messages(kept as usize)),
            (300 - kept..300).collect::<Vec<_>>()
        );
        assert_eq!(sending.sink.close(), dropped, "the dropped are the lost");
        assert_eq!(Sending::load(&sending.spool.sent), u64::from(kept));
    }

    /// A collector whose certificate no trusted CA signed gets nothing; the lines stay
    /// spooled, and a sensor started again with the right CA sends them first.
    #[cfg(feature = "tls")]
    #[test]
    fn a_wrong_certificate_is_refused_and_the_spooled_lines_go_to_the_right_one() {
        use crate::sink::collectors::{Pki, Seen};
        use crate::sink::tls::{client_config, syslog_session};
        let dir = tempfile::tempdir().unwrap();
        let (pki, stranger) = (Pki::new(), Pki::new());
        let collector = Collector::up(Some(pki.accept()));
        let trusting = |pki: &Pki| {
            let ca = pki.ca_file(dir.path());
            let config = client_config(Some(&ca), None, None).unwrap();
            syslog_session(config, &collector.address.to_string()).unwrap()
        };
        let spool = dir.path().join("spool");
        let mut sending = Sending::start(
            &spool,
            1 << 20,
            syslog(&collector, Some(trusting(&stranger))),
        );
        sending.write(0..10);
        let said = sending.said("cannot send to collector: ");
        assert!(
            said.contains("invalid peer certificate: UnknownIssuer; the collector's certificate is not signed by a CA spawnwatch trusts: give its CA with --tls-ca FILE"),
            "{said}"
        );
        assert!(matches!(
            collector.seen.recv_timeout(Duration::from_secs(60)),
            Ok(Seen::Refused)
        ));
        assert_eq!(sending.sink.close(), 0);
        let left = sending.said("10 lines for collector stay in the spool");
        assert!(
            left.ends_with("are sent first when spawnwatch next starts with this destination"),
            "{left}"
        );

        drop(sending);
        let mut sending = Sending::start(&spool, 1 << 20, syslog(&collector, Some(trusting(&pki))));
        assert_eq!(
            numbers(&collector.messages(10)),
            (0..10).collect::<Vec<_>>()
        );
        assert_eq!(sending.sink.close(), 0);
        assert_eq!(Sending::load(&sending.spool.sent), 10);
    }
}
