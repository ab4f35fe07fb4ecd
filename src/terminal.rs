//! `POST /projects/{id}/terminal` (the seed's endpoint): runs a command on the VM and streams
//! its output as NDJSON to the caller while everyone watching the project sees it too.

use crate::config::Config;
use crate::error::ApiError;
use crate::room::Room;
use crate::vm::{ExecRequest, Vm};
use futures_channel::mpsc;
use futures_util::StreamExt;
use open_replit_core::protocol::ServerEvent;
use open_replit_core::store::project::Projects;
use open_replit_core::store::Transport;
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
    cfg: &Config,
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
    let vm = Vm::from_config(cfg)?;
    // The command runs against exactly what storage holds.
    let head = p
        .head(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("project {id}")))?;
    vm.sync(id, &head.manifest).await?;
    let call_id = format!("terminal-{}", js_sys::Date::now() as u64);
    room.emit(ServerEvent::ToolCallStarted {
        turn_id: 0,
        call_id: call_id.clone(),
        name: "terminal".into(),
        arguments: json!({"command": body.command, "cwd": body.cwd}),
    })?;
    let (tx, rx) = mpsc::unbounded::<Vec<u8>>();
    let abort = RefCell::new(Some(AbortController::default()));
    let signal = abort.borrow().as_ref().map(|a| a.signal());
    let id = id.to_string();
    wasm_bindgen_futures::spawn_local(async move {
        let t0 = js_sys::Date::now();
        let req = ExecRequest {
            command: &body.command,
            cwd: &body.cwd,
            timeout_s,
            env: BTreeMap::new(),
            cache: None,
        };
        let result = vm
            .exec(&id, &req, signal.as_ref(), |stream, data| {
                let line = json!({"type": stream, "data": data}).to_string() + "\n";
                // The caller went away (Ctrl-C closes the request): stop the command.
                if tx.unbounded_send(line.into_bytes()).is_err() {
                    if let Some(a) = abort.borrow_mut().take() {
                        a.abort();
                    }
                }
                let _ = room.emit(ServerEvent::ToolOutput {
                    turn_id: 0,
                    call_id: call_id.clone(),
                    stream: stream.to_string(),
                    data: data.to_string(),
                });
            })
            .await;
        let (ok, summary, last) = match result {
            Ok(exit) => (
                exit.exit_code == Some(0),
                format!("exit code {:?}", exit.exit_code),
                json!({"type": "exit", "exit_code": exit.exit_code, "duration_ms": exit.duration_ms, "timed_out": exit.timed_out, "truncated": exit.truncated}),
            ),
            Err(e) => {
                let m = e.message();
                (false, m.clone(), json!({"type": "error", "message": m}))
            }
        };
        let _ = tx.unbounded_send((last.to_string() + "\n").into_bytes());
        let _ = room.emit(ServerEvent::ToolCallFinished {
            turn_id: 0,
            call_id,
            ok,
            result: summary,
            duration_ms: (js_sys::Date::now() - t0) as u64,
        });
    });
    let stream = rx.map(Ok::<Vec<u8>, worker::Error>);
    let mut r = Response::from_stream(stream)?;
    r.headers_mut()
        .set("content-type", "application/x-ndjson")?;
    Ok(r)
}
