//! Checked rules: names resolved, macros inlined, lists flattened, operators lowered to
//! a few tests. [`crate::check`] produces it from the syntax tree; [`crate::compile`]
//! turns it into matchers. Everything here is known to be valid.

use crate::ast::{Severity, Span};
use crate::field::FieldRef;

#[derive(Clone, Debug, PartialEq)]
pub struct RuleMeta {
    pub id: String,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    /// ATT&CK ids, as written (`T1505.003`).
    pub attack: Vec<String>,
    pub references: Vec<String>,
    pub enabled: bool,
    /// Where the rule was defined.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CheckedRule {
    pub meta: RuleMeta,
    pub condition: Cond,
    /// Named exceptions from the rule itself and from any file that extends it, in load
    /// order. The rule fires when `condition` holds and no exception does.
    pub exceptions: Vec<(String, Cond)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    /// The field has a value.
    Exists(FieldRef),
    /// A yes/no field has a value and it is yes: `listens`.
    Flag(FieldRef),
    Text(TextTest),
    Number(NumberTest),
    /// Both fields have a value and the values are equal (text compared without
    /// regard to case): `exe == parent_exe`, `creator_pid == ppid`.
    SameValue(FieldRef, FieldRef),
    /// Some ancestor between `min` and `max` steps above the current process satisfies
    /// `body`; field depths inside `body` are relative to that ancestor.
    Ancestor {
        min: u32,
        max: u32,
        body: Box<Cond>,
    },
}

/// True when the field is present and matches any of `patterns`. An absent field
/// fails every test (so `exe != "x"` is checked as `exe exists and not exe == "x"`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TextTest {
    pub field: FieldRef,
    pub op: TextOp,
    pub patterns: Vec<Pattern>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum TextOp {
    /// The whole value; `*` and `?` are wildcards, `\*`, `\?` and `\\` their escapes.
    Equals,
    StartsWith,
    EndsWith,
    Contains,
    /// The pattern text is a regular expression (the `regex` crate's syntax), searched
    /// anywhere in the value unless anchored.
    Regex,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pattern {
    /// As written between the quotes (see [`crate::ast::LiteralKind::Str`]).
    pub text: String,
    pub case_sensitive: bool,
}

/// True when the field is present and compares true with any of `values`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NumberTest {
    pub field: FieldRef,
    pub op: NumberOp,
    pub values: Vec<u64>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum NumberOp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}
