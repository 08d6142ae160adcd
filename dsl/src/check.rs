//! Syntax trees of a whole rule set -> checked rules ([`crate::ir`]) plus diagnostics.
//!
//! Names are global across the files loaded together: lists, macros and rule ids are
//! resolved over the whole set, and a top-level `except RULE-ID` in any file extends
//! that rule. Every diagnostic of every file is reported in one run.
//!
//! Everything is bounded: macros and lists are resolved in dependency order without
//! recursion, cycles are reported, and a rule whose macros and lists expand past
//! [`MAX_RULE_SIZE`] nodes (or a set past [`MAX_TOTAL_SIZE`]), or nest past
//! [`MAX_EXPANDED_DEPTH`], is reported instead of being built.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::ast::{
    Compare, ExceptionDef, Expr, FieldPath, Ident, Item, ListDef, ListItem, Literal, LiteralKind,
    MacroDef, Op, Operand, RuleDef, Span,
};
use crate::diag::{locate, Diagnostic};
use crate::field::{FieldKind, FieldRef};
use crate::ir::{CheckedRule, Cond, NumberOp, NumberTest, Pattern, RuleMeta, TextOp, TextTest};
use crate::parse::{self, suggest, ItemKind, Parsed};
use crate::{Source, Summary};

/// The most nodes (conditions plus patterns) one rule may expand to, exceptions
/// included, once macros are inlined and lists flattened.
pub const MAX_RULE_SIZE: u64 = 100_000;
/// The most nodes all rules of a set may expand to together.
pub const MAX_TOTAL_SIZE: u64 = 2_000_000;
/// How deep a rule's condition may nest once macros are inlined (each macro reference
/// counts as one level).
pub const MAX_EXPANDED_DEPTH: u32 = 256;
/// `size_limit` given to `regex::RegexBuilder` for every `regex` pattern.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

pub struct Checked {
    /// The rules, in load order. Only meaningful when no diagnostic is an error.
    pub rules: Vec<CheckedRule>,
    /// Every error and warning of every file, sorted by file then position.
    pub diagnostics: Vec<Diagnostic>,
    pub summary: Summary,
}

