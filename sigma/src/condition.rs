//! A detection's `condition`: `and`, `or`, `not`, parentheses, search identifiers, and
//! the quantifiers `1 of X*`, `any of X*`, `all of X*`, `N of X*` over identifiers whose
//! names match a pattern (`*` anywhere) or over `them` (every identifier not starting
//! with `_`). Precedence, loosest first: `or`, `and`, `not`, `x of`, parentheses.
//! Keywords are read in any case.

use crate::cond::{and, not, or};
use dsl::ir::Cond;
use std::ops::Range;

/// The most `and`s an `N of` may expand to (it is an `or` of every choice of N).
const MAX_CHOICES: usize = 1000;

/// What went wrong in a condition, and where in its text (bytes); `unsupported` when
/// it is valid Sigma that this converter does not run (aggregations).
#[derive(Debug, PartialEq)]
pub(crate) struct ConditionError {
    pub(crate) unsupported: bool,
    pub(crate) message: String,
    pub(crate) at: Range<usize>,
}

fn invalid(message: impl Into<String>, at: Range<usize>) -> ConditionError {
    ConditionError {
        unsupported: false,
        message: message.into(),
        at,
    }
}

/// Parses `text` and resolves its identifiers among `identifiers` (name and
/// condition, in the order the detection defines them).
pub(crate) fn condition(
    text: &str,
    identifiers: &[(String, Cond)],
) -> Result<Cond, ConditionError> {
    if let Some(bar) = text.find('|') {
        return Err(ConditionError {
            unsupported: true,
            message: "aggregations (`| count() ...`) are not supported: use a correlation engine"
                .into(),
            at: bar..text.len(),
        });
    }
    let (tokens, places) = tokens(text);
    let mut p = Parser {
        tokens: &tokens,
        places: &places,
        end: text.len(),
        at: 0,
        identifiers,
        depth: 0,
    };
    let cond = p.or()?;
    match p.tokens.get(p.at) {
        None => Ok(cond),
        Some(t) => Err(invalid(
            format!("unexpected `{t}` in the condition"),
            p.place(p.at, p.at),
        )),
    }
}

/// The words and parentheses of `text`, and where each is.
fn tokens(text: &str) -> (Vec<String>, Vec<Range<usize>>) {
    let mut tokens = Vec::new();
    let mut places = Vec::new();
    let mut word: Option<usize> = None;
    for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
        if c == '(' || c == ')' || c.is_whitespace() {
            if let Some(start) = word.take() {
                tokens.push(text[start..i].to_string());
                places.push(start..i);
            }
            if !c.is_whitespace() {
                tokens.push(c.to_string());
                places.push(i..i + 1);
            }
        } else if word.is_none() {
            word = Some(i);
        }
    }
    (tokens, places)
}

struct Parser<'a> {
    tokens: &'a [String],
    places: &'a [Range<usize>],
    /// The text's length: where an error about a missing last token points.
    end: usize,
    at: usize,
    identifiers: &'a [(String, Cond)],
    depth: usize,
}

/// Parentheses and `not`s nest at most this deep.
const MAX_DEPTH: usize = 64;

