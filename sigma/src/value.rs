//! One detection entry, `Field|modifier|...: value(s)`, to a condition, with Sigma's
//! semantics: values matched without regard to case, `*` and `?` wildcards with `\`
//! escapes, a list is any of its values (all of them with `all`), and the modifiers of
//! Sigma's appendix applied in the order written.

use crate::cond::{and, not, or};
use crate::fields;
use crate::yaml::{self, Node, Scalar};
use crate::Problem;
use base64::Engine as _;
use dsl::ast::Span;
// Sigma's escaping (`\*`, `\?`, `\\` are the characters, any other backslash is
// one) is the rule language's own: one reader of it.
use dsl::compile::{pieces, Piece};
use dsl::ir::{Cond, NumberOp, NumberTest, Pattern, TextOp, TextTest};
use dsl::{FieldKind, FieldRef};

/// The pieces as the rule language writes a pattern (`\*`, `\?`, `\\` for the
/// characters), one way only: a lone backslash before an ordinary character stays
/// single (`C:\Windows`); every backslash of a longer run, or before what would make an
/// escape, a quote or the end, is doubled (so the printed rule can hold it).
pub(crate) fn encode(pieces: &[Piece]) -> String {
    let mut out = String::with_capacity(pieces.len() + 2);
    let mut i = 0;
    while i < pieces.len() {
        match pieces[i] {
            Piece::AnyRun => out.push('*'),
            Piece::AnyOne => out.push('?'),
            Piece::Char(c @ ('*' | '?')) => {
                out.push('\\');
                out.push(c);
            }
            Piece::Char('\\') => {
                let run = pieces[i..]
                    .iter()
                    .take_while(|p| **p == Piece::Char('\\'))
                    .count();
                let plain_after = matches!(pieces.get(i + run), Some(Piece::Char(n)) if !matches!(n, '*' | '?' | '"'));
                let each = if run == 1 && plain_after {
                    "\\"
                } else {
                    "\\\\"
                };
                out.push_str(&each.repeat(run));
                i += run;
                continue;
            }
            Piece::Char(c) => out.push(c),
        }
        i += 1;
    }
    out
}

/// What a pattern asks of a whole value, once `contains` and the like have added their
/// wildcards: the simplest test that means it. `*x*` is `contains`, `x*` `startswith`,
/// `*x` `endswith` (when `x` has no wildcard of its own); `*` alone only asks for a value,
/// and the empty string is no value (spawnwatch keeps empty fields as absent).
fn text_cond(field: FieldRef, pieces: &[Piece], case_sensitive: bool) -> Cond {
    let lead = pieces.iter().take_while(|p| **p == Piece::AnyRun).count();
    let trail = pieces[lead..]
        .iter()
        .rev()
        .take_while(|p| **p == Piece::AnyRun)
        .count();
    let inner = &pieces[lead..pieces.len() - trail];
    let (op, text) = if inner.iter().any(|p| !p.is_char()) {
        (TextOp::Equals, encode(pieces))
    } else if inner.is_empty() {
        return if lead + trail > 0 {
            Cond::Exists(field)
        } else {
            not(Cond::Exists(field))
        };
    } else {
        let op = match (lead > 0, trail > 0) {
            (true, true) => TextOp::Contains,
            (true, false) => TextOp::EndsWith,
            (false, true) => TextOp::StartsWith,
            (false, false) => TextOp::Equals,
        };
        (op, encode(inner))
    };
    Cond::Text(TextTest {
        field,
        op,
        patterns: vec![Pattern {
            text,
            case_sensitive,
        }],
    })
}

/// How a value is compared.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Op {
    Equals,
    Contains,
    StartsWith,
    EndsWith,
    Regex,
    Exists,
    FieldRef,
    Compare(NumberOp),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Transform {
    Windash,
    Base64,
    Base64Offset,
    Utf16Le,
    Utf16Be,
    Utf16,
}

/// The modifiers spawnwatch runs, to suggest one for a misspelt name.
const MODIFIERS: [&str; 23] = [
    "contains",
    "startswith",
    "endswith",
    "all",
    "re",
    "windash",
    "base64",
    "base64offset",
    "utf16le",
    "wide",
    "utf16be",
    "utf16",
    "cased",
    "exists",
    "fieldref",
    "gt",
    "gte",
    "lt",
    "lte",
    "neq",
    "i",
    "m",
    "s",
];

/// `" (did you mean `contains`?)"` for a name one or two edits from a modifier.
fn did_you_mean(name: &str) -> String {
    MODIFIERS
        .iter()
        .map(|m| (strsim::damerau_levenshtein(name, m), m))
        .filter(|(d, m)| *d <= 2 && *d < m.len())
        .min()
        .map(|(_, m)| format!(" (did you mean `{m}`?)"))
        .unwrap_or_default()
}

