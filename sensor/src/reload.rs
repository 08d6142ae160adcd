//! Hot reload of the rule files while `run` is running.
//!
//! The watcher looks at the directories holding the rule paths, not at the files
//! themselves, so every way an editor saves is seen: write in place, write a temporary
//! file and rename it over (most editors), vim's swap-file dance, `mv` into the
//! directory, delete and create again. Changes are debounced; then the whole new set is
//! parsed and checked. With errors the old set stays and a `sensor` alert line says why;
//! a clean set is swapped in atomically (each event sees one whole set).
//!
//! A watched directory can itself go away: a deploy tool or `git checkout` deletes and
//! recreates it, or moves a new one into its place. The watch dies with the directory
//! it was on, so the loss is noticed (from the watcher's own event for the directory,
//! and on each turn by looking the path up again), said on stderr, and the path is
//! watched again as soon as it names a directory once more; the rules are then read
//! again. While a directory is missing the previous rules keep running.

use crate::pipeline::{Pipeline, Rules};
use crate::rules::{self, Platform};
use crossbeam_channel::{Receiver, Sender};
use dsl::ir::CheckedRule;
use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use serde_json::json;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Quiet time after the last file event before reloading: editors write in bursts.
const SETTLE: Duration = Duration::from_millis(300);

/// Where the reloader's messages go: stderr in the sensor (a channel in tests).
type Say = Box<dyn FnMut(String) + Send>;

pub struct Reloader {
    paths: Vec<PathBuf>,
    sigma: sigma::Options,
    rules: Rules,
    current: Vec<CheckedRule>,
    sighup: Arc<AtomicBool>,
    watch: Option<DirWatch>,
    /// When the latest relevant change was seen, if a reload is pending.
    pending: Option<Instant>,
    say: Say,
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
        let watch = if paths.is_empty() {
            None
        } else {
            Some(DirWatch::new(&paths)?)
        };
        Ok(Reloader {
            paths,
            sigma,
            rules,
            current,
            sighup,
            watch,
            pending: None,
            say: Box::new(|message| eprintln!("spawnwatch: {message}")),
        })
    }

    /// Sends the messages to `say` instead of stderr.
    #[cfg(all(test, target_os = "linux"))]
    fn saying(mut self, say: Say) -> Reloader {
        self.say = say;
        self
    }

    /// Reloads if the files changed and have settled (and every watched directory is
    /// there), or on SIGHUP. Called on every turn of the run loop.
    pub fn poll(&mut self, pipeline: &Pipeline) {
        let mut complete = true;
        if let Some(watch) = &mut self.watch {
            if watch.update(&mut self.say) {
                self.pending = Some(Instant::now());
            }
            complete = watch.all_present();
        }
        let settled = complete && self.pending.is_some_and(|at| at.elapsed() >= SETTLE);
        if settled {
            self.pending = None;
        }
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
                (self.say)(format!(
                    "rules reloaded: {} rules; added [{}], removed [{}], changed [{}]",
                    rules.len(),
                    changes.added.join(", "),
                    changes.removed.join(", "),
                    changes.changed.join(", ")
                ));
                self.current = rules;
                Some(changes)
            }
            Err(diagnostics) => {
                (self.say)(format!(
                    "rule reload failed; still running the previous rules:\n{diagnostics}"
                ));
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
        "hostname": crate::host::hostname(),
        "rule": {"id": "spawnwatch.reload-failed", "title": "Rule reload failed; the previous rules are still running", "severity": "medium", "attack": []},
        "diagnostics": diagnostics,
    })
    .to_string()
}

/// The directories holding the rule paths, each watched while it exists.
struct DirWatch {
    watcher: RecommendedWatcher,
    /// The watcher's events, read on the run loop's turn.
    events: Receiver<notify::Event>,
    dirs: Vec<WatchedDir>,
    /// Each rule path: its directory (an index into `dirs`) and, for a file, its name.
    rule_paths: Vec<(usize, Option<OsString>)>,
}

struct WatchedDir {
    /// As the rule path gave it.
    path: PathBuf,
    /// The directory it resolved to and is being watched; `None` while it is missing.
    watched: Option<PathBuf>,
    /// Why it could not be watched again, once said (not repeated every turn).
    failure: Option<String>,
}

