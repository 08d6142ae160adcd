//! What a test needs from outside the project: the shared recordings (`../shared`),
//! system packages, root. A test that lacks something is skipped with a message naming
//! what is missing and where it comes from, so `cargo test --workspace` passes on a
//! fresh machine. Under CI (the `CI` environment variable set, as `.ci/run` is run)
//! nothing may be missing: CI provides it all, and a test that cannot run fails.
//!
//! The end-to-end tests use this through `tests/common/mod.rs`; the sensor's own unit
//! tests that read recordings include this file as a module.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

/// Something a test needs, and whether this machine has it.
#[derive(Clone)]
pub struct Need {
    what: String,
    /// Where it comes from, or how to get it.
    from: String,
    present: bool,
}

impl Need {
    pub fn new(what: impl Into<String>, from: impl Into<String>, present: bool) -> Need {
        Need {
            what: what.into(),
            from: from.into(),
            present,
        }
    }
}

/// What a test should do about its needs.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Run,
    /// Outside CI: skip, saying this.
    Skip(String),
    /// Under CI: fail, saying this.
    Fail(String),
}

/// The verdict for `needs`; `ci` is whether this runs under CI.
pub fn verdict(needs: &[Need], ci: bool) -> Verdict {
    let missing: Vec<&Need> = needs.iter().filter(|n| !n.present).collect();
    if missing.is_empty() {
        return Verdict::Run;
    }
    let what: Vec<&str> = missing.iter().map(|n| n.what.as_str()).collect();
    let mut from: Vec<&str> = missing.iter().map(|n| n.from.as_str()).collect();
    from.dedup();
    let needs = format!("needs {} ({})", what.join(" and "), from.join("; "));
    if ci {
        Verdict::Fail(format!(
            "{needs}; under CI (the CI environment variable is set) every test must run"
        ))
    } else {
        Verdict::Skip(format!("skipped: {needs}"))
    }
}

/// Whether the test can go on. When something is missing: outside CI, says so on
/// stderr (`TEST: skipped: needs WHAT (WHERE FROM)`) and returns false, and the test
/// returns early and passes; under CI, panics with the same words.
pub fn met(needs: &[Need]) -> bool {
    let test = std::thread::current()
        .name()
        .filter(|name| *name != "main")
        .unwrap_or("test")
        .to_string();
    match verdict(needs, under_ci()) {
        Verdict::Run => true,
        Verdict::Skip(message) => {
            // Straight to stderr: the test harness hides what `eprintln!` prints in a
            // test that passes, and a skip must be seen.
            let _ = writeln!(std::io::stderr(), "{test}: {message}");
            false
        }
        Verdict::Fail(message) => panic!("{test}: {message}"),
    }
}

/// CI sets `CI` (GitHub Actions, GitLab, `.ci/run`'s callers: `CI=true`).
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The shared folder of recordings: `../shared` beside the workspace, or the folder
/// `SPAWNWATCH_SHARED` names.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("SPAWNWATCH_SHARED") {
        Some(dir) => PathBuf::from(dir),
        // The tests are the sensor package's: its folder is in the workspace.
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(2)
            .unwrap_or(Path::new(".."))
            .join("shared"),
    }
}

/// `relative` in the shared folder (`data/x.evtx`), when it is there; otherwise `None`
/// after [`met`] (skipped outside CI, a failure under it).
pub fn shared(relative: &str) -> Option<PathBuf> {
    let path = shared_dir().join(relative);
    let need = Need::new(
        format!("../shared/{relative}"),
        format!(
            "the project's shared recordings, looked for at {}; set SPAWNWATCH_SHARED to the folder elsewhere",
            shared_dir().display()
        ),
        path.exists(),
    );
    met(&[need]).then_some(path)
}

/// Debian packages, each with whether what the test uses of it is installed: one need
/// naming the missing ones and the `apt-get install` that brings them.
pub fn debian_packages(packages: &[(&str, bool)]) -> Need {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(_, installed)| !installed)
        .map(|(name, _)| *name)
        .collect();
    Need::new(
        missing.join(" and "),
        format!("apt-get install {}", missing.join(" ")),
        missing.is_empty(),
    )
}
