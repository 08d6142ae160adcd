//! An event's UserData split into named properties, the way ferrisetw 1.2.0's `Parser`
//! splits it from the schema TDH reports: properties in schema order, each as long as its
//! type says, strings up to and including their NUL (or to the end of the buffer). A
//! property that does not fit ends the split; it and all after it are absent, as in
//! ferrisetw.
//!
//! Two uses. The kernel logger's fixed-layout fallback: ferrisetw decodes its MOF events
//! through TDH, which reads the class definitions from the WMI repository, so on a host
//! with broken WMI every logger event would be unparsed; [`system_logger_process`] is the
//! documented `Process_V2..V4_TypeGroup1` layout (the one Fibratus and PerfView's TraceEvent
//! read at fixed offsets) to split with instead. And the tests, which replay real recorded
//! events through the same splitting as the live callbacks.

use super::raw::EventFields;
use super::sid::token_user_size;

/// The TDH input types of the process events' properties. Those only the
/// Kernel-Process manifest uses exist in tests alone: TDH reads a manifest without WMI,
/// so that provider needs no fallback.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum InType {
    UInt32,
    Int32,
    /// The event's pointer size (`EVENT_HEADER_FLAG_32_BIT_HEADER`).
    Pointer,
    #[cfg(test)]
    UInt16,
    #[cfg(test)]
    UInt64,
    /// `win:FILETIME`, 8 bytes.
    #[cfg(test)]
    FileTime,
    /// A binary SID (`win:SID`); TDH sizes it from its sub-authority count.
    #[cfg(test)]
    Sid,
    /// The kernel logger's `UserSID` (MOF `object`, extension `SID`): a `TOKEN_USER` (two
    /// pointers' worth) and the SID, or four zero bytes for none; TDH sizes it.
    WbemSid,
    AnsiString,
    UnicodeString,
}

/// One property of a schema.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Property {
    pub name: &'static str,
    pub in_type: InType,
}

const fn p(name: &'static str, in_type: InType) -> Property {
    Property { name, in_type }
}

use InType::*;

/// The kernel logger's Process class (`Process_V2..V4_TypeGroup1`: Start, End, DCStart,
/// DCEnd), each property with the first version that has it: V3 (Windows 7) added
/// `DirectoryTableBase`, V4 (Windows 8 to 11) `Flags` and the package names.
const PROCESS_TYPEGROUP1: &[(u8, Property)] = &[
    (2, p("UniqueProcessKey", Pointer)),
    (2, p("ProcessId", UInt32)),
    (2, p("ParentId", UInt32)),
    (2, p("SessionId", UInt32)),
    (2, p("ExitStatus", Int32)),
    (3, p("DirectoryTableBase", Pointer)),
    (4, p("Flags", UInt32)),
    (2, p("UserSID", WbemSid)),
    (2, p("ImageFileName", AnsiString)),
    (2, p("CommandLine", UnicodeString)),
    (4, p("PackageFullName", UnicodeString)),
    (4, p("ApplicationId", UnicodeString)),
];

/// The kernel logger's Process class layout of an event version; `None` for versions
/// without a documented layout.
pub fn system_logger_process(version: u8) -> Option<Vec<Property>> {
    (2..=4)
        .contains(&version)
        .then(|| of_version(PROCESS_TYPEGROUP1, version))
}

/// The properties a version of an event has, in order.
fn of_version(table: &[(u8, Property)], version: u8) -> Vec<Property> {
    let has = table.iter().filter(|(since, _)| *since <= version);
    has.map(|(_, property)| *property).collect()
}

/// The properties of one event, as slices of its UserData.
#[derive(Debug)]
pub struct Split<'a> {
    fields: Vec<(&'static str, &'a [u8])>,
}

/// Splits `user_data` by `schema`.
pub fn split<'a>(schema: &[Property], user_data: &'a [u8], pointer_size: usize) -> Split<'a> {
    let mut fields = Vec::with_capacity(schema.len());
    let mut rest = user_data;
    for property in schema {
        let Some(size) = size_of(property.in_type, rest, pointer_size) else {
            break;
        };
        let Some((value, after)) = rest.split_at_checked(size) else {
            break;
        };
        fields.push((property.name, value));
        rest = after;
    }
    Split { fields }
}

