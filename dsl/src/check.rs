//! Checker (stub, replaced by the real module).
use crate::{ir::CheckedRule, Diagnostic, Source, Summary};
pub struct Checked { pub rules: Vec<CheckedRule>, pub diagnostics: Vec<Diagnostic>, pub summary: Summary }
pub fn check_sources(_sources: &[Source]) -> Checked { Checked { rules: vec![], diagnostics: vec![], summary: Summary::default() } }
