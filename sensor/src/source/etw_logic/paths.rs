//! NT object paths (as `Microsoft-Windows-Kernel-Process` reports `ImageName`) to DOS
//! paths, with the device map given as data (built on Windows with `QueryDosDeviceW`).

/// Drive letters and the NT devices behind them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceMap {
    /// (`\Device\HarddiskVolume3`, `C:`), without trailing backslashes.
    entries: Vec<(String, String)>,
    /// What `\SystemRoot` stands for (`C:\Windows`).
    system_root: Option<String>,
}

/// The outcome of a conversion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// A DOS path (`C:\...` or `\\server\share\...`).
    Dos(String),
    /// No mapping applies: the input, unchanged. The map may be stale (a volume mounted
    /// since it was built): the caller should rebuild it.
    Miss(String),
}

impl DeviceMap {
    pub fn new() -> DeviceMap {
        DeviceMap::default()
    }

    /// Adds a drive (`C:` or `C`) and its device target. Targets that are not NT device
    /// paths (a `subst` drive maps to `\??\C:\dir`) are ignored.
    pub fn insert(&mut self, drive: &str, device: &str) {
        let device = device.trim_end_matches('\\');
        if !starts_with_ignore_case(device, r"\Device\") {
            return;
        }
        let letter = match drive.chars().next() {
            Some(c) if c.is_ascii_alphabetic() => c.to_ascii_uppercase(),
            _ => return,
        };
        self.entries
            .retain(|(d, _)| !d.eq_ignore_ascii_case(device));
        self.entries
            .push((device.to_string(), format!("{letter}:")));
    }

    #[cfg(test)]
    pub fn with_system_root(mut self, system_root: &str) -> DeviceMap {
        self.set_system_root(system_root);
        self
    }

    pub fn set_system_root(&mut self, system_root: &str) {
        let root = system_root.trim_end_matches('\\');
        self.system_root = (!root.is_empty()).then(|| root.to_string());
    }

    /// The device behind a drive letter, if mapped.
    #[cfg(test)]
    pub fn device_of(&self, drive: &str) -> Option<&str> {
        let letter = drive.chars().next()?.to_ascii_uppercase();
        self.entries
            .iter()
            .find(|(_, d)| d.starts_with(letter))
            .map(|(dev, _)| dev.as_str())
    }

