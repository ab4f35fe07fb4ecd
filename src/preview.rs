//! Dev servers and the live preview: installs what changed, starts the template's `dev`
//! processes on the VM in dependency order, reports crashes, and mints the preview URL.

use crate::config::Config;
use crate::error::ApiError;
use crate::room::Room;
use crate::vm::{ExecRequest, Vm};
use open_replit_core::manifest::Manifest;
use open_replit_core::protocol::ServerEvent;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use worker::Method;

#[derive(Deserialize, Default)]
pub struct TemplateManifest {
    #[serde(default)]
    install: BTreeMap<String, Install>,
    #[serde(default)]
    pub dev: BTreeMap<String, Dev>,
    #[serde(default)]
    preview: Option<String>,
    #[serde(default)]
    pub check: Vec<Check>,
}

#[derive(Deserialize)]
pub struct Check {
    pub name: String,
    #[serde(default, deserialize_with = "project_dir")]
    pub cwd: String,
    pub command: String,
}

#[derive(Deserialize)]
struct Install {
    #[serde(default, deserialize_with = "project_dir")]
    cwd: String,
    command: String,
    #[serde(default)]
    when_changed: Vec<String>,
    /// What the command produces under `cwd` (`node_modules`, `.venv`); with `when_changed`
    /// it lets the VM API share one install between projects.
    #[serde(default)]
    outputs: Vec<String>,
}

#[derive(Deserialize)]
pub struct Dev {
    #[serde(default, deserialize_with = "project_dir")]
    cwd: String,
    command: String,
    #[serde(default)]
    pub ready_path: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    depends_on: Vec<String>,
}

/// A template's `cwd`: "." (how the single-part templates write the project root) is "".
fn project_dir<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    Ok(match s.trim_end_matches('/') {
        "." | "./" => String::new(),
        rest => rest.trim_start_matches("./").to_string(),
    })
}

pub fn template_for(meta_template: &str) -> TemplateManifest {
    crate::templates::get(meta_template)
        .and_then(|t| serde_json::from_str(t.manifest).ok())
        .unwrap_or_default()
}

/// The preview URL with a fresh token (valid for a day).
pub fn url(cfg: &Config, vm: &Vm, project: &str) -> String {
    format!(
        "{}?or_token={}",
        cfg.preview_url.replace("{id}", project),
        vm.preview_token(project, 24 * 3600)
    )
}

/// The VM's process list for a project: `{"processes": [...]}`.
async fn list_processes(vm: &Vm, project: &str) -> Result<Value, ApiError> {
    vm.json(
        Method::Get,
        &format!("/projects/{project}/processes"),
        None,
        Duration::from_secs(10),
    )
    .await
}

/// `GET /projects/{id}/preview`: what runs and where to see it.
pub async fn status(room: &Room, project: &str) -> Result<Value, ApiError> {
    let cfg = Config::from_env(room.env());
    let vm = Vm::from_config(&cfg)?;
    let procs = list_processes(&vm, project).await?;
    let running = procs["processes"]
        .as_array()
        .is_some_and(|a| a.iter().any(|p| p["status"] == "running"));
    Ok(json!({
        "running": running,
        "url": running.then(|| url(&cfg, &vm, project)),
        "processes": procs["processes"],
    }))
}

