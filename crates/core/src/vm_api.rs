//! The Worker ↔ VM API wire format: the serde types of every request body, query and reply
//! the Worker sends to or reads from the VM API (`docs/protocol.md`, "Worker → VM API").
//!
//! The VM API (`vm-api/`) builds its replies and parses its requests with these types, and the
//! Worker (`src/vm.rs`) can do the same, so the two sides cannot drift apart silently. Fields
//! that today's JSON omits when empty are `skip_serializing_if`; fields a reader may find absent
//! are `default`. Request bodies refuse unknown fields (the VM API answers `400 invalid_json`);
//! replies and queries accept them (queries carry the signing nonce `or_nonce`).
//!
//! | endpoint | request | reply |
//! |---|---|---|
//! | `GET /health` | – | [`VmHealth`] |
//! | `POST /projects/{id}/exec` | [`ExecRequest`] ([`ExecCache`]) | NDJSON of [`ExecEvent`] ([`ExecExit`] last) |
//! | `POST /projects/{id}/sync` | [`SyncRequest`] ([`BlobHint`]) | [`SyncReport`] |
//! | `GET /projects/{id}/files` | – | [`FilesReply`] ([`DiskFile`]) |
//! | `POST /projects/{id}/processes` | [`StartProcessRequest`] | `201` [`ProcessInfo`] |
//! | `GET /projects/{id}/processes` | – | [`ProcessList`] |
//! | `DELETE …/processes/{name}`, `POST …/restart` | – | [`ProcessInfo`] |
//! | `GET …/processes/{name}/ready` | [`ReadyQuery`] | [`ReadyReply`] |
//! | `GET …/processes/{name}/logs` | [`LogsQuery`] | [`LogsReply`], or with `follow` NDJSON of [`LogFollowEvent`] |
//! | `GET /projects/{id}/browser-reports` | [`BrowserReportsQuery`] | [`BrowserReportsReply`] ([`BrowserReportEntry`]) |
//! | `POST /projects/{id}/changes` | – | [`Changes`] |
//! | `POST /projects/{id}/search` | [`SearchRequest`] | [`SearchReply`] ([`SearchMatch`]) |
//! | `POST /projects/{id}/preview-check` | [`PreviewCheckRequest`] | [`PreviewCheckReply`] ([`PageProblem`]) |
//! | every error | – | [`ErrorBody`] ([`ErrorDetail`]) |
//!
//! The exec reply may also carry one `changes` line ([`ExecEvent::Changes`]) right before `exit`.

use crate::agent::verify::BrowserReport;
use crate::azure::url::encode_query_value;
use crate::manifest::Manifest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One value as an NDJSON line (the JSON text and a `\n`), as the streamed replies carry them.
pub fn ndjson_line<T: Serialize>(value: &T) -> String {
    let mut s = serde_json::to_string(value).unwrap_or_default();
    s.push('\n');
    s
}

/// `k1=v1&k2=v2` of the pairs whose value is set, values percent-encoded.
fn query_string(pairs: &[(&str, Option<String>)]) -> String {
    pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode_query_value(v))))
        .collect::<Vec<_>>()
        .join("&")
}

/// `POST /projects/{id}/objects/copy`: copies objects of project `from` into this project's
/// objects (a fork), each checked against its name and written create-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyObjectsRequest {
    pub from: String,
    pub sha256: Vec<String>,
}

/// Most objects one copy request may name.
pub const MAX_COPY_OBJECTS: usize = 50_000;

impl CopyObjectsRequest {
    /// A valid source id other than `to`, at most [`MAX_COPY_OBJECTS`] lowercase sha256 names.
    pub fn validate(&self, to: &str) -> Result<(), String> {
        crate::ids::validate_project_id(&self.from)?;
        if self.from == to {
            return Err("a project cannot copy objects from itself".into());
        }
        if self.sha256.len() > MAX_COPY_OBJECTS {
            return Err(format!(
                "{} objects in one copy; at most {MAX_COPY_OBJECTS}",
                self.sha256.len()
            ));
        }
        match self.sha256.iter().find(|s| {
            s.len() != 64
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }) {
            Some(bad) => Err(format!("{bad:?} is not a sha256 object name")),
            None => Ok(()),
        }
    }
}

/// What a copy did: objects written now, and those the project had already.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyObjectsReply {
    pub copied: usize,
    pub existed: usize,
}

/// `DELETE /projects/{id}`: the project is gone from the VM host and from storage. Running it
/// again for a project already removed succeeds with zeros.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveReply {
    /// Dev servers stopped.
    pub dev_servers: usize,
    /// Published backends (live or candidates) stopped.
    pub backends: usize,
    /// Folders of the project removed from the host (working copy, home, sync state, git
    /// history, builds, the published app's data).
    pub folders: usize,
    /// Blobs removed from storage (`meta.json` first).
    pub blobs: usize,
}

// ---------------------------------------------------------------------------------------------
// GET /health

/// `GET /health` (no auth).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmHealth {
    pub ok: bool,
    pub service: String,
    pub version: String,
}

/// `GET /projects/{id}/host-status`: what of a project runs on the VM host now (reading it
/// does not count as using the project, so it can watch the idle reaper).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStatus {
    /// Names of the dev servers running.
    pub running_processes: Vec<String>,
    /// Whether the project has a network namespace (and its NAT helper) now.
    pub network: bool,
    /// Processes in the project's sandbox cgroup, when the sandbox keeps one.
    pub sandbox_pids: Option<usize>,
    /// Terminal sessions open.
    pub terminals: usize,
    /// Milliseconds since the project was last used (0 while a preview socket is open);
    /// absent when it has not been used since the service started or was last reaped.
    pub idle_ms: Option<u64>,
}

// ---------------------------------------------------------------------------------------------
// Errors

/// Every error reply: `{"error": {"code": "<stable_code>", "message": "<human text>"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`unauthorized`, `invalid_cwd`, `too_many_commands`, ...).
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// POST /projects/{id}/exec

