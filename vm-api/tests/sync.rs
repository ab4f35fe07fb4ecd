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

    fn put<'a>(
        &'a self,
        _project: &'a str,
        sha: &'a str,
        bytes: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), FetchError>> {
        Box::pin(async move {
            self.objects.lock().unwrap().insert(sha.to_string(), bytes);
            Ok(())
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
    // A directory too deep to remove (with a link out at its bottom) stands where the manifest
    // wants the file "z": the write fails after "a.txt" was written, nothing outside touched.
    let m = Manifest::of(&[("a.txt", b"a"), ("z", b"b")]);
    let deep = dir.join(vec!["z"; 300].join("/"));
    std::fs::create_dir_all(&deep).unwrap();
    std::os::unix::fs::symlink(outside.path(), deep.join("out")).unwrap();
    std::fs::create_dir_all(dir.join(vec!["z"; 300].join("/"))).unwrap();
    let (s, v) = sync(&st, &m).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    assert_eq!(v["error"]["code"], "sync_io");
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
    assert!(dir.join("z/z/z").is_dir(), "untracked directory left alone");
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
    // A symlinked directory on the way is unlinked (never followed) and replaced by a real
    // directory; it was never saved, so the reply lists it as displaced.
    std::os::unix::fs::symlink(outside.path(), dir.join("sub")).unwrap();
    let (s, v) = sync(
        &st,
        &Manifest::of(&[("leaf.txt", b"pwned"), ("sub/x.txt", b"pwned")]),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["displaced"], json!(["sub"]), "{v}");
    assert!(!outside.path().join("x.txt").exists());
    assert!(std::fs::symlink_metadata(dir.join("sub")).unwrap().is_dir());
    assert_eq!(std::fs::read(dir.join("sub/x.txt")).unwrap(), b"pwned");
    // A symlinked file to delete is unlinked, its target untouched.
    std::fs::remove_file(dir.join("leaf.txt")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("victim"), dir.join("leaf.txt")).unwrap();
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

/// A command ran in the project: exit 0, and its output.
async fn exec_ok(st: &Arc<vm_api::AppState>, cmd: &str) -> String {
    exec_scan(st, cmd, true).await
}

async fn exec_scan(st: &Arc<vm_api::AppState>, cmd: &str, scan: bool) -> String {
    let body = json!({ "command": cmd, "scan": scan });
    let (code, body) = call(st, "POST", "/projects/p1/exec", body).await;
    assert_eq!(code, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let ev = ndjson(&body);
    assert_eq!(exit_of(&ev)["exit_code"], 0, "{ev:?}");
    text_of(&ev, "stdout")
}

/// After a clash is resolved, the same sync is a no-op and commands run again (no 409 wedge).
async fn not_wedged(st: &Arc<vm_api::AppState>, m: &Manifest) {
    let (s, v) = sync(st, m).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["added"], json!([]), "{v}");
    assert_eq!(v["modified"], json!([]), "{v}");
    assert!(v.get("displaced").is_none(), "{v}");
    assert_eq!(exec_ok(st, "echo ok").await, "ok\n");
}

fn is_symlink(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

/// Storage and the working copy disagree on what a path is: the manifest wins, nothing is
/// followed, what the person made and storage never had is listed as displaced (ignored and
/// synced paths are not), and the project keeps working.
#[tokio::test]
async fn a_file_where_the_manifest_wants_a_directory_is_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let (st, _src) = setup(&tmp, &[b"*.log\nbuild\n", b"print(1)", b"x"]);
    let dir = st.project_dir("p1");
    let m1 = Manifest::of(&[(".gitignore", b"*.log\nbuild\n")]);
    assert_eq!(sync(&st, &m1).await.0, StatusCode::OK);
    // A command's file (scanned and reported, so storage has had it: its removal is storage's
    // deletion), ignored files, and a file made without a scan (never saved).
    exec_ok(&st, "echo mine > app; echo b > build; echo l > x.log").await;
    exec_scan(&st, "echo unsaved > web", false).await;
    let m2 = Manifest::of(&[
        (".gitignore", b"*.log\nbuild\n"),
        ("app/main.py", b"print(1)"),
        ("build/out.js", b"x"),
        ("web/index.html", b"x"),
        ("x.log/inner", b"x"),
    ]);
    let (s, v) = sync(&st, &m2).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["added"],
        json!([
            "app/main.py",
            "build/out.js",
            "web/index.html",
            "x.log/inner"
        ])
    );
    assert_eq!(v["deleted"], json!(["app"]), "{v}");
    assert_eq!(
        v["displaced"],
        json!(["web"]),
        "only the unsaved, unignored one: {v}"
    );
    assert_eq!(std::fs::read(dir.join("app/main.py")).unwrap(), b"print(1)");
    assert_eq!(std::fs::read(dir.join("build/out.js")).unwrap(), b"x");
    not_wedged(&st, &m2).await;
}

#[tokio::test]
async fn a_symlink_to_etc_where_the_manifest_wants_a_directory_is_unlinked_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep"), "keep").unwrap();
    let (st, _src) = setup(&tmp, &[b"pwned", b"a"]);
    let dir = st.project_dir("p1");
    let m1 = Manifest::of(&[("lib/a.txt", b"a")]);
    assert_eq!(sync(&st, &m1).await.0, StatusCode::OK);
    let etc_before = std::fs::read_dir("/etc").unwrap().count();
    let hostname = std::fs::read("/etc/hostname").ok();
    std::os::unix::fs::symlink("/etc", dir.join("etc-link")).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.join("lib/sub")).unwrap();
    let m2 = Manifest::of(&[
        ("lib/a.txt", b"a"),
        ("etc-link/pwned", b"pwned"),
        ("etc-link/hostname", b"pwned"),
        ("lib/sub/keep", b"pwned"),
    ]);
    let (s, v) = sync(&st, &m2).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["displaced"], json!(["etc-link", "lib/sub"]), "{v}");
    // Nothing outside the project was touched; the links are gone, real directories instead.
    assert!(!Path::new("/etc/pwned").exists());
    assert_eq!(std::fs::read("/etc/hostname").ok(), hostname);
    assert_eq!(std::fs::read_dir("/etc").unwrap().count(), etc_before);
    assert_eq!(std::fs::read(outside.path().join("keep")).unwrap(), b"keep");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
    for d in ["etc-link", "lib/sub"] {
        assert!(!is_symlink(&dir.join(d)), "{d}");
        assert!(dir.join(d).is_dir(), "{d}");
    }
    assert_eq!(std::fs::read(dir.join("etc-link/pwned")).unwrap(), b"pwned");
    not_wedged(&st, &m2).await;
    // Planted again by a command: the next sync resolves it again.
    exec_ok(&st, "rm -rf etc-link && ln -s /etc etc-link").await;
    let (s, v) = sync(&st, &m2).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["added"],
        json!(["etc-link/hostname", "etc-link/pwned"]),
        "{v}"
    );
    assert!(!Path::new("/etc/pwned").exists());
    not_wedged(&st, &m2).await;
}

