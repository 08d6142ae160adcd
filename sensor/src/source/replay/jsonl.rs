//! JSON lines: flat or nested Windows events and spawnwatch's own lines, mixed freely.
//! Lines are cut out of one large reused buffer; the pre-filter spares the parser the
//! lines that cannot be process events. Pretty-printed JSON is cut into records by
//! `json_values` and mapped here the same way.

use super::fields::{Doc, Key};
use super::prefilter::Prefilter;
use super::{spawnwatch_line, windows_event};
use crate::record::{Location, Origin, ReadItem};
use std::io::{self, Read};
use std::sync::Arc;

/// What one `read` asks for; the buffer starts at this size and grows for long lines.
pub(crate) const BUFFER: usize = 1 << 20;
/// A line (or record) longer than this is reported and skipped rather than buffered.
pub(crate) const MAX_LINE: usize = 256 << 20;

/// Cuts an input into records: lines, or JSON values ([`super::json_values`]).
pub(crate) trait Cut {
    /// The next record's line number and bytes, or an item to report in its place (an
    /// over-long record, a read error); `None` at the end of the input.
    fn next_raw(&mut self) -> Option<Result<(u64, &[u8]), ReadItem>>;
}

/// Maps one record that parsed: a Windows event when it has an `EventID`, else a
/// spawnwatch line when it has an `action`, else something else (skipped).
pub(crate) fn map_record(doc: &mut Doc, origin: Origin) -> ReadItem {
    if doc.get(Key::EventId).is_some() {
        windows_event::map_windows(doc, origin, None)
    } else if doc.get(Key::Action).is_some() {
        spawnwatch_line::map_line(doc, origin)
    } else {
        ReadItem::Skipped
    }
}

/// Prefixes a message with the file it is about, for entries of an archive (the caller
/// knows the archive, not the entry).
pub(crate) fn label_item(item: ReadItem, label: Option<&str>) -> ReadItem {
    match (item, label) {
        (
            ReadItem::Malformed {
                kind,
                location,
                message,
            },
            Some(label),
        ) => ReadItem::Malformed {
            kind,
            location,
            message: format!("{label}: {message}"),
        },
        (item, _) => item,
    }
}

/// An input read into one large reused buffer: the unread bytes are `buf[start..end]`.
pub(crate) struct Window<R> {
    reader: R,
    pub(crate) buf: Vec<u8>,
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) eof: bool,
}

impl<R: Read> Window<R> {
    pub(crate) fn new(reader: R) -> Window<R> {
        Window {
            reader,
            buf: vec![0; BUFFER],
            start: 0,
            end: 0,
            eof: false,
        }
    }

    /// Fills the buffer after `end`, moving the unread bytes to the front and growing the
    /// buffer when they fill it.
    pub(crate) fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let grown = (self.buf.len() * 2).min(MAX_LINE + BUFFER);
            self.buf.resize(grown, 0);
        }
        loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Cuts an input into lines in one large reused buffer.
pub(crate) struct LineCutter<R> {
    w: Window<R>,
    /// A read failed: the input ends here.
    failed: bool,
    /// The number of the last line cut.
    line: u64,
}

impl<R: Read> LineCutter<R> {
    pub(crate) fn new(reader: R) -> LineCutter<R> {
        LineCutter {
            w: Window::new(reader),
            failed: false,
            line: 0,
        }
    }

    /// The next line (without `\n`) as a range of `buf`, or an item to report instead.
    fn next_line(&mut self) -> Option<Result<(usize, usize), ReadItem>> {
        let mut searched = 0;
        loop {
            let unread = &self.w.buf[self.w.start + searched..self.w.end];
            if let Some(n) = memchr::memchr(b'\n', unread) {
                let line = (self.w.start, self.w.start + searched + n);
                self.w.start = line.1 + 1;
                self.line += 1;
                return Some(Ok(line));
            }
            if self.w.eof {
                if self.w.start == self.w.end {
                    return None;
                }
                let line = (self.w.start, self.w.end);
                self.w.start = self.w.end;
                self.line += 1;
                return Some(Ok(line));
            }
            if self.w.end - self.w.start > MAX_LINE {
                return Some(Err(self.skip_long_line()));
            }
            searched = self.w.end - self.w.start;
            if let Err(e) = self.w.fill() {
                self.failed = true;
                return Some(Err(ReadItem::Malformed {
                    kind: "read-error",
                    location: Location::Line(self.line + 1),
                    message: format!("cannot read on: {e}"),
                }));
            }
        }
    }

