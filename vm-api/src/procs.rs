//! Named long-running processes (dev servers) per project: start, list, logs (ring buffer and
//! follow), stop, restart, crash reports, and stopping them all on shutdown.

use crate::error::{check_cwd, check_env, check_project_id, parse_json, ApiError};
use crate::process::{kill_group, ndjson, ndjson_response, pump, spawn_in_group, StreamKind};
use crate::sandbox::CommandSpec;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use open_replit_core::vm_api::{
    LogFollowEvent, LogLine, LogStream, LogsQuery, LogsReply, ProcessInfo, ProcessList,
    ProcessStatus as Status, ReadyQuery, ReadyReply, StartProcessRequest,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};

/// Lines kept per process.
pub const LOG_RING_LINES: usize = 2000;
/// A line longer than this is split, so one chatty line cannot eat the ring.
const MAX_LINE_BYTES: usize = 8 * 1024;
/// Lines included with an exited process's status, for the agent to read.
pub(crate) const LAST_LINES_ON_EXIT: usize = 20;
const MAX_PROCESSES_PER_PROJECT: usize = 16;

#[derive(Debug, Clone)]
enum LogEvent {
    Line(LogLine),
    Exit,
}

/// What a managed process runs, and where (a deployment's backend runs from its deployment
/// directory, with its data folder as home: see `deploy_service`).
pub(crate) struct Spec {
    pub project_id: String,
    pub command: String,
    pub cwd: String,
    pub env: BTreeMap<String, String>,
    pub port: u16,
    pub project_dir: PathBuf,
    pub home_dir: PathBuf,
}

struct ProcState {
    pid: Option<u32>,
    status: Status,
    exit_code: Option<i32>,
    signal: Option<i32>,
    started_at_ms: u64,
    restarts: u32,
    generation: u64,
    stopping: bool,
}

