//! Compiles checked rules into matchers built once, so that evaluating an event never
//! re-parses a pattern, never builds a regex and never allocates (after warm-up).
//!
//! Case-insensitive tests compare pre-lowercased patterns with the event's value
//! lowercased once per event and field (see [`Scratch`]), not once per rule.

use crate::eval;
use crate::field::{FieldRef, Value};
use crate::ir::{CheckedRule, Cond, NumberOp, NumberTest, Pattern, RuleMeta, TextOp, TextTest};
use crate::needles::{self, NeedleIndex};
use crate::program::{Op, Programs};
use aho_corasick::AhoCorasick;
use regex::{Regex, RegexBuilder};
use rustc_hash::{FxHashMap, FxHashSet};
use std::borrow::Cow;
use std::sync::OnceLock;

pub use crate::eval::Scratch;

/// Index of a rule in its [`RuleSet`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(pub u32);

/// Index of a node in the rule set's arena.
pub(crate) type NodeId = u32;

/// A compiled rule set: evaluate events against every enabled rule at once.
///
/// Conditions are compiled into one arena of nodes in which identical sub-conditions
/// (an inlined macro used by ten rules) are one node, and each rule into a flat program
/// over the arena's tests; a test several rules run is evaluated at most once per event.
/// Rules that require some field to equal one of a few values (`exe in [...]`, in every
/// alternative of an `or`, wildcards allowed) are indexed by it, so an event is only
/// tested against rules that can match its values.
#[derive(Debug)]
pub struct RuleSet {
    pub(crate) rules: Vec<CompiledRule>,
    pub(crate) nodes: Vec<Node>,
    /// Per node: its test, described when an explanation asks (describing them all up
    /// front was a tenth of loading SigmaHQ's library); `None` for connectives.
    pub(crate) tests: Vec<Option<Cond>>,
    /// The rules' programs and the ancestor blocks' bodies' (see [`crate::program`]).
    pub(crate) ops: Vec<Op>,
    pub(crate) index: RuleIndex,
}

#[derive(Debug)]
pub(crate) struct CompiledRule {
    pub(crate) meta: RuleMeta,
    pub(crate) condition: NodeId,
    pub(crate) exceptions: Vec<(String, NodeId)>,
    /// Entry of the program for `condition` and not any of `exceptions`, without the
    /// test the index proves before selecting the rule: run only for rules it selects.
    pub(crate) program: u32,
}

/// A condition with every test compiled; children are arena indices.
#[derive(Debug)]
pub(crate) enum Node {
    And(Vec<NodeId>),
    Or(Vec<NodeId>),
    Not(NodeId),
    Exists(FieldRef),
    Flag(FieldRef),
    Text(FieldRef, TextMatcher),
    Number(FieldRef, NumberOp, Vec<u64>),
    SameValue(FieldRef, FieldRef),
    /// `program` is `body`'s entry; `at_parent`, for `ancestor[1]`, is `body` with
    /// every field one step further up, when that is the same test (see
    /// [`at_parent_of`]): programs test it in place instead of running `program`.
    Ancestor {
        min: u32,
        max: u32,
        body: NodeId,
        program: u32,
        at_parent: Option<NodeId>,
    },
}

/// Which rules an event can match, from the values of a few fields. Each enabled rule
/// is in `always`, or under one field in `by_value`, `by_pattern` or both (literals in
/// one, wildcards in the other, no value matching both), so the rules an event selects
/// come once each.
#[derive(Debug, Default)]
pub(crate) struct RuleIndex {
    /// The fields rules are indexed by.
    pub(crate) fields: Vec<FieldRef>,
    /// Per field of `fields`: lowercased value -> enabled rules requiring that value.
    pub(crate) by_value: Vec<FxHashMap<Box<str>, Vec<u32>>>,
    /// Enabled rules requiring a field to match wildcard patterns (or literals, with
    /// case-sensitive ones): candidates when it does.
    pub(crate) by_pattern: Vec<(FieldRef, TextMatcher, u32)>,
    /// Enabled rules with no such requirement but texts one of which a field must
    /// have (see [`crate::needles`]): candidates when it does.
    pub(crate) needles: NeedleIndex,
    /// Enabled rules with nothing to index: always candidates.
    pub(crate) always: Vec<u32>,
}

