//! Zip archives: entries read in order, in place, each detected like a file. JSON lines
//! stream out of the decompressor; an EVTX entry is buffered (the parser seeks), as is
//! a zip inside the zip.

use super::evtx::{self as evtx_reader, SharedBuf};
use super::jsonl::JsonLines;
use super::producer::Sink;
use super::{buffer_all, first_bytes, peek, sniff, Format};
use crate::record::{Location, ReadItem};
use std::io::{Cursor, Read, Seek};
use std::sync::Arc;
use zip::ZipArchive;

/// How deep zips inside zips are opened.
const MAX_DEPTH: u32 = 3;

/// Whether an entry is one a user did not mean as data: a hidden file or a macOS
/// resource fork.
fn hidden(entry: &str) -> bool {
    entry.starts_with("__MACOSX/") || super::file_name_of(entry).starts_with('.')
}

/// Pushes the records of every entry; false once the sink is gone.
pub(crate) fn read_zip<R: Read + Seek>(
    archive: &mut ZipArchive<R>,
    archive_name: &str,
    depth: u32,
    sink: &mut Sink,
) -> bool {
    for index in 0..archive.len() {
        // Problems with one entry are reported at its number in the archive.
        let location = Location::Record(index as u64 + 1);
        let mut report = |message: String| {
            sink.push(ReadItem::Malformed {
                kind: "zip-entry",
                location,
                message,
            })
        };
        let mut entry = match archive.by_index(index) {
            Ok(entry) => entry,
            Err(e) => {
                if !report(format!("{archive_name}: entry {}: {e}", index + 1)) {
                    return false;
                }
                continue;
            }
        };
        if entry.is_dir() || hidden(entry.name()) {
            continue;
        }
        let label: Arc<str> = format!("{archive_name}!{}", entry.name()).into();
        let prefix = match peek(&mut entry) {
            Ok(prefix) => prefix,
            Err(e) => {
                if !report(format!("{label}: cannot read: {e}")) {
                    return false;
                }
                continue;
            }
        };
        let going_on = match sniff(&prefix) {
            Format::JsonLines => {
                let lines = JsonLines::new(
                    Cursor::new(prefix).chain(&mut entry),
                    label.clone(),
                    Some(label),
                );
                let mut going_on = true;
                for item in lines {
                    if !sink.push(item) {
                        going_on = false;
                        break;
                    }
                }
                going_on
            }
            Format::Evtx => match buffer_all(prefix, &mut entry) {
                Ok(bytes) => {
                    let shared = SharedBuf(Arc::new(bytes));
                    match evtx_reader::open(Cursor::new(shared.clone()), Cursor::new(shared)) {
                        Ok(input) => {
                            evtx_reader::read_evtx(input, label.clone(), Some(label), &mut |item| {
                                sink.push(item)
                            })
                        }
                        Err(e) => report(format!("{label}: not a readable EVTX file: {e}")),
                    }
                }
                Err(e) => report(format!("{label}: {e}")),
            },
            Format::Zip if depth >= MAX_DEPTH => report(format!(
                "{label}: a zip nested more than {MAX_DEPTH} deep, not opened"
            )),
            Format::Zip => match buffer_all(prefix, &mut entry) {
                Ok(bytes) => match ZipArchive::new(Cursor::new(bytes)) {
                    Ok(mut inner) => read_zip(&mut inner, &label, depth + 1, sink),
                    Err(e) => report(format!("{label}: not a readable zip archive: {e}")),
                },
                Err(e) => report(format!("{label}: {e}")),
            },
            Format::Unknown => report(format!(
                "{label}: not EVTX, JSON lines or a zip of them (first bytes: {}); entry skipped",
                first_bytes(&prefix)
            )),
        };
        if !going_on {
            return false;
        }
    }
    true
}
