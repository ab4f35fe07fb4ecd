//! `POST /projects/{id}/search`: a bounded regex search over a project's working copy, line by
//! line, with the project's `.gitignore` applied (the change scan's walker), `.git`, symlinks
//! and binary files skipped, and bounds on matches, bytes per line, files, file size and time.

use crate::error::{check_project_id, parse_json, ApiError};
use crate::fsafe::{self, FsError};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::Json;
use open_replit_core::vm_api::{SearchMatch, SearchReply, SearchRequest, SearchStop};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one search may cost.
#[derive(Debug, Clone)]
pub struct SearchLimits {
    /// Matches returned at most (a request may ask for fewer).
    pub max_matches: usize,
    /// A matching line longer than this is cut (at a character boundary) and ends in `…`.
    pub max_line_bytes: usize,
    /// Files read at most.
    pub max_files: u64,
    /// A larger file is skipped.
    pub max_file_bytes: usize,
    /// Wall time of the walk.
    pub time: Duration,
}

impl Default for SearchLimits {
    fn default() -> Self {
        SearchLimits {
            max_matches: 200,
            max_line_bytes: 300,
            max_files: 20_000,
            max_file_bytes: 1024 * 1024,
            time: Duration::from_secs(5),
        }
    }
}

/// Bytes looked at for a NUL to call a file binary (as git and ripgrep do).
const BINARY_SNIFF: usize = 8 * 1024;
/// Compiled-regex size cap: a pattern that needs more is refused.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

pub async fn search_route(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Result<Json<SearchReply>, ApiError> {
    check_project_id(&id)?;
    let req: SearchRequest = parse_json(&body)?;
    if req.pattern.is_empty() {
        return Err(ApiError::bad_request("invalid_pattern", "pattern is empty"));
    }
    let re = regex::RegexBuilder::new(&req.pattern)
        .case_insensitive(req.ignore_case)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| ApiError::bad_request("invalid_pattern", format!("pattern: {e}")))?;
    let scope = req.path.clone().unwrap_or_default();
    let scope = scope.trim_end_matches('/').to_string();
    if !scope.is_empty() {
        open_replit_core::paths::validate_path(&scope).map_err(|e| {
            ApiError::bad_request(
                "invalid_path",
                format!("path breaks rule {}: {e}", e.rule()),
            )
        })?;
    }
    let dir = st.project_dir(&id);
    if !dir.is_dir() {
        return Err(ApiError::not_found(
            "no_working_copy",
            format!("project {id} has no working copy on this VM; sync it first"),
        ));
    }
    let overrides = match req.glob.as_deref() {
        Some(g) => {
            let mut ob = ignore::overrides::OverrideBuilder::new(&dir);
            ob.add(g)
                .and_then(|b| b.build())
                .map(Some)
                .map_err(|e| ApiError::bad_request("invalid_glob", format!("glob: {e}")))?
        }
        None => None,
    };
    let mut limits = st.limits.search.clone();
    if let Some(m) = req.max_matches {
        limits.max_matches = limits.max_matches.min(m.max(1) as usize);
    }
    let reply = tokio::task::spawn_blocking(move || search(&dir, &scope, overrides, &re, &limits))
        .await
        .map_err(|e| ApiError::internal("search_failed", e.to_string()))??;
    Ok(Json(reply))
}

/// `rel` is `scope`, inside it, or a directory on the way to it.
fn in_scope(rel: &str, scope: &str, is_dir: bool) -> bool {
    if scope.is_empty() || rel == scope || rel.starts_with(&format!("{scope}/")) {
        return true;
    }
    is_dir && scope.starts_with(&format!("{rel}/"))
}

/// `text` cut to at most `max` bytes at a character boundary, `…` marking a cut.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The walk. Blocking.
fn search(
    dir: &Path,
    scope: &str,
    overrides: Option<ignore::overrides::Override>,
    re: &regex::Regex,
    limits: &SearchLimits,
) -> Result<SearchReply, ApiError> {
    let started = Instant::now();
    let root_fd =
        fsafe::open_root(dir).map_err(|e| ApiError::internal("data_dir", e.to_string()))?;
    let root = dir.to_path_buf();
    let mut b = crate::changes::walker(&root);
    if let Some(o) = overrides {
        b.overrides(o);
    }
    b.sort_by_file_name(|a, b| a.cmp(b));
    {
        let root = root.clone();
        let scope = scope.to_string();
        b.filter_entry(move |e| {
            if e.depth() == 0 {
                return true;
            }
            if e.file_name() == ".git" {
                return false;
            }
            let is_dir = e.file_type().is_some_and(|t| t.is_dir());
            let rel = e.path().strip_prefix(&root).unwrap_or(e.path());
            rel.to_str().is_some_and(|r| in_scope(r, &scope, is_dir))
        });
    }
    let mut reply = SearchReply::default();
    'walk: for r in b.build() {
        let Ok(e) = r else { continue };
        // Regular files only: the walker does not follow symlinks and reports them as such.
        if !e.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let Some(rel) = e.path().strip_prefix(&root).ok().and_then(|p| p.to_str()) else {
            continue;
        };
        if reply.files_scanned >= limits.max_files {
            reply.stopped = Some(SearchStop::MaxFiles);
            break;
        }
        if started.elapsed() >= limits.time {
            reply.stopped = Some(SearchStop::Time);
            break;
        }
        let bytes = match fsafe::read_file_max(&root_fd, rel, limits.max_file_bytes) {
            Ok(Some(b)) => b,
            Ok(None) => continue,
            Err(FsError::TooLarge { .. }) => {
                reply.files_scanned += 1;
                reply.files_skipped += 1;
                continue;
            }
            Err(_) => continue,
        };
        reply.files_scanned += 1;
        if bytes[..bytes.len().min(BINARY_SNIFF)].contains(&0) {
            reply.files_skipped += 1;
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        for (i, line) in text.lines().enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if !re.is_match(line) {
                continue;
            }
            if reply.matches.len() >= limits.max_matches {
                reply.stopped = Some(SearchStop::MaxMatches);
                break 'walk;
            }
            reply.matches.push(SearchMatch {
                path: rel.to_string(),
                line: i as u64 + 1,
                text: cut(line, limits.max_line_bytes),
            });
        }
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_and_cut() {
        assert!(in_scope("src/a.ts", "", false));
        assert!(in_scope("src/a.ts", "src", false));
        assert!(in_scope("src", "src/lib", true));
        assert!(!in_scope("srcx/a.ts", "src", false));
        assert!(!in_scope("other", "src/lib", true));
        assert!(!in_scope("src", "src/lib", false));
        assert_eq!(cut("héllo", 2), "h…");
        assert_eq!(cut("hello", 5), "hello");
    }
}
