//! Executes the agent's tool calls: file tools on the turn's working set, commands and the
//! preview on the VM, documents from Blob storage. Each failure is typed as the model's to fix
//! or as the platform's, as codex's `FunctionCallError` does.

use crate::azure::blob_client;
use crate::changes::take_changes;
use crate::error::ApiError;
use crate::room_state::Room;
use crate::step::Step;
use crate::vm::Vm;
use crate::work::{Work, WorkError};
use open_replit_core::agent::edit::apply_edits;
use open_replit_core::agent::tools::ToolArgs;
use open_replit_core::agent::turn::keep_tail;
use open_replit_core::manifest::Manifest;
use open_replit_core::protocol::ServerEvent;
use open_replit_core::vm_api::ExecRequest;

/// Command output kept for the model: the end of a log is where errors are.
const COMMAND_TAIL_BYTES: usize = 16_000;

/// Why a tool call failed.
#[derive(Debug)]
pub enum ToolFailure {
    /// The call cannot work as asked (a missing file, an edit that does not match, a failing
    /// install): the model reads the message and corrects itself.
    Model(String),
    /// Our side failed (storage, the VM API): the model is told, since it may wait or work
    /// around it, and the operator's log gets it too.
    Platform(String),
}

impl ToolFailure {
    pub fn message(&self) -> &str {
        match self {
            ToolFailure::Model(m) | ToolFailure::Platform(m) => m,
        }
    }
}

impl From<WorkError> for ToolFailure {
    fn from(e: WorkError) -> Self {
        match e {
            WorkError::Missing(m) => ToolFailure::Model(m),
            WorkError::Platform(m) => ToolFailure::Platform(m),
        }
    }
}

impl From<ApiError> for ToolFailure {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Upstream(_) | ApiError::Internal(_) => ToolFailure::Platform(e.message()),
            _ => ToolFailure::Model(e.message()),
        }
    }
}

fn model(m: impl Into<String>) -> ToolFailure {
    ToolFailure::Model(m.into())
}

fn need_vm(vm: Option<&Vm>) -> Result<&Vm, ToolFailure> {
    vm.ok_or_else(|| {
        ToolFailure::Platform("the VM API is not configured (VM_API_SECRET is missing)".into())
    })
}

/// Records a write (`Some`) or delete (`None`) in the working set and tells everyone.
fn set_file(room: &Room, work: &mut Work<'_>, turn_id: u64, path: &str, content: Option<Vec<u8>>) {
    let sha256 = content.as_ref().map(|b| Manifest::entry(b).sha256);
    work.set(path, content);
    room.emit(ServerEvent::FileChanged {
        turn_id,
        path: path.to_string(),
        sha256,
    });
}

