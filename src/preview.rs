//! Dev servers and the live preview: installs what changed, starts the template's `dev`
//! processes on the VM in dependency order, reports crashes, and mints the preview URL. What
//! to install and in which order comes from core's `template`.

use crate::config::Config;
use crate::error::ApiError;
use crate::room_state::Room;
use crate::step::Step;
use crate::vm::Vm;
use open_replit_core::agent::turn::keep_tail;
use open_replit_core::api::PreviewState;
use open_replit_core::manifest::Manifest;
use open_replit_core::vm_api::{
    Changes, ExecCache, ExecRequest, ProcessInfo, ProcessStatus, ReadyQuery, StartProcessRequest,
};
use std::collections::BTreeMap;

/// Output of a failed install shown in the error (the end, where npm and pip say why).
const INSTALL_TAIL_BYTES: usize = 3_000;
/// How long to wait for a dev server to listen; one still silent is left to the probes (a
/// backend whose app failed to import keeps its reloader running but never listens).
const LISTEN_WAIT_MS: u64 = 10_000;

/// The preview URL with a fresh token (valid for a day).
pub fn url(cfg: &Config, vm: &Vm, project: &str) -> String {
    format!(
        "{}?or_token={}",
        cfg.preview_url.replace("{id}", project),
        vm.preview_token(project, 24 * 3600)
    )
}

/// `GET /projects/{id}/preview`: what runs and where to see it.
pub async fn status(room: &Room, project: &str) -> Result<PreviewState, ApiError> {
    let cfg = room.config();
    let vm = Vm::from_config(cfg)?;
    let processes = vm.processes(project).await?.processes;
    let running = processes.iter().any(|p| p.status == ProcessStatus::Running);
    Ok(PreviewState {
        running,
        url: running.then(|| url(cfg, &vm, project)),
        preview: None,
        processes,
    })
}

/// What `start` did: the preview, and what the installs changed in the working copy (a
/// rewritten lock file), for the caller to take into the project.
pub struct Started {
    pub state: PreviewState,
    pub changes: Vec<Changes>,
}

/// Installs dependencies whose inputs changed, then starts (or restarts) the dev servers.
/// `progress` is the step people watch (an agent's tool call or verification), if any.
pub async fn start(
    room: &Room,
    vm: &Vm,
    project: &str,
    manifest: &Manifest,
    restart: bool,
    progress: Option<&Step<'_>>,
) -> Result<Started, ApiError> {
    let cfg = room.config();
    let blob = crate::azure::blob_client(cfg)?;
    let meta = open_replit_core::store::project::Projects::new(&blob)
        .meta(project)
        .await?;
    let t = crate::templates::manifest(&meta.template);
    if t.dev.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "template {} has no dev servers",
            meta.template
        )));
    }
    let order = t
        .dev_order()
        .map_err(|e| ApiError::BadRequest(format!("template {}: {e}", meta.template)))?;
    // Reinstall only when the files that decide the dependencies changed; the installs of
    // different parts (frontend, backend) run at the same time.
    let pending: Vec<_> = t
        .install
        .iter()
        .map(|(name, inst)| (name, inst, inst.key(manifest)))
        .filter(|(name, _, key)| {
            room.get_kv(&format!("installed:{name}")).as_deref() != Some(key.as_str())
        })
        .collect();
    let runs = pending.iter().map(|(name, inst, _)| async move {
        if let Some(step) = progress {
            step.status(format!(
                "installing dependencies ({name}: {})",
                inst.command
            ));
        }
        let mut out = String::new();
        let shared = cfg.shared_deps_cache && !inst.when_changed.is_empty();
        let cache = (shared && !inst.outputs.is_empty()).then(|| ExecCache {
            inputs: inst.when_changed.clone(),
            outputs: inst.outputs.clone(),
        });
        let req = ExecRequest {
            cache,
            ..ExecRequest::new(&inst.command, &inst.cwd, 600)
        };
        let done = vm
            .exec(project, &req, None, |stream, data| {
                out.push_str(data);
                if let Some(step) = progress {
                    step.output(stream, data);
                }
            })
            .await?;
        let exit = done.exit;
        if exit.exit_code != Some(0) {
            return Err(ApiError::BadRequest(format!(
                "`{}` in {}/ failed (exit {:?}):\n{}",
                inst.command,
                if inst.cwd.is_empty() { "." } else { &inst.cwd },
                exit.exit_code,
                keep_tail(&out, INSTALL_TAIL_BYTES)
            )));
        }
        Ok(done.changes)
    });
    let results = futures_util::future::join_all(runs).await;
    let mut changes = Vec::new();
    for ((name, _, key), r) in pending.iter().zip(results) {
        changes.extend(r?);
        room.set_kv(&format!("installed:{name}"), key)?;
    }
    let existing: BTreeMap<String, ProcessInfo> = vm
        .processes(project)
        .await?
        .processes
        .into_iter()
        .map(|p| (p.name.clone(), p))
        .collect();
    // The app's own runtime secrets reach its dev servers (never the agent's commands).
    let secrets = crate::vault::runtime_env(room, project)?;
    let mut ports: BTreeMap<String, u64> = BTreeMap::new();
    for name in order {
        let d = &t.dev[name];
        let current = existing.get(name);
        let running = current.is_some_and(|p| p.status == ProcessStatus::Running);
        let p = match current {
            Some(p) if running && !restart => p.clone(),
            // With runtime secrets a restart starts afresh, so a changed secret applies.
            _ if running && secrets.is_empty() => vm.restart_process(project, name).await?,
            _ => {
                if current.is_some() {
                    vm.stop_process(project, name).await?;
                }
                let req = StartProcessRequest {
                    name: name.to_string(),
                    command: d.command.clone(),
                    cwd: d.cwd.clone(),
                    env: {
                        let mut env = d.env_with_ports(&ports);
                        env.extend(secrets.0.clone());
                        env
                    },
                    port: None,
                };
                vm.start_process(project, &req).await?
            }
        };
        ports.insert(name.to_string(), p.port as u64);
    }
    // Wait until each dev server listens (or dies: a syntax error, a missing module, reported
    // now with its last lines).
    if let Some(step) = progress {
        step.status("waiting for the dev servers to listen");
    }
    let ready = ReadyQuery {
        timeout_ms: Some(LISTEN_WAIT_MS),
    };
    let waits = t.dev.keys().map(|name| vm.ready(project, name, &ready));
    for r in futures_util::future::join_all(waits).await {
        let p = r?.process;
        if p.status == ProcessStatus::Exited {
            return Err(ApiError::BadRequest(format!(
                "dev server {} exited with code {}:\n{}",
                p.name,
                p.exit_code.map_or("null".to_string(), |c| c.to_string()),
                p.last_lines.unwrap_or_default().join("\n")
            )));
        }
    }
    let state = PreviewState {
        running: true,
        url: Some(url(cfg, vm, project)),
        preview: t.preview.clone(),
        processes: vm.processes(project).await?.processes,
    };
    Ok(Started { state, changes })
}
