//! A turn's context budget in the Worker: the model's limits (from `/models`, or a window a
//! provider's error revealed, kept per isolate), the per-turn fitting state, the compaction
//! step (an LLM summary saved in the turn log), and the one resend after a context-length
//! rejection. The decisions are core's `agent::context`; this module does their I/O.

use super::model::{stream_step, StepError, Streamed, Wire};
use crate::room_state::Room;
use crate::turn_log::Loaded;
use open_replit_core::agent::context::{
    compaction_request, compaction_split, fit, message_tokens, summary_messages, tools_tokens, Fit,
    Layout,
};
use open_replit_core::agent::turn::TurnUsage;
use open_replit_core::llm::accumulate::Outcome;
use open_replit_core::llm::models::{limits_of, ModelLimits};
use open_replit_core::llm::types::{ChatRequest, Message};
use open_replit_core::llm_config::Provider;
use open_replit_core::protocol::{ServerEvent, Usage};
use std::cell::RefCell;
use std::collections::HashMap;
use worker::console_warn;

thread_local! {
    /// Windows providers stated in context-length errors, by model id: the truth, whatever
    /// `/models` says, for as long as this isolate lives.
    static LEARNED: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
}

fn learned(model: &str) -> Option<u32> {
    LEARNED.with(|l| l.borrow().get(model).copied())
}

fn learn(model: &str, window: u32) {
    LEARNED.with(|l| l.borrow_mut().insert(model.to_string(), window));
}

/// The limits to budget `model` with: the provider's list, narrowed by a learned window.
pub async fn model_limits(providers: &[Provider], model: &str) -> ModelLimits {
    let listed = match crate::models::list(providers).await {
        Ok((_, models)) => limits_of(&models, model),
        Err(e) => {
            console_warn!("model limits: {e}; assuming the defaults");
            ModelLimits::DEFAULT
        }
    };
    match learned(model) {
        Some(w) if w < listed.context_window => listed.with_window(w),
        _ => listed,
    }
}

/// What one turn keeps between its steps.
pub struct Context {
    model: String,
    limits: std::cell::Cell<ModelLimits>,
    /// The loaded history's row ids, parallel to the history the turn started from.
    ids: Vec<Option<i64>>,
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    /// Index into the turn's messages of the first message of the current turn.
    cut_offset: usize,
    /// A summary made in this turn: the loaded history before `.0` is replaced by `.1`.
    replaced: Option<(usize, [Message; 2])>,
    compacted: bool,
    /// Usage of the summary steps, and cached tokens of every step.
    extra: Usage,
}

impl Context {
    /// `providers`: the turn's (the operator's, or the person's own key), whose `/models`
    /// list gives the model's limits.
    pub async fn new(providers: &[Provider], model: &str, loaded: &Loaded) -> Context {
        Context {
            model: model.to_string(),
            limits: std::cell::Cell::new(model_limits(providers, model).await),
            ids: loaded.ids.clone(),
            state: RefCell::new(State::default()),
        }
    }

    /// The turn's usage with the summary steps and the cached tokens added.
    pub fn usage(&self, u: TurnUsage) -> Usage {
        let e = self.state.borrow().extra;
        let cost = match (u.cost, e.cost) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
        Usage {
            prompt_tokens: u.prompt_tokens + e.prompt_tokens,
            completion_tokens: u.completion_tokens + e.completion_tokens,
            cached_tokens: e.cached_tokens,
            cost,
        }
    }

    /// The request as sent: the summary in place of what it stands for, stubs, the cut and
    /// `max_tokens` (core's `fit`); and where the earlier turns end, for a cache breakpoint.
    fn view(&self, req: &ChatRequest) -> (ChatRequest, Fit, usize) {
        let h = self.ids.len().min(req.messages.len().saturating_sub(1));
        let st = self.state.borrow();
        let mut view = req.clone();
        let mut turn_start = 1 + h;
        if let Some((keep_from, pair)) = &st.replaced {
            let mut msgs = vec![req.messages[0].clone()];
            msgs.extend(pair.iter().cloned());
            msgs.extend(req.messages[1 + keep_from..].iter().cloned());
            turn_start = 1 + 2 + (h - keep_from);
            view.messages = msgs;
        }
        let mut layout = Layout {
            turn_start,
            cut: turn_start + st.cut_offset,
        };
        drop(st);
        let f = fit(&mut view, &mut layout, self.limits.get());
        self.state.borrow_mut().cut_offset = layout.cut.saturating_sub(layout.turn_start);
        (view, f, layout.turn_start)
    }

