//! Who is calling: the auth mode from the Worker's settings, the caller from a session cookie,
//! a personal API token or a one-time socket ticket (asked of the `Directory`), and the
//! sign-in routes (`/auth/*`: OpenID Connect with PKCE, GitHub, logout) plus the account API
//! (`/api/me`, `/api/tokens`, `/api/ws-ticket`). `lib.rs` runs [`gate`] before every route.

use crate::azure::random_bytes;
use crate::directory::call;
use crate::error::ApiError;
use open_replit_core::auth::directory::{Credential, DirRequest, PendingLogin, User};
use open_replit_core::auth::mode::{local_request_allowed, Mode, NOT_CONFIGURED};
use open_replit_core::auth::roles::Role;
use open_replit_core::auth::token::{self, Kind};
use open_replit_core::auth::{cookie, github, oidc, LOCAL_USER, OPEN_USER};
use serde::Deserialize;
use serde_json::json;
use worker::{Env, Fetch, Headers, Method, Request, RequestInit, Response, Url};

/// How long a browser session lasts.
const SESSION_S: u64 = 30 * 24 * 3600;
/// How long a sign-in may take between the redirect and the callback.
const LOGIN_S: u64 = 600;
/// How long a socket ticket is valid (it is used once, right away).
const TICKET_S: u64 = 60;

pub struct OidcConf {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
}

pub struct GithubConf {
    pub client_id: String,
    pub client_secret: String,
    pub oauth_url: String,
    pub api_url: String,
}

pub struct AuthConfig {
    pub mode: Mode,
    pub oidc: Option<OidcConf>,
    pub github: Option<GithubConf>,
}

fn get(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .map(|s| s.to_string())
        .or_else(|_| env.var(name).map(|v| v.to_string()))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

impl AuthConfig {
    /// Reads `AUTH_MODE`, `OIDC_*` and `GITHUB_*`; a half-configured provider is an error that
    /// names the missing setting (and refuses every call), never a silent fallback.
    pub fn from_env(env: &Env) -> Result<AuthConfig, ApiError> {
        let misconfigured = |m: String| ApiError::Unavailable {
            code: "auth_misconfigured",
            message: m,
        };
        let oidc = match (
            get(env, "OIDC_ISSUER"),
            get(env, "OIDC_CLIENT_ID"),
            get(env, "OIDC_CLIENT_SECRET"),
        ) {
            (None, None, None) => None,
            (Some(issuer), Some(client_id), Some(client_secret)) => {
                oidc::check_issuer_url(&issuer).map_err(misconfigured)?;
                Some(OidcConf {
                    issuer,
                    client_id,
                    client_secret,
                })
            }
            _ => return Err(misconfigured(
                "OpenID Connect needs all of OIDC_ISSUER, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET"
                    .into(),
            )),
        };
        let github = match (
            get(env, "GITHUB_CLIENT_ID"),
            get(env, "GITHUB_CLIENT_SECRET"),
        ) {
            (None, None) => None,
            (Some(client_id), Some(client_secret)) => Some(GithubConf {
                client_id,
                client_secret,
                oauth_url: get(env, "GITHUB_OAUTH_URL").unwrap_or_else(|| github::OAUTH_URL.into()),
                api_url: get(env, "GITHUB_API_URL").unwrap_or_else(|| github::API_URL.into()),
            }),
            _ => {
                return Err(misconfigured(
                    "GitHub sign-in needs both GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET".into(),
                ))
            }
        };
        let mode = Mode::resolve(
            get(env, "AUTH_MODE").as_deref(),
            oidc.is_some() || github.is_some(),
        )
        .map_err(misconfigured)?;
        Ok(AuthConfig { mode, oidc, github })
    }

    pub fn providers(&self) -> Vec<&'static str> {
        let mut p = vec![];
        if self.mode == Mode::SignIn {
            if self.oidc.is_some() {
                p.push("oidc");
            }
            if self.github.is_some() {
                p.push("github");
            }
        }
        p
    }
}

/// How a caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Local or open mode: nobody proves anything.
    Mode,
    Session,
    Token,
    Ticket,
}

pub struct Caller {
    pub user: User,
    pub via: Via,
    /// The role on the project the request is about (when it names one).
    pub role: Option<Role>,
}

