//! Sync's object source in Azure Blob Storage: core's `BlobClient` (SharedKey signing, retries
//! with backoff on 429, 5xx and connection errors) over the native reqwest transport.

use crate::sync::{FetchError, ObjectSource};
use azure_native::ReqwestTransport;
use futures_util::future::BoxFuture;
use open_replit_core::azure::rest::{BlobError, Cond};
use open_replit_core::azure::AzureConfig;
use open_replit_core::store::project::object_name;
use open_replit_core::store::BlobClient;
use std::time::Duration;

/// A large object may take a while on a slow link; each attempt gets this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

pub struct AzureObjects {
    pub blob: BlobClient<ReqwestTransport>,
}

impl AzureObjects {
    pub fn new(cfg: AzureConfig, container: &str) -> AzureObjects {
        AzureObjects {
            blob: BlobClient::new(cfg, container, ReqwestTransport::new(REQUEST_TIMEOUT)),
        }
    }
}

impl ObjectSource for AzureObjects {
    fn fetch<'a>(
        &'a self,
        project: &'a str,
        sha256: &'a str,
    ) -> BoxFuture<'a, Result<Vec<u8>, FetchError>> {
        Box::pin(async move {
            let name = object_name(project, sha256);
            match self.blob.get_opt(&name).await {
                Ok(Some(r)) => Ok(r.body),
                Ok(None) => Err(FetchError::NotFound(name)),
                Err(e) => Err(FetchError::Transport(format!("GET {name}: {e}"))),
            }
        })
    }

    /// A create-only PUT (`If-None-Match: *`): the bytes travel once, and an object that is
    /// already there (409/412, also after a retried PUT that had succeeded) is success.
    fn put<'a>(
        &'a self,
        project: &'a str,
        sha256: &'a str,
        bytes: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), FetchError>> {
        Box::pin(async move { self.put_new(project, sha256, bytes).await.map(|_| ()) })
    }

    fn delete_project<'a>(&'a self, project: &'a str) -> BoxFuture<'a, Result<usize, FetchError>> {
        Box::pin(async move {
            open_replit_core::store::project::Projects::new(&self.blob)
                .delete_project(project)
                .await
                .map_err(|e| FetchError::Transport(format!("removing project {project}: {e}")))
        })
    }

    /// The create-only PUT; `false` when the object was there already (a retried PUT whose
    /// first attempt had succeeded also counts as "there already").
    fn put_new<'a>(
        &'a self,
        project: &'a str,
        sha256: &'a str,
        bytes: Vec<u8>,
    ) -> BoxFuture<'a, Result<bool, FetchError>> {
        Box::pin(async move {
            let name = object_name(project, sha256);
            match self
                .blob
                .put(
                    &name,
                    bytes,
                    "application/octet-stream",
                    Cond::IfNoneMatchAny,
                )
                .await
            {
                Ok(_) => Ok(true),
                Err(BlobError::Precondition(_)) => Ok(false),
                Err(e) => Err(FetchError::Transport(format!("PUT {name}: {e}"))),
            }
        })
    }
}
