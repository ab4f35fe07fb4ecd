//! `POST /projects/{id}/preview-check`: loads a page of the project's preview in a headless
//! Chromium on the VM host, through the preview proxy, and reports the page's HTTP status,
//! uncaught exceptions, console errors and failed requests (Chrome DevTools Protocol over
//! `--remote-debugging-pipe`). The browser runs as an unprivileged user with its own sandbox,
//! and every origin but the preview's goes to a dead proxy, so the page reaches nothing else.

use crate::error::{check_project_id, parse_json, ApiError};
use crate::procs::now_ms;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::Json;
use open_replit_core::vm_api::{PageProblem, PreviewCheckReply, PreviewCheckRequest};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Whole check, browser start included.
const DEADLINE: Duration = Duration::from_secs(30);
/// After `load`, wait for this much quiet (no new events) before reporting...
const SETTLE_QUIET: Duration = Duration::from_millis(1000);
/// ...but no longer than this after `load`.
const SETTLE_MAX: Duration = Duration::from_millis(4000);
/// Problems reported at most; each message capped.
const MAX_PROBLEMS: usize = 30;
const MAX_MESSAGE_CHARS: usize = 2000;
const MAX_BLOCKED: usize = 10;
/// The uid/gid the browser runs as when the VM API is root (`nobody`).
const BROWSER_ID: u32 = 65534;

/// The headless browser: `VM_API_CHROMIUM`, else `chromium` or `chromium-browser` on `PATH`.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("VM_API_CHROMIUM") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
        .find(|p| p.is_file())
}

pub async fn check_route(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Result<Json<PreviewCheckReply>, ApiError> {
    check_project_id(&id)?;
    let req: PreviewCheckRequest = parse_json(if body.is_empty() { b"{}" } else { &body })?;
    let path = req.path.unwrap_or_else(|| "/".into());
    if !path.starts_with('/')
        || path.starts_with("//")
        || !path.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(ApiError::bad_request(
            "invalid_path",
            format!("path {path:?} must be a page path starting with one '/'"),
        ));
    }
    let Some(port) = *st.preview_port.read().unwrap_or_else(|p| p.into_inner()) else {
        return Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "no_preview_listener",
            "this VM API runs without a preview listener",
        ));
    };
    if st.processes.preview_target(&id).is_none() {
        return Err(ApiError::conflict(
            "no_dev_server",
            "no dev server of this project is running; start the preview first",
        ));
    }
    let Some(chromium) = find_chromium() else {
        return Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "browser_unavailable",
            "no headless browser on the VM host: chromium is not installed \
             (scripts/ensure-tools.sh installs it)",
        ));
    };
    let _slot = st
        .browser_slots
        .acquire()
        .await
        .map_err(|_| ApiError::internal("browser_unavailable", "shutting down"))?;
    let host = format!("{id}.{}", st.preview_domain);
    let url = format!("http://{host}:{port}{path}");
    let token = crate::preview::mint_preview_token(&st.secret, &id, now_ms() as i64 / 1000 + 120);
    let run = Browser::launch(&chromium, &host).map_err(|e| {
        ApiError::internal("browser_failed", format!("could not start chromium: {e}"))
    })?;
    let result = tokio::time::timeout(DEADLINE, run.check(&host, &url, &token)).await;
    run.close().await;
    match result {
        Ok(Ok(reply)) => Ok(Json(reply)),
        Ok(Err(e)) => Err(ApiError::internal("browser_failed", e)),
        Err(_) => Err(ApiError::internal(
            "browser_failed",
            format!(
                "the headless browser did not finish within {} s",
                DEADLINE.as_secs()
            ),
        )),
    }
}

/// A running headless Chromium and its DevTools pipe.
struct Browser {
    child: tokio::process::Child,
    profile: PathBuf,
    tx: tokio::sync::Mutex<tokio::net::unix::pipe::Sender>,
    rx: tokio::sync::Mutex<(tokio::net::unix::pipe::Receiver, Vec<u8>)>,
    next_id: std::sync::atomic::AtomicU64,
}

/// A new pipe, both ends close-on-exec.
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(std::io::Error::from)
}

