//! The preview origin: `{project}.{preview_domain}` is reverse-proxied (HTTP and WebSocket
//! upgrades) to the project's running dev server, behind a short-lived HMAC preview token that
//! is exchanged for a host-only cookie. Also the upstream connections every proxy to a
//! project's server uses (`connect_upstream`, and `send_upstream` with its pool of idle
//! keep-alive connections).

use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::TokioIo;
use std::sync::Arc;

/// Query parameter carrying a freshly minted token.
pub const TOKEN_PARAM: &str = "or_token";
/// Cookie holding the token after the first visit.
pub const COOKIE_NAME: &str = "or_preview";
pub use open_replit_core::vm_auth::{
    mint_preview_token, verify_preview_token, MAX_PREVIEW_TOKEN_SECS as MAX_TOKEN_LIFETIME_SECS,
};

pub fn preview_app(state: Arc<AppState>) -> Router {
    Router::new().fallback(proxy).with_state(state)
}

fn page(status: StatusCode, title: &str, detail: &str) -> Response {
    page_with(status, title, detail, None)
}

/// A page that reloads itself every `secs` seconds (a plain `<meta http-equiv="refresh">`, no
/// script): what a navigation gets while the dev server is still starting, so the preview
/// shows the app as soon as it listens instead of an error someone must reload.
fn retrying_page(title: &str, detail: &str, secs: u32) -> Response {
    page_with(StatusCode::BAD_GATEWAY, title, detail, Some(secs))
}

fn page_with(status: StatusCode, title: &str, detail: &str, refresh: Option<u32>) -> Response {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">{r}<title>{t}</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:3rem;color:#333}}</style></head>\
         <body><h1>{t}</h1><p>{d}</p></body></html>",
        t = esc(title),
        d = esc(detail),
        r = refresh
            .map(|s| format!("<meta http-equiv=\"refresh\" content=\"{s}\">"))
            .unwrap_or_default()
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

/// The project id from `Host: {project}.{domain}[:port]`.
fn project_from_host(headers: &HeaderMap, domain: &str) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let name = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let name = name.to_ascii_lowercase();
    let project = name.strip_suffix(domain)?.strip_suffix('.')?;
    open_replit_core::ids::validate_project_id(project).ok()?;
    Some(project.to_string())
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE_NAME)
        .map(|(_, v)| v.to_string())
}

/// The query without our token parameter, or `None` when it had none.
fn split_token(query: Option<&str>) -> (Option<String>, String) {
    let Some(q) = query else {
        return (None, String::new());
    };
    let mut token = None;
    let rest: Vec<&str> = q
        .split('&')
        .filter(|kv| {
            if let Some(v) = kv.strip_prefix(&format!("{TOKEN_PARAM}=")) {
                token = Some(v.to_string());
                false
            } else {
                !kv.is_empty()
            }
        })
        .collect();
    (token, rest.join("&"))
}

/// Removes our cookie from the `Cookie` header(s) and drops credentials meant for us.
fn scrub_request_headers(headers: &mut HeaderMap) {
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|kv| !kv.is_empty() && kv.split('=').next() != Some(COOKIE_NAME))
        .map(str::to_string)
        .collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
            headers.insert(header::COOKIE, v);
        }
    }
    headers.remove(header::AUTHORIZATION);
    headers.remove(header::PROXY_AUTHORIZATION);
    strip_service_headers(headers);
}

/// Drops every `x-or-*` header (the VM API's signature, timestamp, body hash and acting user):
/// what authenticates a request to us never reaches a project's server.
pub(crate) fn strip_service_headers(headers: &mut HeaderMap) {
    let ours: Vec<_> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("x-or-"))
        .cloned()
        .collect();
    for k in ours {
        headers.remove(k);
    }
}

/// Drops the hop-by-hop headers of a request or response that is not an upgrade.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for h in HOP_BY_HOP {
        headers.remove(*h);
    }
}

/// When the server switched protocols (a WebSocket), joins the client's upgraded connection
/// to the server's in the background; `hold` lives as long as the socket does.
pub(crate) fn splice_upgrade(
    client: hyper::upgrade::OnUpgrade,
    resp: &mut Response<hyper::body::Incoming>,
    hold: Option<crate::reaper::Hold>,
) {
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return;
    }
    let upstream = hyper::upgrade::on(resp);
    tokio::spawn(async move {
        let _hold = hold;
        let (Ok(client), Ok(upstream)) = tokio::join!(client, upstream) else {
            return;
        };
        let _ =
            tokio::io::copy_bidirectional(&mut TokioIo::new(client), &mut TokioIo::new(upstream))
                .await;
    });
}

