//! Drives agent turns inside `ProjectRoom`: one turn at a time from the room's queue, each a
//! loop of model steps (`model`) and tool calls (`tools`) over the turn's working set, then the
//! verify-and-fix rounds, then one checkpoint. The decisions themselves live in core's
//! `agent::turn`.

mod limits;
mod model;
mod tools;

use crate::azure::blob_client;
use crate::quota::{self, Payer, StepBlock};
use crate::room_state::{Admission, Room};
use crate::step::Step;
use crate::vm::Vm;
use crate::work::Work;
use model::StepError;
use open_replit_core::agent::turn::{
    truncate_output, Next, Turn, TurnConfig, DEFAULT_FIX_ROUND_STEPS,
};
use open_replit_core::agent::verify;
use open_replit_core::llm_config::Provider;
use open_replit_core::manifest::Manifest;
use open_replit_core::protocol::{ServerEvent, TurnEnd, Usage};
use serde_json::Value;
use std::rc::Rc;
use tools::{run_tool, ToolFailure};
use worker::console_error;

/// Longest tool result shown to people in `tool_call_finished` (the model gets all of it).
const SHOWN_RESULT_BYTES: usize = 4_000;

/// Starts a turn for `text`, or queues it behind the running one; runs the queue dry.
pub async fn submit(room: &Rc<Room>, text: String, model: Option<String>, user: String) {
    match room.admit(&text, model.clone(), &user) {
        Admission::Queued(position) => room.emit(ServerEvent::Queued { text, position }),
        Admission::RunNow => {
            let mut next = Some((text, model, user));
            while let Some((t, m, u)) = next {
                run_turn(room, t, m, &u).await;
                next = room.next_turn();
            }
        }
    }
}

/// How a turn ends: why, what to tell people, what it cost, and its checkpoint.
struct Ending {
    end: TurnEnd,
    message: Option<String>,
    usage: Usage,
    checkpoint: Option<u64>,
}

impl Ending {
    fn error(message: impl Into<String>) -> Ending {
        Ending {
            end: TurnEnd::Error,
            message: Some(message.into()),
            usage: Usage::default(),
            checkpoint: None,
        }
    }
}

async fn run_turn(room: &Room, text: String, model: Option<String>, user: &str) {
    let log = room.turn_log();
    let model = model
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| room.config().llm.status().default_model);
    let turn_id = log.start(&text, &model, js_sys::Date::now() as i64);
    room.emit(ServerEvent::TurnStarted {
        turn_id,
        text: text.clone(),
        model: model.clone(),
    });
    let ending = turn_body(room, turn_id, &text, model, user).await;
    log.finish(turn_id, ending.end, &ending.usage, ending.checkpoint);
    room.emit(ServerEvent::TurnFinished {
        turn_id,
        end: ending.end,
        message: ending.message,
        usage: ending.usage,
        checkpoint: ending.checkpoint,
    });
    // The agent's `publish` tool: the turn's checkpoint (or the head), once the turn is over;
    // a turn that failed or was stopped publishes nothing.
    if room.take_publish_request() && matches!(ending.end, TurnEnd::Done | TurnEnd::StepCap) {
        if let Some(id) = room.project_id() {
            let _ = crate::publish::publish(room, &id, ending.checkpoint, "agent", user).await;
        }
    }
}

