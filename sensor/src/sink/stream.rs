//! Lines onto a byte stream (a file, stdout), for the outputs that write one: a few
//! lines per write call, and where an error cut a line short, so that the next call
//! resumes it instead of writing it twice.

use super::{Line, Stopped};
use std::io::{self, Write};

/// Bytes per write call, at least one whole line.
const CHUNK_BYTES: usize = 64 << 10;

#[derive(Default)]
pub(super) struct LineStream {
    /// Bytes of the first line not yet delivered that are already out.
    torn: usize,
    chunk: Vec<u8>,
}

impl LineStream {
    /// Writes `lines` (see [`super::Sink::write`]) and flushes `out`.
    pub(super) fn write(&mut self, out: &mut impl Write, lines: &[Line]) -> Result<(), Stopped> {
        let mut delivered = 0;
        while delivered < lines.len() {
            let count = self.fill(&lines[delivered..]);
            // Within the first line: anything else would break the caller's promise.
            self.torn = self.torn.min(self.chunk.len());
            let mut written = 0;
            if let Err(error) = write_all(out, &self.chunk[self.torn..], &mut written) {
                let out_of_chunk = self.torn + written;
                let mut whole = 0;
                for line in &lines[delivered..delivered + count] {
                    let len = line.text.len() + 1;
                    if whole + len > out_of_chunk {
                        break;
                    }
                    whole += len;
                    delivered += 1;
                }
                self.torn = out_of_chunk - whole;
                return Err(Stopped { delivered, error });
            }
            self.torn = 0;
            delivered += count;
        }
        out.flush().map_err(|error| Stopped { delivered, error })
    }

    /// The destination changed: a line cut short is written whole to the new one.
    pub(super) fn restart(&mut self) {
        self.torn = 0;
    }

    /// Fills the chunk with the first of `lines`, newlines added; returns how many.
    fn fill(&mut self, lines: &[Line]) -> usize {
        self.chunk.clear();
        let mut count = 0;
        for line in lines {
            if count > 0 && self.chunk.len() + line.text.len() >= CHUNK_BYTES {
                break;
            }
            self.chunk.extend_from_slice(line.text.as_bytes());
            self.chunk.push(b'\n');
            count += 1;
        }
        count
    }
}

/// `Write::write_all`, counting in `written` what went out before an error.
pub(super) fn write_all(
    out: &mut impl Write,
    mut bytes: &[u8],
    written: &mut usize,
) -> io::Result<()> {
    while !bytes.is_empty() {
        match out.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                *written += n;
                bytes = &bytes[n..];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::memory::{lines, Disk};

    #[test]
    fn a_line_cut_short_by_a_full_disk_is_resumed_not_repeated() {
        let lines = lines(&["first", "second", "third"]);
        let mut disk = Disk::with_room(9);
        let mut stream = LineStream::default();
        let stopped = stream.write(&mut disk, &lines).unwrap_err();
        assert_eq!(stopped.delivered, 1, "`first\\n` went out whole");
        assert_eq!(stopped.error.raw_os_error(), Some(28));
        assert_eq!(disk.bytes, b"first\nsec");
        disk.room = 100;
        stream.write(&mut disk, &lines[1..]).unwrap();
        assert_eq!(disk.bytes, b"first\nsecond\nthird\n");
    }

    #[test]
    fn after_a_restart_a_line_cut_short_is_written_whole() {
        let lines = lines(&["first", "second"]);
        let mut old = Disk::with_room(9);
        let mut stream = LineStream::default();
        stream.write(&mut old, &lines).unwrap_err();
        stream.restart();
        let mut new = Disk::with_room(100);
        stream.write(&mut new, &lines[1..]).unwrap();
        assert_eq!(new.bytes, b"second\n");
    }
}
