//! Real commands in the real bwrap sandbox: output order, exit codes, timeouts that kill the
//! whole tree, client disconnects, the output cap, the concurrency limit and isolation.

mod common;
use axum::http::StatusCode;
use common::*;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn streams_stdout_and_stderr_in_order_with_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let st = Arc::new(state(&tmp));
    let (s, body) = call(
        &st,
        "POST",
        "/projects/p1/exec",
        json!({"command": "echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three; exit 7"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let ev = ndjson(&body);
    let seq: Vec<(String, String)> = ev
        .iter()
        .filter(|e| e["type"] != "exit")
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["data"].as_str().unwrap().trim().to_string(),
            )
        })
        .collect();
    assert_eq!(
        seq,
        vec![
            ("stdout".to_string(), "one".to_string()),
            ("stderr".to_string(), "two".to_string()),
            ("stdout".to_string(), "three".to_string())
        ]
    );
    let exit = exit_of(&ev);
    assert_eq!(exit["exit_code"], 7);
    assert_eq!(exit["timed_out"], false);
    assert_eq!(exit["truncated"], false);
    assert!(exit["duration_ms"].as_u64().is_some());

    let (_, body) = call(&st, "POST", "/projects/p1/exec", json!({"command": "true"})).await;
    assert_eq!(exit_of(&ndjson(&body))["exit_code"], 0);
}

#[tokio::test]
async fn runs_in_cwd_with_env_inside_the_sandbox() {
    let tmp = tempfile::tempdir().unwrap();
    let st = Arc::new(state(&tmp));
    std::fs::create_dir_all(st.project_dir("p1").join("sub/dir")).unwrap();
    let (_, body) = call(
        &st,
        "POST",
        "/projects/p1/exec",
        json!({"command": "pwd; echo \"$GREETING\"; echo \"home=$HOME\"; env | grep -c VM_API_SECRET; echo x > made.txt",
               "cwd": "sub/dir", "env": {"GREETING": "hi there"}}),
    )
    .await;
    let ev = ndjson(&body);
    let out = text_of(&ev, "stdout");
    assert_eq!(
        out, "/project/sub/dir\nhi there\nhome=/home/user\n0\n",
        "{ev:?}"
    );
    assert!(st.project_dir("p1").join("sub/dir/made.txt").exists());

    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/exec",
        json!({"command": "true", "cwd": "nope"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "invalid_cwd");
}

#[tokio::test]
async fn sandbox_hides_host_secrets_and_other_projects() {
    let tmp = tempfile::tempdir().unwrap();
    let st = Arc::new(state(&tmp));
    std::fs::create_dir_all(st.project_dir("other")).unwrap();
    std::fs::write(st.project_dir("other").join("secret.txt"), "theirs").unwrap();
    std::fs::create_dir_all(st.project_dir("p1")).unwrap();
    let probe = format!(
        "for p in /etc/shadow /root {data} /work /project/../other; do \
           if [ -e \"$p\" ]; then echo \"visible $p\"; fi; done; \
         ls /proc | grep -E '^[0-9]+$' | wc -l; cat /etc/hostname 2>/dev/null; hostname; echo done",
        data = tmp.path().display()
    );
    let (_, body) = call(&st, "POST", "/projects/p1/exec", json!({"command": probe})).await;
    let ev = ndjson(&body);
    let out = text_of(&ev, "stdout");
    assert!(!out.contains("visible"), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let pids: usize = lines[0].trim().parse().unwrap();
    assert!(pids <= 6, "own PID namespace, saw {pids} processes");
    assert_eq!(lines[1], "sandbox");
    assert_eq!(lines[2], "done");
}

#[tokio::test]
async fn timeout_kills_grandchildren() {
    let tmp = tempfile::tempdir().unwrap();
    let st = Arc::new(state(&tmp));
    let (_, body) = call(
        &st,
        "POST",
        "/projects/p1/exec",
        json!({"command": "(sleep 3; echo late > marker.txt) & (setsid sh -c 'sleep 3; echo late > marker2.txt' &) ; echo started; sleep 100",
               "timeout_s": 1}),
    )
    .await;
    let ev = ndjson(&body);
    assert_eq!(text_of(&ev, "stdout"), "started\n");
    let exit = exit_of(&ev);
    assert_eq!(exit["timed_out"], true);
    assert_eq!(exit["exit_code"], serde_json::Value::Null);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!st.project_dir("p1").join("marker.txt").exists());
    assert!(!st.project_dir("p1").join("marker2.txt").exists());
}

#[tokio::test]
async fn background_children_die_with_the_command() {
    let tmp = tempfile::tempdir().unwrap();
    let st = Arc::new(state(&tmp));
    let (_, body) = call(
        &st,
        "POST",
        "/projects/p1/exec",
        json!({"command": "(sleep 2; echo late > marker.txt) > /dev/null 2>&1 & echo ok"}),
    )
    .await;
    assert_eq!(exit_of(&ndjson(&body))["exit_code"], 0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!st.project_dir("p1").join("marker.txt").exists());
}

#[tokio::test]
async fn output_cap_truncates_but_the_command_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = state(&tmp);
    s.limits.output_cap_bytes = 1000;
    let st = Arc::new(s);
    let (_, body) = call(
        &st,
        "POST",
        "/projects/p1/exec",
        json!({"command": "head -c 200000 /dev/zero | tr '\\0' 'a'; echo done > finished.txt; exit 3"}),
    )
    .await;
    let ev = ndjson(&body);
    assert_eq!(text_of(&ev, "stdout").len(), 1000);
    let exit = exit_of(&ev);
    assert_eq!(exit["truncated"], true);
    assert_eq!(exit["exit_code"], 3);
    assert!(st.project_dir("p1").join("finished.txt").exists());
}

