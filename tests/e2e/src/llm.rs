//! A scripted OpenAI-compatible chat-completions server that speaks the real wire format.
//!
//! Each request to `POST /v1/chat/completions` takes the next [`Reply`] from the script. Streams
//! are `data:` lines of `chat.completion.chunk` objects: text deltas, tool calls whose `id` and
//! `name` arrive only in the first fragment and whose `arguments` arrive in pieces keyed by
//! `index`, a `finish_reason`, a usage chunk and `data: [DONE]`. Faults (429 with `Retry-After`,
//! 500, a cut stream, a malformed chunk, comment lines, slow chunks) are script items too.
//! Every request is recorded so tests can assert on exactly what the agent sent.
//!
//! Like a real provider it counts prompt tokens with a real BPE (o200k_base), rejects a request
//! whose prompt plus `max_tokens` passes the model's window with OpenRouter's exact 400 body,
//! lists its models with windows and prices on `/models`, caches prompt prefixes the way
//! Anthropic does (only up to `cache_control` breakpoints, reported as
//! `prompt_tokens_details.cached_tokens`), and prices each answer (`usage.cost`) when the
//! script asks for measured usage. With [`ScriptedLlm::auto_summaries`], summary requests (core's
//! compaction instruction) are answered without taking a script item.

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One piece of a streamed answer.
#[derive(Debug, Clone, serde::Deserialize)]
pub enum Item {
    /// A content delta.
    Text(String),
    /// A content delta whose text is the send time in Unix microseconds (for latency benches).
    Timestamp,
    /// A whole tool call, sent as several argument fragments under tool-call `index`.
    ToolCall {
        index: usize,
        id: String,
        name: String,
        arguments: String,
        /// Bytes of `arguments` per fragment.
        fragment: usize,
    },
    /// An SSE comment line such as `: OPENROUTER PROCESSING`.
    Comment(String),
    /// A raw line sent as-is after `data: ` (for malformed chunks).
    RawData(String),
    /// An `{"error": ...}` object in the middle of the stream.
    Error(Value),
    /// Wait before the next item.
    Sleep(Duration),
    /// The chunk carrying `finish_reason`.
    Finish(String),
    /// The usage chunk (`choices: []`), with OpenRouter's optional `cost`.
    Usage {
        prompt: u64,
        completion: u64,
        cost: Option<f64>,
    },
    /// The usage chunk with what the server measured: real prompt tokens, cached tokens,
    /// completion tokens and the cost at the model's prices.
    MeasuredUsage,
    /// `data: [DONE]`.
    Done,
    /// End the body here, cleanly, without `[DONE]`.
    Cut,
    /// Reset the connection here (the body errors mid-stream).
    Abort,
}

/// What the server does with one request.
#[derive(Debug, Clone, serde::Deserialize)]
pub enum Reply {
    Stream(Vec<Item>),
    /// An HTTP error status, with `Retry-After` seconds for 429s.
    Status {
        status: u16,
        retry_after: Option<u64>,
        body: Value,
    },
}

impl Reply {
    /// A streamed text answer ending with `stop`, usage and `[DONE]`.
    pub fn text(text: &str) -> Reply {
        let mut items: Vec<Item> = chunk_str(text, 8).into_iter().map(Item::Text).collect();
        items.extend(finish("stop"));
        Reply::Stream(items)
    }

    /// Optional text, then tool calls `(name, arguments JSON)`, ending with `tool_calls`.
    pub fn tool_calls(text: Option<&str>, calls: &[(&str, Value)]) -> Reply {
        let mut items: Vec<Item> = text
            .map(|t| chunk_str(t, 8).into_iter().map(Item::Text).collect())
            .unwrap_or_default();
        for (i, (name, args)) in calls.iter().enumerate() {
            items.push(Item::ToolCall {
                index: i,
                id: format!("call_{}_{}", name, next_id()),
                name: name.to_string(),
                arguments: args.to_string(),
                fragment: 7,
            });
        }
        items.extend(finish("tool_calls"));
        Reply::Stream(items)
    }

