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
    fast_import_stream, infer_template, ExportRequest, GitState, ImportReply, ImportRequest,
    PushReply, PushRequest, BRANCH,
};
use open_replit_core::manifest::{FileEntry, Manifest};
use open_replit_core::vm_api::SkippedFile;
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
                let bytes = crate::sync::fetch_verified(src.as_ref(), &id, &sha)
                    .await
                    .map_err(|e| git_failed("reading an object", e))?;
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

/// Refuses a remote whose `host` resolves to the host's own networks (unless the VM API runs
/// with `--git-private-remotes`); `verb` ("push to", "import from") says what was asked.
///
/// Answers the git configuration that holds git to what was checked: the addresses found,
/// pinned with `http.curloptResolve` (git would otherwise ask DNS again, and a name that
/// answered a public address to this check could answer a private one to git: DNS
/// rebinding), and no redirects (one could lead anywhere, past the check).
async fn public_remote(
    st: &AppState,
    url: &str,
    host: &str,
    verb: &str,
) -> Result<Vec<(&'static str, String)>, ApiError> {
    if st.git_private_remotes {
        return Ok(Vec::new());
    }
    let port = open_replit_core::git::remote_port(url);
    let addrs: Vec<std::net::IpAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| ApiError::bad_request("unknown_host", format!("{host}: {e}")))?
        .map(|a| a.ip())
        .collect();
    if addrs.is_empty() || addrs.iter().any(|a| private(*a)) {
        return Err(ApiError::bad_request(
            "private_remote",
            format!("{host} is an address of the host's own network; {verb} a public remote"),
        ));
    }
    let mut config = vec![("http.followRedirects", "false".to_string())];
    if let Some(pin) = open_replit_core::git::curl_resolve_pin(host, port, &addrs) {
        config.push(("http.curloptResolve", pin));
    }
    Ok(config)
}

/// Gives one git its configuration through the environment (`GIT_CONFIG_COUNT`/`KEY_n`/
/// `VALUE_n`): never on its command line, where `ps` would show a token.
fn with_config(cmd: &mut tokio::process::Command, config: &[(&str, String)]) {
    cmd.env("GIT_CONFIG_COUNT", config.len().to_string());
    for (i, (k, v)) in config.iter().enumerate() {
        cmd.env(format!("GIT_CONFIG_KEY_{i}"), k)
            .env(format!("GIT_CONFIG_VALUE_{i}"), v);
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
    let mut config = public_remote(&st, &req.url, &host, "push to").await?;
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
        config.push(("http.extraHeader", format!("Authorization: {auth}")));
    }
    with_config(&mut cmd, &config);
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
    let a = open_replit_core::git::split_cgi(raw)?;
    let mut resp = Response::builder().status(StatusCode::from_u16(a.status).ok()?);
    for (k, v) in a.headers {
        resp = resp.header(k, v);
    }
    resp.body(Body::from(a.body.to_vec()))
        .ok()
        .map(IntoResponse::into_response)
}

// ---------------------------------------------------------------------------------------------
// Import (issue 17): a repository's files become a new project's objects.

/// Most bytes a clone may take on disk (it is aborted beyond), and most bytes of files one
/// import saves.
const IMPORT_MAX_BYTES: u64 = 200 << 20;
/// A clone that takes longer is stopped.
const IMPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);
/// Skipped entries an import's reply lists; the rest are counted.
const IMPORT_SKIPPED_LIST: usize = 100;

/// A directory removed when dropped: an import's clone, gone however the import ends.
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Bytes of the regular files under `dir` (symlinks are not followed).
fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// The error a failed `git clone` is, from what git said (already scrubbed of the token).
fn clone_error(url: &str, said: &str) -> ApiError {
    let l = said.to_ascii_lowercase();
    let (status, code, what) = if l.contains("remote branch") && l.contains("not found") {
        (StatusCode::NOT_FOUND, "branch_not_found", "no such branch")
    } else if l.contains("could not resolve host") {
        (StatusCode::BAD_REQUEST, "unknown_host", "unknown host")
    } else if l.contains("authentication failed")
        || l.contains("could not read username")
        || l.contains("could not read password")
        || l.contains(" 401")
        || l.contains(" 403")
    {
        (
            StatusCode::UNAUTHORIZED,
            "remote_auth_failed",
            "the remote refused access (a wrong or missing token, or a private repository)",
        )
    } else if l.contains("not found") || l.contains(" 404") {
        (
            StatusCode::NOT_FOUND,
            "repo_not_found",
            "no repository at this URL",
        )
    } else {
        (StatusCode::BAD_GATEWAY, "clone_failed", "the clone failed")
    };
    let said: String = said.trim().chars().take(2000).collect();
    ApiError::new(status, code, format!("{what}: git clone {url}: {said}"))
}

