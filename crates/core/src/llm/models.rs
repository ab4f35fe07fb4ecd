//! What a provider's `GET /models` says about each model: its context window, its output limit
//! and its prices, typed; and the conservative limits used when it says nothing.
//!
//! OpenRouter sends `context_length`, `top_provider.max_completion_tokens` and `pricing` (USD per
//! token, as decimal strings: `prompt`, `completion`, `input_cache_read`, `input_cache_write`).
//! Groq sends `context_window` and `max_completion_tokens`; vLLM `max_model_len`. Everything is
//! optional: a field a provider leaves out falls back to [`ModelLimits::DEFAULT`].

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// How much a model can read and write in one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelLimits {
    /// Tokens of prompt plus completion.
    pub context_window: u32,
    /// The most completion tokens one request may ask for.
    pub max_output: u32,
}

impl ModelLimits {
    /// What we assume about a model nobody describes: small enough for any model an
    /// OpenAI-compatible server is likely to run (Ollama's defaults are smaller still, but
    /// those servers cut the prompt themselves rather than fail).
    pub const DEFAULT: ModelLimits = ModelLimits {
        context_window: 32_768,
        max_output: 4_096,
    };

    /// The same limits with a window a provider reported in an error (it is the truth, whatever
    /// `/models` said).
    pub fn with_window(self, window: u32) -> ModelLimits {
        ModelLimits {
            context_window: window,
            max_output: self.max_output.min(window / 2).max(1),
        }
    }
}

/// USD per token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Pricing {
    pub prompt: f64,
    pub completion: f64,
    /// Reading a cached prefix; `None` when the model has no prompt cache.
    pub cache_read: Option<f64>,
    /// Writing a prefix into the cache (Anthropic charges 1.25x the prompt price).
    pub cache_write: Option<f64>,
    /// USD per request (OpenRouter's `pricing.request`; 0 when not listed).
    #[serde(default)]
    pub request: f64,
}

impl Pricing {
    /// The input cost of one request: `cached` tokens read from the cache, `written` tokens
    /// written to it, the rest at the prompt price.
    pub fn input_cost(&self, prompt_tokens: u64, cached: u64, written: u64) -> f64 {
        let plain = prompt_tokens.saturating_sub(cached + written) as f64;
        plain * self.prompt
            + cached as f64 * self.cache_read.unwrap_or(self.prompt)
            + written as f64 * self.cache_write.unwrap_or(self.prompt)
    }
}

/// One entry of a `/models` list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    pub id: String,
    pub name: String,
    pub context_window: Option<u32>,
    pub max_output: Option<u32>,
    pub pricing: Option<Pricing>,
}

impl ModelInfo {
    /// The limits to budget with: what the provider said, the default for what it did not.
    pub fn limits(&self) -> ModelLimits {
        let window = self
            .context_window
            .filter(|w| *w >= 1_024)
            .unwrap_or(ModelLimits::DEFAULT.context_window);
        let out = self
            .max_output
            .filter(|o| *o > 0)
            .unwrap_or(ModelLimits::DEFAULT.max_output);
        ModelLimits {
            context_window: window,
            // A provider that lists the output limit as the whole window still needs room
            // for the prompt.
            max_output: out.min(window / 2),
        }
    }
}

#[derive(Deserialize)]
struct RawList {
    #[serde(default, deserialize_with = "null_as_default")]
    data: Vec<Value>,
}

#[derive(Deserialize, Default)]
struct RawTopProvider {
    #[serde(default, deserialize_with = "lenient_u32")]
    context_length: Option<u32>,
    #[serde(default, deserialize_with = "lenient_u32")]
    max_completion_tokens: Option<u32>,
}

#[derive(Deserialize, Default)]
struct RawPricing {
    #[serde(default, deserialize_with = "lenient_f64")]
    prompt: Option<f64>,
    #[serde(default, deserialize_with = "lenient_f64")]
    completion: Option<f64>,
    #[serde(default, deserialize_with = "lenient_f64")]
    input_cache_read: Option<f64>,
    #[serde(default, deserialize_with = "lenient_f64")]
    input_cache_write: Option<f64>,
    #[serde(default, deserialize_with = "lenient_f64")]
    request: Option<f64>,
}

#[derive(Deserialize)]
struct RawModel {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient_u32")]
    context_length: Option<u32>,
    #[serde(default, deserialize_with = "lenient_u32")]
    context_window: Option<u32>,
    #[serde(default, deserialize_with = "lenient_u32")]
    max_model_len: Option<u32>,
    #[serde(default, deserialize_with = "lenient_u32")]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    top_provider: Option<RawTopProvider>,
    #[serde(default)]
    pricing: Option<RawPricing>,
}