    /// The same reply with measured usage instead of the fixed numbers of [`finish`].
    pub fn measured(self) -> Reply {
        match self {
            Reply::Stream(items) => Reply::Stream(
                items
                    .into_iter()
                    .map(|i| match i {
                        Item::Usage { .. } => Item::MeasuredUsage,
                        other => other,
                    })
                    .collect(),
            ),
            other => other,
        }
    }

    pub fn status(status: u16, retry_after: Option<u64>) -> Reply {
        Reply::Status {
            status,
            retry_after,
            body: json!({"error": {"message": format!("scripted HTTP {status}"), "code": status}}),
        }
    }
}

/// The usual tail of a stream: finish reason, usage, `[DONE]`.
pub fn finish(reason: &str) -> Vec<Item> {
    vec![
        Item::Finish(reason.to_string()),
        Item::Usage {
            prompt: 100,
            completion: 20,
            cost: Some(0.00042),
        },
        Item::Done,
    ]
}

fn chunk_str(s: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    chars.chunks(n.max(1)).map(|c| c.iter().collect()).collect()
}

/// Microseconds since the Unix epoch: comparable across processes on one machine.
pub fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub authorization: Option<String>,
    pub headers: HeaderMap,
    pub body: Value,
    /// Prompt tokens by o200k_base, as the server counted them.
    pub prompt_tokens: u64,
    /// Of those, read from the simulated prompt cache.
    pub cached_tokens: u64,
    /// Written to the cache by this request.
    pub cache_write_tokens: u64,
    /// 200, or the status the server answered with by itself (400: over the window).
    pub status: u16,
    /// A summary request answered by [`ScriptedLlm::auto_summaries`].
    pub summary: bool,
}

/// A model the server lists and enforces.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub id: String,
    /// What `/models` says.
    pub context_length: u64,
    /// What the server enforces (a provider whose list is wrong, when it differs).
    pub enforced_context: u64,
    pub max_completion: u64,
    /// USD per token.
    pub prompt_price: f64,
    pub completion_price: f64,
    pub cache_read_price: Option<f64>,
    pub cache_write_price: Option<f64>,
    /// USD per request (OpenRouter's `pricing.request`).
    pub request_price: f64,
}

impl ModelSpec {
    pub fn new(id: &str, context: u64, max_completion: u64, prompt: f64, completion: f64) -> Self {
        ModelSpec {
            id: id.into(),
            context_length: context,
            enforced_context: context,
            max_completion,
            prompt_price: prompt,
            completion_price: completion,
            cache_read_price: None,
            cache_write_price: None,
            request_price: 0.0,
        }
    }

    /// Anthropic's cache prices: reads at 0.1x, writes at 1.25x the prompt price.
    pub fn with_anthropic_cache(mut self) -> Self {
        self.cache_read_price = Some(self.prompt_price * 0.1);
        self.cache_write_price = Some(self.prompt_price * 1.25);
        self
    }

    fn to_json(&self) -> Value {
        let mut pricing = json!({
            "prompt": format!("{}", self.prompt_price),
            "completion": format!("{}", self.completion_price),
            "request": format!("{}", self.request_price),
        });
        if let Some(r) = self.cache_read_price {
            pricing["input_cache_read"] = json!(format!("{r}"));
        }
        if let Some(w) = self.cache_write_price {
            pricing["input_cache_write"] = json!(format!("{w}"));
        }
        json!({
            "id": self.id, "object": "model", "owned_by": "scripted", "name": self.id,
            "context_length": self.context_length,
            "pricing": pricing,
            "top_provider": {"context_length": self.context_length,
                             "max_completion_tokens": self.max_completion, "is_moderated": false},
        })
    }
}

