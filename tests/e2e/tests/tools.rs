//! The agent's tools end to end: scripted model turns against the real stack (wrangler dev,
//! Azurite, the VM API with bubblewrap and headless Chromium), checking the tool results the
//! model receives: read_file's numbered ranges, edit_file's fallbacks and ambiguity error,
//! search over the VM's working copy, read_docs from the template's docs, read_logs, and
//! check_preview on a page that throws on load.

use e2e::llm::Reply;
use e2e::stack::{Options, Stack};
use e2e::ws::ProjectSocket;
use serde_json::json;

fn opts() -> Options {
    Options {
        with_llm: true,
        llm_as_fallback: false,
        quiet_requests: false,
        vars: vec![
            ("AGENT_MAX_STEPS".into(), "12".into()),
            ("VERIFY_FIX_ROUNDS".into(), "0".into()),
        ],
    }
}

/// Runs one turn and returns every tool result the model received, in order.
async fn turn(stack: &Stack, id: &str, text: &str) -> Vec<String> {
    let (mut ws, _) = ProjectSocket::connect(&stack.worker_url, id, None)
        .await
        .unwrap();
    ws.send(&json!({"type": "user_message", "text": text}))
        .await
        .unwrap();
    let (fin, _) = ws.until("turn_finished").await.unwrap();
    assert_eq!(fin["end"], "done", "{fin}");
    let rec = stack.llm.as_ref().unwrap().recorded();
    rec.last().unwrap().body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap().to_string())
        .collect()
}

const NOTES: &str = "class Notes:\n    def add(self, text):   \n        return text\n\n    def count(self):\n        return 0\n";

