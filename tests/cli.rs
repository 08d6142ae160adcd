//! End-to-end: the commands a rule author and an operator type.

mod common;

use common::{fixture, run, spawnwatch, stdout_of_success};
use std::path::PathBuf;

#[test]
fn check_accepts_the_shipped_rules() {
    let rules = fixture("../../rules");
    let stdout = stdout_of_success(spawnwatch().args(["check", rules.to_str().unwrap()]));
    assert!(stdout.contains("0 error(s)"), "{stdout}");
}

#[test]
fn check_with_no_argument_checks_the_embedded_rules() {
    let stdout = stdout_of_success(spawnwatch().arg("check"));
    assert!(stdout.contains("0 error(s)"), "{stdout}");
}

#[test]
fn rules_lists_every_rule_with_severity_and_attack_ids() {
    let stdout = stdout_of_success(spawnwatch().arg("rules"));
    let car = stdout
        .lines()
        .find(|l| l.starts_with("CAR-2021-02-001"))
        .expect("CAR rule listed");
    assert!(car.contains("high") && car.contains("T1505.003"), "{car}");
    assert!(
        stdout.lines().any(|l| l.starts_with("SW-LNX-001")),
        "{stdout}"
    );
}

#[test]
fn the_car_pseudocode_pasted_as_is_gives_one_precise_error() {
    // The rule language's own test file: CAR's filter with its last quote missing.
    let file = fixture("../../dsl/tests/fixtures/car-pasted.rules");
    let out = spawnwatch()
        .args(["check", "--format", "json", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let diagnostics = report["diagnostics"].as_array().unwrap();
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    assert_eq!(diagnostics[0]["code"], "unterminated-string");
    assert_eq!(diagnostics[0]["line"], 16);
    assert_eq!(diagnostics[0]["column"], 11);
}

#[test]
fn a_rule_mistake_names_file_line_and_column_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("local.rules");
    std::fs::write(&file, "rule x {\n  title: \"t\"\n  severity: high\n  attack: T1505.003\n  condition: parent_exee == \"w3wp.exe\"\n}\n").unwrap();
    let out = spawnwatch()
        .args(["check", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:5:14", file.display())),
        "{stderr}"
    );
    assert!(stderr.contains("parent_exe"), "{stderr}");
    assert!(stderr.contains("^^^^^^^^^^^"), "{stderr}");
}

#[test]
fn replay_of_an_unknown_format_names_the_file_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "hello, not a log\n").unwrap();
    let r = run(&["replay", file.to_str().unwrap()]);
    assert_eq!(r.output.status.code(), Some(2));
    assert!(r.stderr.contains("notes.txt"), "{}", r.stderr);
}

#[test]
fn replay_reads_stdin() {
    use std::io::Write;
    let mut child = spawnwatch()
        .args(["replay", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let events = std::fs::read(fixture("hosts.jsonl")).unwrap();
    child.stdin.take().unwrap().write_all(&events).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains("CAR-2021-02-001"));
}

#[test]
fn help_teaches_with_examples() {
    let out = spawnwatch().arg("--help").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Examples:") && stdout.contains("spawnwatch replay"),
        "{stdout}"
    );
}

