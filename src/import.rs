//! `POST /projects/import`: a new project from an existing git repository (issue 17), files
//! only: the VM API clones it and saves its tracked files as objects; they become checkpoint 1.
//!
//! Order, so that a failure never leaves a listed half-project: the new id is claimed (with
//! sign-in, the owner is recorded in the `Directory`, as for `POST /projects`), the VM API
//! imports the files into that id's objects, the template is settled, checkpoint 1 is written,
//! and only then `meta.json`, the blob that makes a project exist for `GET /projects`. Whatever
//! fails before that last write is never listed, and what it left (objects, a checkpoint, the
//! claim) is removed as a deleted project's is (`remove`), unless the id turned out to be taken.

use crate::auth::AuthConfig;
use crate::azure::{blob_client, FetchTransport};
use crate::config::Config;
use crate::error::ApiError;
use crate::projects::{known_template, project_name, start};
use crate::vm::Vm;
use open_replit_core::git::ImportRequest;
use open_replit_core::quota::RateKind;
use open_replit_core::store::project::ProjectMeta;
use open_replit_core::store::BlobClient;
use serde::Deserialize;
use serde_json::json;
use worker::{Env, Request, Response};

/// The request body. No `Debug`: it holds the token.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportProject {
    url: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    branch: Option<String>,
    /// For a private repository: Basic auth's password (user `x-access-token`), used for this
    /// one clone and stored nowhere.
    #[serde(default)]
    token: Option<String>,
}

pub async fn handle(
    mut req: Request,
    env: &Env,
    auth: &AuthConfig,
    user_id: &str,
) -> Result<Response, ApiError> {
    let cfg = Config::from_env(env);
    crate::quota::hit(env, &cfg, user_id, RateKind::Project).await?;
    let body: ImportProject = serde_json::from_str(&req.text().await?)?;
    let import = ImportRequest {
        url: body.url.trim().to_string(),
        branch: body.branch,
        token: body.token,
        max_files: cfg.max_project_files,
    };
    import.validate().map_err(ApiError::BadRequest)?;
    let asked = body.template.as_deref().map(known_template).transpose()?;
    let default_name = import
        .repo_name()
        .unwrap_or_else(|| "Imported app".to_string());
    let name = project_name(body.name, &default_name)?;
    let blob = blob_client(&cfg)?;
    let mut meta = start(
        env,
        auth,
        &blob,
        user_id,
        name,
        asked.map_or("", |t| t.name),
    )
    .await?;

    let vm = Vm::from_config(&cfg)?.acting_for(user_id);
    match fill(&cfg, &blob, &vm, &mut meta, &import, asked).await {
        Ok(r) => Ok(r),
        // A conflict means the id holds someone else's project: never clean that up.
        Err(e @ ApiError::Conflict { .. }) => Err(e),
        Err(e) => {
            // Nothing of a failed import stays behind.
            crate::remove::failed_start(env, &vm, &meta.id).await;
            Err(e)
        }
    }
}

/// Everything after the id is claimed: the files, the template, checkpoint 1, then the meta.
async fn fill(
    cfg: &Config,
    blob: &BlobClient<FetchTransport>,
    vm: &Vm,
    meta: &mut ProjectMeta,
    import: &ImportRequest,
    asked: Option<&'static crate::templates::Template>,
) -> Result<Response, ApiError> {
    let reply = vm.git_import(&meta.id, import).await?;
    let template = match asked {
        Some(t) => t.name,
        None => match reply.template.as_deref().map(known_template) {
            Some(Ok(t)) => t.name,
            _ => {
                return Err(ApiError::BadRequest(
                    "could not tell which template this repository fits; pass template: \
                     fullstack|frontend|backend"
                        .into(),
                ))
            }
        },
    };
    meta.template = template.to_string();
    if reply.manifest.files.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "{} has no file a project can hold ({} skipped: {})",
            import.url,
            reply.skipped.len() + reply.skipped_more,
            reply
                .skipped
                .iter()
                .take(5)
                .map(|s| format!("{} ({})", s.path, s.reason))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }

    // Checkpoint 1 is the imported files, whose objects the VM API saved already.
    let short: String = reply.commit.chars().take(7).collect();
    let summary = format!("Imported from {} at {short}", import.url);
    let cp = open_replit_core::store::project::Projects::new(blob)
        .with_max_files(cfg.max_project_files)
        .create_stored(meta, &reply.manifest, &summary)
        .await?;
    Ok(Response::from_json(&json!({
        "project": meta,
        "checkpoint": cp,
        "import": {
            "url": import.url,
            "commit": reply.commit,
            "template_inferred": asked.is_none(),
            "skipped": reply.skipped,
            "skipped_more": reply.skipped_more,
        },
    }))?
    .with_status(201))
}
