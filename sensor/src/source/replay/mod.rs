//! Recorded logs to process events: EVTX (Sysmon 1/5, Security 4688/4689), JSON (flat
//! or nested Windows events, Azure Monitor's WindowsEvent and Event tables, Winlogbeat /
//! ECS documents, spawnwatch's own `--record` lines; one a line, pretty-printed or in
//! arrays), zips of them, and any of these compressed (gzip, Zstandard).
//!
//! [`expand`] turns the command line into [`Input`]s (a path that cannot be opened is an
//! error in its place); [`read`] detects each one's format from its first bytes (JSON
//! lines also when only the lines after the first are objects) and yields its records in
//! file order as [`ReadItem`]s.
//! [`spawnwatch_line::to_event_line`] writes the lines `--record` saves and replay reads.

mod archive;
mod compressed;
mod ecs;
mod embedded;
mod evtx;
mod fields;
mod flat_json;
mod json_values;
mod jsonl;
mod jsonl_pool;
mod prefilter;
mod producer;
pub mod spawnwatch_line;
mod spill;
mod time;
mod windows_event;

use crate::pipeline::JobQueue;
use crate::record::ReadItem;
use compressed::Compression;
use json_values::{Envelope, ValueCutter};
use jsonl::LineCutter;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zip::ZipArchive;

/// One thing to read: a file (a zip counts as one input whose entries are read in
/// order) or stdin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    source: Source,
    name: Arc<str>,
    /// Found by walking a directory rather than named on the command line: a file that is
    /// plainly not a log is passed over rather than reported.
    walked: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Source {
    Path(PathBuf),
    Stdin,
}

impl Input {
    pub fn file(path: impl Into<PathBuf>) -> Input {
        let path = path.into();
        Input {
            name: path.display().to_string().into(),
            source: Source::Path(path),
            walked: false,
        }
    }

    fn walked(path: PathBuf) -> Input {
        Input {
            walked: true,
            ..Input::file(path)
        }
    }

    pub fn stdin() -> Input {
        Input {
            source: Source::Stdin,
            name: "<stdin>".into(),
            walked: false,
        }
    }

    /// The name messages and event origins use: the path as given, or `<stdin>`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// An error that stops one input, with a message that names it and says what to do.
#[derive(Debug)]
pub struct ReplayError {
    name: String,
    what: String,
    /// A file found in a directory that is plainly not a log (a README, a checksum list):
    /// counted, not reported.
    not_a_log: bool,
}

impl ReplayError {
    fn new(name: &str, what: impl fmt::Display) -> ReplayError {
        ReplayError {
            name: name.to_string(),
            what: what.to_string(),
            not_a_log: false,
        }
    }

    /// The input it is about.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this is a file a directory walk found that is plainly not a log, to be
    /// counted rather than reported.
    pub fn passed_over(&self) -> bool {
        self.not_a_log
    }
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.what)
    }
}

impl std::error::Error for ReplayError {}

/// Expands the command-line arguments: files as given, directories walked recursively
/// (entries sorted by name, hidden files and directories skipped, symlinks to
/// directories not followed), `-` = stdin. A path that cannot be opened is an error in
/// its place, and the others are still expanded.
pub fn expand(args: &[PathBuf]) -> Vec<Result<Input, ReplayError>> {
    let mut inputs = Vec::new();
    for arg in args {
        if arg.as_os_str() == "-" {
            inputs.push(Ok(Input::stdin()));
            continue;
        }
        match fs::metadata(arg) {
            Ok(metadata) if metadata.is_dir() => walk(arg, &mut inputs),
            Ok(_) => inputs.push(Ok(Input::file(arg))),
            Err(e) => inputs.push(Err(cannot_open(arg, &e))),
        }
    }
    inputs
}

fn cannot_open(path: &Path, e: &io::Error) -> ReplayError {
    ReplayError::new(
        &path.display().to_string(),
        format_args!("cannot open: {e}; check the path and that it is readable"),
    )
}

