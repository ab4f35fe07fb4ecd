//! Embeds `templates/` into the Worker: every template directory with a `template.json`
//! becomes a list of (path, bytes), with `compose` entries mounted under their key.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const SKIP_DIRS: &[&str] = &[
    "node_modules",
    "dist",
    ".venv",
    "__pycache__",
    ".pytest_cache",
    ".vite",
];

fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, PathBuf)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().to_string();
        let path = e.path();
        let child = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        if path.is_dir() {
            if !SKIP_DIRS.contains(&name.as_str()) {
                walk(&path, &child, out);
            }
        } else if name != "template.json" && !name.ends_with(".db") && !name.ends_with(".pyc") {
            out.push((child, path));
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets this"));
    let tdir = root.join("templates");
    println!("cargo:rerun-if-changed=templates");
    let mut code = String::from("pub static TEMPLATES: &[Template] = &[\n");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&tdir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.join("template.json").is_file())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    for dir in dirs {
        let name = dir
            .file_name()
            .expect("dir name")
            .to_string_lossy()
            .to_string();
        let manifest_path = dir.join("template.json");
        let manifest: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&manifest_path).expect("read template.json"),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", manifest_path.display()));
        let mut files = Vec::new();
        walk(&dir, "", &mut files);
        if let Some(compose) = manifest.get("compose").and_then(|c| c.as_object()) {
            for (mount, src) in compose {
                let src = dir.join(src.as_str().expect("compose values are paths"));
                walk(&src, mount, &mut files);
            }
        }
        files.sort();
        writeln!(
            code,
            "    Template {{ name: {name:?}, manifest: include_str!({:?}), files: &[",
            manifest_path.display().to_string()
        )
        .expect("write to String");
        for (rel, path) in files {
            writeln!(
                code,
                "        ({rel:?}, include_bytes!({:?})),",
                path.display().to_string()
            )
            .expect("write to String");
        }
        code.push_str("    ] },\n");
    }
    code.push_str("];\n");
    let out =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets this")).join("templates.rs");
    std::fs::write(out, code).expect("write templates.rs");
}
