//! `POST /chat/stream` (the seed's endpoint): one agent turn as server-sent events, for curl
//! and scripts. It joins the project's WebSocket like any browser tab, sends the message, and
//! relays every event until that turn finishes.

use crate::auth::{identify, unauthorized, AuthConfig};
use crate::error::ApiError;
use futures_util::StreamExt;
use open_replit_core::protocol::ClientMsg;
use open_replit_core::relay::TurnRelay;
use serde::Deserialize;
use worker::{Env, Headers, Request, RequestInit, Response, WebsocketEvent};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatRequest {
    project_id: String,
    message: String,
    #[serde(default)]
    model: Option<String>,
}

pub async fn handle(mut req: Request, env: &Env, auth: &AuthConfig) -> Result<Response, ApiError> {
    let url = req.url()?;
    let text = req.text().await?;
    let body: ChatRequest = match serde_json::from_str(&text) {
        Ok(b) => b,
        // Without a valid credential the answer is 401 whatever the body says.
        Err(e) => {
            identify(auth, env, &req, &url, None)
                .await?
                .ok_or_else(unauthorized)?;
            return Err(e.into());
        }
    };
    let checked = match open_replit_core::ids::validate_project_id(&body.project_id) {
        Ok(()) => identify(auth, env, &req, &url, Some(&body.project_id)).await?,
        Err(e) => {
            identify(auth, env, &req, &url, None)
                .await?
                .ok_or_else(unauthorized)?;
            return Err(ApiError::BadRequest(e));
        }
    };
    let caller = checked.ok_or_else(unauthorized)?;
    let caller = caller
        .role
        .map(|role| (caller.user.id, role))
        .ok_or_else(|| ApiError::NotFound(format!("project {} not found", body.project_id)))?;
    if !caller.1.may(open_replit_core::auth::roles::Action::Chat) {
        return Err(ApiError::Forbidden(format!(
            "a {} of this project may not chat",
            caller.1.as_str()
        )));
    }
    if body.message.trim().is_empty() {
        return Err(ApiError::BadRequest("message is empty".into()));
    }
    let limit = crate::config::Config::from_env(env).max_message_bytes;
    if body.message.len() > limit {
        return Err(ApiError::TooLarge(format!(
            "the message is {} bytes; the limit is {limit} bytes",
            body.message.len()
        )));
    }
    let ws_url = format!(
        "{}://{}/projects/{}/ws",
        url.scheme(),
        url.host_str().unwrap_or("localhost"),
        body.project_id
    );
    let headers = Headers::new();
    headers.set("upgrade", "websocket")?;
    headers.set(open_replit_core::auth::USER_HEADER, &caller.0)?;
    headers.set(open_replit_core::auth::ROLE_HEADER, caller.1.as_str())?;
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
    let msg = ClientMsg::UserMessage {
        text: body.message.clone(),
        model: body.model,
    };
    ws.send_with_str(serde_json::to_string(&msg)?)?;
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
    let relay = TurnRelay::new(body.message);
    // State: the socket's events, the relay filter, and whether the caller's turn is over.
    let sse = futures_util::stream::unfold(
        (events, relay, false),
        |(mut events, mut relay, finished)| async move {
            if finished {
                return None;
            }
            loop {
                let t = events.next().await?;
                if let Some(r) = relay.accept(&t) {
                    let bytes = format!("event: {}\ndata: {t}\n\n", r.event_type).into_bytes();
                    return Some((Ok::<Vec<u8>, worker::Error>(bytes), (events, relay, r.last)));
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
