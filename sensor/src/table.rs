//! The process table: one per host, updated in event order by a single owner before
//! events fan out to the workers, so each event carries its ancestry as it was when the
//! process started.
//!
//! A new process is linked to the entry that held its ppid at that moment (an `Arc`),
//! never looked up again later, so a reused pid cannot be mistaken for an old parent and
//! the links cannot form a cycle, whatever bogus pid/ppid loops the data has. A
//! terminated process leaves the pid index at once but is kept for a while (time and
//! count limits) in case a late child event still names it; after that it lives on only
//! as long as some descendant's entry links to it.

use crate::facts::FactCache;
use crate::record::{Action, ParentFields, ProcessRecord, SourceEvent, Text, NO_PID};
use chrono::{DateTime, Duration, Utc};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::sync::Arc;

/// How deep a chain of links may grow; a process deeper than this starts a new chain
/// (its parent is then only known by pid). Bounds ancestry walks and recursive drops.
pub const MAX_CHAIN: u32 = 64;

/// One process in the table.
#[derive(Debug)]
pub struct Entry {
    pub record: ProcessRecord,
    pub started: Option<DateTime<Utc>>,
    /// The process that held `record.ppid` when this one started.
    pub parent: Option<Arc<Entry>>,
    /// Facts found out about the running process when a rule asked.
    pub facts: FactCache,
    /// Links above this entry (0 = no parent link).
    chain: u32,
}

impl Entry {
    fn new(
        record: ProcessRecord,
        started: Option<DateTime<Utc>>,
        parent: Option<Arc<Entry>>,
    ) -> Entry {
        let (parent, chain) = match parent {
            Some(p) if p.chain < MAX_CHAIN => {
                let chain = p.chain + 1;
                (Some(p), chain)
            }
            _ => (None, 0),
        };
        Entry {
            record,
            started,
            parent,
            facts: FactCache::default(),
            chain,
        }
    }

    /// The parent, grandparent, ... as linked when this process started (at most
    /// [`MAX_CHAIN`]). Walked by reference: cloning each ancestor's `Arc` for every
    /// event made two threads take turns at the same hot reference counts.
    pub fn ancestors(&self) -> impl Iterator<Item = &Entry> {
        std::iter::successors(self.parent.as_deref(), |entry| entry.parent.as_deref())
    }

    /// How many entries [`Entry::ancestors`] walks through, without walking them.
    pub fn ancestor_count(&self) -> usize {
        self.chain as usize
    }
}

impl Drop for Entry {
    // Unlinks iteratively, so dropping the last holder of a long chain cannot recurse
    // MAX_CHAIN frames deep per entry.
    fn drop(&mut self) {
        let mut next = self.parent.take();
        while let Some(entry) = next {
            match Arc::try_unwrap(entry) {
                Ok(mut owned) => next = owned.parent.take(),
                Err(_) => break,
            }
        }
    }
}

/// How long terminated processes are kept for late children.
#[derive(Copy, Clone, Debug)]
pub struct TableLimits {
    /// Event time a terminated process stays findable by pid.
    pub ended_ttl: Duration,
    /// At most this many terminated processes per host stay findable.
    pub ended_max: usize,
    /// At most this many live processes per host; past it the oldest entries go (a
    /// recording that lost its terminate events must not grow without bound).
    pub live_max: usize,
}

impl Default for TableLimits {
    fn default() -> TableLimits {
        TableLimits {
            ended_ttl: Duration::minutes(5),
            ended_max: 10_000,
            live_max: 200_000,
        }
    }
}

/// Every host's table.
#[derive(Debug, Default)]
pub struct ProcessTable {
    hosts: FxHashMap<Option<Text>, HostTable>,
    limits: TableLimits,
}

impl ProcessTable {
    pub fn new(limits: TableLimits) -> ProcessTable {
        ProcessTable {
            hosts: FxHashMap::default(),
            limits,
        }
    }

    /// Applies one event. For a create, returns the new entry, linked to its
    /// ancestors; for a terminate or an existing process, `None`. A created process's
    /// record moves into the table (`event.process` is left empty).
    pub fn apply(&mut self, event: &mut SourceEvent) -> Option<Arc<Entry>> {
        let limits = self.limits;
        let host = match self.hosts.get_mut(&event.hostname) {
            Some(host) => host,
            None => self.hosts.entry(event.hostname.clone()).or_default(),
        };
        host.observe_time(event.timestamp, &limits);
        match event.action {
            Action::Create | Action::Existing => {
                let entry = host.create(event, &limits);
                (event.action == Action::Create).then_some(entry)
            }
            Action::Terminate => {
                host.terminate(event.process.pid, event.timestamp, &limits);
                None
            }
        }
    }

