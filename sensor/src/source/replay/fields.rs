//! The typed, borrowed form a JSON record is parsed into: a fixed table of the keys any
//! reader maps (Windows event fields and spawnwatch's own line keys), filled in one pass
//! by [`flat_json`] for a flat object and by a serde visitor otherwise. Unknown keys are skipped without being built, so a line's long
//! `Message` costs a scan and no allocation. The same table serves flat JSON, the nested
//! `{"Event":{"System":{..},"EventData":{..}}}` form and EVTX records (which the `evtx`
//! crate renders in the nested form).

use super::flat_json;
use crate::record::Text;
use compact_str::ToCompactString;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

macro_rules! keys {
    ($($variant:ident = $name:literal),* $(,)?) => {
        /// A key a mapping reads.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum Key { $($variant),* }

        impl Key {
            pub(crate) const COUNT: usize = [$($name),*].len();

            pub(crate) fn lookup(name: &str) -> Option<Key> {
                match name {
                    $($name => Some(Key::$variant),)*
                    _ => None,
                }
            }

            /// The key as it is written in the input.
            pub(crate) fn name(self) -> &'static str {
                match self {
                    $(Key::$variant => $name),*
                }
            }
        }
    };
}

keys! {
    // Windows events: System (or its flat copies) ...
    EventId = "EventID",
    EventRecordId = "EventRecordID",
    Channel = "Channel",
    Provider = "Provider",
    SourceName = "SourceName",
    ProviderName = "ProviderName",
    EventSourceName = "EventSourceName",
    AtTimestamp = "@timestamp",
    TimeCreated = "TimeCreated",
    TimeGenerated = "TimeGenerated",
    UtcTime = "UtcTime",
    Hostname = "Hostname",
    Computer = "Computer",
    // ... and EventData (Sysmon 1/5, Security 4688/4689).
    ProcessId = "ProcessId",
    Image = "Image",
    CommandLine = "CommandLine",
    CurrentDirectory = "CurrentDirectory",
    User = "User",
    IntegrityLevel = "IntegrityLevel",
    OriginalFileName = "OriginalFileName",
    Description = "Description",
    Product = "Product",
    Company = "Company",
    FileVersion = "FileVersion",
    Hashes = "Hashes",
    LogonId = "LogonId",
    TerminalSessionId = "TerminalSessionId",
    ParentProcessId = "ParentProcessId",
    ParentImage = "ParentImage",
    ParentCommandLine = "ParentCommandLine",
    ParentUser = "ParentUser",
    NewProcessId = "NewProcessId",
    NewProcessName = "NewProcessName",
    ParentProcessName = "ParentProcessName",
    ProcessName = "ProcessName",
    SubjectUserName = "SubjectUserName",
    SubjectDomainName = "SubjectDomainName",
    SubjectUserSid = "SubjectUserSid",
    TargetUserName = "TargetUserName",
    TargetDomainName = "TargetDomainName",
    TargetUserSid = "TargetUserSid",
    MandatoryLabel = "MandatoryLabel",
    SubjectLogonId = "SubjectLogonId",
    TargetLogonId = "TargetLogonId",
    // spawnwatch's own event lines.
    Timestamp = "timestamp",
    LineHostname = "hostname",
    Action = "action",
    Pid = "pid",
    Ppid = "ppid",
    ImagePath = "image_path",
    LineCommandLine = "command_line",
    LineUser = "user",
    ParentImagePath = "parent_image_path",
    LineParentCommandLine = "parent_command_line",
    CreatorPid = "creator_pid",
    LineIntegrityLevel = "integrity_level",
    LineOriginalFileName = "original_file_name",
    Cwd = "current_working_directory",
    Exe = "exe",
    ParentExe = "parent_exe",
    Sid = "sid",
    Argv = "argv",
    EffectiveUser = "effective_user",
}

/// A value as far as a mapping cares: scalars and lists of strings (`argv`) kept, other
/// containers only noted.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Val<'a> {
    Str(Str<'a>),
    UInt(u64),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    Object,
    /// An array of strings only (empty included).
    Strings(Vec<Str<'a>>),
    Array,
}

/// A string value: borrowed from the input when it has no escapes, else unescaped
/// into a [`Text`], which keeps a short one (`DOMAIN\\user`) inline.
#[derive(Clone, Debug)]
pub(crate) enum Str<'a> {
    Borrowed(&'a str),
    Unescaped(Text),
}

impl std::ops::Deref for Str<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Str::Borrowed(s) => s,
            Str::Unescaped(s) => s,
        }
    }
}

impl PartialEq for Str<'_> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl From<Str<'_>> for Text {
    fn from(s: Str<'_>) -> Text {
        match s {
            Str::Borrowed(s) => s.into(),
            Str::Unescaped(s) => s,
        }
    }
}

