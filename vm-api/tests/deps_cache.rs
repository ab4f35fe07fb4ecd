//! The shared dependency cache under the hardened sandbox: a clean build runs once, later
//! projects get root-owned read-only links they can use but never change, each fallback path
//! works, and real npm and pip keep working on linked trees.

mod common;
use axum::http::StatusCode;
use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use vm_api::sandbox::hardened::{Hardened, HardenedConfig};
use vm_api::AppState;

struct Env {
    _tmp: tempfile::TempDir,
    st: Arc<AppState>,
    sb: Arc<Hardened>,
}

async fn env() -> Env {
    env_keeping(32).await
}

async fn env_keeping(entries: usize) -> Env {
    env_limits(entries, 16 << 30).await
}

async fn env_limits(entries: usize, bytes: u64) -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let sb = Arc::new(Hardened::new(tmp.path(), HardenedConfig::default()).unwrap());
    let mut state = AppState::new(SECRET.to_vec(), tmp.path().to_path_buf(), sb.clone());
    state.deps.max_entries = entries;
    state.deps.max_bytes = bytes;
    let (st, _, _) = serve(state).await;
    Env { _tmp: tmp, st, sb }
}

/// A stand-in install: it reads its manifest and writes a tree with a nested file, an
/// executable and a symlink, and says where it ran.
const BUILD: &str = "mkdir -p out/sub && cp manifest.txt out/ && echo built > out/sub/x && \
    printf '#!/bin/sh\\necho tool\\n' > out/tool && chmod +x out/tool && ln -s sub/x out/link && \
    echo RAN in $(id -u)";

