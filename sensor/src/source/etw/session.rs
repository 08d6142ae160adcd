//! The two ETW sessions, their callbacks and the join thread.
//!
//! Callbacks run on ferrisetw's `ProcessTrace` threads: they only copy fields (through
//! `try_parse`, never `unwrap`) into raw structs and `try_send` them; a full queue drops
//! and counts. A panic there would make ferrisetw exit the process and leak the session.
//!
//! Starting and stopping go through [`lifecycle`](crate::source::etw_logic::lifecycle):
//! a failed start stops its session by name, a stop flushes ETW's buffers to the
//! callbacks before ferrisetw's trace objects are dropped, and a session that ends on
//! its own (stopped from outside) is reported to the run loop through the sink.

use super::accounts::WinAccountLookup;
use super::admin::{is_elevated, NEEDS_ADMIN};
use super::devices::device_map;
use super::snapshot::processes;
use super::win::wide;
use crate::record::SourceEvent;
use crate::source::etw_logic::accounts::SidCache;
use crate::source::etw_logic::errors::{self, SessionKind};
use crate::source::etw_logic::join::{JoinCounts, Joiner};
use crate::source::etw_logic::lifecycle::{Control, Processing, Session, Trace, DRAIN_TIMEOUT};
use crate::source::etw_logic::options::EtwOptions;
use crate::source::etw_logic::raw::{
    self, Decoding, EventFields, Extracted, RawEvent, RecordHeader,
};
use crate::source::etw_logic::snapshot::existing_event;
use crate::source::etw_logic::stats::{EtwStats, SessionLoss};
use crate::source::live::LiveSink;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use ferrisetw::native::EvntraceNativeError;
use ferrisetw::parser::Parser;
use ferrisetw::provider::{kernel_providers, Provider};
use ferrisetw::trace::{
    stop_trace_by_name, KernelTrace, RealTimeTraceTrait, TraceBuilder, TraceError, TraceProperties,
    UserTrace,
};
use ferrisetw::{EventRecord, SchemaLocator, GUID};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use windows::core::PCWSTR;
use windows::Win32::System::Diagnostics::Etw::{
    ControlTraceW, CONTROLTRACE_HANDLE, EVENT_RECORD, EVENT_TRACE_CONTROL_QUERY,
    EVENT_TRACE_PROPERTIES,
};

/// The fixed names of one role's sessions (a crashed run's are found and stopped at the
/// next start), and the named mutex that keeps a second process of the role from
/// stopping them while they run.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SessionNames {
    pub kernel_process: &'static str,
    pub system_logger: &'static str,
    /// A `Global\` mutex, held for as long as the role runs.
    pub instance_mutex: &'static str,
    /// Who holds it, for the refusal.
    pub holder: &'static str,
}

impl SessionNames {
    /// `spawnwatch run`: one per host.
    pub const SENSOR: SessionNames = SessionNames {
        kernel_process: "spawnwatch-kernel-process",
        system_logger: "spawnwatch-system-logger",
        instance_mutex: r"Global\spawnwatch",
        holder: "a spawnwatch sensor (`spawnwatch run`)",
    };
    /// `spawnwatch selftest`: names of its own, so it can run beside the sensor.
    pub const SELFTEST: SessionNames = SessionNames {
        kernel_process: "spawnwatch-selftest-kernel-process",
        system_logger: "spawnwatch-selftest-system-logger",
        instance_mutex: r"Global\spawnwatch-selftest",
        holder: "a spawnwatch selftest",
    };
}

/// Microsoft-Windows-Kernel-Process {22fb2cd6-0e7b-422b-a0c7-2fad1fd0e716}.
const KERNEL_PROCESS_PROVIDER: GUID = GUID::from_u128(0x22fb2cd6_0e7b_422b_a0c7_2fad1fd0e716);
/// WINEVENT_KEYWORD_PROCESS: ProcessStart / ProcessStop.
const KEYWORD_PROCESS: u64 = 0x10;
/// Longest wait of the join thread between two looks at its clock.
const TICK: Duration = Duration::from_millis(100);
/// Raw events taken per batch before pushing results.
const BATCH: usize = 4096;

