//! Deploys to the hosts people already use, inside the project's room (`/projects/{id}/deploy`):
//! Modal for the backend (`modal deploy` of the template's `modal_app.py`, built from a
//! checkpoint on the VM with the person's Modal token in that one step's environment, its URL
//! read from the output), then Netlify for the frontend (built with `VITE_API_URL` set to that
//! URL, or the one Modal last answered when this deploy has no Modal step; only the files
//! Netlify lacks are uploaded, by `netlify.rs`). One deploy or publish at
//! a time per project (the publish lock). Records and progress: core's `deploy::external`,
//! sent as `external_deploy` events with the output as `deploy_log`.

use crate::azure::blob_client;
use crate::error::ApiError;
use crate::room_state::Room;
use crate::vm::Vm;
use open_replit_core::deploy::build::BuildEvent;
use open_replit_core::deploy::external::{
    available, choose, modal_request, modal_url, static_request, ExternalDeploy,
    ExternalDeployRequest, ExternalDeploysReply, Status, Target, KEEP_RECORDS,
};
use open_replit_core::protocol::ServerEvent;
use open_replit_core::store::project::Projects;
use open_replit_core::vault::{SecretEnv, MODAL_TOKEN_ID, MODAL_TOKEN_SECRET, NETLIFY_AUTH_TOKEN};
use std::cell::RefCell;
use std::collections::BTreeMap;
use worker::{Method, Request, Response};

const KV_RECORDS: &str = "external_deploys";
const KV_NEXT: &str = "external_next";
const KV_NETLIFY_SITE: &str = "netlify_site";
/// The SHA1 of each built object (by its sha256) of the last Netlify deploy.
const KV_NETLIFY_SHA1: &str = "netlify_sha1";
/// The Netlify site's URL: the origin the Modal backend allows (CORS).
const KV_NETLIFY_URL: &str = "netlify_url";
/// The backend URL Modal last answered: a frontend-only deploy keeps calling it.
const KV_MODAL_URL: &str = "modal_url";
/// Netlify's API unless the operator (or a test) points `NETLIFY_API_URL` elsewhere.
const NETLIFY_API_URL: &str = open_replit_core::deploy::netlify::API_BASE;

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

