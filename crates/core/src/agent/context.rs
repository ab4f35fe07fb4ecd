//! What of a conversation goes to the model, by tokens: the token estimate, stubs for old tool
//! traffic, fitting each request under the model's window with `max_tokens` set, the compaction
//! split and its summary request, and the window a provider's context-length error reveals.
//!
//! Every transformation here is a pure function of the messages (and of a cut that only moves
//! forward), so the same history gives the same bytes on every step: the prompt-cache prefix
//! stays byte-stable between compactions. See docs/agent.md for the numbers and why.

use serde_json::Value;

use crate::llm::models::ModelLimits;
use crate::llm::types::{AssistantToolCall, ChatRequest, Message, ToolSpec};

/// Bytes per token of the estimate. Measured against o200k_base on code and JSON transcripts
/// (see the test), `len / 3.5` overestimates by 5–30 %: the safe side, and about what Claude's
/// tokenizer (less efficient than o200k on code) really counts.
pub const BYTES_PER_TOKEN: f64 = 3.0;
/// Per-message framing (role, separators) that the text alone does not show.
pub const MESSAGE_OVERHEAD: u32 = 4;
/// Share of the window kept free of the estimate, for tokenizer differences.
pub const SAFETY_MARGIN: f64 = 0.10;
/// Never ask for more output than this per step, whatever the model allows: a step writes one
/// or two files, and a larger reservation only shrinks the room for the prompt.
pub const MAX_OUTPUT_PER_STEP: u32 = 16_384;
/// Compact when the earlier turns (stubbed) take more than this share of the prompt budget
/// left after the system prompt and tools.
pub const COMPACT_AT: f64 = 0.50;
/// After compacting, the recent turns kept verbatim take at most this share.
pub const KEEP_AFTER_COMPACT: f64 = 0.20;
/// Inside a turn: when a request passes the budget, old tool traffic is stubbed until it is
/// under this share (Chef-style two thresholds, so the cut moves rarely and in big steps).
pub const LOW_WATER: f64 = 0.60;
/// The last this many model steps of the current turn always go whole.
pub const KEEP_RECENT_STEPS: usize = 2;
/// Tool results and string arguments up to this size are short already and stay as they are.
pub const STUB_MIN_BYTES: usize = 400;

/// The instruction of the summary step. The scripted test server recognises it by its first
/// line, so keep that line stable.
pub const COMPACT_INSTRUCTION: &str = "Summarize the conversation above for your own later use; \
it will replace the older messages, which you will no longer see.\n\
Write plain text, at most about 400 words, with these parts:\n\
1. What the person asked for, in their words where it matters.\n\
2. What was built: the files created or changed and what each is for.\n\
3. Decisions and conventions (libraries, ports, data shapes, names).\n\
4. What is unfinished, broken or was promised next.\n\
Do not call tools. Do not add anything that did not happen.";

/// The first line of [`COMPACT_INSTRUCTION`], which identifies a summary request.
pub fn compact_marker() -> &'static str {
    COMPACT_INSTRUCTION
        .lines()
        .next()
        .unwrap_or(COMPACT_INSTRUCTION)
}

/// Estimated tokens of a text.
pub fn estimate(s: &str) -> u32 {
    (s.len() as f64 / BYTES_PER_TOKEN).ceil() as u32
}

/// Estimated tokens of one message: its text, its tool calls, and the framing.
pub fn message_tokens(m: &Message) -> u32 {
    MESSAGE_OVERHEAD
        + match m {
            Message::System { content } | Message::User { content } => estimate(content),
            Message::Tool {
                tool_call_id,
                content,
            } => estimate(content) + estimate(tool_call_id),
            Message::Assistant {
                content,
                tool_calls,
            } => {
                content.as_deref().map(estimate).unwrap_or(0)
                    + tool_calls
                        .iter()
                        .map(|c| {
                            estimate(&c.function.arguments)
                                + estimate(&c.function.name)
                                + estimate(&c.id)
                                + MESSAGE_OVERHEAD
                        })
                        .sum::<u32>()
            }
        }
}

