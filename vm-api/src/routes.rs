//! The HTTP router of the VM API: every route, behind the HMAC middleware except `/health`.

use crate::state::AppState;
use axum::routing::{any, get, post};
use axum::{middleware, Json, Router};
use open_replit_core::vm_api::VmHealth;
use std::sync::Arc;

pub fn app(state: Arc<AppState>) -> Router {
    let protected = Router::new()
        .route(
            "/projects/{id}",
            axum::routing::delete(crate::remove::remove_route),
        )
        .route("/projects/{id}/objects/copy", post(crate::copy::copy_route))
        .route("/projects/{id}/exec", post(crate::exec::exec))
        .route("/projects/{id}/sync", post(crate::sync::sync_route))
        .route("/projects/{id}/files", get(crate::sync::files_route))
        .route(
            "/projects/{id}/changes",
            post(crate::changes::changes_route),
        )
        .route(
            "/projects/{id}/processes",
            post(crate::procs::start_route).get(crate::procs::list_route),
        )
        .route(
            "/projects/{id}/processes/{name}",
            axum::routing::delete(crate::procs::stop_route),
        )
        .route(
            "/projects/{id}/processes/{name}/restart",
            post(crate::procs::restart_route),
        )
        .route(
            "/projects/{id}/processes/{name}/logs",
            get(crate::procs::logs_route),
        )
        .route(
            "/projects/{id}/processes/{name}/ready",
            get(crate::procs::ready_route),
        )
        .route(
            "/projects/{id}/deployments/build",
            post(crate::deploy_build::build_route),
        )
        .route("/projects/{id}/search", post(crate::search::search_route))
        .route("/projects/{id}/git/state", get(crate::git::state_route))
        .route("/projects/{id}/git/export", post(crate::git::export_route))
        .route("/projects/{id}/git/push", post(crate::git::push_route))
        .route("/projects/{id}/git/import", post(crate::git::import_route))
        .route(
            "/projects/{id}/git/{*rest}",
            any(crate::git::http_backend_route),
        )
        .route(
            "/projects/{id}/preview-check",
            post(crate::page_check::check_route),
        )
        .route("/projects/{id}/pty", get(crate::pty::pty_route))
        .route(
            "/projects/{id}/host-status",
            get(crate::reaper::status_route),
        )
        .route(
            "/projects/{id}/browser-reports",
            get(crate::browser::reports_route),
        )
        .route(
            "/projects/{id}/deployments/live",
            get(crate::deploy_service::live_route).delete(crate::deploy_service::unpublish_route),
        )
        .route(
            "/projects/{id}/deployments/{deployment}/start",
            post(crate::deploy_service::start_route),
        )
        .route(
            "/projects/{id}/deployments/{deployment}/activate",
            post(crate::deploy_service::activate_route),
        )
        .route(
            "/projects/{id}/deployments/{deployment}/stop",
            post(crate::deploy_service::stop_route),
        )
        .route(
            "/projects/{id}/deployments/{deployment}/logs",
            get(crate::deploy_service::logs_route),
        )
        .route(
            "/projects/{id}/live",
            any(crate::deploy_service::proxy_route),
        )
        .route(
            "/projects/{id}/live/{*path}",
            any(crate::deploy_service::proxy_route),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_signature,
        ));
    Router::new()
        .route("/health", get(health))
        .merge(protected)
        .with_state(state)
}

async fn health() -> Json<VmHealth> {
    Json(VmHealth {
        ok: true,
        service: "vm-api".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn state() -> Arc<AppState> {
        Arc::new(AppState::new(
            b"0123456789abcdef".to_vec(),
            std::env::temp_dir(),
            Arc::new(crate::sandbox::Refuse("test".into())),
        ))
    }

    #[tokio::test]
    async fn health_answers_without_auth() {
        let resp = app(state())
            .oneshot(Request::get("/health").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["ok"], true);
        assert_eq!(v["service"], "vm-api");
    }

    #[tokio::test]
    async fn unknown_route_is_404() {
        let resp = app(state())
            .oneshot(Request::get("/nope").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }
}