impl DirWatch {
    fn new(paths: &[PathBuf]) -> Result<DirWatch, String> {
        let (sender, events): (Sender<notify::Event>, _) = crossbeam_channel::unbounded();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event {
                    if !event.kind.is_access() {
                        let _ = sender.send(event);
                    }
                }
            })
            .map_err(|e| format!("cannot watch the rule files: {e}"))?;
        let mut dirs: Vec<WatchedDir> = Vec::new();
        let mut rule_paths = Vec::new();
        for path in paths {
            let (dir, file) = if path.is_dir() {
                (path.clone(), None)
            } else {
                let dir = match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                (dir, path.file_name().map(OsString::from))
            };
            let index = match dirs.iter().position(|d| d.path == dir) {
                Some(i) => i,
                None => {
                    let watched = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
                    watcher
                        .watch(&watched, RecursiveMode::NonRecursive)
                        .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
                    dirs.push(WatchedDir {
                        path: dir,
                        watched: Some(watched),
                        failure: None,
                    });
                    dirs.len() - 1
                }
            };
            rule_paths.push((index, file));
        }
        Ok(DirWatch {
            watcher,
            events,
            dirs,
            rule_paths,
        })
    }

    fn all_present(&self) -> bool {
        self.dirs.iter().all(|d| d.watched.is_some())
    }

    /// Reads the watcher's events and checks that each directory is still where its
    /// path says; returns whether the rule files may have changed.
    fn update(&mut self, say: &mut Say) -> bool {
        let mut changed = false;
        let events: Vec<notify::Event> = self.events.try_iter().collect();
        for event in &events {
            for path in &event.paths {
                let lost = event.kind.is_remove()
                    || matches!(event.kind, EventKind::Modify(ModifyKind::Name(_)));
                if lost {
                    if let Some(i) = self
                        .dirs
                        .iter()
                        .position(|d| d.watched.as_ref() == Some(path))
                    {
                        self.lose(i, say);
                    }
                }
                changed |= self.concerns(path);
            }
        }
        for i in 0..self.dirs.len() {
            let now = std::fs::canonicalize(&self.dirs[i].path)
                .ok()
                .filter(|p| p.is_dir());
            if now == self.dirs[i].watched {
                continue;
            }
            match (self.dirs[i].watched.take(), now) {
                (Some(old), None) => {
                    self.dirs[i].watched = Some(old);
                    self.lose(i, say);
                }
                // A symlink switched to another release, a parent directory renamed.
                (Some(old), Some(now)) => {
                    let _ = self.watcher.unwatch(&old);
                    changed |= self.rewatch(i, now, "now leads to another directory", say);
                }
                (None, Some(now)) => changed |= self.rewatch(i, now, "is back", say),
                (None, None) => {}
            }
        }
        changed
    }

    /// The directory `dirs[i]` is gone from its path (deleted, moved away, replaced):
    /// its watch is dropped.
    fn lose(&mut self, i: usize, say: &mut Say) {
        let dir = &mut self.dirs[i];
        if let Some(old) = dir.watched.take() {
            // Already gone with a deleted directory; a moved one would still report.
            let _ = self.watcher.unwatch(&old);
            say(format!(
                "rule directory {} is gone (deleted or moved away); the rules loaded from it keep running, and it is read again when it is back",
                dir.path.display()
            ));
        }
    }

    /// Watches `dirs[i]` again at `now`, where its path leads (`what` says why on
    /// stderr); returns whether it is watched.
    fn rewatch(&mut self, i: usize, now: PathBuf, what: &str, say: &mut Say) -> bool {
        let dir = &mut self.dirs[i];
        match self.watcher.watch(&now, RecursiveMode::NonRecursive) {
            Ok(()) => {
                say(format!(
                    "rule directory {} {what}; watching it and reading the rules again",
                    dir.path.display()
                ));
                dir.watched = Some(now);
                dir.failure = None;
                true
            }
            Err(e) => {
                let failure = format!(
                    "cannot watch rule directory {} again: {e}",
                    dir.path.display()
                );
                if dir.failure.as_ref() != Some(&failure) {
                    say(failure.clone());
                    dir.failure = Some(failure);
                }
                false
            }
        }
    }

    /// Whether a changed path can alter the rule set: a watched file itself, or a
    /// `*.rules` or Sigma `*.yml` file in a watched directory.
    fn concerns(&self, changed: &Path) -> bool {
        self.rule_paths.iter().any(|(i, file)| {
            let Some(dir) = &self.dirs[*i].watched else {
                return false;
            };
            changed.parent() == Some(dir.as_path())
                && match file {
                    Some(name) => changed.file_name() == Some(name.as_os_str()),
                    None => {
                        changed.extension().is_some_and(|e| e == "rules")
                            || crate::sigma_rules::is_sigma(&changed.to_string_lossy())
                    }
                }
        })
    }
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

