//! Agent turns end to end: wrangler dev (Worker + ProjectRoom), Azurite, the VM API and the
//! scripted LLM server playing the real wire format, observed through WebSockets and the
//! recorded requests.

use e2e::llm::{finish, Item, Reply};
use e2e::stack::{Options, Stack};
use e2e::ws::ProjectSocket;
use serde_json::{json, Value};
use std::time::Duration;

fn opts() -> Options {
    Options {
        with_llm: true,
        llm_as_fallback: false,
        quiet_requests: false,
        vars: vec![
            ("AGENT_MAX_STEPS".into(), "6".into()),
            ("VERIFY_FIX_ROUNDS".into(), "0".into()),
        ],
    }
}

async fn project(stack: &Stack, template: &str) -> String {
    stack.create_project("agent test", template).await.unwrap()
}

async fn say(ws: &mut ProjectSocket, text: &str) {
    ws.send(&json!({"type": "user_message", "text": text}))
        .await
        .unwrap();
}

fn text_of(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "assistant_delta")
        .map(|e| e["text"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_turn_with_two_tool_steps_writes_a_checkpoint() {
    let stack = Stack::start(opts()).await.unwrap();
    let llm = stack.llm.as_ref().unwrap();
    let id = project(&stack, "backend").await;
    llm.push(Reply::tool_calls(
        Some("I'll add notes."),
        &[(
            "write_file",
            json!({"path": "NOTES.md", "content": "# Notes\nhello\n"}),
        )],
    ));
    llm.push(Reply::tool_calls(
        None,
        &[
            ("read_file", json!({"path": "NOTES.md"})),
            ("list_files", json!({"path": "app"})),
        ],
    ));
    llm.push(Reply::text("Done: NOTES.md is written."));
    let (mut ws, _) = ProjectSocket::connect(&stack.worker_url, &id, None)
        .await
        .unwrap();
    say(&mut ws, "write some notes").await;
    let (fin, events) = ws.until("turn_finished").await.unwrap();
    assert_eq!(fin["end"], "done", "{fin}");
    assert_eq!(fin["checkpoint"], 2, "{fin}");
    assert_eq!(fin["usage"]["prompt_tokens"], 300);
    assert!(
        (fin["usage"]["cost"].as_f64().unwrap() - 0.00126).abs() < 1e-9,
        "{fin}"
    );
    assert_eq!(
        text_of(&events),
        "I'll add notes.Done: NOTES.md is written."
    );
    let started: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "tool_call_started")
        .collect();
    assert_eq!(
        started
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["write_file", "read_file", "list_files"]
    );
    let finished: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "tool_call_finished")
        .collect();
    assert!(finished.iter().all(|e| e["ok"] == true), "{finished:?}");
    assert!(events
        .iter()
        .any(|e| e["type"] == "file_changed" && e["path"] == "NOTES.md"));
    assert!(events
        .iter()
        .any(|e| e["type"] == "checkpoint_created" && e["checkpoint"]["author"] == "agent"));
    // Seqs are strictly increasing with no gaps.
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .chain([fin["seq"].as_u64().unwrap()])
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");

    // What the model was sent: tools, usage option, the system prompt, then the tool results.
    let rec = llm.recorded();
    assert_eq!(rec.len(), 3);
    let b0 = &rec[0].body;
    assert_eq!(b0["stream"], true);
    assert_eq!(b0["stream_options"]["include_usage"], true);
    assert!(b0["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["function"]["name"] == "edit_file"));
    assert_eq!(b0["messages"][0]["role"], "system");
    // The system prompt is the backend template's: its layout, its checks, no frontend.
    let system = b0["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.contains("The project is the `backend` template")
            && system.contains("\napp/main.py ")
            && system.contains("  - pytest: `.venv/bin/python -m pytest -q`"),
        "{system}"
    );
    assert!(
        !system.contains("frontend/") && !system.contains("src/App.tsx"),
        "{system}"
    );
    let m2 = rec[2].body["messages"].as_array().unwrap();
    let tool_msgs: Vec<&Value> = m2.iter().filter(|m| m["role"] == "tool").collect();
    assert_eq!(tool_msgs.len(), 3);
    assert!(
        tool_msgs[1]["content"].as_str().unwrap().contains("hello"),
        "{:?}",
        tool_msgs[1]
    );
    let asst = m2
        .iter()
        .find(|m| m["role"] == "assistant" && m.get("tool_calls").is_some())
        .unwrap();
    assert_eq!(asst["tool_calls"][0]["function"]["name"], "write_file");

    // The file is in storage at checkpoint 2.
    let body = stack
        .http
        .get(format!("{}/projects/{id}/files/NOTES.md", stack.worker_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "# Notes\nhello\n");
}

#[tokio::test]
async fn rate_limits_retry_and_broken_streams_are_reported() {
    let stack = Stack::start(opts()).await.unwrap();
    let llm = stack.llm.as_ref().unwrap();
    let id = project(&stack, "backend").await;
    let (mut ws, _) = ProjectSocket::connect(&stack.worker_url, &id, None)
        .await
        .unwrap();

    // 429 with Retry-After, then success.
    llm.push(Reply::status(429, Some(1)));
    llm.push(Reply::text("after the wait"));
    say(&mut ws, "hello").await;
    let (fin, events) = ws.until("turn_finished").await.unwrap();
    assert_eq!(fin["end"], "done", "{fin}");
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "status" && e["message"].as_str().unwrap().contains("retrying")),
        "{events:?}"
    );
    assert_eq!(text_of(&events), "after the wait");
    assert_eq!(llm.recorded().len(), 2);

    // A stream cut before anything was shown is retried; the person sees one clean answer.
    llm.push(Reply::Stream(vec![
        Item::Comment("OPENROUTER PROCESSING".into()),
        Item::Cut,
    ]));
    llm.push(Reply::text("second try"));
    say(&mut ws, "again").await;
    let (fin, events) = ws.until("turn_finished").await.unwrap();
    assert_eq!(fin["end"], "done", "{fin}");
    assert_eq!(text_of(&events), "second try");

    // A stream cut after text reached people is reported, not repeated; the partial text stays.
    llm.push(Reply::Stream(vec![
        Item::Text("half an ans".into()),
        Item::Sleep(Duration::from_millis(300)),
        Item::Abort,
    ]));
    say(&mut ws, "break please").await;
    let (fin, events) = ws.until("turn_finished").await.unwrap();
    assert_eq!(fin["end"], "error", "{fin}");
    assert!(
        fin["message"].as_str().unwrap().contains("broke off"),
        "{fin}"
    );
    assert_eq!(text_of(&events), "half an ans");
    // The next turn sees the partial answer in its history.
    llm.push(Reply::text("ok"));
    say(&mut ws, "continue").await;
    ws.until("turn_finished").await.unwrap();
    let last = llm.recorded().pop().unwrap();
    let msgs = last.body["messages"].as_array().unwrap();
    assert!(
        msgs.iter().any(|m| m["role"] == "assistant"
            && m["content"]
                .as_str()
                .is_some_and(|c| c.contains("half an ans"))),
        "{msgs:?}"
    );

    // A 401 is a clear error, never retried.
    let before = llm.recorded().len();
    llm.push(Reply::status(401, None));
    say(&mut ws, "bad key").await;
    let (fin, _) = ws.until("turn_finished").await.unwrap();
    assert_eq!(fin["end"], "error");
    assert_eq!(llm.recorded().len(), before + 1);
}

#[tokio::test]
async fn malformed_arguments_go_back_to_the_model_and_loops_are_capped() {
    let stack = Stack::start(opts()).await.unwrap();
    let llm = stack.llm.as_ref().unwrap();
    let id = project(&stack, "backend").await;
    let (mut ws, _) = ProjectSocket::connect(&stack.worker_url, &id, None)
        .await
        .unwrap();

    let mut items = vec![Item::ToolCall {
        index: 0,
        id: "call_bad".into(),
        name: "write_file".into(),
        arguments: "{\"path\": \"a.txt\", \"content\": ".into(),
        fragment: 5,
    }];
    items.extend(finish("tool_calls"));
    llm.push(Reply::Stream(items));
    llm.push(Reply::tool_calls(
        None,
        &[(
            "write_file",
            json!({"path": "../../etc/passwd", "content": "x"}),
        )],
    ));
    llm.push(Reply::tool_calls(
        None,
        &[("write_file", json!({"path": "a.txt", "content": "fixed"}))],
    ));
    llm.push(Reply::text("fixed it"));
    say(&mut ws, "write a.txt").await;
    let (fin, events) = ws.until("turn_finished").await.unwrap();
    assert_eq!(fin["end"], "done", "{fin}");
    let fails: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "tool_call_finished" && e["ok"] == false)
        .collect();
    assert_eq!(fails.len(), 2, "{events:?}");
    let rec = llm.recorded();
    let tool_text = |i: usize| -> String { rec[i].last_tool_result() };
    assert!(
        tool_text(1).to_lowercase().contains("json"),
        "{}",
        tool_text(1)
    );
    assert!(tool_text(2).contains(".."), "{}", tool_text(2));

    // The same call three times is a loop: the second result warns the model, the third call
    // stops the turn with a clear message.
    for _ in 0..3 {
        llm.push(Reply::tool_calls(
            None,
            &[("read_file", json!({"path": "a.txt"}))],
        ));
    }
    let before = llm.recorded().len();
    say(&mut ws, "loop").await;
    let (fin, _) = ws.until("turn_finished").await.unwrap();
    assert_eq!(fin["end"], "stuck", "{fin}");
    assert!(
        fin["message"].as_str().unwrap().contains("read_file"),
        "{fin}"
    );
    assert_eq!(llm.remaining(), 0);
    let rec = llm.recorded();
    assert_eq!(rec.len(), before + 3);
    // read_file answers with numbered lines.
    let listing = "a.txt (1 lines; each line starts with its number and a tab, which are not part of the file)\n1\tfixed";
    assert_eq!(
        rec[before + 1].last_tool_result(),
        listing,
        "no warning yet"
    );
    let warned = rec[before + 2].last_tool_result();
    assert!(
        warned.starts_with(&format!(
            "{listing}\n\n[platform warning: this is call 2 of read_file"
        )) && warned.contains("Call 3 stops the turn"),
        "{warned}"
    );

    // Distinct calls until the step cap (AGENT_MAX_STEPS=6): the sixth step has tools switched
    // off and asks for a summary, which is the turn's last message.
    for i in 0..5 {
        llm.push(Reply::tool_calls(
            None,
            &[("list_files", json!({"path": format!("dir{i}")}))],
        ));
    }
    llm.push(Reply::text(
        "Summary: I looked at five folders; nothing is built yet.",
    ));
    let before = llm.recorded().len();
    say(&mut ws, "wander").await;
    let (fin, events) = ws.until("turn_finished").await.unwrap();
    assert_eq!(fin["end"], "step_cap", "{fin}");
    let message = fin["message"].as_str().unwrap();
    assert!(
        message.contains("Stopped after 6 steps") && message.contains("says what it did"),
        "{fin}"
    );
    assert_eq!(
        text_of(&events),
        "Summary: I looked at five folders; nothing is built yet."
    );
    assert_eq!(llm.remaining(), 0);
    let rec = llm.recorded();
    assert_eq!(rec.len(), before + 6);
    for r in &rec[before..before + 5] {
        assert!(r.body.get("tool_choice").is_none(), "{}", r.body);
    }
    let last = &rec[before + 5].body;
    assert_eq!(last["tool_choice"], "none", "{last}");
    assert!(
        !last["tools"].as_array().unwrap().is_empty(),
        "tools stay listed"
    );
    let instruction = last["messages"].as_array().unwrap().last().unwrap();
    assert_eq!(instruction["role"], "user");
    assert!(
        instruction["content"]
            .as_str()
            .unwrap()
            .contains("Do not call tools"),
        "{instruction}"
    );
    // The next turn sees the summary in its history.
    llm.push(Reply::text("ok"));
    say(&mut ws, "carry on").await;
    ws.until("turn_finished").await.unwrap();
    let msgs = llm.recorded().pop().unwrap().body["messages"].clone();
    assert!(
        msgs.as_array()
            .unwrap()
            .iter()
            .any(|m| m["role"] == "assistant"
                && m["content"] == "Summary: I looked at five folders; nothing is built yet."),
        "{msgs}"
    );
}

