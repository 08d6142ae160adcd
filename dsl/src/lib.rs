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
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Source {
        Source {
            name: name.into(),
            text: text.into(),
        }
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
