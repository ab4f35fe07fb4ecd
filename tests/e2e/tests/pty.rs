//! The interactive terminal through the Worker: the browser's socket at
//! `/projects/{id}/pty` joined to a real shell on the VM API (bubblewrap), with scrollback
//! replayed on reattach, Ctrl-C, and what the shell writes saved as a checkpoint.

use e2e::llm::Reply;
use e2e::stack::{Options, Stack};
use e2e::ws::ProjectSocket;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(stack: &Stack, id: &str) -> Ws {
    let url = format!(
        "{}/projects/{id}/pty?session=main&cols=100&rows=30",
        stack.worker_url.replacen("http", "ws", 1)
    );
    let (ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws
}

/// Reads until the terminal's output contains `want` (or fails after `secs`); returns it all.
async fn read_until(ws: &mut Ws, want: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut out = String::new();
    while !out.contains(want) {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = tokio::time::timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no {want:?} within {secs} s; got {out:?}"))
            .expect("the socket stayed open")
            .unwrap();
        match m {
            Message::Binary(b) => out.push_str(&String::from_utf8_lossy(&b)),
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                assert_ne!(v["type"], "error", "{v}");
            }
            Message::Close(c) => panic!("closed: {c:?}; got {out:?}"),
            _ => {}
        }
    }
    out
}

async fn keys(ws: &mut Ws, s: &str) {
    ws.send(Message::Binary(s.as_bytes().to_vec().into()))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_shell_in_the_browser_saves_what_it_writes_and_keeps_its_scrollback() {
    let stack = Stack::start(Options {
        with_llm: true,
        llm_as_fallback: false,
        quiet_requests: false,
        vars: vec![("VERIFY_FIX_ROUNDS".into(), "0".into())],
    })
    .await
    .unwrap();
    let id = stack.create_project("pty", "backend").await.unwrap();
    let mut ws = connect(&stack, &id).await;
    // The shell starts on the project's files.
    keys(&mut ws, "ls; echo sum=$((40+2))\r").await;
    let out = read_until(&mut ws, "sum=42", 20).await;
    assert!(out.contains("requirements.txt"), "{out}");

    // Ctrl-C stops a running program and the shell answers again.
    keys(&mut ws, "sleep 30\r").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    keys(&mut ws, "\x03").await;
    keys(&mut ws, "echo after-$((1+1))\r").await;
    read_until(&mut ws, "after-2", 5).await;

    // A file the shell writes becomes part of the project within a few seconds.
    keys(&mut ws, "echo from-the-shell > shell.txt\r").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = stack
            .http
            .get(format!(
                "{}/projects/{id}/files/shell.txt",
                stack.worker_url
            ))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            assert_eq!(r.text().await.unwrap(), "from-the-shell\n");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "shell.txt was not saved within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, cps) = stack
        .get_json(&format!("/projects/{id}/checkpoints"))
        .await
        .unwrap();
    assert_eq!(cps["checkpoints"][0]["author"], "user", "{cps}");

    // A reload: a new socket to the same session replays what the page had shown.
    drop(ws);
    let mut again = connect(&stack, &id).await;
    read_until(&mut again, "sum=42", 10).await;
    keys(&mut again, "cat shell.txt\r").await;
    read_until(&mut again, "from-the-shell", 5).await;

    // An agent turn while the shell is open: what the turn saved stays saved (the sync that
    // brings it to the VM is not a change of the shell's).
    let llm = stack.llm.as_ref().unwrap();
    llm.push(Reply::tool_calls(
        None,
        &[(
            "write_file",
            json!({"path": "notes/hello.md", "content": "# hi\n"}),
        )],
    ));
    llm.push(Reply::text("wrote it"));
    let (mut events, _) = ProjectSocket::connect(&stack.worker_url, &id, None)
        .await
        .unwrap();
    events
        .send(&json!({"type": "user_message", "text": "write a note"}))
        .await
        .unwrap();
    let (fin, _) = events.until("turn_finished").await.unwrap();
    assert_eq!(fin["end"], "done", "{fin}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, cps) = stack
        .get_json(&format!("/projects/{id}/checkpoints"))
        .await
        .unwrap();
    let r = stack
        .http
        .get(format!(
            "{}/projects/{id}/files/notes/hello.md",
            stack.worker_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{cps}");
    keys(&mut again, "cat notes/hello.md\r").await;
    read_until(&mut again, "# hi", 5).await;
}
