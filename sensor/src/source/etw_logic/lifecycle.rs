//! The life cycle of one ETW session, kept apart from ferrisetw so that its order is
//! tested on every platform (ferrisetw 1.2.0's own order is what it fixes).
//!
//! **Start.** ferrisetw's `start()` calls StartTrace, then EnableTraceEx2 and OpenTrace;
//! when one of the last two fails it returns the error and leaves the session running
//! (a host has 8 system-logger slots, and a crash-looping sensor would use them up). So
//! every failed start stops the session by name.
//!
//! **Stop.** ferrisetw's `stop()` and `Drop` remove the callback context before
//! CloseTrace and stop the session last, so the events still in ETW's buffers are
//! dropped; and its callback checks the context, then uses it without holding the lock
//! (ferrisetw issue #45, race 1): a callback running during `stop()` can touch freed
//! memory. Here the session is stopped by name first (ControlTrace STOP flushes its
//! buffers to the consumer), its processing thread is waited for (ProcessTrace returns
//! once it has delivered them), and only then is the ferrisetw trace dropped, when no
//! callback can run any more. A thread that does not end in time keeps its trace alive
//! (leaked) rather than freed under a running callback.
//!
//! **End.** A processing thread that returns while nobody asked it to (the session was
//! stopped from outside: `logman stop NAME -ets`, or ETW failed) reports it, so the run
//! loop can restart the source and tell the SIEM.

use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The library's handle on a started session (ferrisetw's `UserTrace` or
/// `KernelTrace`); dropping it closes the consumer.
pub type Trace = Box<dyn Any>;
/// The body of a processing thread: ferrisetw's `process_from_handle`, which returns
/// when the session stops.
pub type Processing = Box<dyn FnOnce() -> Result<(), String> + Send>;
/// Told why a session ended on its own.
pub type OnEnd = Box<dyn FnOnce(String) + Send>;

/// The calls on a session by name (ETW's ControlTrace; a fake in tests).
#[derive(Clone)]
pub struct Control {
    /// ControlTrace(STOP) by name; true if a session of that name was running.
    pub stop_by_name: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    /// How long a stop waits for ProcessTrace to deliver what ETW had buffered.
    pub drain_timeout: Duration,
}

/// How long a stop waits for a session's last events by default: well inside the 5 s
/// Windows gives a console that is closing.
pub const DRAIN_TIMEOUT: Duration = Duration::from_millis(1500);

/// A started session with its processing thread. Dropping it stops it in the safe
/// order (see the module doc).
pub struct Session {
    name: String,
    control: Control,
    trace: Option<Trace>,
    /// Disconnected when the processing thread has returned.
    processed: Receiver<()>,
    /// Set before we stop the session: its end is then no news.
    closing: Arc<AtomicBool>,
}

impl Session {
    /// Starts a session with `start` (StartTrace, EnableTraceEx2, OpenTrace) and runs
    /// its processing on a thread of its own. On any error the session is stopped by
    /// name before the error is returned.
    pub fn start(
        name: &str,
        control: &Control,
        start: impl FnOnce() -> Result<(Trace, Processing), String>,
        on_end: OnEnd,
    ) -> Result<Session, String> {
        let started = start().and_then(|(trace, processing)| {
            let closing = Arc::new(AtomicBool::new(false));
            let processed = spawn(name, processing, closing.clone(), on_end)?;
            Ok(Session {
                name: name.to_string(),
                control: control.clone(),
                trace: Some(trace),
                processed,
                closing,
            })
        });
        if started.is_err() {
            (control.stop_by_name)(name);
        }
        started
    }

