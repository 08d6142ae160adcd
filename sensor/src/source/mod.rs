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

/// What a test needs from the host, skipped outside CI and failing under it.
#[cfg(test)]
#[path = "../../../tests/common/needs.rs"]
pub(crate) mod needs;

#[cfg(target_os = "linux")]
pub mod ebpf;
#[cfg(target_os = "linux")]
pub mod linux;
#[cfg(target_os = "linux")]
pub mod proc_connector;

/// Which live source `run` and `selftest` use. Linux has two: eBPF programs in the
/// kernel, and the kernel's process connector with `/proc`; `auto` takes eBPF where the
/// kernel allows it and the connector elsewhere. Windows has one, ETW.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Choice {
    #[default]
    Auto,
    Ebpf,
    ProcConnector,
}

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
