//! `DELETE /projects/{id}`: removes a project from this host and from storage, for good: its
//! terminals, running commands, dev servers and published backend stop; its network namespace
//! goes; its folders (working copy, home, sync state, git history, builds, the published app's
//! data) are removed; then every blob under `{id}/` in storage, `meta.json` first.
//!
//! Each step tolerates what an earlier, cut-short removal already did, so running it again
//! finishes the job. Only the Worker calls it, for the project's owner.

use crate::error::{check_project_id, ApiError};
use crate::state::AppState;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::Json;
use open_replit_core::vm_api::RemoveReply;
use std::path::PathBuf;
use std::sync::Arc;

/// Every folder on this host that holds something of `id`.
fn folders(st: &AppState, id: &str) -> Vec<PathBuf> {
    vec![
        st.project_dir(id),
        st.home_dir(id),
        st.state_dir(id),
        st.data_dir.join("git").join(format!("{id}.git")),
        crate::deploy_service::deploy_root(st, id),
        crate::deploy_service::data_folder(st, id),
    ]
}

pub async fn remove_route(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<RemoveReply>, ApiError> {
    check_project_id(&id)?;
    let objects = st.objects.clone().ok_or_else(crate::changes::no_storage)?;
    // No sync, change scan, import or git work of the project runs while it goes.
    let sync = st.sync_lock(&id);
    let _sync = sync.lock().await;

    st.pty.stop_project(&id).await;
    let dev_servers = st.processes.remove_project(&id).await;
    let backends = st.deployments.remove_project(&id).await;
    // Whatever still runs in the project's sandbox (a command, a shell's job) is killed, and
    // its network namespace goes with the proxies' idle connections into it.
    st.upstreams.forget(&id);
    let sb = st.sandbox.clone();
    let p = id.clone();
    let _ = tokio::task::spawn_blocking(move || {
        sb.kill_project(&p);
        sb.release_project(&p);
        sb.forget_project(&p);
    })
    .await;
    st.browser_reports.forget(&id);
    st.activity.forget(&id);

    let paths = folders(&st, &id);
    let removed = tokio::task::spawn_blocking(move || {
        let mut n = 0;
        for d in paths {
            // `remove_dir_all` does not follow symlinks: a link the project made to a host
            // path is removed as a link.
            match std::fs::remove_dir_all(&d) {
                Ok(()) => n += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("{}: {e}", d.display())),
            }
        }
        Ok(n)
    })
    .await
    .map_err(|e| ApiError::internal("remove_failed", e.to_string()))?
    .map_err(|e| {
        ApiError::internal(
            "remove_failed",
            format!("removing the project's folders: {e}"),
        )
    })?;

    let blobs = objects
        .delete_project(&id)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "storage_failed", e.to_string()))?;
    tracing::info!(project = %id, dev_servers, backends, folders = removed, blobs, "removed a project");
    Ok(Json(RemoveReply {
        dev_servers,
        backends,
        folders: removed,
        blobs,
    }))
}
