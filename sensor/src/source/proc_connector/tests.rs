use super::procfs::tests::{fake_process, passwd};
use super::*;
use crate::record::{Location, ParentFields};
use crate::source::live::LiveCounters;
use crossbeam_channel::Receiver;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

/// A handler on a fake `/proc` tree, with the receiving end of its sink.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    handler: Handler,
    rx: Receiver<SourceEvent>,
    live: Arc<LiveCounters>,
}

fn fixture(capacity: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("proc");
    std::fs::create_dir_all(&root).unwrap();
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let live = Arc::new(LiveCounters::default());
    let handler = Handler::new(
        LiveSink::new(tx, live.clone()),
        ProcFs { root: root.clone() },
        UserNames::new(passwd(dir.path())),
        Arc::default(),
    );
    Fixture {
        _dir: dir,
        root,
        handler,
        rx,
        live,
    }
}

fn fork(parent: u32, child: u32) -> ProcEvent {
    ProcEvent::Fork {
        parent_pid: parent,
        parent_tgid: parent,
        child_pid: child,
        child_tgid: child,
    }
}

fn exec(pid: u32) -> ProcEvent {
    ProcEvent::Exec { pid, tgid: pid }
}

fn exit(pid: u32, parent: u32) -> ProcEvent {
    ProcEvent::Exit {
        pid,
        tgid: pid,
        exit_code: 0,
        exit_signal: 17,
        parent_pid: Some(parent),
        parent_tgid: Some(parent),
    }
}

fn summary(ev: &SourceEvent) -> (Action, u32, Option<u32>, Option<&str>) {
    (
        ev.action,
        ev.process.pid,
        ev.process.ppid,
        ev.process.exe.as_deref(),
    )
}

#[test]
fn web_shell_tree_through_a_forked_worker() {
    let mut f = fixture(64);
    // nginx 100 (seeded) -> php-fpm master 150 (exec'd) -> worker 200 (forked, never
    // exec'd) -> sh 300 -> id 301.
    fake_process(
        &f.root,
        150,
        100,
        0,
        Some("/usr/sbin/php-fpm8.2"),
        &["php-fpm: master process"],
    );
    assert!(f.handler.handle(fork(100, 150)));
    assert!(f.handler.handle(exec(150)));
    assert!(f.handler.handle(fork(150, 200)));
    fake_process(
        &f.root,
        200,
        150,
        33,
        Some("/usr/sbin/php-fpm8.2"),
        &["php-fpm: pool www"],
    );
    // A thread of the worker: ignored.
    assert!(f.handler.handle(ProcEvent::Fork {
        parent_pid: 200,
        parent_tgid: 200,
        child_pid: 201,
        child_tgid: 200
    }));
    assert!(f.handler.handle(fork(200, 300)));
    fake_process(
        &f.root,
        300,
        200,
        33,
        Some("/usr/bin/dash"),
        &["sh", "-c", "id"],
    );
    assert!(f.handler.handle(exec(300)));
    assert!(f.handler.handle(fork(300, 301)));
    fake_process(&f.root, 301, 300, 33, Some("/usr/bin/id"), &["id"]);
    assert!(f.handler.handle(exec(301)));
    assert!(f.handler.handle(exit(301, 300)));

    let events: Vec<SourceEvent> = f.rx.try_iter().collect();
    let got: Vec<_> = events.iter().map(summary).collect();
    assert_eq!(
        got,
        [
            (Action::Create, 150, Some(100), Some("php-fpm8.2")),
            (Action::Create, 200, Some(150), Some("php-fpm8.2")),
            (Action::Create, 300, Some(200), Some("dash")),
            (Action::Create, 301, Some(300), Some("id")),
            (Action::Terminate, 301, Some(300), None),
        ]
    );
    let sh = &events[2];
    assert_eq!(sh.process.command_line.as_deref(), Some("sh -c id"));
    assert_eq!(sh.process.user.as_deref(), Some("www-data"));
    assert_eq!(sh.process.image_path.as_deref(), Some("/usr/bin/dash"));
    assert_eq!(sh.parent, ParentFields::default());
    assert_eq!(sh.origin.kind, "proc-connector");
    assert_eq!(sh.origin.file, None);
    assert_eq!(sh.origin.location, Location::Live);
    assert!(sh.timestamp.is_some());
    let stats = f.handler.counters.snapshot();
    assert_eq!((stats.forks, stats.execs, stats.exits), (5, 3, 1));
    assert_eq!(stats.thread_events, 1);
    assert_eq!(stats.emitted, 5);
    assert_eq!(stats.proc_missing, 0);
    assert!(f.handler.forked.is_empty(), "{:?}", f.handler.forked);
}

