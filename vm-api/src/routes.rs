//! HTTP routes of the VM API and the state they share.

use axum::{routing::get, Json, Router};
use serde_json::json;
use std::sync::Arc;

pub struct AppState {
    pub secret: Vec<u8>,
    pub data_dir: std::path::PathBuf,
}

pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .with_state(state)
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "ok": true, "service": "vm-api", "version": env!("CARGO_PKG_VERSION") }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn state() -> Arc<AppState> {
        Arc::new(AppState {
            secret: b"0123456789abcdef".to_vec(),
            data_dir: std::env::temp_dir(),
        })
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
