//! The byte-level test that spares a JSON line the parser when it cannot be a process
//! event. It may keep lines that turn out not to be (they are parsed and skipped); it
//! must never drop one that is.

use memchr::memmem::Finder;

/// The Windows event ids a replay maps: Sysmon 1/5, Security 4688/4689.
pub(crate) const PROCESS_EVENT_IDS: [u64; 4] = [1, 5, 4688, 4689];

/// How far past `{` a nested `EventID` (`{"#attributes":{..},"#text":4688}`) may put its
/// `#text` before the filter gives up and keeps the line.
const TEXT_WINDOW: usize = 512;

pub(crate) struct Prefilter {
    event_id: Finder<'static>,
    /// Winlogbeat's `winlog.event_id`, nested (`"event_id"`) or dotted.
    ecs_event_id: Finder<'static>,
    text: Finder<'static>,
    action: Finder<'static>,
}

impl Prefilter {
    pub(crate) fn new() -> Prefilter {
        Prefilter {
            event_id: Finder::new(b"\"EventID\""),
            ecs_event_id: Finder::new(b"event_id\""),
            text: Finder::new(b"\"#text\""),
            action: Finder::new(b"\"action\""),
        }
    }

    /// Whether `line` may hold a process event: an `EventID` (or Winlogbeat's
    /// `event_id`) key whose value is 1, 5, 4688 or 4689 (a number or a string, any spacing, at any depth, or an object whose
    /// `#text` is), or an `action` key (spawnwatch's own lines).
    ///
    /// Inside a JSON string every `"` is escaped, so `"EventID"` and `"action"` followed
    /// by a colon only match keys.
    ///
    /// `action` is looked for first: a spawnwatch line has it near its start, and a line
    /// that is not a process event is scanned for both keys either way.
    pub(crate) fn keep(&self, line: &[u8]) -> bool {
        self.action
            .find_iter(line)
            .any(|at| colon_follows(&line[at + b"\"action\"".len()..]).is_some())
            || self.id_may_match(line)
    }

    /// Whether an `EventID` key, or when there is none (ECS) an `event_id` key, or
    /// when there is neither an `EventID` in other letter case, has a value that may be
    /// a process event's: a line is scanned again only when it has no `EventID` at all.
    fn id_may_match(&self, line: &[u8]) -> bool {
        let mut keys = self.event_id.find_iter(line).peekable();
        if keys.peek().is_some() {
            return keys.any(|at| self.value_may_match(&line[at + b"\"EventID\"".len()..]));
        }
        let mut ecs = self.ecs_event_id.find_iter(line).peekable();
        if ecs.peek().is_some() {
            return ecs.any(|at| self.value_may_match(&line[at + b"event_id\"".len()..]));
        }
        folded_keys(line, b"\"eventid\"").any(|rest| self.value_may_match(rest))
    }

    /// `rest` starts right after a `"EventID"` or `"#text"` key.
    fn value_may_match(&self, rest: &[u8]) -> bool {
        let Some(value) = colon_follows(rest) else {
            return false;
        };
        match value.first() {
            Some(b'{') => {
                let window = &value[..value.len().min(TEXT_WINDOW)];
                match self.text.find(window) {
                    Some(at) => self.value_may_match(&value[at + b"\"#text\"".len()..]),
                    // No #text close by: keep the line rather than guess.
                    None => true,
                }
            }
            Some(b'"') => match value.get(1) {
                // An escape inside the string ("\u0031"): keep.
                Some(b'\\') => true,
                _ => id_matches(skip_ws(&value[1..]), true),
            },
            Some(b) if b.is_ascii_digit() => id_matches(value, false),
            _ => false,
        }
    }
}

/// What follows each `key` (lower case, quotes included) written in any letter case.
fn folded_keys<'l>(line: &'l [u8], key: &'static [u8]) -> impl Iterator<Item = &'l [u8]> {
    let last = key[key.len() - 2];
    memchr::memchr2_iter(last, last.to_ascii_uppercase(), line).filter_map(move |at| {
        let start = (at + 2).checked_sub(key.len())?;
        let end = at + 2;
        let written = line.get(start..end)?;
        written.eq_ignore_ascii_case(key).then(|| &line[end..])
    })
}

/// After optional whitespace, a `:` and optional whitespace: what follows.
fn colon_follows(rest: &[u8]) -> Option<&[u8]> {
    match skip_ws(rest).split_first() {
        Some((b':', value)) => Some(skip_ws(value)),
        _ => None,
    }
}

