//! Stop and reload requests as flags the run loop polls: Ctrl+C and SIGTERM (and, on
//! Windows, Ctrl+Break and closing the console, logging off or shutting down) stop the
//! sensor cleanly; SIGHUP reloads the rules and reopens the output files (log
//! rotation). A second Ctrl+C ends the process at once, for when a clean stop hangs.
//!
//! Windows ends a console process as soon as its handler returns from a close, log-off
//! or shutdown event (and about 5 s after the event in any case), so for those three
//! the handler sets the stop flag and then waits, up to [`CLOSE_GRACE`], until the run
//! has drained and flushed ([`Signals::finished`]). The `ctrlc` crate returns at once,
//! which lost every event still buffered and left the ETW sessions running.

use crate::sink::Hangups;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
pub struct Signals {
    pub stop: Arc<AtomicBool>,
    pub reload: Arc<AtomicBool>,
    /// Set when the run has drained and flushed: what a console close waits for.
    pub finished: Arc<Finished>,
    /// SIGHUPs so far: the outputs reopen their files on each (log rotation).
    pub hangups: Hangups,
}

/// A one-way flag that can be waited on.
#[derive(Default)]
pub struct Finished {
    done: Mutex<bool>,
    changed: Condvar,
}

impl Finished {
    pub fn set(&self) {
        if let Ok(mut done) = self.done.lock() {
            *done = true;
        }
        self.changed.notify_all();
    }

    /// Waits until set, at most `limit`; true if it was set.
    #[cfg_attr(not(windows), allow(dead_code))]
    pub fn wait(&self, limit: Duration) -> bool {
        let Ok(done) = self.done.lock() else {
            return false;
        };
        self.changed
            .wait_timeout_while(done, limit, |done| !*done)
            .is_ok_and(|(done, _)| *done)
    }
}

// The console handling is Windows' only, named and kept here so Linux tests it.
/// The console control events (wincon.h).
#[cfg_attr(not(windows), allow(dead_code))]
pub const CTRL_C_EVENT: u32 = 0;
#[cfg_attr(not(windows), allow(dead_code))]
pub const CTRL_BREAK_EVENT: u32 = 1;
#[cfg_attr(not(windows), allow(dead_code))]
pub const CTRL_CLOSE_EVENT: u32 = 2;
#[cfg_attr(not(windows), allow(dead_code))]
pub const CTRL_LOGOFF_EVENT: u32 = 5;
#[cfg_attr(not(windows), allow(dead_code))]
pub const CTRL_SHUTDOWN_EVENT: u32 = 6;

/// How long a close, log-off or shutdown event waits for the drain: inside the 5 s
/// after which Windows ends the process anyway.
#[cfg_attr(not(windows), allow(dead_code))]
pub const CLOSE_GRACE: Duration = Duration::from_millis(4500);

#[cfg_attr(not(windows), allow(dead_code))]
impl Signals {
    /// Handles a console control event as the Windows handler does; false for an event
    /// it does not know (the next handler, or Windows' default, takes it). `exit` ends
    /// the process (a second Ctrl+C or Ctrl+Break).
    pub fn console_event(&self, event: u32, grace: Duration, exit: impl FnOnce()) -> bool {
        match event {
            CTRL_C_EVENT | CTRL_BREAK_EVENT => {
                if self.stop.swap(true, Ordering::Relaxed) {
                    exit();
                }
                true
            }
            CTRL_CLOSE_EVENT | CTRL_LOGOFF_EVENT | CTRL_SHUTDOWN_EVENT => {
                self.stop_and_wait(grace);
                true
            }
            _ => false,
        }
    }

    /// The process is about to be ended: stops the run and waits, at most `grace`,
    /// until it has drained and flushed.
    pub fn stop_and_wait(&self, grace: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        self.finished.wait(grace);
    }
}

#[cfg(unix)]
pub fn install() -> Result<Signals, String> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use signal_hook::flag;
    let signals = Signals::default();
    let fail = |e: std::io::Error| format!("cannot install signal handlers: {e}");
    for signal in [SIGINT, SIGTERM] {
        flag::register_conditional_shutdown(signal, 130, signals.stop.clone()).map_err(fail)?;
        flag::register(signal, signals.stop.clone()).map_err(fail)?;
    }
    flag::register(SIGHUP, signals.reload.clone()).map_err(fail)?;
    count_hangups(&signals.hangups).map_err(fail)?;
    Ok(signals)
}

/// The signals the console handler acts on (one per process, as the handler is).
#[cfg(windows)]
static CONSOLE: std::sync::OnceLock<Signals> = std::sync::OnceLock::new();

/// Called by Windows on a thread of its own for each console control event.
#[cfg(windows)]
unsafe extern "system" fn console_handler(event: u32) -> windows::Win32::Foundation::BOOL {
    let handled = CONSOLE
        .get()
        .is_some_and(|s| s.console_event(event, CLOSE_GRACE, || std::process::exit(130)));
    handled.into()
}

