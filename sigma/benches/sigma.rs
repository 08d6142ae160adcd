//! SigmaHQ's Windows process-creation rules in spawnwatch's engine: converting and
//! compiling them all (no file reading), and one process event against them.
//! `cargo bench -p spawnwatch-sigma`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use dsl::{Event, Field, RuleSet, Scratch, Value};

/// A process and its ancestors, each as (field, value) pairs.
struct Tree(Vec<Vec<(Field, &'static str)>>);

impl Event for Tree {
    fn value(&self, depth: u32, field: Field) -> Option<Value<'_>> {
        let level = self.0.get(depth as usize)?;
        level
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, v)| Value::Text(v))
    }

    fn ancestor_count(&self) -> u32 {
        self.0.len() as u32 - 1
    }
}

fn process(
    image: &'static str,
    exe: &'static str,
    command_line: &'static str,
    user: &'static str,
) -> Vec<(Field, &'static str)> {
    vec![
        (Field::ImagePath, image),
        (Field::Exe, exe),
        (Field::CommandLine, command_line),
        (Field::User, user),
        (Field::IntegrityLevel, "High"),
        (
            Field::CurrentWorkingDirectory,
            r"C:\Windows\System32\inetsrv\",
        ),
    ]
}

fn web_shell_event() -> Tree {
    let mut whoami = process(
        r"C:\Windows\System32\whoami.exe",
        "whoami.exe",
        "whoami /all",
        r"IIS APPPOOL\DefaultAppPool",
    );
    whoami.push((Field::OriginalFileName, "whoami.exe"));
    whoami.push((
        Field::Description,
        "whoami - displays logged on user information",
    ));
    Tree(vec![
        whoami,
        process(
            r"C:\Windows\System32\cmd.exe",
            "cmd.exe",
            r#"cmd.exe /c "cd /d C:\inetpub\wwwroot & whoami /all""#,
            r"IIS APPPOOL\DefaultAppPool",
        ),
        process(
            r"C:\Windows\System32\inetsrv\w3wp.exe",
            "w3wp.exe",
            r#"c:\windows\system32\inetsrv\w3wp.exe -ap "DefaultAppPool""#,
            r"IIS APPPOOL\DefaultAppPool",
        ),
    ])
}

fn benign_event() -> Tree {
    let mut conhost = process(
        r"C:\Windows\System32\conhost.exe",
        "conhost.exe",
        r"\??\C:\Windows\system32\conhost.exe 0xffffffff -ForceV1",
        r"CORP\alice",
    );
    conhost.push((Field::OriginalFileName, "CONHOST.EXE"));
    Tree(vec![
        conhost,
        process(
            r"C:\Windows\explorer.exe",
            "explorer.exe",
            r"C:\Windows\Explorer.EXE",
            r"CORP\alice",
        ),
    ])
}

fn sigma_texts() -> Vec<String> {
    let dir = format!(
        "{}/../../shared/sigma/rules/windows/process_creation",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("the shared Sigma rules")
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

fn convert(texts: &[String]) -> Vec<dsl::ir::CheckedRule> {
    let options = sigma::Options::default();
    texts
        .iter()
        .enumerate()
        .flat_map(|(i, t)| sigma::convert_file(i, t, &options).rules)
        .map(|c| c.rule)
        .collect()
}

fn benches(c: &mut Criterion) {
    let texts = sigma_texts();
    let rules = convert(&texts);
    let set = RuleSet::compile(&rules);
    let mut group = c.benchmark_group("sigma");
    group.sample_size(10);
    group.bench_function("convert-and-compile-windows", |b| {
        b.iter(|| black_box(RuleSet::compile(&convert(&texts))))
    });
    group.bench_function("compile-windows", |b| {
        b.iter(|| black_box(RuleSet::compile(&rules)))
    });
    group.finish();
    let mut scratch = Scratch::new();
    let mut out = Vec::new();
    for (name, event) in [("web-shell", web_shell_event()), ("benign", benign_event())] {
        c.bench_function(&format!("sigma/evaluate/{name}"), |b| {
            b.iter(|| {
                out.clear();
                set.evaluate(black_box(&event), &mut scratch, &mut out);
                black_box(out.len())
            })
        });
    }
    out.clear();
    set.evaluate(&web_shell_event(), &mut scratch, &mut out);
    let ids: Vec<&str> = out.iter().map(|id| set.meta(*id).title.as_str()).collect();
    eprintln!("web shell event matches {} rules: {ids:?}", ids.len());
}

criterion_group!(group, benches);
criterion_main!(group);
