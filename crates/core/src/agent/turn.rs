//! One agent turn as a pure state machine: from the person's message, through model steps and
//! tool calls, to a final answer or a stop. The Worker's Durable Object drives it and does the
//! I/O (streaming the model, running tools); every decision lives here.
//!
//! The loop, for the driver:
//! 1. [`Turn::start_step`] gives the request to stream; [`Turn::request`] rebuilds it for a retry.
//! 2. [`Turn::on_outcome`] takes the accumulated [`Outcome`] and says what to do ([`Next`]).
//! 3. For [`Next::ExecuteTools`], run each call whose `parsed` is `Ok` and report it with
//!    [`Turn::on_tool_result`] (any order); calls the model got wrong are already answered.
//!    Then go to 1. [`Next::ContinueAfterLength`] also goes to 1; every other `Next` ends the turn.
//!
//! Steps come in budgets: the turn's first part has [`TurnConfig::max_steps`], and each
//! [`Turn::resume_with`] (a verify-fix round) starts a fresh budget of its own, so fix rounds
//! never starve. The last step of a budget is a summary step: tool calls are switched off
//! (`tool_choice: "none"`) and the model is asked to say what it did and what is left, which
//! becomes the turn's last message ([`Next::StepCap`]). One step before the loop detector would
//! stop the turn, the repeated call's result carries a warning. A reply cut by the output-token
//! limit keeps its complete tool calls (only the cut one is dropped) and the turn continues, at
//! most [`TurnConfig::max_length_continuations`] times per budget.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use super::tools::{parse_call, tool_specs, ToolArgs, ToolError};
use crate::llm::accumulate::{DroppedToolCall, Outcome, ToolCall};
use crate::llm::stream::FinishReason;
use crate::llm::types::{
    AssistantToolCall, ChatRequest, Message, StreamOptions, ToolChoice, ToolChoiceMode,
};

#[derive(Debug, Clone, PartialEq)]
pub struct TurnConfig {
    pub model: String,
    /// Model requests in the turn's first part; the last of them is the summary step.
    pub max_steps: u32,
    /// The same tool with the same arguments this many times in a turn is a loop.
    pub stuck_threshold: u32,
    /// Tool results longer than this are cut, with a note saying so.
    pub max_tool_output_bytes: usize,
    /// How often per step budget a reply cut by the output-token limit is continued (its complete
    /// tool calls run, the model is told where it was cut); 0 ends the turn at the first cut.
    pub max_length_continuations: u32,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
}

/// Building an app from a template takes 20-35 steps with current models (plan, backend,
/// tests, frontend, checks, preview); 40 leaves room without letting a lost model wander long.
pub const DEFAULT_MAX_STEPS: u32 = 40;
/// Steps for each verify-fix round ([`Turn::resume_with`]): enough to read the errors, fix a few
/// files and re-run the checks.
pub const DEFAULT_FIX_ROUND_STEPS: u32 = 15;
pub const DEFAULT_MAX_LENGTH_CONTINUATIONS: u32 = 2;
pub const DEFAULT_STUCK_THRESHOLD: u32 = 3;
/// About 5k tokens: enough for most files and build logs without drowning the context.
pub const DEFAULT_MAX_TOOL_OUTPUT_BYTES: usize = 20_000;

impl TurnConfig {
    pub fn new(model: impl Into<String>) -> Self {
        TurnConfig {
            model: model.into(),
            max_steps: DEFAULT_MAX_STEPS,
            stuck_threshold: DEFAULT_STUCK_THRESHOLD,
            max_tool_output_bytes: DEFAULT_MAX_TOOL_OUTPUT_BYTES,
            max_length_continuations: DEFAULT_MAX_LENGTH_CONTINUATIONS,
            max_tokens: None,
            temperature: None,
        }
    }
}

/// A tool call from the model, checked against the registry.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
    /// `Err` calls are already answered with the error; only run the `Ok` ones.
    pub parsed: Result<ToolArgs, ToolError>,
}

/// What the driver does after a model step.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Run the `Ok` calls and report each with [`Turn::on_tool_result`], then start a step.
    ExecuteTools(Vec<PendingCall>),
    /// The reply was cut by the output-token limit and the model was asked to go on: start a
    /// step.
    ContinueAfterLength,
    /// The model answered without calling tools: the turn is over.
    Done { text: String },
    /// A step budget ran out: the last step was the summary step, and `summary` is the model's
    /// answer to it (what it did and what is left), already streamed as its last message.
    /// Tool calls it made anyway were not run.
    StepCap {
        steps: u32,
        message: String,
        summary: String,
    },
    /// The model repeated one call; it was not run again.
    Stuck {
        tool: String,
        arguments: String,
        message: String,
    },
    /// The output-token limit cut the reply once more than the budget allows; `text` is what
    /// arrived, and its tool calls were not run.
    Length { text: String, message: String },
    /// The provider's content filter stopped the reply.
    ContentFilter { text: String, message: String },
}

/// Tokens and cost of one turn, summed over its steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TurnUsage {
    pub steps: u32,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// Only when the provider reports cost (OpenRouter).
    pub cost: Option<f64>,
}

/// The driver called the state machine out of order (a bug in the caller, not the model).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TurnError {
    #[error("the turn has ended; start a new turn for the next message")]
    Finished,
    #[error("a model step is in progress; pass its outcome to on_outcome first")]
    StepInProgress,
    #[error("no model step is in progress; call start_step first")]
    NoStepInProgress,
    #[error("tool results are still missing for calls {0}; report each with on_tool_result")]
    ResultsPending(String),
    #[error("no tool call with id {0:?} is waiting for a result")]
    UnknownCall(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ready,
    AwaitingOutcome,
    AwaitingResults,
    Finished,
}

