//! The VM host's protections: signatures checked before any body byte is read, request and
//! preview keys kept apart, the per-user command cap, the host-wide dev-server cap and the idle
//! reaper's sweep (the hardened namespace teardown is covered end to end in e2e `reaper`).

mod common;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use open_replit_core::vm_auth;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;
use vm_api::admission::{Admission, Caps};

fn caps(commands_per_user: usize, dev_servers: usize) -> Admission {
    Admission::new(Caps {
        sandboxes: 64,
        dev_servers,
        commands_per_user,
    })
}

/// A signed request acting for `user`.
fn as_user(method: &str, path: &str, body: &[u8], user: &str) -> Request<Body> {
    let path = &vm_api::auth::with_nonce(path);
    let mut b = Request::builder().method(method).uri(path);
    for (k, v) in vm_api::auth::signed_headers_as(SECRET, method, path, body, user) {
        b = b.header(k, v);
    }
    b.body(Body::from(body.to_vec())).unwrap()
}

async fn read_reply(sock: &mut tokio::net::TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // Until the status line and headers are in (the server answers, then closes or idles).
    while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn a_bad_signature_is_refused_before_the_body_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let (_st, api, _) = serve(state(&tmp)).await;
    let path = "/projects/p1/sync";
    let ts = vm_api::auth::now_unix();
    let fake_hash = vm_auth::sha256_hex(b"what the body will not be");
    // Announces a 4 GiB body and sends none of it: an answer can only come from the headers.
    for (what, sig, ts) in [
        ("bad signature", "ab".repeat(32), ts),
        (
            "expired",
            vm_auth::sign(SECRET, "POST", path, ts - 3600, &fake_hash, ""),
            ts - 3600,
        ),
        (
            "wrong key",
            vm_auth::sign(b"not-the-secret-at-all", "POST", path, ts, &fake_hash, ""),
            ts,
        ),
    ] {
        let mut sock = tokio::net::TcpStream::connect(api).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: vm\r\ncontent-type: application/json\r\n\
             content-length: 4294967296\r\n{}: {ts}\r\n{}: {sig}\r\n{}: {fake_hash}\r\n\r\n",
            vm_auth::HEADER_TIMESTAMP,
            vm_auth::HEADER_SIGNATURE,
            vm_auth::HEADER_BODY_SHA256,
        );
        sock.write_all(head.as_bytes()).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(30), read_reply(&mut sock))
            .await
            .unwrap_or_else(|_| panic!("{what}: no answer without the body"));
        assert!(reply.starts_with("HTTP/1.1 401"), "{what}: {reply}");
    }
    // An unsigned request with a body is refused the same way.
    let mut sock = tokio::net::TcpStream::connect(api).await.unwrap();
    sock.write_all(
        format!("POST {path} HTTP/1.1\r\nhost: vm\r\ncontent-length: 4294967296\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(30), read_reply(&mut sock))
        .await
        .expect("unsigned: no answer without the body");
    assert!(reply.starts_with("HTTP/1.1 401"), "unsigned: {reply}");
}

#[tokio::test]
async fn a_correctly_signed_body_that_differs_from_its_hash_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let st = Arc::new(state(&tmp));
    let path = "/projects/p1/exec";
    let signed_for = br#"{"command":"true"}"#;
    let mut req = signed_request("POST", path, signed_for);
    *req.body_mut() = Body::from(r#"{"command":"touch /project/pwned"}"#);
    let resp = vm_api::app(st).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(!tmp.path().join("projects/p1/pwned").exists());
}

#[tokio::test]
async fn request_signatures_and_preview_tokens_are_not_interchangeable() {
    let tmp = tempfile::tempdir().unwrap();
    let (st, api, prev) = serve(state(&tmp)).await;
    let http = reqwest::Client::new();
    let now = vm_api::auth::now_unix();
    // A preview token's MAC, presented as a request signature over the same project path.
    let token = vm_api::mint_preview_token(SECRET, "p1", now + 600);
    let (_, mac) = token.split_once('.').unwrap();
    let empty = vm_auth::sha256_hex(b"");
    let r = http
        .get(format!("http://{api}/projects/p1/processes"))
        .header(vm_auth::HEADER_TIMESTAMP, now.to_string())
        .header(vm_auth::HEADER_SIGNATURE, mac)
        .header(vm_auth::HEADER_BODY_SHA256, &empty)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A request signature, presented as a preview token.
    let sig = vm_auth::sign(SECRET, "GET", "/", now, &empty, "");
    let preview = |q: String| {
        http.get(format!("http://{prev}/?or_token={q}"))
            .header("host", "p1.preview.localhost")
            .send()
    };
    let r = preview(format!("{}.{sig}", now + 600)).await.unwrap();
    assert_eq!(r.status(), 401);
    // The real token still works there, so the refusals above are about the key.
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://{prev}/?or_token={token}"))
        .header("host", "p1.preview.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    drop(st);
}

#[tokio::test]
async fn one_user_cannot_run_more_commands_than_the_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = state(&tmp);
    s.admission = caps(2, 8);
    let st = Arc::new(s);
    let long = serde_json::json!({"command": "sleep 60", "timeout_s": 120, "scan": false});
    let body = long.to_string().into_bytes();
    let run = |project: &str, user: &str| {
        vm_api::app(st.clone()).oneshot(as_user(
            "POST",
            &format!("/projects/{project}/exec"),
            &body,
            user,
        ))
    };
    // Two commands of alice, in two projects: both run (the responses stream until dropped).
    let a1 = run("pa", "alice").await.unwrap();
    let a2 = run("pb", "alice").await.unwrap();
    assert_eq!((a1.status(), a2.status()), (StatusCode::OK, StatusCode::OK));
    assert_eq!(st.admission.user_commands("alice"), 2);
    let a3 = run("pc", "alice").await.unwrap();
    assert_eq!(a3.status(), StatusCode::TOO_MANY_REQUESTS);
    let b = http_body_util::BodyExt::collect(a3.into_body())
        .await
        .unwrap()
        .to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["error"]["code"], "too_many_user_commands", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("alice"),
        "{v}"
    );
    // Another person is not held back by alice.
    let b1 = run("pc", "bob").await.unwrap();
    assert_eq!(b1.status(), StatusCode::OK);
    // Hanging up kills alice's commands and gives her places back.
    drop((a1, a2));
    assert!(
        eventually(60, || st.admission.user_commands("alice") == 0).await,
        "alice's places came back"
    );
    let (s, b) = {
        let r = vm_api::app(st.clone())
            .oneshot(as_user(
                "POST",
                "/projects/pa/exec",
                br#"{"command":"echo again","scan":false}"#,
                "alice",
            ))
            .await
            .unwrap();
        let s = r.status();
        (
            s,
            http_body_util::BodyExt::collect(r.into_body())
                .await
                .unwrap()
                .to_bytes(),
        )
    };
    assert_eq!(s, StatusCode::OK);
    assert!(String::from_utf8_lossy(&b).contains("again"));
    drop(b1);
}