/// Parses a `/models` body (`{"data": [...]}`). Entries without an `id` are skipped, so one
/// odd entry does not hide the rest.
pub fn parse_models(body: &str) -> Result<Vec<ModelInfo>, String> {
    let list: RawList =
        serde_json::from_str(body).map_err(|e| format!("the model list is not JSON: {e}"))?;
    Ok(list
        .data
        .into_iter()
        .filter_map(|v| serde_json::from_value::<RawModel>(v).ok())
        .filter(|m| !m.id.trim().is_empty())
        .map(|m| {
            let top = m.top_provider.unwrap_or_default();
            let pricing = m.pricing.and_then(|p| {
                // Both token prices, or the price is unknown (the spend cap fails closed).
                Some(Pricing {
                    prompt: p.prompt?,
                    completion: p.completion?,
                    cache_read: p.input_cache_read,
                    cache_write: p.input_cache_write,
                    request: p.request.unwrap_or(0.0),
                })
            });
            ModelInfo {
                name: m.name.filter(|n| !n.is_empty()).unwrap_or(m.id.clone()),
                context_window: m
                    .context_length
                    .or(top.context_length)
                    .or(m.context_window)
                    .or(m.max_model_len),
                max_output: top.max_completion_tokens.or(m.max_completion_tokens),
                pricing,
                id: m.id,
            }
        })
        .collect())
}

/// The limits of `model` in a parsed list, or the default when the list lacks it.
pub fn limits_of(models: &[ModelInfo], model: &str) -> ModelLimits {
    models
        .iter()
        .find(|m| m.id == model)
        .map(ModelInfo::limits)
        .unwrap_or(ModelLimits::DEFAULT)
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A number, a numeric string, or anything else as `None`.
fn lenient_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|f: &f64| f.is_finite() && *f >= 0.0))
}

fn lenient_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|n| *n > 0)
    .map(|n| n.min(u32::MAX as u64) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openrouter_entries_give_limits_and_prices() {
        let body = r#"{"data": [
          {"id": "anthropic/claude-sonnet-4.5", "name": "Anthropic: Claude Sonnet 4.5",
           "context_length": 1000000,
           "pricing": {"prompt": "0.000003", "completion": "0.000015",
                       "input_cache_read": "0.0000003", "input_cache_write": "0.00000375",
                       "request": "0", "image": "0"},
           "top_provider": {"context_length": 1000000, "max_completion_tokens": 64000,
                            "is_moderated": true}},
          {"id": "qwen/qwen3-coder", "context_length": null,
           "pricing": {"prompt": "0.0000002", "completion": "0.0000008"},
           "top_provider": {"context_length": 262144, "max_completion_tokens": null}},
          {"name": "no id"}
        ]}"#;
        let m = parse_models(body).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].name, "Anthropic: Claude Sonnet 4.5");
        assert_eq!(
            m[0].limits(),
            ModelLimits {
                context_window: 1_000_000,
                max_output: 64_000
            }
        );
        let p = m[0].pricing.unwrap();
        assert_eq!(p.prompt, 0.000003);
        assert_eq!(p.cache_read, Some(0.0000003));
        assert_eq!(p.cache_write, Some(0.00000375));
        // The window from top_provider when the entry lacks one; the default output limit.
        assert_eq!(
            limits_of(&m, "qwen/qwen3-coder"),
            ModelLimits {
                context_window: 262_144,
                max_output: 4_096
            }
        );
        assert_eq!(m[1].name, "qwen/qwen3-coder");
        assert_eq!(m[1].pricing.unwrap().cache_read, None);
        assert_eq!(limits_of(&m, "unknown/model"), ModelLimits::DEFAULT);
    }

    #[test]
    fn groq_vllm_and_bare_lists() {
        let groq = r#"{"object":"list","data":[{"id":"openai/gpt-oss-120b","object":"model",
            "context_window":131072,"max_completion_tokens":65536,"active":true}]}"#;
        assert_eq!(
            parse_models(groq).unwrap()[0].limits(),
            ModelLimits {
                context_window: 131_072,
                max_output: 65_536
            }
        );
        let vllm = r#"{"data":[{"id":"Qwen/Qwen2.5-Coder-7B","max_model_len":"16384"}]}"#;
        let l = parse_models(vllm).unwrap()[0].limits();
        assert_eq!(l.context_window, 16_384);
        assert_eq!(l.max_output, 4_096);
        // An output limit as large as the window leaves half for the prompt.
        let big = r#"{"data":[{"id":"x","context_length":8192,
            "top_provider":{"max_completion_tokens":8192}}]}"#;
        assert_eq!(parse_models(big).unwrap()[0].limits().max_output, 4_096);
        let bare = r#"{"data":[{"id":"llama3"}]}"#;
        assert_eq!(
            parse_models(bare).unwrap()[0].limits(),
            ModelLimits::DEFAULT
        );
        assert_eq!(parse_models(r#"{"data": null}"#).unwrap(), vec![]);
        assert!(parse_models("<html>").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn input_cost_splits_cached_written_and_plain() {
        let p = Pricing {
            prompt: 3e-6,
            completion: 15e-6,
            cache_read: Some(0.3e-6),
            cache_write: Some(3.75e-6),
            request: 0.0,
        };
        let c = p.input_cost(10_000, 8_000, 1_000);
        assert!((c - (1_000.0 * 3e-6 + 8_000.0 * 0.3e-6 + 1_000.0 * 3.75e-6)).abs() < 1e-12);
        let none = Pricing {
            prompt: 1e-6,
            ..Default::default()
        };
        assert!((none.input_cost(100, 50, 0) - 100.0 * 1e-6).abs() < 1e-12);
        assert_eq!(
            ModelLimits::DEFAULT.with_window(6_000),
            ModelLimits {
                context_window: 6_000,
                max_output: 3_000
            }
        );
    }
}
