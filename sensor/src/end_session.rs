//! Log-off and shutdown for a console `spawnwatch run` on Windows.
//!
//! Windows gives CTRL_LOGOFF_EVENT and CTRL_SHUTDOWN_EVENT to a console handler only in
//! a process that has not loaded user32.dll, and spawnwatch.exe has (the `windows`
//! crate's imports bring it). Such a process is told through its top-level windows
//! instead, with WM_QUERYENDSESSION and WM_ENDSESSION, as Microsoft documents for
//! SetConsoleCtrlHandler. So [`watch`] keeps a hidden top-level window on a thread of
//! its own; WM_ENDSESSION stops the run and waits for the drain, as the console handler
//! does for a close, before the session may end (the process can be ended at any time
//! after that message returns).
//!
//! The answers are here in plain numbers, tested on every platform; the window is thin
//! Win32 glue, tested under wine by sending it the messages and by ending wine's
//! session (`wineboot --end-session`) around a process that holds it.

use crate::signals::Signals;
use std::time::Duration;

/// The window messages (winuser.h).
#[cfg_attr(not(windows), allow(dead_code))]
pub const WM_QUERYENDSESSION: u32 = 0x0011;
#[cfg_attr(not(windows), allow(dead_code))]
pub const WM_ENDSESSION: u32 = 0x0016;

/// What the window answers `message` (`ending`: its wParam, whether the session really
/// ends); `None` for Windows' default handling.
#[cfg_attr(not(windows), allow(dead_code))]
fn answer(signals: &Signals, message: u32, ending: bool, grace: Duration) -> Option<isize> {
    match message {
        // Yes, it may end: the sensor stops when it does, at WM_ENDSESSION.
        WM_QUERYENDSESSION => Some(1),
        WM_ENDSESSION => {
            // Not when another program refused to let the session end.
            if ending {
                signals.stop_and_wait(grace);
            }
            Some(0)
        }
        _ => None,
    }
}

#[cfg(windows)]
pub use window::watch;

#[cfg(windows)]
mod window {
    use super::answer;
    use crate::signals::{Signals, CLOSE_GRACE};
    use std::cell::OnceCell;
    use std::sync::OnceLock;
    use windows::core::w;
    use windows::Win32::Foundation::{HWND, LPARAM, LRESULT, WPARAM};
    use windows::Win32::System::LibraryLoader::GetModuleHandleW;
    use windows::Win32::UI::WindowsAndMessaging::{
        CreateWindowExW, DefWindowProcW, DispatchMessageW, GetMessageW, RegisterClassW, MSG,
        WINDOW_EX_STYLE, WINDOW_STYLE, WNDCLASSW,
    };

    thread_local! {
        /// The signals the window of this thread acts on: Windows calls `window_proc`
        /// on the thread that created the window, also for messages sent from others.
        static WATCHED: OnceCell<Signals> = const { OnceCell::new() };
    }

    /// The window class, registered once per process.
    static CLASS: OnceLock<Result<(), String>> = OnceLock::new();

    unsafe extern "system" fn window_proc(
        window: HWND,
        message: u32,
        wparam: WPARAM,
        lparam: LPARAM,
    ) -> LRESULT {
        let handled = WATCHED.with(|watched| {
            watched
                .get()
                .and_then(|signals| answer(signals, message, wparam.0 != 0, CLOSE_GRACE))
        });
        match handled {
            Some(result) => LRESULT(result),
            // SAFETY: the arguments are the ones Windows passed.
            None => unsafe { DefWindowProcW(window, message, wparam, lparam) },
        }
    }

