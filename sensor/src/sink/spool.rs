//! A network destination's on-disk spool: every line is written here before it is sent,
//! and removed only once the destination has acknowledged it, so a collector that is
//! down, or a sensor that is killed, loses nothing.
//!
//! On disk, one directory per destination:
//! - segment files `0000000000000001.seg`, `...02.seg`, append-only: each record is one
//!   line, `CRC32-HEX SPACE LINE NEWLINE` (the CRC32 of the line). A line is JSON, which
//!   has no raw newline, so a damaged region (a torn write when the process died, zeros
//!   after a power loss) ends at the next newline: it is skipped and counted, and every
//!   record after it is read. A restarted sensor never appends to an old segment; it
//!   starts a new one, so a torn tail is never glued to a new record.
//! - `acked`: where the first record not yet acknowledged starts (`SEGMENT OFFSET`),
//!   replaced whole by a rename, so it is never seen half-written. It is not synced:
//!   if a crash loses its last update, the records acknowledged since are sent again
//!   (at least once, never lost).
//! - `lock`: held while a sensor uses the directory, so two cannot interleave.
//!
//! Appends are synced (`fdatasync`) once per burst the writer hands over (a group
//! commit): an alert that was spooled survives a power loss, not only a kill -9.
//! Segments are an eighth of the size cap at most (16 MB): a full spool drops its
//! oldest segment, counting the alerts in it.

use super::{Line, Stopped};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

const MAX_SEGMENT_BYTES: u64 = 16 << 20;
/// "CRC32HEX " before each line.
const PREFIX: usize = 9;

/// Where a record starts or ends: a segment and a byte offset in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    segment: u64,
    offset: u64,
}

/// The spool's figures, readable while it runs (the stats line).
#[derive(Debug, Default)]
pub struct SpoolFigures {
    /// Records not yet acknowledged, and their bytes.
    pub queued: AtomicU64,
    pub bytes: AtomicU64,
    /// Records removed unacknowledged: the spool was full.
    pub dropped: AtomicU64,
    /// Records acknowledged by the destination.
    pub sent: AtomicU64,
}

/// What a spool held when it was opened, for the message saying so.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub records: u64,
    /// Damaged records (a torn write, a flipped byte) that are skipped.
    pub damaged: u64,
}

struct State {
    /// The first record not acknowledged.
    head: Pos,
    /// After the last whole record appended.
    end: Pos,
    /// Length of every segment on disk.
    segments: BTreeMap<u64, u64>,
    /// The writer has finished: nothing more comes.
    closed: bool,
}

struct Shared {
    dir: PathBuf,
    state: Mutex<State>,
    /// Told when records are appended or the writer closes.
    appended: Condvar,
    figures: Arc<SpoolFigures>,
    max_bytes: u64,
    _lock: File,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the state half-changed: every change is a
        // few assignments.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn segment_path(&self, segment: u64) -> PathBuf {
        segment_path(&self.dir, segment)
    }

    fn publish(&self, state: &State) {
        let queued_bytes = state
            .segments
            .iter()
            .filter(|(&s, _)| s >= state.head.segment)
            .map(|(_, &len)| len)
            .sum::<u64>()
            .saturating_sub(state.head.offset);
        self.figures.bytes.store(queued_bytes, Ordering::Relaxed);
    }

    /// Moves the head to `to` if that is forward, past segments wholly read, deleting
    /// the segments behind it, and records it in `acked`.
    fn advance(&self, state: &mut State, to: Pos) {
        if to <= state.head {
            return;
        }
        state.head = to;
        // The end of a segment the writer has left is the start of the next one.
        while let Some(&len) = state.segments.get(&state.head.segment) {
            if state.head.offset < len || state.head.segment >= state.end.segment {
                break;
            }
            let next = state.segments.range(state.head.segment + 1..).next();
            let Some((&next, _)) = next else { break };
            state.head = Pos {
                segment: next,
                offset: 0,
            };
        }
        let behind: Vec<u64> = state
            .segments
            .range(..state.head.segment)
            .map(|(&s, _)| s)
            .collect();
        for segment in behind {
            state.segments.remove(&segment);
            // A segment that cannot be removed now is found again at the next start,
            // behind the head, and removed then.
            let _ = fs::remove_file(self.segment_path(segment));
        }
        // Lost only in a crash, and then records are sent twice, never lost.
        let _ = write_acked(&self.dir, state.head);
        self.publish(state);
    }
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:016}.seg"))
}

