//! A stand-in for Netlify's deploy API (api.netlify.com cannot be reached from the test
//! machines). It checks each request exactly against the documented file-digest deploy (the
//! shapes listed in `open_replit_core::deploy::netlify`'s module comment: Netlify's "Deploy with
//! the API" guide and the `netlify/open-api` OpenAPI document) and answers like Netlify; every
//! mismatch is recorded in `problems()`, which the test asserts empty.
//!
//! - every `/api/v1/` request: `Authorization: Bearer <token>` (a wrong token: `401
//!   {"code":401,"message":"Access Denied"}`; a missing or non-Bearer header is also a
//!   problem), a `User-Agent`, no query string (but `size` on an upload)
//! - `POST /api/v1/sites`, `Content-Type: application/json`, `{"name"}` only (a valid subdomain)
//!   → `201` site; a name taken (see [`FakeNetlify::take_name`]) → `422`
//! - `POST /api/v1/sites/{site_id}/deploys`, JSON `{"files": {"/path": "<sha1>"}, "draft",
//!   "async"}` (no other key; paths normalised with a leading slash; lowercase 40-hex SHA1s;
//!   `async: true` is a problem: this fake implements synchronous digest deploys only) → `200`
//!   deploy whose `required` lists each SHA1 the site does not hold yet, once; state `uploading`
//!   (or `prepared` when nothing is required)
//! - `PUT /api/v1/deploys/{deploy_id}/files/{path}`, `Content-Type: application/octet-stream`,
//!   the path percent-encoded per segment (raw characters outside RFC 3986's path set, a
//!   doubled slash or a path not in the digest are problems) → `200` file. The body's SHA1
//!   must equal the digest sent for that path (else `422` and a problem); a SHA1 not in
//!   `required`, or one already received through another path, is a problem.
//! - `GET /api/v1/deploys/{deploy_id}` → the deploy: `uploading` until every required SHA1
//!   arrived, then `processing` on one poll, then `ready` (the site's live files switch) or
//!   `error` with `error_message` when [`FakeNetlify::fail_next_deploy`] armed it.
//! - `GET /_site/{site_id}/…` (the site's `url`/`ssl_url`) serves the live deploy's files,
//!   `/_deploy/{deploy_id}/…` (its `deploy_ssl_url`) the deploy's own; a path ending in `/`
//!   serves its `index.html`.
//!
//! Content is kept per site across deploys, so a second deploy of mostly the same files gets a
//! short `required` list. [`FakeNetlify::rate_limit_next`] makes the next N API requests answer
//! `429` with `Retry-After: 1` and `X-RateLimit-Reset`.