/// Every format the replay reads is named in its help, with an example, and has a
/// fixture that shows it alerting (`tests/replay_formats.rs`).
#[test]
fn replay_help_lists_every_format_with_an_example() {
    let out = spawnwatch().args(["replay", "--help"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    for format in [
        "Sysmon or Security EVTX",
        "JSON lines, flat or nested",
        "Azure Monitor WindowsEvent",
        "Log Analytics Event table",
        "Winlogbeat / Elastic ECS",
        "Velociraptor parse_evtx rows",
        "pretty-printed JSON, arrays",
        "envelopes of events",
        "spawnwatch's own event lines",
        "gzip and Zstandard",
        "a zip of any of these",
        "stdin  ",
    ] {
        let line = stdout
            .lines()
            .find(|line| line.contains(format))
            .unwrap_or_else(|| panic!("{format} is not listed:\n{stdout}"));
        assert!(line.contains("spawnwatch replay "), "{line}");
    }
}

#[test]
fn every_shipped_rule_has_passing_positive_and_negative_examples() {
    let stdout = stdout_of_success(spawnwatch().arg("test"));
    assert!(
        !stdout.contains("warning:"),
        "a shipped rule lacks an example:\n{stdout}"
    );
    let last = stdout.lines().last().unwrap();
    assert!(last.ends_with(" passed, 0 failed"), "{last}");
}

/// `spawnwatch test` on rule LOCAL (w3wp.exe starting cmd.exe) with these examples:
/// its exit code, its stdout and the examples file.
fn test_local_rule(examples: &str) -> (Option<i32>, String, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("local.rules"),
        "rule LOCAL { title: \"t\" severity: low attack: T1059 condition: parent_exe == \"w3wp.exe\" and exe == \"cmd.exe\" }\n",
    )
    .unwrap();
    let file = dir.path().join("local.tests");
    std::fs::write(&file, examples).unwrap();
    let out = spawnwatch()
        .args(["test", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code(), stdout, file)
}

#[test]
fn a_failing_rule_example_shows_which_part_did_not_hold() {
    let (code, stdout, _) = test_local_rule(
        "match LOCAL {\"exe\":\"cmd.exe\",\"parent_exe\":\"explorer.exe\"}\nnomatch LOCAL {\"exe\":\"cmd.exe\",\"parent_exe\":\"explorer.exe\"}\n",
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("local.tests:1: LOCAL should match but did not"),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"no    parent_exe == "w3wp.exe"   ["explorer.exe"]"#),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"yes   exe == "cmd.exe"   ["cmd.exe"]"#),
        "{stdout}"
    );
    assert_eq!(stdout.lines().last().unwrap(), "1 passed, 1 failed");
}

#[test]
fn replay_explain_shows_the_values_each_test_saw() {
    let file = fixture("hosts.jsonl");
    let r = run(&["replay", "--explain", file.to_str().unwrap()]);
    let steps = r.alerts()[0]["explain"].as_array().unwrap().clone();
    assert!(
        steps
            .iter()
            .any(|s| s["test"].as_str().unwrap().starts_with("parent_exe in")
                && s["value"] == "\"w3wp.exe\""
                && s["held"] == true),
        "{steps:#?}"
    );
}

#[test]
fn check_of_the_sigma_library_ends_with_the_skipped_rules_per_reason() {
    let Some(dir) = common::needs::shared("sigma/rules/windows/process_creation") else {
        return;
    };
    let stdout = stdout_of_success(spawnwatch().arg("check").arg(dir));
    let last = stdout.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        "Sigma: 1182 rules loaded from 1183 file(s); 1 skipped: 1 field `Provider_Name`"
    );
}

#[test]
fn a_sigma_rule_with_an_unsupported_construct_is_skipped_with_its_place() {
    let yml = fixture("sigma/whoami-web-parent.yml");
    let out = spawnwatch().arg("check").arg(&yml).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("warning[sigma-unsupported]") && stderr.contains("`cidr`"),
        "{stderr}"
    );
    assert!(stderr.contains("whoami-web-parent.yml:19:9"), "{stderr}");
    assert!(
        stdout.contains(
            "0 rules loaded from 1 file(s); 2 skipped: 1 modifier `cidr`, 1 other log source"
        ),
        "{stdout}"
    );
}