fn write_acked(dir: &Path, head: Pos) -> io::Result<()> {
    let tmp = dir.join("acked.tmp");
    fs::write(&tmp, format!("{} {}\n", head.segment, head.offset))?;
    fs::rename(tmp, dir.join("acked"))
}

fn read_acked(dir: &Path) -> Option<Pos> {
    let text = fs::read_to_string(dir.join("acked")).ok()?;
    let mut parts = text.split_whitespace();
    let segment = parts.next()?.parse().ok()?;
    let offset = parts.next()?.parse().ok()?;
    Some(Pos { segment, offset })
}

/// The appending end and the reading end of one spool directory.
pub fn open(dir: &Path, max_bytes: u64) -> io::Result<(SpoolWriter, SpoolReader, Recovered)> {
    fs::create_dir_all(dir).map_err(|e| context(e, "cannot create the spool directory", dir))?;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))
        .map_err(|e| context(e, "cannot open the lock file of the spool", dir))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                "the spool {} is in use by another spawnwatch; give this one its own --spool-dir",
                dir.display()
            ),
            ))
        }
        Err(fs::TryLockError::Error(e)) => {
            return Err(context(e, "cannot lock the spool", dir));
        }
    }
    let mut segments = BTreeMap::new();
    for entry in fs::read_dir(dir).map_err(|e| context(e, "cannot read the spool", dir))? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(number) = name.to_str().and_then(|n| n.strip_suffix(".seg")) else {
            continue;
        };
        if let Ok(segment) = number.parse::<u64>() {
            segments.insert(segment, entry.metadata()?.len());
        }
    }
    let first = segments.keys().next().copied().unwrap_or(1);
    let last = segments.keys().next_back().copied().unwrap_or(0);
    // No `acked` (or a damaged one): everything is sent again, never skipped.
    let mut head = read_acked(dir)
        .filter(|h| segments.get(&h.segment).is_some_and(|&len| h.offset <= len))
        .unwrap_or(Pos {
            segment: first,
            offset: 0,
        });
    if !segments.contains_key(&head.segment) {
        head = Pos {
            segment: first,
            offset: 0,
        };
    }
    let mut recovered = Recovered::default();
    for (&segment, _) in segments.range(head.segment..) {
        let from = if segment == head.segment {
            head.offset
        } else {
            0
        };
        let found = count_records(&segment_path(dir, segment), from)?;
        recovered.records += found.records;
        recovered.damaged += found.damaged;
    }
    let segment = last + 1;
    let file = create_segment(dir, segment)?;
    segments.insert(segment, 0);
    let end = Pos { segment, offset: 0 };
    let figures = Arc::new(SpoolFigures::default());
    figures.queued.store(recovered.records, Ordering::Relaxed);
    let shared = Arc::new(Shared {
        dir: dir.to_path_buf(),
        state: Mutex::new(State {
            head,
            end,
            segments,
            closed: false,
        }),
        appended: Condvar::new(),
        figures,
        max_bytes,
        _lock: lock,
    });
    {
        let mut state = shared.lock();
        // Segments behind the head are left from a crash between an ack and a delete.
        let head = state.head;
        state.head = Pos::default();
        shared.advance(&mut state, head);
    }
    let writer = SpoolWriter {
        shared: shared.clone(),
        name: format!("the spool {}", dir.display()),
        file,
        segment,
        len: 0,
        segment_bytes: (max_bytes / 8).clamp(1, MAX_SEGMENT_BYTES),
        broken: false,
        buffer: Vec::new(),
    };
    let reader = SpoolReader {
        shared,
        file: None,
        buffer: Vec::new(),
    };
    Ok((writer, reader, recovered))
}

fn context(e: io::Error, what: &str, dir: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", dir.display()))
}

fn create_segment(dir: &Path, segment: u64) -> io::Result<File> {
    let path = segment_path(dir, segment);
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| context(e, "cannot create the spool segment", &path))
}

