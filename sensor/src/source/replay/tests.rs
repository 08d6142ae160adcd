//! Inputs, format detection and the real recordings in `../shared/data/`.

use super::*;
use crate::record::{Action, Location, SourceEvent};
use std::io::Write;

pub(super) use crate::source::needs;

/// A recording in `../shared/data/`; without it the calling test returns at once,
/// skipped (under CI it fails: see `needs`).
macro_rules! data {
    ($name:expr $(,)?) => {
        match $crate::source::replay::tests::needs::shared(&format!("data/{}", $name)) {
            Some(path) => path,
            None => return,
        }
    };
}
pub(super) use data;

fn read_all(input: &Input) -> Vec<ReadItem> {
    read(input, &jsonl_pool::test_workers(3)).unwrap().collect()
}

/// The process events among `items`.
pub(super) fn events(items: &[ReadItem]) -> Vec<&SourceEvent> {
    items
        .iter()
        .filter_map(|item| match item {
            ReadItem::Event(e) => Some(&**e),
            _ => None,
        })
        .collect()
}

fn malformed(items: &[ReadItem]) -> Vec<(&'static str, Location, &str)> {
    items
        .iter()
        .filter_map(|item| match item {
            ReadItem::Malformed {
                kind,
                location,
                message,
            } => Some((*kind, *location, message.as_str())),
            _ => None,
        })
        .collect()
}

fn temp_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(bytes).unwrap();
    file.flush().unwrap();
    file
}

#[test]
fn iis_webshell_evtx_yields_w3wp_to_cmd() {
    let input = Input::file(data!("LM_typical_IIS_webshell_sysmon_1_10_traces.evtx"));
    let items = read_all(&input);
    assert!(malformed(&items).is_empty(), "{:?}", malformed(&items));
    let events = events(&items);
    let shell = events
        .iter()
        .find(|e| e.parent.exe.as_deref() == Some("w3wp.exe"))
        .expect("a process started by w3wp.exe");
    assert_eq!(shell.action, Action::Create);
    assert_eq!(shell.process.exe.as_deref(), Some("cmd.exe"));
    assert_eq!(shell.origin.kind, "replay");
    assert_eq!(shell.origin.file.as_deref(), Some(input.name()));
    assert!(matches!(shell.origin.location, Location::Record(_)));
    // cmd -> net -> net1 follow.
    let exes: Vec<_> = events
        .iter()
        .filter_map(|e| e.process.exe.as_deref())
        .collect();
    assert!(exes.contains(&"net1.exe"), "{exes:?}");
}