/// An HTTP/1 connection to `port` of the project's network (through the sandbox, which knows
/// where the project's loopback is), driven in the background with upgrades enabled.
pub(crate) async fn connect_upstream(
    st: &AppState,
    project: &str,
    port: u16,
) -> Result<hyper::client::conn::http1::SendRequest<Body>, String> {
    if st.is_own_port(port) {
        return Err(format!("port {port} belongs to the VM API"));
    }
    // The sandbox tries 127.0.0.1 then ::1 (Node ≥ 17 may bind "localhost" to ::1).
    let sandbox = st.sandbox.clone();
    let project_id = project.to_string();
    let stream = tokio::task::spawn_blocking(move || sandbox.connect(&project_id, port))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
        .and_then(|s| {
            s.set_nonblocking(true)?;
            tokio::net::TcpStream::from_std(s)
        })
        .map_err(|e| format!("nothing answers on port {port} ({e})"))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(sender)
}

/// How long an idle connection to a project's server is reused: below the keep-alive timeout
/// of the servers the templates run (uvicorn and Node.js close idle connections after 5 s), so a
/// pooled connection is very rarely one the server is closing.
const POOL_IDLE: std::time::Duration = std::time::Duration::from_secs(2);
/// Idle connections kept per server.
const POOL_PER_SERVER: usize = 16;

type Sender = hyper::client::conn::http1::SendRequest<Body>;
/// Idle connections by (project, port), each with when it became idle.
type Idle = std::collections::HashMap<(String, u16), Vec<(std::time::Instant, Sender)>>;

/// Idle HTTP/1 connections to projects' servers, by (project, port). A new one costs a thread
/// that joins the project's network namespace, a TCP connect and a handshake; the proxies reuse
/// one instead whenever a request's answer has been read to the end.
#[derive(Default, Clone)]
pub struct UpstreamPool {
    idle: Arc<std::sync::Mutex<Idle>>,
}

impl UpstreamPool {
    fn take(&self, project: &str, port: u16) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(&(project.to_string(), port))?;
        while let Some((at, s)) = list.pop() {
            if at.elapsed() < POOL_IDLE && !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    /// Keeps `sender` for reuse once its answer has been read (never, if it is not).
    fn give_back_when_ready(&self, project: &str, port: u16, mut sender: Sender) {
        let pool = self.clone();
        let key = (project.to_string(), port);
        tokio::spawn(async move {
            if sender.ready().await.is_err() {
                return;
            }
            let mut idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner());
            let list = idle.entry(key).or_default();
            list.retain(|(at, s)| at.elapsed() < POOL_IDLE && !s.is_closed());
            if list.len() < POOL_PER_SERVER {
                list.push((std::time::Instant::now(), sender));
            }
        });
    }

    /// Drops every idle connection to `project` (its servers stopped, or its network went).
    pub fn forget(&self, project: &str) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(p, _), _| p != project);
    }
}

/// Why a request could not be proxied.
pub(crate) enum UpstreamError {
    /// No connection could be made.
    Connect(String),
    /// The connection failed while the request was sent or answered.
    Send(String),
}

/// Sends `req` to `port` of the project's network over an idle pooled connection when there is
/// one, else a new one; the connection goes back to the pool once its answer is read. An
/// upgrade (a WebSocket) always gets a connection of its own, never pooled.
pub(crate) async fn send_upstream(
    st: &AppState,
    project: &str,
    port: u16,
    mut req: Request,
    upgrade: bool,
) -> Result<hyper::Response<hyper::body::Incoming>, UpstreamError> {
    if !upgrade {
        while let Some(mut sender) = st.upstreams.take(project, port) {
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    st.upstreams.give_back_when_ready(project, port, sender);
                    return Ok(resp);
                }
                Err(mut e) => match e.take_message() {
                    // Never written (the connection had just closed): the next one.
                    Some(r) => req = r,
                    None => return Err(UpstreamError::Send(e.into_error().to_string())),
                },
            }
        }
    }
    let mut sender = connect_upstream(st, project, port)
        .await
        .map_err(UpstreamError::Connect)?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| UpstreamError::Send(e.to_string()))?;
    if !upgrade {
        st.upstreams.give_back_when_ready(project, port, sender);
    }
    Ok(resp)
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
        && headers.contains_key(header::UPGRADE)
}

