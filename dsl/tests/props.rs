//! Properties: no input panics, every diagnostic points inside its file, generated valid
//! conditions check clean to the ir they mean, compiled rules match exactly the events
//! those conditions describe, and nesting is bounded.

use dsl::ast::Severity;
use dsl::check::check_sources;
use dsl::field::{Field, FieldKind, FieldRef};
use dsl::ir::{CheckedRule, Cond, NumberOp, NumberTest, Pattern, RuleMeta, TextOp, TextTest};
use dsl::{Event, RuleSet, Scratch, Source, Value};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestCaseError;

/// Checks `sources` and asserts what must hold for any input.
fn assert_well_formed(sources: &[Source]) {
    let checked = check_sources(sources);
    let mut last = (0, 0);
    for d in &checked.diagnostics {
        let text = &sources[d.span.file].text;
        assert!(
            d.span.start <= d.span.end && d.span.end <= text.len(),
            "span out of its file: {d:?}"
        );
        assert!(
            text.is_char_boundary(d.span.start) && text.is_char_boundary(d.span.end),
            "span not on char boundaries: {d:?}"
        );
        assert!(
            (d.span.file, d.span.start) >= last,
            "diagnostics not sorted: {:?}",
            checked.diagnostics
        );
        last = (d.span.file, d.span.start);
        let loc = d.location(sources);
        assert!(loc.line >= 1 && loc.column >= 1);
        assert_eq!(loc.file, sources[d.span.file].name);
        let rendered = d.render(sources);
        let head = format!(
            "{}[{}]: ",
            if d.is_error() { "error" } else { "warning" },
            d.code
        );
        assert!(rendered.starts_with(&head), "{rendered}");
        assert!(rendered.contains(&format!("{}:{}", loc.line, loc.column)));
        assert!(
            d.code.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
            "code not kebab-case: {}",
            d.code
        );
    }
}