/// A property's size at the start of `rest`: fixed, or what ferrisetw's scan (strings)
/// or TdhGetPropertySize (SIDs) finds. `None` when it cannot be told.
fn size_of(in_type: InType, rest: &[u8], pointer_size: usize) -> Option<usize> {
    Some(match in_type {
        UInt32 | Int32 => 4,
        Pointer => pointer_size,
        #[cfg(test)]
        UInt16 => 2,
        #[cfg(test)]
        UInt64 | FileTime => 8,
        #[cfg(test)]
        Sid => sid_size(rest)?,
        WbemSid => match rest.get(..4)? {
            [0, 0, 0, 0] => 4,
            _ => {
                let token_user = token_user_size(pointer_size);
                token_user + sid_size(rest.get(token_user..)?)?
            }
        },
        AnsiString => rest
            .iter()
            .position(|&b| b == 0)
            .map_or(rest.len(), |nul| nul + 1),
        UnicodeString => rest
            .chunks_exact(2)
            .position(|c| c == [0, 0])
            .map_or(rest.len() & !1, |nul| 2 * nul + 2),
    })
}

/// Revision and count, authority, then four bytes per sub-authority.
fn sid_size(sid: &[u8]) -> Option<usize> {
    Some(8 + 4 * usize::from(*sid.get(1)?))
}

impl Split<'_> {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    /// Bytes of UserData the properties cover.
    #[cfg(test)]
    pub fn covered(&self) -> usize {
        self.fields.iter().map(|(_, v)| v.len()).sum()
    }
}

