//! End-to-end: spawnwatch event lines replayed through the built-in rules, with the
//! exact alerts asserted.

mod common;

use common::{fixture, run};
use serde_json::json;

fn replay(name: &str) -> common::Run {
    let file = fixture(name);
    let r = run(&["replay", "--ordered", file.to_str().unwrap()]);
    assert!(
        r.output.status.success(),
        "replay {name} failed: {}",
        r.stderr
    );
    r
}

/// The alerts of a web shell's cmd.exe under w3wp.exe running whoami.exe.
fn shell_then_whoami() -> [(String, String, String); 2] {
    let triple = |rule: &str, exe: &str, parent: &str| (rule.into(), exe.into(), parent.into());
    [
        triple("CAR-2021-02-001", "cmd.exe", "w3wp.exe"),
        triple("SW-WIN-002", "whoami.exe", "cmd.exe"),
    ]
}

#[test]
fn parent_fields_come_from_the_table_and_the_alert_is_exact() {
    let r = replay("parent_from_table.jsonl");
    let alerts = r.alerts();
    assert_eq!(alerts.len(), 2, "{:#?}", r.lines);
    let file = fixture("parent_from_table.jsonl")
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        *alerts[0],
        json!({
            "kind": "alert",
            "timestamp": "2026-11-27T10:00:02Z",
            "hostname": "WEB01",
            "incident": "WEB01/1000/2026-11-27T10:00:01Z",
            "rule": {"id": "CAR-2021-02-001", "title": "Webshell-indicative process tree", "severity": "high", "attack": ["T1505.003"]},
            "process": {
                "pid": 4242, "ppid": 1000, "creator_pid": 1000, "exe": "cmd.exe",
                "image_path": "C:\\Windows\\System32\\cmd.exe", "command_line": "cmd.exe /c whoami", "argv": null,
                "user": "IIS APPPOOL\\DefaultAppPool", "effective_user": null, "sid": "S-1-5-82-3006700770-424185619-1745488364-794895919-4004696415",
                "integrity_level": "High", "current_working_directory": "C:\\Windows\\System32\\inetsrv\\",
                "original_file_name": "Cmd.Exe",
                // Sysmon event 1's fields, which this JSON-lines recording does not carry.
                "description": null, "product": null, "company": null, "file_version": null,
                "hashes": null, "logon_id": null, "terminal_session_id": null, "exe_deleted": null, "exe_memfd": null
            },
            "parent": {"pid": 1000, "exe": "w3wp.exe", "image_path": "C:\\Windows\\System32\\inetsrv\\w3wp.exe", "command_line": "w3wp.exe -ap \"DefaultAppPool\"",
                       "user": "IIS APPPOOL\\DefaultAppPool", "listens": null},
            "ancestors": [
                {"pid": 1000, "exe": "w3wp.exe", "image_path": "C:\\Windows\\System32\\inetsrv\\w3wp.exe"},
                {"pid": 700, "exe": "svchost.exe", "image_path": "C:\\Windows\\System32\\svchost.exe"}
            ],
            "source": {"kind": "replay", "file": file, "line": 3, "record": null}
        })
    );
}

