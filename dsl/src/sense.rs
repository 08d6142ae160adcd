//! Conditions that evidently never hold, or always hold: a rule that can never fire, or
//! fires on every process, is almost surely a mistake, so `check` warns about it. The
//! analysis is structural (it does not try every value) and errs on the side of silence.

use crate::compile::{has_wildcard, unescape};
use crate::ir::{Cond, TextOp, TextTest};
use std::collections::HashSet;

/// Why `cond` can hold for no event, when that is evident.
pub fn never(cond: &Cond) -> Option<String> {
    match cond {
        Cond::And(items) => items
            .iter()
            .find_map(never)
            .or_else(|| contradiction(items)),
        Cond::Or(items) if !items.is_empty() => {
            let reasons: Option<Vec<String>> = items.iter().map(never).collect();
            reasons.map(|r| r.join("; and "))
        }
        Cond::Not(inner) => always(inner),
        Cond::Ancestor { body, .. } => never(body),
        _ => None,
    }
}

/// Why `cond` holds for every event, when that is evident.
pub fn always(cond: &Cond) -> Option<String> {
    match cond {
        Cond::Or(items) => items.iter().find_map(always).or_else(|| {
            complementary(items).map(|x| format!("`{x}` or not `{x}` holds for every process"))
        }),
        Cond::And(items) if !items.is_empty() => {
            let reasons: Option<Vec<String>> = items.iter().map(always).collect();
            reasons.map(|r| r.join("; and "))
        }
        Cond::Not(inner) => never(inner),
        _ => None,
    }
}

/// Two conjuncts that cannot both hold.
fn contradiction(items: &[Cond]) -> Option<String> {
    if let Some(x) = complementary(items) {
        return Some(format!("`{x}` and not `{x}` cannot both hold"));
    }
    let literal_sets: Vec<(&TextTest, HashSet<String>)> = items
        .iter()
        .filter_map(|c| match c {
            Cond::Text(t)
                if t.op == TextOp::Equals
                    && t.patterns
                        .iter()
                        .all(|p| !p.case_sensitive && !has_wildcard(&p.text)) =>
            {
                Some((
                    t,
                    t.patterns
                        .iter()
                        .map(|p| crate::eval::fold_case(&unescape(&p.text)))
                        .collect(),
                ))
            }
            _ => None,
        })
        .collect();
    for (i, (a, a_values)) in literal_sets.iter().enumerate() {
        for (b, b_values) in &literal_sets[i + 1..] {
            if a.field == b.field && a_values.is_disjoint(b_values) {
                return Some(format!(
                    "`{}` and `{}` cannot both hold: a field has one value",
                    crate::explain::describe(&Cond::Text((*a).clone())),
                    crate::explain::describe(&Cond::Text((*b).clone()))
                ));
            }
        }
    }
    None
}

/// A condition that appears both as itself and negated among `items`, described.
fn complementary(items: &[Cond]) -> Option<String> {
    items.iter().find_map(|c| match c {
        Cond::Not(inner) if items.contains(inner) => Some(describe(inner)),
        _ => None,
    })
}

fn describe(cond: &Cond) -> String {
    match crate::explain::describe(cond) {
        s if s.is_empty() => "the same condition".to_string(),
        s => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Pattern;
    use crate::{Field, FieldRef};

    fn eq(field: Field, values: &[&str]) -> Cond {
        Cond::Text(TextTest {
            field: FieldRef { field, depth: 0 },
            op: TextOp::Equals,
            patterns: values
                .iter()
                .map(|v| Pattern {
                    text: v.to_string(),
                    case_sensitive: false,
                })
                .collect(),
        })
    }

    #[test]
    fn one_field_cannot_have_two_disjoint_values() {
        let c = Cond::And(vec![
            eq(Field::Exe, &["a.exe"]),
            eq(Field::Exe, &["B.exe", "c.exe"]),
        ]);
        assert!(never(&c).unwrap().contains("cannot both hold"));
        assert_eq!(
            never(&Cond::And(vec![
                eq(Field::Exe, &["a.exe"]),
                eq(Field::Exe, &["A.EXE", "c.exe"])
            ])),
            None
        );
        assert_eq!(
            never(&Cond::And(vec![
                eq(Field::Exe, &["a*"]),
                eq(Field::Exe, &["b.exe"])
            ])),
            None,
            "wildcards are not judged"
        );
        assert_eq!(
            never(&Cond::And(vec![
                eq(Field::Exe, &["a.exe"]),
                eq(Field::User, &["b"])
            ])),
            None
        );
    }

    #[test]
    fn a_condition_and_its_negation() {
        let x = eq(Field::Exe, &["a.exe"]);
        let not_x = Cond::Not(Box::new(x.clone()));
        assert!(never(&Cond::And(vec![x.clone(), not_x.clone()])).is_some());
        assert!(always(&Cond::Or(vec![x.clone(), not_x.clone()])).is_some());
        assert!(always(&Cond::Not(Box::new(Cond::And(vec![x.clone(), not_x])))).is_some());
        assert_eq!(always(&x), None);
        assert_eq!(never(&x), None);
    }
}
