//! Building a deployment: `POST /projects/{id}/deployments/build` materializes a checkpoint
//! into a fresh build directory `{data_dir}/deploy/{project}/{deployment}/`, runs the
//! template's installs (through the dependency cache, as the dev install does) and the build
//! steps in the project's sandbox with that directory as its project, collects the static
//! folder under core's `DistLimits`, uploads it content-addressed and create-only, and streams
//! the phases as NDJSON (core's `deploy::build` types). One build per project at a time; after
//! a success, build directories beyond the newest three are removed, never one the deployment
//! service names in `{data_dir}/deploy/{project}/keep`.

use crate::auth::ActingUser;
use crate::error::{check_project_id, parse_json, ApiError};
use crate::fsafe::{self, FsError, Kind};
use crate::process::{drive, ndjson, ndjson_response, spawn_in_group, Outcome};
use crate::sandbox::CommandSpec;
use crate::state::AppState;
use crate::sync::ObjectSource;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::response::Response;
use axum::Extension;
use futures_util::StreamExt;
use open_replit_core::deploy::build::{
    parse_keep, prune, static_manifest, BuildError, BuildEvent, BuildRequest, Built, DistLimits,
    DistWalk, EntryKind, Phase, Timings,
};
use open_replit_core::vault::SecretEnv;
use open_replit_core::vm_api::{ExecCache, ExecEvent, SkippedFile};
use open_replit_core::vm_auth::sha256_hex;
use rustix::fs as rfs;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Build directories kept per project after a successful build (besides those in `keep`).
pub const KEEP_NEWEST: usize = 3;
/// Output lines of a failing step its error repeats.
const LAST_LINES: usize = 20;
/// Bytes of a step's output remembered for those lines.
const TAIL_BYTES: usize = 8 << 10;
/// Objects uploaded at once.
const UPLOAD_CONCURRENCY: usize = 8;

/// Where a project's deployments are built: `{data_dir}/deploy/{project}`.
pub fn deploy_root(st: &AppState, project: &str) -> PathBuf {
    st.data_dir.join("deploy").join(project)
}

/// One deployment's build directory; both ids must be validated.
pub fn deploy_dir(st: &AppState, project: &str, deployment: &str) -> PathBuf {
    deploy_root(st, project).join(deployment)
}

/// The projects building now.
#[derive(Default)]
pub struct Builds(Arc<Mutex<HashSet<String>>>);

/// A project's build slot; released when dropped.
pub struct BuildSlot {
    set: Arc<Mutex<HashSet<String>>>,
    project: String,
}

impl Builds {
    /// Takes the project's slot, or `409 build_running`.
    pub fn start(&self, project: &str) -> Result<BuildSlot, ApiError> {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !s.insert(project.to_string()) {
            return Err(ApiError::conflict(
                "build_running",
                format!("project {project} is already building a deployment; wait for it to end"),
            ));
        }
        Ok(BuildSlot {
            set: self.0.clone(),
            project: project.to_string(),
        })
    }
}

impl Builds {
    /// Whether the project is building a deployment now.
    pub fn running(&self, project: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(project)
    }
}

impl Drop for BuildSlot {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.project);
    }
}

/// How a build ended badly: becomes the final `error` event.
struct Fail {
    phase: Phase,
    code: &'static str,
    message: String,
    exit_code: Option<i32>,
    last_lines: Vec<String>,
}

impl Fail {
    fn new(phase: Phase, code: &'static str, message: impl Into<String>) -> Fail {
        Fail {
            phase,
            code,
            message: message.into(),
            exit_code: None,
            last_lines: Vec::new(),
        }
    }
    fn api(phase: Phase, e: ApiError) -> Fail {
        Fail::new(phase, e.code, e.message)
    }
}

