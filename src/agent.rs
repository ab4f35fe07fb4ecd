//! Drives agent turns inside `ProjectRoom`: streams the model over fetch (with retries and
//! provider fallback), runs tools against the project's working set and the VM API, and turns
//! everything into WebSocket events. The decisions themselves live in core's `agent::turn`.

use crate::azure::{blob_client, FetchTransport};
use crate::config::Config;
use crate::room::Room;
use crate::vm::{ExecRequest, Vm};
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use open_replit_core::agent::edit::apply_edits;
use open_replit_core::agent::tools::ToolArgs;
use open_replit_core::agent::turn::{Next, Turn, TurnConfig};
use open_replit_core::agent::verify;
use open_replit_core::azure::rest::Cond;
use open_replit_core::llm::accumulate::Accumulator;
use open_replit_core::llm::retry::{
    chat_completions_url, request_headers, Failure, RetryDecision, RetryPolicy,
};
use open_replit_core::llm::stream::{StreamDecoder, StreamEvent};
use open_replit_core::llm::types::Message;
use open_replit_core::llm_config::Provider;
use open_replit_core::manifest::Manifest;
use open_replit_core::protocol::{ServerEvent, TurnEnd, Usage};
use open_replit_core::store::project::{object_name, Author, Change, Checkpoint, Projects};
use open_replit_core::store::BlobClient;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;
use std::time::Duration;
use worker::{console_error, AbortController, Delay, Fetch, Headers, Method, Request, RequestInit};

pub const SYSTEM_PROMPT: &str = include_str!("../templates/system_prompt.md");
/// A model stream that sends nothing for this long is treated as broken.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Command output kept for the model: the end of a log is where errors are.
const COMMAND_TAIL_BYTES: usize = 16_000;

/// Starts a turn for `text`, or queues it behind the running one.
pub async fn submit(room: &Rc<Room>, text: String, model: Option<String>) {
    if room.running.get() {
        let position = {
            let mut q = room.queue.borrow_mut();
            q.push_back((text.clone(), model));
            q.len()
        };
        emit(room, ServerEvent::Queued { text, position });
        return;
    }
    room.running.set(true);
    let mut next = Some((text, model));
    while let Some((t, m)) = next {
        room.stop_requested.set(false);
        run_turn(room, t, m).await;
        next = room.queue.borrow_mut().pop_front();
    }
    room.running.set(false);
    room.stop_requested.set(false);
}

fn emit(room: &Room, ev: ServerEvent) {
    if let Err(e) = room.emit(ev) {
        console_error!("emit: {e}");
    }
}

fn next_turn_id(room: &Room) -> u64 {
    #[derive(Deserialize)]
    struct R {
        n: i64,
    }
    room.sql()
        .exec("SELECT COALESCE(MAX(turn_id), 0) AS n FROM turns", None)
        .and_then(|c| c.to_array::<R>())
        .ok()
        .and_then(|r| r.first().map(|r| r.n as u64 + 1))
        .unwrap_or(1)
}

fn load_history(room: &Room) -> Vec<Message> {
    #[derive(Deserialize)]
    struct R {
        json: String,
    }
    // The most recent messages only: old turns fall out of the model's context first.
    let rows: Vec<R> = room
        .sql()
        .exec(
            "SELECT json FROM (SELECT id, json FROM history ORDER BY id DESC LIMIT 200) ORDER BY id",
            None,
        )
        .and_then(|c| c.to_array())
        .unwrap_or_default();
    let mut msgs: Vec<Message> = rows
        .iter()
        .filter_map(|r| serde_json::from_str(&r.json).ok())
        .collect();
    // Never start the window in the middle of a tool exchange.
    while matches!(
        msgs.first(),
        Some(Message::Tool { .. }) | Some(Message::Assistant { .. })
    ) {
        msgs.remove(0);
    }
    msgs
}

/// The files as the agent sees them during a turn: the head checkpoint plus unsaved changes.
pub struct Work<'a> {
    pub projects: Projects<'a, FetchTransport>,
    pub id: String,
    pub base: Option<Checkpoint>,
    pub changes: BTreeMap<String, Option<Vec<u8>>>,
    uploaded: HashSet<String>,
}