    /// Asks ETW to stop the session (flushing its buffers to us); returns at once. The
    /// drop that follows waits for the last events.
    pub fn stop(&self) {
        if !self.closing.swap(true, Ordering::SeqCst) {
            (self.control.stop_by_name)(&self.name);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop();
        let trace = self.trace.take();
        match self.processed.recv_timeout(self.control.drain_timeout) {
            Err(RecvTimeoutError::Timeout) => {
                eprintln!(
                    "spawnwatch: ETW session {} did not deliver its last events within {} ms; left open",
                    self.name,
                    self.control.drain_timeout.as_millis()
                );
                std::mem::forget(trace);
            }
            Ok(()) | Err(RecvTimeoutError::Disconnected) => drop(trace),
        }
    }
}

/// Runs `processing` on a thread named after the session; the receiver disconnects
/// when it returns.
fn spawn(
    name: &str,
    processing: Processing,
    closing: Arc<AtomicBool>,
    on_end: OnEnd,
) -> Result<Receiver<()>, String> {
    let (done, processed) = crossbeam_channel::bounded::<()>(0);
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let result = processing();
            if !closing.load(Ordering::SeqCst) {
                on_end(end_reason(result));
            }
            drop(done);
        })
        .map_err(|e| format!("cannot start the processing thread of ETW session {name}: {e}"))?;
    Ok(processed)
}

