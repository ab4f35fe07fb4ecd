//! `POST /projects/{id}/fork`: a new project of the caller's with the source's current files
//! (its head checkpoint) as checkpoint 1, and the source's template. Anyone who may read the
//! source may fork it (a viewer too, as they may download it). Only files travel: not the chat,
//! the deployments, the secrets or the members.
//!
//! Order, as for an import: the new id is claimed, the VM API copies the head's objects into
//! it (checked against their names), checkpoint 1 is written, `meta.json` last; a failure
//! before that leaves nothing (`remove::failed_start`).

use crate::auth::AuthConfig;
use crate::azure::blob_client;
use crate::config::Config;
use crate::error::ApiError;
use crate::projects::{project_name, start};
use crate::vm::Vm;
use open_replit_core::quota::RateKind;
use open_replit_core::store::project::Projects;
use serde::Deserialize;
use serde_json::json;
use worker::{Env, Request, Response};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ForkProject {
    #[serde(default)]
    name: Option<String>,
}

pub async fn handle(
    mut req: Request,
    env: &Env,
    auth: &AuthConfig,
    user_id: &str,
    source: &str,
) -> Result<Response, ApiError> {
    let cfg = Config::from_env(env);
    crate::quota::hit(env, &cfg, user_id, RateKind::Project).await?;
    let text = req.text().await?;
    let body: ForkProject = if text.trim().is_empty() {
        ForkProject::default()
    } else {
        serde_json::from_str(&text)?
    };
    let blob = blob_client(&cfg)?;
    let p = Projects::new(&blob).with_max_files(cfg.max_project_files);
    let from = p.meta(source).await?;
    let head = p
        .head(source)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("project {source} has no checkpoint")))?;
    let name = project_name(body.name, &fork_name(&from.name))?;
    let meta = start(env, auth, &blob, user_id, name, &from.template).await?;
    let vm = Vm::from_config(&cfg)?.acting_for(user_id);
    let shas: Vec<String> = head
        .manifest
        .files
        .values()
        .map(|e| e.sha256.clone())
        .collect();
    let summary = format!("Forked from {} at checkpoint {}", from.name, head.info.n);
    let done = async {
        vm.copy_objects(&meta.id, source, shas).await?;
        Ok(p.create_stored(&meta, &head.manifest, &summary).await?)
    };
    match done.await {
        Ok(cp) => Ok(Response::from_json(&json!({
            "project": meta,
            "checkpoint": cp,
            "fork": { "from": source, "checkpoint": head.info.n },
        }))?
        .with_status(201)),
        // The id holds someone else's project: never clean that up.
        Err(e @ ApiError::Conflict { .. }) => Err(e),
        Err(e) => {
            crate::remove::failed_start(env, &vm, &meta.id).await;
            Err(e)
        }
    }
}

/// `Shop` → `Shop (fork)`, kept within the 100 characters a name may have.
fn fork_name(name: &str) -> String {
    let base: String = name.chars().take(93).collect();
    format!("{} (fork)", base.trim_end())
}
