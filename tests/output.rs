//! End-to-end on the output path, made to fail for real: a full device and a full
//! filesystem, a reader that closes the pipe, a log file rotated away. `replay -` is
//! the driver: the test writes its stdin in phases and waits for what the sensor says
//! on stderr between them. The tests that mount a filesystem or watch the host live
//! need root; without it they say so and return (under CI, root, they must run).
#![cfg(target_os = "linux")]

mod common;

use common::sensor::*;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

#[test]
fn a_full_device_is_reported_at_once_and_its_alerts_counted_as_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut sensor = Sensor::replay(&rules_in(dir.path()), Path::new("/dev/full"));
    sensor.feed(0..1000);
    // Said while the input is still open, not at the end.
    let said = sensor.wait_stderr("cannot write to /dev/full: No space left on device");
    assert!(
        said.contains("(up to 10000, then alerts are lost)"),
        "{said}"
    );
    let (status, stderr) = sensor.finish();
    assert_eq!(status.code(), Some(2), "lost alerts fail the run: {stderr}");
    assert!(
        stderr.contains("lost: 1000 alerts could not be written to /dev/full"),
        "{stderr}"
    );
}

#[test]
fn a_reader_that_closes_stdout_ends_replay_at_once_and_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_in(dir.path());
    let mut sensor = Sensor::start(&["replay", "--rules", path(&rules), "-"], Stdio::piped());
    let mut stdout = BufReader::new(sensor.child.stdout.take().unwrap());
    sensor.feed(0..1000);
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains(r#""kind":"alert""#), "{first}");
    drop(stdout); // as `| head -1` does
                  // More alerts meet the closed pipe; the sensor may be gone already.
    sensor.feed(1000..2000);
    let (status, stderr) =
        sensor.wait_for_own_end("replay went on reading its open input after stdout closed");
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(stderr, "", "quiet");
}

#[test]
fn sighup_reopens_the_output_and_replay_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("alerts.jsonl");
    let mut sensor = Sensor::replay(&rules_in(dir.path()), &output);
    sensor.feed(0..1000);
    // SAFETY: kill with the pid of our own running child.
    unsafe { libc::kill(sensor.child.id() as i32, libc::SIGHUP) };
    sensor.wait_stderr(&format!("reopened {} (SIGHUP)", output.display()));
    sensor.feed(1000..2000);
    let (status, stderr) = sensor.finish();
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(sorted(alert_pids(&output)), all(0..2000));
}

/// logrotate without a signal: rename, create. The path is checked once a second.
#[test]
fn a_rotated_output_file_is_reopened_and_each_alert_is_in_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("alerts.jsonl");
    let rotated = dir.path().join("alerts.jsonl.1");
    let mut sensor = Sensor::replay(&rules_in(dir.path()), &output);
    sensor.feed(0..1000);
    std::fs::rename(&output, &rotated).unwrap();
    std::fs::write(&output, "").unwrap();
    sensor.wait_stderr(&format!(
        "reopened {} (its path now names another file, or none)",
        output.display()
    ));
    sensor.feed(1000..2000);
    let (status, stderr) = sensor.finish();
    assert!(status.success(), "{status}: {stderr}");
    let (old, new) = (alert_pids(&rotated), alert_pids(&output));
    for pid in all(1000..2000) {
        assert!(
            new.contains(&pid),
            "alert {pid}, fed after the reopen, is not in the new file"
        );
    }
    assert_eq!(sorted([old, new].concat()), all(0..2000), "each alert once");
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether a test that needs root runs here; says why not. Under CI it must.
fn as_root(test: &str, needs: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: CI runs as root, so this test must run there"
    );
    eprintln!("{test}: skipped: needs root {needs}");
    false
}

