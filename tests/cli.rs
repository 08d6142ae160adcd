//! End-to-end: the commands a rule author and an operator type.

mod common;

use common::{fixture, run, spawnwatch, stdout_of_success};

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

#[test]
fn a_failing_rule_example_shows_which_part_did_not_hold() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("local.rules"),
        "rule LOCAL { title: \"t\" severity: low attack: T1059 condition: parent_exe == \"w3wp.exe\" and exe == \"cmd.exe\" }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("local.tests"),
        "match LOCAL {\"exe\":\"cmd.exe\",\"parent_exe\":\"explorer.exe\"}\nnomatch LOCAL {\"exe\":\"cmd.exe\",\"parent_exe\":\"explorer.exe\"}\n",
    )
    .unwrap();
    let out = spawnwatch()
        .args(["test", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
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
    let dir = fixture("../../../shared/sigma/rules/windows/process_creation");
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