/// The models every scripted server lists: two general ones (128k), a 32k Anthropic-style
/// model with cache prices, a 32k plain one, and one whose list claims 128k but which
/// enforces 16k (for learning a window from the error).
pub fn default_models() -> Vec<ModelSpec> {
    vec![
        ModelSpec::new("scripted/model-a", 131_072, 16_384, 1e-6, 2e-6),
        ModelSpec::new("scripted/model-b", 131_072, 16_384, 1e-6, 2e-6),
        ModelSpec::new("anthropic/claude-scripted-32k", 32_768, 4_096, 3e-6, 15e-6)
            .with_anthropic_cache(),
        ModelSpec::new("scripted/small-32k", 32_768, 4_096, 1e-6, 2e-6),
        ModelSpec {
            enforced_context: 16_384,
            ..ModelSpec::new("scripted/misreported-16k", 131_072, 4_096, 1e-6, 2e-6)
        },
    ]
}

/// Anthropic's smallest cacheable prefix (Sonnet): shorter marked prefixes are not cached.
pub const MIN_CACHEABLE_TOKENS: u64 = 1_024;
/// Anthropic looks this many blocks back from a breakpoint for an earlier cache entry.
const CACHE_LOOKBACK: usize = 20;

fn bpe() -> &'static tiktoken_rs::CoreBPE {
    static BPE: std::sync::OnceLock<tiktoken_rs::CoreBPE> = std::sync::OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::o200k_base().expect("o200k_base ships with tiktoken-rs"))
}

/// Tokens of a text by o200k_base.
pub fn count_tokens(s: &str) -> u64 {
    bpe().encode_ordinary(s).len() as u64
}

/// A message's text whether `content` is a string or a list of parts.
fn content_text(m: &Value) -> String {
    match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// One block of the prompt as the provider sees it (string vs parts does not matter).
fn block_text(m: &Value) -> String {
    let mut t = format!(
        "<|{}|>{}",
        m["role"].as_str().unwrap_or(""),
        content_text(m)
    );
    if let Some(calls) = m["tool_calls"].as_array() {
        for c in calls {
            t.push_str(&format!(
                "<|call {} {}|>{}",
                c["id"].as_str().unwrap_or(""),
                c["function"]["name"].as_str().unwrap_or(""),
                c["function"]["arguments"].as_str().unwrap_or("")
            ));
        }
    }
    if let Some(id) = m["tool_call_id"].as_str() {
        t.push_str(&format!("<|result {id}|>"));
    }
    t
}

/// The prompt's blocks (tools first, as Anthropic orders them), each block's tokens, and which
/// blocks carry a `cache_control` breakpoint.
fn prompt_blocks(body: &Value) -> (Vec<String>, Vec<u64>, Vec<bool>) {
    let mut texts = vec![format!("<|tools|>{}", body["tools"])];
    let mut marks = vec![false];
    for m in body["messages"].as_array().into_iter().flatten() {
        texts.push(block_text(m));
        marks.push(
            m["content"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p.get("cache_control").is_some())),
        );
    }
    let tokens = texts.iter().map(|t| count_tokens(t) + 3).collect();
    (texts, tokens, marks)
}

impl Recorded {
    /// The content of the last tool result in the request's messages (what the model was told
    /// its last call returned).
    pub fn last_tool_result(&self) -> String {
        self.body["messages"]
            .as_array()
            .and_then(|ms| ms.iter().rfind(|m| m["role"] == "tool"))
            .map(content_text)
            .expect("a tool result in the request")
    }
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Reply>,
    recorded: Vec<Recorded>,
    models: Vec<ModelSpec>,
    /// Hashes of cached prompt prefixes (per model), as Anthropic keeps them.
    cache: std::collections::HashSet<(String, u64)>,
    auto_summaries: bool,
    /// The `Authorization` header of every `/models` request, in order.
    models_auth: Vec<Option<String>>,
}

/// What the server measured about one request, for its usage chunk.
#[derive(Debug, Clone, Copy, Default)]
struct Measured {
    prompt: u64,
    cached: u64,
    written: u64,
}

/// Handle to a running scripted server; it stops when dropped.
pub struct ScriptedLlm {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl ScriptedLlm {
    pub async fn start() -> anyhow::Result<ScriptedLlm> {
        let inner = Arc::new(Mutex::new(Inner {
            models: default_models(),
            ..Default::default()
        }));
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .route("/v1/models", get(models))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(ScriptedLlm {
            addr,
            inner,
            _shutdown: tx,
        })
    }

