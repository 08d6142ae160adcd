//! SID -> account name for the join thread, which must never wait for one.
//!
//! `LookupAccountSidW` answers a domain SID by asking a domain controller; with a slow or
//! unreachable one it blocks for many seconds, and a join thread waiting on it would hold
//! back every event until the queue from the ETW callbacks overflowed. So [`SidCache`]
//! answers only from its cache and asks the lookup on a thread of its own:
//!
//! - an event always carries its SID, and `user` when the name is known at that moment;
//! - the first event of a SID not seen before goes out without `user` (an event already
//!   emitted cannot be amended); the events of that SID after the answer carry it;
//! - a SID that did not resolve, or whose lookup took longer than
//!   [`AccountSettings::timeout`], is remembered as unknown for
//!   [`AccountSettings::retry_after`], so a dead domain controller is not asked again for
//!   every event. A lookup that answers after its timeout still fills the cache.
//!
//! A lookup cannot be cancelled, so a stuck one keeps its thread; at most
//! [`AccountSettings::max_threads`] run at once, and SIDs met while all are busy are
//! counted as skipped and asked again at their next event.

use crossbeam_channel::{Receiver, Sender};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Resolves a SID string to `DOMAIN\name` (on Windows `LookupAccountSidW`; tests inject
/// a fake). Runs on a lookup thread and may block. `None` when the SID is unknown.
pub trait AccountLookup: Send + Sync {
    fn lookup(&self, sid: &str) -> Option<String>;
}

/// Accounts every Windows host has, answered without a lookup.
pub fn well_known_account(sid: &str) -> Option<&'static str> {
    Some(match sid {
        "S-1-5-18" => r"NT AUTHORITY\SYSTEM",
        "S-1-5-19" => r"NT AUTHORITY\LOCAL SERVICE",
        "S-1-5-20" => r"NT AUTHORITY\NETWORK SERVICE",
        _ => return None,
    })
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AccountSettings {
    /// SIDs remembered at most; beyond, the cache starts over.
    pub capacity: usize,
    /// A lookup not answered within this is counted as timed out and its SID taken as
    /// unknown.
    pub timeout: Duration,
    /// How long an unknown SID (failed or timed out) is not asked again.
    pub retry_after: Duration,
    /// Lookup threads alive at most, stuck ones included.
    pub max_threads: usize,
}

impl Default for AccountSettings {
    fn default() -> Self {
        AccountSettings {
            capacity: 4096,
            timeout: Duration::from_secs(5),
            retry_after: Duration::from_secs(600),
            max_threads: 8,
        }
    }
}

/// What the lookups did, for the stats line.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountCounts {
    /// Lookups started.
    pub lookups: u64,
    /// Answered "unknown".
    pub failed: u64,
    /// Not answered within the timeout.
    pub timed_out: u64,
    /// Not started: every lookup thread busy, or none could be started.
    pub skipped: u64,
}

enum Known {
    Name(String),
    /// Failed or timed out at this time.
    Unknown(Duration),
}

type Answer = (String, Option<String>);

/// SID -> account name, answered from a cache that lookup threads fill.
pub struct SidCache {
    lookup: Arc<dyn AccountLookup>,
    settings: AccountSettings,
    known: HashMap<String, Known>,
    /// Lookups running, with their start.
    asking: Vec<(String, Duration)>,
    answers_tx: Sender<Answer>,
    answers: Receiver<Answer>,
    /// Lookup threads alive.
    threads: Arc<AtomicUsize>,
    counts: AccountCounts,
}

impl SidCache {
    pub fn new(lookup: Box<dyn AccountLookup>, capacity: usize) -> SidCache {
        let settings = AccountSettings {
            capacity,
            ..AccountSettings::default()
        };
        SidCache::with_settings(Arc::from(lookup), settings)
    }

    pub fn with_settings(lookup: Arc<dyn AccountLookup>, settings: AccountSettings) -> SidCache {
        let (answers_tx, answers) = crossbeam_channel::unbounded();
        SidCache {
            lookup,
            settings,
            known: HashMap::new(),
            asking: Vec::new(),
            answers_tx,
            answers,
            threads: Arc::default(),
            counts: AccountCounts::default(),
        }
    }

    /// The account name if known now; otherwise `None` at once, and a lookup is started
    /// (`now`: time since the source started, as the join's).
    pub fn resolve(&mut self, sid: &str, now: Duration) -> Option<String> {
        if let Some(name) = well_known_account(sid) {
            return Some(name.to_string());
        }
        self.take_answers(now);
        match self.known.get(sid) {
            Some(Known::Name(name)) => return Some(name.clone()),
            Some(Known::Unknown(at)) if now < *at + self.settings.retry_after => return None,
            _ => {}
        }
        if !self.asking.iter().any(|(s, _)| s == sid) {
            self.ask(sid, now);
        }
        None
    }

