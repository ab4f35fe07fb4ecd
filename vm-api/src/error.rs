//! The one error type every JSON route returns, mapped to HTTP status and body in one place.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use open_replit_core::vm_api::ErrorBody;

/// An API error: `{"error":{"code":..., "message":...}}` with an HTTP status.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable machine-readable code (`unauthorized`, `invalid_path`, ...).
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    pub fn internal(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, code, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody::new(self.code, self.message))).into_response()
    }
}

/// A sandbox that cannot run the command: `503 no_sandbox`, `503
/// sandbox_mechanism_unavailable` or `507 disk_quota_exceeded`.
impl From<crate::sandbox::SandboxError> for ApiError {
    fn from(e: crate::sandbox::SandboxError) -> Self {
        ApiError::new(e.status(), e.code(), e.to_string())
    }
}

/// Parses a JSON request body, naming what was wrong with it.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("request body: {e}")))
}

/// Checks a project id with core's rule.
pub fn check_project_id(id: &str) -> Result<(), ApiError> {
    open_replit_core::ids::validate_project_id(id)
        .map_err(|m| ApiError::bad_request("invalid_project_id", m))
}

/// Checks a project-relative directory (`""` is the project root) with core's path rules.
pub fn check_cwd(cwd: &str) -> Result<(), ApiError> {
    if cwd.is_empty() {
        return Ok(());
    }
    open_replit_core::paths::validate_path(cwd).map_err(|e| {
        ApiError::bad_request("invalid_cwd", format!("cwd breaks rule {}: {e}", e.rule()))
    })
}

/// Checks user-supplied environment variables: portable names, no NUL in values.
pub fn check_env(env: &std::collections::BTreeMap<String, String>) -> Result<(), ApiError> {
    if env.len() > 200 {
        return Err(ApiError::bad_request(
            "invalid_env",
            "at most 200 environment variables",
        ));
    }
    for (k, v) in env {
        let mut bytes = k.bytes();
        let first_ok = bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
        if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(ApiError::bad_request(
                "invalid_env",
                format!("environment variable name {k:?} must match [A-Za-z_][A-Za-z0-9_]*"),
            ));
        }
        if v.contains('\0') {
            return Err(ApiError::bad_request(
                "invalid_env",
                format!("environment variable {k} contains a NUL byte"),
            ));
        }
    }
    Ok(())
}
