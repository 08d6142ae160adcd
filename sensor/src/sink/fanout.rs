//! Several destinations (`--output` repeated, or any network destination): each has a
//! thread and a [`Delivery`] of its own, so a slow or failing one never holds back
//! another, nor the pipeline. The pipeline's writer hands each burst of lines to every
//! destination's channel; a network destination's thread only appends to its spool
//! (its sending thread is another, see [`super::forward`]), so only a slow disk can
//! make a destination's channel fill up, as a slow file output does.

use super::delivery::Figures;
use super::forward::SendFigures;
use super::spool::SpoolFigures;
use super::{Delivery, Line, Sink, Stopped, Tally};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use serde_json::{json, Value};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Bursts waiting for one destination's thread.
const WAITING_BURSTS: usize = 64;
/// How often an idle destination's thread retries and checks for log rotation.
const WAKE: Duration = Duration::from_secs(1);

/// One destination's figures for the stats line.
#[derive(Debug)]
pub struct OutputFigures {
    pub name: String,
    /// Its [`Delivery`]: for a network destination, the appending to the spool.
    pub delivery: Arc<Figures>,
    pub network: Option<(Arc<SpoolFigures>, Arc<SendFigures>)>,
}

impl OutputFigures {
    /// `sent`, `queued`, `spooled_bytes`, `failures`, `dropped`, `last_success`.
    pub fn to_json(&self) -> Value {
        let load = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
        let d = &self.delivery;
        match &self.network {
            None => json!({
                "sent": load(&d.written),
                "queued": load(&d.unwritten),
                "spooled_bytes": 0,
                "failures": load(&d.write_errors),
                "dropped": load(&d.lost),
                "last_success": null,
            }),
            Some((spool, send)) => {
                let last = send.last_success_ms.load(Ordering::Relaxed);
                let last = (last > 0)
                    .then(|| chrono::DateTime::from_timestamp_millis(last))
                    .flatten()
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
                json!({
                    "sent": load(&spool.sent),
                    "queued": load(&spool.queued) + load(&d.unwritten),
                    "spooled_bytes": load(&spool.bytes),
                    "failures": load(&send.failures) + load(&d.write_errors),
                    "dropped": self.dropped(),
                    "last_success": last,
                })
            }
        }
    }

    /// Lines dropped: lost on the way to the spool, dropped by a full spool, refused
    /// for good by the destination.
    pub fn dropped(&self) -> u64 {
        let lost = self.delivery.lost.load(Ordering::Relaxed);
        self.network.as_ref().map_or(lost, |(spool, send)| {
            lost + spool.dropped.load(Ordering::Relaxed) + send.rejected.load(Ordering::Relaxed)
        })
    }
}

struct Destination {
    lines: Option<Sender<Vec<Line>>>,
    thread: Option<JoinHandle<Tally>>,
    figures: Arc<Figures>,
}

impl Destination {
    fn ended(&self) -> bool {
        self.lines.is_none() || self.figures.ended.load(Ordering::Relaxed)
    }
}

pub struct Fanout {
    name: String,
    destinations: Vec<Destination>,
}

impl Fanout {
    /// Starts a thread per delivery.
    pub fn start(deliveries: Vec<Delivery>) -> Fanout {
        let name = format!("{} outputs", deliveries.len());
        let destinations = deliveries
            .into_iter()
            .enumerate()
            .map(|(i, delivery)| {
                let (lines, from_writer) = bounded(WAITING_BURSTS);
                let figures = delivery.figures();
                let thread = std::thread::Builder::new()
                    .name(format!("output-{i}"))
                    .spawn(move || deliver(&from_writer, delivery))
                    .expect("spawn output thread");
                Destination {
                    lines: Some(lines),
                    thread: Some(thread),
                    figures,
                }
            })
            .collect();
        Fanout { name, destinations }
    }
}

