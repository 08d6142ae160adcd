//! Every construct of the rule language, checked down to the ir it lowers to.

use dsl::ast::{Severity, DEFAULT_ANCESTOR_DEPTH};
use dsl::check::{check_sources, Checked};
use dsl::field::{Field, FieldRef};
use dsl::ir::{CheckedRule, Cond, NumberOp, NumberTest, Pattern, TextOp, TextTest};
use dsl::{Source, Summary};

fn sources(files: &[(&str, &str)]) -> Vec<Source> {
    files.iter().map(|(n, t)| Source::new(*n, *t)).collect()
}

/// Checks the files and fails with the rendered diagnostics if any is an error.
fn check_ok(files: &[(&str, &str)]) -> Checked {
    let srcs = sources(files);
    let checked = check_sources(&srcs);
    let errors: Vec<String> = checked
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.render(&srcs))
        .collect();
    assert!(
        errors.is_empty(),
        "unexpected errors:\n{}",
        errors.join("\n")
    );
    checked
}

fn rules(files: &[(&str, &str)]) -> Vec<CheckedRule> {
    check_ok(files).rules
}

/// The condition of a one-rule file whose condition is `condition`.
fn cond(condition: &str) -> Cond {
    cond_with("", condition)
}

fn cond_with(prelude: &str, condition: &str) -> Cond {
    let text = format!(
        "{prelude}\nrule r {{\n title: \"t\"\n severity: low\n attack: T1059\n condition: {condition}\n}}\n"
    );
    let mut rules = rules(&[("r.rules", &text)]);
    assert_eq!(rules.len(), 1);
    rules.remove(0).condition
}

fn f(name: &str) -> FieldRef {
    FieldRef::from_name(name).expect("a field")
}

fn pats(patterns: &[&str]) -> Vec<Pattern> {
    patterns
        .iter()
        .map(|p| Pattern {
            text: p.to_string(),
            case_sensitive: false,
        })
        .collect()
}

fn text(field: &str, op: TextOp, patterns: &[&str]) -> Cond {
    Cond::Text(TextTest {
        field: f(field),
        op,
        patterns: pats(patterns),
    })
}

fn eq(field: &str, patterns: &[&str]) -> Cond {
    text(field, TextOp::Equals, patterns)
}

fn num(field: &str, op: NumberOp, values: &[u64]) -> Cond {
    Cond::Number(NumberTest {
        field: f(field),
        op,
        values: values.to_vec(),
    })
}

fn and(v: Vec<Cond>) -> Cond {
    Cond::And(v)
}

fn or(v: Vec<Cond>) -> Cond {
    Cond::Or(v)
}

fn not(c: Cond) -> Cond {
    Cond::Not(Box::new(c))
}

fn anc(min: u32, max: u32, body: Cond) -> Cond {
    Cond::Ancestor {
        min,
        max,
        body: Box::new(body),
    }
}

/// The CAR pseudocode's filter as pasted, with its missing quote added and the outer
/// `(` of its `where (` kept.
fn car_fixed() -> String {
    include_str!("fixtures/car-pasted.rules")
        .replace("condition:\n", "condition: (\n")
        .replace(r#""ipconfig.exe) )"#, r#""ipconfig.exe") )"#)
}

#[test]
fn car_pseudocode_with_the_quote_fixed_means_what_it_says() {
    let checked = check_ok(&[("car.rules", &car_fixed())]);
    assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics);
    let parents = ["w3wp.exe", "httpd.exe", "tomcat*.exe", "nginx.exe"];
    let children = [
        "cmd.exe",
        "powershell.exe",
        "net.exe",
        "whoami.exe",
        "hostname.exe",
        "systeminfo.exe",
        "ipconfig.exe",
    ];
    let expected = and(vec![
        or(parents.iter().map(|p| eq("parent_exe", &[p])).collect()),
        or(children.iter().map(|c| eq("exe", &[c])).collect()),
    ]);
    assert_eq!(checked.rules[0].condition, expected);
    assert_eq!(checked.rules[0].meta.severity, Severity::High);
    assert_eq!(checked.rules[0].meta.attack, vec!["T1505.003".to_string()]);
}

