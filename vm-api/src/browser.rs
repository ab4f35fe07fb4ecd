//! What the preview's browser saw: the script the preview proxy injects into every HTML page
//! reports uncaught errors, unhandled rejections, `console.error`, failed resource loads and
//! page loads; they are kept per project in a small ring for the Worker's verify loop
//! (`GET /projects/{id}/browser-reports`), which feeds the errors to the model.

use crate::error::{check_project_id, ApiError};
use crate::procs::now_ms;
use crate::state::AppState;
use axum::extract::{Path as UrlPath, Query, State};
use axum::Json;
use open_replit_core::vm_api::{
    BrowserReportEntry as Report, BrowserReportsQuery, BrowserReportsReply,
};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The injected script, served by the proxy at `CAPTURE_PATH` on the preview origin.
pub const CAPTURE_JS: &str = include_str!("../assets/preview-capture.js");
pub const CAPTURE_PATH: &str = "/__open_replit/capture.js";
pub const REPORT_PATH: &str = "/__open_replit/report";
/// The tag the proxy puts at the top of `<head>`.
pub const CAPTURE_TAG: &str = "<script src=\"/__open_replit/capture.js\"></script>";
/// Largest report body accepted.
pub const MAX_REPORT_BYTES: usize = 16 * 1024;
/// Reports kept per project (oldest dropped first).
const RING: usize = 100;
const MAX_FIELD_CHARS: usize = 4000;
const KINDS: &[&str] = &[
    "error",
    "unhandledrejection",
    "console.error",
    "resource",
    "load",
];

/// A report as the page sends it (the same shape the Worker reads back).
pub use open_replit_core::agent::verify::BrowserReport as RawReport;

#[derive(Default)]
struct Project {
    ring: VecDeque<Report>,
    next_seq: u64,
    last_load_ms: Option<u64>,
    /// When a browser last asked the proxy for a page of this project.
    last_nav_ms: Option<u64>,
}

/// Where a project's reports stand.
struct Snapshot {
    list: Vec<Report>,
    next_seq: u64,
    loaded: bool,
    last_load_ms: Option<u64>,
    last_nav_ms: Option<u64>,
}

/// Every project's reports, and a wake-up for readers waiting on a page load.
#[derive(Default)]
pub struct BrowserReports {
    projects: Mutex<HashMap<String, Project>>,
    arrived: tokio::sync::Notify,
}

fn cap(s: String) -> String {
    if s.chars().count() <= MAX_FIELD_CHARS {
        s
    } else {
        let mut t: String = s.chars().take(MAX_FIELD_CHARS).collect();
        t.push_str(" …");
        t
    }
}

impl BrowserReports {
    /// Records one report from the page; unknown kinds are refused.
    pub fn add(&self, project: &str, r: RawReport) -> Result<(), String> {
        if !KINDS.contains(&r.kind.as_str()) {
            return Err(format!("unknown report kind {:?}", r.kind));
        }
        let mut g = self.projects.lock().unwrap_or_else(|p| p.into_inner());
        let p = g.entry(project.to_string()).or_default();
        let ts_ms = now_ms();
        if r.kind == "load" {
            p.last_load_ms = Some(ts_ms);
        }
        let seq = p.next_seq;
        p.next_seq += 1;
        p.ring.push_back(Report {
            seq,
            ts_ms,
            kind: r.kind,
            message: cap(r.message),
            source: cap(r.source),
            line: r.line,
            column: r.column,
            stack: cap(r.stack),
            url: cap(r.url),
        });
        while p.ring.len() > RING {
            p.ring.pop_front();
        }
        drop(g);
        self.arrived.notify_waiters();
        Ok(())
    }

    /// The proxy served a page navigation of the project.
    /// Drops what the project's preview reported (the project was removed).
    pub fn forget(&self, project: &str) {
        self.projects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(project);
    }

    pub fn navigated(&self, project: &str) {
        let mut g = self.projects.lock().unwrap_or_else(|p| p.into_inner());
        g.entry(project.to_string()).or_default().last_nav_ms = Some(now_ms());
    }

    /// Reports with `seq >= since`, and where the project stands.
    fn since(&self, project: &str, since: u64) -> Snapshot {
        let g = self.projects.lock().unwrap_or_else(|p| p.into_inner());
        let Some(p) = g.get(project) else {
            return Snapshot {
                list: Vec::new(),
                next_seq: 0,
                loaded: false,
                last_load_ms: None,
                last_nav_ms: None,
            };
        };
        let list: Vec<Report> = p.ring.iter().filter(|r| r.seq >= since).cloned().collect();
        Snapshot {
            loaded: list.iter().any(|r| r.kind == "load"),
            list,
            next_seq: p.next_seq,
            last_load_ms: p.last_load_ms,
            last_nav_ms: p.last_nav_ms,
        }
    }
}

