//! A rule's metadata: `id`, `title`, `description`, `level`, `tags`, `references` in the
//! checked rule; `status`, `author`, `falsepositives` and the whole tag list beside it.

use crate::yaml::{self, Locator, Node};
use crate::Problem;
use dsl::ast::Severity;
use dsl::ir::RuleMeta;

/// What a Sigma rule says that the checked rule has no place for: shown by
/// `spawnwatch sigma convert` (the Detection Rule License asks to keep the author).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleInfo {
    pub status: Option<String>,
    pub author: Option<String>,
    pub falsepositives: Vec<String>,
    pub tags: Vec<String>,
    /// `windows` or `linux`.
    pub product: String,
}

pub(crate) struct LogSource {
    category: Option<String>,
    product: Option<String>,
}

impl LogSource {
    pub(crate) fn in_scope(&self) -> bool {
        self.category.as_deref() == Some("process_creation")
            && matches!(self.product.as_deref(), Some("windows" | "linux"))
    }
}

pub(crate) fn logsource(doc: &Node<'_>) -> LogSource {
    let part = |key| {
        yaml::get(doc, "logsource")
            .and_then(|l| yaml::get(l, key))
            .and_then(yaml::text)
            .map(str::to_ascii_lowercase)
    };
    LogSource {
        category: part("category"),
        product: part("product"),
    }
}

pub(crate) fn meta(
    doc: &Node<'_>,
    at: &Locator<'_>,
    logsource: &LogSource,
) -> Result<(RuleMeta, RuleInfo), Problem> {
    let whole = at.span(doc);
    let text = |key| yaml::get(doc, key).and_then(yaml::text);
    let id_node = yaml::get(doc, "id").ok_or_else(|| {
        Problem::unsupported(
            "no `id`",
            "the rule has no `id`, which spawnwatch names alerts and exceptions by",
            whole,
        )
    })?;
    let id = yaml::text(id_node).unwrap_or_default();
    if !is_rule_id(id) {
        return Err(Problem::unsupported(
            "an `id` spawnwatch cannot name",
            format!("`{id}` cannot name a rule: ids are letters, digits and `_.:-`, starting with a letter or digit"),
            at.span(id_node),
        ));
    }
    let title = text("title").ok_or_else(|| Problem::invalid("the rule has no `title`", whole))?;
    let tags = yaml::get(doc, "tags")
        .map(yaml::strings)
        .unwrap_or_default();
    let meta = RuleMeta {
        id: id.to_string(),
        title: one_line(title),
        description: text("description").map(one_line).unwrap_or_default(),
        severity: text("level")
            .and_then(Severity::from_name)
            .unwrap_or(Severity::Medium),
        attack: tags.iter().filter_map(|t| attack_id(t)).collect(),
        references: yaml::get(doc, "references")
            .map(yaml::strings)
            .unwrap_or_default()
            .iter()
            .map(|r| one_line(r))
            .collect(),
        enabled: true,
        span: at.span(id_node),
    };
    let info = RuleInfo {
        status: text("status").map(str::to_string),
        author: text("author").map(one_line),
        falsepositives: yaml::get(doc, "falsepositives")
            .map(yaml::strings)
            .unwrap_or_default()
            .iter()
            .map(|f| one_line(f))
            .collect(),
        tags,
        product: logsource.product.clone().unwrap_or_default(),
    };
    Ok((meta, info))
}

/// What the rule language takes as a rule id.
fn is_rule_id(id: &str) -> bool {
    id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c))
}

/// `attack.t1059.001` -> `T1059.001`; other tags (tactics, groups, software) are not
/// technique ids.
fn attack_id(tag: &str) -> Option<String> {
    let rest = tag.strip_prefix("attack.")?;
    let id = rest.to_ascii_uppercase();
    dsl::check::is_attack_id(&id).then_some(id)
}

/// Text for one line of a rule file: runs of white space (line breaks of a YAML block
/// included) as one space, and no odd run of backslashes where it would take the
/// closing quote (see `dsl::print::quote`).
fn one_line(text: &str) -> String {
    let mut out = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut fixed = String::with_capacity(out.len());
    let mut run = 0;
    for c in out.chars() {
        if c == '"' && run % 2 == 1 {
            fixed.push('\\');
        }
        run = if c == '\\' { run + 1 } else { 0 };
        fixed.push(c);
    }
    if run % 2 == 1 {
        fixed.push('\\');
    }
    out = fixed;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn technique_tags_become_attack_ids() {
        assert_eq!(attack_id("attack.t1059.001").as_deref(), Some("T1059.001"));
        assert_eq!(attack_id("attack.t1033").as_deref(), Some("T1033"));
        assert_eq!(attack_id("attack.execution"), None);
        assert_eq!(attack_id("attack.g0016"), None);
        assert_eq!(attack_id("cve.2021-44228"), None);
    }

    #[test]
    fn metadata_fits_on_a_line_a_rule_file_can_hold() {
        assert_eq!(one_line("Detects\n  a thing.\n"), "Detects a thing.");
        assert_eq!(one_line(r"ends with C:\"), r"ends with C:\\");
        assert!(dsl::print::quote(&one_line(r#"a \"quoted\" word"#)).is_ok());
    }

    #[test]
    fn uuids_are_rule_ids() {
        assert!(is_rule_id("0b0d5a9e-9e0f-4f0a-8c1d-2a2f7f0b1c3d"));
        assert!(!is_rule_id("my rule"));
        assert!(!is_rule_id(""));
    }
}