/// Matches a text value against the patterns of one test: any pattern matching is a
/// match. Case-insensitive patterns see the lowercased value, case-sensitive ones the
/// value as it is.
#[derive(Debug)]
pub(crate) struct TextMatcher {
    pub(crate) folded: Option<Patterns>,
    pub(crate) cased: Option<Patterns>,
}

#[derive(Debug)]
pub(crate) enum Patterns {
    /// Whole-value literals (few: a scan; many: a hash set), wildcard patterns with one
    /// `*` (a prefix and a suffix test), and any other wildcard patterns (one anchored
    /// regex alternation: linear time whatever the value), run only when the value
    /// has the literal start and end of one of them (a regex search costs more than
    /// all the other tests of a typical rule).
    Equals {
        literals: Literals,
        affixes: Vec<Frame>,
        wildcards: Option<Box<(Vec<Frame>, LazyRegex)>>,
    },
    StartsWith(Vec<Box<str>>),
    EndsWith(Vec<Box<str>>),
    Contains(Substrings),
    Regex(Box<LazyRegex>),
}

/// A regex built the first time a test needs it. In a large rule set (the Sigma
/// library) most tests never run on a given input, since the index skips their
/// rules, and building every regex up front was most of the start-up.
#[derive(Debug)]
pub(crate) struct LazyRegex {
    pattern: String,
    case_insensitive: bool,
    built: OnceLock<Regex>,
}

impl LazyRegex {
    fn new(pattern: String, case_insensitive: bool) -> LazyRegex {
        LazyRegex {
            pattern,
            case_insensitive,
            built: OnceLock::new(),
        }
    }

    fn is_match(&self, value: &str) -> bool {
        self.built
            .get_or_init(|| build_regex(&self.pattern, self.case_insensitive))
            .is_match(value)
    }
}

/// `contains` patterns: a few are searched for one by one; for more, an Aho-Corasick
/// automaton is built the first time it is needed (building one per test up front cost
/// more than the rest of compiling).
#[derive(Debug)]
pub(crate) struct Substrings {
    needles: Vec<Box<str>>,
    automaton: OnceLock<AhoCorasick>,
}

/// Up to this many needles, one search each beats building an automaton.
const SUBSTRING_SCAN_MAX: usize = 4;

impl Substrings {
    fn new(needles: Vec<Box<str>>) -> Substrings {
        Substrings {
            needles,
            automaton: OnceLock::new(),
        }
    }

    fn is_in(&self, value: &str) -> bool {
        if self.needles.len() <= SUBSTRING_SCAN_MAX {
            return self.needles.iter().any(|n| value.contains(&**n));
        }
        self.automaton
            .get_or_init(|| {
                AhoCorasick::new(self.needles.iter().map(|s| s.as_bytes()))
                    .expect("literal patterns always build")
            })
            .is_match(value)
    }
}

/// A wildcard pattern's literal text before its first wildcard and after its last.
#[derive(Debug)]
pub(crate) struct Frame {
    prefix: Box<str>,
    suffix: Box<str>,
}

impl Frame {
    /// Whether `value` starts with the prefix and ends with the suffix, apart: what
    /// any value the pattern matches does (and all it takes for a lone `*`).
    fn fits(&self, value: &str) -> bool {
        value.len() >= self.prefix.len() + self.suffix.len()
            && value.starts_with(&*self.prefix)
            && value.ends_with(&*self.suffix)
    }
}

#[derive(Debug)]
pub(crate) enum Literals {
    Few(Vec<Box<str>>),
    Many(FxHashSet<Box<str>>),
}

/// Above this many literals a hash lookup beats a scan.
const LITERAL_SCAN_MAX: usize = 8;

impl Literals {
    fn new(values: Vec<Box<str>>) -> Literals {
        if values.len() > LITERAL_SCAN_MAX {
            Literals::Many(values.into_iter().collect())
        } else {
            Literals::Few(values)
        }
    }

    pub(crate) fn contains(&self, value: &str) -> bool {
        match self {
            Literals::Few(v) => v.iter().any(|l| **l == *value),
            Literals::Many(set) => set.contains(value),
        }
    }
}

