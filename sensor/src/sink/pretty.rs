//! The terminal view (`--format pretty`): each alert as a few lines a person reads at a
//! glance. When, how bad (in colour), which rule; then its process tree from the
//! oldest known ancestor down to the process that matched (marked `▶`), one process a
//! line with pid, user and command line, cut to the terminal's width. An incident (see
//! [`crate::incident`]) opens with a line naming its host and web server; its later
//! alerts show only their new branch, under the process of the tree it grows from
//! (dimmed), not a new tree from the root. Storm summaries and the sensor's own alerts
//! get a line or two; stats lines are left to stderr, which has them already.
//!
//! It draws the JSON lines the other outputs get ([`crate::incident::read`]), so it
//! shows what a SIEM receives. What an alert holds is the attackers' as much as ours:
//! control characters (a terminal's escape sequences) and the bidirectional overrides
//! that reorder text are shown escaped, never handed to the terminal.

use super::stream::LineStream;
use super::{Line, Sink, Stopped};
use crate::incident::read::{
    printable, AlertRecord, OutputLine, ProcessFields, SensorRecord, SummaryRecord,
};
use crate::incident::tree::Tree;
use anstream::AutoStream;
use anstyle::{AnsiColor, Style};
use chrono::{DateTime, Utc};
use dsl::ast::Severity;
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::{self, Write};

/// Incidents whose trees are kept; past it the oldest is forgotten (its next alert then
/// shows its tree from the top again).
const INCIDENTS_KEPT: usize = 1000;
/// Columns when no terminal says (output to a pipe or a file).
const WIDTH_WITHOUT_TERMINAL: usize = 100;
const WIDTH_MIN: usize = 40;

/// The terminal view, writing to `out`.
pub struct Pretty<O> {
    out: O,
    view: View,
    stream: LineStream,
    /// Drawn, not yet delivered. One line offered can draw to nothing (a stats line):
    /// `stands_for` says, per block, how many offered lines it delivers (itself and the
    /// silent ones before it), `silent` those after the last block.
    blocks: Vec<Line>,
    stands_for: Vec<usize>,
    silent: usize,
}

/// The view on stdout, in colour as `color` says (`Auto`: a terminal, and neither
/// `NO_COLOR` nor `CLICOLOR=0` set; `CLICOLOR_FORCE` forces it).
pub type Terminal = Pretty<AutoStream<io::Stdout>>;

impl Terminal {
    pub fn stdout(color: anstream::ColorChoice) -> Terminal {
        Pretty::new(AutoStream::new(io::stdout(), color), terminal_width)
    }
}

/// Asked at every write, so a resized window is followed.
fn terminal_width() -> usize {
    terminal_size::terminal_size()
        .map_or(WIDTH_WITHOUT_TERMINAL, |(w, _)| usize::from(w.0))
        .max(WIDTH_MIN)
}

impl<O: Write> Pretty<O> {
    pub fn new(out: O, width: fn() -> usize) -> Pretty<O> {
        Pretty {
            out,
            view: View {
                width,
                incidents: FxHashMap::default(),
                order: VecDeque::new(),
                last: None,
                shown_any: false,
            },
            stream: LineStream::default(),
            blocks: Vec::new(),
            stands_for: Vec::new(),
            silent: 0,
        }
    }
}

impl<O: Write + Send> Sink for Pretty<O> {
    fn name(&self) -> &str {
        "stdout"
    }

    /// Lines offered again after an error were drawn then: they are the first ones,
    /// and their blocks are written as drawn (drawing again would draw them as the
    /// branches of themselves).
    fn write(&mut self, lines: &[Line]) -> Result<(), Stopped> {
        let offered_before = self.stands_for.iter().sum::<usize>() + self.silent;
        for line in lines.get(offered_before..).unwrap_or_default() {
            match self.view.draw(&line.text) {
                Some(text) => {
                    self.blocks.push(Line {
                        text,
                        counted: line.counted,
                    });
                    self.stands_for.push(self.silent + 1);
                    self.silent = 0;
                }
                None => self.silent += 1,
            }
        }
        let result = self.stream.write(&mut self.out, &self.blocks);
        let written = result
            .as_ref()
            .map_or_else(|stopped| stopped.delivered, |()| self.blocks.len());
        self.blocks.drain(..written);
        let mut delivered: usize = self.stands_for.drain(..written).sum();
        if self.blocks.is_empty() {
            delivered += std::mem::take(&mut self.silent);
        }
        result.map_err(|stopped| Stopped {
            delivered,
            error: stopped.error,
        })
    }

