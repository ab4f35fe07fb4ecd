//! Building a deployment from a checkpoint: wire types and pure rules (see `deploy/mod.rs`).
//!
//! `POST /projects/{id}/deployments/build` on the VM API takes a [`BuildRequest`] and streams
//! [`BuildEvent`]s as NDJSON; [`DistWalk`] decides what of the static folder is published
//! under [`DistLimits`].

use crate::manifest::{FileEntry, Manifest};
use crate::paths;
use crate::vault::SecretEnv;
use crate::vm_api::SkippedFile;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest a whole build may take, and what it gets when the request names no timeout.
pub const MAX_BUILD_TIMEOUT_S: u64 = 900;
pub const DEFAULT_BUILD_TIMEOUT_S: u64 = 600;
/// Most `install` and most `build` steps one request may list.
pub const MAX_STEPS: usize = 8;
/// Longest deployment id after its `d-` prefix.
pub const MAX_DEPLOYMENT_ID_CHARS: usize = 40;

/// Most files a static site may have.
pub const MAX_STATIC_FILES: usize = 10_000;
/// Largest single static file.
pub const MAX_STATIC_FILE_BYTES: u64 = 25 << 20;
/// Most bytes a static site may hold in all.
pub const MAX_STATIC_TOTAL_BYTES: u64 = 256 << 20;
/// Entries (files, folders, links) walked per allowed file: a folder of empty directories or
/// links cannot make the walk unbounded.
pub const ENTRIES_PER_FILE: usize = 2;
/// Skipped entries a `built` event lists; the rest are counted (`skipped_more`).
pub const SKIPPED_LIST_LIMIT: usize = 100;

/// `POST /projects/{id}/deployments/build`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildRequest {
    /// `d-` and 1 to 40 of `a-z`, `0-9`, `-` ([`validate_deployment_id`]).
    pub deployment: String,
    /// The checkpoint's files, as `/sync` takes them.
    pub manifest: Manifest,
    /// The template's installs, run first (through the dependency cache when they name
    /// `when_changed` and `outputs`).
    #[serde(default)]
    pub install: Vec<InstallStep>,
    /// The build commands, in order.
    #[serde(default)]
    pub build: Vec<BuildStep>,
    /// Folder (relative to the project root) whose files are the static site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_dir: Option<String>,
    /// Folder the backend runs from; kept in the build directory for the service to start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_dir: Option<String>,
    /// The whole build's time limit, 1 to [`MAX_BUILD_TIMEOUT_S`] (default
    /// [`DEFAULT_BUILD_TIMEOUT_S`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u64>,
    /// Environment of the `build` steps only (never the installs), such as a frontend's
    /// `VITE_API_URL`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Secret environment of the `build` steps only: a deploy tool's credentials
    /// (`MODAL_TOKEN_ID`…). Values never print in `Debug`, and the VM API replaces them with
    /// `<secret>` in the build's output.
    #[serde(default, skip_serializing_if = "SecretEnv::is_empty")]
    pub secret_env: SecretEnv,
}

/// Most variables a build's `env` may set.
pub const MAX_BUILD_ENV: usize = 32;

/// One install, with the keys of a `template.json` `install` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallStep {
    #[serde(default)]
    pub cwd: String,
    pub command: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when_changed: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
}

/// One build command.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildStep {
    #[serde(default)]
    pub cwd: String,
    pub command: String,
}

/// A request the route refuses before doing anything (`400` with [`RequestError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    Deployment(String),
    #[error("{field} {value:?} breaks rule {rule}: {message}")]
    Dir {
        field: &'static str,
        value: String,
        rule: &'static str,
        message: String,
    },
    #[error("{0}")]
    Step(String),
    #[error("timeout_s must be between 1 and {MAX_BUILD_TIMEOUT_S}, got {0}")]
    Timeout(u64),
}

impl RequestError {
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::Deployment(_) => "invalid_deployment",
            RequestError::Dir { .. } => "invalid_dir",
            RequestError::Step(_) => "invalid_step",
            RequestError::Timeout(_) => "invalid_timeout",
        }
    }
}

