//! A turn's working set: the project's head checkpoint plus the turn's unsaved changes, read
//! and written by the agent's tools, synced to the VM before commands, and committed as one
//! checkpoint when the turn ends. Commands' changes on the VM join it as objects already stored.

use crate::azure::FetchTransport;
use crate::vm::Vm;
use open_replit_core::azure::rest::Cond;
use open_replit_core::manifest::{FileEntry, Manifest};
use open_replit_core::store::project::{object_name, Author, Change, Checkpoint, Projects};
use open_replit_core::store::BlobClient;
use open_replit_core::vm_api::Changes;
use std::collections::{BTreeMap, HashSet};

/// Why the working set could not do what was asked.
#[derive(Debug)]
pub enum WorkError {
    /// The file is not in the project: the model asked for something that is not there.
    Missing(String),
    /// Storage or the VM failed: not the model's doing.
    Platform(String),
}

impl WorkError {
    pub fn message(self) -> String {
        match self {
            WorkError::Missing(m) | WorkError::Platform(m) => m,
        }
    }
}

/// A file the turn wrote.
enum Pending {
    /// Written by a tool: the bytes are here and go to storage with the checkpoint.
    Bytes(Vec<u8>),
    /// Written by a command on the VM, which saved the object to storage already.
    Stored(FileEntry),
}

impl Pending {
    fn entry(&self) -> FileEntry {
        match self {
            Pending::Bytes(b) => Manifest::entry(b),
            Pending::Stored(e) => e.clone(),
        }
    }
}

pub struct Work<'a> {
    pub projects: Projects<'a, FetchTransport>,
    pub id: String,
    base: Option<Checkpoint>,
    /// Path → new content (`None`: deleted in this turn).
    changes: BTreeMap<String, Option<Pending>>,
    /// Objects already uploaded for the VM during this turn.
    uploaded: HashSet<String>,
}

impl<'a> Work<'a> {
    pub async fn load(
        blob: &'a BlobClient<FetchTransport>,
        id: &str,
        max_files: Option<usize>,
    ) -> Result<Work<'a>, String> {
        let projects = Projects::new(blob).with_max_files(max_files);
        let base = projects.head(id).await.map_err(|e| e.to_string())?;
        Ok(Work {
            projects,
            id: id.to_string(),
            base,
            changes: BTreeMap::new(),
            uploaded: HashSet::new(),
        })
    }

    /// Whether the turn changed anything yet.
    pub fn is_changed(&self) -> bool {
        !self.changes.is_empty()
    }

    /// The project as the turn sees it now.
    pub fn manifest(&self) -> Manifest {
        let mut m = self
            .base
            .as_ref()
            .map(|c| c.manifest.clone())
            .unwrap_or_default();
        for (p, c) in &self.changes {
            match c {
                Some(b) => {
                    m.files.insert(p.clone(), b.entry());
                }
                None => {
                    m.files.remove(p);
                }
            }
        }
        m
    }

    /// Whether `path` is in the project as the turn sees it; the error tells the model why not.
    pub fn exists(&self, path: &str) -> Result<(), WorkError> {
        match self.changes.get(path) {
            Some(Some(_)) => Ok(()),
            Some(None) => Err(WorkError::Missing(format!(
                "{path} does not exist (deleted in this turn)"
            ))),
            None if self.base_entry(path).is_some() => Ok(()),
            None => Err(WorkError::Missing(format!(
                "{path} does not exist; use list_files to see the project"
            ))),
        }
    }

    fn base_entry(&self, path: &str) -> Option<&FileEntry> {
        self.base.as_ref().and_then(|b| b.manifest.files.get(path))
    }

    pub async fn read(&self, path: &str) -> Result<Vec<u8>, WorkError> {
        self.exists(path)?;
        let sha256 = match self.changes.get(path) {
            Some(Some(Pending::Bytes(b))) => return Ok(b.clone()),
            Some(Some(Pending::Stored(e))) => e.sha256.clone(),
            _ => self
                .base_entry(path)
                .ok_or_else(|| WorkError::Missing(format!("{path} does not exist")))?
                .sha256
                .clone(),
        };
        self.projects
            .object(&self.id, &sha256)
            .await
            .map_err(|e| WorkError::Platform(e.to_string()))
    }

    /// Records a write (`Some`) or a delete (`None`) by a tool.
    pub fn set(&mut self, path: &str, content: Option<Vec<u8>>) {
        self.changes
            .insert(path.to_string(), content.map(Pending::Bytes));
    }

    /// Takes in what a command changed on the VM (its objects are in storage already).
    pub fn take_vm_changes(&mut self, changes: &Changes) {
        for f in changes.added.iter().chain(&changes.modified) {
            let entry = FileEntry {
                sha256: f.sha256.clone(),
                size: f.size,
            };
            self.changes
                .insert(f.path.clone(), Some(Pending::Stored(entry)));
        }
        for p in &changes.deleted {
            self.changes.insert(p.clone(), None);
        }
    }

    /// Uploads the contents the VM does not have yet, then makes its working copy match.
    pub async fn sync_vm(&mut self, vm: &Vm) -> Result<(), WorkError> {
        let pending: Vec<(String, Vec<u8>)> = self
            .changes
            .values()
            .filter_map(|c| match c {
                Some(Pending::Bytes(b)) => Some((Manifest::entry(b).sha256, b.clone())),
                _ => None,
            })
            .filter(|(sha, _)| !self.uploaded.contains(sha))
            .collect();
        for (sha, body) in pending {
            self.projects
                .blob
                .put(
                    &object_name(&self.id, &sha),
                    body,
                    "application/octet-stream",
                    Cond::None,
                )
                .await
                .map_err(|e| WorkError::Platform(e.to_string()))?;
            self.uploaded.insert(sha);
        }
        vm.sync(&self.id, &self.manifest())
            .await
            .map(|_| ())
            .map_err(|e| WorkError::Platform(e.message()))
    }

    /// Saves the turn's changes as one checkpoint (`None` when nothing changed).
    pub async fn commit(&self, summary: &str) -> Result<Option<Checkpoint>, String> {
        if self.changes.is_empty() {
            return Ok(None);
        }
        let changes = self
            .changes
            .iter()
            .map(|(p, c)| match c {
                Some(Pending::Bytes(b)) => Change::Write {
                    path: p.clone(),
                    content: b.clone(),
                },
                Some(Pending::Stored(entry)) => Change::Stored {
                    path: p.clone(),
                    entry: entry.clone(),
                },
                None => Change::Delete { path: p.clone() },
            })
            .collect();
        self.projects
            .commit(&self.id, changes, &[], Author::Agent, summary)
            .await
            .map_err(|e| e.to_string())
    }
}
