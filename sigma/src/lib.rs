//! Sigma's process-creation rules, run natively: each YAML rule becomes the dsl's
//! checked form ([`dsl::ir::CheckedRule`]) directly, without rule text in between, so
//! Sigma rules and spawnwatch's own rules load, index and evaluate as one set.
//!
//! Scope: `logsource` with `category: process_creation` and `product: windows` or
//! `linux`; other log sources are skipped and counted. Field names are Sysmon event 1's
//! (`Image`, `CommandLine`, `ParentImage`, ...: see [`fields`]). Values follow Sigma's
//! specification: case-insensitive, `*` and `?` wildcards with `\` escapes, lists as
//! alternatives, maps as conjunctions, keywords, the modifiers `contains`, `startswith`,
//! `endswith`, `all`, `re` (with `i`, `m`, `s`), `windash`, `base64`, `base64offset`,
//! `utf16le`/`wide`, `utf16be`, `utf16`, `cased`, `exists`, `fieldref`, `gt`, `gte`,
//! `lt`, `lte`, `neq`, and the condition grammar. Whatever is not supported skips its
//! rule with a warning that names the construct and points at it.
//!
//! Like the dsl, it does no I/O: the caller hands in each file's text and the index
//! its diagnostics' spans should carry.
//!
//! ```
//! let yaml = r#"
//! title: Whoami from a web server
//! id: 0b0d5a9e-9e0f-4f0a-8c1d-2a2f7f0b1c3d
//! status: test
//! level: high
//! tags: [attack.discovery, attack.t1033]
//! logsource: {category: process_creation, product: windows}
//! detection:
//!     selection:
//!         ParentImage|endswith: '\w3wp.exe'
//!         Image|endswith: '\whoami.exe'
//!     condition: selection
//! "#;
//! let converted = sigma::convert_file(0, yaml, &sigma::Options::default());
//! assert_eq!(converted.rules.len(), 1);
//! assert_eq!(converted.rules[0].rule.meta.attack, ["T1033"]);
//! ```

mod cond;
mod condition;
pub mod fields;
mod meta;
mod value;
mod yaml;

use dsl::ast::Span;
use dsl::ir::{CheckedRule, Cond};
use dsl::Diagnostic;
use yaml::{Locator, Node};

pub use meta::RuleInfo;

/// Which rules load.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `status` values that load (a rule without one always does).
    pub statuses: Vec<String>,
}

impl Default for Options {
    /// Every status but `deprecated` and `unsupported`.
    fn default() -> Options {
        Options {
            statuses: ["stable", "test", "experimental"]
                .map(String::from)
                .to_vec(),
        }
    }
}