fn walk(dir: &Path, inputs: &mut Vec<Result<Input, ReplayError>>) {
    let entries = fs::read_dir(dir).and_then(|entries| entries.collect::<io::Result<Vec<_>>>());
    let mut entries = match entries {
        Ok(entries) => entries,
        Err(e) => return inputs.push(Err(cannot_open(dir, &e))),
    };
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        if entry.file_name().as_encoded_bytes().first() == Some(&b'.') {
            continue;
        }
        let path = entry.path();
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => walk(&path, inputs),
            Ok(kind) if kind.is_file() || (kind.is_symlink() && path.is_file()) => {
                inputs.push(Ok(Input::walked(path)));
            }
            Ok(_) => {}
            Err(e) => inputs.push(Err(cannot_open(&path, &e))),
        }
    }
}

/// The records of one input, in file order.
pub type Items = Box<dyn Iterator<Item = ReadItem> + Send>;

/// Opens one input, detects its format from its content (EVTX magic `ElfFile\0`, zip
/// `PK\x03\x04`, gzip and Zstandard magics, else JSON: lines, or pretty-printed
/// values and arrays) and yields its records in file order. JSON is parsed by `jobs`
/// (the pipeline's pool, and the thread iterating while it waits).
pub fn read(input: &Input, jobs: &JobQueue) -> Result<Items, ReplayError> {
    let name = input.name.clone();
    let unreadable = |e: io::Error| ReplayError::new(&name, format_args!("cannot read: {e}"));
    match &input.source {
        Source::Path(path) => {
            let mut file = File::open(path).map_err(|e| cannot_open(path, &e))?;
            let metadata = file.metadata().map_err(unreadable)?;
            // A pipe (`<(unzip -p ..)`) or a device cannot seek: read it like stdin.
            if !metadata.is_file() {
                return read_stream(file, name, jobs, 0);
            }
            if metadata.len() == 0 && named_binary(path) {
                return Err(ReplayError::new(&name, EMPTY_BINARY));
            }
            let prefix = peek(&mut file).map_err(unreadable)?;
            match sniff(&prefix) {
                Format::Evtx | Format::Zip => {
                    file.seek(SeekFrom::Start(0)).map_err(unreadable)?;
                    if sniff(&prefix) == Format::Evtx {
                        read_evtx(file, name)
                    } else {
                        read_zip(file, name)
                    }
                }
                Format::Unknown => {
                    let mut error = not_a_log(&name, &prefix);
                    error.not_a_log = input.walked && claimed_format(path).is_none();
                    Err(error)
                }
                _ => read_stream(Cursor::new(prefix).chain(file), name, jobs, 0),
            }
        }
        Source::Stdin => read_stream(io::stdin(), name, jobs, 0),
    }
}

/// What an empty input whose name claims EVTX or zip is: no log at all (an empty
/// JSON-lines file is an empty log).
pub(crate) const EMPTY_BINARY: &str =
    "empty (0 bytes): no log at all, not an empty one; it may have been cut short or not \
     copied whole";

/// Whether a name claims EVTX or zip.
pub(crate) fn named_binary(path: &Path) -> bool {
    matches!(claimed_format(path), Some(Format::Evtx | Format::Zip))
}

/// The format a file's extension claims, if any.
fn claimed_format(path: &Path) -> Option<Format> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    match extension.as_str() {
        "evtx" => Some(Format::Evtx),
        "zip" => Some(Format::Zip),
        "gz" => Some(Format::Compressed(Compression::Gzip)),
        "zst" => Some(Format::Compressed(Compression::Zstd)),
        "json" | "jsonl" | "ndjson" => Some(Format::JsonLines),
        _ => None,
    }
}

/// How many compressions deep a stream is unpacked (a `.gz` of a `.gz` is one more).
pub(crate) const MAX_COMPRESSIONS: u32 = 3;

