//! Publishing, inside the project's room: the publish routes (`/deployments…`, `/site`), and
//! the work behind them, one at a time per project: build a checkpoint on the VM (static
//! files uploaded content-addressed), start its backend behind the health path, then switch
//! the live app; rollback, unpublish, visibility. Progress goes to the socket as
//! `deploy_updated` / `deploy_progress` / `deploy_log`. The records are `deployments.rs`'s.

use crate::azure::blob_client;
use crate::deployments::{visibility_of, KV_LIVE, KV_VISIBILITY, LIST_LIMIT};
use crate::error::ApiError;
use crate::room_state::Room;
use crate::vm::Vm;
use open_replit_core::auth::directory::DirRequest;
use open_replit_core::deploy::build::{BuildEvent, Phase};
use open_replit_core::deploy::record::{
    deployment_id, DeployStatus, DeployStep, Deployment, DeploymentsReply, PublishRequest, Site,
    VisibilityRequest, ACCESS_PATH, ACCESS_SECS,
};
use open_replit_core::deploy::serve::{slug_candidates, PublishUrl};
use open_replit_core::protocol::ServerEvent;
use open_replit_core::store::project::Projects;
use open_replit_core::template::TemplateManifest;
use std::rc::Rc;
use worker::{Method, Request, Response};

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

fn publish_url(room: &Room) -> Result<PublishUrl, ApiError> {
    match crate::config::publish_url(room.env()) {
        Ok(Some(u)) => Ok(u),
        Ok(None) => Err(ApiError::Unavailable {
            code: "publish_not_configured",
            message: "publishing is off: set PUBLISH_URL (for example \
                      https://{slug}.apps.example.com/) to give published apps their own host"
                .into(),
        }),
        Err(e) => Err(ApiError::Unavailable {
            code: "publish_misconfigured",
            message: e,
        }),
    }
}

/// The routes under `/projects/{id}/deployments` and `/projects/{id}/site`.
pub async fn handle(
    room: &Rc<Room>,
    mut req: Request,
    id: &str,
    rest: &str,
) -> Result<Response, ApiError> {
    let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let user = Vm::user_of(&req);
    match (req.method(), segs.as_slice()) {
        (Method::Get, ["site"]) => Ok(Response::from_json(&site(room))?),
        (Method::Get, ["deployments"]) => Ok(Response::from_json(&list(room, id).await?)?),
        (Method::Post, ["deployments"]) => {
            let text = req.text().await?;
            let body: PublishRequest = if text.trim().is_empty() {
                PublishRequest::default()
            } else {
                serde_json::from_str(&text)
                    .map_err(|e| ApiError::BadRequest(format!("invalid publish request: {e}")))?
            };
            let d = publish(room, id, body.checkpoint, &user, &user).await?;
            Ok(Response::from_json(&d)?)
        }
        (Method::Post, ["deployments", d, "rollback"]) => {
            Ok(Response::from_json(&rollback(room, id, d, &user).await?)?)
        }
        (Method::Put, ["deployments", "visibility"]) => {
            let body: VisibilityRequest = serde_json::from_str(&req.text().await?)
                .map_err(|e| ApiError::BadRequest(format!("invalid visibility request: {e}")))?;
            room.set_kv(KV_VISIBILITY, body.visibility.as_str())?;
            Ok(Response::from_json(&list(room, id).await?)?)
        }
        (Method::Delete, ["deployments", "live"]) => {
            unpublish(room, id, &user).await?;
            Ok(Response::from_json(&list(room, id).await?)?)
        }
        (Method::Get, ["deployments", "open"]) => open(room, id).await,
        (Method::Get, ["deployments", d, "logs"]) => {
            if room.deployments().get(d).is_none() {
                return Err(ApiError::NotFound(format!("deployment {d}")));
            }
            let tail = req
                .url()?
                .query_pairs()
                .find(|(k, _)| k == "tail")
                .and_then(|(_, v)| v.parse::<u32>().ok())
                .unwrap_or(200)
                .clamp(1, 2000);
            let vm = Vm::from_config(room.config())?.acting_for(&user);
            Ok(Response::from_json(&vm.deploy_logs(id, d, tail).await?)?)
        }
        (m, _) => Err(ApiError::NotFound(format!("{m} /projects/{id}{rest}"))),
    }
}

