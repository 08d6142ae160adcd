//! JSON that is not one object a line: pretty-printed objects one after another, a JSON
//! array of events (what `evtx_dump -o json`, jq and most exports write), or
//! `evtx_dump`'s default output (each object after a `Record N` line), or an envelope
//! around an array of events (Azure's `{"records":[..]}`, an Elasticsearch search
//! response). Each value is cut out of the stream by matching its brackets, outside
//! strings, so a 1 GB array is read one event at a time. A value is numbered by the line
//! it starts on.

use super::jsonl::{Cut, Window, MAX_LINE};
use crate::record::{Location, ReadItem};
use std::io::Read;

/// Where the scan of the current value is.
#[derive(Default)]
struct Scan {
    /// Bytes of the value scanned so far, from `start`.
    scanned: usize,
    depth: u32,
    in_string: bool,
    /// The last byte scanned was a `\` inside a string.
    escaped: bool,
}

/// Cuts JSON values (or the elements of top-level arrays) out of an input.
pub(crate) struct ValueCutter<R> {
    w: Window<R>,
    failed: bool,
    /// The line `buf[start]` is on.
    line: u64,
    /// Inside a top-level array: its elements are the values.
    in_array: bool,
    /// How many objects of an envelope are around the array being read (0: none).
    envelope: u32,
    /// The value being skipped is longer than [`MAX_LINE`]: its start line.
    too_long: Option<u64>,
}

impl<R: Read> ValueCutter<R> {
    pub(crate) fn new(reader: R) -> ValueCutter<R> {
        ValueCutter {
            w: Window::new(reader),
            failed: false,
            line: 1,
            in_array: false,
            envelope: 0,
            too_long: None,
        }
    }

    /// Reads more; false at the end of the input.
    fn fill(&mut self) -> Result<bool, ReadItem> {
        if self.w.eof {
            return Ok(false);
        }
        let unread = self.w.end - self.w.start;
        match self.w.fill() {
            Ok(()) => Ok(self.w.end - self.w.start > unread),
            Err(e) => {
                self.failed = true;
                Err(ReadItem::Malformed {
                    kind: "read-error",
                    location: Location::Line(self.line),
                    message: format!("cannot read on: {e}"),
                })
            }
        }
    }

    /// Moves `start` past `n` bytes, counting their lines.
    fn consume(&mut self, n: usize) {
        let passed = &self.w.buf[self.w.start..self.w.start + n];
        self.line += memchr::memchr_iter(b'\n', passed).count() as u64;
        self.w.start += n;
    }

    /// Passes over what separates values: blanks, a byte-order mark, commas and the
    /// brackets of top-level arrays. Returns the first byte of the next value.
    fn skip_separators(&mut self) -> Result<Option<u8>, ReadItem> {
        loop {
            while self.w.start < self.w.end {
                match self.w.buf[self.w.start] {
                    b' ' | b'\t' | b'\r' | b'\n' | b',' => self.consume(1),
                    b'[' if !self.in_array => {
                        self.in_array = true;
                        self.consume(1);
                    }
                    b']' if self.in_array => {
                        self.in_array = false;
                        self.consume(1);
                        self.close_envelope()?;
                    }
                    0xEF if self.w.buf[self.w.start..self.w.end].starts_with(b"\xEF\xBB\xBF") => {
                        self.consume(3);
                    }
                    // A cut BOM waits for its other bytes.
                    0xEF if self.w.end - self.w.start < 3 && !self.w.eof => break,
                    byte => return Ok(Some(byte)),
                }
            }
            if !self.fill()? {
                return Ok((self.w.start < self.w.end).then(|| self.w.buf[self.w.start]));
            }
        }
    }