/// Whole records, and damaged ones, in `path` from `from` on.
fn count_records(path: &Path, from: u64) -> io::Result<Recovered> {
    let mut bytes = Vec::new();
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(from))?;
    file.read_to_end(&mut bytes)?;
    let mut found = Recovered::default();
    for record in records(&bytes) {
        match record {
            Record::Line(..) => found.records += 1,
            Record::Damaged(_) | Record::Partial(_) => found.damaged += 1,
        }
    }
    Ok(found)
}

enum Record<'a> {
    /// A whole line, and the bytes its record takes.
    Line(&'a str, usize),
    Damaged(usize),
    /// The rest, with no newline: a torn write, or a record cut by the read.
    Partial(usize),
}

/// The records in `bytes`, which start at a record's start.
fn records(bytes: &[u8]) -> impl Iterator<Item = Record<'_>> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let Some(newline) = memchr::memchr(b'\n', rest) else {
            let len = rest.len();
            rest = &[];
            return Some(Record::Partial(len));
        };
        let record = &rest[..newline];
        rest = &rest[newline + 1..];
        Some(match parse(record) {
            Some(line) => Record::Line(line, newline + 1),
            None => Record::Damaged(newline + 1),
        })
    })
}

fn parse(record: &[u8]) -> Option<&str> {
    if record.len() < PREFIX || record[PREFIX - 1] != b' ' {
        return None;
    }
    let crc = std::str::from_utf8(&record[..PREFIX - 1]).ok()?;
    let crc = u32::from_str_radix(crc, 16).ok()?;
    let line = &record[PREFIX..];
    (crc32fast::hash(line) == crc)
        .then(|| std::str::from_utf8(line).ok())
        .flatten()
}

/// The appending end: a [`super::Sink`] for the destination's [`super::Delivery`],
/// which holds lines in memory while the disk fails.
pub struct SpoolWriter {
    shared: Arc<Shared>,
    name: String,
    file: File,
    segment: u64,
    /// Bytes in the current segment.
    len: u64,
    segment_bytes: u64,
    /// A failed write left a torn record that could not be cut off: the next write
    /// starts a new segment.
    broken: bool,
    buffer: Vec<u8>,
}

impl SpoolWriter {
    pub fn figures(&self) -> Arc<SpoolFigures> {
        self.shared.figures.clone()
    }

    /// Nothing more comes: the reader sends what is left and stops.
    pub fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.appended.notify_all();
    }

    fn roll(&mut self) -> io::Result<()> {
        let segment = self.segment + 1;
        self.file = create_segment(&self.shared.dir, segment)?;
        self.segment = segment;
        self.len = 0;
        self.broken = false;
        let mut state = self.shared.lock();
        state.segments.insert(segment, 0);
        state.end = Pos { segment, offset: 0 };
        Ok(())
    }

    /// Appends and syncs `lines`; on an error, how many went in whole.
    fn append(&mut self, lines: &[Line]) -> Result<(), Stopped> {
        if self.broken || self.len >= self.segment_bytes {
            self.roll().map_err(|error| Stopped {
                delivered: 0,
                error,
            })?;
        }
        self.buffer.clear();
        let mut ends = Vec::with_capacity(lines.len());
        for line in lines {
            let text = line.text.as_bytes();
            write!(self.buffer, "{:08x} ", crc32fast::hash(text)).expect("to a Vec");
            self.buffer.extend_from_slice(text);
            self.buffer.push(b'\n');
            ends.push(self.buffer.len());
        }
        let mut written = 0;
        let result = super::stream::write_all(&mut self.file, &self.buffer, &mut written)
            .and_then(|()| self.file.sync_data());
        let whole = match &result {
            Ok(()) => lines.len(),
            Err(_) => ends.iter().take_while(|&&end| end <= written).count(),
        };
        let whole_bytes = whole.checked_sub(1).map_or(0, |i| ends[i]) as u64;
        if result.is_err() && written as u64 > whole_bytes {
            // Cut the torn record off, or never write after it.
            self.broken = self.file.set_len(self.len + whole_bytes).is_err();
        }
        self.len += whole_bytes;
        self.appended(whole as u64);
        result.map_err(|error| Stopped {
            delivered: whole,
            error,
        })
    }

    fn appended(&mut self, records: u64) {
        if records == 0 {
            return;
        }
        let shared = &self.shared;
        let mut state = shared.lock();
        state.end = Pos {
            segment: self.segment,
            offset: self.len,
        };
        state.segments.insert(self.segment, self.len);
        shared.figures.queued.fetch_add(records, Ordering::Relaxed);
        shared.publish(&state);
        self.drop_oldest(&mut state);
        drop(state);
        shared.appended.notify_all();
    }

    /// Over the cap: the oldest segments go, never the one being written.
    fn drop_oldest(&self, state: &mut State) {
        let shared = &self.shared;
        while shared.figures.bytes.load(Ordering::Relaxed) > shared.max_bytes
            && state.head.segment < self.segment
        {
            let head = state.head;
            let path = shared.segment_path(head.segment);
            let lost = count_records(&path, head.offset).map_or(0, |found| found.records);
            let len = state.segments.get(&head.segment).copied().unwrap_or(0);
            shared.figures.dropped.fetch_add(lost, Ordering::Relaxed);
            sub(&shared.figures.queued, lost);
            shared.advance(
                state,
                Pos {
                    segment: head.segment,
                    offset: len,
                },
            );
            if state.head == head {
                break;
            }
        }
    }
}

