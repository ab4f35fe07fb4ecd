//! Interactive terminals: `GET /projects/{id}/pty?session=NAME&cols=C&rows=R` upgrades to a
//! WebSocket attached to the project's shell session NAME, created on first use: `bash -l`
//! (`sh` without bash) on a real PTY inside the project's sandbox, with the limits of every
//! sandboxed command.
//!
//! - The PTY comes from rustix's `pty` functions (`openpt`, `TIOCGPTPEER`): rustix is already
//!   the service's syscall layer, and the sandbox hands out a `tokio::process::Command` with
//!   its own `pre_exec` steps (network namespace, cgroups, rlimits), to which making the PTY
//!   the controlling terminal is one more step; `portable-pty` and `pty-process` would build
//!   their own commands (and `portable-pty` a blocking child) around it.
//! - Each session keeps its last `RING_BYTES` of output; a client that attaches gets them
//!   first, then live output. Output reaches clients through a bounded broadcast channel: a
//!   client that falls behind skips output (told with a `skipped` frame), never grows memory.
//! - Input goes through a small bounded queue to the PTY: a client that types faster than the
//!   shell reads is back-pressured down to its TCP connection.
//! - A session whose last client left is reaped after `PtyLimits::idle` (SIGHUP to the
//!   terminal's foreground group, then SIGKILL of the sandbox), and on shutdown.
//! - While a session has clients, the working copy is watched (`watch`); a change sends
//!   `changed` to its clients, who save it with `POST /projects/{id}/changes`.

pub mod watch;

