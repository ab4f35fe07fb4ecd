//! A minimal signed Azure Blob client (get, put, create container) built on core's SharedKey
//! signer and URL builder; sync fetches content-addressed objects through it.

use crate::sync::{FetchError, ObjectSource};
use futures_util::future::BoxFuture;
use open_replit_core::azure::API_VERSION;
use open_replit_core::azure::{authorization_header, AzureAuth, AzureConfig, SignableRequest};

pub const DEFAULT_CONTAINER: &str = "codebase-projects";

#[derive(Clone, Debug)]
pub struct AzureBlob {
    pub cfg: AzureConfig,
    pub container: String,
    http: reqwest::Client,
}

/// The blob holding the object with content hash `sha256` for `project`.
pub fn object_blob_name(project: &str, sha256: &str) -> String {
    format!("{project}/objects/{sha256}")
}

impl AzureBlob {
    pub fn new(cfg: AzureConfig, container: impl Into<String>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(120))
            .build()?;
        Ok(AzureBlob {
            cfg,
            container: container.into(),
            http,
        })
    }

    /// Sends one signed request and returns the response, whatever its status.
    pub async fn send(
        &self,
        method: reqwest::Method,
        blob: Option<&str>,
        query: &[(&str, &str)],
        extra_headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> reqwest::Result<reqwest::Response> {
        let target = self.cfg.target(&self.container, blob, query);
        let mut headers: Vec<(String, String)> = vec![
            (
                "x-ms-date".into(),
                httpdate::fmt_http_date(std::time::SystemTime::now()),
            ),
            ("x-ms-version".into(), API_VERSION.into()),
        ];
        for (k, v) in extra_headers {
            headers.push((k.to_string(), v.to_string()));
        }
        if method != reqwest::Method::GET && method != reqwest::Method::HEAD {
            headers.push(("Content-Length".into(), body.len().to_string()));
        }
        if let AzureAuth::SharedKey(key) = &self.cfg.auth {
            let auth = authorization_header(
                &self.cfg.account,
                key,
                &SignableRequest {
                    method: method.as_str(),
                    encoded_path: &target.encoded_path,
                    query: &target.query,
                    headers: &headers,
                },
            );
            headers.push(("Authorization".into(), auth));
        }
        let mut rb = self.http.request(method, &target.url);
        for (k, v) in &headers {
            // reqwest sets Content-Length from the body itself.
            if !k.eq_ignore_ascii_case("content-length") {
                rb = rb.header(k, v);
            }
        }
        rb.body(body).send().await
    }

    /// Creates the container; an existing one is fine.
    pub async fn create_container(&self) -> anyhow::Result<()> {
        let r = self
            .send(
                reqwest::Method::PUT,
                None,
                &[("restype", "container")],
                &[],
                Vec::new(),
            )
            .await?;
        match r.status().as_u16() {
            201 | 409 => Ok(()),
            s => anyhow::bail!(
                "create container: HTTP {s}: {}",
                r.text().await.unwrap_or_default()
            ),
        }
    }

    pub async fn put_blob(&self, name: &str, data: Vec<u8>) -> anyhow::Result<()> {
        let r = self
            .send(
                reqwest::Method::PUT,
                Some(name),
                &[],
                &[("x-ms-blob-type", "BlockBlob")],
                data,
            )
            .await?;
        if !r.status().is_success() {
            anyhow::bail!(
                "put {name}: HTTP {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    pub async fn get_blob(&self, name: &str) -> Result<Vec<u8>, FetchError> {
        let r = self
            .send(reqwest::Method::GET, Some(name), &[], &[], Vec::new())
            .await
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        match r.status().as_u16() {
            200 => r
                .bytes()
                .await
                .map(|b| b.to_vec())
                .map_err(|e| FetchError::Transport(e.to_string())),
            404 => Err(FetchError::NotFound(name.to_string())),
            s => Err(FetchError::Transport(format!(
                "GET {name}: HTTP {s}: {}",
                r.text()
                    .await
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect::<String>()
            ))),
        }
    }
}

impl ObjectSource for AzureBlob {
    fn fetch<'a>(
        &'a self,
        project: &'a str,
        sha256: &'a str,
    ) -> BoxFuture<'a, Result<Vec<u8>, FetchError>> {
        Box::pin(async move { self.get_blob(&object_blob_name(project, sha256)).await })
    }
}
