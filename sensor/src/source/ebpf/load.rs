//! Loading the kernel side: what the kernel must offer, the object, its programs
//! attached to their tracepoints, and a readable reason when any of it is refused.

use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::{BtfTracePoint, ProgramError};
use aya::{Btf, Ebpf, EbpfError, EbpfLoader};
use std::path::Path;

/// The compiled kernel side (`build.sh` makes it from `spawnwatch.bpf.c`).
static OBJECT: &[u8] = aya::include_bytes_aligned!("spawnwatch.bpf.o");

/// Each program and the tracepoint it is attached to, in the order they are attached:
/// forks first, so no exec is seen whose fork was missed.
const PROGRAMS: [(&str, &str); 3] = [
    ("on_fork", "sched_process_fork"),
    ("on_exec", "sched_process_exec"),
    ("on_exit", "sched_process_exit"),
];

/// The oldest kernel with everything the object uses (the ring buffer, boot time).
const OLDEST: (u32, u32) = (5, 8);

const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The loaded programs (attached while this lives) and the maps user space reads.
pub(super) struct Loaded {
    /// Holds the programs and their links: dropping it detaches them.
    pub(super) ebpf: Ebpf,
    pub(super) ring: RingBuf<MapData>,
    pub(super) drops: PerCpuArray<MapData, u64>,
}

/// What the running kernel and this process offer, as far as can be told before
/// asking the kernel: the reason eBPF cannot work here, if one is known.
pub(super) struct Host {
    /// `uname -r`.
    pub(super) release: String,
    pub(super) has_btf: bool,
    /// The capability mask in effect (`CapEff` of `/proc/self/status`).
    pub(super) capabilities: u64,
    /// `/proc/self/ns/pid`'s target.
    pub(super) pid_namespace: Option<String>,
}

impl Host {
    pub(super) fn this() -> Host {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        Host {
            release: release(),
            has_btf: Path::new(VMLINUX_BTF).exists(),
            capabilities: status
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|caps| u64::from_str_radix(caps.trim(), 16).ok())
                .unwrap_or(0),
            pid_namespace: std::fs::read_link("/proc/self/ns/pid")
                .ok()
                .map(|l| l.to_string_lossy().into_owned()),
        }
    }

    /// Why eBPF cannot run here, if that can be told now.
    pub(super) fn unsuitable(&self) -> Option<String> {
        let version = kernel_version(&self.release);
        if version.is_some_and(|v| v < OLDEST) {
            return Some(format!(
                "Linux {} is older than {}.{}, the first with the BPF ring buffer",
                self.release, OLDEST.0, OLDEST.1
            ));
        }
        if !self.has_btf {
            return Some(format!(
                "the kernel has no BTF ({VMLINUX_BTF} is missing: it was built without \
                 CONFIG_DEBUG_INFO_BTF)"
            ));
        }
        // The kernel's fixed inode number of the initial pid namespace (PROC_PID_INIT_INO).
        if self.pid_namespace.as_deref() != Some("pid:[4026531836]") {
            return Some(
                "not in the initial pid namespace (in a container?): the kernel's pids \
                 would not be this /proc's; run on the host or with --pid=host"
                    .into(),
            );
        }
        let has = |cap: u32| self.capabilities & (1 << cap) != 0;
        if !(has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))) {
            return Some(
                "no permission: loading the tracing programs needs CAP_BPF and CAP_PERFMON \
                 (or CAP_SYS_ADMIN); run as root"
                    .into(),
            );
        }
        None
    }
}

fn release() -> String {
    // SAFETY: uname fills the struct it is given; the fields are NUL-terminated.
    unsafe {
        let mut name: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut name) != 0 {
            return String::new();
        }
        std::ffi::CStr::from_ptr(name.release.as_ptr())
            .to_string_lossy()
            .into_owned()
    }
}

/// `(major, minor)` of a release such as `6.18.44-fc-v669` or `5.8.0-1-amd64`.
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().ok());
    Some((numbers.next()??, numbers.next()??))
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK (8 MiB by default, less
/// than the ring buffer and its maps on a many-core host): lift it as far as allowed.
fn lift_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain system calls on structs owned here.
    unsafe {
        if libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) != 0 {
            let mut now: libc::rlimit = std::mem::zeroed();
            if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut now) == 0 {
                now.rlim_cur = now.rlim_max;
                libc::setrlimit(libc::RLIMIT_MEMLOCK, &now);
            }
        }
    }
}

