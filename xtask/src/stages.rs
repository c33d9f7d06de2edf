//! The stage layout of xtask/src, kept true by a test. Each top-level module
//! has a stage (the table [`STAGES`]); a file may import (`crate::` paths, in
//! `use` lines, `use crate::{…}` groups over several lines, and paths written
//! out in code) only from its own stage or a lower one.
//!
//! What the test asserts, over every .rs file under xtask/src:
//! - every file and every `crate::` path it names belongs to a top-level
//!   module in the table (a new module gets its stage before it gets code);
//! - no `crate::` path names a module of a higher stage than the file's;
//! - the top-level modules, with an edge from each to each other one it
//!   imports from, form no cycle. With no import climbing, a cycle could only
//!   run between modules of one stage (`app` and `moby`, say): this keeps such
//!   a stage a layering too.
//!
//! Comments, strings and char literals are not code and are skipped. `super::`
//! paths are not followed: they stay inside their top-level module unless
//! they climb to the crate root, which nothing here does.
#![cfg(test)]

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

/// Top-level module -> its stage, bottom (1) to top (8). `moby` and `native`
/// are planned modules, listed so that they are placed when they come.
const STAGES: &[(&str, u8)] = &[
    ("base", 1),
    ("app", 2),
    ("moby", 2),
    ("building", 3),
    ("native", 4),
    ("vm", 5),
    ("disk", 6),
    ("run", 7),
    ("cli", 8),
    ("main", 8),
    // This test: it imports nothing from the crate.
    ("stages", 8),
];

fn stage(module: &str) -> Option<u8> {
    STAGES.iter().find(|(m, _)| *m == module).map(|(_, s)| *s)
}

/// The top-level module a file under xtask/src belongs to: its first folder,
/// or its own name (`cli.rs` -> `cli`).
fn file_module(rel: &str) -> &str {
    let first = rel.split('/').next().unwrap_or(rel);
    first.strip_suffix(".rs").unwrap_or(first)
}

/// `src` with its comments, string literals and char literals blanked out
/// (newlines kept), so that what is searched is code only.
fn code_only(src: &str) -> String {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let is_ident = |at: usize| chars[at].is_alphanumeric() || chars[at] == '_';
        // `br"…"` is a raw string too; `xr"…"` would not be.
        let ident_before = i > 0 && is_ident(i - 1) && !(chars[i - 1] == 'b' && (i < 2 || !is_ident(i - 2)));
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            // Block comments nest in Rust.
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if c == 'r' && !ident_before && matches!(next, Some('"' | '#')) && raw_start(&chars, i + 1).is_some() {
            // r"…", r#"…"#: ends at a quote followed by as many #.
            let (hashes, body) = raw_start(&chars, i + 1).unwrap();
            let end: Vec<char> = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            i = body;
            while i < chars.len() && !chars[i..].starts_with(&end) {
                blank(&mut out, chars[i]);
                i += 1;
            }
            i += end.len();
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if let Some(&c) = chars.get(i) {
                    blank(&mut out, c);
                }
                i += 1;
            }
            i += 1;
        } else if c == '\'' && next == Some('\\') {
            // An escaped char literal: '\n', '\'', '\u{…}'.
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            i += 3;
        } else {
            // Code, lifetimes ('a) included.
            out.push(c);
            i += 1;
        }
    }
    out
}

/// If a raw string's `#`s and opening quote start at `at`: how many `#`s, and
/// where its body starts.
fn raw_start(chars: &[char], at: usize) -> Option<(usize, usize)> {
    let hashes = chars[at..].iter().take_while(|c| **c == '#').count();
    (chars.get(at + hashes) == Some(&'"')).then_some((hashes, at + hashes + 1))
}

/// The tokens a path is made of; anything else ends it.
#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    Sep,
    Open,
    Close,
    Comma,
    Star,
    Other,
}

fn tokens(code: &str) -> impl Iterator<Item = Token> + '_ {
    let mut rest = code;
    std::iter::from_fn(move || {
        rest = rest.trim_start();
        let c = rest.chars().next()?;
        let (token, len) = if rest.starts_with("::") {
            (Token::Sep, 2)
        } else if c.is_alphanumeric() || c == '_' {
            let len = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (Token::Ident(rest[..len].to_string()), len)
        } else {
            let token = match c {
                '{' => Token::Open,
                '}' => Token::Close,
                ',' => Token::Comma,
                '*' => Token::Star,
                _ => Token::Other,
            };
            (token, c.len_utf8())
        };
        rest = &rest[len..];
        Some(token)
    })
}

/// Every path a `crate::` starts in `code`, relative to the crate, groups
/// expanded: `crate::{a::{self, b}, d}` gives `a`, `a::b` and `d`.
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let mut tokens = tokens(&code[at + "crate::".len()..]).peekable();
        use_tree(&mut tokens, "", &mut out);
    }
    out
}