impl<'a> Work<'a> {
    pub async fn load(
        blob: &'a BlobClient<FetchTransport>,
        id: &str,
        max_files: Option<usize>,
    ) -> Result<Work<'a>, String> {
        let projects = Projects::new(blob).with_max_files(max_files);
        let base = projects.head(id).await.map_err(|e| e.to_string())?;
        Ok(Work {
            projects,
            id: id.to_string(),
            base,
            changes: BTreeMap::new(),
            uploaded: HashSet::new(),
        })
    }

    pub fn manifest(&self) -> Manifest {
        let mut m = self
            .base
            .as_ref()
            .map(|c| c.manifest.clone())
            .unwrap_or_default();
        for (p, c) in &self.changes {
            match c {
                Some(b) => {
                    m.files.insert(p.clone(), Manifest::entry(b));
                }
                None => {
                    m.files.remove(p);
                }
            }
        }
        m
    }

    pub async fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        if let Some(c) = self.changes.get(path) {
            return c
                .clone()
                .ok_or_else(|| format!("{path} does not exist (deleted in this turn)"));
        }
        let entry = self
            .base
            .as_ref()
            .and_then(|b| b.manifest.files.get(path))
            .ok_or_else(|| format!("{path} does not exist; use list_files to see the project"))?;
        self.projects
            .object(&self.id, &entry.sha256)
            .await
            .map_err(|e| e.to_string())
    }

    /// Uploads the contents the VM does not have yet, then makes its working copy match.
    pub async fn sync_vm(&mut self, vm: &Vm) -> Result<(), String> {
        let pending: Vec<(String, Vec<u8>)> = self
            .changes
            .values()
            .flatten()
            .map(|b| (Manifest::entry(b).sha256, b.clone()))
            .filter(|(sha, _)| !self.uploaded.contains(sha))
            .collect();
        for (sha, body) in pending {
            self.projects
                .blob
                .put(
                    &object_name(&self.id, &sha),
                    body,
                    "application/octet-stream",
                    Cond::None,
                )
                .await
                .map_err(|e| e.to_string())?;
            self.uploaded.insert(sha);
        }
        vm.sync(&self.id, &self.manifest())
            .await
            .map(|_| ())
            .map_err(|e| e.message())
    }

    pub async fn commit(&self, summary: &str) -> Result<Option<Checkpoint>, String> {
        if self.changes.is_empty() {
            return Ok(None);
        }
        let changes = self
            .changes
            .iter()
            .map(|(p, c)| match c {
                Some(b) => Change::Write {
                    path: p.clone(),
                    content: b.clone(),
                },
                None => Change::Delete { path: p.clone() },
            })
            .collect();
        self.projects
            .commit(&self.id, changes, &[], Author::Agent, summary)
            .await
            .map_err(|e| e.to_string())
    }
}

enum StepError {
    Stopped(String),
    Failed(String, String),
}

