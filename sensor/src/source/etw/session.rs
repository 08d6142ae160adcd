//! The two ETW sessions, their callbacks and the join thread.
//!
//! Callbacks run on ferrisetw's `ProcessTrace` threads: they only copy fields (through
//! `try_parse`, never `unwrap`) into raw structs and `try_send` them; a full queue drops
//! and counts. A panic there would make ferrisetw exit the process and leak the session.

use super::accounts::WinAccountLookup;
use super::admin::{is_elevated, NEEDS_ADMIN};
use super::devices::device_map;
use super::snapshot::processes;
use super::win::wide;
use crate::record::SourceEvent;
use crate::source::etw_logic::accounts::SidCache;
use crate::source::etw_logic::errors;
use crate::source::etw_logic::join::{JoinCounts, Joiner};
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
    stop_trace_by_name, KernelTrace, TraceError, TraceProperties, TraceTrait, UserTrace,
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

/// Fixed names: a crashed sensor's sessions are found and stopped at the next start.
pub const KERNEL_PROCESS_SESSION: &str = "spawnwatch-kernel-process";
pub const SYSTEM_LOGGER_SESSION: &str = "spawnwatch-system-logger";

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
    /// Set before the sessions are stopped: `ProcessTrace` returning is expected.
    closing: AtomicBool,
    /// Tells the join thread to flush and end.
    stop: AtomicBool,
}

/// The running live source. Dropping it stops it too.
#[derive(Debug)]
pub struct EtwSource {
    user: Option<UserTrace>,
    kernel: Option<KernelTrace>,
    join: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl EtwSource {
    /// Starts both sessions and the join thread; events go to `sink`. Fails with a
    /// message for the user (administrator rights, too many sessions, ...).
    pub fn start(sink: LiveSink, options: EtwOptions) -> Result<EtwSource, String> {
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
            std::thread::Builder::new()
                .name("etw-join".into())
                .spawn(move || join_loop(rx, sink, shared, joiner))
                .map_err(|e| format!("cannot start the ETW join thread: {e}"))?
        };
        let mut source = EtwSource {
            user: None,
            kernel: None,
            join: Some(join),
            shared: shared.clone(),
        };

        let properties = TraceProperties {
            buffer_size: options.buffer_kb,
            min_buffer: 0,
            max_buffer: 0,
            flush_timer: Duration::from_secs(options.flush_timer_secs()),
            ..TraceProperties::default()
        };

        // From here on, an error drops `source`, which stops whatever started.
        stop_stale(KERNEL_PROCESS_SESSION);
        let provider = Provider::by_guid(KERNEL_PROCESS_PROVIDER)
            .any(KEYWORD_PROCESS)
            .add_callback(callback(tx.clone(), shared.clone(), Kind::KernelProcess))
            .build();
        let (user, user_handle) = UserTrace::new()
            .named(KERNEL_PROCESS_SESSION.to_string())
            .set_trace_properties(properties)
            .enable(provider)
            .start()
            .map_err(|e| start_error(KERNEL_PROCESS_SESSION, &e))?;
        source.user = Some(user);
        spawn_processing("etw-kernel-process", shared.clone(), move || {
            UserTrace::process_from_handle(user_handle)
        })?;

        stop_stale(SYSTEM_LOGGER_SESSION);
        let provider = Provider::kernel(&kernel_providers::PROCESS_PROVIDER)
            .add_callback(callback(tx, shared.clone(), Kind::SystemLogger))
            .build();
        let (kernel, kernel_handle) = KernelTrace::new()
            .named(SYSTEM_LOGGER_SESSION.to_string())
            .set_trace_properties(properties)
            .enable(provider)
            .start()
            .map_err(|e| start_error(SYSTEM_LOGGER_SESSION, &e))?;
        source.kernel = Some(kernel);
        spawn_processing("etw-system-logger", shared, move || {
            KernelTrace::process_from_handle(kernel_handle)
        })?;
        Ok(source)
    }

    /// The processes running now, as `Existing` events, to seed the process table before
    /// `start` (the system logger's rundown adds command lines and users afterwards).
    pub fn seed() -> Vec<SourceEvent> {
        processes()
            .iter()
            .map(|p| existing_event(p, None))
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
            kernel_process_loss: query_loss(KERNEL_PROCESS_SESSION),
            system_logger_loss: query_loss(SYSTEM_LOGGER_SESSION),
        }
    }

    /// Stops both sessions (events still in ETW's buffers are lost), then lets the join
    /// thread emit what it holds.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.closing.store(true, Ordering::Relaxed);
        if let Some(trace) = self.user.take() {
            let _ = trace.stop();
        }
        if let Some(trace) = self.kernel.take() {
            let _ = trace.stop();
        }
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

/// Stops a session left behind by a crashed run. "Not found" is the normal case; any
/// other failure shows up as a clearer error when the session starts.
fn stop_stale(name: &str) {
    if stop_trace_by_name(name).is_ok() {
        eprintln!("spawnwatch: stopped ETW session {name}, left running by an earlier run");
    }
}

fn start_error(session: &str, e: &TraceError) -> String {
    let raw = match e {
        TraceError::EtwNativeError(EvntraceNativeError::IoError(io)) => io.raw_os_error(),
        TraceError::EtwNativeError(EvntraceNativeError::AlreadyExist) => {
            Some(errors::ERROR_ALREADY_EXISTS as i32)
        }
        _ => None,
    };
    errors::start_failure(session, raw)
}

/// Runs `ProcessTrace` on its own thread (it returns when the session stops).
fn spawn_processing<F>(name: &str, shared: Arc<Shared>, process: F) -> Result<(), String>
where
    F: FnOnce() -> Result<(), TraceError> + Send + 'static,
{
    let thread_name = name.to_string();
    std::thread::Builder::new()
        .name(thread_name.clone())
        .spawn(move || {
            if let Err(e) = process() {
                if !shared.closing.load(Ordering::Relaxed) {
                    eprintln!("spawnwatch: ETW processing on {thread_name} ended: {e:?}");
                }
            }
        })
        .map(drop)
        .map_err(|e| format!("cannot start the {name} thread: {e}"))
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
        let seed = EtwSource::seed();
        let mine = seed.iter().find(|e| e.process.pid == me);
        assert!(
            mine.is_some_and(|e| e.action == Action::Existing && e.process.image_path.is_some())
        );
    }

    #[test]
    #[ignore = "needs a live ETW session (administrator on real Windows); wine stubs StartTraceW"]
    fn live_sessions_report_a_shell_and_its_child() {
        let (tx, rx) = crossbeam_channel::bounded(100_000);
        let sink = LiveSink::new(tx, Arc::default());
        let source = EtwSource::start(sink, EtwOptions::default());
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
