//! Zip archives: entries read in order, in place, each detected like a file. JSON (and
//! a .gz or .zst of it) streams out of the decompressor; an EVTX entry, or a zip inside
//! the zip, is unpacked to a temporary file first (its reader seeks). No entry is read
//! past a cap.

use super::evtx as evtx_reader;
use super::json_values::ValueCutter;
use super::jsonl::{JsonRecords, LineCutter};
use super::producer::Sink;
use super::spill::{spill, Capped};
use super::{first_bytes, named_binary, peek, sniff, Format, EMPTY_BINARY, MAX_COMPRESSIONS};
use crate::record::{Location, ReadItem};
use std::io::{Cursor, Read, Seek};
use std::path::Path;
use std::sync::Arc;
use zip::ZipArchive;

/// How deep zips inside zips are opened.
const MAX_DEPTH: u32 = 3;

/// Whether an entry is one a user did not mean as data: a hidden file or a macOS
/// resource fork.
fn hidden(entry: &str) -> bool {
    entry.starts_with("__MACOSX/") || super::file_name_of(entry).starts_with('.')
}

/// Pushes the records of every entry, none unpacked past `cap` bytes; false once the
/// sink is gone.
pub(crate) fn read_zip<R: Read + Seek + Send>(
    archive: &mut ZipArchive<R>,
    archive_name: &str,
    depth: u32,
    cap: u64,
    sink: &mut Sink,
) -> bool {
    for index in 0..archive.len() {
        // Problems with one entry are reported at its number in the archive.
        let location = Location::Record(index as u64 + 1);
        let mut report = |sink: &mut Sink, message: String| {
            sink.push(ReadItem::Malformed {
                kind: "zip-entry",
                location,
                message,
            })
        };
        let entry = match archive.by_index(index) {
            Ok(entry) => entry,
            Err(e) => {
                if !report(sink, format!("{archive_name}: entry {}: {e}", index + 1)) {
                    return false;
                }
                continue;
            }
        };
        if entry.is_dir() || hidden(entry.name()) {
            continue;
        }
        let label: Arc<str> = format!("{archive_name}!{}", entry.name()).into();
        let mut entry = Capped::new(entry, cap);
        let going_on = read_entry(&mut entry, &label, depth, cap, 0, sink, &mut report);
        if !going_on {
            return false;
        }
    }
    true
}

/// Pushes the records of one entry (or of what it decompresses to), detected like a
/// file; false once the sink is gone. `compressions`: how many decompressors `reader`
/// already is.
fn read_entry(
    mut reader: &mut (dyn Read + Send),
    label: &Arc<str>,
    depth: u32,
    cap: u64,
    compressions: u32,
    sink: &mut Sink,
    report: &mut dyn FnMut(&mut Sink, String) -> bool,
) -> bool {
    let prefix = match peek(&mut reader) {
        Ok(prefix) => prefix,
        Err(e) => return report(sink, format!("{label}: cannot read: {e}")),
    };
    match sniff(&prefix) {
        Format::JsonLines if prefix.is_empty() && named_binary(Path::new(&**label)) => {
            report(sink, format!("{label}: {EMPTY_BINARY}"))
        }
        Format::JsonLines => {
            let cutter = LineCutter::new(Cursor::new(prefix).chain(reader));
            push_all(
                JsonRecords::new(cutter, label.clone(), Some(label.clone())),
                sink,
            )
        }
        Format::JsonValues => {
            let cutter = ValueCutter::new(Cursor::new(prefix).chain(reader));
            push_all(
                JsonRecords::new(cutter, label.clone(), Some(label.clone())),
                sink,
            )
        }
        Format::Compressed(_) if compressions >= MAX_COMPRESSIONS => report(
            sink,
            format!("{label}: compressed more than {MAX_COMPRESSIONS} times over; not read"),
        ),
        Format::Compressed(compression) => {
            let mut inner = compression.decompress(Cursor::new(prefix).chain(reader));
            read_entry(
                &mut inner,
                label,
                depth,
                cap,
                compressions + 1,
                sink,
                report,
            )
        }
        Format::Evtx => match spill(&prefix, &mut reader, cap) {
            Ok(file) => match evtx_reader::open_file(file) {
                Ok(input) => {
                    evtx_reader::read_evtx(input, label.clone(), Some(label.clone()), &mut |item| {
                        sink.push(item)
                    })
                }
                Err(e) => report(sink, format!("{label}: not a readable EVTX file: {e}")),
            },
            Err(e) => report(sink, format!("{label}: {e}")),
        },
        Format::Zip if depth >= MAX_DEPTH => report(
            sink,
            format!("{label}: a zip nested more than {MAX_DEPTH} deep, not opened"),
        ),
        Format::Zip => match spill(&prefix, &mut reader, cap) {
            Ok(file) => match ZipArchive::new(file) {
                Ok(mut inner) => read_zip(&mut inner, label, depth + 1, cap, sink),
                Err(e) => report(sink, format!("{label}: not a readable zip archive: {e}")),
            },
            Err(e) => report(sink, format!("{label}: {e}")),
        },
        Format::Unknown => report(
            sink,
            format!(
                "{label}: not EVTX, JSON or a zip of them (first bytes: {}); entry skipped",
                first_bytes(&prefix)
            ),
        ),
    }
}

/// Pushes every item; false once the sink is gone.
fn push_all(items: impl Iterator<Item = ReadItem>, sink: &mut Sink) -> bool {
    for item in items {
        if !sink.push(item) {
            return false;
        }
    }
    true
}
