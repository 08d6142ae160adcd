//! The fields a condition can name: the CAR data model for process create.
//!
//! A field is a property of one process. `parent_exe` is not a field of its own: it is
//! [`Field::Exe`] one step up the ancestry (see [`FieldRef`]).
//!
//! Besides the CAR names there are Linux facts: `effective_user` (the real user is
//! `user`; they differ while a setuid program such as `sudo` runs) and three yes/no
//! fields: `listens`, the process holds a listening TCP socket (a live sensor finds that
//! out when a rule asks; a recording does not know it, so there it is absent), and
//! `exe_deleted` / `exe_memfd`, its executable is a deleted file / a memfd.

/// A property of one process.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Exe,
    ImagePath,
    CommandLine,
    Pid,
    Ppid,
    CreatorPid,
    User,
    Sid,
    IntegrityLevel,
    CurrentWorkingDirectory,
    Hostname,
    OriginalFileName,
    /// The PE's version resource, as Sysmon records it: `Description`, `Product`,
    /// `Company`, `FileVersion`; and its `Hashes` (`SHA256=...,IMPHASH=...`).
    Description,
    Product,
    Company,
    FileVersion,
    Hashes,
    /// The logon session (Sysmon's `LogonId`, `0x3e7`) and the terminal session number.
    LogonId,
    TerminalSessionId,
    EffectiveUser,
    Listens,
    ExeDeleted,
    ExeMemfd,
}

/// Whether a field holds text, a number or a yes/no; decides which operators apply.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Number,
    /// Tested by its bare name (`listens`, `not parent_listens`) or `exists`.
    Flag,
}

impl FieldKind {
    /// The kind in words, for diagnostics.
    pub fn name(self) -> &'static str {
        match self {
            FieldKind::Text => "text",
            FieldKind::Number => "number",
            FieldKind::Flag => "yes/no",
        }
    }
}

impl Field {
    pub const ALL: [Field; 23] = [
        Field::Exe,
        Field::ImagePath,
        Field::CommandLine,
        Field::Pid,
        Field::Ppid,
        Field::CreatorPid,
        Field::User,
        Field::Sid,
        Field::IntegrityLevel,
        Field::CurrentWorkingDirectory,
        Field::Hostname,
        Field::OriginalFileName,
        Field::Description,
        Field::Product,
        Field::Company,
        Field::FileVersion,
        Field::Hashes,
        Field::LogonId,
        Field::TerminalSessionId,
        Field::EffectiveUser,
        Field::Listens,
        Field::ExeDeleted,
        Field::ExeMemfd,
    ];

    /// The CAR data-model name, as written in rules.
    pub fn name(self) -> &'static str {
        match self {
            Field::Exe => "exe",
            Field::ImagePath => "image_path",
            Field::CommandLine => "command_line",
            Field::Pid => "pid",
            Field::Ppid => "ppid",
            Field::CreatorPid => "creator_pid",
            Field::User => "user",
            Field::Sid => "sid",
            Field::IntegrityLevel => "integrity_level",
            Field::CurrentWorkingDirectory => "current_working_directory",
            Field::Hostname => "hostname",
            Field::OriginalFileName => "original_file_name",
            Field::Description => "description",
            Field::Product => "product",
            Field::Company => "company",
            Field::FileVersion => "file_version",
            Field::Hashes => "hashes",
            Field::LogonId => "logon_id",
            Field::TerminalSessionId => "terminal_session_id",
            Field::EffectiveUser => "effective_user",
            Field::Listens => "listens",
            Field::ExeDeleted => "exe_deleted",
            Field::ExeMemfd => "exe_memfd",
        }
    }

    pub fn kind(self) -> FieldKind {
        match self {
            Field::Pid | Field::Ppid | Field::CreatorPid => FieldKind::Number,
            Field::Listens | Field::ExeDeleted | Field::ExeMemfd => FieldKind::Flag,
            _ => FieldKind::Text,
        }
    }

    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Dense index, for per-field tables.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A field of the process `depth` steps up the ancestry from the process being
/// evaluated: depth 0 is the process itself, 1 its parent, 2 its grandparent.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct FieldRef {
    pub field: Field,
    pub depth: u32,
}

impl FieldRef {
    /// Resolves a field name as written in a rule: a base field (`exe`) or a
    /// `parent_` form of one (`parent_exe`, `parent_command_line`, ...).
    pub fn from_name(name: &str) -> Option<FieldRef> {
        if let Some(field) = Field::from_name(name) {
            return Some(FieldRef { field, depth: 0 });
        }
        let base = name.strip_prefix("parent_")?;
        Field::from_name(base).map(|field| FieldRef { field, depth: 1 })
    }

    /// Every name [`FieldRef::from_name`] accepts, for did-you-mean hints.
    pub fn all_names() -> impl Iterator<Item = String> {
        Field::ALL.into_iter().map(|f| f.name().to_string()).chain(
            Field::ALL
                .into_iter()
                .map(|f| format!("parent_{}", f.name())),
        )
    }
}

/// A value an event gives for a field.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Text(&'a str),
    Number(u64),
    Flag(bool),
}

/// A process-creation event as the rules see it. The sensor implements this over its
/// own records, so rules run on any source.
pub trait Event {
    /// The value of `field` for the process `depth` steps up the ancestry (0 = the new
    /// process, 1 = its parent, ...), or `None` when unknown. `hostname` is the event's
    /// host at every depth. Asked only when a rule reaches a test of the field, so a
    /// value that is costly to find out (`listens`) can be found out here, on demand.
    fn value(&self, depth: u32, field: Field) -> Option<Value<'_>>;

    /// How many ancestors are known (0 when even the parent is unknown). Ancestor
    /// conditions look no further.
    fn ancestor_count(&self) -> u32;
}
