//! Sources: where process events come from. Each produces [`crate::record::SourceEvent`]s;
//! everything after the source is shared by live and replay.

pub mod live;
pub mod replay;

#[cfg(windows)]
pub mod etw;
/// The ETW source's platform-independent logic, built everywhere so the Linux test
/// suite covers it; only the Windows source calls it.
#[cfg_attr(not(windows), allow(dead_code))]
pub mod etw_logic;

#[cfg(target_os = "linux")]
pub mod proc_connector;

/// What this platform's live sensor can find out about its host's processes when a
/// rule asks (Linux: `listens`, from `/proc`); `None` where it cannot.
pub fn host_facts() -> Option<&'static dyn crate::facts::HostFacts> {
    #[cfg(target_os = "linux")]
    {
        static PROC: std::sync::LazyLock<proc_connector::ProcFs> =
            std::sync::LazyLock::new(proc_connector::ProcFs::default);
        Some(&*PROC)
    }
    #[cfg(not(target_os = "linux"))]
    None
}
