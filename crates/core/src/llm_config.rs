//! Which LLM endpoints are configured, in fallback order, and how to fix it when none is.

use serde::{Deserialize, Serialize};

pub const OPENROUTER_DEFAULT_BASE_URL: &str = "https://openrouter.ai/api/v1";
pub const GROQ_BASE_URL: &str = "https://api.groq.com/openai/v1";

/// The raw settings, as read from Worker vars and secrets (empty strings count as unset).
#[derive(Debug, Clone, Default)]
pub struct LlmSettings {
    pub openrouter_api_key: Option<String>,
    pub openrouter_base_url: Option<String>,
    pub groq_api_key: Option<String>,
    pub llm_base_url: Option<String>,
    pub llm_api_key: Option<String>,
    pub default_model: Option<String>,
    /// The model Groq runs when it stands in for another provider (`GROQ_MODEL`).
    pub groq_model: Option<String>,
}

/// Groq's model when `GROQ_MODEL` is unset: its largest generally available model with tool
/// calling and a 131k window.
pub const GROQ_DEFAULT_MODEL: &str = "openai/gpt-oss-120b";

/// One OpenAI-compatible endpoint the agent may call.
#[derive(Clone, PartialEq, Eq)]
pub struct Provider {
    pub name: &'static str,
    pub base_url: String,
    pub api_key: Option<String>,
    /// The model this provider runs when it is a fallback: model ids are not portable between
    /// providers (Groq rejects OpenRouter's `anthropic/...`). `None` sends the requested id.
    pub fallback_model: Option<String>,
}

impl Provider {
    /// The model id to send to this provider. `primary` is whether it is the first provider,
    /// whose model list the person picked from; a fallback runs its own model when it has one.
    pub fn model_for(&self, requested: &str, primary: bool) -> String {
        match &self.fallback_model {
            Some(m) if !primary => m.clone(),
            _ => requested.to_string(),
        }
    }
}

impl std::fmt::Debug for Provider {
    // The key must never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What the browser and `/health` may know: names and URLs, never keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmStatus {
    pub configured: bool,
    /// Endpoints in the order they are tried, e.g. `["openrouter", "groq"]`.
    pub providers: Vec<String>,
    pub base_url: Option<String>,
    pub default_model: String,
    /// When nothing is configured: exactly what to do about it.
    pub setup_hint: Option<String>,
}

pub const DEFAULT_MODEL: &str = "anthropic/claude-sonnet-4.5";

pub const SETUP_HINT: &str = "No LLM is configured. Put OPENROUTER_API_KEY=sk-or-... in .dev.vars \
(or run `npx wrangler secret put OPENROUTER_API_KEY` in production), or point LLM_BASE_URL at any \
OpenAI-compatible server, e.g. LLM_BASE_URL=http://127.0.0.1:11434/v1 for Ollama, \
http://127.0.0.1:8080/v1 for llama.cpp or http://127.0.0.1:8000/v1 for vLLM, then restart `make dev`.";

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_ref()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

impl LlmSettings {
    /// Providers in fallback order: an explicit `LLM_BASE_URL` wins, then OpenRouter, then Groq.
    pub fn providers(&self) -> Vec<Provider> {
        let mut out = Vec::new();
        if let Some(url) = non_empty(&self.llm_base_url) {
            out.push(Provider {
                name: "custom",
                base_url: url.trim_end_matches('/').to_string(),
                // Local servers (Ollama, llama.cpp) usually need no key.
                api_key: non_empty(&self.llm_api_key),
                fallback_model: None,
            });
        }
        if let Some(key) = non_empty(&self.openrouter_api_key) {
            out.push(Provider {
                name: "openrouter",
                base_url: non_empty(&self.openrouter_base_url)
                    .unwrap_or_else(|| OPENROUTER_DEFAULT_BASE_URL.to_string())
                    .trim_end_matches('/')
                    .to_string(),
                api_key: Some(key),
                fallback_model: None,
            });
        }
        if let Some(key) = non_empty(&self.groq_api_key) {
            out.push(Provider {
                name: "groq",
                base_url: GROQ_BASE_URL.to_string(),
                api_key: Some(key),
                fallback_model: Some(self.groq_model()),
            });
        }
        out
    }

