//! The startup process table: what a Toolhelp32 snapshot (Windows glue) found, turned
//! into `Existing` events.

use super::join::ORIGIN_KIND;
use super::time::filetime_to_utc;
use crate::record::{Action, ProcessRecord, SourceEvent, Text};

/// One process of the snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotEntry {
    pub pid: u32,
    pub ppid: u32,
    /// `PROCESSENTRY32W.szExeFile` (`w3wp.exe`).
    pub exe: String,
    /// `QueryFullProcessImageNameW` (DOS path); `None` for System, Idle and protected
    /// processes, which refuse `OpenProcess`.
    pub image_path: Option<String>,
    /// `GetProcessTimes` creation time; 0 when unknown.
    pub create_time_filetime: u64,
}

/// An `Existing` event for the process table.
pub fn existing_event(entry: &SnapshotEntry, hostname: Option<&str>) -> SourceEvent {
    let mut process = ProcessRecord {
        pid: entry.pid,
        ppid: Some(entry.ppid),
        exe: (!entry.exe.is_empty()).then(|| entry.exe.as_str().into()),
        image_path: entry.image_path.as_deref().map(Text::from),
        ..Default::default()
    };
    process.fill_exe();
    SourceEvent::live(
        ORIGIN_KIND,
        Action::Existing,
        filetime_to_utc(entry.create_time_filetime),
        hostname.map(Text::from),
        process,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_entries_become_existing_events() {
        let e = SnapshotEntry {
            pid: 2100,
            ppid: 900,
            exe: "w3wp.exe".into(),
            image_path: Some(r"C:\Windows\System32\inetsrv\w3wp.exe".into()),
            create_time_filetime: 133_540_000_000_000_000,
        };
        let ev = existing_event(&e, Some("web01"));
        assert_eq!(ev.action, Action::Existing);
        assert_eq!(ev.process.pid, 2100);
        assert_eq!(ev.process.ppid, Some(900));
        assert_eq!(ev.process.exe.as_deref(), Some("w3wp.exe"));
        assert_eq!(ev.origin.kind, "etw");
        assert_eq!(ev.hostname.as_deref(), Some("web01"));
        assert!(ev.timestamp.is_some());
        let system = SnapshotEntry {
            pid: 4,
            exe: "System".into(),
            ..Default::default()
        };
        let ev = existing_event(&system, None);
        assert_eq!((ev.process.image_path, ev.timestamp), (None, None));
        assert_eq!(ev.process.exe.as_deref(), Some("System"));
        let nameless = existing_event(&SnapshotEntry::default(), None);
        assert_eq!(nameless.process.exe, None);
    }
}