/// A deployment id is `d-` followed by 1 to 40 of `a-z`, `0-9` and `-`: it names a directory
/// on the VM and appears in URLs.
pub fn validate_deployment_id(id: &str) -> Result<(), String> {
    let rest = id
        .strip_prefix("d-")
        .ok_or_else(|| format!("deployment id {id:?} must start with \"d-\""))?;
    if rest.is_empty() || rest.len() > MAX_DEPLOYMENT_ID_CHARS {
        return Err(format!(
            "deployment id must have 1 to {MAX_DEPLOYMENT_ID_CHARS} characters after \"d-\", got {}",
            rest.len()
        ));
    }
    if !rest
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!(
            "deployment id {id:?} may contain only a-z, 0-9 and '-'"
        ));
    }
    Ok(())
}

fn check_dir(field: &'static str, value: &str, root_ok: bool) -> Result<(), RequestError> {
    if value.is_empty() && root_ok {
        return Ok(());
    }
    paths::validate_path(value).map_err(|e| RequestError::Dir {
        field,
        value: value.to_string(),
        rule: e.rule(),
        message: e.to_string(),
    })
}

fn check_command(what: &str, i: usize, command: &str) -> Result<(), RequestError> {
    if command.trim().is_empty() || command.contains('\0') {
        return Err(RequestError::Step(format!(
            "{what}[{i}].command must be a non-empty string without NUL bytes"
        )));
    }
    Ok(())
}

impl BuildRequest {
    /// The timeout in seconds, checked.
    pub fn timeout(&self) -> Result<u64, RequestError> {
        let t = self.timeout_s.unwrap_or(DEFAULT_BUILD_TIMEOUT_S);
        if t == 0 || t > MAX_BUILD_TIMEOUT_S {
            return Err(RequestError::Timeout(t));
        }
        Ok(t)
    }

    /// Every rule of the request except the manifest's own (the VM API checks those as
    /// `/sync` does) and an install's cache keys (checked as an exec's `cache`).
    pub fn validate(&self) -> Result<(), RequestError> {
        validate_deployment_id(&self.deployment).map_err(RequestError::Deployment)?;
        self.timeout()?;
        for (what, n) in [("install", self.install.len()), ("build", self.build.len())] {
            if n > MAX_STEPS {
                return Err(RequestError::Step(format!(
                    "at most {MAX_STEPS} {what} steps, got {n}"
                )));
            }
        }
        for (i, s) in self.install.iter().enumerate() {
            check_dir("install.cwd", &s.cwd, true)?;
            check_command("install", i, &s.command)?;
        }
        for (i, s) in self.build.iter().enumerate() {
            check_dir("build.cwd", &s.cwd, true)?;
            check_command("build", i, &s.command)?;
        }
        if let Some(d) = &self.static_dir {
            check_dir("static_dir", d, false)?;
        }
        let n = self.env.len() + self.secret_env.0.len();
        if n > MAX_BUILD_ENV {
            return Err(RequestError::Step(format!(
                "at most {MAX_BUILD_ENV} environment variables, got {n}"
            )));
        }
        for (k, v) in self.env.iter().chain(self.secret_env.0.iter()) {
            let name_ok = !k.is_empty()
                && !k.starts_with(|c: char| c.is_ascii_digit())
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !name_ok || v.contains('\0') || v.len() > crate::vault::MAX_SECRET_BYTES {
                return Err(RequestError::Step(format!(
                    "environment variable {k:?} must match [A-Za-z_][A-Za-z0-9_]* with a value \
                     of at most {} bytes and no NUL",
                    crate::vault::MAX_SECRET_BYTES
                )));
            }
        }
        if let Some(d) = &self.backend_dir {
            check_dir("backend_dir", d, false)?;
        }
        Ok(())
    }
}

/// The stages of a build, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Materialize,
    Install,
    Build,
    Collect,
    Upload,
}

/// One line of the build's NDJSON reply; `built` or `error` is last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BuildEvent {
    /// A phase starts.
    Phase {
        phase: Phase,
    },
    /// A step of `install` or `build` starts.
    Step {
        phase: Phase,
        index: usize,
        cwd: String,
        command: String,
    },
    /// Output of the running step (the same shape as an exec's).
    Stdout {
        data: String,
    },
    Stderr {
        data: String,
    },
    Built(Built),
    Error(BuildError),
}

