//! `spawnwatch service`: the sensor as a Windows service or a systemd unit, installed
//! and run in one command, so that it survives log-offs and reboots for the days an
//! exercise lasts.
//!
//! - [`args`]: the `run` options a service runs with (checked at install, paths made
//!   absolute, an output and the stats file added);
//! - [`lifecycle`]: the state machine and stop sequence a service manager sees, tested
//!   on every platform;
//! - `windows.rs`: thin glue to the Service Control Manager and the event log;
//! - `systemd.rs`: the unit (its own user, two capabilities, a sandbox) and its install;
//! - [`stats_file`]: the latest stats line, which `service status` prints.
//!
//! This module knows `run` only through what `main` hands it ([`Sensor`]): its clap
//! definition and a function that runs it.

mod args;
// Driven by the Windows service glue; tested everywhere.
#[cfg(windows)]
mod eventlog;
#[cfg_attr(not(windows), allow(dead_code))]
mod lifecycle;
mod stats_file;
#[cfg(target_os = "linux")]
mod systemd;
#[cfg(windows)]
mod windows;

pub use stats_file::StatsFile;

use crate::signals::Signals;
use clap::{Args, Subcommand};
use std::ffi::OsString;
use std::process::ExitCode;

/// The service's names, the same on both systems.
pub struct Names {
    #[cfg_attr(not(windows), allow(dead_code))]
    pub name: &'static str,
    #[cfg_attr(not(windows), allow(dead_code))]
    pub display_name: &'static str,
    pub description: &'static str,
}

pub const SERVICE: Names = Names {
    name: "spawnwatch",
    display_name: "spawnwatch web shell sensor",
    description: "spawnwatch: catches web shells by the process trees they leave (a web server starting shells and discovery tools) and writes JSON alerts for a SIEM.",
};

#[derive(Subcommand)]
pub enum ServiceCommand {
    /// Install the sensor as a service that starts at boot, and start it. What follows
    /// are `spawnwatch run`'s options, checked now; relative paths are made absolute.
    /// Without --output, alerts go to C:\ProgramData\spawnwatch\alerts.jsonl (Windows)
    /// or /var/log/spawnwatch/alerts.jsonl (Linux). Windows: LocalSystem, automatic
    /// start, restarted 5 s after a failure (three times, then every minute), failures
    /// to start written to the Application event log (source spawnwatch). Linux: a
    /// systemd unit running as the user `spawnwatch` with only CAP_NET_ADMIN and
    /// CAP_SYS_PTRACE, in a sandbox.
    Install(InstallArgs),
    /// Stop the service and remove it (its outputs and stats file stay).
    Uninstall,
    /// Start the installed service.
    Start,
    /// Stop the service: it drains, flushes every alert and writes its final stats line.
    Stop,
    /// Whether the service runs, and its last stats line.
    Status,
    /// What the Windows service manager starts (`spawnwatch run` under its control);
    /// not for use by hand.
    #[command(hide = true)]
    Run(RunOptions),
}

#[derive(Args)]
pub struct InstallArgs {
    /// Print what would be installed (Linux: the unit file) and change nothing.
    #[arg(long)]
    print: bool,
    #[command(flatten)]
    run: RunOptions,
}

#[derive(Args)]
pub struct RunOptions {
    /// `spawnwatch run`'s options (see `spawnwatch run --help`).
    #[arg(
        value_name = "RUN OPTIONS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    options: Vec<OsString>,
}

/// What `main` gives this module of `spawnwatch run`.
pub struct Sensor {
    /// Its clap definition: install checks the options against it.
    pub definition: clap::Command,
    /// Runs it on options the definition accepted until `signals.stop` is set, calling
    /// the hook once it watches.
    #[cfg_attr(not(windows), allow(dead_code))]
    pub run: RunSensor,
}

/// Runs the sensor on parsed `run` options, with these signals and "it watches" hook.
pub type RunSensor = fn(&clap::ArgMatches, Signals, Box<dyn FnOnce()>) -> Result<ExitCode, String>;

pub fn command(command: ServiceCommand, sensor: Sensor) -> Result<ExitCode, String> {
    platform::command(command, sensor)
}

/// `service status`'s exit code: 0 when the service runs, 3 when it does not (what
/// `systemctl status` answers).
#[cfg(any(target_os = "linux", windows))]
fn status_code(running: bool) -> ExitCode {
    if running {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    }
}

#[cfg(target_os = "linux")]
mod platform {
    use super::systemd::{self, System};
    use super::{args, stats_file, Sensor, ServiceCommand};
    use std::process::ExitCode;

    pub fn command(command: ServiceCommand, sensor: Sensor) -> Result<ExitCode, String> {
        let host = &mut System;
        let say = &mut |line: String| eprintln!("spawnwatch: {line}");
        match command {
            ServiceCommand::Install(install) => {
                let layout = systemd::layout();
                let options =
                    args::service_options(&sensor.definition, &install.run.options, &layout)?;
                let exe = std::env::current_exe()
                    .map_err(|e| format!("cannot tell where this program is: {e}"))?;
                let capabilities = crate::source::proc_connector::NEEDED_CAPABILITIES;
                let unit = systemd::unit(&exe, &options, &capabilities)?;
                if install.print {
                    print!("{unit}");
                    return Ok(ExitCode::SUCCESS);
                }
                systemd::install(host, &unit, say)?;
            }
            ServiceCommand::Uninstall => systemd::uninstall(host, say)?,
            ServiceCommand::Start => systemd::systemctl(host, "start")?,
            ServiceCommand::Stop => systemd::systemctl(host, "stop")?,
            ServiceCommand::Status => {
                // systemctl fails when the unit does not run: the last stats line is
                // printed all the same.
                let running = systemd::systemctl(host, "status");
                if let Err(e) = &running {
                    say(e.clone());
                }
                stats_file::print_last(&systemd::layout().stats_file);
                return Ok(super::status_code(running.is_ok()));
            }
            ServiceCommand::Run(run) => {
                return Err(format!(
                    "`service run` is what the Windows service manager starts; here, run `spawnwatch run {}` (the systemd unit does)",
                    systemd::shown(&run.options)
                ))
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(windows)]
mod platform {
    pub use super::windows::command;
}

#[cfg(not(any(target_os = "linux", windows)))]
mod platform {
    use super::{Sensor, ServiceCommand};
    use std::process::ExitCode;

    pub fn command(_: ServiceCommand, _: Sensor) -> Result<ExitCode, String> {
        Err(format!(
            "`spawnwatch service` installs a Windows service or a systemd unit; on {} run `spawnwatch run` under your own supervisor",
            std::env::consts::OS
        ))
    }
}
