//! Talking to OpenAI-compatible chat-completions endpoints, minus the I/O: wire types, the SSE
//! decoder, typed stream events, the tool-call accumulator, the retry policy, `/models` limits
//! and prices, and prompt-cache breakpoints.

pub mod accumulate;
pub mod cache;
pub mod models;
pub mod retry;
pub mod sse;
pub mod stream;
pub mod types;
