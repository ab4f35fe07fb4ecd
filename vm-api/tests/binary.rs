//! The real `vm-api` binary: refuses to start without a secret, serves both listeners, and on
//! SIGTERM stops every child it started.

mod common;
use common::SECRET;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

struct Service(std::process::Child);
impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn refuses_to_start_without_a_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vm-api"))
        .args(["--port", "0", "--preview-port", "0", "--data-dir"])
        .arg(tmp.path())
        .env_remove("VM_API_SECRET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("VM_API_SECRET"), "{all}");
}

#[tokio::test]
async fn sigterm_stops_managed_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vm-api"))
        .args(["--port", "0", "--preview-port", "0", "--data-dir"])
        .arg(tmp.path())
        .env("VM_API_SECRET", std::str::from_utf8(SECRET).unwrap())
        .env("RUST_LOG", "vm_api=info")
        .env("NO_COLOR", "1")
        .env_remove("AZURE_STORAGE_CONNECTION_STRING")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let svc = Service(child);
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().expect("service printed its address").unwrap();
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let client = reqwest::Client::new();
    let health = client
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let path = "/projects/p1/processes";
    let body = serde_json::json!({"name": "ticker", "command": "while true; do date +%s%N > tick; sleep 0.1; done"}).to_string();
    let mut rb = client
        .post(format!("http://{addr}{path}"))
        .body(body.clone());
    for (k, v) in vm_api::signed_headers(SECRET, "POST", path, body.as_bytes()) {
        rb = rb.header(k, v);
    }
    assert_eq!(rb.send().await.unwrap().status(), 201);
    let tick = tmp.path().canonicalize().unwrap().join("projects/p1/tick");
    assert!(common::eventually(10, || tick.exists()).await);

    let pid = rustix::process::Pid::from_raw(svc.0.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let mut svc = svc;
    let status = tokio::task::spawn_blocking(move || {
        let s = svc.0.wait();
        (s, svc)
    })
    .await
    .unwrap()
    .0
    .unwrap();
    assert!(status.success(), "{status:?}");
    let a = std::fs::read(&tick).unwrap_or_default();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let b = std::fs::read(&tick).unwrap_or_default();
    assert_eq!(a, b, "the ticker kept running after the service stopped");
}
