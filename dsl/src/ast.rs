//! The syntax tree of rule files, as written: names are not resolved yet.
//! [`crate::parse`] builds it; [`crate::check`] resolves it into [`crate::ir`].

/// A byte range in one source file of the set being loaded.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct Span {
    /// Index of the file in the slice of [`crate::Source`]s given to the loader.
    pub file: usize,
    pub start: usize,
    pub end: usize,
}

/// A name with where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct File {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    List(ListDef),
    Macro(MacroDef),
    Rule(RuleDef),
    /// `except RULE-ID "name": condition` outside the rule it extends.
    Exception(ExceptionDef),
}

/// `list web_servers = ["w3wp.exe", "httpd.exe", other_list]`
#[derive(Clone, Debug, PartialEq)]
pub struct ListDef {
    pub name: Ident,
    pub items: Vec<ListItem>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ListItem {
    Value(Literal),
    /// The name of another list, whose items are spliced in.
    ListRef(Ident),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Literal {
    pub kind: LiteralKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum LiteralKind {
    /// The text between the quotes with `\"` turned into `"`; every other backslash is
    /// kept as written (wildcard escapes are the compiler's business).
    /// `case_sensitive` is the `c"..."` form.
    Str {
        text: String,
        case_sensitive: bool,
    },
    Number(u64),
}

/// `macro from_web_server = parent_exe in web_servers`
#[derive(Clone, Debug, PartialEq)]
pub struct MacroDef {
    pub name: Ident,
    pub body: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, Copy)]
pub enum Severity {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Informational,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Severity::Informational => "informational",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn from_name(name: &str) -> Option<Severity> {
        Severity::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }
}

/// `rule CAR-2021-02-001 { title: "..." ... condition: ... except "...": ... }`
#[derive(Clone, Debug, PartialEq)]
pub struct RuleDef {
    pub id: Ident,
    pub title: Option<String>,
    pub description: Option<String>,
    pub severity: Option<(Severity, Span)>,
    pub attack: Vec<Ident>,
    pub references: Vec<String>,
    pub enabled: bool,
    pub condition: Option<Expr>,
    pub exceptions: Vec<Exception>,
    /// From `rule` to the closing brace.
    pub span: Span,
}

/// A named allow-list condition: the rule does not fire on an event that matches it.
#[derive(Clone, Debug, PartialEq)]
pub struct Exception {
    pub name: String,
    pub condition: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ExceptionDef {
    pub rule: Ident,
    pub exception: Exception,
}

/// Which ancestors a quantifier ranges over: `[2]` is `min = max = 2`, `[..3]` is
/// `1..=3`, `[2..4]` is `2..=4`; no brackets is `1..=DEFAULT_ANCESTOR_DEPTH`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct DepthRange {
    pub min: u32,
    pub max: u32,
}

/// How far `ancestor` without brackets looks up the tree.
pub const DEFAULT_ANCESTOR_DEPTH: u32 = 8;
/// The deepest depth a rule may name; deeper is a diagnostic.
pub const MAX_ANCESTOR_DEPTH: u32 = 32;

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>, Span),
    /// A bare name: a macro.
    Macro(Ident),
    Compare(Compare),
    /// `field exists`
    Exists(FieldPath),
    /// `ancestor[..3](exe == "w3wp.exe" and user == "x")`: some ancestor in range
    /// satisfies the whole body; field names inside refer to that ancestor.
    Ancestor {
        range: DepthRange,
        body: Box<Expr>,
        span: Span,
    },
}

/// A field as written: `exe`, `parent_exe`, `ancestor[2].exe`, `ancestor.exe`.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldPath {
    pub name: Ident,
    /// `Some` for the `ancestor...` forms.
    pub ancestor: Option<DepthRange>,
    /// The whole path.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Compare {
    pub field: FieldPath,
    pub op: Op,
    pub op_span: Span,
    pub operand: Operand,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    In,
    StartsWith,
    EndsWith,
    Contains,
    Regex,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::In => "in",
            Op::StartsWith => "startswith",
            Op::EndsWith => "endswith",
            Op::Contains => "contains",
            Op::Regex => "regex",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    Literal(Literal),
    /// `["a", "b", some_list]` or `("a", "b")`
    List(Vec<ListItem>, Span),
    /// The name of a list.
    ListRef(Ident),
}