/// The end of a successful build.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Built {
    pub deployment: String,
    /// The static site: path under `static_dir` → sha256 and size (empty without one).
    pub manifest: Manifest,
    /// Files and bytes of the static site.
    pub files: u64,
    pub bytes: u64,
    /// Distinct objects the site needs, and how many of them this build stored (the rest
    /// were in blob storage already).
    pub total: u64,
    pub uploaded: u64,
    /// Whether `backend_dir` exists in the build directory as a real directory.
    pub backend: bool,
    /// Entries of the static folder that were not published (symlinks, special files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedFile>,
    /// Skipped entries beyond those listed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped_more: u64,
    pub timings: Timings,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Milliseconds each phase took.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    pub materialize_ms: u64,
    pub install_ms: u64,
    pub build_ms: u64,
    pub collect_ms: u64,
    pub upload_ms: u64,
}

/// The end of a failed build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildError {
    pub phase: Phase,
    /// Stable: `step_failed`, `step_timed_out`, `too_many_files`, `file_too_large`,
    /// `too_many_bytes`, `invalid_path`, `static_dir_missing`, `object_fetch_failed`,
    /// `object_upload_failed`, `build_io`, …
    pub code: String,
    pub message: String,
    /// The failing step's exit code (`null` when it was killed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The failing step's last output lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_lines: Vec<String>,
}

/// What the static site may hold; `Default` is what production enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DistLimits {
    pub max_files: usize,
    pub max_file_bytes: u64,
    pub max_total_bytes: u64,
}

impl Default for DistLimits {
    fn default() -> Self {
        DistLimits {
            max_files: MAX_STATIC_FILES,
            max_file_bytes: MAX_STATIC_FILE_BYTES,
            max_total_bytes: MAX_STATIC_TOTAL_BYTES,
        }
    }
}

/// Why a static folder cannot be published; each names the limit and what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DistError {
    #[error("the static folder has more than {limit} files (the limit is {limit}; found at least {found})")]
    TooManyFiles { limit: usize, found: usize },
    #[error("{path} is {size} bytes; a static file may have at most {limit}")]
    FileTooLarge { path: String, size: u64, limit: u64 },
    #[error("the static folder holds at least {found} bytes; the limit is {limit}")]
    TooManyBytes { limit: u64, found: u64 },
    #[error("the static folder has more than {limit} entries (files, folders and links; found at least {found})")]
    TooManyEntries { limit: usize, found: usize },
    #[error("static path {path:?} breaks rule {rule}: {message}")]
    InvalidPath {
        path: String,
        rule: &'static str,
        message: String,
    },
}

impl DistError {
    pub fn code(&self) -> &'static str {
        match self {
            DistError::TooManyFiles { .. } => "too_many_files",
            DistError::FileTooLarge { .. } => "file_too_large",
            DistError::TooManyBytes { .. } => "too_many_bytes",
            DistError::TooManyEntries { .. } => "too_many_entries",
            DistError::InvalidPath { .. } => "invalid_path",
        }
    }
}

/// What one entry of the static folder is (never followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Symlink,
    /// A FIFO, socket or device.
    Other,
}

/// Accumulates the entries of a static folder (paths relative to it, as the walk finds them)
/// and refuses at the first one past a limit; symlinks and special files are skipped and
/// reported, never followed. Every entry, folders too, counts against
/// `ENTRIES_PER_FILE × max_files`.
#[derive(Debug, Clone, Default)]
pub struct DistWalk {
    limits: DistLimits,
    files: BTreeMap<String, u64>,
    bytes: u64,
    entries: usize,
    skipped: Vec<SkippedFile>,
}

impl DistWalk {
    pub fn new(limits: DistLimits) -> DistWalk {
        DistWalk {
            limits,
            ..Default::default()
        }
    }

    /// Counts an entry and checks its path.
    fn entry(&mut self, path: &str) -> Result<(), DistError> {
        paths::validate_path(path).map_err(|e| DistError::InvalidPath {
            path: path.to_string(),
            rule: e.rule(),
            message: e.to_string(),
        })?;
        let limit = self.limits.max_files.saturating_mul(ENTRIES_PER_FILE);
        self.entries += 1;
        if self.entries > limit {
            return Err(DistError::TooManyEntries {
                limit,
                found: self.entries,
            });
        }
        Ok(())
    }