async fn proxy(State(st): State<Arc<AppState>>, mut req: Request) -> Response {
    let Some(project) = project_from_host(req.headers(), &st.preview_domain) else {
        return page(
            StatusCode::NOT_FOUND,
            "Unknown preview",
            "This host does not name a project preview.",
        );
    };
    let now = crate::auth::now_unix();
    let (query_token, rest_query) = split_token(req.uri().query());
    if let Some(tok) = query_token {
        return match verify_preview_token(&st.secret, &project, &tok, now) {
            Ok(expiry) => {
                let path = req.uri().path();
                let location = if rest_query.is_empty() {
                    path.to_string()
                } else {
                    format!("{path}?{rest_query}")
                };
                // The preview is shown in an iframe of the IDE, another site: a Lax cookie would
                // not be sent there. `SameSite=None` needs `Secure`, which browsers accept on
                // http://*.localhost (loopback is a secure context); `Partitioned` keeps it working
                // where third-party cookies are blocked, scoped to the IDE as the top-level site.
                let cookie = format!(
                    "{COOKIE_NAME}={tok}; Path=/; Max-Age={}; HttpOnly; SameSite=None; Secure; Partitioned",
                    expiry - now,
                );
                let mut r = StatusCode::FOUND.into_response();
                if let (Ok(l), Ok(c)) = (
                    HeaderValue::from_str(&location),
                    HeaderValue::from_str(&cookie),
                ) {
                    r.headers_mut().insert(header::LOCATION, l);
                    r.headers_mut().insert(header::SET_COOKIE, c);
                    r.headers_mut()
                        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                    r
                } else {
                    page(
                        StatusCode::BAD_REQUEST,
                        "Bad preview link",
                        "The link is malformed.",
                    )
                }
            }
            Err(why) => page(
                StatusCode::UNAUTHORIZED,
                "Preview link not valid",
                &format!("{why}: open the preview again from the editor."),
            ),
        };
    }
    let authorized = cookie_token(req.headers())
        .is_some_and(|t| verify_preview_token(&st.secret, &project, &t, now).is_ok());
    if !authorized {
        return page(
            StatusCode::UNAUTHORIZED,
            "Preview access required",
            "Open this preview from the editor to get access.",
        );
    }
    // Preview traffic is use: the idle reaper leaves the project alone.
    st.activity.touch(&project);
    // The capture script and its reports are ours, never the dev server's.
    if req.uri().path() == crate::browser::CAPTURE_PATH {
        return (
            [
                (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            crate::browser::CAPTURE_JS,
        )
            .into_response();
    }
    if req.uri().path() == crate::browser::REPORT_PATH {
        return browser_report(&st, &project, req).await;
    }
    let Some(target) = st.processes.preview_target(&project) else {
        return page(
            StatusCode::BAD_GATEWAY,
            "No dev server running",
            "Start the app's dev server (for example ask the agent to run it), then reload.",
        );
    };
    let port = target.port();
    if st.is_own_port(port) {
        return page(
            StatusCode::BAD_GATEWAY,
            "Refused",
            "The dev server's port belongs to the VM API.",
        );
    }
    let upgrade = is_upgrade(req.headers());
    scrub_request_headers(req.headers_mut());
    // A page navigation: ask for an uncompressed body, so the capture script can go in.
    let wants_html = req.method() == axum::http::Method::GET
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
    if wants_html {
        req.headers_mut().remove(header::ACCEPT_ENCODING);
        st.browser_reports.navigated(&project);
    }
    if !upgrade {
        strip_hop_by_hop(req.headers_mut());
    }
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    match pq.parse() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => return page(StatusCode::BAD_REQUEST, "Bad request", "Unparsable URL."),
    }
    let fwd_host = req.headers().get(header::HOST).cloned();
    if let Some(h) = fwd_host {
        req.headers_mut().insert("x-forwarded-host", h);
    }
    req.headers_mut()
        .insert("x-forwarded-proto", HeaderValue::from_static("http"));

    let mut resp = match send_upstream(&st, &project, port, req, upgrade).await {
        Ok(r) => r,
        Err(UpstreamError::Connect(e)) if wants_html => {
            return retrying_page(
                "Starting the app…",
                &format!(
                    "The dev server {:?} is running but not answering yet ({e}). This page \
                     reloads itself every 2 seconds until it does.",
                    target.name
                ),
                2,
            )
        }
        Err(UpstreamError::Connect(e)) => {
            return page(
                StatusCode::BAD_GATEWAY,
                "Dev server not reachable",
                &format!(
                    "Process {:?} is running but cannot be reached: {e}. \
                     It may still be starting; reload in a moment.",
                    target.name
                ),
            )
        }
        Err(UpstreamError::Send(e)) => {
            return page(StatusCode::BAD_GATEWAY, "Dev server error", &e)
        }
    };
    if let Some(client_upgrade) = client_upgrade {
        // An open socket (a dev server's hot reload) keeps the project in use.
        splice_upgrade(client_upgrade, &mut resp, Some(st.activity.hold(&project)));
    }
    if wants_html && is_plain_html(resp.headers()) {
        return with_capture(resp).await;
    }
    resp.map(Body::new)
}

/// Largest HTML page the proxy rewrites (bigger ones pass through untouched).
const MAX_INJECT_BYTES: usize = 8 * 1024 * 1024;

fn is_plain_html(h: &HeaderMap) -> bool {
    let html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("text/html"));
    let plain = h
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|e| e.eq_ignore_ascii_case("identity"));
    let small = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_none_or(|n| n <= MAX_INJECT_BYTES);
    html && plain && small
}

