//! The options a service runs the sensor with: `spawnwatch run`'s own, checked by
//! `run`'s own definition at install (not at the next boot), written out in one form
//! (`--long value`), with paths made absolute (a service starts in another directory)
//! and the service's own additions: an output file when none is given (a service has
//! no console to print alerts on) and the stats file `service status` reads.

use clap::parser::ValueSource;
use clap::{ArgAction, Command, ValueHint};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Where a service keeps its files by default.
pub struct Layout {
    /// The alerts, when `--output` is not given.
    pub output: PathBuf,
    /// The latest stats line (`--stats-file`), always.
    pub stats_file: PathBuf,
}

/// `run`'s options as the service runs them.
#[derive(Debug, PartialEq, Eq)]
pub struct ServiceOptions {
    pub args: Vec<OsString>,
    /// Files the service reads (`--rules`).
    pub reads: Vec<PathBuf>,
    /// Files the service writes: outputs, `--record`, the stats file.
    pub writes: Vec<PathBuf>,
}

/// The one path option the sensor reads; every other one is a file it writes.
const READ_OPTION: &str = "rules";
const OUTPUT_OPTION: &str = "output";
const STATS_OPTION: &str = "stats-file";

/// Checks `given` (what follows `service install`) as `spawnwatch run` would, and
/// returns the options the service is to run with.
pub fn service_options(
    run: &Command,
    given: &[OsString],
    layout: &Layout,
) -> Result<ServiceOptions, String> {
    let matches = run
        .clone()
        .bin_name("spawnwatch service install")
        .try_get_matches_from(std::iter::once(OsString::from("run")).chain(given.iter().cloned()))
        .map_err(|e| {
            let rendered = e.render().to_string();
            let message = rendered.strip_prefix("error: ").unwrap_or(&rendered);
            format!("{}\n(`service install` takes the options of `spawnwatch run`: see `spawnwatch run --help`)", message.trim_end())
        })?;
    let mut options = ServiceOptions {
        args: Vec::new(),
        reads: Vec::new(),
        writes: Vec::new(),
    };
    let mut has_output = false;
    for arg in run.get_arguments() {
        let id = arg.get_id().as_str();
        if matches.value_source(id) != Some(ValueSource::CommandLine) {
            continue;
        }
        // `run` has no positional arguments: every one has a long name.
        let Some(long) = arg.get_long() else {
            continue;
        };
        if long == STATS_OPTION {
            return Err(format!(
                "leave --stats-file out: the service keeps its stats line in {} (where `spawnwatch service status` reads it)",
                layout.stats_file.display()
            ));
        }
        has_output |= long == OUTPUT_OPTION;
        let flag = OsString::from(format!("--{long}"));
        match arg.get_action() {
            ArgAction::SetTrue | ArgAction::SetFalse => options.args.push(flag),
            ArgAction::Count => {
                for _ in 0..matches.get_count(id) {
                    options.args.push(flag.clone());
                }
            }
            _ => {
                let is_path = matches!(
                    arg.get_value_hint(),
                    ValueHint::AnyPath | ValueHint::FilePath | ValueHint::DirPath
                );
                for value in matches.get_raw(id).into_iter().flatten() {
                    let path = match long {
                        OUTPUT_OPTION => output_file(value),
                        _ => is_path.then(|| PathBuf::from(value)),
                    };
                    let value = if let Some(path) = path {
                        let path = absolute(&path)?;
                        if long == READ_OPTION {
                            options.reads.push(path.clone());
                        } else {
                            options.writes.push(path.clone());
                        }
                        path.into_os_string()
                    } else {
                        value.to_owned()
                    };
                    options.args.extend([flag.clone(), value]);
                }
            }
        }
    }
    if !has_output {
        options.add(OUTPUT_OPTION, &layout.output);
    }
    options.add(STATS_OPTION, &layout.stats_file);
    Ok(options)
}

impl ServiceOptions {
    fn add(&mut self, long: &str, path: &Path) {
        self.args
            .extend([format!("--{long}").into(), path.as_os_str().to_owned()]);
        self.writes.push(path.to_path_buf());
    }
}

/// The file an `--output` value names (`file:` taken off); none for stdout, syslog or
/// HTTP, which go to the service as they are.
fn output_file(value: &std::ffi::OsStr) -> Option<PathBuf> {
    match value.to_str()?.parse() {
        Ok(crate::sink::Destination::File(path)) => Some(path),
        _ => None,
    }
}

