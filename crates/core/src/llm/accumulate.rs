//! Folds the typed events of one completion stream into an [`Outcome`]: the text, the complete
//! tool calls, why the model stopped, and the usage.
//!
//! Tool-call fragments are keyed by `index`: `id` and `name` come with the first fragment of an
//! index, `arguments` come in pieces that are concatenated in arrival order.

use std::collections::BTreeMap;

use super::stream::{FinishReason, StreamError, StreamEvent};
use super::types::{ToolCallDelta, Usage};

/// A complete tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments JSON as the model wrote it (it may still be invalid JSON: the tool
    /// registry checks that and tells the model).
    pub arguments: String,
}

/// A tool call that must not be executed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
    pub reason: String,
}

/// What one completion produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub text: String,
    /// Calls to execute, in `index` order.
    pub tool_calls: Vec<ToolCall>,
    /// Calls that arrived but must not run (the one cut off by `length`, or nameless).
    pub dropped_tool_calls: Vec<DroppedToolCall>,
    pub finish_reason: FinishReason,
    pub usage: Option<Usage>,
}

/// Why a stream did not produce an [`Outcome`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamFailure {
    #[error("the model's answer was cut off: the stream ended without a finish reason or [DONE]")]
    Truncated {
        /// Whatever text had arrived, so the UI can keep showing it.
        partial_text: String,
    },
    #[error("the model provider reported an error mid-answer: {message}")]
    Api {
        message: String,
        code: Option<String>,
    },
    #[error(transparent)]
    Malformed(#[from] StreamError),
}

#[derive(Debug, Default)]
struct PartialCall {
    id: Option<String>,
    name: String,
    arguments: String,
}

/// Collects one stream. Feed every event with [`Accumulator::push`], then call
/// [`Accumulator::finish`] when the body ends.
#[derive(Debug, Default)]
pub struct Accumulator {
    text: String,
    calls: BTreeMap<u32, PartialCall>,
    /// The slot the last index-less fragment went to.
    last_slot: Option<u32>,
    finish_reason: Option<FinishReason>,
    usage: Option<Usage>,
    done: bool,
    error: Option<(String, Option<String>)>,
}

impl Accumulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// The text so far (for callers that want it without tracking deltas themselves).
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn push(&mut self, ev: &StreamEvent) {
        match ev {
            StreamEvent::TextDelta(t) => self.text.push_str(t),
            StreamEvent::ToolCallDelta(d) => self.push_tool_delta(d),
            StreamEvent::Finish(r) => self.finish_reason = Some(r.clone()),
            // Usage is cumulative for the completion, so the latest report wins; some servers
            // repeat it on every chunk.
            StreamEvent::Usage(u) => self.usage = Some(*u),
            StreamEvent::Done => self.done = true,
            StreamEvent::ApiError { message, code } => {
                if self.error.is_none() {
                    self.error = Some((message.clone(), code.clone()));
                }
            }
        }
    }

    fn push_tool_delta(&mut self, d: &ToolCallDelta) {
        let slot = match d.index {
            Some(i) => i,
            // Quirk: some Gemini-compatible endpoints omit `index`. A fragment with a new `id`
            // starts a new call; one without continues the last call.
            None => {
                let last = self
                    .last_slot
                    .and_then(|s| self.calls.get(&s).map(|c| (s, c)));
                match (last, &d.id) {
                    (Some((s, c)), Some(id)) if c.id.as_deref() == Some(id.as_str()) => s,
                    (Some((s, _)), None) => s,
                    _ => self.calls.keys().next_back().map_or(0, |k| k + 1),
                }
            }
        };
        self.last_slot = Some(slot);
        let call = self.calls.entry(slot).or_default();
        if let Some(id) = d.id.as_ref().filter(|id| !id.is_empty()) {
            call.id.get_or_insert_with(|| id.clone());
        }
        if let Some(f) = &d.function {
            // Quirk: a few servers repeat the name on every fragment; take it once.
            if let Some(name) = f.name.as_ref().filter(|n| !n.is_empty()) {
                if call.name.is_empty() {
                    call.name = name.clone();
                }
            }
            if let Some(args) = &f.arguments {
                call.arguments.push_str(args);
            }
        }
    }

    /// Ends the stream and decides what it meant.
    pub fn finish(self) -> Result<Outcome, StreamFailure> {
        if let Some((message, code)) = self.error {
            return Err(StreamFailure::Api { message, code });
        }
        let has_calls = !self.calls.is_empty();
        let finish_reason = match self.finish_reason {
            Some(r) => r,
            // Quirk: some local servers send `[DONE]` but never a finish reason.
            None if self.done && has_calls => FinishReason::ToolCalls,
            None if self.done => FinishReason::Stop,
            None => {
                return Err(StreamFailure::Truncated {
                    partial_text: self.text,
                })
            }
        };

        let mut tool_calls = Vec::new();
        let mut dropped = Vec::new();
        let last_slot = self.calls.keys().next_back().copied();
        for (slot, c) in self.calls {
            // Quirk: a few servers omit ids; the history still needs one to pair the result.
            let id = c.id.unwrap_or_else(|| format!("call_{slot}"));
            // Quirk: argument-less calls sometimes arrive with `""` rather than `{}`.
            let arguments = if c.arguments.trim().is_empty() {
                "{}".to_string()
            } else {
                c.arguments
            };
            let refuse = |reason: &str| DroppedToolCall {
                id: id.clone(),
                name: c.name.clone(),
                arguments: arguments.clone(),
                reason: reason.to_string(),
            };
            match &finish_reason {
                // The output-token limit hit mid-call: the last call's arguments are cut off
                // unless they already form whole JSON, and running a half-written `write_file`
                // would corrupt the project. Calls before it were finished before the model
                // moved on, so they are complete and run.
                FinishReason::Length
                    if Some(slot) == last_slot
                        && serde_json::from_str::<serde_json::Value>(&arguments).is_err() =>
                {
                    dropped.push(refuse(
                        "cut off by the output-token limit before the call was complete",
                    ))
                }
                FinishReason::ContentFilter => {
                    dropped.push(refuse("the provider's content filter stopped the answer"))
                }
                _ if c.name.is_empty() => dropped.push(refuse("the call had no function name")),
                _ => tool_calls.push(ToolCall {
                    id,
                    name: c.name,
                    arguments,
                }),
            }
        }

        // `length` stays `length` even with complete calls: the turn must know the reply was cut.
        // Quirk: some providers (several Anthropic and Gemini routes) say `stop` even though the
        // answer ends in tool calls; complete calls are what matter.
        let finish_reason = match finish_reason {
            FinishReason::Stop | FinishReason::Other(_) if !tool_calls.is_empty() => {
                FinishReason::ToolCalls
            }
            r => r,
        };

        Ok(Outcome {
            text: self.text,
            tool_calls,
            dropped_tool_calls: dropped,
            finish_reason,
            usage: self.usage,
        })
    }
}

