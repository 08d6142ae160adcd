//! End-to-end on the live Linux sources: real processes, a real web server with a real
//! web shell, bursts, hot reload, selftest, each run once with the eBPF source and once
//! with the process connector (`--source`), and the fallback from one to the other.
//! Needs root (the kernel connector and other users' /proc), for eBPF a kernel with
//! BTF, and for the web-shell test nginx-light and php-fpm; without them each test says
//! what it lacks and returns. Under CI (root, BTF, packages installed) they must run.
#![cfg(target_os = "linux")]

mod common;
#[path = "common/live.rs"]
mod live;

use common::needs::{self, Need};
use live::Sensor;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Every sensor sees every process on the host, so live tests run one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Returns the host to itself for this test, or `None` (saying why) when the test
/// cannot run here: it needs root and `more`. Under CI it must run (see `needs`).
fn live_host(more: &[Need]) -> Option<std::sync::MutexGuard<'static, ()>> {
    let root = Need::new(
        "root",
        "for the kernel process connector: run the tests as root",
        is_root(),
    );
    let needs: Vec<Need> = std::iter::once(root).chain(more.iter().cloned()).collect();
    needs::met(&needs).then(|| ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The two Linux live sources, as `--source` names them.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Source {
    Ebpf,
    Connector,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Ebpf => "ebpf",
            Source::Connector => "proc-connector",
        }
    }

    /// What the source needs beyond root.
    fn needs(self) -> Vec<Need> {
        match self {
            Source::Ebpf => vec![Need::new(
                "eBPF (a kernel with BTF)",
                "Linux 5.8 or later built with CONFIG_DEBUG_INFO_BTF: /sys/kernel/btf/vmlinux",
                Path::new("/sys/kernel/btf/vmlinux").exists(),
            )],
            Source::Connector => vec![],
        }
    }

    /// `spawnwatch run` arguments that choose it.
    fn args(self) -> [&'static str; 2] {
        ["--source", self.name()]
    }
}

/// The host for a test of `source` that also needs `more`.
fn live_host_for(source: Source, more: &[Need]) -> Option<std::sync::MutexGuard<'static, ()>> {
    live_host(&[source.needs(), more.to_vec()].concat())
}

/// A process whose command line carries `text` and that stays alive (blocked on its
/// stdin) until dropped: a short-lived one may be gone before the sensor reads /proc.
struct Marker(Child);

impl Marker {
    fn start(text: &str) -> Marker {
        let child = Command::new("/bin/sh")
            .args(["-c", "read line", text])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("sh starts");
        Marker(child)
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

fn alerts(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|l| l["kind"] == "alert").collect()
}

fn shipped_linux_rules() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules/webshell-linux.rules")
}

// --- nginx + php-fpm with a one-line web shell -------------------------------------

struct WebServer {
    nginx: Child,
    fpm: Child,
    port: u16,
}

impl Drop for WebServer {
    fn drop(&mut self) {
        // Each server is a process group of its own (master and workers): killing
        // the master alone left its workers running, orphaned, after every test.
        for server in [&mut self.nginx, &mut self.fpm] {
            // SAFETY: kill(2) on a process group this test created.
            unsafe { libc::kill(-(server.id() as libc::pid_t), libc::SIGKILL) };
            let _ = server.wait();
        }
    }
}

/// Debian names the binary after the PHP version (php-fpm8.2).
fn php_fpm() -> Option<PathBuf> {
    std::fs::read_dir("/usr/sbin")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("php-fpm")
        })
}

#[test]
fn without_nginx_and_php_fpm_the_web_shell_test_is_skipped_outside_ci_and_fails_under_it() {
    let missing = || {
        vec![needs::debian_packages(&[
            ("nginx-light", false),
            ("php-fpm", false),
        ])]
    };
    assert_eq!(
        needs::verdict(&missing(), false),
        needs::Verdict::Skip(
            "skipped: needs nginx-light and php-fpm (apt-get install nginx-light php-fpm)".into()
        )
    );
    assert_eq!(
        needs::verdict(&missing(), true),
        needs::Verdict::Fail("needs nginx-light and php-fpm (apt-get install nginx-light php-fpm); under CI (the CI environment variable is set) every test must run".into())
    );
    let one = [needs::debian_packages(&[
        ("nginx-light", true),
        ("php-fpm", false),
    ])];
    assert_eq!(
        needs::verdict(&one, false),
        needs::Verdict::Skip("skipped: needs php-fpm (apt-get install php-fpm)".into())
    );
    let all = [needs::debian_packages(&[
        ("nginx-light", true),
        ("php-fpm", true),
    ])];
    assert_eq!(needs::verdict(&all, true), needs::Verdict::Run);
}

