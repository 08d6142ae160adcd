//! Sigma files among the rule files: converted by the `sigma` crate, on a thread per
//! core (parsing their YAML is most of the start-up time of a large library), and
//! handed to the dsl beside the `.rules` files as one set.

use dsl::check::Foreign;
use dsl::Source;
use std::collections::BTreeMap;

/// Whether a rule file is a Sigma rule (by its name).
pub fn is_sigma(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".yml") || lower.ends_with(".yaml")
}

/// A rule set's files, rule-language files first, and the Sigma rules converted.
pub struct Mixed {
    pub sources: Vec<Source>,
    /// How many of `sources` are rule-language files (the rest are Sigma files).
    pub dsl_files: usize,
    pub foreign: Foreign,
    pub report: Report,
    /// What `spawnwatch sigma convert` shows beside each rule.
    pub infos: Vec<sigma::RuleInfo>,
}

/// What the Sigma files gave, for the summary line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub files: usize,
    pub loaded: usize,
    /// Rules skipped, by reason.
    pub skipped: BTreeMap<String, usize>,
}

impl Report {
    /// `Sigma: 1181 rules loaded from 1183 files; 2 skipped: 1 field `X`, 1 ...`, or
    /// nothing when no Sigma file was given.
    pub fn summary(&self) -> Option<String> {
        if self.files == 0 {
            return None;
        }
        let skipped: usize = self.skipped.values().sum();
        let mut line = format!(
            "Sigma: {} rules loaded from {} file(s); {skipped} skipped",
            self.loaded, self.files
        );
        if skipped > 0 {
            let reasons: Vec<String> = self
                .skipped
                .iter()
                .map(|(reason, n)| format!("{n} {reason}"))
                .collect();
            line.push_str(&format!(": {}", reasons.join(", ")));
        }
        Some(line)
    }
}

/// Puts the rule-language files first and converts the Sigma files, each keeping its
/// order among its kind.
pub fn convert(sources: Vec<Source>, options: &sigma::Options) -> Mixed {
    let (sigma_files, mut sources): (Vec<Source>, Vec<Source>) =
        sources.into_iter().partition(|s| is_sigma(&s.name));
    let dsl_files = sources.len();
    let results = convert_all(dsl_files, &sigma_files, options);
    sources.extend(sigma_files);
    let mut mixed = Mixed {
        sources,
        dsl_files,
        foreign: Foreign::default(),
        report: Report {
            files: results.len(),
            ..Report::default()
        },
        infos: Vec::new(),
    };
    for result in results {
        mixed.report.loaded += result.rules.len();
        for skipped in result.skipped {
            *mixed.report.skipped.entry(skipped.reason).or_default() += 1;
        }
        mixed.foreign.diagnostics.extend(result.diagnostics);
        for converted in result.rules {
            mixed.foreign.rules.push(converted.rule);
            mixed.infos.push(converted.info);
        }
    }
    mixed
}

/// `spawnwatch sigma convert FILE...`: each rule in the rule language on stdout, with
/// its Sigma file, author, status and false positives as comments; what cannot be
/// converted on stderr. Every status converts: the choice is the author's.
pub fn convert_command(sources: Vec<Source>) -> std::process::ExitCode {
    let mixed = convert(sources, &sigma::Options::every_status());
    let mut failed = !mixed.report.skipped.is_empty();
    for d in &mixed.foreign.diagnostics {
        eprintln!(
            "{}
",
            d.render(&mixed.sources)
        );
    }
    let mut printed = Vec::with_capacity(mixed.foreign.rules.len());
    for (rule, info) in mixed.foreign.rules.iter().zip(&mixed.infos) {
        match dsl::print::print_rule(rule) {
            Ok(text) => {
                let comments = comments(&mixed.sources[rule.meta.span.file].name, info);
                printed.push(format!("{comments}{text}"));
            }
            Err(why) => {
                failed = true;
                eprintln!(
                    "spawnwatch: rule {} cannot be written as a rule: {why}",
                    rule.meta.id
                );
            }
        }
    }
    // One write: a library is a thousand rules. A reader that has gone ends us quietly.
    if !printed.is_empty() {
        outln!("{}", printed.join("\n"));
    }
    if let Some(summary) = mixed.report.summary() {
        eprintln!("spawnwatch: {summary}");
    }
    if failed {
        std::process::ExitCode::from(1)
    } else {
        std::process::ExitCode::SUCCESS
    }
}

