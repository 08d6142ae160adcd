//! SIDs as ETW delivers them: binary SIDs, and the kernel logger's `UserSID`, a WBEMSID
//! (a `TOKEN_USER` followed by the SID). Everything is bounds-checked: short or garbage
//! input gives `None`, never a panic.

/// Size of the `TOKEN_USER` header in front of a WBEMSID: a pointer and a `u32`
/// (padded), so 16 bytes from a 64-bit kernel and 8 from a 32-bit one.
pub fn token_user_size(pointer_size: usize) -> usize {
    if pointer_size == 4 {
        8
    } else {
        16
    }
}

/// WBEMSID bytes to `S-1-...`. Four leading zero bytes mean "no SID".
pub fn wbemsid_to_string(bytes: &[u8], pointer_size: usize) -> Option<String> {
    match bytes.get(..4) {
        None | Some([0, 0, 0, 0]) => None,
        Some(_) => sid_to_string(bytes.get(token_user_size(pointer_size)..)?),
    }
}

/// A binary SID (revision 1, at most 15 sub-authorities) to its string form, as
/// `ConvertSidToStringSidW` writes it. Trailing bytes after the SID are ignored.
pub fn sid_to_string(bytes: &[u8]) -> Option<String> {
    let (&revision, rest) = bytes.split_first()?;
    let (&count, rest) = rest.split_first()?;
    if revision != 1 || count > 15 {
        return None;
    }
    let authority = rest.get(..6)?;
    let subs = rest.get(6..6 + 4 * usize::from(count))?;
    let authority = authority
        .iter()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let mut s = if authority < (1 << 32) {
        format!("S-1-{authority}")
    } else {
        format!("S-1-0x{authority:012X}")
    };
    for sub in subs.chunks_exact(4) {
        let v = u32::from_le_bytes([sub[0], sub[1], sub[2], sub[3]]);
        s.push('-');
        s.push_str(&v.to_string());
    }
    Some(s)
}

/// `S-1-...` to a binary SID (for `LookupAccountSidW`); `None` if malformed.
pub fn string_to_sid(s: &str) -> Option<Vec<u8>> {
    let mut parts = s.split('-');
    if !parts.next()?.eq_ignore_ascii_case("S") || parts.next()? != "1" {
        return None;
    }
    let authority_text = parts.next()?;
    let authority = match authority_text
        .strip_prefix("0x")
        .or_else(|| authority_text.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => authority_text.parse::<u64>().ok()?,
    };
    if authority >= 1 << 48 {
        return None;
    }
    let subs = parts
        .map(|p| p.parse::<u32>().ok())
        .collect::<Option<Vec<u32>>>()?;
    if subs.len() > 15 {
        return None;
    }
    let mut out = vec![1u8, subs.len() as u8];
    out.extend_from_slice(&authority.to_be_bytes()[2..]);
    for sub in subs {
        out.extend_from_slice(&sub.to_le_bytes());
    }
    Some(out)
}