const BRIEF_EXAMPLE: &str = r#"
list web_servers = ["w3wp.exe", "httpd.exe", "tomcat*.exe", "nginx.exe"]
list all_servers = [web_servers, "node.exe"]          # a list may splice another list by name
macro from_web_server = parent_exe in web_servers
rule CAR-2021-02-001 {
    title: "Webshell-Indicative Process Tree"
    description: "A web server process started a shell or a host-discovery tool."
    severity: high                       # informational | low | medium | high | critical
    attack: [T1505.003]                  # one id or a list; bare or quoted
    references: ["https://car.mitre.org/analytics/CAR-2021-02-001/"]   # one string or a list
    enabled: true                        # default true
    condition:
        (parent_exe == "w3wp.exe" OR parent_exe == "httpd.exe" OR parent_exe == "tomcat*.exe" OR parent_exe == "nginx.exe")
        AND (exe == "cmd.exe" OR exe == "powershell.exe")
    except "ASP.NET compiles pages": parent_exe == "w3wp.exe" and exe in ["csc.exe", "cvtres.exe"]
}
except CAR-2021-02-001 "our backup agent": parent_command_line contains "veeam"   # adds an exception to a rule from any file
rule uses-the-lists {
    title: "t"
    severity: informational
    attack: "T1505.003"
    condition: from_web_server and parent_exe in all_servers
}
"#;

#[test]
fn the_example_of_the_language_reference() {
    let checked = check_ok(&[("example.rules", BRIEF_EXAMPLE)]);
    assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics);
    assert_eq!(checked.rules.len(), 2);
    let car = &checked.rules[0];
    assert_eq!(car.meta.id, "CAR-2021-02-001");
    assert_eq!(car.meta.title, "Webshell-Indicative Process Tree");
    assert_eq!(
        car.meta.description,
        "A web server process started a shell or a host-discovery tool."
    );
    assert_eq!(
        car.meta.references,
        vec!["https://car.mitre.org/analytics/CAR-2021-02-001/".to_string()]
    );
    assert!(car.meta.enabled);
    let rule_start = BRIEF_EXAMPLE.find("rule CAR").unwrap();
    let rule_end = BRIEF_EXAMPLE.find("}\nexcept").unwrap() + 1;
    assert_eq!(
        (car.meta.span.file, car.meta.span.start, car.meta.span.end),
        (0, rule_start, rule_end)
    );
    assert_eq!(
        car.condition,
        and(vec![
            or(vec![
                eq("parent_exe", &["w3wp.exe"]),
                eq("parent_exe", &["httpd.exe"]),
                eq("parent_exe", &["tomcat*.exe"]),
                eq("parent_exe", &["nginx.exe"]),
            ]),
            or(vec![
                eq("exe", &["cmd.exe"]),
                eq("exe", &["powershell.exe"])
            ]),
        ])
    );
    assert_eq!(
        car.exceptions,
        vec![
            (
                "ASP.NET compiles pages".to_string(),
                and(vec![
                    eq("parent_exe", &["w3wp.exe"]),
                    eq("exe", &["csc.exe", "cvtres.exe"]),
                ])
            ),
            (
                "our backup agent".to_string(),
                text("parent_command_line", TextOp::Contains, &["veeam"])
            ),
        ]
    );
    let servers = ["w3wp.exe", "httpd.exe", "tomcat*.exe", "nginx.exe"];
    let all = [
        "w3wp.exe",
        "httpd.exe",
        "tomcat*.exe",
        "nginx.exe",
        "node.exe",
    ];
    assert_eq!(
        checked.rules[1].condition,
        and(vec![eq("parent_exe", &servers), eq("parent_exe", &all)])
    );
    assert_eq!(checked.rules[1].meta.severity, Severity::Informational);
    assert_eq!(checked.rules[1].meta.attack, vec!["T1505.003".to_string()]);
    assert_eq!(
        checked.summary,
        Summary {
            rules: 2,
            enabled_rules: 2,
            lists: 2,
            macros: 1,
            exceptions: 2,
        }
    );
}

