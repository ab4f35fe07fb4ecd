//! One error type for every API route, mapped to an HTTP answer in exactly one place.

use open_replit_core::azure::rest::BlobError;
use open_replit_core::store::project::StoreError;
use serde_json::{json, Value};
use worker::Response;

#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    /// A path or size rule was broken; `rule` is the machine-readable name.
    Rule {
        rule: &'static str,
        message: String,
    },
    NotFound(String),
    /// No session or token, or one that is unknown, expired or revoked.
    Unauthorized(String),
    Forbidden(String),
    /// The server is not set up to answer (auth not configured); `code` names why.
    Unavailable {
        code: &'static str,
        message: String,
    },
    MethodNotAllowed(String),
    /// The write was based on a version that is no longer current; `details` has both sides.
    Conflict {
        message: String,
        details: Value,
    },
    TooLarge(String),
    /// A per-user rate limit or quota (see `quota`).
    RateLimited(String),
    /// Something we depend on (Azure, the VM API, the LLM) failed; the message says which.
    Upstream(String),
    Internal(String),
}

impl ApiError {
    /// The human-readable message, whatever the kind.
    pub fn message(self) -> String {
        match self {
            ApiError::BadRequest(m)
            | ApiError::NotFound(m)
            | ApiError::Unauthorized(m)
            | ApiError::Unavailable { message: m, .. }
            | ApiError::Forbidden(m)
            | ApiError::MethodNotAllowed(m)
            | ApiError::TooLarge(m)
            | ApiError::RateLimited(m)
            | ApiError::Upstream(m)
            | ApiError::Internal(m)
            | ApiError::Rule { message: m, .. }
            | ApiError::Conflict { message: m, .. } => m,
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) | ApiError::Rule { .. } => 400,
            ApiError::NotFound(_) => 404,
            ApiError::Unauthorized(_) => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::Unavailable { .. } => 503,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::Conflict { .. } => 409,
            ApiError::TooLarge(_) => 413,
            ApiError::RateLimited(_) => 429,
            ApiError::Upstream(_) => 502,
            ApiError::Internal(_) => 500,
        }
    }

    pub fn into_response(self) -> Response {
        let (status, code, message, extra) = match self {
            ApiError::BadRequest(m) => (400, "bad_request", m, None),
            ApiError::Rule { rule, message } => (400, rule, message, None),
            ApiError::NotFound(m) => (404, "not_found", m, None),
            ApiError::Unauthorized(m) => (401, "unauthorized", m, None),
            ApiError::Forbidden(m) => (403, "forbidden", m, None),
            ApiError::Unavailable { code, message } => (503, code, message, None),
            ApiError::MethodNotAllowed(m) => (405, "method_not_allowed", m, None),
            ApiError::Conflict { message, details } => (409, "conflict", message, Some(details)),
            ApiError::TooLarge(m) => (413, "too_large", m, None),
            ApiError::RateLimited(m) => (429, "rate_limited", m, None),
            ApiError::Upstream(m) => (502, "upstream", m, None),
            ApiError::Internal(m) => (500, "internal", m, None),
        };
        let mut body = json!({ "error": { "code": code, "message": message } });
        if let Some(Value::Object(extra)) = extra {
            for (k, v) in extra {
                body[k] = v;
            }
        }
        match Response::from_json(&body) {
            Ok(r) => r.with_status(status),
            Err(_) => Response::builder().with_status(500).empty(),
        }
    }
}

impl From<worker::Error> for ApiError {
    fn from(e: worker::Error) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> Self {
        ApiError::BadRequest(format!("invalid JSON: {e}"))
    }
}

impl From<BlobError> for ApiError {
    fn from(e: BlobError) -> Self {
        StoreError::Blob(e).into()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Path(p) => ApiError::Rule {
                rule: p.rule(),
                message: p.to_string(),
            },
            StoreError::NotFound(m) => ApiError::NotFound(format!("{m} not found")),
            StoreError::BadProjectId(m) | StoreError::Invalid(m) => ApiError::BadRequest(m),
            StoreError::Exists(id) => ApiError::Conflict {
                message: format!("project {id} already exists"),
                details: json!({}),
            },
            StoreError::Conflict {
                ref path,
                ref expected,
                ref actual,
                head,
            } => ApiError::Conflict {
                message: e.to_string(),
                details: json!({ "path": path, "expected_sha256": expected, "actual_sha256": actual, "head": head }),
            },
            StoreError::Blob(b) => ApiError::Upstream(b.to_string()),
            StoreError::Corrupt(m) => ApiError::Internal(format!("stored data is corrupt: {m}")),
            StoreError::Contention(_) => ApiError::Upstream(e.to_string()),
        }
    }
}
