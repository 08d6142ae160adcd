//! A file opened for appending (`--output`, `--record`), reopened for log rotation.
//!
//! Which file is open is kept as a `same_file::Handle` (device and inode; volume and
//! file index on Windows), so "the path now names another file" is one comparison on
//! every platform; the crate is ripgrep's and walkdir's, already in the build.

use super::stream::LineStream;
use super::{Line, Sink, Stopped};
use same_file::Handle;
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

pub struct FileSink {
    path: PathBuf,
    name: String,
    file: Handle,
    stream: LineStream,
}

impl FileSink {
    /// Opens `path` for appending, creating it if missing.
    pub fn open(path: &Path) -> io::Result<FileSink> {
        Ok(FileSink {
            file: open_append(path)?,
            name: path.display().to_string(),
            path: path.to_path_buf(),
            stream: LineStream::default(),
        })
    }
}

fn open_append(path: &Path) -> io::Result<Handle> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(Handle::from_file)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open {} for appending: {e}", path.display()),
            )
        })
}

impl Sink for FileSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn write(&mut self, lines: &[Line]) -> Result<(), Stopped> {
        self.stream.write(self.file.as_file_mut(), lines)
    }

    /// A named pipe whose reader went away.
    fn ended(&self, error: &io::Error) -> bool {
        error.kind() == io::ErrorKind::BrokenPipe
    }

    /// Opens the path anew; on failure the file open so far stays in use.
    fn reopen(&mut self) -> io::Result<bool> {
        self.file = open_append(&self.path)?;
        self.stream.restart();
        Ok(true)
    }

    fn replaced(&self) -> bool {
        match Handle::from_path(&self.path) {
            Ok(now) => now != self.file,
            Err(e) => e.kind() == io::ErrorKind::NotFound,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> Line {
        Line {
            text: text.into(),
            counted: true,
        }
    }

    #[test]
    fn a_renamed_or_removed_file_is_replaced_and_reopen_writes_to_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let mut sink = FileSink::open(&path).unwrap();
        sink.write(&[line("one")]).unwrap();
        assert!(!sink.replaced());
        std::fs::rename(&path, dir.path().join("alerts.jsonl.1")).unwrap();
        assert!(sink.replaced(), "the path names no file");
        std::fs::write(&path, "").unwrap();
        assert!(sink.replaced(), "the path names another file");
        assert!(sink.reopen().unwrap());
        assert!(!sink.replaced());
        sink.write(&[line("two")]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
        let rotated = dir.path().join("alerts.jsonl.1");
        assert_eq!(std::fs::read_to_string(rotated).unwrap(), "one\n");
    }
}
