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
//! - with [`FakeGithub::start_with_repos`] (REST "Create a repository for the authenticated
//!   user" and "Get a repository"): `POST /user/repos` (JSON `name`, `private`, optional
//!   `description`, `auto_init`) → `201` with the repository object, whose `clone_url` is a
//!   fresh bare repository on a real [`crate::gitserver::GitServer`], or `422` "name already
//!   exists on this account"; `GET /repos/{owner}/{repo}` → the object with `permissions`.
//!   The personal token is the git server's token, as a GitHub token is for github.com.

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
    /// With repositories: the git server's URL and root, and the personal token it accepts.
    git: Option<(String, std::path::PathBuf, String)>,
    /// name → private, for repositories created through the API.
    repos: BTreeMap<String, bool>,
}

/// The login the fake's `/user` answers.
pub const LOGIN: &str = "Octo-Cat";

type Shared = Arc<Mutex<Inner>>;

pub struct FakeGithub {
    pub url: String,
    inner: Shared,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FakeGithub {
    pub async fn start() -> anyhow::Result<FakeGithub> {
        Self::serve(Arc::default()).await
    }

    /// Also answers the repository API, creating repositories on `git` (whose token is the
    /// personal token this fake accepts).
    pub async fn start_with_repos(git: &crate::gitserver::GitServer) -> anyhow::Result<FakeGithub> {
        let inner: Shared = Arc::default();
        inner.lock().unwrap().git = Some((
            git.url.clone(),
            git.root.path().to_path_buf(),
            git.token.clone(),
        ));
        Self::serve(inner).await
    }

    /// Repositories created through `POST /user/repos`: name → private.
    pub fn repos(&self) -> BTreeMap<String, bool> {
        self.inner.lock().unwrap().repos.clone()
    }

    async fn serve(inner: Shared) -> anyhow::Result<FakeGithub> {
        let app = Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(access_token))
            .route("/user", get(user))
            .route("/user/repos", post(create_repo))
            .route("/repos/{owner}/{repo}", get(get_repo))
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
    let pat = g.git.as_ref().map(|(_, _, t)| format!("Bearer {t}"));
    let auth = h("authorization");
    if auth != format!("Bearer {ACCESS_TOKEN}") && Some(&auth) != pat.as_ref() {
        return bad_credentials();
    }
    Json(json!({"id": 4242, "login": LOGIN, "name": "Octo Cat", "email": null})).into_response()
}

fn bad_credentials() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"})),
    )
        .into_response()
}

/// Checks a REST call's headers and its personal token; the error to answer, if any.
fn rest_check(g: &mut Inner, what: &str, headers: &HeaderMap) -> Option<Response> {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    if h("accept") != "application/vnd.github+json" {
        g.problems.push(format!("{what}: Accept {:?}", h("accept")));
    }
    if h("user-agent").is_empty() {
        g.problems.push(format!("{what}: no User-Agent"));
    }
    if h("x-github-api-version") != "2022-11-28" {
        g.problems.push(format!(
            "{what}: X-GitHub-Api-Version {:?}",
            h("x-github-api-version")
        ));
    }
    let Some((_, _, token)) = g.git.clone() else {
        g.problems
            .push(format!("{what}: this fake has no repositories"));
        return Some(StatusCode::NOT_FOUND.into_response());
    };
    if h("authorization") != format!("Bearer {token}") {
        return Some(bad_credentials());
    }
    None
}

fn repo_object(git_url: &str, name: &str, private: bool) -> serde_json::Value {
    json!({
        "id": 1000 + name.len(),
        "name": name,
        "full_name": format!("{LOGIN}/{name}"),
        "private": private,
        "owner": {"login": LOGIN, "id": 4242},
        "html_url": format!("https://github.com/{LOGIN}/{name}"),
        "clone_url": format!("{git_url}/{LOGIN}/{name}.git"),
        "default_branch": "main",
        "permissions": {"admin": true, "maintain": true, "push": true, "triage": true, "pull": true}
    })
}

async fn create_repo(
    State(s): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let mut g = s.lock().unwrap();
    if let Some(r) = rest_check(&mut g, "POST /user/repos", &headers) {
        return r;
    }
    if !headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
    {
        g.problems.push("POST /user/repos: not JSON".into());
    }
    let v: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"message": "Problems parsing JSON"})),
            )
                .into_response()
        }
    };
    let known = ["name", "description", "private", "auto_init"];
    for k in v
        .as_object()
        .map(|o| o.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if !known.contains(&k.as_str()) {
            g.problems
                .push(format!("POST /user/repos: unexpected field {k}"));
        }
    }
    if v["auto_init"] == json!(true) {
        g.problems
            .push("POST /user/repos: auto_init would make the first push fail".into());
    }
    let Some(name) = v["name"].as_str().map(String::from) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"message": "Validation Failed", "errors": [{"resource": "Repository", "code": "missing_field", "field": "name"}]})),
        )
            .into_response();
    };
    let private = v["private"].as_bool().unwrap_or(false);
    let (git_url, root, _) = g.git.clone().expect("checked");
    if g.repos.contains_key(&name) {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"message": "Repository creation failed.", "errors": [{"resource": "Repository", "code": "custom", "field": "name", "message": "name already exists on this account"}], "documentation_url": "https://docs.github.com/rest/repos/repos#create-a-repository-for-the-authenticated-user", "status": "422"})),
        )
            .into_response();
    }
    let dir = root.join(LOGIN).join(format!("{name}.git"));
    let out = std::process::Command::new("git")
        .args(["init", "--bare", "-q", "--initial-branch", "main"])
        .arg(&dir)
        .output();
    if !out.is_ok_and(|o| o.status.success()) {
        g.problems
            .push(format!("could not create {}", dir.display()));
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    g.repos.insert(name.clone(), private);
    (
        StatusCode::CREATED,
        Json(repo_object(&git_url, &name, private)),
    )
        .into_response()
}

async fn get_repo(
    State(s): State<Shared>,
    headers: HeaderMap,
    axum::extract::Path((owner, repo)): axum::extract::Path<(String, String)>,
) -> Response {
    let mut g = s.lock().unwrap();
    if let Some(r) = rest_check(&mut g, "GET /repos", &headers) {
        return r;
    }
    let (git_url, _, _) = g.git.clone().expect("checked");
    match g.repos.get(&repo) {
        Some(private) if owner == LOGIN => {
            Json(repo_object(&git_url, &repo, *private)).into_response()
        }
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "Not Found", "status": "404"})),
        )
            .into_response(),
    }
}