/// Estimated tokens of the tool definitions.
pub fn tools_tokens(tools: &[ToolSpec]) -> u32 {
    if tools.is_empty() {
        0
    } else {
        estimate(&serde_json::to_string(tools).unwrap_or_default())
    }
}

/// Estimated prompt tokens of a request.
pub fn request_tokens(req: &ChatRequest) -> u32 {
    tools_tokens(&req.tools) + req.messages.iter().map(message_tokens).sum::<u32>()
}

/// `max_tokens` for each request to a model with these limits.
pub fn max_tokens_for(limits: ModelLimits) -> u32 {
    limits
        .max_output
        .min(MAX_OUTPUT_PER_STEP)
        .min(limits.context_window / 4)
        .max(256)
}

/// Estimated prompt tokens a request may have: the window less the output reservation and
/// the safety margin.
pub fn prompt_budget(limits: ModelLimits) -> u32 {
    let room = limits.context_window.saturating_sub(max_tokens_for(limits)) as f64;
    (room * (1.0 - SAFETY_MARGIN)) as u32
}

/// The window a provider's context-length error states, e.g. OpenRouter's "This endpoint's
/// maximum context length is 32768 tokens. However, you requested about 40000 tokens…",
/// OpenAI's "maximum context length is 8192 tokens", Anthropic's "prompt is too long: 210000
/// tokens > 200000 maximum".
pub fn limit_from_error(message: &str) -> Option<u32> {
    let lower = message.to_ascii_lowercase();
    for key in [
        "context length is",
        "context length of",
        "context window of",
    ] {
        if let Some(i) = lower.find(key) {
            if let Some(n) = first_number(&lower[i + key.len()..]) {
                return Some(n);
            }
        }
    }
    if let Some(i) = lower.find(" maximum") {
        // "... > 200000 maximum"
        let before = lower[..i].trim_end();
        let digits: String = before
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_digit() || *c == ',')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .filter(char::is_ascii_digit)
            .collect();
        if let Ok(n) = digits.parse::<u32>() {
            return Some(n);
        }
    }
    None
}

/// Whether an error message says the request was too long for the model's context.
pub fn is_context_length_error(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    [
        "maximum context length",
        "context length",
        "context_length_exceeded",
        "context window",
        "prompt is too long",
        "too many tokens",
        "reduce the length",
    ]
    .iter()
    .any(|k| lower.contains(k))
}

