//! One model step over fetch: writes the request for each provider (its model id, cache
//! breakpoints for the models that use them), relays text deltas as they arrive (or not, for
//! the summary step), and retries or falls back between providers by core's `RetryPolicy`.
//! Failures stay typed from the socket to the policy; a context-length rejection comes back as
//! its own kind for `limits` to compact and resend.

use crate::room_state::Room;
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use open_replit_core::llm::accumulate::{Accumulator, Outcome};
use open_replit_core::llm::cache::{cache_style, wire_body};
use open_replit_core::llm::retry::{
    chat_completions_url, request_headers, Failure, RetryDecision, RetryPolicy,
};
use open_replit_core::llm::stream::{StreamDecoder, StreamEvent};
use open_replit_core::llm::types::ChatRequest;
use open_replit_core::llm_config::Provider;
use open_replit_core::protocol::ServerEvent;
use std::time::Duration;
use worker::{Delay, Fetch, Headers, Method, Request, RequestInit};

/// A model stream that sends nothing for this long is treated as broken.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a step produced no outcome.
pub enum StepError {
    /// A person pressed stop; `partial` is the text shown so far.
    Stopped { partial: String },
    /// Retries and fallbacks are used up, or a retry would repeat text people already saw.
    Failed { message: String, partial: String },
}

/// What went wrong with one attempt; borrowed as core's `Failure` for the retry decision.
enum AttemptFailure {
    /// The provider answered with a non-2xx status.
    Http {
        status: u16,
        retry_after: Option<String>,
        body: String,
    },
    /// No answer: the fetch itself failed.
    Connection(String),
    /// The answer started but broke off before anything was shown: cut, idle, malformed, an
    /// error chunk, or no finish.
    Broken(String),
}

impl AttemptFailure {
    fn as_failure(&self) -> Failure<'_> {
        match self {
            AttemptFailure::Http {
                status,
                retry_after,
                body,
            } => Failure::Http {
                status: *status,
                retry_after: retry_after.as_deref(),
                body,
            },
            AttemptFailure::Connection(m) => Failure::Connection { message: m },
            AttemptFailure::Broken(m) => Failure::BrokenStream { message: m },
        }
    }
}

/// What to send: the request, where its earlier turns end (a cache breakpoint), and whether
/// its text reaches people.
pub struct Wire<'a> {
    pub req: &'a ChatRequest,
    pub history_end: Option<usize>,
    pub relay: bool,
}

/// How streaming a step failed.
pub enum Streamed {
    Step(StepError),
    /// The provider said the request is longer than the model's window.
    ContextTooLong {
        limit: Option<u32>,
        message: String,
    },
}

impl From<StepError> for Streamed {
    fn from(e: StepError) -> Self {
        Streamed::Step(e)
    }
}

/// Streams one model step, retrying and falling back between providers until an outcome.
pub async fn stream_step(
    room: &Room,
    providers: &[Provider],
    turn_id: u64,
    wire: &Wire<'_>,
) -> Result<Outcome, Streamed> {
    let policy = RetryPolicy::default();
    // OpenRouter asks callers to name themselves with a referer: the app's own origin.
    let referer = room
        .get_kv("origin")
        .unwrap_or_else(|| "http://localhost".into());
    let mut pi = 0;
    let mut attempt = 1;
    let stopped = || StepError::Stopped {
        partial: String::new(),
    };
    loop {
        let p = &providers[pi];
        let has_fallback = pi + 1 < providers.len();
        // Model ids are not portable: a fallback provider runs its own model when it has one.
        let model = p.model_for(&wire.req.model, pi == 0);
        let body = if model == wire.req.model {
            wire_body(wire.req, cache_style(&model), wire.history_end)
        } else {
            let mut r = wire.req.clone();
            r.model = model.clone();
            wire_body(&r, cache_style(&model), wire.history_end)
        };
        let failure = match attempt_once(room, p, &referer, turn_id, &body, wire.relay).await {
            Ok(outcome) => return Ok(outcome),
            Err(Attempt::Final(e)) => return Err(e.into()),
            Err(Attempt::Failed(f)) => f,
        };
        if room.stop_requested() {
            return Err(stopped().into());
        }
        let now = (js_sys::Date::now() / 1000.0) as u64;
        match policy.decide(p.name, attempt, &failure.as_failure(), now, has_fallback) {
            RetryDecision::Retry { after_ms } => {
                room.emit(ServerEvent::Status {
                    turn_id,
                    message: format!(
                        "{} is busy; retrying in {:.1} s",
                        p.name,
                        after_ms as f64 / 1000.0
                    ),
                });
                Delay::from(Duration::from_millis(after_ms)).await;
                if room.stop_requested() {
                    return Err(stopped().into());
                }
                attempt += 1;
            }
            RetryDecision::FallbackToNextProvider { reason } => {
                room.emit(ServerEvent::Status {
                    turn_id,
                    message: format!("{reason}; switching to {}", providers[pi + 1].name),
                });
                pi += 1;
                attempt = 1;
            }
            RetryDecision::Fail { user_message } => {
                return Err(StepError::Failed {
                    message: user_message,
                    partial: String::new(),
                }
                .into())
            }
            RetryDecision::ContextTooLong { limit, message } => {
                return Err(Streamed::ContextTooLong { limit, message })
            }
        }
    }
}

