//! A project room's state: the event log (SQLite) and the sockets it is broadcast to, the
//! room's key-value settings, checkpoint announcements, and the turn queue. Every other module
//! reaches the Durable Object's storage through these methods, never through raw SQL.

use crate::config::Config;
use crate::deployments::Deployments;
use crate::error::ApiError;
use crate::turn_log::TurnLog;
use open_replit_core::manifest::Diff;
use open_replit_core::protocol::{Envelope, ServerEvent};
use open_replit_core::store::project::{Checkpoint, Projects};
use open_replit_core::store::Transport;
use serde::Deserialize;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use worker::{
    console_error, AbortController, Env, Request, Response, Result, SqlStorage, SqlStorageValue,
    State, Url, WebSocket, WebSocketPair,
};

/// Events kept in the log; older ones are compacted away (see docs/protocol.md).
pub const LOG_KEEP: u64 = 10_000;
/// Compaction runs once per this many appended events.
const COMPACT_EVERY: u64 = 500;
/// Longest a streamed event waits before it is written to the log.
const LOG_FLUSH_MS: f64 = 500.0;
/// Rows per INSERT statement (two bound values each).
const LOG_ROWS_PER_INSERT: usize = 40;
/// The tag prefix naming a socket's user.
const USER_TAG: &str = "user:";

/// The state of one project's `ProjectRoom`, shared (behind an `Rc`) by the work a request
/// starts, which can outlive the request (a turn, a streamed terminal answer).
pub struct Room {
    state: State,
    env: Env,
    config: Config,
    seq: Cell<u64>,
    turns: TurnQueue,
    /// Streamed events (text deltas, command output) already sent but not yet in the log:
    /// written together, so a stream costs one storage commit per `LOG_FLUSH_MS`, not one per
    /// token. Any other event, a replay, and the end of a turn write them first.
    /// Each is (seq, body, when it was sent in ms).
    pending: RefCell<Vec<(u64, String, f64)>>,
    /// The one debounced save of what shells changed on the VM, shared by every terminal of
    /// the project (two open terminals must not run two saves of the same changes).
    terminal_save: Cell<SaveState>,
    /// Publishes (and rollbacks, unpublishes) of the project run one at a time.
    publish_lock: futures_util::lock::Mutex<()>,
    /// The agent's `publish` tool ran in the running turn: publish once it ends.
    publish_after_turn: Cell<bool>,
    /// Publishes this object is running or queueing (a deployment still `building` with none
    /// is one an earlier object never finished).
    publishes: Cell<u32>,
}

/// Where the project's terminal save stands.
#[derive(Clone, Copy, PartialEq, Default)]
pub enum SaveState {
    #[default]
    Idle,
    /// A save is waiting or running.
    Busy,
    /// Another `changed` came while busy: save once more after.
    Again,
}

/// One queued chat message: its text, the model it asked for, and the user who sent it (who
/// pays for its turn).
pub type QueuedMessage = (String, Option<String>, String);

/// Who runs: at most one turn at a time, later messages wait in order, and a stop request
/// reaches the running turn at its next await point.
#[derive(Default)]
struct TurnQueue {
    running: Cell<bool>,
    stop_requested: Cell<bool>,
    /// Aborts the in-flight model or command request when a person presses stop.
    abort: RefCell<Option<AbortController>>,
    waiting: RefCell<VecDeque<QueuedMessage>>,
}

/// What became of a submitted message.
pub enum Admission {
    /// No turn was running: the caller runs this one now (and then [`Room::next_turn`]).
    RunNow,
    /// A turn is running; the message waits at this position (1 is next).
    Queued(usize),
}

#[derive(Deserialize)]
struct SeqRow {
    seq: i64,
}

#[derive(Deserialize)]
struct EventRow {
    body: String,
}

impl Room {
    /// The project's terminal-save state (see [`SaveState`]).
    pub fn terminal_save(&self) -> &Cell<SaveState> {
        &self.terminal_save
    }

