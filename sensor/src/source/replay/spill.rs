//! Inputs the readers must seek in but that cannot seek (an EVTX or a zip inside a zip,
//! one piped to stdin) are copied to an anonymous temporary file first, so memory stays
//! bounded whatever their size. What an archive entry may unpack to is capped: a small
//! zip can expand to terabytes.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// The most an archive entry may unpack to, and the most of stdin copied aside: more
/// than Windows lets an event log grow to.
pub(crate) const ENTRY_CAP: u64 = 4 << 30;

/// A reader that fails once more than its cap would be read.
pub(crate) struct Capped<R> {
    inner: R,
    left: u64,
    cap: u64,
}

impl<R: Read> Capped<R> {
    pub(crate) fn new(inner: R, cap: u64) -> Capped<R> {
        Capped {
            inner,
            left: cap,
            cap,
        }
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One byte past the cap is asked for, to tell "exactly the cap" from "more".
        let most = buf
            .len()
            .min(usize::try_from(self.left + 1).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..most])?;
        if n as u64 > self.left {
            return Err(too_large(self.cap));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn too_large(cap: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!(
            "larger than {} unpacked, the most read from an archive entry or stdin \
             (a zip bomb?); extract it and pass the file if it is a real log",
            size(cap)
        ),
    )
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b => format!("{b} bytes"),
    }
}

/// Copies `prefix` and the rest of `reader`, at most `cap` bytes in all, to a new
/// temporary file (removed when closed) and returns it at its start.
pub(crate) fn spill(prefix: &[u8], reader: &mut impl Read, cap: u64) -> Result<File, String> {
    let dir = std::env::temp_dir();
    let no_room = |e: io::Error| {
        format!(
            "cannot copy it to a temporary file in {}: {e}; set TMPDIR to a directory with room",
            dir.display()
        )
    };
    let mut file = tempfile::tempfile_in(&dir).map_err(no_room)?;
    let mut input = Capped::new(prefix.chain(reader), cap);
    let mut buf = vec![0; 1 << 16];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::FileTooLarge => return Err(e.to_string()),
            Err(e) => return Err(format!("cannot read: {e}")),
        };
        file.write_all(&buf[..n]).map_err(no_room)?;
    }
    file.seek(SeekFrom::Start(0)).map_err(no_room)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_reads_up_to_its_cap_and_fails_past_it() {
        let mut exact = String::new();
        Capped::new(&b"abcd"[..], 4)
            .read_to_string(&mut exact)
            .unwrap();
        assert_eq!(exact, "abcd");
        let e = Capped::new(&b"abcde"[..], 4)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert!(e.to_string().contains("larger than"), "{e}");
    }

    #[test]
    fn spill_copies_prefix_and_rest_and_is_capped() {
        let mut file = spill(b"ab", &mut &b"cd"[..], 4).unwrap();
        let mut copied = String::new();
        file.read_to_string(&mut copied).unwrap();
        assert_eq!(copied, "abcd");
        let message = spill(b"ab", &mut &b"cde"[..], 4).unwrap_err();
        assert!(
            message.starts_with("larger than 4 bytes unpacked"),
            "{message}"
        );
    }
}