/// The modifiers of one entry.
#[derive(Debug)]
struct Plan {
    op: Op,
    /// With `re`: `contains`, `startswith` or `endswith` written beside it.
    place: Op,
    all: bool,
    cased: bool,
    neq: bool,
    transforms: Vec<Transform>,
    /// `re`'s `i`, `m`, `s`.
    ignore_case: bool,
    multi_line: bool,
    dot_all: bool,
}

impl Plan {
    fn parse(modifiers: &[&str], at: Span) -> Result<Plan, Problem> {
        let mut op: Option<Op> = None;
        let mut place: Option<Op> = None;
        let mut plan = Plan {
            op: Op::Equals,
            place: Op::Equals,
            all: false,
            cased: false,
            neq: false,
            transforms: Vec::new(),
            ignore_case: false,
            multi_line: false,
            dot_all: false,
        };
        let both = |a: Op, b: &str| {
            Problem::unsupported(
                format!("modifiers `{}` and `{b}` together", op_name(a)),
                format!(
                    "the modifiers `{}` and `{b}` cannot be combined",
                    op_name(a)
                ),
                at,
            )
        };
        for &m in modifiers {
            let (slot, new) = match m {
                "contains" => (&mut place, Op::Contains),
                "startswith" => (&mut place, Op::StartsWith),
                "endswith" => (&mut place, Op::EndsWith),
                "re" => (&mut op, Op::Regex),
                "exists" => (&mut op, Op::Exists),
                "fieldref" => (&mut op, Op::FieldRef),
                "gt" => (&mut op, Op::Compare(NumberOp::Gt)),
                "gte" => (&mut op, Op::Compare(NumberOp::Ge)),
                "lt" => (&mut op, Op::Compare(NumberOp::Lt)),
                "lte" => (&mut op, Op::Compare(NumberOp::Le)),
                _ => {
                    plan.flag(m, at)?;
                    continue;
                }
            };
            if let Some(old) = slot.replace(new) {
                return Err(both(old, m));
            }
        }
        (plan.op, plan.place) = match (op, place) {
            (None, None) => (Op::Equals, Op::Equals),
            (None, Some(p)) => (p, Op::Equals),
            (Some(Op::Regex), p) => (Op::Regex, p.unwrap_or(Op::Equals)),
            (Some(o), None) => (o, Op::Equals),
            (Some(o), Some(p)) => return Err(both(p, op_name(o))),
        };
        let regex_flags = plan.ignore_case || plan.multi_line || plan.dot_all;
        if regex_flags && plan.op != Op::Regex {
            return Err(Problem::invalid(
                "the `i`, `m` and `s` modifiers go with `re` only",
                at,
            ));
        }
        if !plan.transforms.is_empty()
            && !matches!(
                plan.op,
                Op::Equals | Op::Contains | Op::StartsWith | Op::EndsWith
            )
        {
            return Err(Problem::unsupported(
                format!(
                    "modifier `{}` with `{}`",
                    transform_name(plan.transforms[0]),
                    op_name(plan.op)
                ),
                format!(
                    "`{}` changes a string value; it cannot go with `{}`",
                    transform_name(plan.transforms[0]),
                    op_name(plan.op)
                ),
                at,
            ));
        }
        Ok(plan)
    }

    /// A modifier that is not an operation.
    fn flag(&mut self, m: &str, at: Span) -> Result<(), Problem> {
        match m {
            "all" => self.all = true,
            "cased" => self.cased = true,
            "neq" => self.neq = true,
            "windash" => self.transforms.push(Transform::Windash),
            "base64" => self.transforms.push(Transform::Base64),
            "base64offset" => self.transforms.push(Transform::Base64Offset),
            "utf16le" | "wide" => self.transforms.push(Transform::Utf16Le),
            "utf16be" => self.transforms.push(Transform::Utf16Be),
            "utf16" => self.transforms.push(Transform::Utf16),
            "i" => self.ignore_case = true,
            "m" => self.multi_line = true,
            "s" => self.dot_all = true,
            other => {
                return Err(Problem::unsupported(
                    format!("modifier `{other}`"),
                    format!(
                        "the `{other}` modifier is not supported{}",
                        did_you_mean(other)
                    ),
                    at,
                ))
            }
        }
        Ok(())
    }
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Equals => "equals",
        Op::Contains => "contains",
        Op::StartsWith => "startswith",
        Op::EndsWith => "endswith",
        Op::Regex => "re",
        Op::Exists => "exists",
        Op::FieldRef => "fieldref",
        Op::Compare(NumberOp::Gt) => "gt",
        Op::Compare(NumberOp::Ge) => "gte",
        Op::Compare(NumberOp::Lt) => "lt",
        Op::Compare(_) => "lte",
    }
}

fn transform_name(t: Transform) -> &'static str {
    match t {
        Transform::Windash => "windash",
        Transform::Base64 => "base64",
        Transform::Base64Offset => "base64offset",
        Transform::Utf16Le => "utf16le",
        Transform::Utf16Be => "utf16be",
        Transform::Utf16 => "utf16",
    }
}