/// The body of `POST /projects/{id}/exec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// Runs with `sh -c` in the sandbox.
    pub command: String,
    /// Project-relative directory; `""` is the project root.
    #[serde(default)]
    pub cwd: String,
    /// 1–600; the VM API's default (60) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u64>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Share the install this command makes with other projects (the dependency cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<ExecCache>,
    /// Scan the working copy for the command's changes and save them (the `changes` line);
    /// absent means `true`. `false` for commands whose traces must never be saved (probes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<bool>,
}

impl ExecRequest {
    /// `command` in `cwd` with a timeout, the sandbox's environment, no shared install, and
    /// its changes scanned (the VM API's default).
    pub fn new(command: impl Into<String>, cwd: impl Into<String>, timeout_s: u64) -> Self {
        ExecRequest {
            command: command.into(),
            cwd: cwd.into(),
            timeout_s: Some(timeout_s),
            env: BTreeMap::new(),
            cache: None,
            scan: None,
        }
    }

    /// The same command, never scanned: its traces must not become part of the project.
    pub fn unscanned(mut self) -> Self {
        self.scan = Some(false);
        self
    }
}

/// The `cache` field of an exec: the files that decide an install, and what it produces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecCache {
    /// Project-relative files that decide what gets installed (`frontend/package.json`, ...).
    pub inputs: Vec<String>,
    /// What the command produces, relative to `cwd`, one path component each
    /// (`node_modules`, `.venv`).
    pub outputs: Vec<String>,
}

/// One line of the exec reply (`application/x-ndjson`), in order of arrival; `exit` is last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExecEvent {
    /// Output of the command (or one of the VM API's own notes, such as the dependency cache's
    /// lines and `[vm-api] still running (N s)`).
    Stdout {
        data: String,
    },
    Stderr {
        data: String,
    },
    /// What the command changed in the working copy, saved to blob storage, right before
    /// `exit`; sent only when something was added, modified or deleted, the skipped paths
    /// differ from the last report, or saving failed (no line: nothing changed).
    Changes(Changes),
    /// How the command ended.
    Exit(ExecExit),
}

/// The last event of an exec stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecExit {
    /// `null` when the command was killed (timeout, disconnect, shutdown).
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
    pub timed_out: bool,
    /// Output beyond the cap was dropped.
    pub truncated: bool,
}

// ---------------------------------------------------------------------------------------------
// POST /projects/{id}/sync, GET /projects/{id}/files

/// The body of `POST /projects/{id}/sync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    pub manifest: Manifest,
    /// Where objects come from. Only the VM API's configured store is used; `container`,
    /// when given, must name the configured container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<BlobHint>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobHint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// What a sync changed in the working copy.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    pub added: Vec<String>,
    pub modified: Vec<String>,
    pub deleted: Vec<String>,
    /// Objects read from blob storage (the rest were on disk already).
    pub fetched_objects: u64,
    pub unchanged: u64,
    /// Paths the working copy had that storage did not (made on the VM, never saved by a change
    /// scan, not ignored) and that the sync removed or overwrote because the manifest needed
    /// the path: a file or symlink where it has a directory, a directory where it has a file.
    /// At most 100 are listed; absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub displaced: Vec<String>,
    /// Displaced paths beyond those listed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub displaced_more: u64,
}

/// `GET /projects/{id}/files`: every regular file on disk (symlinks skipped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesReply {
    pub files: Vec<DiskFile>,
    /// More files exist than the VM API lists.
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskFile {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

// ---------------------------------------------------------------------------------------------
// Managed processes: /projects/{id}/processes...

/// The body of `POST /projects/{id}/processes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartProcessRequest {
    /// 1–64 of `a-z 0-9 - _`.
    pub name: String,
    pub command: String,
    #[serde(default)]
    pub cwd: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The port the process should listen on (given to it as `PORT`); a free one if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessStatus {
    Running,
    /// Ended on its own (crashed or finished): not asked to stop.
    Exited,
    /// Ended because it was asked to (stop, restart, shutdown).
    Stopped,
}

/// A managed process: the reply of start, stop and restart, and the items of the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub name: String,
    pub command: String,
    pub cwd: String,
    /// `null` when not running.
    pub pid: Option<u32>,
    pub port: u16,
    pub status: ProcessStatus,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// Milliseconds since the Unix epoch of the current (or last) run's start.
    pub started_at: u64,
    pub restarts: u32,
    /// The last 20 log lines; present only when the process is not running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_lines: Option<Vec<String>>,
}

/// `GET /projects/{id}/processes`, in start order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessList {
    pub processes: Vec<ProcessInfo>,
}

/// The query of `GET …/processes/{name}/ready`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyQuery {
    /// How long to wait (default 15 s, at most 120 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl ReadyQuery {
    /// The query string, without `?`.
    pub fn to_query(&self) -> String {
        query_string(&[("timeout_ms", self.timeout_ms.map(|v| v.to_string()))])
    }
}

/// `GET …/processes/{name}/ready`: whether the process accepts connections on its port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyReply {
    pub ready: bool,
    pub process: ProcessInfo,
}

/// The query of `GET …/processes/{name}/logs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsQuery {
    /// Lines from the end of the ring (default 100, at most 2000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<u64>,
    /// `1`, `true` or `yes`: stream NDJSON ([`LogFollowEvent`]) instead of one reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow: Option<String>,
}

impl LogsQuery {
    /// The query string, without `?`.
    pub fn to_query(&self) -> String {
        query_string(&[
            ("tail", self.tail.map(|v| v.to_string())),
            ("follow", self.follow.clone()),
        ])
    }
}

/// Which stream a log line came from; `system` is the VM API's own note (`[process exited …]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
    System,
}

/// One line of a managed process's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub seq: u64,
    pub stream: LogStream,
    pub line: String,
    pub ts_ms: u64,
}

/// `GET …/processes/{name}/logs?tail=N`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsReply {
    pub name: String,
    pub status: ProcessStatus,
    pub exit_code: Option<i32>,
    pub lines: Vec<LogLine>,
}