#[test]
fn old_4688_layout_has_735_creates_without_parent_image() {
    let items = read_all(&Input::file(data!(
        "ID4688-Tchopper-obfuscated-payload.evtx",
    )));
    assert!(malformed(&items).is_empty(), "{:?}", malformed(&items));
    let creates: Vec<_> = events(&items)
        .into_iter()
        .filter(|e| e.action == Action::Create)
        .collect();
    assert_eq!(creates.len(), 735);
    for e in &creates {
        assert_eq!(e.parent.image_path, None);
        assert!(e.process.ppid.is_some() && e.process.ppid == e.process.creator_pid);
        assert!(e.process.image_path.is_some());
        assert!(e.process.user.as_deref().is_some_and(|u| u.contains('\\')));
        assert!(e.timestamp.is_some() && e.hostname.is_some());
    }
    // Record ids increase: file order.
    let ids: Vec<u64> = creates
        .iter()
        .map(|e| match e.origin.location {
            Location::Record(id) => id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn proxylogon_zip_has_sysmon_and_security_shells_under_w3wp() {
    let input = Input::file(data!("proxylogon_ssrf_rce_poc.zip"));
    let items = read_all(&input);
    assert_eq!(items.len(), 10_487);
    assert!(malformed(&items).is_empty(), "{:?}", malformed(&items));
    let whoami: Vec<_> = events(&items)
        .into_iter()
        .filter(|e| {
            e.action == Action::Create
                && e.process
                    .exe
                    .as_deref()
                    .is_some_and(|x| x.eq_ignore_ascii_case("cmd.exe"))
                && e.process
                    .command_line
                    .as_deref()
                    .is_some_and(|c| c.contains("/c whoami"))
                && e.parent.exe.as_deref() == Some("w3wp.exe")
        })
        .collect();
    // Sysmon has a user and no creator; 4688 has the creator and a SID.
    let sysmon = whoami
        .iter()
        .filter(|e| e.process.creator_pid.is_none())
        .count();
    let security = whoami
        .iter()
        .filter(|e| e.process.creator_pid.is_some())
        .count();
    assert_eq!((sysmon, security), (2, 2), "{whoami:#?}");
    let file = whoami[0].origin.file.as_deref().unwrap();
    assert!(
        file.starts_with(&format!("{}!", input.name())) && file.ends_with(".json"),
        "{file}"
    );
    assert!(matches!(whoami[0].origin.location, Location::Line(n) if n > 1));
}

#[test]
fn log4shell_zip_has_tomcat_starting_powershell() {
    let items = read_all(&Input::file(data!(
        "securityauditing_log4shell_cve2021_44228_java_serialized_object.zip",
    )));
    assert_eq!(items.len(), 39);
    let events = events(&items);
    let ps = events
        .iter()
        .find(|e| e.action == Action::Create && e.process.exe.as_deref() == Some("powershell.exe"))
        .expect("a powershell.exe create");
    assert!(ps
        .parent
        .image_path
        .as_deref()
        .is_some_and(|p| p.ends_with("tomcat9.exe")));
    assert_eq!(ps.hostname.as_deref(), Some("WORKSTATION5"));
    assert_eq!(ps.process.integrity_level.as_deref(), Some("System"));
    assert!(ps.timestamp.is_some());
}

#[test]
fn other_real_evtx_files_read_cleanly() {
    for (name, creates) in [
        (
            "discovery_sysmon_1_iis_pwd_and_config_discovery_appcmd.evtx",
            40,
        ),
        ("sigma_regr_cve_2025_55182_node_child.evtx", 1),
        ("PanacheSysmon_vs_AtomicRedTeam01.evtx", 511),
    ] {
        let items = read_all(&Input::file(data!(name)));
        assert!(
            malformed(&items).is_empty(),
            "{name}: {:?}",
            malformed(&items)
        );
        let n = events(&items)
            .iter()
            .filter(|e| e.action == Action::Create)
            .count();
        assert_eq!(n, creates, "{name}");
    }
}

#[test]
fn truncated_evtx_file_yields_malformed_items_and_goes_on() {
    let whole = std::fs::read(data!("PanacheSysmon_vs_AtomicRedTeam01.evtx")).unwrap();
    let file = temp_file(&whole[..whole.len() / 2 + 1234]);
    let items = read_all(&Input::file(file.path()));
    let bad = malformed(&items);
    assert!(!bad.is_empty());
    assert!(
        bad.iter().all(|(kind, _, _)| *kind == "evtx-record"),
        "{bad:?}"
    );
    assert!(
        bad.iter().any(|(_, _, m)| m.contains("truncated")),
        "{bad:?}"
    );
    assert!(events(&items).len() > 100);
}

#[test]
fn random_bytes_are_rejected_naming_the_file() {
    // Deterministic noise (xorshift), not starting with `{`, a magic or blanks.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut bytes = vec![0x8b_u8];
    for _ in 0..4096 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.push(x as u8);
    }
    let file = temp_file(&bytes);
    let input = Input::file(file.path());
    let message = read(&input, &jsonl_pool::test_workers(3))
        .err()
        .expect("an error")
        .to_string();
    assert!(
        message.starts_with(&format!(
            "{}: not EVTX, JSON or a zip of them (first bytes: 8b ",
            input.name()
        )),
        "{message}"
    );
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let input = Input::file("/nonexistent/x.evtx");
    let message = read(&input, &jsonl_pool::test_workers(3))
        .err()
        .expect("an error")
        .to_string();
    assert!(
        message.starts_with("/nonexistent/x.evtx: cannot open"),
        "{message}"
    );
}

#[test]
fn a_missing_path_is_an_error_in_its_place_and_the_others_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let present = dir.path().join("a.jsonl");
    fs::write(&present, b"{}").unwrap();
    let expanded = expand(&[
        PathBuf::from("/nonexistent/y"),
        present.clone(),
        PathBuf::from("/nonexistent/z.evtx"),
    ]);
    let shown: Vec<String> = expanded
        .iter()
        .map(|input| match input {
            Ok(input) => input.name().to_string(),
            Err(e) => e.to_string(),
        })
        .collect();
    assert_eq!(shown.len(), 3, "{shown:?}");
    assert!(
        shown[0].starts_with("/nonexistent/y: cannot open"),
        "{shown:?}"
    );
    assert_eq!(shown[1], present.display().to_string());
    assert!(
        shown[2].starts_with("/nonexistent/z.evtx: cannot open"),
        "{shown:?}"
    );
}

#[test]
fn a_cut_zip_is_an_error() {
    let whole = std::fs::read(data!("proxylogon_ssrf_rce_poc.zip")).unwrap();
    let file = temp_file(&whole[..whole.len() - 100]);
    let message = read(&Input::file(file.path()), &jsonl_pool::test_workers(3))
        .err()
        .expect("an error")
        .to_string();
    assert!(message.contains("not a readable zip archive"), "{message}");
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    for (name, bytes) in entries {
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
    out.into_inner()
}

#[test]
fn zip_entries_are_read_in_order_and_each_detected() {
    let evtx = std::fs::read(data!("sigma_regr_cve_2025_55182_node_child.evtx")).unwrap();
    let line = br##"{"timestamp":"2026-11-27T10:00:01Z","action":"terminate","pid":9}"##;
    let inner = zip_of(&[("deep.jsonl", line)]);
    let bytes = zip_of(&[
        ("a.jsonl", &line[..]),
        (".hidden.jsonl", &line[..]),
        ("__MACOSX/._a.jsonl", b"\x00\x05\x16\x07"),
        ("logs/b.evtx", &evtx),
        ("c.bin", b"\x00\x01garbage"),
        ("inner.zip", &inner),
    ]);
    let file = temp_file(&bytes);
    let input = Input::file(file.path());
    let items = read_all(&input);
    let name = input.name();
    let files: Vec<String> = events(&items)
        .iter()
        .map(|e| e.origin.file.as_deref().unwrap().to_string())
        .collect();
    assert_eq!(
        files,
        [
            format!("{name}!a.jsonl"),
            format!("{name}!logs/b.evtx"),
            format!("{name}!inner.zip!deep.jsonl"),
        ]
    );
    let node = events(&items)[1];
    assert_eq!(node.process.exe.as_deref(), Some("cmd.exe"));
    assert_eq!(node.parent.exe.as_deref(), Some("node.exe"));
    let bad = malformed(&items);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0].0, "zip-entry");
    assert!(
        bad[0]
            .2
            .starts_with(&format!("{name}!c.bin: not EVTX, JSON or a zip of them")),
        "{}",
        bad[0].2
    );
}

