//! Azure Blob from the Worker: core's `Transport` over `fetch`, with a timeout per request.

use crate::config::Config;
use crate::error::ApiError;
use futures_util::future::{select, Either};
use open_replit_core::azure::rest::{HttpRequest, HttpResponse};
use open_replit_core::azure::AzureConfig;
use open_replit_core::store::{BlobClient, Transport};
use std::time::Duration;
use wasm_bindgen::JsCast;
use worker::{Delay, Fetch, Headers, Method, Request, RequestInit};

pub struct FetchTransport {
    pub timeout: Duration,
}

impl Transport for FetchTransport {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, String> {
        let headers = Headers::new();
        for (k, v) in &req.headers {
            // workerd derives Content-Length from the body and refuses to have it set.
            if !k.eq_ignore_ascii_case("content-length") {
                headers.set(k, v).map_err(|e| e.to_string())?;
            }
        }
        let method = Method::from(req.method.to_string());
        let mut init = RequestInit::new();
        init.with_method(method).with_headers(headers);
        if let Some(b) = &req.body {
            init.with_body(Some(js_sys::Uint8Array::from(b.as_slice()).into()));
        }
        let request = Request::new_with_init(&req.url, &init).map_err(|e| e.to_string())?;
        let send = Box::pin(async move {
            let mut resp = Fetch::Request(request).send().await?;
            let status = resp.status_code();
            let etag = resp.headers().get("etag").ok().flatten();
            let body = resp.bytes().await?;
            Ok::<_, worker::Error>(HttpResponse { status, etag, body })
        });
        match select(send, Box::pin(Delay::from(self.timeout))).await {
            Either::Left((r, _)) => r.map_err(|e| e.to_string()),
            Either::Right(_) => Err(format!("no answer within {} ms", self.timeout.as_millis())),
        }
    }

    async fn sleep_ms(&self, ms: u64) {
        Delay::from(Duration::from_millis(ms)).await
    }

    fn now_ms(&self) -> u64 {
        js_sys::Date::now() as u64
    }

    fn random_u64(&self) -> u64 {
        let b = random_bytes::<8>();
        u64::from_le_bytes(b)
    }
}

/// Cryptographically random bytes from the runtime's `crypto.getRandomValues`.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    let scope: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    if let Ok(c) = scope.crypto() {
        let _ = c.get_random_values_with_u8_array(&mut buf);
    }
    buf
}

/// The project container client from the Worker's settings.
pub fn blob_client(cfg: &Config) -> Result<BlobClient<FetchTransport>, ApiError> {
    let conn = cfg.azure_connection_string.as_deref().ok_or_else(|| {
        ApiError::Upstream(
            "AZURE_STORAGE_CONNECTION_STRING is not set (see .dev.vars.example)".into(),
        )
    })?;
    let azure = AzureConfig::from_connection_string(conn)
        .map_err(|e| ApiError::Upstream(format!("AZURE_STORAGE_CONNECTION_STRING: {e}")))?;
    Ok(BlobClient::new(
        azure,
        cfg.azure_container.clone(),
        FetchTransport {
            timeout: Duration::from_secs(20),
        },
    ))
}
