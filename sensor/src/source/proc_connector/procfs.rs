//! Reading a process's details from `/proc`, whether it listens on a TCP port, and
//! uid → user name.

use crate::facts::HostFacts;
use crate::record::{ProcessRecord, Text};
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The `/proc` file system to read, injectable so tests can use a fake tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcFs {
    pub root: PathBuf,
}

impl Default for ProcFs {
    fn default() -> ProcFs {
        ProcFs {
            root: PathBuf::from("/proc"),
        }
    }
}

/// What `/proc/PID` told about one process; every part may be missing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProcInfo {
    /// `status` was readable: the process (or its zombie) still existed.
    pub(crate) exists: bool,
    /// `Name:` of `status`: the kernel's comm, the image's file name cut to 15 bytes.
    pub(crate) name: Option<String>,
    pub(crate) tgid: Option<u32>,
    pub(crate) ppid: Option<u32>,
    /// Real uid: who runs it.
    pub(crate) uid: Option<u32>,
    /// Effective uid: whose rights it has; another while a setuid program (sudo) runs.
    pub(crate) euid: Option<u32>,
    pub(crate) image_path: Option<String>,
    /// `cmdline` split at its NULs (empty: unknown).
    pub(crate) argv: Option<Vec<String>>,
    pub(crate) cwd: Option<String>,
    /// The image has no name any more (`exe` ends in " (deleted)").
    pub(crate) exe_deleted: bool,
    /// The image is a memfd (`exe` is `/memfd:NAME (deleted)`).
    pub(crate) exe_memfd: bool,
}

impl ProcFs {
    fn path(&self, pid: u32, file: &str) -> PathBuf {
        self.root.join(pid.to_string()).join(file)
    }

    fn link(&self, pid: u32, file: &str) -> Option<String> {
        self.link_and_deleted(pid, file).map(|(target, _)| target)
    }

    /// The target of a link, and whether the kernel marked it removed since (with the
    /// suffix " (deleted)", which is cut off).
    fn link_and_deleted(&self, pid: u32, file: &str) -> Option<(String, bool)> {
        let target = std::fs::read_link(self.path(pid, file)).ok()?;
        let target = target.to_string_lossy();
        Some(match target.strip_suffix(" (deleted)") {
            Some(cut) => (cut.to_string(), true),
            None => (target.into_owned(), false),
        })
    }

    /// Reads what it can of `/proc/PID`. A process that has exited but is not yet
    /// reaped (zombie) still has `status`, but no `exe`, `cmdline` or `cwd`.
    pub(crate) fn read(&self, pid: u32) -> ProcInfo {
        // Most wanted first: a short-lived process may be gone by the next read.
        let exe = self.link_and_deleted(pid, "exe");
        // A memfd has no directory: the kernel shows it as `/memfd:NAME (deleted)`.
        let memfd = exe
            .as_ref()
            .is_some_and(|(path, deleted)| *deleted && path.starts_with("/memfd:"));
        let mut info = ProcInfo {
            exe_deleted: exe.as_ref().is_some_and(|(_, deleted)| *deleted) && !memfd,
            exe_memfd: memfd,
            image_path: exe.map(|(path, _)| path),
            argv: std::fs::read(self.path(pid, "cmdline"))
                .ok()
                .and_then(|raw| argv(&raw)),
            cwd: self.link(pid, "cwd"),
            ..ProcInfo::default()
        };
        if let Ok(status) = std::fs::read(self.path(pid, "status")) {
            info.exists = true;
            parse_status(&String::from_utf8_lossy(&status), &mut info);
        }
        info
    }

    /// The numeric entries of the root: one per process (threads are not listed).
    pub(crate) fn pids(&self) -> Vec<u32> {
        let Ok(dir) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect()
    }

