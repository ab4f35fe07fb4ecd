//! The app templates, embedded at build time from `templates/` (see `build.rs`).

pub struct Template {
    pub name: &'static str,
    /// The template's `template.json`: install, dev and check commands for the VM and agent.
    pub manifest: &'static str,
    pub files: &'static [(&'static str, &'static [u8])],
}

include!(concat!(env!("OUT_DIR"), "/templates.rs"));

pub const DEFAULT: &str = "fullstack";

pub fn get(name: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.name == name)
}

pub fn names() -> Vec<&'static str> {
    TEMPLATES.iter().map(|t| t.name).collect()
}

/// `GET /api/templates`: name, description and whether it is the default, from each manifest.
pub fn summaries() -> Vec<serde_json::Value> {
    TEMPLATES
        .iter()
        .map(|t| {
            let m: serde_json::Value = serde_json::from_str(t.manifest).unwrap_or_default();
            serde_json::json!({
                "name": t.name,
                "description": m.get("description").cloned().unwrap_or_default(),
                "default": t.name == DEFAULT,
                "files": t.files.len(),
            })
        })
        .collect()
}
