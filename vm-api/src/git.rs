//! A project's git history on the VM host: a bare repository per project under
//! `{data_dir}/git/{project}.git`, extended one commit per checkpoint by `git fast-import` (the
//! stream is core's `git::fast_import_stream`; only changed files are read from blob storage),
//! and served read-only over git's smart HTTP by Debian's `git http-backend`. The repository
//! never reaches a sandbox: it is the host's, written only by this module.

use crate::error::{check_project_id, parse_json, ApiError};
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::{stream, StreamExt, TryStreamExt};
use open_replit_core::git::{fast_import_stream, ExportRequest, GitState, BRANCH};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// The file in a repository that records the last checkpoint it holds.
const LAST_FILE: &str = "open-replit-last-checkpoint";

fn repo_dir(st: &AppState, id: &str) -> PathBuf {
    st.data_dir.join("git").join(format!("{id}.git"))
}

fn git(dir: &Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new("git");
    c.arg("--git-dir")
        .arg(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("HOME", "/nonexistent")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

fn git_failed(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "git_failed",
        format!("{what}: {e}"),
    )
}

/// Creates the bare repository on first use.
async fn ensure_repo(dir: &Path) -> Result<(), ApiError> {
    if dir.join("HEAD").is_file() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| git_failed("creating the repository", e))?;
    let out = git(dir)
        .args(["init", "--bare", "--quiet", "--initial-branch", BRANCH])
        .arg(dir)
        .output()
        .await
        .map_err(|e| git_failed("git init", e))?;
    if !out.status.success() {
        return Err(git_failed("git init", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

async fn read_state(dir: &Path) -> Result<GitState, ApiError> {
    let last = std::fs::read_to_string(dir.join(LAST_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let out = git(dir)
        .args(["rev-parse", "--verify", "--quiet"])
        .arg(format!("refs/heads/{BRANCH}"))
        .output()
        .await
        .map_err(|e| git_failed("git rev-parse", e))?;
    let head = out
        .status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|h| !h.is_empty());
    Ok(GitState {
        last_checkpoint: if head.is_some() { last } else { 0 },
        head,
    })
}

/// `GET /projects/{id}/git/state`.
pub async fn state_route(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<GitState>, ApiError> {
    check_project_id(&id)?;
    let dir = repo_dir(&st, &id);
    if !dir.join("HEAD").is_file() {
        return Ok(Json(GitState::default()));
    }
    Ok(Json(read_state(&dir).await?))
}

/// `POST /projects/{id}/git/export`: commits the checkpoints after the last one the
/// repository holds.
pub async fn export_route(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Result<Json<GitState>, ApiError> {
    check_project_id(&id)?;
    let req: ExportRequest = parse_json(&body)?;
    req.validate()
        .map_err(|e| ApiError::bad_request("invalid_export", e))?;
    let src = st.objects.clone().ok_or_else(crate::changes::no_storage)?;
    let lock = st.sync_lock(&format!("git:{id}"));
    let _guard = lock.lock().await;
    let dir = repo_dir(&st, &id);
    ensure_repo(&dir).await?;
    let state = read_state(&dir).await?;
    if req.after != state.last_checkpoint {
        return Err(ApiError::conflict(
            "history_moved",
            format!(
                "the history holds checkpoints up to {}, not {}",
                state.last_checkpoint, req.after
            ),
        ));
    }
    let Some(last) = req.checkpoints.last().map(|c| c.n) else {
        return Ok(Json(state));
    };
    // The objects the commits write: each fetched once and checked against its name.
    let mut needed = std::collections::BTreeSet::new();
    let mut base = &req.base;
    for c in &req.checkpoints {
        for p in open_replit_core::git::changes(base, &c.manifest).0 {
            needed.insert(c.manifest.files[&p].sha256.clone());
        }
        base = &c.manifest;
    }
    let contents: BTreeMap<String, Vec<u8>> = stream::iter(needed)
        .map(|sha| {
            let (src, id) = (src.clone(), id.clone());
            async move {
                let bytes = src
                    .fetch(&id, &sha)
                    .await
                    .map_err(|e| git_failed("reading an object", format!("{e:?}")))?;
                if open_replit_core::vm_auth::sha256_hex(&bytes) != sha {
                    return Err(git_failed(
                        "reading an object",
                        format!("{sha} has other content"),
                    ));
                }
                Ok::<_, ApiError>((sha, bytes))
            }
        })
        .buffer_unordered(8)
        .try_collect()
        .await?;
    let input = fast_import_stream(&req, state.head.as_deref(), &contents)
        .map_err(|e| ApiError::bad_request("invalid_export", e))?;
    let mut child = git(&dir)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| git_failed("git fast-import", e))?;
    let mut stdin = child.stdin.take().expect("piped");
    let write = async move {
        let r = stdin.write_all(&input).await;
        drop(stdin);
        r
    };
    let (written, out) = tokio::join!(write, child.wait_with_output());
    let out = out.map_err(|e| git_failed("git fast-import", e))?;
    if written.is_err() || !out.status.success() {
        return Err(git_failed(
            "git fast-import",
            String::from_utf8_lossy(&out.stderr),
        ));
    }
    let tmp = dir.join(format!("{LAST_FILE}.tmp"));
    std::fs::write(&tmp, format!("{last}\n"))
        .and_then(|_| std::fs::rename(&tmp, dir.join(LAST_FILE)))
        .map_err(|e| git_failed("recording the last checkpoint", e))?;
    tracing::info!(project = %id, last, "git history extended");
    Ok(Json(read_state(&dir).await?))
}

/// `GET /projects/{id}/git/info/refs` and `POST /projects/{id}/git/git-upload-pack`: git's
/// smart HTTP through `git http-backend` (CGI), fetch only.
pub async fn http_backend_route(
    State(st): State<Arc<AppState>>,
    UrlPath((id, rest)): UrlPath<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_project_id(&id)?;
    let query: Vec<&str> = query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("or_nonce="))
        .collect();
    let (method, path) =
        match rest.as_str() {
            "info/refs" if query == ["service=git-upload-pack"] => ("GET", "info/refs"),
            "git-upload-pack" => ("POST", "git-upload-pack"),
            _ => return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "fetch_only",
                "this repository is read-only here: only git-upload-pack (clone, fetch) is served",
            )),
        };
    let dir = repo_dir(&st, &id);
    if !dir.join("HEAD").is_file() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_history",
            "this project has no git history yet",
        ));
    }
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("HOME", "/nonexistent")
        .env("GIT_PROJECT_ROOT", st.data_dir.join("git"))
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", format!("/{id}.git/{path}"))
        .env("REQUEST_METHOD", method)
        .env("QUERY_STRING", query.join("&"))
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| git_failed("git http-backend", e))?;
    let mut stdin = child.stdin.take().expect("piped");
    let write = async move {
        let r = stdin.write_all(&body).await;
        drop(stdin);
        r
    };
    let (_, out) = tokio::join!(write, child.wait_with_output());
    let out = out.map_err(|e| git_failed("git http-backend", e))?;
    cgi_response(&out.stdout).ok_or_else(|| {
        git_failed(
            "git http-backend",
            format!(
                "unreadable answer; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    })
}

/// Turns a CGI answer (headers, a blank line, the body) into a response.
fn cgi_response(raw: &[u8]) -> Option<Response> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)))?;
    let head = std::str::from_utf8(&raw[..split.0]).ok()?;
    let body = raw[split.0 + split.1..].to_vec();
    let mut status = StatusCode::OK;
    let mut resp = Response::builder();
    for line in head.lines() {
        let (k, v) = line.split_once(':')?;
        let v = v.trim();
        if k.eq_ignore_ascii_case("status") {
            status = v
                .split(' ')
                .next()?
                .parse::<u16>()
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())?;
        } else {
            resp = resp.header(k.trim(), v);
        }
    }
    resp.status(status)
        .body(Body::from(body))
        .ok()
        .map(IntoResponse::into_response)
}
