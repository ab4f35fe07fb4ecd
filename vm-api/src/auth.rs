//! Request authentication: HMAC signature check on every route but `/health` (headers first,
//! the body only once they pass), plus the replay cache of signatures already accepted, and a
//! client helper that signs requests.

use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use open_replit_core::vm_auth::{
    self, AuthError, SignedHeaders, HEADER_BODY_SHA256, HEADER_SIGNATURE, HEADER_TIMESTAMP,
    HEADER_USER,
};
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest request body the service reads (a 5,000-file manifest is well under 1 MiB).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// How long an accepted signature stays in the replay cache: longer than the ±300 s window, so
/// a signature cannot be replayed while its timestamp is still fresh.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(600);

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Signatures accepted in the last [`REPLAY_WINDOW`], bounded in size.
///
/// When full, the oldest entry is evicted; only a holder of the secret can add entries, and an
/// evicted signature older than the skew window is rejected by the timestamp check anyway.
pub struct ReplayCache {
    inner: Mutex<ReplayInner>,
    capacity: usize,
}

struct ReplayInner {
    seen: HashSet<String>,
    order: VecDeque<(Instant, String)>,
}

impl ReplayCache {
    pub fn new(capacity: usize) -> Self {
        ReplayCache {
            inner: Mutex::new(ReplayInner {
                seen: HashSet::new(),
                order: VecDeque::new(),
            }),
            capacity: capacity.max(1),
        }
    }

    /// Records `sig`; false if it was already recorded within the window.
    pub fn insert_fresh(&self, sig: &str, now: Instant) -> bool {
        let mut g = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        while let Some((at, _)) = g.order.front() {
            if now.duration_since(*at) < REPLAY_WINDOW && g.order.len() < self.capacity {
                break;
            }
            if let Some((_, old)) = g.order.pop_front() {
                g.seen.remove(&old);
            }
        }
        let key = sig.trim().to_ascii_lowercase();
        if !g.seen.insert(key.clone()) {
            return false;
        }
        g.order.push_back((now, key));
        true
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map(|g| g.seen.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The user a signed request acts for (`x-or-user`), set by [`require_signature`]; requests
/// without one act for nobody in particular and share the `""` user's allowance.
#[derive(Debug, Clone, Default)]
pub struct ActingUser(pub String);

/// Middleware: verifies `x-or-timestamp` / `x-or-signature` over method, path+query, the
/// `x-or-body-sha256` header and `x-or-user` before reading any of the body; then reads the
/// body (at most [`MAX_BODY_BYTES`]) and refuses it unless it matches the signed hash.
pub async fn require_signature(
    State(st): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or_else(|| parts.uri.path());
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let signed = SignedHeaders {
        timestamp: header(HEADER_TIMESTAMP),
        signature: header(HEADER_SIGNATURE),
        body_sha256: header(HEADER_BODY_SHA256),
        user: header(HEADER_USER),
    };
    let result = vm_auth::verify(
        &st.secret,
        parts.method.as_str(),
        path_and_query,
        signed,
        now_unix(),
    )
    .and_then(|()| match signed.signature {
        Some(s) if st.replay.insert_fresh(s, Instant::now()) => Ok(()),
        _ => Err(AuthError::Replayed),
    });
    if let Err(e) = result {
        tracing::warn!(method = %parts.method, path = %parts.uri.path(), "rejected request: {e}");
        // The body is never read: dropping it closes the connection's upload.
        return ApiError::unauthorized(e.to_string()).into_response();
    }
    let want_hash = signed.body_sha256.unwrap_or_default().to_string();
    let user = signed.user.unwrap_or_default().to_string();
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request body is over {MAX_BODY_BYTES} bytes or could not be read"),
        )
        .into_response()
    };
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return too_large();
    }
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => return too_large(),
    };
    if vm_auth::sha256_hex(&bytes) != want_hash {
        tracing::warn!(method = %parts.method, path = %parts.uri.path(), "rejected request: body does not match its hash");
        return ApiError::unauthorized(AuthError::BodyMismatch.to_string()).into_response();
    }
    if let Some((project, rest)) = open_replit_core::ids::split_project_path(parts.uri.path()) {
        if crate::reaper::counts_as_use(rest) {
            st.activity.touch(project);
        }
    }
    parts.extensions.insert(ActingUser(user));
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Appends a unique `or_nonce` query parameter to `path_and_query`.
///
/// Two identical requests signed in the same second carry the same signature, and the replay
/// cache refuses the second; a nonce in the (signed) query makes each request distinct.
pub fn with_nonce(path_and_query: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seed = format!(
        "{}:{}:{:?}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        std::time::SystemTime::now()
    );
    let nonce = &vm_auth::sha256_hex(seed.as_bytes())[..16];
    let sep = if path_and_query.contains('?') {
        '&'
    } else {
        '?'
    };
    format!("{path_and_query}{sep}or_nonce={nonce}")
}

/// The auth headers for a request signed now: what tests and tools use (the Worker signs with
/// core's `vm_auth::request_headers` directly).
pub fn signed_headers(
    secret: &[u8],
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    vm_auth::request_headers(secret, method, path_and_query, now_unix(), body, None)
}

/// Like [`signed_headers`], acting for `user`.
pub fn signed_headers_as(
    secret: &[u8],
    method: &str,
    path_and_query: &str,
    body: &[u8],
    user: &str,
) -> Vec<(&'static str, String)> {
    vm_auth::request_headers(secret, method, path_and_query, now_unix(), body, Some(user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_cache_rejects_repeats_and_forgets_after_window() {
        let c = ReplayCache::new(10);
        let t0 = Instant::now();
        assert!(c.insert_fresh("aa", t0));
        assert!(!c.insert_fresh("AA", t0));
        assert!(c.insert_fresh("bb", t0));
        let later = t0 + REPLAY_WINDOW + Duration::from_secs(1);
        assert!(c.insert_fresh("cc", later));
        assert_eq!(c.len(), 1, "expired entries are pruned");
        assert!(c.insert_fresh("aa", later));
    }

    #[test]
    fn replay_cache_is_bounded() {
        let c = ReplayCache::new(3);
        let t = Instant::now();
        for s in ["a", "b", "c", "d", "e"] {
            assert!(c.insert_fresh(s, t));
        }
        assert_eq!(c.len(), 3);
        assert!(!c.insert_fresh("e", t));
    }
}
