//! Working-copy sync: `POST /projects/{id}/sync` makes the project directory match a manifest
//! (fetching only missing objects, writing atomically, never through symlinks; where the working
//! copy disagrees on what a path is, storage wins and what it displaces is reported), and
//! `GET /projects/{id}/files` lists what is actually on disk.

use crate::error::{check_project_id, parse_json, ApiError};
use crate::fsafe::{self, FsError};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::Json;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use open_replit_core::manifest::Manifest;
use open_replit_core::paths;
use open_replit_core::vm_api::{DiskFile, FilesReply, SyncReport, SyncRequest};
use open_replit_core::vm_auth::sha256_hex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Objects fetched at once.
const FETCH_CONCURRENCY: usize = 8;
/// Displaced paths a sync report lists; the rest are counted (`displaced_more`).
pub const DISPLACED_LIST_LIMIT: usize = 100;
/// Coarsest file timestamp granularity we allow for (a kernel tick at HZ=100). A file whose
/// mtime is this close to the moment its content was taken may be written again within the
/// same tick, keeping size, mtime and inode: its stat is not trusted by the next scan or sync.
pub(crate) const MTIME_TICK_NS: i64 = 10_000_000;

/// Wall-clock now, in the nanoseconds `stat` reports.
pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(i64::MAX)
}

/// `mtime_ns` if a stat taken with content read no earlier than `taken_ns` can be trusted,
/// else `-1` (racily clean, as git calls it: hash again next time).
pub(crate) fn trusted_mtime(mtime_ns: i64, taken_ns: i64) -> i64 {
    if mtime_ns.saturating_add(MTIME_TICK_NS) <= taken_ns {
        mtime_ns
    } else {
        -1
    }
}
/// Most entries `GET /files` lists.
const LIST_LIMIT: usize = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("object {0} not found in blob storage")]
    NotFound(String),
    #[error("blob storage: {0}")]
    Transport(String),
}

/// Where content-addressed objects come from (Azure in production, a map in unit tests), and
/// where the change scan saves the objects of files a command changed.
pub trait ObjectSource: Send + Sync {
    fn fetch<'a>(
        &'a self,
        project: &'a str,
        sha256: &'a str,
    ) -> BoxFuture<'a, Result<Vec<u8>, FetchError>>;

    /// Stores `bytes` as object `sha256` unless it is there already (then it is success too).
    /// A read-only source refuses.
    fn put<'a>(
        &'a self,
        project: &'a str,
        sha256: &'a str,
        bytes: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), FetchError>> {
        let _ = (project, bytes);
        Box::pin(async move {
            Err(FetchError::Transport(format!(
                "this object source is read-only; cannot store {sha256}"
            )))
        })
    }

    /// Removes every blob of the project (its meta first); answers how many went. A
    /// read-only source refuses.
    fn delete_project<'a>(&'a self, project: &'a str) -> BoxFuture<'a, Result<usize, FetchError>> {
        Box::pin(async move {
            Err(FetchError::Transport(format!(
                "this object source is read-only; cannot remove project {project}"
            )))
        })
    }

    /// Like [`ObjectSource::put`], and says whether this call created the object (`false`:
    /// it was there already), for a deployment's `uploaded` count.
    fn put_new<'a>(
        &'a self,
        project: &'a str,
        sha256: &'a str,
        bytes: Vec<u8>,
    ) -> BoxFuture<'a, Result<bool, FetchError>> {
        Box::pin(async move { self.put(project, sha256, bytes).await.map(|()| true) })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("manifest path {path:?} breaks rule {rule}: {msg}")]
    InvalidPath {
        path: String,
        rule: &'static str,
        msg: String,
    },
    #[error("manifest: {0}")]
    InvalidManifest(String),
    #[error("{0}")]
    Fetch(#[from] FetchError),
    #[error("object {sha256} has content hashing to {actual}; refusing to write it")]
    HashMismatch { sha256: String, actual: String },
    #[error("{0}")]
    Fs(#[from] FsError),
    #[error("sync state: {0}")]
    State(String),
}

/// Object `sha256` of `project` from storage, refused unless its bytes hash to that name.
pub async fn fetch_verified(
    src: &dyn ObjectSource,
    project: &str,
    sha256: &str,
) -> Result<Vec<u8>, SyncError> {
    let bytes = src.fetch(project, sha256).await?;
    let actual = sha256_hex(&bytes);
    if actual != sha256 {
        return Err(SyncError::HashMismatch {
            sha256: sha256.to_string(),
            actual,
        });
    }
    Ok(bytes)
}

impl From<SyncError> for ApiError {
    fn from(e: SyncError) -> Self {
        let msg = e.to_string();
        match e {
            SyncError::InvalidPath { .. } => ApiError::bad_request("invalid_path", msg),
            SyncError::InvalidManifest(_) => ApiError::bad_request("invalid_manifest", msg),
            SyncError::Fetch(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "object_fetch_failed", msg)
            }
            SyncError::HashMismatch { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "object_hash_mismatch", msg)
            }
            SyncError::Fs(FsError::Symlink(_)) => ApiError::conflict("unsafe_path", msg),
            SyncError::Fs(FsError::IsDir(_) | FsError::NotDir(_)) => {
                ApiError::conflict("path_conflict", msg)
            }
            SyncError::Fs(_) | SyncError::State(_) => ApiError::internal("sync_io", msg),
        }
    }
}

