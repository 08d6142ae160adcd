//! What every live source shares: the non-blocking hand-off into the pipeline and the
//! counters behind the stats line. A live source must never block its reader (ETW drops
//! whole buffers when a callback stalls; the kernel connector overruns its socket), so a
//! full channel drops the event and counts it.
//!
//! A part of a source that stops on its own (an ETW session stopped by someone else, a
//! socket that failed) says so through [`LiveSink::ended`]: the run loop restarts the
//! source and writes a `sensor` alert, since an attacker who blinds the sensor is what
//! it must not miss.

use crate::record::SourceEvent;
use crossbeam_channel::{Sender, TrySendError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

/// What the run loop needs from a running live source.
pub trait LiveSource {
    /// The source's own figures for the stats line (events by kind, losses, ...).
    fn stats(&self) -> serde_json::Value;
    /// Stops producing events; returns once the source has let go of its sink, with
    /// its final figures (taken after its last event, so they count every one).
    fn stop(self: Box<Self>) -> serde_json::Value;
    /// Set when this source runs in place of a better one that could not start.
    fn fallback(&self) -> Option<Fallback> {
        None
    }
}

/// A source running in place of the preferred one (Linux: the process connector where
/// eBPF cannot run), and why: the run loop writes it to the output at once
/// ([`Fallback::sensor_line`]) and counts it in the stats line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fallback {
    pub running: &'static str,
    pub instead_of: &'static str,
    pub reason: String,
}

pub const FALLBACK_RULE_ID: &str = "spawnwatch.source-fallback";

impl Fallback {
    /// A `sensor` line for the SIEM: the sensor sees less than it could.
    pub fn sensor_line(&self) -> String {
        let now = chrono::Utc::now();
        serde_json::json!({
            "kind": "sensor",
            "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "hostname": crate::host::hostname(),
            "rule": {
                "id": FALLBACK_RULE_ID,
                "title": "The live source is a fallback: processes that exit at once may be seen without their command line",
                "severity": "medium",
                "attack": [],
            },
            "source": {
                "session": self.running,
                "state": "fallback",
                "instead_of": self.instead_of,
                "reason": self.reason,
            },
        })
        .to_string()
    }
}

/// A Linux source's reader thread and the flag that asks it to stop: stopped and
/// joined on [`ReaderThread::stop`] or when dropped.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub struct ReaderThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
impl ReaderThread {
    /// Runs `read` on a thread named `name`; `read` returns once the flag it is given
    /// is set (its waits are bounded, so it notices).
    pub fn spawn(
        name: &str,
        read: impl FnOnce(Arc<AtomicBool>) + Send + 'static,
    ) -> Result<ReaderThread, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || read(flag))
            .map_err(|e| format!("starting the {name} reader thread: {e}"))?;
        Ok(ReaderThread {
            stop,
            thread: Some(thread),
        })
    }

    /// Asks the reader to stop and waits until it has.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ReaderThread {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Counters a live source and the pipeline update; read for the stats line.
#[derive(Debug, Default)]
pub struct LiveCounters {
    /// Events handed to the pipeline.
    pub sent: AtomicU64,
    /// Events dropped because the channel was full.
    pub dropped: AtomicU64,
}

/// A part of a live source stopped producing events while it was meant to run.
#[derive(Clone, Debug)]
pub struct SourceEnd {
    /// Which part: an ETW session's name, `proc-connector`.
    pub part: String,
    /// Why, as far as the source knows (the error, or "stopped from outside").
    pub reason: String,
    /// When it stopped: the sensor has been blind since.
    pub at: Instant,
}

/// The sending end a live source pushes its events into.
#[derive(Clone, Debug)]
pub struct LiveSink {
    tx: Sender<SourceEvent>,
    counters: Arc<LiveCounters>,
    ends: Option<Sender<SourceEnd>>,
}

impl LiveSink {
    pub fn new(tx: Sender<SourceEvent>, counters: Arc<LiveCounters>) -> LiveSink {
        LiveSink {
            tx,
            counters,
            ends: None,
        }
    }

    /// Where [`LiveSink::ended`] reports go (the run loop).
    pub fn reporting_ends_to(self, ends: Sender<SourceEnd>) -> LiveSink {
        LiveSink {
            ends: Some(ends),
            ..self
        }
    }

    /// Reports that `part` stopped on its own. Without a listener the report goes to
    /// stderr, so it is never silent.
    pub fn ended(&self, part: &str, reason: &str) {
        let end = SourceEnd {
            part: part.to_string(),
            reason: reason.to_string(),
            at: Instant::now(),
        };
        let heard = self
            .ends
            .as_ref()
            .is_some_and(|ends| ends.send(end).is_ok());
        if !heard {
            eprintln!("spawnwatch: {part} stopped: {reason}");
        }
    }

    /// Hands an event over without blocking. Returns false when the pipeline has shut
    /// down, so the source can stop; a full channel counts a drop and returns true.
    pub fn push(&self, event: SourceEvent) -> bool {
        match self.tx.try_send(event) {
            Ok(()) => {
                self.counters.sent.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Full(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_channel_drops_and_counts_instead_of_blocking() {
        let (tx, rx) = crossbeam_channel::bounded(2);
        let counters = Arc::new(LiveCounters::default());
        let sink = LiveSink::new(tx, counters.clone());
        for pid in 0..5 {
            assert!(sink.push(SourceEvent::created(pid, 1, "sh")));
        }
        assert_eq!(counters.sent.load(Ordering::Relaxed), 2);
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 3);
        drop(rx);
        assert!(
            !sink.push(SourceEvent::created(9, 1, "sh")),
            "a closed pipeline tells the source to stop"
        );
    }
}