/// The `cache` an install step gets, as the Worker gives a dev install one.
fn cache_spec(s: &open_replit_core::deploy::build::InstallStep) -> Option<ExecCache> {
    (!s.when_changed.is_empty() && !s.outputs.is_empty()).then(|| ExecCache {
        inputs: s.when_changed.clone(),
        outputs: s.outputs.clone(),
    })
}

/// `POST /projects/{id}/deployments/build`: validates, takes the project's build slot, then
/// streams the build.
pub async fn build_route(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    Extension(user): Extension<ActingUser>,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_project_id(&id)?;
    let req: BuildRequest = parse_json(&body)?;
    req.validate()
        .map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
    crate::sync::validate_manifest(&req.manifest)?;
    for s in &req.install {
        if let Some(spec) = cache_spec(s) {
            crate::deps::validate_spec(&spec)?;
        }
    }
    let timeout = Duration::from_secs(
        req.timeout()
            .map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?,
    );
    let src = st.objects.clone().ok_or_else(crate::changes::no_storage)?;
    let slot = st.deploy_builds.start(&id)?;
    let dir = deploy_dir(&st, &id, &req.deployment);
    if std::fs::symlink_metadata(&dir).is_ok() {
        return Err(ApiError::conflict(
            "deployment_exists",
            format!(
                "deployment {} of project {id} was already built; build a new deployment id",
                req.deployment
            ),
        ));
    }
    let admitted = st.admission.command(&user.0)?;
    let (_, home) = st.ensure_project_dirs(&id)?;
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let job = Job {
        st: st.clone(),
        project: id.clone(),
        req,
        dir,
        home,
        deadline: Instant::now() + timeout,
        timeout,
        src,
        tx,
    };
    let held = st.activity.hold(&id);
    tokio::spawn(async move {
        job.run().await;
        drop((slot, admitted, held));
    });
    ndjson_response(rx)
}

struct Job {
    st: Arc<AppState>,
    project: String,
    req: BuildRequest,
    dir: PathBuf,
    home: PathBuf,
    deadline: Instant,
    timeout: Duration,
    src: Arc<dyn ObjectSource>,
    tx: mpsc::Sender<Bytes>,
}

impl Job {
    async fn send(&self, e: &BuildEvent) {
        let _ = self.tx.send(ndjson(e)).await;
    }

    async fn phase(&self, phase: Phase) -> Instant {
        self.send(&BuildEvent::Phase { phase }).await;
        Instant::now()
    }

    /// Runs the build and sends its last event; a failed build leaves no build directory.
    async fn run(self) {
        match self.build().await {
            Ok(built) => {
                tracing::info!(
                    project = %self.project,
                    deployment = %built.deployment,
                    files = built.files,
                    uploaded = built.uploaded,
                    "deployment built"
                );
                self.send(&BuildEvent::Built(built)).await;
                // After the event, still holding the project's build slot; the stream ends
                // when this is done.
                self.prune().await;
            }
            Err(f) => {
                tracing::warn!(
                    project = %self.project,
                    deployment = %self.req.deployment,
                    code = f.code,
                    "deployment build failed: {}",
                    f.message
                );
                remove_tree(self.dir.clone()).await;
                remove_tree(self.state_dir()).await;
                self.send(&BuildEvent::Error(BuildError {
                    phase: f.phase,
                    code: f.code.into(),
                    message: f.message,
                    exit_code: f.exit_code,
                    last_lines: f.last_lines,
                }))
                .await;
            }
        }
    }

    /// Sync's state for the materialization, beside the build directory (a name no
    /// deployment id can have).
    fn state_dir(&self) -> PathBuf {
        self.dir.with_extension("sync")
    }

