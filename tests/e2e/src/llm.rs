//! A scripted OpenAI-compatible chat-completions server that speaks the real wire format.
//!
//! Each request to `POST /v1/chat/completions` takes the next [`Reply`] from the script. Streams
//! are `data:` lines of `chat.completion.chunk` objects: text deltas, tool calls whose `id` and
//! `name` arrive only in the first fragment and whose `arguments` arrive in pieces keyed by
//! `index`, a `finish_reason`, a usage chunk and `data: [DONE]`. Faults (429 with `Retry-After`,
//! 500, a cut stream, a malformed chunk, comment lines, slow chunks) are script items too.
//! Every request is recorded so tests can assert on exactly what the agent sent.

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
}

impl Recorded {
    /// The content of the last tool result in the request's messages (what the model was told
    /// its last call returned).
    pub fn last_tool_result(&self) -> String {
        self.body["messages"]
            .as_array()
            .and_then(|ms| ms.iter().rfind(|m| m["role"] == "tool"))
            .and_then(|m| m["content"].as_str())
            .expect("a tool result in the request")
            .to_string()
    }
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Reply>,
    recorded: Vec<Recorded>,
    models: Vec<String>,
    /// OpenRouter-style `pricing` objects by model id, served in `/models`.
    prices: std::collections::HashMap<String, Value>,
    /// The `Authorization` header of every `/models` request, in order.
    models_auth: Vec<Option<String>>,
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
            models: vec!["scripted/model-a".into(), "scripted/model-b".into()],
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

    /// Lists `model` in `/models` with OpenRouter's price fields (USD per token, as decimal
    /// strings) and a completion-token limit, as OpenRouter's list does.
    pub fn set_price(
        &self,
        model: &str,
        prompt: f64,
        completion: f64,
        request: f64,
        max_completion: u64,
    ) {
        let mut g = self.lock();
        if !g.models.iter().any(|m| m == model) {
            g.models.push(model.to_string());
        }
        g.prices.insert(
            model.to_string(),
            json!({
                "pricing": {"prompt": prompt.to_string(), "completion": completion.to_string(), "request": request.to_string()},
                "context_length": 128000,
                "top_provider": {"max_completion_tokens": max_completion}
            }),
        );
    }

    /// The `Authorization` header each `/models` request carried.
    pub fn models_authorizations(&self) -> Vec<Option<String>> {
        self.lock().models_auth.clone()
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
    let data: Vec<Value> = g
        .models
        .iter()
        .map(|m| {
            let mut v = json!({"id": m, "object": "model", "owned_by": "scripted"});
            if let Some(Value::Object(extra)) = g.prices.get(m) {
                for (k, x) in extra {
                    v[k] = x.clone();
                }
            }
            v
        })
        .collect();
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
    let reply = {
        let mut g = inner.lock().unwrap_or_else(|p| p.into_inner());
        g.recorded.push(Recorded {
            path: "/v1/chat/completions".into(),
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(String::from),
            headers: headers.clone(),
            body: parsed.clone(),
        });
        g.script.pop_front()
    };
    let model = parsed["model"]
        .as_str()
        .unwrap_or("scripted/model-a")
        .to_string();
    let stream = parsed["stream"].as_bool().unwrap_or(false);
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
        Some(Reply::Stream(items)) if stream => stream_response(model, items),
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

fn stream_response(model: String, items: Vec<Item>) -> Response {
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
