//! A small stand-in for GitHub's OAuth endpoints (github.com cannot be reached from the test
//! machines). It checks each request against GitHub's documented shapes ("Authorizing OAuth
//! apps", web application flow with PKCE; REST `GET /user`) and answers like GitHub; every
//! mismatch is recorded in `problems`, which the test asserts empty.
//!
//! - `GET /login/oauth/authorize?client_id&redirect_uri&scope&state&code_challenge&code_challenge_method=S256`
//!   → acts as the person approving: `302 {redirect_uri}?code=…&state=…`
//! - `POST /login/oauth/access_token` (`Accept: application/json`, form `client_id`,
//!   `client_secret`, `code`, `redirect_uri`, `code_verifier`) → `{"access_token","token_type","scope"}`,
//!   or, as GitHub does, `200 {"error": "bad_verification_code", …}`
//! - `GET /user` (`Authorization: Bearer`, `Accept: application/vnd.github+json`, a
//!   `User-Agent`, `X-GitHub-Api-Version`) → `{"id","login","name"}`

use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Form, Json, Router,
};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

pub const CLIENT_ID: &str = "Iv1.e2e0123456789";
pub const CLIENT_SECRET: &str = "e2e-github-client-secret";
const ACCESS_TOKEN: &str = "gho_e2eAccessToken0123456789";

#[derive(Default)]
struct Inner {
    /// code → (code_challenge, redirect_uri)
    codes: HashMap<String, (String, String)>,
    problems: Vec<String>,
    exchanges: usize,
}

type Shared = Arc<Mutex<Inner>>;

pub struct FakeGithub {
    pub url: String,
    inner: Shared,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FakeGithub {
    pub async fn start() -> anyhow::Result<FakeGithub> {
        let inner: Shared = Arc::default();
        let app = Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(access_token))
            .route("/user", get(user))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(FakeGithub {
            url,
            inner,
            _stop: tx,
        })
    }

    /// The Worker vars for GitHub sign-in through this fake.
    pub fn vars(&self) -> Vec<(String, String)> {
        vec![
            ("GITHUB_CLIENT_ID".into(), CLIENT_ID.into()),
            ("GITHUB_CLIENT_SECRET".into(), CLIENT_SECRET.into()),
            ("GITHUB_OAUTH_URL".into(), self.url.clone()),
            ("GITHUB_API_URL".into(), self.url.clone()),
        ]
    }

    pub fn problems(&self) -> Vec<String> {
        self.inner.lock().unwrap().problems.clone()
    }

    pub fn exchanges(&self) -> usize {
        self.inner.lock().unwrap().exchanges
    }
}

fn expect_keys(
    what: &str,
    got: &BTreeMap<String, String>,
    want: &[&str],
    problems: &mut Vec<String>,
) {
    let keys: Vec<&str> = got.keys().map(String::as_str).collect();
    let mut want: Vec<&str> = want.to_vec();
    want.sort();
    if keys != want {
        problems.push(format!("{what}: parameters {keys:?}, expected {want:?}"));
    }
}

async fn authorize(State(s): State<Shared>, Query(q): Query<BTreeMap<String, String>>) -> Response {
    let mut g = s.lock().unwrap();
    expect_keys(
        "authorize",
        &q,
        &[
            "client_id",
            "redirect_uri",
            "scope",
            "state",
            "code_challenge",
            "code_challenge_method",
            "allow_signup",
        ],
        &mut g.problems,
    );
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        g.problems
            .push(format!("authorize: client_id {:?}", q.get("client_id")));
    }
    if q.get("code_challenge_method").map(String::as_str) != Some("S256") {
        g.problems
            .push("authorize: code_challenge_method is not S256".into());
    }
    let (Some(redirect), Some(state), Some(challenge)) = (
        q.get("redirect_uri"),
        q.get("state"),
        q.get("code_challenge"),
    ) else {
        return (StatusCode::BAD_REQUEST, "missing parameters").into_response();
    };
    let code = format!("code{}", g.codes.len() + 1);
    g.codes
        .insert(code.clone(), (challenge.clone(), redirect.clone()));
    Redirect::to(&format!("{redirect}?code={code}&state={state}")).into_response()
}

async fn access_token(
    State(s): State<Shared>,
    headers: HeaderMap,
    Form(f): Form<BTreeMap<String, String>>,
) -> Response {
    let mut g = s.lock().unwrap();
    g.exchanges += 1;
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    if h("accept") != "application/json" {
        g.problems
            .push(format!("access_token: Accept {:?}", h("accept")));
    }
    if !h("content-type").starts_with("application/x-www-form-urlencoded") {
        g.problems.push(format!(
            "access_token: Content-Type {:?}",
            h("content-type")
        ));
    }
    expect_keys(
        "access_token",
        &f,
        &[
            "client_id",
            "client_secret",
            "code",
            "redirect_uri",
            "code_verifier",
        ],
        &mut g.problems,
    );
    let client_ok = f.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && f.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
    let code = f.get("code").cloned().unwrap_or_default();
    let issued = g.codes.remove(&code);
    let pkce_ok = issued.as_ref().is_some_and(|(challenge, redirect)| {
        f.get("code_verifier")
            .map(|v| open_replit_core::auth::oidc::pkce_challenge(v))
            == Some(challenge.clone())
            && f.get("redirect_uri") == Some(redirect)
    });
    if client_ok && pkce_ok {
        Json(json!({"access_token": ACCESS_TOKEN, "token_type": "bearer", "scope": "read:user"}))
            .into_response()
    } else {
        Json(json!({"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."}))
            .into_response()
    }
}

async fn user(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let mut g = s.lock().unwrap();
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    if h("accept") != "application/vnd.github+json" {
        g.problems.push(format!("/user: Accept {:?}", h("accept")));
    }
    if h("user-agent").is_empty() {
        g.problems
            .push("/user: no User-Agent (GitHub refuses those)".into());
    }
    if h("x-github-api-version") != "2022-11-28" {
        g.problems.push(format!(
            "/user: X-GitHub-Api-Version {:?}",
            h("x-github-api-version")
        ));
    }
    if h("authorization") != format!("Bearer {ACCESS_TOKEN}") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Bad credentials"})),
        )
            .into_response();
    }
    Json(json!({"id": 4242, "login": "Octo-Cat", "name": "Octo Cat", "email": null}))
        .into_response()
}
