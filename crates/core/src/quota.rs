//! Per-user quotas as pure logic: the operator's rules (daily spend cap, model allow-list,
//! message and queue caps, rate limits), what a model step may cost before it runs (from the
//! provider's `/models` prices) and what it did cost after (`usage.cost`), the reservation
//! ledger that keeps parallel steps within the cap plus one step, fixed rate windows, and the
//! sealing of a person's own OpenRouter key with AES-256-GCM.

use crate::llm::models::ModelInfo;
use crate::llm::types::Usage;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest chat message in bytes (the default of `MAX_MESSAGE_BYTES`).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// Most messages waiting behind a running turn (the default of `MAX_QUEUED_MESSAGES`).
pub const DEFAULT_MAX_QUEUED: usize = 5;
/// A reservation whose step never settled (the object holding it died) is charged in full
/// after this long: the step may have spent it, and failing closed means assuming it did.
pub const RESERVATION_LEASE_MS: f64 = 15.0 * 60_000.0;
const DAY_MS: f64 = 86_400_000.0;

/// The UTC day number of a Unix time in milliseconds: spend resets at midnight UTC.
pub fn day_of(now_ms: f64) -> u64 {
    (now_ms.max(0.0) / DAY_MS) as u64
}

/// The operator's model allow-list (`ALLOWED_MODELS`): exact ids, or prefixes ending in `*`
/// (`anthropic/*`). Empty means every model is allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<String>,
}

impl AllowList {
    /// Parses a comma- or whitespace-separated list.
    pub fn parse(s: &str) -> AllowList {
        AllowList {
            entries: s
                .split(|c: char| c == ',' || c.is_whitespace())
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(String::from)
                .collect(),
        }
    }

    pub fn is_open(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn allows(&self, model: &str) -> bool {
        self.is_open()
            || self.entries.iter().any(|e| match e.strip_suffix('*') {
                Some(prefix) => model.starts_with(prefix),
                None => e == model,
            })
    }

    /// `Err` with the message people see when `model` is not allowed.
    pub fn check(&self, model: &str) -> Result<(), String> {
        if self.allows(model) {
            return Ok(());
        }
        Err(format!(
            "the model {model:?} is not allowed on this server; allowed: {}",
            self.entries.join(", ")
        ))
    }
}

/// A model's prices in USD per token and per request, from a `/models` list.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Price {
    pub prompt: f64,
    pub completion: f64,
    #[serde(default)]
    pub request: f64,
    /// The most tokens one completion may have, when the list says.
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    #[serde(default)]
    pub context_length: Option<u64>,
}

impl Price {
    /// The price of a model from its `/models` entry (core's `llm::models`, the one parser of
    /// that list): `None` when the list gives no price for both prompt and completion tokens.
    pub fn of(m: &ModelInfo) -> Option<Price> {
        let p = m.pricing?;
        Some(Price {
            prompt: p.prompt,
            completion: p.completion,
            request: p.request,
            max_completion_tokens: m.max_output.map(u64::from),
            context_length: m.context_window.map(u64::from),
        })
    }
}

/// The most one step can cost, or `None` when no bound exists (no completion-token limit).
///
/// Every token covers at least one byte of the request, so the request's size in bytes bounds
/// its prompt tokens; the completion is bounded by `max_tokens`, else the model's completion
/// limit, else its context length.
pub fn step_upper_bound(
    price: &Price,
    request_bytes: usize,
    max_tokens: Option<u32>,
) -> Option<f64> {
    let completion = max_tokens
        .map(u64::from)
        .or(price.max_completion_tokens)
        .or(price.context_length)?;
    Some(price.request + price.prompt * request_bytes as f64 + price.completion * completion as f64)
}

/// What a finished step cost: the provider's `usage.cost`, else its tokens at the listed
/// prices, else `None` (unknown: the caller charges the reservation).
pub fn step_cost(usage: Option<&Usage>, price: Option<&Price>) -> Option<f64> {
    let u = usage?;
    if let Some(c) = u.cost.filter(|c| c.is_finite() && *c >= 0.0) {
        return Some(c);
    }
    let p = price?;
    Some(p.request + p.prompt * u.prompt_tokens as f64 + p.completion * u.completion_tokens as f64)
}