    fn ended(&self, error: &io::Error) -> bool {
        error.kind() == io::ErrorKind::BrokenPipe
    }
}

/// What the view remembers between lines.
struct View {
    width: fn() -> usize,
    /// Each incident's processes shown so far.
    incidents: FxHashMap<String, Tree>,
    /// Incidents by first alert, for forgetting the oldest.
    order: VecDeque<String>,
    /// The incident of the last alert shown.
    last: Option<String>,
    shown_any: bool,
}

impl View {
    /// The block for one output line; `None` for a line left to stderr.
    fn draw(&mut self, line: &str) -> Option<String> {
        let width = (self.width)();
        let block = match OutputLine::parse(line) {
            Ok(OutputLine::Alert(alert)) => self.alert(&alert, width),
            Ok(OutputLine::Summary(summary)) => self.summary(&summary, width),
            Ok(OutputLine::Sensor(sensor)) => sensor_lines(&sensor, width),
            Ok(OutputLine::Stats) => return None,
            Ok(OutputLine::Other) | Err(_) => fit(&[(Style::new(), printable(line))], width),
        };
        self.shown_any = true;
        Some(block)
    }

    fn alert(&mut self, alert: &AlertRecord, width: usize) -> String {
        let chain = alert.chain();
        let incident = alert.incident_id(&chain);
        let server = &chain[alert.server_index(&chain, &incident)];
        let host = alert.hostname.as_deref().unwrap_or("-");
        let label = format!(
            "incident {host} · {} {}",
            server.program(),
            server.pid.map_or("?".into(), |p| p.to_string())
        );
        let mut lines = self.incident_heading(&incident, &label, width);
        lines.push(heading(
            alert.time(),
            alert.rule.severity(),
            &alert.rule.id,
            &alert.rule.title,
            width,
        ));
        let tree = self.incidents.entry(incident).or_default();
        let grown = tree.grow(&chain);
        let matched = chain.len() - 1;
        // The branch starts at the deepest process already shown, as context.
        for at in grown.known.saturating_sub(1).min(matched)..=matched {
            let node = &tree.nodes[grown.nodes[at]];
            let mark = match at {
                _ if at == matched => Mark::Matched(alert.rule.severity()),
                _ if at < grown.known => Mark::Shown,
                _ => Mark::New,
            };
            lines.push(process_line(&node.process, node.depth, mark, width));
        }
        lines.join("\n")
    }

    /// A line opening a new incident (a blank line before it), or saying which
    /// incident goes on after another's; none while the same one goes on.
    fn incident_heading(&mut self, incident: &str, label: &str, width: usize) -> Vec<String> {
        let mut lines = Vec::new();
        if !self.incidents.contains_key(incident) {
            self.remember(incident);
            if self.shown_any {
                lines.push(String::new());
            }
            lines.push(rule_line(label, width));
        } else if self.last.as_deref() != Some(incident) {
            lines.push(rule_line(&format!("{label} (continued)"), width));
        }
        self.last = Some(incident.to_string());
        lines
    }

    fn remember(&mut self, incident: &str) {
        if self.order.len() >= INCIDENTS_KEPT {
            if let Some(oldest) = self.order.pop_front() {
                self.incidents.remove(&oldest);
            }
        }
        self.order.push_back(incident.to_string());
        self.incidents.insert(incident.to_string(), Tree::default());
    }

    fn summary(&mut self, summary: &SummaryRecord, width: usize) -> String {
        let line = fit(
            &[(dim(), printable(&format!("  ⋯ {}", summary.message)))],
            width,
        );
        match &summary.incident {
            Some(id) if self.last.as_ref() != Some(id) && self.incidents.contains_key(id) => {
                self.last = Some(id.clone());
                let id = printable(id);
                format!(
                    "{}\n{line}",
                    rule_line(&format!("incident {id} (continued)"), width)
                )
            }
            _ => line,
        }
    }
}

/// `2019-05-27 01:28:42.711  HIGH  CAR-2021-02-001  Webshell-indicative process tree`
fn heading(
    time: Option<DateTime<Utc>>,
    severity: Severity,
    id: &str,
    title: &str,
    width: usize,
) -> String {
    let time = time.map_or_else(
        || "(no time)".to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
    );
    fit(
        &[
            (Style::new(), Cow::Owned(format!("{time}  "))),
            (
                severity_style(severity),
                Cow::Owned(severity.name().to_uppercase()),
            ),
            (Style::new(), Cow::Borrowed("  ")),
            (Style::new().bold(), printable(id)),
            (Style::new(), Cow::Borrowed("  ")),
            (Style::new(), printable(title)),
        ],
        width,
    )
}

