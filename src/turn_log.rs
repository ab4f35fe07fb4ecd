//! The turn log: the `turns` table (one row per agent turn: its message, model, how it ended,
//! tokens, cost, checkpoint), the `history` table (the model's messages, replayed to later
//! turns) and `history_marks` (where a new conversation starts, and the summaries that stand
//! for compacted stretches). This module owns the tables' schema and every query on them.
//! Marks never delete rows: the full transcript stays; they only change what is loaded.

use open_replit_core::agent::context::summary_messages;
use open_replit_core::agent::history::{window_start, HISTORY_ROWS};
use open_replit_core::llm::types::Message;
use open_replit_core::protocol::{TurnEnd, Usage};
use serde::Deserialize;
use worker::{console_error, SqlStorage, SqlStorageValue};

/// A loaded history: the messages, and each one's `history` row id (`None` for the two
/// messages that stand for a summary).
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub messages: Vec<Message>,
    pub ids: Vec<Option<i64>>,
}

pub struct TurnLog {
    sql: SqlStorage,
}

impl TurnLog {
    pub fn new(sql: SqlStorage) -> TurnLog {
        TurnLog { sql }
    }

    /// Creates both tables; idempotent.
    pub fn create_schema(&self) {
        for ddl in [
            "CREATE TABLE IF NOT EXISTS history (id INTEGER PRIMARY KEY AUTOINCREMENT, json TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS turns (turn_id INTEGER PRIMARY KEY, text TEXT NOT NULL, model TEXT NOT NULL, end_reason TEXT, prompt_tokens INTEGER, completion_tokens INTEGER, cost REAL, checkpoint INTEGER, started_ms INTEGER, finished_ms INTEGER)",
            "CREATE TABLE IF NOT EXISTS history_marks (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, upto INTEGER NOT NULL, first_request TEXT, summary TEXT)",
        ] {
            if let Err(e) = self.sql.exec(ddl, None) {
                console_error!("ProjectRoom schema: {e}");
            }
        }
        // Added later; fails harmlessly when the column exists.
        let _ = self
            .sql
            .exec("ALTER TABLE turns ADD COLUMN cached_tokens INTEGER", None);
    }

    /// Records a new turn and returns its id (one more than the last).
    pub fn start(&self, text: &str, model: &str, started_ms: i64) -> u64 {
        #[derive(Deserialize)]
        struct R {
            n: i64,
        }
        let turn_id = self
            .sql
            .exec("SELECT COALESCE(MAX(turn_id), 0) AS n FROM turns", None)
            .and_then(|c| c.to_array::<R>())
            .ok()
            .and_then(|r| r.first().map(|r| r.n as u64 + 1))
            .unwrap_or(1);
        let r = self.sql.exec(
            "INSERT INTO turns (turn_id, text, model, started_ms) VALUES (?, ?, ?, ?)",
            vec![
                SqlStorageValue::try_from_i64(turn_id as i64).unwrap_or(0i64.into()),
                text.into(),
                model.into(),
                SqlStorageValue::try_from_i64(started_ms).unwrap_or(0i64.into()),
            ],
        );
        if let Err(e) = r {
            console_error!("turn log: {e}");
        }
        turn_id
    }

    /// Records how a turn ended.
    pub fn finish(&self, turn_id: u64, end: TurnEnd, usage: &Usage, checkpoint: Option<u64>) {
        let end = serde_json::to_value(end)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let r = self.sql.exec(
            "UPDATE turns SET end_reason = ?, prompt_tokens = ?, completion_tokens = ?, cached_tokens = ?, cost = ?, checkpoint = ?, finished_ms = ? WHERE turn_id = ?",
            vec![
                end.into(),
                (usage.prompt_tokens as f64).into(),
                (usage.completion_tokens as f64).into(),
                (usage.cached_tokens as f64).into(),
                usage.cost.into(),
                checkpoint.map(|c| c as f64).into(),
                js_sys::Date::now().into(),
                (turn_id as f64).into(),
            ],
        );
        if let Err(e) = r {
            console_error!("turn log: {e}");
        }
    }

