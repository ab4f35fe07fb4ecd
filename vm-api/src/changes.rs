//! Changes flow back: after a command, find what changed in the working copy since the manifest
//! the VM last synced (or last reported), save the changed objects to blob storage, and report
//! them ([`Changes`]) so the Worker can put them into the project's checkpoints.
//!
//! - The walk uses the project's own `.gitignore` files with git's semantics (nested ones too,
//!   no global gitignore, no `.git/info/exclude`, hidden files included); ignored trees are never
//!   walked, `.git/` never, symlinks never followed.
//! - A file whose size, mtime and inode match the sync state is unchanged without being read:
//!   the scan costs one `lstat` per walked file plus a read for each changed one.
//! - Only after every changed object is in blob storage does the state advance to the new
//!   manifest ([`Pending::commit`]); a failed upload leaves it alone, so the next scan reports
//!   the same changes again.
//!
//! Routes: `POST /projects/{id}/changes`, and the `changes` line of every exec (see `exec`).

use crate::error::{check_project_id, ApiError};
use crate::fsafe::{self, FsError};
use crate::state::AppState;
use crate::sync::{
    load_state_shared, now_ns, save_state, trusted_mtime, validate_manifest, Known, ObjectSource,
    SyncState,
};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::Json;
use futures_util::StreamExt;
use open_replit_core::paths::{self, PathError};
use open_replit_core::vm_api::{
    manifest_digest, ndjson_line, ChangedFile, Changes, ExecEvent, SkippedFile,
};
use open_replit_core::vm_auth::sha256_hex;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;

/// Skipped paths listed in a report; the rest are only counted (`skipped_more`).
pub const SKIPPED_LIST_LIMIT: usize = 100;
/// Bytes of changed files the scan keeps in memory for the upload; beyond it they are read
/// again (and checked against their hash).
const KEEP_BYTES_BUDGET: usize = 64 << 20;
/// Objects uploaded at once.
const UPLOAD_CONCURRENCY: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum ChangesError {
    #[error(
        "an unfinished sync left the working copy half-written; sync again before saving changes"
    )]
    UnfinishedSync,
    #[error("{0}")]
    Fs(#[from] FsError),
    #[error("change scan: {0}")]
    Scan(String),
    #[error("sync state: {0}")]
    State(String),
}

impl From<ChangesError> for ApiError {
    fn from(e: ChangesError) -> Self {
        let msg = e.to_string();
        match e {
            ChangesError::UnfinishedSync => ApiError::conflict("unfinished_sync", msg),
            _ => ApiError::internal("change_scan", msg),
        }
    }
}

/// What a scan found, before the upload.
pub(crate) struct Scanned {
    /// The lists, digests and `walked`/`hashed` counts.
    pub changes: Changes,
    /// The state's files after the changes.
    next: BTreeMap<String, Known>,
    /// Objects to save: sha256, a path holding them, the bytes when kept.
    objects: Vec<(String, String, Option<Vec<u8>>)>,
    /// The state must be written (a file was hashed or deleted).
    dirty: bool,
}

/// A scan whose objects are saved (or whose upload failed: `changes.error`), not yet recorded
/// in the sync state.
pub struct Pending {
    pub changes: Changes,
    state_path: PathBuf,
    /// `None` when nothing may be recorded (the upload failed) or nothing needs to be.
    next: Option<SyncState>,
    /// The skipped paths differ from those of the last report.
    new_skips: bool,
}

impl Pending {
    /// Nothing changed, nothing was skipped and nothing failed: no report is needed.
    pub fn is_quiet(&self) -> bool {
        self.changes.is_empty() && !self.new_skips && self.changes.error.is_none()
    }

    /// Makes the sync state the new manifest. Call with the project's sync lock still held.
    pub fn commit(self) -> Result<(), ChangesError> {
        match self.next {
            Some(st) => {
                save_state(&self.state_path, &st).map_err(|e| ChangesError::State(e.to_string()))
            }
            None => Ok(()),
        }
    }
}

fn skip(path: impl Into<String>, reason: &str, message: impl Into<String>) -> SkippedFile {
    SkippedFile {
        path: path.into(),
        reason: reason.into(),
        message: message.into(),
    }
}

