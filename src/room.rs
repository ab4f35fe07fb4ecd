//! `ProjectRoom`, the Durable Object of one project: only the dispatch of its requests and
//! socket frames. The state lives in `room_state`, turns in `agent`, the HTTP API in
//! `project_api`. It trusts the caller's role only from `x-or-role`, which the Worker's gate
//! sets after removing any client-sent value; each request and socket frame is checked
//! against it (core's `auth::roles`), so a viewer cannot write, run, chat or start previews
//! even if the Worker's own check were skipped.

use crate::error::ApiError;
use crate::room_state::{send_transient, Room};
use open_replit_core::auth::roles::{action_for, Action, Role};
use open_replit_core::auth::ROLE_HEADER;
use open_replit_core::ids::split_project_path;
use open_replit_core::protocol::{parse_client_msg, ClientMsg, ServerEvent};
use std::rc::Rc;
use worker::*;

#[durable_object]
pub struct ProjectRoom {
    room: Rc<Room>,
}

impl DurableObject for ProjectRoom {
    fn new(state: State, env: Env) -> Self {
        ProjectRoom {
            room: Rc::new(Room::new(state, &env)),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let url = req.url()?;
        let path = url.path().to_string();
        let Some((project_id, rest)) = split_project_path(&path) else {
            return Ok(ApiError::NotFound(path).into_response());
        };
        let role = req
            .headers()
            .get(ROLE_HEADER)?
            .as_deref()
            .and_then(Role::parse);
        let Some(role) = role else {
            return Ok(ApiError::Forbidden("the request carries no role".into()).into_response());
        };
        let action = action_for(req.method().as_ref(), rest);
        if !role.may(action) {
            return Ok(ApiError::Forbidden(format!(
                "a {} of this project may not {} it",
                role.as_str(),
                action.as_str()
            ))
            .into_response());
        }
        // Remembered for socket events that arrive after hibernation, when no URL is at hand.
        self.room.set_kv("project_id", project_id)?;
        if rest == "/ws" {
            // OpenRouter asks callers to name themselves with a referer: the app's own origin.
            if let Ok(Some(o)) = req.headers().get("origin") {
                self.room.set_kv("origin", &o)?;
            }
            let user = crate::quota::room_user(&req);
            return self.room.accept_socket(&req, project_id, &url, &user, role);
        }
        if rest == "/pty" {
            return Ok(
                crate::pty::attach(self.room.clone(), &req, project_id, &url)
                    .await
                    .unwrap_or_else(ApiError::into_response),
            );
        }
        Ok(
            crate::project_api::handle(&self.room, req, project_id, rest)
                .await
                .unwrap_or_else(ApiError::into_response),
        )
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        let text = match message {
            // A frame far past the message cap is refused before it is parsed.
            WebSocketIncomingMessage::String(s)
                if s.len() > self.room.config().max_message_bytes + 4096 =>
            {
                return send_transient(
                    &ws,
                    ServerEvent::Error {
                        message: format!(
                            "the frame is {} bytes; a message may be at most {} bytes",
                            s.len(),
                            self.room.config().max_message_bytes
                        ),
                    },
                )
            }
            WebSocketIncomingMessage::String(s) => s,
            WebSocketIncomingMessage::Binary(_) => {
                return send_transient(
                    &ws,
                    ServerEvent::Error {
                        message: "binary frames are not part of the protocol; send JSON text"
                            .into(),
                    },
                )
            }
        };
        let msg = parse_client_msg(&text);
        if matches!(msg, Ok(ClientMsg::UserMessage { .. } | ClientMsg::Stop)) {
            // The role the socket was accepted with (kept across hibernation).
            let role = ws
                .deserialize_attachment::<String>()
                .ok()
                .flatten()
                .and_then(|r| Role::parse(&r));
            if !role.is_some_and(|r| r.may(Action::Chat)) {
                return send_transient(
                    &ws,
                    ServerEvent::Error {
                        message: "a viewer of this project may not chat or stop turns".into(),
                    },
                );
            }
        }
        match msg {
            Ok(ClientMsg::Ping { nonce }) => send_transient(&ws, ServerEvent::Pong { nonce }),
            Ok(ClientMsg::UserMessage { text, model }) => {
                if text.trim().is_empty() {
                    return send_transient(
                        &ws,
                        ServerEvent::Error {
                            message: "the message is empty".into(),
                        },
                    );
                }
                let user = self.room.socket_user(&ws);
                if let Err(message) =
                    crate::quota::admit_message(&self.room, &user, &text, model.as_deref()).await
                {
                    return send_transient(&ws, ServerEvent::Error { message });
                }
                crate::agent::submit(&self.room, text, model, user).await;
                Ok(())
            }
            Ok(ClientMsg::Stop) => {
                self.room.request_stop();
                Ok(())
            }
            Ok(ClientMsg::NewConversation) => {
                // A running turn would append its messages after the mark.
                if self.room.turn_running() {
                    return send_transient(
                        &ws,
                        ServerEvent::Error {
                            message: "a turn is running: wait for it to finish or stop it, \
                                      then start a new chat"
                                .into(),
                        },
                    );
                }
                let after_turn = self.room.turn_log().new_conversation();
                self.room
                    .emit(ServerEvent::ConversationReset { after_turn });
                Ok(())
            }
            Err(message) => send_transient(&ws, ServerEvent::Error { message }),
        }
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        code: usize,
        _reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        // Complete the closing handshake; 1005/1006 are not valid codes to echo back.
        let code = if code == 1005 || code == 1006 {
            1000
        } else {
            code as u16
        };
        let _ = ws.close(Some(code), Some("bye"));
        Ok(())
    }

    async fn websocket_error(&self, _ws: WebSocket, error: Error) -> Result<()> {
        console_warn!("ProjectRoom socket error: {error}");
        Ok(())
    }
}