/// One entry of `git ls-tree -r -z --long`: mode, object id, size (`None` for a submodule),
/// path (raw bytes).
fn parse_ls_tree(out: &[u8]) -> Vec<(String, String, Option<u64>, Vec<u8>)> {
    out.split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .filter_map(|e| {
            let tab = e.iter().position(|b| *b == b'\t')?;
            let head = std::str::from_utf8(&e[..tab]).ok()?;
            let mut f = head.split_ascii_whitespace();
            let (mode, _kind, oid, size) = (f.next()?, f.next()?, f.next()?, f.next()?);
            Some((
                mode.to_string(),
                oid.to_string(),
                size.parse().ok(),
                e[tab + 1..].to_vec(),
            ))
        })
        .collect()
}

/// `POST /projects/{id}/git/import`: a shallow clone (`--depth 1 --no-tags --single-branch`)
/// of a remote over HTTP(S), into a scratch directory under the data dir (never a sandbox's
/// path or the working copy), with the push's protections; each tracked regular file within
/// the project's limits is saved create-only as an object of project `id`, and the reply is
/// their manifest, the commit, what was skipped and the template the files fit.
pub async fn import_route(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Result<Json<ImportReply>, ApiError> {
    check_project_id(&id)?;
    let req: ImportRequest = parse_json(&body)?;
    import(&st, &id, &req, IMPORT_MAX_BYTES).await.map(Json)
}

/// The import, with its byte cap (tests give a small one).
async fn import(
    st: &AppState,
    id: &str,
    req: &ImportRequest,
    max_bytes: u64,
) -> Result<ImportReply, ApiError> {
    let host = req
        .validate()
        .map_err(|e| ApiError::bad_request("invalid_import", e))?;
    let url = req.url.trim().to_string();
    let mut config = public_remote(st, &url, &host, "import from").await?;
    let src = st.objects.clone().ok_or_else(crate::changes::no_storage)?;
    let lock = st.sync_lock(&format!("import:{id}"));
    let _guard = lock.lock().await;

    let parent = st.data_dir.join("import");
    std::fs::create_dir_all(&parent).map_err(|e| git_failed("creating the scratch dir", e))?;
    let scratch = ScratchDir(parent.join(format!(
        "{id}-{}-{}",
        std::process::id(),
        crate::sync::now_ns()
    )));
    std::fs::create_dir(&scratch.0).map_err(|e| git_failed("creating the scratch dir", e))?;
    let repo = scratch.0.join("repo.git");

    // The clone: bare (no checkout, so no filters or attributes touch the bytes), watched for
    // its size on disk and its time.
    let mut cmd = bare_git();
    cmd.args([
        "clone",
        "--bare",
        "--depth",
        "1",
        "--no-tags",
        "--single-branch",
        "--quiet",
    ]);
    if let Some(b) = &req.branch {
        cmd.arg("--branch").arg(b);
    }
    cmd.arg("--")
        .arg(&url)
        .arg(&repo)
        .current_dir(&scratch.0)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ALLOW_PROTOCOL", "http:https")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(auth) = req.authorization() {
        config.push(("http.extraHeader", format!("Authorization: {auth}")));
    }
    with_config(&mut cmd, &config);
    let scrub = |text: &str| {
        let mut t = text.to_string();
        if let Some(tok) = &req.token {
            t = t.replace(tok.as_str(), "<token>");
        }
        if let Some(auth) = req.authorization() {
            t = t.replace(&auth, "<token>");
        }
        t
    };
    let mut child = cmd.spawn().map_err(|e| git_failed("git clone", e))?;
    let mut stderr = child.stderr.take().expect("piped");
    let said = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut buf = Vec::new();
        let _ = (&mut stderr).take(64 << 10).read_to_end(&mut buf).await;
        // Keep draining so git never blocks on a full pipe.
        let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
        buf
    });
    let deadline = tokio::time::Instant::now() + IMPORT_TIMEOUT;
    let status = loop {
        tokio::select! {
            s = child.wait() => break s.map_err(|e| git_failed("git clone", e))?,
            _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {
                let used = disk_usage(&scratch.0);
                if used > max_bytes {
                    let _ = child.kill().await;
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "repository_too_large",
                        format!(
                            "the clone of {url} passed {} MB on disk; the limit is {} MB",
                            used >> 20,
                            max_bytes >> 20
                        ),
                    ));
                }
                if tokio::time::Instant::now() > deadline {
                    let _ = child.kill().await;
                    return Err(ApiError::new(
                        StatusCode::GATEWAY_TIMEOUT,
                        "import_timed_out",
                        format!("the clone of {url} took over {} s", IMPORT_TIMEOUT.as_secs()),
                    ));
                }
            }
        }
    };
    let said = scrub(&String::from_utf8_lossy(&said.await.unwrap_or_default()));
    if !status.success() {
        return Err(clone_error(&url, &said));
    }
    if disk_usage(&scratch.0) > max_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "repository_too_large",
            format!("the clone of {url} is over {} MB on disk", max_bytes >> 20),
        ));
    }
    let out = git(&repo)
        .args(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"])
        .output()
        .await
        .map_err(|e| git_failed("git rev-parse", e))?;
    let commit = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || commit.is_empty() {
        return Err(ApiError::bad_request(
            "empty_repository",
            format!("{url} has no commits to import"),
        ));
    }

    // The tracked files; what a project cannot hold is skipped, with the reason.
    let out = git(&repo)
        .args(["ls-tree", "-r", "-z", "--long", "--full-tree"])
        .arg(&commit)
        .output()
        .await
        .map_err(|e| git_failed("git ls-tree", e))?;
    if !out.status.success() {
        return Err(git_failed(
            "git ls-tree",
            String::from_utf8_lossy(&out.stderr),
        ));
    }
    let skip = |path: String, reason: &str, message: String| SkippedFile {
        path,
        reason: reason.to_string(),
        message,
    };
    let mut skipped = Vec::new();
    let mut wanted: Vec<(String, String, u64)> = Vec::new();
    for (mode, oid, size, raw) in parse_ls_tree(&out.stdout) {
        let path = match String::from_utf8(raw) {
            Ok(p) => p,
            Err(e) => {
                let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
                skipped.push(skip(lossy, "invalid_utf8", "the name is not UTF-8".into()));
                continue;
            }
        };
        match mode.as_str() {
            "100644" | "100755" => {}
            "120000" => {
                skipped.push(skip(path, "symlink", "symlinks are not imported".into()));
                continue;
            }
            "160000" => {
                skipped.push(skip(
                    path,
                    "submodule",
                    "submodules are not imported (their files live in another repository)".into(),
                ));
                continue;
            }
            _ => {
                skipped.push(skip(path, "not_regular_file", format!("mode {mode}")));
                continue;
            }
        }
        if let Err(e) = open_replit_core::paths::validate_path(&path) {
            skipped.push(skip(path, e.rule(), e.to_string()));
            continue;
        }
        let size = size.unwrap_or(0);
        if let Err(e) = open_replit_core::paths::validate_size(size as usize) {
            skipped.push(skip(path, e.rule(), e.to_string()));
            continue;
        }
        wanted.push((path, oid, size));
    }
    let max_files = req.max_files();
    if wanted.len() > max_files {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_files",
            format!(
                "{url} has {} files to import; a project may hold {max_files}",
                wanted.len()
            ),
        ));
    }
    let total: u64 = wanted.iter().map(|w| w.2).sum();
    if total > max_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "repository_too_large",
            format!(
                "{url} has {} MB of files to import; the limit is {} MB",
                total >> 20,
                max_bytes >> 20
            ),
        ));
    }

    // Each distinct blob read once from the clone (`git cat-file --batch`), hashed, and saved
    // create-only, a few at a time.
    let mut oids: Vec<String> = wanted.iter().map(|w| w.1.clone()).collect();
    oids.sort();
    oids.dedup();
    let mut child = git(&repo)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| git_failed("git cat-file", e))?;
    let mut stdin = child.stdin.take().expect("piped");
    let input: Vec<u8> = oids
        .iter()
        .flat_map(|o| format!("{o}\n").into_bytes())
        .collect();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
    });
    let mut reader = tokio::io::BufReader::new(child.stdout.take().expect("piped"));
    let roots: BTreeMap<&str, &str> = wanted
        .iter()
        .filter(|w| w.0 == "template.json" || w.0 == "package.json")
        .map(|w| (w.1.as_str(), w.0.as_str()))
        .collect();
    let mut root_texts: BTreeMap<String, String> = BTreeMap::new();
    let mut by_oid: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut uploads = futures_util::stream::FuturesUnordered::new();
    for oid in &oids {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt};
        let mut header = String::new();
        reader
            .read_line(&mut header)
            .await
            .map_err(|e| git_failed("git cat-file", e))?;
        let mut f = header.split_ascii_whitespace();
        let size = match (f.next(), f.next(), f.next()) {
            (Some(o), Some("blob"), Some(n)) if o == oid => n.parse::<usize>().ok(),
            _ => None,
        }
        .ok_or_else(|| git_failed("git cat-file", format!("unexpected answer {header:?}")))?;
        let mut bytes = vec![0u8; size + 1];
        reader
            .read_exact(&mut bytes)
            .await
            .map_err(|e| git_failed("git cat-file", e))?;
        bytes.truncate(size);
        if let Some(name) = roots.get(oid.as_str()) {
            root_texts.insert(
                name.to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            );
        }
        let sha = open_replit_core::vm_auth::sha256_hex(&bytes);
        by_oid.insert(oid.clone(), (sha.clone(), size as u64));
        let src = &src;
        uploads.push(async move {
            src.put(id, &sha, bytes)
                .await
                .map_err(|e| git_failed("saving an object", e))
        });
        if uploads.len() >= 8 {
            uploads.next().await.transpose()?;
        }
    }
    while let Some(r) = uploads.next().await {
        r?;
    }
    drop(reader);
    let _ = writer.await;
    let _ = child.wait().await;

    let mut manifest = Manifest::default();
    for (path, oid, _) in &wanted {
        let (sha256, size) = by_oid[oid].clone();
        manifest
            .files
            .insert(path.clone(), FileEntry { sha256, size });
    }
    crate::sync::validate_manifest(&manifest)
        .map_err(|e| ApiError::bad_request("invalid_import", e.to_string()))?;
    let paths: Vec<&str> = manifest.files.keys().map(String::as_str).collect();
    let template = infer_template(
        &paths,
        root_texts.get("template.json").map(String::as_str),
        root_texts.get("package.json").map(String::as_str),
    )
    .map(String::from);
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    let skipped_more = skipped.len().saturating_sub(IMPORT_SKIPPED_LIST);
    skipped.truncate(IMPORT_SKIPPED_LIST);
    tracing::info!(
        project = %id,
        remote = %url,
        files = manifest.files.len(),
        skipped = skipped.len() + skipped_more,
        "imported a repository"
    );
    Ok(ImportReply {
        manifest,
        commit,
        skipped,
        skipped_more,
        template,
    })
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

