//! The kernel's binary messages: a netlink header, `struct cn_msg` (linux/connector.h)
//! and `struct proc_event` (linux/cn_proc.h), all in host byte order.
//!
//! ```text
//! nlmsghdr  (16)  len u32, type u16, flags u16, seq u32, pid u32
//! cn_msg    (20)  id.idx u32, id.val u32, seq u32, ack u32, len u16, flags u16
//! proc_event      what u32, cpu u32, timestamp_ns u64 (aligned 8), then the union:
//!   ack    err u32
//!   fork   parent_pid, parent_tgid, child_pid, child_tgid        (i32 each)
//!   exec   process_pid, process_tgid
//!   exit   process_pid, process_tgid, exit_code u32, exit_signal u32,
//!          parent_pid, parent_tgid                               (the last two since 4.x)
//! ```

/// The connector channel of process events (`CN_IDX_PROC`, `CN_VAL_PROC`); also the
/// netlink multicast group the events are sent to.
pub(crate) const CN_IDX_PROC: u32 = 1;
pub(crate) const CN_VAL_PROC: u32 = 1;
/// `enum proc_cn_mcast_op`.
pub(crate) const PROC_CN_MCAST_LISTEN: u32 = 1;
pub(crate) const PROC_CN_MCAST_IGNORE: u32 = 2;

const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
/// The connector sends every message with this type.
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const CN_MSG_LEN: usize = 20;
/// `what`, `cpu`, `timestamp_ns`: the union starts at offset 16.
const PROC_EVENT_HEAD: usize = 16;

const PROC_EVENT_NONE: u32 = 0;
const PROC_EVENT_FORK: u32 = 0x0000_0001;
const PROC_EVENT_EXEC: u32 = 0x0000_0002;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;

/// One process event as the kernel reports it. Pids are the kernel's: `pid` is the task
/// (thread) id, `tgid` the process id user space sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcEvent {
    /// The kernel's answer to a `PROC_CN_MCAST_*` request, sent to every listener:
    /// `ack` is the request's `ack` plus one (the only field it keeps: `seq` is the
    /// kernel's own per-cpu counter), `err` an errno (0: accepted).
    Ack { seq: u32, ack: u32, err: u32 },
    /// A new task. `child_pid != child_tgid` for a thread.
    Fork {
        parent_pid: u32,
        parent_tgid: u32,
        child_pid: u32,
        child_tgid: u32,
    },
    /// A successful execve: the task now runs a new image.
    Exec { pid: u32, tgid: u32 },
    /// A task ended. Kernels before 4.x do not report the parent.
    Exit {
        pid: u32,
        tgid: u32,
        exit_code: u32,
        exit_signal: u32,
        parent_pid: Option<u32>,
        parent_tgid: Option<u32>,
    },
    /// Any other kind (uid, gid, sid, ptrace, comm, coredump change), by its `what`.
    Other { what: u32 },
}

fn u16_at(buf: &[u8], off: usize) -> Option<u16> {
    let bytes = buf.get(off..off.checked_add(2)?)?;
    Some(u16::from_ne_bytes([bytes[0], bytes[1]]))
}

