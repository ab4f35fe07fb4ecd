//! The agent's system prompt, one per template: `templates/system_prompt.md` with its markers
//! filled from the template's own description (`template.json`'s `prompt`, with the parts a
//! template composes mounted under their directories), its `check` commands, the strict
//! TypeScript flags its `tsconfig*.json` files set, and the tool registry
//! ([`super::tools::TOOLS`]). So the layout the model reads is the one on disk, and the tools and
//! arguments it reads are the ones it can call.

use std::collections::BTreeSet;

use serde_json::Value;

use super::tools::{ToolDef, TOOLS};
use crate::template::{PromptSpec, TemplateManifest};

/// The line of `templates/system_prompt.md` replaced with the tool list.
pub const TOOLS_MARKER: &str = "{{tools}}";
/// The markers of `templates/system_prompt.md`, each alone on its line: the project (layout and
/// how it fits together), the tools, template-specific work bullets, the checks, the rules.
pub const MARKERS: [&str; 5] = [
    "{{project}}",
    TOOLS_MARKER,
    "{{work}}",
    "{{checks}}",
    "{{rules}}",
];

/// `templates/system_prompt.md` as written, markers included.
pub const TEMPLATE: &str = include_str!("../../../../templates/system_prompt.md");

/// What a system prompt is generated from: one template as a project sees it.
pub struct TemplateSource<'a> {
    /// The template's name (`fullstack`).
    pub name: &'a str,
    pub manifest: &'a TemplateManifest,
    /// The templates it composes, `(dir in the project, manifest)`, in
    /// [`TemplateManifest::parts`] order.
    pub parts: Vec<(&'a str, &'a TemplateManifest)>,
    /// Every file of the composed template: path in the project, content.
    pub files: &'a [(&'a str, &'a [u8])],
}

/// The system prompt for a project made from `src`.
pub fn system_prompt(src: &TemplateSource) -> String {
    let mut out = TEMPLATE.to_string();
    for (marker, text) in [
        ("{{project}}", project_section(src)),
        (TOOLS_MARKER, tools_section()),
        ("{{work}}", bullets(&work(src))),
        ("{{checks}}", checks_section(src.manifest)),
        ("{{rules}}", bullets(&rules(src))),
    ] {
        out = out.replace(marker, &text);
    }
    out
}

/// One bullet per tool, in registry order: ``- `name(arg, optional?)`: description``.
pub fn tools_section() -> String {
    TOOLS.iter().map(bullet).collect::<Vec<_>>().join("\n")
}

fn bullet(def: &ToolDef) -> String {
    format!("- `{}`: {}", def.signature(), def.description)
}

