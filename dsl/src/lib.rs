//! spawnwatch's rule language.
//!
//! Rule text goes through three stages, each its own module, as in Falco's engine:
//! [`parse`] (text -> [`ast`], syntax diagnostics), [`check`] (ast -> [`ir`]: names
//! resolved, semantic diagnostics) and [`compile`] (ir -> [`RuleSet`], matchers built
//! once). [`RuleSet::evaluate`] then runs one event against every rule. Nothing here
//! reads files, spawns threads or knows about Windows: callers hand in [`Source`]s and
//! events through the [`Event`] trait.
//!
//! ```
//! let src = dsl::Source::new("web.rules", r#"
//!     rule demo {
//!         title: "whoami from IIS"
//!         severity: high
//!         attack: [T1505.003]
//!         condition: parent_exe == "w3wp.exe" and exe == "whoami.exe"
//!     }"#);
//! let loaded = dsl::load(&[src]).expect("valid rules");
//! assert_eq!(loaded.rules.len(), 1);
//! ```

pub mod ast;
pub mod check;
pub mod compile;
pub mod diag;
mod eval;
pub mod explain;
pub mod field;
pub mod ir;
mod needles;
pub mod parse;
pub mod print;
mod program;
mod sense;

pub use compile::{RuleId, RuleSet, Scratch};
pub use diag::{Diagnostic, Level};
pub use field::{Event, Field, FieldKind, FieldRef, Value};

/// One rule file's text and the name diagnostics call it by.
#[derive(Clone, Debug)]
pub struct Source {
    pub name: String,
    pub text: String,
    /// The offset and value of the first byte that is not UTF-8, when the text came
    /// from such bytes (`text` is then their lossy decoding).
    not_utf8: Option<(usize, u8)>,
}

/// A UTF-8 byte-order mark, which older Notepad writes at the start of a file.
const BOM: char = '\u{FEFF}';

impl Source {
    /// A source from text; a leading byte-order mark is dropped.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Source {
        let mut text = text.into();
        if text.starts_with(BOM) {
            text.drain(..BOM.len_utf8());
        }
        Source {
            name: name.into(),
            text,
            not_utf8: None,
        }
    }

    /// A source from a file's bytes; a leading byte-order mark is dropped. Bytes that
    /// are not UTF-8 are decoded lossily, and [`Source::encoding_error`] points at the
    /// first bad one.
    pub fn from_bytes(name: impl Into<String>, bytes: Vec<u8>) -> Source {
        match String::from_utf8(bytes) {
            Ok(text) => Source::new(name, text),
            Err(e) => {
                let bytes = e.into_bytes();
                let bytes = bytes.strip_prefix("\u{FEFF}".as_bytes()).unwrap_or(&bytes);
                let bad = std::str::from_utf8(bytes)
                    .err()
                    .map(|e| (e.valid_up_to(), bytes[e.valid_up_to()]));
                Source {
                    name: name.into(),
                    text: String::from_utf8_lossy(bytes).into_owned(),
                    not_utf8: bad,
                }
            }
        }
    }

    /// The `not-utf8` error of a source made from bytes that are not UTF-8, for the
    /// source at index `file` of a set. The lossy text is the same as the bytes up to
    /// the bad byte, so the error's line and column are those of the file.
    pub fn encoding_error(&self, file: usize) -> Option<Diagnostic> {
        let (at, byte) = self.not_utf8?;
        Some(
            Diagnostic::error(
                "not-utf8",
                format!("the file is not UTF-8 text: byte 0x{byte:02X} cannot be read"),
                ast::Span {
                    file,
                    start: at,
                    end: at + 1,
                },
            )
            .with_hint("save the file as UTF-8 (most editors: Save As, Encoding: UTF-8)"),
        )
    }
}

/// What a rule set holds, for `check`'s summary line.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub rules: usize,
    pub enabled_rules: usize,
    pub lists: usize,
    pub macros: usize,
    pub exceptions: usize,
}

/// A rule set that loaded without errors, with the warnings it raised.
#[derive(Debug)]
pub struct Loaded {
    pub rules: RuleSet,
    /// The checked form `rules` was compiled from (to compare sets on reload).
    pub checked: Vec<ir::CheckedRule>,
    pub warnings: Vec<Diagnostic>,
    pub summary: Summary,
}

/// Parses, checks and compiles the sources as one set (lists, macros and exceptions
/// are shared across files, in order). Every diagnostic of every file is returned;
/// with any error the set is refused as a whole.
pub fn load(sources: &[Source]) -> Result<Loaded, Vec<Diagnostic>> {
    load_mixed(sources, sources.len(), check::Foreign::default())
}

/// [`load`] for rule-language files (`sources[..dsl_files]`) together with rules
/// checked elsewhere, such as Sigma rules: see [`check::check_mixed`].
pub fn load_mixed(
    sources: &[Source],
    dsl_files: usize,
    foreign: check::Foreign,
) -> Result<Loaded, Vec<Diagnostic>> {
    let checked = check::check_mixed(sources, dsl_files, foreign);
    if checked.diagnostics.iter().any(Diagnostic::is_error) {
        return Err(checked.diagnostics);
    }
    Ok(Loaded {
        rules: RuleSet::compile(&checked.rules),
        checked: checked.rules,
        warnings: checked.diagnostics,
        summary: checked.summary,
    })
}
