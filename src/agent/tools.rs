//! Executes the agent's tool calls: file tools and the template's docs on the turn's working
//! set; commands, search, dev-server logs and the preview (and its headless check) on the VM.
//! Each failure is typed as the model's to fix or as the platform's, as codex's
//! `FunctionCallError` does.

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
use open_replit_core::vm_api::{ExecRequest, LogsQuery, PreviewCheckRequest, SearchRequest};

/// Command output kept for the model: the end of a log is where errors are.
const COMMAND_TAIL_BYTES: usize = 16_000;
/// Log text kept per process for `read_logs` (the end).
const LOG_TAIL_BYTES: usize = 12_000;

/// The template's reference documents in the project: Markdown files in a `docs/` folder.
fn is_doc(path: &str) -> bool {
    path.ends_with(".md") && (path.starts_with("docs/") || path.contains("/docs/"))
}

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
            let text = String::from_utf8(b)
                .map_err(|_| model(format!("{} is binary; it cannot be shown as text", a.path)))?;
            a.render(&text).map_err(model)
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
            let applied = apply_edits(&old, &a.edits).map_err(|e| model(e.to_string()))?;
            let summary = applied.summary();
            set_file(
                room,
                work,
                turn_id,
                &a.path,
                Some(applied.text.into_bytes()),
            );
            Ok(format!("edited {}: {summary}", a.path))
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
            let docs: Vec<String> = work
                .manifest()
                .files
                .keys()
                .filter(|p| is_doc(p))
                .cloned()
                .collect();
            match &a.name {
                None => {
                    if docs.is_empty() {
                        return Ok("this project has no reference documents (docs/*.md)".into());
                    }
                    let mut out = Vec::new();
                    for d in &docs {
                        let title = work
                            .read(d)
                            .await
                            .ok()
                            .and_then(|b| String::from_utf8(b).ok())
                            .and_then(|t| {
                                t.lines()
                                    .find(|l| l.starts_with('#'))
                                    .map(|l| l.trim_start_matches('#').trim().to_string())
                            })
                            .unwrap_or_default();
                        out.push(format!("{d}: {title}"));
                    }
                    Ok(out.join("\n"))
                }
                Some(n) => {
                    let n = n.trim_start_matches("./");
                    if !docs.iter().any(|d| d == n) {
                        return Err(model(format!(
                            "{n:?} is not one of the project's documents; they are: {}",
                            if docs.is_empty() {
                                "none".to_string()
                            } else {
                                docs.join(", ")
                            }
                        )));
                    }
                    let b = work.read(n).await?;
                    String::from_utf8(b).map_err(|_| model(format!("{n} is not text")))
                }
            }
        }
        ToolArgs::Search(a) => {
            let vm = need_vm(vm)?;
            work.sync_vm(vm).await?;
            let req = SearchRequest {
                pattern: a.pattern.clone(),
                path: a.path.clone(),
                glob: a.glob.clone(),
                ignore_case: a.ignore_case,
                max_matches: None,
            };
            let reply = vm.search(&work.id, &req).await?;
            Ok(reply.render(&a.pattern))
        }
        ToolArgs::ReadLogs(a) => {
            let vm = need_vm(vm)?;
            let list = vm.processes(&work.id).await?.processes;
            if list.is_empty() {
                return Ok("no dev servers have been started; call start_preview".into());
            }
            let chosen: Vec<_> = list
                .iter()
                .filter(|p| a.process.as_ref().is_none_or(|n| &p.name == n))
                .collect();
            if chosen.is_empty() {
                let names: Vec<&str> = list.iter().map(|p| p.name.as_str()).collect();
                return Err(model(format!(
                    "there is no dev process named {:?}; the processes are: {}",
                    a.process.as_deref().unwrap_or_default(),
                    names.join(", ")
                )));
            }
            let q = LogsQuery {
                tail: Some(a.lines() as u64),
                follow: None,
            };
            let mut out = Vec::new();
            for p in chosen {
                let logs = vm.logs(&work.id, &p.name, &q).await?;
                out.push(keep_tail(&logs.render(Some(p.port)), LOG_TAIL_BYTES));
            }
            Ok(out.join("\n\n"))
        }
        ToolArgs::CheckPreview(a) => {
            let vm = need_vm(vm)?;
            let req = PreviewCheckRequest {
                path: Some(a.path().to_string()),
            };
            match vm.preview_check(&work.id, &req).await {
                Ok(reply) => Ok(reply.render()),
                // Nothing is running, or the host has no browser: the model can act on both.
                Err(ApiError::Conflict { message, .. }) => Err(model(format!(
                    "{message}; call start_preview, then check_preview again"
                ))),
                Err(ApiError::Upstream(m)) if m.contains("no headless browser") => {
                    Err(model(format!(
                        "the preview cannot be checked: {m}. Use read_logs and the dev servers' \
                         status instead."
                    )))
                }
                Err(e) => Err(e.into()),
            }
        }
        ToolArgs::Publish(_) => {
            if let Err(e) = crate::config::publish_url(room.env()) {
                return Err(model(format!("publishing is misconfigured: {e}")));
            }
            if crate::config::publish_url(room.env())
                .ok()
                .flatten()
                .is_none()
            {
                return Err(model(
                    "publishing is not set up on this server (no PUBLISH_URL); tell the person \
                     the app cannot be published here",
                ));
            }
            room.publish_after_turn();
            Ok(
                "Publishing is scheduled: when this turn ends, the platform builds its \
                checkpoint for production and switches the public URL to it once the backend \
                answers its health check. The person sees the steps and the URL in the Publish \
                panel; a failed build leaves the previous version live. Tell the person it is \
                being published; do not call publish again this turn."
                    .into(),
            )
        }
    }
}