/// The answer to a reservation request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Admit {
    /// Go ahead; settle reservation `id` when the step is over.
    Granted { id: u64, amount: f64 },
    /// Other steps of this user are in flight and this one might not fit beside them: ask again
    /// after they settle.
    Wait,
    /// Today's cap is spent.
    Refused { spent: f64, cap: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Reservation {
    amount: f64,
    since_ms: f64,
}

/// One user's spend today and the steps in flight against it.
///
/// Invariant: either every step in flight fits under the cap at its upper bound (`spent + held
/// <= cap`), or exactly one step is in flight and `spent < cap` when it started. So after all
/// settle, `spent <= cap + one step's cost`, however many turns run at once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    pub day: u64,
    /// USD charged today to the operator's account.
    pub spent: f64,
    /// USD spent today on the user's own key (not capped; shown to them).
    #[serde(default)]
    pub byok_spent: f64,
    /// Steps settled today whose cost was unknown and were charged their reservation.
    #[serde(default)]
    pub unknown_cost_steps: u32,
    next_id: u64,
    in_flight: BTreeMap<u64, Reservation>,
}

impl Ledger {
    /// Starts a new day at midnight UTC; reservations in flight carry over.
    pub fn roll(&mut self, now_ms: f64) {
        let d = day_of(now_ms);
        if d != self.day {
            self.day = d;
            self.spent = 0.0;
            self.byok_spent = 0.0;
            self.unknown_cost_steps = 0;
        }
        // Fail closed: a step that never settled may have spent all it reserved.
        let stale: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, r)| now_ms - r.since_ms > RESERVATION_LEASE_MS)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            if let Some(r) = self.in_flight.remove(&id) {
                self.spent += r.amount;
            }
        }
    }

    /// USD held by steps in flight.
    pub fn held(&self) -> f64 {
        self.in_flight.values().map(|r| r.amount).sum()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Asks to run a step that costs at most `bound` against `cap`.
    pub fn reserve(&mut self, cap: f64, bound: f64, now_ms: f64) -> Admit {
        self.roll(now_ms);
        if self.spent >= cap {
            return Admit::Refused {
                spent: self.spent,
                cap,
            };
        }
        let fits = self.spent + self.held() + bound <= cap;
        // The one step allowed to cross the cap runs alone, so it is the only one that does.
        if !fits && !self.in_flight.is_empty() {
            return Admit::Wait;
        }
        self.next_id += 1;
        let id = self.next_id;
        self.in_flight.insert(
            id,
            Reservation {
                amount: bound,
                since_ms: now_ms,
            },
        );
        Admit::Granted { id, amount: bound }
    }

    /// Ends reservation `id` with the step's real cost; `None` (unknown) charges the whole
    /// reservation. Returns what was charged (0 for an unknown or already settled id).
    pub fn settle(&mut self, id: u64, cost: Option<f64>, now_ms: f64) -> f64 {
        self.roll(now_ms);
        let Some(r) = self.in_flight.remove(&id) else {
            return 0.0;
        };
        let charged = match cost.filter(|c| c.is_finite() && *c >= 0.0) {
            Some(c) => c,
            None => {
                self.unknown_cost_steps += 1;
                r.amount
            }
        };
        self.spent += charged;
        charged
    }

    /// Adds the cost of a step paid with the user's own key.
    pub fn record_byok(&mut self, cost: f64, now_ms: f64) {
        self.roll(now_ms);
        if cost.is_finite() && cost > 0.0 {
            self.byok_spent += cost;
        }
    }
}

/// A fixed-window counter: at most `limit` hits per `window_ms`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RateWindow {
    pub start_ms: f64,
    pub count: u32,
}

impl RateWindow {
    /// Counts one hit; `Err(retry_after_seconds)` when the window is full. `limit` 0 is
    /// unlimited.
    pub fn hit(&mut self, limit: u32, window_ms: f64, now_ms: f64) -> Result<(), u64> {
        if limit == 0 {
            return Ok(());
        }
        if self.count == 0 || now_ms - self.start_ms >= window_ms || now_ms < self.start_ms {
            self.start_ms = now_ms;
            self.count = 0;
        }
        if self.count >= limit {
            let left = window_ms - (now_ms - self.start_ms);
            return Err((left / 1000.0).ceil().max(1.0) as u64);
        }
        self.count += 1;
        Ok(())
    }
}

/// What a user may be rate-limited on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateKind {
    /// API requests and socket frames, per minute.
    Request,
    /// Chat messages that start or queue a turn, per hour.
    Turn,
    /// New projects, per hour.
    Project,
}

impl RateKind {
    pub fn window_ms(self) -> f64 {
        match self {
            RateKind::Request => 60_000.0,
            RateKind::Turn | RateKind::Project => 3_600_000.0,
        }
    }

