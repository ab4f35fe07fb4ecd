//! The open-replit Worker: routes the HTTP API, serves the frontend assets and hosts the
//! `ProjectRoom` Durable Object. Only platform I/O lives here; logic is in `open-replit-core`.

mod agent;
mod auth;
mod azure;
mod changes;
mod chat_stream;
mod config;
mod cors;
mod deployments;
mod directory;
mod error;
mod external_deploy;
mod fork;
mod git;
mod github;
mod headers;
mod health;
mod import;
mod models;
mod netlify;
mod preview;
mod project_api;
mod projects;
mod pty;
mod publish;
mod publish_host;
mod quota;
mod remove;
mod room;
mod room_state;
mod step;
mod templates;
mod terminal;
mod turn_log;
mod vault;
mod verify;
mod vm;
mod work;

pub use directory::Directory;
pub use quota::UserQuota;
pub use room::ProjectRoom;

use error::ApiError;
use worker::*;

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let url = req.url()?;
    let https = url.scheme() == "https";
    // A published app's host (`PUBLISH_URL`) is answered before the IDE's origins, routes and
    // sign-in, and without the IDE's security headers: the app is its own site.
    if let Ok(Some(publish)) = config::publish_url(&env) {
        let host = req
            .headers()
            .get("host")?
            .or_else(|| url.host_str().map(String::from))
            .unwrap_or_default();
        if let Some(slug) = publish.slug_of(&host) {
            return publish_host::handle(req, &env, &slug, https).await;
        }
    }
    let preview_url = config::preview_url(&env);
    let resp = dispatch(req, env, &url).await?;
    Ok(headers::secure(resp, https, &preview_url))
}

async fn dispatch(req: Request, env: Env, url: &Url) -> Result<Response> {
    let verdict = match cors::check(&req, url, &env) {
        Ok(v) => v,
        Err(e) => return Ok(e.into_response()),
    };
    match verdict {
        cors::Verdict::SameOrigin => Ok(route(req, env)
            .await
            .unwrap_or_else(ApiError::into_response)),
        cors::Verdict::Allowed(origin) => {
            if req.method() == Method::Options {
                return cors::preflight(&origin);
            }
            let resp = route(req, env)
                .await
                .unwrap_or_else(ApiError::into_response);
            Ok(cors::decorate(resp, &origin))
        }
    }
}

/// Whether the Worker answers `path` itself (rather than the static frontend).
fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
        || path.starts_with("/auth/")
        || path == "/health"
        || path == "/projects"
        || path.starts_with("/projects/")
        || path.starts_with("/chat/")
}

fn is_import(path: &str) -> bool {
    path == "/projects/import"
}

