//! The Linux live source that reads each process inside the kernel, at its exec: eBPF
//! programs on the scheduler's `sched_process_exec`, `sched_process_fork` and
//! `sched_process_exit` tracepoints (`spawnwatch.bpf.c`) write one ring buffer that a
//! reader thread here turns into [`SourceEvent`](crate::record::SourceEvent)s.
//!
//! **Why.** The process connector tells only pids; whatever else a rule needs is read
//! from `/proc` afterwards, and a command typed into a web shell (`id`, `uname -a`)
//! often exits first. Here the exec record carries the executable's path (as
//! `/proc/PID/exe` shows it), whether that file is deleted or a memfd, argv from the
//! new process's memory (its first 16 KiB, `ARGV_CAP`), the working
//! directory, the real and effective uid, the parent (real_parent) and the kernel's
//! time of the exec: a process is seen whole however short it lives.
//!
//! **The rest is the connector's.** Forks, execs and exits go through the same
//! [`Handler`] as the connector's messages: a forked child that never execs (a php-fpm
//! worker) is emitted from `/proc` when one of its children execs, repeated execs are
//! reported once, exits end processes. Only thread-group leaders are reported: the
//! kernel side skips threads.
//!
//! **Bounded.** The kernel never waits: a record that finds the ring buffer full is
//! dropped and counted per CPU (`ring_full_drops` in the stats line). The reader wakes
//! at each exec, or every 200 ms to notice a stop request: forks and exits do not wake
//! it (a wake-up costs the exiting process about 20 us in a VM) and are read with the
//! next exec or at the next timeout, in order.
//!
//! **Needs** Linux 5.8 or later with BTF (`/sys/kernel/btf/vmlinux`), CAP_BPF and
//! CAP_PERFMON (or CAP_SYS_ADMIN), and the initial pid namespace. [`EbpfSource::start`]
//! says which is missing, and `run` falls back to the connector (see
//! [`crate::source::linux`]).

mod load;
mod wire;

use crate::record::ProcessRecord;
use crate::source::live::{LiveSink, ReaderThread};
use crate::source::proc_connector::{argv, bump, Counters, Handler, ProcFs, ProcInfo, UserNames};
use aya::maps::{MapData, PerCpuArray, RingBuf};
use chrono::{DateTime, Utc};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wire::{Exec, Record};

/// The source's name in events, stats and sensor alerts.
pub const SOURCE: &str = "ebpf";
/// How long the reader waits for records: the longest a stop request waits.
const WAIT: Duration = Duration::from_millis(200);

/// The figures of a running eBPF source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EbpfStats {
    pub forks: u64,
    pub execs: u64,
    pub exits: u64,
    /// Events handed to the sink.
    pub emitted: u64,
    /// Records the kernel dropped because the ring buffer was full.
    pub ring_full_drops: u64,
    /// Execs whose argv was longer than the 16 KiB kept.
    pub argv_truncated: u64,
    /// Execs whose argv the kernel could not read.
    pub argv_unread: u64,
    /// Execs whose executable's path the kernel could not walk (deeper than 32
    /// components, or longer than 4 KiB): `exe` is then the process's comm.
    pub exe_unresolved: u64,
    /// Forked processes emitted before their child whose `/proc` entry was gone.
    pub proc_missing: u64,
    /// Execs not reported because they read the same as the process's last one.
    pub repeated_execs: u64,
    /// Records that could not be read (the two sides disagree on the layout).
    pub malformed: u64,
    /// Why the reader stopped on its own, if it did.
    pub failure: Option<String>,
}

impl EbpfStats {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": "stats",
            "source": SOURCE,
            "forks": self.forks,
            "execs": self.execs,
            "exits": self.exits,
            "emitted": self.emitted,
            "ring_full_drops": self.ring_full_drops,
            "argv_truncated": self.argv_truncated,
            "argv_unread": self.argv_unread,
            "exe_unresolved": self.exe_unresolved,
            "proc_missing": self.proc_missing,
            "repeated_execs": self.repeated_execs,
            "malformed": self.malformed,
            "failure": self.failure,
        })
    }
}