fn skip_ws(bytes: &[u8]) -> &[u8] {
    let n = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .unwrap_or(bytes.len());
    &bytes[n..]
}

/// Whether the digits at the start of `value` are a process event id. A number that
/// goes on as a fraction or exponent is kept (the parser decides).
fn id_matches(value: &[u8], quoted: bool) -> bool {
    let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return false;
    }
    let mut id: u64 = 0;
    for &b in &value[..digits] {
        id = match id
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
        {
            Some(n) => n,
            None => return false,
        };
    }
    let after = &value[digits..];
    match after.first() {
        Some(b'.' | b'e' | b'E') => true,
        _ if quoted => {
            // Only whitespace may sit between the digits and the closing quote.
            skip_ws(after).first() == Some(&b'"') && PROCESS_EVENT_IDS.contains(&id)
        }
        _ => PROCESS_EVENT_IDS.contains(&id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keep(line: &str) -> bool {
        Prefilter::new().keep(line.as_bytes())
    }

    #[test]
    fn keeps_every_writing_of_a_process_event_id() {
        let kept = [
            r##"{"EventID":1,"Image":"c"}"##,
            r##"{"EventID":5}"##,
            r##"{"EventID":4688}"##,
            r##"{"EventID":4689,"x":1}"##,
            r##"{"EventID": 1}"##,
            r##"{"EventID" : 4688 }"##,
            "{\"EventID\"\t:\t5\r}",
            r##"{"EventID":"1"}"##,
            r##"{"EventID": "4688"}"##,
            r##"{"EventID":" 4689 "}"##,
            r##"{"EventID":"0001"}"##,
            r##"{"Image":"c","ProcessId":4,"EventID":1}"##,
            r##"{"Message":"EventID 10","EventID":1}"##,
            r##"{"EventID":10,"Nested":{"EventID":1}}"##,
            r##"{"Event":{"System":{"EventID":1,"Computer":"W"},"EventData":{}}}"##,
            r##"{"Event":{"System":{"EventID":{"#text":"1"}}}}"##,
            r##"{"Event":{"System":{"EventID":{"#text":4688}}}}"##,
            r##"{"Event":{"System":{"EventID":{"#attributes":{"Qualifiers":0},"#text":4689}}}}"##,
            r##"{"Event":{"System":{"EventID":{ "#attributes" : { "Qualifiers" : "" } , "#text" : "5" }}}}"##,
            r##"{"EventID":1.0}"##,
            r##"{"EventID":"\u0031"}"##,
            r##"{"action":"create","pid":4242,"timestamp":"2026-11-27T10:00:00Z"}"##,
            r##"{"pid":4242,"action" : "terminate"}"##,
            r##"{"winlog":{"channel":"Security","event_id":4688}}"##,
            r##"{"winlog":{"event_id":"1"}}"##,
            r##"{"winlog.event_id":"4689"}"##,
            r##"{"eventid":1}"##,
            r##"{"EventId": "4688"}"##,
            r##"{"Message":"x","EVENTID":{"Value":5}}"##,
        ];
        for line in kept {
            assert!(keep(line), "dropped a process event: {line}");
        }
    }

    #[test]
    fn a_nested_event_id_without_text_close_by_is_kept() {
        let padding = "x".repeat(TEXT_WINDOW);
        let line = format!(r##"{{"EventID":{{"#attributes":{{"Pad":"{padding}"}},"#text":10}}}}"##);
        assert!(keep(&line));
    }

    #[test]
    fn drops_other_events() {
        let dropped = [
            r##"{"EventID":10,"Image":"c"}"##,
            r##"{"EventID":11}"##,
            r##"{"EventID":4624}"##,
            r##"{"EventID":"4690"}"##,
            r##"{"EventID":46880}"##,
            r##"{"EventID":"1x"}"##,
            r##"{"EventID":null}"##,
            r##"{"EventID":-1}"##,
            r##"{"EventID":{"#text":"7"}}"##,
            r##"{"Message":"\"EventID\":1 in a string","EventID":12}"##,
            r##"{"Type":"action","EventID":3}"##,
            r##"{"Message":"no id at all"}"##,
            r##"{"EventID":99999999999999999999999}"##,
            r##"{"winlog":{"event_id":"10"}}"##,
            r##"{"message":"winlog.event_id\": 1"}"##,
            r##"{"eventid":3}"##,
            r##"{"message":"eventid\": 1","EventId":10}"##,
            "",
        ];
        for line in dropped {
            assert!(!keep(line), "kept {line}");
        }
    }
}
