//! Deployments' backends as supervised production services: a candidate started from
//! `{data_dir}/deploy/{project}/{deployment}/` in the project's sandbox behind a health gate,
//! activation as the project's one live backend (`live.json`, `keep`), restarts with backoff,
//! the `/projects/{id}/live/…` reverse proxy, restore on boot and stop on shutdown.
//!
//! A backend is a `procs::Managed` process (its log ring, pump and process-group handling) that
//! no dev-server list, preview or idle reaper sees. Its sandbox has the deployment directory
//! as `/project` and the project's persistent data folder `{data_dir}/deploy-data/{project}/`
//! as its home `/home/user`, where `DATABASE_PATH` points.

use crate::error::{check_env, check_project_id, parse_json, ApiError};
use crate::procs::{free_port, now_ms, Managed, Spec, LAST_LINES_ON_EXIT};
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use open_replit_core::deploy::service::{
    validate_deployment_id, ActivateReply, Backoff, LiveRecord, LiveReply, ServiceStatus,
    StartBackendReply, StartBackendRequest, UnpublishReply, DATABASE_FILE,
};
use open_replit_core::vm_api::{LogsQuery, LogsReply, ProcessStatus};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The deployment's live record, under `{data_dir}/deploy/{project}/`.
pub const LIVE_FILE: &str = "live.json";
/// Deployments the build side must not delete, one per line, beside `live.json`.
pub const KEEP_FILE: &str = "keep";
/// Candidates (started, not live) kept per project; stopped ones make room for new ones.
const MAX_CANDIDATES: usize = 8;
/// One health probe's limit.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `{data_dir}/deploy/{project}`: the build's deployments, `live.json` and `keep`.
pub fn deploy_root(st: &AppState, project: &str) -> PathBuf {
    st.data_dir.join("deploy").join(project)
}

/// `{data_dir}/deploy-data/{project}`: the data that outlives every deployment.
pub fn data_folder(st: &AppState, project: &str) -> PathBuf {
    st.data_dir.join("deploy-data").join(project)
}

struct Ctl {
    /// Stopped for good (replaced, unpublished, failed its start, shutdown): never relaunched.
    retired: bool,
    /// Answered its health path once.
    healthy: bool,
    phase: ServiceStatus,
    error: Option<String>,
    /// When the current run answered its health path; the backoff starts over after a minute
    /// of that.
    healthy_since: Option<Instant>,
}

/// One deployment's backend process and what the supervisor knows about it.
pub struct Backend {
    pub deployment: String,
    spec: StartBackendRequest,
    m: Arc<Managed>,
    ctl: Mutex<Ctl>,
}

impl Backend {
    fn new(
        st: &AppState,
        project: &str,
        deployment: &str,
        spec: StartBackendRequest,
    ) -> Result<Arc<Backend>, ApiError> {
        let data = data_folder(st, project);
        std::fs::create_dir_all(&data).map_err(|e| {
            ApiError::internal("data_dir", format!("cannot create {}: {e}", data.display()))
        })?;
        let port = free_port()?;
        let mut env = spec.env.clone();
        env.insert(
            "DATABASE_PATH".into(),
            format!("{}/{DATABASE_FILE}", crate::sandbox::HOME_MOUNT),
        );
        env.insert(spec.port_env.clone(), port.to_string());
        let m = Managed::new(
            deployment.to_string(),
            0,
            Spec {
                project_id: project.to_string(),
                command: spec.command.clone(),
                cwd: spec.backend_dir.clone(),
                env,
                port,
                project_dir: deploy_root(st, project).join(deployment),
                home_dir: data,
            },
        );
        Ok(Arc::new(Backend {
            deployment: deployment.to_string(),
            spec,
            m,
            ctl: Mutex::new(Ctl {
                retired: false,
                healthy: false,
                phase: ServiceStatus::Running,
                error: None,
                healthy_since: None,
            }),
        }))
    }