    /// The history a new turn starts from: the messages after the latest mark (a new
    /// conversation, or a summary, which then stands first as the first request and the
    /// summary), at most `HISTORY_ROWS` of them, cut to start at a person's message.
    pub fn history(&self) -> Loaded {
        #[derive(Deserialize)]
        struct Mark {
            kind: String,
            upto: f64,
            first_request: Option<String>,
            summary: Option<String>,
        }
        #[derive(Deserialize)]
        struct R {
            id: f64,
            json: String,
        }
        let mark: Option<Mark> = self
            .sql
            .exec(
                "SELECT kind, upto, first_request, summary FROM history_marks ORDER BY id DESC LIMIT 1",
                None,
            )
            .and_then(|c| c.to_array())
            .ok()
            .and_then(|v: Vec<Mark>| v.into_iter().next());
        let after = mark.as_ref().map(|m| m.upto as i64).unwrap_or(0);
        let rows: Vec<R> = self
            .sql
            .exec(
                "SELECT id, json FROM (SELECT id, json FROM history WHERE id > ? ORDER BY id DESC LIMIT ?) ORDER BY id",
                vec![
                    SqlStorageValue::try_from_i64(after).unwrap_or(0i64.into()),
                    SqlStorageValue::try_from_i64(HISTORY_ROWS as i64).unwrap_or(1000i64.into()),
                ],
            )
            .and_then(|c| c.to_array())
            .unwrap_or_default();
        let mut rows: Vec<(i64, Message)> = rows
            .iter()
            .filter_map(|r| Some((r.id as i64, serde_json::from_str(&r.json).ok()?)))
            .collect();
        let start = window_start(rows.iter().map(|(_, m)| m));
        rows.drain(..start);
        let mut loaded = Loaded::default();
        if let Some(Mark {
            kind,
            first_request: Some(first),
            summary: Some(summary),
            ..
        }) = mark
        {
            if kind == "summary" {
                for m in summary_messages(&first, &summary) {
                    loaded.messages.push(m);
                    loaded.ids.push(None);
                }
            }
        }
        for (id, m) in rows {
            loaded.messages.push(m);
            loaded.ids.push(Some(id));
        }
        loaded
    }

    /// Records that history rows up to `upto` are summarized: later turns load the first
    /// request and the summary instead of them.
    pub fn save_summary(&self, upto: i64, first_request: &str, summary: &str) {
        let r = self.sql.exec(
            "INSERT INTO history_marks (kind, upto, first_request, summary) VALUES ('summary', ?, ?, ?)",
            vec![
                SqlStorageValue::try_from_i64(upto).unwrap_or(0i64.into()),
                first_request.into(),
                summary.into(),
            ],
        );
        if let Err(e) = r {
            console_error!("turn log: {e}");
        }
    }

    /// Starts a new conversation after everything stored so far; returns the last turn's id.
    pub fn new_conversation(&self) -> u64 {
        #[derive(Deserialize)]
        struct N {
            n: f64,
        }
        let max = |q: &str| -> i64 {
            self.sql
                .exec(q, None)
                .and_then(|c| c.to_array::<N>())
                .ok()
                .and_then(|r| r.first().map(|r| r.n as i64))
                .unwrap_or(0)
        };
        let upto = max("SELECT COALESCE(MAX(id), 0) AS n FROM history");
        let r = self.sql.exec(
            "INSERT INTO history_marks (kind, upto) VALUES ('cut', ?)",
            vec![SqlStorageValue::try_from_i64(upto).unwrap_or(0i64.into())],
        );
        if let Err(e) = r {
            console_error!("turn log: {e}");
        }
        max("SELECT COALESCE(MAX(turn_id), 0) AS n FROM turns") as u64
    }

    /// Appends a turn's new messages to the history.
    pub fn append_history(&self, messages: &[Message]) {
        for m in messages {
            if let Ok(j) = serde_json::to_string(m) {
                if let Err(e) = self
                    .sql
                    .exec("INSERT INTO history (json) VALUES (?)", vec![j.into()])
                {
                    console_error!("turn log: {e}");
                }
            }
        }
    }
}
