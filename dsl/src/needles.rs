//! The rule index's last tier, for rules that ask no field to equal a value but cannot
//! match without some text in some field: `image_path endswith "\cmd.exe" or
//! original_file_name == "Cmd.Exe"`, `command_line contains "-enc"` (most Sigma
//! rules). Each such rule is indexed by those texts (its needles), and an event
//! selects it only when one of them is in its field's value: one Aho-Corasick pass per
//! field finds them all, instead of each rule running its own tests.

use crate::compile::{pieces, unescape, Piece};
use crate::eval::{self, fold_case, Scratch};
use crate::field::FieldRef;
use crate::ir::{Cond, TextOp, TextTest};
use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use rustc_hash::FxHashMap;
use std::sync::OnceLock;

/// Texts one of which is in its field's value (lowercased) whenever a condition holds.
pub(crate) type Needles = Vec<(FieldRef, String)>;

/// The needles of `cond`, when every way it can hold has one: a text test has the
/// literal text each pattern requires, an `or` the needles of all its parts, an `and`
/// those of its most selective part.
pub(crate) fn needles(cond: &Cond) -> Option<Needles> {
    match cond {
        Cond::Text(test) if test.field.depth <= 1 => text_needles(test),
        Cond::Or(items) => {
            let mut all = Vec::new();
            for item in items {
                all.extend(needles(item)?);
            }
            (!all.is_empty()).then_some(all)
        }
        Cond::And(items) => items.iter().filter_map(needles).max_by_key(selectivity),
        // The parent meets the block: its tests are the parent's fields'.
        Cond::Ancestor {
            min: 1,
            max: 1,
            body,
        } => {
            let inner = needles(body)?;
            inner
                .into_iter()
                .map(|(field, text)| {
                    (field.depth == 0).then_some((FieldRef { depth: 1, ..field }, text))
                })
                .collect()
        }
        _ => None,
    }
}

/// Longer needles select fewer events; then fewer needles.
fn selectivity(needles: &Needles) -> (usize, std::cmp::Reverse<usize>) {
    let shortest = needles.iter().map(|(_, t)| t.len()).min().unwrap_or(0);
    (shortest, std::cmp::Reverse(needles.len()))
}

/// The literal text each pattern cannot match without: all of it for `startswith`,
/// `endswith`, `contains` and plain `==`, its longest wildcard-free run for a
/// wildcard `==`. Lowercased: a value that has the text has it lowercased too.
fn text_needles(test: &TextTest) -> Option<Needles> {
    test.patterns
        .iter()
        .map(|p| {
            let literal = match test.op {
                TextOp::Equals => longest_literal(&p.text),
                TextOp::StartsWith | TextOp::EndsWith | TextOp::Contains => unescape(&p.text),
                TextOp::Regex => return None,
            };
            (!literal.is_empty()).then(|| (test.field, fold_case(&literal)))
        })
        .collect()
}

fn longest_literal(pattern: &str) -> String {
    let mut best = String::new();
    let mut run = String::new();
    for piece in pieces(pattern).chain(std::iter::once(Piece::AnyRun)) {
        match piece {
            Piece::Char(c) => run.push(c),
            _ => {
                if run.len() > best.len() {
                    best = std::mem::take(&mut run);
                }
                run.clear();
            }
        }
    }
    best
}

/// Per field: an automaton over the needles of every rule in this tier (built on the
/// first event: `check` and `rules` never need it), and the rules each needle selects.
#[derive(Debug, Default)]
pub(crate) struct NeedleIndex {
    fields: Vec<FieldNeedles>,
}

#[derive(Debug)]
struct FieldNeedles {
    field: FieldRef,
    texts: Vec<String>,
    automaton: OnceLock<AhoCorasick>,
    /// Per needle (its index in `texts`): the rules it selects.
    selected: Vec<Vec<u32>>,
}

impl FieldNeedles {
    fn automaton(&self) -> &AhoCorasick {
        self.automaton.get_or_init(|| {
            // A contiguous NFA builds in a fraction of a DFA's time and memory, and is
            // searched once per field and event.
            AhoCorasick::builder()
                .kind(Some(AhoCorasickKind::ContiguousNFA))
                .match_kind(MatchKind::Standard)
                .build(&self.texts)
                .expect("literal needles always build")
        })
    }
}

