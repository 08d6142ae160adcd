//! Diagnostics (stub, replaced by the real module).
use crate::ast::Span;
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Level { Error, Warning }
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic { pub level: Level, pub code: &'static str, pub message: String, pub span: Span, pub hint: Option<String> }
impl Diagnostic { pub fn is_error(&self) -> bool { self.level == Level::Error } }
