//! Joins the two halves of each process start: Microsoft-Windows-Kernel-Process (full image
//! path, integrity level, real creator) and the kernel system logger (command line, user).
//!
//! The two arrive through separate sessions with their own buffers, so either may come
//! first, late, or never. A half waits up to [`JoinConfig::wait`] for its partner, then the
//! process is emitted with what is known. A partner that turns up after that is counted as
//! joined late and completes the process table entry with an `Existing` event (never a
//! second `Create`: the rules saw the process once).
//!
//! Two halves belong together when they name the same pid and parent pid and their
//! event-header timestamps lie within [`JoinConfig::match_window`]. Only header times are
//! compared: ferrisetw starts both sessions with the QPC clock and converts it from a
//! reference taken at session start, so header times do not follow a later step of the
//! system clock (w32time, VM time sync, `Set-Date`), while a payload's `CreateTime` or
//! `ExitTime` does. Those payload times are only written out, as the event's time.
//!
//! A termination carries the image name of its start (a Kernel-Process ProcessStop has
//! only an ANSI name cut to 14 characters).
//!
//! No clocks in here: the caller passes `now` (time since the source started) to every
//! call, so tests drive time explicitly.

use super::accounts::{AccountCounts, SidCache};
use super::paths::{DeviceMap, Resolved};
use super::raw::{
    KernelProcessStart, KernelProcessStop, RawEvent, SystemLoggerProcess, SL_DC_END, SL_DC_START,
    SL_END, SL_START,
};
use super::sid::{integrity_level, wbemsid_to_string};
use super::strings::{argv0, clean_command_line};
use super::time::filetime_to_utc;
use crate::record::{file_name, Action, ProcessRecord, SourceEvent, Text};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// The live ETW source's name in `Origin::kind`.
pub const ORIGIN_KIND: &str = "etw";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinConfig {
    /// How long a half waits for its partner before the process is emitted alone.
    pub wait: Duration,
    /// Two halves (or two terminations) of one process lie at most this far apart in event
    /// time; beyond it a reused pid is another process.
    pub match_window: Duration,
    /// How long a process emitted alone still accepts a late partner.
    pub late_memory: Duration,
    /// Processes waiting at most; beyond it the oldest are emitted early.
    pub max_pending: usize,
    /// Minimum time between two rebuilds of the device map after a miss.
    pub map_rebuild_interval: Duration,
    pub hostname: Option<String>,
}

impl Default for JoinConfig {
    fn default() -> Self {
        JoinConfig {
            // Each session flushes on its own 1 s timer, so the two halves of one
            // process can arrive about a second apart on a quiet host; a shorter wait
            // would report most processes with one half, the command line or the image
            // path missing when the rules see them.
            wait: Duration::from_millis(1500),
            match_window: Duration::from_secs(2),
            late_memory: Duration::from_secs(30),
            max_pending: 65_536,
            map_rebuild_interval: Duration::from_secs(10),
            hostname: None,
        }
    }
}

/// What the join did, for the stats line.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct JoinCounts {
    /// Creates emitted with both halves.
    pub joined: u64,
    /// Creates emitted alone whose partner came later (also counted in kernel_only or
    /// logger_only).
    pub joined_late: u64,
    /// Creates emitted with the Kernel-Process half only.
    pub kernel_only: u64,
    /// Creates emitted with the system logger half only.
    pub logger_only: u64,
    /// `Existing` events from the system logger's rundown.
    pub rundown: u64,
    pub terminated: u64,
    /// Terminations reported by the second source and dropped.
    pub duplicate_terminations: u64,
    /// Image paths no device mapping applied to.
    pub path_misses: u64,
    pub map_rebuilds: u64,
    /// Processes emitted before their wait because too many were pending.
    pub overflow: u64,
    /// Account name lookups (off the join thread).
    pub accounts: AccountCounts,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Half {
    Kernel,
    Logger,
}

#[derive(Clone, Debug)]
struct Ended {
    /// Header time: what the join compares.
    key: u64,
    /// The time written out: ProcessStop's `ExitTime` (the system clock, like the
    /// create's `CreateTime`), else the header time.
    output: u64,
    /// The system logger End's own name, for a process whose start was never seen.
    logger_exe: Option<String>,
}

/// What a terminate needs of the start of a process that was reported.
#[derive(Debug)]
struct Started {
    key: u64,
    exe: Option<Text>,
}

#[derive(Debug)]
struct Slot {
    id: u64,
    kernel: Option<KernelProcessStart>,
    logger: Option<SystemLoggerProcess>,
    /// Emitted alone already: now only waits for a late partner.
    emitted: bool,
    /// Termination seen: emitted right after the create (pending slot), or marks an
    /// emitted process as gone (a late partner then adds nothing).
    ended: Option<Ended>,
}

impl Slot {
    /// The header time of its kernel half, else of its logger half (0: unknown); the
    /// two sessions' header times share one clock.
    fn key(&self) -> u64 {
        self.kernel
            .as_ref()
            .map(|k| k.timestamp_filetime)
            .or_else(|| self.logger.as_ref().map(|l| l.timestamp_filetime))
            .unwrap_or(0)
    }

    fn parent_pid(&self) -> Option<u32> {
        self.kernel
            .as_ref()
            .and_then(|k| k.parent_pid)
            .or_else(|| self.logger.as_ref().and_then(|l| l.parent_pid))
    }
}

/// Two header times at most `window` apart, or one unknown (0).
fn near(a: u64, b: u64, window: u64) -> bool {
    a == 0 || b == 0 || a.abs_diff(b) <= window
}

/// A process that started at header time `start` can be the one ending at `end`.
fn started_before(start: u64, end: u64, window: u64) -> bool {
    start == 0 || end == 0 || start <= end.saturating_add(window)
}

/// Two parent pids name the same parent, or one is unknown.
fn same_parent(a: Option<u32>, b: Option<u32>) -> bool {
    a.zip(b).is_none_or(|(a, b)| a == b)
}