/// What the service remembers about a project's working copy between syncs, kept outside it.
/// `files` is the manifest the working copy was last made equal to (by a sync, or advanced by
/// a saved change scan), with the stat identity each file had then.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct SyncState {
    pub(crate) files: BTreeMap<String, Known>,
    /// Paths a started-but-unfinished sync may have written; cleaned up by the next sync.
    #[serde(default)]
    pub(crate) pending: BTreeSet<String>,
    /// Paths the last change report listed as skipped, so an exec reports a skip once, not
    /// after every later command.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub(crate) skipped: BTreeSet<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Known {
    pub(crate) sha256: String,
    pub(crate) size: u64,
    /// `-1` when the scan could not trust the stat (the file changed while it was read), so
    /// the next scan hashes it again.
    pub(crate) mtime_ns: i64,
    pub(crate) ino: u64,
}

impl SyncState {
    /// The manifest the state stands for.
    pub(crate) fn manifest(&self) -> Manifest {
        Manifest {
            files: self
                .files
                .iter()
                .map(|(p, k)| {
                    (
                        p.clone(),
                        open_replit_core::manifest::FileEntry {
                            sha256: k.sha256.clone(),
                            size: k.size,
                        },
                    )
                })
                .collect(),
        }
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Every rule a manifest must meet before anything touches the disk.
pub fn validate_manifest(m: &Manifest) -> Result<(), SyncError> {
    paths::validate_file_count(m.files.len())
        .map_err(|e| SyncError::InvalidManifest(e.to_string()))?;
    for (p, e) in &m.files {
        paths::validate_path(p).map_err(|err| SyncError::InvalidPath {
            path: p.clone(),
            rule: err.rule(),
            msg: err.to_string(),
        })?;
        paths::validate_size(e.size as usize).map_err(|err| SyncError::InvalidPath {
            path: p.clone(),
            rule: err.rule(),
            msg: err.to_string(),
        })?;
        if !is_sha256_hex(&e.sha256) {
            return Err(SyncError::InvalidManifest(format!(
                "{p:?}: sha256 must be 64 lower-case hex digits"
            )));
        }
        // A path cannot be both a file and a directory of another file.
        let mut prefix = p.as_str();
        while let Some((parent, _)) = prefix.rsplit_once('/') {
            if m.files.contains_key(parent) {
                return Err(SyncError::InvalidPath {
                    path: p.clone(),
                    rule: "file_dir_conflict",
                    msg: format!("{parent:?} is listed as a file and as a directory"),
                });
            }
            prefix = parent;
        }
    }
    Ok(())
}

pub(crate) fn load_state(path: &Path) -> Result<SyncState, SyncError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| SyncError::State(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SyncState::default()),
        Err(e) => Err(SyncError::State(e.to_string())),
    }
}

