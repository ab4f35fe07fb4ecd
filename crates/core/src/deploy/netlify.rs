//! Deploying a built frontend to Netlify with the person's token: the wire types and the pure
//! rules of Netlify's "file digest" deploy (see `deploy/mod.rs`). No I/O: the Worker's
//! `src/netlify.rs` sends the requests; the e2e fake (`tests/e2e/src/netlify.rs`) checks them.
//!
//! The documented shapes followed (Netlify's "Get started with the Netlify API", section
//! "Deploy with the API", file digest method, and the OpenAPI document `swagger.yml` of
//! `netlify/open-api`, release 2.55.0, read for this module):
//!
//! - Every request carries `Authorization: Bearer <token>` (`securityDefinitions.netlifyAuth`,
//!   OAuth 2 or a personal access token) and a `User-Agent` naming the app (the guide's curl
//!   example). Base URL `https://api.netlify.com`, paths under `/api/v1/`.
//! - `POST /api/v1/sites` (`createSite`), body `siteSetup`: we send only `{"name": …}` →
//!   `201` with a `site` (`id`, `name`, `url`, `ssl_url`, `admin_url`, …). A name already in
//!   use is answered `422` (the OpenAPI document lists only `default: error`; clients such as
//!   bolt.diy see the 422), so any `422` there is retried with a suffixed name.
//! - `POST /api/v1/sites/{site_id}/deploys` (`createSiteDeploy`), body `deployFiles`:
//!   `{"files": {"/index.html": "<sha1 hex>", …}, "draft": false, "async": false}` → `200`
//!   with a `deploy` (`id`, `site_id`, `state`, `required`: the SHA1s Netlify does not have yet,
//!   `ssl_url`, `deploy_ssl_url`, `url`, `error_message`, …). Every file of the site is listed,
//!   changed or not; Netlify answers with only the digests it lacks.
//! - `PUT /api/v1/deploys/{deploy_id}/files/{path}` (`uploadDeployFile`, consumes
//!   `application/octet-stream`), the file's raw bytes → `200` with a `file`. The path is the
//!   digest map's key without its leading slash, URL-encoded (each segment percent-encoded,
//!   the `/` between segments kept). Several paths may share one SHA1; `required` lists the
//!   SHA1 once and one upload of any of those paths is enough.
//! - `GET /api/v1/deploys/{deploy_id}` (`getDeploy`) → a `deploy`; its `state` is one of the
//!   enum `listSiteDeploys` documents (`new`, `pending_review`, `accepted`, `rejected`,
//!   `enqueued`, `building`, `uploading`, `uploaded`, `preparing`, `prepared`, `processing`,
//!   `processed`, `ready`, `error`, `retrying`). `ready` is live on every URL (the Go client's
//!   `WaitUntilDeployLive`); `error` carries `error_message`.
//! - Errors are the `error` definition: `{"code": <int>, "message": "…"}`.
//! - Rate limits: `429` with `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
//!   `X-RateLimit-Reset` (a Unix time); `Retry-After` (seconds) is honoured too when present.
//!
//! bolt.diy uploads every file on every deploy; here only the `required` digests are uploaded,
//! one path per digest ([`upload_plan`]).

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use std::collections::{BTreeMap, BTreeSet};

/// Netlify's API origin; `src/netlify.rs` takes another one in tests (the fake).
pub const API_BASE: &str = "https://api.netlify.com";
/// Sent as `User-Agent` on every request, as Netlify's guide asks of API clients.
pub const USER_AGENT: &str = "open-replit";
/// How often a `429` is retried before the deploy gives up.
pub const MAX_RATE_LIMIT_RETRIES: u32 = 4;
/// Longest single wait after a `429`, whatever Netlify's headers ask for.
pub const MAX_RETRY_WAIT_MS: u64 = 30_000;
/// Between two `GET /deploys/{id}` while a deploy is processing.
pub const POLL_INTERVAL_MS: u64 = 1_000;
/// How long a deploy may take from its last upload to `ready` before we stop waiting.
pub const MAX_POLL_WAIT_MS: u64 = 120_000;
/// How many suffixed names are tried after the first one is taken (`422`).
pub const MAX_NAME_ATTEMPTS: u32 = 4;
/// Netlify site names are subdomains: at most 63 characters.
pub const MAX_SITE_NAME_CHARS: usize = 63;

