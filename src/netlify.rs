//! Deploying a project's built frontend to Netlify with the person's token (issue 17): create
//! the site when there is none, create a file-digest deploy, upload only the files Netlify
//! reports as `required`, then wait for `ready`. The rules and wire types are core's
//! `deploy::netlify` (which names the documented shapes followed); this file only sends.
//!
//! Every request's method, path and status go to `log` (never a header or a body); the token
//! is sent only as `Authorization: Bearer …` and is scrubbed from every error message.
//! Netlify's `4xx` answers (a refused token, an unknown site, a refused deploy) become
//! `ApiError::BadRequest`, a `429` left after the retries `ApiError::RateLimited`, and the rest
//! (`5xx`, no answer, an unreadable reply, a deploy in `error`) `ApiError::Upstream`; each
//! message quotes Netlify's status and `message`/`error_message`.

use crate::error::ApiError;
use futures_util::future::{select, Either};
use open_replit_core::deploy::netlify::{
    self as rules, DeployReply, FileContent, PollVerdict, SiteCreate, SiteReply,
};
use serde::de::DeserializeOwned;
use std::time::Duration;
use worker::{Delay, Fetch, Headers, Method, Request, RequestInit};

/// Longest one request may take (an upload of a large asset included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What a deploy did: where it is live and how much was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetlifyOutcome {
    /// The Netlify site (created by this deploy when none was given): keep it for the next one.
    pub site_id: String,
    pub deploy_id: String,
    /// The site's URL (`ssl_url` of the ready deploy, else its `url`, else the deploy's own).
    pub url: String,
    /// Files in the deploy.
    pub total: usize,
    /// Files actually uploaded (Netlify already had the others).
    pub uploaded: usize,
}

/// One file of the site: its path relative to the static folder (`assets/app.js`), its SHA1,
/// and its bytes when they were read already (otherwise `read` fetches them, only if Netlify
/// asks for the file).
pub struct SiteFile {
    pub path: String,
    pub sha1: String,
    pub bytes: Option<Vec<u8>>,
}

/// Fetches the bytes of file `i` of the list given to [`deploy`].
pub type ReadFile<'a> =
    dyn Fn(usize) -> futures_util::future::LocalBoxFuture<'a, Result<Vec<u8>, ApiError>> + 'a;

/// Deploys `files` (see [`SiteFile`]) to Netlify at `api_base` (`open_replit_core::deploy::netlify::API_BASE`, or a fake
/// in tests). `site`: the site id of an earlier deploy; `None` creates a site named after
/// `site_name` (suffixed when the name is taken), and so does a saved site Netlify answers
/// `404` for (deleted, or not this token's): `NetlifyOutcome::site_id` is the one to keep.
/// Waits until the deploy is `ready`, at most `MAX_POLL_WAIT_MS` after the last upload.
pub async fn deploy(
    api_base: &str,
    token: &str,
    site: Option<&str>,
    site_name: &str,
    files: Vec<SiteFile>,
    read: &ReadFile<'_>,
    log: &dyn Fn(String),
) -> Result<NetlifyOutcome, ApiError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(ApiError::BadRequest(
            "a Netlify personal access token is needed to deploy to Netlify".into(),
        ));
    }
    let plan = rules::digest_plan(
        files
            .iter()
            .map(|f| (f.path.as_str(), FileContent::Sha1(f.sha1.as_str()))),
    )
    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let total = plan.request.files.len();
    let client = Client {
        base: api_base.trim_end_matches('/'),
        token,
        log,
    };

    let body = serde_json::to_vec(&plan.request)
        .map_err(|e| ApiError::Internal(format!("the deploy's digest: {e}")))?;
    let saved = site.map(str::trim).filter(|id| !id.is_empty());
    let (mut site_id, mut site_url) = match saved {
        Some(id) => (id.to_string(), None),
        None => client.create_site(site_name).await?,
    };
    let mut path = rules::deploys_path(&site_id);
    let mut answer = client.send(Method::Post, &path, Body::Json(&body)).await?;
    if answer.status == 404 && saved.is_some() {
        // The saved site is gone (deleted on Netlify, or not visible to this token): the
        // deploy goes to a new site, whose id the outcome carries.
        log(format!(
            "Netlify has no site {site_id} for this token; creating a new site"
        ));
        (site_id, site_url) = client.create_site(site_name).await?;
        path = rules::deploys_path(&site_id);
        answer = client.send(Method::Post, &path, Body::Json(&body)).await?;
    }
    let created: DeployReply = client.parse(&Method::Post, &path, answer)?;
    let uploads = rules::upload_plan(&plan, &created.required)
        .map_err(|e| ApiError::Upstream(format!("Netlify's deploy {}: {e}", created.id)))?;
    log(format!(
        "Netlify deploy {}: {} of {total} files to upload",
        created.id,
        uploads.len()
    ));

    for u in &uploads {
        let path = rules::upload_path(&created.id, &u.key);
        let fetched;
        let bytes = match &files[u.index].bytes {
            Some(b) => b.as_slice(),
            None => {
                fetched = read(u.index).await?;
                fetched.as_slice()
            }
        };
        let answer = client.send(Method::Put, &path, Body::Bytes(bytes)).await?;
        client.check(&Method::Put, &path, &answer)?;
    }

    let ready = client.wait_ready(created).await?;
    let url = [
        ready.ssl_url.clone(),
        ready.url.clone(),
        site_url,
        ready.deploy_ssl_url.clone(),
    ]
    .into_iter()
    .flatten()
    .find(|u| !u.is_empty())
    .unwrap_or_default();
    log(format!("Netlify deploy {} is live at {url}", ready.id));
    Ok(NetlifyOutcome {
        site_id,
        deploy_id: ready.id,
        url,
        total,
        uploaded: uploads.len(),
    })
}