#[tokio::test]
async fn a_reply_cut_by_the_length_limit_runs_its_complete_calls_and_continues_twice() {
    let stack = Stack::start(opts()).await.unwrap();
    let llm = stack.llm.as_ref().unwrap();
    let id = project(&stack, "backend").await;
    // One complete write_file, then one cut in the middle of its arguments.
    let mut items = vec![
        Item::Text("Writing two files.".into()),
        Item::ToolCall {
            index: 0,
            id: "call_whole".into(),
            name: "write_file".into(),
            arguments: json!({"path": "whole.txt", "content": "all here\n"}).to_string(),
            fragment: 6,
        },
        Item::ToolCall {
            index: 1,
            id: "call_cut".into(),
            name: "write_file".into(),
            arguments: "{\"path\": \"cut.txt\", \"content\": \"half of it".into(),
            fragment: 6,
        },
    ];
    items.extend(finish("length"));
    llm.push(Reply::Stream(items));
    // Two more cut replies: the second is continued, the third ends the turn.
    for text in ["Continuing with cut.txt, whose", "Still too long"] {
        let mut items = vec![Item::Text(text.into())];
        items.extend(finish("length"));
        llm.push(Reply::Stream(items));
    }
    let (mut ws, _) = ProjectSocket::connect(&stack.worker_url, &id, None)
        .await
        .unwrap();
    say(&mut ws, "write two files").await;
    let (fin, events) = ws.until("turn_finished").await.unwrap();
    assert_eq!(fin["end"], "length", "{fin}");
    assert!(
        fin["message"]
            .as_str()
            .unwrap()
            .contains("output-token limit, after 2 continuations"),
        "{fin}"
    );
    assert_eq!(llm.remaining(), 0);
    // Only the complete call ran.
    let started: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "tool_call_started")
        .collect();
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0]["call_id"], "call_whole", "{started:?}");

    let rec = llm.recorded();
    assert_eq!(rec.len(), 3);
    let msgs = rec[1].body["messages"].as_array().unwrap();
    let n = msgs.len();
    let asst = &msgs[n - 3];
    assert_eq!(asst["role"], "assistant");
    assert_eq!(asst["tool_calls"].as_array().unwrap().len(), 1, "{asst}");
    assert_eq!(asst["tool_calls"][0]["id"], "call_whole");
    assert_eq!(msgs[n - 2]["role"], "tool");
    assert_eq!(msgs[n - 2]["tool_call_id"], "call_whole");
    assert_eq!(msgs[n - 1]["role"], "user");
    let note = msgs[n - 1]["content"].as_str().unwrap();
    assert!(
        note.contains("in the middle of a write_file call, which was not run")
            && note.contains("complete tool calls before the cut ran"),
        "{note}"
    );
    let last = rec[2].body["messages"].as_array().unwrap();
    assert_eq!(
        last[last.len() - 2]["content"],
        "Continuing with cut.txt, whose"
    );

    // The complete file was written and checkpointed; the cut one was not.
    let file = |path: &'static str| {
        let url = format!("{}/projects/{id}/files/{path}", stack.worker_url);
        let http = stack.http.clone();
        async move { http.get(url).send().await.unwrap() }
    };
    assert_eq!(fin["checkpoint"], 2, "{fin}");
    assert_eq!(file("whole.txt").await.text().await.unwrap(), "all here\n");
    assert_eq!(file("cut.txt").await.status(), 404);
}

