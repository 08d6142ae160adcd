use super::wire::tests::{header, Built};
use super::*;
use crate::record::{Action, SourceEvent};
use crate::source::live::{LiveCounters, SourceEnd};
use crate::source::proc_connector::fake_proc::{fake_process, passwd};
use crossbeam_channel::Receiver;
use std::collections::VecDeque;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::source::needs;

/// A ring that hands out scripted batches of records, then fails.
struct Scripted {
    batches: VecDeque<Vec<Vec<u8>>>,
}

impl Ring for Scripted {
    fn wait(&mut self, _timeout: Duration) -> std::io::Result<()> {
        match self.batches.is_empty() {
            true => Err(std::io::Error::from_raw_os_error(libc::EBADF)),
            false => Ok(()),
        }
    }

    fn drain(&mut self, each: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        let batch = self.batches.pop_front().unwrap_or_default();
        batch.iter().all(|record| each(record))
    }
}

/// A reader on scripted records over a fake `/proc`, run to its end.
struct Run {
    _dir: tempfile::TempDir,
    events: Vec<SourceEvent>,
    ends: Vec<SourceEnd>,
    counters: Arc<ReaderCounters>,
    handled: Arc<Counters>,
}

fn run_script(batches: Vec<Vec<Vec<u8>>>, fake: impl FnOnce(&std::path::Path)) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("proc");
    std::fs::create_dir_all(&root).unwrap();
    fake(&root);
    let (tx, rx) = crossbeam_channel::unbounded();
    let (ends_tx, ends) = crossbeam_channel::unbounded();
    let sink = LiveSink::new(tx, Arc::default()).reporting_ends_to(ends_tx);
    let handled = Arc::new(Counters::default());
    let counters = Arc::new(ReaderCounters::default());
    let handler = Handler::new(
        sink,
        ProcFs { root },
        UserNames::new(passwd(dir.path())),
        handled.clone(),
    )
    .named(SOURCE);
    Reader {
        ring: Scripted {
            batches: batches.into(),
        },
        handler,
        counters: counters.clone(),
        stop: Arc::default(),
    }
    .run();
    Run {
        _dir: dir,
        events: rx.try_iter().collect(),
        ends: ends.try_iter().collect(),
        counters,
        handled,
    }
}

fn fork(parent: u32, child: u32) -> Vec<u8> {
    header(2, child, parent)
}

fn exit(pid: u32, parent: u32) -> Vec<u8> {
    header(3, pid, parent)
}

fn at_ns(mut record: Vec<u8>, boot_ns: u64) -> Vec<u8> {
    record[0..8].copy_from_slice(&boot_ns.to_ne_bytes());
    record
}

