//! Win32 status codes of ETW calls, and what to tell the user about them.

pub const ERROR_ACCESS_DENIED: u32 = 5;
pub const ERROR_ALREADY_EXISTS: u32 = 183;
pub const ERROR_NO_SYSTEM_RESOURCES: u32 = 1450;

/// A raw OS error as ferrisetw reports it (sometimes an HRESULT wrapping a Win32 code,
/// `0x8007xxxx`, sometimes the Win32 code itself) to the Win32 code.
pub fn win32_code(raw: i32) -> u32 {
    let v = raw as u32;
    if v & 0xFFFF_0000 == 0x8007_0000 {
        v & 0xFFFF
    } else {
        v
    }
}

/// Which session failed: the same code means different things for each.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SessionKind {
    /// A user session enabling Microsoft-Windows-Kernel-Process.
    KernelProcess,
    /// A private session in system-logger mode (the kernel's process events).
    SystemLogger,
}

/// One line for the user when a session does not start.
pub fn start_failure(session: &str, kind: SessionKind, raw: Option<i32>) -> String {
    let Some(raw) = raw else {
        return format!("ETW session {session} did not start");
    };
    let why = match win32_code(raw) {
        ERROR_ACCESS_DENIED => {
            "access denied: ETW process tracing needs administrator rights (run spawnwatch from an elevated prompt or as a service)".to_string()
        }
        ERROR_ALREADY_EXISTS => {
            "a session with this name already exists and could not be stopped".to_string()
        }
        ERROR_NO_SYSTEM_RESOURCES => match kind {
            SessionKind::SystemLogger => "too many system logger sessions on this host (Windows allows 8): stop one of those `logman query -ets` lists".to_string(),
            SessionKind::KernelProcess => "Microsoft-Windows-Kernel-Process is enabled in too many sessions (a provider allows 8), or the host runs too many sessions (64): stop one of those `logman query -ets` lists".to_string(),
        },
        code => format!("Windows error {code}"),
    };
    format!("ETW session {session} did not start: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hresults_and_plain_codes() {
        assert_eq!(win32_code(0x8007_0005u32 as i32), 5);
        assert_eq!(win32_code(5), 5);
        assert_eq!(win32_code(0x8007_1069u32 as i32), 4201);
        assert_eq!(win32_code(0x8000_4005u32 as i32), 0x8000_4005);
    }

    #[test]
    fn messages_say_what_to_do() {
        let logger = SessionKind::SystemLogger;
        let m = start_failure(
            "spawnwatch-system-logger",
            logger,
            Some(0x8007_0005u32 as i32),
        );
        assert!(m.contains("administrator"), "{m}");
        assert!(m.contains("spawnwatch-system-logger"));
        assert!(start_failure("s", logger, Some(183)).contains("already exists"));
        assert!(start_failure("s", logger, Some(31)).contains("Windows error 31"));
        assert!(start_failure("s", logger, None).ends_with("did not start"));
    }

    #[test]
    fn no_system_resources_says_which_limit_for_each_session() {
        let logger = start_failure("l", SessionKind::SystemLogger, Some(1450));
        assert!(
            logger.contains("too many system logger sessions"),
            "{logger}"
        );
        let kernel = start_failure("k", SessionKind::KernelProcess, Some(1450));
        assert!(
            kernel.contains("Microsoft-Windows-Kernel-Process is enabled in too many sessions"),
            "{kernel}"
        );
        assert!(!kernel.contains("system logger"), "{kernel}");
    }
}
