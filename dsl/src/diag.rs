//! Diagnostics: what is wrong in a rule file, where, and how to fix it.
//!
//! Every diagnostic carries a stable kebab-case [`Diagnostic::code`] (documented in the
//! crate README), a message, the [`Span`] it is about and an optional hint.
//! [`Diagnostic::location`] turns the span into `file:line:column` and
//! [`Diagnostic::render`] prints it the way rustc does:
//!
//! ```text
//! error[unknown-field]: unknown field `parent_exee`
//!   --> rules/local.rules:12:16
//!    |
//! 12 |     condition: parent_exee == "w3wp.exe"
//!    |                ^^^^^^^^^^^
//!    = help: did you mean `parent_exe`?
//! ```

use std::fmt;

use crate::ast::Span;
use crate::Source;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Level {
    /// The rule set is refused.
    Error,
    /// Reported; the rule set still loads.
    Warning,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub level: Level,
    /// Stable kebab-case identifier, e.g. `unknown-field`.
    pub code: &'static str,
    pub message: String,
    pub span: Span,
    /// Printed as `= help: ...`.
    pub hint: Option<String>,
}

/// Where a diagnostic points: 1-based line and column, the column counted in chars.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic {
            level: Level::Error,
            code,
            message: message.into(),
            span,
            hint: None,
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic {
            level: Level::Warning,
            ..Diagnostic::error(code, message, span)
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.level == Level::Error
    }

    /// The file name and the 1-based line and column (in chars) of the span's start.
    /// A span at the very end of a file that ends with a newline points just past the
    /// last char of the last line.
    pub fn location(&self, sources: &[Source]) -> Location {
        locate(sources, self.span)
    }

    /// The diagnostic as rustc prints one, without a trailing newline: the header, the
    /// `-->` location, the source line with carets under the span (to the end of its
    /// first line when it covers several; one caret when it is empty) and the hint.
    /// Long lines are cut to a window around the caret, marked with `...`.
    ///
    /// Each call scans the file up to the span; [`render_all`] renders many
    /// diagnostics in one pass.
    pub fn render(&self, sources: &[Source]) -> String {
        let text = source_text(sources, self.span.file);
        let pos = Pos::START.advance(text, display_offset(text, self.span.start));
        self.render_at(sources, text, pos)
    }

    fn render_at(&self, sources: &[Source], text: &str, pos: Pos) -> String {
        let loc = Location {
            file: sources
                .get(self.span.file)
                .map_or_else(|| "<unknown>".to_string(), |s| s.name.clone()),
            line: pos.line,
            column: pos.column,
        };
        let snippet = Snippet::new(text, self.span, pos);
        let width = loc.line.to_string().len();
        let pad = " ".repeat(width);
        let mut out = format!(
            "{}[{}]: {}\n{pad}--> {loc}\n{pad} |\n",
            self.level.name(),
            self.code,
            self.message
        );
        let source_line = format!("{} | {}", loc.line, snippet.line);
        out.push_str(source_line.trim_end());
        out.push('\n');
        out.push_str(&format!(
            "{pad} | {}{}",
            snippet.lead,
            "^".repeat(snippet.carets)
        ));
        if let Some(hint) = &self.hint {
            out.push_str(&format!("\n{pad} = help: {hint}"));
        }
        out
    }
}

/// [`Diagnostic::render`] for each diagnostic, in one pass over each file when the
/// diagnostics are sorted by file and position (as [`crate::check::Checked`] gives them).
pub fn render_all(diagnostics: &[Diagnostic], sources: &[Source]) -> Vec<String> {
    let mut cursors: Vec<Pos> = vec![Pos::START; sources.len()];
    let mut stray = Pos::START;
    diagnostics
        .iter()
        .map(|d| {
            let text = source_text(sources, d.span.file);
            let cursor = cursors.get_mut(d.span.file).unwrap_or(&mut stray);
            *cursor = cursor.advance(text, display_offset(text, d.span.start));
            d.render_at(sources, text, *cursor)
        })
        .collect()
}

/// The 1-based line and column (in chars) of `span.start` in `sources[span.file]`.
pub fn locate(sources: &[Source], span: Span) -> Location {
    let Some(source) = sources.get(span.file) else {
        return Location {
            file: "<unknown>".to_string(),
            line: 1,
            column: 1,
        };
    };
    let (line, column) = line_column(&source.text, span.start);
    Location {
        file: source.name.clone(),
        line,
        column,
    }
}

