//! The open-replit Worker: routes the HTTP API, serves the frontend assets and hosts the
//! `ProjectRoom` Durable Object. Only platform I/O lives here; logic is in `open-replit-core`.

mod azure;
mod config;
mod error;
mod health;
mod room;

pub use room::ProjectRoom;

use error::ApiError;
use worker::*;

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    Ok(route(req, env)
        .await
        .unwrap_or_else(ApiError::into_response))
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
        (Method::Get, p) if p.starts_with("/projects/") && p.ends_with("/ws") => {
            let id = &p["/projects/".len()..p.len() - "/ws".len()];
            open_replit_core::ids::validate_project_id(id).map_err(ApiError::BadRequest)?;
            let stub = env.durable_object("PROJECT_ROOM")?.get_by_name(id)?;
            // Forward the upgrade with the validated id; the object trusts only this header.
            let headers = Headers::new();
            for (k, v) in req.headers() {
                headers.set(&k, &v)?;
            }
            headers.set("x-project-id", id)?;
            let mut init = RequestInit::new();
            init.with_headers(headers);
            let fwd = Request::new_with_init(url.as_str(), &init)?;
            Ok(stub.fetch_with_request(fwd).await?)
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