/// As ferrisetw's `try_parse`: a number only from a property of exactly its size.
impl EventFields for Split<'_> {
    fn u32(&self, name: &str) -> Option<u32> {
        Some(u32::from_le_bytes(self.get(name)?.try_into().ok()?))
    }
    fn u64(&self, name: &str) -> Option<u64> {
        Some(u64::from_le_bytes(self.get(name)?.try_into().ok()?))
    }
    fn bytes(&self, name: &str) -> Option<Vec<u8>> {
        self.get(name).map(<[u8]>::to_vec)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Microsoft-Windows-Kernel-Process ProcessStart (event 1), from the provider's
    /// manifest: what TDH reports for it.
    const KERNEL_PROCESS_START: &[(u8, Property)] = &[
        (0, p("ProcessID", UInt32)),
        (3, p("ProcessSequenceNumber", UInt64)),
        (0, p("CreateTime", FileTime)),
        (0, p("ParentProcessID", UInt32)),
        (3, p("ParentProcessSequenceNumber", UInt64)),
        (0, p("SessionID", UInt32)),
        (1, p("Flags", UInt32)),
        (3, p("ProcessTokenElevationType", UInt32)),
        (3, p("ProcessTokenIsElevated", UInt32)),
        (3, p("MandatoryLabel", Sid)),
        (0, p("ImageName", UnicodeString)),
        (2, p("ImageChecksum", UInt32)),
        (2, p("TimeDateStamp", UInt32)),
        (2, p("PackageFullName", UnicodeString)),
        (2, p("PackageRelativeAppId", UnicodeString)),
        (4, p("SecurityMitigations", UInt32)),
        (5, p("PartitionID", UInt32)),
        (5, p("ProcessMachine", UInt16)),
    ];

    /// Microsoft-Windows-Kernel-Process ProcessStop (event 2).
    const KERNEL_PROCESS_STOP: &[(u8, Property)] = &[
        (0, p("ProcessID", UInt32)),
        (2, p("ProcessSequenceNumber", UInt64)),
        (0, p("CreateTime", FileTime)),
        (0, p("ExitTime", FileTime)),
        (0, p("ExitCode", UInt32)),
        (0, p("TokenElevationType", UInt32)),
        (0, p("HandleCount", UInt32)),
        (0, p("CommitCharge", UInt64)),
        (0, p("CommitPeak", UInt64)),
        (1, p("CPUCycleCount", UInt64)),
        (1, p("ReadOperationCount", UInt32)),
        (1, p("WriteOperationCount", UInt32)),
        (1, p("ReadTransferKiloBytes", UInt32)),
        (1, p("WriteTransferKiloBytes", UInt32)),
        (1, p("HardFaultCount", UInt32)),
        (0, p("ImageName", AnsiString)),
    ];

    pub(crate) fn kernel_process_start(version: u8) -> Vec<Property> {
        of_version(KERNEL_PROCESS_START, version)
    }

    pub(crate) fn kernel_process_stop(version: u8) -> Vec<Property> {
        of_version(KERNEL_PROCESS_STOP, version)
    }

    fn utf16z(s: &str) -> Vec<u8> {
        s.encode_utf16()
            .chain([0])
            .flat_map(u16::to_le_bytes)
            .collect()
    }

    #[test]
    fn strings_end_at_their_nul_or_the_buffer() {
        let schema = [
            p("A", AnsiString),
            p("W", UnicodeString),
            p("Last", UnicodeString),
        ];
        let mut data = b"cmd.exe\0".to_vec();
        data.extend(utf16z("cmd /c whoami"));
        data.extend(&utf16z("tail")[..7]); // unterminated, odd length: the last byte is left
        let s = split(&schema, &data, 8);
        assert_eq!(s.bytes("A").unwrap(), b"cmd.exe\0");
        assert_eq!(s.bytes("W").unwrap(), utf16z("cmd /c whoami"));
        assert_eq!(s.bytes("Last").unwrap(), &utf16z("tail")[..6]);
        assert_eq!(s.covered(), data.len() - 1);
    }

    #[test]
    fn numbers_need_their_exact_size_and_a_short_buffer_ends_the_split() {
        let schema = [p("Key", Pointer), p("Pid", UInt32), p("Time", FileTime)];
        let mut data = 0x1234_5678u32.to_le_bytes().to_vec(); // a 4-byte pointer
        data.extend(77u32.to_le_bytes());
        data.extend([1, 2, 3]); // FileTime cut short
        let s = split(&schema, &data, 4);
        assert_eq!(s.u32("Key"), Some(0x1234_5678));
        assert_eq!(s.u64("Key"), None);
        assert_eq!(s.u32("Pid"), Some(77));
        assert_eq!((s.u64("Time"), s.bytes("Time")), (None, None));
        assert_eq!(s.u32("Nope"), None);
    }

    #[test]
    fn sids_are_sized_from_their_sub_authority_count() {
        let system = [1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0];
        let schema = [p("UserSID", WbemSid), p("Name", AnsiString)];
        for pointer_size in [4, 8] {
            let mut data = vec![0xAA; 2 * pointer_size]; // TOKEN_USER, padding not zero
            data.extend(system);
            data.extend(b"x\0");
            let s = split(&schema, &data, pointer_size);
            assert_eq!(s.bytes("UserSID").unwrap().len(), 2 * pointer_size + 12);
            assert_eq!(s.bytes("Name").unwrap(), b"x\0");
        }
        // no SID: four zero bytes
        let s = split(&schema, b"\0\0\0\0x\0", 8);
        assert_eq!(s.bytes("UserSID").unwrap(), [0; 4]);
        assert_eq!(s.bytes("Name").unwrap(), b"x\0");
        // a SID claiming more sub-authorities than there are bytes: nothing from it on
        let s = split(&[p("Label", Sid), p("Name", AnsiString)], &[1, 5, 0, 0], 8);
        assert_eq!((s.bytes("Label"), s.bytes("Name")), (None, None));
        // garbage never panics
        for n in 0..40u8 {
            let junk: Vec<u8> = (0..n).map(|i| i.wrapping_mul(97).wrapping_add(n)).collect();
            for version in 2..=4 {
                let _ = split(&system_logger_process(version).unwrap(), &junk, 8);
            }
        }
        assert_eq!(system_logger_process(5), None);
    }
}
