//! A Dockerfile as BuildKit reads it, as far as the local profile must know
//! it: its stages, which of them the build target needs, the base image each
//! of those names, and what the builder here (buildah) cannot read itself.
//! [`plan`] rewrites it for the local profile: each upstream base image the
//! target needs becomes its catalog stand-in, stages the target never builds
//! become `FROM scratch` (their images need not exist), and `RUN <<EOF`
//! heredocs become the shell script they stand for.

use std::collections::BTreeMap;

use crate::base::reference::Reference;

/// One instruction: its first line (1-based), keyword, and text after it
/// (continuation lines joined; heredoc bodies in `heredocs`).
#[derive(Debug, Clone, PartialEq)]
struct Instruction {
    line: usize,
    keyword: String,
    args: String,
    /// Bodies of `<<WORD` heredocs, in order.
    heredocs: Vec<String>,
}

fn parse(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        let line = i + 1;
        let mut joined = String::new();
        loop {
            let l = lines[i].trim_end();
            i += 1;
            match l.strip_suffix('\\') {
                Some(head) => {
                    joined.push_str(head);
                    joined.push(' ');
                    // Comment lines inside a continuation are dropped.
                    while i < lines.len() && lines[i].trim_start().starts_with('#') {
                        i += 1;
                    }
                    if i >= lines.len() {
                        break;
                    }
                }
                None => {
                    joined.push_str(l);
                    break;
                }
            }
        }
        let joined = joined.trim().to_string();
        let (keyword, args) = joined.split_once(char::is_whitespace).unwrap_or((&joined, ""));
        let mut heredocs = Vec::new();
        for word in heredoc_words(args) {
            let (strip_tabs, word) = match word.strip_prefix('-') {
                Some(w) => (true, w.to_string()),
                None => (false, word),
            };
            let mut body = String::new();
            while i < lines.len() {
                let l = lines[i];
                i += 1;
                let end = if strip_tabs { l.trim_start_matches('\t') } else { l };
                if end == word {
                    break;
                }
                body.push_str(end);
                body.push('\n');
            }
            heredocs.push(body);
        }
        out.push(Instruction {
            line,
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_string(),
            heredocs,
        });
    }
    out
}

/// The words of `<<WORD`, `<<-WORD`, `<<"WORD"` heredoc openers in `args`.
fn heredoc_words(args: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = args;
    while let Some(at) = rest.find("<<") {
        rest = &rest[at + 2..];
        let dash = rest.starts_with('-');
        let r = rest.trim_start_matches('-');
        let word: String = r
            .trim_start_matches(['"', '\''])
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !word.is_empty() {
            words.push(if dash { format!("-{word}") } else { word });
        }
    }
    words
}

/// `--name=value` flags at the start of `args`, and the rest.
fn flags(args: &str) -> (Vec<(String, String)>, &str) {
    let mut out = Vec::new();
    let mut rest = args.trim_start();
    while let Some(flag) = rest.strip_prefix("--") {
        let end = flag.find(char::is_whitespace).unwrap_or(flag.len());
        let (name, value) = flag[..end].split_once('=').unwrap_or((&flag[..end], ""));
        out.push((name.to_string(), value.to_string()));
        rest = flag[end..].trim_start();
    }
    (out, rest)
}

/// `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alt}` with `vars`.
fn expand(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'{') {
            chars.next();
            let inner: String = chars.by_ref().take_while(|c| *c != '}').collect();
            let (name, op) = match inner.find(':') {
                Some(at) => (&inner[..at], Some(&inner[at + 1..])),
                None => (inner.as_str(), None),
            };
            let value = vars.get(name).filter(|v| !v.is_empty());
            out.push_str(&match op {
                Some(op) if op.starts_with('-') => value.cloned().unwrap_or_else(|| op[1..].to_string()),
                Some(op) if op.starts_with('+') => value.map(|_| op[1..].to_string()).unwrap_or_default(),
                _ => value.cloned().unwrap_or_default(),
            });
        } else {
            let name: String =
                std::iter::from_fn(|| chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_')).collect();
            out.push_str(vars.get(&name).map(String::as_str).unwrap_or_default());
        }
    }
    out
}

