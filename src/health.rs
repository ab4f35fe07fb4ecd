//! `GET /health`: is Azure Blob reachable, is the VM API reachable, which LLM is configured.

use crate::azure::Blob;
use crate::config::Config;
use crate::error::ApiError;
use futures_util::future::{join, select, Either};
use open_replit_core::health::{Check, HealthReport};
use std::time::Duration;
use worker::{Delay, Env, Fetch, Method, Response, Url};

const TIMEOUT: Duration = Duration::from_secs(3);

pub async fn handle(env: &Env) -> Result<Response, ApiError> {
    let cfg = Config::from_env(env);
    let (azure, vm) = join(check_azure(&cfg), check_vm(&cfg)).await;
    let report = HealthReport::new(azure, vm, cfg.llm.status());
    let status = if report.ok { 200 } else { 503 };
    Ok(Response::from_json(&report)?.with_status(status))
}

async fn check_azure(cfg: &Config) -> Check {
    let blob = match Blob::from_config(cfg) {
        Ok(b) => b,
        Err(e) => return red(e),
    };
    // Get Container Properties: cheap, authenticated, and tells us whether the key is right.
    match blob
        .call(Method::Get, None, &[("restype", "container")], &[], None, TIMEOUT)
        .await
    {
        Ok(r) if r.status == 200 => green(format!(
            "reachable at {}, container {:?} exists",
            blob.cfg.host(),
            blob.container
        )),
        Ok(r) if r.status == 404 => green(format!(
            "reachable at {}, container {:?} not created yet",
            blob.cfg.host(),
            blob.container
        )),
        Ok(r) if r.status == 403 => Check {
            ok: false,
            detail: format!(
                "Azure Blob at {} refused our credentials (403): check AZURE_STORAGE_CONNECTION_STRING",
                blob.cfg.host()
            ),
        },
        Ok(r) => Check {
            ok: false,
            detail: format!(
                "Azure Blob at {} answered HTTP {}: {}",
                blob.cfg.host(),
                r.status,
                String::from_utf8_lossy(&r.body).chars().take(200).collect::<String>()
            ),
        },
        Err(e) => red(e),
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
    let detail = match e {
        ApiError::Upstream(m)
        | ApiError::Internal(m)
        | ApiError::BadRequest(m)
        | ApiError::NotFound(m) => m,
    };
    Check { ok: false, detail }
}