async fn route(req: Request, env: Env) -> std::result::Result<Response, ApiError> {
    let url = req.url()?;
    let path = url.path().to_string();
    if !is_api(&path) {
        // The static frontend (the sign-in page included) needs no session.
        return Ok(env.assets("ASSETS")?.fetch_request(req).await?);
    }
    // Fail closed: a half-configured provider, or local mode reached off loopback (a deployed
    // Worker nobody configured), refuses every API call with a message saying what to set.
    let cfg = match auth::AuthConfig::from_env(&env) {
        Ok(c) => c,
        // The page still learns why (and the harness that the Worker is up).
        Err(e) if path == "/api/config" && req.method() == Method::Get => {
            let c = config::Config::from_env(&env);
            return Ok(Response::from_json(&serde_json::json!({
                "llm": c.public().llm,
                "auth": { "mode": null, "providers": [], "error": e.message() },
            }))?);
        }
        Err(e) => return Err(e),
    };
    auth::admit(&cfg, &req, &url)?;
    // Routes anyone may call.
    match (req.method(), path.as_str()) {
        (Method::Get, "/health") => {
            // Details (internal hosts and URLs) for the local user and people who signed in;
            // in open mode everyone is anonymous.
            let caller = auth::identify(&cfg, &env, &req, &url, None).await?;
            let known = caller.is_some_and(|c| c.via != auth::Via::Mode)
                || cfg.mode == open_replit_core::auth::mode::Mode::Local;
            return health::handle(&env, known).await;
        }
        (Method::Get, "/api/config") => {
            let c = config::Config::from_env(&env);
            return Ok(Response::from_json(&serde_json::json!({
                "llm": c.public().llm,
                "auth": { "mode": cfg.mode.as_str(), "providers": cfg.providers() },
            }))?);
        }
        (Method::Get, "/auth/login") => return auth::login(&cfg, &env, &url).await,
        (Method::Get, "/auth/callback") => return auth::callback(&cfg, &env, &req, &url).await,
        (Method::Post, "/auth/logout") => return auth::logout(&env, &req, &url).await,
        (Method::Post, "/chat/stream") => return chat_stream::handle(req, &env, &cfg).await,
        _ => {}
    }
    // `/projects/import` is a route, never a project: generated ids end in `-{hex}`.
    let project = open_replit_core::ids::split_project_path(&path).filter(|_| !is_import(&path));
    if path.starts_with("/projects/") && project.is_none() && !is_import(&path) {
        return Err(ApiError::BadRequest(
            "project id must be 1-64 characters of a-z, 0-9 and '-'".into(),
        ));
    }
    let caller = auth::identify(&cfg, &env, &req, &url, project.map(|(id, _)| id))
        .await?
        .ok_or_else(auth::unauthorized)?;
    if let Some((id, rest)) = project {
        return project_route(&cfg, req, &env, &caller, id, rest).await;
    }
    match (req.method(), path.as_str()) {
        (Method::Get, "/api/me") => auth::me(&cfg, &caller),
        (_, p) if p == "/api/tokens" || p.starts_with("/api/tokens/") => {
            let rest = p["/api/tokens".len()..].to_string();
            auth::tokens(&cfg, &env, req, &caller, &rest).await
        }
        (Method::Post, "/api/ws-ticket") => auth::ws_ticket(&cfg, &env, req, &url).await,
        (Method::Get, "/api/templates") => Ok(Response::from_json(
            &serde_json::json!({ "templates": templates::summaries() }),
        )?),
        (Method::Get, "/api/models") => models::handle(&env).await,
        (_, "/api/quota") | (_, "/api/quota/key") => {
            quota::handle(req, &env, &caller.user.id).await
        }
        (_, p) if p == "/api/vault" || p.starts_with("/api/vault/") => {
            vault::person_route(req, &env, &caller.user.id).await
        }
        (Method::Get, "/projects") => projects::list(&env, &cfg, &caller.user.id).await,
        (Method::Post, "/projects") => projects::create(req, &env, &cfg, &caller.user.id).await,
        (Method::Post, "/projects/import") => {
            import::handle(req, &env, &cfg, &caller.user.id).await
        }
        // An unknown path under /api/ or a wrong method is a JSON 404/405, not the HTML shell.
        _ => Err(ApiError::NotFound(format!("{} {}", req.method(), path))),
    }
}

/// Everything about one project: a project the caller may not see is a 404 (never a 403, so
/// ids cannot be probed); a role too weak for the action is a 403; sharing is answered here;
/// the rest goes to the project's Durable Object with `x-or-user` and `x-or-role`.
async fn project_route(
    cfg: &auth::AuthConfig,
    req: Request,
    env: &Env,
    caller: &auth::Caller,
    id: &str,
    rest: &str,
) -> std::result::Result<Response, ApiError> {
    use open_replit_core::auth::roles::{action_for, Action};
    let Some(role) = caller.role else {
        return Err(ApiError::NotFound(format!("project {id} not found")));
    };
    let method = req.method();
    let action = action_for(method.as_ref(), rest);
    if !role.may(action) {
        return Err(ApiError::Forbidden(format!(
            "a {} of this project may not {} it",
            role.as_str(),
            action.as_str()
        )));
    }
    if rest == "/ws" || rest == "/pty" {
        // A cookie is sent by the browser on its own; only a page of an allowed origin may
        // use it for a socket (tokens and tickets are not ambient, so they need no Origin).
        let has_origin = req.headers().get("origin")?.is_some();
        if caller.via == auth::Via::Session && !has_origin {
            return Err(ApiError::Forbidden(
                "a socket opened with a session cookie needs an Origin header".into(),
            ));
        }
    }
    if rest == "/members" || rest.starts_with("/members/") {
        debug_assert!(action == Action::Read || action == Action::Share);
        return auth::members(cfg, req, env, id, rest).await;
    }
    // Every project request counts toward the caller's request rate; the room then pays and
    // rates turns by the x-or-user the gate sets, never by anything the client sent.
    let qcfg = config::Config::from_env(env);
    quota::hit(
        env,
        &qcfg,
        &caller.user.id,
        open_replit_core::quota::RateKind::Request,
    )
    .await?;
    if rest == "/fork" && method == Method::Post {
        // A new project of the caller's: answered here, not in the source's room.
        return fork::handle(req, env, cfg, &caller.user.id, id).await;
    }
    let stub = env.durable_object("PROJECT_ROOM")?.get_by_name(id)?;
    let fwd = auth::forward_request(&req, &caller.user.id, role)?;
    let resp = stub.fetch_with_request(fwd).await?;
    // After a 404 too: a deletion cut short before this step is finished by asking again.
    if action == Action::Delete && matches!(resp.status_code(), 200 | 404) {
        remove::in_directory(env, id).await?;
    }
    Ok(resp)
}
