//! Rule text -> [`ast::File`] plus syntax diagnostics.
//!
//! Tokens are read with nom, on demand, so that rule ids (`CAR-2021-02-001`) and ATT&CK
//! ids (`T1505.003`) can be read in their own mode; items, rule entries and conditions
//! are parsed by recursive descent over those tokens.
//!
//! Error recovery: after a syntax error inside an item the parser skips to the next
//! line that starts an item (`list`, `macro`, `rule`, or `except RULE-ID`), so one
//! mistake gives one error. The broken item is dropped (see [`Parsed::broken`]).
//! Nesting (parentheses, `not`, ancestor blocks) deeper than [`MAX_NESTING`] is a
//! `too-deep` error, so no input can overflow the stack.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_till, take_while};
use nom::character::complete::{anychar, char, multispace1, satisfy};
use nom::combinator::recognize;
use nom::multi::many0_count;
use nom::sequence::pair;
use nom::{IResult, Parser as _};

use crate::ast::{
    self, DepthRange, Exception, ExceptionDef, Expr, FieldPath, Ident, Item, ListDef, ListItem,
    Literal, LiteralKind, MacroDef, Op, Operand, RuleDef, Severity, Span,
};
use crate::diag::Diagnostic;

/// How deep parentheses, `not` and ancestor blocks may nest.
pub const MAX_NESTING: usize = 64;

/// Words that cannot name a list or a macro (compared case-insensitively).
pub const KEYWORDS: [&str; 14] = [
    "list",
    "macro",
    "rule",
    "except",
    "and",
    "or",
    "not",
    "in",
    "exists",
    "startswith",
    "endswith",
    "contains",
    "regex",
    "ancestor",
];

/// The keys a rule may have, in the order the README documents them.
pub const RULE_KEYS: [&str; 8] = [
    "title",
    "description",
    "severity",
    "attack",
    "references",
    "enabled",
    "condition",
    "except",
];

const OPERATORS: &str =
    "`==`, `!=`, `in`, `startswith`, `endswith`, `contains`, `regex`, `=~`, `<`, `<=`, `>`, `>=` or `exists`";

/// What [`parse`] found in one file.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    pub file: ast::File,
    pub diagnostics: Vec<Diagnostic>,
    /// Items dropped because of a syntax error, with their name when it was read before
    /// the error. The checker does not report references to these names as undefined.
    pub broken: Vec<BrokenItem>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ItemKind {
    List,
    Macro,
    Rule,
    Exception,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BrokenItem {
    pub kind: ItemKind,
    pub name: Option<Ident>,
}

/// Parses one file. `file` is its index in the set being loaded (it goes into every
/// [`Span`]); spans are byte offsets into `text`.
pub fn parse_file(file: usize, text: &str) -> (ast::File, Vec<Diagnostic>) {
    let parsed = parse(file, text);
    (parsed.file, parsed.diagnostics)
}

/// [`parse_file`], also telling which items were dropped.
pub fn parse(file: usize, text: &str) -> Parsed {
    let mut p = Parser {
        text,
        file,
        pos: 0,
        depth: 0,
        diags: Vec::new(),
        broken: Vec::new(),
        current: None,
        cache: None,
    };
    let items = p.items();
    Parsed {
        file: ast::File { items },
        diagnostics: p.diags,
        broken: p.broken,
    }
}

// ---------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    /// `[A-Za-z_][A-Za-z0-9_]*`: names and keywords.
    Ident,
    Str {
        text: String,
        cs: bool,
    },
    Number(u64),
    /// Starts with a digit but is not a u64: the message says why.
    BadNumber(String),
    Punct(&'static str),
    /// A `"` without its closing quote on the same line; the token runs to the end of
    /// the line.
    Unterminated {
        escaped_quote: bool,
    },
    /// A char no token starts with.
    Unknown,
    Eof,
}

#[derive(Clone, Debug, PartialEq)]
struct Token {
    tok: Tok,
    start: usize,
    end: usize,
    /// Only whitespace and comments precede it on its line.
    line_start: bool,
}

type LexResult<'a, T> = IResult<&'a str, T>;

fn comment(i: &str) -> LexResult<'_, &str> {
    recognize(pair(char('#'), take_till(|c| c == '\n'))).parse(i)
}

/// Whitespace, newlines and `#` comments.
fn trivia(i: &str) -> LexResult<'_, usize> {
    many0_count(alt((multispace1, comment))).parse(i)
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn ident(i: &str) -> LexResult<'_, &str> {
    recognize(pair(satisfy(is_ident_start), take_while(is_ident_char))).parse(i)
}

/// A rule id: `[A-Za-z0-9][A-Za-z0-9_.:-]*`.
fn rule_id(i: &str) -> LexResult<'_, &str> {
    recognize(pair(
        satisfy(|c: char| c.is_ascii_alphanumeric()),
        take_while(|c: char| c.is_ascii_alphanumeric() || "_.:-".contains(c)),
    ))
    .parse(i)
}

/// A bare ATT&CK id: `[A-Za-z0-9][A-Za-z0-9_.-]*`.
fn attack_id(i: &str) -> LexResult<'_, &str> {
    recognize(pair(
        satisfy(|c: char| c.is_ascii_alphanumeric()),
        take_while(|c: char| c.is_ascii_alphanumeric() || "_.-".contains(c)),
    ))
    .parse(i)
}