#[derive(Debug)]
pub struct Turn {
    config: TurnConfig,
    messages: Vec<Message>,
    /// Index of this turn's user message in `messages`.
    turn_start: usize,
    phase: Phase,
    usage: TurnUsage,
    /// How often each (tool, canonical arguments) was called since the project last changed.
    seen: HashMap<String, u32>,
    /// Results of the current step's calls, in call order.
    slots: Vec<Slot>,
    /// Warnings for calls of the current step that were repeated once short of the loop limit.
    warnings: HashMap<String, String>,
    /// Said to the model (as a user message) once the current step's results are in.
    note_after_results: Option<String>,
    /// The step budget in progress.
    budget: Budget,
}

#[derive(Debug)]
struct Slot {
    id: String,
    /// `None` until reported.
    result: Option<String>,
    /// Appended to the result (after truncation).
    warning: Option<String>,
}

/// One step budget: the turn's first part or one fix round.
#[derive(Debug)]
struct Budget {
    /// `usage.steps` when it began.
    start: u32,
    steps: u32,
    /// "one turn" or "a fix round", for messages.
    what: &'static str,
    /// The summary step has started.
    summarizing: bool,
    /// Replies cut by the output-token limit that were continued.
    length_continuations: u32,
}

impl Budget {
    fn new(start: u32, steps: u32, what: &'static str) -> Budget {
        Budget {
            start,
            steps: steps.max(1),
            what,
            summarizing: false,
            length_continuations: 0,
        }
    }
}

impl Turn {
    /// Starts a turn. `system_prompt` comes from templates/; `history` is the earlier turns
    /// (any system message in it is replaced by `system_prompt`).
    pub fn new(
        config: TurnConfig,
        system_prompt: &str,
        history: Vec<Message>,
        user_message: &str,
    ) -> Turn {
        let mut messages = vec![Message::system(system_prompt)];
        messages.extend(
            history
                .into_iter()
                .filter(|m| !matches!(m, Message::System { .. })),
        );
        let turn_start = messages.len();
        messages.push(Message::user(user_message));
        let budget = Budget::new(0, config.max_steps, "one turn");
        Turn {
            config,
            messages,
            turn_start,
            phase: Phase::Ready,
            usage: TurnUsage::default(),
            seen: HashMap::new(),
            slots: Vec::new(),
            warnings: HashMap::new(),
            note_after_results: None,
            budget,
        }
    }

    pub fn config(&self) -> &TurnConfig {
        &self.config
    }

    /// The whole conversation, system prompt first.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// What this turn added (the user message onwards): what the Durable Object persists.
    pub fn new_messages(&self) -> &[Message] {
        &self.messages[self.turn_start..]
    }

