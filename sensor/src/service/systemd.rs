//! The sensor as a systemd service: the unit, and installing it.
//!
//! The unit runs `spawnwatch run` as the system user `spawnwatch`, holding only the two
//! capabilities the live source needs (CAP_NET_ADMIN, CAP_SYS_PTRACE: see
//! `source/proc_connector/privileges.rs` for why each, and why not CAP_DAC_READ_SEARCH)
//! in a sandbox that leaves it nothing else to write but its output files and its
//! state directory. Installing writes the unit, creates the user, and asks systemd to
//! load, enable and start it, when systemd runs; when it does not (a container, this
//! project's build machine), install says which steps it left undone.

use super::args::{Layout, ServiceOptions};
use super::SERVICE;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub const UNIT_PATH: &str = "/etc/systemd/system/spawnwatch.service";
const UNIT: &str = "spawnwatch.service";
/// The system user the sensor runs as.
pub const USER: &str = "spawnwatch";
const STATE_DIR: &str = "/var/lib/spawnwatch";
const LOGS_DIR: &str = "/var/log/spawnwatch";
/// What `ProtectHome=yes` hides from the service.
const HIDDEN: [&str; 3] = ["/home", "/root", "/run/user"];

pub fn layout() -> Layout {
    Layout {
        output: Path::new(LOGS_DIR).join("alerts.jsonl"),
        stats_file: Path::new(STATE_DIR).join("stats.json"),
    }
}

/// The unit that runs `exe run OPTIONS`. Fails when a file the service needs is where
/// the sandbox hides it.
pub fn unit(exe: &Path, options: &ServiceOptions, capabilities: &[&str]) -> Result<String, String> {
    for path in std::iter::once(exe)
        .chain(options.reads.iter().map(PathBuf::as_path))
        .chain(options.writes.iter().map(PathBuf::as_path))
    {
        if let Some(hidden) = HIDDEN.iter().find(|h| path.starts_with(h)) {
            return Err(format!(
                "{} is under {hidden}, which the service cannot see (ProtectHome=yes): \
                 put it elsewhere (the program in /usr/local/bin, rules in /etc/spawnwatch, \
                 outputs in {LOGS_DIR})",
                path.display()
            ));
        }
    }
    let mut exec = vec![quote(exe.as_os_str())?, "run".to_string()];
    for arg in &options.args {
        exec.push(quote(arg)?);
    }
    // Directories written outside the ones systemd makes for the service.
    let mut writable: Vec<String> = Vec::new();
    for path in &options.writes {
        let dir = path.parent().unwrap_or(Path::new("/"));
        if dir.starts_with(STATE_DIR) || dir.starts_with(LOGS_DIR) {
            continue;
        }
        // "-": a missing directory is for the sensor to report, by name, not for
        // systemd to fail on with "226/NAMESPACE".
        let entry = format!("-{}", quote(dir.as_os_str())?);
        if !writable.contains(&entry) {
            writable.push(entry);
        }
    }
    let read_write = if writable.is_empty() {
        String::new()
    } else {
        format!(
            "# Where the outputs go: the user {USER} must be able to write there.\nReadWritePaths={}\n",
            writable.join(" ")
        )
    };
    let capabilities = capabilities.join(" ");
    Ok(format!(
        "\
# Written by `spawnwatch service install`; `spawnwatch service uninstall` removes it.
[Unit]
Description={description}

[Service]
Type=exec
ExecStart={exec}
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=5s
User={USER}
Group={USER}
# The process-events connector (CAP_NET_ADMIN) and other users' /proc/PID/exe and cwd
# (CAP_SYS_PTRACE), and nothing else.
AmbientCapabilities={capabilities}
CapabilityBoundingSet={capabilities}
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
StateDirectory=spawnwatch
LogsDirectory=spawnwatch
{read_write}PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
RemoveIPC=yes
PrivateMounts=yes
# Alerts hold command lines: not for every user to read.
UMask=0027
# No PrivateNetwork: the connector speaks only to the initial network namespace; no
# PrivateUsers: capabilities held in a user namespace do not reach the connector.
RestrictAddressFamilies=AF_NETLINK AF_UNIX AF_INET AF_INET6

[Install]
WantedBy=multi-user.target
",
        description = SERVICE.description,
        exec = exec.join(" "),
    ))
}

