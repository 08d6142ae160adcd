//! The Linux live source: the kernel's process-events connector (`cn_proc`).
//!
//! **How it works.** A `NETLINK_CONNECTOR` socket joins the `CN_IDX_PROC` multicast
//! group and sends `PROC_CN_MCAST_LISTEN`; [`ProcConnector::start`] returns once the
//! kernel has acknowledged it. From then on the kernel sends a small binary message
//! for every fork, exec and exit of every task on the host. A reader thread parses
//! them ([`parse_messages`]), reads `/proc/PID` for each exec (image, command line,
//! parent, user, working directory) and hands [`SourceEvent`]s to the [`LiveSink`]
//! without ever blocking. [`ProcConnector::stop`] sends `PROC_CN_MCAST_IGNORE`.
//! [`seed`] snapshots the processes already running, as `Action::Existing`; call it
//! after `start` so nothing falls in the gap between the two.
//!
//! **What it needs.** Root, for two reasons: before Linux 6.6 joining the group needs
//! CAP_NET_ADMIN (older kernels also check it on LISTEN; either way start fails saying
//! so), and reading other users' `/proc/PID/exe` and `cwd` needs root (CAP_SYS_PTRACE):
//! newer kernels let anyone listen (seen on 6.18), but unprivileged the images of other users' processes
//! stay unknown (counted as `proc_missing`, `exe` falls back to the comm). It also
//! needs `CONFIG_PROC_EVENTS` and the initial pid and user namespaces: the kernel
//! ignores listeners anywhere else, so in a container (without `--pid=host`) start
//! fails with no acknowledgement.
//!
//! **What it cannot see.** The kernel sends pids only; everything else is read from
//! `/proc` afterwards, so:
//! - a process that exits before its `/proc` entry is read is reported with its pid
//!   and the parent known from its fork event, and nothing else (counted as
//!   `proc_missing`); if it is still a zombie, its comm (the image's file name cut to
//!   15 bytes) stands in for `exe`. `id` or `uname` run for a millisecond or two: on a
//!   2-core VM (debug build) about half of those a shell ran were gone in time, while
//!   the shell itself, which waits for them, was nearly always read;
//! - a process that execs again or rewrites its argv (setproctitle) before we read
//!   it is reported with what `/proc` shows then, and two execs that read the same
//!   (JDK's `jspawnhelper` execing the program) are reported once (`repeated_execs`);
//! - failed execs, and what a process does besides fork/exec/exit, are not reported;
//! - when the kernel overruns the socket (ENOBUFS), events are lost (`overruns`);
//! - pids are those of the initial pid namespace, and user names come from the host's
//!   `/etc/passwd` (a container's users show as the host's names or as numbers);
//! - timestamps are when the event was received, not the kernel's.
//!
//! Only thread-group leaders (processes) are reported: thread events are counted and
//! ignored.

mod parse;
mod privileges;
mod procfs;
mod repeat;
mod socket;

pub use parse::{parse_messages, ProcEvent};
pub use privileges::{check_privileges, NEEDED as NEEDED_CAPABILITIES};
/// Fake `/proc` trees, for the eBPF source's tests too.
#[cfg(test)]
pub(crate) use procfs::tests as fake_proc;
pub(crate) use procfs::{argv, ProcInfo};
pub use procfs::{ProcFs, UserNames};

use crate::record::{Action, ProcessRecord, SourceEvent, Text};
use crate::source::live::{LiveSink, ReaderThread};
use chrono::{DateTime, Utc};
use crossbeam_channel::{RecvTimeoutError, Sender};
use parse::{PROC_CN_MCAST_IGNORE, PROC_CN_MCAST_LISTEN};
use socket::ConnectorSocket;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a receive may block: the longest a stop request waits.
const RECEIVE_TIMEOUT: Duration = Duration::from_millis(200);
/// How long `start` waits for the kernel to acknowledge LISTEN.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Forked processes remembered before the dead ones are pruned (exits lost to an
/// overrun would otherwise accumulate).
const PENDING_PRUNE_AT: usize = 1 << 16;
pub const SOURCE: &str = "proc-connector";