    /// The OpenAI-style base URL, e.g. `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn push(&self, reply: Reply) {
        self.lock().script.push_back(reply);
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.lock().recorded.clone()
    }

    /// Lists `model` in `/models` (upserted, 128k window) with OpenRouter's price fields (USD
    /// per token, and per request) and a completion-token limit, as OpenRouter's list does.
    pub fn set_price(
        &self,
        model: &str,
        prompt: f64,
        completion: f64,
        request: f64,
        max_completion: u64,
    ) {
        let mut g = self.lock();
        let spec = ModelSpec {
            request_price: request,
            ..ModelSpec::new(model, 131_072, max_completion, prompt, completion)
        };
        match g.models.iter_mut().find(|m| m.id == model) {
            Some(m) => *m = spec,
            None => g.models.push(spec),
        }
    }

    /// The `Authorization` header each `/models` request carried.
    pub fn models_authorizations(&self) -> Vec<Option<String>> {
        self.lock().models_auth.clone()
    }

    /// Answers summary requests (core's compaction instruction) with a short summary of the
    /// files the conversation wrote, without taking a script item.
    pub fn auto_summaries(&self, on: bool) {
        self.lock().auto_summaries = on;
    }

    pub fn remaining(&self) -> usize {
        self.lock().script.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn models(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap) -> Json<Value> {
    let mut g = inner.lock().unwrap_or_else(|p| p.into_inner());
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    g.models_auth.push(auth);
    let data: Vec<Value> = g.models.iter().map(ModelSpec::to_json).collect();
    Json(json!({"object": "list", "data": data}))
}

async fn completions(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": {"message": format!("invalid JSON body: {e}")}})),
            )
                .into_response()
        }
    };
    let model = parsed["model"]
        .as_str()
        .unwrap_or("scripted/model-a")
        .to_string();
    let stream = parsed["stream"].as_bool().unwrap_or(false);
    let (texts, tokens, marks) = prompt_blocks(&parsed);
    let prompt: u64 = tokens.iter().sum();
    let (reply, measured, spec) = {
        let mut g = inner.lock().unwrap_or_else(|p| p.into_inner());
        let spec = g.models.iter().find(|m| m.id == model).cloned();
        let mut rec = Recorded {
            path: "/v1/chat/completions".into(),
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(String::from),
            headers: headers.clone(),
            body: parsed.clone(),
            prompt_tokens: prompt,
            cached_tokens: 0,
            cache_write_tokens: 0,
            status: 200,
            summary: false,
        };
        // The window, as OpenRouter enforces it: prompt plus the requested output.
        if let Some(spec) = &spec {
            let out = parsed["max_tokens"].as_u64().unwrap_or(spec.max_completion);
            if prompt + out > spec.enforced_context {
                rec.status = 400;
                g.recorded.push(rec);
                let message = format!(
                    "This endpoint's maximum context length is {} tokens. However, you requested about {} tokens ({} of text input, {} in the output). Please reduce the length of either one, or use the \"middle-out\" transform to compress your prompt automatically.",
                    spec.enforced_context,
                    prompt + out,
                    prompt,
                    out
                );
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"error": {"message": message, "code": 400}})),
                )
                    .into_response();
            }
        }
        // The prompt cache: a hit is the longest earlier-cached prefix that ends within the
        // lookback of a breakpoint; every marked prefix long enough is then written.
        let mut hashes = Vec::with_capacity(texts.len());
        let mut cum = Vec::with_capacity(texts.len());
        let (mut h, mut c) = (std::collections::hash_map::DefaultHasher::new(), 0u64);
        for (t, n) in texts.iter().zip(&tokens) {
            use std::hash::{Hash, Hasher};
            t.hash(&mut h);
            hashes.push(h.finish());
            c += n;
            cum.push(c);
        }
        let mut cached = 0;
        let mut last_mark = None;
        for b in (0..texts.len()).filter(|&i| marks[i]) {
            last_mark = Some(b);
            for j in (b.saturating_sub(CACHE_LOOKBACK)..=b).rev() {
                if g.cache.contains(&(model.clone(), hashes[j])) {
                    cached = cached.max(cum[j]);
                    break;
                }
            }
        }
        let mut written = 0;
        for b in (0..texts.len()).filter(|&i| marks[i]) {
            if cum[b] >= MIN_CACHEABLE_TOKENS && g.cache.insert((model.clone(), hashes[b])) {
                written = cum[b];
            }
        }
        if last_mark.is_some() {
            written = written.saturating_sub(cached);
        }
        rec.cached_tokens = cached;
        rec.cache_write_tokens = written;
        let last_user = parsed["messages"]
            .as_array()
            .and_then(|ms| ms.iter().rfind(|m| m["role"] == "user"))
            .map(content_text)
            .unwrap_or_default();
        let is_summary = g.auto_summaries
            && last_user.contains(open_replit_core::agent::context::compact_marker());
        rec.summary = is_summary;
        g.recorded.push(rec);
        let reply = if is_summary {
            Some(summary_reply(&last_user))
        } else {
            g.script.pop_front()
        };
        (
            reply,
            Measured {
                prompt,
                cached,
                written,
            },
            spec,
        )
    };
    match reply {
        None => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": {"message": "scripted LLM: the script is exhausted"}})),
        )
            .into_response(),
        Some(Reply::Status {
            status,
            retry_after,
            body,
        }) => {
            let mut resp = (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                Json(body),
            )
                .into_response();
            if let Some(s) = retry_after {
                resp.headers_mut()
                    .insert("retry-after", s.to_string().parse().expect("digits"));
            }
            resp
        }
        Some(Reply::Stream(items)) if stream => stream_response(model, items, measured, spec),
        Some(Reply::Stream(items)) => Json(collapse(&model, &items)).into_response(),
    }
}