    /// The record of `pid` as `/proc` shows it now, with `ppid` falling back to
    /// `known_ppid` (from the kernel's events). `exe` is the image's file name, or
    /// the comm when the image link could not be read (zombie, kernel thread).
    pub(crate) fn record(
        &self,
        pid: u32,
        known_ppid: Option<u32>,
        users: &mut UserNames,
    ) -> (ProcessRecord, ProcInfo) {
        let info = self.read(pid);
        (info.to_record(pid, known_ppid, users), info)
    }
}

impl ProcInfo {
    /// The record of process `pid`, with `ppid` falling back to `known_ppid`.
    pub(crate) fn to_record(
        &self,
        pid: u32,
        known_ppid: Option<u32>,
        users: &mut UserNames,
    ) -> ProcessRecord {
        let image_known = self.image_path.is_some();
        let mut record = ProcessRecord {
            pid,
            ppid: self.ppid.or(known_ppid),
            image_path: self.image_path.as_deref().map(Text::from),
            command_line: self.argv.as_deref().map(|a| command_line(a).into()),
            argv: self
                .argv
                .as_ref()
                .map(|a| a.iter().map(Text::from).collect()),
            user: self.uid.map(|uid| users.name(uid).into()),
            effective_user: self.euid.map(|uid| users.name(uid).into()),
            current_working_directory: self.cwd.as_deref().map(Text::from),
            exe_deleted: image_known.then_some(self.exe_deleted),
            exe_memfd: image_known.then_some(self.exe_memfd),
            ..ProcessRecord::default()
        };
        record.fill_exe();
        if record.exe.is_none() {
            record.exe = self.name.as_deref().map(Text::from);
        }
        record
    }
}

fn parse_status(status: &str, info: &mut ProcInfo) {
    for line in status.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "Name" if !value.is_empty() => info.name = Some(value.to_string()),
            "Tgid" => info.tgid = value.parse().ok(),
            // 0 for pid 1 and kernel threads' kthreadd: no parent.
            "PPid" => info.ppid = value.parse().ok().filter(|&p: &u32| p != 0),
            // Real, effective, saved, fs.
            "Uid" => {
                let mut uids = value.split_whitespace().map(|u| u.parse().ok());
                info.uid = uids.next().flatten();
                info.euid = uids.next().flatten();
            }
            _ => {}
        }
    }
}

/// `cmdline` is argv joined by NULs (with a trailing one). Empty (kernel thread, zombie)
/// is unknown.
pub(crate) fn argv(raw: &[u8]) -> Option<Vec<String>> {
    let last = raw.iter().rposition(|&b| b != 0)?;
    Some(
        raw[..=last]
            .split(|&b| b == 0)
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect(),
    )
}

/// The arguments as a shell would read them back: quoted where a space, a quote or
/// another character the shell treats specially needs it (`perl -e 'print 1'`).
/// A lone argument is left as it is: a process that rewrote its title (`nginx: master
/// process ...`, `php-fpm: pool www`) leaves one string with spaces, which is no
/// command to quote.
fn command_line(argv: &[String]) -> String {
    match argv {
        [title] => title.clone(),
        // Quoting fails only on a NUL, which no argument holds.
        _ => shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" ")),
    }
}