impl RuleSet {
    /// Compiles rules that [`crate::check`] accepted. Patterns were validated there;
    /// one that still fails to compile (it cannot) matches nothing.
    pub fn compile(rules: &[CheckedRule]) -> RuleSet {
        let mut arena = Arena::default();
        let nodes: Vec<(NodeId, Vec<NodeId>)> = rules
            .iter()
            .map(|rule| {
                let condition = arena.add(&rule.condition);
                let exceptions = rule.exceptions.iter().map(|(_, c)| arena.add(c));
                (condition, exceptions.collect())
            })
            .collect();
        // Ancestor bodies' programs come first; the rules' own are the top level.
        let top = arena.programs.ops.len();
        let compiled = rules
            .iter()
            .zip(nodes)
            .map(|(rule, (condition, exceptions))| {
                let proven = proven_by_index(&rule.condition).and_then(|t| arena.existing(t));
                CompiledRule {
                    meta: rule.meta.clone(),
                    condition,
                    program: arena
                        .programs
                        .add_rule(&arena.nodes, condition, &exceptions, proven),
                    exceptions: rule
                        .exceptions
                        .iter()
                        .map(|(name, _)| name.clone())
                        .zip(exceptions)
                        .collect(),
                }
            })
            .collect();
        arena.programs.mark_shared(top);
        RuleSet {
            rules: compiled,
            nodes: arena.nodes,
            tests: arena.tests,
            ops: arena.programs.ops,
            index: RuleIndex::build(rules),
        }
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = RuleId> {
        (0..self.rules.len() as u32).map(RuleId)
    }

    pub fn meta(&self, id: RuleId) -> &RuleMeta {
        &self.rules[id.0 as usize].meta
    }

    /// Appends to `out` every enabled rule that matches `event` (all of them, not only
    /// the first), in rule order. `scratch` is reused across calls to avoid allocating.
    pub fn evaluate<E: crate::Event>(
        &self,
        event: &E,
        scratch: &mut Scratch,
        out: &mut Vec<RuleId>,
    ) {
        scratch.next_event(self.nodes.len());
        let start = out.len();
        let mut try_rules = |rules: &[u32], scratch: &mut Scratch| {
            for &i in rules {
                if eval::run(self, self.rules[i as usize].program, event, 0, scratch) {
                    out.push(RuleId(i));
                }
            }
        };
        try_rules(&self.index.always, scratch);
        for slot in 0..self.index.fields.len() {
            if let Some(rules) = self.index.lookup(slot, event, scratch) {
                try_rules(rules, scratch);
            }
        }
        for (field, matcher, i) in &self.index.by_pattern {
            if eval::text_matches(event, 0, field, matcher, scratch) {
                try_rules(&[*i], scratch);
            }
        }
        let mut selected = std::mem::take(&mut scratch.selected);
        selected.clear();
        self.index.needles.select(event, scratch, &mut selected);
        try_rules(&selected, scratch);
        scratch.selected = selected;
        // Candidates come list by list; the few matches are put in rule order.
        out[start..].sort_unstable();
    }

    /// The name of the first exception of rule `id` that holds for `event`, if any:
    /// why a rule whose condition holds did not fire.
    pub fn exception_hit<E: crate::Event>(
        &self,
        id: RuleId,
        event: &E,
        scratch: &mut Scratch,
    ) -> Option<&str> {
        scratch.next_event(self.nodes.len());
        let rule = &self.rules[id.0 as usize];
        rule.exceptions
            .iter()
            .find(|(_, node)| eval::holds(self, *node, event, 0, scratch))
            .map(|(name, _)| name.as_str())
    }
}

/// Builds the node arena, giving structurally identical conditions one node.
#[derive(Default)]
struct Arena {
    nodes: Vec<Node>,
    tests: Vec<Option<Cond>>,
    programs: Programs,
    seen: FxHashMap<Key, NodeId>,
}

/// A node as the arena tells nodes apart: its kind, its children's ids, a test's data.
/// Children are ids, so building a key costs the node alone, not its whole subtree.
#[derive(PartialEq, Eq, Hash)]
enum Key {
    And(Vec<NodeId>),
    Or(Vec<NodeId>),
    Not(NodeId),
    Exists(FieldRef),
    Flag(FieldRef),
    Text(TextTest),
    Number(NumberTest),
    SameValue(FieldRef, FieldRef),
    Ancestor(u32, u32, NodeId),
}

impl Arena {
    fn add(&mut self, cond: &Cond) -> NodeId {
        self.node(cond, true).expect("adding always gives a node")
    }

    /// The node of a condition already added.
    fn existing(&mut self, cond: &Cond) -> Option<NodeId> {
        self.node(cond, false)
    }

