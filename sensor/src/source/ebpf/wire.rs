//! The records the kernel side writes into the ring buffer (`spawnwatch.bpf.c`'s
//! `struct header` and what follows it), read back. Pure: every layout rule is tested
//! here on bytes built by hand.

/// `struct header`'s size; an exec's strings follow it.
pub(super) const HEADER_BYTES: usize = 72;

const KIND_EXEC: u8 = 1;
const KIND_FORK: u8 = 2;
const KIND_EXIT: u8 = 3;

const ARGV_TRUNCATED: u8 = 1 << 0;
const ARGV_UNREAD: u8 = 1 << 1;
const EXE_PATH_TRUNCATED: u8 = 1 << 2;
const CWD_PATH_TRUNCATED: u8 = 1 << 3;
const EXE_DELETED: u8 = 1 << 4;
const EXE_MEMFD: u8 = 1 << 5;

/// How much of argv the kernel side keeps (`ARGV_CAP`).
#[cfg(test)]
pub(super) const ARGV_CAP: usize = 16384;

/// One record, as the kernel wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Record {
    Exec(Exec),
    /// A new process (not a thread): `tgid`, forked by `ppid`.
    Fork {
        tgid: u32,
        ppid: u32,
        boot_ns: u64,
    },
    /// A process's last thread ended.
    Exit {
        tgid: u32,
        ppid: u32,
        boot_ns: u64,
    },
}

/// What the kernel saw of a process at its exec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Exec {
    pub boot_ns: u64,
    pub tgid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub euid: u32,
    pub comm: String,
    /// The executable's path as `/proc/PID/exe` shows it (without " (deleted)");
    /// `None` when the kernel could not walk all of it.
    pub image_path: Option<String>,
    pub exe_deleted: bool,
    pub exe_memfd: bool,
    pub cwd: Option<String>,
    /// NUL-separated, as in memory; empty when unknown.
    pub argv: Vec<u8>,
    pub argv_truncated: bool,
    pub argv_unread: bool,
}

/// Why a record could not be read: the two sides disagree on the layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Malformed(pub String);

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Reads one ring-buffer record.
pub(super) fn parse(bytes: &[u8]) -> Result<Record, Malformed> {
    if bytes.len() < HEADER_BYTES {
        return Err(Malformed(format!(
            "a record of {} bytes, shorter than its {HEADER_BYTES}-byte header",
            bytes.len()
        )));
    }
    let boot_ns = u64_at(bytes, 0);
    let tgid = u32_at(bytes, 8);
    let ppid = u32_at(bytes, 12);
    match bytes[48] {
        KIND_FORK => Ok(Record::Fork {
            tgid,
            ppid,
            boot_ns,
        }),
        KIND_EXIT => Ok(Record::Exit {
            tgid,
            ppid,
            boot_ns,
        }),
        KIND_EXEC => exec(bytes, boot_ns, tgid, ppid).map(Record::Exec),
        other => Err(Malformed(format!("a record of unknown kind {other}"))),
    }
}

fn exec(bytes: &[u8], boot_ns: u64, tgid: u32, ppid: u32) -> Result<Exec, Malformed> {
    let (exe_bytes, cwd_bytes, argv_bytes) = (
        u32_at(bytes, 32) as usize,
        u32_at(bytes, 36) as usize,
        u32_at(bytes, 40) as usize,
    );
    let (exe_parts, cwd_parts) = (u16_at(bytes, 44), u16_at(bytes, 46));
    let flags = bytes[49];
    let data = &bytes[HEADER_BYTES..];
    if exe_bytes + cwd_bytes + argv_bytes > data.len() {
        return Err(Malformed(format!(
            "an exec record whose strings ({exe_bytes} + {cwd_bytes} + {argv_bytes} bytes) \
             overrun its {} bytes",
            data.len()
        )));
    }
    let (exe, rest) = data.split_at(exe_bytes);
    let (cwd, rest) = rest.split_at(cwd_bytes);
    let comm = &bytes[56..72];
    let comm_len = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    let memfd = flags & EXE_MEMFD != 0;
    Ok(Exec {
        boot_ns,
        tgid,
        ppid,
        uid: u32_at(bytes, 16),
        euid: u32_at(bytes, 20),
        comm: String::from_utf8_lossy(&comm[..comm_len]).into_owned(),
        image_path: path(exe, exe_parts, flags & EXE_PATH_TRUNCATED != 0),
        exe_deleted: flags & EXE_DELETED != 0,
        exe_memfd: memfd,
        cwd: path(cwd, cwd_parts, flags & CWD_PATH_TRUNCATED != 0),
        argv: rest[..argv_bytes].to_vec(),
        argv_truncated: flags & ARGV_TRUNCATED != 0,
        argv_unread: flags & ARGV_UNREAD != 0,
    })
}