/// The comment lines above a converted rule.
fn comments(file: &str, info: &sigma::RuleInfo) -> String {
    let mut lines = vec![format!(
        "# Sigma rule from {file} (Detection Rule License 1.1: keep the author and id)"
    )];
    let facts: Vec<String> = [
        info.author.as_ref().map(|a| format!("author: {a}")),
        info.status.as_ref().map(|s| format!("status: {s}")),
        (!info.product.is_empty()).then(|| format!("product: {}", info.product)),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !facts.is_empty() {
        lines.push(format!("# {}", facts.join("; ")));
    }
    if !info.falsepositives.is_empty() {
        lines.push(format!(
            "# false positives: {}",
            info.falsepositives.join("; ")
        ));
    }
    if !info.tags.is_empty() {
        lines.push(format!("# tags: {}", info.tags.join(", ")));
    }
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// Files below this many are not worth a thread.
const FILES_PER_THREAD: usize = 64;

/// Each Sigma file converted, in order; the first has index `first` among the sources.
fn convert_all(first: usize, files: &[Source], options: &sigma::Options) -> Vec<sigma::FileResult> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len().div_ceil(FILES_PER_THREAD))
        .max(1);
    let chunk = files.len().div_ceil(threads).max(1);
    let convert_chunk = |start: usize, part: &[Source]| -> Vec<sigma::FileResult> {
        part.iter()
            .enumerate()
            .map(|(i, s)| convert_file(first + start + i, s, options))
            .collect()
    };
    if threads == 1 {
        return convert_chunk(0, files);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .enumerate()
            .map(|(k, part)| scope.spawn(move || convert_chunk(k * chunk, part)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a Sigma conversion thread panicked"))
            .collect()
    })
}

/// One Sigma file converted; one that is not UTF-8 is an error at its first bad byte,
/// as a rule-language file is (its lossy text would load rules no one wrote).
fn convert_file(file: usize, source: &Source, options: &sigma::Options) -> sigma::FileResult {
    match source.encoding_error(file) {
        Some(error) => sigma::FileResult {
            diagnostics: vec![error],
            skipped: vec![sigma::Skipped {
                id: None,
                reason: "not UTF-8".into(),
            }],
            ..Default::default()
        },
        None => sigma::convert_file(file, &source.text, options),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str = "title: t\nid: r-1\nlogsource: {category: process_creation, product: windows}\ndetection:\n  sel:\n    Image|endswith: '\\x.exe'\n  condition: sel\n";

    #[test]
    fn rule_language_files_come_first_and_sigma_spans_point_at_their_files() {
        let sources = vec![
            Source::new("a.yml", RULE),
            Source::new("local.rules", ""),
            Source::new("b.yaml", "title: t\nid: r-2\nlogsource: {category: file_event, product: windows}\ndetection: {sel: {a: b}, condition: sel}\n"),
            Source::new("c.yml", RULE.replace("r-1", "r-3").replace("endswith", "cidr")),
        ];
        let mixed = convert(sources, &sigma::Options::default());
        let names: Vec<&str> = mixed.sources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["local.rules", "a.yml", "b.yaml", "c.yml"]);
        assert_eq!(mixed.dsl_files, 1);
        assert_eq!(mixed.foreign.rules.len(), 1);
        assert_eq!(mixed.foreign.rules[0].meta.span.file, 1);
        assert_eq!(mixed.foreign.diagnostics[0].span.file, 3);
        assert_eq!(
            mixed.report.summary().unwrap(),
            "Sigma: 1 rules loaded from 3 file(s); 2 skipped: 1 modifier `cidr`, 1 other log source"
        );
    }

    #[test]
    fn a_sigma_file_that_is_not_utf8_is_an_error_at_its_bad_byte_not_loaded() {
        // Saved as Latin-1: `é` is the one byte 0xE9.
        let latin1 = RULE
            .replace("x.exe", "caf\u{1}.exe")
            .replace('\u{1}', "\u{e9}");
        let bytes: Vec<u8> = latin1.chars().map(|c| c as u8).collect();
        let sources = vec![Source::from_bytes("latin1.yml", bytes)];
        let mixed = convert(sources, &sigma::Options::default());
        assert!(mixed.foreign.rules.is_empty());
        let [error] = &mixed.foreign.diagnostics[..] else {
            panic!("{:?}", mixed.foreign.diagnostics)
        };
        assert!(error.is_error());
        assert_eq!(error.code, "not-utf8");
        assert_eq!(error.span.start, RULE.find("x.exe").unwrap() + "caf".len());
        assert_eq!(
            mixed.report.summary().unwrap(),
            "Sigma: 0 rules loaded from 1 file(s); 1 skipped: 1 not UTF-8"
        );
    }

    #[test]
    fn many_files_convert_on_several_threads_in_order() {
        let sources: Vec<Source> = (0..300)
            .map(|i| Source::new(format!("{i}.yml"), RULE.replace("r-1", &format!("r-{i}"))))
            .collect();
        let mixed = convert(sources, &sigma::Options::default());
        let files: Vec<usize> = mixed
            .foreign
            .rules
            .iter()
            .map(|r| r.meta.span.file)
            .collect();
        assert_eq!(files, (0..300).collect::<Vec<_>>());
        assert_eq!(mixed.foreign.rules[299].meta.id, "r-299");
    }
}
