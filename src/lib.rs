//! The open-replit Worker: routes the HTTP API, serves the frontend assets and hosts the
//! `ProjectRoom` Durable Object. Only platform I/O lives here; logic is in `open-replit-core`.

mod agent;
mod azure;
mod changes;
mod chat_stream;
mod config;
mod cors;
mod error;
mod headers;
mod health;
mod models;
mod preview;
mod project_api;
mod projects;
mod pty;
mod room;
mod room_state;
mod step;
mod templates;
mod terminal;
mod turn_log;
mod verify;
mod vm;
mod work;

pub use room::ProjectRoom;

use error::ApiError;
use worker::*;

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let url = req.url()?;
    let https = url.scheme() == "https";
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

async fn route(req: Request, env: Env) -> std::result::Result<Response, ApiError> {
    let url = req.url()?;
    let path = url.path().to_string();
    match (req.method(), path.as_str()) {
        (Method::Get, "/health") => health::handle(&env).await,
        (Method::Get, "/api/config") => {
            let cfg = config::Config::from_env(&env);
            Ok(Response::from_json(&cfg.public())?)
        }
        (Method::Get, "/api/templates") => Ok(Response::from_json(
            &serde_json::json!({ "templates": templates::summaries() }),
        )?),
        (Method::Get, "/api/models") => models::handle(&env).await,
        (Method::Post, "/chat/stream") => chat_stream::handle(req, &env).await,
        (Method::Get, "/projects") => projects::list(&env).await,
        (Method::Post, "/projects") => projects::create(req, &env).await,
        (_, p) if p.starts_with("/projects/") => {
            // Everything about one project goes to its Durable Object, which re-validates the
            // id from the path and serialises changes with its event log.
            let Some((id, _)) = open_replit_core::ids::split_project_path(p) else {
                return Err(ApiError::BadRequest(
                    "project id must be 1-64 characters of a-z, 0-9 and '-'".into(),
                ));
            };
            let stub = env.durable_object("PROJECT_ROOM")?.get_by_name(id)?;
            Ok(stub.fetch_with_request(req).await?)
        }
        _ => {
            // Everything that is not API falls through to the static frontend; an unknown path
            // under /api/ or a wrong method is a JSON 404/405 rather than the HTML shell.
            if path.starts_with("/api/") || path == "/health" {
                return Err(ApiError::NotFound(format!("{} {}", req.method(), path)));
            }
            Ok(env.assets("ASSETS")?.fetch_request(req).await?)
        }
    }
}