#[test]
fn a_vanished_process_is_reported_with_its_fork_parent_and_counted() {
    let mut f = fixture(8);
    f.handler.handle(fork(300, 4242));
    f.handler.handle(exec(4242)); // no /proc/4242: already gone
    let ev = f.rx.try_recv().unwrap();
    assert_eq!(ev.action, Action::Create);
    assert_eq!(
        ev.process,
        ProcessRecord {
            pid: 4242,
            ppid: Some(300),
            ..ProcessRecord::default()
        }
    );
    // Gone without a fork seen either: the pid alone.
    f.handler.handle(exec(4343));
    assert_eq!(f.rx.try_recv().unwrap().process.ppid, None);
    assert_eq!(f.handler.counters.snapshot().proc_missing, 2);
}

/// JDK 17 starts a program through jspawnhelper, which execs it in the same process:
/// read after the second exec, both execs read as the program.
#[test]
fn two_execs_that_read_the_same_are_reported_once() {
    let mut f = fixture(8);
    f.handler.handle(fork(100, 200));
    fake_process(
        &f.root,
        200,
        100,
        997,
        Some("/usr/bin/dash"),
        &["/bin/sh", "-c", "id"],
    );
    f.handler.handle(exec(200));
    f.handler.handle(exec(200));
    // An exec that reads otherwise is another program.
    std::fs::remove_dir_all(f.root.join("200")).unwrap();
    fake_process(&f.root, 200, 100, 997, Some("/usr/bin/id"), &["id"]);
    f.handler.handle(exec(200));
    // Once the process has exited, its pid's next holder starts afresh.
    f.handler.handle(exit(200, 100));
    f.handler.handle(fork(100, 200));
    f.handler.handle(exec(200));
    let got: Vec<_> =
        f.rx.try_iter()
            .map(|e| summary(&e).3.map(String::from))
            .collect();
    let name = |n: &str| Some(n.to_string());
    assert_eq!(got, [name("dash"), name("id"), None, name("id")]);
    assert_eq!(f.handler.counters.snapshot().repeated_execs, 1);
}

#[test]
fn exec_in_a_known_pid_is_a_new_create_and_threads_are_ignored() {
    let mut f = fixture(8);
    fake_process(&f.root, 300, 1, 0, Some("/usr/bin/dash"), &["sh"]);
    f.handler.handle(exec(300));
    std::fs::remove_dir_all(f.root.join("300")).unwrap();
    fake_process(&f.root, 300, 1, 0, Some("/usr/bin/uname"), &["uname", "-a"]);
    f.handler.handle(exec(300));
    f.handler.handle(ProcEvent::Exec {
        pid: 301,
        tgid: 300,
    });
    f.handler.handle(ProcEvent::Exit {
        pid: 302,
        tgid: 300,
        exit_code: 0,
        exit_signal: 0,
        parent_pid: None,
        parent_tgid: None,
    });
    f.handler.handle(ProcEvent::Other { what: 0x200 });
    f.handler.handle(ProcEvent::Ack {
        seq: 1,
        ack: 1,
        err: 0,
    });
    let got: Vec<_> =
        f.rx.try_iter()
            .map(|e| (e.action, e.process.command_line))
            .collect();
    assert_eq!(
        got,
        [
            (Action::Create, Some("sh".into())),
            (Action::Create, Some("uname -a".into())),
        ]
    );
    let stats = f.handler.counters.snapshot();
    assert_eq!((stats.thread_events, stats.other, stats.emitted), (2, 1, 2));
}

#[test]
fn a_fork_that_exits_without_exec_is_only_a_terminate() {
    let mut f = fixture(8);
    f.handler.handle(fork(300, 310));
    f.handler.handle(exit(310, 300));
    let got: Vec<_> = f.rx.try_iter().map(|e| summary(&e).0).collect();
    assert_eq!(got, [Action::Terminate]);
    assert!(f.handler.forked.is_empty());
}