/// One `ExecStart` word: quoted when it must be, `%` and `$` escaped (systemd expands
/// both).
fn quote(word: &std::ffi::OsStr) -> Result<String, String> {
    let text = word.to_str().ok_or_else(|| {
        format!(
            "{} is not UTF-8, which a unit file cannot hold",
            word.to_string_lossy()
        )
    })?;
    let escaped = text
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$");
    if escaped.is_empty()
        || escaped.contains(|c: char| c.is_whitespace() || c == '\'' || c == ';')
        || escaped != text
    {
        Ok(format!("\"{escaped}\""))
    } else {
        Ok(escaped)
    }
}

/// What install, uninstall, start, stop and status need from the host: thin, so that
/// tests play it.
pub trait Host {
    /// Why systemd cannot be asked to do anything, or `None` when it runs.
    fn systemd_absent(&self) -> Option<String>;
    fn user_exists(&self, name: &str) -> bool;
    /// Runs a program to its end; an error says what failed.
    fn run(&mut self, program: &str, args: &[&str]) -> Result<(), String>;
    fn write(&mut self, path: &Path, text: &str) -> Result<(), String>;
    /// Removes a file; false when it was not there.
    fn remove(&mut self, path: &Path) -> Result<bool, String>;
}

/// Installs the unit and starts it; each step done is said through `say`. An error
/// when a step failed or systemd was not there to take the last ones.
pub fn install(host: &mut dyn Host, unit: &str, say: &mut dyn FnMut(String)) -> Result<(), String> {
    if host.user_exists(USER) {
        say(format!("the system user {USER} exists"));
    } else {
        host.run(
            "useradd",
            &[
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                STATE_DIR,
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                "spawnwatch web shell sensor",
                USER,
            ],
        )?;
        say(format!("created the system user {USER}"));
    }
    host.write(Path::new(UNIT_PATH), unit)?;
    say(format!("wrote {UNIT_PATH}"));
    if let Some(absent) = host.systemd_absent() {
        return Err(format!(
            "{absent}: the unit is written but not loaded, enabled or started. Where systemd runs: systemctl daemon-reload && systemctl enable --now {UNIT}"
        ));
    }
    host.run("systemctl", &["daemon-reload"])?;
    host.run("systemctl", &["enable", "--now", UNIT])?;
    say(format!(
        "enabled and started {UNIT}: it starts at boot; `spawnwatch service status` shows it"
    ));
    Ok(())
}

/// Stops and disables the unit and removes it; the user, the logs and the state stay.
pub fn uninstall(host: &mut dyn Host, say: &mut dyn FnMut(String)) -> Result<(), String> {
    let absent = host.systemd_absent();
    if absent.is_none() {
        host.run("systemctl", &["disable", "--now", UNIT])?;
        say(format!("stopped and disabled {UNIT}"));
    }
    if host.remove(Path::new(UNIT_PATH))? {
        say(format!("removed {UNIT_PATH}"));
    } else {
        say(format!("{UNIT_PATH} was not there"));
    }
    if absent.is_none() {
        host.run("systemctl", &["daemon-reload"])?;
    }
    say(format!(
        "kept the user {USER}, {LOGS_DIR} and {STATE_DIR} (userdel {USER}; rm -r {LOGS_DIR} {STATE_DIR} removes them)"
    ));
    match absent {
        Some(absent) => Err(format!("{absent}: nothing was stopped or disabled")),
        None => Ok(()),
    }
}

/// `systemctl VERB spawnwatch.service`, when systemd runs.
pub fn systemctl(host: &mut dyn Host, verb: &str) -> Result<(), String> {
    if let Some(absent) = host.systemd_absent() {
        return Err(format!("{absent}, so `systemctl {verb} {UNIT}` cannot run"));
    }
    host.run("systemctl", &[verb, "--no-pager", UNIT])
}

/// The real host.
pub struct System;

impl Host for System {
    fn systemd_absent(&self) -> Option<String> {
        // sd_booted()'s test.
        if Path::new("/run/systemd/system").is_dir() {
            return None;
        }
        let init = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
        Some(format!(
            "systemd is not running here (PID 1 is `{}`)",
            init.trim()
        ))
    }

    fn user_exists(&self, name: &str) -> bool {
        std::process::Command::new("getent")
            .args(["passwd", name])
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn run(&mut self, program: &str, args: &[&str]) -> Result<(), String> {
        let shown = format!("{program} {}", args.join(" "));
        let status = std::process::Command::new(program)
            .args(args)
            .status()
            .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("`{shown}` failed ({status})"))
        }
    }

    fn write(&mut self, path: &Path, text: &str) -> Result<(), String> {
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    fn remove(&mut self, path: &Path) -> Result<bool, String> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
        }
    }
}

