//! Small Win32 helpers shared by the glue.

use windows::Win32::Foundation::{CloseHandle, HANDLE};

/// Closes a handle when dropped.
pub(super) struct OwnedHandle(pub HANDLE);

impl Drop for OwnedHandle {
    fn drop(&mut self) {
        if !self.0.is_invalid() {
            // SAFETY: the handle was opened by us and is closed once.
            unsafe {
                let _ = CloseHandle(self.0);
            }
        }
    }
}

/// A NUL-terminated UTF-16 copy of `s`.
pub(super) fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// The UTF-16 text before the first NUL (or all of it).
pub(super) fn from_wide(buf: &[u16]) -> String {
    let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
    String::from_utf16_lossy(&buf[..end])
}