pub(crate) fn save_state(path: &Path, st: &SyncState) -> Result<(), SyncError> {
    let tmp = path.with_extension("json.tmp");
    let data = serde_json::to_vec(st).map_err(|e| SyncError::State(e.to_string()))?;
    let r = std::fs::write(&tmp, data)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| SyncError::State(e.to_string()));
    read_states().remove(path);
    r
}

/// A sync state as the change scan reads it, kept between scans (see [`load_state_shared`]).
pub(crate) struct SharedState {
    pub state: SyncState,
    base_digest: std::sync::OnceLock<String>,
}

impl SharedState {
    /// The digest of the state's manifest (computed once).
    pub fn base_digest(&self) -> &str {
        self.base_digest
            .get_or_init(|| open_replit_core::vm_api::manifest_digest(&self.state.manifest()))
    }
}

/// Identity of the file a state was read from: written only by [`save_state`]'s rename, a
/// state file's content never changes under one (device, inode, size, mtime, ctime).
type FileId = (u64, u64, u64, i64, i64);

type ReadStates = HashMap<PathBuf, (FileId, Arc<SharedState>)>;

/// The states last read by [`load_state_shared`], per path; [`save_state`] drops its path's.
fn read_states() -> std::sync::MutexGuard<'static, ReadStates> {
    static STATES: std::sync::OnceLock<std::sync::Mutex<ReadStates>> = std::sync::OnceLock::new();
    STATES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Projects whose last read state is kept; beyond it the oldest reads are dropped.
const SHARED_STATES_KEPT: usize = 32;

/// [`load_state`] for the change scan: parsing a 5,000-file state took a tenth of a scan that
/// finds nothing, and most scans find nothing, so the parsed state is kept while its file is
/// the same file (a save replaces it by rename, and drops the kept one).
pub(crate) fn load_state_shared(path: &Path) -> Result<Arc<SharedState>, SyncError> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let err = |e: std::io::Error| SyncError::State(e.to_string());
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            read_states().remove(path);
            return Ok(Arc::new(SharedState {
                state: SyncState::default(),
                base_digest: Default::default(),
            }));
        }
        Err(e) => return Err(err(e)),
    };
    // The identity of the open file, so it matches the bytes read below.
    let md = f.metadata().map_err(err)?;
    let id: FileId = (
        md.dev(),
        md.ino(),
        md.size(),
        md.mtime() * 1_000_000_000 + md.mtime_nsec(),
        md.ctime() * 1_000_000_000 + md.ctime_nsec(),
    );
    if let Some((kept, st)) = read_states().get(path) {
        if *kept == id {
            return Ok(st.clone());
        }
    }
    let mut b = Vec::with_capacity(md.size() as usize);
    f.read_to_end(&mut b).map_err(err)?;
    let state: SyncState =
        serde_json::from_slice(&b).map_err(|e| SyncError::State(e.to_string()))?;
    let st = Arc::new(SharedState {
        state,
        base_digest: Default::default(),
    });
    let mut kept = read_states();
    if kept.len() >= SHARED_STATES_KEPT {
        kept.clear();
    }
    kept.insert(path.to_path_buf(), (id, st.clone()));
    Ok(st)
}

/// The content hash of the file at `rel`, trusting the remembered hash when size, mtime and
/// inode are unchanged; `None` when there is no regular file there.
fn disk_sha(
    root: &std::os::fd::OwnedFd,
    rel: &str,
    known: Option<&Known>,
) -> Result<Option<String>, FsError> {
    let Some((size, mtime, ino)) = fsafe::stat_file(root, rel)? else {
        return Ok(None);
    };
    if let Some(k) = known {
        if k.size == size && k.mtime_ns == mtime && k.ino == ino {
            return Ok(Some(k.sha256.clone()));
        }
    }
    Ok(fsafe::read_file(root, rel)?.map(|b| sha256_hex(&b)))
}

