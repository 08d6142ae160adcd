//! A service's life as its service manager sees it, apart from the manager's API so
//! that it is tested on every platform: what to report when, what each control does,
//! and the stop sequence. The Windows glue (`windows.rs`) only translates.
//!
//! ```text
//! start pending --(the source runs)--> running --(Stop, Shutdown, Preshutdown)--> stop pending --> stopped
//!       \--------------------------(the run failed)----------------------------------------------^
//! ```
//!
//! A stop control does what Ctrl+C does: it sets the run's stop flag and returns at
//! once (a control handler must not block). The run then stops the source, drains what
//! it sent, flushes every alert and writes the final stats line; meanwhile the stop
//! sequence reports progress (a new checkpoint every [`PROGRESS_EVERY`]) so the manager
//! knows it is not hung, for at most [`STOP_BUDGET`]. Then `stopped`, with the run's
//! outcome: a failure gets a service-specific exit code, which is what makes Windows
//! apply the recovery actions (see `windows.rs`).

use crate::signals::Signals;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a start may take before the manager gives up: rules, ETW sessions, the
/// process snapshot.
pub const START_WAIT_HINT: Duration = Duration::from_secs(30);
/// How long the manager waits for the next checkpoint while the sensor stops.
pub const STOP_WAIT_HINT: Duration = Duration::from_secs(10);
/// How often a stopping service reports progress.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// The longest a stop is reported as progressing; a drain that takes longer has hung,
/// and the manager is let to see it. It is also the preshutdown time asked for.
pub const STOP_BUDGET: Duration = Duration::from_secs(20);
/// The service-specific exit code of a failed run: `spawnwatch run`'s exit status.
pub const FAILED: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    StartPending,
    Running,
    StopPending,
    Stopped,
}

/// One status report to the service manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub state: State,
    /// Whether Stop, Shutdown and Preshutdown are accepted (only while running).
    pub accepts_stop: bool,
    /// Progress within a pending state.
    pub checkpoint: u32,
    pub wait_hint: Duration,
    /// The service-specific exit code, once stopped after a failure.
    pub failure: Option<u32>,
}

impl Status {
    fn new(state: State) -> Status {
        Status {
            state,
            accepts_stop: state == State::Running,
            checkpoint: 0,
            wait_hint: Duration::ZERO,
            failure: None,
        }
    }
}

/// The controls a service manager sends that matter here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Stop,
    Shutdown,
    /// Windows: sent before Shutdown, with more time (the preshutdown timeout).
    Preshutdown,
    /// Asks for the current status again.
    Interrogate,
    Other,
}

/// What a control handler answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    Handled,
    NotImplemented,
}

type Report = Box<dyn Fn(&Status) + Send + Sync>;

/// The service's status, and the stop flag and drain signal of the run it drives.
pub struct Lifecycle {
    /// Held while a status is reported, so reports leave in the order they are made
    /// (a late checkpoint must never follow `stopped`).
    status: Mutex<Status>,
    report: Report,
    signals: Signals,
    /// [`PROGRESS_EVERY`] and [`STOP_BUDGET`]; shorter in tests.
    pace: (Duration, Duration),
}

impl Lifecycle {
    /// A service starting: reports start pending.
    pub fn start(signals: Signals, report: Report) -> Arc<Lifecycle> {
        let starting = Status {
            checkpoint: 1,
            wait_hint: START_WAIT_HINT,
            ..Status::new(State::StartPending)
        };
        report(&starting);
        Arc::new(Lifecycle {
            status: Mutex::new(starting),
            report,
            signals,
            pace: (PROGRESS_EVERY, STOP_BUDGET),
        })
    }

    pub fn signals(&self) -> &Signals {
        &self.signals
    }

    /// The sensor watches: running, accepting stop controls.
    pub fn running(&self) {
        self.update(|status| {
            (status.state == State::StartPending).then(|| Status::new(State::Running))
        });
    }

    /// Handles a control from the service manager; returns at once.
    pub fn control(self: &Arc<Self>, control: Control) -> Reply {
        match control {
            Control::Stop | Control::Shutdown | Control::Preshutdown => {
                self.stop();
                Reply::Handled
            }
            // The manager keeps the status last reported, which is current.
            Control::Interrogate => Reply::Handled,
            Control::Other => Reply::NotImplemented,
        }
    }