#[tokio::test]
async fn a_capped_turn_is_verified_and_its_fix_round_has_its_own_steps() {
    let stack = Stack::start(Options {
        with_llm: true,
        llm_as_fallback: false,
        quiet_requests: false,
        vars: vec![
            ("AGENT_MAX_STEPS".into(), "3".into()),
            ("AGENT_FIX_STEPS".into(), "3".into()),
            ("VERIFY_FIX_ROUNDS".into(), "1".into()),
        ],
    })
    .await
    .unwrap();
    let llm = stack.llm.as_ref().unwrap();
    let id = project(&stack, "backend").await;
    // Two working steps leave a test that cannot be collected; the third is the summary.
    llm.push(Reply::tool_calls(
        None,
        &[(
            "write_file",
            json!({"path": "tests/test_more.py", "content": "from app.missing import thing\n\ndef test_thing():\n    assert thing\n"}),
        )],
    ));
    llm.push(Reply::tool_calls(
        None,
        &[("list_files", json!({"path": "app"}))],
    ));
    llm.push(Reply::text(
        "Summary: I added a test; app/missing.py is still to write.",
    ));
    // The fix round: the main budget is spent, yet the round gets its three steps.
    llm.push(Reply::tool_calls(
        None,
        &[(
            "write_file",
            json!({"path": "tests/test_more.py", "content": "def test_thing():\n    assert True\n"}),
        )],
    ));
    llm.push(Reply::text(
        "Fixed: the test no longer imports a missing module.",
    ));
    let (mut ws, _) = ProjectSocket::connect(&stack.worker_url, &id, None)
        .await
        .unwrap();
    say(&mut ws, "add a test").await;
    let (fin, events) = ws.until("turn_finished").await.unwrap();
    assert_eq!(fin["end"], "step_cap", "{fin}");
    assert!(
        fin["message"]
            .as_str()
            .unwrap()
            .contains("Stopped after 3 steps, the limit for one turn"),
        "{fin}"
    );
    assert_eq!(llm.remaining(), 0);
    let statuses: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "status")
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(statuses.contains(&"found 1 error, fixing"), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&"app is running"), "{statuses:?}");
    let rec = llm.recorded();
    assert_eq!(rec.len(), 5);
    assert_eq!(rec[2].body["tool_choice"], "none");
    assert!(rec[3].body.get("tool_choice").is_none(), "{}", rec[3].body);
    let fix = rec[3].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|m| m["role"] == "user")
        .unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        fix.contains("fix round 1 of 1") && fix.contains("pytest"),
        "{fix}"
    );
    let body = stack
        .http
        .get(format!(
            "{}/projects/{id}/files/tests/test_more.py",
            stack.worker_url
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "def test_thing():\n    assert True\n");
}