/// Rules checked elsewhere (Sigma rules, converted from YAML), which join a set beside
/// the rule-language files', with what their conversion reported. Their spans point
/// into the sources after the rule-language files (see [`check_mixed`]).
#[derive(Debug, Default)]
pub struct Foreign {
    pub rules: Vec<CheckedRule>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses every source and checks them together as one rule set.
pub fn check_sources(sources: &[Source]) -> Checked {
    check_mixed(sources, sources.len(), Foreign::default())
}

/// Checks `sources[..dsl_files]`, rule-language files, together with `foreign` rules as
/// one set; the sources from `dsl_files` on are the files the foreign rules came from,
/// kept so that diagnostics can show where they are. Rule ids are unique across the
/// whole set, and a top-level `except` can name a foreign rule. The foreign rules come
/// after the rule-language ones, in their order.
pub fn check_mixed(sources: &[Source], dsl_files: usize, foreign: Foreign) -> Checked {
    let parsed: Vec<Parsed> = sources[..dsl_files.min(sources.len())]
        .iter()
        .enumerate()
        .map(|(i, s)| match s.encoding_error(i) {
            // The lossy text would only add errors about the replacement characters.
            Some(error) => {
                let mut nothing = parse::parse(i, "");
                nothing.diagnostics.push(error);
                nothing
            }
            None => parse::parse(i, &s.text),
        })
        .collect();
    let mut checker = Checker::new(sources, &parsed);
    checker.foreign = foreign.rules;
    checker.run();
    let Checker {
        mut diags,
        rules,
        summary,
        ..
    } = checker;
    diags.extend(foreign.diagnostics);
    for p in &parsed {
        diags.extend(p.diagnostics.iter().cloned());
    }
    let mut seen = HashSet::new();
    diags.retain(|d| {
        seen.insert((
            d.code,
            d.span.file,
            d.span.start,
            d.span.end,
            d.message.clone(),
        ))
    });
    diags.sort_by_key(|d| (d.span.file, d.span.start));
    Checked {
        rules,
        diagnostics: diags,
        summary,
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum State {
    Pending,
    Ok,
    Failed,
}

/// What a list, a macro or an expression amounts to once resolved.
#[derive(Copy, Clone, Debug)]
struct Info {
    ok: bool,
    /// Nodes once expanded (saturating).
    size: u64,
    /// Nesting once expanded.
    depth: u32,
}

impl Info {
    const FAILED: Info = Info {
        ok: false,
        size: 0,
        depth: 0,
    };

    fn leaf(size: u64, depth: u32) -> Info {
        Info {
            ok: true,
            size,
            depth,
        }
    }
}

#[derive(Copy, Clone, Debug)]
struct ListInfo {
    state: State,
    weight: u64,
    has_str: bool,
    has_num: bool,
}

/// An operand, resolved.
struct OperandInfo {
    ok: bool,
    single: bool,
    weight: u64,
    /// The first string / number in it (for a list reference: the reference).
    str_at: Option<Span>,
    num_at: Option<Span>,
}

struct Checker<'a> {
    sources: &'a [Source],
    lists: Vec<&'a ListDef>,
    macros: Vec<&'a MacroDef>,
    rule_defs: Vec<&'a RuleDef>,
    excepts: Vec<&'a ExceptionDef>,
    /// Name -> index of its first definition.
    list_by_name: HashMap<&'a str, usize>,
    macro_by_name: HashMap<&'a str, usize>,
    rule_by_id: HashMap<&'a str, usize>,
    /// Rules checked elsewhere (see [`Foreign`]), and the first of each id.
    foreign: Vec<CheckedRule>,
    foreign_by_id: HashMap<String, usize>,
    broken: HashSet<(u8, &'a str)>,
    any_broken: bool,
    list_info: Vec<ListInfo>,
    macro_state: Vec<(State, Info)>,
    used_lists: Vec<bool>,
    used_macros: Vec<bool>,
    regex_cache: HashMap<(String, bool), Option<String>>,
    first_at_cache: HashMap<(usize, usize), String>,
    /// Lists used with `regex`, whose strings are checked once at the end.
    regex_lists: Vec<usize>,
    diags: Vec<Diagnostic>,
    rules: Vec<CheckedRule>,
    summary: Summary,
}

fn kind_tag(kind: ItemKind) -> u8 {
    match kind {
        ItemKind::List => 0,
        ItemKind::Macro => 1,
        ItemKind::Rule => 2,
        ItemKind::Exception => 3,
    }
}

/// Sysmon / Sigma spellings, for did-you-mean.
const FIELD_ALIASES: [(&str, &str); 12] = [
    ("image", "image_path"),
    ("parentimage", "parent_image_path"),
    ("commandline", "command_line"),
    ("parentcommandline", "parent_command_line"),
    ("processid", "pid"),
    ("parentprocessid", "ppid"),
    ("currentdirectory", "current_working_directory"),
    ("originalfilename", "original_file_name"),
    ("integritylevel", "integrity_level"),
    ("process_name", "exe"),
    ("parent_process_name", "parent_exe"),
    ("computer", "hostname"),
];

/// The field name `name` was probably meant to be (a typo, or a Sysmon or Sigma
/// spelling), for did-you-mean hints.
pub fn field_suggestion(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    if let Some((_, to)) = FIELD_ALIASES.iter().find(|(from, _)| *from == lower) {
        return Some(to.to_string());
    }
    let names: Vec<String> = FieldRef::all_names().collect();
    suggest(name, names.iter().map(String::as_str))
}

/// The yes/no field `name` stands for as a bare condition (`listens`, `parent_listens`).
fn flag_field(name: &str) -> Option<FieldRef> {
    FieldRef::from_name(name).filter(|f| f.field.kind() == FieldKind::Flag)
}

/// `T` and four digits, optionally `.` and three digits.
pub fn is_attack_id(id: &str) -> bool {
    let b = id.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    match b.len() {
        5 => b[0] == b'T' && digits(&b[1..5]),
        9 => b[0] == b'T' && digits(&b[1..5]) && b[5] == b'.' && digits(&b[6..9]),
        _ => false,
    }
}

/// Load order (file, then position) of every macro reference in `e`.
fn macro_refs<'e>(e: &'e Expr, out: &mut Vec<&'e Ident>) {
    match e {
        Expr::And(v) | Expr::Or(v) => v.iter().for_each(|x| macro_refs(x, out)),
        Expr::Not(x, _) => macro_refs(x, out),
        Expr::Ancestor { body, .. } => macro_refs(body, out),
        Expr::Macro(id) => out.push(id),
        Expr::Compare(_) | Expr::Exists(_) => {}
    }
}

/// Kahn's algorithm over `deps` (edges to dependencies): the nodes in an order where
/// dependencies come first; nodes left out are in or behind a cycle.
fn topo_order(deps: &[Vec<usize>]) -> Vec<usize> {
    let n = deps.len();
    let mut missing = vec![0usize; n];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, d) in deps.iter().enumerate() {
        missing[i] = d.len();
        for &j in d {
            users[j].push(i);
        }
    }
    let mut queue: VecDeque<usize> = (0..n).filter(|&i| missing[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = queue.pop_front() {
        order.push(i);
        for &u in &users[i] {
            missing[u] -= 1;
            if missing[u] == 0 {
                queue.push_back(u);
            }
        }
    }
    order
}

/// The cycles among the nodes `left` (those [`topo_order`] left out), each rotated to
/// start at its smallest node. Linear: every node is walked once.
fn find_cycles(deps: &[Vec<usize>], left: &[bool]) -> Vec<Vec<usize>> {
    let n = deps.len();
    let mut visited = vec![false; n];
    let mut on_path = vec![usize::MAX; n];
    let mut cycles = Vec::new();
    for start in 0..n {
        if !left[start] || visited[start] {
            continue;
        }
        let mut path = Vec::new();
        let mut cur = start;
        loop {
            if visited[cur] {
                if on_path[cur] != usize::MAX {
                    let mut cycle = path[on_path[cur]..].to_vec();
                    let min_at = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
                    cycle.rotate_left(min_at);
                    cycles.push(cycle);
                }
                break;
            }
            visited[cur] = true;
            on_path[cur] = path.len();
            path.push(cur);
            match deps[cur].iter().find(|&&d| left[d]) {
                Some(&next) => cur = next,
                None => break,
            }
        }
        for &p in &path {
            on_path[p] = usize::MAX;
        }
    }
    cycles
}

impl<'a> Checker<'a> {
    fn new(sources: &'a [Source], parsed: &'a [Parsed]) -> Checker<'a> {
        let mut c = Checker {
            sources,
            lists: Vec::new(),
            macros: Vec::new(),
            rule_defs: Vec::new(),
            excepts: Vec::new(),
            list_by_name: HashMap::new(),
            macro_by_name: HashMap::new(),
            rule_by_id: HashMap::new(),
            foreign: Vec::new(),
            foreign_by_id: HashMap::new(),
            broken: HashSet::new(),
            any_broken: false,
            list_info: Vec::new(),
            macro_state: Vec::new(),
            used_lists: Vec::new(),
            used_macros: Vec::new(),
            regex_cache: HashMap::new(),
            first_at_cache: HashMap::new(),
            regex_lists: Vec::new(),
            diags: Vec::new(),
            rules: Vec::new(),
            summary: Summary::default(),
        };
        for p in parsed {
            for item in &p.file.items {
                match item {
                    Item::List(l) => c.lists.push(l),
                    Item::Macro(m) => c.macros.push(m),
                    Item::Rule(r) => c.rule_defs.push(r),
                    Item::Exception(e) => c.excepts.push(e),
                }
            }
            for b in &p.broken {
                c.any_broken = true;
                if let Some(name) = &b.name {
                    c.broken.insert((kind_tag(b.kind), name.name.as_str()));
                }
            }
        }
        c
    }

    fn is_broken(&self, kind: ItemKind, name: &str) -> bool {
        self.broken.contains(&(kind_tag(kind), name))
    }

    /// `file:line` of a first definition (cached: many duplicates may name one).
    fn first_at(&mut self, span: Span) -> String {
        let sources = self.sources;
        self.first_at_cache
            .entry((span.file, span.start))
            .or_insert_with(|| {
                let loc = locate(sources, span);
                format!("{}:{}", loc.file, loc.line)
            })
            .clone()
    }

    fn run(&mut self) {
        self.index_names();
        self.resolve_lists();
        self.resolve_macros();
        self.check_rules();
        self.check_regex_lists();
        self.warn_unused();
    }

    /// Each name's position in `names`, the first where it repeats. Every repeat is a
    /// `code` error about the `kind`, with `hint` given where the first one is.
    fn index_first(
        &mut self,
        names: &[&'a Ident],
        code: &'static str,
        kind: &str,
        hint: impl Fn(&str) -> String,
    ) -> HashMap<&'a str, usize> {
        let mut index: HashMap<&'a str, usize> = HashMap::new();
        for (i, name) in names.iter().enumerate() {
            let Some(&first) = index.get(name.name.as_str()) else {
                index.insert(&name.name, i);
                continue;
            };
            let at = self.first_at(names[first].span);
            self.diags.push(
                Diagnostic::error(
                    code,
                    format!("{kind} `{}` is defined more than once", name.name),
                    name.span,
                )
                .with_hint(hint(&at)),
            );
        }
        index
    }

    /// First definitions win; later ones are `duplicate-*` errors.
    fn index_names(&mut self) {
        let first_definition = |at: &str| format!("the first definition is at {at}");
        let lists: Vec<&'a Ident> = self.lists.iter().map(|l| &l.name).collect();
        self.list_by_name = self.index_first(&lists, "duplicate-list", "list", first_definition);
        let macros: Vec<&'a Ident> = self.macros.iter().map(|m| &m.name).collect();
        self.macro_by_name =
            self.index_first(&macros, "duplicate-macro", "macro", first_definition);
        let rules: Vec<&'a Ident> = self.rule_defs.iter().map(|r| &r.id).collect();
        self.rule_by_id = self.index_first(&rules, "duplicate-rule", "rule", |at| {
            format!("the first one is at {at}; to change a shipped rule, add an `except` instead")
        });
        self.index_foreign();
        self.list_info = vec![
            ListInfo {
                state: State::Pending,
                weight: 0,
                has_str: false,
                has_num: false,
            };
            self.lists.len()
        ];
        self.macro_state = vec![(State::Pending, Info::FAILED); self.macros.len()];
        self.used_lists = vec![false; self.lists.len()];
        self.used_macros = vec![false; self.macros.len()];
    }

    /// The first foreign rule of each id that no rule-language rule has; the others
    /// are `duplicate-rule` errors where they were defined.
    fn index_foreign(&mut self) {
        for i in 0..self.foreign.len() {
            let meta = &self.foreign[i].meta;
            let first = match self.rule_by_id.get(meta.id.as_str()) {
                Some(&r) => self.rule_defs[r].id.span,
                None => match self.foreign_by_id.get(&meta.id) {
                    Some(&f) => self.foreign[f].meta.span,
                    None => {
                        self.foreign_by_id.insert(meta.id.clone(), i);
                        continue;
                    }
                },
            };
            let (id, span) = (meta.id.clone(), meta.span);
            let at = self.first_at(first);
            self.diags.push(
                Diagnostic::error(
                    "duplicate-rule",
                    format!("rule `{id}` is defined more than once"),
                    span,
                )
                .with_hint(format!("the first one is at {at}")),
            );
        }
    }

    fn is_first_list(&self, i: usize) -> bool {
        self.list_by_name.get(self.lists[i].name.name.as_str()) == Some(&i)
    }

    fn is_first_macro(&self, i: usize) -> bool {
        self.macro_by_name.get(self.macros[i].name.name.as_str()) == Some(&i)
    }

    /// A list name as written somewhere: its index, or `undefined-list` (with `None`).
    fn lookup_list(&mut self, id: &Ident) -> Option<usize> {
        if let Some(&i) = self.list_by_name.get(id.name.as_str()) {
            self.used_lists[i] = true;
            return Some(i);
        }
        if self.is_broken(ItemKind::List, &id.name) {
            return None;
        }
        let hint = if self.macro_by_name.contains_key(id.name.as_str()) {
            Some(format!(
                "`{}` is a macro, not a list; use it as a condition of its own",
                id.name
            ))
        } else if FieldRef::from_name(&id.name).is_some() {
            Some(format!(
                "`{}` is a field; fields compare with `==` and `!=` only; other operators take a string, a number, a list `[...]` or a list name",
                id.name
            ))
        } else {
            suggest(&id.name, self.list_by_name.keys().copied())
                .map(|s| format!("did you mean `{s}`?"))
        };
        let d = Diagnostic::error(
            "undefined-list",
            format!("undefined list `{}`", id.name),
            id.span,
        );
        self.diags.push(match hint {
            Some(h) => d.with_hint(h),
            None => d,
        });
        None
    }

    fn resolve_lists(&mut self) {
        let n = self.lists.len();
        // Undefined references are reported for every definition, duplicates included.
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut undefined = vec![false; n];
        for i in 0..n {
            let list = self.lists[i];
            for item in &list.items {
                if let ListItem::ListRef(r) = item {
                    match self.lookup_list(r) {
                        Some(j) => deps[i].push(j),
                        None => undefined[i] = true,
                    }
                }
            }
        }
        // Only first definitions take part in resolution.
        let firsts: Vec<bool> = (0..n).map(|i| self.is_first_list(i)).collect();
        let graph: Vec<Vec<usize>> = (0..n)
            .map(|i| {
                if firsts[i] {
                    deps[i].clone()
                } else {
                    Vec::new()
                }
            })
            .collect();
        for i in topo_order(&graph) {
            if !firsts[i] {
                continue;
            }
            let mut info = ListInfo {
                state: if undefined[i] {
                    State::Failed
                } else {
                    State::Ok
                },
                weight: 0,
                has_str: false,
                has_num: false,
            };
            for item in &self.lists[i].items {
                match item {
                    ListItem::Value(l) => {
                        info.weight = info.weight.saturating_add(literal_weight(l));
                        match l.kind {
                            LiteralKind::Str { .. } => info.has_str = true,
                            LiteralKind::Number(_) => info.has_num = true,
                        }
                    }
                    ListItem::ListRef(r) => {
                        if let Some(&j) = self.list_by_name.get(r.name.as_str()) {
                            let sub = self.list_info[j];
                            if sub.state != State::Ok {
                                info.state = State::Failed;
                            }
                            info.weight = info.weight.saturating_add(sub.weight);
                            info.has_str |= sub.has_str;
                            info.has_num |= sub.has_num;
                        }
                    }
                }
            }
            self.list_info[i] = info;
        }
        let left: Vec<bool> = (0..n)
            .map(|i| firsts[i] && self.list_info[i].state == State::Pending)
            .collect();
        for cycle in find_cycles(&graph, &left) {
            let path = self.cycle_path(&cycle, |c, i| c.lists[i].name.name.as_str());
            let at = self.lists[cycle[0]].name.span;
            self.diags.push(
                Diagnostic::error("list-cycle", format!("list cycle: {path}"), at)
                    .with_hint("a list cannot contain itself, directly or through other lists"),
            );
        }
        for (i, l) in left.iter().enumerate() {
            if *l {
                self.list_info[i].state = State::Failed;
            }
        }
    }

    fn cycle_path(&self, cycle: &[usize], name: impl Fn(&Self, usize) -> &str) -> String {
        let mut names: Vec<&str> = cycle.iter().map(|&i| name(self, i)).collect();
        names.push(name(self, cycle[0]));
        names.join(" -> ")
    }

    fn resolve_macros(&mut self) {
        let n = self.macros.len();
        let firsts: Vec<bool> = (0..n).map(|i| self.is_first_macro(i)).collect();
        let graph: Vec<Vec<usize>> = (0..n)
            .map(|i| {
                if !firsts[i] {
                    return Vec::new();
                }
                let mut refs = Vec::new();
                macro_refs(&self.macros[i].body, &mut refs);
                refs.iter()
                    .filter_map(|r| self.macro_by_name.get(r.name.as_str()).copied())
                    .collect()
            })
            .collect();
        for i in topo_order(&graph) {
            if firsts[i] {
                let info = self.validate_expr(&self.macros[i].body);
                let info = self.cap("macro", &self.macros[i].name, info);
                let state = if info.ok { State::Ok } else { State::Failed };
                self.macro_state[i] = (state, info);
            }
        }
        let left: Vec<bool> = (0..n)
            .map(|i| firsts[i] && self.macro_state[i].0 == State::Pending)
            .collect();
        for cycle in find_cycles(&graph, &left) {
            let path = self.cycle_path(&cycle, |c, i| c.macros[i].name.name.as_str());
            let at = self.macros[cycle[0]].name.span;
            self.diags.push(
                Diagnostic::error("macro-cycle", format!("macro cycle: {path}"), at)
                    .with_hint("a macro cannot use itself, directly or through other macros"),
            );
        }
        // Macros in or behind a cycle, and duplicates: still report what else is wrong.
        for i in 0..n {
            if left[i] {
                self.macro_state[i].0 = State::Failed;
            }
            if left[i] || !firsts[i] {
                self.validate_expr(&self.macros[i].body);
            }
        }
    }

    /// Reports `macro-too-large` / `too-deep` at `name` when `info` is past the caps.
    fn cap(&mut self, what: &str, name: &Ident, info: Info) -> Info {
        if !info.ok {
            return info;
        }
        if info.size > MAX_RULE_SIZE {
            self.diags.push(
                Diagnostic::error(
                    "macro-too-large",
                    format!(
                        "{what} `{}` expands to more than {MAX_RULE_SIZE} nodes once its macros and lists are inlined",
                        name.name
                    ),
                    name.span,
                )
                .with_hint("a macro used several times is copied each time; use lists for long alternatives"),
            );
            return Info::FAILED;
        }
        if info.depth > MAX_EXPANDED_DEPTH {
            self.diags.push(
                Diagnostic::error(
                    "too-deep",
                    format!(
                        "{what} `{}` nests more than {MAX_EXPANDED_DEPTH} levels deep once its macros are inlined",
                        name.name
                    ),
                    name.span,
                )
                .with_hint("flatten the chain of macros"),
            );
            return Info::FAILED;
        }
        info
    }

    fn validate_expr(&mut self, e: &Expr) -> Info {
        match e {
            Expr::And(v) | Expr::Or(v) => {
                let mut all = Info::leaf(1, 0);
                for x in v {
                    let i = self.validate_expr(x);
                    all.ok &= i.ok;
                    all.size = all.size.saturating_add(i.size);
                    all.depth = all.depth.max(i.depth);
                }
                all.depth = all.depth.saturating_add(1);
                all
            }
            Expr::Not(x, _) => {
                let i = self.validate_expr(x);
                Info {
                    ok: i.ok,
                    size: i.size.saturating_add(1),
                    depth: i.depth.saturating_add(1),
                }
            }
            Expr::Ancestor { body, .. } => {
                let i = self.validate_expr(body);
                Info {
                    ok: i.ok,
                    size: i.size.saturating_add(1),
                    depth: i.depth.saturating_add(1),
                }
            }
            Expr::Macro(id) => self.validate_macro_ref(id),
            Expr::Exists(path) => match self.resolve_field(path) {
                Some(_) => ancestor_wrapped(path, Info::leaf(1, 1)),
                None => Info::FAILED,
            },
            Expr::Compare(c) => self.validate_compare(c),
        }
    }

    fn validate_macro_ref(&mut self, id: &Ident) -> Info {
        if let Some(&i) = self.macro_by_name.get(id.name.as_str()) {
            self.used_macros[i] = true;
            let (state, info) = self.macro_state[i];
            return match state {
                State::Ok => Info {
                    ok: true,
                    size: info.size,
                    depth: info.depth.saturating_add(1),
                },
                _ => Info::FAILED,
            };
        }
        if self.is_broken(ItemKind::Macro, &id.name) {
            return Info::FAILED;
        }
        if flag_field(&id.name).is_some() {
            return Info::leaf(1, 1);
        }
        let name = &id.name;
        let hint = if FieldRef::from_name(name).is_some() {
            Some(format!(
                "`{name}` is a field: a comparison is missing, for example `{name} == \"...\"` or `{name} exists`"
            ))
        } else if self.list_by_name.contains_key(name.as_str()) {
            Some(format!(
                "`{name}` is a list; lists go after `in`, for example `exe in {name}`"
            ))
        } else {
            suggest(name, self.macro_by_name.keys().copied())
                .map(|s| format!("did you mean `{s}`?"))
        };
        let d = Diagnostic::error(
            "undefined-macro",
            format!("undefined macro `{name}`"),
            id.span,
        );
        self.diags.push(match hint {
            Some(h) => d.with_hint(h),
            None => d,
        });
        Info::FAILED
    }

    fn resolve_field(&mut self, path: &FieldPath) -> Option<FieldRef> {
        let name = &path.name;
        if let Some(f) = FieldRef::from_name(&name.name) {
            return Some(f);
        }
        let d = Diagnostic::error(
            "unknown-field",
            format!("unknown field `{}`", name.name),
            name.span,
        );
        self.diags.push(match field_suggestion(&name.name) {
            Some(s) => d.with_hint(format!("did you mean `{s}`?")),
            None => d.with_hint(
                "fields are the CAR process fields (`exe`, `command_line`, `user`, ...) and their `parent_` forms",
            ),
        });
        None
    }

    fn operand_info(&mut self, operand: &Operand) -> OperandInfo {
        let mut info = OperandInfo {
            ok: true,
            single: false,
            weight: 0,
            str_at: None,
            num_at: None,
        };
        match operand {
            Operand::Literal(l) => {
                info.single = true;
                add_literal(&mut info, l);
            }
            Operand::ListRef(id) => self.add_list_ref(&mut info, id),
            Operand::List(items, _) => {
                for item in items {
                    match item {
                        ListItem::Value(l) => add_literal(&mut info, l),
                        ListItem::ListRef(id) => self.add_list_ref(&mut info, id),
                    }
                }
            }
        }
        info
    }

    fn add_list_ref(&mut self, info: &mut OperandInfo, id: &Ident) {
        let Some(i) = self.lookup_list(id) else {
            info.ok = false;
            return;
        };
        let l = self.list_info[i];
        if l.state != State::Ok {
            info.ok = false;
        }
        info.weight = info.weight.saturating_add(l.weight);
        if l.has_str {
            info.str_at.get_or_insert(id.span);
        }
        if l.has_num {
            info.num_at.get_or_insert(id.span);
        }
    }

    /// The field a bare name operand stands for (`exe == parent_exe`), when no list has
    /// that name.
    fn field_operand(&self, operand: &Operand) -> Option<(FieldRef, Span)> {
        match operand {
            Operand::ListRef(id) if !self.list_by_name.contains_key(id.name.as_str()) => {
                FieldRef::from_name(&id.name).map(|f| (f, id.span))
            }
            _ => None,
        }
    }

    /// `FIELD == FIELD` / `FIELD != FIELD`: same kind, equality only.
    fn validate_field_compare(&mut self, c: &Compare, other: FieldRef, at: Span) -> Info {
        let Some(field) = self.resolve_field(&c.field) else {
            return Info::FAILED;
        };
        let problem = if !matches!(c.op, Op::Eq | Op::Ne) {
            Some(
                Diagnostic::error(
                    "bad-operand",
                    format!("a field can only be compared with another field by `==` or `!=`, not `{}`", c.op.symbol()),
                    c.op_span,
                )
                .with_hint("to test against a list of that name, define the list; field names cannot name lists"),
            )
        } else if field.field.kind() != other.field.kind() {
            Some(Diagnostic::error(
                "type-mismatch",
                format!(
                    "`{}` and `{}` hold different kinds of values ({} and {})",
                    c.field.name.name,
                    operand_name(&c.operand),
                    field.field.kind().name(),
                    other.field.kind().name()
                ),
                at,
            ))
        } else {
            None
        };
        if let Some(d) = problem {
            self.diags.push(d);
            return Info::FAILED;
        }
        let size = if c.op == Op::Ne { 5 } else { 1 };
        ancestor_wrapped(
            &c.field,
            Info {
                ok: true,
                size,
                depth: if c.op == Op::Ne { 3 } else { 1 },
            },
        )
    }

    fn validate_compare(&mut self, c: &Compare) -> Info {
        if let Some((other, at)) = self.field_operand(&c.operand) {
            return self.validate_field_compare(c, other, at);
        }
        let field = self.resolve_field(&c.field);
        let operand = self.operand_info(&c.operand);
        let Some(field) = field else {
            return Info::FAILED;
        };
        if !operand.ok {
            return Info::FAILED;
        }
        let name = &c.field.name.name;
        let op = c.op;
        let sym = op.symbol();
        let kind = field.field.kind();
        let ordering = matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge);
        let text_only = matches!(op, Op::StartsWith | Op::EndsWith | Op::Contains | Op::Regex);
        let operand_span = operand_span(&c.operand);
        let problem: Option<Diagnostic> = if kind == FieldKind::Flag {
            Some(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`{name}` is a yes/no field: it takes no `{sym}`"),
                    c.op_span,
                )
                .with_hint(format!(
                    "test it by its name: `{name}`, `not {name}`, or `{name} exists` (known at all)"
                )),
            )
        } else if kind == FieldKind::Text && ordering {
            Some(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`{sym}` compares numbers, but `{name}` is a text field"),
                    c.op_span,
                )
                .with_hint(
                    "text takes `==`, `!=`, `in`, `startswith`, `endswith`, `contains` and `regex`",
                ),
            )
        } else if kind == FieldKind::Number && text_only {
            Some(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`{sym}` applies to text, but `{name}` is a number field"),
                    c.op_span,
                )
                .with_hint("numbers take `==`, `!=`, `in`, `<`, `<=`, `>` and `>=`"),
            )
        } else if matches!(op, Op::Eq | Op::Ne) && !operand.single {
            let hint = if op == Op::Eq {
                "use `in` to test against a list".to_string()
            } else {
                format!("use `not {name} in [...]` to exclude a list")
            };
            Some(
                Diagnostic::error(
                    "bad-operand",
                    format!("`{sym}` compares with one value, not a list"),
                    operand_span,
                )
                .with_hint(hint),
            )
        } else if op == Op::In && operand.single {
            Some(
                Diagnostic::error("bad-operand", "`in` takes a list", operand_span).with_hint(
                    "use `==` to compare with one value, or put it in brackets: `in [\"...\"]`",
                ),
            )
        } else if ordering && !operand.single {
            Some(Diagnostic::error(
                "bad-operand",
                format!("`{sym}` compares with one number, not a list"),
                operand_span,
            ))
        } else if let (FieldKind::Text, Some(at)) = (kind, operand.num_at) {
            Some(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`{name}` is a text field, but this is a number"),
                    at,
                )
                .with_hint("quote it to compare as text"),
            )
        } else if let (FieldKind::Number, Some(at)) = (kind, operand.str_at) {
            Some(
                Diagnostic::error(
                    "type-mismatch",
                    format!("`{name}` is a number field, but this is a string"),
                    at,
                )
                .with_hint("write the number without quotes (decimal or `0x` hex)"),
            )
        } else {
            None
        };
        if let Some(d) = problem {
            self.diags.push(d);
            return Info::FAILED;
        }
        let mut ok = true;
        if op == Op::Regex {
            ok = self.check_regex_operand(&c.operand);
        }
        let (size, depth) = if op == Op::Ne { (3, 3) } else { (1, 1) };
        let info = Info {
            ok,
            size: operand.weight.saturating_add(size),
            depth,
        };
        ancestor_wrapped(&c.field, info)
    }

    /// Compiles the literal patterns of a `regex` operand; lists are checked at the end.
    fn check_regex_operand(&mut self, operand: &Operand) -> bool {
        let mut ok = true;
        let mut check = |me: &mut Self, item: &ListItem| match item {
            ListItem::Value(l) => ok &= me.check_regex_literal(l),
            ListItem::ListRef(id) => {
                if let Some(&i) = me.list_by_name.get(id.name.as_str()) {
                    me.regex_lists.push(i);
                }
            }
        };
        match operand {
            Operand::Literal(l) => check(self, &ListItem::Value(l.clone())),
            Operand::ListRef(id) => check(self, &ListItem::ListRef(id.clone())),
            Operand::List(items, _) => items.iter().for_each(|item| check(self, item)),
        }
        ok
    }

    fn check_regex_literal(&mut self, l: &Literal) -> bool {
        let LiteralKind::Str {
            text,
            case_sensitive,
        } = &l.kind
        else {
            return true;
        };
        let key = (text.clone(), *case_sensitive);
        let error = match self.regex_cache.get(&key) {
            Some(e) => e.clone(),
            None => {
                let e = regex::RegexBuilder::new(text)
                    .case_insensitive(!case_sensitive)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .err()
                    .map(|e| regex_message(&e));
                self.regex_cache.insert(key, e.clone());
                e
            }
        };
        match error {
            None => true,
            Some(message) => {
                self.diags.push(
                    Diagnostic::error("bad-regex", format!("invalid regex: {message}"), l.span)
                        .with_hint(
                            "patterns use the Rust `regex` crate's syntax; `\\\"` is a quote, other backslashes are kept as written",
                        ),
                );
                false
            }
        }
    }

    /// Checks the strings of every list used with `regex` (and the lists they splice),
    /// each list once.
    fn check_regex_lists(&mut self) {
        let mut done = vec![false; self.lists.len()];
        let mut stack = std::mem::take(&mut self.regex_lists);
        while let Some(i) = stack.pop() {
            if done[i] {
                continue;
            }
            done[i] = true;
            let list = self.lists[i];
            for item in &list.items {
                match item {
                    ListItem::Value(l) => {
                        self.check_regex_literal(l);
                    }
                    ListItem::ListRef(r) => {
                        if let Some(&j) = self.list_by_name.get(r.name.as_str()) {
                            stack.push(j);
                        }
                    }
                }
            }
        }
    }

    fn check_rules(&mut self) {
        // Top-level exceptions: checked once each, attached to their rule.
        let mut extra: HashMap<usize, Vec<(usize, Info)>> = HashMap::new();
        let mut foreign_extra: HashMap<usize, Vec<(usize, Info)>> = HashMap::new();
        for k in 0..self.excepts.len() {
            let e = self.excepts[k];
            let info = self.validate_expr(&e.exception.condition);
            match self.rule_by_id.get(e.rule.name.as_str()) {
                Some(&r) => extra.entry(r).or_default().push((k, info)),
                None if self.foreign_by_id.contains_key(&e.rule.name) => {
                    let f = self.foreign_by_id[&e.rule.name];
                    foreign_extra.entry(f).or_default().push((k, info));
                }
                None if self.is_broken(ItemKind::Rule, &e.rule.name) => {}
                None => {
                    let d = Diagnostic::error(
                        "unknown-rule",
                        format!("`except` for unknown rule `{}`", e.rule.name),
                        e.rule.span,
                    );
                    let ids = self.rule_by_id.keys().copied();
                    let hint = suggest(
                        &e.rule.name,
                        ids.chain(self.foreign_by_id.keys().map(String::as_str)),
                    )
                    .map(|s| format!("did you mean `{s}`?"));
                    self.diags.push(match hint {
                        Some(h) => d.with_hint(h),
                        None => d,
                    });
                }
            }
        }
        let mut total: u64 = 0;
        for r in 0..self.rule_defs.len() {
            let rule = self.rule_defs[r];
            self.check_attack(rule);
            let first = self.rule_by_id.get(rule.id.name.as_str()) == Some(&r);
            let mut info = match &rule.condition {
                Some(c) => self.validate_expr(c),
                None => Info::FAILED,
            };
            let add = |info: &mut Info, x: Info| {
                info.ok &= x.ok;
                info.size = info.size.saturating_add(x.size);
                info.depth = info.depth.max(x.depth);
            };
            for e in &rule.exceptions {
                let x = self.validate_expr(&e.condition);
                add(&mut info, x);
            }
            if !first {
                continue;
            }
            let attached = extra.remove(&r).unwrap_or_default();
            for (_, x) in &attached {
                add(&mut info, *x);
            }
            self.summary.rules += 1;
            self.summary.enabled_rules += usize::from(rule.enabled);
            self.summary.exceptions += rule.exceptions.len() + attached.len();
            let info = self.cap("rule", &rule.id, info);
            let (Some(title), Some((severity, _)), Some(condition), true) =
                (&rule.title, rule.severity, &rule.condition, info.ok)
            else {
                continue;
            };
            total = total.saturating_add(info.size);
            if total > MAX_TOTAL_SIZE {
                self.diags.push(
                    Diagnostic::error(
                        "macro-too-large",
                        format!(
                            "the rule set expands to more than {MAX_TOTAL_SIZE} nodes by rule `{}`",
                            rule.id.name
                        ),
                        rule.id.span,
                    )
                    .with_hint(
                        "share long alternatives through lists rather than copies of macros",
                    ),
                );
                // Nothing more is built once over the budget.
                total = u64::MAX;
                continue;
            }
            let mut exceptions = Vec::new();
            let own = rule.exceptions.iter().map(|e| (&e.name, &e.condition));
            let ext = attached.iter().map(|(k, _)| {
                (
                    &self.excepts[*k].exception.name,
                    &self.excepts[*k].exception.condition,
                )
            });
            let mut built = true;
            for (name, cond) in own.chain(ext) {
                match self.lower(cond) {
                    Some(c) => exceptions.push((name.clone(), c)),
                    None => built = false,
                }
            }
            let Some(condition) = self.lower(condition).filter(|_| built) else {
                debug_assert!(false, "a validated rule failed to lower: {}", rule.id.name);
                continue;
            };
            self.check_sense(rule, &condition);
            self.rules.push(CheckedRule {
                meta: RuleMeta {
                    id: rule.id.name.clone(),
                    title: title.clone(),
                    description: rule.description.clone().unwrap_or_default(),
                    severity,
                    attack: rule.attack.iter().map(|a| a.name.clone()).collect(),
                    references: rule.references.clone(),
                    enabled: rule.enabled,
                    span: rule.span,
                },
                condition,
                exceptions,
            });
        }
        self.add_foreign(foreign_extra);
        self.summary.lists = self.list_by_name.len();
        self.summary.macros = self.macro_by_name.len();
    }

    /// Appends the foreign rules (the first of each id) with the top-level exceptions
    /// that name them.
    fn add_foreign(&mut self, mut extra: HashMap<usize, Vec<(usize, Info)>>) {
        for (i, mut rule) in std::mem::take(&mut self.foreign).into_iter().enumerate() {
            if self.foreign_by_id.get(&rule.meta.id) != Some(&i) {
                continue;
            }
            let attached = extra.remove(&i).unwrap_or_default();
            let mut built = true;
            for (k, info) in attached {
                let exception = &self.excepts[k].exception;
                match self.lower(&exception.condition).filter(|_| info.ok) {
                    Some(c) => rule.exceptions.push((exception.name.clone(), c)),
                    None => built = false,
                }
            }
            self.summary.rules += 1;
            self.summary.enabled_rules += usize::from(rule.meta.enabled);
            self.summary.exceptions += rule.exceptions.len();
            if built {
                self.rules.push(rule);
            }
        }
    }

    /// Warns about a condition that evidently never holds, or holds for every process.
    fn check_sense(&mut self, rule: &RuleDef, condition: &Cond) {
        let (code, what, why) = if let Some(why) = crate::sense::never(condition) {
            ("never-matches", "can never match", why)
        } else if let Some(why) = crate::sense::always(condition) {
            ("always-matches", "matches every process", why)
        } else {
            return;
        };
        self.diags.push(
            Diagnostic::warning(
                code,
                format!("rule `{}` {what}", rule.id.name),
                rule.id.span,
            )
            .with_hint(why),
        );
    }

    fn check_attack(&mut self, rule: &RuleDef) {
        if rule.attack.is_empty() {
            self.diags.push(
                Diagnostic::warning(
                    "no-attack-id",
                    format!("rule `{}` has no ATT&CK technique", rule.id.name),
                    rule.id.span,
                )
                .with_hint("add `attack: [T1505.003]` (or the technique the rule detects)"),
            );
        }
        for a in &rule.attack {
            if !is_attack_id(&a.name) {
                self.diags.push(
                    Diagnostic::warning(
                        "bad-attack-id",
                        format!("`{}` is not an ATT&CK technique id", a.name),
                        a.span,
                    )
                    .with_hint("technique ids look like `T1505` or `T1505.003`"),
                );
            }
        }
    }

    fn warn_unused(&mut self) {
        // With a syntax error, the dropped items may have been the users.
        if self.any_broken {
            return;
        }
        for i in 0..self.lists.len() {
            if self.is_first_list(i) && !self.used_lists[i] {
                let name = &self.lists[i].name;
                self.diags.push(Diagnostic::warning(
                    "unused-list",
                    format!("list `{}` is never used", name.name),
                    name.span,
                ));
            }
        }
        for i in 0..self.macros.len() {
            if self.is_first_macro(i) && !self.used_macros[i] {
                let name = &self.macros[i].name;
                self.diags.push(Diagnostic::warning(
                    "unused-macro",
                    format!("macro `{}` is never used", name.name),
                    name.span,
                ));
            }
        }
    }

    // -----------------------------------------------------------------------------
    // Lowering (only of what validated)
    // -----------------------------------------------------------------------------

    fn lower(&self, e: &Expr) -> Option<Cond> {
        Some(match e {
            Expr::And(v) => Cond::And(v.iter().map(|x| self.lower(x)).collect::<Option<_>>()?),
            Expr::Or(v) => Cond::Or(v.iter().map(|x| self.lower(x)).collect::<Option<_>>()?),
            Expr::Not(x, _) => Cond::Not(Box::new(self.lower(x)?)),
            // A macro of that name, else a yes/no field (see `validate_macro_ref`).
            Expr::Macro(id) => match self.macro_by_name.get(id.name.as_str()) {
                Some(&i) => self.lower(&self.macros[i].body)?,
                None => Cond::Flag(flag_field(&id.name)?),
            },
            Expr::Exists(path) => {
                wrap_ancestor(path, Cond::Exists(FieldRef::from_name(&path.name.name)?))
            }
            Expr::Ancestor { range, body, .. } => Cond::Ancestor {
                min: range.min,
                max: range.max,
                body: Box::new(self.lower(body)?),
            },
            Expr::Compare(c) => self.lower_compare(c)?,
        })
    }

    fn lower_compare(&self, c: &Compare) -> Option<Cond> {
        let field = FieldRef::from_name(&c.field.name.name)?;
        if let Some((other, _)) = self.field_operand(&c.operand) {
            let same = Cond::SameValue(field, other);
            let test = if c.op == Op::Ne {
                Cond::And(vec![
                    Cond::Exists(field),
                    Cond::Exists(other),
                    Cond::Not(Box::new(same)),
                ])
            } else {
                same
            };
            return Some(wrap_ancestor(&c.field, test));
        }
        let mut literals: Vec<&LiteralKind> = Vec::new();
        match &c.operand {
            Operand::Literal(l) => literals.push(&l.kind),
            Operand::ListRef(id) => self.flatten(id, &mut literals)?,
            Operand::List(items, _) => {
                for item in items {
                    match item {
                        ListItem::Value(l) => literals.push(&l.kind),
                        ListItem::ListRef(id) => self.flatten(id, &mut literals)?,
                    }
                }
            }
        }
        let test = match field.field.kind() {
            FieldKind::Text => {
                let op = match c.op {
                    Op::Eq | Op::Ne | Op::In => TextOp::Equals,
                    Op::StartsWith => TextOp::StartsWith,
                    Op::EndsWith => TextOp::EndsWith,
                    Op::Contains => TextOp::Contains,
                    Op::Regex => TextOp::Regex,
                    Op::Lt | Op::Le | Op::Gt | Op::Ge => return None,
                };
                let patterns = literals
                    .iter()
                    .map(|l| match l {
                        LiteralKind::Str {
                            text,
                            case_sensitive,
                        } => Some(Pattern {
                            text: text.clone(),
                            case_sensitive: *case_sensitive,
                        }),
                        LiteralKind::Number(_) => None,
                    })
                    .collect::<Option<Vec<_>>>()?;
                Cond::Text(TextTest {
                    field,
                    op,
                    patterns,
                })
            }
            FieldKind::Number => {
                let op = match c.op {
                    Op::Eq | Op::Ne | Op::In => NumberOp::Eq,
                    Op::Lt => NumberOp::Lt,
                    Op::Le => NumberOp::Le,
                    Op::Gt => NumberOp::Gt,
                    Op::Ge => NumberOp::Ge,
                    _ => return None,
                };
                let values = literals
                    .iter()
                    .map(|l| match l {
                        LiteralKind::Number(n) => Some(*n),
                        LiteralKind::Str { .. } => None,
                    })
                    .collect::<Option<Vec<_>>>()?;
                Cond::Number(NumberTest { field, op, values })
            }
            FieldKind::Flag => return None,
        };
        let test = if c.op == Op::Ne {
            Cond::And(vec![Cond::Exists(field), Cond::Not(Box::new(test))])
        } else {
            test
        };
        Some(wrap_ancestor(&c.field, test))
    }

    /// Appends the items of list `id`, splicing the lists it names, without recursion.
    fn flatten<'s>(&'s self, id: &Ident, out: &mut Vec<&'s LiteralKind>) -> Option<()> {
        let &start = self.list_by_name.get(id.name.as_str())?;
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        while let Some(top) = stack.last_mut() {
            let (list, next) = *top;
            let Some(item) = self.lists[list].items.get(next) else {
                stack.pop();
                continue;
            };
            top.1 += 1;
            match item {
                ListItem::Value(l) => out.push(&l.kind),
                ListItem::ListRef(r) => {
                    let &j = self.list_by_name.get(r.name.as_str())?;
                    if stack.len() > self.lists.len() {
                        return None; // a cycle: cannot happen after validation
                    }
                    stack.push((j, 0));
                }
            }
        }
        Some(())
    }
}