/// The options as the unit's command line shows them (for messages).
pub fn shown(args: &[OsString]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(args: &[&str], reads: &[&str], writes: &[&str]) -> ServiceOptions {
        ServiceOptions {
            args: args.iter().map(OsString::from).collect(),
            reads: reads.iter().map(PathBuf::from).collect(),
            writes: writes.iter().map(PathBuf::from).collect(),
        }
    }

    const CAPS: [&str; 2] = ["CAP_NET_ADMIN", "CAP_SYS_PTRACE"];

    fn default_unit() -> String {
        let options = options(
            &[
                "--output",
                "/var/log/spawnwatch/alerts.jsonl",
                "--stats-file",
                "/var/lib/spawnwatch/stats.json",
            ],
            &[],
            &[
                "/var/log/spawnwatch/alerts.jsonl",
                "/var/lib/spawnwatch/stats.json",
            ],
        );
        unit(Path::new("/usr/local/bin/spawnwatch"), &options, &CAPS).unwrap()
    }

    fn value<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .collect()
    }

    #[test]
    fn the_unit_runs_the_sensor_as_its_user_with_two_capabilities_in_a_sandbox() {
        let unit = default_unit();
        assert_eq!(
            value(&unit, "ExecStart"),
            ["/usr/local/bin/spawnwatch run --output /var/log/spawnwatch/alerts.jsonl --stats-file /var/lib/spawnwatch/stats.json"]
        );
        for (key, expected) in [
            ("User", "spawnwatch"),
            ("AmbientCapabilities", "CAP_NET_ADMIN CAP_SYS_PTRACE"),
            ("CapabilityBoundingSet", "CAP_NET_ADMIN CAP_SYS_PTRACE"),
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("Restart", "on-failure"),
            ("ExecReload", "/bin/kill -HUP $MAINPID"),
            ("StateDirectory", "spawnwatch"),
            ("LogsDirectory", "spawnwatch"),
        ] {
            assert_eq!(value(&unit, key), [expected], "{key}");
        }
        assert!(
            value(&unit, "ReadWritePaths").is_empty(),
            "its own directories are writable already"
        );
        assert!(
            value(&unit, "PrivateNetwork").is_empty(),
            "the connector needs the host's"
        );
    }

    #[test]
    fn outputs_elsewhere_are_made_writable_once_each() {
        let options = options(
            &[
                "--output",
                "/srv/alerts/a.jsonl",
                "--record",
                "/srv/alerts/events.jsonl",
            ],
            &["/etc/spawnwatch/rules"],
            &[
                "/srv/alerts/a.jsonl",
                "/srv/alerts/events.jsonl",
                "/srv/my records/e.jsonl",
            ],
        );
        let unit = unit(Path::new("/usr/bin/spawnwatch"), &options, &CAPS).unwrap();
        assert_eq!(
            value(&unit, "ReadWritePaths"),
            ["-/srv/alerts -\"/srv/my records\""]
        );
    }

    #[test]
    fn words_systemd_would_split_or_expand_are_quoted() {
        let quoted = |w: &str| quote(std::ffi::OsStr::new(w)).unwrap();
        assert_eq!(quoted("/srv/a.jsonl"), "/srv/a.jsonl");
        assert_eq!(quoted("/srv/my alerts.jsonl"), "\"/srv/my alerts.jsonl\"");
        assert_eq!(quoted("/srv/100%.jsonl"), "\"/srv/100%%.jsonl\"");
        assert_eq!(quoted("/srv/$HOME"), "\"/srv/$$HOME\"");
        assert_eq!(quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quoted(""), "\"\"");
    }

    #[test]
    fn files_under_home_are_refused_as_the_sandbox_hides_them() {
        let home_rules = options(&[], &["/home/ann/local.rules"], &[]);
        let err = unit(Path::new("/usr/bin/spawnwatch"), &home_rules, &CAPS).unwrap_err();
        assert!(
            err.starts_with("/home/ann/local.rules is under /home, which the service cannot see"),
            "{err}"
        );
        let err = unit(
            Path::new("/root/spawnwatch"),
            &options(&[], &[], &[]),
            &CAPS,
        )
        .unwrap_err();
        assert!(err.contains("under /root"), "{err}");
    }

    /// A host that records what it is asked.
    #[derive(Default)]
    struct Fake {
        systemd: bool,
        user: bool,
        done: Vec<String>,
        fail: Option<&'static str>,
    }

    impl Host for Fake {
        fn systemd_absent(&self) -> Option<String> {
            (!self.systemd).then(|| "systemd is not running here (PID 1 is `init`)".into())
        }
        fn user_exists(&self, _: &str) -> bool {
            self.user
        }
        fn run(&mut self, program: &str, args: &[&str]) -> Result<(), String> {
            let line = format!("{program} {}", args.join(" "));
            if self.fail.is_some_and(|f| line.starts_with(f)) {
                return Err(format!("`{line}` failed"));
            }
            self.done.push(line);
            Ok(())
        }
        fn write(&mut self, path: &Path, _: &str) -> Result<(), String> {
            self.done.push(format!("write {}", path.display()));
            Ok(())
        }
        fn remove(&mut self, path: &Path) -> Result<bool, String> {
            self.done.push(format!("remove {}", path.display()));
            Ok(true)
        }
    }

    fn said(
        run: impl FnOnce(&mut dyn FnMut(String)) -> Result<(), String>,
    ) -> (Result<(), String>, Vec<String>) {
        let mut lines = Vec::new();
        let result = run(&mut |line| lines.push(line));
        (result, lines)
    }

    #[test]
    fn install_where_systemd_runs_creates_the_user_writes_enables_and_starts() {
        let mut host = Fake {
            systemd: true,
            ..Fake::default()
        };
        let (result, lines) = said(|say| install(&mut host, "unit", say));
        assert_eq!(result, Ok(()));
        assert_eq!(host.done.len(), 4);
        assert!(host.done[0].starts_with("useradd --system --user-group"));
        assert_eq!(
            host.done[1..],
            [
                "write /etc/systemd/system/spawnwatch.service",
                "systemctl daemon-reload",
                "systemctl enable --now spawnwatch.service"
            ]
        );
        assert_eq!(lines[0], "created the system user spawnwatch");
        assert!(lines[2].starts_with("enabled and started spawnwatch.service"));
    }

    #[test]
    fn install_without_systemd_says_what_it_did_and_did_not_do() {
        let mut host = Fake {
            user: true,
            ..Fake::default()
        };
        let (result, lines) = said(|say| install(&mut host, "unit", say));
        assert_eq!(host.done, ["write /etc/systemd/system/spawnwatch.service"]);
        assert_eq!(
            lines,
            [
                "the system user spawnwatch exists",
                "wrote /etc/systemd/system/spawnwatch.service"
            ]
        );
        let err = result.unwrap_err();
        assert!(
            err.starts_with("systemd is not running here (PID 1 is `init`): the unit is written but not loaded, enabled or started. Where systemd runs: systemctl daemon-reload && systemctl enable --now spawnwatch.service"),
            "{err}"
        );
    }

    #[test]
    fn a_failed_step_stops_install_there() {
        let mut host = Fake {
            systemd: true,
            fail: Some("systemctl enable"),
            ..Fake::default()
        };
        let (result, _) = said(|say| install(&mut host, "unit", say));
        assert_eq!(
            result,
            Err("`systemctl enable --now spawnwatch.service` failed".into())
        );
    }

    #[test]
    fn uninstall_stops_disables_removes_and_keeps_the_data() {
        let mut host = Fake {
            systemd: true,
            ..Fake::default()
        };
        let (result, lines) = said(|say| uninstall(&mut host, say));
        assert_eq!(result, Ok(()));
        assert_eq!(
            host.done,
            [
                "systemctl disable --now spawnwatch.service",
                "remove /etc/systemd/system/spawnwatch.service",
                "systemctl daemon-reload"
            ]
        );
        assert!(lines
            .last()
            .unwrap()
            .starts_with("kept the user spawnwatch"));
        let mut host = Fake::default();
        let (result, _) = said(|say| uninstall(&mut host, say));
        assert_eq!(host.done, ["remove /etc/systemd/system/spawnwatch.service"]);
        assert!(result
            .unwrap_err()
            .ends_with("nothing was stopped or disabled"));
    }

    #[test]
    fn start_stop_and_status_need_systemd() {
        let mut host = Fake {
            systemd: true,
            ..Fake::default()
        };
        systemctl(&mut host, "start").unwrap();
        assert_eq!(host.done, ["systemctl start --no-pager spawnwatch.service"]);
        let err = systemctl(&mut Fake::default(), "stop").unwrap_err();
        assert!(
            err.ends_with(", so `systemctl stop spawnwatch.service` cannot run"),
            "{err}"
        );
    }
}