/// The items of a zip read with `cap`.
fn read_zip_capped(bytes: Vec<u8>, cap: u64) -> Vec<ReadItem> {
    let mut archive = ZipArchive::new(Cursor::new(bytes)).unwrap();
    producer::spawn("a.zip", "zip-entry", move |sink| {
        archive::read_zip(&mut archive, "a.zip", 0, cap, sink);
    })
    .unwrap()
    .collect()
}

#[test]
fn an_entry_that_unpacks_past_the_cap_is_an_error_naming_it() {
    let evtx = std::fs::read(data!("sigma_regr_cve_2025_55182_node_child.evtx")).unwrap();
    let line = br##"{"timestamp":"2026-11-27T10:00:01Z","action":"terminate","pid":9}"##;
    let lines = [&line[..], b"\n"].concat().repeat(2_000);
    let inner = zip_of(&[("deep.evtx", &evtx)]);
    let bytes = zip_of(&[
        ("big.evtx", &evtx),
        ("big.jsonl", &lines),
        ("big.zip", &inner),
        ("small.jsonl", line),
    ]);
    let cap = evtx.len() as u64 - 1;
    let items = read_zip_capped(bytes, cap);
    let bad = malformed(&items);
    let messages: Vec<&str> = bad.iter().map(|(_, _, m)| *m).collect();
    assert_eq!(messages.len(), 3, "{messages:?}");
    // The inner zip is small; what it holds is not, and the cap holds at every level.
    let entries = ["big.evtx", "big.jsonl", "big.zip!deep.evtx"];
    for (message, entry) in messages.iter().zip(entries) {
        assert!(
            message.starts_with(&format!("a.zip!{entry}: "))
                && message.contains(&format!("larger than {cap} bytes unpacked")),
            "{message}"
        );
    }
    // Lines before the cap are read; the entry after the big ones is read whole.
    let files: Vec<&str> = events(&items)
        .iter()
        .map(|e| e.origin.file.as_deref().unwrap())
        .collect();
    assert!(files.len() > 100 && files.len() < 2_000, "{}", files.len());
    assert_eq!(files.last(), Some(&"a.zip!small.jsonl"));
}