/// What the reader counts beside the [`Handler`]'s counters.
#[derive(Debug, Default)]
struct ReaderCounters {
    forks: AtomicU64,
    execs: AtomicU64,
    exits: AtomicU64,
    argv_truncated: AtomicU64,
    argv_unread: AtomicU64,
    exe_unresolved: AtomicU64,
    malformed: AtomicU64,
    failure: Mutex<Option<String>>,
}

/// A running eBPF source: programs attached, a reader thread feeding a [`LiveSink`].
/// Dropping it stops the reader and detaches the programs.
pub struct EbpfSource {
    reader: ReaderThread,
    counters: Arc<ReaderCounters>,
    handled: Arc<Counters>,
    drops: PerCpuArray<MapData, u64>,
    /// The programs: attached for as long as this lives.
    _programs: aya::Ebpf,
}

impl EbpfSource {
    /// Loads and attaches the programs and starts the reader; fails with the reason
    /// eBPF cannot run here (see [`load::Host::unsuitable`]) or the kernel's refusal.
    pub fn start(sink: LiveSink) -> Result<EbpfSource, String> {
        let loaded = load::load(None)?;
        EbpfSource::launch(loaded, sink, ProcFs::default(), UserNames::system())
    }

    /// Starts the reader on loaded programs.
    fn launch(
        loaded: load::Loaded,
        sink: LiveSink,
        procfs: ProcFs,
        users: UserNames,
    ) -> Result<EbpfSource, String> {
        let counters = Arc::new(ReaderCounters::default());
        let handled = Arc::new(Counters::default());
        let handler = Handler::new(sink, procfs, users, handled.clone()).named(SOURCE);
        let ring = KernelRing(loaded.ring);
        let reader_counters = counters.clone();
        let reader = ReaderThread::spawn(SOURCE, move |stop| {
            Reader {
                ring,
                handler,
                counters: reader_counters,
                stop,
            }
            .run()
        })?;
        Ok(EbpfSource {
            reader,
            counters,
            handled,
            drops: loaded.drops,
            _programs: loaded.ebpf,
        })
    }

    pub fn stats(&self) -> EbpfStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let c = &self.counters;
        let handled = self.handled.snapshot();
        EbpfStats {
            forks: get(&c.forks),
            execs: get(&c.execs),
            exits: get(&c.exits),
            emitted: handled.emitted,
            ring_full_drops: ring_full_drops(&self.drops),
            argv_truncated: get(&c.argv_truncated),
            argv_unread: get(&c.argv_unread),
            exe_unresolved: get(&c.exe_unresolved),
            proc_missing: handled.proc_missing,
            repeated_execs: handled.repeated_execs,
            malformed: get(&c.malformed),
            failure: c.failure.lock().map(|f| f.clone()).unwrap_or_default(),
        }
    }

    /// Stops the reader (within 200 ms) and detaches the programs; the final figures.
    pub fn stop(mut self) -> EbpfStats {
        self.reader.stop();
        self.stats()
    }
}

/// The kernel's per-CPU drop counts, one slot per record kind, added up.
fn ring_full_drops(drops: &PerCpuArray<MapData, u64>) -> u64 {
    (0..3)
        .filter_map(|kind| drops.get(&kind, 0).ok())
        .map(|per_cpu| per_cpu.iter().sum::<u64>())
        .sum()
}

/// Where the reader gets its records: the kernel's ring buffer, or a test's.
trait Ring: Send {
    /// Returns when records may be waiting, or after `timeout`.
    fn wait(&mut self, timeout: Duration) -> std::io::Result<()>;
    /// Hands each record now waiting to `each`, until it returns false (and so does
    /// this).
    fn drain(&mut self, each: &mut dyn FnMut(&[u8]) -> bool) -> bool;
}

struct KernelRing(RingBuf<MapData>);

impl Ring for KernelRing {
    fn wait(&mut self, timeout: Duration) -> std::io::Result<()> {
        let mut poll = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the duration of the call.
        let n = unsafe { libc::poll(&mut poll, 1, timeout.as_millis() as libc::c_int) };
        if n < 0 {
            let error = std::io::Error::last_os_error();
            return match error.raw_os_error() {
                Some(libc::EINTR) => Ok(()),
                _ => Err(error),
            };
        }
        if poll.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
            return Err(std::io::Error::other(format!(
                "poll reports the ring buffer's descriptor broken (revents {:#x})",
                poll.revents
            )));
        }
        Ok(())
    }

    fn drain(&mut self, each: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        while let Some(record) = self.0.next() {
            if !each(&record) {
                return false;
            }
        }
        true
    }
}

