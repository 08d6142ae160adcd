//! Building conditions in one canonical shape: `and`s and `or`s flat and never of one
//! part, text tests of one field and operation in an `or` merged into one test with
//! several patterns (one lookup instead of many, and a shorter printed rule).

use dsl::ir::{Cond, TextTest};

pub(crate) fn or(items: Vec<Cond>) -> Cond {
    let mut out: Vec<Cond> = Vec::with_capacity(items.len());
    for item in items.into_iter().flat_map(|c| match c {
        Cond::Or(inner) => inner,
        c => vec![c],
    }) {
        if let Cond::Text(t) = &item {
            let same = out.iter_mut().find_map(|c| match c {
                Cond::Text(o) if o.field == t.field && o.op == t.op => Some(o),
                _ => None,
            });
            if let Some(existing) = same {
                merge(existing, t);
                continue;
            }
        }
        if !out.contains(&item) {
            out.push(item);
        }
    }
    single_or(out, Cond::Or)
}

pub(crate) fn and(items: Vec<Cond>) -> Cond {
    let mut out: Vec<Cond> = Vec::with_capacity(items.len());
    for item in items.into_iter().flat_map(|c| match c {
        Cond::And(inner) => inner,
        c => vec![c],
    }) {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    single_or(out, Cond::And)
}

pub(crate) fn not(c: Cond) -> Cond {
    match c {
        Cond::Not(inner) => *inner,
        c => Cond::Not(Box::new(c)),
    }
}

fn merge(into: &mut TextTest, from: &TextTest) {
    for p in &from.patterns {
        if !into.patterns.contains(p) {
            into.patterns.push(p.clone());
        }
    }
}

fn single_or(mut items: Vec<Cond>, join: fn(Vec<Cond>) -> Cond) -> Cond {
    if items.len() == 1 {
        items.pop().expect("one item")
    } else {
        join(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsl::ir::{Pattern, TextOp};
    use dsl::{Field, FieldRef};

    fn contains(field: Field, text: &str) -> Cond {
        Cond::Text(TextTest {
            field: FieldRef { field, depth: 0 },
            op: TextOp::Contains,
            patterns: vec![Pattern {
                text: text.into(),
                case_sensitive: false,
            }],
        })
    }

    #[test]
    fn alternatives_of_one_field_become_one_test() {
        let merged = or(vec![
            contains(Field::CommandLine, "a"),
            Cond::Or(vec![
                contains(Field::User, "x"),
                contains(Field::CommandLine, "b"),
            ]),
            contains(Field::CommandLine, "a"),
        ]);
        let Cond::Or(items) = merged else {
            panic!("{merged:?}")
        };
        assert_eq!(items.len(), 2);
        let Cond::Text(t) = &items[0] else { panic!() };
        let texts: Vec<&str> = t.patterns.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(texts, ["a", "b"]);
    }

    #[test]
    fn one_part_is_the_part_and_not_not_is_gone() {
        let a = contains(Field::CommandLine, "a");
        assert_eq!(and(vec![a.clone()]), a);
        assert_eq!(and(vec![Cond::And(vec![a.clone()]), a.clone()]), a);
        assert_eq!(not(not(a.clone())), a);
    }
}