/// One named process and everything the API reports about it.
pub struct Managed {
    pub name: String,
    order: u64,
    spec: Spec,
    st: Mutex<ProcState>,
    logs: Mutex<VecDeque<LogLine>>,
    next_seq: AtomicU64,
    events: broadcast::Sender<LogEvent>,
    /// The generation whose run has fully ended.
    finished: watch::Sender<u64>,
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Managed {
    /// A process that has not run yet (`launch` starts it).
    pub(crate) fn new(name: String, order: u64, spec: Spec) -> Arc<Managed> {
        Arc::new(Managed {
            name,
            order,
            spec,
            st: Mutex::new(ProcState {
                pid: None,
                status: Status::Exited,
                exit_code: None,
                signal: None,
                started_at_ms: 0,
                restarts: 0,
                generation: 0,
                stopping: false,
            }),
            logs: Mutex::new(VecDeque::new()),
            next_seq: AtomicU64::new(0),
            events: broadcast::channel(1024).0,
            finished: watch::channel(0).0,
        })
    }

    pub(crate) fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The current (or last) run.
    pub(crate) fn generation(&self) -> u64 {
        lock(&self.st).generation
    }

    /// Waits until run `generation` has fully ended.
    pub(crate) async fn ended(&self, generation: u64) {
        let mut rx = self.finished.subscribe();
        let _ = rx.wait_for(|g| *g >= generation).await;
    }

    /// Counts one more start after the first.
    pub(crate) fn count_restart(&self) {
        lock(&self.st).restarts += 1;
    }

    pub fn port(&self) -> u16 {
        self.spec.port
    }

    pub fn is_running(&self) -> bool {
        lock(&self.st).status == Status::Running
    }

    fn push_line(&self, stream: LogStream, line: String) {
        let l = LogLine {
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
            stream,
            line,
            ts_ms: now_ms(),
        };
        {
            let mut logs = lock(&self.logs);
            if logs.len() >= LOG_RING_LINES {
                logs.pop_front();
            }
            logs.push_back(l.clone());
        }
        let _ = self.events.send(LogEvent::Line(l));
    }

    pub fn tail(&self, n: usize) -> Vec<LogLine> {
        let logs = lock(&self.logs);
        logs.iter()
            .skip(logs.len().saturating_sub(n))
            .cloned()
            .collect()
    }

    /// The process as the API reports it; `last_lines` only when it is not running.
    pub fn info(&self) -> ProcessInfo {
        let st = lock(&self.st);
        let mut info = ProcessInfo {
            name: self.name.clone(),
            command: self.spec.command.clone(),
            cwd: self.spec.cwd.clone(),
            pid: st.pid,
            port: self.spec.port,
            status: st.status,
            exit_code: st.exit_code,
            signal: st.signal,
            started_at: st.started_at_ms,
            restarts: st.restarts,
            last_lines: None,
        };
        if st.status != Status::Running {
            drop(st);
            info.last_lines = Some(
                self.tail(LAST_LINES_ON_EXIT)
                    .into_iter()
                    .map(|l| l.line)
                    .collect(),
            );
        }
        info
    }

    /// Starts a new run (generation) of the process; `slot` (its place under the host's caps)
    /// is held until the run ends.
    pub(crate) fn launch(
        self: &Arc<Self>,
        sandbox: &dyn crate::sandbox::Sandbox,
        slot: crate::admission::Slot,
    ) -> Result<(), ApiError> {
        let mut env = self.spec.env.clone();
        env.insert("PORT".into(), self.spec.port.to_string());
        env.entry("HOST".into())
            .or_insert_with(|| "127.0.0.1".into());
        let cmd = sandbox.command(&CommandSpec {
            project_id: &self.spec.project_id,
            project_dir: &self.spec.project_dir,
            home_dir: &self.spec.home_dir,
            cwd: &self.spec.cwd,
            shell: &self.spec.command,
            env: &env,
        })?;
        let mut child = spawn_in_group(cmd)
            .map_err(|e| ApiError::internal("spawn_failed", format!("could not start: {e}")))?;
        let generation = {
            let mut st = lock(&self.st);
            st.generation += 1;
            st.pid = child.id();
            st.status = Status::Running;
            st.exit_code = None;
            st.signal = None;
            st.stopping = false;
            st.started_at_ms = now_ms();
            st.generation
        };
        let (ctx, mut crx) = mpsc::channel::<(StreamKind, Vec<u8>)>(32);
        if let Some(o) = child.stdout.take() {
            pump(o, StreamKind::Stdout, ctx.clone());
        }
        if let Some(e) = child.stderr.take() {
            pump(e, StreamKind::Stderr, ctx.clone());
        }
        drop(ctx);
        let me = self.clone();
        tokio::spawn(async move {
            let pid = child.id();
            let lines = async {
                let mut bufs: HashMap<LogStream, Vec<u8>> = HashMap::new();
                while let Some((kind, bytes)) = crx.recv().await {
                    let buf = bufs.entry(kind.log_stream()).or_default();
                    buf.extend_from_slice(&bytes);
                    while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=i).collect();
                        let text = String::from_utf8_lossy(&line[..line.len() - 1]);
                        me.push_line(kind.log_stream(), text.trim_end_matches('\r').to_string());
                    }
                    while buf.len() > MAX_LINE_BYTES {
                        let part: Vec<u8> = buf.drain(..MAX_LINE_BYTES).collect();
                        me.push_line(
                            kind.log_stream(),
                            String::from_utf8_lossy(&part).into_owned(),
                        );
                    }
                }
                for (stream, buf) in bufs {
                    if !buf.is_empty() {
                        me.push_line(stream, String::from_utf8_lossy(&buf).into_owned());
                    }
                }
            };
            let (status, ()) = tokio::join!(child.wait(), lines);
            // The sandbox is gone with bwrap; reap any straggler of an unsandboxed group.
            kill_group(pid);
            let (code, signal) = match status {
                Ok(s) => (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)),
                Err(_) => (None, None),
            };
            {
                let mut st = lock(&me.st);
                if st.generation == generation {
                    st.status = if st.stopping {
                        Status::Stopped
                    } else {
                        Status::Exited
                    };
                    st.exit_code = code;
                    st.signal = signal;
                    st.pid = None;
                }
            }
            let note = match (code, signal) {
                (Some(c), _) => format!("[process exited with code {c}]"),
                (None, Some(s)) => format!("[process killed by signal {s}]"),
                _ => "[process ended]".to_string(),
            };
            me.push_line(LogStream::System, note);
            let _ = me.events.send(LogEvent::Exit);
            // The place under the host's caps is free before anyone waiting on the end hears of it.
            drop(slot);
            me.finished.send_replace(generation);
        });
        Ok(())
    }

    /// Kills the current run's process group and waits (bounded) until it has ended.
    pub async fn stop(&self) {
        let (pid, generation) = {
            let mut st = lock(&self.st);
            if st.status != Status::Running {
                return;
            }
            st.stopping = true;
            (st.pid, st.generation)
        };
        kill_group(pid);
        let mut rx = self.finished.subscribe();
        let _ =
            tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|g| *g >= generation)).await;
    }
}

/// All managed processes, by project then name.
#[derive(Default)]
pub struct ProcessManager {
    procs: Mutex<HashMap<String, BTreeMap<String, Arc<Managed>>>>,
    order: AtomicU64,
}

impl ProcessManager {
    pub fn get(&self, project: &str, name: &str) -> Option<Arc<Managed>> {
        lock(&self.procs).get(project)?.get(name).cloned()
    }