fn builtin(id: &str) -> User {
    User {
        id: id.into(),
        name: if id == LOCAL_USER {
            "Local user".into()
        } else {
            "Everyone (open mode)".into()
        },
        email: None,
        login: None,
        provider: id.into(),
    }
}

/// Whether the request came over https (cookies then carry `Secure` and the `__Host-` prefix).
fn secure(url: &Url) -> bool {
    url.scheme() == "https"
        || !open_replit_core::auth::mode::is_loopback_host(url.host_str().unwrap_or(""))
}

/// Local mode answers only on loopback; a deployed Worker nobody configured refuses here.
pub fn admit(cfg: &AuthConfig, req: &Request, url: &Url) -> Result<(), ApiError> {
    if cfg.mode != Mode::Local {
        return Ok(());
    }
    let peer = req.headers().get("cf-connecting-ip").ok().flatten();
    if local_request_allowed(url.host_str().unwrap_or(""), peer.as_deref()) {
        Ok(())
    } else {
        Err(ApiError::Unavailable {
            code: "auth_not_configured",
            message: NOT_CONFIGURED.into(),
        })
    }
}

/// The caller's credential: the session cookie, `Authorization: Bearer orp_…`, or (for socket
/// upgrades) `?ticket=ort_…`.
fn credential(req: &Request, url: &Url) -> Option<(Credential, Via)> {
    let h = req.headers();
    if let Ok(Some(a)) = h.get("authorization") {
        // git and other HTTP clients send a token as Basic auth's password.
        if let Some(t) = token::basic_password(&a) {
            return token::looks_like(Kind::Personal, &t)
                .then(|| (Credential::Token(token::hash(&t)), Via::Token));
        }
        let t = a
            .strip_prefix("Bearer ")
            .or_else(|| a.strip_prefix("bearer "))?
            .trim();
        return token::looks_like(Kind::Personal, t)
            .then(|| (Credential::Token(token::hash(t)), Via::Token));
    }
    // Tickets open sockets only (a URL is logged in more places than a header).
    let socket = url.path().ends_with("/ws") || url.path().ends_with("/pty");
    if let Some((_, t)) = url
        .query_pairs()
        .find(|(k, _)| k == "ticket")
        .filter(|_| socket)
    {
        return token::looks_like(Kind::Ticket, &t)
            .then(|| (Credential::Ticket(token::hash(&t)), Via::Ticket));
    }
    let c = h.get("cookie").ok().flatten()?;
    let v = cookie::get(&c, cookie::session_name(secure(url)))?;
    token::looks_like(Kind::Session, v).then(|| (Credential::Session(token::hash(v)), Via::Session))
}

fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}

/// Who is calling, and their role on `project` if one is named. `None`: nobody signed in.
/// Answers for sessions and tokens are reused for up to 5 s in this isolate.
pub async fn identify(
    cfg: &AuthConfig,
    env: &Env,
    req: &Request,
    url: &Url,
    project: Option<&str>,
) -> Result<Option<Caller>, ApiError> {
    match cfg.mode {
        Mode::Local | Mode::Open => {
            let id = if cfg.mode == Mode::Local {
                LOCAL_USER
            } else {
                OPEN_USER
            };
            Ok(Some(Caller {
                user: builtin(id),
                via: Via::Mode,
                role: project.map(|_| Role::Owner),
            }))
        }
        Mode::SignIn => {
            let Some((credential, via)) = credential(req, url) else {
                return Ok(None);
            };
            let reply = crate::directory::check(env, credential, project, now_ms()).await?;
            Ok(reply.user.map(|user| Caller {
                user,
                via,
                role: reply.role,
            }))
        }
    }
}

pub fn unauthorized() -> ApiError {
    ApiError::Unauthorized(
        "sign in first: open the app and sign in, or send Authorization: Bearer <personal API token>"
            .into(),
    )
}

/// A new request for the project's room: the same method, URL and body, with any client-sent
/// `x-or-*` header removed and `x-or-user` / `x-or-role` set from the check.
pub fn forward_request(req: &Request, user_id: &str, role: Role) -> Result<Request, ApiError> {
    let headers = Headers::new();
    for (k, v) in req.headers() {
        if !k.starts_with("x-or-") {
            headers.append(&k, &v)?;
        }
    }
    headers.set(open_replit_core::auth::USER_HEADER, user_id)?;
    headers.set(open_replit_core::auth::ROLE_HEADER, role.as_str())?;
    let init = web_sys::RequestInit::new();
    init.set_headers(headers.as_ref());
    let inner = web_sys::Request::new_with_request_and_init(req.inner(), &init)
        .map_err(|e| ApiError::Internal(format!("copying the request: {e:?}")))?;
    Ok(Request::from(inner))
}

