//! Evaluation through rule text: every operator, wildcards, case, lists, macros,
//! exceptions, ancestry, field comparisons, and the rule index.

use dsl::{Event, Field, RuleSet, Scratch, Source, Value};
use std::collections::HashMap;

/// A process (depth 0) and its ancestors, each a map of field name -> value.
#[derive(Default)]
struct Tree(Vec<HashMap<Field, String>>);

impl Tree {
    fn new(levels: &[&[(&str, &str)]]) -> Tree {
        Tree(
            levels
                .iter()
                .map(|level| {
                    level
                        .iter()
                        .map(|(k, v)| (Field::from_name(k).expect("a field"), v.to_string()))
                        .collect()
                })
                .collect(),
        )
    }
}

impl Event for Tree {
    fn value(&self, depth: u32, field: Field) -> Option<Value<'_>> {
        let v = self.0.get(depth as usize)?.get(&field)?;
        Some(match field.kind() {
            dsl::FieldKind::Number => Value::Number(v.parse().unwrap()),
            dsl::FieldKind::Text => Value::Text(v),
            dsl::FieldKind::Flag => Value::Flag(v == "true"),
        })
    }
    fn ancestor_count(&self) -> u32 {
        self.0.len().saturating_sub(1) as u32
    }
}

fn rules(text: &str) -> RuleSet {
    match dsl::load(&[Source::new("t.rules", text)]) {
        Ok(l) => l.rules,
        Err(d) => panic!("{d:#?}"),
    }
}

/// Ids of the rules matching `event`.
fn matching(set: &RuleSet, event: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    set.evaluate(event, &mut Scratch::new(), &mut out);
    out.into_iter().map(|id| set.meta(id).id.clone()).collect()
}

/// Whether a one-rule set with `condition` matches.
fn holds(condition: &str, event: &Tree) -> bool {
    let set = rules(&format!(
        "rule R {{ title: \"t\" severity: low attack: T1059 condition: {condition} }}"
    ));
    !matching(&set, event).is_empty()
}

/// Whether rule `id` fires by [`dsl::explain::explain`]: its condition held and none
/// of its exceptions did.
fn fires_by_explanation(set: &RuleSet, id: dsl::RuleId, event: &Tree) -> bool {
    let steps = dsl::explain::explain(set, id, event, &mut Scratch::new());
    steps[0].held
        && !steps
            .iter()
            .any(|s| s.indent == 0 && s.text.starts_with("except ") && s.held)
}

fn proc(fields: &[(&str, &str)]) -> Tree {
    Tree::new(&[fields])
}

