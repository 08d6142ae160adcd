//! Event data carried as a string inside a JSON record: Azure Monitor's `WindowsEvent`
//! table may export its `EventData` as a JSON string and keeps the whole event as XML in
//! `RawEventData` when it could not parse it; the older `Event` table's `EventData` is
//! XML (`<DataItem ...><EventData ...><Data Name="Image">...</Data>...`). Their fields
//! fill the record's table where it has none of its own.

use super::fields::{Doc, Key, Str, Val};

/// Reads `EventData` and `RawEventData` strings into `doc`. An error says which string
/// could not be read and why.
pub(crate) fn expand(doc: &mut Doc<'_>) -> Result<(), String> {
    for key in [Key::EventData, Key::RawEventData] {
        let Some(Val::Str(text)) = doc.take(key) else {
            continue;
        };
        let trimmed = text.trim_start();
        if trimmed.starts_with('{') {
            let inner = Doc::parse_then(trimmed.as_bytes(), |inner| {
                std::mem::replace(inner, Doc::empty())
            })
            .map_err(|e| format!("{}: not a readable JSON object: {e}", key.name()))?;
            doc.absorb(inner);
        } else if trimmed.starts_with('<') {
            doc.absorb(
                from_xml(trimmed).map_err(|e| format!("{}: not readable XML: {e}", key.name()))?,
            );
        }
    }
    Ok(())
}

/// The fields of a Windows event's XML, or of its `EventData` alone: each
/// `<Data Name="...">` by its name, and from `System` the id, channel, provider,
/// computer and time.
fn from_xml(xml: &str) -> Result<Doc<'static>, roxmltree::Error> {
    let tree = roxmltree::Document::parse(xml)?;
    let mut doc = Doc::empty();
    for node in tree.descendants().filter(roxmltree::Node::is_element) {
        let (key, value) = match node.tag_name().name() {
            "Data" => match node.attribute("Name").and_then(Key::find) {
                Some((key, _)) => (key, node.text()),
                None => continue,
            },
            "EventID" => (Key::EventId, node.text()),
            "Channel" => (Key::Channel, node.text()),
            "Computer" => (Key::Computer, node.text()),
            "Provider" => (Key::Provider, node.attribute("Name")),
            "TimeCreated" => (Key::TimeCreated, node.attribute("SystemTime")),
            _ => continue,
        };
        if let Some(value) = value {
            doc.set(key, Val::Str(Str::Unescaped(value.into())));
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_data_as_a_json_string_fills_the_table() {
        let line = br##"{"EventID":1,"Computer":"WEB01","EventData":"{\"ProcessId\":\"4242\",\"Image\":\"C:\\\\Windows\\\\System32\\\\cmd.exe\",\"Computer\":\"other\"}"}"##;
        let doc = Doc::parse(line).unwrap();
        assert_eq!(doc.number(Key::ProcessId), Ok(Some(4242)));
        assert_eq!(doc.str(Key::Image), Some(r"C:\Windows\System32\cmd.exe"));
        // The record's own fields win.
        assert_eq!(doc.str(Key::Computer), Some("WEB01"));
        assert_eq!(doc.get(Key::EventData), None);
    }

    #[test]
    fn event_data_as_an_object_fills_the_table() {
        let doc =
            Doc::parse(br##"{"EventID":1,"EventData":{"ProcessId":7,"Image":"a"}}"##).unwrap();
        assert_eq!(doc.number(Key::ProcessId), Ok(Some(7)));
        assert_eq!(doc.str(Key::Image), Some("a"));
    }

    #[test]
    fn the_event_tables_xml_fills_the_table() {
        let line = br##"{"Source":"Microsoft-Windows-Sysmon","EventLog":"Microsoft-Windows-Sysmon/Operational","EventID":1,"EventData":"<DataItem type=\"System.XmlData\" time=\"2024-05-02T10:00:00.0000000Z\" sourceHealthServiceId=\"x\"><EventData xmlns=\"http://schemas.microsoft.com/win/2004/08/events/event\"><Data Name=\"RuleName\">-</Data><Data Name=\"ProcessId\">4242</Data><Data Name=\"CommandLine\">cmd.exe /c \"echo &lt;x&gt; &amp;&amp; whoami\"</Data><Data Name=\"Unknown\">x</Data></EventData></DataItem>"}"##;
        let doc = Doc::parse(line).unwrap();
        assert_eq!(doc.number(Key::ProcessId), Ok(Some(4242)));
        assert_eq!(
            doc.str(Key::CommandLine),
            Some(r#"cmd.exe /c "echo <x> && whoami""#)
        );
        assert_eq!(doc.str(Key::SourceName), Some("Microsoft-Windows-Sysmon"));
        assert_eq!(
            doc.str(Key::Channel),
            Some("Microsoft-Windows-Sysmon/Operational")
        );
    }

    /// The whole event as XML reads as the nested JSON form evtx_dump gives of it.
    #[test]
    fn raw_event_xml_reads_as_the_nested_json_form() {
        let xml = br##"{"RawEventData":"<Event xmlns=\"http://schemas.microsoft.com/win/2004/08/events/event\"><System><Provider Name=\"Microsoft-Windows-Sysmon\" Guid=\"{5770385f-c22a-43e0-bf4c-06f5698ffbd9}\"/><EventID>1</EventID><TimeCreated SystemTime=\"2024-05-02T10:00:00.1234567Z\"/><Channel>Microsoft-Windows-Sysmon/Operational</Channel><Computer>WEB01</Computer></System><EventData><Data Name=\"ProcessId\">9</Data></EventData></Event>"}"##;
        let json = br##"{"Event":{"System":{"Provider":{"#attributes":{"Name":"Microsoft-Windows-Sysmon"}},"EventID":1,"TimeCreated":{"#attributes":{"SystemTime":"2024-05-02T10:00:00.1234567Z"}},"Channel":"Microsoft-Windows-Sysmon/Operational","Computer":"WEB01"},"EventData":{"ProcessId":9}}}"##;
        let (from_xml, from_json) = (Doc::parse(xml).unwrap(), Doc::parse(json).unwrap());
        for key in [Key::EventId, Key::ProcessId] {
            assert_eq!(from_xml.number(key), from_json.number(key), "{key:?}");
        }
        for key in [Key::Provider, Key::TimeCreated, Key::Channel, Key::Computer] {
            assert!(from_xml.str(key).is_some(), "{key:?}");
            assert_eq!(from_xml.str(key), from_json.str(key), "{key:?}");
        }
    }

    #[test]
    fn unreadable_embedded_data_is_an_error_that_names_it() {
        for (line, said) in [
            (
                &br##"{"EventID":1,"EventData":"<DataItem><EventData>"}"##[..],
                "EventData: not readable XML",
            ),
            (
                br##"{"EventID":1,"EventData":"{\"a\":"}"##,
                "EventData: not a readable JSON object",
            ),
        ] {
            let e = Doc::parse(line).unwrap_err().to_string();
            assert!(e.contains(said), "{e}");
        }
        // Other strings are left alone (a message, an empty value).
        assert!(Doc::parse(br##"{"EventID":1,"EventData":"-"}"##).is_ok());
    }
}
