//! End-to-end test support: the real local stack (Azurite, the VM API, `wrangler dev`) on free
//! loopback ports, and a scripted OpenAI-compatible LLM server. Test code only; never shipped.

pub mod faults;
pub mod github;
pub mod gitserver;
pub mod llm;
pub mod long_project;
pub mod netlify;
pub mod oidc;
pub mod stack;
pub mod ws;

/// The repository root (two levels above this crate).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root exists")
}

/// The files a template contributes to a new project, read from `templates/` on disk the way
/// `build.rs` embeds them (`compose` entries mounted under their key; build output skipped).
pub fn template_files(name: &str) -> std::collections::BTreeMap<String, Vec<u8>> {
    use std::collections::BTreeMap;
    use std::path::Path;
    fn walk(dir: &Path, rel: &str, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            let child = if rel.is_empty() {
                n.clone()
            } else {
                format!("{rel}/{n}")
            };
            if e.path().is_dir() {
                let skip = [
                    "node_modules",
                    "dist",
                    ".venv",
                    "__pycache__",
                    ".pytest_cache",
                    ".vite",
                ];
                if !skip.contains(&n.as_str()) {
                    walk(&e.path(), &child, out);
                }
            } else if n != "template.json" && !n.ends_with(".db") && !n.ends_with(".pyc") {
                out.insert(child, std::fs::read(e.path()).unwrap_or_default());
            }
        }
    }
    let root = repo_root().join("templates").join(name);
    let manifest: serde_json::Value = std::fs::read(root.join("template.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut out = BTreeMap::new();
    walk(&root, "", &mut out);
    if let Some(c) = manifest["compose"].as_object() {
        for (mount, src) in c {
            walk(
                &root.join(src.as_str().unwrap_or_default()),
                mount,
                &mut out,
            );
        }
    }
    out
}