impl LogsReply {
    /// The log as the model reads it: a header with the process's status and port, then the
    /// lines, stderr and the VM API's own notes marked.
    pub fn render(&self, port: Option<u16>) -> String {
        let status = match (self.status, self.exit_code) {
            (ProcessStatus::Running, _) => "running".to_string(),
            (ProcessStatus::Exited, Some(c)) => format!("exited with code {c}"),
            (ProcessStatus::Exited, None) => "exited (killed by a signal)".to_string(),
            (ProcessStatus::Stopped, _) => "stopped".to_string(),
        };
        let port = port.map(|p| format!(", port {p}")).unwrap_or_default();
        let mut out = format!(
            "== {}: {status}{port}, last {} line(s) ==",
            self.name,
            self.lines.len()
        );
        for l in &self.lines {
            let mark = match l.stream {
                LogStream::Stdout => "",
                LogStream::Stderr => "[stderr] ",
                LogStream::System => "[vm] ",
            };
            out.push_str(&format!("\n{mark}{}", l.line));
        }
        out
    }
}

/// One line of `GET …/logs?follow=1` (NDJSON): the tail, then live lines, then `exit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LogFollowEvent {
    Log(LogLine),
    /// The reader fell behind and `skipped` lines were lost.
    Lagged {
        skipped: u64,
    },
    /// The process ended (a restart's end is not reported).
    Exit {
        status: ProcessStatus,
        exit_code: Option<i32>,
        signal: Option<i32>,
    },
}

// ---------------------------------------------------------------------------------------------
// GET /projects/{id}/browser-reports

/// The query of `GET /projects/{id}/browser-reports`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrowserReportsQuery {
    /// Reports with `seq ≥ since_seq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_seq: Option<u64>,
    /// Wait (≤ 15 s) until a page load at or after `since_seq` is reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
    /// Give up early when no browser asked for a page within this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_ms: Option<u64>,
}

impl BrowserReportsQuery {
    /// The query string, without `?`.
    pub fn to_query(&self) -> String {
        query_string(&[
            ("since_seq", self.since_seq.map(|v| v.to_string())),
            ("wait_ms", self.wait_ms.map(|v| v.to_string())),
            ("grace_ms", self.grace_ms.map(|v| v.to_string())),
        ])
    }
}

/// One error report of the preview page as the VM API keeps it: the page's report
/// ([`BrowserReport`]'s fields) plus its number and arrival time. `source` and `stack` are
/// left out when empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrowserReportEntry {
    pub seq: u64,
    pub ts_ms: u64,
    pub kind: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    #[serde(default)]
    pub line: u32,
    #[serde(default)]
    pub column: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stack: String,
    #[serde(default)]
    pub url: String,
}

impl From<BrowserReportEntry> for BrowserReport {
    fn from(e: BrowserReportEntry) -> Self {
        BrowserReport {
            kind: e.kind,
            message: e.message,
            source: e.source,
            line: e.line,
            column: e.column,
            stack: e.stack,
            url: e.url,
        }
    }
}

/// `GET /projects/{id}/browser-reports`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrowserReportsReply {
    /// The error reports with `seq ≥ since_seq` (page loads are only counted).
    pub reports: Vec<BrowserReportEntry>,
    /// Page loads among them.
    pub loads: u64,
    pub next_seq: u64,
    /// `false`: no browser asked the proxy for a page (nobody has the preview open).
    pub followed: bool,
    /// How long ago the last page load was reported; `null` when never.
    #[serde(default)]
    pub last_load_age_ms: Option<u64>,
}

impl BrowserReportsReply {
    /// The reports as `agent::verify::browser_failure` reads them.
    pub fn browser_reports(&self) -> Vec<BrowserReport> {
        self.reports.iter().cloned().map(Into::into).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// POST /projects/{id}/search

/// The body of `POST /projects/{id}/search`: a regex over the working copy's text files, with
/// the project's `.gitignore` applied and `.git` skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// A regular expression (Rust `regex` syntax), matched against each line.
    pub pattern: String,
    /// A directory or file relative to the project root; absent searches the whole project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Only files whose path matches this glob, e.g. `*.tsx` or `src/**/*.py`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glob: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_case: bool,
    /// Matches returned at most (the VM API's cap applies too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_matches: Option<u32>,
}

/// One matching line; `text` is cut at the VM API's per-line cap (ending in `…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchMatch {
    pub path: String,
    /// 1-based.
    pub line: u64,
    pub text: String,
}

/// Why a search stopped before it had looked everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchStop {
    MaxMatches,
    MaxFiles,
    Time,
}

/// `POST /projects/{id}/search`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchReply {
    /// In path order, then line order.
    pub matches: Vec<SearchMatch>,
    pub files_scanned: u64,
    /// Files skipped as binary (a NUL byte) or larger than the cap.
    #[serde(default)]
    pub files_skipped: u64,
    /// Set when a bound stopped the search early.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<SearchStop>,
}

impl SearchReply {
    /// The reply as the model reads it: `path:line: text` per match, then what was left out.
    pub fn render(&self, pattern: &str) -> String {
        let mut out: Vec<String> = self
            .matches
            .iter()
            .map(|m| format!("{}:{}: {}", m.path, m.line, m.text))
            .collect();
        if out.is_empty() {
            out.push(format!(
                "no matches for {pattern:?} in {} file(s)",
                self.files_scanned
            ));
        }
        let mut note = match self.stopped {
            Some(SearchStop::MaxMatches) => format!(
                "[stopped at {} matches: narrow the pattern, or give `path` or `glob`]",
                self.matches.len()
            ),
            Some(SearchStop::MaxFiles) => format!(
                "[stopped after {} files: give `path` or `glob` to search the rest]",
                self.files_scanned
            ),
            Some(SearchStop::Time) => format!(
                "[stopped at the time limit after {} files: give `path` or `glob` to search the rest]",
                self.files_scanned
            ),
            None => String::new(),
        };
        if self.files_skipped > 0 {
            if !note.is_empty() {
                note.push(' ');
            }
            note.push_str(&format!(
                "[{} binary or very large file(s) not searched]",
                self.files_skipped
            ));
        }
        if !note.is_empty() {
            out.push(note);
        }
        out.join("\n")
    }
}

