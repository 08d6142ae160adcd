//! Sigma's process-creation field names (Sysmon event 1's) to spawnwatch's fields.

use dsl::{Field, FieldRef};

/// Sigma name, spawnwatch field, steps up the ancestry (1: the parent's).
const FIELDS: [(&str, Field, u32); 20] = [
    ("Image", Field::ImagePath, 0),
    ("OriginalFileName", Field::OriginalFileName, 0),
    ("CommandLine", Field::CommandLine, 0),
    ("CurrentDirectory", Field::CurrentWorkingDirectory, 0),
    ("User", Field::User, 0),
    ("IntegrityLevel", Field::IntegrityLevel, 0),
    ("ProcessId", Field::Pid, 0),
    ("ParentProcessId", Field::Ppid, 0),
    ("ParentImage", Field::ImagePath, 1),
    ("ParentCommandLine", Field::CommandLine, 1),
    ("ParentUser", Field::User, 1),
    ("LogonId", Field::LogonId, 0),
    ("TerminalSessionId", Field::TerminalSessionId, 0),
    ("Description", Field::Description, 0),
    ("Product", Field::Product, 0),
    ("Company", Field::Company, 0),
    ("FileVersion", Field::FileVersion, 0),
    ("Hashes", Field::Hashes, 0),
    ("Computer", Field::Hostname, 0),
    ("ComputerName", Field::Hostname, 0),
];

/// The field a Sigma name stands for; the name's case does not matter.
pub(crate) fn field(name: &str) -> Option<FieldRef> {
    FIELDS
        .iter()
        .find(|(sigma, _, _)| sigma.eq_ignore_ascii_case(name))
        .map(|&(_, field, depth)| FieldRef { field, depth })
}

/// Where a keyword (a value without a field) is looked for: every text field of the
/// new process, and the parent's fields Sysmon's event carries (image, command line,
/// user): the "whole event" of Sigma's keyword search.
pub(crate) fn keyword_fields() -> Vec<FieldRef> {
    let own = Field::ALL
        .into_iter()
        .filter(|f| f.kind() == dsl::FieldKind::Text && *f != Field::Exe)
        .map(|field| FieldRef { field, depth: 0 });
    let parent = [Field::ImagePath, Field::CommandLine, Field::User]
        .into_iter()
        .map(|field| FieldRef { field, depth: 1 });
    own.chain(parent).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysmon_names_and_their_parent_forms() {
        let image = field("Image").unwrap();
        assert_eq!((image.field, image.depth), (Field::ImagePath, 0));
        let parent = field("parentimage").unwrap();
        assert_eq!((parent.field, parent.depth), (Field::ImagePath, 1));
        assert_eq!(field("ParentUser").unwrap().depth, 1);
        assert_eq!(field("Provider_Name"), None);
    }
}
