//! `spawnwatch`: catches web shells by the process trees they leave.
//!
//! Data flows one way: source -> normalise -> process table -> channel -> workers
//! (rules) -> writer (JSON alert lines). Live sources and replay share everything after
//! the source.

/// `println!` for a command's own report: see [`sink::stdout::print_line`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::sink::stdout::print_line(format_args!($($arg)*))
    };
}

mod alert;
mod check;
mod end_session;
mod event;
mod facts;
mod host;
mod incident;
mod latency;
mod pipeline;
mod record;
mod reload;
mod replay;
mod report;
mod restart;
mod rules;
mod ruletest;
mod run;
#[cfg(target_os = "linux")]
mod sched;
mod selftest;
mod service;
mod sigma_rules;
mod signals;
mod sink;
mod source;
mod storm;
mod table;

#[cfg(not(windows))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

const ABOUT: &str =
    "Catches web shells by the process trees they leave (MITRE CAR-2021-02-001, ATT&CK T1505.003).";

const LONG_ABOUT: &str = "\
Catches web shells by the process trees they leave: a web server worker (w3wp.exe,
httpd, tomcat, nginx, php-fpm, ...) starting a shell or a discovery tool means someone is
typing into a web shell (MITRE CAR-2021-02-001, ATT&CK T1505.003).

The same rules run live on a web server (`run`) and on recorded logs (`replay`): Sysmon
and Security EVTX, Windows events as JSON (lines, pretty-printed or arrays; Azure Monitor
and Elastic exports too), spawnwatch's own recordings, zips of them, .gz and .zst.
Alerts are JSON, one per line; on a terminal, process trees grouped by incident
(--format). `report` makes an HTML page of them. Without --rules every command uses the
rules built into the binary; `spawnwatch rules` lists them.";