fn sub(figure: &AtomicU64, n: u64) {
    let _ = figure.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(n))
    });
}

impl super::Sink for SpoolWriter {
    fn name(&self) -> &str {
        &self.name
    }

    fn write(&mut self, lines: &[Line]) -> Result<(), Stopped> {
        if lines.is_empty() {
            return Ok(());
        }
        self.append(lines)
    }
}

/// A spooled line on its way out, and where its record ends.
#[derive(Debug)]
pub struct Spooled {
    pub line: Line,
    pub end: Pos,
}

/// The reading end, for the thread that sends.
pub struct SpoolReader {
    shared: Arc<Shared>,
    /// The segment open for reading.
    file: Option<(u64, File)>,
    buffer: Vec<u8>,
}

/// What [`SpoolReader::wait`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Waited {
    /// Records after the cursor.
    More,
    /// Nothing yet.
    Nothing,
    /// Nothing, and nothing more will come.
    Closed,
}

impl SpoolReader {
    /// Where the first record not acknowledged starts: sending starts (again) here.
    pub fn head(&self) -> Pos {
        self.shared.lock().head
    }

    pub fn figures(&self) -> Arc<SpoolFigures> {
        self.shared.figures.clone()
    }

    /// Waits up to `timeout` for records after `cursor`.
    pub fn wait(&self, cursor: Pos, timeout: Duration) -> Waited {
        let state = self.shared.lock();
        let (state, _) = self
            .shared
            .appended
            .wait_timeout_while(state, timeout, |s| s.end <= cursor.max(s.head) && !s.closed)
            .unwrap_or_else(|e| e.into_inner());
        if state.end > cursor.max(state.head) {
            Waited::More
        } else if state.closed {
            Waited::Closed
        } else {
            Waited::Nothing
        }
    }

    /// Whether the writer has finished: nothing more comes.
    pub fn closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// Whether every record is acknowledged.
    pub fn empty(&self) -> bool {
        let state = self.shared.lock();
        state.head >= state.end
    }

