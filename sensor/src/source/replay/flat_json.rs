//! A fast reader for the commonest record: one flat JSON object whose values are
//! strings, whole non-negative numbers, booleans, null or lists of strings (spawnwatch's
//! own event lines, with their `argv`; flat Windows event exports). It fills the same [`Doc`] serde_json would, or gives up
//! on anything else (a nested value, a negative or fractional number, a surrogate
//! escape, a control character, a syntax error) and leaves the line to serde_json,
//! which reads the rest and words the errors.
//!
//! Why by hand: serde_json spends most of a spawnwatch line on the `\\` of Windows
//! paths, stopping at each one through its general visitor machinery; simd-json and
//! sonic-rs measured no better through the same serde visitor. This reader jumps from
//! one `"` or `\` to the next, eight bytes at a time, and borrows every string without
//! escapes.

use super::fields::{Doc, Key, Str, Val};
use crate::record::Text;

/// Fills `doc` from `text` if it is a flat object this reader handles. `None` means
/// "parse it the general way": `doc` may then hold some of the keys and must be
/// cleared first.
pub(crate) fn fill<'a>(doc: &mut Doc<'a>, text: &'a str) -> Option<()> {
    // A raw control character is invalid inside a string and rare between tokens; one
    // check here lets the string scan look for `"` and `\` alone.
    if text.bytes().fold(false, |seen, b| seen | (b < 0x20)) {
        return None;
    }
    let mut cursor = Cursor {
        text,
        at: 0,
        unescaped: String::new(),
    };
    cursor.skip_spaces();
    cursor.expect(b'{')?;
    cursor.skip_spaces();
    if cursor.peek() == Some(b'}') {
        cursor.at += 1;
    } else {
        cursor.members(doc)?;
    }
    cursor.skip_spaces();
    (cursor.at == text.len()).then_some(())
}

struct Cursor<'a> {
    text: &'a str,
    /// The next byte to read.
    at: usize,
    /// Where a string with escapes is put together, reused for the line's strings.
    unescaped: String,
}

impl<'a> Cursor<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.at += 1;
        }
    }

    /// `"key": value` pairs up to and including the closing `}`.
    fn members(&mut self, doc: &mut Doc<'a>) -> Option<()> {
        loop {
            self.expect(b'"')?;
            let name = self.string(true)?;
            self.skip_spaces();
            self.expect(b':')?;
            self.skip_spaces();
            let key = Key::find(&name);
            let value = self.scalar(key.is_some())?;
            if let Some(key) = key {
                doc.put(key, value);
            }
            self.skip_spaces();
            match self.peek()? {
                b',' => {
                    self.at += 1;
                    self.skip_spaces();
                }
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A string, number, boolean or null. An unwanted string is checked but not built.
    fn scalar(&mut self, wanted: bool) -> Option<Val<'a>> {
        let rest = &self.bytes()[self.at..];
        let (value, length) = match rest.first()? {
            b'"' => {
                self.at += 1;
                return self.string(wanted).map(Val::Str);
            }
            b'0'..=b'9' => return self.unsigned().map(Val::UInt),
            b'[' => {
                self.at += 1;
                return self.strings(wanted).map(Val::Strings);
            }
            _ if rest.starts_with(b"true") => (Val::Bool(true), 4),
            _ if rest.starts_with(b"false") => (Val::Bool(false), 5),
            _ if rest.starts_with(b"null") => (Val::Null, 4),
            _ => return None,
        };
        self.at += length;
        Some(value)
    }

    /// The rest of a list of strings whose `[` is read (anything else in it: give up).
    fn strings(&mut self, wanted: bool) -> Option<Vec<Str<'a>>> {
        let mut list = Vec::new();
        self.skip_spaces();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(list);
        }
        loop {
            self.expect(b'"')?;
            let item = self.string(wanted)?;
            if wanted {
                list.push(item);
            }
            self.skip_spaces();
            match self.peek()? {
                b',' => {
                    self.at += 1;
                    self.skip_spaces();
                }
                b']' => {
                    self.at += 1;
                    return Some(list);
                }
                _ => return None,
            }
        }
    }

    /// A whole number that fits a `u64` (serde_json reads a larger one as a float).
    fn unsigned(&mut self) -> Option<u64> {
        let digits = self.bytes()[self.at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let written = &self.text[self.at..self.at + digits];
        self.at += digits;
        let leading_zero = digits > 1 && written.starts_with('0');
        if leading_zero || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        written.parse().ok()
    }

    /// The rest of a string whose opening `"` is read: borrowed when it has no escapes.
    /// When not `wanted`, the escapes are checked and nothing is built (the value is
    /// then empty).
    fn string(&mut self, wanted: bool) -> Option<Str<'a>> {
        let start = self.at;
        let mut escaped = false;
        // Text from `copied` on is not in `unescaped` yet; `\\`, `\"` and `\/` stand for
        // their second byte, which simply starts the next run to copy.
        let mut copied = start;
        let mut search = start;
        loop {
            let stop = search + quote_or_backslash(&self.bytes()[search..])?;
            if self.bytes()[stop] == b'"' {
                self.at = stop + 1;
                return Some(match (escaped, wanted) {
                    (false, _) => Str::Borrowed(&self.text[start..stop]),
                    (true, false) => Str::Borrowed(""),
                    (true, true) => {
                        self.unescaped.push_str(&self.text[copied..stop]);
                        Str::Unescaped(Text::from(self.unescaped.as_str()))
                    }
                });
            }
            if !escaped {
                escaped = true;
                self.unescaped.clear();
                // Room for any string of the line, so that it never grows.
                self.unescaped.reserve(self.text.len());
            }
            if wanted {
                self.unescaped.push_str(&self.text[copied..stop]);
            }
            if matches!(self.bytes().get(stop + 1), Some(b'"' | b'\\' | b'/')) {
                copied = stop + 1;
                search = stop + 2;
            } else {
                let (ch, next) = unescape(self.bytes(), stop + 1)?;
                if wanted {
                    self.unescaped.push(ch);
                }
                copied = next;
                search = next;
            }
        }
    }
}

