//! EVTX files through the `evtx` crate: each record rendered to JSON (the nested
//! `{"Event":{"System":..,"EventData":..}}` form) and mapped like a JSON line. Chunks are
//! parsed on the crate's worker threads; a damaged chunk or record becomes a `Malformed`
//! item and the file goes on. A file cut short mid-chunk (which the crate passes over
//! silently) has its last, partial chunk read here: the records before the cut are kept
//! and the cut is reported.

use super::fields::{Doc, Key};
use super::jsonl::label_item;
use super::prefilter::Prefilter;
use super::windows_event::map_windows;
use crate::record::{Location, Origin, ReadItem};
use chrono::{DateTime, Utc};
use evtx::err::EvtxError;
use evtx::{EvtxChunkData, EvtxParser, EvtxRecord, ParserSettings};
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

const FILE_HEADER_SIZE: u64 = 4096;
const CHUNK_SIZE: u64 = 65536;
const CHUNK_HEADER_SIZE: u64 = 512;

/// An in-memory EVTX (an archive entry, stdin) that the parser and the tail check share.
#[derive(Clone)]
pub(crate) struct SharedBuf(pub(crate) Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBuf {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// An EVTX file whose header has been read.
pub(crate) struct EvtxInput<R: Read + Seek> {
    parser: EvtxParser<R>,
    /// A second handle on the same bytes, to look at the end of the file.
    tail: R,
    declared_chunks: u16,
}

fn settings() -> ParserSettings {
    ParserSettings::new()
        .num_threads(0)
        .indent(false)
        .separate_json_attributes(false)
}

/// Reads the file header. Fails when there is none to read (a file shorter than it).
pub(crate) fn open<R: Read + Seek>(reader: R, tail: R) -> Result<EvtxInput<R>, String> {
    let parser = EvtxParser::from_read_seek(reader).map_err(|e| error_chain(&e))?;
    let declared_chunks = parser.header().chunk_count;
    Ok(EvtxInput {
        parser: parser.with_configuration(settings()),
        tail,
        declared_chunks,
    })
}

/// Pushes every record of `input` into `sink` in file order; false when the sink is
/// gone. `label` is set for archive entries and prefixed to messages.
pub(crate) fn read_evtx<R: Read + Seek>(
    input: EvtxInput<R>,
    file: Arc<str>,
    label: Option<Arc<str>>,
    sink: &mut dyn FnMut(ReadItem) -> bool,
) -> bool {
    let EvtxInput {
        mut parser,
        mut tail,
        declared_chunks,
    } = input;
    let prefilter = Arc::new(Prefilter::new());
    let mut last_id = None;
    let mut push = |result: Result<(u64, ReadItem), Failure>, last_id: &mut Option<u64>| {
        let item = match result {
            Ok((id, item)) => {
                *last_id = Some(id);
                item
            }
            Err(e) => malformed(&e, *last_id),
        };
        sink(label_item(item, label.as_deref()))
    };
    {
        let file = file.clone();
        let prefilter = prefilter.clone();
        let records =
            parser.serialized_records(move |record| map_record(record, &file, &prefilter));
        for result in records {
            if !push(result.map_err(Failure::Evtx), &mut last_id) {
                return false;
            }
        }
    }
    for result in read_tail(&mut tail, declared_chunks, &file, &prefilter) {
        if !push(result, &mut last_id) {
            return false;
        }
    }
    true
}

/// One record to an item; runs on the parser's worker threads.
fn map_record(
    record: Result<EvtxRecord<'_>, EvtxError>,
    file: &Arc<str>,
    prefilter: &Prefilter,
) -> Result<(u64, ReadItem), EvtxError> {
    let record = record?;
    let id = record.event_record_id;
    let header_time = i64::try_from(record.timestamp.as_nanosecond())
        .ok()
        .map(DateTime::<Utc>::from_timestamp_nanos);
    let json = record.into_json_bytes()?.data;
    let location = Location::Record(id);
    if !prefilter.keep(&json) {
        return Ok((id, ReadItem::Skipped));
    }
    let mapped = Doc::parse_then(&json, |doc| {
        if doc.get(Key::EventId).is_none() {
            return ReadItem::Skipped;
        }
        // The event's own EventRecordID names it as Event Viewer, SIEMs and the Sigma
        // hunters do; the record header's number differs in exported logs.
        let location = match doc.number(Key::EventRecordId) {
            Ok(Some(event_record_id)) => Location::Record(event_record_id),
            _ => location,
        };
        let origin = Origin {
            kind: "replay",
            file: Some(file.clone()),
            location,
        };
        map_windows(doc, origin, header_time)
    });
    let item = match mapped {
        Ok(item) => item,
        Err(e) => ReadItem::Malformed {
            kind: "evtx-record",
            location,
            message: format!("record {id} rendered as unreadable JSON: {e}"),
        },
    };
    Ok((id, item))
}

/// What went wrong with a record or chunk.
enum Failure {
    Evtx(EvtxError),
    /// The file ends early (found here, not by the parser).
    Cut(String),
}

/// A failure as an item: at the record it names, else just after the last record read
/// (a chunk-level error names no record).
fn malformed(failure: &Failure, last_id: Option<u64>) -> ReadItem {
    let after_last = last_id.map_or(1, |id| id + 1);
    let (id, message) = match failure {
        Failure::Evtx(e @ EvtxError::FailedToParseRecord { record_id, .. }) => {
            (*record_id, error_chain(e))
        }
        Failure::Evtx(e) => (after_last, error_chain(e)),
        Failure::Cut(message) => (after_last, message.clone()),
    };
    ReadItem::Malformed {
        kind: "evtx-record",
        location: Location::Record(id),
        message,
    }
}

/// An error with its causes: the `evtx` crate's top-level messages say little.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// The crate reads whole chunks only and stops quietly at a partial one. Reads that
/// partial chunk (padded with zeros) for the records before the cut, and reports the cut;
/// reports a file that ends on a chunk boundary before the chunk count its header
/// declares.
fn read_tail<R: Read + Seek>(
    tail: &mut R,
    declared_chunks: u16,
    file: &Arc<str>,
    prefilter: &Prefilter,
) -> Vec<Result<(u64, ReadItem), Failure>> {
    let cut = |message: String| vec![Err(Failure::Cut(message))];
    let len = match tail.seek(SeekFrom::End(0)) {
        Ok(len) => len,
        Err(e) => return cut(format!("cannot check the end of the file: {e}")),
    };
    let body = len.saturating_sub(FILE_HEADER_SIZE);
    let (whole, partial) = (body / CHUNK_SIZE, body % CHUNK_SIZE);
    if partial == 0 {
        if whole < u64::from(declared_chunks) {
            return cut(format!(
                "the file is truncated: its header declares {declared_chunks} chunks, it holds {whole}"
            ));
        }
        return Vec::new();
    }
    let mut data = Vec::new();
    let start = FILE_HEADER_SIZE + whole * CHUNK_SIZE;
    let read = tail
        .seek(SeekFrom::Start(start))
        .and_then(|_| tail.by_ref().take(partial).read_to_end(&mut data));
    if let Err(e) = read {
        return cut(format!("cannot read the last, partial chunk: {e}"));
    }
    if data.iter().all(|&b| b == 0) {
        return Vec::new();
    }
    let what = format!(
        "the file is truncated: chunk {whole} (file offset {start:#x}) ends after {partial} of its {CHUNK_SIZE} bytes"
    );
    if partial < CHUNK_HEADER_SIZE {
        return cut(format!("{what}, inside its header: its records are lost"));
    }
    data.resize(CHUNK_SIZE as usize, 0);
    let mut chunk = match EvtxChunkData::new(data, false) {
        Ok(chunk) => chunk,
        Err(e) => {
            return cut(format!(
                "{what}; its header is unreadable: {}",
                error_chain(&e)
            ))
        }
    };
    let mut chunk = match chunk.parse(Arc::new(settings())) {
        Ok(chunk) => chunk,
        Err(e) => return cut(format!("{what}; {}", error_chain(&e))),
    };
    let mut out: Vec<_> = chunk
        .iter()
        .map(|record| map_record(record, file, prefilter).map_err(Failure::Evtx))
        .collect();
    out.extend(cut(format!("{what}: records past the cut are lost")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Action;
    use crate::source::replay::tests::events;

    fn data(name: &str) -> String {
        format!("{}/../../shared/data/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    fn read_bytes(bytes: Vec<u8>) -> Vec<ReadItem> {
        let shared = SharedBuf(Arc::new(bytes));
        let input = open(
            std::io::Cursor::new(shared.clone()),
            std::io::Cursor::new(shared),
        )
        .unwrap();
        let mut items = Vec::new();
        assert!(read_evtx(input, "t.evtx".into(), None, &mut |item| {
            items.push(item);
            true
        }));
        items
    }

    #[test]
    fn sysmon_webshell_sample() {
        let items = read_bytes(
            std::fs::read(data("LM_typical_IIS_webshell_sysmon_1_10_traces.evtx")).unwrap(),
        );
        assert_eq!(items.len(), 4);
        let events = events(&items);
        let shell = events
            .iter()
            .find(|e| e.parent.exe.as_deref() == Some("w3wp.exe"))
            .expect("a child of w3wp.exe");
        assert_eq!(shell.action, Action::Create);
        assert_eq!(shell.process.exe.as_deref(), Some("cmd.exe"));
        assert!(shell.timestamp.is_some());
        assert!(shell.hostname.is_some());
        assert!(matches!(shell.origin.location, Location::Record(_)));
        assert_eq!(shell.origin.file.as_deref(), Some("t.evtx"));
    }

    #[test]
    fn events_are_named_by_their_event_record_id() {
        // An exported log: the record headers count from 1, the events keep their ids.
        let path = format!(
            "{}/../../shared/evtx-attack-samples/Lateral Movement/LM_sysmon_psexec_smb_meterpreter.evtx",
            env!("CARGO_MANIFEST_DIR")
        );
        let items = read_bytes(std::fs::read(path).unwrap());
        let first = events(&items)[0];
        assert_eq!(first.origin.location, Location::Record(9807));
    }

    #[test]
    fn truncated_copy_keeps_the_records_before_the_cut() {
        let whole = std::fs::read(data("ID4688-Tchopper-obfuscated-payload.evtx")).unwrap();
        let full = events(&read_bytes(whole.clone())).len();
        for cut in [
            FILE_HEADER_SIZE + 3 * CHUNK_SIZE + 30_000,
            FILE_HEADER_SIZE + 3 * CHUNK_SIZE + 100,
            FILE_HEADER_SIZE + 3 * CHUNK_SIZE,
        ] {
            let items = read_bytes(whole[..cut as usize].to_vec());
            let malformed = items
                .iter()
                .filter(|i| {
                    matches!(
                        i,
                        ReadItem::Malformed {
                            kind: "evtx-record",
                            ..
                        }
                    )
                })
                .count();
            assert!(malformed >= 1, "cut at {cut}: no malformed item");
            let kept = events(&items).len();
            assert!(kept > 0 && kept < full, "cut at {cut}: {kept} of {full}");
        }
    }

    #[test]
    fn a_damaged_chunk_is_reported_and_the_rest_read() {
        let mut bytes = std::fs::read(data("ID4688-Tchopper-obfuscated-payload.evtx")).unwrap();
        let full = events(&read_bytes(bytes.clone())).len();
        // Garble the middle of chunk 2's records.
        let at = (FILE_HEADER_SIZE + 2 * CHUNK_SIZE + 20_000) as usize;
        for b in &mut bytes[at..at + 4_000] {
            *b = 0xA5;
        }
        let items = read_bytes(bytes);
        assert!(items.iter().any(|i| matches!(
            i,
            ReadItem::Malformed {
                kind: "evtx-record",
                ..
            }
        )));
        let kept = events(&items).len();
        assert!(kept > full / 2 && kept < full, "{kept} of {full}");
    }
}
