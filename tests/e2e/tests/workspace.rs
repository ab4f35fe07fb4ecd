//! The two-way workspace end to end: what commands change on the VM becomes part of the
//! project. One real stack (wrangler dev, Azurite, the VM API with bubblewrap, the scripted
//! LLM) for every case, since each boots in seconds but the suite runs on 2 cores.

use e2e::llm::Reply;
use e2e::stack::{Options, Stack};
use e2e::ws::ProjectSocket;
use serde_json::{json, Value};
use std::time::Duration;

async fn terminal(stack: &Stack, id: &str, command: &str) -> Vec<Value> {
    let r = stack
        .http
        .post(format!("{}/projects/{id}/terminal", stack.worker_url))
        .json(&json!({ "command": command }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{command}");
    let lines: Vec<Value> = r
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "exit", "{command}: {lines:?}");
    assert_eq!(last["exit_code"], 0, "{command}: {lines:?}");
    lines
}

/// Runs a command on the VM API directly (signed as the Worker signs), without the change scan
/// that every command through the Worker gets; returns its output lines.
async fn vm_exec_unscanned(stack: &Stack, id: &str, command: &str) -> String {
    use open_replit_core::vm_api::ExecRequest;
    let body = serde_json::to_vec(&ExecRequest::new(command, "", 30).unscanned()).unwrap();
    let r = stack
        .vm_call(reqwest::Method::POST, &format!("/projects/{id}/exec"), body)
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{command}");
    r.text().await.unwrap()
}

async fn file(stack: &Stack, id: &str, path: &str) -> Option<String> {
    let r = stack
        .http
        .get(format!("{}/projects/{id}/files/{path}", stack.worker_url))
        .send()
        .await
        .unwrap();
    match r.status().as_u16() {
        200 => Some(r.text().await.unwrap()),
        404 => None,
        s => panic!("GET {path}: {s}"),
    }
}

async fn paths(stack: &Stack, id: &str) -> Vec<String> {
    let (_, v) = stack
        .get_json(&format!("/projects/{id}/files"))
        .await
        .unwrap();
    v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect()
}

async fn head(stack: &Stack, id: &str) -> Value {
    let (_, v) = stack
        .get_json(&format!("/projects/{id}/checkpoints"))
        .await
        .unwrap();
    v["checkpoints"][0].clone()
}

#[tokio::test]
async fn what_commands_change_on_the_vm_becomes_part_of_the_project() {
    let stack = Stack::start(Options {
        with_llm: true,
        llm_as_fallback: false,
        quiet_requests: false,
        vars: vec![
            ("AGENT_MAX_STEPS".into(), "6".into()),
            ("VERIFY_FIX_ROUNDS".into(), "0".into()),
        ],
    })
    .await
    .unwrap();
    let id = stack.create_project("workspace", "backend").await.unwrap();
    let (mut ws, _) = ProjectSocket::connect(&stack.worker_url, &id, None)
        .await
        .unwrap();

    // The terminal: a new file is saved as a checkpoint by `user`, named after the command.
    let lines = terminal(&stack, &id, "echo hi > notes.txt").await;
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "changes" && l["added"][0]["path"] == "notes.txt"),
        "{lines:?}"
    );
    assert_eq!(
        file(&stack, &id, "notes.txt").await.as_deref(),
        Some("hi\n")
    );
    let cp = head(&stack, &id).await;
    assert_eq!(cp["author"], "user", "{cp}");
    assert_eq!(cp["summary"], "$ echo hi > notes.txt", "{cp}");
    let (ev, _) = ws.until("checkpoint_created").await.unwrap();
    assert_eq!(ev["diff"]["added"], json!(["notes.txt"]), "{ev}");

    // Modified, renamed, deleted: each saved, and each survives the next sync (every terminal
    // command syncs the head to the VM first).
    terminal(&stack, &id, "echo more >> notes.txt").await;
    assert_eq!(
        file(&stack, &id, "notes.txt").await.as_deref(),
        Some("hi\nmore\n")
    );
    let out = terminal(&stack, &id, "cat notes.txt").await;
    assert_eq!(out[0]["data"], "hi\nmore\n", "{out:?}");
    terminal(&stack, &id, "mv notes.txt renamed.txt").await;
    let files = paths(&stack, &id).await;
    assert!(files.contains(&"renamed.txt".to_string()), "{files:?}");
    assert!(!files.contains(&"notes.txt".to_string()), "{files:?}");
    terminal(&stack, &id, "rm renamed.txt").await;
    let files = paths(&stack, &id).await;
    assert!(
        !files.iter().any(|f| f == "notes.txt" || f == "renamed.txt"),
        "{files:?}"
    );
    let out = terminal(&stack, &id, "ls").await;
    let listing: String = out.iter().filter_map(|l| l["data"].as_str()).collect();
    assert!(!listing.contains("renamed.txt"), "{listing}");
    assert!(listing.contains("requirements.txt"), "{listing}");

    // Ignored paths (the template's .gitignore: .venv, __pycache__, the database, .env) are
    // never saved: no checkpoint at all.
    let before = head(&stack, &id).await["n"].clone();
    let lines = terminal(
        &stack,
        &id,
        "mkdir -p node_modules/x app/__pycache__ data && echo 1 > node_modules/x/a.js \
         && echo 2 > app/__pycache__/m.pyc && echo 3 > data/app.db && echo K=v > .env",
    )
    .await;
    assert!(
        !lines.iter().any(|l| l["type"] == "changes"),
        "ignored files are not changes: {lines:?}"
    );
    assert_eq!(head(&stack, &id).await["n"], before);

    // A symlink is never saved; people are told so.
    terminal(
        &stack,
        &id,
        "ln -s /etc/passwd link && echo kept > kept.txt",
    )
    .await;
    let files = paths(&stack, &id).await;
    assert!(files.contains(&"kept.txt".to_string()), "{files:?}");
    assert!(!files.contains(&"link".to_string()), "{files:?}");
    let (notice, _) = ws.until("workspace_notice").await.unwrap();
    assert_eq!(notice["skipped"][0]["path"], "link", "{notice}");
    assert_eq!(notice["skipped"][0]["reason"], "symlink", "{notice}");

    // A conflict: the editor saves a file while a command rewrites it. Storage keeps the
    // editor's version; the command's is saved beside it; people see a notice.
    let base = head(&stack, &id).await["n"].as_u64().unwrap();
    let cmd = tokio::spawn({
        let http = stack.http.clone();
        let url = format!("{}/projects/{id}/terminal", stack.worker_url);
        async move {
            http.post(url)
                .json(&json!({"command": "sleep 3 && echo from-the-command > kept.txt"}))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = stack
        .http
        .put(format!(
            "{}/projects/{id}/files/kept.txt?base={base}",
            stack.worker_url
        ))
        .body("from-the-editor\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let out = cmd.await.unwrap();
    assert!(out.contains("\"exit\""), "{out}");
    assert_eq!(
        file(&stack, &id, "kept.txt").await.as_deref(),
        Some("from-the-editor\n")
    );
    assert_eq!(
        file(&stack, &id, "kept.vm-conflict.txt").await.as_deref(),
        Some("from-the-command\n")
    );
    let (notice, _) = ws.until("workspace_notice").await.unwrap();
    assert_eq!(notice["conflicts"][0]["path"], "kept.txt", "{notice}");
    assert_eq!(
        notice["conflicts"][0]["saved_as"], "kept.vm-conflict.txt",
        "{notice}"
    );

    // A sync that removes what was never saved tells the person. A file made on the VM without
    // a scan (as a shell does after its last client left) stands where the editor then saves a
    // folder; the next command's sync makes room for the folder and names the file it removed.
    let made = vm_exec_unscanned(&stack, &id, "echo unsaved > notes && echo made").await;
    assert!(made.contains("made"), "{made}");
    let r = stack
        .http
        .put(format!(
            "{}/projects/{id}/files/notes/today.md",
            stack.worker_url
        ))
        .body("from the editor\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    terminal(&stack, &id, "test -f notes/today.md").await;
    let (notice, _) = ws.until("workspace_notice").await.unwrap();
    assert_eq!(notice["displaced"], json!(["notes"]), "{notice}");
    assert_eq!(
        file(&stack, &id, "notes/today.md").await.as_deref(),
        Some("from the editor\n")
    );

    // In an agent turn, what `run_command` changes joins the turn's checkpoint, and the model
    // is told which files changed.
    let llm = stack.llm.as_ref().unwrap();
    llm.push(Reply::tool_calls(
        None,
        &[(
            "run_command",
            json!({"command": "printf 'generated\\n' > gen.txt && rm kept.vm-conflict.txt"}),
        )],
    ));
    llm.push(Reply::text("generated it"));
    ws.send(&json!({"type": "user_message", "text": "generate"}))
        .await
        .unwrap();
    let (fin, events) = ws.until("turn_finished").await.unwrap();
    assert_eq!(fin["end"], "done", "{fin}");
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "file_changed" && e["path"] == "gen.txt"),
        "{events:?}"
    );
    let result = llm.recorded()[1].last_tool_result();
    assert!(result.contains("added: gen.txt"), "{result}");
    assert!(result.contains("deleted: kept.vm-conflict.txt"), "{result}");
    let n = fin["checkpoint"]
        .as_u64()
        .expect("the turn made a checkpoint");
    assert_eq!(head(&stack, &id).await["n"], n);
    assert_eq!(head(&stack, &id).await["author"], "agent");
    assert_eq!(
        file(&stack, &id, "gen.txt").await.as_deref(),
        Some("generated\n")
    );
    assert_eq!(file(&stack, &id, "kept.vm-conflict.txt").await, None);
    // The export has it too.
    let zip = stack
        .http
        .get(format!("{}/projects/{id}/export.zip", stack.worker_url))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        zip.windows(b"gen.txt".len()).any(|w| w == b"gen.txt"),
        "gen.txt is in the export"
    );

    // A real package install by the agent: package.json and package-lock.json change on the
    // VM, are stored with the turn, and the project rebuilds from storage alone.
    let web = stack.create_project("install", "frontend").await.unwrap();
    let (mut ws, _) = ProjectSocket::connect(&stack.worker_url, &web, None)
        .await
        .unwrap();
    llm.push(Reply::tool_calls(
        None,
        &[(
            "run_command",
            json!({"command": "npm install nanoid@5.0.9 --no-audit --no-fund --loglevel=error", "timeout_s": 300}),
        )],
    ));
    llm.push(Reply::text("installed nanoid"));
    ws.send(&json!({"type": "user_message", "text": "add nanoid"}))
        .await
        .unwrap();
    let (fin, _) = ws.until("turn_finished").await.unwrap();
    assert_eq!(fin["end"], "done", "{fin}");
    let result = llm.recorded().last().unwrap().last_tool_result();
    assert!(result.starts_with("exit code 0"), "{result}");
    assert!(
        result.contains("modified: package-lock.json, package.json")
            || result.contains("modified: package.json, package-lock.json"),
        "{result}"
    );
    assert!(!result.contains("node_modules"), "ignored: {result}");
    let pkg = file(&stack, &web, "package.json").await.unwrap();
    assert!(pkg.contains("\"nanoid\": \"^5.0.9\""), "{pkg}");
    let lock = file(&stack, &web, "package-lock.json").await.unwrap();
    assert!(lock.contains("node_modules/nanoid"), "{lock}");
    // From storage alone: a clean install from the stored lock file has the package.
    let out = terminal(
        &stack,
        &web,
        "rm -rf node_modules && npm ci --no-audit --no-fund --loglevel=error >/dev/null \
         && node -e \"import('nanoid').then(m => console.log('id', m.nanoid().length))\"",
    )
    .await;
    let text: String = out.iter().filter_map(|l| l["data"].as_str()).collect();
    assert!(text.contains("id 21"), "{text}");
}