    pub fn list(&self, project: &str) -> Vec<Arc<Managed>> {
        let mut v: Vec<_> = lock(&self.procs)
            .get(project)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by_key(|m| m.order);
        v
    }

    /// The dev server the preview shows: a running `web`, else the earliest-started running
    /// process.
    pub fn preview_target(&self, project: &str) -> Option<Arc<Managed>> {
        let running: Vec<_> = self
            .list(project)
            .into_iter()
            .filter(|m| m.is_running())
            .collect();
        running
            .iter()
            .find(|m| m.name == "web")
            .or_else(|| running.first())
            .cloned()
    }

    fn remove(&self, project: &str, name: &str) -> Option<Arc<Managed>> {
        let mut g = lock(&self.procs);
        let m = g.get_mut(project)?;
        let out = m.remove(name);
        if m.is_empty() {
            g.remove(project);
        }
        out
    }

    /// Stops and forgets every dev server of `project` (the project is being removed).
    pub async fn remove_project(&self, project: &str) -> usize {
        let gone: Vec<Arc<Managed>> = lock(&self.procs)
            .remove(project)
            .map(|m| m.into_values().collect())
            .unwrap_or_default();
        for m in &gone {
            m.stop().await;
        }
        gone.len()
    }

    pub async fn stop_all(&self) {
        let all: Vec<Arc<Managed>> = lock(&self.procs)
            .values()
            .flat_map(|m| m.values().cloned())
            .collect();
        for m in all {
            m.stop().await;
        }
    }
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_process_name",
            "process name must be 1 to 64 characters of a-z, 0-9, '-' and '_'",
        ))
    }
}

/// A port nothing listens on right now (the OS picks it; we release it for the child).
pub(crate) fn free_port() -> Result<u16, ApiError> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| ApiError::internal("no_free_port", e.to_string()))
}

pub async fn start_route(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_project_id(&id)?;
    let req: StartProcessRequest = parse_json(&body)?;
    check_name(&req.name)?;
    check_cwd(&req.cwd)?;
    check_env(&req.env)?;
    if req.command.is_empty() || req.command.contains('\0') {
        return Err(ApiError::bad_request(
            "invalid_command",
            "command must be a non-empty string without NUL bytes",
        ));
    }
    let port = match req.port {
        Some(p) if p < 1024 || st.is_own_port(p) => {
            return Err(ApiError::bad_request(
                "invalid_port",
                format!("port {p} is privileged or belongs to the VM API; use 1024-65535"),
            ))
        }
        Some(p) => p,
        None => free_port()?,
    };
    let (project_dir, home_dir) = st.ensure_project_dirs(&id)?;
    st.check_cwd_exists(&project_dir, &req.cwd)?;
    if let Some(old) = st.processes.get(&id, &req.name) {
        if old.is_running() {
            return Err(ApiError::conflict(
                "process_exists",
                format!(
                    "process {:?} is already running; restart or stop it first",
                    req.name
                ),
            ));
        }
    }
    let m = Managed::new(
        req.name.clone(),
        st.processes.order.fetch_add(1, Ordering::Relaxed),
        Spec {
            project_id: id.clone(),
            command: req.command,
            cwd: req.cwd,
            env: req.env,
            port,
            project_dir,
            home_dir,
        },
    );
    {
        let mut g = lock(&st.processes.procs);
        let procs = g.entry(id.clone()).or_default();
        if procs.get(&req.name).is_some_and(|o| o.is_running()) {
            return Err(ApiError::conflict(
                "process_exists",
                format!("process {:?} is already running", req.name),
            ));
        }
        if !procs.contains_key(&req.name) && procs.len() >= MAX_PROCESSES_PER_PROJECT {
            return Err(ApiError::conflict(
                "too_many_processes",
                format!("a project may have at most {MAX_PROCESSES_PER_PROJECT} processes"),
            ));
        }
        procs.insert(req.name.clone(), m.clone());
    }
    let launched = st
        .admission
        .dev_server()
        .and_then(|slot| m.launch(st.sandbox.as_ref(), slot));
    if let Err(e) = launched {
        st.processes.remove(&id, &req.name);
        return Err(e);
    }
    Ok((StatusCode::CREATED, Json(m.info())).into_response())
}