/// Reads a stream that cannot seek (stdin, a decompressor): JSON streams through; a
/// compressed stream is decompressed and read again; an EVTX or a zip is copied to a
/// temporary file first. `compressions`: how many decompressors `reader` already is.
fn read_stream<R: Read + Send + 'static>(
    mut reader: R,
    name: Arc<str>,
    jobs: &JobQueue,
    compressions: u32,
) -> Result<Items, ReplayError> {
    let prefix =
        peek(&mut reader).map_err(|e| ReplayError::new(&name, format_args!("cannot read: {e}")))?;
    let format = sniff(&prefix);
    if format == Format::Unknown {
        return Err(not_a_log(&name, &prefix));
    }
    if let Format::Evtx | Format::Zip = format {
        let file = spill::spill(&prefix, &mut reader, spill::ENTRY_CAP)
            .map_err(|e| ReplayError::new(&name, e))?;
        return if format == Format::Evtx {
            read_evtx(file, name)
        } else {
            read_zip(file, name)
        };
    }
    let rest = Cursor::new(prefix).chain(reader);
    let pooled = match format {
        Format::Compressed(_) if compressions >= MAX_COMPRESSIONS => {
            return Err(ReplayError::new(
                &name,
                format_args!("compressed more than {MAX_COMPRESSIONS} times over; not read"),
            ))
        }
        Format::Compressed(compression) => {
            return read_stream(compression.decompress(rest), name, jobs, compressions + 1)
        }
        Format::JsonValues => jsonl_pool::read(ValueCutter::new(rest), name.clone(), jobs.clone()),
        _ => jsonl_pool::read(LineCutter::new(rest), name.clone(), jobs.clone()),
    };
    pooled.map_err(|e| no_thread(&name, &e))
}

fn no_thread(name: &str, e: &io::Error) -> ReplayError {
    ReplayError::new(name, format_args!("cannot start a reader thread: {e}"))
}

fn read_evtx(file: File, name: Arc<str>) -> Result<Items, ReplayError> {
    let input = evtx::open_file(file).map_err(|e| {
        ReplayError::new(
            &name,
            format_args!("cannot read the EVTX file header ({e}); the file may be cut short"),
        )
    })?;
    let file = name.clone();
    producer::spawn(&name, "evtx-record", move |sink| {
        evtx::read_evtx(input, file, None, &mut |item| sink.push(item));
    })
    .map_err(|e| no_thread(&name, &e))
}

fn read_zip(file: File, name: Arc<str>) -> Result<Items, ReplayError> {
    let mut archive = ZipArchive::new(file).map_err(|e| {
        ReplayError::new(
            &name,
            format_args!("not a readable zip archive ({e}); the file may be cut short or damaged"),
        )
    })?;
    let archive_name = name.clone();
    producer::spawn(&name, "zip-entry", move |sink| {
        archive::read_zip(&mut archive, &archive_name, 0, spill::ENTRY_CAP, sink);
    })
    .map_err(|e| no_thread(&name, &e))
}

fn not_a_log(name: &str, prefix: &[u8]) -> ReplayError {
    ReplayError::new(
        name,
        format_args!(
            "not EVTX, JSON or a zip of them (first bytes: {}); pass Sysmon or Security \
             event logs as .evtx files, JSON (one event object a line, pretty-printed \
             objects or an array of them), zips of them, or any of these as .gz or .zst",
            first_bytes(prefix)
        ),
    )
}

/// What an input's first bytes say it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Evtx,
    Zip,
    Compressed(Compression),
    /// One JSON object a line; also an empty or blank input.
    JsonLines,
    /// JSON values spread over lines: pretty-printed objects, an array of them,
    /// `evtx_dump`'s `Record N` output, envelopes around arrays of events.
    JsonValues,
    Unknown,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";
/// How much of an input whose first line is not a JSON object is read to look for JSON
/// lines after it (a capture cut mid-line, a garbage line at the top).
const SNIFF_WINDOW: usize = 64 << 10;
/// The most read to tell a format: a long blank start, or lines longer than the window.
const PEEK_MAX: usize = 1 << 20;

