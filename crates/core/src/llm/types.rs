//! OpenAI-compatible chat-completions wire types: the request we send and the stream chunks and
//! error bodies we read back.
//!
//! Reading is lenient on purpose: every provider adds fields (`reasoning`, `provider`,
//! `native_finish_reason`, `x_groq`, ...) and some send `null` where others omit a field, so no
//! type here denies unknown fields and every list or optional field accepts `null`.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// One message of the conversation, tagged by `role` on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Message {
    System {
        content: String,
    },
    User {
        content: String,
    },
    /// `content` is serialized as an explicit `null` when the model only called tools: several
    /// providers reject an assistant message that has neither `content` nor a string in it.
    Assistant {
        #[serde(default)]
        content: Option<String>,
        #[serde(
            default,
            deserialize_with = "null_as_default",
            skip_serializing_if = "Vec::is_empty"
        )]
        tool_calls: Vec<AssistantToolCall>,
    },
    Tool {
        tool_call_id: String,
        content: String,
    },
}

impl Message {
    pub fn system(content: impl Into<String>) -> Message {
        Message::System {
            content: content.into(),
        }
    }

    pub fn user(content: impl Into<String>) -> Message {
        Message::User {
            content: content.into(),
        }
    }

    /// An assistant message; empty text next to tool calls becomes `content: null`.
    pub fn assistant(text: impl Into<String>, tool_calls: Vec<AssistantToolCall>) -> Message {
        let text = text.into();
        let content = if text.is_empty() && !tool_calls.is_empty() {
            None
        } else {
            Some(text)
        };
        Message::Assistant {
            content,
            tool_calls,
        }
    }

    pub fn tool(tool_call_id: impl Into<String>, content: impl Into<String>) -> Message {
        Message::Tool {
            tool_call_id: tool_call_id.into(),
            content: content.into(),
        }
    }
}

/// A tool call as it is echoed back in an assistant message of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssistantToolCall {
    pub id: String,
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionCall,
}