/// The integrity level a mandatory label SID (`S-1-16-<rid>`) stands for.
pub fn integrity_level(label_sid: &str) -> Option<&'static str> {
    let rid: u32 = label_sid.strip_prefix("S-1-16-")?.parse().ok()?;
    Some(match rid {
        0..=0x0FFF => "Untrusted",
        0x1000..=0x1FFF => "Low",
        0x2000..=0x20FF => "Medium",
        0x2100..=0x2FFF => "Medium Plus",
        0x3000..=0x3FFF => "High",
        0x4000..=0x4FFF => "System",
        _ => "Protected",
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// S-1-5-21-1004336348-1177238915-682003330-1001 as binary.
    pub(crate) fn user_sid_bytes() -> Vec<u8> {
        string_to_sid("S-1-5-21-1004336348-1177238915-682003330-1001").unwrap()
    }

    /// A WBEMSID as the 64-bit kernel logger writes it.
    pub(crate) fn wbemsid(sid: &[u8]) -> Vec<u8> {
        let mut b = vec![0x60, 0x1c, 0x3a, 0x0f, 0x81, 0xe6, 0xff, 0xff]; // TOKEN_USER.Sid pointer
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // Attributes + padding
        b.extend_from_slice(sid);
        b
    }

    #[test]
    fn binary_sid_round_trips() {
        let b = user_sid_bytes();
        assert_eq!(b.len(), 8 + 5 * 4);
        assert_eq!(&b[..8], &[1, 5, 0, 0, 0, 0, 0, 5]);
        assert_eq!(
            sid_to_string(&b).unwrap(),
            "S-1-5-21-1004336348-1177238915-682003330-1001"
        );
        assert_eq!(
            sid_to_string(&[1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0]).unwrap(),
            "S-1-5-18"
        );
        assert_eq!(sid_to_string(&[1, 0, 0, 0, 0, 0, 0, 0]).unwrap(), "S-1-0");
        // a 48-bit authority is written in hex
        let big = string_to_sid("S-1-0x010000000000-7").unwrap();
        assert_eq!(sid_to_string(&big).unwrap(), "S-1-0x010000000000-7");
        // trailing bytes (padding after the SID) are ignored
        let mut padded = b.clone();
        padded.extend_from_slice(&[0xAA; 7]);
        assert_eq!(sid_to_string(&padded), sid_to_string(&b));
    }

    #[test]
    fn garbage_sids_give_none() {
        assert_eq!(sid_to_string(&[]), None);
        assert_eq!(sid_to_string(&[1]), None);
        assert_eq!(sid_to_string(&[2, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0]), None);
        assert_eq!(sid_to_string(&[1, 16, 0, 0, 0, 0, 0, 5]), None);
        // claims 5 sub-authorities, carries 2
        assert_eq!(
            sid_to_string(&[1, 5, 0, 0, 0, 0, 0, 5, 1, 0, 0, 0, 2, 0, 0]),
            None
        );
        for n in 0..64u8 {
            let junk: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37).wrapping_add(n)).collect();
            let _ = sid_to_string(&junk);
            let _ = wbemsid_to_string(&junk, 8);
            let _ = wbemsid_to_string(&junk, 4);
        }
        for bad in [
            "",
            "S-1",
            "S-2-5-18",
            "X-1-5-18",
            "S-1-5-x",
            "S-1-0x1000000000000-1",
            "S-1-5-99999999999",
        ] {
            assert_eq!(string_to_sid(bad), None, "{bad}");
        }
        let too_many = format!("S-1-5{}", "-1".repeat(16));
        assert_eq!(string_to_sid(&too_many), None);
    }

    #[test]
    fn wbemsid_skips_token_user_and_knows_no_sid() {
        let w = wbemsid(&user_sid_bytes());
        assert_eq!(
            wbemsid_to_string(&w, 8).unwrap(),
            "S-1-5-21-1004336348-1177238915-682003330-1001"
        );
        // 32-bit layout: 8-byte TOKEN_USER
        let mut w32 = vec![0x10, 0x20, 0x30, 0x40, 0, 0, 0, 0];
        w32.extend_from_slice(&string_to_sid("S-1-5-18").unwrap());
        assert_eq!(wbemsid_to_string(&w32, 4).unwrap(), "S-1-5-18");
        // no SID: four leading zero bytes
        assert_eq!(wbemsid_to_string(&[0, 0, 0, 0], 8), None);
        assert_eq!(wbemsid_to_string(&[0; 40], 8), None);
        // header only, or cut inside the SID
        assert_eq!(wbemsid_to_string(&w[..16], 8), None);
        assert_eq!(wbemsid_to_string(&w[..20], 8), None);
        assert_eq!(wbemsid_to_string(&w[..3], 8), None);
    }

    #[test]
    fn integrity_levels() {
        assert_eq!(integrity_level("S-1-16-0"), Some("Untrusted"));
        assert_eq!(integrity_level("S-1-16-4096"), Some("Low"));
        assert_eq!(integrity_level("S-1-16-8192"), Some("Medium"));
        assert_eq!(integrity_level("S-1-16-8448"), Some("Medium Plus"));
        assert_eq!(integrity_level("S-1-16-12288"), Some("High"));
        assert_eq!(integrity_level("S-1-16-16384"), Some("System"));
        assert_eq!(integrity_level("S-1-16-20480"), Some("Protected"));
        assert_eq!(integrity_level("S-1-5-18"), None);
        assert_eq!(integrity_level("S-1-16-"), None);
        assert_eq!(integrity_level("S-1-16-x"), None);
    }
}