/// Runs one parsed call; `step` is the call as people see it (live output goes there).
pub async fn run_tool(
    room: &Room,
    work: &mut Work<'_>,
    vm: Option<&Vm>,
    step: &Step<'_>,
    args: &ToolArgs,
) -> Result<String, ToolFailure> {
    let turn_id = step.turn_id();
    match args {
        ToolArgs::ListFiles(a) => {
            let m = work.manifest();
            let dir = a.path.as_deref().unwrap_or("").trim_end_matches('/');
            let prefix = if dir.is_empty() {
                String::new()
            } else {
                format!("{dir}/")
            };
            let lines: Vec<String> = m
                .files
                .iter()
                .filter(|(p, _)| p.starts_with(&prefix))
                .map(|(p, e)| format!("{p} ({} bytes)", e.size))
                .collect();
            if lines.is_empty() {
                return Err(model(format!("no files under {dir:?}")));
            }
            Ok(lines.join("\n"))
        }
        ToolArgs::ReadFile(a) => {
            let b = work.read(&a.path).await?;
            String::from_utf8(b)
                .map_err(|_| model(format!("{} is binary; it cannot be shown as text", a.path)))
        }
        ToolArgs::WriteFile(a) => {
            let existed = work.exists(&a.path).is_ok();
            set_file(
                room,
                work,
                turn_id,
                &a.path,
                Some(a.content.clone().into_bytes()),
            );
            Ok(format!(
                "{} {} ({} bytes)",
                if existed { "updated" } else { "created" },
                a.path,
                a.content.len()
            ))
        }
        ToolArgs::DeleteFile(a) => {
            work.exists(&a.path)?;
            set_file(room, work, turn_id, &a.path, None);
            Ok(format!("deleted {}", a.path))
        }
        ToolArgs::EditFile(a) => {
            let old = String::from_utf8(work.read(&a.path).await?)
                .map_err(|_| model(format!("{} is binary", a.path)))?;
            let new = apply_edits(&old, &a.edits).map_err(|e| model(e.to_string()))?;
            set_file(room, work, turn_id, &a.path, Some(new.into_bytes()));
            Ok(format!(
                "edited {} ({} edit(s) applied)",
                a.path,
                a.edits.len()
            ))
        }
        ToolArgs::RunCommand(a) => {
            let vm = need_vm(vm)?;
            work.sync_vm(vm).await?;
            let mut out = String::new();
            let cwd = a.cwd.clone().unwrap_or_default();
            let req = ExecRequest::new(&a.command, cwd, a.timeout_s() as u64);
            // Stop aborts this request, and the VM kills the command when its client goes.
            let signal = room.abortable();
            let done = vm
                .exec(&work.id, &req, Some(&signal), |stream, data| {
                    out.push_str(data);
                    step.output(stream, data);
                })
                .await?;
            let exit = done.exit;
            let mut head = match exit.exit_code {
                Some(c) => format!("exit code {c} after {} ms", exit.duration_ms),
                None => format!("killed after {} ms", exit.duration_ms),
            };
            if exit.timed_out {
                head.push_str(&format!(" (timed out after {} s)", a.timeout_s()));
            }
            if exit.truncated {
                head.push_str(" (the VM cut the output at its cap)");
            }
            let changed = done
                .changes
                .map(|c| take_changes(room, work, turn_id, &c))
                .filter(|s| !s.is_empty())
                .map(|s| format!("\n[files changed by the command, now part of the project]\n{s}"))
                .unwrap_or_default();
            Ok(format!(
                "{head}\n{}{changed}",
                keep_tail(&out, COMMAND_TAIL_BYTES)
            ))
        }
        ToolArgs::StartPreview(_) | ToolArgs::RestartPreview(_) => {
            let vm = need_vm(vm)?;
            work.sync_vm(vm).await?;
            let restart = matches!(args, ToolArgs::RestartPreview(_));
            let manifest = work.manifest();
            let started =
                crate::preview::start(room, vm, &work.id, &manifest, restart, Some(step)).await?;
            for c in &started.changes {
                take_changes(room, work, turn_id, c);
            }
            Ok(serde_json::to_string_pretty(&started.state).unwrap_or_default())
        }
        ToolArgs::ReadDocs(a) => {
            let mut client = blob_client(room.config()).map_err(ToolFailure::from)?;
            client.container = "codebase-docs".into();
            match &a.name {
                None => {
                    let items = client
                        .list_all("", None)
                        .await
                        .map_err(|e| ToolFailure::Platform(e.to_string()))?;
                    if items.is_empty() {
                        return Ok("no reference documents are available".into());
                    }
                    Ok(items
                        .iter()
                        .map(|i| format!("{} ({} bytes)", i.name, i.size))
                        .collect::<Vec<_>>()
                        .join("\n"))
                }
                Some(n) => {
                    let r = client
                        .get(n)
                        .await
                        .map_err(|e| model(format!("document {n:?}: {e}")))?;
                    String::from_utf8(r.body).map_err(|_| model(format!("{n} is not text")))
                }
            }
        }
    }
}
