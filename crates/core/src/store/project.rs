//! The project model on Blob storage: metadata, content-addressed objects and numbered
//! checkpoints.
//!
//! Layout (one container):
//! - `{project}/meta.json`: [`ProjectMeta`];
//! - `{project}/objects/{sha256}`: file contents, stored once per distinct content;
//! - `{project}/checkpoints/{n:010}.json`: [`Checkpoint`], a manifest plus who made it and why.
//!
//! A checkpoint is written with `If-None-Match: *`, so two writers can never both claim number
//! N: the loser re-reads the head, re-applies its changes on top and tries N+1. A checkpoint
//! becomes visible in one PUT, after its objects, so a failure half-way leaves no half-written
//! checkpoint behind (only unreferenced objects).

use super::{BlobClient, Transport};
use crate::azure::rest::{content_type_for, BlobError, Cond};
use crate::manifest::{Diff, FileEntry, Manifest};
use crate::paths::{self, PathError};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// Parallel object uploads/downloads per call.
pub const PARALLELISM: usize = 8;
/// Attempts to claim a checkpoint number under contention.
const MAX_COMMIT_ATTEMPTS: u32 = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectMeta {
    pub id: String,
    pub name: String,
    pub template: String,
    pub created_ms: u64,
    /// Reserved for authentication: who owns the project.
    #[serde(default)]
    pub owner: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Author {
    Agent,
    User,
    System,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    pub n: u64,
    pub parent: Option<u64>,
    pub created_ms: u64,
    pub author: Author,
    pub summary: String,
    pub files: usize,
    pub bytes: u64,
    /// Random per write; tells our own lost-response retry apart from a competing writer.
    pub nonce: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    #[serde(flatten)]
    pub info: CheckpointInfo,
    pub manifest: Manifest,
}

/// One change to the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Write {
        path: String,
        content: Vec<u8>,
    },
    /// The object is in storage already (the VM API saved it after a command).
    Stored {
        path: String,
        entry: FileEntry,
    },
    Delete {
        path: String,
    },
}

/// What the writer believes a file is (None: absent). A mismatch with the head is a conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub path: String,
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    BadProjectId(String),
    /// A request the store refuses as it stands (a bad name).
    #[error("{0}")]
    Invalid(String),
    #[error("project {0} already exists")]
    Exists(String),
    #[error("{path} changed since you opened it (now at checkpoint {head})")]
    Conflict {
        path: String,
        expected: Option<String>,
        actual: Option<String>,
        head: u64,
    },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("could not claim a checkpoint number after {0} attempts under contention")]
    Contention(u32),
}

pub struct Projects<'a, T> {
    pub blob: &'a BlobClient<T>,
    /// Most files a checkpoint may hold.
    pub max_files: usize,
}

pub fn meta_name(p: &str) -> String {
    format!("{p}/meta.json")
}
pub fn object_name(p: &str, sha: &str) -> String {
    format!("{p}/objects/{sha}")
}
pub fn checkpoint_name(p: &str, n: u64) -> String {
    format!("{p}/checkpoints/{n:010}.json")
}

impl<'a, T: Transport> Projects<'a, T> {
    pub fn new(blob: &'a BlobClient<T>) -> Self {
        Projects {
            blob,
            max_files: paths::MAX_FILES_PER_PROJECT,
        }
    }

    /// Overrides the file-count cap (`None` keeps the default).
    pub fn with_max_files(mut self, max: Option<usize>) -> Self {
        if let Some(m) = max {
            self.max_files = m;
        }
        self
    }

    /// Creates a project whose files become checkpoint 1.
    pub async fn create(
        &self,
        meta: &ProjectMeta,
        files: Vec<(String, Vec<u8>)>,
    ) -> Result<Checkpoint, StoreError> {
        crate::ids::validate_project_id(&meta.id).map_err(StoreError::BadProjectId)?;
        let changes: Vec<Change> = files
            .into_iter()
            .map(|(path, content)| Change::Write { path, content })
            .collect();
        validate_changes(&changes)?;
        self.put_new_meta(meta).await?;
        let summary = format!("created from template {}", meta.template);
        self.commit(&meta.id, changes, &[], Author::System, &summary)
            .await?
            .ok_or_else(|| StoreError::Corrupt("first checkpoint was empty".into()))
    }