    /// Up to `max_lines` lines (and about `max_bytes`) after `cursor`, which moves past
    /// them; damaged records are skipped.
    pub fn read(
        &mut self,
        cursor: &mut Pos,
        max_lines: usize,
        max_bytes: usize,
    ) -> io::Result<Vec<Spooled>> {
        let mut out = Vec::new();
        let mut bytes = 0;
        while out.len() < max_lines && bytes < max_bytes {
            let Some(until) = self.readable(cursor) else {
                break;
            };
            let left = until - cursor.offset;
            let mut want = left.min(max_bytes as u64);
            let used = loop {
                self.read_at(*cursor, want as usize)?;
                let at_end = self.buffer.len() as u64 >= left;
                let mut used = 0;
                for record in records(&self.buffer) {
                    match record {
                        Record::Line(text, len) => {
                            used += len;
                            bytes += text.len();
                            out.push(Spooled {
                                line: Line {
                                    text: text.to_string(),
                                    counted: true,
                                },
                                end: Pos {
                                    segment: cursor.segment,
                                    offset: cursor.offset + used as u64,
                                },
                            });
                            if out.len() == max_lines {
                                break;
                            }
                        }
                        Record::Damaged(len) => used += len,
                        // Cut by the read size: read whole next time. At the end of
                        // what was written, a torn write: skipped.
                        Record::Partial(len) if at_end => used += len,
                        Record::Partial(_) => break,
                    }
                }
                if used > 0 || at_end {
                    break used;
                }
                // One record longer than `max_bytes`.
                want = (want * 2).min(left);
            };
            cursor.offset += used as u64;
        }
        Ok(out)
    }

    /// Moves `cursor` to where the next record can be read (past what the spool
    /// dropped, into the next segment) and returns the offset in its segment up to
    /// which there are whole records; `None` when there is nothing after it.
    fn readable(&self, cursor: &mut Pos) -> Option<u64> {
        let state = self.shared.lock();
        loop {
            if *cursor < state.head {
                *cursor = state.head;
            }
            let len = *state.segments.get(&cursor.segment)?;
            let until = if cursor.segment == state.end.segment {
                state.end.offset
            } else {
                len
            };
            if cursor.offset < until {
                return Some(until);
            }
            if cursor.segment >= state.end.segment {
                return None;
            }
            let (&next, _) = state.segments.range(cursor.segment + 1..).next()?;
            *cursor = Pos {
                segment: next,
                offset: 0,
            };
        }
    }

    fn read_at(&mut self, at: Pos, len: usize) -> io::Result<()> {
        if self.file.as_ref().is_none_or(|(s, _)| *s != at.segment) {
            let file = File::open(self.shared.segment_path(at.segment))?;
            self.file = Some((at.segment, file));
        }
        let (_, file) = self.file.as_mut().expect("opened above");
        file.seek(SeekFrom::Start(at.offset))?;
        self.buffer.clear();
        file.take(len as u64).read_to_end(&mut self.buffer)?;
        Ok(())
    }

