//! A project's checkpoints as a git history (issue 17): the VM API's export route's wire types,
//! and the `git fast-import` stream that turns checkpoints into commits (one per checkpoint,
//! only the files that changed since the previous one, a `cp-N` tag on each). Pure, so the
//! stream is unit-tested here; the VM API feeds it to Debian's git.
//!
//! Routes (VM API, signed): `GET /projects/{id}/git/state` (→ [`GitState`]),
//! `POST /projects/{id}/git/export` ([`ExportRequest`] → [`GitState`]),
//! `GET /projects/{id}/git/info/refs?service=git-upload-pack` and
//! `POST /projects/{id}/git/git-upload-pack` (git's smart HTTP, read-only),
//! `POST /projects/{id}/git/push` ([`PushRequest`] → [`PushReply`]),
//! `POST /projects/{id}/git/import` ([`ImportRequest`] → [`ImportReply`]; which template the
//! imported files fit is [`infer_template`]).

use crate::manifest::Manifest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most checkpoints one export request may carry (the Worker sends the rest in later ones).
pub const MAX_EXPORT_CHECKPOINTS: usize = 20;
/// The branch the history is on.
pub const BRANCH: &str = "main";

/// Where a project's history stands on the VM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitState {
    /// The last checkpoint that is a commit (0: none yet).
    pub last_checkpoint: u64,
    /// That commit's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
}

/// One checkpoint to commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportCheckpoint {
    pub n: u64,
    /// `agent`, `user` or `system` (or a person's name).
    pub author: String,
    pub summary: String,
    pub created_ms: u64,
    pub manifest: Manifest,
}

/// `POST /projects/{id}/git/export`: the checkpoints after the VM's `last_checkpoint`, in
/// order, and the manifest of that last one (what the first commit changes from).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// Must equal the VM's `last_checkpoint` (else `409 history_moved`).
    pub after: u64,
    /// The manifest of checkpoint `after` (empty when `after` is 0).
    #[serde(default)]
    pub base: Manifest,
    pub checkpoints: Vec<ExportCheckpoint>,
}

impl ExportRequest {
    /// Consecutive checkpoints right after `after`, at most [`MAX_EXPORT_CHECKPOINTS`].
    pub fn validate(&self) -> Result<(), String> {
        if self.checkpoints.len() > MAX_EXPORT_CHECKPOINTS {
            return Err(format!(
                "at most {MAX_EXPORT_CHECKPOINTS} checkpoints per export, got {}",
                self.checkpoints.len()
            ));
        }
        for (i, c) in self.checkpoints.iter().enumerate() {
            if c.n != self.after + 1 + i as u64 {
                return Err(format!(
                    "checkpoints must follow {} one by one; got {} at position {i}",
                    self.after, c.n
                ));
            }
            for p in c.manifest.files.keys() {
                crate::paths::validate_path(p).map_err(|e| format!("{p:?}: {e}"))?;
            }
        }
        Ok(())
    }
}

/// `POST /projects/{id}/git/push` (Worker and VM API): push the history to a remote over
/// HTTP(S). The token travels in this body only: the VM API gives it to that one `git push` as
/// an HTTP header in git's environment (never the command line, the URL, a file or a log).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// `https://host/owner/repo.git` (or `http://`); no credentials in it.
    pub url: String,
    /// The remote branch (default `main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Basic auth's user name (default `x-access-token`, which GitHub, GitLab and Gitea accept
    /// with a token as the password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl std::fmt::Debug for PushRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushRequest")
            .field("url", &self.url)
            .field("branch", &self.branch)
            .field("username", &self.username)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushReply {
    pub url: String,
    pub branch: String,
    /// The commit the remote branch now points at.
    pub commit: String,
    /// The checkpoint it is.
    pub checkpoint: u64,
}

impl PushRequest {
    pub fn branch(&self) -> &str {
        self.branch.as_deref().unwrap_or(BRANCH)
    }

