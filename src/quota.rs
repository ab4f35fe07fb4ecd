//! Per-user quotas in the Worker: the `UserQuota` Durable Object (one per user id), which
//! serialises spend reservations so parallel turns cannot pass the daily cap by more than one
//! step, keeps the user's rate windows and their own OpenRouter key sealed at rest; and what
//! rooms and routes call: who the user is, rate checks, who pays for a turn, reserve before and
//! settle after each model step, and the `/api/quota` routes. The arithmetic is core's `quota`.

use crate::azure::random_bytes;
use crate::config::Config;
use crate::error::ApiError;
use crate::room_state::Room;
use futures_util::future::select;
use open_replit_core::llm::types::Usage;
use open_replit_core::llm_config::{Provider, OPENROUTER_DEFAULT_BASE_URL};
use open_replit_core::protocol::ServerEvent;
use open_replit_core::quota::{
    cap_refusal, open_key, seal_key, step_cost, step_upper_bound, unknown_price_refusal, Admit,
    KeyStatus, Ledger, Price, QuotaStatus, RateKind, RateWindow, SealedKey,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;
use worker::{
    durable_object, Delay, DurableObject, Env, Headers, Method, Request, RequestInit, Response,
    Result, State,
};

/// The gate sets `USER_HEADER` on every request it forwards to a project room (and strips any
/// `x-or-*` header a client sent); `LOCAL_USER` is `make dev`'s one local user.
pub use open_replit_core::auth::{LOCAL_USER, USER_HEADER};
/// The longest one reservation request waits inside `UserQuota` before answering `wait`.
const RESERVE_WAIT_MS: f64 = 10_000.0;

/// The user of a request that reached a project room: the gate's `x-or-user`, else `local`.
pub fn room_user(req: &Request) -> String {
    req.headers()
        .get(USER_HEADER)
        .ok()
        .flatten()
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| LOCAL_USER.to_string())
}

// ---- the Durable Object ----

#[derive(Deserialize)]
struct ReserveReq {
    cap: f64,
    bound: f64,
}

#[derive(Deserialize)]
struct SettleReq {
    id: u64,
    cost: Option<f64>,
}

#[derive(Deserialize)]
struct CostReq {
    cost: Option<f64>,
    byok: bool,
}

#[derive(Deserialize)]
struct RateReq {
    kind: RateKind,
    limit: u32,
}

#[derive(Serialize, Deserialize)]
struct KeyReq {
    key: String,
}

#[derive(Serialize, Deserialize)]
struct OpenedKey {
    key: Option<String>,
}

/// What `GET /status` of the object answers.
#[derive(Serialize, Deserialize)]
struct LedgerStatus {
    spent: f64,
    byok_spent: f64,
    in_flight: usize,
    key: KeyStatus,
}

/// One user's quota state. Requests come only from this Worker, through the binding.
#[durable_object]
pub struct UserQuota {
    state: State,
    env: Env,
    loaded: Cell<bool>,
    ledger: RefCell<Ledger>,
    rates: RefCell<HashMap<RateKind, RateWindow>>,
    /// Reservations waiting for a settle; each is woken to ask again.
    waiters: RefCell<Vec<futures_channel::oneshot::Sender<()>>>,
}

impl DurableObject for UserQuota {
    fn new(state: State, env: Env) -> Self {
        UserQuota {
            state,
            env,
            loaded: Cell::new(false),
            ledger: RefCell::new(Ledger::default()),
            rates: RefCell::new(HashMap::new()),
            waiters: RefCell::new(Vec::new()),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        Ok(self
            .handle(req)
            .await
            .unwrap_or_else(ApiError::into_response))
    }
}

impl UserQuota {
    async fn load(&self) -> Result<()> {
        if self.loaded.get() {
            return Ok(());
        }
        let storage = self.state.storage();
        let ledger: Option<Ledger> = storage.get("ledger").await?;
        let rates: Option<HashMap<RateKind, RateWindow>> = storage.get("rates").await?;
        // Another request may have loaded (and changed) the state while this one awaited.
        if !self.loaded.get() {
            *self.ledger.borrow_mut() = ledger.unwrap_or_default();
            *self.rates.borrow_mut() = rates.unwrap_or_default();
            self.loaded.set(true);
        }
        Ok(())
    }

    async fn save_ledger(&self) -> Result<()> {
        let l = self.ledger.borrow().clone();
        self.state.storage().put("ledger", l).await
    }

    fn wake_waiters(&self) {
        for w in self.waiters.borrow_mut().drain(..) {
            let _ = w.send(());
        }
    }

