//! `spawnwatch selftest`: proof, on this host, that the live sensor catches a web shell.
//!
//! It runs the real pipeline with the built-in rules, then plays a web server: a copy of
//! the system shell renamed as a web server (w3wp.exe on Windows, nginx on Linux) starts
//! a command, and the expected alert must arrive within a few seconds. Prints PASS or
//! FAIL with what it saw.

use crate::pipeline::Options;
use crate::restart::Backoff;
use crate::rules::{self, Platform};
use crate::run::{self, RunConfig};
use crate::sink::ChannelSink;
use crossbeam_channel::Receiver;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the alert may take: ETW flushes every second, and a join waits too.
const PATIENCE: Duration = Duration::from_secs(10);

/// What the fake web server does and which alert that must give.
struct Provocation {
    /// The shell to copy.
    shell: &'static str,
    /// Its new name: a web server's.
    server_name: &'static str,
    /// What the fake server runs.
    args: &'static [&'static str],
    rule: &'static str,
    child_exe: &'static str,
}

#[cfg(windows)]
const PROVOCATION: Provocation = Provocation {
    shell: r"C:\Windows\System32\cmd.exe",
    server_name: "w3wp.exe",
    args: &["/c", "whoami.exe"],
    rule: "CAR-2021-02-001",
    child_exe: "whoami.exe",
};

/// A shell that stays alive (reading its stdin) so the kernel connector sees it whole.
#[cfg(not(windows))]
const PROVOCATION: Provocation = Provocation {
    shell: "/bin/sh",
    server_name: "nginx",
    args: &["-c", "/bin/sh -c 'read line'; true"],
    rule: "SW-LNX-001",
    child_exe: "dash",
};

pub fn selftest(source: crate::source::Choice) -> Result<bool, String> {
    // Its own sessions (Windows), so it can check a host where a sensor already runs.
    let start = run::platform_source(run::Role::Selftest, source)?;
    let loaded = rules::load_or_report(&[], Platform::Native, &sigma::Options::default())?;
    let rules = Arc::new(arc_swap::ArcSwap::from_pointee(loaded.rules));
    let (lines_tx, lines) = crossbeam_channel::unbounded();
    let (ready_tx, ready) = crossbeam_channel::bounded(1);
    let stop = Arc::new(AtomicBool::new(false));
    let config = RunConfig {
        stats_interval: Duration::from_secs(3600),
        record: None,
        stop: stop.clone(),
        on_turn: Box::new(move |_| {
            let _ = ready_tx.try_send(());
        }),
        restart: Backoff::default(),
        outputs: Vec::new(),
        stats_file: None,
    };
    // The sensor runs here; the fake web server is played from another thread, which
    // stops the sensor once it has its answer.
    let watcher = std::thread::spawn(move || {
        let outcome = match ready.recv_timeout(PATIENCE) {
            Ok(()) => provoke_and_watch(&lines),
            Err(_) => Err("the live source did not start".to_string()),
        };
        stop.store(true, Ordering::Relaxed);
        outcome
    });
    let report = run::run(
        start,
        rules,
        Box::new(ChannelSink(lines_tx)),
        &Options::default(),
        config,
    )?;
    let outcome = watcher
        .join()
        .map_err(|_| "the selftest thread panicked".to_string())?;
    let p = &PROVOCATION;
    match outcome {
        Ok(alert) => {
            outln!(
                "PASS: {} -> {} raised {} ({}) within {:.1} s; {} process events seen",
                alert.0,
                p.child_exe,
                p.rule,
                alert.1,
                alert.2,
                report.evaluated
            );
            Ok(true)
        }
        Err(what) => {
            outln!(
                "FAIL: expected {} for {} -> {} within {} s; {what}; {} process events seen",
                p.rule,
                p.server_name,
                p.child_exe,
                PATIENCE.as_secs(),
                report.evaluated
            );
            Ok(false)
        }
    }
}

/// Starts the fake web server and waits for its alert: (server path, alert title,
/// seconds taken), or what was seen instead.
fn provoke_and_watch(lines: &Receiver<String>) -> Result<(String, String, f64), String> {
    let p = &PROVOCATION;
    let dir = std::env::temp_dir().join(format!("spawnwatch-selftest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let server = dir.join(p.server_name);
    let result = copy_and_run(p, &server).and_then(|mut child| {
        let started = Instant::now();
        let found = wait_for_alert(lines, p, started);
        drop(child.stdin.take());
        let _ = child.wait();
        found.map(|title| {
            (
                server.display().to_string(),
                title,
                started.elapsed().as_secs_f64(),
            )
        })
    });
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn copy_and_run(p: &Provocation, server: &Path) -> Result<Child, String> {
    std::fs::copy(p.shell, server)
        .map_err(|e| format!("cannot copy {} to {}: {e}", p.shell, server.display()))?;
    Command::new(server)
        .args(p.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", server.display()))
}

fn wait_for_alert(
    lines: &Receiver<String>,
    p: &Provocation,
    started: Instant,
) -> Result<String, String> {
    let mut seen = Vec::new();
    while let Some(left) = PATIENCE.checked_sub(started.elapsed()) {
        let Ok(line) = lines.recv_timeout(left) else {
            break;
        };
        let Ok(alert) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if alert["kind"] != "alert" {
            continue;
        }
        let (rule, exe, parent) = (
            &alert["rule"]["id"],
            &alert["process"]["exe"],
            &alert["parent"]["exe"],
        );
        if rule == p.rule
            && exe
                .as_str()
                .is_some_and(|e| e.eq_ignore_ascii_case(p.child_exe))
            && parent
                .as_str()
                .is_some_and(|e| e.eq_ignore_ascii_case(p.server_name))
        {
            return Ok(alert["rule"]["title"]
                .as_str()
                .unwrap_or_default()
                .to_string());
        }
        seen.push(format!("{rule} {exe} <- {parent}"));
    }
    Err(if seen.is_empty() {
        "no alert at all".to_string()
    } else {
        format!("saw only: {}", seen.join("; "))
    })
}
