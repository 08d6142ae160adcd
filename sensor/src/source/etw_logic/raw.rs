//! Raw fields copied out of ETW records, and the extraction that fills them.
//!
//! The ETW callbacks (Windows only) do nothing but wrap ferrisetw's parser in
//! [`EventFields`] and call [`kernel_process_event`] or [`system_logger_event_or_fixed`];
//! the extraction itself is plain code, tested here against the documented layouts and,
//! in `recorded_events`, against 351 events recorded on real hosts.
//!
//! Strings and SIDs are read as raw bytes, never through ferrisetw's `String` parsing:
//! that path hits `unimplemented!()` on counted strings and rejects non-UTF-8 ANSI text.

use super::layout::{split, system_logger_process};
use super::sid;
use super::strings::{decode, Encoding};

/// `EVENT_HEADER_FLAG_32_BIT_HEADER`: the event was logged by a 32-bit kernel/process.
pub const EVENT_HEADER_FLAG_32_BIT_HEADER: u16 = 0x0020;

/// Microsoft-Windows-Kernel-Process event ids.
pub const KP_PROCESS_START: u16 = 1;
pub const KP_PROCESS_STOP: u16 = 2;

/// Kernel system logger, Process class opcodes.
pub const SL_START: u8 = 1;
pub const SL_END: u8 = 2;
pub const SL_DC_START: u8 = 3;
pub const SL_DC_END: u8 = 4;

/// The parts of `EVENT_HEADER` the extraction needs.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordHeader {
    pub event_id: u16,
    pub opcode: u8,
    pub version: u8,
    /// `EventHeader.ProcessId`: the process that was running when the event was logged.
    pub process_id: u32,
    /// `EventHeader.TimeStamp` (a FILETIME in a real-time session).
    pub timestamp: i64,
    /// `EventHeader.Flags`.
    pub flags: u16,
}

impl RecordHeader {
    /// Size of a pointer in the event's payload.
    pub fn pointer_size(&self) -> usize {
        if self.flags & EVENT_HEADER_FLAG_32_BIT_HEADER != 0 {
            4
        } else {
            8
        }
    }

    fn timestamp_filetime(&self) -> u64 {
        u64::try_from(self.timestamp).unwrap_or(0)
    }
}

/// Named payload fields of one event. Each accessor returns `None` when the field is
/// absent or has another size, never panics.
pub trait EventFields {
    fn u32(&self, name: &str) -> Option<u32>;
    fn u64(&self, name: &str) -> Option<u64>;
    /// The field's raw bytes (strings, SIDs).
    fn bytes(&self, name: &str) -> Option<Vec<u8>>;
}

/// Microsoft-Windows-Kernel-Process event 1 (ProcessStart), any version (0 on Windows 7,
/// 5 on Windows 11): fields are read by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelProcessStart {
    pub pid: u32,
    pub parent_pid: Option<u32>,
    /// 0 when absent.
    pub create_time_filetime: u64,
    pub session_id: Option<u32>,
    /// Full NT device path (`\Device\HarddiskVolume3\Windows\System32\cmd.exe`); empty
    /// when absent.
    pub image_name: String,
    /// The integrity level's SID (`S-1-16-12288`), version 3 and later.
    pub mandatory_label: Option<String>,
    /// The header's ProcessId: the process that really called CreateProcess.
    pub creator_pid: u32,
    pub timestamp_filetime: u64,
    pub version: u8,
}

/// Microsoft-Windows-Kernel-Process event 2 (ProcessStop), any version (1 on Windows 7
/// and 10, 2 on Windows 11). Its `ImageName` is not read: ANSI and cut to 14 characters
/// (`SearchProtocol`), it would only mislead; a terminate names the image of its start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelProcessStop {
    pub pid: u32,
    pub create_time_filetime: u64,
    pub exit_time_filetime: u64,
    pub exit_code: Option<u32>,
    pub timestamp_filetime: u64,
}

