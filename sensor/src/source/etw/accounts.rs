//! SID -> account name with `LookupAccountSidW`: the lookup `accounts::SidCache` runs on
//! its own threads (it may block for as long as a domain controller takes to answer).

use crate::source::etw_logic::accounts::AccountLookup;
use crate::source::etw_logic::sid::string_to_sid;
use windows::core::{PCWSTR, PWSTR};
use windows::Win32::Foundation::PSID;
use windows::Win32::Security::{LookupAccountSidW, SID_NAME_USE};

/// `LookupAccountSidW` on the local machine.
#[derive(Debug, Default)]
pub struct WinAccountLookup;

impl AccountLookup for WinAccountLookup {
    fn lookup(&self, sid: &str) -> Option<String> {
        lookup_account(sid)
    }
}

/// `DOMAIN\name` for a SID string; `None` when unknown or malformed.
pub fn lookup_account(sid: &str) -> Option<String> {
    let bytes = string_to_sid(sid)?;
    // A u32-aligned copy: SID has u32 sub-authorities.
    let mut aligned = vec![0u32; bytes.len().div_ceil(4)];
    for (i, b) in bytes.iter().enumerate() {
        aligned[i / 4] |= u32::from(*b) << (8 * (i % 4));
    }
    let psid = PSID(aligned.as_mut_ptr().cast());
    let (mut name_len, mut domain_len) = (256u32, 256u32);
    for _ in 0..2 {
        let mut name = vec![0u16; name_len as usize];
        let mut domain = vec![0u16; domain_len as usize];
        let mut kind = SID_NAME_USE::default();
        // SAFETY: buffers and their lengths match; `aligned` holds a valid SID and
        // outlives the call.
        let ok = unsafe {
            LookupAccountSidW(
                PCWSTR::null(),
                psid,
                PWSTR(name.as_mut_ptr()),
                &mut name_len,
                PWSTR(domain.as_mut_ptr()),
                &mut domain_len,
                &mut kind,
            )
        }
        .is_ok();
        if ok {
            let name = String::from_utf16_lossy(&name[..(name_len as usize).min(name.len())]);
            let domain =
                String::from_utf16_lossy(&domain[..(domain_len as usize).min(domain.len())]);
            let name = name.trim_end_matches('\0');
            let domain = domain.trim_end_matches('\0');
            return Some(if domain.is_empty() {
                name.to_string()
            } else {
                format!(r"{domain}\{name}")
            });
        }
        // ERROR_INSUFFICIENT_BUFFER sets the sizes needed; anything else is final.
        if name_len as usize <= name.len() && domain_len as usize <= domain.len() {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_system_resolves() {
        let name = lookup_account("S-1-5-18");
        assert!(
            name.as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(r"NT AUTHORITY\SYSTEM")),
            "{name:?}"
        );
        assert_eq!(lookup_account("not a sid"), None);
    }
}