    /// A folder the walk enters.
    pub fn dir(&mut self, path: &str) -> Result<(), DistError> {
        self.entry(path)
    }

    pub fn add(&mut self, path: &str, size: u64, kind: EntryKind) -> Result<(), DistError> {
        self.entry(path)?;
        let skip = |reason: &str, message: &str| SkippedFile {
            path: path.to_string(),
            reason: reason.into(),
            message: message.into(),
        };
        match kind {
            EntryKind::Symlink => {
                self.skipped.push(skip(
                    "symlink",
                    "symlinks are not followed; the file was not published",
                ));
                return Ok(());
            }
            EntryKind::Other => {
                self.skipped
                    .push(skip("not_regular_file", "only regular files are published"));
                return Ok(());
            }
            EntryKind::File => {}
        }
        if self.files.len() >= self.limits.max_files {
            return Err(DistError::TooManyFiles {
                limit: self.limits.max_files,
                found: self.files.len() + 1,
            });
        }
        if size > self.limits.max_file_bytes {
            return Err(DistError::FileTooLarge {
                path: path.to_string(),
                size,
                limit: self.limits.max_file_bytes,
            });
        }
        let total = self.bytes.saturating_add(size);
        if total > self.limits.max_total_bytes {
            return Err(DistError::TooManyBytes {
                limit: self.limits.max_total_bytes,
                found: total,
            });
        }
        self.bytes = total;
        self.files.insert(path.to_string(), size);
        Ok(())
    }

    /// The files to publish (path → size, sorted), what was skipped (sorted by path, at most
    /// [`SKIPPED_LIST_LIMIT`]) and how many more were skipped.
    pub fn finish(mut self) -> (BTreeMap<String, u64>, Vec<SkippedFile>, u64) {
        self.skipped.sort_by(|a, b| a.path.cmp(&b.path));
        let more = self.skipped.len().saturating_sub(SKIPPED_LIST_LIMIT) as u64;
        self.skipped.truncate(SKIPPED_LIST_LIMIT);
        (self.files, self.skipped, more)
    }
}

/// The static manifest from each file's hash and size, with its file, byte and distinct
/// object counts.
pub fn static_manifest(files: Vec<(String, String, u64)>) -> (Manifest, u64, u64, u64) {
    let mut m = Manifest::default();
    let mut bytes = 0u64;
    for (path, sha256, size) in files {
        bytes += size;
        m.files.insert(path, FileEntry { sha256, size });
    }
    let total = m
        .files
        .values()
        .map(|e| e.sha256.as_str())
        .collect::<std::collections::BTreeSet<&str>>()
        .len() as u64;
    let files = m.files.len() as u64;
    (m, files, bytes, total)
}

/// Build directories of a project to remove after a successful build: every valid deployment
/// id in `dirs` except the newest `keep_newest` (by the given time, newer first kept) and
/// those named in `live` (the service's `keep` file).
pub fn prune(dirs: &[(String, u128)], keep_newest: usize, live: &[String]) -> Vec<String> {
    let mut v: Vec<&(String, u128)> = dirs
        .iter()
        .filter(|(n, _)| validate_deployment_id(n).is_ok())
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    v.into_iter()
        .skip(keep_newest)
        .filter(|(n, _)| !live.iter().any(|l| l == n))
        .map(|(n, _)| n.clone())
        .collect()
}

