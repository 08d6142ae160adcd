//! Facts about a running process that cost a look at the host, found out only when a
//! rule asks for them: whether it holds a listening TCP socket (`listens`).
//!
//! The rule language knows nothing of hosts: it asks the event for a field when a rule
//! reaches a test of it ([`dsl::Event::value`]), after the rule's cheaper tests held. So
//! the event, not the source, finds the fact out, through the [`HostFacts`] of the live
//! sensor, and keeps it in the process's table entry ([`FactCache`]); a rule set that
//! never tests `listens` costs nothing. Replay has no host to ask: the field is absent
//! there, and the shipped rules fall back on names.

use crate::record::ProcessRecord;
use std::sync::atomic::{AtomicU8, Ordering};

/// What a live sensor can find out about one of its host's processes, on demand.
pub trait HostFacts: Sync + std::fmt::Debug {
    /// Whether `process` holds a listening TCP socket; `None` when that cannot be told
    /// (it has exited, or its pid now runs another image).
    fn listens(&self, process: &ProcessRecord) -> Option<bool>;
}

/// What was found out about one process, kept in its table entry. Evaluations on
/// several threads may ask at once; the worst that does is ask the host twice.
#[derive(Debug, Default)]
pub struct FactCache {
    listens: AtomicU8,
}

// 0: not asked yet.
const NO: u8 = 1;
const YES: u8 = 2;

impl FactCache {
    /// Whether the process listens. A yes is kept for the process's life: a server
    /// keeps its socket. A no is asked again the next time, since a runtime opens its
    /// socket some time after it starts, and may start programs before.
    pub fn listens(&self, process: &ProcessRecord, host: &dyn HostFacts) -> Option<bool> {
        if self.listens.load(Ordering::Relaxed) == YES {
            return Some(true);
        }
        let found = host.listens(process);
        if let Some(yes) = found {
            self.listens
                .store(if yes { YES } else { NO }, Ordering::Relaxed);
        }
        found
    }

    /// The last answer, without asking: what the rules saw, for the alert line.
    pub fn known_listens(&self) -> Option<bool> {
        match self.listens.load(Ordering::Relaxed) {
            YES => Some(true),
            NO => Some(false),
            _ => None,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;
    use std::sync::Mutex;

    /// A host whose listening pids are set by the test, counting the questions.
    #[derive(Debug, Default)]
    pub(crate) struct FakeHost {
        pub(crate) listening: Mutex<Vec<u32>>,
        pub(crate) asked: AtomicU32,
    }

    impl HostFacts for FakeHost {
        fn listens(&self, process: &ProcessRecord) -> Option<bool> {
            self.asked.fetch_add(1, Ordering::Relaxed);
            Some(self.listening.lock().unwrap().contains(&process.pid))
        }
    }

    /// A fake host that lives as long as the test binary, as the real one does.
    pub(crate) fn fake_host(listening: &[u32]) -> &'static FakeHost {
        Box::leak(Box::new(FakeHost {
            listening: Mutex::new(listening.to_vec()),
            asked: AtomicU32::new(0),
        }))
    }

    #[test]
    fn a_yes_is_kept_and_a_no_is_asked_again() {
        let host = fake_host(&[]);
        let cache = FactCache::default();
        let node = ProcessRecord {
            pid: 7,
            ..ProcessRecord::default()
        };
        assert_eq!(cache.known_listens(), None, "nothing asked yet");
        assert_eq!(cache.listens(&node, host), Some(false));
        assert_eq!(cache.known_listens(), Some(false));
        // The server opens its socket after it started.
        host.listening.lock().unwrap().push(7);
        assert_eq!(cache.listens(&node, host), Some(true));
        assert_eq!(cache.listens(&node, host), Some(true));
        assert_eq!(
            host.asked.load(Ordering::Relaxed),
            2,
            "a yes is not asked again"
        );
        assert_eq!(cache.known_listens(), Some(true));
    }
}
