//! The agent's tools: one registry holding each tool's name, description, JSON schema and typed
//! argument parser, so the specs sent to the model and the parsing of its calls cannot drift.
//!
//! Adding a tool: an argument struct, a [`ToolArgs`] variant, and one [`TOOLS`] entry. The
//! entry is all the model learns about the tool: its description and arguments are sent as the
//! tool spec and rendered into the system prompt's tool list (`super::prompt`).
//!
//! Every [`ToolError`] is addressed to the model: the agent loop sends its `Display` back as the
//! tool result and the model corrects itself. Failures of our own (VM down, storage error) are
//! the caller's, not this module's.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::edit::Edit;
use crate::llm::types::ToolSpec;
use crate::paths::{validate_path, validate_size, PathError};

/// Command timeout when the model gives none.
pub const DEFAULT_COMMAND_TIMEOUT_S: u32 = 120;
/// Longest command timeout the model may ask for.
pub const MAX_COMMAND_TIMEOUT_S: u32 = 600;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFilesArgs {
    /// A directory; `None` is the project root.
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadFileArgs {
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteFileArgs {
    pub path: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteFileArgs {
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditFileArgs {
    pub path: String,
    pub edits: Vec<Edit>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCommandArgs {
    pub command: String,
    /// A directory relative to the project root; `None` is the root.
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub timeout_s: Option<u32>,
}

impl RunCommandArgs {
    pub fn timeout_s(&self) -> u32 {
        self.timeout_s.unwrap_or(DEFAULT_COMMAND_TIMEOUT_S)
    }
}

/// No arguments: the template's `dev` entries say what to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartPreviewArgs {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPreviewArgs {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadDocsArgs {
    /// A document name; `None` lists the available documents.
    #[serde(default)]
    pub name: Option<String>,
}

/// A validated tool call, ready to execute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "tool", rename_all = "snake_case")]
pub enum ToolArgs {
    ListFiles(ListFilesArgs),
    ReadFile(ReadFileArgs),
    WriteFile(WriteFileArgs),
    DeleteFile(DeleteFileArgs),
    EditFile(EditFileArgs),
    RunCommand(RunCommandArgs),
    StartPreview(StartPreviewArgs),
    RestartPreview(RestartPreviewArgs),
    ReadDocs(ReadDocsArgs),
}

impl ToolArgs {
    pub fn name(&self) -> &'static str {
        match self {
            ToolArgs::ListFiles(_) => "list_files",
            ToolArgs::ReadFile(_) => "read_file",
            ToolArgs::WriteFile(_) => "write_file",
            ToolArgs::DeleteFile(_) => "delete_file",
            ToolArgs::EditFile(_) => "edit_file",
            ToolArgs::RunCommand(_) => "run_command",
            ToolArgs::StartPreview(_) => "start_preview",
            ToolArgs::RestartPreview(_) => "restart_preview",
            ToolArgs::ReadDocs(_) => "read_docs",
        }
    }

    /// The tool's registry entry.
    pub fn def(&self) -> &'static ToolDef {
        let name = self.name();
        TOOLS
            .iter()
            .find(|t| t.name == name)
            .expect("every ToolArgs variant has a TOOLS entry (tested)")
    }

    /// Whether the call may change the project (files, installed packages, running servers):
    /// the registry's [`ToolDef::changes_project`]. Read-only calls can be shown more quietly
    /// and do not need a checkpoint.
    pub fn changes_project(&self) -> bool {
        self.def().changes_project
    }
}

/// A tool call the model got wrong. `Display` is the text the model receives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    #[error("there is no tool named {name:?}; the available tools are: {available}")]
    UnknownTool { name: String, available: String },
    #[error("the arguments for {tool} are not valid JSON ({detail}); send one JSON object")]
    BadJson { tool: String, detail: String },
    #[error("the arguments for {tool} do not fit its schema: {detail}")]
    InvalidArguments { tool: String, detail: String },
    #[error("{tool}: `{field}` {value:?} is not a usable path: {source}. Paths are relative to the project root, like \"src/main.py\".")]
    InvalidPath {
        tool: String,
        field: &'static str,
        value: String,
        source: PathError,
    },
    #[error("{tool}: {detail}")]
    InvalidValue { tool: String, detail: String },
}

type Parser = fn(&'static str, Value) -> Result<ToolArgs, ToolError>;

/// One registry entry: everything about a tool but its execution (the Worker's `run_tool`).
pub struct ToolDef {
    pub name: &'static str,
    /// What the model reads about the tool, in its spec and in the system prompt.
    pub description: &'static str,
    /// Whether a call may change the project (files, installed packages, running servers).
    pub changes_project: bool,
    schema: fn() -> Value,
    parse: Parser,
}

impl ToolDef {
    pub fn spec(&self) -> ToolSpec {
        ToolSpec::function(self.name, self.description, self.schema())
    }

    /// The JSON schema of the arguments (an object schema).
    pub fn schema(&self) -> Value {
        (self.schema)()
    }

    /// The arguments as (name, required): the required ones in the schema's `required` order,
    /// then the optional ones.
    pub fn arguments(&self) -> Vec<(String, bool)> {
        let schema = self.schema();
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut args: Vec<(String, bool)> =
            required.iter().map(|r| (r.to_string(), true)).collect();
        if let Some(props) = schema["properties"].as_object() {
            for name in props.keys() {
                if !required.contains(&name.as_str()) {
                    args.push((name.clone(), false));
                }
            }
        }
        args
    }

    /// How the system prompt writes the call: `edit_file(path, edits)`, `list_files(path?)`.
    pub fn signature(&self) -> String {
        let args: Vec<String> = self
            .arguments()
            .into_iter()
            .map(|(name, required)| if required { name } else { format!("{name}?") })
            .collect();
        format!("{}({})", self.name, args.join(", "))
    }
}

// Schemas leave out `additionalProperties`: Gemini routes reject it, and extra keys are ignored
// when parsing anyway.
fn object(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required})
}

