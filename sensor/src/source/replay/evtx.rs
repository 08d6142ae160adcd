//! EVTX files through the `evtx` crate: each record rendered to JSON (the nested
//! `{"Event":{"System":..,"EventData":..}}` form) and mapped like a JSON line. Chunks are
//! parsed on the crate's worker threads; a damaged chunk or record becomes a `Malformed`
//! item and the file goes on. Every chunk's header and records are checked against their
//! CRC32 checksums: the records of a chunk that fails are not replayed (a flipped byte
//! can change a command line) but each is counted as a `checksum` failure. A file cut
//! short mid-chunk (which the crate passes over silently) has its last, partial chunk
//! read here: the records before the cut are kept and the cut is reported.

use super::fields::{Doc, Key};
use super::jsonl::label_item;
use super::prefilter::Prefilter;
use super::windows_event::map_windows;
use crate::record::{Location, Origin, ReadItem};
use chrono::{DateTime, Utc};
use evtx::err::{ChunkError, EvtxError};
use evtx::{EvtxChunkData, EvtxParser, EvtxRecord, ParserSettings};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

const FILE_HEADER_SIZE: u64 = 4096;
const CHUNK_SIZE: u64 = 65536;
const CHUNK_HEADER_SIZE: u64 = 512;

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
        .validate_checksums(true)
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

/// [`open`] on a file, with a second handle for the tail.
pub(crate) fn open_file(file: File) -> Result<EvtxInput<File>, String> {
    let tail = file.try_clone().map_err(|e| e.to_string())?;
    open(file, tail)
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
            Err(e) => {
                if let Failure::Damaged { id: Some(id), .. } = e {
                    *last_id = Some(id);
                }
                malformed(&e, *last_id)
            }
        };
        sink(label_item(item, label.as_deref()))
    };
    {
        let file = file.clone();
        let prefilter = prefilter.clone();
        let records =
            parser.serialized_records(move |record| map_record(record, &file, &prefilter));
        for result in records {
            let going_on = match result {
                Err(EvtxError::FailedToParseChunk { chunk_id, source })
                    if fails_checksum(&source) =>
                {
                    damaged_chunk(&mut tail, chunk_id, &source)
                        .into_iter()
                        .all(|record| push(record, &mut last_id))
                }
                result => push(result.map_err(Failure::Evtx), &mut last_id),
            };
            if !going_on {
                return false;
            }
        }
    }
    let tail_items = read_tail(&mut tail, declared_chunks, &file, &prefilter);
    for result in zeroed_chunks(&mut tail, declared_chunks).chain(tail_items) {
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
    /// Records lost in a way found here, not by the parser: the file ends early, a chunk
    /// in use is zeros.
    Lost(String),
    /// A record of a chunk that fails its checksum (`None`: one that cannot be named).
    Damaged {
        id: Option<u64>,
        message: String,
    },
}

/// A failure as an item: at the record it names, else just after the last record read
/// (a chunk-level error names no record).
fn malformed(failure: &Failure, last_id: Option<u64>) -> ReadItem {
    let after_last = last_id.map_or(1, |id| id + 1);
    let (kind, id, message) = match failure {
        Failure::Evtx(e @ EvtxError::FailedToParseRecord { record_id, .. }) => {
            ("evtx-record", *record_id, error_chain(e))
        }
        Failure::Evtx(e) => ("evtx-record", after_last, error_chain(e)),
        Failure::Lost(message) => ("evtx-record", after_last, message.clone()),
        Failure::Damaged { id, message } => ("checksum", id.unwrap_or(after_last), message.clone()),
    };
    ReadItem::Malformed {
        kind,
        location: Location::Record(id),
        message,
    }
}

/// Whether a chunk failed because a checksum does not match what it covers.
fn fails_checksum(e: &ChunkError) -> bool {
    matches!(
        e,
        ChunkError::InvalidChunkHeaderChecksum { .. }
            | ChunkError::InvalidChunkChecksum { .. }
            | ChunkError::InvalidFreeSpaceOffset { .. }
    )
}

/// The records of chunk `number`, which failed its checksum, as failures: read again
/// without the check, to name and count them; one failure when none can be found.
fn damaged_chunk<R: Read + Seek>(
    tail: &mut R,
    number: u64,
    why: &ChunkError,
) -> Vec<Result<(u64, ReadItem), Failure>> {
    let offset = FILE_HEADER_SIZE + number * CHUNK_SIZE;
    let message = format!(
        "chunk {number} (file offset {offset:#x}) fails its checksum: {why}; the file is \
         damaged, and the chunk's records are not replayed"
    );
    let mut ids = record_ids(tail, offset);
    if ids.is_empty() {
        ids.push(None);
    }
    ids.into_iter()
        .map(|id| {
            Err(Failure::Damaged {
                id,
                message: message.clone(),
            })
        })
        .collect()
}

