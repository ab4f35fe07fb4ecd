//! Turns SSE events of a chat-completions stream into typed stream events.
//!
//! Only the first choice is read: the agent never asks for `n > 1`. A chunk that is not valid
//! JSON is a [`StreamError`]: the caller treats the stream as broken rather than guessing.

use super::sse::{SseDecoder, SseEvent};
use super::types::{ApiErrorBody, ChatChunk, ToolCallDelta, Usage};

/// Why the model stopped, normalised across providers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    ToolCalls,
    Length,
    ContentFilter,
    Other(String),
}

impl FinishReason {
    pub fn parse(s: &str) -> FinishReason {
        match s {
            "stop" | "end_turn" | "stop_sequence" => FinishReason::Stop,
            // `function_call` is the pre-tools spelling some older servers still send.
            "tool_calls" | "function_call" | "tool_use" => FinishReason::ToolCalls,
            "length" | "max_tokens" => FinishReason::Length,
            "content_filter" => FinishReason::ContentFilter,
            other => FinishReason::Other(other.to_string()),
        }
    }
}

/// One typed event of a completion stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    TextDelta(String),
    ToolCallDelta(ToolCallDelta),
    Finish(FinishReason),
    Usage(Usage),
    /// `data: [DONE]`.
    Done,
    /// The provider reported an error inside the stream (HTTP status was already 200).
    ApiError {
        message: String,
        code: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("the model provider sent a malformed stream chunk ({error}): {data}")]
    MalformedChunk {
        error: String,
        /// The start of the offending chunk, for logs.
        data: String,
    },
}

/// Longest excerpt of a bad chunk kept in the error.
const EXCERPT_BYTES: usize = 200;

/// Converts one SSE event. Comments (keep-alives) produce nothing.
pub fn events_from_sse(ev: &SseEvent) -> Result<Vec<StreamEvent>, StreamError> {
    match ev {
        SseEvent::Comment(_) => Ok(Vec::new()),
        SseEvent::Done => Ok(vec![StreamEvent::Done]),
        SseEvent::Message { event, data } => {
            if data.trim().is_empty() {
                // Some servers send `data:` with nothing as a heartbeat.
                return Ok(Vec::new());
            }
            let chunk: ChatChunk = match serde_json::from_str(data) {
                Ok(c) => c,
                // An `event: error` whose data is plain text rather than JSON.
                Err(_) if event.as_deref() == Some("error") => {
                    return Ok(vec![StreamEvent::ApiError {
                        message: data.clone(),
                        code: None,
                    }])
                }
                Err(e) => {
                    return Err(StreamError::MalformedChunk {
                        error: e.to_string(),
                        data: excerpt(data),
                    })
                }
            };
            Ok(chunk_events(chunk, event.as_deref() == Some("error"), data))
        }
    }
}

fn chunk_events(chunk: ChatChunk, error_event: bool, data: &str) -> Vec<StreamEvent> {
    let mut out = Vec::new();
    if let Some(err) = chunk.error {
        // The rest of an error chunk (OpenRouter adds `finish_reason: "error"`) adds nothing.
        out.push(api_error(err));
        return out;
    }
    if error_event && chunk.choices.is_empty() {
        out.push(StreamEvent::ApiError {
            message: excerpt(data),
            code: None,
        });
        return out;
    }
    if let Some(choice) = chunk.choices.into_iter().find(|c| c.index == 0) {
        if let Some(delta) = choice.delta {
            if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                out.push(StreamEvent::TextDelta(text));
            }
            out.extend(delta.tool_calls.into_iter().map(StreamEvent::ToolCallDelta));
        }
        if let Some(reason) = choice.finish_reason.filter(|r| !r.is_empty()) {
            out.push(StreamEvent::Finish(FinishReason::parse(&reason)));
        }
    }
    if let Some(usage) = chunk.usage {
        out.push(StreamEvent::Usage(usage));
    }
    out
}