    /// The URL's host, once the request is valid: HTTP(S), no user info, a plain branch name.
    pub fn validate(&self) -> Result<String, String> {
        let host = remote_host(&self.url)?;
        validate_branch(self.branch())?;
        validate_token(self.token.as_deref())?;
        if let Some(n) = &self.username {
            if n.is_empty() || n.len() > 100 || n.contains(':') || n.chars().any(|c| c.is_control())
            {
                return Err(
                    "the user name must be 1 to 100 printable characters without ':'".into(),
                );
            }
        }
        Ok(host)
    }

    /// The `Authorization` header value git sends, when there is a token.
    pub fn authorization(&self) -> Option<String> {
        let t = self.token.as_ref()?;
        Some(basic_authorization(
            self.username.as_deref().unwrap_or(DEFAULT_USERNAME),
            t,
        ))
    }
}

/// Basic auth's user name when none is given: GitHub, GitLab and Gitea accept it with a token
/// as the password.
pub const DEFAULT_USERNAME: &str = "x-access-token";

/// `Basic base64(user:token)`, the header value git sends for a token.
pub fn basic_authorization(user: &str, token: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"))
    )
}

/// The host of a remote URL git may be given: `http://` or `https://`, no spaces or control
/// characters, no credentials in it (they belong in a token), a host. Lower-cased, without
/// brackets or port.
pub fn remote_host(url: &str) -> Result<String, String> {
    let u = url.trim();
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or("the remote must be an http:// or https:// URL")?;
    if u.len() > 2000 || u.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("the remote URL has spaces or control characters".into());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err("put the token in `token`, not in the URL".into());
    }
    let host = authority
        .rsplit_once(':')
        .filter(|(_, p)| p.parse::<u16>().is_ok())
        .map(|(h, _)| h)
        .unwrap_or(authority)
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if host.is_empty() {
        return Err("the remote URL has no host".into());
    }
    Ok(host)
}

/// The port a remote URL (checked by [`remote_host`]) connects to: its own, or the scheme's.
pub fn remote_port(url: &str) -> u16 {
    let u = url.trim();
    let (rest, default) = match u.strip_prefix("https://") {
        Some(r) => (r, 443),
        None => (u.strip_prefix("http://").unwrap_or(u), 80),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority
        .rsplit_once(':')
        .filter(|(h, _)| !h.starts_with('[') || h.ends_with(']'))
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .unwrap_or(default)
}

/// git's `http.curloptResolve` entry (libcurl's `CURLOPT_RESOLVE`, `HOST:PORT:ADDR[,ADDR]`)
/// that pins `host` to the addresses already checked, so git connects to exactly those and
/// does not ask DNS again (which could answer differently the second time: DNS rebinding).
/// `None` for a host that is an address itself.
pub fn curl_resolve_pin(host: &str, port: u16, addrs: &[std::net::IpAddr]) -> Option<String> {
    if addrs.is_empty() || host.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    let list: Vec<String> = addrs
        .iter()
        .map(|a| match a {
            std::net::IpAddr::V4(v4) => v4.to_string(),
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        })
        .collect();
    Some(format!("{host}:{port}:{}", list.join(",")))
}

/// A branch name git takes plainly (no option-like or relative names, no `..`, `.lock`, odd
/// characters).
pub fn validate_branch(b: &str) -> Result<(), String> {
    let branch_ok = !b.is_empty()
        && b.len() <= 200
        && !b.starts_with(['-', '/', '.'])
        && !b.ends_with(['/', '.'])
        && !b.contains("..")
        && !b.contains("//")
        && !b.ends_with(".lock")
        && b.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if branch_ok {
        Ok(())
    } else {
        Err(format!("{b:?} is not a branch name this accepts"))
    }
}

fn validate_token(token: Option<&str>) -> Result<(), String> {
    if let Some(t) = token {
        if t.is_empty() || t.len() > 1000 || t.chars().any(|c| c.is_control()) {
            return Err("the token must be 1 to 1000 printable characters".into());
        }
    }
    Ok(())
}

/// `POST /projects/{id}/git/import` (VM API): a shallow clone of the remote's branch (its
/// default branch when none is given) becomes the files of project `id`: each tracked regular
/// file is saved as an object of that project, and the reply is their manifest. Like a push's,
/// the token is given to that one `git clone` as an HTTP header in its environment only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// `https://host/owner/repo.git` (or `http://`); no credentials in it.
    pub url: String,
    /// The branch to import (default: the remote's default branch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Sent as Basic auth's password with [`DEFAULT_USERNAME`], for a private repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Most files the project may hold (the Worker's `MAX_PROJECT_FILES`; default
    /// [`crate::paths::MAX_FILES_PER_PROJECT`]). A repository with more is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_files: Option<usize>,
}

