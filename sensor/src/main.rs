//! `spawnwatch`: catches web shells by the process trees they leave.
//!
//! Data flows one way: source -> normalise -> process table -> channel -> workers
//! (rules) -> writer (JSON alert lines). Live sources and replay share everything after
//! the source.

mod alert;
mod check;
mod event;
mod facts;
mod host;
mod latency;
mod pipeline;
mod record;
mod reload;
mod replay;
mod restart;
mod rules;
mod ruletest;
mod run;
mod selftest;
mod signals;
mod sink;
mod source;
mod storm;
mod table;

#[cfg(not(windows))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

const ABOUT: &str =
    "Catches web shells by the process trees they leave (MITRE CAR-2021-02-001, ATT&CK T1505.003).";

const LONG_ABOUT: &str = "\
Catches web shells by the process trees they leave: a web server worker (w3wp.exe,
httpd, tomcat, nginx, php-fpm, ...) starting a shell or a discovery tool means someone is
typing into a web shell (MITRE CAR-2021-02-001, ATT&CK T1505.003).

The same rules run live on a web server (`run`) and on recorded logs (`replay`): Sysmon
and Security EVTX, Windows events as JSON lines, spawnwatch's own recordings, or zips of
them. Alerts are JSON, one per line. Without --rules every command uses the rules built
into the binary; `spawnwatch rules` lists them.";

const EXAMPLES: &str = "\
Examples:
  spawnwatch replay Sysmon.evtx                 hunt in a recorded log, alerts on stdout
  spawnwatch replay --ordered -o alerts.jsonl logs/   a whole directory, in input order
  spawnwatch check rules/ local.rules           validate rule files (exit 1 on errors)
  spawnwatch rules                              list the built-in rules
  sudo spawnwatch run -o /var/log/spawnwatch.jsonl    watch this host live";

#[derive(Parser)]
#[command(name = "spawnwatch", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay recorded logs (EVTX, JSON lines, zip; a directory; `-` for stdin) through the rules.
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
    Selftest,
    /// Watch this host live (Windows: ETW; Linux: the kernel's process connector). Needs
    /// administrator / root. Ctrl+C or SIGTERM stops cleanly; SIGHUP reloads the rules and
    /// reopens the output files (log rotation).
    Run(RunArgs),
}

#[derive(Args)]
struct RuleArgs {
    /// A rule file, or a directory whose *.rules files load in name order. Repeat to load
    /// several; lists, macros and exceptions are shared. Default: the built-in rules.
    #[arg(long = "rules", short = 'r', value_name = "PATH")]
    rules: Vec<PathBuf>,
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
    /// Alert storms: after N alerts of one rule under one parent process within the
    /// window, write one summary line instead of each further alert; 0 = never.
    /// Default: 20 for `run`, 0 for `replay` (a hunt wants every hit).
    #[arg(long, value_name = "N")]
    storm_limit: Option<u32>,
    /// The storm window, in seconds (event time).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    storm_window: u64,
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
    /// Also write every process event as spawnwatch event lines, to replay elsewhere.
    /// Reopened and held like --output (up to 10,000 events).
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Seconds between stats lines (stderr, and a `stats` line in the output).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    stats_interval: u64,
}

#[derive(Args)]
struct CheckArgs {
    /// Rule files or directories. Default: the built-in rules.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
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
    /// Rule files or directories. Default: the built-in rules.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(args) => replay_command(args),
        Command::Check(args) => check::run(&args.paths, matches!(args.format, Format::Json)),
        Command::Rules(args) => check::list(&args.paths),
        Command::Test(args) => test_command(&args.paths),
        Command::Run(args) => run_command(args),
        Command::Selftest => selftest::selftest().map(|passed| {
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
    let loaded = rules::load_or_report(&args.rules.rules, rules::Platform::All)?;
    let rules = std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(loaded.rules));
    let mut options = pipeline_options(&args.output, 0);
    let outputs = sink::open_outputs(&args.output.output, &args.output.network, &options.hangups)?;
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

fn run_command(args: RunArgs) -> Result<ExitCode, String> {
    let start = run::platform_source(run::Role::Sensor)?;
    let loaded = rules::load_or_report(&args.rules.rules, rules::Platform::Native)?;
    let ids: Vec<&str> = loaded
        .rules
        .ids()
        .map(|id| loaded.rules.meta(id).id.as_str())
        .collect();
    eprintln!("spawnwatch: {} rules loaded: {}", ids.len(), ids.join(", "));
    let rules = std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(loaded.rules));
    let signals = signals::install()?;
    let mut reloader = reload::Reloader::new(
        args.rules.rules.clone(),
        rules.clone(),
        loaded.checked,
        signals.reload.clone(),
    )?;
    let outputs = sink::open_outputs(&args.output.output, &args.output.network, &signals.hangups)?;
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
        on_turn: Box::new(move |pipeline| reloader.poll(pipeline)),
        restart: restart::Backoff::default(),
        outputs: outputs.figures,
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

fn test_command(paths: &[PathBuf]) -> Result<ExitCode, String> {
    let loaded = rules::load_or_report(paths, rules::Platform::All)?;
    let examples: Vec<_> = rules::test_files(paths)?
        .iter()
        .flat_map(ruletest::parse)
        .collect();
    if examples.is_empty() {
        return Err("no rule examples found: put them in a *.tests file beside the rules (see `spawnwatch test --help`)".into());
    }
    let outcome = ruletest::run(&loaded.rules, &examples);
    for failure in &outcome.failures {
        println!("{failure}\n");
    }
    for rule in &outcome.untested {
        println!("warning: {rule}");
    }
    println!(
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