#[test]
fn sigma_convert_prints_rules_the_checker_reads_back() {
    let yml = fixture("sigma/whoami-web-parent.yml");
    let out = spawnwatch()
        .args(["sigma", "convert"])
        .arg(&yml)
        .output()
        .unwrap();
    let converted = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a rule was skipped: {converted}"
    );
    // The skipped rule is named on stderr, the rule that converts is printed.
    let dir = tempfile::tempdir().unwrap();
    let cut = fixture("sigma/whoami-web-parent.yml");
    let text = std::fs::read_to_string(cut).unwrap();
    // The first rule without its unsupported selection.
    let text = text.split("---").next().unwrap().replace(
        "    unsupported_here:\n        DestinationIp|cidr: '10.0.0.0/8'\n",
        "",
    );
    let clean = dir.path().join("clean.yml");
    std::fs::write(&clean, text).unwrap();
    let printed = stdout_of_success(spawnwatch().args(["sigma", "convert"]).arg(&clean));
    assert!(
        printed.contains("rule 6c0e52f1-4d1f-4a8e-9a5f-0d1f2b3c4d5e {"),
        "{printed}"
    );
    assert!(printed.contains("# author: spawnwatch"), "{printed}");
    let rules = dir.path().join("converted.rules");
    std::fs::write(&rules, &printed).unwrap();
    let checked = stdout_of_success(spawnwatch().arg("check").arg(&rules));
    assert!(
        checked.contains("1 rules (1 enabled)") && checked.contains("0 error(s)"),
        "{checked}"
    );
}

#[test]
fn a_rules_file_adds_an_exception_to_a_sigma_rule_by_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("sigma/whoami-web-parent.yml"))
        .unwrap()
        .replace(
            "    unsupported_here:\n        DestinationIp|cidr: '10.0.0.0/8'\n",
            "",
        );
    std::fs::write(dir.path().join("whoami.yml"), text).unwrap();
    std::fs::copy(
        fixture("sigma/webshell-exception.rules"),
        dir.path().join("local.rules"),
    )
    .unwrap();
    let stdout = stdout_of_success(spawnwatch().arg("check").arg(dir.path()));
    assert!(stdout.contains("1 exceptions; 0 error(s)"), "{stdout}");
}

#[test]
fn a_converted_sigma_rule_extended_with_ancestry_passes_its_examples() {
    let stdout = stdout_of_success(
        spawnwatch()
            .arg("test")
            .arg(fixture("sigma/whoami-web.rules")),
    );
    assert!(stdout.ends_with("3 passed, 0 failed\n"), "{stdout}");
}

#[test]
fn sigma_convert_takes_a_directory_and_says_when_it_has_no_sigma_files() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("sigma/whoami-web-parent.yml")).unwrap();
    let first = text.split("---").next().unwrap().replace(
        "    unsupported_here:\n        DestinationIp|cidr: '10.0.0.0/8'\n",
        "",
    );
    std::fs::write(dir.path().join("b.yml"), &first).unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        first.replace("6c0e52f1-4d1f-4a8e-9a5f-0d1f2b3c4d5e", "a-second-id"),
    )
    .unwrap();
    let printed = stdout_of_success(spawnwatch().args(["sigma", "convert"]).arg(dir.path()));
    let ids: Vec<&str> = printed
        .lines()
        .filter_map(|l| l.strip_prefix("rule "))
        .collect();
    assert_eq!(
        ids,
        ["a-second-id {", "6c0e52f1-4d1f-4a8e-9a5f-0d1f2b3c4d5e {"]
    );

    let empty = tempfile::tempdir().unwrap();
    let out = spawnwatch()
        .args(["sigma", "convert"])
        .arg(empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no Sigma *.yml or *.yaml files in"),
        "{stderr}"
    );
}

#[test]
fn a_misspelt_sigma_status_is_refused_not_loaded_as_nothing() {
    let yml = fixture("sigma/whoami-web-parent.yml");
    let out = spawnwatch()
        .args(["check", "--sigma-status", "stable,experimantal"])
        .arg(&yml)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`experimantal` is not a Sigma status: write `all` or some of stable,test,experimental,deprecated,unsupported"),
        "{stderr}"
    );
    let all = spawnwatch()
        .args(["check", "--sigma-status", "ALL"])
        .arg(&yml)
        .output()
        .unwrap();
    assert!(
        all.status.success(),
        "{}",
        String::from_utf8_lossy(&all.stderr)
    );
}