/// Digits followed by any ident chars; validated by [`number_value`].
fn number(i: &str) -> LexResult<'_, &str> {
    recognize(pair(
        satisfy(|c: char| c.is_ascii_digit()),
        take_while(is_ident_char),
    ))
    .parse(i)
}

fn punct(i: &str) -> LexResult<'_, &str> {
    alt((
        alt((
            tag("=="),
            tag("!="),
            tag("=~"),
            tag("<="),
            tag(">="),
            tag(".."),
        )),
        alt((
            tag("<"),
            tag(">"),
            tag("="),
            tag("("),
            tag(")"),
            tag("["),
            tag("]"),
            tag("{"),
            tag("}"),
            tag(","),
            tag(":"),
            tag("."),
        )),
    ))
    .parse(i)
}

fn punct_static(s: &str) -> &'static str {
    const ALL: [&str; 18] = [
        "==", "!=", "=~", "<=", ">=", "..", "<", ">", "=", "(", ")", "[", "]", "{", "}", ",", ":",
        ".",
    ];
    ALL.into_iter().find(|p| *p == s).unwrap_or("?")
}

fn number_value(raw: &str) -> Result<u64, String> {
    let (digits, radix) = match raw.strip_prefix("0x").or_else(|| raw.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (raw, 10),
    };
    let valid = !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix));
    if !valid {
        return Err(format!(
            "invalid number `{raw}`: write decimal digits or `0x` and hex digits"
        ));
    }
    u64::from_str_radix(digits, radix)
        .map_err(|_| format!("number `{raw}` does not fit in 64 bits"))
}

/// A string body after its opening quote: `\"` is a quote, any other backslash and the
/// char after it are kept as written. `None` when the line ends first.
fn string_body(i: &str) -> Option<(String, usize)> {
    let mut text = String::new();
    let mut chars = i.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Some((text, at + 1)),
            '\n' | '\r' => return None,
            '\\' => match chars.clone().next() {
                Some((_, '"')) => {
                    chars.next();
                    text.push('"');
                }
                Some((_, '\n' | '\r')) | None => return None,
                Some((_, next)) => {
                    chars.next();
                    text.push('\\');
                    text.push(next);
                }
            },
            c => text.push(c),
        }
    }
    None
}

fn is_keyword(word: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word))
}

fn is_item_keyword(word: &str) -> bool {
    ["list", "macro", "rule", "except"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(word))
}

// ---------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------

/// A syntax error has been reported; unwind to the item loop and recover.
struct Fail;

type PResult<T> = Result<T, Fail>;

struct Parser<'t> {
    text: &'t str,
    file: usize,
    pos: usize,
    depth: usize,
    diags: Vec<Diagnostic>,
    broken: Vec<BrokenItem>,
    /// The name of the item being parsed, once read.
    current: Option<Ident>,
    cache: Option<(usize, Token)>,
}

impl<'t> Parser<'t> {
    fn span(&self, start: usize, end: usize) -> Span {
        Span {
            file: self.file,
            start,
            end,
        }
    }

    fn tok_span(&self, t: &Token) -> Span {
        self.span(t.start, t.end)
    }

    /// Skips trivia from `at`: the offset of the next token and whether it starts a line.
    fn skip_trivia(&self, at: usize) -> (usize, bool) {
        let rest = &self.text[at..];
        let after = match trivia(rest) {
            Ok((after, _)) => after,
            Err(_) => rest,
        };
        let start = self.text.len() - after.len();
        let skipped = &self.text[at..start];
        let line_start = at == 0 || self.text[..at].ends_with('\n') || skipped.contains('\n');
        (start, line_start)
    }

    fn lex_at(&self, at: usize) -> Token {
        let (start, line_start) = self.skip_trivia(at);
        let i = &self.text[start..];
        let make = |tok, len: usize| Token {
            tok,
            start,
            end: start + len,
            line_start,
        };
        if i.is_empty() {
            return make(Tok::Eof, 0);
        }
        let (quote, cs) = if i.starts_with('"') {
            (1, false)
        } else if i.starts_with("c\"") || i.starts_with("C\"") {
            (2, true)
        } else {
            (0, false)
        };
        if quote > 0 {
            return match string_body(&i[quote..]) {
                Some((text, len)) => make(Tok::Str { text, cs }, quote + len),
                None => {
                    let line = i.find(['\n', '\r']).unwrap_or(i.len());
                    let escaped_quote = i[..line].contains("\\\"");
                    make(Tok::Unterminated { escaped_quote }, line)
                }
            };
        }
        if let Ok((_, word)) = ident(i) {
            return make(Tok::Ident, word.len());
        }
        if let Ok((_, raw)) = number(i) {
            return match number_value(raw) {
                Ok(n) => make(Tok::Number(n), raw.len()),
                Err(why) => make(Tok::BadNumber(why), raw.len()),
            };
        }
        if let Ok((_, p)) = punct(i) {
            return make(Tok::Punct(punct_static(p)), p.len());
        }
        let len = anychar::<&str, nom::error::Error<&str>>(i).map_or(1, |(_, c)| c.len_utf8());
        make(Tok::Unknown, len)
    }

    fn peek(&mut self) -> Token {
        if let Some((at, t)) = &self.cache {
            if *at == self.pos {
                return t.clone();
            }
        }
        let t = self.lex_at(self.pos);
        self.cache = Some((self.pos, t.clone()));
        t
    }

    /// The token after the next one.
    fn peek2(&mut self) -> Token {
        let first = self.peek();
        self.lex_at(first.end)
    }

