//! The shared dependency cache behind `exec` with a `cache` field: an install command
//! (`npm install`, `pip install`) runs once per exact set of dependency manifests, in a clean
//! builder sandbox that holds nothing but those manifests, and projects get the result as hard
//! links to root-owned read-only files, so no project can change what another one runs.
//!
//! Policy, for one request (key = command, cwd, env and the inputs' bytes):
//! 1. the key is cached: link it in (a new project from a template: well under a second);
//! 2. the project already has the outputs: run the command in the project (an incremental
//!    install, with the project's own warm package cache);
//! 3. an earlier build exists for the same command and cwd: link it in, then run the command
//!    in the project, which only adds what changed (the second time a key comes this way, it
//!    is also built clean in the background);
//! 4. otherwise build it in the clean builder, cache it, link it in. If the clean build fails
//!    (the command needed more than its inputs), it runs in the project instead.
//!
//! At most `max_entries` installs and `max_bytes` of them are kept, the least recently used
//! removed first (each entry's size is recorded when it is stored).
//! Only used under a sandbox that gives each project its own uid (see `Sandbox::project_uid`);
//! anything unexpected falls back to running the command in the project, with a note.

use crate::error::ApiError;
use crate::fsafe::{self, Kind};
use crate::process::{drive, exit_event, spawn_in_group, text_event, Outcome, StreamKind};
use crate::sandbox::CommandSpec;
use crate::state::AppState;
use axum::body::Bytes;
use open_replit_core::vm_api::ExecCache;
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The sandbox identity of one install command's clean builds (see core's `ids`: a namespace
/// no project id can enter).
pub use open_replit_core::ids::builder_id;
const MAX_INPUTS: usize = 16;
const MAX_OUTPUTS: usize = 8;
const MAX_INPUT_BYTES: usize = 4 << 20;
/// A quiet install says it is still running this often.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(10);

/// Each input's path and bytes (`None`: missing).
pub type Inputs = Vec<(String, Option<Vec<u8>>)>;

/// Checks the `cache` field of an exec request (`400 invalid_cache`).
pub fn validate_spec(spec: &ExecCache) -> Result<(), ApiError> {
    let bad = |m: String| ApiError::bad_request("invalid_cache", m);
    if spec.inputs.is_empty() || spec.inputs.len() > MAX_INPUTS {
        return Err(bad(format!(
            "cache.inputs must name 1 to {MAX_INPUTS} files"
        )));
    }
    if spec.outputs.is_empty() || spec.outputs.len() > MAX_OUTPUTS {
        return Err(bad(format!(
            "cache.outputs must name 1 to {MAX_OUTPUTS} entries"
        )));
    }
    for i in &spec.inputs {
        open_replit_core::paths::validate_path(i)
            .map_err(|e| bad(format!("cache.inputs {i:?} breaks rule {}: {e}", e.rule())))?;
    }
    for o in &spec.outputs {
        if o.is_empty() || o.contains('/') || o == "." || o == ".." || o.contains('\0') {
            return Err(bad(format!(
                "cache.outputs {o:?} must be one file or directory name"
            )));
        }
    }
    Ok(())
}

/// The cache's directory and the lock that lets one clean build run at a time.
pub struct DepsCache {
    root: PathBuf,
    /// Entries kept; the least recently used beyond this are removed after a build.
    pub max_entries: usize,
    /// Bytes kept (the entries' file sizes); the least recently used go first, but the
    /// newest entry always stays, however big.
    pub max_bytes: u64,
    /// How often each uncached key was installed on top of a base; the second time, it is
    /// worth a clean build of its own (a template whose manifests changed since the base).
    misses: std::sync::Mutex<BTreeMap<String, u32>>,
    /// One build at a time per builder identity.
    build_locks: std::sync::Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>,
    trash_seq: AtomicU64,
}