/// A value on its way through the transforms: text, or the bytes an encoding made.
enum Val {
    Text(Vec<Piece>),
    Bytes(Vec<u8>),
}

/// Where a keyword-less value of a detection is looked for: `Some(field)`, or every
/// field of the event (Sigma's keywords).
pub(crate) enum Target {
    Field(FieldRef),
    Keywords,
}

/// One entry of a search identifier: `key: value` where the key is `Field|modifiers`
/// (or `|modifiers` for keywords) and the value a scalar or a list of them.
pub(crate) fn entry(
    key: &str,
    key_at: Span,
    value: &Node<'_>,
    value_at: Span,
) -> Result<Cond, Problem> {
    let mut parts = key.split('|');
    let name = parts.next().unwrap_or("");
    let modifiers: Vec<&str> = parts.collect();
    let plan = Plan::parse(&modifiers, key_at)?;
    let target = if name.is_empty() {
        Target::Keywords
    } else {
        Target::Field(fields::field(name).ok_or_else(|| {
            Problem::unsupported(
                format!("field `{name}`"),
                format!("`{name}` is not a field of spawnwatch's process events"),
                key_at,
            )
        })?)
    };
    let values = scalars(value, value_at)?;
    values_cond(&target, &plan, &values, key_at)
}

/// Keywords: a scalar or a list of them, without a field.
pub(crate) fn keywords(value: &Node<'_>, at: Span) -> Result<Cond, Problem> {
    let plan = Plan::parse(&[], at)?;
    values_cond(&Target::Keywords, &plan, &scalars(value, at)?, at)
}

fn scalars<'n>(value: &'n Node<'_>, at: Span) -> Result<Vec<Scalar<'n>>, Problem> {
    let not_scalar = || {
        Problem::invalid(
            "a value must be a string, a number, `null` or a list of them",
            at,
        )
    };
    match yaml::sequence(value) {
        Some(items) => items
            .iter()
            .map(|item| yaml::typed(item).ok_or_else(not_scalar))
            .collect(),
        None => Ok(vec![yaml::typed(value).ok_or_else(not_scalar)?]),
    }
}

fn values_cond(
    target: &Target,
    plan: &Plan,
    values: &[Scalar<'_>],
    at: Span,
) -> Result<Cond, Problem> {
    if values.is_empty() {
        return Err(Problem::invalid(
            "an empty list of values matches nothing",
            at,
        ));
    }
    let each = values
        .iter()
        .map(|v| value_cond(target, plan, v, at))
        .collect::<Result<Vec<_>, _>>()?;
    let joined = if plan.all { and(each) } else { or(each) };
    Ok(if plan.neq { not(joined) } else { joined })
}

/// One value (and the variants its transforms make, any of which may match).
fn value_cond(target: &Target, plan: &Plan, value: &Scalar<'_>, at: Span) -> Result<Cond, Problem> {
    let field = match target {
        Target::Field(f) => *f,
        Target::Keywords => {
            let (Scalar::Str(text) | Scalar::Number(text)) = value else {
                return Err(Problem::invalid("a keyword must be a string", at));
            };
            let keyword_plan = Plan {
                op: if plan.op == Op::Equals {
                    Op::Contains
                } else {
                    plan.op
                },
                ..plan.clone_shape()
            };
            return Ok(or(fields::keyword_fields()
                .into_iter()
                .map(|f| value_cond(&Target::Field(f), &keyword_plan, &Scalar::Str(text), at))
                .collect::<Result<Vec<_>, _>>()?));
        }
    };
    if let Scalar::Null = value {
        return match plan.op {
            Op::Equals => Ok(not(Cond::Exists(field))),
            _ => Err(Problem::invalid(
                format!("`null` cannot go with `{}`", op_name(plan.op)),
                at,
            )),
        };
    }
    match plan.op {
        Op::Exists => match value {
            Scalar::Bool(true) => Ok(Cond::Exists(field)),
            Scalar::Bool(false) => Ok(not(Cond::Exists(field))),
            _ => Err(Problem::invalid("`exists` takes `true` or `false`", at)),
        },
        Op::FieldRef => {
            let name = raw(value);
            let other = fields::field(name).ok_or_else(|| {
                Problem::unsupported(
                    format!("field `{name}`"),
                    format!("`{name}` is not a field of spawnwatch's process events"),
                    at,
                )
            })?;
            if other.field.kind() != field.field.kind() {
                return Err(Problem::invalid(
                    "`fieldref` compares fields of one kind",
                    at,
                ));
            }
            Ok(Cond::SameValue(field, other))
        }
        Op::Compare(op) => number_cond(field, op, value, at),
        _ if field.field.kind() == FieldKind::Number => {
            if plan.op != Op::Equals || !plan.transforms.is_empty() {
                return Err(Problem::unsupported(
                    format!("`{}` on a number field", op_name(plan.op)),
                    format!(
                        "`{}` applies to text, and this field holds a number",
                        op_name(plan.op)
                    ),
                    at,
                ));
            }
            number_cond(field, NumberOp::Eq, value, at)
        }
        Op::Regex => regex_cond(field, plan, raw(value), at),
        _ => {
            let variants = transform(plan, Val::Text(pieces(raw(value)).collect()), at)?;
            Ok(or(variants
                .iter()
                .map(|p| text_cond(field, &place(plan.op, p), plan.cased))
                .collect()))
        }
    }
}

impl Plan {
    /// The same plan, for keywords (which have no `neq` or `all` of their own).
    fn clone_shape(&self) -> Plan {
        Plan {
            op: self.op,
            place: self.place,
            all: false,
            cased: self.cased,
            neq: false,
            transforms: self.transforms.clone(),
            ignore_case: self.ignore_case,
            multi_line: self.multi_line,
            dot_all: self.dot_all,
        }
    }
}

/// A scalar's text as written (`0x10`, `true`).
fn raw<'v>(value: &Scalar<'v>) -> &'v str {
    match value {
        Scalar::Str(t) | Scalar::Number(t) => t,
        Scalar::Bool(true) => "true",
        Scalar::Bool(false) => "false",
        Scalar::Null => "",
    }
}

