//! The YAML of a rule file as the converter reads it: saphyr's nodes with their spans,
//! scalars kept as written, and the span of a node as a [`dsl::ast::Span`].

use dsl::ast::Span;
use saphyr::{MarkedYaml, ScalarStyle, YamlData, YamlLoader};
use std::ops::Range;

pub(crate) type Node<'a> = MarkedYaml<'a>;

/// The documents of a file, or the parser's message and where it stopped.
pub(crate) fn load(text: &str) -> Result<Vec<Node<'_>>, (String, saphyr::Marker)> {
    let mut parser = saphyr_parser::Parser::new_from_str(text);
    let mut loader: YamlLoader<Node<'_>> = YamlLoader::default();
    // Scalars stay as written: `0x10` is a string to match, not 16.
    loader.early_parse(false);
    let scanned = parser.load(&mut loader, true);
    if let Some(e) = loader.error().cloned().or(scanned.err()) {
        return Err((e.info().to_string(), *e.marker()));
    }
    Ok(loader.into_documents())
}

/// Turns the parser's positions (chars) into the byte offsets of [`Span`]s.
pub(crate) struct Locator<'t> {
    pub(crate) file: usize,
    text: &'t str,
    ascii: bool,
}

impl<'t> Locator<'t> {
    pub(crate) fn new(file: usize, text: &'t str) -> Locator<'t> {
        Locator {
            file,
            text,
            ascii: text.is_ascii(),
        }
    }

    pub(crate) fn at(&self, marker: saphyr::Marker) -> Span {
        let start = self.byte(marker.index());
        Span {
            file: self.file,
            start,
            end: start,
        }
    }

    pub(crate) fn span(&self, node: &Node<'_>) -> Span {
        let start = self.byte(node.span.start.index());
        Span {
            file: self.file,
            start,
            end: self.byte(node.span.end.index()).max(start),
        }
    }

    /// The bytes `range` of a scalar's value `text` whose node spans `node`: exact when
    /// the value is written as it reads (a plain scalar on one line), else the node.
    pub(crate) fn within(&self, node: Span, text: &str, range: Range<usize>) -> Span {
        if self.text.get(node.start..node.end) != Some(text) {
            return node;
        }
        Span {
            start: node.start + range.start,
            end: node.start + range.end,
            ..node
        }
    }

    fn byte(&self, chars: usize) -> usize {
        if self.ascii {
            chars.min(self.text.len())
        } else {
            self.text
                .char_indices()
                .nth(chars)
                .map_or(self.text.len(), |(i, _)| i)
        }
    }
}

/// A scalar as written, with how it was written.
pub(crate) fn scalar<'n>(node: &'n Node<'_>) -> Option<(&'n str, ScalarStyle)> {
    match &node.data {
        YamlData::Representation(text, style, _) => Some((text.as_ref(), *style)),
        YamlData::Tagged(_, inner) => scalar(inner),
        _ => None,
    }
}

/// A scalar's text, however it was written.
pub(crate) fn text<'n>(node: &'n Node<'_>) -> Option<&'n str> {
    scalar(node).map(|(text, _)| text)
}

/// What a scalar means under YAML 1.2's core schema, its text kept.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Scalar<'n> {
    Null,
    Bool(bool),
    /// An integer or a float, as written.
    Number(&'n str),
    Str(&'n str),
}

pub(crate) fn typed<'n>(node: &'n Node<'_>) -> Option<Scalar<'n>> {
    let (text, style) = scalar(node)?;
    if style != ScalarStyle::Plain {
        return Some(Scalar::Str(text));
    }
    Some(match text {
        "" | "~" | "null" | "Null" | "NULL" => Scalar::Null,
        "true" | "True" | "TRUE" => Scalar::Bool(true),
        "false" | "False" | "FALSE" => Scalar::Bool(false),
        t if is_number(t) => Scalar::Number(t),
        t => Scalar::Str(t),
    })
}

fn is_number(t: &str) -> bool {
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    let int = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    let hex = t
        .strip_prefix("0x")
        .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()));
    let float = digits.contains('.')
        && digits.bytes().any(|b| b.is_ascii_digit())
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    int || hex || float
}

/// The entries of a mapping, in document order.
pub(crate) fn entries<'n, 'a>(
    node: &'n Node<'a>,
) -> Option<impl Iterator<Item = (&'n Node<'a>, &'n Node<'a>)>> {
    match &node.data {
        YamlData::Mapping(map) => Some(map.iter()),
        YamlData::Tagged(_, inner) => entries(inner),
        _ => None,
    }
}

pub(crate) fn sequence<'n, 'a>(node: &'n Node<'a>) -> Option<&'n [Node<'a>]> {
    match &node.data {
        YamlData::Sequence(items) => Some(items),
        YamlData::Tagged(_, inner) => sequence(inner),
        _ => None,
    }
}

/// The value of key `key` in a mapping.
pub(crate) fn get<'n, 'a>(node: &'n Node<'a>, key: &str) -> Option<&'n Node<'a>> {
    entries(node)?
        .find(|(k, _)| text(k) == Some(key))
        .map(|(_, v)| v)
}

/// A scalar, or each scalar of a sequence of them, as text.
pub(crate) fn strings(node: &Node<'_>) -> Vec<String> {
    match sequence(node) {
        Some(items) => items.iter().filter_map(text).map(str::to_string).collect(),
        None => text(node).map(str::to_string).into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_keep_what_was_written() {
        let docs = load("a: 0x10\nb: '0x10'\nc: ~\nd: true\ne: -3\nf: C:\\Windows\\\n").unwrap();
        let doc = &docs[0];
        let get_typed = |k| typed(get(doc, k).unwrap()).unwrap();
        assert_eq!(get_typed("a"), Scalar::Number("0x10"));
        assert_eq!(get_typed("b"), Scalar::Str("0x10"));
        assert_eq!(get_typed("c"), Scalar::Null);
        assert_eq!(get_typed("d"), Scalar::Bool(true));
        assert_eq!(get_typed("e"), Scalar::Number("-3"));
        assert_eq!(get_typed("f"), Scalar::Str("C:\\Windows\\"));
    }

    #[test]
    fn spans_are_bytes_even_after_wide_chars() {
        let text = "title: é€\nid: x\n";
        let docs = load(text).unwrap();
        let at = Locator::new(3, text).span(get(&docs[0], "id").unwrap());
        assert_eq!(&text[at.start..at.end], "x");
        assert_eq!(at.file, 3);
    }

    #[test]
    fn errors_say_where() {
        let (message, at) = load("a: [1, 2\nb: c\n").unwrap_err();
        assert!(!message.is_empty());
        assert!(at.line() >= 1);
        assert!(load("a: 1\na: 2\n").is_err(), "duplicate keys are an error");
    }
}