/// The deployment ids a `keep` file names: one per line, blank lines and invalid ids ignored.
pub fn parse_keep(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| validate_deployment_id(l).is_ok())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req() -> BuildRequest {
        serde_json::from_value(json!({
            "deployment": "d-abc1",
            "manifest": {"files": {}},
            "install": [{"cwd": "frontend", "command": "npm install",
                         "when_changed": ["frontend/package.json"], "outputs": ["node_modules"]}],
            "build": [{"cwd": "frontend", "command": "npm run build"}],
            "static_dir": "frontend/dist",
            "backend_dir": "backend",
            "timeout_s": 300
        }))
        .unwrap()
    }

    #[test]
    fn a_request_round_trips_and_refuses_unknown_fields() {
        let r = req();
        assert!(r.validate().is_ok());
        let back: BuildRequest = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        let bad = serde_json::from_value::<BuildRequest>(json!({
            "deployment": "d-a", "manifest": {"files": {}}, "nope": 1
        }));
        assert!(bad.is_err());
        let minimal: BuildRequest =
            serde_json::from_value(json!({"deployment": "d-a", "manifest": {"files": {}}}))
                .unwrap();
        assert_eq!(minimal.timeout().unwrap(), DEFAULT_BUILD_TIMEOUT_S);
    }

    #[test]
    fn deployment_ids_are_checked() {
        assert!(validate_deployment_id("d-a").is_ok());
        assert!(validate_deployment_id(&format!("d-{}", "a".repeat(40))).is_ok());
        for bad in ["", "d-", "x-abc", "d-ABC", "d-a/b", "d-..", "d-a_b"] {
            assert!(validate_deployment_id(bad).is_err(), "{bad}");
        }
        assert!(validate_deployment_id(&format!("d-{}", "a".repeat(41))).is_err());
    }

    #[test]
    fn every_field_is_validated() {
        type Change = Box<dyn Fn(&mut BuildRequest)>;
        let cases: Vec<(Change, &str)> = vec![
            (
                Box::new(|r| r.deployment = "../x".into()),
                "invalid_deployment",
            ),
            (
                Box::new(|r| r.static_dir = Some("../../etc/passwd".into())),
                "invalid_dir",
            ),
            (Box::new(|r| r.static_dir = Some("".into())), "invalid_dir"),
            (
                Box::new(|r| r.backend_dir = Some("/abs".into())),
                "invalid_dir",
            ),
            (
                Box::new(|r| r.build[0].cwd = "a/../b".into()),
                "invalid_dir",
            ),
            (
                Box::new(|r| r.install[0].command = " ".into()),
                "invalid_step",
            ),
            (
                Box::new(|r| r.build[0].command = "a\0b".into()),
                "invalid_step",
            ),
            (
                Box::new(|r| r.build = vec![r.build[0].clone(); 9]),
                "invalid_step",
            ),
            (Box::new(|r| r.timeout_s = Some(0)), "invalid_timeout"),
            (Box::new(|r| r.timeout_s = Some(901)), "invalid_timeout"),
        ];
        for (change, code) in cases {
            let mut r = req();
            change(&mut r);
            let e = r.validate().unwrap_err();
            assert_eq!(e.code(), code, "{e}");
        }
        let e = {
            let mut r = req();
            r.static_dir = Some("../../etc/passwd".into());
            r.validate().unwrap_err().to_string()
        };
        assert!(
            e.contains("static_dir") && e.contains("parent_segment"),
            "{e}"
        );
    }

    #[test]
    fn events_have_their_wire_shape() {
        let e = BuildEvent::Phase {
            phase: Phase::Materialize,
        };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"type": "phase", "phase": "materialize"})
        );
        let e = BuildEvent::Error(BuildError {
            phase: Phase::Build,
            code: "step_failed".into(),
            message: "m".into(),
            exit_code: Some(2),
            last_lines: vec!["boom".into()],
        });
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            json!({"type": "error", "phase": "build", "code": "step_failed", "message": "m",
                   "exit_code": 2, "last_lines": ["boom"]})
        );
        assert_eq!(serde_json::from_value::<BuildEvent>(v).unwrap(), e);
        let b = BuildEvent::Built(Built {
            deployment: "d-a".into(),
            ..Default::default()
        });
        let v = serde_json::to_value(&b).unwrap();
        assert_eq!(v["type"], "built");
        assert_eq!(v["timings"]["upload_ms"], 0);
        assert!(v.get("skipped").is_none());
        assert_eq!(serde_json::from_value::<BuildEvent>(v).unwrap(), b);
    }

    fn small() -> DistLimits {
        DistLimits {
            max_files: 2,
            max_file_bytes: 10,
            max_total_bytes: 15,
        }
    }

    #[test]
    fn the_walk_collects_files_and_skips_symlinks() {
        let mut w = DistWalk::new(small());
        w.add("index.html", 5, EntryKind::File).unwrap();
        w.add("passwd", 0, EntryKind::Symlink).unwrap();
        w.add("fifo", 0, EntryKind::Other).unwrap();
        w.add("assets/app.js", 10, EntryKind::File).unwrap();
        let (files, skipped, more) = w.finish();
        assert_eq!(more, 0);
        assert_eq!(
            files.into_iter().collect::<Vec<_>>(),
            [
                ("assets/app.js".to_string(), 10),
                ("index.html".to_string(), 5)
            ]
        );
        let s: Vec<(&str, &str)> = skipped
            .iter()
            .map(|s| (s.path.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(s, [("fifo", "not_regular_file"), ("passwd", "symlink")]);
    }

    #[test]
    fn each_limit_is_named_with_what_was_found() {
        let mut w = DistWalk::new(small());
        w.add("a", 1, EntryKind::File).unwrap();
        w.add("b", 1, EntryKind::File).unwrap();
        let e = w.add("c", 1, EntryKind::File).unwrap_err();
        assert_eq!(e, DistError::TooManyFiles { limit: 2, found: 3 });
        assert!(e.to_string().contains("more than 2 files"), "{e}");

        let e = DistWalk::new(small())
            .add("big.bin", 11, EntryKind::File)
            .unwrap_err();
        assert_eq!(e.code(), "file_too_large");
        assert!(
            e.to_string().contains("big.bin is 11 bytes") && e.to_string().contains("at most 10")
        );

        let mut w = DistWalk::new(small());
        w.add("a", 10, EntryKind::File).unwrap();
        let e = w.add("b", 6, EntryKind::File).unwrap_err();
        assert_eq!(
            e,
            DistError::TooManyBytes {
                limit: 15,
                found: 16
            }
        );

        let e = DistWalk::new(small())
            .add(".git/config", 1, EntryKind::File)
            .unwrap_err();
        assert_eq!(e.code(), "invalid_path");
        // Folders and skipped entries count as entries, twice the file limit at most.
        let mut w = DistWalk::new(small());
        w.dir("d").unwrap();
        for i in 0..3 {
            w.add(&format!("d/l{i}"), 0, EntryKind::Symlink).unwrap();
        }
        let e = w.add("d/l3", 0, EntryKind::Symlink).unwrap_err();
        assert_eq!(e, DistError::TooManyEntries { limit: 4, found: 5 });
        assert!(e.to_string().contains("more than 4 entries"), "{e}");
        let e = DistWalk::new(small()).dir(".git").unwrap_err();
        assert_eq!(e.code(), "invalid_path");
        // Only the first skipped entries are listed.
        let mut w = DistWalk::new(DistLimits::default());
        for i in 0..SKIPPED_LIST_LIMIT + 5 {
            w.add(&format!("l{i:04}"), 0, EntryKind::Symlink).unwrap();
        }
        let (_, skipped, more) = w.finish();
        assert_eq!((skipped.len(), more), (SKIPPED_LIST_LIMIT, 5));
    }

    #[test]
    fn production_limits_are_the_default() {
        let d = DistLimits::default();
        assert_eq!(d.max_files, 10_000);
        assert_eq!(d.max_file_bytes, 25 * 1024 * 1024);
        assert_eq!(d.max_total_bytes, 256 * 1024 * 1024);
    }

    #[test]
    fn the_static_manifest_counts_distinct_objects() {
        let (m, files, bytes, total) = static_manifest(vec![
            ("a.js".into(), "1".repeat(64), 3),
            ("b.js".into(), "1".repeat(64), 3),
            ("c.css".into(), "2".repeat(64), 4),
        ]);
        assert_eq!((files, bytes, total), (3, 10, 2));
        assert_eq!(m.files["c.css"].size, 4);
    }

    #[test]
    fn pruning_keeps_the_newest_and_the_live_ones() {
        let dirs: Vec<(String, u128)> =
            [("d-1", 1), ("d-2", 2), ("d-3", 3), ("d-4", 4), ("d-5", 5)]
                .iter()
                .map(|(n, t)| (n.to_string(), *t))
                .chain([("d-9.sync".to_string(), 0), ("keep".to_string(), 0)])
                .collect();
        assert_eq!(prune(&dirs, 3, &[]), ["d-2", "d-1"]);
        assert_eq!(prune(&dirs, 3, &["d-1".into()]), ["d-2"]);
        assert!(prune(&dirs, 5, &[]).is_empty());
        assert_eq!(parse_keep("d-1\n\n ../x \nd-2 \n"), ["d-1", "d-2"]);
    }
}
