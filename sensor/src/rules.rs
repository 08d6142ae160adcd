//! Finding rule text: the rule files embedded in the binary, or the files and
//! directories named on the command line. Parsing and checking are the `dsl` crate's.

use crate::sigma_rules;
use dsl::Source;
use std::path::{Path, PathBuf};

/// The shipped rule files, compiled into the binary so every command runs without a
/// rules argument.
const EMBEDDED: [(&str, &str); 2] = [
    (
        "<embedded>/webshell.rules",
        include_str!("../../rules/webshell.rules"),
    ),
    (
        "<embedded>/webshell-linux.rules",
        include_str!("../../rules/webshell-linux.rules"),
    ),
];

/// The examples shipped beside the embedded rules (`spawnwatch test` with no path).
const EMBEDDED_TESTS: [(&str, &str); 2] = [
    (
        "<embedded>/webshell.tests",
        include_str!("../../rules/webshell.tests"),
    ),
    (
        "<embedded>/webshell-linux.tests",
        include_str!("../../rules/webshell-linux.tests"),
    ),
];

/// Which embedded rules a command loads when given none.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Platform {
    /// Every shipped set (replay reads logs of any platform).
    All,
    /// The set for the platform the sensor runs on.
    Native,
}

pub fn embedded(platform: Platform) -> Vec<Source> {
    let native = if cfg!(windows) {
        "webshell.rules"
    } else {
        "webshell-linux.rules"
    };
    EMBEDDED
        .iter()
        .filter(|(name, _)| platform == Platform::All || name.ends_with(&format!("/{native}")))
        .map(|(name, text)| Source::new(*name, *text))
        .collect()
}

/// What a rules directory contributes: spawnwatch's rule files and Sigma rules.
const RULE_EXTENSIONS: [&str; 3] = ["rules", "yml", "yaml"];

/// The rule sources for `paths` (files as given, directories' `*.rules` and Sigma
/// `*.yml` / `*.yaml` files in name order), or the embedded rules when `paths` is empty.
pub fn sources(paths: &[PathBuf], platform: Platform) -> Result<Vec<Source>, String> {
    if paths.is_empty() {
        return Ok(embedded(platform));
    }
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            files.extend(files_in(path, &RULE_EXTENSIONS)?);
        } else if !has_extension(path, "tests") {
            files.push(path.clone());
        }
    }
    read_all(files, "rule")
}

/// The Sigma files `spawnwatch sigma convert` is given, read: files as given, and a
/// directory's `*.yml` / `*.yaml` files in name order.
pub fn sigma_sources(paths: &[PathBuf]) -> Result<Vec<Source>, String> {
    let mut files = Vec::new();
    for path in paths {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let found = files_in(path, &["yml", "yaml"])?;
        if found.is_empty() {
            return Err(format!(
                "no Sigma *.yml or *.yaml files in {}",
                path.display()
            ));
        }
        files.extend(found);
    }
    read_all(files, "Sigma")
}

/// Each file as a source (text that is not UTF-8 is the checker's error, with its
/// place), or an error naming the file that could not be read.
fn read_all(files: Vec<PathBuf>, what: &str) -> Result<Vec<Source>, String> {
    files
        .into_iter()
        .map(|f| {
            std::fs::read(&f)
                .map(|bytes| Source::from_bytes(f.display().to_string(), bytes))
                .map_err(|e| format!("cannot read {what} file {}: {e}", f.display()))
        })
        .collect()
}

/// The files of a directory with one of `extensions`, in name order; none is an error
/// for rules.
fn files_in(dir: &Path, extensions: &[&str]) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read rule directory {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && extensions.iter().any(|x| has_extension(p, x)))
        .collect();
    if files.is_empty() && extensions == RULE_EXTENSIONS {
        return Err(format!(
            "no *.rules files or Sigma *.yml files in {}",
            dir.display()
        ));
    }
    files.sort();
    Ok(files)
}

fn has_extension(path: &Path, extension: &str) -> bool {
    path.extension().is_some_and(|e| e == extension)
}

/// The rule examples for `paths`: `*.tests` files named directly, those in named
/// directories, and `NAME.tests` beside each named `NAME.rules`; with no paths, the
/// embedded ones.
pub fn test_files(paths: &[PathBuf]) -> Result<Vec<Source>, String> {
    if paths.is_empty() {
        return Ok(EMBEDDED_TESTS
            .iter()
            .map(|(name, text)| Source::new(*name, *text))
            .collect());
    }
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            files.extend(files_in(path, &["tests"])?);
        } else if has_extension(path, "tests") {
            files.push(path.clone());
        } else {
            let beside = path.with_extension("tests");
            if beside.is_file() {
                files.push(beside);
            }
        }
    }
    read_all(files, "test")
}

/// The rule files for `paths` with the Sigma ones converted (see [`sources`]).
pub fn mixed(
    paths: &[PathBuf],
    platform: Platform,
    sigma: &sigma::Options,
) -> Result<sigma_rules::Mixed, String> {
    Ok(sigma_rules::convert(sources(paths, platform)?, sigma))
}

/// Loads rules for a command that evaluates them: diagnostics go to stderr (and the
/// Sigma summary, when there were Sigma files), and an error-free set comes back.
pub fn load_or_report(
    paths: &[PathBuf],
    platform: Platform,
    sigma: &sigma::Options,
) -> Result<dsl::Loaded, String> {
    let mixed = mixed(paths, platform, sigma)?;
    let sources = mixed.sources;
    match dsl::load_mixed(&sources, mixed.dsl_files, mixed.foreign) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                eprintln!("{}", warning.render(&sources));
            }
            if let Some(summary) = mixed.report.summary() {
                eprintln!("spawnwatch: {summary}");
            }
            Ok(loaded)
        }
        Err(diagnostics) => {
            for d in &diagnostics {
                eprintln!("{}", d.render(&sources));
            }
            let errors = diagnostics.iter().filter(|d| d.is_error()).count();
            Err(format!(
                "the rules have {errors} error(s); run `spawnwatch check` on them for details"
            ))
        }
    }
}