#[derive(Debug)]
struct TermSeen {
    half: Half,
    timestamp: u64,
    expires: Duration,
}

/// The join state machine.
pub struct Joiner {
    config: JoinConfig,
    window_100ns: u64,
    devices: DeviceMap,
    rebuild: Option<Box<dyn FnMut() -> DeviceMap + Send>>,
    last_rebuild: Option<Duration>,
    accounts: SidCache,
    known_images: HashMap<u32, String>,
    /// Processes reported (created or running at start) and not yet terminated.
    started: HashMap<u32, Started>,
    next_id: u64,
    slots: HashMap<u32, Vec<Slot>>,
    pending: usize,
    pending_q: VecDeque<(Duration, u32, u64)>,
    emitted_q: VecDeque<(Duration, u32, u64)>,
    terms: HashMap<u32, Vec<TermSeen>>,
    terms_q: VecDeque<(Duration, u32)>,
    counts: JoinCounts,
}

impl std::fmt::Debug for Joiner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Joiner")
            .field("config", &self.config)
            .field("pending", &self.pending)
            .field("counts", &self.counts)
            .finish()
    }
}

impl Joiner {
    pub fn new(config: JoinConfig, devices: DeviceMap, accounts: SidCache) -> Joiner {
        let window_100ns = u64::try_from(config.match_window.as_nanos() / 100).unwrap_or(u64::MAX);
        Joiner {
            config,
            window_100ns,
            devices,
            rebuild: None,
            last_rebuild: None,
            accounts,
            known_images: HashMap::new(),
            started: HashMap::new(),
            next_id: 0,
            slots: HashMap::new(),
            pending: 0,
            pending_q: VecDeque::new(),
            emitted_q: VecDeque::new(),
            terms: HashMap::new(),
            terms_q: VecDeque::new(),
            counts: JoinCounts::default(),
        }
    }

    /// How to rebuild the device map when an image path matches no device.
    pub fn with_map_rebuild(mut self, rebuild: Box<dyn FnMut() -> DeviceMap + Send>) -> Joiner {
        self.rebuild = Some(rebuild);
        self
    }

    /// Full image paths of processes already running (from a snapshot), so the rundown's
    /// `Existing` events carry them (the system logger has only the short name).
    pub fn remember_images<I: IntoIterator<Item = (u32, String)>>(&mut self, images: I) {
        self.known_images.extend(images);
    }

    pub fn counts(&self) -> JoinCounts {
        JoinCounts {
            accounts: self.accounts.counts(),
            ..self.counts
        }
    }