use crate::error::{check_project_id, ApiError};
use crate::process::kill_group;
use crate::sandbox::CommandSpec;
use crate::state::AppState;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use open_replit_core::vm_api::{
    valid_pty_session, PtyControl, PtyEvent, PTY_MAX_COLS, PTY_MAX_ROWS,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;
use tokio::sync::{broadcast, mpsc, watch as tokio_watch};

/// Output a session keeps for clients that attach later.
pub const RING_BYTES: usize = 256 * 1024;
/// Output chunks a client may be behind before it skips.
const LAG_CHUNKS: usize = 256;
/// Bytes read from the PTY at once.
const READ_CHUNK: usize = 8 * 1024;
/// Input chunks queued for the PTY before the client is back-pressured.
const INPUT_QUEUE: usize = 16;
/// Largest WebSocket message a client may send.
const MAX_MESSAGE: usize = 64 * 1024;
/// Between SIGHUP and SIGKILL when a session is reaped.
const HANGUP_GRACE: Duration = Duration::from_secs(2);
const DEFAULT_COLS: u16 = 80;
const DEFAULT_ROWS: u16 = 24;

/// Settings of the terminal sessions (`--pty-*` flags).
#[derive(Debug, Clone)]
pub struct PtyLimits {
    /// How long a session with no client lives on.
    pub idle: Duration,
    pub max_per_project: usize,
    pub max_total: usize,
}

impl Default for PtyLimits {
    fn default() -> Self {
        PtyLimits {
            idle: Duration::from_secs(600),
            max_per_project: 4,
            max_total: 64,
        }
    }
}

/// The terminal sessions of the service.
#[derive(Default)]
pub struct PtyManager {
    pub limits: PtyLimits,
    sessions: Mutex<HashMap<(String, String), Arc<Session>>>,
    reaper_started: AtomicBool,
}

#[derive(Clone)]
enum Out {
    /// Output; `end` is the session's output offset after it.
    Data {
        bytes: Bytes,
        end: u64,
    },
    Changed,
    Exit {
        exit_code: Option<i32>,
        signal: Option<i32>,
    },
}

struct Inner {
    ring: VecDeque<u8>,
    /// Bytes of output so far.
    total: u64,
    clients: usize,
    idle_since: Instant,
    cols: u16,
    rows: u16,
    exit: Option<(Option<i32>, Option<i32>)>,
    watch: Option<watch::Watch>,
}

struct Session {
    name: String,
    project_dir: std::path::PathBuf,
    master: Arc<AsyncFd<OwnedFd>>,
    /// The sandbox's process (leader of its own session and process group).
    pid: u32,
    inner: Mutex<Inner>,
    out: broadcast::Sender<Out>,
    input: mpsc::Sender<Bytes>,
    done: tokio_watch::Receiver<bool>,
    reaping: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn too_many(message: String) -> ApiError {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_terminals", message)
}

fn winsize(cols: u16, rows: u16) -> rustix::termios::Winsize {
    rustix::termios::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// Clamps a requested size into 1..=max (0 and absent mean the default).
fn clamp(v: Option<u32>, default: u16, max: u16) -> u16 {
    match v {
        None | Some(0) => default,
        Some(v) => v.min(max as u32) as u16,
    }
}

/// The shell, started through `/bin/sh -c` by every sandbox.
const SHELL: &str = "if command -v bash >/dev/null 2>&1; then exec bash -l; fi; exec sh -l";

impl Session {
    fn publish(&self, out: Out) {
        let _ = self.out.send(out);
    }

    fn resize(&self, cols: u16, rows: u16) {
        let _ = rustix::termios::tcsetwinsize(self.master.get_ref(), winsize(cols, rows));
        let mut i = lock(&self.inner);
        i.cols = cols;
        i.rows = rows;
    }

    /// Hangs the session up: SIGHUP to the terminal's foreground group and the sandbox, then
    /// SIGKILL of the sandbox's group after `grace` unless the shell ended.
    fn terminate(self: &Arc<Self>, grace: Duration) {
        if self.reaping.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Ok(pg) = rustix::termios::tcgetpgrp(self.master.get_ref()) {
            let _ = rustix::process::kill_process_group(pg, rustix::process::Signal::HUP);
        }
        let s = self.clone();
        tokio::spawn(async move {
            let mut done = s.done.clone();
            let ended = tokio::time::timeout(grace, until_true(&mut done)).await;
            if ended.is_err() {
                kill_group(Some(s.pid));
            }
        });
    }
}

/// Waits until the flag is true (never, if its sender is gone while false).
async fn until_true(rx: &mut tokio_watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Keeps a client counted while it is attached.
struct ClientGuard(Arc<Session>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        let mut i = lock(&self.0.inner);
        i.clients = i.clients.saturating_sub(1);
        if i.clients == 0 {
            i.idle_since = Instant::now();
            i.watch = None;
        }
    }
}

impl PtyManager {
    /// Sessions running now (for tests and diagnostics).
    pub fn count(&self, project: Option<&str>) -> usize {
        lock(&self.sessions)
            .keys()
            .filter(|(p, _)| project.is_none_or(|want| p == want))
            .count()
    }

    /// Hangs up every session and waits (briefly) for them to end; on service shutdown.
    pub async fn stop_all(&self) {
        self.stop_where(|_| true).await
    }

    /// Hangs up every session of `project` (the project is being removed).
    pub async fn stop_project(&self, project: &str) {
        self.stop_where(|p| p == project).await
    }

    async fn stop_where(&self, pick: impl Fn(&str) -> bool) {
        let all: Vec<Arc<Session>> = {
            let mut g = lock(&self.sessions);
            let keys: Vec<(String, String)> = g.keys().filter(|(p, _)| pick(p)).cloned().collect();
            keys.iter().filter_map(|k| g.remove(k)).collect()
        };
        for s in &all {
            s.terminate(Duration::from_millis(500));
        }
        for s in all {
            let mut done = s.done.clone();
            if tokio::time::timeout(Duration::from_secs(1), until_true(&mut done))
                .await
                .is_err()
            {
                kill_group(Some(s.pid));
            }
        }
    }

    fn start_reaper(&self, st: &Arc<AppState>) {
        if self.reaper_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak: Weak<AppState> = Arc::downgrade(st);
        let every =
            (self.limits.idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(st) = weak.upgrade() else { return };
                let idle = st.pty.limits.idle;
                let stale: Vec<Arc<Session>> = lock(&st.pty.sessions)
                    .values()
                    .filter(|s| {
                        let i = lock(&s.inner);
                        i.clients == 0 && i.idle_since.elapsed() >= idle
                    })
                    .cloned()
                    .collect();
                for s in stale {
                    tracing::info!(session = %s.name, "reaping an idle terminal");
                    s.terminate(HANGUP_GRACE);
                }
            }
        });
    }

    /// The session, started if needed; refuses beyond the caps.
    fn session(
        &self,
        st: &Arc<AppState>,
        project: &str,
        name: &str,
        cols: u16,
        rows: u16,
        user: &str,
    ) -> Result<(Arc<Session>, bool), ApiError> {
        let key = (project.to_string(), name.to_string());
        let mut map = lock(&self.sessions);
        if let Some(s) = map.get(&key) {
            let gone = lock(&s.inner).exit.is_some() || s.reaping.load(Ordering::SeqCst);
            if !gone {
                return Ok((s.clone(), false));
            }
            map.remove(&key);
        }
        let mine = map.keys().filter(|(p, _)| p == project).count();
        if mine >= self.limits.max_per_project {
            return Err(too_many(format!(
                "project {project} already has {mine} terminal sessions (the most it may have); \
                 close one (type exit) or reattach to one of them"
            )));
        }
        if map.len() >= self.limits.max_total {
            return Err(too_many(format!(
                "this VM runs {} terminal sessions, the most it allows; try again later",
                map.len()
            )));
        }
        let slot = st.admission.command(user)?;
        let s = spawn(st, project, name, cols, rows, slot)?;
        map.insert(key, s.clone());
        drop(map);
        self.start_reaper(st);
        Ok((s, true))
    }
}

/// Opens a PTY pair: the master (non-blocking, for us) and the terminal the shell gets
/// (public for the latency baseline in the tests).
pub fn open_pty(cols: u16, rows: u16) -> std::io::Result<(OwnedFd, OwnedFd)> {
    use rustix::pty::OpenptFlags;
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    let master = rustix::pty::openpt(flags)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let slave = match rustix::pty::ioctl_tiocgptpeer(&master, flags) {
        Ok(fd) => fd,
        Err(_) => {
            let name = rustix::pty::ptsname(&master, Vec::new())?;
            rustix::fs::open(
                name.as_c_str(),
                rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )?
        }
    };
    if let Ok(mut t) = rustix::termios::tcgetattr(&slave) {
        t.input_modes |= rustix::termios::InputModes::IUTF8;
        let _ = rustix::termios::tcsetattr(&slave, rustix::termios::OptionalActions::Now, &t);
    }
    rustix::termios::tcsetwinsize(&master, winsize(cols, rows))?;
    rustix::io::ioctl_fionbio(&master, true)?;
    Ok((master, slave))
}

fn spawn(
    st: &Arc<AppState>,
    project: &str,
    name: &str,
    cols: u16,
    rows: u16,
    slot: crate::admission::Slot,
) -> Result<Arc<Session>, ApiError> {
    let (project_dir, home_dir) = st.ensure_project_dirs(project)?;
    let env: BTreeMap<String, String> = [
        ("TERM", "xterm-256color"),
        ("COLORTERM", "truecolor"),
        ("OPEN_REPLIT_SESSION", name),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut cmd = st.sandbox.interactive_command(&CommandSpec {
        project_id: project,
        project_dir: &project_dir,
        home_dir: &home_dir,
        cwd: "",
        shell: SHELL,
        env: &env,
    })?;
    let internal = |e: std::io::Error| ApiError::internal("pty_failed", format!("terminal: {e}"));
    let (master, slave) = open_pty(cols, rows).map_err(internal)?;
    let io = |fd: &OwnedFd| fd.try_clone().map(std::process::Stdio::from);
    cmd.stdin(io(&slave).map_err(internal)?)
        .stdout(io(&slave).map_err(internal)?)
        .stderr(io(&slave).map_err(internal)?)
        .kill_on_drop(true);
    // SAFETY: signal, setsid and ioctl are async-signal-safe; stdin is the terminal by now
    // (stdio is set up before pre_exec steps run).
    unsafe {
        cmd.pre_exec(|| {
            // A shell's jobs take the dispositions the shell started with, and a signal ignored
            // there cannot be restored by it: a VM API started in the background by a script
            // ignores SIGINT and SIGQUIT (and nohup SIGHUP), which would make Ctrl-C do nothing.
            for sig in [
                libc::SIGINT,
                libc::SIGQUIT,
                libc::SIGHUP,
                libc::SIGTERM,
                libc::SIGTSTP,
                libc::SIGTTIN,
                libc::SIGTTOU,
                libc::SIGPIPE,
            ] {
                libc::signal(sig, libc::SIG_DFL);
            }
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::ioctl(0, libc::TIOCSCTTY as _, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(internal)?;
    drop(cmd);
    drop(slave);
    let pid = child.id().unwrap_or(0);
    // SAFETY: the `OwnedFd` is owned by the `AsyncFd` and stays open, the same descriptor,
    // until the `AsyncFd` is dropped.
    let master = unsafe { AsyncFd::register(master) }
        .map_err(|e| internal(std::io::Error::other(e.to_string())))?;
    let master = Arc::new(master);
    let (out, _) = broadcast::channel(LAG_CHUNKS);
    let (input, input_rx) = mpsc::channel::<Bytes>(INPUT_QUEUE);
    let (done_tx, done) = tokio_watch::channel(false);
    let s = Arc::new(Session {
        name: name.to_string(),
        project_dir: project_dir.clone(),
        master: master.clone(),
        pid,
        inner: Mutex::new(Inner {
            ring: VecDeque::new(),
            total: 0,
            clients: 0,
            idle_since: Instant::now(),
            cols,
            rows,
            exit: None,
            watch: None,
        }),
        out,
        input,
        done,
        reaping: AtomicBool::new(false),
    });
    let reader = tokio::spawn(read_output(s.clone()));
    tokio::spawn(write_input(master, input_rx));
    let weak_st = Arc::downgrade(st);
    let key = (project.to_string(), name.to_string());
    let sess = s.clone();
    let mut shutdown = st.shutdown_signal();
    tokio::spawn(async move {
        let status = tokio::select! {
            s = child.wait() => s.ok(),
            _ = until_true(&mut shutdown) => {
                kill_group(Some(pid));
                child.wait().await.ok()
            }
        };
        // The rest of the output, then stragglers that still hold the terminal.
        let _ = tokio::time::timeout(Duration::from_millis(500), reader).await;
        kill_group(Some(pid));
        use std::os::unix::process::ExitStatusExt;
        let exit_code = status.and_then(|s| s.code());
        let signal = status.and_then(|s| s.signal());
        {
            let mut i = lock(&sess.inner);
            i.exit = Some((exit_code, signal));
            i.watch = None;
        }
        sess.publish(Out::Exit { exit_code, signal });
        let _ = done_tx.send(true);
        drop(slot);
        if let Some(st) = weak_st.upgrade() {
            let mut map = lock(&st.pty.sessions);
            if map.get(&key).is_some_and(|x| Arc::ptr_eq(x, &sess)) {
                map.remove(&key);
            }
        }
    });
    Ok(s)
}

async fn read_output(s: Arc<Session>) {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let mut guard = match s.master.readable().await {
            Ok(g) => g,
            Err(_) => return,
        };
        match guard.try_io(|fd| rustix::io::read(fd.get_ref(), &mut buf[..]).map_err(Into::into)) {
            Ok(Ok(0)) | Ok(Err(_)) => return, // EIO: every holder of the terminal is gone
            Ok(Ok(n)) => {
                let bytes = Bytes::copy_from_slice(&buf[..n]);
                // Ring and broadcast under one lock: an attaching client sees every byte once.
                let mut i = lock(&s.inner);
                i.ring.extend(&bytes[..]);
                let excess = i.ring.len().saturating_sub(RING_BYTES);
                i.ring.drain(..excess);
                i.total += n as u64;
                let end = i.total;
                let _ = s.out.send(Out::Data { bytes, end });
            }
            Err(_would_block) => continue,
        }
    }
}

async fn write_input(master: Arc<AsyncFd<OwnedFd>>, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(mut chunk) = rx.recv().await {
        while !chunk.is_empty() {
            let mut guard = match master.writable().await {
                Ok(g) => g,
                Err(_) => return,
            };
            match guard.try_io(|fd| rustix::io::write(fd.get_ref(), &chunk).map_err(Into::into)) {
                Ok(Ok(n)) => {
                    let _ = chunk.split_to(n);
                }
                Ok(Err(_)) => return,
                Err(_would_block) => continue,
            }
        }
    }
}

#[derive(serde::Deserialize)]
pub struct PtyQuery {
    session: String,
    cols: Option<u32>,
    rows: Option<u32>,
}

/// `GET /projects/{id}/pty?session=NAME&cols=C&rows=R` (a WebSocket upgrade).
pub async fn pty_route(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<PtyQuery>,
    axum::Extension(user): axum::Extension<crate::auth::ActingUser>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    check_project_id(&id)?;
    if !valid_pty_session(&q.session) {
        return Err(ApiError::bad_request(
            "invalid_session",
            "session must be 1-32 characters of a-z, 0-9 and -",
        ));
    }
    let cols = clamp(q.cols, DEFAULT_COLS, PTY_MAX_COLS);
    let rows = clamp(q.rows, DEFAULT_ROWS, PTY_MAX_ROWS);
    let (s, created) = st.pty.session(&st, &id, &q.session, cols, rows, &user.0)?;
    if !created && (q.cols.is_some() || q.rows.is_some()) {
        s.resize(cols, rows);
    }
    // Counted from now, so the reaper never takes a session between here and the upgrade.
    let guard = attach(&s);
    Ok(ws
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| serve_client(socket, guard)))
}

fn attach(s: &Arc<Session>) -> ClientGuard {
    let mut i = lock(&s.inner);
    i.clients += 1;
    if i.watch.is_none() && i.exit.is_none() {
        let out = s.out.clone();
        i.watch = Some(watch::Watch::start(s.project_dir.clone(), move || {
            let _ = out.send(Out::Changed);
        }));
    }
    ClientGuard(s.clone())
}

fn event(e: &PtyEvent) -> Message {
    Message::Text(serde_json::to_string(e).unwrap_or_default().into())
}

/// How far into a wrapped scrollback ring the replay should start so that it begins at a
/// clean point: just after the first line break within the first 4 KiB, else at the first
/// byte that starts neither a UTF-8 continuation nor the middle of an escape sequence.
fn clean_start(ring: &[u8]) -> usize {
    const LOOK: usize = 4096;
    let head = &ring[..ring.len().min(LOOK)];
    if let Some(nl) = head.iter().position(|&b| b == b'\n') {
        return nl + 1;
    }
    // No line break: skip continuation bytes, then anything up to the end of an escape
    // sequence that may have begun before the ring's start (CSI parameters and their final).
    let mut i = head
        .iter()
        .take_while(|&&b| (0x80..0xC0).contains(&b))
        .count();
    let params = head[i..]
        .iter()
        .take_while(|&&b| b.is_ascii_digit() || b == b';' || b == b'?')
        .count();
    if params > 0
        && head
            .get(i + params)
            .is_some_and(|b| (0x40..0x7F).contains(b))
    {
        i += params + 1;
    }
    i
}

async fn serve_client(socket: WebSocket, guard: ClientGuard) {
    let s = guard.0.clone();
    let (mut sink, mut stream) = socket.split();
    // The replay and the subscription are taken together: no byte is lost or sent twice.
    let (replay, mut rx, mut seen, hello, exited) = {
        let i = lock(&s.inner);
        let mut replay: Vec<u8> = i.ring.iter().copied().collect();
        if i.total > replay.len() as u64 {
            // The ring wrapped: its first bytes may be the tail of a line, a UTF-8 character
            // or an escape sequence, which a terminal would render as garbage.
            replay.drain(..clean_start(&replay));
        }
        let hello = PtyEvent::Hello {
            session: s.name.clone(),
            cols: i.cols,
            rows: i.rows,
            replayed_bytes: replay.len() as u64,
        };
        (replay, s.out.subscribe(), i.total, hello, i.exit)
    };
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<PtyEvent>(8);
    let writer = async move {
        sink.send(event(&hello)).await?;
        for chunk in replay.chunks(64 * 1024) {
            sink.send(Message::Binary(Bytes::copy_from_slice(chunk)))
                .await?;
        }
        let mut ended = exited;
        while ended.is_none() {
            tokio::select! {
                m = rx.recv() => match m {
                    Ok(Out::Data { bytes, end }) => {
                        let start = end - bytes.len() as u64;
                        if start > seen {
                            sink.send(event(&PtyEvent::Skipped { skipped_bytes: start - seen })).await?;
                        }
                        seen = end;
                        sink.send(Message::Binary(bytes)).await?;
                    }
                    Ok(Out::Changed) => sink.send(event(&PtyEvent::Changed {})).await?,
                    Ok(Out::Exit { exit_code, signal }) => ended = Some((exit_code, signal)),
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => {
                        ended = Some(lock(&s.inner).exit.unwrap_or((None, None)));
                    }
                },
                e = ctl_rx.recv() => match e {
                    Some(e) => sink.send(event(&e)).await?,
                    None => return Ok(()),
                },
            }
        }
        if let Some((exit_code, signal)) = ended {
            sink.send(event(&PtyEvent::Exit { exit_code, signal }))
                .await?;
        }
        let _ = sink.close().await;
        Ok::<(), axum::Error>(())
    };
    let input = guard.0.input.clone();
    let sess = guard.0.clone();
    let reader = async move {
        while let Some(Ok(m)) = stream.next().await {
            match m {
                Message::Binary(b) => {
                    // Waits while the shell does not read: back-pressure down to the socket.
                    let sent = input.send(b).await;
                    if sent.is_err() {
                        return;
                    }
                }
                Message::Text(t) => match serde_json::from_str::<PtyControl>(t.as_str()) {
                    Ok(PtyControl::Resize { cols, rows }) => {
                        if cols == 0 || rows == 0 || cols > PTY_MAX_COLS || rows > PTY_MAX_ROWS {
                            let message = format!(
                                "resize to {cols}x{rows} refused: cols must be 1-{PTY_MAX_COLS} and rows 1-{PTY_MAX_ROWS}"
                            );
                            let _ = ctl_tx.send(PtyEvent::Error { message }).await;
                        } else {
                            sess.resize(cols, rows);
                        }
                    }
                    Ok(PtyControl::Ping) => {
                        let _ = ctl_tx.send(PtyEvent::Pong {}).await;
                    }
                    Err(e) => {
                        let message = format!("unknown control frame: {e}");
                        let _ = ctl_tx.send(PtyEvent::Error { message }).await;
                    }
                },
                Message::Close(_) => return,
                _ => {}
            }
        }
    };
    // Either side ending ends the client: the socket closed, or the shell exited.
    tokio::select! {
        _ = writer => {}
        _ = reader => {}
    }
    drop(guard);
}

#[cfg(test)]
mod tests {
    use super::clean_start;

    #[test]
    fn a_wrapped_ring_replays_from_the_first_line_break() {
        assert_eq!(clean_start(b"tail of a line\nnext\n"), 15);
        assert_eq!(clean_start(b"[1;31mred\x1b[0m\nok"), 14);
    }

    #[test]
    fn without_a_line_break_partial_characters_and_sequences_are_skipped() {
        // The last two bytes of a three-byte character, then text.
        assert_eq!(clean_start(b"\x82\xacabc"), 2);
        // The parameters and final byte of a CSI whose ESC [ fell off the ring.
        assert_eq!(clean_start(b"1;31mred"), 5);
        // Plain text starts where it is.
        assert_eq!(clean_start(b"plain"), 0);
        assert_eq!(clean_start(b""), 0);
    }
}