#[tokio::test]
async fn per_project_concurrency_limit_is_429() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = state(&tmp);
    s.limits.exec_concurrency = 1;
    let (st, api, _) = serve(s).await;
    let client = reqwest::Client::new();
    let send = |cmd: &str| {
        let body = json!({"command": cmd}).to_string();
        let path = "/projects/p1/exec";
        let mut rb = client
            .post(format!("http://{api}{path}"))
            .body(body.clone());
        for (k, v) in vm_api::signed_headers(SECRET, "POST", path, body.as_bytes()) {
            rb = rb.header(k, v);
        }
        rb.send()
    };
    let first = send("sleep 2; echo first").await.unwrap();
    assert_eq!(first.status(), 200);
    let second = send("echo second").await.unwrap();
    assert_eq!(second.status(), 429);
    let v: serde_json::Value = serde_json::from_slice(&second.bytes().await.unwrap()).unwrap();
    assert_eq!(v["error"]["code"], "too_many_commands");
    // Another project is not affected.
    let (code, _) = call(&st, "POST", "/projects/p2/exec", json!({"command": "true"})).await;
    assert_eq!(code, 200);
    let text = first.text().await.unwrap();
    assert!(text.contains("first"));
    // The slot is released once the command ends.
    let third = send("echo third").await.unwrap();
    assert_eq!(third.status(), 200);
    assert!(third.text().await.unwrap().contains("third"));
}

#[tokio::test]
async fn client_disconnect_kills_the_command() {
    let tmp = tempfile::tempdir().unwrap();
    let (st, api, _) = serve(state(&tmp)).await;
    let body = json!({"command": "echo started; sleep 3; echo late > marker.txt"}).to_string();
    let path = "/projects/p1/exec";
    let mut rb = reqwest::Client::new()
        .post(format!("http://{api}{path}"))
        .body(body.clone());
    for (k, v) in vm_api::signed_headers(SECRET, "POST", path, body.as_bytes()) {
        rb = rb.header(k, v);
    }
    let mut resp = rb.send().await.unwrap();
    let first = resp.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("started"));
    drop(resp);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!st.project_dir("p1").join("marker.txt").exists());
}