    async fn build(&self) -> Result<Built, Fail> {
        let mut timings = Timings::default();
        let t = self.phase(Phase::Materialize).await;
        self.materialize().await?;
        timings.materialize_ms = ms(t);

        let t = self.phase(Phase::Install).await;
        for (i, s) in self.req.install.iter().enumerate() {
            self.step(Phase::Install, i, &s.cwd, &s.command, cache_spec(s))
                .await?;
        }
        timings.install_ms = ms(t);
        let t = self.phase(Phase::Build).await;
        for (i, s) in self.req.build.iter().enumerate() {
            self.step(Phase::Build, i, &s.cwd, &s.command, None).await?;
        }
        timings.build_ms = ms(t);

        let t = self.phase(Phase::Collect).await;
        let collected = match self.req.static_dir.clone() {
            Some(sd) => {
                let (dir, limits) = (self.dir.clone(), self.st.limits.deploy);
                tokio::task::spawn_blocking(move || collect(&dir, &sd, limits))
                    .await
                    .map_err(|e| Fail::new(Phase::Collect, "build_io", e.to_string()))??
            }
            None => Collected::default(),
        };
        let (manifest, nfiles, bytes, total) = static_manifest(collected.files);
        let backend = self.req.backend_dir.as_deref().is_some_and(|b| {
            fsafe::open_root(&self.dir).is_ok_and(|r| fsafe::open_dir(&r, b, false).is_ok())
        });
        timings.collect_ms = ms(t);

        let t = self.phase(Phase::Upload).await;
        let uploaded = self.upload(&manifest).await?;
        timings.upload_ms = ms(t);
        // The newest build sorts first when old ones are pruned.
        let _ = rfs::utimensat(
            rfs::CWD,
            &self.dir,
            &rfs::Timestamps {
                last_access: now_ts(),
                last_modification: now_ts(),
            },
            rfs::AtFlags::SYMLINK_NOFOLLOW,
        );
        Ok(Built {
            deployment: self.req.deployment.clone(),
            manifest,
            files: nfiles,
            bytes,
            total,
            uploaded,
            backend,
            skipped: collected.skipped,
            skipped_more: collected.skipped_more,
            timings,
        })
    }

    /// Writes the checkpoint into the fresh build directory with sync's own code (objects
    /// fetched and verified, written without following symlinks), then hands it to the
    /// project's identity.
    async fn materialize(&self) -> Result<(), Fail> {
        let fail = |e: ApiError| Fail::api(Phase::Materialize, e);
        let root = self.dir.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(root)
            .map_err(|e| Fail::new(Phase::Materialize, "build_io", e.to_string()))?;
        let report = crate::sync::sync_project(
            &self.project,
            &self.dir,
            &self.state_dir(),
            &self.req.manifest,
            self.src.as_ref(),
        )
        .await
        .map_err(|e| fail(e.into()))?;
        remove_tree(self.state_dir()).await;
        let sb = &self.st.sandbox;
        sb.prepare_project(&self.project, &self.dir, &self.home)
            .map_err(|e| fail(e.into()))?;
        sb.adopt_paths(&self.project, &self.dir, &report.added)
            .map_err(|e| fail(e.into()))?;
        Ok(())
    }