/// `GET /projects/{id}/browser-reports?since_seq=N&wait_ms=M&grace_ms=G`: the reports since `N`
/// (errors only; loads are counted). With `wait_ms`, waits (at most 15 s) until a page load at
/// or after `N` is reported, so a caller that just asked the preview to reload gets that load's
/// errors. With `grace_ms`, gives up early when no browser asked for a page within that time
/// (`followed: false`: nobody has the preview open).
pub async fn reports_route(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<BrowserReportsQuery>,
) -> Result<Json<BrowserReportsReply>, ApiError> {
    check_project_id(&id)?;
    let since = q.since_seq.unwrap_or(0);
    let start = tokio::time::Instant::now();
    let start_ms = now_ms();
    let deadline = start + Duration::from_millis(q.wait_ms.unwrap_or(0).min(15_000));
    let grace = q.grace_ms.map(|g| start + Duration::from_millis(g));
    let reports = &st.browser_reports;
    loop {
        // Register before looking, so a report landing in between still wakes us.
        let arrived = reports.arrived.notified();
        let s = reports.since(&id, since);
        let followed = s.loaded || s.last_nav_ms.is_some_and(|t| t >= start_ms);
        let now = tokio::time::Instant::now();
        let given_up = grace.is_some_and(|g| now >= g) && !followed;
        if s.loaded || now >= deadline || given_up {
            let total = s.list.len();
            let reports: Vec<Report> = s.list.into_iter().filter(|r| r.kind != "load").collect();
            return Ok(Json(BrowserReportsReply {
                loads: (total - reports.len()) as u64,
                reports,
                next_seq: s.next_seq,
                followed,
                last_load_age_ms: s.last_load_ms.map(|t| now_ms().saturating_sub(t)),
            }));
        }
        let wake = match grace {
            Some(g) if !followed && g < deadline => g,
            _ => deadline,
        };
        let _ = tokio::time::timeout_at(wake, arrived).await;
    }
}

/// Puts the capture tag at the top of `<head>` (or of the document when it has none).
pub fn inject(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    let at = lower
        .find("<head")
        .and_then(|i| lower[i..].find('>').map(|j| i + j + 1))
        .or_else(|| {
            lower
                .find("<html")
                .and_then(|i| lower[i..].find('>').map(|j| i + j + 1))
        })
        .unwrap_or(0);
    let mut out = String::with_capacity(html.len() + CAPTURE_TAG.len());
    out.push_str(&html[..at]);
    out.push_str(CAPTURE_TAG);
    out.push_str(&html[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injects_at_the_top_of_head() {
        assert_eq!(
            inject("<!doctype html><HTML><Head lang=x><title>t</title></head></html>"),
            format!(
                "<!doctype html><HTML><Head lang=x>{CAPTURE_TAG}<title>t</title></head></html>"
            )
        );
        assert_eq!(
            inject("<html><body>x</body></html>"),
            format!("<html>{CAPTURE_TAG}<body>x</body></html>")
        );
        assert_eq!(inject("<p>x</p>"), format!("{CAPTURE_TAG}<p>x</p>"));
        // Multi-byte text before the head stays whole.
        assert!(inject("<!-- é --><head></head>").contains(&format!("<head>{CAPTURE_TAG}")));
    }

    #[test]
    fn ring_is_bounded_fields_capped_and_kinds_checked() {
        let b = BrowserReports::default();
        let raw = |kind: &str, msg: String| RawReport {
            kind: kind.into(),
            message: msg,
            source: String::new(),
            line: 0,
            column: 0,
            stack: String::new(),
            url: "/".into(),
        };
        assert!(b.add("p", raw("nonsense", "x".into())).is_err());
        for i in 0..150 {
            b.add("p", raw("error", format!("e{i}"))).unwrap();
        }
        let s = b.since("p", 0);
        assert_eq!((s.list.len(), s.next_seq, s.loaded), (RING, 150, false));
        assert_eq!(s.list[0].message, "e50");
        b.add("p", raw("error", "y".repeat(10_000))).unwrap();
        b.add("p", raw("load", String::new())).unwrap();
        let s = b.since("p", 150);
        assert!(s.loaded && s.last_load_ms.is_some());
        assert!(s.list[0].message.chars().count() <= MAX_FIELD_CHARS + 2);
        assert!(b.since("other", 0).list.is_empty());
    }
}
