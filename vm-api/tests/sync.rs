//! Sync of a working copy to a manifest: add, change, delete, rename, interrupted syncs,
//! traversal and symlink escapes, through the route with an in-memory object source.

mod common;
use axum::http::StatusCode;
use common::*;
use futures_util::future::BoxFuture;
use open_replit_core::manifest::Manifest;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use vm_api::sync::{FetchError, ObjectSource};

#[derive(Default)]
struct MapSource {
    objects: Mutex<HashMap<String, Vec<u8>>>,
    failing: Mutex<HashSet<String>>,
    fetches: AtomicUsize,
}

impl MapSource {
    fn put(&self, content: &[u8]) {
        self.objects
            .lock()
            .unwrap()
            .insert(Manifest::entry(content).sha256, content.to_vec());
    }
}

impl ObjectSource for MapSource {
    fn fetch<'a>(
        &'a self,
        _project: &'a str,
        sha: &'a str,
    ) -> BoxFuture<'a, Result<Vec<u8>, FetchError>> {
        Box::pin(async move {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            if self.failing.lock().unwrap().contains(sha) {
                return Err(FetchError::Transport("connection reset (test)".into()));
            }
            self.objects
                .lock()
                .unwrap()
                .get(sha)
                .cloned()
                .ok_or_else(|| FetchError::NotFound(sha.to_string()))
        })
    }
}

fn setup(tmp: &tempfile::TempDir, files: &[&[u8]]) -> (Arc<vm_api::AppState>, Arc<MapSource>) {
    let src = Arc::new(MapSource::default());
    for f in files {
        src.put(f);
    }
    let mut s = state(tmp);
    s.objects = Some(src.clone());
    (Arc::new(s), src)
}

/// Every regular file under `dir`, relative, with contents.
fn disk(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let rel = e
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn expect_disk(dir: &Path, files: &[(&str, &[u8])]) {
    let want: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|(p, c)| (p.to_string(), c.to_vec()))
        .collect();
    assert_eq!(disk(dir), want);
}

async fn sync(st: &Arc<vm_api::AppState>, m: &Manifest) -> (StatusCode, serde_json::Value) {
    call_json(st, "POST", "/projects/p1/sync", json!({"manifest": m})).await
}

#[tokio::test]
async fn add_change_delete_rename() {
    let tmp = tempfile::tempdir().unwrap();
    let (st, src) = setup(
        &tmp,
        &[b"hello", b"old", b"gone", b"moved content", b"new", b"x"],
    );
    let dir = st.project_dir("p1");

    let m1 = Manifest::of(&[
        ("a.txt", b"hello"),
        ("src/change.txt", b"old"),
        ("src/deep/gone.txt", b"gone"),
        ("from.txt", b"moved content"),
    ]);
    let (s, r) = sync(&st, &m1).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["added"].as_array().unwrap().len(), 4);
    assert_eq!(r["fetched_objects"], 4);
    expect_disk(
        &dir,
        &[
            ("a.txt", b"hello"),
            ("from.txt", b"moved content"),
            ("src/change.txt", b"old"),
            ("src/deep/gone.txt", b"gone"),
        ],
    );

    // Same manifest again: nothing to do, nothing fetched.
    let (_, r) = sync(&st, &m1).await;
    assert_eq!(
        r,
        json!({"added": [], "modified": [], "deleted": [], "fetched_objects": 0, "unchanged": 4})
    );

    let m2 = Manifest::of(&[
        ("a.txt", b"hello"),
        ("src/change.txt", b"new"),
        ("to/renamed.txt", b"moved content"),
        ("copy.txt", b"hello"),
    ]);
    let before = src.fetches.load(Ordering::SeqCst);
    let (s, r) = sync(&st, &m2).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["added"], json!(["copy.txt", "to/renamed.txt"]));
    assert_eq!(r["modified"], json!(["src/change.txt"]));
    assert_eq!(r["deleted"], json!(["from.txt", "src/deep/gone.txt"]));
    // Only "new" is fetched: the rename and the copy reuse content already on disk.
    assert_eq!(r["fetched_objects"], 1);
    assert_eq!(src.fetches.load(Ordering::SeqCst) - before, 1);
    expect_disk(
        &dir,
        &[
            ("a.txt", b"hello"),
            ("copy.txt", b"hello"),
            ("src/change.txt", b"new"),
            ("to/renamed.txt", b"moved content"),
        ],
    );
    assert!(
        !dir.join("src/deep").exists(),
        "emptied directories are pruned"
    );

    // A file a command changed on disk is put back to the manifest's content.
    std::fs::write(dir.join("a.txt"), "edited by a command").unwrap();
    std::fs::write(dir.join("untracked.txt"), "left alone").unwrap();
    let (_, r) = sync(&st, &m2).await;
    assert_eq!(r["modified"], json!(["a.txt"]));
    assert_eq!(std::fs::read(dir.join("a.txt")).unwrap(), b"hello");
    assert!(
        dir.join("untracked.txt").exists(),
        "files sync never knew about are left alone"
    );

    // File becomes a directory.
    let m3 = Manifest::of(&[("a.txt/inner.txt", b"x")]);
    let (s, r) = sync(&st, &m3).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    expect_disk(
        &dir,
        &[("a.txt/inner.txt", b"x"), ("untracked.txt", b"left alone")],
    );

    // The listing route reports what is on disk.
    let (_, v) = call_json(&st, "GET", "/projects/p1/files", serde_json::Value::Null).await;
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["path"], "a.txt/inner.txt");
    assert_eq!(files[0]["sha256"], Manifest::entry(b"x").sha256);
    assert_eq!(files[0]["size"], 1);
}