/// What went wrong before or between requests (Netlify's own answers are reported by the
/// Worker with their status and message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetlifyError {
    #[error("file path {0:?} is not a plain relative path (empty, `.`/`..` or empty segments)")]
    BadPath(String),
    #[error("file path {0:?} is listed twice")]
    DuplicatePath(String),
    #[error("{0:?} is not a SHA1 digest (40 lowercase hexadecimal characters)")]
    BadDigest(String),
    #[error("Netlify asked for a file with SHA1 {0} that is not part of this deploy")]
    UnknownRequired(String),
    #[error("nothing to deploy: the static folder has no files")]
    NoFiles,
}

/// `POST /api/v1/sites` body: only the name (`siteSetup` has many optional fields; we set none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteCreate {
    pub name: String,
}

/// The parts of Netlify's `site` we read (other fields are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteReply {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub ssl_url: String,
    #[serde(default)]
    pub admin_url: String,
}

/// `POST /api/v1/sites/{site_id}/deploys` body (`deployFiles`, digest form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployCreate {
    /// `/path` → SHA1 hex of the file's bytes, every file of the site.
    pub files: BTreeMap<String, String>,
    /// `false`: a production deploy that goes live when ready.
    #[serde(default)]
    pub draft: bool,
    /// `false`: Netlify answers with `required` at once (an async deploy answers before it
    /// knows, and has to be polled until `prepared` first).
    #[serde(default, rename = "async")]
    pub is_async: bool,
}

/// The parts of Netlify's `deploy` we read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployReply {
    pub id: String,
    #[serde(default)]
    pub site_id: String,
    #[serde(default)]
    pub state: String,
    /// SHA1s Netlify still needs (null or absent: none).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub required: Vec<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub ssl_url: Option<String>,
    #[serde(default)]
    pub deploy_ssl_url: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// Netlify's `error` definition (`code` is sometimes absent; `message` is documented as set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub message: Option<String>,
}

/// Lowercase hex SHA1 of `bytes`, the digest Netlify keys files by.
pub fn sha1_hex(bytes: &[u8]) -> String {
    let d = Sha1::digest(bytes);
    let mut s = String::with_capacity(40);
    for b in d {
        s.push(char::from_digit((b >> 4) as u32, 16).unwrap_or('0'));
        s.push(char::from_digit((b & 15) as u32, 16).unwrap_or('0'));
    }
    s
}

/// Whether `s` is a SHA1 as Netlify writes them: 40 lowercase hex characters.
pub fn is_sha1_hex(s: &str) -> bool {
    s.len() == 40
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A path relative to the static folder (`assets/app.js`, `index.html`, or already `/x`) as
/// a digest key: `/assets/app.js`. Backslashes, empty, `.` and `..` segments are refused, and
/// so are control characters.
pub fn normalize_path(rel: &str) -> Result<String, NetlifyError> {
    let bad = || NetlifyError::BadPath(rel.to_string());
    let trimmed = rel.strip_prefix('/').unwrap_or(rel);
    if trimmed.is_empty() || rel.contains('\\') || rel.chars().any(char::is_control) {
        return Err(bad());
    }
    let mut out = String::with_capacity(trimmed.len() + 1);
    for seg in trimmed.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return Err(bad());
        }
        out.push('/');
        out.push_str(seg);
    }
    Ok(out)
}