/// The pieces with the wildcards `contains`, `startswith` or `endswith` put around them.
fn place(op: Op, p: &[Piece]) -> Vec<Piece> {
    let mut out = Vec::with_capacity(p.len() + 2);
    if matches!(op, Op::Contains | Op::EndsWith) {
        out.push(Piece::AnyRun);
    }
    out.extend_from_slice(p);
    if matches!(op, Op::Contains | Op::StartsWith) {
        out.push(Piece::AnyRun);
    }
    out
}

fn number_cond(
    field: FieldRef,
    op: NumberOp,
    value: &Scalar<'_>,
    at: Span,
) -> Result<Cond, Problem> {
    if field.field.kind() != FieldKind::Number {
        return Err(Problem::unsupported(
            "a number comparison on a text field",
            "`gt`, `gte`, `lt` and `lte` compare numbers, and this field holds text",
            at,
        ));
    }
    let text = raw(value);
    let number = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse::<u64>().ok(),
    };
    let number =
        number.ok_or_else(|| Problem::invalid(format!("`{text}` is not a whole number"), at))?;
    Ok(Cond::Number(NumberTest {
        field,
        op,
        values: vec![number],
    }))
}

/// The value's variants once the transforms (`windash`, the encodings, base64) have
/// run, in the order written.
fn transform(plan: &Plan, value: Val, at: Span) -> Result<Vec<Vec<Piece>>, Problem> {
    let mut values = vec![value];
    for &t in &plan.transforms {
        let mut next = Vec::with_capacity(values.len());
        for v in values {
            match (t, v) {
                (Transform::Windash, Val::Text(p)) => {
                    next.extend(windash(&p).into_iter().map(Val::Text))
                }
                (Transform::Utf16Le | Transform::Utf16Be | Transform::Utf16, Val::Text(p)) => {
                    next.push(Val::Bytes(utf16(t, &literal(&p, t, at)?)))
                }
                (Transform::Base64, v) => next.push(Val::Text(chars(&base64(&bytes(v, t, at)?)))),
                (Transform::Base64Offset, v) => {
                    let data = bytes(v, t, at)?;
                    next.extend((0..3).map(|i| Val::Text(chars(&base64_offset(&data, i)))))
                }
                (t, Val::Bytes(_)) => {
                    return Err(Problem::unsupported(
                        format!("modifier `{}` after an encoding", transform_name(t)),
                        format!("`{}` cannot follow an encoding modifier", transform_name(t)),
                        at,
                    ))
                }
            }
        }
        values = next;
    }
    values
        .into_iter()
        .map(|v| match v {
            Val::Text(p) => Ok(p),
            Val::Bytes(_) => Err(Problem::unsupported(
                "an encoding without `base64`",
                "UTF-16 values can only be matched base64-encoded: add `base64` or `base64offset`",
                at,
            )),
        })
        .collect()
}

fn chars(text: &str) -> Vec<Piece> {
    text.chars().map(Piece::Char).collect()
}

/// The text of wildcard-free pieces, which an encoding needs.
fn literal(p: &[Piece], t: Transform, at: Span) -> Result<String, Problem> {
    p.iter()
        .map(|p| match p {
            Piece::Char(c) => Ok(*c),
            _ => Err(Problem::invalid(
                format!(
                    "`{}` cannot encode a value with wildcards",
                    transform_name(t)
                ),
                at,
            )),
        })
        .collect()
}