/// Loads the object, attaches its programs and takes its maps. `ring_bytes` replaces
/// the ring buffer's size (a power of two, a multiple of the page size).
pub(super) fn load(ring_bytes: Option<u32>) -> Result<Loaded, String> {
    if let Some(reason) = Host::this().unsuitable() {
        return Err(reason);
    }
    lift_memlock_limit();
    let btf = Btf::from_sys_fs().map_err(|e| format!("reading the kernel's BTF: {e}"))?;
    let mut loader = EbpfLoader::new();
    loader.btf(Some(&btf));
    if let Some(bytes) = ring_bytes {
        loader.map_max_entries("events", bytes);
    }
    let mut ebpf = loader
        .load(OBJECT)
        .map_err(|e| refused("loading the eBPF object", &e))?;
    for (name, tracepoint) in PROGRAMS {
        let program: &mut BtfTracePoint = ebpf
            .program_mut(name)
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| format!("the eBPF object has no tracing program {name}"))?;
        program
            .load(tracepoint, &btf)
            .map_err(|e| program_refused(name, &e))?;
        program
            .attach()
            .map_err(|e| format!("attaching {name} to {tracepoint}: {}", chain(&e)))?;
    }
    let ring = ebpf
        .take_map("events")
        .ok_or("the eBPF object has no map `events`")?
        .try_into()
        .map_err(|e| format!("the ring buffer: {e}"))?;
    let drops = ebpf
        .take_map("drops")
        .ok_or("the eBPF object has no map `drops`")?
        .try_into()
        .map_err(|e| format!("the drop counters: {e}"))?;
    Ok(Loaded { ebpf, ring, drops })
}

/// An error and its causes, joined.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = e.source();
    }
    text
}

/// The OS error somewhere in an error's causes.
fn os_error(error: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io.raw_os_error();
        }
        cause = e.source();
    }
    None
}

fn permission_hint(errno: Option<i32>) -> &'static str {
    match errno {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            " (no permission: CAP_BPF and CAP_PERFMON are needed, and a kernel locked \
             down for confidentiality refuses tracing programs to everyone)"
        }
        _ => "",
    }
}

fn refused(what: &str, error: &EbpfError) -> String {
    let hint = permission_hint(os_error(error));
    format!("{what}: {}{hint}", chain(error))
}

/// A program the kernel would not load: its error and the verifier's last words (the
/// whole log runs to thousands of lines).
fn program_refused(name: &str, error: &ProgramError) -> String {
    match error {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            let last: Vec<&str> = log.lines().rev().take(6).collect();
            let last: Vec<&str> = last.into_iter().rev().collect();
            format!(
                "the kernel refused program {name}: {io_error}{}; the verifier said: {}",
                permission_hint(io_error.raw_os_error()),
                last.join(" | ")
            )
        }
        other => format!("loading program {name}: {}", chain(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Host {
        Host {
            release: "6.1.0-18-amd64".into(),
            has_btf: true,
            capabilities: (1 << CAP_BPF) | (1 << CAP_PERFMON),
            pid_namespace: Some("pid:[4026531836]".into()),
        }
    }

    #[test]
    fn a_suitable_host_and_each_reason_to_fall_back() {
        assert_eq!(host().unsuitable(), None);
        let old = Host {
            release: "5.4.0-150-generic".into(),
            ..host()
        };
        assert!(old.unsuitable().unwrap().contains("older than 5.8"));
        let no_btf = Host {
            has_btf: false,
            ..host()
        };
        assert!(no_btf.unsuitable().unwrap().contains("no BTF"));
        let container = Host {
            pid_namespace: Some("pid:[4026532210]".into()),
            ..host()
        };
        assert!(container.unsuitable().unwrap().contains("container"));
        let unprivileged = Host {
            capabilities: 1 << CAP_BPF,
            ..host()
        };
        assert!(unprivileged.unsuitable().unwrap().contains("CAP_PERFMON"));
        let admin = Host {
            capabilities: 1 << CAP_SYS_ADMIN,
            ..host()
        };
        assert_eq!(admin.unsuitable(), None, "CAP_SYS_ADMIN allows it all");
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(kernel_version("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(kernel_version("5.8.0"), Some((5, 8)));
        assert_eq!(kernel_version("4.19.0-26-amd64"), Some((4, 19)));
        assert_eq!(kernel_version("weird"), None);
        assert!(kernel_version(&release()).is_some(), "{}", release());
    }
}
