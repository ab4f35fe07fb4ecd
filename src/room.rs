//! `ProjectRoom`: the Durable Object that owns one project's live stream and event log.

use open_replit_core::protocol::{parse_client_msg, ClientMsg, Envelope, ServerEvent};
use serde::Deserialize;
use worker::*;

#[durable_object]
pub struct ProjectRoom {
    state: State,
}

#[derive(Deserialize)]
struct SeqRow {
    seq: i64,
}

impl DurableObject for ProjectRoom {
    fn new(state: State, _env: Env) -> Self {
        // Schema lives with the object; `IF NOT EXISTS` makes construction idempotent.
        let sql = state.storage().sql();
        if let Err(e) = sql.exec(
            "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, body TEXT NOT NULL)",
            None,
        ) {
            console_error!("ProjectRoom schema: {e}");
        }
        ProjectRoom { state }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let is_upgrade = req
            .headers()
            .get("upgrade")?
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
        if !is_upgrade {
            return Response::error("expected a WebSocket upgrade", 426);
        }
        let project_id = req.headers().get("x-project-id")?.unwrap_or_default();
        let pair = WebSocketPair::new()?;
        self.state.accept_web_socket(&pair.server);
        let hello = Envelope {
            seq: 0,
            event: ServerEvent::Hello {
                project_id,
                last_seq: self.last_seq()?,
            },
        };
        pair.server.send(&hello)?;
        Response::from_websocket(pair.client)
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        let text = match message {
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
        match parse_client_msg(&text) {
            Ok(ClientMsg::Ping { nonce }) => send_transient(&ws, ServerEvent::Pong { nonce }),
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

impl ProjectRoom {
    fn last_seq(&self) -> Result<u64> {
        let rows: Vec<SeqRow> = self
            .state
            .storage()
            .sql()
            .exec("SELECT COALESCE(MAX(seq), 0) AS seq FROM events", None)?
            .to_array()?;
        Ok(rows.first().map(|r| r.seq.max(0) as u64).unwrap_or(0))
    }
}

fn send_transient(ws: &WebSocket, event: ServerEvent) -> Result<()> {
    ws.send(&Envelope { seq: 0, event })
}
