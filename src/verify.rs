//! The verify-and-fix loop's platform half: after a turn changed files, sync, install, start
//! the dev servers, run the template's checks, probe each server's ready route and, when
//! someone has the preview open, collect the page's runtime errors, showing each as a step
//! people can watch. Core's `agent::verify` trims what failed for the model.

use crate::changes::take_changes;
use crate::room_state::Room;
use crate::step::Step;
use crate::vm::Vm;
use crate::work::Work;
use open_replit_core::agent::verify::{browser_failure, trim_output, Failure};
use open_replit_core::protocol::ServerEvent;
use open_replit_core::vm_api::{
    BrowserReportsQuery, BrowserReportsReply, ExecRequest, LogsQuery, ProcessInfo,
};
use serde_json::json;

/// A page load counts as "the preview is open" for this long (15 minutes).
const RECENT_LOAD_MS: u64 = 15 * 60 * 1000;
/// How long verification watches the reloaded page.
const BROWSER_WAIT_MS: u64 = 8_000;

/// Numbers the steps of one verification round.
struct Steps<'r> {
    room: &'r Room,
    turn_id: u64,
    round: u32,
    k: u32,
}

impl<'r> Steps<'r> {
    fn start(&mut self, name: &str, args: serde_json::Value) -> Step<'r> {
        self.k += 1;
        let call_id = format!("verify-{}-{}-{}", self.turn_id, self.round, self.k);
        Step::start(
            self.room,
            self.turn_id,
            call_id,
            format!("verify: {name}"),
            args,
        )
    }
}