fn path_skip(rel: &str, e: &PathError) -> SkippedFile {
    skip(rel, e.rule(), e.to_string())
}

/// The project-relative path of `p` as core accepts it, or why not.
fn rel_of(root: &Path, p: &Path) -> Result<String, SkippedFile> {
    // The walk's paths are `root` joined with names: cut the prefix as bytes (comparing
    // components took 6% of a scan that finds nothing); anything else goes the long way.
    let cut = p
        .as_os_str()
        .as_encoded_bytes()
        .strip_prefix(root.as_os_str().as_encoded_bytes())
        .and_then(|r| r.strip_prefix(b"/"))
        .filter(|r| !r.is_empty() && !r.starts_with(b"/"))
        .map(|r| {
            // SAFETY: `r` is a suffix of `p`'s encoded bytes after an ASCII '/'.
            Path::new(unsafe { std::ffi::OsStr::from_encoded_bytes_unchecked(r) })
        });
    let rel = cut.unwrap_or_else(|| p.strip_prefix(root).unwrap_or(p));
    let Some(s) = rel.to_str() else {
        return Err(skip(
            rel.to_string_lossy(),
            "invalid_utf8",
            "the name is not valid UTF-8",
        ));
    };
    paths::validate_path(s).map_err(|e| path_skip(s, &e))?;
    Ok(s.to_string())
}

/// The walker: git's ignore rules from the project's own `.gitignore` files only.
pub fn walker(root: &Path) -> ignore::WalkBuilder {
    let mut b = ignore::WalkBuilder::new(root);
    b.standard_filters(false)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .parents(false)
        .ignore(false)
        .hidden(false)
        .follow_links(false);
    b
}

struct Candidate {
    rel: String,
    size: u64,
    mtime_ns: i64,
    ino: u64,
}

/// The directory of the file the walk is at, opened once for all of its files: a file's
/// `lstat` is then a lookup of its name in that directory (`fstatat`) instead of a walk of its
/// whole host path, which was 40% of a scan that finds nothing (measured 2026-12-02).
#[derive(Default)]
struct ParentDir {
    open: Option<(String, std::os::fd::OwnedFd)>,
}