#[test]
fn full_channel_drops_and_counts_instead_of_blocking() {
    let mut f = fixture(1);
    for pid in 1000..1100 {
        assert!(
            f.handler.handle(exec(pid)),
            "a full channel is no reason to stop"
        );
    }
    assert_eq!(f.live.sent.load(Ordering::Relaxed), 1);
    assert_eq!(f.live.dropped.load(Ordering::Relaxed), 99);
    assert_eq!(f.handler.counters.snapshot().emitted, 100);
    drop(f.rx);
    assert!(
        !f.handler.handle(exec(5)),
        "a closed pipeline stops the reader"
    );
}

#[test]
fn overrun_forgets_forks_of_dead_processes() {
    let mut f = fixture(8);
    fake_process(
        &f.root,
        20,
        1,
        0,
        Some("/usr/sbin/nginx"),
        &["nginx: worker"],
    );
    f.handler.handle(fork(1, 20));
    f.handler.handle(fork(1, 21)); // its exit was lost
    f.handler.overrun();
    assert_eq!(f.handler.forked.keys().collect::<Vec<_>>(), [&20]);
    assert_eq!(f.handler.counters.snapshot().overruns, 1);
}

#[test]
fn stats_line_and_json() {
    let stats = ProcStats {
        forks: 3,
        execs: 2,
        exits: 1,
        emitted: 4,
        proc_missing: 1,
        overruns: 2,
        ..ProcStats::default()
    };
    let json = stats.to_json();
    assert_eq!(json["kind"], "stats");
    assert_eq!(json["source"], "proc-connector");
    assert_eq!(json["execs"], 2);
    assert_eq!(json["overruns"], 2);
    assert!(json["failure"].is_null());
}

#[test]
fn seed_from_a_fake_tree() {
    let dir = tempfile::tempdir().unwrap();
    let procfs = ProcFs {
        root: dir.path().join("proc"),
    };
    fake_process(&procfs.root, 1, 0, 0, Some("/sbin/init"), &["/sbin/init"]);
    fake_process(
        &procfs.root,
        90,
        1,
        33,
        Some("/usr/sbin/nginx"),
        &["nginx: worker process"],
    );
    std::fs::create_dir_all(procfs.root.join("91")).unwrap(); // vanished mid-listing
    let mut users = UserNames::new(passwd(dir.path()));
    let mut events = seed_from(&procfs, &mut users);
    events.sort_by_key(|e| e.process.pid);
    let got: Vec<_> = events.iter().map(summary).collect();
    assert_eq!(
        got,
        [
            (Action::Existing, 1, None, Some("init")),
            (Action::Existing, 90, Some(1), Some("nginx")),
        ]
    );
    assert_eq!(events[1].process.user.as_deref(), Some("www-data"));
}

#[test]
fn seed_sees_this_process() {
    let me = std::process::id();
    let events = seed();
    let mine = events
        .iter()
        .find(|e| e.process.pid == me)
        .expect("this process in the seed");
    assert_eq!(mine.action, Action::Existing);
    let exe = std::fs::canonicalize(std::env::current_exe().unwrap()).unwrap();
    assert_eq!(mine.process.image_path.as_deref(), exe.to_str());
    // SAFETY: plain getters.
    let (ppid, euid) = unsafe { (libc::getppid() as u32, libc::geteuid()) };
    assert_eq!(mine.process.ppid, Some(ppid));
    assert_eq!(
        mine.process.user,
        Some(UserNames::system().name(euid).into())
    );
    assert!(mine.process.command_line.is_some());
    assert!(mine.process.current_working_directory.is_some());
    assert_eq!(mine.origin.kind, "proc-connector");
    assert!(
        events.iter().any(|e| e.process.pid == ppid),
        "the parent too"
    );
}