/// The first decimal number in `s` within a few characters (commas allowed: "32,768").
fn first_number(s: &str) -> Option<u32> {
    let start = s.find(|c: char| c.is_ascii_digit())?;
    if start > 12 {
        return None;
    }
    let digits: String = s[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Stubs

/// "request #N" labels: the 1-based number of the user message each message belongs to.
fn request_numbers(msgs: &[Message]) -> Vec<usize> {
    let mut n = 0;
    msgs.iter()
        .map(|m| {
            if matches!(m, Message::User { .. }) {
                n += 1;
            }
            n.max(1)
        })
        .collect()
}

fn lines_of(s: &str) -> usize {
    s.lines().count()
}

/// What a tool call was about, for its stub: `read_file src/App.tsx`, `run_command npm test`.
fn call_label(c: &AssistantToolCall) -> String {
    let args: Value = serde_json::from_str(&c.function.arguments).unwrap_or(Value::Null);
    let what = ["path", "command", "name", "pattern", "url"]
        .iter()
        .find_map(|k| args.get(*k).and_then(Value::as_str))
        .map(|s| {
            let s: String = s.chars().take(80).collect();
            format!(" {s}")
        })
        .unwrap_or_default();
    format!("{}{what}", c.function.name)
}

/// The stub that replaces an old tool result.
pub fn result_stub(label: &str, content: &str, request: usize) -> String {
    format!(
        "[earlier result of {label}, request #{request}: {} bytes, {} lines; no longer shown. \
         Call the tool again if you need it now.]",
        content.len(),
        lines_of(content)
    )
}

/// A tool call's arguments with every long string (a file's content) and every large array
/// (`edits`) replaced by a stub naming its size, so the call still says what it did to which
/// file. Short arguments come back unchanged; the result is always valid JSON.
pub fn stub_arguments(arguments: &str, request: usize) -> String {
    if arguments.len() <= STUB_MIN_BYTES {
        return arguments.to_string();
    }
    let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(arguments) else {
        return serde_json::json!({
            "stub": format!("[{} bytes of arguments from request #{request}, no longer shown]", arguments.len())
        })
        .to_string();
    };
    for (_, v) in map.iter_mut() {
        let stub = match v {
            Value::String(s) if s.len() > 200 => Some(format!(
                "[{} bytes, {} lines, written in request #{request}; no longer shown: read_file for the current content]",
                s.len(),
                lines_of(s)
            )),
            Value::Array(a) => {
                let bytes = Value::Array(a.clone()).to_string().len();
                (bytes > 200).then(|| {
                    format!(
                        "[{} items, {bytes} bytes, from request #{request}; no longer shown]",
                        a.len()
                    )
                })
            }
            _ => None,
        };
        if let Some(s) = stub {
            *v = Value::String(s);
        }
    }
    Value::Object(map).to_string()
}

/// Stubs the tool traffic of `msgs[range]`: long tool results and long tool-call arguments.
/// Request numbers count the user messages of all of `msgs`, so a message's stub does not
/// depend on where the range ends.
pub fn stub_range(msgs: &mut [Message], range: std::ops::Range<usize>) {
    let numbers = request_numbers(msgs);
    let mut labels: std::collections::HashMap<String, String> = Default::default();
    for (i, m) in msgs.iter().enumerate() {
        if let Message::Assistant { tool_calls, .. } = m {
            for c in tool_calls {
                labels.insert(c.id.clone(), call_label(c));
            }
        }
        if i >= range.end {
            break;
        }
    }
    for i in range {
        let request = numbers[i];
        match &mut msgs[i] {
            Message::Tool {
                tool_call_id,
                content,
            } if content.len() > STUB_MIN_BYTES => {
                let label = labels
                    .get(tool_call_id)
                    .cloned()
                    .unwrap_or_else(|| "a tool".into());
                *content = result_stub(&label, content, request);
            }
            Message::Assistant { tool_calls, .. } => {
                for c in tool_calls {
                    c.function.arguments = stub_arguments(&c.function.arguments, request);
                }
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fitting

/// Where the parts of a request's messages are: `[system][history][this turn]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Layout {
    /// Index of the first message of the current turn (its user message).
    pub turn_start: usize,
    /// Messages before this index inside the turn have their tool traffic stubbed; it only
    /// moves forward, so the stubs of a turn stay byte-stable between steps.
    pub cut: usize,
}

/// What fitting did to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    /// Estimated prompt tokens as sent.
    pub tokens: u32,
    pub budget: u32,
    /// Estimated tokens of the earlier turns (system prompt and tools excluded).
    pub history_tokens: u32,
    /// The earlier turns passed [`COMPACT_AT`]: summarize them before the next step.
    pub compact: bool,
    /// Oldest earlier messages dropped because nothing else was left to cut.
    pub dropped: usize,
}

/// Fits a request under the model's window: sets `max_tokens`, stubs the earlier turns' tool
/// traffic, moves the in-turn cut forward when the request is over budget, and as a last
/// resort drops the oldest earlier exchanges. `layout.turn_start` indexes `req.messages`.
pub fn fit(req: &mut ChatRequest, layout: &mut Layout, limits: ModelLimits) -> Fit {
    let max_tokens = max_tokens_for(limits);
    req.max_tokens = Some(req.max_tokens.map_or(max_tokens, |m| m.min(max_tokens)));
    let budget = prompt_budget(limits);
    let n = req.messages.len();
    let turn_start = layout.turn_start.clamp(1.min(n), n);
    stub_range(&mut req.messages, 1.min(n)..turn_start);

    // Inside the turn: keep the last steps whole, stub up to the cut.
    let steps: Vec<usize> = (turn_start..n)
        .filter(|&i| matches!(req.messages[i], Message::Assistant { .. }))
        .collect();
    let cut_limit = if steps.len() > KEEP_RECENT_STEPS {
        steps[steps.len() - KEEP_RECENT_STEPS]
    } else {
        turn_start
    };
    layout.cut = layout.cut.clamp(turn_start, n);
    if layout.cut > turn_start {
        stub_range(&mut req.messages, turn_start..layout.cut);
    }
    let mut tokens = request_tokens(req);
    if tokens > budget && layout.cut < cut_limit {
        // Move the cut a step at a time until the request is under the low-water mark.
        let target = (budget as f64 * LOW_WATER) as u32;
        let from = layout.cut;
        for &s in steps.iter().filter(|&&s| s > from && s <= cut_limit) {
            stub_range(&mut req.messages, layout.cut.max(turn_start)..s);
            layout.cut = s;
            if request_tokens(req) <= target {
                break;
            }
        }
    }
    tokens = request_tokens(req);

    let system_and_tools =
        tools_tokens(&req.tools) + req.messages.first().map(message_tokens).unwrap_or_default();
    let mut turn_start = turn_start;
    let history_tokens = |req: &ChatRequest, ts: usize| -> u32 {
        req.messages[1.min(req.messages.len())..ts]
            .iter()
            .map(message_tokens)
            .sum()
    };
    let h = history_tokens(req, turn_start);
    let compact =
        turn_start > 2 && h as f64 > budget.saturating_sub(system_and_tools) as f64 * COMPACT_AT;

    // Last resort: drop the oldest earlier exchanges, a whole request at a time.
    let mut dropped = 0;
    while tokens > budget && turn_start > 1 {
        let next_user = (2..turn_start)
            .find(|&i| matches!(req.messages[i], Message::User { .. }))
            .unwrap_or(turn_start);
        let gone = next_user - 1;
        req.messages.drain(1..next_user);
        dropped += gone;
        turn_start -= gone;
        layout.cut = layout.cut.saturating_sub(gone);
        tokens = request_tokens(req);
    }
    layout.turn_start = turn_start;
    Fit {
        tokens,
        budget,
        history_tokens: h,
        compact,
        dropped,
    }
}

// ---------------------------------------------------------------------------------------------
// Compaction

/// Where to split earlier turns for a summary: `history[..keep_from]` is summarized,
/// `history[keep_from..]` stays verbatim. The split is at a user message, so every tool call
/// keeps its result. `None` when there is nothing worth summarizing.
pub fn compaction_split(history: &[Message], limits: ModelLimits, fixed: u32) -> Option<usize> {
    let keep_budget =
        (prompt_budget(limits).saturating_sub(fixed) as f64 * KEEP_AFTER_COMPACT) as u32;
    let mut stubbed = history.to_vec();
    let len = stubbed.len();
    stub_range(&mut stubbed, 0..len);
    let mut kept = 0u32;
    let mut keep_from = history.len();
    for i in (0..history.len()).rev() {
        kept += message_tokens(&stubbed[i]);
        if kept > keep_budget {
            break;
        }
        if matches!(history[i], Message::User { .. }) {
            keep_from = i;
        }
    }
    // The first message is the first request, which is kept anyway: summarizing it alone
    // would gain nothing.
    (keep_from > 1).then_some(keep_from)
}

/// The summary request for `older` (the earlier messages to summarize, stubbed here so the
/// request stays small), without tools: the model can only answer in text.
pub fn compaction_request(
    model: &str,
    system_prompt: &str,
    older: &[Message],
    limits: ModelLimits,
) -> ChatRequest {
    let mut msgs = vec![Message::system(system_prompt)];
    msgs.extend(older.iter().cloned());
    let n = msgs.len();
    stub_range(&mut msgs, 1..n);
    // Strip tool traffic down to text: a tool-less request may not carry tool calls.
    let mut flat: Vec<Message> = vec![msgs[0].clone()];
    let mut transcript = String::new();
    for m in &msgs[1..] {
        match m {
            Message::User { content } => transcript.push_str(&format!("\n[person]\n{content}\n")),
            Message::Assistant {
                content,
                tool_calls,
            } => {
                if let Some(c) = content.as_deref().filter(|c| !c.is_empty()) {
                    transcript.push_str(&format!("\n[agent]\n{c}\n"));
                }
                for c in tool_calls {
                    transcript.push_str(&format!(
                        "[agent called {} {}]\n",
                        c.function.name, c.function.arguments
                    ));
                }
            }
            Message::Tool { content, .. } => {
                transcript.push_str(&format!("[result] {content}\n"));
            }
            Message::System { .. } => {}
        }
    }
    // A transcript larger than the window keeps its end: the latest state matters most.
    let budget_bytes = (prompt_budget(limits)
        .saturating_sub(estimate(system_prompt) + estimate(COMPACT_INSTRUCTION) + 64)
        as f64
        * BYTES_PER_TOKEN) as usize;
    if transcript.len() > budget_bytes {
        let mut start = transcript.len() - budget_bytes;
        while !transcript.is_char_boundary(start) {
            start += 1;
        }
        transcript = format!("[…earlier part omitted…]\n{}", &transcript[start..]);
    }
    flat.push(Message::user(format!(
        "The conversation so far:\n{transcript}\n---\n{COMPACT_INSTRUCTION}"
    )));
    let mut req = ChatRequest::streaming(model, flat, vec![]);
    req.max_tokens = Some(max_tokens_for(limits).min(2_048));
    req
}

/// The two messages that stand for a summarized stretch: the first request verbatim, then the
/// summary as the agent's own recap (so roles keep alternating).
pub fn summary_messages(first_request: &str, summary: &str) -> [Message; 2] {
    [
        Message::user(first_request),
        Message::assistant(
            format!(
                "[Summary of the conversation so far, written when it grew too long for the \
                 context window. The files are the truth: read them for details.]\n{}",
                summary.trim()
            ),
            vec![],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::types::AssistantToolCall;
    use serde_json::json;

    fn call(id: &str, name: &str, args: Value) -> AssistantToolCall {
        AssistantToolCall::new(id, name, args.to_string())
    }

    fn code(n: usize) -> String {
        (0..n)
            .map(|i| {
                format!(
                    "export function item{i}(props: {{ id: number; label: string }}) {{\n  \
                     return <li key={{props.id}} className=\"item\">{{props.label}}</li>;\n}}\n"
                )
            })
            .collect()
    }

    /// One earlier turn: the request, a write, a read, the answer.
    fn turn_msgs(k: usize, size: usize) -> Vec<Message> {
        let body = code(size);
        vec![
            Message::user(format!("request {k}: add a component")),
            Message::assistant(
                "",
                vec![call(
                    &format!("w{k}"),
                    "write_file",
                    json!({"path": format!("src/C{k}.tsx"), "content": body}),
                )],
            ),
            Message::tool(format!("w{k}"), format!("wrote src/C{k}.tsx")),
            Message::assistant(
                "",
                vec![call(
                    &format!("r{k}"),
                    "read_file",
                    json!({"path": format!("src/C{k}.tsx")}),
                )],
            ),
            Message::tool(format!("r{k}"), body),
            Message::assistant(format!("Added C{k}."), vec![]),
        ]
    }

    #[test]
    fn the_estimate_is_near_o200k_and_on_the_safe_side() {
        let bpe = tiktoken_rs::o200k_base().unwrap();
        let samples = [
            code(40),
            serde_json::to_string(&turn_msgs(1, 30)).unwrap(),
            include_str!("turn.rs").to_string(),
            include_str!("../../../../docs/architecture.md").to_string(),
        ];
        for s in samples {
            let real = bpe.encode_ordinary(&s).len() as f64;
            let ratio = estimate(&s) as f64 / real;
            assert!(
                (1.0..=1.6).contains(&ratio),
                "estimate/o200k = {ratio:.2} for a sample of {} bytes",
                s.len()
            );
        }
    }

    #[test]
    fn limits_give_output_reservation_and_budget() {
        let small = ModelLimits {
            context_window: 32_768,
            max_output: 8_192,
        };
        assert_eq!(max_tokens_for(small), 8_192);
        assert_eq!(prompt_budget(small), ((32_768 - 8_192) as f64 * 0.9) as u32);
        let big = ModelLimits {
            context_window: 1_000_000,
            max_output: 64_000,
        };
        assert_eq!(max_tokens_for(big), MAX_OUTPUT_PER_STEP);
        let tiny = ModelLimits {
            context_window: 2_048,
            max_output: 2_048,
        };
        assert_eq!(max_tokens_for(tiny), 512);
    }

    #[test]
    fn errors_reveal_the_window() {
        assert_eq!(
            limit_from_error(
                "This endpoint's maximum context length is 32768 tokens. However, you requested \
                 about 40261 tokens (36165 of text input, 4096 in the output). Please reduce the \
                 length of either one, or use the \"middle-out\" transform to compress your \
                 prompt automatically."
            ),
            Some(32_768)
        );
        assert_eq!(
            limit_from_error("prompt is too long: 210000 tokens > 200,000 maximum"),
            Some(200_000)
        );
        assert_eq!(
            limit_from_error("This model's maximum context length is 8,192 tokens."),
            Some(8_192)
        );
        assert_eq!(limit_from_error("context length exceeded"), None);
        assert_eq!(limit_from_error("rate limited"), None);
        assert!(is_context_length_error("Prompt is too long"));
        assert!(is_context_length_error(
            "This endpoint's maximum context length is 32768 tokens."
        ));
        assert!(!is_context_length_error("No auth credentials found"));
    }

    #[test]
    fn stubs_name_the_tool_the_file_the_size_and_the_request() {
        let mut msgs = turn_msgs(1, 30);
        msgs.extend(turn_msgs(2, 2));
        let before = msgs.clone();
        stub_range(&mut msgs, 0..6);
        // The write's content is a stub; its path stays; the JSON stays valid.
        let Message::Assistant { tool_calls, .. } = &msgs[1] else {
            panic!()
        };
        let args: Value = serde_json::from_str(&tool_calls[0].function.arguments).unwrap();
        assert_eq!(args["path"], "src/C1.tsx");
        let content = args["content"].as_str().unwrap();
        assert!(
            content.starts_with("[")
                && content.contains("request #1")
                && content.contains("90 lines"),
            "{content}"
        );
        // The read's result is a stub naming the tool and file.
        let Message::Tool { content, .. } = &msgs[4] else {
            panic!()
        };
        assert!(
            content.starts_with("[earlier result of read_file src/C1.tsx, request #1:"),
            "{content}"
        );
        // Short results and everything outside the range stay.
        assert_eq!(msgs[2], before[2]);
        assert_eq!(msgs[6..], before[6..]);
        // Deterministic: stubbing again (or a longer range) gives the same bytes.
        let mut again = before.clone();
        stub_range(&mut again, 0..12);
        assert_eq!(again[..6], msgs[..6]);
        let mut twice = msgs.clone();
        stub_range(&mut twice, 0..6);
        assert_eq!(twice, msgs);
        assert_eq!(stub_arguments("not json", 1), "not json");
        let long_bad = "x".repeat(500);
        assert!(stub_arguments(&long_bad, 3).contains("request #3"));
    }

    fn request(history: Vec<Message>, turn: Vec<Message>) -> (ChatRequest, Layout) {
        let mut msgs = vec![Message::system("You are the agent.")];
        msgs.extend(history);
        let turn_start = msgs.len();
        msgs.extend(turn);
        (
            ChatRequest::streaming("m", msgs, vec![]),
            Layout { turn_start, cut: 0 },
        )
    }

    const SMALL: ModelLimits = ModelLimits {
        context_window: 32_768,
        max_output: 4_096,
    };

    #[test]
    fn earlier_turns_are_stubbed_and_max_tokens_is_set() {
        let history: Vec<Message> = (1..=3).flat_map(|k| turn_msgs(k, 30)).collect();
        let (mut req, mut layout) = request(history, vec![Message::user("next")]);
        let whole = request_tokens(&req);
        let f = fit(&mut req, &mut layout, SMALL);
        assert_eq!(req.max_tokens, Some(4_096));
        assert!(f.tokens < whole / 3, "{} vs {whole}", f.tokens);
        assert!(!f.compact && f.dropped == 0);
        assert_eq!(req.messages.last(), Some(&Message::user("next")));
        // A smaller max_tokens from the turn's config is kept.
        let (mut req2, mut l2) = request(vec![], vec![Message::user("x")]);
        req2.max_tokens = Some(100);
        fit(&mut req2, &mut l2, SMALL);
        assert_eq!(req2.max_tokens, Some(100));
    }

    #[test]
    fn a_long_turn_moves_its_cut_forward_and_keeps_it() {
        // One turn that reads a 10 KB file per step.
        let mut turn = vec![Message::user("build it")];
        let (mut req, mut layout) = request(vec![], vec![]);
        let body = code(80);
        let mut sent = vec![];
        for k in 0..14 {
            turn.push(Message::assistant(
                "",
                vec![call(
                    &format!("r{k}"),
                    "read_file",
                    json!({"path": format!("f{k}")}),
                )],
            ));
            turn.push(Message::tool(format!("r{k}"), body.clone()));
            let (r, _) = request(vec![], turn.clone());
            req = r;
            let f = fit(&mut req, &mut layout, SMALL);
            assert!(
                f.tokens <= f.budget,
                "step {k}: {} > {}",
                f.tokens,
                f.budget
            );
            sent.push(req.messages.clone());
        }
        assert!(layout.cut > layout.turn_start);
        // The last two steps always go whole.
        let n = req.messages.len();
        assert_eq!(req.messages[n - 1], Message::tool("r13", body.clone()));
        assert_eq!(req.messages[n - 3], Message::tool("r12", body.clone()));
        // Between cut moves, each request starts with the previous one (cache-stable prefix).
        let stable = sent
            .windows(2)
            .filter(|w| w[1].len() > w[0].len() && w[1][..w[0].len()] == w[0][..])
            .count();
        assert!(stable >= 10, "only {stable} of 13 steps kept the prefix");
    }

    #[test]
    fn a_large_history_asks_for_compaction_and_splits_at_a_request() {
        let history: Vec<Message> = (1..=100).flat_map(|k| turn_msgs(k, 8)).collect();
        let (mut req, mut layout) = request(history.clone(), vec![Message::user("next")]);
        let f = fit(&mut req, &mut layout, SMALL);
        assert!(f.compact, "{f:?}");
        assert!(f.tokens <= f.budget, "{f:?}");
        let keep = compaction_split(&history, SMALL, 500).unwrap();
        assert!(keep > 1 && keep < history.len());
        assert!(matches!(history[keep], Message::User { .. }));
        let c = compaction_request("m", "sys", &history[..keep], SMALL);
        assert!(c.tools.is_empty());
        assert!(
            request_tokens(&c) <= prompt_budget(SMALL),
            "{}",
            request_tokens(&c)
        );
        let Message::User { content } = c.messages.last().unwrap() else {
            panic!()
        };
        assert!(content.contains(compact_marker()));
        assert!(content.contains("[agent called write_file"));
        let [u, a] = summary_messages("request 1: add a component", "Built C1..C9.");
        assert_eq!(u, Message::user("request 1: add a component"));
        assert!(
            matches!(a, Message::Assistant { content: Some(c), .. } if c.ends_with("Built C1..C9."))
        );
        // Nothing to summarize in a short history.
        assert_eq!(compaction_split(&turn_msgs(1, 2), SMALL, 500), None);
    }

    #[test]
    fn an_oversized_history_drops_whole_requests_as_a_last_resort() {
        let history: Vec<Message> = (1..=6)
            .map(|k| Message::user(format!("{k}: {}", "word ".repeat(8_000))))
            .flat_map(|u| [u, Message::assistant("ok", vec![])])
            .collect();
        let (mut req, mut layout) = request(history, vec![Message::user("now")]);
        let f = fit(&mut req, &mut layout, SMALL);
        assert!(f.dropped > 0 && f.tokens <= f.budget, "{f:?}");
        assert!(matches!(req.messages[1], Message::User { .. }));
        assert_eq!(req.messages.last(), Some(&Message::user("now")));
        assert_eq!(layout.turn_start, req.messages.len() - 1);
    }
}
