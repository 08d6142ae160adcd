//! The README's command examples, run and compared with what they show, so that they
//! cannot drift from what the program prints.
//!
//! In README.md:
//! - a ```` ```console ```` block is a session: each `$ spawnwatch ARGS` line is run (in
//!   a scratch folder that sees the workspace's files and `../shared`), followed by
//!   what it prints, stdout and stderr merged as a terminal shows them; a `? CODE` line
//!   right after the command gives its exit code when it is not 0 (trycmd's notation);
//! - in that output, `...` on a line of its own stands for any lines and `[..]` for
//!   any text within a line (snapbox's elisions): timings, rates, long JSON;
//! - a ```` ```text file=NAME ```` block is a file the reader is asked to write: its
//!   text is written to NAME in the scratch folder before the commands after it run.
//!
//! A command reading `../shared` is skipped (with a message) when the recordings are
//! missing, outside CI (see `common::needs`).
//!
//! When the program's output changes on purpose, rewrite the README's outputs with
//! `SNAPSHOTS=overwrite cargo test -p spawnwatch --test readme` and review the diff:
//! elisions are kept where the text around them still matches.
//!
//! Why a test of our own over `trycmd` (which clap and cargo use): trycmd reads every
//! unlabelled ```` ``` ```` block of a Markdown file as a test case (the README's diagrams
//! and rule snippets would all need labels, and any new one would break the test), runs
//! Markdown cases in the test's working folder (the package, while the README's paths
//! are the workspace's), can neither write the files the README shows nor skip one
//! example when `../shared` is missing. The matching, elisions, diffs and the
//! elision-keeping overwrite are snapbox's, trycmd's own engine.
#![cfg(unix)]

mod common;

use snapbox::assert::Action;
use snapbox::{Assert, Data};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// One `$ spawnwatch ...` example: where it is and what it should print.
struct Example {
    /// 1-based line of the `$` line.
    line: usize,
    args: Vec<String>,
    status: i32,
    /// The lines of its output, without the block's indentation.
    expected: Vec<String>,
    /// The README lines (0-based, end excluded) of the `? CODE` line if any and of
    /// the output: what an overwrite replaces.
    replace: std::ops::Range<usize>,
    indent: String,
}

/// What the README holds, in order.
enum Step {
    File { name: String, text: String },
    Run(Example),
}

/// The README's files and examples, or what is wrong with a console block.
fn steps(readme: &str) -> Result<Vec<Step>, String> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        i += 1;
        if !trimmed.starts_with("```") {
            continue;
        }
        let indent = line[..line.len() - trimmed.len()].to_string();
        let fence: String = trimmed.chars().take_while(|&c| c == '`').collect();
        let info: Vec<&str> = trimmed[fence.len()..].split_whitespace().collect();
        let start = i;
        while i < lines.len() && !lines[i].trim_start().starts_with(fence.as_str()) {
            i += 1;
        }
        let body: Vec<String> = lines[start..i]
            .iter()
            .map(|l| l.strip_prefix(indent.as_str()).unwrap_or(l).to_string())
            .collect();
        i += 1;
        match info.as_slice() {
            ["console", ..] => {
                steps.extend(examples(&body, start, &indent)?.into_iter().map(Step::Run))
            }
            [_, file] if file.starts_with("file=") => steps.push(Step::File {
                name: file["file=".len()..].to_string(),
                text: body.iter().map(|l| format!("{l}\n")).collect(),
            }),
            _ => {}
        }
    }
    Ok(steps)
}

/// The examples of a console block whose first line is README line `first` (0-based).
fn examples(body: &[String], first: usize, indent: &str) -> Result<Vec<Example>, String> {
    let mut examples: Vec<Example> = Vec::new();
    for (n, line) in body.iter().enumerate() {
        let at = first + n;
        if let Some(command) = line.strip_prefix("$ ") {
            let args: Vec<String> = command.split_whitespace().map(String::from).collect();
            if args.first().map(String::as_str) != Some("spawnwatch") {
                return Err(format!("README.md:{}: only `spawnwatch` commands can be checked; show other commands in a ```sh block", at + 1));
            }
            if command.contains(['"', '\'', '\\', '*']) {
                return Err(format!(
                    "README.md:{}: no quoting or globs in a checked command",
                    at + 1
                ));
            }
            examples.push(Example {
                line: at + 1,
                args: args[1..].to_vec(),
                status: 0,
                expected: Vec::new(),
                replace: at + 1..at + 1,
                indent: indent.to_string(),
            });
            continue;
        }
        let Some(example) = examples.last_mut() else {
            return Err(format!(
                "README.md:{}: a console block starts with `$ spawnwatch ...`",
                at + 1
            ));
        };
        match line.strip_prefix("? ") {
            Some(code) if example.expected.is_empty() && example.status == 0 => {
                example.status = code
                    .parse()
                    .map_err(|_| format!("README.md:{}: `? CODE` takes a number", at + 1))?;
            }
            _ => example.expected.push(line.clone()),
        }
        example.replace.end = at + 1;
    }
    Ok(examples)
}