use axum::{
    body::{to_bytes, Body},
    extract::{Request, State},
    http::{HeaderMap, Method, StatusCode},
    response::{IntoResponse, Response},
    Json, Router,
};
use open_replit_core::deploy::netlify::{is_sha1_hex, is_site_name, normalize_path, sha1_hex};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Largest request body the fake reads (a deploy's largest static file is 25 MiB).
const MAX_BODY: usize = 64 << 20;

struct Site {
    id: String,
    name: String,
    /// SHA1 → bytes of every file ever uploaded to this site.
    content: HashMap<String, Vec<u8>>,
    /// The live deploy's files: key (`/x.js`) → SHA1.
    live: BTreeMap<String, String>,
    published_deploy: Option<String>,
}

struct Deploy {
    id: String,
    site_id: String,
    files: BTreeMap<String, String>,
    required: BTreeSet<String>,
    received: BTreeSet<String>,
    state: &'static str,
    draft: bool,
    /// Armed by `fail_next_deploy`: the deploy ends in `error` with this message.
    fail: Option<String>,
    error_message: Option<String>,
}

#[derive(Default)]
struct Inner {
    token: String,
    base: String,
    sites: BTreeMap<String, Site>,
    deploys: BTreeMap<String, Deploy>,
    taken: HashSet<String>,
    problems: Vec<String>,
    requests: Vec<String>,
    uploads: usize,
    rate_limited: usize,
    fail_next: Option<String>,
    next_id: u64,
}

type Shared = Arc<Mutex<Inner>>;

pub struct FakeNetlify {
    /// The API base to give the client (`{url}/api/v1/…` are the routes).
    pub url: String,
    pub token: String,
    inner: Shared,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FakeNetlify {
    /// Starts the fake on a free loopback port; it accepts only `token`. Stops when dropped.
    pub async fn start(token: &str) -> anyhow::Result<FakeNetlify> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let inner: Shared = Arc::new(Mutex::new(Inner {
            token: token.to_string(),
            base: url.clone(),
            ..Inner::default()
        }));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(FakeNetlify {
            url,
            token: token.to_string(),
            inner,
            _stop: tx,
        })
    }

    /// Every way a request departed from the documented contract, in order.
    pub fn problems(&self) -> Vec<String> {
        self.inner.lock().unwrap().problems.clone()
    }

    /// File uploads accepted (`PUT …/files/…` answered 200), over all deploys.
    pub fn uploads(&self) -> usize {
        self.inner.lock().unwrap().uploads
    }

    /// Every request as `METHOD /raw/path → status`, in order.
    pub fn requests(&self) -> Vec<String> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// The next `n` API requests answer `429` with `Retry-After: 1`.
    pub fn rate_limit_next(&self, n: usize) {
        self.inner.lock().unwrap().rate_limited = n;
    }

    /// Makes `name` taken: creating a site with it answers `422`.
    pub fn take_name(&self, name: &str) {
        self.inner.lock().unwrap().taken.insert(name.to_string());
    }

    /// The next deploy created ends in state `error` with `message` instead of `ready`.
    pub fn fail_next_deploy(&self, message: &str) {
        self.inner.lock().unwrap().fail_next = Some(message.to_string());
    }

    /// `(id, name)` of every site created, in id order.
    pub fn sites(&self) -> Vec<(String, String)> {
        let g = self.inner.lock().unwrap();
        g.sites
            .values()
            .map(|s| (s.id.clone(), s.name.clone()))
            .collect()
    }

    /// Where the site is served (its `url` and `ssl_url`).
    pub fn site_url(&self, site_id: &str) -> String {
        format!("{}/_site/{site_id}", self.url)
    }

    /// The live deploy's files of a site: key (`/x.js`) → SHA1 (empty before the first ready).
    pub fn live_files(&self, site_id: &str) -> BTreeMap<String, String> {
        let g = self.inner.lock().unwrap();
        g.sites
            .get(site_id)
            .map(|s| s.live.clone())
            .unwrap_or_default()
    }
}

fn netlify_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"code": status.as_u16(), "message": message})),
    )
        .into_response()
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

async fn handle(State(s): State<Shared>, req: Request) -> Response {
    let method = req.method().clone();
    let raw_path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let headers = req.headers().clone();
    let body = match to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b.to_vec(),
        Err(_) => return netlify_error(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large"),
    };
    let mut g = s.lock().unwrap();
    let response = route(
        &mut g,
        &method,
        &raw_path,
        query.as_deref(),
        &headers,
        &body,
    );
    let line = format!("{method} {raw_path} → {}", response.status().as_u16());
    g.requests.push(line);
    response
}

fn route(
    g: &mut Inner,
    method: &Method,
    raw_path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if let Some(rest) = raw_path.strip_prefix("/_site/") {
        return serve_site(g, rest);
    }
    if let Some(rest) = raw_path.strip_prefix("/_deploy/") {
        return serve_deploy(g, rest);
    }
    let what = format!("{method} {raw_path}");
    let Some(api) = raw_path.strip_prefix("/api/v1/") else {
        g.problems.push(format!("{what}: not a Netlify API path"));
        return netlify_error(StatusCode::NOT_FOUND, "Not Found");
    };

    if g.rate_limited > 0 {
        g.rate_limited -= 1;
        let reset = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() + 1)
            .unwrap_or(0);
        let mut r = netlify_error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
        let h = r.headers_mut();
        h.insert("retry-after", "1".parse().unwrap());
        h.insert("x-ratelimit-limit", "500".parse().unwrap());
        h.insert("x-ratelimit-remaining", "0".parse().unwrap());
        h.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
        return r;
    }

    let auth = header(headers, "authorization");
    if !auth.starts_with("Bearer ") {
        g.problems.push(format!(
            "{what}: Authorization is not `Bearer <token>` ({})",
            if auth.is_empty() {
                "absent"
            } else {
                "another scheme"
            }
        ));
        return netlify_error(StatusCode::UNAUTHORIZED, "Access Denied");
    }
    if auth["Bearer ".len()..] != g.token {
        return netlify_error(StatusCode::UNAUTHORIZED, "Access Denied");
    }
    if header(headers, "user-agent").is_empty() {
        g.problems.push(format!(
            "{what}: no User-Agent (Netlify asks API clients to name themselves)"
        ));
    }

    let segs: Vec<&str> = api.split('/').collect();
    let is_upload = segs.len() >= 4 && segs[0] == "deploys" && segs[2] == "files";
    if let Some(q) = query {
        let allowed = is_upload && q.split('&').all(|kv| kv.starts_with("size="));
        if !allowed {
            g.problems
                .push(format!("{what}: unexpected query string {q:?}"));
        }
    }
    match (method, segs.as_slice()) {
        (&Method::POST, ["sites"]) => create_site(g, &what, headers, body),
        (&Method::POST, ["sites", site_id, "deploys"]) => {
            create_deploy(g, &what, &decode_or(site_id), headers, body)
        }
        (&Method::GET, ["deploys", deploy_id]) => get_deploy(g, &decode_or(deploy_id)),
        (&Method::PUT, ["deploys", deploy_id, "files", ..]) => {
            let rest = &api[format!("deploys/{deploy_id}/files/").len()..];
            upload(g, &what, &decode_or(deploy_id), rest, headers, body)
        }
        _ => {
            g.problems
                .push(format!("{what}: no such route in the deploy flow"));
            netlify_error(StatusCode::NOT_FOUND, "Not Found")
        }
    }
}