/// The 1-based line and column (in chars) of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let pos = Pos::START.advance(text, display_offset(text, offset));
    (pos.line, pos.column)
}

fn source_text(sources: &[Source], file: usize) -> &str {
    sources.get(file).map_or("", |s| s.text.as_str())
}

/// Clamps `offset` into `text` on a char boundary; the end of a file that ends with a
/// newline moves back to the end of its last line.
fn display_offset(text: &str, offset: usize) -> usize {
    let mut offset = floor_boundary(text, offset.min(text.len()));
    if offset == text.len() && text.ends_with('\n') {
        offset -= 1;
        if text[..offset].ends_with('\r') {
            offset -= 1;
        }
    }
    offset
}

fn floor_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// A position in a text, moved forward incrementally.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Pos {
    offset: usize,
    line: usize,
    line_start: usize,
    /// 1-based, in chars.
    column: usize,
}

impl Pos {
    const START: Pos = Pos {
        offset: 0,
        line: 1,
        line_start: 0,
        column: 1,
    };

    /// Moves to `target` (a char boundary), from here when it is ahead.
    fn advance(self, text: &str, target: usize) -> Pos {
        let mut pos = if target < self.offset {
            Pos::START
        } else {
            self
        };
        let bytes = &text.as_bytes()[pos.offset..target];
        match bytes.iter().rposition(|&b| b == b'\n') {
            Some(last) => {
                pos.line += bytes.iter().filter(|&&b| b == b'\n').count();
                pos.line_start = pos.offset + last + 1;
                pos.column = 1 + count_chars(&text.as_bytes()[pos.line_start..target]);
            }
            None => pos.column += count_chars(bytes),
        }
        pos.offset = target;
        pos
    }
}

fn count_chars(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| (b & 0xC0) != 0x80).count()
}

/// Chars shown before and after the caret on a long line.
const WINDOW_BEFORE: usize = 60;
const WINDOW_AFTER: usize = 100;

/// The part of the span's first line that is shown, the padding before the carets and
/// how many carets to draw.
struct Snippet {
    line: String,
    lead: String,
    carets: usize,
}

impl Snippet {
    fn new(text: &str, span: Span, pos: Pos) -> Snippet {
        let at = pos.offset;
        // Window start: the line start, or WINDOW_BEFORE chars back on a long line.
        let cut_left = pos.column - 1 > WINDOW_BEFORE;
        let from = if cut_left {
            let mut from = at;
            for _ in 0..WINDOW_BEFORE {
                from = floor_boundary(text, from - 1);
            }
            from
        } else {
            pos.line_start
        };
        // Window end: the line end, or WINDOW_AFTER chars on.
        let mut to = at;
        let mut cut_right = false;
        for (shown, c) in text[at..].chars().enumerate() {
            if c == '\n' || (c == '\r' && text[to..].starts_with("\r\n")) {
                break;
            }
            if shown == WINDOW_AFTER {
                cut_right = true;
                break;
            }
            to += c.len_utf8();
        }
        let mut line = String::new();
        let mut lead = String::new();
        if cut_left {
            line.push_str("...");
            lead.push_str("   ");
        }
        line.push_str(&text[from..to]);
        if cut_right {
            line.push_str("...");
        }
        // Keep tabs under tabs so the carets line up in a terminal.
        lead.extend(
            text[from..at]
                .chars()
                .map(|c| if c == '\t' { '\t' } else { ' ' }),
        );
        let end = floor_boundary(text, span.end.clamp(at, to.max(at)));
        Snippet {
            line,
            lead,
            carets: count_chars(&text.as_bytes()[at..end]).max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_chars() {
        let text = "ab\né€x\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 3), (2, 1));
        // `x` comes after two multi-byte chars.
        assert_eq!(line_column(text, 3 + 2 + 3), (2, 3));
        // End of file after a newline: just past the last char of the last line.
        assert_eq!(line_column(text, text.len()), (2, 4));
        assert_eq!(line_column("abc", 3), (1, 4));
        assert_eq!(line_column("a\r\n", 3), (1, 2));
        // Inside a char: its start.
        assert_eq!(line_column("é", 1), (1, 1));
    }

    #[test]
    fn positions_advance_and_restart() {
        let text = "one\ntwo\nthree";
        let p = Pos::START.advance(text, 5);
        assert_eq!((p.line, p.line_start, p.column), (2, 4, 2));
        let q = p.advance(text, 10);
        assert_eq!((q.line, q.line_start, q.column), (3, 8, 3));
        assert_eq!(q.advance(text, 1), Pos::START.advance(text, 1));
    }
}