async fn run_turn(room: &Rc<Room>, text: String, model: Option<String>) {
    let cfg = Config::from_env(room.env());
    let turn_id = next_turn_id(room);
    let model = model
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| cfg.llm.status().default_model);
    let started = js_sys::Date::now() as i64;
    let _ = room.sql().exec(
        "INSERT INTO turns (turn_id, text, model, started_ms) VALUES (?, ?, ?, ?)",
        vec![
            worker::SqlStorageValue::try_from_i64(turn_id as i64).unwrap_or(0i64.into()),
            text.as_str().into(),
            model.as_str().into(),
            worker::SqlStorageValue::try_from_i64(started).unwrap_or(0i64.into()),
        ],
    );
    emit(
        room,
        ServerEvent::TurnStarted {
            turn_id,
            text: text.clone(),
            model: model.clone(),
        },
    );
    let finish = |end: TurnEnd, message: Option<String>, usage: Usage, checkpoint: Option<u64>| {
        let _ = room.sql().exec(
            "UPDATE turns SET end_reason = ?, prompt_tokens = ?, completion_tokens = ?, cost = ?, checkpoint = ?, finished_ms = ? WHERE turn_id = ?",
            vec![
                serde_json::to_value(end).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default().into(),
                (usage.prompt_tokens as f64).into(),
                (usage.completion_tokens as f64).into(),
                usage.cost.into(),
                checkpoint.map(|c| c as f64).into(),
                js_sys::Date::now().into(),
                (turn_id as f64).into(),
            ],
        );
        emit(
            room,
            ServerEvent::TurnFinished {
                turn_id,
                end,
                message,
                usage,
                checkpoint,
            },
        );
    };
    let providers = cfg.llm.providers();
    if providers.is_empty() {
        finish(
            TurnEnd::Error,
            cfg.llm.status().setup_hint,
            Usage::default(),
            None,
        );
        return;
    }
    let Some(project_id) = room.project_id() else {
        finish(
            TurnEnd::Error,
            Some("this project has no id yet; reload the page".into()),
            Usage::default(),
            None,
        );
        return;
    };
    let blob = match blob_client(&cfg) {
        Ok(b) => b,
        Err(e) => return finish(TurnEnd::Error, Some(e.message()), Usage::default(), None),
    };
    let mut work = match Work::load(&blob, &project_id, cfg.max_project_files).await {
        Ok(w) => w,
        Err(e) => {
            return finish(
                TurnEnd::Error,
                Some(format!("could not read the project: {e}")),
                Usage::default(),
                None,
            )
        }
    };
    let vm = Vm::from_config(&cfg).ok();
    let mut tc = TurnConfig::new(model);
    if let Some(n) = cfg.agent_max_steps {
        tc.max_steps = n.max(1);
    }
    let mut turn = Turn::new(tc, SYSTEM_PROMPT, load_history(room), &text);
    let (mut end, mut message) = drive(
        room,
        &mut turn,
        &mut work,
        vm.as_ref(),
        turn_id,
        &providers,
        &cfg,
    )
    .await;
    // Verify and fix: when the turn changed files, check that the app really runs; failures go
    // back to the model as a new step, up to VERIFY_FIX_ROUNDS times.
    let mut round = 0;
    let mut verified: Option<Manifest> = None;
    while end == TurnEnd::Done && cfg.verify_fix_rounds > 0 && !work.changes.is_empty() {
        let Some(vm) = vm.as_ref() else { break };
        let current = work.manifest();
        if verified.as_ref() == Some(&current) {
            break;
        }
        emit(
            room,
            ServerEvent::Status {
                turn_id,
                message: "verifying".into(),
            },
        );
        let failures = crate::verify::run(room, vm, &mut work, turn_id, round).await;
        verified = Some(current);
        emit(
            room,
            ServerEvent::Status {
                turn_id,
                message: verify::status_line(&failures),
            },
        );
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
        if turn
            .resume_with(&verify::fix_request(
                &failures,
                round,
                cfg.verify_fix_rounds,
            ))
            .is_err()
        {
            break;
        }
        (end, message) = drive(
            room,
            &mut turn,
            &mut work,
            Some(vm),
            turn_id,
            &providers,
            &cfg,
        )
        .await;
    }
    for m in turn.new_messages() {
        if let Ok(j) = serde_json::to_string(m) {
            let _ = room
                .sql()
                .exec("INSERT INTO history (json) VALUES (?)", vec![j.into()]);
        }
    }
    let u = turn.usage();
    let usage = Usage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        cost: u.cost,
    };
    let summary: String = text.lines().next().unwrap_or("").chars().take(80).collect();
    let checkpoint = match work.commit(&format!("agent: {summary}")).await {
        Ok(Some(cp)) => {
            crate::project_api::announce(room, &work.projects, &project_id, &cp).await;
            if let Some(vm) = &vm {
                // The VM runs exactly what storage holds.
                if let Err(e) = vm.sync(&project_id, &cp.manifest).await {
                    emit(
                        room,
                        ServerEvent::Status {
                            turn_id,
                            message: format!("could not sync the VM: {}", e.message()),
                        },
                    );
                }
            }
            Some(cp.info.n)
        }
        Ok(None) => None,
        Err(e) => {
            finish(
                TurnEnd::Error,
                Some(format!("the turn's changes could not be saved: {e}")),
                usage,
                None,
            );
            return;
        }
    };
    finish(end, message, usage, checkpoint);
}