/// Percent-encodes one path segment: RFC 3986 unreserved characters stay, every other byte
/// of its UTF-8 becomes `%XX`.
pub fn encode_segment(seg: &str) -> String {
    let mut out = String::with_capacity(seg.len());
    for b in seg.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `/api/v1/sites`
pub fn sites_path() -> String {
    "/api/v1/sites".to_string()
}

/// `/api/v1/sites/{site_id}/deploys`
pub fn deploys_path(site_id: &str) -> String {
    format!("/api/v1/sites/{}/deploys", encode_segment(site_id))
}

/// `/api/v1/deploys/{deploy_id}`
pub fn deploy_path(deploy_id: &str) -> String {
    format!("/api/v1/deploys/{}", encode_segment(deploy_id))
}

/// `/api/v1/deploys/{deploy_id}/files/{path}` for a digest key (`/a b/c.js` →
/// `…/files/a%20b/c.js`): the leading slash is not doubled, each segment is encoded.
pub fn upload_path(deploy_id: &str, key: &str) -> String {
    let rel = key.strip_prefix('/').unwrap_or(key);
    let encoded: Vec<String> = rel.split('/').map(encode_segment).collect();
    format!("{}/files/{}", deploy_path(deploy_id), encoded.join("/"))
}

/// A file of the deploy: its bytes, or a SHA1 already known (a stored manifest's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileContent<'a> {
    Bytes(&'a [u8]),
    Sha1(&'a str),
}

/// The digest of a whole deploy: the request body, and which input each key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestPlan {
    pub request: DeployCreate,
    /// digest key (`/x/y.js`) → index of the file in the input.
    pub index: BTreeMap<String, usize>,
}

/// Builds the `POST …/deploys` body from the site's files (every one of them, as Netlify
/// expects). Paths are normalised; a duplicate (after normalisation), a bad path or a
/// malformed SHA1 is an error, and so is an empty site.
pub fn digest_plan<'a>(
    files: impl IntoIterator<Item = (&'a str, FileContent<'a>)>,
) -> Result<DigestPlan, NetlifyError> {
    let mut map = BTreeMap::new();
    let mut index = BTreeMap::new();
    for (i, (path, content)) in files.into_iter().enumerate() {
        let key = normalize_path(path)?;
        let sha = match content {
            FileContent::Bytes(b) => sha1_hex(b),
            FileContent::Sha1(s) if is_sha1_hex(s) => s.to_string(),
            FileContent::Sha1(s) => return Err(NetlifyError::BadDigest(s.to_string())),
        };
        if map.insert(key.clone(), sha).is_some() {
            return Err(NetlifyError::DuplicatePath(key));
        }
        index.insert(key, i);
    }
    if map.is_empty() {
        return Err(NetlifyError::NoFiles);
    }
    Ok(DigestPlan {
        request: DeployCreate {
            files: map,
            draft: false,
            is_async: false,
        },
        index,
    })
}

/// One file to `PUT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// Digest key, `/x/y.js`.
    pub key: String,
    pub sha1: String,
    /// Index of the file in the input given to [`digest_plan`].
    pub index: usize,
}

/// What to upload for Netlify's `required` list: one path per required SHA1 (the first in
/// path order when several share it), each SHA1 once even if Netlify repeats it. A SHA1
/// that no file of the plan has is an error (uploading something else would not satisfy it).
pub fn upload_plan(plan: &DigestPlan, required: &[String]) -> Result<Vec<Upload>, NetlifyError> {
    let mut by_sha: BTreeMap<&str, &str> = BTreeMap::new();
    for (key, sha) in &plan.request.files {
        by_sha.entry(sha.as_str()).or_insert(key.as_str());
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for sha in required {
        if !seen.insert(sha.as_str()) {
            continue;
        }
        let key = by_sha
            .get(sha.as_str())
            .ok_or_else(|| NetlifyError::UnknownRequired(sha.clone()))?;
        out.push(Upload {
            key: key.to_string(),
            sha1: sha.clone(),
            index: plan.index[*key],
        });
    }
    Ok(out)
}

/// What a deploy's `state` means for the waiting client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollVerdict {
    /// Live on its URLs.
    Ready,
    /// Netlify gave up on it; the message is Netlify's `error_message` (or says none came).
    Failed(String),
    /// Still on its way: ask again after [`POLL_INTERVAL_MS`].
    Wait,
}

