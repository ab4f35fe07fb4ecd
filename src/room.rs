//! `ProjectRoom`: the Durable Object that owns one project: its event log (SQLite), its
//! WebSockets (hibernation API), and every request that reads or changes its files.

use crate::error::ApiError;
use open_replit_core::protocol::{parse_client_msg, ClientMsg, Envelope, ServerEvent};
use serde::Deserialize;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use worker::*;

/// Events kept in the log; older ones are compacted away (see docs/protocol.md).
pub const LOG_KEEP: u64 = 10_000;
/// Compaction runs once per this many appended events.
const COMPACT_EVERY: u64 = 500;

#[durable_object]
pub struct ProjectRoom {
    room: Rc<Room>,
}

/// The object's state, behind an `Rc` so work that outlives one call (a streamed HTTP answer)
/// can hold it.
pub struct Room {
    state: State,
    env: Env,
    seq: Cell<u64>,
    /// A turn is running; new messages queue behind it.
    pub running: Cell<bool>,
    /// A person asked to stop the running turn.
    pub stop_requested: Cell<bool>,
    /// Aborts the in-flight model or command request when a person presses stop.
    pub abort: RefCell<Option<AbortController>>,
    pub queue: RefCell<VecDeque<(String, Option<String>)>>,
    /// Streamed events (text deltas, command output) already sent but not yet in the log:
    /// written together, so a stream costs one storage commit per `LOG_FLUSH_MS`, not one per
    /// token. Any other event, a replay, and the end of a turn write them first.
    /// Each is (seq, body, when it was sent in ms).
    pending: RefCell<Vec<(u64, String, f64)>>,
}

/// Longest a streamed event waits before it is written to the log.
const LOG_FLUSH_MS: f64 = 500.0;
/// Rows per INSERT statement (two bound values each).
const LOG_ROWS_PER_INSERT: usize = 40;

#[derive(Deserialize)]
struct SeqRow {
    seq: i64,
}

#[derive(Deserialize)]
struct EventRow {
    body: String,
}

