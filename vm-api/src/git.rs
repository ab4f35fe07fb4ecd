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
use open_replit_core::git::{
    fast_import_stream, ExportRequest, GitState, PushReply, PushRequest, BRANCH,
};
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

/// `git` with an empty environment: no system or global configuration, no home.
fn bare_git() -> tokio::process::Command {
    let mut c = tokio::process::Command::new("git");
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("HOME", "/nonexistent")
        .kill_on_drop(true);
    c
}

fn git(dir: &Path) -> tokio::process::Command {
    let mut c = bare_git();
    c.arg("--git-dir").arg(dir).stdin(Stdio::null());
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

/// Whether `ip` is one a push may not reach from the VM host: loopback, private, link-local,
/// unspecified, shared, documentation or multicast addresses (the host's own network).
fn private(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v) => {
            let o = v.octets();
            v.is_loopback()
                || v.is_private()
                || v.is_link_local()
                || v.is_unspecified()
                || v.is_broadcast()
                || v.is_multicast()
                || v.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 198 && (18..20).contains(&o[1]))
                || o[0] >= 240
        }
        std::net::IpAddr::V6(v) => {
            let seg = v.segments();
            v.is_loopback()
                || v.is_unspecified()
                || v.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
                || v.to_ipv4_mapped().is_some_and(|m| private(m.into()))
        }
    }
}

/// `POST /projects/{id}/git/push`: pushes the history's head to a remote branch over HTTP(S),
/// with the request's token as an HTTP header in that one git's environment.
pub async fn push_route(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Result<Json<PushReply>, ApiError> {
    check_project_id(&id)?;
    let req: PushRequest = parse_json(&body)?;
    let host = req
        .validate()
        .map_err(|e| ApiError::bad_request("invalid_push", e))?;
    if !st.git_private_remotes {
        let port = if req.url.starts_with("https://") {
            443
        } else {
            80
        };
        let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| ApiError::bad_request("unknown_host", format!("{host}: {e}")))?
            .collect();
        if addrs.is_empty() || addrs.iter().any(|a| private(a.ip())) {
            return Err(ApiError::bad_request(
                "private_remote",
                format!("{host} is an address of the host's own network; push to a public remote"),
            ));
        }
    }
    let lock = st.sync_lock(&format!("git:{id}"));
    let _guard = lock.lock().await;
    let dir = repo_dir(&st, &id);
    let no_history = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_history",
            "this project has no git history yet",
        )
    };
    if !dir.join("HEAD").is_file() {
        return Err(no_history());
    }
    let state = read_state(&dir).await?;
    let head = state.head.clone().ok_or_else(no_history)?;
    let branch = req.branch().to_string();
    let mut cmd = git(&dir);
    cmd.args(["push", "--porcelain", "--quiet", "--"])
        .arg(req.url.trim())
        .arg(format!("{head}:refs/heads/{branch}"))
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ALLOW_PROTOCOL", "http:https");
    if let Some(auth) = req.authorization() {
        cmd.env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.extraHeader")
            .env("GIT_CONFIG_VALUE_0", format!("Authorization: {auth}"));
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(300), cmd.output())
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "push_timed_out",
                "the push took over 300 s",
            )
        })?
        .map_err(|e| git_failed("git push", e))?;
    if !out.status.success() {
        let mut said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(t) = &req.token {
            said = said.replace(t.as_str(), "<token>");
        }
        let said: String = said.trim().chars().take(2000).collect();
        // With a header that the remote refuses (401), git asks for a user name next, which it
        // may not: that is the remote refusing the token too.
        let (status, code) = if said.contains("Authentication failed")
            || said.contains("could not read Username")
            || said.contains("401")
            || said.contains("403")
        {
            (StatusCode::UNAUTHORIZED, "remote_auth_failed")
        } else if said.contains("rejected") {
            (StatusCode::CONFLICT, "remote_rejected")
        } else {
            (StatusCode::BAD_GATEWAY, "push_failed")
        };
        return Err(ApiError::new(
            status,
            code,
            format!("git push to {}: {said}", req.url.trim()),
        ));
    }
    tracing::info!(project = %id, remote = %req.url.trim(), branch = %branch, "pushed the history");
    Ok(Json(PushReply {
        url: req.url.trim().to_string(),
        branch,
        commit: head,
        checkpoint: state.last_checkpoint,
    }))
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
    let mut cmd = bare_git();
    cmd.arg("http-backend")
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
        .stderr(Stdio::piped());
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_host_s_own_networks_are_private() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(super::private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["140.82.112.3", "2606:4700::1111"] {
            assert!(!super::private(ip.parse().unwrap()), "{ip}");
        }
    }
}