    /// Runs one install or build step in the project's sandbox with the build directory as
    /// its project, within what is left of the build's time.
    async fn step(
        &self,
        phase: Phase,
        index: usize,
        cwd: &str,
        command: &str,
        cache: Option<ExecCache>,
    ) -> Result<(), Fail> {
        self.send(&BuildEvent::Step {
            phase,
            index,
            cwd: cwd.into(),
            command: command.into(),
        })
        .await;
        let what = format!(
            "{} step {index} (`{command}`)",
            format!("{phase:?}").to_lowercase()
        );
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.timed_out(phase, &what, Vec::new()));
        }
        self.st
            .check_cwd_exists(&self.dir, cwd)
            .map_err(|e| Fail::api(phase, e))?;
        // Only build steps get the request's environment (a deploy tool's credentials);
        // whatever of it a command prints is replaced before it leaves.
        let (env, secrets) = if phase == Phase::Build {
            let mut env = self.req.env.clone();
            env.extend(self.req.secret_env.0.clone());
            (env, self.req.secret_env.clone())
        } else {
            (BTreeMap::new(), SecretEnv::default())
        };
        let (otx, tail) = tail_forwarder(self.tx.clone(), secrets);
        let cached =
            cache.and_then(|spec| Some((spec, self.st.sandbox.project_uid(&self.project)?)));
        let out = match cached {
            Some((spec, uid)) => {
                let job = crate::deps::CachedExec {
                    project: self.project.clone(),
                    project_dir: self.dir.clone(),
                    home_dir: self.home.clone(),
                    command: command.into(),
                    cwd: cwd.into(),
                    env: BTreeMap::new(),
                    timeout: left,
                    spec,
                    uid,
                };
                Ok(crate::deps::run_inner(&self.st, &job, &otx).await)
            }
            None => self.plain(cwd, command, &env, left, &otx).await,
        };
        drop(otx);
        let last_lines = tail.await.unwrap_or_default();
        let out = out.map_err(|e| Fail::api(phase, e))?;
        if out.timed_out {
            return Err(self.timed_out(phase, &what, last_lines));
        }
        if out.client_gone {
            return Err(Fail::new(
                phase,
                "client_gone",
                "the caller left; build stopped",
            ));
        }
        if out.exit_code != Some(0) {
            let code = out.exit_code.map_or("was killed".to_string(), |c| {
                format!("exited with code {c}")
            });
            return Err(Fail {
                exit_code: out.exit_code,
                last_lines,
                ..Fail::new(phase, "step_failed", format!("{what} {code}"))
            });
        }
        Ok(())
    }

    fn timed_out(&self, phase: Phase, what: &str, last_lines: Vec<String>) -> Fail {
        Fail {
            last_lines,
            ..Fail::new(
                phase,
                "step_timed_out",
                format!(
                    "{what} did not finish within the build's {} s; its processes were killed",
                    self.timeout.as_secs()
                ),
            )
        }
    }

    /// A step without the dependency cache.
    async fn plain(
        &self,
        cwd: &str,
        command: &str,
        env: &BTreeMap<String, String>,
        left: Duration,
        tx: &mpsc::Sender<Bytes>,
    ) -> Result<Outcome, ApiError> {
        let cmd = self.st.sandbox.command(&CommandSpec {
            project_id: &self.project,
            project_dir: &self.dir,
            home_dir: &self.home,
            cwd,
            shell: command,
            env,
        })?;
        let child = spawn_in_group(cmd)
            .map_err(|e| ApiError::internal("spawn_failed", format!("could not start: {e}")))?;
        Ok(drive(
            child,
            left,
            self.st.limits.output_cap_bytes,
            tx,
            self.st.shutdown_signal(),
            Some(crate::deps::HEARTBEAT),
        )
        .await)
    }

    /// Stores every distinct object of the static site create-only (the project's object
    /// naming, core's retries); how many this build created.
    async fn upload(&self, m: &open_replit_core::manifest::Manifest) -> Result<u64, Fail> {
        let Some(sd) = self.req.static_dir.as_deref() else {
            return Ok(0);
        };
        let mut seen = HashSet::new();
        let objects: Vec<(String, String)> = m
            .files
            .iter()
            .filter(|(_, e)| seen.insert(e.sha256.clone()))
            .map(|(p, e)| (p.clone(), e.sha256.clone()))
            .collect();
        let max = self.st.limits.deploy.max_file_bytes as usize;
        let base = self.dir.clone();
        let mut puts = futures_util::stream::iter(objects.into_iter().map(|(path, sha)| {
            let (base, sd) = (base.clone(), sd.to_string());
            async move {
                let bytes = read_static(base, sd, path.clone(), sha.clone(), max).await?;
                self.src
                    .put_new(&self.project, &sha, bytes)
                    .await
                    .map_err(|e| format!("saving {path}: {e}"))
            }
        }))
        .buffer_unordered(UPLOAD_CONCURRENCY);
        let mut uploaded = 0;
        while let Some(r) = puts.next().await {
            match r {
                Ok(created) => uploaded += u64::from(created),
                Err(e) => return Err(Fail::new(Phase::Upload, "object_upload_failed", e)),
            }
        }
        Ok(uploaded)
    }

    /// Removes the project's build directories beyond the newest [`KEEP_NEWEST`], never one
    /// the `keep` file names.
    async fn prune(&self) {
        let root = deploy_root(&self.st, &self.project);
        let dirs: Vec<(String, u128)> = std::fs::read_dir(&root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let m = e.metadata().ok().filter(|m| m.is_dir())?;
                let t = m
                    .modified()
                    .ok()?
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()?;
                Some((e.file_name().to_str()?.to_string(), t.as_nanos()))
            })
            .collect();
        let live = std::fs::read_to_string(root.join("keep"))
            .map(|t| parse_keep(&t))
            .unwrap_or_default();
        for name in prune(&dirs, KEEP_NEWEST, &live) {
            tracing::info!(project = %self.project, deployment = %name, "removing an old build");
            remove_tree(root.join(name)).await;
        }
    }
}

