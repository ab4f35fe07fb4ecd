//! The per-project HTTP API, served inside the project's `ProjectRoom` so every change is
//! announced on its WebSocket: files, checkpoints, diff, restore and zip export (and the
//! project's deletion, in `remove`).

use crate::azure::blob_client;
use crate::error::ApiError;
use crate::room_state::Room;
use open_replit_core::manifest::Diff;
use open_replit_core::paths::{self, percent_decode};
use open_replit_core::store::project::{Author, Change, Expect, Projects};
use serde_json::json;
use std::rc::Rc;
use worker::{Method, Request, Response};

pub async fn handle(
    room: &Rc<Room>,
    mut req: Request,
    id: &str,
    rest: &str,
) -> Result<Response, ApiError> {
    let cfg = room.config();
    let blob = blob_client(cfg)?;
    let p = Projects::new(&blob).with_max_files(cfg.max_project_files);
    let url = req.url()?;
    let query = |k: &str| {
        url.query_pairs()
            .find(|(q, _)| q == k)
            .map(|(_, v)| v.to_string())
    };
    let method = req.method();
    let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    match (method.clone(), segs.as_slice()) {
        (Method::Get, [""]) => {
            let meta = p.meta(id).await?;
            let head = p.head(id).await?;
            Ok(Response::from_json(&json!({
                "project": meta,
                "head": head.map(|c| c.info),
            }))?)
        }
        (Method::Delete, [""]) => crate::remove::in_room(room, id).await,
        (Method::Patch, [""]) => {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Rename {
                name: String,
            }
            let body: Rename = serde_json::from_str(&req.text().await?)?;
            let meta = p.rename(id, &body.name).await?;
            Ok(Response::from_json(&json!({ "project": meta }))?)
        }
        (Method::Get, ["files"]) => {
            let at = parse_n(query("at").as_deref())?;
            let cp = match at {
                Some(n) => p.checkpoint(id, n).await?,
                None => p
                    .head(id)
                    .await?
                    .ok_or_else(|| ApiError::NotFound(format!("project {id}")))?,
            };
            let files: Vec<_> = cp
                .manifest
                .files
                .iter()
                .map(|(path, e)| json!({"path": path, "size": e.size, "sha256": e.sha256}))
                .collect();
            Ok(Response::from_json(
                &json!({"checkpoint": cp.info.n, "files": files}),
            )?)
        }
        (_, ["files", ..]) => {
            let raw = &rest["/files/".len().min(rest.len())..];
            let path = percent_decode(raw).map_err(ApiError::BadRequest)?;
            paths::validate_path(&path).map_err(|e| ApiError::Rule {
                rule: e.rule(),
                message: e.to_string(),
            })?;
            match method {
                Method::Get => {
                    let at = parse_n(query("at").as_deref())?;
                    let (n, entry, body) = p.read_file(id, &path, at).await?;
                    let mut r = Response::from_bytes(body)?;
                    let h = r.headers_mut();
                    h.set(
                        "content-type",
                        open_replit_core::azure::rest::content_type_for(&path),
                    )?;
                    h.set("etag", &format!("\"{}\"", entry.sha256))?;
                    h.set("x-checkpoint", &n.to_string())?;
                    h.set("x-content-type-options", "nosniff")?;
                    // Never a page on the IDE's origin: no script, and active types download.
                    h.set(
                        "content-security-policy",
                        open_replit_core::security_headers::RAW_FILE_CSP,
                    )?;
                    if open_replit_core::security_headers::is_active_type(&path) {
                        h.set(
                            "content-disposition",
                            &open_replit_core::security_headers::attachment(&path),
                        )?;
                    }
                    Ok(r)
                }
                Method::Put | Method::Delete => {
                    let base = parse_n(query("base").as_deref())?;
                    let change = if method == Method::Put {
                        let content = read_body_capped(&mut req, paths::MAX_FILE_BYTES).await?;
                        Change::Write {
                            path: path.clone(),
                            content,
                        }
                    } else {
                        Change::Delete { path: path.clone() }
                    };
                    // The editor says which checkpoint it started from; if the file moved on
                    // since, nothing is written and the answer carries both sides.
                    let expect = match base {
                        Some(n) => {
                            let cp = p.checkpoint(id, n).await?;
                            vec![Expect {
                                path: path.clone(),
                                sha256: cp.manifest.files.get(&path).map(|e| e.sha256.clone()),
                            }]
                        }
                        None => vec![],
                    };
                    let summary = if method == Method::Put {
                        format!("saved {path}")
                    } else {
                        format!("deleted {path}")
                    };
                    let result = p
                        .commit(id, vec![change], &expect, Author::User, &summary)
                        .await;
                    match result {
                        Ok(Some(cp)) => {
                            room.announce_checkpoint(&p, id, &cp).await;
                            Ok(Response::from_json(&json!({"checkpoint": cp.info}))?)
                        }
                        Ok(None) => Ok(Response::from_json(
                            &json!({"checkpoint": null, "unchanged": true}),
                        )?),
                        Err(e) => Err(e.into()),
                    }
                }
                _ => Err(ApiError::MethodNotAllowed(format!("{method} on a file"))),
            }
        }
        (Method::Get, ["checkpoints"]) => {
            let list = p.list_checkpoints(id).await?;
            Ok(Response::from_json(&json!({"checkpoints": list}))?)
        }
        (Method::Get, ["checkpoints", n, "diff"]) => {
            let to = parse_n(Some(n))?.unwrap_or(0);
            let from = match parse_n(query("from").as_deref())? {
                Some(f) => f,
                None => to.saturating_sub(1),
            };
            let diff = if from == 0 {
                let cp = p.checkpoint(id, to).await?;
                Diff {
                    added: cp.manifest.files.keys().cloned().collect(),
                    ..Default::default()
                }
            } else {
                p.diff(id, from, to).await?
            };
            Ok(Response::from_json(
                &json!({"from": from, "to": to, "diff": diff}),
            )?)
        }
        (Method::Post, ["checkpoints", n, "restore"]) => {
            let n = parse_n(Some(n))?.unwrap_or(0);
            match p.restore(id, n, Author::User).await? {
                Some(cp) => {
                    room.announce_checkpoint(&p, id, &cp).await;
                    Ok(Response::from_json(&json!({"checkpoint": cp.info}))?)
                }
                None => Ok(Response::from_json(
                    &json!({"checkpoint": null, "unchanged": true}),
                )?),
            }
        }
        (Method::Get, ["export.zip"]) => {
            let meta = p.meta(id).await?;
            let head = p
                .head(id)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("project {id}")))?;
            let files = p.read_all(id, &head.manifest).await?;
            let zip = open_replit_core::zip::write_zip(&files);
            let mut r = Response::from_bytes(zip)?;
            let h = r.headers_mut();
            h.set("content-type", "application/zip")?;
            h.set(
                "content-disposition",
                &format!("attachment; filename=\"{}-{}.zip\"", meta.id, head.info.n),
            )?;
            Ok(r)
        }
        (Method::Get, ["preview"]) => Ok(Response::from_json(
            &crate::preview::status(room, id).await?,
        )?),
        (Method::Post, ["preview", action @ ("start" | "restart")]) => {
            let vm = crate::vm::Vm::from_config(cfg)?.acting_for(&crate::vm::Vm::user_of(&req));
            let head = p
                .head(id)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("project {id}")))?;
            crate::changes::sync(room, &vm, id, &head.manifest).await?;
            let started =
                crate::preview::start(room, &vm, id, &head.manifest, *action == "restart", None)
                    .await?;
            // A rewritten lock file is part of the project, as after any command.
            for c in &started.changes {
                crate::changes::commit_outside_turn(
                    room,
                    &p,
                    id,
                    &head.manifest,
                    c,
                    "install dependencies",
                )
                .await?;
            }
            Ok(Response::from_json(&started.state)?)
        }
        (Method::Post, ["terminal"]) => crate::terminal::handle(room.clone(), req, id, &p).await,
        (_, ["deploy"]) => crate::external_deploy::handle(room, req, id).await,
        (_, ["secrets", ..]) => crate::vault::project_route(room, req, id, rest).await,
        (_, ["git", ..]) => crate::git::handle(room, req, &p, id, rest).await,
        (_, ["deployments", ..]) | (Method::Get, ["site"]) => {
            crate::publish::handle(room, req, id, rest).await
        }
        _ => Err(ApiError::NotFound(format!("{method} /projects/{id}{rest}"))),
    }
}

/// Reads a request body, failing with 413 once it passes `cap` bytes. The rest is read and
/// dropped rather than left unread, because workerd resets a connection whose request body
/// was not consumed, and the client would see no answer at all.
async fn read_body_capped(req: &mut Request, cap: usize) -> Result<Vec<u8>, ApiError> {
    use futures_util::StreamExt;
    let mut stream = req.stream()?;
    let mut buf = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        total += chunk.len();
        if total <= cap {
            buf.extend_from_slice(&chunk);
        }
    }
    paths::validate_size(total).map_err(|e| ApiError::TooLarge(e.to_string()))?;
    Ok(buf)
}

fn parse_n(v: Option<&str>) -> Result<Option<u64>, ApiError> {
    match v {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| ApiError::BadRequest(format!("{s:?} is not a checkpoint number"))),
    }
}