    /// Starts a run unless the backend was retired; the run holds a dev-server place under the
    /// host's caps.
    fn launch(&self, st: &AppState) -> Result<(), ApiError> {
        let mut ctl = lock(&self.ctl);
        if ctl.retired {
            return Err(ApiError::conflict(
                "deployment_stopped",
                "the deployment was stopped",
            ));
        }
        // Checked here, not only at `start`: a restored or restarted backend whose build was
        // deleted is reported as such (the sandbox would create an empty directory instead).
        let dir = &self.m.spec().project_dir;
        let result = if dir.is_dir() {
            st.admission
                .dev_server()
                .and_then(|slot| self.m.launch(st.sandbox.as_ref(), slot))
        } else {
            Err(ApiError::not_found(
                "no_such_deployment",
                format!("the deployment's directory {} is missing", dir.display()),
            ))
        };
        match &result {
            // `Running` only once its health path answers (`gate`).
            Ok(()) => ctl.healthy_since = None,
            Err(e) => {
                ctl.phase = ServiceStatus::Crashed;
                ctl.error = Some(e.message.clone());
            }
        }
        result
    }

    /// Stops it for good and waits (bounded) for its process group to end.
    async fn retire(&self) {
        lock(&self.ctl).retired = true;
        self.m.stop().await;
    }

    fn is_retired(&self) -> bool {
        lock(&self.ctl).retired
    }

    /// Healthy once and still running: the only state that may become live.
    fn is_serving(&self) -> bool {
        let ctl = lock(&self.ctl);
        ctl.healthy && !ctl.retired && self.m.is_running()
    }

    fn status(&self) -> LiveReply {
        let info = self.m.info();
        let ctl = lock(&self.ctl);
        let mut status = ctl.phase;
        if status == ServiceStatus::Running && info.status != ProcessStatus::Running {
            // Exited; the supervisor is about to notice.
            status = ServiceStatus::Restarting;
        }
        LiveReply {
            deployment: self.deployment.clone(),
            status,
            restarts: info.restarts,
            started_at: info.started_at,
            error: ctl.error.clone(),
            last_lines: info.last_lines,
        }
    }
}

#[derive(Default)]
struct ProjectBackends {
    live: Option<Arc<Backend>>,
    /// Started, not (yet) live: healthy ones wait for `activate`, failed ones keep their logs.
    candidates: HashMap<String, Arc<Backend>>,
}

/// Every project's live backend and candidates on this host.
#[derive(Default)]
pub struct Deployments {
    projects: Mutex<HashMap<String, ProjectBackends>>,
    /// Per project: held while the set of candidates or the live backend changes, so the
    /// records can be written without holding `projects` (which every proxied request reads).
    switches: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Deployments {
    fn switch_lock(&self, project: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.switches)
            .entry(project.to_string())
            .or_default()
            .clone()
    }

    /// Whether the project has a live backend or a running candidate (the idle reaper then
    /// leaves its network alone).
    pub fn runs(&self, project: &str) -> bool {
        lock(&self.projects)
            .get(project)
            .is_some_and(|p| p.live.is_some() || p.candidates.values().any(|b| b.m.is_running()))
    }

    fn live(&self, project: &str) -> Option<Arc<Backend>> {
        lock(&self.projects).get(project)?.live.clone()
    }

    fn find(&self, project: &str, deployment: &str) -> Option<Arc<Backend>> {
        let g = lock(&self.projects);
        let p = g.get(project)?;
        p.live
            .iter()
            .find(|b| b.deployment == deployment)
            .or_else(|| p.candidates.get(deployment))
            .cloned()
    }

    /// Stops and forgets the live backend and every candidate of `project` (the project is
    /// being removed; its folders go with it).
    pub async fn remove_project(&self, project: &str) -> usize {
        let switch = self.switch_lock(project);
        let _switching = switch.lock().await;
        let gone: Vec<Arc<Backend>> = lock(&self.projects)
            .remove(project)
            .map(|p| {
                p.live
                    .into_iter()
                    .chain(p.candidates.into_values())
                    .collect()
            })
            .unwrap_or_default();
        for b in &gone {
            b.retire().await;
        }
        lock(&self.switches).remove(project);
        gone.len()
    }

    /// Stops every backend (service shutdown); `live.json` stays, so the next start restores.
    pub async fn stop_all(&self) {
        let all: Vec<Arc<Backend>> = lock(&self.projects)
            .values()
            .flat_map(|p| p.live.iter().chain(p.candidates.values()).cloned())
            .collect();
        for b in all {
            b.retire().await;
        }
    }
}

fn check_deployment_id(id: &str) -> Result<(), ApiError> {
    validate_deployment_id(id).map_err(|m| ApiError::bad_request("invalid_deployment_id", m))
}