    /// `cond`'s node: the one an identical condition already has, else (when `add`)
    /// a new one; `None` when it has none and `add` is false.
    fn node(&mut self, cond: &Cond, add: bool) -> Option<NodeId> {
        let children = |arena: &mut Arena, items: &[Cond]| -> Option<Vec<NodeId>> {
            items.iter().map(|c| arena.node(c, add)).collect()
        };
        let key = match cond {
            Cond::Or(items) => {
                let merged = merge_alternatives(items);
                if let [single] = merged.as_slice() {
                    return self.node(single, add);
                }
                let ids: Option<Vec<NodeId>> = merged.iter().map(|c| self.node(c, add)).collect();
                Key::Or(ids?)
            }
            Cond::And(items) => Key::And(children(self, items)?),
            Cond::Not(inner) => Key::Not(self.node(inner, add)?),
            Cond::Exists(field) => Key::Exists(*field),
            Cond::Flag(field) => Key::Flag(*field),
            Cond::Text(test) => Key::Text(test.clone()),
            Cond::Number(test) => Key::Number(test.clone()),
            Cond::SameValue(a, b) => Key::SameValue(*a, *b),
            Cond::Ancestor { min, max, body } => Key::Ancestor(*min, *max, self.node(body, add)?),
        };
        if let Some(&id) = self.seen.get(&key) {
            return Some(id);
        }
        if !add {
            return None;
        }
        let node = match &key {
            Key::And(ids) => Node::And(ids.clone()),
            Key::Or(ids) => Node::Or(ids.clone()),
            Key::Not(id) => Node::Not(*id),
            Key::Exists(field) => Node::Exists(*field),
            Key::Flag(field) => Node::Flag(*field),
            Key::Text(test) => Node::Text(test.field, compile_text(test)),
            Key::Number(NumberTest { field, op, values }) => {
                Node::Number(*field, *op, values.clone())
            }
            Key::SameValue(a, b) => Node::SameValue(*a, *b),
            Key::Ancestor(min, max, body) => {
                let Cond::Ancestor { body: inner, .. } = cond else {
                    unreachable!("an ancestor key comes from an ancestor block")
                };
                let at_parent = (*min == 1 && *max == 1)
                    .then(|| at_parent_of(inner))
                    .flatten();
                Node::Ancestor {
                    min: *min,
                    max: *max,
                    body: *body,
                    program: self.programs.add(&self.nodes, *body),
                    at_parent: at_parent.map(|c| self.add(&c)),
                }
            }
        };
        let id = self.nodes.len() as NodeId;
        self.nodes.push(node);
        // Only tests are described (connectives are described by their parts).
        self.tests.push(match &key {
            Key::Exists(_) | Key::Flag(_) | Key::Text(_) | Key::Number(_) | Key::SameValue(..) => {
                Some(cond.clone())
            }
            _ => None,
        });
        self.seen.insert(key, id);
        Some(id)
    }
}

/// `cond` with every field one step further up the ancestry: what `ancestor[1](cond)`
/// tests, when `cond` fails without the parent. Tests of absent fields fail, and so
/// do `and`s and `or`s of them; not a `not` or an empty `and` (which would hold), nor
/// an ancestor block.
fn at_parent_of(cond: &Cond) -> Option<Cond> {
    let up = |f: &FieldRef| FieldRef {
        depth: f.depth + 1,
        ..*f
    };
    let all = |items: &[Cond]| items.iter().map(at_parent_of).collect::<Option<Vec<_>>>();
    Some(match cond {
        Cond::And(items) if !items.is_empty() => Cond::And(all(items)?),
        Cond::Or(items) => Cond::Or(all(items)?),
        Cond::Exists(f) => Cond::Exists(up(f)),
        Cond::Flag(f) => Cond::Flag(up(f)),
        Cond::Text(test) => Cond::Text(TextTest {
            field: up(&test.field),
            ..test.clone()
        }),
        Cond::Number(test) => Cond::Number(NumberTest {
            field: up(&test.field),
            ..test.clone()
        }),
        Cond::SameValue(a, b) => Cond::SameValue(up(a), up(b)),
        Cond::And(_) | Cond::Not(_) | Cond::Ancestor { .. } => return None,
    })
}

/// The items of an `or` with `f == a or f == b` as `f in [a, b]`: one test per field, so a
/// list written as alternatives costs one lookup, and can index its rule. Items that
/// are not merged are borrowed.
fn merge_alternatives(items: &[Cond]) -> Vec<Cow<'_, Cond>> {
    let mut merged: Vec<Cow<'_, Cond>> = Vec::with_capacity(items.len());
    for item in items {
        if let Cond::Text(TextTest {
            field,
            op: TextOp::Equals,
            patterns,
        }) = item
        {
            let same_field = merged.iter().position(
                |m| matches!(&**m, Cond::Text(t) if t.field == *field && t.op == TextOp::Equals),
            );
            if let Some(i) = same_field {
                if let Cond::Text(t) = merged[i].to_mut() {
                    t.patterns.extend(patterns.iter().cloned());
                }
                continue;
            }
        }
        merged.push(Cow::Borrowed(item));
    }
    merged
}

