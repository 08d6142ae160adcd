//! `spawnwatch check` and `spawnwatch rules`: rule files seen by their author.

use crate::rules::{self, Platform};
use dsl::{Diagnostic, Level, Source};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

/// Prints every diagnostic of the set and a summary (with Sigma files, a second line
/// counting the rules skipped per reason); exit 1 with errors.
pub fn run(paths: &[PathBuf], sigma: &sigma::Options, as_json: bool) -> Result<ExitCode, String> {
    let mixed = rules::mixed(paths, Platform::All, sigma)?;
    let sources = mixed.sources;
    let checked = dsl::check::check_mixed(&sources, mixed.dsl_files, mixed.foreign);
    let report = mixed.report;
    let errors = checked.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = checked.diagnostics.len() - errors;
    let s = checked.summary;
    if as_json {
        let diagnostics: Vec<_> = checked
            .diagnostics
            .iter()
            .map(|d| diagnostic_json(d, &sources))
            .collect();
        let report = json!({
            "files": sources.iter().map(|s| &s.name).collect::<Vec<_>>(),
            "diagnostics": diagnostics,
            "summary": {"rules": s.rules, "enabled_rules": s.enabled_rules, "lists": s.lists,
                        "macros": s.macros, "exceptions": s.exceptions, "errors": errors, "warnings": warnings},
            "sigma": {"files": report.files, "loaded": report.loaded, "skipped": report.skipped},
        });
        outln!("{report}");
    } else {
        for d in &checked.diagnostics {
            eprintln!("{}\n", d.render(&sources));
        }
        outln!(
            "{} file(s): {} rules ({} enabled), {} lists, {} macros, {} exceptions; {errors} error(s), {warnings} warning(s)",
            sources.len(),
            s.rules,
            s.enabled_rules,
            s.lists,
            s.macros,
            s.exceptions
        );
        if let Some(summary) = report.summary() {
            outln!("{summary}");
        }
    }
    Ok(if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn diagnostic_json(d: &Diagnostic, sources: &[Source]) -> serde_json::Value {
    let at = d.location(sources);
    json!({
        "level": match d.level { Level::Error => "error", Level::Warning => "warning" },
        "code": d.code,
        "message": d.message,
        "file": at.file,
        "line": at.line,
        "column": at.column,
        "hint": d.hint,
    })
}

/// One line per loaded rule: id, severity, title, ATT&CK ids.
pub fn list(paths: &[PathBuf], sigma: &sigma::Options) -> Result<ExitCode, String> {
    let loaded = rules::load_or_report(paths, Platform::All, sigma)?;
    let set = &loaded.rules;
    let width = set.ids().map(|id| set.meta(id).id.len()).max().unwrap_or(0);
    for id in set.ids() {
        let m = set.meta(id);
        outln!(
            "{:width$}  {:13}  {}  [{}]{}",
            m.id,
            m.severity.name(),
            m.title,
            m.attack.join(", "),
            if m.enabled { "" } else { "  (disabled)" }
        );
    }
    Ok(ExitCode::SUCCESS)
}
