//! Lines kept in memory, and failures on demand, for tests.

use super::{Line, Sink, Stopped};
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

/// Every line written, in order; while `failing` holds an error kind, every write
/// fails with it and takes nothing (`BrokenPipe`: the reader went away).
#[derive(Clone, Default)]
pub(crate) struct Memory {
    lines: Arc<Mutex<Vec<String>>>,
    failing: Arc<Mutex<Option<io::ErrorKind>>>,
    /// Told of every write that failed, so a test knows the failure happened.
    failures: Arc<Mutex<Option<crossbeam_channel::Sender<io::ErrorKind>>>>,
}

impl Memory {
    pub(crate) fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// `process.pid` of every line, which must all be alerts.
    pub(crate) fn alert_pids(&self) -> Vec<u64> {
        let pid = |line: &String| {
            let alert: serde_json::Value = serde_json::from_str(line).unwrap();
            alert["process"]["pid"].as_u64().unwrap()
        };
        self.lines.lock().unwrap().iter().map(pid).collect()
    }

    pub(crate) fn fail_with(&self, kind: Option<io::ErrorKind>) {
        *self.failing.lock().unwrap() = kind;
    }

    /// The failed writes from now on.
    pub(crate) fn failures(&self) -> crossbeam_channel::Receiver<io::ErrorKind> {
        let (tx, rx) = crossbeam_channel::unbounded();
        *self.failures.lock().unwrap() = Some(tx);
        rx
    }
}

impl Sink for Memory {
    fn name(&self) -> &str {
        "memory"
    }

    fn write(&mut self, lines: &[Line]) -> Result<(), Stopped> {
        if let Some(kind) = *self.failing.lock().unwrap() {
            if let Some(tell) = self.failures.lock().unwrap().as_ref() {
                let _ = tell.send(kind);
            }
            return Err(Stopped {
                delivered: 0,
                error: kind.into(),
            });
        }
        let mut kept = self.lines.lock().unwrap();
        kept.extend(lines.iter().map(|l| l.text.clone()));
        Ok(())
    }

    fn ended(&self, error: &io::Error) -> bool {
        error.kind() == io::ErrorKind::BrokenPipe
    }
}

/// Takes bytes until it has `room`, then fails as a full disk does: a short write
/// first, then ENOSPC.
pub(crate) struct Disk {
    pub(crate) bytes: Vec<u8>,
    pub(crate) room: usize,
}

impl Disk {
    pub(crate) fn with_room(room: usize) -> Disk {
        Disk {
            bytes: Vec::new(),
            room,
        }
    }
}

impl Write for Disk {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.room - self.bytes.len());
        if n == 0 {
            return Err(io::Error::from_raw_os_error(28));
        }
        self.bytes.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Counted lines of these texts.
pub(crate) fn lines(texts: &[&str]) -> Vec<Line> {
    texts
        .iter()
        .map(|t| Line {
            text: t.to_string(),
            counted: true,
        })
        .collect()
}