impl NeedleIndex {
    /// `rules`: each rule's index and needles.
    pub(crate) fn build(rules: Vec<(u32, Needles)>) -> NeedleIndex {
        let mut fields: Vec<(FieldNeedles, FxHashMap<String, usize>)> = Vec::new();
        for (rule, needles) in rules {
            for (field, text) in needles {
                let slot = match fields.iter().position(|(f, _)| f.field == field) {
                    Some(slot) => slot,
                    None => {
                        let empty = FieldNeedles {
                            field,
                            texts: Vec::new(),
                            automaton: OnceLock::new(),
                            selected: Vec::new(),
                        };
                        fields.push((empty, FxHashMap::default()));
                        fields.len() - 1
                    }
                };
                let (needles, ids) = &mut fields[slot];
                let id = *ids.entry(text).or_insert_with_key(|text| {
                    needles.texts.push(text.clone());
                    needles.selected.push(Vec::new());
                    needles.texts.len() - 1
                });
                if needles.selected[id].last() != Some(&rule) {
                    needles.selected[id].push(rule);
                }
            }
        }
        NeedleIndex {
            fields: fields.into_iter().map(|(f, _)| f).collect(),
        }
    }

    /// Appends the rules whose needles `event` has, each once, in rule order.
    pub(crate) fn select<E: crate::Event>(
        &self,
        event: &E,
        scratch: &mut Scratch,
        out: &mut Vec<u32>,
    ) {
        let start = out.len();
        for needles in &self.fields {
            let Some(value) = eval::lowered_value(event, 0, &needles.field, scratch) else {
                continue;
            };
            for m in needles.automaton().find_overlapping_iter(value) {
                out.extend_from_slice(&needles.selected[m.pattern().as_usize()]);
            }
        }
        out[start..].sort_unstable();
        let mut kept = start;
        for i in start..out.len() {
            if kept == start || out[i] != out[kept - 1] {
                out[kept] = out[i];
                kept += 1;
            }
        }
        out.truncate(kept);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Pattern;
    use crate::Field;

    fn test(field: Field, depth: u32, op: TextOp, texts: &[&str]) -> Cond {
        Cond::Text(TextTest {
            field: FieldRef { field, depth },
            op,
            patterns: texts
                .iter()
                .map(|t| Pattern {
                    text: t.to_string(),
                    case_sensitive: false,
                })
                .collect(),
        })
    }

    fn texts(n: Option<Needles>) -> Option<Vec<String>> {
        n.map(|n| n.into_iter().map(|(_, t)| t).collect())
    }

    #[test]
    fn each_way_to_match_has_a_needle() {
        let image = test(Field::ImagePath, 0, TextOp::EndsWith, &[r"\Cmd.exe"]);
        let original = test(Field::OriginalFileName, 0, TextOp::Equals, &["Cmd.Exe"]);
        let cli = test(Field::CommandLine, 0, TextOp::Contains, &[" /c ", "-enc"]);
        let either = Cond::Or(vec![image.clone(), original]);
        assert_eq!(
            texts(needles(&either)),
            Some(vec![r"\cmd.exe".into(), "cmd.exe".into()])
        );
        // An `and` takes its most selective part: the longest shortest needle.
        let both = Cond::And(vec![either, cli.clone()]);
        assert_eq!(
            texts(needles(&both)),
            Some(vec![r"\cmd.exe".into(), "cmd.exe".into()])
        );
        // A part without needles cannot stand for an `or`.
        let regex = test(Field::CommandLine, 0, TextOp::Regex, &["a.b"]);
        assert_eq!(needles(&Cond::Or(vec![cli.clone(), regex.clone()])), None);
        assert_eq!(
            texts(needles(&Cond::And(vec![cli, regex]))),
            Some(vec![" /c ".into(), "-enc".into()])
        );
        // A wildcard pattern needs its longest literal run.
        let wild = test(
            Field::CommandLine,
            0,
            TextOp::Equals,
            &[r"*cmd.exe /Q /c * 1> \\*"],
        );
        assert_eq!(texts(needles(&wild)), Some(vec!["cmd.exe /q /c ".into()]));
        assert_eq!(
            needles(&test(Field::CommandLine, 0, TextOp::Equals, &["*"])),
            None
        );
        assert_eq!(needles(&Cond::Not(Box::new(image))), None);
    }

    #[test]
    fn parent_blocks_and_parent_fields() {
        let parent = test(Field::ImagePath, 1, TextOp::EndsWith, &[r"\w3wp.exe"]);
        assert_eq!(needles(&parent).unwrap()[0].0.depth, 1);
        let block = Cond::Ancestor {
            min: 1,
            max: 1,
            body: Box::new(test(Field::Exe, 0, TextOp::Equals, &["w3wp.exe"])),
        };
        assert_eq!(needles(&block).unwrap()[0].0.depth, 1);
        let deeper = Cond::Ancestor {
            min: 2,
            max: 2,
            body: Box::new(test(Field::Exe, 0, TextOp::Equals, &["w3wp.exe"])),
        };
        assert_eq!(needles(&deeper), None);
    }
}
