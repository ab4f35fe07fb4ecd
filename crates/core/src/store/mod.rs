//! Storage over Azure Blob, generic over a tiny [`Transport`] so the Worker (fetch) and native
//! code (reqwest) share every rule: signing, retries, preconditions, listing and the project
//! model in [`project`]. A platform only sends bytes, sleeps and tells the time.

pub mod date;
pub mod merge;
pub mod project;

use crate::azure::rest::{
    self, backoff_ms, BlobError, BlobItem, Cond, HttpRequest, HttpResponse, ListPage, Op,
    MAX_ATTEMPTS,
};
use crate::azure::AzureConfig;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a platform provides: one HTTP exchange, a timer, a clock and randomness.
#[allow(async_fn_in_trait)]
pub trait Transport {
    /// Sends the request and reads the whole answer; `Err` is a transport failure
    /// (connection refused, reset, timeout) described for a person.
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, String>;
    async fn sleep_ms(&self, ms: u64);
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    fn random_u64(&self) -> u64;
}

/// A Blob container client with retries; counts the requests it sends (for benchmarks).
pub struct BlobClient<T> {
    pub cfg: AzureConfig,
    pub container: String,
    pub transport: T,
    requests: AtomicU64,
    max_attempts: u32,
}

impl<T: Transport> BlobClient<T> {
    pub fn new(cfg: AzureConfig, container: impl Into<String>, transport: T) -> Self {
        BlobClient {
            cfg,
            container: container.into(),
            transport,
            requests: AtomicU64::new(0),
            max_attempts: MAX_ATTEMPTS,
        }
    }

    /// Caps attempts per call (1 = no retries, e.g. for a health probe that must answer fast).
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Whether the container exists: one request, for health checks.
    pub async fn container_exists(&self) -> Result<bool, BlobError> {
        match self.call(Op::ContainerProperties).await {
            Ok(_) => Ok(true),
            Err(BlobError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Requests sent so far, retries included.
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Sends `op` with retries on 5xx, 408 and transport errors; never retries another 4xx.
    async fn call(&self, op: Op<'_>) -> Result<HttpResponse, BlobError> {
        let mut attempt = 1;
        loop {
            let date = date::rfc1123(self.transport.now_ms() / 1000);
            let req = rest::build(&self.cfg, &self.container, op.clone(), &date);
            self.requests.fetch_add(1, Ordering::Relaxed);
            let err = match self.transport.send(req).await {
                Ok(r) if (200..300).contains(&r.status) => return Ok(r),
                Ok(r) => BlobError::from_response(r.status, &r.body),
                Err(e) => BlobError::Transport(format!("{} ({e})", self.cfg.host())),
            };
            if !err.is_retryable() || attempt >= self.max_attempts {
                return Err(err);
            }
            self.transport.sleep_ms(backoff_ms(attempt)).await;
            attempt += 1;
        }
    }

    /// Creates the container if it does not exist yet.
    pub async fn ensure_container(&self) -> Result<(), BlobError> {
        match self.call(Op::ContainerProperties).await {
            Ok(_) => Ok(()),
            Err(BlobError::NotFound) => match self.call(Op::CreateContainer).await {
                Ok(_) => Ok(()),
                // Someone else created it between our two calls.
                Err(BlobError::Http { status: 409, .. }) => Ok(()),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Writes a blob; returns its new ETag.
    pub async fn put(
        &self,
        name: &str,
        body: Vec<u8>,
        content_type: &str,
        cond: Cond,
    ) -> Result<Option<String>, BlobError> {
        let r = self
            .call(Op::Put {
                name,
                body,
                content_type,
                cond,
            })
            .await?;
        Ok(r.etag)
    }

    pub async fn get(&self, name: &str) -> Result<HttpResponse, BlobError> {
        self.call(Op::Get { name }).await
    }

    /// Like [`get`](Self::get), with a missing blob as `None`.
    pub async fn get_opt(&self, name: &str) -> Result<Option<HttpResponse>, BlobError> {
        match self.get(name).await {
            Ok(r) => Ok(Some(r)),
            Err(BlobError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn delete(&self, name: &str, cond: Cond) -> Result<(), BlobError> {
        self.call(Op::Delete { name, cond }).await.map(|_| ())
    }

    pub async fn list_page(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        marker: Option<&str>,
        max_results: Option<u32>,
    ) -> Result<ListPage, BlobError> {
        let r = self
            .call(Op::List {
                prefix,
                delimiter,
                marker,
                max_results,
            })
            .await?;
        rest::parse_list(&String::from_utf8_lossy(&r.body)).map_err(|m| BlobError::Http {
            status: r.status,
            message: m,
        })
    }

    /// Every blob under `prefix`, following `NextMarker` across pages of `page_size`.
    pub async fn list_all(
        &self,
        prefix: &str,
        page_size: Option<u32>,
    ) -> Result<Vec<BlobItem>, BlobError> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .list_page(prefix, None, marker.as_deref(), page_size)
                .await?;
            out.extend(page.blobs);
            match page.next_marker {
                Some(m) => marker = Some(m),
                None => return Ok(out),
            }
        }
    }

    /// The virtual directories directly under the container root (`proj-1/`, ...).
    pub async fn list_top_prefixes(&self) -> Result<Vec<String>, BlobError> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .list_page("", Some("/"), marker.as_deref(), None)
                .await?;
            out.extend(page.prefixes);
            match page.next_marker {
                Some(m) => marker = Some(m),
                None => return Ok(out),
            }
        }
    }
}