fn add_literal(info: &mut OperandInfo, l: &Literal) {
    info.weight = info.weight.saturating_add(literal_weight(l));
    match l.kind {
        LiteralKind::Str { .. } => {
            info.str_at.get_or_insert(l.span);
        }
        LiteralKind::Number(_) => {
            info.num_at.get_or_insert(l.span);
        }
    }
}

/// One node per value, plus one per 64 bytes of text.
fn literal_weight(l: &Literal) -> u64 {
    match &l.kind {
        LiteralKind::Str { text, .. } => 1 + (text.len() / 64) as u64,
        LiteralKind::Number(_) => 1,
    }
}

/// The name a list-name operand was written with.
fn operand_name(operand: &Operand) -> &str {
    match operand {
        Operand::ListRef(id) => &id.name,
        _ => "",
    }
}

fn operand_span(operand: &Operand) -> Span {
    match operand {
        Operand::Literal(l) => l.span,
        Operand::List(_, span) => *span,
        Operand::ListRef(id) => id.span,
    }
}

fn ancestor_wrapped(path: &FieldPath, info: Info) -> Info {
    if path.ancestor.is_some() {
        Info {
            ok: info.ok,
            size: info.size.saturating_add(1),
            depth: info.depth.saturating_add(1),
        }
    } else {
        info
    }
}

fn wrap_ancestor(path: &FieldPath, test: Cond) -> Cond {
    match path.ancestor {
        Some(range) => Cond::Ancestor {
            min: range.min,
            max: range.max,
            body: Box::new(test),
        },
        None => test,
    }
}

/// The regex crate's message without the pattern excerpt it prints above it.
fn regex_message(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix("error: "))
        .map(str::to_string)
        .unwrap_or_else(|| text.lines().next().unwrap_or("").to_string())
}