fn check_ids(project: &str, deployment: &str) -> Result<(), ApiError> {
    check_project_id(project)?;
    check_deployment_id(deployment)
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, synced, then renamed.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp-{}-{}", std::process::id(), now_ms()));
    let result = (|| {
        // Owner-only: a live record holds the backend's environment (the app's secrets).
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Asks the backend for `path` once: its status, or why it did not answer.
async fn probe(st: &AppState, project: &str, port: u16, path: &str) -> Result<StatusCode, String> {
    let attempt = async {
        let mut sender = crate::preview::connect_upstream(st, project, port).await?;
        let req = axum::http::Request::get(path)
            .header(header::HOST, format!("127.0.0.1:{port}"))
            .body(Body::empty())
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        Ok(resp.status())
    };
    tokio::time::timeout(PROBE_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())))
}

/// Waits until the health path answers 2xx; `Err` says why it never did.
async fn wait_healthy(st: &AppState, project: &str, b: &Backend) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(b.spec.health_timeout_s);
    let generation = b.m.generation();
    loop {
        if !b.m.is_running() {
            return Err(format!(
                "the command exited before {} answered",
                b.spec.health_path
            ));
        }
        let last = match probe(st, project, b.m.port(), &b.spec.health_path).await {
            Ok(s) if s.is_success() => return Ok(()),
            Ok(s) => format!("it answered {s}"),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "{} did not answer 2xx within {} s ({last})",
                b.spec.health_path, b.spec.health_timeout_s
            ));
        }
        // Poll again soon; an exit wakes us at once.
        let _ = tokio::time::timeout(Duration::from_millis(100), b.m.ended(generation)).await;
    }
}

/// Keeps a live backend running: each exit is followed by a new run after the backoff, until
/// the backend is retired or the service shuts down.
fn supervise(st: Arc<AppState>, project: String, b: Arc<Backend>, launch_first: bool) {
    let mut stop = st.shutdown_signal();
    tokio::spawn(async move {
        let mut backoff = Backoff::default();
        let mut launch = launch_first;
        loop {
            if launch {
                match b.launch(&st) {
                    Ok(()) => gate(&st, &project, &b).await,
                    Err(e) => {
                        tracing::error!(project = %project, deployment = %b.deployment, "live backend did not start: {e}")
                    }
                }
            }
            launch = true;
            // A failed launch did not start a new run: `ended` returns at once.
            b.m.ended(b.m.generation()).await;
            if b.is_retired() {
                return;
            }
            let ran_ms = {
                let mut ctl = lock(&b.ctl);
                if ctl.phase == ServiceStatus::Running {
                    ctl.phase = ServiceStatus::Restarting;
                }
                ctl.healthy_since
                    .map_or(0, |t| t.elapsed().as_millis() as u64)
            };
            let delay = backoff.next_delay(ran_ms);
            tracing::warn!(project = %project, deployment = %b.deployment, delay_ms = delay, "live backend exited; restarting");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(delay)) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if b.is_retired() {
                return;
            }
            b.m.count_restart();
        }
    });
}

/// After a restart (or the restore on boot) the backend is `running` again only once its health
/// path answers; a run that never does within `health_timeout_s` is stopped, so the supervisor
/// starts another after the backoff.
async fn gate(st: &AppState, project: &str, b: &Backend) {
    let health = wait_healthy(st, project, b).await;
    {
        let mut ctl = lock(&b.ctl);
        match &health {
            Ok(()) => {
                ctl.phase = ServiceStatus::Running;
                ctl.error = None;
                ctl.healthy_since = Some(Instant::now());
            }
            Err(e) => {
                ctl.phase = ServiceStatus::Restarting;
                ctl.error = Some(e.clone());
            }
        }
    }
    if let Err(e) = health {
        tracing::warn!(project = %project, deployment = %b.deployment, "live backend is not healthy: {e}");
        b.m.stop().await;
    }
}

