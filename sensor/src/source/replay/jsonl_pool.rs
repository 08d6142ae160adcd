//! JSON records parsed by the pipeline's workers, for plain files and streams, where
//! parsing is most of a replay's work: one thread cuts the input into chunks of whole
//! records (lines, or pretty-printed values), each chunk is mapped by a [`Job`] on a pool thread or on the thread iterating
//! (while it waits), and the iterator hands the items back in input order. Jobs never
//! block (their results go to an unbounded channel); a fixed number of tokens bounds the
//! chunks in flight instead. Dropping the iterator stops the cutting thread, even with
//! no pool thread left to take its queued jobs.

use super::jsonl::{line_item, Cut};
use super::prefilter::Prefilter;
use super::producer::reader_failed;
use crate::pipeline::{Job, JobQueue};
use crate::record::{Location, ReadItem};
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use std::collections::BTreeMap;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// Bytes of lines per chunk: a hand-over is rare next to the parsing, and a small
/// file still gives every worker some work.
const CHUNK_BYTES: usize = 128 << 10;
/// Chunks cut but not yet taken by the iterator: enough to keep every worker busy.
const IN_FLIGHT: usize = 16;

type Parsed = (u64, Vec<ReadItem>);

/// Whole lines, numbered in input order.
struct Chunk {
    index: u64,
    text: Vec<u8>,
    /// Each line's number and where it ends in `text` (it starts where the one before
    /// ended).
    lines: Vec<(u64, usize)>,
    /// What the cutter reports after these lines (an over-long line, a read error).
    trailer: Option<ReadItem>,
}

impl Chunk {
    fn new(index: u64) -> Chunk {
        Chunk {
            index,
            text: Vec::with_capacity(CHUNK_BYTES + 4096),
            lines: Vec::new(),
            trailer: None,
        }
    }
}

/// Reads the JSON records `cutter` cuts, parsing them on whoever runs `jobs` (the
/// thread that iterates too, while it waits).
pub(crate) fn read<C: Cut + Send + 'static>(
    cutter: C,
    file: Arc<str>,
    jobs: JobQueue,
) -> io::Result<super::Items> {
    let (to_consumer, parsed) = unbounded::<Parsed>();
    let (give_token, tokens) = bounded::<()>(IN_FLIGHT);
    for _ in 0..IN_FLIGHT {
        give_token.send(()).expect("the token channel has room");
    }
    // Nothing is ever sent: the channel closes when the iterator is dropped.
    let (reading, iterator_gone) = bounded::<()>(0);
    let pool_cutter = Cutter {
        jobs: jobs.clone(),
        tokens,
        iterator_gone,
        to_consumer,
        file: file.clone(),
    };
    std::thread::Builder::new()
        .name(format!("replay cut {file}"))
        .spawn(move || pool_cutter.run(cutter))?;
    Ok(Box::new(
        InOrder {
            jobs,
            _reading: reading,
            parsed,
            give_token,
            waiting: BTreeMap::new(),
            next: 0,
        }
        .flatten(),
    ))
}

struct Cutter {
    jobs: JobQueue,
    tokens: Receiver<()>,
    /// Closes when the iterator is dropped.
    iterator_gone: Receiver<()>,
    to_consumer: Sender<Parsed>,
    file: Arc<str>,
}

impl Cutter {
    fn run(&self, mut cutter: impl Cut) {
        let mut chunk = Chunk::new(0);
        while let Some(next) = cutter.next_raw() {
            match next {
                Ok((number, line)) => {
                    chunk.text.extend_from_slice(line);
                    chunk.lines.push((number, chunk.text.len()));
                    if chunk.text.len() < CHUNK_BYTES {
                        continue;
                    }
                }
                Err(item) => chunk.trailer = Some(item),
            }
            let index = chunk.index + 1;
            if !self.submit(std::mem::replace(&mut chunk, Chunk::new(index))) {
                return;
            }
        }
        if !chunk.lines.is_empty() {
            self.submit(chunk);
        }
    }

    /// Queues a chunk's parsing once a token is free; false once nobody reads on.
    fn submit(&self, chunk: Chunk) -> bool {
        if self.tokens.recv().is_err() {
            return false;
        }
        let (to_consumer, file) = (self.to_consumer.clone(), self.file.clone());
        let job: Job = Box::new(move || {
            let index = chunk.index;
            let first = Location::Line(chunk.lines.first().map_or(0, |&(number, _)| number));
            // Every chunk must answer, or the iterator would wait for it forever.
            let items = catch_unwind(AssertUnwindSafe(|| map_chunk(chunk, &file)))
                .unwrap_or_else(|panic| vec![reader_failed("json", first, &*panic)]);
            let _ = to_consumer.send((index, items));
        });
        self.jobs.submit_unless(job, &self.iterator_gone)
    }
}

