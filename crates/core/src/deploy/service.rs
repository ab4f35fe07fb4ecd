//! A deployment's backend as a supervised production service: wire types and pure rules.
//!
//! Routes (VM API, signed like every route; see `docs/protocol.md`, "Deployments: the backend
//! service"): `POST /projects/{id}/deployments/{deployment}/start` (`StartBackendRequest` →
//! `StartBackendReply`), `POST …/{deployment}/activate` (→ `ActivateReply`),
//! `GET /projects/{id}/deployments/live` (→ `LiveReply`), `DELETE` of the same path (→
//! `UnpublishReply`), `GET …/{deployment}/logs?tail=N` (the process log replies,
//! `vm_api::LogsReply`, or `vm_api::LogFollowEvent`s with `follow=1`),
//! `POST …/{deployment}/stop` (a candidate's `vm_api::LogsReply`) and
//! `ANY /projects/{id}/live/{*path}` (the reverse proxy). `LiveRecord` is
//! `{data_dir}/deploy/{project}/live.json`. `Backoff` is the restart policy of a live backend.

use crate::vm_api::ProcessStatus;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The file in the deployment data folder that `DATABASE_PATH` names.
pub const DATABASE_FILE: &str = "app.db";
/// Health wait when the request names none, and the most a request may ask for.
pub const DEFAULT_HEALTH_TIMEOUT_S: u64 = 30;
pub const MAX_HEALTH_TIMEOUT_S: u64 = 300;

/// A deployment id: `d-` followed by 1 to 40 of `a-z 0-9 -` (one rule for builds and services).
pub use crate::deploy::build::validate_deployment_id;

fn default_port_env() -> String {
    "PORT".into()
}
fn default_health_path() -> String {
    "/".into()
}
fn default_health_timeout() -> u64 {
    DEFAULT_HEALTH_TIMEOUT_S
}

/// `POST …/deployments/{deployment}/start`: how to run the deployment's backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBackendRequest {
    /// Directory of the backend inside the deployment (`""` = its root); the command's cwd.
    #[serde(default)]
    pub backend_dir: String,
    /// Run with `sh -c` in the project's sandbox.
    pub command: String,
    /// Environment variable that carries the port the backend must listen on.
    #[serde(default = "default_port_env")]
    pub port_env: String,
    /// Path answered with 2xx once the backend serves (`/api/health`).
    #[serde(default = "default_health_path")]
    pub health_path: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// How long to wait for the first 2xx (1 to 300 s).
    #[serde(default = "default_health_timeout")]
    pub health_timeout_s: u64,
}

/// Which rule a request broke: a stable code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
}

fn invalid(code: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        code,
        message: message.into(),
    }
}

impl StartBackendRequest {
    /// Everything checkable without I/O (the environment's names are checked by the caller
    /// with the rule every route shares).
    pub fn validate(&self) -> Result<(), Invalid> {
        if !self.backend_dir.is_empty() {
            crate::paths::validate_path(&self.backend_dir).map_err(|e| {
                invalid(
                    "invalid_backend_dir",
                    format!("backend_dir breaks rule {}: {e}", e.rule()),
                )
            })?;
        }
        if self.command.trim().is_empty() || self.command.contains('\0') {
            return Err(invalid(
                "invalid_command",
                "command must be a non-empty string without NUL bytes",
            ));
        }
        let mut name = self.port_env.bytes();
        let name_ok = name
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && name.all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !name_ok || self.port_env == "DATABASE_PATH" {
            return Err(invalid(
                "invalid_port_env",
                "port_env must match [A-Za-z_][A-Za-z0-9_]* and not be DATABASE_PATH",
            ));
        }
        let path_ok = self.health_path.starts_with('/')
            && !self.health_path.starts_with("//")
            && self.health_path.len() <= 1024
            && self.health_path.bytes().all(|b| b.is_ascii_graphic());
        if !path_ok {
            return Err(invalid(
                "invalid_health_path",
                "health_path must start with one '/' and be printable ASCII (at most 1024 bytes)",
            ));
        }
        if !(1..=MAX_HEALTH_TIMEOUT_S).contains(&self.health_timeout_s) {
            return Err(invalid(
                "invalid_timeout",
                format!("health_timeout_s must be 1 to {MAX_HEALTH_TIMEOUT_S}"),
            ));
        }
        Ok(())
    }
}