/// The registry, in the order the model sees the tools.
pub static TOOLS: &[ToolDef] = &[
    ToolDef {
        name: "list_files",
        description: "List the project's files (recursively) under a directory, with sizes. \
                      Omit `path` for the whole project. Only the project's own files are \
                      listed: dependencies and build output (node_modules, .venv, dist) are not.",
        changes_project: false,
        schema: || {
            object(
                json!({"path": {"type": "string", "description": "Directory relative to the project root, e.g. \"src\". Omit for the root."}}),
                &[],
            )
        },
        parse: |tool, v| {
            let mut a: ListFilesArgs = from_value(tool, v)?;
            a.path = optional_dir(tool, "path", a.path)?;
            Ok(ToolArgs::ListFiles(a))
        },
    },
    ToolDef {
        name: "read_file",
        description: "Read a text file of the project. Read a file before you edit it; never \
                      edit from memory.",
        changes_project: false,
        schema: || object(json!({"path": path_schema()}), &["path"]),
        parse: |tool, v| {
            let mut a: ReadFileArgs = from_value(tool, v)?;
            a.path = file_path(tool, "path", a.path)?;
            Ok(ToolArgs::ReadFile(a))
        },
    },
    ToolDef {
        name: "write_file",
        description: "Create a file or replace its whole content; parent directories are \
                      created. Use it for new files and rewrites; for small changes to an \
                      existing file prefer edit_file.",
        changes_project: true,
        schema: || {
            object(
                json!({"path": path_schema(), "content": {"type": "string", "description": "The complete new content of the file."}}),
                &["path", "content"],
            )
        },
        parse: |tool, v| {
            let mut a: WriteFileArgs = from_value(tool, v)?;
            a.path = file_path(tool, "path", a.path)?;
            validate_size(a.content.len()).map_err(|e| invalid(tool, e.to_string()))?;
            Ok(ToolArgs::WriteFile(a))
        },
    },
    ToolDef {
        name: "delete_file",
        description: "Delete a file of the project, e.g. one your changes made obsolete.",
        changes_project: true,
        schema: || object(json!({"path": path_schema()}), &["path"]),
        parse: |tool, v| {
            let mut a: DeleteFileArgs = from_value(tool, v)?;
            a.path = file_path(tool, "path", a.path)?;
            Ok(ToolArgs::DeleteFile(a))
        },
    },
    ToolDef {
        name: "edit_file",
        description: "Change part of an existing file with search-and-replace edits, applied in \
                      order. Each `search` must match the current file exactly once, whitespace \
                      included: copy it exactly from read_file output and include enough \
                      surrounding lines to make it unique. If any edit fails, none is applied: \
                      read the file again and retry.",
        changes_project: true,
        schema: || {
            object(
                json!({
                    "path": path_schema(),
                    "edits": {
                        "type": "array",
                        "minItems": 1,
                        "items": object(json!({
                            "search": {"type": "string", "description": "Exact text to find; must occur exactly once."},
                            "replace": {"type": "string", "description": "Text to put in its place."}
                        }), &["search", "replace"])
                    }
                }),
                &["path", "edits"],
            )
        },
        parse: |tool, v| {
            let mut a: EditFileArgs = from_value(tool, v)?;
            a.path = file_path(tool, "path", a.path)?;
            if a.edits.is_empty() {
                return Err(invalid(
                    tool,
                    "`edits` is empty; give at least one {\"search\", \"replace\"} pair",
                ));
            }
            Ok(ToolArgs::EditFile(a))
        },
    },
    ToolDef {
        name: "run_command",
        description: "Run a shell command in the project's sandbox (bash, project root as the \
                      working directory unless `cwd` is given) and return its exit code and \
                      output. Use it to install packages, build and test. Output is capped (the \
                      end is kept), so prefer quiet flags. Nothing can answer an interactive \
                      prompt: pass the flags that skip them. Nothing long-running: servers \
                      belong to the preview (start_preview). The network reaches package \
                      registries only.",
        changes_project: true,
        schema: || {
            object(
                json!({
                    "command": {"type": "string", "description": "The shell command, e.g. \"npm install\"."},
                    "cwd": {"type": "string", "description": "Directory relative to the project root. Omit for the root."},
                    "timeout_s": {"type": "integer", "minimum": 1, "maximum": MAX_COMMAND_TIMEOUT_S,
                                  "description": format!("Seconds before the command is killed (default {DEFAULT_COMMAND_TIMEOUT_S}).")}
                }),
                &["command"],
            )
        },
        parse: |tool, v| {
            let mut a: RunCommandArgs = from_value(tool, v)?;
            if a.command.trim().is_empty() {
                return Err(invalid(tool, "`command` is empty"));
            }
            a.cwd = optional_dir(tool, "cwd", a.cwd)?;
            if let Some(t) = a.timeout_s {
                if !(1..=MAX_COMMAND_TIMEOUT_S).contains(&t) {
                    return Err(invalid(
                        tool,
                        format!("`timeout_s` is {t}; use 1 to {MAX_COMMAND_TIMEOUT_S} seconds"),
                    ));
                }
            }
            Ok(ToolArgs::RunCommand(a))
        },
    },
    ToolDef {
        name: "start_preview",
        description: "Start the app's dev servers as the template defines them, each on its \
                      own port and wired to the ones it depends on (the frontend's /api proxy \
                      to the backend), so the live preview shows the app. Dependencies are \
                      installed first when a dependency manifest changed. Servers already running are left running. Returns \
                      their status, or the last log lines of one that failed to start.",
        changes_project: true,
        schema: || object(json!({}), &[]),
        parse: |tool, v| Ok(ToolArgs::StartPreview(from_value(tool, v)?)),
    },
    ToolDef {
        name: "restart_preview",
        description: "Restart the dev servers, installing changed dependencies first. Needed \
                      only after dependency or config changes: the dev servers reload code \
                      edits by themselves.",
        changes_project: true,
        schema: || object(json!({}), &[]),
        parse: |tool, v| Ok(ToolArgs::RestartPreview(from_value(tool, v)?)),
    },
    ToolDef {
        name: "read_docs",
        description: "Read the reference documents bundled for this platform and the \
                      template's libraries; use it instead of guessing an API you are unsure \
                      about. Call it without `name` to list the documents.",
        changes_project: false,
        schema: || {
            object(
                json!({"name": {"type": "string", "description": "A document name from the list."}}),
                &[],
            )
        },
        parse: |tool, v| {
            let a: ReadDocsArgs = from_value(tool, v)?;
            if let Some(n) = &a.name {
                // Documents are blobs of the docs container, often in folders
                // (`fastapi/sqlite.md`): any safe relative path names one.
                let ok = n.len() <= 256 && crate::paths::validate_path(n).is_ok();
                if !ok {
                    return Err(invalid(
                        tool,
                        format!("{n:?} is not a document name; call read_docs without `name` to list them"),
                    ));
                }
            }
            Ok(ToolArgs::ReadDocs(a))
        },
    },
];

