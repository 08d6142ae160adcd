//! Where output lines go. Each output is a file here behind the one [`Sink`] trait
//! (stdout, a file, a channel); a new output (syslog, HTTP) is one more.
//!
//! An output only delivers lines and says what went wrong. Everything around that is
//! the same for every output and lives in [`Delivery`]: lines the output cannot take
//! wait in a bounded queue, failures are reported and counted, and the output is
//! reopened for log rotation.

mod channel;
mod delivery;
mod file;
#[cfg(test)]
mod memory;
pub mod stdout;
mod stream;

pub use channel::ChannelSink;
pub use delivery::{Delivery, Figures, Hangups, Tally};
#[cfg(test)]
pub(crate) use memory::Memory;

use std::io;
use std::path::Path;

/// One line for an output, without its newline.
#[derive(Debug)]
pub struct Line {
    pub text: String,
    /// An alert (or, for `--record`, an event): counted while it waits and when lost.
    /// Stats lines are not.
    pub counted: bool,
}

/// Why [`Sink::write`] stopped early.
#[derive(Debug)]
pub struct Stopped {
    /// How many lines, from the first, went out whole before the error.
    pub delivered: usize,
    pub error: io::Error,
}

pub trait Sink: Send {
    /// What messages call this output: `stdout`, a path.
    fn name(&self) -> &str;

    /// Delivers `lines` in order, each followed by a newline, and pushes them out (a
    /// tailing reader sees them now). An empty slice pushes out what the output still
    /// holds.
    ///
    /// On an error, says how many lines went out whole before it. The caller offers
    /// the rest again later, starting with the line the error cut short, and the
    /// output resumes that line where it stopped: no line is written twice or left
    /// torn (a file that filled up mid-line is completed once it has room).
    fn write(&mut self, lines: &[Line]) -> Result<(), Stopped>;

    /// Whether `error` means nobody will ever read this output again (the reader of a
    /// pipe closed it): the program then stops quietly instead of holding lines.
    fn ended(&self, _error: &io::Error) -> bool {
        false
    }

    /// Opens the destination again (log rotation): `Ok(false)` when the output has
    /// nothing to reopen. A line cut short is then written whole to the new one.
    fn reopen(&mut self) -> io::Result<bool> {
        Ok(false)
    }

    /// Whether the destination was replaced under the output: a rotated log file,
    /// whose path now names another file or none.
    fn replaced(&self) -> bool {
        false
    }
}

/// Standard output, or `path` opened for appending (created if missing).
pub fn open(path: Option<&Path>) -> io::Result<Box<dyn Sink>> {
    Ok(match path {
        None => Box::new(stdout::Stdout::default()),
        Some(path) => Box::new(file::FileSink::open(path)?),
    })
}