fn map_chunk(chunk: Chunk, file: &Arc<str>) -> Vec<ReadItem> {
    let prefilter = Prefilter::new();
    let mut items = Vec::with_capacity(chunk.lines.len() + 1);
    let mut start = 0;
    for &(number, end) in &chunk.lines {
        items.extend(line_item(
            &chunk.text[start..end],
            number,
            file,
            None,
            &prefilter,
        ));
        start = end;
    }
    items.extend(chunk.trailer);
    items
}

/// Parsed chunks back in input order (the reader's items are these, flattened).
struct InOrder {
    jobs: JobQueue,
    /// Held only to close the cutter's `iterator_gone` when dropped.
    _reading: Sender<()>,
    parsed: Receiver<Parsed>,
    /// A chunk taken frees a token for the cutter.
    give_token: Sender<()>,
    /// Chunks that arrived before their turn.
    waiting: BTreeMap<u64, Vec<ReadItem>>,
    next: u64,
}

impl Iterator for InOrder {
    type Item = Vec<ReadItem>;

    fn next(&mut self) -> Option<Vec<ReadItem>> {
        loop {
            match self.waiting.remove(&self.next) {
                Some(items) => {
                    self.next += 1;
                    let _ = self.give_token.try_send(());
                    return Some(items);
                }
                None => {
                    let (index, items) = self.jobs.help_until(&self.parsed)?;
                    self.waiting.insert(index, items);
                }
            }
        }
    }
}

/// A queue with `n` threads that run its jobs until every sender is gone, for tests
/// without a pipeline.
#[cfg(test)]
pub(crate) fn test_workers(n: usize) -> JobQueue {
    let jobs = JobQueue::new(n * 2);
    for _ in 0..n {
        let taken = jobs.taker();
        std::thread::spawn(move || taken.into_iter().for_each(|job| job()));
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::super::jsonl::LineCutter;
    use super::*;
    use std::io::Read;

    fn line(n: u64) -> String {
        format!(r#"{{"timestamp":"2026-11-27T10:00:00Z","action":"create","pid":{n},"exe":"x"}}"#)
    }

    fn pids_and_kinds(items: impl Iterator<Item = ReadItem>) -> Vec<String> {
        items
            .map(|item| match item {
                ReadItem::Event(e) => format!("{} {}", e.process.pid, e.origin.location),
                ReadItem::Skipped => "skipped".into(),
                ReadItem::Malformed { kind, location, .. } => format!("{kind} {location}"),
            })
            .collect()
    }

    #[test]
    fn many_chunks_on_many_workers_come_back_in_input_order() {
        let n = 3 * CHUNK_BYTES as u64 / line(0).len() as u64 * 4;
        let mut text: String = (1..=n).map(|n| line(n) + "\n").collect();
        text.push_str("not json\n\n{\"other\":1}");
        let expected: Vec<String> = (1..=n)
            .map(|n| format!("{n} line {n}"))
            .chain([format!("json line {}", n + 1), "skipped".into()])
            .collect();
        for threads in [0, 1, 2, 5] {
            let items = read(
                LineCutter::new(io::Cursor::new(text.clone())),
                "t".into(),
                test_workers(threads),
            )
            .unwrap();
            assert_eq!(pids_and_kinds(items), expected, "{threads} threads");
        }
    }

    /// Fails after handing out `good` bytes.
    struct Failing {
        good: io::Cursor<Vec<u8>>,
    }

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.good.read(buf)? {
                0 => Err(io::Error::other("disk on fire")),
                n => Ok(n),
            }
        }
    }

    #[test]
    fn a_read_error_comes_after_the_lines_before_it() {
        let text: String = (1..=5000).map(|n| line(n) + "\n").collect();
        let good = io::Cursor::new(text.into_bytes());
        let got = pids_and_kinds(
            read(
                LineCutter::new(Failing { good }),
                "t".into(),
                test_workers(3),
            )
            .unwrap(),
        );
        assert_eq!(got.len(), 5001);
        assert_eq!(got[4999], "5000 line 5000");
        assert_eq!(got[5000], "read-error line 5001");
    }

    #[test]
    fn dropping_the_iterator_stops_every_thread() {
        /// Endless input that reports when the cutter stops reading it.
        struct Endless(Option<crossbeam_channel::Sender<()>>);
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let text = line(1) + "\n";
                let n = text.len().min(buf.len());
                buf[..n].copy_from_slice(&text.as_bytes()[..n]);
                Ok(n)
            }
        }
        impl Drop for Endless {
            fn drop(&mut self) {
                self.0.take().unwrap().send(()).unwrap();
            }
        }
        // With no pool thread, the iterator ran the jobs; once it is gone nobody takes
        // them, and the cutter must not wait for that.
        for threads in [0, 2] {
            let (stopped_tx, stopped) = crossbeam_channel::bounded(1);
            let mut items = read(
                LineCutter::new(Endless(Some(stopped_tx))),
                "t".into(),
                test_workers(threads),
            )
            .unwrap();
            assert!(items.next().is_some());
            drop(items);
            // The cutter drops its reader when it ends: recv does not hang.
            stopped.recv().unwrap();
        }
    }
}
