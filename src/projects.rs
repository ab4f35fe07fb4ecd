//! `GET /projects` and `POST /projects`: listing and creating projects from templates. With
//! sign-in, the list is what the caller owns or was invited to (from the `Directory`), and a
//! new project's owner is recorded there before its files exist. [`start`] is what every new
//! project begins with, also an imported or forked one (`import.rs`, `fork.rs`, which end with
//! core's `Projects::create_stored`).

use crate::auth::AuthConfig;
use crate::azure::{blob_client, random_bytes, FetchTransport};
use crate::config::Config;
use crate::error::ApiError;
use crate::templates;
use open_replit_core::auth::directory::{DirRequest, ProjectAccess};
use open_replit_core::auth::mode::Mode;
use open_replit_core::quota::RateKind;
use open_replit_core::store::project::{ProjectMeta, Projects};
use open_replit_core::store::{BlobClient, Transport};
use serde::Deserialize;
use serde_json::json;
use worker::{Env, Request, Response};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateProject {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    template: Option<String>,
}

pub async fn list(env: &Env, auth: &AuthConfig, user_id: &str) -> Result<Response, ApiError> {
    // With sign-in: only what this person owns or was invited to, with their role.
    let access: Option<Vec<ProjectAccess>> = if auth.mode == Mode::SignIn {
        Some(
            crate::directory::call(
                env,
                &DirRequest::ListProjects {
                    user_id: user_id.to_string(),
                },
            )
            .await?,
        )
    } else {
        None
    };
    let cfg = Config::from_env(env);
    let blob = blob_client(&cfg)?;
    let listed = match &access {
        // Only this person's projects are read (one blob each), never every project stored.
        Some(a) => {
            Projects::new(&blob)
                .metas(a.iter().map(|x| x.project.as_str()))
                .await
        }
        None => Projects::new(&blob).list_projects().await,
    };
    let projects = match listed {
        Ok(p) => p,
        // A fresh account has no container yet: that is an empty list, not an error.
        Err(open_replit_core::store::project::StoreError::Blob(
            open_replit_core::azure::rest::BlobError::NotFound,
        )) => vec![],
        Err(e) => return Err(e.into()),
    };
    let projects: Vec<serde_json::Value> = projects
        .into_iter()
        .filter_map(|p| {
            let role = match &access {
                None => "owner",
                Some(a) => a.iter().find(|x| x.project == p.id)?.role.as_str(),
            };
            let mut v = serde_json::to_value(&p).ok()?;
            v["role"] = json!(role);
            Some(v)
        })
        .collect();
    Ok(Response::from_json(&json!({
        "projects": projects,
        "templates": templates::names(),
    }))?)
}

pub async fn create(
    mut req: Request,
    env: &Env,
    auth: &AuthConfig,
    user_id: &str,
) -> Result<Response, ApiError> {
    let cfg = Config::from_env(env);
    crate::quota::hit(env, &cfg, user_id, RateKind::Project).await?;
    let text = req.text().await?;
    let body: CreateProject = if text.trim().is_empty() {
        CreateProject::default()
    } else {
        serde_json::from_str(&text)?
    };
    let template_name = body.template.as_deref().unwrap_or(templates::DEFAULT);
    let template = known_template(template_name)?;
    let name = project_name(body.name, "Untitled app")?;
    let blob = blob_client(&cfg)?;
    let meta = start(env, auth, &blob, user_id, name, template.name).await?;
    let files = template
        .files
        .iter()
        .map(|(p, b)| (p.to_string(), b.to_vec()))
        .collect();
    let cp = Projects::new(&blob).create(&meta, files).await?;
    Ok(Response::from_json(&json!({"project": meta, "checkpoint": cp.info}))?.with_status(201))
}

/// A built-in template by name, or a `400` naming the ones there are.
pub(crate) fn known_template(name: &str) -> Result<&'static templates::Template, ApiError> {
    templates::get(name).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "unknown template {name:?}; choose one of {:?}",
            templates::names()
        ))
    })
}

/// A new project's name: trimmed, `default` when empty, at most 100 characters.
pub(crate) fn project_name(name: Option<String>, default: &str) -> Result<String, ApiError> {
    let name = name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| default.to_string());
    if name.chars().count() > 100 {
        return Err(ApiError::BadRequest(
            "name is longer than 100 characters".into(),
        ));
    }
    Ok(name)
}

/// What every new project begins with, from a template or an import: a fresh id and its
/// `ProjectMeta` (not yet stored), and with sign-in its owner recorded in the `Directory`
/// before any file exists, so there is never a moment when the project is visible without one.
/// The caller charges the creation rate, writes the files and stores the meta.
pub(crate) async fn start(
    env: &Env,
    auth: &AuthConfig,
    blob: &BlobClient<FetchTransport>,
    user_id: &str,
    name: String,
    template: &str,
) -> Result<ProjectMeta, ApiError> {
    blob.ensure_container().await?;
    let meta = ProjectMeta {
        id: new_project_id(&name),
        name,
        template: template.to_string(),
        created_ms: blob.transport.now_ms(),
        owner: Some(user_id.to_string()),
    };
    if auth.mode == Mode::SignIn {
        let v: serde_json::Value = crate::directory::call(
            env,
            &DirRequest::ClaimProject {
                project: meta.id.clone(),
                user_id: user_id.to_string(),
                now_ms: meta.created_ms,
            },
        )
        .await?;
        if v["claimed"] != json!(true) {
            return Err(ApiError::Conflict {
                message: format!("project {} already exists", meta.id),
                details: json!({}),
            });
        }
    }
    Ok(meta)
}

/// `{slug}-{8 random hex}`: readable in URLs and preview host names, unguessable enough that
/// ids are not enumerable.
fn new_project_id(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(|c| c.to_lowercase()) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.len() >= 32 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    let rand: String = random_bytes::<4>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    open_replit_core::ids::project_id_from(slug, &rand)
}