fn bytes(v: Val, t: Transform, at: Span) -> Result<Vec<u8>, Problem> {
    match v {
        Val::Text(p) => Ok(literal(&p, t, at)?.into_bytes()),
        Val::Bytes(b) => Ok(b),
    }
}

fn utf16(t: Transform, text: &str) -> Vec<u8> {
    let units = text.encode_utf16();
    match t {
        Transform::Utf16Be => units.flat_map(u16::to_be_bytes).collect(),
        Transform::Utf16 => [0xFF, 0xFE]
            .into_iter()
            .chain(units.flat_map(u16::to_le_bytes))
            .collect(),
        _ => units.flat_map(u16::to_le_bytes).collect(),
    }
}

fn base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Sigma's `base64offset`: the data after `shift` (0, 1 or 2) bytes, encoded, without
/// the characters that depend on what comes before or after it.
fn base64_offset(data: &[u8], shift: usize) -> String {
    const START: [usize; 3] = [0, 2, 3];
    const END_CUT: [usize; 3] = [0, 3, 2];
    let mut shifted = vec![b' '; shift];
    shifted.extend_from_slice(data);
    let encoded = base64(&shifted);
    let end = encoded.len() - END_CUT[shifted.len() % 3];
    encoded[START[shift].min(end)..end].to_string()
}

/// The dash characters `windash` puts in place of one another.
const DASHES: [char; 5] = ['-', '/', '\u{2013}', '\u{2014}', '\u{2015}'];

/// `windash`: every combination of the dashes at each `-` or `/` that starts an option,
/// which is where pySigma's `\B[-/]\b` matches: not after a word character, before one.
fn windash(p: &[Piece]) -> Vec<Vec<Piece>> {
    let word =
        |p: Option<&Piece>| matches!(p, Some(Piece::Char(c)) if c.is_alphanumeric() || *c == '_');
    let at: Vec<usize> = (0..p.len())
        .filter(|&i| {
            matches!(p[i], Piece::Char('-' | '/'))
                && !word(i.checked_sub(1).and_then(|j| p.get(j)))
                && word(p.get(i + 1))
        })
        .collect();
    let mut variants = vec![p.to_vec()];
    for &i in &at {
        variants = variants
            .into_iter()
            .flat_map(|v| {
                DASHES.map(|d| {
                    let mut v = v.clone();
                    v[i] = Piece::Char(d);
                    v
                })
            })
            .collect();
    }
    variants
}

/// A `re` value as a regex test: the regex crate's syntax, searched anywhere in the
/// value. Sigma's regexes are case-sensitive unless `i`, and `.` does not match a line
/// break unless `s` (spawnwatch's own regexes let it).
fn regex_cond(field: FieldRef, plan: &Plan, written: &str, at: Span) -> Result<Cond, Problem> {
    let mut text = String::new();
    if plan.multi_line {
        text.push_str("(?m)");
    }
    let body = printable_regex(written);
    if plan.dot_all {
        text.push_str("(?s)");
    } else if body.contains('.') {
        text.push_str("(?-s)");
    }
    match plan.place {
        Op::StartsWith => text.push_str(&format!("^(?:{body})")),
        Op::EndsWith => text.push_str(&format!("(?:{body})$")),
        _ => text.push_str(&body),
    }
    if let Err(e) = regex::RegexBuilder::new(&text)
        .case_insensitive(plan.ignore_case)
        .size_limit(dsl::check::REGEX_SIZE_LIMIT)
        .build()
    {
        let why = e.to_string();
        let why = why
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("error: "))
            .unwrap_or(&why);
        return Err(Problem::unsupported(
            "a regex the regex crate cannot run",
            format!("the regex crate cannot run this regex: {why}"),
            at,
        ));
    }
    Ok(Cond::Text(TextTest {
        field,
        op: TextOp::Regex,
        patterns: vec![Pattern {
            text,
            case_sensitive: !plan.ignore_case,
        }],
    }))
}

