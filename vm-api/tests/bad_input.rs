//! Bad input to the change scan, against real Azurite and the real sandbox: each case gets a
//! clear message in the exec's `changes` line, nothing is half-saved, and what the project had
//! before stays intact. Measured numbers are printed (`--nocapture`).

mod common;
use axum::http::StatusCode;
use common::*;
use e2e::stack::Azurite;
use open_replit_core::azure::rest::Cond;
use open_replit_core::azure::AzureConfig;
use open_replit_core::manifest::Manifest;
use open_replit_core::paths::MAX_FILES_PER_PROJECT;
use open_replit_core::store::project::object_name;
use open_replit_core::vm_api::{manifest_digest, ChangedFile, Changes};
use open_replit_core::vm_auth::sha256_hex;
use serde_json::{json, Value};
use std::sync::Arc;
use vm_api::azure_blob::AzureObjects;
use vm_api::sync::ObjectSource;
use vm_api::AppState;

const CONTAINER: &str = "codebase-projects";

struct Env {
    _az: Azurite,
    _tmp: tempfile::TempDir,
    st: Arc<AppState>,
    check: AzureObjects,
}

/// Azurite with `files` stored, a VM API synced to them, and one warm-up command so the scans
/// under test start from a settled state.
async fn env(project: &str, files: &[(&str, &[u8])]) -> (Env, Manifest) {
    let az = Azurite::start().await.unwrap();
    let cfg = AzureConfig::from_connection_string(&az.connection_string()).unwrap();
    let check = AzureObjects::new(cfg.clone(), CONTAINER);
    check.blob.ensure_container().await.unwrap();
    for (_, c) in files {
        let name = object_name(project, &Manifest::entry(c).sha256);
        check
            .blob
            .put(&name, c.to_vec(), "application/octet-stream", Cond::None)
            .await
            .unwrap();
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut s = state(&tmp);
    s.objects = Some(Arc::new(AzureObjects::new(cfg, CONTAINER)));
    s.objects_container = Some(CONTAINER.into());
    let st = Arc::new(s);
    let m = Manifest::of(files);
    let (code, r) = sync(&st, project, &m).await;
    assert_eq!(code, StatusCode::OK, "{r}");
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let e = Env {
        _az: az,
        _tmp: tmp,
        st,
        check,
    };
    exec(&e.st, project, "true").await;
    (e, m)
}

async fn sync(st: &Arc<AppState>, project: &str, m: &Manifest) -> (StatusCode, Value) {
    let path = format!("/projects/{project}/sync");
    call_json(st, "POST", &path, json!({ "manifest": m })).await
}

/// Runs `cmd` (exit 0) and returns its `changes` line, which must come right before `exit`.
async fn exec(st: &Arc<AppState>, project: &str, cmd: &str) -> Option<Changes> {
    let body = json!({ "command": cmd, "timeout_s": 300 });
    let (code, body) = call(st, "POST", &format!("/projects/{project}/exec"), body).await;
    assert_eq!(code, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let ev = ndjson(&body);
    assert_eq!(exit_of(&ev)["exit_code"], 0, "{ev:?}");
    let i = ev.iter().position(|e| e["type"] == "changes")?;
    assert_eq!(i, ev.len() - 2, "changes comes right before exit: {ev:?}");
    Some(serde_json::from_value(ev[i].clone()).unwrap())
}

async fn scan_now(st: &Arc<AppState>, project: &str) -> Changes {
    let (code, r) = call_json(
        st,
        "POST",
        &format!("/projects/{project}/changes"),
        Value::Null,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{r}");
    serde_json::from_value(r).unwrap()
}

fn paths(c: &[ChangedFile]) -> Vec<&str> {
    c.iter().map(|f| f.path.as_str()).collect()
}

fn skips(c: &Changes) -> Vec<(&str, &str)> {
    c.skipped
        .iter()
        .map(|s| (s.path.as_str(), s.reason.as_str()))
        .collect()
}

/// Every object a report names is in storage with exactly the bytes of its sha256.
async fn assert_saved(check: &AzureObjects, project: &str, c: &Changes) {
    for f in c.added.iter().chain(&c.modified) {
        let bytes = check.fetch(project, &f.sha256).await.unwrap();
        assert_eq!(sha256_hex(&bytes), f.sha256, "{}", f.path);
        assert_eq!(bytes.len() as u64, f.size, "{}", f.path);
    }
}

const FILES: [(&str, &[u8]); 4] = [
    (".gitignore", b"node_modules\n"),
    ("a.txt", b"a"),
    ("app/main.py", b"print(1)\n"),
    ("app/util.py", b"x = 1\n"),
];

#[tokio::test]
async fn fifty_thousand_new_files_are_one_skipped_folder_and_the_scan_stays_bounded() {
    let (e, m1) = env("b1", &FILES).await;
    let baseline = scan_now(&e.st, "b1").await;
    assert!(
        baseline.is_empty() && baseline.stats.hashed == 0,
        "{baseline:?}"
    );

    let c = exec(
        &e.st,
        "b1",
        "mkdir many && (cd many && seq 1 50000 | xargs touch) && echo n > notes.txt",
    )
    .await
    .expect("a changes line");
    eprintln!(
        "50,000 new files: scan {} ms (walked {}, hashed {}, uploaded {}); same-run baseline, \
         nothing changed: {} ms (walked {})",
        c.stats.duration_ms,
        c.stats.walked,
        c.stats.hashed,
        c.stats.uploaded,
        baseline.stats.duration_ms,
        baseline.stats.walked
    );
    assert_eq!(c.error, None);
    // One entry for the folder, with the count; nothing of it saved, the rest of the command's
    // work saved, nothing the project had touched.
    assert_eq!(skips(&c), [("many", "too_many_files")], "{c:?}");
    assert_eq!(c.skipped_more, 0);
    let msg = &c.skipped[0].message;
    assert!(
        msg.contains("50000 new files") && msg.contains(".gitignore"),
        "{msg}"
    );
    assert!(msg.contains(&MAX_FILES_PER_PROJECT.to_string()), "{msg}");
    assert_eq!(paths(&c.added), ["notes.txt"]);
    assert!(c.modified.is_empty() && c.deleted.is_empty(), "{c:?}");
    assert_eq!(c.stats.hashed, 1);
    assert_eq!(c.stats.uploaded, 1);
    assert!(c.stats.walked >= 50_000);
    assert!(
        c.stats.duration_ms < 20_000,
        "bounded: {} ms",
        c.stats.duration_ms
    );
    assert_eq!(c.base, manifest_digest(&m1));
    assert_saved(&e.check, "b1", &c).await;

    // The same skip is not reported again; the steady cost is one lstat per walked file.
    assert!(exec(&e.st, "b1", "true").await.is_none());
    let again = scan_now(&e.st, "b1").await;
    eprintln!(
        "50,000 new files, next scan: {} ms (walked {}, hashed {})",
        again.stats.duration_ms, again.stats.walked, again.stats.hashed
    );
    assert!(again.is_empty() && again.stats.hashed == 0, "{again:?}");
    assert_eq!(again.base, c.manifest);
    let dir = e.st.project_dir("b1");
    for (p, want) in FILES {
        assert_eq!(std::fs::read(dir.join(p)).unwrap(), want, "{p}");
    }

    // Once ignored, the folder costs nothing and is no longer reported.
    let c = exec(&e.st, "b1", "echo many >> .gitignore").await.unwrap();
    assert_eq!(paths(&c.modified), [".gitignore"]);
    assert!(c.skipped.is_empty(), "{c:?}");
    assert!(c.stats.walked < 10, "{c:?}");
}

#[tokio::test]
async fn a_sparse_gigabyte_file_is_skipped_without_being_read() {
    let (e, m1) = env("b2", &FILES).await;
    let c = exec(&e.st, "b2", "truncate -s 1G big.bin && echo s > small.txt")
        .await
        .expect("a changes line");
    eprintln!(
        "1 GiB sparse file: scan {} ms, hashed {}",
        c.stats.duration_ms, c.stats.hashed
    );
    assert_eq!(skips(&c), [("big.bin", "file_too_large")]);
    assert!(c.skipped[0].message.contains("1073741824"), "{c:?}");
    assert_eq!(paths(&c.added), ["small.txt"]);
    // Only small.txt was read: the big file's size alone decided.
    assert_eq!(c.stats.hashed, 1);
    assert_eq!(c.stats.uploaded, 1);
    assert_eq!(c.manifest, manifest_digest(&c.apply(&m1)));
    // A known file that grows past the limit keeps its stored version. (small.txt was read
    // within a timestamp tick of its write, so one more scan hashes it again first.)
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    assert!(exec(&e.st, "b2", "true").await.is_none());
    let c = exec(&e.st, "b2", "truncate -s 1G a.txt").await.unwrap();
    assert_eq!(
        skips(&c),
        [("a.txt", "file_too_large"), ("big.bin", "file_too_large")]
    );
    assert!(c.is_empty(), "{c:?}");
    assert_eq!(c.stats.hashed, 0);
}

#[tokio::test]
async fn a_name_that_is_not_utf8_is_skipped_and_the_rest_is_saved() {
    let (e, m1) = env("b3", &FILES).await;
    let c = exec(
        &e.st,
        "b3",
        r#"bash -c "printf x > \$'bad\xff.txt' && mkdir \$'dir\xfe' && echo y > \$'dir\xfe/in.txt'" && echo ok > good.txt"#,
    )
    .await
    .expect("a changes line");
    assert_eq!(
        skips(&c),
        [
            ("bad\u{fffd}.txt", "invalid_utf8"),
            ("dir\u{fffd}", "invalid_utf8")
        ]
    );
    assert!(c.skipped[0].message.contains("UTF-8"), "{c:?}");
    assert_eq!(paths(&c.added), ["good.txt"]);
    assert_saved(&e.check, "b3", &c).await;
    let m2 = c.apply(&m1);
    let (code, r) = sync(&e.st, "b3", &m2).await;
    assert_eq!(code, StatusCode::OK, "{r}");
    assert_eq!(r["fetched_objects"], 0, "{r}");
    assert!(exec(&e.st, "b3", "true").await.is_none());
}

#[tokio::test]
async fn a_directory_replaced_by_a_file_is_deletions_and_one_added_file() {
    let (e, m1) = env("b4", &FILES).await;
    let c = exec(&e.st, "b4", "rm -rf app && echo x > app")
        .await
        .expect("a changes line");
    assert_eq!(c.deleted, ["app/main.py", "app/util.py"]);
    assert_eq!(paths(&c.added), ["app"]);
    assert!(c.skipped.is_empty() && c.error.is_none(), "{c:?}");
    assert_saved(&e.check, "b4", &c).await;
    let m2 = c.apply(&m1);
    assert_eq!(c.manifest, manifest_digest(&m2));
    // The next sync to that manifest is a no-op; a sync back to the old one (a restore) puts
    // the directory back, and nothing is displaced (the file was reported).
    let (code, r) = sync(&e.st, "b4", &m2).await;
    assert_eq!(code, StatusCode::OK, "{r}");
    assert_eq!(
        r,
        json!({"added": [], "modified": [], "deleted": [], "fetched_objects": 0, "unchanged": 3})
    );
    let (code, r) = sync(&e.st, "b4", &m1).await;
    assert_eq!(code, StatusCode::OK, "{r}");
    assert_eq!(r["deleted"], json!(["app"]), "{r}");
    assert_eq!(r["added"], json!(["app/main.py", "app/util.py"]), "{r}");
    assert!(r.get("displaced").is_none(), "{r}");
    let dir = e.st.project_dir("b4");
    assert_eq!(
        std::fs::read(dir.join("app/main.py")).unwrap(),
        b"print(1)\n"
    );
    assert!(exec(&e.st, "b4", "test -d app").await.is_none());
}

#[tokio::test]
async fn two_commands_racing_on_one_file_save_a_whole_version_and_stay_consistent() {
    let (e, m1) = env("b5", &FILES).await;
    let cmd = |w: &str| format!("for i in $(seq 200); do echo {w}$i > race.txt; done");
    let (ca, cb) = (cmd("A"), cmd("B"));
    let (a, b) = tokio::join!(exec(&e.st, "b5", &ca), exec(&e.st, "b5", &cb));
    let reports: Vec<Changes> = [a, b].into_iter().flatten().collect();
    assert!(!reports.is_empty());
    let whole = |bytes: &[u8]| {
        let s = String::from_utf8_lossy(bytes);
        s.is_empty()
            || (s.ends_with('\n')
                && s.len() >= 3
                && (s.starts_with('A') || s.starts_with('B'))
                && s[1..s.len() - 1].bytes().all(|b| b.is_ascii_digit()))
    };
    for c in &reports {
        assert_eq!(c.error, None, "{c:?}");
        for f in c.added.iter().chain(&c.modified) {
            let bytes = e.check.fetch("b5", &f.sha256).await.unwrap();
            assert_eq!(
                sha256_hex(&bytes),
                f.sha256,
                "the uploaded bytes are the hashed ones"
            );
            assert!(
                whole(&bytes),
                "never torn: {:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }
    // Chain the reports from the synced manifest (scans are serialized; each names its base).
    let mut m = m1.clone();
    let mut left = reports.clone();
    while let Some(i) = left.iter().position(|c| c.base == manifest_digest(&m)) {
        let c = left.remove(i);
        m = c.apply(&m);
        assert_eq!(manifest_digest(&m), c.manifest);
    }
    assert!(
        left.is_empty(),
        "every report applies to the one before: {reports:?}"
    );
    // A following scan is consistent: after it, the recorded manifest holds what is on disk,
    // whichever command wrote last, and storage has those exact bytes.
    let dir = e.st.project_dir("b5");
    let on_disk = std::fs::read(dir.join("race.txt")).unwrap();
    assert!(on_disk == b"A200\n" || on_disk == b"B200\n", "{on_disk:?}");
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let after = scan_now(&e.st, "b5").await;
    assert_eq!(after.base, manifest_digest(&m));
    m = after.apply(&m);
    assert_eq!(m.files["race.txt"].sha256, sha256_hex(&on_disk));
    assert_eq!(
        e.check.fetch("b5", &sha256_hex(&on_disk)).await.unwrap(),
        on_disk
    );
    let quiet = scan_now(&e.st, "b5").await;
    assert!(quiet.is_empty() && quiet.stats.hashed == 0, "{quiet:?}");
    assert_eq!(quiet.base, manifest_digest(&m));
}