/// Decodes one percent-encoded path segment; `None` when it has characters a client must
/// encode (anything outside RFC 3986's `pchar`), a bad escape or invalid UTF-8.
fn decode_segment(seg: &str) -> Option<String> {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
            continue;
        }
        let pchar = c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&c);
        if !pchar {
            return None;
        }
        out.push(c);
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn decode_or(seg: &str) -> String {
    decode_segment(seg).unwrap_or_else(|| seg.to_string())
}

fn check_content_type(g: &mut Inner, what: &str, headers: &HeaderMap, want: &str) -> bool {
    let ct = header(headers, "content-type");
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != want {
        g.problems
            .push(format!("{what}: Content-Type {ct:?}, expected {want}"));
        return false;
    }
    true
}

fn site_json(g: &Inner, site: &Site) -> Value {
    let url = format!("{}/_site/{}", g.base, site.id);
    json!({
        "id": site.id,
        "site_id": site.id,
        "name": site.name,
        "state": "current",
        "url": url,
        "ssl_url": url,
        "admin_url": format!("{}/_admin/sites/{}", g.base, site.name),
        "deploy_url": url,
        "custom_domain": null,
        "published_deploy": site.published_deploy.as_ref().and_then(|d| g.deploys.get(d)).map(|d| deploy_json(g, d)),
        "created_at": "2026-01-01T00:00:00.000Z",
        "updated_at": "2026-01-01T00:00:00.000Z",
    })
}

fn deploy_json(g: &Inner, d: &Deploy) -> Value {
    let site_url = format!("{}/_site/{}", g.base, d.site_id);
    let deploy_url = format!("{}/_deploy/{}", g.base, d.id);
    let name = g
        .sites
        .get(&d.site_id)
        .map(|s| s.name.clone())
        .unwrap_or_default();
    json!({
        "id": d.id,
        "site_id": d.site_id,
        "state": d.state,
        "name": name,
        "url": site_url,
        "ssl_url": site_url,
        "admin_url": format!("{}/_admin/sites/{name}", g.base),
        "deploy_url": deploy_url,
        "deploy_ssl_url": deploy_url,
        "required": d.required.iter().collect::<Vec<_>>(),
        "required_functions": [],
        "error_message": d.error_message,
        "draft": d.draft,
        "skipped": null,
        "created_at": "2026-01-01T00:00:00.000Z",
        "updated_at": "2026-01-01T00:00:00.000Z",
    })
}