    /// Drops a line longer than `MAX_LINE` up to its end.
    fn skip_long_line(&mut self) -> ReadItem {
        self.line += 1;
        let location = Location::Line(self.line);
        loop {
            if let Some(n) = memchr::memchr(b'\n', &self.w.buf[self.w.start..self.w.end]) {
                self.w.start += n + 1;
                break;
            }
            self.w.start = 0;
            self.w.end = 0;
            if self.w.eof {
                break;
            }
            if let Err(e) = self.w.fill() {
                self.failed = true;
                return ReadItem::Malformed {
                    kind: "read-error",
                    location,
                    message: format!("cannot read on: {e}"),
                };
            }
        }
        ReadItem::Malformed {
            kind: "json",
            location,
            message: format!("line longer than {} MiB, skipped", MAX_LINE >> 20),
        }
    }
}

impl<R: Read> Cut for LineCutter<R> {
    fn next_raw(&mut self) -> Option<Result<(u64, &[u8]), ReadItem>> {
        if self.failed {
            return None;
        }
        Some(
            self.next_line()?
                .map(|(from, to)| (self.line, &self.w.buf[from..to])),
        )
    }
}

/// JSON records (lines, or values) read and mapped one after another.
pub(crate) struct JsonRecords<C> {
    cutter: C,
    file: Arc<str>,
    /// Set for archive entries: prefixed to messages.
    label: Option<Arc<str>>,
    prefilter: Prefilter,
}

impl<C: Cut> JsonRecords<C> {
    pub(crate) fn new(cutter: C, file: Arc<str>, label: Option<Arc<str>>) -> JsonRecords<C> {
        JsonRecords {
            cutter,
            file,
            label,
            prefilter: Prefilter::new(),
        }
    }
}

/// Maps one line of a JSON-lines input (without its `\n`) to what it holds; `None` for
/// a blank line. Messages are prefixed with `label` (an archive entry's name).
pub(crate) fn line_item(
    line: &[u8],
    number: u64,
    file: &Arc<str>,
    label: Option<&str>,
    prefilter: &Prefilter,
) -> Option<ReadItem> {
    let item = map_line(line, number, file, prefilter)?;
    Some(label_item(item, label))
}

fn map_line(
    mut line: &[u8],
    number: u64,
    file: &Arc<str>,
    prefilter: &Prefilter,
) -> Option<ReadItem> {
    if number == 1 {
        line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    }
    let line = line.trim_ascii();
    if line.is_empty() {
        return None;
    }
    let location = Location::Line(number);
    // A line the pre-filter drops is not parsed; its ends still tell a cut or
    // garbled line from a record.
    if !(line.starts_with(b"{") && line.ends_with(b"}")) {
        return Some(ReadItem::Malformed {
            kind: "json",
            location,
            message: "not a JSON object".to_string(),
        });
    }
    if !prefilter.keep(line) {
        return Some(ReadItem::Skipped);
    }
    let origin = Origin {
        kind: "replay",
        file: Some(file.clone()),
        location,
    };
    Some(match Doc::parse_then(line, |doc| map_record(doc, origin)) {
        Ok(item) => item,
        Err(e) => ReadItem::Malformed {
            kind: "json",
            location,
            message: e.to_string(),
        },
    })
}

impl<C: Cut> Iterator for JsonRecords<C> {
    type Item = ReadItem;

