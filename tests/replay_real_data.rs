//! End-to-end over real recordings of web shells and of normal hosts, read in place from
//! the shared data folder (CI has it beside the project).

mod common;

use common::{run, shared_data, Run};

/// The replay of a shared recording, or `None` when it is missing (the test is then
/// skipped; under CI it fails).
fn replay(name: &str) -> Option<Run> {
    let file = shared_data(name)?;
    let r = run(&["replay", "--ordered", file.to_str().unwrap()]);
    assert!(
        r.output.status.success(),
        "replay {name} failed: {}",
        r.stderr
    );
    Some(r)
}

fn count(r: &Run, rule: &str, exe: &str, parent: &str) -> usize {
    r.triples()
        .iter()
        .filter(|t| *t == &(rule.to_string(), exe.to_string(), parent.to_string()))
        .count()
}

#[test]
fn iis_web_shell_gives_the_car_alert_for_w3wp_cmd() {
    let Some(r) = replay("LM_typical_IIS_webshell_sysmon_1_10_traces.evtx") else {
        return;
    };
    assert_eq!(
        count(&r, "CAR-2021-02-001", "cmd.exe", "w3wp.exe"),
        1,
        "{:?}",
        r.triples()
    );
    let car = r
        .alerts()
        .into_iter()
        .find(|a| a["rule"]["id"] == "CAR-2021-02-001")
        .unwrap();
    assert!(car["process"]["command_line"]
        .as_str()
        .unwrap()
        .contains("net user"));
}

#[test]
fn appcmd_discovery_gives_car_for_powershell_and_alerts_its_grandchildren() {
    let Some(r) = replay("discovery_sysmon_1_iis_pwd_and_config_discovery_appcmd.evtx") else {
        return;
    };
    assert_eq!(
        count(&r, "CAR-2021-02-001", "powershell.exe", "w3wp.exe"),
        1,
        "{:?}",
        r.triples()
    );
    let appcmd = count(&r, "SW-WIN-002", "appcmd.exe", "powershell.exe");
    assert_eq!(appcmd, 39, "{:?}", r.triples());
    let one = r
        .alerts()
        .into_iter()
        .find(|a| a["process"]["exe"] == "appcmd.exe")
        .unwrap();
    assert_eq!(one["ancestors"][1]["exe"], "w3wp.exe");
}