/// A path from its components as the kernel walked them (the file's own name first,
/// each NUL-terminated): `/usr/bin/dash` from `dash\0bin\0usr\0`; no component is the
/// root, `/`. A walk that did not reach the root gives no path.
fn path(components: &[u8], parts: u16, truncated: bool) -> Option<String> {
    if truncated {
        return None;
    }
    let names: Vec<&[u8]> = components
        .split(|&b| b == 0)
        .take(usize::from(parts))
        .collect();
    if names.len() != usize::from(parts) {
        return None;
    }
    if names.is_empty() {
        return Some("/".into());
    }
    let mut path = Vec::with_capacity(components.len() + 1);
    for name in names.iter().rev() {
        path.push(b'/');
        path.extend_from_slice(name);
    }
    Some(String::from_utf8_lossy(&path).into_owned())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An exec record as the kernel side lays it out.
    #[derive(Default)]
    pub(crate) struct Built<'a> {
        pub tgid: u32,
        pub ppid: u32,
        pub uid: u32,
        pub euid: u32,
        pub exe: &'a [&'a str],
        pub cwd: &'a [&'a str],
        pub argv: &'a [u8],
        pub flags: u8,
        pub comm: &'a str,
    }

    pub(crate) fn header(kind: u8, tgid: u32, ppid: u32) -> Vec<u8> {
        let mut h = vec![0u8; HEADER_BYTES];
        h[0..8].copy_from_slice(&1_000_000_000u64.to_ne_bytes());
        h[8..12].copy_from_slice(&tgid.to_ne_bytes());
        h[12..16].copy_from_slice(&ppid.to_ne_bytes());
        h[48] = kind;
        h
    }

    impl Built<'_> {
        pub(crate) fn bytes(&self) -> Vec<u8> {
            let mut r = header(KIND_EXEC, self.tgid, self.ppid);
            r[16..20].copy_from_slice(&self.uid.to_ne_bytes());
            r[20..24].copy_from_slice(&self.euid.to_ne_bytes());
            let components = |parts: &[&str]| -> Vec<u8> {
                parts
                    .iter()
                    .rev()
                    .flat_map(|p| p.bytes().chain([0]))
                    .collect()
            };
            let (exe, cwd) = (components(self.exe), components(self.cwd));
            r[32..36].copy_from_slice(&(exe.len() as u32).to_ne_bytes());
            r[36..40].copy_from_slice(&(cwd.len() as u32).to_ne_bytes());
            r[40..44].copy_from_slice(&(self.argv.len() as u32).to_ne_bytes());
            r[44..46].copy_from_slice(&(self.exe.len() as u16).to_ne_bytes());
            r[46..48].copy_from_slice(&(self.cwd.len() as u16).to_ne_bytes());
            r[49] = self.flags;
            r[56..56 + self.comm.len()].copy_from_slice(self.comm.as_bytes());
            r.extend(exe);
            r.extend(cwd);
            r.extend_from_slice(self.argv);
            r
        }
    }

    #[test]
    fn an_exec_record_reads_back() {
        let bytes = Built {
            tgid: 301,
            ppid: 300,
            uid: 33,
            euid: 0,
            exe: &["usr", "bin", "id"],
            cwd: &["var", "www", "html"],
            argv: b"id\0-u\0",
            comm: "id",
            ..Built::default()
        }
        .bytes();
        let Ok(Record::Exec(exec)) = parse(&bytes) else {
            panic!("{:?}", parse(&bytes));
        };
        assert_eq!(
            exec,
            Exec {
                boot_ns: 1_000_000_000,
                tgid: 301,
                ppid: 300,
                uid: 33,
                euid: 0,
                comm: "id".into(),
                image_path: Some("/usr/bin/id".into()),
                cwd: Some("/var/www/html".into()),
                argv: b"id\0-u\0".to_vec(),
                ..Exec::default()
            }
        );
    }

    #[test]
    fn flags_and_odd_paths() {
        let bytes = Built {
            exe: &["memfd:x"],
            cwd: &[],
            argv: b"AAAA",
            flags: EXE_MEMFD | ARGV_TRUNCATED,
            comm: "123456789012345",
            ..Built::default()
        }
        .bytes();
        let Ok(Record::Exec(exec)) = parse(&bytes) else {
            panic!()
        };
        assert_eq!(exec.image_path.as_deref(), Some("/memfd:x"));
        assert_eq!(exec.cwd.as_deref(), Some("/"), "no component is the root");
        assert!(exec.exe_memfd && !exec.exe_deleted);
        assert!(exec.argv_truncated && !exec.argv_unread);
        assert_eq!(
            exec.comm, "123456789012345",
            "a comm of 15 bytes and its NUL"
        );

        let bytes = Built {
            exe: &["tmp", "x"],
            cwd: &["deep"],
            flags: EXE_DELETED | CWD_PATH_TRUNCATED | ARGV_UNREAD,
            ..Built::default()
        }
        .bytes();
        let Ok(Record::Exec(exec)) = parse(&bytes) else {
            panic!()
        };
        assert_eq!(exec.image_path.as_deref(), Some("/tmp/x"));
        assert!(exec.exe_deleted);
        assert_eq!(exec.cwd, None, "a walk cut short gives no path");
        assert!(exec.argv_unread && exec.argv.is_empty());
    }

    #[test]
    fn forks_exits_and_broken_records() {
        assert_eq!(
            parse(&header(KIND_FORK, 7, 1)),
            Ok(Record::Fork {
                tgid: 7,
                ppid: 1,
                boot_ns: 1_000_000_000
            })
        );
        assert_eq!(
            parse(&header(KIND_EXIT, 7, 1)),
            Ok(Record::Exit {
                tgid: 7,
                ppid: 1,
                boot_ns: 1_000_000_000
            })
        );
        assert!(parse(&[0; 10]).unwrap_err().0.contains("shorter"));
        assert!(parse(&header(9, 1, 1)).unwrap_err().0.contains("kind 9"));
        let mut overrun = Built {
            argv: b"id\0",
            ..Built::default()
        }
        .bytes();
        overrun.truncate(overrun.len() - 1);
        assert!(parse(&overrun).unwrap_err().0.contains("overrun"));
    }
}