/// The model/tool loop of one turn, until the model stops calling tools or the turn ends.
async fn drive(
    room: &Rc<Room>,
    turn: &mut Turn,
    work: &mut Work<'_>,
    vm: Option<&Vm>,
    turn_id: u64,
    providers: &[Provider],
    cfg: &Config,
) -> (TurnEnd, Option<String>) {
    loop {
        if room.stop_requested.get() {
            turn.cancel("stopped by the user", "");
            return (TurnEnd::Stopped, None);
        }
        let req = match turn.start_step() {
            Ok(r) => r,
            Err(e) => return (TurnEnd::Error, Some(e.to_string())),
        };
        let outcome = match stream_step(
            room,
            cfg,
            providers,
            turn_id,
            &serde_json::to_string(&req).unwrap_or_default(),
        )
        .await
        {
            Ok(o) => o,
            Err(StepError::Stopped(partial)) => {
                turn.cancel("stopped by the user", &partial);
                return (TurnEnd::Stopped, None);
            }
            Err(StepError::Failed(msg, partial)) => {
                turn.cancel(&msg, &partial);
                return (TurnEnd::Error, Some(msg));
            }
        };
        match turn.on_outcome(outcome) {
            Ok(Next::ExecuteTools(calls)) => {
                for c in calls {
                    let args: Value = serde_json::from_str(&c.arguments)
                        .unwrap_or(Value::String(c.arguments.clone()));
                    emit(
                        room,
                        ServerEvent::ToolCallStarted {
                            turn_id,
                            call_id: c.id.clone(),
                            name: c.name.clone(),
                            arguments: args,
                        },
                    );
                    let t0 = js_sys::Date::now();
                    let (ok, result) = match &c.parsed {
                        Err(e) => (false, format!("error: {e}")),
                        Ok(_) if room.stop_requested.get() => {
                            (false, "[not run: stopped by the user]".to_string())
                        }
                        Ok(a) => match run_tool(room, work, vm, turn_id, &c.id, a).await {
                            Ok(out) => (true, out),
                            Err(e) => (false, format!("error: {e}")),
                        },
                    };
                    if c.parsed.is_ok() {
                        if let Err(e) = turn.on_tool_result(&c.id, &result) {
                            console_error!("tool result: {e}");
                        }
                    }
                    emit(
                        room,
                        ServerEvent::ToolCallFinished {
                            turn_id,
                            call_id: c.id.clone(),
                            ok,
                            result: open_replit_core::agent::turn::truncate_output(&result, 4_000),
                            duration_ms: (js_sys::Date::now() - t0) as u64,
                        },
                    );
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

/// Streams one model step, retrying and falling back between providers until an outcome.
async fn stream_step(
    room: &Room,
    cfg: &Config,
    providers: &[Provider],
    turn_id: u64,
    body: &str,
) -> Result<open_replit_core::llm::accumulate::Outcome, StepError> {
    let policy = RetryPolicy::default();
    let referer = room
        .get_kv("origin")
        .unwrap_or_else(|| "http://localhost".into());
    let _ = cfg;
    let mut pi = 0;
    let mut attempt = 1;
    loop {
        let p = &providers[pi];
        let has_fallback = pi + 1 < providers.len();
        let headers = Headers::new();
        for (k, v) in request_headers(p, &referer) {
            let _ = headers.set(&k, &v);
        }
        let _ = headers.set("content-type", "application/json");
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(body.into()));
        let abort = AbortController::default();
        let signal = abort.signal();
        *room.abort.borrow_mut() = Some(abort);
        let failure: (Option<u16>, Option<String>, String);
        let resp = match Request::new_with_init(&chat_completions_url(p), &init) {
            Ok(r) => Fetch::Request(r).send_with_signal(&signal).await,
            Err(e) => Err(e),
        };
        if room.stop_requested.get() {
            return Err(StepError::Stopped(String::new()));
        }
        match resp {
            Ok(mut r) if r.status_code() == 200 => {
                let mut acc = Accumulator::new();
                let mut dec = StreamDecoder::new();
                let mut shown = false;
                let mut stream = match r.stream() {
                    Ok(s) => s,
                    Err(e) => return Err(StepError::Failed(e.to_string(), String::new())),
                };
                // One idle timer for the whole stream (not one per chunk): when it fires, it
                // is re-armed for what is left if data came in meanwhile.
                let mut idle = Box::pin(Delay::from(IDLE_TIMEOUT));
                let mut last_data = js_sys::Date::now();
                let broke: Option<String> = loop {
                    let next = select(stream.next(), &mut idle).await;
                    let chunk = match next {
                        Either::Left((Some(Ok(c)), _)) => c,
                        Either::Left((Some(Err(e)), _)) => {
                            break Some(format!("the stream broke: {e}"))
                        }
                        Either::Left((None, _)) => break None,
                        Either::Right(_) => {
                            let quiet = js_sys::Date::now() - last_data;
                            let limit = IDLE_TIMEOUT.as_millis() as f64;
                            if quiet < limit {
                                idle = Box::pin(Delay::from(std::time::Duration::from_millis(
                                    (limit - quiet) as u64 + 1,
                                )));
                                continue;
                            }
                            break Some(format!("no data for {} s", IDLE_TIMEOUT.as_secs()));
                        }
                    };
                    last_data = js_sys::Date::now();
                    let mut bad = None;
                    // Deltas that arrived in one network read go out as one event: the same
                    // text as early as possible, with one log write and one send per socket
                    // instead of one per token.
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
                    if !text.is_empty() {
                        shown = true;
                        emit(room, ServerEvent::AssistantDelta { turn_id, text });
                    }
                    if bad.is_some() {
                        break bad;
                    }
                };
                if room.stop_requested.get() {
                    return Err(StepError::Stopped(acc.text().to_string()));
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
                    None => acc.finish().map_err(|f| format!("{f:?}")),
                };
                match result {
                    Ok(o) => return Ok(o),
                    // Text already reached people: a retry would repeat it, so report instead.
                    Err(m) if shown => {
                        return Err(StepError::Failed(
                            format!("the model's answer broke off: {m}"),
                            partial,
                        ))
                    }
                    Err(m) => failure = (None, None, m),
                }
            }
            Ok(mut r) => {
                let status = r.status_code();
                let retry_after = r.headers().get("retry-after").ok().flatten();
                let text = r.text().await.unwrap_or_default();
                failure = (Some(status), retry_after, text);
            }
            Err(e) => failure = (None, None, e.to_string()),
        }
        let now = (js_sys::Date::now() / 1000.0) as u64;
        let f = match &failure {
            (Some(status), ra, body) => Failure::Http {
                status: *status,
                retry_after: ra.as_deref(),
                body,
            },
            (None, _, m)
                if m.contains("stream")
                    || m.contains("Truncated")
                    || m.contains("Malformed")
                    || m.contains("no data") =>
            {
                Failure::BrokenStream { message: m }
            }
            (None, _, m) => Failure::Connection { message: m },
        };
        match policy.decide(p.name, attempt, &f, now, has_fallback) {
            RetryDecision::Retry { after_ms } => {
                emit(
                    room,
                    ServerEvent::Status {
                        turn_id,
                        message: format!(
                            "{} is busy; retrying in {:.1} s",
                            p.name,
                            after_ms as f64 / 1000.0
                        ),
                    },
                );
                Delay::from(Duration::from_millis(after_ms)).await;
                if room.stop_requested.get() {
                    return Err(StepError::Stopped(String::new()));
                }
                attempt += 1;
            }
            RetryDecision::FallbackToNextProvider { reason } => {
                emit(
                    room,
                    ServerEvent::Status {
                        turn_id,
                        message: format!("{reason}; switching to {}", providers[pi + 1].name),
                    },
                );
                pi += 1;
                attempt = 1;
            }
            RetryDecision::Fail { user_message } => {
                return Err(StepError::Failed(user_message, String::new()))
            }
        }
    }
}

/// Records a write (`Some`) or delete (`None`) in the turn's working set and tells everyone.
fn set_file(room: &Room, work: &mut Work<'_>, turn_id: u64, path: &str, content: Option<Vec<u8>>) {
    let sha256 = content.as_ref().map(|b| Manifest::entry(b).sha256);
    work.changes.insert(path.to_string(), content);
    emit(
        room,
        ServerEvent::FileChanged {
            turn_id,
            path: path.to_string(),
            sha256,
        },
    );
}

async fn run_tool(
    room: &Room,
    work: &mut Work<'_>,
    vm: Option<&Vm>,
    turn_id: u64,
    call_id: &str,
    args: &ToolArgs,
) -> Result<String, String> {
    match args {
        ToolArgs::ListFiles(a) => {
            let m = work.manifest();
            let dir = a.path.as_deref().unwrap_or("").trim_end_matches('/');
            let prefix = if dir.is_empty() {
                String::new()
            } else {
                format!("{dir}/")
            };
            let lines: Vec<String> = m
                .files
                .iter()
                .filter(|(p, _)| p.starts_with(&prefix))
                .map(|(p, e)| format!("{p} ({} bytes)", e.size))
                .collect();
            if lines.is_empty() {
                return Err(format!("no files under {dir:?}"));
            }
            Ok(lines.join("\n"))
        }
        ToolArgs::ReadFile(a) => {
            let b = work.read(&a.path).await?;
            String::from_utf8(b)
                .map_err(|_| format!("{} is binary; it cannot be shown as text", a.path))
        }
        ToolArgs::WriteFile(a) => {
            let existed = work.read(&a.path).await.is_ok();
            set_file(
                room,
                work,
                turn_id,
                &a.path,
                Some(a.content.clone().into_bytes()),
            );
            Ok(format!(
                "{} {} ({} bytes)",
                if existed { "updated" } else { "created" },
                a.path,
                a.content.len()
            ))
        }
        ToolArgs::DeleteFile(a) => {
            work.read(&a.path).await?;
            set_file(room, work, turn_id, &a.path, None);
            Ok(format!("deleted {}", a.path))
        }
        ToolArgs::EditFile(a) => {
            let old = String::from_utf8(work.read(&a.path).await?)
                .map_err(|_| format!("{} is binary", a.path))?;
            let new = apply_edits(&old, &a.edits).map_err(|e| e.to_string())?;
            set_file(room, work, turn_id, &a.path, Some(new.into_bytes()));
            Ok(format!(
                "edited {} ({} edit(s) applied)",
                a.path,
                a.edits.len()
            ))
        }
        ToolArgs::RunCommand(a) => {
            let vm = vm.ok_or("the VM API is not configured (VM_API_SECRET is missing)")?;
            work.sync_vm(vm).await?;
            let mut out = String::new();
            let req = ExecRequest {
                command: &a.command,
                cwd: a.cwd.as_deref().unwrap_or(""),
                timeout_s: a.timeout_s() as u64,
                env: BTreeMap::new(),
                cache: None,
            };
            let project = work.id.clone();
            // Stop aborts this request, and the VM kills the command when its client goes.
            let ctl = AbortController::default();
            let signal = ctl.signal();
            *room.abort.borrow_mut() = Some(ctl);
            let exit = {
                let r = vm
                    .exec(&project, &req, Some(&signal), |stream, data| {
                        out.push_str(data);
                        emit(
                            room,
                            ServerEvent::ToolOutput {
                                turn_id,
                                call_id: call_id.to_string(),
                                stream: stream.to_string(),
                                data: data.to_string(),
                            },
                        );
                    })
                    .await;
                r.map_err(|e| e.message())?
            };
            let shown = if out.len() > COMMAND_TAIL_BYTES {
                let mut cut = out.len() - COMMAND_TAIL_BYTES;
                while !out.is_char_boundary(cut) {
                    cut += 1;
                }
                format!("[first {} bytes of output omitted]\n{}", cut, &out[cut..])
            } else {
                out
            };
            let mut head = match exit.exit_code {
                Some(c) => format!("exit code {c} after {} ms", exit.duration_ms),
                None => format!("killed after {} ms", exit.duration_ms),
            };
            if exit.timed_out {
                head.push_str(&format!(" (timed out after {} s)", a.timeout_s()));
            }
            if exit.truncated {
                head.push_str(" (the VM cut the output at its cap)");
            }
            Ok(format!("{head}\n{shown}"))
        }
        ToolArgs::StartPreview(_) | ToolArgs::RestartPreview(_) => {
            let vm = vm.ok_or("the VM API is not configured (VM_API_SECRET is missing)")?;
            work.sync_vm(vm).await?;
            let restart = matches!(args, ToolArgs::RestartPreview(_));
            let manifest = work.manifest();
            let v = crate::preview::start(
                room,
                vm,
                &work.id,
                &manifest,
                restart,
                Some((turn_id, call_id)),
            )
            .await
            .map_err(|e| e.message())?;
            Ok(serde_json::to_string_pretty(&v).unwrap_or_default())
        }
        ToolArgs::ReadDocs(a) => {
            let cfg = Config::from_env(room.env());
            let mut client = blob_client(&cfg).map_err(|e| e.message())?;
            client.container = "codebase-docs".into();
            match &a.name {
                None => {
                    let items = client.list_all("", None).await.map_err(|e| e.to_string())?;
                    if items.is_empty() {
                        return Ok("no reference documents are available".into());
                    }
                    Ok(items
                        .iter()
                        .map(|i| format!("{} ({} bytes)", i.name, i.size))
                        .collect::<Vec<_>>()
                        .join("\n"))
                }
                Some(n) => {
                    let r = client
                        .get(n)
                        .await
                        .map_err(|e| format!("document {n:?}: {e}"))?;
                    String::from_utf8(r.body).map_err(|_| format!("{n} is not text"))
                }
            }
        }
    }
}
