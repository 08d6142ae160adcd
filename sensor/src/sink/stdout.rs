//! Standard output. Its reader closing the pipe (`spawnwatch ... | head -1`) ends the
//! output for good, as it ends any Unix filter.

use super::stream::LineStream;
use super::{Line, Sink, Stopped};
use std::io;

#[derive(Default)]
pub struct Stdout {
    stream: LineStream,
}

impl Sink for Stdout {
    fn name(&self) -> &str {
        "stdout"
    }

    fn write(&mut self, lines: &[Line]) -> Result<(), Stopped> {
        self.stream.write(&mut io::stdout().lock(), lines)
    }

    fn ended(&self, error: &io::Error) -> bool {
        error.kind() == io::ErrorKind::BrokenPipe
    }
}

/// Prints one line of a command's own report (`check`, `rules`, `test`, `selftest`),
/// through [`outln!`](crate::outln). A reader that has gone (`spawnwatch rules | head
/// -1`) ends the program quietly, as it ends any Unix filter; any other failure to
/// write ends it with exit 2 and says why (`println!` would panic on either).
pub fn print_line(line: std::fmt::Arguments) {
    use std::io::Write;
    let Err(error) = writeln!(io::stdout().lock(), "{line}") else {
        return;
    };
    if error.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("spawnwatch: cannot write to stdout: {error}");
    std::process::exit(2);
}