/// The counters of a running connector, as [`ProcConnector::stats`] reads them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcStats {
    /// Fork events received (threads included).
    pub forks: u64,
    /// Exec events received.
    pub execs: u64,
    /// Exit events received (threads included).
    pub exits: u64,
    /// Other kinds (uid, gid, sid, comm, ptrace, coredump changes).
    pub other: u64,
    /// Events about threads rather than processes, ignored.
    pub thread_events: u64,
    /// Events handed to the sink (its own counters tell sent from dropped).
    pub emitted: u64,
    /// Processes whose image could not be read from `/proc` (gone or zombie).
    pub proc_missing: u64,
    /// Execs not reported because they read the same as the process's last one
    /// (see [`repeat`]).
    pub repeated_execs: u64,
    /// Times the kernel overran the socket (ENOBUFS): events were lost.
    pub overruns: u64,
    /// Why the reader stopped on its own, if it did.
    pub failure: Option<String>,
}

impl ProcStats {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": "stats",
            "source": SOURCE,
            "forks": self.forks,
            "execs": self.execs,
            "exits": self.exits,
            "other": self.other,
            "thread_events": self.thread_events,
            "emitted": self.emitted,
            "proc_missing": self.proc_missing,
            "repeated_execs": self.repeated_execs,
            "overruns": self.overruns,
            "failure": self.failure,
        })
    }
}

/// What a [`Handler`] counts (the connector's reader counts the rest in the same place).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    forks: AtomicU64,
    execs: AtomicU64,
    exits: AtomicU64,
    other: AtomicU64,
    thread_events: AtomicU64,
    emitted: AtomicU64,
    proc_missing: AtomicU64,
    repeated_execs: AtomicU64,
    overruns: AtomicU64,
    failure: Mutex<Option<String>>,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> ProcStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ProcStats {
            forks: get(&self.forks),
            execs: get(&self.execs),
            exits: get(&self.exits),
            other: get(&self.other),
            thread_events: get(&self.thread_events),
            emitted: get(&self.emitted),
            proc_missing: get(&self.proc_missing),
            repeated_execs: get(&self.repeated_execs),
            overruns: get(&self.overruns),
            failure: self.failure.lock().map(|f| f.clone()).unwrap_or_default(),
        }
    }
}

/// A running connector: a reader thread feeding a [`LiveSink`]. Dropping it stops it.
pub struct ProcConnector {
    reader: ReaderThread,
    counters: Arc<Counters>,
}

impl ProcConnector {
    /// Opens the connector, subscribes, and starts the reader thread. Fails with a
    /// readable reason: no privilege (root or CAP_NET_ADMIN needed), no connector in
    /// the kernel, or no acknowledgement (not in the initial namespaces).
    pub fn start(sink: LiveSink) -> Result<ProcConnector, String> {
        let (socket, nonce) = subscribe()?;
        let (procfs, users) = (ProcFs::default(), UserNames::system());
        ProcConnector::launch(socket, nonce, sink, procfs, users)
    }

    /// Starts the reader on a subscribed socket and waits for the kernel's answer.
    fn launch(
        socket: ConnectorSocket,
        nonce: u32,
        sink: LiveSink,
        procfs: ProcFs,
        users: UserNames,
    ) -> Result<ProcConnector, String> {
        let counters = Arc::new(Counters::default());
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let handler = Handler::new(sink, procfs, users, counters.clone());
        let reader = ReaderThread::spawn(SOURCE, move |stop| {
            Reader {
                socket,
                handler,
                nonce,
                stop,
                ready: Some(ready_tx),
            }
            .run()
        })?;
        let connector = ProcConnector { reader, counters };
        let refusal = match ready_rx.recv_timeout(ACK_TIMEOUT) {
            Ok(Ok(())) => return Ok(connector),
            Ok(Err(reason)) => reason,
            Err(RecvTimeoutError::Timeout) => format!(
                "the kernel did not acknowledge PROC_CN_MCAST_LISTEN within {} s: the \
                 process-events connector serves only listeners in the initial pid and \
                 user namespaces (in a container? run on the host or with --pid=host)",
                ACK_TIMEOUT.as_secs()
            ),
            Err(RecvTimeoutError::Disconnected) => connector
                .counters
                .snapshot()
                .failure
                .unwrap_or_else(|| format!("the {SOURCE} reader ended before subscribing")),
        };
        connector.stop();
        Err(refusal)
    }