impl Parser<'_> {
    /// Where tokens `first` to `last` are in the text (the end, past the last token).
    fn place(&self, first: usize, last: usize) -> Range<usize> {
        let start = self.places.get(first).map_or(self.end, |r| r.start);
        let end = self.places.get(last).map_or(self.end, |r| r.end);
        start..end.max(start)
    }

    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn is_word(&self, word: &str) -> bool {
        self.peek().is_some_and(|t| t.eq_ignore_ascii_case(word))
    }

    fn or(&mut self) -> Result<Cond, ConditionError> {
        let mut items = vec![self.and()?];
        while self.is_word("or") {
            self.at += 1;
            items.push(self.and()?);
        }
        Ok(or(items))
    }

    fn and(&mut self) -> Result<Cond, ConditionError> {
        let mut items = vec![self.not()?];
        while self.is_word("and") {
            self.at += 1;
            items.push(self.not()?);
        }
        Ok(and(items))
    }

    fn not(&mut self) -> Result<Cond, ConditionError> {
        if !self.is_word("not") {
            return self.primary();
        }
        self.at += 1;
        self.nested(|p| p.not()).map(not)
    }

    fn nested(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<Cond, ConditionError>,
    ) -> Result<Cond, ConditionError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(invalid(
                format!("the condition nests more than {MAX_DEPTH} levels deep"),
                self.place(self.at - 1, self.at - 1),
            ));
        }
        let result = f(self);
        self.depth -= 1;
        result
    }

    fn primary(&mut self) -> Result<Cond, ConditionError> {
        let Some(token) = self.peek().map(str::to_string) else {
            return Err(invalid(
                "the condition ends where a search identifier was expected",
                self.end..self.end,
            ));
        };
        let here = self.place(self.at, self.at);
        self.at += 1;
        if token == "(" {
            let inner = self.nested(|p| p.or())?;
            if self.peek() != Some(")") {
                return Err(invalid("a `(` in the condition is not closed", here));
            }
            self.at += 1;
            return Ok(inner);
        }
        if token == ")"
            || ["and", "or", "not", "of"]
                .iter()
                .any(|k| k.eq_ignore_ascii_case(&token))
        {
            return Err(invalid(
                format!("unexpected `{token}` in the condition"),
                here,
            ));
        }
        if self.is_word("of") {
            self.at += 1;
            return self.quantified(&token);
        }
        self.identifiers
            .iter()
            .find(|(name, _)| *name == token)
            .map(|(_, c)| c.clone())
            .ok_or_else(|| {
                invalid(
                    format!("the condition names `{token}`, which the detection does not define"),
                    here,
                )
            })
    }

    /// `all of X`, `1 of X`, `any of X`, `N of X`, after `of`.
    fn quantified(&mut self, count: &str) -> Result<Cond, ConditionError> {
        let Some(target) = self.peek().map(str::to_string) else {
            return Err(invalid(
                format!("`{count} of` needs a pattern or `them`"),
                self.place(self.at - 2, self.at - 1),
            ));
        };
        self.at += 1;
        let whole = self.place(self.at - 3, self.at - 1);
        let them = target.eq_ignore_ascii_case("them");
        let chosen: Vec<Cond> = self
            .identifiers
            .iter()
            .filter(|(name, _)| {
                if them {
                    !name.starts_with('_')
                } else {
                    glob(&target, name)
                }
            })
            .map(|(_, c)| c.clone())
            .collect();
        if chosen.is_empty() {
            return Err(invalid(
                format!("`{count} of {target}` matches no search identifier"),
                whole,
            ));
        }
        if count.eq_ignore_ascii_case("all") {
            return Ok(and(chosen));
        }
        let n = if count.eq_ignore_ascii_case("any") {
            1
        } else {
            count
                .parse::<usize>()
                .ok()
                .filter(|&n| n >= 1)
                .ok_or_else(|| {
                    invalid(
                        format!("`{count} of`: expected `all`, `any` or a number from 1"),
                        self.place(self.at - 3, self.at - 3),
                    )
                })?
        };
        at_least(n, chosen, whole)
    }
}

/// At least `n` of `items` hold: an `or` of every choice of `n` of them.
fn at_least(n: usize, items: Vec<Cond>, at: Range<usize>) -> Result<Cond, ConditionError> {
    if n == 1 {
        return Ok(or(items));
    }
    if n > items.len() {
        return Err(invalid(
            format!("`{n} of` with only {} search identifiers", items.len()),
            at,
        ));
    }
    let mut choices = Vec::new();
    let mut pick: Vec<usize> = (0..n).collect();
    loop {
        if choices.len() >= MAX_CHOICES {
            return Err(ConditionError {
                unsupported: true,
                message: format!(
                    "`{n} of` these {} identifiers has too many combinations",
                    items.len()
                ),
                at,
            });
        }
        choices.push(and(pick.iter().map(|&i| items[i].clone()).collect()));
        // The next combination in lexicographic order.
        let Some(k) = (0..n).rev().find(|&k| pick[k] < items.len() - n + k) else {
            break;
        };
        pick[k] += 1;
        for j in k + 1..n {
            pick[j] = pick[j - 1] + 1;
        }
    }
    Ok(or(choices))
}

