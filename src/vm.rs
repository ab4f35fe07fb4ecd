//! The VM API client: every request HMAC-signed with core's `vm_auth` (plus a nonce), bodies
//! and replies typed by core's `vm_api`, each call with a timeout, and failures phrased for a
//! person.

use crate::config::Config;
use crate::error::ApiError;
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use open_replit_core::deploy::build::{self, BuildEvent, BuildRequest};
use open_replit_core::deploy::service::{
    ActivateReply, StartBackendReply, StartBackendRequest, UnpublishReply,
};
use open_replit_core::git::{
    ExportRequest, GitState, ImportReply, ImportRequest, PushReply, PushRequest,
};
use open_replit_core::manifest::Manifest;
use open_replit_core::store::Transport;
use open_replit_core::vm_api::{
    BrowserReportsQuery, BrowserReportsReply, Changes, ErrorBody, ExecEvent, ExecExit, ExecRequest,
    LogsQuery, LogsReply, PreviewCheckReply, PreviewCheckRequest, ProcessInfo, ProcessList,
    ReadyQuery, ReadyReply, SearchReply, SearchRequest, StartProcessRequest, SyncReport,
    SyncRequest,
};
use open_replit_core::vm_auth;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;
use worker::{
    AbortSignal, Delay, Fetch, Headers, Method, Request, RequestInit, Response, WebSocket,
};

pub struct Vm {
    base: String,
    secret: Vec<u8>,
    /// Who the calls act for (`x-or-user`, signed): the VM API's per-user command cap.
    user: Option<String>,
}

/// How a command ended, and what it changed in the working copy (when it was scanned and
/// something changed, was skipped, or could not be saved).
pub struct ExecOutcome {
    pub exit: ExecExit,
    pub changes: Option<Changes>,
}

/// Most calls answer at once; this bounds them.
const SHORT: Duration = Duration::from_secs(10);
/// A published app's API request: as long as a person would wait for a page.
const LIVE_TIMEOUT: Duration = Duration::from_secs(100);
/// Process starts and restarts wait for the old process to go.
const PROCESS_CHANGE: Duration = Duration::from_secs(30);
/// A removal stops everything of the project and deletes its blobs, a fork copies them
/// (thousands, for a big project with many checkpoints).
const BULK_TIMEOUT: Duration = Duration::from_secs(120);

fn now_secs() -> i64 {
    (js_sys::Date::now() / 1000.0) as i64
}

/// An error reply as a person reads it: the VM API's own message when it sent one.
fn error_from(status: u16, text: &str) -> ApiError {
    let msg = serde_json::from_str::<ErrorBody>(text)
        .map(|b| b.error.message)
        .unwrap_or_else(|_| text.to_string());
    match status {
        400 => ApiError::BadRequest(msg),
        404 => ApiError::NotFound(msg),
        409 => ApiError::Conflict {
            message: msg,
            details: serde_json::json!({}),
        },
        _ => ApiError::Upstream(format!("VM API answered HTTP {status}: {msg}")),
    }
}

impl Vm {
    pub fn from_config(cfg: &Config) -> Result<Vm, ApiError> {
        Vm::new(cfg.vm_api_url.clone(), cfg.vm_api_secret.clone())
    }

    /// The client from the VM API's two settings alone (a published app's hot path).
    pub fn from_env(env: &worker::Env) -> Result<Vm, ApiError> {
        let (base, secret) = crate::config::vm_api(env);
        Vm::new(base, secret)
    }

    fn new(base: String, secret: Option<String>) -> Result<Vm, ApiError> {
        let secret = secret.ok_or_else(|| {
            ApiError::Upstream(
                "VM_API_SECRET is not set: the Worker cannot sign VM API requests".into(),
            )
        })?;
        Ok(Vm {
            base,
            secret: secret.into_bytes(),
            user: None,
        })
    }

    /// The same client acting for `user` (the Worker's `x-or-user`; `local` when absent).
    pub fn acting_for(mut self, user: &str) -> Vm {
        self.user = Some(user.to_string());
        self
    }