impl RuleIndex {
    fn build(rules: &[CheckedRule]) -> RuleIndex {
        let mut index = RuleIndex::default();
        let mut needled = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            if !rule.meta.enabled {
                continue;
            }
            match requirement(&rule.condition) {
                Some(r) => index.add(r, i as u32),
                None => match needles::needles(&rule.condition) {
                    Some(n) => needled.push((i as u32, n)),
                    None => index.always.push(i as u32),
                },
            }
        }
        index.needles = NeedleIndex::build(needled);
        index
    }

    /// Indexes rule `i` under its literals (one hash lookup selects among many rules)
    /// and apart under its wildcard patterns (a match per rule). Literals a wildcard
    /// matches are left to it, so no value selects the rule twice; with a
    /// case-sensitive wildcard, which could match a value a literal selects without
    /// matching the literal itself, all of them are.
    fn add(&mut self, r: Requirement, i: u32) {
        let (wild, plain): (Vec<Pattern>, Vec<Pattern>) =
            r.patterns.into_iter().partition(|p| has_wildcard(&p.text));
        if wild.is_empty() {
            return self.add_literals(r.field, plain, i);
        }
        let caseless = wild.iter().all(|p| !p.case_sensitive);
        let (literals, wild) = if caseless {
            (plain, wild)
        } else {
            (Vec::new(), [wild, plain].concat())
        };
        let matcher = compile_text(&TextTest {
            field: r.field,
            op: TextOp::Equals,
            patterns: wild,
        });
        let uncovered = literals.into_iter().filter(|p| {
            let literal = eval::fold_case(&unescape(&p.text));
            !matcher.folded.as_ref().is_some_and(|w| w.matches(&literal))
        });
        self.add_literals(r.field, uncovered.collect(), i);
        self.by_pattern.push((r.field, matcher, i));
    }

    /// Indexes rule `i` under the (lowercased) literals `patterns` of `field`.
    fn add_literals(&mut self, field: FieldRef, patterns: Vec<Pattern>, i: u32) {
        if patterns.is_empty() {
            return;
        }
        let slot = match self.fields.iter().position(|f| *f == field) {
            Some(slot) => slot,
            None => {
                self.fields.push(field);
                self.by_value.push(FxHashMap::default());
                self.fields.len() - 1
            }
        };
        for p in patterns {
            let value = eval::fold_case(&unescape(&p.text)).into_boxed_str();
            let rules = self.by_value[slot].entry(value).or_default();
            if rules.last() != Some(&i) {
                rules.push(i);
            }
        }
    }

    /// The rules indexed under `event`'s value of the field `fields[slot]`.
    fn lookup<E: crate::Event>(
        &self,
        slot: usize,
        event: &E,
        scratch: &mut Scratch,
    ) -> Option<&[u32]> {
        let value = eval::lowered_value(event, 0, &self.fields[slot], scratch)?;
        self.by_value[slot].get(value).map(Vec::as_slice)
    }
}

/// A field `cond` can only hold for when its value equals one of `patterns` (as `==`
/// compares, wildcards and all).
struct Requirement<'c> {
    field: FieldRef,
    patterns: Vec<Pattern>,
    /// The one test the requirement is, when it is one (not a union of alternatives).
    test: Option<&'c Cond>,
}