    /// Summarizes the earlier turns with one tool-less model call and saves the summary, so
    /// this and later turns send it instead of the older messages. False when there was
    /// nothing to summarize or the call failed (the turn goes on with stubs and cuts).
    async fn compact(
        &self,
        room: &Room,
        providers: &[Provider],
        turn_id: u64,
        req: &ChatRequest,
    ) -> bool {
        self.state.borrow_mut().compacted = true;
        let h = self.ids.len().min(req.messages.len().saturating_sub(1));
        let (base, offset) = match &self.state.borrow().replaced {
            Some((k, pair)) => {
                let mut v: Vec<Message> = pair.to_vec();
                v.extend(req.messages[1 + k..1 + h].iter().cloned());
                (v, *k as isize - 2)
            }
            None => (req.messages[1..1 + h].to_vec(), 0),
        };
        let system = req.messages.first().cloned().unwrap_or(Message::system(""));
        let fixed = tools_tokens(&req.tools) + message_tokens(&system);
        let limits = self.limits.get();
        let Some(split) = compaction_split(&base, limits, fixed) else {
            return false;
        };
        let upto_index = split as isize + offset;
        let Some(Some(upto)) =
            (upto_index >= 1).then(|| self.ids.get(upto_index as usize - 1).copied().flatten())
        else {
            return false;
        };
        let Some(Message::User {
            content: first_request,
        }) = base.first().cloned()
        else {
            return false;
        };
        let Message::System { content: sys } = &system else {
            return false;
        };
        let creq = compaction_request(&self.model, sys, &base[..split], limits);
        let before: u32 = base.iter().map(message_tokens).sum();
        room.emit(ServerEvent::Status {
            turn_id,
            message: "the conversation is long: summarizing the earlier turns".into(),
        });
        let wire = Wire {
            req: &creq,
            history_end: None,
            relay: false,
        };
        let outcome = match stream_step(room, providers, turn_id, &wire).await {
            Ok(o) => o,
            Err(_) => {
                room.emit(ServerEvent::Status {
                    turn_id,
                    message: "could not summarize the earlier turns; sending fewer of them".into(),
                });
                return false;
            }
        };
        self.add_usage(&outcome, true);
        let summary = outcome.text.trim().to_string();
        if summary.is_empty() {
            return false;
        }
        room.turn_log().save_summary(upto, &first_request, &summary);
        let pair = summary_messages(&first_request, &summary);
        let after: u32 = pair.iter().chain(&base[split..]).map(message_tokens).sum();
        {
            let mut st = self.state.borrow_mut();
            st.replaced = Some((upto_index as usize, pair));
            st.cut_offset = 0;
        }
        room.emit(ServerEvent::Compacted {
            turn_id,
            tokens_before: before as u64,
            tokens_after: after as u64,
        });
        true
    }

    fn add_usage(&self, o: &Outcome, summary_step: bool) {
        let Some(u) = o.usage else { return };
        let mut st = self.state.borrow_mut();
        st.extra.cached_tokens += u.cached_tokens();
        if summary_step {
            st.extra.prompt_tokens += u.prompt_tokens;
            st.extra.completion_tokens += u.completion_tokens;
            if let Some(c) = u.cost {
                *st.extra.cost.get_or_insert(0.0) += c;
            }
        }
    }

    /// Sends one step of the turn: fits it to the window (compacting the earlier turns when
    /// they pass the threshold), streams it, and after a context-length rejection learns the
    /// window, compacts and sends once more.
    pub async fn send(
        &self,
        room: &Room,
        providers: &[Provider],
        turn_id: u64,
        req: &ChatRequest,
    ) -> Result<Outcome, StepError> {
        let mut resent = false;
        loop {
            let (mut view, f, mut turn_start) = self.view(req);
            if f.compact && !self.state.borrow().compacted {
                if self.compact(room, providers, turn_id, req).await {
                    (view, _, turn_start) = self.view(req);
                }
                if room.stop_requested() {
                    return Err(StepError::Stopped {
                        partial: String::new(),
                    });
                }
            }
            let wire = Wire {
                req: &view,
                history_end: (turn_start > 1).then(|| turn_start - 1),
                relay: true,
            };
            match stream_step(room, providers, turn_id, &wire).await {
                Ok(o) => {
                    self.add_usage(&o, false);
                    return Ok(o);
                }
                Err(Streamed::Step(e)) => return Err(e),
                Err(Streamed::ContextTooLong { message, .. }) if resent => {
                    return Err(StepError::Failed {
                        message,
                        partial: String::new(),
                    })
                }
                Err(Streamed::ContextTooLong { limit, .. }) => {
                    resent = true;
                    let old = self.limits.get();
                    // Without a stated window, assume the estimate was a quarter short.
                    let window = limit.unwrap_or_else(|| {
                        ((f.tokens + view.max_tokens.unwrap_or(0)) as f64 * 0.75) as u32
                    });
                    let window = window.min(old.context_window).max(2_048);
                    learn(&self.model, window);
                    self.limits.set(old.with_window(window));
                    room.emit(ServerEvent::Status {
                        turn_id,
                        message: format!(
                            "the model's context window is {window} tokens; fitting the \
                             conversation to it and sending again"
                        ),
                    });
                    self.state.borrow_mut().compacted = false;
                    let (_, f2, _) = self.view(req);
                    if f2.history_tokens > 0 {
                        self.compact(room, providers, turn_id, req).await;
                    }
                }
            }
        }
    }
}