    /// The message for a refusal that lifts in `retry_after` seconds.
    pub fn refusal(self, limit: u32, retry_after: u64) -> String {
        let (what, per) = match self {
            RateKind::Request => ("requests", "minute"),
            RateKind::Turn => ("chat messages", "hour"),
            RateKind::Project => ("new projects", "hour"),
        };
        format!("too many {what}: at most {limit} per {per}; try again in {retry_after} s")
    }
}

/// The operator's per-user limits (`RATE_*` vars; 0 turns one off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimits {
    pub requests_per_minute: u32,
    pub turns_per_hour: u32,
    pub projects_per_hour: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            requests_per_minute: 600,
            turns_per_hour: 120,
            projects_per_hour: 30,
        }
    }
}

impl RateLimits {
    pub fn limit(&self, kind: RateKind) -> u32 {
        match kind {
            RateKind::Request => self.requests_per_minute,
            RateKind::Turn => self.turns_per_hour,
            RateKind::Project => self.projects_per_hour,
        }
    }
}

/// The message for a step refused by the daily cap.
pub fn cap_refusal(spent: f64, cap: f64) -> String {
    format!(
        "today's spending limit is reached (${spent:.4} of ${cap:.2} per day, resets at midnight \
         UTC); add your own OpenRouter key in settings to keep going"
    )
}

/// The message for a step whose price cannot be known before it runs.
pub fn unknown_price_refusal(model: &str) -> String {
    format!(
        "the price of the model {model:?} is unknown (the provider's /models list has no price \
         for it), so it cannot be checked against the daily spending limit; choose a listed \
         model or add your own OpenRouter key in settings"
    )
}

// ---- bring-your-own key, sealed at rest ----

/// A person's own OpenRouter key as stored: AES-256-GCM ciphertext bound to its user id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedKey {
    /// Base64 of the 12-byte nonce.
    pub nonce: String,
    /// Base64 of the ciphertext and tag.
    pub ciphertext: String,
    /// The key's last four characters, the only part ever shown.
    pub last4: String,
}

pub use crate::vault::SealError;

/// Checks a key someone wants to store: an OpenRouter-style token, no spaces, sane length.
pub fn validate_user_key(key: &str) -> Result<&str, SealError> {
    let k = key.trim();
    if k.len() < 8 || k.len() > 512 {
        return Err(SealError::Bad("the key must be 8 to 512 characters".into()));
    }
    if !k.chars().all(|c| c.is_ascii_graphic()) {
        return Err(SealError::Bad(
            "the key may hold only printable ASCII without spaces".into(),
        ));
    }
    Ok(k)
}

/// Seals `key` for `user` under the operator's `secret` with a fresh random `nonce` (the
/// vault's cipher, bound to the bare user id as it always was, so stored keys still open).
pub fn seal_key(
    secret: &str,
    user: &str,
    key: &str,
    nonce: [u8; 12],
) -> Result<SealedKey, SealError> {
    let key = validate_user_key(key)?;
    let sealed = crate::vault::seal(secret, user, key.as_bytes(), nonce)?;
    let last4: String = key
        .chars()
        .skip(key.chars().count().saturating_sub(4))
        .collect();
    Ok(SealedKey {
        nonce: sealed.nonce,
        ciphertext: sealed.ciphertext,
        last4,
    })
}

/// Opens a sealed key; fails for another user's record, a changed secret or tampering.
pub fn open_key(secret: &str, user: &str, sealed: &SealedKey) -> Result<String, SealError> {
    let plain = crate::vault::open(
        secret,
        user,
        &crate::vault::Sealed {
            nonce: sealed.nonce.clone(),
            ciphertext: sealed.ciphertext.clone(),
        },
    )?;
    String::from_utf8(plain).map_err(|_| SealError::Open)
}

/// What the browser may know about a stored key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyStatus {
    pub set: bool,
    pub last4: Option<String>,
}