fn ms(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

fn now_ts() -> rfs::Timespec {
    rfs::Timespec {
        tv_sec: 0,
        tv_nsec: rfs::UTIME_NOW,
    }
}

/// Removes a tree without following symlinks (std's `remove_dir_all` never does).
async fn remove_tree(p: PathBuf) {
    let _ = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(path = %p.display(), "cannot remove: {e}")
        }
        _ => {}
    })
    .await;
}

/// Forwards a step's events to the client and keeps its last output lines for an error.
fn tail_forwarder(
    out: mpsc::Sender<Bytes>,
    secrets: SecretEnv,
) -> (mpsc::Sender<Bytes>, tokio::task::JoinHandle<Vec<String>>) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    let task = tokio::spawn(async move {
        let mut tail = String::new();
        loop {
            // A client that left closes `out`; dropping `rx` then stops the step, even a
            // silent one.
            let b = tokio::select! {
                b = rx.recv() => match b {
                    Some(b) => b,
                    None => break,
                },
                _ = out.closed() => break,
            };
            let mut b = b;
            if let Ok(mut ev @ (ExecEvent::Stdout { .. } | ExecEvent::Stderr { .. })) =
                serde_json::from_slice::<ExecEvent>(&b)
            {
                let (ExecEvent::Stdout { data } | ExecEvent::Stderr { data }) = &mut ev else {
                    unreachable!()
                };
                if !secrets.is_empty() {
                    let clean = secrets.scrub(data);
                    if clean != *data {
                        *data = clean;
                        b = ndjson(&ev);
                    }
                }
                let (ExecEvent::Stdout { data } | ExecEvent::Stderr { data }) = &ev else {
                    unreachable!()
                };
                tail.push_str(data);
                if tail.len() > 2 * TAIL_BYTES {
                    let mut cut = tail.len() - TAIL_BYTES;
                    while !tail.is_char_boundary(cut) {
                        cut += 1;
                    }
                    tail.drain(..cut);
                }
            }
            if out.send(b).await.is_err() {
                break;
            }
        }
        let lines: Vec<&str> = tail.lines().collect();
        lines[lines.len().saturating_sub(LAST_LINES)..]
            .iter()
            .map(|l| l.to_string())
            .collect()
    });
    (tx, task)
}

/// What the static folder holds: each file's path under it, sha256 and size, and what was
/// skipped.
#[derive(Default)]
struct Collected {
    files: Vec<(String, String, u64)>,
    skipped: Vec<SkippedFile>,
    skipped_more: u64,
}

