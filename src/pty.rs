//! The interactive terminal: `GET /projects/{id}/pty` upgrades the browser's socket and joins
//! it to a shell session on the VM API (`/projects/{id}/pty`, signed), passing keystrokes and
//! output through untouched. When the VM says the working copy `changed`, the room saves what
//! changed as a checkpoint (see `changes::save_vm_changes`), at most one save at a time.

use crate::error::ApiError;
use crate::room_state::{Room, SaveState};
use crate::vm::Vm;
use futures_util::StreamExt;
use std::rc::Rc;
use wasm_bindgen::{JsCast, JsValue};
use worker::{Request, Response, Url, WebSocket, WebSocketPair, WebsocketEvent};

/// How long a burst of `changed` notices is collected before one save (the shell may still
/// be writing).
const SAVE_DEBOUNCE_MS: u64 = 300;

pub async fn attach(
    room: Rc<Room>,
    req: &Request,
    id: &str,
    url: &Url,
) -> Result<Response, ApiError> {
    let is_upgrade = req
        .headers()
        .get("upgrade")?
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !is_upgrade {
        return Err(ApiError::BadRequest("expected a WebSocket upgrade".into()));
    }
    // Only the session name and size travel on; anything else in the query is dropped.
    let mut forward = Url::parse("http://vm/").map_err(|e| ApiError::Internal(e.to_string()))?;
    for (k, v) in url.query_pairs() {
        if matches!(k.as_ref(), "session" | "cols" | "rows") {
            forward.query_pairs_mut().append_pair(&k, &v);
        }
    }
    let vm = Vm::from_config(room.config())?.acting_for(&Vm::user_of(req));
    // The shell starts on exactly what storage holds: first save anything the VM's copy has
    // that storage lacks (so the sync cannot undo it), then sync the head. Not during an agent
    // turn: the VM's copy then holds the turn's unsaved files, which the head would undo.
    if !room.turn_running() {
        crate::changes::save_vm_changes(&room, id, "$ (terminal)").await?;
        let blob = crate::azure::blob_client(room.config())?;
        let head = open_replit_core::store::project::Projects::new(&blob)
            .head(id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("project {id}")))?;
        crate::changes::sync(&room, &vm, id, &head.manifest).await?;
    }
    let upstream = vm
        .open_socket(&format!(
            "/projects/{id}/pty?{}",
            forward.query().unwrap_or("")
        ))
        .await?;
    let pair = WebSocketPair::new()?;
    let browser = pair.server;
    browser.accept()?;
    upstream.accept()?;
    let id = id.to_string();
    // Browser → VM: keystrokes (binary) and control frames (text) as they are.
    {
        let (browser, upstream) = (browser.clone(), upstream.clone());
        wasm_bindgen_futures::spawn_local(async move {
            pump(&browser, &upstream, |_| {}).await;
            let _ = upstream.close(Some(1000), Some("the browser left"));
        });
    }
    // VM → browser; a `changed` notice starts (or extends) a save.
    wasm_bindgen_futures::spawn_local(async move {
        let on_text = |text: &str| {
            if text.contains("\"changed\"") {
                request_save(room.clone(), id.clone());
            }
        };
        pump(&upstream, &browser, on_text).await;
        let _ = browser.close(Some(1000), Some("the shell ended"));
    });
    Ok(Response::from_websocket(pair.client)?)
}

/// Forwards every frame from `from` to `to` until either side closes.
async fn pump(from: &WebSocket, to: &WebSocket, mut on_text: impl FnMut(&str)) {
    let Ok(mut events) = from.events() else {
        return;
    };
    while let Some(Ok(ev)) = events.next().await {
        let sent = match ev {
            WebsocketEvent::Message(m) => match m.text() {
                Some(t) => {
                    on_text(&t);
                    to.send_with_str(t)
                }
                None => match binary(m.as_ref().data()).await {
                    Some(b) => to.send_with_bytes(b),
                    None => Ok(()),
                },
            },
            WebsocketEvent::Close(_) => break,
        };
        if sent.is_err() {
            break;
        }
    }
}

/// A binary frame's bytes: workerd hands them over as a `Blob` (read through its
/// `arrayBuffer()` promise) or an `ArrayBuffer`.
async fn binary(data: JsValue) -> Option<Vec<u8>> {
    if data.is_instance_of::<js_sys::ArrayBuffer>() {
        return Some(js_sys::Uint8Array::new(&data).to_vec());
    }
    let read = js_sys::Reflect::get(&data, &JsValue::from_str("arrayBuffer")).ok()?;
    let read: js_sys::Function = read.dyn_into().ok()?;
    let promise: js_sys::Promise = read.call0(&data).ok()?.dyn_into().ok()?;
    let buf = wasm_bindgen_futures::JsFuture::from(promise).await.ok()?;
    Some(js_sys::Uint8Array::new(&buf).to_vec())
}

/// Starts (or extends) the project's one debounced save of what its shells changed.
fn request_save(room: Rc<Room>, id: String) {
    let state = room.terminal_save();
    match state.get() {
        SaveState::Busy | SaveState::Again => state.set(SaveState::Again),
        SaveState::Idle => {
            state.set(SaveState::Busy);
            wasm_bindgen_futures::spawn_local(async move {
                loop {
                    worker::Delay::from(std::time::Duration::from_millis(SAVE_DEBOUNCE_MS)).await;
                    if let Err(e) =
                        crate::changes::save_vm_changes(&room, &id, "$ (terminal)").await
                    {
                        worker::console_error!("saving the terminal's changes: {}", e.message());
                    }
                    let state = room.terminal_save();
                    if state.get() == SaveState::Again {
                        state.set(SaveState::Busy);
                        continue;
                    }
                    state.set(SaveState::Idle);
                    break;
                }
            });
        }
    }
}