fn create_site(g: &mut Inner, what: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    if !check_content_type(g, what, headers, "application/json") {
        return netlify_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported Media Type");
    }
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
        g.problems
            .push(format!("{what}: body is not a JSON object"));
        return netlify_error(StatusCode::BAD_REQUEST, "Invalid JSON");
    };
    for k in obj.keys().filter(|k| k.as_str() != "name") {
        g.problems.push(format!(
            "{what}: unexpected key {k:?} (the client sends only name)"
        ));
    }
    g.next_id += 1;
    let n = g.next_id;
    let name = match obj.get("name") {
        None => format!("random-name-{n}"),
        Some(Value::String(name)) if is_site_name(name) => name.clone(),
        Some(other) => {
            g.problems
                .push(format!("{what}: name {other} is not a valid subdomain"));
            return netlify_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Validation failed: name is invalid",
            );
        }
    };
    if g.taken.contains(&name) || g.sites.values().any(|s| s.name == name) {
        return netlify_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation failed: name already taken",
        );
    }
    let id = format!("00000000-0000-4000-8000-{n:012x}");
    let site = Site {
        id: id.clone(),
        name,
        content: HashMap::new(),
        live: BTreeMap::new(),
        published_deploy: None,
    };
    let body = site_json(g, &site);
    g.sites.insert(id, site);
    (StatusCode::CREATED, Json(body)).into_response()
}

fn create_deploy(
    g: &mut Inner,
    what: &str,
    site_id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if !g.sites.contains_key(site_id) {
        return netlify_error(StatusCode::NOT_FOUND, "Not Found");
    }
    if !check_content_type(g, what, headers, "application/json") {
        return netlify_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported Media Type");
    }
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
        g.problems
            .push(format!("{what}: body is not a JSON object"));
        return netlify_error(StatusCode::BAD_REQUEST, "Invalid JSON");
    };
    let mut bad = Vec::new();
    for (k, v) in &obj {
        match k.as_str() {
            "files" => {}
            "draft" | "async" if v.is_boolean() => {}
            "draft" | "async" => bad.push(format!("{k} is {v}, not a boolean")),
            _ => bad.push(format!("unexpected key {k:?}")),
        }
    }
    if obj.get("async") == Some(&Value::Bool(true)) {
        bad.push("async: true (this fake implements synchronous digest deploys only)".into());
    }
    let mut files = BTreeMap::new();
    match obj.get("files") {
        Some(Value::Object(map)) if !map.is_empty() => {
            for (path, sha) in map {
                if normalize_path(path).ok().as_deref() != Some(path.as_str())
                    || !path.starts_with('/')
                {
                    bad.push(format!(
                        "file path {path:?} is not a normalised path with a leading slash"
                    ));
                }
                match sha.as_str() {
                    Some(s) if is_sha1_hex(s) => {
                        files.insert(path.clone(), s.to_string());
                    }
                    _ => bad.push(format!("digest of {path:?} is {sha}, not a SHA1 hex")),
                }
            }
        }
        Some(Value::Object(_)) => bad.push("files is empty".into()),
        Some(other) => bad.push(format!("files is {other}, not an object")),
        None => bad.push("no files (a digest deploy lists every file)".into()),
    }
    if !bad.is_empty() {
        for b in &bad {
            g.problems.push(format!("{what}: {b}"));
        }
        return netlify_error(StatusCode::UNPROCESSABLE_ENTITY, &bad.join("; "));
    }
    let site = &g.sites[site_id];
    let required: BTreeSet<String> = files
        .values()
        .filter(|sha| !site.content.contains_key(*sha))
        .cloned()
        .collect();
    g.next_id += 1;
    let id = format!("{:024x}", 0x5e1f_0000_0000u64 + g.next_id);
    let deploy = Deploy {
        id: id.clone(),
        site_id: site_id.to_string(),
        files,
        state: if required.is_empty() {
            "prepared"
        } else {
            "uploading"
        },
        required,
        received: BTreeSet::new(),
        draft: obj.get("draft") == Some(&Value::Bool(true)),
        fail: g.fail_next.take(),
        error_message: None,
    };
    let body = deploy_json(g, &deploy);
    g.deploys.insert(id, deploy);
    Json(body).into_response()
}

fn get_deploy(g: &mut Inner, deploy_id: &str) -> Response {
    let Some(d) = g.deploys.get_mut(deploy_id) else {
        return netlify_error(StatusCode::NOT_FOUND, "Not Found");
    };
    match d.state {
        "uploaded" | "prepared" => d.state = "processing",
        "processing" => {
            if let Some(m) = d.fail.take() {
                d.state = "error";
                d.error_message = Some(m);
            } else {
                d.state = "ready";
                let (site_id, files, draft, id) =
                    (d.site_id.clone(), d.files.clone(), d.draft, d.id.clone());
                if !draft {
                    if let Some(site) = g.sites.get_mut(&site_id) {
                        site.live = files;
                        site.published_deploy = Some(id);
                    }
                }
            }
        }
        _ => {}
    }
    let d = &g.deploys[deploy_id];
    Json(deploy_json(g, d)).into_response()
}