    /// The destination holds `lines` (their records' ends, in order): they leave the
    /// spool. Those the spool dropped meanwhile (it was full) count as dropped only.
    pub fn ack(&self, ends: impl IntoIterator<Item = Pos>) {
        let mut state = self.shared.lock();
        let mut last = None;
        let mut sent = 0;
        for end in ends {
            if end > state.head {
                sent += 1;
                last = Some(end);
            }
        }
        let figures = &self.shared.figures;
        figures.sent.fetch_add(sent, Ordering::Relaxed);
        sub(&figures.queued, sent);
        if let Some(last) = last {
            self.shared.advance(&mut state, last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::Sink;

    const DEFAULT_MAX_BYTES: u64 = 256 << 20;

    fn lines(range: std::ops::Range<u32>) -> Vec<Line> {
        range
            .map(|n| Line {
                text: format!(r#"{{"kind":"alert","n":{n}}}"#),
                counted: true,
            })
            .collect()
    }

    fn numbers(spooled: &[Spooled]) -> Vec<u32> {
        spooled
            .iter()
            .map(|s| {
                let v: serde_json::Value = serde_json::from_str(&s.line.text).unwrap();
                v["n"].as_u64().unwrap() as u32
            })
            .collect()
    }

    /// Reads everything after the head.
    fn pending(reader: &mut SpoolReader) -> Vec<Spooled> {
        let mut cursor = reader.head();
        reader.read(&mut cursor, usize::MAX, 1 << 20).unwrap()
    }

    #[test]
    fn lines_come_back_in_order_and_an_ack_removes_them_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, mut reader, recovered) = open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(recovered, Recovered::default());
        writer.write(&lines(0..5)).unwrap();
        let read = pending(&mut reader);
        assert_eq!(numbers(&read), [0, 1, 2, 3, 4]);
        reader.ack(read.iter().take(2).map(|s| s.end));
        assert_eq!(reader.figures().queued.load(Ordering::Relaxed), 3);
        assert_eq!(reader.figures().sent.load(Ordering::Relaxed), 2);
        drop((writer, reader));
        let (_writer, mut reader, recovered) = open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(recovered.records, 3);
        assert_eq!(numbers(&pending(&mut reader)), [2, 3, 4]);
    }

    #[test]
    fn a_second_user_of_the_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
        let error = open(dir.path(), DEFAULT_MAX_BYTES).err().unwrap();
        assert!(
            error.to_string().contains("in use by another spawnwatch"),
            "{error}"
        );
    }

    /// A kill -9 in the middle of a write leaves half a record; a power loss, zeros.
    /// Both are skipped and counted; every whole record before and after is read.
    #[test]
    fn torn_and_damaged_records_are_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut writer, _reader, _) = open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
            writer.write(&lines(0..3)).unwrap();
        }
        let first = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&first).unwrap();
        // Flip a byte of the second record's line, and tear a fourth record.
        let second = bytes.iter().position(|&b| b == b'\n').unwrap() + 1 + PREFIX + 3;
        bytes[second] ^= 0x20;
        bytes.extend_from_slice(b"0badc0de {\"kind\":\"al");
        fs::write(&first, &bytes).unwrap();
        let (mut writer, mut reader, recovered) = open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(
            recovered,
            Recovered {
                records: 2,
                damaged: 2
            }
        );
        writer.write(&lines(3..5)).unwrap();
        assert_eq!(numbers(&pending(&mut reader)), [0, 2, 3, 4]);
    }

    #[test]
    fn a_damaged_acked_file_sends_everything_again() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut writer, mut reader, _) = open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
            writer.write(&lines(0..3)).unwrap();
            let read = pending(&mut reader);
            reader.ack(read.iter().take(1).map(|s| s.end));
        }
        fs::write(dir.path().join("acked"), "garbage").unwrap();
        let (_writer, mut reader, _) = open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(numbers(&pending(&mut reader)), [0, 1, 2]);
    }

    #[test]
    fn a_full_spool_drops_its_oldest_segment_and_counts_it() {
        let dir = tempfile::tempdir().unwrap();
        // Segments of 1/8 of 2,000 bytes: about 8 records of 30 bytes each.
        let (mut writer, mut reader, _) = open(dir.path(), 2_000).unwrap();
        for n in 0..200 {
            writer.write(&lines(n..n + 1)).unwrap();
        }
        let figures = reader.figures();
        let dropped = figures.dropped.load(Ordering::Relaxed);
        let left = numbers(&pending(&mut reader));
        assert!(dropped > 0);
        assert_eq!(
            left.len() as u64 + dropped,
            200,
            "every record kept or counted"
        );
        assert_eq!(
            left,
            (dropped as u32..200).collect::<Vec<_>>(),
            "the oldest went"
        );
        assert!(figures.bytes.load(Ordering::Relaxed) <= 2_000);
        assert_eq!(figures.queued.load(Ordering::Relaxed), left.len() as u64);
        let on_disk: u64 = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(on_disk <= 2_000 + 400, "{on_disk} bytes on disk");
    }

    #[test]
    fn a_reader_follows_the_writer_across_segments_and_waits_for_more() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, mut reader, _) = open(dir.path(), 4_000).unwrap();
        let mut cursor = reader.head();
        assert_eq!(reader.wait(cursor, Duration::ZERO), Waited::Nothing);
        let mut got = Vec::new();
        for n in 0..100 {
            writer.write(&lines(n..n + 1)).unwrap();
            assert_eq!(reader.wait(cursor, Duration::ZERO), Waited::More);
            let read = reader.read(&mut cursor, 3, 1 << 20).unwrap();
            reader.ack(read.iter().map(|s| s.end));
            got.extend(numbers(&read));
        }
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert!(reader.empty());
        writer.close();
        assert_eq!(reader.wait(cursor, Duration::ZERO), Waited::Closed);
        let segments = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension() == Some("seg".as_ref()))
            .count();
        assert_eq!(segments, 1, "acknowledged segments are removed");
    }
}