/// The verdict for a deploy's `state`. `ready` is done; `error` and `rejected` failed; every
/// other documented state is on its way, and so is a state this list does not know (Netlify
/// may add some): [`MAX_POLL_WAIT_MS`] bounds the wait either way.
pub fn poll_verdict(state: &str, error_message: Option<&str>) -> PollVerdict {
    match state {
        "ready" => PollVerdict::Ready,
        "error" | "rejected" => PollVerdict::Failed(match error_message {
            Some(m) if !m.trim().is_empty() => m.trim().to_string(),
            _ => format!("the deploy ended in state `{state}` without a message"),
        }),
        _ => PollVerdict::Wait,
    }
}

/// How long to wait before retrying after an answer with `status`, or `None` when it is not
/// retried (not a `429`, or [`MAX_RATE_LIMIT_RETRIES`] already spent). `attempt` counts
/// retries already made (0 for the first). `Retry-After` (seconds) wins, then
/// `X-RateLimit-Reset` (Unix seconds) against `now_unix_s`, then 1 s, 2 s, 4 s…; never more
/// than [`MAX_RETRY_WAIT_MS`], never less than 1 s.
pub fn retry_wait_ms(
    status: u16,
    attempt: u32,
    retry_after: Option<&str>,
    rate_limit_reset: Option<&str>,
    now_unix_s: u64,
) -> Option<u64> {
    if status != 429 || attempt >= MAX_RATE_LIMIT_RETRIES {
        return None;
    }
    let from_retry_after = retry_after
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| s.saturating_mul(1000));
    let from_reset = rate_limit_reset
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|reset| reset.saturating_sub(now_unix_s).saturating_mul(1000));
    let backoff = 1000u64 << attempt.min(5);
    let ms = from_retry_after.or(from_reset).unwrap_or(backoff);
    Some(ms.clamp(1000, MAX_RETRY_WAIT_MS))
}

/// The log line for one request: method, path (never a query, header or body) and status,
/// e.g. `POST /api/v1/sites/abc/deploys → 200`.
pub fn log_line(method: &str, path: &str, status: u16) -> String {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    format!("{method} {path} → {status}")
}

/// What Netlify said, for the person: `Netlify answered 422: <message>`. The message is
/// Netlify's `message` or `error_message`, else the start of the body; cut at 300 chars.
pub fn error_text(status: u16, body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| {
            ["message", "error_message", "error"]
                .iter()
                .find_map(|k| v.get(*k).and_then(|m| m.as_str()))
                .map(str::to_string)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    let mut message: String = message.chars().take(300).collect();
    if message.is_empty() {
        message = "no message".to_string();
    }
    format!("Netlify answered {status}: {message}")
}

/// A Netlify site name from the project's name: lowercase letters, digits and single
/// hyphens, at most [`MAX_SITE_NAME_CHARS`] with room for `-{suffix}`. With a suffix (after
/// a `422`, the name taken), `{base}-{suffix}`. An empty result becomes `site`.
pub fn site_name(base: &str, suffix: Option<&str>) -> String {
    let mut name = String::new();
    for c in base.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            name.push(c);
        } else if !name.is_empty() && !name.ends_with('-') {
            name.push('-');
        }
    }
    let suffix: String = suffix
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .flat_map(char::to_lowercase)
        .take(16)
        .collect();
    let room = if suffix.is_empty() {
        MAX_SITE_NAME_CHARS
    } else {
        MAX_SITE_NAME_CHARS - suffix.len() - 1
    };
    name.truncate(room);
    while name.ends_with('-') {
        name.pop();
    }
    if name.is_empty() {
        name.push_str("site");
    }
    if !suffix.is_empty() {
        name.push('-');
        name.push_str(&suffix);
    }
    name
}

