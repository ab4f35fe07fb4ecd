//! The published apps' host (`PUBLISH_URL`): a request to `{slug}.apps…` is answered here,
//! before the IDE's routes, origins and sign-in. Slug → project (the `Directory`), project →
//! live deployment (its room's `/site`), then core's `deploy::serve` decides: a static file
//! from blob storage (content-addressed, so cached in the isolate without expiry), or the
//! backend through the VM API's signed `/live` proxy (WebSockets included). A `members` app
//! needs the access cookie its host sets from a token minted by `…/deployments/open`.

use crate::azure::blob_client;
use crate::config::Config;
use crate::error::ApiError;
use crate::vm::Vm;
use open_replit_core::auth::directory::DirRequest;
use open_replit_core::auth::ROLE_HEADER;
use open_replit_core::deploy::record::{Site, Visibility, ACCESS_COOKIE, ACCESS_PATH, ACCESS_SECS};
use open_replit_core::deploy::serve::{self, Target};
use open_replit_core::manifest::Manifest;
use open_replit_core::store::project::Projects;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use worker::{Env, Headers, Method, Request, RequestInit, Response};

/// How long an isolate trusts what it learnt: a slug's project (slugs never move), and a
/// project's live deployment (a publish or rollback shows within this).
const SLUG_TTL_MS: f64 = 60_000.0;
const MISSING_SLUG_TTL_MS: f64 = 5_000.0;
const SITE_TTL_MS: f64 = 2_000.0;
/// Objects up to this size are kept in the isolate (content-addressed: never stale), up to
/// `OBJECT_CACHE_BYTES` in all; the oldest go first.
const CACHED_OBJECT_MAX: usize = 1 << 20;
const OBJECT_CACHE_BYTES: usize = 32 << 20;
/// Largest request body passed to a backend (the VM API's own limit).
const MAX_BODY: usize = 16 << 20;

#[derive(Default)]
struct Caches {
    slugs: HashMap<String, (f64, Option<String>)>,
    sites: HashMap<String, (f64, Rc<Site>)>,
    manifests: HashMap<String, Rc<Manifest>>,
    objects: HashMap<String, Rc<Vec<u8>>>,
    /// Insertion order of `objects`, for eviction.
    order: std::collections::VecDeque<String>,
    object_bytes: usize,
}

thread_local! {
    static CACHES: RefCell<Caches> = RefCell::new(Caches::default());
}

/// Answers a request to the app of `slug`.
pub async fn handle(req: Request, env: &Env, slug: &str, https: bool) -> worker::Result<Response> {
    let mut resp = match answer(req, env, slug, https).await {
        Ok(r) => r,
        Err(e) => page(
            e.status(),
            "Something went wrong",
            &format!("This app could not be served: {}", e.message()),
        ),
    };
    if https {
        let _ = resp
            .headers_mut()
            .set("strict-transport-security", "max-age=31536000");
    }
    Ok(resp)
}

async fn answer(req: Request, env: &Env, slug: &str, https: bool) -> Result<Response, ApiError> {
    let Some(project) = project_of(env, slug).await? else {
        return Ok(page(
            404,
            "Nothing here",
            "No app is published at this address.",
        ));
    };
    let url = req.url()?;
    if url.path() == ACCESS_PATH {
        return access(&req, env, &project, https);
    }
    let site = site_of(env, &project).await?;
    if site.deployment.is_none() {
        return Ok(page(
            404,
            "Not published",
            "This app is not published right now.",
        ));
    }
    if site.visibility == Visibility::Members && !has_access(&req, env, &project)? {
        return Ok(page(
            401,
            "This app is private",
            "Only the project's members may open it: open it from the project in the IDE \
             (Publish → Open).",
        ));
    }
    let method = req.method();
    let path = url.path().to_string();
    let Some(sha) = site.site.clone() else {
        // No static site: the backend answers everything.
        return if site.backend {
            backend(req, env, &project).await
        } else {
            Ok(page(404, "Not found", "This app has nothing to serve."))
        };
    };
    let manifest = manifest_of(env, &project, &sha).await?;
    let accepts_html = req
        .headers()
        .get("accept")?
        .is_some_and(|a| a.contains("text/html"));
    match serve::resolve(&manifest, method.as_ref(), &path, accepts_html) {
        Target::Backend if site.backend => backend(req, env, &project).await,
        Target::Backend => Ok(json_error(
            404,
            "this app has no backend: nothing answers /api",
        )),
        Target::Static {
            path,
            entry,
            fallback,
        } => {
            let headers = serve::static_headers(&path, entry, fallback);
            let etag = serve::etag(entry);
            let inm = req.headers().get("if-none-match")?;
            let (status, body) = if serve::not_modified(inm.as_deref(), &etag) {
                (304, None)
            } else if method == Method::Head {
                (200, None)
            } else {
                (200, Some(object(env, &project, &entry.sha256).await?))
            };
            let mut r = match body {
                Some(b) => Response::from_bytes(b.as_ref().clone())?,
                None => Response::empty()?,
            }
            .with_status(status);
            let h = r.headers_mut();
            for (k, v) in headers {
                h.set(k, &v)?;
            }
            if method == Method::Head {
                h.set("content-length", &entry.size.to_string())?;
            }
            Ok(r)
        }
        Target::NotFound => Ok(page(404, "Not found", "There is no page at this address.")),
        Target::Bad(m) => Ok(page(400, "Bad request", &m)),
    }
}

