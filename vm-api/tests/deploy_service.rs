//! A deployment's backend as a production service, with real bwrap and a tiny Python backend:
//! start behind a health gate, activate, the `/live/` proxy, data that outlives deployments,
//! a candidate that crashes never going live, restarts after a kill, restore after the VM API
//! restarts, unpublish, and the bad-input and unsigned refusals.

mod common;
use axum::http::StatusCode;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A small `http.server` backend: `/api/health` (500 while a `sick` file lies in the data
/// folder), `/api/items` kept in a JSON file beside `DATABASE_PATH`, and `/api/echo`, an
/// upgraded connection that echoes lines. `argv[1]` is its version (`crash` exits at once); `argv[2]` a tag that
/// finds its process.
const SERVER_PY: &str = r#"
import http.server, json, os, sys
version = sys.argv[1]
if version == "crash":
    print("boom: the backend cannot start", flush=True)
    sys.exit(3)
store = os.path.join(os.path.dirname(os.environ["DATABASE_PATH"]), "items.json")

def load():
    try:
        with open(store) as f:
            return json.load(f)
    except FileNotFoundError:
        return []

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path == "/api/health":
            sick = os.path.exists(os.path.join(os.path.dirname(store), "sick"))
            return self.reply(500 if sick else 200, {"ok": not sick})
        if self.path == "/api/echo" and self.headers.get("upgrade") == "echo":
            # A minimal upgraded protocol: every line comes back prefixed.
            self.send_response(101)
            self.send_header("upgrade", "echo")
            self.send_header("connection", "Upgrade")
            self.end_headers()
            self.wfile.flush()
            for line in self.rfile:
                self.wfile.write(b"echo:" + line)
                self.wfile.flush()
            self.close_connection = True
            return
        if self.path.startswith("/api/items"):
            return self.reply(200, {"items": load(), "version": version, "path": self.path,
                                    "headers": {k.lower(): v for k, v in self.headers.items()}})
        self.reply(404, {"error": "not found"})
    def do_POST(self):
        n = int(self.headers.get("content-length", 0))
        items = load() + [json.loads(self.rfile.read(n))]
        with open(store + ".tmp", "w") as f:
            json.dump(items, f)
        os.replace(store + ".tmp", store)
        self.reply(201, {"items": items})
    def log_message(self, fmt, *args):
        print("request", self.path, flush=True)

print("listening on", os.environ["PORT"], flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

/// Writes a built deployment (as the build side leaves it) under the data dir.
fn make_deployment(data_dir: &Path, project: &str, deployment: &str) {
    let dir = data_dir
        .join("deploy")
        .join(project)
        .join(deployment)
        .join("backend");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("server.py"), SERVER_PY).unwrap();
}

fn start_body(version: &str, tag: &str) -> Value {
    json!({"backend_dir": "backend", "command": format!("exec python3 -u server.py {version} {tag}"),
           "port_env": "PORT", "health_path": "/api/health", "health_timeout_s": 30})
}

/// A tag unique to this test run, so the process scan finds only our backends.
fn tag(name: &str) -> String {
    format!("tag-{name}-{}", std::process::id())
}

/// Host pids of the python processes whose command line carries `tag`.
fn python_pids(tag: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.first().is_some_and(|a| a.contains("python")) && args.iter().any(|a| a == tag) {
            out.push(pid);
        }
    }
    out
}

async fn items(st: &Arc<vm_api::AppState>) -> (StatusCode, Value) {
    call_json(st, "GET", "/projects/p1/live/api/items?q=1", Value::Null).await
}

