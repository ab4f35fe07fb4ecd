//! `POST /projects/{id}/objects/copy`: objects of another project copied into this one's, for a
//! fork. Each object is read from storage, checked against its sha256 name and written
//! create-only under the new project; nothing else is touched. Only the Worker calls it, after
//! checking that the caller may read the source.

use crate::error::{check_project_id, parse_json, ApiError};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::Json;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use open_replit_core::vm_api::{CopyObjectsReply, CopyObjectsRequest};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Objects in flight at once.
const PARALLEL: usize = 8;

pub async fn copy_route(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Result<Json<CopyObjectsReply>, ApiError> {
    check_project_id(&id)?;
    let req: CopyObjectsRequest = parse_json(&body)?;
    req.validate(&id)
        .map_err(|e| ApiError::bad_request("invalid_copy", e))?;
    let objects = st.objects.clone().ok_or_else(crate::changes::no_storage)?;
    let unique: BTreeSet<String> = req.sha256.into_iter().collect();
    let created: Vec<bool> = stream::iter(unique)
        .map(|sha| {
            let (objects, from, to) = (objects.clone(), req.from.clone(), id.clone());
            async move {
                let bytes = crate::sync::fetch_verified(objects.as_ref(), &from, &sha).await?;
                objects.put_new(&to, &sha, bytes).await.map_err(|e| {
                    ApiError::new(StatusCode::BAD_GATEWAY, "storage_failed", e.to_string())
                })
            }
        })
        .buffer_unordered(PARALLEL)
        .try_collect()
        .await?;
    let copied = created.iter().filter(|c| **c).count();
    Ok(Json(CopyObjectsReply {
        copied,
        existed: created.len() - copied,
    }))
}