/// Kernel system logger, Process class (`Process_V2/V3/V4_TypeGroup1`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SystemLoggerProcess {
    /// 1 start, 2 end, 3 DCStart (rundown), 4 DCEnd.
    pub opcode: u8,
    pub pid: u32,
    /// `EventHeader.ProcessId`: for a Start the process that called CreateProcess, for
    /// an End the process that ends.
    pub header_pid: u32,
    pub parent_pid: Option<u32>,
    pub session_id: Option<u32>,
    pub exit_status: Option<i32>,
    /// Raw WBEMSID bytes (TOKEN_USER, then the SID).
    pub user_sid: Option<Vec<u8>>,
    /// ANSI. The whole file name on Windows 8 and later (`StartMenuExperienceHost.exe`
    /// in the recordings); Windows 7 sends the EPROCESS name, cut to 15 characters
    /// (`UMWorkerProcess`).
    pub image_file_name: String,
    /// May start with `\??\`; empty when absent.
    pub command_line: String,
    pub timestamp_filetime: u64,
    /// Pointer size of the payload, for the WBEMSID header.
    pub pointer_size: u8,
}

/// What the ETW callbacks hand to the join thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawEvent {
    KernelStart(KernelProcessStart),
    KernelStop(KernelProcessStop),
    Logger(SystemLoggerProcess),
}

/// Result of an extraction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Extracted {
    Event(RawEvent),
    /// Another event id or opcode: not a process event this source uses.
    Ignored,
    /// A process event without a field it cannot do without.
    Malformed(&'static str),
}

/// Whether a Kernel-Process event is worth a schema lookup (the callback checks this first).
pub fn wants_kernel_process(h: &RecordHeader) -> bool {
    matches!(h.event_id, KP_PROCESS_START | KP_PROCESS_STOP)
}

/// Whether a system logger event is worth a schema lookup.
pub fn wants_system_logger(h: &RecordHeader) -> bool {
    matches!(h.opcode, SL_START | SL_END | SL_DC_START | SL_DC_END)
}

fn string(f: &dyn EventFields, name: &str, enc: Encoding) -> String {
    f.bytes(name).map(|b| decode(&b, enc)).unwrap_or_default()
}

/// Microsoft-Windows-Kernel-Process ProcessStart / ProcessStop.
pub fn kernel_process_event(h: &RecordHeader, f: &dyn EventFields) -> Extracted {
    match h.event_id {
        KP_PROCESS_START => {
            let Some(pid) = f.u32("ProcessID") else {
                return Extracted::Malformed("Kernel-Process ProcessStart without ProcessID");
            };
            Extracted::Event(RawEvent::KernelStart(KernelProcessStart {
                pid,
                parent_pid: f.u32("ParentProcessID"),
                create_time_filetime: f.u64("CreateTime").unwrap_or(0),
                session_id: f.u32("SessionID"),
                image_name: string(f, "ImageName", Encoding::Utf16),
                mandatory_label: f
                    .bytes("MandatoryLabel")
                    .and_then(|b| sid::sid_to_string(&b)),
                creator_pid: h.process_id,
                timestamp_filetime: h.timestamp_filetime(),
                version: h.version,
            }))
        }
        KP_PROCESS_STOP => {
            let Some(pid) = f.u32("ProcessID") else {
                return Extracted::Malformed("Kernel-Process ProcessStop without ProcessID");
            };
            Extracted::Event(RawEvent::KernelStop(KernelProcessStop {
                pid,
                create_time_filetime: f.u64("CreateTime").unwrap_or(0),
                exit_time_filetime: f.u64("ExitTime").unwrap_or(0),
                exit_code: f.u32("ExitCode"),
                timestamp_filetime: h.timestamp_filetime(),
            }))
        }
        _ => Extracted::Ignored,
    }
}

/// How a system logger event was read.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Decoding {
    /// Through TDH's schema (ferrisetw's parser).
    Tdh,
    /// By the documented fixed layout, TDH having failed.
    FixedLayout,
}