#[derive(Debug, Default)]
struct Shared {
    kernel_process_events: AtomicU64,
    system_logger_events: AtomicU64,
    unparsed: AtomicU64,
    logger_fixed_layout: AtomicU64,
    queue_dropped: AtomicU64,
    join: Mutex<JoinCounts>,
    /// Tells the join thread to flush and end.
    stop: AtomicBool,
}

/// The running live source. Dropping it stops it too.
pub struct EtwSource {
    /// Dropped (stopped) before the join thread is told to flush.
    sessions: Vec<Session>,
    join: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    names: SessionNames,
}

impl EtwSource {
    /// Starts both sessions and the join thread; events go to `sink`, and a session
    /// that stops on its own is reported there. Fails with a message for the user
    /// (administrator rights, too many sessions, ...), leaving no session behind.
    pub fn start(
        sink: LiveSink,
        options: EtwOptions,
        names: SessionNames,
    ) -> Result<EtwSource, String> {
        if is_elevated() == Some(false) {
            return Err(NEEDS_ADMIN.to_string());
        }
        let (tx, rx) = crossbeam_channel::bounded::<RawEvent>(options.queue_capacity.max(1));
        let shared = Arc::new(Shared::default());

        let joiner = Joiner::new(
            options.join_config(),
            device_map(),
            SidCache::new(Box::new(WinAccountLookup), 4096),
        )
        .with_map_rebuild(Box::new(device_map));
        let join = {
            let shared = shared.clone();
            let sink = sink.clone();
            std::thread::Builder::new()
                .name("etw-join".into())
                .spawn(move || join_loop(rx, sink, shared, joiner))
                .map_err(|e| format!("cannot start the ETW join thread: {e}"))?
        };
        let mut source = EtwSource {
            sessions: Vec::new(),
            join: Some(join),
            shared: shared.clone(),
            names,
        };

        let properties = TraceProperties {
            buffer_size: options.buffer_kb,
            min_buffer: 0,
            max_buffer: 0,
            flush_timer: Duration::from_secs(options.flush_timer_secs()),
            ..TraceProperties::default()
        };
        let start = SessionStart {
            control: Control {
                stop_by_name: Arc::new(|name| stop_trace_by_name(name).is_ok()),
                drain_timeout: DRAIN_TIMEOUT,
            },
            properties,
            sink: &sink,
        };

        // From here on, an error drops `source`, which stops whatever started.
        let provider = Provider::by_guid(KERNEL_PROCESS_PROVIDER)
            .any(KEYWORD_PROCESS)
            .add_callback(callback(tx.clone(), shared.clone(), Kind::KernelProcess))
            .build();
        source.sessions.push(start.session(
            names.kernel_process,
            SessionKind::KernelProcess,
            UserTrace::new().enable(provider),
        )?);
        let provider = Provider::kernel(&kernel_providers::PROCESS_PROVIDER)
            .add_callback(callback(tx, shared, Kind::SystemLogger))
            .build();
        source.sessions.push(start.session(
            names.system_logger,
            SessionKind::SystemLogger,
            KernelTrace::new().enable(provider),
        )?);
        Ok(source)
    }

    /// The processes running now, as `Existing` events, to seed the process table
    /// (the system logger's rundown adds command lines and users afterwards).
    pub fn seed(hostname: Option<&str>) -> Vec<SourceEvent> {
        processes()
            .iter()
            .map(|p| existing_event(p, hostname))
            .collect()
    }

    pub fn stats(&self) -> EtwStats {
        let s = &self.shared;
        EtwStats {
            kernel_process_events: s.kernel_process_events.load(Ordering::Relaxed),
            system_logger_events: s.system_logger_events.load(Ordering::Relaxed),
            unparsed: s.unparsed.load(Ordering::Relaxed),
            logger_fixed_layout: s.logger_fixed_layout.load(Ordering::Relaxed),
            queue_dropped: s.queue_dropped.load(Ordering::Relaxed),
            join: s.join.lock().map(|j| *j).unwrap_or_default(),
            kernel_process_loss: query_loss(self.names.kernel_process),
            system_logger_loss: query_loss(self.names.system_logger),
        }
    }