struct Plan {
    writes: Vec<(String, String, bool)>, // path, sha256, existed on disk
    deletes: Vec<String>,
    unchanged: usize,
    /// sha256 → a project path whose current content has it (rename sources, duplicates).
    local: HashMap<String, String>,
}

fn plan(project_dir: &Path, state: &SyncState, target: &Manifest) -> Result<Plan, SyncError> {
    let root = fsafe::open_root(project_dir)?;
    let mut p = Plan {
        writes: Vec::new(),
        deletes: Vec::new(),
        unchanged: 0,
        local: HashMap::new(),
    };
    for (path, e) in &target.files {
        match disk_sha(&root, path, state.files.get(path))? {
            Some(sha) if sha == e.sha256 => {
                p.unchanged += 1;
                p.local.entry(sha).or_insert_with(|| path.clone());
            }
            Some(sha) => {
                p.local.entry(sha).or_insert_with(|| path.clone());
                p.writes.push((path.clone(), e.sha256.clone(), true));
            }
            None => p.writes.push((path.clone(), e.sha256.clone(), false)),
        }
    }
    let candidates: BTreeSet<&String> = state
        .files
        .keys()
        .chain(state.pending.iter())
        .filter(|k| !target.files.contains_key(*k))
        .collect();
    for path in candidates {
        if let Some(sha) = disk_sha(&root, path, state.files.get(path))? {
            p.local.entry(sha).or_insert_with(|| path.clone());
        }
        p.deletes.push(path.clone());
    }
    Ok(p)
}

fn stage_path(staging: &Path, sha: &str) -> PathBuf {
    staging.join(sha)
}

/// Makes `project_dir` match `target`. Serialize calls per project (the route holds a mutex).
pub async fn sync_project(
    project: &str,
    project_dir: &Path,
    state_dir: &Path,
    target: &Manifest,
    src: &dyn ObjectSource,
) -> Result<SyncReport, SyncError> {
    validate_manifest(target)?;
    let staging = state_dir.join("objects");
    std::fs::create_dir_all(&staging)
        .and_then(|()| std::fs::create_dir_all(project_dir))
        .map_err(|e| SyncError::State(e.to_string()))?;
    let state_path = state_dir.join("state.json");
    let mut state = load_state(&state_path)?;
    // Remember every path this sync may write before writing any, so an interrupted sync's
    // leftovers are known to the next one.
    state.pending.extend(target.files.keys().cloned());
    save_state(&state_path, &state)?;

    let (state, plan) = {
        let dir = project_dir.to_path_buf();
        let tgt = target.clone();
        tokio::task::spawn_blocking(move || plan(&dir, &state, &tgt).map(|p| (state, p)))
            .await
            .map_err(|e| SyncError::State(e.to_string()))??
    };

    // Stage every needed object (verified) outside the project: from an earlier interrupted
    // sync, from a file already in the working copy, or fetched.
    let needed: BTreeSet<&str> = plan.writes.iter().map(|(_, s, _)| s.as_str()).collect();
    let mut to_fetch = Vec::new();
    for sha in needed {
        let staged = stage_path(&staging, sha);
        if std::fs::read(&staged).is_ok_and(|b| sha256_hex(&b) == sha) {
            continue;
        }
        let local = match plan.local.get(sha) {
            Some(path) => {
                let root = fsafe::open_root(project_dir)?;
                fsafe::read_file(&root, path)?.filter(|b| sha256_hex(b) == sha)
            }
            None => None,
        };
        match local {
            Some(bytes) => write_staged(&staged, &bytes)?,
            None => to_fetch.push(sha.to_string()),
        }
    }
    let fetched_objects = to_fetch.len();
    let mut fetches = futures_util::stream::iter(to_fetch.into_iter().map(|sha| async move {
        let bytes = fetch_verified(src, project, &sha).await?;
        Ok::<_, SyncError>((sha, bytes))
    }))
    .buffer_unordered(FETCH_CONCURRENCY);
    while let Some(r) = fetches.next().await {
        let (sha, bytes) = r?;
        write_staged(&stage_path(&staging, &sha), &bytes)?;
    }
    drop(fetches);

    let dir = project_dir.to_path_buf();
    let tgt = target.clone();
    let report = tokio::task::spawn_blocking(move || {
        apply(
            &dir,
            &staging,
            &state_path,
            state,
            plan,
            &tgt,
            fetched_objects,
        )
    })
    .await
    .map_err(|e| SyncError::State(e.to_string()))??;
    Ok(report)
}