fn end_reason(result: Result<(), String>) -> String {
    match result {
        Ok(()) => "the ETW session was stopped from outside (ControlTrace STOP, e.g. `logman stop NAME -ets`)".to_string(),
        Err(e) => format!("ETW stopped delivering events (ProcessTrace: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::{Receiver, Sender};
    use std::collections::HashMap;
    use std::sync::atomic::AtomicU32;
    use std::sync::Mutex;

    /// ETW as ferrisetw sees it: a session's processing delivers what was buffered
    /// when the session stops, through the callback context the trace object owns.
    #[derive(Clone, Default)]
    struct FakeEtw {
        log: Arc<Mutex<Vec<String>>>,
        /// Per running session: wakes its processing (a stop, from us or outside).
        running: Arc<Mutex<HashMap<String, Sender<()>>>>,
        delivered: Arc<AtomicU32>,
        lost: Arc<AtomicU32>,
    }

    /// Dropping it is CloseTrace: callbacks after this find no context.
    struct FakeTrace {
        name: String,
        context: Arc<AtomicBool>,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl Drop for FakeTrace {
        fn drop(&mut self) {
            self.context.store(false, Ordering::SeqCst);
            self.log
                .lock()
                .unwrap()
                .push(format!("close {}", self.name));
        }
    }

    /// Events in ETW's buffers when a session is stopped.
    const BUFFERED: u32 = 3;

    impl FakeEtw {
        fn note(&self, what: String) {
            self.log.lock().unwrap().push(what);
        }

        fn log(&self) -> Vec<String> {
            self.log.lock().unwrap().clone()
        }

        fn control(&self) -> Control {
            let etw = self.clone();
            Control {
                stop_by_name: Arc::new(move |name| {
                    etw.note(format!("stop {name}"));
                    let running = etw.running.lock().unwrap().remove(name);
                    running.is_some_and(|wake| wake.send(()).is_ok())
                }),
                drain_timeout: Duration::from_secs(10),
            }
        }

        /// A start that succeeds; its processing waits for the stop, then delivers
        /// the buffered events to whatever context is still there.
        fn start(&self, name: &str) -> Result<(Trace, Processing), String> {
            self.note(format!("start {name}"));
            let (wake, stopped): (Sender<()>, Receiver<()>) = crossbeam_channel::bounded(1);
            self.running.lock().unwrap().insert(name.to_string(), wake);
            let context = Arc::new(AtomicBool::new(true));
            let trace = FakeTrace {
                name: name.to_string(),
                context: context.clone(),
                log: self.log.clone(),
            };
            let etw = self.clone();
            let session = name.to_string();
            let processing: Processing = Box::new(move || {
                let _ = stopped.recv();
                for _ in 0..BUFFERED {
                    let counter = if context.load(Ordering::SeqCst) {
                        &etw.delivered
                    } else {
                        &etw.lost
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                etw.note(format!("processed {session}"));
                Ok(())
            });
            Ok((Box::new(trace), processing))
        }
    }

    fn ends() -> (OnEnd, Receiver<String>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (
            Box::new(move |reason| {
                let _ = tx.send(reason);
            }),
            rx,
        )
    }

    #[test]
    fn a_stop_delivers_what_etw_buffered_before_the_trace_is_closed() {
        let etw = FakeEtw::default();
        let (on_end, ended) = ends();
        let session = Session::start("s", &etw.control(), || etw.start("s"), on_end).unwrap();
        drop(session);
        assert_eq!(etw.log(), ["start s", "stop s", "processed s", "close s"]);
        assert_eq!(etw.delivered.load(Ordering::SeqCst), BUFFERED);
        assert_eq!(etw.lost.load(Ordering::SeqCst), 0);
        assert!(ended.try_recv().is_err(), "our own stop is no news");
    }

    #[test]
    fn both_sessions_are_stopped_before_either_is_waited_for() {
        let etw = FakeEtw::default();
        let control = etw.control();
        let sessions: Vec<Session> = ["a", "b"]
            .iter()
            .map(|name| Session::start(name, &control, || etw.start(name), ends().0).unwrap())
            .collect();
        // As the ETW source stops: both first, so they drain at the same time.
        sessions.iter().for_each(Session::stop);
        drop(sessions);
        let log = etw.log();
        let order: Vec<&str> = log
            .iter()
            .map(String::as_str)
            .filter(|e| e.starts_with("stop") || e.starts_with("close"))
            .collect();
        assert_eq!(order, ["stop a", "stop b", "close a", "close b"]);
        assert_eq!(etw.delivered.load(Ordering::SeqCst), 2 * BUFFERED);
    }

    #[test]
    fn a_failed_start_stops_the_session_it_may_have_left_running() {
        let etw = FakeEtw::default();
        let started = Session::start(
            "s",
            &etw.control(),
            || {
                // StartTrace succeeded, EnableTraceEx2 did not: ferrisetw returns the
                // error with the session still running.
                etw.note("start s".to_string());
                Err("ETW session s did not start: Windows error 1450".to_string())
            },
            ends().0,
        );
        assert!(started.is_err());
        assert_eq!(etw.log(), ["start s", "stop s"]);
    }

    #[test]
    fn a_session_stopped_from_outside_is_reported_once() {
        let etw = FakeEtw::default();
        let control = etw.control();
        let (on_end, ended) = ends();
        let session = Session::start("s", &control, || etw.start("s"), on_end).unwrap();
        // `logman stop s -ets`.
        assert!((control.stop_by_name)("s"));
        let reason = ended.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(reason.contains("stopped from outside"), "{reason}");
        drop(session);
        assert!(ended.try_recv().is_err());
        assert_eq!(etw.log().last().map(String::as_str), Some("close s"));
    }

    #[test]
    fn a_processing_error_is_reported_with_the_error() {
        let etw = FakeEtw::default();
        let (on_end, ended) = ends();
        let start = || -> Result<(Trace, Processing), String> {
            Ok((
                Box::new(()),
                Box::new(|| Err("Windows error 6".to_string())),
            ))
        };
        let session = Session::start("s", &etw.control(), start, on_end).unwrap();
        let reason = ended.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(reason.contains("ProcessTrace: Windows error 6"), "{reason}");
        drop(session);
    }

    #[test]
    fn a_processing_thread_that_does_not_end_keeps_its_trace() {
        let etw = FakeEtw::default();
        let control = Control {
            stop_by_name: Arc::new(|_| true),
            drain_timeout: Duration::from_millis(1),
        };
        let (release, hold) = crossbeam_channel::bounded::<()>(0);
        let context = Arc::new(AtomicBool::new(true));
        let trace = FakeTrace {
            name: "s".into(),
            context: context.clone(),
            log: etw.log.clone(),
        };
        let start = move || -> Result<(Trace, Processing), String> {
            let processing: Processing = Box::new(move || {
                let _ = hold.recv();
                Ok(())
            });
            Ok((Box::new(trace), processing))
        };
        drop(Session::start("s", &control, start, ends().0).unwrap());
        assert!(
            context.load(Ordering::SeqCst),
            "not closed under a running callback"
        );
        drop(release);
    }
}
