//! String fields as ETW delivers them: UTF-16LE (`win:UnicodeString`) or single-byte ANSI
//! (`win:AnsiString`), NUL-terminated, sometimes with trailing garbage after the NUL.
//! The ETW glue copies the raw bytes; everything is decoded here, never panicking.

/// Which encoding the provider's schema documents for a field.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Encoding {
    Utf16,
    Ansi,
}

/// Decodes a string field, trusting the documented encoding unless the bytes plainly
/// contradict it (ASCII text in UTF-16 has a zero in every odd byte; ANSI text has none).
pub fn decode(bytes: &[u8], documented: Encoding) -> String {
    let actual = match documented {
        Encoding::Utf16 if looks_ansi(bytes) => Encoding::Ansi,
        Encoding::Ansi if looks_utf16(bytes) => Encoding::Utf16,
        other => other,
    };
    match actual {
        Encoding::Utf16 => decode_utf16le(bytes),
        Encoding::Ansi => decode_ansi(bytes),
    }
}

/// UTF-16LE up to the first NUL code unit; an odd trailing byte is ignored, unpaired
/// surrogates become U+FFFD.
pub fn decode_utf16le(bytes: &[u8]) -> String {
    let units = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0);
    char::decode_utf16(units)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// Single-byte text up to the first NUL: UTF-8 when it is valid UTF-8, otherwise
/// Windows-1252 (the ANSI code page of Western installations).
pub fn decode_ansi(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let bytes = &bytes[..end];
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| cp1252(b)).collect(),
    }
}

fn cp1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '\u{20AC}', '\u{FFFD}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}',
        '\u{2021}', '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{FFFD}',
        '\u{017D}', '\u{FFFD}', '\u{FFFD}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}',
        '\u{2022}', '\u{2013}', '\u{2014}', '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}',
        '\u{0153}', '\u{FFFD}', '\u{017E}', '\u{0178}',
    ];
    match b {
        0x80..=0x9F => HIGH[usize::from(b - 0x80)],
        _ => char::from(b),
    }
}

/// ASCII-range text encoded as UTF-16LE: at least two code units, the first ones with a
/// zero high byte.
fn looks_utf16(bytes: &[u8]) -> bool {
    bytes.len() >= 4 && bytes[0] != 0 && bytes[1] == 0 && bytes[2] != 0 && bytes[3] == 0
}

/// A buffer sized for an ANSI string: an odd length, or a single NUL that is its last
/// byte (a terminated UTF-16 buffer ends with two zero bytes, so its first zero byte comes
/// earlier).
fn looks_ansi(bytes: &[u8]) -> bool {
    if bytes.len() % 2 == 1 {
        return bytes.len() >= 3;
    }
    let first_zero = bytes.iter().position(|&b| b == 0);
    bytes.len() >= 4 && first_zero == Some(bytes.len() - 1)
}

/// The kernel reports some command lines with the object-manager prefix
/// (`\??\C:\Windows\system32\conhost.exe 0xffffffff -ForceV1`): drop it, also inside a
/// leading quote. Trailing NULs and whitespace go too.
pub fn clean_command_line(command_line: &str) -> String {
    let s = command_line.trim_end_matches(['\0', ' ', '\t', '\r', '\n']);
    if let Some(rest) = s.strip_prefix(r"\??\") {
        rest.to_string()
    } else if let Some(rest) = s.strip_prefix(r#""\??\"#) {
        format!("\"{rest}")
    } else {
        s.to_string()
    }
}

/// The first token of a command line (quoted or up to the first space): `argv[0]`.
pub fn argv0(command_line: &str) -> &str {
    let s = command_line.trim_start();
    if let Some(rest) = s.strip_prefix('"') {
        rest.split('"').next().unwrap_or(rest)
    } else {
        s.split([' ', '\t']).next().unwrap_or(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16(s: &str) -> Vec<u8> {
        s.encode_utf16()
            .chain([0])
            .flat_map(|u| u.to_le_bytes())
            .collect()
    }

    #[test]
    fn utf16_stops_at_nul_and_tolerates_odd_length_and_surrogates() {
        let mut b = utf16(r"\Device\HarddiskVolume3\Windows\System32\cmd.exe");
        b.extend_from_slice(&[0x41, 0x00, 0x42]); // garbage after the NUL
        assert_eq!(
            decode_utf16le(&b),
            r"\Device\HarddiskVolume3\Windows\System32\cmd.exe"
        );
        assert_eq!(decode_utf16le(&[0x41, 0x00, 0x42]), "A");
        assert_eq!(decode_utf16le(&[]), "");
        assert_eq!(decode_utf16le(&[0x00, 0xD8, 0x41, 0x00]), "\u{FFFD}A");
        assert_eq!(decode_utf16le(&utf16("Grüße ☃")), "Grüße ☃");
        assert_eq!(decode(&utf16("日本語"), Encoding::Utf16), "日本語");
    }

    #[test]
    fn ansi_is_utf8_when_valid_else_cp1252() {
        assert_eq!(decode_ansi(b"w3wp.exe\0\0\0junk"), "w3wp.exe");
        assert_eq!(decode_ansi(b"no terminator"), "no terminator");
        assert_eq!(decode_ansi(b"caf\xe9.exe\0"), "café.exe");
        assert_eq!(decode_ansi(b"\x80\x81\0"), "€\u{FFFD}");
        assert_eq!(decode_ansi(b""), "");
        assert_eq!(decode_ansi(b"\0cmd.exe"), "");
    }

    #[test]
    fn documented_encoding_yields_to_plain_evidence() {
        assert_eq!(decode(&utf16("cmd.exe"), Encoding::Utf16), "cmd.exe");
        assert_eq!(decode(b"cmd.exe\0", Encoding::Ansi), "cmd.exe");
        // an ANSI field that arrives as UTF-16, and the reverse
        assert_eq!(decode(&utf16("whoami.exe"), Encoding::Ansi), "whoami.exe");
        assert_eq!(decode(b"whoami.exe\0", Encoding::Utf16), "whoami.exe");
        // short or empty values stay with the documented decoder
        assert_eq!(decode(b"\0\0", Encoding::Utf16), "");
        assert_eq!(decode(b"a\0", Encoding::Ansi), "a");
    }

    #[test]
    fn object_manager_prefix_is_removed_from_command_lines() {
        assert_eq!(
            clean_command_line("\\??\\C:\\Windows\\system32\\conhost.exe 0xffffffff -ForceV1\0"),
            r"C:\Windows\system32\conhost.exe 0xffffffff -ForceV1"
        );
        assert_eq!(
            clean_command_line(r#""\??\C:\Program Files\x.exe" /q"#),
            r#""C:\Program Files\x.exe" /q"#
        );
        assert_eq!(
            clean_command_line("cmd.exe /c whoami  "),
            "cmd.exe /c whoami"
        );
        assert_eq!(clean_command_line(""), "");
    }

    #[test]
    fn argv0_handles_quotes_and_plain_tokens() {
        assert_eq!(
            argv0(r#""C:\Program Files\a b.exe" -x"#),
            r"C:\Program Files\a b.exe"
        );
        assert_eq!(
            argv0(r"c:\windows\system32\cmd.exe /c whoami"),
            r"c:\windows\system32\cmd.exe"
        );
        assert_eq!(argv0(r#""unterminated"#), "unterminated");
        assert_eq!(argv0(""), "");
    }
}