    /// Processes waiting for their partner.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.pending
    }

    #[cfg(test)]
    pub fn wait_for_account(&mut self, now: Duration) -> bool {
        self.accounts.wait_for_answer(now)
    }

    /// When the next pending process is due (for the caller's receive timeout).
    pub fn next_deadline(&self) -> Option<Duration> {
        self.pending_q.front().map(|(t, _, _)| *t)
    }

    /// Feeds one raw event; returns what can be emitted now.
    pub fn on_raw(&mut self, raw: RawEvent, now: Duration) -> Vec<SourceEvent> {
        let mut out = Vec::new();
        match raw {
            RawEvent::KernelStart(k) => self.on_start(Some(k), None, now, &mut out),
            RawEvent::KernelStop(s) => self.on_kernel_stop(s, now, &mut out),
            RawEvent::Logger(l) => match l.opcode {
                SL_START => self.on_start(None, Some(l), now, &mut out),
                SL_END => {
                    let ended = Ended {
                        key: l.timestamp_filetime,
                        output: l.timestamp_filetime,
                        logger_exe: complete_exe(&l.image_file_name, &l.command_line),
                    };
                    self.on_terminate(Half::Logger, l.pid, ended, now, &mut out)
                }
                SL_DC_START => {
                    self.counts.rundown += 1;
                    let ev = self.rundown_event(&l, now);
                    out.push(ev);
                }
                SL_DC_END => {}
                _ => {}
            },
        }
        self.enforce_capacity(now, &mut out);
        out
    }

    /// Emits the processes whose wait is over, and forgets what is too old to matter.
    pub fn tick(&mut self, now: Duration) -> Vec<SourceEvent> {
        let mut out = Vec::new();
        while let Some(&(due, pid, id)) = self.pending_q.front() {
            if due > now {
                break;
            }
            self.pending_q.pop_front();
            self.emit_alone(pid, id, now, &mut out);
        }
        while let Some(&(due, pid, id)) = self.emitted_q.front() {
            if due > now {
                break;
            }
            self.emitted_q.pop_front();
            self.remove_slot(pid, id, true);
        }
        while let Some(&(due, pid)) = self.terms_q.front() {
            if due > now {
                break;
            }
            self.terms_q.pop_front();
            if let Some(list) = self.terms.get_mut(&pid) {
                list.retain(|t| t.expires > now);
                if list.is_empty() {
                    self.terms.remove(&pid);
                }
            }
        }
        out
    }

    /// Emits everything still pending (at shutdown).
    pub fn flush(&mut self, now: Duration) -> Vec<SourceEvent> {
        let mut out = Vec::new();
        while let Some((_, pid, id)) = self.pending_q.pop_front() {
            self.emit_alone(pid, id, now, &mut out);
        }
        out
    }

    fn within(&self, a: u64, b: u64) -> bool {
        near(a, b, self.window_100ns)
    }

    fn on_start(
        &mut self,
        kernel: Option<KernelProcessStart>,
        logger: Option<SystemLoggerProcess>,
        now: Duration,
        out: &mut Vec<SourceEvent>,
    ) {
        let (pid, half, key, parent) = match (&kernel, &logger) {
            (Some(k), _) => (k.pid, Half::Kernel, k.timestamp_filetime, k.parent_pid),
            (None, Some(l)) => (l.pid, Half::Logger, l.timestamp_filetime, l.parent_pid),
            (None, None) => return,
        };
        let partner = self.slots.get(&pid).and_then(|slots| {
            slots.iter().position(|s| {
                let open = match half {
                    Half::Kernel => s.kernel.is_none() && s.logger.is_some(),
                    Half::Logger => s.logger.is_none() && s.kernel.is_some(),
                };
                open && self.within(s.key(), key) && same_parent(s.parent_pid(), parent)
            })
        });
        let Some(index) = partner else {
            let id = self.next_id;
            self.next_id += 1;
            self.slots.entry(pid).or_default().push(Slot {
                id,
                kernel,
                logger,
                emitted: false,
                ended: None,
            });
            self.pending += 1;
            self.pending_q.push_back((now + self.config.wait, pid, id));
            return;
        };
        let Some(slot) = self.take_slot(pid, index) else {
            return;
        };
        let kernel = kernel.or(slot.kernel);
        let logger = logger.or(slot.logger);
        if !slot.emitted {
            self.pending -= 1;
            self.counts.joined += 1;
            let ev = self.start_event(Action::Create, kernel.as_ref(), logger.as_ref(), now);
            out.push(ev);
            if let Some(ended) = slot.ended {
                self.push_terminate(pid, ended, out);
            }
        } else {
            self.counts.joined_late += 1;
            if slot.ended.is_none() {
                let ev = self.start_event(Action::Existing, kernel.as_ref(), logger.as_ref(), now);
                out.push(ev);
            }
        }
    }

    fn on_kernel_stop(&mut self, s: KernelProcessStop, now: Duration, out: &mut Vec<SourceEvent>) {
        // Not its ImageName: ANSI, cut to 14 characters.
        let ended = Ended {
            key: s.timestamp_filetime,
            output: if s.exit_time_filetime != 0 {
                s.exit_time_filetime
            } else {
                s.timestamp_filetime
            },
            logger_exe: None,
        };
        self.on_terminate(Half::Kernel, s.pid, ended, now, out);
    }

    fn on_terminate(
        &mut self,
        half: Half,
        pid: u32,
        ended: Ended,
        now: Duration,
        out: &mut Vec<SourceEvent>,
    ) {
        let timestamp = ended.key;
        // The other source's report of a termination already handled?
        let window = self.window_100ns;
        if let Some(list) = self.terms.get_mut(&pid) {
            if let Some(i) = list
                .iter()
                .position(|t| t.half != half && near(t.timestamp, timestamp, window))
            {
                list.remove(i);
                self.counts.duplicate_terminations += 1;
                return;
            }
        }
        let expires = now + self.config.late_memory;
        self.terms.entry(pid).or_default().push(TermSeen {
            half,
            timestamp,
            expires,
        });
        self.terms_q.push_back((expires, pid));

        if let Some(slots) = self.slots.get_mut(&pid) {
            // A create still waiting for its partner: terminate right after it.
            let before = |s: &Slot| started_before(s.key(), timestamp, window);
            if let Some(slot) = slots
                .iter_mut()
                .rev()
                .find(|s| !s.emitted && s.ended.is_none() && before(s))
            {
                slot.ended = Some(ended);
                return;
            }
            // Processes emitted alone: a late partner must not bring them back.
            for slot in slots.iter_mut().filter(|s| s.emitted && before(s)) {
                slot.ended.get_or_insert_with(|| ended.clone());
            }
        }
        self.push_terminate(pid, ended, out);
    }

    fn push_terminate(&mut self, pid: u32, ended: Ended, out: &mut Vec<SourceEvent>) {
        self.counts.terminated += 1;
        let window = self.window_100ns;
        let started =
            (self.started.remove(&pid)).filter(|s| started_before(s.key, ended.key, window));
        let process = ProcessRecord {
            pid,
            exe: started
                .and_then(|s| s.exe)
                .or(ended.logger_exe.map(Text::from)),
            ..Default::default()
        };
        out.push(self.event(Action::Terminate, filetime_to_utc(ended.output), process));
    }

    /// Remembers a reported process for its terminate.
    fn remember_start(&mut self, key: u64, process: &ProcessRecord) {
        let exe = process.exe.clone();
        self.started.insert(process.pid, Started { key, exe });
    }

    fn emit_alone(&mut self, pid: u32, id: u64, now: Duration, out: &mut Vec<SourceEvent>) {
        let Some(slots) = self.slots.get_mut(&pid) else {
            return;
        };
        let Some(slot) = slots.iter_mut().find(|s| s.id == id && !s.emitted) else {
            return;
        };
        slot.emitted = true;
        let kernel = slot.kernel.clone();
        let logger = slot.logger.clone();
        let ended = slot.ended.clone();
        self.pending -= 1;
        if kernel.is_some() {
            self.counts.kernel_only += 1;
        } else {
            self.counts.logger_only += 1;
        }
        let ev = self.start_event(Action::Create, kernel.as_ref(), logger.as_ref(), now);
        out.push(ev);
        if let Some(ended) = ended {
            self.push_terminate(pid, ended, out);
        }
        self.emitted_q
            .push_back((now + self.config.late_memory, pid, id));
    }

    fn enforce_capacity(&mut self, now: Duration, out: &mut Vec<SourceEvent>) {
        while self.pending > self.config.max_pending {
            let Some((_, pid, id)) = self.pending_q.pop_front() else {
                break;
            };
            let before = self.pending;
            self.emit_alone(pid, id, now, out);
            if self.pending < before {
                self.counts.overflow += 1;
            }
        }
    }

    fn take_slot(&mut self, pid: u32, index: usize) -> Option<Slot> {
        let slots = self.slots.get_mut(&pid)?;
        let slot = (index < slots.len()).then(|| slots.remove(index));
        if slots.is_empty() {
            self.slots.remove(&pid);
        }
        slot
    }

    fn remove_slot(&mut self, pid: u32, id: u64, only_emitted: bool) {
        if let Some(slots) = self.slots.get_mut(&pid) {
            slots.retain(|s| s.id != id || (only_emitted && !s.emitted));
            if slots.is_empty() {
                self.slots.remove(&pid);
            }
        }
    }

    fn resolve_path(&mut self, nt: &str, now: Duration) -> String {
        match self.devices.to_dos(nt) {
            Resolved::Dos(path) => path,
            Resolved::Miss(original) => {
                self.counts.path_misses += 1;
                let due = match self.last_rebuild {
                    None => true,
                    Some(t) => now >= t + self.config.map_rebuild_interval,
                };
                if let (true, Some(rebuild)) = (due, self.rebuild.as_mut()) {
                    self.devices = rebuild();
                    self.last_rebuild = Some(now);
                    self.counts.map_rebuilds += 1;
                    if let Resolved::Dos(path) = self.devices.to_dos(nt) {
                        return path;
                    }
                }
                original
            }
        }
    }

    fn logger_fields(&mut self, l: &SystemLoggerProcess, p: &mut ProcessRecord, now: Duration) {
        let cmd = clean_command_line(&l.command_line);
        if !cmd.is_empty() {
            p.command_line = Some(cmd.into());
        }
        p.sid = l
            .user_sid
            .as_deref()
            .and_then(|b| wbemsid_to_string(b, usize::from(l.pointer_size)))
            .map(Text::from);
        p.user = p
            .sid
            .as_deref()
            .and_then(|s| self.accounts.resolve(s, now))
            .map(Text::from);
        if p.ppid.is_none() {
            p.ppid = l.parent_pid;
        }
        // A Start is logged by the process that called CreateProcess (a rundown's
        // header names no creator).
        if p.creator_pid.is_none() && l.opcode == SL_START && l.header_pid != 0 {
            p.creator_pid = Some(l.header_pid);
        }
        if p.image_path.is_none() {
            p.exe = complete_exe(&l.image_file_name, p.command_line.as_deref().unwrap_or(""))
                .map(Text::from);
        }
    }

    fn start_event(
        &mut self,
        action: Action,
        kernel: Option<&KernelProcessStart>,
        logger: Option<&SystemLoggerProcess>,
        now: Duration,
    ) -> SourceEvent {
        let mut p = ProcessRecord {
            pid: kernel.map(|k| k.pid).or(logger.map(|l| l.pid)).unwrap_or(0),
            ..Default::default()
        };
        if let Some(k) = kernel {
            if !k.image_name.is_empty() {
                p.image_path = Some(self.resolve_path(&k.image_name, now).into());
            }
            p.ppid = k.parent_pid;
            p.creator_pid = Some(k.creator_pid);
            p.integrity_level = k
                .mandatory_label
                .as_deref()
                .and_then(integrity_level)
                .map(Text::from);
        }
        if let Some(l) = logger {
            self.logger_fields(l, &mut p, now);
        }
        p.fill_exe();
        let header = kernel.map(|k| k.timestamp_filetime);
        let header = header.or(logger.map(|l| l.timestamp_filetime));
        self.remember_start(header.unwrap_or(0), &p);
        let timestamp = kernel
            .and_then(|k| filetime_to_utc(k.create_time_filetime))
            .or_else(|| header.and_then(filetime_to_utc));
        self.event(action, timestamp, p)
    }

    fn rundown_event(&mut self, l: &SystemLoggerProcess, now: Duration) -> SourceEvent {
        let mut p = ProcessRecord {
            pid: l.pid,
            ..Default::default()
        };
        self.logger_fields(l, &mut p, now);
        if let (Some(path), Some(exe)) = (self.known_images.get(&l.pid), p.exe.as_deref()) {
            let full = file_name(path).to_ascii_lowercase();
            if !exe.is_empty() && full.starts_with(&exe.to_ascii_lowercase()) {
                p.exe = Some(file_name(path).into());
                p.image_path = Some(path.as_str().into());
            }
        }
        self.remember_start(l.timestamp_filetime, &p);
        self.event(Action::Existing, filetime_to_utc(l.timestamp_filetime), p)
    }

    fn event(
        &self,
        action: Action,
        timestamp: Option<DateTime<Utc>>,
        process: ProcessRecord,
    ) -> SourceEvent {
        let hostname = self.config.hostname.as_deref().map(Text::from);
        SourceEvent::live(ORIGIN_KIND, action, timestamp, hostname, process)
    }
}

