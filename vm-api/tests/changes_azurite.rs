//! Changes flow back, against real Azurite and the real sandbox: what a command changes is
//! found (git's ignore rules), saved content-addressed and reported before `exit`; nothing
//! changed means nothing read; a failed upload records nothing and is reported again.

mod common;
use axum::http::StatusCode;
use common::*;
use e2e::faults::{Action, FaultProxy};
use e2e::stack::{azurite_connection_string, Azurite};
use open_replit_core::azure::AzureConfig;
use open_replit_core::manifest::Manifest;
use open_replit_core::vm_api::{manifest_digest, Changes};
use serde_json::{json, Value};
use std::sync::Arc;
use vm_api::azure_blob::AzureObjects;
use vm_api::sync::ObjectSource;
use vm_api::AppState;

const CONTAINER: &str = "codebase-projects";

fn state_with(tmp: &tempfile::TempDir, objects: AzureObjects) -> Arc<AppState> {
    let mut s = state(tmp);
    s.objects = Some(Arc::new(objects));
    s.objects_container = Some(CONTAINER.into());
    Arc::new(s)
}

async fn exec(st: &Arc<AppState>, project: &str, body: Value) -> Vec<Value> {
    let (code, body) = call(st, "POST", &format!("/projects/{project}/exec"), body).await;
    assert_eq!(code, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let ev = ndjson(&body);
    assert_eq!(exit_of(&ev)["exit_code"], 0, "{ev:?}");
    ev
}

/// The `changes` line of an exec, which must come right before `exit`.
fn changes_of(ev: &[Value]) -> Option<Changes> {
    let i = ev.iter().position(|e| e["type"] == "changes")?;
    assert_eq!(i, ev.len() - 2, "changes comes right before exit: {ev:?}");
    Some(serde_json::from_value(ev[i].clone()).unwrap())
}

fn paths(c: &[open_replit_core::vm_api::ChangedFile]) -> Vec<&str> {
    c.iter().map(|f| f.path.as_str()).collect()
}

#[tokio::test]
async fn a_command_s_changes_are_saved_and_reported_and_survive_the_next_sync() {
    let az = Azurite::start().await.unwrap();
    let cfg = AzureConfig::from_connection_string(&az.connection_string()).unwrap();
    let files: [(&str, &[u8]); 5] = [
        (".gitignore", b"node_modules\n*.log\n"),
        ("a.txt", b"a"),
        ("del.txt", b"bye"),
        ("web/.gitignore", b"dist\n"),
        ("keep.txt", b"keep"),
    ];
    let check = AzureObjects::new(cfg.clone(), CONTAINER);
    put_objects(&check, "c1", &files.map(|(_, c)| c)).await;
    let tmp = tempfile::tempdir().unwrap();
    let st = state_with(&tmp, AzureObjects::new(cfg, CONTAINER));
    let m1 = Manifest::of(&files);
    let (code, r) = call_json(&st, "POST", "/projects/c1/sync", json!({ "manifest": m1 })).await;
    assert_eq!(code, StatusCode::OK, "{r}");

    let cmd = "echo new > n.txt && mkdir -p src && printf 'ü' > src/u.txt && echo mod > a.txt \
               && rm del.txt && mkdir -p node_modules/x && echo 1 > node_modules/x/i.js \
               && echo s > server.log && mkdir -p web/dist && echo d > web/dist/o.js \
               && ln -s a.txt link && head -c 6000000 /dev/zero > big.bin";
    let ev = exec(&st, "c1", json!({ "command": cmd })).await;
    let c = changes_of(&ev).expect("a changes line");
    assert_eq!(c.error, None);
    assert_eq!(paths(&c.added), ["n.txt", "src/u.txt"]);
    assert_eq!(paths(&c.modified), ["a.txt"]);
    assert_eq!(c.deleted, ["del.txt"]);
    let skipped: Vec<(&str, &str)> = c
        .skipped
        .iter()
        .map(|s| (s.path.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(
        skipped,
        [("big.bin", "file_too_large"), ("link", "symlink")]
    );
    assert_eq!(c.stats.uploaded, 3);
    assert_eq!(c.base, manifest_digest(&m1));
    let m2 = c.apply(&m1);
    assert_eq!(c.manifest, manifest_digest(&m2));

    // The objects are in Azure with the right bytes; ignored files were never uploaded.
    for (path, want) in [
        ("n.txt", &b"new\n"[..]),
        ("src/u.txt", "ü".as_bytes()),
        ("a.txt", b"mod\n"),
    ] {
        let sha = &m2.files[path].sha256;
        assert_eq!(check.fetch("c1", sha).await.unwrap(), want, "{path}");
    }
    let blobs = check.blob.list_all("c1/objects/", None).await.unwrap();
    assert_eq!(blobs.len(), files.len() + 3, "{blobs:?}");

    // Nothing changed (the same files skipped): no line, and the on-demand scan reads no file
    // (it lists the skipped files again).
    let ev = exec(&st, "c1", json!({ "command": "true" })).await;
    assert!(changes_of(&ev).is_none(), "{ev:?}");
    let (code, r) = call_json(&st, "POST", "/projects/c1/changes", Value::Null).await;
    assert_eq!(code, StatusCode::OK, "{r}");
    let quiet: Changes = serde_json::from_value(r).unwrap();
    assert!(quiet.is_empty(), "{quiet:?}");
    assert_eq!(quiet.stats.hashed, 0, "{quiet:?}");
    assert_eq!(quiet.stats.walked, 7, "{quiet:?}");
    assert_eq!(quiet.skipped.len(), 2, "{quiet:?}");
    assert_eq!(quiet.base, c.manifest);

    // A sync to the manifest that includes the changes writes and fetches nothing.
    let (code, r) = call_json(&st, "POST", "/projects/c1/sync", json!({ "manifest": m2 })).await;
    assert_eq!(code, StatusCode::OK, "{r}");
    assert_eq!(r["fetched_objects"], 0, "{r}");
    assert_eq!(r["added"], json!([]), "{r}");
    assert_eq!(r["modified"], json!([]), "{r}");
    assert_eq!(r["deleted"], json!([]), "{r}");
    let dir = st.project_dir("c1");
    assert_eq!(std::fs::read(dir.join("a.txt")).unwrap(), b"mod\n");
    assert!(dir.join("node_modules/x/i.js").exists());

    // `"scan": false` (probe commands): no scan, nothing recorded; the next scan finds it.
    let ev = exec(
        &st,
        "c1",
        json!({ "command": "echo p > probe.txt", "scan": false }),
    )
    .await;
    assert!(changes_of(&ev).is_none(), "{ev:?}");
    let (code, r) = call_json(&st, "POST", "/projects/c1/changes", Value::Null).await;
    assert_eq!(code, StatusCode::OK, "{r}");
    let later: Changes = serde_json::from_value(r).unwrap();
    assert_eq!(paths(&later.added), ["probe.txt"]);
    assert_eq!(later.stats.hashed, 1);
    let (code, _) = call(
        &st,
        "POST",
        "/projects/c1/exec",
        json!({ "command": "true", "scan": "no" }),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
}

/// Azure down: the exec reports the error, nothing is recorded, and the next scan (Azure back)
/// reports and saves the very same changes.
#[tokio::test]
async fn a_failed_upload_records_nothing_and_the_next_scan_reports_it_again() {
    let az = Azurite::start().await.unwrap();
    let proxy = FaultProxy::start(az.port).await.unwrap();
    let cfg = AzureConfig::from_connection_string(&azurite_connection_string(proxy.port)).unwrap();
    let files: [(&str, &[u8]); 1] = [("a.txt", b"a")];
    let check = AzureObjects::new(cfg.clone(), CONTAINER);
    put_objects(&check, "c2", &files.map(|(_, c)| c)).await;
    let tmp = tempfile::tempdir().unwrap();
    let st = state_with(&tmp, AzureObjects::new(cfg, CONTAINER));
    let m1 = Manifest::of(&files);
    let (code, r) = call_json(&st, "POST", "/projects/c2/sync", json!({ "manifest": m1 })).await;
    assert_eq!(code, StatusCode::OK, "{r}");

    proxy.set_rule(|_, method, _| {
        if method == "PUT" {
            Action::Status(503)
        } else {
            Action::Forward
        }
    });
    let ev = exec(
        &st,
        "c2",
        json!({ "command": "echo b > b.txt && rm a.txt" }),
    )
    .await;
    let c = changes_of(&ev).expect("a changes line");
    let err = c.error.clone().expect("the upload error");
    assert!(err.contains("503") && err.contains("b.txt"), "{err}");
    assert_eq!(paths(&c.added), ["b.txt"]);
    assert_eq!(c.deleted, ["a.txt"]);
    assert!(
        proxy.log().iter().filter(|(m, _, _)| m == "PUT").count() >= 2,
        "retried: {:?}",
        proxy.log()
    );
    let (code, r) = call_json(&st, "POST", "/projects/c2/changes", Value::Null).await;
    assert_eq!(code, StatusCode::BAD_GATEWAY, "{r}");
    assert_eq!(r["error"]["code"], "object_upload_failed");

    proxy.set_rule(|_, _, _| Action::Forward);
    let (code, r) = call_json(&st, "POST", "/projects/c2/changes", Value::Null).await;
    assert_eq!(code, StatusCode::OK, "{r}");
    let again: Changes = serde_json::from_value(r).unwrap();
    assert_eq!(again.error, None);
    assert_eq!(again.added, c.added);
    assert_eq!(again.deleted, c.deleted);
    assert_eq!(again.base, manifest_digest(&m1));
    let sha = &again.added[0].sha256;
    assert_eq!(check.fetch("c2", sha).await.unwrap(), b"b\n");
    // Recorded now: the next scan is quiet.
    let (_, r) = call_json(&st, "POST", "/projects/c2/changes", Value::Null).await;
    let quiet: Changes = serde_json::from_value(r).unwrap();
    assert!(quiet.is_empty() && quiet.stats.hashed == 0, "{quiet:?}");
}