/// `POST /projects/{id}/deployments/{deployment}/start`: starts the deployment's backend as a
/// candidate and waits for its health path. An unhealthy candidate is stopped and reported.
pub async fn start_route(
    State(st): State<Arc<AppState>>,
    UrlPath((id, deployment)): UrlPath<(String, String)>,
    body: Bytes,
) -> Result<Json<StartBackendReply>, ApiError> {
    check_ids(&id, &deployment)?;
    let spec: StartBackendRequest = parse_json(&body)?;
    spec.validate()
        .map_err(|e| ApiError::bad_request(e.code, e.message))?;
    check_env(&spec.env)?;
    let dir = deploy_root(&st, &id).join(&deployment);
    if !dir.is_dir() {
        return Err(ApiError::not_found(
            "no_such_deployment",
            format!("deployment {deployment} has not been built on this host"),
        ));
    }
    if !spec.backend_dir.is_empty() {
        st.check_cwd_exists(&dir, &spec.backend_dir)
            .map_err(|e| ApiError::bad_request("invalid_backend_dir", e.message))?;
    }
    let b = Backend::new(&st, &id, &deployment, spec)?;
    let switch = st.deployments.switch_lock(&id);
    let switching = switch.lock().await;
    let replaced = {
        let mut g = lock(&st.deployments.projects);
        let p = g.entry(id.clone()).or_default();
        if p.live.as_ref().is_some_and(|l| l.deployment == deployment) {
            return Err(ApiError::conflict(
                "deployment_live",
                format!("deployment {deployment} is live already"),
            ));
        }
        if p.candidates.len() >= MAX_CANDIDATES && !p.candidates.contains_key(&deployment) {
            // Stopped candidates are only kept for their logs.
            p.candidates.retain(|_, c| !c.is_retired());
            if p.candidates.len() >= MAX_CANDIDATES {
                return Err(ApiError::conflict(
                    "too_many_candidates",
                    format!(
                        "the project already runs {MAX_CANDIDATES} started deployments that are \
                         not live; activate or stop one"
                    ),
                ));
            }
        }
        p.candidates.insert(deployment.clone(), b.clone())
    };
    drop(switching);
    if let Some(old) = replaced {
        old.retire().await;
    }
    let t0 = Instant::now();
    if let Err(e) = b.launch(&st) {
        // Nothing ran (the host is full, no sandbox): an error to retry, not a failed candidate.
        b.retire().await;
        if let Some(p) = lock(&st.deployments.projects).get_mut(&id) {
            if p.candidates
                .get(&deployment)
                .is_some_and(|c| Arc::ptr_eq(c, &b))
            {
                p.candidates.remove(&deployment);
            }
        }
        return Err(e);
    }
    let health = wait_healthy(&st, &id, &b).await;
    let healthy = health.is_ok();
    if healthy {
        let mut ctl = lock(&b.ctl);
        ctl.healthy = true;
        ctl.healthy_since = Some(Instant::now());
    } else {
        b.retire().await;
    }
    let info = b.m.info();
    tracing::info!(project = %id, deployment = %deployment, healthy, "deployment backend started");
    Ok(Json(StartBackendReply {
        deployment,
        healthy,
        status: info.status,
        exit_code: info.exit_code,
        waited_ms: t0.elapsed().as_millis() as u64,
        last_lines: b
            .m
            .tail(LAST_LINES_ON_EXIT)
            .into_iter()
            .map(|l| l.line)
            .collect(),
        error: health.err(),
    }))
}

