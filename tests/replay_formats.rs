//! End-to-end: each log format a web shell arrives in, written from the format's public
//! documentation (`tests/fixtures/formats/`), replayed without a flag, with its alerts
//! asserted.

mod common;

use common::{fixture, run, spawnwatch};
use std::io::Write;
use std::process::Stdio;

fn replay(name: &str) -> common::Run {
    let file = fixture(&format!("formats/{name}"));
    let r = run(&["replay", "--ordered", file.to_str().unwrap()]);
    assert!(
        r.output.status.success(),
        "replay {name} failed: {}",
        r.stderr
    );
    assert!(r.stderr.contains(" 0 malformed"), "{name}: {}", r.stderr);
    r
}

fn triples(list: &[(&str, &str, &str)]) -> Triples {
    list.iter()
        .map(|&(rule, exe, parent)| (rule.into(), exe.into(), parent.into()))
        .collect()
}

type Triples = Vec<(String, String, String)>;

/// A web shell's alerts: the shell under w3wp.exe, then the tool it ran.
fn shell_then_tool(shell: &str, tool: &str) -> Triples {
    triples(&[
        ("CAR-2021-02-001", shell, "w3wp.exe"),
        ("SW-WIN-002", tool, shell),
    ])
}

#[test]
fn azure_monitor_windowsevent_table_event_data_as_object_and_as_string() {
    let r = replay("azure-windowsevent.jsonl");
    assert_eq!(r.triples(), shell_then_tool("cmd.exe", "whoami.exe"));
    // The second line's EventData is a JSON string: its fields were read, the parent
    // linked through the first line's ProcessId.
    let whoami = r.alerts()[1];
    assert_eq!(whoami["process"]["pid"], 1984);
    assert_eq!(whoami["hostname"], "WEB01.corp.example");
    assert_eq!(whoami["ancestors"][1]["exe"], "w3wp.exe");
}

#[test]
fn log_analytics_event_table_event_data_as_xml() {
    let r = replay("azure-event-table.jsonl");
    assert_eq!(
        r.triples(),
        triples(&[("CAR-2021-02-001", "powershell.exe", "w3wp.exe")])
    );
    let alert = r.alerts()[0];
    assert_eq!(
        alert["process"]["command_line"],
        r#"powershell.exe -nop -w hidden -c "Get-ChildItem C:\inetpub\wwwroot -Recurse | Select-Object -First 20""#
    );
    assert_eq!(alert["process"]["user"], r"IIS APPPOOL\DefaultAppPool");
}

#[test]
fn winlogbeat_ecs_documents() {
    let r = replay("winlogbeat.ndjson");
    assert_eq!(r.triples(), shell_then_tool("cmd.exe", "net.exe"));
    let shell = r.alerts()[0];
    assert_eq!(shell["process"]["pid"], 7340);
    assert_eq!(shell["process"]["user"], r"IIS APPPOOL\SharePoint - 80");
    assert_eq!(shell["process"]["integrity_level"], "High");
    assert_eq!(shell["hostname"], "WEB03.corp.example");
}

#[test]
fn an_elasticsearch_export_pretty_printed_as_an_array() {
    let r = replay("elasticsearch-hits.json");
    assert_eq!(r.triples(), shell_then_tool("cmd.exe", "whoami.exe"));
    // Lines of the pretty-printed file: where each event starts.
    let lines: Vec<_> = r
        .alerts()
        .iter()
        .map(|a| a["source"]["line"].clone())
        .collect();
    assert_eq!(lines, [2, 65]);
}

#[test]
fn nxlog_sysmon_without_process_id_is_evaluated_and_counted() {
    let r = replay("nxlog-sysmon-no-processid.jsonl");
    assert_eq!(
        r.triples(),
        triples(&[("CAR-2021-02-001", "cmd.exe", "httpd.exe")])
    );
    assert_eq!(r.alerts()[0]["process"]["pid"], serde_json::Value::Null);
    assert_eq!(r.alerts()[0]["process"]["ppid"], 5532);
    assert!(
        r.stderr
            .contains("without a process id: 1 process creations"),
        "{}",
        r.stderr
    );
}

/// Azure Monitor's export envelope (`{"records":[..]}`: Event Hubs, diagnostic settings,
/// storage), pretty-printed, around Sentinel `SecurityEvent` rows.
#[test]
fn an_azure_records_envelope() {
    let r = replay("azure-export-records.json");
    assert_eq!(r.triples(), shell_then_tool("cmd.exe", "systeminfo.exe"));
    assert_eq!(r.alerts()[1]["source"]["line"], 36);
    assert!(r
        .stderr
        .contains("2 events read, 2 process events, 0 skipped"));
}

/// An Elasticsearch `_search` response as curl saves it: one line, the events in
/// `hits.hits`.
#[test]
fn an_elasticsearch_search_response() {
    let r = replay("elasticsearch-search-response.json");
    assert_eq!(r.triples(), shell_then_tool("cmd.exe", "whoami.exe"));
    assert!(r
        .stderr
        .contains("2 events read, 2 process events, 0 skipped"));
}