/// A small HTML page (no script) for the host's own answers.
fn page(status: u16, title: &str, text: &str) -> Response {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let html = format!(
        "<!doctype html><meta charset=utf-8><title>{t}</title>\
         <body style=\"font:16px system-ui;margin:15vh auto;max-width:32em;color:#222\">\
         <h1 style=\"font-size:1.4em\">{t}</h1><p>{x}</p>",
        t = esc(title),
        x = esc(text)
    );
    let mut r = Response::from_html(html)
        .unwrap_or_else(|_| Response::empty().expect("an empty response"))
        .with_status(status);
    let h = r.headers_mut();
    let _ = h.set(
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'",
    );
    let _ = h.set("x-content-type-options", "nosniff");
    let _ = h.set("cache-control", "no-store");
    r
}

fn json_error(status: u16, message: &str) -> Response {
    Response::from_json(&serde_json::json!({"error": {"code": "not_found", "message": message}}))
        .map(|r| r.with_status(status))
        .unwrap_or_else(|_| page(status, "Not found", message))
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// The project of `slug` (cached).
async fn project_of(env: &Env, slug: &str) -> Result<Option<String>, ApiError> {
    let now = now_ms();
    if let Some(hit) = CACHES.with(|c| {
        c.borrow().slugs.get(slug).and_then(|(at, p)| {
            let ttl = if p.is_some() {
                SLUG_TTL_MS
            } else {
                MISSING_SLUG_TTL_MS
            };
            (now - at < ttl).then(|| p.clone())
        })
    }) {
        return Ok(hit);
    }
    let p: Option<String> = crate::directory::call(
        env,
        &DirRequest::SlugProject {
            slug: slug.to_string(),
        },
    )
    .await?;
    CACHES.with(|c| {
        let mut c = c.borrow_mut();
        if c.slugs.len() > 10_000 {
            c.slugs.clear();
        }
        c.slugs.insert(slug.to_string(), (now, p.clone()));
    });
    Ok(p)
}

/// What the project's room says is live (cached for `SITE_TTL_MS`).
async fn site_of(env: &Env, project: &str) -> Result<Rc<Site>, ApiError> {
    let now = now_ms();
    if let Some(hit) = CACHES.with(|c| {
        c.borrow()
            .sites
            .get(project)
            .and_then(|(at, s)| (now - at < SITE_TTL_MS).then(|| s.clone()))
    }) {
        return Ok(hit);
    }
    let stub = env.durable_object("PROJECT_ROOM")?.get_by_name(project)?;
    let headers = Headers::new();
    headers.set(ROLE_HEADER, "viewer")?;
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let r = Request::new_with_init(&format!("https://room/projects/{project}/site"), &init)?;
    let mut resp = stub.fetch_with_request(r).await?;
    if resp.status_code() != 200 {
        return Err(ApiError::Upstream(format!(
            "the project's room answered {}: {}",
            resp.status_code(),
            resp.text().await.unwrap_or_default()
        )));
    }
    let site: Rc<Site> = Rc::new(resp.json().await?);
    CACHES.with(|c| {
        let mut c = c.borrow_mut();
        if c.sites.len() > 10_000 {
            c.sites.clear();
        }
        c.sites.insert(project.to_string(), (now, site.clone()));
    });
    Ok(site)
}

async fn manifest_of(env: &Env, project: &str, sha: &str) -> Result<Rc<Manifest>, ApiError> {
    if let Some(m) = CACHES.with(|c| c.borrow().manifests.get(sha).cloned()) {
        return Ok(m);
    }
    let bytes = object(env, project, sha).await?;
    let m: Rc<Manifest> = Rc::new(serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::Internal(format!(
            "the deployment's manifest {sha} does not parse: {e}"
        ))
    })?);
    CACHES.with(|c| {
        let mut c = c.borrow_mut();
        if c.manifests.len() > 256 {
            c.manifests.clear();
        }
        c.manifests.insert(sha.to_string(), m.clone());
    });
    Ok(m)
}

