//! A real git server for tests: Debian's `git http-backend` (CGI) behind a small HTTP server on
//! 127.0.0.1, serving the bare repositories under a temporary root, push included, for
//! callers whose Basic auth password is the server's token (anything else gets git's 401).

use anyhow::Result;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

pub struct GitServer {
    pub url: String,
    pub root: tempfile::TempDir,
    pub token: String,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    root: PathBuf,
    token: String,
}

impl GitServer {
    /// Starts the server; `token` is the only password it accepts.
    pub async fn start(token: &str) -> Result<GitServer> {
        let root = tempfile::Builder::new().prefix("or-git-").tempdir()?;
        let shared = Arc::new(Shared {
            root: root.path().to_path_buf(),
            token: token.to_string(),
        });
        let app = axum::Router::new().fallback(handle).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(GitServer {
            url,
            root,
            token: token.to_string(),
            task,
        })
    }

    /// Creates an empty bare repository `name` (e.g. `demo.git`); returns its URL.
    pub fn create(&self, name: &str) -> Result<String> {
        let dir = self.root.path().join(name);
        let out = std::process::Command::new("git")
            .args(["init", "--bare", "-q", "--initial-branch", "main"])
            .arg(&dir)
            .output()?;
        anyhow::ensure!(out.status.success(), "git init failed");
        Ok(format!("{}/{name}", self.url))
    }

    /// Serves the history of the non-bare repository at `work` as bare repository `name`
    /// (a `git clone --bare` of it, so its current branch is the default one); returns its URL.
    pub fn create_from(&self, name: &str, work: &std::path::Path) -> Result<String> {
        let out = std::process::Command::new("git")
            .args(["clone", "--bare", "-q"])
            .arg(work)
            .arg(self.root.path().join(name))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "git clone --bare failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(format!("{}/{name}", self.url))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(open_replit_core::auth::token::basic_password)
        .is_some_and(|p| p == token)
}

async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if !authorized(&parts.headers, &s.token) {
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("www-authenticate", "Basic realm=\"git\"")
            .body(Body::from("authentication required"))
            .unwrap();
    }
    let header = |k: &str| -> String {
        parts
            .headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let env = CgiEnv {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        ctype: header("content-type"),
        encoding: header("content-encoding"),
        proto: header("git-protocol"),
    };
    let body: Bytes = axum::body::to_bytes(body, 256 << 20)
        .await
        .unwrap_or_default();
    match cgi(s.root.clone(), env, body.to_vec()).await {
        Some(r) => r,
        None => Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .body(Body::from("git http-backend failed"))
            .unwrap(),
    }
}

struct CgiEnv {
    method: String,
    path: String,
    query: String,
    ctype: String,
    encoding: String,
    proto: String,
}

async fn cgi(root: PathBuf, e: CgiEnv, body: Vec<u8>) -> Option<Response> {
    let root = root.as_path();
    let mut child = tokio::process::Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", root)
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        // An authenticated user may push (http.receivepack defaults to on then).
        .env("REMOTE_USER", "tester")
        .env("PATH_INFO", &e.path)
        .env("REQUEST_METHOD", &e.method)
        .env("QUERY_STRING", &e.query)
        .env("CONTENT_TYPE", &e.ctype)
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", &e.encoding)
        .env("GIT_PROTOCOL", &e.proto)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let write = async move {
        let _ = stdin.write_all(&body).await;
    };
    let (_, out) = tokio::join!(write, child.wait_with_output());
    let raw = out.ok()?.stdout;
    let a = open_replit_core::git::split_cgi(&raw)?;
    let mut b = Response::builder().status(a.status);
    for (k, v) in a.headers {
        b = b.header(k, v);
    }
    b.body(Body::from(a.body.to_vec())).ok()
}