fn path_schema() -> Value {
    json!({"type": "string", "description": "File path relative to the project root, e.g. \"src/App.tsx\"."})
}

/// The `tools` array for a chat request.
pub fn tool_specs() -> Vec<ToolSpec> {
    TOOLS.iter().map(ToolDef::spec).collect()
}

pub fn tool_names() -> Vec<&'static str> {
    TOOLS.iter().map(|t| t.name).collect()
}

/// Checks a call from the model and turns it into typed arguments.
pub fn parse_call(name: &str, arguments_json: &str) -> Result<ToolArgs, ToolError> {
    let Some(def) = TOOLS.iter().find(|t| t.name == name) else {
        return Err(ToolError::UnknownTool {
            name: name.to_string(),
            available: tool_names().join(", "),
        });
    };
    let tool = def.name;
    let trimmed = arguments_json.trim();
    // Quirk: argument-less calls arrive as "" or "null" from some providers.
    let mut value: Value = if trimmed.is_empty() || trimmed == "null" {
        json!({})
    } else {
        serde_json::from_str(trimmed).map_err(|e| ToolError::BadJson {
            tool: tool.to_string(),
            detail: e.to_string(),
        })?
    };
    // Quirk: some models encode the arguments twice, sending a JSON string holding the object.
    if let Value::String(inner) = &value {
        if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(inner) {
            value = v;
        }
    }
    if !value.is_object() {
        return Err(ToolError::InvalidArguments {
            tool: tool.to_string(),
            detail: format!("expected a JSON object, got {}", kind_of(&value)),
        });
    }
    (def.parse)(tool, value)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn from_value<T: serde::de::DeserializeOwned>(tool: &str, v: Value) -> Result<T, ToolError> {
    serde_json::from_value(v).map_err(|e| ToolError::InvalidArguments {
        tool: tool.to_string(),
        detail: e.to_string(),
    })
}

fn invalid(tool: &str, detail: impl Into<String>) -> ToolError {
    ToolError::InvalidValue {
        tool: tool.to_string(),
        detail: detail.into(),
    }
}

/// Models often write `./src/a.py`; the leading `./` is unambiguous, so drop it before the
/// strict check rather than spend a step on the error.
fn strip_dot_slash(p: &str) -> &str {
    let mut p = p;
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    p
}

fn file_path(tool: &str, field: &'static str, p: String) -> Result<String, ToolError> {
    let clean = strip_dot_slash(&p).to_string();
    validate_path(&clean).map_err(|source| ToolError::InvalidPath {
        tool: tool.to_string(),
        field,
        value: p,
        source,
    })?;
    Ok(clean)
}

/// A directory argument: the usual spellings of the root (`""`, `.`, `./`, `/`) mean `None`,
/// and a trailing `/` is dropped.
fn optional_dir(
    tool: &str,
    field: &'static str,
    p: Option<String>,
) -> Result<Option<String>, ToolError> {
    let Some(p) = p else { return Ok(None) };
    let trimmed = strip_dot_slash(p.trim()).trim_end_matches('/');
    if trimmed.is_empty() || trimmed == "." {
        return Ok(None);
    }
    let clean = trimmed.to_string();
    validate_path(&clean).map_err(|source| ToolError::InvalidPath {
        tool: tool.to_string(),
        field,
        value: p,
        source,
    })?;
    Ok(Some(clean))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_cover_every_tool_and_are_well_formed() {
        let specs = tool_specs();
        assert_eq!(specs.len(), TOOLS.len());
        let names: Vec<_> = specs.iter().map(|s| s.function.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "list_files",
                "read_file",
                "write_file",
                "delete_file",
                "edit_file",
                "run_command",
                "start_preview",
                "restart_preview",
                "read_docs"
            ]
        );
        for s in &specs {
            assert_eq!(s.kind, "function");
            assert_eq!(
                s.function.parameters["type"], "object",
                "{}",
                s.function.name
            );
            assert!(!s.function.description.is_empty());
            // Every required field is a declared property.
            let props = s.function.parameters["properties"].as_object().unwrap();
            for r in s.function.parameters["required"].as_array().unwrap() {
                assert!(
                    props.contains_key(r.as_str().unwrap()),
                    "{}",
                    s.function.name
                );
            }
        }
        let edit = &specs[4].function.parameters;
        assert_eq!(edit["required"], json!(["path", "edits"]));
        assert_eq!(
            edit["properties"]["edits"]["items"]["required"],
            json!(["search", "replace"])
        );
    }

    /// A position per variant. No wildcard: a new variant does not compile until it is listed
    /// here, and `every_variant_has_exactly_one_registry_entry` then wants it reachable.
    fn ordinal(a: &ToolArgs) -> usize {
        match a {
            ToolArgs::ListFiles(_) => 0,
            ToolArgs::ReadFile(_) => 1,
            ToolArgs::WriteFile(_) => 2,
            ToolArgs::DeleteFile(_) => 3,
            ToolArgs::EditFile(_) => 4,
            ToolArgs::RunCommand(_) => 5,
            ToolArgs::StartPreview(_) => 6,
            ToolArgs::RestartPreview(_) => 7,
            ToolArgs::ReadDocs(_) => 8,
        }
    }
    const VARIANTS: usize = 9;

    /// The smallest valid arguments of each tool.
    fn minimal_call(name: &str) -> Value {
        match name {
            "read_file" | "delete_file" => json!({"path": "a.txt"}),
            "write_file" => json!({"path": "a.txt", "content": ""}),
            "edit_file" => json!({"path": "a.txt", "edits": [{"search": "a", "replace": "b"}]}),
            "run_command" => json!({"command": "true"}),
            _ => json!({}),
        }
    }

    #[test]
    fn every_variant_has_exactly_one_registry_entry() {
        assert_eq!(TOOLS.len(), VARIANTS);
        let mut seen = Vec::new();
        for def in TOOLS {
            // Each entry parses into the variant of its own name...
            let args = parse_call(def.name, &minimal_call(def.name).to_string())
                .unwrap_or_else(|e| panic!("{}: {e}", def.name));
            assert_eq!(args.name(), def.name);
            assert!(std::ptr::eq(args.def(), def), "{}", def.name);
            assert_eq!(args.changes_project(), def.changes_project);
            // ...and each name has one entry.
            assert_eq!(TOOLS.iter().filter(|t| t.name == def.name).count(), 1);
            seen.push(ordinal(&args));
        }
        // Every variant is some entry's.
        seen.sort();
        assert_eq!(seen, (0..VARIANTS).collect::<Vec<_>>());
    }

    #[test]
    fn only_reading_tools_leave_the_project_alone() {
        let readers: Vec<_> = TOOLS
            .iter()
            .filter(|t| !t.changes_project)
            .map(|t| t.name)
            .collect();
        assert_eq!(readers, ["list_files", "read_file", "read_docs"]);
    }

    #[test]
    fn signatures_come_from_the_schemas() {
        let sig = |name: &str| TOOLS.iter().find(|t| t.name == name).unwrap().signature();
        assert_eq!(sig("list_files"), "list_files(path?)");
        assert_eq!(sig("write_file"), "write_file(path, content)");
        assert_eq!(sig("edit_file"), "edit_file(path, edits)");
        assert_eq!(sig("run_command"), "run_command(command, cwd?, timeout_s?)");
        assert_eq!(sig("start_preview"), "start_preview()");
        assert_eq!(sig("read_docs"), "read_docs(name?)");
    }

    #[test]
    fn start_preview_takes_no_arguments() {
        assert_eq!(
            parse_call("start_preview", ""),
            Ok(ToolArgs::StartPreview(StartPreviewArgs {}))
        );
        // Extra keys are ignored, as for every tool.
        assert_eq!(
            parse_call("start_preview", r#"{"command":"npm run dev"}"#),
            Ok(ToolArgs::StartPreview(StartPreviewArgs {}))
        );
        let spec = &tool_specs()[6].function;
        assert_eq!(spec.name, "start_preview");
        assert_eq!(spec.parameters["properties"], json!({}));
    }

    #[test]
    fn good_calls_parse_into_typed_args() {
        assert_eq!(
            parse_call("read_file", r#"{"path":"./src/App.tsx"}"#),
            Ok(ToolArgs::ReadFile(ReadFileArgs {
                path: "src/App.tsx".into()
            }))
        );
        assert_eq!(
            parse_call("list_files", ""),
            Ok(ToolArgs::ListFiles(ListFilesArgs { path: None }))
        );
        assert_eq!(
            parse_call("list_files", r#"{"path":"/"}"#),
            Ok(ToolArgs::ListFiles(ListFilesArgs { path: None }))
        );
        assert_eq!(
            parse_call("list_files", r#"{"path":"src/"}"#),
            Ok(ToolArgs::ListFiles(ListFilesArgs {
                path: Some("src".into())
            }))
        );
        let run = parse_call(
            "run_command",
            r#"{"command":"npm test","cwd":".","extra":"ignored"}"#,
        )
        .unwrap();
        let ToolArgs::RunCommand(r) = &run else {
            panic!("{run:?}")
        };
        assert_eq!(
            (r.cwd.as_deref(), r.timeout_s()),
            (None, DEFAULT_COMMAND_TIMEOUT_S)
        );
        assert!(run.changes_project());
        let edit = parse_call(
            "edit_file",
            r#"{"path":"a.py","edits":[{"search":"a","replace":"b"}]}"#,
        )
        .unwrap();
        assert_eq!(edit.name(), "edit_file");
        // Double-encoded arguments.
        assert_eq!(
            parse_call("delete_file", r#""{\"path\":\"x.txt\"}""#),
            Ok(ToolArgs::DeleteFile(DeleteFileArgs {
                path: "x.txt".into()
            }))
        );
        assert_eq!(
            parse_call("restart_preview", "{}"),
            Ok(ToolArgs::RestartPreview(RestartPreviewArgs {}))
        );
        assert!(!parse_call("read_docs", r#"{"name":"fastapi.md"}"#)
            .unwrap()
            .changes_project());
        // Folders are fine; escaping the docs container is not.
        assert!(parse_call("read_docs", r#"{"name":"fastapi/sqlite.md"}"#).is_ok());
        for bad in ["../secrets", "/etc/passwd", ""] {
            let args = json!({ "name": bad }).to_string();
            assert!(parse_call("read_docs", &args).is_err(), "{bad:?}");
        }
        assert_eq!(
            serde_json::to_value(parse_call("read_file", r#"{"path":"a"}"#).unwrap()).unwrap(),
            json!({"tool": "read_file", "path": "a"})
        );
    }

    #[test]
    fn mistakes_become_messages_for_the_model() {
        let e = parse_call("rm_rf", "{}").unwrap_err();
        assert!(matches!(e, ToolError::UnknownTool { .. }));
        assert!(
            e.to_string()
                .contains("available tools are: list_files, read_file"),
            "{e}"
        );

        let e = parse_call("write_file", r#"{"path":"a","content":"x"#).unwrap_err();
        assert!(matches!(e, ToolError::BadJson { .. }), "{e:?}");
        assert!(e
            .to_string()
            .starts_with("the arguments for write_file are not valid JSON"));

        let e = parse_call("write_file", r#"{"path":"a"}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the arguments for write_file do not fit its schema: missing field `content`"
        );

        let e = parse_call("read_file", r#"{"path":"../../etc/passwd"}"#).unwrap_err();
        assert!(
            matches!(&e, ToolError::InvalidPath { source, .. } if source.rule() == "parent_segment")
        );
        assert!(e.to_string().contains("'..'"), "{e}");
        assert!(
            e.to_string().contains("relative to the project root"),
            "{e}"
        );

        for (name, args, needle) in [
            ("read_file", r#"{"path":"/etc/passwd"}"#, "absolute"),
            (
                "write_file",
                r#"{"path":".git/config","content":""}"#,
                ".git/",
            ),
            ("run_command", r#"{"command":"ls","cwd":"../x"}"#, "'..'"),
            ("run_command", r#"{"command":"  "}"#, "`command` is empty"),
            (
                "run_command",
                r#"{"command":"ls","timeout_s":9999}"#,
                "use 1 to 600",
            ),
            (
                "run_command",
                r#"{"command":"ls","timeout_s":"60"}"#,
                "invalid type: string",
            ),
            (
                "edit_file",
                r#"{"path":"a","edits":[]}"#,
                "`edits` is empty",
            ),
            (
                "read_docs",
                r#"{"name":"../secrets"}"#,
                "not a document name",
            ),
            ("read_file", "[1]", "expected a JSON object, got an array"),
        ] {
            let e = parse_call(name, args).unwrap_err().to_string();
            assert!(e.contains(needle), "{name} {args}: {e}");
        }
    }
}