#[test]
fn a_socket_that_fails_after_start_is_reported_as_an_end() {
    use super::parse::tests::ack;
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::os::unix::net::UnixDatagram;
    // The test plays the kernel on the other end of a datagram socketpair.
    let (ours, kernel) = UnixDatagram::pair().unwrap();
    let fd = ours.as_raw_fd();
    let socket = ConnectorSocket::on(OwnedFd::from(ours), RECEIVE_TIMEOUT).unwrap();
    let nonce = 41;
    kernel.send(&ack(nonce + 1)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = crossbeam_channel::bounded(16);
    let (ends_tx, ends) = crossbeam_channel::unbounded();
    let sink = LiveSink::new(tx, Arc::default()).reporting_ends_to(ends_tx);
    let procfs = ProcFs {
        root: dir.path().join("proc"),
    };
    let users = UserNames::new(passwd(dir.path()));
    let connector = ProcConnector::launch(socket, nonce, sink, procfs, users).expect("launch");
    // The socket breaks under the reader: its descriptor is no socket any more.
    let null = std::fs::File::open("/dev/null").unwrap();
    // SAFETY: both descriptors are open; `fd` stays owned by the reader's socket.
    assert!(unsafe { libc::dup2(null.as_raw_fd(), fd) } >= 0);
    let end = ends
        .recv_timeout(Duration::from_secs(10))
        .expect("the reader's end was not reported");
    assert_eq!(end.part, "proc-connector");
    assert!(
        end.reason
            .starts_with("receiving from the process-events connector"),
        "{}",
        end.reason
    );
    assert_eq!(
        connector.stats().failure.as_deref(),
        Some(end.reason.as_str())
    );
    stop_within_deadline(connector);
}

// ---- Against the real kernel (root only) ----

/// Whether the real-kernel tests can run; prints why not.
fn privileged(test: &str) -> bool {
    // SAFETY: plain getter.
    if unsafe { libc::geteuid() } != 0 {
        println!("{test}: skipped: needs root (the process-events connector needs root or CAP_NET_ADMIN)");
        return false;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|caps| u64::from_str_radix(caps.trim(), 16).ok())
        .unwrap_or(0);
    if effective & (1 << 12) == 0 {
        println!("{test}: skipped: root without CAP_NET_ADMIN");
        return false;
    }
    // The kernel's fixed inode numbers of the initial namespaces (PROC_*_INIT_INO).
    let initial = [("pid", "pid:[4026531836]"), ("user", "user:[4026531837]")]
        .iter()
        .all(|(ns, init)| {
            std::fs::read_link(format!("/proc/self/ns/{ns}"))
                .is_ok_and(|link| link.to_str() == Some(*init))
        });
    if !initial {
        println!("{test}: skipped: not in the initial pid and user namespaces (container?)");
        return false;
    }
    true
}

fn start(capacity: usize) -> (ProcConnector, Receiver<SourceEvent>, Arc<LiveCounters>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let live = Arc::new(LiveCounters::default());
    let connector = ProcConnector::start(LiveSink::new(tx, live.clone())).expect("start");
    (connector, rx, live)
}

fn marker(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("marker-{name}-{}-{nanos}", std::process::id())
}

fn canonical(path: &str) -> Option<Text> {
    std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.to_str().map(Text::from))
}

/// Receives into `seen` until `done` holds for one of the events received, or panics
/// at the deadline with the events about `pids`.
fn wait_for(
    rx: &Receiver<SourceEvent>,
    seen: &mut Vec<SourceEvent>,
    what: &str,
    mut done: impl FnMut(&SourceEvent) -> bool,
) -> SourceEvent {
    let deadline = Instant::now() + Duration::from_secs(10);
    if let Some(ev) = seen.iter().find(|e| done(e)) {
        return ev.clone();
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(ev) => {
                seen.push(ev.clone());
                if done(&ev) {
                    return ev;
                }
            }
            Err(_) => {
                let me = std::process::id();
                let related: Vec<_> = seen
                    .iter()
                    .filter(|e| e.process.ppid == Some(me) || e.process.command_line.is_some())
                    .filter(|e| {
                        e.process
                            .command_line
                            .as_deref()
                            .is_some_and(|c| c.contains("marker-"))
                            || e.process.ppid == Some(me)
                    })
                    .collect();
                panic!(
                    "no {what} within 10 s; {} events seen, related: {related:#?}",
                    seen.len()
                )
            }
        }
    }
}

/// Stops the connector, failing the test if that takes longer than a generous
/// deadline (the reader checks its flag every 200 ms).
fn stop_within_deadline(connector: ProcConnector) {
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        connector.stop();
        let _ = done_tx.send(());
    });
    done_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("stop() did not return within 5 s");
}