    /// Stops both sessions, lets them deliver what ETW still buffered, then lets the
    /// join thread emit what it holds.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        // Both first, so they drain at the same time; each drop waits for its last
        // events before ferrisetw's objects go.
        self.sessions.iter().for_each(Session::stop);
        self.sessions.clear();
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(join) = self.join.take() {
            let _ = join.join();
        }
    }
}

impl Drop for EtwSource {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What both sessions start with.
struct SessionStart<'s> {
    control: Control,
    properties: TraceProperties,
    /// Told when a session ends on its own.
    sink: &'s LiveSink,
}

impl SessionStart<'_> {
    /// Stops a stale session of that name, then starts `trace` (its provider enabled)
    /// under the name, with its processing thread.
    fn session<T>(
        &self,
        name: &'static str,
        kind: SessionKind,
        trace: TraceBuilder<T>,
    ) -> Result<Session, String>
    where
        T: RealTimeTraceTrait + 'static,
    {
        stop_stale(name);
        let start = || {
            let (trace, handle) = trace
                .named(name.to_string())
                .set_trace_properties(self.properties)
                .start()
                .map_err(|e| start_error(name, kind, &e))?;
            let processing: Processing =
                Box::new(move || T::process_from_handle(handle).map_err(describe));
            Ok((Box::new(trace) as Trace, processing))
        };
        Session::start(name, &self.control, start, on_end(self.sink, name))
    }
}

/// A session that ends on its own is reported to the run loop.
fn on_end(sink: &LiveSink, session: &'static str) -> Box<dyn FnOnce(String) + Send> {
    let sink = sink.clone();
    Box::new(move |reason| sink.ended(session, &reason))
}

/// Stops a session left behind by a crashed run (the role's mutex says no live one
/// has this name). "Not found" is the normal case; any other failure shows up as a
/// clearer error when the session starts.
fn stop_stale(name: &str) {
    if stop_trace_by_name(name).is_ok() {
        eprintln!("spawnwatch: stopped ETW session {name}, left running by an earlier run");
    }
}

fn start_error(session: &str, kind: SessionKind, e: &TraceError) -> String {
    let raw = match e {
        TraceError::EtwNativeError(EvntraceNativeError::IoError(io)) => io.raw_os_error(),
        TraceError::EtwNativeError(EvntraceNativeError::AlreadyExist) => {
            Some(errors::ERROR_ALREADY_EXISTS as i32)
        }
        _ => None,
    };
    errors::start_failure(session, kind, raw)
}

fn describe(e: TraceError) -> String {
    match e {
        TraceError::EtwNativeError(EvntraceNativeError::IoError(io)) => io.to_string(),
        other => format!("{other:?}"),
    }
}

#[derive(Copy, Clone)]
enum Kind {
    KernelProcess,
    SystemLogger,
}

/// ferrisetw's parser seen through `EventFields`: every read is a `try_parse`.
struct ParserFields<'p, 's, 'r>(&'p Parser<'s, 'r>);

impl EventFields for ParserFields<'_, '_, '_> {
    fn u32(&self, name: &str) -> Option<u32> {
        self.0.try_parse::<u32>(name).ok()
    }
    fn u64(&self, name: &str) -> Option<u64> {
        self.0.try_parse::<u64>(name).ok()
    }
    fn bytes(&self, name: &str) -> Option<Vec<u8>> {
        self.0.try_parse::<Vec<u8>>(name).ok()
    }
}

