//! Origin policy: the Worker's own origin and `ALLOWED_ORIGINS` (comma-separated) may call the
//! API and open project sockets; any other browser origin is refused. Requests without an
//! `Origin` header (curl, scripts, server-to-server) are not browser cross-origin calls.

use crate::error::ApiError;
use worker::{Env, Headers, Request, Response, Url};

pub enum Verdict {
    /// No Origin, or our own: nothing to add.
    SameOrigin,
    /// An allowed other origin: answer with CORS headers for it.
    Allowed(String),
}

pub fn check(req: &Request, url: &Url, env: &Env) -> Result<Verdict, ApiError> {
    let Some(origin) = req.headers().get("origin").ok().flatten() else {
        return Ok(Verdict::SameOrigin);
    };
    let own = url.origin().ascii_serialization();
    if origin == own {
        return Ok(Verdict::SameOrigin);
    }
    let allowed = env
        .var("ALLOWED_ORIGINS")
        .map(|v| v.to_string())
        .unwrap_or_default();
    if allowed
        .split(',')
        .map(|o| o.trim().trim_end_matches('/'))
        .any(|o| !o.is_empty() && o == origin)
    {
        return Ok(Verdict::Allowed(origin));
    }
    Err(ApiError::Forbidden(format!(
        "origin {origin} is not allowed; add it to ALLOWED_ORIGINS"
    )))
}

fn cors_headers(h: &Headers, origin: &str) -> worker::Result<()> {
    h.set("access-control-allow-origin", origin)?;
    h.set("vary", "Origin")?;
    h.set(
        "access-control-allow-methods",
        "GET, POST, PUT, DELETE, OPTIONS",
    )?;
    h.set(
        "access-control-allow-headers",
        "content-type, authorization",
    )?;
    h.set("access-control-expose-headers", "etag, x-checkpoint")?;
    h.set("access-control-max-age", "600")
}

/// The answer to a CORS preflight from an allowed origin.
pub fn preflight(origin: &str) -> worker::Result<Response> {
    let r = Response::empty()?.with_status(204);
    cors_headers(r.headers(), origin)?;
    Ok(r)
}

/// Adds CORS headers to an answer for an allowed origin (WebSocket upgrades pass through).
pub fn decorate(resp: Response, origin: &str) -> Response {
    if resp.status_code() == 101 {
        return resp;
    }
    // Responses from fetch/Durable Objects can have immutable headers: copy into a new one.
    let headers = Headers::new();
    for (k, v) in resp.headers() {
        let _ = headers.set(&k, &v);
    }
    let _ = cors_headers(&headers, origin);
    let status = resp.status_code();
    let (_, body) = resp.into_parts();
    Response::builder()
        .with_status(status)
        .with_headers(headers)
        .body(body)
}