// ---------------------------------------------------------------------------------------------
// POST /projects/{id}/preview-check

/// The body of `POST /projects/{id}/preview-check`: load a page of the running preview in the
/// VM host's headless browser and report what went wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewCheckRequest {
    /// The page, from `/` (a query may follow); absent is `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// One thing that went wrong on the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageProblem {
    /// `exception` (uncaught error or rejection), `console` (`console.error`), `http` (a
    /// response with status ≥ 400), `request_failed` (no response), `log` (the browser's own
    /// error log).
    pub kind: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
}

/// `POST /projects/{id}/preview-check`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewCheckReply {
    /// The page loaded (its address without credentials).
    pub url: String,
    /// The page's HTTP status; absent when no response came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The page's `load` event fired.
    pub loaded: bool,
    /// Why navigation failed (e.g. `net::ERR_CONNECTION_REFUSED`), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub navigation_error: Option<String>,
    pub problems: Vec<PageProblem>,
    /// Requests to other origins, not made: the check loads only the preview.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked: Vec<String>,
}

impl PreviewCheckReply {
    /// The reply as the model reads it.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let status = self
            .status
            .map(|s| format!("HTTP {s}"))
            .unwrap_or_else(|| "no response".into());
        let load = if self.loaded {
            "the page loaded"
        } else {
            "the page did not finish loading"
        };
        out.push(format!("{} → {status}, {load}", self.url));
        if let Some(e) = &self.navigation_error {
            out.push(format!("navigation failed: {e}"));
        }
        if self.problems.is_empty() {
            out.push("no errors: no uncaught exceptions, console errors or failed requests".into());
        } else {
            out.push(format!("{} problem(s):", self.problems.len()));
            for p in &self.problems {
                if p.url.is_empty() {
                    out.push(format!("- [{}] {}", p.kind, p.message));
                } else {
                    out.push(format!("- [{}] {} ({})", p.kind, p.message, p.url));
                }
            }
        }
        if !self.blocked.is_empty() {
            out.push(format!(
                "not checked (other origins are not loaded by the check): {}",
                self.blocked.join(", ")
            ));
        }
        out.join("\n")
    }
}

// ---------------------------------------------------------------------------------------------
// Changes made on the VM: POST /projects/{id}/changes, and the `changes` line of an exec

/// A file a scan found added or modified; its content is object `sha256` in blob storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedFile {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// A path in the working copy that is not saved, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedFile {
    /// Project-relative; a name that is not UTF-8 is shown lossily (U+FFFD).
    pub path: String,
    /// Stable code: `symlink`, `not_regular_file`, `file_too_large`, `too_many_files`,
    /// `invalid_utf8`, or the rule of core's path validation (`control_char`, `too_long`, ...).
    pub reason: String,
    /// For a person.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// What one scan cost.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanStats {
    /// Regular files the walk saw (ignored trees are never walked).
    pub walked: u64,
    /// Files read and hashed (those whose size, mtime or inode changed).
    pub hashed: u64,
    /// Objects uploaded to blob storage (new ones; existing ones count as done).
    pub uploaded: u64,
    pub duration_ms: u64,
}

/// What changed in the working copy since the manifest the VM last synced (or last reported).
///
/// `base` and `manifest` are [`manifest_digest`]s: the Worker applies the changes to the
/// manifest it knows ([`Changes::apply`]) and may check the result against `manifest`. A
/// skipped path never changes the manifest (a known file that became a symlink keeps its
/// stored version).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    pub added: Vec<ChangedFile>,
    pub modified: Vec<ChangedFile>,
    pub deleted: Vec<String>,
    #[serde(default)]
    pub skipped: Vec<SkippedFile>,
    /// Skipped paths beyond those listed (the list is capped).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped_more: u64,
    /// Digest of the manifest these changes apply to.
    pub base: String,
    /// Digest of `base` with the changes applied.
    pub manifest: String,
    /// Set when the objects could not be saved: nothing was recorded on the VM, and the same
    /// changes are reported again by the next scan. Absent means saved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub stats: ScanStats,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Changes {
    /// One line per kind, for the model and for people: what the command changed and what was
    /// not saved (empty when nothing happened).
    pub fn summary(&self) -> String {
        fn list<'a>(ps: impl Iterator<Item = &'a str>) -> String {
            const SHOWN: usize = 20;
            let ps: Vec<&str> = ps.collect();
            let mut s = ps
                .iter()
                .take(SHOWN)
                .copied()
                .collect::<Vec<_>>()
                .join(", ");
            if ps.len() > SHOWN {
                s.push_str(&format!(" and {} more", ps.len() - SHOWN));
            }
            s
        }
        let mut lines = Vec::new();
        if !self.added.is_empty() {
            lines.push(format!(
                "added: {}",
                list(self.added.iter().map(|f| f.path.as_str()))
            ));
        }
        if !self.modified.is_empty() {
            lines.push(format!(
                "modified: {}",
                list(self.modified.iter().map(|f| f.path.as_str()))
            ));
        }
        if !self.deleted.is_empty() {
            lines.push(format!(
                "deleted: {}",
                list(self.deleted.iter().map(String::as_str))
            ));
        }
        if !self.skipped.is_empty() {
            let more = if self.skipped_more > 0 {
                format!(" and {} more", self.skipped_more)
            } else {
                String::new()
            };
            lines.push(format!(
                "not saved: {}{more}",
                self.skipped
                    .iter()
                    .map(|f| format!("{} ({})", f.path, f.reason))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if let Some(e) = &self.error {
            lines.push(format!(
                "the changes could not be saved yet ({e}); they are saved after the next command"
            ));
        }
        lines.join("\n")
    }

    /// No file was added, modified or deleted.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.deleted.is_empty()
    }

    /// `base` with these changes applied.
    pub fn apply(&self, base: &Manifest) -> Manifest {
        let mut m = base.clone();
        for f in self.added.iter().chain(&self.modified) {
            m.files.insert(
                f.path.clone(),
                crate::manifest::FileEntry {
                    sha256: f.sha256.clone(),
                    size: f.size,
                },
            );
        }
        for p in &self.deleted {
            m.files.remove(p);
        }
        m
    }
}