/// A kernel system logger Process event: from TDH's fields (`tdh`, `None` when the schema
/// could not be had) when they give the whole event, else split from `user_data` by the
/// documented `Process_V2..V4_TypeGroup1` layout. TDH reads the MOF class definitions
/// from the WMI repository, so broken WMI would otherwise leave every logger event
/// unparsed. A TDH event counts as whole when it reached `UserSID`: ferrisetw stops at
/// the first property whose size TDH cannot tell, and the rest goes missing.
pub fn system_logger_event_or_fixed(
    h: &RecordHeader,
    tdh: Option<&dyn EventFields>,
    user_data: &[u8],
) -> (Extracted, Decoding) {
    if !wants_system_logger(h) {
        return (Extracted::Ignored, Decoding::Tdh);
    }
    let via_tdh = match tdh.map(|f| system_logger_event(h, f)) {
        Some(
            whole @ Extracted::Event(RawEvent::Logger(SystemLoggerProcess {
                user_sid: Some(_),
                ..
            })),
        ) => return (whole, Decoding::Tdh),
        other => other,
    };
    let via_layout = system_logger_process(h.version)
        .map(|schema| system_logger_event(h, &split(&schema, user_data, h.pointer_size())));
    match (via_layout, via_tdh) {
        (Some(event @ Extracted::Event(_)), _) => (event, Decoding::FixedLayout),
        (_, Some(partial)) => (partial, Decoding::Tdh),
        (Some(failed), None) => (failed, Decoding::FixedLayout),
        (None, None) => (
            Extracted::Malformed(
                "system logger Process event: no schema, and no known layout for its version",
            ),
            Decoding::FixedLayout,
        ),
    }
}

