//! `POST /chat/stream` (the seed's endpoint): one agent turn as server-sent events, for curl
//! and scripts. It joins the project's WebSocket like any browser tab, sends the message, and
//! relays every event until that turn finishes.

use crate::error::ApiError;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use worker::{Env, Headers, Request, RequestInit, Response, WebsocketEvent};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatRequest {
    project_id: String,
    message: String,
    #[serde(default)]
    model: Option<String>,
}

pub async fn handle(mut req: Request, env: &Env) -> Result<Response, ApiError> {
    let body: ChatRequest = serde_json::from_str(&req.text().await?)?;
    open_replit_core::ids::validate_project_id(&body.project_id).map_err(ApiError::BadRequest)?;
    if body.message.trim().is_empty() {
        return Err(ApiError::BadRequest("message is empty".into()));
    }
    let url = req.url()?;
    let ws_url = format!(
        "{}://{}/projects/{}/ws",
        url.scheme(),
        url.host_str().unwrap_or("localhost"),
        body.project_id
    );
    let headers = Headers::new();
    headers.set("upgrade", "websocket")?;
    let mut init = RequestInit::new();
    init.with_headers(headers);
    let stub = env
        .durable_object("PROJECT_ROOM")?
        .get_by_name(&body.project_id)?;
    let resp = stub
        .fetch_with_request(Request::new_with_init(&ws_url, &init)?)
        .await?;
    let ws = resp
        .websocket()
        .ok_or_else(|| ApiError::Internal("the project did not accept a WebSocket".into()))?;
    ws.accept()?;
    let msg =
        serde_json::json!({"type": "user_message", "text": body.message, "model": body.model});
    ws.send_with_str(msg.to_string())?;
    // The socket's event stream borrows the socket, so a task owns both and forwards texts.
    let (tx, events) = futures_channel::mpsc::unbounded::<String>();
    wasm_bindgen_futures::spawn_local(async move {
        let Ok(mut evs) = ws.events() else { return };
        while let Some(Ok(WebsocketEvent::Message(m))) = evs.next().await {
            if let Some(t) = m.text() {
                if tx.unbounded_send(t).is_err() {
                    break;
                }
            }
        }
        let _ = ws.close(Some(1000), Some("turn finished"));
    });
    let want = msg["text"].clone();
    // State: the socket's events, our turn id once seen, and whether our turn is over.
    let sse = futures_util::stream::unfold(
        (events, None::<u64>, false),
        move |(mut events, mut our_turn, finished)| {
            let want = want.clone();
            async move {
                if finished {
                    return None;
                }
                loop {
                    let t = events.next().await?;
                    let Ok(v) = serde_json::from_str::<Value>(&t) else {
                        continue;
                    };
                    let ty = v["type"].as_str().unwrap_or("").to_string();
                    // Events of an earlier, still-running turn are not ours to relay.
                    if ty == "turn_started" && our_turn.is_none() && v["text"] == want {
                        our_turn = v["turn_id"].as_u64();
                    }
                    let mine = our_turn.is_some() && v["turn_id"].as_u64() == our_turn;
                    let relay = mine
                        || ty == "queued"
                        || (ty == "checkpoint_created" && our_turn.is_some());
                    if relay {
                        let done = ty == "turn_finished" && mine;
                        let bytes = format!("event: {ty}\ndata: {t}\n\n").into_bytes();
                        return Some((
                            Ok::<Vec<u8>, worker::Error>(bytes),
                            (events, our_turn, done),
                        ));
                    }
                }
            }
        },
    );
    let mut r = Response::from_stream(sse)?;
    let h = r.headers_mut();
    h.set("content-type", "text/event-stream")?;
    h.set("cache-control", "no-cache")?;
    Ok(r)
}