// ---- the sign-in routes ----

fn random_token(kind: Kind) -> String {
    token::encode(kind, &random_bytes::<32>())
}

fn redirect(to: &str) -> Result<Response, ApiError> {
    let r = Response::empty()?.with_status(302);
    r.headers().set("location", to)?;
    r.headers().set("cache-control", "no-store")?;
    Ok(r)
}

/// A same-origin path to return to after sign-in (never `//host` or a scheme).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.contains(['\r', '\n']) =>
        {
            n.to_string()
        }
        _ => "/".into(),
    }
}

async fn fetch_json<T: for<'de> Deserialize<'de>>(what: &str, req: Request) -> Result<T, ApiError> {
    let mut r = Fetch::Request(req)
        .send()
        .await
        .map_err(|e| ApiError::Upstream(format!("{what}: {e}")))?;
    let status = r.status_code();
    let text = r.text().await.unwrap_or_default();
    if !(200..300).contains(&status) && status != 400 && status != 401 {
        return Err(ApiError::Upstream(format!(
            "{what} answered HTTP {status}: {}",
            text.chars().take(300).collect::<String>()
        )));
    }
    serde_json::from_str(&text).map_err(|e| {
        ApiError::Upstream(format!(
            "{what} answered HTTP {status} with something unexpected ({e}): {}",
            text.chars().take(300).collect::<String>()
        ))
    })
}

async fn discovery(o: &OidcConf) -> Result<oidc::Discovery, ApiError> {
    let url = oidc::discovery_url(&o.issuer);
    let parsed = Url::parse(&url).map_err(|e| ApiError::Upstream(format!("{url}: {e}")))?;
    let mut r = Fetch::Url(parsed)
        .send()
        .await
        .map_err(|e| ApiError::Upstream(format!("the identity provider at {url}: {e}")))?;
    let text = r.text().await.unwrap_or_default();
    if r.status_code() != 200 {
        return Err(ApiError::Upstream(format!(
            "the identity provider's discovery document {url} answered HTTP {}",
            r.status_code()
        )));
    }
    oidc::Discovery::parse(&text, &o.issuer).map_err(ApiError::Upstream)
}

fn callback_url(url: &Url) -> String {
    format!("{}/auth/callback", url.origin().ascii_serialization())
}

/// `GET /auth/login?provider=oidc|github&next=/path`: starts a sign-in.
pub async fn login(cfg: &AuthConfig, env: &Env, url: &Url) -> Result<Response, ApiError> {
    let q = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_string())
    };
    let provider = q("provider").unwrap_or_else(|| {
        if cfg.oidc.is_some() {
            "oidc".into()
        } else {
            "github".into()
        }
    });
    if cfg.mode != Mode::SignIn {
        return Err(ApiError::BadRequest(format!(
            "this server runs in {} mode: there is nothing to sign in to",
            cfg.mode.as_str()
        )));
    }
    let state = random_token(Kind::Ticket);
    let verifier = token::b64url(&random_bytes::<32>());
    let nonce = token::b64url(&random_bytes::<16>());
    let redirect_uri = callback_url(url);
    let to = match provider.as_str() {
        "oidc" => {
            let o = cfg.oidc.as_ref().ok_or_else(|| {
                ApiError::BadRequest("OpenID Connect sign-in is not configured here".into())
            })?;
            let d = discovery(o).await?;
            oidc::authorize_url(
                &d,
                &oidc::Attempt {
                    client_id: &o.client_id,
                    redirect_uri: &redirect_uri,
                    state: &state,
                    nonce: &nonce,
                    verifier: &verifier,
                },
            )
        }
        "github" => {
            let g = cfg.github.as_ref().ok_or_else(|| {
                ApiError::BadRequest("GitHub sign-in is not configured here".into())
            })?;
            github::authorize_url(
                &g.oauth_url,
                &g.client_id,
                &redirect_uri,
                &state,
                &oidc::pkce_challenge(&verifier),
            )
        }
        other => {
            return Err(ApiError::BadRequest(format!(
                "unknown provider {other:?}; this server offers {:?}",
                cfg.providers()
            )))
        }
    };
    let _: serde_json::Value = call(
        env,
        &DirRequest::PutLogin {
            state_hash: token::hash(&state),
            login: PendingLogin {
                provider,
                verifier,
                nonce,
                next: safe_next(q("next").as_deref()),
                expires_ms: now_ms() + LOGIN_S * 1000,
            },
        },
    )
    .await?;
    let r = redirect(&to)?;
    // Binds the sign-in to this browser: a callback carrying someone else's state (login CSRF)
    // finds no matching cookie.
    let sec = secure(url);
    r.headers().append(
        "set-cookie",
        &cookie::set(cookie::login_name(sec), &state, LOGIN_S, sec),
    )?;
    Ok(r)
}