    /// Writes `meta.json` create-only: `Exists` when the id is taken.
    async fn put_new_meta(&self, meta: &ProjectMeta) -> Result<(), StoreError> {
        let body = serde_json::to_vec(meta).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        match self
            .blob
            .put(
                &meta_name(&meta.id),
                body,
                "application/json",
                Cond::IfNoneMatchAny,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(BlobError::Precondition(_)) => Err(StoreError::Exists(meta.id.clone())),
            Err(e) => Err(e.into()),
        }
    }

    /// A new project whose objects are stored already (an import, a fork): checkpoint 1 holds
    /// `manifest` (by `user`, saying `summary`), then `meta.json` is written last, the blob
    /// that makes the project exist, so a failure before it leaves nothing listed. `Exists`
    /// when the id already had checkpoints or a meta (the caller must then clean up nothing).
    pub async fn create_stored(
        &self,
        meta: &ProjectMeta,
        manifest: &Manifest,
        summary: &str,
    ) -> Result<CheckpointInfo, StoreError> {
        crate::ids::validate_project_id(&meta.id).map_err(StoreError::BadProjectId)?;
        let changes = manifest
            .files
            .iter()
            .map(|(path, entry)| Change::Stored {
                path: path.clone(),
                entry: entry.clone(),
            })
            .collect();
        let cp = self
            .commit(&meta.id, changes, &[], Author::User, summary)
            .await?
            .ok_or_else(|| StoreError::Corrupt("the first checkpoint was empty".into()))?;
        if cp.info.n != 1 {
            return Err(StoreError::Exists(meta.id.clone()));
        }
        self.put_new_meta(meta).await?;
        Ok(cp.info)
    }

