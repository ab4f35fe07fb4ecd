//! Prompt caching on the wire: which models take `cache_control` breakpoints, and the request
//! body with them.
//!
//! Anthropic models (and Gemini through OpenRouter) cache a prompt prefix only up to a
//! message part marked `cache_control: {"type": "ephemeral"}`, at most four marks per request.
//! We mark the system prompt (the tools come before it in the provider's prefix, so they are
//! cached with it), the end of the earlier turns (stable for the whole turn), and the last
//! message (each step then reads the previous step's prefix). Every other model gets the
//! plain body, byte for byte what `serde_json` makes of the request.

use serde_json::{json, Value};

use super::types::ChatRequest;

/// How a model's requests are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStyle {
    /// Plain string content.
    None,
    /// Content parts with `cache_control` breakpoints.
    Breakpoints,
}

/// `anthropic/*` and `google/gemini*` ids take breakpoints; everything else is left alone
/// (OpenAI, DeepSeek, Groq and most others cache automatically, without marks).
pub fn cache_style(model: &str) -> CacheStyle {
    let m = model.trim().to_ascii_lowercase();
    if m.starts_with("anthropic/") || m.starts_with("google/gemini") {
        CacheStyle::Breakpoints
    } else {
        CacheStyle::None
    }
}

/// Most breakpoints Anthropic accepts in one request.
pub const MAX_BREAKPOINTS: usize = 4;

/// The JSON body of `req`. With [`CacheStyle::Breakpoints`], the system message, the message
/// at `history_end` (the last of the earlier turns, if any) and the last message with text
/// carry a `cache_control` mark; their `content` becomes one text part.
pub fn wire_body(req: &ChatRequest, style: CacheStyle, history_end: Option<usize>) -> String {
    if style == CacheStyle::None {
        return serde_json::to_string(req).unwrap_or_default();
    }
    let mut v = serde_json::to_value(req).unwrap_or(Value::Null);
    let Some(msgs) = v.get_mut("messages").and_then(Value::as_array_mut) else {
        return serde_json::to_string(req).unwrap_or_default();
    };
    let has_text = |m: &Value| m["content"].as_str().is_some_and(|s| !s.is_empty());
    let mut marks: Vec<usize> = Vec::new();
    if msgs
        .first()
        .is_some_and(|m| m["role"] == "system" && has_text(m))
    {
        marks.push(0);
    }
    // The last message with text at or before an index (an assistant message with only tool
    // calls has none, and an empty text part is an error on Anthropic).
    let with_text_at_or_before = |i: usize| (0..=i).rev().find(|&j| has_text(&msgs[j]));
    if let Some(h) = history_end.filter(|h| *h < msgs.len()) {
        if let Some(j) = with_text_at_or_before(h) {
            marks.push(j);
        }
    }
    if let Some(j) = msgs.len().checked_sub(1).and_then(with_text_at_or_before) {
        marks.push(j);
    }
    marks.sort_unstable();
    marks.dedup();
    marks.truncate(MAX_BREAKPOINTS);
    for i in marks {
        let text = msgs[i]["content"].as_str().unwrap_or_default().to_string();
        msgs[i]["content"] = json!([{
            "type": "text",
            "text": text,
            "cache_control": {"type": "ephemeral"}
        }]);
    }
    serde_json::to_string(&v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::types::{AssistantToolCall, Message, ToolSpec};

    fn req(model: &str) -> ChatRequest {
        ChatRequest::streaming(
            model,
            vec![
                Message::system("sys"),
                Message::user("first"),
                Message::assistant("done", vec![]),
                Message::user("second"),
                Message::assistant("", vec![AssistantToolCall::new("c1", "read_file", "{}")]),
                Message::tool("c1", "contents"),
                Message::assistant("", vec![AssistantToolCall::new("c2", "list_files", "{}")]),
            ],
            vec![ToolSpec::function(
                "read_file",
                "Read",
                json!({"type": "object"}),
            )],
        )
    }

    #[test]
    fn styles_by_model() {
        assert_eq!(
            cache_style("anthropic/claude-sonnet-4.5"),
            CacheStyle::Breakpoints
        );
        assert_eq!(
            cache_style("google/gemini-2.5-pro"),
            CacheStyle::Breakpoints
        );
        assert_eq!(cache_style("google/gemma-3-27b-it"), CacheStyle::None);
        assert_eq!(cache_style("openai/gpt-5"), CacheStyle::None);
        assert_eq!(cache_style("scripted/model-a"), CacheStyle::None);
    }

    #[test]
    fn other_models_get_the_plain_body_byte_for_byte() {
        let r = req("openai/gpt-5");
        assert_eq!(
            wire_body(&r, cache_style(&r.model), Some(2)),
            serde_json::to_string(&r).unwrap()
        );
        assert!(!wire_body(&r, CacheStyle::None, None).contains("cache_control"));
    }

    #[test]
    fn breakpoints_on_system_history_end_and_last_text() {
        let r = req("anthropic/claude-sonnet-4.5");
        let v: Value =
            serde_json::from_str(&wire_body(&r, CacheStyle::Breakpoints, Some(2))).unwrap();
        let msgs = v["messages"].as_array().unwrap();
        let marked: Vec<usize> = msgs
            .iter()
            .enumerate()
            .filter(|(_, m)| m["content"].is_array())
            .map(|(i, _)| i)
            .collect();
        // The last message has only tool calls: the mark goes on the tool result before it.
        assert_eq!(marked, [0, 2, 5]);
        assert_eq!(
            msgs[5]["content"],
            json!([{"type": "text", "text": "contents", "cache_control": {"type": "ephemeral"}}])
        );
        assert_eq!(msgs[1]["content"], "first");
        assert_eq!(msgs[6]["content"], Value::Null);
        // Everything else is as serde writes it.
        assert_eq!(v["tools"], serde_json::to_value(&r.tools).unwrap());
        assert_eq!(v["model"], "anthropic/claude-sonnet-4.5");
        // No history: two marks; a one-message request: one.
        let v: Value = serde_json::from_str(&wire_body(&r, CacheStyle::Breakpoints, None)).unwrap();
        assert_eq!(
            v["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["content"].is_array())
                .count(),
            2
        );
        let one = ChatRequest::streaming("anthropic/x", vec![Message::system("s")], vec![]);
        let v: Value =
            serde_json::from_str(&wire_body(&one, CacheStyle::Breakpoints, Some(0))).unwrap();
        assert!(v["messages"][0]["content"].is_array());
    }
}