/// Kernel system logger Process events (start, end, rundown).
pub fn system_logger_event(h: &RecordHeader, f: &dyn EventFields) -> Extracted {
    if !wants_system_logger(h) {
        return Extracted::Ignored;
    }
    let Some(pid) = f.u32("ProcessId") else {
        return Extracted::Malformed("system logger Process event without ProcessId");
    };
    Extracted::Event(RawEvent::Logger(SystemLoggerProcess {
        opcode: h.opcode,
        pid,
        header_pid: h.process_id,
        parent_pid: f.u32("ParentId"),
        session_id: f.u32("SessionId"),
        exit_status: f.u32("ExitStatus").map(|v| v as i32),
        user_sid: f.bytes("UserSID"),
        image_file_name: string(f, "ImageFileName", Encoding::Ansi),
        command_line: string(f, "CommandLine", Encoding::Utf16),
        timestamp_filetime: h.timestamp_filetime(),
        pointer_size: h.pointer_size() as u8,
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::source::etw_logic::sid::string_to_sid;
    use crate::source::etw_logic::sid::tests::{user_sid_bytes, wbemsid};
    use std::collections::HashMap;

    #[derive(Clone, Debug)]
    pub(crate) enum V {
        U32(u32),
        U64(u64),
        Bytes(Vec<u8>),
    }

    /// A fake event payload, as ferrisetw's parser would present it: a size mismatch is
    /// an error, a missing field is an error.
    #[derive(Default)]
    pub(crate) struct Fake(pub HashMap<&'static str, V>);

    impl Fake {
        pub(crate) fn with(mut self, name: &'static str, v: V) -> Fake {
            self.0.insert(name, v);
            self
        }
        pub(crate) fn without(mut self, name: &'static str) -> Fake {
            self.0.remove(name);
            self
        }
    }

    impl EventFields for Fake {
        fn u32(&self, name: &str) -> Option<u32> {
            match self.0.get(name)? {
                V::U32(v) => Some(*v),
                _ => None,
            }
        }
        fn u64(&self, name: &str) -> Option<u64> {
            match self.0.get(name)? {
                V::U64(v) => Some(*v),
                _ => None,
            }
        }
        fn bytes(&self, name: &str) -> Option<Vec<u8>> {
            Some(match self.0.get(name)? {
                V::U32(v) => v.to_le_bytes().to_vec(),
                V::U64(v) => v.to_le_bytes().to_vec(),
                V::Bytes(b) => b.clone(),
            })
        }
    }

    pub(crate) fn utf16z(s: &str) -> V {
        V::Bytes(
            s.encode_utf16()
                .chain([0])
                .flat_map(|u| u.to_le_bytes())
                .collect(),
        )
    }

    pub(crate) fn ansiz(s: &str) -> V {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        V::Bytes(b)
    }

    pub(crate) const CREATE_TIME: u64 = 133_540_000_000_000_000;

    /// ProcessStart payload as the manifest defines it for `version`
    /// (ProcessStartArgs, _V1 .. _V4).
    pub(crate) fn process_start_fields(version: u8, pid: u32, image: &str) -> Fake {
        let mut f = Fake::default()
            .with("ProcessID", V::U32(pid))
            .with("CreateTime", V::U64(CREATE_TIME))
            .with("ParentProcessID", V::U32(4012))
            .with("SessionID", V::U32(0))
            .with("ImageName", utf16z(image));
        if version >= 1 {
            f = f.with("Flags", V::U32(0));
        }
        if version >= 2 {
            f = f
                .with("ImageChecksum", V::U32(0x5_0000))
                .with("TimeDateStamp", V::U32(0x6543_2100))
                .with("PackageFullName", utf16z(""))
                .with("PackageRelativeAppId", utf16z(""));
        }
        if version >= 3 {
            f = f
                .with("ProcessSequenceNumber", V::U64(900))
                .with("ParentProcessSequenceNumber", V::U64(800))
                .with("ProcessTokenElevationType", V::U32(1))
                .with("ProcessTokenIsElevated", V::U32(1))
                .with(
                    "MandatoryLabel",
                    V::Bytes(string_to_sid("S-1-16-12288").unwrap()),
                );
        }
        f
    }

    pub(crate) fn header(
        event_id: u16,
        opcode: u8,
        version: u8,
        pid: u32,
        ts: u64,
    ) -> RecordHeader {
        RecordHeader {
            event_id,
            opcode,
            version,
            process_id: pid,
            timestamp: ts as i64,
            flags: 0x0040,
        }
    }

    /// Process_V4_TypeGroup1 payload of the kernel system logger.
    pub(crate) fn logger_fields(
        pid: u32,
        ppid: u32,
        name: &str,
        cmd: &str,
        sid: Option<&[u8]>,
    ) -> Fake {
        Fake::default()
            .with("UniqueProcessKey", V::U64(0xffff_e381_2c3a_5080))
            .with("ProcessId", V::U32(pid))
            .with("ParentId", V::U32(ppid))
            .with("SessionId", V::U32(0))
            .with("ExitStatus", V::U32(259))
            .with("DirectoryTableBase", V::U64(0x1_2345_6000))
            .with("Flags", V::U32(0))
            .with(
                "UserSID",
                V::Bytes(sid.map(wbemsid).unwrap_or_else(|| vec![0; 4])),
            )
            .with("ImageFileName", ansiz(name))
            .with("CommandLine", utf16z(cmd))
            .with("PackageFullName", utf16z(""))
            .with("ApplicationId", utf16z(""))
    }

    #[test]
    fn process_start_all_versions() {
        for version in 0..=4u8 {
            let f = process_start_fields(
                version,
                5120,
                r"\Device\HarddiskVolume3\Windows\System32\cmd.exe",
            );
            let h = header(1, 1, version, 4012, CREATE_TIME + 30);
            let Extracted::Event(RawEvent::KernelStart(s)) = kernel_process_event(&h, &f) else {
                panic!("version {version}")
            };
            assert_eq!(s.pid, 5120);
            assert_eq!(s.parent_pid, Some(4012));
            assert_eq!(s.create_time_filetime, CREATE_TIME);
            assert_eq!(s.session_id, Some(0));
            assert_eq!(
                s.image_name,
                r"\Device\HarddiskVolume3\Windows\System32\cmd.exe"
            );
            assert_eq!(s.creator_pid, 4012);
            assert_eq!(s.timestamp_filetime, CREATE_TIME + 30);
            assert_eq!(s.version, version);
            let label = (version >= 3).then(|| "S-1-16-12288".to_string());
            assert_eq!(s.mandatory_label, label, "version {version}");
        }
    }

    #[test]
    fn process_start_with_missing_or_mistyped_fields() {
        let h = header(1, 1, 3, 77, CREATE_TIME);
        let f = process_start_fields(3, 1, "x").without("ProcessID");
        assert!(matches!(
            kernel_process_event(&h, &f),
            Extracted::Malformed(_)
        ));
        let f = process_start_fields(3, 1, "x")
            .without("CreateTime")
            .without("ImageName")
            .without("ParentProcessID")
            .with("SessionID", V::U64(1)) // wrong size: absent
            .with("MandatoryLabel", V::Bytes(vec![1, 9, 0])); // garbage SID
        let Extracted::Event(RawEvent::KernelStart(s)) = kernel_process_event(&h, &f) else {
            panic!()
        };
        assert_eq!((s.create_time_filetime, s.image_name.as_str()), (0, ""));
        assert_eq!(
            (s.parent_pid, s.session_id, s.mandatory_label),
            (None, None, None)
        );
        // other event ids are not ours
        assert_eq!(
            kernel_process_event(&header(5, 0, 0, 1, 1), &f),
            Extracted::Ignored
        );
        assert!(!wants_kernel_process(&header(5, 0, 0, 1, 1)));
        assert!(wants_kernel_process(&header(2, 2, 0, 1, 1)));
    }

    #[test]
    fn process_stop_gives_pid_and_times() {
        let f = Fake::default()
            .with("ProcessID", V::U32(5120))
            .with("CreateTime", V::U64(CREATE_TIME))
            .with("ExitTime", V::U64(CREATE_TIME + 1_000))
            .with("ExitCode", V::U32(0))
            .with("ImageName", ansiz("SearchProtocol"));
        let Extracted::Event(RawEvent::KernelStop(s)) =
            kernel_process_event(&header(2, 2, 2, 5120, CREATE_TIME + 1_001), &f)
        else {
            panic!()
        };
        assert_eq!((s.pid, s.exit_code), (5120, Some(0)));
        assert_eq!(s.exit_time_filetime, CREATE_TIME + 1_000);
        assert_eq!(s.timestamp_filetime, CREATE_TIME + 1_001);
        let f = f.without("ProcessID");
        assert!(matches!(
            kernel_process_event(&header(2, 2, 2, 1, 1), &f),
            Extracted::Malformed(_)
        ));
    }

    #[test]
    fn system_logger_layout() {
        let sid = user_sid_bytes();
        let f = logger_fields(
            5120,
            4012,
            "cmd.exe",
            r#"\??\C:\Windows\system32\cmd.exe /c "whoami""#,
            Some(&sid),
        );
        let Extracted::Event(RawEvent::Logger(l)) =
            system_logger_event(&header(0, 1, 4, 4012, CREATE_TIME + 10), &f)
        else {
            panic!()
        };
        assert_eq!(
            (l.opcode, l.pid, l.parent_pid, l.session_id),
            (1, 5120, Some(4012), Some(0))
        );
        assert_eq!(l.exit_status, Some(259));
        assert_eq!(l.image_file_name, "cmd.exe");
        assert_eq!(
            l.command_line,
            r#"\??\C:\Windows\system32\cmd.exe /c "whoami""#
        );
        assert_eq!(l.pointer_size, 8);
        assert_eq!(
            sid::wbemsid_to_string(l.user_sid.as_deref().unwrap(), 8).as_deref(),
            Some("S-1-5-21-1004336348-1177238915-682003330-1001")
        );
        // a rundown event has the same layout; other opcodes are ignored
        assert!(matches!(
            system_logger_event(&header(0, 3, 4, 4, 1), &f),
            Extracted::Event(_)
        ));
        assert_eq!(
            system_logger_event(&header(0, 39, 4, 4, 1), &f),
            Extracted::Ignored
        );
        assert_eq!(
            system_logger_event(&header(0, 32, 4, 4, 1), &f),
            Extracted::Ignored
        );
        // missing pid; missing strings and SID
        assert!(matches!(
            system_logger_event(&header(0, 1, 4, 4, 1), &Fake::default()),
            Extracted::Malformed(_)
        ));
        let bare = Fake::default().with("ProcessId", V::U32(9));
        let Extracted::Event(RawEvent::Logger(l)) =
            system_logger_event(&header(0, 2, 3, 4, 1), &bare)
        else {
            panic!()
        };
        assert_eq!(
            (
                l.image_file_name.as_str(),
                l.command_line.as_str(),
                l.user_sid
            ),
            ("", "", None)
        );
    }

    #[test]
    fn negative_header_timestamps_and_32_bit_headers() {
        let mut h = header(0, 1, 4, 4, 0);
        h.timestamp = -1;
        h.flags = EVENT_HEADER_FLAG_32_BIT_HEADER;
        let f = Fake::default().with("ProcessId", V::U32(9));
        let Extracted::Event(RawEvent::Logger(l)) = system_logger_event(&h, &f) else {
            panic!()
        };
        assert_eq!((l.timestamp_filetime, l.pointer_size), (0, 4));
    }
}