/// Accumulates a whole body at once (tests, replay).
pub fn outcome_from_bytes(bytes: &[u8]) -> Result<Outcome, StreamFailure> {
    let mut acc = Accumulator::new();
    for item in super::stream::decode_stream(bytes) {
        acc.push(&item?);
    }
    acc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::stream::fixtures::*;
    use crate::llm::stream::StreamDecoder;

    /// Runs `input` through decoder and accumulator with the body cut at `cut`.
    fn run_split(input: &[u8], cut: usize) -> Result<Outcome, StreamFailure> {
        let mut d = StreamDecoder::new();
        let mut acc = Accumulator::new();
        let mut items = d.feed(&input[..cut]);
        items.extend(d.feed(&input[cut..]));
        items.extend(d.finish());
        for item in items {
            acc.push(&item?);
        }
        acc.finish()
    }

    fn assert_split_invariant(input: &str) -> Result<Outcome, StreamFailure> {
        let whole = outcome_from_bytes(input.as_bytes());
        for cut in 0..=input.len() {
            assert_eq!(run_split(input.as_bytes(), cut), whole, "split at {cut}");
        }
        whole
    }

    fn data(json: &str) -> String {
        format!("data: {json}\n\n")
    }

    #[test]
    fn text_only_outcome() {
        let o = assert_split_invariant(TEXT_ONLY).unwrap();
        assert_eq!(o.text, "Hello, wörld 🦀");
        assert!(o.tool_calls.is_empty());
        assert_eq!(o.finish_reason, FinishReason::Stop);
        assert_eq!(o.usage.unwrap().cost, Some(0.00042));
    }

    #[test]
    fn two_interleaved_tool_calls() {
        let o = assert_split_invariant(TWO_TOOLS_CRLF).unwrap();
        assert_eq!(o.text, "Let me look.");
        assert_eq!(o.finish_reason, FinishReason::ToolCalls);
        assert_eq!(
            o.tool_calls,
            vec![
                ToolCall {
                    id: "call_a".into(),
                    name: "read_file".into(),
                    arguments: r#"{"path":"a.txt"}"#.into()
                },
                ToolCall {
                    id: "call_b".into(),
                    name: "write_file".into(),
                    arguments: r#"{"path":"b.txt","content":"hé🦀"}"#.into()
                },
            ]
        );
        let u = o.usage.unwrap();
        assert_eq!((u.prompt_tokens, u.cost), (50, None));
    }

    #[test]
    fn length_drops_cut_tool_calls() {
        let input = [
            data(r#"{"choices":[{"index":0,"delta":{"content":"Writing."}}]}"#),
            data(
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"write_file","arguments":"{\"path\":\"a\",\"content\":\"par"}}]}}]}"#,
            ),
            data(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#),
            "data: [DONE]\n\n".to_string(),
        ]
        .concat();
        let o = assert_split_invariant(&input).unwrap();
        assert_eq!(o.finish_reason, FinishReason::Length);
        assert!(o.tool_calls.is_empty());
        assert_eq!(o.dropped_tool_calls.len(), 1);
        assert_eq!(o.dropped_tool_calls[0].name, "write_file");
        assert!(o.dropped_tool_calls[0]
            .reason
            .contains("output-token limit"));
    }

    #[test]
    fn length_keeps_the_complete_calls_before_the_cut_one() {
        let input = [
            data(
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"write_file","arguments":"{\"path\":\"a\",\"content\":\"A\"}"}}]}}]}"#,
            ),
            data(
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"c2","type":"function","function":{"name":"read_file","arguments":"{\"path\":\"a\"}"}}]}}]}"#,
            ),
            data(
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":2,"id":"c3","type":"function","function":{"name":"write_file","arguments":"{\"path\":\"b\",\"con"}}]}}]}"#,
            ),
            data(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#),
            "data: [DONE]\n\n".to_string(),
        ]
        .concat();
        let o = assert_split_invariant(&input).unwrap();
        assert_eq!(o.finish_reason, FinishReason::Length);
        assert_eq!(
            o.tool_calls
                .iter()
                .map(|c| c.id.as_str())
                .collect::<Vec<_>>(),
            ["c1", "c2"]
        );
        assert_eq!(o.tool_calls[0].arguments, r#"{"path":"a","content":"A"}"#);
        assert_eq!(o.dropped_tool_calls.len(), 1);
        assert_eq!(o.dropped_tool_calls[0].id, "c3");

        // A last call whose arguments are already whole JSON was not cut: it runs too.
        let input = [
            data(
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"list_files","arguments":"{}"}}]}}]}"#,
            ),
            data(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#),
        ]
        .concat();
        let o = assert_split_invariant(&input).unwrap();
        assert_eq!(
            (o.finish_reason, o.tool_calls.len()),
            (FinishReason::Length, 1)
        );
        assert!(o.dropped_tool_calls.is_empty());
    }

    #[test]
    fn stop_with_tool_calls_means_tool_calls() {
        let input = [
            data(
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"list_files","arguments":""}}]}}]}"#,
            ),
            data(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#),
        ]
        .concat();
        let o = assert_split_invariant(&input).unwrap();
        assert_eq!(o.finish_reason, FinishReason::ToolCalls);
        assert_eq!(o.tool_calls[0].arguments, "{}");
    }

    #[test]
    fn cut_without_finish_or_done_is_truncated() {
        let input = data(r#"{"choices":[{"index":0,"delta":{"content":"Half an ans"}}]}"#);
        assert_eq!(
            assert_split_invariant(&input),
            Err(StreamFailure::Truncated {
                partial_text: "Half an ans".into()
            })
        );
        // A body that stops in the middle of a chunk is a malformed chunk, also an error.
        let cut = &TEXT_ONLY[..TEXT_ONLY.find("wörld").unwrap()];
        assert!(matches!(
            outcome_from_bytes(cut.as_bytes()),
            Err(StreamFailure::Malformed(_))
        ));
    }

    #[test]
    fn done_without_finish_reason_is_accepted() {
        let input = [
            data(r#"{"choices":[{"index":0,"delta":{"content":"ok"}}]}"#),
            "data: [DONE]\n\n".to_string(),
        ]
        .concat();
        let o = assert_split_invariant(&input).unwrap();
        assert_eq!(
            (o.text.as_str(), o.finish_reason),
            ("ok", FinishReason::Stop)
        );
        assert_eq!(o.usage, None);
    }

    #[test]
    fn api_error_mid_stream_fails_the_stream() {
        let input = [
            data(r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#),
            data(r#"{"error":{"code":"server_error","message":"Provider disconnected"}}"#),
            data(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"error"}]}"#),
            "data: [DONE]\n\n".to_string(),
        ]
        .concat();
        let e = assert_split_invariant(&input).unwrap_err();
        assert_eq!(
            e,
            StreamFailure::Api {
                message: "Provider disconnected".into(),
                code: Some("server_error".into())
            }
        );
        assert!(e.to_string().contains("Provider disconnected"));
    }

    #[test]
    fn missing_index_and_id_quirks() {
        let input = [
            data(
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"x","function":{"name":"read_file","arguments":"{\"path\":"}}]}}]}"#,
            ),
            data(
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"function":{"arguments":"\"a\"}"}}]}}]}"#,
            ),
            data(
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"y","function":{"name":"read_file","arguments":"{\"path\":\"b\"}"}}]}}]}"#,
            ),
            data(
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":5,"function":{"name":"list_files"}}]}}]}"#,
            ),
            data(
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":6,"function":{"arguments":"{}"}}]}}]}"#,
            ),
            data(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#),
        ]
        .concat();
        let o = assert_split_invariant(&input).unwrap();
        let got: Vec<_> = o
            .tool_calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("x", "read_file", r#"{"path":"a"}"#),
                ("y", "read_file", r#"{"path":"b"}"#),
                ("call_5", "list_files", "{}"),
            ]
        );
        assert_eq!(o.dropped_tool_calls.len(), 1);
        assert!(o.dropped_tool_calls[0].reason.contains("no function name"));
    }
}