#[test]
fn an_empty_evtx_entry_is_reported() {
    let items = read_zip_capped(zip_of(&[("Security.evtx", b"")]), spill::ENTRY_CAP);
    let bad = malformed(&items);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0].2, format!("a.zip!Security.evtx: {EMPTY_BINARY}"));
}

#[test]
fn malformed_lines_in_a_zip_entry_name_the_entry() {
    let bytes = zip_of(&[(
        "x.json",
        b"{\"EventID\":1,\n{\"EventID\":4689,\"ProcessId\":\"0x4\"}\n",
    )]);
    let file = temp_file(&bytes);
    let input = Input::file(file.path());
    let items = read_all(&input);
    let bad = malformed(&items);
    assert_eq!(bad.len(), 1);
    assert_eq!((bad[0].0, bad[0].1), ("json", Location::Line(1)));
    assert!(
        bad[0].2.starts_with(&format!("{}!x.json: ", input.name())),
        "{}",
        bad[0].2
    );
    assert_eq!(events(&items)[0].origin.location, Location::Line(2));
}

#[test]
fn json_lines_file_and_empty_file() {
    let file = temp_file(b"\n{\"EventID\":\"4688\",\"NewProcessId\":\"0x10\",\"ProcessId\":\"0x20\",\"NewProcessName\":\"C:\\\\x\\\\whoami.exe\"}\n");
    let items = read_all(&Input::file(file.path()));
    let e = events(&items);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].process.exe.as_deref(), Some("whoami.exe"));
    assert_eq!(e[0].origin.location, Location::Line(2));
    let empty = temp_file(b"");
    assert_eq!(read_all(&Input::file(empty.path())).len(), 0);
}

