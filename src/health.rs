//! `GET /health`: is Azure Blob reachable, is the VM API reachable, which LLM is configured.

use crate::azure::blob_client;
use crate::config::Config;
use crate::error::ApiError;
use futures_util::future::{join, select, Either};
use open_replit_core::azure::rest::BlobError;
use open_replit_core::health::{Check, HealthReport};
use std::time::Duration;
use worker::{Delay, Env, Fetch, Response, Url};

const TIMEOUT: Duration = Duration::from_secs(3);

/// `signed_in`: the full report; otherwise (anonymous callers) only green/red per check.
pub async fn handle(env: &Env, signed_in: bool) -> Result<Response, ApiError> {
    let cfg = Config::from_env(env);
    let (azure, vm) = join(check_azure(&cfg), check_vm(&cfg)).await;
    let report = HealthReport::new(azure, vm, cfg.llm.status());
    let status = if report.ok { 200 } else { 503 };
    let body = if signed_in {
        serde_json::to_value(&report)?
    } else {
        report.anonymous()
    };
    Ok(Response::from_json(&body)?.with_status(status))
}

async fn check_azure(cfg: &Config) -> Check {
    let blob = match blob_client(cfg) {
        Ok(b) => b.with_max_attempts(1),
        Err(e) => return red(e),
    };
    let host = blob.cfg.host().to_string();
    let probe = Box::pin(blob.container_exists());
    let outcome = select(probe, Box::pin(Delay::from(TIMEOUT))).await;
    match outcome {
        Either::Left((Ok(true), _)) => green(format!(
            "reachable at {host}, container {:?} exists",
            blob.container
        )),
        Either::Left((Ok(false), _)) => green(format!(
            "reachable at {host}, container {:?} not created yet",
            blob.container
        )),
        Either::Left((Err(e), _)) => Check {
            ok: false,
            detail: match e {
                BlobError::Http { status: 403, .. } => format!(
                    "Azure Blob at {host} refused our credentials (403): check AZURE_STORAGE_CONNECTION_STRING"
                ),
                other => other.to_string(),
            },
        },
        Either::Right(_) => Check {
            ok: false,
            detail: format!("Azure Blob at {host} did not answer within {} ms", TIMEOUT.as_millis()),
        },
    }
}

async fn check_vm(cfg: &Config) -> Check {
    let url = match Url::parse(&format!("{}/health", cfg.vm_api_url)) {
        Ok(u) => u,
        Err(e) => {
            return Check {
                ok: false,
                detail: format!("VM_API_URL {:?} is not a URL: {e}", cfg.vm_api_url),
            }
        }
    };
    let call = Box::pin(async move {
        let mut r = Fetch::Url(url).send().await?;
        Ok::<_, worker::Error>((r.status_code(), r.text().await.unwrap_or_default()))
    });
    match select(call, Box::pin(Delay::from(TIMEOUT))).await {
        Either::Left((Ok((200, _)), _)) => green(format!("reachable at {}", cfg.vm_api_url)),
        Either::Left((Ok((status, body)), _)) => Check {
            ok: false,
            detail: format!(
                "VM API at {} answered HTTP {status}: {}",
                cfg.vm_api_url,
                body.chars().take(200).collect::<String>()
            ),
        },
        Either::Left((Err(e), _)) => Check {
            ok: false,
            detail: format!("VM API at {} is unreachable: {e}", cfg.vm_api_url),
        },
        Either::Right(_) => Check {
            ok: false,
            detail: format!(
                "VM API at {} did not answer within {} ms",
                cfg.vm_api_url,
                TIMEOUT.as_millis()
            ),
        },
    }
}

fn green(detail: String) -> Check {
    Check { ok: true, detail }
}

fn red(e: ApiError) -> Check {
    Check {
        ok: false,
        detail: e.message(),
    }
}