    fn groq_model(&self) -> String {
        non_empty(&self.groq_model).unwrap_or_else(|| GROQ_DEFAULT_MODEL.to_string())
    }

    pub fn status(&self) -> LlmStatus {
        let providers = self.providers();
        // With Groq alone, the default must be one of Groq's models.
        let groq_only = providers.first().is_some_and(|p| p.name == "groq");
        LlmStatus {
            configured: !providers.is_empty(),
            base_url: providers.first().map(|p| p.base_url.clone()),
            providers: providers.iter().map(|p| p.name.to_string()).collect(),
            default_model: non_empty(&self.default_model).unwrap_or_else(|| {
                if groq_only {
                    self.groq_model()
                } else {
                    DEFAULT_MODEL.to_string()
                }
            }),
            setup_hint: providers.is_empty().then(|| SETUP_HINT.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_configured_says_how_to_fix_it() {
        let s = LlmSettings::default().status();
        assert!(!s.configured);
        let hint = s.setup_hint.unwrap();
        assert!(hint.contains("OPENROUTER_API_KEY"));
        assert!(hint.contains("LLM_BASE_URL"));
        assert_eq!(s.default_model, DEFAULT_MODEL);
    }

    #[test]
    fn fallback_order_and_blank_values() {
        let s = LlmSettings {
            openrouter_api_key: Some("sk-or-1".into()),
            groq_api_key: Some("gsk".into()),
            llm_base_url: Some("  ".into()),
            default_model: Some("m".into()),
            ..Default::default()
        };
        let p = s.providers();
        assert_eq!(
            p.iter().map(|p| p.name).collect::<Vec<_>>(),
            ["openrouter", "groq"]
        );
        assert_eq!(p[0].base_url, OPENROUTER_DEFAULT_BASE_URL);
        let st = s.status();
        assert!(st.configured && st.setup_hint.is_none());
        assert_eq!(st.default_model, "m");
    }

    #[test]
    fn a_fallback_groq_gets_a_groq_model_id() {
        let s = LlmSettings {
            openrouter_api_key: Some("sk-or-1".into()),
            groq_api_key: Some("gsk".into()),
            ..Default::default()
        };
        let p = s.providers();
        let asked = "anthropic/claude-sonnet-4.5";
        assert_eq!(p[0].model_for(asked, true), asked);
        assert_eq!(p[1].model_for(asked, false), GROQ_DEFAULT_MODEL);
        let s = LlmSettings {
            groq_model: Some(" llama-3.3-70b-versatile ".into()),
            ..s
        };
        assert_eq!(
            s.providers()[1].model_for(asked, false),
            "llama-3.3-70b-versatile"
        );
        // Groq alone: the person picks from Groq's list, and the default is a Groq model.
        let alone = LlmSettings {
            groq_api_key: Some("gsk".into()),
            ..Default::default()
        };
        assert_eq!(alone.status().default_model, GROQ_DEFAULT_MODEL);
        assert_eq!(
            alone.providers()[0].model_for("qwen/qwen3-32b", true),
            "qwen/qwen3-32b"
        );
        // A custom endpoint or OpenRouter as a fallback keeps the requested id.
        let custom_first = LlmSettings {
            llm_base_url: Some("http://127.0.0.1:1/v1".into()),
            openrouter_api_key: Some("k".into()),
            ..Default::default()
        };
        assert_eq!(custom_first.providers()[1].model_for(asked, false), asked);
    }

    #[test]
    fn custom_base_url_first_and_keys_never_printed() {
        let s = LlmSettings {
            llm_base_url: Some("http://127.0.0.1:11434/v1/".into()),
            openrouter_api_key: Some("sk-or-secret".into()),
            ..Default::default()
        };
        let p = s.providers();
        assert_eq!(p[0].name, "custom");
        assert_eq!(p[0].base_url, "http://127.0.0.1:11434/v1");
        assert!(!format!("{p:?}").contains("sk-or-secret"));
        assert!(!serde_json::to_string(&s.status())
            .unwrap()
            .contains("sk-or"));
    }
}