/// php-fpm worker 200 (forked by the master, never exec'd) runs `sh -c id`: the
/// worker comes from `/proc`, the shell and `id` from what the kernel saw, whole,
/// however short they lived.
#[test]
fn records_become_the_events_of_a_web_shell_tree() {
    let sh = Built {
        tgid: 300,
        ppid: 200,
        uid: 33,
        euid: 33,
        exe: &["usr", "bin", "dash"],
        cwd: &["var", "www", "html"],
        argv: b"sh\0-c\0id\0",
        comm: "sh",
        ..Built::default()
    };
    let id = Built {
        tgid: 301,
        ppid: 300,
        exe: &["usr", "bin", "id"],
        argv: b"id\0",
        comm: "id",
        ..sh
    };
    let batches = vec![
        vec![fork(150, 200), fork(200, 300)],
        vec![
            at_ns(sh.bytes(), 5_000_000_000),
            fork(300, 301),
            at_ns(id.bytes(), 5_000_250_000),
            exit(301, 300),
        ],
    ];
    let run = run_script(batches, |root| {
        fake_process(
            root,
            200,
            150,
            33,
            Some("/usr/sbin/php-fpm8.2"),
            &["php-fpm: pool www"],
        )
    });
    let got: Vec<_> = run
        .events
        .iter()
        .map(|e| {
            (
                e.action,
                e.process.pid,
                e.process.ppid,
                e.process.exe.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (Action::Create, 200, Some(150), Some("php-fpm8.2")),
            (Action::Create, 300, Some(200), Some("dash")),
            (Action::Create, 301, Some(300), Some("id")),
            (Action::Terminate, 301, Some(300), None),
        ]
    );
    let shell = &run.events[1];
    assert_eq!(shell.origin.kind, "ebpf");
    assert_eq!(
        shell.process,
        ProcessRecord {
            pid: 300,
            ppid: Some(200),
            exe: Some("dash".into()),
            image_path: Some("/usr/bin/dash".into()),
            command_line: Some("sh -c id".into()),
            argv: Some(["sh", "-c", "id"].map(Into::into).into()),
            user: Some("www-data".into()),
            effective_user: Some("www-data".into()),
            current_working_directory: Some("/var/www/html".into()),
            exe_deleted: Some(false),
            exe_memfd: Some(false),
            ..ProcessRecord::default()
        }
    );
    // Each event carries the kernel's time of its exec, not the time it was read.
    let gap = run.events[2].timestamp.unwrap() - shell.timestamp.unwrap();
    assert_eq!(gap.num_microseconds(), Some(250));
    let stats = (
        run.counters.forks.load(Ordering::Relaxed),
        run.counters.execs.load(Ordering::Relaxed),
        run.counters.exits.load(Ordering::Relaxed),
        run.handled.snapshot().emitted,
    );
    assert_eq!(stats, (3, 2, 1, 4));
}

#[test]
fn memfd_and_deleted_executables_are_flagged() {
    let memfd = Built {
        tgid: 400,
        ppid: 1,
        exe: &["memfd:payload"],
        argv: b"x\0",
        flags: 1 << 5,
        comm: "3",
        ..Built::default()
    };
    let deleted = Built {
        tgid: 401,
        exe: &["tmp", ".x"],
        flags: 1 << 4,
        ..memfd
    };
    let run = run_script(vec![vec![memfd.bytes(), deleted.bytes()]], |_| {});
    let flags: Vec<_> = run
        .events
        .iter()
        .map(|e| {
            let p = &e.process;
            (p.image_path.as_deref(), p.exe_memfd, p.exe_deleted)
        })
        .collect();
    assert_eq!(
        flags,
        [
            (Some("/memfd:payload"), Some(true), Some(false)),
            (Some("/tmp/.x"), Some(false), Some(true)),
        ]
    );
}

#[test]
fn what_the_kernel_could_not_read_is_counted() {
    let unresolved = Built {
        tgid: 500,
        ppid: 1,
        exe: &["deep"],
        argv: b"",
        flags: (1 << 2) | (1 << 1),
        comm: "deep-tool",
        ..Built::default()
    };
    let truncated = Built {
        tgid: 501,
        exe: &["usr", "bin", "perl"],
        argv: b"perl\0-e\0AAAA",
        flags: 1,
        comm: "perl",
        ..unresolved
    };
    let run = run_script(
        vec![vec![unresolved.bytes(), truncated.bytes(), vec![1, 2, 3]]],
        |_| {},
    );
    let first = &run.events[0].process;
    assert_eq!(
        first.exe.as_deref(),
        Some("deep-tool"),
        "the comm stands in"
    );
    assert_eq!((first.image_path.as_ref(), first.exe_deleted), (None, None));
    assert_eq!(first.command_line, None);
    assert_eq!(
        run.events[1].process.command_line.as_deref(),
        Some("perl -e AAAA"),
        "the kept start of a cut argv"
    );
    let c = &run.counters;
    let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
    assert_eq!(
        (
            get(&c.exe_unresolved),
            get(&c.argv_unread),
            get(&c.argv_truncated),
            get(&c.malformed)
        ),
        (1, 1, 1, 1)
    );
}

#[test]
fn a_ring_that_fails_is_reported_as_an_end() {
    let run = run_script(vec![vec![fork(1, 2)]], |_| {});
    assert_eq!(run.ends.len(), 1);
    assert_eq!(run.ends[0].part, "ebpf");
    assert!(
        run.ends[0]
            .reason
            .starts_with("waiting on the eBPF ring buffer: Bad file descriptor"),
        "{}",
        run.ends[0].reason
    );
    let failure = run.counters.failure.lock().unwrap().clone();
    assert_eq!(failure.as_deref(), Some(run.ends[0].reason.as_str()));
}

#[test]
fn a_closed_pipeline_stops_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = crossbeam_channel::bounded(4);
    drop(rx);
    let handler = Handler::new(
        LiveSink::new(tx, Arc::default()),
        ProcFs {
            root: dir.path().into(),
        },
        UserNames::new(passwd(dir.path())),
        Arc::default(),
    );
    let exec = Built {
        tgid: 9,
        exe: &["bin", "x"],
        ..Built::default()
    };
    let mut ring = Scripted {
        batches: vec![vec![exec.bytes(), exec.bytes()]].into(),
    };
    let (counters, clock) = (ReaderCounters::default(), BootClock::now());
    let mut handler = handler;
    let mut seen = 0;
    let kept_going = ring.drain(&mut |bytes| {
        seen += 1;
        dispatch(bytes, &mut handler, &counters, &clock)
    });
    assert!(!kept_going);
    assert_eq!(seen, 1, "stops at the first record the pipeline refuses");
}