    async fn handle(&self, mut req: Request) -> std::result::Result<Response, ApiError> {
        self.load().await?;
        let user = room_user(&req);
        let now = js_sys::Date::now();
        let path = req.path();
        match (req.method(), path.as_str()) {
            (Method::Post, "/reserve") => {
                let r: ReserveReq = req.json().await?;
                let deadline = now + RESERVE_WAIT_MS;
                loop {
                    let now = js_sys::Date::now();
                    let admit = self.ledger.borrow_mut().reserve(r.cap, r.bound, now);
                    if admit != Admit::Wait || now >= deadline {
                        self.save_ledger().await?;
                        return Ok(Response::from_json(&admit)?);
                    }
                    let (tx, rx) = futures_channel::oneshot::channel();
                    self.waiters.borrow_mut().push(tx);
                    let left = Duration::from_millis((deadline - now).max(1.0) as u64);
                    let _ = select(rx, Box::pin(Delay::from(left))).await;
                }
            }
            (Method::Post, "/settle") => {
                let r: SettleReq = req.json().await?;
                let charged = self.ledger.borrow_mut().settle(r.id, r.cost, now);
                self.save_ledger().await?;
                self.wake_waiters();
                Ok(Response::from_json(&json!({ "charged": charged }))?)
            }
            (Method::Post, "/record") => {
                // A step nobody reserved for: the user's own key, or no cap configured.
                let r: CostReq = req.json().await?;
                let cost = r.cost.filter(|c| c.is_finite() && *c > 0.0).unwrap_or(0.0);
                {
                    let mut l = self.ledger.borrow_mut();
                    if r.byok {
                        l.record_byok(cost, now);
                    } else {
                        l.roll(now);
                        l.spent += cost;
                    }
                }
                self.save_ledger().await?;
                Ok(Response::from_json(&json!({}))?)
            }
            (Method::Post, "/rate") => {
                let r: RateReq = req.json().await?;
                let hit = self.rates.borrow_mut().entry(r.kind).or_default().hit(
                    r.limit,
                    r.kind.window_ms(),
                    now,
                );
                let rates = self.rates.borrow().clone();
                self.state.storage().put("rates", rates).await?;
                match hit {
                    Ok(()) => Ok(Response::from_json(&json!({}))?),
                    Err(after) => Err(ApiError::RateLimited(r.kind.refusal(r.limit, after))),
                }
            }
            (Method::Get, "/status") => {
                self.ledger.borrow_mut().roll(now);
                let key: Option<SealedKey> = self.state.storage().get("byok").await?;
                let l = self.ledger.borrow();
                Ok(Response::from_json(&LedgerStatus {
                    spent: l.spent,
                    byok_spent: l.byok_spent,
                    in_flight: l.in_flight(),
                    key: KeyStatus {
                        set: key.is_some(),
                        last4: key.map(|k| k.last4),
                    },
                })?)
            }
            (Method::Put, "/key") => {
                let r: KeyReq = req.json().await?;
                let secret = Config::from_env(&self.env)
                    .key_encryption_secret
                    .unwrap_or_default();
                let sealed = seal_key(&secret, &user, &r.key, random_bytes::<12>())
                    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
                let status = KeyStatus {
                    set: true,
                    last4: Some(sealed.last4.clone()),
                };
                self.state.storage().put("byok", sealed).await?;
                Ok(Response::from_json(&status)?)
            }
            (Method::Delete, "/key") => {
                self.state.storage().delete("byok").await?;
                Ok(Response::from_json(&KeyStatus {
                    set: false,
                    last4: None,
                })?)
            }
            (Method::Get, "/key") => {
                // Only rooms starting a turn ask for this; it never leaves the Worker.
                let Some(sealed) = self.state.storage().get::<SealedKey>("byok").await? else {
                    return Ok(Response::from_json(&OpenedKey { key: None })?);
                };
                let secret = Config::from_env(&self.env)
                    .key_encryption_secret
                    .unwrap_or_default();
                let key = open_key(&secret, &user, &sealed)
                    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
                Ok(Response::from_json(&OpenedKey { key: Some(key) })?)
            }
            (_, p) if p == "/vault" || p.starts_with("/vault/") => {
                crate::vault::object(&self.state, &self.env, &user, req).await
            }
            (m, p) => Err(ApiError::NotFound(format!("UserQuota: {m:?} {p}"))),
        }
    }
}

// ---- calling the object ----

pub(crate) async fn call<T: serde::de::DeserializeOwned>(
    env: &Env,
    user: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> std::result::Result<T, ApiError> {
    let stub = env.durable_object("USER_QUOTA")?.get_by_name(user)?;
    let headers = Headers::new();
    headers.set(USER_HEADER, user)?;
    headers.set("content-type", "application/json")?;
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(headers);
    if let Some(b) = body {
        init.with_body(Some(b.to_string().into()));
    }
    let req = Request::new_with_init(&format!("https://user-quota{path}"), &init)?;
    let mut resp = stub.fetch_with_request(req).await?;
    let status = resp.status_code();
    if status != 200 {
        let v: Value = resp.json().await.unwrap_or_default();
        let message = v["error"]["message"]
            .as_str()
            .unwrap_or("the quota service failed")
            .to_string();
        return Err(match status {
            429 => ApiError::RateLimited(message),
            400 => ApiError::BadRequest(message),
            _ => ApiError::Internal(message),
        });
    }
    Ok(resp.json().await?)
}

/// Counts one `kind` hit for `user`; a full window is a 429 with when to try again.
pub async fn hit(
    env: &Env,
    cfg: &Config,
    user: &str,
    kind: RateKind,
) -> std::result::Result<(), ApiError> {
    let limit = cfg.rate_limits.limit(kind);
    if limit == 0 {
        return Ok(());
    }
    let _: Value = call(
        env,
        user,
        Method::Post,
        "/rate",
        Some(json!({ "kind": kind, "limit": limit })),
    )
    .await?;
    Ok(())
}

// ---- who pays for a turn, and each step's reservation ----

/// Whose money a turn spends.
pub struct Payer {
    pub user: String,
    /// The turn runs on the user's own key: no cap, and never the operator's keys.
    pub own_key: bool,
    /// The operator's daily cap in USD, for turns on the operator's keys.
    pub cap: Option<f64>,
}

/// The providers a turn of `user` may use, and who pays. A stored key means OpenRouter with
/// that key and nothing else (the operator's providers would spend the operator's credits).
pub async fn providers_for(
    room: &Room,
    user: &str,
) -> std::result::Result<(Vec<Provider>, Payer), String> {
    let cfg = room.config();
    let opened: OpenedKey = call(room.env(), user, Method::Get, "/key", None)
        .await
        .map_err(|e| format!("your stored OpenRouter key: {}", e.message()))?;
    if let Some(key) = opened.key {
        let base = cfg
            .llm
            .openrouter_base_url
            .clone()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| OPENROUTER_DEFAULT_BASE_URL.to_string());
        return Ok((
            vec![Provider {
                name: "openrouter",
                base_url: base.trim_end_matches('/').to_string(),
                api_key: Some(key),
                fallback_model: None,
            }],
            Payer {
                user: user.to_string(),
                own_key: true,
                cap: None,
            },
        ));
    }
    Ok((
        cfg.llm.providers(),
        Payer {
            user: user.to_string(),
            own_key: false,
            cap: cfg.daily_spend_cap_usd,
        },
    ))
}

/// What one step holds until it is settled.
pub enum Grant {
    /// Nothing reserved (own key, or no cap): the cost is recorded afterwards.
    Unreserved,
    Reserved {
        id: u64,
        price: Price,
    },
}

/// Why a step may not run.
pub enum StepBlock {
    /// The cap is spent or the price is unknown: end the turn with this message.
    Refused(String),
    /// A person pressed stop while the step waited for others to settle.
    Stopped,
}

/// The price of `model` at the first provider (the one a step tries first), from its
/// `/models` list (`models::list`, cached per isolate and per provider).
async fn price_of(p: &Provider, model: &str) -> std::result::Result<Option<Price>, String> {
    let (_, list) = crate::models::list(std::slice::from_ref(p))
        .await
        .map_err(|e| format!("could not read model prices from {}: {e}", p.name))?;
    Ok(list.iter().find(|m| m.id == model).and_then(Price::of))
}

/// Before a model step: on the operator's keys under a cap, reserve the most the step can
/// cost, waiting while the user's other steps might not fit beside it.
pub async fn before_step(
    room: &Room,
    payer: &Payer,
    providers: &[Provider],
    turn_id: u64,
    model: &str,
    request_bytes: usize,
    max_tokens: Option<u32>,
) -> std::result::Result<Grant, StepBlock> {
    let Some(cap) = payer.cap.filter(|_| !payer.own_key) else {
        return Ok(Grant::Unreserved);
    };
    let Some(first) = providers.first() else {
        return Ok(Grant::Unreserved);
    };
    // Fail closed: without a price there is no bound, and the step would spend blind.
    let price = match price_of(first, model).await {
        Ok(Some(p)) => p,
        Ok(None) => return Err(StepBlock::Refused(unknown_price_refusal(model))),
        Err(e) => {
            return Err(StepBlock::Refused(format!(
                "{e}; the daily spending limit cannot be checked, so the step was not sent"
            )))
        }
    };
    let Some(bound) = step_upper_bound(&price, request_bytes, max_tokens) else {
        return Err(StepBlock::Refused(unknown_price_refusal(model)));
    };
    let mut told = false;
    loop {
        let admit: Admit = call(
            room.env(),
            &payer.user,
            Method::Post,
            "/reserve",
            Some(json!({ "cap": cap, "bound": bound })),
        )
        .await
        .map_err(|e| {
            StepBlock::Refused(format!(
                "the spending limit could not be checked: {}",
                e.message()
            ))
        })?;
        match admit {
            Admit::Granted { id, .. } => return Ok(Grant::Reserved { id, price }),
            Admit::Refused { spent, cap } => {
                return Err(StepBlock::Refused(cap_refusal(spent, cap)))
            }
            Admit::Wait => {
                if room.stop_requested() {
                    return Err(StepBlock::Stopped);
                }
                if !told {
                    told = true;
                    room.emit(ServerEvent::Status {
                        turn_id,
                        message: "waiting for your other turns: today's remaining budget is \
                                  in use"
                            .into(),
                    });
                }
            }
        }
    }
}

/// After a model step (whatever its end): charge its real cost. An unknown cost charges the
/// whole reservation (fail closed).
pub async fn after_step(room: &Room, payer: &Payer, grant: Grant, usage: Option<&Usage>) {
    let result = match grant {
        Grant::Reserved { id, price } => call::<Value>(
            room.env(),
            &payer.user,
            Method::Post,
            "/settle",
            Some(json!({ "id": id, "cost": step_cost(usage, Some(&price)) })),
        )
        .await
        .map(|_| ()),
        Grant::Unreserved => call::<Value>(
            room.env(),
            &payer.user,
            Method::Post,
            "/record",
            Some(json!({ "cost": step_cost(usage, None), "byok": payer.own_key })),
        )
        .await
        .map(|_| ()),
    };
    if let Err(e) = result {
        // The reservation lapses after its lease and is then charged in full.
        worker::console_error!("quota settle: {}", e.message());
    }
}

// ---- /api/quota ----

/// `GET /api/quota`, `PUT /api/quota/key`, `DELETE /api/quota/key`. The key goes in and never
/// comes back: replies say only whether one is set and its last four characters.
pub async fn handle(
    mut req: Request,
    env: &Env,
    user: &str,
) -> std::result::Result<Response, ApiError> {
    let user = user.to_string();
    let cfg = Config::from_env(env);
    hit(env, &cfg, &user, RateKind::Request).await?;
    let path = req.path();
    match (req.method(), path.as_str()) {
        (Method::Get, "/api/quota") => {
            let s: LedgerStatus = call(env, &user, Method::Get, "/status", None).await?;
            Ok(Response::from_json(&QuotaStatus {
                user,
                spent_today: s.spent,
                byok_spent_today: s.byok_spent,
                daily_cap: cfg.daily_spend_cap_usd,
                steps_in_flight: s.in_flight,
                key: s.key,
            })?)
        }
        (Method::Put, "/api/quota/key") => {
            let text = req.text().await?;
            let body: KeyReq = serde_json::from_str(&text)
                .map_err(|_| ApiError::BadRequest("expected {\"key\": \"sk-or-...\"}".into()))?;
            if cfg.key_encryption_secret.is_none() {
                return Err(ApiError::BadRequest(
                    "this server cannot store keys: KEY_ENCRYPTION_SECRET is not set".into(),
                ));
            }
            let s: KeyStatus = call(
                env,
                &user,
                Method::Put,
                "/key",
                Some(json!({ "key": body.key })),
            )
            .await?;
            Ok(Response::from_json(&s)?)
        }
        (Method::Delete, "/api/quota/key") => {
            let s: KeyStatus = call(env, &user, Method::Delete, "/key", None).await?;
            Ok(Response::from_json(&s)?)
        }
        (m, p) => Err(ApiError::NotFound(format!("{m:?} {p}"))),
    }
}

// ---- chat messages ----

/// Checks a chat message of `user` before it starts or queues a turn: its size, its model
/// against the allow-list, the user's turn rate and the room's queue. `Err` is the message
/// for the sender's socket.
pub async fn admit_message(
    room: &Room,
    user: &str,
    text: &str,
    model: Option<&str>,
) -> std::result::Result<(), String> {
    let cfg = room.config();
    if text.len() > cfg.max_message_bytes {
        return Err(format!(
            "the message is {} bytes; the limit is {} bytes. Put long content in a file instead",
            text.len(),
            cfg.max_message_bytes
        ));
    }
    let default = cfg.llm.status().default_model;
    let model = model.filter(|m| !m.trim().is_empty()).unwrap_or(&default);
    cfg.allowed_models.check(model)?;
    hit(room.env(), cfg, user, RateKind::Turn)
        .await
        .map_err(ApiError::message)?;
    // After the last await, so nothing can queue between this check and the caller's admit.
    if room.turn_running() && room.queued() >= cfg.max_queued {
        return Err(format!(
            "{} messages are already waiting for the running turn (the limit); wait for it to \
             finish or press stop, then send again",
            room.queued()
        ));
    }
    Ok(())
}