impl Options {
    /// Every status, `deprecated` and `unsupported` included.
    pub fn every_status() -> Options {
        Options {
            statuses: [
                "stable",
                "test",
                "experimental",
                "deprecated",
                "unsupported",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// A rule that loaded, with what the checked form has no place for.
#[derive(Clone, Debug)]
pub struct Converted {
    pub rule: CheckedRule,
    pub info: RuleInfo,
}

/// A rule (or a file) that did not load, and why: `reason` is the short label the
/// summary counts by (`modifier \`cidr\``, `other log source`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub id: Option<String>,
    pub reason: String,
}

/// What one file gave.
#[derive(Debug, Default)]
pub struct FileResult {
    pub rules: Vec<Converted>,
    pub skipped: Vec<Skipped>,
    /// A warning for each rule skipped for a construct it uses, an error for each rule
    /// that is not valid Sigma; spans point into the file.
    pub diagnostics: Vec<Diagnostic>,
}

/// Why a rule cannot load: valid Sigma this converter does not run (a warning), or a
/// rule that is not valid Sigma (an error).
#[derive(Debug)]
pub(crate) struct Problem {
    pub(crate) unsupported: bool,
    pub(crate) reason: String,
    pub(crate) message: String,
    pub(crate) at: Span,
}

impl Problem {
    pub(crate) fn unsupported(
        reason: impl Into<String>,
        message: impl Into<String>,
        at: Span,
    ) -> Problem {
        Problem {
            unsupported: true,
            reason: reason.into(),
            message: message.into(),
            at,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>, at: Span) -> Problem {
        Problem {
            unsupported: false,
            reason: "not valid Sigma".into(),
            message: message.into(),
            at,
        }
    }

    fn diagnostic(&self, id: Option<&str>) -> Diagnostic {
        let rule = id.map(|id| format!("rule `{id}`: ")).unwrap_or_default();
        if self.unsupported {
            Diagnostic::warning(
                "sigma-unsupported",
                format!("{rule}{}", self.message),
                self.at,
            )
            .with_hint("the rule is skipped; everything else loads")
        } else {
            Diagnostic::error("sigma-invalid", format!("{rule}{}", self.message), self.at)
        }
    }
}

/// Converts the rules of one Sigma file (one rule per YAML document). `file` is the
/// index the file has among the sources diagnostics are rendered with.
pub fn convert_file(file: usize, text: &str, options: &Options) -> FileResult {
    let at = Locator::new(file, text);
    let mut out = FileResult::default();
    let docs = match yaml::load(text) {
        Ok(docs) => docs,
        Err((message, marker)) => {
            let problem = Problem {
                unsupported: false,
                reason: "not valid YAML".into(),
                message: format!("not valid YAML: {message}"),
                at: at.at(marker),
            };
            out.diagnostics.push(problem.diagnostic(None));
            out.skipped.push(Skipped {
                id: None,
                reason: problem.reason,
            });
            return out;
        }
    };
    for doc in &docs {
        let id = yaml::get(doc, "id")
            .and_then(yaml::text)
            .map(str::to_string);
        match convert_rule(doc, &at, options) {
            Ok(Some(converted)) => out.rules.push(converted),
            Ok(None) => {}
            Err(Outcome::Skip(reason)) => out.skipped.push(Skipped { id, reason }),
            Err(Outcome::Problem(problem)) => {
                out.diagnostics.push(problem.diagnostic(id.as_deref()));
                out.skipped.push(Skipped {
                    id,
                    reason: problem.reason,
                });
            }
        }
    }
    out
}

/// A rule that does not load: out of scope (counted only), or with a problem.
enum Outcome {
    Skip(String),
    Problem(Problem),
}

impl From<Problem> for Outcome {
    fn from(p: Problem) -> Outcome {
        Outcome::Problem(p)
    }
}

/// `Ok(None)` for an empty document.
fn convert_rule(
    doc: &Node<'_>,
    at: &Locator<'_>,
    options: &Options,
) -> Result<Option<Converted>, Outcome> {
    if yaml::text(doc).is_some_and(str::is_empty) {
        return Ok(None);
    }
    let whole = at.span(doc);
    if yaml::entries(doc).is_none() {
        return Err(Problem::invalid("a Sigma rule is a YAML mapping", whole).into());
    }
    if yaml::get(doc, "action").is_some() {
        return Err(Problem::unsupported(
            "rule collection",
            "rule collections (`action: global`) are not supported: write each rule in full",
            whole,
        )
        .into());
    }
    let logsource = meta::logsource(doc);
    if !logsource.in_scope() {
        return Err(Outcome::Skip("other log source".into()));
    }
    if let Some(status) = yaml::get(doc, "status").and_then(yaml::text) {
        if !options
            .statuses
            .iter()
            .any(|s| s.eq_ignore_ascii_case(status))
        {
            return Err(Outcome::Skip(format!("status `{status}`")));
        }
    }
    let (meta, info) = meta::meta(doc, at, &logsource)?;
    let condition = detection(doc, at, whole)?;
    Ok(Some(Converted {
        rule: CheckedRule {
            meta,
            condition,
            exceptions: Vec::new(),
        },
        info,
    }))
}

/// The detection's condition over its search identifiers.
fn detection(doc: &Node<'_>, at: &Locator<'_>, whole: Span) -> Result<Cond, Problem> {
    let detection = yaml::get(doc, "detection")
        .ok_or_else(|| Problem::invalid("the rule has no `detection`", whole))?;
    let entries = yaml::entries(detection)
        .ok_or_else(|| Problem::invalid("`detection` must be a mapping", at.span(detection)))?;
    let mut identifiers = Vec::new();
    let mut condition = None;
    for (key, value) in entries {
        let name = yaml::text(key).unwrap_or_default();
        match name {
            "condition" => condition = Some(value),
            "timeframe" => {
                return Err(Problem::unsupported(
                    "timeframe",
                    "`timeframe` belongs to aggregations, which are not supported",
                    at.span(key),
                ))
            }
            _ => identifiers.push((name.to_string(), search(value, at)?)),
        }
    }
    let condition = condition
        .ok_or_else(|| Problem::invalid("the detection has no `condition`", at.span(detection)))?;
    let texts: Vec<(&str, Span)> = match yaml::sequence(condition) {
        Some(items) => items
            .iter()
            .filter_map(|item| Some((yaml::text(item)?, at.span(item))))
            .collect(),
        None => yaml::text(condition)
            .map(|t| (t, at.span(condition)))
            .into_iter()
            .collect(),
    };
    if texts.is_empty() {
        return Err(Problem::invalid(
            "`condition` must be a string or a list of them",
            at.span(condition),
        ));
    }
    let conds = texts
        .iter()
        .map(|&(text, span)| {
            condition::condition(text, &identifiers).map_err(|e| {
                let place = at.within(span, text, e.at);
                if e.unsupported {
                    Problem::unsupported("aggregation", e.message, place)
                } else {
                    Problem::invalid(e.message, place)
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let cond = cond::or(conds);
    if size(&cond) > dsl::check::MAX_RULE_SIZE as usize {
        return Err(Problem::unsupported(
            "too large",
            format!(
                "the rule expands to more than {} tests and values",
                dsl::check::MAX_RULE_SIZE
            ),
            at.span(condition),
        ));
    }
    Ok(cond)
}

/// A search identifier's value: a map (all of its entries), a list (any of its items:
/// maps, or keywords), or a keyword.
fn search(value: &Node<'_>, at: &Locator<'_>) -> Result<Cond, Problem> {
    let span = at.span(value);
    if let Some(entries) = yaml::entries(value) {
        let conds = entries
            .map(|(k, v)| {
                let key = yaml::text(k)
                    .ok_or_else(|| Problem::invalid("a key must be a string", at.span(k)))?;
                value::entry(key, at.span(k), v, at.span(v))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if conds.is_empty() {
            return Err(Problem::invalid(
                "an empty search identifier matches nothing",
                span,
            ));
        }
        return Ok(cond::and(conds));
    }
    if let Some(items) = yaml::sequence(value) {
        if items.is_empty() {
            return Err(Problem::invalid(
                "an empty search identifier matches nothing",
                span,
            ));
        }
        let conds = items
            .iter()
            .map(|item| match yaml::entries(item) {
                Some(_) => search(item, at),
                None => value::keywords(item, at.span(item)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(cond::or(conds));
    }
    value::keywords(value, span)
}

/// Tests and values in a condition, as the dsl counts a rule's size.
fn size(cond: &Cond) -> usize {
    match cond {
        Cond::And(v) | Cond::Or(v) => 1 + v.iter().map(size).sum::<usize>(),
        Cond::Not(c) => 1 + size(c),
        Cond::Ancestor { body, .. } => 1 + size(body),
        Cond::Text(t) => 1 + t.patterns.len(),
        Cond::Number(n) => 1 + n.values.len(),
        Cond::Exists(_) | Cond::Flag(_) | Cond::SameValue(..) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str =
        "title: t\nid: x\nlogsource: {category: process_creation, product: windows}\n";

    /// The text a rule's one diagnostic points at.
    fn pointed_at(detection: &str) -> String {
        let text = format!("{HEAD}{detection}");
        let result = convert_file(0, &text, &Options::default());
        let [d] = &result.diagnostics[..] else {
            panic!("{:?}", result.diagnostics)
        };
        text[d.span.start..d.span.end].to_string()
    }

    #[test]
    fn a_condition_mistake_points_at_its_words_when_written_plainly() {
        let sel = "detection:\n    sel:\n        Image: a\n";
        assert_eq!(
            pointed_at(&format!("{sel}    condition: sel and filter\n")),
            "filter"
        );
        assert_eq!(
            pointed_at(&format!(
                "{sel}    condition:\n        - sel\n        - 1 of x*\n"
            )),
            "1 of x*"
        );
        // Quoted, the value's bytes are not the text's: the whole value is shown.
        assert_eq!(
            pointed_at(&format!("{sel}    condition: 'sel and filter'\n")),
            "'sel and filter'"
        );
    }
}