// ---- Against the real kernel (root with CAP_BPF and CAP_PERFMON) ----

/// Whether the kernel tests can run: outside CI a host without eBPF skips them,
/// saying why; under CI they must run.
fn ebpf_here() -> bool {
    let reason = load::Host::this().unsuitable();
    let need = needs::Need::new(
        "eBPF tracing",
        reason.clone().unwrap_or_default(),
        reason.is_none(),
    );
    needs::met(&[need])
}

/// Every eBPF source sees every process on the host: one test at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn start(capacity: usize) -> (EbpfSource, Receiver<SourceEvent>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let source = EbpfSource::start(LiveSink::new(tx, Arc::new(LiveCounters::default())))
        .expect("the eBPF source starts");
    (source, rx)
}

fn marker(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("marker-{name}-{}-{nanos}", std::process::id())
}

/// Receives until `count` events satisfy `wanted`, or panics at a generous deadline.
fn collect(
    rx: &Receiver<SourceEvent>,
    count: usize,
    wanted: impl Fn(&SourceEvent) -> bool,
) -> Vec<SourceEvent> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut found = Vec::new();
    while found.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(event) if wanted(&event) => found.push(event),
            Ok(_) => {}
            Err(_) => panic!("{} of {count} events within 20 s: {found:#?}", found.len()),
        }
    }
    found
}

fn stop_within_deadline(source: EbpfSource) {
    let (done_tx, done) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        source.stop();
        let _ = done_tx.send(());
    });
    done.recv_timeout(Duration::from_secs(5))
        .expect("stop() did not return within 5 s");
}