/// The system logger's `ImageFileName`, completed from the command line's `argv[0]` when
/// that file name extends it: Windows 7 sends the EPROCESS name, cut to 15 characters
/// (`UMWorkerProcess`); Windows 8 and later send the whole name, which this keeps.
pub fn complete_exe(short: &str, command_line: &str) -> Option<String> {
    if short.is_empty() {
        return None;
    }
    if short.chars().count() >= 14 {
        let full = file_name(argv0(command_line));
        if full.len() > short.len() && full.to_lowercase().starts_with(&short.to_lowercase()) {
            return Some(full.to_string());
        }
    }
    Some(short.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Location, Origin};
    use crate::source::etw_logic::accounts::tests::gated;
    use crate::source::etw_logic::accounts::AccountSettings;
    use crate::source::etw_logic::raw::tests::CREATE_TIME;
    use crate::source::etw_logic::sid::tests::{user_sid_bytes, wbemsid};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    const MS: u64 = 10_000; // 100 ns units per millisecond
    const USER_SID: &str = "S-1-5-21-1004336348-1177238915-682003330-1001";

    /// An account cache that knows the test user already (lookups: `accounts`).
    fn accounts() -> SidCache {
        let (mut accounts, _lookup, open) = gated(AccountSettings::default());
        open.send(()).unwrap();
        assert_eq!(accounts.resolve(USER_SID, Duration::ZERO), None);
        assert!(accounts.wait_for_answer(Duration::ZERO));
        accounts
    }

    fn devices() -> DeviceMap {
        let mut m = DeviceMap::new().with_system_root(r"C:\Windows");
        m.insert("C:", r"\Device\HarddiskVolume3");
        m
    }

    fn joiner() -> Joiner {
        let config = JoinConfig {
            wait: ms(500),
            hostname: Some("web01".into()),
            ..JoinConfig::default()
        };
        Joiner::new(config, devices(), accounts())
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn kstart(pid: u32, ppid: u32, creator: u32, image: &str, t: u64) -> RawEvent {
        RawEvent::KernelStart(KernelProcessStart {
            pid,
            parent_pid: Some(ppid),
            create_time_filetime: t,
            session_id: Some(0),
            image_name: image.to_string(),
            mandatory_label: Some("S-1-16-12288".into()),
            creator_pid: creator,
            timestamp_filetime: t + 5,
            version: 3,
        })
    }

    fn kstop(pid: u32, t: u64) -> RawEvent {
        RawEvent::KernelStop(KernelProcessStop {
            pid,
            create_time_filetime: 0,
            exit_time_filetime: t,
            exit_code: Some(0),
            timestamp_filetime: t,
        })
    }

    fn logger(opcode: u8, pid: u32, ppid: u32, name: &str, cmd: &str, t: u64) -> RawEvent {
        RawEvent::Logger(SystemLoggerProcess {
            opcode,
            pid,
            // a Start is logged by its creator (here the parent), an End by the process
            header_pid: if opcode == SL_START { ppid } else { pid },
            parent_pid: Some(ppid),
            session_id: Some(0),
            exit_status: Some(259),
            user_sid: Some(wbemsid(&user_sid_bytes())),
            image_file_name: name.to_string(),
            command_line: cmd.to_string(),
            timestamp_filetime: t,
            pointer_size: 8,
        })
    }

    const CMD: &str = r"\Device\HarddiskVolume3\Windows\System32\cmd.exe";
    const CMDLINE: &str = r#"\??\C:\Windows\system32\cmd.exe /c "cd /d C:\inetpub && whoami""#;

    fn assert_full_create(ev: &SourceEvent) {
        assert_eq!(ev.action, Action::Create);
        let p = &ev.process;
        assert_eq!(p.pid, 5120);
        assert_eq!(p.ppid, Some(4012));
        assert_eq!(p.creator_pid, Some(4012));
        assert_eq!(p.exe.as_deref(), Some("cmd.exe"));
        assert_eq!(
            p.image_path.as_deref(),
            Some(r"C:\Windows\System32\cmd.exe")
        );
        assert_eq!(
            p.command_line.as_deref(),
            Some(r#"C:\Windows\system32\cmd.exe /c "cd /d C:\inetpub && whoami""#)
        );
        assert_eq!(p.sid.as_deref(), Some(USER_SID));
        assert_eq!(p.user.as_deref(), Some(r"CONTOSO\web"));
        assert_eq!(p.integrity_level.as_deref(), Some("High"));
        assert_eq!(ev.timestamp, filetime_to_utc(CREATE_TIME));
        assert_eq!(ev.hostname.as_deref(), Some("web01"));
        assert_eq!(
            ev.origin,
            Origin {
                kind: "etw",
                file: None,
                location: Location::Live
            }
        );
    }

    #[test]
    fn kernel_half_first_then_logger_half() {
        let mut j = joiner();
        assert!(j
            .on_raw(kstart(5120, 4012, 4012, CMD, CREATE_TIME), ms(0))
            .is_empty());
        assert_eq!(j.pending(), 1);
        assert_eq!(j.next_deadline(), Some(ms(500)));
        assert!(j.tick(ms(499)).is_empty());
        let out = j.on_raw(
            logger(1, 5120, 4012, "cmd.exe", CMDLINE, CREATE_TIME + 3 * MS),
            ms(200),
        );
        assert_eq!(out.len(), 1);
        assert_full_create(&out[0]);
        assert_eq!(j.pending(), 0);
        assert!(j.tick(ms(10_000)).is_empty());
        let c = j.counts();
        assert_eq!(
            (c.joined, c.joined_late, c.kernel_only, c.logger_only),
            (1, 0, 0, 0)
        );
    }

    #[test]
    fn logger_half_first_then_kernel_half() {
        let mut j = joiner();
        assert!(j
            .on_raw(
                logger(1, 5120, 4012, "cmd.exe", CMDLINE, CREATE_TIME + 3 * MS),
                ms(0)
            )
            .is_empty());
        let out = j.on_raw(kstart(5120, 4012, 4012, CMD, CREATE_TIME), ms(499));
        assert_eq!(out.len(), 1);
        assert_full_create(&out[0]);
        assert_eq!(j.counts().joined, 1);
    }

    #[test]
    fn kernel_only_after_the_wait_then_a_late_partner_completes_the_table() {
        let mut j = joiner();
        j.on_raw(kstart(5120, 4012, 4012, CMD, CREATE_TIME), ms(0));
        let out = j.tick(ms(500));
        assert_eq!(out.len(), 1);
        let p = &out[0].process;
        assert_eq!(out[0].action, Action::Create);
        assert_eq!(
            p.image_path.as_deref(),
            Some(r"C:\Windows\System32\cmd.exe")
        );
        assert_eq!((p.command_line.as_deref(), p.user.as_deref()), (None, None));
        assert_eq!(j.counts().kernel_only, 1);
        // the command line comes 700 ms later: no second Create, an Existing update
        let out = j.on_raw(
            logger(1, 5120, 4012, "cmd.exe", CMDLINE, CREATE_TIME + 3 * MS),
            ms(700),
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].action, Action::Existing);
        assert!(out[0].process.command_line.is_some());
        assert_eq!(
            out[0].process.image_path.as_deref(),
            Some(r"C:\Windows\System32\cmd.exe")
        );
        let c = j.counts();
        assert_eq!((c.joined, c.joined_late, c.kernel_only), (0, 1, 1));
    }

    #[test]
    fn logger_only_when_the_kernel_half_never_comes() {
        let mut j = joiner();
        j.on_raw(
            logger(
                1,
                700,
                600,
                "UMWorkerProcess",
                r#""C:\Program Files\Microsoft\Exchange Server\V15\Bin\UMWorkerProcess.exe" -x"#,
                CREATE_TIME,
            ),
            ms(0),
        );
        let out = j.tick(ms(600));
        assert_eq!(out.len(), 1);
        let p = &out[0].process;
        assert_eq!(p.exe.as_deref(), Some("UMWorkerProcess.exe"));
        assert_eq!(p.image_path, None);
        assert_eq!(p.ppid, Some(600));
        // the Start's header names its creator
        assert_eq!(p.creator_pid, Some(600));
        assert_eq!(p.user.as_deref(), Some(r"CONTOSO\web"));
        assert_eq!(out[0].timestamp, filetime_to_utc(CREATE_TIME));
        assert_eq!(j.counts().logger_only, 1);
    }

    #[test]
    fn no_event_waits_for_an_account_name() {
        let (accounts, lookup, open) = gated(AccountSettings::default());
        let config = JoinConfig {
            wait: ms(500),
            ..JoinConfig::default()
        };
        let mut j = Joiner::new(config, devices(), accounts);
        // the lookup blocks until the gate opens; the process goes out with its SID
        j.on_raw(
            logger(1, 5120, 4012, "cmd.exe", CMDLINE, CREATE_TIME),
            ms(0),
        );
        let out = j.tick(ms(500));
        let p = &out[0].process;
        assert_eq!(
            (p.sid.as_deref(), p.user.as_deref()),
            (Some(USER_SID), None)
        );
        // answered: the next process of that SID carries the name
        open.send(()).unwrap();
        assert!(j.wait_for_account(ms(600)));
        let rundown = logger(3, 5121, 4012, "cmd.exe", CMDLINE, CREATE_TIME);
        let out = j.on_raw(rundown, ms(700));
        assert_eq!(out[0].process.user.as_deref(), Some(r"CONTOSO\web"));
        assert_eq!(lookup.asked.lock().unwrap().len(), 1);
        assert_eq!(j.counts().accounts.lookups, 1);
    }

    #[test]
    fn short_lived_child_is_created_before_it_terminates_and_terminates_once() {
        // whoami.exe: both Kernel-Process events arrive, the system logger's much later
        let mut j = joiner();
        let whoami = r"\Device\HarddiskVolume3\Windows\System32\whoami.exe";
        assert!(j
            .on_raw(kstart(6000, 5120, 5120, whoami, CREATE_TIME), ms(0))
            .is_empty());
        assert!(j
            .on_raw(kstop(6000, CREATE_TIME + 20 * MS), ms(1))
            .is_empty());
        let out = j.tick(ms(500));
        let actions: Vec<Action> = out.iter().map(|e| e.action).collect();
        assert_eq!(actions, [Action::Create, Action::Terminate]);
        assert_eq!(out[1].process.pid, 6000);
        assert_eq!(out[1].process.exe.as_deref(), Some("whoami.exe"));
        assert_eq!(out[1].timestamp, filetime_to_utc(CREATE_TIME + 20 * MS));
        // the system logger's halves, late: nothing more for the pipeline
        assert!(j
            .on_raw(
                logger(1, 6000, 5120, "whoami.exe", "whoami", CREATE_TIME + MS),
                ms(900)
            )
            .is_empty());
        assert!(j
            .on_raw(
                logger(2, 6000, 5120, "whoami.exe", "", CREATE_TIME + 21 * MS),
                ms(901)
            )
            .is_empty());
        let c = j.counts();
        assert_eq!(
            (
                c.kernel_only,
                c.joined_late,
                c.terminated,
                c.duplicate_terminations
            ),
            (1, 1, 1, 1)
        );
    }

    /// A Kernel-Process start whose payload `CreateTime` is `step` (100 ns) off its
    /// header time, as after a step of the system clock.
    fn kstart_stepped(pid: u32, ppid: u32, header: u64, step: i64) -> RawEvent {
        let mut raw = kstart(pid, ppid, ppid, CMD, 0);
        if let RawEvent::KernelStart(k) = &mut raw {
            k.timestamp_filetime = header;
            k.create_time_filetime = header.saturating_add_signed(step);
        }
        raw
    }

    fn kstop_stepped(pid: u32, header: u64, step: i64) -> RawEvent {
        let mut raw = kstop(pid, header);
        if let RawEvent::KernelStop(s) = &mut raw {
            s.exit_time_filetime = header.saturating_add_signed(step);
        }
        raw
    }

    #[test]
    fn a_clock_step_changes_nothing_the_join_compares() {
        const SECOND: i64 = 10_000_000;
        for step in [5 * SECOND, -5 * SECOND, 3600 * SECOND, -3600 * SECOND] {
            for kernel_first in [true, false] {
                let mut j = joiner();
                let mut out = Vec::new();
                // pid 900 twice: reused 10 s later, under another parent
                for (i, (pid, ppid)) in [(900, 4012), (901, 4012), (900, 5000)].iter().enumerate() {
                    let (pid, ppid) = (*pid, *ppid);
                    let header = CREATE_TIME + i as u64 * 10_000 * MS;
                    let now = ms(i as u64 * 10_000);
                    let kernel = [
                        kstart_stepped(pid, ppid, header, step),
                        kstop_stepped(pid, header + 50 * MS, step),
                    ];
                    let system_logger = [
                        logger(1, pid, ppid, "cmd.exe", CMDLINE, header + 4 * MS),
                        logger(2, pid, ppid, "cmd.exe", "", header + 51 * MS),
                    ];
                    let (first, second) = if kernel_first {
                        (kernel, system_logger)
                    } else {
                        (system_logger, kernel)
                    };
                    for (k, raw) in first.into_iter().enumerate() {
                        out.extend(j.on_raw(raw, now + ms(k as u64)));
                    }
                    for (k, raw) in second.into_iter().enumerate() {
                        out.extend(j.on_raw(raw, now + ms(400 + k as u64)));
                    }
                    out.extend(j.tick(now + ms(5_000)));
                }
                out.extend(j.flush(ms(60_000)));
                let what = format!("step {step}, kernel first: {kernel_first}");
                let seq: Vec<(Action, u32)> =
                    out.iter().map(|e| (e.action, e.process.pid)).collect();
                assert_eq!(
                    seq,
                    [
                        (Action::Create, 900),
                        (Action::Terminate, 900),
                        (Action::Create, 901),
                        (Action::Terminate, 901),
                        (Action::Create, 900),
                        (Action::Terminate, 900),
                    ],
                    "{what}"
                );
                for (i, create) in out.iter().step_by(2).enumerate() {
                    let p = &create.process;
                    assert!(p.command_line.is_some() && p.image_path.is_some(), "{what}");
                    // the payload's CreateTime is what is written out
                    let header = CREATE_TIME + i as u64 * 10_000 * MS;
                    let create_time = header.saturating_add_signed(step);
                    assert_eq!(create.timestamp, filetime_to_utc(create_time), "{what}");
                }
                let c = j.counts();
                assert_eq!(
                    (c.joined, c.kernel_only, c.logger_only, c.joined_late),
                    (3, 0, 0, 0),
                    "{what}"
                );
                assert_eq!((c.terminated, c.duplicate_terminations), (3, 3), "{what}");
            }
        }
    }

    #[test]
    fn a_terminate_names_the_image_of_its_start_not_the_cut_stop_name() {
        let mut j = joiner();
        let image = r"\Device\HarddiskVolume3\Windows\System32\SearchProtocolHost.exe";
        j.on_raw(kstart(700, 600, 600, image, CREATE_TIME), ms(0));
        j.tick(ms(500));
        let out = j.on_raw(kstop(700, CREATE_TIME + 900 * MS), ms(900));
        assert_eq!(out[0].action, Action::Terminate);
        assert_eq!(
            out[0].process.exe.as_deref(),
            Some("SearchProtocolHost.exe")
        );
        // a process running at start: the rundown's name
        j.on_raw(
            logger(3, 710, 600, "SearchFilterHost.exe", "", CREATE_TIME),
            ms(901),
        );
        let out = j.on_raw(kstop(710, CREATE_TIME + MS), ms(902));
        assert_eq!(out[0].process.exe.as_deref(), Some("SearchFilterHost.exe"));
        // a start never seen: no name rather than a cut one
        let out = j.on_raw(kstop(720, CREATE_TIME + MS), ms(903));
        assert_eq!(
            (out[0].action, out[0].process.exe.as_deref()),
            (Action::Terminate, None)
        );
        // the same pid again, after the terminate: its new start's name
        j.on_raw(
            kstart(700, 600, 600, CMD, CREATE_TIME + 2_000 * MS),
            ms(2_000),
        );
        j.tick(ms(2_500));
        let out = j.on_raw(kstop(700, CREATE_TIME + 2_100 * MS), ms(2_600));
        assert_eq!(out[0].process.exe.as_deref(), Some("cmd.exe"));
    }

    #[test]
    fn termination_seen_while_pending_follows_the_joined_create() {
        let mut j = joiner();
        j.on_raw(
            logger(1, 5120, 4012, "cmd.exe", CMDLINE, CREATE_TIME + MS),
            ms(0),
        );
        assert!(j
            .on_raw(
                logger(2, 5120, 4012, "cmd.exe", "", CREATE_TIME + 9 * MS),
                ms(1)
            )
            .is_empty());
        let out = j.on_raw(kstart(5120, 4012, 4012, CMD, CREATE_TIME), ms(300));
        let actions: Vec<Action> = out.iter().map(|e| e.action).collect();
        assert_eq!(actions, [Action::Create, Action::Terminate]);
        assert_full_create(&out[0]);
        assert!(j
            .on_raw(kstop(5120, CREATE_TIME + 9 * MS), ms(310))
            .is_empty());
        assert_eq!(j.counts().duplicate_terminations, 1);
        assert!(j.tick(ms(60_000)).is_empty());
    }

    #[test]
    fn termination_of_a_process_older_than_the_session() {
        let mut j = joiner();
        let out = j.on_raw(logger(2, 300, 4, "svchost.exe", "", CREATE_TIME), ms(0));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].action, Action::Terminate);
        assert_eq!(out[0].process.exe.as_deref(), Some("svchost.exe"));
        assert!(j.on_raw(kstop(300, CREATE_TIME + MS), ms(5)).is_empty());
        // after the memory expires, the same pid's next termination is reported again
        j.tick(ms(31_000));
        assert_eq!(
            j.on_raw(kstop(300, CREATE_TIME + 400_000 * MS), ms(31_001))
                .len(),
            1
        );
        assert_eq!(j.counts().terminated, 2);
    }

    #[test]
    fn a_reused_pid_is_another_process() {
        // the logger half 10 s of header time later, or 3 ms later under another parent
        for (delay, ppid) in [(10_000 * MS, 4012), (3 * MS, 5000)] {
            let mut j = joiner();
            j.on_raw(kstart(800, 4012, 4012, CMD, CREATE_TIME), ms(0));
            j.on_raw(
                logger(1, 800, ppid, "cmd.exe", CMDLINE, CREATE_TIME + delay),
                ms(100),
            );
            assert_eq!(j.pending(), 2);
            let out = j.tick(ms(700));
            let parents: Vec<Option<u32>> = out.iter().map(|e| e.process.ppid).collect();
            assert_eq!(parents, [Some(4012), Some(ppid)]);
            let c = j.counts();
            assert_eq!((c.joined, c.kernel_only, c.logger_only), (0, 1, 1));
        }
    }

    #[test]
    fn rundown_gives_existing_processes_with_snapshot_paths() {
        let mut j = joiner();
        j.remember_images([(2100, r"C:\Windows\System32\inetsrv\w3wp.exe".to_string())]);
        let out = j.on_raw(
            logger(
                3,
                2100,
                900,
                "w3wp.exe",
                r#"c:\windows\system32\inetsrv\w3wp.exe -ap "DefaultAppPool""#,
                CREATE_TIME,
            ),
            ms(0),
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].action, Action::Existing);
        let p = &out[0].process;
        assert_eq!(
            p.image_path.as_deref(),
            Some(r"C:\Windows\System32\inetsrv\w3wp.exe")
        );
        assert_eq!(p.exe.as_deref(), Some("w3wp.exe"));
        assert!(p
            .command_line
            .as_deref()
            .unwrap()
            .contains("DefaultAppPool"));
        // a snapshot path of another program (pid reused since) is not taken
        j.remember_images([(2200, r"C:\x\other.exe".to_string())]);
        let out = j.on_raw(logger(3, 2200, 900, "notepad.exe", "", CREATE_TIME), ms(0));
        assert_eq!(out[0].process.image_path, None);
        assert_eq!(out[0].process.exe.as_deref(), Some("notepad.exe"));
        assert!(j
            .on_raw(logger(4, 2200, 900, "notepad.exe", "", CREATE_TIME), ms(0))
            .is_empty());
        assert_eq!(j.counts().rundown, 2);
        assert_eq!(j.pending(), 0);
    }

    #[test]
    fn a_device_map_miss_rebuilds_the_map_at_most_once_per_interval() {
        let rebuilds = Arc::new(AtomicU32::new(0));
        let r = rebuilds.clone();
        let mut j = joiner().with_map_rebuild(Box::new(move || {
            r.fetch_add(1, Ordering::SeqCst);
            let mut m = devices();
            m.insert("E:", r"\Device\HarddiskVolume7");
            m
        }));
        j.on_raw(
            kstart(
                1,
                4,
                4,
                r"\Device\HarddiskVolume7\tools\nc.exe",
                CREATE_TIME,
            ),
            ms(0),
        );
        let out = j.tick(ms(500));
        assert_eq!(
            out[0].process.image_path.as_deref(),
            Some(r"E:\tools\nc.exe")
        );
        j.on_raw(
            kstart(2, 4, 4, r"\Device\HarddiskVolume9\a.exe", CREATE_TIME),
            ms(600),
        );
        j.on_raw(
            kstart(3, 4, 4, r"\Device\HarddiskVolume9\b.exe", CREATE_TIME),
            ms(700),
        );
        let out = j.tick(ms(1_300));
        assert_eq!(
            out[0].process.image_path.as_deref(),
            Some(r"\Device\HarddiskVolume9\a.exe")
        );
        assert_eq!(out[1].process.exe.as_deref(), Some("b.exe"));
        assert_eq!(rebuilds.load(Ordering::SeqCst), 1);
        let c = j.counts();
        assert_eq!((c.path_misses, c.map_rebuilds), (3, 1));
    }

    #[test]
    fn flush_and_capacity_emit_early() {
        let config = JoinConfig {
            max_pending: 2,
            ..JoinConfig::default()
        };
        let mut j = Joiner::new(config, devices(), accounts());
        assert!(j
            .on_raw(kstart(1, 4, 4, CMD, CREATE_TIME), ms(0))
            .is_empty());
        assert!(j
            .on_raw(kstart(2, 4, 4, CMD, CREATE_TIME), ms(1))
            .is_empty());
        let out = j.on_raw(kstart(3, 4, 4, CMD, CREATE_TIME), ms(2));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].process.pid, 1);
        assert_eq!(j.counts().overflow, 1);
        let out = j.flush(ms(3));
        assert_eq!(
            out.iter().map(|e| e.process.pid).collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(j.pending(), 0);
        assert_eq!(j.next_deadline(), None);
        assert!(j.tick(ms(10_000)).is_empty());
    }

    #[test]
    fn spoofed_parent_keeps_both_pids_and_missing_fields_stay_none() {
        let mut j = joiner();
        let mut raw = kstart(7000, 2100, 666, CMD, 0);
        if let RawEvent::KernelStart(k) = &mut raw {
            k.mandatory_label = None;
            k.timestamp_filetime = CREATE_TIME;
        }
        j.on_raw(raw, ms(0));
        let out = j.tick(ms(500));
        let p = &out[0].process;
        assert_eq!((p.ppid, p.creator_pid), (Some(2100), Some(666)));
        assert_eq!(p.integrity_level, None);
        // no CreateTime: the header time stands in
        assert_eq!(out[0].timestamp, filetime_to_utc(CREATE_TIME));
        // a logger half with no SID, no command line and no name
        let mut j = joiner();
        j.on_raw(
            RawEvent::Logger(SystemLoggerProcess {
                opcode: 1,
                pid: 9,
                user_sid: Some(vec![0, 0, 0, 0]),
                ..Default::default()
            }),
            ms(0),
        );
        let out = j.tick(ms(500));
        let p = &out[0].process;
        assert_eq!(
            (p.pid, p.exe.as_deref(), p.sid.as_deref(), p.user.as_deref()),
            (9, None, None, None)
        );
        assert_eq!(out[0].timestamp, None);
    }

    #[test]
    fn complete_exe_only_extends_a_cut_name() {
        assert_eq!(
            complete_exe("UMWorkerProcess", r"C:\x\UMWorkerProcess.exe a").as_deref(),
            Some("UMWorkerProcess.exe")
        );
        assert_eq!(
            complete_exe("UMWorkerProcess", r"C:\x\evil.exe").as_deref(),
            Some("UMWorkerProcess")
        );
        assert_eq!(
            complete_exe("cmd.exe", r"C:\x\cmd.exe.bak").as_deref(),
            Some("cmd.exe")
        );
        assert_eq!(complete_exe("", "x"), None);
    }
}