impl Val<'_> {
    /// The JSON type, for "wrong-type" messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Val::Str(_) => "a string",
            Val::UInt(_) | Val::Int(_) | Val::Float(_) => "a number",
            Val::Bool(_) => "a boolean",
            Val::Null => "null",
            Val::Object => "an object",
            Val::Strings(_) | Val::Array => "an array",
        }
    }
}

/// The keys of one record that a mapping reads. A key written twice keeps its last value,
/// as JavaScript and most JSON tools do.
#[cfg_attr(test, derive(Debug, PartialEq))]
pub(crate) struct Doc<'a> {
    slots: [Option<Val<'a>>; Key::COUNT],
}

impl<'a> Doc<'a> {
    pub(super) fn empty() -> Doc<'a> {
        Doc {
            slots: std::array::from_fn(|_| None),
        }
    }

    /// Parses one JSON object (flat or nested Windows form, or a spawnwatch line) and
    /// hands it to `map`. The table is large (a slot per key): it is filled where it
    /// lives rather than moved out, which cost a 1.5 KB copy per record.
    pub(crate) fn parse_then<T>(
        bytes: &'a [u8],
        map: impl FnOnce(&mut Doc<'a>) -> T,
    ) -> Result<T, serde_json::Error> {
        let mut doc = Doc::empty();
        doc.fill(bytes)?;
        Ok(map(&mut doc))
    }

    #[cfg(test)]
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Doc<'a>, serde_json::Error> {
        let mut doc = Doc::empty();
        doc.fill(bytes)?;
        Ok(doc)
    }

    /// [`Doc::parse`] without the fast reader for flat objects.
    #[cfg(test)]
    pub(super) fn parse_general(bytes: &'a [u8]) -> Result<Doc<'a>, serde_json::Error> {
        let mut doc = Doc::empty();
        doc.fill_general(utf8(bytes)?)?;
        Ok(doc)
    }

    fn fill(&mut self, bytes: &'a [u8]) -> Result<(), serde_json::Error> {
        // One UTF-8 check for the line, not one per string.
        let text = utf8(bytes)?;
        if flat_json::fill(self, text).is_some() {
            return Ok(());
        }
        *self = Doc::empty();
        self.fill_general(text)
    }

    /// Any JSON object, with serde_json.
    fn fill_general(&mut self, text: &'a str) -> Result<(), serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        let top = Node {
            doc: Some(self),
            scope: Scope::Top,
        }
        .deserialize(&mut de)?;
        de.end()?;
        if top != Val::Object {
            return Err(de::Error::custom(format_args!(
                "expected a JSON object, found {}",
                top.type_name()
            )));
        }
        Ok(())
    }

    pub(crate) fn get(&self, key: Key) -> Option<&Val<'a>> {
        self.slots[key as usize].as_ref()
    }

    /// Moves a value out (a string the parser already had to copy is not copied again).
    pub(crate) fn take(&mut self, key: Key) -> Option<Val<'a>> {
        self.slots[key as usize].take()
    }

    pub(super) fn set(&mut self, key: Key, value: Val<'a>) {
        self.slots[key as usize] = Some(value);
    }

    /// A text field of a Windows event: numbers are written out, and `"-"`, `""`,
    /// null and containers mean unknown.
    pub(crate) fn text(&self, key: Key) -> Option<Text> {
        match self.get(key)? {
            Val::Str(s) => known(s).map(Text::from),
            Val::UInt(n) => Some(n.to_compact_string()),
            Val::Int(n) => Some(n.to_compact_string()),
            _ => None,
        }
    }

    /// The string value of a key, unknown (`"-"`, `""`) as `None`.
    pub(crate) fn str(&self, key: Key) -> Option<&str> {
        match self.get(key)? {
            Val::Str(s) => known(s),
            _ => None,
        }
    }

    /// An unsigned number written as a number, a decimal string or a `0x` hex string.
    /// `Ok(None)` when the key is absent or unknown; `Err` names what was there.
    pub(crate) fn number(&self, key: Key) -> Result<Option<u64>, String> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        match value {
            Val::UInt(n) => Ok(Some(*n)),
            Val::Str(s) => match known(s.trim()) {
                None => Ok(None),
                Some(t) => parse_number(t).map(Some).ok_or_else(|| format!("{s:?}")),
            },
            Val::Null => Ok(None),
            Val::Int(n) => Err(n.to_string()),
            Val::Float(n) => Err(n.to_string()),
            other => Err(other.type_name().to_string()),
        }
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, serde_json::Error> {
    std::str::from_utf8(bytes).map_err(|e| {
        <serde_json::Error as de::Error>::custom(format_args!(
            "invalid UTF-8 at byte {}",
            e.valid_up_to()
        ))
    })
}