fn records(room: &Room) -> Vec<ExternalDeploy> {
    room.get_kv(KV_RECORDS)
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

/// Stores `d` (replacing its earlier state) and tells every socket.
fn save(room: &Room, d: &ExternalDeploy) {
    let mut all = records(room);
    match all.iter_mut().find(|r| r.id == d.id) {
        Some(r) => *r = d.clone(),
        None => all.push(d.clone()),
    }
    let n = all.len();
    if n > KEEP_RECORDS {
        all.drain(..n - KEEP_RECORDS);
    }
    if let Ok(s) = serde_json::to_string(&all) {
        if let Err(e) = room.set_kv(KV_RECORDS, &s) {
            worker::console_error!("saving external deploy {}: {e}", d.id);
        }
    }
    room.emit(ServerEvent::ExternalDeploy { deploy: d.clone() });
}

/// `GET /projects/{id}/deploy` and `POST /projects/{id}/deploy`.
pub async fn handle(room: &Room, mut req: Request, id: &str) -> Result<Response, ApiError> {
    let blob = blob_client(room.config())?;
    let p = Projects::new(&blob);
    let meta = p.meta(id).await?;
    let template = crate::templates::manifest(&meta.template);
    match req.method() {
        Method::Get => {
            let mut deploys = records(room);
            deploys.reverse();
            Ok(Response::from_json(&ExternalDeploysReply {
                deploys,
                available: available(&template),
                netlify_site: room.get_kv(KV_NETLIFY_SITE),
            })?)
        }
        Method::Post => {
            let text = req.text().await?;
            let body: ExternalDeployRequest = if text.trim().is_empty() {
                ExternalDeployRequest::default()
            } else {
                serde_json::from_str(&text)
                    .map_err(|e| ApiError::BadRequest(format!("invalid deploy request: {e}")))?
            };
            let targets =
                choose(&template, body.targets.as_deref()).map_err(ApiError::BadRequest)?;
            let user = Vm::user_of(&req);
            // Every credential is checked before anything runs.
            let env = room.env();
            let mut creds: BTreeMap<&str, String> = BTreeMap::new();
            for t in &targets {
                let names: &[&str] = match t {
                    Target::Modal => &[MODAL_TOKEN_ID, MODAL_TOKEN_SECRET],
                    Target::Netlify => &[NETLIFY_AUTH_TOKEN],
                };
                for n in names {
                    let what = format!("deploying to {}", t.as_str());
                    creds.insert(n, crate::vault::require(env, &user, n, &what).await?);
                }
            }
            let cp = match body.checkpoint {
                Some(n) => p.checkpoint(id, n).await?,
                None => p
                    .head(id)
                    .await?
                    .ok_or_else(|| ApiError::NotFound(format!("project {id} has no checkpoint")))?,
            };
            let n = room
                .get_kv(KV_NEXT)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1);
            room.set_kv(KV_NEXT, &(n + 1).to_string())?;
            let mut d = ExternalDeploy::new(n, cp.info.n, &user, &targets, now_ms());
            save(room, &d);
            let vm = Vm::from_config(room.config())?.acting_for(&user);
            let _guard = room.publish_lock().lock().await;
            let mut api_url: Option<String> = room.get_kv(KV_MODAL_URL);
            for t in targets {
                if let Some(r) = d.target_mut(t) {
                    r.status = Status::Running;
                    r.message = Some("building".into());
                }
                save(room, &d);
                let result = match t {
                    Target::Modal => {
                        let mut env = BTreeMap::new();
                        env.insert(MODAL_TOKEN_ID.to_string(), creds[MODAL_TOKEN_ID].clone());
                        env.insert(
                            MODAL_TOKEN_SECRET.to_string(),
                            creds[MODAL_TOKEN_SECRET].clone(),
                        );
                        // The app's runtime secrets go along (modal_app.py makes them a Modal
                        // secret of the app), each its own variable so each is scrubbed.
                        let app_secrets = match crate::vault::runtime_env(room, id) {
                            Ok(s) => s,
                            Err(e) => {
                                d.fail(t, e.message(), now_ms());
                                save(room, &d);
                                return Ok(Response::from_json(&d)?);
                            }
                        };
                        let names: Vec<String> = app_secrets.0.keys().cloned().collect();
                        env.extend(app_secrets.0);
                        let mut r = modal_request(
                            &template,
                            &format!("d-{}-modal", d.id),
                            &cp.manifest,
                            crate::config::get(room.env(), "MODAL_DEPLOY_COMMAND").as_deref(),
                            &format!("or-{id}"),
                            SecretEnv(env),
                        );
                        if let Some(r) = r.as_mut() {
                            r.env.insert("APP_SECRET_NAMES".into(), names.join(","));
                            // The frontend's host calls this backend: its origin, once known.
                            let origin = room
                                .get_kv(KV_NETLIFY_URL)
                                .and_then(|u| worker::Url::parse(&u).ok())
                                .map(|u| u.origin().ascii_serialization())
                                .unwrap_or_else(|| "*".into());
                            r.env.insert("CORS_ORIGINS".into(), origin);
                        }
                        match r {
                            Some(r) => modal(room, &vm, id, &r, &mut d).await.map(|u| {
                                if let Err(e) = room.set_kv(KV_MODAL_URL, &u) {
                                    worker::console_error!("saving the Modal URL: {e}");
                                }
                                api_url = Some(u.clone());
                                (u, None)
                            }),
                            None => Err("the template has no Modal recipe".into()),
                        }
                    }
                    Target::Netlify => {
                        let r = static_request(
                            &template,
                            &format!("d-{}-web", d.id),
                            &cp.manifest,
                            api_url.as_deref(),
                        );
                        match r {
                            Some(r) => netlify(room, &vm, &p, id, &r, &creds, &mut d)
                                .await
                                .map(|(u, up, total)| (u, Some((up, total)))),
                            None => Err("the template has no static frontend to deploy".into()),
                        }
                    }
                };
                match result {
                    Ok((url, counts)) => {
                        if let Some(r) = d.target_mut(t) {
                            r.status = Status::Done;
                            r.message = None;
                            r.url = Some(url);
                            if let Some((up, total)) = counts {
                                r.uploaded = Some(up);
                                r.total = Some(total);
                            }
                        }
                        save(room, &d);
                    }
                    Err(message) => {
                        d.fail(t, message, now_ms());
                        save(room, &d);
                        return Ok(Response::from_json(&d)?);
                    }
                }
            }
            d.finish(now_ms());
            save(room, &d);
            Ok(Response::from_json(&d)?)
        }
        m => Err(ApiError::MethodNotAllowed(format!(
            "{m} /projects/{id}/deploy"
        ))),
    }
}

/// Runs one build on the VM, streaming its output as `deploy_log` and keeping it in `d`'s log;
/// the build's result with its whole output, or what failed.
async fn build(
    room: &Room,
    vm: &Vm,
    id: &str,
    req: &open_replit_core::deploy::build::BuildRequest,
    d: &mut ExternalDeploy,
) -> Result<(open_replit_core::deploy::build::Built, String), String> {
    let dep = d.id.clone();
    let log = RefCell::new(String::new());
    let last = vm
        .deploy_build(id, req, |ev| {
            let (stream, data) = match ev {
                BuildEvent::Step { command, cwd, .. } => (
                    "stdout",
                    format!(
                        "$ {}{command}\n",
                        if cwd.is_empty() {
                            String::new()
                        } else {
                            format!("cd {cwd} && ")
                        }
                    ),
                ),
                BuildEvent::Stdout { data } => ("stdout", data.clone()),
                BuildEvent::Stderr { data } => ("stderr", data.clone()),
                _ => return,
            };
            log.borrow_mut().push_str(&data);
            room.emit(ServerEvent::DeployLog {
                deployment: dep.clone(),
                stream: stream.into(),
                data,
            });
        })
        .await;
    let log = log.into_inner();
    d.push_log(&log);
    match last.map_err(|e| e.message())? {
        BuildEvent::Built(b) => Ok((b, log)),
        BuildEvent::Error(e) => {
            let tail = e.last_lines.join("\n");
            Err(if tail.is_empty() {
                e.message
            } else {
                format!("{}\n{tail}", e.message)
            })
        }
        _ => Err("the build ended without a result".into()),
    }
}

