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
            "rule": {"id": "CAR-2021-02-001", "title": "Webshell-indicative process tree", "severity": "high", "attack": ["T1505.003"]},
            "process": {
                "pid": 4242, "ppid": 1000, "creator_pid": 1000, "exe": "cmd.exe",
                "image_path": "C:\\Windows\\System32\\cmd.exe", "command_line": "cmd.exe /c whoami",
                "user": "IIS APPPOOL\\DefaultAppPool", "sid": "S-1-5-82-3006700770-424185619-1745488364-794895919-4004696415",
                "integrity_level": "High", "current_working_directory": "C:\\Windows\\System32\\inetsrv\\",
                "original_file_name": "Cmd.Exe",
                // Sysmon event 1's fields, which this JSON-lines recording does not carry.
                "description": null, "product": null, "company": null, "file_version": null,
                "hashes": null, "logon_id": null, "terminal_session_id": null
            },
            "parent": {"pid": 1000, "exe": "w3wp.exe", "image_path": "C:\\Windows\\System32\\inetsrv\\w3wp.exe", "command_line": "w3wp.exe -ap \"DefaultAppPool\""},
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
    assert_eq!(
        r.triples(),
        [
            (
                "CAR-2021-02-001".into(),
                "cmd.exe".into(),
                "w3wp.exe".into()
            ),
            ("SW-WIN-002".into(), "whoami.exe".into(), "cmd.exe".into()),
        ]
    );
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