/// What `cond` requires of one field of the new process or its parent, if anything:
/// an `==`/`in` test, in every alternative of an `or`, in some conjunct of an `and`,
/// in an `ancestor[1]` block.
/// Literals are preferred to wildcards (one hash lookup selects among many rules at
/// once; wildcards cost a match per rule), then the new process's own fields (they
/// vary most).
fn requirement(cond: &Cond) -> Option<Requirement<'_>> {
    match cond {
        Cond::Text(TextTest {
            field,
            op: TextOp::Equals,
            patterns,
        }) if field.depth <= 1 => Some(Requirement {
            field: *field,
            patterns: patterns.clone(),
            test: Some(cond),
        }),
        Cond::And(items) => items.iter().filter_map(requirement).min_by_key(|r| {
            let wild = r.patterns.iter().any(|p| has_wildcard(&p.text));
            (wild, r.field.depth)
        }),
        // The parent meets the block: what the block requires of the process it
        // looks at, the parent's field does.
        Cond::Ancestor {
            min: 1,
            max: 1,
            body,
        } => {
            let r = requirement(body).filter(|r| r.field.depth == 0)?;
            Some(Requirement {
                field: FieldRef {
                    depth: 1,
                    ..r.field
                },
                test: None,
                ..r
            })
        }
        Cond::Or(items) => items.iter().map(requirement).reduce(|a, b| {
            let (mut a, b) = (a?, b?);
            (a.field == b.field).then(|| {
                a.patterns.extend(b.patterns);
                a.test = None;
                a
            })
        })?,
        _ => None,
    }
}

/// The test a rule with condition `cond` is indexed by, when the index selecting the
/// rule proves it holds: case-insensitive literals only, compared as the index does.
fn proven_by_index(cond: &Cond) -> Option<&Cond> {
    let r = requirement(cond)?;
    let exact = r
        .patterns
        .iter()
        .all(|p| !p.case_sensitive && !has_wildcard(&p.text));
    r.test.filter(|_| exact)
}

fn compile_text(test: &TextTest) -> TextMatcher {
    let (cased, folded): (Vec<&Pattern>, Vec<&Pattern>) =
        test.patterns.iter().partition(|p| p.case_sensitive);
    TextMatcher {
        folded: compile_patterns(test.op, &folded, true),
        cased: compile_patterns(test.op, &cased, false),
    }
}

fn compile_patterns(op: TextOp, patterns: &[&Pattern], fold: bool) -> Option<Patterns> {
    if patterns.is_empty() {
        return None;
    }
    let fold_text = |s: String| if fold { eval::fold_case(&s) } else { s };
    let literals = || -> Vec<Box<str>> {
        patterns
            .iter()
            .map(|p| fold_text(unescape(&p.text)).into_boxed_str())
            .collect()
    };
    Some(match op {
        TextOp::Equals => {
            let (wild, plain): (Vec<&&Pattern>, Vec<&&Pattern>) =
                patterns.iter().partition(|p| has_wildcard(&p.text));
            let plain = plain
                .iter()
                .map(|p| fold_text(unescape(&p.text)).into_boxed_str())
                .collect();
            let (lone_stars, wild): (Vec<&&Pattern>, Vec<&&Pattern>) =
                wild.into_iter().partition(|p| is_lone_star(&p.text));
            let frames = |patterns: &[&&Pattern]| -> Vec<Frame> {
                patterns
                    .iter()
                    .map(|p| frame(&fold_text(p.text.clone())))
                    .collect()
            };
            let wildcards = (!wild.is_empty()).then(|| {
                let alternation: Vec<String> = wild
                    .iter()
                    .map(|p| wildcard_regex(&fold_text(p.text.clone())))
                    .collect();
                let regex = LazyRegex::new(format!("^(?:{})$", alternation.join("|")), false);
                Box::new((frames(&wild), regex))
            });
            Patterns::Equals {
                literals: Literals::new(plain),
                affixes: frames(&lone_stars),
                wildcards,
            }
        }
        TextOp::StartsWith => Patterns::StartsWith(literals()),
        TextOp::EndsWith => Patterns::EndsWith(literals()),
        TextOp::Contains => Patterns::Contains(Substrings::new(literals())),
        TextOp::Regex => {
            let alternation: Vec<String> =
                patterns.iter().map(|p| format!("(?:{})", p.text)).collect();
            // Regexes match the raw value: the regex engine folds case itself.
            Patterns::Regex(Box::new(LazyRegex::new(alternation.join("|"), fold)))
        }
    })
}

fn build_regex(pattern: &str, case_insensitive: bool) -> Regex {
    RegexBuilder::new(pattern)
        .case_insensitive(case_insensitive)
        .dot_matches_new_line(true)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .unwrap_or_else(|_| Regex::new("[^\\s\\S]").expect("the never-matching regex builds"))
}