/// `modal deploy` from the checkpoint; the web URL it printed.
async fn modal(
    room: &Room,
    vm: &Vm,
    id: &str,
    req: &open_replit_core::deploy::build::BuildRequest,
    d: &mut ExternalDeploy,
) -> Result<String, String> {
    let (_, out) = build(room, vm, id, req, d).await?;
    let url = modal_url(&out).ok_or_else(|| {
        "modal deploy finished but printed no web endpoint URL (does modal_app.py have an \
         @modal.asgi_app function?)"
            .to_string()
    })?;
    d.push_log(&format!("Modal backend: {url}"));
    Ok(url)
}

/// Builds the frontend, then hands its files to Netlify; `(url, uploaded, total)`.
#[allow(clippy::too_many_arguments)]
async fn netlify<T: open_replit_core::store::Transport>(
    room: &Room,
    vm: &Vm,
    p: &Projects<'_, T>,
    id: &str,
    req: &open_replit_core::deploy::build::BuildRequest,
    creds: &BTreeMap<&str, String>,
    d: &mut ExternalDeploy,
) -> Result<(String, u64, u64), String> {
    let (built, _) = build(room, vm, id, req, d).await?;
    if let Some(r) = d.target_mut(Target::Netlify) {
        r.message = Some(format!("uploading to Netlify ({} files)", built.files));
    }
    save(room, d);
    // Netlify wants each file's SHA1: known from an earlier deploy for an object already seen
    // (objects are content-addressed by sha256), read and hashed otherwise. The bytes of a
    // known file are read again only if Netlify asks for it, so a redeploy reads the changed
    // files, not the whole site (each read is a subrequest of this one request).
    let known: BTreeMap<String, String> = room
        .get_kv(KV_NETLIFY_SHA1)
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_default();
    let mut digests = BTreeMap::new();
    let mut files = Vec::with_capacity(built.manifest.files.len());
    let mut sha256s = Vec::with_capacity(built.manifest.files.len());
    for (path, e) in &built.manifest.files {
        let (sha1, bytes) = match known.get(&e.sha256) {
            Some(s) if open_replit_core::deploy::netlify::is_sha1_hex(s) => (s.clone(), None),
            _ => {
                let bytes = p
                    .object(id, &e.sha256)
                    .await
                    .map_err(|err| format!("reading the built {path} failed: {err}"))?;
                (
                    open_replit_core::deploy::netlify::sha1_hex(&bytes),
                    Some(bytes),
                )
            }
        };
        digests.insert(e.sha256.clone(), sha1.clone());
        sha256s.push(e.sha256.clone());
        files.push(crate::netlify::SiteFile {
            path: path.clone(),
            sha1,
            bytes,
        });
    }
    let read_now = files.iter().filter(|f| f.bytes.is_some()).count();
    d.push_log(&format!(
        "netlify: read {read_now} of {} built files (the others' digests were known)",
        files.len()
    ));
    // Only this site's digests are kept: the map never outgrows one deploy.
    if let Ok(v) = serde_json::to_string(&digests) {
        let _ = room.set_kv(KV_NETLIFY_SHA1, &v);
    }
    let api = crate::config::get(room.env(), "NETLIFY_API_URL")
        .unwrap_or_else(|| NETLIFY_API_URL.to_string());
    let site = room.get_kv(KV_NETLIFY_SITE);
    let lines = RefCell::new(Vec::<String>::new());
    let dep = d.id.clone();
    let log = |line: String| {
        worker::console_log!("netlify: {line}");
        room.emit(ServerEvent::DeployLog {
            deployment: dep.clone(),
            stream: "stdout".into(),
            data: format!("netlify: {line}\n"),
        });
        lines.borrow_mut().push(line);
    };
    // The project's id is already a readable, unique name (`shop-front-06ce650f`).
    let site_name = id.to_string();
    let read = |i: usize| -> futures_util::future::LocalBoxFuture<'_, Result<Vec<u8>, ApiError>> {
        let sha = sha256s[i].clone();
        Box::pin(async move { Ok(p.object(id, &sha).await?) })
    };
    let outcome = crate::netlify::deploy(
        &api,
        &creds[NETLIFY_AUTH_TOKEN],
        site.as_deref(),
        &site_name,
        files,
        &read,
        &log,
    )
    .await;
    for l in lines.into_inner() {
        d.push_log(&format!("netlify: {l}"));
    }
    let o = outcome.map_err(|e| e.message())?;
    if site.as_deref() != Some(o.site_id.as_str()) {
        room.set_kv(KV_NETLIFY_SITE, &o.site_id)
            .map_err(|e| e.to_string())?;
    }
    room.set_kv(KV_NETLIFY_URL, &o.url)
        .map_err(|e| e.to_string())?;
    Ok((o.url, o.uploaded as u64, o.total as u64))
}
