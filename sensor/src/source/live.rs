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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

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