    pub fn counts(&self) -> AccountCounts {
        self.counts
    }

    fn take_answers(&mut self, now: Duration) {
        while let Ok(answer) = self.answers.try_recv() {
            self.take_answer(answer, now);
        }
        self.expire_lookups(now);
    }

    fn take_answer(&mut self, (sid, name): Answer, now: Duration) {
        self.asking.retain(|(s, _)| *s != sid);
        if name.is_none() {
            self.counts.failed += 1;
        }
        self.remember(sid, name.map_or(Known::Unknown(now), Known::Name));
    }

    fn expire_lookups(&mut self, now: Duration) {
        let timeout = self.settings.timeout;
        let (late, on_time): (Vec<_>, Vec<_>) = std::mem::take(&mut self.asking)
            .into_iter()
            .partition(|(_, since)| now >= *since + timeout);
        self.asking = on_time;
        for (sid, _) in late {
            self.counts.timed_out += 1;
            self.remember(sid, Known::Unknown(now));
        }
    }

    fn remember(&mut self, sid: String, known: Known) {
        if self.known.len() >= self.settings.capacity.max(1) {
            self.known.clear();
        }
        self.known.insert(sid, known);
    }

    fn ask(&mut self, sid: &str, now: Duration) {
        if self.threads.load(Ordering::Relaxed) >= self.settings.max_threads {
            self.counts.skipped += 1;
            return;
        }
        let alive = Alive::new(&self.threads);
        let lookup = self.lookup.clone();
        let answers = self.answers_tx.clone();
        let owned = sid.to_string();
        let started = std::thread::Builder::new()
            .name("etw-account-lookup".into())
            .spawn(move || {
                let name = lookup.lookup(&owned);
                // Free before answering: whoever has the answer sees the thread gone.
                drop(alive);
                // The cache may be gone (the source stopped): nobody to tell.
                let _ = answers.send((owned, name));
            });
        if started.is_ok() {
            self.counts.lookups += 1;
            self.asking.push((sid.to_string(), now));
        } else {
            self.counts.skipped += 1;
        }
    }

    /// Waits (up to 10 s) for one lookup to answer and takes it in.
    #[cfg(test)]
    pub fn wait_for_answer(&mut self, now: Duration) -> bool {
        let answer = self.answers.recv_timeout(Duration::from_secs(10));
        answer.map(|a| self.take_answer(a, now)).is_ok()
    }
}

/// Counts a lookup thread as alive until dropped (also when its lookup panics).
struct Alive(Arc<AtomicUsize>);