enum Body<'b> {
    None,
    Json(&'b [u8]),
    Bytes(&'b [u8]),
}

struct Answer {
    status: u16,
    body: Vec<u8>,
}

struct Client<'a> {
    base: &'a str,
    token: &'a str,
    log: &'a dyn Fn(String),
}

impl Client<'_> {
    /// The token never appears in what we show, whatever a runtime error or Netlify echoes.
    fn scrub(&self, text: String) -> String {
        if text.contains(self.token) {
            text.replace(self.token, "[token]")
        } else {
            text
        }
    }

    /// One request, retried after a `429` as core's `retry_wait_ms` says. `Err` only when
    /// Netlify could not be reached in time; any status is returned.
    async fn send(&self, method: Method, path: &str, body: Body<'_>) -> Result<Answer, ApiError> {
        let mut attempt = 0;
        loop {
            let headers = Headers::new();
            let init_err = |e: worker::Error| ApiError::Internal(self.scrub(e.to_string()));
            headers
                .set("authorization", &format!("Bearer {}", self.token))
                .map_err(init_err)?;
            headers
                .set("user-agent", rules::USER_AGENT)
                .map_err(init_err)?;
            headers
                .set("accept", "application/json")
                .map_err(init_err)?;
            let mut init = RequestInit::new();
            match body {
                Body::None => {}
                Body::Json(b) => {
                    headers
                        .set("content-type", "application/json")
                        .map_err(init_err)?;
                    init.with_body(Some(js_sys::Uint8Array::from(b).into()));
                }
                Body::Bytes(b) => {
                    headers
                        .set("content-type", "application/octet-stream")
                        .map_err(init_err)?;
                    init.with_body(Some(js_sys::Uint8Array::from(b).into()));
                }
            }
            init.with_method(method.clone()).with_headers(headers);
            let req =
                Request::new_with_init(&format!("{}{path}", self.base), &init).map_err(init_err)?;
            let fetch = async move {
                let mut r = Fetch::Request(req).send().await?;
                let status = r.status_code();
                let h = r.headers();
                let retry_after = h.get("retry-after").ok().flatten();
                let reset = h.get("x-ratelimit-reset").ok().flatten();
                let body = r.bytes().await?;
                Ok::<_, worker::Error>((status, retry_after, reset, body))
            };
            let (status, retry_after, reset, bytes) =
                match select(Box::pin(fetch), Box::pin(Delay::from(REQUEST_TIMEOUT))).await {
                    Either::Left((Ok(r), _)) => r,
                    Either::Left((Err(e), _)) => {
                        (self.log)(format!("{method} {path} → no answer"));
                        return Err(ApiError::Upstream(self.scrub(format!(
                            "Netlify at {} could not be reached ({method} {path}): {e}",
                            self.base
                        ))));
                    }
                    Either::Right(_) => {
                        (self.log)(format!("{method} {path} → no answer"));
                        return Err(ApiError::Upstream(format!(
                            "Netlify did not answer {method} {path} within {} s",
                            REQUEST_TIMEOUT.as_secs()
                        )));
                    }
                };
            (self.log)(rules::log_line(method.as_ref(), path, status));
            let now_s = (js_sys::Date::now() / 1000.0) as u64;
            match rules::retry_wait_ms(
                status,
                attempt,
                retry_after.as_deref(),
                reset.as_deref(),
                now_s,
            ) {
                Some(ms) => {
                    (self.log)(format!(
                        "Netlify rate limit: retrying in {} s",
                        ms.div_ceil(1000)
                    ));
                    Delay::from(Duration::from_millis(ms)).await;
                    attempt += 1;
                }
                None => {
                    return Ok(Answer {
                        status,
                        body: bytes,
                    })
                }
            }
        }
    }

    /// `Ok` for a 2xx; otherwise the error that tells the person what Netlify said.
    fn check(&self, method: &Method, path: &str, a: &Answer) -> Result<(), ApiError> {
        if (200..300).contains(&a.status) {
            return Ok(());
        }
        let text = self.scrub(format!(
            "{} ({method} {path})",
            rules::error_text(a.status, &a.body)
        ));
        Err(match a.status {
            401 | 403 => ApiError::BadRequest(format!(
                "Netlify refused the token (check it and its access): {text}"
            )),
            429 => ApiError::RateLimited(format!(
                "Netlify's rate limit held after {} retries: {text}",
                rules::MAX_RATE_LIMIT_RETRIES
            )),
            400..=499 => ApiError::BadRequest(text),
            _ => ApiError::Upstream(text),
        })
    }

    fn parse<T: DeserializeOwned>(
        &self,
        method: &Method,
        path: &str,
        a: Answer,
    ) -> Result<T, ApiError> {
        self.check(method, path, &a)?;
        serde_json::from_slice(&a.body).map_err(|e| {
            ApiError::Upstream(format!(
                "Netlify's reply to {method} {path} could not be read: {e}"
            ))
        })
    }

    /// `POST /api/v1/sites` with `site_name`, then suffixed names while Netlify answers `422`:
    /// the new site's id and URL.
    async fn create_site(&self, site_name: &str) -> Result<(String, Option<String>), ApiError> {
        let s = self.post_site(site_name).await?;
        (self.log)(format!("Netlify site {} created ({})", s.name, s.id));
        let url = [s.ssl_url, s.url].into_iter().find(|u| !u.is_empty());
        Ok((s.id, url))
    }

    async fn post_site(&self, site_name: &str) -> Result<SiteReply, ApiError> {
        let path = rules::sites_path();
        let mut attempt = 0;
        loop {
            let suffix = (attempt > 0).then(|| {
                crate::azure::random_bytes::<3>()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            });
            let name = rules::site_name(site_name, suffix.as_deref());
            let body = serde_json::to_vec(&SiteCreate { name: name.clone() })
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            let answer = self.send(Method::Post, &path, Body::Json(&body)).await?;
            if answer.status == 422 && attempt < rules::MAX_NAME_ATTEMPTS {
                (self.log)(format!(
                    "Netlify refused the site name {name} (422, usually taken); trying another"
                ));
                attempt += 1;
                continue;
            }
            return self.parse(&Method::Post, &path, answer);
        }
    }

    /// Polls `GET /api/v1/deploys/{id}` until `ready`, an `error`, or `MAX_POLL_WAIT_MS`.
    async fn wait_ready(&self, mut deploy: DeployReply) -> Result<DeployReply, ApiError> {
        let path = rules::deploy_path(&deploy.id);
        let started = js_sys::Date::now();
        let mut polled = false;
        loop {
            // The create reply's state counts only when nothing was uploaded after it.
            if polled || deploy.required.is_empty() {
                match rules::poll_verdict(&deploy.state, deploy.error_message.as_deref()) {
                    PollVerdict::Ready => return Ok(deploy),
                    PollVerdict::Failed(m) => {
                        return Err(ApiError::Upstream(self.scrub(format!(
                            "Netlify could not publish deploy {}: {m}",
                            deploy.id
                        ))))
                    }
                    PollVerdict::Wait => {}
                }
            }
            if polled {
                if js_sys::Date::now() - started > rules::MAX_POLL_WAIT_MS as f64 {
                    return Err(ApiError::Upstream(format!(
                        "Netlify's deploy {} is still `{}` after {} s; it may yet go live \
                         (see the site's deploys on Netlify)",
                        deploy.id,
                        deploy.state,
                        rules::MAX_POLL_WAIT_MS / 1000
                    )));
                }
                Delay::from(Duration::from_millis(rules::POLL_INTERVAL_MS)).await;
            }
            let answer = self.send(Method::Get, &path, Body::None).await?;
            deploy = self.parse(&Method::Get, &path, answer)?;
            polled = true;
        }
    }
}