impl Browser {
    fn launch(chromium: &std::path::Path, host: &str) -> std::io::Result<Browser> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let profile =
            std::env::temp_dir().join(format!("vm-api-browser-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile)?;
        let root = rustix::process::geteuid().is_root();
        if root {
            std::os::unix::fs::chown(&profile, Some(BROWSER_ID), Some(BROWSER_ID))?;
        }
        let (cmd_r, cmd_w) = pipe()?;
        let (out_r, out_w) = pipe()?;
        let mut cmd = tokio::process::Command::new(chromium);
        cmd.args([
            "--headless=new",
            "--remote-debugging-pipe",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-sync",
            "--disable-component-update",
            "--mute-audio",
            // Only the preview host is reached directly; everything else goes to a proxy
            // nothing listens on (port 9, discard), loopback included.
            "--proxy-server=http://127.0.0.1:9",
            &format!("--proxy-bypass-list=<-loopback>;{host}"),
            &format!("--host-resolver-rules=MAP {host} 127.0.0.1"),
            &format!("--user-data-dir={}", profile.display()),
            "about:blank",
        ])
        .env_clear()
        .env("HOME", &profile)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
        if root {
            cmd.uid(BROWSER_ID).gid(BROWSER_ID);
        }
        // Chromium reads commands on fd 3 and writes replies on fd 4.
        let (r, w) = (cmd_r.as_raw_fd(), out_w.as_raw_fd());
        // SAFETY: only async-signal-safe calls (dup, dup2) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let (r2, w2) = (libc::dup(r), libc::dup(w));
                if r2 < 0 || w2 < 0 || libc::dup2(r2, 3) < 0 || libc::dup2(w2, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        drop((cmd_r, out_w));
        let tx = tokio::net::unix::pipe::Sender::from_owned_fd(cmd_w)?;
        let rx = tokio::net::unix::pipe::Receiver::from_owned_fd(out_r)?;
        Ok(Browser {
            child,
            profile,
            tx: tokio::sync::Mutex::new(tx),
            rx: tokio::sync::Mutex::new((rx, Vec::new())),
            next_id: std::sync::atomic::AtomicU64::new(1),
        })
    }

    async fn send(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<u64, String> {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).map_err(|e| e.to_string())?;
        bytes.push(0);
        self.tx
            .lock()
            .await
            .write_all(&bytes)
            .await
            .map_err(|e| format!("the browser closed its pipe: {e}"))?;
        Ok(id)
    }

    /// The next message from the browser.
    async fn recv(&self) -> Result<Value, String> {
        let mut g = self.rx.lock().await;
        let (rx, buf) = &mut *g;
        loop {
            if let Some(i) = buf.iter().position(|b| *b == 0) {
                let msg: Vec<u8> = buf.drain(..=i).collect();
                return serde_json::from_slice(&msg[..i]).map_err(|e| e.to_string());
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = rx.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the browser exited".into());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends a command and waits for its answer; events that arrive meanwhile go to `events`.
    async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
        events: &mut Vec<Value>,
    ) -> Result<Value, String> {
        let id = self.send(session, method, params).await?;
        loop {
            let m = self.recv().await?;
            if m["id"].as_u64() == Some(id) {
                if let Some(e) = m.get("error") {
                    return Err(format!("{method}: {e}"));
                }
                return Ok(m["result"].clone());
            }
            if m.get("method").is_some() {
                events.push(m);
            }
        }
    }

    async fn check(&self, host: &str, url: &str, token: &str) -> Result<PreviewCheckReply, String> {
        let mut events = Vec::new();
        let target = self
            .call(
                None,
                "Target.createTarget",
                json!({"url": "about:blank"}),
                &mut events,
            )
            .await?;
        let target_id = target["targetId"].as_str().unwrap_or_default().to_string();
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
                &mut events,
            )
            .await?;
        let session = attached["sessionId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let s = Some(session.as_str());
        for m in [
            "Runtime.enable",
            "Log.enable",
            "Network.enable",
            "Page.enable",
        ] {
            self.call(s, m, json!({}), &mut events).await?;
        }
        // The preview cookie, so the proxy lets the page in without a redirect.
        self.call(
            s,
            "Network.setCookie",
            json!({"name": crate::preview::COOKIE_NAME, "value": token, "domain": host, "path": "/", "httpOnly": true}),
            &mut events,
        )
        .await?;
        let nav = self
            .call(s, "Page.navigate", json!({"url": url}), &mut events)
            .await?;
        let mut page = PageState::new(url);
        page.navigation_error = nav["errorText"]
            .as_str()
            .filter(|e| !e.is_empty())
            .map(String::from);
        for e in events.drain(..) {
            page.event(&e);
        }
        if page.navigation_error.is_none() {
            // Events until `load`, then until quiet.
            let mut loaded_at: Option<tokio::time::Instant> = None;
            loop {
                let wait = match loaded_at {
                    None => Duration::from_secs(20),
                    Some(t) => {
                        let left =
                            (t + SETTLE_MAX).saturating_duration_since(tokio::time::Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        left.min(SETTLE_QUIET)
                    }
                };
                match tokio::time::timeout(wait, self.recv()).await {
                    Ok(Ok(m)) => {
                        page.event(&m);
                        if page.loaded && loaded_at.is_none() {
                            loaded_at = Some(tokio::time::Instant::now());
                        }
                    }
                    Ok(Err(e)) => return Err(e),
                    // Quiet after load (or no load at all within the wait): done.
                    Err(_) => break,
                }
            }
        }
        Ok(page.reply())
    }

    async fn close(mut self) {
        let _ = self.send(None, "Browser.close", json!({})).await;
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            crate::process::kill_group(self.child.id());
            let _ = self.child.wait().await;
        }
        // Renderers and helpers of the group, should any outlive the browser.
        crate::process::kill_group(self.child.id());
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// What the page did, from the DevTools events.
struct PageState {
    url: String,
    preview_origin: String,
    status: Option<u16>,
    loaded: bool,
    navigation_error: Option<String>,
    problems: Vec<PageProblem>,
    blocked: Vec<String>,
    requests: HashMap<String, String>,
}

/// The browser asks for `/favicon.ico` by itself; a page without one is not broken.
fn is_favicon(url: &str) -> bool {
    url.split(['?', '#'])
        .next()
        .is_some_and(|u| u.ends_with("/favicon.ico"))
}

fn capped(s: &str) -> String {
    if s.chars().count() <= MAX_MESSAGE_CHARS {
        s.to_string()
    } else {
        let t: String = s.chars().take(MAX_MESSAGE_CHARS).collect();
        format!("{t} …")
    }
}

impl PageState {
    /// `url` is `http://host:port/path`.
    fn new(url: &str) -> PageState {
        let origin_end = url[7..].find('/').map(|i| i + 7).unwrap_or(url.len());
        PageState {
            url: url.to_string(),
            preview_origin: url[..origin_end].to_string(),
            status: None,
            loaded: false,
            navigation_error: None,
            problems: Vec::new(),
            blocked: Vec::new(),
            requests: HashMap::new(),
        }
    }

    fn problem(&mut self, kind: &str, message: &str, url: &str) {
        if self.problems.len() >= MAX_PROBLEMS {
            return;
        }
        let p = PageProblem {
            kind: kind.into(),
            message: capped(message.trim()),
            url: url.to_string(),
        };
        if !self.problems.contains(&p) {
            self.problems.push(p);
        }
    }

    fn event(&mut self, m: &Value) {
        let p = &m["params"];
        match m["method"].as_str().unwrap_or_default() {
            "Page.loadEventFired" => self.loaded = true,
            "Network.requestWillBeSent" => {
                if let (Some(id), Some(u)) = (p["requestId"].as_str(), p["request"]["url"].as_str())
                {
                    self.requests.insert(id.into(), u.into());
                }
            }
            "Network.responseReceived" => {
                let status = p["response"]["status"].as_u64().unwrap_or(0) as u16;
                let u = p["response"]["url"].as_str().unwrap_or_default();
                if p["type"] == "Document" && self.status.is_none() {
                    self.status = Some(status);
                } else if status >= 400 && !is_favicon(u) {
                    self.problem("http", &format!("HTTP {status}"), u);
                }
            }
            "Network.loadingFailed" => {
                if p["canceled"] == true {
                    return;
                }
                let u = p["requestId"]
                    .as_str()
                    .and_then(|id| self.requests.get(id))
                    .cloned()
                    .unwrap_or_default();
                let err = p["errorText"].as_str().unwrap_or("failed");
                let other_origin = !u.starts_with(&self.preview_origin)
                    && (u.starts_with("http:") || u.starts_with("https:") || u.starts_with("ws"));
                if other_origin || err.contains("ERR_PROXY_CONNECTION_FAILED") {
                    if self.blocked.len() < MAX_BLOCKED && !self.blocked.contains(&u) {
                        self.blocked.push(u);
                    }
                } else if !is_favicon(&u) {
                    self.problem("request_failed", err, &u);
                }
            }
            "Runtime.exceptionThrown" => {
                let d = &p["exceptionDetails"];
                let msg = d["exception"]["description"]
                    .as_str()
                    .or(d["text"].as_str())
                    .unwrap_or("uncaught exception");
                let u = d["url"].as_str().unwrap_or_default();
                let line = d["lineNumber"].as_u64().map(|l| l + 1);
                let at = match line {
                    Some(l) if !u.is_empty() => format!("{u}:{l}"),
                    _ => u.to_string(),
                };
                self.problem("exception", msg, &at);
            }
            "Runtime.consoleAPICalled" => {
                if !matches!(p["type"].as_str(), Some("error" | "assert")) {
                    return;
                }
                let text: Vec<String> = p["args"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|v| {
                                v["value"]
                                    .as_str()
                                    .map(String::from)
                                    .or_else(|| v["description"].as_str().map(String::from))
                                    .unwrap_or_else(|| v["value"].to_string())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                self.problem("console", &text.join(" "), "");
            }
            "Log.entryAdded" => {
                let e = &p["entry"];
                // Network failures are reported from the Network events, with their URLs.
                if e["level"] == "error" && e["source"] != "network" {
                    let msg = e["text"].as_str().unwrap_or_default().to_string();
                    let u = e["url"].as_str().unwrap_or_default().to_string();
                    self.problem("log", &msg, &u);
                }
            }
            _ => {}
        }
    }

    fn reply(self) -> PreviewCheckReply {
        PreviewCheckReply {
            url: self.url,
            status: self.status,
            loaded: self.loaded,
            navigation_error: self.navigation_error,
            problems: self.problems,
            blocked: self.blocked,
        }
    }
}