/// Counts SIGHUPs in `hangups` (and no longer lets one end the process).
#[cfg(unix)]
pub fn count_hangups(hangups: &Hangups) -> std::io::Result<()> {
    let hangups = hangups.clone();
    // SAFETY: the handler does one atomic add, which is async-signal-safe.
    unsafe {
        signal_hook::low_level::register(signal_hook::consts::SIGHUP, move || {
            hangups.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
    }?;
    Ok(())
}

/// No SIGHUP here.
#[cfg(not(unix))]
pub fn count_hangups(_: &Hangups) -> std::io::Result<()> {
    Ok(())
}

#[cfg(windows)]
pub fn install() -> Result<Signals, String> {
    use windows::Win32::System::Console::SetConsoleCtrlHandler;
    let signals = CONSOLE.get_or_init(Signals::default).clone();
    // SAFETY: the handler is a plain function that lives as long as the process.
    unsafe { SetConsoleCtrlHandler(Some(console_handler), true) }
        .map_err(|e| format!("cannot install the console control handler: {e}"))?;
    // Log-off and shutdown reach this process as window messages, not console events.
    if let Err(e) = crate::end_session::watch(&signals) {
        eprintln!("spawnwatch: warning: {e}: a log-off or shutdown will end the sensor without its final flush");
    }
    Ok(signals)
}

#[cfg(not(any(unix, windows)))]
pub fn install() -> Result<Signals, String> {
    Ok(Signals::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Runs `console_event` on a thread of its own, as Windows does; the receiver gets
    /// its answer when it returns.
    fn deliver(signals: &Signals, event: u32) -> crossbeam_channel::Receiver<bool> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let signals = signals.clone();
        std::thread::spawn(move || {
            let handled = signals.console_event(event, Duration::from_secs(60), || {});
            let _ = tx.send(handled);
        });
        rx
    }

    /// Waits (bounded) until the stop flag is set.
    fn stop_is_set(signals: &Signals) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !signals.stop.load(Ordering::Relaxed) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::yield_now();
        }
        true
    }

    #[test]
    fn ctrl_c_stops_and_a_second_one_exits() {
        let signals = Signals::default();
        let mut exits = 0;
        assert!(signals.console_event(CTRL_C_EVENT, CLOSE_GRACE, || exits += 1));
        assert!(signals.stop.load(Ordering::Relaxed));
        assert_eq!(exits, 0, "the first Ctrl+C stops cleanly");
        assert!(signals.console_event(CTRL_BREAK_EVENT, CLOSE_GRACE, || exits += 1));
        assert_eq!(exits, 1, "a second one ends at once");
        assert!(!signals.console_event(3, CLOSE_GRACE, || exits += 1));
    }

    #[test]
    fn close_logoff_and_shutdown_wait_until_the_run_has_flushed() {
        for event in [CTRL_CLOSE_EVENT, CTRL_LOGOFF_EVENT, CTRL_SHUTDOWN_EVENT] {
            let signals = Signals::default();
            let returned = deliver(&signals, event);
            assert!(stop_is_set(&signals), "event {event} sets the stop flag");
            // Returning now would let Windows end the process before the drain.
            assert!(returned.try_recv().is_err(), "event {event} returned early");
            signals.finished.set();
            assert_eq!(
                returned.recv_timeout(Duration::from_secs(10)),
                Ok(true),
                "event {event} returns once the run has flushed"
            );
        }
    }

    #[test]
    fn a_close_gives_up_waiting_after_its_grace() {
        let signals = Signals::default();
        assert!(signals.console_event(CTRL_CLOSE_EVENT, Duration::from_millis(1), || {}));
        assert!(signals.stop.load(Ordering::Relaxed));
    }

    #[test]
    #[cfg(windows)]
    fn the_windows_handler_is_installed_and_answers_events() {
        use windows::Win32::System::Console as console;
        assert_eq!(
            [CTRL_C_EVENT, CTRL_BREAK_EVENT, CTRL_CLOSE_EVENT],
            [
                console::CTRL_C_EVENT,
                console::CTRL_BREAK_EVENT,
                console::CTRL_CLOSE_EVENT
            ]
        );
        assert_eq!(
            [CTRL_LOGOFF_EVENT, CTRL_SHUTDOWN_EVENT],
            [console::CTRL_LOGOFF_EVENT, console::CTRL_SHUTDOWN_EVENT]
        );
        let signals = install().unwrap();
        // SAFETY: the handler takes any event code.
        assert!(unsafe { console_handler(CTRL_C_EVENT) }.as_bool());
        assert!(signals.stop.load(Ordering::Relaxed));
        let (tx, rx) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            // SAFETY: as above.
            let _ = tx.send(unsafe { console_handler(CTRL_CLOSE_EVENT) }.as_bool());
        });
        assert!(rx.try_recv().is_err(), "returned before the run flushed");
        signals.finished.set();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(true));
    }
}
