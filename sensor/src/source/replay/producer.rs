//! Readers that cannot be pulled one item at a time (the `evtx` parser and zip entries
//! borrow their source) run on a thread of their own and hand items over in batches.
//! Dropping the iterator stops the thread at its next hand-over.

use crate::record::{Location, ReadItem};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, SyncSender};

const BATCH: usize = 256;
/// Batches in flight: enough to keep both sides busy, bounded so a slow consumer holds
/// back a fast reader.
const IN_FLIGHT: usize = 8;

/// Where a producing reader pushes its items.
pub(crate) struct Sink {
    tx: SyncSender<Vec<ReadItem>>,
    batch: Vec<ReadItem>,
    closed: bool,
    /// The last location pushed, for an error that has none.
    last: Location,
}

impl Sink {
    /// Queues an item; false once the consumer is gone (the reader should stop).
    pub(crate) fn push(&mut self, item: ReadItem) -> bool {
        if self.closed {
            return false;
        }
        match &item {
            ReadItem::Event(e) => self.last = e.origin.location,
            ReadItem::Malformed { location, .. } => self.last = *location,
            ReadItem::Skipped => {}
        }
        self.batch.push(item);
        self.batch.len() < BATCH || self.flush()
    }

    fn flush(&mut self) -> bool {
        if !self.batch.is_empty() {
            let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
            self.closed = self.tx.send(batch).is_err();
        }
        !self.closed
    }
}

/// Runs `work` on a new thread and returns the items it pushes, in order. A panic in
/// `work` (a parser bug on hostile input) becomes a last `Malformed` item of `kind`.
pub(crate) fn spawn(
    name: &str,
    kind: &'static str,
    work: impl FnOnce(&mut Sink) + Send + 'static,
) -> std::io::Result<super::Items> {
    let (tx, rx) = sync_channel(IN_FLIGHT);
    std::thread::Builder::new()
        .name(format!("replay {name}"))
        .spawn(move || {
            let mut sink = Sink {
                tx,
                batch: Vec::with_capacity(BATCH),
                closed: false,
                last: Location::Record(0),
            };
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| work(&mut sink))) {
                let location = sink.last;
                sink.push(reader_failed(kind, location, &*panic));
            }
            sink.flush();
        })?;
    Ok(Box::new(rx.into_iter().flatten()))
}

/// The item that stands for what a reader could not read because it panicked.
pub(crate) fn reader_failed(
    kind: &'static str,
    location: Location,
    panic: &(dyn std::any::Any + Send),
) -> ReadItem {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".to_string());
    ReadItem::Malformed {
        kind,
        location,
        message: format!("the reader failed on this input and stopped: {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_arrive_in_order_across_batches() {
        let items: Vec<_> = spawn("t", "test", |sink| {
            for n in 0..(BATCH * 3 + 5) {
                let location = Location::Line(n as u64);
                let item = ReadItem::Malformed {
                    kind: "x",
                    location,
                    message: String::new(),
                };
                assert!(sink.push(item));
            }
        })
        .unwrap()
        .collect();
        assert_eq!(items.len(), BATCH * 3 + 5);
        for (n, item) in items.iter().enumerate() {
            assert!(
                matches!(item, ReadItem::Malformed { location: Location::Line(l), .. } if *l == n as u64)
            );
        }
    }

    #[test]
    fn a_panic_becomes_a_last_malformed_item() {
        let items: Vec<_> = spawn("t", "test", |sink| {
            sink.push(ReadItem::Skipped);
            panic!("boom");
        })
        .unwrap()
        .collect();
        assert_eq!(items.len(), 2);
        assert!(
            matches!(&items[1], ReadItem::Malformed { kind: "test", message, .. } if message.contains("boom"))
        );
    }

    #[test]
    fn dropping_the_iterator_stops_the_producer() {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let mut items = spawn("t", "test", move |sink| {
            let mut pushed = 0u64;
            while sink.push(ReadItem::Skipped) {
                pushed += 1;
            }
            done_tx.send(pushed).unwrap();
        })
        .unwrap();
        assert!(items.next().is_some());
        drop(items);
        // The producer notices at its next hand-over and ends: recv does not hang.
        let pushed = done_rx.recv().unwrap();
        assert!(pushed < (BATCH * (IN_FLIGHT + 3)) as u64);
    }
}