fn canonical(path: &str) -> String {
    std::fs::canonicalize(path)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn command_line_has(event: &SourceEvent, text: &str) -> bool {
    event
        .process
        .command_line
        .as_deref()
        .is_some_and(|c| c.contains(text))
}

/// The processes a web shell runs live a millisecond; each is seen with its image,
/// argv, parent and user, every time.
#[test]
fn real_short_processes_are_seen_whole_every_time() {
    if !ebpf_here() {
        return;
    }
    let _host = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (source, rx) = start(65_536);
    let marker = marker("short");
    let script = format!("for i in $(seq 200); do /bin/true {marker} $i; done");
    let status = Command::new("/bin/sh")
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(status.success());
    let seen = collect(&rx, 201, |e| {
        e.action == Action::Create && command_line_has(e, &marker)
    });
    let shell = &seen[0];
    assert_eq!(shell.process.image_path, Some(canonical("/bin/sh").into()));
    assert_eq!(shell.process.ppid, Some(std::process::id()));
    let trues = &seen[1..];
    for (i, t) in trues.iter().enumerate() {
        assert_eq!(t.process.image_path, Some(canonical("/bin/true").into()));
        let want = format!("/bin/true {marker} {}", i + 1);
        assert_eq!(t.process.command_line.as_deref(), Some(want.as_str()));
        assert_eq!(t.process.ppid, Some(shell.process.pid));
        assert_eq!(t.process.user.as_deref(), Some("root"));
        assert_eq!(t.process.exe_deleted, Some(false));
    }
    let stats = source.stats();
    assert_eq!(stats.ring_full_drops, 0, "{stats:?}");
    println!("{}", stats.to_json());
    stop_within_deadline(source);
}

/// A copy of `program` that has no name (memfd) or lost it (deleted), run through
/// `/proc/self/fd/N` with `arg`.
fn run_nameless(program: &str, memfd: bool, arg: &str) {
    use std::io::Write;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let bytes = std::fs::read(program).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file: std::fs::File = if memfd {
        let name = c"payload";
        // SAFETY: a valid name; the descriptor is owned from here on.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
        assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
        unsafe { OwnedFd::from_raw_fd(fd) }.into()
    } else {
        let path = dir.path().join("dropped");
        std::fs::write(&path, &bytes).unwrap();
        let opened = std::fs::File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        opened
    };
    if memfd {
        (&file).write_all(&bytes).unwrap();
    } else {
        use std::os::unix::fs::PermissionsExt;
        // The copy keeps its mode through the descriptor (fchmod).
        file.set_permissions(std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    let path = format!("/proc/self/fd/{}", file.as_raw_fd());
    let status = Command::new(&path)
        .arg(arg)
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("running {path}: {e}"));
    assert!(status.success());
}

#[test]
fn real_memfd_and_deleted_executables_are_flagged() {
    if !ebpf_here() {
        return;
    }
    let _host = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (source, rx) = start(65_536);
    let (in_memory, deleted) = (marker("memfd"), marker("deleted"));
    run_nameless("/bin/true", true, &in_memory);
    run_nameless("/bin/true", false, &deleted);
    let seen = collect(&rx, 2, |e| {
        e.action == Action::Create
            && (command_line_has(e, &in_memory) || command_line_has(e, &deleted))
    });
    let p = &seen[0].process;
    assert_eq!(p.image_path.as_deref(), Some("/memfd:payload"));
    assert_eq!(p.exe.as_deref(), Some("memfd:payload"));
    assert_eq!((p.exe_memfd, p.exe_deleted), (Some(true), Some(false)));
    let p = &seen[1].process;
    assert!(
        p.image_path.as_deref().unwrap().ends_with("/dropped"),
        "{p:?}"
    );
    assert_eq!((p.exe_memfd, p.exe_deleted), (Some(false), Some(true)));
    stop_within_deadline(source);
}

/// argv is kept up to its documented cap, and the cut is counted.
#[test]
fn real_long_argv_is_cut_at_the_cap_and_counted() {
    if !ebpf_here() {
        return;
    }
    let _host = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (source, rx) = start(65_536);
    let marker = marker("long");
    let long = "A".repeat(3 * wire::ARGV_CAP);
    Command::new("/bin/true")
        .args([&marker, &long])
        .status()
        .unwrap();
    let seen = collect(&rx, 1, |e| command_line_has(e, &marker));
    let argv = seen[0].process.argv.as_deref().unwrap();
    let kept: usize = argv.iter().map(|a| a.len() + 1).sum::<usize>() - 1;
    assert_eq!(kept, wire::ARGV_CAP, "{} arguments", argv.len());
    assert_eq!(argv[0], "/bin/true");
    assert_eq!(source.stats().argv_truncated, 1);
    stop_within_deadline(source);
}

/// A ring buffer nobody reads fills up: the kernel drops and counts, and once read
/// again the source goes on.
#[test]
fn real_full_ring_buffer_drops_and_counts_and_reading_goes_on() {
    if !ebpf_here() {
        return;
    }
    let _host = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let page = 4096;
    let loaded = load::load(Some(page)).expect("load with a one-page ring");
    for _ in 0..50 {
        Command::new("/bin/true").status().unwrap();
    }
    assert!(
        ring_full_drops(&loaded.drops) > 0,
        "50 processes did not fill one page"
    );
    let (tx, rx) = crossbeam_channel::bounded(65_536);
    let dir = tempfile::tempdir().unwrap();
    let source = EbpfSource::launch(
        loaded,
        LiveSink::new(tx, Arc::default()),
        ProcFs::default(),
        UserNames::new(passwd(dir.path())),
    )
    .unwrap();
    // The reader drains the full ring from its own thread: until it has, a new record
    // may be dropped too, so the marker is run again until one comes through.
    let deadline = Instant::now() + Duration::from_secs(20);
    let came_through = |marker: &str| {
        Command::new("/bin/true").arg(marker).status().unwrap();
        let wait = Instant::now() + Duration::from_millis(500);
        std::iter::from_fn(|| {
            rx.recv_timeout(wait.saturating_duration_since(Instant::now()))
                .ok()
        })
        .any(|e| command_line_has(&e, marker))
    };
    let mut attempt = 0;
    while !came_through(&format!("{}-{attempt}", marker("after-drops"))) {
        assert!(
            Instant::now() < deadline,
            "no exec came through after the drops"
        );
        attempt += 1;
    }
    let stats = source.stats();
    assert!(stats.ring_full_drops > 0, "{stats:?}");
    println!("{}", stats.to_json());
    stop_within_deadline(source);
}