/// `GET /api/quota`: the user's standing today.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaStatus {
    pub user: String,
    /// USD charged to the operator today.
    pub spent_today: f64,
    /// USD spent today with the user's own key.
    pub byok_spent_today: f64,
    /// The operator's daily cap in USD; `None` when there is none.
    pub daily_cap: Option<f64>,
    pub steps_in_flight: usize,
    pub key: KeyStatus,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn allow_list_exact_prefix_and_open() {
        let a = AllowList::parse("anthropic/*, openai/gpt-4o-mini\nscripted/model-a");
        assert!(a.allows("anthropic/claude-sonnet-4.5"));
        assert!(a.allows("openai/gpt-4o-mini"));
        assert!(!a.allows("openai/gpt-4o"));
        assert!(!a.allows("anthropicx/y"));
        let e = a.check("meta/llama").unwrap_err();
        assert!(e.contains("\"meta/llama\" is not allowed") && e.contains("anthropic/*"));
        let open = AllowList::parse(" , ");
        assert!(open.is_open() && open.allows("anything"));
    }

    #[test]
    fn prices_parse_openrouter_strings_and_skip_unpriced() {
        let v = json!({"data": [
            {"id": "a/b", "pricing": {"prompt": "0.000003", "completion": "0.000015", "request": "0.001"},
             "context_length": 200000, "top_provider": {"max_completion_tokens": 64000}},
            {"id": "free", "pricing": {"prompt": 0, "completion": 0}},
            {"id": "no-price"},
            {"id": "half", "pricing": {"prompt": "0.000001"}},
            {"id": "bad", "pricing": {"prompt": "-1", "completion": "x"}},
        ]});
        let list = crate::llm::models::parse_models(&v.to_string()).unwrap();
        let price = |id: &str| Price::of(list.iter().find(|m| m.id == id).unwrap());
        let ab = price("a/b").unwrap();
        assert_eq!(
            (ab.prompt, ab.completion, ab.request),
            (0.000003, 0.000015, 0.001)
        );
        assert_eq!(ab.max_completion_tokens, Some(64000));
        assert_eq!(ab.context_length, Some(200000));
        assert_eq!(price("free").unwrap().prompt, 0.0);
        for unknown in ["no-price", "half", "bad"] {
            assert_eq!(price(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn upper_bound_and_cost() {
        let p = Price {
            prompt: 1e-6,
            completion: 2e-6,
            request: 0.001,
            max_completion_tokens: Some(1000),
            context_length: Some(8000),
        };
        let b = step_upper_bound(&p, 10_000, None).unwrap();
        assert!((b - (0.001 + 0.01 + 0.002)).abs() < 1e-12);
        let b = step_upper_bound(&p, 10_000, Some(10)).unwrap();
        assert!((b - (0.001 + 0.01 + 0.00002)).abs() < 1e-12);
        let unbounded = Price {
            max_completion_tokens: None,
            context_length: None,
            ..p
        };
        assert_eq!(step_upper_bound(&unbounded, 1, None), None);
        let u = Usage {
            prompt_tokens: 100,
            completion_tokens: 10,
            total_tokens: 110,
            cost: Some(0.5),
            ..Default::default()
        };
        assert_eq!(step_cost(Some(&u), Some(&p)), Some(0.5));
        let u2 = Usage { cost: None, ..u };
        let c = step_cost(Some(&u2), Some(&p)).unwrap();
        assert!((c - (0.001 + 0.0001 + 0.00002)).abs() < 1e-12);
        assert_eq!(step_cost(Some(&u2), None), None);
        assert_eq!(step_cost(None, Some(&p)), None);
        let nan = Usage {
            cost: Some(f64::NAN),
            ..u
        };
        assert_eq!(step_cost(Some(&nan), None), None);
    }

    #[test]
    fn ledger_parallel_steps_fit_then_one_crosses_alone() {
        let mut l = Ledger::default();
        let now = 1_000.0 * DAY_MS;
        // Cap 0.05, each step bounded at 0.016 and really costing 0.01.
        let mut granted = vec![];
        for _ in 0..5 {
            if let Admit::Granted { id, .. } = l.reserve(0.05, 0.016, now) {
                granted.push(id);
            }
        }
        // Three fit (0.048); the fourth would not and others are in flight: wait.
        assert_eq!(granted.len(), 3);
        assert_eq!(l.reserve(0.05, 0.016, now), Admit::Wait);
        for id in granted.drain(..) {
            assert_eq!(l.settle(id, Some(0.01), now), 0.01);
        }
        assert!((l.spent - 0.03).abs() < 1e-12);
        // 0.03 + 0.016 fits once more.
        let Admit::Granted { id: a, .. } = l.reserve(0.05, 0.016, now) else {
            panic!()
        };
        assert_eq!(l.reserve(0.05, 0.016, now), Admit::Wait);
        l.settle(a, Some(0.01), now);
        // 0.04 + 0.016 does not fit, but nothing is in flight: this one may cross, alone.
        let Admit::Granted { id: b, .. } = l.reserve(0.05, 0.016, now) else {
            panic!()
        };
        assert_eq!(l.reserve(0.05, 0.001, now), Admit::Wait);
        l.settle(b, Some(0.015), now);
        assert!(matches!(l.reserve(0.05, 0.001, now), Admit::Refused { .. }));
        assert!(l.spent <= 0.05 + 0.016);
    }

    #[test]
    fn ledger_simulated_crowd_never_passes_cap_plus_one_step() {
        // 20 turns of up to 10 steps each, bound 0.02, real cost 0.013..0.02, cap 0.1.
        let mut l = Ledger::default();
        let (cap, bound) = (0.1, 0.02);
        let mut pending: Vec<u64> = vec![];
        let mut refused = 0;
        let mut k = 0u64;
        let now = 5.0 * DAY_MS;
        for round in 0..200 {
            for _ in 0..20 {
                match l.reserve(cap, bound, now) {
                    Admit::Granted { id, .. } => pending.push(id),
                    Admit::Wait => {}
                    Admit::Refused { .. } => refused += 1,
                }
            }
            // Settle some in a scrambled order.
            if round % 2 == 0 {
                pending.reverse();
            }
            if let Some(id) = pending.pop() {
                k += 1;
                l.settle(id, Some(0.013 + (k % 8) as f64 * 0.001), now);
            }
        }
        for id in pending {
            l.settle(id, Some(0.02), now);
        }
        assert!(refused > 0);
        assert!(l.spent <= cap + bound + 1e-12, "spent {}", l.spent);
    }

    #[test]
    fn ledger_unknown_cost_charges_the_reservation_and_days_roll() {
        let mut l = Ledger::default();
        let now = 10.0 * DAY_MS + 5.0;
        let Admit::Granted { id, amount } = l.reserve(1.0, 0.3, now) else {
            panic!()
        };
        assert_eq!(l.settle(id, None, now), amount);
        assert_eq!(l.unknown_cost_steps, 1);
        assert_eq!(
            l.settle(id, Some(1.0), now),
            0.0,
            "settling twice charges once"
        );
        l.record_byok(0.2, now);
        // Next UTC day: a fresh budget.
        l.roll(now + DAY_MS);
        assert_eq!((l.spent, l.byok_spent, l.unknown_cost_steps), (0.0, 0.0, 0));
        // A reservation that never settles is charged in full after its lease.
        let t = 20.0 * DAY_MS;
        let Admit::Granted { .. } = l.reserve(1.0, 0.25, t) else {
            panic!()
        };
        l.roll(t + RESERVATION_LEASE_MS + 1.0);
        assert_eq!(l.in_flight(), 0);
        assert!((l.spent - 0.25).abs() < 1e-12);
        // Survives being stored as JSON.
        let back: Ledger = serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
        assert_eq!(back, l);
    }

    #[test]
    fn rate_window_counts_and_resets() {
        let mut w = RateWindow::default();
        assert!(w.hit(2, 60_000.0, 1_000.0).is_ok());
        assert!(w.hit(2, 60_000.0, 2_000.0).is_ok());
        assert_eq!(w.hit(2, 60_000.0, 31_000.0), Err(30));
        assert!(w.hit(2, 60_000.0, 61_000.0).is_ok());
        assert!(w.hit(0, 1.0, 0.0).is_ok());
        let m = RateKind::Project.refusal(3, 12);
        assert!(m.contains("new projects") && m.contains("3 per hour") && m.contains("12 s"));
    }

    #[test]
    fn sealed_keys_open_only_for_their_user_and_secret() {
        let secret = "0123456789abcdef-operator-secret";
        let s = seal_key(secret, "user-1", "sk-or-v1-abcdef1234", [7; 12]).unwrap();
        assert_eq!(s.last4, "1234");
        assert!(!s.ciphertext.contains("sk-or"));
        assert!(!serde_json::to_string(&s).unwrap().contains("abcdef"));
        assert_eq!(
            open_key(secret, "user-1", &s).unwrap(),
            "sk-or-v1-abcdef1234"
        );
        assert_eq!(open_key(secret, "user-2", &s), Err(SealError::Open));
        assert_eq!(
            open_key("another-secret-of-enough-length", "user-1", &s),
            Err(SealError::Open)
        );
        let mut t = s.clone();
        t.ciphertext = "dGFtcGVyZWQgdGFtcGVyZWQgdGFtcGVyZWQ=".into();
        assert_eq!(open_key(secret, "user-1", &t), Err(SealError::Open));
        assert_eq!(
            seal_key("", "u", "sk-or-v1-x", [0; 12]),
            Err(SealError::NoSecret)
        );
        assert!(matches!(
            seal_key(secret, "u", "has space in it", [0; 12]),
            Err(SealError::Bad(_))
        ));
        assert!(matches!(
            seal_key(secret, "u", "short", [0; 12]),
            Err(SealError::Bad(_))
        ));
    }
}
