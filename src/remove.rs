//! Deleting a project for good (its owner only). In its room: refused while a turn or a
//! publish runs; the VM API removes it from the host and from storage (`meta.json` first, so
//! it stops being listed at once); then the room forgets everything it stored and closes its
//! sockets. The gate then removes it from the `Directory` (owner, members, slug). Each step
//! tolerates an earlier removal cut short, so deleting again finishes the job.

use crate::error::ApiError;
use crate::room_state::Room;
use crate::vm::Vm;
use open_replit_core::auth::directory::DirRequest;
use serde_json::json;
use std::rc::Rc;
use worker::{Env, Response};

/// `DELETE /projects/{id}` inside the project's room.
pub async fn in_room(room: &Rc<Room>, id: &str) -> Result<Response, ApiError> {
    let busy = |what: &str| ApiError::Conflict {
        message: format!("{what} is running: wait for it or stop it, then delete the project"),
        details: json!({}),
    };
    if room.turn_running() {
        return Err(busy("a turn"));
    }
    // Held to the end: no publish, rollback or external deploy starts while the project goes.
    let Some(_publishing) = room.publish_lock().try_lock() else {
        return Err(busy("a publish or deploy"));
    };
    let reply = Vm::from_config(room.config())?.remove_project(id).await?;
    room.forget_everything()?;
    room.close_sockets_deleted();
    if reply.blobs == 0 && reply.folders == 0 && reply.dev_servers == 0 && reply.backends == 0 {
        // Nothing was left of it: deleted before, or never there.
        return Err(ApiError::NotFound(format!("project {id} not found")));
    }
    Ok(Response::from_json(
        &json!({ "deleted": id, "removed": reply }),
    )?)
}

/// Removes what a new project that failed before its `meta.json` was written left behind (the
/// objects saved for it, a checkpoint, the `Directory`'s claim), best effort: the caller
/// reports the original error. Never for an id that turned out to hold another project.
pub async fn failed_start(env: &Env, vm: &Vm, id: &str) {
    if let Err(c) = vm.remove_project(id).await {
        worker::console_warn!("cleaning up the unfinished project {id}: {}", c.message());
    }
    if let Err(c) = in_directory(env, id).await {
        worker::console_warn!("cleaning up the unfinished project {id}: {}", c.message());
    }
}

/// After the room: the project leaves the `Directory`.
pub async fn in_directory(env: &Env, id: &str) -> Result<(), ApiError> {
    let _: serde_json::Value = crate::directory::call(
        env,
        &DirRequest::RemoveProject {
            project: id.to_string(),
        },
    )
    .await?;
    Ok(())
}