/// `GET /auth/callback?code=…&state=…`: finishes a sign-in and opens a session.
pub async fn callback(
    cfg: &AuthConfig,
    env: &Env,
    req: &Request,
    url: &Url,
) -> Result<Response, ApiError> {
    let q = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_string())
    };
    if let Some(e) = q("error") {
        return Err(ApiError::Unauthorized(format!(
            "the identity provider refused the sign-in: {e} {}",
            q("error_description").unwrap_or_default()
        )));
    }
    let (Some(code), Some(state)) = (q("code"), q("state")) else {
        return Err(ApiError::BadRequest(
            "the callback needs code and state".into(),
        ));
    };
    let sec = secure(url);
    let bound = req
        .headers()
        .get("cookie")
        .ok()
        .flatten()
        .and_then(|c| cookie::get(&c, cookie::login_name(sec)).map(String::from));
    if bound.as_deref() != Some(state.as_str()) {
        return Err(ApiError::Unauthorized(
            "this sign-in was not started in this browser (or took over 10 minutes): start again"
                .into(),
        ));
    }
    let login: Option<PendingLogin> = call(
        env,
        &DirRequest::TakeLogin {
            state_hash: token::hash(&state),
            now_ms: now_ms(),
        },
    )
    .await?;
    let Some(login) = login else {
        return Err(ApiError::Unauthorized(
            "this sign-in expired or was already used: start again".into(),
        ));
    };
    let redirect_uri = callback_url(url);
    let user =
        match login.provider.as_str() {
            "oidc" => {
                let o = cfg.oidc.as_ref().ok_or_else(|| {
                    ApiError::BadRequest("OpenID Connect is not configured".into())
                })?;
                let d = discovery(o).await?;
                let (body, basic) = oidc::token_request(
                    &d,
                    &o.client_id,
                    &o.client_secret,
                    &code,
                    &redirect_uri,
                    &login.verifier,
                );
                let h = Headers::new();
                h.set("content-type", "application/x-www-form-urlencoded")?;
                h.set("accept", "application/json")?;
                if let Some(b) = basic {
                    h.set("authorization", &b)?;
                }
                let mut init = RequestInit::new();
                init.with_method(Method::Post)
                    .with_headers(h)
                    .with_body(Some(body.into()));
                let reply: oidc::TokenReply = fetch_json(
                    "the identity provider's token endpoint",
                    Request::new_with_init(&d.token_endpoint, &init)?,
                )
                .await?;
                let Some(id_token) = reply.id_token else {
                    return Err(ApiError::Unauthorized(format!(
                        "the identity provider gave no ID token: {} {}",
                        reply.error.unwrap_or_default(),
                        reply.error_description.unwrap_or_default()
                    )));
                };
                let id = oidc::validate_id_token(
                    &id_token,
                    &o.issuer,
                    &o.client_id,
                    &login.nonce,
                    (now_ms() / 1000) as i64,
                )
                .map_err(ApiError::Unauthorized)?;
                User {
                    id: id.user_id,
                    name: id.name,
                    email: id.email,
                    login: None,
                    provider: "oidc".into(),
                }
            }
            "github" => {
                let g = cfg.github.as_ref().ok_or_else(|| {
                    ApiError::BadRequest("GitHub sign-in is not configured".into())
                })?;
                let (token_url, body) = github::token_request(
                    &g.oauth_url,
                    &g.client_id,
                    &g.client_secret,
                    &code,
                    &redirect_uri,
                    &login.verifier,
                );
                let h = Headers::new();
                h.set("content-type", "application/x-www-form-urlencoded")?;
                h.set("accept", "application/json")?;
                h.set("user-agent", github::USER_AGENT)?;
                let mut init = RequestInit::new();
                init.with_method(Method::Post)
                    .with_headers(h)
                    .with_body(Some(body.into()));
                let reply: github::TokenReply = fetch_json(
                    "GitHub's token endpoint",
                    Request::new_with_init(&token_url, &init)?,
                )
                .await?;
                let Some(access) = reply.access_token else {
                    return Err(ApiError::Unauthorized(format!(
                        "GitHub refused the sign-in: {} {}",
                        reply.error.unwrap_or_default(),
                        reply.error_description.unwrap_or_default()
                    )));
                };
                let h = Headers::new();
                h.set("authorization", &format!("Bearer {access}"))?;
                h.set("accept", "application/vnd.github+json")?;
                h.set("x-github-api-version", github::API_VERSION)?;
                h.set("user-agent", github::USER_AGENT)?;
                let mut init = RequestInit::new();
                init.with_headers(h);
                let u: github::User = fetch_json(
                    "GitHub's /user",
                    Request::new_with_init(
                        &format!("{}/user", g.api_url.trim_end_matches('/')),
                        &init,
                    )?,
                )
                .await?;
                User {
                    id: u.user_id(),
                    name: u.display_name(),
                    email: None,
                    login: Some(u.login),
                    provider: "github".into(),
                }
            }
            other => return Err(ApiError::BadRequest(format!("unknown provider {other:?}"))),
        };
    let session = random_token(Kind::Session);
    let _: serde_json::Value = call(
        env,
        &DirRequest::SignIn {
            user,
            session_hash: token::hash(&session),
            expires_ms: now_ms() + SESSION_S * 1000,
        },
    )
    .await?;
    let r = redirect(&login.next)?;
    r.headers().append(
        "set-cookie",
        &cookie::set(cookie::session_name(sec), &session, SESSION_S, sec),
    )?;
    r.headers().append(
        "set-cookie",
        &cookie::set(cookie::login_name(sec), "", 0, sec),
    )?;
    Ok(r)
}