    /// Starts a hidden window on a thread of its own that stops `signals`' run when the
    /// session ends; returns its handle once the window exists.
    pub fn watch(signals: &Signals) -> Result<isize, String> {
        let signals = signals.clone();
        let (tx, rx) = crossbeam_channel::bounded(1);
        std::thread::Builder::new()
            .name("end-session".into())
            .spawn(move || {
                WATCHED.with(|watched| {
                    let _ = watched.set(signals);
                });
                match create() {
                    Ok(window) => {
                        let _ = tx.send(Ok(window.0));
                        pump();
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| format!("cannot start the end-session thread: {e}"))?;
        rx.recv()
            .map_err(|_| "the end-session thread ended at once".to_string())?
    }

    fn create() -> Result<HWND, String> {
        let fail = |what: &str| {
            format!(
                "cannot create the window that hears of log-off and shutdown ({what}): {}",
                windows::core::Error::from_win32()
            )
        };
        // SAFETY: plain Win32 calls with a class and strings that live as long as the
        // process; a top-level window (not message-only: those miss WM_ENDSESSION).
        unsafe {
            let instance = GetModuleHandleW(None).map_err(|e| format!("GetModuleHandleW: {e}"))?;
            CLASS
                .get_or_init(|| {
                    let class = WNDCLASSW {
                        lpfnWndProc: Some(window_proc),
                        hInstance: instance.into(),
                        lpszClassName: w!("spawnwatch-end-session"),
                        ..Default::default()
                    };
                    match RegisterClassW(&class) {
                        0 => Err(fail("RegisterClassW")),
                        _ => Ok(()),
                    }
                })
                .clone()?;
            let window = CreateWindowExW(
                WINDOW_EX_STYLE(0),
                w!("spawnwatch-end-session"),
                w!("spawnwatch"),
                WINDOW_STYLE(0),
                0,
                0,
                0,
                0,
                None,
                None,
                instance,
                None,
            );
            if window.0 == 0 {
                return Err(fail("CreateWindowExW"));
            }
            Ok(window)
        }
    }

    /// Dispatches the thread's messages for as long as the process lives.
    fn pump() {
        let mut message = MSG::default();
        // SAFETY: `message` is a valid MSG to fill; 0 and -1 both end the loop.
        while unsafe { GetMessageW(&mut message, None, 0, 0) }.0 > 0 {
            unsafe { DispatchMessageW(&message) };
        }
    }

    #[cfg(test)]
    mod tests {
        use super::super::{WM_ENDSESSION, WM_QUERYENDSESSION};
        use super::*;
        use std::sync::atomic::Ordering;
        use std::time::Duration;
        use windows::Win32::UI::WindowsAndMessaging::SendMessageW;

        #[test]
        fn the_hidden_window_stops_the_run_at_the_end_of_the_session_and_waits() {
            let signals = Signals::default();
            let window = HWND(watch(&signals).expect("the window"));
            // SAFETY: a window of this process; the answers are plain numbers.
            let may_end = unsafe { SendMessageW(window, WM_QUERYENDSESSION, WPARAM(0), LPARAM(0)) };
            assert_eq!(may_end.0, 1, "the session may end");
            assert!(
                !signals.stop.load(Ordering::Relaxed),
                "asked, not ending yet"
            );
            let (tx, rx) = crossbeam_channel::bounded(1);
            std::thread::spawn(move || {
                // SAFETY: as above; this blocks until the window's thread answers.
                let _ =
                    tx.send(unsafe { SendMessageW(window, WM_ENDSESSION, WPARAM(1), LPARAM(0)) }.0);
            });
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !signals.stop.load(Ordering::Relaxed) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "WM_ENDSESSION did not stop the run"
                );
                std::thread::yield_now();
            }
            assert!(rx.try_recv().is_err(), "returned before the run flushed");
            signals.finished.set();
            assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(0));
        }

        /// Set in the child process of the end-of-session test: where it writes that
        /// it flushed.
        const CHILD: &str = "SPAWNWATCH_END_SESSION_CHILD";
        const READY: &str = "end-session child: ready";

        /// What wine does at the end of a session (`wineboot --end-session`, as
        /// Windows does at a log-off): WM_QUERYENDSESSION and WM_ENDSESSION to every
        /// top-level window, then the end of each process whose windows answered. A
        /// child process installs the signals as `run` does and, once stopped, writes
        /// that it flushed before it sets `finished`: that file is there only if the
        /// stop reached it and the process was ended no sooner than its flush.
        #[test]
        #[ignore = "ends every windowed process of the wine prefix (wineboot --end-session): run alone under wine by .ci/windows.sh"]
        fn the_end_of_a_real_session_stops_the_run_and_lets_it_flush_before_the_process_ends() {
            if let Some(flushed) = std::env::var_os(CHILD) {
                return end_session_child(flushed.into());
            }
            let dir = tempfile::tempdir().unwrap();
            let flushed = dir.path().join("flushed");
            let mut child = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "end_session::window::tests::the_end_of_a_real_session_stops_the_run_and_lets_it_flush_before_the_process_ends",
                    "--ignored",
                    "--nocapture",
                ])
                .env(CHILD, &flushed)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
            std::thread::spawn(move || {
                use std::io::BufRead;
                let ready = std::io::BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                    .any(|line| line == READY);
                let _ = ready_tx.send(ready);
            });
            assert_eq!(
                ready_rx.recv_timeout(Duration::from_secs(60)),
                Ok(true),
                "the child did not get its window"
            );
            let ended = std::process::Command::new("wineboot")
                .arg("--end-session")
                .status()
                .expect("wineboot (this test runs under wine)");
            assert!(ended.success(), "wineboot --end-session: {ended}");
            let (exit_tx, exit_rx) = crossbeam_channel::bounded(1);
            std::thread::spawn(move || {
                let _ = exit_tx.send(child.wait().map(|status| status.code()));
            });
            let code = exit_rx
                .recv_timeout(Duration::from_secs(60))
                .expect("the session ended, the child still runs")
                .unwrap();
            // 0: TerminateProcess(.., 0) by wineboot; 101: the child never heard the
            // session end; 3: it was never ended.
            assert_eq!(
                code,
                Some(0),
                "the child was not ended by the end of the session"
            );
            assert_eq!(
                std::fs::read_to_string(&flushed).ok().as_deref(),
                Some("flushed"),
                "the child was ended before it flushed"
            );
        }

        /// The child: signals installed as `run` installs them; once stopped, "flushes"
        /// and says so, then waits to be ended (exit 3 if it never is).
        fn end_session_child(flushed: std::path::PathBuf) {
            let signals = crate::signals::install().unwrap();
            println!("{READY}");
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while !signals.stop.load(Ordering::Relaxed) {
                assert!(std::time::Instant::now() < deadline, "never stopped");
                std::thread::park_timeout(Duration::from_millis(50));
            }
            std::fs::write(flushed, "flushed").unwrap();
            signals.finished.set();
            std::thread::park_timeout(Duration::from_secs(60));
            std::process::exit(3);
        }

        #[test]
        fn each_window_stops_the_run_it_watches_and_no_other() {
            let (first, second) = (Signals::default(), Signals::default());
            let first_window = watch(&first).expect("the first window");
            let second_window = watch(&second).expect("the second window");
            assert_ne!(first_window, second_window);
            // Drained already: the answer comes at once.
            second.finished.set();
            // SAFETY: a window of this process; the answer is a plain number.
            let answer =
                unsafe { SendMessageW(HWND(second_window), WM_ENDSESSION, WPARAM(1), LPARAM(0)) };
            assert_eq!(answer.0, 0);
            assert!(second.stop.load(Ordering::Relaxed), "its own run stops");
            assert!(
                !first.stop.load(Ordering::Relaxed),
                "the other one's does not"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::CLOSE_GRACE;
    use std::sync::atomic::Ordering;

    #[test]
    fn a_query_lets_the_session_end_and_stops_nothing() {
        let signals = Signals::default();
        assert_eq!(
            answer(&signals, WM_QUERYENDSESSION, false, CLOSE_GRACE),
            Some(1)
        );
        assert!(!signals.stop.load(Ordering::Relaxed));
    }

    #[test]
    fn the_end_of_the_session_stops_the_run_and_waits_for_the_drain() {
        let signals = Signals::default();
        let (tx, rx) = crossbeam_channel::bounded(1);
        let ending = signals.clone();
        std::thread::spawn(move || {
            let _ = tx.send(answer(
                &ending,
                WM_ENDSESSION,
                true,
                Duration::from_secs(60),
            ));
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !signals.stop.load(Ordering::Relaxed) {
            assert!(std::time::Instant::now() < deadline, "not stopped");
            std::thread::yield_now();
        }
        assert!(rx.try_recv().is_err(), "answered before the run flushed");
        signals.finished.set();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(Some(0)));
    }

    #[test]
    fn a_cancelled_end_and_other_messages_change_nothing() {
        let signals = Signals::default();
        assert_eq!(answer(&signals, WM_ENDSESSION, false, CLOSE_GRACE), Some(0));
        assert_eq!(
            answer(&signals, 0x0010 /* WM_CLOSE */, true, CLOSE_GRACE),
            None
        );
        assert!(!signals.stop.load(Ordering::Relaxed));
    }
}