fn sensor_lines(sensor: &SensorRecord, width: usize) -> String {
    let mut out = heading(
        sensor.time,
        sensor.rule.severity(),
        &sensor.rule.id,
        &sensor.rule.title,
        width,
    );
    let host = sensor.hostname.as_deref().unwrap_or("-");
    for line in format!("host {host}: {}", sensor.detail).lines() {
        out.push('\n');
        out.push_str(&fit(&[(dim(), printable(&format!("  {line}")))], width));
    }
    out
}

/// How a process of the tree is shown.
#[derive(Copy, Clone)]
enum Mark {
    /// Shown by an earlier alert: its name only, dimmed, for context.
    Shown,
    New,
    /// The process the rule matched.
    Matched(Severity),
}

/// `  └─ cmd.exe 2404  IIS APPPOOL\DefaultAppPool  cmd /c whoami`, indented by depth.
fn process_line(process: &ProcessFields, depth: usize, mark: Mark, width: usize) -> String {
    let branch = match (depth, mark) {
        (0, Mark::Matched(_)) => "▶ ",
        (0, _) => "",
        (_, Mark::Matched(_)) => "└▶ ",
        _ => "└─ ",
    };
    let indent = format!("  {}{branch}", "   ".repeat(depth.saturating_sub(1)));
    let pid = process.pid.map_or("?".into(), |p| p.to_string());
    let (name_style, rest_style) = match mark {
        Mark::Shown => (dim(), dim()),
        Mark::New => (Style::new(), Style::new()),
        Mark::Matched(severity) => (severity_style(severity).bold(), Style::new()),
    };
    let mut segments = vec![
        (name_style, Cow::Owned(indent)),
        (name_style, printable(process.program())),
        (dim(), Cow::Owned(format!(" {pid}"))),
    ];
    if !matches!(mark, Mark::Shown) {
        let command = process
            .command_line
            .as_deref()
            .map(|c| without_directory(c, process));
        for field in [process.user.as_deref(), command.as_deref()]
            .into_iter()
            .flatten()
        {
            segments.push((rest_style, Cow::Owned(format!("  {}", printable(field)))));
        }
    }
    fit(&segments, width)
}

/// The command line with its program's directory left out when the program is the
/// process's own (`"C:\Windows\System32\cmd.exe" /c ver` -> `cmd.exe /c ver`): the
/// arguments, which are what the operator typed, fit the line. The JSON and the
/// report keep the whole of it.
fn without_directory<'a>(command_line: &'a str, process: &ProcessFields) -> Cow<'a, str> {
    let Some(exe) = process.exe.as_deref() else {
        return Cow::Borrowed(command_line);
    };
    let (program, rest) = match command_line.strip_prefix('"') {
        Some(quoted) => match quoted.split_once('"') {
            Some((program, rest)) => (program, rest),
            None => return Cow::Borrowed(command_line),
        },
        None => command_line.split_at(command_line.find(' ').unwrap_or(command_line.len())),
    };
    if crate::record::file_name(program).eq_ignore_ascii_case(exe) && program != exe {
        Cow::Owned(format!("{exe}{rest}"))
    } else {
        Cow::Borrowed(command_line)
    }
}

/// `── incident IEWIN7 · w3wp.exe 748 ─────…` across the width.
fn rule_line(label: &str, width: usize) -> String {
    let text = format!("── {} ", printable(label));
    let fill = width.saturating_sub(text.chars().count());
    fit(
        &[
            (Style::new().bold(), Cow::Owned(text)),
            (dim(), Cow::Owned("─".repeat(fill))),
        ],
        width,
    )
}

fn dim() -> Style {
    Style::new().dimmed()
}

fn severity_style(severity: Severity) -> Style {
    let color = |c: AnsiColor| Style::new().fg_color(Some(c.into()));
    match severity {
        Severity::Critical => Style::new()
            .bold()
            .fg_color(Some(AnsiColor::BrightWhite.into()))
            .bg_color(Some(AnsiColor::Red.into())),
        Severity::High => color(AnsiColor::Red).bold(),
        Severity::Medium => color(AnsiColor::Yellow),
        Severity::Low => color(AnsiColor::Cyan),
        Severity::Informational => dim(),
    }
}