#[test]
fn text_operators() {
    assert_eq!(cond(r#"exe == "cmd.exe""#), eq("exe", &["cmd.exe"]));
    assert_eq!(
        cond(r#"exe != "cmd.exe""#),
        and(vec![Cond::Exists(f("exe")), not(eq("exe", &["cmd.exe"]))])
    );
    assert_eq!(
        cond(r#"exe in ["a.exe", "b.exe"]"#),
        eq("exe", &["a.exe", "b.exe"])
    );
    assert_eq!(
        cond(r#"exe in ("a.exe", "b.exe",)"#),
        eq("exe", &["a.exe", "b.exe"])
    );
    assert_eq!(cond(r#"exe in ("a.exe")"#), eq("exe", &["a.exe"]));
    assert_eq!(
        cond(r#"command_line startswith "cmd /c""#),
        text("command_line", TextOp::StartsWith, &["cmd /c"])
    );
    assert_eq!(
        cond(r#"image_path endswith ["\cmd.exe", "\pwsh.exe"]"#),
        text("image_path", TextOp::EndsWith, &["\\cmd.exe", "\\pwsh.exe"])
    );
    assert_eq!(
        cond(r#"command_line contains "whoami""#),
        text("command_line", TextOp::Contains, &["whoami"])
    );
    assert_eq!(
        cond(r#"command_line regex "^cmd(\.exe)? /c""#),
        text("command_line", TextOp::Regex, &[r"^cmd(\.exe)? /c"])
    );
    assert_eq!(
        cond(r#"command_line =~ "who\w+""#),
        text("command_line", TextOp::Regex, &[r"who\w+"])
    );
    assert_eq!(cond("user exists"), Cond::Exists(f("user")));
    assert_eq!(
        cond("parent_command_line exists"),
        Cond::Exists(f("parent_command_line"))
    );
}

#[test]
fn number_operators() {
    assert_eq!(cond("pid == 4"), num("pid", NumberOp::Eq, &[4]));
    assert_eq!(cond("ppid == 0x1F4"), num("ppid", NumberOp::Eq, &[500]));
    assert_eq!(
        cond("pid != 4"),
        and(vec![
            Cond::Exists(f("pid")),
            not(num("pid", NumberOp::Eq, &[4]))
        ])
    );
    assert_eq!(cond("pid in [0, 4]"), num("pid", NumberOp::Eq, &[0, 4]));
    assert_eq!(
        cond("creator_pid < 10"),
        num("creator_pid", NumberOp::Lt, &[10])
    );
    assert_eq!(cond("pid <= 10"), num("pid", NumberOp::Le, &[10]));
    assert_eq!(cond("pid > 10"), num("pid", NumberOp::Gt, &[10]));
    assert_eq!(
        cond("parent_pid >= 18446744073709551615"),
        num("parent_pid", NumberOp::Ge, &[u64::MAX])
    );
    assert_eq!(
        cond_with("list system = [0, 4]", "pid in system"),
        num("pid", NumberOp::Eq, &[0, 4])
    );
}

#[test]
fn string_escapes_and_case_sensitivity() {
    assert_eq!(
        cond(r#"image_path == "C:\Windows\System32\cmd.exe""#),
        eq("image_path", &[r"C:\Windows\System32\cmd.exe"])
    );
    assert_eq!(
        cond(r#"command_line contains "say \"hi\"""#),
        text("command_line", TextOp::Contains, &[r#"say "hi""#])
    );
    // Wildcard escapes stay for the compiler; `\\` does not escape the closing quote.
    assert_eq!(
        cond(r#"exe == "100\*\?" or image_path endswith "C:\\""#),
        or(vec![
            eq("exe", &[r"100\*\?"]),
            text("image_path", TextOp::EndsWith, &[r"C:\\"]),
        ])
    );
    assert_eq!(
        cond(r#"exe in [c"Cmd.exe", "x", C"Y"]"#),
        Cond::Text(TextTest {
            field: f("exe"),
            op: TextOp::Equals,
            patterns: vec![
                Pattern {
                    text: "Cmd.exe".into(),
                    case_sensitive: true
                },
                Pattern {
                    text: "x".into(),
                    case_sensitive: false
                },
                Pattern {
                    text: "Y".into(),
                    case_sensitive: true
                },
            ],
        })
    );
    assert_eq!(cond(r#"exe == "é#ü""#), eq("exe", &["é#ü"]));
}

#[test]
fn precedence_and_parentheses() {
    let a = || eq("exe", &["a"]);
    let b = || eq("exe", &["b"]);
    let c = || eq("exe", &["c"]);
    assert_eq!(
        cond(r#"exe == "a" or exe == "b" and not exe == "c""#),
        or(vec![a(), and(vec![b(), not(c())])])
    );
    assert_eq!(
        cond(r#"(exe == "a" or exe == "b") and not (exe == "c")"#),
        and(vec![or(vec![a(), b()]), not(c())])
    );
    assert_eq!(
        cond(r#"not not exe == "a" and exe == "b""#),
        and(vec![not(not(a())), b()])
    );
    assert_eq!(cond(r#"((((exe == "a"))))"#), a());
}

#[test]
fn ancestry() {
    let d = DEFAULT_ANCESTOR_DEPTH;
    assert_eq!(
        cond(r#"ancestor.exe == "w3wp.exe""#),
        anc(1, d, eq("exe", &["w3wp.exe"]))
    );
    assert_eq!(
        cond(r#"ancestor[2].exe == "w3wp.exe""#),
        anc(2, 2, eq("exe", &["w3wp.exe"]))
    );
    assert_eq!(
        cond(r#"ancestor[..3].exe in ["a", "b"]"#),
        anc(1, 3, eq("exe", &["a", "b"]))
    );
    assert_eq!(
        cond(r#"ancestor[2..4].parent_exe == "x""#),
        anc(
            2,
            4,
            Cond::Text(TextTest {
                field: FieldRef {
                    field: Field::Exe,
                    depth: 1
                },
                op: TextOp::Equals,
                patterns: pats(&["x"]),
            })
        )
    );
    assert_eq!(
        cond(r#"ancestor[1..32].user != "SYSTEM""#),
        anc(
            1,
            32,
            and(vec![Cond::Exists(f("user")), not(eq("user", &["SYSTEM"]))])
        )
    );
    assert_eq!(
        cond("ancestor[3].pid exists"),
        anc(3, 3, Cond::Exists(f("pid")))
    );
    assert_eq!(
        cond(
            r#"ancestor[..4](exe in ["java.exe","javaw.exe"] and command_line contains "catalina")"#
        ),
        anc(
            1,
            4,
            and(vec![
                eq("exe", &["java.exe", "javaw.exe"]),
                text("command_line", TextOp::Contains, &["catalina"]),
            ])
        )
    );
    // Blocks nest, and macros inside a block refer to that ancestor.
    assert_eq!(
        cond_with(
            r#"macro is_java = exe == "java.exe""#,
            r#"ANCESTOR[2](is_java and ancestor[1](exe == "svc.exe"))"#
        ),
        anc(
            2,
            2,
            and(vec![
                eq("exe", &["java.exe"]),
                anc(1, 1, eq("exe", &["svc.exe"]))
            ])
        )
    );
}

#[test]
fn macros_are_inlined_and_lists_flattened_in_order() {
    let prelude = r#"
        list a = ["1", "2"]
        list b = ["0", a, "3", a]
        list c = (b, "4")
        macro leaf = exe in c
        macro mid = leaf or parent_exe in a
        macro top = mid and not leaf
    "#;
    let leaf = || eq("exe", &["0", "1", "2", "3", "1", "2", "4"]);
    let mid = || or(vec![leaf(), eq("parent_exe", &["1", "2"])]);
    assert_eq!(cond_with(prelude, "top"), and(vec![mid(), not(leaf())]));
    assert_eq!(
        cond_with(prelude, r#"exe endswith [a, "x"]"#),
        text("exe", TextOp::EndsWith, &["1", "2", "x"])
    );
}

#[test]
fn keywords_are_case_insensitive() {
    let upper = r#"
LIST Servers = ["w3wp.exe"]
MACRO Web = Parent_Exe_Is_Not_A_Field_Here OR parent_exe IN Servers
Macro Parent_Exe_Is_Not_A_Field_Here = parent_exe STARTSWITH "x"
RULE Upper-1 {
    TITLE: "t"
    Severity: HIGH
    ATTACK: t1059
    Enabled: FALSE
    Condition: Web AND NOT exe ENDSWITH "a" Or exe CONTAINS "b" aNd user EXISTS
        and command_line REGEX "c" and ANCESTOR[..2](exe In Servers) AND exe == C"D"
    EXCEPT "e": exe == "e"
}
Except Upper-1 "f": exe == "f"
"#;
    let checked = check_ok(&[("upper.rules", upper)]);
    let rule = &checked.rules[0];
    assert!(!rule.meta.enabled);
    assert_eq!(rule.meta.severity, Severity::High);
    let web = or(vec![
        text("parent_exe", TextOp::StartsWith, &["x"]),
        eq("parent_exe", &["w3wp.exe"]),
    ]);
    assert_eq!(
        rule.condition,
        or(vec![
            and(vec![web, not(text("exe", TextOp::EndsWith, &["a"]))]),
            and(vec![
                text("exe", TextOp::Contains, &["b"]),
                Cond::Exists(f("user")),
                text("command_line", TextOp::Regex, &["c"]),
                anc(1, 2, eq("exe", &["w3wp.exe"])),
                Cond::Text(TextTest {
                    field: f("exe"),
                    op: TextOp::Equals,
                    patterns: vec![Pattern {
                        text: "D".into(),
                        case_sensitive: true
                    }],
                }),
            ]),
        ])
    );
    let names: Vec<&str> = rule.exceptions.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["e", "f"]);
    // The id keeps its case: `upper-1` is another rule.
    let other = check_sources(&sources(&[
        ("a.rules", upper),
        ("b.rules", "except upper-1 \"g\": exe == \"g\""),
    ]));
    let codes: Vec<&str> = other.diagnostics.iter().map(|d| d.code).collect();
    assert!(codes.contains(&"unknown-rule"), "{codes:?}");
}

#[test]
fn comments_whitespace_and_multi_line_rules() {
    let text = "# a comment at the top\n\
        list   # the name comes next\n\
        \tshells\n\
        =\n\
        [ # open\n\
          \"cmd.exe\" , # first\n\
          \"pwsh.exe\"\n\
        ] # done\n\
        rule\n\
        multi-line\n\
        {\n\
        title\n\
        :\n\
        \"t # not a comment\"\n\
        severity:\n\
           critical\n\
        attack:\n\
          [\n\
            T1059.001, # powershell\n\
            \"T1059.003\"\n\
          ]\n\
        condition:\n\
          exe\n\
            in\n\
              shells # trailing\n\
          and\r\n\
          not\n\
            user == \"x\"\n\
        }\n\
        # the end";
    let checked = check_ok(&[("multi.rules", text)]);
    assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics);
    let rule = &checked.rules[0];
    assert_eq!(rule.meta.id, "multi-line");
    assert_eq!(rule.meta.title, "t # not a comment");
    assert_eq!(rule.meta.severity, Severity::Critical);
    assert_eq!(rule.meta.attack, ["T1059.001", "T1059.003"]);
    assert_eq!(
        rule.condition,
        and(vec![
            eq("exe", &["cmd.exe", "pwsh.exe"]),
            not(eq("user", &["x"]))
        ])
    );
}

#[test]
fn one_line_rules_and_conditions_end_without_terminators() {
    let text = r#"rule a { title: "t" severity: low attack: T1059 condition: exe == "a" except "x": user == "x" except "y": user == "y" } rule b{condition:a_macro title:"t" severity:low attack:T1059} macro a_macro = exe == "b" list l = ["x"] except a "z": exe in l"#;
    let checked = check_ok(&[("one.rules", text)]);
    assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics);
    let names: Vec<&str> = checked.rules[0]
        .exceptions
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(names, ["x", "y", "z"]);
    assert_eq!(checked.rules[1].condition, eq("exe", &["b"]));
}

#[test]
fn rule_metadata_defaults_and_forms() {
    let text = r#"
rule minimal { title: "m" severity: medium condition: exe exists attack: T1059 }
rule full {
    references: "https://example.com/one"
    attack: ["T1505.003", T1059.003, T1033]
    enabled: true
    description: "d"
    title: "f"
    severity: "low"
    condition: exe exists
}
rule ids.can:have-punct_1 { title: "x" severity: informational attack: [] condition: pid exists }
"#;
    let checked = check_sources(&sources(&[("meta.rules", text)]));
    assert!(!checked.diagnostics.iter().any(|d| d.is_error()));
    let [minimal, full, punct] = &checked.rules[..] else {
        panic!("three rules: {:?}", checked.rules);
    };
    assert_eq!(minimal.meta.description, "");
    assert!(minimal.meta.enabled);
    assert!(minimal.meta.references.is_empty());
    assert_eq!(full.meta.references, ["https://example.com/one"]);
    assert_eq!(full.meta.attack, ["T1505.003", "T1059.003", "T1033"]);
    assert_eq!(full.meta.severity, Severity::Low);
    assert_eq!(full.meta.description, "d");
    assert_eq!(punct.meta.id, "ids.can:have-punct_1");
    assert!(punct.meta.attack.is_empty());
}

#[test]
fn names_are_shared_across_files_and_exceptions_apply_in_load_order() {
    let lists = r#"list web_servers = ["w3wp.exe", "httpd.exe"]
list shells = ["cmd.exe", more_shells]"#;
    let macros = r#"macro from_web = parent_exe in web_servers
list more_shells = ["pwsh.exe"]"#;
    let early = r#"except shipped-1 "from an earlier file": user == "svc""#;
    let shipped = r#"rule shipped-1 {
    title: "shell from web"
    severity: high
    attack: T1505.003
    condition: from_web and exe in shells
    except "own": command_line contains "healthcheck"
}"#;
    let local = r#"# local additions
except shipped-1 "backup agent": parent_command_line contains "veeam"
except shipped-1 "monitoring": exe == "cmd.exe" and command_line contains "nagios""#;
    let checked = check_ok(&[
        ("lists.rules", lists),
        ("macros.rules", macros),
        ("early.rules", early),
        ("shipped.rules", shipped),
        ("local.rules", local),
    ]);
    assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics);
    let rule = &checked.rules[0];
    assert_eq!(rule.meta.span.file, 3);
    assert_eq!(
        rule.condition,
        and(vec![
            eq("parent_exe", &["w3wp.exe", "httpd.exe"]),
            eq("exe", &["cmd.exe", "pwsh.exe"]),
        ])
    );
    // Own exceptions first, then top-level ones in load order.
    assert_eq!(
        rule.exceptions,
        vec![
            (
                "own".to_string(),
                text("command_line", TextOp::Contains, &["healthcheck"])
            ),
            ("from an earlier file".to_string(), eq("user", &["svc"])),
            (
                "backup agent".to_string(),
                text("parent_command_line", TextOp::Contains, &["veeam"])
            ),
            (
                "monitoring".to_string(),
                and(vec![
                    eq("exe", &["cmd.exe"]),
                    text("command_line", TextOp::Contains, &["nagios"]),
                ])
            ),
        ]
    );
    assert_eq!(checked.summary.exceptions, 4);
    assert_eq!(checked.summary.lists, 3);
}

#[test]
fn rules_come_in_load_order() {
    let checked = check_ok(&[
        (
            "b.rules",
            "rule z { title: \"z\" severity: low attack: T1059 condition: pid exists }\n\
             rule y { title: \"y\" severity: low attack: T1059 condition: pid exists enabled: false }",
        ),
        (
            "a.rules",
            "rule x { title: \"x\" severity: low attack: T1059 condition: pid exists }",
        ),
    ]);
    let ids: Vec<&str> = checked.rules.iter().map(|r| r.meta.id.as_str()).collect();
    assert_eq!(ids, ["z", "y", "x"]);
    assert_eq!(checked.summary.rules, 3);
    assert_eq!(checked.summary.enabled_rules, 2);
}

#[test]
fn parse_file_gives_byte_spans_in_the_given_file() {
    use dsl::ast::{Expr, Item, LiteralKind, Operand};
    let text = "macro m = exe == \"é\"\nlist l = [1, \"x\"]";
    let (file, diags) = dsl::parse::parse_file(7, text);
    assert!(diags.is_empty(), "{diags:?}");
    let [Item::Macro(m), Item::List(l)] = &file.items[..] else {
        panic!("{:?}", file.items);
    };
    assert_eq!((m.span.file, m.span.start, m.span.end), (7, 0, 21));
    assert_eq!((m.name.span.start, m.name.span.end), (6, 7));
    let Expr::Compare(c) = &m.body else {
        panic!("{:?}", m.body)
    };
    assert_eq!((c.op_span.start, c.op_span.end), (14, 16));
    let Operand::Literal(lit) = &c.operand else {
        panic!()
    };
    assert_eq!((lit.span.start, lit.span.end), (17, 21));
    assert_eq!(
        lit.kind,
        LiteralKind::Str {
            text: "é".into(),
            case_sensitive: false
        }
    );
    assert_eq!((l.span.start, l.span.end), (22, text.len()));
    assert_eq!(l.name.name, "l");
}

#[test]
fn an_empty_set_and_an_empty_file_check_clean() {
    let checked = check_sources(&[]);
    assert!(checked.rules.is_empty() && checked.diagnostics.is_empty());
    let checked = check_ok(&[("empty.rules", ""), ("comments.rules", "# nothing\n\n")]);
    assert!(checked.diagnostics.is_empty());
    assert_eq!(checked.summary, Summary::default());
}

/// The fenced examples of dsl/README.md, in order.
fn readme_blocks() -> Vec<String> {
    let readme = include_str!("../README.md");
    readme
        .split("```")
        .skip(1)
        .step_by(2)
        .map(|b| b.strip_prefix('\n').unwrap_or(b).to_string())
        .collect()
}

#[test]
fn the_readme_examples_check_clean() {
    let b = readme_blocks();
    assert_eq!(b.len(), 12, "{b:#?}");
    assert!(b[0].starts_with("rule CAR-2021-02-001"));
    let car = rules(&[("car.rules", &b[0])]);
    assert_eq!(car[0].condition, {
        let shipped = rules(&[("fixed.rules", &car_fixed())]);
        shipped[0].condition.clone()
    });
    let set = rules(&[("webshell.rules", &b[1]), ("local.rules", &b[2])]);
    assert_eq!(set[0].exceptions.len(), 2);
    check_ok(&[("lists.rules", &b[3]), ("macros.rules", &b[4])]);
    cond(&b[5]);
    check_ok(&[("webshell.rules", &b[1]), ("recon.rules", &b[6])]);
    // From a Sigma rule to a process tree: the converted rule, the rule extended with
    // ancestry and its examples, as the fixtures the CLI tests run hold them.
    assert!(b[7].starts_with("yaml\ndetection:"));
    check_ok(&[("converted.rules", &b[8]), ("whoami-web.rules", &b[9])]);
    let fixture = |name: &str| {
        let path = format!(
            "{}/../tests/fixtures/sigma/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(path).unwrap()
    };
    assert!(fixture("whoami-web.rules").ends_with(&b[9]));
    let examples: Vec<String> = fixture("whoami-web.tests")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(examples.concat(), b[10]);
    assert!(b[11].starts_with("error[unknown-field]"));
}