/// `POST /auth/logout`: revokes the session in the Directory and clears the cookie.
pub async fn logout(env: &Env, req: &Request, url: &Url) -> Result<Response, ApiError> {
    let sec = secure(url);
    if let Some(c) = req.headers().get("cookie").ok().flatten() {
        if let Some(v) = cookie::get(&c, cookie::session_name(sec)) {
            let _: serde_json::Value = call(
                env,
                &DirRequest::Logout {
                    session_hash: token::hash(v),
                },
            )
            .await?;
        }
    }
    let r = Response::from_json(&json!({"signed_out": true}))?;
    r.headers().append(
        "set-cookie",
        &cookie::set(cookie::session_name(sec), "", 0, sec),
    )?;
    Ok(r)
}

// ---- the account API ----

pub fn me(cfg: &AuthConfig, caller: &Caller) -> Result<Response, ApiError> {
    Ok(Response::from_json(&json!({
        "user": caller.user,
        "mode": cfg.mode.as_str(),
        "via": match caller.via {
            Via::Mode => "mode",
            Via::Session => "session",
            Via::Token => "token",
            Via::Ticket => "ticket",
        },
    }))?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
}

/// `GET|POST /api/tokens`, `DELETE /api/tokens/{id}`: personal API tokens. The secret is in
/// the `POST` answer once; the Directory keeps only its hash.
pub async fn tokens(
    cfg: &AuthConfig,
    env: &Env,
    mut req: Request,
    caller: &Caller,
    rest: &str,
) -> Result<Response, ApiError> {
    if cfg.mode != Mode::SignIn {
        return Err(ApiError::BadRequest(format!(
            "personal API tokens need sign-in; this server runs in {} mode",
            cfg.mode.as_str()
        )));
    }
    let user_id = caller.user.id.clone();
    match (req.method(), rest) {
        (Method::Get, "") => {
            let list: serde_json::Value = call(env, &DirRequest::ListTokens { user_id }).await?;
            Ok(Response::from_json(&json!({ "tokens": list }))?)
        }
        (Method::Post, "") => {
            let body: NewToken = serde_json::from_str(&req.text().await?)?;
            let name = body.name.trim().to_string();
            if name.is_empty() || name.chars().count() > 100 {
                return Err(ApiError::BadRequest(
                    "a token needs a name of 1-100 characters".into(),
                ));
            }
            let secret = random_token(Kind::Personal);
            let info: serde_json::Value = call(
                env,
                &DirRequest::CreateToken {
                    user_id,
                    hash: token::hash(&secret),
                    name,
                    now_ms: now_ms(),
                },
            )
            .await?;
            Ok(Response::from_json(&json!({ "token": info, "secret": secret }))?.with_status(201))
        }
        (Method::Delete, id) if id.starts_with('/') => {
            let v: serde_json::Value = call(
                env,
                &DirRequest::DeleteToken {
                    user_id,
                    id: id[1..].to_string(),
                },
            )
            .await?;
            if v["deleted"] == json!(true) {
                Ok(Response::from_json(&json!({"deleted": true}))?)
            } else {
                Err(ApiError::NotFound(format!("token {}", &id[1..])))
            }
        }
        (m, _) => Err(ApiError::MethodNotAllowed(format!("{m} /api/tokens{rest}"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketRequest {
    project: String,
}

/// `POST /api/ws-ticket {"project"}` → `{"ticket"}`: a one-time, 60-second credential for one
/// project's socket (`?ticket=`), for clients whose cookie is not sent (another origin).
pub async fn ws_ticket(
    cfg: &AuthConfig,
    env: &Env,
    mut req: Request,
    url: &Url,
) -> Result<Response, ApiError> {
    let body: TicketRequest = serde_json::from_str(&req.text().await?)?;
    open_replit_core::ids::validate_project_id(&body.project).map_err(ApiError::BadRequest)?;
    let caller = identify(cfg, env, &req, url, Some(&body.project))
        .await?
        .ok_or_else(unauthorized)?;
    if caller.role.is_none() {
        return Err(ApiError::NotFound(format!("project {}", body.project)));
    }
    if cfg.mode != Mode::SignIn {
        return Ok(Response::from_json(&json!({ "ticket": null }))?);
    }
    let ticket = random_token(Kind::Ticket);
    let _: serde_json::Value = call(
        env,
        &DirRequest::CreateTicket {
            hash: token::hash(&ticket),
            user_id: caller.user.id,
            project: body.project,
            expires_ms: now_ms() + TICKET_S * 1000,
        },
    )
    .await?;
    Ok(Response::from_json(&json!({ "ticket": ticket }))?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InviteBody {
    handle: String,
    role: Role,
}

/// `GET /projects/{id}/members`, `POST …/members {"handle", "role"}`,
/// `DELETE …/members/{user id or handle}`; the gate has already checked the role.
pub async fn members(
    cfg: &AuthConfig,
    mut req: Request,
    env: &Env,
    project: &str,
    rest: &str,
) -> Result<Response, ApiError> {
    if cfg.mode != Mode::SignIn {
        return Err(ApiError::BadRequest(format!(
            "sharing needs sign-in; this server runs in {} mode",
            cfg.mode.as_str()
        )));
    }
    let project = project.to_string();
    match (req.method(), rest) {
        (Method::Get, "/members") => {
            let list: serde_json::Value = call(env, &DirRequest::Members { project }).await?;
            Ok(Response::from_json(&json!({ "members": list }))?)
        }
        (Method::Post, "/members") => {
            let body: InviteBody = serde_json::from_str(&req.text().await?)?;
            let m: serde_json::Value = call(
                env,
                &DirRequest::Invite {
                    project,
                    handle: body.handle,
                    role: body.role,
                },
            )
            .await?;
            Ok(Response::from_json(&json!({ "member": m }))?.with_status(201))
        }
        (Method::Delete, r) if r.starts_with("/members/") => {
            let who = open_replit_core::paths::percent_decode(&r["/members/".len()..])
                .map_err(ApiError::BadRequest)?;
            let v: serde_json::Value =
                call(env, &DirRequest::RemoveMember { project, who }).await?;
            if v["removed"] == json!(true) {
                Ok(Response::from_json(&json!({"removed": true}))?)
            } else {
                Err(ApiError::NotFound("no such member or invitation".into()))
            }
        }
        (m, r) => Err(ApiError::MethodNotAllowed(format!("{m} …{r}"))),
    }
}
