//! The device map: which NT device each drive letter stands for (`QueryDosDeviceW`).

use super::win::{from_wide, wide};
use crate::source::etw_logic::paths::DeviceMap;
use windows::core::PCWSTR;
use windows::Win32::Storage::FileSystem::QueryDosDeviceW;

/// Drive letters A: to Z: and `\SystemRoot` (from `%SystemRoot%`).
pub fn device_map() -> DeviceMap {
    let mut map = DeviceMap::new();
    if let Some(root) = std::env::var_os("SystemRoot") {
        map.set_system_root(&root.to_string_lossy());
    }
    let mut target = vec![0u16; 4096];
    for letter in 'A'..='Z' {
        let drive = format!("{letter}:");
        let name = wide(&drive);
        // SAFETY: `name` is NUL-terminated; the output slice's length is passed along.
        let n = unsafe { QueryDosDeviceW(PCWSTR(name.as_ptr()), Some(&mut target)) } as usize;
        if n == 0 {
            continue;
        }
        // A multi-string: the first entry is the current mapping.
        map.insert(&drive, &from_wide(&target[..n.min(target.len())]));
    }
    map
}

#[cfg(test)]
mod tests {
    #[test]
    fn drive_c_is_mapped() {
        let map = super::device_map();
        let c = map.device_of("C:");
        assert!(c.is_some(), "{map:?}");
        let device = c.unwrap_or_default();
        assert!(device.starts_with(r"\Device\"), "{device}");
        assert_eq!(
            map.to_dos(&format!(r"{device}\Windows\System32\cmd.exe")),
            crate::source::etw_logic::paths::Resolved::Dos(r"C:\Windows\System32\cmd.exe".into())
        );
    }
}