const REPLAY_FORMATS: &str = "\
Formats, detected per file from its content (no flag), each with an example:
  Sysmon or Security EVTX         spawnwatch replay Microsoft-Windows-Sysmon%4Operational.evtx
  JSON lines, flat or nested      spawnwatch replay sysmon.jsonl   (NXLog, OTRF, evtx_dump -o jsonl, xmltodict)
  Azure Monitor WindowsEvent      spawnwatch replay WindowsEvent.json   (EventData an object or JSON text)
  Log Analytics Event table       spawnwatch replay Event.json   (EventData as XML)
  Winlogbeat / Elastic ECS        spawnwatch replay winlogbeat.ndjson   (also Elasticsearch hits, _source)
  Velociraptor parse_evtx rows    spawnwatch replay EvtxHunter.json   (System, EventData; {\"Value\":1})
  pretty-printed JSON, arrays     spawnwatch replay export.json   (jq, evtx_dump -o json, exports)
  envelopes of events             spawnwatch replay search.json   (Azure {\"records\":[..]}, Elasticsearch _search)
  spawnwatch's own event lines    spawnwatch replay events.jsonl   (what `run --record` writes)
  gzip and Zstandard, streamed    spawnwatch replay sysmon.jsonl.gz events.jsonl.zst
  a zip of any of these           spawnwatch replay logs.zip
  stdin                           unzip -p logs.zip | spawnwatch replay -
A Windows event's field names are read in any letter case (EventId, processid); numbers
as numbers, doubles (4688.0), decimal or 0x hex strings; times as text or as seconds,
milliseconds, microseconds or nanoseconds since 1970.";

const EXAMPLES: &str = "\
Examples:
  spawnwatch replay Sysmon.evtx                 hunt in a recorded log, alerts on stdout
  spawnwatch replay --ordered -o alerts.jsonl logs/   a whole directory, in input order
  spawnwatch check rules/ local.rules           validate rule files (exit 1 on errors)
  spawnwatch replay -r sigma/rules/windows/process_creation logs/   hunt with Sigma rules
  spawnwatch sigma convert rule.yml             a Sigma rule in spawnwatch's language
  spawnwatch rules                              list the built-in rules
  sudo spawnwatch run -o /var/log/spawnwatch.jsonl    watch this host live
  spawnwatch report alerts.jsonl -o report.html      the write-up: incidents as trees";

#[derive(Parser)]
#[command(name = "spawnwatch", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay recorded logs (EVTX, JSON, zip, .gz, .zst; a directory; `-` for stdin) through the rules.
    #[command(after_help = REPLAY_FORMATS)]
    Replay(ReplayArgs),
    /// Check rule files: every error and warning with file:line:column; exit 1 on errors.
    Check(CheckArgs),
    /// List the loaded rules: id, severity, title, ATT&CK ids.
    Rules(RulesArgs),
    /// Run the examples in *.tests files (beside the rules) against the rules; each
    /// failure shows which part of the condition did not hold. Last line: `N passed, M failed`.
    Test(RulesArgs),
    /// Prove the live sensor works here: a shell renamed as a web server (w3wp.exe on
    /// Windows, nginx on Linux) runs a command, and the alert must arrive. Prints PASS or
    /// FAIL; exit 0 only on PASS. Needs administrator / root.
    Selftest(SourceArgs),
    /// Watch this host live (Windows: ETW; Linux: eBPF, or the kernel's process
    /// connector where eBPF cannot run). Needs administrator / root. Ctrl+C or SIGTERM
    /// stops cleanly; SIGHUP reloads the rules and reopens the output files (log
    /// rotation).
    Run(RunArgs),
    /// Run the sensor as a service that starts at boot: a Windows service (LocalSystem,
    /// restarted on failure) or a systemd unit (its own user, four capabilities).
    /// `spawnwatch service install --help` says more.
    #[command(subcommand)]
    Service(service::ServiceCommand),
    /// Write alert files as one HTML page for the write-up: incidents, process trees.
    ///
    /// Reads the JSON lines `replay` and `run` write and writes one page: incidents per
    /// host on a timeline, each incident's process tree (collapsible, with command
    /// lines, users and times), the rules that fired with their ATT&CK ids, filters by
    /// host, severity and rule. The page loads nothing from any network.
    Report(ReportArgs),
    /// Sigma rules: `sigma convert FILE...` prints each in spawnwatch's rule language,
    /// to extend (with ancestry, say) and load as a .rules file.
    #[command(subcommand)]
    Sigma(SigmaCommand),
}

#[derive(Args)]
struct ReportArgs {
    /// Alert files, JSON lines as `replay` and `run` write them; `-` for stdin.
    #[arg(value_name = "ALERTS", required = true)]
    alerts: Vec<PathBuf>,
    /// The HTML file to write (replaced if it exists).
    #[arg(long, short = 'o', value_name = "FILE")]
    output: PathBuf,
}

#[derive(Args)]
struct SourceArgs {
    /// The live source (Linux): `ebpf` reads each process in the kernel at its exec
    /// (Linux 5.8+ with BTF, CAP_BPF and CAP_PERFMON); `proc-connector` reads /proc
    /// after the kernel's process connector reports it (short commands may be gone by
    /// then); `auto` takes eBPF where it can run, else the connector, and says why on
    /// stderr, in a `spawnwatch.source-fallback` sensor line and in the stats line.
    #[arg(long, value_enum, default_value_t = source::Choice::Auto)]
    source: source::Choice,
}

#[derive(Subcommand)]
enum SigmaCommand {
    /// Print the Sigma rules of FILE... (YAML) as spawnwatch rules, with their author,
    /// status and false positives as comments. Rules that cannot be converted are named
    /// on stderr with the reason; exit 1 if any file had one.
    Convert {
        /// Sigma rule files (*.yml, *.yaml; several rules in one file, separated by
        /// `---`, are converted one by one), or directories of them.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

#[derive(Args)]
struct SigmaArgs {
    /// Sigma rules to load by `status`, comma-separated, or `all`. Default:
    /// stable,test,experimental (deprecated and unsupported rules are skipped).
    #[arg(long, value_name = "LIST", value_parser = sigma_statuses)]
    sigma_status: Option<sigma::Options>,
}

impl SigmaArgs {
    fn options(&self) -> sigma::Options {
        self.sigma_status.clone().unwrap_or_default()
    }
}

/// `--sigma-status`: `all`, or some of Sigma's five statuses (a misspelt one would
/// quietly load nothing).
fn sigma_statuses(list: &str) -> Result<sigma::Options, String> {
    let every = sigma::Options::every_status();
    if list.eq_ignore_ascii_case("all") {
        return Ok(every);
    }
    let statuses: Vec<String> = list.split(',').map(|s| s.trim().to_lowercase()).collect();
    match statuses.iter().find(|s| !every.statuses.contains(s)) {
        Some(bad) => Err(format!(
            "`{bad}` is not a Sigma status: write `all` or some of {}",
            every.statuses.join(",")
        )),
        None => Ok(sigma::Options { statuses }),
    }
}

#[derive(Args)]
struct RuleArgs {
    /// A rule file (*.rules, or a Sigma rule: *.yml, *.yaml), or a directory whose rule
    /// files load in name order. Repeat to load several; lists, macros and exceptions are
    /// shared. Default: the built-in rules.
    #[arg(long = "rules", short = 'r', value_name = "PATH")]
    rules: Vec<PathBuf>,
    #[command(flatten)]
    sigma: SigmaArgs,
}

#[derive(Args)]
struct OutputArgs {
    /// Where alerts go (default: stdout); repeat for several, each with a queue and a
    /// thread of its own. FILE (or file:FILE) appends to it, reopened on SIGHUP and
    /// when it is renamed away (log rotation); while it cannot be written (a full
    /// disk), up to 10,000 alerts wait. `-` is stdout. syslog+tcp://HOST:PORT,
    /// syslog+tls://HOST:PORT: RFC 5424 over TCP or TLS; syslog+udp://HOST:PORT: the
    /// same over UDP, which may lose alerts unseen. http://URL, https://URL: batches
    /// in --http-format. Network outputs spool alerts on disk first (--spool-dir) and
    /// lose none while the collector is away.
    #[arg(long, short = 'o', value_name = "DEST")]
    output: Vec<sink::Destination>,
    #[command(flatten)]
    network: sink::NetworkArgs,
    /// Threads doing per-event work: the one that keeps the process table (and
    /// parses or evaluates when it would wait), and N-1 more that parse JSON lines
    /// and evaluate rules. Default: the available cores.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: Option<u16>,
    /// Alert storms: after N alerts of one rule in one incident within the
    /// window, write one summary line instead of each further alert; 0 = never.
    /// Default: 20 for `run`, 0 for `replay` (a hunt wants every hit).
    #[arg(long, value_name = "N")]
    storm_limit: Option<u32>,
    /// The storm window, in seconds (event time).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    storm_window: u64,
    /// How stdout shows alerts: `pretty`, for people (each alert's process tree, the
    /// alerts of one incident as branches of one tree), or `json`, one object per line.
    /// Default: pretty when stdout is a terminal, json otherwise. Files and network
    /// destinations always get JSON; with pretty and no `-o -`, stdout shows their
    /// alerts beside them.
    #[arg(long, value_enum, value_name = "FORMAT")]
    format: Option<AlertFormat>,
    /// Colour in the pretty view: `auto` (on a terminal, unless NO_COLOR is set),
    /// `always` or `never`.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = clap::ColorChoice::Auto)]
    color: clap::ColorChoice,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum AlertFormat {
    Json,
    Pretty,
}

#[derive(Args)]
struct ReplayArgs {
    #[command(flatten)]
    rules: RuleArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// Write alerts in input order (default: as they complete).
    #[arg(long)]
    ordered: bool,
    /// Add to each alert an `explain` list: every part of the rule's condition, whether
    /// it held, and the value it saw.
    #[arg(long)]
    explain: bool,
    /// Files or directories to read; `-` reads stdin. The format is detected per file.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    rules: RuleArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    source: SourceArgs,
    /// Also write every process event as spawnwatch event lines, to replay elsewhere.
    /// Reopened and held like --output (up to 10,000 events).
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Seconds between stats lines (stderr, and a `stats` line in the output).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    stats_interval: u64,
    /// Also keep the latest stats line in FILE, replaced each time (what
    /// `spawnwatch service status` prints).
    #[arg(long, value_name = "FILE")]
    stats_file: Option<PathBuf>,
}

#[derive(Args)]
struct CheckArgs {
    /// Rule files (*.rules, Sigma *.yml) or directories. Default: the built-in rules.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    sigma: SigmaArgs,
    /// `text` for people, `json` for editors and CI.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Copy, Clone, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Args)]
struct RulesArgs {
    /// Rule files (*.rules, Sigma *.yml) or directories. Default: the built-in rules.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    sigma: SigmaArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(args) => replay_command(args),
        Command::Check(args) => check::run(
            &args.paths,
            &args.sigma.options(),
            matches!(args.format, Format::Json),
        ),
        Command::Rules(args) => check::list(&args.paths, &args.sigma.options()),
        Command::Test(args) => test_command(&args.paths, &args.sigma.options()),
        Command::Sigma(SigmaCommand::Convert { files }) => {
            rules::sigma_sources(&files).map(sigma_rules::convert_command)
        }
        Command::Run(args) => {
            signals::install().and_then(|signals| run_command(args, signals, Box::new(|| {})))
        }
        Command::Service(command) => service::command(command, sensor()),
        Command::Report(args) => report::run(&args.alerts, &args.output).map(|said| {
            eprintln!("spawnwatch: {said}");
            ExitCode::SUCCESS
        }),
        Command::Selftest(args) => selftest::selftest(args.source).map(|passed| {
            if passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("spawnwatch: {message}");
            ExitCode::from(2)
        }
    }
}

/// Where alerts go: every `--output` (stdout when none), and the terminal view as
/// `--format` says.
fn alert_outputs(output: &OutputArgs, hangups: &sink::Hangups) -> Result<sink::Outputs, String> {
    use std::io::IsTerminal;
    let pretty = match output.format {
        Some(format) => format == AlertFormat::Pretty,
        None => std::io::stdout().is_terminal(),
    };
    let color = match output.color {
        clap::ColorChoice::Auto => anstream::ColorChoice::Auto,
        clap::ColorChoice::Always => anstream::ColorChoice::Always,
        clap::ColorChoice::Never => anstream::ColorChoice::Never,
    };
    let view = pretty.then(|| sink::Terminal::stdout(color));
    sink::open_outputs(&output.output, &output.network, hangups, view)
}

fn pipeline_options(output: &OutputArgs, default_storm_limit: u32) -> pipeline::Options {
    let mut options = pipeline::Options::default();
    if let Some(n) = output.workers {
        options.workers = n.into();
    }
    options.storm = storm::StormLimits {
        limit: output.storm_limit.unwrap_or(default_storm_limit),
        window: chrono::Duration::seconds(output.storm_window.max(1) as i64),
    };
    options
}

fn replay_command(args: ReplayArgs) -> Result<ExitCode, String> {
    let loaded = rules::load_or_report(
        &args.rules.rules,
        rules::Platform::All,
        &args.rules.sigma.options(),
    )?;
    let rules = std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(loaded.rules));
    let mut options = pipeline_options(&args.output, 0);
    let outputs = alert_outputs(&args.output, &options.hangups)?;
    options.ordered = args.ordered;
    options.explain = args.explain;
    // A stream (`tail -F log | spawnwatch replay -o FILE -`) runs as long as a live
    // sensor, so its output file is rotated the same way. Without one, a hangup still
    // ends a replay, as it ends any command started from a terminal.
    if args.output.output.iter().any(sink::Destination::is_file) {
        signals::count_hangups(&options.hangups)
            .map_err(|e| format!("cannot install the SIGHUP handler: {e}"))?;
    }
    // The reader of stdout has what it wanted (`| head`): stop now, quietly.
    options.on_output_ended = || std::process::exit(0);
    let started = std::time::Instant::now();
    let (counts, report) = replay::replay(&args.inputs, rules, outputs.sink, &options)?;
    replay::print_summary(&counts, &report, started.elapsed());
    for output in &outputs.figures {
        eprintln!("  output {}: {}", output.name, output.to_json());
    }
    Ok(if counts.input_failed() || report.lost() > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// `run` as the service module sees it.
fn sensor() -> service::Sensor {
    let definition = Cli::command();
    let definition = definition.find_subcommand("run").expect("the run command");
    service::Sensor {
        definition: definition.clone(),
        run: |matches, signals, running| {
            let args = RunArgs::from_arg_matches(matches).map_err(|e| e.to_string())?;
            run_command(args, signals, running)
        },
    }
}

/// Runs the sensor until `signals.stop`; `running` is called once it watches.
fn run_command(
    args: RunArgs,
    signals: signals::Signals,
    running: Box<dyn FnOnce()>,
) -> Result<ExitCode, String> {
    let start = run::platform_source(run::Role::Sensor, args.source.source)?;
    let sigma = args.rules.sigma.options();
    let loaded = rules::load_or_report(&args.rules.rules, rules::Platform::Native, &sigma)?;
    let ids: Vec<&str> = loaded
        .rules
        .ids()
        .map(|id| loaded.rules.meta(id).id.as_str())
        .collect();
    eprintln!("spawnwatch: {}", loaded_line(&ids));
    let rules = std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(loaded.rules));
    let mut reloader = reload::Reloader::new(
        args.rules.rules.clone(),
        sigma,
        rules.clone(),
        loaded.checked,
        signals.reload.clone(),
    )?;
    let outputs = alert_outputs(&args.output, &signals.hangups)?;
    let record = args
        .record
        .as_deref()
        .map(|p| sink::open(Some(p)))
        .transpose()
        .map_err(|e| e.to_string())?;
    let config = run::RunConfig {
        stats_interval: std::time::Duration::from_secs(args.stats_interval.max(1)),
        record,
        stop: signals.stop.clone(),
        on_turn: Box::new({
            let mut running = Some(running);
            move |pipeline| {
                if let Some(running) = running.take() {
                    running();
                }
                reloader.poll(pipeline)
            }
        }),
        restart: restart::Backoff::default(),
        outputs: outputs.figures,
        stats_file: args.stats_file.map(service::StatsFile::new),
    };
    let options = pipeline::Options {
        host: source::host_facts(),
        hangups: signals.hangups.clone(),
        ..pipeline_options(&args.output, storm::StormLimits::default().limit)
    };
    let result = run::run(start, rules, outputs.sink, &options, config);
    // A console close, log-off or shutdown waits for this before Windows ends us.
    signals.finished.set();
    let report = result?;
    if report.output.ended {
        // The reader of stdout has gone (`| head`): a quiet end, as any filter's.
        return Ok(ExitCode::SUCCESS);
    }
    let recorded = report.record.as_ref();
    eprintln!(
        "spawnwatch: stopped: {} process events evaluated, {} alerts, {} suppressed, {} alerts lost{}",
        report.evaluated,
        report.total_alerts(),
        report.suppressed,
        report.output.lost,
        recorded.map_or(String::new(), |r| format!(", {} events not recorded", r.lost)),
    );
    Ok(if report.lost() > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn test_command(paths: &[PathBuf], sigma: &sigma::Options) -> Result<ExitCode, String> {
    let loaded = rules::load_or_report(paths, rules::Platform::All, sigma)?;
    let examples: Vec<_> = rules::test_files(paths)?
        .iter()
        .flat_map(ruletest::parse)
        .collect();
    if examples.is_empty() {
        return Err("no rule examples found: put them in a *.tests file beside the rules (see `spawnwatch test --help`)".into());
    }
    let outcome = ruletest::run(&loaded.rules, &examples);
    for failure in &outcome.failures {
        outln!("{failure}\n");
    }
    for rule in &outcome.untested {
        outln!("warning: {rule}");
    }
    outln!(
        "{} passed, {} failed",
        outcome.passed,
        outcome.failures.len()
    );
    Ok(if outcome.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `N rules loaded: ID, ...`, the first ten ids only: a Sigma library is a thousand.
fn loaded_line(ids: &[&str]) -> String {
    const SHOWN: usize = 10;
    let more = match ids.len().saturating_sub(SHOWN) {
        0 => String::new(),
        n => format!(" and {n} more (`spawnwatch rules` with the same paths lists them)"),
    };
    let shown = ids[..ids.len().min(SHOWN)].join(", ");
    format!("{} rules loaded: {shown}{more}", ids.len())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_large_rule_set_is_not_listed_in_full_at_start() {
        assert_eq!(super::loaded_line(&["A", "B"]), "2 rules loaded: A, B");
        let ids: Vec<String> = (0..1182).map(|i| format!("R{i}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        assert_eq!(
            super::loaded_line(&ids),
            "1182 rules loaded: R0, R1, R2, R3, R4, R5, R6, R7, R8, R9 and 1172 more \
             (`spawnwatch rules` with the same paths lists them)"
        );
    }
}