/// Whether `name` is a valid Netlify site name (what [`site_name`] produces).
pub fn is_site_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SITE_NAME_CHARS
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sha1_matches_known_vectors() {
        assert_eq!(sha1_hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert!(is_sha1_hex(&sha1_hex(b"hello")));
        assert!(!is_sha1_hex("A9993E364706816ABA3E25717850C26C9CD0D89D"));
        assert!(!is_sha1_hex("a9993e364706816aba3e25717850c26c9cd0d89"));
        assert!(!is_sha1_hex("g9993e364706816aba3e25717850c26c9cd0d89d"));
    }

    #[test]
    fn paths_are_normalised_and_bad_ones_refused() {
        assert_eq!(normalize_path("index.html").unwrap(), "/index.html");
        assert_eq!(
            normalize_path("assets/app-1f2e.js").unwrap(),
            "/assets/app-1f2e.js"
        );
        assert_eq!(normalize_path("/already.css").unwrap(), "/already.css");
        assert_eq!(normalize_path("a b/ü.txt").unwrap(), "/a b/ü.txt");
        for bad in [
            "", "/", "a//b", "a/", "../x", "a/../b", "./a", "a/.", "a\\b", "a\nb", "//a",
        ] {
            assert_eq!(
                normalize_path(bad),
                Err(NetlifyError::BadPath(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn upload_urls_encode_each_segment_once() {
        assert_eq!(
            upload_path("d1", "/index.html"),
            "/api/v1/deploys/d1/files/index.html"
        );
        assert_eq!(
            upload_path("d1", "/assets/a b+c#d?.js"),
            "/api/v1/deploys/d1/files/assets/a%20b%2Bc%23d%3F.js"
        );
        assert_eq!(
            upload_path("d1", "/ü/100%.txt"),
            "/api/v1/deploys/d1/files/%C3%BC/100%25.txt"
        );
        assert_eq!(
            upload_path("d1", "/x~_-.y"),
            "/api/v1/deploys/d1/files/x~_-.y"
        );
        assert_eq!(sites_path(), "/api/v1/sites");
        assert_eq!(deploys_path("s/1"), "/api/v1/sites/s%2F1/deploys");
        assert_eq!(deploy_path("abc"), "/api/v1/deploys/abc");
    }

    fn plan(files: &[(&str, &[u8])]) -> DigestPlan {
        digest_plan(files.iter().map(|(p, b)| (*p, FileContent::Bytes(b)))).unwrap()
    }

    #[test]
    fn digest_request_is_the_documented_shape() {
        let p = plan(&[("index.html", b"<h1>hi</h1>"), ("assets/a.js", b"x")]);
        let body = serde_json::to_value(&p.request).unwrap();
        assert_eq!(
            body,
            json!({
                "files": {
                    "/assets/a.js": sha1_hex(b"x"),
                    "/index.html": sha1_hex(b"<h1>hi</h1>"),
                },
                "draft": false,
                "async": false,
            })
        );
        assert_eq!(p.index["/index.html"], 0);
        assert_eq!(p.index["/assets/a.js"], 1);
        let back: DeployCreate = serde_json::from_value(body).unwrap();
        assert_eq!(back, p.request);
        assert!(serde_json::from_value::<DeployCreate>(json!({"files": {}, "zip": "x"})).is_err());
    }

    #[test]
    fn digest_plan_refuses_duplicates_bad_digests_and_nothing() {
        let a: &[u8] = b"a";
        assert_eq!(
            digest_plan([
                ("x.js", FileContent::Bytes(a)),
                ("/x.js", FileContent::Bytes(a))
            ]),
            Err(NetlifyError::DuplicatePath("/x.js".into()))
        );
        assert_eq!(
            digest_plan([("x.js", FileContent::Sha1("ABC"))]),
            Err(NetlifyError::BadDigest("ABC".into()))
        );
        assert_eq!(
            digest_plan([("../x.js", FileContent::Bytes(a))]),
            Err(NetlifyError::BadPath("../x.js".into()))
        );
        assert_eq!(digest_plan([]), Err(NetlifyError::NoFiles));
        let known = sha1_hex(b"known");
        let p = digest_plan([("k.txt", FileContent::Sha1(&known))]).unwrap();
        assert_eq!(p.request.files["/k.txt"], known);
    }

    #[test]
    fn only_required_digests_are_uploaded_once_each() {
        let p = plan(&[
            ("index.html", b"page"),
            ("b/copy.txt", b"same"),
            ("a/copy.txt", b"same"),
            ("c.css", b"style"),
        ]);
        let same = sha1_hex(b"same");
        let page = sha1_hex(b"page");
        let ups = upload_plan(&p, &[same.clone(), page.clone(), same.clone()]).unwrap();
        assert_eq!(
            ups,
            vec![
                Upload {
                    key: "/a/copy.txt".into(),
                    sha1: same,
                    index: 2
                },
                Upload {
                    key: "/index.html".into(),
                    sha1: page,
                    index: 0
                },
            ]
        );
        assert_eq!(upload_plan(&p, &[]).unwrap(), vec![]);
        let stranger = sha1_hex(b"not here");
        assert_eq!(
            upload_plan(&p, std::slice::from_ref(&stranger)),
            Err(NetlifyError::UnknownRequired(stranger))
        );
    }

    #[test]
    fn replies_parse_with_extra_and_null_fields() {
        let site: SiteReply = serde_json::from_value(json!({
            "id": "s1", "name": "todo", "url": "http://todo.netlify.app",
            "ssl_url": "https://todo.netlify.app", "admin_url": "https://app.netlify.com/sites/todo",
            "state": "current", "capabilities": {}
        }))
        .unwrap();
        assert_eq!(site.id, "s1");
        assert_eq!(site.ssl_url, "https://todo.netlify.app");
        let d: DeployReply = serde_json::from_value(json!({
            "id": "d1", "site_id": "s1", "state": "uploading", "required": ["aa"],
            "ssl_url": "https://todo.netlify.app", "deploy_ssl_url": "https://d1--todo.netlify.app",
            "error_message": null, "required_functions": null
        }))
        .unwrap();
        assert_eq!(d.required, vec!["aa".to_string()]);
        assert_eq!(d.error_message, None);
        let d: DeployReply =
            serde_json::from_value(json!({"id": "d2", "required": null, "state": "ready"}))
                .unwrap();
        assert!(d.required.is_empty());
        let e: ErrorReply =
            serde_json::from_value(json!({"code": 401, "message": "Access Denied"})).unwrap();
        assert_eq!(e.message.as_deref(), Some("Access Denied"));
    }

    #[test]
    fn poll_verdicts() {
        assert_eq!(poll_verdict("ready", None), PollVerdict::Ready);
        for s in [
            "new",
            "uploading",
            "uploaded",
            "prepared",
            "processing",
            "preparing",
            "processed",
            "enqueued",
            "building",
            "retrying",
            "something-new",
        ] {
            assert_eq!(poll_verdict(s, None), PollVerdict::Wait, "{s}");
        }
        assert_eq!(
            poll_verdict(
                "error",
                Some(" Build script returned non-zero exit code \n")
            ),
            PollVerdict::Failed("Build script returned non-zero exit code".into())
        );
        assert_eq!(
            poll_verdict("error", Some("")),
            PollVerdict::Failed("the deploy ended in state `error` without a message".into())
        );
        assert!(matches!(
            poll_verdict("rejected", None),
            PollVerdict::Failed(_)
        ));
    }

    #[test]
    fn rate_limit_waits() {
        assert_eq!(retry_wait_ms(200, 0, Some("5"), None, 0), None);
        assert_eq!(retry_wait_ms(500, 0, None, None, 0), None);
        assert_eq!(retry_wait_ms(429, 0, Some("1"), None, 0), Some(1000));
        assert_eq!(
            retry_wait_ms(429, 0, Some(" 7 "), Some("999"), 0),
            Some(7000)
        );
        assert_eq!(retry_wait_ms(429, 0, None, Some("1005"), 1000), Some(5000));
        // A reset already past, or now: at least a second.
        assert_eq!(retry_wait_ms(429, 0, None, Some("900"), 1000), Some(1000));
        assert_eq!(retry_wait_ms(429, 0, Some("0"), None, 0), Some(1000));
        // Capped.
        assert_eq!(
            retry_wait_ms(429, 0, Some("3600"), None, 0),
            Some(MAX_RETRY_WAIT_MS)
        );
        // No usable header: 1 s, 2 s, 4 s, 8 s, then no more tries.
        assert_eq!(retry_wait_ms(429, 0, Some("soon"), None, 0), Some(1000));
        assert_eq!(retry_wait_ms(429, 1, None, None, 0), Some(2000));
        assert_eq!(retry_wait_ms(429, 2, None, None, 0), Some(4000));
        assert_eq!(retry_wait_ms(429, 3, None, None, 0), Some(8000));
        assert_eq!(
            retry_wait_ms(429, MAX_RATE_LIMIT_RETRIES, Some("1"), None, 0),
            None
        );
    }

    #[test]
    fn log_lines_have_no_query_headers_or_bodies() {
        assert_eq!(
            log_line("POST", "/api/v1/sites/abc/deploys", 200),
            "POST /api/v1/sites/abc/deploys → 200"
        );
        assert_eq!(
            log_line("GET", "/api/v1/deploys/d1?access_token=secret", 429),
            "GET /api/v1/deploys/d1 → 429"
        );
    }

    #[test]
    fn error_texts_quote_netlify() {
        assert_eq!(
            error_text(401, br#"{"code":401,"message":"Access Denied"}"#),
            "Netlify answered 401: Access Denied"
        );
        assert_eq!(
            error_text(422, br#"{"error_message":"bad deploy"}"#),
            "Netlify answered 422: bad deploy"
        );
        assert_eq!(
            error_text(502, b"  <html>gateway</html> "),
            "Netlify answered 502: <html>gateway</html>"
        );
        assert_eq!(error_text(500, b""), "Netlify answered 500: no message");
        let long = "x".repeat(1000);
        assert_eq!(
            error_text(500, long.as_bytes()).len(),
            "Netlify answered 500: ".len() + 300
        );
    }

    #[test]
    fn site_names() {
        assert_eq!(site_name("Todo App!", None), "todo-app");
        assert_eq!(site_name("  --Ünïcode__ name-- ", None), "n-code-name");
        assert_eq!(site_name("***", None), "site");
        assert_eq!(site_name("todo", Some("A1b2")), "todo-a1b2");
        let long = "a".repeat(100);
        assert_eq!(site_name(&long, None).len(), MAX_SITE_NAME_CHARS);
        let with = site_name(&long, Some("abcdef"));
        assert_eq!(with.len(), MAX_SITE_NAME_CHARS);
        assert!(with.ends_with("-abcdef"));
        for n in [
            site_name("Todo App!", None),
            site_name("  --x-- ", Some("z")),
            with,
        ] {
            assert!(is_site_name(&n), "{n}");
        }
        for bad in ["", "-a", "a-", "a--b", "A", "a_b", &"a".repeat(64)] {
            assert!(!is_site_name(bad), "{bad}");
        }
    }
}