    /// The stop sequence: stop pending, the run's stop flag, then progress until the
    /// run has drained and flushed. A second request changes nothing.
    fn stop(self: &Arc<Self>) {
        let stopping = self.update(|status| {
            matches!(status.state, State::StartPending | State::Running).then(|| Status {
                checkpoint: 1,
                wait_hint: STOP_WAIT_HINT,
                ..Status::new(State::StopPending)
            })
        });
        if !stopping {
            return;
        }
        self.signals.stop.store(true, Ordering::Relaxed);
        let lifecycle = self.clone();
        let until = Instant::now() + self.pace.1;
        std::thread::spawn(move || lifecycle.report_progress(until));
    }

    fn report_progress(&self, until: Instant) {
        while !self.signals.finished.wait(self.pace.0) && Instant::now() < until {
            self.update(|status| {
                (status.state == State::StopPending).then(|| Status {
                    checkpoint: status.checkpoint + 1,
                    ..status.clone()
                })
            });
        }
    }

    /// The run has ended (drained and flushed, or failed): stopped, with its outcome.
    pub fn stopped(&self, failed: bool) {
        self.signals.finished.set();
        self.update(|status| {
            (status.state != State::Stopped).then(|| Status {
                failure: failed.then_some(FAILED),
                ..Status::new(State::Stopped)
            })
        });
    }

    /// Applies `next` to the current status and reports the result, if any; whether
    /// it did.
    fn update(&self, next: impl FnOnce(&Status) -> Option<Status>) -> bool {
        let Ok(mut status) = self.status.lock() else {
            return false;
        };
        let Some(new) = next(&status) else {
            return false;
        };
        (self.report)(&new);
        *status = new;
        true
    }
}

/// What the service runs: the sensor with the stop flag and drain signal given, calling
/// the hook once it watches; Ok(true) for a clean run.
pub type Body<'a> = Box<dyn FnOnce(Signals, Box<dyn FnOnce()>) -> Result<bool, String> + 'a>;

