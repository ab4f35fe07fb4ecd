//! What commands change on the VM becomes part of the project. The VM API reports each
//! command's changes (their objects already saved to storage): in an agent turn they join the
//! working set (`work.rs`); outside a turn they become one checkpoint by `user`, merged with
//! whatever storage got meanwhile by core's `store::merge` (conflicts saved beside, never lost).

use crate::error::ApiError;
use crate::room_state::Room;
use crate::vm::Vm;
use crate::work::Work;
use open_replit_core::manifest::Manifest;
use open_replit_core::protocol::ServerEvent;
use open_replit_core::store::merge::merge;
use open_replit_core::store::project::{Author, Checkpoint, Projects, StoreError};
use open_replit_core::store::Transport;
use open_replit_core::vm_api::{manifest_digest, Changes, SyncReport};

/// Storage moving again between reading the head and writing the checkpoint is retried this
/// many times before giving up (the changes stay on the VM and are reported again).
const MERGE_ATTEMPTS: usize = 4;

/// Saves a command's changes outside a turn as one checkpoint (author `user`, `summary` as its
/// message), merged against storage's head; `base` is the manifest the VM had synced before
/// the command. Tells everyone about the checkpoint and about anything not saved.
pub async fn commit_outside_turn<T: Transport>(
    room: &Room,
    p: &Projects<'_, T>,
    id: &str,
    base: &Manifest,
    changes: &Changes,
    summary: &str,
) -> Result<Option<Checkpoint>, ApiError> {
    let mut result = Ok(None);
    let mut conflicts = Vec::new();
    if !changes.is_empty() && changes.error.is_none() {
        for attempt in 1..=MERGE_ATTEMPTS {
            let head = p.head(id).await?.map(|c| c.manifest).unwrap_or_default();
            let m = merge(base, &head, changes);
            conflicts = m.conflicts;
            if m.changes.is_empty() {
                break;
            }
            match p
                .commit(id, m.changes, &m.expect, Author::User, summary)
                .await
            {
                Ok(cp) => {
                    if let Some(cp) = &cp {
                        room.announce_checkpoint(p, id, cp).await;
                    }
                    result = Ok(cp);
                    break;
                }
                Err(StoreError::Conflict { .. }) if attempt < MERGE_ATTEMPTS => continue,
                Err(e) => {
                    result = Err(e.into());
                    break;
                }
            }
        }
    }
    let checkpoint = result
        .as_ref()
        .ok()
        .and_then(|c| c.as_ref().map(|c| c.info.n));
    if !conflicts.is_empty() || !changes.skipped.is_empty() || changes.error.is_some() {
        room.emit(ServerEvent::WorkspaceNotice {
            checkpoint,
            conflicts,
            skipped: changes.skipped.clone(),
            error: changes.error.clone(),
            displaced: Vec::new(),
            displaced_more: 0,
        });
    }
    result
}

/// Makes the VM's working copy match `manifest` and tells everyone about files the sync
/// removed that were never saved (`SyncReport::displaced`): without the notice they would
/// vanish silently.
pub async fn sync(
    room: &Room,
    vm: &Vm,
    id: &str,
    manifest: &Manifest,
) -> Result<SyncReport, ApiError> {
    let report = vm.sync(id, manifest).await?;
    announce_displaced(room, &report);
    Ok(report)
}

/// Emits a `workspace_notice` listing what a sync displaced, if anything.
pub fn announce_displaced(room: &Room, report: &SyncReport) {
    if report.displaced.is_empty() && report.displaced_more == 0 {
        return;
    }
    room.emit(ServerEvent::WorkspaceNotice {
        checkpoint: None,
        conflicts: Vec::new(),
        skipped: Vec::new(),
        error: None,
        displaced: report.displaced.clone(),
        displaced_more: report.displaced_more,
    });
}

/// Asks the VM for what changed in the working copy since its last sync or report (the
/// interactive terminal's shell, which has no exec of its own) and saves it like a command's
/// changes. The VM's starting point is found by its manifest digest: the head in the common
/// case, else one of the last checkpoints; when none matches, every path storage also has is
/// treated as changed on both sides, so the VM's versions are saved beside, never over.
pub async fn save_vm_changes(room: &Room, id: &str, summary: &str) -> Result<(), ApiError> {
    let vm = crate::vm::Vm::from_config(room.config())?;
    let changes = vm.changes(id).await?;
    if changes.is_empty() && changes.skipped.is_empty() && changes.error.is_none() {
        return Ok(());
    }
    let blob = crate::azure::blob_client(room.config())?;
    let p = Projects::new(&blob).with_max_files(room.config().max_project_files);
    let base = match vm_base(&p, id, &changes.base).await? {
        Some(m) => m,
        None => unknown_base(&changes),
    };
    commit_outside_turn(room, &p, id, &base, &changes, summary).await?;
    Ok(())
}

/// How many checkpoints back the VM's starting point is looked for.
const BASE_LOOKBACK: usize = 10;

async fn vm_base<T: Transport>(
    p: &Projects<'_, T>,
    id: &str,
    digest: &str,
) -> Result<Option<Manifest>, ApiError> {
    let list = p.list_checkpoints(id).await?;
    for info in list.iter().take(BASE_LOOKBACK) {
        let cp = p.checkpoint(id, info.n).await?;
        if manifest_digest(&cp.manifest) == digest {
            return Ok(Some(cp.manifest));
        }
    }
    Ok(None)
}

/// A base under which every changed path counts as changed in storage too (see
/// `save_vm_changes`): the paths are given an entry no real file has.
fn unknown_base(changes: &Changes) -> Manifest {
    let mut m = Manifest::default();
    // Added files need none: where storage has no such file there is nothing to lose.
    let paths = changes
        .modified
        .iter()
        .map(|f| f.path.clone())
        .chain(changes.deleted.iter().cloned());
    for path in paths {
        m.files.insert(
            path,
            open_replit_core::manifest::FileEntry {
                sha256: "unknown".into(),
                size: 0,
            },
        );
    }
    m
}

/// Takes a command's changes on the VM into the turn's working set, tells everyone about each
/// file, and returns the summary for the model.
pub fn take_changes(room: &Room, work: &mut Work<'_>, turn_id: u64, changes: &Changes) -> String {
    if changes.error.is_some() {
        // Nothing was saved or recorded on the VM: the next command reports them again.
        return changes.summary();
    }
    work.take_vm_changes(changes);
    for f in changes.added.iter().chain(&changes.modified) {
        room.emit(ServerEvent::FileChanged {
            turn_id,
            path: f.path.clone(),
            sha256: Some(f.sha256.clone()),
        });
    }
    for p in &changes.deleted {
        room.emit(ServerEvent::FileChanged {
            turn_id,
            path: p.clone(),
            sha256: None,
        });
    }
    changes.summary()
}