impl DurableObject for ProjectRoom {
    fn new(state: State, env: Env) -> Self {
        // Schema lives with the object; `IF NOT EXISTS` makes construction idempotent.
        let sql = state.storage().sql();
        if let Err(e) = sql.exec(
            "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, body TEXT NOT NULL)",
            None,
        ) {
            console_error!("ProjectRoom schema: {e}");
        }
        for ddl in [
            "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS history (id INTEGER PRIMARY KEY AUTOINCREMENT, json TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS turns (turn_id INTEGER PRIMARY KEY, text TEXT NOT NULL, model TEXT NOT NULL, end_reason TEXT, prompt_tokens INTEGER, completion_tokens INTEGER, cost REAL, checkpoint INTEGER, started_ms INTEGER, finished_ms INTEGER)",
        ] {
            if let Err(e) = sql.exec(ddl, None) {
                console_error!("ProjectRoom schema: {e}");
            }
        }
        let room = Room {
            state,
            env,
            seq: Cell::new(0),
            running: Cell::new(false),
            stop_requested: Cell::new(false),
            abort: RefCell::new(None),
            queue: RefCell::new(VecDeque::new()),
            pending: RefCell::new(Vec::new()),
        };
        room.seq.set(room.max_seq().unwrap_or(0));
        ProjectRoom {
            room: Rc::new(room),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let url = req.url()?;
        let path = url.path().to_string();
        let Some((project_id, rest)) = split_project_path(&path) else {
            return Ok(ApiError::NotFound(path).into_response());
        };
        // Remembered for socket events that arrive after hibernation, when no URL is at hand.
        self.room.set_kv("project_id", project_id)?;
        if rest == "/ws" {
            // OpenRouter asks callers to name themselves with a referer: the app's own origin.
            if let Ok(Some(o)) = req.headers().get("origin") {
                self.room.set_kv("origin", &o)?;
            }
            return self.room.accept_socket(&req, project_id, &url);
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
            Ok(ClientMsg::UserMessage { text, model }) => {
                if text.trim().is_empty() {
                    return send_transient(
                        &ws,
                        ServerEvent::Error {
                            message: "the message is empty".into(),
                        },
                    );
                }
                crate::agent::submit(&self.room, text, model).await;
                Ok(())
            }
            Ok(ClientMsg::Stop) => {
                self.room.request_stop();
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

/// `/projects/{id}/rest` → (`id`, `/rest`); the id is validated again here.
pub fn split_project_path(path: &str) -> Option<(&str, &str)> {
    let after = path.strip_prefix("/projects/")?;
    let (id, rest) = match after.find('/') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, ""),
    };
    open_replit_core::ids::validate_project_id(id).ok()?;
    Some((id, rest))
}

impl Room {
    pub fn env(&self) -> &Env {
        &self.env
    }

    pub fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    pub fn project_id(&self) -> Option<String> {
        self.get_kv("project_id")
    }

    pub fn get_kv(&self, k: &str) -> Option<String> {
        #[derive(Deserialize)]
        struct V {
            v: String,
        }
        let rows: Vec<V> = self
            .sql()
            .exec("SELECT v FROM kv WHERE k = ?", vec![k.into()])
            .ok()?
            .to_array()
            .ok()?;
        rows.into_iter().next().map(|r| r.v)
    }

    pub fn set_kv(&self, k: &str, v: &str) -> Result<()> {
        self.sql().exec(
            "INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
            vec![k.into(), v.into()],
        )?;
        Ok(())
    }

    /// Stops the running turn at its next await point; aborts the request in flight.
    /// How many sockets are connected (people watching the project).
    pub fn sockets(&self) -> usize {
        self.state.get_websockets().len()
    }

    pub fn request_stop(&self) {
        if self.running.get() {
            self.stop_requested.set(true);
            if let Some(a) = self.abort.borrow_mut().take() {
                a.abort();
            }
        }
    }

    fn accept_socket(&self, req: &Request, project_id: &str, url: &Url) -> Result<Response> {
        let is_upgrade = req
            .headers()
            .get("upgrade")?
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
        if !is_upgrade {
            return Ok(ApiError::BadRequest("expected a WebSocket upgrade".into()).into_response());
        }
        let since: Option<u64> = url
            .query_pairs()
            .find(|(k, _)| k == "since")
            .and_then(|(_, v)| v.parse().ok());
        let pair = WebSocketPair::new()?;
        self.state.accept_web_socket(&pair.server);
        // Everything below runs without an await, so no event can be emitted between the replay
        // and the socket joining the live broadcast: nothing is lost or sent twice.
        self.flush_log()?;
        let last = self.seq.get();
        send_transient(
            &pair.server,
            ServerEvent::Hello {
                project_id: project_id.to_string(),
                last_seq: last,
            },
        )?;
        if let Some(since) = since {
            let oldest = self.min_seq()?;
            // Older than the log, or newer than it (events sent but lost with a crashed object
            // before they were written): either way the client must refetch.
            if since + 1 < oldest || since > last {
                send_transient(
                    &pair.server,
                    ServerEvent::Reset {
                        oldest_seq: oldest,
                        last_seq: last,
                    },
                )?;
            }
            let rows: Vec<EventRow> = self
                .state
                .storage()
                .sql()
                .exec(
                    "SELECT body FROM events WHERE seq > ? ORDER BY seq",
                    vec![SqlStorageValue::try_from_i64(since as i64)?],
                )?
                .to_array()?;
            for r in rows {
                pair.server.send_with_str(&r.body)?;
            }
        }
        Response::from_websocket(pair.client)
    }

    /// Sends an event to every connected socket and appends it to the log (streamed events in
    /// batches, see `pending`).
    pub fn emit(&self, event: ServerEvent) -> Result<u64> {
        let streamed = matches!(
            event,
            ServerEvent::AssistantDelta { .. } | ServerEvent::ToolOutput { .. }
        );
        let seq = self.seq.get() + 1;
        let body = serde_json::to_string(&Envelope { seq, event })?;
        for ws in self.state.get_websockets() {
            // A socket that is closing cannot take more; the others still must.
            let _ = ws.send_with_str(&body);
        }
        self.seq.set(seq);
        let now = js_sys::Date::now();
        let oldest = {
            let mut pending = self.pending.borrow_mut();
            pending.push((seq, body, now));
            pending[0].2
        };
        if !streamed || now - oldest >= LOG_FLUSH_MS {
            self.flush_log()?;
        }
        Ok(seq)
    }

    /// Writes every pending event to the log (in one storage commit) and compacts it.
    pub fn flush_log(&self) -> Result<()> {
        let rows = std::mem::take(&mut *self.pending.borrow_mut());
        let Some(&(last, _, _)) = rows.last() else {
            return Ok(());
        };
        let sql = self.state.storage().sql();
        for batch in rows.chunks(LOG_ROWS_PER_INSERT) {
            let mut q = String::from("INSERT INTO events (seq, body) VALUES ");
            let mut values = Vec::with_capacity(batch.len() * 2);
            for (i, (seq, body, _)) in batch.iter().enumerate() {
                q.push_str(if i == 0 { "(?, ?)" } else { ", (?, ?)" });
                values.push(SqlStorageValue::try_from_i64(*seq as i64)?);
                values.push(body.as_str().into());
            }
            sql.exec(&q, values)?;
        }
        let first = rows[0].0;
        // Compact when this batch crossed a multiple of COMPACT_EVERY.
        if last > LOG_KEEP && (first..=last).any(|s| s.is_multiple_of(COMPACT_EVERY)) {
            sql.exec(
                "DELETE FROM events WHERE seq <= ?",
                vec![SqlStorageValue::try_from_i64((last - LOG_KEEP) as i64)?],
            )?;
        }
        Ok(())
    }

    fn max_seq(&self) -> Result<u64> {
        self.one_seq("SELECT COALESCE(MAX(seq), 0) AS seq FROM events")
    }

    fn min_seq(&self) -> Result<u64> {
        self.one_seq("SELECT COALESCE(MIN(seq), 0) AS seq FROM events")
    }

    fn one_seq(&self, q: &str) -> Result<u64> {
        let rows: Vec<SeqRow> = self.state.storage().sql().exec(q, None)?.to_array()?;
        Ok(rows.first().map(|r| r.seq.max(0) as u64).unwrap_or(0))
    }
}

fn send_transient(ws: &WebSocket, event: ServerEvent) -> Result<()> {
    ws.send(&Envelope { seq: 0, event })
}
