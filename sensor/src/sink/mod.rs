//! Where output lines go. Each output is a file here behind the one [`Sink`] trait
//! (stdout, a file, a channel, the terminal view, syslog, HTTP).
//!
//! An output only delivers lines and says what went wrong. Everything around that is
//! the same for every output and lives in [`Delivery`]: lines the output cannot take
//! wait in a bounded queue, failures are reported and counted, and the output is
//! reopened for log rotation. Several destinations (`--output` repeated) each get a
//! thread and a queue of their own ([`fanout`]); a network destination writes to an
//! on-disk spool first ([`spool`]) and a thread of its own sends from there
//! ([`forward`]).

mod channel;
#[cfg(test)]
mod collectors;
mod delivery;
mod destination;
mod fanout;
mod file;
mod forward;
mod http;
#[cfg(test)]
pub(crate) mod memory;
mod pretty;
mod spool;
pub mod stdout;
mod stream;
mod syslog;
#[cfg(feature = "tls")]
mod tls;
mod watched;

pub use channel::ChannelSink;
pub use delivery::{Delivery, Figures, Hangups, Tally};
pub use destination::{open_outputs, Destination, NetworkArgs, Outputs};
pub use fanout::OutputFigures;
#[cfg(test)]
pub(crate) use memory::Memory;
pub use pretty::Terminal;

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

    /// How many of the lines written last the destination may still lose: a TCP
    /// collector has them only once its TCP acknowledged them and the connection
    /// stayed up a while (see [`syslog`]); a file or an HTTP reply holds them at once.
    /// An error means the connection broke: every line not confirmed is offered again,
    /// from the first.
    fn unconfirmed(&mut self) -> io::Result<usize> {
        Ok(0)
    }

    /// The end: whatever the output still holds of its own (the threads of several
    /// destinations, a spool being sent) is delivered or accounted for. Returns the
    /// counted lines it lost on its own.
    fn close(&mut self) -> u64 {
        0
    }
}

/// Standard output, or `path` opened for appending (created if missing).
pub fn open(path: Option<&Path>) -> io::Result<Box<dyn Sink>> {
    Ok(match path {
        None => Box::new(stdout::Stdout::default()),
        Some(path) => Box::new(file::FileSink::open(path)?),
    })
}