#[test]
fn equality_is_whole_value_and_case_insensitive_by_default() {
    let e = proc(&[("exe", "CMD.EXE")]);
    assert!(holds(r#"exe == "cmd.exe""#, &e));
    assert!(!holds(r#"exe == "cmd""#, &e));
    assert!(!holds(r#"exe == c"cmd.exe""#, &e));
    assert!(holds(r#"exe == c"CMD.EXE""#, &e));
    assert!(holds(r#"exe != "powershell.exe""#, &e));
    assert!(!holds(r#"exe != "cmd.exe""#, &e));
}

#[test]
fn a_word_final_sigma_folds_the_same_in_rules_and_values() {
    // `str::to_lowercase` would make the rule's `ΟΔΟΣ` "οδος" and the value "οδοσ".
    let e = proc(&[("exe", "ΟΔΟΣ"), ("user", "οδοσ")]);
    assert!(holds(r#"exe == "ΟΔΟΣ""#, &e));
    assert!(holds(r#"exe == c"ΟΔΟΣ""#, &e));
    assert!(holds(r#"exe in ["ΟΔΟΣ", "x"]"#, &e));
    assert!(holds(r#"exe endswith "ΔΟΣ""#, &e));
    assert!(holds(r#"exe == user"#, &e));
}

#[test]
fn wildcards_cover_the_whole_value() {
    for (exe, expected) in [
        ("Tomcat9.exe", true),
        ("tomcat8w.exe", true),
        ("tomcat.exe", true),
        ("tomcat.exe.bak", false),
        ("mytomcat9.exe", false),
    ] {
        assert_eq!(
            holds(r#"exe == "tomcat*.exe""#, &proc(&[("exe", exe)])),
            expected,
            "{exe}"
        );
    }
    assert!(holds(r#"exe == "net?.exe""#, &proc(&[("exe", "net1.exe")])));
    assert!(!holds(r#"exe == "net?.exe""#, &proc(&[("exe", "net.exe")])));
    assert!(holds(
        r#"command_line == "a\*b""#,
        &proc(&[("command_line", "a*b")])
    ));
    assert!(!holds(
        r#"command_line == "a\*b""#,
        &proc(&[("command_line", "axb")])
    ));
    // A wildcard right after a backslash is written `\\*` (an escaped backslash, then
    // the wildcard); `\*` alone is a literal star.
    let path = proc(&[("image_path", r"c:\windows\system32\cmd.exe")]);
    assert!(holds(r#"image_path == "C:\Windows\\*\cmd.exe""#, &path));
    assert!(!holds(r#"image_path == "C:\Windows\*\cmd.exe""#, &path));
}

#[test]
fn substring_operators_take_one_value_or_any_of_a_list() {
    let e = proc(&[("command_line", r"powershell -NoP -Enc SQBFAFgA")]);
    assert!(holds(r#"command_line startswith "POWERSHELL""#, &e));
    assert!(holds(r#"command_line endswith "fgA""#, &e));
    assert!(holds(r#"command_line contains "-enc""#, &e));
    assert!(holds(
        r#"command_line contains ["-encodedcommand", "-enc "]"#,
        &e
    ));
    assert!(!holds(
        r#"command_line contains ["-encodedcommand", "iex"]"#,
        &e
    ));
    assert!(!holds(r#"command_line contains c"-enc""#, &e));
    // `*` is not a wildcard for substring operators.
    assert!(!holds(r#"command_line contains "-N*P""#, &e));
}

#[test]
fn regex_is_searched_and_case_insensitive_unless_cased() {
    let e = proc(&[("command_line", "cmd.exe /c WHOAMI /all")]);
    assert!(holds(r#"command_line regex "/c\s+whoami""#, &e));
    assert!(holds(r#"command_line =~ "^cmd""#, &e));
    assert!(!holds(r#"command_line regex c"whoami""#, &e));
    assert!(!holds(r#"command_line regex "^whoami""#, &e));
}

#[test]
fn numbers_compare_and_absent_fields_fail_every_test() {
    let e = proc(&[("exe", "x.exe"), ("pid", "400"), ("ppid", "4")]);
    assert!(holds(
        "pid > 399 and pid <= 400 and ppid < 5 and ppid >= 4",
        &e
    ));
    assert!(holds("pid in [1, 400, 0x10]", &e));
    assert!(holds("ppid == 0x4", &e));
    assert!(!holds("creator_pid == 4", &e));
    assert!(!holds("creator_pid != 4", &e), "absent: not even !=");
    assert!(holds("not creator_pid exists", &e));
    assert!(holds("pid exists", &e));
    assert!(!holds(r#"user == "x""#, &e));
    assert!(!holds(r#"user != "x""#, &e));
}

#[test]
fn lists_macros_and_keywords_in_any_case() {
    let set = rules(
        r#"
        list web = ["w3wp.exe", "tomcat*.exe"]
        list servers = [web, "node.exe"]
        macro from_web = parent_exe IN servers
        rule A { title: "a" severity: high attack: T1505.003 condition: from_web AND NOT exe == "csc.exe" }
        "#,
    );
    let tree = |child: &str, parent: &str| Tree::new(&[&[("exe", child)], &[("exe", parent)]]);
    assert_eq!(matching(&set, &tree("cmd.exe", "Tomcat9.exe")), ["A"]);
    assert_eq!(matching(&set, &tree("cmd.exe", "node.exe")), ["A"]);
    assert!(matching(&set, &tree("csc.exe", "w3wp.exe")).is_empty());
    assert!(matching(&set, &tree("cmd.exe", "explorer.exe")).is_empty());
}

#[test]
fn exceptions_from_the_rule_and_from_another_file() {
    let shipped = Source::new(
        "shipped.rules",
        r#"rule W { title: "w" severity: high attack: T1505.003
             condition: parent_exe == "w3wp.exe"
             except "compiles": exe in ["csc.exe", "cvtres.exe"] }"#,
    );
    let local = Source::new(
        "local.rules",
        r#"except W "backup": command_line contains "veeam""#,
    );
    let set = dsl::load(&[shipped, local]).unwrap().rules;
    let tree = |child: &[(&str, &str)]| Tree::new(&[child, &[("exe", "w3wp.exe")]]);
    assert_eq!(matching(&set, &tree(&[("exe", "cmd.exe")])), ["W"]);
    assert!(matching(&set, &tree(&[("exe", "cvtres.exe")])).is_empty());
    assert!(matching(
        &set,
        &tree(&[("exe", "cmd.exe"), ("command_line", "cmd /c veeam.bat")])
    )
    .is_empty());
    let id = set.ids().next().unwrap();
    assert_eq!(
        set.exception_hit(id, &tree(&[("exe", "csc.exe")]), &mut Scratch::new()),
        Some("compiles")
    );
}

#[test]
fn ancestry_at_a_depth_in_a_range_and_as_a_block() {
    let e = Tree::new(&[
        &[("exe", "whoami.exe")],
        &[("exe", "cmd.exe")],
        &[
            ("exe", "java.exe"),
            ("command_line", "java -Dcatalina.home=C:\\tomcat"),
        ],
        &[("exe", "services.exe")],
    ]);
    assert!(holds(r#"ancestor[2].exe == "java.exe""#, &e));
    assert!(!holds(r#"ancestor[1].exe == "java.exe""#, &e));
    assert!(holds(r#"ancestor.exe == "services.exe""#, &e));
    assert!(!holds(r#"ancestor[..2].exe == "services.exe""#, &e));
    assert!(holds(
        r#"ancestor[2..3](exe == "java.exe" and command_line contains "catalina")"#,
        &e
    ));
    assert!(
        !holds(
            r#"ancestor(exe == "services.exe" and command_line contains "catalina")"#,
            &e
        ),
        "one ancestor meets the whole block"
    );
    assert!(
        holds(r#"ancestor[1](parent_exe == "java.exe")"#, &e),
        "fields in a block are relative to that ancestor"
    );
    // A missing ancestor satisfies nothing, not even a negation.
    assert!(!holds(r#"ancestor[4](not exe == "x")"#, &e));
    let orphan = Tree::new(&[&[("exe", "whoami.exe")]]);
    assert!(!holds(r#"ancestor[1](exe exists or pid exists)"#, &orphan));
    assert!(holds(
        r#"ancestor[1](exe == "cmd.exe" and parent_exe == "java.exe") and exe exists"#,
        &e
    ));
}

#[test]
fn fields_compare_with_fields() {
    let e = Tree::new(&[
        &[
            ("exe", "PHP-CGI.exe"),
            ("pid", "9"),
            ("ppid", "8"),
            ("creator_pid", "7"),
        ],
        &[("exe", "php-cgi.exe")],
    ]);
    assert!(holds("exe == parent_exe", &e));
    assert!(holds("creator_pid != ppid", &e));
    assert!(!holds("creator_pid == ppid", &e));
    assert!(!holds("user == parent_user", &e), "absent on both sides");
    let d = dsl::load(&[Source::new(
        "t.rules",
        "rule R { title: \"t\" severity: low attack: T1059 condition: pid == exe }",
    )])
    .unwrap_err();
    assert_eq!(d[0].code, "type-mismatch");
    let d = dsl::load(&[Source::new(
        "t.rules",
        "rule R { title: \"t\" severity: low attack: T1059 condition: exe contains parent_exe }",
    )])
    .unwrap_err();
    assert_eq!(d[0].code, "bad-operand");
}

#[test]
fn yes_no_fields_are_tested_by_their_name() {
    let e = Tree::new(&[
        &[("exe", "sh"), ("listens", "false")],
        &[("exe", "node"), ("listens", "true")],
        &[("exe", "bash")],
    ]);
    assert!(holds("parent_listens", &e));
    assert!(holds("not listens", &e));
    assert!(!holds("listens", &e));
    assert!(holds("ancestor[1..2](listens and exe == \"node\")", &e));
    assert!(!holds("ancestor[2](listens)", &e), "absent is no");
    assert!(
        holds("ancestor[2](not listens)", &e),
        "and `not` of absent is yes"
    );
    assert!(!holds("ancestor[2](listens exists)", &e));
    assert!(holds(
        "listens exists and not listens == parent_listens",
        &e
    ));
    // A macro of the same name is what the name means.
    let set = rules(
        "macro listens = exe == \"sh\"
         rule R { title: \"t\" severity: low attack: T1059 condition: listens }",
    );
    assert_eq!(matching(&set, &e), ["R"]);
}

#[test]
fn a_nameless_executable_is_a_yes_no_field() {
    let e = Tree::new(&[
        &[
            ("exe", "memfd:x"),
            ("exe_memfd", "true"),
            ("exe_deleted", "false"),
        ],
        &[("exe", "php-fpm8.2"), ("exe_deleted", "true")],
    ]);
    assert!(holds("exe_memfd and not exe_deleted", &e));
    assert!(holds("parent_exe_deleted and not parent_exe_memfd", &e));
    assert!(holds("exe_memfd or exe_deleted", &e));
    assert!(!holds("parent_exe_memfd exists", &e));
}

/// An event that counts how often each field is asked for.
struct Counting(Tree, std::cell::RefCell<HashMap<Field, u32>>);

impl Event for Counting {
    fn value(&self, depth: u32, field: Field) -> Option<Value<'_>> {
        *self.1.borrow_mut().entry(field).or_default() += 1;
        self.0.value(depth, field)
    }
    fn ancestor_count(&self) -> u32 {
        self.0.ancestor_count()
    }
}

/// The sensor finds `listens` out from the host when asked: only rules that get as
/// far as testing it ask.
#[test]
fn a_field_is_asked_for_only_when_a_rule_reaches_its_test() {
    let set = rules(
        r#"rule R { title: "t" severity: low attack: T1059
                    condition: exe in ["sh", "bash"] and ancestor[1](exe == "node" and listens) }"#,
    );
    let event = |exe: &str, parent: &str| {
        Counting(
            Tree::new(&[&[("exe", exe)], &[("exe", parent), ("listens", "true")]]),
            Default::default(),
        )
    };
    for (exe, parent, asked, fires) in [
        ("ls", "node", 0, false),
        ("sh", "nginx", 0, false),
        ("sh", "node", 1, true),
    ] {
        let e = event(exe, parent);
        let mut out = Vec::new();
        set.evaluate(&e, &mut Scratch::new(), &mut out);
        let listens = e.1.borrow().get(&Field::Listens).copied().unwrap_or(0);
        assert_eq!(
            (listens, !out.is_empty()),
            (asked, fires),
            "{exe} under {parent}"
        );
    }
}

#[test]
fn every_matching_rule_is_returned_in_rule_order_and_disabled_ones_never() {
    let set = rules(
        r#"
        rule C { title: "c" severity: low attack: T1059 condition: exe == "cmd.exe" }
        rule A { title: "a" severity: low attack: T1059 condition: parent_exe == "w3wp.exe" }
        rule OFF { title: "off" severity: low attack: T1059 enabled: false condition: exe == "cmd.exe" }
        rule B { title: "b" severity: low attack: T1059 condition: command_line contains "whoami" }
        "#,
    );
    let e = Tree::new(&[
        &[("exe", "cmd.exe"), ("command_line", "cmd /c whoami")],
        &[("exe", "w3wp.exe")],
    ]);
    assert_eq!(matching(&set, &e), ["C", "A", "B"]);
}

#[test]
fn the_rule_index_never_hides_a_match() {
    // Rules indexed by exe, by parent_exe, by original_file_name, and unindexable ones,
    // with case-sensitive and non-ASCII values, literals beside wildcards and
    // requirements in ancestor blocks, checked against each rule alone and
    // against the explanation's walk of its condition (which owes nothing to the index,
    // while evaluation skips the test the index already proved).
    let text = r#"
        rule I1 { title: "t" severity: low attack: T1059 condition: exe in ["cmd.exe", "PowerShell.exe"] and parent_exe == "w3wp.exe" }
        rule I2 { title: "t" severity: low attack: T1059 condition: exe == c"Cmd.exe" }
        rule I3 { title: "t" severity: low attack: T1059 condition: (exe == "a.exe" or exe == "ÄB.exe") }
        rule I4 { title: "t" severity: low attack: T1059 condition: parent_exe == "w3wp.exe" and exe == "tomcat*.exe" }
        rule I5 { title: "t" severity: low attack: T1059 condition: original_file_name == "cmd.exe" and exe != "cmd.exe" }
        rule I6 { title: "t" severity: low attack: T1059 condition: exe == "x.exe" or parent_exe == "w3wp.exe" }
        rule I7 { title: "t" severity: low attack: T1059 condition: exe in ["a.exe", "cmd.exe"] and user == "u" except "e": exe in ["a.exe", "cmd.exe"] and parent_exe == "explorer.exe" }
        rule I8 { title: "t" severity: low attack: T1059 condition: exe == c"CMD.EXE" and parent_exe == "w3wp.exe" }
        rule I9 { title: "t" severity: low attack: T1059 condition: parent_exe in ["w3wp.exe", "php?.exe"] and not parent_exe == "W3WP.EXE" }
        rule I10 { title: "t" severity: low attack: T1059 condition: exe in ["tomcat9.exe", "tomcat*.exe", "sh", "äb.exe"] }
        rule I11 { title: "t" severity: low attack: T1059 condition: exe in ["cmd.exe", c"Tomcat*.exe", "sh"] }
        rule I12 { title: "t" severity: low attack: T1059 condition: ancestor[1](exe == "w3wp.exe" or (exe in ["EXPLORER.EXE", "php?.exe"] and not exe == c"explorer.exe")) }
    "#;
    let set = rules(text);
    let alone: Vec<RuleSet> = set
        .ids()
        .map(|id| {
            let start = text.find(&format!("rule {}", set.meta(id).id)).unwrap();
            let end = text[start..].find('\n').unwrap() + start;
            rules(&text[start..end])
        })
        .collect();
    for exe in [
        "cmd.exe",
        "CMD.EXE",
        "Cmd.exe",
        "powershell.exe",
        "a.exe",
        "äb.exe",
        "ÄB.EXE",
        "tomcat9.exe",
        "Tomcat9.exe",
        "sh",
        "SH",
        "x.exe",
        "svc.exe",
    ] {
        for parent in ["w3wp.exe", "W3WP.EXE", "explorer.exe"] {
            for ofn in ["cmd.exe", "other"] {
                let e = Tree::new(&[
                    &[("exe", exe), ("original_file_name", ofn), ("user", "u")],
                    &[("exe", parent)],
                ]);
                let expected: Vec<String> =
                    alone.iter().flat_map(|one| matching(one, &e)).collect();
                let got = matching(&set, &e);
                assert_eq!(got, expected, "exe {exe}, parent {parent}, ofn {ofn}");
                let walked: Vec<String> = set
                    .ids()
                    .filter(|&id| fires_by_explanation(&set, id, &e))
                    .map(|id| set.meta(id).id.clone())
                    .collect();
                assert_eq!(got, walked, "exe {exe}, parent {parent}, ofn {ofn}");
            }
        }
    }
}

/// Where each rule of `text` that matches `event` reaches: (rule id, depth).
fn anchors(text: &str, event: &Tree) -> Vec<(String, u32)> {
    let set = rules(text);
    let mut matched = Vec::new();
    set.evaluate(event, &mut Scratch::new(), &mut matched);
    matched
        .into_iter()
        .map(|id| {
            let depth = dsl::explain::anchor(&set, id, event, &mut Scratch::new());
            (set.meta(id).id.clone(), depth)
        })
        .collect()
}

#[test]
fn a_match_reaches_the_topmost_process_its_held_tests_are_about() {
    // whoami <- cmd <- w3wp <- w3wp <- svchost
    let e = Tree::new(&[
        &[("exe", "whoami.exe")],
        &[("exe", "cmd.exe")],
        &[("exe", "w3wp.exe")],
        &[("exe", "w3wp.exe")],
        &[("exe", "svchost.exe")],
    ]);
    let rule = |id: &str, condition: &str| {
        format!("rule {id} {{ title: \"t\" severity: low attack: T1059 condition: {condition} }}\n")
    };
    let text = [
        rule(
            "PARENT",
            r#"parent_exe == "cmd.exe" and exe == "whoami.exe""#,
        ),
        rule(
            "BLOCK",
            r#"parent_exe == "cmd.exe" and ancestor[2..4](exe == "w3wp.exe")"#,
        ),
        rule("ANY", r#"ancestor(exe == "w3wp.exe")"#),
        rule(
            "RELATIVES",
            r#"ancestor[1](exe == "cmd.exe" and parent_exe == "w3wp.exe")"#,
        ),
        rule(
            "DEPTH",
            r#"exe == "nope" or ancestor[4].exe == "svchost.exe""#,
        ),
        rule(
            "SELF",
            r#"exe == "whoami.exe" and not parent_exe == "explorer.exe""#,
        ),
        rule("SAME", r#"exe == "whoami.exe" and not exe == parent_exe"#),
    ]
    .concat()
        + r#"except SELF "never": ancestor[4].exe == "x.exe""#;
    assert_eq!(
        anchors(&text, &e),
        [
            ("PARENT".to_string(), 1),
            ("BLOCK".into(), 2),
            ("ANY".into(), 2),
            ("RELATIVES".into(), 1),
            ("DEPTH".into(), 4),
            ("SELF".into(), 0),
            ("SAME".into(), 0),
        ],
        "nearest ancestor a block holds for; its relatives, negations and exceptions do not count"
    );
}
