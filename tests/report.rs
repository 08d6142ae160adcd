//! `spawnwatch report` in a real browser: headless Chromium (Debian package `chromium`,
//! installed by `.ci/run`) loads pages made from the shared recordings' alerts and
//! from 10,000 made-up alerts. The page must log nothing to the console (its
//! Content-Security-Policy turns any fetch of a script, style or font into a console
//! error), its script must have run, and it must show one tree node per process that
//! alerted. A screenshot of each is saved for the developer to look at.

mod common;

use common::needs;
use common::{spawnwatch, stdout_of_success};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Whether `chromium` runs here; outside CI a test without it is skipped.
fn chromium_present() -> bool {
    let present = Command::new("chromium")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    needs::met(&[needs::debian_packages(&[("chromium", present)])])
}

/// Headless Chromium on `page` with `args`, its console on stderr; `timeout` ends it
/// if it hangs (a test must not wait forever).
fn chromium(page: &Path, args: &[&str]) -> Output {
    let profile = tempfile::tempdir().unwrap();
    let output = Command::new("timeout")
        .arg("120")
        .arg("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The page as the browser has it after its script ran; asserts the console stayed
/// silent and saves a screenshot as `NAME.png` in the test's target folder.
fn load(page: &Path, name: &str) -> String {
    let output = chromium(page, &["--dump-dom"]);
    let console: Vec<String> = String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(String::from)
        .collect();
    assert!(console.is_empty(), "the console: {console:#?}");
    let screenshot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.png"));
    let _ = std::fs::remove_file(&screenshot);
    chromium(
        page,
        &[
            &format!("--screenshot={}", screenshot.display()),
            "--window-size=1400,2400",
            "--hide-scrollbars",
        ],
    );
    assert!(std::fs::metadata(&screenshot).is_ok_and(|m| m.len() > 10_000));
    // Straight to stderr: the harness hides what a passing test prints.
    let _ = writeln!(
        std::io::stderr(),
        "{name}: screenshot {}",
        screenshot.display()
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The page made from `replay` of the shared `relative` as the browser shows it,
/// checked to show one tree node per alerting process; `None` when the recordings or
/// Chromium are missing (the test is then skipped; under CI it fails).
fn shared_report(relative: &str, name: &str) -> Option<String> {
    let input = needs::shared(relative)?;
    if !chromium_present() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    stdout_of_success(
        spawnwatch()
            .args(["replay", "-o"])
            .arg(&alerts)
            .arg(input)
            .stderr(Stdio::null()),
    );
    let dom = load(&report(&alerts, dir.path()), name);
    let processes = alerting_processes(&std::fs::read_to_string(&alerts).unwrap());
    assert!(processes > 0);
    assert_eq!(count(&dom, "class=\"node alerted"), processes);
    Some(dom)
}

fn report(alerts: &Path, dir: &Path) -> PathBuf {
    let page = dir.join("report.html");
    stdout_of_success(spawnwatch().arg("report").arg(alerts).arg("-o").arg(&page));
    page
}

/// The processes that alerted: one per incident, ancestry (pids) and pid and program,
/// so a process a recording holds twice (its Sysmon and its Security event) is one.
fn alerting_processes(jsonl: &str) -> usize {
    let alerts = jsonl
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|a| a["kind"] == "alert");
    let processes: BTreeSet<String> = alerts
        .map(|a| {
            let ancestry: Vec<&Value> = a["ancestors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| &p["pid"])
                .collect();
            let exe = a["process"]["exe"].as_str().unwrap().to_lowercase();
            format!(
                "{} {ancestry:?} {} {exe}",
                a["incident"], a["process"]["pid"]
            )
        })
        .collect();
    processes.len()
}

fn count(dom: &str, needle: &str) -> usize {
    dom.matches(needle).count()
}

#[test]
fn the_shared_recordings_report_shows_each_alerting_process_once() {
    let Some(dom) = shared_report("data", "report-shared-data") else {
        return;
    };
    assert!(dom.contains("6 of 6 incidents shown"), "the script ran");
    // The appcmd recording: one incident of 40 alerting processes under w3wp 748.
    let appcmd = dom
        .split("<article ")
        .find(|a| a.contains("<strong>w3wp.exe 748</strong>"))
        .expect("the appcmd incident");
    assert_eq!(count(appcmd, "class=\"node alerted"), 40);
    assert!(appcmd.contains("40 processes · 40 alerts"), "{appcmd}");
    assert!(appcmd.contains("T1505.003"), "ATT&CK ids of the rules");
}

#[test]
fn the_attack_samples_report_shows_each_alerting_process_once() {
    shared_report("evtx-attack-samples", "report-attack-samples");
}

/// 10,000 alerts in 100 incidents on 10 hosts, each a web shell's cmd under w3wp.
fn many_alerts() -> String {
    let mut out = String::new();
    for n in 0..10_000u32 {
        let (host, server) = (n % 10, 1000 + n % 100);
        let alert = serde_json::json!({
            "kind": "alert",
            "timestamp": format!("2026-11-27T10:{:02}:{:02}.{:03}Z", n / 1000 % 60, n / 10 % 60, n % 1000),
            "hostname": format!("WEB{host:02}"),
            "incident": format!("WEB{host:02}/{server}/-"),
            "rule": {"id": "SW-WIN-002", "title": "Tool under a shell", "severity": if n % 7 == 0 { "critical" } else { "high" }, "attack": ["T1505.003"]},
            "process": {"pid": 100_000 + n, "exe": "whoami.exe", "command_line": format!("whoami /all <b>{n}</b>"), "user": "IIS APPPOOL\\DefaultAppPool"},
            "parent": {"pid": 50_000 + server, "exe": "cmd.exe"},
            "ancestors": [{"pid": 50_000 + server, "exe": "cmd.exe"}, {"pid": server, "exe": "w3wp.exe"}],
        });
        out.push_str(&alert.to_string());
        out.push('\n');
    }
    out
}

#[test]
fn ten_thousand_alerts_make_one_page_with_every_process() {
    if !chromium_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let jsonl = many_alerts();
    std::fs::write(&alerts, &jsonl).unwrap();
    let dom = load(&report(&alerts, dir.path()), "report-10000");
    assert_eq!(count(&dom, "class=\"node alerted"), 10_000);
    assert!(dom.contains("100 of 100 incidents shown"));
    assert!(
        dom.contains("whoami /all &lt;b&gt;42&lt;/b&gt;"),
        "command lines are text, never markup"
    );
}

/// Lines that are not alerts are counted and said, never passed over in silence.
#[test]
fn unreadable_lines_are_said_on_stderr_and_on_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    std::fs::write(&alerts, "not json\n{\"kind\":\"stats\"}\n").unwrap();
    let page = dir.path().join("report.html");
    let out = spawnwatch()
        .arg("report")
        .arg(&alerts)
        .arg("-o")
        .arg(&page)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = format!("(first: {}:1: ", alerts.display());
    assert!(
        stderr.contains("1 line(s) are not spawnwatch output"),
        "{stderr}"
    );
    assert!(stderr.contains(&first), "{stderr}");
    assert!(stderr.contains("no alerts in these files"), "{stderr}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("1 line(s) are not spawnwatch output"));
    let missing = spawnwatch()
        .args(["report", "/nonexistent/alerts.jsonl", "-o"])
        .arg(&page)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
}
