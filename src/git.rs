//! The project as a git repository (issue 17), inside the project's room: `git clone
//! {worker}/projects/{id}/git`. Before refs are advertised, the checkpoints the VM's history
//! lacks are committed there (incrementally: only those after its last one, each with only its
//! changed files); then git's smart HTTP is passed to the VM API's `git http-backend`, signed.
//! Fetch only; `POST …/git/push` pushes the history to a remote with the caller's token, and
//! `POST …/git/github` to a GitHub repository it creates (`github.rs`).

use crate::error::ApiError;
use crate::room_state::Room;
use crate::vm::Vm;
use futures_util::future::try_join_all;
use open_replit_core::git::{ExportCheckpoint, ExportRequest, PushRequest, MAX_EXPORT_CHECKPOINTS};
use open_replit_core::github_repo::GithubPushRequest;
use open_replit_core::manifest::Manifest;
use open_replit_core::store::project::Projects;
use open_replit_core::store::Transport;
use worker::{Headers, Method, Request, Response};

/// `…/git/info/refs` and `…/git/git-upload-pack`.
pub async fn handle<T: Transport>(
    room: &Room,
    mut req: Request,
    p: &Projects<'_, T>,
    id: &str,
    rest: &str,
) -> Result<Response, ApiError> {
    let url = req.url()?;
    let method = req.method();
    let vm = Vm::from_config(room.config())?.acting_for(&Vm::user_of(&req));
    let tail = rest.trim_start_matches("/git/");
    let query = url.query().unwrap_or("");
    match (method.clone(), tail) {
        (Method::Post, "push") => {
            let body: PushRequest = serde_json::from_slice(&req.bytes().await?)
                .map_err(|e| ApiError::BadRequest(format!("invalid push request: {e}")))?;
            body.validate().map_err(ApiError::BadRequest)?;
            bring_up_to_date(&vm, p, id).await?;
            return Ok(Response::from_json(&vm.git_push(id, &body).await?)?);
        }
        (Method::Post, "github") => {
            let text = req.text().await?;
            let body: GithubPushRequest = if text.trim().is_empty() {
                GithubPushRequest::default()
            } else {
                serde_json::from_str(&text).map_err(|e| {
                    ApiError::BadRequest(format!("invalid GitHub push request: {e}"))
                })?
            };
            let meta = p.meta(id).await?;
            bring_up_to_date(&vm, p, id).await?;
            let user = Vm::user_of(&req);
            let reply = crate::github::push(room.env(), &vm, &user, id, &meta.name, body).await?;
            return Ok(Response::from_json(&reply)?);
        }
        (Method::Get, "info/refs") if query == "service=git-upload-pack" => {
            bring_up_to_date(&vm, p, id).await?;
        }
        (Method::Post, "git-upload-pack") => {}
        (_, "info/refs") | (_, "git-receive-pack") => {
            return Err(ApiError::Forbidden(
                "this repository is read-only: clone and fetch it; push to your own remote".into(),
            ))
        }
        _ => return Err(ApiError::NotFound(format!("{method} /projects/{id}{rest}"))),
    }
    let headers = Headers::new();
    for k in ["content-type", "content-encoding", "git-protocol", "accept"] {
        if let Some(v) = req.headers().get(k)? {
            headers.set(k, &v)?;
        }
    }
    let body = if method == Method::Post {
        Some(req.bytes().await?)
    } else {
        None
    };
    let path = if query.is_empty() {
        format!("/projects/{id}/git/{tail}")
    } else {
        format!("/projects/{id}/git/{tail}?{query}")
    };
    vm.forward(method, &path, &headers, body).await
}

/// Commits every checkpoint the VM's history lacks, oldest first, in batches.
async fn bring_up_to_date<T: Transport>(
    vm: &Vm,
    p: &Projects<'_, T>,
    id: &str,
) -> Result<(), ApiError> {
    let head = p.head_number(id).await?.unwrap_or(0);
    let mut after = vm.git_state(id).await?.last_checkpoint;
    if after >= head {
        return Ok(());
    }
    let mut base = if after == 0 {
        Manifest::default()
    } else {
        p.checkpoint(id, after).await?.manifest
    };
    while after < head {
        let upto = head.min(after + MAX_EXPORT_CHECKPOINTS as u64);
        let cps = try_join_all((after + 1..=upto).map(|n| p.checkpoint(id, n))).await?;
        let checkpoints: Vec<ExportCheckpoint> = cps
            .into_iter()
            .map(|c| ExportCheckpoint {
                n: c.info.n,
                author: serde_json::to_value(c.info.author)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_else(|| "system".into()),
                summary: c.info.summary,
                created_ms: c.info.created_ms,
                manifest: c.manifest,
            })
            .collect();
        let next_base = checkpoints
            .last()
            .map(|c| c.manifest.clone())
            .unwrap_or_default();
        vm.git_export(
            id,
            &ExportRequest {
                after,
                base,
                checkpoints,
            },
        )
        .await?;
        base = next_base;
        after = upto;
    }
    Ok(())
}
