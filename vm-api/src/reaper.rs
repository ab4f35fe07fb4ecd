//! The idle reaper: a project nobody has used for `--project-idle-secs` (no signed request for
//! it, no preview traffic, no open preview socket or terminal, no running command) loses its
//! dev servers and its network namespace. The working copy and home stay; the next preview
//! start brings the servers (and, with the first command, the namespace) back. Deployments'
//! backends are not dev servers and are never stopped here; a project running one keeps its
//! network namespace.

use crate::state::AppState;
use axum::extract::{Path as UrlPath, State};
use axum::Json;
use open_replit_core::vm_api::HostStatus;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `GET /projects/{id}/host-status`: reading it does not count as using the project.
pub const STATUS_SUFFIX: &str = "/host-status";

/// Whether a signed request for `/projects/{id}{rest}` counts as using the project: reading
/// the host status is how one watches the reaper, and visitors of the published app
/// (`/live/…`) are not working on the project, so neither does.
pub fn counts_as_use(rest: &str) -> bool {
    rest != STATUS_SUFFIX && rest != "/live" && !rest.starts_with("/live/")
}

#[derive(Default)]
struct Entry {
    last: Option<Instant>,
    held: usize,
}

/// When each project was last used, and what keeps it in use right now.
#[derive(Default)]
pub struct Activity {
    map: Arc<Mutex<HashMap<String, Entry>>>,
}

/// The project stays in use while this lives (an open preview socket, a dependency build).
pub struct Hold {
    map: Arc<Mutex<HashMap<String, Entry>>>,
    project: String,
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let e = m.entry(self.project.clone()).or_default();
        e.held = e.held.saturating_sub(1);
        e.last = Some(Instant::now());
    }
}

impl Activity {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The project was used just now.
    pub fn touch(&self, project: &str) {
        self.lock().entry(project.to_string()).or_default().last = Some(Instant::now());
    }

    /// Keeps the project in use until the guard is dropped.
    pub fn hold(&self, project: &str) -> Hold {
        let mut m = self.lock();
        let e = m.entry(project.to_string()).or_default();
        e.held += 1;
        e.last = Some(Instant::now());
        Hold {
            map: self.map.clone(),
            project: project.to_string(),
        }
    }

    /// How long ago the project was last used (zero while held); `None` if never seen.
    pub fn idle_for(&self, project: &str) -> Option<Duration> {
        let m = self.lock();
        let e = m.get(project)?;
        if e.held > 0 {
            return Some(Duration::ZERO);
        }
        e.last.map(|t| t.elapsed())
    }

    /// Projects unused (and not held) for at least `idle`.
    fn idle(&self, idle: Duration) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, e)| e.held == 0 && e.last.is_some_and(|t| t.elapsed() >= idle))
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Forgets the project altogether (it was removed).
    pub fn forget(&self, project: &str) {
        self.lock().remove(project);
    }

    fn forget_if_idle(&self, project: &str, idle: Duration) -> bool {
        let mut m = self.lock();
        let still = m
            .get(project)
            .is_some_and(|e| e.held == 0 && e.last.is_some_and(|t| t.elapsed() >= idle));
        if still {
            m.remove(project);
        }
        still
    }
}

/// Reaps idle projects every `idle / 4` (at least every second, at most every 30 s) until the
/// service shuts down.
pub fn spawn(st: Arc<AppState>, idle: Duration) {
    let every = (idle / 4).clamp(Duration::from_secs(1), Duration::from_secs(30));
    let mut stop = st.shutdown_signal();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            sweep(&st, idle).await;
        }
    });
}

/// One pass: stops the dev servers and removes the namespace of every idle project that runs
/// no command and has no terminal. Returns the projects reaped.
pub async fn sweep(st: &Arc<AppState>, idle: Duration) -> Vec<String> {
    let mut reaped = Vec::new();
    for project in st.activity.idle(idle) {
        if st.exec_running(&project) || st.pty.count(Some(&project)) > 0 {
            continue;
        }
        if !st.activity.forget_if_idle(&project, idle) {
            continue;
        }
        let servers = st.processes.list(&project);
        let running = servers.iter().filter(|m| m.is_running()).count();
        for m in servers {
            m.stop().await;
        }
        // Used again while the servers stopped (a preview start, a command): keep its network.
        // A published deployment lives in that network: it is never torn down under it.
        let reused = st.activity.idle_for(&project).is_some()
            || st.exec_running(&project)
            || st.pty.count(Some(&project)) > 0
            || st.deployments.runs(&project);
        if !reused {
            // Idle proxy connections into the network go with it.
            st.upstreams.forget(&project);
            let sb = st.sandbox.clone();
            let p = project.clone();
            let _ = tokio::task::spawn_blocking(move || sb.release_project(&p)).await;
        }
        tracing::info!(
            project = %project,
            dev_servers = running,
            idle_s = idle.as_secs(),
            "reaped an idle project: dev servers stopped, network namespace removed"
        );
        reaped.push(project);
    }
    reaped
}

/// `GET /projects/{id}/host-status`: what of the project runs on this host now.
pub async fn status_route(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<HostStatus>, crate::error::ApiError> {
    crate::error::check_project_id(&id)?;
    let running_processes = st
        .processes
        .list(&id)
        .iter()
        .filter(|m| m.is_running())
        .map(|m| m.name.clone())
        .collect();
    Ok(Json(HostStatus {
        running_processes,
        network: st.sandbox.has_network(&id),
        sandbox_pids: st.sandbox.project_pids(&id),
        terminals: st.pty.count(Some(&id)),
        idle_ms: st.activity.idle_for(&id).map(|d| d.as_millis() as u64),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reads_and_live_traffic_are_not_use() {
        assert!(!counts_as_use("/host-status"));
        assert!(!counts_as_use("/live"));
        assert!(!counts_as_use("/live/api/items"));
        assert!(counts_as_use("/livestock"));
        assert!(counts_as_use("/exec"));
        assert!(counts_as_use("/deployments/d-1/start"));
    }

    #[test]
    fn idle_projects_are_found_and_holds_keep_them() {
        let a = Activity::default();
        a.touch("p1");
        let h = a.hold("p2");
        std::thread::sleep(Duration::from_millis(30));
        let idle = a.idle(Duration::from_millis(20));
        assert_eq!(idle, vec!["p1".to_string()]);
        assert_eq!(a.idle_for("p2"), Some(Duration::ZERO));
        drop(h);
        // Dropping the hold counts as use: not idle for a minute.
        assert!(a.idle(Duration::from_secs(60)).is_empty());
        assert!(a.forget_if_idle("p1", Duration::from_millis(20)));
        assert_eq!(a.idle_for("p1"), None);
        a.touch("p3");
        assert!(!a.forget_if_idle("p3", Duration::from_secs(60)));
    }
}
