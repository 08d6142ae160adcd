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