/// Installs dependencies whose inputs changed, then starts (or restarts) the dev servers.
pub async fn start(
    room: &Room,
    vm: &Vm,
    project: &str,
    manifest: &Manifest,
    restart: bool,
    tool: Option<(u64, &str)>,
) -> Result<Value, ApiError> {
    let cfg = Config::from_env(room.env());
    let blob = crate::azure::blob_client(&cfg)?;
    let meta = open_replit_core::store::project::Projects::new(&blob)
        .meta(project)
        .await?;
    let t = template_for(&meta.template);
    if t.dev.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "template {} has no dev servers",
            meta.template
        )));
    }
    // Reinstall only when the files that decide the dependencies changed; the installs of
    // different parts (frontend, backend) run at the same time.
    let mut pending = Vec::new();
    for (name, inst) in &t.install {
        let key: String = inst
            .when_changed
            .iter()
            .map(|p| {
                manifest
                    .files
                    .get(p)
                    .map(|e| e.sha256.as_str())
                    .unwrap_or("-")
            })
            .collect::<Vec<_>>()
            .join(",");
        if room.get_kv(&format!("installed:{name}")).as_deref() != Some(key.as_str()) {
            pending.push((name, inst, key));
        }
    }
    let cfg = &cfg;
    let runs = pending.iter().map(|(name, inst, _)| async move {
        if let Some((turn_id, _)) = tool {
            room.emit(ServerEvent::Status {
                turn_id,
                message: format!("installing dependencies ({name}: {})", inst.command),
            })?;
        }
        let mut out = String::new();
        let shared = cfg.shared_deps_cache && !inst.when_changed.is_empty();
        let cache = (shared && !inst.outputs.is_empty()).then_some(crate::vm::ExecCache {
            inputs: &inst.when_changed,
            outputs: &inst.outputs,
        });
        let exit = vm
            .exec(
                project,
                &ExecRequest {
                    command: &inst.command,
                    cwd: &inst.cwd,
                    timeout_s: 600,
                    env: BTreeMap::new(),
                    cache,
                },
                None,
                |stream, data| {
                    out.push_str(data);
                    if let Some((turn_id, call_id)) = tool {
                        let _ = room.emit(ServerEvent::ToolOutput {
                            turn_id,
                            call_id: call_id.to_string(),
                            stream: stream.to_string(),
                            data: data.to_string(),
                        });
                    }
                },
            )
            .await?;
        if exit.exit_code != Some(0) {
            let tail: String = out
                .chars()
                .rev()
                .take(3000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return Err(ApiError::BadRequest(format!(
                "`{}` in {}/ failed (exit {:?}):\n{tail}",
                inst.command,
                if inst.cwd.is_empty() { "." } else { &inst.cwd },
                exit.exit_code
            )));
        }
        Ok(())
    });
    let results = futures_util::future::join_all(runs).await;
    for ((name, _, key), r) in pending.iter().zip(results) {
        r?;
        room.set_kv(&format!("installed:{name}"), key)?;
    }
    let listed = list_processes(vm, project).await?;
    let existing: BTreeMap<String, Value> = listed["processes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| (p["name"].as_str().unwrap_or("").to_string(), p.clone()))
                .collect()
        })
        .unwrap_or_default();
    // Dependencies first (a template has a handful of entries, so a simple pass order works).
    let mut order: Vec<&String> = t.dev.keys().collect();
    order.sort_by_key(|n| !t.dev[*n].depends_on.is_empty());
    let mut ports: BTreeMap<String, u64> = BTreeMap::new();
    for name in order {
        let d = &t.dev[name];
        let base = format!("/projects/{project}/processes/{name}");
        let current = existing.get(name.as_str());
        let running = current.is_some_and(|p| p["status"] == "running");
        let p = if running && !restart {
            current.cloned().unwrap_or_default()
        } else if running {
            vm.json(
                Method::Post,
                &format!("{base}/restart"),
                None,
                Duration::from_secs(30),
            )
            .await?
        } else {
            if current.is_some() {
                vm.json(Method::Delete, &base, None, Duration::from_secs(30))
                    .await?;
            }
            let mut env = BTreeMap::new();
            for (k, v) in &d.env {
                let mut v = v.clone();
                for (dep, port) in &ports {
                    v = v.replace(&format!("{{{{dev.{dep}.port}}}}"), &port.to_string());
                }
                env.insert(k.clone(), v);
            }
            let body = json!({"name": name, "command": d.command, "cwd": d.cwd, "env": env});
            vm.json(
                Method::Post,
                &format!("/projects/{project}/processes"),
                Some(&body),
                Duration::from_secs(30),
            )
            .await?
        };
        if let Some(port) = p["port"].as_u64() {
            ports.insert(name.clone(), port);
        }
    }
    // Wait until each dev server listens (or dies: a syntax error, a missing module, reported
    // now with its last lines).
    if let Some((turn_id, _)) = tool {
        room.emit(ServerEvent::Status {
            turn_id,
            message: "waiting for the dev servers to listen".into(),
        })?;
    }
    // A server still silent after this is left to the probes (a backend whose app failed to
    // import keeps its reloader running but never listens).
    let waits = t.dev.keys().map(|name| async move {
        let path = format!("/projects/{project}/processes/{name}/ready?timeout_ms=10000");
        vm.json(Method::Get, &path, None, Duration::from_secs(30))
            .await
    });
    for r in futures_util::future::join_all(waits).await {
        let r = r?;
        let p = &r["process"];
        if p["status"] == "exited" {
            return Err(ApiError::BadRequest(format!(
                "dev server {} exited with code {}:\n{}",
                p["name"].as_str().unwrap_or("?"),
                p["exit_code"],
                p["last_lines"]
                    .as_array()
                    .map(|l| l
                        .iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join("\n"))
                    .unwrap_or_default()
            )));
        }
    }
    let last = list_processes(vm, project).await?;
    Ok(json!({
        "running": true,
        "url": url(cfg, vm, project),
        "preview": t.preview,
        "processes": last["processes"],
    }))
}