/// Where the first `"` or `\` is, eight bytes at a time: a string's run of plain
/// characters is usually short (a key, a path's component), which suits this better
/// than a vectorised search with its set-up.
fn quote_or_backslash(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGHS: u64 = ONES << 7;
    // The lowest flagged byte is the first equal one (a borrow flags only bytes above).
    let equal = |word: u64, byte: u8| {
        let diff = word ^ (ONES * u64::from(byte));
        diff.wrapping_sub(ONES) & !diff & HIGHS
    };
    let mut words = bytes.chunks_exact(8);
    for (i, word) in (&mut words).enumerate() {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        let found = equal(word, b'"') | equal(word, b'\\');
        if found != 0 {
            return Some(i * 8 + found.trailing_zeros() as usize / 8);
        }
    }
    let tail = words.remainder();
    let at = tail.iter().position(|&b| b == b'"' || b == b'\\')?;
    Some(bytes.len() - tail.len() + at)
}

/// The character a control or `\u` escape stands for, its `\` at `at - 1`, and where
/// the escape ends. A `\u` surrogate (half of a pair) is left to serde_json.
fn unescape(bytes: &[u8], at: usize) -> Option<(char, usize)> {
    let ch = match *bytes.get(at)? {
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let hex = bytes.get(at + 1..at + 5)?;
            let code = hex.iter().try_fold(0u32, |code, &b| {
                Some(code * 16 + char::from(b).to_digit(16)?)
            })?;
            return Some((char::from_u32(code)?, at + 5));
        }
        _ => return None,
    };
    Some((ch, at + 1))
}

#[cfg(test)]
mod tests {
    use super::super::fields::Doc;
    use super::*;
    use proptest::prelude::*;