    /// Processes currently indexed (live and recently ended), over all hosts.
    pub fn len(&self) -> usize {
        self.hosts
            .values()
            .map(|h| h.live.len() + h.ended.len())
            .sum()
    }
}

#[derive(Debug, Default)]
struct HostTable {
    live: FxHashMap<u32, Arc<Entry>>,
    /// Terminated, still findable by pid: the most recent holder of each pid.
    ended: FxHashMap<u32, Arc<Entry>>,
    /// Terminations in order, for expiry: (pid, when, the entry that ended).
    ended_order: VecDeque<(u32, Option<DateTime<Utc>>, Arc<Entry>)>,
    /// The latest event time seen on this host.
    now: Option<DateTime<Utc>>,
    /// `now` less the time-to-live: terminations before it expire. Kept with `now`
    /// rather than worked out for every event.
    cutoff: Option<DateTime<Utc>>,
}

impl HostTable {
    fn observe_time(&mut self, t: Option<DateTime<Utc>>, limits: &TableLimits) {
        if let Some(t) = t {
            if self.now.is_none_or(|now| t > now) {
                self.now = Some(t);
                self.cutoff = t.checked_sub_signed(limits.ended_ttl);
            }
        }
        self.expire(limits);
    }

    fn create(&mut self, event: &mut SourceEvent, limits: &TableLimits) -> Arc<Entry> {
        let record = std::mem::take(&mut event.process);
        let pid = record.pid;
        let parent = record
            .ppid
            .filter(|&ppid| ppid != pid)
            .and_then(|ppid| self.parent_for(ppid, &event.parent));
        let entry = Arc::new(Entry::new(record, event.timestamp, parent));
        // Without a pid, nothing can name it as a parent or end it.
        if pid == NO_PID {
            return entry;
        }
        if let Some(old) = self.live.insert(pid, entry.clone()) {
            // pid reuse without a terminate in between: the old holder has ended.
            self.retire(pid, event.timestamp, old, limits);
        }
        self.ended.remove(&pid);
        if self.live.len() > limits.live_max {
            self.evict_oldest_live();
        }
        entry
    }

    /// The entry a child with `ppid` links to. When the event names its parent itself
    /// (Sysmon's ParentImage), that wins over a table entry with another image (a pid
    /// reuse the recording never showed), and fills fields the table lacks.
    fn parent_for(&mut self, ppid: u32, given: &ParentFields) -> Option<Arc<Entry>> {
        let known = self
            .live
            .get(&ppid)
            .or_else(|| self.ended.get(&ppid))
            .cloned();
        let given_nothing = given.image_path.is_none()
            && given.exe.is_none()
            && given.command_line.is_none()
            && given.user.is_none();
        match known {
            Some(entry) if given_nothing || agrees(&entry.record, given) => {
                if lacks_given_fields(&entry.record, given) {
                    Some(self.refresh(entry, given))
                } else {
                    Some(entry)
                }
            }
            _ if given_nothing => None,
            _ => {
                let record = ProcessRecord {
                    pid: ppid,
                    exe: given.exe.clone(),
                    image_path: given.image_path.clone(),
                    command_line: given.command_line.clone(),
                    user: given.user.clone(),
                    ..Default::default()
                };
                let entry = Arc::new(Entry::new(record, None, None));
                self.live.insert(ppid, entry.clone());
                Some(entry)
            }
        }
    }

    /// Replaces `entry` in the index with a copy that has the fields the event gives.
    fn refresh(&mut self, entry: Arc<Entry>, given: &ParentFields) -> Arc<Entry> {
        let mut record = entry.record.clone();
        fill(&mut record.exe, &given.exe);
        fill(&mut record.image_path, &given.image_path);
        fill(&mut record.command_line, &given.command_line);
        fill(&mut record.user, &given.user);
        let pid = record.pid;
        let fresh = Arc::new(Entry::new(record, entry.started, entry.parent.clone()));
        for index in [&mut self.live, &mut self.ended] {
            if index.get(&pid).is_some_and(|e| Arc::ptr_eq(e, &entry)) {
                index.insert(pid, fresh.clone());
            }
        }
        fresh
    }

    fn terminate(&mut self, pid: u32, when: Option<DateTime<Utc>>, limits: &TableLimits) {
        if let Some(old) = self.live.remove(&pid) {
            self.retire(pid, when, old, limits);
        }
    }

