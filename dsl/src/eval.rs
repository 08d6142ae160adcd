//! Evaluates compiled conditions against one event.

use crate::ast::MAX_ANCESTOR_DEPTH;
use crate::compile::{number_matches, CompiledRule, Node};
use crate::field::{Event, Field, FieldRef, Value};

/// Per-worker buffers reused across events: each text field's lowercased value,
/// computed at most once per event and field however many rules test it.
#[derive(Debug)]
pub struct Scratch {
    event: u64,
    slots: Vec<Slot>,
    overflow: String,
}

#[derive(Debug, Default)]
struct Slot {
    event: u64,
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
        }
    }
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch::default()
    }

    pub(crate) fn next_event(&mut self) {
        self.event += 1;
    }

    /// `raw` lowercased, cached for this event under (depth, field).
    fn lowered(&mut self, depth: u32, field: Field, raw: &str) -> &str {
        let index = depth as usize * Field::ALL.len() + field.index();
        let event = self.event;
        let Some(slot) = self.slots.get_mut(index) else {
            lowercase_into(raw, &mut self.overflow);
            return &self.overflow;
        };
        if slot.event != event {
            slot.event = event;
            lowercase_into(raw, &mut slot.text);
        }
        &slot.text
    }
}

fn lowercase_into(raw: &str, out: &mut String) {
    out.clear();
    if raw.is_ascii() {
        out.extend(raw.chars().map(|c| c.to_ascii_lowercase()));
    } else {
        out.extend(raw.chars().flat_map(char::to_lowercase));
    }
}

pub(crate) fn rule_matches<E: Event>(
    rule: &CompiledRule,
    event: &E,
    scratch: &mut Scratch,
) -> bool {
    holds(&rule.condition, event, 0, scratch)
        && !rule
            .exceptions
            .iter()
            .any(|(_, node)| holds(node, event, 0, scratch))
}

/// Whether `node` holds with the process `base` steps up the ancestry as the current one.
pub(crate) fn holds<E: Event>(node: &Node, event: &E, base: u32, scratch: &mut Scratch) -> bool {
    match node {
        Node::And(items) => items.iter().all(|n| holds(n, event, base, scratch)),
        Node::Or(items) => items.iter().any(|n| holds(n, event, base, scratch)),
        Node::Not(inner) => !holds(inner, event, base, scratch),
        Node::Exists(f) => value(event, base, f).is_some(),
        Node::Number(f, op, values) => number_matches(*op, values, value(event, base, f)),
        Node::Text(f, matcher) => {
            let depth = base + f.depth;
            let Some(Value::Text(raw)) = value(event, base, f) else {
                return false;
            };
            if matcher.cased.as_ref().is_some_and(|p| p.matches(raw)) {
                return true;
            }
            match &matcher.folded {
                Some(patterns) => patterns.matches(scratch.lowered(depth, f.field, raw)),
                None => false,
            }
        }
        Node::Ancestor { min, max, body } => {
            let known = event.ancestor_count().saturating_sub(base);
            (*min..=(*max).min(known)).any(|d| holds(body, event, base + d, scratch))
        }
    }
}

fn value<'e, E: Event>(event: &'e E, base: u32, f: &FieldRef) -> Option<Value<'e>> {
    let depth = base + f.depth;
    if depth > event.ancestor_count() {
        return None;
    }
    event.value(depth, f.field)
}