fn callback(
    tx: Sender<RawEvent>,
    shared: Arc<Shared>,
    kind: Kind,
) -> impl FnMut(&EventRecord, &SchemaLocator) + Send + Sync + 'static {
    move |record: &EventRecord, locator: &SchemaLocator| {
        let header = RecordHeader {
            event_id: record.event_id(),
            opcode: record.opcode(),
            version: record.version(),
            process_id: record.process_id(),
            timestamp: record.raw_timestamp(),
            flags: record.event_flags(),
        };
        let (wanted, counter) = match kind {
            Kind::KernelProcess => (
                raw::wants_kernel_process(&header),
                &shared.kernel_process_events,
            ),
            Kind::SystemLogger => (
                raw::wants_system_logger(&header),
                &shared.system_logger_events,
            ),
        };
        if !wanted {
            return;
        }
        counter.fetch_add(1, Ordering::Relaxed);
        let schema = locator.event_schema(record).ok();
        let parser = schema.as_ref().map(|schema| Parser::create(record, schema));
        let fields = parser.as_ref().map(ParserFields);
        let tdh = fields.as_ref().map(|f| f as &dyn EventFields);
        let extracted = match (kind, tdh) {
            (Kind::KernelProcess, Some(fields)) => raw::kernel_process_event(&header, fields),
            (Kind::KernelProcess, None) => Extracted::Malformed("no schema"),
            (Kind::SystemLogger, _) => {
                let (extracted, decoding) =
                    raw::system_logger_event_or_fixed(&header, tdh, user_data(record));
                if decoding == Decoding::FixedLayout && matches!(extracted, Extracted::Event(_)) {
                    shared.logger_fixed_layout.fetch_add(1, Ordering::Relaxed);
                }
                extracted
            }
        };
        match extracted {
            Extracted::Event(event) => {
                if tx.try_send(event).is_err() {
                    shared.queue_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Extracted::Ignored => {}
            Extracted::Malformed(_) => {
                shared.unparsed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The record's UserData. ferrisetw 1.2.0 keeps its own accessor crate-private; its
/// `EventRecord` is `#[repr(transparent)]` over `EVENT_RECORD`.
fn user_data(record: &EventRecord) -> &[u8] {
    // SAFETY: the cast is sound by repr(transparent); ETW keeps `UserData` valid for
    // `UserDataLength` bytes while the callback runs, which `record`'s lifetime spans.
    unsafe {
        let raw = &*(record as *const EventRecord).cast::<EVENT_RECORD>();
        if raw.UserData.is_null() {
            return &[];
        }
        std::slice::from_raw_parts(raw.UserData.cast::<u8>(), usize::from(raw.UserDataLength))
    }
}

fn join_loop(rx: Receiver<RawEvent>, sink: LiveSink, shared: Arc<Shared>, mut joiner: Joiner) {
    // Full paths of running processes, for the rundown's Existing events.
    joiner.remember_images(
        processes()
            .into_iter()
            .filter_map(|p| p.image_path.map(|path| (p.pid, path))),
    );
    let start = Instant::now();
    loop {
        let now = start.elapsed();
        let timeout = joiner
            .next_deadline()
            .map_or(TICK, |due| due.saturating_sub(now).min(TICK));
        let mut out = Vec::new();
        let finished = match rx.recv_timeout(timeout) {
            Ok(event) => {
                out.extend(joiner.on_raw(event, start.elapsed()));
                while out.len() < BATCH {
                    match rx.try_recv() {
                        Ok(event) => out.extend(joiner.on_raw(event, start.elapsed())),
                        Err(_) => break,
                    }
                }
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        out.extend(joiner.tick(start.elapsed()));
        let stopping = finished || shared.stop.load(Ordering::Relaxed);
        if stopping {
            while let Ok(event) = rx.try_recv() {
                out.extend(joiner.on_raw(event, start.elapsed()));
            }
            out.extend(joiner.flush(start.elapsed()));
        }
        let open = out.into_iter().all(|event| sink.push(event));
        if let Ok(mut counts) = shared.join.lock() {
            *counts = joiner.counts();
        }
        // The pipeline has shut down, or we were asked to stop: nothing left to do.
        if !open || stopping {
            return;
        }
    }
}

/// `EVENT_TRACE_PROPERTIES` followed by room for the names, as ControlTraceW wants it.
#[repr(C)]
struct QueryProperties {
    properties: EVENT_TRACE_PROPERTIES,
    logger_name: [u16; 1024],
    log_file_name: [u16; 1024],
}

/// `ControlTraceW(EVENT_TRACE_CONTROL_QUERY)` for a session's loss counters; `None` if
/// the session is not running.
pub(super) fn query_loss(session: &str) -> Option<SessionLoss> {
    let mut query = Box::new(QueryProperties {
        properties: EVENT_TRACE_PROPERTIES::default(),
        logger_name: [0; 1024],
        log_file_name: [0; 1024],
    });
    query.properties.Wnode.BufferSize = std::mem::size_of::<QueryProperties>() as u32;
    query.properties.LoggerNameOffset = std::mem::offset_of!(QueryProperties, logger_name) as u32;
    query.properties.LogFileNameOffset =
        std::mem::offset_of!(QueryProperties, log_file_name) as u32;
    let name = wide(session);
    // SAFETY: the properties block is as large as Wnode.BufferSize says, with the name
    // offsets inside it; `name` is NUL-terminated and outlives the call.
    let status = unsafe {
        ControlTraceW(
            CONTROLTRACE_HANDLE { Value: 0 },
            PCWSTR(name.as_ptr()),
            &mut query.properties,
            EVENT_TRACE_CONTROL_QUERY,
        )
    };
    (status.0 == 0).then(|| SessionLoss {
        events_lost: u64::from(query.properties.EventsLost),
        realtime_buffers_lost: u64::from(query.properties.RealTimeBuffersLost),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Action;
    use std::process::Command;

    #[test]
    #[ignore = "needs real Windows ETW: wine's ControlTraceW stub reports success for any session name"]
    fn a_session_that_does_not_run_has_no_loss_figures() {
        assert_eq!(query_loss("spawnwatch-test-no-such-session"), None);
        stop_stale("spawnwatch-test-no-such-session");
    }

    #[test]
    fn user_data_is_the_records_payload() {
        let mut payload = *b"\x08\x00\x00\x00cmd.exe\0";
        let mut raw = EVENT_RECORD {
            UserData: payload.as_mut_ptr().cast(),
            UserDataLength: payload.len() as u16,
            ..Default::default()
        };
        // SAFETY: EventRecord is repr(transparent) over EVENT_RECORD; `payload` outlives it.
        let record = unsafe { &*(&raw as *const EVENT_RECORD).cast::<EventRecord>() };
        assert_eq!(user_data(record), b"\x08\x00\x00\x00cmd.exe\0");
        raw.UserData = std::ptr::null_mut();
        // SAFETY: as above.
        let record = unsafe { &*(&raw as *const EVENT_RECORD).cast::<EventRecord>() };
        assert!(user_data(record).is_empty());
    }

    #[test]
    fn seed_lists_this_process() {
        let me = std::process::id();
        let seed = EtwSource::seed(Some("web01"));
        let mine = seed.iter().find(|e| e.process.pid == me);
        assert!(
            mine.is_some_and(|e| e.action == Action::Existing && e.process.image_path.is_some())
        );
        assert!(seed.iter().all(|e| e.hostname.as_deref() == Some("web01")));
    }

    #[test]
    #[ignore = "needs a live ETW session (administrator on real Windows); wine stubs StartTraceW"]
    fn live_sessions_report_a_shell_and_its_child() {
        let (tx, rx) = crossbeam_channel::bounded(100_000);
        let sink = LiveSink::new(tx, Arc::default());
        let source = EtwSource::start(sink, EtwOptions::default(), SessionNames::SELFTEST);
        let source = source.unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(Duration::from_secs(2));
        let child = Command::new("cmd.exe").args(["/c", "whoami"]).output();
        assert!(child.is_ok());
        std::thread::sleep(Duration::from_secs(4));
        let stats = source.stats();
        source.stop();
        let events: Vec<SourceEvent> = rx.try_iter().collect();
        assert!(
            events.iter().any(|e| e.action == Action::Existing),
            "no rundown"
        );
        let whoami = events.iter().find(|e| {
            e.action == Action::Create
                && e.process
                    .exe
                    .as_deref()
                    .is_some_and(|x| x.eq_ignore_ascii_case("whoami.exe"))
        });
        assert!(whoami.is_some(), "{}", stats.to_json());
        let p = whoami.map(|e| e.process.clone()).unwrap_or_default();
        assert!(
            p.image_path.as_deref().is_some_and(|x| x.contains(r":\")),
            "{p:?}"
        );
        assert!(p.command_line.is_some(), "{p:?}");
        assert!(p.user.is_some(), "{p:?}");
        assert!(stats.kernel_process_events > 0 && stats.system_logger_events > 0);
        assert!(stats.kernel_process_loss.is_some() || stats.system_logger_loss.is_some());
    }
}