/// The reader thread: waits on the ring, turns records into the handler's calls.
struct Reader<R: Ring> {
    ring: R,
    handler: Handler,
    counters: Arc<ReaderCounters>,
    stop: Arc<AtomicBool>,
}

impl<R: Ring> Reader<R> {
    fn run(self) {
        let Reader {
            mut ring,
            mut handler,
            counters,
            stop,
        } = self;
        while !stop.load(Ordering::Relaxed) {
            if let Err(e) = ring.wait(WAIT) {
                let reason = format!("waiting on the eBPF ring buffer: {e}");
                if let Ok(mut failure) = counters.failure.lock() {
                    *failure = Some(reason.clone());
                }
                handler.sink.ended(SOURCE, &reason);
                return;
            }
            let clock = BootClock::now();
            let mut each = |bytes: &[u8]| dispatch(bytes, &mut handler, &counters, &clock);
            if !ring.drain(&mut each) {
                return;
            }
        }
    }
}

/// Handles one record; false when the pipeline has gone.
fn dispatch(
    bytes: &[u8],
    handler: &mut Handler,
    counters: &ReaderCounters,
    clock: &BootClock,
) -> bool {
    match wire::parse(bytes) {
        Ok(Record::Fork { tgid, ppid, .. }) => {
            bump(&counters.forks);
            handler.fork(ppid, tgid);
            true
        }
        Ok(Record::Exit {
            tgid,
            ppid,
            boot_ns,
        }) => {
            bump(&counters.exits);
            handler.exit(tgid, Some(ppid), clock.at(boot_ns))
        }
        Ok(Record::Exec(exec)) => {
            bump(&counters.execs);
            let at = clock.at(exec.boot_ns);
            let record = record(&exec, handler, counters);
            handler.exec(record, at)
        }
        Err(_) => {
            bump(&counters.malformed);
            true
        }
    }
}

/// The process record of what the kernel saw at an exec.
fn record(exec: &Exec, handler: &mut Handler, counters: &ReaderCounters) -> ProcessRecord {
    if exec.argv_truncated {
        bump(&counters.argv_truncated);
    }
    if exec.argv_unread {
        bump(&counters.argv_unread);
    }
    if exec.image_path.is_none() {
        bump(&counters.exe_unresolved);
    }
    let info = ProcInfo {
        exists: true,
        name: Some(exec.comm.clone()).filter(|c| !c.is_empty()),
        tgid: Some(exec.tgid),
        ppid: Some(exec.ppid).filter(|&p| p != 0),
        uid: Some(exec.uid),
        euid: Some(exec.euid),
        image_path: exec.image_path.clone(),
        argv: argv(&exec.argv),
        cwd: exec.cwd.clone(),
        exe_deleted: exec.exe_deleted,
        exe_memfd: exec.exe_memfd,
    };
    handler.record_from(exec.tgid, &info)
}

/// Turns the kernel's boot-time clock (`bpf_ktime_get_boot_ns`) into wall-clock time:
/// the offset between the two, taken when a batch of records is read.
struct BootClock {
    realtime_minus_boot_ns: i128,
}

impl BootClock {
    fn now() -> BootClock {
        let ns = |clock| {
            let mut t = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: clock_gettime fills the timespec it is given.
            unsafe { libc::clock_gettime(clock, &mut t) };
            i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
        };
        BootClock {
            realtime_minus_boot_ns: ns(libc::CLOCK_REALTIME) - ns(libc::CLOCK_BOOTTIME),
        }
    }

    fn at(&self, boot_ns: u64) -> DateTime<Utc> {
        let ns = self.realtime_minus_boot_ns + i128::from(boot_ns);
        let ns = i64::try_from(ns).unwrap_or(i64::MAX);
        DateTime::from_timestamp_nanos(ns)
    }
}

#[cfg(test)]
mod tests;
