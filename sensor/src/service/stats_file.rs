//! The latest stats line, kept in a file of its own for `spawnwatch service status`: a
//! service has no console, and its output may be a file of any size or not a file.
//!
//! Each line replaces the last one whole (written beside it, then renamed over it), so
//! a reader never sees half a line.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Where `run --stats-file` keeps the latest stats line. Cheap to clone: the final
/// line is written from the pipeline's writer thread.
#[derive(Clone)]
pub struct StatsFile(Arc<Inner>);

struct Inner {
    path: PathBuf,
    /// A failure is said once, not on every stats line.
    warned: AtomicBool,
}

impl StatsFile {
    pub fn new(path: PathBuf) -> StatsFile {
        StatsFile(Arc::new(Inner {
            path,
            warned: AtomicBool::new(false),
        }))
    }

    /// Replaces the file's line with `line`. A failure is reported on stderr once and
    /// otherwise ignored: the stats line is in the output too.
    pub fn save(&self, line: &str) {
        if let Err(e) = replace(&self.0.path, line) {
            if !self.0.warned.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "spawnwatch: warning: cannot keep the stats line in {}: {e}",
                    self.0.path.display()
                );
            }
        }
    }
}

fn replace(path: &Path, line: &str) -> std::io::Result<()> {
    let mut fresh = path.as_os_str().to_owned();
    fresh.push(".new");
    std::fs::write(&fresh, format!("{line}\n"))?;
    std::fs::rename(&fresh, path)
}

/// The line a running or stopped sensor left in `path`.
pub fn read(path: &Path) -> Result<String, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.trim_end().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "no stats line yet in {}: the service has not run, or not for one stats interval",
            path.display()
        )),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Prints the last stats line kept in `path`, or why there is none.
pub fn print_last(path: &Path) {
    match read(path) {
        Ok(line) => println!("last stats line ({}):\n{line}", path.display()),
        Err(e) => println!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_line_replaces_the_last_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.json");
        assert!(read(&path).unwrap_err().starts_with("no stats line yet"));
        let file = StatsFile::new(path.clone());
        file.save(r#"{"kind":"stats","received":1}"#);
        file.save(r#"{"kind":"stats","received":2}"#);
        assert_eq!(read(&path).unwrap(), r#"{"kind":"stats","received":2}"#);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "nothing left beside it");
    }

    #[test]
    fn a_file_that_cannot_be_written_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = StatsFile::new(dir.path().join("missing-dir/stats.json"));
        file.save("{}");
        file.save("{}");
        assert!(file.0.warned.load(Ordering::Relaxed));
    }
}