/// The lower-case hex SHA-256 of a manifest's JSON (its paths sorted, so the same files always
/// give the same digest).
pub fn manifest_digest(m: &Manifest) -> String {
    crate::vm_auth::sha256_hex(&serde_json::to_vec(m).unwrap_or_default())
}

/// Longest name of a terminal session (`GET /projects/{id}/pty?session=NAME`).
pub const PTY_SESSION_MAX_LEN: usize = 32;
/// Largest terminal size the VM API accepts; larger sizes are clamped to it.
pub const PTY_MAX_COLS: u16 = 1000;
pub const PTY_MAX_ROWS: u16 = 500;

/// A terminal session name: 1-32 of `a-z`, `0-9` and `-`.
pub fn valid_pty_session(name: &str) -> bool {
    (1..=PTY_SESSION_MAX_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A text frame a client sends on the terminal WebSocket (binary frames are keystrokes).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PtyControl {
    /// The terminal's new size in character cells (0 or beyond the maxima: an `error` frame).
    Resize { cols: u16, rows: u16 },
    /// Keep-alive; answered with `pong`.
    Ping,
}

/// A text frame the VM API sends on the terminal WebSocket (binary frames are output).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PtyEvent {
    /// First frame after attaching; `replayed_bytes` of scrollback follow as binary frames.
    Hello {
        session: String,
        cols: u16,
        rows: u16,
        replayed_bytes: u64,
    },
    /// The shell ended; the socket closes after this frame.
    Exit {
        exit_code: Option<i32>,
        signal: Option<i32>,
    },
    /// Files of the working copy changed (not ignored by `.gitignore`): call
    /// `POST /projects/{id}/changes` to save them.
    Changed {},
    /// This client fell behind the output and `skipped_bytes` of it were not sent to it.
    Skipped { skipped_bytes: u64 },
    /// The answer to `ping`.
    Pong {},
    /// A control frame was refused, or the session cannot go on.
    Error { message: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// `text` parses as `T`, and `T` serializes back to the same JSON value.
    fn round_trip<T>(text: &str) -> T
    where
        T: Serialize + serde::de::DeserializeOwned + std::fmt::Debug + PartialEq,
    {
        let typed: T = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let want: Value = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_value(&typed).unwrap(), want, "{text}");
        let again: T = serde_json::from_value(want).unwrap();
        assert_eq!(again, typed);
        typed
    }

    // The literals below are what the VM API answered before these types existed (its `json!`
    // replies, keys in serde_json's sorted order), so a renamed or dropped field fails here.

    #[test]
    fn copy_requests_name_another_project_and_real_object_names() {
        let sha = "a".repeat(64);
        let q: CopyObjectsRequest =
            round_trip(&format!(r#"{{"from":"shop-1","sha256":["{sha}"]}}"#));
        assert_eq!(q.validate("fork-2"), Ok(()));
        assert!(q.validate("shop-1").unwrap_err().contains("itself"));
        let bad = |from: &str, s: &str| CopyObjectsRequest {
            from: from.into(),
            sha256: vec![s.into()],
        };
        assert!(bad("../x", &sha).validate("fork-2").is_err());
        assert!(bad("shop-1", "../../etc/passwd")
            .validate("fork-2")
            .is_err());
        assert!(bad("shop-1", &"A".repeat(64)).validate("fork-2").is_err());
        assert!(
            serde_json::from_str::<CopyObjectsRequest>(r#"{"from":"a","sha256":[],"x":1}"#)
                .is_err()
        );
        let r: CopyObjectsReply = round_trip(r#"{"copied":3,"existed":1}"#);
        assert_eq!(r.copied, 3);
    }

    #[test]
    fn remove_reply_round_trip() {
        let r: RemoveReply =
            round_trip(r#"{"dev_servers":2,"backends":1,"folders":6,"blobs":140}"#);
        assert_eq!(r.blobs, 140);
    }

    #[test]
    fn search_round_trip_and_render() {
        let q: SearchRequest = round_trip(
            r#"{"pattern":"use(State|Effect)","path":"src","glob":"*.tsx","ignore_case":true,"max_matches":20}"#,
        );
        assert!(q.ignore_case);
        let q: SearchRequest = round_trip(r#"{"pattern":"x"}"#);
        assert_eq!((q.path, q.glob, q.ignore_case), (None, None, false));
        assert!(serde_json::from_str::<SearchRequest>(r#"{"pattern":"x","regex":true}"#).is_err());
        let r: SearchReply = round_trip(
            r#"{"matches":[{"path":"src/App.tsx","line":3,"text":"const [n, setN] = useState(0)"}],"files_scanned":12,"files_skipped":1,"stopped":"max_matches"}"#,
        );
        assert_eq!(
            r.render("useState"),
            "src/App.tsx:3: const [n, setN] = useState(0)\n[stopped at 1 matches: narrow the \
             pattern, or give `path` or `glob`] [1 binary or very large file(s) not searched]"
        );
        let none: SearchReply = round_trip(r#"{"matches":[],"files_scanned":4,"files_skipped":0}"#);
        assert_eq!(none.render("zz"), "no matches for \"zz\" in 4 file(s)");
        let timed = SearchReply {
            files_scanned: 9,
            stopped: Some(SearchStop::Time),
            ..Default::default()
        };
        assert!(timed.render("a").contains("time limit after 9 files"));
    }

    #[test]
    fn preview_check_round_trip_and_render() {
        let q: PreviewCheckRequest = round_trip(r#"{"path":"/items?x=1"}"#);
        assert_eq!(q.path.as_deref(), Some("/items?x=1"));
        let _: PreviewCheckRequest = round_trip("{}");
        assert!(serde_json::from_str::<PreviewCheckRequest>(r#"{"url":"http://x/"}"#).is_err());
        let r: PreviewCheckReply = round_trip(
            r#"{"url":"http://p1.preview.localhost:8001/","status":200,"loaded":true,"problems":[{"kind":"exception","message":"Error: boom"},{"kind":"http","message":"HTTP 500","url":"http://p1.preview.localhost:8001/api/items"}],"blocked":["https://fonts.example/a.css"]}"#,
        );
        assert_eq!(
            r.render(),
            "http://p1.preview.localhost:8001/ → HTTP 200, the page loaded\n2 problem(s):\n\
             - [exception] Error: boom\n- [http] HTTP 500 (http://p1.preview.localhost:8001/api/items)\n\
             not checked (other origins are not loaded by the check): https://fonts.example/a.css"
        );
        let bad: PreviewCheckReply = round_trip(
            r#"{"url":"http://p1.preview.localhost:8001/","loaded":false,"navigation_error":"net::ERR_EMPTY_RESPONSE","problems":[]}"#,
        );
        assert_eq!(
            bad.render(),
            "http://p1.preview.localhost:8001/ → no response, the page did not finish loading\n\
             navigation failed: net::ERR_EMPTY_RESPONSE\nno errors: no uncaught exceptions, console \
             errors or failed requests"
        );
    }

    #[test]
    fn logs_render_for_the_model() {
        let line = |seq, stream, text: &str| LogLine {
            seq,
            stream,
            line: text.into(),
            ts_ms: 0,
        };
        let r = LogsReply {
            name: "api".into(),
            status: ProcessStatus::Exited,
            exit_code: Some(1),
            lines: vec![
                line(0, LogStream::Stdout, "starting"),
                line(1, LogStream::Stderr, "ImportError: no module named x"),
                line(2, LogStream::System, "[process exited with code 1]"),
            ],
        };
        assert_eq!(
            r.render(Some(8000)),
            "== api: exited with code 1, port 8000, last 3 line(s) ==\nstarting\n[stderr] \
             ImportError: no module named x\n[vm] [process exited with code 1]"
        );
        let r = LogsReply {
            status: ProcessStatus::Running,
            lines: vec![],
            ..r
        };
        assert_eq!(r.render(None), "== api: running, last 0 line(s) ==");
    }

    #[test]
    fn health() {
        let h: VmHealth = round_trip(r#"{"ok":true,"service":"vm-api","version":"0.1.0"}"#);
        assert!(h.ok);
    }

    #[test]
    fn error_body() {
        let e: ErrorBody = round_trip(
            r#"{"error":{"code":"too_many_commands","message":"project p already runs 4 commands; wait for one to finish"}}"#,
        );
        assert_eq!(
            e,
            ErrorBody::new("too_many_commands", e.error.message.clone())
        );
    }

    #[test]
    fn exec_request_as_the_worker_sends_it() {
        let r: ExecRequest = round_trip(
            r#"{"command":"npm install","cwd":"frontend","timeout_s":600,"env":{},"cache":{"inputs":["frontend/package.json","frontend/package-lock.json"],"outputs":["node_modules"]}}"#,
        );
        assert_eq!(r.timeout_s, Some(600));
        assert_eq!(r.cache.unwrap().outputs, ["node_modules"]);
        let plain: ExecRequest =
            round_trip(r#"{"command":"npm test","cwd":"","timeout_s":300,"env":{"K":"V"}}"#);
        assert!(plain.cache.is_none());
        assert!(!serde_json::to_string(&plain).unwrap().contains("cache"));
    }

    #[test]
    fn exec_request_defaults_and_refuses_unknown_fields() {
        let r: ExecRequest = serde_json::from_str(r#"{"command":"ls"}"#).unwrap();
        assert_eq!((r.cwd.as_str(), r.timeout_s, r.env.len()), ("", None, 0));
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"command": "ls", "cwd": "", "env": {}})
        );
        assert!(serde_json::from_str::<ExecRequest>(r#"{"command":"ls","shell":"bash"}"#).is_err());
        assert!(serde_json::from_str::<ExecRequest>(
            r#"{"command":"ls","cache":{"inputs":[],"outputs":[],"x":1}}"#
        )
        .is_err());
    }

    #[test]
    fn exec_events() {
        let out: ExecEvent = round_trip(r#"{"data":"hi\n","type":"stdout"}"#);
        assert_eq!(
            out,
            ExecEvent::Stdout {
                data: "hi\n".into()
            }
        );
        let err: ExecEvent = round_trip(r#"{"data":"oops","type":"stderr"}"#);
        assert_eq!(
            err,
            ExecEvent::Stderr {
                data: "oops".into()
            }
        );
        let exit: ExecEvent = round_trip(
            r#"{"duration_ms":1234,"exit_code":7,"timed_out":false,"truncated":false,"type":"exit"}"#,
        );
        assert_eq!(
            exit,
            ExecEvent::Exit(ExecExit {
                exit_code: Some(7),
                duration_ms: 1234,
                timed_out: false,
                truncated: false
            })
        );
        let killed: ExecEvent = round_trip(
            r#"{"duration_ms":2001,"exit_code":null,"timed_out":true,"truncated":true,"type":"exit"}"#,
        );
        assert!(matches!(
            killed,
            ExecEvent::Exit(ExecExit {
                exit_code: None,
                timed_out: true,
                ..
            })
        ));
        assert_eq!(
            ndjson_line(&ExecEvent::Stdout { data: "x".into() }),
            "{\"type\":\"stdout\",\"data\":\"x\"}\n"
        );
        assert!(serde_json::from_str::<ExecEvent>(r#"{"type":"nope"}"#).is_err());
    }

    #[test]
    fn sync_request_and_report() {
        let sha = "a".repeat(64);
        let r: SyncRequest = round_trip(&format!(
            r#"{{"manifest":{{"files":{{"src/App.tsx":{{"sha256":"{sha}","size":123}}}}}}}}"#
        ));
        assert_eq!(r.manifest.files["src/App.tsx"].size, 123);
        assert!(r.blob.is_none());
        let with_blob: SyncRequest =
            round_trip(r#"{"manifest":{"files":{}},"blob":{"container":"codebase-projects"}}"#);
        assert_eq!(
            with_blob.blob.unwrap().container.as_deref(),
            Some("codebase-projects")
        );
        assert!(serde_json::from_str::<SyncRequest>(r#"{"manifest":{"files":{}},"x":1}"#).is_err());
        let report: SyncReport = round_trip(
            r#"{"added":["a.txt"],"modified":["b.txt"],"deleted":[],"fetched_objects":1,"unchanged":3}"#,
        );
        assert_eq!((report.fetched_objects, report.unchanged), (1, 3));
        assert!(report.displaced.is_empty() && report.displaced_more == 0);
        let report: SyncReport = round_trip(
            r#"{"added":["a"],"modified":[],"deleted":[],"fetched_objects":1,"unchanged":0,"displaced":["a/notes.txt"],"displaced_more":2}"#,
        );
        assert_eq!(report.displaced, ["a/notes.txt"]);
        assert_eq!(report.displaced_more, 2);
    }

    #[test]
    fn files_reply() {
        let f: FilesReply = round_trip(&format!(
            r#"{{"files":[{{"path":"a.txt/inner.txt","sha256":"{}","size":1}}],"truncated":false}}"#,
            "b".repeat(64)
        ));
        assert_eq!(f.files[0].size, 1);
    }

    const RUNNING: &str = r#"{"command":"npm run dev","cwd":"","exit_code":null,"name":"web","pid":1234,"port":5173,"restarts":0,"signal":null,"started_at":1764400000000,"status":"running"}"#;
    const EXITED: &str = r#"{"command":"node crash.js","cwd":"backend","exit_code":3,"last_lines":["boom","[process exited with code 3]"],"name":"api","pid":null,"port":45678,"restarts":1,"signal":null,"started_at":1764400000000,"status":"exited"}"#;

    #[test]
    fn process_start_request() {
        let r: StartProcessRequest = round_trip(
            r#"{"name":"web","command":"npm run dev","cwd":"frontend","env":{"VITE_API":"http://127.0.0.1:8000"}}"#,
        );
        assert_eq!(r.port, None);
        let p: StartProcessRequest =
            round_trip(r#"{"name":"web","command":"x","cwd":"","env":{},"port":5173}"#);
        assert_eq!(p.port, Some(5173));
        assert!(serde_json::from_str::<StartProcessRequest>(
            r#"{"name":"a","command":"b","ports":1}"#
        )
        .is_err());
    }

    #[test]
    fn process_info_list_and_ready() {
        let run: ProcessInfo = round_trip(RUNNING);
        assert_eq!(
            (run.status, run.pid, run.last_lines.clone()),
            (ProcessStatus::Running, Some(1234), None)
        );
        assert!(!serde_json::to_string(&run).unwrap().contains("last_lines"));
        let ex: ProcessInfo = round_trip(EXITED);
        assert_eq!(ex.status, ProcessStatus::Exited);
        assert_eq!(ex.last_lines.unwrap()[1], "[process exited with code 3]");
        let stopped: ProcessInfo = round_trip(
            &EXITED
                .replace("\"exited\"", "\"stopped\"")
                .replace("\"exit_code\":3", "\"exit_code\":null")
                .replace("\"signal\":null", "\"signal\":9"),
        );
        assert_eq!(
            (stopped.status, stopped.signal),
            (ProcessStatus::Stopped, Some(9))
        );
        let list: ProcessList = round_trip(&format!(r#"{{"processes":[{RUNNING},{EXITED}]}}"#));
        assert_eq!(list.processes.len(), 2);
        let _: ProcessList = round_trip(r#"{"processes":[]}"#);
        let ready: ReadyReply = round_trip(&format!(r#"{{"process":{RUNNING},"ready":true}}"#));
        assert!(ready.ready && ready.process.port == 5173);
    }

    #[test]
    fn logs_reply_and_follow_events() {
        let r: LogsReply = round_trip(
            r#"{"exit_code":null,"lines":[{"seq":0,"stream":"stdout","line":"listening","ts_ms":1764400000001},{"seq":1,"stream":"stderr","line":"oops","ts_ms":1764400000002},{"seq":2,"stream":"system","line":"[process exited with code 1]","ts_ms":1764400000003}],"name":"web","status":"running"}"#,
        );
        assert_eq!(r.lines[1].stream, LogStream::Stderr);
        assert_eq!(r.lines[2].stream, LogStream::System);
        let log: LogFollowEvent = round_trip(
            r#"{"line":"tick 1","seq":0,"stream":"stdout","ts_ms":1764400000001,"type":"log"}"#,
        );
        assert!(matches!(log, LogFollowEvent::Log(LogLine { seq: 0, .. })));
        let lagged: LogFollowEvent = round_trip(r#"{"skipped":12,"type":"lagged"}"#);
        assert_eq!(lagged, LogFollowEvent::Lagged { skipped: 12 });
        let exit: LogFollowEvent =
            round_trip(r#"{"exit_code":0,"signal":null,"status":"exited","type":"exit"}"#);
        assert_eq!(
            exit,
            LogFollowEvent::Exit {
                status: ProcessStatus::Exited,
                exit_code: Some(0),
                signal: None
            }
        );
    }

    #[test]
    fn queries() {
        assert_eq!(
            ReadyQuery {
                timeout_ms: Some(10_000)
            }
            .to_query(),
            "timeout_ms=10000"
        );
        assert_eq!(
            LogsQuery {
                tail: Some(40),
                follow: None
            }
            .to_query(),
            "tail=40"
        );
        assert_eq!(
            LogsQuery {
                tail: None,
                follow: Some("1".into())
            }
            .to_query(),
            "follow=1"
        );
        let q = BrowserReportsQuery {
            since_seq: Some(3),
            wait_ms: Some(8000),
            grace_ms: Some(2500),
        };
        assert_eq!(q.to_query(), "since_seq=3&wait_ms=8000&grace_ms=2500");
        assert_eq!(BrowserReportsQuery::default().to_query(), "");
        // Queries carry the signing nonce; it must not be refused.
        let parsed: BrowserReportsQuery =
            serde_json::from_value(json!({"since_seq": 3, "or_nonce": "x"})).unwrap();
        assert_eq!(parsed.since_seq, Some(3));
    }

    #[test]
    fn browser_reports_reply() {
        let r: BrowserReportsReply = round_trip(
            r#"{"followed":true,"last_load_age_ms":12,"loads":1,"next_seq":4,"reports":[{"seq":2,"ts_ms":1764400000000,"kind":"error","message":"Uncaught TypeError: x is undefined","source":"http://p.preview.localhost:8788/src/App.tsx","line":12,"column":5,"stack":"TypeError: x is undefined\n    at App (App.tsx:12:5)","url":"/"},{"seq":3,"ts_ms":1764400000001,"kind":"console.error","message":"bad","line":0,"column":0,"url":"/about"}]}"#,
        );
        assert_eq!(r.reports[1].source, "");
        assert!(!serde_json::to_string(&r.reports[1])
            .unwrap()
            .contains("stack"));
        let reports = r.browser_reports();
        assert_eq!(reports[0].kind, "error");
        assert_eq!(reports[0].line, 12);
        assert_eq!(reports[1].url, "/about");
        assert!(crate::agent::verify::browser_failure(&reports).is_some());
        let nobody: BrowserReportsReply = round_trip(
            r#"{"followed":false,"last_load_age_ms":null,"loads":0,"next_seq":0,"reports":[]}"#,
        );
        assert_eq!(nobody.last_load_age_ms, None);
        assert!(!nobody.followed);
    }
}

#[cfg(test)]
mod changes_tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn changes_round_trip_and_apply() {
        let text = r#"{"added":[{"path":"notes.txt","sha256":"98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4","size":3}],"modified":[{"path":"package.json","sha256":"8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4","size":2}],"deleted":["old.txt"],"skipped":[{"path":"link","reason":"symlink","message":"symlinks are not saved"},{"path":"big.bin","reason":"file_too_large"}],"skipped_more":2,"base":"b","manifest":"m","stats":{"walked":4,"hashed":2,"uploaded":2,"duration_ms":1}}"#;
        let c: Changes = serde_json::from_str(text).unwrap();
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
        assert_eq!(c.skipped[1].message, "");
        assert!(!c.is_empty());
        let base = Manifest::of(&[("package.json", b"{}"), ("old.txt", b"x"), ("keep", b"k")]);
        let m = c.apply(&base);
        assert_eq!(
            m,
            Manifest::of(&[
                ("package.json", b"hi"),
                ("notes.txt", b"hi\n"),
                ("keep", b"k")
            ])
        );
        assert_ne!(manifest_digest(&m), manifest_digest(&base));
        assert_eq!(manifest_digest(&m), manifest_digest(&m.clone()));
        // Absent optional fields read as empty; an error survives the trip.
        let minimal: Changes = serde_json::from_value(json!({"added":[],"modified":[],"deleted":[],"base":"b","manifest":"b","error":"blob storage: down"})).unwrap();
        assert!(minimal.is_empty() && minimal.skipped.is_empty());
        assert_eq!(minimal.error.as_deref(), Some("blob storage: down"));
        let again: Changes =
            serde_json::from_value(serde_json::to_value(&minimal).unwrap()).unwrap();
        assert_eq!(again, minimal);
    }

    #[test]
    fn the_changes_line_is_an_exec_event() {
        let line = ndjson_line(&ExecEvent::Changes(Changes::default()));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["type"], "changes");
        assert_eq!(v["added"], json!([]));
        let back: ExecEvent = serde_json::from_str(&line).unwrap();
        assert_eq!(back, ExecEvent::Changes(Changes::default()));
    }

    #[test]
    fn exec_scan_is_absent_unless_set() {
        let mut req = ExecRequest {
            command: "true".into(),
            cwd: String::new(),
            timeout_s: None,
            env: BTreeMap::new(),
            cache: None,
            scan: None,
        };
        let on = serde_json::to_value(&req).unwrap();
        assert!(on.get("scan").is_none());
        req.scan = Some(false);
        let off = serde_json::to_value(&req).unwrap();
        assert_eq!(off["scan"], false);
        let back: ExecRequest = serde_json::from_value(off).unwrap();
        assert_eq!(back, req);
        let bad = serde_json::from_value::<ExecRequest>(json!({"command": "true", "scan": 1}));
        assert!(bad.is_err(), "a non-boolean scan is refused");
    }

    #[test]
    fn a_summary_names_what_changed_and_what_was_not_saved() {
        let file = |p: &str| ChangedFile {
            path: p.into(),
            sha256: "a".repeat(64),
            size: 1,
        };
        let c = Changes {
            added: vec![file("notes.txt")],
            modified: vec![
                file("frontend/package.json"),
                file("frontend/package-lock.json"),
            ],
            deleted: vec!["old.md".into()],
            skipped: vec![SkippedFile {
                path: "link".into(),
                reason: "symlink".into(),
                message: String::new(),
            }],
            ..Default::default()
        };
        assert_eq!(
            c.summary(),
            "added: notes.txt\nmodified: frontend/package.json, frontend/package-lock.json\ndeleted: old.md\nnot saved: link (symlink)"
        );
        assert_eq!(Changes::default().summary(), "");
    }
}
