//! SigmaHQ's process-creation library (`../shared/sigma/rules`): every rule is valid
//! Sigma to the converter, loads or is skipped for a reason it names, and every rule
//! that loads prints as rule-language text that reads back to the same rule.

use std::collections::BTreeMap;
use std::path::PathBuf;

#[path = "../../tests/common/needs.rs"]
mod needs;

/// (file name, text) of every rule of a product, in name order; `None` (the test
/// skipped, or failed under CI) without the shared folder.
fn files(product: &str) -> Option<Vec<(String, String)>> {
    let dir = needs::shared(&format!("sigma/rules/{product}/process_creation"))?;
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the shared Sigma rules")
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let files = paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), text)
        })
        .collect();
    Some(files)
}

struct Tally {
    loaded: Vec<sigma::Converted>,
    skipped: BTreeMap<String, usize>,
    errors: Vec<String>,
}

fn convert(product: &str) -> Option<Tally> {
    let mut tally = Tally {
        loaded: Vec::new(),
        skipped: BTreeMap::new(),
        errors: Vec::new(),
    };
    for (name, text) in files(product)? {
        let result = sigma::convert_file(0, &text, &sigma::Options::default());
        for d in result.diagnostics.iter().filter(|d| d.is_error()) {
            tally.errors.push(format!("{name}: {}", d.message));
        }
        for s in result.skipped {
            *tally.skipped.entry(s.reason).or_default() += 1;
        }
        tally.loaded.extend(result.rules);
    }
    Some(tally)
}

/// Every rule of `product` valid, and `loaded` plus the `skipped` ones (by reason)
/// make them all.
fn assert_accounted(product: &str, loaded: usize, skipped: &[(&str, usize)]) {
    let Some(tally) = convert(product) else {
        return;
    };
    assert_eq!(tally.errors, Vec::<String>::new());
    let expected: BTreeMap<String, usize> =
        skipped.iter().map(|(r, n)| (r.to_string(), *n)).collect();
    assert_eq!((tally.loaded.len(), tally.skipped), (loaded, expected));
}

#[test]
fn every_windows_rule_loads_but_one_whose_field_no_process_event_has() {
    assert_accounted("windows", 1182, &[("field `Provider_Name`", 1)]);
}

#[test]
fn every_linux_rule_loads() {
    assert_accounted("linux", 122, &[]);
}

#[test]
fn every_loaded_rule_prints_and_reads_back_the_same() {
    let mut failures = Vec::new();
    for product in ["windows", "linux"] {
        let Some(tally) = convert(product) else {
            return;
        };
        for converted in tally.loaded {
            let rule = converted.rule;
            let text = match dsl::print::print_rule(&rule) {
                Ok(text) => text,
                Err(e) => {
                    failures.push(format!("{}: cannot print: {e}", rule.meta.id));
                    continue;
                }
            };
            let sources = [dsl::Source::new("printed.rules", text.clone())];
            let checked = dsl::check::check_sources(&sources);
            let errors: Vec<String> = checked
                .diagnostics
                .iter()
                .filter(|d| d.is_error())
                .map(|d| d.render(&sources))
                .collect();
            if !errors.is_empty() {
                failures.push(format!("{}:\n{text}\n{}", rule.meta.id, errors.join("\n")));
                continue;
            }
            let mut back = checked.rules.into_iter().next().expect("one rule");
            back.meta.span = rule.meta.span;
            if back != rule {
                failures.push(format!("{}: reads back differently:\n{text}", rule.meta.id));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n{} failures",
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        failures.len()
    );
}
