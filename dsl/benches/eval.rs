//! Evaluation speed: one process event against the shipped rules and against a
//! generated 1,000-rule set; compiling 10,000 rules. `cargo bench -p spawnwatch-dsl`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use dsl::{Event, Field, RuleSet, Scratch, Source, Value};

/// A process and its ancestors as plain records.
struct Tree(Vec<[Option<&'static str>; 4]>);

impl Event for Tree {
    fn value(&self, depth: u32, field: Field) -> Option<Value<'_>> {
        let p = self.0.get(depth as usize)?;
        let text = |i: usize| p[i].map(Value::Text);
        match field {
            Field::Exe => text(0),
            Field::ImagePath => text(1),
            Field::CommandLine => text(2),
            Field::User => text(3),
            Field::Pid => Some(Value::Number(4000 + depth as u64)),
            Field::Ppid => Some(Value::Number(3000 + depth as u64)),
            Field::Hostname => Some(Value::Text("WEB01")),
            _ => None,
        }
    }

    fn ancestor_count(&self) -> u32 {
        self.0.len() as u32 - 1
    }
}

fn web_shell_event() -> Tree {
    Tree(vec![
        [
            Some("whoami.exe"),
            Some(r"C:\Windows\System32\whoami.exe"),
            Some("whoami /all"),
            Some(r"IIS APPPOOL\DefaultAppPool"),
        ],
        [
            Some("cmd.exe"),
            Some(r"C:\Windows\System32\cmd.exe"),
            Some(r#"cmd.exe /c "cd /d C:\inetpub\wwwroot & whoami /all""#),
            Some(r"IIS APPPOOL\DefaultAppPool"),
        ],
        [
            Some("w3wp.exe"),
            Some(r"C:\Windows\System32\inetsrv\w3wp.exe"),
            Some(r#"c:\windows\system32\inetsrv\w3wp.exe -ap "DefaultAppPool""#),
            Some(r"IIS APPPOOL\DefaultAppPool"),
        ],
        [
            Some("svchost.exe"),
            Some(r"C:\Windows\System32\svchost.exe"),
            Some("svchost.exe -k iissvcs"),
            Some(r"NT AUTHORITY\SYSTEM"),
        ],
    ])
}

/// `sh -c id` under a php-fpm worker under its master: SW-LNX-001 matches.
fn linux_web_shell_event() -> Tree {
    Tree(vec![
        [
            Some("dash"),
            Some("/usr/bin/dash"),
            Some("sh -c id"),
            Some("www-data"),
        ],
        [
            Some("php-fpm8.2"),
            Some("/usr/sbin/php-fpm8.2"),
            Some("php-fpm: pool www"),
            Some("www-data"),
        ],
        [
            Some("php-fpm8.2"),
            Some("/usr/sbin/php-fpm8.2"),
            Some("php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)"),
            Some("root"),
        ],
        [
            Some("systemd"),
            Some("/usr/lib/systemd/systemd"),
            Some("/sbin/init"),
            Some("root"),
        ],
    ])
}

fn benign_event() -> Tree {
    Tree(vec![
        [
            Some("conhost.exe"),
            Some(r"C:\Windows\System32\conhost.exe"),
            Some(r"\??\C:\Windows\system32\conhost.exe 0xffffffff -ForceV1"),
            Some(r"CORP\alice"),
        ],
        [
            Some("explorer.exe"),
            Some(r"C:\Windows\explorer.exe"),
            Some(r"C:\Windows\Explorer.EXE"),
            Some(r"CORP\alice"),
        ],
    ])
}

fn shipped_rules() -> Vec<Source> {
    ["webshell.rules", "webshell-linux.rules"]
        .iter()
        .map(|name| {
            let path = format!("{}/../rules/{name}", env!("CARGO_MANIFEST_DIR"));
            Source::new(
                name.to_string(),
                std::fs::read_to_string(&path).expect("shipped rules"),
            )
        })
        .collect()
}

/// `n` rules in the shape real rule sets have: a parent list, a child, a command-line
/// substring, sometimes a wildcard path or a regex.
fn generated_rules(n: usize) -> Source {
    let mut text = String::new();
    for i in 0..n {
        let test = match i % 4 {
            0 => format!(r#"command_line contains "-flag{i}""#),
            1 => format!(r#"image_path == "C:\\Program Files\\vendor{i}\\*.exe""#),
            2 => format!(r#"command_line regex "tool{i}\s+--(x|y)""#),
            _ => format!(r#"user startswith "CORP\\svc{i}""#),
        };
        text.push_str(&format!(
            "rule GEN-{i} {{ title: \"generated {i}\" severity: low attack: T1059\n  condition: parent_exe in [\"srv{i}.exe\", \"w3wp.exe\", \"httpd.exe\"] and exe == \"child{i}.exe\" and {test} }}\n"
        ));
    }
    Source::new("generated.rules", text)
}

fn load(sources: &[Source]) -> RuleSet {
    match dsl::load(sources) {
        Ok(loaded) => loaded.rules,
        Err(d) => panic!("bench rules do not load: {d:?}"),
    }
}

fn bench_evaluate(c: &mut Criterion) {
    let cases = [
        ("shipped", load(&shipped_rules())),
        ("generated-1000", load(&[generated_rules(1000)])),
    ];
    for (name, rules) in &cases {
        for (event_name, event) in [
            ("web-shell", web_shell_event()),
            ("benign", benign_event()),
            ("linux-web-shell", linux_web_shell_event()),
        ] {
            let mut scratch = Scratch::new();
            let mut out = Vec::new();
            c.bench_function(&format!("evaluate/{name}/{event_name}"), |b| {
                b.iter(|| {
                    out.clear();
                    rules.evaluate(black_box(&event), &mut scratch, &mut out);
                    black_box(out.len())
                })
            });
        }
    }
}

fn bench_compile(c: &mut Criterion) {
    let source = [generated_rules(10_000)];
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    group.bench_function("generated-10000", |b| {
        b.iter(|| black_box(load(&source).len()))
    });
    group.finish();
}

criterion_group!(benches, bench_evaluate, bench_compile);
criterion_main!(benches);