fn chunk(id: &str, model: &str, delta: Value, finish: Option<&str>) -> String {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": 1_764_400_000u64,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    })
    .to_string()
}

/// A summary of the transcript in a compaction request: the files it wrote, in order.
fn summary_reply(request: &str) -> Reply {
    let mut files: Vec<String> = Vec::new();
    for piece in request.split("[agent called write_file ").skip(1) {
        if let Some(path) = piece
            .split("\"path\":\"")
            .nth(1)
            .and_then(|p| p.split('"').next())
        {
            if !files.iter().any(|f| f == path) {
                files.push(path.to_string());
            }
        }
    }
    Reply::text(&format!(
        "Summary: the person asked for an app and I built it step by step. Files written: {}.",
        if files.is_empty() {
            "none".to_string()
        } else {
            files.join(", ")
        }
    ))
    .measured()
}

/// The usage object for a streamed answer with `completion` tokens.
fn measured_usage(m: Measured, completion: u64, spec: Option<&ModelSpec>) -> Value {
    let mut usage = json!({
        "prompt_tokens": m.prompt,
        "completion_tokens": completion,
        "total_tokens": m.prompt + completion,
        "prompt_tokens_details": {"cached_tokens": m.cached},
    });
    if let Some(s) = spec {
        let plain = m.prompt.saturating_sub(m.cached + m.written) as f64;
        let cost = plain * s.prompt_price
            + m.cached as f64 * s.cache_read_price.unwrap_or(s.prompt_price)
            + m.written as f64 * s.cache_write_price.unwrap_or(s.prompt_price)
            + completion as f64 * s.completion_price
            + s.request_price;
        usage["cost"] = json!(cost);
    }
    usage
}

