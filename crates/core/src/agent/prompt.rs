//! The agent's system prompt: `templates/system_prompt.md` with its tool list rendered from the
//! tool registry ([`super::tools::TOOLS`]), so the prompt names exactly the tools and arguments
//! the model can call.

use super::tools::{ToolDef, TOOLS};

/// The line of `templates/system_prompt.md` that [`system_prompt`] replaces with the tool list.
pub const TOOLS_MARKER: &str = "{{tools}}";

/// `templates/system_prompt.md` as written, marker included.
pub const TEMPLATE: &str = include_str!("../../../../templates/system_prompt.md");

/// The system prompt for a turn: [`TEMPLATE`] with [`TOOLS_MARKER`] replaced by
/// [`tools_section`].
pub fn system_prompt() -> String {
    TEMPLATE.replace(TOOLS_MARKER, &tools_section())
}

/// One bullet per tool, in registry order: ``- `name(arg, optional?)`: description``.
pub fn tools_section() -> String {
    TOOLS.iter().map(bullet).collect::<Vec<_>>().join("\n")
}

fn bullet(def: &ToolDef) -> String {
    format!("- `{}`: {}", def.signature(), def.description)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_has_the_marker_once_on_its_own_line() {
        assert_eq!(TEMPLATE.matches(TOOLS_MARKER).count(), 1);
        assert!(TEMPLATE.lines().any(|l| l == TOOLS_MARKER));
    }

    #[test]
    fn the_prompt_lists_every_tool_with_its_schema_arguments() {
        let p = system_prompt();
        assert!(!p.contains("{{"), "a marker is left");
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
        // The rest of the prompt is the template's.
        let (before, after) = TEMPLATE.split_once(TOOLS_MARKER).unwrap();
        assert!(p.starts_with(before) && p.ends_with(after));
    }
}