impl Alive {
    fn new(threads: &Arc<AtomicUsize>) -> Alive {
        threads.fetch_add(1, Ordering::Relaxed);
        Alive(threads.clone())
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for SidCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SidCache")
            .field("known", &self.known.len())
            .field("asking", &self.asking.len())
            .field("counts", &self.counts)
            .finish()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crossbeam_channel::bounded;
    use std::sync::Mutex;

    const POOL: &str = "S-1-5-82-1";
    const DOMAIN_USER: &str = "S-1-5-21-1004336348-1177238915-682003330-1001";

    /// Answers from a table; every lookup first waits for the test to open its gate
    /// (a ticket on `gate`), so a test decides when, and whether, a lookup returns.
    pub(crate) struct Gated {
        pub(crate) asked: Mutex<Vec<String>>,
        gate: Receiver<()>,
    }

    impl AccountLookup for Gated {
        fn lookup(&self, sid: &str) -> Option<String> {
            self.asked.lock().unwrap().push(sid.to_string());
            // a closed gate (the test ended) answers too
            let _ = self.gate.recv();
            match sid {
                POOL => Some(r"IIS APPPOOL\DefaultAppPool".to_string()),
                DOMAIN_USER => Some(r"CONTOSO\web".to_string()),
                _ => None,
            }
        }
    }

    /// A cache whose lookups return once per ticket sent on the returned sender.
    pub(crate) fn gated(settings: AccountSettings) -> (SidCache, Arc<Gated>, Sender<()>) {
        let (open, gate) = bounded(64);
        let lookup = Arc::new(Gated {
            asked: Mutex::default(),
            gate,
        });
        (
            SidCache::with_settings(lookup.clone(), settings),
            lookup,
            open,
        )
    }

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn well_known_sids_need_no_lookup() {
        let (mut cache, lookup, _open) = gated(AccountSettings::default());
        assert_eq!(
            cache.resolve("S-1-5-18", s(0)).as_deref(),
            Some(r"NT AUTHORITY\SYSTEM")
        );
        assert!(lookup.asked.lock().unwrap().is_empty());
        assert_eq!(cache.counts(), AccountCounts::default());
    }

    #[test]
    fn a_new_sid_is_answered_at_once_without_a_name_and_named_once_looked_up() {
        let (mut cache, lookup, open) = gated(AccountSettings::default());
        // the lookup blocks: resolve does not
        assert_eq!(cache.resolve(POOL, s(0)), None);
        assert_eq!(cache.resolve(POOL, s(1)), None);
        open.send(()).unwrap();
        assert!(cache.wait_for_answer(s(1)));
        assert_eq!(
            cache.resolve(POOL, s(2)).as_deref(),
            Some(r"IIS APPPOOL\DefaultAppPool")
        );
        // asked once, however often resolved
        assert_eq!(*lookup.asked.lock().unwrap(), [POOL]);
        assert_eq!(cache.counts().lookups, 1);
    }

    #[test]
    fn an_unknown_sid_is_remembered_until_the_retry_time() {
        let (mut cache, lookup, open) = gated(AccountSettings::default());
        open.send(()).unwrap();
        assert_eq!(cache.resolve("S-1-5-21-9", s(0)), None);
        assert!(cache.wait_for_answer(s(0)));
        for t in [1, 100, 599] {
            assert_eq!(cache.resolve("S-1-5-21-9", s(t)), None);
        }
        assert_eq!(lookup.asked.lock().unwrap().len(), 1);
        assert_eq!(cache.counts().failed, 1);
        // after retry_after (600 s): asked again
        open.send(()).unwrap();
        assert_eq!(cache.resolve("S-1-5-21-9", s(600)), None);
        assert!(cache.wait_for_answer(s(600)));
        assert_eq!(lookup.asked.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_stuck_lookup_times_out_and_its_late_answer_still_counts() {
        let (mut cache, lookup, open) = gated(AccountSettings::default());
        assert_eq!(cache.resolve(DOMAIN_USER, s(0)), None);
        // 5 s without an answer: timed out, remembered as unknown, not asked again
        assert_eq!(cache.resolve(DOMAIN_USER, s(5)), None);
        assert_eq!(cache.counts().timed_out, 1);
        assert_eq!(cache.resolve(DOMAIN_USER, s(6)), None);
        assert_eq!(cache.counts().lookups, 1);
        // the domain controller answers after all
        open.send(()).unwrap();
        assert!(cache.wait_for_answer(s(40)));
        assert_eq!(
            cache.resolve(DOMAIN_USER, s(41)).as_deref(),
            Some(r"CONTOSO\web")
        );
        assert_eq!(lookup.asked.lock().unwrap().len(), 1);
    }

    #[test]
    fn stuck_lookups_hold_their_threads_and_new_sids_wait_for_a_free_one() {
        let settings = AccountSettings {
            max_threads: 2,
            ..AccountSettings::default()
        };
        let (mut cache, _lookup, open) = gated(settings);
        assert_eq!(cache.resolve("S-1-5-21-1", s(0)), None);
        assert_eq!(cache.resolve("S-1-5-21-2", s(0)), None);
        // both threads stuck: the third SID is skipped, counted, and asked later
        assert_eq!(cache.resolve(POOL, s(1)), None);
        assert_eq!(cache.counts().skipped, 1);
        // one answers: its thread is free, and the next event of the SID asks
        open.send(()).unwrap();
        assert!(cache.wait_for_answer(s(2)));
        assert_eq!(cache.resolve(POOL, s(3)), None);
        assert_eq!(cache.counts().lookups, 3);
        open.send(()).unwrap();
        open.send(()).unwrap();
        assert!(cache.wait_for_answer(s(3)));
        assert!(cache.wait_for_answer(s(3)));
        assert_eq!(
            cache.resolve(POOL, s(4)).as_deref(),
            Some(r"IIS APPPOOL\DefaultAppPool")
        );
    }

    #[test]
    fn a_full_cache_starts_over() {
        let settings = AccountSettings {
            capacity: 2,
            ..AccountSettings::default()
        };
        let (mut cache, lookup, open) = gated(settings);
        for sid in ["S-1-5-21-1", "S-1-5-21-2", "S-1-5-21-3"] {
            open.send(()).unwrap();
            cache.resolve(sid, s(0));
            assert!(cache.wait_for_answer(s(0)));
        }
        // the first was forgotten when the third came in: asked again
        open.send(()).unwrap();
        cache.resolve("S-1-5-21-1", s(1));
        assert!(cache.wait_for_answer(s(1)));
        cache.resolve("S-1-5-21-3", s(1));
        assert_eq!(lookup.asked.lock().unwrap().len(), 4);
    }
}
