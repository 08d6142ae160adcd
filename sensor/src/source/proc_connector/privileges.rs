//! What the live Linux source needs beyond an ordinary user's rights, checked before it
//! starts, so that a sensor short of a capability fails at once and names it instead of
//! running half blind.
//!
//! Found by running the sensor as `nobody` holding one capability at a time (`setpriv
//! --ambient-caps`, Linux 6.18) while root and www-data processes started:
//! - **CAP_SYS_PTRACE**: the kernel's check for reading another user's `/proc/PID/exe`
//!   and `cwd` (`ptrace_may_access`, read mode). Without it every such process lacks its
//!   image path and working directory (all counted as `proc_missing`), the web server's
//!   shells included. CAP_DAC_READ_SEARCH does not help (it is not a file-permission
//!   check); `cmdline` and `status` are world-readable.
//! - **CAP_NET_ADMIN**: before Linux 6.6, joining the connector's multicast group (the
//!   bind fails with EPERM); on every kernel, forcing the socket's receive buffer past
//!   `net.core.rmem_max` (SO_RCVBUFFORCE), so a burst of processes does not overrun it.
//!   Since 6.6 the sensor runs without it, with a warning.

/// Capability numbers (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_PTRACE: u32 = 19;

/// What the systemd unit grants: every capability the sensor uses, and no other.
pub const NEEDED: [&str; 2] = ["CAP_NET_ADMIN", "CAP_SYS_PTRACE"];

/// Ok with warnings to print, or an error naming the missing capability.
pub fn check_privileges() -> Result<Vec<String>, String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    verdict(effective(&status))
}

/// The effective capability set of a `/proc/PID/status` text.
fn effective(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// What a process holding `effective` may do; `None` (no status to read): no verdict.
fn verdict(effective: Option<u64>) -> Result<Vec<String>, String> {
    let Some(effective) = effective else {
        return Ok(Vec::new());
    };
    let has = |cap: u32| effective & (1 << cap) != 0;
    if !has(CAP_SYS_PTRACE) {
        return Err(format!(
            "CAP_SYS_PTRACE is missing: without it the sensor cannot read other users' \
             /proc/PID/exe and cwd, so the web server's processes would have no image path \
             and the rules could not match them. Run as root, or grant {} (the systemd unit \
             of `spawnwatch service install` does, as AmbientCapabilities=)",
            NEEDED.join(" and ")
        ));
    }
    let mut warnings = Vec::new();
    if !has(CAP_NET_ADMIN) {
        warnings.push(
            "CAP_NET_ADMIN is missing: the connector's receive buffer stays at \
             net.core.rmem_max instead of 8 MiB, so a burst of processes may overrun it \
             (counted as source.overruns); before Linux 6.6 the connector does not start \
             without it"
                .to_string(),
        );
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: u64 = (1 << CAP_NET_ADMIN) | (1 << CAP_SYS_PTRACE);

    #[test]
    fn reads_the_effective_set_of_a_status_file() {
        let status = "Name:\tspawnwatch\nCapInh:\t0000000000000000\nCapPrm:\t0000000000081000\nCapEff:\t0000000000081000\nCapBnd:\t000001ffffffffff\n";
        assert_eq!(effective(status), Some(BOTH));
        assert_eq!(effective("Name:\tx\n"), None);
    }

    #[test]
    fn without_cap_sys_ptrace_the_sensor_refuses_and_names_it() {
        for caps in [0, 1 << CAP_NET_ADMIN] {
            let refusal = verdict(Some(caps)).unwrap_err();
            assert!(
                refusal.starts_with("CAP_SYS_PTRACE is missing"),
                "{refusal}"
            );
            assert!(
                refusal.contains("CAP_NET_ADMIN and CAP_SYS_PTRACE"),
                "{refusal}"
            );
        }
    }

    #[test]
    fn without_cap_net_admin_it_runs_and_warns() {
        let warnings = verdict(Some(1 << CAP_SYS_PTRACE)).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("CAP_NET_ADMIN is missing"));
    }

    #[test]
    fn root_and_the_units_set_run_without_a_word() {
        assert_eq!(verdict(Some(BOTH)), Ok(vec![]));
        assert_eq!(verdict(Some(0x000001ff_ffffffff)), Ok(vec![]));
        assert_eq!(verdict(None), Ok(vec![]), "no status: no verdict");
    }
}