#[tokio::test]
async fn stop_queue_two_clients_and_resume() {
    let stack = Stack::start(opts()).await.unwrap();
    let llm = stack.llm.as_ref().unwrap();
    let id = project(&stack, "backend").await;
    let slow = |n: usize| {
        let mut items = Vec::new();
        for i in 0..n {
            items.push(Item::Text(format!("w{i} ")));
            items.push(Item::Sleep(Duration::from_millis(100)));
        }
        items.extend(finish("stop"));
        Reply::Stream(items)
    };
    let (mut a, _) = ProjectSocket::connect(&stack.worker_url, &id, None)
        .await
        .unwrap();
    let (mut b, _) = ProjectSocket::connect(&stack.worker_url, &id, None)
        .await
        .unwrap();

    // Stop in the middle of a turn keeps the partial answer.
    llm.push(slow(100));
    say(&mut a, "long answer").await;
    a.until("assistant_delta").await.unwrap();
    // Deleting the project while a turn runs is refused, and nothing goes.
    let r = stack
        .http
        .delete(format!("{}/projects/{id}", stack.worker_url))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("a turn is running"), "{body}");
    a.send(&json!({"type": "stop"})).await.unwrap();
    let (fin, _) = a.until("turn_finished").await.unwrap();
    assert_eq!(fin["end"], "stopped", "{fin}");

    // A message during a turn is queued, and runs after it.
    llm.push(slow(10));
    llm.push(Reply::text("second answer"));
    say(&mut a, "first").await;
    a.until("turn_started").await.unwrap();
    say(&mut b, "second").await;
    let (q, _) = a.until("queued").await.unwrap();
    assert_eq!(q["position"], 1);
    assert_eq!(q["text"], "second");

    // Client B drops mid-turn and resumes from the last seq it saw: nothing lost or doubled.
    let mut b_seen: Vec<Value> = Vec::new();
    let mut in_first = false;
    loop {
        let e = b.next().await.unwrap();
        if e["type"] == "turn_started" {
            in_first = e["text"] == "first";
        }
        let stop = in_first && e["type"] == "assistant_delta";
        b_seen.push(e);
        if stop {
            break;
        }
    }
    drop(b);
    let last = b_seen.last().unwrap()["seq"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut b2, _) = ProjectSocket::connect(&stack.worker_url, &id, Some(last))
        .await
        .unwrap();
    let mut a_all: Vec<Value> = Vec::new();
    let mut b_all: Vec<Value> = Vec::new();
    // Both read until the queued "second" turn has finished.
    for (sock, all) in [(&mut a, &mut a_all), (&mut b2, &mut b_all)] {
        let mut in_second = false;
        loop {
            let e = sock.next().await.unwrap();
            if e["type"] == "turn_started" {
                in_second = e["text"] == "second";
            }
            let done = in_second && e["type"] == "turn_finished";
            all.push(e);
            if done {
                break;
            }
        }
    }
    let a_seqs: Vec<u64> = a_all
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .filter(|s| *s > last)
        .collect();
    let b_seqs: Vec<u64> = b_all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        a_seqs, b_seqs,
        "the resumed client sees exactly what the live one saw"
    );
    assert!(a_all
        .iter()
        .any(|e| e["type"] == "turn_started" && e["text"] == "second"));
    assert!(text_of(&a_all).ends_with("second answer"));
}

