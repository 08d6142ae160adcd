//! Every diagnostic code, with the exact file, line and column it points at.

use dsl::check::check_sources;
use dsl::{Diagnostic, Level, Source};

fn sources(files: &[(&str, &str)]) -> Vec<Source> {
    files.iter().map(|(n, t)| Source::new(*n, *t)).collect()
}

/// `(code, file, line, column)` of every diagnostic, in order.
fn located(files: &[(&str, &str)]) -> Vec<(&'static str, String, usize, usize)> {
    let srcs = sources(files);
    check_sources(&srcs)
        .diagnostics
        .iter()
        .map(|d| {
            let l = d.location(&srcs);
            (d.code, l.file, l.line, l.column)
        })
        .collect()
}

/// `(code, line, column)` of every diagnostic of one file.
fn codes(text: &str) -> Vec<(&'static str, usize, usize)> {
    located(&[("t.rules", text)])
        .into_iter()
        .map(|(c, _, l, col)| (c, l, col))
        .collect()
}

/// The only diagnostic of one file (fails when there are others).
fn only(text: &str) -> Diagnostic {
    let srcs = sources(&[("t.rules", text)]);
    let mut diags = check_sources(&srcs).diagnostics;
    assert_eq!(
        diags.len(),
        1,
        "{}",
        diags
            .iter()
            .map(|d| d.render(&srcs))
            .collect::<Vec<_>>()
            .join("\n")
    );
    diags.remove(0)
}

fn at(d: &Diagnostic, text: &str) -> (usize, usize) {
    let l = d.location(&sources(&[("t.rules", text)]));
    (l.line, l.column)
}

/// A valid rule around `condition`, which starts on line 2 column 12.
fn rule(condition: &str) -> String {
    format!("rule r {{ title: \"t\" severity: low attack: T1059\ncondition: {condition}\n}}\n")
}

// --- syntax -------------------------------------------------------------------------