fn write_staged(path: &Path, bytes: &[u8]) -> Result<(), SyncError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| SyncError::State(e.to_string()))
}

fn apply(
    project_dir: &Path,
    staging: &Path,
    state_path: &Path,
    mut state: SyncState,
    plan: Plan,
    target: &Manifest,
    fetched_objects: usize,
) -> Result<SyncReport, SyncError> {
    let root = fsafe::open_root(project_dir)?;
    let mut report = SyncReport {
        fetched_objects: fetched_objects as u64,
        unchanged: plan.unchanged as u64,
        ..Default::default()
    };
    // Deletes first, so a file that becomes a directory (or back) has room.
    for path in &plan.deletes {
        let removed = match fsafe::remove_file(&root, path) {
            Ok(r) => r,
            // A command turned the synced file into a directory: not a file sync knows; it is
            // left alone (or cleared below if the manifest needs the path).
            Err(FsError::IsDir(_)) => false,
            Err(e) => return Err(e.into()),
        };
        if removed || state.files.contains_key(path) {
            report.deleted.push(path.clone());
        }
    }
    // Storage wins where the working copy disagrees on what a path is: whatever stands in the
    // way of a manifest file (a file, symlink or directory) is removed without being followed.
    // What goes and was never synced, reported or ignored is listed as displaced.
    let mut displaced = BTreeSet::new();
    for (path, sha, existed) in &plan.writes {
        let bytes = std::fs::read(stage_path(staging, sha))
            .map_err(|e| SyncError::State(format!("staged object {sha}: {e}")))?;
        if *existed && !state.files.contains_key(path) && !state.pending.contains(path) {
            displaced.extend(unsaved_under(project_dir, path, &state));
        }
        let mut attempt = 0;
        loop {
            let mut note = |rel: &str, _kind: fsafe::Kind| {
                displaced.extend(unsaved_under(project_dir, rel, &state));
            };
            let made = fsafe::make_way(&root, path, &mut note)
                .and_then(|_| fsafe::write_atomic(&root, path, &bytes));
            match made {
                Ok(()) => break,
                // Swapped again by a running command between the check and the write.
                Err(FsError::Symlink(_) | FsError::NotDir(_) | FsError::IsDir(_))
                    if attempt < 3 =>
                {
                    attempt += 1
                }
                Err(e) => return Err(e.into()),
            }
        }
        if *existed {
            report.modified.push(path.clone());
        } else {
            report.added.push(path.clone());
        }
    }
    if !displaced.is_empty() {
        tracing::warn!(
            dir = %project_dir.display(),
            count = displaced.len(),
            first = %displaced.iter().next().map(String::as_str).unwrap_or(""),
            "sync displaced paths the working copy had and storage did not"
        );
    }
    report.displaced_more = displaced.len().saturating_sub(DISPLACED_LIST_LIMIT) as u64;
    report.displaced = displaced.into_iter().take(DISPLACED_LIST_LIMIT).collect();
    let taken = now_ns();
    let mut files = BTreeMap::new();
    for (path, e) in &target.files {
        if let Some((size, mtime_ns, ino)) = fsafe::stat_file(&root, path)? {
            files.insert(
                path.clone(),
                Known {
                    sha256: e.sha256.clone(),
                    size,
                    mtime_ns: trusted_mtime(mtime_ns, taken),
                    ino,
                },
            );
        }
    }
    state.files = files;
    state.pending.clear();
    save_state(state_path, &state)?;
    let _ = std::fs::remove_dir_all(staging);
    Ok(report)
}

