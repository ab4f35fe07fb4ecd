//! Talking to OpenAI-compatible chat-completions endpoints, minus the I/O: wire types, the SSE
//! decoder, typed stream events, the tool-call accumulator and the retry policy.

pub mod accumulate;
pub mod retry;
pub mod sse;
pub mod stream;
pub mod types;