const TOKENS: &[&str] = &[
    "list",
    "macro",
    "rule",
    "except",
    "and",
    "or",
    "not",
    "in",
    "exists",
    "startswith",
    "endswith",
    "contains",
    "regex",
    "ancestor",
    "AND",
    "Rule",
    "title",
    "severity",
    "condition",
    "attack",
    "references",
    "enabled",
    "description",
    "true",
    "high",
    "exe",
    "parent_exe",
    "pid",
    "command_line",
    "ancestor[2]",
    "ancestor[..3]",
    "ancestor[0]",
    "x",
    "m",
    "l",
    "CAR-2021-02-001",
    "T1505.003",
    "\"w3wp.exe\"",
    "c\"A\"",
    "\"a\\\"b\"",
    "\"\\\\\"",
    "\"unterminated",
    "\"(\"",
    "0x10",
    "12",
    "99999999999999999999",
    "12ab",
    "==",
    "!=",
    "=~",
    "=",
    "<",
    "<=",
    ">",
    ">=",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    ".",
    "..",
    "#",
    "é",
    "\\",
    "&&",
    "\t",
    "\r\n",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec((select(TOKENS), select(&[" ", "\n", ""][..])), 0..80).prop_map(|parts| {
        parts
            .into_iter()
            .map(|(t, sep)| format!("{t}{sep}"))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        assert_well_formed(&[Source::new("any.rules", text)]);
    }

    #[test]
    fn language_like_text_never_panics(text in "[a-z_ \n\"\\\\#()\\[\\]{}=!<>~.,:0-9xcé-]{0,300}") {
        assert_well_formed(&[Source::new("chars.rules", text)]);
    }

    #[test]
    fn token_soups_never_panic(a in token_soup(), b in token_soup()) {
        assert_well_formed(&[Source::new("a.rules", a.clone())]);
        assert_well_formed(&[Source::new("a.rules", a), Source::new("b.rules", b)]);
    }

    #[test]
    fn token_soups_inside_a_rule_never_panic(soup in token_soup()) {
        let text = format!("list l = [\"a\"]\nmacro m = exe in l\nrule r {{ title: \"t\" severity: low condition: {soup}\n}}\n");
        assert_well_formed(&[Source::new("r.rules", text)]);
    }

    #[test]
    fn generated_valid_conditions_check_clean((written, expected) in condition()) {
        let text = format!(
            "rule gen-1 {{\n  title: \"generated\"\n  severity: medium\n  attack: T1059\n  condition: {written}\n}}\n"
        );
        let sources = [Source::new("gen.rules", text)];
        let checked = check_sources(&sources);
        // A generated `x or not x` (likeliest with the two yes/no names) is rightly
        // warned about; nothing else may be.
        let unexpected: Vec<String> = checked
            .diagnostics
            .iter()
            .filter(|d| !matches!(d.code, "always-matches" | "never-matches"))
            .map(|d| d.render(&sources))
            .collect();
        prop_assert!(unexpected.is_empty(), "{}", unexpected.join("\n"));
        prop_assert_eq!(checked.rules.len(), 1);
        prop_assert_eq!(&checked.rules[0].condition, &expected);
    }

    /// What `spawnwatch sigma convert` relies on: a checked rule printed and read back
    /// is the same rule.
    #[test]
    fn printed_rules_read_back_the_same((_, condition) in condition(), (_, exception) in condition()) {
        let rule = CheckedRule {
            meta: RuleMeta {
                id: "0b9a-11".into(),
                title: r#"quote " and \\ backslashes"#.into(),
                description: r#"C:\Windows\ and \\"x\\""#.into(),
                severity: Severity::High,
                attack: vec!["T1059.001".into(), "not an id".into()],
                references: vec![r#"https://example.org/a?b="c""#.into()],
                enabled: false,
                span: Default::default(),
            },
            condition,
            exceptions: vec![(r#"why "so""#.into(), exception)],
        };
        let text = dsl::print::print_rule(&rule).map_err(TestCaseError::fail)?;
        let sources = [Source::new("printed.rules", text.clone())];
        let checked = check_sources(&sources);
        let errors: Vec<String> = checked.diagnostics.iter().filter(|d| d.is_error()).map(|d| d.render(&sources)).collect();
        prop_assert!(errors.is_empty(), "{}\n{}", text, errors.join("\n"));
        let mut back = checked.rules.into_iter().next().expect("one rule");
        back.meta.span = Default::default();
        prop_assert_eq!(back, rule, "{}", text);
    }

    #[test]
    fn compiled_rules_match_what_their_conditions_mean(
        conds in prop::collection::vec(condition(), 3),
        event in process_tree(),
    ) {
        let [a, b, c] = [0, 1, 2].map(|i| operand_text(&conds[i]));
        // Rules that share tests, so results remembered for the event are reused.
        let text = format!(
            "rule R1 {{ title: \"t\" severity: low attack: T1059 condition: {a} except \"x\": {b} }}\n\
             rule R2 {{ title: \"t\" severity: low attack: T1059 condition: {b} }}\n\
             rule R3 {{ title: \"t\" severity: low attack: T1059 condition: {a} and not {c} }}\n\
             rule R4 {{ title: \"t\" severity: low attack: T1059 condition: {c} or {a} }}\n"
        );
        let set: RuleSet = match dsl::load(&[Source::new("gen.rules", text)]) {
            Ok(loaded) => loaded.rules,
            Err(d) => panic!("{d:?}"),
        };
        let [x, y, z] = [0, 1, 2].map(|i| means(&conds[i].1, &event, 0));
        let expected: Vec<&str> = [("R1", x && !y), ("R2", y), ("R3", x && !z), ("R4", z || x)]
            .into_iter()
            .filter_map(|(id, held)| held.then_some(id))
            .collect();
        let mut out = Vec::new();
        set.evaluate(&event, &mut Scratch::new(), &mut out);
        let got: Vec<&str> = out.iter().map(|&id| set.meta(id).id.as_str()).collect();
        prop_assert_eq!(got, expected);
    }
}

// --- what a condition means, evaluated directly --------------------------------------

/// A process and its ancestors (depth 0 first), each a value per field (numbers
/// written in decimal).
#[derive(Debug)]
struct ProcessTree(Vec<Vec<(Field, String)>>);

impl Event for ProcessTree {
    fn value(&self, depth: u32, field: Field) -> Option<Value<'_>> {
        let level = self.0.get(depth as usize)?;
        let (_, v) = level.iter().find(|(f, _)| *f == field)?;
        Some(match field.kind() {
            FieldKind::Number => Value::Number(v.parse().unwrap()),
            FieldKind::Text => Value::Text(v),
            FieldKind::Flag => Value::Flag(v == "true"),
        })
    }
    fn ancestor_count(&self) -> u32 {
        self.0.len() as u32 - 1
    }
}

/// Values close to the generated patterns' alphabet, and some whose case folding is not
/// ASCII's.
fn field_value(field: Field) -> BoxedStrategy<String> {
    match field.kind() {
        FieldKind::Number => prop_oneof![select(&[0u64, 1, 4, 1000, u64::MAX][..]), any::<u64>()]
            .prop_map(|n| n.to_string())
            .boxed(),
        FieldKind::Flag => select(&["true", "false"][..])
            .prop_map(String::from)
            .boxed(),
        FieldKind::Text => prop_oneof![
            "[a-cA-C.*?_-]{0,4}",
            select(
                &[
                    "",
                    "A",
                    "a*b",
                    "CMD.EXE",
                    "Straße",
                    "ÉCOLE.EXE",
                    "\u{212A}",
                    "İ",
                    "ΣΑΣ"
                ][..]
            )
            .prop_map(String::from),
        ]
        .boxed(),
    }
}

fn process_tree() -> impl Strategy<Value = ProcessTree> {
    let level = Field::ALL
        .map(|f| prop::option::weighted(0.8, field_value(f)).prop_map(move |v| v.map(|v| (f, v))))
        .to_vec()
        .prop_map(|values| values.into_iter().flatten().collect::<Vec<_>>());
    prop::collection::vec(level, 1..5).prop_map(ProcessTree)
}

/// Whether `cond` holds with the process `base` steps up as the current one, straight
/// from the language's definition.
fn means(cond: &Cond, event: &ProcessTree, base: u32) -> bool {
    let value = |f: &FieldRef| {
        let depth = base + f.depth;
        (depth <= event.ancestor_count())
            .then(|| event.value(depth, f.field))
            .flatten()
    };
    match cond {
        Cond::And(items) => items.iter().all(|c| means(c, event, base)),
        Cond::Or(items) => items.iter().any(|c| means(c, event, base)),
        Cond::Not(inner) => !means(inner, event, base),
        Cond::Exists(f) => value(f).is_some(),
        Cond::Flag(f) => value(f) == Some(Value::Flag(true)),
        Cond::Text(t) => match value(&t.field) {
            Some(Value::Text(raw)) => t.patterns.iter().any(|p| text_means(t.op, p, raw)),
            _ => false,
        },
        Cond::Number(n) => match value(&n.field) {
            Some(Value::Number(x)) => n.values.iter().any(|&v| match n.op {
                NumberOp::Eq => x == v,
                NumberOp::Lt => x < v,
                NumberOp::Le => x <= v,
                NumberOp::Gt => x > v,
                NumberOp::Ge => x >= v,
            }),
            _ => false,
        },
        Cond::SameValue(..) => unreachable!("not generated"),
        Cond::Ancestor { min, max, body } => {
            let known = event.ancestor_count().saturating_sub(base);
            (*min..=(*max).min(known)).any(|d| means(body, event, base + d))
        }
    }
}

fn text_means(op: TextOp, p: &Pattern, raw: &str) -> bool {
    if op == TextOp::Regex {
        return regex::RegexBuilder::new(&p.text)
            .case_insensitive(!p.case_sensitive)
            .build()
            .unwrap()
            .is_match(raw);
    }
    let (text, value) = if p.case_sensitive {
        (p.text.clone(), raw.to_string())
    } else {
        (p.text.to_lowercase(), raw.to_lowercase())
    };
    let pattern = glob_pieces(&text);
    let value: Vec<char> = value.chars().collect();
    let literal: Vec<char> = pattern
        .iter()
        .map(|p| p.unwrap_or_else(|wild| wild))
        .collect();
    match op {
        TextOp::Equals => glob_matches(&pattern, &value),
        TextOp::StartsWith => value.starts_with(&literal),
        TextOp::EndsWith => value.ends_with(&literal),
        _ => literal.is_empty() || value.windows(literal.len()).any(|w| w == literal),
    }
}

/// A pattern's characters: `Ok(c)` a literal, `Err('*')` or `Err('?')` a wildcard.
fn glob_pieces(text: &str) -> Vec<Result<char, char>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(match c {
            '\\' if matches!(chars.peek(), Some('*' | '?' | '\\')) => Ok(chars.next().unwrap()),
            '*' | '?' => Err(c),
            c => Ok(c),
        });
    }
    out
}

fn glob_matches(pattern: &[Result<char, char>], value: &[char]) -> bool {
    match pattern.split_first() {
        None => value.is_empty(),
        Some((Err('*'), rest)) => (0..=value.len()).any(|i| glob_matches(rest, &value[i..])),
        Some((Err(_), rest)) => !value.is_empty() && glob_matches(rest, &value[1..]),
        Some((Ok(c), rest)) => value.first() == Some(c) && glob_matches(rest, &value[1..]),
    }
}

// --- generated conditions ------------------------------------------------------------

fn field_names(kind: FieldKind) -> Vec<String> {
    FieldRef::all_names()
        .filter(|n| FieldRef::from_name(n).map(|f| f.field.kind()) == Some(kind))
        .collect()
}

/// Text without backslashes; quotes are written escaped.
fn text_value() -> impl Strategy<Value = (String, bool)> {
    ("[a-zA-Z0-9 .*?_\"-]{0,12}", any::<bool>())
}

fn write_str((text, cs): &(String, bool)) -> String {
    format!(
        "{}\"{}\"",
        if *cs { "c" } else { "" },
        text.replace('"', "\\\"")
    )
}

fn pattern((text, cs): &(String, bool)) -> Pattern {
    Pattern {
        text: text.clone(),
        case_sensitive: *cs,
    }
}

/// `ancestor...` prefix and the range it means, or nothing.
fn ancestor_prefix() -> impl Strategy<Value = Option<(String, u32, u32)>> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(("ancestor.".to_string(), 1, dsl::ast::DEFAULT_ANCESTOR_DEPTH))),
        1 => (1u32..=32).prop_map(|d| Some((format!("ancestor[{d}]."), d, d))),
        1 => (1u32..=32).prop_map(|d| Some((format!("ancestor[..{d}]."), 1, d))),
        1 => (1u32..=32, 0u32..=31).prop_map(|(a, extra)| {
            let b = (a + extra).min(32);
            Some((format!("ancestor[{a}..{b}]."), a, b))
        }),
    ]
}