    pub fn usage(&self) -> TurnUsage {
        self.usage
    }

    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished
    }

    /// Begins the next model step and returns its request.
    pub fn start_step(&mut self) -> Result<ChatRequest, TurnError> {
        match self.phase {
            Phase::Finished => return Err(TurnError::Finished),
            Phase::AwaitingOutcome => return Err(TurnError::StepInProgress),
            Phase::AwaitingResults => {
                let missing: Vec<&str> = self
                    .slots
                    .iter()
                    .filter(|s| s.result.is_none())
                    .map(|s| s.id.as_str())
                    .collect();
                return Err(TurnError::ResultsPending(missing.join(", ")));
            }
            Phase::Ready => {}
        }
        self.phase = Phase::AwaitingOutcome;
        self.usage.steps += 1;
        let b = &mut self.budget;
        if !b.summarizing && self.usage.steps - b.start >= b.steps {
            b.summarizing = true;
            let instruction = summary_instruction(b.steps, b.what);
            self.messages.push(Message::user(instruction));
        }
        Ok(self.request())
    }

    /// Whether the step in progress (or the next one) is the summary step of its budget.
    pub fn is_summarizing(&self) -> bool {
        self.budget.summarizing
    }

    /// The request for the current state, e.g. to retry a step whose stream failed. The summary
    /// step keeps the tools (some providers reject a history with tool calls but no tools) and
    /// switches them off with `tool_choice: "none"`.
    pub fn request(&self) -> ChatRequest {
        ChatRequest {
            tool_choice: self
                .budget
                .summarizing
                .then_some(ToolChoice::Mode(ToolChoiceMode::None)),
            max_tokens: self.config.max_tokens,
            temperature: self.config.temperature,
            stream_options: Some(StreamOptions {
                include_usage: true,
            }),
            ..ChatRequest::streaming(
                self.config.model.clone(),
                self.messages.clone(),
                tool_specs(),
            )
        }
    }

    /// Takes the outcome of the step in progress and decides what happens next.
    pub fn on_outcome(&mut self, outcome: Outcome) -> Result<Next, TurnError> {
        match self.phase {
            Phase::AwaitingOutcome => {}
            Phase::Finished => return Err(TurnError::Finished),
            _ => return Err(TurnError::NoStepInProgress),
        }
        self.add_usage(&outcome);
        let Outcome {
            text,
            tool_calls,
            dropped_tool_calls,
            finish_reason,
            ..
        } = outcome;

        if self.budget.summarizing {
            return Ok(self.on_summary(text, tool_calls));
        }

        match finish_reason {
            FinishReason::Length => Ok(self.on_length(text, tool_calls, &dropped_tool_calls)),
            FinishReason::ContentFilter => {
                self.push_text(&text);
                self.phase = Phase::Finished;
                Ok(Next::ContentFilter {
                    text,
                    message: "The model provider's content filter stopped the reply.".to_string(),
                })
            }
            _ if tool_calls.is_empty() => {
                self.push_text(&text);
                self.phase = Phase::Finished;
                Ok(Next::Done { text })
            }
            _ => Ok(self.on_tool_calls(text, tool_calls)),
        }
    }

    /// The answer to the summary step ends the turn; calls made despite `tool_choice: "none"`
    /// are answered as not run.
    fn on_summary(&mut self, text: String, calls: Vec<ToolCall>) -> Next {
        let steps = self.usage.steps - self.budget.start;
        if calls.is_empty() {
            self.push_text(&text);
            self.phase = Phase::Finished;
        } else {
            let pending = self.check_calls(calls);
            self.messages.push(Message::assistant(
                text.clone(),
                pending.iter().map(echo_call).collect(),
            ));
            self.close_unanswered(
                &pending,
                &format!("the step limit for {} was reached", self.budget.what),
            );
        }
        let what = self.budget.what;
        let summary_note = if text.trim().is_empty() {
            "The model gave no summary."
        } else {
            "The agent's last message says what it did and what is left."
        };
        Next::StepCap {
            steps,
            message: format!(
                "Stopped after {steps} steps, the limit for {what}. {summary_note} Send a \
                 message to let the agent carry on."
            ),
            summary: text,
        }
    }

    /// A reply cut by the output-token limit: its complete calls run (the accumulator already
    /// dropped the cut one), and the model is told where it was cut and continues, up to the
    /// budget's limit.
    fn on_length(
        &mut self,
        text: String,
        calls: Vec<ToolCall>,
        dropped: &[DroppedToolCall],
    ) -> Next {
        let cut_call = dropped
            .first()
            .map(|c| format!(" in the middle of a {} call, which was not run", c.name))
            .unwrap_or_default();
        if self.budget.length_continuations < self.config.max_length_continuations {
            self.budget.length_continuations += 1;
            let ran = if calls.is_empty() {
                ""
            } else {
                " The complete tool calls before the cut ran; their results are above."
            };
            let note = format!(
                "Your last reply was cut off by the output-token limit{cut_call}.{ran} Continue \
                 from where you stopped. Write large files in several smaller steps (write_file \
                 a first part, then edit_file to add the rest)."
            );
            if calls.is_empty() {
                self.push_text(&text);
                self.messages.push(Message::user(note));
                self.phase = Phase::Ready;
                return Next::ContinueAfterLength;
            }
            self.note_after_results = Some(note);
            return self.on_tool_calls(text, calls);
        }
        if calls.is_empty() {
            self.push_text(&text);
            self.phase = Phase::Finished;
        } else {
            let pending = self.check_calls(calls);
            self.messages.push(Message::assistant(
                text.clone(),
                pending.iter().map(echo_call).collect(),
            ));
            self.close_unanswered(&pending, "the reply was cut off by the output-token limit");
        }
        let n = self.budget.length_continuations;
        Next::Length {
            text,
            message: format!(
                "The model's reply was cut off by its output-token limit{cut_call}{}. Ask it \
                 to continue, or to work in smaller pieces.",
                if n > 0 {
                    format!(", after {n} continuation{}", if n == 1 { "" } else { "s" })
                } else {
                    String::new()
                }
            ),
        }
    }

    fn check_calls(&self, calls: Vec<ToolCall>) -> Vec<PendingCall> {
        calls
            .into_iter()
            .map(|c| PendingCall {
                parsed: parse_call(&c.name, &c.arguments),
                id: c.id,
                name: c.name,
                arguments: c.arguments,
            })
            .collect()
    }

    fn on_tool_calls(&mut self, text: String, calls: Vec<ToolCall>) -> Next {
        let pending = self.check_calls(calls);
        self.messages.push(Message::assistant(
            text,
            pending.iter().map(echo_call).collect(),
        ));

        if let Some(c) = self.find_repeat(&pending) {
            let (tool, arguments) = (c.name.clone(), c.arguments.clone());
            let n = self.config.stuck_threshold;
            self.warnings.clear();
            self.note_after_results = None;
            self.close_unanswered(
                &pending,
                &format!("{tool} was called with these arguments {n} times; the turn was stopped"),
            );
            return Next::Stuck {
                message: format!(
                    "Stopped: the agent called {tool} with the same arguments {n} times in this \
                     turn without changing anything in between, so it looks stuck. Send a \
                     message with more guidance to continue."
                ),
                tool,
                arguments,
            };
        }

        self.slots = pending
            .iter()
            .map(|c| {
                let warning = self.warnings.remove(&c.id);
                let answered = c.parsed.as_ref().err().map(|e| {
                    let mut r = format!("error: {e}");
                    r.push_str(warning.as_deref().unwrap_or(""));
                    r
                });
                Slot {
                    id: c.id.clone(),
                    result: answered,
                    warning,
                }
            })
            .collect();
        self.warnings.clear();
        self.phase = Phase::AwaitingResults;
        self.flush_if_complete();
        Next::ExecuteTools(pending)
    }

    /// Counts each call and returns the first that reached the threshold; a call one short of it
    /// gets a warning for its result. A call that may change the project resets the other
    /// counts: re-reading a file or re-running the tests after an edit is progress, not a loop.
    fn find_repeat<'a>(&mut self, calls: &'a [PendingCall]) -> Option<&'a PendingCall> {
        for c in calls {
            let sig = format!("{}\u{0}{}", c.name, canonical_arguments(&c.arguments));
            let n = {
                let n = self.seen.entry(sig.clone()).or_insert(0);
                *n += 1;
                *n
            };
            let limit = self.config.stuck_threshold;
            if n >= limit {
                return Some(c);
            }
            if n + 1 == limit {
                self.warnings
                    .insert(c.id.clone(), stuck_warning(&c.name, n, limit));
            }
            if c.parsed.as_ref().is_ok_and(ToolArgs::changes_project) {
                self.seen.retain(|k, _| *k == sig);
            }
        }
        None
    }

    /// Records the result of one call. Long output is cut to the configured cap.
    pub fn on_tool_result(&mut self, call_id: &str, content: &str) -> Result<(), TurnError> {
        match self.phase {
            Phase::AwaitingResults => {}
            Phase::Finished => return Err(TurnError::Finished),
            _ => return Err(TurnError::UnknownCall(call_id.to_string())),
        }
        let cap = self.config.max_tool_output_bytes;
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.id == call_id && s.result.is_none())
            .ok_or_else(|| TurnError::UnknownCall(call_id.to_string()))?;
        let mut result = truncate_output(content, cap);
        result.push_str(slot.warning.as_deref().unwrap_or(""));
        slot.result = Some(result);
        self.flush_if_complete();
        Ok(())
    }

    /// Reopens a finished turn to hand the model new information as a user message (the
    /// platform's verification found errors), with a fresh budget of `steps` steps (the last
    /// one a summary step) and of length continuations. Loop detection keeps counting across
    /// the resumed part.
    pub fn resume_with(&mut self, message: &str, steps: u32) -> Result<(), TurnError> {
        if self.phase != Phase::Finished {
            return Err(TurnError::StepInProgress);
        }
        self.messages.push(Message::user(message));
        self.budget = Budget::new(self.usage.steps, steps, "a fix round");
        self.phase = Phase::Ready;
        Ok(())
    }

    /// Ends the turn early (the person pressed stop, or the model could not be reached).
    /// Calls still waiting get a "not run" result and `partial_text` of an interrupted step is
    /// kept, so the history stays valid for the next turn.
    pub fn cancel(&mut self, reason: &str, partial_text: &str) {
        match self.phase {
            Phase::AwaitingOutcome => self.push_text(partial_text),
            Phase::AwaitingResults => {
                self.note_after_results = None;
                for s in &mut self.slots {
                    s.result
                        .get_or_insert_with(|| format!("[not run: {reason}]"));
                }
                self.flush_if_complete();
            }
            Phase::Ready | Phase::Finished => {}
        }
        self.phase = Phase::Finished;
    }

    fn add_usage(&mut self, o: &Outcome) {
        if let Some(u) = o.usage {
            self.usage.prompt_tokens += u.prompt_tokens;
            self.usage.completion_tokens += u.completion_tokens;
            self.usage.total_tokens += u.total_tokens;
            if let Some(c) = u.cost {
                *self.usage.cost.get_or_insert(0.0) += c;
            }
        }
    }

    /// Appends the model's text; an empty assistant message is skipped because several
    /// providers reject one.
    fn push_text(&mut self, text: &str) {
        if !text.is_empty() {
            self.messages.push(Message::assistant(text, Vec::new()));
        }
    }

    /// Answers every call of a step that will not run, and ends the turn.
    fn close_unanswered(&mut self, calls: &[PendingCall], reason: &str) {
        for c in calls {
            let content = match &c.parsed {
                Err(e) => format!("error: {e}"),
                Ok(_) => format!("[not run: {reason}]"),
            };
            self.messages.push(Message::tool(c.id.clone(), content));
        }
        self.phase = Phase::Finished;
    }

    /// Once every call of the step has a result, appends them in call order.
    fn flush_if_complete(&mut self) {
        if self.slots.iter().any(|s| s.result.is_none()) {
            return;
        }
        for s in std::mem::take(&mut self.slots) {
            self.messages
                .push(Message::tool(s.id, s.result.unwrap_or_default()));
        }
        if let Some(note) = self.note_after_results.take() {
            self.messages.push(Message::user(note));
        }
        if self.phase == Phase::AwaitingResults {
            self.phase = Phase::Ready;
        }
    }
}

