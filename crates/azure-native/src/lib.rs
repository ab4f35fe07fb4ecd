//! Native transport for `open_replit_core::store`: sends core-built Blob requests with reqwest.

use open_replit_core::azure::rest::{HttpRequest, HttpResponse};
use open_replit_core::azure::AzureConfig;
use open_replit_core::store::{BlobClient, Transport};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// reqwest-backed [`Transport`] with a per-request timeout.
#[derive(Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    pub fn new(timeout: Duration) -> Self {
        ReqwestTransport {
            client: reqwest::Client::builder()
                .timeout(timeout)
                .pool_max_idle_per_host(16)
                .build()
                .expect("reqwest client with static settings"),
        }
    }
}

impl Default for ReqwestTransport {
    fn default() -> Self {
        Self::new(Duration::from_secs(30))
    }
}

impl Transport for ReqwestTransport {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, String> {
        let method =
            reqwest::Method::from_bytes(req.method.as_bytes()).map_err(|e| e.to_string())?;
        let mut b = self.client.request(method, &req.url);
        for (k, v) in &req.headers {
            // reqwest sets Content-Length from the body itself.
            if !k.eq_ignore_ascii_case("content-length") {
                b = b.header(k, v);
            }
        }
        // Azure wants a Content-Length on every PUT; hyper leaves it out for an empty body, so
        // an empty file or a container creation would be refused.
        let body = req.body.unwrap_or_default();
        if body.is_empty() && req.method == "PUT" {
            b = b.header("content-length", "0");
        }
        if !body.is_empty() || req.method == "PUT" {
            b = b.body(body);
        }
        let r = b.send().await.map_err(describe)?;
        let status = r.status().as_u16();
        let etag = r
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let body = r.bytes().await.map_err(describe)?.to_vec();
        Ok(HttpResponse { status, etag, body })
    }

    async fn sleep_ms(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await
    }

    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn random_u64(&self) -> u64 {
        // RandomState is seeded from the OS per instance: enough for nonces and jitter.
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(self.now_ms());
        h.finish()
    }
}

fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection refused".into()
    } else {
        // Walk the source chain: reqwest's top-level message alone is vague.
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        msg
    }
}

/// A client for `container` from a connection string.
pub fn client(
    connection_string: &str,
    container: &str,
) -> Result<BlobClient<ReqwestTransport>, String> {
    let cfg = AzureConfig::from_connection_string(connection_string).map_err(|e| e.to_string())?;
    Ok(BlobClient::new(cfg, container, ReqwestTransport::default()))
}
