//! Evaluates compiled conditions against one event.

use crate::ast::MAX_ANCESTOR_DEPTH;
use crate::compile::{number_matches, Node, NodeId, RuleSet, TextMatcher};
use crate::field::{Event, Field, FieldRef, Value};
use crate::program::HOLDS;

/// Per-worker buffers reused across events, so evaluation does not allocate: each text
/// field's lowercased value (computed at most once per event and field, however many
/// rules test it) and each node's result (a sub-condition shared by several rules is
/// evaluated once per event).
#[derive(Debug)]
pub struct Scratch {
    event: u32,
    slots: Vec<Slot>,
    overflow: String,
    /// Per node: `event << 1 | result` once known for the current event.
    memo: Vec<u32>,
    /// The rules the index's needles selected for the current event.
    pub(crate) selected: Vec<u32>,
}

#[derive(Debug, Default)]
struct Slot {
    event: u32,
    /// The value is its own lowercase (most executable names are): `text` is unused.
    as_is: bool,
    text: String,
}

/// Depths with a cached slot; deeper (nested ancestor blocks) lowercases uncached.
const CACHED_DEPTHS: usize = 2 * MAX_ANCESTOR_DEPTH as usize + 2;

impl Default for Scratch {
    fn default() -> Scratch {
        Scratch {
            event: 0,
            slots: (0..CACHED_DEPTHS * Field::ALL.len())
                .map(|_| Slot::default())
                .collect(),
            overflow: String::new(),
            memo: Vec::new(),
            selected: Vec::new(),
        }
    }
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch::default()
    }

    /// Forgets the previous event's values and results.
    pub(crate) fn next_event(&mut self, nodes: usize) {
        self.event = self.event.wrapping_add(1) & (u32::MAX >> 1);
        if self.event == 0 {
            // Wrapped: stale stamps could equal new ones; start clean.
            self.memo.iter_mut().for_each(|m| *m = 0);
            self.slots.iter_mut().for_each(|s| s.event = 0);
            self.event = 1;
        }
        if self.memo.len() < nodes {
            self.memo.resize(nodes, 0);
        }
    }

    /// `raw` lowercased, cached for this event under (depth, field).
    fn lowered<'a>(&'a mut self, depth: u32, field: Field, raw: &'a str) -> &'a str {
        let index = depth as usize * Field::ALL.len() + field.index();
        let event = self.event;
        let Some(slot) = self.slots.get_mut(index) else {
            lowercase_into(raw, &mut self.overflow);
            return &self.overflow;
        };
        if slot.event != event {
            slot.event = event;
            slot.as_is = is_lowercase_ascii(raw);
            if !slot.as_is {
                lowercase_into(raw, &mut slot.text);
            }
        }
        if slot.as_is {
            raw
        } else {
            &slot.text
        }
    }

    fn memo(&self, node: NodeId) -> Option<bool> {
        let m = self.memo[node as usize];
        (m >> 1 == self.event).then_some(m & 1 == 1)
    }

    fn remember(&mut self, node: NodeId, result: bool) {
        self.memo[node as usize] = self.event << 1 | result as u32;
    }
}

/// `raw` lowercased one character at a time, the one case folding rules and values both
/// get. (`str::to_lowercase` turns a word-final `Σ` into `ς`, which would keep a
/// pattern from ever equalling the same text in an event.)
pub(crate) fn fold_case(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    lowercase_into(raw, &mut out);
    out
}

/// Whether `raw` is ASCII without capitals: what lowercasing leaves as it is, found
/// in one pass that costs less than a copy (without early exits, which cost more than
/// they save on short values).
fn is_lowercase_ascii(raw: &str) -> bool {
    raw.bytes()
        .fold(true, |ok, b| ok & b.is_ascii() & !b.is_ascii_uppercase())
}

fn lowercase_into(raw: &str, out: &mut String) {
    out.clear();
    if raw.is_ascii() {
        out.push_str(raw);
        out.make_ascii_lowercase();
    } else {
        out.extend(raw.chars().flat_map(char::to_lowercase));
    }
}