fn wrap(prefix: &Option<(String, u32, u32)>, test: Cond) -> Cond {
    match prefix {
        Some((_, min, max)) => Cond::Ancestor {
            min: *min,
            max: *max,
            body: Box::new(test),
        },
        None => test,
    }
}

fn text_comparison() -> impl Strategy<Value = (String, Cond)> {
    let ops = select(
        &[
            ("==", TextOp::Equals),
            ("!=", TextOp::Equals),
            ("in", TextOp::Equals),
            ("IN", TextOp::Equals),
            ("startswith", TextOp::StartsWith),
            ("endswith", TextOp::EndsWith),
            ("Contains", TextOp::Contains),
        ][..],
    );
    (
        ancestor_prefix(),
        select(field_names(FieldKind::Text)),
        ops,
        prop::collection::vec(text_value(), 1..4),
        any::<bool>(),
    )
        .prop_map(|(prefix, field, (op, text_op), values, as_list)| {
            let single = op == "==" || op == "!=";
            let list = !single && (as_list || op.eq_ignore_ascii_case("in"));
            let values = if list { values } else { values[..1].to_vec() };
            let operand = if list {
                format!(
                    "[{}]",
                    values.iter().map(write_str).collect::<Vec<_>>().join(", ")
                )
            } else {
                write_str(&values[0])
            };
            let prefix_text = prefix.as_ref().map_or("", |p| p.0.as_str());
            let written = format!("{prefix_text}{field} {op} {operand}");
            let f = FieldRef::from_name(&field).unwrap();
            let test = Cond::Text(TextTest {
                field: f,
                op: text_op,
                patterns: values.iter().map(pattern).collect(),
            });
            let test = if op == "!=" {
                Cond::And(vec![Cond::Exists(f), Cond::Not(Box::new(test))])
            } else {
                test
            };
            (written, wrap(&prefix, test))
        })
}