/// The reply of `start`: whether the candidate became healthy, and if not why.
/// An unhealthy candidate has been stopped; it can never be activated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartBackendReply {
    pub deployment: String,
    /// The health path answered 2xx within the timeout.
    pub healthy: bool,
    pub status: ProcessStatus,
    pub exit_code: Option<i32>,
    pub waited_ms: u64,
    /// The backend's last log lines (at most 20).
    pub last_lines: Vec<String>,
    /// Why it is not healthy; absent when healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How the live backend is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceStatus {
    /// The process runs and its health path answered 2xx.
    Running,
    /// It exited (or was started again and has not answered its health path yet; one that
    /// does not within `health_timeout_s` is stopped); the supervisor starts it again after
    /// the backoff.
    Restarting,
    /// The last attempt to start it failed (see `error`); the supervisor keeps trying.
    Crashed,
}

/// `GET /projects/{id}/deployments/live`. The backend's port is deliberately not part of it:
/// the live backend is reached only through `/projects/{id}/live/…`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveReply {
    pub deployment: String,
    pub status: ServiceStatus,
    /// How many times the supervisor started it again.
    pub restarts: u32,
    /// Unix milliseconds of the current (or last) run's start.
    pub started_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The last log lines, when it is not running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_lines: Option<Vec<String>>,
}

/// `POST …/{deployment}/activate`: the new live backend and the one it replaced (stopped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivateReply {
    pub live: LiveReply,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
}

/// `DELETE /projects/{id}/deployments/live`: the deployment that was live and is now stopped
/// (its data folder stays).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnpublishReply {
    pub stopped: String,
}

/// `{data_dir}/deploy/{project}/live.json`: what the VM API starts again when it boots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveRecord {
    pub deployment: String,
    pub spec: StartBackendRequest,
    /// Unix milliseconds of the activation.
    pub activated_at: u64,
}

/// Restart delays of a live backend that exits: `initial_ms` doubling up to `max_ms`; a run
/// that served healthy for `reset_after_ms` or longer starts the series again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    pub initial_ms: u64,
    pub max_ms: u64,
    pub reset_after_ms: u64,
    /// Exits in a row, each after a short run.
    failures: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(500, 30_000, 60_000)
    }
}

impl Backoff {
    pub fn new(initial_ms: u64, max_ms: u64, reset_after_ms: u64) -> Self {
        Backoff {
            initial_ms,
            max_ms,
            reset_after_ms,
            failures: 0,
        }
    }