    /// Whether the object at `start` is an envelope (see [`envelope`]); if so, reads on
    /// from the first byte inside its array of events.
    fn open_envelope(&mut self) -> Result<bool, ReadItem> {
        loop {
            match envelope(&self.w.buf[self.w.start..self.w.end]) {
                Envelope::Events { skip, depth } => {
                    self.consume(skip);
                    self.in_array = true;
                    self.envelope = depth;
                    return Ok(true);
                }
                Envelope::Not => return Ok(false),
                Envelope::More if self.w.end - self.w.start >= ENVELOPE_MAX => return Ok(false),
                Envelope::More => {
                    if !self.fill()? {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// Passes over the rest of an envelope whose array of events just closed.
    fn close_envelope(&mut self) -> Result<(), ReadItem> {
        if self.envelope == 0 {
            return Ok(());
        }
        let scan = Scan {
            depth: std::mem::take(&mut self.envelope),
            ..Scan::default()
        };
        let rest = match self.scan_length(scan)? {
            Some(n) => n,
            None => self.w.end - self.w.start,
        };
        self.consume(rest);
        Ok(())
    }

    /// The length of the value at `start` (an object or array), scanning more input as
    /// needed; `None` when the input ends inside it.
    fn value_length(&mut self) -> Result<Option<usize>, ReadItem> {
        self.scan_length(Scan::default())
    }

    /// How far from `start` the scan `scan` closes its brackets; `None` when the input
    /// ends first.
    fn scan_length(&mut self, mut scan: Scan) -> Result<Option<usize>, ReadItem> {
        loop {
            if let Some(n) = scan_value(&mut scan, &self.w.buf[self.w.start..self.w.end]) {
                return Ok(Some(n));
            }
            if scan.scanned > MAX_LINE {
                // Too long to keep: drop what is buffered and scan on.
                self.too_long.get_or_insert(self.line);
                self.consume(scan.scanned);
                scan.scanned = 0;
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// The length of the text line at `start` (without its `\n`).
    fn line_length(&mut self) -> Result<usize, ReadItem> {
        let mut searched = 0;
        loop {
            let unread = &self.w.buf[self.w.start + searched..self.w.end];
            if let Some(n) = memchr::memchr(b'\n', unread) {
                return Ok(searched + n);
            }
            searched = self.w.end - self.w.start;
            if !self.fill()? {
                return Ok(searched);
            }
        }
    }
}

/// Scans a value from where `scan` left it; the value's length once its last bracket
/// closes.
fn scan_value(scan: &mut Scan, bytes: &[u8]) -> Option<usize> {
    let mut at = scan.scanned;
    while at < bytes.len() {
        if scan.escaped {
            scan.escaped = false;
            at += 1;
            continue;
        }
        if scan.in_string {
            match memchr::memchr2(b'"', b'\\', &bytes[at..]) {
                Some(n) => {
                    at += n;
                    if bytes[at] == b'\\' {
                        scan.escaped = true;
                    } else {
                        scan.in_string = false;
                    }
                    at += 1;
                    continue;
                }
                None => {
                    at = bytes.len();
                    break;
                }
            }
        }
        match bytes[at] {
            b'"' => scan.in_string = true,
            b'{' | b'[' => scan.depth += 1,
            b'}' | b']' => {
                scan.depth = scan.depth.saturating_sub(1);
                if scan.depth == 0 {
                    return Some(at + 1);
                }
            }
            _ => {}
        }
        at += 1;
    }
    scan.scanned = at;
    None
}

/// How much of an object's start is read, at most, to tell an envelope from an event.
const ENVELOPE_MAX: usize = 64 << 10;

/// What the start of a top-level object says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Envelope {
    /// An envelope: its events' array starts after the first `skip` bytes, inside
    /// `depth` objects.
    Events { skip: usize, depth: u32 },
    /// An event, or anything else: one value.
    Not,
    /// The bytes end before they tell.
    More,
}

/// The keys an Elasticsearch search response has before its `hits`. An envelope is
/// told from an event by its keys up to the events' array: an event has none of these.
const SEARCH_PREAMBLE: [&[u8]; 7] = [
    b"took",
    b"timed_out",
    b"_shards",
    b"terminated_early",
    b"num_reduce_phases",
    b"_scroll_id",
    b"pit_id",
];

/// Whether `bytes` (from a top-level value's first byte) start an envelope around an
/// array of events: Azure's `{"records":[..]}` (Event Hubs, diagnostic settings,
/// storage exports) or an Elasticsearch search response
/// (`{"took":..,"_shards":{..},"hits":{"total":..,"hits":[..]}}`).
pub(crate) fn envelope(bytes: &[u8]) -> Envelope {
    match events_array(bytes) {
        Ok(Some((skip, depth))) => Envelope::Events { skip, depth },
        Ok(None) => Envelope::Not,
        Err(Short) => Envelope::More,
    }
}

/// The bytes ended first.
struct Short;

fn events_array(b: &[u8]) -> Result<Option<(usize, u32)>, Short> {
    let mut at = blank(b, 0)?;
    if b[at] != b'{' {
        return Ok(None);
    }
    at += 1;
    let mut depth = 1;
    loop {
        at = blank(b, at)?;
        if b[at] != b'"' {
            return Ok(None);
        }
        let end = string_end(b, at + 1)?;
        let key = &b[at + 1..end - 1];
        at = blank(b, end)?;
        if b[at] != b':' {
            return Ok(None);
        }
        at = blank(b, at + 1)?;
        match (depth, key, b[at]) {
            (1, b"records", b'[') | (2, b"hits", b'[') => return Ok(Some((at + 1, depth))),
            (1, b"hits", b'{') => {
                depth = 2;
                at += 1;
                continue;
            }
            (1, key, _) if SEARCH_PREAMBLE.contains(&key) => {}
            // Inside `hits`: `total`, `max_score`.
            (2, _, _) => {}
            _ => return Ok(None),
        }
        at = value_end(b, at)?;
        at = blank(b, at)?;
        if b[at] != b',' {
            return Ok(None);
        }
        at += 1;
    }
}

/// The first non-blank byte from `at`.
fn blank(b: &[u8], at: usize) -> Result<usize, Short> {
    let rest = b.get(at..).ok_or(Short)?;
    let skipped = rest
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .count();
    if at + skipped < b.len() {
        Ok(at + skipped)
    } else {
        Err(Short)
    }
}

/// Past the closing `"` of a string whose content starts at `at`.
fn string_end(b: &[u8], mut at: usize) -> Result<usize, Short> {
    loop {
        let n = memchr::memchr2(b'"', b'\\', b.get(at..).ok_or(Short)?).ok_or(Short)?;
        if b[at + n] == b'"' {
            return Ok(at + n + 1);
        }
        at += n + 2;
    }
}

/// Past the value that starts at `at`.
fn value_end(b: &[u8], at: usize) -> Result<usize, Short> {
    match b[at] {
        b'{' | b'[' => scan_value(&mut Scan::default(), &b[at..])
            .map(|n| at + n)
            .ok_or(Short),
        b'"' => string_end(b, at + 1),
        _ => {
            let n = b[at..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n'))
                .ok_or(Short)?;
            Ok(at + n)
        }
    }
}

/// Whether a line is `evtx_dump`'s `Record N` header (`Record N (recovered)` for a
/// record it carved out of slack space).
pub(crate) fn record_header(line: &[u8]) -> bool {
    let line = line.trim_ascii();
    let line = line.strip_suffix(b" (recovered)").unwrap_or(line);
    line.strip_prefix(b"Record ")
        .is_some_and(|n| !n.is_empty() && n.iter().all(u8::is_ascii_digit))
}

impl<R: Read> Cut for ValueCutter<R> {
    fn next_raw(&mut self) -> Option<Result<(u64, &[u8]), ReadItem>> {
        if self.failed {
            return None;
        }
        loop {
            let first = match self.skip_separators() {
                Ok(first) => first?,
                Err(item) => return Some(Err(item)),
            };
            if first == b'{' && !self.in_array {
                match self.open_envelope() {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(item) => return Some(Err(item)),
                }
            }
            let line = self.line;
            let length = if matches!(first, b'{' | b'[') {
                match self.value_length() {
                    Ok(Some(n)) => n,
                    // Cut short: what is left goes to the parser, which says so.
                    Ok(None) => self.w.end - self.w.start,
                    Err(item) => return Some(Err(item)),
                }
            } else {
                // Text between values: a `Record N` header, or a line that is no JSON
                // object (the parser reports it).
                match self.line_length() {
                    Ok(n) if record_header(&self.w.buf[self.w.start..self.w.start + n]) => {
                        self.consume(n);
                        continue;
                    }
                    Ok(n) => n,
                    Err(item) => return Some(Err(item)),
                }
            };
            if let Some(line) = self.too_long.take() {
                self.consume(length);
                return Some(Err(ReadItem::Malformed {
                    kind: "json",
                    location: Location::Line(line),
                    message: format!("record longer than {} MiB, skipped", MAX_LINE >> 20),
                }));
            }
            let from = self.w.start;
            self.consume(length);
            return Some(Ok((line, &self.w.buf[from..from + length])));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::jsonl::tests::Trickle;
    use super::super::jsonl::BUFFER;
    use super::*;
    use std::io;

    fn cut(text: &str) -> Vec<String> {
        cut_in_steps(text.as_bytes(), usize::MAX)
    }

    fn cut_in_steps(bytes: &[u8], step: usize) -> Vec<String> {
        let mut cutter = ValueCutter::new(Trickle(bytes, step));
        let mut out = Vec::new();
        while let Some(next) = cutter.next_raw() {
            out.push(match next {
                Ok((line, bytes)) => format!("{line}: {}", String::from_utf8_lossy(bytes)),
                Err(ReadItem::Malformed { kind, location, .. }) => format!("{kind} {location}"),
                Err(other) => format!("{other:?}"),
            });
        }
        out
    }

    #[test]
    fn pretty_objects_one_after_another() {
        let text = "\u{feff}{\n  \"a\": \"}{\\\"\",\n  \"b\": [1, {\"c\": 2}]\n}\n\n{\"d\":\n 3}";
        assert_eq!(
            cut(text),
            [
                "1: {\n  \"a\": \"}{\\\"\",\n  \"b\": [1, {\"c\": 2}]\n}",
                "6: {\"d\":\n 3}"
            ]
        );
    }

    #[test]
    fn an_array_gives_its_elements() {
        let text = "[\n  {\"a\": 1},\n  {\"b\": \"]\"}\n]\n[{\"c\":3}]";
        assert_eq!(
            cut(text),
            ["2: {\"a\": 1}", "3: {\"b\": \"]\"}", "5: {\"c\":3}"]
        );
    }

    #[test]
    fn evtx_dump_record_headers_are_passed_over_and_other_text_is_a_record() {
        let text = "Record 1\n{\n  \"Event\": {}\n}\nRecord 22 (recovered)\n{\"x\": 1}\nnot json\n";
        assert_eq!(
            cut(text),
            ["2: {\n  \"Event\": {}\n}", "6: {\"x\": 1}", "7: not json"]
        );
    }

    #[test]
    fn values_cut_across_reads_and_longer_than_the_buffer() {
        let long = "y\\\"".repeat(BUFFER);
        let text = format!("[{{\"a\": \"{long}\"}},\n{{\"b\": 2}}]");
        for step in [1, 7, 4096, usize::MAX] {
            if step == 1 && text.len() > 100_000 {
                continue;
            }
            let got = cut_in_steps(text.as_bytes(), step);
            assert_eq!(got.len(), 2, "step {step}");
            assert_eq!(
                got[0].len(),
                "1: ".len() + long.len() + "{\"a\": \"\"}".len()
            );
            assert_eq!(got[1], "2: {\"b\": 2}");
        }
        let small = "[{\"a\": \"x\\\\\"},\r\n{\"b\": \"\\\"}\"}]";
        assert_eq!(
            cut_in_steps(small.as_bytes(), 1),
            ["1: {\"a\": \"x\\\\\"}", "2: {\"b\": \"\\\"}\"}"]
        );
    }

    /// A JSON array of `n` small events, made as it is read.
    struct LargeArray {
        left: u64,
        pending: Vec<u8>,
    }

    impl Read for LargeArray {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            while self.pending.len() < buf.len() && self.left > 0 {
                self.left -= 1;
                let end = if self.left == 0 { "\n]" } else { ",\n" };
                let event = format!(
                    "  {{\n    \"EventID\": 1,\n    \"ProcessId\": {}\n  }}{end}",
                    self.left
                );
                self.pending.extend_from_slice(event.as_bytes());
            }
            let n = buf.len().min(self.pending.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            Ok(n)
        }
    }

    #[test]
    fn a_large_array_is_read_one_event_at_a_time() {
        let events = 2_000_000;
        let mut cutter = ValueCutter::new(LargeArray {
            left: events,
            pending: b"[\n".to_vec(),
        });
        let mut count = 0;
        while let Some(next) = cutter.next_raw() {
            let (_, bytes) = next.unwrap_or_else(|item| panic!("{item:?}"));
            assert!(bytes.starts_with(b"{") && bytes.ends_with(b"}"));
            count += 1;
        }
        assert_eq!(count, events);
        // About 80 MB went through a buffer that never grew.
        assert_eq!(cutter.w.buf.len(), BUFFER);
    }

    #[test]
    fn envelopes_are_told_from_events_by_their_first_keys() {
        let search = r#"{"took":3,"timed_out":false,"_shards":{"total":1,"failed":0},"hits":{"total":{"value":2,"relation":"eq"},"max_score":null,"hits":[{"_source":{}}]}}"#;
        let at = search.find("[{").unwrap() + 1;
        assert_eq!(
            envelope(search.as_bytes()),
            Envelope::Events { skip: at, depth: 2 }
        );
        assert_eq!(
            envelope(b"{ \"records\" :\n [ {}]}"),
            Envelope::Events { skip: 16, depth: 1 }
        );
        for event in [
            r#"{"EventID":1,"records":[]}"#,
            r#"{"records":"x"}"#,
            r#"{"took":1,"hits":{"hits":{}}}"#,
            r#"{"_index":"winlogbeat","_source":{"hits":[]}}"#,
            r#"{}"#,
            r#"{"took":"a\"b","hits":7}"#,
        ] {
            assert_eq!(envelope(event.as_bytes()), Envelope::Not, "{event}");
        }
        for cut in [&search[..at - 1], "{", r#"{"took":1"#, r#"{"took":"a\"#] {
            assert_eq!(envelope(cut.as_bytes()), Envelope::More, "{cut}");
        }
    }

    #[test]
    fn an_envelopes_events_are_the_values() {
        let text = concat!(
            "{\"records\": [{\"a\": 1},\n {\"b\": \"]}\"}], \"x\": {\"y\": [1]}}\n",
            "{\"took\": 1, \"_shards\": {}, \"hits\": {\"max_score\": null, \"hits\": []}}\n",
            "{\"took\": 2, \"hits\": {\"hits\": [{\"c\": [3]}]}}\n",
            "{\"d\": 4}",
        );
        for step in [1, 5, usize::MAX] {
            assert_eq!(
                cut_in_steps(text.as_bytes(), step),
                [
                    "1: {\"a\": 1}",
                    "2: {\"b\": \"]}\"}",
                    "4: {\"c\": [3]}",
                    "5: {\"d\": 4}"
                ],
                "step {step}"
            );
        }
    }

    #[test]
    fn a_value_cut_short_is_handed_over_for_the_parser_to_report() {
        assert_eq!(
            cut("{\"a\": 1}\n{\"b\": [1,"),
            ["1: {\"a\": 1}", "2: {\"b\": [1,"]
        );
    }
}