/// `sh -c script`, its stdin a pipe the test holds (what the script waits on).
fn shell_on_stdin(script: &str) -> std::process::Child {
    Command::new("/bin/sh")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn is_create(ev: &SourceEvent, pid: u32) -> bool {
    ev.action == Action::Create && ev.process.pid == pid
}

#[test]
fn real_exec_events_carry_image_command_line_and_ancestry() {
    if !privileged("real_exec_events_carry_image_command_line_and_ancestry") {
        return;
    }
    let (connector, rx, _live) = start(65_536);
    let me = std::process::id();
    let marker = marker("exec");
    // `read` holds the shell until we have seen its exec, so /proc shows it as sh.
    let script = format!("read go; /bin/true; exec /bin/cat - {marker}");
    let mut child = shell_on_stdin(&script);
    let sh = child.id();
    let mut seen = Vec::new();

    let sh_create = wait_for(&rx, &mut seen, "exec of sh", |e| is_create(e, sh));
    assert_eq!(sh_create.process.image_path, canonical("/bin/sh"));
    assert_eq!(
        sh_create.process.command_line,
        Some(format!("/bin/sh -c '{script}'").into())
    );
    assert_eq!(sh_create.process.ppid, Some(me), "sh is this test's child");
    assert_eq!(sh_create.process.user.as_deref(), Some("root"));

    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    let cat = canonical("/bin/cat");
    let cat_create = wait_for(&rx, &mut seen, "exec of cat", |e| {
        is_create(e, sh) && e.process.image_path == cat
    });
    assert_eq!(
        cat_create.process.command_line,
        Some(format!("/bin/cat - {marker}").into())
    );
    assert_eq!(cat_create.process.exe.as_deref(), Some("cat"));
    assert_eq!(
        cat_create.process.ppid,
        Some(me),
        "exec keeps the pid and the parent"
    );
    // /bin/true: forked by sh; it may be gone before /proc is read, but its parent
    // is known either way.
    let true_create = wait_for(&rx, &mut seen, "exec of true", |e| {
        e.action == Action::Create && e.process.ppid == Some(sh) && e.process.pid != sh
    });
    assert!(
        true_create.process.image_path.is_none()
            || true_create.process.image_path == canonical("/bin/true"),
        "{true_create:#?}"
    );

    drop(stdin);
    child.wait().unwrap();
    wait_for(&rx, &mut seen, "exit of cat", |e| {
        e.action == Action::Terminate && e.process.pid == sh
    });
    let stats = connector.stats();
    assert!(
        stats.forks >= 2 && stats.execs >= 3 && stats.exits >= 2,
        "{stats:?}"
    );
    assert!(stats.emitted >= 4, "{stats:?}");
    println!("{}", stats.to_json());
    stop_within_deadline(connector);
}

#[test]
fn real_forked_subshell_is_emitted_as_the_parent_of_its_exec() {
    if !privileged("real_forked_subshell_is_emitted_as_the_parent_of_its_exec") {
        return;
    }
    let (connector, rx, _live) = start(65_536);
    let me = std::process::id();
    let marker = marker("subshell");
    // The subshell forks without exec, like a php-fpm worker; cat blocks on stdin.
    let script = format!("( /bin/cat - {marker}; /bin/true ); /bin/true");
    let mut child = shell_on_stdin(&script);
    let sh = child.id();
    let mut seen = Vec::new();
    let cat_line = format!("/bin/cat - {marker}");
    let cat = wait_for(&rx, &mut seen, "exec of cat", |e| {
        e.action == Action::Create && e.process.command_line.as_deref() == Some(&cat_line)
    });
    let subshell = cat.process.ppid.expect("cat's parent");
    assert_ne!(subshell, sh, "cat runs in the subshell");
    let position = |pid: u32| seen.iter().position(|e| is_create(e, pid));
    let (sh_at, sub_at, cat_at) = (position(sh), position(subshell), position(cat.process.pid));
    assert!(
        sh_at < sub_at && sub_at < cat_at,
        "order {sh_at:?} {sub_at:?} {cat_at:?}"
    );
    let sub = &seen[sub_at.unwrap()].process;
    assert_eq!(
        sub.image_path,
        canonical("/bin/sh"),
        "a fork child runs its parent's image"
    );
    assert_eq!(sub.ppid, Some(sh));
    assert_eq!(
        sub.command_line,
        Some(format!("/bin/sh -c '{script}'").into())
    );
    assert_eq!(seen[sh_at.unwrap()].process.ppid, Some(me));

    drop(child.stdin.take());
    child.wait().unwrap();
    for pid in [cat.process.pid, subshell, sh] {
        wait_for(&rx, &mut seen, "exit", |e| {
            e.action == Action::Terminate && e.process.pid == pid
        });
    }
    stop_within_deadline(connector);
}

#[test]
fn real_full_channel_drops_and_counts_instead_of_blocking() {
    if !privileged("real_full_channel_drops_and_counts_instead_of_blocking") {
        return;
    }
    let (connector, rx, live) = start(1);
    for _ in 0..20 {
        Command::new("/bin/true").status().unwrap();
    }
    // 20 processes are at least 20 creates and 20 exits; one fits in the channel.
    let deadline = Instant::now() + Duration::from_secs(10);
    while live.dropped.load(Ordering::Relaxed) < 39 {
        assert!(Instant::now() < deadline, "dropped only {:?}", live);
        std::thread::yield_now();
    }
    assert_eq!(live.sent.load(Ordering::Relaxed), 1);
    assert!(connector.stats().emitted >= 40);
    stop_within_deadline(connector);
    assert_eq!(rx.len(), 1);
}

#[test]
fn real_overrun_is_counted_and_reading_continues() {
    if !privileged("real_overrun_is_counted_and_reading_continues") {
        return;
    }
    // Subscribe with a tiny buffer and do not read while processes come and go: the
    // kernel overruns the socket.
    let (socket, nonce) = subscribe().expect("subscribe");
    socket.set_receive_buffer(1);
    for _ in 0..30 {
        Command::new("/bin/true").status().unwrap();
    }
    socket.set_receive_buffer(8 << 20);
    let (tx, rx) = crossbeam_channel::bounded(65_536);
    let connector = ProcConnector::launch(
        socket,
        nonce,
        LiveSink::new(tx, Arc::default()),
        ProcFs::default(),
        UserNames::system(),
    )
    .expect("launch after an overrun");
    let deadline = Instant::now() + Duration::from_secs(10);
    while connector.stats().overruns == 0 {
        assert!(
            Instant::now() < deadline,
            "no overrun counted: {:?}",
            connector.stats()
        );
        std::thread::yield_now();
    }
    let marker = marker("overrun");
    let mut child = Command::new("/bin/cat")
        .args(["-", &marker])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut seen = Vec::new();
    let cat = wait_for(&rx, &mut seen, "exec after the overrun", |e| {
        is_create(e, pid)
    });
    assert_eq!(
        cat.process.command_line,
        Some(format!("/bin/cat - {marker}").into())
    );
    drop(child.stdin.take());
    child.wait().unwrap();
    println!("{}", connector.stats().to_json());
    stop_within_deadline(connector);
}

#[test]
fn without_root_start_is_refused_clearly_or_works() {
    // SAFETY: plain getter.
    if unsafe { libc::geteuid() } == 0 {
        println!("without_root_start_is_refused_clearly_or_works: skipped: runs as root");
        return;
    }
    let (tx, _rx) = crossbeam_channel::bounded(1);
    match ProcConnector::start(LiveSink::new(tx, Arc::default())) {
        // Before Linux 6.6 listening needs CAP_NET_ADMIN.
        Err(err) => assert!(err.contains("root or CAP_NET_ADMIN"), "{err}"),
        // Since 6.6 anyone may listen.
        Ok(connector) => {
            println!("the kernel lets unprivileged users listen (Linux 6.6+)");
            stop_within_deadline(connector);
        }
    }
}

#[test]
fn a_listen_refused_for_privilege_names_the_missing_capability() {
    let message = refusal(libc::EPERM as u32);
    assert!(
        message.contains(": CAP_NET_ADMIN is missing (before Linux 6.6"),
        "{message}"
    );
    assert!(!refusal(libc::EINVAL as u32).contains("CAP_"));
}
