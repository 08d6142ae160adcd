//! Why a rule did or did not match an event: each part of its condition with its result
//! and the values it looked at. For `spawnwatch test` failures and `replay --explain`.

use crate::compile::{Node, NodeId, RuleId, RuleSet};
use crate::eval::{self, Scratch};
use crate::field::{Event, FieldRef, Value};
use crate::ir::{Cond, NumberOp, TextOp};

/// One part of a condition, indented by nesting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub indent: usize,
    /// The test or connective as a rule author would write it.
    pub text: String,
    /// The value the test looked at (`None` for connectives; `"<absent>"` when the
    /// event has no value).
    pub value: Option<String>,
    pub held: bool,
}

impl Step {
    pub fn render(&self) -> String {
        let mark = if self.held { "yes" } else { "no " };
        let value = self
            .value
            .as_ref()
            .map(|v| format!("   [{v}]"))
            .unwrap_or_default();
        format!(
            "{mark} {:indent$}{}{value}",
            "",
            self.text,
            indent = self.indent * 2
        )
    }
}

/// How `rule` fared on `event`: the condition, then each exception.
pub fn explain<E: Event>(
    set: &RuleSet,
    rule: RuleId,
    event: &E,
    scratch: &mut Scratch,
) -> Vec<Step> {
    scratch.next_event(set.nodes.len());
    let rule = &set.rules[rule.0 as usize];
    let mut steps = Vec::new();
    walk(set, rule.condition, event, 0, 0, scratch, &mut steps);
    for (name, node) in &rule.exceptions {
        let held = eval::holds(set, *node, event, 0, scratch);
        steps.push(Step {
            indent: 0,
            text: format!("except \"{name}\""),
            value: None,
            held,
        });
        walk(set, *node, event, 0, 1, scratch, &mut steps);
    }
    steps
}

/// How far up the ancestry a match of `rule` on `event` reaches: the deepest process a
/// held part of its condition is about. A field is about the process it names
/// (`parent_exe`: 1 step up), an `ancestor[..](...)` block about the nearest ancestor
/// it held for (what the block says of that ancestor's own relatives does not count);
/// 0 when the condition looked at the process alone, or did not hold. Negated parts
/// and exceptions count for nothing: what did not hold locates no process.
///
/// The shipped rules name the web server as the topmost process they test, so this is
/// where an alert's web server is (the sensor groups alerts into incidents by it).
pub fn anchor<E: Event>(set: &RuleSet, rule: RuleId, event: &E, scratch: &mut Scratch) -> u32 {
    scratch.next_event(set.nodes.len());
    let condition = set.rules[rule.0 as usize].condition;
    reach(set, condition, event, scratch).unwrap_or(0)
}

/// The deepest process the held parts of node `id` are about; `None` when it did not
/// hold.
fn reach<E: Event>(set: &RuleSet, id: NodeId, event: &E, scratch: &mut Scratch) -> Option<u32> {
    if !eval::holds(set, id, event, 0, scratch) {
        return None;
    }
    Some(match &set.nodes[id as usize] {
        Node::And(items) | Node::Or(items) => items
            .iter()
            .filter_map(|&child| reach(set, child, event, scratch))
            .max()
            .unwrap_or(0),
        Node::Not(_) => 0,
        Node::Ancestor { min, max, body, .. } => (*min..=(*max).min(event.ancestor_count()))
            .find(|&d| eval::holds(set, *body, event, d, scratch))
            .unwrap_or(0),
        Node::SameValue(a, b) => a.depth.max(b.depth),
        Node::Exists(f) | Node::Flag(f) | Node::Text(f, _) | Node::Number(f, _, _) => f.depth,
    })
}