/// What the web-shell test runs: nginx (with its fastcgi_params) and php-fpm.
fn web_server_packages() -> Need {
    needs::debian_packages(&[
        (
            "nginx-light",
            Path::new("/usr/sbin/nginx").exists()
                && Path::new("/etc/nginx/fastcgi_params").exists(),
        ),
        ("php-fpm", php_fpm().is_some()),
    ])
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_web_server(dir: &Path) -> WebServer {
    let docroot = dir.join("www");
    std::fs::create_dir_all(&docroot).unwrap();
    std::fs::write(
        docroot.join("shell.php"),
        "<?php system($_GET['cmd']); ?>\n",
    )
    .unwrap();
    std::fs::write(docroot.join("index.html"), "<h1>static</h1>\n").unwrap();
    Command::new("chmod")
        .args(["-R", "a+rX", dir.to_str().unwrap()])
        .status()
        .unwrap();
    let socket = dir.join("fpm.sock");
    let fpm_conf = dir.join("fpm.conf");
    std::fs::write(
        &fpm_conf,
        format!(
            "[global]\nerror_log = {dir}/fpm.log\ndaemonize = no\n[web]\nuser = www-data\ngroup = www-data\nlisten = {sock}\nlisten.owner = www-data\nlisten.group = www-data\nlisten.mode = 0666\npm = static\npm.max_children = 2\n",
            dir = dir.display(),
            sock = socket.display()
        ),
    )
    .unwrap();
    let fpm = Command::new(php_fpm().expect("php-fpm, checked before"))
        .args(["-F", "-R", "-y", fpm_conf.to_str().unwrap()])
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("php-fpm starts (Debian package php-fpm)");
    let port = free_port();
    let nginx_conf = dir.join("nginx.conf");
    std::fs::write(
        &nginx_conf,
        format!(
            "daemon off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/nginx.err;
events {{}}
http {{
  access_log off; client_body_temp_path {d}; fastcgi_temp_path {d}; proxy_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};
  server {{
    listen 127.0.0.1:{port}; root {root};
    location ~ \\.php$ {{ include /etc/nginx/fastcgi_params; fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name; fastcgi_pass unix:{sock}; }}
  }}
}}
",
            d = dir.display(),
            root = docroot.display(),
            sock = socket.display()
        ),
    )
    .unwrap();
    let nginx = Command::new("/usr/sbin/nginx")
        .args([
            "-c",
            nginx_conf.to_str().unwrap(),
            "-e",
            dir.join("nginx.err").to_str().unwrap(),
        ])
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx starts (Debian package nginx-light)");
    let server = WebServer { nginx, fpm, port };
    // Ready when the shell answers.
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if socket.exists() && get(port, "/index.html").contains("static") {
            return server;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nginx + php-fpm did not come up on port {port}");
}

/// A plain HTTP/1.0 GET on loopback; the whole response.
fn get(port: u16, path: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

#[test]
fn a_php_web_shell_behind_nginx_is_caught_live_with_ebpf() {
    a_php_web_shell_behind_nginx_is_caught_live(Source::Ebpf);
}

#[test]
fn a_php_web_shell_behind_nginx_is_caught_live_with_the_connector() {
    a_php_web_shell_behind_nginx_is_caught_live(Source::Connector);
}

/// How many times the web shell runs `id` to count its alerts.
const IDS: usize = 100;

fn a_php_web_shell_behind_nginx_is_caught_live(source: Source) {
    let Some(_host) = live_host_for(source, &[web_server_packages()]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = start_web_server(dir.path());
    let output = dir.path().join("alerts.jsonl");
    // Every alert written: storm suppression would summarise the 100 shells' alerts.
    let args = [&source.args()[..], &["--storm-limit", "0"]].concat();
    let sensor = Sensor::start(&[&shipped_linux_rules()], &output, &args);
    assert!(get(server.port, "/index.html").contains("static"));
    let id = get(server.port, "/shell.php?cmd=id");
    assert!(id.contains("uid="), "the web shell ran id: {id}");
    for _ in 1..IDS {
        let id = get(server.port, "/shell.php?cmd=id");
        assert!(id.contains("uid="), "the web shell ran id: {id}");
    }
    let uname = get(server.port, "/shell.php?cmd=uname%20-a");
    assert!(uname.contains("Linux"), "the web shell ran uname: {uname}");
    // Last, a command that lives long enough for either source to read it whole: its
    // alert says the sensor has seen everything before it.
    // (Two commands, so the shell does not exec the last in its own process.)
    get(server.port, "/shell.php?cmd=sleep%201%3B%20true");
    sensor.wait_line("the last shell's alert", |l| {
        l["kind"] == "alert" && l["process"]["command_line"] == "sh -c 'sleep 1; true'"
    });
    let lines = sensor.stop();
    let alerts = alerts(&lines);
    // dash execs the command of `sh -c` in its own process, within a millisecond: the
    // connector may read /proc after that, so of its shells only one of the 100
    // `sh -c id` is sure to be read whole.
    let shells: &[&str] = match source {
        Source::Ebpf => &["sh -c id", "sh -c 'uname -a'"],
        Source::Connector => &["sh -c id"],
    };
    for &command in shells {
        let shell = alerts
            .iter()
            .find(|a| a["process"]["command_line"] == command)
            .unwrap_or_else(|| panic!("no alert for {command:?}: {alerts:#?}"));
        assert_eq!(shell["rule"]["id"], "SW-LNX-001");
        assert_eq!(shell["process"]["exe"], "dash");
        assert!(
            shell["parent"]["exe"]
                .as_str()
                .unwrap()
                .starts_with("php-fpm"),
            "{shell:#}"
        );
    }
    // The tools themselves (id, uname) exit within milliseconds. eBPF reads them in
    // the kernel at their exec: each is alerted with its command line, every time. The
    // connector reads /proc afterwards and often finds them gone: reported, not asserted.
    let whole_ids = alerts
        .iter()
        .filter(|a| a["process"]["exe"] == "id" && a["process"]["command_line"] == "id")
        .count();
    let unames = alerts
        .iter()
        .filter(|a| a["process"]["command_line"] == "uname -a")
        .count();
    eprintln!(
        "{}: the web shell's `id` alerted with its command line {whole_ids} of {IDS} times, `uname -a` {unames} of 1",
        source.name()
    );
    if source == Source::Ebpf {
        assert_eq!((whole_ids, unames), (IDS, 1), "{alerts:#?}");
    }
    // Nothing else: the static page started no process, so nothing alerted for it.
    let unrelated: Vec<String> = alerts
        .iter()
        .filter(|a| !a["ancestors"].to_string().contains("php-fpm"))
        .map(|a| {
            format!(
                "{} {} {} <- {}",
                a["rule"]["id"], a["process"]["exe"], a["process"]["command_line"], a["ancestors"]
            )
        })
        .collect();
    assert!(
        unrelated.is_empty(),
        "alerts outside the PHP worker: {unrelated:#?}"
    );
    drop(server);
}

// --- a burst of short processes under a fake web server ----------------------------

#[test]
fn a_burst_of_5000_processes_is_accounted_for_with_ebpf() {
    a_burst_of_5000_processes_is_accounted_for(Source::Ebpf);
}

#[test]
fn a_burst_of_5000_processes_is_accounted_for_with_the_connector() {
    a_burst_of_5000_processes_is_accounted_for(Source::Connector);
}

fn a_burst_of_5000_processes_is_accounted_for(source_choice: Source) {
    let Some(_host) = live_host_for(source_choice, &[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("burst.rules");
    std::fs::write(
        &rules,
        r#"rule BURST { title: "id under the fake web server" severity: low attack: T1033
                        condition: exe == "id" and ancestor[..2].exe == "nginx" }
           rule WHOLE { title: "id seen with its image and argv" severity: low attack: T1033
                        condition: image_path == "/usr/bin/id" and command_line == "/usr/bin/id"
                                   and ancestor[..2].exe == "nginx" }
           rule DONE { title: "burst finished" severity: low attack: T1033
                       condition: command_line contains "burst-finished-marker" }"#,
    )
    .unwrap();
    // A copy of bash named nginx: a web server as the rules see it.
    let fake = dir.path().join("nginx");
    std::fs::copy("/bin/bash", &fake).unwrap();
    let output = dir.path().join("alerts.jsonl");
    let sensor = Sensor::start(&[&rules], &output, &source_choice.args());
    let started = Instant::now();
    let status = Command::new(&fake)
        .args([
            "-c",
            "for i in $(seq 5000); do /usr/bin/id >/dev/null; done",
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    let spawn_secs = started.elapsed().as_secs_f64();
    assert!(status.success());
    let marker = Marker::start("burst-finished-marker");
    sensor.wait_line("the end-of-burst marker", |l| l["rule"]["id"] == "DONE");
    drop(marker);
    let lines = sensor.stop();
    let stats = lines.last().unwrap();
    // Alerts written and summarised by storm suppression, of one rule.
    let seen = |rule: &str| -> (u64, u64) {
        let alerted = alerts(&lines)
            .iter()
            .filter(|a| a["rule"]["id"] == rule)
            .count() as u64;
        let suppressed: u64 = lines
            .iter()
            .filter(|l| l["kind"] == "alert-summary" && l["rule"]["id"] == rule)
            .map(|l| l["suppressed"].as_u64().unwrap())
            .sum();
        (alerted, suppressed)
    };
    let (alerted, suppressed) = seen("BURST");
    let whole = {
        let (alerted, suppressed) = seen("WHOLE");
        alerted + suppressed
    };
    let source = &stats["source"];
    eprintln!(
        "burst ({}): 5000 processes in {spawn_secs:.1} s; id seen and alerted {} ({alerted} written, {suppressed} summarised), {whole} with image and argv; dropped at channel {}; kernel overruns {}; ring full drops {}; lacked /proc details {} of {} emitted",
        source_choice.name(),
        alerted + suppressed,
        stats["dropped_at_channel"],
        source["overruns"],
        source["ring_full_drops"],
        source["proc_missing"],
        source["emitted"],
    );
    assert_eq!(source["source"], source_choice.name());
    if source_choice == Source::Ebpf {
        // At least 99.9 % seen whole, nothing dropped.
        assert!(whole >= 4995, "{whole} of 5000 seen whole");
        assert_eq!(
            (&stats["dropped_at_channel"], &source["ring_full_drops"]),
            (&Value::from(0), &Value::from(0))
        );
    }
    // Storm suppression keeps the output small and accounts for every alert.
    assert!(
        alerted <= 20,
        "storm suppression caps alerts per rule and incident"
    );
    assert!(alerted + suppressed > 0);
    assert!(alerted + suppressed <= 5000);
    // Every event the source emitted was either received or dropped, and counted.
    assert_eq!(
        stats["received"].as_u64().unwrap() + stats["dropped_at_channel"].as_u64().unwrap(),
        source["emitted"].as_u64().unwrap()
    );
}

// --- hot reload, end to end -------------------------------------------------------

#[test]
fn rules_reload_live_and_a_broken_file_keeps_the_old_set_with_ebpf() {
    rules_reload_live_and_a_broken_file_keeps_the_old_set(Source::Ebpf);
}

#[test]
fn rules_reload_live_and_a_broken_file_keeps_the_old_set_with_the_connector() {
    rules_reload_live_and_a_broken_file_keeps_the_old_set(Source::Connector);
}

fn rules_reload_live_and_a_broken_file_keeps_the_old_set(source: Source) {
    let Some(_host) = live_host_for(source, &[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir(&rules_dir).unwrap();
    std::fs::copy(
        shipped_linux_rules(),
        rules_dir.join("webshell-linux.rules"),
    )
    .unwrap();
    let output = dir.path().join("alerts.jsonl");
    let mut sensor = Sensor::start(&[&rules_dir], &output, &source.args());
    let marker_rule = |n: u32| {
        format!("rule MARK-{n} {{ title: \"marker {n}\" severity: low attack: T1059 condition: command_line contains \"reload-marker-{n}\" }}\n")
    };
    // An editor that saves by writing a temporary file and renaming it over.
    let local = rules_dir.join("local.rules");
    std::fs::write(dir.path().join("local.tmp"), marker_rule(1)).unwrap();
    std::fs::rename(dir.path().join("local.tmp"), &local).unwrap();
    sensor.wait_stderr("added [MARK-1]");
    let marker = Marker::start("reload-marker-1");
    sensor.wait_line("MARK-1", |l| l["rule"]["id"] == "MARK-1");
    drop(marker);
    // Break it: the old set (with MARK-1) keeps running, and the SIEM hears of it.
    std::fs::write(
        &local,
        format!("{}rule MARK-2 {{ condition: exe ==\n", marker_rule(1)),
    )
    .unwrap();
    sensor.wait_stderr("rule reload failed");
    sensor.wait_line("the reload-failed sensor alert", |l| {
        l["kind"] == "sensor" && l["rule"]["id"] == "spawnwatch.reload-failed"
    });
    let marker = Marker::start("reload-marker-1 again");
    sensor.wait_line("MARK-1 after the failed reload", |l| {
        l["rule"]["id"] == "MARK-1"
            && l["process"]["command_line"]
                .as_str()
                .is_some_and(|c| c.contains("again"))
    });
    drop(marker);
    // Delete and create again with another rule: MARK-1 goes, MARK-3 comes.
    std::fs::remove_file(&local).unwrap();
    std::fs::write(&local, marker_rule(3)).unwrap();
    sensor.wait_stderr("added [MARK-3]");
    let marker = Marker::start("reload-marker-3 reload-marker-1");
    sensor.wait_line("MARK-3", |l| l["rule"]["id"] == "MARK-3");
    drop(marker);
    let lines = sensor.stop();
    let late_mark1 = alerts(&lines)
        .iter()
        .filter(|a| {
            a["rule"]["id"] == "MARK-1"
                && a["process"]["command_line"]
                    .as_str()
                    .is_some_and(|c| c.contains("reload-marker-3"))
        })
        .count();
    assert_eq!(late_mark1, 0, "MARK-1 was removed with the file");
}

// --- Sigma rules, live ----------------------------------------------------------------

/// SigmaHQ's Linux process-creation rules, live: `cat` under a shell renamed `nginx`
/// is SigmaHQ's "Linux Webshell Indicators" (a web server starting `/bin/cat`). `cat`
/// waits on its stdin, so the sensor can read both processes from /proc.
#[test]
fn sigma_rules_run_live() {
    let Some(sigma) = needs::shared("sigma/rules/linux/process_creation") else {
        return;
    };
    let Some(_host) = live_host(&[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sensor = Sensor::start(&[&sigma], &dir.path().join("alerts.jsonl"), &[]);
    assert!(
        sensor
            .stderr_seen
            .iter()
            .any(|l| l.ends_with("Sigma: 122 rules loaded from 122 file(s); 0 skipped")),
        "{:#?}",
        sensor.stderr_seen
    );
    let nginx = dir.path().join("nginx");
    std::fs::copy("/bin/sh", &nginx).unwrap();
    let mut server = Command::new(&nginx)
        .args(["-c", "cat; true"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("the fake nginx starts");
    let alert = sensor.wait_line("the Sigma rule's alert", |l| {
        l["rule"]["id"] == "818f7b24-0fba-4c49-a073-8b755573b9c7"
            && l["parent"]["pid"] == server.id()
    });
    drop(server.stdin.take());
    server.wait().unwrap();
    sensor.stop();
    assert_eq!(alert["rule"]["title"], "Linux Webshell Indicators");
    assert_eq!(alert["rule"]["severity"], "high");
    assert_eq!(alert["process"]["exe"], "cat");
    assert_eq!(alert["parent"]["image_path"], nginx.to_str().unwrap());
}

// --- selftest -----------------------------------------------------------------------

#[test]
fn selftest_passes_on_this_host_with_ebpf() {
    selftest_passes_on_this_host(Source::Ebpf);
}

#[test]
fn selftest_passes_on_this_host_with_the_connector() {
    selftest_passes_on_this_host(Source::Connector);
}

fn selftest_passes_on_this_host(source: Source) {
    let Some(_host) = live_host_for(source, &[]) else {
        return;
    };
    let stdout = common::stdout_of_success(
        common::spawnwatch()
            .arg("selftest")
            .args(source.args())
            .stdin(Stdio::null()),
    );
    assert!(
        stdout.starts_with("PASS: ") && stdout.contains("SW-LNX-001"),
        "{stdout}"
    );
}

// --- least privilege: the systemd unit's user and capabilities, for real -------------

/// A user that is not root, and copies of the binary and rules it can reach (the
/// workspace may be under /root), in a folder it may write.
struct Unprivileged {
    uid: u32,
    gid: u32,
    dir: tempfile::TempDir,
    exe: PathBuf,
    rules: PathBuf,
}

impl Unprivileged {
    fn nobody() -> Unprivileged {
        // SAFETY: a NUL-terminated name; the entry is copied out at once.
        let (uid, gid) = unsafe {
            let entry = libc::getpwnam(c"nobody".as_ptr());
            assert!(!entry.is_null(), "no user nobody");
            ((*entry).pw_uid, (*entry).pw_gid)
        };
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("spawnwatch");
        std::fs::copy(env!("CARGO_BIN_EXE_spawnwatch"), &exe).unwrap();
        let rules = dir.path().join("webshell-linux.rules");
        std::fs::copy(shipped_linux_rules(), &rules).unwrap();
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        Unprivileged {
            uid,
            gid,
            dir,
            exe,
            rules,
        }
    }

    /// `spawnwatch ARGS` as this user holding `capabilities` (`CAP_X` names) and no
    /// others, as systemd's AmbientCapabilities= runs it.
    fn command(&self, capabilities: &[&str], args: &[&str]) -> Command {
        let caps: Vec<String> = capabilities
            .iter()
            .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
            .collect();
        let caps = if caps.is_empty() {
            "-all".to_string()
        } else {
            caps.join(",")
        };
        let mut command = Command::new("setpriv");
        command
            .arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg(format!("--inh-caps={caps}"));
        if !capabilities.is_empty() {
            command.arg(format!("--ambient-caps={caps}"));
        }
        command.arg(&self.exe).args(args);
        command
    }
}

/// Runs `command` to its end, or for 20 s at most (then ends it): its exit code
/// (`None`: it was still running) and its stderr. A sensor that should have refused to
/// start must fail the test, not hang it.
fn run_to_refusal(mut command: Command) -> (Option<i32>, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(text) => (child.wait().unwrap().code(), text),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            (None, rx.recv().unwrap_or_default())
        }
    }
}

/// The capabilities the systemd unit of `service install` grants.
fn unit_capabilities() -> Vec<String> {
    let unit = common::stdout_of_success(common::spawnwatch().args([
        "service",
        "install",
        "--print",
        "-o",
        "/var/log/spawnwatch/alerts.jsonl",
    ]));
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("AmbientCapabilities="))
        .expect("the unit grants capabilities");
    line.split_whitespace().map(str::to_string).collect()
}

/// The kernel's major and minor version.
fn kernel_version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut parts = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[test]
fn a_non_root_sensor_with_only_the_units_capabilities_catches_the_web_shell() {
    let Some(_host) = live_host(&[web_server_packages()]) else {
        return;
    };
    let capabilities = unit_capabilities();
    assert_eq!(
        capabilities,
        ["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON", "CAP_SYS_PTRACE"]
    );
    let user = Unprivileged::nobody();
    let server = start_web_server(&user.dir.path().join("web"));
    let output = user.dir.path().join("alerts.jsonl");
    let caps: Vec<&str> = capabilities.iter().map(String::as_str).collect();
    let sensor = Sensor::start_with(&mut user.command(&caps, &[]), &[&user.rules], &output, &[]);
    // It runs as that user, holding those capabilities and nothing else, and with them
    // eBPF runs: no fallback to the connector.
    let status = std::fs::read_to_string(format!("/proc/{}/status", sensor.child.id())).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(field("Uid:"), user.uid.to_string());
    assert_eq!(
        field("CapEff:"),
        format!("{:016x}", (1u64 << 12) | (1 << 19) | (1 << 38) | (1 << 39))
    );
    assert!(
        (sensor.stderr_seen.iter()).any(|l| l.starts_with("spawnwatch: source: ebpf")),
        "{:#?}",
        sensor.stderr_seen
    );
    let id = get(server.port, "/shell.php?cmd=id");
    assert!(id.contains("uid="), "the web shell ran id: {id}");
    let alert = sensor.wait_line("the web shell's sh -c id", |l| {
        l["kind"] == "alert" && l["process"]["command_line"] == "sh -c id"
    });
    assert_eq!(alert["rule"]["id"], "SW-LNX-001");
    // www-data's shell, read whole by a sensor that is neither root nor www-data.
    assert_eq!(alert["process"]["exe"], "dash");
    assert_eq!(alert["process"]["image_path"], "/usr/bin/dash", "{alert:#}");
    assert!(
        alert["parent"]["exe"]
            .as_str()
            .unwrap()
            .starts_with("php-fpm"),
        "{alert:#}"
    );
    sensor.stop();
    drop(server);
}

#[test]
fn without_the_units_capabilities_run_fails_naming_the_missing_one() {
    let Some(_host) = live_host(&[]) else {
        return;
    };
    let user = Unprivileged::nobody();
    let output = user.dir.path().join("alerts.jsonl");
    let run = ["run", "-o", output.to_str().unwrap()];
    // Neither: other users' /proc is out of reach, and the sensor says so and stops.
    let (code, stderr) = run_to_refusal(user.command(&[], &run));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("spawnwatch: CAP_SYS_PTRACE is missing: without it the sensor cannot read other users' /proc/PID/exe"),
        "{stderr}"
    );
    // CAP_SYS_PTRACE alone: before Linux 6.6 the connector refuses to let it join;
    // since, it runs, warning what the missing CAP_NET_ADMIN costs.
    let mut command = user.command(&["CAP_SYS_PTRACE"], &[]);
    if kernel_version() >= (6, 6) {
        // Started: the warning came before the "running" line Sensor waits for.
        let sensor = Sensor::start_with(&mut command, &[&user.rules], &output, &[]);
        assert!(
            sensor.stderr_seen.iter().any(|l| l.starts_with(
                "spawnwatch: warning: CAP_NET_ADMIN is missing: the connector's receive buffer"
            )),
            "{:#?}",
            sensor.stderr_seen
        );
        sensor.stop();
    } else {
        let mut command = command;
        command.args(run);
        let (code, stderr) = run_to_refusal(command);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("CAP_NET_ADMIN is missing"), "{stderr}");
    }
}

// --- the fallback from eBPF to the connector --------------------------------------

/// Without the capabilities eBPF needs (dropped from the bounding set by util-linux's
/// setpriv, so root's exec does not regain them) but with CAP_NET_ADMIN, `auto` runs
/// the connector, says why on stderr, writes a sensor line first and counts it.
#[test]
fn without_ebpf_permission_run_falls_back_to_the_connector_and_says_so() {
    let Some(_host) = live_host_for(Source::Ebpf, &[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("alerts.jsonl");
    let sensor = Sensor::start_with(
        Command::new("setpriv")
            .args(["--bounding-set", "-bpf,-perfmon,-sys_admin"])
            .arg(env!("CARGO_BIN_EXE_spawnwatch")),
        &[&shipped_linux_rules()],
        &output,
        &["--stats-interval", "1"],
    );
    let said = (sensor.stderr_seen.iter())
        .find(|l| l.contains("source: proc-connector"))
        .unwrap_or_else(|| panic!("no source line: {:#?}", sensor.stderr_seen));
    assert!(
        said.contains("since eBPF cannot run: no permission"),
        "{said}"
    );
    let marker = Marker::start("fallback-marker");
    sensor.wait_line("a stats line", |l| l["kind"] == "stats");
    drop(marker);
    let lines = sensor.stop();
    assert_eq!(lines[0]["rule"]["id"], "spawnwatch.source-fallback");
    assert_eq!(lines[0]["source"]["instead_of"], "ebpf");
    let stats = lines.last().unwrap();
    assert_eq!(stats["source_fallbacks"], 1);
    assert_eq!(stats["source"]["source"], "proc-connector");
    assert!(
        (stats["source"]["ebpf_unavailable"].as_str().unwrap()).contains("CAP_BPF"),
        "{stats}"
    );
}