    /// Converts an NT path to a DOS path.
    pub fn to_dos(&self, nt: &str) -> Resolved {
        if is_dos_path(nt) || nt.starts_with(r"\\") && !nt.starts_with(r"\\?\") {
            return Resolved::Dos(nt.to_string());
        }
        for prefix in [r"\??\", r"\\?\"] {
            if let Some(rest) = strip_prefix_ignore_case(nt, prefix) {
                if let Some(unc) = strip_prefix_ignore_case(rest, r"UNC\") {
                    return Resolved::Dos(format!(r"\\{unc}"));
                }
                if is_dos_path(rest) {
                    return Resolved::Dos(rest.to_string());
                }
                return Resolved::Miss(nt.to_string());
            }
        }
        if let Some(rest) = strip_component(nt, r"\SystemRoot") {
            return match &self.system_root {
                Some(root) => Resolved::Dos(format!("{root}{rest}")),
                None => Resolved::Miss(nt.to_string()),
            };
        }
        if let Some(rest) = strip_component(nt, r"\Device\Mup") {
            // `\Device\Mup\;LanmanRedirector\;Z:000...\server\share`: skip the `;` parts.
            let mut parts = rest.trim_start_matches('\\').split('\\').peekable();
            while parts.next_if(|p| p.starts_with(';')).is_some() {}
            let unc: Vec<&str> = parts.collect();
            return Resolved::Dos(format!(r"\\{}", unc.join(r"\")));
        }
        // The longest device that matches up to a `\` (HarddiskVolume1 is not
        // HarddiskVolume10).
        let best = self
            .entries
            .iter()
            .filter_map(|(dev, drive)| {
                strip_component(nt, dev).map(|rest| (dev.len(), drive, rest))
            })
            .max_by_key(|(len, _, _)| *len);
        match best {
            Some((_, drive, rest)) => Resolved::Dos(format!("{drive}{rest}")),
            None => Resolved::Miss(nt.to_string()),
        }
    }
}

/// `C:\...` or `C:` alone.
fn is_dos_path(p: &str) -> bool {
    let b = p.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphabetic()
        && b[1] == b':'
        && (b.len() == 2 || b[2] == b'\\' || b[2] == b'/')
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if starts_with_ignore_case(s, prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// `s` without `prefix`, if `prefix` matches whole components (followed by `\` or the end).
/// The rest keeps its leading `\`.
fn strip_component<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = strip_prefix_ignore_case(s, prefix)?;
    (rest.is_empty() || rest.starts_with('\\')).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> DeviceMap {
        let mut m = DeviceMap::new().with_system_root(r"C:\Windows");
        m.insert("C:", r"\Device\HarddiskVolume3");
        m.insert("D:", r"\Device\HarddiskVolume10");
        m.insert("E:", r"\Device\HarddiskVolume1");
        m.insert("S:", r"\??\C:\subst-target"); // subst: ignored
        m.insert(
            "Z:",
            r"\Device\LanmanRedirector\;Z:0000000000012345\srv\share",
        );
        m
    }

    fn dos(p: &str) -> Resolved {
        Resolved::Dos(p.to_string())
    }

    #[test]
    fn volumes_that_share_a_prefix_are_told_apart() {
        let m = map();
        assert_eq!(
            m.to_dos(r"\Device\HarddiskVolume3\Windows\System32\cmd.exe"),
            dos(r"C:\Windows\System32\cmd.exe")
        );
        assert_eq!(
            m.to_dos(r"\Device\HarddiskVolume10\tools\x.exe"),
            dos(r"D:\tools\x.exe")
        );
        assert_eq!(m.to_dos(r"\Device\HarddiskVolume1\y.exe"), dos(r"E:\y.exe"));
        assert_eq!(m.to_dos(r"\device\harddiskvolume1\y.exe"), dos(r"E:\y.exe"));
        // HarddiskVolume11 is not mapped: a miss, not E: or D:
        assert_eq!(
            m.to_dos(r"\Device\HarddiskVolume11\z.exe"),
            Resolved::Miss(r"\Device\HarddiskVolume11\z.exe".to_string())
        );
        assert_eq!(m.to_dos(r"\Device\HarddiskVolume3"), dos("C:"));
        assert_eq!(m.entries.len(), 4);
        assert_eq!(m.device_of("c:"), Some(r"\Device\HarddiskVolume3"));
        assert_eq!(m.device_of("S:"), None);
    }

    #[test]
    fn special_prefixes() {
        let m = map();
        assert_eq!(
            m.to_dos(r"\SystemRoot\System32\smss.exe"),
            dos(r"C:\Windows\System32\smss.exe")
        );
        assert_eq!(
            DeviceMap::new().to_dos(r"\SystemRoot\System32\smss.exe"),
            Resolved::Miss(r"\SystemRoot\System32\smss.exe".to_string())
        );
        assert_eq!(
            m.to_dos(r"\SystemRootX\a.exe"),
            Resolved::Miss(r"\SystemRootX\a.exe".to_string())
        );
        assert_eq!(
            m.to_dos(r"\??\C:\Windows\system32\conhost.exe"),
            dos(r"C:\Windows\system32\conhost.exe")
        );
        assert_eq!(
            m.to_dos(r"\??\UNC\srv\share\a.exe"),
            dos(r"\\srv\share\a.exe")
        );
        assert_eq!(m.to_dos(r"\\?\C:\a.exe"), dos(r"C:\a.exe"));
        assert_eq!(
            m.to_dos(r"\??\Volume{x}\a.exe"),
            Resolved::Miss(r"\??\Volume{x}\a.exe".to_string())
        );
        assert_eq!(
            m.to_dos(r"\Device\Mup\server\share\app\w.exe"),
            dos(r"\\server\share\app\w.exe")
        );
        assert_eq!(
            m.to_dos(r"\Device\Mup\;LanmanRedirector\;Z:0000000000012345\srv\share\a.exe"),
            dos(r"\\srv\share\a.exe")
        );
        assert_eq!(m.to_dos(r"C:\already\dos.exe"), dos(r"C:\already\dos.exe"));
        assert_eq!(
            m.to_dos(r"\\server\share\x.exe"),
            dos(r"\\server\share\x.exe")
        );
        assert_eq!(m.to_dos(""), Resolved::Miss(String::new()));
        assert_eq!(m.to_dos("cmd.exe"), Resolved::Miss("cmd.exe".to_string()));
        assert_eq!(
            m.to_dos("\\Device\\HarddiskVolume3é\\x"),
            Resolved::Miss("\\Device\\HarddiskVolume3é\\x".to_string())
        );
    }

    #[test]
    fn remapping_a_device_replaces_the_old_entry() {
        let mut m = map();
        m.insert("F", r"\Device\HarddiskVolume3\");
        assert_eq!(m.to_dos(r"\Device\HarddiskVolume3\a"), dos(r"F:\a"));
        m.insert("1:", r"\Device\Bad");
        assert_eq!(m.entries.len(), 4);
    }
}