/// `"-"` and `""` mean unknown.
pub(crate) fn known(s: &str) -> Option<&str> {
    (!s.is_empty() && s != "-").then_some(s)
}

/// Decimal or `0x`/`0X` hex.
pub(crate) fn parse_number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u64::from_str_radix(hex, 16).ok()
        }
        Some(_) => None,
        None if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        None => None,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// The record's top level: flat keys, or `Event`.
    Top,
    /// Inside `Event`: only `System` and `EventData` are read.
    Event,
    /// Inside `System` or `EventData`, or the value of a key.
    Inner,
    /// The `#attributes` of a value such as `TimeCreated` or `Provider`.
    Attributes,
}

/// Deserializes one value. With `doc`, an object's known keys fill the table; without,
/// an object stands for its `#text` or its `SystemTime`/`Name` attribute, the way XML
/// elements come out in JSON (`{"#attributes":{"SystemTime":".."}}`, `{"#text":4688}`).
struct Node<'d, 'a> {
    doc: Option<&'d mut Doc<'a>>,
    scope: Scope,
}

impl<'de> DeserializeSeed<'de> for Node<'_, 'de> {
    type Value = Val<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Val<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_, 'de> {
    type Value = Val<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Val<'de>, E> {
        Ok(Val::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Val<'de>, E> {
        Ok(u64::try_from(v).map_or(Val::Int(v), Val::UInt))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Val<'de>, E> {
        Ok(Val::UInt(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Val<'de>, E> {
        Ok(Val::Float(v))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Str::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Str::Unescaped(v.into())))
    }

    fn visit_string<E>(self, v: String) -> Result<Val<'de>, E> {
        Ok(Val::Str(Str::Unescaped(v.into())))
    }

    fn visit_unit<E>(self) -> Result<Val<'de>, E> {
        Ok(Val::Null)
    }

    fn visit_none<E>(self) -> Result<Val<'de>, E> {
        Ok(Val::Null)
    }

    /// Only a known key's value gets here (or a record that is no object).
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val<'de>, A::Error> {
        let mut strings = Some(Vec::new());
        let item = || Node {
            doc: None,
            scope: Scope::Inner,
        };
        while let Some(value) = seq.next_element_seed(item())? {
            match (value, &mut strings) {
                (Val::Str(s), Some(list)) => list.push(s),
                _ => strings = None,
            }
        }
        Ok(strings.map_or(Val::Array, Val::Strings))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val<'de>, A::Error> {
        let Some(doc) = self.doc else {
            return element_value(map, self.scope);
        };
        while let Some(key) = map.next_key::<Str>()? {
            let child = match (self.scope, &*key) {
                (Scope::Top, "Event") => Some(Scope::Event),
                (Scope::Event, "System" | "EventData") => Some(Scope::Inner),
                _ => None,
            };
            if let Some(scope) = child {
                map.next_value_seed(Node {
                    doc: Some(&mut *doc),
                    scope,
                })?;
                continue;
            }
            match Key::lookup(&key).filter(|_| self.scope != Scope::Event) {
                Some(k) => {
                    let value = map.next_value_seed(Node {
                        doc: None,
                        scope: Scope::Inner,
                    })?;
                    doc.set(k, value);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Val::Object)
    }
}

/// The scalar an XML element stands for: its `#text`, else its `SystemTime` or `Name`
/// attribute (the last one written of each); an object without either stays `Object`.
fn element_value<'de, A: MapAccess<'de>>(mut map: A, scope: Scope) -> Result<Val<'de>, A::Error> {
    let mut found: Option<Val<'de>> = None;
    let mut attribute: Option<Val<'de>> = None;
    while let Some(key) = map.next_key::<Str>()? {
        let wanted = match scope {
            Scope::Attributes => matches!(&*key, "SystemTime" | "Name"),
            _ => matches!(&*key, "#text" | "#attributes"),
        };
        if !wanted {
            map.next_value::<IgnoredAny>()?;
            continue;
        }
        let inner = if &*key == "#attributes" {
            Scope::Attributes
        } else {
            Scope::Inner
        };
        let value = map.next_value_seed(Node {
            doc: None,
            scope: inner,
        })?;
        if !matches!(value, Val::Str(_) | Val::UInt(_) | Val::Int(_)) {
            continue;
        }
        if &*key == "#attributes" {
            attribute = Some(value);
        } else {
            found = Some(value);
        }
    }
    Ok(found.or(attribute).unwrap_or(Val::Object))
}