#[tokio::test]
async fn the_host_runs_no_more_dev_servers_than_its_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = state(&tmp);
    s.admission = caps(8, 1);
    let st = Arc::new(s);
    let start = |project: &str| {
        let st = st.clone();
        let path = format!("/projects/{project}/processes");
        async move {
            call_json(
                &st,
                "POST",
                &path,
                serde_json::json!({"name": "web", "command": "sleep 120"}),
            )
            .await
        }
    };
    let (s1, v) = start("one").await;
    assert_eq!(s1, StatusCode::CREATED, "{v}");
    let (s2, v) = start("two").await;
    assert_eq!(s2, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(v["error"]["code"], "too_many_dev_servers");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--max-dev-servers"));
    let (s, _) = call(
        &st,
        "DELETE",
        "/projects/one/processes/web",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(eventually(60, || st.admission.running().1 == 0).await);
    let (s3, v) = start("two").await;
    assert_eq!(s3, StatusCode::CREATED, "{v}");
    st.processes.stop_all().await;
    assert!(eventually(60, || st.admission.running() == (0, 0)).await);
}

#[tokio::test]
async fn the_reaper_stops_the_dev_servers_of_idle_projects_only() {
    let tmp = tempfile::tempdir().unwrap();
    let st = Arc::new(state(&tmp));
    for p in ["idle", "busy"] {
        let (s, v) = call_json(
            &st,
            "POST",
            &format!("/projects/{p}/processes"),
            serde_json::json!({"name": "web", "command": "sleep 120"}),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    // "busy" has an open preview socket (a hold); "idle" has nothing.
    let hold = st.activity.hold("busy");
    let reaped = vm_api::reaper::sweep(&st, Duration::ZERO).await;
    assert_eq!(reaped, vec!["idle".to_string()]);
    let (_, v) = call_json(
        &st,
        "GET",
        "/projects/idle/host-status",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(v["running_processes"], serde_json::json!([]), "{v}");
    // Reading the status is not use: the project is still unknown to the reaper.
    assert!(v["idle_ms"].is_null(), "{v}");
    let (_, v) = call_json(
        &st,
        "GET",
        "/projects/busy/host-status",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(v["running_processes"], serde_json::json!(["web"]), "{v}");
    assert_eq!(v["idle_ms"], 0, "{v}");
    assert!(
        eventually(60, || st.admission.running() == (1, 1)).await,
        "the reaped server gave its place back"
    );
    drop(hold);
    st.processes.stop_all().await;
}