/// One exec with a cache spec, everything validated by the route.
#[derive(Clone)]
pub struct CachedExec {
    pub project: String,
    pub project_dir: PathBuf,
    pub home_dir: PathBuf,
    pub command: String,
    pub cwd: String,
    pub env: BTreeMap<String, String>,
    pub timeout: Duration,
    pub spec: ExecCache,
    pub uid: u32,
}

fn hex(d: impl AsRef<[u8]>) -> String {
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The cache key: everything that decides what the command installs.
pub fn cache_key(
    command: &str,
    cwd: &str,
    env: &BTreeMap<String, String>,
    inputs: &[(String, Option<Vec<u8>>)],
) -> String {
    let mut h = Sha256::new();
    h.update(b"open-replit deps v1\0");
    for part in [command, cwd] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    for (k, v) in env {
        h.update(format!("{}:{k}={}:{v}\0", k.len(), v.len()).as_bytes());
    }
    for (path, bytes) in inputs {
        h.update((path.len() as u64).to_le_bytes());
        h.update(path.as_bytes());
        match bytes {
            None => h.update(u64::MAX.to_le_bytes()),
            Some(b) => {
                h.update((b.len() as u64).to_le_bytes());
                h.update(b);
            }
        }
    }
    hex(h.finalize())
}

fn base_name(command: &str, cwd: &str) -> String {
    let mut h = Sha256::new();
    h.update(command.as_bytes());
    h.update(b"\0");
    h.update(cwd.as_bytes());
    format!("base-{}", &hex(h.finalize())[..32])
}

fn io_err(what: &str, e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("{what}: {e}"))
}

const DIR_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC)
    .union(OFlags::RDONLY);

impl DepsCache {
    pub fn new(root: PathBuf) -> DepsCache {
        DepsCache {
            root,
            build_locks: Default::default(),
            max_entries: 32,
            max_bytes: 16 << 30,
            misses: Default::default(),
            trash_seq: AtomicU64::new(0),
        }
    }

    fn entry(&self, key: &str) -> PathBuf {
        self.root.join("entries").join(key)
    }

    /// Whether `key` is cached (an entry appears only once complete, by rename).
    pub fn has(&self, key: &str) -> bool {
        self.entry(key).is_dir()
    }

    /// The lock that serializes the clean builds of one builder identity.
    fn build_lock(&self, command: &str, cwd: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.build_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(builder_id(command, cwd))
            .or_default()
            .clone()
    }

    /// The complete entries, least recently used first.
    pub fn entries(&self) -> Vec<String> {
        let mut v: Vec<(std::time::SystemTime, String)> =
            std::fs::read_dir(self.root.join("entries"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let m = e.metadata().ok()?;
                    let used = m.modified().ok()?;
                    (m.is_dir() && !name.ends_with(".tmp")).then_some((used, name))
                })
                .collect();
        v.sort();
        v.into_iter().map(|(_, n)| n).collect()
    }

    /// Marks an entry as just used.
    fn touch(&self, key: &str) {
        let _ = rfs::utimensat(
            rfs::CWD,
            self.entry(key),
            &rfs::Timestamps {
                last_access: rfs::Timespec {
                    tv_sec: 0,
                    tv_nsec: rfs::UTIME_NOW,
                },
                last_modification: rfs::Timespec {
                    tv_sec: 0,
                    tv_nsec: rfs::UTIME_NOW,
                },
            },
            AtFlags::empty(),
        );
    }