fn bullets(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| format!("- {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `s` with `{{dir}}` and `{{cd}}` filled for a template mounted at `dir` (`""` is the root).
fn fill(s: &str, dir: &str) -> String {
    let (d, cd) = if dir.is_empty() {
        (String::new(), String::new())
    } else {
        (format!("{dir}/"), format!("cd {dir} && "))
    };
    s.replace("{{dir}}", &d).replace("{{cd}}", &cd)
}

/// The template's own spec at the root, then each part's under its directory.
fn specs<'a>(src: &'a TemplateSource) -> Vec<(&'a str, &'a PromptSpec)> {
    let mut v = vec![("", &src.manifest.prompt)];
    v.extend(src.parts.iter().map(|(dir, m)| (*dir, &m.prompt)));
    v
}

fn join(dir: &str, path: &str) -> String {
    if dir.is_empty() {
        path.to_string()
    } else {
        format!("{dir}/{path}")
    }
}

/// "The project is the X template", its layout as a path table, and its `about` paragraphs.
fn project_section(src: &TemplateSource) -> String {
    let m = src.manifest;
    let mut rows: Vec<(String, String)> = Vec::new();
    for (dir, part) in &src.parts {
        rows.push((format!("{dir}/"), part.prompt.summary.clone()));
        for (p, about) in &part.prompt.layout {
            rows.push((join(dir, p), fill(about, dir)));
        }
    }
    for (p, about) in &m.prompt.layout {
        rows.push((p.clone(), fill(about, "")));
    }
    let mut out = format!("The project is the `{}` template", src.name);
    if !m.description.is_empty() {
        out.push_str(": ");
        out.push_str(m.description.trim_end_matches('.'));
    }
    out.push('.');
    if rows.is_empty() {
        out.push_str(" Its layout is not described here: start with `list_files`.");
    } else {
        out.push_str(" Its files (paths are relative to the project root):\n\n```\n");
        let width = rows.iter().map(|(p, _)| p.len()).max().unwrap_or(0).min(28) + 2;
        for (p, about) in rows {
            out.push_str(format!("{p:<width$}{about}").trim_end());
            out.push('\n');
        }
        out.push_str("```");
    }
    for para in &m.prompt.about {
        out.push_str("\n\n");
        out.push_str(&fill(para, ""));
    }
    out
}

fn work(src: &TemplateSource) -> Vec<String> {
    specs(src)
        .into_iter()
        .flat_map(|(dir, spec)| spec.work.iter().map(move |w| fill(w, dir)))
        .collect()
}

/// The template's checks, as the platform runs them.
fn checks_section(m: &TemplateManifest) -> String {
    if m.check.is_empty() {
        return "  - (this template defines no checks)".to_string();
    }
    m.check
        .iter()
        .map(|c| {
            let cd = if c.cwd.is_empty() {
                String::new()
            } else {
                format!("cd {} && ", c.cwd)
            };
            format!("  - {}: `{cd}{}`", c.name, c.command)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn rules(src: &TemplateSource) -> Vec<String> {
    let mut out: Vec<String> = specs(src)
        .into_iter()
        .flat_map(|(dir, spec)| spec.rules.iter().map(move |r| fill(r, dir)))
        .collect();
    out.extend(typescript_rule(src.files));
    let generated = generated_paths(src);
    if !generated.is_empty() {
        out.push(format!(
            "Do not write or rely on what installs, builds and runs create: {}. Do not touch \
             them with the file tools.",
            generated
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out
}

/// The paths the app creates (dependencies, build output, database): each spec's `generated`
/// under its directory, and every install's `outputs` under its `cwd`; sorted, without
/// duplicates.
pub fn generated_paths(src: &TemplateSource) -> Vec<String> {
    let mut set = BTreeSet::new();
    for (dir, spec) in specs(src) {
        for g in &spec.generated {
            set.insert(join(dir, g));
        }
    }
    for inst in src.manifest.install.values() {
        for o in &inst.outputs {
            set.insert(format!("{}/", join(&inst.cwd, o.trim_end_matches('/'))));
        }
    }
    // `x` and `x/` are the same directory.
    let dirs: BTreeSet<String> = set
        .iter()
        .filter_map(|p| p.strip_suffix('/').map(String::from))
        .collect();
    set.into_iter().filter(|p| !dirs.contains(p)).collect()
}

/// The compiler options that make a type check fail where a looser setup would pass, in the
/// order the rule lists them.
const STRICT_FLAGS: [&str; 9] = [
    "strict",
    "noUnusedLocals",
    "noUnusedParameters",
    "noFallthroughCasesInSwitch",
    "noImplicitReturns",
    "noUncheckedIndexedAccess",
    "exactOptionalPropertyTypes",
    "verbatimModuleSyntax",
    "erasableSyntaxOnly",
];

/// The strict flags each `tsconfig*.json` among `files` turns on, in path order; files that
/// turn none on are left out. Comments and trailing commas (which tsc accepts) are allowed.
pub fn strict_typescript_flags(files: &[(&str, &[u8])]) -> Vec<(String, Vec<&'static str>)> {
    let mut out = Vec::new();
    let mut configs: Vec<&(&str, &[u8])> = files
        .iter()
        .filter(|(p, _)| {
            let name = p.rsplit('/').next().unwrap_or(p);
            name.starts_with("tsconfig") && name.ends_with(".json")
        })
        .collect();
    configs.sort_by_key(|(p, _)| *p);
    for (path, bytes) in configs {
        let Ok(v) = serde_json::from_str::<Value>(&strip_jsonc(&String::from_utf8_lossy(bytes)))
        else {
            continue;
        };
        let opts = &v["compilerOptions"];
        let on: Vec<&'static str> = STRICT_FLAGS
            .into_iter()
            .filter(|f| opts[*f] == Value::Bool(true))
            .collect();
        if !on.is_empty() {
            out.push((path.to_string(), on));
        }
    }
    out
}

/// The rule naming the strict TypeScript flags, with the unused-code flags called out as the
/// most likely type-check failure; `None` without a tsconfig that sets any.
fn typescript_rule(files: &[(&str, &[u8])]) -> Option<String> {
    let configs = strict_typescript_flags(files);
    if configs.is_empty() {
        return None;
    }
    let on: BTreeSet<&str> = configs
        .iter()
        .flat_map(|(_, f)| f.iter().copied())
        .collect();
    let flags: Vec<String> = STRICT_FLAGS
        .iter()
        .filter(|f| on.contains(*f))
        .map(|f| format!("`{f}`"))
        .collect();
    let paths: Vec<String> = configs.iter().map(|(p, _)| format!("`{p}`")).collect();
    let mut rule = format!(
        "The TypeScript check is strict: {} set{} {}.",
        paths.join(" and "),
        if paths.len() == 1 { "s" } else { "" },
        flags.join(", ")
    );
    let locals = on.contains("noUnusedLocals");
    let params = on.contains("noUnusedParameters");
    if locals || params {
        let (names, what) = match (locals, params) {
            (true, true) => (
                "`noUnusedLocals`/`noUnusedParameters`",
                "an unused import, variable, function or parameter",
            ),
            (true, false) => ("`noUnusedLocals`", "an unused import, variable or function"),
            _ => ("`noUnusedParameters`", "an unused parameter"),
        };
        rule.push_str(&format!(
            " The most likely type-check failure is {names}: {what} is an error (TS6133), not a \
             warning. Remove what you stop using in the same edit, imports included"
        ));
        if params {
            rule.push_str(", and prefix a parameter you must keep but do not read with `_`");
        }
        rule.push('.');
    }
    if on.contains("verbatimModuleSyntax") {
        rule.push_str(
            " With `verbatimModuleSyntax`, import types with `import type` (or \
             `import { type X }`).",
        );
    }
    if on.contains("noUncheckedIndexedAccess") {
        rule.push_str(" With `noUncheckedIndexedAccess`, `arr[i]` may be `undefined`: check it.");
    }
    Some(rule)
}

/// JSON with comments (`//`, `/* */`) and trailing commas made plain JSON; strings are kept as
/// they are.
fn strip_jsonc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => out.extend(chars.next()),
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut prev = ' ';
                for n in chars.by_ref() {
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
            }
            (',', _) => {
                // A comma followed only by whitespace and comments before `}` or `]` goes.
                if !matches!(next_token(chars.clone()), Some('}' | ']')) {
                    out.push(',');
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// The first character of `chars` that is not whitespace or inside a comment.
fn next_token(mut chars: std::iter::Peekable<std::str::Chars>) -> Option<char> {
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            (c, _) if c.is_whitespace() => {}
            ('/', Some('/')) => {
                chars.by_ref().find(|n| *n == '\n');
            }
            ('/', Some('*')) => {
                chars.next();
                let mut prev = ' ';
                for n in chars.by_ref() {
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
            }
            (c, _) => return Some(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A real template as the Worker embeds it (`build.rs`): its files, with each `compose`d
    /// template's files under its directory; dependency and build directories skipped.
    struct Real {
        name: &'static str,
        manifest: TemplateManifest,
        parts: Vec<(String, TemplateManifest)>,
        files: Vec<(String, Vec<u8>)>,
    }

    fn templates_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates")
    }

    fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, Vec<u8>)>) {
        const SKIP: [&str; 6] = [
            "node_modules",
            "dist",
            ".venv",
            "__pycache__",
            ".pytest_cache",
            ".vite",
        ];
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().to_string();
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if e.path().is_dir() {
                if !SKIP.contains(&name.as_str()) {
                    walk(&e.path(), &child, out);
                }
            } else if name != "template.json" && !name.ends_with(".db") && !name.ends_with(".pyc") {
                out.push((child, std::fs::read(e.path()).unwrap()));
            }
        }
    }

    fn manifest_of(name: &str) -> TemplateManifest {
        let p = templates_dir().join(name).join("template.json");
        TemplateManifest::parse(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    fn real(name: &'static str) -> Real {
        let manifest = manifest_of(name);
        let mut files = Vec::new();
        walk(&templates_dir().join(name), "", &mut files);
        let mut parts = Vec::new();
        for (mount, part) in manifest.parts() {
            walk(&templates_dir().join(part), mount, &mut files);
            parts.push((mount.to_string(), manifest_of(part)));
        }
        Real {
            name,
            manifest,
            parts,
            files,
        }
    }

    fn prompt_of(r: &Real) -> String {
        let files: Vec<(&str, &[u8])> = r
            .files
            .iter()
            .map(|(p, b)| (p.as_str(), b.as_slice()))
            .collect();
        system_prompt(&TemplateSource {
            name: r.name,
            manifest: &r.manifest,
            parts: r.parts.iter().map(|(d, m)| (d.as_str(), m)).collect(),
            files: &files,
        })
    }

    fn generated_of(r: &Real) -> Vec<String> {
        generated_paths(&TemplateSource {
            name: r.name,
            manifest: &r.manifest,
            parts: r.parts.iter().map(|(d, m)| (d.as_str(), m)).collect(),
            files: &[],
        })
    }

    const REAL: [&str; 3] = ["frontend", "backend", "fullstack"];

    /// Every path the prompt names outside the tool list (whose descriptions are the registry's,
    /// the same for every template): the first column of the layout table, and each code span
    /// that is a relative path (has a `/` or a file extension, no spaces or other syntax).
    fn mentioned_paths(prompt: &str) -> Vec<String> {
        let tools = prompt.find("## Tools").unwrap();
        let how = prompt.find("## How to work").unwrap();
        let text = format!("{}{}", &prompt[..tools], &prompt[how..]);
        let mut out = Vec::new();
        let mut in_fence = false;
        let mut prose = String::new();
        for line in text.lines() {
            if line.starts_with("```") {
                in_fence = !in_fence;
                continue;
            }
            if in_fence {
                out.push(line.split_whitespace().next().unwrap().to_string());
            } else {
                prose.push_str(line);
                prose.push('\n');
            }
        }
        const EXTS: [&str; 14] = [
            "ts", "tsx", "js", "jsx", "json", "py", "md", "html", "css", "txt", "ini", "db", "svg",
            "toml",
        ];
        for span in prose.split('`').skip(1).step_by(2) {
            let pathish = !span.is_empty()
                && !span.starts_with(['/', '-'])
                && span
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c));
            let ext = span.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
            if pathish && (span.contains('/') || EXTS.contains(&ext)) {
                out.push(span.to_string());
            }
        }
        out
    }

    #[test]
    fn the_template_has_each_marker_once_on_its_own_line() {
        for m in MARKERS {
            assert_eq!(TEMPLATE.matches(m).count(), 1, "{m}");
            assert!(TEMPLATE.lines().any(|l| l == m), "{m}");
        }
    }

    #[test]
    fn each_real_templates_prompt_mentions_only_paths_that_exist_in_it() {
        for name in REAL {
            let r = real(name);
            let p = prompt_of(&r);
            assert!(!p.contains("{{"), "{name}: a marker is left");
            let files: BTreeSet<&str> = r.files.iter().map(|(p, _)| p.as_str()).collect();
            let dirs: BTreeSet<String> = files
                .iter()
                .flat_map(|f| {
                    f.match_indices('/')
                        .map(|(i, _)| f[..=i].to_string())
                        .collect::<Vec<_>>()
                })
                .collect();
            let generated = generated_of(&r);
            for g in &generated {
                let g = g.trim_end_matches('/');
                assert!(
                    !files.contains(g) && !dirs.contains(&format!("{g}/")),
                    "{name}: {g} is declared generated but ships in the template"
                );
            }
            let mentioned = mentioned_paths(&p);
            assert!(mentioned.len() >= 8, "{name}: {mentioned:?}");
            for m in &mentioned {
                let ok = files.contains(m.as_str())
                    || dirs.contains(m)
                    || generated
                        .iter()
                        .any(|g| m == g || g.ends_with('/') && m.starts_with(g.as_str()));
                assert!(
                    ok,
                    "{name}: the prompt names {m}, which is not in the template\n{p}"
                );
            }
        }
    }

    #[test]
    fn each_template_gets_its_own_layout_checks_and_rules() {
        let fe = prompt_of(&real("frontend"));
        let be = prompt_of(&real("backend"));
        let fs = prompt_of(&real("fullstack"));
        assert!(fe.starts_with(TEMPLATE.split("{{project}}").next().unwrap()));

        assert!(fs.contains("The project is the `fullstack` template"));
        assert!(fs.contains("\nfrontend/src/App.tsx ") && fs.contains("\nbackend/app/main.py "));
        assert!(fs.contains("\nfrontend/ ") && fs.contains("\nbackend/ "));
        assert!(fs.contains("`cd frontend && npm install <pkg>`"));
        assert!(fs.contains("`cd backend && .venv/bin/pip install -r requirements.txt`"));
        assert!(fs.contains("How the pieces connect"));
        assert!(!fs.contains("frontend only") && !fs.contains("API only"));

        assert!(fe.contains("The project is the `frontend` template"));
        assert!(fe.contains("\nsrc/App.tsx ") && fe.contains("`npm install <pkg>`"));
        assert!(fe.contains("This project is a frontend only"));
        for absent in [
            "backend/",
            "app/main.py",
            "pytest",
            "frontend/",
            "README.md",
        ] {
            assert!(!fe.contains(absent), "frontend prompt names {absent}");
        }

        assert!(be.contains("The project is the `backend` template"));
        assert!(be.contains("\napp/main.py ") && be.contains("This project is an API only"));
        assert!(be.contains("`.venv/bin/pip install -r requirements.txt`"));
        for absent in [
            "frontend/",
            "src/",
            "TypeScript",
            "tsconfig",
            "npm ",
            "README.md",
        ] {
            assert!(!be.contains(absent), "backend prompt names {absent}");
        }

        // The checks are the ones verification runs, in its order.
        for (p, name) in [(&fe, "frontend"), (&be, "backend"), (&fs, "fullstack")] {
            let m = manifest_of(name);
            let mut at = 0;
            for c in &m.check {
                let cd = if c.cwd.is_empty() {
                    String::new()
                } else {
                    format!("cd {} && ", c.cwd)
                };
                let line = format!("  - {}: `{cd}{}`", c.name, c.command);
                let i = p[at..]
                    .find(&line)
                    .unwrap_or_else(|| panic!("{name}: {line}"));
                at += i + line.len();
            }
        }
        assert!(fs.contains("  - pytest: `cd backend && .venv/bin/python -m pytest -q`"));
        assert!(be.contains("  - pytest: `.venv/bin/python -m pytest -q`"));

        // Generated paths follow the mount too.
        assert!(fs.contains("`backend/.venv/`") && fs.contains("`frontend/node_modules/`"));
        assert!(fs.contains("`backend/data/app.db`") && be.contains("`data/app.db`"));
    }

    #[test]
    fn the_strict_typescript_flags_come_from_the_tsconfig() {
        let fe = real("frontend");
        let files: Vec<(&str, &[u8])> = fe
            .files
            .iter()
            .map(|(p, b)| (p.as_str(), b.as_slice()))
            .collect();
        let flags = strict_typescript_flags(&files);
        assert_eq!(
            flags.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
            ["tsconfig.app.json", "tsconfig.node.json"]
        );
        assert!(
            flags[0].1.contains(&"noUnusedLocals") && flags[0].1.contains(&"noUnusedParameters")
        );
        for name in ["frontend", "fullstack"] {
            let p = prompt_of(&real(name));
            let dir = if name == "fullstack" { "frontend/" } else { "" };
            assert!(
                p.contains(&format!(
                    "- The TypeScript check is strict: `{dir}tsconfig.app.json` and `{dir}tsconfig.node.json` set `strict`, `noUnusedLocals`, `noUnusedParameters`"
                )),
                "{name}\n{p}"
            );
            assert!(
                p.contains(
                    "The most likely type-check failure is `noUnusedLocals`/`noUnusedParameters`"
                ) && p.contains("prefix a parameter you must keep but do not read with `_`")
                    && p.contains("import type"),
                "{name}"
            );
        }

        // Only the flags that are set; comments and trailing commas are fine.
        let tsconfig = br#"{
            // app code
            "compilerOptions": {
                "strict": true, /* the base */
                "noUnusedLocals": false,
                "noUnusedParameters": true,
                "paths": { "@/*": ["./src/*"], },
            },
        }"#;
        let files: [(&str, &[u8]); 2] = [("web/tsconfig.json", tsconfig), ("web/src/a.ts", b"")];
        assert_eq!(
            strict_typescript_flags(&files),
            vec![(
                "web/tsconfig.json".to_string(),
                vec!["strict", "noUnusedParameters"]
            )]
        );
        let rule = typescript_rule(&files).unwrap();
        assert!(
            rule.contains("`web/tsconfig.json` sets `strict`, `noUnusedParameters`.")
                && rule.contains("is `noUnusedParameters`: an unused parameter is an error")
                && !rule.contains("noUnusedLocals"),
            "{rule}"
        );
        // No tsconfig, or one that sets nothing strict: no rule.
        assert_eq!(typescript_rule(&[("a.py", b"")]), None);
        assert_eq!(
            typescript_rule(&[("tsconfig.json", b"{\"compilerOptions\":{}}")]),
            None
        );
        assert_eq!(typescript_rule(&[("tsconfig.json", b"not json")]), None);
        assert_eq!(
            strip_jsonc(r#"{"a": "x // y, ]", }"#),
            r#"{"a": "x // y, ]" }"#
        );
    }

    #[test]
    fn an_undescribed_template_gets_a_generic_prompt() {
        let m = TemplateManifest::default();
        let p = system_prompt(&TemplateSource {
            name: "mystery",
            manifest: &m,
            parts: vec![],
            files: &[],
        });
        assert!(!p.contains("{{"));
        assert!(p.contains(
            "The project is the `mystery` template. Its layout is not described here: start with `list_files`."
        ));
        assert!(p.contains("(this template defines no checks)"));
    }

    #[test]
    fn the_prompt_lists_every_tool_with_its_schema_arguments() {
        let p = prompt_of(&real("fullstack"));
        assert!(p.contains("read_docs(name?)"));
        assert!(!p.contains("read_docs(topic"));
        let section = &p[p.find("## Tools").expect("a Tools section")..];
        for def in TOOLS {
            let open = format!("- `{}(", def.name);
            let lines: Vec<&str> = section.lines().filter(|l| l.starts_with(&open)).collect();
            assert_eq!(lines.len(), 1, "{}: {lines:?}", def.name);
            let line = lines[0];
            assert!(line.ends_with(def.description), "{line}");
            // The arguments between the parentheses, `?` marking the optional ones.
            let inner = &line[open.len()..line.find(")`").unwrap()];
            let mut listed: Vec<(String, bool)> = inner
                .split(", ")
                .filter(|a| !a.is_empty())
                .map(|a| match a.strip_suffix('?') {
                    Some(name) => (name.to_string(), false),
                    None => (a.to_string(), true),
                })
                .collect();
            let schema = def.schema();
            let required = schema["required"].as_array().unwrap();
            let mut want: Vec<(String, bool)> = schema["properties"]
                .as_object()
                .unwrap()
                .keys()
                .map(|k| (k.clone(), required.contains(&serde_json::json!(k))))
                .collect();
            listed.sort();
            want.sort();
            assert_eq!(listed, want, "{}", def.name);
        }
    }
}