    fn retire(
        &mut self,
        pid: u32,
        when: Option<DateTime<Utc>>,
        entry: Arc<Entry>,
        limits: &TableLimits,
    ) {
        self.ended.insert(pid, entry.clone());
        self.ended_order.push_back((pid, when.or(self.now), entry));
        self.expire(limits);
    }

    fn expire(&mut self, limits: &TableLimits) {
        let cutoff = self.cutoff;
        while let Some((pid, when, entry)) = self.ended_order.front() {
            let too_many = self.ended_order.len() > limits.ended_max;
            let too_old = matches!((when, cutoff), (Some(when), Some(cutoff)) if *when < cutoff);
            if !too_many && !too_old {
                break;
            }
            if self.ended.get(pid).is_some_and(|e| Arc::ptr_eq(e, entry)) {
                self.ended.remove(pid);
            }
            self.ended_order.pop_front();
        }
    }

    fn evict_oldest_live(&mut self) {
        let excess = self.live.len() / 10 + 1;
        let mut by_age: Vec<(Option<DateTime<Utc>>, u32)> =
            self.live.iter().map(|(pid, e)| (e.started, *pid)).collect();
        by_age.sort_unstable();
        for (_, pid) in by_age.into_iter().take(excess) {
            self.live.remove(&pid);
        }
    }
}

fn fill(slot: &mut Option<Text>, given: &Option<Text>) {
    if slot.is_none() {
        slot.clone_from(given);
    }
}

fn lacks_given_fields(record: &ProcessRecord, given: &ParentFields) -> bool {
    (record.image_path.is_none() && given.image_path.is_some())
        || (record.exe.is_none() && given.exe.is_some())
        || (record.command_line.is_none() && given.command_line.is_some())
        || (record.user.is_none() && given.user.is_some())
}

