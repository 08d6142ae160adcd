//! This host's name, the one every live event and sensor line carries.
//!
//! One helper for every caller: the process table is per host, so seeds, live events
//! and the sensor's own lines must all carry the same name. It is read once and kept.
//! Windows: `GetComputerNameExW(ComputerNameDnsHostname)` (not `%COMPUTERNAME%`, which
//! is the NetBIOS name, cut to 15 characters and upper-cased, and whatever the
//! environment says); Linux: `gethostname`, the kernel's `uname -n`.

use std::sync::OnceLock;

pub fn hostname() -> Option<String> {
    static NAME: OnceLock<Option<String>> = OnceLock::new();
    NAME.get_or_init(|| platform().filter(|name| !name.is_empty()))
        .clone()
}

#[cfg(windows)]
fn platform() -> Option<String> {
    use windows::core::PWSTR;
    use windows::Win32::System::SystemInformation::{ComputerNameDnsHostname, GetComputerNameExW};
    // A DNS host name is at most 63 characters; room for more costs nothing.
    let mut buf = [0u16; 256];
    let mut len = buf.len() as u32;
    // SAFETY: `buf` holds `len` UTF-16 units; on success `len` is what was written.
    unsafe { GetComputerNameExW(ComputerNameDnsHostname, PWSTR(buf.as_mut_ptr()), &mut len) }
        .ok()?;
    let written = buf.get(..len as usize)?;
    Some(String::from_utf16_lossy(written))
}

#[cfg(target_os = "linux")]
fn platform() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its length; gethostname NUL-terminates within it
    // (the kernel's limit is 64 bytes).
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}

#[cfg(not(any(windows, target_os = "linux")))]
fn platform() -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn is_the_kernels_host_name() {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(super::hostname().as_deref(), Some(kernel.trim()));
    }

    #[test]
    #[cfg(windows)]
    fn is_the_dns_host_name_not_the_netbios_one() {
        let name = super::hostname().expect("GetComputerNameExW");
        assert!(!name.is_empty() && !name.contains('\0'), "{name:?}");
        // The NetBIOS name is the DNS host label upper-cased and cut to 15 characters.
        if let Ok(netbios) = std::env::var("COMPUTERNAME") {
            let label = name.split('.').next().unwrap_or_default();
            let cut: String = label.chars().take(15).collect();
            assert!(cut.eq_ignore_ascii_case(&netbios), "{name} vs {netbios}");
        }
    }
}