#[tokio::test]
async fn a_directory_where_the_manifest_wants_a_file_is_removed_inside_the_project_only() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir(outside.path().join("d")).unwrap();
    std::fs::write(outside.path().join("d/keep"), "keep").unwrap();
    let (st, _src) = setup(&tmp, &[b"*.log\n", b"synced", b"now a file", b"other"]);
    let dir = st.project_dir("p1");
    let m1 = Manifest::of(&[(".gitignore", b"*.log\n"), ("data/synced.txt", b"synced")]);
    assert_eq!(sync(&st, &m1).await.0, StatusCode::OK);
    // The person's own files (not saved), an ignored one, a link out, a deep tree.
    std::fs::create_dir_all(dir.join("data/deep/er")).unwrap();
    std::fs::write(dir.join("data/mine.txt"), "mine").unwrap();
    std::fs::write(dir.join("data/deep/er/x.txt"), "x").unwrap();
    std::fs::write(dir.join("data/run.log"), "log").unwrap();
    std::os::unix::fs::symlink(outside.path().join("d"), dir.join("data/out")).unwrap();
    let m2 = Manifest::of(&[(".gitignore", b"*.log\n"), ("data", b"now a file")]);
    let (s, v) = sync(&st, &m2).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["deleted"], json!(["data/synced.txt"]), "{v}");
    assert_eq!(v["added"], json!(["data"]), "{v}");
    assert_eq!(
        v["displaced"],
        json!(["data/deep/er/x.txt", "data/mine.txt", "data/out"]),
        "{v}"
    );
    assert_eq!(std::fs::read(dir.join("data")).unwrap(), b"now a file");
    assert_eq!(
        std::fs::read(outside.path().join("d/keep")).unwrap(),
        b"keep"
    );
    not_wedged(&st, &m2).await;
    // A synced file turned into a directory by a command, while storage dropped the file:
    // the directory is left alone (sync never knew it), and the sync does not fail.
    exec_scan(&st, "rm data && mkdir data && echo y > data/y.txt", false).await;
    let m3 = Manifest::of(&[(".gitignore", b"*.log\n"), ("other.txt", b"other")]);
    let (s, v) = sync(&st, &m3).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(std::fs::read(dir.join("data/y.txt")).unwrap(), b"y\n");
    not_wedged(&st, &m3).await;
}
