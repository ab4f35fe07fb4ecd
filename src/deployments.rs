//! The `deployments` table of a project room: one row per deployment (core's
//! `deploy::record::Deployment` as JSON), and the room's publishing settings (the live
//! deployment, who may open the app) in its key-value table. This module owns the table's
//! schema and every query on it.

use open_replit_core::deploy::record::{DeployStatus, Deployment, Visibility};
use serde::Deserialize;
use worker::{console_error, SqlStorage, SqlStorageValue};

/// Rows a listing returns.
pub const LIST_LIMIT: usize = 50;

pub struct Deployments {
    sql: SqlStorage,
}

#[derive(Deserialize)]
struct Row {
    json: String,
}

fn int(n: u64) -> SqlStorageValue {
    SqlStorageValue::try_from_i64(n as i64).unwrap_or(0i64.into())
}

impl Deployments {
    pub fn new(sql: SqlStorage) -> Deployments {
        Deployments { sql }
    }

    /// Creates the table; idempotent.
    pub fn create_schema(&self) {
        if let Err(e) = self.sql.exec(
            "CREATE TABLE IF NOT EXISTS deployments (n INTEGER PRIMARY KEY, json TEXT NOT NULL)",
            None,
        ) {
            console_error!("ProjectRoom deployments schema: {e}");
        }
    }

    /// The number of the next deployment (one more than the last).
    pub fn next_number(&self) -> u64 {
        #[derive(Deserialize)]
        struct R {
            n: i64,
        }
        self.sql
            .exec("SELECT COALESCE(MAX(n), 0) AS n FROM deployments", None)
            .and_then(|c| c.to_array::<R>())
            .ok()
            .and_then(|r| r.first().map(|r| r.n as u64 + 1))
            .unwrap_or(1)
    }

    /// Writes a deployment (new or changed).
    pub fn put(&self, d: &Deployment) {
        let Some(n) = open_replit_core::deploy::record::deployment_number(&d.id) else {
            console_error!("deployments: bad id {}", d.id);
            return;
        };
        let json = serde_json::to_string(d).unwrap_or_default();
        if let Err(e) = self.sql.exec(
            "INSERT INTO deployments (n, json) VALUES (?, ?) ON CONFLICT(n) DO UPDATE SET json = excluded.json",
            vec![int(n), json.into()],
        ) {
            console_error!("deployments: {e}");
        }
    }

    pub fn get(&self, id: &str) -> Option<Deployment> {
        let n = open_replit_core::deploy::record::deployment_number(id)?;
        let rows: Vec<Row> = self
            .sql
            .exec("SELECT json FROM deployments WHERE n = ?", vec![int(n)])
            .ok()?
            .to_array()
            .ok()?;
        rows.into_iter()
            .next()
            .and_then(|r| serde_json::from_str(&r.json).ok())
    }

    /// The newest `limit` deployments, newest first.
    pub fn list(&self, limit: usize) -> Vec<Deployment> {
        self.sql
            .exec(
                "SELECT json FROM deployments ORDER BY n DESC LIMIT ?",
                vec![int(limit as u64)],
            )
            .and_then(|c| c.to_array::<Row>())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| serde_json::from_str(&r.json).ok())
            .collect()
    }

    /// Deployments a publish was working on when the room last stopped following them: with
    /// no publish running in this object, they can never finish, so they are marked
    /// `interrupted`. Returns them as changed.
    pub fn interrupt_stale(&self, now_ms: u64) -> Vec<Deployment> {
        let mut out = Vec::new();
        for mut d in self.list(LIST_LIMIT) {
            if d.status.in_progress() {
                d.status = DeployStatus::Interrupted;
                d.finished_ms = Some(now_ms);
                d.error = Some(
                    "the publish stopped before it finished (the project's server restarted); \
                     the live app did not change"
                        .into(),
                );
                self.put(&d);
                out.push(d);
            }
        }
        out
    }
}

/// The room's publishing settings, in its key-value table.
pub const KV_LIVE: &str = "deploy_live";
pub const KV_VISIBILITY: &str = "deploy_visibility";

/// The visibility stored under [`KV_VISIBILITY`] (public when unset).
pub fn visibility_of(stored: Option<String>) -> Visibility {
    stored
        .as_deref()
        .and_then(Visibility::parse)
        .unwrap_or_default()
}