    /// The user a request to this Worker acts for: its `x-or-user` header, `local` without one
    /// (local mode, or before sign-in sets it).
    pub fn user_of(req: &Request) -> String {
        req.headers()
            .get(vm_auth::HEADER_USER)
            .ok()
            .flatten()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "local".to_string())
    }

    fn auth_headers(&self, method: &str, path: &str, body: &[u8]) -> Result<Headers, ApiError> {
        let headers = Headers::new();
        for (k, v) in vm_auth::request_headers(
            &self.secret,
            method,
            path,
            now_secs(),
            body,
            self.user.as_deref(),
        ) {
            headers.set(k, &v)?;
        }
        Ok(headers)
    }

    /// Sends a signed request; `Err` only when the VM API could not be reached in time.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
        abort: Option<&AbortSignal>,
    ) -> Result<Response, ApiError> {
        let nonce = crate::azure::FetchTransport { timeout }.random_u64();
        let path = vm_auth::with_nonce(path, nonce);
        let headers =
            self.auth_headers(method.as_ref(), &path, body.as_deref().unwrap_or_default())?;
        let mut init = RequestInit::new();
        if let Some(bytes) = &body {
            headers.set("content-type", "application/json")?;
            init.with_body(Some(js_sys::Uint8Array::from(bytes.as_slice()).into()));
        }
        init.with_method(method).with_headers(headers);
        let req = Request::new_with_init(&format!("{}{path}", self.base), &init)?;
        let base = self.base.clone();
        let fetch = async move {
            match abort {
                Some(a) => Fetch::Request(req).send_with_signal(a).await,
                None => Fetch::Request(req).send().await,
            }
        };
        match select(Box::pin(fetch), Box::pin(Delay::from(timeout))).await {
            Either::Left((Ok(r), _)) => Ok(r),
            Either::Left((Err(e), _)) => Err(ApiError::Upstream(format!(
                "VM API at {base} is unreachable: {e}"
            ))),
            Either::Right(_) => Err(ApiError::Upstream(format!(
                "VM API at {base} did not answer within {} s",
                timeout.as_secs()
            ))),
        }
    }

    /// Opens a signed WebSocket to the VM API (`path` with its query).
    pub async fn open_socket(&self, path: &str) -> Result<WebSocket, ApiError> {
        let nonce = crate::azure::FetchTransport { timeout: SHORT }.random_u64();
        let path = vm_auth::with_nonce(path, nonce);
        let headers = self.auth_headers("GET", &path, b"")?;
        headers.set("upgrade", "websocket")?;
        let mut init = RequestInit::new();
        init.with_method(Method::Get).with_headers(headers);
        let req = Request::new_with_init(&format!("{}{path}", self.base), &init)?;
        let mut r = match select(
            Box::pin(Fetch::Request(req).send()),
            Box::pin(Delay::from(SHORT)),
        )
        .await
        {
            Either::Left((Ok(r), _)) => r,
            Either::Left((Err(e), _)) => {
                return Err(ApiError::Upstream(format!(
                    "VM API at {} is unreachable: {e}",
                    self.base
                )))
            }
            Either::Right(_) => {
                return Err(ApiError::Upstream(format!(
                    "VM API at {} did not answer within {} s",
                    self.base,
                    SHORT.as_secs()
                )))
            }
        };
        let status = r.status_code();
        if status != 101 {
            let text = r.text().await.unwrap_or_default();
            return Err(error_from(status, &text));
        }
        r.websocket().ok_or_else(|| {
            ApiError::Upstream("the VM API accepted the terminal but sent no socket".into())
        })
    }

    /// Scans the working copy now and saves what changed since the last sync or report.
    pub async fn changes(&self, project: &str) -> Result<Changes, ApiError> {
        self.call(
            Method::Post,
            &format!("/projects/{project}/changes"),
            None::<&()>,
            Duration::from_secs(120),
        )
        .await
    }

    /// A JSON call; non-2xx answers become errors carrying the VM API's own message.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        timeout: Duration,
    ) -> Result<T, ApiError> {
        let bytes = body.map(serde_json::to_vec).transpose()?;
        let mut r = self.send(method, path, bytes, timeout, None).await?;
        let status = r.status_code();
        let text = r.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(error_from(status, &text));
        }
        serde_json::from_str(&text).map_err(|e| {
            ApiError::Upstream(format!(
                "VM API sent an answer this Worker does not understand ({e}): {}",
                text.chars().take(200).collect::<String>()
            ))
        })
    }

    /// Makes the project's working copy equal to `manifest` (objects come from Blob storage).
    pub async fn sync(&self, project: &str, manifest: &Manifest) -> Result<SyncReport, ApiError> {
        let body = SyncRequest {
            manifest: manifest.clone(),
            blob: None,
        };
        self.call(
            Method::Post,
            &format!("/projects/{project}/sync"),
            Some(&body),
            Duration::from_secs(120),
        )
        .await
    }

    /// The project's managed processes (dev servers), in start order.
    pub async fn processes(&self, project: &str) -> Result<ProcessList, ApiError> {
        self.call(
            Method::Get,
            &format!("/projects/{project}/processes"),
            None::<&()>,
            SHORT,
        )
        .await
    }

    pub async fn start_process(
        &self,
        project: &str,
        req: &StartProcessRequest,
    ) -> Result<ProcessInfo, ApiError> {
        self.call(
            Method::Post,
            &format!("/projects/{project}/processes"),
            Some(req),
            PROCESS_CHANGE,
        )
        .await
    }

    pub async fn restart_process(
        &self,
        project: &str,
        name: &str,
    ) -> Result<ProcessInfo, ApiError> {
        self.call(
            Method::Post,
            &format!("/projects/{project}/processes/{name}/restart"),
            None::<&()>,
            PROCESS_CHANGE,
        )
        .await
    }

    /// Copies objects of project `from` into `project`'s (a fork).
    pub async fn copy_objects(
        &self,
        project: &str,
        from: &str,
        sha256: Vec<String>,
    ) -> Result<open_replit_core::vm_api::CopyObjectsReply, ApiError> {
        let req = open_replit_core::vm_api::CopyObjectsRequest {
            from: from.to_string(),
            sha256,
        };
        self.call(
            Method::Post,
            &format!("/projects/{project}/objects/copy"),
            Some(&req),
            BULK_TIMEOUT,
        )
        .await
    }

    /// Removes the project from the VM host and from storage (`DELETE /projects/{id}`).
    pub async fn remove_project(
        &self,
        project: &str,
    ) -> Result<open_replit_core::vm_api::RemoveReply, ApiError> {
        self.call(
            Method::Delete,
            &format!("/projects/{project}"),
            None::<&()>,
            BULK_TIMEOUT,
        )
        .await
    }

    pub async fn stop_process(&self, project: &str, name: &str) -> Result<ProcessInfo, ApiError> {
        self.call(
            Method::Delete,
            &format!("/projects/{project}/processes/{name}"),
            None::<&()>,
            PROCESS_CHANGE,
        )
        .await
    }

    /// Waits (up to the query's timeout) until the process listens, or reports that it died.
    pub async fn ready(
        &self,
        project: &str,
        name: &str,
        q: &ReadyQuery,
    ) -> Result<ReadyReply, ApiError> {
        let wait = Duration::from_millis(q.timeout_ms.unwrap_or(15_000));
        self.call(
            Method::Get,
            &format!(
                "/projects/{project}/processes/{name}/ready?{}",
                q.to_query()
            ),
            None::<&()>,
            wait + Duration::from_secs(20),
        )
        .await
    }

    /// The last lines of a process's log.
    pub async fn logs(
        &self,
        project: &str,
        name: &str,
        q: &LogsQuery,
    ) -> Result<LogsReply, ApiError> {
        self.call(
            Method::Get,
            &format!("/projects/{project}/processes/{name}/logs?{}", q.to_query()),
            None::<&()>,
            SHORT,
        )
        .await
    }

    /// What the preview page reported (waiting up to the query's `wait_ms` for a page load).
    pub async fn browser_reports(
        &self,
        project: &str,
        q: &BrowserReportsQuery,
    ) -> Result<BrowserReportsReply, ApiError> {
        let wait = Duration::from_millis(q.wait_ms.unwrap_or(0));
        self.call(
            Method::Get,
            &format!("/projects/{project}/browser-reports?{}", q.to_query()),
            None::<&()>,
            wait + SHORT,
        )
        .await
    }

    /// A bounded regex search over the project's working copy.
    pub async fn search(
        &self,
        project: &str,
        req: &SearchRequest,
    ) -> Result<SearchReply, ApiError> {
        self.call(
            Method::Post,
            &format!("/projects/{project}/search"),
            Some(req),
            Duration::from_secs(30),
        )
        .await
    }

    /// Loads a page of the preview in the VM host's headless browser and reports its errors.
    pub async fn preview_check(
        &self,
        project: &str,
        req: &PreviewCheckRequest,
    ) -> Result<PreviewCheckReply, ApiError> {
        self.call(
            Method::Post,
            &format!("/projects/{project}/preview-check"),
            Some(req),
            Duration::from_secs(60),
        )
        .await
    }

    /// Runs a command, calling `on_output(stream, data)` for each chunk, until it exits.
    /// Aborting the signal kills the command on the VM (the VM API kills on disconnect).
    pub async fn exec(
        &self,
        project: &str,
        req: &ExecRequest,
        abort: Option<&AbortSignal>,
        mut on_output: impl FnMut(&str, &str),
    ) -> Result<ExecOutcome, ApiError> {
        let body = serde_json::to_vec(req)?;
        let timeout = Duration::from_secs(req.timeout_s.unwrap_or(60) + 30);
        let mut r = self
            .send(
                Method::Post,
                &format!("/projects/{project}/exec"),
                Some(body),
                timeout,
                abort,
            )
            .await?;
        let status = r.status_code();
        if !(200..300).contains(&status) {
            let text = r.text().await.unwrap_or_default();
            return Err(match error_from(status, &text) {
                // Only a bad request keeps its own kind; anything else is the VM's failure.
                e @ (ApiError::BadRequest(_) | ApiError::Upstream(_)) => e,
                e => ApiError::Upstream(format!("VM API answered HTTP {status}: {}", e.message())),
            });
        }
        let mut stream = r.stream()?;
        let mut buf: Vec<u8> = Vec::new();
        let mut exit: Option<ExecExit> = None;
        let mut changes: Option<Changes> = None;
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::Upstream(format!("VM API stream broke: {e}")))?;
            buf.extend_from_slice(&chunk);
            while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                match serde_json::from_slice::<ExecEvent>(&line) {
                    Ok(ExecEvent::Stdout { data }) => on_output("stdout", &data),
                    Ok(ExecEvent::Stderr { data }) => on_output("stderr", &data),
                    Ok(ExecEvent::Exit(e)) => exit = Some(e),
                    Ok(ExecEvent::Changes(c)) => changes = Some(c),
                    // A line of a kind this Worker does not know yet is skipped.
                    Err(_) => {}
                }
            }
        }
        let exit = exit.ok_or_else(|| {
            ApiError::Upstream("the command's output ended without an exit status".into())
        })?;
        Ok(ExecOutcome { exit, changes })
    }

    /// Builds a deployment (`POST …/deployments/build`), calling `on_event` for each NDJSON
    /// line; answers the last one (`built` or `error`). A broken stream (the VM API restarted)
    /// is an `Err`.
    pub async fn deploy_build(
        &self,
        project: &str,
        req: &BuildRequest,
        mut on_event: impl FnMut(&BuildEvent),
    ) -> Result<BuildEvent, ApiError> {
        let body = serde_json::to_vec(req)?;
        let timeout =
            Duration::from_secs(req.timeout_s.unwrap_or(build::DEFAULT_BUILD_TIMEOUT_S) + 60);
        let mut r = self
            .send(
                Method::Post,
                &format!("/projects/{project}/deployments/build"),
                Some(body),
                timeout,
                None,
            )
            .await?;
        let status = r.status_code();
        if !(200..300).contains(&status) {
            let text = r.text().await.unwrap_or_default();
            return Err(error_from(status, &text));
        }
        let mut stream = r.stream()?;
        let mut buf: Vec<u8> = Vec::new();
        let mut last: Option<BuildEvent> = None;
        let read = async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| {
                    ApiError::Upstream(format!("the VM API's build stream broke: {e}"))
                })?;
                buf.extend_from_slice(&chunk);
                while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=nl).collect();
                    if let Ok(ev) = serde_json::from_slice::<BuildEvent>(&line) {
                        on_event(&ev);
                        if matches!(ev, BuildEvent::Built(_) | BuildEvent::Error(_)) {
                            last = Some(ev);
                        }
                    }
                }
            }
            Ok::<(), ApiError>(())
        };
        match select(Box::pin(read), Box::pin(Delay::from(timeout))).await {
            Either::Left((r, _)) => r?,
            Either::Right(_) => {
                return Err(ApiError::Upstream(format!(
                    "the build did not end within {} s",
                    timeout.as_secs()
                )))
            }
        }
        last.ok_or_else(|| {
            ApiError::Upstream(
                "the VM API's build stream ended without a result (did the VM API restart?)".into(),
            )
        })
    }

    /// Starts a deployment's backend as a candidate and waits for its health path.
    pub async fn deploy_start(
        &self,
        project: &str,
        deployment: &str,
        req: &StartBackendRequest,
    ) -> Result<StartBackendReply, ApiError> {
        self.call(
            Method::Post,
            &format!("/projects/{project}/deployments/{deployment}/start"),
            Some(req),
            Duration::from_secs(req.health_timeout_s + 40),
        )
        .await
    }

    /// Makes a healthy candidate the live backend (the previous one is stopped after).
    pub async fn deploy_activate(
        &self,
        project: &str,
        deployment: &str,
    ) -> Result<ActivateReply, ApiError> {
        self.call(
            Method::Post,
            &format!("/projects/{project}/deployments/{deployment}/activate"),
            None::<&()>,
            PROCESS_CHANGE,
        )
        .await
    }

    /// Stops a candidate that did not go live.
    pub async fn deploy_stop(&self, project: &str, deployment: &str) -> Result<(), ApiError> {
        self.call::<serde_json::Value>(
            Method::Post,
            &format!("/projects/{project}/deployments/{deployment}/stop"),
            None::<&()>,
            PROCESS_CHANGE,
        )
        .await
        .map(|_| ())
    }

    /// Unpublishes: stops the live backend (its data folder stays). `Ok(None)` when nothing
    /// was live.
    pub async fn deploy_unpublish(&self, project: &str) -> Result<Option<String>, ApiError> {
        match self
            .call::<UnpublishReply>(
                Method::Delete,
                &format!("/projects/{project}/deployments/live"),
                None::<&()>,
                PROCESS_CHANGE,
            )
            .await
        {
            Ok(r) => Ok(Some(r.stopped)),
            Err(ApiError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The last lines of a deployment's backend log.
    pub async fn deploy_logs(
        &self,
        project: &str,
        deployment: &str,
        tail: u32,
    ) -> Result<LogsReply, ApiError> {
        self.call(
            Method::Get,
            &format!("/projects/{project}/deployments/{deployment}/logs?tail={tail}"),
            None::<&()>,
            SHORT,
        )
        .await
    }

    /// Forwards a request of a published app to its live backend (`…/live/{path}`), signed;
    /// the answer is the backend's (or the VM API's JSON error), streamed.
    pub async fn live_proxy(
        &self,
        project: &str,
        method: Method,
        path_and_query: &str,
        headers: &Headers,
        body: Option<Vec<u8>>,
    ) -> Result<Response, ApiError> {
        self.forward(
            method,
            &format!("/projects/{project}/live{path_and_query}"),
            headers,
            body,
        )
        .await
    }

    /// Sends a request to the VM API's `path_and_query` with the caller's `headers` (plus the
    /// signature) and answers the VM API's response as it is, streamed.
    pub async fn forward(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &Headers,
        body: Option<Vec<u8>>,
    ) -> Result<Response, ApiError> {
        let nonce = crate::azure::FetchTransport { timeout: SHORT }.random_u64();
        let path = vm_auth::with_nonce(path_and_query, nonce);
        let signed =
            self.auth_headers(method.as_ref(), &path, body.as_deref().unwrap_or_default())?;
        for (k, v) in signed.entries() {
            headers.set(&k, &v)?;
        }
        let mut init = RequestInit::new();
        if let Some(bytes) = &body {
            init.with_body(Some(js_sys::Uint8Array::from(bytes.as_slice()).into()));
        }
        init.with_method(method)
            .with_headers(headers.clone())
            .with_redirect(worker::RequestRedirect::Manual);
        let req = Request::new_with_init(&format!("{}{path}", self.base), &init)?;
        match select(
            Box::pin(Fetch::Request(req).send()),
            Box::pin(Delay::from(LIVE_TIMEOUT)),
        )
        .await
        {
            Either::Left((Ok(r), _)) => Ok(r),
            Either::Left((Err(e), _)) => Err(ApiError::Upstream(format!(
                "the VM API is unreachable: {e}"
            ))),
            Either::Right(_) => Err(ApiError::Upstream(format!(
                "the VM API did not answer within {} s",
                LIVE_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Where the project's git history stands on the VM.
    pub async fn git_state(&self, project: &str) -> Result<GitState, ApiError> {
        self.call(
            Method::Get,
            &format!("/projects/{project}/git/state"),
            None::<&()>,
            SHORT,
        )
        .await
    }

    /// Commits checkpoints onto the project's git history.
    pub async fn git_export(
        &self,
        project: &str,
        req: &ExportRequest,
    ) -> Result<GitState, ApiError> {
        self.call(
            Method::Post,
            &format!("/projects/{project}/git/export"),
            Some(req),
            Duration::from_secs(120),
        )
        .await
    }

    /// Pushes the project's history to a remote (the request carries the token).
    pub async fn git_push(&self, project: &str, req: &PushRequest) -> Result<PushReply, ApiError> {
        let bytes = serde_json::to_vec(req)?;
        let mut r = self
            .send(
                Method::Post,
                &format!("/projects/{project}/git/push"),
                Some(bytes),
                Duration::from_secs(330),
                None,
            )
            .await?;
        let status = r.status_code();
        let text = r.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            // The VM API's own code says what went wrong at the remote.
            let body = serde_json::from_str::<ErrorBody>(&text).ok();
            let message = body
                .as_ref()
                .map(|b| b.error.message.clone())
                .unwrap_or(text);
            return Err(match status {
                400 => ApiError::BadRequest(message),
                401 => {
                    ApiError::Forbidden(format!("the remote refused the credentials: {message}"))
                }
                404 => ApiError::NotFound(message),
                409 => ApiError::Conflict {
                    message,
                    details: serde_json::json!({"code": "remote_rejected"}),
                },
                _ => ApiError::Upstream(message),
            });
        }
        serde_json::from_str(&text).map_err(|e| ApiError::Upstream(format!("push reply: {e}")))
    }

    /// Clones `req.url` on the VM host and saves its files as objects of `project` (which
    /// has no files yet): their manifest, the commit and what was skipped. The request carries
    /// the token; the VM API scrubs it from every message.
    pub async fn git_import(
        &self,
        project: &str,
        req: &ImportRequest,
    ) -> Result<ImportReply, ApiError> {
        let bytes = serde_json::to_vec(req)?;
        let mut r = self
            .send(
                Method::Post,
                &format!("/projects/{project}/git/import"),
                Some(bytes),
                Duration::from_secs(400),
                None,
            )
            .await?;
        let status = r.status_code();
        let text = r.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            let message = serde_json::from_str::<ErrorBody>(&text)
                .map(|b| b.error.message)
                .unwrap_or(text);
            return Err(match status {
                400 => ApiError::BadRequest(message),
                401 => ApiError::Forbidden(format!("the remote refused access: {message}")),
                404 => ApiError::NotFound(message),
                413 => ApiError::TooLarge(message),
                _ => ApiError::Upstream(message),
            });
        }
        serde_json::from_str(&text).map_err(|e| ApiError::Upstream(format!("import reply: {e}")))
    }

    /// A minted preview token for `project`, valid for `secs`.
    pub fn preview_token(&self, project: &str, secs: i64) -> String {
        vm_auth::mint_preview_token(&self.secret, project, now_secs() + secs)
    }
}