/// `POST /projects/{id}/deployments/{deployment}/activate`: makes a healthy started candidate
/// the live backend (recorded first), then stops the one it replaced.
pub async fn activate_route(
    State(st): State<Arc<AppState>>,
    UrlPath((id, deployment)): UrlPath<(String, String)>,
) -> Result<Json<ActivateReply>, ApiError> {
    check_ids(&id, &deployment)?;
    let switch = st.deployments.switch_lock(&id);
    let switching = switch.lock().await;
    let new = {
        let g = lock(&st.deployments.projects);
        let p = g.get(&id);
        if let Some(live) = p
            .and_then(|p| p.live.as_ref())
            .filter(|l| l.deployment == deployment)
        {
            return Ok(Json(ActivateReply {
                live: live.status(),
                previous: None,
            }));
        }
        let Some(cand) = p.and_then(|p| p.candidates.get(&deployment)).cloned() else {
            return Err(ApiError::conflict(
                "deployment_not_started",
                format!(
                    "deployment {deployment} was not started on this host; start it first \
                     (the live deployment keeps serving)"
                ),
            ));
        };
        if !cand.is_serving() {
            return Err(ApiError::conflict(
                "deployment_not_healthy",
                format!(
                    "deployment {deployment} is not running healthy (status {:?}); the live \
                     deployment keeps serving",
                    cand.m.info().status
                ),
            ));
        }
        cand
    };
    // Recorded before the switch: a restart of the VM API brings back what is live.
    let record = LiveRecord {
        deployment: deployment.clone(),
        spec: new.spec.clone(),
        activated_at: now_ms(),
    };
    let root = deploy_root(&st, &id);
    let keep = format!("{deployment}\n");
    tokio::task::spawn_blocking(move || {
        let json = serde_json::to_vec_pretty(&record).unwrap_or_default();
        write_atomic(&root.join(LIVE_FILE), &json)
            .and_then(|()| write_atomic(&root.join(KEEP_FILE), keep.as_bytes()))
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
    .map_err(|e| {
        ApiError::internal(
            "deploy_record",
            format!("cannot record the live deployment: {e}"),
        )
    })?;
    let old = {
        let mut g = lock(&st.deployments.projects);
        let p = g.entry(id.clone()).or_default();
        p.candidates.remove(&deployment);
        p.live.replace(new.clone())
    };
    drop(switching);
    supervise(st.clone(), id.clone(), new.clone(), false);
    if let Some(old) = &old {
        old.retire().await;
    }
    tracing::info!(project = %id, deployment = %deployment, previous = ?old.as_ref().map(|o| &o.deployment), "deployment is live");
    Ok(Json(ActivateReply {
        live: new.status(),
        previous: old.map(|o| o.deployment.clone()),
    }))
}

/// `POST /projects/{id}/deployments/{deployment}/stop`: stops a started candidate that is not
/// live (its logs stay readable until it makes room for another).
pub async fn stop_route(
    State(st): State<Arc<AppState>>,
    UrlPath((id, deployment)): UrlPath<(String, String)>,
) -> Result<Json<LogsReply>, ApiError> {
    check_ids(&id, &deployment)?;
    let b = {
        let g = lock(&st.deployments.projects);
        let p = g.get(&id);
        if p.and_then(|p| p.live.as_ref())
            .is_some_and(|l| l.deployment == deployment)
        {
            return Err(ApiError::conflict(
                "deployment_live",
                format!("deployment {deployment} is live; unpublish it instead"),
            ));
        }
        p.and_then(|p| p.candidates.get(&deployment).cloned())
            .ok_or_else(|| not_started(&deployment))?
    };
    b.retire().await;
    Ok(Json(logs_reply(&b, LAST_LINES_ON_EXIT)))
}

fn not_started(deployment: &str) -> ApiError {
    ApiError::not_found(
        "no_such_deployment",
        format!("deployment {deployment} was not started on this host"),
    )
}

fn logs_reply(b: &Backend, tail: usize) -> LogsReply {
    let info = b.m.info();
    LogsReply {
        name: b.deployment.clone(),
        status: info.status,
        exit_code: info.exit_code,
        lines: b.m.tail(tail),
    }
}

fn not_live(id: &str) -> ApiError {
    ApiError::not_found(
        "no_live_deployment",
        format!("project {id} has no live deployment on this host"),
    )
}

/// `GET /projects/{id}/deployments/live`.
pub async fn live_route(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<LiveReply>, ApiError> {
    check_project_id(&id)?;
    let b = st.deployments.live(&id).ok_or_else(|| not_live(&id))?;
    Ok(Json(b.status()))
}

/// `DELETE /projects/{id}/deployments/live`: unpublishes; the data folder stays.
pub async fn unpublish_route(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<UnpublishReply>, ApiError> {
    check_project_id(&id)?;
    let switch = st.deployments.switch_lock(&id);
    let _switching = switch.lock().await;
    let b = {
        let mut g = lock(&st.deployments.projects);
        let b = g
            .get_mut(&id)
            .and_then(|p| p.live.take())
            .ok_or_else(|| not_live(&id))?;
        let root = deploy_root(&st, &id);
        for f in [LIVE_FILE, KEEP_FILE] {
            match std::fs::remove_file(root.join(f)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    tracing::error!(project = %id, "cannot remove {f}: {e}")
                }
                _ => {}
            }
        }
        b
    };
    b.retire().await;
    Ok(Json(UnpublishReply {
        stopped: b.deployment.clone(),
    }))
}

/// `GET /projects/{id}/deployments/{deployment}/logs?tail=N[&follow=1]`: the backend's recent
/// lines, as for a dev server.
pub async fn logs_route(
    State(st): State<Arc<AppState>>,
    UrlPath((id, deployment)): UrlPath<(String, String)>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    check_ids(&id, &deployment)?;
    let b = st
        .deployments
        .find(&id, &deployment)
        .ok_or_else(|| not_started(&deployment))?;
    crate::procs::logs_response(&st, b.m.clone(), q)
}

fn unavailable(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
}

/// `ANY /projects/{id}/live/{*path}`: the request, without hop-by-hop and signing headers and
/// without the signature's `or_nonce`, to the live backend; its answer streamed back (and a
/// WebSocket upgrade joined through).
pub async fn proxy_route(
    State(st): State<Arc<AppState>>,
    UrlPath(params): UrlPath<HashMap<String, String>>,
    mut req: Request,
) -> Result<Response, ApiError> {
    let id = params.get("id").cloned().unwrap_or_default();
    check_project_id(&id)?;
    let b = st.deployments.live(&id).ok_or_else(|| {
        unavailable(
            "no_live_deployment",
            format!("project {id} has nothing published"),
        )
    })?;
    if !b.m.is_running() {
        return Err(unavailable(
            "backend_down",
            format!(
                "the live deployment {} is {:?}; try again shortly",
                b.deployment,
                b.status().status
            ),
        ));
    }
    let prefix = format!("/projects/{id}/live");
    let path = req.uri().path().strip_prefix(&prefix).unwrap_or("");
    let path = if path.is_empty() { "/" } else { path };
    let query: Vec<&str> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("or_nonce="))
        .collect();
    let pq = if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", query.join("&"))
    };
    *req.uri_mut() = pq
        .parse()
        .map_err(|_| ApiError::bad_request("invalid_path", "unparsable path"))?;
    let upgrade = crate::preview::is_upgrade(req.headers());
    if !upgrade {
        crate::preview::strip_hop_by_hop(req.headers_mut());
    }
    crate::preview::strip_service_headers(req.headers_mut());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let mut resp = crate::preview::send_upstream(&st, &id, b.m.port(), req, upgrade)
        .await
        .map_err(|e| match e {
            crate::preview::UpstreamError::Connect(e) => {
                unavailable("backend_down", format!("the live backend: {e}"))
            }
            crate::preview::UpstreamError::Send(e) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "backend_error", e)
            }
        })?;
    match client_upgrade {
        // A WebSocket: the socket is joined to the backend's (visitors are not use of the
        // project, so nothing holds it for the reaper).
        Some(client) => crate::preview::splice_upgrade(client, &mut resp, None),
        None => crate::preview::strip_hop_by_hop(resp.headers_mut()),
    }
    resp.headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    Ok(resp.map(Body::new).into_response())
}

