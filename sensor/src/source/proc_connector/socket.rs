//! The `NETLINK_CONNECTOR` socket, over raw `libc` calls.

use super::parse::{control_message, CN_IDX_PROC};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// How much the kernel may queue for us before it drops events (ENOBUFS).
const RECEIVE_BUFFER: libc::c_int = 8 << 20;

const NEEDS_PRIVILEGE: &str =
    "CAP_NET_ADMIN is missing: before Linux 6.6 the process-events connector needs root or CAP_NET_ADMIN";

pub(crate) struct ConnectorSocket {
    fd: OwnedFd,
}

fn last_error(what: &str) -> String {
    explain(what, io::Error::last_os_error())
}

/// `what` failed with `err`: what that means here.
fn explain(what: &str, err: io::Error) -> String {
    match err.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => format!("{what}: {err}: {NEEDS_PRIVILEGE}"),
        Some(libc::EPROTONOSUPPORT) => {
            format!("{what}: {err} (kernel built without CONFIG_CONNECTOR/CONFIG_PROC_EVENTS?)")
        }
        _ => format!("{what}: {err}"),
    }
}

fn kernel_address(groups: u32) -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr.nl_pid = 0;
    addr.nl_groups = groups;
    addr
}

impl ConnectorSocket {
    /// Opens the socket and joins the process-events multicast group. `timeout` bounds
    /// each receive so the reader can notice a stop request.
    pub(crate) fn open(timeout: Duration) -> Result<ConnectorSocket, String> {
        // SAFETY: plain syscall; the result is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                libc::NETLINK_CONNECTOR,
            )
        };
        if raw < 0 {
            return Err(last_error("socket(AF_NETLINK, NETLINK_CONNECTOR)"));
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let socket = ConnectorSocket {
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
        };
        socket.set_receive_buffer(RECEIVE_BUFFER);
        socket.set_receive_timeout(timeout)?;
        // Port id 0: the kernel picks a unique one, so several listeners can live in
        // one process.
        let addr = kernel_address(CN_IDX_PROC);
        // SAFETY: `addr` is a valid sockaddr_nl of the size given.
        let rc = unsafe {
            libc::bind(
                socket.fd.as_raw_fd(),
                &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(last_error("bind to the CN_IDX_PROC group"));
        }
        Ok(socket)
    }

    /// Sets how much the kernel may queue for us (forced past `rmem_max` when we
    /// have CAP_NET_ADMIN); best effort.
    pub(crate) fn set_receive_buffer(&self, bytes: libc::c_int) {
        for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
            // SAFETY: the option value is a c_int of the size given.
            let rc = unsafe {
                libc::setsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    option,
                    &bytes as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                return;
            }
        }
    }

    /// A socket on any descriptor: tests play the kernel on the other end of a
    /// datagram socketpair.
    #[cfg(test)]
    pub(crate) fn on(fd: OwnedFd, timeout: Duration) -> Result<ConnectorSocket, String> {
        let socket = ConnectorSocket { fd };
        socket.set_receive_timeout(timeout)?;
        Ok(socket)
    }

    fn set_receive_timeout(&self, timeout: Duration) -> Result<(), String> {
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: the option value is a timeval of the size given.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(last_error("setsockopt(SO_RCVTIMEO)"));
        }
        Ok(())
    }

    /// Sends `PROC_CN_MCAST_LISTEN` or `_IGNORE` to the kernel (unicast: other
    /// listeners do not see it).
    pub(crate) fn send_control(&self, op: u32, nonce: u32) -> io::Result<()> {
        let msg = control_message(op, nonce);
        let addr = kernel_address(0);
        // SAFETY: `msg` and `addr` are valid for the lengths given.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr() as *const libc::c_void,
                msg.len(),
                0,
                &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Receives one datagram: its length and the sender's port id (0: the kernel).
    /// Times out with `WouldBlock`; an overrun shows as `ENOBUFS`.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, u32)> {
        let mut addr = kernel_address(0);
        let mut addr_len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: `buf` and `addr` are valid for writes of the lengths given.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
                &mut addr as *mut libc::sockaddr_nl as *mut libc::sockaddr,
                &mut addr_len,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((n as usize, addr.nl_pid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bind_refused_for_privilege_names_the_missing_capability() {
        for errno in [libc::EPERM, libc::EACCES] {
            let message = explain(
                "bind to the CN_IDX_PROC group",
                io::Error::from_raw_os_error(errno),
            );
            assert!(
                message.contains(": CAP_NET_ADMIN is missing: before Linux 6.6"),
                "{message}"
            );
        }
    }
}