#[test]
fn sniffing() {
    assert_eq!(sniff(b"ElfFile\0\x00\x00"), Format::Evtx);
    assert_eq!(sniff(b"PK\x03\x04\x14\x00"), Format::Zip);
    assert_eq!(sniff(b"PK\x05\x06\x00\x00"), Format::Zip);
    assert_eq!(sniff(b"{\"a\":1}"), Format::JsonLines);
    assert_eq!(sniff(b"\xEF\xBB\xBF \r\n\t{"), Format::JsonLines);
    assert_eq!(sniff(b"  \n"), Format::JsonLines);
    assert_eq!(sniff(b""), Format::JsonLines);
    assert_eq!(sniff(b"[{\"a\":1}]"), Format::JsonValues);
    assert_eq!(sniff(b" \n[\n  {\n"), Format::JsonValues);
    assert_eq!(sniff(b"{\n  \"a\": 1\n}\n"), Format::JsonValues);
    assert_eq!(
        sniff(b"Record 1\n{\n  \"Event\": {}\n}\n"),
        Format::JsonValues
    );
    assert_eq!(sniff(b"{\"a\":1}\n{\"b\":2}\n"), Format::JsonLines);
    // A first line cut or garbled, JSON lines after it.
    assert_eq!(sniff(b"{\"a\":1, \"oops\n{\"b\":2}\n"), Format::JsonLines);
    assert_eq!(
        sniff(b"\x1f\x8b\x08\x00"),
        Format::Compressed(Compression::Gzip)
    );
    assert_eq!(
        sniff(b"\x28\xb5\x2f\xfd"),
        Format::Compressed(Compression::Zstd)
    );
    assert_eq!(sniff(b"ElfFi"), Format::Unknown);
    // A first line cut or garbled, then JSON lines (the last one may be cut by the end
    // of what was read).
    assert_eq!(sniff(b"ge\":\"x\"}\n{\"a\":1}\n{\"b\":"), Format::JsonLines);
    assert_eq!(sniff(b"garbage\r\n\n{\"a\":1}"), Format::JsonLines);
    assert_eq!(sniff(b"x\ny\n{\"a\":1}\n"), Format::JsonLines);
    // A text with a JSON example in it, or with no object at all.
    assert_eq!(
        sniff(b"# Notes\nsee below\n{\"a\":1}\nthat is all\n"),
        Format::Unknown
    );
    assert_eq!(sniff(b"# Notes\n{not json}\n[1]\n"), Format::Unknown);
}

#[test]
fn peek_reads_on_for_json_lines_when_the_first_line_is_not_one() {
    let line = br#"{"timestamp":"2026-11-27T10:00:01Z","action":"terminate","pid":9}"#;
    let lines = [line, &b"\n"[..]].concat().repeat(2_000);
    for first in [&b"cut\":1}"[..], &b"x".repeat(100_000)] {
        let input = [first, b"\n", &lines].concat();
        let prefix = peek(&mut Cursor::new(&input)).unwrap();
        assert!(prefix.len() >= SNIFF_WINDOW.min(input.len()));
        assert!(prefix.len() < input.len());
        assert_eq!(sniff(&prefix), Format::JsonLines);
    }
}

#[test]
fn a_json_lines_file_cut_mid_line_is_read_from_its_first_whole_line() {
    let text = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/parent_from_table.jsonl"
    ))
    .unwrap();
    let file = temp_file(&text[40..]);
    let items = read_all(&Input::file(file.path()));
    let bad = malformed(&items);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!((bad[0].0, bad[0].1), ("json", Location::Line(1)));
    assert_eq!(
        events(&items).len(),
        text.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count()
            - 1
    );
}

#[test]
fn an_empty_file_named_evtx_or_zip_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["x.evtx", "y.ZIP"] {
        let path = dir.path().join(name);
        fs::write(&path, b"").unwrap();
        let message = read(&Input::file(&path), &jsonl_pool::test_workers(1))
            .err()
            .expect("an error")
            .to_string();
        assert_eq!(message, format!("{}: {EMPTY_BINARY}", path.display()));
    }
    let jsonl = dir.path().join("z.jsonl");
    fs::write(&jsonl, b"").unwrap();
    assert_eq!(read_all(&Input::file(jsonl)).len(), 0);
}

