//! What the live Linux tests share: the host to themselves, the packages a stack needs,
//! a running sensor, HTTP on loopback.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Every sensor sees every process on the host, so live tests run one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn under_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// `path` if it exists.
pub fn installed(path: &str) -> Option<PathBuf> {
    Some(PathBuf::from(path)).filter(|p| p.exists())
}

/// Returns the host to this test, or `None` (saying why) when the test cannot run
/// here: not root, or a program it needs missing (`needs`: the program if found, and
/// its Debian package). Under CI, which runs as root after installing the packages, it
/// must run.
pub fn live_host(
    test: &str,
    needs: &[(Option<PathBuf>, &str)],
) -> Option<std::sync::MutexGuard<'static, ()>> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() == 0 };
    let missing: Vec<&str> = needs
        .iter()
        .filter(|(found, _)| found.is_none())
        .map(|&(_, package)| package)
        .collect();
    let why = if !root {
        "root for the kernel process connector".to_string()
    } else if !missing.is_empty() {
        format!(
            "{} (apt-get install --no-install-recommends {})",
            missing.join(", "),
            missing.join(" ")
        )
    } else {
        return Some(ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner()));
    };
    assert!(
        !under_ci(),
        "{test}: CI must run this test, but it needs {why}"
    );
    eprintln!("{test}: skipped: needs {why}");
    None
}

/// A running `spawnwatch run`, its output file, and its stderr lines.
pub struct Sensor {
    pub child: Child,
    output: PathBuf,
    stderr: mpsc::Receiver<String>,
    /// The stderr lines read so far.
    pub stderr_seen: Vec<String>,
}

impl Sensor {
    /// Starts `spawnwatch run` with these rule files or directories and `extra`
    /// options; returns once it says it is running.
    pub fn start(rules: &[&Path], output: &Path, extra: &[&str]) -> Sensor {
        Sensor::start_with(&mut crate::common::spawnwatch(), rules, output, extra)
    }

    /// The same, through `command` (spawnwatch or a wrapper that runs it).
    pub fn start_with(
        command: &mut Command,
        rules: &[&Path],
        output: &Path,
        extra: &[&str],
    ) -> Sensor {
        command.args(["run", "-o", output.to_str().unwrap()]);
        for path in rules {
            command.arg("--rules").arg(path);
        }
        let mut child = command
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawnwatch run starts");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut sensor = Sensor {
            child,
            output: output.to_path_buf(),
            stderr: rx,
            stderr_seen: Vec::new(),
        };
        sensor.wait_stderr("spawnwatch: running:");
        sensor
    }

    /// Waits (up to 20 s) for a stderr line containing `needle`.
    pub fn wait_stderr(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.stderr_seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no stderr line with {needle:?}; saw:\n{}",
            self.stderr_seen.join("\n")
        );
    }

    pub fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.output)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("output lines are JSON"))
            .collect()
    }

    /// Waits (up to 20 s) until an output line satisfies `pred`.
    pub fn wait_line(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(line) = self.lines().into_iter().find(&pred) {
                return line;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no output line for {what}; output:\n{:#?}", self.lines());
    }

    /// SIGINT, then the exit status must be 0 and the final stats line written.
    pub fn stop(mut self) -> Vec<Value> {
        // SAFETY: kill with a valid pid of our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait().unwrap();
        assert!(status.success(), "spawnwatch run exited with {status}");
        let lines = self.lines();
        assert_eq!(
            lines.last().map(|l| l["kind"].clone()),
            Some("stats".into()),
            "ends with a stats line"
        );
        lines
    }
}

pub fn alerts(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|l| l["kind"] == "alert").collect()
}

pub fn shipped_linux_rules() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules/webshell-linux.rules")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP/1.0 GET on loopback; the whole response (empty if nothing listens).
pub fn get(port: u16, path: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

/// Waits (up to 20 s) until `ready` holds, polling; panics with `what` otherwise.
pub fn wait_until(what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not happen within 20 s");
}

/// Servers started for a test, killed when it ends.
pub struct Servers(pub Vec<Child>);

impl Drop for Servers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `program` with `args`, its output discarded.
pub fn spawn_quiet(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Child {
    let program = program.as_ref();
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{program:?} starts: {e}"))
}

/// Makes `dir` readable by the web servers' users.
pub fn open_to_all(dir: &Path) {
    let status = Command::new("chmod")
        .args(["-R", "a+rX", dir.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The first file in `/usr/sbin` whose name starts with `prefix`: Debian names php-fpm
/// after the PHP version (php-fpm8.2).
pub fn sbin_starting_with(prefix: &str) -> Option<PathBuf> {
    std::fs::read_dir("/usr/sbin")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
}
