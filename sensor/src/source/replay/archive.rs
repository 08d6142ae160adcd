//! Zip archives: entries read in order, in place, each detected like a file. JSON lines
//! stream out of the decompressor; an EVTX entry, or a zip inside the zip, is unpacked
//! to a temporary file first (its reader seeks). No entry is read past a cap.

use super::evtx as evtx_reader;
use super::jsonl::JsonLines;
use super::producer::Sink;
use super::spill::{spill, Capped};
use super::{first_bytes, named_binary, peek, sniff, Format, EMPTY_BINARY};
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
pub(crate) fn read_zip<R: Read + Seek>(
    archive: &mut ZipArchive<R>,
    archive_name: &str,
    depth: u32,
    cap: u64,
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
        let entry = match archive.by_index(index) {
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
        let mut entry = Capped::new(entry, cap);
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
            Format::JsonLines if prefix.is_empty() && named_binary(Path::new(&*label)) => {
                report(format!("{label}: {EMPTY_BINARY}"))
            }
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
            Format::Evtx => match spill(&prefix, &mut entry, cap) {
                Ok(file) => match evtx_reader::open_file(file) {
                    Ok(input) => {
                        evtx_reader::read_evtx(input, label.clone(), Some(label), &mut |item| {
                            sink.push(item)
                        })
                    }
                    Err(e) => report(format!("{label}: not a readable EVTX file: {e}")),
                },
                Err(e) => report(format!("{label}: {e}")),
            },
            Format::Zip if depth >= MAX_DEPTH => report(format!(
                "{label}: a zip nested more than {MAX_DEPTH} deep, not opened"
            )),
            Format::Zip => match spill(&prefix, &mut entry, cap) {
                Ok(file) => match ZipArchive::new(file) {
                    Ok(mut inner) => read_zip(&mut inner, &label, depth + 1, cap, sink),
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
