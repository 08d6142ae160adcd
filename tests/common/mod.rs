//! Shared helpers for the end-to-end tests: run the real binary, parse its output.
#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

pub fn spawnwatch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_spawnwatch"))
}

/// Runs `command` to its end, asserts that it succeeded (showing its output when not)
/// and returns its stdout.
pub fn stdout_of_success(command: &mut Command) -> String {
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A fixture file of this directory.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

pub mod needs;
pub mod sensor;

/// A recording in the shared data folder (CI has it beside the project); without it,
/// `None`, the test being skipped (or failed under CI: see [`needs`]).
pub fn shared_data(name: &str) -> Option<PathBuf> {
    needs::shared(&format!("data/{name}"))
}

pub struct Run {
    pub output: Output,
    pub lines: Vec<Value>,
    pub stderr: String,
}

impl Run {
    pub fn alerts(&self) -> Vec<&Value> {
        self.lines.iter().filter(|l| l["kind"] == "alert").collect()
    }

    /// (rule id, child exe, parent exe) of every alert.
    pub fn triples(&self) -> Vec<(String, String, String)> {
        self.alerts()
            .iter()
            .map(|a| {
                let s = |v: &Value| v.as_str().unwrap_or("null").to_string();
                (
                    s(&a["rule"]["id"]),
                    s(&a["process"]["exe"]),
                    s(&a["parent"]["exe"]),
                )
            })
            .collect()
    }
}

/// Runs `spawnwatch ARGS...` to completion; stdout parsed as JSON lines.
pub fn run(args: &[&str]) -> Run {
    let output = spawnwatch()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("spawnwatch runs");
    let stdout = String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8");
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    Run {
        output,
        lines,
        stderr,
    }
}
