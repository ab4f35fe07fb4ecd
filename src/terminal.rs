//! `POST /projects/{id}/terminal` (the seed's endpoint): runs a command on the VM and streams
//! its output as NDJSON to the caller while everyone watching the project sees it too.

use crate::azure::blob_client;
use crate::changes::commit_outside_turn;
use crate::error::ApiError;
use crate::room_state::Room;
use crate::step::Step;
use crate::vm::Vm;
use futures_channel::mpsc;
use futures_util::StreamExt;
use open_replit_core::manifest::Manifest;
use open_replit_core::store::merge::command_summary;
use open_replit_core::store::project::Projects;
use open_replit_core::store::Transport;
use open_replit_core::vm_api::{ndjson_line, Changes, ExecEvent, ExecRequest};
use serde::Deserialize;
use serde_json::json;
use std::cell::RefCell;
use std::rc::Rc;
use worker::{AbortController, Request, Response};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TerminalRequest {
    command: String,
    #[serde(default)]
    cwd: String,
    #[serde(default)]
    timeout_s: Option<u64>,
}

pub async fn handle<T: Transport>(
    room: Rc<Room>,
    mut req: Request,
    id: &str,
    p: &Projects<'_, T>,
) -> Result<Response, ApiError> {
    let user = Vm::user_of(&req);
    let body: TerminalRequest = serde_json::from_str(&req.text().await?)?;
    if body.command.trim().is_empty() {
        return Err(ApiError::BadRequest("command is empty".into()));
    }
    if !body.cwd.is_empty() {
        open_replit_core::paths::validate_path(&body.cwd).map_err(|e| ApiError::Rule {
            rule: e.rule(),
            message: e.to_string(),
        })?;
    }
    let timeout_s = body.timeout_s.unwrap_or(120).clamp(1, 600);
    let vm = Vm::from_config(room.config())?.acting_for(&user);
    // The command runs against exactly what storage holds.
    let head = p
        .head(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("project {id}")))?;
    crate::changes::sync(&room, &vm, id, &head.manifest).await?;
    let call_id = format!("terminal-{}", js_sys::Date::now() as u64);
    let (tx, rx) = mpsc::unbounded::<Vec<u8>>();
    let abort = RefCell::new(Some(AbortController::default()));
    let signal = abort.borrow().as_ref().map(|a| a.signal());
    let id = id.to_string();
    // The answer is the VM's exec stream (core's `ExecEvent` lines), plus a last
    // `{"type":"error"}` line when the command could not run at all.
    let send = move |line: String| tx.unbounded_send(line.into_bytes()).is_ok();
    wasm_bindgen_futures::spawn_local(async move {
        // Turn 0: commands people run, outside any agent turn.
        let step = Step::start(
            &room,
            0,
            call_id,
            "terminal",
            json!({"command": body.command, "cwd": body.cwd}),
        );
        let req = ExecRequest::new(&body.command, &body.cwd, timeout_s);
        let result = vm
            .exec(&id, &req, signal.as_ref(), |stream, data| {
                let event = match stream {
                    "stderr" => ExecEvent::Stderr {
                        data: data.to_string(),
                    },
                    _ => ExecEvent::Stdout {
                        data: data.to_string(),
                    },
                };
                // The caller went away (Ctrl-C closes the request): stop the command.
                if !send(ndjson_line(&event)) {
                    if let Some(a) = abort.borrow_mut().take() {
                        a.abort();
                    }
                }
                step.output(stream, data);
            })
            .await;
        let (ok, summary) = match result {
            Ok(done) => {
                let mut summary = format!("exit code {:?}", done.exit.exit_code);
                // What the command changed is saved before the caller hears the exit, so the
                // checkpoint exists by then.
                if let Some(changes) = done.changes {
                    let saved = save(&room, &id, &head.manifest, &changes, &body.command).await;
                    let text = changes.summary();
                    if !text.is_empty() {
                        summary.push('\n');
                        summary.push_str(&text);
                    }
                    if let Err(e) = saved {
                        summary.push_str(&format!(
                            "\nthe changes could not be saved: {}",
                            e.message()
                        ));
                    }
                    send(ndjson_line(&ExecEvent::Changes(changes)));
                }
                let ok = done.exit.exit_code == Some(0);
                send(ndjson_line(&ExecEvent::Exit(done.exit)));
                (ok, summary)
            }
            Err(e) => {
                let message = e.message();
                send(ndjson_line(&json!({"type": "error", "message": message})));
                (false, message)
            }
        };
        step.finish(ok, summary);
    });
    let stream = rx.map(Ok::<Vec<u8>, worker::Error>);
    let mut r = Response::from_stream(stream)?;
    r.headers_mut()
        .set("content-type", "application/x-ndjson")?;
    Ok(r)
}

/// Saves one command's changes as a checkpoint (see `changes`).
async fn save(
    room: &Room,
    id: &str,
    base: &Manifest,
    changes: &Changes,
    command: &str,
) -> Result<(), ApiError> {
    let blob = blob_client(room.config())?;
    let p = Projects::new(&blob).with_max_files(room.config().max_project_files);
    commit_outside_turn(room, &p, id, base, changes, &command_summary(command)).await?;
    Ok(())
}