fn stream_response(
    model: String,
    items: Vec<Item>,
    measured: Measured,
    spec: Option<ModelSpec>,
) -> Response {
    // Completion tokens of what the script streams, for measured usage.
    let completion: u64 = items
        .iter()
        .map(|i| match i {
            Item::Text(t) => count_tokens(t),
            Item::ToolCall {
                name, arguments, ..
            } => count_tokens(name) + count_tokens(arguments),
            _ => 0,
        })
        .sum();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        let id = format!("chatcmpl-{}", next_id());
        let mut first = true;
        let send = |s: String| {
            let tx = tx.clone();
            async move { tx.send(Ok(Bytes::from(s))).await.is_ok() }
        };
        for item in items {
            let mut role = json!({});
            if first {
                role = json!({"role": "assistant"});
            }
            let ok = match item {
                Item::Text(t) => {
                    let mut d = role.clone();
                    d["content"] = json!(t);
                    first = false;
                    send(format!("data: {}\n\n", chunk(&id, &model, d, None))).await
                }
                Item::ToolCall {
                    index,
                    id: call_id,
                    name,
                    arguments,
                    fragment,
                } => {
                    let mut d = role.clone();
                    d["tool_calls"] = json!([{
                        "index": index, "id": call_id, "type": "function",
                        "function": {"name": name, "arguments": ""}
                    }]);
                    first = false;
                    let mut ok = send(format!("data: {}\n\n", chunk(&id, &model, d, None))).await;
                    for piece in chunk_str(&arguments, fragment) {
                        let d = json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]});
                        ok &= send(format!("data: {}\n\n", chunk(&id, &model, d, None))).await;
                    }
                    ok
                }
                Item::Timestamp => {
                    let mut d = role.clone();
                    d["content"] = json!(format!("<{}>", unix_micros()));
                    first = false;
                    send(format!("data: {}\n\n", chunk(&id, &model, d, None))).await
                }
                Item::Comment(c) => send(format!(": {c}\n\n")).await,
                Item::RawData(r) => send(format!("data: {r}\n\n")).await,
                Item::Error(e) => send(format!("data: {}\n\n", json!({"error": e}))).await,
                Item::Sleep(d) => {
                    tokio::time::sleep(d).await;
                    true
                }
                Item::Finish(reason) => {
                    send(format!(
                        "data: {}\n\n",
                        chunk(&id, &model, json!({}), Some(&reason))
                    ))
                    .await
                }
                Item::Usage {
                    prompt,
                    completion,
                    cost,
                } => {
                    let mut usage = json!({
                        "prompt_tokens": prompt,
                        "completion_tokens": completion,
                        "total_tokens": prompt + completion
                    });
                    if let Some(c) = cost {
                        usage["cost"] = json!(c);
                    }
                    let c = json!({
                        "id": id, "object": "chat.completion.chunk", "created": 1_764_400_000u64,
                        "model": model, "choices": [], "usage": usage
                    });
                    send(format!("data: {c}\n\n")).await
                }
                Item::MeasuredUsage => {
                    let c = json!({
                        "id": id, "object": "chat.completion.chunk", "created": 1_764_400_000u64,
                        "model": model, "choices": [],
                        "usage": measured_usage(measured, completion, spec.as_ref())
                    });
                    send(format!("data: {c}\n\n")).await
                }
                Item::Done => send("data: [DONE]\n\n".to_string()).await,
                Item::Cut => return,
                Item::Abort => {
                    let _ = tx.send(Err(std::io::Error::other("scripted abort"))).await;
                    return;
                }
            };
            if !ok {
                return;
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(body)
        .expect("static response parts")
}

/// The non-streaming form of a scripted answer (`stream: false`).
fn collapse(model: &str, items: &[Item]) -> Value {
    let mut content = String::new();
    let mut calls = Vec::new();
    let mut finish = "stop".to_string();
    let mut usage = json!(null);
    for item in items {
        match item {
            Item::Text(t) => content.push_str(t),
            Item::ToolCall {
                id, name, arguments, ..
            } => calls.push(json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})),
            Item::Finish(r) => finish = r.clone(),
            Item::Usage {
                prompt, completion, ..
            } => {
                usage = json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
            }
            _ => {}
        }
    }
    let mut message = json!({"role": "assistant", "content": if calls.is_empty() { json!(content) } else if content.is_empty() { json!(null) } else { json!(content) }});
    if !calls.is_empty() {
        message["tool_calls"] = json!(calls);
    }
    json!({
        "id": format!("chatcmpl-{}", next_id()),
        "object": "chat.completion",
        "created": 1_764_400_000u64,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage
    })
}