/// The entries at or under `rel` (files, symlinks, special files; directories are walked) that
/// are neither in the sync state (synced, reported or being synced) nor ignored by the
/// project's `.gitignore` files (the change scan's walker, so the same rules): what a person
/// made on the VM that storage does not have. Read before `rel` is removed.
fn unsaved_under(project_dir: &Path, rel: &str, state: &SyncState) -> Vec<String> {
    let target = Path::new(rel).to_path_buf();
    let mut b = crate::changes::walker(project_dir);
    {
        let root = project_dir.to_path_buf();
        let target = target.clone();
        b.filter_entry(move |e| {
            let p = e.path().strip_prefix(&root).unwrap_or(e.path());
            p.as_os_str().is_empty() || target.starts_with(p) || p.starts_with(&target)
        });
    }
    let mut out = Vec::new();
    for e in b.build().flatten() {
        if e.file_type().is_none_or(|t| t.is_dir()) {
            continue;
        }
        let p = e.path().strip_prefix(project_dir).unwrap_or(e.path());
        if !p.starts_with(&target) {
            continue;
        }
        let p = p.to_string_lossy().into_owned();
        if !state.files.contains_key(&p) && !state.pending.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// `POST /projects/{id}/sync`: makes the working copy match the request's manifest, then hands
/// what it wrote to the project's identity.
pub async fn sync_route(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Result<Json<SyncReport>, ApiError> {
    check_project_id(&id)?;
    let req: SyncRequest = parse_json(&body)?;
    let src = st.objects.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_blob_storage",
            "the VM API has no AZURE_STORAGE_CONNECTION_STRING configured",
        )
    })?;
    if let (Some(want), Some(have)) = (
        req.blob.as_ref().and_then(|b| b.container.as_deref()),
        st.objects_container.as_deref(),
    ) {
        if want != have {
            return Err(ApiError::bad_request(
                "container_mismatch",
                format!("this VM API syncs from container {have:?}, not {want:?}"),
            ));
        }
    }
    let lock = st.sync_lock(&id);
    let _guard = lock.lock().await;
    let (project_dir, _) = st.ensure_project_dirs(&id)?;
    let report = sync_project(
        &id,
        &project_dir,
        &st.state_dir(&id),
        &req.manifest,
        src.as_ref(),
    )
    .await?;
    // Sync writes as the service; the project's own uid must own what it wrote.
    let written: Vec<String> = report
        .added
        .iter()
        .chain(&report.modified)
        .cloned()
        .collect();
    st.sandbox.adopt_paths(&id, &project_dir, &written)?;
    tracing::info!(
        project = %id,
        added = report.added.len(),
        modified = report.modified.len(),
        deleted = report.deleted.len(),
        displaced = report.displaced.len() as u64 + report.displaced_more,
        fetched = report.fetched_objects,
        "synced"
    );
    Ok(Json(report))
}

/// `GET /projects/{id}/files`: every regular file actually on disk, for verification.
pub async fn files_route(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<FilesReply>, ApiError> {
    check_project_id(&id)?;
    let (project_dir, _) = st.ensure_project_dirs(&id)?;
    let v = tokio::task::spawn_blocking(move || -> Result<FilesReply, FsError> {
        let root = fsafe::open_root(&project_dir)?;
        let (paths, truncated) = fsafe::list_files(&root, LIST_LIMIT)?;
        let mut files = Vec::with_capacity(paths.len());
        for p in paths {
            if let Some(b) = fsafe::read_file(&root, &p)? {
                files.push(DiskFile {
                    size: b.len() as u64,
                    sha256: sha256_hex(&b),
                    path: p,
                });
            }
        }
        Ok(FilesReply { files, truncated })
    })
    .await
    .map_err(|e| ApiError::internal("files", e.to_string()))?
    .map_err(|e| ApiError::internal("files", e.to_string()))?;
    Ok(Json(v))
}
