//! The service's failures in the Windows Application event log, where an administrator
//! looks (Event Viewer > Windows Logs > Application, source `spawnwatch`): a service has
//! no console, and a failure before the output exists (bad rules, no ETW access, a
//! second instance) has nowhere else to go.
//!
//! The source is registered at install with `eventcreate.exe`'s message table (event
//! ids 1 to 1000 are "%1"), as `eventcreate /SO` registers its own sources, so Event
//! Viewer shows the text as written without a message DLL of our own.

use super::SERVICE;
use windows::core::{HSTRING, PCWSTR};
use windows::Win32::System::EventLog::{
    DeregisterEventSource, RegisterEventSourceW, ReportEventW, EVENTLOG_ERROR_TYPE,
};

const SOURCES: &str = r"SYSTEM\CurrentControlSet\Services\EventLog\Application";
const MESSAGE_FILE: &str = r"%SystemRoot%\System32\EventCreate.exe";
/// Error, warning and information (EVENTLOG_*_TYPE).
const TYPES_SUPPORTED: u32 = 7;
/// The event id of a sensor that stopped on an error.
const SENSOR_FAILED: u32 = 1;

fn key() -> String {
    format!(r"{SOURCES}\{}", SERVICE.name)
}

/// Registers the event source (needs administrator rights).
pub fn register() -> Result<(), String> {
    let registered = windows_registry::LOCAL_MACHINE
        .create(key())
        .and_then(|source| {
            source.set_expand_string("EventMessageFile", MESSAGE_FILE)?;
            source.set_u32("TypesSupported", TYPES_SUPPORTED)
        });
    registered.map_err(|e| format!("cannot register the event source HKLM\\{}: {e}", key()))
}

/// Removes the event source; the events already written stay in the log.
pub fn deregister() -> Result<(), String> {
    windows_registry::LOCAL_MACHINE
        .open(SOURCES)
        .and_then(|sources| sources.remove_tree(SERVICE.name))
        .map_err(|e| format!("cannot remove the event source HKLM\\{}: {e}", key()))
}

/// Writes `message` as an error event; a failure to write is reported on stderr (which
/// a service does not have: there is nothing better to do).
pub fn report_error(message: &str) {
    if let Err(e) = report(message) {
        eprintln!("spawnwatch: cannot write to the event log: {e}; the error was: {message}");
    }
}

fn report(message: &str) -> windows::core::Result<()> {
    let source = HSTRING::from(SERVICE.name);
    let text = HSTRING::from(message);
    // SAFETY: both strings are NUL-terminated and outlive the calls; the handle is
    // deregistered once, after its only use.
    unsafe {
        let log = RegisterEventSourceW(PCWSTR::null(), &source)?;
        let written = ReportEventW(
            log,
            EVENTLOG_ERROR_TYPE,
            0,
            SENSOR_FAILED,
            None,
            0,
            Some(&[PCWSTR(text.as_ptr())]),
            None,
        );
        let _ = DeregisterEventSource(log);
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_is_registered_with_eventcreates_messages_and_removed() {
        register().unwrap();
        let source = windows_registry::LOCAL_MACHINE.open(key()).unwrap();
        assert_eq!(source.get_string("EventMessageFile").unwrap(), MESSAGE_FILE);
        assert_eq!(source.get_u32("TypesSupported").unwrap(), 7);
        report("spawnwatch test: an error event").unwrap();
        deregister().unwrap();
        assert!(windows_registry::LOCAL_MACHINE.open(key()).is_err());
    }
}
