//! Stop and reload requests as flags the run loop polls: Ctrl+C and SIGTERM (and, on
//! Windows, closing the console) stop the sensor cleanly; SIGHUP reloads the rules and
//! reopens the output files (log rotation). A second Ctrl+C ends the process at once,
//! for when a clean stop hangs.

use crate::sink::Hangups;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct Signals {
    pub stop: Arc<AtomicBool>,
    pub reload: Arc<AtomicBool>,
    pub hangups: Hangups,
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
    use std::sync::atomic::Ordering;
    let signals = Signals::default();
    let stop = signals.stop.clone();
    ctrlc::set_handler(move || {
        if stop.swap(true, Ordering::Relaxed) {
            std::process::exit(130);
        }
    })
    .map_err(|e| format!("cannot install the Ctrl+C handler: {e}"))?;
    Ok(signals)
}

#[cfg(not(any(unix, windows)))]
pub fn install() -> Result<Signals, String> {
    Ok(Signals::default())
}
