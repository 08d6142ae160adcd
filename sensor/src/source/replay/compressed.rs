//! Compressed logs, as rotated logs are kept: gzip (`.gz`, also several members one
//! after another) and Zstandard (`.zst`, also several frames), decompressed while they
//! are read. What comes out is detected like any input.
//!
//! flate2 runs on miniz_oxide and ruzstd is Zstandard in Rust: neither needs a C
//! compiler for any target (the C zstd would need each Windows target's own).

use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::FrameDecoder;
use std::io::{self, BufRead, BufReader, Read};

/// How a stream is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression whose magic `prefix` starts with.
    pub(crate) fn of(prefix: &[u8]) -> Option<Compression> {
        if prefix.starts_with(b"\x1f\x8b") {
            Some(Compression::Gzip)
        } else if prefix.starts_with(b"\x28\xb5\x2f\xfd") {
            Some(Compression::Zstd)
        } else {
            None
        }
    }

    /// `reader`, decompressed.
    pub(crate) fn decompress<'a>(self, reader: impl Read + Send + 'a) -> Box<dyn Read + Send + 'a> {
        match self {
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
            Compression::Zstd => Box::new(Zstd {
                source: BufReader::new(reader),
                frame: None,
            }),
        }
    }
}

/// Every frame of a Zstandard stream (ruzstd's decoder reads one), skippable frames
/// passed over.
struct Zstd<R> {
    source: BufReader<R>,
    /// The frame being read; `None` between frames.
    frame: Option<FrameDecoder>,
}

impl<R: Read> Zstd<R> {
    /// Starts the next frame; false at the end of the stream.
    fn next_frame(&mut self) -> io::Result<bool> {
        loop {
            if self.source.fill_buf()?.is_empty() {
                return Ok(false);
            }
            let mut frame = FrameDecoder::new();
            match frame.init(&mut self.source) {
                Ok(()) => {
                    self.frame = Some(frame);
                    return Ok(true);
                }
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let skipped = io::copy(
                        &mut (&mut self.source).take(u64::from(length)),
                        &mut io::sink(),
                    )?;
                    if skipped < u64::from(length) {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "zstd: the stream ends inside a skippable frame",
                        ));
                    }
                }
                Err(e) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("zstd: {e}"),
                    ))
                }
            }
        }
    }
}

impl<R: Read> Read for Zstd<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let Some(frame) = &mut self.frame else {
                if !self.next_frame()? {
                    return Ok(0);
                }
                continue;
            };
            while frame.can_collect() < buf.len() && !frame.is_finished() {
                let wanted = buf.len() - frame.can_collect();
                frame
                    .decode_blocks(
                        &mut self.source,
                        ruzstd::decoding::BlockDecodingStrategy::UptoBytes(wanted),
                    )
                    .map_err(|e| {
                        io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}"))
                    })?;
            }
            let n = frame.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if frame.is_finished() {
                self.frame = None;
            } else {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "zstd: the stream ends inside a frame",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unpack(compression: Compression, bytes: &[u8]) -> io::Result<String> {
        let mut text = String::new();
        compression.decompress(bytes).read_to_string(&mut text)?;
        Ok(text)
    }

    fn gzip(text: &str) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(text.as_bytes()).unwrap();
        encoder.finish().unwrap()
    }

    fn zstd(text: &str) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(
            text.as_bytes(),
            ruzstd::encoding::CompressionLevel::Fastest,
        )
    }

    #[test]
    fn several_gzip_members_and_zstd_frames_read_as_one_stream() {
        let lines: Vec<String> = (0..3000).map(|n| format!("{{\"n\":{n}}}\n")).collect();
        let (first, second) = (lines[..1000].concat(), lines[1000..].concat());
        let gz = [gzip(&first), gzip(&second)].concat();
        assert_eq!(Compression::of(&gz), Some(Compression::Gzip));
        assert_eq!(unpack(Compression::Gzip, &gz).unwrap(), lines.concat());
        // Two frames with a skippable frame between them.
        let skippable = [&b"\x50\x2a\x4d\x18"[..], &4u32.to_le_bytes(), b"skip"].concat();
        let zst = [zstd(&first), skippable, zstd(&second)].concat();
        assert_eq!(Compression::of(&zst), Some(Compression::Zstd));
        assert_eq!(unpack(Compression::Zstd, &zst).unwrap(), lines.concat());
    }

    #[test]
    fn a_cut_or_damaged_stream_is_a_read_error() {
        let text = "x".repeat(100_000);
        for (compression, bytes) in [
            (Compression::Gzip, gzip(&text)),
            (Compression::Zstd, zstd(&text)),
        ] {
            let cut = &bytes[..bytes.len() / 2];
            assert!(unpack(compression, cut).is_err(), "{compression:?} cut");
            let mut damaged = bytes.clone();
            damaged[4] ^= 0xff;
            damaged[bytes.len() / 2] ^= 0xff;
            assert!(
                unpack(compression, &damaged).is_err(),
                "{compression:?} damaged"
            );
        }
    }
}