/// One use tree after `prefix::`: a path, maybe followed by `::` and another
/// tree, a `{…}` group of trees, or `*`.
fn use_tree(tokens: &mut std::iter::Peekable<impl Iterator<Item = Token>>, prefix: &str, out: &mut Vec<String>) {
    let join = |name: &str| {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}::{name}")
        }
    };
    match tokens.next() {
        Some(Token::Ident(name)) => {
            // `a::{self, b}`: `self` is `a` itself.
            let path = if name == "self" {
                prefix.to_string()
            } else {
                join(&name)
            };
            if tokens.peek() == Some(&Token::Sep) {
                tokens.next();
                use_tree(tokens, &path, out);
            } else {
                out.push(path);
                // `path as alias`: the alias is not a module.
                if tokens.peek() == Some(&Token::Ident("as".into())) {
                    tokens.next();
                    tokens.next();
                }
            }
        }
        Some(Token::Open) => loop {
            if tokens.peek() == Some(&Token::Close) {
                tokens.next();
                break;
            }
            use_tree(tokens, prefix, out);
            match tokens.next() {
                Some(Token::Comma) => continue,
                _ => break,
            }
        },
        Some(Token::Star) => out.push(join("*")),
        _ if !prefix.is_empty() => out.push(prefix.to_string()),
        _ => {}
    }
}

/// What is wrong with the stages of `files` (path under xtask/src, source):
/// one line per unknown module, per import from a higher stage, and per cycle
/// between top-level modules. Empty if the layout holds.
fn check(files: &[(String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut edges: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (rel, src) in files {
        let from = file_module(rel);
        let Some(from_stage) = stage(from) else {
            problems.push(format!(
                "{rel}: module `{from}` has no stage: add it to STAGES in stages.rs"
            ));
            continue;
        };
        for path in crate_paths(&code_only(src)) {
            let to = path.split("::").next().unwrap_or_default().to_string();
            match stage(&to) {
                None => problems.push(format!(
                    "{rel}: imports crate::{path}, but module `{to}` has no stage: add it to STAGES in stages.rs"
                )),
                Some(to_stage) if to_stage > from_stage => problems.push(format!(
                    "{rel}: imports crate::{path}: `{from}` (stage {from_stage}) may not import from `{to}` (stage {to_stage})"
                )),
                Some(_) => {}
            }
            if to != from {
                edges.entry(from).or_default().insert(to);
            }
        }
    }
    problems.extend(cycles(&edges));
    problems
}

/// Each cycle among the top-level modules, as `a -> b -> a` (found by a depth-first walk).
fn cycles(edges: &BTreeMap<&str, BTreeSet<String>>) -> Vec<String> {
    fn walk<'a>(
        node: &'a str,
        edges: &'a BTreeMap<&str, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
        found: &mut Vec<String>,
    ) {
        if let Some(at) = path.iter().position(|n| *n == node) {
            let cycle: Vec<&str> = path[at..].iter().copied().chain([node]).collect();
            found.push(format!("the top-level modules form a cycle: {}", cycle.join(" -> ")));
            return;
        }
        if !done.insert(node) {
            return;
        }
        path.push(node);
        for next in edges.get(node).into_iter().flatten() {
            walk(next, edges, path, done, found);
        }
        path.pop();
    }
    let mut found = Vec::new();
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        walk(node, edges, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

/// Every .rs file under `dir`, as (path relative to `root`, source), sorted.
fn rust_files(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.push((rel, fs::read_to_string(&path).unwrap()));
        }
    }
}

#[test]
fn no_import_climbs_a_stage_and_no_modules_form_a_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &src, &mut files);
    assert!(files.iter().any(|(rel, _)| rel == "base/project.rs"), "no sources read");
    let problems = check(&files);
    assert!(
        problems.is_empty(),
        "the stages do not hold (base < app, moby < building < native < vm < disk < run < cli, main):\n  {}",
        problems.join("\n  ")
    );
}

fn file(rel: &str, src: &str) -> (String, String) {
    (rel.to_string(), src.to_string())
}

#[test]
fn a_climbing_import_is_named_with_both_stages() {
    let problems = check(&[file(
        "base/project.rs",
        "use crate::{\n    base::{pins::Pins, ui},\n    building::lock::Lock,\n};\n",
    )]);
    assert_eq!(
        problems,
        ["base/project.rs: imports crate::building::lock::Lock: `base` (stage 1) may not import from `building` (stage 3)"]
    );
}

#[test]
fn paths_in_code_count_and_in_comments_and_strings_not() {
    let src = "/// crate::run::x in a doc comment\n\
               const A: &str = \"crate::run::y\";\n\
               const B: &str = r#\"crate::run::z\"#;\n\
               /* crate::run::w */ fn f<'a>(c: char) -> bool { c == '\"' && g() }\n\
               fn g() -> bool { crate::vm::sums::write().is_ok() }\n";
    assert_eq!(crate_paths(&code_only(src)), ["vm::sums::write"]);
}

#[test]
fn groups_expand_to_every_path() {
    let code = "use crate::{\n    app::compose::{self, App},\n    base::{exec, files::*},\n    vm::methods as m,\n};";
    assert_eq!(
        crate_paths(code),
        [
            "app::compose",
            "app::compose::App",
            "base::exec",
            "base::files::*",
            "vm::methods"
        ]
    );
}

#[test]
fn same_stage_imports_pass_unless_they_cycle() {
    let app = file("app/compose.rs", "use crate::moby::Yaml;");
    assert!(check(&[app.clone(), file("moby/mod.rs", "use crate::base::ui;")]).is_empty());
    assert_eq!(
        check(&[app, file("moby/mod.rs", "use crate::app::compose::App;")]),
        ["the top-level modules form a cycle: app -> moby -> app"]
    );
}

#[test]
fn unknown_modules_must_be_placed() {
    let problems = check(&[file("cli.rs", "use crate::extra::X;"), file("extra.rs", "")]);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("module `extra` has no stage"), "{problems:?}");
}
