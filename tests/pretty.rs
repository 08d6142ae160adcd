//! The terminal view end to end: pretty on a terminal (a pseudo-terminal here) and
//! JSON in a pipe by default, `--format` and `--color` over that, `NO_COLOR` and
//! `CLICOLOR_FORCE` honoured, and `--output FILE` staying JSON beside the view, as
//! network destinations do.
#![cfg(unix)]

mod common;

use common::{fixture, spawnwatch, stdout_of_success};
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};

const ESC: char = '\u{1b}';

/// `spawnwatch replay` of a web shell's tree (cmd and whoami under w3wp), its colour
/// settings left to each test.
fn replay(args: &[&str]) -> Command {
    let mut command = spawnwatch();
    command
        .arg("replay")
        .args(args)
        .arg(fixture("parent_from_table.jsonl"))
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR")
        .env_remove("CLICOLOR_FORCE")
        .stdin(Stdio::null());
    command
}

/// Runs `command` with its stdout on a pseudo-terminal `columns` wide and returns
/// what the terminal got (its `\r\n` as `\n`).
fn on_a_terminal(mut command: Command, columns: u16) -> String {
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize {
        ws_row: 50,
        ws_col: columns,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let opened = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut child = command
        .env("TERM", "xterm-256color")
        .stdout(Stdio::from(slave))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(command); // its copy of the terminal's end, or the read below never ends
    let mut shown = Vec::new();
    // Linux ends the read with EIO once the child has closed the terminal.
    let _ = std::fs::File::from(master).read_to_end(&mut shown);
    assert!(child.wait().unwrap().success());
    String::from_utf8(shown).unwrap().replace("\r\n", "\n")
}

#[test]
fn on_a_terminal_alerts_are_a_coloured_tree_cut_to_its_width() {
    let shown = on_a_terminal(replay(&[]), 70);
    assert!(shown.contains("incident WEB01 · w3wp.exe 1000"), "{shown}");
    assert!(shown.contains(ESC), "coloured: {shown:?}");
    let plain = without_colour(&shown);
    assert!(plain.contains("cmd.exe /c whoami"), "{shown}");
    for line in plain.lines() {
        assert!(line.chars().count() <= 70, "{line:?}");
    }
    let mut no_color = replay(&[]);
    no_color.env("NO_COLOR", "1");
    let shown = on_a_terminal(no_color, 70);
    assert!(shown.contains("incident WEB01"), "{shown}");
    assert!(!shown.contains(ESC), "NO_COLOR: {shown:?}");
}

/// The text without its colour codes (ESC [ ... m).
fn without_colour(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == ESC {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn in_a_pipe_alerts_are_json_unless_pretty_is_asked_for() {
    let json = stdout_of_success(&mut replay(&[]));
    assert_eq!(json.lines().count(), 2);
    assert!(
        json.lines().all(|l| l.starts_with(r#"{"kind":"alert""#)),
        "{json}"
    );
    let pretty = stdout_of_success(&mut replay(&["--format", "pretty"]));
    assert_eq!(
        pretty,
        "\
── incident WEB01 · w3wp.exe 1000 ──────────────────────────────────────────────────────────────────
2026-11-27 10:00:02.000  HIGH  CAR-2021-02-001  Webshell-indicative process tree
  svchost.exe 700
  └─ w3wp.exe 1000  IIS APPPOOL\\DefaultAppPool  w3wp.exe -ap \"DefaultAppPool\"
     └▶ cmd.exe 4242  IIS APPPOOL\\DefaultAppPool  cmd.exe /c whoami
2026-11-27 10:00:02.100  HIGH  SW-WIN-002  Discovery tool or LOLBin run by a shell under a web serv…
     └─ cmd.exe 4242
        └▶ whoami.exe 4300  whoami
"
    );
}

#[test]
fn color_follows_the_flag_then_no_color_then_clicolor_force() {
    let coloured = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = replay(args);
        command.envs(env.iter().copied());
        stdout_of_success(&mut command).contains(ESC)
    };
    let pretty = ["--format", "pretty"];
    assert!(!coloured(&pretty, &[]), "a pipe: no colour");
    assert!(coloured(
        &["--format", "pretty", "--color", "always"],
        &[("NO_COLOR", "1")]
    ));
    assert!(coloured(&pretty, &[("CLICOLOR_FORCE", "1")]));
    assert!(!coloured(
        &pretty,
        &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]
    ));
    assert!(!coloured(
        &["--format", "pretty", "--color", "never"],
        &[("CLICOLOR_FORCE", "1")]
    ));
}

#[test]
fn output_file_stays_json_while_stdout_shows_the_view() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alerts.jsonl");
    let shown = stdout_of_success(&mut replay(&[
        "--format",
        "pretty",
        "-o",
        file.to_str().unwrap(),
    ]));
    assert!(shown.contains("└▶ whoami.exe 4300"), "{shown}");
    let written = std::fs::read_to_string(&file).unwrap();
    let incidents: Vec<serde_json::Value> = written
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["incident"].clone())
        .collect();
    assert_eq!(incidents, ["WEB01/1000/2026-11-27T10:00:01Z"; 2]);
}

/// With several destinations, stdout (`-o -`) is the one that shows the view; a file
/// and a syslog collector get JSON, syslog in its own framing.
#[test]
fn with_several_outputs_only_stdout_shows_the_view() {
    let dir = tempfile::tempdir().unwrap();
    let (file, spool) = (dir.path().join("alerts.jsonl"), dir.path().join("spool"));
    let collector = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    collector
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let syslog = format!("syslog+udp://{}", collector.local_addr().unwrap());
    let shown = stdout_of_success(&mut replay(&[
        "--format",
        "pretty",
        "-o",
        "-",
        "-o",
        file.to_str().unwrap(),
        "-o",
        &syslog,
        "--spool-dir",
        spool.to_str().unwrap(),
    ]));
    assert_eq!(shown.matches("└▶ whoami.exe 4300").count(), 1, "{shown}");
    assert!(!shown.contains('{'), "no JSON on stdout: {shown}");
    let written = std::fs::read_to_string(&file).unwrap();
    assert_eq!(written.lines().count(), 2, "{written}");
    let mut datagram = [0u8; 65536];
    for line in written.lines() {
        let n = collector.recv(&mut datagram).unwrap();
        let message = std::str::from_utf8(&datagram[..n]).unwrap();
        assert!(message.starts_with("<131>1 "), "{message}");
        assert!(message.ends_with(line), "{message}");
    }
}
