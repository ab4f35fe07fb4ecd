//! Managed processes with real children in bwrap: start, list, logs, follow, stop, restart,
//! crash reports, shutdown.

mod common;
use axum::http::StatusCode;
use common::*;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

async fn list(st: &Arc<vm_api::AppState>) -> Vec<serde_json::Value> {
    let (s, v) = call_json(st, "GET", "/projects/p1/processes", serde_json::Value::Null).await;
    assert_eq!(s, StatusCode::OK);
    v["processes"].as_array().unwrap().clone()
}

async fn wait_status(st: &Arc<vm_api::AppState>, name: &str, status: &str) -> serde_json::Value {
    for _ in 0..100 {
        if let Some(p) = list(st).await.into_iter().find(|p| p["name"] == name) {
            if p["status"] == status {
                return p;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} never reached {status}: {:?}", list(st).await);
}

#[tokio::test]
async fn start_logs_restart_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let st = Arc::new(state(&tmp));
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/processes",
        json!({"name": "web", "command": "echo \"port=$PORT\"; echo oops >&2; echo run >> runs.txt; exec sleep 300"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"], "running");
    let port = v["port"].as_u64().unwrap();
    assert!(port >= 1024);
    assert!(v["pid"].as_u64().is_some());

    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/processes",
        json!({"name": "web", "command": "true"}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(v["error"]["code"], "process_exists");

    let runs = st.project_dir("p1").join("runs.txt");
    assert!(
        eventually(10, || std::fs::read_to_string(&runs)
            .is_ok_and(|s| s.lines().count() == 1))
        .await
    );
    let (_, v) = call_json(
        &st,
        "GET",
        "/projects/p1/processes/web/logs?tail=10",
        serde_json::Value::Null,
    )
    .await;
    let lines: Vec<String> = v["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap().to_string())
        .collect();
    assert!(lines.contains(&format!("port={port}")), "{lines:?}");
    assert!(v["lines"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["line"] == "oops" && l["stream"] == "stderr"));
    let (_, v) = call_json(
        &st,
        "GET",
        "/projects/p1/processes/web/logs?tail=1",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(v["lines"].as_array().unwrap().len(), 1);

    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/processes/web/restart",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["restarts"], 1);
    assert_eq!(v["status"], "running");
    assert_eq!(
        v["port"].as_u64().unwrap(),
        port,
        "a restart keeps the port"
    );
    assert!(
        eventually(10, || std::fs::read_to_string(&runs)
            .is_ok_and(|s| s.lines().count() == 2))
        .await
    );

    let (s, v) = call_json(
        &st,
        "DELETE",
        "/projects/p1/processes/web",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "stopped");
    assert!(list(&st).await.is_empty());
    let (s, _) = call_json(
        &st,
        "DELETE",
        "/projects/p1/processes/web",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_crash_is_reported_with_exit_code_and_last_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let st = Arc::new(state(&tmp));
    let (s, _) = call_json(
        &st,
        "POST",
        "/projects/p1/processes",
        json!({"name": "api", "command": "echo booting; sleep 0.5; echo 'Error: cannot find module express' >&2; exit 3", "port": 45678}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let p = wait_status(&st, "api", "exited").await;
    assert_eq!(p["exit_code"], 3);
    assert_eq!(p["port"], 45678);
    let last: Vec<&str> = p["last_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        last.contains(&"Error: cannot find module express"),
        "{last:?}"
    );
    assert!(last.contains(&"[process exited with code 3]"), "{last:?}");
    // An exited process can be started again under the same name.
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/processes",
        json!({"name": "api", "command": "sleep 300"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    st.shutdown().await;
    let p = wait_status(&st, "api", "stopped").await;
    assert_eq!(p["exit_code"], serde_json::Value::Null);
}

#[tokio::test]
async fn follow_streams_lines_until_exit_and_survives_client_disconnect() {
    let tmp = tempfile::tempdir().unwrap();
    let (st, api, _) = serve(state(&tmp)).await;
    let (s, _) = call_json(
        &st,
        "POST",
        "/projects/p1/processes",
        json!({"name": "ticker", "command": "for i in 1 2 3 4 5 6; do echo tick $i; sleep 0.3; done; echo done >> ended.txt"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let path = vm_api::auth::with_nonce("/projects/p1/processes/ticker/logs?follow=1&tail=0");
    let get = |path: String| {
        let mut rb = reqwest::Client::new().get(format!("http://{api}{path}"));
        for (k, v) in vm_api::signed_headers(SECRET, "GET", &path, b"") {
            rb = rb.header(k, v);
        }
        rb.send()
    };
    // A first follower that hangs up early: the process must keep running.
    let mut early = get(path.clone()).await.unwrap();
    let _ = early.chunk().await.unwrap();
    drop(early);
    let path = vm_api::auth::with_nonce("/projects/p1/processes/ticker/logs?follow=1&tail=100");
    let body = get(path).await.unwrap().bytes().await.unwrap();
    let ev = ndjson(&body);
    let ticks: Vec<&str> = ev
        .iter()
        .filter(|e| e["type"] == "log")
        .map(|e| e["line"].as_str().unwrap())
        .collect();
    assert_eq!(
        &ticks[..6],
        ["tick 1", "tick 2", "tick 3", "tick 4", "tick 5", "tick 6"]
    );
    let last = ev.last().unwrap();
    assert_eq!(last["type"], "exit");
    assert_eq!(last["exit_code"], 0);
    assert!(st.project_dir("p1").join("ended.txt").exists());
}

#[tokio::test]
async fn bad_requests_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let st = Arc::new(state(&tmp));
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/processes",
        json!({"name": "Web App", "command": "true"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "invalid_process_name");
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/processes",
        json!({"name": "web", "command": "true", "port": 80}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "invalid_port");
    let (s, v) = call_json(
        &st,
        "GET",
        "/projects/p1/processes/nope/logs",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "no_such_process");
}

#[tokio::test]
async fn ready_waits_for_the_port_or_the_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let st = Arc::new(state(&tmp));
    // Binds its port after a second.
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/processes",
        json!({"name": "web", "command": "sleep 1; exec python3 -m http.server $PORT --bind 127.0.0.1"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = call_json(
        &st,
        "GET",
        "/projects/p1/processes/web/ready?timeout_ms=100",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["ready"], false, "not listening yet: {v}");
    let (_, v) = call_json(
        &st,
        "GET",
        "/projects/p1/processes/web/ready?timeout_ms=20000",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(v["ready"], true, "{v}");
    assert_eq!(v["process"]["status"], "running");
    // A process that dies answers at once with its exit, long before the timeout.
    call_json(
        &st,
        "POST",
        "/projects/p1/processes",
        json!({"name": "bad", "command": "echo boom >&2; exit 3"}),
    )
    .await;
    let t0 = std::time::Instant::now();
    let (_, v) = call_json(
        &st,
        "GET",
        "/projects/p1/processes/bad/ready?timeout_ms=60000",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(v["ready"], false, "{v}");
    assert_eq!(v["process"]["status"], "exited", "{v}");
    assert!(
        t0.elapsed() < Duration::from_secs(50),
        "did not wait out the timeout"
    );
    st.shutdown().await;
}