    fn next(&mut self) -> Option<ReadItem> {
        loop {
            let label = self.label.as_deref();
            let (number, line) = match self.cutter.next_raw()? {
                Ok(line) => line,
                Err(item) => return Some(label_item(item, label)),
            };
            if let Some(item) = line_item(line, number, &self.file, label, &self.prefilter) {
                return Some(item);
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::record::Action;

    fn read(bytes: &[u8]) -> Vec<ReadItem> {
        JsonRecords::new(LineCutter::new(bytes), "t.jsonl".into(), None).collect()
    }

    fn summary(items: &[ReadItem]) -> Vec<String> {
        items
            .iter()
            .map(|item| match item {
                ReadItem::Event(e) => format!("event {} {:?}", e.process.pid, e.origin.location),
                ReadItem::Skipped => "skipped".to_string(),
                ReadItem::Malformed { kind, location, .. } => format!("{kind} {location:?}"),
            })
            .collect()
    }

    #[test]
    fn mixed_forms_blank_lines_and_malformed_lines_in_the_middle() {
        let input = concat!(
            "\u{feff}{\"EventID\":1,\"Channel\":\"Sysmon\",\"ProcessId\":10,\"Image\":\"C:\\\\a.exe\"}\r\n",
            "\n",
            "   \n",
            "{\"EventID\":10,\"Channel\":\"Sysmon\"}\n",
            "{\"EventID\":1, \"oops\n",
            "{\"EventID\":4688,\"NewProcessId\":\"0x14\",}\n",
            "not json at all\n",
            "{\"Event\":{\"System\":{\"EventID\":{\"#text\":\"4689\"},\"Channel\":\"Security\"},\"EventData\":{\"ProcessId\":\"0x1e\"}}}\n",
            "{\"timestamp\":\"2026-11-27T10:00:01Z\",\"action\":\"terminate\",\"pid\":40}\n",
            "{\"timestamp\":\"2026-11-27T10:00:01Z\",\"action\":\"terminate\"}\n",
            "{\"something\":\"else\"}\n",
            "{\"EventID\":5,\"Channel\":\"Sysmon\",\"ProcessId\":50,\"Image\":\"b\"}",
        );
        let items = read(input.as_bytes());
        assert_eq!(
            summary(&items),
            [
                "event 10 Line(1)",
                "skipped",
                "json Line(5)",
                "json Line(6)",
                "json Line(7)",
                "event 30 Line(8)",
                "event 40 Line(9)",
                "missing-field Line(10)",
                "skipped",
                "event 50 Line(12)",
            ]
        );
        let ReadItem::Event(e) = &items[5] else {
            panic!()
        };
        assert_eq!(e.action, Action::Terminate);
        assert_eq!(e.origin.file.as_deref(), Some("t.jsonl"));
    }

    /// A reader that hands out a few bytes at a time, to cut records across reads.
    pub(in crate::source::replay) struct Trickle<'a>(pub &'a [u8], pub usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(self.0.len()).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn lines_cut_across_reads_and_longer_than_the_buffer() {
        let long = "x".repeat(BUFFER * 2 + 17);
        let line = format!(
            "{{\"Message\":\"{long}\",\"EventID\":1,\"Channel\":\"Sysmon\",\"ProcessId\":7,\"Image\":\"a\"}}\n"
        );
        let input = format!("{line}{line}");
        for step in [1 << 16, 7919] {
            let items: Vec<_> = JsonRecords::new(
                LineCutter::new(Trickle(input.as_bytes(), step)),
                "t".into(),
                None,
            )
            .collect();
            assert_eq!(summary(&items), ["event 7 Line(1)", "event 7 Line(2)"]);
        }
    }

    struct Failing(bool);

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if std::mem::replace(&mut self.0, true) {
                return Err(io::Error::other("disk on fire"));
            }
            let line = b"{\"EventID\":4689,\"ProcessId\":\"0x1\"}\n{\"Even";
            buf[..line.len()].copy_from_slice(line);
            Ok(line.len())
        }
    }

    #[test]
    fn a_read_error_is_reported_once_and_ends_the_input() {
        let items: Vec<_> = JsonRecords::new(
            LineCutter::new(Failing(false)),
            "t".into(),
            Some("a.zip!t".into()),
        )
        .collect();
        assert_eq!(summary(&items), ["event 1 Line(1)", "read-error Line(2)"]);
        let ReadItem::Malformed { message, .. } = &items[1] else {
            panic!()
        };
        assert!(
            message.starts_with("a.zip!t: ") && message.contains("disk on fire"),
            "{message}"
        );
    }
}