fn regex_comparison() -> impl Strategy<Value = (String, Cond)> {
    (
        select(field_names(FieldKind::Text)),
        select(&["regex", "=~"][..]),
        "[a-z]{1,6}(\\.[a-z]{1,3})?",
        any::<bool>(),
    )
        .prop_map(|(field, op, re, cs)| {
            let escaped = re.replace('.', "\\.");
            let written = format!("{field} {op} {}", write_str(&(escaped.clone(), cs)));
            let test = Cond::Text(TextTest {
                field: FieldRef::from_name(&field).unwrap(),
                op: TextOp::Regex,
                patterns: vec![Pattern {
                    text: escaped,
                    case_sensitive: cs,
                }],
            });
            (written, test)
        })
}

fn number_comparison() -> impl Strategy<Value = (String, Cond)> {
    let ops = select(
        &[
            ("==", NumberOp::Eq),
            ("!=", NumberOp::Eq),
            ("in", NumberOp::Eq),
            ("<", NumberOp::Lt),
            ("<=", NumberOp::Le),
            (">", NumberOp::Gt),
            (">=", NumberOp::Ge),
        ][..],
    );
    (
        ancestor_prefix(),
        select(field_names(FieldKind::Number)),
        ops,
        prop::collection::vec((any::<u64>(), any::<bool>()), 1..4),
    )
        .prop_map(|(prefix, field, (op, num_op), values)| {
            let values = if op == "in" {
                values
            } else {
                values[..1].to_vec()
            };
            let write = |(n, hex): &(u64, bool)| {
                if *hex {
                    format!("0x{n:x}")
                } else {
                    n.to_string()
                }
            };
            let operand = if op == "in" {
                format!(
                    "({})",
                    values.iter().map(write).collect::<Vec<_>>().join(",")
                )
            } else {
                write(&values[0])
            };
            let prefix_text = prefix.as_ref().map_or("", |p| p.0.as_str());
            let written = format!("{prefix_text}{field} {op} {operand}");
            let f = FieldRef::from_name(&field).unwrap();
            let test = Cond::Number(NumberTest {
                field: f,
                op: num_op,
                values: values.iter().map(|(n, _)| *n).collect(),
            });
            let test = if op == "!=" {
                Cond::And(vec![Cond::Exists(f), Cond::Not(Box::new(test))])
            } else {
                test
            };
            (written, wrap(&prefix, test))
        })
}

