//! Shared test helpers: a real state (real bwrap, temp data dir), signed requests through
//! `oneshot`, and serving both listeners on loopback for socket-level tests.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use tower::ServiceExt;
use vm_api::{app, preview_app, signed_headers, AppState};

pub const SECRET: &[u8] = b"test-secret-0123456789";

pub fn state(tmp: &tempfile::TempDir) -> AppState {
    let sandbox = vm_api::sandbox::Bwrap::detect().expect("tests run with the real bwrap");
    AppState::new(SECRET.to_vec(), tmp.path().to_path_buf(), Arc::new(sandbox))
}

/// A signed request; a nonce query parameter keeps repeated identical requests distinct.
pub fn signed_request(method: &str, path: &str, body: &[u8]) -> Request<Body> {
    let path = &vm_api::auth::with_nonce(path);
    let mut b = Request::builder().method(method).uri(path);
    for (k, v) in signed_headers(SECRET, method, path, body) {
        b = b.header(k, v);
    }
    if !body.is_empty() {
        b = b.header("content-type", "application/json");
    }
    b.body(Body::from(body.to_vec())).unwrap()
}

/// One signed request through the router; returns status and the whole body.
pub async fn call(
    st: &Arc<AppState>,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> (StatusCode, Vec<u8>) {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let resp = app(st.clone())
        .oneshot(signed_request(method, path, &bytes))
        .await
        .unwrap();
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, body)
}

pub async fn call_json(
    st: &Arc<AppState>,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    let (s, b) = call(st, method, path, body).await;
    let v = serde_json::from_slice(&b)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&b)));
    (s, v)
}

pub fn ndjson(body: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(body)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("bad line {l}")))
        .collect()
}

/// Concatenated data of all events of `kind`.
pub fn text_of(events: &[serde_json::Value], kind: &str) -> String {
    events
        .iter()
        .filter(|e| e["type"] == kind)
        .map(|e| e["data"].as_str().unwrap_or("").to_string())
        .collect()
}

pub fn exit_of(events: &[serde_json::Value]) -> serde_json::Value {
    let last = events.last().expect("at least the exit event").clone();
    assert_eq!(last["type"], "exit", "last event is exit: {events:?}");
    last
}

/// Serves the API and the preview listener on free loopback ports.
pub async fn serve(mut st: AppState) -> (Arc<AppState>, SocketAddr, SocketAddr) {
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let prev = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (a, p) = (api.local_addr().unwrap(), prev.local_addr().unwrap());
    st.own_ports = std::sync::RwLock::new(vec![a.port(), p.port()]);
    st.preview_port = std::sync::RwLock::new(Some(p.port()));
    let st = Arc::new(st);
    tokio::spawn(axum::serve(api, app(st.clone())).into_future());
    tokio::spawn(axum::serve(prev, preview_app(st.clone())).into_future());
    (st, a, p)
}

/// Polls `f` until it returns true or `secs` pass.
pub async fn eventually<F: FnMut() -> bool>(secs: u64, mut f: F) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    f()
}

/// Uploads each content as the project's object in the container (creating it first), as the
/// Worker does before a sync.
pub async fn put_objects(
    objects: &vm_api::azure_blob::AzureObjects,
    project: &str,
    contents: &[&[u8]],
) {
    use open_replit_core::azure::rest::Cond;
    use open_replit_core::manifest::Manifest;
    use open_replit_core::store::project::object_name;
    objects.blob.ensure_container().await.unwrap();
    for c in contents {
        let name = object_name(project, &Manifest::entry(c).sha256);
        objects
            .blob
            .put(&name, c.to_vec(), "application/octet-stream", Cond::None)
            .await
            .unwrap();
    }
}
