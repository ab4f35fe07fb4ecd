//! The turn log: the `turns` table (one row per agent turn: its message, model, how it ended,
//! tokens, cost, checkpoint) and the `history` table (the model's messages, replayed to later
//! turns). This module owns both tables' schema and every query on them.

use open_replit_core::agent::history::{window, HISTORY_ROWS};
use open_replit_core::llm::types::Message;
use open_replit_core::protocol::{TurnEnd, Usage};
use serde::Deserialize;
use worker::{console_error, SqlStorage, SqlStorageValue};

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
        ] {
            if let Err(e) = self.sql.exec(ddl, None) {
                console_error!("ProjectRoom schema: {e}");
            }
        }
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
            "UPDATE turns SET end_reason = ?, prompt_tokens = ?, completion_tokens = ?, cost = ?, checkpoint = ?, finished_ms = ? WHERE turn_id = ?",
            vec![
                end.into(),
                (usage.prompt_tokens as f64).into(),
                (usage.completion_tokens as f64).into(),
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

    /// The history a new turn starts from: the last `HISTORY_ROWS` messages, cut to core's
    /// window.
    pub fn history(&self) -> Vec<Message> {
        #[derive(Deserialize)]
        struct R {
            json: String,
        }
        let rows: Vec<R> = self
            .sql
            .exec(
                "SELECT json FROM (SELECT id, json FROM history ORDER BY id DESC LIMIT ?) ORDER BY id",
                vec![SqlStorageValue::try_from_i64(HISTORY_ROWS as i64).unwrap_or(200i64.into())],
            )
            .and_then(|c| c.to_array())
            .unwrap_or_default();
        window(
            rows.iter()
                .filter_map(|r| serde_json::from_str(&r.json).ok())
                .collect(),
        )
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
