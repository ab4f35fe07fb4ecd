//! The VM API client: every request HMAC-signed with core's `vm_auth` (plus a nonce), JSON in,
//! JSON or NDJSON out, each with a timeout, and failures phrased for a person.

use crate::config::Config;
use crate::error::ApiError;
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use open_replit_core::manifest::Manifest;
use open_replit_core::store::Transport;
use open_replit_core::vm_auth;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use worker::{AbortSignal, Delay, Fetch, Headers, Method, Request, RequestInit, Response};

pub struct Vm {
    base: String,
    secret: Vec<u8>,
}

/// The last event of an exec stream.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExecExit {
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
    pub timed_out: bool,
    pub truncated: bool,
}

#[derive(Serialize)]
pub struct ExecRequest<'a> {
    pub command: &'a str,
    pub cwd: &'a str,
    pub timeout_s: u64,
    pub env: BTreeMap<String, String>,
    /// Share the install this command makes with other projects (the VM API's dependency
    /// cache): the files that decide it, and what it produces under `cwd`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<ExecCache<'a>>,
}

#[derive(Serialize)]
pub struct ExecCache<'a> {
    pub inputs: &'a [String],
    pub outputs: &'a [String],
}

fn now_secs() -> i64 {
    (js_sys::Date::now() / 1000.0) as i64
}

impl Vm {
    pub fn from_config(cfg: &Config) -> Result<Vm, ApiError> {
        let secret = cfg.vm_api_secret.clone().ok_or_else(|| {
            ApiError::Upstream(
                "VM_API_SECRET is not set: the Worker cannot sign VM API requests".into(),
            )
        })?;
        Ok(Vm {
            base: cfg.vm_api_url.clone(),
            secret: secret.into_bytes(),
        })
    }

    /// Sends a signed request; `Err` only when the VM API could not be reached in time.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
        abort: Option<&AbortSignal>,
    ) -> Result<Response, ApiError> {
        let nonce = crate::azure::FetchTransport { timeout }.random_u64();
        let path = vm_auth::with_nonce(path, nonce);
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let ts = now_secs();
        let sig = vm_auth::sign(&self.secret, method.as_ref(), &path, ts, &bytes);
        let headers = Headers::new();
        headers.set(vm_auth::HEADER_TIMESTAMP, &ts.to_string())?;
        headers.set(vm_auth::HEADER_SIGNATURE, &sig)?;
        if body.is_some() {
            headers.set("content-type", "application/json")?;
        }
        let mut init = RequestInit::new();
        init.with_method(method).with_headers(headers);
        if body.is_some() {
            init.with_body(Some(js_sys::Uint8Array::from(bytes.as_slice()).into()));
        }
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

    /// A JSON call; non-2xx answers become errors carrying the VM API's own message.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value, ApiError> {
        let mut r = self.send(method, path, body, timeout, None).await?;
        let status = r.status_code();
        let text = r.text().await.unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if (200..300).contains(&status) {
            return Ok(v);
        }
        let msg = v["error"]["message"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| v.to_string());
        Err(match status {
            400 => ApiError::BadRequest(msg),
            404 => ApiError::NotFound(msg),
            409 => ApiError::Conflict {
                message: msg,
                details: serde_json::json!({}),
            },
            _ => ApiError::Upstream(format!("VM API answered HTTP {status}: {msg}")),
        })
    }

    /// Makes the project's working copy equal to `manifest` (objects come from Blob storage).
    pub async fn sync(&self, project: &str, manifest: &Manifest) -> Result<Value, ApiError> {
        let body = serde_json::json!({ "manifest": manifest });
        self.json(
            Method::Post,
            &format!("/projects/{project}/sync"),
            Some(&body),
            Duration::from_secs(120),
        )
        .await
    }

    /// Runs a command, calling `on_output(stream, data)` for each chunk, until it exits.
    /// Aborting the signal kills the command on the VM (the VM API kills on disconnect).
    pub async fn exec(
        &self,
        project: &str,
        req: &ExecRequest<'_>,
        abort: Option<&AbortSignal>,
        mut on_output: impl FnMut(&str, &str),
    ) -> Result<ExecExit, ApiError> {
        let body = serde_json::to_value(req)?;
        let timeout = Duration::from_secs(req.timeout_s + 30);
        let mut r = self
            .send(
                Method::Post,
                &format!("/projects/{project}/exec"),
                Some(&body),
                timeout,
                abort,
            )
            .await?;
        let status = r.status_code();
        if !(200..300).contains(&status) {
            let text = r.text().await.unwrap_or_default();
            let v: Value = serde_json::from_str(&text).unwrap_or_default();
            let msg = v["error"]["message"].as_str().unwrap_or(&text).to_string();
            return Err(if status == 400 {
                ApiError::BadRequest(msg)
            } else {
                ApiError::Upstream(format!("VM API answered HTTP {status}: {msg}"))
            });
        }
        let mut stream = r.stream()?;
        let mut buf: Vec<u8> = Vec::new();
        let mut exit: Option<ExecExit> = None;
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::Upstream(format!("VM API stream broke: {e}")))?;
            buf.extend_from_slice(&chunk);
            while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                let Ok(v) = serde_json::from_slice::<Value>(&line) else {
                    continue;
                };
                match v["type"].as_str() {
                    Some(s @ ("stdout" | "stderr")) => {
                        on_output(s, v["data"].as_str().unwrap_or(""));
                    }
                    Some("exit") => exit = serde_json::from_value(v).ok(),
                    _ => {}
                }
            }
        }
        exit.ok_or_else(|| {
            ApiError::Upstream("the command's output ended without an exit status".into())
        })
    }

    /// A minted preview token for `project`, valid for `secs`.
    pub fn preview_token(&self, project: &str, secs: i64) -> String {
        vm_auth::mint_preview_token(&self.secret, project, now_secs() + secs)
    }
}