/// Whether `name` matches `pattern`, where `*` is any run of characters.
fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsl::{Field, FieldRef};

    /// A distinct condition per identifier: `exists` of a different field.
    fn ids(names: &[&str]) -> Vec<(String, Cond)> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    n.to_string(),
                    Cond::Exists(FieldRef {
                        field: Field::ALL[i],
                        depth: 0,
                    }),
                )
            })
            .collect()
    }

    fn c(ids: &[(String, Cond)], name: &str) -> Cond {
        ids.iter().find(|(n, _)| n == name).unwrap().1.clone()
    }

    #[test]
    fn precedence_is_or_then_and_then_not() {
        let i = ids(&["a", "b", "c"]);
        assert_eq!(
            condition("a or b and not c", &i).unwrap(),
            Cond::Or(vec![
                c(&i, "a"),
                Cond::And(vec![c(&i, "b"), Cond::Not(Box::new(c(&i, "c")))])
            ])
        );
        assert_eq!(
            condition("(a or b) AND c", &i).unwrap(),
            Cond::And(vec![Cond::Or(vec![c(&i, "a"), c(&i, "b")]), c(&i, "c")])
        );
    }

    #[test]
    fn quantifiers_over_patterns_and_them() {
        let i = ids(&["selection_img", "selection_cli", "filter_main", "_hidden"]);
        assert_eq!(
            condition("all of selection_* and not 1 of filter*", &i).unwrap(),
            Cond::And(vec![
                c(&i, "selection_img"),
                c(&i, "selection_cli"),
                Cond::Not(Box::new(c(&i, "filter_main")))
            ])
        );
        assert_eq!(
            condition("1 of them", &i).unwrap(),
            Cond::Or(vec![
                c(&i, "selection_img"),
                c(&i, "selection_cli"),
                c(&i, "filter_main")
            ]),
            "`them` leaves out names starting with `_`"
        );
        assert_eq!(
            condition("any of *_cli", &i).unwrap(),
            c(&i, "selection_cli")
        );
        assert_eq!(
            condition("all of them", &i).unwrap(),
            Cond::And(vec![
                c(&i, "selection_img"),
                c(&i, "selection_cli"),
                c(&i, "filter_main")
            ])
        );
    }

    #[test]
    fn n_of_is_any_choice_of_n() {
        let i = ids(&["a", "b", "c"]);
        let two = condition("2 of them", &i).unwrap();
        let Cond::Or(choices) = two else {
            panic!("{two:?}")
        };
        assert_eq!(choices.len(), 3);
        assert_eq!(choices[0], Cond::And(vec![c(&i, "a"), c(&i, "b")]));
        assert_eq!(choices[2], Cond::And(vec![c(&i, "b"), c(&i, "c")]));
        assert_eq!(
            condition("3 of them", &i).unwrap(),
            Cond::And(vec![c(&i, "a"), c(&i, "b"), c(&i, "c")])
        );
        assert!(condition("4 of them", &i).is_err());
    }

    #[test]
    fn mistakes_and_aggregations() {
        let i = ids(&["a"]);
        assert!(condition("a and", &i)
            .unwrap_err()
            .message
            .contains("expected"));
        assert!(condition("b", &i)
            .unwrap_err()
            .message
            .contains("does not define"));
        assert!(condition("(a", &i)
            .unwrap_err()
            .message
            .contains("not closed"));
        assert!(condition("a)", &i)
            .unwrap_err()
            .message
            .contains("unexpected"));
        assert!(condition("1 of x*", &i)
            .unwrap_err()
            .message
            .contains("matches no"));
        let agg = condition("a | count() > 5", &i).unwrap_err();
        assert!(agg.unsupported);
        let deep = format!("{}a{}", "(".repeat(100), ")".repeat(100));
        assert!(condition(&deep, &i).unwrap_err().message.contains("deep"));
    }

    #[test]
    fn each_mistake_points_at_its_words() {
        let i = ids(&["selection", "filter_main", "é"]);
        let at = |text: &str| {
            let e = condition(text, &i).unwrap_err();
            text[e.at].to_string()
        };
        assert_eq!(at("selection and not filter"), "filter");
        assert_eq!(at("selection and not 1 of filter_x*"), "1 of filter_x*");
        assert_eq!(at("selection and (filter_main"), "(");
        assert_eq!(at("selection)"), ")");
        assert_eq!(at("selection and or filter_main"), "or");
        assert_eq!(at("two of them"), "two");
        assert_eq!(at("selection | count() > 5"), "| count() > 5");
        assert_eq!(condition("selection and", &i).unwrap_err().at, 13..13);
        assert_eq!(
            at("é and nope"),
            "nope",
            "byte offsets past a multi-byte letter"
        );
    }
}
