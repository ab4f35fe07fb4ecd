//! The state every handler shares (`AppState`: secret, data directory, sandbox, the process,
//! browser-report, dependency-cache and deployment managers, admission caps, activity for the reaper,
//! per-project locks) and its `Limits`.

use crate::error::ApiError;
use crate::sandbox::Sandbox;
use crate::sync::ObjectSource;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::Semaphore;

/// Tunable limits, with the defaults the service ships with.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Bytes of stdout+stderr one exec streams before it reports `truncated`.
    pub output_cap_bytes: usize,
    /// Commands one project may run at once through `/exec`.
    pub exec_concurrency: usize,
    /// What one `/search` may cost.
    pub search: crate::search::SearchLimits,
    /// What a deployment's static folder may hold (see `deploy_build`).
    pub deploy: open_replit_core::deploy::build::DistLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            output_cap_bytes: 1024 * 1024,
            exec_concurrency: 4,
            search: Default::default(),
            deploy: Default::default(),
        }
    }
}

/// What every handler shares; one per service, behind an `Arc`.
pub struct AppState {
    pub secret: Vec<u8>,
    pub data_dir: PathBuf,
    pub sandbox: Arc<dyn Sandbox>,
    pub limits: Limits,
    pub replay: crate::auth::ReplayCache,
    /// Where sync fetches objects from; `None` makes `/sync` answer 503.
    pub objects: Option<Arc<dyn ObjectSource>>,
    /// The container `objects` reads from, when it is Azure.
    pub objects_container: Option<String>,
    pub processes: crate::procs::ProcessManager,
    /// Base domain of preview hosts: `{project}.{preview_domain}`.
    pub preview_domain: String,
    /// Ports this service listens on; the preview proxy never forwards to them.
    pub own_ports: RwLock<Vec<u16>>,
    /// What each project's preview page reported (see `browser`).
    pub browser_reports: crate::browser::BrowserReports,
    /// Installs shared between projects (see `deps`).
    pub deps: crate::deps::DepsCache,
    /// Interactive terminal sessions (see `pty`).
    pub pty: crate::pty::PtyManager,
    /// Port of the preview listener, once it is bound (`page_check` loads pages through it).
    pub preview_port: RwLock<Option<u16>>,
    /// Headless browsers running at once (see `page_check`).
    pub browser_slots: Semaphore,
    /// Host-wide and per-user caps on what runs (see `admission`).
    pub admission: crate::admission::Admission,
    /// When each project was last used, for the idle reaper (see `reaper`).
    pub activity: crate::reaper::Activity,
    /// Projects building a deployment now (see `deploy_build`).
    pub deploy_builds: crate::deploy_build::Builds,
    /// Deployments' live backends and candidates (see `deploy_service`).
    pub deployments: crate::deploy_service::Deployments,
    /// Idle keep-alive connections of the preview and live proxies (see `preview`).
    pub upstreams: crate::preview::UpstreamPool,
    /// Let `git push` reach remotes on the host's own network (`--git-private-remotes`; tests
    /// and local git servers only).
    pub git_private_remotes: bool,
    exec_slots: Mutex<HashMap<String, Arc<Semaphore>>>,
    sync_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl AppState {
    pub fn new(secret: Vec<u8>, data_dir: PathBuf, sandbox: Arc<dyn Sandbox>) -> Self {
        AppState {
            secret,
            deps: crate::deps::DepsCache::new(data_dir.join("deps")),
            browser_reports: Default::default(),
            pty: Default::default(),
            admission: Default::default(),
            activity: Default::default(),
            deploy_builds: Default::default(),
            deployments: Default::default(),
            upstreams: Default::default(),
            git_private_remotes: false,
            data_dir,
            sandbox,
            limits: Limits::default(),
            replay: crate::auth::ReplayCache::new(100_000),
            objects: None,
            objects_container: None,
            processes: crate::procs::ProcessManager::default(),
            preview_domain: "preview.localhost".into(),
            own_ports: RwLock::new(Vec::new()),
            preview_port: RwLock::new(None),
            browser_slots: Semaphore::new(2),
            exec_slots: Mutex::new(HashMap::new()),
            sync_locks: Mutex::new(HashMap::new()),
            shutdown: tokio::sync::watch::channel(false).0,
        }
    }

    pub fn project_dir(&self, id: &str) -> PathBuf {
        self.data_dir.join("projects").join(id)
    }
    pub fn home_dir(&self, id: &str) -> PathBuf {
        self.data_dir.join("homes").join(id)
    }
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.data_dir.join("sync").join(id)
    }

    /// Creates the project's working copy and home if needed; `id` must be validated.
    pub fn ensure_project_dirs(&self, id: &str) -> Result<(PathBuf, PathBuf), ApiError> {
        let (p, h) = (self.project_dir(id), self.home_dir(id));
        for d in [&p, &h] {
            std::fs::create_dir_all(d).map_err(|e| {
                ApiError::internal("data_dir", format!("cannot create {}: {e}", d.display()))
            })?;
        }
        self.sandbox.prepare_project(id, &p, &h)?;
        Ok((p, h))
    }

    /// `cwd` (already validated) must be a real directory in the project, reached without
    /// symlinks.
    pub fn check_cwd_exists(&self, project_dir: &Path, cwd: &str) -> Result<(), ApiError> {
        let root = crate::fsafe::open_root(project_dir)
            .map_err(|e| ApiError::internal("data_dir", e.to_string()))?;
        crate::fsafe::open_dir(&root, cwd, false)
            .map(|_| ())
            .map_err(|e| ApiError::bad_request("invalid_cwd", format!("cwd: {e}")))
    }

    pub fn exec_slot(&self, id: &str) -> Arc<Semaphore> {
        let mut m = self.exec_slots.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(id.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.limits.exec_concurrency)))
            .clone()
    }

    /// Whether the project runs a one-shot command now.
    pub fn exec_running(&self, id: &str) -> bool {
        let m = self.exec_slots.lock().unwrap_or_else(|p| p.into_inner());
        m.get(id)
            .is_some_and(|s| s.available_permits() < self.limits.exec_concurrency)
    }

    pub fn sync_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.sync_locks.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(id.to_string()).or_default().clone()
    }

    pub fn is_own_port(&self, port: u16) -> bool {
        self.own_ports
            .read()
            .map(|v| v.contains(&port))
            .unwrap_or(true)
    }

    pub fn shutdown_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Stops every command and managed process; called once on service shutdown.
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        self.processes.stop_all().await;
        self.deployments.stop_all().await;
        self.pty.stop_all().await;
        self.sandbox.shutdown();
    }
}
