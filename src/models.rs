//! `GET /api/models`: the first answering provider's `/models` list, cached per isolate for ten
//! minutes.

use crate::config::Config;
use crate::error::ApiError;
use serde_json::{json, Value};
use std::cell::RefCell;
use worker::{Env, Fetch, Headers, Request, RequestInit, Response};

thread_local! {
    static CACHE: RefCell<Option<(f64, Value)>> = const { RefCell::new(None) };
}
const TTL_MS: f64 = 600_000.0;

pub async fn handle(env: &Env) -> Result<Response, ApiError> {
    let cfg = Config::from_env(env);
    let default = cfg.llm.status().default_model;
    let providers = cfg.llm.providers();
    if providers.is_empty() {
        return Ok(Response::from_json(
            &json!({"models": [], "default": default}),
        )?);
    }
    let now = js_sys::Date::now();
    if let Some(v) = CACHE.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|(t, _)| now - t < TTL_MS)
            .map(|(_, v)| v.clone())
    }) {
        return Ok(Response::from_json(
            &json!({"models": allowed(&cfg, v), "default": default}),
        )?);
    }
    // The first provider that answers wins, in the same order turns use them.
    let mut errors = Vec::new();
    for p in &providers {
        match fetch_models(&p.base_url, p.api_key.as_deref()).await {
            Ok(models) => {
                CACHE.with(|c| *c.borrow_mut() = Some((now, models.clone())));
                return Ok(Response::from_json(
                    &json!({"models": allowed(&cfg, models), "default": default, "provider": p.name}),
                )?);
            }
            Err(e) => errors.push(format!("{}: {e}", p.name)),
        }
    }
    // The picker still works with the configured default when no list is available.
    Ok(Response::from_json(&json!({
        "models": [{"id": default, "name": default}],
        "default": default,
        "error": format!("could not list models ({})", errors.join("; ")),
    }))?)
}

async fn fetch_models(base_url: &str, key: Option<&str>) -> worker::Result<Value> {
    let headers = Headers::new();
    if let Some(k) = key {
        headers.set("authorization", &format!("Bearer {k}"))?;
    }
    let mut init = RequestInit::new();
    init.with_headers(headers);
    let mut r = Fetch::Request(Request::new_with_init(
        &format!("{base_url}/models"),
        &init,
    )?)
    .send()
    .await?;
    if r.status_code() != 200 {
        return Err(worker::Error::RustError(format!(
            "HTTP {}",
            r.status_code()
        )));
    }
    let v: Value = r.json().await?;
    let models: Vec<Value> = v["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| {
                    let id = m["id"].as_str()?;
                    Some(json!({"id": id, "name": m["name"].as_str().unwrap_or(id)}))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Value::Array(models))
}

/// Only the models the operator's `ALLOWED_MODELS` lets turns use.
fn allowed(cfg: &Config, models: Value) -> Value {
    match models {
        Value::Array(a) => Value::Array(
            a.into_iter()
                .filter(|m| {
                    cfg.allowed_models
                        .allows(m["id"].as_str().unwrap_or_default())
                })
                .collect(),
        ),
        v => v,
    }
}
