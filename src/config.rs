//! Reads the Worker's vars and secrets into typed settings: once per request for the routes in
//! `lib.rs`, once per object for a `ProjectRoom` (they are fixed for an object's lifetime).

use open_replit_core::deploy::serve::PublishUrl;
use open_replit_core::llm_config::{LlmSettings, LlmStatus};
use open_replit_core::quota::{
    AllowList, RateLimits, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_QUEUED,
};
use serde::Serialize;
use worker::Env;

pub struct Config {
    pub llm: LlmSettings,
    pub azure_connection_string: Option<String>,
    pub azure_container: String,
    pub vm_api_url: String,
    pub vm_api_secret: Option<String>,
    /// Model steps in an agent turn's first part (`AGENT_MAX_STEPS`).
    pub agent_max_steps: Option<u32>,
    /// Model steps in each verify-fix round (`AGENT_FIX_STEPS`).
    pub agent_fix_steps: Option<u32>,
    /// Most files one project may hold (`MAX_PROJECT_FILES`; default 5,000).
    pub max_project_files: Option<usize>,
    /// Fix rounds after verification finds errors (`VERIFY_FIX_ROUNDS`; 0 turns it off).
    pub verify_fix_rounds: u32,
    /// Where a project's preview lives; `{id}` is replaced by the project id.
    pub preview_url: String,
    /// Let the VM API share installs between projects (`SHARED_DEPS_CACHE`; default on,
    /// "off" installs every project on its own).
    pub shared_deps_cache: bool,
    /// Most USD one user's turns may spend per UTC day on the operator's keys
    /// (`DAILY_SPEND_CAP_USD`; unset or "off": no cap, for local use).
    pub daily_spend_cap_usd: Option<f64>,
    /// Models turns may use (`ALLOWED_MODELS`, comma-separated, `prefix/*` allowed; unset: any).
    pub allowed_models: AllowList,
    /// Seals people's own OpenRouter keys at rest (`KEY_ENCRYPTION_SECRET`, a Worker secret).
    pub key_encryption_secret: Option<String>,
    /// Longest chat message in bytes (`MAX_MESSAGE_BYTES`; default 32 KiB).
    pub max_message_bytes: usize,
    /// Most messages waiting behind a running turn (`MAX_QUEUED_MESSAGES`; default 5).
    pub max_queued: usize,
    /// Per-user rate limits (`RATE_REQUESTS_PER_MIN`, `RATE_TURNS_PER_HOUR`,
    /// `RATE_PROJECTS_PER_HOUR`; 0 turns one off).
    pub rate_limits: RateLimits,
}

/// What the browser may see: no keys, no connection strings.
#[derive(Serialize)]
pub struct PublicConfig {
    pub llm: LlmStatus,
}

/// A var or secret of the Worker, `None` when unset or blank.
pub fn get(env: &Env, name: &str) -> Option<String> {
    // Secrets and vars are both plain strings to the Worker; try the secret binding first.
    env.secret(name)
        .map(|s| s.to_string())
        .or_else(|_| env.var(name).map(|v| v.to_string()))
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// `PREVIEW_URL`: where a project's preview lives, `{id}` standing for the project id (read on
/// its own for the CSP of every page).
pub fn preview_url(env: &Env) -> String {
    get(env, "PREVIEW_URL").unwrap_or_else(|| "http://{id}.preview.localhost:8001/".to_string())
}

/// The VM API's base URL and signing secret alone (what a published app's API request needs,
/// without reading every other setting).
pub fn vm_api(env: &Env) -> (String, Option<String>) {
    (
        get(env, "VM_API_URL")
            .unwrap_or_else(|| "http://127.0.0.1:8000".to_string())
            .trim_end_matches('/')
            .to_string(),
        get(env, "VM_API_SECRET"),
    )
}

/// Where published apps live (`PUBLISH_URL`, e.g. `https://{slug}.apps.example.com/`): `None`
/// when unset or empty (publishing is off), `Err` with the reason when it does not parse.
pub fn publish_url(env: &Env) -> Result<Option<PublishUrl>, String> {
    match get(env, "PUBLISH_URL").filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(v) => PublishUrl::parse(&v).map(Some),
    }
}

impl Config {
    pub fn from_env(env: &Env) -> Self {
        Config {
            llm: LlmSettings {
                openrouter_api_key: get(env, "OPENROUTER_API_KEY"),
                openrouter_base_url: get(env, "OPENROUTER_BASE_URL"),
                groq_api_key: get(env, "GROQ_API_KEY"),
                llm_base_url: get(env, "LLM_BASE_URL"),
                llm_api_key: get(env, "LLM_API_KEY"),
                default_model: get(env, "DEFAULT_MODEL"),
                groq_model: get(env, "GROQ_MODEL"),
            },
            azure_connection_string: get(env, "AZURE_STORAGE_CONNECTION_STRING"),
            azure_container: get(env, "AZURE_STORAGE_CONTAINER")
                .unwrap_or_else(|| "codebase-projects".to_string()),
            vm_api_url: vm_api(env).0,
            vm_api_secret: vm_api(env).1,
            agent_max_steps: get(env, "AGENT_MAX_STEPS").and_then(|v| v.parse().ok()),
            agent_fix_steps: get(env, "AGENT_FIX_STEPS").and_then(|v| v.parse().ok()),
            max_project_files: get(env, "MAX_PROJECT_FILES").and_then(|v| v.parse().ok()),
            verify_fix_rounds: get(env, "VERIFY_FIX_ROUNDS")
                .and_then(|v| v.parse().ok())
                .unwrap_or(2),
            preview_url: preview_url(env),
            shared_deps_cache: get(env, "SHARED_DEPS_CACHE").as_deref() != Some("off"),
            daily_spend_cap_usd: get(env, "DAILY_SPEND_CAP_USD")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|c| c.is_finite() && *c >= 0.0),
            allowed_models: AllowList::parse(&get(env, "ALLOWED_MODELS").unwrap_or_default()),
            key_encryption_secret: get(env, "KEY_ENCRYPTION_SECRET"),
            max_message_bytes: get(env, "MAX_MESSAGE_BYTES")
                .and_then(|v| v.parse().ok())
                .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
            max_queued: get(env, "MAX_QUEUED_MESSAGES")
                .and_then(|v| v.parse().ok())
                .unwrap_or(DEFAULT_MAX_QUEUED),
            rate_limits: {
                let d = RateLimits::default();
                let n = |k: &str, d: u32| get(env, k).and_then(|v| v.parse().ok()).unwrap_or(d);
                RateLimits {
                    requests_per_minute: n("RATE_REQUESTS_PER_MIN", d.requests_per_minute),
                    turns_per_hour: n("RATE_TURNS_PER_HOUR", d.turns_per_hour),
                    projects_per_hour: n("RATE_PROJECTS_PER_HOUR", d.projects_per_hour),
                }
            },
        }
    }

    pub fn public(&self) -> PublicConfig {
        PublicConfig {
            llm: self.llm.status(),
        }
    }
}