impl std::fmt::Debug for ImportRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportRequest")
            .field("url", &self.url)
            .field("branch", &self.branch)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("max_files", &self.max_files)
            .finish()
    }
}

impl ImportRequest {
    /// The URL's host, once the request is valid (the push rules: HTTP(S), no user info, a
    /// plain branch name, a printable token).
    pub fn validate(&self) -> Result<String, String> {
        let host = remote_host(&self.url)?;
        if let Some(b) = &self.branch {
            validate_branch(b)?;
        }
        validate_token(self.token.as_deref())?;
        if self.max_files == Some(0) {
            return Err("max_files must be at least 1".into());
        }
        Ok(host)
    }

    pub fn max_files(&self) -> usize {
        self.max_files
            .unwrap_or(crate::paths::MAX_FILES_PER_PROJECT)
    }

    /// The `Authorization` header value git sends, when there is a token.
    pub fn authorization(&self) -> Option<String> {
        Some(basic_authorization(DEFAULT_USERNAME, self.token.as_ref()?))
    }

    /// The repository's name: the URL's last path segment without `.git` (`app` for
    /// `https://host/me/app.git/`), `None` when the URL has no path.
    pub fn repo_name(&self) -> Option<String> {
        let u = self.url.trim();
        let rest = u
            .strip_prefix("https://")
            .or_else(|| u.strip_prefix("http://"))?;
        let path = rest.split(['?', '#']).next()?;
        let (_, path) = path.split_once('/')?;
        let last = path.trim_end_matches('/').rsplit('/').next()?;
        let name = last.strip_suffix(".git").unwrap_or(last);
        (!name.is_empty()).then(|| name.to_string())
    }
}

/// What an import saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReply {
    /// The project's files: every object is in blob storage already.
    pub manifest: Manifest,
    /// The commit imported (full id).
    pub commit: String,
    /// Tracked entries not imported, and why (`symlink`, `submodule`, `file_too_large`,
    /// `invalid_utf8`, or a path rule's name); at most 100 listed.
    #[serde(default)]
    pub skipped: Vec<crate::vm_api::SkippedFile>,
    /// Skipped entries beyond those listed.
    #[serde(default)]
    pub skipped_more: usize,
    /// The built-in template the files fit ([`infer_template`]), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// The built-in templates an import may infer.
pub const KNOWN_TEMPLATES: [&str; 3] = ["fullstack", "frontend", "backend"];

/// Which built-in template a repository's files fit, from its tracked paths and the text of its
/// root `template.json` and `package.json` (when it has them):
///
/// 1. a root `template.json` whose `name` is a known template;
/// 2. `frontend/package.json` and `backend/requirements.txt` (or `backend/pyproject.toml`):
///    `fullstack`;
/// 3. a root `package.json` that uses Vite: `frontend`;
/// 4. a root `requirements.txt` or `pyproject.toml` with `app/main.py` (what the backend
///    template's uvicorn starts): `backend`.
///
/// `None` when nothing fits: the caller must name the template.
pub fn infer_template(
    paths: &[&str],
    template_json: Option<&str>,
    package_json: Option<&str>,
) -> Option<&'static str> {
    let has = |p: &str| paths.contains(&p);
    if let Some(name) = template_json
        .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
        .and_then(|v| v.get("name")?.as_str().map(String::from))
    {
        if let Some(known) = KNOWN_TEMPLATES.iter().find(|k| **k == name) {
            return Some(known);
        }
    }
    if has("frontend/package.json")
        && (has("backend/requirements.txt") || has("backend/pyproject.toml"))
    {
        return Some("fullstack");
    }
    let uses_vite = package_json
        .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
        .is_some_and(|v| {
            ["dependencies", "devDependencies"]
                .iter()
                .any(|k| v.get(k).and_then(|d| d.get("vite")).is_some())
        });
    if has("package.json") && uses_vite {
        return Some("frontend");
    }
    if (has("requirements.txt") || has("pyproject.toml")) && has("app/main.py") {
        return Some("backend");
    }
    None
}

