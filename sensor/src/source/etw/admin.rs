//! Whether this process runs elevated: ETW process tracing needs administrator rights.

use super::win::OwnedHandle;
use windows::Win32::Foundation::HANDLE;
use windows::Win32::Security::{GetTokenInformation, TokenElevation, TOKEN_ELEVATION, TOKEN_QUERY};
use windows::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

/// What to tell a user who runs the live sensor without administrator rights.
pub const NEEDS_ADMIN: &str = "live ETW tracing needs administrator rights: run spawnwatch from an elevated prompt (Run as administrator) or as a service";

/// `Some(true)` when the token is elevated (or UAC is off for an administrator),
/// `None` when the token cannot be queried.
pub fn is_elevated() -> Option<bool> {
    let mut token = HANDLE::default();
    // SAFETY: GetCurrentProcess is a pseudo-handle; `token` is a valid out pointer.
    unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) }.ok()?;
    let token = OwnedHandle(token);
    let mut elevation = TOKEN_ELEVATION::default();
    let mut len = 0u32;
    // SAFETY: the buffer is a TOKEN_ELEVATION of the size given.
    unsafe {
        GetTokenInformation(
            token.0,
            TokenElevation,
            Some(std::ptr::addr_of_mut!(elevation).cast()),
            std::mem::size_of::<TOKEN_ELEVATION>() as u32,
            &mut len,
        )
    }
    .ok()?;
    Some(elevation.TokenIsElevated != 0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn elevation_can_be_queried() {
        assert!(super::is_elevated().is_some());
    }
}
