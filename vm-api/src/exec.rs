//! One-shot commands: `POST /projects/{id}/exec`, streamed as NDJSON, with a timeout that kills
//! the whole process tree, an output cap, client-disconnect kill, a per-project limit and the
//! per-user and host-wide caps (`admission`); after
//! the command, the change scan saves and reports what it changed (`changes`).

use crate::auth::ActingUser;
use crate::error::{check_cwd, check_env, check_project_id, parse_json, ApiError};
use crate::process::{drive, exit_event, ndjson_response, spawn_in_group};
use crate::sandbox::CommandSpec;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use open_replit_core::vm_api::ExecRequest;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::Child;
use tokio::sync::mpsc;

pub const DEFAULT_TIMEOUT_S: u64 = 60;
pub const MAX_TIMEOUT_S: u64 = 600;

/// `POST /projects/{id}/exec`: validates the request, then streams the command's events
/// (through the dependency cache when it has a `cache` field and the sandbox allows it).
pub async fn exec(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    Extension(user): Extension<ActingUser>,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_project_id(&id)?;
    let req: ExecRequest = parse_json(&body)?;
    let scan = req.scan.unwrap_or(true);
    check_cwd(&req.cwd)?;
    check_env(&req.env)?;
    if req.command.is_empty() || req.command.contains('\0') {
        return Err(ApiError::bad_request(
            "invalid_command",
            "command must be a non-empty string without NUL bytes",
        ));
    }
    let timeout_s = req.timeout_s.unwrap_or(DEFAULT_TIMEOUT_S);
    if timeout_s == 0 || timeout_s > MAX_TIMEOUT_S {
        return Err(ApiError::bad_request(
            "invalid_timeout",
            format!("timeout_s must be between 1 and {MAX_TIMEOUT_S}, got {timeout_s}"),
        ));
    }
    let permit = st.exec_slot(&id).try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_commands",
            format!(
                "project {id} already runs {} commands; wait for one to finish",
                st.limits.exec_concurrency
            ),
        )
    })?;
    let slot = st.admission.command(&user.0)?;
    let (project_dir, home_dir) = st.ensure_project_dirs(&id)?;
    st.check_cwd_exists(&project_dir, &req.cwd)?;
    if let Some(spec) = &req.cache {
        crate::deps::validate_spec(spec)?;
    }
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    // The change scan sits between the command's events and the client (see `changes`).
    let tx = if scan && st.objects.is_some() {
        crate::changes::scan_after(st.clone(), id.clone(), tx)
    } else {
        tx
    };
    let cached = req
        .cache
        .clone()
        .and_then(|spec| Some((spec, st.sandbox.project_uid(&id)?)));
    if let Some((spec, uid)) = cached {
        let job = crate::deps::CachedExec {
            project: id.clone(),
            project_dir,
            home_dir,
            command: req.command,
            cwd: req.cwd,
            env: req.env,
            timeout: Duration::from_secs(timeout_s),
            spec,
            uid,
        };
        let st2 = st.clone();
        tokio::spawn(async move {
            crate::deps::run(st2, job, tx).await;
            drop((permit, slot));
        });
        return ndjson_response(rx);
    }
    let cmd = st.sandbox.command(&CommandSpec {
        project_id: &id,
        project_dir: &project_dir,
        home_dir: &home_dir,
        cwd: &req.cwd,
        shell: &req.command,
        env: &req.env,
    })?;
    let child = spawn_in_group(cmd)
        .map_err(|e| ApiError::internal("spawn_failed", format!("could not start: {e}")))?;
    let cap = st.limits.output_cap_bytes;
    let shutdown = st.shutdown_signal();
    tokio::spawn(async move {
        run(child, Duration::from_secs(timeout_s), cap, tx, shutdown).await;
        drop((permit, slot));
    });
    ndjson_response(rx)
}

/// Drives a plain command to its end and sends its exit event last.
async fn run(
    child: Child,
    timeout: Duration,
    cap: usize,
    tx: mpsc::Sender<Bytes>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let started = Instant::now();
    let o = drive(child, timeout, cap, &tx, shutdown, None).await;
    let _ = tx.send(exit_event(&o, started)).await;
}
