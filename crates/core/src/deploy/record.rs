//! A project's deployments as the Worker keeps and shows them: the record of each publish,
//! its status, the HTTP requests and replies of the publish routes, the socket's publish
//! progress steps, what the publish host asks the project room (`Site`), and the app-access
//! cookie of private deployments.
//!
//! Routes (Worker, per project; `docs/protocol.md`, "Publishing"): `GET …/deployments`
//! (→ [`DeploymentsReply`]), `POST …/deployments` ([`PublishRequest`] → [`Deployment`], when it
//! is live or failed), `POST …/deployments/{d}/rollback` (→ [`Deployment`]),
//! `PUT …/deployments/visibility` ([`VisibilityRequest`]), `DELETE …/deployments/live`
//! (unpublish), `GET …/deployments/{d}/logs` (the backend's log), `GET …/deployments/open`
//! (a signed-in member's way into a private app) and `GET …/site` (the publish host's view).

use serde::{Deserialize, Serialize};

/// Where a deployment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployStatus {
    /// Waiting for the publish before it (publishes of a project run one at a time).
    Queued,
    /// Installing, building and uploading the static files.
    Building,
    /// The backend starts and must answer its health path.
    Starting,
    /// Serving at the project's URL.
    Live,
    /// Was live; a later deployment (or a rollback) replaced it. It can be rolled back to.
    Previous,
    /// The build, the upload or the health check failed; the live app did not change.
    Failed,
    /// The Worker stopped following it (the project's object restarted mid-publish); the live
    /// app did not change.
    Interrupted,
    /// Was live and was unpublished.
    Stopped,
}

impl DeployStatus {
    /// Whether a publish is still working on it.
    pub fn in_progress(self) -> bool {
        matches!(
            self,
            DeployStatus::Queued | DeployStatus::Building | DeployStatus::Starting
        )
    }

    /// Whether it built and can be switched to (again).
    pub fn can_roll_back_to(self) -> bool {
        matches!(
            self,
            DeployStatus::Live | DeployStatus::Previous | DeployStatus::Stopped
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeployStatus::Queued => "queued",
            DeployStatus::Building => "building",
            DeployStatus::Starting => "starting",
            DeployStatus::Live => "live",
            DeployStatus::Previous => "previous",
            DeployStatus::Failed => "failed",
            DeployStatus::Interrupted => "interrupted",
            DeployStatus::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<DeployStatus> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

/// Who may open the published app.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Anyone with the URL.
    #[default]
    Public,
    /// The project's owner and members, signed in (through `…/deployments/open`).
    Members,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Members => "members",
        }
    }

    pub fn parse(s: &str) -> Option<Visibility> {
        match s {
            "public" => Some(Visibility::Public),
            "members" => Some(Visibility::Members),
            _ => None,
        }
    }
}

/// One deployment of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// `d-{n}`, `n` counting the project's deployments from 1.
    pub id: String,
    /// The checkpoint it was built from.
    pub checkpoint: u64,
    pub status: DeployStatus,
    /// Unix milliseconds.
    pub created_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    /// The user who published it (`agent` when the agent's `publish` tool did).
    pub by: String,
    /// The static site: the sha256 of its manifest object in blob storage (path → object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Files and bytes of the static site; objects it needs and how many this build uploaded.
    #[serde(default)]
    pub files: u64,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub uploaded: u64,
    /// Whether it runs a backend.
    #[serde(default)]
    pub backend: bool,
    /// Why it failed, for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The failing step's (or backend's) last output lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_lines: Vec<String>,
    /// Milliseconds from the publish request to live (or to failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// `GET /projects/{id}/deployments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentsReply {
    /// The app's public URL (`PUBLISH_URL` with the project's slug); absent when publishing
    /// is not configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    /// The live deployment's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<String>,
    pub visibility: Visibility,
    /// Whether the project's template has a `publish` recipe.
    pub publishable: bool,
    /// Newest first.
    pub deployments: Vec<Deployment>,
}

/// `POST /projects/{id}/deployments`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// The checkpoint to publish; the head when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<u64>,
}

/// `PUT /projects/{id}/deployments/visibility`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisibilityRequest {
    pub visibility: Visibility,
}

/// The steps a publish shows, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployStep {
    Queued,
    Building,
    Uploading,
    Starting,
    Live,
    Failed,
}

/// `GET /projects/{id}/site`: what the publish host needs to answer for the project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    /// The live deployment; absent when nothing is published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// Its static manifest object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    pub backend: bool,
    pub visibility: Visibility,
}

/// `d-{n}`.
pub fn deployment_id(n: u64) -> String {
    format!("d-{n}")
}

/// The `n` of `d-{n}`.
pub fn deployment_number(id: &str) -> Option<u64> {
    id.strip_prefix("d-")?.parse().ok().filter(|n| *n > 0)
}

/// The app-access cookie of a private app's host.
pub const ACCESS_COOKIE: &str = "or_app_access";
/// The path on an app's host that turns a minted access token into the cookie.
pub const ACCESS_PATH: &str = "/__open-replit/access";
/// How long an app-access token (and its cookie) lasts: a removed member keeps access at most
/// this long.
pub const ACCESS_SECS: i64 = 12 * 3600;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_say_what_can_be_rolled_back_to() {
        for s in [
            DeployStatus::Queued,
            DeployStatus::Building,
            DeployStatus::Starting,
            DeployStatus::Live,
            DeployStatus::Previous,
            DeployStatus::Failed,
            DeployStatus::Interrupted,
            DeployStatus::Stopped,
        ] {
            assert_eq!(DeployStatus::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
            assert!(!(s.in_progress() && s.can_roll_back_to()));
        }
        assert!(!DeployStatus::Failed.can_roll_back_to());
        assert!(DeployStatus::Previous.can_roll_back_to());
        assert_eq!(DeployStatus::parse("nope"), None);
    }

    #[test]
    fn ids_count_from_one() {
        assert_eq!(deployment_id(7), "d-7");
        assert_eq!(deployment_number("d-7"), Some(7));
        assert_eq!(deployment_number("d-0"), None);
        assert_eq!(deployment_number("7"), None);
        crate::deploy::build::validate_deployment_id(&deployment_id(123456)).unwrap();
    }

    #[test]
    fn a_publish_request_refuses_unknown_fields() {
        assert!(serde_json::from_str::<PublishRequest>(r#"{"checkpint": 3}"#).is_err());
        let r: PublishRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(r.checkpoint, None);
        let v: VisibilityRequest = serde_json::from_str(r#"{"visibility":"members"}"#).unwrap();
        assert_eq!(v.visibility, Visibility::Members);
        assert!(serde_json::from_str::<VisibilityRequest>(r#"{"visibility":"secret"}"#).is_err());
    }
}