#[tokio::test]
async fn publish_switch_refuse_a_crashing_candidate_and_recover_from_a_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let st = Arc::new(state(&tmp));
    let data = tmp.path();

    // Nothing live: the proxy answers 503 with a JSON error, the status 404.
    let (s, v) = items(&st).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "no_live_deployment");
    let (s, _) = call_json(&st, "GET", "/projects/p1/deployments/live", Value::Null).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Not built: nothing to start.
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/deployments/d-one/start",
        start_body("one", "x"),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"]["code"], "no_such_deployment");

    make_deployment(data, "p1", "d-one");
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/deployments/d-one/start",
        start_body("one", &tag("one")),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["healthy"], true, "{v}");
    assert_eq!(v["status"], "running");
    // Started is not live.
    let (s, v) = items(&st).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");

    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/deployments/d-one/activate",
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["live"]["deployment"], "d-one");
    assert_eq!(v["live"]["status"], "running");
    assert!(v.get("previous").is_none(), "{v}");
    let root = data.join("deploy/p1");
    assert_eq!(
        std::fs::read_to_string(root.join("keep")).unwrap(),
        "d-one\n"
    );
    let rec: Value =
        serde_json::from_slice(&std::fs::read(root.join("live.json")).unwrap()).unwrap();
    assert_eq!(rec["deployment"], "d-one");
    assert_eq!(rec["spec"]["health_path"], "/api/health");

    // Through the proxy: a POST with a body, then a GET with a query.
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/live/api/items",
        json!({"name": "first"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = items(&st).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["version"], "one");
    assert_eq!(v["items"], json!([{"name": "first"}]));
    assert_eq!(
        v["path"], "/api/items?q=1",
        "the signature's nonce is not forwarded"
    );
    let headers = v["headers"].as_object().unwrap();
    assert!(
        headers.keys().all(|k| !k.starts_with("x-or-")),
        "signing headers reached the backend: {headers:?}"
    );
    assert!(data.join("deploy-data/p1/items.json").is_file());
    // The status never shows the port.
    let (s, v) = call_json(&st, "GET", "/projects/p1/deployments/live", Value::Null).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["deployment"], "d-one");
    assert!(v.get("port").is_none(), "{v}");

    // A second deployment: the data is still there, the first backend is stopped.
    make_deployment(data, "p1", "d-two");
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/deployments/d-two/start",
        start_body("two", &tag("two")),
    )
    .await;
    assert_eq!((s, &v["healthy"]), (StatusCode::OK, &json!(true)), "{v}");
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/deployments/d-two/activate",
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["previous"], "d-one");
    let (s, v) = items(&st).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["version"], "two");
    assert_eq!(v["items"], json!([{"name": "first"}]));
    assert!(
        python_pids(&tag("one")).is_empty(),
        "the first backend still runs"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("keep")).unwrap(),
        "d-two\n"
    );

    // A candidate that crashes at start is reported, stopped, and can never go live.
    make_deployment(data, "p1", "d-bad");
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/deployments/d-bad/start",
        start_body("crash", &tag("bad")),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["healthy"], false, "{v}");
    assert_eq!(v["status"], "exited");
    assert!(v["error"].as_str().unwrap().contains("exited"), "{v}");
    assert!(
        v["last_lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("boom")),
        "{v}"
    );
    let (s, v) = call_json(
        &st,
        "GET",
        "/projects/p1/deployments/d-bad/logs?tail=5",
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["lines"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["line"].as_str().unwrap().contains("boom")));
    // Followed: the same lines as NDJSON, then its end.
    let (s, body) = call(
        &st,
        "GET",
        "/projects/p1/deployments/d-bad/logs?tail=5&follow=1",
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let events = ndjson(&body);
    assert!(events
        .iter()
        .any(|e| e["type"] == "log" && e["line"].as_str().unwrap().contains("boom")));
    assert_eq!(events.last().unwrap()["type"], "exit", "{events:?}");
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/deployments/d-bad/activate",
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "deployment_not_healthy");
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/deployments/d-nope/activate",
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "deployment_not_started");
    let (s, v) = items(&st).await;
    assert_eq!((s, &v["version"]), (StatusCode::OK, &json!("two")), "{v}");
    assert_eq!(
        std::fs::read_to_string(root.join("keep")).unwrap(),
        "d-two\n"
    );

    // Killed from outside: the supervisor brings it back, with the same data.
    let pids = python_pids(&tag("two"));
    assert_eq!(pids.len(), 1, "{pids:?}");
    let pid = rustix::process::Pid::from_raw(pids[0]).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    let mut recovered = None;
    for _ in 0..300 {
        let (_, status) = call_json(&st, "GET", "/projects/p1/deployments/live", Value::Null).await;
        if status["restarts"].as_u64() >= Some(1) && status["status"] == "running" {
            let (s, v) = items(&st).await;
            if s == StatusCode::OK {
                recovered = Some(v);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v = recovered.expect("the killed backend came back");
    assert_eq!(v["items"], json!([{"name": "first"}]));
    let new_pids = python_pids(&tag("two"));
    assert_eq!(new_pids.len(), 1);
    assert_ne!(new_pids, pids);
    let (_, logs) = call_json(
        &st,
        "GET",
        "/projects/p1/deployments/d-two/logs?tail=200",
        Value::Null,
    )
    .await;
    assert!(
        // bwrap reports its child's SIGKILL as exit code 128 + 9.
        logs["lines"].as_array().unwrap().iter().any(|l| {
            let line = l["line"].as_str().unwrap();
            line == "[process exited with code 137]" || line == "[process killed by signal 9]"
        }),
        "{logs}"
    );

    // Unpublish: nothing live, the backend stopped, the data kept.
    let (s, v) = call_json(&st, "DELETE", "/projects/p1/deployments/live", Value::Null).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["stopped"], "d-two");
    let (s, v) = items(&st).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "no_live_deployment");
    assert!(python_pids(&tag("two")).is_empty());
    assert!(!root.join("live.json").exists());
    assert!(data.join("deploy-data/p1/items.json").is_file());
    let (s, _) = call_json(&st, "DELETE", "/projects/p1/deployments/live", Value::Null).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    st.shutdown().await;
}