/// The checker validates regexes with this limit, so a checked one always compiles.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A pattern's escape sequences: `\*`, `\?` and `\\` stand for the character itself;
/// any other backslash is literal (Windows paths are written as they are). Sigma
/// escapes its values the same way, so the Sigma reader uses this too.
pub fn pieces(text: &str) -> impl Iterator<Item = Piece> + '_ {
    let mut chars = text.chars().peekable();
    std::iter::from_fn(move || {
        let c = chars.next()?;
        Some(match c {
            '\\' => match chars.peek() {
                Some(&next @ ('*' | '?' | '\\')) => {
                    chars.next();
                    Piece::Char(next)
                }
                _ => Piece::Char('\\'),
            },
            '*' => Piece::AnyRun,
            '?' => Piece::AnyOne,
            c => Piece::Char(c),
        })
    })
}

/// A pattern with its escapes resolved: characters and wildcards.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Char(char),
    /// `*`
    AnyRun,
    /// `?`
    AnyOne,
}

impl Piece {
    /// A character, not a wildcard.
    pub fn is_char(&self) -> bool {
        matches!(self, Piece::Char(_))
    }
}

pub(crate) fn has_wildcard(text: &str) -> bool {
    pieces(text).any(|p| !p.is_char())
}

/// The pattern's literal text, wildcards taken as plain characters.
pub(crate) fn unescape(text: &str) -> String {
    pieces(text)
        .map(|p| match p {
            Piece::Char(c) => c,
            Piece::AnyRun => '*',
            Piece::AnyOne => '?',
        })
        .collect()
}

/// Whether the pattern's only wildcard is one `*`.
fn is_lone_star(text: &str) -> bool {
    let mut wildcards = pieces(text).filter(|p| !p.is_char());
    wildcards.next() == Some(Piece::AnyRun) && wildcards.next().is_none()
}

/// The pattern's [`Frame`] (without a wildcard, all of it is the prefix).
fn frame(text: &str) -> Frame {
    let pieces: Vec<Piece> = pieces(text).collect();
    let first = pieces.iter().position(|p| !p.is_char());
    let last = pieces.iter().rposition(|p| !p.is_char()).map(|i| i + 1);
    let (first, last) = (first.unwrap_or(pieces.len()), last.unwrap_or(pieces.len()));
    let literal = |ps: &[Piece]| -> Box<str> {
        ps.iter()
            .filter_map(|p| match p {
                Piece::Char(c) => Some(*c),
                _ => None,
            })
            .collect::<String>()
            .into()
    };
    Frame {
        prefix: literal(&pieces[..first]),
        suffix: literal(&pieces[last..]),
    }
}

fn wildcard_regex(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut buf = [0u8; 4];
    for piece in pieces(text) {
        match piece {
            Piece::Char(c) => out.push_str(&regex::escape(c.encode_utf8(&mut buf))),
            Piece::AnyRun => out.push_str(".*"),
            Piece::AnyOne => out.push('.'),
        }
    }
    out
}

impl Patterns {
    pub(crate) fn matches(&self, value: &str) -> bool {
        match self {
            Patterns::Equals {
                literals,
                affixes,
                wildcards,
            } => {
                literals.contains(value)
                    || affixes.iter().any(|f| f.fits(value))
                    || wildcards.as_ref().is_some_and(|w| {
                        let (frames, re) = &**w;
                        frames.iter().any(|f| f.fits(value)) && re.is_match(value)
                    })
            }
            Patterns::StartsWith(prefixes) => prefixes.iter().any(|p| value.starts_with(&**p)),
            Patterns::EndsWith(suffixes) => suffixes.iter().any(|s| value.ends_with(&**s)),
            Patterns::Contains(needles) => needles.is_in(value),
            Patterns::Regex(re) => re.is_match(value),
        }
    }
}