pub async fn list_route(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<ProcessList>, ApiError> {
    check_project_id(&id)?;
    let processes = st.processes.list(&id).iter().map(|m| m.info()).collect();
    Ok(Json(ProcessList { processes }))
}

fn find(st: &AppState, id: &str, name: &str) -> Result<Arc<Managed>, ApiError> {
    check_project_id(id)?;
    check_name(name)?;
    st.processes
        .get(id, name)
        .ok_or_else(|| ApiError::not_found("no_such_process", format!("no process named {name:?}")))
}

pub async fn stop_route(
    State(st): State<Arc<AppState>>,
    UrlPath((id, name)): UrlPath<(String, String)>,
) -> Result<Json<ProcessInfo>, ApiError> {
    let m = find(&st, &id, &name)?;
    m.stop().await;
    let info = m.info();
    st.processes.remove(&id, &name);
    Ok(Json(info))
}

pub async fn restart_route(
    State(st): State<Arc<AppState>>,
    UrlPath((id, name)): UrlPath<(String, String)>,
) -> Result<Json<ProcessInfo>, ApiError> {
    let m = find(&st, &id, &name)?;
    m.stop().await;
    m.count_restart();
    m.launch(st.sandbox.as_ref(), st.admission.dev_server()?)?;
    Ok(Json(m.info()))
}

/// `GET .../processes/{name}/ready`: waits until the process accepts connections on its port
/// (`ready: true`), exits, or `timeout_ms` (default 15 s, at most 120 s) passes.
pub async fn ready_route(
    State(st): State<Arc<AppState>>,
    UrlPath((id, name)): UrlPath<(String, String)>,
    Query(q): Query<ReadyQuery>,
) -> Result<Json<ReadyReply>, ApiError> {
    let m = find(&st, &id, &name)?;
    let wait = Duration::from_millis(q.timeout_ms.unwrap_or(15_000).min(120_000));
    let deadline = tokio::time::Instant::now() + wait;
    let mut exits = m.finished.subscribe();
    let t0 = std::time::Instant::now();
    let answer = |ready: bool| {
        tracing::info!(project = %id, name = %name, ready, waited_ms = t0.elapsed().as_millis() as u64, "ready check");
        Ok(Json(ReadyReply {
            ready,
            process: m.info(),
        }))
    };
    loop {
        if !m.is_running() {
            return answer(false);
        }
        let (sb, project, port) = (st.sandbox.clone(), id.clone(), m.port());
        let up = tokio::task::spawn_blocking(move || sb.connect(&project, port).is_ok())
            .await
            .unwrap_or(false);
        if up && m.is_running() {
            return answer(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return answer(false);
        }
        // Poll the port; an exit wakes us at once.
        let _ = tokio::time::timeout(Duration::from_millis(50), exits.changed()).await;
    }
}

/// `GET .../processes/{name}/logs?tail=N`: the last lines of the ring; with `follow=1`, NDJSON
/// of the tail and then live lines until the process ends.
pub async fn logs_route(
    State(st): State<Arc<AppState>>,
    UrlPath((id, name)): UrlPath<(String, String)>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    let m = find(&st, &id, &name)?;
    logs_response(&st, m, q)
}

/// The log reply of one managed process (a dev server or a deployment's backend): the last
/// `tail` lines of its ring, or with `follow` NDJSON of them and then live lines until it ends.
pub(crate) fn logs_response(
    st: &AppState,
    m: Arc<Managed>,
    q: LogsQuery,
) -> Result<Response, ApiError> {
    let tail = q.tail.unwrap_or(100).min(LOG_RING_LINES as u64) as usize;
    let follow = matches!(q.follow.as_deref(), Some("1" | "true" | "yes"));
    if !follow {
        let info = m.info();
        return Ok(Json(LogsReply {
            name: m.name.clone(),
            status: info.status,
            exit_code: info.exit_code,
            lines: m.tail(tail),
        })
        .into_response());
    }
    // Subscribe before taking the snapshot so no line falls between them.
    let mut events = m.events.subscribe();
    let snapshot = m.tail(tail);
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let mut shutdown = st.shutdown_signal();
    tokio::spawn(async move {
        let line_json = |l: &LogLine| ndjson(&LogFollowEvent::Log(l.clone()));
        let mut last_seq = None;
        for l in &snapshot {
            if tx.send(line_json(l)).await.is_err() {
                return;
            }
            last_seq = Some(l.seq);
        }
        let exit_event = |m: &Managed| {
            let info = m.info();
            ndjson(&LogFollowEvent::Exit {
                status: info.status,
                exit_code: info.exit_code,
                signal: info.signal,
            })
        };
        if !m.is_running() {
            let _ = tx.send(exit_event(&m)).await;
            return;
        }
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                _ = shutdown.changed() => return,
                ev = events.recv() => match ev {
                    Ok(LogEvent::Line(l)) => {
                        if last_seq.is_some_and(|s| l.seq <= s) { continue; }
                        if tx.send(line_json(&l)).await.is_err() { return; }
                    }
                    Ok(LogEvent::Exit) => {
                        // A restart's exit is followed by a new run; report only a final end.
                        if !m.is_running() {
                            let _ = tx.send(exit_event(&m)).await;
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        if tx.send(ndjson(&LogFollowEvent::Lagged { skipped: n })).await.is_err() { return; }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    });
    ndjson_response(rx)
}