#[test]
fn a_walked_file_that_is_plainly_not_a_log_is_passed_over() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("README.md", "# Samples\n"),
        ("SHA256SUMS", "e3b0c442  a.evtx\n"),
        ("LICENSE", "   GNU GENERAL PUBLIC LICENSE\n"),
        ("damaged.evtx", "not an evtx\n"),
    ] {
        fs::write(dir.path().join(name), text).unwrap();
    }
    let jobs = jsonl_pool::test_workers(1);
    let passed_over: Vec<(String, bool)> = expand(&[dir.path().to_path_buf()])
        .into_iter()
        .map(|input| {
            let input = input.unwrap();
            let error = read(&input, &jobs).err().expect("an error");
            let name = Path::new(input.name()).file_name().unwrap();
            (name.to_string_lossy().into_owned(), error.passed_over())
        })
        .collect();
    assert_eq!(
        passed_over,
        [
            ("LICENSE".to_string(), true),
            ("README.md".to_string(), true),
            ("SHA256SUMS".to_string(), true),
            ("damaged.evtx".to_string(), false),
        ]
    );
    // Named on the command line, it is an error like any other.
    let named = Input::file(dir.path().join("README.md"));
    assert!(!read(&named, &jobs).err().unwrap().passed_over());
}

#[test]
fn peek_reads_past_a_blank_start() {
    let mut input = Cursor::new([&b" ".repeat(20_000)[..], b"{}"].concat());
    let prefix = peek(&mut input).unwrap();
    assert_eq!(prefix.len(), 20_002);
    let mut short = Cursor::new(b"{}".to_vec());
    assert_eq!(peek(&mut short).unwrap(), b"{}");
}

#[test]
fn first_bytes_shows_hex_and_text() {
    assert_eq!(
        first_bytes(b"\x7fELF\x02"),
        "7f 45 4c 46 02 \"\\x7fELF\\x02\""
    );
}

#[test]
fn expand_walks_directories_sorted_skipping_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for path in [
        "b.jsonl",
        "a.evtx",
        ".hidden",
        "sub/z.zip",
        "sub/.x/y",
        ".git/config",
    ] {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"{}").unwrap();
    }
    let explicit = root.join(".hidden");
    let inputs: Vec<Input> = expand(&[root.to_path_buf(), PathBuf::from("-"), explicit.clone()])
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    let names: Vec<_> = inputs.iter().map(|i| i.name().to_string()).collect();
    let expected: Vec<String> = [
        root.join("a.evtx"),
        root.join("b.jsonl"),
        root.join("sub").join("z.zip"),
    ]
    .iter()
    .map(|p| p.display().to_string())
    .chain(["<stdin>".to_string(), explicit.display().to_string()])
    .collect();
    assert_eq!(names, expected);
    assert_eq!(inputs[3], Input::stdin());
}

#[test]
fn streams_are_detected_like_files() {
    let stream = |bytes: Vec<u8>| {
        read_stream(
            Cursor::new(bytes),
            "<stdin>".into(),
            &jsonl_pool::test_workers(3),
            0,
        )
    };
    let evtx = std::fs::read(data!("sigma_regr_cve_2025_55182_node_child.evtx")).unwrap();
    let items: Vec<_> = stream(evtx).unwrap().collect();
    assert_eq!(events(&items)[0].parent.exe.as_deref(), Some("node.exe"));
    assert_eq!(events(&items)[0].origin.file.as_deref(), Some("<stdin>"));

    let zip = std::fs::read(data!(
        "securityauditing_log4shell_cve2021_44228_java_serialized_object.zip",
    ))
    .unwrap();
    assert_eq!(stream(zip).unwrap().count(), 39);

    let line = br#"{"timestamp":"2026-11-27T10:00:01Z","action":"terminate","pid":9}"#;
    let items: Vec<_> = stream(line.to_vec()).unwrap().collect();
    assert_eq!(events(&items)[0].origin.location, Location::Line(1));

    let message = stream(b"MZ\x90\x00".to_vec()).err().unwrap().to_string();
    assert!(
        message.starts_with("<stdin>: not EVTX, JSON or a zip of them (first bytes: 4d 5a 90 00"),
        "{message}"
    );
}

#[cfg(unix)]
#[test]
fn a_device_is_read_like_a_stream() {
    assert_eq!(read_all(&Input::file("/dev/null")).len(), 0);
}
