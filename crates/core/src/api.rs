//! Replies of the Worker's own HTTP API that are assembled from several sources (the VM API,
//! storage, config) rather than passed through: typed here so the Worker, the tests and the
//! docs share one shape.

use crate::vm_api::ProcessInfo;
use serde::{Deserialize, Serialize};

/// `GET /projects/{id}/preview` and `POST …/preview/start|restart`; also what the agent's
/// `start_preview` returns to the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewState {
    /// At least one dev server runs.
    pub running: bool,
    /// The preview URL with a fresh token, when something runs.
    pub url: Option<String>,
    /// Which dev server the preview shows (start and restart only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
    pub processes: Vec<ProcessInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn preview_state_has_the_documented_shape() {
        let v = json!({
            "running": true,
            "url": "http://p1.preview.localhost:8001/?or_token=t",
            "preview": "web",
            "processes": [{
                "name": "web", "command": "npm run dev", "cwd": "frontend", "pid": 42,
                "port": 5173, "status": "running", "exit_code": null, "signal": null,
                "started_at": 1, "restarts": 0
            }]
        });
        let s: PreviewState = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&s).unwrap(), v);
        let idle = json!({"running": false, "url": null, "processes": []});
        let s: PreviewState = serde_json::from_value(idle.clone()).unwrap();
        assert_eq!(serde_json::to_value(&s).unwrap(), idle);
    }
}