/// The inode of a descriptor's target when it is a socket (`socket:[1234]`).
fn socket_inode(fd_target: &Path) -> Option<u64> {
    fd_target
        .to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

impl ProcFs {
    /// Whether `pid` holds a listening TCP socket (IPv4 or IPv6): one of its
    /// descriptors is a socket that `net/tcp` or `net/tcp6` of its network namespace
    /// lists in state LISTEN. `None` when its descriptors cannot be read (it has gone)
    /// or its image is no longer `image_path` (the pid now holds another process).
    pub(crate) fn listens(&self, pid: u32, image_path: Option<&str>) -> Option<bool> {
        if let Some(expected) = image_path {
            if self.link(pid, "exe")? != expected {
                return None;
            }
        }
        let sockets: Vec<u64> = std::fs::read_dir(self.path(pid, "fd"))
            .ok()?
            .filter_map(|fd| socket_inode(&std::fs::read_link(fd.ok()?.path()).ok()?))
            .collect();
        if sockets.is_empty() {
            return Some(false);
        }
        Some(
            ["net/tcp", "net/tcp6"]
                .iter()
                .any(|table| self.listening(pid, table, &sockets)),
        )
    }

    /// Whether `table` lists one of `sockets` as listening. The kernel lists the
    /// listening sockets first (`tcp_seq_start`: the listening hash, then the
    /// established one), so the read stops at the first line in another state: a
    /// server with thousands of connections costs no more than one without.
    fn listening(&self, pid: u32, table: &str, sockets: &[u64]) -> bool {
        let Ok(file) = std::fs::File::open(self.path(pid, table)) else {
            return false;
        };
        for line in std::io::BufReader::new(file).lines().skip(1) {
            let Ok(line) = line else {
                return false;
            };
            // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
            let columns: Vec<&str> = line.split_whitespace().collect();
            const LISTEN: &str = "0A";
            if columns.get(3) != Some(&LISTEN) {
                return false;
            }
            let inode = columns.get(9).and_then(|i| i.parse::<u64>().ok());
            if inode.is_some_and(|i| sockets.contains(&i)) {
                return true;
            }
        }
        false
    }
}

impl HostFacts for ProcFs {
    fn listens(&self, process: &ProcessRecord) -> Option<bool> {
        ProcFs::listens(self, process.pid, process.image_path.as_deref())
    }
}

/// uid → user name from a passwd file, cached. The file is read once; a uid it does
/// not hold re-reads it only when its modification time changed (a user added since),
/// so unknown uids cost a `stat`, not a parse. A uid with no name is shown as its
/// number.
#[derive(Debug)]
pub struct UserNames {
    passwd: PathBuf,
    names: HashMap<u32, String>,
    loaded: Option<Option<SystemTime>>,
    /// How many times the file was parsed (for tests and curiosity).
    pub(crate) loads: u32,
}

impl UserNames {
    pub fn new(passwd: impl Into<PathBuf>) -> UserNames {
        UserNames {
            passwd: passwd.into(),
            names: HashMap::new(),
            loaded: None,
            loads: 0,
        }
    }

    /// The host's `/etc/passwd`.
    pub fn system() -> UserNames {
        UserNames::new("/etc/passwd")
    }

    pub fn name(&mut self, uid: u32) -> String {
        if let Some(name) = self.names.get(&uid) {
            return name.clone();
        }
        let modified = modified(&self.passwd);
        if self.loaded != Some(modified) {
            self.load(modified);
        }
        self.names
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| uid.to_string())
    }

    fn load(&mut self, modified: Option<SystemTime>) {
        self.loaded = Some(modified);
        self.loads += 1;
        let Ok(text) = std::fs::read(&self.passwd) else {
            return;
        };
        for line in String::from_utf8_lossy(&text).lines() {
            let mut fields = line.split(':');
            let (Some(name), Some(_), Some(uid)) = (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if let (false, Ok(uid)) = (name.is_empty(), uid.parse::<u32>()) {
                // The first entry of a uid wins, as getpwuid does.
                self.names.entry(uid).or_insert_with(|| name.to_string());
            }
        }
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).ok()?.modified().ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A fake `/proc/PID`: `exe`/`cwd` symlinks (dangling is fine), `cmdline`,
    /// `status`. `None` leaves the entry out.
    pub(crate) fn fake_process(
        root: &Path,
        pid: u32,
        ppid: u32,
        uid: u32,
        exe: Option<&str>,
        argv: &[&str],
    ) {
        let dir = root.join(pid.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let name = exe.map_or("zombie", |e| crate::record::file_name(e));
        let status = format!(
            "Name:\t{name}\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t{pid}\nNgid:\t0\n\
             Pid:\t{pid}\nPPid:\t{ppid}\nTracerPid:\t0\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n\
             Gid:\t0\t0\t0\t0\n"
        );
        std::fs::write(dir.join("status"), status).unwrap();
        if let Some(exe) = exe {
            symlink(exe, dir.join("exe")).unwrap();
            symlink("/var/www/html", dir.join("cwd")).unwrap();
        }
        let mut cmdline = Vec::new();
        for arg in argv {
            cmdline.extend_from_slice(arg.as_bytes());
            cmdline.push(0);
        }
        std::fs::write(dir.join("cmdline"), cmdline).unwrap();
    }

    pub(crate) fn passwd(dir: &Path) -> PathBuf {
        let path = dir.join("passwd");
        std::fs::write(
            &path,
            "root:x:0:0:root:/root:/bin/bash\n\
             # a comment\n\
             www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n\
             broken-line\n\
             toor:x:0:0::/root:/bin/sh\n",
        )
        .unwrap();
        path
    }

    #[test]
    fn reads_a_running_process() {
        let dir = tempfile::tempdir().unwrap();
        let procfs = ProcFs {
            root: dir.path().join("proc"),
        };
        fake_process(
            &procfs.root,
            300,
            200,
            33,
            Some("/usr/bin/dash"),
            &["sh", "-c", "id; uname -a"],
        );
        let mut users = UserNames::new(passwd(dir.path()));
        let (record, info) = procfs.record(300, Some(7), &mut users);
        assert!(info.exists);
        assert_eq!(info.tgid, Some(300));
        assert_eq!(
            record,
            ProcessRecord {
                pid: 300,
                ppid: Some(200),
                exe: Some("dash".into()),
                image_path: Some("/usr/bin/dash".into()),
                command_line: Some("sh -c 'id; uname -a'".into()),
                argv: Some(["sh", "-c", "id; uname -a"].map(Text::from).into()),
                user: Some("www-data".into()),
                effective_user: Some("www-data".into()),
                current_working_directory: Some("/var/www/html".into()),
                exe_deleted: Some(false),
                exe_memfd: Some(false),
                ..ProcessRecord::default()
            }
        );
    }

    #[test]
    fn a_setuid_program_has_its_real_and_its_effective_user() {
        let dir = tempfile::tempdir().unwrap();
        let procfs = ProcFs {
            root: dir.path().join("proc"),
        };
        fake_process(
            &procfs.root,
            400,
            300,
            33,
            Some("/usr/bin/sudo"),
            &["sudo", "-n", "-l"],
        );
        let status = std::fs::read_to_string(procfs.root.join("400/status")).unwrap();
        std::fs::write(
            procfs.root.join("400/status"),
            status.replace("Uid:\t33\t33\t33\t33", "Uid:\t33\t0\t0\t0"),
        )
        .unwrap();
        let mut users = UserNames::new(passwd(dir.path()));
        let (record, _) = procfs.record(400, None, &mut users);
        assert_eq!(record.user.as_deref(), Some("www-data"));
        assert_eq!(record.effective_user.as_deref(), Some("root"));
    }

    /// `/proc/PID/fd/N -> socket:[inode]` for each of `sockets`, and the network
    /// namespace's TCP tables as the kernel lists them: listening sockets first.
    fn fake_sockets(
        root: &Path,
        pid: u32,
        sockets: &[u64],
        tcp: &[(&str, u64)],
        tcp6: &[(&str, u64)],
    ) {
        let fd = root.join(pid.to_string()).join("fd");
        std::fs::create_dir_all(&fd).unwrap();
        symlink("/dev/null", fd.join("0")).unwrap();
        for (i, inode) in sockets.iter().enumerate() {
            symlink(format!("socket:[{inode}]"), fd.join((i + 3).to_string())).unwrap();
        }
        let net = root.join(pid.to_string()).join("net");
        std::fs::create_dir_all(&net).unwrap();
        for (file, rows) in [("tcp", tcp), ("tcp6", tcp6)] {
            let mut text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n".to_string();
            for (i, (state, inode)) in rows.iter().enumerate() {
                text.push_str(&format!(
                    "   {i}: 0100007F:1F90 00000000:0000 {state} 00000000:00000000 00:00000000 00000000    33        0 {inode} 1 0000000000000000 100 0 0 10 0\n"
                ));
            }
            std::fs::write(net.join(file), text).unwrap();
        }
    }

    #[test]
    fn a_process_listens_when_one_of_its_sockets_is_listed_listening() {
        let dir = tempfile::tempdir().unwrap();
        let procfs = ProcFs {
            root: dir.path().join("proc"),
        };
        let node = Some("/usr/bin/node");
        // 500 listens on IPv6; 501 has a connection only; 502 no socket at all.
        for pid in [500, 501, 502] {
            fake_process(&procfs.root, pid, 1, 33, node, &["node", "server.js"]);
        }
        let tcp = [("0A", 9001), ("01", 7001)];
        let tcp6 = [("0A", 9002), ("01", 7002)];
        fake_sockets(&procfs.root, 500, &[7001, 9002], &tcp, &tcp6);
        fake_sockets(&procfs.root, 501, &[7001, 7002], &tcp, &tcp6);
        fake_sockets(&procfs.root, 502, &[], &tcp, &tcp6);
        assert_eq!(procfs.listens(500, node), Some(true));
        assert_eq!(procfs.listens(501, node), Some(false));
        assert_eq!(procfs.listens(502, node), Some(false));
        assert_eq!(
            procfs.listens(500, Some("/usr/bin/php8.2")),
            None,
            "the pid now runs another image"
        );
        assert_eq!(procfs.listens(503, None), None, "gone");
        // Rows after the listening ones are not read: a listening socket there would
        // be the kernel's mistake, not ours.
        fake_sockets(
            &procfs.root,
            504,
            &[9003],
            &[("01", 7001), ("0A", 9003)],
            &[],
        );
        fake_process(&procfs.root, 504, 1, 33, node, &["node"]);
        assert_eq!(procfs.listens(504, node), Some(false));
    }

    #[test]
    fn this_process_listens_once_it_binds_a_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let me = ProcFs::default();
        let image = me.link(std::process::id(), "exe");
        assert_eq!(me.listens(std::process::id(), image.as_deref()), Some(true));
        drop(listener);
    }

    #[test]
    fn a_vanished_process_keeps_what_the_event_gave() {
        let dir = tempfile::tempdir().unwrap();
        let procfs = ProcFs {
            root: dir.path().join("proc"),
        };
        let mut users = UserNames::new(passwd(dir.path()));
        let (record, info) = procfs.record(4242, Some(300), &mut users);
        assert!(!info.exists);
        assert_eq!(
            record,
            ProcessRecord {
                pid: 4242,
                ppid: Some(300),
                ..ProcessRecord::default()
            }
        );
    }

    #[test]
    fn a_zombie_is_named_by_its_comm() {
        let dir = tempfile::tempdir().unwrap();
        let procfs = ProcFs {
            root: dir.path().join("proc"),
        };
        fake_process(&procfs.root, 301, 300, 33, None, &[]);
        let mut users = UserNames::new(passwd(dir.path()));
        let (record, info) = procfs.record(301, None, &mut users);
        assert!(info.exists);
        assert_eq!(record.exe.as_deref(), Some("zombie"));
        assert_eq!(record.image_path, None);
        assert_eq!(record.command_line, None);
        assert_eq!(record.ppid, Some(300));
        assert_eq!(record.user.as_deref(), Some("www-data"));
    }

    #[test]
    fn deleted_images_and_odd_command_lines() {
        let dir = tempfile::tempdir().unwrap();
        let procfs = ProcFs {
            root: dir.path().join("proc"),
        };
        fake_process(
            &procfs.root,
            5,
            1,
            0,
            Some("/tmp/.x/kworker (deleted)"),
            &["php-fpm: pool www"],
        );
        std::fs::write(procfs.root.join("5/cmdline"), b"a\0\0b\xff\0\0").unwrap();
        let info = procfs.read(5);
        assert_eq!(info.image_path.as_deref(), Some("/tmp/.x/kworker"));
        assert!(info.exe_deleted && !info.exe_memfd);
        // A memfd: no directory, and the kernel says deleted too.
        fake_process(
            &procfs.root,
            6,
            1,
            0,
            Some("/memfd:payload (deleted)"),
            &["x"],
        );
        let (memfd, _) = procfs.record(6, None, &mut UserNames::new(passwd(dir.path())));
        assert_eq!(memfd.image_path.as_deref(), Some("/memfd:payload"));
        assert_eq!(
            (memfd.exe_memfd, memfd.exe_deleted),
            (Some(true), Some(false))
        );
        // A file named like one, still there, is neither.
        fake_process(&procfs.root, 7, 1, 0, Some("/memfd:x"), &["x"]);
        let named_so = procfs.read(7);
        assert!(!named_so.exe_deleted && !named_so.exe_memfd);
        assert_eq!(
            info.argv,
            Some(vec!["a".into(), "".into(), "b\u{fffd}".into()])
        );
        assert_eq!(argv(b"\0\0"), None);
        assert_eq!(argv(b""), None);
        assert_eq!(
            argv(b"nginx: master process"),
            Some(vec!["nginx: master process".into()])
        );
    }

    #[test]
    fn command_lines_read_back_as_the_arguments() {
        let line =
            |args: &[&str]| command_line(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        assert_eq!(line(&["perl", "-e", "print 1"]), "perl -e 'print 1'");
        assert_eq!(line(&["sh", "-c", "id"]), "sh -c id");
        let tricky = ["sh", "-c", "echo 'it''s' \"$HOME\" | cat", "", "a\nb"];
        let quoted = line(&tricky);
        assert_eq!(shlex::split(&quoted).unwrap(), tricky, "{quoted}");
        // A process that rewrote its title: one string, shown as it is.
        assert_eq!(line(&["php-fpm: pool www"]), "php-fpm: pool www");
    }

    #[test]
    fn lists_pids() {
        let dir = tempfile::tempdir().unwrap();
        let procfs = ProcFs {
            root: dir.path().join("proc"),
        };
        fake_process(&procfs.root, 1, 0, 0, Some("/sbin/init"), &["/sbin/init"]);
        fake_process(&procfs.root, 77, 1, 0, Some("/usr/sbin/nginx"), &["nginx"]);
        std::fs::create_dir_all(procfs.root.join("self")).unwrap();
        let mut pids = procfs.pids();
        pids.sort();
        assert_eq!(pids, [1, 77]);
        assert_eq!(procfs.read(1).ppid, None, "PPid 0 is no parent");
    }

    #[test]
    fn user_names_are_cached_and_reloaded_only_when_passwd_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = passwd(dir.path());
        let t0 = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(t0)
            .unwrap();
        let mut users = UserNames::new(&path);
        assert_eq!(users.name(33), "www-data");
        assert_eq!(users.name(0), "root", "the first entry of a uid wins");
        assert_eq!(users.name(33), "www-data");
        assert_eq!(users.loads, 1);
        assert_eq!(users.name(1001), "1001", "unknown uid shows as its number");
        assert_eq!(users.loads, 1, "unchanged passwd is not re-read");

        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("deploy:x:1001:1001::/home/deploy:/bin/sh\n");
        std::fs::write(&path, text).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(t0 + std::time::Duration::from_secs(60))
            .unwrap();
        assert_eq!(users.name(1001), "deploy");
        assert_eq!(users.loads, 2);
        assert_eq!(users.name(1001), "deploy");
        assert_eq!(users.loads, 2);

        let mut missing = UserNames::new(dir.path().join("nope"));
        assert_eq!(missing.name(33), "33");
        assert_eq!(missing.name(34), "34");
        assert_eq!(missing.loads, 1);
    }
}
