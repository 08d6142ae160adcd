//! Hot reload of the rule files while `run` is running.
//!
//! The watcher looks at the directories holding the rule paths, not at the files
//! themselves, so every way an editor saves is seen: write in place, write a temporary
//! file and rename it over (most editors), vim's swap-file dance, `mv` into the
//! directory, delete and create again. Changes are debounced; then the whole new set is
//! parsed and checked. With errors the old set stays and a `sensor` alert line says why;
//! a clean set is swapped in atomically (each event sees one whole set).

use crate::pipeline::{Pipeline, Rules};
use crate::rules::{self, Platform};
use dsl::ir::CheckedRule;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Quiet time after the last file event before reloading: editors write in bursts.
const SETTLE: Duration = Duration::from_millis(300);

pub struct Reloader {
    paths: Vec<PathBuf>,
    sigma: sigma::Options,
    rules: Rules,
    current: Vec<CheckedRule>,
    /// When the latest relevant file event arrived, if a reload is pending.
    changed: Arc<Mutex<Option<Instant>>>,
    sighup: Arc<AtomicBool>,
    _watcher: Option<RecommendedWatcher>,
}

/// What a successful reload changed, by rule id.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl Reloader {
    /// Watches `paths` (the `--rules` arguments; none = the embedded rules, which only
    /// SIGHUP reloads, to no effect). `current` is the set now running.
    pub fn new(
        paths: Vec<PathBuf>,
        sigma: sigma::Options,
        rules: Rules,
        current: Vec<CheckedRule>,
        sighup: Arc<AtomicBool>,
    ) -> Result<Reloader, String> {
        let changed = Arc::new(Mutex::new(None));
        let watcher = if paths.is_empty() {
            None
        } else {
            Some(watch(&paths, changed.clone())?)
        };
        Ok(Reloader {
            paths,
            sigma,
            rules,
            current,
            changed,
            sighup,
            _watcher: watcher,
        })
    }

    /// Reloads if the files changed and have settled, or on SIGHUP.
    pub fn poll(&mut self, pipeline: &Pipeline) {
        let settled = {
            let mut changed = self.changed.lock().unwrap_or_else(|e| e.into_inner());
            match *changed {
                Some(at) if at.elapsed() >= SETTLE => {
                    *changed = None;
                    true
                }
                _ => false,
            }
        };
        if settled | self.sighup.swap(false, Ordering::Relaxed) {
            self.reload(pipeline);
        }
    }

    /// Loads the whole set again; swaps it in only when it has no error.
    pub fn reload(&mut self, pipeline: &Pipeline) -> Option<Changes> {
        let result = rules::mixed(&self.paths, Platform::Native, &self.sigma).and_then(|mixed| {
            let sources = mixed.sources;
            let checked = dsl::check::check_mixed(&sources, mixed.dsl_files, mixed.foreign);
            let errors: Vec<_> = checked
                .diagnostics
                .iter()
                .filter(|d| d.is_error())
                .collect();
            if errors.is_empty() {
                Ok(checked.rules)
            } else {
                Err(errors
                    .iter()
                    .map(|d| d.render(&sources))
                    .collect::<Vec<_>>()
                    .join("\n"))
            }
        });
        match result {
            Ok(rules) => {
                let changes = diff(&self.current, &rules);
                self.rules.store(Arc::new(dsl::RuleSet::compile(&rules)));
                eprintln!(
                    "spawnwatch: rules reloaded: {} rules; added [{}], removed [{}], changed [{}]",
                    rules.len(),
                    changes.added.join(", "),
                    changes.removed.join(", "),
                    changes.changed.join(", ")
                );
                self.current = rules;
                Some(changes)
            }
            Err(diagnostics) => {
                eprintln!("spawnwatch: rule reload failed; still running the previous rules:\n{diagnostics}");
                pipeline.write_sensor_line(reload_failed_line(&diagnostics));
                None
            }
        }
    }
}

/// The `sensor` alert a SIEM sees when a reload is refused.
fn reload_failed_line(diagnostics: &str) -> String {
    json!({
        "kind": "sensor",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "hostname": hostname(),
        "rule": {"id": "spawnwatch.reload-failed", "title": "Rule reload failed; the previous rules are still running", "severity": "medium", "attack": []},
        "diagnostics": diagnostics,
    })
    .to_string()
}

fn hostname() -> Option<String> {
    std::env::var("COMPUTERNAME").ok().or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
    })
}

fn watch(
    paths: &[PathBuf],
    changed: Arc<Mutex<Option<Instant>>>,
) -> Result<RecommendedWatcher, String> {
    let watched: Vec<PathBuf> = paths
        .iter()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
        .collect();
    let relevant = watched.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        if event.paths.iter().any(|p| concerns(&relevant, p)) {
            *changed.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        }
    })
    .map_err(|e| format!("cannot watch the rule files: {e}"))?;
    for path in &watched {
        let dir = if path.is_dir() {
            path.as_path()
        } else {
            path.parent().unwrap_or(Path::new("."))
        };
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    }
    Ok(watcher)
}

/// Whether a changed path can alter the rule set: a watched file itself, or a
/// `*.rules` or Sigma `*.yml` file in a watched directory.
fn concerns(watched: &[PathBuf], changed: &Path) -> bool {
    watched.iter().any(|w| {
        if w.is_dir() {
            changed.parent() == Some(w.as_path())
                && (changed.extension().is_some_and(|e| e == "rules")
                    || crate::sigma_rules::is_sigma(&changed.to_string_lossy()))
        } else {
            changed == w || changed.file_name() == w.file_name() && changed.parent() == w.parent()
        }
    })
}

fn diff(old: &[CheckedRule], new: &[CheckedRule]) -> Changes {
    let index = |rules: &[CheckedRule]| -> BTreeMap<String, CheckedRule> {
        rules
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.meta.span = Default::default();
                (r.meta.id.clone(), r)
            })
            .collect()
    };
    let (old, new) = (index(old), index(new));
    Changes {
        added: new
            .keys()
            .filter(|id| !old.contains_key(*id))
            .cloned()
            .collect(),
        removed: old
            .keys()
            .filter(|id| !new.contains_key(*id))
            .cloned()
            .collect(),
        changed: new
            .iter()
            .filter(|(id, r)| old.get(*id).is_some_and(|o| o != *r))
            .map(|(id, _)| id.clone())
            .collect(),
    }
}
