//! The 351 process events recorded on real Windows 7 and 10 hosts in
//! `../shared/data/etw/` (raw UserData, header facts, every field decoded independently
//! by its `decode.py`), replayed through what the live callbacks do: split into
//! properties as ferrisetw splits them from TDH's schema, extracted, joined. And through
//! the fixed-layout fallback, which must read the kernel logger's events the same way.

use super::accounts::{AccountLookup, SidCache};
use super::join::{complete_exe, JoinConfig, Joiner};
use super::layout::tests::{kernel_process_start, kernel_process_stop};
use super::layout::{split, system_logger_process, InType, Property, Split};
use super::paths::DeviceMap;
use super::raw::{
    kernel_process_event, system_logger_event_or_fixed, Decoding, EventFields, Extracted, RawEvent,
    RecordHeader, SL_DC_END, SL_DC_START, SL_END, SL_START,
};
use super::sid::{sid_to_string, wbemsid_to_string};
use super::strings::{clean_command_line, decode, Encoding};
use super::time::filetime_to_utc;
use crate::record::{file_name, Action, SourceEvent};
use serde_json::{json, Value};
use std::time::Duration;

/// One line of the recordings.
struct Recorded {
    line: Value,
    header: RecordHeader,
    user_data: Vec<u8>,
}

impl Recorded {
    fn source(&self) -> &str {
        self.line["source"].as_str().unwrap()
    }

    fn expected(&self, name: &str) -> &Value {
        &self.line["expected"][name]
    }

    fn expected_u32(&self, name: &str) -> Option<u32> {
        self.expected(name)
            .as_u64()
            .map(|v| u32::try_from(v).unwrap())
    }

    fn expected_str(&self, name: &str) -> &str {
        self.expected(name).as_str().unwrap_or_default()
    }

    fn what(&self) -> String {
        let l = &self.line;
        format!(
            "{} event {} opcode {} v{} from {}",
            l["source"], l["event_id"], l["opcode"], l["version"], l["origin"]["path"]
        )
    }

    /// The schema TDH reports for the event (the manifest's, or the MOF class's).
    fn schema(&self) -> Vec<Property> {
        let h = &self.header;
        match (self.source(), h.event_id) {
            ("kernel_process", 1) => kernel_process_start(h.version),
            ("kernel_process", 2) => kernel_process_stop(h.version),
            ("system_logger", 0) => system_logger_process(h.version).unwrap(),
            _ => panic!("{}: no schema", self.what()),
        }
    }
}

fn recordings(file: &str) -> Vec<Recorded> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/etw/").to_string() + file;
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{path}: {e} (the shared recordings belong beside the workspace, as ../shared)")
    });
    text.lines().map(parse).collect()
}

