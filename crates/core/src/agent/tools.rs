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
    /// First line to show, 1-based; `None` is 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_line: Option<u64>,
    /// Last line to show (inclusive); `None` reads a page from `start_line`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_line: Option<u64>,
}

/// Lines `read_file` shows at most in one call; the rest is paged.
pub const READ_PAGE_LINES: usize = 400;
/// Bytes of text `read_file` shows at most in one call (lines past it go to the next page).
pub const READ_PAGE_BYTES: usize = 24_000;
/// A longer line is cut in `read_file`'s view (the file keeps it whole).
pub const READ_LINE_CHARS: usize = 1_000;

impl ReadFileArgs {
    /// The file as the model reads it: a header with the range and the line count, then
    /// `number<TAB>line` per line; a file that does not fit is paged, and the header says how
    /// to read the next range.
    pub fn render(&self, text: &str) -> Result<String, String> {
        let lines: Vec<&str> = text.lines().collect();
        let total = lines.len();
        let path = &self.path;
        if total == 0 {
            return Ok(format!("{path} is empty (0 lines)"));
        }
        let start = self.start_line.unwrap_or(1) as usize;
        if start > total {
            return Err(format!(
                "start_line {start} is past the end of {path}, which has {total} lines"
            ));
        }
        let asked_end = self.end_line.map(|e| (e as usize).min(total));
        let mut end = asked_end.unwrap_or(total).min(start + READ_PAGE_LINES - 1);
        let mut body = String::new();
        let mut shown_end = start - 1;
        for (i, line) in lines[start - 1..end].iter().enumerate() {
            let n = start + i;
            let line = line.strip_suffix('\r').unwrap_or(line);
            let shown: String = if line.chars().count() > READ_LINE_CHARS {
                let cut: String = line.chars().take(READ_LINE_CHARS).collect();
                format!(
                    "{cut}… [line cut: {} more characters]",
                    line.chars().count() - READ_LINE_CHARS
                )
            } else {
                line.to_string()
            };
            if n > start && body.len() + shown.len() > READ_PAGE_BYTES {
                break;
            }
            body.push_str(&format!("{n}\t{shown}\n"));
            shown_end = n;
        }
        end = shown_end;
        let whole = start == 1 && end == total;
        let header = if whole {
            format!("{path} ({total} lines; each line starts with its number and a tab, which are not part of the file)")
        } else {
            let mut h = format!("{path}: lines {start}-{end} of {total}");
            if asked_end.is_some_and(|a| end < a) {
                h.push_str(&format!(
                    " (the rest did not fit; read it with start_line={})",
                    end + 1
                ));
            } else if end < total {
                h.push_str(&format!(" (more after; start_line={} reads on)", end + 1));
            }
            h
        };
        Ok(format!("{header}\n{}", body.trim_end_matches('\n')))
    }
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
pub struct SearchArgs {
    /// A regular expression (Rust `regex` syntax).
    pub pattern: String,
    /// A directory or file; `None` is the whole project.
    #[serde(default)]
    pub path: Option<String>,
    /// Only paths matching this glob, e.g. `*.tsx`.
    #[serde(default)]
    pub glob: Option<String>,
    #[serde(default)]
    pub ignore_case: bool,
}

/// Longest pattern `search` accepts.
pub const MAX_SEARCH_PATTERN: usize = 1_000;
/// Log lines `read_logs` returns per process when the model gives no number, and at most.
pub const DEFAULT_LOG_LINES: u32 = 60;
pub const MAX_LOG_LINES: u32 = 400;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadLogsArgs {
    /// A dev process name (`web`, `api`); `None` reads every one.
    #[serde(default)]
    pub process: Option<String>,
    #[serde(default)]
    pub lines: Option<u32>,
}

impl ReadLogsArgs {
    pub fn lines(&self) -> u32 {
        self.lines.unwrap_or(DEFAULT_LOG_LINES)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckPreviewArgs {
    /// The page to load, from `/`; `None` is `/`.
    #[serde(default)]
    pub path: Option<String>,
}

impl CheckPreviewArgs {
    pub fn path(&self) -> &str {
        self.path.as_deref().unwrap_or("/")
    }
}

/// `publish` takes no arguments: it publishes the checkpoint this turn ends with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishArgs {}

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
    Search(SearchArgs),
    ReadLogs(ReadLogsArgs),
    CheckPreview(CheckPreviewArgs),
    Publish(PublishArgs),
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
            ToolArgs::Search(_) => "search",
            ToolArgs::ReadLogs(_) => "read_logs",
            ToolArgs::CheckPreview(_) => "check_preview",
            ToolArgs::Publish(_) => "publish",
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
        description: "Read a text file of the project, as numbered lines (each line starts \
                      with its number and a tab; they are not part of the file, so leave them \
                      out of edit_file's `search`). A long file comes in pages of up to 400 \
                      lines: the first line of the result says which lines you got, how many \
                      there are, and the `start_line` that reads on. Read a file before you \
                      edit it; never edit from memory.",
        changes_project: false,
        schema: || {
            object(
                json!({
                    "path": path_schema(),
                    "start_line": {"type": "integer", "minimum": 1, "description": "First line to read (1-based). Omit for 1."},
                    "end_line": {"type": "integer", "minimum": 1, "description": "Last line to read (inclusive). Omit to read a page."}
                }),
                &["path"],
            )
        },
        parse: |tool, v| {
            let mut a: ReadFileArgs = from_value(tool, v)?;
            a.path = file_path(tool, "path", a.path)?;
            if a.start_line == Some(0) || a.end_line == Some(0) {
                return Err(invalid(tool, "line numbers start at 1"));
            }
            if let (Some(s), Some(e)) = (a.start_line, a.end_line) {
                if e < s {
                    return Err(invalid(
                        tool,
                        format!("`end_line` {e} is before `start_line` {s}"),
                    ));
                }
            }
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
                      order. Each `search` must match the current file exactly once: copy it \
                      from read_file output (without the line numbers) and include enough \
                      surrounding lines to make it unique. When there is no exact match, whole \
                      lines are matched ignoring trailing whitespace, then indentation, then \
                      typographic quotes and dashes; the result says which way each edit \
                      matched. If any edit fails, none is applied: read the file again and retry.",
        changes_project: true,
        schema: || {
            object(
                json!({
                    "path": path_schema(),
                    "edits": {
                        "type": "array",
                        "minItems": 1,
                        "items": object(json!({
                            "search": {"type": "string", "description": "Text to find, copied from the file; must occur exactly once."},
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
        description: "Read the short reference documents the project's template ships in its \
                      docs/ folders (the stack's versions, layout, conventions and pitfalls); \
                      read them before guessing how the template works. Call it without `name` \
                      to list them with their titles.",
        changes_project: false,
        schema: || {
            object(
                json!({"name": {"type": "string", "description": "A document's path from the list, e.g. \"docs/frontend.md\"."}}),
                &[],
            )
        },
        parse: |tool, v| {
            let a: ReadDocsArgs = from_value(tool, v)?;
            if let Some(n) = &a.name {
                // Documents are the project's `docs/**.md` files: any safe relative path names
                // one (the Worker says when it is not a document).
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
    ToolDef {
        name: "search",
        description: "Search the project's files for a regular expression (Rust regex syntax, \
                      matched line by line) and get `path:line: text` for each matching line. \
                      Ignored paths (.gitignore: node_modules, .venv, dist) and binary files \
                      are skipped; results are capped, so narrow with `path` or `glob` when \
                      told the search stopped early.",
        changes_project: false,
        schema: || {
            object(
                json!({
                    "pattern": {"type": "string", "description": "Regular expression, e.g. \"useState\\(\" or \"def \\w+_item\"."},
                    "path": {"type": "string", "description": "Directory or file to search, relative to the project root. Omit for the whole project."},
                    "glob": {"type": "string", "description": "Only files whose path matches, e.g. \"*.tsx\"."},
                    "ignore_case": {"type": "boolean", "description": "Match regardless of case (default false)."}
                }),
                &["pattern"],
            )
        },
        parse: |tool, v| {
            let mut a: SearchArgs = from_value(tool, v)?;
            if a.pattern.is_empty() {
                return Err(invalid(tool, "`pattern` is empty"));
            }
            if a.pattern.len() > MAX_SEARCH_PATTERN {
                return Err(invalid(
                    tool,
                    format!("`pattern` is longer than {MAX_SEARCH_PATTERN} bytes"),
                ));
            }
            a.path = optional_dir(tool, "path", a.path)?;
            a.glob = a.glob.filter(|g| !g.trim().is_empty());
            Ok(ToolArgs::Search(a))
        },
    },
    ToolDef {
        name: "read_logs",
        description: "Read the last lines the dev servers (started by start_preview) wrote, \
                      with each one's status (running, exited with its code, stopped). Use it \
                      when the preview misbehaves or a server did not start.",
        changes_project: false,
        schema: || {
            object(
                json!({
                    "process": {"type": "string", "description": "One dev process by name (e.g. \"web\", \"api\"). Omit for all."},
                    "lines": {"type": "integer", "minimum": 1, "maximum": MAX_LOG_LINES,
                              "description": format!("Lines from the end of each log (default {DEFAULT_LOG_LINES}).")}
                }),
                &[],
            )
        },
        parse: |tool, v| {
            let a: ReadLogsArgs = from_value(tool, v)?;
            if let Some(p) = &a.process {
                let ok = !p.is_empty()
                    && p.len() <= 64
                    && p.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                    });
                if !ok {
                    return Err(invalid(
                        tool,
                        format!("{p:?} is not a process name; omit `process` to read every log"),
                    ));
                }
            }
            if let Some(n) = a.lines {
                if !(1..=MAX_LOG_LINES).contains(&n) {
                    return Err(invalid(
                        tool,
                        format!("`lines` is {n}; use 1 to {MAX_LOG_LINES}"),
                    ));
                }
            }
            Ok(ToolArgs::ReadLogs(a))
        },
    },
    ToolDef {
        name: "check_preview",
        description: "Load the running app's preview in a headless browser and report what \
                      went wrong: the page's HTTP status, uncaught exceptions, console errors \
                      and failed requests. Start the dev servers first (start_preview). Use \
                      it after changing the UI, before saying you are done.",
        changes_project: false,
        schema: || {
            object(
                json!({"path": {"type": "string", "description": "The page to load, e.g. \"/settings\". Omit for \"/\"."}}),
                &[],
            )
        },
        parse: |tool, v| {
            let mut a: CheckPreviewArgs = from_value(tool, v)?;
            if let Some(p) = &a.path {
                let p = p.trim();
                let ok = p.len() <= 2000
                    && p.starts_with('/')
                    && !p.starts_with("//")
                    && !p.contains('\\')
                    && p.chars().all(|c| c.is_ascii_graphic());
                if !ok {
                    return Err(invalid(
                        tool,
                        format!("`path` {p:?} is not a page path; give one like \"/\" or \"/items?x=1\""),
                    ));
                }
                a.path = Some(p.to_string());
            }
            Ok(ToolArgs::CheckPreview(a))
        },
    },
    ToolDef {
        name: "publish",
        description: "Publish the app to its public URL (the person asked to deploy or publish \
                      it). It runs when this turn ends: from the turn's checkpoint, after \
                      verification, the platform builds the production app (the template's \
                      build, its static files, its backend without reload) and switches the \
                      live URL to it only once the backend answers its health check. The \
                      person sees the progress and the URL in the Publish panel. Call it once, \
                      after the app works; it does not spend a step on waiting.",
        changes_project: false,
        schema: || object(json!({}), &[]),
        parse: |tool, v| Ok(ToolArgs::Publish(from_value(tool, v)?)),
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
                "read_docs",
                "search",
                "read_logs",
                "check_preview",
                "publish"
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
            ToolArgs::Search(_) => 9,
            ToolArgs::ReadLogs(_) => 10,
            ToolArgs::CheckPreview(_) => 11,
            ToolArgs::Publish(_) => 12,
        }
    }
    const VARIANTS: usize = 13;

    /// The smallest valid arguments of each tool.
    fn minimal_call(name: &str) -> Value {
        match name {
            "read_file" | "delete_file" => json!({"path": "a.txt"}),
            "write_file" => json!({"path": "a.txt", "content": ""}),
            "edit_file" => json!({"path": "a.txt", "edits": [{"search": "a", "replace": "b"}]}),
            "run_command" => json!({"command": "true"}),
            "search" => json!({"pattern": "x"}),
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
        assert_eq!(
            readers,
            [
                "list_files",
                "read_file",
                "read_docs",
                "search",
                "read_logs",
                "check_preview",
                "publish"
            ]
        );
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
        assert_eq!(sig("read_file"), "read_file(path, end_line?, start_line?)");
        assert_eq!(sig("search"), "search(pattern, glob?, ignore_case?, path?)");
        assert_eq!(sig("read_logs"), "read_logs(lines?, process?)");
        assert_eq!(sig("check_preview"), "check_preview(path?)");
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
                path: "src/App.tsx".into(),
                start_line: None,
                end_line: None,
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

    fn read(start: Option<u64>, end: Option<u64>) -> ReadFileArgs {
        ReadFileArgs {
            path: "a.py".into(),
            start_line: start,
            end_line: end,
        }
    }

    #[test]
    fn read_file_numbers_lines_and_reads_ranges() {
        let text = "one\ntwo\r\nthree\nfour\n";
        assert_eq!(
            read(None, None).render(text).unwrap(),
            "a.py (4 lines; each line starts with its number and a tab, which are not part of \
             the file)\n1\tone\n2\ttwo\n3\tthree\n4\tfour"
        );
        assert_eq!(
            read(Some(2), Some(3)).render(text).unwrap(),
            "a.py: lines 2-3 of 4 (more after; start_line=4 reads on)\n2\ttwo\n3\tthree"
        );
        // An end past the file is the end; a start past it is an error that says the length.
        assert_eq!(
            read(Some(3), Some(99)).render(text).unwrap(),
            "a.py: lines 3-4 of 4\n3\tthree\n4\tfour"
        );
        assert_eq!(
            read(Some(5), None).render(text).unwrap_err(),
            "start_line 5 is past the end of a.py, which has 4 lines"
        );
        assert_eq!(
            read(None, None).render("").unwrap(),
            "a.py is empty (0 lines)"
        );
        // Argument mistakes are the model's.
        for (args, needle) in [
            (r#"{"path":"a","start_line":0}"#, "start at 1"),
            (
                r#"{"path":"a","start_line":5,"end_line":2}"#,
                "before `start_line` 5",
            ),
            (r#"{"path":"a","start_line":-1}"#, "invalid value"),
        ] {
            let e = parse_call("read_file", args).unwrap_err().to_string();
            assert!(e.contains(needle), "{args}: {e}");
        }
        assert_eq!(
            parse_call("read_file", r#"{"path":"a","start_line":3}"#),
            Ok(ToolArgs::ReadFile(ReadFileArgs {
                path: "a".into(),
                start_line: Some(3),
                end_line: None
            }))
        );
    }

    #[test]
    fn a_large_file_is_paged_not_cut() {
        let text: String = (1..=1000).map(|i| format!("line {i}\n")).collect();
        let page = read(None, None).render(&text).unwrap();
        let first = page.lines().next().unwrap();
        assert_eq!(
            first,
            "a.py: lines 1-400 of 1000 (more after; start_line=401 reads on)"
        );
        assert_eq!(page.lines().count(), 1 + READ_PAGE_LINES);
        assert!(page.ends_with("400\tline 400"));
        let next = read(Some(401), None).render(&text).unwrap();
        assert!(next.starts_with("a.py: lines 401-800 of 1000"), "{next}");
        let last = read(Some(801), None).render(&text).unwrap();
        assert!(last.starts_with("a.py: lines 801-1000 of 1000\n"), "{last}");
        // An asked range longer than a page is paged too, and says where to go on.
        let big = read(Some(1), Some(900)).render(&text).unwrap();
        assert!(
            big.starts_with(
                "a.py: lines 1-400 of 1000 (the rest did not fit; read it with start_line=401)"
            ),
            "{big}"
        );
        // The byte budget pages long lines sooner; a giant line is cut in the view.
        let wide: String = (0..100).map(|_| format!("{}\n", "x".repeat(900))).collect();
        let page = read(None, None).render(&wide).unwrap();
        assert!(page.len() <= READ_PAGE_BYTES + 200, "{}", page.len());
        assert!(
            page.starts_with("a.py: lines 1-26 of 100"),
            "{}",
            &page[..80]
        );
        let giant = format!("a\n{}\nb\n", "y".repeat(5000));
        let page = read(None, None).render(&giant).unwrap();
        assert!(
            page.contains("… [line cut: 4000 more characters]\n3\tb"),
            "{page}"
        );
    }

    #[test]
    fn search_logs_and_preview_arguments_are_checked() {
        let ToolArgs::Search(a) = parse_call(
            "search",
            r#"{"pattern":"use\\w+","path":"./src/","glob":"*.tsx","ignore_case":true}"#,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            (
                a.pattern.as_str(),
                a.path.as_deref(),
                a.glob.as_deref(),
                a.ignore_case
            ),
            ("use\\w+", Some("src"), Some("*.tsx"), true)
        );
        let ToolArgs::Search(a) =
            parse_call("search", r#"{"pattern":"x","path":".","glob":" "}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!((a.path, a.glob, a.ignore_case), (None, None, false));
        let ToolArgs::ReadLogs(l) = parse_call("read_logs", "").unwrap() else {
            panic!()
        };
        assert_eq!((l.lines(), l.process), (DEFAULT_LOG_LINES, None));
        let ToolArgs::CheckPreview(c) = parse_call("check_preview", "{}").unwrap() else {
            panic!()
        };
        assert_eq!(c.path(), "/");
        let ToolArgs::CheckPreview(c) =
            parse_call("check_preview", r#"{"path":" /items?x=1 "}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(c.path(), "/items?x=1");
        for (name, args, needle) in [
            ("search", r#"{"pattern":""}"#, "`pattern` is empty"),
            ("search", r#"{}"#, "missing field `pattern`"),
            ("search", r#"{"pattern":"x","path":"../etc"}"#, "'..'"),
            (
                "read_logs",
                r#"{"process":"Web Server"}"#,
                "not a process name",
            ),
            ("read_logs", r#"{"lines":0}"#, "use 1 to 400"),
            ("read_logs", r#"{"lines":100000}"#, "use 1 to 400"),
            (
                "check_preview",
                r#"{"path":"http://evil.example/"}"#,
                "not a page path",
            ),
            (
                "check_preview",
                r#"{"path":"//evil.example/"}"#,
                "not a page path",
            ),
            ("check_preview", r#"{"path":"/a b"}"#, "not a page path"),
        ] {
            let e = parse_call(name, args).unwrap_err().to_string();
            assert!(e.contains(needle), "{name} {args}: {e}");
        }
        let long = json!({"pattern": "a".repeat(MAX_SEARCH_PATTERN + 1)}).to_string();
        assert!(parse_call("search", &long)
            .unwrap_err()
            .to_string()
            .contains("longer than"));
    }
}