/// What the publish host needs: the live deployment, its static site, who may open it.
fn site(room: &Room) -> Site {
    let live = room
        .get_kv(KV_LIVE)
        .and_then(|id| room.deployments().get(&id));
    Site {
        deployment: live.as_ref().map(|d| d.id.clone()),
        site: live.as_ref().and_then(|d| d.site.clone()),
        backend: live.as_ref().is_some_and(|d| d.backend),
        visibility: visibility_of(room.get_kv(KV_VISIBILITY)),
    }
}

async fn slug_of(room: &Room, id: &str) -> Result<Option<String>, ApiError> {
    crate::directory::call(
        room.env(),
        &DirRequest::SlugOf {
            project: id.to_string(),
        },
    )
    .await
}

async fn list(room: &Room, id: &str) -> Result<DeploymentsReply, ApiError> {
    let tpl = publish_url(room)?;
    let deployments = room.deployments();
    if room.publishes().get() == 0 {
        for d in deployments.interrupt_stale(now_ms()) {
            room.emit(ServerEvent::DeployUpdated { deployment: d });
        }
    }
    let slug = slug_of(room, id).await?;
    let meta = Projects::new(&blob_client(room.config())?).meta(id).await?;
    Ok(DeploymentsReply {
        url: slug.as_ref().map(|s| tpl.url_for(s)),
        slug,
        live: room.get_kv(KV_LIVE),
        visibility: visibility_of(room.get_kv(KV_VISIBILITY)),
        publishable: crate::templates::manifest(&meta.template).publish.is_some(),
        deployments: deployments.list(LIST_LIMIT),
    })
}

/// Saves a deployment and tells the sockets.
fn update(room: &Room, d: &Deployment) {
    room.deployments().put(d);
    room.emit(ServerEvent::DeployUpdated {
        deployment: d.clone(),
    });
}

fn progress(room: &Room, d: &Deployment, step: DeployStep, message: impl Into<String>) {
    room.emit(ServerEvent::DeployProgress {
        deployment: d.id.clone(),
        step,
        message: message.into(),
    });
}

/// Ends a deployment as failed (the live app unchanged) and says why.
fn fail(room: &Room, d: &mut Deployment, error: String, last_lines: Vec<String>) {
    d.status = DeployStatus::Failed;
    d.finished_ms = Some(now_ms());
    d.duration_ms = Some(now_ms().saturating_sub(d.created_ms));
    d.error = Some(error.clone());
    d.last_lines = last_lines;
    update(room, d);
    progress(room, d, DeployStep::Failed, error);
}

/// Publishes checkpoint `checkpoint` (the head when `None`) of project `id`, for `by` (who
/// is recorded) acting as `user` (whose command cap the VM applies). Answers the deployment,
/// `live` or `failed`; `Err` only when it could not even be recorded (no recipe, no such
/// checkpoint, publishing off).
pub async fn publish(
    room: &Room,
    id: &str,
    checkpoint: Option<u64>,
    by: &str,
    user: &str,
) -> Result<Deployment, ApiError> {
    let tpl = publish_url(room)?;
    let blob = blob_client(room.config())?;
    let p = Projects::new(&blob);
    let meta = p.meta(id).await?;
    let template = crate::templates::manifest(&meta.template);
    if template.publish.is_none() {
        return Err(ApiError::BadRequest(format!(
            "template {} has no publish recipe (`publish` in its template.json)",
            meta.template
        )));
    }
    let cp = match checkpoint {
        Some(n) => p.checkpoint(id, n).await?,
        None => p
            .head(id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("project {id} has no checkpoint")))?,
    };
    let vm = Vm::from_config(room.config())?.acting_for(user);
    let _counted = Counted::new(room);
    let waiting = room.publish_lock().try_lock().is_none();
    let mut d = Deployment {
        id: deployment_id(room.deployments().next_number()),
        checkpoint: cp.info.n,
        status: DeployStatus::Queued,
        created_ms: now_ms(),
        finished_ms: None,
        by: by.to_string(),
        site: None,
        files: 0,
        bytes: 0,
        total: 0,
        uploaded: 0,
        backend: false,
        error: None,
        last_lines: vec![],
        duration_ms: None,
    };
    update(room, &d);
    if waiting {
        progress(
            room,
            &d,
            DeployStep::Queued,
            "waiting for the publish before it",
        );
    }
    let _guard = room.publish_lock().lock().await;
    // Numbers are taken before the wait; a record written meanwhile by another publish has a
    // higher number only if it started later, so ids stay unique.
    d.status = DeployStatus::Building;
    update(room, &d);
    progress(
        room,
        &d,
        DeployStep::Building,
        format!("installing and building checkpoint {}", cp.info.n),
    );
    match run(
        room,
        &vm,
        &p,
        &template,
        &tpl,
        id,
        &meta.name,
        &cp.manifest,
        &mut d,
    )
    .await
    {
        Ok(()) => Ok(d),
        Err((error, lines)) => {
            fail(room, &mut d, error, lines);
            Ok(d)
        }
    }
}