/// A small tmpfs, unmounted when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mount a tmpfs on {}",
            dir.path().display()
        );
        Tmpfs(dir)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    /// Fills the filesystem with one file, then frees its last page: the next
    /// write is cut short in the middle of a line, the one after fails outright.
    fn fill_all_but_a_page(&self) -> PathBuf {
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let page = [0u8; 4096];
        let mut len = 0u64;
        loop {
            match file.write(&page) {
                Ok(n) => len += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        file.set_len(len - 4096).unwrap();
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// The issue's case: the disk fills while the sensor runs, and is cleared. Every
/// alert must arrive, once and whole; the figures are printed for the record.
#[test]
fn alerts_held_while_the_disk_is_full_are_all_written_once_it_is_cleared() {
    let test = "alerts_held_while_the_disk_is_full_are_all_written_once_it_is_cleared";
    if !as_root(test, "to mount a small tmpfs") {
        return;
    }
    let disk = Tmpfs::mount("4m");
    let rules = rules_in(disk.path());
    let output = disk.path().join("alerts.jsonl");
    std::fs::write(&output, "").unwrap();
    let filler = disk.fill_all_but_a_page();
    let mut sensor = Sensor::replay(&rules, &output);
    sensor.feed(0..1000);
    let said = sensor.wait_stderr(&format!("cannot write to {}", output.display()));
    assert!(said.contains("No space left on device"), "{said}");
    let text = std::fs::read_to_string(&output).unwrap();
    let written_before = text.matches('\n').count();
    assert!(
        !text.ends_with('\n'),
        "the last line was cut short by the full disk"
    );
    std::fs::remove_file(&filler).unwrap();
    sensor.feed(1000..2000);
    let (status, stderr) = sensor.finish();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("works again"), "{stderr}");
    let pids = alert_pids(&output);
    eprintln!(
        "full disk: 1000 alerting events fed before the disk was cleared, {written_before} alerts \
         whole in the file then; after it was cleared 1000 more fed, {} of 2000 alerts in the file",
        pids.len()
    );
    assert_eq!(sorted(pids), all(0..2000), "every alert once, none torn");
}

/// A copy of sh named `webserver-t` running a shell that waits on its stdin: a web
/// server with a shell under it, both alive (so /proc is read whole) until dropped.
struct Server(Child);

impl Server {
    fn start(dir: &Path) -> Server {
        let server = dir.join("webserver-t");
        if !server.exists() {
            std::fs::copy("/bin/sh", &server).unwrap();
        }
        let child = Command::new(&server)
            .args(["-c", "/bin/sh -c 'read line'; true"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        Server(child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

/// One alert per shell that the fake server starts.
const LIVE_RULES: &str = r#"rule L { title: "t" severity: high attack: [T1505.003] condition: parent_exe == "webserver-t" }"#;

/// A directory holding `live.rules` for a live test, or `None` without root.
fn live_test(test: &str) -> Option<tempfile::TempDir> {
    if !as_root(test, "for the kernel process connector") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("live.rules"), LIVE_RULES).unwrap();
    Some(dir)
}

/// `spawnwatch run | head -1`: the live sensor stops cleanly by itself, says nothing.
#[test]
fn a_reader_that_closes_stdout_stops_the_live_sensor_quietly() {
    let Some(dir) = live_test("a_reader_that_closes_stdout_stops_the_live_sensor_quietly") else {
        return;
    };
    let rules = dir.path().join("live.rules");
    let mut sensor = Sensor::start(&["run", "--rules", path(&rules)], Stdio::piped());
    sensor.wait_stderr("spawnwatch: running:");
    let mut stdout = BufReader::new(sensor.child.stdout.take().unwrap());
    let first_server = Server::start(dir.path());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains(r#""id":"L""#), "{first}");
    drop(stdout); // as `head -1` does
    drop(first_server);
    // Its alert meets the closed pipe.
    let _second_server = Server::start(dir.path());
    let (status, stderr) =
        sensor.wait_for_own_end("the live sensor kept running after stdout was closed");
    assert!(status.success(), "{status}: {stderr}");
    let more: Vec<&str> = (stderr.lines())
        .filter(|l| {
            !["rules loaded:", "source:", "running:"]
                .iter()
                .any(|s| l.contains(s))
        })
        .collect();
    assert!(more.is_empty(), "nothing said after starting: {more:?}");
}

/// logrotate with `postrotate kill -HUP`: both `--output` and `--record` move on to
/// the new files.
#[test]
fn sighup_reopens_the_live_output_and_record_files() {
    let Some(dir) = live_test("sighup_reopens_the_live_output_and_record_files") else {
        return;
    };
    let rules = dir.path().join("live.rules");
    let output = dir.path().join("alerts.jsonl");
    let record = dir.path().join("events.jsonl");
    let args = [
        "run",
        "--rules",
        path(&rules),
        "-o",
        path(&output),
        "--record",
        path(&record),
        "--stats-interval",
        "1",
    ];
    let mut sensor = Sensor::start(&args, Stdio::null());
    sensor.wait_stderr("spawnwatch: running:");
    for file in [&output, &record] {
        std::fs::rename(file, file.with_extension("jsonl.1")).unwrap();
        std::fs::write(file, "").unwrap();
    }
    // SAFETY: kill with the pid of our own running child.
    unsafe { libc::kill(sensor.child.id() as i32, libc::SIGHUP) };
    // The signal or the path check, whichever comes first: both reopen.
    sensor.wait_stderr(&format!("reopened {}", output.display()));
    sensor.wait_stderr(&format!("reopened {}", record.display()));
    let server = Server::start(dir.path());
    sensor.wait_stderr(" alerts=1 ");
    drop(server);
    // SAFETY: as above.
    unsafe { libc::kill(sensor.child.id() as i32, libc::SIGINT) };
    let (status, stderr) = sensor.finish();
    assert!(status.success(), "{status}: {stderr}");
    let alerts = std::fs::read_to_string(&output).unwrap();
    assert!(
        alerts.contains(r#""id":"L""#),
        "the alert is in the new file: {alerts}"
    );
    let events = std::fs::read_to_string(&record).unwrap();
    assert!(
        events.contains("webserver-t"),
        "the events are in the new record file"
    );
}
