//! The vault, "push to GitHub" and deploys to Modal and Netlify (issue 17), against the real
//! stack. GitHub, Modal and Netlify cannot be reached from here: GitHub's REST API is a fake that
//! checks GitHub's documented shapes and creates repositories on a real `git http-backend`;
//! Modal's CLI is a script that checks what `modal deploy` is given and prints what it prints;
//! Netlify's API is a fake that checks each request of the file-digest deploy. Every secret is
//! a canary looked for, at the end, in every log of the stack, every event and every answer.

use e2e::github::FakeGithub;
use e2e::gitserver::GitServer;
use e2e::netlify::FakeNetlify;
use e2e::stack::{Options, Stack};
use e2e::ws::ProjectSocket;
use serde_json::{json, Value};
use std::sync::Mutex;
use std::time::Duration;

const GH_TOKEN: &str = "ghp_canaryGithubToken0123456789abcd";
const MODAL_ID: &str = "ak-canaryModalTokenId0123456789";
const MODAL_SECRET: &str = "as-canaryModalTokenSecret0123456789";
const NETLIFY_TOKEN: &str = "nfp_canaryNetlifyToken0123456789";
const APP_SECRET: &str = "canary-app-runtime-secret-8c1d42";
const WRONG_SECRET: &str = "as-canaryWrongModalSecret987654321";
const CANARIES: &[&str] = &[
    GH_TOKEN,
    MODAL_ID,
    MODAL_SECRET,
    NETLIFY_TOKEN,
    APP_SECRET,
    WRONG_SECRET,
];

/// A WebSocket endpoint the published backend gets (uvicorn serves WebSockets with the
/// template's `websockets` package).
const WS_ECHO: &str = r#"from fastapi import WebSocket, WebSocketDisconnect


@app.websocket("/api/ws")
async def _echo(ws: WebSocket) -> None:
    await ws.accept()
    try:
        while True:
            await ws.send_text("echo:" + await ws.receive_text())
    except WebSocketDisconnect:
        pass
"#;

fn sha(s: &str) -> String {
    open_replit_core::vm_auth::sha256_hex(s.as_bytes())
}

/// Calls the Worker and keeps every answer's text for the canary check.
struct Api<'a> {
    stack: &'a Stack,
    seen: Mutex<String>,
}

