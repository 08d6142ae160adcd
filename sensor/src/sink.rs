//! Where lines go: stdout or a file opened for appending. One trait, so the writer does
//! not care which.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::Path;

pub trait Sink: Send {
    /// Writes one line; the newline is added here.
    fn write_line(&mut self, line: &str) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
}

/// Any writer, buffered.
pub struct WriterSink<W: Write + Send>(BufWriter<W>);

impl<W: Write + Send> Sink for WriterSink<W> {
    fn write_line(&mut self, line: &str) -> io::Result<()> {
        self.0.write_all(line.as_bytes())?;
        self.0.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Standard output, or `path` opened for appending (created if missing).
pub fn open(path: Option<&Path>) -> io::Result<Box<dyn Sink>> {
    Ok(match path {
        None => Box::new(WriterSink(BufWriter::new(io::stdout()))),
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot open {} for appending: {e}", path.display()),
                    )
                })?;
            Box::new(WriterSink(BufWriter::new(file)))
        }
    })
}

/// Hands every line to a channel as it is written (selftest watches its own alerts
/// this way). A line nobody receives any more is dropped.
pub struct ChannelSink(pub crossbeam_channel::Sender<String>);

impl Sink for ChannelSink {
    fn write_line(&mut self, line: &str) -> io::Result<()> {
        let _ = self.0.send(line.to_string());
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Keeps every line in memory, for tests.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct Memory(pub(crate) std::sync::Arc<std::sync::Mutex<Vec<String>>>);

#[cfg(test)]
impl Sink for Memory {
    fn write_line(&mut self, line: &str) -> io::Result<()> {
        self.0.lock().unwrap().push(line.to_string());
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
