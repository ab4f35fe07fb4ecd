//! Router-level auth tests: every route but /health needs a fresh, correct, unused signature.

mod common;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use http_body_util::BodyExt;
use open_replit_core::vm_auth::{
    sha256_hex, sign, HEADER_BODY_SHA256, HEADER_SIGNATURE, HEADER_TIMESTAMP,
};
use std::sync::Arc;
use tower::ServiceExt;
use vm_api::app;

async fn send(st: &Arc<vm_api::AppState>, req: Request<Body>) -> (StatusCode, serde_json::Value) {
    let resp = app(st.clone()).oneshot(req).await.unwrap();
    let s = resp.status();
    let b = resp.into_body().collect().await.unwrap().to_bytes();
    (
        s,
        serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null),
    )
}

/// What each request below declares as its body (all but one send an empty body).
const BODY_HASHED: &[u8] = b"";

fn now() -> i64 {
    vm_api::auth::now_unix()
}

#[tokio::test]
async fn missing_wrong_expired_and_replayed_signatures_are_401() {
    let tmp = tempfile::tempdir().unwrap();
    let st = Arc::new(state(&tmp));
    let path = "/projects/p1/processes";

    let (s, v) = send(&st, Request::get(path).body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["code"], "unauthorized");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("missing"),
        "{v}"
    );

    let ts = now();
    let bad = sign(b"another-secret-xyz", "GET", path, ts, &sha256_hex(b""), "");
    let (s, v) = send(
        &st,
        Request::get(path)
            .header(HEADER_TIMESTAMP, ts.to_string())
            .header(HEADER_SIGNATURE, bad)
            .header(HEADER_BODY_SHA256, sha256_hex(BODY_HASHED))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not match"),
        "{v}"
    );

    // Signed for a different path: the signature covers path and query.
    let sig = sign(
        SECRET,
        "GET",
        "/projects/p2/processes",
        ts,
        &sha256_hex(b""),
        "",
    );
    let (s, _) = send(
        &st,
        Request::get(path)
            .header(HEADER_TIMESTAMP, ts.to_string())
            .header(HEADER_SIGNATURE, sig)
            .header(HEADER_BODY_SHA256, sha256_hex(BODY_HASHED))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let old = ts - 301;
    let sig = sign(SECRET, "GET", path, old, &sha256_hex(b""), "");
    let (s, v) = send(
        &st,
        Request::get(path)
            .header(HEADER_TIMESTAMP, old.to_string())
            .header(HEADER_SIGNATURE, sig)
            .header(HEADER_BODY_SHA256, sha256_hex(BODY_HASHED))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("away from the server clock"),
        "{v}"
    );

    // A good request passes once, then its replay is refused.
    let sig = sign(SECRET, "GET", path, ts, &sha256_hex(b""), "");
    let good = || {
        Request::get(path)
            .header(HEADER_TIMESTAMP, ts.to_string())
            .header(HEADER_SIGNATURE, sig.clone())
            .header(HEADER_BODY_SHA256, sha256_hex(BODY_HASHED))
            .body(Body::empty())
            .unwrap()
    };
    let (s, v) = send(&st, good()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["processes"], serde_json::json!([]));
    let (s, v) = send(&st, good()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{v}"
    );
}

#[tokio::test]
async fn body_is_covered_by_the_signature() {
    let tmp = tempfile::tempdir().unwrap();
    let st = Arc::new(state(&tmp));
    let path = "/projects/p1/exec";
    let ts = now();
    let sig = sign(
        SECRET,
        "POST",
        path,
        ts,
        &sha256_hex(br#"{"command":"true"}"#),
        "",
    );
    let (s, _) = send(
        &st,
        Request::post(path)
            .header(HEADER_TIMESTAMP, ts.to_string())
            .header(HEADER_SIGNATURE, sig)
            .header(HEADER_BODY_SHA256, sha256_hex(br#"{"command":"true"}"#))
            .body(Body::from(r#"{"command":"rm -rf /project"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn validation_errors_name_the_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let st = Arc::new(state(&tmp));
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/Bad_Id/exec",
        serde_json::json!({"command": "true"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "invalid_project_id");
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/exec",
        serde_json::json!({"command": "true", "cwd": "../x"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "invalid_cwd");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("parent_segment"),
        "{v}"
    );
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/exec",
        serde_json::json!({"command": "true", "timeout_s": 601}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "invalid_timeout");
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/exec",
        serde_json::json!({"cmd": "true"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "invalid_json");
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/exec",
        serde_json::json!({"command": "true", "env": {"A-B": "1"}}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "invalid_env");
}