#[test]
fn single_equals_gets_a_hint() {
    let text = rule(r#"parent_exe = "w3wp.exe""#);
    let d = only(&text);
    assert_eq!((d.code, at(&d, &text)), ("syntax", (2, 23)));
    assert_eq!(
        d.message,
        "expected `==`, `!=`, `in`, `startswith`, `endswith`, `contains`, `regex`, `=~`, `<`, `<=`, `>`, `>=` or `exists` after `parent_exe`, found `=`"
    );
    assert_eq!(d.hint.as_deref(), Some("use `==` to compare"));
    assert_eq!(d.level, Level::Error);
}

#[test]
fn syntax_errors_name_the_tokens() {
    let cases: &[(&str, &str, (usize, usize))] = &[
        (
            r#"exe "cmd.exe""#,
            "expected `==`, `!=`, `in`, `startswith`, `endswith`, `contains`, `regex`, `=~`, `<`, `<=`, `>`, `>=` or `exists` after `exe`, found `\"cmd.exe\"`",
            (2, 16),
        ),
        (
            r#"exe == "a" exe == "b""#,
            "expected `and`, `or`, a new `key:` entry, `except` or `}` after the condition, found `exe`",
            (2, 23),
        ),
        (
            r#"(exe == "a""#,
            "expected `and`, `or` or `)`, found `}`",
            (3, 1),
        ),
        (
            r#"exe in ["a" "b"]"#,
            "expected `,` or `]` in the list, found `\"b\"`",
            (2, 24),
        ),
        (
            "exe == 12ab",
            "invalid number `12ab`: write decimal digits or `0x` and hex digits",
            (2, 19),
        ),
        (
            "pid == 99999999999999999999",
            "number `99999999999999999999` does not fit in 64 bits",
            (2, 19),
        ),
        (
            "and exe exists",
            "expected a condition (a comparison such as `exe == \"cmd.exe\"`, a macro name, `not`, `(` or `ancestor`), found `and`",
            (2, 12),
        ),
        (
            "ancestor exe == \"x\"",
            "expected `.`, `[` or `(` after `ancestor`, found `exe`",
            (2, 21),
        ),
        (
            "ancestor[..].exe exists",
            "expected a depth (a number), found `]`",
            (2, 23),
        ),
        (
            "exe == \"a\" && exe == \"b\"",
            "expected `and`, `or`, a new `key:` entry, `except` or `}` after the condition, found `&`",
            (2, 23),
        ),
        (
            "exe not in [\"a\"]",
            "expected `==`, `!=`, `in`, `startswith`, `endswith`, `contains`, `regex`, `=~`, `<`, `<=`, `>`, `>=` or `exists` after `exe`, found `not`",
            (2, 16),
        ),
    ];
    for (condition, message, pos) in cases {
        let text = rule(condition);
        let d = only(&text);
        assert_eq!(d.code, "syntax", "{condition}");
        assert_eq!(d.message, *message, "{condition}");
        assert_eq!(at(&d, &text), *pos, "{condition}");
    }
    let d = only(&rule("exe == \"a\" && exe == \"b\""));
    assert_eq!(d.hint.as_deref(), Some("use `and`"));
    let d = only(&rule("exe not in [\"a\"]"));
    assert_eq!(
        d.hint.as_deref(),
        Some("write `not exe in [...]` to negate a test")
    );
}

#[test]
fn syntax_errors_in_items() {
    let cases: &[(&str, &str, (usize, usize))] = &[
        ("}", "expected `list`, `macro`, `rule` or `except` to start an item, found `}`", (1, 1)),
        ("list and = [\"a\"]", "expected a list name, found `and`", (1, 6)),
        ("list l [\"a\"]", "expected `=` after the list name, found `[`", (1, 8)),
        ("macro m == exe exists", "expected `=` after the macro name, found `==`", (1, 9)),
        ("rule { title: \"t\" }", "expected a rule id, found `{`", (1, 6)),
        ("rule r title: \"t\" }", "expected `{` after the rule id, found `title`", (1, 8)),
        ("rule r { title \"t\" }", "expected `:` after `title`, found `\"t\"`", (1, 16)),
        ("rule r { title: t }", "expected a string, found `t`", (1, 17)),
        ("rule r { enabled: yes }", "expected `true` or `false`, found `yes`", (1, 19)),
        ("rule r { \"x\" }", "expected a `key:` entry, `except` or `}`, found `\"x\"`", (1, 10)),
        ("rule r { title: \"t\"", "expected `}` to close rule `r`, found end of file", (1, 20)),
        ("rule r { except x: exe exists }", "expected the exception's name (a string), found `x`", (1, 17)),
        ("except \"x\": exe exists", "expected the id of the rule this exception extends, found `\"x\"`", (1, 8)),
        ("macro m = exe exists )", "expected `and`, `or` or a new item (`list`, `macro`, `rule`, `except`) after the condition, found `)`", (1, 22)),
        ("rule r { attack: [T1059 T1033] }", "expected `,` or `]`, found `T1033`", (1, 25)),
    ];
    for (text, message, pos) in cases {
        let d = only(text);
        assert_eq!(d.code, "syntax", "{text}");
        assert_eq!(d.message, *message, "{text}");
        assert_eq!(at(&d, text), *pos, "{text}");
    }
}

#[test]
fn unterminated_string_points_at_the_opening_quote() {
    let text = rule(r#"exe == "cmd.exe or user exists"#);
    let d = only(&text);
    assert_eq!((d.code, at(&d, &text)), ("unterminated-string", (2, 19)));
    // A `\"` escapes the quote, so the string runs on.
    let text = rule(r#"image_path == "C:\Windows\""#);
    let d = only(&text);
    assert_eq!((d.code, at(&d, &text)), ("unterminated-string", (2, 26)));
    assert_eq!(
        d.hint.as_deref(),
        Some("add the closing `\"` before the end of the line; `\\\"` is an escaped quote, so end a string with a backslash as `\\\\\"`")
    );
    // Strings end at the end of the line; the file may end right there.
    assert_eq!(codes("list l = [\"a"), [("unterminated-string", 1, 11)]);
    assert_eq!(codes("list l = [\"a\\"), [("unterminated-string", 1, 11)]);
}

/// The CAR pseudocode's filter, pasted as is (its last string lacks the closing quote).
const CAR_PASTE: &str = include_str!("fixtures/car-pasted.rules");

#[test]
fn the_car_pseudocode_pasted_as_is_gives_one_error_at_the_open_quote() {
    let srcs = sources(&[("car.rules", CAR_PASTE)]);
    let checked = check_sources(&srcs);
    assert_eq!(checked.diagnostics.len(), 1, "{:?}", checked.diagnostics);
    let d = &checked.diagnostics[0];
    assert_eq!(d.code, "unterminated-string");
    let loc = d.location(&srcs);
    assert_eq!(
        (loc.file.as_str(), loc.line, loc.column),
        ("car.rules", 16, 11)
    );
    assert_eq!(
        d.render(&srcs),
        r#"error[unterminated-string]: unterminated string
  --> car.rules:16:11
   |
16 |    exe == "ipconfig.exe) )
   |           ^^^^^^^^^^^^^^^^
   = help: add the closing `"` before the end of the line"#
    );
    // The rule is dropped: nothing is built and nothing else is said about it.
    assert!(checked.rules.is_empty());
    // Also with the pseudocode's outer parenthesis and more items after it.
    let text = CAR_PASTE.replace("condition:\n", "condition: (\n") + "macro m = exe exists\n";
    assert_eq!(
        located(&[
            ("car.rules", &text),
            (
                "other.rules",
                "rule z { title: \"z\" severity: low attack: T1059 condition: m }"
            )
        ]),
        [("unterminated-string", "car.rules".to_string(), 16, 11)]
    );
}

#[test]
fn too_deep_nesting() {
    let open = "(".repeat(65);
    let text = rule(&format!("{open}exe exists{}", ")".repeat(65)));
    let d = only(&text);
    assert_eq!((d.code, at(&d, &text)), ("too-deep", (2, 12 + 64)));
    assert_eq!(d.message, "conditions nest more than 64 levels deep");
    // 64 levels are fine.
    let text = rule(&format!("{}exe exists{}", "(".repeat(64), ")".repeat(64)));
    assert_eq!(codes(&text), []);
    let text = rule(&format!("{}exe exists", "not ".repeat(65)));
    assert_eq!(codes(&text), [("too-deep", 2, 12 + 4 * 64)]);
    let text = rule(&format!(
        "{}exe exists{}",
        "ancestor[1](".repeat(65),
        ")".repeat(65)
    ));
    assert_eq!(codes(&text), [("too-deep", 2, 12 + 12 * 64 + 11)]);
    let text = format!("macro m = {}exe exists", "not (".repeat(40));
    assert_eq!(codes(&text), [("too-deep", 1, 11 + 5 * 32)]);
}

#[test]
fn one_mistake_one_error_and_parsing_resumes_at_the_next_item() {
    let text = r#"list good = ["a"]
list bad = ["a" "b"]
macro broken = exe ==
  "x" or
rule r1 {
    title: "t"
    severity: high
    condition: exe == "a" and and
    except "never": seen == 1
}
except r1 "x": nonsense nonsense
macro also_good = exe in good and broken
rule r2 { title: "t" severity: low attack: T1059 condition: also_good }
rule r3 { title: "t" severity: low attack: T1059 condition: bad_field == "x" }
"#;
    assert_eq!(
        codes(text),
        [
            ("syntax", 2, 17),
            ("syntax", 5, 1),
            ("syntax", 8, 31),
            ("syntax", 11, 25),
            ("unknown-field", 14, 61),
        ]
    );
}

// --- names ----------------------------------------------------------------------------

/// The brief's example, as a full string.
#[test]
fn unknown_field_renders_like_rustc() {
    let text = "# local rules\n\n\n\n\n\n\n\n\nrule local-1 {\n    title: \"t\"\n    condition: parent_exee == \"w3wp.exe\"\n    severity: high\n    attack: T1505.003\n}\n";
    let srcs = sources(&[("rules/local.rules", text)]);
    let checked = check_sources(&srcs);
    assert_eq!(checked.diagnostics.len(), 1);
    assert_eq!(
        checked.diagnostics[0].render(&srcs),
        "error[unknown-field]: unknown field `parent_exee`
  --> rules/local.rules:12:16
   |
12 |     condition: parent_exee == \"w3wp.exe\"
   |                ^^^^^^^^^^^
   = help: did you mean `parent_exe`?"
    );
    let d = only(&rule("CommandLine contains \"x\""));
    assert_eq!(d.code, "unknown-field");
    assert_eq!(d.hint.as_deref(), Some("did you mean `command_line`?"));
    let d = only(&rule("ancestor[2].ParentImage exists"));
    assert_eq!(
        (d.code, at(&d, &rule("ancestor[2].ParentImage exists"))),
        ("unknown-field", (2, 24))
    );
    assert_eq!(d.hint.as_deref(), Some("did you mean `parent_image_path`?"));
}

#[test]
fn undefined_macro_hints() {
    let text = "macro from_web_server = parent_exe == \"w3wp.exe\"\nlist shells = [\"cmd.exe\"]\n"
        .to_string()
        + &rule("from_webserver or exe or shells or zzz");
    let srcs = sources(&[("t.rules", &text)]);
    let diags = check_sources(&srcs).diagnostics;
    let got: Vec<(&str, usize, usize, Option<&str>)> = diags
        .iter()
        .map(|d| {
            let l = d.location(&srcs);
            (d.code, l.line, l.column, d.hint.as_deref())
        })
        .collect();
    assert_eq!(
        got,
        [
            // Misspelt references do not count as uses.
            ("unused-macro", 1, 7, None),
            ("unused-list", 2, 6, None),
            ("undefined-macro", 4, 12, Some("did you mean `from_web_server`?")),
            (
                "undefined-macro",
                4,
                30,
                Some("`exe` is a field: a comparison is missing, for example `exe == \"...\"` or `exe exists`")
            ),
            (
                "undefined-macro",
                4,
                37,
                Some("`shells` is a list; lists go after `in`, for example `exe in shells`")
            ),
            ("undefined-macro", 4, 47, None),
        ]
    );
    assert_eq!(diags[2].message, "undefined macro `from_webserver`");
}

#[test]
fn yes_no_fields_take_no_operator() {
    let d = only(&rule("listens == \"true\""));
    assert_eq!(d.code, "type-mismatch");
    assert_eq!(d.message, "`listens` is a yes/no field: it takes no `==`");
    assert_eq!(
        d.hint.as_deref(),
        Some("test it by its name: `listens`, `not listens`, or `listens exists` (known at all)")
    );
    let d = only(&rule("exe == parent_listens"));
    assert_eq!(d.code, "type-mismatch");
    assert_eq!(
        d.message,
        "`exe` and `parent_listens` hold different kinds of values (text and yes/no)"
    );
    assert!(codes(&rule("parent_listens and not listens")).is_empty());
}

#[test]
fn undefined_list() {
    let text = "list web_servers = [\"w3wp.exe\"]\nlist all = [web_server, \"x\"]\n".to_string()
        + &rule("exe in all and parent_exe in web_srvers and exe in [nope]");
    assert_eq!(
        codes(&text),
        [
            ("unused-list", 1, 6),
            ("undefined-list", 2, 13),
            ("undefined-list", 4, 41),
            ("undefined-list", 4, 64),
        ]
    );
    let srcs = sources(&[("t.rules", &text)]);
    let diags = check_sources(&srcs).diagnostics;
    assert_eq!(diags[1].message, "undefined list `web_server`");
    assert_eq!(
        diags[1].hint.as_deref(),
        Some("did you mean `web_servers`?")
    );
    assert_eq!(
        diags[2].hint.as_deref(),
        Some("did you mean `web_servers`?")
    );
}

#[test]
fn macro_and_list_cycles_name_the_path() {
    let text = "macro a = b or exe exists\nmacro b = not c\nmacro c = a\nmacro self_ref = self_ref\nmacro user = a\n"
        .to_string()
        + &rule("user and self_ref");
    let srcs = sources(&[("t.rules", &text)]);
    let diags = check_sources(&srcs).diagnostics;
    let got: Vec<(&str, usize, usize, &str)> = diags
        .iter()
        .map(|d| {
            let l = d.location(&srcs);
            (d.code, l.line, l.column, d.message.as_str())
        })
        .collect();
    assert_eq!(
        got,
        [
            ("macro-cycle", 1, 7, "macro cycle: a -> b -> c -> a"),
            ("macro-cycle", 4, 7, "macro cycle: self_ref -> self_ref"),
        ]
    );
    let text = "list x = [\"1\", y]\nlist y = [z]\nlist z = [\"3\", x]\nlist w = [w]\n".to_string()
        + &rule("exe in x or exe in w");
    let srcs = sources(&[("t.rules", &text)]);
    let diags = check_sources(&srcs).diagnostics;
    let got: Vec<(&str, usize, usize, &str)> = diags
        .iter()
        .map(|d| {
            let l = d.location(&srcs);
            (d.code, l.line, l.column, d.message.as_str())
        })
        .collect();
    assert_eq!(
        got,
        [
            ("list-cycle", 1, 6, "list cycle: x -> y -> z -> x"),
            ("list-cycle", 4, 6, "list cycle: w -> w"),
        ]
    );
}

#[test]
fn duplicates_say_where_the_first_one_is() {
    let a = "list l = [\"a\"]\nmacro m = exe in l\nrule r1 { title: \"t\" severity: low attack: T1059 condition: m }\n";
    let b = "\nrule r1 { title: \"u\" severity: low attack: T1059 condition: m }\nmacro m = exe exists\nlist l = [\"b\"]\n";
    let srcs = sources(&[("a.rules", a), ("b.rules", b)]);
    let diags = check_sources(&srcs).diagnostics;
    let got: Vec<(&str, String, usize, usize, Option<&str>)> = diags
        .iter()
        .map(|d| {
            let l = d.location(&srcs);
            (d.code, l.file, l.line, l.column, d.hint.as_deref())
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "duplicate-rule",
                "b.rules".into(),
                2,
                6,
                Some("the first one is at a.rules:3; to change a shipped rule, add an `except` instead")
            ),
            ("duplicate-macro", "b.rules".into(), 3, 7, Some("the first definition is at a.rules:2")),
            ("duplicate-list", "b.rules".into(), 4, 6, Some("the first definition is at a.rules:1")),
        ]
    );
    assert_eq!(diags[0].message, "rule `r1` is defined more than once");
}

#[test]
fn unknown_rule_for_a_top_level_exception() {
    let text = rule("exe exists").replace("rule r ", "rule CAR-2021-02-001 ")
        + "except CAR-2021-02-01 \"x\": exe == \"a\"\nexcept other \"y\": exe == \"b\"\n";
    let srcs = sources(&[("t.rules", &text)]);
    let diags = check_sources(&srcs).diagnostics;
    let got: Vec<(&str, usize, usize, Option<&str>)> = diags
        .iter()
        .map(|d| {
            let l = d.location(&srcs);
            (d.code, l.line, l.column, d.hint.as_deref())
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "unknown-rule",
                4,
                8,
                Some("did you mean `CAR-2021-02-001`?")
            ),
            ("unknown-rule", 5, 8, None),
        ]
    );
    assert_eq!(
        diags[0].message,
        "`except` for unknown rule `CAR-2021-02-01`"
    );
}

// --- values and types -------------------------------------------------------------------

#[test]
fn bad_regex_shows_the_regex_crates_message() {
    let text = "list pats = [\"ok\", \"(x\"]\n".to_string()
        + &rule(r#"command_line regex "a[b" or exe =~ pats or exe regex c"\w{1000}{1000}""#);
    assert_eq!(
        codes(&text),
        [
            ("bad-regex", 1, 20),
            ("bad-regex", 3, 31),
            ("bad-regex", 3, 65)
        ]
    );
    let srcs = sources(&[("t.rules", &text)]);
    let diags = check_sources(&srcs).diagnostics;
    assert_eq!(diags[0].message, "invalid regex: unclosed group");
    assert_eq!(diags[1].message, "invalid regex: unclosed character class");
    assert!(
        diags[2].message.contains("exceeds size limit"),
        "{}",
        diags[2].message
    );
    // The same strings are fine where they are not regexes.
    assert_eq!(codes(&rule(r#"command_line contains "a[b""#)), []);
}

#[test]
fn type_mismatches() {
    let cases: &[(&str, (usize, usize), &str)] = &[
        (
            "exe < 5",
            (2, 16),
            "`<` compares numbers, but `exe` is a text field",
        ),
        (
            "pid contains \"4\"",
            (2, 16),
            "`contains` applies to text, but `pid` is a number field",
        ),
        (
            "pid regex \"4\"",
            (2, 16),
            "`regex` applies to text, but `pid` is a number field",
        ),
        (
            "pid == \"4\"",
            (2, 19),
            "`pid` is a number field, but this is a string",
        ),
        (
            "ppid in [4, \"8\"]",
            (2, 24),
            "`ppid` is a number field, but this is a string",
        ),
        (
            "exe == 4",
            (2, 19),
            "`exe` is a text field, but this is a number",
        ),
        (
            "ancestor[2].user in [\"a\", 0x10]",
            (2, 38),
            "`user` is a text field, but this is a number",
        ),
    ];
    for (condition, pos, message) in cases {
        let text = rule(condition);
        let d = only(&text);
        assert_eq!(
            (d.code, at(&d, &text)),
            ("type-mismatch", *pos),
            "{condition}"
        );
        assert_eq!(d.message, *message, "{condition}");
    }
    // Through a list: the list name is pointed at.
    let text = "list pids = [4, 8]\n".to_string() + &rule("exe in pids");
    assert_eq!(codes(&text), [("type-mismatch", 3, 19)]);
}

#[test]
fn bad_operands() {
    let cases: &[(&str, (usize, usize), &str)] = &[
        (
            "exe == [\"a\", \"b\"]",
            (2, 19),
            "use `in` to test against a list",
        ),
        (
            "exe in \"a\"",
            (2, 19),
            "use `==` to compare with one value, or put it in brackets: `in [\"...\"]`",
        ),
        (
            "pid in 4",
            (2, 19),
            "use `==` to compare with one value, or put it in brackets: `in [\"...\"]`",
        ),
        (
            "exe != [\"a\"]",
            (2, 19),
            "use `not exe in [...]` to exclude a list",
        ),
    ];
    for (condition, pos, hint) in cases {
        let text = rule(condition);
        let d = only(&text);
        assert_eq!(
            (d.code, at(&d, &text)),
            ("bad-operand", *pos),
            "{condition}"
        );
        assert_eq!(d.hint.as_deref(), Some(*hint), "{condition}");
    }
    let text = "list l = [\"a\"]\n".to_string() + &rule("exe == l");
    assert_eq!(codes(&text), [("bad-operand", 3, 19)]);
    let d = only(&rule("pid < [1, 2]"));
    assert_eq!(d.message, "`<` compares with one number, not a list");
}

// --- rule entries -------------------------------------------------------------------------

#[test]
fn unknown_duplicate_and_missing_keys() {
    let text = "rule r {\n  title: \"t\"\n  severity: low\n  attack: T1059\n  condtion: exe == \"a\"\n    and user == \"b\"\n  tags: [a, b]\n  title: \"again\"\n}\n";
    assert_eq!(
        codes(text),
        [
            ("unknown-key", 5, 3),
            ("unknown-key", 7, 3),
            ("duplicate-key", 8, 3)
        ]
    );
    let srcs = sources(&[("t.rules", text)]);
    let diags = check_sources(&srcs).diagnostics;
    assert_eq!(diags[0].message, "unknown rule key `condtion`");
    assert_eq!(diags[0].hint.as_deref(), Some("did you mean `condition`?"));
    assert_eq!(
        diags[1].hint.as_deref(),
        Some("rule keys are `title`, `description`, `severity`, `attack`, `references`, `enabled`, `condition` and `except`")
    );
    assert_eq!(diags[2].message, "rule `r` has more than one `title`");
    assert_eq!(
        diags[2].hint.as_deref(),
        Some("the first `title` is on line 2; remove one")
    );

    let d = only("rule web-1 {\n  attack: T1059\n  condition: exe exists\n}");
    assert_eq!((d.code, at(&d, "rule web-1 {")), ("missing-key", (1, 6)));
    assert_eq!(d.message, "rule `web-1` has no `title` and `severity`");
    let d = only("rule r { title: \"t\" attack: T1059 severity: low }");
    assert_eq!(d.message, "rule `r` has no `condition`");
}

#[test]
fn bad_severity() {
    let text = "rule r { title: \"t\" attack: T1059 condition: exe exists\n  severity: hihg }";
    let d = only(text);
    assert_eq!((d.code, at(&d, text)), ("bad-severity", (2, 13)));
    assert_eq!(d.message, "unknown severity `hihg`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `high`?"));
    let d = only("rule r { title: \"t\" attack: T1059 condition: exe exists severity: urgent }");
    assert_eq!(
        d.hint.as_deref(),
        Some("severities are `informational`, `low`, `medium`, `high` and `critical`")
    );
}

#[test]
fn bad_depth() {
    let text = rule("ancestor[0].exe exists or ancestor[..33].exe exists or ancestor[4..2](exe exists) or ancestor[2..2].exe exists");
    assert_eq!(
        codes(&text),
        [
            ("bad-depth", 2, 20),
            ("bad-depth", 2, 46),
            ("bad-depth", 2, 75)
        ]
    );
    let srcs = sources(&[("t.rules", &text)]);
    let messages: Vec<String> = check_sources(&srcs)
        .diagnostics
        .into_iter()
        .map(|d| d.message)
        .collect();
    assert_eq!(
        messages,
        [
            "ancestor depth 0 is the process itself",
            "ancestor depth 33 is deeper than 32",
            "ancestor range 4..2 is empty",
        ]
    );
}

#[test]
fn macro_too_large_instead_of_exponential_blow_up() {
    let mut text = String::from("macro m0 = exe == \"a\" or exe == \"b\"\n");
    for i in 1..=40 {
        text.push_str(&format!("macro m{i} = m{} and m{}\n", i - 1, i - 1));
    }
    text.push_str(&rule("m40"));
    // m0 is 3 nodes; m{i} is 2 * m{i-1} + 1: m15 is 131,071 nodes.
    assert_eq!(codes(&text), [("macro-too-large", 16, 7)]);
    // A rule can also go over on its own, with macros that are each under the cap.
    let mut text = String::from("list big = [");
    text.push_str(&vec!["\"x\""; 30_000].join(","));
    text.push_str("]\nmacro m = exe in big\n");
    text.push_str(&rule("m or m or m or m"));
    assert_eq!(codes(&text), [("macro-too-large", 3, 6)]);
    let d = &check_sources(&sources(&[("t.rules", &text)])).diagnostics[0];
    assert_eq!(
        d.message,
        "rule `r` expands to more than 100000 nodes once its macros and lists are inlined"
    );
}

#[test]
fn macro_chains_deeper_than_the_cap_are_too_deep() {
    let mut text = String::from("macro m0 = exe exists\n");
    for i in 1..=300 {
        text.push_str(&format!("macro m{i} = m{}\n", i - 1));
    }
    text.push_str(&rule("m300"));
    // m0 is 1 level; each reference adds one: m255 is 256 deep, m256 is 257.
    assert_eq!(codes(&text), [("too-deep", 257, 7)]);
}

// --- warnings -------------------------------------------------------------------------------

#[test]
fn warnings() {
    let text = "list unused_l = [\"a\"]\nmacro unused_m = exe exists\nlist used = [\"b\"]\nrule r1 { title: \"t\" severity: low condition: exe in used }\nrule r2 { title: \"t\" severity: low attack: [T1059.001, T1059.1, t1059, \"TA0003\"] condition: exe exists }\n";
    let srcs = sources(&[("t.rules", text)]);
    let checked = check_sources(&srcs);
    assert!(checked
        .diagnostics
        .iter()
        .all(|d| d.level == Level::Warning));
    let got: Vec<(&str, usize, usize)> = checked
        .diagnostics
        .iter()
        .map(|d| {
            let l = d.location(&srcs);
            (d.code, l.line, l.column)
        })
        .collect();
    assert_eq!(
        got,
        [
            ("unused-list", 1, 6),
            ("unused-macro", 2, 7),
            ("no-attack-id", 4, 6),
            ("bad-attack-id", 5, 56),
            ("bad-attack-id", 5, 65),
            ("bad-attack-id", 5, 72),
        ]
    );
    assert_eq!(checked.rules.len(), 2);
    assert_eq!(
        checked.diagnostics[0].render(&srcs),
        "warning[unused-list]: list `unused_l` is never used
 --> t.rules:1:6
  |
1 | list unused_l = [\"a\"]
  |      ^^^^^^^^"
    );
    // With a syntax error in the set, unused warnings are not given (the broken item may
    // have been the user).
    let broken = located(&[("t.rules", text), ("u.rules", "rule x { title: }")]);
    let codes: Vec<&str> = broken.iter().map(|(c, ..)| *c).collect();
    assert_eq!(
        codes,
        [
            "no-attack-id",
            "bad-attack-id",
            "bad-attack-id",
            "bad-attack-id",
            "syntax"
        ]
    );
}

// --- the whole set ---------------------------------------------------------------------------

#[test]
fn errors_of_every_file_are_reported_together_sorted() {
    let got = located(&[
        ("a.rules", "rule a { title: \"t\" severity: low attack: T1059 condition: exee exists }\nmacro m = exe = \"x\"\n"),
        ("b.rules", "\n\nrule b { title: \"t\" severity: hihg attack: T1059 condition: nope }\n"),
        ("c.rules", "except zzz \"n\": exe exists\nlist l = [\"unterminated]\n"),
    ]);
    assert_eq!(
        got,
        [
            ("unknown-field", "a.rules".into(), 1, 60),
            ("syntax", "a.rules".into(), 2, 15),
            ("bad-severity", "b.rules".into(), 3, 31),
            ("undefined-macro", "b.rules".into(), 3, 61),
            ("unknown-rule", "c.rules".into(), 1, 8),
            ("unterminated-string", "c.rules".into(), 2, 11),
        ]
    );
}

#[test]
fn rendering_edge_cases() {
    // End of file: the caret goes just past the last char.
    let text = "rule r { title: \"t\"\n";
    let srcs = sources(&[("eof.rules", text)]);
    let d = &check_sources(&srcs).diagnostics[0];
    assert_eq!(
        d.render(&srcs),
        "error[syntax]: expected `}` to close rule `r`, found end of file
 --> eof.rules:1:20
  |
1 | rule r { title: \"t\"
  |                    ^"
    );
    // A span over several lines: carets to the end of its first line. Tabs stay tabs.
    let d = Diagnostic::error(
        "x",
        "m",
        dsl::ast::Span {
            file: 0,
            start: 3,
            end: 12,
        },
    )
    .with_hint("h");
    let srcs = sources(&[("m.rules", "\tab(cd\n ef)\n")]);
    assert_eq!(
        d.render(&srcs),
        "error[x]: m\n --> m.rules:1:4\n  |\n1 | \tab(cd\n  | \t  ^^^\n  = help: h"
    );
    // An empty span: one caret.
    let d = Diagnostic::warning(
        "y",
        "n",
        dsl::ast::Span {
            file: 0,
            start: 8,
            end: 8,
        },
    );
    assert_eq!(
        d.render(&srcs),
        "warning[y]: n\n --> m.rules:2:2\n  |\n2 |  ef)\n  |  ^"
    );
}

#[test]
fn long_lines_are_cut_to_a_window_around_the_caret() {
    let text = format!(
        "macro m = {}exe == 4 or {}",
        "exe exists or ".repeat(10),
        "user exists or ".repeat(10) + "user exists"
    );
    let srcs = sources(&[("long.rules", &text)]);
    let diags = check_sources(&srcs).diagnostics;
    let codes: Vec<&str> = diags.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["unused-macro", "type-mismatch"]);
    let at = text.find("== 4").unwrap() + 3;
    assert_eq!(at, 157);
    // 60 chars before the caret and 100 from it, the rest cut.
    let window = &text[at - 60..at + 100];
    assert_eq!(
        diags[1].render(&srcs),
        format!(
            "error[type-mismatch]: `exe` is a text field, but this is a number
 --> long.rules:1:158
  |
1 | ...{window}...
  |    {}^
  = help: quote it to compare as text",
            " ".repeat(60)
        )
    );
}

#[test]
fn render_all_matches_render_one_by_one() {
    let srcs = sources(&[
        (
            "a.rules",
            "macro m = exee exists\n\nmacro n = exe in nope\n",
        ),
        ("b.rules", "é\té list\nrule r { title: \"t\"\n"),
        ("c.rules", ""),
    ]);
    let mut diags = check_sources(&srcs).diagnostics;
    assert_eq!(diags.len(), 4, "{diags:?}");
    // Out of order too, and a diagnostic for a file that is not in the set.
    diags.reverse();
    diags.push(Diagnostic::error(
        "x",
        "y",
        dsl::ast::Span {
            file: 9,
            start: 3,
            end: 4,
        },
    ));
    let one_by_one: Vec<String> = diags.iter().map(|d| d.render(&srcs)).collect();
    assert_eq!(dsl::diag::render_all(&diags, &srcs), one_by_one);
    assert_eq!(
        one_by_one[4],
        "error[x]: y\n --> <unknown>:1:1\n  |\n1 |\n  | ^"
    );
}

#[test]
fn macro_too_large_for_the_whole_set() {
    // 30,000 items: each rule expands to 90,003 nodes, under the rule cap; the 23rd
    // rule takes the set past 2,000,000.
    let mut text = String::from("list big = [");
    text.push_str(&vec!["\"x\""; 30_000].join(","));
    text.push_str("]\n");
    for i in 1..=23 {
        text.push_str(&format!(
            "rule r{i} {{ title: \"t\" severity: low attack: T1059 condition: exe in big or exe in big or exe in big }}\n"
        ));
    }
    let srcs = sources(&[("t.rules", &text)]);
    let checked = check_sources(&srcs);
    let got: Vec<(&str, usize, usize)> = checked
        .diagnostics
        .iter()
        .map(|d| {
            let l = d.location(&srcs);
            (d.code, l.line, l.column)
        })
        .collect();
    assert_eq!(got, [("macro-too-large", 24, 6)]);
    assert_eq!(
        checked.diagnostics[0].message,
        "the rule set expands to more than 2000000 nodes by rule `r23`"
    );
    assert_eq!(checked.rules.len(), 22);
}

#[test]
fn rules_that_never_or_always_match_are_warned_about() {
    let text = "rule A { title: \"a\" severity: low attack: T1059\n  condition: exe == \"a.exe\" and exe == \"B.exe\" }\nrule B { title: \"b\" severity: low attack: T1059\n  condition: user exists or not user exists }\nrule C { title: \"c\" severity: low attack: T1059\n  condition: exe == \"a.exe\" and exe in [\"A.EXE\", \"b.exe\"] }\n";
    let sources = [dsl::Source::new("s.rules", text)];
    let checked = dsl::check::check_sources(&sources);
    let found: Vec<(&str, usize, usize)> = checked
        .diagnostics
        .iter()
        .map(|d| {
            let at = d.location(&sources);
            (d.code, at.line, at.column)
        })
        .collect();
    assert_eq!(found, [("never-matches", 1, 6), ("always-matches", 3, 6)]);
    assert!(
        checked.diagnostics.iter().all(|d| !d.is_error()),
        "warnings, not errors"
    );
}

// --- file encoding ------------------------------------------------------------------

#[test]
fn a_byte_order_mark_is_not_part_of_the_text() {
    // Older Notepad starts UTF-8 files with EF BB BF.
    let text = rule("exe == \"cmd.exe\"");
    let mut bytes = "\u{FEFF}".as_bytes().to_vec();
    bytes.extend_from_slice(text.as_bytes());
    let srcs = [Source::from_bytes("bom.rules", bytes)];
    let checked = check_sources(&srcs);
    assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics);
    assert_eq!(checked.rules.len(), 1);
    // Columns on the first line count from the first real character.
    let srcs = [Source::new("bom.rules", "\u{FEFF}rule r { titel: \"t\" }")];
    let diagnostics = check_sources(&srcs).diagnostics;
    let d = diagnostics
        .iter()
        .find(|d| d.code == "unknown-key")
        .unwrap();
    assert_eq!(d.location(&srcs).column, 10);
}

#[test]
fn a_file_that_is_not_utf8_gets_the_line_and_column_of_its_first_bad_byte() {
    // "é" written by a Latin-1 editor: one byte, 0xE9, on line 2 after `condition: exe == "caf`.
    let mut bytes = rule("exe == \"caf\u{1}\"").into_bytes();
    let at = bytes.iter().position(|&b| b == 1).unwrap();
    bytes[at] = 0xE9;
    let srcs = [Source::from_bytes("latin1.rules", bytes)];
    let diagnostics = check_sources(&srcs).diagnostics;
    assert_eq!(diagnostics.len(), 1, "one error, no noise from the rest");
    let d = &diagnostics[0];
    assert_eq!((d.code, d.level), ("not-utf8", Level::Error));
    let l = d.location(&srcs);
    assert_eq!((l.line, l.column), (2, 23));
    let rendered = d.render(&srcs);
    assert!(
        rendered.starts_with(
            "error[not-utf8]: the file is not UTF-8 text: byte 0xE9 cannot be read\n --> latin1.rules:2:23\n"
        ),
        "{rendered}"
    );
    assert!(
        rendered.contains("= help: save the file as UTF-8"),
        "{rendered}"
    );
    // With a byte-order mark before it, the place is the same.
    let mut with_bom = "\u{FEFF}".as_bytes().to_vec();
    with_bom.extend(rule("exe == \"caf\u{1}\"").into_bytes());
    let at = with_bom.iter().position(|&b| b == 1).unwrap();
    with_bom[at] = 0xE9;
    let srcs = [Source::from_bytes("latin1.rules", with_bom)];
    let l = check_sources(&srcs).diagnostics[0].location(&srcs);
    assert_eq!((l.line, l.column), (2, 23));
}