    /// The recorded size of an entry in bytes (measured and recorded now if it is missing).
    pub fn entry_bytes(&self, key: &str) -> u64 {
        let record = self.root.join("sizes").join(key);
        if let Some(n) = std::fs::read_to_string(&record)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return n;
        }
        let n = tree_bytes(&self.entry(key));
        let _ = std::fs::create_dir_all(self.root.join("sizes"));
        let _ = std::fs::write(&record, n.to_string());
        n
    }

    /// Removes least recently used entries (never `keep`) while there are more than
    /// `max_entries` or they hold more than `max_bytes`. Projects that linked them keep their
    /// files: a hard link outlives the cache's name for it.
    fn evict(&self, keep: &str) {
        let entries = self.entries();
        let sizes: Vec<u64> = entries.iter().map(|k| self.entry_bytes(k)).collect();
        let (mut count, mut bytes) = (entries.len(), sizes.iter().sum::<u64>());
        let Ok(dir) = rfs::open(self.root.join("entries"), DIR_FLAGS, Mode::empty()) else {
            return;
        };
        for (key, size) in entries.iter().zip(sizes) {
            if count <= self.max_entries && bytes <= self.max_bytes {
                break;
            }
            if key == keep {
                continue;
            }
            tracing::info!(key = %key, bytes = size, "dependency cache: evicting the least recently used entry");
            if self.discard(&dir, key).is_ok() {
                let _ = std::fs::remove_file(self.root.join("sizes").join(key));
                count -= 1;
                bytes -= size;
            }
        }
    }

    /// The most recent clean build for this command and cwd, if any.
    fn base(&self, command: &str, cwd: &str) -> Option<String> {
        let key = std::fs::read_to_string(self.root.join(base_name(command, cwd))).ok()?;
        let key = key.trim().to_string();
        self.has(&key).then_some(key)
    }

    /// Moves `name` out of `dir` into the trash and deletes it in the background.
    fn discard(&self, dir: &OwnedFd, name: &str) -> std::io::Result<()> {
        let trash = self.root.join("trash");
        std::fs::create_dir_all(&trash)?;
        let tfd = rfs::open(&trash, DIR_FLAGS, Mode::empty())?;
        let unique = format!(
            "{}-{}",
            std::process::id(),
            self.trash_seq.fetch_add(1, Ordering::Relaxed)
        );
        rfs::renameat(dir, name, &tfd, unique.as_str())?;
        let victim = trash.join(unique);
        std::thread::spawn(move || {
            // std's remove_dir_all never follows symlinks.
            let _ = std::fs::remove_dir_all(&victim).or_else(|_| std::fs::remove_file(&victim));
        });
        Ok(())
    }

    /// Links the cached `outputs` of `key` into the project's `cwd`, replacing what is there.
    /// Returns the number of files linked.
    pub fn link_into(
        &self,
        key: &str,
        project_dir: &Path,
        cwd: &str,
        outputs: &[String],
        uid: u32,
    ) -> std::io::Result<u64> {
        let root = fsafe::open_root(project_dir).map_err(|e| io_err("project", e))?;
        let dst = fsafe::open_dir(&root, cwd, false).map_err(|e| io_err("cwd", e))?;
        let src = rfs::open(self.entry(key), DIR_FLAGS, Mode::empty())?;
        self.touch(key);
        let mut files = 0;
        for o in outputs {
            if fsafe::kind_at(&dst, o).map_err(|e| io_err(o, e))?.is_some() {
                self.discard(&dst, o)?;
            }
            let st = rfs::statat(&src, o.as_str(), AtFlags::SYMLINK_NOFOLLOW)?;
            link_entry(&src, &dst, o, &st, uid, &mut files)?;
        }
        Ok(files)
    }

    /// Runs the command in a fresh builder directory holding only `inputs`; on success, moves
    /// the outputs into the cache, owned by root and read-only, under `key`.
    async fn build(
        &self,
        st: &AppState,
        job: &CachedExec,
        key: &str,
        inputs: &[(String, Option<Vec<u8>>)],
        tx: &mpsc::Sender<Bytes>,
    ) -> std::io::Result<Outcome> {
        let builder = builder_id(&job.command, &job.cwd);
        // The builder's namespace is reaped like a project's once its builds stop.
        let _in_use = st.activity.hold(&builder);
        let build = self.root.join("build").join(&builder);
        let home = self.root.join("build-home").join(&builder);
        st.sandbox.kill_project(&builder);
        for d in [&build, &home] {
            if d.exists() {
                std::fs::remove_dir_all(d)?;
            }
            std::fs::create_dir_all(d)?;
        }
        let broot = fsafe::open_root(&build).map_err(|e| io_err("build", e))?;
        for (path, bytes) in inputs {
            if let Some(b) = bytes {
                fsafe::write_atomic(&broot, path, b).map_err(|e| io_err(path, e))?;
            }
        }
        fsafe::open_dir(&broot, &job.cwd, true).map_err(|e| io_err("cwd", e))?;
        st.sandbox
            .prepare_project(&builder, &build, &home)
            .map_err(|e| io_err("builder", e))?;
        let out = run_as(st, job, &builder, &build, &home, tx)
            .await
            .map_err(|e| io_err("builder", e))?;
        // Nothing the build started (a daemon from a postinstall script) outlives it.
        st.sandbox.kill_project(&builder);
        if out.exit_code != Some(0) || out.timed_out || out.client_gone {
            return Ok(out);
        }
        let tmp = self.root.join("entries").join(format!("{key}.tmp"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        let tfd = rfs::open(&tmp, DIR_FLAGS, Mode::empty())?;
        let bcwd = fsafe::open_dir(&broot, &job.cwd, false).map_err(|e| io_err("cwd", e))?;
        for o in &job.spec.outputs {
            match fsafe::kind_at(&bcwd, o).map_err(|e| io_err(o, e))? {
                Some((Kind::Dir | Kind::File, _)) => {
                    rfs::renameat(&bcwd, o.as_str(), &tfd, o.as_str())?
                }
                other => {
                    return Err(io_err(
                        o,
                        format!(
                            "the command did not produce it (found {:?})",
                            other.map(|k| k.0)
                        ),
                    ))
                }
            }
        }
        seal(&tmp)?;
        let size = tree_bytes(&tmp);
        std::fs::rename(&tmp, self.entry(key))?;
        std::fs::create_dir_all(self.root.join("sizes"))?;
        std::fs::write(self.root.join("sizes").join(key), size.to_string())?;
        self.evict(key);
        let pointer = self.root.join(base_name(&job.command, &job.cwd));
        std::fs::write(pointer.with_extension("tmp"), key)?;
        std::fs::rename(pointer.with_extension("tmp"), pointer)?;
        let _ = std::fs::remove_dir_all(&build);
        let _ = std::fs::remove_dir_all(&home);
        Ok(out)
    }
}

/// The bytes of the regular files under `dir`, symlinks not followed.
fn tree_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

/// Gives everything under `dir` to root and takes away every write bit.
fn seal(dir: &Path) -> std::io::Result<()> {
    let mut failed: Option<std::io::Error> = None;
    crate::sandbox::identity::walk_nofollow(dir, &mut |parent, name, st| {
        let r = rfs::chownat(
            parent,
            name,
            Some(rfs::Uid::ROOT),
            Some(rfs::Gid::ROOT),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .and_then(|()| {
            if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Symlink {
                return Ok(());
            }
            let mode = st.st_mode & 0o555;
            rfs::chmodat(parent, name, Mode::from_raw_mode(mode), AtFlags::empty())
        });
        if let Err(e) = r {
            failed.get_or_insert(e.into());
        }
    })?;
    failed.map_or(Ok(()), Err)
}

/// Recreates one cached entry under `dst`: directories new and owned by the project, files as
/// hard links to the root-owned originals, symlinks copied.
fn link_entry(
    src: &OwnedFd,
    dst: &OwnedFd,
    name: &str,
    st: &rfs::Stat,
    uid: u32,
    files: &mut u64,
) -> std::io::Result<()> {
    let owner = (Some(rfs::Uid::from_raw(uid)), Some(rfs::Gid::from_raw(uid)));
    match rfs::FileType::from_raw_mode(st.st_mode) {
        rfs::FileType::Directory => {
            rfs::mkdirat(dst, name, Mode::from_raw_mode(0o700))?;
            let d = rfs::openat(dst, name, DIR_FLAGS, Mode::empty())?;
            rfs::fchown(&d, owner.0, owner.1)?;
            rfs::fchmod(&d, Mode::from_raw_mode((st.st_mode & 0o7777) | 0o700))?;
            let s = rfs::openat(src, name, DIR_FLAGS, Mode::empty())?;
            let mut entries = rfs::Dir::read_from(&s)?;
            for ent in entries.by_ref() {
                let ent = ent?;
                let n = ent.file_name().to_string_lossy().into_owned();
                if n == "." || n == ".." {
                    continue;
                }
                let est = rfs::statat(&s, n.as_str(), AtFlags::SYMLINK_NOFOLLOW)?;
                link_entry(&s, &d, &n, &est, uid, files)?;
            }
        }
        rfs::FileType::RegularFile => {
            match rfs::linkat(src, name, dst, name, AtFlags::empty()) {
                Ok(()) => {}
                // The file system's link limit: this one file becomes the project's own copy.
                Err(Errno::MLINK) => {
                    let from = rfs::openat(
                        src,
                        name,
                        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                        Mode::empty(),
                    )?;
                    let to = rfs::openat(
                        dst,
                        name,
                        OFlags::WRONLY
                            | OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::NOFOLLOW
                            | OFlags::CLOEXEC,
                        Mode::from_raw_mode((st.st_mode & 0o777) | 0o200),
                    )?;
                    std::io::copy(
                        &mut std::fs::File::from(from),
                        &mut std::fs::File::from(to.try_clone()?),
                    )?;
                    rfs::fchown(&to, owner.0, owner.1)?;
                }
                Err(e) => return Err(e.into()),
            }
            *files += 1;
        }
        rfs::FileType::Symlink => {
            let target = rfs::readlinkat(src, name, Vec::new())?;
            rfs::symlinkat(target.as_c_str(), dst, name)?;
            rfs::chownat(dst, name, owner.0, owner.1, AtFlags::SYMLINK_NOFOLLOW)?;
        }
        _ => {}
    }
    Ok(())
}

/// Reads the inputs from the project without following symlinks (missing ones count as such).
fn read_inputs(project_dir: &Path, inputs: &[String]) -> Result<Inputs, String> {
    let root = fsafe::open_root(project_dir).map_err(|e| e.to_string())?;
    let mut out: Inputs = Vec::new();
    let mut names = inputs.to_vec();
    names.sort();
    names.dedup();
    for p in names {
        let b = fsafe::read_file(&root, &p).map_err(|e| e.to_string())?;
        if b.as_ref().is_some_and(|b| b.len() > MAX_INPUT_BYTES) {
            return Err(format!("{p} is larger than {MAX_INPUT_BYTES} bytes"));
        }
        out.push((p, b));
    }
    Ok(out)
}

fn outputs_present(project_dir: &Path, cwd: &str, outputs: &[String]) -> bool {
    let Ok(root) = fsafe::open_root(project_dir) else {
        return false;
    };
    let Ok(d) = fsafe::open_dir(&root, cwd, false) else {
        return false;
    };
    outputs
        .iter()
        .all(|o| matches!(fsafe::kind_at(&d, o), Ok(Some(_))))
}

async fn note(tx: &mpsc::Sender<Bytes>, kind: StreamKind, text: String) {
    let _ = tx.send(text_event(kind, &text)).await;
}

/// Says why the cache is not used this time, then runs the command in the project itself.
async fn fall_back(
    st: &AppState,
    job: &CachedExec,
    tx: &mpsc::Sender<Bytes>,
    why: impl std::fmt::Display,
) -> Outcome {
    note(
        tx,
        StreamKind::Stderr,
        format!("[dependency cache] {why}; running the command in the project itself\n"),
    )
    .await;
    in_project(st, job, tx).await
}

/// Runs the job's command as sandbox identity `id` in `dir` (with home `home`), streaming its
/// output into `tx`; an error means it could not start.
async fn run_as(
    st: &AppState,
    job: &CachedExec,
    id: &str,
    dir: &Path,
    home: &Path,
    tx: &mpsc::Sender<Bytes>,
) -> Result<Outcome, String> {
    let cmd = st
        .sandbox
        .command(&CommandSpec {
            project_id: id,
            project_dir: dir,
            home_dir: home,
            cwd: &job.cwd,
            shell: &job.command,
            env: &job.env,
        })
        .map_err(|e| e.to_string())?;
    let child = spawn_in_group(cmd).map_err(|e| format!("could not start: {e}"))?;
    Ok(drive(
        child,
        job.timeout,
        st.limits.output_cap_bytes,
        tx,
        st.shutdown_signal(),
        Some(HEARTBEAT),
    )
    .await)
}

/// Runs the command in the project itself and returns how it ended.
async fn in_project(st: &AppState, job: &CachedExec, tx: &mpsc::Sender<Bytes>) -> Outcome {
    match run_as(st, job, &job.project, &job.project_dir, &job.home_dir, tx).await {
        Ok(out) => out,
        Err(e) => {
            note(tx, StreamKind::Stderr, format!("{e}\n")).await;
            Outcome {
                exit_code: None,
                timed_out: false,
                truncated: false,
                client_gone: false,
            }
        }
    }
}

fn done(code: i32) -> Outcome {
    Outcome {
        exit_code: Some(code),
        timed_out: false,
        truncated: false,
        client_gone: false,
    }
}

/// Drives one cached exec to its end, streaming NDJSON into `tx` (the exit event last).
pub async fn run(st: Arc<AppState>, job: CachedExec, tx: mpsc::Sender<Bytes>) {
    let started = Instant::now();
    let outcome = run_inner(&st, &job, &tx).await;
    let _ = tx.send(exit_event(&outcome, started)).await;
}

/// The cache's policy for one job (see the module documentation), streaming its output into
/// `tx` without the exit event; how the command ended.
pub(crate) async fn run_inner(
    st: &Arc<AppState>,
    job: &CachedExec,
    tx: &mpsc::Sender<Bytes>,
) -> Outcome {
    let cache = &st.deps;
    let inputs = match read_inputs(&job.project_dir, &job.spec.inputs) {
        Ok(i) => i,
        Err(e) => return fall_back(st, job, tx, format!("not used: {e}")).await,
    };
    let key = cache_key(&job.command, &job.cwd, &job.env, &inputs);
    let outputs = job.spec.outputs.join(", ");
    let link = |key: &str| {
        let t0 = Instant::now();
        cache
            .link_into(key, &job.project_dir, &job.cwd, &job.spec.outputs, job.uid)
            .map(|n| (n, t0.elapsed()))
    };
    if cache.has(&key) {
        match link(&key) {
            Ok((n, t)) => {
                note(
                    tx,
                    StreamKind::Stdout,
                    format!(
                        "[dependency cache] {outputs}: {n} files linked from the cache in {} ms (key {})\n",
                        t.as_millis(),
                        &key[..12]
                    ),
                )
                .await;
                return done(0);
            }
            Err(e) => return fall_back(st, job, tx, format!("linking failed ({e})")).await,
        }
    }

    if outputs_present(&job.project_dir, &job.cwd, &job.spec.outputs) {
        return in_project(st, job, tx).await;
    }
    if let Some(base) = cache.base(&job.command, &job.cwd) {
        match link(&base) {
            Ok((n, t)) => {
                note(
                    tx,
                    StreamKind::Stdout,
                    format!(
                        "[dependency cache] {outputs}: started from a cached install ({n} files in {} ms); installing the difference\n",
                        t.as_millis()
                    ),
                )
                .await
            }
            Err(e) => {
                note(
                    tx,
                    StreamKind::Stderr,
                    format!("[dependency cache] linking failed ({e})\n"),
                )
                .await
            }
        }
        let out = in_project(st, job, tx).await;
        let seen = {
            let mut m = cache.misses.lock().unwrap_or_else(|p| p.into_inner());
            let n = m.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        if seen == 2 {
            // These manifests recur: build them clean in the background for the next project.
            let (st, job, inputs) = (st.clone(), job.clone(), inputs.clone());
            tokio::spawn(async move {
                let (tx, mut rx) = mpsc::channel::<Bytes>(64);
                let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
                let lock = st.deps.build_lock(&job.command, &job.cwd);
                let _guard = lock.lock().await;
                if !st.deps.has(&key) {
                    match st.deps.build(&st, &job, &key, &inputs, &tx).await {
                        Ok(o) => {
                            tracing::info!(key = %&key[..12], exit = ?o.exit_code, "dependency cache: background build")
                        }
                        Err(e) => {
                            tracing::warn!(key = %&key[..12], "dependency cache: background build failed: {e}")
                        }
                    }
                }
                drop(tx);
                let _ = drain.await;
            });
        }
        return out;
    }
    let lock = cache.build_lock(&job.command, &job.cwd);
    let _guard = lock.lock().await;
    if !cache.has(&key) {
        note(
            tx,
            StreamKind::Stdout,
            format!(
                "[dependency cache] installing in a clean copy holding only {} (shared with later projects)\n",
                job.spec.inputs.join(", ")
            ),
        )
        .await;
        match cache.build(st, job, &key, &inputs, tx).await {
            Ok(out) if out.exit_code == Some(0) => {}
            Ok(out) if out.client_gone || out.timed_out => return out,
            Ok(_) => return fall_back(st, job, tx, "the clean install failed").await,
            Err(e) => {
                return fall_back(st, job, tx, format!("could not cache the install ({e})")).await
            }
        }
    }
    drop(_guard);
    match link(&key) {
        Ok((n, t)) => {
            note(
                tx,
                StreamKind::Stdout,
                format!(
                    "[dependency cache] {outputs}: {n} files linked in {} ms\n",
                    t.as_millis()
                ),
            )
            .await;
            done(0)
        }
        Err(e) => fall_back(st, job, tx, format!("linking failed ({e})")).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_change_with_every_input() {
        let env = BTreeMap::new();
        let i = |b: &str| vec![("a/package.json".to_string(), Some(b.as_bytes().to_vec()))];
        let k = cache_key("npm install", "a", &env, &i("{}"));
        assert_eq!(k, cache_key("npm install", "a", &env, &i("{}")));
        assert_ne!(k, cache_key("npm install", "a", &env, &i("{ }")));
        assert_ne!(k, cache_key("npm ci", "a", &env, &i("{}")));
        assert_ne!(k, cache_key("npm install", "b", &env, &i("{}")));
        let missing = vec![("a/package.json".to_string(), None)];
        assert_ne!(k, cache_key("npm install", "a", &env, &missing));
        let env2 = BTreeMap::from([("NODE_ENV".to_string(), "production".to_string())]);
        assert_ne!(k, cache_key("npm install", "a", &env2, &i("{}")));
    }

    #[test]
    fn specs_are_validated() {
        let s = |i: &[&str], o: &[&str]| {
            validate_spec(&ExecCache {
                inputs: i.iter().map(|x| x.to_string()).collect(),
                outputs: o.iter().map(|x| x.to_string()).collect(),
            })
        };
        assert!(s(&["package.json"], &["node_modules"]).is_ok());
        assert!(s(&["../etc/passwd"], &["node_modules"]).is_err());
        assert!(s(&["package.json"], &["a/b"]).is_err());
        assert!(s(&["package.json"], &[".."]).is_err());
        assert!(s(&[], &["x"]).is_err());
    }
}