/// The 40 alerts of one web-shell session are one incident, under the w3wp.exe they
/// all came through, and the closing summary says so in one row.
#[test]
fn appcmd_discovery_is_one_incident_of_40_processes() {
    let Some(r) = replay("discovery_sysmon_1_iis_pwd_and_config_discovery_appcmd.evtx") else {
        return;
    };
    let alerts = r.alerts();
    assert_eq!(alerts.len(), 40);
    let incidents: std::collections::BTreeSet<&str> = alerts
        .iter()
        .map(|a| a["incident"].as_str().unwrap())
        .collect();
    assert_eq!(incidents.into_iter().collect::<Vec<_>>(), ["IEWIN7/748/-"]);
    let processes: std::collections::BTreeSet<u64> = alerts
        .iter()
        .map(|a| a["process"]["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(processes.len(), 40);
    let summary: Vec<&str> = r
        .stderr
        .lines()
        .skip_while(|l| !l.starts_with("  incidents:"))
        .collect();
    assert_eq!(summary[0], "  incidents: 1", "{}", r.stderr);
    let row: Vec<&str> = summary[2]
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        row,
        [
            "IEWIN7",
            "w3wp.exe 748",
            r"IIS APPPOOL\DefaultAppPool",
            "2019-05-27 01:28:42 - 01:29:20",
            "40",
            "40",
            "high",
            "CAR-2021-02-001, SW-WIN-002"
        ],
        "{}",
        r.stderr
    );
}

#[test]
fn proxylogon_gives_car_for_whoami_from_sysmon_and_from_4688() {
    let Some(r) = replay("proxylogon_ssrf_rce_poc.zip") else {
        return;
    };
    let car: Vec<_> = r
        .alerts()
        .into_iter()
        .filter(|a| {
            a["rule"]["id"] == "CAR-2021-02-001"
                && a["parent"]["exe"] == "w3wp.exe"
                && a["process"]["exe"] == "cmd.exe"
        })
        .filter(|a| {
            a["process"]["command_line"]
                .as_str()
                .unwrap_or("")
                .contains("/c whoami")
        })
        .collect();
    // Two web-shell commands, each recorded by Sysmon (event 1) and by Security (4688);
    // 4688 gives the creator as a hex pid, which only it sets as creator_pid.
    assert_eq!(car.len(), 4, "{:?}", r.triples());
    assert_eq!(
        car.iter()
            .filter(|a| a["process"]["creator_pid"].is_u64())
            .count(),
        2
    );
    // w3wp -> cvtres is ASP.NET compiling a page: the shipped exception keeps it quiet.
    assert_eq!(
        r.alerts()
            .iter()
            .filter(|a| a["process"]["exe"] == "cvtres.exe")
            .count(),
        0
    );
}

#[test]
fn log4shell_gives_car_for_tomcat_powershell() {
    let Some(r) = replay("securityauditing_log4shell_cve2021_44228_java_serialized_object.zip")
    else {
        return;
    };
    assert_eq!(
        count(&r, "CAR-2021-02-001", "powershell.exe", "tomcat9.exe"),
        1,
        "{:?}",
        r.triples()
    );
}

#[test]
fn node_starting_cmd_is_caught_by_the_extended_rule_not_car() {
    let Some(r) = replay("sigma_regr_cve_2025_55182_node_child.evtx") else {
        return;
    };
    assert_eq!(
        r.triples(),
        [(
            "SW-WIN-001".to_string(),
            "cmd.exe".to_string(),
            "node.exe".to_string()
        )]
    );
}

#[test]
fn normal_and_noise_hosts_give_no_car_alert() {
    for name in [
        "PanacheSysmon_vs_AtomicRedTeam01.evtx",
        "ID4688-Tchopper-obfuscated-payload.evtx",
    ] {
        let Some(r) = replay(name) else {
            return;
        };
        assert!(r.stderr.contains("process events"), "{}", r.stderr);
        let car = r
            .alerts()
            .iter()
            .filter(|a| a["rule"]["id"] == "CAR-2021-02-001")
            .count();
        assert_eq!(car, 0, "{name}: {:?}", r.triples());
    }
}

#[test]
fn the_attack_sample_sweep_reads_every_file_without_failing() {
    let Some(dir) = common::needs::shared("evtx-attack-samples") else {
        return;
    };
    let r = run(&["replay", dir.to_str().unwrap()]);
    assert!(r.output.status.success(), "{}", r.stderr);
    assert!(r.stderr.contains("replayed 277 file(s)"), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

/// A fresh clone has no `../shared`: outside CI each test that needs it says what is
/// missing and where it comes from, and passes; under CI it fails. Checked by running
/// one of this file's tests again, in a child, with the folder pointed elsewhere.
#[test]
fn without_the_shared_folder_a_test_is_skipped_outside_ci_and_fails_under_it() {
    let test = "iis_web_shell_gives_the_car_alert_for_w3wp_cmd";
    let rerun = |ci: Option<&str>| {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child
            .args(["--exact", test, "--nocapture"])
            .env("SPAWNWATCH_SHARED", "/nonexistent/shared")
            .env_remove("CI");
        if let Some(ci) = ci {
            child.env("CI", ci);
        }
        let out = child.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let needs = "needs ../shared/data/LM_typical_IIS_webshell_sysmon_1_10_traces.evtx (the project's shared recordings, looked for at /nonexistent/shared; set SPAWNWATCH_SHARED to the folder elsewhere)";
    let (passed, text) = rerun(None);
    assert!(passed, "{text}");
    assert!(
        text.contains(&format!("{test}: skipped: {needs}")),
        "{text}"
    );
    assert!(text.contains("1 passed"), "{text}");
    let (passed, text) = rerun(Some("true"));
    assert!(!passed, "{text}");
    assert!(
        text.contains(&format!("{test}: {needs}; under CI")),
        "{text}"
    );
}