fn api_error(err: ApiErrorBody) -> StreamEvent {
    let message = if err.message.is_empty() {
        "the model provider reported an error without a message".to_string()
    } else {
        err.message
    };
    StreamEvent::ApiError {
        message,
        code: err.code,
    }
}

fn excerpt(s: &str) -> String {
    if s.len() <= EXCERPT_BYTES {
        return s.to_string();
    }
    let mut end = EXCERPT_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Bytes of a chat-completions body in, typed events out.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    sse: SseDecoder,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Items in stream order; on the first `Err` the caller should stop and treat the stream as
    /// broken.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Result<StreamEvent, StreamError>> {
        convert(self.sse.feed(bytes))
    }

    /// Call when the body ends (cleanly or not).
    pub fn finish(&mut self) -> Vec<Result<StreamEvent, StreamError>> {
        convert(self.sse.finish())
    }
}

fn convert(events: Vec<SseEvent>) -> Vec<Result<StreamEvent, StreamError>> {
    let mut out = Vec::new();
    for ev in &events {
        match events_from_sse(ev) {
            Ok(evs) => out.extend(evs.into_iter().map(Ok)),
            Err(e) => out.push(Err(e)),
        }
    }
    out
}

/// Decodes a whole body at once.
pub fn decode_stream(bytes: &[u8]) -> Vec<Result<StreamEvent, StreamError>> {
    let mut d = StreamDecoder::new();
    let mut out = d.feed(bytes);
    out.extend(d.finish());
    out
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Recorded-shape streams shared by the stream, accumulator and turn tests.

    /// Text only, OpenRouter style: comment keep-alive, role chunk, finish, usage with cost.
    pub const TEXT_ONLY: &str = concat!(
        ": OPENROUTER PROCESSING\n\n",
        "data: {\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",\"provider\":\"OpenAI\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello, \"},\"finish_reason\":null}]}\n\n",
        ": OPENROUTER PROCESSING\n\n",
        "data: {\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"wörld 🦀\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\",\"native_finish_reason\":\"stop\"}]}\n\n",
        "data: {\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":20,\"total_tokens\":120,\"cost\":0.00042}}\n\n",
        "data: [DONE]\n\n",
    );

    /// Two tool calls whose fragments interleave by `index`, with CRLF line endings and text
    /// first; arguments hold multi-byte characters (the byte-split tests cut through them); no
    /// `cost`.
    pub const TWO_TOOLS_CRLF: &str = concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Let me look.\"}}]}\r\n\r\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"read_file\",\"arguments\":\"\"}}]}}]}\r\n\r\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"write_file\",\"arguments\":\"{\\\"path\\\":\\\"b.txt\\\",\"}}]}}]}\r\n\r\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"path\\\":\"}}]}}]}\r\n\r\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"\\\"content\\\":\\\"hé\"}}]}}]}\r\n\r\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"a.txt\\\"}\"}}]}}]}\r\n\r\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"🦀\\\"}\"}}]}}]}\r\n\r\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\r\n\r\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":50,\"completion_tokens\":10,\"total_tokens\":60}}\r\n\r\n",
        "data: [DONE]\r\n\r\n",
    );
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::llm::types::FunctionDelta;

    fn ok(items: Vec<Result<StreamEvent, StreamError>>) -> Vec<StreamEvent> {
        items.into_iter().map(|r| r.unwrap()).collect()
    }

    /// Splitting the body at every byte offset, or feeding it one byte at a time, changes
    /// nothing.
    fn assert_chunking_invariant(input: &str) -> Vec<Result<StreamEvent, StreamError>> {
        let input = input.as_bytes();
        let whole = decode_stream(input);
        for cut in 0..=input.len() {
            let mut d = StreamDecoder::new();
            let mut got = d.feed(&input[..cut]);
            got.extend(d.feed(&input[cut..]));
            got.extend(d.finish());
            assert_eq!(got, whole, "split at byte {cut}");
        }
        let mut d = StreamDecoder::new();
        let mut got = Vec::new();
        for b in input {
            got.extend(d.feed(std::slice::from_ref(b)));
        }
        got.extend(d.finish());
        assert_eq!(got, whole, "one byte at a time");
        whole
    }

    #[test]
    fn text_only() {
        let evs = ok(assert_chunking_invariant(TEXT_ONLY));
        assert_eq!(
            evs,
            vec![
                StreamEvent::TextDelta("Hello, ".into()),
                StreamEvent::TextDelta("wörld 🦀".into()),
                StreamEvent::Finish(FinishReason::Stop),
                StreamEvent::Usage(Usage {
                    prompt_tokens: 100,
                    completion_tokens: 20,
                    total_tokens: 120,
                    cost: Some(0.00042),
                    prompt_tokens_details: None,
                }),
                StreamEvent::Done,
            ]
        );
    }

    #[test]
    fn tool_call_fragments_in_order() {
        let evs = ok(assert_chunking_invariant(TWO_TOOLS_CRLF));
        assert_eq!(evs[0], StreamEvent::TextDelta("Let me look.".into()));
        assert_eq!(
            evs[1],
            StreamEvent::ToolCallDelta(ToolCallDelta {
                index: Some(0),
                id: Some("call_a".into()),
                kind: Some("function".into()),
                function: Some(FunctionDelta {
                    name: Some("read_file".into()),
                    arguments: Some(String::new())
                }),
            })
        );
        let deltas = evs
            .iter()
            .filter(|e| matches!(e, StreamEvent::ToolCallDelta(_)))
            .count();
        assert_eq!(deltas, 6);
        assert_eq!(
            evs[evs.len() - 3],
            StreamEvent::Finish(FinishReason::ToolCalls)
        );
        assert!(matches!(
            evs[evs.len() - 2],
            StreamEvent::Usage(Usage { cost: None, .. })
        ));
    }

    #[test]
    fn error_object_mid_stream() {
        let input = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            "data: {\"id\":\"gen-2\",\"error\":{\"code\":502,\"message\":\"Provider disconnected\"},\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},\"finish_reason\":\"error\"}]}\n\n",
            "event: error\ndata: upstream overloaded\n\n",
        );
        let evs = ok(assert_chunking_invariant(input));
        assert_eq!(
            evs,
            vec![
                StreamEvent::TextDelta("Hi".into()),
                StreamEvent::ApiError {
                    message: "Provider disconnected".into(),
                    code: Some("502".into())
                },
                StreamEvent::ApiError {
                    message: "upstream overloaded".into(),
                    code: None
                },
            ]
        );
    }

    #[test]
    fn malformed_chunk_is_an_error() {
        let input = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\ndata: {not json\n\ndata: [DONE]\n\n";
        let items = assert_chunking_invariant(input);
        assert_eq!(items[0], Ok(StreamEvent::TextDelta("a".into())));
        let err = items[1].clone().unwrap_err();
        assert!(err.to_string().contains("malformed stream chunk"), "{err}");
        assert!(err.to_string().contains("{not json"), "{err}");
        assert_eq!(items[2], Ok(StreamEvent::Done));
    }

    #[test]
    fn finish_reasons_normalised() {
        assert_eq!(FinishReason::parse("length"), FinishReason::Length);
        assert_eq!(
            FinishReason::parse("function_call"),
            FinishReason::ToolCalls
        );
        assert_eq!(
            FinishReason::parse("content_filter"),
            FinishReason::ContentFilter
        );
        assert_eq!(
            FinishReason::parse("error"),
            FinishReason::Other("error".into())
        );
    }

    #[test]
    fn long_bad_chunks_are_excerpted_on_a_char_boundary() {
        let data = format!("{{{}", "é".repeat(300));
        let err = events_from_sse(&SseEvent::Message { event: None, data }).unwrap_err();
        let StreamError::MalformedChunk { data, .. } = err;
        assert!(data.len() <= EXCERPT_BYTES + 3 && data.ends_with('…'));
    }
}