impl ParentDir {
    /// Size, mtime (ns) and inode of `rel` (the walk's entry `e`) without following a symlink;
    /// `None` when it is gone since its directory was read, or unreadable (treated as not seen).
    fn lstat(
        &mut self,
        root: &std::os::fd::OwnedFd,
        rel: &str,
        e: &ignore::DirEntry,
    ) -> Option<(u64, i64, u64)> {
        let (parent, leaf) = rel.rsplit_once('/').unwrap_or(("", rel));
        if self.open.as_ref().is_none_or(|(p, _)| p != parent) {
            // Opened component by component without following symlinks (`fsafe`).
            self.open = fsafe::open_dir(root, parent, false)
                .ok()
                .map(|fd| (parent.to_string(), fd));
        }
        let st = match &self.open {
            Some((_, dir)) => rustix::fs::statat(dir, leaf, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                .map(|st| {
                    (
                        st.st_size as u64,
                        st.st_mtime * 1_000_000_000 + st.st_mtime_nsec as i64,
                        st.st_ino,
                    )
                })
                .map_err(std::io::Error::from),
            // The directory cannot be opened that way (replaced meanwhile): its path, as before.
            None => e.metadata().map_err(std::io::Error::other).map(|md| {
                (
                    md.size(),
                    md.mtime() * 1_000_000_000 + md.mtime_nsec(),
                    md.ino(),
                )
            }),
        };
        st.map_err(|err| tracing::debug!(path = %rel, "change scan: {err}"))
            .ok()
    }
}

/// Walks the working copy and compares it with `known` (the sync state's files). Blocking.
pub(crate) fn scan(
    project_dir: &Path,
    known: &BTreeMap<String, Known>,
) -> Result<Scanned, ChangesError> {
    let root_fd = fsafe::open_root(project_dir)?;
    let root = project_dir.to_path_buf();
    let mut skipped: Vec<SkippedFile> = Vec::new();
    let bad_dirs = Arc::new(Mutex::new(Vec::<SkippedFile>::new()));
    let mut b = walker(&root);
    {
        let root = root.clone();
        let bad_dirs = bad_dirs.clone();
        b.filter_entry(move |e| {
            if e.depth() == 0 {
                return true;
            }
            // `.git` is git's, at any depth (a cloned repository inside the project too).
            if e.file_name() == ".git" {
                return false;
            }
            if e.file_type().is_some_and(|t| t.is_dir()) {
                if let Err(s) = rel_of(&root, e.path()) {
                    bad_dirs.lock().unwrap_or_else(|p| p.into_inner()).push(s);
                    return false;
                }
            }
            true
        });
    }
    let mut walked = 0u64;
    let mut dirs = ParentDir::default();
    let mut cands: Vec<Candidate> = Vec::new();
    // Known paths that stay as they are because what is there now cannot be saved.
    let mut keep: BTreeSet<String> = BTreeSet::new();
    for r in b.build() {
        let e = match r {
            Ok(e) => e,
            Err(err) => {
                skipped.push(skip("", "unreadable", err.to_string()));
                continue;
            }
        };
        if e.depth() == 0 {
            continue;
        }
        let Some(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            continue;
        }
        let rel = match rel_of(&root, e.path()) {
            Ok(r) => r,
            Err(s) => {
                skipped.push(s);
                continue;
            }
        };
        if ft.is_symlink() {
            skipped.push(skip(&rel, "symlink", "symlinks are not saved"));
            keep.insert(rel);
            continue;
        }
        if !ft.is_file() {
            skipped.push(skip(
                &rel,
                "not_regular_file",
                "only regular files are saved",
            ));
            keep.insert(rel);
            continue;
        }
        walked += 1;
        let Some((size, mtime_ns, ino)) = dirs.lstat(&root_fd, &rel, &e) else {
            continue;
        };
        cands.push(Candidate {
            rel,
            size,
            mtime_ns,
            ino,
        });
    }
    skipped.extend(std::mem::take(
        &mut *bad_dirs.lock().unwrap_or_else(|p| p.into_inner()),
    ));

    // Known files the walk did not see: deleted, or tracked but ignored now (git keeps
    // tracking those), or in a directory that could not be read (kept as they were).
    let seen: HashSet<&str> = cands.iter().map(|c| c.rel.as_str()).collect();
    let mut unseen = Vec::new();
    for path in known.keys() {
        if seen.contains(path.as_str()) || keep.contains(path) {
            continue;
        }
        match fsafe::stat_file(&root_fd, path) {
            Ok(Some((size, mtime_ns, ino))) => unseen.push(Candidate {
                rel: path.clone(),
                size,
                mtime_ns,
                ino,
            }),
            Ok(None) => {}
            Err(_) => {
                keep.insert(path.clone());
            }
        }
    }
    drop(seen);
    cands.extend(unseen);

    // The file-count limit: files already in the project stay (those kept as they were count
    // too); new ones are admitted a unit at a time, in path order, while the whole unit fits.
    // A unit is a new folder (the topmost directory holding no file the project has) with
    // everything under it, or a single new file: a folder is saved whole or not at all, never
    // a prefix of it, and one too big is reported once, as the folder with its count.
    let (mut admitted, new): (Vec<Candidate>, Vec<Candidate>) =
        cands.into_iter().partition(|c| known.contains_key(&c.rel));
    let kept_known = keep.iter().filter(|p| known.contains_key(*p)).count();
    let known_dirs: HashSet<&str> = known
        .keys()
        .flat_map(|p| p.match_indices('/').map(move |(i, _)| &p[..i]))
        .collect();
    let mut units: BTreeMap<String, (bool, Vec<Candidate>)> = BTreeMap::new();
    for c in new {
        let unit = c
            .rel
            .match_indices('/')
            .map(|(i, _)| &c.rel[..i])
            .find(|d| !known_dirs.contains(d));
        let (key, is_dir) = match unit {
            Some(d) => (d.to_string(), true),
            None => (c.rel.clone(), false),
        };
        units.entry(key).or_insert((is_dir, Vec::new())).1.push(c);
    }
    drop(known_dirs);
    for (unit, (is_dir, files)) in units {
        let total = kept_known + admitted.len() + files.len();
        if paths::validate_file_count(total).is_ok() {
            admitted.extend(files);
        } else if is_dir {
            skipped.push(skip(
                &unit,
                "too_many_files",
                format!(
                    "{} new files in this folder would bring the project to {total} files; the \
                     limit is {}. Nothing in it was saved: add it to .gitignore, or delete it",
                    files.len(),
                    paths::MAX_FILES_PER_PROJECT
                ),
            ));
        } else {
            let e = PathError::TooManyFiles(total, paths::MAX_FILES_PER_PROJECT);
            skipped.push(path_skip(&unit, &e));
        }
    }

    let mut next: BTreeMap<String, Known> = BTreeMap::new();
    for p in &keep {
        if let Some(k) = known.get(p) {
            next.insert(p.clone(), k.clone());
        }
    }
    let mut hashed = 0u64;
    let mut kept_bytes = 0usize;
    let mut objects: Vec<(String, String, Option<Vec<u8>>)> = Vec::new();
    let mut queued: HashSet<String> = HashSet::new();
    for c in admitted {
        let old = known.get(&c.rel);
        if let Some(k) = old {
            if k.size == c.size && k.mtime_ns == c.mtime_ns && k.ino == c.ino {
                next.insert(c.rel, k.clone());
                continue;
            }
        }
        if paths::validate_size(c.size as usize).is_err() {
            let e = PathError::FileTooLarge(c.size as usize);
            skipped.push(path_skip(&c.rel, &e));
            if let Some(k) = old {
                next.insert(c.rel, k.clone());
            }
            continue;
        }
        hashed += 1;
        let taken = now_ns();
        // Never more than the limit is read, even when the file grew since the walk.
        let bytes = match fsafe::read_file_max(&root_fd, &c.rel, paths::MAX_FILE_BYTES) {
            Ok(Some(b)) => b,
            Ok(None) => continue, // gone (or replaced by a symlink) since the walk
            Err(FsError::TooLarge { .. }) => {
                let size = fsafe::stat_file(&root_fd, &c.rel)?.map_or(c.size, |s| s.0);
                let e = PathError::FileTooLarge(size as usize);
                skipped.push(path_skip(&c.rel, &e));
                if let Some(k) = old {
                    next.insert(c.rel, k.clone());
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let sha = sha256_hex(&bytes);
        // Trust the stat for the next scan only when the file did not change while read, and
        // was not written so recently that a same-size write in the same timestamp tick could
        // follow unseen (two commands racing on one file).
        let after = fsafe::stat_file(&root_fd, &c.rel)?;
        let stable = after == Some((c.size, c.mtime_ns, c.ino))
            && bytes.len() as u64 == c.size
            && trusted_mtime(c.mtime_ns, taken) != -1;
        if old.is_none_or(|k| k.sha256 != sha) && queued.insert(sha.clone()) {
            let keep_it = kept_bytes + bytes.len() <= KEEP_BYTES_BUDGET;
            if keep_it {
                kept_bytes += bytes.len();
            }
            objects.push((sha.clone(), c.rel.clone(), keep_it.then_some(bytes.clone())));
        }
        next.insert(
            c.rel,
            Known {
                sha256: sha,
                size: bytes.len() as u64,
                mtime_ns: if stable { c.mtime_ns } else { -1 },
                ino: c.ino,
            },
        );
    }

    let mut changes = Changes::default();
    for (p, k) in &next {
        let f = || ChangedFile {
            path: p.clone(),
            sha256: k.sha256.clone(),
            size: k.size,
        };
        match known.get(p) {
            None => changes.added.push(f()),
            Some(o) if o.sha256 != k.sha256 || o.size != k.size => changes.modified.push(f()),
            Some(_) => {}
        }
    }
    changes.deleted = known
        .keys()
        .filter(|p| !next.contains_key(*p))
        .cloned()
        .collect();
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    if skipped.len() > SKIPPED_LIST_LIMIT {
        changes.skipped_more = (skipped.len() - SKIPPED_LIST_LIMIT) as u64;
        skipped.truncate(SKIPPED_LIST_LIMIT);
    }
    changes.skipped = skipped;
    changes.stats.walked = walked;
    changes.stats.hashed = hashed;
    let dirty = hashed > 0 || !changes.deleted.is_empty();
    Ok(Scanned {
        changes,
        next,
        objects,
        dirty,
    })
}

/// Scans the project, then saves the changed objects. Serialize per project (hold the sync
/// lock until [`Pending::commit`]). `Err` when the scan itself failed; an upload failure is
/// `Ok` with `changes.error` set and nothing to record.
pub async fn scan_and_upload(
    project: &str,
    project_dir: &Path,
    state_dir: &Path,
    src: &dyn ObjectSource,
) -> Result<Pending, ChangesError> {
    let started = Instant::now();
    let state_path = state_dir.join("state.json");
    std::fs::create_dir_all(state_dir).map_err(|e| ChangesError::State(e.to_string()))?;
    let shared = load_state_shared(&state_path).map_err(|e| ChangesError::State(e.to_string()))?;
    if !shared.state.pending.is_empty() {
        return Err(ChangesError::UnfinishedSync);
    }
    let (shared, mut scanned) = {
        let dir = project_dir.to_path_buf();
        tokio::task::spawn_blocking(move || scan(&dir, &shared.state.files).map(|s| (shared, s)))
            .await
            .map_err(|e| ChangesError::Scan(e.to_string()))??
    };
    let state = &shared.state;
    scanned.changes.base = shared.base_digest().to_string();
    // Nothing hashed and nothing deleted: the files are the state's own, so is the digest.
    let same_files = !scanned.dirty;
    let skipped: BTreeSet<String> = scanned
        .changes
        .skipped
        .iter()
        .map(|s| s.path.clone())
        .collect();
    let new_skips = skipped != state.skipped;
    let next_state = SyncState {
        files: std::mem::take(&mut scanned.next),
        pending: Default::default(),
        skipped,
    };
    let next_manifest = next_state.manifest();
    // Never record a manifest sync would refuse (a path both a file and a folder…).
    validate_manifest(&next_manifest).map_err(|e| ChangesError::Scan(e.to_string()))?;
    scanned.changes.manifest = if same_files {
        scanned.changes.base.clone()
    } else {
        manifest_digest(&next_manifest)
    };

    let objects = std::mem::take(&mut scanned.objects);
    let n = objects.len();
    let root_dir = project_dir.to_path_buf();
    let mut uploads = futures_util::stream::iter(objects.into_iter().map(|(sha, path, bytes)| {
        let root_dir = root_dir.clone();
        async move {
            let bytes = match bytes {
                Some(b) => b,
                None => reread(root_dir, path.clone(), sha.clone()).await?,
            };
            src.put(project, &sha, bytes)
                .await
                .map_err(|e| format!("saving {path}: {e}"))
        }
    }))
    .buffer_unordered(UPLOAD_CONCURRENCY);
    let mut error = None;
    while let Some(r) = uploads.next().await {
        if let Err(e) = r {
            error = Some(e);
            break;
        }
    }
    drop(uploads);
    let mut changes = scanned.changes;
    changes.stats.duration_ms = started.elapsed().as_millis() as u64;
    let next = match error {
        Some(e) => {
            changes.error = Some(e);
            None
        }
        None => {
            changes.stats.uploaded = n as u64;
            (scanned.dirty || new_skips).then_some(next_state)
        }
    };
    Ok(Pending {
        changes,
        state_path,
        next,
        new_skips,
    })
}

/// A changed file's bytes read again for the upload, refused when they no longer hash to
/// `sha` (the next scan picks up the newer content).
async fn reread(dir: PathBuf, path: String, sha: String) -> Result<Vec<u8>, String> {
    tokio::task::spawn_blocking(move || {
        let root = fsafe::open_root(&dir).map_err(|e| e.to_string())?;
        match fsafe::read_file_max(&root, &path, paths::MAX_FILE_BYTES)
            .map_err(|e| e.to_string())?
        {
            Some(b) if sha256_hex(&b) == sha => Ok(b),
            _ => Err(format!(
                "{path} changed while it was being saved; run again"
            )),
        }
    })
    .await
    .map_err(|e| e.to_string())?
}

pub(crate) fn no_storage() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "no_blob_storage",
        "the VM API has no AZURE_STORAGE_CONNECTION_STRING configured",
    )
}

/// `POST /projects/{id}/changes`: the same scan and upload an exec runs after its command, on
/// demand. Answers [`Changes`]; a failed upload is `502 object_upload_failed` (nothing
/// recorded, the next scan finds the same changes).
pub async fn changes_route(
    State(st): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Changes>, ApiError> {
    check_project_id(&id)?;
    let src = st.objects.clone().ok_or_else(no_storage)?;
    let lock = st.sync_lock(&id);
    let _guard = lock.lock().await;
    let (project_dir, _) = st.ensure_project_dirs(&id)?;
    let pending = scan_and_upload(&id, &project_dir, &st.state_dir(&id), src.as_ref()).await?;
    if let Some(e) = &pending.changes.error {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "object_upload_failed",
            e.clone(),
        ));
    }
    let changes = pending.changes.clone();
    pending.commit()?;
    log(&id, &changes);
    Ok(Json(changes))
}

fn log(id: &str, c: &Changes) {
    tracing::info!(
        project = %id,
        added = c.added.len(),
        modified = c.modified.len(),
        deleted = c.deleted.len(),
        skipped = c.skipped.len() as u64 + c.skipped_more,
        hashed = c.stats.hashed,
        uploaded = c.stats.uploaded,
        ms = c.stats.duration_ms,
        error = c.error.as_deref().unwrap_or(""),
        "changes"
    );
}

fn is_exit_line(b: &[u8]) -> bool {
    // `ExecEvent` is internally tagged and serde writes the tag first.
    b.starts_with(br#"{"type":"exit""#)
}

/// Puts the change scan between an exec's events and its client: every line is forwarded as
/// it comes except `exit`, which is held until the command is done and its changes are saved
/// and reported (`{"type":"changes",...}`, only when something changed, the set of skipped
/// paths differs from the last report, or the save failed). The state advances only once the report was handed to the client; a client
/// that left gets no scan (the next one finds the same changes). A client that leaves while
/// the command runs closes the returned sender, which kills the command as before.
pub fn scan_after(st: Arc<AppState>, id: String, out: mpsc::Sender<Bytes>) -> mpsc::Sender<Bytes> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let mut exit: Option<Bytes> = None;
        loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(b) if is_exit_line(&b) => exit = Some(b),
                    Some(b) => {
                        if out.send(b).await.is_err() {
                            return;
                        }
                    }
                    None => break,
                },
                _ = out.closed() => return,
            }
        }
        if let Some(src) = st.objects.clone() {
            let lock = st.sync_lock(&id);
            let _guard = lock.lock().await;
            let pending =
                scan_and_upload(&id, &st.project_dir(&id), &st.state_dir(&id), src.as_ref()).await;
            match pending {
                Ok(p) if p.is_quiet() => {
                    if let Err(e) = p.commit() {
                        tracing::warn!(project = %id, "change scan: {e}");
                    }
                }
                Ok(p) => {
                    log(&id, &p.changes);
                    let line = ndjson_line(&ExecEvent::Changes(p.changes.clone()));
                    if out.send(Bytes::from(line)).await.is_ok() {
                        if let Err(e) = p.commit() {
                            tracing::warn!(project = %id, "change scan: {e}");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(project = %id, "change scan: {e}");
                    let c = Changes {
                        error: Some(e.to_string()),
                        ..Default::default()
                    };
                    let _ = out
                        .send(Bytes::from(ndjson_line(&ExecEvent::Changes(c))))
                        .await;
                }
            }
        }
        if let Some(b) = exit {
            let _ = out.send(b).await;
        }
    });
    tx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, data: &[u8]) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    /// Lets files age past the timestamp tick, so a scan trusts their stat.
    fn settle() {
        std::thread::sleep(std::time::Duration::from_millis(
            2 * crate::sync::MTIME_TICK_NS as u64 / 1_000_000,
        ));
    }

    #[test]
    fn a_file_read_right_after_it_was_written_is_hashed_again_next_time() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        write(d, "race.txt", b"A1");
        let first = scan(d, &BTreeMap::new()).unwrap();
        assert_eq!(first.next["race.txt"].mtime_ns, -1, "racily clean");
        settle();
        let again = scan(d, &first.next).unwrap();
        assert_eq!(again.changes.stats.hashed, 1);
        assert!(again.next["race.txt"].mtime_ns > 0);
        assert_eq!(scan(d, &again.next).unwrap().changes.stats.hashed, 0);
    }

    fn paths_of(c: &[ChangedFile]) -> Vec<&str> {
        c.iter().map(|f| f.path.as_str()).collect()
    }

    /// git's semantics: nested `.gitignore` files, negation, anchored and directory-only
    /// patterns; `.git/` never walked; no `.gitignore` above the project is read.
    #[test]
    fn walker_follows_gitignore_semantics() {
        let outer = tempfile::tempdir().unwrap();
        std::fs::write(outer.path().join(".gitignore"), "*\n").unwrap();
        let dir = outer.path().join("proj");
        let d = dir.as_path();
        write(
            d,
            ".gitignore",
            b"node_modules\n*.log\n!keep.log\n/build/\ndata.db\n",
        );
        write(d, "node_modules/x/index.js", b"x");
        write(d, "app.log", b"l");
        write(d, "keep.log", b"k");
        write(d, "build/out.js", b"o");
        write(d, "src/build/in.js", b"i"); // `/build/` is anchored at the root
        write(d, "data.db", b"d");
        write(d, "backend/data.db", b"d"); // unanchored: ignored at any depth
        write(d, "web/.gitignore", b"dist\n");
        write(d, "web/dist/a.js", b"a");
        write(d, "dist/kept.js", b"k"); // the nested rule applies only under web/
        write(d, ".git/config", b"c");
        write(d, ".env", b"SECRET=1"); // hidden, not ignored: saved
        let s = scan(d, &BTreeMap::new()).unwrap();
        let mut got = paths_of(&s.changes.added);
        got.sort();
        assert_eq!(
            got,
            [
                ".env",
                ".gitignore",
                "dist/kept.js",
                "keep.log",
                "src/build/in.js",
                "web/.gitignore"
            ]
        );
        assert!(s.changes.skipped.is_empty(), "{:?}", s.changes.skipped);
        assert_eq!(s.changes.stats.walked, 6);
    }

    #[test]
    fn a_new_folder_past_the_file_limit_is_skipped_whole_and_reported_once() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        write(d, "src/a.txt", b"a");
        settle();
        let first = scan(d, &BTreeMap::new()).unwrap();
        let many = paths::MAX_FILES_PER_PROJECT;
        std::fs::create_dir_all(d.join("gen/deep")).unwrap();
        for i in 0..many {
            std::fs::write(d.join(format!("gen/deep/{i}")), b"").unwrap();
        }
        write(d, "notes.txt", b"n");
        write(d, "src/b.txt", b"b");
        let s = scan(d, &first.next).unwrap();
        assert_eq!(paths_of(&s.changes.added), ["notes.txt", "src/b.txt"]);
        assert_eq!(s.changes.skipped.len(), 1, "{:?}", s.changes.skipped);
        let k = &s.changes.skipped[0];
        assert_eq!(
            (k.path.as_str(), k.reason.as_str()),
            ("gen", "too_many_files")
        );
        assert!(
            k.message.contains(&format!("{many} new files")),
            "{}",
            k.message
        );
        assert_eq!(s.changes.stats.hashed, 2);
    }

    #[test]
    fn unchanged_files_are_not_read_and_known_ignored_files_stay_tracked() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        write(d, "a.txt", b"a");
        write(d, "gen/x.txt", b"x");
        settle();
        let first = scan(d, &BTreeMap::new()).unwrap();
        assert_eq!(first.changes.stats.hashed, 2);
        let again = scan(d, &first.next).unwrap();
        assert_eq!(again.changes.stats.hashed, 0);
        assert!(again.changes.is_empty() && !again.dirty);
        // Ignoring a tracked file keeps it (git semantics); deleting it reports it.
        write(d, ".gitignore", b"gen/\n");
        let s = scan(d, &first.next).unwrap();
        assert_eq!(paths_of(&s.changes.added), [".gitignore"]);
        assert!(s.changes.deleted.is_empty());
        std::fs::remove_file(d.join("gen/x.txt")).unwrap();
        let s = scan(d, &first.next).unwrap();
        assert_eq!(s.changes.deleted, ["gen/x.txt"]);
    }
}
