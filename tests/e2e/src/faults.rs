//! A fault-injecting HTTP proxy in front of a real server (Azurite): each request is forwarded,
//! answered with a scripted status, or cut, as a test decides per request number.

use axum::{body::Body, extract::State, http::Request, response::Response, Router};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What to do with request number `n` (0-based) of method `m` and path `p`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Forward,
    Status(u16),
    /// Close the connection without an answer.
    Drop,
}

type Rule = dyn Fn(usize, &str, &str) -> Action + Send + Sync;

struct Inner {
    upstream: String,
    rule: Mutex<Box<Rule>>,
    count: AtomicUsize,
    log: Mutex<Vec<(String, String, Action)>>,
    client: reqwest::Client,
}

pub struct FaultProxy {
    pub port: u16,
    inner: Arc<Inner>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl FaultProxy {
    pub async fn start(upstream_port: u16) -> anyhow::Result<FaultProxy> {
        let inner = Arc::new(Inner {
            upstream: format!("http://127.0.0.1:{upstream_port}"),
            rule: Mutex::new(Box::new(|_, _, _| Action::Forward)),
            count: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
            client: reqwest::Client::new(),
        });
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(FaultProxy {
            port,
            inner,
            _shutdown: tx,
        })
    }

    pub fn set_rule(&self, rule: impl Fn(usize, &str, &str) -> Action + Send + Sync + 'static) {
        *self.inner.rule.lock().unwrap_or_else(|p| p.into_inner()) = Box::new(rule);
        self.inner.count.store(0, Ordering::SeqCst);
        self.inner
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// `(method, path, action)` for every request since the last `set_rule`.
    pub fn log(&self) -> Vec<(String, String, Action)> {
        self.inner
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

async fn handle(State(inner): State<Arc<Inner>>, req: Request<Body>) -> Response {
    let n = inner.count.fetch_add(1, Ordering::SeqCst);
    let method = req.method().to_string();
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let action = (inner.rule.lock().unwrap_or_else(|p| p.into_inner()))(n, &method, &pq);
    inner
        .log
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((method.clone(), pq.clone(), action));
    match action {
        Action::Status(s) => Response::builder()
            .status(s)
            .body(Body::from(format!(
                "<?xml version=\"1.0\"?><Error><Code>Injected</Code><Message>injected {s}</Message></Error>"
            )))
            .expect("static parts"),
        Action::Drop => {
            // An erroring body makes hyper reset the connection mid-answer.
            let s = futures_util::stream::once(async {
                Err::<bytes::Bytes, _>(std::io::Error::other("injected connection drop"))
            });
            Response::builder()
                .status(200)
                .body(Body::from_stream(s))
                .expect("static parts")
        }
        Action::Forward => {
            let (parts, body) = req.into_parts();
            let body = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
                Ok(b) => b,
                Err(e) => {
                    return Response::builder()
                        .status(400)
                        .body(Body::from(e.to_string()))
                        .expect("static parts")
                }
            };
            let mut b = inner
                .client
                .request(parts.method.clone(), format!("{}{}", inner.upstream, pq));
            for (k, v) in parts.headers.iter() {
                if k != "host" && k != "content-length" {
                    b = b.header(k, v);
                }
            }
            match b.body(body).send().await {
                Ok(r) => {
                    let mut out = Response::builder().status(r.status().as_u16());
                    for (k, v) in r.headers() {
                        if k != "content-length" && k != "transfer-encoding" {
                            out = out.header(k, v);
                        }
                    }
                    let bytes = r.bytes().await.unwrap_or_default();
                    out.body(Body::from(bytes)).expect("copied parts")
                }
                Err(e) => Response::builder()
                    .status(502)
                    .body(Body::from(e.to_string()))
                    .expect("static parts"),
            }
        }
    }
}