/// A service's whole life: runs `body`, and reports. A failure goes to `log_error`
/// (Windows: the Application event log) before the stopped status, so it is there
/// when an administrator looks.
pub fn serve(lifecycle: &Arc<Lifecycle>, body: Body, log_error: &dyn Fn(&str)) {
    let running = {
        let lifecycle = lifecycle.clone();
        Box::new(move || lifecycle.running())
    };
    let outcome = body(lifecycle.signals().clone(), running);
    if let Err(message) = &outcome {
        log_error(message);
    }
    lifecycle.stopped(!matches!(outcome, Ok(true)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::{unbounded, Receiver};

    /// A lifecycle whose reports arrive on the receiver, reporting progress every
    /// millisecond.
    fn lifecycle() -> (Arc<Lifecycle>, Receiver<Status>) {
        let (tx, rx) = unbounded();
        let lifecycle = Lifecycle::start(
            Signals::default(),
            Box::new(move |status| {
                let _ = tx.send(status.clone());
            }),
        );
        let mut lifecycle = Arc::into_inner(lifecycle).unwrap();
        lifecycle.pace = (Duration::from_millis(1), STOP_BUDGET);
        (Arc::new(lifecycle), rx)
    }

    /// The states reported so far.
    fn states(reports: &Receiver<Status>) -> Vec<State> {
        reports.try_iter().map(|s| s.state).collect()
    }

    const WHOLE_LIFE: [State; 4] = [
        State::StartPending,
        State::Running,
        State::StopPending,
        State::Stopped,
    ];

    fn next(reports: &Receiver<Status>) -> Status {
        reports
            .recv_timeout(Duration::from_secs(30))
            .expect("a status report")
    }

    #[test]
    fn start_run_stop_are_reported_in_order() {
        let (lifecycle, reports) = lifecycle();
        let starting = next(&reports);
        assert_eq!(starting.state, State::StartPending);
        assert_eq!(
            (starting.checkpoint, starting.wait_hint),
            (1, START_WAIT_HINT)
        );
        assert!(!starting.accepts_stop, "no stop while starting");
        lifecycle.running();
        let running = next(&reports);
        assert_eq!(running.state, State::Running);
        assert!(running.accepts_stop);
        assert_eq!(lifecycle.control(Control::Stop), Reply::Handled);
        let stopping = next(&reports);
        assert_eq!(stopping.state, State::StopPending);
        assert_eq!(
            (stopping.checkpoint, stopping.wait_hint),
            (1, STOP_WAIT_HINT)
        );
        assert!(
            lifecycle.signals().stop.load(Ordering::Relaxed),
            "the run is asked to stop as by Ctrl+C"
        );
        lifecycle.stopped(false);
        let stopped = next(&reports);
        assert_eq!(stopped.state, State::Stopped);
        assert_eq!(stopped.failure, None);
        assert!(lifecycle.signals().finished.wait(Duration::ZERO));
    }

    #[test]
    fn shutdown_and_preshutdown_stop_like_stop_and_a_second_one_changes_nothing() {
        for control in [Control::Shutdown, Control::Preshutdown] {
            let (lifecycle, reports) = lifecycle();
            lifecycle.running();
            assert_eq!(lifecycle.control(control), Reply::Handled);
            assert_eq!(lifecycle.control(Control::Stop), Reply::Handled);
            lifecycle.stopped(false);
            assert_eq!(states(&reports), WHOLE_LIFE, "{control:?}");
        }
    }

    #[test]
    fn interrogate_and_unknown_controls_change_nothing() {
        let (lifecycle, reports) = lifecycle();
        lifecycle.running();
        assert_eq!(lifecycle.control(Control::Interrogate), Reply::Handled);
        assert_eq!(lifecycle.control(Control::Other), Reply::NotImplemented);
        assert!(!lifecycle.signals().stop.load(Ordering::Relaxed));
        assert_eq!(reports.try_iter().count(), 2, "start pending, running");
    }

    #[test]
    fn a_slow_drain_reports_rising_checkpoints_until_it_has_flushed() {
        let (lifecycle, reports) = lifecycle();
        lifecycle.running();
        lifecycle.control(Control::Stop);
        let mut checkpoints = Vec::new();
        while checkpoints.len() < 3 {
            let status = next(&reports);
            if status.state == State::StopPending {
                checkpoints.push(status.checkpoint);
            }
        }
        assert_eq!(checkpoints, [1, 2, 3], "progress while the drain runs");
        lifecycle.stopped(false);
        let last = reports
            .iter()
            .find(|s| s.state == State::Stopped)
            .expect("stopped");
        assert_eq!(last.failure, None);
        lifecycle.report_progress(Instant::now() + STOP_BUDGET);
        lifecycle.control(Control::Stop);
        lifecycle.stopped(true);
        assert_eq!(reports.try_iter().count(), 0, "nothing after stopped");
    }

    #[test]
    fn progress_stops_at_the_budget_so_a_hung_drain_shows() {
        let (lifecycle, reports) = lifecycle();
        lifecycle.running();
        lifecycle.update(|_| {
            Some(Status {
                checkpoint: 1,
                wait_hint: STOP_WAIT_HINT,
                ..Status::new(State::StopPending)
            })
        });
        lifecycle.report_progress(Instant::now());
        assert_eq!(
            states(&reports),
            WHOLE_LIFE[..3],
            "a budget already spent reports no progress"
        );
    }

    #[test]
    fn serve_runs_the_body_reports_running_then_stopped() {
        let (lifecycle, reports) = lifecycle();
        let controlled = lifecycle.clone();
        let body: Body = Box::new(move |signals: Signals, running: Box<dyn FnOnce()>| {
            running();
            // The manager sends Stop while the sensor runs.
            controlled.control(Control::Stop);
            assert!(signals.stop.load(Ordering::Relaxed));
            Ok(true)
        });
        let logged = Mutex::new(Vec::new());
        serve(&lifecycle, body, &|m| {
            logged.lock().unwrap().push(m.to_string())
        });
        assert_eq!(states(&reports), WHOLE_LIFE);
        assert!(logged.lock().unwrap().is_empty());
    }

    #[test]
    fn a_run_that_fails_to_start_is_logged_then_stopped_with_a_failure() {
        let (lifecycle, reports) = lifecycle();
        let body: Body = Box::new(|_, _| {
            Err("ETW session spawnwatch-kernel-process did not start: access denied".into())
        });
        let logged = Mutex::new(Vec::new());
        serve(&lifecycle, body, &|m| {
            // Logged before the manager hears the service stopped.
            assert_eq!(
                reports.try_iter().last().unwrap().state,
                State::StartPending
            );
            logged.lock().unwrap().push(m.to_string());
        });
        assert_eq!(
            *logged.lock().unwrap(),
            ["ETW session spawnwatch-kernel-process did not start: access denied"]
        );
        let stopped = reports.try_iter().last().unwrap();
        assert_eq!(stopped.state, State::Stopped);
        assert_eq!(stopped.failure, Some(FAILED));
    }

    #[test]
    fn a_run_that_ends_unclean_is_a_failure_without_a_message() {
        let (lifecycle, reports) = lifecycle();
        serve(&lifecycle, Box::new(|_, _| Ok(false)), &|_| {
            panic!("nothing to log")
        });
        assert_eq!(reports.try_iter().last().unwrap().failure, Some(FAILED));
    }
}