/// A base image resolved for the local profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Substitution {
    pub line: usize,
    /// As the Dockerfile asks for it (variables expanded).
    pub asked: String,
    /// The catalog entry's name.
    pub entry: String,
    /// The instruction it stands in, when that is a stage's `FROM` (not a
    /// `COPY --from`): where the stage's own settings may follow.
    pub from: Option<usize>,
}

/// The local image standing in for an upstream one.
#[derive(Debug, Clone, PartialEq)]
pub struct Local {
    pub reference: String,
    /// The catalog entry it is (`php:apache` for `php:8.2-apache`).
    pub entry: String,
    /// It emulates Alpine's `apk` (pins.yml `alpine: true`).
    pub apk: bool,
    /// Its WORKDIR, where it sets one.
    pub workdir: Option<String>,
}

/// What the local profile builds instead of the Dockerfile as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub dockerfile: String,
    pub substitutions: Vec<Substitution>,
    /// `dockerfile`, one entry per instruction.
    instructions: Vec<String>,
}

impl Plan {
    /// Set `env` in the stage that `sub`'s `FROM` begins, right after it
    /// (the Dockerfile's own `ENV`s come later and win).
    pub fn set_env_after(&mut self, sub: &Substitution, env: &BTreeMap<String, String>) {
        let Some(at) = sub.from.filter(|_| !env.is_empty()) else {
            return;
        };
        let pairs: Vec<String> = env.iter().map(|(k, v)| format!("{k}={}", quoted(v))).collect();
        self.instructions[at].push_str(&format!("\nENV {}", pairs.join(" ")));
        self.dockerfile = render(&self.instructions);
    }
}

/// `value` as one word of an `ENV` instruction.
fn quoted(value: &str) -> String {
    if !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=+,@".contains(c))
    {
        value.to_string()
    } else {
        format!(
            "\"{}\"",
            value.replace('\\', "\\\\").replace('"', "\\\"").replace('$', "\\$")
        )
    }
}

fn render(instructions: &[String]) -> String {
    instructions.iter().map(|i| format!("{i}\n")).collect()
}

/// The catalog name of base `text` (a text that is no reference is its own).
fn catalog_name(text: &str) -> String {
    Reference::parse(text).map_or_else(|_| text.to_string(), |r| r.catalog_name().to_string())
}