/// Whether a table entry can be the parent the event describes.
fn agrees(record: &ProcessRecord, given: &ParentFields) -> bool {
    let same = |a: &Option<Text>, b: &Option<Text>| match (a, b) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => true,
    };
    same(&record.image_path, &given.image_path) && same(&record.exe, &given.exe)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0)
    }

    fn create(host: &str, pid: u32, ppid: u32, exe: &str, t: i64) -> SourceEvent {
        SourceEvent {
            timestamp: at(t),
            hostname: Some(host.into()),
            ..SourceEvent::created(pid, ppid, exe)
        }
    }

    fn terminate(host: &str, pid: u32, t: i64) -> SourceEvent {
        let mut e = create(host, pid, 0, "", t);
        e.action = Action::Terminate;
        e
    }

    fn chain(entry: &Entry) -> Vec<&str> {
        entry
            .ancestors()
            .map(|e| e.record.exe.as_deref().unwrap_or("?"))
            .collect()
    }

    #[test]
    fn child_links_to_the_process_that_held_its_ppid() {
        let mut t = ProcessTable::default();
        t.apply(&mut create("h", 100, 4, "w3wp.exe", 0));
        t.apply(&mut create("h", 200, 100, "cmd.exe", 1));
        let p = t
            .apply(&mut create("h", 300, 200, "whoami.exe", 2))
            .unwrap();
        assert_eq!(chain(&p), ["cmd.exe", "w3wp.exe"]);
    }

    #[test]
    fn a_reused_pid_is_not_taken_for_the_old_parent() {
        let mut t = ProcessTable::default();
        t.apply(&mut create("h", 100, 4, "w3wp.exe", 0));
        let early = t.apply(&mut create("h", 200, 100, "cmd.exe", 1)).unwrap();
        t.apply(&mut terminate("h", 100, 2));
        t.apply(&mut create("h", 100, 4, "notepad.exe", 3));
        let late = t
            .apply(&mut create("h", 300, 100, "whoami.exe", 4))
            .unwrap();
        assert_eq!(chain(&late), ["notepad.exe"]);
        // The earlier child keeps the parent it had when it started.
        assert_eq!(chain(&early), ["w3wp.exe"]);
    }

    #[test]
    fn a_process_without_a_pid_links_to_its_parent_but_is_never_indexed() {
        let mut t = ProcessTable::default();
        t.apply(&mut create("h", 100, 4, "w3wp.exe", 0));
        let shell = t
            .apply(&mut create("h", NO_PID, 100, "cmd.exe", 1))
            .unwrap();
        assert_eq!(chain(&shell), ["w3wp.exe"]);
        // A second one does not end the first, and nothing can name either as parent.
        t.apply(&mut create("h", NO_PID, 100, "cmd.exe", 2));
        assert_eq!(t.len(), 1);
        let orphan = t
            .apply(&mut create("h", 300, NO_PID, "whoami.exe", 3))
            .unwrap();
        assert!(chain(&orphan).is_empty());
    }

    #[test]
    fn a_create_over_a_live_pid_ends_the_old_record() {
        let mut t = ProcessTable::default();
        t.apply(&mut create("h", 100, 4, "w3wp.exe", 0));
        t.apply(&mut create("h", 100, 4, "svchost.exe", 1));
        let p = t.apply(&mut create("h", 300, 100, "cmd.exe", 2)).unwrap();
        assert_eq!(chain(&p), ["svchost.exe"]);
    }

    #[test]
    fn a_late_child_finds_a_recently_ended_parent_until_it_expires() {
        let limits = TableLimits {
            ended_ttl: Duration::seconds(10),
            ..TableLimits::default()
        };
        let mut t = ProcessTable::new(limits);
        t.apply(&mut create("h", 100, 4, "w3wp.exe", 0));
        t.apply(&mut terminate("h", 100, 1));
        let p = t.apply(&mut create("h", 200, 100, "cmd.exe", 2)).unwrap();
        assert_eq!(chain(&p), ["w3wp.exe"]);
        let q = t.apply(&mut create("h", 201, 100, "cmd.exe", 30)).unwrap();
        assert!(chain(&q).is_empty(), "expired after its ttl");
    }

    #[test]
    fn ended_processes_are_bounded_by_count() {
        let limits = TableLimits {
            ended_max: 3,
            ..TableLimits::default()
        };
        let mut t = ProcessTable::new(limits);
        for pid in 0..100 {
            t.apply(&mut create("h", pid, 1, "x.exe", 0));
            t.apply(&mut terminate("h", pid, 0));
        }
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn pid_ppid_cycles_terminate_the_walk() {
        let mut t = ProcessTable::default();
        t.apply(&mut create("h", 10, 20, "a.exe", 0));
        t.apply(&mut create("h", 20, 10, "b.exe", 1));
        let p = t.apply(&mut create("h", 10, 20, "c.exe", 2)).unwrap();
        assert_eq!(chain(&p), ["b.exe", "a.exe"]);
        let selfish = t.apply(&mut create("h", 30, 30, "d.exe", 3)).unwrap();
        assert!(chain(&selfish).is_empty());
    }

    #[test]
    fn each_host_has_its_own_table() {
        let mut t = ProcessTable::default();
        t.apply(&mut create("web01", 100, 4, "w3wp.exe", 0));
        t.apply(&mut create("web02", 100, 4, "explorer.exe", 0));
        let p = t
            .apply(&mut create("web01", 200, 100, "cmd.exe", 1))
            .unwrap();
        assert_eq!(chain(&p), ["w3wp.exe"]);
    }

    #[test]
    fn parent_fields_in_the_event_fill_and_correct_the_table() {
        let mut t = ProcessTable::default();
        let mut child = create("h", 200, 100, "cmd.exe", 1);
        child.parent.image_path = Some(r"C:\Windows\System32\inetsrv\w3wp.exe".into());
        child.parent.exe = Some("w3wp.exe".into());
        child.parent.user = Some(r"IIS APPPOOL\DefaultAppPool".into());
        let p = t.apply(&mut child).unwrap();
        assert_eq!(chain(&p), ["w3wp.exe"]);
        let parent = p.ancestors().next().unwrap();
        assert_eq!(
            parent.record.user.as_deref(),
            Some(r"IIS APPPOOL\DefaultAppPool")
        );
        // A later child of the same pid without parent fields gets the learnt parent.
        let q = t
            .apply(&mut create("h", 201, 100, "whoami.exe", 2))
            .unwrap();
        assert_eq!(chain(&q), ["w3wp.exe"]);
        // An event naming another image for that pid wins over the table.
        let mut other = create("h", 202, 100, "cmd.exe", 3);
        other.parent.exe = Some("explorer.exe".into());
        let r = t.apply(&mut other).unwrap();
        assert_eq!(chain(&r), ["explorer.exe"]);
    }

    #[test]
    fn chains_are_capped_and_long_ones_drop_without_recursion() {
        let mut t = ProcessTable::default();
        for pid in 1..100_000u32 {
            t.apply(&mut create("h", pid, pid - 1, "sh", 0));
        }
        let p = t.apply(&mut create("h", 100_000, 99_999, "id", 0)).unwrap();
        // Every MAX_CHAIN + 1 processes a new chain starts: 99,999 links cut to 29.
        assert_eq!(p.ancestors().count(), 99_999 % (MAX_CHAIN as usize + 1));
        assert_eq!(p.ancestor_count(), p.ancestors().count());
        drop(t);
        drop(p);
    }
}