    pub fn stats(&self) -> ProcStats {
        self.counters.snapshot()
    }

    /// Stops the reader (within one receive timeout, 200 ms) and unsubscribes; the
    /// final figures.
    pub fn stop(mut self) -> ProcStats {
        self.reader.stop();
        self.stats()
    }
}

/// Opens the socket and sends LISTEN; returns the nonce its acknowledgement carries.
fn subscribe() -> Result<(ConnectorSocket, u32), String> {
    let socket = ConnectorSocket::open(RECEIVE_TIMEOUT)?;
    let nonce = unique_nonce();
    socket
        .send_control(PROC_CN_MCAST_LISTEN, nonce)
        .map_err(|e| format!("sending PROC_CN_MCAST_LISTEN: {e}"))?;
    Ok((socket, nonce))
}

/// A number to recognise the kernel's acknowledgement of our own LISTEN among other
/// listeners' (acknowledgements go to every listener).
fn unique_nonce() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (std::process::id() << 12) ^ nanos ^ NEXT.fetch_add(0x9e37_79b9, Ordering::Relaxed)
}

/// The processes running now, from `/proc`, as `Action::Existing` (possible parents,
/// not evaluated). Parents do not necessarily come before their children.
pub fn seed() -> Vec<SourceEvent> {
    seed_from(&ProcFs::default(), &mut UserNames::system())
}

fn seed_from(procfs: &ProcFs, users: &mut UserNames) -> Vec<SourceEvent> {
    let hostname = host_name();
    procfs
        .pids()
        .into_iter()
        .filter_map(|pid| {
            let (record, info) = procfs.record(pid, None, users);
            info.exists
                .then(|| source_event(Action::Existing, record, hostname.clone()))
        })
        .collect()
}

fn host_name() -> Option<Text> {
    crate::host::hostname().map(Text::from)
}

fn source_event(action: Action, process: ProcessRecord, hostname: Option<Text>) -> SourceEvent {
    SourceEvent::live(SOURCE, action, Some(Utc::now()), hostname, process)
}

/// The reader thread: receives, recognises the acknowledgement, hands the rest to the
/// [`Handler`].
struct Reader {
    socket: ConnectorSocket,
    handler: Handler,
    nonce: u32,
    stop: Arc<AtomicBool>,
    /// Until the kernel acknowledged LISTEN: where `start` waits for the answer.
    ready: Option<Sender<Result<(), String>>>,
}

impl Reader {
    fn run(mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        while !self.stop.load(Ordering::Relaxed) {
            match self.socket.recv(&mut buf) {
                // Only the kernel (port 0) speaks for the connector.
                Ok((_, sender)) if sender != 0 => {}
                Ok((n, _)) => {
                    if !self.dispatch(&buf[..n]) {
                        break;
                    }
                }
                Err(e) => match e.raw_os_error() {
                    Some(libc::EAGAIN) | Some(libc::EINTR) => {}
                    Some(libc::ENOBUFS) => {
                        self.handler.overrun();
                        // Our LISTEN's acknowledgement may be what was lost.
                        if self.ready.is_some() {
                            let _ = self.socket.send_control(PROC_CN_MCAST_LISTEN, self.nonce);
                        }
                    }
                    _ => {
                        self.fail(format!("receiving from the process-events connector: {e}"));
                        break;
                    }
                },
            }
        }
        let _ = self.socket.send_control(PROC_CN_MCAST_IGNORE, self.nonce);
    }