/// How one attempt ended without an outcome: final for the step, or for the policy to judge.
enum Attempt {
    Final(StepError),
    Failed(AttemptFailure),
}

/// One request to one provider, streamed to the end.
async fn attempt_once(
    room: &Room,
    p: &Provider,
    referer: &str,
    turn_id: u64,
    body: &str,
    relay: bool,
) -> Result<Outcome, Attempt> {
    let headers = Headers::new();
    for (k, v) in request_headers(p, referer) {
        let _ = headers.set(&k, &v);
    }
    let _ = headers.set("content-type", "application/json");
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(body.into()));
    let signal = room.abortable();
    let resp = match Request::new_with_init(&chat_completions_url(p), &init) {
        Ok(r) => Fetch::Request(r).send_with_signal(&signal).await,
        Err(e) => Err(e),
    };
    if room.stop_requested() {
        return Err(Attempt::Final(StepError::Stopped {
            partial: String::new(),
        }));
    }
    let mut r = match resp {
        Err(e) => return Err(Attempt::Failed(AttemptFailure::Connection(e.to_string()))),
        Ok(r) if r.status_code() != 200 => {
            let mut r = r;
            let status = r.status_code();
            let retry_after = r.headers().get("retry-after").ok().flatten();
            let body = r.text().await.unwrap_or_default();
            return Err(Attempt::Failed(AttemptFailure::Http {
                status,
                retry_after,
                body,
            }));
        }
        Ok(r) => r,
    };
    let mut acc = Accumulator::new();
    let mut dec = StreamDecoder::new();
    let mut shown = false;
    let mut stream = r.stream().map_err(|e| {
        Attempt::Final(StepError::Failed {
            message: e.to_string(),
            partial: String::new(),
        })
    })?;
    // One idle timer for the whole stream (not one per chunk): when it fires, it is re-armed
    // for what is left if data came in meanwhile.
    let mut idle = Box::pin(Delay::from(IDLE_TIMEOUT));
    let mut last_data = js_sys::Date::now();
    let broke: Option<String> = loop {
        let chunk = match select(stream.next(), &mut idle).await {
            Either::Left((Some(Ok(c)), _)) => c,
            Either::Left((Some(Err(e)), _)) => break Some(format!("the stream broke: {e}")),
            Either::Left((None, _)) => break None,
            Either::Right(_) => {
                let quiet = js_sys::Date::now() - last_data;
                let limit = IDLE_TIMEOUT.as_millis() as f64;
                if quiet < limit {
                    idle = Box::pin(Delay::from(Duration::from_millis(
                        (limit - quiet) as u64 + 1,
                    )));
                    continue;
                }
                break Some(format!("no data for {} s", IDLE_TIMEOUT.as_secs()));
            }
        };
        last_data = js_sys::Date::now();
        let mut bad = None;
        // Deltas that arrived in one network read go out as one event: the same text as early
        // as possible, with one log write and one send per socket instead of one per token.
        let mut text = String::new();
        for item in dec.feed(&chunk) {
            match item {
                Ok(ev) => {
                    if let StreamEvent::TextDelta(t) = &ev {
                        text.push_str(t);
                    }
                    acc.push(&ev);
                }
                Err(e) => {
                    bad = Some(e.to_string());
                    break;
                }
            }
        }
        if !text.is_empty() && relay {
            shown = true;
            room.emit(ServerEvent::AssistantDelta { turn_id, text });
        }
        if bad.is_some() {
            break bad;
        }
    };
    if room.stop_requested() {
        return Err(Attempt::Final(StepError::Stopped {
            partial: acc.text().to_string(),
        }));
    }
    let broke = broke.or_else(|| {
        dec.finish().into_iter().find_map(|i| match i {
            Ok(ev) => {
                acc.push(&ev);
                None
            }
            Err(e) => Some(e.to_string()),
        })
    });
    let partial = acc.text().to_string();
    let result = match broke {
        Some(m) => Err(m),
        None => acc.finish().map_err(|f| f.to_string()),
    };
    match result {
        Ok(o) => Ok(o),
        // Text already reached people: a retry would repeat it, so report instead.
        Err(m) if shown => Err(Attempt::Final(StepError::Failed {
            message: format!("the model's answer broke off: {m}"),
            partial,
        })),
        Err(m) => Err(Attempt::Failed(AttemptFailure::Broken(m))),
    }
}