#[cfg(test)]
mod import_tests {
    use super::*;

    #[test]
    fn ls_tree_entries_keep_mode_size_and_raw_path() {
        let out = [
            &b"100644 blob aaaa     12\tsrc/a b.txt"[..],
            b"120000 blob bbbb      5\tlink",
            b"160000 commit cccc       -\tvendor/lib",
            b"100755 blob dddd 7\tbin/\xff",
        ]
        .join(&0u8);
        let e = parse_ls_tree(&out);
        assert_eq!(e.len(), 4);
        assert_eq!(
            e[0],
            (
                "100644".into(),
                "aaaa".into(),
                Some(12),
                b"src/a b.txt".to_vec()
            )
        );
        assert_eq!(e[1].0, "120000");
        assert_eq!(
            e[2],
            ("160000".into(), "cccc".into(), None, b"vendor/lib".to_vec())
        );
        assert_eq!(e[3].3, b"bin/\xff".to_vec());
    }

    #[test]
    fn git_s_complaints_become_clear_errors() {
        let c = |said: &str| clone_error("https://h/x.git", said);
        assert_eq!(
            c("fatal: repository 'https://h/x.git/' not found").code,
            "repo_not_found"
        );
        assert_eq!(
            c("fatal: could not read Username for 'https://h': terminal prompts disabled").code,
            "remote_auth_failed"
        );
        assert_eq!(
            c("fatal: Authentication failed for 'https://h/x.git/'").status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            c("fatal: unable to access 'https://nope/': Could not resolve host: nope").code,
            "unknown_host"
        );
        assert_eq!(
            c("warning: Could not find remote branch dev to clone.\nfatal: Remote branch dev not found in upstream origin").code,
            "branch_not_found"
        );
        assert_eq!(c("fatal: early EOF").code, "clone_failed");
    }