/// A scratch folder `work/` seeing the workspace's files, beside `shared` (the
/// recordings), as `../shared` is beside the workspace.
fn scratch() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let work = root.path().join("work");
    std::fs::create_dir(&work).unwrap();
    for entry in std::fs::read_dir(workspace()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name != "target" && !name.to_string_lossy().starts_with('.') {
            std::os::unix::fs::symlink(entry.path(), work.join(&name)).unwrap();
        }
    }
    let shared = common::needs::shared_dir();
    if shared.exists() {
        std::os::unix::fs::symlink(shared, root.path().join("shared")).unwrap();
    }
    (root, work)
}

/// Runs the example in `dir`: exit code and output, stdout and stderr in the order
/// they were written (one pipe for both, as on a terminal).
fn run(example: &Example, dir: &Path) -> (i32, String) {
    let (mut reader, writer) = std::io::pipe().unwrap();
    let mut command = common::spawnwatch();
    command
        .args(&example.args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(writer.try_clone().unwrap())
        .stderr(writer);
    let mut child = command.spawn().unwrap();
    drop(command); // its copies of the pipe's writer, or the read below never ends
    let mut output = String::new();
    reader.read_to_string(&mut output).unwrap();
    let status = child.wait().unwrap();
    (status.code().unwrap_or(-1), output)
}

/// A command that reads the recordings runs only when they are there (see `needs`).
fn recordings_present(example: &Example) -> bool {
    example
        .args
        .iter()
        .filter_map(|a| a.strip_prefix("../shared/"))
        .all(|relative| common::needs::shared(relative).is_some())
}

#[test]
fn the_readme_examples_print_what_the_readme_shows() {
    let path = workspace().join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let steps = steps(&readme).unwrap_or_else(|e| panic!("{e}"));
    let assert = Assert::new().normalize_paths(false).action_env("SNAPSHOTS");
    let overwrite = assert.selected_action() == Action::Overwrite;
    let (_root, dir) = scratch();
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut rewrites: Vec<(std::ops::Range<usize>, Vec<String>)> = Vec::new();
    for step in &steps {
        let example = match step {
            Step::File { name, text } => {
                std::fs::write(dir.join(name), text).unwrap();
                continue;
            }
            Step::Run(example) => example,
        };
        if !recordings_present(example) {
            continue;
        }
        checked += 1;
        let (status, output) = run(example, &dir);
        let output = output.strip_suffix('\n').unwrap_or(&output).to_string();
        let expected = Data::text(example.expected.join("\n"));
        let (actual, expected) = assert.normalize(Data::text(output), expected);
        if actual == expected && status == example.status {
            continue;
        }
        let command = format!(
            "README.md:{}: $ spawnwatch {}",
            example.line,
            example.args.join(" ")
        );
        if overwrite {
            let text = actual.render().unwrap_or_default();
            let status_line = (status != 0).then(|| format!("? {status}"));
            let lines = status_line
                .into_iter()
                .chain(text.lines().map(String::from))
                .map(|l| format!("{}{l}", example.indent).trim_end().to_string())
                .collect();
            rewrites.push((example.replace.clone(), lines));
            eprintln!("rewritten: {command}");
            continue;
        }
        let mut failure = format!("{command}\n");
        if status != example.status {
            failure.push_str(&format!(
                "exit code {status}, the README says {}\n",
                example.status
            ));
        }
        if let Err(diff) = assert.try_eq(Some(&"spawnwatch"), actual, expected) {
            failure.push_str(&diff.to_string());
        }
        failures.push(failure);
    }
    if !rewrites.is_empty() {
        let mut lines: Vec<String> = readme.lines().map(String::from).collect();
        for (range, new) in rewrites.into_iter().rev() {
            lines.splice(range, new);
        }
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    }
    assert!(
        failures.is_empty(),
        "{} README example(s) differ from what the program prints:\n\n{}\nIf the program is right, update the README with\n  SNAPSHOTS=overwrite cargo test -p spawnwatch --test readme\nand review the diff.",
        failures.len(),
        failures.join("\n")
    );
    // A README without console blocks would pass with nothing checked.
    let total = steps.iter().filter(|s| matches!(s, Step::Run(_))).count();
    assert!(
        total >= 4,
        "only {total} checked examples found in README.md"
    );
    eprintln!("{checked} of {total} README examples checked");
}