/// The event's XML turned to JSON by xmltodict (python-evtx scripts, Logstash's xml
/// filter): attributes as `@Name`, EventData's `Data` a list of named values.
#[test]
fn xml_converted_by_xmltodict() {
    let r = replay("xmltodict.jsonl");
    assert_eq!(
        r.triples(),
        triples(&[
            ("CAR-2021-02-001", "cmd.exe", "Tomcat9.exe"),
            ("SW-WIN-002", "whoami.exe", "cmd.exe"),
        ])
    );
    assert_eq!(r.alerts()[0]["timestamp"], "2025-06-04T07:30:12.402311Z");
}

/// Velociraptor's `parse_evtx` rows: `System` and `EventData` without `Event` around
/// them, `{"Value":1}` for the id, the time as seconds since 1970.
#[test]
fn velociraptor_parse_evtx_rows() {
    let r = replay("velociraptor-parse-evtx.jsonl");
    assert_eq!(r.triples(), shell_then_tool("cmd.exe", "whoami.exe"));
    let shell = r.alerts()[0];
    assert_eq!(shell["timestamp"], "2024-06-02T12:41:03.117600Z");
    assert_eq!(shell["hostname"], "WEB06.corp.example");
    assert!(r
        .stderr
        .contains("3 events read, 2 process events, 1 skipped"));
}

/// A SIEM export that lower-cased every field, kept numbers as doubles (`4688.0`) and
/// the time as milliseconds since 1970.
#[test]
fn an_export_with_other_letter_case_doubles_and_epoch_times() {
    let r = replay("recased-security.jsonl");
    assert_eq!(r.triples(), shell_then_tool("cmd.exe", "net.exe"));
    let shell = r.alerts()[0];
    assert_eq!(shell["process"]["pid"], 0x1a2c);
    assert_eq!(shell["process"]["ppid"], 0x1f40);
    assert_eq!(shell["process"]["user"], r"IIS APPPOOL\DefaultAppPool");
    assert_eq!(shell["process"]["integrity_level"], "System");
    assert_eq!(shell["timestamp"], "2024-06-02T12:41:03.117Z");
}

#[test]
fn evtx_dump_json_output_with_record_headers() {
    let r = replay("evtx-dump.json");
    assert_eq!(
        r.triples(),
        triples(&[("CAR-2021-02-001", "cmd.exe", "Tomcat9.exe")])
    );
    assert!(
        r.stderr.contains("2 events read, 2 process events"),
        "{}",
        r.stderr
    );
}

#[test]
fn jq_pretty_printed_objects_one_after_another() {
    let r = replay("jq-pretty.json");
    assert_eq!(
        r.triples(),
        triples(&[
            ("SW-WIN-001", "powershell.exe", "php-cgi.exe"),
            ("SW-WIN-002", "whoami.exe", "powershell.exe"),
        ])
    );
}

#[test]
fn gzip_and_zstd_files_and_both_inside_a_zip() {
    let car = triples(&[("CAR-2021-02-001", "cmd.exe", "w3wp.exe")]);
    let exchange = triples(&[("SW-WIN-001", "cmd.exe", "UMWorkerProcess.exe")]);
    assert_eq!(replay("sysmon.jsonl.gz").triples(), car);
    assert_eq!(replay("sysmon-2.jsonl.zst").triples(), exchange);
    let both: Vec<_> = car.into_iter().chain(exchange).collect();
    assert_eq!(replay("rotated.zip").triples(), both);
}

#[test]
fn a_compressed_log_on_stdin_streams_through() {
    let bytes = std::fs::read(fixture("formats/sysmon.jsonl.gz")).unwrap();
    let mut child = spawnwatch()
        .args(["replay", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains(r#""id":"CAR-2021-02-001""#), "{stdout}");
}

#[test]
fn a_cut_gzip_is_reported_after_the_events_before_the_cut() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for pid in 1..=20_000 {
        writeln!(
            gz,
            r#"{{"timestamp":"2026-11-27T10:00:00Z","action":"create","pid":{pid},"ppid":1,"image_path":"C:\\Windows\\notepad{pid}.exe"}}"#
        )
        .unwrap();
    }
    let mut bytes = gz.finish().unwrap();
    bytes.truncate(bytes.len() * 2 / 3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.jsonl.gz");
    std::fs::write(&path, bytes).unwrap();
    let r = run(&["replay", path.to_str().unwrap()]);
    assert!(r.output.status.success(), "{}", r.stderr);
    assert!(
        r.stderr.contains("malformed read-error: 1 (first: ")
            && r.stderr.contains("cannot read on: "),
        "{}",
        r.stderr
    );
    let read: u64 = r
        .stderr
        .split(" events read")
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((5_000..20_000).contains(&read), "{}", r.stderr);
}