/// The name and email a checkpoint's author commits as.
pub fn signature(author: &str) -> (String, String) {
    let name: String = author
        .chars()
        .filter(|c| !matches!(c, '<' | '>' | '\n' | '\0'))
        .take(100)
        .collect();
    let name = if name.trim().is_empty() {
        "open-replit".to_string()
    } else {
        name.trim().to_string()
    };
    let local: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    (name, format!("{local}@open-replit.invalid"))
}

/// What changed from `base` to `next`: paths written (added or modified) and removed.
pub fn changes(base: &Manifest, next: &Manifest) -> (Vec<String>, Vec<String>) {
    let written = next
        .files
        .iter()
        .filter(|(p, e)| base.files.get(*p).map(|b| &b.sha256) != Some(&e.sha256))
        .map(|(p, _)| p.clone())
        .collect();
    let removed = base
        .files
        .keys()
        .filter(|p| !next.files.contains_key(*p))
        .cloned()
        .collect();
    (written, removed)
}

fn data(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(format!("data {}\n", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
    out.push(b'\n');
}

/// Quotes a path for fast-import when it needs it (spaces at the ends, quotes, newlines,
/// backslashes, non-ASCII), as a C-style string.
fn quote(path: &str) -> String {
    let plain = !path.starts_with('"')
        && !path.contains(['\n', '\\', '"'])
        && !path.starts_with(' ')
        && !path.ends_with(' ')
        && path.is_ascii();
    if plain {
        return path.to_string();
    }
    let mut s = String::from("\"");
    for b in path.bytes() {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\{b:03o}")),
        }
    }
    s.push('"');
    s
}

/// The `git fast-import` stream committing `request`'s checkpoints onto `parent` (the branch's
/// current commit, if any). `contents` holds the bytes of every object the commits write, by
/// sha256. Each commit gets mark `:N` and tag `cp-N`.
pub fn fast_import_stream(
    request: &ExportRequest,
    parent: Option<&str>,
    contents: &BTreeMap<String, Vec<u8>>,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut base = &request.base;
    for (i, c) in request.checkpoints.iter().enumerate() {
        let (written, removed) = changes(base, &c.manifest);
        let (name, email) = signature(&c.author);
        let secs = c.created_ms / 1000;
        out.extend_from_slice(
            format!(
                "commit refs/heads/{BRANCH}\nmark :{}\nauthor {name} <{email}> {secs} +0000\n\
                 committer {name} <{email}> {secs} +0000\n",
                c.n
            )
            .as_bytes(),
        );
        let message = if c.summary.trim().is_empty() {
            format!("checkpoint {}", c.n)
        } else {
            c.summary.clone()
        };
        data(&mut out, message.as_bytes());
        match (i, parent) {
            (0, Some(p)) => out.extend_from_slice(format!("from {p}\n").as_bytes()),
            (0, None) => {}
            _ => out.extend_from_slice(format!("from :{}\n", c.n - 1).as_bytes()),
        }
        for p in &removed {
            out.extend_from_slice(format!("D {}\n", quote(p)).as_bytes());
        }
        for p in &written {
            let sha = &c.manifest.files[p].sha256;
            let bytes = contents
                .get(sha)
                .ok_or_else(|| format!("the content of {p} ({sha}) is missing"))?;
            out.extend_from_slice(format!("M 100644 inline {}\n", quote(p)).as_bytes());
            data(&mut out, bytes);
        }
        out.push(b'\n');
        out.extend_from_slice(format!("reset refs/tags/cp-{}\nfrom :{}\n\n", c.n, c.n).as_bytes());
        base = &c.manifest;
    }
    out.extend_from_slice(b"done\n");
    Ok(out)
}

/// The pkt-line header of a smart-HTTP ref advertisement (`# service=…` then a flush).
pub fn service_header(service: &str) -> Vec<u8> {
    let line = format!("# service={service}\n");
    let mut out = format!("{:04x}{line}", line.len() + 4).into_bytes();
    out.extend_from_slice(b"0000");
    out
}

/// A CGI answer (`git http-backend`'s output): its status (`Status:` header, else 200), its
/// other headers in order, and its body.
#[derive(Debug, PartialEq, Eq)]
pub struct CgiAnswer<'a> {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
}

