//! The typed, borrowed form a JSON record is parsed into: a fixed table of the keys any
//! reader maps (Windows event fields and spawnwatch's own line keys), filled in one pass
//! by [`flat_json`] for a flat object and by a serde visitor otherwise. Unknown keys are skipped without being built, so a line's long
//! `Message` costs a scan and no allocation. The same table serves flat JSON, the nested
//! `{"Event":{"System":{..},"EventData":{..}}}` form and EVTX records (which the `evtx`
//! crate renders in the nested form).

use super::{embedded, flat_json};
use crate::record::Text;
use compact_str::ToCompactString;
use rustc_hash::FxHashMap;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::sync::LazyLock;

macro_rules! keys {
    ($($variant:ident = $name:literal),* $(,)?) => {
        /// A key a mapping reads.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum Key { $($variant),* }

        impl Key {
            pub(crate) const COUNT: usize = [$($name),*].len();
            const ALL: [Key; Key::COUNT] = [$(Key::$variant),*];

            pub(crate) fn lookup(name: &str) -> Option<Key> {
                match name {
                    $($name => Some(Key::$variant),)*
                    _ => alias(name),
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
    // Azure Monitor's tables: the event data as a JSON or XML string (WindowsEvent's
    // EventData may be either, the Event table's is XML), or the whole event as XML.
    EventData = "EventData",
    RawEventData = "RawEventData",
    // Elastic's ECS fields (Winlogbeat, Elastic Agent), nested or dotted: what they mean
    // depends on the event (see `ecs.rs`).
    EcsPid = "process.pid",
    EcsExecutable = "process.executable",
    EcsCommandLine = "process.command_line",
    EcsWorkingDirectory = "process.working_directory",
    EcsOriginalFileName = "process.pe.original_file_name",
    EcsParentPid = "process.parent.pid",
    EcsParentExecutable = "process.parent.executable",
    EcsParentCommandLine = "process.parent.command_line",
    EcsUserName = "user.name",
    EcsUserDomain = "user.domain",
    EcsHostName = "host.name",
    ExeDeleted = "exe_deleted",
    ExeMemfd = "exe_memfd",
}

/// How a record spelled a key it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Spelling {
    /// As the key is named (or one of its aliases).
    Exact,
    /// In other letter case (`EventId`, `processid`, `COMMANDLINE`).
    Folded,
}

impl Key {
    /// A key by its name as a record wrote it: exactly, or for a Windows event's own
    /// fields in any letter case, which exports and pipelines change (`EventId`,
    /// `processid`). spawnwatch's own lines and ECS's fields have one spelling.
    #[inline]
    pub(crate) fn find(name: &str) -> Option<(Key, Spelling)> {
        match Key::lookup(name) {
            Some(key) => Some((key, Spelling::Exact)),
            None => Key::find_folded(name),
        }
    }

    /// The fold by a table of the lower-case names: most keys a record has are not
    /// read at all, and each of them is looked up here.
    fn find_folded(name: &str) -> Option<(Key, Spelling)> {
        static FOLDED: LazyLock<FxHashMap<Box<[u8]>, Key>> = LazyLock::new(|| {
            Key::ALL
                .into_iter()
                .filter(|key| key.folds())
                .map(|key| (key.name().to_ascii_lowercase().into_bytes().into(), key))
                .collect()
        });
        // NXLog's flat records carry the event's `ProcessID` (the process that logged
        // it: Sysmon's own) beside Sysmon's `ProcessId`: never the same field.
        if name == "ProcessID" {
            return None;
        }
        let mut lower = [0; 32];
        let lower = lower.get_mut(..name.len())?;
        lower.copy_from_slice(name.as_bytes());
        lower.make_ascii_lowercase();
        FOLDED.get(&*lower).map(|&key| (key, Spelling::Folded))
    }

    /// Whether the key is a Windows event's field, found in any letter case.
    fn folds(self) -> bool {
        self as usize <= Key::MandatoryLabel as usize
            || matches!(self, Key::EventData | Key::RawEventData)
    }
}

/// Other names of a key: where Winlogbeat, ECS and Log Analytics's `Event` table put
/// the event's id, channel, provider and computer.
fn alias(name: &str) -> Option<Key> {
    Some(match name {
        // Winlogbeat 6 wrote winlog's fields at the top (`event_id`, `event_data`, ...).
        "winlog.event_id" | "event.code" | "event_id" => Key::EventId,
        "winlog.channel" | "EventLog" | "log_name" => Key::Channel,
        "winlog.provider_name" | "event.provider" => Key::ProviderName,
        "Source" | "source_name" => Key::SourceName,
        "winlog.computer_name" | "computer_name" => Key::Computer,
        _ => {
            return name
                .strip_prefix("winlog.event_data.")
                .and_then(Key::lookup)
        }
    })
}

/// The ECS objects whose fields are read (`winlog.event_data` holds the raw names).
const ECS_OBJECTS: [&str; 7] = [
    "winlog",
    "process",
    "process.parent",
    "process.pe",
    "user",
    "host",
    "event",
];

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
    /// The same value, owning its text.
    pub(super) fn into_owned<'b>(self) -> Val<'b> {
        match self {
            Val::Str(s) => Val::Str(Str::Unescaped(s.into())),
            Val::UInt(n) => Val::UInt(n),
            Val::Int(n) => Val::Int(n),
            Val::Float(n) => Val::Float(n),
            Val::Bool(b) => Val::Bool(b),
            Val::Null => Val::Null,
            Val::Object => Val::Object,
            Val::Strings(list) => {
                Val::Strings(list.into_iter().map(|s| Str::Unescaped(s.into())).collect())
            }
            Val::Array => Val::Array,
        }
    }

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
        if flat_json::fill(self, text).is_none() {
            *self = Doc::empty();
            self.fill_general(text)?;
        }
        embedded::expand(self).map_err(de::Error::custom)
    }

    /// Takes every key of `other` this table lacks, as owned values (`other` borrows
    /// text that does not live as long).
    pub(super) fn absorb(&mut self, other: Doc<'_>) {
        for (slot, value) in self.slots.iter_mut().zip(other.slots) {
            if slot.is_none() {
                *slot = value.map(Val::into_owned);
            }
        }
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

    /// Sets a key as [`Key::find`] found it: an exact spelling replaces what was there
    /// (the last one written wins), another case only fills an empty slot, so
    /// `ProcessId` wins over `processid` wherever each stands.
    #[inline]
    pub(super) fn put(&mut self, (key, spelling): (Key, Spelling), value: Val<'a>) {
        if spelling == Spelling::Exact || self.get(key).is_none() {
            self.set(key, value);
        }
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
            // Tools that hold every number as a double write `4688.0`.
            Val::Float(n) if n.fract() == 0.0 && (0.0..=MAX_EXACT).contains(n) => {
                Ok(Some(*n as u64))
            }
            Val::Float(n) => Err(n.to_string()),
            other => Err(other.type_name().to_string()),
        }
    }
}

/// The largest whole number a double holds exactly (2^53).
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

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
    /// The record's top level: flat keys, `Event`, or ECS objects (an Elasticsearch
    /// export's `_source` is read as the top level too).
    Top,
    /// Inside one of [`ECS_OBJECTS`]: its fields are keys by their dotted path.
    Ecs(&'static str),
    /// Inside `Event`: only `System` and `EventData` are read.
    Event,
    /// Inside `System` or `EventData`, or the value of a key.
    Inner,
    /// The `#attributes` of a value such as `TimeCreated` or `Provider`.
    Attributes,
    /// `EventData`'s `Data` elements as XML-to-JSON converters write them (xmltodict,
    /// Logstash's xml filter): `[{"@Name":"Image","#text":".."},..]`, or one object.
    Data,
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

    /// Only a known key's value gets here, xmltodict's list of `Data` elements, or a
    /// record that is no object.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val<'de>, A::Error> {
        match self.doc {
            Some(doc) if self.scope == Scope::Data => {
                while seq
                    .next_element_seed(Node {
                        doc: Some(&mut *doc),
                        scope: Scope::Data,
                    })?
                    .is_some()
                {}
                Ok(Val::Array)
            }
            _ => {
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
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val<'de>, A::Error> {
        let Some(doc) = self.doc else {
            return element_value(map, self.scope);
        };
        if self.scope == Scope::Data {
            return named_data(map, doc);
        }
        while let Some(key) = map.next_key::<Str>()? {
            let mut path = [0; 64];
            let (child, key) = match self.scope {
                Scope::Ecs(object) => ecs_child(object, &key, &mut path),
                scope => (child_scope(scope, &key), Key::find(&key)),
            };
            if let Some(scope) = child {
                // An object is read into the table; anything else is the key's value
                // (`user` is a spawnwatch line's string, or ECS's object).
                let value = map.next_value_seed(Node {
                    doc: Some(&mut *doc),
                    scope,
                })?;
                if let Some(key) = key.filter(|_| value != Val::Object) {
                    doc.put(key, value);
                }
                continue;
            }
            match key.filter(|_| self.scope != Scope::Event) {
                Some(k) => {
                    let value = map.next_value_seed(Node {
                        doc: None,
                        scope: Scope::Inner,
                    })?;
                    doc.put(k, value);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Val::Object)
    }
}

/// The scope an object under `key` is read in, if it is read into the table. The
/// Windows event's own objects are found in any letter case, and `System` and
/// `EventData` also without the `Event` around them (Velociraptor's `parse_evtx`).
fn child_scope(scope: Scope, key: &str) -> Option<Scope> {
    let is = |name: &str| key.eq_ignore_ascii_case(name);
    match scope {
        Scope::Top if is("Event") => Some(Scope::Event),
        Scope::Top if key == "_source" => Some(Scope::Top),
        Scope::Top | Scope::Event if is("System") || is("EventData") => Some(Scope::Inner),
        Scope::Top if key == "event_data" => Some(Scope::Inner),
        Scope::Inner if key == "Data" => Some(Scope::Data),
        Scope::Top => ECS_OBJECTS
            .iter()
            .find(|&&object| object == key)
            .map(|&object| Scope::Ecs(object)),
        _ => None,
    }
}

/// Inside ECS object `object`: the scope of an object under `key` and the key its
/// value fills, by the dotted path (`process` + `pid` = `process.pid`).
fn ecs_child(
    object: &str,
    key: &str,
    path: &mut [u8; 64],
) -> (Option<Scope>, Option<(Key, Spelling)>) {
    if object == "winlog" && key == "event_data" {
        return (Some(Scope::Inner), None);
    }
    let length = object.len() + 1 + key.len();
    if length > path.len() {
        return (None, None);
    }
    path[..object.len()].copy_from_slice(object.as_bytes());
    path[object.len()] = b'.';
    path[object.len() + 1..length].copy_from_slice(key.as_bytes());
    let Ok(dotted) = std::str::from_utf8(&path[..length]) else {
        return (None, None);
    };
    let child = ECS_OBJECTS
        .iter()
        .find(|&&object| object == dotted)
        .map(|&object| Scope::Ecs(object));
    (child, Key::lookup(dotted).map(|key| (key, Spelling::Exact)))
}

/// The scalar an XML element stands for: its `#text`, else its `SystemTime` or `Name`
/// attribute (the last one written of each); an object without either stays `Object`.
/// Velociraptor's `parse_evtx` writes the text as `Value` and the attributes as plain
/// members (`{"Value":1}`, `{"Name":"Microsoft-Windows-Sysmon"}`).
fn element_value<'de, A: MapAccess<'de>>(mut map: A, scope: Scope) -> Result<Val<'de>, A::Error> {
    let mut found: Option<Val<'de>> = None;
    let mut attribute: Option<Val<'de>> = None;
    while let Some(key) = map.next_key::<Str>()? {
        let (slot, inner) = match (scope, &*key) {
            (Scope::Attributes, "SystemTime" | "Name") => (&mut found, Scope::Inner),
            (Scope::Attributes, _) => {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            (_, "#text" | "Value") => (&mut found, Scope::Inner),
            (_, "#attributes") => (&mut attribute, Scope::Attributes),
            (_, "SystemTime" | "Name" | "@SystemTime" | "@Name") => (&mut attribute, Scope::Inner),
            _ => {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
        };
        let value = map.next_value_seed(Node {
            doc: None,
            scope: inner,
        })?;
        if matches!(
            value,
            Val::Str(_) | Val::UInt(_) | Val::Int(_) | Val::Float(_)
        ) {
            *slot = Some(value);
        }
    }
    Ok(found.or(attribute).unwrap_or(Val::Object))
}

/// One `{"@Name":"Image","#text":".."}` of [`Scope::Data`]: the key it names.
fn named_data<'de, A: MapAccess<'de>>(
    mut map: A,
    doc: &mut Doc<'de>,
) -> Result<Val<'de>, A::Error> {
    let (mut name, mut value) = (None, None);
    while let Some(key) = map.next_key::<Str>()? {
        match &*key {
            "@Name" | "Name" => name = Some(map.next_value::<Str>()?),
            "#text" | "Value" => {
                value = Some(map.next_value_seed(Node {
                    doc: None,
                    scope: Scope::Inner,
                })?)
            }
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    if let (Some(key), Some(value)) = (name.as_deref().and_then(Key::find), value) {
        doc.put(key, value);
    }
    Ok(Val::Object)
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

    /// Exports re-case a Windows event's fields; both readers find them.
    #[test]
    fn windows_fields_in_other_letter_case_are_read_and_the_exact_spelling_wins() {
        for line in [
            r#"{"eventid":"1","processid":8,"IMAGE":"a.exe","ProcessId":7,"commandLine":"x"}"#,
            r#"{"eventid":"1","ProcessId":7,"X":[1.5],"processid":8,"IMAGE":"a.exe","commandLine":"x"}"#,
        ] {
            let doc = Doc::parse(line.as_bytes()).unwrap();
            assert_eq!(doc.number(Key::EventId), Ok(Some(1)), "{line}");
            assert_eq!(doc.number(Key::ProcessId), Ok(Some(7)), "{line}");
            assert_eq!(doc.str(Key::Image), Some("a.exe"), "{line}");
            assert_eq!(doc.str(Key::CommandLine), Some("x"), "{line}");
            assert_eq!(Doc::parse_general(line.as_bytes()).unwrap(), doc, "{line}");
        }
        let nested =
            br#"{"event":{"system":{"EVENTID":4688},"eventdata":{"newprocessid":"0x10"}}}"#;
        let doc = Doc::parse(nested).unwrap();
        assert_eq!(doc.number(Key::EventId), Ok(Some(4688)));
        assert_eq!(doc.number(Key::NewProcessId), Ok(Some(16)));
        // NXLog's ProcessID is the process that logged the event, not Sysmon's field;
        // spawnwatch's own keys and ECS's have one spelling.
        let doc =
            Doc::parse(br#"{"ProcessID":2212,"PID":1,"Action":"create","User":"u"}"#).unwrap();
        assert_eq!(doc.get(Key::ProcessId), None);
        assert_eq!(doc.get(Key::Pid), None);
        assert_eq!(doc.get(Key::Action), None);
        assert_eq!(
            (doc.str(Key::User), doc.get(Key::LineUser)),
            (Some("u"), None)
        );
    }

    /// Velociraptor's `parse_evtx`: System and EventData at the top, `Value` for the
    /// text, attributes as plain members.
    #[test]
    fn system_and_event_data_without_event_around_them() {
        let line = br#"{"System":{"Provider":{"Name":"Microsoft-Windows-Sysmon","Guid":"{5770385F}"},"EventID":{"Value":1},"TimeCreated":{"SystemTime":1717332063.117},"Channel":"Microsoft-Windows-Sysmon/Operational","Computer":"WEB01"},"EventData":{"ProcessId":4242,"Image":"C:\\cmd.exe"}}"#;
        let doc = Doc::parse(line).unwrap();
        assert_eq!(doc.number(Key::EventId), Ok(Some(1)));
        assert_eq!(doc.str(Key::Provider), Some("Microsoft-Windows-Sysmon"));
        assert_eq!(doc.get(Key::TimeCreated), Some(&Val::Float(1717332063.117)));
        assert_eq!(doc.str(Key::Computer), Some("WEB01"));
        assert_eq!(doc.number(Key::ProcessId), Ok(Some(4242)));
    }

    /// xmltodict's form of the XML: attributes as `@Name`, EventData's `Data` a list.
    #[test]
    fn event_data_as_a_list_of_named_data() {
        let line = br##"{"Event":{"@xmlns":"x","System":{"Provider":{"@Name":"Microsoft-Windows-Security-Auditing","@Guid":"{54849625}"},"EventID":{"@Qualifiers":"","#text":"4688"},"TimeCreated":{"@SystemTime":"2024-06-02T12:41:03.117Z"},"Channel":"Security"},"EventData":{"Data":[{"@Name":"NewProcessId","#text":"0x1a2c"},{"@Name":"Unknown","#text":"x"},{"@Name":"CommandLine"},{"#text":"no name"},{"@Name":"NewProcessName","#text":"C:\\cmd.exe"}]}}}"##;
        let doc = Doc::parse(line).unwrap();
        assert_eq!(doc.number(Key::EventId), Ok(Some(4688)));
        assert_eq!(
            doc.str(Key::Provider),
            Some("Microsoft-Windows-Security-Auditing")
        );
        assert_eq!(doc.str(Key::TimeCreated), Some("2024-06-02T12:41:03.117Z"));
        assert_eq!(doc.number(Key::NewProcessId), Ok(Some(0x1a2c)));
        assert_eq!(doc.str(Key::NewProcessName), Some(r"C:\cmd.exe"));
        assert_eq!(doc.get(Key::CommandLine), None);
        // One Data element is an object, not a list.
        let one = br##"{"EventData":{"Data":{"@Name":"ProcessId","#text":"7"}},"EventID":1}"##;
        assert_eq!(Doc::parse(one).unwrap().number(Key::ProcessId), Ok(Some(7)));
    }

    #[test]
    fn whole_numbers_written_as_doubles() {
        let doc =
            Doc::parse(br#"{"EventID":4688.0,"NewProcessId":1.5e3,"ProcessId":1.5}"#).unwrap();
        assert_eq!(doc.number(Key::EventId), Ok(Some(4688)));
        assert_eq!(doc.number(Key::NewProcessId), Ok(Some(1500)));
        assert!(doc.number(Key::ProcessId).is_err());
    }

    #[test]
    fn not_an_object_is_an_error() {
        assert!(Doc::parse(b"[1,2]").is_err());
        assert!(Doc::parse(b"{\"EventID\":1").is_err());
        assert!(Doc::parse(b"{\"EventID\":1} x").is_err());
    }
}