/// Runs the program at `entry` with the process `base` steps up the ancestry as the
/// current one: whether it holds.
pub(crate) fn run<E: Event>(
    set: &RuleSet,
    entry: u32,
    event: &E,
    base: u32,
    scratch: &mut Scratch,
) -> bool {
    let mut at = entry;
    // The verdicts are past the last op.
    while let Some(op) = set.ops.get(at as usize) {
        // Only rules' own programs, run at base 0, have shared ops (see Programs).
        let held = if op.shared {
            remembered(set, op.node, event, scratch)
        } else {
            test(set, op.node, event, base, scratch)
        };
        at = if held { op.if_true } else { op.if_false };
    }
    at == HOLDS
}

/// Whether node `id` holds with the process `base` steps up the ancestry as the current
/// one. Results at the new process itself (`base` 0) are remembered for the event.
pub(crate) fn holds<E: Event>(
    set: &RuleSet,
    id: NodeId,
    event: &E,
    base: u32,
    scratch: &mut Scratch,
) -> bool {
    if base == 0 {
        remembered(set, id, event, scratch)
    } else {
        test(set, id, event, base, scratch)
    }
}

/// Node `id`'s result at the new process, computed once per event.
fn remembered<E: Event>(set: &RuleSet, id: NodeId, event: &E, scratch: &mut Scratch) -> bool {
    if let Some(known) = scratch.memo(id) {
        return known;
    }
    let result = test(set, id, event, 0, scratch);
    scratch.remember(id, result);
    result
}

/// Evaluates node `id` (see [`holds`]) without consulting the memo for `id` itself.
fn test<E: Event>(set: &RuleSet, id: NodeId, event: &E, base: u32, scratch: &mut Scratch) -> bool {
    match &set.nodes[id as usize] {
        Node::And(items) => items.iter().all(|&n| holds(set, n, event, base, scratch)),
        Node::Or(items) => items.iter().any(|&n| holds(set, n, event, base, scratch)),
        Node::Not(inner) => !holds(set, *inner, event, base, scratch),
        Node::Exists(f) => value(event, base, f).is_some(),
        Node::Flag(f) => value(event, base, f) == Some(Value::Flag(true)),
        Node::Number(f, op, values) => number_matches(*op, values, value(event, base, f)),
        Node::Text(f, matcher) => text_matches(event, base, f, matcher, scratch),
        Node::SameValue(a, b) => same_value(value(event, base, a), value(event, base, b)),
        Node::Ancestor {
            min, max, program, ..
        } => {
            let known = event.ancestor_count().saturating_sub(base);
            (*min..=(*max).min(known)).any(|d| run(set, *program, event, base + d, scratch))
        }
    }
}

/// Whether text field `f`, with the process `base` steps up as the current one, has a
/// value and it matches.
pub(crate) fn text_matches<E: Event>(
    event: &E,
    base: u32,
    f: &FieldRef,
    matcher: &TextMatcher,
    scratch: &mut Scratch,
) -> bool {
    let Some(Value::Text(raw)) = value(event, base, f) else {
        return false;
    };
    matcher.cased.as_ref().is_some_and(|p| p.matches(raw))
        || matcher
            .folded
            .as_ref()
            .is_some_and(|p| p.matches(scratch.lowered(base + f.depth, f.field, raw)))
}

/// Both present and equal; text without regard to case.
fn same_value(a: Option<Value<'_>>, b: Option<Value<'_>>) -> bool {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x == y,
        (Some(Value::Flag(x)), Some(Value::Flag(y))) => x == y,
        (Some(Value::Text(x)), Some(Value::Text(y))) if x.is_ascii() && y.is_ascii() => {
            x.eq_ignore_ascii_case(y)
        }
        (Some(Value::Text(x)), Some(Value::Text(y))) => fold_case(x) == fold_case(y),
        _ => false,
    }
}

/// The field's text value lowercased (cached for the event), if it has one.
pub(crate) fn lowered_value<'a, E: Event>(
    event: &'a E,
    base: u32,
    f: &FieldRef,
    scratch: &'a mut Scratch,
) -> Option<&'a str> {
    match value(event, base, f) {
        Some(Value::Text(raw)) => Some(scratch.lowered(base + f.depth, f.field, raw)),
        _ => None,
    }
}

/// The field's value with the process `base` steps up as the current one; `None` past
/// the known ancestry.
pub(crate) fn value<'e, E: Event>(event: &'e E, base: u32, f: &FieldRef) -> Option<Value<'e>> {
    let depth = base + f.depth;
    if depth > event.ancestor_count() {
        return None;
    }
    event.value(depth, f.field)
}