#[tokio::test]
async fn history_survives_a_restart_and_chat_stream_speaks_sse() {
    let o = opts();
    let mut stack = Stack::start(o.clone()).await.unwrap();
    let id = project(&stack, "backend").await;
    stack
        .llm
        .as_ref()
        .unwrap()
        .push(Reply::text("remembered answer"));

    // POST /chat/stream, read by a plain HTTP client.
    let r = stack
        .http
        .post(format!("{}/chat/stream", stack.worker_url))
        .json(&json!({"project_id": id, "message": "first question"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let body = r.text().await.unwrap();
    assert!(body.contains("event: turn_started"), "{body}");
    assert!(body.contains("event: assistant_delta"), "{body}");
    assert!(
        body.trim_end()
            .lines()
            .rev()
            .find(|l| l.starts_with("event:"))
            .unwrap()
            .contains("turn_finished"),
        "{body}"
    );

    // Bad input is a clear 400.
    let r = stack
        .http
        .post(format!("{}/chat/stream", stack.worker_url))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    stack.restart_worker(&o).await.unwrap();
    let llm = stack.llm.as_ref().unwrap();
    llm.push(Reply::text("second"));
    // The event log survived: a replay from 0 still has the first turn.
    let (mut old, hello) = ProjectSocket::connect(&stack.worker_url, &id, Some(0))
        .await
        .unwrap();
    assert!(hello["last_seq"].as_u64().unwrap() > 0, "{hello}");
    let (replayed, _) = old.until("turn_started").await.unwrap();
    assert_eq!(replayed["text"], "first question");
    // A client that saw more than the log holds (events lost with a crashed object before
    // they were written) is told to refetch instead of silently skipping new events.
    let (mut ahead, _) = ProjectSocket::connect(&stack.worker_url, &id, Some(1_000_000))
        .await
        .unwrap();
    let reset = ahead.next().await.unwrap();
    assert_eq!(reset["type"], "reset", "{reset}");
    drop(ahead);
    let (mut ws, _) = ProjectSocket::connect(&stack.worker_url, &id, None)
        .await
        .unwrap();
    say(&mut ws, "do you remember?").await;
    let (fin, _) = ws.until("turn_finished").await.unwrap();
    assert_eq!(fin["end"], "done", "{fin}");
    let msgs = llm.recorded().pop().unwrap().body["messages"].clone();
    let texts: Vec<String> = msgs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["content"].as_str().map(String::from))
        .collect();
    assert!(texts.iter().any(|t| t == "first question"), "{texts:?}");
    assert!(texts.iter().any(|t| t == "remembered answer"), "{texts:?}");
}

#[tokio::test]
async fn run_command_streams_output_from_the_sandbox() {
    let stack = Stack::start(opts()).await.unwrap();
    let llm = stack.llm.as_ref().unwrap();
    let id = project(&stack, "backend").await;
    llm.push(Reply::tool_calls(None, &[("write_file", json!({"path": "hello.sh", "content": "echo hello from $(basename $PWD)\nls requirements.txt\n"}))]));
    llm.push(Reply::tool_calls(
        None,
        &[(
            "run_command",
            json!({"command": "sh hello.sh && echo oops >&2 && exit 3"}),
        )],
    ));
    llm.push(Reply::text("ran it"));
    let (mut ws, _) = ProjectSocket::connect(&stack.worker_url, &id, None)
        .await
        .unwrap();
    say(&mut ws, "run it").await;
    let (fin, events) = ws.until("turn_finished").await.unwrap();
    assert_eq!(fin["end"], "done", "{fin}");
    let out: String = events
        .iter()
        .filter(|e| e["type"] == "tool_output")
        .map(|e| e["data"].as_str().unwrap())
        .collect();
    assert!(out.contains("hello from"), "{out}");
    assert!(
        out.contains("requirements.txt"),
        "the command saw the synced files: {out}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "tool_output" && e["stream"] == "stderr"),
        "{events:?}"
    );
    let result = llm.recorded()[2].last_tool_result();
    assert!(result.starts_with("exit code 3"), "{result}");

    // The terminal endpoint streams NDJSON and shows on the socket too.
    let r = stack
        .http
        .post(format!("{}/projects/{id}/terminal", stack.worker_url))
        .json(&json!({"command": "echo term-ok"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["data"], "term-ok\n");
    assert_eq!(lines.last().unwrap()["type"], "exit");
    assert_eq!(lines.last().unwrap()["exit_code"], 0);
    let (ev, _) = ws.until("tool_output").await.unwrap();
    assert_eq!(ev["data"], "term-ok\n");
    let r = stack
        .http
        .post(format!("{}/projects/{id}/terminal", stack.worker_url))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn a_dead_provider_falls_back_to_openrouter_with_its_headers_and_models() {
    let stack = Stack::start(Options {
        with_llm: true,
        llm_as_fallback: true,
        quiet_requests: false,
        vars: vec![("VERIFY_FIX_ROUNDS".into(), "0".into())],
    })
    .await
    .unwrap();
    let llm = stack.llm.as_ref().unwrap();
    let (_, models) = stack.get_json("/api/models").await.unwrap();
    assert_eq!(models["provider"], "openrouter", "{models}");
    assert_eq!(models["models"][0]["id"], "scripted/model-a", "{models}");

    let id = project(&stack, "backend").await;
    llm.push(Reply::text("from the fallback"));
    let (mut ws, _) = ProjectSocket::connect(&stack.worker_url, &id, None)
        .await
        .unwrap();
    ws.send(&json!({"type": "user_message", "text": "hi", "model": "scripted/model-b"}))
        .await
        .unwrap();
    let (fin, events) = ws.until("turn_finished").await.unwrap();
    assert_eq!(fin["end"], "done", "{fin}");
    assert_eq!(text_of(&events), "from the fallback");
    assert!(
        events.iter().any(|e| e["type"] == "status"
            && e["message"]
                .as_str()
                .unwrap()
                .contains("switching to openrouter")),
        "{events:?}"
    );
    let rec = llm.recorded();
    assert_eq!(rec.len(), 1);
    assert_eq!(
        rec[0].authorization.as_deref(),
        Some("Bearer sk-or-test-key")
    );
    assert_eq!(rec[0].headers["x-title"], "open-replit");
    assert!(rec[0].headers.get("http-referer").is_some());
    assert_eq!(
        rec[0].body["model"], "scripted/model-b",
        "the per-message model is used"
    );
}
