//! `spawnwatch service` on Linux: the systemd unit it writes, checked by systemd's own
//! verifier. (That the unit's capabilities are enough, and that less is refused, is
//! `tests/live_linux.rs`' least-privilege test.)
#![cfg(target_os = "linux")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// `systemd-analyze`, or `None` outside CI when it is missing (Debian package systemd).
fn systemd_analyze(test: &str) -> Option<&'static str> {
    let present = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Some("systemd-analyze");
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: needs systemd-analyze (apt-get install systemd); under CI every test must run"
    );
    eprintln!("{test}: skipped: needs systemd-analyze (apt-get install systemd)");
    None
}

/// The unit `service install --print ARGS` prints, from a copy of the binary in a
/// temporary folder (the unit names the program it runs, which must exist and not be
/// under /home or /root, which the unit hides).
fn printed_unit(dir: &Path, args: &[&str]) -> PathBuf {
    let exe = dir.join("spawnwatch");
    std::fs::copy(env!("CARGO_BIN_EXE_spawnwatch"), &exe).unwrap();
    let out = Command::new(&exe)
        .args(["service", "install", "--print"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unit = dir.join("spawnwatch.service");
    std::fs::write(&unit, &out.stdout).unwrap();
    unit
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let Some(analyze) = systemd_analyze("the_unit_passes_systemd_analyze_verify") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("out/alerts.jsonl");
    let rules = common::fixture("../../rules/webshell-linux.rules");
    let unit = printed_unit(
        dir.path(),
        &[
            "-o",
            alerts.to_str().unwrap(),
            "--rules",
            rules.to_str().unwrap(),
        ],
    );
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(
        text.contains(&format!(
            "ReadWritePaths=-{}",
            dir.path().join("out").display()
        )),
        "{text}"
    );
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    // verify exits 0 on a line it ignores ("Failed to parse ..., ignoring"): any word
    // from it is a failure.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {}\n{said}\n{text}",
        out.status
    );
    // How exposed the service is, as systemd rates it (0 safe .. 10 exposed; 2.2 when
    // this was written). Worse than "OK" means the sandbox was loosened.
    let out = Command::new(analyze)
        .args(["security", "--offline=yes"])
        .arg(&unit)
        .output()
        .unwrap();
    let rating = String::from_utf8_lossy(&out.stdout);
    let overall = rating
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no overall rating:\n{rating}"));
    eprintln!("{overall}");
    let score: f64 = overall
        .split(": ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{overall}"));
    assert!(score <= 3.0, "{overall}");
}

#[test]
fn install_refuses_options_run_would_refuse() {
    let out = common::spawnwatch()
        .args(["service", "install", "--print", "--wokers", "2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("spawnwatch: unexpected argument '--wokers' found"),
        "{stderr}"
    );
    assert!(stderr.contains("'--workers'"), "{stderr}");
    assert!(out.stdout.is_empty(), "no unit printed");
}
