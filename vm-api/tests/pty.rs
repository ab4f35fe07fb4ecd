//! The interactive terminal (`GET /projects/{id}/pty`) over a real WebSocket, with real
//! bubblewrap (and the hardened sandbox in one test): echo, Ctrl-C, resize, scrollback replay,
//! exit, the `changed` frame, the idle reaper, the caps and the signature.

mod common;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use vm_api::AppState;

type Ws = WebSocketStream<TcpStream>;

struct Term {
    ws: Ws,
    /// Every output byte received so far.
    out: Vec<u8>,
    /// Every text event received so far.
    events: Vec<Value>,
    closed: bool,
}

async fn connect(addr: SocketAddr, path: &str, signed: bool) -> Result<Ws, WsError> {
    let path = vm_api::auth::with_nonce(path);
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    if signed {
        for (k, v) in vm_api::signed_headers(SECRET, "GET", &path, b"") {
            req.headers_mut().insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
    }
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_tungstenite::client_async(req, tcp)
        .await
        .map(|(ws, _)| ws)
}

fn status_of(e: WsError) -> u16 {
    match e {
        WsError::Http(resp) => resp.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

impl Term {
    async fn open(addr: SocketAddr, project: &str, query: &str) -> Term {
        let ws = connect(addr, &format!("/projects/{project}/pty?{query}"), true)
            .await
            .expect("upgrade");
        Term {
            ws,
            out: Vec::new(),
            events: Vec::new(),
            closed: false,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.ws.send(Message::binary(bytes.to_vec())).await.unwrap();
    }

    async fn control(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    /// Reads frames until `f` holds or `secs` pass; whether it held.
    async fn until(&mut self, secs: f64, f: impl Fn(&Term) -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs_f64(secs);
        while !f(self) {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() || self.closed {
                return f(self);
            }
            match tokio::time::timeout(left, self.ws.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => self.out.extend_from_slice(&b),
                Ok(Some(Ok(Message::Text(t)))) => {
                    self.events.push(serde_json::from_str(t.as_str()).unwrap())
                }
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => self.closed = true,
                Ok(Some(Ok(_))) => {}
                Err(_) => return f(self),
            }
        }
        true
    }

    /// Waits for `needle` in the last 64 KiB of output (the whole of it would make a flood
    /// quadratic).
    async fn until_output(&mut self, secs: f64, needle: &str) -> bool {
        let n = needle.to_string();
        self.until(secs, move |t| {
            let from = t.out.len().saturating_sub(64 * 1024);
            String::from_utf8_lossy(&t.out[from..]).contains(&n)
        })
        .await
    }

    fn has_event(&self, kind: &str) -> bool {
        self.events.iter().any(|e| e["type"] == kind)
    }

    /// Waits for the shell to answer a command (its output, not the echo of the command).
    /// (Typed-ahead input is discarded when a Ctrl-C flushes the terminal: it asks again.)
    async fn ready(&mut self, tag: &str) {
        let want = format!("{tag}42");
        for _ in 0..5 {
            self.send(format!("echo {tag}$((40+2))\r").as_bytes()).await;
            if self.until_output(3.0, &want).await {
                return;
            }
        }
        panic!("shell did not answer: {:?} {:?}", self.tail(), self.events);
    }

    /// How much output there is so far (for [`Term::until_output_since`]).
    fn mark(&self) -> usize {
        self.out.len()
    }

    /// Waits for `needle` in the output that came after `mark`.
    async fn until_output_since(&mut self, mark: usize, secs: f64, needle: &str) -> bool {
        let n = needle.to_string();
        self.until(secs, move |t| {
            let from = mark.max(t.out.len().saturating_sub(64 * 1024));
            String::from_utf8_lossy(&t.out[from.min(t.out.len())..]).contains(&n)
        })
        .await
    }

    /// Interrupts the foreground job until the shell answers again. A Ctrl-C that lands
    /// before the job owns the terminal reaches the shell instead (a person presses it again);
    /// typed-ahead input is flushed by each one, so the question is asked again too.
    async fn interrupt(&mut self, tag: &str) {
        let want = format!("{tag}42");
        for _ in 0..10 {
            self.send(b"\x03").await;
            self.send(format!("echo {tag}$((40+2))\r").as_bytes()).await;
            if self.until_output(3.0, &want).await {
                return;
            }
        }
        panic!("the job was not interrupted: {:?}", self.tail());
    }

    /// The last 2 KiB of output, for failure messages.
    fn tail(&self) -> String {
        let from = self.out.len().saturating_sub(2048);
        String::from_utf8_lossy(&self.out[from..]).into_owned()
    }
}

async fn served() -> (tempfile::TempDir, Arc<AppState>, SocketAddr) {
    served_with(|_| {}).await
}

async fn served_with(
    f: impl FnOnce(&mut AppState),
) -> (tempfile::TempDir, Arc<AppState>, SocketAddr) {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = state(&tmp);
    f(&mut s);
    let (st, api, _) = serve(s).await;
    (tmp, st, api)
}

#[tokio::test]
async fn pty_echo_hello_and_exit() {
    let (_t, st, api) = served().await;
    let mut t = Term::open(api, "p1", "session=main&cols=100&rows=30").await;
    assert!(t.until(10.0, |t| t.has_event("hello")).await);
    let hello = t.events[0].clone();
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["session"], "main");
    assert_eq!(hello["cols"], 100);
    assert_eq!(hello["rows"], 30);
    assert_eq!(hello["replayed_bytes"], 0);
    t.send(b"echo hi\r").await;
    assert!(t.until_output(10.0, "hi\r\n").await, "{:?}", t.tail());
    // TERM and cwd are what a terminal needs.
    t.send(b"echo \"T=$TERM D=$(pwd)\"\r").await;
    assert!(
        t.until_output(5.0, "T=xterm-256color D=/project").await,
        "{:?}",
        t.tail()
    );
    t.send(b"exit\r").await;
    assert!(
        t.until(10.0, |t| t.has_event("exit")).await,
        "{:?}",
        t.events
    );
    let exit = t.events.iter().find(|e| e["type"] == "exit").unwrap();
    assert_eq!(exit["exit_code"], 0);
    assert!(t.until(5.0, |t| t.closed).await, "socket closes after exit");
    assert!(eventually(5, || st.pty.count(Some("p1")) == 0).await);
}

#[tokio::test]
async fn pty_ctrl_c_interrupts_a_sleep() {
    let (_t, _st, api) = served().await;
    let mut t = Term::open(api, "p1", "session=main").await;
    t.ready("R").await;
    // The job says when it runs, so Ctrl-C goes to it and not to the shell before it.
    t.send(b"sh -c 'echo started-$((1+1)); exec sleep 120'\r")
        .await;
    assert!(t.until_output(30.0, "started-2").await, "{:?}", t.tail());
    let t0 = Instant::now();
    t.send(b"\x03").await;
    // The terminal echoes ^C and the shell answers again, long before the sleep would end.
    assert!(t.until_output(30.0, "^C").await, "{:?}", t.tail());
    t.ready("back").await;
    assert!(
        t0.elapsed() < Duration::from_secs(100),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn pty_resize_reaches_stty_and_bad_sizes_get_an_error_frame() {
    let (_t, _st, api) = served().await;
    let mut t = Term::open(api, "p1", "session=main&cols=80&rows=24").await;
    t.ready("R").await;
    t.control(serde_json::json!({"type":"resize","cols":132,"rows":43}))
        .await;
    t.send(b"stty size\r").await;
    assert!(t.until_output(5.0, "43 132").await, "{:?}", t.tail());
    t.control(serde_json::json!({"type":"resize","cols":0,"rows":10}))
        .await;
    t.control(serde_json::json!({"type":"resize","cols":60000,"rows":10}))
        .await;
    t.control(serde_json::json!({"type":"nonsense"})).await;
    t.ws.send(Message::text("not json")).await.unwrap();
    t.control(serde_json::json!({"type":"ping"})).await;
    assert!(
        t.until(5.0, |t| t.has_event("pong")
            && t.events.iter().filter(|e| e["type"] == "error").count() == 4)
            .await,
        "{:?}",
        t.events
    );
    // Still alive, size unchanged.
    t.send(b"stty size\r").await;
    t.out.clear();
    assert!(t.until_output(5.0, "43 132").await, "{:?}", t.tail());
}

#[tokio::test]
async fn pty_reattach_replays_scrollback_and_two_clients_share_a_session() {
    let (_t, st, api) = served().await;
    let mut a = Term::open(api, "p1", "session=work").await;
    a.ready("R").await;
    a.send(b"echo marker-$((6*7))\r").await;
    assert!(a.until_output(5.0, "marker-42").await);
    a.ws.close(None).await.unwrap();
    drop(a);
    // The shell lives on without clients.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(st.pty.count(Some("p1")), 1);
    let mut b = Term::open(api, "p1", "session=work").await;
    assert!(b.until(5.0, |t| t.has_event("hello")).await);
    assert!(b.events[0]["replayed_bytes"].as_u64().unwrap() > 0);
    assert!(b.until_output(5.0, "marker-42").await, "{:?}", b.tail());
    // A second client sees the same live output, and its input reaches the same shell.
    let mut c = Term::open(api, "p1", "session=work").await;
    c.send(b"echo from-c-$((2+3))\r").await;
    assert!(b.until_output(5.0, "from-c-5").await);
    assert!(c.until_output(5.0, "from-c-5").await);
    // Another name is another shell.
    let mut d = Term::open(api, "p1", "session=other").await;
    d.ready("D").await;
    assert!(!d.text().contains("marker-42"));
    assert_eq!(st.pty.count(Some("p1")), 2);
}

#[tokio::test]
async fn pty_changed_frame_for_project_files_not_for_ignored_ones() {
    let (tmp, _st, api) = served().await;
    let dir = tmp.path().join("projects").join("p1");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(".gitignore"), "node_modules/\n").unwrap();
    let mut t = Term::open(api, "p1", "session=main").await;
    t.ready("R").await;
    t.send(b"mkdir -p node_modules/x && echo a > node_modules/a && echo b > node_modules/x/b && echo ok$((1+1))\r")
        .await;
    assert!(t.until_output(5.0, "ok2").await);
    assert!(
        !t.until(2.5, |t| t.has_event("changed")).await,
        "an ignored path alone sends no changed frame: {:?}",
        t.events
    );
    let t0 = Instant::now();
    t.send(b"echo x > f.txt\r").await;
    assert!(
        t.until(2.0, |t| t.has_event("changed")).await,
        "{:?}",
        t.events
    );
    eprintln!("changed frame after {:?}", t0.elapsed());
    // A new directory is watched too.
    t.events.clear();
    t.send(b"mkdir -p src/deep && sleep 0.5 && echo y > src/deep/g.txt\r")
        .await;
    assert!(t.until(3.0, |t| t.has_event("changed")).await);
    t.events.clear();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    t.events.clear();
    t.send(b"echo z >> src/deep/g.txt\r").await;
    assert!(
        t.until(2.0, |t| t.has_event("changed")).await,
        "{:?}",
        t.events
    );
}

#[tokio::test]
async fn pty_idle_session_is_reaped() {
    let (_t, st, api) = served_with(|s| s.pty.limits.idle = Duration::from_secs(1)).await;
    let mut t = Term::open(api, "p1", "session=main").await;
    t.ready("R").await;
    // A client that sends nothing stays attached: no reaping while it is there.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(st.pty.count(Some("p1")), 1);
    t.ws.close(None).await.unwrap();
    drop(t);
    assert!(
        eventually(10, || st.pty.count(Some("p1")) == 0).await,
        "the idle session is gone"
    );
    // Reattaching starts a fresh shell.
    let mut t = Term::open(api, "p1", "session=main").await;
    assert!(t.until(5.0, |t| t.has_event("hello")).await);
    assert_eq!(t.events[0]["replayed_bytes"], 0);
}

#[tokio::test]
async fn pty_caps_bad_names_and_unsigned_upgrades_are_refused() {
    let (_t, st, api) = served_with(|s| s.pty.limits.max_per_project = 2).await;
    let _a = Term::open(api, "p1", "session=a").await;
    let _b = Term::open(api, "p1", "session=b").await;
    let e = connect(api, "/projects/p1/pty?session=c", true)
        .await
        .unwrap_err();
    assert_eq!(status_of(e), 429);
    // Reattaching to an existing one is fine; another project has its own cap.
    let _a2 = Term::open(api, "p1", "session=a").await;
    let _o = Term::open(api, "p2", "session=a").await;
    assert_eq!(st.pty.count(None), 3);
    for bad in ["", "UPPER", "a_b", "x/y", &"a".repeat(33)] {
        let e = connect(api, &format!("/projects/p1/pty?session={bad}"), true)
            .await
            .unwrap_err();
        assert_eq!(status_of(e), 400, "{bad:?}");
    }
    let e = connect(api, "/projects/p1/pty?session=a", false)
        .await
        .unwrap_err();
    assert_eq!(status_of(e), 401);
}

#[tokio::test]
async fn pty_flood_and_yes_stay_bounded() {
    let (_t, _st, api) = served().await;
    let mut t = Term::open(api, "p1", "session=main").await;
    t.ready("R").await;
    // `yes` floods output while this client reads nothing for a while.
    t.send(b"yes | head -c 20000000 > /dev/stdout; echo done$((3+4))\r")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(t.until_output(60.0, "done7").await);
    // Input far beyond what the shell reads at once is taken in with back-pressure.
    t.send(b"cat > /dev/null\r").await;
    let mut line = vec![b'a'; 1023];
    line.push(b'\r');
    let big = line.repeat(60);
    for _ in 0..40 {
        tokio::time::timeout(Duration::from_secs(20), t.send(&big))
            .await
            .expect("input accepted");
    }
    t.send(b"\x03").await;
    t.ready("S").await;
}

#[tokio::test]
async fn pty_in_the_hardened_sandbox() {
    let tmp = tempfile::tempdir().unwrap();
    let sb = vm_api::sandbox::hardened::Hardened::new(tmp.path(), Default::default())
        .expect("hardened sandbox available");
    let uid = sb.uid("p1").unwrap();
    let s = AppState::new(SECRET.to_vec(), tmp.path().to_path_buf(), Arc::new(sb));
    let (st, api, _) = serve(s).await;
    let mut t = Term::open(api, "p1", "session=main").await;
    t.ready("R").await;
    t.send(b"echo uid=$(id -u) home=$HOME\r").await;
    assert!(
        t.until_output(5.0, &format!("uid={uid} home=/home/user"))
            .await,
        "{:?}",
        t.tail()
    );
    // Job control: a background job, brought back and interrupted.
    t.send(b"sleep 120 &\r").await;
    t.ready("bg").await;
    t.send(b"fg\r").await;
    assert!(
        t.until_output(30.0, "sleep 120\r\n").await,
        "{:?}",
        t.tail()
    );
    t.interrupt("fg").await;
    assert!(!t.text().contains("no job control"), "{:?}", t.tail());
    st.shutdown().await;
    assert!(
        t.until(5.0, |t| t.has_event("exit")).await,
        "{:?}",
        t.events
    );
    assert_eq!(st.pty.count(None), 0);
}

/// What people run in a real terminal: a Python REPL (Ctrl-D ends it), job control (Ctrl-Z,
/// `jobs`, `fg`, Ctrl-C), and full-screen programs (vi writes a file, htop quits on `q`). Each
/// key is sent only once the program shows it is ready for it.
#[tokio::test]
async fn pty_repl_job_control_and_full_screen_programs() {
    let (_t, _st, api) = served().await;
    let mut t = Term::open(api, "p1", "session=main&cols=100&rows=30").await;
    t.ready("R").await;

    let m = t.mark();
    t.send(b"python3 -q\r").await;
    assert!(
        t.until_output_since(m, 30.0, ">>> ").await,
        "{:?}",
        t.tail()
    );
    t.send(b"print(6*7)\r").await;
    assert!(
        t.until_output_since(m, 30.0, "42\r\n>>> ").await,
        "{:?}",
        t.tail()
    );
    t.send(b"\x04").await;
    t.ready("after-python").await;

    let m = t.mark();
    t.send(b"sh -c 'echo started-$((1+1)); exec sleep 120'\r")
        .await;
    assert!(
        t.until_output_since(m, 30.0, "started-2").await,
        "{:?}",
        t.tail()
    );
    t.send(b"\x1a").await;
    assert!(
        t.until_output_since(m, 30.0, "Stopped").await,
        "{:?}",
        t.tail()
    );
    t.ready("stopped").await;
    let m = t.mark();
    t.send(b"jobs\r").await;
    assert!(
        t.until_output_since(m, 30.0, "exec sleep 120").await,
        "{:?}",
        t.tail()
    );
    t.ready("jobs").await;
    let m = t.mark();
    t.send(b"fg\r").await;
    assert!(
        t.until_output_since(m, 30.0, "exec sleep 120").await,
        "{:?}",
        t.tail()
    );
    t.interrupt("after-fg").await;
    assert!(!t.text().contains("no job control"), "{:?}", t.tail());

    // vi: the alternate screen, insert mode, :wq; the file is written.
    let m = t.mark();
    t.send(b"vi notes.txt\r").await;
    assert!(
        t.until_output_since(m, 30.0, "\"notes.txt\"").await,
        "{:?}",
        t.tail()
    );
    assert!(String::from_utf8_lossy(&t.out[m..]).contains("\x1b[?1049h"));
    t.send(b"ihello from vi").await;
    assert!(
        t.until_output_since(m, 30.0, "hello from vi").await,
        "{:?}",
        t.tail()
    );
    t.send(b"\x1b").await;
    t.send(b":wq\r").await;
    assert!(
        t.until_output_since(m, 30.0, "\x1b[?1049l").await,
        "{:?}",
        t.tail()
    );
    t.ready("after-vi").await;
    let m = t.mark();
    t.send(b"cat notes.txt\r").await;
    assert!(
        t.until_output_since(m, 30.0, "\rhello from vi\r\n").await,
        "{:?}",
        t.tail()
    );

    // htop draws its screen and quits on q.
    let m = t.mark();
    t.send(b"htop\r").await;
    assert!(
        t.until_output_since(m, 30.0, "\x1b[?1049h").await,
        "{:?}",
        t.tail()
    );
    assert!(
        t.until_output_since(m, 30.0, "Tasks:").await,
        "{:?}",
        t.tail()
    );
    t.send(b"q").await;
    assert!(
        t.until_output_since(m, 30.0, "\x1b[?1049l").await,
        "{:?}",
        t.tail()
    );
    t.ready("after-htop").await;
}
