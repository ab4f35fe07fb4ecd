//! One error type for every API route, mapped to an HTTP answer in exactly one place.

use serde::Serialize;
use worker::Response;

#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    NotFound(String),
    /// Something we depend on (Azure, the VM API, the LLM) failed; the message says which.
    Upstream(String),
    Internal(String),
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    fn parts(&self) -> (u16, &'static str, &str) {
        match self {
            ApiError::BadRequest(m) => (400, "bad_request", m),
            ApiError::NotFound(m) => (404, "not_found", m),
            ApiError::Upstream(m) => (502, "upstream", m),
            ApiError::Internal(m) => (500, "internal", m),
        }
    }

    pub fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        let body = serde_json::to_string(&Body {
            error: Inner { code, message },
        })
        .unwrap_or_else(|_| String::from("{\"error\":{\"code\":\"internal\"}}"));
        let resp = Response::ok(body).map(|r| r.with_status(status));
        match resp {
            Ok(mut r) => {
                let _ = r.headers_mut().set("content-type", "application/json");
                r
            }
            Err(_) => Response::empty()
                .map(|r| r.with_status(500))
                .unwrap_or_else(|_| unreachable_response()),
        }
    }
}

// Response::empty only fails if the JS runtime is broken; there is nothing better to return.
fn unreachable_response() -> Response {
    Response::builder().with_status(500).empty()
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