impl<'de> de::Deserialize<'de> for Str<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str::Borrowed(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str::Unescaped(v.into()))
            }
            fn visit_string<E>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str::Unescaped(v.into()))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keys_are_read_and_others_skipped() {
        let line = br##"{"Message":"long \"text\" {\"EventID\":1}","EventID":1,"Image":"C:\\Windows\\cmd.exe","ProcessId":"42","X":[1,{"a":2}]}"##;
        let doc = Doc::parse(line).unwrap();
        assert_eq!(doc.number(Key::EventId), Ok(Some(1)));
        assert_eq!(doc.str(Key::Image), Some(r"C:\Windows\cmd.exe"));
        assert_eq!(doc.number(Key::ProcessId), Ok(Some(42)));
        assert_eq!(doc.get(Key::CommandLine), None);
    }

    #[test]
    fn nested_form_reads_system_and_event_data() {
        let line = br##"{"Event":{"#attributes":{"xmlns":"x"},"System":{"Provider":{"#attributes":{"Name":"Microsoft-Windows-Sysmon","Guid":"{5770385F}"}},"EventID":{"#attributes":{"Qualifiers":0},"#text":"1"},"Execution":{"#attributes":{"ProcessID":9}},"Computer":"WEB01","TimeCreated":{"#attributes":{"SystemTime":"2019-03-19T23:34:25.340612Z"}}},"EventData":{"ProcessId":4242,"Image":"C:\\cmd.exe"}}}"##;
        let doc = Doc::parse(line).unwrap();
        assert_eq!(doc.number(Key::EventId), Ok(Some(1)));
        assert_eq!(doc.str(Key::Provider), Some("Microsoft-Windows-Sysmon"));
        assert_eq!(doc.str(Key::Computer), Some("WEB01"));
        assert_eq!(
            doc.str(Key::TimeCreated),
            Some("2019-03-19T23:34:25.340612Z")
        );
        assert_eq!(doc.number(Key::ProcessId), Ok(Some(4242)));
    }

    #[test]
    fn event_data_as_a_string_is_ignored() {
        let doc = Doc::parse(br##"{"EventData":"<EventData/>","EventID":4688}"##).unwrap();
        assert_eq!(doc.number(Key::EventId), Ok(Some(4688)));
    }

    #[test]
    fn numbers_in_every_writing() {
        let doc = Doc::parse(
            br##"{"ProcessId":"0x2d54","NewProcessId":"0X1F","ParentProcessId":" 77 ","pid":-1,"ppid":"-","creator_pid":"0xzz","exe":1.5}"##,
        )
        .unwrap();
        assert_eq!(doc.number(Key::ProcessId), Ok(Some(0x2d54)));
        assert_eq!(doc.number(Key::NewProcessId), Ok(Some(0x1f)));
        assert_eq!(doc.number(Key::ParentProcessId), Ok(Some(77)));
        assert_eq!(doc.number(Key::Ppid), Ok(None));
        assert!(doc.number(Key::Pid).is_err());
        assert!(doc.number(Key::CreatorPid).is_err());
        assert!(doc.number(Key::Exe).is_err());
    }

    #[test]
    fn dash_and_empty_are_unknown() {
        let doc = Doc::parse(br##"{"User":"-","Image":"","CommandLine":"x"}"##).unwrap();
        assert_eq!(doc.text(Key::User), None);
        assert_eq!(doc.text(Key::Image), None);
        assert_eq!(doc.text(Key::CommandLine).as_deref(), Some("x"));
    }

    /// The fast reader takes the first line, serde_json the others (a nested value).
    #[test]
    fn a_key_written_twice_keeps_its_last_value() {
        for line in [
            r#"{"pid":1,"exe":"a.exe","pid":2,"exe":"b.exe"}"#,
            r#"{"pid":1,"exe":"a.exe","x":{},"pid":2,"exe":"b.exe"}"#,
            r#"{"pid":1,"exe":"a.exe","x":[1.5],"pid":2,"exe":"b\u002eexe"}"#,
        ] {
            let doc = Doc::parse(line.as_bytes()).unwrap();
            assert_eq!(doc.number(Key::Pid), Ok(Some(2)), "{line}");
            assert_eq!(doc.str(Key::Exe), Some("b.exe"), "{line}");
            assert_eq!(Doc::parse_general(line.as_bytes()).unwrap(), doc, "{line}");
        }
        let nested = br##"{"Event":{"System":{"EventID":{"#text":"1","#text":"5"},"Computer":"A","Computer":"B"},"EventData":{"Image":"a","Image":"b"}}}"##;
        let doc = Doc::parse(nested).unwrap();
        assert_eq!(doc.number(Key::EventId), Ok(Some(5)));
        assert_eq!(doc.str(Key::Computer), Some("B"));
        assert_eq!(doc.str(Key::Image), Some("b"));
    }

    #[test]
    fn not_an_object_is_an_error() {
        assert!(Doc::parse(b"[1,2]").is_err());
        assert!(Doc::parse(b"{\"EventID\":1").is_err());
        assert!(Doc::parse(b"{\"EventID\":1} x").is_err());
    }
}