    /// The backend exited after serving healthy for `ran_ms` (0 when it never answered its
    /// health path): how long to wait before starting it again.
    pub fn next_delay(&mut self, ran_ms: u64) -> u64 {
        if ran_ms >= self.reset_after_ms {
            self.failures = 0;
        }
        let delay = self
            .initial_ms
            .saturating_mul(1u64.checked_shl(self.failures).unwrap_or(u64::MAX))
            .min(self.max_ms);
        self.failures = self.failures.saturating_add(1);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_ids() {
        for ok in ["d-1", "d-abc-123", &format!("d-{}", "a".repeat(40))] {
            assert_eq!(validate_deployment_id(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "d-",
            "x-1",
            "D-1",
            "d-A",
            "d-a_b",
            "d-..",
            "d-a/b",
            &format!("d-{}", "a".repeat(41)),
        ] {
            assert!(validate_deployment_id(bad).is_err(), "{bad}");
        }
    }

    fn req(v: serde_json::Value) -> StartBackendRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn start_request_defaults_and_literal_json() {
        let r = req(json!({"command": "python3 app.py"}));
        assert_eq!(r.backend_dir, "");
        assert_eq!(r.port_env, "PORT");
        assert_eq!(r.health_path, "/");
        assert_eq!(r.health_timeout_s, DEFAULT_HEALTH_TIMEOUT_S);
        assert_eq!(r.validate(), Ok(()));
        let full = json!({"backend_dir": "backend",
            "command": ".venv/bin/python -m uvicorn app.main:app --host 127.0.0.1 --port $PORT",
            "port_env": "PORT", "health_path": "/api/health", "env": {"MODE": "prod"},
            "health_timeout_s": 20});
        let r = req(full.clone());
        assert_eq!(serde_json::to_value(&r).unwrap(), full);
        assert!(
            serde_json::from_value::<StartBackendRequest>(json!({"command": "x", "port": 1}))
                .is_err(),
            "unknown fields are refused"
        );
    }

    #[test]
    fn start_request_rules() {
        let base = json!({"command": "python3 app.py"});
        let with = |k: &str, v: serde_json::Value| {
            let mut b = base.clone();
            b[k] = v;
            req(b).validate().map_err(|e| e.code)
        };
        assert_eq!(
            with("backend_dir", json!("../other")),
            Err("invalid_backend_dir")
        );
        assert_eq!(
            with("backend_dir", json!("a/../../b")),
            Err("invalid_backend_dir")
        );
        assert_eq!(
            with("backend_dir", json!("/etc")),
            Err("invalid_backend_dir")
        );
        assert_eq!(with("backend_dir", json!("backend/api")), Ok(()));
        assert_eq!(with("command", json!("  ")), Err("invalid_command"));
        assert_eq!(with("port_env", json!("1PORT")), Err("invalid_port_env"));
        assert_eq!(
            with("port_env", json!("DATABASE_PATH")),
            Err("invalid_port_env")
        );
        assert_eq!(with("port_env", json!("APP_PORT")), Ok(()));
        assert_eq!(
            with("health_path", json!("api/health")),
            Err("invalid_health_path")
        );
        assert_eq!(
            with("health_path", json!("//evil.com/")),
            Err("invalid_health_path")
        );
        assert_eq!(
            with("health_path", json!("/a b")),
            Err("invalid_health_path")
        );
        assert_eq!(with("health_timeout_s", json!(0)), Err("invalid_timeout"));
        assert_eq!(with("health_timeout_s", json!(301)), Err("invalid_timeout"));
    }

    #[test]
    fn replies_serialize_as_documented() {
        let live = LiveReply {
            deployment: "d-2".into(),
            status: ServiceStatus::Restarting,
            restarts: 3,
            started_at: 1_764_400_000_000,
            error: None,
            last_lines: Some(vec!["boom".into()]),
        };
        let v = serde_json::to_value(ActivateReply {
            live: live.clone(),
            previous: Some("d-1".into()),
        })
        .unwrap();
        assert_eq!(
            v,
            json!({"live": {"deployment": "d-2", "status": "restarting", "restarts": 3,
                "started_at": 1_764_400_000_000u64, "last_lines": ["boom"]},
                "previous": "d-1"})
        );
        assert!(v["live"].get("port").is_none());
        let start = StartBackendReply {
            deployment: "d-2".into(),
            healthy: true,
            status: ProcessStatus::Running,
            exit_code: None,
            waited_ms: 120,
            last_lines: vec![],
            error: None,
        };
        let s = serde_json::to_value(&start).unwrap();
        assert_eq!(
            s,
            json!({"deployment": "d-2", "healthy": true, "status": "running",
                "exit_code": null, "waited_ms": 120, "last_lines": []})
        );
        assert_eq!(
            serde_json::from_value::<StartBackendReply>(s).unwrap(),
            start
        );
        let rec = LiveRecord {
            deployment: "d-2".into(),
            spec: req(json!({"command": "x"})),
            activated_at: 5,
        };
        let text = serde_json::to_string(&rec).unwrap();
        assert_eq!(serde_json::from_str::<LiveRecord>(&text).unwrap(), rec);
    }

    #[test]
    fn backoff_doubles_caps_and_resets_after_a_healthy_run() {
        let mut b = Backoff::default();
        let delays: Vec<u64> = (0..9).map(|_| b.next_delay(100)).collect();
        assert_eq!(
            delays,
            [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]
        );
        // A run just short of a minute does not reset the series; a minute does.
        assert_eq!(b.next_delay(59_999), 30_000);
        assert_eq!(b.next_delay(60_000), 500);
        assert_eq!(b.next_delay(10), 1_000);
        // Far past any shift width the delay stays capped.
        for _ in 0..100 {
            b.next_delay(0);
        }
        assert_eq!(b.next_delay(0), 30_000);
    }
}