    pub async fn meta(&self, id: &str) -> Result<ProjectMeta, StoreError> {
        let r = self
            .blob
            .get_opt(&meta_name(id))
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("project {id}")))?;
        serde_json::from_slice(&r.body)
            .map_err(|e| StoreError::Corrupt(format!("{id}/meta.json: {e}")))
    }

    /// Renames the project: `meta.json` rewritten with `If-Match`, read again and retried when
    /// someone else changed it in between (nothing else of the project moves). The name must
    /// be 1–100 characters after trimming, without control characters.
    pub async fn rename(&self, id: &str, name: &str) -> Result<ProjectMeta, StoreError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(StoreError::Invalid(
                "a project's name is 1 to 100 characters, without control characters".into(),
            ));
        }
        for _ in 0..5 {
            let r = self
                .blob
                .get_opt(&meta_name(id))
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("project {id}")))?;
            let mut meta: ProjectMeta = serde_json::from_slice(&r.body)
                .map_err(|e| StoreError::Corrupt(format!("{id}/meta.json: {e}")))?;
            meta.name = name.to_string();
            let body = serde_json::to_vec(&meta)
                .map_err(|e| StoreError::Corrupt(format!("{id}/meta.json: {e}")))?;
            let cond = match r.etag {
                Some(t) => Cond::IfMatch(t),
                None => Cond::None,
            };
            match self
                .blob
                .put(&meta_name(id), body, "application/json", cond)
                .await
            {
                Ok(_) => return Ok(meta),
                Err(BlobError::Precondition(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Corrupt(format!(
            "{id}/meta.json kept changing while it was renamed"
        )))
    }

    /// Removes the project from storage: `meta.json` first, so it stops being listed and
    /// opened at once, then every other blob under `{id}/` (objects, checkpoints, deployment
    /// manifests), `PARALLELISM` at a time. A blob already gone counts as removed, so a
    /// removal cut short can simply run again. Answers how many blobs this call removed.
    pub async fn delete_project(&self, id: &str) -> Result<usize, StoreError> {
        crate::ids::validate_project_id(id).map_err(StoreError::BadProjectId)?;
        let gone = |r: Result<(), BlobError>| match r {
            Ok(()) => Ok(1usize),
            Err(BlobError::NotFound) => Ok(0),
            Err(e) => Err(StoreError::from(e)),
        };
        let mut removed = gone(self.blob.delete(&meta_name(id), Cond::None).await)?;
        loop {
            let names: Vec<String> = self
                .blob
                .list_page(&format!("{id}/"), None, None, Some(1000))
                .await?
                .blobs
                .into_iter()
                .map(|b| b.name)
                .collect();
            if names.is_empty() {
                return Ok(removed);
            }
            removed += stream::iter(names)
                .map(|name| async move { gone(self.blob.delete(&name, Cond::None).await) })
                .buffer_unordered(PARALLELISM)
                .try_fold(0, |a, n| async move { Ok(a + n) })
                .await?;
        }
    }

    /// Every project, newest first.
    pub async fn list_projects(&self) -> Result<Vec<ProjectMeta>, StoreError> {
        let prefixes = self.blob.list_top_prefixes().await?;
        let ids: Vec<String> = prefixes
            .into_iter()
            .map(|p| p.trim_end_matches('/').to_string())
            .collect();
        self.metas(ids.iter().map(String::as_str)).await
    }

    /// The projects among `ids` that exist (an invalid id or one without `meta.json` is
    /// skipped), newest first; `PARALLELISM` reads at a time.
    pub async fn metas<'i>(
        &self,
        ids: impl IntoIterator<Item = &'i str>,
    ) -> Result<Vec<ProjectMeta>, StoreError> {
        let ids: Vec<String> = ids
            .into_iter()
            .filter(|p| crate::ids::validate_project_id(p).is_ok())
            .map(String::from)
            .collect();
        let metas: Vec<Option<ProjectMeta>> = stream::iter(ids)
            .map(|id| async move {
                match self.meta(&id).await {
                    Ok(m) => Ok(Some(m)),
                    // A prefix without meta.json is not a project (or is being created).
                    Err(StoreError::NotFound(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(PARALLELISM)
            .try_collect()
            .await?;
        let mut metas: Vec<ProjectMeta> = metas.into_iter().flatten().collect();
        metas.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(a.id.cmp(&b.id)));
        Ok(metas)
    }

    /// The highest checkpoint number, by listing (names are zero-padded, so sorted).
    pub async fn head_number(&self, id: &str) -> Result<Option<u64>, StoreError> {
        let items = self
            .blob
            .list_all(&format!("{id}/checkpoints/"), None)
            .await?;
        Ok(items
            .iter()
            .filter_map(|b| parse_checkpoint_number(&b.name))
            .max())
    }

    pub async fn checkpoint(&self, id: &str, n: u64) -> Result<Checkpoint, StoreError> {
        let r = self
            .blob
            .get_opt(&checkpoint_name(id, n))
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("checkpoint {n} of {id}")))?;
        serde_json::from_slice(&r.body)
            .map_err(|e| StoreError::Corrupt(format!("checkpoint {n} of {id}: {e}")))
    }

    pub async fn head(&self, id: &str) -> Result<Option<Checkpoint>, StoreError> {
        match self.head_number(id).await? {
            Some(n) => Ok(Some(self.checkpoint(id, n).await?)),
            None => Ok(None),
        }
    }

    /// Checkpoint summaries, newest first.
    pub async fn list_checkpoints(&self, id: &str) -> Result<Vec<CheckpointInfo>, StoreError> {
        let items = self
            .blob
            .list_all(&format!("{id}/checkpoints/"), None)
            .await?;
        let mut ns: Vec<u64> = items
            .iter()
            .filter_map(|b| parse_checkpoint_number(&b.name))
            .collect();
        ns.sort_unstable_by(|a, b| b.cmp(a));
        // `buffered` keeps the input order, so the answer stays newest first.
        stream::iter(ns)
            .map(|n| async move { self.checkpoint(id, n).await.map(|c| c.info) })
            .buffered(PARALLELISM)
            .try_collect()
            .await
    }

    /// Reads one file at checkpoint `at` (the head when `None`).
    pub async fn read_file(
        &self,
        id: &str,
        path: &str,
        at: Option<u64>,
    ) -> Result<(u64, FileEntry, Vec<u8>), StoreError> {
        paths::validate_path(path)?;
        let cp = match at {
            Some(n) => self.checkpoint(id, n).await?,
            None => self
                .head(id)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("project {id}")))?,
        };
        let entry = cp
            .manifest
            .files
            .get(path)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(format!("file {path}")))?;
        let body = self.object(id, &entry.sha256).await?;
        Ok((cp.info.n, entry, body))
    }

    /// Reads an object and checks that its content matches its name.
    pub async fn object(&self, id: &str, sha: &str) -> Result<Vec<u8>, StoreError> {
        let r = self
            .blob
            .get_opt(&object_name(id, sha))
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("object {sha} of {id} is missing")))?;
        if crate::vm_auth::sha256_hex(&r.body) != sha {
            return Err(StoreError::Corrupt(format!(
                "object {sha} of {id} has other content"
            )));
        }
        Ok(r.body)
    }

    /// Stores `body` as a content-addressed object of project `id`, create-only (an object
    /// already there is the same bytes); returns its sha256.
    pub async fn put_object(&self, id: &str, body: Vec<u8>) -> Result<String, StoreError> {
        let sha = crate::vm_auth::sha256_hex(&body);
        match self
            .blob
            .put(
                &object_name(id, &sha),
                body,
                "application/octet-stream",
                Cond::IfNoneMatchAny,
            )
            .await
        {
            Ok(_) | Err(BlobError::Precondition(_)) => Ok(sha),
            Err(e) => Err(e.into()),
        }
    }

    /// Every file of a checkpoint, fetched in parallel, in path order.
    pub async fn read_all(
        &self,
        id: &str,
        manifest: &Manifest,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let entries: Vec<(String, String)> = manifest
            .files
            .iter()
            .map(|(p, e)| (p.clone(), e.sha256.clone()))
            .collect();
        stream::iter(entries)
            .map(|(p, sha)| async move { self.object(id, &sha).await.map(|b| (p, b)) })
            .buffered(PARALLELISM)
            .try_collect()
            .await
    }

    pub async fn diff(&self, id: &str, from: u64, to: u64) -> Result<Diff, StoreError> {
        let a = self.checkpoint(id, from).await?;
        let b = self.checkpoint(id, to).await?;
        Ok(a.manifest.diff(&b.manifest))
    }

    /// Applies `changes` on top of the newest checkpoint, checking `expect` against it, and
    /// writes the next checkpoint. `Ok(None)` when nothing would change.
    pub async fn commit(
        &self,
        id: &str,
        changes: Vec<Change>,
        expect: &[Expect],
        author: Author,
        summary: &str,
    ) -> Result<Option<Checkpoint>, StoreError> {
        validate_changes(&changes)?;
        let mut objects: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut plan: Vec<(String, Option<FileEntry>)> = Vec::new();
        for c in changes {
            match c {
                Change::Write { path, content } => {
                    let e = Manifest::entry(&content);
                    objects.insert(e.sha256.clone(), content);
                    plan.push((path, Some(e)));
                }
                Change::Stored { path, entry } => plan.push((path, Some(entry))),
                Change::Delete { path } => plan.push((path, None)),
            }
        }
        self.write_checkpoint(id, author, summary, expect, objects, |m| {
            for (path, entry) in &plan {
                match entry {
                    Some(e) => {
                        m.files.insert(path.clone(), e.clone());
                    }
                    None => {
                        m.files.remove(path);
                    }
                }
            }
        })
        .await
    }

    /// Makes the head equal to checkpoint `n`, as a new checkpoint.
    pub async fn restore(
        &self,
        id: &str,
        n: u64,
        author: Author,
    ) -> Result<Option<Checkpoint>, StoreError> {
        let old = self.checkpoint(id, n).await?;
        let summary = format!("restored checkpoint {n}");
        self.write_checkpoint(id, author, &summary, &[], BTreeMap::new(), |m| {
            *m = old.manifest.clone()
        })
        .await
    }

    async fn write_checkpoint(
        &self,
        id: &str,
        author: Author,
        summary: &str,
        expect: &[Expect],
        objects: BTreeMap<String, Vec<u8>>,
        apply: impl Fn(&mut Manifest),
    ) -> Result<Option<Checkpoint>, StoreError> {
        let nonce = self.blob.transport.random_u64();
        let mut uploaded: HashSet<String> = HashSet::new();
        for _ in 0..MAX_COMMIT_ATTEMPTS {
            let head = self.head(id).await?;
            let (head_n, base) = match &head {
                Some(c) => (c.info.n, c.manifest.clone()),
                None => (0, Manifest::default()),
            };
            for x in expect {
                let actual = base.files.get(&x.path).map(|e| e.sha256.clone());
                if actual != x.sha256 {
                    return Err(StoreError::Conflict {
                        path: x.path.clone(),
                        expected: x.sha256.clone(),
                        actual,
                        head: head_n,
                    });
                }
            }
            let mut next = base.clone();
            apply(&mut next);
            if head.is_some() && next == base {
                return Ok(None);
            }
            paths::validate_file_count_max(next.files.len(), self.max_files)?;
            // Upload only content the project does not already hold.
            let known: HashSet<&str> = base.files.values().map(|e| e.sha256.as_str()).collect();
            // Owned items: borrowed ones trip the higher-ranked lifetime check when this
            // future is spawned on a multi-threaded runtime.
            let needed: Vec<(String, Vec<u8>)> = objects
                .iter()
                .filter(|(sha, _)| {
                    !known.contains(sha.as_str())
                        && !uploaded.contains(*sha)
                        && next.files.values().any(|e| &e.sha256 == *sha)
                })
                .map(|(sha, body)| (sha.clone(), body.clone()))
                .collect();
            let done: Vec<String> = stream::iter(needed)
                .map(|(sha, body)| async move {
                    self.blob
                        .put(
                            &object_name(id, &sha),
                            body,
                            "application/octet-stream",
                            Cond::None,
                        )
                        .await
                        .map(|_| sha)
                })
                .buffer_unordered(PARALLELISM)
                .try_collect()
                .await?;
            uploaded.extend(done);
            let n = head_n + 1;
            let cp = Checkpoint {
                info: CheckpointInfo {
                    n,
                    parent: head.as_ref().map(|c| c.info.n),
                    created_ms: self.blob.transport.now_ms(),
                    author,
                    summary: summary.to_string(),
                    files: next.files.len(),
                    bytes: next.total_bytes(),
                    nonce,
                },
                manifest: next,
            };
            let body = serde_json::to_vec(&cp).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            match self
                .blob
                .put(
                    &checkpoint_name(id, n),
                    body,
                    content_type_for("x.json"),
                    Cond::IfNoneMatchAny,
                )
                .await
            {
                Ok(_) => return Ok(Some(cp)),
                Err(BlobError::Precondition(_)) => {
                    // Either another writer claimed n, or our own earlier attempt landed and only
                    // its answer was lost: the nonce tells which.
                    if let Ok(existing) = self.checkpoint(id, n).await {
                        if existing.info.nonce == nonce && existing.manifest == cp.manifest {
                            return Ok(Some(existing));
                        }
                    }
                    self.blob
                        .transport
                        .sleep_ms(self.blob.transport.random_u64() % 20)
                        .await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Contention(MAX_COMMIT_ATTEMPTS))
    }
}

fn validate_changes(changes: &[Change]) -> Result<(), PathError> {
    for c in changes {
        match c {
            Change::Write { path, content } => {
                paths::validate_path(path)?;
                paths::validate_size(content.len())?;
            }
            Change::Stored { path, entry } => {
                paths::validate_path(path)?;
                paths::validate_size(entry.size as usize)?;
            }
            Change::Delete { path } => paths::validate_path(path)?,
        }
    }
    Ok(())
}

fn parse_checkpoint_number(name: &str) -> Option<u64> {
    name.rsplit('/').next()?.strip_suffix(".json")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_numerically() {
        assert_eq!(checkpoint_name("p", 7), "p/checkpoints/0000000007.json");
        assert!(checkpoint_name("p", 10) > checkpoint_name("p", 9));
        assert_eq!(
            parse_checkpoint_number("p/checkpoints/0000000042.json"),
            Some(42)
        );
        assert_eq!(parse_checkpoint_number("p/checkpoints/x.json"), None);
    }

    #[test]
    fn invalid_changes_are_rejected_by_rule() {
        let bad = vec![Change::Write {
            path: "../../etc/passwd".into(),
            content: vec![],
        }];
        assert_eq!(validate_changes(&bad).unwrap_err().rule(), "parent_segment");
        let big = vec![Change::Write {
            path: "a".into(),
            content: vec![0; paths::MAX_FILE_BYTES + 1],
        }];
        assert_eq!(validate_changes(&big).unwrap_err().rule(), "file_too_large");
    }
}