    /// Handles one datagram; false when the pipeline has gone.
    fn dispatch(&mut self, datagram: &[u8]) -> bool {
        for event in parse_messages(datagram) {
            match event {
                ProcEvent::Ack { ack, err, .. } if ack == self.nonce.wrapping_add(1) => {
                    if let Some(ready) = self.ready.take() {
                        let answer = match err {
                            0 => Ok(()),
                            err => Err(refusal(err)),
                        };
                        let _ = ready.send(answer);
                    }
                }
                event => {
                    if !self.handler.handle(event) {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// The reader cannot go on: before the kernel's answer `start` fails with the
    /// reason; after it the run loop hears of it (and restarts the source).
    fn fail(&mut self, reason: String) {
        if let Ok(mut failure) = self.handler.counters.failure.lock() {
            *failure = Some(reason.clone());
        }
        match self.ready.take() {
            Some(ready) => {
                let _ = ready.send(Err(reason));
            }
            None => self.handler.sink.ended(SOURCE, &reason),
        }
    }
}

fn refusal(errno: u32) -> String {
    let err = std::io::Error::from_raw_os_error(errno as i32);
    let hint = if errno as i32 == libc::EPERM {
        ": CAP_NET_ADMIN is missing (before Linux 6.6 listening needs root or CAP_NET_ADMIN in the initial user namespace)"
    } else {
        ""
    };
    format!("the kernel refused PROC_CN_MCAST_LISTEN: {err}{hint}")
}

/// Turns kernel events into [`SourceEvent`]s.
///
/// **Forks.** The pipeline's process table is keyed by pid and learns a process from
/// its `Create`. A child that execs gets its own `Create` then, with its parent read
/// from `/proc` — but a pre-forked worker never execs: php-fpm's master forks its
/// workers (on demand with `pm = dynamic/ondemand`), nginx its workers, and a shell its
/// subshells. Emitting nothing on fork would leave such a worker unknown, so
/// `php-fpm worker -> sh -c id` would lose its `php-fpm` parent; emitting a `Create`
/// for every fork would double the events and show every `fork()+exec()` child twice
/// (once with its parent's image, as a second `sh` under the web server).
///
/// So a fork only remembers `child -> parent`. When a process execs and its parent is
/// such a remembered, never-exec'd fork child, that parent (and any such ancestors,
/// farthest first) is emitted as a `Create` just before it, with what `/proc` shows of
/// it: the image it inherited from its own parent. A fork child that execs is emitted
/// once, at its exec (an exec in a known pid is a new `Create`: the table replaces the
/// image), and if `/proc` is gone by then its parent still comes from the fork event.
/// Every thread-group leader's exit is a `Terminate`.
///
/// The eBPF source feeds the same logic ([`Handler::fork`], [`Handler::exec`],
/// [`Handler::exit`]) with what the kernel saw at each exec instead of a `/proc` read.
pub(crate) struct Handler {
    procfs: ProcFs,
    users: UserNames,
    hostname: Option<Text>,
    /// The source its events name (`proc-connector`, `ebpf`).
    source: &'static str,
    pub(crate) sink: LiveSink,
    pub(crate) counters: Arc<Counters>,
    /// Processes forked since start that have neither exec'd, exited nor been emitted:
    /// child pid -> parent pid.
    forked: HashMap<u32, u32>,
    last_exec: repeat::LastExec,
    prune_at: usize,
}

impl Handler {
    pub(crate) fn new(
        sink: LiveSink,
        procfs: ProcFs,
        users: UserNames,
        counters: Arc<Counters>,
    ) -> Handler {
        Handler {
            hostname: host_name(),
            procfs,
            users,
            source: SOURCE,
            sink,
            counters,
            forked: HashMap::new(),
            last_exec: repeat::LastExec::default(),
            prune_at: PENDING_PRUNE_AT,
        }
    }

    /// The same, for the source named `source`.
    pub(crate) fn named(self, source: &'static str) -> Handler {
        Handler { source, ..self }
    }

    /// Handles one connector event; false when the pipeline has gone and the reader
    /// should stop.
    fn handle(&mut self, event: ProcEvent) -> bool {
        match event {
            ProcEvent::Fork {
                parent_tgid,
                child_pid,
                child_tgid,
                ..
            } => {
                bump(&self.counters.forks);
                if child_pid != child_tgid {
                    bump(&self.counters.thread_events);
                    return true;
                }
                self.fork(parent_tgid, child_tgid);
                true
            }
            ProcEvent::Exec { pid, tgid } => {
                bump(&self.counters.execs);
                if pid != tgid {
                    bump(&self.counters.thread_events);
                    return true;
                }
                let fork_parent = self.forked.remove(&tgid);
                let record = self.read(tgid, fork_parent);
                self.exec(record, Utc::now())
            }
            ProcEvent::Exit {
                pid,
                tgid,
                parent_tgid,
                ..
            } => {
                bump(&self.counters.exits);
                if pid != tgid {
                    bump(&self.counters.thread_events);
                    return true;
                }
                self.exit(tgid, parent_tgid, Utc::now())
            }
            // Other listeners' acknowledgements.
            ProcEvent::Ack { .. } => true,
            ProcEvent::Other { .. } => {
                bump(&self.counters.other);
                true
            }
        }
    }

    /// Process `child` was forked by `parent`: remembered until it execs or exits.
    pub(crate) fn fork(&mut self, parent: u32, child: u32) {
        if self.forked.len().max(self.last_exec.len()) >= self.prune_at {
            self.prune();
        }
        self.forked.insert(child, parent);
        self.last_exec.forget(child);
    }

    /// Process `record.pid` exec'd, at `at`: emitted after the forked ancestors it
    /// needs, unless it repeats its last exec. False when the pipeline has gone.
    pub(crate) fn exec(&mut self, record: ProcessRecord, at: DateTime<Utc>) -> bool {
        self.forked.remove(&record.pid);
        if self.last_exec.repeats(&record) {
            bump(&self.counters.repeated_execs);
            return true;
        }
        if let Some(ppid) = record.ppid {
            if !self.emit_forked_ancestors(ppid, at) {
                return false;
            }
        }
        self.emit(Action::Create, record, at)
    }

    /// Process `tgid` ended. False when the pipeline has gone.
    pub(crate) fn exit(&mut self, tgid: u32, parent: Option<u32>, at: DateTime<Utc>) -> bool {
        self.forked.remove(&tgid);
        self.last_exec.forget(tgid);
        let process = ProcessRecord {
            pid: tgid,
            ppid: parent.filter(|&p| p != 0),
            ..ProcessRecord::default()
        };
        self.emit(Action::Terminate, process, at)
    }

    /// The record of process `pid` from facts read elsewhere (the eBPF source's), as
    /// a `/proc` reading of them would give it.
    pub(crate) fn record_from(&mut self, pid: u32, info: &ProcInfo) -> ProcessRecord {
        info.to_record(pid, None, &mut self.users)
    }

    fn read(&mut self, pid: u32, known_ppid: Option<u32>) -> ProcessRecord {
        let (record, info) = self.procfs.record(pid, known_ppid, &mut self.users);
        if info.image_path.is_none() {
            bump(&self.counters.proc_missing);
        }
        record
    }

    /// Emits `pid` and its ancestors that were forked but never emitted, farthest
    /// first. Each is emitted once: it leaves `forked`.
    fn emit_forked_ancestors(&mut self, pid: u32, at: DateTime<Utc>) -> bool {
        let mut chain = Vec::new();
        let mut current = pid;
        while let Some(parent) = self.forked.remove(&current) {
            chain.push((current, parent));
            current = parent;
        }
        for (pid, parent) in chain.into_iter().rev() {
            let record = self.read(pid, Some(parent));
            if !self.emit(Action::Create, record, at) {
                return false;
            }
        }
        true
    }

    fn emit(&mut self, action: Action, process: ProcessRecord, at: DateTime<Utc>) -> bool {
        bump(&self.counters.emitted);
        let event = SourceEvent::live(
            self.source,
            action,
            Some(at),
            self.hostname.clone(),
            process,
        );
        self.sink.push(event)
    }

    /// The kernel dropped events: some exits may be lost, so forget the dead.
    fn overrun(&mut self) {
        bump(&self.counters.overruns);
        self.prune();
    }

    fn prune(&mut self) {
        let root = &self.procfs.root;
        let alive = |pid: u32| root.join(pid.to_string()).exists();
        self.forked.retain(|&pid, _| alive(pid));
        self.last_exec.retain(alive);
        self.prune_at = PENDING_PRUNE_AT.max(2 * self.forked.len().max(self.last_exec.len()));
    }
}

#[cfg(test)]
mod tests;