    fn bump(&mut self) -> Token {
        let t = self.peek();
        self.pos = t.end;
        t
    }

    fn raw(&self, t: &Token) -> &'t str {
        &self.text[t.start..t.end]
    }

    fn is_kw(&self, t: &Token, kw: &str) -> bool {
        t.tok == Tok::Ident && self.raw(t).eq_ignore_ascii_case(kw)
    }

    fn is_punct(t: &Token, p: &str) -> bool {
        matches!(t.tok, Tok::Punct(q) if q == p)
    }

    /// A name (not a keyword).
    fn is_name(&self, t: &Token) -> bool {
        t.tok == Tok::Ident && !is_keyword(self.raw(t))
    }

    fn describe(&self, t: &Token) -> String {
        match t.tok {
            Tok::Eof => "end of file".to_string(),
            _ => {
                let raw = self.raw(t);
                if raw.chars().count() > 40 {
                    let cut: String = raw.chars().take(40).collect();
                    format!("`{cut}...`")
                } else {
                    format!("`{raw}`")
                }
            }
        }
    }

    /// Reports what was expected at `t` (or the lexical problem `t` itself has).
    fn expected(&mut self, what: &str, t: &Token) -> Fail {
        self.expected_hint(what, t, None)
    }

    fn expected_hint(&mut self, what: &str, t: &Token, hint: Option<String>) -> Fail {
        let span = self.tok_span(t);
        let diag = match &t.tok {
            Tok::Unterminated { escaped_quote } => {
                let mut hint = "add the closing `\"` before the end of the line".to_string();
                if *escaped_quote {
                    hint.push_str(
                        "; `\\\"` is an escaped quote, so end a string with a backslash as `\\\\\"`",
                    );
                }
                Diagnostic::error("unterminated-string", "unterminated string", span)
                    .with_hint(hint)
            }
            Tok::BadNumber(why) => Diagnostic::error("syntax", why.clone(), span),
            _ => {
                let found = self.describe(t);
                let raw = self.raw(t);
                let hint = hint.or_else(|| match raw {
                    "=" => Some("use `==` to compare".to_string()),
                    "&" => Some("use `and`".to_string()),
                    "|" => Some("use `or`".to_string()),
                    "!" => Some("use `not`".to_string()),
                    _ => None,
                });
                let d =
                    Diagnostic::error("syntax", format!("expected {what}, found {found}"), span);
                match hint {
                    Some(h) => d.with_hint(h),
                    None => d,
                }
            }
        };
        self.diags.push(diag);
        Fail
    }

    fn expect_punct(&mut self, p: &'static str, what: &str) -> PResult<Token> {
        let t = self.peek();
        if Self::is_punct(&t, p) {
            Ok(self.bump())
        } else {
            Err(self.expected(what, &t))
        }
    }

    fn ident_of(&self, t: &Token) -> Ident {
        Ident {
            name: self.raw(t).to_string(),
            span: self.tok_span(t),
        }
    }

    // -----------------------------------------------------------------------------
    // Items and recovery
    // -----------------------------------------------------------------------------

    fn items(&mut self) -> Vec<Item> {
        let mut items = Vec::new();
        loop {
            let t = self.peek();
            if t.tok == Tok::Eof {
                break;
            }
            self.current = None;
            self.depth = 0;
            let kind = if self.is_kw(&t, "list") {
                Some(ItemKind::List)
            } else if self.is_kw(&t, "macro") {
                Some(ItemKind::Macro)
            } else if self.is_kw(&t, "rule") {
                Some(ItemKind::Rule)
            } else if self.is_kw(&t, "except") {
                Some(ItemKind::Exception)
            } else {
                None
            };
            let result = match kind {
                Some(ItemKind::List) => self.list_def().map(Item::List),
                Some(ItemKind::Macro) => self.macro_def().map(Item::Macro),
                Some(ItemKind::Rule) => self.rule_def().map(Item::Rule),
                Some(ItemKind::Exception) => self.top_exception().map(Item::Exception),
                None => {
                    Err(self.expected("`list`, `macro`, `rule` or `except` to start an item", &t))
                }
            };
            match result {
                Ok(item) => items.push(item),
                Err(Fail) => {
                    if let Some(kind) = kind {
                        self.broken.push(BrokenItem {
                            kind,
                            name: self.current.take(),
                        });
                    }
                    let err_at = self.diags.last().map_or(t.start, |d| d.span.start);
                    self.recover(t.start, err_at);
                }
            }
        }
        items
    }

    /// Moves to the first line after the item start that starts an item: a line after
    /// the error's line, or the error's line when the error is at its first token.
    fn recover(&mut self, item_start: usize, err_at: usize) {
        let err_line = self.text[..err_at].rfind('\n').map_or(0, |i| i + 1);
        let mut line = err_line;
        loop {
            let first = line
                + self.text[line..]
                    .find(|c: char| c != ' ' && c != '\t' && c != '\r')
                    .unwrap_or(self.text.len() - line);
            let eligible = line > item_start && (line > err_line || first == err_at);
            if eligible && self.starts_item(first) {
                self.pos = line;
                self.cache = None;
                return;
            }
            match self.text[line..].find('\n') {
                Some(nl) => line += nl + 1,
                None => {
                    self.pos = self.text.len();
                    self.cache = None;
                    return;
                }
            }
        }
    }

    /// `list`, `macro`, `rule` or `except RULE-ID` at `at`.
    fn starts_item(&self, at: usize) -> bool {
        let rest = &self.text[at..];
        let Ok((after, word)) = ident(rest) else {
            return false;
        };
        if after.starts_with(|c: char| is_ident_char(c)) || !is_item_keyword(word) {
            return false;
        }
        if !word.eq_ignore_ascii_case("except") {
            return true;
        }
        let after = after.trim_start_matches([' ', '\t']);
        after.starts_with(|c: char| c.is_ascii_alphanumeric())
    }

    fn name(&mut self, what: &str) -> PResult<Ident> {
        let t = self.peek();
        if self.is_name(&t) {
            self.bump();
            return Ok(self.ident_of(&t));
        }
        let hint = (t.tok == Tok::Ident)
            .then(|| format!("`{}` is a keyword and cannot be a name", self.raw(&t)));
        Err(self.expected_hint(what, &t, hint))
    }

    /// After a macro body or a top-level exception: the next item or the end.
    fn end_of_top_condition(&mut self) -> PResult<()> {
        let t = self.peek();
        let ok = t.tok == Tok::Eof || (t.tok == Tok::Ident && is_item_keyword(self.raw(&t)));
        if ok {
            return Ok(());
        }
        let hint = self.join_hint(&t);
        Err(self.expected_hint(
            "`and`, `or` or a new item (`list`, `macro`, `rule`, `except`) after the condition",
            &t,
            hint,
        ))
    }

    fn join_hint(&mut self, t: &Token) -> Option<String> {
        if t.tok == Tok::Ident || Self::is_punct(t, "(") {
            Some("join conditions with `and` or `or`".to_string())
        } else {
            None
        }
    }

    fn list_def(&mut self) -> PResult<ListDef> {
        let kw = self.bump();
        let name = self.name("a list name")?;
        self.current = Some(name.clone());
        self.expect_punct("=", "`=` after the list name")?;
        let t = self.peek();
        if !(Self::is_punct(&t, "[") || Self::is_punct(&t, "(")) {
            return Err(self.expected("`[` to start the list", &t));
        }
        let (items, span) = self.list_literal()?;
        let def = ListDef {
            name,
            items,
            span: self.span(kw.start, span.end),
        };
        let t = self.peek();
        if t.tok == Tok::Eof || (t.tok == Tok::Ident && is_item_keyword(self.raw(&t))) {
            Ok(def)
        } else {
            Err(self.expected(
                "a new item (`list`, `macro`, `rule`, `except`) after the list",
                &t,
            ))
        }
    }

    /// `[a, "b", 3]` or `("a", "b")`; a trailing comma is allowed.
    fn list_literal(&mut self) -> PResult<(Vec<ListItem>, Span)> {
        let open = self.bump();
        let close = if Self::is_punct(&open, "(") { ")" } else { "]" };
        let mut items = Vec::new();
        loop {
            let t = self.peek();
            if Self::is_punct(&t, close) {
                self.bump();
                return Ok((items, self.span(open.start, t.end)));
            }
            match &t.tok {
                Tok::Str { text, cs } => {
                    self.bump();
                    items.push(ListItem::Value(Literal {
                        kind: LiteralKind::Str {
                            text: text.clone(),
                            case_sensitive: *cs,
                        },
                        span: self.tok_span(&t),
                    }));
                }
                Tok::Number(n) => {
                    self.bump();
                    items.push(ListItem::Value(Literal {
                        kind: LiteralKind::Number(*n),
                        span: self.tok_span(&t),
                    }));
                }
                Tok::Ident if self.is_name(&t) => {
                    self.bump();
                    items.push(ListItem::ListRef(self.ident_of(&t)));
                }
                _ => {
                    return Err(
                        self.expected(&format!("a string, a number, a list name or `{close}`"), &t)
                    )
                }
            }
            let t = self.peek();
            if Self::is_punct(&t, ",") {
                self.bump();
            } else if !Self::is_punct(&t, close) {
                let hint = (t.line_start || t.tok == Tok::Eof)
                    .then(|| format!("is the closing `{close}` missing?"));
                return Err(self.expected_hint(&format!("`,` or `{close}` in the list"), &t, hint));
            }
        }
    }

    fn macro_def(&mut self) -> PResult<MacroDef> {
        let kw = self.bump();
        let name = self.name("a macro name")?;
        self.current = Some(name.clone());
        self.expect_punct("=", "`=` after the macro name")?;
        let body = self.condition()?;
        let end = self.pos;
        self.end_of_top_condition()?;
        Ok(MacroDef {
            name,
            body,
            span: self.span(kw.start, end),
        })
    }

    fn top_exception(&mut self) -> PResult<ExceptionDef> {
        let kw = self.bump();
        let Some(rule) = self.rule_id() else {
            let t = self.peek();
            return Err(self.expected_hint(
                "the id of the rule this exception extends",
                &t,
                Some("outside a rule, write `except RULE-ID \"name\": condition`".to_string()),
            ));
        };
        self.current = Some(rule.clone());
        let exception = self.exception_body(kw.start)?;
        self.end_of_top_condition()?;
        Ok(ExceptionDef { rule, exception })
    }

    /// A rule id at the current position (read in its own mode: `CAR-2021-02-001`),
    /// consumed; `None` leaves the position alone.
    fn rule_id(&mut self) -> Option<Ident> {
        let (start, _) = self.skip_trivia(self.pos);
        let (_, id) = rule_id(&self.text[start..]).ok()?;
        self.pos = start + id.len();
        Some(Ident {
            name: id.to_string(),
            span: self.span(start, start + id.len()),
        })
    }

    /// `"name": condition`, after `except` (and the rule id).
    fn exception_body(&mut self, start: usize) -> PResult<Exception> {
        let t = self.peek();
        let Tok::Str { text: name, .. } = t.tok.clone() else {
            return Err(self.expected("the exception's name (a string)", &t));
        };
        self.bump();
        self.expect_punct(":", "`:` after the exception's name")?;
        let condition = self.condition()?;
        Ok(Exception {
            name,
            condition,
            span: self.span(start, self.pos),
        })
    }

    // -----------------------------------------------------------------------------
    // Rules
    // -----------------------------------------------------------------------------

    fn rule_def(&mut self) -> PResult<RuleDef> {
        let kw = self.bump();
        let Some(id) = self.rule_id() else {
            let t = self.peek();
            return Err(self.expected("a rule id", &t));
        };
        self.current = Some(id.clone());
        self.expect_punct("{", "`{` after the rule id")?;
        let mut rule = RuleDef {
            id: id.clone(),
            title: None,
            description: None,
            severity: None,
            attack: Vec::new(),
            references: Vec::new(),
            enabled: true,
            condition: None,
            exceptions: Vec::new(),
            span: Span::default(),
        };
        // (key, where it was first given)
        let mut seen: Vec<(&'static str, Span)> = Vec::new();
        // Required keys an unknown key probably meant: not reported as missing.
        let mut excused: Vec<&'static str> = Vec::new();
        loop {
            let t = self.peek();
            if Self::is_punct(&t, "}") {
                self.bump();
                rule.span = self.span(kw.start, t.end);
                break;
            }
            if self.is_kw(&t, "except") {
                self.bump();
                let next = self.peek();
                if !matches!(next.tok, Tok::Str { .. } | Tok::Unterminated { .. }) {
                    return Err(self.expected_hint(
                        "the exception's name (a string)",
                        &next,
                        Some("inside a rule, write `except \"name\": condition`".to_string()),
                    ));
                }
                let e = self.exception_body(t.start)?;
                rule.exceptions.push(e);
                self.end_of_rule_condition()?;
                continue;
            }
            if t.tok == Tok::Eof {
                return Err(self.expected_hint(
                    &format!("`}}` to close rule `{}`", id.name),
                    &t,
                    None,
                ));
            }
            if t.tok != Tok::Ident {
                return Err(self.expected("a `key:` entry, `except` or `}`", &t));
            }
            self.bump();
            let key_span = self.tok_span(&t);
            let raw = self.raw(&t).to_ascii_lowercase();
            self.expect_punct(":", &format!("`:` after `{}`", self.raw(&t)))?;
            let Some(key) = RULE_KEYS.into_iter().find(|k| *k == raw && *k != "except") else {
                let suggestion = suggest(&raw, RULE_KEYS.iter().copied());
                let mut d = Diagnostic::error(
                    "unknown-key",
                    format!("unknown rule key `{}`", self.raw(&t)),
                    key_span,
                );
                if let Some(s) = suggestion {
                    if let Some(k) = RULE_KEYS.into_iter().find(|k| *k == s) {
                        excused.push(k);
                    }
                    d = d.with_hint(format!("did you mean `{s}`?"));
                } else {
                    d = d.with_hint(format!("rule keys are {}", quoted_list(&RULE_KEYS)));
                }
                self.diags.push(d);
                self.skip_value();
                continue;
            };
            let first = seen.iter().find(|(k, _)| *k == key).map(|(_, s)| *s);
            if let Some(first) = first {
                let line = crate::diag::line_column(self.text, first.start).0;
                self.diags.push(
                    Diagnostic::error(
                        "duplicate-key",
                        format!("rule `{}` has more than one `{key}`", id.name),
                        key_span,
                    )
                    .with_hint(format!("the first `{key}` is on line {line}; remove one")),
                );
            } else {
                seen.push((key, key_span));
            }
            let keep = first.is_none();
            self.rule_value(key, keep, &mut rule)?;
        }
        let missing: Vec<&str> = ["title", "severity", "condition"]
            .into_iter()
            .filter(|k| !seen.iter().any(|(s, _)| s == k) && !excused.contains(k))
            .collect();
        if !missing.is_empty() {
            let keys = quoted_list(&missing);
            self.diags.push(
                Diagnostic::error(
                    "missing-key",
                    format!("rule `{}` has no {keys}", id.name),
                    id.span,
                )
                .with_hint("every rule needs `title`, `severity` and `condition`"),
            );
        }
        Ok(rule)
    }

    /// After a rule's condition or one of its exceptions.
    fn end_of_rule_condition(&mut self) -> PResult<()> {
        let t = self.peek();
        if Self::is_punct(&t, "}") || self.is_kw(&t, "except") {
            return Ok(());
        }
        if t.tok == Tok::Ident && Self::is_punct(&self.peek2(), ":") {
            return Ok(());
        }
        let hint = if t.tok == Tok::Ident && is_item_keyword(self.raw(&t)) {
            Some("is the rule's closing `}` missing?".to_string())
        } else {
            self.join_hint(&t)
        };
        Err(self.expected_hint(
            "`and`, `or`, a new `key:` entry, `except` or `}` after the condition",
            &t,
            hint,
        ))
    }

    fn rule_value(&mut self, key: &'static str, keep: bool, rule: &mut RuleDef) -> PResult<()> {
        match key {
            "title" | "description" => {
                let text = self.string("a string")?;
                if keep {
                    if key == "title" {
                        rule.title = Some(text);
                    } else {
                        rule.description = Some(text);
                    }
                }
            }
            "severity" => {
                let t = self.peek();
                let word =
                    match &t.tok {
                        Tok::Ident => self.raw(&t).to_string(),
                        Tok::Str { text, .. } => text.clone(),
                        _ => return Err(self.expected(
                            "a severity (`informational`, `low`, `medium`, `high` or `critical`)",
                            &t,
                        )),
                    };
                self.bump();
                let span = self.tok_span(&t);
                let severity = match Severity::from_name(&word) {
                    Some(s) => s,
                    None => {
                        let names: Vec<&str> = Severity::ALL.iter().map(|s| s.name()).collect();
                        let hint = match suggest(&word, names.iter().copied()) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!("severities are {}", quoted_list(&names)),
                        };
                        self.diags.push(
                            Diagnostic::error(
                                "bad-severity",
                                format!("unknown severity `{word}`"),
                                span,
                            )
                            .with_hint(hint),
                        );
                        // Placeholder: the error refuses the set anyway.
                        Severity::Medium
                    }
                };
                if keep {
                    rule.severity = Some((severity, span));
                }
            }
            "attack" => {
                let ids = self.one_or_list(Self::attack_item)?;
                if keep {
                    rule.attack = ids;
                }
            }
            "references" => {
                let refs = self.one_or_list(|p| {
                    let t = p.peek();
                    let s = p.string("a reference (a string)")?;
                    Ok((s, t))
                })?;
                if keep {
                    rule.references = refs.into_iter().map(|(s, _)| s).collect();
                }
            }
            "enabled" => {
                let t = self.peek();
                let value = if self.is_kw(&t, "true") {
                    true
                } else if self.is_kw(&t, "false") {
                    false
                } else {
                    return Err(self.expected("`true` or `false`", &t));
                };
                self.bump();
                if keep {
                    rule.enabled = value;
                }
            }
            "condition" => {
                let cond = self.condition()?;
                self.end_of_rule_condition()?;
                if keep {
                    rule.condition = Some(cond);
                }
            }
            _ => unreachable!("RULE_KEYS covers every key"),
        }
        Ok(())
    }

    fn string(&mut self, what: &str) -> PResult<String> {
        let t = self.peek();
        match &t.tok {
            Tok::Str { text, .. } => {
                self.bump();
                Ok(text.clone())
            }
            _ => Err(self.expected(what, &t)),
        }
    }

    /// One value, or `[a, b, ...]` (a trailing comma is allowed).
    fn one_or_list<T>(&mut self, mut item: impl FnMut(&mut Self) -> PResult<T>) -> PResult<Vec<T>> {
        let t = self.peek();
        if !Self::is_punct(&t, "[") {
            return Ok(vec![item(self)?]);
        }
        self.bump();
        let mut out = Vec::new();
        loop {
            let t = self.peek();
            if Self::is_punct(&t, "]") {
                self.bump();
                return Ok(out);
            }
            out.push(item(self)?);
            let t = self.peek();
            if Self::is_punct(&t, ",") {
                self.bump();
            } else if !Self::is_punct(&t, "]") {
                return Err(self.expected("`,` or `]`", &t));
            }
        }
    }

    /// `T1505.003` or `"T1505.003"`.
    fn attack_item(&mut self) -> PResult<Ident> {
        let t = self.peek();
        if let Tok::Str { text, .. } = &t.tok {
            self.bump();
            return Ok(Ident {
                name: text.clone(),
                span: self.tok_span(&t),
            });
        }
        match attack_id(&self.text[t.start..]) {
            Ok((_, id)) if !matches!(t.tok, Tok::Unterminated { .. }) => {
                self.pos = t.start + id.len();
                self.cache = None;
                Ok(Ident {
                    name: id.to_string(),
                    span: self.span(t.start, t.start + id.len()),
                })
            }
            _ => Err(self.expected("an ATT&CK technique id such as `T1505.003`", &t)),
        }
    }

    /// Skips the value of an unknown key: up to the next `key:`, `except`, `}` outside
    /// brackets, or a line that starts an item.
    fn skip_value(&mut self) {
        let mut nesting = 0usize;
        loop {
            let t = self.peek();
            match &t.tok {
                Tok::Eof => return,
                Tok::Punct("[" | "(" | "{") => nesting += 1,
                Tok::Punct("]" | ")") => nesting = nesting.saturating_sub(1),
                Tok::Punct("}") if nesting == 0 => return,
                Tok::Punct("}") => nesting -= 1,
                Tok::Ident => {
                    if t.line_start && self.starts_item(t.start) {
                        return;
                    }
                    if nesting == 0
                        && (self.is_kw(&t, "except") || Self::is_punct(&self.peek2(), ":"))
                    {
                        return;
                    }
                }
                _ => {}
            }
            self.bump();
        }
    }

    // -----------------------------------------------------------------------------
    // Conditions
    // -----------------------------------------------------------------------------

    fn condition(&mut self) -> PResult<Expr> {
        self.or_expr()
    }

    fn or_expr(&mut self) -> PResult<Expr> {
        self.joined("or", Self::and_expr, Expr::Or)
    }

    fn and_expr(&mut self) -> PResult<Expr> {
        self.joined("and", Self::not_expr, Expr::And)
    }

    /// `operand (keyword operand)*`: one operand as it is, several joined by `join`.
    fn joined(
        &mut self,
        keyword: &str,
        operand: fn(&mut Self) -> PResult<Expr>,
        join: fn(Vec<Expr>) -> Expr,
    ) -> PResult<Expr> {
        let mut all = vec![operand(self)?];
        while {
            let t = self.peek();
            self.is_kw(&t, keyword)
        } {
            self.bump();
            all.push(operand(self)?);
        }
        Ok(if all.len() == 1 {
            all.pop().expect("one")
        } else {
            join(all)
        })
    }

    /// Counts one nesting level; `too-deep` past [`MAX_NESTING`].
    fn enter(&mut self, t: &Token) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            self.diags.push(
                Diagnostic::error(
                    "too-deep",
                    format!("conditions nest more than {MAX_NESTING} levels deep"),
                    self.tok_span(t),
                )
                .with_hint("split the condition into macros"),
            );
            return Err(Fail);
        }
        Ok(())
    }

    fn not_expr(&mut self) -> PResult<Expr> {
        let t = self.peek();
        if !self.is_kw(&t, "not") {
            return self.primary();
        }
        self.enter(&t)?;
        self.bump();
        let inner = self.not_expr()?;
        self.depth -= 1;
        Ok(Expr::Not(Box::new(inner), self.span(t.start, self.pos)))
    }

    /// `( condition )` from the `(` token `open`: the condition and the `)` token.
    fn parenthesized(&mut self, open: &Token) -> PResult<(Expr, Token)> {
        self.enter(open)?;
        self.bump();
        let inner = self.or_expr()?;
        let close = self.peek();
        if !Self::is_punct(&close, ")") {
            let hint = self.join_hint(&close);
            return Err(self.expected_hint("`and`, `or` or `)`", &close, hint));
        }
        self.bump();
        self.depth -= 1;
        Ok((inner, close))
    }

    fn primary(&mut self) -> PResult<Expr> {
        let t = self.peek();
        if Self::is_punct(&t, "(") {
            return self.parenthesized(&t).map(|(inner, _)| inner);
        }
        if self.is_kw(&t, "ancestor") {
            return self.ancestor();
        }
        if self.is_name(&t) {
            let next = self.peek2();
            if self.operator(&next).is_some() || self.is_kw(&next, "exists") {
                self.bump();
                let field = FieldPath {
                    name: self.ident_of(&t),
                    ancestor: None,
                    span: self.tok_span(&t),
                };
                return self.comparison(field);
            }
            let is_field = crate::field::FieldRef::from_name(self.raw(&t)).is_some();
            let value_like = matches!(
                next.tok,
                Tok::Str { .. } | Tok::Number(_) | Tok::BadNumber(_) | Tok::Unterminated { .. }
            ) || Self::is_punct(&next, "[")
                || Self::is_punct(&next, "=")
                || self.is_kw(&next, "not")
                || (is_field
                    && self.is_name(&next)
                    && !Self::is_punct(&self.lex_at(next.end), ":"));
            if value_like {
                self.bump();
                return Err(self.operator_expected(&t, &next));
            }
            self.bump();
            return Ok(Expr::Macro(self.ident_of(&t)));
        }
        let hint = if t.tok == Tok::Ident && is_keyword(self.raw(&t)) {
            Some(format!("`{}` is a keyword", self.raw(&t)))
        } else {
            None
        };
        Err(self.expected_hint(
            "a condition (a comparison such as `exe == \"cmd.exe\"`, a macro name, `not`, `(` or `ancestor`)",
            &t,
            hint,
        ))
    }

    fn operator_expected(&mut self, field: &Token, found: &Token) -> Fail {
        let hint = if self.is_kw(found, "not") {
            Some(format!(
                "write `not {} in [...]` to negate a test",
                self.raw(field)
            ))
        } else {
            None
        };
        self.expected_hint(
            &format!("{OPERATORS} after `{}`", self.raw(field)),
            found,
            hint,
        )
    }

    fn operator(&self, t: &Token) -> Option<Op> {
        match &t.tok {
            Tok::Punct("==") => Some(Op::Eq),
            Tok::Punct("!=") => Some(Op::Ne),
            Tok::Punct("=~") => Some(Op::Regex),
            Tok::Punct("<") => Some(Op::Lt),
            Tok::Punct("<=") => Some(Op::Le),
            Tok::Punct(">") => Some(Op::Gt),
            Tok::Punct(">=") => Some(Op::Ge),
            Tok::Ident => {
                let w = self.raw(t).to_ascii_lowercase();
                match w.as_str() {
                    "in" => Some(Op::In),
                    "startswith" => Some(Op::StartsWith),
                    "endswith" => Some(Op::EndsWith),
                    "contains" => Some(Op::Contains),
                    "regex" => Some(Op::Regex),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// After the field: `exists` or an operator and its operand.
    fn comparison(&mut self, field: FieldPath) -> PResult<Expr> {
        let t = self.peek();
        if self.is_kw(&t, "exists") {
            self.bump();
            return Ok(Expr::Exists(field));
        }
        let Some(op) = self.operator(&t) else {
            let hint = self
                .is_kw(&t, "not")
                .then(|| format!("write `not {} in [...]` to negate a test", field.name.name));
            return Err(self.expected_hint(
                &format!("{OPERATORS} after `{}`", field.name.name),
                &t,
                hint,
            ));
        };
        self.bump();
        let operand = self.operand()?;
        Ok(Expr::Compare(ast::Compare {
            field,
            op,
            op_span: self.tok_span(&t),
            operand,
        }))
    }

    fn operand(&mut self) -> PResult<Operand> {
        let t = self.peek();
        match &t.tok {
            Tok::Str { text, cs } => {
                self.bump();
                Ok(Operand::Literal(Literal {
                    kind: LiteralKind::Str {
                        text: text.clone(),
                        case_sensitive: *cs,
                    },
                    span: self.tok_span(&t),
                }))
            }
            Tok::Number(n) => {
                self.bump();
                Ok(Operand::Literal(Literal {
                    kind: LiteralKind::Number(*n),
                    span: self.tok_span(&t),
                }))
            }
            Tok::Punct("[" | "(") => {
                let (items, span) = self.list_literal()?;
                Ok(Operand::List(items, span))
            }
            Tok::Ident if self.is_name(&t) => {
                self.bump();
                Ok(Operand::ListRef(self.ident_of(&t)))
            }
            _ => Err(self.expected("a string, a number, a list `[...]` or a list name", &t)),
        }
    }

    /// `ancestor.f`, `ancestor[r].f` (then a comparison), `ancestor[r](...)` or
    /// `ancestor(...)` (any ancestor up to the default depth).
    fn ancestor(&mut self) -> PResult<Expr> {
        let kw = self.bump();
        let mut range = DepthRange {
            min: 1,
            max: ast::DEFAULT_ANCESTOR_DEPTH,
        };
        let t = self.peek();
        let bracketed = Self::is_punct(&t, "[");
        if bracketed {
            range = self.depth_range()?;
        } else if !Self::is_punct(&t, ".") && !Self::is_punct(&t, "(") {
            return Err(self.expected("`.`, `[` or `(` after `ancestor`", &t));
        }
        let t = self.peek();
        if Self::is_punct(&t, ".") {
            self.bump();
            let f = self.peek();
            if !self.is_name(&f) {
                return Err(self.expected("a field name after `ancestor.`", &f));
            }
            self.bump();
            let field = FieldPath {
                name: self.ident_of(&f),
                ancestor: Some(range),
                span: self.span(kw.start, f.end),
            };
            return self.comparison(field);
        }
        if Self::is_punct(&t, "(") {
            let (body, close) = self.parenthesized(&t)?;
            return Ok(Expr::Ancestor {
                range,
                body: Box::new(body),
                span: self.span(kw.start, close.end),
            });
        }
        Err(self.expected(
            "`.` and a field, or `(` and a condition, after the depth",
            &t,
        ))
    }

    /// `[n]`, `[..n]` or `[n..m]`; reports `bad-depth` (without failing) when the
    /// depths are out of range.
    fn depth_range(&mut self) -> PResult<DepthRange> {
        let open = self.bump();
        let t = self.peek();
        let range = if Self::is_punct(&t, "..") {
            self.bump();
            let max = self.depth_number()?;
            DepthRange { min: 1, max }
        } else {
            let min = self.depth_number()?;
            if Self::is_punct(&self.peek(), "..") {
                self.bump();
                let max = self.depth_number()?;
                DepthRange { min, max }
            } else {
                DepthRange { min, max: min }
            }
        };
        let close = self.expect_punct("]", "`..` or `]` in the ancestor depth")?;
        let span = self.span(open.start, close.end);
        let max = ast::MAX_ANCESTOR_DEPTH;
        let problem = if range.min == 0 || range.max == 0 {
            Some((
                "ancestor depth 0 is the process itself".to_string(),
                "depths count from 1 (the parent); use the field without `ancestor`".to_string(),
            ))
        } else if range.min > max || range.max > max {
            Some((
                format!(
                    "ancestor depth {} is deeper than {max}",
                    range.max.max(range.min)
                ),
                format!("depths go from 1 (the parent) to {max}"),
            ))
        } else if range.min > range.max {
            Some((
                format!("ancestor range {}..{} is empty", range.min, range.max),
                format!(
                    "write the smaller depth first: [{}..{}]",
                    range.max, range.min
                ),
            ))
        } else {
            None
        };
        if let Some((message, hint)) = problem {
            self.diags
                .push(Diagnostic::error("bad-depth", message, span).with_hint(hint));
        }
        Ok(range)
    }

    fn depth_number(&mut self) -> PResult<u32> {
        let t = self.peek();
        match t.tok {
            Tok::Number(n) => {
                self.bump();
                Ok(u32::try_from(n).unwrap_or(u32::MAX))
            }
            _ => Err(self.expected("a depth (a number)", &t)),
        }
    }
}

/// `a`, `b` and `c` as "`a`, `b` and `c`".
pub(crate) fn quoted_list(words: &[&str]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| format!("`{w}`")).collect();
    match quoted.len() {
        0 => String::new(),
        1 => quoted[0].clone(),
        n => format!("{} and {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

/// The candidate closest to `name` (case-insensitively), when close enough to be a
/// plausible typo.
pub(crate) fn suggest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    // One edit per three chars; names shorter than three chars only match up to case.
    let len = name.chars().count();
    let limit = if len < 3 { 0 } else { (len / 3).max(1) };
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = strsim::osa_distance(&lower, &c.to_ascii_lowercase());
        let better = match best {
            Some((bd, _)) => d < bd,
            None => true,
        };
        if d <= limit && better {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c.to_string())
}