impl Env {
    fn write(&self, project: &str, rel: &str, text: &str) {
        let p = self.st.project_dir(project).join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    async fn exec(&self, project: &str, body: Value) -> (String, String, Value) {
        let (s, b) = call(&self.st, "POST", &format!("/projects/{project}/exec"), body).await;
        assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
        let ev = ndjson(&b);
        (text_of(&ev, "stdout"), text_of(&ev, "stderr"), exit_of(&ev))
    }

    async fn cached(&self, project: &str, command: &str) -> (String, String, Value) {
        self.exec(
            project,
            json!({"command": command, "cwd": "app", "timeout_s": 300,
                   "cache": {"inputs": ["app/manifest.txt"], "outputs": ["out"]}}),
        )
        .await
    }

    async fn sh(&self, project: &str, command: &str) -> (String, String, Value) {
        self.exec(project, json!({"command": command, "timeout_s": 300}))
            .await
    }
}

#[tokio::test]
async fn one_clean_build_then_read_only_links_for_everyone() {
    let e = env().await;
    e.write("cache-a", "app/manifest.txt", "deps v1\n");
    let (out, err, exit) = e.cached("cache-a", BUILD).await;
    assert_eq!(exit["exit_code"], 0, "{out}{err}");
    // It ran in the builder (not as the project), then was linked in.
    let builder_uid = e.sb.uid(&vm_api::deps::builder_id(BUILD, "app")).unwrap();
    assert!(out.contains(&format!("RAN in {builder_uid}")), "{out}");
    assert!(out.contains("files linked"), "{out}");
    let a_uid = e.sb.uid("cache-a").unwrap();
    let out_a = e.st.project_dir("cache-a").join("app/out");
    let f = std::fs::metadata(out_a.join("sub/x")).unwrap();
    assert_eq!((f.uid(), f.nlink(), f.mode() & 0o222), (0, 2, 0));
    assert_eq!(std::fs::metadata(&out_a).unwrap().uid(), a_uid);
    assert_eq!(
        std::fs::read_link(out_a.join("link")).unwrap().to_str(),
        Some("sub/x")
    );

    // A second project with the same manifest: no build, the same files.
    e.write("cache-b", "app/manifest.txt", "deps v1\n");
    let (out, err, exit) = e.cached("cache-b", BUILD).await;
    assert_eq!(exit["exit_code"], 0, "{out}{err}");
    assert!(!out.contains("RAN"), "{out}");
    assert!(out.contains("linked from the cache"), "{out}");
    let (out, err, exit) = e
        .sh(
            "cache-b",
            "cat app/out/manifest.txt app/out/link; app/out/tool",
        )
        .await;
    assert_eq!(exit["exit_code"], 0, "{err}");
    assert_eq!(out, "deps v1\nbuilt\ntool\n");

    // The project cannot change the shared files, only its own view of them.
    let (out, _, _) = e
        .sh(
            "cache-b",
            "echo evil > app/out/sub/x 2>/dev/null && echo WROTE; \
             chmod u+w app/out/sub/x 2>/dev/null && echo CHMOD; \
             chown $(id -u) app/out/sub/x 2>/dev/null && echo CHOWN; \
             ln -f /dev/null app/out/sub/y 2>/dev/null; \
             rm app/out/sub/x && echo removed; echo mine > app/out/sub/x && cat app/out/sub/x",
        )
        .await;
    assert_eq!(out, "removed\nmine\n");
    let (out, _, _) = e.sh("cache-a", "cat app/out/sub/x").await;
    assert_eq!(out, "built\n", "another project's copy is untouched");
    e.write("cache-c", "app/manifest.txt", "deps v1\n");
    e.cached("cache-c", BUILD).await;
    let (out, _, _) = e.sh("cache-c", "cat app/out/sub/x").await;
    assert_eq!(out, "built\n", "the cache is untouched");
    e.st.shutdown().await;
}

#[tokio::test]
async fn incremental_fallbacks_and_failures() {
    let e = env().await;
    e.write("inc-a", "app/manifest.txt", "v1\n");
    // One install command throughout, as a template has.
    const INC: &str = "test -f out/sub/x && echo HAD BASE; mkdir -p out/sub && \
        cp -f manifest.txt out/ && rm -f out/sub/x && echo built > out/sub/x && echo RAN in $(id -u)";
    let (out, err, exit) = e.cached("inc-a", INC).await;
    assert_eq!(exit["exit_code"], 0, "{out}");
    assert!(
        e.st.project_dir("inc-a").join("app/out/sub/x").exists(),
        "{out}{err}"
    );

    // The project already has its outputs: an incremental install in the project itself.
    e.write("inc-a", "app/manifest.txt", "v2\n");
    let (out, _, exit) = e.cached("inc-a", INC).await;
    assert_eq!(exit["exit_code"], 0);
    assert_eq!(
        out,
        format!("HAD BASE\nRAN in {}\n", e.sb.uid("inc-a").unwrap())
    );

    // A new project whose manifest differs: starts from the earlier build, then runs.
    e.write("inc-b", "app/manifest.txt", "v3\n");
    let (out, _, exit) = e.cached("inc-b", INC).await;
    assert_eq!(exit["exit_code"], 0);
    assert!(out.contains("started from a cached install"), "{out}");
    assert!(out.contains("HAD BASE"), "{out}");
    assert!(
        out.contains(&format!("RAN in {}", e.sb.uid("inc-b").unwrap())),
        "{out}"
    );

    // A clean build that needs more than its inputs fails there, then runs in the project.
    e.write("inc-c", "app/manifest.txt", "v4\n");
    e.write("inc-c", "app/extra.txt", "extra\n");
    let (out, err, exit) = e
        .exec(
            "inc-c",
            json!({"command": "mkdir -p out2 && cp extra.txt out2/", "cwd": "app",
                   "cache": {"inputs": ["app/manifest.txt"], "outputs": ["out2"]}}),
        )
        .await;
    assert_eq!(exit["exit_code"], 0, "{out}{err}");
    assert!(err.contains("the clean install failed"), "{err}");
    assert!(e
        .st
        .project_dir("inc-c")
        .join("app/out2/extra.txt")
        .exists());

    // A build that fails everywhere reports the failure, and nothing is cached.
    e.write("inc-d", "app/manifest.txt", "broken\n");
    let (_, err, exit) = e.cached("inc-d", "echo no such package >&2; exit 3").await;
    assert_eq!(exit["exit_code"], 3);
    assert!(err.contains("no such package"), "{err}");

    // A build leaves no process behind, even one it put in the background.
    e.write("inc-e", "app/manifest.txt", "daemon\n");
    let (_, _, exit) = e
        .exec(
            "inc-e",
            json!({"command": "(sleep 300 &) ; mkdir -p o; echo x > o/f", "cwd": "app",
                   "cache": {"inputs": ["app/manifest.txt"], "outputs": ["o"]}}),
        )
        .await;
    assert_eq!(exit["exit_code"], 0);
    let builder = vm_api::deps::builder_id("(sleep 300 &) ; mkdir -p o; echo x > o/f", "app");
    assert!(e.sb.cgroup_pids(&builder).is_empty());
    e.st.shutdown().await;
}

#[tokio::test]
async fn bad_specs_and_symlinked_dirs_are_refused() {
    let e = env().await;
    e.write("bad-a", "app/manifest.txt", "v1\n");
    for cache in [
        json!({"inputs": ["../../etc/passwd"], "outputs": ["out"]}),
        json!({"inputs": ["app/manifest.txt"], "outputs": ["../escape"]}),
        json!({"inputs": [], "outputs": ["out"]}),
        json!({"inputs": ["app/manifest.txt"]}),
    ] {
        let (s, body) = call(
            &e.st,
            "POST",
            "/projects/bad-a/exec",
            json!({"command": "true", "cwd": "app", "cache": cache}),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{cache}");
        let body = String::from_utf8_lossy(&body);
        assert!(
            body.contains("cache") || body.contains("outputs"),
            "{cache}: {body}"
        );
    }
    // The project points its output at a directory of another project: linking goes around
    // the link (it is replaced), never through it.
    e.write("bad-b", "app/manifest.txt", "v1\n");
    e.cached("bad-b", BUILD).await;
    let victim = e.st.project_dir("bad-b").join("app/out");
    std::fs::remove_dir_all(e.st.project_dir("bad-a").join("app")).ok();
    e.write("bad-a", "app/manifest.txt", "v1\n");
    std::os::unix::fs::symlink(&victim, e.st.project_dir("bad-a").join("app/out")).unwrap();
    let (out, err, exit) = e.cached("bad-a", BUILD).await;
    assert_eq!(exit["exit_code"], 0, "{out}{err}");
    assert!(
        std::fs::symlink_metadata(e.st.project_dir("bad-a").join("app/out"))
            .unwrap()
            .is_dir()
    );
    assert!(victim.join("sub/x").exists(), "the other project is intact");
    e.st.shutdown().await;
}

#[tokio::test]
async fn real_npm_and_pip_work_on_linked_installs() {
    let e = env().await;
    let pkg =
        r#"{"name":"t","version":"1.0.0","private":true,"dependencies":{"left-pad":"1.3.0"}}"#;
    let npm = json!({"command": "npm install --no-audit --no-fund", "cwd": "web", "timeout_s": 300,
                     "cache": {"inputs": ["web/package.json", "web/package-lock.json"], "outputs": ["node_modules"]}});
    let venv = "python3 -m venv .venv && .venv/bin/pip install -q six==1.16.0";
    let pip = json!({"command": venv, "cwd": "api", "timeout_s": 300,
                     "cache": {"inputs": ["api/requirements.txt"], "outputs": [".venv"]}});
    for p in ["real-a", "real-b"] {
        e.write(p, "web/package.json", pkg);
        e.write(p, "api/requirements.txt", "six==1.16.0\n");
        let (out, err, exit) = e.exec(p, npm.clone()).await;
        assert_eq!(exit["exit_code"], 0, "{out}{err}");
        let (out, err, exit) = e.exec(p, pip.clone()).await;
        assert_eq!(exit["exit_code"], 0, "{out}{err}");
    }
    let (out, err, exit) = e
        .sh(
            "real-b",
            "cd web && node -e \"console.log(require('left-pad')('x', 3))\" && \
             npm install --no-audit --no-fund is-number@7.0.0 >/dev/null && \
             node -e \"console.log(require('is-number')(5))\" && cd ../api && \
             .venv/bin/python -c 'import six; print(six.__version__)' && \
             .venv/bin/pip install -q six==1.15.0 && .venv/bin/python -c 'import six; print(six.__version__)'",
        )
        .await;
    assert_eq!(exit["exit_code"], 0, "{out}{err}");
    assert_eq!(out, "  x\ntrue\n1.16.0\n1.15.0\n");
    // Project a still has what the cache gave it.
    let (out, err, _) = e
        .sh(
            "real-a",
            "cd web && test ! -e node_modules/is-number && echo clean; \
             api/.venv/bin/python -c 'import six; print(six.__version__)' 2>/dev/null || \
             ../api/.venv/bin/python -c 'import six; print(six.__version__)'",
        )
        .await;
    assert_eq!(out, "clean\n1.16.0\n", "{err}");
    e.st.shutdown().await;
}

#[tokio::test]
async fn recurring_manifests_get_built_and_old_entries_evicted() {
    let e = env_keeping(2).await;
    // An install that works on a linked tree (it replaces files, as npm and pip do).
    const IDEM: &str = "mkdir -p out/sub && cp -f manifest.txt out/ && rm -f out/sub/x && \
        echo built > out/sub/x && echo RAN";
    // Each install command and cwd has its own clean builds; the cwd stands in for a template.
    let run = |p: &'static str, cwd: &'static str, m: &'static str| {
        let e = &e;
        async move {
            e.write(p, &format!("{cwd}/manifest.txt"), m);
            let (out, err, exit) = e
                .exec(
                    p,
                    json!({"command": IDEM, "cwd": cwd, "timeout_s": 120,
                           "cache": {"inputs": [format!("{cwd}/manifest.txt")], "outputs": ["out"]}}),
                )
                .await;
            assert_eq!(exit["exit_code"], 0, "{out}{err}");
            out
        }
    };
    let built = |out: &str| out.contains("clean copy");
    assert!(built(&run("lru-1", "t1", "m1\n").await));
    assert!(built(&run("lru-2", "t2", "m2\n").await));
    // t1 is used again, so t2 is now the least recently used.
    assert!(run("lru-3", "t1", "m1\n")
        .await
        .contains("linked from the cache"));
    assert!(built(&run("lru-4", "t3", "m3\n").await));
    assert_eq!(e.st.deps.entries().len(), 2, "{:?}", e.st.deps.entries());
    // lru-2 linked the evicted entry and still has every file.
    let (out, _, _) = e.sh("lru-2", "cat t2/out/manifest.txt t2/out/sub/x").await;
    assert_eq!(out, "m2\nbuilt\n");
    assert!(!built(&run("lru-5", "t1", "m1\n").await), "t1 survived");
    assert!(
        built(&run("lru-6", "t2", "m2\n").await),
        "t2 is built again"
    );

    // A changed manifest for t1 starts from t1's build; when it comes back a second time it
    // gets a clean build of its own in the background, and the next project links it.
    const NEXT: &str = "m1 and one more package\n";
    let before = e.st.deps.entries();
    for p in ["lru-7", "lru-8"] {
        let out = run(p, "t1", NEXT).await;
        assert!(out.contains("started from a cached install"), "{out}");
        assert!(out.contains("RAN"), "{out}");
    }
    let mut grew = false;
    for _ in 0..120 {
        if e.st.deps.entries().iter().any(|k| !before.contains(k)) {
            grew = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(grew, "no background build: {:?}", e.st.deps.entries());
    let out = run("lru-9", "t1", NEXT).await;
    assert!(out.contains("linked from the cache"), "{out}");
    let (out, _, _) = e.sh("lru-9", "cat t1/out/manifest.txt").await;
    assert_eq!(out, NEXT);
    e.st.shutdown().await;
}

/// The cache holds at most `max_bytes`: older installs go first, the newest stays even when it
/// alone is over the budget, and projects keep the files of an evicted install.
#[tokio::test]
async fn the_cache_stays_within_its_byte_budget() {
    let e = env_limits(32, 500 << 10).await;
    let run = |p: &'static str, cwd: &'static str, kib: u32| {
        let e = &e;
        async move {
            e.write(p, &format!("{cwd}/manifest.txt"), &format!("{kib}\n"));
            let cmd = format!(
                "mkdir -p out && head -c {}K /dev/zero > out/blob && echo RAN",
                kib
            );
            let (out, err, exit) = e
                .exec(
                    p,
                    json!({"command": cmd, "cwd": cwd, "timeout_s": 120,
                           "cache": {"inputs": [format!("{cwd}/manifest.txt")], "outputs": ["out"]}}),
                )
                .await;
            assert_eq!(exit["exit_code"], 0, "{out}{err}");
            assert!(out.contains("clean copy"), "{out}");
        }
    };
    run("bytes-1", "t1", 300).await;
    assert_eq!(e.st.deps.entries().len(), 1);
    let first = e.st.deps.entries()[0].clone();
    assert_eq!(e.st.deps.entry_bytes(&first), 300 << 10);
    // 600 KiB > 500 KiB: the older one goes.
    run("bytes-2", "t2", 300).await;
    let left = e.st.deps.entries();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_ne!(left[0], first, "the least recently used was evicted");
    // Bigger than the whole budget: it stays (it was just built), the other goes.
    run("bytes-3", "t3", 800).await;
    let left = e.st.deps.entries();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(e.st.deps.entry_bytes(&left[0]), 800 << 10);
    // The first project still has its (now uncached) install.
    let (out, _, _) = e.sh("bytes-1", "wc -c < t1/out/blob").await;
    assert_eq!(out.trim(), (300u32 << 10).to_string());
    e.st.shutdown().await;
}