fn upload(
    g: &mut Inner,
    what: &str,
    deploy_id: &str,
    raw_rest: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if !g.deploys.contains_key(deploy_id) {
        return netlify_error(StatusCode::NOT_FOUND, "Not Found");
    }
    let ct_ok = check_content_type(g, what, headers, "application/octet-stream");
    let mut key = String::new();
    for seg in raw_rest.split('/') {
        if seg.is_empty() {
            g.problems.push(format!(
                "{what}: empty path segment (a doubled slash, or the digest's leading slash kept)"
            ));
            return netlify_error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid path");
        }
        let Some(dec) = decode_segment(seg) else {
            g.problems.push(format!(
                "{what}: segment {seg:?} is not percent-encoded (or not UTF-8)"
            ));
            return netlify_error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid path");
        };
        key.push('/');
        key.push_str(&dec);
    }
    if !ct_ok {
        return netlify_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported Media Type");
    }
    let d = &g.deploys[deploy_id];
    let Some(want) = d.files.get(&key).cloned() else {
        g.problems
            .push(format!("{what}: {key:?} is not in the deploy's digest"));
        return netlify_error(StatusCode::UNPROCESSABLE_ENTITY, "File not in the deploy");
    };
    let got = sha1_hex(body);
    if got != want {
        g.problems.push(format!(
            "{what}: body SHA1 {got} differs from the digest {want} sent for {key:?}"
        ));
        return netlify_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The uploaded file does not match its digest",
        );
    }
    let mut problems = Vec::new();
    if d.state != "uploading" {
        problems.push(format!("{what}: upload to a deploy in state {:?}", d.state));
    }
    if !d.required.contains(&want) {
        problems.push(format!(
            "{what}: {key:?} was not required (SHA1 {want} is not in `required`)"
        ));
    } else if d.received.contains(&want) {
        problems.push(format!(
            "{what}: SHA1 {want} already arrived through another path; one upload is enough"
        ));
    }
    g.problems.extend(problems);
    g.uploads += 1;
    let site_id = d.site_id.clone();
    if let Some(site) = g.sites.get_mut(&site_id) {
        site.content.insert(want.clone(), body.to_vec());
    }
    let d = g.deploys.get_mut(deploy_id).expect("checked above");
    d.received.insert(want.clone());
    if d.state == "uploading" && d.required.is_subset(&d.received) {
        d.state = "uploaded";
    }
    Json(json!({
        "id": key,
        "path": key,
        "sha": want,
        "mime_type": mime(&key),
        "size": body.len(),
    }))
    .into_response()
}

fn mime(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// `rest` is `{id}` or `{id}/path…`; a path ending in `/` (or none) is its `index.html`.
fn split_served(rest: &str) -> (String, String) {
    let (id, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut key = String::new();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        key.push('/');
        key.push_str(&decode_or(seg));
    }
    if path.is_empty() || path.ends_with('/') {
        key.push_str("/index.html");
    }
    (id.to_string(), key)
}

fn serve(
    files: &BTreeMap<String, String>,
    content: &HashMap<String, Vec<u8>>,
    key: &str,
) -> Response {
    match files.get(key).and_then(|sha| content.get(sha)) {
        Some(bytes) => (
            [(axum::http::header::CONTENT_TYPE, mime(key))],
            Body::from(bytes.clone()),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "Not Found").into_response(),
    }
}

fn serve_site(g: &Inner, rest: &str) -> Response {
    let (id, key) = split_served(rest);
    match g.sites.get(&id) {
        Some(site) => serve(&site.live, &site.content, &key),
        None => (StatusCode::NOT_FOUND, "Not Found").into_response(),
    }
}

fn serve_deploy(g: &Inner, rest: &str) -> Response {
    let (id, key) = split_served(rest);
    match g.deploys.get(&id) {
        Some(d) if d.state == "ready" => match g.sites.get(&d.site_id) {
            Some(site) => serve(&d.files, &site.content, &key),
            None => (StatusCode::NOT_FOUND, "Not Found").into_response(),
        },
        _ => (StatusCode::NOT_FOUND, "Not Found").into_response(),
    }
}