/// The segments, styled, cut to `width` columns with `…` where they are longer.
fn fit(segments: &[(Style, Cow<str>)], width: usize) -> String {
    let mut room = width;
    let mut out = String::new();
    let total: usize = segments.iter().map(|(_, t)| t.chars().count()).sum();
    if total > width {
        room = width.saturating_sub(1);
    }
    for (style, text) in segments {
        if room == 0 {
            break;
        }
        let part: String = text.chars().take(room).collect();
        room -= part.chars().count();
        out.push_str(&format!("{style}{part}{style:#}"));
    }
    if total > width {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::memory::Disk;

    const W3WP_CMD: &str = r#"{"kind":"alert","timestamp":"2019-05-24T01:33:53.1124866Z","hostname":"IEWIN7","incident":"IEWIN7/2580/-","rule":{"id":"CAR-2021-02-001","title":"Webshell-indicative process tree","severity":"high","attack":["T1505.003"]},"process":{"pid":2404,"exe":"cmd.exe","command_line":"\"c:\\windows\\system32\\cmd.exe\" /c net user","user":"IIS APPPOOL\\DefaultAppPool"},"parent":{"pid":2580,"exe":"w3wp.exe","command_line":null,"user":null},"ancestors":[{"pid":2580,"exe":"w3wp.exe","image_path":"c:\\windows\\system32\\inetsrv\\w3wp.exe"}]}"#;

    fn under_cmd(pid: u32, exe: &str, command_line: &str) -> String {
        format!(
            r#"{{"kind":"alert","timestamp":"2019-05-24T01:33:54Z","hostname":"IEWIN7","incident":"IEWIN7/2580/-","rule":{{"id":"SW-WIN-002","title":"Tool under a shell","severity":"high"}},"process":{{"pid":{pid},"exe":"{exe}","command_line":"{command_line}","user":"IIS APPPOOL\\DefaultAppPool"}},"parent":{{"pid":2404,"exe":"cmd.exe"}},"ancestors":[{{"pid":2404,"exe":"cmd.exe"}},{{"pid":2580,"exe":"w3wp.exe"}}]}}"#
        )
    }

    fn line(text: &str) -> Line {
        Line {
            text: text.into(),
            counted: true,
        }
    }

    /// The view of `lines`, colours stripped, `width` columns.
    fn shown(lines: &[String], width: fn() -> usize) -> String {
        let mut pretty = Pretty::new(Vec::new(), width);
        let lines: Vec<Line> = lines.iter().map(|t| line(t)).collect();
        pretty.write(&lines).unwrap();
        anstream::adapter::strip_str(std::str::from_utf8(&pretty.out).unwrap()).to_string()
    }

    #[test]
    fn an_incident_shows_its_tree_once_and_later_alerts_as_branches() {
        let lines = [
            W3WP_CMD.to_string(),
            under_cmd(788, "net.exe", "net  user"),
            r#"{"kind":"stats","received":3}"#.to_string(),
            under_cmd(789, "whoami.exe", "whoami /all"),
        ];
        assert_eq!(
            shown(&lines, || 100),
            "\
── incident IEWIN7 · w3wp.exe 2580 ─────────────────────────────────────────────────────────────────
2019-05-24 01:33:53.112  HIGH  CAR-2021-02-001  Webshell-indicative process tree
  w3wp.exe 2580
  └▶ cmd.exe 2404  IIS APPPOOL\\DefaultAppPool  cmd.exe /c net user
2019-05-24 01:33:54.000  HIGH  SW-WIN-002  Tool under a shell
  └─ cmd.exe 2404
     └▶ net.exe 788  IIS APPPOOL\\DefaultAppPool  net  user
2019-05-24 01:33:54.000  HIGH  SW-WIN-002  Tool under a shell
  └─ cmd.exe 2404
     └▶ whoami.exe 789  IIS APPPOOL\\DefaultAppPool  whoami /all
"
        );
    }

    #[test]
    fn another_incident_between_says_which_goes_on() {
        let other = W3WP_CMD
            .replace("IEWIN7/2580/-", "WEB02/1/-")
            .replace("IEWIN7", "WEB02");
        let lines = [
            W3WP_CMD.to_string(),
            other,
            under_cmd(788, "net.exe", "net user"),
        ];
        let shown = shown(&lines, || 60);
        let headings: Vec<&str> = shown
            .lines()
            .filter(|l| l.starts_with("──") || l.is_empty())
            .collect();
        assert!(headings
            .iter()
            .all(|h| h.is_empty() || h.chars().count() == 60));
        let labels: Vec<&str> = headings.iter().map(|h| h.trim_end_matches('─')).collect();
        assert_eq!(
            labels,
            [
                "── incident IEWIN7 · w3wp.exe 2580 ",
                "",
                "── incident WEB02 · w3wp.exe 2580 ",
                "── incident IEWIN7 · w3wp.exe 2580 (continued) ",
            ]
        );
    }

    #[test]
    fn long_lines_are_cut_to_the_width_and_control_characters_escaped() {
        let hostile = under_cmd(788, "net.exe", r"net user \u001b[2J\u202eevil\r\nfake line");
        let lines = [W3WP_CMD.to_string(), hostile];
        let narrow = shown(&lines, || 70);
        for line in narrow.lines() {
            assert!(line.chars().count() <= 70, "{line:?}");
        }
        let wide = shown(&lines, || 200);
        let net = |shown: &str| shown.lines().last().unwrap().to_string();
        assert_eq!(
            net(&wide),
            r"     └▶ net.exe 788  IIS APPPOOL\DefaultAppPool  net user \u{1b}[2J\u{202e}evil\r\nfake line"
        );
        assert_eq!(
            net(&narrow),
            format!("{}…", net(&wide).chars().take(69).collect::<String>())
        );
        let raw = shown_once(&lines[1], || 200);
        assert!(
            !raw.contains('\u{202e}') && !raw.contains("\u{1b}[2J"),
            "{raw:?}"
        );
    }

    fn shown_once(text: &str, width: fn() -> usize) -> String {
        let mut pretty = Pretty::new(Vec::new(), width);
        pretty.write(&[line(text)]).unwrap();
        String::from_utf8(pretty.out).unwrap()
    }

    #[test]
    fn severity_is_coloured_and_the_matched_process_marked() {
        let coloured = shown_once(W3WP_CMD, || 100);
        let high = Style::new().fg_color(Some(AnsiColor::Red.into())).bold();
        assert!(
            coloured.contains(&format!("{high}HIGH{high:#}")),
            "{coloured:?}"
        );
        assert!(
            coloured.contains(&format!("{}cmd.exe", high.bold())),
            "{coloured:?}"
        );
    }

    #[test]
    fn summaries_sensor_lines_and_unknown_lines_are_shown() {
        let summary = r#"{"kind":"alert-summary","incident":"IEWIN7/2580/-","suppressed":37,"message":"37 more alerts of rule SW-WIN-002 in this incident were suppressed after the first 20"}"#;
        let sensor = r#"{"kind":"sensor","timestamp":"2026-11-27T10:00:00.000Z","hostname":"WEB01","rule":{"id":"spawnwatch.reload-failed","title":"Rule reload failed","severity":"medium"},"diagnostics":"error: x\n  --> a.rules:1:1"}"#;
        let lines = [
            summary.to_string(),
            sensor.to_string(),
            "{\"kind\":\"later\"}".into(),
        ];
        assert_eq!(
            shown(&lines, || 100),
            "  ⋯ 37 more alerts of rule SW-WIN-002 in this incident were suppressed after the first 20
2026-11-27 10:00:00.000  MEDIUM  spawnwatch.reload-failed  Rule reload failed
  host WEB01: error: x
    --> a.rules:1:1
{\"kind\":\"later\"}
"
        );
    }

    /// A full disk (or a stuck terminal) takes half a block: the rest of it is written
    /// later as drawn the first time, and each offered line is accounted for once.
    #[test]
    fn a_write_cut_short_resumes_the_block_as_drawn() {
        let offered = [
            line(r#"{"kind":"stats"}"#),
            line(W3WP_CMD),
            line(&under_cmd(788, "net.exe", "net user")),
        ];
        let first_block = shown_once(W3WP_CMD, || 100).len() + 1;
        let room = first_block + 20;
        let mut pretty = Pretty::new(Disk::with_room(room), || 100);
        let stopped = pretty.write(&offered).unwrap_err();
        assert_eq!(stopped.delivered, 2, "the stats line and the first alert");
        pretty.out.room = 10_000;
        pretty.write(&offered[2..]).unwrap();
        let all = anstream::adapter::strip_str(std::str::from_utf8(&pretty.out.bytes).unwrap())
            .to_string();
        assert_eq!(all.matches("net.exe 788").count(), 1, "{all}");
        assert_eq!(
            all.matches("w3wp.exe 2580").count(),
            2,
            "heading and root: {all}"
        );
    }
}
