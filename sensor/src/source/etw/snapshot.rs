//! The processes running now (Toolhelp32 snapshot), to seed the process table.

use super::win::{from_wide, OwnedHandle};
use crate::source::etw_logic::snapshot::SnapshotEntry;
use windows::core::PWSTR;
use windows::Win32::Foundation::FILETIME;
use windows::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, Process32FirstW, Process32NextW, PROCESSENTRY32W, TH32CS_SNAPPROCESS,
};
use windows::Win32::System::Threading::{
    GetProcessTimes, OpenProcess, QueryFullProcessImageNameW, PROCESS_NAME_WIN32,
    PROCESS_QUERY_LIMITED_INFORMATION,
};

/// Every process the snapshot lists; empty if the snapshot fails.
pub fn processes() -> Vec<SnapshotEntry> {
    // SAFETY: plain call; the handle is closed by OwnedHandle.
    let Ok(snap) = (unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0) }) else {
        return Vec::new();
    };
    let snap = OwnedHandle(snap);
    let mut entry = PROCESSENTRY32W {
        dwSize: std::mem::size_of::<PROCESSENTRY32W>() as u32,
        ..Default::default()
    };
    let mut out = Vec::new();
    // SAFETY: `entry` is a PROCESSENTRY32W with dwSize set.
    let mut more = unsafe { Process32FirstW(snap.0, &mut entry) }.is_ok();
    while more {
        let (image_path, create_time_filetime) = query(entry.th32ProcessID);
        out.push(SnapshotEntry {
            pid: entry.th32ProcessID,
            ppid: entry.th32ParentProcessID,
            exe: from_wide(&entry.szExeFile),
            image_path,
            create_time_filetime,
        });
        // SAFETY: as above.
        more = unsafe { Process32NextW(snap.0, &mut entry) }.is_ok();
    }
    out
}

/// Full image path and creation time; System, Idle and protected processes refuse.
fn query(pid: u32) -> (Option<String>, u64) {
    if pid == 0 {
        return (None, 0);
    }
    // SAFETY: plain call; the handle is closed by OwnedHandle.
    let Ok(handle) = (unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, false, pid) }) else {
        return (None, 0);
    };
    let handle = OwnedHandle(handle);
    let mut buf = vec![0u16; 32_768];
    let mut len = buf.len() as u32;
    // SAFETY: `len` is the buffer's capacity in characters.
    let path = unsafe {
        QueryFullProcessImageNameW(
            handle.0,
            PROCESS_NAME_WIN32,
            PWSTR(buf.as_mut_ptr()),
            &mut len,
        )
    }
    .ok()
    .map(|()| String::from_utf16_lossy(&buf[..(len as usize).min(buf.len())]))
    .filter(|p| !p.is_empty());
    let (mut created, mut exited, mut kernel, mut user) = (
        FILETIME::default(),
        FILETIME::default(),
        FILETIME::default(),
        FILETIME::default(),
    );
    // SAFETY: four valid FILETIME out pointers.
    let created = match unsafe {
        GetProcessTimes(handle.0, &mut created, &mut exited, &mut kernel, &mut user)
    } {
        Ok(()) => (u64::from(created.dwHighDateTime) << 32) | u64::from(created.dwLowDateTime),
        Err(_) => 0,
    };
    (path, created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_lists_this_process_with_its_image_path() {
        let me = std::process::id();
        let all = processes();
        let mine = all.iter().find(|p| p.pid == me);
        assert!(mine.is_some(), "pid {me} not among {} processes", all.len());
        let mine = mine.cloned().unwrap_or_default();
        let exe = std::env::current_exe().unwrap_or_default();
        let exe = exe.to_string_lossy();
        let exe = exe.strip_prefix(r"\\?\").unwrap_or(&exe);
        let path = mine.image_path.clone().unwrap_or_default();
        assert!(path.eq_ignore_ascii_case(exe), "{path} vs {exe}");
        assert!(
            crate::record::file_name(exe).eq_ignore_ascii_case(&mine.exe),
            "{} vs {exe}",
            mine.exe
        );
        assert!(mine.create_time_filetime > crate::source::etw_logic::time::FILETIME_UNIX_EPOCH);
    }
}