#[tokio::test]
async fn file_tools_search_docs_and_logs_give_the_model_what_it_needs() {
    let stack = Stack::start(opts()).await.unwrap();
    let llm = stack.llm.as_ref().unwrap();
    let id = stack.create_project("tools", "backend").await.unwrap();
    llm.push(Reply::tool_calls(
        None,
        &[
            (
                "write_file",
                json!({"path": "app/notes.py", "content": NOTES}),
            ),
            (
                "read_file",
                json!({"path": "app/notes.py", "start_line": 2, "end_line": 3}),
            ),
        ],
    ));
    llm.push(Reply::tool_calls(
        None,
        &[
            // Written without the class's indentation and without the trailing spaces.
            (
                "edit_file",
                json!({"path": "app/notes.py", "edits": [{"search": "def add(self, text):\n    return text", "replace": "def add(self, text):\n    return text.strip()"}]}),
            ),
            // The second edit's text is in both methods (after the first edit): nothing applies.
            (
                "edit_file",
                json!({"path": "app/notes.py", "edits": [{"search": "return 0", "replace": "return 1"}, {"search": "return", "replace": "yield"}]}),
            ),
            ("read_file", json!({"path": "app/notes.py"})),
        ],
    ));
    llm.push(Reply::tool_calls(
        None,
        &[
            (
                "search",
                json!({"pattern": "def \\w+_items?\\(", "glob": "*.py"}),
            ),
            (
                "search",
                json!({"pattern": "TEXT\\.STRIP", "ignore_case": true, "path": "app"}),
            ),
            ("search", json!({"pattern": "def (", "path": "app"})),
        ],
    ));
    llm.push(Reply::tool_calls(
        None,
        &[
            ("read_docs", json!({})),
            ("read_docs", json!({"name": "docs/backend.md"})),
            ("read_docs", json!({"name": "app/main.py"})),
            ("read_logs", json!({})),
            ("check_preview", json!({})),
            ("publish", json!({})),
        ],
    ));
    llm.push(Reply::text("done"));
    let r = turn(&stack, &id, "use the tools").await;
    assert_eq!(r.len(), 14, "{r:#?}");

    assert_eq!(
        r[0],
        format!("created app/notes.py ({} bytes)", NOTES.len())
    );
    assert_eq!(
        r[1],
        "app/notes.py: lines 2-3 of 6 (more after; start_line=4 reads on)\n\
         2\t    def add(self, text):   \n3\t        return text"
    );
    assert_eq!(
        r[2],
        "edited app/notes.py: 1 edit(s) applied (edit 1 ignoring indentation)"
    );
    assert!(
        r[3].starts_with("error") && r[3].contains("edit 2 of 2") && r[3].contains("at lines 3, 6"),
        "the ambiguity names the lines: {}",
        r[3]
    );
    // Nothing of the failed call was applied; the indentation fallback re-indented its edit.
    assert!(
        r[4].contains("2\t    def add(self, text):\n3\t        return text.strip()\n"),
        "{}",
        r[4]
    );
    assert!(r[4].contains("6\t        return 0"), "{}", r[4]);

    // Search runs on the VM's copy, which has the turn's unsaved edit.
    assert!(r[5].contains("app/main.py:"), "{}", r[5]);
    assert!(r[5].contains(": def list_items("), "{}", r[5]);
    assert_eq!(r[6], "app/notes.py:3:         return text.strip()");
    assert!(
        r[7].starts_with("error") && r[7].contains("unclosed group"),
        "{}",
        r[7]
    );

    assert_eq!(
        r[8],
        "docs/backend.md: Backend: FastAPI + SQLite (Python 3.11)"
    );
    assert!(r[9].contains("APIRouter(prefix=\"/api\")"), "{}", r[9]);
    assert!(
        r[10].starts_with("error") && r[10].contains("docs/backend.md"),
        "{}",
        r[10]
    );
    assert_eq!(
        r[11],
        "no dev servers have been started; call start_preview"
    );
    assert!(
        r[12].starts_with("error") && r[12].contains("start_preview"),
        "{}",
        r[12]
    );

    // `publish` publishes the turn's checkpoint once the turn is over: an API-only app, whose
    // backend answers every path of its host.
    assert!(r[13].starts_with("Publishing is scheduled"), "{}", r[13]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let d = loop {
        let (_, list) = stack
            .get_json(&format!("/projects/{id}/deployments"))
            .await
            .unwrap();
        let d = list["deployments"][0].clone();
        if d["status"] == "live" || d["status"] == "failed" {
            assert_eq!(list["slug"], "tools", "{list}");
            break d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no publish ended: {list}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert_eq!(d["status"], "live", "{d}");
    assert_eq!(d["by"], "agent", "{d}");
    assert_eq!(d["checkpoint"], 2, "the turn's own checkpoint: {d}");
    assert_eq!(d["backend"], true, "{d}");
    assert!(d.get("site").is_none(), "no static site: {d}");
    let port: u16 = stack
        .worker_url
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let client = reqwest::Client::builder()
        .resolve("tools.apps.localhost", ([127, 0, 0, 1], port).into())
        .build()
        .unwrap();
    let health = client
        .get(format!("{}api/health", stack.app_url("tools")))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let docs = client
        .get(format!("{}docs", stack.app_url("tools")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        docs.status(),
        200,
        "FastAPI's docs are served by the backend"
    );
}

const THROWS_ON_LOAD: &str = r#"type Todo = { id: number; title: string }

export default function App() {
  console.error('about to render todos')
  const todos = (window as unknown as { seedTodos: Todo[] }).seedTodos
  return <p>{todos.length} todos</p>
}
"#;

#[tokio::test]
async fn check_preview_and_read_logs_see_an_app_that_throws_on_load() {
    let stack = Stack::start(opts()).await.unwrap();
    let llm = stack.llm.as_ref().unwrap();
    let id = stack.create_project("throws", "frontend").await.unwrap();
    llm.push(Reply::tool_calls(
        None,
        &[
            (
                "write_file",
                json!({"path": "src/App.tsx", "content": THROWS_ON_LOAD}),
            ),
            ("start_preview", json!({})),
        ],
    ));
    llm.push(Reply::tool_calls(
        None,
        &[
            ("check_preview", json!({})),
            ("read_logs", json!({"process": "web", "lines": 30})),
            ("read_logs", json!({"process": "db"})),
        ],
    ));
    llm.push(Reply::text("seen"));
    let r = turn(&stack, &id, "build it").await;
    assert_eq!(r.len(), 5, "{r:#?}");
    let check = &r[2];
    assert!(check.contains(" → HTTP 200, the page loaded"), "{check}");
    assert!(check.contains("problem(s):"), "{check}");
    assert!(
        check.contains("[exception]") && check.contains("reading 'length'"),
        "the uncaught TypeError: {check}"
    );
    assert!(check.contains("[console] about to render todos"), "{check}");
    assert!(
        !check.contains("or_token"),
        "no credentials reach the model: {check}"
    );
    let logs = &r[3];
    assert!(logs.starts_with("== web: running, port "), "{logs}");
    assert!(
        r[4].starts_with("error") && r[4].contains("the processes are: web"),
        "{}",
        r[4]
    );
}