/// Starts every project's recorded live backend again (service start), in the background: a
/// backend that cannot start is logged and shows as `crashed`; its supervisor keeps trying.
pub fn restore(st: Arc<AppState>) {
    tokio::spawn(async move {
        let root = st.data_dir.join("deploy");
        let Ok(dir) = std::fs::read_dir(&root) else {
            return;
        };
        for entry in dir.flatten() {
            let project = entry.file_name().to_string_lossy().into_owned();
            let file = entry.path().join(LIVE_FILE);
            if check_project_id(&project).is_err() || !file.is_file() {
                continue;
            }
            let record = std::fs::read(&file)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<LiveRecord>(&b).map_err(|e| e.to_string()))
                .and_then(|r| {
                    validate_deployment_id(&r.deployment)?;
                    r.spec.validate().map_err(|e| e.message)?;
                    Ok(r)
                });
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(project = %project, "unreadable {}: {e}", file.display());
                    continue;
                }
            };
            let b = match Backend::new(&st, &project, &record.deployment, record.spec) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(project = %project, "cannot restore the live deployment: {e}");
                    continue;
                }
            };
            lock(&b.ctl).phase = ServiceStatus::Restarting;
            lock(&st.deployments.projects)
                .entry(project.clone())
                .or_default()
                .live = Some(b.clone());
            tracing::info!(project = %project, deployment = %b.deployment, "restoring the live deployment");
            supervise(st.clone(), project, b, true);
        }
    });
}