#[tokio::test]
async fn bad_ids_and_paths_are_400_and_unsigned_requests_401() {
    let tmp = tempfile::tempdir().unwrap();
    let st = Arc::new(state(&tmp));
    make_deployment(tmp.path(), "p1", "d-one");
    for (path, code) in [
        (
            "/projects/p1/deployments/D-ONE/start",
            "invalid_deployment_id",
        ),
        (
            "/projects/p1/deployments/one/start",
            "invalid_deployment_id",
        ),
        ("/projects/p1/deployments/d-/start", "invalid_deployment_id"),
        (
            "/projects/p1/deployments/%2e%2e/start",
            "invalid_deployment_id",
        ),
        (
            "/projects/p1/deployments/d-a_b/start",
            "invalid_deployment_id",
        ),
        (
            "/projects/P_1/deployments/d-one/start",
            "invalid_project_id",
        ),
    ] {
        let (s, v) = call_json(&st, "POST", path, start_body("one", "x")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {v}");
        assert_eq!(v["error"]["code"], code, "{path}");
    }
    for dir in ["../d-one", "backend/../../x", "/etc"] {
        let mut body = start_body("one", "x");
        body["backend_dir"] = json!(dir);
        let (s, v) = call_json(&st, "POST", "/projects/p1/deployments/d-one/start", body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{dir}: {v}");
        assert_eq!(v["error"]["code"], "invalid_backend_dir");
    }
    let mut body = start_body("one", "x");
    body["backend_dir"] = json!("missing");
    let (s, v) = call_json(&st, "POST", "/projects/p1/deployments/d-one/start", body).await;
    assert_eq!(
        (s, &v["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_backend_dir"))
    );
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/deployments/d-one/start",
        json!({"command": "x", "port": 1}),
    )
    .await;
    assert_eq!(
        (s, &v["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_json"))
    );
    let (s, _) = call_json(
        &st,
        "GET",
        "/projects/p1/deployments/d-x_y/logs",
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    use tower::ServiceExt;
    for (method, path) in [
        ("POST", "/projects/p1/deployments/d-one/start"),
        ("POST", "/projects/p1/deployments/d-one/activate"),
        ("POST", "/projects/p1/deployments/d-one/stop"),
        ("GET", "/projects/p1/deployments/live"),
        ("DELETE", "/projects/p1/deployments/live"),
        ("GET", "/projects/p1/deployments/d-one/logs"),
        ("GET", "/projects/p1/live/api/items"),
        ("POST", "/projects/p1/live"),
    ] {
        let req = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .body(axum::body::Body::from(start_body("one", "x").to_string()))
            .unwrap();
        let resp = vm_api::app(st.clone()).oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    assert!(
        !tmp.path().join("deploy-data").exists(),
        "no refused request created anything"
    );
}

/// The real binary, stopped with SIGTERM (or killed when a test fails).
struct Service {
    child: Option<std::process::Child>,
    addr: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Service {
    /// Starts `vm-api` (the default, hardened sandbox) on free loopback ports over `data`.
    fn start(data: &Path) -> Service {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vm-api"))
            .args(["--host", "127.0.0.1", "--port", "0", "--preview-port", "0"])
            // The reaper sweeps every second: it must leave the live backend alone.
            .args(["--project-idle-secs", "1"])
            .arg("--data-dir")
            .arg(data)
            .env("VM_API_SECRET", std::str::from_utf8(SECRET).unwrap())
            .env("RUST_LOG", "vm_api=info")
            .env("NO_COLOR", "1")
            .env_remove("AZURE_STORAGE_CONNECTION_STRING")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("service printed its address").unwrap();
            if let Some(rest) = line.split("addr=").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Service {
            child: Some(child),
            addr,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let path = vm_api::auth::with_nonce(path);
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let mut rb = reqwest::Client::new()
            .request(
                method.parse().unwrap(),
                format!("http://{}{path}", self.addr),
            )
            .body(bytes.clone());
        for (k, v) in vm_api::signed_headers(SECRET, method, &path, &bytes) {
            rb = rb.header(k, v);
        }
        let resp = rb.send().await.unwrap();
        let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    /// SIGTERM, then waits for the exit.
    async fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "{status:?}");
    }
}

#[tokio::test]
async fn the_live_backend_and_its_data_survive_a_restart_of_the_vm_api() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().canonicalize().unwrap();
    make_deployment(&data, "p1", "d-one");
    let t = tag("restart");

    let svc = Service::start(&data);
    let (s, v) = svc
        .call(
            "POST",
            "/projects/p1/deployments/d-one/start",
            start_body("one", &t),
        )
        .await;
    assert_eq!((s, &v["healthy"]), (StatusCode::OK, &json!(true)), "{v}");
    let (s, v) = svc
        .call(
            "POST",
            "/projects/p1/deployments/d-one/activate",
            Value::Null,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = svc
        .call(
            "POST",
            "/projects/p1/live/api/items",
            json!({"name": "kept"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // The idle reaper takes the project (its activity is forgotten; the published app's
    // traffic is not use) and leaves the backend and the network namespace it lives in.
    let mut reaped = false;
    for _ in 0..300 {
        let (s, v) = svc
            .call("GET", "/projects/p1/host-status", Value::Null)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if v.get("idle_ms").is_none_or(|i| i.is_null()) {
            assert_eq!(v["network"], true, "{v}");
            reaped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reaped, "the reaper never took the idle project");
    let (s, v) = svc
        .call("GET", "/projects/p1/live/api/items", Value::Null)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["items"], json!([{"name": "kept"}]));
    // The hardened sandbox runs the backend as the project's own uid: it owns the data it wrote.
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(data.join("deploy-data/p1/items.json"))
        .unwrap()
        .uid();
    assert!(owner >= 1_000_000_000, "items.json is owned by uid {owner}");
    // Unsigned through the real socket: refused by the middleware.
    let unsigned = reqwest::get(format!("http://{}/projects/p1/live/api/items", svc.addr))
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);

    // Shutdown stops the backend's process group with the service.
    svc.stop().await;
    assert!(
        python_pids(&t).is_empty(),
        "the backend outlived the VM API"
    );

    // The next start brings the live deployment back by itself, with its data.
    let svc = Service::start(&data);
    let mut back = None;
    for _ in 0..600 {
        let (s, v) = svc
            .call("GET", "/projects/p1/live/api/items", Value::Null)
            .await;
        if s == StatusCode::OK {
            back = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v = back.expect("the live deployment came back after the restart");
    assert_eq!(v["items"], json!([{"name": "kept"}]));
    assert_eq!(v["version"], "one");
    // `restarting` until its health path answered, then `running`, not counted as a restart.
    let mut status = Value::Null;
    for _ in 0..300 {
        let (s, v) = svc
            .call("GET", "/projects/p1/deployments/live", Value::Null)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        status = v;
        if status["status"] == "running" {
            break;
        }
        assert_eq!(status["status"], "restarting", "{status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status["status"], "running", "{status}");
    assert_eq!(status["deployment"], "d-one");
    assert_eq!(status["restarts"], 0);
    svc.stop().await;
    assert!(python_pids(&t).is_empty());
}

#[tokio::test]
async fn restore_starts_recorded_backends_and_reports_what_cannot_start() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path();
    let t = tag("restore");
    make_deployment(data, "p1", "d-one");
    let record = |deployment: &str, body: Value| {
        json!({"deployment": deployment, "spec": body, "activated_at": 1}).to_string()
    };
    for (project, text) in [
        ("p1", record("d-one", start_body("one", &t))),
        // Its build was deleted: reported, never fatal.
        ("p2", record("d-gone", start_body("one", "x"))),
        ("p3", "{not json".to_string()),
    ] {
        let root = data.join("deploy").join(project);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("live.json"), text).unwrap();
    }
    let st = Arc::new(state(&tmp));
    vm_api::deploy_service::restore(st.clone());

    let mut back = false;
    for _ in 0..300 {
        if items(&st).await.0 == StatusCode::OK {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "p1's live deployment was not restored");
    let mut crashed = None;
    for _ in 0..300 {
        let (s, v) = call_json(&st, "GET", "/projects/p2/deployments/live", Value::Null).await;
        if s == StatusCode::OK && v["status"] == "crashed" {
            crashed = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v = crashed.expect("the missing deployment shows as crashed");
    assert!(v["error"].as_str().unwrap().contains("missing"), "{v}");
    assert!(
        !data.join("deploy/p2/d-gone").exists(),
        "nothing made it up"
    );
    let (s, _) = call_json(&st, "GET", "/projects/p3/deployments/live", Value::Null).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A started candidate that is not live can be stopped (the live one cannot be, that way).
    make_deployment(data, "p1", "d-two");
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/deployments/d-two/start",
        start_body("two", &tag("cand")),
    )
    .await;
    assert_eq!((s, &v["healthy"]), (StatusCode::OK, &json!(true)), "{v}");
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/deployments/d-two/stop",
        Value::Null,
    )
    .await;
    assert_eq!(
        (s, &v["status"]),
        (StatusCode::OK, &json!("stopped")),
        "{v}"
    );
    assert!(python_pids(&tag("cand")).is_empty());
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/deployments/d-two/activate",
        Value::Null,
    )
    .await;
    assert_eq!(
        (s, &v["error"]["code"]),
        (StatusCode::CONFLICT, &json!("deployment_not_healthy"))
    );
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/deployments/d-one/stop",
        Value::Null,
    )
    .await;
    assert_eq!(
        (s, &v["error"]["code"]),
        (StatusCode::CONFLICT, &json!("deployment_live"))
    );
    let (s, v) = items(&st).await;
    assert_eq!((s, &v["version"]), (StatusCode::OK, &json!("one")));
    st.shutdown().await;
    assert!(
        python_pids(&t).is_empty(),
        "shutdown stopped the live backend"
    );
}

#[tokio::test]
async fn a_restart_that_never_answers_its_health_path_is_stopped_and_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let st = Arc::new(state(&tmp));
    let t = tag("sick");
    make_deployment(tmp.path(), "p1", "d-one");
    let mut body = start_body("one", &t);
    body["health_timeout_s"] = json!(2);
    let (s, v) = call_json(&st, "POST", "/projects/p1/deployments/d-one/start", body).await;
    assert_eq!((s, &v["healthy"]), (StatusCode::OK, &json!(true)), "{v}");
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/deployments/d-one/activate",
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // From now on the health path answers 500; the backend is killed.
    let sick = tmp.path().join("deploy-data/p1/sick");
    std::fs::write(&sick, "").unwrap();
    let pids = python_pids(&t);
    assert_eq!(pids.len(), 1);
    let pid = rustix::process::Pid::from_raw(pids[0]).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    // Each new run fails its health gate: it stays `restarting`, says why, and is run again.
    let mut seen = None;
    for _ in 0..300 {
        let (_, v) = call_json(&st, "GET", "/projects/p1/deployments/live", Value::Null).await;
        // (Until the supervisor saw the exit, the killed run may still show as running.)
        if v["restarts"].as_u64() >= Some(1) {
            assert_ne!(
                v["status"], "running",
                "running while its health path fails: {v}"
            );
        }
        if v["restarts"].as_u64() >= Some(2)
            && v["error"].as_str().is_some_and(|e| e.contains("500"))
        {
            seen = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v = seen.expect("the unhealthy restarts were stopped and retried");
    assert_eq!(v["status"], "restarting", "{v}");

    // Healthy again: the next run goes back to `running`, the error cleared.
    std::fs::remove_file(&sick).unwrap();
    let mut ok = None;
    for _ in 0..600 {
        let (_, v) = call_json(&st, "GET", "/projects/p1/deployments/live", Value::Null).await;
        if v["status"] == "running" {
            ok = Some(v);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v = ok.expect("the backend came back once healthy");
    assert!(v.get("error").is_none(), "{v}");
    let (s, _) = items(&st).await;
    assert_eq!(s, StatusCode::OK);
    st.shutdown().await;
    assert!(python_pids(&t).is_empty());
}

#[tokio::test]
async fn an_upgraded_connection_is_joined_through_to_the_live_backend() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    make_deployment(tmp.path(), "p1", "d-one");
    let (st, api, _) = serve(state(&tmp)).await;
    let t = tag("echo");
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/deployments/d-one/start",
        start_body("one", &t),
    )
    .await;
    assert_eq!((s, &v["healthy"]), (StatusCode::OK, &json!(true)), "{v}");
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/deployments/d-one/activate",
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let path = vm_api::auth::with_nonce("/projects/p1/live/api/echo");
    let mut head =
        format!("GET {path} HTTP/1.1\r\nhost: {api}\r\nconnection: Upgrade\r\nupgrade: echo\r\n");
    for (k, v) in vm_api::signed_headers(SECRET, "GET", &path, b"") {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut sock = BufReader::new(tokio::net::TcpStream::connect(api).await.unwrap());
    sock.get_mut().write_all(head.as_bytes()).await.unwrap();
    let mut status = String::new();
    sock.read_line(&mut status).await.unwrap();
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    loop {
        let mut line = String::new();
        sock.read_line(&mut line).await.unwrap();
        if line == "\r\n" {
            break;
        }
    }
    for word in ["hello", "again"] {
        sock.get_mut()
            .write_all(format!("{word}\n").as_bytes())
            .await
            .unwrap();
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(10), sock.read_line(&mut line))
            .await
            .expect("the echo came back")
            .unwrap();
        assert_eq!(line, format!("echo:{word}\n"));
    }
    drop(sock);
    st.shutdown().await;
    assert!(python_pids(&t).is_empty());
}

#[tokio::test]
async fn a_full_host_refuses_the_start_with_429_and_keeps_no_candidate() {
    let tmp = tempfile::tempdir().unwrap();
    make_deployment(tmp.path(), "p1", "d-one");
    let mut st = state(&tmp);
    st.admission = vm_api::admission::Admission::new(vm_api::admission::Caps {
        dev_servers: 0,
        ..Default::default()
    });
    let st = Arc::new(st);
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/deployments/d-one/start",
        start_body("one", "x"),
    )
    .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(v["error"]["code"], "too_many_dev_servers");
    let (s, v) = call_json(
        &st,
        "GET",
        "/projects/p1/deployments/d-one/logs",
        Value::Null,
    )
    .await;
    assert_eq!(
        (s, &v["error"]["code"]),
        (StatusCode::NOT_FOUND, &json!("no_such_deployment"))
    );
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/p1/deployments/d-one/activate",
        Value::Null,
    )
    .await;
    assert_eq!(
        (s, &v["error"]["code"]),
        (StatusCode::CONFLICT, &json!("deployment_not_started"))
    );
}