    /// What the fast reader fills, or `None` where it gives up.
    fn fast(text: &str) -> Option<Doc<'_>> {
        let mut doc = Doc::empty();
        fill(&mut doc, text).map(|()| doc)
    }

    #[test]
    fn reads_a_spawnwatch_line() {
        let line = r##"{"timestamp":"2026-11-27T10:00:00.123Z","action":"create","pid":4242,"image_path":"C:\\Windows\\System32\\cmd.exe","command_line":"cmd /c \"echo \u00e9\u0041\"","elevated":true,"sid":null}"##;
        let doc = fast(line).expect("a flat line is read");
        assert_eq!(doc.get(Key::Pid), Some(&Val::UInt(4242)));
        assert_eq!(doc.str(Key::Action), Some("create"));
        assert_eq!(
            doc.get(Key::ImagePath),
            Some(&Val::Str(Str::Unescaped(
                r"C:\Windows\System32\cmd.exe".into()
            )))
        );
        assert_eq!(doc.str(Key::LineCommandLine), Some("cmd /c \"echo éA\""));
        assert_eq!(doc.get(Key::Sid), Some(&Val::Null));
        assert!(matches!(
            doc.get(Key::Timestamp),
            Some(Val::Str(Str::Borrowed(_)))
        ));
    }

    #[test]
    fn reads_lists_of_strings() {
        let doc = fast(r#"{"argv":["sh", "-c","echo \"x\""],"x":[],"y":["unwanted"]}"#)
            .expect("a flat line with string lists is read");
        let argv = ["sh", "-c", "echo \"x\""].map(|s| Str::Unescaped(s.into()));
        assert_eq!(doc.get(Key::Argv), Some(&Val::Strings(argv.to_vec())));
    }

    #[test]
    fn gives_up_on_what_it_does_not_read() {
        for line in [
            r#"{"pid":-1}"#,
            r#"{"pid":1.5}"#,
            r#"{"pid":1e3}"#,
            r#"{"pid":01}"#,
            r#"{"pid":18446744073709551616}"#,
            r#"{"x":{"pid":1}}"#,
            r#"{"x":[1]}"#,
            r#"{"x":["a",1]}"#,
            r#"{"x":["a",]}"#,
            r#"{"x":[["a"]]}"#,
            r#"{"x":"\ud83d\ude00"}"#,
            r#"{"x":"\q"}"#,
            r#"{"x":"\u12g4"}"#,
            "{\"x\":\"a\tb\"}",
            "{\"x\":1,\t\"y\":2}",
            r#"{"x":1,}"#,
            r#"{"x":1} {"#,
            r#"{"x" 1}"#,
            r#"{"x":nul}"#,
            r#"[1]"#,
            r#"{"x":"open"#,
        ] {
            assert!(fast(line).is_none(), "read {line}");
        }
    }

    /// Pieces of flat objects: every escape, numbers at the edges of what is read.
    fn json_string() -> impl Strategy<Value = String> {
        let text = proptest::collection::vec(
            prop_oneof![
                8 => any::<char>().prop_map(|c| match c {
                    '"' => r#"\""#.to_string(),
                    '\\' => r"\\".to_string(),
                    c => c.to_string(),
                }),
                8 => "[a-zA-Z:. ]{1,12}",
                2 => Just(r"\\".to_string()),
                1 => Just(r#"\""#.to_string()),
                1 => Just(r"\/".to_string()),
                1 => Just(r"\b\f\n\r\t".to_string()),
                2 => (0u32..0x1_0000).prop_map(|c| format!("\\u{c:04x}")),
                // Given up on: an unknown escape, a raw control character.
                1 => Just(r"\x".to_string()),
                1 => Just("\t".to_string()),
            ],
            0..6,
        );
        text.prop_map(|parts| format!("\"{}\"", parts.concat()))
    }

    fn json_key() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "pid",
                "ppid",
                "action",
                "image_path",
                "EventID",
                "Image",
                "Event",
                "#text",
                "Message",
                "exe",
                "argv",
            ])
            .prop_map(|k| format!("\"{k}\"")),
            Just(r#""p\u0069d""#.to_string()),
            json_string(),
        ]
    }

    fn json_value() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => json_string(),
            3 => any::<u64>().prop_map(|n| n.to_string()),
            1 => any::<i64>().prop_map(|n| n.to_string()),
            1 => any::<f64>().prop_map(|n| n.to_string()),
            2 => prop::sample::select(vec![
                "true", "false", "null", "0", "00", "1e2", "-0", "18446744073709551616",
                "{}", "[1,\"x\"]", "{\"pid\":1}", "tru", "[]", "[ ]", "[\"sh\", \"-c\",\"a \\\"b\"]",
                "[\"x\"", "[\"x\",]",
            ])
            .prop_map(String::from),
        ]
    }

    fn json_object() -> impl Strategy<Value = String> {
        let space = prop::sample::select(vec!["", "", "", "", " ", " ", "  ", "\t", "\r\n"]);
        proptest::collection::vec((json_key(), json_value(), space.clone(), space), 0..6).prop_map(
            |members| {
                let body: Vec<String> = members
                    .into_iter()
                    .map(|(k, v, s1, s2)| format!("{s1}{k}{s2}:{s1}{v}{s2}"))
                    .collect();
                format!("{{{}}}", body.join(","))
            },
        )
    }

    proptest! {
        /// Wherever the fast reader answers, serde_json reads the same table.
        #[test]
        fn agrees_with_serde_json(text in json_object(), cut in any::<prop::sample::Index>()) {
            let cut = text.get(..cut.index(text.len() + 1)).unwrap_or("");
            for text in [text.as_str(), cut] {
                if let Some(doc) = fast(text) {
                    prop_assert_eq!(Some(doc), Doc::parse_general(text.as_bytes()).ok());
                }
            }
        }

        /// And it does answer for the lines spawnwatch writes.
        #[test]
        fn reads_every_line_spawnwatch_writes(
            path in "[A-Za-z:\\\\ .\"é\u{1F600}\u{7}]{0,40}",
            pid in any::<u32>(),
        ) {
            let line = serde_json::json!({"action": "create", "pid": pid, "image_path": path, "x": null, "y": true});
            let text = line.to_string();
            let Some(doc) = fast(&text) else {
                return Err(TestCaseError::fail(format!("gave up on {text}")));
            };
            prop_assert_eq!(doc.str(Key::ImagePath), (!path.is_empty()).then_some(path.as_str()));
        }
    }
}