/// The same regex for the regex crate, in a form a rule file can hold. Sigma's flavour
/// is PCRE's, where `\w`, `\d` and `\s` are ASCII classes; the regex crate's are
/// Unicode's, and `\w{1,64}` alone then compiles past the size limit: so they are
/// spelled out (`[0-9A-Za-z_]`). An escaped quote is a quote, line breaks are `\n`, `\r`.
fn printable_regex(written: &str) -> String {
    let mut out = String::with_capacity(written.len());
    let mut chars = written.chars().peekable();
    // Inside `[...]`, and whether the next char is the class's first (a literal `]`).
    let mut in_class = false;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        let first = std::mem::replace(&mut class_start, false);
        match c {
            '\\' => {
                let Some(next) = chars.next() else {
                    out.push('\\');
                    break;
                };
                match (ascii_class(next), in_class) {
                    (Some((members, negated)), false) => {
                        out.push_str(&format!("[{}{members}]", if negated { "^" } else { "" }));
                    }
                    (Some((members, false)), true) => out.push_str(members),
                    _ if next == '"' => out.push('"'),
                    _ => {
                        out.push('\\');
                        out.push(next);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                class_start = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    out.push(chars.next().expect("peeked"));
                }
            }
            ']' if in_class && !first => {
                in_class = false;
                out.push(']');
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// PCRE's ASCII meaning of `\w`, `\d`, `\s` (and negated, `\W`, `\D`, `\S`): the
/// members of the class and whether it is negated.
fn ascii_class(escape: char) -> Option<(&'static str, bool)> {
    let members = match escape.to_ascii_lowercase() {
        'w' => "0-9A-Za-z_",
        'd' => "0-9",
        's' => r"\t\n\x0B\f\r ",
        _ => return None,
    };
    Some((members, escape.is_ascii_uppercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsl::Field;

    /// The condition of the entry `key: value` (value in YAML).
    fn entry_of(key: &str, value: &str) -> Result<Cond, Problem> {
        let docs = yaml::load(value).unwrap();
        value_entry(key, &docs[0])
    }

    fn value_entry(key: &str, node: &Node<'_>) -> Result<Cond, Problem> {
        entry(key, Span::default(), node, Span::default())
    }

    fn cond(key: &str, value: &str) -> Cond {
        entry_of(key, value).unwrap_or_else(|p| panic!("{key}: {value}: {p:?}"))
    }

    fn f(field: Field) -> FieldRef {
        FieldRef { field, depth: 0 }
    }

    fn test(field: Field, op: TextOp, texts: &[&str]) -> Cond {
        Cond::Text(TextTest {
            field: f(field),
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

    fn patterns(c: &Cond) -> Vec<&str> {
        match c {
            Cond::Text(t) => t.patterns.iter().map(|p| p.text.as_str()).collect(),
            other => panic!("not a text test: {other:?}"),
        }
    }

    #[test]
    fn plain_values_equal_the_whole_value_and_lists_are_alternatives() {
        assert_eq!(
            cond("Image", r"'C:\Windows\cmd.exe'"),
            test(Field::ImagePath, TextOp::Equals, &[r"C:\Windows\cmd.exe"])
        );
        assert_eq!(
            cond("OriginalFileName", "['Cmd.Exe', 'PowerShell.EXE']"),
            test(
                Field::OriginalFileName,
                TextOp::Equals,
                &["Cmd.Exe", "PowerShell.EXE"]
            )
        );
        let parent = cond("ParentImage", r"'\w3wp.exe'");
        let Cond::Text(t) = parent else { panic!() };
        assert_eq!(t.field.depth, 1);
    }

    #[test]
    fn contains_startswith_endswith_place_wildcards() {
        assert_eq!(
            cond("CommandLine|contains", "' -enc '"),
            test(Field::CommandLine, TextOp::Contains, &[" -enc "])
        );
        assert_eq!(
            cond("CommandLine|startswith", "'cmd'"),
            test(Field::CommandLine, TextOp::StartsWith, &["cmd"])
        );
        assert_eq!(
            cond("Image|endswith", r"'\cmd.exe'"),
            test(Field::ImagePath, TextOp::EndsWith, &[r"\cmd.exe"])
        );
        // The old spelling with wildcards means the same.
        assert_eq!(
            cond("Image", r"'*\cmd.exe'"),
            cond("Image|endswith", r"'\cmd.exe'")
        );
        assert_eq!(
            cond("CommandLine", "'*x*'"),
            cond("CommandLine|contains", "'x'")
        );
    }

    #[test]
    fn wildcards_inside_a_value_match_as_wildcards() {
        // The spec's `prog?.exe` and `antivirus_V*.exe`.
        assert_eq!(
            cond("Image", "'prog?.exe'"),
            test(Field::ImagePath, TextOp::Equals, &["prog?.exe"])
        );
        assert_eq!(
            cond("CommandLine|contains", "'/c *.bat'"),
            test(Field::CommandLine, TextOp::Equals, &["*/c *.bat*"])
        );
        assert_eq!(
            cond("Image|contains", "'*'"),
            Cond::Exists(f(Field::ImagePath))
        );
    }

    #[test]
    fn escaping_follows_the_spec() {
        // A plain backslash, single or double, is one backslash.
        assert_eq!(patterns(&cond("CommandLine", r"'a\b'")), [r"a\b"]);
        assert_eq!(patterns(&cond("CommandLine", r"'a\\b'")), [r"a\b"]);
        // `\*` is a plain star: no wildcard, so a whole-value literal.
        assert_eq!(
            cond("CommandLine", r"'100\*'"),
            test(Field::CommandLine, TextOp::Equals, &[r"100\*"])
        );
        // `\\*` is a backslash followed by a wildcard: `endswith` is not it, a prefix is.
        assert_eq!(
            cond("Image", r"'C:\Temp\\*'"),
            test(Field::ImagePath, TextOp::StartsWith, &[r"C:\Temp\\"])
        );
        // `\\\*`: a backslash and a plain star.
        assert_eq!(
            cond("CommandLine", r"'a\\\*'"),
            test(Field::CommandLine, TextOp::Equals, &[r"a\\\*"])
        );
        // Three or four backslashes are two.
        assert_eq!(
            patterns(&cond("CommandLine|contains", r"'\\\\srv'")),
            [r"\\\\srv"]
        );
        assert_eq!(
            patterns(&cond("CommandLine|contains", r"'\\\srv'")),
            [r"\\\\srv"]
        );
        // A trailing backslash is kept, written so that a rule file can hold it.
        assert_eq!(
            patterns(&cond("CurrentDirectory", r"'C:\Windows\'")),
            [r"C:\Windows\\"]
        );
    }

    #[test]
    fn all_makes_a_list_a_conjunction() {
        assert_eq!(
            cond("CommandLine|contains|all", "[' -a', ' -b']"),
            Cond::And(vec![
                test(Field::CommandLine, TextOp::Contains, &[" -a"]),
                test(Field::CommandLine, TextOp::Contains, &[" -b"]),
            ])
        );
    }

    #[test]
    fn case_is_ignored_unless_cased() {
        let Cond::Text(t) = cond("CommandLine|contains|cased", "'AbC'") else {
            panic!()
        };
        assert!(t.patterns[0].case_sensitive);
        let Cond::Text(t) = cond("CommandLine|contains", "'AbC'") else {
            panic!()
        };
        assert!(!t.patterns[0].case_sensitive);
    }

    #[test]
    fn windash_permutes_the_dashes_that_start_an_option() {
        let c = cond("CommandLine|contains|windash", "' -s '");
        assert_eq!(
            patterns(&c),
            [" -s ", " /s ", " \u{2013}s ", " \u{2014}s ", " \u{2015}s "]
        );
        // pySigma's example: in `-param-name` only the first dash starts an option.
        let c = cond("CommandLine|contains|windash", "'-param-name'");
        assert_eq!(patterns(&c).len(), 5);
        assert!(patterns(&c).iter().all(|p| p.ends_with("param-name")));
        // Two options: every combination.
        assert_eq!(
            patterns(&cond("CommandLine|contains|windash", "' -s -i'")).len(),
            25
        );
        // Not an option: a dash inside a word, a dash before no word.
        assert_eq!(
            patterns(&cond("CommandLine|contains|windash", "'a-b x- -'")),
            ["a-b x- -"]
        );
    }

    #[test]
    fn base64_encodes_and_base64offset_gives_the_three_shifts() {
        assert_eq!(
            patterns(&cond("CommandLine|base64|contains", "'cmd'")),
            ["Y21k"]
        );
        // pySigma's test values.
        assert_eq!(
            patterns(&cond("CommandLine|base64offset|contains", "'sigma rules!'")),
            ["c2lnbWEgcnVsZXMh", "NpZ21hIHJ1bGVzI", "zaWdtYSBydWxlcy"]
        );
        assert_eq!(
            patterns(&cond("CommandLine|wide|base64|contains", "'cmd'")),
            ["YwBtAGQA"]
        );
        assert_eq!(
            patterns(&cond(
                "CommandLine|utf16le|base64offset|contains",
                "'Invoke-'"
            )),
            [
                "SQBuAHYAbwBrAGUALQ",
                "kAbgB2AG8AawBlAC0A",
                "JAG4AdgBvAGsAZQAtA"
            ]
        );
        let bare = entry_of("CommandLine|wide|contains", "'cmd'").unwrap_err();
        assert!(bare.unsupported, "{bare:?}");
        assert!(
            entry_of("CommandLine|base64", "'a*'").is_err(),
            "wildcards cannot be encoded"
        );
    }

    #[test]
    fn re_is_a_case_sensitive_search_with_its_flags() {
        let Cond::Text(t) = cond("CommandLine|re", r"'-e(nc)?\b'") else {
            panic!()
        };
        assert_eq!((t.op, t.patterns[0].case_sensitive), (TextOp::Regex, true));
        assert_eq!(t.patterns[0].text, r"-e(nc)?\b");
        let Cond::Text(t) = cond("CommandLine|re|i", "'a.b'") else {
            panic!()
        };
        assert!(!t.patterns[0].case_sensitive);
        assert_eq!(
            t.patterns[0].text, "(?-s)a.b",
            "`.` stops at a line break without `s`"
        );
        let Cond::Text(t) = cond("CommandLine|re|m|s", "'^a.b$'") else {
            panic!()
        };
        assert_eq!(t.patterns[0].text, "(?m)(?s)^a.b$");
        let Cond::Text(t) = cond("CommandLine|re", r#"'say \"x\"'"#) else {
            panic!()
        };
        assert_eq!(
            t.patterns[0].text, r#"say "x""#,
            "an escaped quote is a quote"
        );
        let Cond::Text(t) = cond("CommandLine|re", r"'-k\s\w{1,64}[\w.\]]\D'") else {
            panic!()
        };
        assert_eq!(
            t.patterns[0].text, r"(?-s)-k[\t\n\x0B\f\r ][0-9A-Za-z_]{1,64}[0-9A-Za-z_.\]][^0-9]",
            "PCRE's classes are ASCII; this one compiled past the size limit as Unicode"
        );
        let Cond::Text(t) = cond("CommandLine|re", r"'[]\w]\\w'") else {
            panic!()
        };
        assert_eq!(
            t.patterns[0].text, r"[]0-9A-Za-z_]\\w",
            "`]` first in a class, `\\` before `w`"
        );
        let lookaround = entry_of("CommandLine|re", "'a(?=b)'").unwrap_err();
        assert!(lookaround.unsupported && lookaround.message.contains("look-around"));
        assert_eq!(
            lookaround.message.matches("look-around").count(),
            1,
            "the regex crate's reason, once: {}",
            lookaround.message
        );
        assert!(
            entry_of("CommandLine|i", "'a'").is_err(),
            "`i` goes with `re`"
        );
    }

    #[test]
    fn null_and_empty_mean_no_value() {
        let absent = Cond::Not(Box::new(Cond::Exists(f(Field::CommandLine))));
        assert_eq!(cond("CommandLine", "null"), absent);
        assert_eq!(cond("CommandLine", "''"), absent);
        assert_eq!(
            cond("CommandLine", "['', x]"),
            Cond::Or(vec![
                absent,
                test(Field::CommandLine, TextOp::Equals, &["x"])
            ])
        );
    }

    #[test]
    fn exists_fieldref_and_numbers() {
        assert_eq!(cond("User|exists", "true"), Cond::Exists(f(Field::User)));
        assert_eq!(
            cond("User|exists", "false"),
            Cond::Not(Box::new(Cond::Exists(f(Field::User))))
        );
        assert_eq!(
            cond("User|fieldref", "ParentUser"),
            Cond::SameValue(
                f(Field::User),
                FieldRef {
                    field: Field::User,
                    depth: 1
                }
            )
        );
        let number = |op, v| {
            Cond::Number(NumberTest {
                field: f(Field::Pid),
                op,
                values: vec![v],
            })
        };
        assert_eq!(cond("ProcessId", "4"), number(NumberOp::Eq, 4));
        assert_eq!(cond("ProcessId", "'0x10'"), number(NumberOp::Eq, 16));
        assert_eq!(cond("ProcessId|gt", "100"), number(NumberOp::Gt, 100));
        assert_eq!(cond("ProcessId|gte", "100"), number(NumberOp::Ge, 100));
        assert_eq!(cond("ProcessId|lt", "100"), number(NumberOp::Lt, 100));
        assert_eq!(cond("ProcessId|lte", "100"), number(NumberOp::Le, 100));
        assert!(
            entry_of("ProcessId|contains", "'1'")
                .unwrap_err()
                .unsupported
        );
        assert!(entry_of("CommandLine|gt", "1").unwrap_err().unsupported);
        assert_eq!(
            cond("CommandLine|neq", "x"),
            Cond::Not(Box::new(test(Field::CommandLine, TextOp::Equals, &["x"])))
        );
    }

    #[test]
    fn keywords_search_every_field() {
        let c = keywords(&yaml::load("event::clear").unwrap()[0], Span::default()).unwrap();
        let Cond::Or(items) = c else { panic!("{c:?}") };
        assert_eq!(items.len(), fields::keyword_fields().len());
        assert!(items.contains(&test(
            Field::CommandLine,
            TextOp::Contains,
            &["event::clear"]
        )));
    }

    #[test]
    fn unsupported_modifiers_and_fields_are_named() {
        let p = entry_of("DestinationIp|cidr", "'10.0.0.0/8'").unwrap_err();
        assert!(p.unsupported);
        assert_eq!(p.reason, "modifier `cidr`");
        let p = entry_of("Provider_Name", "'x'").unwrap_err();
        assert_eq!(p.reason, "field `Provider_Name`");
        let p = entry_of("CommandLine|expand", "'%x%'").unwrap_err();
        assert_eq!(p.reason, "modifier `expand`");
        assert_eq!(p.message, "the `expand` modifier is not supported");
    }

    #[test]
    fn a_misspelt_modifier_gets_a_suggestion() {
        let p = entry_of("CommandLine|contans", "'x'").unwrap_err();
        assert_eq!(p.reason, "modifier `contans`");
        assert_eq!(
            p.message,
            "the `contans` modifier is not supported (did you mean `contains`?)"
        );
        let p = entry_of("CommandLine|endwith", "'x'").unwrap_err();
        assert!(
            p.message.ends_with("(did you mean `endswith`?)"),
            "{}",
            p.message
        );
    }
}
