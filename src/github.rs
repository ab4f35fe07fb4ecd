//! "Push to GitHub" in the Worker: with the GitHub token from the person's vault, creates the
//! repository (`POST /user/repos`; a name already on the account is reused when the token may
//! push to it), then pushes the project's git history there through the VM API. The token
//! goes only into those requests' `Authorization` and that one `git push`'s environment. Every
//! GitHub request's method, path and status is logged (never a header or a body).

use crate::error::ApiError;
use crate::vm::Vm;
use open_replit_core::git::PushRequest;
use open_replit_core::github_repo::{
    explain, name_taken, repo_name_from, validate_repo_name, CreateRepo, GithubPushReply,
    GithubPushRequest, Login, Repo, ACCEPT, API_URL, API_VERSION, TOKEN_USER, USER_AGENT,
};
use open_replit_core::vault::GITHUB_TOKEN;
use worker::{Env, Fetch, Headers, Method, Request, RequestInit};

fn api_base(env: &Env) -> String {
    crate::config::get(env, "GITHUB_API_URL")
        .unwrap_or_else(|| API_URL.to_string())
        .trim_end_matches('/')
        .to_string()
}

/// One GitHub REST call: `(status, body)`.
async fn call(
    base: &str,
    token: &str,
    method: Method,
    path: &str,
    body: Option<String>,
) -> Result<(u16, String), ApiError> {
    let h = Headers::new();
    h.set("authorization", &format!("Bearer {token}"))?;
    h.set("accept", ACCEPT)?;
    h.set("x-github-api-version", API_VERSION)?;
    h.set("user-agent", USER_AGENT)?;
    let mut init = RequestInit::new();
    init.with_method(method.clone()).with_headers(h);
    if let Some(b) = body {
        init.headers.set("content-type", "application/json")?;
        init.with_body(Some(b.into()));
    }
    let req = Request::new_with_init(&format!("{base}{path}"), &init)?;
    let mut resp = Fetch::Request(req).send().await.map_err(|e| {
        worker::console_log!("github: {method} {path} → unreachable");
        ApiError::Upstream(format!(
            "GitHub could not be reached ({method} {path}): {e}"
        ))
    })?;
    let status = resp.status_code();
    worker::console_log!("github: {method} {path} → {status}");
    Ok((status, resp.text().await.unwrap_or_default()))
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, body: &str) -> Result<T, ApiError> {
    serde_json::from_str(body)
        .map_err(|e| ApiError::Upstream(format!("GitHub's {what} answer was not understood: {e}")))
}

fn failed(what: &str, status: u16, body: &str) -> ApiError {
    let msg = explain(what, status, body);
    match status {
        401 | 403 => ApiError::Forbidden(msg),
        422 | 400 => ApiError::BadRequest(msg),
        _ => ApiError::Upstream(msg),
    }
}

/// Finds or creates the repository, then pushes the history to it.
pub async fn push(
    env: &Env,
    vm: &Vm,
    user: &str,
    id: &str,
    project_name: &str,
    req: GithubPushRequest,
) -> Result<GithubPushReply, ApiError> {
    let name = match req.repo.as_deref().map(str::trim) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => repo_name_from(project_name),
    };
    validate_repo_name(&name).map_err(ApiError::BadRequest)?;
    let token = crate::vault::require(env, user, GITHUB_TOKEN, "pushing to GitHub").await?;
    let base = api_base(env);
    let create = CreateRepo {
        name: name.clone(),
        description: req.description.clone().filter(|d| !d.trim().is_empty()),
        private: req.private,
        auto_init: false,
    };
    let (status, body) = call(
        &base,
        &token,
        Method::Post,
        "/user/repos",
        Some(serde_json::to_string(&create)?),
    )
    .await?;
    let (repo, created) = match status {
        201 => (parse::<Repo>("POST /user/repos", &body)?, true),
        422 if name_taken(&body) => {
            // Already on the account: push to it if the token may.
            let (s, b) = call(&base, &token, Method::Get, "/user", None).await?;
            if s != 200 {
                return Err(failed("GET /user", s, &b));
            }
            let login: Login = parse("GET /user", &b)?;
            let path = format!("/repos/{}/{name}", login.login);
            let (s, b) = call(&base, &token, Method::Get, &path, None).await?;
            if s != 200 {
                return Err(failed(&format!("GET {path}"), s, &b));
            }
            let repo: Repo = parse(&format!("GET {path}"), &b)?;
            if repo.permissions.as_ref().is_some_and(|p| !p.push) {
                return Err(ApiError::Forbidden(format!(
                    "{} exists and your token may not push to it; choose another name",
                    repo.full_name
                )));
            }
            (repo, false)
        }
        _ => return Err(failed("POST /user/repos", status, &body)),
    };
    let push = PushRequest {
        url: repo.clone_url.clone(),
        branch: req.branch.clone(),
        username: Some(TOKEN_USER.to_string()),
        token: Some(token),
    };
    push.validate().map_err(ApiError::BadRequest)?;
    let push = vm.git_push(id, &push).await?;
    Ok(GithubPushReply {
        repo,
        created,
        push,
    })
}