    #[test]
    fn a_scratch_dir_goes_when_dropped_and_its_usage_is_counted() {
        let d = std::env::temp_dir().join(format!("or-import-test-{}", std::process::id()));
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("a/b/f"), vec![0u8; 1000]).unwrap();
        std::fs::write(d.join("g"), vec![0u8; 24]).unwrap();
        std::os::unix::fs::symlink("/usr", d.join("link")).unwrap();
        assert!(disk_usage(&d) >= 1024);
        assert!(disk_usage(&d) < 4096, "the symlink is not followed");
        drop(ScratchDir(d.clone()));
        assert!(!d.exists());
    }

    #[tokio::test]
    async fn private_remotes_are_refused_without_the_flag() {
        let st = Arc::new(AppState::new(
            b"0123456789abcdef".to_vec(),
            std::env::temp_dir(),
            Arc::new(crate::sandbox::Refuse("test".into())),
        ));
        for url in [
            "http://127.0.0.1:9/x.git",
            "http://10.0.0.1/x.git",
            "http://[::1]/x.git",
            "http://169.254.169.254/latest",
        ] {
            let body =
                serde_json::to_vec(&serde_json::json!({"url": url, "token": "t0k"})).unwrap();
            let e = import_route(State(st.clone()), UrlPath("p-1".into()), body.into())
                .await
                .unwrap_err();
            assert_eq!(e.code, "private_remote", "{url}: {e}");
        }
        let body = serde_json::to_vec(&serde_json::json!({"url": "file:///etc"})).unwrap();
        let e = import_route(State(st.clone()), UrlPath("p-1".into()), body.into())
            .await
            .unwrap_err();
        assert_eq!(e.code, "invalid_import");
    }

    /// Objects saved by an import, by (project, sha256).
    #[derive(Default)]
    struct Recorder(std::sync::Mutex<BTreeMap<(String, String), Vec<u8>>>);

    impl crate::sync::ObjectSource for Recorder {
        fn fetch<'a>(
            &'a self,
            project: &'a str,
            sha256: &'a str,
        ) -> futures_util::future::BoxFuture<'a, Result<Vec<u8>, crate::sync::FetchError>> {
            Box::pin(async move {
                Err(crate::sync::FetchError::NotFound(format!(
                    "{project}/{sha256}"
                )))
            })
        }

        fn put<'a>(
            &'a self,
            project: &'a str,
            sha256: &'a str,
            bytes: Vec<u8>,
        ) -> futures_util::future::BoxFuture<'a, Result<(), crate::sync::FetchError>> {
            Box::pin(async move {
                self.0
                    .lock()
                    .unwrap()
                    .insert((project.to_string(), sha256.to_string()), bytes);
                Ok(())
            })
        }
    }

    fn commit_all(dir: &Path) {
        for args in [
            &["init", "-q", "--initial-branch", "main"][..],
            &["add", "-A"],
            &["commit", "-qm", "first"],
        ] {
            let out = std::process::Command::new("git")
                .args(args)
                .current_dir(dir)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@t")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@t")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// The pin `public_remote` hands git is one Debian's git (libcurl) honours: a name DNS
    /// does not know reaches the pinned address, and without the pin it does not resolve.
    // Several threads: the git server answers while git asks it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn git_connects_to_the_pinned_address_and_asks_no_dns() {
        let server = e2e::gitserver::GitServer::start("pin-token").await.unwrap();
        let work = tempfile::tempdir().unwrap();
        std::fs::write(work.path().join("a.txt"), "a\n").unwrap();
        commit_all(work.path());
        let url = server.create_from("r.git", work.path()).unwrap();
        let port = open_replit_core::git::remote_port(&url);
        let pinned = url.replace("127.0.0.1", "pinned-remote.invalid");
        let auth = open_replit_core::git::basic_authorization(
            open_replit_core::git::DEFAULT_USERNAME,
            "pin-token",
        );
        let ls_remote = |pin: Option<String>| {
            let pinned = pinned.clone();
            let mut config = vec![("http.extraHeader", format!("Authorization: {auth}"))];
            config.extend(pin.map(|p| ("http.curloptResolve", p)));
            async move {
                let mut cmd = bare_git();
                cmd.args(["ls-remote", "--", &pinned])
                    .env("GIT_TERMINAL_PROMPT", "0")
                    .stdin(Stdio::null());
                with_config(&mut cmd, &config);
                cmd.output().await.unwrap()
            }
        };
        let pin = open_replit_core::git::curl_resolve_pin(
            "pinned-remote.invalid",
            port,
            &["127.0.0.1".parse().unwrap()],
        );
        let out = ls_remote(pin).await;
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("HEAD"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = ls_remote(None).await;
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Could not resolve host"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Several threads: the git server answers while git clones from it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_clone_is_imported_within_the_limits_and_leaves_no_scratch_dir() {
        let server = e2e::gitserver::GitServer::start("unit-import-token")
            .await
            .unwrap();
        let work = tempfile::tempdir().unwrap();
        let w = work.path();
        std::fs::create_dir_all(w.join("app")).unwrap();
        std::fs::create_dir_all(w.join("sub")).unwrap();
        std::fs::write(w.join("requirements.txt"), "fastapi\n").unwrap();
        std::fs::write(w.join("app/main.py"), "app = None\n").unwrap();
        std::fs::write(w.join("sub/b.txt"), "same\n").unwrap();
        std::fs::write(w.join("sub/c.txt"), "same\n").unwrap();
        let big = vec![7u8; open_replit_core::paths::MAX_FILE_BYTES + 1];
        std::fs::write(w.join("big.bin"), &big).unwrap();
        // Incompressible bytes, so the clone's pack is as large as they are.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..300_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(w.join("noise.bin"), &noise).unwrap();
        std::os::unix::fs::symlink("requirements.txt", w.join("link")).unwrap();
        commit_all(w);
        let url = server.create_from("r.git", w).unwrap();

        let data = tempfile::tempdir().unwrap();
        let objects = Arc::new(Recorder::default());
        let mut st = AppState::new(
            b"0123456789abcdef".to_vec(),
            data.path().to_path_buf(),
            Arc::new(crate::sandbox::Refuse("test".into())),
        );
        st.git_private_remotes = true;
        st.objects = Some(objects.clone());
        let req = |max_files: Option<usize>| ImportRequest {
            url: url.clone(),
            branch: None,
            token: Some("unit-import-token".into()),
            max_files,
        };
        let scratch_left = || {
            std::fs::read_dir(data.path().join("import"))
                .map(|d| d.count())
                .unwrap_or(0)
        };

        let r = import(&st, "p-1", &req(None), IMPORT_MAX_BYTES)
            .await
            .unwrap();
        let paths: Vec<&str> = r.manifest.files.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            [
                "app/main.py",
                "noise.bin",
                "requirements.txt",
                "sub/b.txt",
                "sub/c.txt"
            ]
        );
        let skipped: Vec<(&str, &str)> = r
            .skipped
            .iter()
            .map(|s| (s.path.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(
            skipped,
            [("big.bin", "file_too_large"), ("link", "symlink")]
        );
        assert_eq!(r.template.as_deref(), Some("backend"));
        assert_eq!(r.commit.len(), 40);
        let saved = objects.0.lock().unwrap().clone();
        // One object per distinct content, under its own sha256, of this project.
        assert_eq!(saved.len(), 4);
        for (path, e) in &r.manifest.files {
            let bytes = &saved[&("p-1".to_string(), e.sha256.clone())];
            assert_eq!(bytes, &std::fs::read(w.join(path)).unwrap(), "{path}");
            assert_eq!(e.size, bytes.len() as u64);
        }
        assert_eq!(scratch_left(), 0);

        let e = import(&st, "p-2", &req(Some(4)), IMPORT_MAX_BYTES)
            .await
            .unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::PAYLOAD_TOO_LARGE, "too_many_files"),
            "{e}"
        );
        assert_eq!(scratch_left(), 0);
        let e = import(&st, "p-3", &req(None), 100_000).await.unwrap_err();
        assert_eq!(e.code, "repository_too_large", "{e}");
        assert_eq!(scratch_left(), 0);

        let mut wrong = req(None);
        wrong.token = Some("unit-wrong-token".into());
        let e = import(&st, "p-4", &wrong, IMPORT_MAX_BYTES)
            .await
            .unwrap_err();
        assert_eq!(e.code, "remote_auth_failed", "{e}");
        assert!(!e.message.contains("unit-wrong-token"), "{e}");
        assert_eq!(scratch_left(), 0);
    }
}