impl AssistantToolCall {
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        AssistantToolCall {
            id: id.into(),
            kind: function_type(),
            function: FunctionCall {
                name: name.into(),
                arguments: arguments.into(),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    /// A JSON document, as a string (that is what the API sends and expects back).
    #[serde(default)]
    pub arguments: String,
}

fn function_type() -> String {
    "function".to_string()
}

/// One entry of the request's `tools` array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionSpec {
    pub name: String,
    pub description: String,
    /// A JSON Schema object describing the arguments.
    pub parameters: Value,
}

impl ToolSpec {
    pub fn function(name: &str, description: &str, parameters: Value) -> ToolSpec {
        ToolSpec {
            kind: function_type(),
            function: FunctionSpec {
                name: name.to_string(),
                description: description.to_string(),
                parameters,
            },
        }
    }
}

/// `"auto"`, `"none"`, `"required"`, or one named function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    Mode(ToolChoiceMode),
    Function {
        #[serde(rename = "type")]
        kind: String,
        function: ToolChoiceName,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolChoiceMode {
    Auto,
    None,
    Required,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolChoiceName {
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Asks for a final chunk with token usage (and, on OpenRouter, `cost`).
    pub include_usage: bool,
}

/// The body of `POST {base_url}/chat/completions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tools: Vec<ToolSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
}

impl ChatRequest {
    /// A streaming request that asks for the usage chunk.
    pub fn streaming(
        model: impl Into<String>,
        messages: Vec<Message>,
        tools: Vec<ToolSpec>,
    ) -> Self {
        ChatRequest {
            model: model.into(),
            messages,
            tools,
            tool_choice: None,
            stream: true,
            stream_options: Some(StreamOptions {
                include_usage: true,
            }),
            max_tokens: None,
            temperature: None,
        }
    }
}

/// One `chat.completion.chunk` of a stream.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ChatChunk {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub object: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub choices: Vec<ChunkChoice>,
    #[serde(default)]
    pub usage: Option<Usage>,
    /// OpenRouter reports upstream failures mid-stream as a chunk with an `error` object.
    #[serde(default)]
    pub error: Option<ApiErrorBody>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ChunkChoice {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub delta: Option<Delta>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Delta {
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tool_calls: Vec<ToolCallDelta>,
}

/// One fragment of a streamed tool call. `id` and `name` normally arrive only in the first
/// fragment of each `index`; `arguments` arrives in pieces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    /// Missing on a few providers (some Gemini-compatible endpoints); see the accumulator.
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub function: Option<FunctionDelta>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionDelta {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
}

/// Token usage of one completion. `cost` (in credits, i.e. USD) is OpenRouter's addition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default, deserialize_with = "null_as_default")]
    pub prompt_tokens: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub completion_tokens: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub total_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    /// `cached_tokens`: how many of `prompt_tokens` were read from the provider's prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

impl Usage {
    /// Prompt tokens read from the provider's cache (0 when it does not say).
    pub fn cached_tokens(&self) -> u64 {
        self.prompt_tokens_details
            .map(|d| d.cached_tokens)
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    #[serde(default, deserialize_with = "null_as_default")]
    pub cached_tokens: u64,
}

/// The `error` object of an error response body or of a mid-stream error chunk.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ApiErrorBody {
    #[serde(default, deserialize_with = "null_as_default")]
    pub message: String,
    /// A number on OpenRouter (`502`), a string on OpenAI (`"rate_limit_exceeded"`).
    #[serde(default, deserialize_with = "string_or_number")]
    pub code: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// OpenRouter puts the upstream provider's raw error here.
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// A whole error response body: `{"error": {...}}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ErrorEnvelope {
    pub error: ApiErrorBody,
}

/// Reads `null` as the type's default, so `"choices": null` is an empty list.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn string_or_number<'de, D>(d: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_wire_shape() {
        let req = ChatRequest {
            max_tokens: Some(1000),
            ..ChatRequest::streaming(
                "m",
                vec![
                    Message::system("sys"),
                    Message::user("hi"),
                    Message::assistant(
                        "",
                        vec![AssistantToolCall::new(
                            "call_1",
                            "read_file",
                            r#"{"path":"a"}"#,
                        )],
                    ),
                    Message::tool("call_1", "contents"),
                    Message::assistant("done", vec![]),
                ],
                vec![ToolSpec::function(
                    "read_file",
                    "Read a file",
                    json!({"type": "object"}),
                )],
            )
        };
        let v = serde_json::to_value(&req).unwrap();
        assert_eq!(
            v,
            json!({
                "model": "m",
                "messages": [
                    {"role": "system", "content": "sys"},
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_1", "type": "function",
                         "function": {"name": "read_file", "arguments": "{\"path\":\"a\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "contents"},
                    {"role": "assistant", "content": "done"}
                ],
                "tools": [{"type": "function", "function": {
                    "name": "read_file", "description": "Read a file",
                    "parameters": {"type": "object"}}}],
                "stream": true,
                "stream_options": {"include_usage": true},
                "max_tokens": 1000
            })
        );
        let back: ChatRequest = serde_json::from_value(v).unwrap();
        assert_eq!(back, req);
    }

    #[test]
    fn tool_choice_forms() {
        assert_eq!(
            serde_json::to_value(ToolChoice::Mode(ToolChoiceMode::Required)).unwrap(),
            json!("required")
        );
        let named = ToolChoice::Function {
            kind: "function".into(),
            function: ToolChoiceName {
                name: "read_file".into(),
            },
        };
        assert_eq!(
            serde_json::to_value(&named).unwrap(),
            json!({"type": "function", "function": {"name": "read_file"}})
        );
    }

    #[test]
    fn chunks_tolerate_extras_and_nulls() {
        let c: ChatChunk = serde_json::from_value(json!({
            "id": "gen-1", "object": "chat.completion.chunk", "provider": "Anthropic",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": null,
                "reasoning": "hmm", "tool_calls": null},
                "finish_reason": null, "native_finish_reason": null, "logprobs": null}],
            "usage": null, "system_fingerprint": null
        }))
        .unwrap();
        assert_eq!(c.choices.len(), 1);
        assert_eq!(c.choices[0].delta.as_ref().unwrap().tool_calls, vec![]);

        let c: ChatChunk = serde_json::from_value(json!({"choices": null,
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5,
                      "cost": 0.001, "prompt_tokens_details": {"cached_tokens": 0}}}))
        .unwrap();
        assert_eq!(c.usage.unwrap().cost, Some(0.001));
        assert_eq!(c.usage.unwrap().cached_tokens(), 0);
        let c: ChatChunk = serde_json::from_value(json!({"choices": [],
            "usage": {"prompt_tokens": 900, "completion_tokens": 2, "total_tokens": 902,
                      "prompt_tokens_details": {"cached_tokens": 800, "audio_tokens": null}}}))
        .unwrap();
        assert_eq!(c.usage.unwrap().cached_tokens(), 800);
        let c: ChatChunk = serde_json::from_value(json!({"choices": [],
            "usage": {"prompt_tokens": 9, "prompt_tokens_details": null}}))
        .unwrap();
        assert_eq!(c.usage.unwrap().cached_tokens(), 0);
    }

    #[test]
    fn error_codes_as_number_or_string() {
        let e: ErrorEnvelope =
            serde_json::from_value(json!({"error": {"code": 502, "message": "down"}})).unwrap();
        assert_eq!(e.error.code.as_deref(), Some("502"));
        let e: ErrorEnvelope = serde_json::from_value(
            json!({"error": {"code": "rate_limit_exceeded", "message": "slow", "type": "x"}}),
        )
        .unwrap();
        assert_eq!(e.error.code.as_deref(), Some("rate_limit_exceeded"));
        let e: ErrorEnvelope =
            serde_json::from_value(json!({"error": {"message": "m", "code": null}})).unwrap();
        assert_eq!(e.error.code, None);
    }
}
