//! The app templates, embedded at build time from `templates/` (see `build.rs`).

use open_replit_core::agent::prompt;
use open_replit_core::template::TemplateManifest;

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

/// The parsed `template.json` of template `name`; empty (no installs, no dev servers) for an
/// unknown name. The embedded manifests are parsed by core's tests, so this never hides a typo.
pub fn manifest(name: &str) -> TemplateManifest {
    get(name)
        .and_then(|t| TemplateManifest::parse(t.manifest).ok())
        .unwrap_or_default()
}

/// The agent's system prompt for a project made from template `name`, generated from the
/// template's own description (core's `agent::prompt`). An unknown name gets the generic
/// prompt, which says the layout is not described.
pub fn system_prompt(name: &str) -> String {
    let manifest = manifest(name);
    let parts: Vec<(&str, TemplateManifest)> = manifest
        .parts()
        .into_iter()
        .map(|(dir, part)| (dir, self::manifest(part)))
        .collect();
    let files: &[(&str, &[u8])] = get(name).map(|t| t.files).unwrap_or(&[]);
    prompt::system_prompt(&prompt::TemplateSource {
        name,
        manifest: &manifest,
        parts: parts.iter().map(|(d, m)| (*d, m)).collect(),
        files,
    })
}

pub fn names() -> Vec<&'static str> {
    TEMPLATES.iter().map(|t| t.name).collect()
}

/// `GET /api/templates`: name, description and whether it is the default, from each manifest.
pub fn summaries() -> Vec<serde_json::Value> {
    TEMPLATES
        .iter()
        .map(|t| {
            let m = TemplateManifest::parse(t.manifest).unwrap_or_default();
            serde_json::json!({
                "name": t.name,
                "description": m.description,
                "default": t.name == DEFAULT,
                "files": t.files.len(),
            })
        })
        .collect()
}