fn walk<E: Event>(
    set: &RuleSet,
    id: NodeId,
    event: &E,
    base: u32,
    indent: usize,
    scratch: &mut Scratch,
    out: &mut Vec<Step>,
) {
    let held = eval::holds(set, id, event, base, scratch);
    let connective = |text: &str| Step {
        indent,
        text: text.to_string(),
        value: None,
        held,
    };
    match &set.nodes[id as usize] {
        Node::And(items) | Node::Or(items) => {
            let all = matches!(set.nodes[id as usize], Node::And(_));
            out.push(connective(if all { "all of" } else { "any of" }));
            for &child in items {
                walk(set, child, event, base, indent + 1, scratch, out);
            }
        }
        Node::Not(inner) => {
            out.push(connective("not"));
            walk(set, *inner, event, base, indent + 1, scratch, out);
        }
        Node::Ancestor { min, max, body, .. } => {
            out.push(connective(&format!("some ancestor [{min}..{max}] with")));
            let known = event.ancestor_count().saturating_sub(base);
            for d in *min..=(*max).min(known) {
                let exe = display(event.value(base + d, crate::Field::Exe));
                out.push(Step {
                    indent: indent + 1,
                    text: format!("ancestor {d}"),
                    value: Some(exe),
                    held: eval::holds(set, *body, event, base + d, scratch),
                });
                walk(set, *body, event, base + d, indent + 2, scratch, out);
            }
        }
        Node::SameValue(a, b) => {
            let shown = |f: &FieldRef| display(eval::value(event, base, f));
            let value = format!("{} vs {}", shown(a), shown(b));
            out.push(Step {
                indent,
                text: described(set, id),
                value: Some(value),
                held,
            });
        }
        Node::Exists(f) | Node::Flag(f) | Node::Text(f, _) | Node::Number(f, _, _) => {
            let value = eval::value(event, base, f);
            out.push(Step {
                indent,
                text: described(set, id),
                value: Some(display(value)),
                held,
            });
        }
    }
}

fn display(value: Option<Value<'_>>) -> String {
    match value {
        Some(Value::Text(s)) => format!("{s:?}"),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Flag(yes)) => yes.to_string(),
        None => "<absent>".to_string(),
    }
}

/// A test as a rule author would write it (leaves only; connectives get "").
/// Node `id`'s test as written.
fn described(set: &RuleSet, id: NodeId) -> String {
    set.tests[id as usize]
        .as_ref()
        .map(describe)
        .unwrap_or_default()
}

pub(crate) fn describe(cond: &Cond) -> String {
    match cond {
        Cond::Exists(f) => format!("{} exists", field_name(f)),
        Cond::Flag(f) => field_name(f),
        Cond::SameValue(a, b) => format!("{} == {}", field_name(a), field_name(b)),
        Cond::Text(t) => {
            let op = match t.op {
                TextOp::Equals if t.patterns.len() == 1 => "==",
                TextOp::Equals => "in",
                TextOp::StartsWith => "startswith",
                TextOp::EndsWith => "endswith",
                TextOp::Contains => "contains",
                TextOp::Regex => "regex",
            };
            let values: Vec<String> = t
                .patterns
                .iter()
                .map(|p| format!("{}{:?}", if p.case_sensitive { "c" } else { "" }, p.text))
                .collect();
            let values = if values.len() == 1 {
                values[0].clone()
            } else {
                format!("[{}]", values.join(", "))
            };
            format!("{} {op} {values}", field_name(&t.field))
        }
        Cond::Number(n) => {
            let op = match n.op {
                NumberOp::Eq if n.values.len() == 1 => "==",
                NumberOp::Eq => "in",
                NumberOp::Lt => "<",
                NumberOp::Le => "<=",
                NumberOp::Gt => ">",
                NumberOp::Ge => ">=",
            };
            let values: Vec<String> = n.values.iter().map(u64::to_string).collect();
            let values = if values.len() == 1 {
                values[0].clone()
            } else {
                format!("[{}]", values.join(", "))
            };
            format!("{} {op} {values}", field_name(&n.field))
        }
        _ => String::new(),
    }
}

/// `exe`, `parent_exe`, `ancestor[3].exe`.
fn field_name(f: &FieldRef) -> String {
    match f.depth {
        0 => f.field.name().to_string(),
        1 => format!("parent_{}", f.field.name()),
        d => format!("ancestor[{d}].{}", f.field.name()),
    }
}
