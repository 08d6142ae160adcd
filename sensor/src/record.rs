//! The normalised process record every source produces: CAR data-model field names,
//! whatever the source (ETW, the Linux connector, Sysmon, Security 4688, JSON lines).

use chrono::{DateTime, Utc};
use std::sync::Arc;

/// A field's text. Up to 24 bytes are kept inline (process names, users, hosts), so an
/// event allocates only for its paths and command lines: replay allocates on one
/// thread and frees on another, and each allocation saved showed in the time.
pub type Text = compact_str::CompactString;

/// One process, as far as it is known. Absent fields stay `None`: a rule on an
/// unknown field does not match, and an alert shows it as `null`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ProcessRecord {
    pub pid: u32,
    pub ppid: Option<u32>,
    /// The process that really called CreateProcess (differs from `ppid` when the
    /// parent was spoofed).
    pub creator_pid: Option<u32>,
    /// The file name of `image_path` (`cmd.exe`).
    pub exe: Option<Text>,
    pub image_path: Option<Text>,
    pub command_line: Option<Text>,
    /// The arguments, when the source has them apart (Linux: `/proc/PID/cmdline`);
    /// `command_line` is then these, shell-quoted.
    pub argv: Option<Box<[Text]>>,
    /// The real user (Linux: the real uid's name).
    pub user: Option<Text>,
    /// The effective user, when the source tells it apart from the real one (Linux):
    /// `root` while www-data runs `sudo`.
    pub effective_user: Option<Text>,
    /// Whether the process holds a listening TCP socket, when the source says so (the
    /// examples of `spawnwatch test`). The live sensor finds it out when a rule asks
    /// (see [`crate::facts`]).
    pub listens: Option<bool>,
    pub sid: Option<Text>,
    pub integrity_level: Option<Text>,
    pub current_working_directory: Option<Text>,
    /// The PE's own name (Sysmon's `OriginalFileName`), which survives a rename.
    pub original_file_name: Option<Text>,
    /// The PE's version resource (Sysmon event 1): `Description`, `Product`,
    /// `Company`, `FileVersion`.
    pub description: Option<Text>,
    pub product: Option<Text>,
    pub company: Option<Text>,
    pub file_version: Option<Text>,
    /// Sysmon's `Hashes`, as it writes them: `SHA1=...,MD5=...,IMPHASH=...`.
    pub hashes: Option<Text>,
    /// The logon session, as the source writes it (`0x3e7`).
    pub logon_id: Option<Text>,
    pub terminal_session_id: Option<Text>,
    /// The executable file has no name any more: deleted since it was started, or
    /// run from a descriptor after it was deleted (Linux). Not a memfd.
    pub exe_deleted: Option<bool>,
    /// The executable is a memfd: a file in memory that never had a name (Linux:
    /// `memfd_create` and `fexecve`, a fileless payload's way to run).
    pub exe_memfd: Option<bool>,
}

/// The `pid` of a process whose source gave none (some NXLog exports drop Sysmon's
/// `ProcessId`): it is evaluated, but never indexed by pid, so no child links to it.
/// No real pid is this value (Windows pids are multiples of 4; Linux's stop at 2^22).
pub const NO_PID: u32 = u32::MAX;

impl ProcessRecord {
    /// The pid, unless the source gave none ([`NO_PID`]).
    pub fn known_pid(&self) -> Option<u32> {
        (self.pid != NO_PID).then_some(self.pid)
    }

    /// Fills `exe` from `image_path` when the source gave only the path.
    pub fn fill_exe(&mut self) {
        fill_exe(&mut self.exe, &self.image_path);
    }
}

fn fill_exe(exe: &mut Option<Text>, image_path: &Option<Text>) {
    if exe.is_none() {
        *exe = image_path.as_deref().map(|p| file_name(p).into());
    }
}

/// The parent fields a source reports itself (Sysmon's `ParentImage`, 4688's
/// `ParentProcessName`). The process table supplies whatever is missing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParentFields {
    pub exe: Option<Text>,
    pub image_path: Option<Text>,
    pub command_line: Option<Text>,
    /// Sysmon's `ParentUser` (13.30 and later).
    pub user: Option<Text>,
}

impl ParentFields {
    pub fn fill_exe(&mut self) {
        fill_exe(&mut self.exe, &self.image_path);
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Create,
    Terminate,
    /// A process already running when a live source started (rundown, snapshot,
    /// `/proc`): it enters the process table as a possible parent but is not
    /// evaluated against the rules.
    Existing,
}

/// Where an event came from, for alerts and for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// `"replay"` or the live source's name (`"etw"`, `"proc-connector"`).
    pub kind: &'static str,
    /// The file replayed, if any.
    pub file: Option<Arc<str>>,
    pub location: Location,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// 1-based line of a JSON-lines file.
    Line(u64),
    /// EVTX record id.
    Record(u64),
    Live,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Line(n) => write!(f, "line {n}"),
            Location::Record(n) => write!(f, "record {n}"),
            Location::Live => f.write_str("live"),
        }
    }
}

/// A process event as a source delivers it, before the process table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceEvent {
    pub timestamp: Option<DateTime<Utc>>,
    pub hostname: Option<Text>,
    pub action: Action,
    pub process: ProcessRecord,
    pub parent: ParentFields,
    pub origin: Origin,
}

/// What a reader yields for each record of its input.
#[derive(Debug)]
pub enum ReadItem {
    Event(Box<SourceEvent>),
    /// A well-formed record that is not a process event (another event id).
    Skipped,
    /// A record that could not be read; counted per `kind` and reported once per kind
    /// with its first location.
    Malformed {
        kind: &'static str,
        location: Location,
        message: String,
    },
}

impl SourceEvent {
    /// An event of live source `kind`, which reports no parent fields of its own.
    pub fn live(
        kind: &'static str,
        action: Action,
        timestamp: Option<DateTime<Utc>>,
        hostname: Option<Text>,
        process: ProcessRecord,
    ) -> SourceEvent {
        SourceEvent {
            timestamp,
            hostname,
            action,
            process,
            parent: ParentFields::default(),
            origin: Origin {
                kind,
                file: None,
                location: Location::Live,
            },
        }
    }

    /// A test event: process `pid` (`exe`) started by `ppid`, no time, no host.
    #[cfg(test)]
    pub fn created(pid: u32, ppid: u32, exe: &str) -> SourceEvent {
        let process = ProcessRecord {
            pid,
            ppid: Some(ppid),
            exe: Some(exe.into()),
            ..Default::default()
        };
        SourceEvent::live("test", Action::Create, None, None, process)
    }
}

/// The file-name part of a Windows or POSIX path.
pub fn file_name(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_name_of_windows_and_posix_paths() {
        assert_eq!(file_name(r"C:\Windows\System32\cmd.exe"), "cmd.exe");
        assert_eq!(file_name("/usr/sbin/nginx"), "nginx");
        assert_eq!(file_name("cmd.exe"), "cmd.exe");
        assert_eq!(file_name(r"C:\dir\"), "");
    }
}
