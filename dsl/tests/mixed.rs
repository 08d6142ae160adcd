//! Rule-language files checked together with rules checked elsewhere (Sigma rules):
//! one namespace of ids, and `except` reaching across.

use dsl::ast::{Severity, Span};
use dsl::check::{check_mixed, Foreign};
use dsl::ir::{CheckedRule, Cond, Pattern, RuleMeta, TextOp, TextTest};
use dsl::{Diagnostic, Field, FieldRef, Source};

/// A foreign rule `id` defined at byte `at` of source `file`: `exe == "whoami.exe"`.
fn foreign(id: &str, file: usize, at: usize) -> CheckedRule {
    CheckedRule {
        meta: RuleMeta {
            id: id.into(),
            title: "whoami".into(),
            description: String::new(),
            severity: Severity::Medium,
            attack: vec![],
            references: vec![],
            enabled: true,
            span: Span {
                file,
                start: at,
                end: at + 2,
            },
        },
        condition: Cond::Text(TextTest {
            field: FieldRef {
                field: Field::Exe,
                depth: 0,
            },
            op: TextOp::Equals,
            patterns: vec![Pattern {
                text: "whoami.exe".into(),
                case_sensitive: false,
            }],
        }),
        exceptions: vec![],
    }
}

fn sources(dsl: &str) -> Vec<Source> {
    vec![
        Source::new("local.rules", dsl),
        Source::new("sigma.yml", "title: x\nid: 1a2b\n"),
    ]
}

fn errors(d: &[Diagnostic]) -> Vec<(&str, String)> {
    d.iter()
        .filter(|d| d.is_error())
        .map(|d| (d.code, d.message.clone()))
        .collect()
}

#[test]
fn an_except_in_a_rules_file_extends_a_foreign_rule() {
    let sources = sources(r#"except 1a2b "admin box": hostname == "ADMIN01""#);
    let checked = check_mixed(
        &sources,
        1,
        Foreign {
            rules: vec![foreign("1a2b", 1, 13)],
            diagnostics: vec![],
        },
    );
    assert_eq!(errors(&checked.diagnostics), vec![]);
    assert_eq!(checked.rules.len(), 1);
    let rule = &checked.rules[0];
    assert_eq!(rule.exceptions.len(), 1);
    assert_eq!(rule.exceptions[0].0, "admin box");
    assert_eq!(checked.summary.rules, 1);
    assert_eq!(checked.summary.exceptions, 1);
}

#[test]
fn ids_are_unique_across_both_kinds() {
    let sources =
        sources(r#"rule 1a2b { title: "t" severity: low attack: [T1033] condition: exe == "x" }"#);
    let checked = check_mixed(
        &sources,
        1,
        Foreign {
            rules: vec![
                foreign("1a2b", 1, 13),
                foreign("1a2c", 1, 13),
                foreign("1a2c", 1, 13),
            ],
            diagnostics: vec![],
        },
    );
    let errors: Vec<_> = checked
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors
        .iter()
        .all(|d| d.code == "duplicate-rule" && d.span.file == 1));
    assert!(
        errors[0].hint.as_deref().unwrap().contains("local.rules:1"),
        "the hint names where the first is: {:?}",
        errors[0].hint
    );
    let ids: Vec<&str> = checked.rules.iter().map(|r| r.meta.id.as_str()).collect();
    assert_eq!(
        ids,
        ["1a2b", "1a2c"],
        "the first of each id stays, rule-language rules first"
    );
}

#[test]
fn an_unknown_except_suggests_a_foreign_id() {
    let sources = sources(r#"except 1a2c "x": exe == "a""#);
    let checked = check_mixed(
        &sources,
        1,
        Foreign {
            rules: vec![foreign("1a2b", 1, 13)],
            diagnostics: vec![],
        },
    );
    let unknown = checked
        .diagnostics
        .iter()
        .find(|d| d.code == "unknown-rule")
        .expect("an unknown-rule error");
    assert_eq!(unknown.hint.as_deref(), Some("did you mean `1a2b`?"));
}

#[test]
fn foreign_diagnostics_join_the_others_in_file_order() {
    let sources = sources(r#"rule a { title: "t" severity: low condition: exe == "x" }"#);
    let warning = Diagnostic::warning(
        "sigma-unsupported",
        "skipped",
        Span {
            file: 1,
            start: 9,
            end: 11,
        },
    );
    let checked = check_mixed(
        &sources,
        1,
        Foreign {
            rules: vec![],
            diagnostics: vec![warning],
        },
    );
    let codes: Vec<&str> = checked.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["no-attack-id", "sigma-unsupported"]);
    // The foreign file is not read as the rule language.
    assert!(checked.diagnostics.iter().all(|d| d.code != "syntax"));
}