/// An object of the project (checked against its name), from the isolate's cache or storage.
async fn object(env: &Env, project: &str, sha: &str) -> Result<Rc<Vec<u8>>, ApiError> {
    if let Some(b) = CACHES.with(|c| c.borrow().objects.get(sha).cloned()) {
        return Ok(b);
    }
    let cfg = Config::from_env(env);
    let blob = blob_client(&cfg)?;
    let body = Rc::new(Projects::new(&blob).object(project, sha).await?);
    if body.len() <= CACHED_OBJECT_MAX {
        CACHES.with(|c| {
            let mut c = c.borrow_mut();
            while c.object_bytes + body.len() > OBJECT_CACHE_BYTES {
                let Some(old) = c.order.pop_front() else {
                    break;
                };
                if let Some(b) = c.objects.remove(&old) {
                    c.object_bytes -= b.len();
                }
            }
            if c.objects.insert(sha.to_string(), body.clone()).is_none() {
                c.object_bytes += body.len();
                c.order.push_back(sha.to_string());
            }
        });
    }
    Ok(body)
}

fn secret(env: &Env) -> Result<Vec<u8>, ApiError> {
    crate::config::vm_api(env)
        .1
        .map(String::into_bytes)
        .ok_or_else(|| ApiError::Upstream("VM_API_SECRET is not set".into()))
}

fn cookie_value(req: &Request, name: &str) -> Option<String> {
    let header = req.headers().get("cookie").ok()??;
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

fn has_access(req: &Request, env: &Env, project: &str) -> Result<bool, ApiError> {
    let Some(token) = cookie_value(req, ACCESS_COOKIE) else {
        return Ok(false);
    };
    let now = (js_sys::Date::now() / 1000.0) as i64;
    Ok(open_replit_core::vm_auth::verify_app_token(
        &secret(env)?,
        project,
        &token,
        now,
        ACCESS_SECS + 60,
    )
    .is_ok())
}

/// `GET /__open-replit/access?token=T&to=/path`: a valid token becomes the host's cookie.
fn access(req: &Request, env: &Env, project: &str, https: bool) -> Result<Response, ApiError> {
    let url = req.url()?;
    let q = |k: &str| {
        url.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.to_string())
    };
    let token = q("token").unwrap_or_default();
    let now = (js_sys::Date::now() / 1000.0) as i64;
    let secret = secret(env)?;
    if let Err(why) =
        open_replit_core::vm_auth::verify_app_token(&secret, project, &token, now, ACCESS_SECS + 60)
    {
        return Ok(page(
            401,
            "This link does not open the app",
            &format!("The access link is not valid ({why}). Open the app again from the IDE."),
        ));
    }
    // Only a path on this host: never an open redirect.
    let to = q("to")
        .filter(|t| t.starts_with('/') && !t.starts_with("//") && !t.contains('\\'))
        .unwrap_or_else(|| "/".into());
    let mut r = Response::empty()?.with_status(302);
    let h = r.headers_mut();
    h.set("location", &to)?;
    h.set("cache-control", "no-store")?;
    h.set(
        "set-cookie",
        &format!(
            "{ACCESS_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={ACCESS_SECS}{}",
            if https { "; Secure" } else { "" }
        ),
    )?;
    Ok(r)
}

/// Headers never passed to a backend: hop-by-hop ones, the host, the platform's own.
fn forwarded(name: &str) -> bool {
    !matches!(
        name,
        "host"
            | "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-authorization"
            | "proxy-connection"
            | "content-length"
    ) && !name.starts_with("x-or-")
        && !name.starts_with("cf-")
}

/// Sends the request to the live backend through the VM API.
async fn backend(mut req: Request, env: &Env, project: &str) -> Result<Response, ApiError> {
    let url = req.url()?;
    let mut path = url.path().to_string();
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    let headers = Headers::new();
    for (k, v) in req.headers().entries() {
        if !forwarded(&k) {
            continue;
        }
        if k == "cookie" {
            // The platform's access cookie stays on this side.
            let kept: Vec<&str> = v
                .split(';')
                .map(str::trim)
                .filter(|c| !c.starts_with(&format!("{ACCESS_COOKIE}=")))
                .collect();
            if !kept.is_empty() {
                headers.set("cookie", &kept.join("; "))?;
            }
            continue;
        }
        headers.set(&k, &v)?;
    }
    if let Some(host) = url.host_str() {
        headers.set("x-forwarded-host", host)?;
    }
    headers.set("x-forwarded-proto", url.scheme())?;
    // A WebSocket is passed through: the fetch below then answers 101 with the backend's socket,
    // which goes back to the browser as it is (the VM API's `/live` joins the two).
    let websocket = req
        .headers()
        .get("upgrade")?
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    if websocket {
        headers.set("upgrade", "websocket")?;
    }
    let method = req.method();
    let body = if matches!(method, Method::Get | Method::Head) {
        None
    } else {
        let bytes = req.bytes().await?;
        if bytes.len() > MAX_BODY {
            return Err(ApiError::TooLarge(format!(
                "the request body is {} bytes; an app's API takes at most {MAX_BODY}",
                bytes.len()
            )));
        }
        Some(bytes)
    };
    let vm = Vm::from_env(env)?;
    vm.live_proxy(project, method, &path, &headers, body).await
}
