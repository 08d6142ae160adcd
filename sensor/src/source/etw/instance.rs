//! One sensor per host: a second one would stop the first one's ETW sessions (same
//! fixed names) and leave it running blind, so `run` holds a named mutex for its whole
//! life and a second `run` refuses to start. Windows closes the handle when the process
//! ends, however it ends, so a crash leaves nothing behind.

use super::session::SessionNames;
use super::win::{wide, OwnedHandle};
use windows::core::PCWSTR;
use windows::Win32::Foundation::{GetLastError, ERROR_ALREADY_EXISTS};
use windows::Win32::System::Threading::CreateMutexW;

/// Held while the role runs; dropping it lets another process of the role start.
pub struct InstanceLock {
    _mutex: OwnedHandle,
}

impl InstanceLock {
    pub fn acquire(names: &SessionNames) -> Result<InstanceLock, String> {
        acquire(names.instance_mutex, names.holder)
    }
}

fn acquire(mutex: &str, holder: &str) -> Result<InstanceLock, String> {
    let name = wide(mutex);
    // SAFETY: `name` is NUL-terminated and outlives the call; no security attributes.
    let handle = unsafe { CreateMutexW(None, false, PCWSTR(name.as_ptr())) }.map_err(|e| {
        format!("cannot create the mutex {mutex} that keeps a second instance out: {e}")
    })?;
    // SAFETY: read right after the call that set it.
    let existed = unsafe { GetLastError() } == ERROR_ALREADY_EXISTS;
    let lock = InstanceLock {
        _mutex: OwnedHandle(handle),
    };
    if existed {
        return Err(format!(
            "{holder} is already running on this host (it holds {mutex}): a second one would stop its ETW sessions and blind it. Stop the running one first; `spawnwatch selftest` can check this host beside it"
        ));
    }
    Ok(lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_instance_is_refused_until_the_first_ends() {
        let mutex = format!(r"Global\spawnwatch-test-{}", std::process::id());
        let first = acquire(&mutex, "a test sensor").expect("first instance");
        let refusal = acquire(&mutex, "a test sensor")
            .err()
            .expect("second refused");
        assert!(
            refusal.contains("a test sensor is already running"),
            "{refusal}"
        );
        assert!(refusal.contains(&mutex), "{refusal}");
        drop(first);
        assert!(
            acquire(&mutex, "a test sensor").is_ok(),
            "free once the first ended"
        );
    }

    #[test]
    fn the_sensor_and_selftest_do_not_exclude_each_other() {
        assert_ne!(
            SessionNames::SENSOR.instance_mutex,
            SessionNames::SELFTEST.instance_mutex
        );
        assert_ne!(
            SessionNames::SENSOR.kernel_process,
            SessionNames::SELFTEST.kernel_process
        );
        assert_ne!(
            SessionNames::SENSOR.system_logger,
            SessionNames::SELFTEST.system_logger
        );
    }
}
