//! `GET /api/models`: the first answering provider's `/models` list (parsed by core's
//! `llm::models` into ids, names, windows and prices), cached per isolate for ten minutes; the
//! agent reads each model's limits from the same cache.

use crate::config::Config;
use crate::error::ApiError;
use open_replit_core::llm::models::{parse_models, ModelInfo};
use open_replit_core::llm_config::Provider;
use serde_json::json;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use worker::{Env, Fetch, Headers, Request, RequestInit, Response};

/// One fetched list: when, from which provider, what.
#[derive(Clone)]
struct Cached {
    at: f64,
    provider: &'static str,
    /// Shared, not copied: every turn and every priced step reads the list (hundreds of
    /// models on OpenRouter).
    models: Rc<Vec<ModelInfo>>,
}

thread_local! {
    /// By provider base URL: a person's own key and the operator's may name different servers.
    static CACHE: RefCell<HashMap<String, Cached>> = RefCell::new(HashMap::new());
    /// The last failure per base URL and when: every turn asks for its model's limits, and a
    /// provider without a working `/models` should not cost each of them a round of failed
    /// fetches.
    static FAILED: RefCell<HashMap<String, (f64, String)>> = RefCell::new(HashMap::new());
}
const TTL_MS: f64 = 600_000.0;
const FAILED_TTL_MS: f64 = 60_000.0;

/// The model list of the first of `providers` that answers (the operator's, or a person's own
/// key: each list is fetched with its provider's key), from the cache when it is fresh.
pub async fn list(providers: &[Provider]) -> Result<(&'static str, Rc<Vec<ModelInfo>>), String> {
    let now = js_sys::Date::now();
    let mut errors = Vec::new();
    // The first provider that answers wins, in the same order turns use them.
    for p in providers {
        let key = p.base_url.clone();
        if let Some(c) = CACHE.with(|c| {
            c.borrow()
                .get(&key)
                .cloned()
                .filter(|c| now - c.at < TTL_MS)
        }) {
            return Ok((c.provider, c.models));
        }
        let failed = FAILED.with(|f| {
            f.borrow()
                .get(&key)
                .filter(|(at, _)| now - at < FAILED_TTL_MS)
                .map(|(_, e)| e.clone())
        });
        if let Some(e) = failed {
            errors.push(format!("{}: {e}", p.name));
            continue;
        }
        match fetch_models(&p.base_url, p.api_key.as_deref()).await {
            Ok(models) => {
                let models = Rc::new(models);
                CACHE.with(|c| {
                    c.borrow_mut().insert(
                        key,
                        Cached {
                            at: now,
                            provider: p.name,
                            models: Rc::clone(&models),
                        },
                    )
                });
                return Ok((p.name, models));
            }
            Err(e) => {
                FAILED.with(|f| f.borrow_mut().insert(key, (now, e.clone())));
                errors.push(format!("{}: {e}", p.name));
            }
        }
    }
    Err(if errors.is_empty() {
        "no model provider is configured".to_string()
    } else {
        errors.join("; ")
    })
}

pub async fn handle(env: &Env) -> Result<Response, ApiError> {
    let cfg = Config::from_env(env);
    let default = cfg.llm.status().default_model;
    if cfg.llm.providers().is_empty() {
        return Ok(Response::from_json(
            &json!({"models": [], "default": default}),
        )?);
    }
    match list(&cfg.llm.providers()).await {
        Ok((provider, models)) => {
            // Only the models the operator's `ALLOWED_MODELS` lets turns use.
            let mut out: Vec<serde_json::Value> = models
                .iter()
                .filter(|m| cfg.allowed_models.allows(&m.id))
                .map(|m| json!({"id": m.id, "name": m.name}))
                .collect();
            // The picker always offers the configured default, even when this provider's list
            // lacks it (a custom server, or a renamed model).
            if !models.iter().any(|m| m.id == default) {
                out.insert(0, json!({"id": default, "name": default}));
            }
            Ok(Response::from_json(
                &json!({"models": out, "default": default, "provider": provider}),
            )?)
        }
        // The picker still works with the configured default when no list is available.
        Err(errors) => Ok(Response::from_json(&json!({
            "models": [{"id": default, "name": default}],
            "default": default,
            "error": format!("could not list models ({errors})"),
        }))?),
    }
}

async fn fetch_models(base_url: &str, key: Option<&str>) -> Result<Vec<ModelInfo>, String> {
    let headers = Headers::new();
    if let Some(k) = key {
        headers
            .set("authorization", &format!("Bearer {k}"))
            .map_err(|e| e.to_string())?;
    }
    let mut init = RequestInit::new();
    init.with_headers(headers);
    let req =
        Request::new_with_init(&format!("{base_url}/models"), &init).map_err(|e| e.to_string())?;
    let mut r = Fetch::Request(req)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status_code() != 200 {
        return Err(format!("HTTP {}", r.status_code()));
    }
    let body = r.text().await.map_err(|e| e.to_string())?;
    parse_models(&body)
}