#[tokio::test]
async fn interrupted_sync_is_completed_by_a_retry() {
    let tmp = tempfile::tempdir().unwrap();
    let (st, src) = setup(&tmp, &[b"one", b"two", b"three"]);
    let dir = st.project_dir("p1");
    let m = Manifest::of(&[("1.txt", b"one"), ("2.txt", b"two"), ("3.txt", b"three")]);
    src.failing
        .lock()
        .unwrap()
        .insert(Manifest::entry(b"two").sha256);
    let (s, v) = sync(&st, &m).await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{v}");
    assert_eq!(v["error"]["code"], "object_fetch_failed");
    // Nothing is half-applied: objects are staged outside the project first.
    assert!(disk(&dir).is_empty());
    src.failing.lock().unwrap().clear();
    let (s, v) = sync(&st, &m).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    expect_disk(
        &dir,
        &[("1.txt", b"one"), ("2.txt", b"two"), ("3.txt", b"three")],
    );
    assert!(v["fetched_objects"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn sync_interrupted_while_writing_leaves_nothing_behind_after_the_next_one() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let (st, _src) = setup(&tmp, &[b"a", b"b", b"c"]);
    let dir = st.project_dir("p1");
    std::fs::create_dir_all(&dir).unwrap();
    // A command planted a symlink: the write through it fails after "a.txt" was written.
    std::os::unix::fs::symlink(outside.path(), dir.join("z")).unwrap();
    let m = Manifest::of(&[("a.txt", b"a"), ("z/escape.txt", b"b")]);
    let (s, v) = sync(&st, &m).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "unsafe_path");
    assert!(
        std::fs::read_dir(outside.path()).unwrap().next().is_none(),
        "nothing written outside"
    );
    assert!(dir.join("a.txt").exists());
    // The next sync (a different manifest) removes what the failed one wrote.
    let m2 = Manifest::of(&[("c.txt", b"c")]);
    let (s, v) = sync(&st, &m2).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["deleted"], json!(["a.txt"]));
    assert!(!dir.join("a.txt").exists());
    assert!(dir.join("c.txt").exists());
    assert!(
        std::fs::symlink_metadata(dir.join("z"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "untracked symlink left alone"
    );
}

#[tokio::test]
async fn traversal_and_symlink_escapes_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let (st, _src) = setup(&tmp, &[b"pwned"]);
    for bad in [
        "../escape.txt",
        "/etc/passwd",
        "a/../../b",
        ".git/config",
        "a//b",
    ] {
        let m = Manifest::of(&[(bad, b"pwned")]);
        let (s, v) = sync(&st, &m).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert_eq!(v["error"]["code"], "invalid_path", "{bad}");
    }
    let (s, v) = sync(&st, &Manifest::of(&[("a", b"pwned"), ("a/b", b"pwned")])).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("file_dir_conflict"),
        "{v}"
    );

    // A symlinked file at the leaf is replaced, not written through.
    let dir = st.project_dir("p1");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(outside.path().join("victim"), "intact").unwrap();
    std::os::unix::fs::symlink(outside.path().join("victim"), dir.join("leaf.txt")).unwrap();
    let (s, v) = sync(&st, &Manifest::of(&[("leaf.txt", b"pwned")])).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        std::fs::read(outside.path().join("victim")).unwrap(),
        b"intact"
    );
    assert!(std::fs::symlink_metadata(dir.join("leaf.txt"))
        .unwrap()
        .is_file());
    // A symlinked directory on the way is refused.
    std::os::unix::fs::symlink(outside.path(), dir.join("sub")).unwrap();
    let (s, v) = sync(
        &st,
        &Manifest::of(&[("leaf.txt", b"pwned"), ("sub/x.txt", b"pwned")]),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "unsafe_path");
    assert!(!outside.path().join("x.txt").exists());
    // A symlinked file to delete is unlinked, its target untouched.
    std::fs::remove_file(dir.join("sub")).unwrap();
    let (s, _) = sync(&st, &Manifest::of(&[])).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        std::fs::read(outside.path().join("victim")).unwrap(),
        b"intact"
    );
}