/// The static folder's files and what was skipped; never through a symlink, refused at the
/// first limit passed. Blocking.
fn collect(dir: &Path, static_dir: &str, limits: DistLimits) -> Result<Collected, Fail> {
    let io = |e: FsError| Fail::new(Phase::Collect, "build_io", e.to_string());
    let root = fsafe::open_root(dir).map_err(io)?;
    let top = fsafe::open_dir(&root, static_dir, false).map_err(|e| match e {
        FsError::NotFound(_) | FsError::NotDir(_) | FsError::Symlink(_) => Fail::new(
            Phase::Collect,
            "static_dir_missing",
            format!("static_dir {static_dir:?} is not a directory after the build ({e})"),
        ),
        e => io(e),
    })?;
    let mut walk = DistWalk::new(limits);
    // Paths, not open folders, wait on the stack: a wide tree holds no file descriptors.
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let d = fsafe::open_dir(&top, &rel, false).map_err(io)?;
        let mut names = Vec::new();
        for ent in rfs::Dir::read_from(&d).map_err(|e| {
            io(FsError::Io {
                path: rel.clone(),
                err: e.into(),
            })
        })? {
            let ent = ent.map_err(|e| {
                io(FsError::Io {
                    path: rel.clone(),
                    err: e.into(),
                })
            })?;
            let name = ent.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let name = String::from_utf8(name.to_vec()).map_err(|e| {
                Fail::new(
                    Phase::Collect,
                    "invalid_path",
                    format!(
                        "a name under {static_dir:?}/{rel} is not UTF-8: {:?}",
                        String::from_utf8_lossy(e.as_bytes())
                    ),
                )
            })?;
            names.push(name);
        }
        names.sort();
        for name in names {
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let dist = |e: open_replit_core::deploy::build::DistError| {
                Fail::new(Phase::Collect, e.code(), e.to_string())
            };
            match fsafe::kind_at(&d, &name).map_err(io)? {
                None => {}
                Some((Kind::Dir, _)) => {
                    walk.dir(&path).map_err(dist)?;
                    stack.push(path);
                }
                Some((Kind::File, st)) => walk
                    .add(&path, st.st_size.max(0) as u64, EntryKind::File)
                    .map_err(dist)?,
                Some((Kind::Symlink, _)) => walk.add(&path, 0, EntryKind::Symlink).map_err(dist)?,
                Some((Kind::Other, _)) => walk.add(&path, 0, EntryKind::Other).map_err(dist)?,
            }
        }
    }
    let (files, skipped, skipped_more) = walk.finish();
    let top = fsafe::open_dir(&root, static_dir, false).map_err(io)?;
    let mut out = Vec::with_capacity(files.len());
    for (path, _) in files {
        let bytes = match fsafe::read_file_max(&top, &path, limits.max_file_bytes as usize) {
            Ok(Some(b)) => b,
            Ok(None) => continue, // replaced since the walk: not a regular file any more
            Err(e @ FsError::TooLarge { .. }) => {
                return Err(Fail::new(Phase::Collect, "file_too_large", e.to_string()))
            }
            Err(e) => return Err(io(e)),
        };
        out.push((path, sha256_hex(&bytes), bytes.len() as u64));
    }
    Ok(Collected {
        files: out,
        skipped,
        skipped_more,
    })
}

/// A static file's bytes read again for its upload, refused when they no longer hash to `sha`.
async fn read_static(
    dir: PathBuf,
    static_dir: String,
    path: String,
    sha: String,
    max: usize,
) -> Result<Vec<u8>, String> {
    tokio::task::spawn_blocking(move || {
        let root = fsafe::open_root(&dir).map_err(|e| e.to_string())?;
        let top = fsafe::open_dir(&root, &static_dir, false).map_err(|e| e.to_string())?;
        match fsafe::read_file_max(&top, &path, max).map_err(|e| e.to_string())? {
            Some(b) if sha256_hex(&b) == sha => Ok(b),
            _ => Err(format!("{path} changed after it was collected")),
        }
    })
    .await
    .map_err(|e| e.to_string())?
}
