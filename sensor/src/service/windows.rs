//! The sensor as a Windows service: thin glue between the Service Control Manager (the
//! `windows-service` crate), the event log ([`eventlog`](super::eventlog)) and the
//! platform-independent [`args`](super::args) and [`lifecycle`](super::lifecycle).
//!
//! The service runs `spawnwatch.exe service run RUN-OPTIONS` as LocalSystem, starts
//! automatically, and is restarted 5 s after a failure, three times, then every minute
//! (a failure counts when the process dies and when it stops with an error: "failure
//! actions on non-crash failures"). It takes Stop and Preshutdown (not Shutdown: the
//! two are exclusive, and preshutdown comes first, with time of its own), each doing
//! what Ctrl+C does. The console handler is not installed in the service: a service
//! receives CTRL_LOGOFF_EVENT whenever any user logs off, which must not stop it.

use super::args::{self, Layout};
use super::lifecycle::{self, Control, Lifecycle, Reply, State, Status};
use super::{eventlog, stats_file, InstallArgs, RunSensor, Sensor, ServiceCommand, SERVICE};
use crate::signals::Signals;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use windows_service::service::{
    Service, ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
    ServiceErrorControl, ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod,
    ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

/// After a failure: restart in 5 s, three times, then every minute (the SCM repeats
/// the last action); a day without failure starts the count again.
const RESTARTS: [Duration; 4] = [
    Duration::from_secs(5),
    Duration::from_secs(5),
    Duration::from_secs(5),
    Duration::from_secs(60),
];
const FAILURE_COUNT_RESET: Duration = Duration::from_secs(24 * 3600);
/// How long `start` and `stop` wait for the service to get there.
const CONTROL_WAIT: Duration = Duration::from_secs(60);
/// ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: `service run` started by hand.
const NOT_STARTED_BY_THE_SCM: i32 = 1063;

/// `%ProgramData%\spawnwatch`: where the service keeps its files.
fn data_dir() -> PathBuf {
    let base = std::env::var_os("ProgramData").unwrap_or_else(|| r"C:\ProgramData".into());
    PathBuf::from(base).join(SERVICE.name)
}

fn layout() -> Layout {
    Layout {
        output: data_dir().join("alerts.jsonl"),
        stats_file: data_dir().join("stats.json"),
    }
}

pub fn command(command: ServiceCommand, sensor: Sensor) -> Result<ExitCode, String> {
    match command {
        ServiceCommand::Install(install_args) => install(install_args, &sensor)?,
        ServiceCommand::Uninstall => uninstall()?,
        ServiceCommand::Start => start(&open(ServiceAccess::START | ServiceAccess::QUERY_STATUS)?)?,
        ServiceCommand::Stop => stop()?,
        ServiceCommand::Status => return status(),
        ServiceCommand::Run(run) => dispatch(run.options, sensor)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// A `windows-service` error with the Windows error behind it.
fn failed(what: &str, e: windows_service::Error) -> String {
    match &e {
        windows_service::Error::Winapi(io) => format!("{what}: {io}"),
        other => format!("{what}: {other}"),
    }
}

fn manager(access: ServiceManagerAccess) -> Result<ServiceManager, String> {
    ServiceManager::local_computer(None::<&str>, access).map_err(|e| {
        failed(
            "cannot open the service manager (installing and controlling services needs an elevated prompt)",
            e,
        )
    })
}

fn open(access: ServiceAccess) -> Result<Service, String> {
    manager(ServiceManagerAccess::CONNECT)?
        .open_service(SERVICE.name, access)
        .map_err(|e| {
            failed(
                &format!(
                    "cannot open the service {} (is it installed? `spawnwatch service install`)",
                    SERVICE.name
                ),
                e,
            )
        })
}

fn install(install: InstallArgs, sensor: &Sensor) -> Result<(), String> {
    let layout = layout();
    let options = args::service_options(&sensor.definition, &install.run.options, &layout)?;
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot tell where this program is: {e}"))?;
    let mut launch: Vec<OsString> = vec!["service".into(), "run".into()];
    launch.extend(options.args);
    let info = ServiceInfo {
        name: SERVICE.name.into(),
        display_name: SERVICE.display_name.into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: exe,
        launch_arguments: launch,
        dependencies: vec![],
        account_name: None, // LocalSystem: ETW kernel tracing needs it
        account_password: None,
    };
    let command_line: Vec<String> = std::iter::once(info.executable_path.as_os_str())
        .chain(info.launch_arguments.iter().map(OsString::as_os_str))
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if install.print {
        println!(
            "service {} ({}), LocalSystem, automatic start",
            SERVICE.name, SERVICE.display_name
        );
        println!("command: {}", command_line.join(" "));
        println!(
            "recovery: restart after {:?}, then every {:?}; failure count reset after a day",
            RESTARTS[0], RESTARTS[3]
        );
        println!(
            "failures before the output exists: Application event log, source {}",
            SERVICE.name
        );
        return Ok(());
    }
    std::fs::create_dir_all(data_dir())
        .map_err(|e| format!("cannot create {}: {e}", data_dir().display()))?;
    eventlog::register()?;
    say("registered the event source spawnwatch (Application log)");
    let service = manager(ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE)?
        .create_service(
            &info,
            ServiceAccess::CHANGE_CONFIG | ServiceAccess::START | ServiceAccess::QUERY_STATUS,
        )
        .map_err(|e| failed(&format!("cannot create the service {}", SERVICE.name), e))?;
    say(&format!(
        "installed the service {}: {}",
        SERVICE.name,
        command_line.join(" ")
    ));
    configure(&service).map_err(|e| {
        format!(
            "{e}; the service is installed without it: `spawnwatch service uninstall` removes it"
        )
    })?;
    say("automatic start; restarted 5 s after a failure, three times, then every minute");
    // Refinements an old (or emulated) service manager may not know: said, not fatal.
    let refinements = [
        (
            "recovery on failed starts too",
            service.set_failure_actions_on_non_crash_failures(true),
        ),
        (
            "the preshutdown time",
            service.set_preshutdown_timeout(lifecycle::STOP_BUDGET),
        ),
    ];
    for (what, set) in refinements {
        if let Err(e) = set {
            say(&format!(
                "warning: {}",
                failed(&format!("cannot set {what}"), e)
            ));
        }
    }
    start(&service)
}

fn configure(service: &Service) -> Result<(), String> {
    service
        .set_description(SERVICE.description)
        .map_err(|e| failed("cannot set the description", e))?;
    let actions = RESTARTS
        .iter()
        .map(|&delay| ServiceAction {
            action_type: ServiceActionType::Restart,
            delay,
        })
        .collect();
    service
        .update_failure_actions(ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(FAILURE_COUNT_RESET),
            reboot_msg: None,
            command: None,
            actions: Some(actions),
        })
        .map_err(|e| failed("cannot set the recovery actions", e))
}

fn say(line: &str) {
    eprintln!("spawnwatch: {line}");
}

fn start(service: &Service) -> Result<(), String> {
    service
        .start::<&str>(&[])
        .map_err(|e| failed(&format!("cannot start the service {}", SERVICE.name), e))?;
    let status = wait_while(service, ServiceState::StartPending)?;
    if status.current_state == ServiceState::Running {
        say("started: `spawnwatch service status` shows its last stats line");
        return Ok(());
    }
    Err(format!(
        "the service {} did not start ({}): Event Viewer > Windows Logs > Application, source {}, says why",
        SERVICE.name,
        exit_code(&status),
        SERVICE.name
    ))
}

fn stop() -> Result<(), String> {
    let service = open(ServiceAccess::STOP | ServiceAccess::QUERY_STATUS)?;
    service
        .stop()
        .map_err(|e| failed(&format!("cannot stop the service {}", SERVICE.name), e))?;
    let status = wait_while(&service, ServiceState::StopPending)?;
    say(&format!("stopped ({})", exit_code(&status)));
    Ok(())
}

fn uninstall() -> Result<(), String> {
    let service = open(ServiceAccess::STOP | ServiceAccess::QUERY_STATUS | ServiceAccess::DELETE)?;
    if service
        .query_status()
        .is_ok_and(|s| s.current_state != ServiceState::Stopped)
    {
        let _ = service.stop();
        wait_while(&service, ServiceState::StopPending)?;
        say("stopped");
    }
    service
        .delete()
        .map_err(|e| failed(&format!("cannot remove the service {}", SERVICE.name), e))?;
    say(&format!("removed the service {}", SERVICE.name));
    eventlog::deregister()?;
    say(&format!(
        "removed the event source; kept {} (alerts, stats)",
        data_dir().display()
    ));
    Ok(())
}

/// Exit 0 when the service runs, 3 when not (as `systemctl status`).
fn status() -> Result<ExitCode, String> {
    let service = open(ServiceAccess::QUERY_STATUS | ServiceAccess::QUERY_CONFIG)?;
    let status = service
        .query_status()
        .map_err(|e| failed("cannot query the service's status", e))?;
    let config = service
        .query_config()
        .map_err(|e| failed("cannot query the service's configuration", e))?;
    let pid = status
        .process_id
        .map(|p| format!(", pid {p}"))
        .unwrap_or_default();
    println!(
        "service {}: {:?}{pid} ({})",
        SERVICE.name,
        status.current_state,
        exit_code(&status)
    );
    println!(
        "start: {:?}; command: {}",
        config.start_type,
        config.executable_path.display()
    );
    stats_file::print_last(&layout().stats_file);
    Ok(super::status_code(
        status.current_state == ServiceState::Running,
    ))
}

fn exit_code(status: &ServiceStatus) -> String {
    match status.exit_code {
        ServiceExitCode::Win32(0) => "no error".to_string(),
        ServiceExitCode::Win32(code) => format!("Windows error {code}"),
        ServiceExitCode::ServiceSpecific(code) => format!("exit code {code}"),
    }
}

/// Waits (at most [`CONTROL_WAIT`]) for the service to leave `pending`: the SCM has no
/// way to be told, so it is asked a few times a second, as Microsoft's samples do.
fn wait_while(service: &Service, pending: ServiceState) -> Result<ServiceStatus, String> {
    let deadline = Instant::now() + CONTROL_WAIT;
    loop {
        let status = service
            .query_status()
            .map_err(|e| failed("cannot query the service's status", e))?;
        if status.current_state != pending {
            return Ok(status);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the service {} is still {:?} after {} s",
                SERVICE.name,
                pending,
                CONTROL_WAIT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

// --- the service process ----------------------------------------------------------

/// What `service_main` runs: `run`'s parsed options and the function that runs it.
static SENSOR: OnceLock<(clap::ArgMatches, RunSensor)> = OnceLock::new();

/// `spawnwatch service run`: hands this thread to the SCM, which calls `service_main`
/// on another one and returns when the service has stopped.
fn dispatch(options: Vec<OsString>, sensor: Sensor) -> Result<(), String> {
    let matches = sensor
        .definition
        .clone()
        .try_get_matches_from(std::iter::once(OsString::from("run")).chain(options))
        .map_err(|e| e.to_string())?;
    let _ = SENSOR.set((matches, sensor.run));
    service_dispatcher::start(SERVICE.name, ffi_service_main).map_err(|e| match &e {
        windows_service::Error::Winapi(io) if io.raw_os_error() == Some(NOT_STARTED_BY_THE_SCM) => {
            "`spawnwatch service run` is what the Windows service manager starts; in a console, use `spawnwatch run`".to_string()
        }
        _ => failed("cannot connect to the service manager", e),
    })
}

define_windows_service!(ffi_service_main, service_main);

fn service_main(_arguments: Vec<OsString>) {
    let Some((matches, run)) = SENSOR.get() else {
        return;
    };
    // The handler is registered before the lifecycle exists (reporting needs the
    // handle it returns); a control in between finds none and changes nothing.
    let lifecycle_cell: Arc<OnceLock<Arc<Lifecycle>>> = Arc::default();
    let for_handler = lifecycle_cell.clone();
    let handler = move |control: ServiceControl| match for_handler.get() {
        Some(lifecycle) => match lifecycle.control(to_control(control)) {
            Reply::Handled => ServiceControlHandlerResult::NoError,
            Reply::NotImplemented => ServiceControlHandlerResult::NotImplemented,
        },
        None => ServiceControlHandlerResult::NoError,
    };
    let handle = match service_control_handler::register(SERVICE.name, handler) {
        Ok(handle) => handle,
        Err(e) => {
            return eventlog::report_error(&failed(
                "cannot register the service control handler",
                e,
            ))
        }
    };
    let lifecycle = Lifecycle::start(
        Signals::default(),
        Box::new(move |status| {
            let _ = handle.set_service_status(to_windows(status));
        }),
    );
    let _ = lifecycle_cell.set(lifecycle.clone());
    lifecycle::serve(
        &lifecycle,
        Box::new(|signals, running| {
            run(matches, signals, running).map(|code| code == ExitCode::SUCCESS)
        }),
        &eventlog::report_error,
    );
}

fn to_control(control: ServiceControl) -> Control {
    match control {
        ServiceControl::Stop => Control::Stop,
        ServiceControl::Shutdown => Control::Shutdown,
        ServiceControl::Preshutdown => Control::Preshutdown,
        ServiceControl::Interrogate => Control::Interrogate,
        _ => Control::Other,
    }
}

fn to_windows(status: &Status) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: match status.state {
            State::StartPending => ServiceState::StartPending,
            State::Running => ServiceState::Running,
            State::StopPending => ServiceState::StopPending,
            State::Stopped => ServiceState::Stopped,
        },
        controls_accepted: if status.accepts_stop {
            ServiceControlAccept::STOP | ServiceControlAccept::PRESHUTDOWN
        } else {
            ServiceControlAccept::empty()
        },
        exit_code: status
            .failure
            .map_or(ServiceExitCode::NO_ERROR, ServiceExitCode::ServiceSpecific),
        checkpoint: status.checkpoint,
        wait_hint: status.wait_hint,
        process_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_translate_as_the_scm_expects() {
        let running = to_windows(&Status {
            state: State::Running,
            accepts_stop: true,
            checkpoint: 0,
            wait_hint: Duration::ZERO,
            failure: None,
        });
        assert_eq!(running.current_state, ServiceState::Running);
        assert_eq!(
            running.controls_accepted,
            ServiceControlAccept::STOP | ServiceControlAccept::PRESHUTDOWN
        );
        assert_eq!(running.exit_code, ServiceExitCode::NO_ERROR);
        let failed = to_windows(&Status {
            state: State::Stopped,
            accepts_stop: false,
            checkpoint: 0,
            wait_hint: Duration::ZERO,
            failure: Some(lifecycle::FAILED),
        });
        assert_eq!(failed.exit_code, ServiceExitCode::ServiceSpecific(2));
        assert!(failed.controls_accepted.is_empty());
        assert_eq!(
            to_control(ServiceControl::Preshutdown),
            Control::Preshutdown
        );
        assert_eq!(to_control(ServiceControl::Pause), Control::Other);
    }

    #[test]
    fn run_by_hand_the_service_entry_says_what_to_do_instead() {
        let sensor = Sensor {
            definition: clap::Command::new("run"),
            run: |_, _, _| Ok(ExitCode::SUCCESS),
        };
        let err = dispatch(vec![], sensor).unwrap_err();
        assert!(
            err.starts_with("`spawnwatch service run` is what the Windows service manager starts"),
            "{err}"
        );
    }
}
