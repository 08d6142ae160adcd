//! Checked rules back to rule-language text, the form `spawnwatch sigma convert` shows
//! an author who starts from a rule written in another language (Sigma) and wants to
//! extend it, with ancestry for instance.
//!
//! Reading the printed text back ([`crate::load`]) gives the same checked rule, for
//! every rule the language can express; [`print_rule`] says why when one cannot be
//! (a string with a line break, a field three levels up written without a block, an
//! empty `and`). The layout keeps short conditions on one line and puts each part of a
//! long `and` / `or` on a line of its own.

use crate::field::FieldRef;
use crate::ir::{CheckedRule, Cond, NumberOp, NumberTest, Pattern, TextOp, TextTest};

/// Lines longer than this are broken at the parts of an `and` / `or`.
const WIDTH: usize = 88;

/// The rule as rule-language text (a `rule ID { ... }` item and a final newline), or
/// why the language cannot express it.
pub fn print_rule(rule: &CheckedRule) -> Result<String, String> {
    let meta = &rule.meta;
    let mut out = format!("rule {} {{\n", meta.id);
    out.push_str(&format!("    title: {}\n", quote(&meta.title)?));
    if !meta.description.is_empty() {
        out.push_str(&format!("    description: {}\n", quote(&meta.description)?));
    }
    out.push_str(&format!("    severity: {}\n", meta.severity.name()));
    if !meta.attack.is_empty() {
        let ids = meta
            .attack
            .iter()
            .map(|a| attack_id(a))
            .collect::<Result<Vec<_>, _>>()?;
        out.push_str(&format!("    attack: [{}]\n", ids.join(", ")));
    }
    if !meta.references.is_empty() {
        let refs = meta
            .references
            .iter()
            .map(|r| quote(r))
            .collect::<Result<Vec<_>, _>>()?;
        out.push_str(&format!("    references: [{}]\n", refs.join(", ")));
    }
    if !meta.enabled {
        out.push_str("    enabled: false\n");
    }
    out.push_str(&format!(
        "    condition: {}\n",
        condition(&rule.condition, 4)?
    ));
    for (name, cond) in &rule.exceptions {
        out.push_str(&format!(
            "    except {}: {}\n",
            quote(name)?,
            condition(cond, 4)?
        ));
    }
    out.push_str("}\n");
    Ok(out)
}

/// A condition as written in a rule, lines after the first indented by `indent` more
/// than the rule's keys.
pub fn print_condition(cond: &Cond) -> Result<String, String> {
    condition(cond, 0)
}

fn condition(cond: &Cond, indent: usize) -> Result<String, String> {
    let flat = inline(cond, Level::Or)?;
    if indent + flat.len() <= WIDTH {
        return Ok(flat);
    }
    broken(cond, indent + 4)
}

/// How tightly the context binds: what a part must be parenthesized against.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Or,
    And,
    Not,
}