/// The record ids of the chunk at `offset`, read without checking its checksums: the
/// range its header declares when that is possible, else the records that parse.
fn record_ids<R: Read + Seek>(tail: &mut R, offset: u64) -> Vec<Option<u64>> {
    // The smallest record is a 24-byte header and its end marker.
    const MOST_RECORDS: u64 = (CHUNK_SIZE - CHUNK_HEADER_SIZE) / 28;
    let mut data = Vec::new();
    let read = tail
        .seek(SeekFrom::Start(offset))
        .and_then(|_| tail.by_ref().take(CHUNK_SIZE).read_to_end(&mut data));
    let Some(mut chunk) = read.ok().and_then(|_| EvtxChunkData::new(data, false).ok()) else {
        return Vec::new();
    };
    let (first, last) = (
        chunk.header.first_event_record_id,
        chunk.header.last_event_record_id,
    );
    if first <= last && last - first < MOST_RECORDS {
        return (first..=last).map(Some).collect();
    }
    let Ok(mut chunk) = chunk.parse(Arc::new(settings())) else {
        return Vec::new();
    };
    chunk
        .iter()
        .map(|record| match record {
            Ok(record) => Some(record.event_record_id),
            Err(EvtxError::FailedToParseRecord { record_id, .. }) => Some(record_id),
            Err(_) => None,
        })
        .collect()
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

/// The crate passes over a chunk of zeros (room a log has not used yet) without a word;
/// one that the file header counts as in use held records, which are lost.
fn zeroed_chunks<R: Read + Seek>(
    tail: &mut R,
    declared_chunks: u16,
) -> impl Iterator<Item = Result<(u64, ReadItem), Failure>> {
    let zeroed: Vec<u64> = (0..u64::from(declared_chunks))
        .filter(|&number| chunk_is_zeros(tail, FILE_HEADER_SIZE + number * CHUNK_SIZE))
        .collect();
    zeroed.into_iter().map(move |number| {
        Err(Failure::Lost(format!(
            "chunk {number} (file offset {:#x}) is all zeros, though the file header counts \
             {declared_chunks} chunks in use: its records are lost",
            FILE_HEADER_SIZE + number * CHUNK_SIZE
        )))
    })
}

/// Whether the whole chunk at `offset` is there and zeros; its magic is looked at first.
fn chunk_is_zeros<R: Read + Seek>(tail: &mut R, offset: u64) -> bool {
    let mut data = Vec::new();
    let mut read_up_to = |len: u64| {
        data.clear();
        tail.seek(SeekFrom::Start(offset))
            .and_then(|_| tail.by_ref().take(len).read_to_end(&mut data))
            .is_ok_and(|n| n as u64 == len && data.iter().all(|&b| b == 0))
    };
    read_up_to(8) && read_up_to(CHUNK_SIZE)
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
    let cut = |message: String| vec![Err(Failure::Lost(message))];
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
    use crate::source::replay::tests::{data, events};

    fn read_bytes(bytes: Vec<u8>) -> Vec<ReadItem> {
        let input = open(
            std::io::Cursor::new(bytes.clone()),
            std::io::Cursor::new(bytes),
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
            std::fs::read(data!("LM_typical_IIS_webshell_sysmon_1_10_traces.evtx")).unwrap(),
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
        let whole = std::fs::read(data!("ID4688-Tchopper-obfuscated-payload.evtx")).unwrap();
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

    /// The `checksum` items: (record id, message).
    fn checksum_failures(items: &[ReadItem]) -> Vec<(u64, &str)> {
        items
            .iter()
            .filter_map(|item| match item {
                ReadItem::Malformed {
                    kind: "checksum",
                    location: Location::Record(id),
                    message,
                } => Some((*id, message.as_str())),
                _ => None,
            })
            .collect()
    }

    /// The record ids chunk `number` holds, from its (intact) header.
    fn chunk_ids(bytes: &[u8], number: u64) -> std::ops::RangeInclusive<u64> {
        let at = (FILE_HEADER_SIZE + number * CHUNK_SIZE) as usize;
        let chunk = EvtxChunkData::new(bytes[at..at + CHUNK_SIZE as usize].to_vec(), true).unwrap();
        chunk.header.first_event_record_id..=chunk.header.last_event_record_id
    }

    /// The EventRecordIDs the records of (intact) chunk `number` carry, which name its
    /// events; in an exported log they differ from the header's record numbers.
    fn chunk_event_ids(bytes: &[u8], number: u64) -> Vec<u64> {
        let at = (FILE_HEADER_SIZE + number * CHUNK_SIZE) as usize;
        let mut chunk =
            EvtxChunkData::new(bytes[at..at + CHUNK_SIZE as usize].to_vec(), true).unwrap();
        let mut chunk = chunk.parse(Arc::new(settings())).unwrap();
        chunk
            .iter()
            .map(|record| {
                let data = record.unwrap().into_json_value().unwrap().data;
                data["Event"]["System"]["EventRecordID"].as_u64().unwrap()
            })
            .collect()
    }

    /// Every record is accounted for: those of the damaged chunk as `checksum` failures
    /// naming it (by the header's record numbers: the damaged records cannot be read),
    /// the others read as before.
    fn assert_only_chunk_fails(intact: &[u8], damaged: Vec<u8>, number: u64, which: &str) {
        let whole = read_bytes(intact.to_vec());
        let items = read_bytes(damaged);
        let failures = checksum_failures(&items);
        let ids: Vec<u64> = failures.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, chunk_ids(intact, number).collect::<Vec<_>>());
        let (_, message) = failures[0];
        assert!(
            message.starts_with(&format!("chunk {number} (file offset "))
                && message.contains(which),
            "{message}"
        );
        assert_eq!(items.len(), whole.len());
        let kept: Vec<_> = events(&items).iter().map(|e| e.origin.location).collect();
        let expected: Vec<_> = events(&whole)
            .iter()
            .map(|e| e.origin.location)
            .filter(
                |l| !matches!(l, Location::Record(id) if chunk_event_ids(intact, number).contains(id)),
            )
            .collect();
        assert_eq!(kept, expected);
    }

    #[test]
    fn a_flipped_byte_in_a_record_fails_its_chunk_checksum() {
        let intact = std::fs::read(data!("ID4688-Tchopper-obfuscated-payload.evtx")).unwrap();
        let mut damaged = intact.clone();
        // A byte of a record's text in chunk 1, as a bad disk sector or a careless
        // hex edit would change it.
        damaged[(FILE_HEADER_SIZE + CHUNK_SIZE + 3_000) as usize] ^= 0x20;
        assert_only_chunk_fails(&intact, damaged, 1, "chunk data CRC32 invalid");
    }

    #[test]
    fn a_flipped_byte_in_a_chunk_header_fails_its_checksum() {
        let intact = std::fs::read(data!("ID4688-Tchopper-obfuscated-payload.evtx")).unwrap();
        // A byte of the chunk header's string table (its records cannot be parsed any
        // more), then the high byte of the first record id it declares (the records
        // name themselves).
        for at in [200, 31] {
            let mut damaged = intact.clone();
            damaged[(FILE_HEADER_SIZE + 2 * CHUNK_SIZE + at) as usize] ^= 0x01;
            assert_only_chunk_fails(&intact, damaged, 2, "chunk header CRC32 invalid");
        }
    }

    /// A file header and then nothing that holds records: each is reported as damaged,
    /// never read as an empty log.
    #[test]
    fn a_header_with_garbage_or_zeros_after_it_is_reported() {
        let real = std::fs::read(data!("sigma_regr_cve_2025_55182_node_child.evtx")).unwrap();
        let header = &real[..FILE_HEADER_SIZE as usize];
        // Deterministic noise (xorshift).
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let noise: Vec<u8> = (0..70_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let zeros = vec![0; CHUNK_SIZE as usize];
        for (after, expected) in [
            (&noise[..10_000], "chunk 0 (file offset 0x1000) ends after 10000"),
            (&noise[..], "Invalid EVTX chunk header magic"),
            (&zeros[..], "chunk 0 (file offset 0x1000) is all zeros, though the file header counts 1 chunks in use"),
            (&[][..], "its header declares 1 chunks, it holds 0"),
        ] {
            let items = read_bytes([header, after].concat());
            let messages: Vec<&str> = items
                .iter()
                .map(|item| match item {
                    ReadItem::Malformed {
                        kind: "evtx-record",
                        message,
                        ..
                    } => message.as_str(),
                    other => panic!("{other:?}"),
                })
                .collect();
            assert!(messages.iter().any(|m| m.contains(expected)), "{messages:?}");
        }
    }
}