/// The page with the capture script at the top of its `<head>`.
async fn with_capture(resp: Response<hyper::body::Incoming>) -> Response {
    use http_body_util::BodyExt;
    let (mut parts, body) = resp.into_parts();
    let bytes = match http_body_util::Limited::new(body, MAX_INJECT_BYTES)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(e) => return page(StatusCode::BAD_GATEWAY, "Dev server error", &e.to_string()),
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let out = crate::browser::inject(text);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(out))
}

/// `POST /__open_replit/report` on the preview origin: one report from the capture script.
async fn browser_report(st: &AppState, project: &str, req: Request) -> Response {
    if req.method() != axum::http::Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let Ok(body) = axum::body::to_bytes(req.into_body(), crate::browser::MAX_REPORT_BYTES).await
    else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "report too large").into_response();
    };
    let raw: crate::browser::RawReport = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("bad report: {e}")).into_response(),
    };
    match st.browser_reports.add(project, raw) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip_and_rejections() {
        let s = b"0123456789abcdef";
        let t = mint_preview_token(s, "p1", 2_000);
        assert_eq!(verify_preview_token(s, "p1", &t, 1_000), Ok(2_000));
        assert_eq!(
            verify_preview_token(s, "p2", &t, 1_000),
            Err("bad token signature")
        );
        assert_eq!(
            verify_preview_token(s, "p1", &t, 2_000),
            Err("token expired")
        );
        assert_eq!(
            verify_preview_token(b"other-secret-123", "p1", &t, 1_000),
            Err("bad token signature")
        );
        assert_eq!(
            verify_preview_token(s, "p1", "nope", 1_000),
            Err("malformed token")
        );
        let far = mint_preview_token(s, "p1", 1_000 + MAX_TOKEN_LIFETIME_SECS + 1);
        assert_eq!(
            verify_preview_token(s, "p1", &far, 1_000),
            Err("token lifetime too long")
        );
    }

    #[test]
    fn host_parsing_and_scrubbing() {
        let mut h = HeaderMap::new();
        h.insert(
            header::HOST,
            HeaderValue::from_static("todo-1.preview.localhost:8001"),
        );
        assert_eq!(
            project_from_host(&h, "preview.localhost").as_deref(),
            Some("todo-1")
        );
        h.insert(
            header::HOST,
            HeaderValue::from_static("a.b.preview.localhost"),
        );
        assert_eq!(project_from_host(&h, "preview.localhost"), None);
        h.insert(header::HOST, HeaderValue::from_static("evil.com"));
        assert_eq!(project_from_host(&h, "preview.localhost"), None);
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; or_preview=secret; b=2"),
        );
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        scrub_request_headers(&mut h);
        assert_eq!(h.get(header::COOKIE).unwrap(), "a=1; b=2");
        assert!(h.get(header::AUTHORIZATION).is_none());
        assert_eq!(
            split_token(Some("x=1&or_token=abc&y=2")),
            (Some("abc".into()), "x=1&y=2".into())
        );
    }
}
