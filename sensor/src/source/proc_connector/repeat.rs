//! Two execs of one process that read the same from `/proc`. JDK 17 starts a program
//! through `jspawnhelper`, which execs it in the same process: two exec events, and
//! when `/proc` is read after the second, both read as the program, and would be
//! reported (and alerted) twice. A repeat of the last reading of the same process says
//! nothing new, so it is dropped; a process that execs something else is reported.

use crate::record::ProcessRecord;
use rustc_hash::FxHashMap;
use std::hash::{Hash, Hasher};

/// The last reading of each process since its exec, as a fingerprint.
#[derive(Debug, Default)]
pub(super) struct LastExec {
    fingerprints: FxHashMap<u32, u64>,
}

impl LastExec {
    /// Whether `record` reads the same as the last exec of its process reported;
    /// remembers it either way.
    pub(super) fn repeats(&mut self, record: &ProcessRecord) -> bool {
        let mut hasher = rustc_hash::FxHasher::default();
        record.hash(&mut hasher);
        let print = hasher.finish();
        self.fingerprints.insert(record.pid, print) == Some(print)
    }

    /// The process has ended, or its pid was given to another.
    pub(super) fn forget(&mut self, pid: u32) {
        self.fingerprints.remove(&pid);
    }

    /// Keeps the processes `alive` says still run (exits may have been lost).
    pub(super) fn retain(&mut self, mut alive: impl FnMut(u32) -> bool) {
        self.fingerprints.retain(|&pid, _| alive(pid));
    }

    pub(super) fn len(&self) -> usize {
        self.fingerprints.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(pid: u32, command_line: &str) -> ProcessRecord {
        ProcessRecord {
            pid,
            exe: Some("sh".into()),
            command_line: Some(command_line.into()),
            ..ProcessRecord::default()
        }
    }

    #[test]
    fn only_the_same_reading_of_the_same_process_repeats() {
        let mut last = LastExec::default();
        assert!(!last.repeats(&sh(7, "sh -c id")));
        assert!(last.repeats(&sh(7, "sh -c id")));
        assert!(!last.repeats(&sh(8, "sh -c id")), "another process");
        assert!(!last.repeats(&sh(7, "sh -c 'uname -a'")), "another program");
        assert!(
            !last.repeats(&sh(7, "sh -c id")),
            "compared with the last only"
        );
        last.forget(7);
        assert!(
            !last.repeats(&sh(7, "sh -c id")),
            "a new process on the pid"
        );
        last.retain(|pid| pid == 8);
        assert_eq!(last.len(), 1);
    }
}
