//! `spawnwatch`: catches web shells by the process trees they leave.
//!
//! Data flows one way: source -> normalise -> process table -> channel -> workers
//! (rules) -> writer (JSON alert lines). Live sources and replay share everything after
//! the source.

mod alert;
mod check;
mod event;
mod latency;
mod pipeline;
mod record;
mod reload;
mod replay;
mod rules;
mod ruletest;
mod run;
mod selftest;
mod sigma_rules;
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
  spawnwatch replay -r sigma/rules/windows/process_creation logs/   hunt with Sigma rules
  spawnwatch sigma convert rule.yml             a Sigma rule in spawnwatch's language
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
    /// administrator / root. Ctrl+C or SIGTERM stops cleanly; SIGHUP reloads the rules.
    Run(RunArgs),
    /// Sigma rules: `sigma convert FILE...` prints each in spawnwatch's rule language,
    /// to extend (with ancestry, say) and load as a .rules file.
    #[command(subcommand)]
    Sigma(SigmaCommand),
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
    /// Append alerts to FILE instead of writing them to stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Threads doing per-event work: the one that keeps the process table (and
    /// parses or evaluates when it would wait), and N-1 more that parse JSON lines
    /// and evaluate rules. Default: the available cores.
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
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
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Seconds between stats lines (stderr, and a `stats` line in the output).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    stats_interval: u64,
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
        options.workers = n.max(1);
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
    let sink = sink::open(args.output.output.as_deref()).map_err(|e| e.to_string())?;
    let mut options = pipeline_options(&args.output, 0);
    options.ordered = args.ordered;
    options.explain = args.explain;
    let started = std::time::Instant::now();
    let (counts, report) = replay::replay(&args.inputs, rules, sink, &options)?;
    replay::print_summary(&counts, &report, started.elapsed());
    let nothing_read = counts.records == 0 && (counts.unreadable_files > 0 || counts.files == 0);
    Ok(if nothing_read {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn run_command(args: RunArgs) -> Result<ExitCode, String> {
    let start = run::platform_source()?;
    let sigma = args.rules.sigma.options();
    let loaded = rules::load_or_report(&args.rules.rules, rules::Platform::Native, &sigma)?;
    let ids: Vec<&str> = loaded
        .rules
        .ids()
        .map(|id| loaded.rules.meta(id).id.as_str())
        .collect();
    eprintln!("spawnwatch: {}", loaded_line(&ids));
    let rules = std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(loaded.rules));
    let signals = signals::install()?;
    let mut reloader = reload::Reloader::new(
        args.rules.rules.clone(),
        sigma,
        rules.clone(),
        loaded.checked,
        signals.reload.clone(),
    )?;
    let sink = sink::open(args.output.output.as_deref()).map_err(|e| e.to_string())?;
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
    };
    let report = run::run(
        start,
        rules,
        sink,
        &pipeline_options(&args.output, storm::StormLimits::default().limit),
        config,
    )?;
    eprintln!(
        "spawnwatch: stopped: {} process events evaluated, {} alerts, {} suppressed",
        report.evaluated,
        report.total_alerts(),
        report.suppressed
    );
    Ok(ExitCode::SUCCESS)
}

fn test_command(paths: &[PathBuf], sigma: &sigma::Options) -> Result<ExitCode, String> {
    let loaded = rules::load_or_report(paths, rules::Platform::All, sigma)?;
    let examples: Vec<ruletest::Example> = rules::test_files(paths)?
        .iter()
        .flat_map(|(name, text)| ruletest::parse(name, text))
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