#[test]
fn workers_must_be_between_1_and_1024() {
    let file = fixture("hosts.jsonl");
    for bad in ["0", "1025", "20000"] {
        let out = spawnwatch()
            .args(["replay", "--workers", bad, file.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--workers {bad}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "invalid value '{bad}' for '--workers <N>': {bad} is not in 1..=1024"
            )),
            "{stderr}"
        );
        assert!(
            out.stdout.is_empty(),
            "nothing replayed with --workers {bad}"
        );
    }
    for good in ["1", "1024"] {
        let r = run(&["replay", "--workers", good, file.to_str().unwrap()]);
        assert!(r.output.status.success(), "--workers {good}: {}", r.stderr);
        assert_eq!(r.alerts().len(), 1, "--workers {good}");
    }
}

#[test]
fn a_rule_file_with_a_byte_order_mark_loads_and_one_not_in_utf8_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let rule = "rule LOCAL { title: \"t\" severity: low attack: T1059\n  condition: exe == \"caf\u{1}.exe\" }\n";
    // Saved by older Notepad: UTF-8 with a byte-order mark.
    let bom = dir.path().join("bom.rules");
    std::fs::write(&bom, format!("\u{FEFF}{}", rule.replace('\u{1}', "é"))).unwrap();
    let stdout = stdout_of_success(spawnwatch().args(["check", bom.to_str().unwrap()]));
    assert!(
        stdout.contains("1 rules (1 enabled)") && stdout.contains("0 error(s)"),
        "{stdout}"
    );
    // Saved as Latin-1: `é` is the one byte 0xE9.
    let latin1 = dir.path().join("latin1.rules");
    let mut bytes = rule.as_bytes().to_vec();
    let at = bytes.iter().position(|&b| b == 1).unwrap();
    bytes[at] = 0xE9;
    std::fs::write(&latin1, bytes).unwrap();
    let out = spawnwatch()
        .args(["check", latin1.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "error[not-utf8]: the file is not UTF-8 text: byte 0xE9 cannot be read\n --> {}:2:25\n",
            latin1.display()
        )),
        "{stderr}"
    );
    // The examples file beside the rules is read the same way.
    let tests = dir.path().join("bom.tests");
    std::fs::write(
        &tests,
        "\u{FEFF}match LOCAL {\"exe\":\"café.exe\"}\nnomatch LOCAL {\"exe\":\"cmd.exe\"}\n",
    )
    .unwrap();
    let stdout = stdout_of_success(spawnwatch().args(["test", bom.to_str().unwrap()]));
    assert_eq!(
        stdout.lines().last().unwrap(),
        "2 passed, 0 failed",
        "{stdout}"
    );
}

#[test]
fn an_unknown_field_in_a_rule_example_is_an_error_with_a_did_you_mean() {
    // The `nomatch` would pass: `parent_exee` is no field, so the parent looks unknown.
    let (code, stdout, file) = test_local_rule(
        "match LOCAL {\"exe\":\"cmd.exe\",\"parent_exe\":\"w3wp.exe\"}\nnomatch LOCAL {\"exe\":\"cmd.exe\",\"parent_exee\":\"w3wp.exe\"}\n",
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "error[unknown-field]: unknown field `parent_exee` in the event\n --> {}:2:32\n",
            file.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("= help: did you mean `parent_exe`?"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().last().unwrap(), "1 passed, 1 failed");
}

/// `spawnwatch rules | head -1`: a reader that has gone ends a report command quietly,
/// as it ends any Unix filter, never with a panic. The pipe's reading end is closed
/// before the command starts, so every write meets it closed.
#[test]
fn report_commands_end_quietly_when_their_reader_has_gone() {
    for args in [
        &["rules"][..],
        &["check"],
        &["check", "--format", "json"],
        &["test", "rules"],
        &["sigma", "convert", "tests/fixtures/sigma/whoami-web.yml"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = spawnwatch()
            .args(args)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .stdout(writer)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
}