/// Counts a publish in the room while it lives (queued included).
struct Counted<'a>(&'a Room);

impl<'a> Counted<'a> {
    fn new(room: &'a Room) -> Counted<'a> {
        room.publishes().set(room.publishes().get() + 1);
        Counted(room)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0
            .publishes()
            .set(self.0.publishes().get().saturating_sub(1));
    }
}

type Failure = (String, Vec<String>);

fn upstream(e: ApiError) -> Failure {
    (e.message(), vec![])
}

/// Build, upload, start, switch. Any failure leaves the live app as it was.
#[allow(clippy::too_many_arguments)]
async fn run<T: open_replit_core::store::Transport>(
    room: &Room,
    vm: &Vm,
    p: &Projects<'_, T>,
    template: &TemplateManifest,
    tpl: &PublishUrl,
    id: &str,
    name: &str,
    manifest: &open_replit_core::manifest::Manifest,
    d: &mut Deployment,
) -> Result<(), Failure> {
    let slug: String = crate::directory::call(
        room.env(),
        &DirRequest::ClaimSlug {
            project: id.to_string(),
            candidates: slug_candidates(name, id),
        },
    )
    .await
    .map_err(upstream)?;
    build(room, vm, p, template, id, manifest, d).await?;
    if d.backend {
        d.status = DeployStatus::Starting;
        update(room, d);
        start_backend(room, vm, template, id, d).await?;
    }
    switch_live(room, vm, id, d).await?;
    d.duration_ms = Some(now_ms().saturating_sub(d.created_ms));
    update(room, d);
    progress(room, d, DeployStep::Live, tpl.url_for(&slug));
    Ok(())
}

/// Builds deployment `d` from `manifest` on the VM and records its static site.
async fn build<T: open_replit_core::store::Transport>(
    room: &Room,
    vm: &Vm,
    p: &Projects<'_, T>,
    template: &TemplateManifest,
    id: &str,
    manifest: &open_replit_core::manifest::Manifest,
    d: &mut Deployment,
) -> Result<(), Failure> {
    let req = template
        .build_request(&d.id, manifest)
        .ok_or_else(|| ("the template has no publish recipe".to_string(), vec![]))?;
    let dep = d.id.clone();
    let last = vm
        .deploy_build(id, &req, |ev| match ev {
            BuildEvent::Phase {
                phase: Phase::Upload,
            } => room.emit(ServerEvent::DeployProgress {
                deployment: dep.clone(),
                step: DeployStep::Uploading,
                message: "uploading the static files".into(),
            }),
            BuildEvent::Step { command, cwd, .. } => room.emit(ServerEvent::DeployLog {
                deployment: dep.clone(),
                stream: "stdout".into(),
                data: format!(
                    "$ {}{command}\n",
                    if cwd.is_empty() {
                        String::new()
                    } else {
                        format!("cd {cwd} && ")
                    }
                ),
            }),
            BuildEvent::Stdout { data } | BuildEvent::Stderr { data } => {
                let stream = if matches!(ev, BuildEvent::Stderr { .. }) {
                    "stderr"
                } else {
                    "stdout"
                };
                room.emit(ServerEvent::DeployLog {
                    deployment: dep.clone(),
                    stream: stream.into(),
                    data: data.clone(),
                })
            }
            _ => {}
        })
        .await
        .map_err(upstream)?;
    let built = match last {
        BuildEvent::Built(b) => b,
        BuildEvent::Error(e) => return Err((e.message, e.last_lines)),
        _ => return Err(("the build ended without a result".into(), vec![])),
    };
    d.files = built.files;
    d.bytes = built.bytes;
    d.total = built.total;
    d.uploaded = built.uploaded;
    d.backend = built.backend
        || template
            .start_request()
            .is_some_and(|s| s.backend_dir.is_empty());
    if req.static_dir.is_some() {
        let body = serde_json::to_vec(&built.manifest).map_err(|e| (e.to_string(), vec![]))?;
        d.site = Some(
            p.put_object(id, body)
                .await
                .map_err(|e| (format!("saving the site's manifest failed: {e}"), vec![]))?,
        );
        progress(
            room,
            d,
            DeployStep::Uploading,
            format!("{} new files of {}", built.uploaded, built.total),
        );
    }
    Ok(())
}

/// Starts `d`'s backend as a candidate; it must answer its health path.
async fn start_backend(
    room: &Room,
    vm: &Vm,
    template: &TemplateManifest,
    id: &str,
    d: &Deployment,
) -> Result<(), Failure> {
    let start = backend_start(room, template, id)?;
    progress(
        room,
        d,
        DeployStep::Starting,
        format!("starting the backend; waiting for {}", start.health_path),
    );
    healthy(vm.deploy_start(id, &d.id, &start).await.map_err(upstream)?)
}

/// How to start the deployed backend: the template's recipe with the project's runtime
/// secrets in its environment.
fn backend_start(
    room: &Room,
    template: &TemplateManifest,
    id: &str,
) -> Result<open_replit_core::deploy::service::StartBackendRequest, Failure> {
    let mut start = template
        .start_request()
        .ok_or_else(|| ("the template's recipe has no backend".to_string(), vec![]))?;
    let secrets = crate::vault::runtime_env(room, id).map_err(upstream)?;
    start.env.extend(secrets.0);
    Ok(start)
}

/// A started candidate that did not answer its health path, as a failure with its log.
fn healthy(r: open_replit_core::deploy::service::StartBackendReply) -> Result<(), Failure> {
    if r.healthy {
        return Ok(());
    }
    Err((
        format!(
            "the backend did not become healthy: {}",
            r.error.unwrap_or_else(|| "no reason given".into())
        ),
        r.last_lines,
    ))
}

/// Makes `d` the live deployment: its backend (already healthy) activated on the VM, or the
/// previous backend stopped when `d` has none; then the records.
async fn switch_live(room: &Room, vm: &Vm, id: &str, d: &mut Deployment) -> Result<(), Failure> {
    if d.backend {
        if let Err(e) = vm.deploy_activate(id, &d.id).await {
            let _ = vm.deploy_stop(id, &d.id).await;
            return Err(upstream(e));
        }
    } else {
        vm.deploy_unpublish(id).await.map_err(upstream)?;
    }
    let deployments = room.deployments();
    if let Some(prev) = room.get_kv(KV_LIVE).filter(|p| *p != d.id) {
        if let Some(mut old) = deployments.get(&prev) {
            old.status = DeployStatus::Previous;
            update(room, &old);
        }
    }
    room.set_kv(KV_LIVE, &d.id)
        .map_err(|e| (e.to_string(), vec![]))?;
    d.status = DeployStatus::Live;
    d.finished_ms = Some(now_ms());
    d.error = None;
    d.last_lines.clear();
    Ok(())
}

/// Switches the live app back to deployment `did`.
async fn rollback(room: &Room, id: &str, did: &str, user: &str) -> Result<Deployment, ApiError> {
    let tpl = publish_url(room)?;
    let _guard = room.publish_lock().lock().await;
    let mut d = room
        .deployments()
        .get(did)
        .ok_or_else(|| ApiError::NotFound(format!("deployment {did}")))?;
    if room.get_kv(KV_LIVE).as_deref() == Some(did) {
        return Ok(d);
    }
    if !d.status.can_roll_back_to() {
        return Err(ApiError::Conflict {
            message: format!(
                "deployment {did} is {}: only one that went live can be rolled back to",
                d.status.as_str()
            ),
            details: serde_json::json!({"status": d.status.as_str()}),
        });
    }
    let blob = blob_client(room.config())?;
    let p = Projects::new(&blob);
    let meta = p.meta(id).await?;
    let template = crate::templates::manifest(&meta.template);
    let vm = Vm::from_config(room.config())?.acting_for(user);
    let started = now_ms();
    progress(
        room,
        &d,
        DeployStep::Starting,
        format!("rolling back to {did} (checkpoint {})", d.checkpoint),
    );
    let result = async {
        if d.backend {
            let start = backend_start(room, &template, id)?;
            let reply = match vm.deploy_start(id, &d.id, &start).await {
                // The VM no longer has the build (old builds are pruned, or another VM host):
                // build it again from its checkpoint, under the same id.
                Err(ApiError::NotFound(_)) => {
                    let cp = p
                        .checkpoint(id, d.checkpoint)
                        .await
                        .map_err(|e| (e.to_string(), vec![]))?;
                    progress(
                        room,
                        &d,
                        DeployStep::Building,
                        "the build was pruned; building it again",
                    );
                    let mut again = d.clone();
                    build(room, &vm, &p, &template, id, &cp.manifest, &mut again).await?;
                    vm.deploy_start(id, &d.id, &start).await.map_err(upstream)?
                }
                r => r.map_err(upstream)?,
            };
            healthy(reply)?;
        }
        switch_live(room, &vm, id, &mut d).await
    }
    .await;
    match result {
        Ok(()) => {
            d.duration_ms = Some(now_ms().saturating_sub(started));
            update(room, &d);
            let slug = slug_of(room, id).await?.unwrap_or_default();
            progress(room, &d, DeployStep::Live, tpl.url_for(&slug));
            Ok(d)
        }
        Err((message, lines)) => {
            progress(room, &d, DeployStep::Failed, message.clone());
            Err(ApiError::Conflict {
                message: format!(
                    "rollback to {did} failed; the live app did not change: {message}"
                ),
                details: serde_json::json!({"last_lines": lines}),
            })
        }
    }
}

/// Takes the app offline: the host answers 404 and the backend stops (its data stays).
async fn unpublish(room: &Room, id: &str, user: &str) -> Result<(), ApiError> {
    let _guard = room.publish_lock().lock().await;
    let vm = Vm::from_config(room.config())?.acting_for(user);
    vm.deploy_unpublish(id).await?;
    if let Some(live) = room.get_kv(KV_LIVE) {
        if let Some(mut d) = room.deployments().get(&live) {
            d.status = DeployStatus::Stopped;
            update(room, &d);
        }
        room.delete_kv(KV_LIVE)?;
    }
    Ok(())
}

/// A signed-in member's way into the app (needed when it is `members` only): a redirect to
/// the app's host with an access token it turns into its own cookie.
async fn open(room: &Room, id: &str) -> Result<Response, ApiError> {
    let tpl = publish_url(room)?;
    let slug = slug_of(room, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("project {id} was never published")))?;
    let secret = room.config().vm_api_secret.clone().ok_or_else(|| {
        ApiError::Upstream("VM_API_SECRET is not set: no access token can be signed".into())
    })?;
    let expiry = (js_sys::Date::now() / 1000.0) as i64 + ACCESS_SECS;
    let token = open_replit_core::vm_auth::mint_app_token(secret.as_bytes(), id, expiry);
    let url = format!(
        "{}{ACCESS_PATH}?token={token}&to=/",
        tpl.url_for(&slug).trim_end_matches('/')
    );
    let mut r = Response::empty()?.with_status(302);
    r.headers_mut().set("location", &url)?;
    r.headers_mut().set("cache-control", "no-store")?;
    Ok(r)
}