pub(crate) fn number_matches(op: NumberOp, values: &[u64], value: Option<Value<'_>>) -> bool {
    let Some(Value::Number(n)) = value else {
        return false;
    };
    values.iter().any(|&v| match op {
        NumberOp::Eq => n == v,
        NumberOp::Lt => n < v,
        NumberOp::Le => n <= v,
        NumberOp::Gt => n > v,
        NumberOp::Ge => n >= v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn equals(patterns: &[&str], fold: bool) -> Patterns {
        let owned: Vec<Pattern> = patterns
            .iter()
            .map(|t| Pattern {
                text: t.to_string(),
                case_sensitive: !fold,
            })
            .collect();
        let refs: Vec<&Pattern> = owned.iter().collect();
        compile_patterns(TextOp::Equals, &refs, fold).unwrap()
    }

    #[test]
    fn wildcards_match_the_whole_value() {
        let p = equals(&["tomcat*.exe"], true);
        assert!(p.matches("tomcat9.exe"));
        assert!(p.matches("tomcat8w.exe"));
        assert!(p.matches("tomcat.exe"));
        assert!(!p.matches("tomcat.exe.bak"));
        assert!(!p.matches("mytomcat9.exe"));
        assert!(!p.matches("tomcat"), "prefix and suffix must not overlap");
        let both = equals(&["a*a"], true);
        assert!(both.matches("aa") && both.matches("aba") && !both.matches("a"));
        let q = equals(&["net?.exe"], true);
        assert!(q.matches("net1.exe"));
        assert!(!q.matches("net.exe"));
        assert!(!q.matches("net12.exe"));
        // Patterns the regex decides, each with its own literal start and end.
        let r = equals(&["a?c", "x*y?z", "?", "p\\?*"], true);
        assert!(r.matches("abc") && r.matches("xqyqz") && r.matches("xyyz") && r.matches("é"));
        assert!(r.matches("p?") && r.matches("p?q"));
        assert!(!r.matches("abd") && !r.matches("xyz") && !r.matches("") && !r.matches("pq"));
    }

    #[test]
    fn escaped_wildcards_are_literal() {
        let p = equals(&[r"a\*b"], true);
        assert!(p.matches("a*b"));
        assert!(!p.matches("axxb"));
        let q = equals(&[r"what\?"], true);
        assert!(q.matches("what?"));
        assert!(!q.matches("whatx"));
        // `\\` before a wildcard is one literal backslash, the wildcard stays live.
        let r = equals(&[r"c:\\*"], true);
        assert!(r.matches(r"c:\windows"));
        // Any other backslash is literal, as Windows paths are written.
        let s = equals(&[r"c:\windows\system32\cmd.exe"], true);
        assert!(s.matches(r"c:\windows\system32\cmd.exe"));
    }

    #[test]
    fn folded_patterns_are_lowercased_once_at_compile_time() {
        let p = equals(&["W3WP.EXE"], true);
        assert!(p.matches("w3wp.exe"));
        let cased = equals(&["W3WP.EXE"], false);
        assert!(!cased.matches("w3wp.exe"));
        assert!(cased.matches("W3WP.EXE"));
    }

    #[test]
    fn regexes_and_automata_are_built_when_first_needed() {
        let pattern = |text: &str| Pattern {
            text: text.into(),
            case_sensitive: false,
        };
        let regex = compile_patterns(TextOp::Regex, &[&pattern("a.c")], true).unwrap();
        let Patterns::Regex(lazy) = &regex else {
            panic!("{regex:?}")
        };
        assert!(lazy.built.get().is_none(), "compiling builds no regex");
        assert!(regex.matches("xabcx") && !regex.matches("ac"));
        assert!(lazy.built.get().is_some());
        let many: Vec<Pattern> = (0..10).map(|i| pattern(&format!("n{i}x"))).collect();
        let refs: Vec<&Pattern> = many.iter().collect();
        let contains = compile_patterns(TextOp::Contains, &refs, true).unwrap();
        let Patterns::Contains(needles) = &contains else {
            panic!("{contains:?}")
        };
        assert!(needles.automaton.get().is_none());
        assert!(contains.matches("a n9x b") && !contains.matches("n10"));
        assert!(needles.automaton.get().is_some());
        let few = compile_patterns(TextOp::Contains, &refs[..2], true).unwrap();
        assert!(few.matches("_n1x_") && !few.matches("n2x"));
    }

    #[test]
    fn many_literals_use_a_set() {
        let names: Vec<String> = (0..100).map(|i| format!("tool{i}.exe")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let p = equals(&refs, true);
        assert!(matches!(
            p,
            Patterns::Equals {
                literals: Literals::Many(_),
                ..
            }
        ));
        assert!(p.matches("tool99.exe"));
        assert!(!p.matches("tool100.exe"));
    }
}