fn u32_at(buf: &[u8], off: usize) -> Option<u32> {
    let bytes = buf.get(off..off.checked_add(4)?)?;
    Some(u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// Parses every process event in one datagram read from the connector socket.
///
/// Pure and bounds-checked: a short, truncated or garbage buffer yields the events that
/// are complete (possibly none) and never panics. Messages of another connector
/// channel, netlink control messages and events too short for their kind are skipped.
pub fn parse_messages(buf: &[u8]) -> Vec<ProcEvent> {
    let mut events = Vec::new();
    let mut off = 0usize;
    while let Some(len) = u32_at(buf, off) {
        let len = len as usize;
        let Some(kind) = u16_at(buf, off + 4) else {
            break;
        };
        // A header claiming less than itself or more than the datagram holds: the
        // rest cannot be trusted.
        if len < NLMSG_HDRLEN || len > buf.len() - off {
            break;
        }
        if !matches!(kind, NLMSG_NOOP | NLMSG_ERROR | NLMSG_OVERRUN) {
            if let Some(event) = parse_cn_msg(&buf[off + NLMSG_HDRLEN..off + len]) {
                events.push(event);
            }
        }
        // NLMSG_ALIGN: the next header starts on a 4-byte boundary.
        off += (len + 3) & !3;
    }
    events
}

fn parse_cn_msg(msg: &[u8]) -> Option<ProcEvent> {
    let idx = u32_at(msg, 0)?;
    let val = u32_at(msg, 4)?;
    let seq = u32_at(msg, 8)?;
    let ack = u32_at(msg, 12)?;
    let data_len = u16_at(msg, 16)? as usize;
    if idx != CN_IDX_PROC || val != CN_VAL_PROC {
        return None;
    }
    let data = msg.get(CN_MSG_LEN..CN_MSG_LEN + data_len)?;
    parse_proc_event(data, seq, ack)
}

fn parse_proc_event(data: &[u8], seq: u32, ack: u32) -> Option<ProcEvent> {
    let what = u32_at(data, 0)?;
    let body = data.get(PROC_EVENT_HEAD..)?;
    let field = |i: usize| u32_at(body, 4 * i);
    Some(match what {
        PROC_EVENT_NONE => ProcEvent::Ack {
            seq,
            ack,
            err: field(0)?,
        },
        PROC_EVENT_FORK => ProcEvent::Fork {
            parent_pid: field(0)?,
            parent_tgid: field(1)?,
            child_pid: field(2)?,
            child_tgid: field(3)?,
        },
        PROC_EVENT_EXEC => ProcEvent::Exec {
            pid: field(0)?,
            tgid: field(1)?,
        },
        PROC_EVENT_EXIT => ProcEvent::Exit {
            pid: field(0)?,
            tgid: field(1)?,
            exit_code: field(2)?,
            exit_signal: field(3)?,
            parent_pid: field(4),
            parent_tgid: field(5),
        },
        what => ProcEvent::Other { what },
    })
}

/// The request a listener sends to the kernel: `PROC_CN_MCAST_LISTEN` or `_IGNORE`.
/// `nonce` goes in `cn_msg.ack`, which the kernel's [`ProcEvent::Ack`] returns plus one.
pub(crate) fn control_message(op: u32, nonce: u32) -> Vec<u8> {
    let total = NLMSG_HDRLEN + CN_MSG_LEN + 4;
    let mut msg = Vec::with_capacity(total);
    msg.extend_from_slice(&(total as u32).to_ne_bytes());
    msg.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
    msg.extend_from_slice(&0u16.to_ne_bytes()); // flags
    msg.extend_from_slice(&0u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
    msg.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
    msg.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&nonce.to_ne_bytes()); // ack
    msg.extend_from_slice(&4u16.to_ne_bytes()); // data length
    msg.extend_from_slice(&0u16.to_ne_bytes()); // flags
    msg.extend_from_slice(&op.to_ne_bytes());
    msg
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One datagram as the kernel builds it: nlmsghdr + cn_msg + proc_event with the
    /// given union words (the kernel pads the union to its full size; `words` may be
    /// shorter to imitate older kernels).
    pub(crate) fn message(what: u32, seq: u32, ack: u32, words: &[u32]) -> Vec<u8> {
        let mut event = Vec::new();
        event.extend_from_slice(&what.to_ne_bytes());
        event.extend_from_slice(&1u32.to_ne_bytes()); // cpu
        event.extend_from_slice(&123_456_789u64.to_ne_bytes());
        for w in words {
            event.extend_from_slice(&w.to_ne_bytes());
        }
        let mut cn = Vec::new();
        cn.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
        cn.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
        cn.extend_from_slice(&seq.to_ne_bytes());
        cn.extend_from_slice(&ack.to_ne_bytes());
        cn.extend_from_slice(&(event.len() as u16).to_ne_bytes());
        cn.extend_from_slice(&0u16.to_ne_bytes());
        cn.extend_from_slice(&event);
        let mut nl = Vec::new();
        nl.extend_from_slice(&((NLMSG_HDRLEN + cn.len()) as u32).to_ne_bytes());
        nl.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        nl.extend_from_slice(&0u16.to_ne_bytes());
        nl.extend_from_slice(&seq.to_ne_bytes());
        nl.extend_from_slice(&0u32.to_ne_bytes());
        nl.extend_from_slice(&cn);
        while nl.len() % 4 != 0 {
            nl.push(0);
        }
        nl
    }

    /// The kernel's answer to a LISTEN whose nonce was `ack - 1`: accepted.
    pub(crate) fn ack(ack: u32) -> Vec<u8> {
        message(PROC_EVENT_NONE, 0, ack, &[0])
    }

    pub(crate) fn fork(parent: u32, child: u32) -> Vec<u8> {
        message(PROC_EVENT_FORK, 7, 0, &[parent, parent, child, child, 0, 0])
    }

    pub(crate) fn exec(pid: u32) -> Vec<u8> {
        message(PROC_EVENT_EXEC, 8, 0, &[pid, pid, 0, 0, 0, 0])
    }

    pub(crate) fn exit(pid: u32, parent: u32) -> Vec<u8> {
        message(PROC_EVENT_EXIT, 9, 0, &[pid, pid, 0, 0, parent, parent])
    }

    #[test]
    fn parses_each_event_kind() {
        assert_eq!(
            parse_messages(&message(PROC_EVENT_FORK, 1, 0, &[10, 11, 20, 20, 0, 0])),
            [ProcEvent::Fork {
                parent_pid: 10,
                parent_tgid: 11,
                child_pid: 20,
                child_tgid: 20
            }]
        );
        assert_eq!(
            parse_messages(&exec(42)),
            [ProcEvent::Exec { pid: 42, tgid: 42 }]
        );
        assert_eq!(
            parse_messages(&message(PROC_EVENT_EXIT, 1, 0, &[43, 42, 256, 17, 5, 6])),
            [ProcEvent::Exit {
                pid: 43,
                tgid: 42,
                exit_code: 256,
                exit_signal: 17,
                parent_pid: Some(5),
                parent_tgid: Some(6)
            }]
        );
        // Before 4.x the exit event had no parent.
        assert_eq!(
            parse_messages(&message(PROC_EVENT_EXIT, 1, 0, &[43, 42, 0, 17])),
            [ProcEvent::Exit {
                pid: 43,
                tgid: 42,
                exit_code: 0,
                exit_signal: 17,
                parent_pid: None,
                parent_tgid: None
            }]
        );
        assert_eq!(
            parse_messages(&message(PROC_EVENT_NONE, 77, 1, &[0, 0, 0, 0, 0, 0])),
            [ProcEvent::Ack {
                seq: 77,
                ack: 1,
                err: 0
            }]
        );
        // PROC_EVENT_UID.
        assert_eq!(
            parse_messages(&message(4, 1, 0, &[42, 42, 0, 0, 0, 0])),
            [ProcEvent::Other { what: 4 }]
        );
    }

    #[test]
    fn parses_several_messages_in_one_datagram() {
        let mut buf = fork(1, 2);
        buf.extend(exec(2));
        buf.extend(exit(2, 1));
        let events = parse_messages(&buf);
        assert_eq!(events.len(), 3);
        assert!(matches!(events[0], ProcEvent::Fork { child_tgid: 2, .. }));
        assert_eq!(events[1], ProcEvent::Exec { pid: 2, tgid: 2 });
        assert!(matches!(events[2], ProcEvent::Exit { tgid: 2, .. }));
    }

    #[test]
    fn truncated_messages_yield_only_complete_events() {
        let mut buf = exec(5);
        let first = buf.len();
        buf.extend(fork(5, 6));
        for cut in 0..buf.len() {
            let events = parse_messages(&buf[..cut]);
            let expected = usize::from(cut >= first);
            assert_eq!(events.len(), expected, "cut at {cut}: {events:?}");
        }
        assert_eq!(parse_messages(&buf).len(), 2);
        // A proc_event too short for its kind, inside a well-formed message.
        assert!(parse_messages(&message(PROC_EVENT_FORK, 1, 0, &[1, 1, 2])).is_empty());
        assert!(parse_messages(&message(PROC_EVENT_EXEC, 1, 0, &[1])).is_empty());
        assert!(parse_messages(&message(PROC_EVENT_EXIT, 1, 0, &[1, 1, 0])).is_empty());
        assert!(parse_messages(&message(PROC_EVENT_NONE, 1, 0, &[])).is_empty());
    }

    #[test]
    fn skips_other_channels_control_messages_and_lying_lengths() {
        let mut other_channel = exec(5);
        other_channel[16..20].copy_from_slice(&9u32.to_ne_bytes()); // cn_msg id.idx
        assert!(parse_messages(&other_channel).is_empty());

        let mut error = exec(5);
        error[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        assert!(parse_messages(&error).is_empty());

        // cn_msg.len larger than the message holds.
        let mut long_data = exec(5);
        long_data[32..34].copy_from_slice(&500u16.to_ne_bytes());
        assert!(parse_messages(&long_data).is_empty());

        for bad_len in [0u32, 3, 15, u32::MAX] {
            let mut buf = exec(5);
            buf[0..4].copy_from_slice(&bad_len.to_ne_bytes());
            assert!(parse_messages(&buf).is_empty(), "nlmsg_len {bad_len}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..5_000 {
            let len = (next() % 200) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Half the time, a plausible header so the parser gets deeper.
            if len >= 40 && next() % 2 == 0 {
                buf[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
                buf[16..20].copy_from_slice(&CN_IDX_PROC.to_ne_bytes());
                buf[20..24].copy_from_slice(&CN_VAL_PROC.to_ne_bytes());
            }
            let _ = parse_messages(&buf);
        }
    }

    #[test]
    fn control_message_is_what_the_kernel_expects() {
        let msg = control_message(PROC_CN_MCAST_LISTEN, 99);
        assert_eq!(msg.len(), 40);
        assert_eq!(u32_at(&msg, 0), Some(40));
        assert_eq!(u16_at(&msg, 4), Some(NLMSG_DONE));
        assert_eq!(u32_at(&msg, 16), Some(CN_IDX_PROC));
        assert_eq!(u32_at(&msg, 20), Some(CN_VAL_PROC));
        assert_eq!(u32_at(&msg, 28), Some(99));
        assert_eq!(u16_at(&msg, 32), Some(4));
        assert_eq!(u32_at(&msg, 36), Some(PROC_CN_MCAST_LISTEN));
    }
}