fn parse(line: &str) -> Recorded {
    let line: Value = serde_json::from_str(line).unwrap();
    let number = |name: &str| line[name].as_u64().unwrap();
    let header = RecordHeader {
        event_id: u16::try_from(number("event_id")).unwrap(),
        opcode: u8::try_from(number("opcode")).unwrap(),
        version: u8::try_from(number("version")).unwrap(),
        // null for the rundowns' PERFINFO headers and the payload-only origins
        process_id: line["header_pid"].as_u64().map_or(0, |p| p as u32),
        timestamp: 133_540_000_000_000_000,
        flags: u16::try_from(number("realtime_header_flags")).unwrap(),
    };
    let user_data = unhex(line["user_data_hex"].as_str().unwrap());
    Recorded {
        line,
        header,
        user_data,
    }
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A property as `decode.py` writes it.
fn value(fields: &Split, property: &Property, pointer_size: usize) -> Value {
    let name = property.name;
    let Some(bytes) = fields.bytes(name) else {
        return json!("<absent>");
    };
    match property.in_type {
        InType::UInt16 => json!(u16::from_le_bytes(bytes[..].try_into().unwrap())),
        InType::UInt32 => json!(fields.u32(name)),
        InType::Int32 => json!(fields.u32(name).map(|v| v as i32)),
        InType::UInt64 | InType::FileTime => json!(fields.u64(name)),
        InType::Pointer if pointer_size == 4 => json!(fields.u32(name)),
        InType::Pointer => json!(fields.u64(name)),
        InType::Sid => json!(sid_to_string(&bytes)),
        InType::WbemSid => json!(wbemsid_to_string(&bytes, pointer_size)),
        InType::AnsiString => json!(decode(&bytes, Encoding::Ansi)),
        InType::UnicodeString => json!(decode(&bytes, Encoding::Utf16)),
    }
}

/// Every property `decode.py` found is split out with its value, and the split covers
/// the whole payload.
fn assert_split_matches(r: &Recorded, fields: &Split, schema: &[Property]) {
    let what = r.what();
    let pointer_size = r.header.pointer_size();
    assert_eq!(
        pointer_size as u64,
        r.line["pointer_size"].as_u64().unwrap()
    );
    let expected = r.line["expected"].as_object().unwrap();
    for (name, want) in expected {
        if name == "UserSID_hex" {
            assert_eq!(
                &json!(fields.bytes("UserSID").map(|b| hex(&b))),
                want,
                "{what}"
            );
            continue;
        }
        let property = schema.iter().find(|p| p.name == name);
        let property = property.unwrap_or_else(|| panic!("{what}: {name} not in the schema"));
        assert_eq!(
            &value(fields, property, pointer_size),
            want,
            "{what}: {name}"
        );
    }
    assert_eq!(
        schema.len(),
        expected.len() - usize::from(expected.contains_key("UserSID_hex"))
    );
    assert_eq!(
        fields.covered(),
        r.user_data.len(),
        "{what}: bytes left over"
    );
}

struct NoAccounts;
impl AccountLookup for NoAccounts {
    fn lookup(&self, _sid: &str) -> Option<String> {
        None
    }
}

fn joiner() -> Joiner {
    let accounts = SidCache::new(Box::new(NoAccounts), 16);
    Joiner::new(JoinConfig::default(), DeviceMap::new(), accounts)
}

/// What the join makes of the event alone.
fn joined(raw: RawEvent) -> Vec<SourceEvent> {
    let mut j = joiner();
    let mut out = j.on_raw(raw, Duration::ZERO);
    out.extend(j.flush(Duration::from_secs(1)));
    out
}

fn check_kernel_process(r: &Recorded) {
    let what = r.what();
    let schema = r.schema();
    let fields = split(&schema, &r.user_data, r.header.pointer_size());
    assert_split_matches(r, &fields, &schema);
    let Extracted::Event(raw) = kernel_process_event(&r.header, &fields) else {
        panic!("{what}: not extracted")
    };
    let pid = r.expected_u32("ProcessID").unwrap();
    let out = joined(raw.clone());
    match raw {
        RawEvent::KernelStart(k) => {
            assert_eq!(k.pid, pid, "{what}");
            assert_eq!(k.parent_pid, r.expected_u32("ParentProcessID"), "{what}");
            assert_eq!(k.session_id, r.expected_u32("SessionID"), "{what}");
            assert_eq!(
                Some(k.create_time_filetime),
                r.expected("CreateTime").as_u64()
            );
            assert_eq!(k.image_name, r.expected_str("ImageName"), "{what}");
            let label = r.expected("MandatoryLabel").as_str().map(str::to_string);
            assert_eq!(k.mandatory_label, label, "{what}");
            assert_eq!(k.creator_pid, r.header.process_id, "{what}");
            let [create] = &out[..] else {
                panic!("{what}: {out:?}")
            };
            let p = &create.process;
            assert_eq!(create.action, Action::Create);
            assert_eq!(
                (p.pid, p.ppid, p.creator_pid),
                (pid, k.parent_pid, Some(k.creator_pid))
            );
            assert_eq!(p.exe.as_deref(), Some(file_name(&k.image_name)), "{what}");
            assert_eq!(create.timestamp, filetime_to_utc(k.create_time_filetime));
        }
        RawEvent::KernelStop(s) => {
            assert_eq!(s.pid, pid, "{what}");
            assert_eq!(
                Some(s.create_time_filetime),
                r.expected("CreateTime").as_u64()
            );
            assert_eq!(Some(s.exit_time_filetime), r.expected("ExitTime").as_u64());
            assert_eq!(s.exit_code, r.expected_u32("ExitCode"), "{what}");
            let [end] = &out[..] else {
                panic!("{what}: {out:?}")
            };
            // no start seen: no name (not the stop's cut one)
            assert_eq!((end.action, end.process.pid), (Action::Terminate, pid));
            assert_eq!(end.process.exe, None, "{what}");
            assert_eq!(end.timestamp, filetime_to_utc(s.exit_time_filetime));
        }
        RawEvent::Logger(_) => panic!("{what}"),
    }
}

fn check_system_logger(r: &Recorded) {
    let what = r.what();
    let h = &r.header;
    let schema = r.schema();
    let fields = split(&schema, &r.user_data, h.pointer_size());
    assert_split_matches(r, &fields, &schema);
    let (extracted, decoding) = system_logger_event_or_fixed(h, Some(&fields), &r.user_data);
    assert_eq!(decoding, Decoding::Tdh, "{what}");
    // the fallback, as when TDH has no schema: the same event
    let fallback = system_logger_event_or_fixed(h, None, &r.user_data);
    assert_eq!(
        fallback,
        (extracted.clone(), Decoding::FixedLayout),
        "{what}"
    );
    let Extracted::Event(RawEvent::Logger(l)) = extracted else {
        panic!("{what}: not extracted")
    };
    let pid = r.expected_u32("ProcessId").unwrap();
    assert_eq!(
        (l.opcode, l.pid, l.header_pid),
        (h.opcode, pid, h.process_id)
    );
    assert_eq!(l.parent_pid, r.expected_u32("ParentId"), "{what}");
    assert_eq!(l.session_id, r.expected_u32("SessionId"), "{what}");
    let exit_status = r.expected("ExitStatus").as_i64().map(|v| v as i32);
    assert_eq!(l.exit_status, exit_status, "{what}");
    let user_sid = l.user_sid.as_deref().unwrap();
    assert_eq!(hex(user_sid), r.expected_str("UserSID_hex"), "{what}");
    let sid = wbemsid_to_string(user_sid, usize::from(l.pointer_size));
    assert_eq!(sid.as_deref(), r.expected("UserSID").as_str(), "{what}");
    assert_eq!(l.image_file_name, r.expected_str("ImageFileName"), "{what}");
    assert_eq!(l.command_line, r.expected_str("CommandLine"), "{what}");

    let out = joined(RawEvent::Logger(l.clone()));
    let command_line = clean_command_line(&l.command_line);
    let exe = complete_exe(&l.image_file_name, &command_line);
    let [event] = &out[..] else {
        assert!(out.is_empty() && h.opcode == SL_DC_END, "{what}: {out:?}");
        return;
    };
    let p = &event.process;
    assert_eq!((p.pid, p.exe.as_deref()), (pid, exe.as_deref()), "{what}");
    let want = match h.opcode {
        SL_START => Action::Create,
        SL_DC_START => Action::Existing,
        SL_END => Action::Terminate,
        _ => panic!("{what}: {out:?}"),
    };
    assert_eq!(event.action, want, "{what}");
    if want == Action::Terminate {
        return;
    }
    assert_eq!(p.ppid, l.parent_pid, "{what}");
    assert_eq!(p.sid.as_deref(), sid.as_deref(), "{what}");
    let command_line = (!command_line.is_empty()).then_some(command_line);
    assert_eq!(p.command_line.as_deref(), command_line.as_deref(), "{what}");
    let creator = (want == Action::Create && h.process_id != 0).then_some(h.process_id);
    assert_eq!(p.creator_pid, creator, "{what}");
}

#[test]
fn recorded_kernel_process_events_decode_as_recorded() {
    let events = recordings("kernel_process.jsonl");
    assert_eq!(events.len(), 12);
    for r in &events {
        check_kernel_process(r);
    }
}

#[test]
fn recorded_system_logger_events_decode_as_recorded_through_tdh_and_the_fixed_layout() {
    let events = recordings("system_logger.jsonl");
    assert_eq!(events.len(), 339);
    for r in &events {
        check_system_logger(r);
    }
}

#[test]
fn recorded_halves_of_one_process_join_into_one_create() {
    let kernel = recordings("kernel_process.jsonl");
    let logger = recordings("system_logger.jsonl");
    let mut pairs = 0;
    for k in kernel.iter().filter(|r| r.header.event_id == 1) {
        let pid = k.expected_u32("ProcessID");
        let same_trace = |l: &&Recorded| {
            l.header.opcode == SL_START
                && l.expected_u32("ProcessId") == pid
                && l.line["origin"]["path"] == k.line["origin"]["path"]
        };
        let Some(l) = logger.iter().find(same_trace) else {
            continue;
        };
        pairs += 1;
        let extract = |r: &Recorded, header: RecordHeader| {
            let schema = r.schema();
            let fields = split(&schema, &r.user_data, header.pointer_size());
            match r.source() {
                "kernel_process" => kernel_process_event(&header, &fields),
                _ => system_logger_event_or_fixed(&header, Some(&fields), &r.user_data).0,
            }
        };
        // the recordings keep no header times: the logger's 3 ms after the kernel's
        let mut lh = l.header;
        lh.timestamp = k.header.timestamp + 30_000;
        let (Extracted::Event(kraw), Extracted::Event(lraw)) =
            (extract(k, k.header), extract(l, lh))
        else {
            panic!("{}", k.what())
        };
        let mut j = joiner();
        let mut out = j.on_raw(kraw, Duration::ZERO);
        out.extend(j.on_raw(lraw, Duration::from_millis(900)));
        let [create] = &out[..] else {
            panic!("{}: {out:?}", k.what())
        };
        let p = &create.process;
        assert_eq!(create.action, Action::Create);
        // \Device\Mup\clrmain\... becomes \\clrmain\...
        let image = k.expected_str("ImageName");
        assert!(p
            .image_path
            .as_deref()
            .is_some_and(|p| p.ends_with(file_name(image))));
        let command_line = clean_command_line(l.expected_str("CommandLine"));
        assert_eq!(p.command_line.as_deref(), Some(command_line.as_str()));
        assert_eq!(
            (p.ppid, p.creator_pid),
            (k.expected_u32("ParentProcessID"), Some(k.header.process_id))
        );
        assert_eq!(p.sid.as_deref(), l.expected("UserSID").as_str());
        assert_eq!(j.counts().joined, 1);
    }
    assert_eq!(pairs, 2);
}

/// The first recorded logger Start of a version.
fn logger_start(version: u8) -> Recorded {
    let events = recordings("system_logger.jsonl");
    let start = events
        .into_iter()
        .find(|r| r.header.opcode == SL_START && r.header.version == version);
    start.unwrap()
}

#[test]
fn the_fixed_layout_stands_in_when_tdh_gives_less_than_the_whole_event() {
    let r = logger_start(4);
    let h = &r.header;
    let whole = system_logger_event_or_fixed(h, None, &r.user_data);
    assert!(matches!(
        whole,
        (Extracted::Event(_), Decoding::FixedLayout)
    ));
    // TDH could not size UserSID: ferrisetw's split stops there
    let schema = r.schema();
    let cut = split(&schema[..7], &r.user_data, 8);
    assert_eq!(
        system_logger_event_or_fixed(h, Some(&cut), &r.user_data),
        whole
    );
    // a schema without the fields (ferrisetw could not list the properties)
    let none = split(&[], &r.user_data, 8);
    assert_eq!(
        system_logger_event_or_fixed(h, Some(&none), &r.user_data),
        whole
    );
    // neither TDH nor a layout for the version
    let mut v5 = *h;
    v5.version = 5;
    let (failed, _) = system_logger_event_or_fixed(&v5, None, &r.user_data);
    assert!(matches!(failed, Extracted::Malformed(_)), "{failed:?}");
    // a version without a layout keeps what TDH gave, even cut
    let (partial, decoding) = system_logger_event_or_fixed(&v5, Some(&cut), &r.user_data);
    assert_eq!(decoding, Decoding::Tdh);
    assert!(matches!(partial, Extracted::Event(RawEvent::Logger(ref l)) if l.user_sid.is_none()));
    // a payload cut inside the fixed part: the layout has no ProcessId either
    let (short, _) = system_logger_event_or_fixed(h, None, &r.user_data[..10]);
    assert!(matches!(short, Extracted::Malformed(_)), "{short:?}");
    // not a process start/end/rundown: ignored whatever TDH says
    let mut defunct = *h;
    defunct.opcode = 39;
    let ignored = system_logger_event_or_fixed(&defunct, None, &r.user_data);
    assert_eq!(ignored, (Extracted::Ignored, Decoding::Tdh));
}

/// A 64-bit `Process_V3/V4_TypeGroup1` payload as a 32-bit kernel writes it: 4-byte
/// pointers, an 8-byte TOKEN_USER.
fn as_32_bit(user_data: &[u8], version: u8) -> Vec<u8> {
    let mut out = user_data[..4].to_vec(); // UniqueProcessKey, low half
    out.extend(&user_data[8..24]); // ProcessId, ParentId, SessionId, ExitStatus
    out.extend(&user_data[24..28]); // DirectoryTableBase, low half
    let mut at = 32;
    if version >= 4 {
        out.extend(&user_data[32..36]); // Flags
        at = 36;
    }
    out.extend(&user_data[at..at + 4]); // TOKEN_USER.Sid, low half
    out.extend(&user_data[at + 8..at + 12]); // Attributes
    out.extend(&user_data[at + 16..]); // the SID and the strings
    out
}

#[test]
fn the_fixed_layout_reads_32_bit_events() {
    for version in [3, 4] {
        let r = logger_start(version);
        let (Extracted::Event(RawEvent::Logger(wide)), _) =
            system_logger_event_or_fixed(&r.header, None, &r.user_data)
        else {
            panic!("v{version}")
        };
        let mut h32 = r.header;
        h32.flags |= super::raw::EVENT_HEADER_FLAG_32_BIT_HEADER;
        let narrow = as_32_bit(&r.user_data, version);
        let (Extracted::Event(RawEvent::Logger(l)), Decoding::FixedLayout) =
            system_logger_event_or_fixed(&h32, None, &narrow)
        else {
            panic!("v{version}")
        };
        assert_eq!(l.pointer_size, 4);
        assert_eq!(
            (l.pid, l.parent_pid, l.exit_status),
            (wide.pid, wide.parent_pid, wide.exit_status)
        );
        assert_eq!(
            (&l.image_file_name, &l.command_line),
            (&wide.image_file_name, &wide.command_line)
        );
        let sid = |l: &super::raw::SystemLoggerProcess| {
            wbemsid_to_string(l.user_sid.as_deref().unwrap(), usize::from(l.pointer_size))
        };
        assert_eq!(sid(&l), sid(&wide));
        assert!(sid(&l).is_some());
    }
}