/// Splits a CGI answer; `None` when it is not one.
pub fn split_cgi(raw: &[u8]) -> Option<CgiAnswer<'_>> {
    let (at, len) = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)))?;
    let head = std::str::from_utf8(&raw[..at]).ok()?;
    let mut status = 200u16;
    let mut headers = Vec::new();
    for line in head.lines() {
        let (k, v) = line.split_once(':')?;
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("status") {
            status = v.split(' ').next()?.parse().ok()?;
        } else {
            headers.push((k.to_string(), v.to_string()));
        }
    }
    Some(CgiAnswer {
        status,
        headers,
        body: &raw[at + len..],
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_remote_s_port_is_its_own_or_its_scheme_s() {
        use super::remote_port;
        assert_eq!(remote_port("https://github.com/o/r.git"), 443);
        assert_eq!(remote_port("http://example.org/o/r.git"), 80);
        assert_eq!(remote_port("https://git.example.org:8443/o/r.git"), 8443);
        assert_eq!(remote_port("http://[2001:db8::1]:3000/r.git"), 3000);
        assert_eq!(remote_port("http://[2001:db8::1]/r.git"), 80);
        assert_eq!(remote_port(" https://h:99999/x "), 443);
    }

    #[test]
    fn the_resolve_pin_names_every_checked_address_and_skips_literals() {
        use super::curl_resolve_pin;
        let a: Vec<std::net::IpAddr> = vec![
            "140.82.112.3".parse().unwrap(),
            "2606:4700::1111".parse().unwrap(),
        ];
        assert_eq!(
            curl_resolve_pin("github.com", 443, &a).as_deref(),
            Some("github.com:443:140.82.112.3,[2606:4700::1111]")
        );
        assert_eq!(curl_resolve_pin("140.82.112.3", 443, &a), None);
        assert_eq!(curl_resolve_pin("2606:4700::1111", 80, &a), None);
        assert_eq!(curl_resolve_pin("github.com", 443, &[]), None);
    }

    use super::*;
    use crate::manifest::FileEntry;

    fn m(files: &[(&str, &str)]) -> Manifest {
        let mut m = Manifest::default();
        for (p, sha) in files {
            m.files.insert(
                p.to_string(),
                FileEntry {
                    sha256: sha.to_string(),
                    size: 1,
                },
            );
        }
        m
    }

    fn cp(n: u64, files: &[(&str, &str)]) -> ExportCheckpoint {
        ExportCheckpoint {
            n,
            author: "agent".into(),
            summary: format!("step {n}"),
            created_ms: 1_700_000_000_000 + n,
            manifest: m(files),
        }
    }

    #[test]
    fn a_stream_writes_only_what_changed_and_tags_each_checkpoint() {
        let req = ExportRequest {
            after: 1,
            base: m(&[("a.txt", "1"), ("b.txt", "2")]),
            checkpoints: vec![
                cp(2, &[("a.txt", "3"), ("b.txt", "2")]),
                cp(3, &[("a.txt", "3")]),
            ],
        };
        req.validate().unwrap();
        let contents = BTreeMap::from([("3".to_string(), b"new a".to_vec())]);
        let s = String::from_utf8(fast_import_stream(&req, Some("abc123"), &contents).unwrap())
            .unwrap();
        assert_eq!(
            s,
            "commit refs/heads/main\nmark :2\nauthor agent <agent@open-replit.invalid> 1700000000 +0000\n\
             committer agent <agent@open-replit.invalid> 1700000000 +0000\ndata 6\nstep 2\n\
             from abc123\nM 100644 inline a.txt\ndata 5\nnew a\n\n\
             reset refs/tags/cp-2\nfrom :2\n\n\
             commit refs/heads/main\nmark :3\nauthor agent <agent@open-replit.invalid> 1700000000 +0000\n\
             committer agent <agent@open-replit.invalid> 1700000000 +0000\ndata 6\nstep 3\n\
             from :2\nD b.txt\n\nreset refs/tags/cp-3\nfrom :3\n\ndone\n"
        );
    }

    #[test]
    fn gaps_unsafe_paths_and_missing_content_are_refused() {
        let mut req = ExportRequest {
            after: 1,
            base: Manifest::default(),
            checkpoints: vec![cp(3, &[])],
        };
        assert!(req.validate().unwrap_err().contains("follow 1"));
        req.checkpoints = vec![cp(2, &[("../etc/passwd", "1")])];
        assert!(req.validate().is_err());
        req.checkpoints = vec![cp(2, &[("a", "1")])];
        assert!(fast_import_stream(&req, None, &BTreeMap::new())
            .unwrap_err()
            .contains("missing"));
    }

    #[test]
    fn odd_names_are_quoted_and_authors_cannot_break_the_header() {
        assert_eq!(quote("plain/name.txt"), "plain/name.txt");
        assert_eq!(quote("h\u{e9}llo world.md"), "\"h\\303\\251llo world.md\"");
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
        assert_eq!(
            signature("Eve <x>\nevil"),
            (
                "Eve xevil".to_string(),
                "eve-xevil@open-replit.invalid".to_string()
            )
        );
        assert_eq!(signature("").0, "open-replit");
        assert_eq!(
            service_header("git-upload-pack"),
            b"001e# service=git-upload-pack\n0000"
        );
    }

    #[test]
    fn push_requests_take_http_urls_plain_branches_and_keep_the_token_out_of_debug() {
        let r = |url: &str, branch: Option<&str>| PushRequest {
            url: url.into(),
            branch: branch.map(String::from),
            username: None,
            token: Some("secret-token".into()),
        };
        assert_eq!(
            r("https://GitHub.com/me/app.git", None).validate(),
            Ok("github.com".into())
        );
        assert_eq!(
            r("http://127.0.0.1:8080/x.git", Some("feature/a")).validate(),
            Ok("127.0.0.1".into())
        );
        for bad in [
            "ssh://git@github.com/x",
            "ext::sh -c evil",
            "file:///etc",
            "https://u:p@github.com/x",
            "https://github.com/a b",
        ] {
            assert!(r(bad, None).validate().is_err(), "{bad}");
        }
        for bad in ["-f", "../x", "a..b", "x.lock", "a b", "/x"] {
            assert!(r("https://h/x", Some(bad)).validate().is_err(), "{bad}");
        }
        let dbg = format!("{:?}", r("https://h/x", None));
        assert!(
            !dbg.contains("secret-token") && dbg.contains("redacted"),
            "{dbg}"
        );
        assert_eq!(
            r("https://h/x", None).authorization().unwrap(),
            "Basic eC1hY2Nlc3MtdG9rZW46c2VjcmV0LXRva2Vu"
        );
    }

    #[test]
    fn import_requests_follow_the_push_rules_and_keep_the_token_out_of_debug() {
        let r = |url: &str, branch: Option<&str>| ImportRequest {
            url: url.into(),
            branch: branch.map(String::from),
            token: Some("import-secret".into()),
            max_files: None,
        };
        assert_eq!(
            r("https://GitHub.com/me/app.git", None).validate(),
            Ok("github.com".into())
        );
        assert_eq!(
            r("http://[::1]:9418/x.git", Some("dev")).validate(),
            Ok("::1".into())
        );
        for bad in [
            "ssh://git@github.com/x",
            "git://github.com/x",
            "ext::sh -c evil",
            "file:///etc",
            "/srv/repo.git",
            "https://u:p@github.com/x",
            "https://tok@github.com/x",
            "https://github.com/a b",
            "https:///x",
        ] {
            assert!(r(bad, None).validate().is_err(), "{bad}");
        }
        for bad in ["-u", "--upload-pack=evil", "../x", "a..b", "x.lock", ""] {
            assert!(r("https://h/x", Some(bad)).validate().is_err(), "{bad}");
        }
        let mut empty_token = r("https://h/x", None);
        empty_token.token = Some(String::new());
        assert!(empty_token.validate().is_err());
        let dbg = format!("{:?}", r("https://h/x", None));
        assert!(
            !dbg.contains("import-secret") && dbg.contains("redacted"),
            "{dbg}"
        );
        assert_eq!(
            r("https://h/x", None).authorization().unwrap(),
            basic_authorization("x-access-token", "import-secret")
        );
        // The token never travels by the wire types' Debug, only in the body.
        let json = serde_json::to_string(&r("https://h/x", None)).unwrap();
        assert_eq!(json, r#"{"url":"https://h/x","token":"import-secret"}"#);
        assert!(serde_json::from_str::<ImportRequest>(r#"{"url":"https://h/x","x":1}"#).is_err());
    }

    #[test]
    fn the_repository_name_is_the_last_path_segment_without_dot_git() {
        let name = |url: &str| {
            ImportRequest {
                url: url.into(),
                branch: None,
                token: None,
                max_files: None,
            }
            .repo_name()
        };
        assert_eq!(
            name("https://github.com/me/todo-app.git"),
            Some("todo-app".into())
        );
        assert_eq!(
            name("https://github.com/me/todo-app/"),
            Some("todo-app".into())
        );
        assert_eq!(name("http://h:8080/a/b/c?x=1"), Some("c".into()));
        assert_eq!(name("https://github.com"), None);
        assert_eq!(name("https://github.com/.git"), None);
    }

    #[test]
    fn the_template_is_inferred_from_the_tree_or_named_by_template_json() {
        let vite = r#"{"name":"x","devDependencies":{"vite":"^7","typescript":"5"}}"#;
        let next = r#"{"name":"x","dependencies":{"next":"15"}}"#;
        let fullstack = [
            "README.md",
            "frontend/package.json",
            "frontend/src/App.tsx",
            "backend/requirements.txt",
            "backend/app/main.py",
        ];
        assert_eq!(infer_template(&fullstack, None, None), Some("fullstack"));
        let frontend = ["package.json", "index.html", "src/main.tsx"];
        assert_eq!(
            infer_template(&frontend, None, Some(vite)),
            Some("frontend")
        );
        // A package.json that does not use Vite would not start under the frontend template.
        assert_eq!(infer_template(&frontend, None, Some(next)), None);
        assert_eq!(infer_template(&frontend, None, Some("not json")), None);
        let backend = ["requirements.txt", "app/main.py", "tests/test_api.py"];
        assert_eq!(infer_template(&backend, None, None), Some("backend"));
        let poetry = ["pyproject.toml", "app/main.py"];
        assert_eq!(infer_template(&poetry, None, None), Some("backend"));
        assert_eq!(
            infer_template(&["requirements.txt", "main.py"], None, None),
            None
        );
        // A known name in template.json wins over the shape; an unknown one is ignored.
        assert_eq!(
            infer_template(&backend, Some(r#"{"name":"frontend"}"#), None),
            Some("frontend")
        );
        assert_eq!(
            infer_template(&backend, Some(r#"{"name":"rails"}"#), None),
            Some("backend")
        );
        assert_eq!(infer_template(&["README.md"], None, None), None);
        assert_eq!(infer_template(&[], None, None), None);
    }

    #[test]
    fn cgi_answers_split_into_status_headers_and_body() {
        let a = split_cgi(b"Status: 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nno").unwrap();
        assert_eq!((a.status, a.body), (403, &b"no"[..]));
        assert_eq!(
            a.headers,
            vec![("Content-Type".to_string(), "text/plain".to_string())]
        );
        let a = split_cgi(b"Content-Type: application/x-git-upload-pack-advertisement\n\n001e#")
            .unwrap();
        assert_eq!((a.status, a.headers.len(), a.body), (200, 1, &b"001e#"[..]));
        assert!(split_cgi(b"no blank line").is_none());
        assert!(split_cgi(b"Status: x\n\n").is_none());
    }
}