/// What the model reads before the last step of a budget.
fn summary_instruction(steps: u32, what: &str) -> String {
    format!(
        "[platform] This is the last of the {steps} steps allowed for {what}, and tools are \
         switched off for it. Do not call tools. Reply to the person with a short summary: what \
         you did, what works now, and what is left to do or still broken (with the file or \
         command to look at), so they can tell you to carry on."
    )
}

/// Appended to the result of a call repeated once short of the loop limit.
fn stuck_warning(tool: &str, n: u32, limit: u32) -> String {
    format!(
        "\n\n[platform warning: this is call {n} of {tool} with exactly these arguments in this \
         turn, with nothing changed in between. Call {limit} stops the turn. Use the result you \
         already have, or try something different.]"
    )
}

/// The call as echoed in the history. Quirk: arguments that are not valid JSON are replaced by
/// `{}` there, because Anthropic routes parse them and reject the whole next request; the tool
/// result already tells the model what was wrong.
fn echo_call(c: &PendingCall) -> AssistantToolCall {
    let args = if serde_json::from_str::<Value>(&c.arguments).is_ok() {
        c.arguments.clone()
    } else {
        "{}".to_string()
    };
    AssistantToolCall::new(c.id.clone(), c.name.clone(), args)
}

/// Arguments with object keys sorted and whitespace dropped, so `{"a":1,"b":2}` and
/// `{ "b": 2, "a": 1 }` count as the same call.
fn canonical_arguments(arguments: &str) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&m[k], out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v) => {
            let mut s = String::new();
            write(&v, &mut s);
            s
        }
        Err(_) => arguments.trim().to_string(),
    }
}

/// Cuts `content` to at most `cap` bytes (on a character boundary) and says so in the text.
pub fn truncate_output(content: &str, cap: usize) -> String {
    if content.len() <= cap {
        return content.to_string();
    }
    let mut end = cap;
    while !content.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n[output truncated: showed first {end} of {} bytes]",
        &content[..end],
        content.len()
    )
}

/// Keeps the last `cap` bytes of `content` (on a character boundary) and says how much was cut:
/// the end of a command's log is where its errors are.
pub fn keep_tail(content: &str, cap: usize) -> String {
    if content.len() <= cap {
        return content.to_string();
    }
    let mut cut = content.len() - cap;
    while !content.is_char_boundary(cut) {
        cut += 1;
    }
    format!("[first {cut} bytes of output omitted]\n{}", &content[cut..])
}

