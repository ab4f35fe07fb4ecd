//! `POST /projects/{id}/terminal` (the seed's endpoint): runs a command on the VM and streams
//! its output as NDJSON to the caller while everyone watching the project sees it too.

use crate::error::ApiError;
use crate::room_state::Room;
use crate::step::Step;
use crate::vm::Vm;
use futures_channel::mpsc;
use futures_util::StreamExt;
use open_replit_core::store::project::Projects;
use open_replit_core::store::Transport;
use open_replit_core::vm_api::{ndjson_line, ExecEvent, ExecRequest};
use serde::Deserialize;
use serde_json::json;
use std::cell::RefCell;
use std::collections::BTreeMap;
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
    let vm = Vm::from_config(room.config())?;
    // The command runs against exactly what storage holds.
    let head = p
        .head(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("project {id}")))?;
    vm.sync(id, &head.manifest).await?;
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
        let req = ExecRequest {
            command: body.command.clone(),
            cwd: body.cwd.clone(),
            timeout_s: Some(timeout_s),
            env: BTreeMap::new(),
            cache: None,
            // Not yet: the Worker does not take in the changes a command reports (issue 13).
            scan: Some(false),
        };
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
            Ok(exit) => {
                let summary = format!("exit code {:?}", exit.exit_code);
                let ok = exit.exit_code == Some(0);
                send(ndjson_line(&ExecEvent::Exit(exit)));
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