fn absolute(path: &Path) -> Result<PathBuf, String> {
    std::path::absolute(path).map_err(|e| format!("cannot make {} absolute: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// A stand-in for `spawnwatch run`'s definition, with each kind of option it has.
    #[derive(Parser)]
    #[command(name = "run")]
    #[allow(dead_code)]
    struct Run {
        #[arg(long, short = 'r')]
        rules: Vec<PathBuf>,
        #[arg(long, short = 'o')]
        output: Vec<crate::sink::Destination>,
        #[arg(long)]
        record: Option<PathBuf>,
        #[arg(long)]
        workers: Option<usize>,
        #[arg(long, default_value_t = 60)]
        stats_interval: u64,
        #[arg(long)]
        stats_file: Option<PathBuf>,
        #[arg(long)]
        explain: bool,
    }

    fn run() -> Command {
        <Run as clap::CommandFactory>::command()
    }

    fn layout() -> Layout {
        Layout {
            output: PathBuf::from("/var/log/spawnwatch/alerts.jsonl"),
            stats_file: PathBuf::from("/var/lib/spawnwatch/stats.json"),
        }
    }

    fn options(given: &[&str]) -> Result<ServiceOptions, String> {
        let given: Vec<OsString> = given.iter().map(OsString::from).collect();
        service_options(&run(), &given, &layout())
    }

    /// `path` as the service is given it: absolute, in the platform's form.
    fn absolute(path: &str) -> String {
        let path = std::path::absolute(path).unwrap();
        path.to_str().unwrap().to_string()
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn nothing_given_adds_the_default_output_and_the_stats_file() {
        let options = options(&[]).unwrap();
        assert_eq!(
            strings(&options.args),
            [
                "--output",
                "/var/log/spawnwatch/alerts.jsonl",
                "--stats-file",
                "/var/lib/spawnwatch/stats.json"
            ]
        );
        assert!(options.reads.is_empty());
        assert_eq!(options.writes, [layout().output, layout().stats_file]);
    }

    #[test]
    fn every_form_comes_out_long_with_absolute_paths() {
        let options = options(&[
            "-r",
            "local.rules",
            "--rules=/etc/spawnwatch/rules",
            "-oout/alerts.jsonl",
            "--workers",
            "3",
            "--explain",
            "--record",
            "/srv/events.jsonl",
        ])
        .unwrap();
        let [local, etc, alerts, events] = [
            "local.rules",
            "/etc/spawnwatch/rules",
            "out/alerts.jsonl",
            "/srv/events.jsonl",
        ]
        .map(absolute);
        assert_eq!(
            strings(&options.args),
            [
                "--rules",
                &local,
                "--rules",
                &etc,
                "--output",
                &alerts,
                "--record",
                &events,
                "--workers",
                "3",
                "--explain",
                "--stats-file",
                "/var/lib/spawnwatch/stats.json"
            ]
        );
        assert_eq!(options.reads, [PathBuf::from(local), PathBuf::from(etc)]);
        assert_eq!(
            options.writes,
            [
                PathBuf::from(alerts),
                PathBuf::from(events),
                layout().stats_file
            ]
        );
    }

    /// Files among the outputs are paths; stdout, syslog and HTTP go as they are.
    #[test]
    fn output_files_are_made_absolute_and_network_destinations_kept() {
        let given = [
            "a.jsonl",
            "file:b.jsonl",
            "syslog+tls://siem:6514",
            "https://h/x",
        ];
        let options = options(&given.iter().flat_map(|d| ["-o", d]).collect::<Vec<_>>()).unwrap();
        let [a, b] = ["a.jsonl", "b.jsonl"].map(absolute);
        assert_eq!(
            strings(&options.args)[..8],
            ["--output", &a, "--output", &b, "--output", given[2], "--output", given[3]]
        );
        assert_eq!(
            options.writes,
            [PathBuf::from(a), PathBuf::from(b), layout().stats_file]
        );
    }

    #[test]
    fn defaults_are_left_to_run_and_not_written_out() {
        let options = options(&["--stats-interval", "60", "-o", "/a.jsonl"]).unwrap();
        assert_eq!(
            strings(&options.args)[..4],
            ["--output", &absolute("/a.jsonl"), "--stats-interval", "60"],
            "given, so kept, even at its default value"
        );
    }

    #[test]
    fn wrong_options_are_refused_at_install_with_runs_message() {
        let err = options(&["--wokers", "3"]).unwrap_err();
        assert!(err.starts_with("unexpected argument '--wokers'"), "{err}");
        assert!(
            err.contains("tip: a similar argument exists: '--workers'"),
            "{err}"
        );
        assert!(err.contains("spawnwatch run --help"), "{err}");
        let err = options(&["--workers", "many"]).unwrap_err();
        assert!(err.contains("invalid value 'many'"), "{err}");
    }

    #[test]
    fn a_stats_file_of_ones_own_is_refused() {
        let err = options(&["--stats-file", "/tmp/s.json"]).unwrap_err();
        assert!(err.starts_with("leave --stats-file out"), "{err}");
        assert!(err.contains("/var/lib/spawnwatch/stats.json"), "{err}");
    }
}