#[cfg(test)]
mod tests {
    #[test]
    fn keep_tail_keeps_the_end_on_a_character_boundary() {
        assert_eq!(keep_tail("short", 10), "short");
        assert_eq!(
            keep_tail("0123456789", 4),
            "[first 6 bytes of output omitted]\n6789"
        );
        // "é" is two bytes: a cut inside it moves forward to the next boundary.
        let s = "aéz";
        assert_eq!(keep_tail(s, 2), "[first 3 bytes of output omitted]\nz");
    }

    use super::*;
    use crate::llm::accumulate::outcome_from_bytes;
    use crate::llm::stream::fixtures::{TEXT_ONLY, TWO_TOOLS_CRLF};
    use crate::llm::types::Usage;

    fn call(id: &str, name: &str, args: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: args.into(),
        }
    }

    fn tools_outcome(calls: Vec<ToolCall>) -> Outcome {
        Outcome {
            text: String::new(),
            tool_calls: calls,
            dropped_tool_calls: vec![],
            finish_reason: FinishReason::ToolCalls,
            usage: Some(Usage {
                prompt_tokens: 10,
                completion_tokens: 5,
                total_tokens: 15,
                cost: None,
                prompt_tokens_details: None,
            }),
        }
    }

    fn text_outcome(text: &str, finish: FinishReason) -> Outcome {
        Outcome {
            text: text.into(),
            tool_calls: vec![],
            dropped_tool_calls: vec![],
            finish_reason: finish,
            usage: None,
        }
    }

    fn turn(config: TurnConfig) -> Turn {
        Turn::new(
            config,
            "You are the open-replit agent.",
            vec![
                Message::system("old prompt"),
                Message::user("earlier"),
                Message::assistant("ok", vec![]),
            ],
            "Build a todo app",
        )
    }

    fn roles(msgs: &[Message]) -> Vec<&'static str> {
        msgs.iter()
            .map(|m| match m {
                Message::System { .. } => "system",
                Message::User { .. } => "user",
                Message::Assistant { .. } => "assistant",
                Message::Tool { .. } => "tool",
            })
            .collect()
    }

    fn expect_tools(next: Next) -> Vec<PendingCall> {
        match next {
            Next::ExecuteTools(c) => c,
            other => panic!("expected tools, got {other:?}"),
        }
    }

    #[test]
    fn request_shape() {
        let mut t = turn(TurnConfig {
            max_tokens: Some(4096),
            ..TurnConfig::new("m")
        });
        let req = t.start_step().unwrap();
        assert_eq!(req.model, "m");
        assert!(req.stream);
        assert_eq!(
            req.stream_options,
            Some(StreamOptions {
                include_usage: true
            })
        );
        assert_eq!(req.max_tokens, Some(4096));
        assert_eq!(req.tools.len(), crate::agent::tools::TOOLS.len());
        assert_eq!(
            req.messages[0],
            Message::system("You are the open-replit agent.")
        );
        assert_eq!(
            roles(&req.messages),
            ["system", "user", "assistant", "user"]
        );
        assert_eq!(t.request(), req, "a retry sends the same request");
        assert_eq!(t.start_step(), Err(TurnError::StepInProgress));
    }

    #[test]
    fn two_tool_steps_then_stop() {
        let mut t = turn(TurnConfig::new("m"));
        t.start_step().unwrap();
        // Step 1: the recorded stream with two interleaved calls.
        let calls = expect_tools(
            t.on_outcome(outcome_from_bytes(TWO_TOOLS_CRLF.as_bytes()).unwrap())
                .unwrap(),
        );
        assert_eq!(
            calls.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            ["call_a", "call_b"]
        );
        assert!(matches!(&calls[1].parsed, Ok(ToolArgs::WriteFile(w)) if w.content == "hé🦀"));
        // The next step cannot start before every result is in.
        assert_eq!(
            t.start_step(),
            Err(TurnError::ResultsPending("call_a, call_b".into()))
        );
        // Results arrive out of order but are appended in call order.
        t.on_tool_result("call_b", "wrote b.txt").unwrap();
        assert!(matches!(t.start_step(), Err(TurnError::ResultsPending(ids)) if ids == "call_a"));
        t.on_tool_result("call_a", "contents of a").unwrap();
        assert_eq!(
            t.on_tool_result("call_a", "again"),
            Err(TurnError::UnknownCall("call_a".into()))
        );

        // Step 2: one call.
        t.start_step().unwrap();
        let calls = expect_tools(
            t.on_outcome(tools_outcome(vec![call("c3", "list_files", "{}")]))
                .unwrap(),
        );
        t.on_tool_result(&calls[0].id, "a.txt\nb.txt").unwrap();

        // Step 3: the answer.
        t.start_step().unwrap();
        let next = t
            .on_outcome(outcome_from_bytes(TEXT_ONLY.as_bytes()).unwrap())
            .unwrap();
        assert_eq!(
            next,
            Next::Done {
                text: "Hello, wörld 🦀".into()
            }
        );
        assert!(t.is_finished());
        assert_eq!(t.start_step(), Err(TurnError::Finished));

        let new = t.new_messages();
        assert_eq!(
            roles(new),
            [
                "user",
                "assistant",
                "tool",
                "tool",
                "assistant",
                "tool",
                "assistant"
            ]
        );
        assert_eq!(new[2], Message::tool("call_a", "contents of a"));
        assert_eq!(new[3], Message::tool("call_b", "wrote b.txt"));
        assert_eq!(
            new[1],
            Message::assistant(
                "Let me look.",
                vec![
                    AssistantToolCall::new("call_a", "read_file", r#"{"path":"a.txt"}"#),
                    AssistantToolCall::new(
                        "call_b",
                        "write_file",
                        r#"{"path":"b.txt","content":"hé🦀"}"#
                    ),
                ]
            )
        );
        let u = t.usage();
        assert_eq!(u.steps, 3);
        assert_eq!(u.prompt_tokens, 50 + 10 + 100);
        assert_eq!(u.completion_tokens, 10 + 5 + 20);
        assert_eq!(u.total_tokens, 60 + 15 + 120);
        assert_eq!(u.cost, Some(0.00042));
    }

    #[test]
    fn malformed_arguments_go_back_to_the_model() {
        let mut t = turn(TurnConfig::new("m"));
        t.start_step().unwrap();
        let calls = expect_tools(
            t.on_outcome(tools_outcome(vec![
                call("c1", "write_file", r#"{"path":"a.py","content":"x"#),
                call("c2", "open_browser", "{}"),
                call("c3", "read_file", r#"{"path":"../../etc/passwd"}"#),
            ]))
            .unwrap(),
        );
        assert!(calls.iter().all(|c| c.parsed.is_err()));
        // Nothing to run: the loop continues straight away.
        let req = t.start_step().unwrap();
        let n = req.messages.len();
        let Message::Assistant { tool_calls, .. } = &req.messages[n - 4] else {
            panic!()
        };
        assert_eq!(
            tool_calls[0].function.arguments, "{}",
            "invalid JSON is not echoed"
        );
        let Message::Tool { content, .. } = &req.messages[n - 3] else {
            panic!()
        };
        assert!(
            content.starts_with("error: the arguments for write_file are not valid JSON"),
            "{content}"
        );
        let Message::Tool { content, .. } = &req.messages[n - 2] else {
            panic!()
        };
        assert!(
            content.contains("no tool named \"open_browser\""),
            "{content}"
        );
        let Message::Tool { content, .. } = &req.messages[n - 1] else {
            panic!()
        };
        assert!(content.contains("'..'"), "{content}");

        // The model corrects itself and finishes.
        let calls = expect_tools(
            t.on_outcome(tools_outcome(vec![call(
                "c4",
                "write_file",
                r#"{"path":"a.py","content":"x"}"#,
            )]))
            .unwrap(),
        );
        assert!(calls[0].parsed.is_ok());
        t.on_tool_result("c4", "ok").unwrap();
        t.start_step().unwrap();
        assert_eq!(
            t.on_outcome(text_outcome("Done.", FinishReason::Stop)),
            Ok(Next::Done {
                text: "Done.".into()
            })
        );
    }

    /// Runs one step whose reply is `calls`, answering each with "ok".
    fn tool_step(t: &mut Turn, calls: Vec<ToolCall>) -> ChatRequest {
        let req = t.start_step().unwrap();
        let c = expect_tools(t.on_outcome(tools_outcome(calls)).unwrap());
        for c in c.iter().filter(|c| c.parsed.is_ok()) {
            t.on_tool_result(&c.id, "ok").unwrap();
        }
        req
    }

    #[test]
    fn the_last_step_of_the_budget_is_a_tool_less_summary() {
        let mut t = turn(TurnConfig {
            max_steps: 3,
            ..TurnConfig::new("m")
        });
        for i in 0..2 {
            let req = tool_step(
                &mut t,
                vec![call(
                    &format!("c{i}"),
                    "read_file",
                    &format!(r#"{{"path":"f{i}"}}"#),
                )],
            );
            assert_eq!(req.tool_choice, None, "step {i} may call tools");
            assert!(!t.is_summarizing());
        }
        // Step 3 of 3: tools are switched off and the model is told why.
        let req = t.start_step().unwrap();
        assert!(t.is_summarizing());
        assert_eq!(
            req.tool_choice,
            Some(ToolChoice::Mode(ToolChoiceMode::None))
        );
        assert_eq!(
            req.tools.len(),
            crate::agent::tools::TOOLS.len(),
            "tools stay listed"
        );
        let Some(Message::User { content }) = req.messages.last() else {
            panic!("{:?}", req.messages.last())
        };
        assert!(
            content.contains("last of the 3 steps allowed for one turn")
                && content.contains("Do not call tools")
                && content.contains("what is left"),
            "{content}"
        );
        assert_eq!(t.request(), req, "a retry sends the same summary request");
        let summary = "I built the API; the frontend list view is left.";
        let next = t
            .on_outcome(text_outcome(summary, FinishReason::Stop))
            .unwrap();
        let Next::StepCap {
            steps,
            message,
            summary: got,
        } = next
        else {
            panic!("{next:?}")
        };
        assert_eq!((steps, got.as_str()), (3, summary));
        assert!(
            message.contains("Stopped after 3 steps, the limit for one turn")
                && message.contains("last message says what it did"),
            "{message}"
        );
        assert_eq!(
            t.new_messages().last(),
            Some(&Message::assistant(summary, vec![])),
            "the summary is the turn's last message"
        );
        assert!(t.is_finished());
        assert_eq!(t.usage().steps, 3);

        // A fix round gets its own budget: two steps, the second the summary again.
        t.resume_with("fix these errors", 2).unwrap();
        assert!(!t.is_summarizing());
        let req = tool_step(&mut t, vec![call("f1", "read_file", r#"{"path":"x"}"#)]);
        assert_eq!(req.tool_choice, None);
        let req = t.start_step().unwrap();
        assert_eq!(
            req.tool_choice,
            Some(ToolChoice::Mode(ToolChoiceMode::None))
        );
        assert!(
            matches!(req.messages.last(), Some(Message::User { content }) if content.contains("2 steps allowed for a fix round")),
            "{:?}",
            req.messages.last()
        );
        // A provider that ignores tool_choice: the calls are answered, not run.
        let next = t
            .on_outcome(tools_outcome(vec![call(
                "f2",
                "write_file",
                r#"{"path":"y","content":""}"#,
            )]))
            .unwrap();
        let Next::StepCap {
            steps,
            message,
            summary,
        } = next
        else {
            panic!("{next:?}")
        };
        assert_eq!((steps, summary.as_str()), (2, ""));
        assert!(
            message.contains("limit for a fix round") && message.contains("no summary"),
            "{message}"
        );
        assert_eq!(
            t.messages().last(),
            Some(&Message::tool(
                "f2",
                "[not run: the step limit for a fix round was reached]"
            ))
        );
        assert_eq!(t.start_step(), Err(TurnError::Finished));
        assert_eq!(t.usage().steps, 5);
    }

    #[test]
    fn the_same_call_three_times_is_stuck() {
        let mut t = turn(TurnConfig::new("m"));
        let args = [
            r#"{"path":"a.py"}"#,
            r#"{ "path" : "a.py" }"#,
            r#"{"path":"a.py"}"#,
        ];
        for (i, a) in args.iter().enumerate() {
            t.start_step().unwrap();
            let next = t
                .on_outcome(tools_outcome(vec![call(&format!("c{i}"), "read_file", a)]))
                .unwrap();
            if i < 2 {
                let c = expect_tools(next);
                t.on_tool_result(&c[0].id, "same content").unwrap();
                let Some(Message::Tool { content, .. }) = t.messages().last() else {
                    panic!()
                };
                if i == 0 {
                    assert_eq!(content, "same content", "no warning the first time");
                } else {
                    // One call before the detector stops the turn, the model is warned.
                    assert!(
                        content.starts_with(
                            "same content\n\n[platform warning: this is call 2 of read_file"
                        ) && content.contains("Call 3 stops the turn"),
                        "{content}"
                    );
                }
            } else {
                let Next::Stuck {
                    tool,
                    arguments,
                    message,
                } = next
                else {
                    panic!("{next:?}")
                };
                assert_eq!((tool.as_str(), arguments.as_str()), ("read_file", args[2]));
                assert!(message.contains("3 times"), "{message}");
            }
        }
        assert!(t.is_finished());
        assert!(
            matches!(t.messages().last(), Some(Message::Tool { content, .. }) if content.starts_with("[not run:"))
        );
    }

    #[test]
    fn rereading_after_a_change_is_not_stuck() {
        let mut t = turn(TurnConfig::new("m"));
        let steps = [
            ("read_file", r#"{"path":"a.py"}"#.to_string()),
            ("run_command", r#"{"command":"pytest"}"#.to_string()),
            (
                "edit_file",
                r#"{"path":"a.py","edits":[{"search":"1","replace":"2"}]}"#.to_string(),
            ),
            ("read_file", r#"{"path":"a.py"}"#.to_string()),
            ("run_command", r#"{"command":"pytest"}"#.to_string()),
            (
                "edit_file",
                r#"{"path":"a.py","edits":[{"search":"2","replace":"3"}]}"#.to_string(),
            ),
            ("read_file", r#"{"path":"a.py"}"#.to_string()),
            ("run_command", r#"{"command":"pytest"}"#.to_string()),
        ];
        for (i, (name, args)) in steps.iter().enumerate() {
            t.start_step().unwrap();
            let id = format!("c{i}");
            expect_tools(
                t.on_outcome(tools_outcome(vec![call(&id, name, args)]))
                    .unwrap(),
            );
            t.on_tool_result(&id, "ok").unwrap();
        }
        // But the same command three times in a row is.
        for i in 0..2 {
            t.start_step().unwrap();
            let next = t
                .on_outcome(tools_outcome(vec![call(
                    &format!("d{i}"),
                    "run_command",
                    r#"{"command":"pytest"}"#,
                )]))
                .unwrap();
            if i == 0 {
                t.on_tool_result("d0", "ok").unwrap();
            } else {
                assert!(matches!(next, Next::Stuck { .. }), "{next:?}");
            }
        }
    }

    fn cut(text: &str, calls: Vec<ToolCall>, cut_call: Option<&str>) -> Outcome {
        Outcome {
            tool_calls: calls,
            dropped_tool_calls: cut_call
                .map(|name| crate::llm::accumulate::DroppedToolCall {
                    id: "cut".into(),
                    name: name.into(),
                    arguments: "{\"path\":".into(),
                    reason: "cut".into(),
                })
                .into_iter()
                .collect(),
            ..text_outcome(text, FinishReason::Length)
        }
    }

    #[test]
    fn length_runs_the_complete_calls_and_continues_twice() {
        let mut t = turn(TurnConfig::new("m"));
        // 1: a text-only reply cut in the middle of a write_file call.
        t.start_step().unwrap();
        assert_eq!(
            t.on_outcome(cut("Here is the fi", vec![], Some("write_file"))),
            Ok(Next::ContinueAfterLength)
        );
        let req = t.start_step().unwrap();
        let n = req.messages.len();
        assert_eq!(
            req.messages[n - 2],
            Message::assistant("Here is the fi", vec![])
        );
        let Message::User { content } = &req.messages[n - 1] else {
            panic!()
        };
        assert!(
            content.contains("write_file call, which was not run") && content.contains("Continue"),
            "{content}"
        );

        // 2: two complete calls, then the cut one: the complete ones run, then the note.
        let next = t
            .on_outcome(cut(
                "Writing.",
                vec![
                    call("a", "write_file", r#"{"path":"a.txt","content":"A"}"#),
                    call("b", "read_file", r#"{"path":"a.txt"}"#),
                ],
                Some("write_file"),
            ))
            .unwrap();
        let calls = expect_tools(next);
        assert_eq!(
            calls.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        t.on_tool_result("b", "A").unwrap();
        t.on_tool_result("a", "wrote a.txt").unwrap();
        let req = t.start_step().unwrap();
        let n = req.messages.len();
        assert_eq!(
            roles(&req.messages[n - 4..]),
            ["assistant", "tool", "tool", "user"]
        );
        assert_eq!(
            req.messages[n - 4],
            Message::assistant(
                "Writing.",
                vec![
                    AssistantToolCall::new("a", "write_file", r#"{"path":"a.txt","content":"A"}"#),
                    AssistantToolCall::new("b", "read_file", r#"{"path":"a.txt"}"#),
                ]
            ),
            "the cut call is not echoed"
        );
        assert_eq!(req.messages[n - 3], Message::tool("a", "wrote a.txt"));
        let Message::User { content } = &req.messages[n - 1] else {
            panic!()
        };
        assert!(
            content.contains("in the middle of a write_file call, which was not run")
                && content.contains("complete tool calls before the cut ran"),
            "{content}"
        );

        // 3: a third cut ends the turn; its complete call is not run.
        match t
            .on_outcome(cut(
                "Again",
                vec![call("c", "read_file", r#"{"path":"a.txt"}"#)],
                None,
            ))
            .unwrap()
        {
            Next::Length { text, message } => {
                assert_eq!(text, "Again");
                assert!(
                    message.contains("output-token limit, after 2 continuations"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(t.is_finished());
        assert_eq!(
            t.messages().last(),
            Some(&Message::tool(
                "c",
                "[not run: the reply was cut off by the output-token limit]"
            ))
        );

        // A fix round may continue twice again.
        t.resume_with("fix", 5).unwrap();
        t.start_step().unwrap();
        assert_eq!(
            t.on_outcome(cut("x", vec![], None)),
            Ok(Next::ContinueAfterLength)
        );

        let mut t = turn(TurnConfig {
            max_length_continuations: 0,
            ..TurnConfig::new("m")
        });
        t.start_step().unwrap();
        assert!(matches!(
            t.on_outcome(text_outcome("", FinishReason::Length)),
            Ok(Next::Length { .. })
        ));
        assert_eq!(
            roles(t.new_messages()),
            ["user"],
            "empty text is not stored"
        );
    }

    #[test]
    fn cancel_drops_a_pending_length_note() {
        let mut t = turn(TurnConfig::new("m"));
        t.start_step().unwrap();
        expect_tools(
            t.on_outcome(cut(
                "",
                vec![call("a", "list_files", "{}")],
                Some("write_file"),
            ))
            .unwrap(),
        );
        t.cancel("stopped by the user", "");
        assert_eq!(
            t.messages().last(),
            Some(&Message::tool("a", "[not run: stopped by the user]"))
        );
    }

    #[test]
    fn long_tool_output_is_truncated_with_a_note() {
        let mut t = turn(TurnConfig {
            max_tool_output_bytes: 10,
            ..TurnConfig::new("m")
        });
        t.start_step().unwrap();
        expect_tools(
            t.on_outcome(tools_outcome(vec![call(
                "c1",
                "run_command",
                r#"{"command":"ls"}"#,
            )]))
            .unwrap(),
        );
        t.on_tool_result("c1", "ééééééééé").unwrap(); // 18 bytes
        assert_eq!(
            t.messages().last(),
            Some(&Message::tool(
                "c1",
                "ééééé\n[output truncated: showed first 10 of 18 bytes]"
            ))
        );
        assert_eq!(truncate_output("short", 10), "short");
        assert_eq!(
            truncate_output("ab€", 3),
            "ab\n[output truncated: showed first 2 of 5 bytes]"
        );
    }

    #[test]
    fn cancel_keeps_history_valid() {
        let mut t = turn(TurnConfig::new("m"));
        t.start_step().unwrap();
        expect_tools(
            t.on_outcome(tools_outcome(vec![
                call("c1", "run_command", r#"{"command":"npm i"}"#),
                call("c2", "read_file", r#"{"path":"a"}"#),
            ]))
            .unwrap(),
        );
        t.on_tool_result("c1", "installed").unwrap();
        t.cancel("stopped by the user", "");
        assert!(t.is_finished());
        let new = t.new_messages();
        assert_eq!(roles(new), ["user", "assistant", "tool", "tool"]);
        assert_eq!(
            new[3],
            Message::tool("c2", "[not run: stopped by the user]")
        );

        let mut t = turn(TurnConfig::new("m"));
        t.start_step().unwrap();
        t.cancel("stopped by the user", "Partial ans");
        assert_eq!(
            t.new_messages()[1],
            Message::assistant("Partial ans", vec![])
        );
        assert_eq!(
            t.on_outcome(text_outcome("x", FinishReason::Stop)),
            Err(TurnError::Finished)
        );
    }

    #[test]
    fn content_filter_and_out_of_order_calls() {
        let mut t = turn(TurnConfig::new("m"));
        assert_eq!(
            t.on_outcome(text_outcome("x", FinishReason::Stop)),
            Err(TurnError::NoStepInProgress)
        );
        assert_eq!(
            t.on_tool_result("c1", "x"),
            Err(TurnError::UnknownCall("c1".into()))
        );
        t.start_step().unwrap();
        assert!(matches!(
            t.on_outcome(text_outcome("", FinishReason::ContentFilter)),
            Ok(Next::ContentFilter { .. })
        ));
    }

    #[test]
    fn canonical_arguments_ignore_key_order_and_spacing() {
        assert_eq!(
            canonical_arguments(r#"{"b": [1, {"d":1,"c":2}], "a": "x"}"#),
            r#"{"a":"x","b":[1,{"c":2,"d":1}]}"#
        );
        assert_eq!(canonical_arguments(" not json "), "not json");
    }
}
