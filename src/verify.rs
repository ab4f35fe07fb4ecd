//! The verify-and-fix loop's platform half: after a turn changed files, sync, install, start
//! the dev servers, run the template's checks and probe each server's ready route, showing each
//! as a step people can watch. Core's `agent::verify` trims what failed for the model.

use crate::agent::Work;
use crate::room::Room;
use crate::vm::{ExecRequest, Vm};
use open_replit_core::agent::verify::{browser_failure, trim_output, BrowserReport, Failure};
use open_replit_core::protocol::ServerEvent;
use serde_json::json;
use std::collections::BTreeMap;

/// Runs every signal and returns what failed (empty: the app runs).
pub async fn run(
    room: &Room,
    vm: &Vm,
    work: &mut Work<'_>,
    turn_id: u64,
    round: u32,
) -> Vec<Failure> {
    let mut failures = Vec::new();
    let mut k = 0;
    let mut step = |name: &str, args: serde_json::Value| {
        k += 1;
        let call_id = format!("verify-{turn_id}-{round}-{k}");
        let _ = room.emit(ServerEvent::ToolCallStarted {
            turn_id,
            call_id: call_id.clone(),
            name: format!("verify: {name}"),
            arguments: args,
        });
        call_id
    };
    let finish = |call_id: String, ok: bool, result: String, t0: f64| {
        let _ = room.emit(ServerEvent::ToolCallFinished {
            turn_id,
            call_id,
            ok,
            result,
            duration_ms: (js_sys::Date::now() - t0) as u64,
        });
    };

    // Where the preview page's reports stand now: what the page reports from here on was
    // produced by this round's code (Vite reloads the open page as soon as files sync).
    let reports_from = vm
        .json(
            worker::Method::Get,
            &format!(
                "/projects/{}/browser-reports?since_seq={}",
                work.id,
                u64::MAX
            ),
            None,
            std::time::Duration::from_secs(10),
        )
        .await
        .ok();

    // Sync, install what changed, start or keep the dev servers; a crash shows up here.
    let t0 = js_sys::Date::now();
    let call = step("start dev servers", json!({}));
    let started = match work.sync_vm(vm).await {
        Err(e) => Err(e),
        Ok(()) => {
            let manifest = work.manifest();
            crate::preview::start(room, vm, &work.id, &manifest, false, Some((turn_id, &call)))
                .await
                .map_err(|e| e.message())
        }
    };
    let procs = match started {
        Ok(v) => {
            finish(call, true, "dev servers running".into(), t0);
            v["processes"].as_array().cloned().unwrap_or_default()
        }
        Err(e) => {
            finish(call, false, e.clone(), t0);
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
    let tm = crate::preview::template_for(&meta.template);

    // The template's checks: type check, build, tests.
    for c in &tm.check {
        let t0 = js_sys::Date::now();
        let call = step(&c.name, json!({"command": c.command, "cwd": c.cwd}));
        let mut out = String::new();
        let r = vm
            .exec(
                &work.id,
                &ExecRequest {
                    command: &c.command,
                    cwd: &c.cwd,
                    timeout_s: 300,
                    env: BTreeMap::new(),
                    cache: None,
                },
                None,
                |stream, data| {
                    out.push_str(data);
                    let _ = room.emit(ServerEvent::ToolOutput {
                        turn_id,
                        call_id: call.clone(),
                        stream: stream.to_string(),
                        data: data.to_string(),
                    });
                },
            )
            .await;
        match r {
            Ok(exit) if exit.exit_code == Some(0) => finish(call, true, "passed".into(), t0),
            Ok(exit) => {
                finish(
                    call,
                    false,
                    format!("failed (exit {:?})", exit.exit_code),
                    t0,
                );
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
                finish(call, false, m.clone(), t0);
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
            .find(|p| p["name"] == name.as_str())
            .and_then(|p| p["port"].as_u64())
        else {
            continue;
        };
        let t0 = js_sys::Date::now();
        let call = step(
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
            .exec(
                &work.id,
                &ExecRequest {
                    command: &cmd,
                    cwd: "",
                    timeout_s: 30,
                    env: BTreeMap::new(),
                    cache: None,
                },
                None,
                |_, d| out.push_str(d),
            )
            .await;
        if matches!(&r, Ok(exit) if exit.exit_code == Some(0)) {
            finish(call, true, format!("GET {path} → {}", out.trim()), t0);
            continue;
        }
        // Not answering: the server's own log says why (an import error, a syntax error).
        let logs = vm
            .json(
                worker::Method::Get,
                &format!("/projects/{}/processes/{name}/logs?tail=40", work.id),
                None,
                std::time::Duration::from_secs(10),
            )
            .await
            .map(|v| {
                v["lines"]
                    .as_array()
                    .map(|l| {
                        l.iter()
                            .filter_map(|x| x["line"].as_str())
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        finish(
            call,
            false,
            format!("GET {path} failed: {}", out.trim()),
            t0,
        );
        failures.push(Failure {
            name: format!("dev server {name}: GET {path} failed ({})", out.trim()),
            output: trim_output(&logs, 25),
        });
    }

    // The page itself, as the browser runs it: only when someone has the preview open (a
    // connected client, or a page load in the last 15 minutes), since only a browser can run it.
    if let (true, Some(from)) = (failures.is_empty(), reports_from) {
        let recent = from["last_load_age_ms"]
            .as_u64()
            .is_some_and(|a| a < 15 * 60 * 1000);
        if room.sockets() > 0 || recent {
            let t0 = js_sys::Date::now();
            let _ = room.emit(ServerEvent::PreviewReload { turn_id });
            let call = step("browser", json!({"wait_s": 8}));
            let since = from["next_seq"].as_u64().unwrap_or(0);
            let got = vm
                .json(
                    worker::Method::Get,
                    &format!(
                        "/projects/{}/browser-reports?since_seq={since}&wait_ms=8000&grace_ms=2500",
                        work.id
                    ),
                    None,
                    std::time::Duration::from_secs(20),
                )
                .await;
            match got {
                Ok(v) => {
                    let reports: Vec<BrowserReport> =
                        serde_json::from_value(v["reports"].clone()).unwrap_or_default();
                    match browser_failure(&reports) {
                        Some(f) => {
                            finish(call, false, f.name.clone(), t0);
                            failures.push(f);
                        }
                        None if v["loads"].as_u64().unwrap_or(0) > 0 => {
                            finish(call, true, "the page loaded without errors".into(), t0)
                        }
                        None if v["followed"] == false => finish(
                            call,
                            true,
                            "skipped: no browser has the preview open".into(),
                            t0,
                        ),
                        None => finish(
                            call,
                            true,
                            "the page did not finish loading within 8 s".into(),
                            t0,
                        ),
                    }
                }
                Err(e) => finish(call, true, format!("not checked: {}", e.message()), t0),
            }
        }
    }
    failures
}