/// `cond` on one line, parenthesized when it binds more loosely than `context` needs.
fn inline(cond: &Cond, context: Level) -> Result<String, String> {
    let joined = |items: &[Cond], word: &str, own: Level| -> Result<String, String> {
        if items.is_empty() {
            return Err(format!("an empty `{word}` cannot be written"));
        }
        // A part of the same kind is grouped, so the nesting reads back as it was.
        let inner = std::cmp::max(own, Level::And);
        let parts = items
            .iter()
            .map(|c| match (c, own) {
                (Cond::Or(_), Level::Or) | (Cond::And(_), Level::And) => inline(c, Level::Not),
                _ => inline(c, inner),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(parenthesize(
            parts.join(&format!(" {word} ")),
            own < context,
        ))
    };
    match cond {
        Cond::Or(items) => joined(items, "or", Level::Or),
        Cond::And(items) => joined(items, "and", Level::And),
        Cond::Not(inner) => Ok(format!("not {}", inline(inner, Level::Not)?)),
        Cond::Ancestor { min, max, body } => {
            let range = if min == max {
                format!("{min}")
            } else {
                format!("{min}..{max}")
            };
            Ok(format!("ancestor[{range}]({})", inline(body, Level::Or)?))
        }
        Cond::Exists(f) => Ok(format!("{} exists", field(f)?)),
        Cond::Flag(f) => field(f),
        Cond::SameValue(a, b) => Ok(format!("{} == {}", field(a)?, field(b)?)),
        Cond::Text(t) => text_test(t),
        Cond::Number(n) => number_test(n),
    }
}

/// `cond` over several lines: each part of its top `and` / `or` on a line of its own,
/// indented by `indent`; parts that are long themselves are broken the same way.
fn broken(cond: &Cond, indent: usize) -> Result<String, String> {
    let (items, word) = match cond {
        Cond::Or(items) if !items.is_empty() => (items, "or"),
        Cond::And(items) if !items.is_empty() => (items, "and"),
        _ => return inline(cond, Level::Or),
    };
    let pad = " ".repeat(indent);
    let mut lines = Vec::with_capacity(items.len());
    for item in items {
        let grouped = matches!(item, Cond::Or(_) | Cond::And(_));
        let flat = inline(item, Level::Not)?;
        let text = if !grouped || indent + flat.len() <= WIDTH {
            flat
        } else {
            format!("(\n{pad}    {}\n{pad})", broken(item, indent + 4)?)
        };
        lines.push(text);
    }
    Ok(format!("\n{pad}{}", lines.join(&format!("\n{pad}{word} ")))
        .trim_start()
        .to_string())
}

fn parenthesize(text: String, needed: bool) -> String {
    if needed {
        format!("({text})")
    } else {
        text
    }
}

fn text_test(t: &TextTest) -> Result<String, String> {
    let name = field(&t.field)?;
    let values = t
        .patterns
        .iter()
        .map(pattern)
        .collect::<Result<Vec<_>, _>>()?;
    let op = match t.op {
        TextOp::Equals if values.len() == 1 => "==",
        TextOp::Equals => "in",
        TextOp::StartsWith => "startswith",
        TextOp::EndsWith => "endswith",
        TextOp::Contains => "contains",
        TextOp::Regex => "regex",
    };
    Ok(format!("{name} {op} {}", operand(values)?))
}

fn number_test(n: &NumberTest) -> Result<String, String> {
    let name = field(&n.field)?;
    let values: Vec<String> = n.values.iter().map(u64::to_string).collect();
    let op = match n.op {
        NumberOp::Eq if values.len() == 1 => "==",
        NumberOp::Eq => "in",
        _ if values.len() != 1 => {
            return Err(format!("`{name}` compared by order with several numbers"))
        }
        NumberOp::Lt => "<",
        NumberOp::Le => "<=",
        NumberOp::Gt => ">",
        NumberOp::Ge => ">=",
    };
    Ok(format!("{name} {op} {}", operand(values)?))
}

/// One value as it is, several as a list.
fn operand(mut values: Vec<String>) -> Result<String, String> {
    match values.len() {
        0 => Err("a test without values cannot be written".to_string()),
        1 => Ok(values.pop().expect("one value")),
        _ => Ok(format!("[{}]", values.join(", "))),
    }
}

fn pattern(p: &Pattern) -> Result<String, String> {
    let quoted = quote(&p.text)?;
    Ok(if p.case_sensitive {
        format!("c{quoted}")
    } else {
        quoted
    })
}

/// `exe`, `parent_exe`; deeper fields only inside an ancestor block.
fn field(f: &FieldRef) -> Result<String, String> {
    match f.depth {
        0 => Ok(f.field.name().to_string()),
        1 => Ok(format!("parent_{}", f.field.name())),
        d => Err(format!(
            "`{}` {d} levels up is written only inside `ancestor[{d}](...)`",
            f.field.name()
        )),
    }
}

fn attack_id(id: &str) -> Result<String, String> {
    let bare = id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if bare {
        Ok(id.to_string())
    } else {
        quote(id)
    }
}

/// `text` between quotes as the lexer reads it back: `\"` is a quote, and every other
/// backslash stays with the character after it. So a line break cannot be written, and
/// an odd run of backslashes cannot stand before a quote or at the end (the last one
/// would take the quote with it).
pub fn quote(text: &str) -> Result<String, String> {
    if text.contains(['\n', '\r']) {
        return Err(format!(
            "{text:?} has a line break, which a string cannot hold"
        ));
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    let mut run = 0;
    for c in text.chars() {
        if c == '"' {
            if run % 2 == 1 {
                return Err(format!(
                    "{text:?} has a backslash before a quote, which a string cannot hold"
                ));
            }
            out.push('\\');
        }
        run = if c == '\\' { run + 1 } else { 0 };
        out.push(c);
    }
    if run % 2 == 1 {
        return Err(format!(
            "{text:?} ends with a backslash, which a string cannot hold"
        ));
    }
    out.push('"');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_read_back_as_written() {
        assert_eq!(quote(r#"say "hi""#).unwrap(), r#""say \"hi\"""#);
        assert_eq!(quote(r"C:\\").unwrap(), r#""C:\\""#);
        assert_eq!(quote(r#"\\""#).unwrap(), r#""\\\"""#);
        assert!(quote("a\nb").is_err());
        assert!(quote(r"C:\").is_err());
        assert!(quote(r#"a\"b"#).is_err());
    }
}