fn exists() -> impl Strategy<Value = (String, Cond)> {
    (
        ancestor_prefix(),
        select(Field::ALL.to_vec()),
        any::<bool>(),
    )
        .prop_map(|(prefix, field, parent)| {
            let name = if parent {
                format!("parent_{}", field.name())
            } else {
                field.name().to_string()
            };
            let prefix_text = prefix.as_ref().map_or("", |p| p.0.as_str());
            let test = Cond::Exists(FieldRef::from_name(&name).unwrap());
            (format!("{prefix_text}{name} EXISTS"), wrap(&prefix, test))
        })
}

/// A yes/no field by its name: `listens`, `parent_listens`.
fn flag() -> impl Strategy<Value = (String, Cond)> {
    select(field_names(FieldKind::Flag)).prop_map(|name| {
        (
            name.clone(),
            Cond::Flag(FieldRef::from_name(&name).unwrap()),
        )
    })
}

/// Parenthesized unless it is a single test.
fn operand_text((text, cond): &(String, Cond)) -> String {
    match cond {
        Cond::And(_) | Cond::Or(_) => format!("({text})"),
        _ => text.clone(),
    }
}

fn condition() -> impl Strategy<Value = (String, Cond)> {
    let leaf = prop_oneof![
        4 => text_comparison(),
        1 => regex_comparison(),
        2 => number_comparison(),
        1 => exists(),
        1 => flag(),
    ];
    leaf.prop_recursive(6, 48, 4, |inner| {
        prop_oneof![
            (prop::collection::vec(inner.clone(), 2..5), any::<bool>()).prop_map(|(v, upper)| {
                let sep = if upper { " AND\n    " } else { " and " };
                let text = v.iter().map(operand_text).collect::<Vec<_>>().join(sep);
                (text, Cond::And(v.into_iter().map(|(_, c)| c).collect()))
            }),
            (prop::collection::vec(inner.clone(), 2..5), any::<bool>()).prop_map(|(v, upper)| {
                let sep = if upper { "\n    OR " } else { " or " };
                let text = v.iter().map(operand_text).collect::<Vec<_>>().join(sep);
                (text, Cond::Or(v.into_iter().map(|(_, c)| c).collect()))
            }),
            inner.clone().prop_map(|x| {
                (
                    format!("not {}", operand_text(&x)),
                    Cond::Not(Box::new(x.1)),
                )
            }),
            inner
                .clone()
                .prop_map(|(t, c)| (format!("(# comment\n{t})"), c)),
            (inner, 1u32..=32).prop_map(|((t, c), d)| {
                (
                    format!("ancestor[..{d}]({t})"),
                    Cond::Ancestor {
                        min: 1,
                        max: d,
                        body: Box::new(c),
                    },
                )
            }),
        ]
    })
}

