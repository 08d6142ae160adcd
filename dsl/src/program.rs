//! Conditions as flat programs: every test of a condition is one op that names the op to
//! run next when it holds and when it does not, so `and`, `or` and `not` become jumps
//! and evaluating a rule is a loop over its tests rather than a recursive walk.

use crate::compile::{Node, NodeId};

/// One test and where to go after it.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Op {
    /// A test or an ancestor block; never a connective.
    pub(crate) node: NodeId,
    pub(crate) if_true: u32,
    pub(crate) if_false: u32,
    /// The node is tested by more than one op at the top level, so its result is worth
    /// remembering for the event.
    pub(crate) shared: bool,
}

/// Jump targets past every op: the program's verdict.
pub(crate) const HOLDS: u32 = u32::MAX;
pub(crate) const FAILS: u32 = u32::MAX - 1;

/// The ops of every program of a rule set, one after another.
#[derive(Debug, Default)]
pub(crate) struct Programs {
    pub(crate) ops: Vec<Op>,
}

impl Programs {
    /// Appends the program that holds when `node` holds; returns its entry.
    pub(crate) fn add(&mut self, nodes: &[Node], node: NodeId) -> u32 {
        self.append(Emitter::new(nodes, None), |e| e.node(node, HOLDS, FAILS))
    }

    /// Appends the program that holds when `condition` holds and none of `exceptions`
    /// does, for events that reach it only when test `given` holds (see
    /// [`crate::compile::RuleIndex`]): `given` is not run again. Returns its entry.
    pub(crate) fn add_rule(
        &mut self,
        nodes: &[Node],
        condition: NodeId,
        exceptions: &[NodeId],
        given: Option<NodeId>,
    ) -> u32 {
        self.append(Emitter::new(nodes, given), |e| {
            let after = exceptions
                .iter()
                .rev()
                .fold(HOLDS, |next, &x| e.node(x, FAILS, next));
            e.node(condition, after, FAILS)
        })
    }

    /// Marks the ops from `start` on whose node another op from `start` on also tests.
    pub(crate) fn mark_shared(&mut self, start: usize) {
        let mut uses = rustc_hash::FxHashMap::<NodeId, u32>::default();
        for op in &self.ops[start..] {
            *uses.entry(op.node).or_default() += 1;
        }
        for op in &mut self.ops[start..] {
            op.shared = uses[&op.node] > 1;
        }
    }

    /// Runs `build`, which emits ops last first with targets local to the emitter and
    /// returns the entry, then appends them first first with targets made absolute.
    /// (Emitting backwards lets every op know its successors when it is created.)
    fn append(&mut self, mut e: Emitter, build: impl FnOnce(&mut Emitter) -> u32) -> u32 {
        let entry = build(&mut e);
        let end = (self.ops.len() + e.rev.len()) as u32;
        let place = |target: u32| {
            if target >= FAILS {
                target
            } else {
                end - 1 - target
            }
        };
        self.ops.extend(e.rev.iter().rev().map(|op| Op {
            if_true: place(op.if_true),
            if_false: place(op.if_false),
            ..*op
        }));
        place(entry)
    }
}

/// Emits one program's ops, last first.
struct Emitter<'a> {
    nodes: &'a [Node],
    /// A test known to hold wherever the program runs.
    given: Option<NodeId>,
    rev: Vec<Op>,
}

impl<'a> Emitter<'a> {
    fn new(nodes: &'a [Node], given: Option<NodeId>) -> Emitter<'a> {
        Emitter {
            nodes,
            given,
            rev: Vec::new(),
        }
    }

    /// Emits the ops of `node` going to `on_true` or `on_false`; returns the first op to
    /// run (or a target directly, for an empty `and`/`or` or the given test).
    fn node(&mut self, node: NodeId, on_true: u32, on_false: u32) -> u32 {
        let nodes = self.nodes;
        match &nodes[node as usize] {
            _ if self.given == Some(node) => on_true,
            Node::And(items) => items
                .iter()
                .rev()
                .fold(on_true, |next, &item| self.node(item, next, on_false)),
            Node::Or(items) => items
                .iter()
                .rev()
                .fold(on_false, |next, &item| self.node(item, on_true, next)),
            Node::Not(inner) => self.node(*inner, on_false, on_true),
            Node::Ancestor {
                at_parent: Some(up),
                ..
            } => self.node(*up, on_true, on_false),
            _ => {
                self.rev.push(Op {
                    node,
                    if_true: on_true,
                    if_false: on_false,
                    shared: false,
                });
                (self.rev.len() - 1) as u32
            }
        }
    }
}