fn is_blank(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// `prefix` without a byte-order mark, from its first non-blank byte; `None` if blank.
fn text_of(prefix: &[u8]) -> Option<&[u8]> {
    let text = prefix.strip_prefix(BOM).unwrap_or(prefix);
    let first = text.iter().position(|b| !is_blank(b))?;
    Some(&text[first..])
}

/// The binary format whose magic `prefix` starts with.
fn magic(prefix: &[u8]) -> Option<Format> {
    if prefix.starts_with(b"ElfFile\0") {
        return Some(Format::Evtx);
    }
    if let Some(compression) = Compression::of(prefix) {
        return Some(Format::Compressed(compression));
    }
    // A local file header, or the end record of an empty archive.
    let zip = prefix.starts_with(b"PK\x03\x04") || prefix.starts_with(b"PK\x05\x06");
    zip.then_some(Format::Zip)
}

pub(crate) fn sniff(prefix: &[u8]) -> Format {
    if let Some(format) = magic(prefix) {
        return format;
    }
    let Some(text) = text_of(prefix) else {
        return Format::JsonLines;
    };
    let first_line = memchr::memchr(b'\n', text).map(|end| text[..end].trim_ascii());
    match (text[0], first_line) {
        (b'[', _) => Format::JsonValues,
        (b'{', _) if matches!(json_values::envelope(text), Envelope::Events { .. }) => {
            Format::JsonValues
        }
        // One line, or a first line that is a whole object: JSON lines.
        (b'{', None) => Format::JsonLines,
        (b'{', Some(line)) if whole_object(line) => Format::JsonLines,
        _ if json_lines_after_the_first(text) => Format::JsonLines,
        (b'{', Some(_)) => Format::JsonValues,
        (_, Some(line)) if json_values::record_header(line) => Format::JsonValues,
        _ => Format::Unknown,
    }
}

/// Whether a line is one whole JSON object.
fn whole_object(line: &[u8]) -> bool {
    line.starts_with(b"{")
        && line.ends_with(b"}")
        && serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok()
}

/// Whether the lines after a first line that is not a JSON object are JSON lines: at
/// least one of them is a JSON object, and no fewer of them are objects than are not
/// (a text file with a JSON example in it is not a log).
fn json_lines_after_the_first(text: &[u8]) -> bool {
    let (mut objects, mut others) = (0, 0);
    for line in text.split(|&b| b == b'\n').skip(1) {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let object =
            line.starts_with(b"{") && serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok();
        if object {
            objects += 1;
        } else {
            others += 1;
        }
    }
    objects > 0 && objects >= others
}

/// Whether `prefix` is enough to tell the format: 8 bytes (a magic) and the first
/// non-blank byte; a `[`, or a first line that is a whole object, tells at once;
/// otherwise the first [`SNIFF_WINDOW`] bytes and at least one whole line after the
/// first.
fn enough_to_sniff(prefix: &[u8]) -> bool {
    let Some(text) = text_of(prefix).filter(|_| prefix.len() >= 8) else {
        return false;
    };
    let first_line = memchr::memchr(b'\n', text).map(|end| text[..end].trim_ascii());
    text.starts_with(b"[")
        || first_line.is_some_and(whole_object)
        || magic(prefix).is_some()
        || (prefix.len() >= SNIFF_WINDOW && memchr::memchr_iter(b'\n', text).nth(1).is_some())
}

/// Reads enough of an input to tell its format (see [`enough_to_sniff`]), or all of it
/// when shorter, or at most [`PEEK_MAX`] bytes.
pub(crate) fn peek(reader: &mut impl Read) -> io::Result<Vec<u8>> {
    const STEP: usize = 8192;
    let mut prefix = Vec::new();
    loop {
        if enough_to_sniff(&prefix) || prefix.len() >= PEEK_MAX {
            return Ok(prefix);
        }
        let len = prefix.len();
        prefix.resize(len + STEP, 0);
        let n = loop {
            match reader.read(&mut prefix[len..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        match n {
            Ok(n) => {
                prefix.truncate(len + n);
                if n == 0 {
                    return Ok(prefix);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Up to 16 bytes in hex and as text, for "not a log" messages.
pub(crate) fn first_bytes(prefix: &[u8]) -> String {
    let head = &prefix[..prefix.len().min(16)];
    let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
    let text: String = head.escape_ascii().to_string();
    format!("{} \"{text}\"", hex.join(" "))
}

/// The last part of an archive entry's path.
pub(crate) fn file_name_of(entry: &str) -> &str {
    crate::record::file_name(entry)
}

#[cfg(test)]
mod tests;
