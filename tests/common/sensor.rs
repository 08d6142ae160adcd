//! A running `spawnwatch` the test drives: its stdin written in phases, its stderr
//! read for what it says between them (`replay -` reads a stream as long as it lasts).

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long anything the sensor should do promptly may take on a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// One alert per `cmd.exe` event.
pub const RULES: &str =
    r#"rule T { title: "t" severity: high attack: [T1505.003] condition: exe == "cmd.exe" }"#;

pub fn rules_in(dir: &Path) -> PathBuf {
    let path = dir.join("t.rules");
    std::fs::write(&path, RULES).unwrap();
    path
}

/// A spawnwatch event line of about 500 bytes: replay's stdin reader hands over 128
/// KiB at a time, so a few hundred lines are enough to make alerts flow.
pub fn event_line(pid: u32) -> String {
    format!(
        r#"{{"timestamp":"2026-11-27T10:00:00Z","action":"create","pid":{pid},"ppid":1,"exe":"cmd.exe","command_line":"cmd.exe /c {}"}}"#,
        "x".repeat(400)
    )
}

/// A running `spawnwatch` whose stdin the test writes and whose stderr it reads;
/// killed if the test fails first.
pub struct Sensor {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    stderr: mpsc::Receiver<String>,
    said: Vec<String>,
}

impl Sensor {
    pub fn start(args: &[&str], stdout: Stdio) -> Sensor {
        let mut child = super::spawnwatch()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawnwatch starts");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Sensor {
            stdin: child.stdin.take(),
            child,
            stderr: rx,
            said: Vec::new(),
        }
    }

    /// A replay of its stdin, alerts to `output`.
    pub fn replay(rules: &Path, output: &Path) -> Sensor {
        let args = ["replay", "--rules", path(rules), "-o", path(output), "-"];
        Sensor::start(&args, Stdio::null())
    }

    /// Writes one event per pid; false if the sensor has stopped reading.
    pub fn feed(&mut self, pids: Range<u32>) -> bool {
        let stdin = self.stdin.as_mut().unwrap();
        let text: String = pids.map(|pid| event_line(pid) + "\n").collect();
        stdin.write_all(text.as_bytes()).is_ok()
    }

    /// Waits for a stderr line containing `needle` (or finds it among those seen).
    pub fn wait_stderr(&mut self, needle: &str) -> String {
        if let Some(line) = self.said.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + PATIENCE;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = self.stderr.recv_timeout(left) else {
                break;
            };
            self.said.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
        panic!(
            "no stderr line with {needle:?}; saw:\n{}",
            self.said.join("\n")
        );
    }

    /// Closes stdin, waits for the end; the exit status and everything said.
    pub fn finish(mut self) -> (ExitStatus, String) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        self.said.extend(self.stderr.iter());
        (status, self.said.join("\n"))
    }

    /// Waits for the sensor to end by itself, its stdin still open.
    pub fn wait_for_own_end(mut self, why: &str) -> (ExitStatus, String) {
        let deadline = Instant::now() + PATIENCE;
        // The sensor's stderr closes when it exits.
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => self.said.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("{why}"),
            }
        }
        let status = self.child.wait().unwrap();
        drop(self.stdin.take());
        (status, self.said.join("\n"))
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The pids of the alerts in `file`; every line must be whole JSON.
pub fn alert_pids(file: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    assert!(text.is_empty() || text.ends_with('\n'), "a torn last line");
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            v["process"]["pid"].as_u64().unwrap()
        })
        .collect()
}

pub fn sorted(mut pids: Vec<u64>) -> Vec<u64> {
    pids.sort_unstable();
    pids
}

pub fn all(pids: Range<u32>) -> Vec<u64> {
    pids.map(u64::from).collect()
}