/// Rewrite `text` for the local profile. `args` are the build arguments,
/// `target` the stage to build (default: the last); `catalog(image)` gives the
/// local image standing in for an upstream image, or None. `apk_names`
/// lists the catalog entries that emulate apk, for the message when another
/// one meets it. Every problem comes back at once, each naming its line.
pub fn plan(
    text: &str,
    args: &BTreeMap<String, String>,
    target: Option<&str>,
    catalog: &dyn Fn(&Reference) -> Option<Local>,
    catalog_names: &str,
    apk_names: &str,
) -> Result<Plan, Vec<String>> {
    let instructions = parse(text);
    let mut vars: BTreeMap<String, String> = [
        ("BUILDPLATFORM", "linux/amd64"),
        ("BUILDOS", "linux"),
        ("BUILDARCH", "amd64"),
        ("TARGETPLATFORM", "linux/amd64"),
        ("TARGETOS", "linux"),
        ("TARGETARCH", "amd64"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    // Global ARGs (before the first FROM) are what FROM lines may use.
    for ins in instructions.iter().take_while(|i| i.keyword != "FROM") {
        if ins.keyword == "ARG" {
            for decl in ins.args.split_whitespace() {
                let (name, default) = decl.split_once('=').unwrap_or((decl, ""));
                let default = default.trim_matches('"').to_string();
                let value = args.get(name).cloned().unwrap_or(default);
                vars.insert(name.to_string(), value);
            }
        }
    }
    // Stages: (index into instructions of FROM, name, base as written, deps).
    struct Stage {
        from: usize,
        name: Option<String>,
        base: String,
        deps: Vec<String>,
    }
    let mut stages: Vec<Stage> = Vec::new();
    let mut problems = Vec::new();
    for (idx, ins) in instructions.iter().enumerate() {
        match ins.keyword.as_str() {
            "FROM" => {
                let (_, rest) = flags(&ins.args);
                let words: Vec<&str> = rest.split_whitespace().collect();
                let base = expand(words.first().copied().unwrap_or_default(), &vars);
                let name = match words.as_slice() {
                    [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_ascii_lowercase()),
                    _ => None,
                };
                stages.push(Stage {
                    from: idx,
                    name,
                    base,
                    deps: vec![],
                });
            }
            "COPY" | "ADD" | "RUN" => {
                let Some(stage) = stages.last_mut() else { continue };
                for (flag, value) in flags(&ins.args).0 {
                    if flag == "from" {
                        stage.deps.push(value.to_ascii_lowercase());
                    } else if flag == "mount" {
                        for part in value.split(',') {
                            if let Some(from) = part.strip_prefix("from=") {
                                stage.deps.push(from.to_ascii_lowercase());
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if stages.is_empty() {
        return Err(vec!["has no FROM instruction".into()]);
    }
    let find = |r: &str| -> Option<usize> {
        let r = r.to_ascii_lowercase();
        stages
            .iter()
            .position(|s| s.name.as_deref() == Some(r.as_str()))
            .or_else(|| r.parse::<usize>().ok().filter(|i| *i < stages.len()))
    };
    let last = stages.len() - 1;
    let target_index = match target {
        None => last,
        Some(t) => match find(t) {
            Some(i) => i,
            None => return Err(vec![format!("has no stage `{t}` (the compose file's build.target)")]),
        },
    };
    // The stages the target needs, and the images (not stages) they copy from.
    let mut needed = vec![false; stages.len()];
    let mut todo = vec![target_index];
    while let Some(i) = todo.pop() {
        if std::mem::replace(&mut needed[i], true) {
            continue;
        }
        let refs = std::iter::once(&stages[i].base).chain(&stages[i].deps);
        for r in refs {
            if let Some(j) = find(r).filter(|j| *j < i) {
                todo.push(j);
            }
        }
    }
    let mut rewritten: BTreeMap<usize, String> = BTreeMap::new();
    let mut substitutions = Vec::new();
    let mut local = |line: usize, from: Option<usize>, asked: &str, problems: &mut Vec<String>| -> Option<Local> {
        let parsed = match Reference::parse(asked) {
            Ok(parsed) => parsed,
            Err(e) => {
                problems.push(format!("line {line}: image `{asked}` {e}"));
                return None;
            }
        };
        let name = parsed.catalog_name();
        match catalog(&parsed) {
            Some(stand_in) => {
                substitutions.push(Substitution {
                    line,
                    asked: asked.to_string(),
                    entry: stand_in.entry.clone(),
                    from,
                });
                Some(stand_in)
            }
            None => {
                problems.push(format!(
                    "line {line}: `{asked}`: no local image stands in for `{name}` (the local profile builds from Debian packages and pulls nothing; its catalog: {catalog_names})"
                ));
                None
            }
        }
    };
    // Which stages stand on a substitute without apk (for the Alpine check),
    // and the WORKDIR of each stage's image: by index.
    let mut on_debian = vec![false; stages.len()];
    let mut base_workdirs: Vec<Option<String>> = vec![None; stages.len()];
    for (i, stage) in stages.iter().enumerate() {
        let ins = &instructions[stage.from];
        let (flag_list, rest) = flags(&ins.args);
        let as_part = rest.split_whitespace().skip(1).collect::<Vec<_>>().join(" ");
        let flag_text: String = flag_list.iter().map(|(k, v)| format!("--{k}={v} ")).collect();
        if !needed[i] {
            rewritten.insert(stage.from, format!("FROM scratch {as_part}").trim().to_string());
            continue;
        }
        if let Some(j) = find(&stage.base).filter(|j| *j < i) {
            on_debian[i] = on_debian[j];
            continue;
        }
        if stage.base == "scratch" {
            continue;
        }
        if let Some(stand_in) = local(ins.line, Some(stage.from), &stage.base, &mut problems) {
            on_debian[i] = !stand_in.apk;
            base_workdirs[i] = stand_in.workdir.clone();
            rewritten.insert(
                stage.from,
                format!("FROM {flag_text}{} {as_part}", stand_in.reference)
                    .trim()
                    .to_string(),
            );
        }
    }
    // Within the needed stages: images copied from, Alpine-only steps,
    // heredocs, mounts at paths relative to the WORKDIR. Each stage's WORKDIR:
    // its image's, then as the Dockerfile sets it (a stage on a stage starts
    // in that one's); None: `/`.
    let mut stage_index: Option<usize> = None;
    let mut workdirs: Vec<Option<String>> = vec![None; stages.len()];
    for (idx, ins) in instructions.iter().enumerate() {
        if ins.keyword == "FROM" {
            let s = stage_index.map_or(0, |s| s + 1);
            stage_index = Some(s);
            workdirs[s] = match find(&stages[s].base).filter(|j| *j < s) {
                Some(j) => workdirs[j].clone(),
                None => base_workdirs[s].clone(),
            };
            continue;
        }
        let Some(s) = stage_index.filter(|s| needed[*s]) else {
            continue;
        };
        let (mut flag_list, rest) = flags(&ins.args);
        if ins.keyword == "WORKDIR" {
            let dir = expand(rest.trim().trim_matches('"'), &vars);
            workdirs[s] = (!dir.contains('$')).then(|| absolute(workdirs[s].as_deref().unwrap_or("/"), &dir));
        }
        if matches!(ins.keyword.as_str(), "COPY" | "ADD") {
            let from = flag_list.iter().find(|(k, _)| k == "from").map(|(_, v)| v.clone());
            if let Some(from) = from.filter(|f| find(f).is_none()) {
                let asked = expand(&from, &vars);
                if let Some(stand_in) = local(ins.line, None, &asked, &mut problems) {
                    rewritten.insert(
                        idx,
                        instruction_text(ins)
                            .replace(&format!("--from={from}"), &format!("--from={}", stand_in.reference)),
                    );
                }
            }
            if !ins.heredocs.is_empty() {
                problems.push(format!(
                    "line {}: {} with a heredoc: the local builder (buildah) cannot create files from heredocs; put the file in the build context",
                    ins.line, ins.keyword
                ));
            }
        }
        if ins.keyword == "RUN" {
            let script = if ins.heredocs.is_empty() {
                rest.to_string()
            } else {
                format!("{rest}\n{}", ins.heredocs.join("\n"))
            };
            if on_debian[s]
                && script
                    .split(|c: char| !c.is_ascii_alphanumeric() && c != '-')
                    .any(|w| w == "apk")
            {
                problems.push(format!(
                    "line {}: `apk` is Alpine's package manager, and the local stand-in for `{}` is Debian without an apk (the stand-ins that emulate apk: {apk_names})",
                    ins.line,
                    catalog_name(&stages[root_base(&stages.iter().map(|s| s.base.clone()).collect::<Vec<_>>(), s, &find)].base)
                ));
            }
            // BuildKit takes a mount's relative target in the WORKDIR (docker
            // init's Dockerfiles bind requirements.txt, package.json and go.mod
            // so); buildah wants it absolute.
            let workdir = workdirs[s].as_deref().unwrap_or("/");
            let mut relative_mounts = false;
            for (_, value) in flag_list.iter_mut().filter(|(flag, _)| flag == "mount") {
                let parts: Vec<String> = value
                    .split(',')
                    .map(|part| match part.split_once('=') {
                        Some((key @ ("target" | "dst" | "destination"), path)) if !path.starts_with('/') => {
                            relative_mounts = true;
                            format!("{key}={}", absolute(workdir, path))
                        }
                        _ => part.to_string(),
                    })
                    .collect();
                *value = parts.join(",");
            }
            if !ins.heredocs.is_empty() {
                rewritten.insert(idx, heredoc_run(&flag_list, rest, &ins.heredocs, &ins.args));
            } else if relative_mounts {
                let flag_text: String = flag_list.iter().map(|(k, v)| format!("--{k}={v} ")).collect();
                rewritten.insert(idx, format!("RUN {flag_text}{rest}"));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    // The Dockerfile with rewritten instructions in place (line numbers of what
    // is not rewritten are kept for the builder's messages where possible).
    let instructions: Vec<String> = instructions
        .iter()
        .enumerate()
        .map(|(idx, ins)| rewritten.remove(&idx).unwrap_or_else(|| instruction_text(ins)))
        .collect();
    Ok(Plan {
        dockerfile: render(&instructions),
        substitutions,
        instructions,
    })
}

/// `path` taken in the folder `dir` (itself absolute), `.` and `..` resolved.
fn absolute(dir: &str, path: &str) -> String {
    let mut parts: Vec<&str> = if path.starts_with('/') {
        vec![]
    } else {
        dir.split('/').collect()
    };
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    let joined = parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("/");
    format!("/{joined}")
}

/// The stage whose base is an image, following stage-on-stage `FROM`s down from `i`.
fn root_base(bases: &[String], mut i: usize, find: &dyn Fn(&str) -> Option<usize>) -> usize {
    while let Some(j) = find(&bases[i]).filter(|j| *j < i) {
        i = j;
    }
    i
}

/// An instruction as one line (heredocs kept after it).
fn instruction_text(ins: &Instruction) -> String {
    let mut text = format!("{} {}", ins.keyword, ins.args);
    for (body, word) in ins.heredocs.iter().zip(heredoc_words(&ins.args)) {
        text.push('\n');
        text.push_str(body);
        text.push_str(word.trim_start_matches('-'));
    }
    text
}

/// `RUN [flags] <<EOF … EOF` as BuildKit runs it, for a builder without
/// heredocs: a lone heredoc is the script (its `#!` line, if any, says the
/// interpreter); a command with heredocs is a shell script as written.
fn heredoc_run(flag_list: &[(String, String)], rest: &str, bodies: &[String], args: &str) -> String {
    let flag_text: String = flag_list.iter().map(|(k, v)| format!("--{k}={v} ")).collect();
    let lone = rest.trim_start().starts_with("<<") && rest.split_whitespace().count() == 1;
    let argv: Vec<String> = if lone {
        let body = &bodies[0];
        match body.strip_prefix("#!") {
            Some(shebang) => {
                let interpreter = shebang.lines().next().unwrap_or("/bin/sh").trim().to_string();
                let mut argv: Vec<String> = interpreter.split_whitespace().map(String::from).collect();
                argv.extend(["-c".to_string(), body.clone()]);
                argv
            }
            None => vec!["/bin/sh".into(), "-c".into(), body.clone()],
        }
    } else {
        let (_, command) = flags(args);
        let mut script = command.to_string();
        for (body, word) in bodies.iter().zip(heredoc_words(command)) {
            script.push('\n');
            script.push_str(body);
            script.push_str(word.trim_start_matches('-'));
        }
        vec!["/bin/sh".into(), "-c".into(), script]
    };
    format!("RUN {flag_text}{}", serde_json::to_string(&argv).expect("strings"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(asked: &Reference) -> Option<Local> {
        let name = asked.catalog_name();
        ["nginx", "python", "golang", "debian", "traefik"]
            .contains(&name)
            .then(|| Local {
                reference: format!("linuxkit-compose.local/{name}:t"),
                entry: name.to_string(),
                apk: name == "python",
                workdir: (name == "golang").then(|| "/go".to_string()),
            })
    }

    fn plan_of(text: &str, target: Option<&str>) -> Result<Plan, Vec<String>> {
        plan(text, &BTreeMap::new(), target, &catalog, "nginx, python", "python")
    }

    #[test]
    fn env_follows_the_stage_from_and_precedes_the_dockerfiles_own() {
        let mut p = plan_of(
            "FROM golang:1.13 AS build\nRUN true\nFROM python:3.7\nENV B=mine\nCOPY --from=build /x /y\nCOPY --from=nginx:1 /etc/nginx /n\n",
            None,
        )
        .unwrap();
        let env: BTreeMap<String, String> = [
            ("A".to_string(), "--flag".to_string()),
            ("B".to_string(), "two words".to_string()),
        ]
        .into();
        for sub in p.substitutions.clone() {
            p.set_env_after(&sub, &env);
        }
        assert_eq!(
            p.dockerfile,
            "FROM linuxkit-compose.local/golang:t AS build\nENV A=--flag B=\"two words\"\nRUN true\n\
             FROM linuxkit-compose.local/python:t\nENV A=--flag B=\"two words\"\nENV B=mine\n\
             COPY --from=build /x /y\nCOPY --from=linuxkit-compose.local/nginx:t /etc/nginx /n\n",
            "not after the COPY --from (no stage begins there)"
        );
    }

    #[test]
    fn bases_resolve_through_args_and_the_catalog() {
        let p = plan_of(
            "ARG NGINX_IMAGE=nginx:1.27-alpine\nFROM ${NGINX_IMAGE}\nCOPY index.html /x\n",
            None,
        )
        .unwrap();
        assert_eq!(
            p.dockerfile,
            "ARG NGINX_IMAGE=nginx:1.27-alpine\nFROM linuxkit-compose.local/nginx:t\nCOPY index.html /x\n"
        );
        assert_eq!(
            p.substitutions,
            [Substitution {
                line: 2,
                asked: "nginx:1.27-alpine".into(),
                entry: "nginx".into(),
                from: Some(1),
            }]
        );
        let args = [(
            "NGINX_IMAGE".to_string(),
            "docker.io/library/python:3.11-slim".to_string(),
        )]
        .into();
        let p = plan(
            "ARG NGINX_IMAGE=nginx\nFROM $NGINX_IMAGE\n",
            &args,
            None,
            &catalog,
            "",
            "",
        )
        .unwrap();
        assert_eq!(p.substitutions[0].entry, "python");
    }

    /// Only the stages the target needs are resolved; the others may name
    /// images nobody has, and become `FROM scratch`.
    #[test]
    fn multi_stage_to_a_target() {
        let text = "# syntax=docker/dockerfile:1.4\nFROM --platform=$BUILDPLATFORM golang:1.18-alpine AS builder\nWORKDIR /src\nRUN --mount=type=cache,target=/root/.cache/go-build go build -o /out/app .\n\nFROM builder AS dev\nRUN apk add git\n\nFROM scratch\nCOPY --from=builder /out/app /app\n\nFROM someone/unobtainable:1 AS extra\n";
        let p = plan_of(text, Some("dev")).unwrap_err();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with(
                "line 7: `apk` is Alpine's package manager, and the local stand-in for `golang` is Debian without an apk (the stand-ins that emulate apk: python)"
            ),
            "{p:?}"
        );
        let p = plan_of(text, Some("3")).unwrap_err();
        assert!(p[0].contains("`someone/unobtainable:1`"), "{p:?}");
        let p = plan_of(&text.replace("RUN apk add git", "RUN true"), Some("2")).unwrap();
        assert!(
            p.dockerfile
                .contains("FROM --platform=$BUILDPLATFORM linuxkit-compose.local/golang:t AS builder\n"),
            "{}",
            p.dockerfile
        );
        assert!(p.dockerfile.contains("FROM scratch AS dev\n"), "{}", p.dockerfile);
        assert!(p.dockerfile.contains("FROM scratch AS extra\n"), "{}", p.dockerfile);
        assert!(p.dockerfile.contains("COPY --from=builder /out/app /app\n"));
    }

    /// A stand-in that emulates apk takes Alpine's RUN steps as written, in
    /// its own stages and in those built on them.
    #[test]
    fn apk_on_a_stand_in_that_emulates_it() {
        let text = "FROM python:3.7-alpine AS base\nRUN apk add --no-cache bash curl && adduser -D app -u 1000\nFROM base\nRUN apk del curl\nUSER 1000\n";
        let p = plan_of(text, None).unwrap();
        assert!(
            p.dockerfile
                .contains("RUN apk add --no-cache bash curl && adduser -D app -u 1000\n"),
            "{}",
            p.dockerfile
        );
        let e = plan_of(&text.replace("python:3.7-alpine", "nginx:alpine"), None).unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[1].starts_with("line 4: `apk`"), "{e:?}");
    }

    #[test]
    fn unknown_base_names_the_line_and_the_catalog() {
        let e = plan_of("FROM node:20\nRUN true\n", None).unwrap_err();
        assert_eq!(e, ["line 1: `node:20`: no local image stands in for `node` (the local profile builds from Debian packages and pulls nothing; its catalog: nginx, python)"]);
    }

    #[test]
    fn copy_from_an_image_uses_the_catalog() {
        let p = plan_of(
            "FROM debian:bookworm-slim\nCOPY --from=nginx:latest /etc/nginx /etc/nginx\n",
            None,
        )
        .unwrap();
        assert!(
            p.dockerfile
                .contains("COPY --from=linuxkit-compose.local/nginx:t /etc/nginx /etc/nginx\n"),
            "{}",
            p.dockerfile
        );
    }

    #[test]
    fn mounts_at_relative_targets_are_taken_in_the_workdir() {
        let text = "ARG APP=/app\nFROM python:3.12-slim AS base\nWORKDIR $APP\nRUN --mount=type=cache,target=/root/.cache/pip \\\n    --mount=type=bind,source=requirements.txt,target=requirements.txt \\\n    pip install -r requirements.txt\nWORKDIR src\nRUN --mount=type=bind,target=. --mount=type=bind,source=x,dst=../x.txt ls\nFROM base AS final\nRUN --mount=type=bind,source=go.mod,target=./go.mod true\nFROM golang:1.22 AS other\nRUN --mount=type=bind,source=go.sum,target=go.sum go mod download\n";
        let plan = plan_of(text, Some("final")).unwrap();
        assert!(
            plan.dockerfile.contains("RUN --mount=type=cache,target=/root/.cache/pip --mount=type=bind,source=requirements.txt,target=/app/requirements.txt pip install -r requirements.txt\n"),
            "{}",
            plan.dockerfile
        );
        assert!(
            plan.dockerfile
                .contains("RUN --mount=type=bind,target=/app/src --mount=type=bind,source=x,dst=/app/x.txt ls\n"),
            "{}",
            plan.dockerfile
        );
        // A stage on a stage starts in its WORKDIR.
        assert!(
            plan.dockerfile
                .contains("RUN --mount=type=bind,source=go.mod,target=/app/src/go.mod true\n"),
            "{}",
            plan.dockerfile
        );
        // A stage on an image starts in the image's (golang's is /go).
        let plan = plan_of(text, Some("other")).unwrap();
        assert!(
            plan.dockerfile.contains("target=/go/go.sum go mod download"),
            "{}",
            plan.dockerfile
        );
        assert_eq!(absolute("/a/b", "../c/./d"), "/a/c/d");
        assert_eq!(absolute("/", "."), "/");
    }

    #[test]
    fn heredocs_become_scripts() {
        let text = "FROM python:3.11\nRUN <<EOF\nset -e\necho hi > /x\nEOF\nRUN --mount=type=cache,target=/c python3 <<PY\nprint(1)\nPY\nRUN <<EOF\n#!/usr/bin/env python3\nprint(2)\nEOF\nCMD [\"x\"]\n";
        let p = plan_of(text, None).unwrap();
        let lines: Vec<&str> = p.dockerfile.lines().collect();
        assert_eq!(lines[1], r#"RUN ["/bin/sh","-c","set -e\necho hi > /x\n"]"#);
        assert_eq!(
            lines[2],
            r#"RUN --mount=type=cache,target=/c ["/bin/sh","-c","python3 <<PY\nprint(1)\nPY"]"#
        );
        assert_eq!(
            lines[3],
            r##"RUN ["/usr/bin/env","python3","-c","#!/usr/bin/env python3\nprint(2)\n"]"##
        );
        assert_eq!(lines[4], r#"CMD ["x"]"#);
    }

    #[test]
    fn continuations_and_names() {
        let p = plan_of(
            "FROM \\\n  python:3.11-slim \\\n  AS base\nRUN echo a \\\n# comment\n  && echo b\n",
            None,
        )
        .unwrap();
        assert_eq!(p.substitutions[0].line, 1);
        assert!(p.dockerfile.contains("RUN echo a    && echo b"), "{}", p.dockerfile);
    }

    /// A base that is no image reference says why, on its line (an unset
    /// variable leaves an empty one).
    #[test]
    fn bases_that_are_no_references() {
        let e = plan_of("FROM ${UNSET}\nCOPY --from=nginx: /a /b\n", None).unwrap_err();
        assert_eq!(
            e,
            [
                "line 1: image `` is not a valid image reference (lowercase name components separated by `/`; an unset variable leaves an empty one)",
                "line 2: image `nginx:` has an invalid tag ``"
            ]
        );
    }
}