#[tokio::test]
async fn objects_with_the_wrong_content_are_never_written() {
    let tmp = tempfile::tempdir().unwrap();
    let (st, src) = setup(&tmp, &[]);
    let want = Manifest::entry(b"real");
    src.objects
        .lock()
        .unwrap()
        .insert(want.sha256.clone(), b"forged".to_vec());
    let m = Manifest {
        files: [("f.txt".to_string(), want)].into_iter().collect(),
    };
    let (s, v) = sync(&st, &m).await;
    assert_eq!(s, StatusCode::BAD_GATEWAY);
    assert_eq!(v["error"]["code"], "object_hash_mismatch");
    assert!(!st.project_dir("p1").join("f.txt").exists());
}

#[tokio::test]
async fn without_blob_storage_sync_is_503() {
    let tmp = tempfile::tempdir().unwrap();
    let st = Arc::new(state(&tmp));
    let (s, v) = sync(&st, &Manifest::of(&[])).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v["error"]["code"], "no_blob_storage");
}

#[tokio::test]
async fn concurrent_syncs_of_one_project_are_serialized() {
    let tmp = tempfile::tempdir().unwrap();
    let contents: Vec<Vec<u8>> = (0..50).map(|i| format!("file {i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = contents.iter().map(|c| c.as_slice()).collect();
    let (st, _src) = setup(&tmp, &refs);
    let names: Vec<String> = (0..50).map(|i| format!("d{}/f{i}.txt", i % 5)).collect();
    let m1 = Manifest::of(
        &names
            .iter()
            .zip(&refs)
            .map(|(n, c)| (n.as_str(), *c))
            .collect::<Vec<_>>(),
    );
    let m2 = Manifest::of(
        &names
            .iter()
            .zip(&refs)
            .take(10)
            .map(|(n, c)| (n.as_str(), *c))
            .collect::<Vec<_>>(),
    );
    let (a, b) = tokio::join!(sync(&st, &m1), sync(&st, &m2));
    assert_eq!(a.0, StatusCode::OK, "{}", a.1);
    assert_eq!(b.0, StatusCode::OK, "{}", b.1);
    // Whichever ran last wins completely; the result is one of the two manifests, exactly.
    let on_disk = disk(&st.project_dir("p1")).len();
    assert!(on_disk == 50 || on_disk == 10, "{on_disk}");
}
