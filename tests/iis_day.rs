//! The false-positive figure: one generated day of a busy but benign IIS server
//! (`bench/iis_day.py`, committed as `tests/fixtures/iis-day.jsonl.gz`) through the
//! built-in rules. Nothing may be raised above low.

mod common;

use common::{fixture, run};
use std::collections::BTreeMap;
use std::io::Read;
use std::process::Command;

/// Alerts per rule and severity on the day.
fn alerts_on_the_day() -> BTreeMap<(String, String), u64> {
    let day = fixture("iis-day.jsonl.gz");
    let r = run(&["replay", day.to_str().unwrap()]);
    assert!(r.output.status.success(), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("3150 events read, 3150 process events, 0 skipped, 0 malformed"),
        "{}",
        r.stderr
    );
    let mut counts = BTreeMap::new();
    for alert in r.alerts() {
        let key = (
            alert["rule"]["id"].as_str().unwrap().to_string(),
            alert["rule"]["severity"].as_str().unwrap().to_string(),
        );
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

#[test]
fn the_shipped_rules_raise_nothing_above_low_on_a_benign_iis_day() {
    let counts = alerts_on_the_day();
    for ((rule, severity), n) in &counts {
        assert!(
            matches!(severity.as_str(), "low" | "informational"),
            "{rule} ({severity}) fired {n} times on a benign day"
        );
    }
    // The figure the README gives: the PDF renderer the Intranet application starts.
    let expected = BTreeMap::from([(("SW-WIN-005".to_string(), "low".to_string()), 10)]);
    assert_eq!(counts, expected);
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[test]
fn the_fixture_is_what_the_generator_writes() {
    let python = Command::new("python3").arg("--version").output().is_ok();
    if !common::needs::met(&[common::needs::Need::new(
        "python3",
        "Debian's python3 package",
        python,
    )]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("day.jsonl.gz");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/iis_day.py");
    let status = Command::new("python3")
        .arg(script)
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let generated = gunzip(&std::fs::read(out).unwrap());
    let committed = gunzip(&std::fs::read(fixture("iis-day.jsonl.gz")).unwrap());
    assert!(
        generated == committed,
        "tests/fixtures/iis-day.jsonl.gz is not what bench/iis_day.py writes: regenerate it with `python3 bench/iis_day.py tests/fixtures/iis-day.jsonl.gz`"
    );
}