// --- nesting ---------------------------------------------------------------------------

fn rule_with(condition: &str) -> Source {
    Source::new(
        "deep.rules",
        format!(
            "rule deep {{ title: \"t\" severity: low attack: T1059\ncondition: {condition}\n}}\n"
        ),
    )
}

fn only_code_at(source: Source) -> (&'static str, usize, usize) {
    let sources = [source];
    let checked = check_sources(&sources);
    assert_eq!(checked.diagnostics.len(), 1, "{:?}", checked.diagnostics);
    let d = &checked.diagnostics[0];
    let l = d.location(&sources);
    (d.code, l.line, l.column)
}

#[test]
fn ten_thousand_parentheses_are_too_deep_not_a_stack_overflow() {
    let text = format!("{}exe exists{}", "(".repeat(10_000), ")".repeat(10_000));
    assert_eq!(only_code_at(rule_with(&text)), ("too-deep", 2, 12 + 64));
    // Unbalanced too.
    assert_eq!(
        only_code_at(rule_with(&"(".repeat(10_000))),
        ("too-deep", 2, 12 + 64)
    );
}

#[test]
fn ten_thousand_nots_and_ancestor_blocks_are_too_deep() {
    assert_eq!(
        only_code_at(rule_with(&format!("{}exe exists", "not ".repeat(10_000)))),
        ("too-deep", 2, 12 + 4 * 64)
    );
    assert_eq!(
        only_code_at(rule_with(&"ancestor[..2](".repeat(10_000))),
        ("too-deep", 2, 12 + 14 * 64 + 13)
    );
    assert_eq!(
        only_code_at(rule_with(&"not (".repeat(10_000))),
        ("too-deep", 2, 12 + 5 * 32)
    );
}

#[test]
fn long_flat_conditions_and_long_macro_chains_are_fine() {
    let flat = vec!["exe == \"a\""; 20_000].join(" or ");
    let sources = [rule_with(&flat)];
    let checked = check_sources(&sources);
    assert!(checked.diagnostics.is_empty());
    let Cond::Or(v) = &checked.rules[0].condition else {
        panic!()
    };
    assert_eq!(v.len(), 20_000);
    // 5,000 chained lists and macros resolve without recursion.
    let mut text = String::from("list l0 = [\"x\"]\nmacro m0 = exe in l0\n");
    for i in 1..5_000 {
        text.push_str(&format!("list l{i} = [l{}]\n", i - 1));
    }
    for i in 1..200 {
        text.push_str(&format!("macro m{i} = m{}\n", i - 1));
    }
    text.push_str(
        "rule r { title: \"t\" severity: low attack: T1059 condition: m199 and exe in l4999 }\n",
    );
    let sources = [Source::new("chain.rules", text)];
    let checked = check_sources(&sources);
    assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics);
    assert_eq!(
        checked.rules[0].condition,
        Cond::And(vec![
            Cond::Text(TextTest {
                field: FieldRef::from_name("exe").unwrap(),
                op: TextOp::Equals,
                patterns: vec![Pattern {
                    text: "x".into(),
                    case_sensitive: false
                }],
            });
            2
        ])
    );
}