impl Api<'_> {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut rb = self
            .stack
            .http
            .request(method, format!("{}{path}", self.stack.worker_url))
            .timeout(Duration::from_secs(900));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        self.seen.lock().unwrap().push_str(&text);
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn put_secret(&self, path: &str, value: &str) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, Some(json!({ "value": value })))
            .await
    }

    async fn put_file(&self, id: &str, path: &str, body: &str) {
        let r = self
            .stack
            .http
            .put(format!(
                "{}/projects/{id}/files/{path}",
                self.stack.worker_url
            ))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }

    async fn file(&self, id: &str, path: &str) -> String {
        let r = self
            .stack
            .http
            .get(format!(
                "{}/projects/{id}/files/{path}",
                self.stack.worker_url
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    }
}

/// GET `url` on a `*.localhost` host of this machine.
async fn get_host(url: &str, port: u16, cookie: Option<&str>) -> (u16, String) {
    let host = url
        .split("//")
        .nth(1)
        .unwrap()
        .split([':', '/'])
        .next()
        .unwrap();
    let client = reqwest::Client::builder()
        .resolve(host, ([127, 0, 0, 1], port).into())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut rb = client.get(url);
    if let Some(c) = cookie {
        rb = rb.header("cookie", c);
    }
    let r = rb.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

// Several threads: the fakes and the git server answer while the test waits on the stack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_push_to_github_and_deploy_to_modal_and_netlify() {
    let git = GitServer::start(GH_TOKEN).await.unwrap();
    let github = FakeGithub::start_with_repos(&git).await.unwrap();
    let netlify = FakeNetlify::start(NETLIFY_TOKEN).await.unwrap();
    let opts = Options {
        vars: vec![
            ("GITHUB_API_URL".into(), github.url.clone()),
            ("NETLIFY_API_URL".into(), netlify.url.clone()),
            (
                "MODAL_DEPLOY_COMMAND".into(),
                "python3 fake_modal.py deploy modal_app.py".into(),
            ),
            (
                "KEY_ENCRYPTION_SECRET".into(),
                "e2e-key-encryption-secret-0123456789".into(),
            ),
        ],
        ..Default::default()
    };
    let stack = Stack::start_with_vm_args(opts, &["--git-private-remotes"])
        .await
        .unwrap();
    let api = Api {
        stack: &stack,
        seen: Mutex::new(String::new()),
    };

    // ---- The person's vault: deploy credentials, names only on the way back ----
    let (s, v) = api.get("/api/vault").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["secrets"], json!([]));
    assert_eq!(v["known"].as_array().unwrap().len(), 4, "{v}");
    let (s, v) = api
        .put_secret("/api/vault/STRIPE_KEY", "sk_test_123456")
        .await;
    assert_eq!(s, 400, "only deploy credentials: {v}");
    let (s, v) = api
        .call(
            reqwest::Method::PUT,
            "/api/vault/GITHUB_TOKEN",
            Some(json!({"val": 1})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    for (name, value) in [
        ("GITHUB_TOKEN", GH_TOKEN),
        ("MODAL_TOKEN_ID", MODAL_ID),
        ("MODAL_TOKEN_SECRET", MODAL_SECRET),
        ("NETLIFY_AUTH_TOKEN", NETLIFY_TOKEN),
    ] {
        let (s, v) = api.put_secret(&format!("/api/vault/{name}"), value).await;
        assert_eq!(s, 200, "{v}");
    }
    let (_, v) = api.get("/api/vault").await;
    let names: Vec<&str> = v["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "GITHUB_TOKEN",
            "MODAL_TOKEN_ID",
            "MODAL_TOKEN_SECRET",
            "NETLIFY_AUTH_TOKEN"
        ]
    );
    assert_eq!(v["secrets"][0]["last4"], "abcd", "{v}");

    // ---- A project's runtime secrets reach its dev servers, never a command ----
    let id = stack
        .create_project("Shop Front", "fullstack")
        .await
        .unwrap();
    let (s, v) = api
        .put_secret(&format!("/projects/{id}/secrets/APP_CANARY"), APP_SECRET)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["secrets"][0]["name"], "APP_CANARY");
    let (s, _) = api
        .put_secret(&format!("/projects/{id}/secrets/PATH"), "/tmp")
        .await;
    assert_eq!(s, 400, "a platform name cannot be shadowed");
    let main = api.file(&id, "backend/app/main.py").await;
    api.put_file(
        &id,
        "backend/app/main.py",
        &format!(
            "{main}\n\n@app.get(\"/api/secret-hash\")\ndef _secret_hash() -> dict[str, str]:\n    \
             import hashlib\n\n    return {{\"sha256\": hashlib.sha256(os.environ.get(\"APP_CANARY\", \"\").encode()).hexdigest()}}\n\n\n{WS_ECHO}"
        ),
    )
    .await;
    let fake_modal =
        std::fs::read_to_string(e2e::repo_root().join("tests/e2e/fixtures/fake_modal.py"))
            .unwrap()
            .replace("@@ID_SHA256@@", &sha(MODAL_ID))
            .replace("@@SECRET_SHA256@@", &sha(MODAL_SECRET))
            .replace("@@FORBIDDEN@@", "GITHUB_TOKEN,NETLIFY_AUTH_TOKEN")
            .replace(
                "@@APP_SECRETS@@",
                &format!("APP_CANARY:{}", sha(APP_SECRET)),
            );
    // The first deploy's backend allows any origin (the Netlify site does not exist yet).
    api.put_file(
        &id,
        "backend/fake_modal.py",
        &fake_modal.replace("@@CORS@@", "*"),
    )
    .await;

    let (s, preview) = api
        .post(&format!("/projects/{id}/preview/start"), json!({}))
        .await;
    assert_eq!(s, 200, "{preview}");
    let token = preview["url"]
        .as_str()
        .unwrap()
        .split("or_token=")
        .nth(1)
        .unwrap()
        .to_string();
    let (s, body) = get_host(
        &format!(
            "http://{id}.preview.localhost:{}/api/secret-hash",
            stack.preview_port
        ),
        stack.preview_port,
        Some(&format!("or_preview={token}")),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert!(
        body.contains(&sha(APP_SECRET)),
        "the dev server has the secret: {body}"
    );
    let r = stack
        .http
        .post(format!("{}/projects/{id}/terminal", stack.worker_url))
        .json(&json!({"command": "env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c APP_CANARY || true"}))
        .send()
        .await
        .unwrap();
    let out = r.text().await.unwrap();
    api.seen.lock().unwrap().push_str(&out);
    assert!(out.contains("\"exit_code\":0"), "{out}");
    assert!(
        !out.contains("APP_CANARY="),
        "a command sees no runtime secret: {out}"
    );

    // The published backend has it too.
    let (s, d) = api
        .post(&format!("/projects/{id}/deployments"), json!({}))
        .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["status"], "live", "{d}");
    let port: u16 = stack
        .worker_url
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (s, body) = get_host(
        &format!("{}api/secret-hash", stack.app_url("shop-front")),
        port,
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert!(
        body.contains(&sha(APP_SECRET)),
        "the deployment has the secret: {body}"
    );
    // A WebSocket through the app's host reaches the published backend and back.
    {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
        let req = format!(
            "{}api/ws",
            stack.app_url("shop-front").replacen("http://", "ws://", 1)
        )
        .into_client_request()
        .unwrap();
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (mut ws, _) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
        ws.send(Message::Text("ping".into())).await.unwrap();
        let m = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("an answer within 20 s")
            .unwrap()
            .unwrap();
        assert_eq!(m.into_text().unwrap().as_str(), "echo:ping");
        let _ = ws.close(None).await;
    }

    // ---- Push to GitHub: the repository is created, then the history pushed ----
    let (s, v) = api
        .post(&format!("/projects/{id}/git/github"), json!({}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["created"], true, "{v}");
    assert_eq!(v["repo"]["full_name"], "Octo-Cat/Shop-Front", "{v}");
    let head = v["push"]["checkpoint"].as_u64().unwrap();
    assert!(head >= 3, "{v}");
    assert_eq!(
        github.repos().get("Shop-Front"),
        Some(&true),
        "private by default"
    );
    let tmp = tempfile::tempdir().unwrap();
    let authed = format!(
        "{}/Octo-Cat/Shop-Front.git",
        git.url
            .replacen("http://", &format!("http://x:{GH_TOKEN}@"), 1)
    );
    let out = std::process::Command::new("git")
        .args(["clone", "-q", &authed, "c"])
        .current_dir(tmp.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::process::Command::new("git")
        .args(["log", "--format=%s"])
        .current_dir(tmp.path().join("c"))
        .output()
        .unwrap();
    let log = String::from_utf8(log.stdout).unwrap();
    assert_eq!(log.lines().count() as u64, head, "{log}");
    assert!(tmp.path().join("c/backend/fake_modal.py").is_file());
    // Again: the repository exists on the account, so it is found and pushed to.
    let (s, v) = api
        .post(
            &format!("/projects/{id}/git/github"),
            json!({"repo": "Shop-Front"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["created"], false, "{v}");
    let (s, v) = api
        .post(
            &format!("/projects/{id}/git/github"),
            json!({"repo": "../etc"}),
        )
        .await;
    assert_eq!(s, 400, "{v}");

    // ---- Modal for the backend, then Netlify for the frontend built against it ----
    let (s, v) = api.get(&format!("/projects/{id}/deploy")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["available"], json!(["modal", "netlify"]));
    let (s, d) = api.post(&format!("/projects/{id}/deploy"), json!({})).await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["status"], "done", "{d}");
    let modal_url = format!("https://e2e-ws--or-{id}-fastapi-app.modal.run");
    assert_eq!(d["targets"][0]["target"], "modal");
    assert_eq!(d["targets"][0]["url"], modal_url.as_str(), "{d}");
    let log = d["log"].to_string();
    assert!(
        log.contains("<secret>"),
        "the echoed token was scrubbed: {log}"
    );
    let site_url = d["targets"][1]["url"].as_str().unwrap().to_string();
    let total = d["targets"][1]["total"].as_u64().unwrap();
    assert_eq!(d["targets"][1]["uploaded"].as_u64(), Some(total), "{d}");
    assert!(total >= 2, "{d}");
    // The deployed frontend calls the Modal backend: VITE_API_URL was set for its build.
    let index = reqwest::get(&site_url).await.unwrap().text().await.unwrap();
    let script = index
        .split("src=\"")
        .find_map(|s| s.split('"').next().filter(|p| p.ends_with(".js")))
        .unwrap_or_else(|| panic!("no script in {index}"))
        .to_string();
    let js = reqwest::get(format!(
        "{}/{}",
        site_url.trim_end_matches('/'),
        script.trim_start_matches('/')
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(js.contains(&modal_url), "the bundle calls {modal_url}");
    assert_eq!(netlify.uploads(), total as usize);
    assert!(
        d["log"]
            .to_string()
            .contains(&format!("read {total} of {total} built files")),
        "the first deploy reads every file: {d}"
    );

    // A change to one file: the next deploy uploads only what Netlify lacks.
    let html = api.file(&id, "frontend/index.html").await;
    let changed = html.replacen("<title>", "<title>Shop · ", 1);
    assert_ne!(changed, html);
    api.put_file(&id, "frontend/index.html", &changed).await;
    let (s, d2) = api
        .post(
            &format!("/projects/{id}/deploy"),
            json!({"targets": ["netlify"]}),
        )
        .await;
    assert_eq!(s, 200, "{d2}");
    assert_eq!(d2["status"], "done", "{d2}");
    assert_eq!(
        d2["targets"][0]["uploaded"], 1,
        "only index.html changed: {d2}"
    );
    assert_eq!(d2["targets"][0]["url"], site_url.as_str(), "the same site");
    // Only the changed file was read from storage: the others' digests were known.
    assert!(
        d2["log"]
            .to_string()
            .contains(&format!("read 1 of {total} built files")),
        "{d2}"
    );
    assert_eq!(netlify.uploads(), total as usize + 1);
    let index = reqwest::get(&site_url).await.unwrap().text().await.unwrap();
    assert!(index.contains("Shop · "), "{index}");

    // The next Modal deploy allows the Netlify site's origin (CORS); a refused Modal token fails
    // that step with Modal's message, and Netlify is not run.
    let origin = site_url.split('/').take(3).collect::<Vec<_>>().join("/");
    api.put_file(
        &id,
        "backend/fake_modal.py",
        &fake_modal.replace("@@CORS@@", &origin),
    )
    .await;
    let (s, d) = api
        .post(
            &format!("/projects/{id}/deploy"),
            json!({"targets": ["modal"]}),
        )
        .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(
        d["status"], "done",
        "CORS_ORIGINS is the site's origin: {d}"
    );
    let (s, _) = api
        .put_secret("/api/vault/MODAL_TOKEN_SECRET", WRONG_SECRET)
        .await;
    assert_eq!(s, 200);
    let (s, d3) = api.post(&format!("/projects/{id}/deploy"), json!({})).await;
    assert_eq!(s, 200, "{d3}");
    assert_eq!(d3["status"], "failed", "{d3}");
    assert_eq!(d3["targets"][0]["status"], "failed");
    assert!(
        d3["targets"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Token validation failed"),
        "{d3}"
    );
    assert_eq!(d3["targets"][1]["status"], "skipped");
    assert_eq!(netlify.uploads(), total as usize + 1, "nothing uploaded");

    // Missing credentials are named before anything runs.
    for (name, path, body) in [
        (
            "NETLIFY_AUTH_TOKEN",
            format!("/projects/{id}/deploy"),
            json!({"targets": ["netlify"]}),
        ),
        (
            "GITHUB_TOKEN",
            format!("/projects/{id}/git/github"),
            json!({}),
        ),
    ] {
        let (s, _) = api
            .call(reqwest::Method::DELETE, &format!("/api/vault/{name}"), None)
            .await;
        assert_eq!(s, 200);
        let (s, v) = api.post(&path, body).await;
        assert_eq!(s, 400, "{v}");
        assert!(v.to_string().contains(name), "{v}");
    }
    let (_, list) = api.get(&format!("/projects/{id}/deploy")).await;
    assert_eq!(list["deploys"].as_array().unwrap().len(), 4, "{list}");
    assert_eq!(list["deploys"][0]["status"], "failed", "newest first");

    assert_eq!(github.problems(), Vec::<String>::new());
    assert_eq!(netlify.problems(), Vec::<String>::new());

    // ---- No canary anywhere: answers, every event of the project, every log ----
    let (mut ws, _) = ProjectSocket::connect(&stack.worker_url, &id, Some(0))
        .await
        .unwrap();
    let events = ws.drain(Duration::from_secs(3)).await;
    assert!(
        events.iter().any(|e| e["type"] == "external_deploy"),
        "deploys are announced"
    );
    let events: String = events.iter().map(|e| e.to_string()).collect();
    let seen = api.seen.lock().unwrap().clone();
    for canary in CANARIES {
        assert!(!seen.contains(canary), "{canary} in an answer");
        assert!(!events.contains(canary), "{canary} in an event");
    }
    for entry in std::fs::read_dir(stack.state.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            for canary in CANARIES {
                assert!(!text.contains(canary), "{canary} is in {}", p.display());
            }
        }
    }
}