/// Runs every signal and returns what failed (empty: the app runs).
pub async fn run(
    room: &Room,
    vm: &Vm,
    work: &mut Work<'_>,
    turn_id: u64,
    round: u32,
) -> Vec<Failure> {
    let mut failures = Vec::new();
    let mut steps = Steps {
        room,
        turn_id,
        round,
        k: 0,
    };

    // Where the preview page's reports stand now: what the page reports from here on was
    // produced by this round's code (Vite reloads the open page as soon as files sync).
    let reports_from = vm
        .browser_reports(
            &work.id,
            &BrowserReportsQuery {
                since_seq: Some(u64::MAX),
                ..Default::default()
            },
        )
        .await
        .ok();

    // Sync, install what changed, start or keep the dev servers; a crash shows up here.
    let step = steps.start("start dev servers", json!({}));
    let started = match work.sync_vm(vm).await {
        Err(e) => Err(e.message()),
        Ok(()) => {
            let manifest = work.manifest();
            crate::preview::start(room, vm, &work.id, &manifest, false, Some(&step))
                .await
                .map_err(|e| e.message())
        }
    };
    let procs = match started {
        Ok(started) => {
            for c in &started.changes {
                take_changes(room, work, turn_id, c);
            }
            step.finish(true, "dev servers running");
            started.state.processes
        }
        Err(e) => {
            step.finish(false, e.clone());
            failures.push(Failure {
                name: "dev server".into(),
                output: trim_output(&e, 30),
            });
            return failures;
        }
    };
    let meta = match work.projects.meta(&work.id).await {
        Ok(m) => m,
        Err(e) => {
            failures.push(Failure {
                name: "project".into(),
                output: e.to_string(),
            });
            return failures;
        }
    };
    let tm = crate::templates::manifest(&meta.template);

    // The template's checks: type check, build, tests.
    for c in &tm.check {
        let step = steps.start(&c.name, json!({"command": c.command, "cwd": c.cwd}));
        let mut out = String::new();
        let r = vm
            .exec(
                &work.id,
                &ExecRequest::new(&c.command, &c.cwd, 300),
                None,
                |stream, data| {
                    out.push_str(data);
                    step.output(stream, data);
                },
            )
            .await;
        if let Ok(Some(changes)) = r.as_ref().map(|d| d.changes.as_ref()) {
            take_changes(room, work, turn_id, changes);
        }
        match r.map(|d| d.exit) {
            Ok(exit) if exit.exit_code == Some(0) => step.finish(true, "passed"),
            Ok(exit) => {
                step.finish(false, format!("failed (exit {:?})", exit.exit_code));
                failures.push(Failure {
                    name: format!(
                        "{} (`{}` in {}/)",
                        c.name,
                        c.command,
                        if c.cwd.is_empty() { "." } else { &c.cwd }
                    ),
                    output: trim_output(&out, 25),
                });
            }
            Err(e) => {
                let m = e.message();
                step.finish(false, m.clone());
                failures.push(Failure {
                    name: c.name.clone(),
                    output: m,
                });
            }
        }
    }

    // Each dev server answers its ready route without a 5xx.
    for (name, dev) in &tm.dev {
        let Some(path) = &dev.ready_path else {
            continue;
        };
        let Some(port) = procs
            .iter()
            .find(|p: &&ProcessInfo| p.name == *name)
            .map(|p| p.port)
        else {
            continue;
        };
        let step = steps.start(
            &format!("probe {name}"),
            json!({"path": path, "port": port}),
        );
        // Retry briefly: a dev server that just restarted needs a moment to bind.
        let cmd = format!(
            "for i in 1 2 3 4 5 6 7 8 9 10; do c=$(curl -s -o /tmp/or-probe -w '%{{http_code}}' http://127.0.0.1:{port}{path}); \
             case $c in 2*|3*|4*) echo $c; exit 0;; 5*) echo $c; cat /tmp/or-probe; exit 1;; esac; sleep 1; done; echo \"no answer ($c)\"; exit 1"
        );
        let mut out = String::new();
        let r = vm
            // A probe's traces are never part of the project.
            .exec(
                &work.id,
                &ExecRequest::new(&cmd, "", 30).unscanned(),
                None,
                |_, d| out.push_str(d),
            )
            .await;
        if matches!(&r, Ok(done) if done.exit.exit_code == Some(0)) {
            step.finish(true, format!("GET {path} → {}", out.trim()));
            continue;
        }
        // Not answering: the server's own log says why (an import error, a syntax error).
        let logs = vm
            .logs(
                &work.id,
                name,
                &LogsQuery {
                    tail: Some(40),
                    follow: None,
                },
            )
            .await
            .map(|r| {
                r.lines
                    .iter()
                    .map(|l| l.line.as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
        step.finish(false, format!("GET {path} failed: {}", out.trim()));
        failures.push(Failure {
            name: format!("dev server {name}: GET {path} failed ({})", out.trim()),
            output: trim_output(&logs, 25),
        });
    }

    // The page itself, as the browser runs it: only when someone has the preview open (a
    // connected client, or a page load in the last 15 minutes), since only a browser can run it.
    if let (true, Some(from)) = (failures.is_empty(), reports_from) {
        if let Some(f) = check_browser(room, vm, &work.id, &mut steps, &from).await {
            failures.push(f);
        }
    }
    failures
}

/// Reloads the open preview and watches it for runtime errors.
async fn check_browser(
    room: &Room,
    vm: &Vm,
    project: &str,
    steps: &mut Steps<'_>,
    from: &BrowserReportsReply,
) -> Option<Failure> {
    let recent = from.last_load_age_ms.is_some_and(|a| a < RECENT_LOAD_MS);
    if room.sockets() == 0 && !recent {
        return None;
    }
    room.emit(ServerEvent::PreviewReload {
        turn_id: steps.turn_id,
    });
    let step = steps.start("browser", json!({"wait_s": BROWSER_WAIT_MS / 1000}));
    let q = BrowserReportsQuery {
        since_seq: Some(from.next_seq),
        wait_ms: Some(BROWSER_WAIT_MS),
        grace_ms: Some(2_500),
    };
    match vm.browser_reports(project, &q).await {
        Ok(v) => match browser_failure(&v.browser_reports()) {
            Some(f) => {
                step.finish(false, f.name.clone());
                return Some(f);
            }
            None if v.loads > 0 => step.finish(true, "the page loaded without errors"),
            None if !v.followed => step.finish(true, "skipped: no browser has the preview open"),
            None => step.finish(true, "the page did not finish loading within 8 s"),
        },
        Err(e) => step.finish(true, format!("not checked: {}", e.message())),
    }
    None
}