/// A destination's thread: queues what comes, writes it out at the end of each burst.
fn deliver(from_writer: &Receiver<Vec<Line>>, mut delivery: Delivery) -> Tally {
    loop {
        match from_writer.recv_timeout(WAKE) {
            Ok(lines) => {
                for line in lines {
                    delivery.push(line.text, line.counted);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        delivery.maintain();
        if from_writer.is_empty() {
            delivery.flush();
        }
    }
    delivery.finish()
}

fn copy(lines: &[Line]) -> Vec<Line> {
    lines
        .iter()
        .map(|l| Line {
            text: l.text.clone(),
            counted: l.counted,
        })
        .collect()
}

impl Sink for Fanout {
    fn name(&self) -> &str {
        &self.name
    }

    /// Hands the lines to every destination still read; an error only once every
    /// destination's reader is gone.
    fn write(&mut self, lines: &[Line]) -> Result<(), Stopped> {
        for destination in &mut self.destinations {
            if destination.ended() || lines.is_empty() {
                continue;
            }
            let sent = destination.lines.as_ref().map(|tx| tx.send(copy(lines)));
            if !matches!(sent, Some(Ok(()))) {
                // Its thread is gone: `close` reports how.
                destination.lines = None;
            }
        }
        if self.destinations.iter().all(Destination::ended) {
            return Err(Stopped {
                delivered: 0,
                error: io::ErrorKind::BrokenPipe.into(),
            });
        }
        Ok(())
    }

    fn ended(&self, error: &io::Error) -> bool {
        error.kind() == io::ErrorKind::BrokenPipe
    }

    /// Lets every destination write (and send) what it has, and waits for it.
    fn close(&mut self) -> u64 {
        for destination in &mut self.destinations {
            destination.lines = None;
        }
        let mut lost = 0;
        for destination in &mut self.destinations {
            if let Some(thread) = destination.thread.take() {
                match thread.join() {
                    Ok(tally) => lost += tally.lost,
                    Err(_) => {
                        eprintln!("spawnwatch: an output thread failed; what it held is lost");
                        lost += destination.figures.unwritten.load(Ordering::Relaxed);
                    }
                }
            }
        }
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::memory::lines;
    use crate::sink::{Hangups, Memory};

    fn delivery(memory: &Memory) -> Delivery {
        Delivery::new(Box::new(memory.clone()), "alerts", Hangups::default())
    }

    /// One destination fails: the other gets every line meanwhile, and the failing one
    /// gets its lines once it works again.
    #[test]
    fn a_failing_destination_holds_back_no_other() {
        let (good, bad) = (Memory::default(), Memory::default());
        bad.fail_with(Some(io::ErrorKind::StorageFull));
        let failures = bad.failures();
        let mut fanout = Fanout::start(vec![delivery(&good), delivery(&bad)]);
        fanout.write(&lines(&["1", "2"])).unwrap();
        assert!(failures.recv_timeout(Duration::from_secs(30)).is_ok());
        fanout.write(&lines(&["3"])).unwrap();
        bad.fail_with(None);
        assert_eq!(fanout.close(), 0);
        assert_eq!(good.lines(), ["1", "2", "3"]);
        assert_eq!(bad.lines(), ["1", "2", "3"]);
    }

    /// The stats line's figures of a network destination: the spool's, the sender's
    /// and those of the way into the spool, added up.
    #[test]
    fn a_network_destination_reports_sent_queued_spooled_failures_dropped_last_success() {
        let (delivery, spool, send) = (
            Arc::new(Figures::default()),
            Arc::new(SpoolFigures::default()),
            Arc::new(SendFigures::default()),
        );
        let set = |figure: &std::sync::atomic::AtomicU64, n| figure.store(n, Ordering::Relaxed);
        set(&delivery.unwritten, 1);
        set(&delivery.write_errors, 1);
        set(&delivery.lost, 1);
        set(&spool.sent, 5);
        set(&spool.queued, 3);
        set(&spool.bytes, 100);
        set(&spool.dropped, 2);
        set(&send.failures, 4);
        set(&send.rejected, 1);
        send.last_success_ms
            .store(1_764_500_000_123, Ordering::Relaxed);
        let figures = OutputFigures {
            name: "syslog+tls://siem:6514".into(),
            delivery,
            network: Some((spool, send)),
        };
        assert_eq!(
            figures.to_json(),
            json!({"sent": 5, "queued": 4, "spooled_bytes": 100, "failures": 5, "dropped": 4,
                   "last_success": "2025-11-30T10:53:20.123Z"})
        );
    }

    #[test]
    fn the_fanout_ends_only_when_every_reader_is_gone() {
        let (open, closed) = (Memory::default(), Memory::default());
        closed.fail_with(Some(io::ErrorKind::BrokenPipe));
        let failures = closed.failures();
        let mut fanout = Fanout::start(vec![delivery(&open), delivery(&closed)]);
        fanout.write(&lines(&["1"])).unwrap();
        failures.recv_timeout(Duration::from_secs(30)).unwrap();
        open.fail_with(Some(io::ErrorKind::BrokenPipe));
        let failures = open.failures();
        fanout.write(&lines(&["2"])).unwrap();
        failures.recv_timeout(Duration::from_secs(30)).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !fanout.destinations.iter().all(Destination::ended) {
            assert!(std::time::Instant::now() < deadline, "never ended");
            std::thread::yield_now();
        }
        let ended = fanout.write(&lines(&["3"])).unwrap_err();
        assert!(fanout.ended(&ended.error));
        fanout.close();
    }
}
