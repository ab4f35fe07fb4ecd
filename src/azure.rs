//! Azure Blob REST calls from the Worker over `fetch`, signed with core's SharedKey signer.

use crate::error::ApiError;
use futures_util::future::{select, Either};
use open_replit_core::azure::{
    authorization_header, AzureAuth, AzureConfig, SignableRequest, API_VERSION,
};
use std::time::Duration;
use worker::{Delay, Fetch, Headers, Method, Request, RequestInit, Response};

pub struct Blob {
    pub cfg: AzureConfig,
    pub container: String,
}

/// A completed Blob call: status, headers and the body read to the end.
pub struct BlobResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Blob {
    pub fn from_config(cfg: &crate::config::Config) -> Result<Self, ApiError> {
        let conn = cfg.azure_connection_string.as_deref().ok_or_else(|| {
            ApiError::Upstream(
                "AZURE_STORAGE_CONNECTION_STRING is not set (see .dev.vars.example)".into(),
            )
        })?;
        let azure = AzureConfig::from_connection_string(conn)
            .map_err(|e| ApiError::Upstream(format!("AZURE_STORAGE_CONNECTION_STRING: {e}")))?;
        Ok(Blob {
            cfg: azure,
            container: cfg.azure_container.clone(),
        })
    }

    /// Sends one signed request and reads the whole answer, or fails after `timeout`.
    pub async fn call(
        &self,
        method: Method,
        blob: Option<&str>,
        query: &[(&str, &str)],
        extra_headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<BlobResponse, ApiError> {
        let target = self.cfg.target(&self.container, blob, query);
        let len = body.as_ref().map(|b| b.len()).unwrap_or(0);
        let mut hs: Vec<(String, String)> = vec![
            ("x-ms-date".into(), http_date_now()),
            ("x-ms-version".into(), API_VERSION.into()),
        ];
        if body.is_some() {
            hs.push(("content-length".into(), len.to_string()));
        }
        for (k, v) in extra_headers {
            hs.push((k.to_string(), v.to_string()));
        }
        if let AzureAuth::SharedKey(key) = &self.cfg.auth {
            let auth = authorization_header(
                &self.cfg.account,
                key,
                &SignableRequest {
                    method: method.as_ref(),
                    encoded_path: &target.encoded_path,
                    query: &target.query,
                    headers: &hs,
                },
            );
            hs.push(("authorization".into(), auth));
        }
        let headers = Headers::new();
        for (k, v) in &hs {
            // workerd computes Content-Length itself from the body.
            if k != "content-length" {
                headers.set(k, v)?;
            }
        }
        let mut init = RequestInit::new();
        init.with_method(method).with_headers(headers);
        if let Some(b) = body {
            init.with_body(Some(js_sys::Uint8Array::from(b.as_slice()).into()));
        }
        let req = Request::new_with_init(&target.url, &init)?;
        let host = self.cfg.host().to_string();
        let send = async move {
            let mut resp: Response = Fetch::Request(req).send().await?;
            let status = resp.status_code();
            let body = resp.bytes().await?;
            Ok::<_, worker::Error>(BlobResponse { status, body })
        };
        let send = Box::pin(send);
        let timer = Box::pin(Delay::from(timeout));
        match select(send, timer).await {
            Either::Left((Ok(r), _)) => Ok(r),
            Either::Left((Err(e), _)) => Err(ApiError::Upstream(format!(
                "Azure Blob at {host} is unreachable: {e}"
            ))),
            Either::Right(_) => Err(ApiError::Upstream(format!(
                "Azure Blob at {host} did not answer within {} ms",
                timeout.as_millis()
            ))),
        }
    }
}

/// RFC 1123 date for `x-ms-date`, from the Workers clock.
pub fn http_date_now() -> String {
    String::from(js_sys::Date::new_0().to_utc_string())
}