async fn turn_body(room: &Room, turn_id: u64, text: &str, model: String, user: &str) -> Ending {
    let cfg = room.config();
    // The user's own key when they stored one (and then only it), else the operator's.
    let (providers, payer) = match crate::quota::providers_for(room, user).await {
        Ok(p) => p,
        Err(m) => return Ending::error(m),
    };
    if providers.is_empty() {
        return Ending {
            message: cfg.llm.status().setup_hint,
            ..Ending::error("")
        };
    }
    let Some(project_id) = room.project_id() else {
        return Ending::error("this project has no id yet; reload the page");
    };
    let blob = match blob_client(cfg) {
        Ok(b) => b,
        Err(e) => return Ending::error(e.message()),
    };
    let mut work = match Work::load(&blob, &project_id, cfg.max_project_files).await {
        Ok(w) => w,
        Err(e) => return Ending::error(format!("could not read the project: {e}")),
    };
    let vm = Vm::from_config(cfg).ok();
    let template = match work.projects.meta(&project_id).await {
        Ok(m) => m.template,
        Err(e) => return Ending::error(format!("could not read the project: {e}")),
    };
    let history = room.turn_log().history();
    let ctx = limits::Context::new(&providers, &model, &history).await;
    let mut tc = TurnConfig::new(model);
    if let Some(n) = cfg.agent_max_steps {
        // One step to work and the last one to summarise.
        tc.max_steps = n.max(2);
    }
    let fix_steps = cfg
        .agent_fix_steps
        .unwrap_or(DEFAULT_FIX_ROUND_STEPS)
        .max(2);
    let prompt = crate::templates::system_prompt(&template);
    let mut turn = Turn::new(tc, &prompt, history.messages, text);
    let run = TurnRun {
        ctx: &ctx,
        room,
        turn_id,
        providers: &providers,
        vm: vm.as_ref(),
        payer: &payer,
    };
    let (mut end, mut message) = run.drive(&mut turn, &mut work).await;
    // A turn that ran out of steps is still verified: its fix rounds have budgets of their own,
    // and it still ends as `step_cap` with its message when they succeed.
    let capped = (end == TurnEnd::StepCap).then(|| message.clone());
    // Verify and fix: when the turn changed files, check that the app really runs; failures go
    // back to the model as a new step, up to VERIFY_FIX_ROUNDS times.
    let mut round = 0;
    let mut verified: Option<Manifest> = None;
    while matches!(end, TurnEnd::Done | TurnEnd::StepCap)
        && cfg.verify_fix_rounds > 0
        && work.is_changed()
    {
        let Some(vm) = vm.as_ref() else { break };
        let current = work.manifest();
        if verified.as_ref() == Some(&current) {
            break;
        }
        room.emit(ServerEvent::Status {
            turn_id,
            message: "verifying".into(),
        });
        let failures = crate::verify::run(room, vm, &mut work, turn_id, round).await;
        verified = Some(current);
        room.emit(ServerEvent::Status {
            turn_id,
            message: verify::status_line(&failures),
        });
        if failures.is_empty() {
            break;
        }
        if round >= cfg.verify_fix_rounds {
            end = TurnEnd::Error;
            message = Some(format!(
                "the app still fails after {round} fix round(s):\n{}",
                failures
                    .iter()
                    .map(|f| format!("{}: {}", f.name, f.output))
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
            break;
        }
        round += 1;
        let fix = verify::fix_request(&failures, round, cfg.verify_fix_rounds);
        if turn.resume_with(&fix, fix_steps).is_err() {
            break;
        }
        (end, message) = run.drive(&mut turn, &mut work).await;
    }
    if let (Some(cap_message), TurnEnd::Done) = (capped, end) {
        end = TurnEnd::StepCap;
        message = cap_message;
    }
    room.turn_log().append_history(turn.new_messages());
    let usage = ctx.usage(turn.usage());
    let summary: String = text.lines().next().unwrap_or("").chars().take(80).collect();
    let checkpoint = match work.commit(&format!("agent: {summary}")).await {
        Ok(Some(cp)) => {
            room.announce_checkpoint(&work.projects, &project_id, &cp)
                .await;
            if let Some(vm) = &vm {
                // The VM runs exactly what storage holds.
                match vm.sync(&project_id, &cp.manifest).await {
                    Ok(report) => crate::changes::announce_displaced(room, &report),
                    Err(e) => room.emit(ServerEvent::Status {
                        turn_id,
                        message: format!("could not sync the VM: {}", e.message()),
                    }),
                }
            }
            Some(cp.info.n)
        }
        Ok(None) => None,
        Err(e) => {
            return Ending {
                usage,
                ..Ending::error(format!("the turn's changes could not be saved: {e}"))
            }
        }
    };
    Ending {
        end,
        message,
        usage,
        checkpoint,
    }
}

/// What every step of one turn shares.
struct TurnRun<'a> {
    /// The token budget: every request goes through `ctx.send`.
    ctx: &'a limits::Context,
    room: &'a Room,
    turn_id: u64,
    providers: &'a [Provider],
    vm: Option<&'a Vm>,
    payer: &'a Payer,
}

impl TurnRun<'_> {
    /// The model/tool loop, until the model stops calling tools or the turn ends.
    async fn drive(&self, turn: &mut Turn, work: &mut Work<'_>) -> (TurnEnd, Option<String>) {
        let room = self.room;
        loop {
            if room.stop_requested() {
                turn.cancel("stopped by the user", "");
                return (TurnEnd::Stopped, None);
            }
            let req = match turn.start_step() {
                Ok(r) => r,
                Err(e) => return (TurnEnd::Error, Some(e.to_string())),
            };
            // The spend cap reserves a bound on this step's cost before it goes out (from the
            // request's size and max_tokens at the model's prices) and settles the real cost.
            let estimate = serde_json::to_string(&req).map(|b| b.len()).unwrap_or(0);
            let (p, id) = (self.payer, self.turn_id);
            let grant = match quota::before_step(
                room,
                p,
                self.providers,
                id,
                &req.model,
                estimate,
                req.max_tokens,
            )
            .await
            {
                Ok(g) => g,
                Err(StepBlock::Stopped) => {
                    turn.cancel("stopped by the user", "");
                    return (TurnEnd::Stopped, None);
                }
                Err(StepBlock::Refused(m)) => {
                    turn.cancel(&m, "");
                    return (TurnEnd::Error, Some(m));
                }
            };
            let result = self
                .ctx
                .send(room, self.providers, self.turn_id, &req)
                .await;
            let usage = result.as_ref().ok().and_then(|o| o.usage);
            quota::after_step(room, p, grant, usage.as_ref()).await;
            let outcome = match result {
                Ok(o) => o,
                Err(StepError::Stopped { partial }) => {
                    turn.cancel("stopped by the user", &partial);
                    return (TurnEnd::Stopped, None);
                }
                Err(StepError::Failed { message, partial }) => {
                    turn.cancel(&message, &partial);
                    return (TurnEnd::Error, Some(message));
                }
            };
            match turn.on_outcome(outcome) {
                Ok(Next::ExecuteTools(calls)) => {
                    for c in calls {
                        let args: Value = serde_json::from_str(&c.arguments)
                            .unwrap_or(Value::String(c.arguments.clone()));
                        let step = Step::start(room, self.turn_id, c.id.clone(), &c.name, args);
                        let (ok, result) = match &c.parsed {
                            Err(e) => (false, format!("error: {e}")),
                            Ok(_) if room.stop_requested() => {
                                (false, "[not run: stopped by the user]".to_string())
                            }
                            Ok(a) => match run_tool(room, work, self.vm, &step, a).await {
                                Ok(out) => (true, out),
                                Err(f) => {
                                    if let ToolFailure::Platform(m) = &f {
                                        console_error!("tool {}: platform failure: {m}", c.name);
                                    }
                                    (false, format!("error: {}", f.message()))
                                }
                            },
                        };
                        if c.parsed.is_ok() {
                            if let Err(e) = turn.on_tool_result(&c.id, &result) {
                                console_error!("tool result: {e}");
                            }
                        }
                        step.finish(ok, truncate_output(&result, SHOWN_RESULT_BYTES));
                    }
                }
                Ok(Next::ContinueAfterLength) => continue,
                Ok(Next::Done { .. }) => return (TurnEnd::Done, None),
                Ok(Next::StepCap { message, .. }) => return (TurnEnd::StepCap, Some(message)),
                Ok(Next::Stuck { message, .. }) => return (TurnEnd::Stuck, Some(message)),
                Ok(Next::Length { message, .. }) => return (TurnEnd::Length, Some(message)),
                Ok(Next::ContentFilter { message, .. }) => {
                    return (TurnEnd::ContentFilter, Some(message))
                }
                Err(e) => return (TurnEnd::Error, Some(e.to_string())),
            }
        }
    }
}