    /// Opens the room's storage; `IF NOT EXISTS` makes this idempotent across wake-ups.
    pub fn new(state: State, env: &Env) -> Room {
        let sql = state.storage().sql();
        for ddl in [
            "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, body TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
        ] {
            if let Err(e) = sql.exec(ddl, None) {
                console_error!("ProjectRoom schema: {e}");
            }
        }
        TurnLog::new(sql.clone()).create_schema();
        Deployments::new(sql).create_schema();
        let room = Room {
            state,
            env: env.clone(),
            // Vars and secrets are fixed for an object's lifetime (changing them starts new
            // objects), so they are read once.
            config: Config::from_env(env),
            seq: Cell::new(0),
            turns: TurnQueue::default(),
            pending: RefCell::new(Vec::new()),
            terminal_save: Cell::new(SaveState::Idle),
            publish_lock: futures_util::lock::Mutex::new(()),
            publish_after_turn: Cell::new(false),
            publishes: Cell::new(0),
        };
        room.seq.set(room.max_seq().unwrap_or(0));
        room
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The Worker's bindings (the `UserQuota` objects turns reserve their spending with).
    pub fn env(&self) -> &Env {
        &self.env
    }

    /// The turns and the model's history, stored beside the event log.
    pub fn turn_log(&self) -> TurnLog {
        TurnLog::new(self.sql())
    }

    /// The project's deployments, stored beside the event log.
    pub fn deployments(&self) -> Deployments {
        Deployments::new(self.sql())
    }

    /// Held by the publish, rollback or unpublish that runs; the next one waits.
    pub fn publish_lock(&self) -> &futures_util::lock::Mutex<()> {
        &self.publish_lock
    }

    /// Counts a publish that started (`+1`) or ended (`-1`) in this object.
    pub fn publishes(&self) -> &Cell<u32> {
        &self.publishes
    }

    /// Asks for a publish when the running turn ends (the agent's `publish` tool).
    pub fn publish_after_turn(&self) {
        self.publish_after_turn.set(true);
    }

    /// Whether the turn that just ended asked for a publish (and clears the request).
    pub fn take_publish_request(&self) -> bool {
        self.publish_after_turn.replace(false)
    }

    fn sql(&self) -> SqlStorage {
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

    pub fn delete_kv(&self, k: &str) -> Result<()> {
        self.sql()
            .exec("DELETE FROM kv WHERE k = ?", vec![k.into()])?;
        Ok(())
    }

    /// Forgets everything this room stored (the project was deleted): the event log, the
    /// key-value entries (secrets, publish and deploy state), the turns and the model's
    /// history, the deployments. The tables stay, empty, so the object keeps working.
    pub fn forget_everything(&self) -> Result<()> {
        #[derive(Deserialize)]
        struct T {
            name: String,
        }
        let tables: Vec<T> = self
            .sql()
            .exec(
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'",
                None,
            )?
            .to_array()?;
        for t in tables {
            // Names come from the schema this room created, never from a request.
            self.sql().exec(
                &format!("DELETE FROM \"{}\"", t.name.replace('"', "")),
                None,
            )?;
        }
        self.pending.borrow_mut().clear();
        self.seq.set(0);
        Ok(())
    }

    /// Tells every open socket the project was deleted, then closes it (code 4404).
    pub fn close_sockets_deleted(&self) {
        let body = serde_json::to_string(&ServerEvent::ProjectDeleted).unwrap_or_default();
        for ws in self.state.get_websockets() {
            let _ = ws.send_with_str(&body);
            let _ = ws.close(Some(4404), Some("project deleted"));
        }
    }

    /// The user a socket was opened by (`local` for one opened before users existed).
    pub fn socket_user(&self, ws: &WebSocket) -> String {
        self.state
            .get_tags(ws)
            .iter()
            .find_map(|t| t.strip_prefix(USER_TAG).map(String::from))
            .unwrap_or_else(|| "local".to_string())
    }

    /// How many sockets are connected (people watching the project).
    pub fn sockets(&self) -> usize {
        self.state.get_websockets().len()
    }

    // ---- the turn queue ----

    /// Admits a chat message of `user`: it runs now, or waits behind the running turn.
    pub fn admit(&self, text: &str, model: Option<String>, user: &str) -> Admission {
        if self.turns.running.get() {
            let mut q = self.turns.waiting.borrow_mut();
            q.push_back((text.to_string(), model, user.to_string()));
            return Admission::Queued(q.len());
        }
        self.turns.running.set(true);
        self.turns.stop_requested.set(false);
        Admission::RunNow
    }

    /// After a turn: the next waiting message (its stop request cleared), or `None`, which
    /// also marks the room idle.
    pub fn next_turn(&self) -> Option<QueuedMessage> {
        self.turns.stop_requested.set(false);
        let next = self.turns.waiting.borrow_mut().pop_front();
        if next.is_none() {
            self.turns.running.set(false);
        }
        next
    }

    /// How many messages wait behind the running turn.
    pub fn queued(&self) -> usize {
        self.turns.waiting.borrow().len()
    }

    /// Whether an agent turn is running (the VM's working copy then holds its unsaved files).
    pub fn turn_running(&self) -> bool {
        self.turns.running.get()
    }

    /// Whether a person asked the running turn to stop.
    pub fn stop_requested(&self) -> bool {
        self.turns.stop_requested.get()
    }

    /// Stops the running turn at its next await point and aborts the request in flight.
    pub fn request_stop(&self) {
        if self.turns.running.get() {
            self.turns.stop_requested.set(true);
            if let Some(a) = self.turns.abort.borrow_mut().take() {
                a.abort();
            }
        }
    }

    /// A fresh abort controller for the turn's next outgoing request, which stop aborts.
    pub fn abortable(&self) -> worker::AbortSignal {
        let ctl = AbortController::default();
        let signal = ctl.signal();
        *self.turns.abort.borrow_mut() = Some(ctl);
        signal
    }

    // ---- the event log and the sockets ----

    /// Accepts a WebSocket of `user` and replays the log after `?since=` to it.
    /// `role` is kept as the socket's attachment, so it survives hibernation.
    pub fn accept_socket(
        &self,
        req: &Request,
        project_id: &str,
        url: &Url,
        user: &str,
        role: open_replit_core::auth::roles::Role,
    ) -> Result<Response> {
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
        // The user rides on the socket as a tag, which survives hibernation.
        self.state
            .accept_websocket_with_tags(&pair.server, &[&format!("{USER_TAG}{user}")]);
        pair.server.serialize_attachment(role.as_str())?;
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
    /// batches, see `pending`). Never fails: an event that cannot be logged was still sent, and
    /// the failure is written to the Worker's log.
    pub fn emit(&self, event: ServerEvent) {
        if let Err(e) = self.try_emit(event) {
            console_error!("emit: {e}");
        }
    }

    fn try_emit(&self, event: ServerEvent) -> Result<()> {
        let streamed = matches!(
            event,
            ServerEvent::AssistantDelta { .. }
                | ServerEvent::ToolOutput { .. }
                | ServerEvent::DeployLog { .. }
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
        Ok(())
    }

    /// Writes every pending event to the log (in one storage commit) and compacts it.
    pub fn flush_log(&self) -> Result<()> {
        let rows = std::mem::take(&mut *self.pending.borrow_mut());
        let Some(&(last, _, _)) = rows.last() else {
            return Ok(());
        };
        let sql = self.sql();
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

    /// Tells every socket about a new checkpoint and what it changed.
    pub async fn announce_checkpoint<T: Transport>(
        &self,
        p: &Projects<'_, T>,
        id: &str,
        cp: &Checkpoint,
    ) {
        let diff = match cp.info.parent {
            Some(parent) => match p.checkpoint(id, parent).await {
                Ok(prev) => prev.manifest.diff(&cp.manifest),
                Err(_) => Diff::default(),
            },
            None => Diff {
                added: cp.manifest.files.keys().cloned().collect(),
                ..Default::default()
            },
        };
        self.emit(ServerEvent::CheckpointCreated {
            checkpoint: cp.info.clone(),
            diff,
        });
    }

    fn max_seq(&self) -> Result<u64> {
        self.one_seq("SELECT COALESCE(MAX(seq), 0) AS seq FROM events")
    }

    fn min_seq(&self) -> Result<u64> {
        self.one_seq("SELECT COALESCE(MIN(seq), 0) AS seq FROM events")
    }

    fn one_seq(&self, q: &str) -> Result<u64> {
        let rows: Vec<SeqRow> = self.sql().exec(q, None)?.to_array()?;
        Ok(rows.first().map(|r| r.seq.max(0) as u64).unwrap_or(0))
    }
}

/// Sends an event to one socket only, outside the log (`seq` 0): pongs, greetings, errors
/// about one client's frame.
pub fn send_transient(ws: &WebSocket, event: ServerEvent) -> Result<()> {
    ws.send(&Envelope { seq: 0, event })
}
