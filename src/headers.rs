//! Security headers on every response that leaves the Worker (the rules are core's
//! `security_headers`): nosniff and Referrer-Policy everywhere, HSTS over HTTPS, and on HTML
//! pages the IDE's CSP with `frame-ancestors 'none'` (a page that already carries a CSP, such
//! as a raw project file's `sandbox`, keeps its own).

use open_replit_core::security_headers as sh;
use worker::{Headers, Response};

/// `resp` with the security headers added (a WebSocket upgrade passes untouched).
pub fn secure(resp: Response, https: bool, preview_url: &str) -> Response {
    if resp.status_code() == 101 {
        return resp;
    }
    // Responses from assets and Durable Objects can have immutable headers: copy them (append
    // keeps every Set-Cookie).
    let headers = Headers::new();
    for (k, v) in resp.headers() {
        let _ = headers.append(&k, &v);
    }
    for (k, v) in sh::ALWAYS {
        let _ = headers.set(k, v);
    }
    if https {
        let _ = headers.set(sh::HSTS.0, sh::HSTS.1);
    }
    let html = headers
        .get("content-type")
        .ok()
        .flatten()
        .is_some_and(|t| sh::is_html(&t));
    let has_csp = headers.has("content-security-policy").unwrap_or(false);
    if html && !has_csp {
        let _ = headers.set("content-security-policy", &sh::ide_csp(preview_url));
        let _ = headers.set("x-frame-options", "DENY");
    }
    let status = resp.status_code();
    let (_, body) = resp.into_parts();
    Response::builder()
        .with_status(status)
        .with_headers(headers)
        .body(body)
}