/// With the real watcher (inotify), on a real directory. Linux only: the sensor's
/// Windows tests run under wine, whose directory notifications are not Windows'.
#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::pipeline::Options;
    use crate::sink::ChannelSink;
    use arc_swap::ArcSwap;
    use crossbeam_channel::Receiver;

    fn rule(id: &str) -> String {
        format!(
            "rule {id} {{ title: \"t\" severity: low attack: T1059 condition: exe == \"{id}\" }}\n"
        )
    }

    /// A temporary folder holding `rules/a.rules` (rule A), and that `rules` directory.
    fn rule_dir_with_a() -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("rules");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("a.rules"), rule("A")).unwrap();
        (root, dir)
    }

    /// A reloader on `dir`, polled on its own thread as the run loop polls it (every
    /// turn), with its rule set and what it says.
    struct Running {
        rules: Rules,
        said: Receiver<String>,
        /// Every message received so far.
        log: std::cell::RefCell<Vec<String>>,
        stop: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Running {
        fn start(dir: &Path) -> Running {
            let sources = rules::sources(&[dir.to_path_buf()], Platform::Native).unwrap();
            let loaded = dsl::load(&sources).unwrap();
            let rules: Rules = Arc::new(ArcSwap::from_pointee(loaded.rules));
            let (tell, said) = crossbeam_channel::unbounded();
            let reloader = Reloader::new(
                vec![dir.to_path_buf()],
                sigma::Options::default(),
                rules.clone(),
                loaded.checked,
                Arc::new(AtomicBool::new(false)),
            )
            .unwrap()
            .saying(Box::new(move |m| {
                let _ = tell.send(m);
            }));
            let stop = Arc::new(AtomicBool::new(false));
            let stopped = stop.clone();
            let thread = std::thread::spawn(move || {
                let mut reloader = reloader;
                let (lines, _) = crossbeam_channel::unbounded();
                let pipeline = Pipeline::start(
                    Arc::new(ArcSwap::from_pointee(dsl::RuleSet::compile(&[]))),
                    Box::new(ChannelSink(lines)),
                    &Options::default(),
                );
                // The run loop's turn: it polls after waiting up to 200 ms for events.
                while !stopped.load(Ordering::Relaxed) {
                    reloader.poll(&pipeline);
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
            Running {
                rules,
                said,
                log: Default::default(),
                stop,
                thread: Some(thread),
            }
        }

        /// Waits (up to 20 s) for a message containing `needle`; returns it.
        fn wait_for(&self, needle: &str) -> String {
            let deadline = Instant::now() + Duration::from_secs(20);
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                let Ok(m) = self.said.recv_timeout(left) else {
                    break;
                };
                self.log.borrow_mut().push(m.clone());
                if m.contains(needle) {
                    return m;
                }
            }
            panic!(
                "nothing said with {needle:?}; said:\n{}",
                self.log.borrow().join("\n")
            );
        }

        fn said_so_far(&self) -> Vec<String> {
            self.log.borrow_mut().extend(self.said.try_iter());
            self.log.borrow().clone()
        }

        fn ids(&self) -> Vec<String> {
            let set = self.rules.load();
            set.ids().map(|id| set.meta(id).id.clone()).collect()
        }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    #[test]
    fn a_rule_directory_deleted_and_recreated_is_watched_again() {
        let (_root, dir) = rule_dir_with_a();
        let running = Running::start(&dir);
        // As a deploy tool does: delete the directory, make it again, write the rules.
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("b.rules"), rule("B")).unwrap();
        running.wait_for("added [B], removed [A]");
        assert_eq!(running.ids(), ["B"]);
        // The new directory is the one watched: an edit in it is seen.
        std::fs::write(dir.join("c.rules"), rule("C")).unwrap();
        running.wait_for("added [C]");
        assert_eq!(running.ids(), ["B", "C"]);
    }

    #[test]
    fn a_sigma_file_written_into_a_watched_directory_is_loaded() {
        let (_root, dir) = rule_dir_with_a();
        let running = Running::start(&dir);
        std::fs::write(
            dir.join("whoami.yml"),
            "title: t\nid: sigma-1\nlogsource: {category: process_creation, product: windows}\ndetection:\n  sel:\n    Image|endswith: '\\whoami.exe'\n  condition: sel\n",
        )
        .unwrap();
        running.wait_for("added [sigma-1]");
        assert_eq!(running.ids(), ["A", "sigma-1"]);
    }

    #[test]
    fn a_missing_rule_directory_is_said_and_the_rules_keep_running_until_it_is_back() {
        let (_root, dir) = rule_dir_with_a();
        let running = Running::start(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        let gone = running.wait_for("is gone");
        assert!(gone.contains(&dir.display().to_string()), "{gone}");
        // No reload is tried while it is missing: the set stays, no failure is said.
        assert_eq!(running.ids(), ["A"]);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("a.rules"), rule("A")).unwrap();
        std::fs::write(dir.join("b.rules"), rule("B")).unwrap();
        running.wait_for("is back");
        let reloaded = running.wait_for("rules reloaded");
        assert!(reloaded.contains("added [B]"), "{reloaded}");
        let said = running.said_so_far();
        assert!(!said.iter().any(|m| m.contains("failed")), "{said:#?}");
    }

    #[test]
    fn a_new_directory_moved_into_the_place_of_the_old_is_watched() {
        let (root, dir) = rule_dir_with_a();
        let running = Running::start(&dir);
        // Prepared beside it, then swapped in with two renames; the old one stays.
        let next = root.path().join("rules.next");
        std::fs::create_dir(&next).unwrap();
        std::fs::write(next.join("b.rules"), rule("B")).unwrap();
        std::fs::rename(&dir, root.path().join("rules.old")).unwrap();
        std::fs::rename(&next, &dir).unwrap();
        running.wait_for("added [B], removed [A]");
        // The watch followed the path, not the old directory: an edit in the new one is seen.
        std::fs::write(dir.join("c.rules"), rule("C")).unwrap();
        running.wait_for("added [C]");
        assert_eq!(running.ids(), ["B", "C"]);
    }
}