#[test]
fn a_grandchild_is_alerted_through_its_ancestry() {
    let r = replay("parent_from_table.jsonl");
    let whoami = r.alerts()[1];
    assert_eq!(whoami["rule"]["id"], "SW-WIN-002");
    assert_eq!(whoami["process"]["exe"], "whoami.exe");
    let chain: Vec<&str> = whoami["ancestors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["exe"].as_str().unwrap())
        .collect();
    assert_eq!(chain, ["cmd.exe", "w3wp.exe", "svchost.exe"]);
}

#[test]
fn a_reused_pid_is_not_taken_for_the_old_parent() {
    let r = replay("pid_reuse.jsonl");
    assert_eq!(
        r.triples(),
        [(
            "CAR-2021-02-001".into(),
            "cmd.exe".into(),
            "w3wp.exe".into()
        )]
    );
    assert_eq!(r.alerts()[0]["process"]["pid"], 4999);
}

#[test]
fn pid_ppid_cycles_neither_hang_nor_loop() {
    let r = replay("cycle.jsonl");
    assert_eq!(r.triples(), shell_then_whoami());
    assert_eq!(
        r.alerts()[0]["ancestors"],
        json!([{"pid": 10, "exe": "w3wp.exe", "image_path": "C:\\Windows\\System32\\inetsrv\\w3wp.exe"}])
    );
    let chain: Vec<u64> = r.alerts()[1]["ancestors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(chain, [20, 10]);
}

#[test]
fn each_host_has_its_own_table() {
    let r = replay("hosts.jsonl");
    assert_eq!(
        r.triples(),
        [(
            "CAR-2021-02-001".into(),
            "cmd.exe".into(),
            "w3wp.exe".into()
        )]
    );
    assert_eq!(r.alerts()[0]["hostname"], "WEB01");
    assert_eq!(r.alerts()[0]["process"]["pid"], 2001);
}

#[test]
fn malformed_lines_are_reported_with_their_line_and_skipped() {
    let r = replay("malformed.jsonl");
    assert_eq!(
        r.triples(),
        [(
            "CAR-2021-02-001".into(),
            "cmd.exe".into(),
            "w3wp.exe".into()
        )]
    );
    assert_eq!(r.alerts()[0]["source"]["line"], 5);
    assert!(r.stderr.contains("2 malformed"), "{}", r.stderr);
    assert!(r.stderr.contains("line 2"), "{}", r.stderr);
    assert!(r.stderr.contains("line 3"), "{}", r.stderr);
}

/// A flipped byte in a real recording (the first command line's `net user` becomes
/// `Net user`) is found by the chunk's checksum: its records are counted as damaged
/// and not replayed, rather than alerted on with altered values.
#[test]
fn a_flipped_byte_in_an_evtx_is_a_checksum_failure_naming_the_chunk() {
    let Some(recording) = common::shared_data("LM_typical_IIS_webshell_sysmon_1_10_traces.evtx")
    else {
        return;
    };
    let mut bytes = std::fs::read(recording).unwrap();
    let net_user: Vec<u8> = "net user"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let at = bytes
        .windows(net_user.len())
        .position(|w| w == net_user)
        .unwrap();
    bytes[at] ^= 0x20;
    let dir = tempfile::tempdir().unwrap();
    let damaged = dir.path().join("damaged.evtx");
    std::fs::write(&damaged, &bytes).unwrap();
    let r = run(&["replay", damaged.to_str().unwrap()]);
    assert_eq!(r.alerts().len(), 0, "{:#?}", r.alerts());
    assert!(
        r.stderr.contains("4 events read, 0 process events, 0 skipped, 4 malformed")
            && r.stderr.contains(&format!(
                "malformed checksum: 4 (first: {} record 1: chunk 0 (file offset 0x1000) fails its checksum",
                damaged.display()
            )),
        "{}",
        r.stderr
    );
}

/// A 1 MB zip can hold a gigabyte: its EVTX is unpacked to a temporary file, not into
/// memory (the whole process stays far below the entry's size).
#[cfg(target_os = "linux")]
#[test]
fn a_large_evtx_in_a_zip_is_replayed_in_bounded_memory() {
    use std::io::Write;
    const ZEROS: usize = 256 << 20;
    let Some(recording) = common::shared_data("sigma_regr_cve_2025_55182_node_child.evtx") else {
        return;
    };
    let evtx = std::fs::read(recording).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("big.evtx", options).unwrap();
    zip.write_all(&evtx).unwrap();
    // Chunks of zeros: room the log has not used yet, which the reader passes over.
    let megabyte = vec![0; 1 << 20];
    for _ in 0..ZEROS >> 20 {
        zip.write_all(&megabyte).unwrap();
    }
    zip.finish().unwrap();
    // Reaped by wait4 below, which also gives its peak memory.
    #[allow(clippy::zombie_processes)]
    let mut child = common::spawnwatch()
        .args(["replay", "-o", "/dev/null", path.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; wait4 fills it for the child just spawned.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{stderr}"
    );
    assert!(
        stderr.contains("replayed 1 file(s)") && stderr.contains(" 0 malformed"),
        "{stderr}"
    );
    let peak_kib = usage.ru_maxrss as usize;
    assert!(
        peak_kib < 100 << 10,
        "peak RSS {peak_kib} KiB for a {} MiB entry",
        ZEROS >> 20
    );
}

#[test]
fn a_missing_input_is_reported_the_others_replayed_and_the_exit_code_is_2() {
    let hosts = fixture("hosts.jsonl");
    let r = run(&[
        "replay",
        "/nonexistent/Security.evtx",
        hosts.to_str().unwrap(),
        "/nonexistent/logs/",
    ]);
    assert_eq!(r.output.status.code(), Some(2), "{}", r.stderr);
    assert_eq!(r.alerts().len(), 1, "{}", r.stderr);
    for missing in ["/nonexistent/Security.evtx", "/nonexistent/logs/"] {
        assert!(
            r.stderr
                .contains(&format!("spawnwatch: {missing}: cannot open: No such file")),
            "{}",
            r.stderr
        );
    }
    assert!(
        r.stderr.contains("replayed 1 file(s) (2 unreadable)"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_empty_evtx_is_an_error_not_zero_events() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("Security.evtx");
    std::fs::write(&empty, b"").unwrap();
    let r = run(&["replay", empty.to_str().unwrap()]);
    assert_eq!(r.output.status.code(), Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("{}: empty (0 bytes)", empty.display())),
        "{}",
        r.stderr
    );
}

#[test]
fn a_directory_passes_over_files_that_are_not_logs_with_one_count() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README.md"), "# Samples\n\nFrom a lab.\n").unwrap();
    std::fs::write(
        dir.path().join("SHA256SUMS"),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  hosts.jsonl\n",
    )
    .unwrap();
    std::fs::copy(fixture("hosts.jsonl"), dir.path().join("hosts.jsonl")).unwrap();
    let r = run(&["replay", dir.path().to_str().unwrap()]);
    assert!(r.output.status.success(), "{}", r.stderr);
    assert_eq!(r.alerts().len(), 1);
    assert!(!r.stderr.contains("not EVTX"), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "not logs, passed over: 2 file(s) in the directories (first: {})",
            dir.path().join("README.md").display()
        )),
        "{}",
        r.stderr
    );
    // Named on the command line, a file that is not a log is still an error.
    let readme = dir.path().join("README.md");
    let r = run(&["replay", readme.to_str().unwrap()]);
    assert_eq!(r.output.status.code(), Some(2));
    assert!(r.stderr.contains("README.md: not EVTX"), "{}", r.stderr);
}

#[test]
fn a_capture_cut_mid_line_is_replayed_from_its_first_whole_line() {
    let r = replay("cut_start.jsonl");
    assert_eq!(r.triples(), shell_then_whoami());
    assert!(
        r.stderr.contains("1 malformed")
            && r.stderr.contains("malformed json: 1 (first: ")
            && r.stderr
                .contains("cut_start.jsonl line 1: not a JSON object"),
        "{}",
        r.stderr
    );
}
