//! Package installs from the public registries still work inside the hardened sandbox (through
//! its NAT, its DNS forwarder and its per-project caches), with default limits.

mod common;
use axum::http::StatusCode;
use common::*;
use serde_json::json;
use std::sync::Arc;
use vm_api::sandbox::hardened::{Hardened, HardenedConfig};
use vm_api::AppState;

async fn run(st: &Arc<AppState>, project: &str, command: &str) -> (String, serde_json::Value) {
    let (s, body) = call(
        st,
        "POST",
        &format!("/projects/{project}/exec"),
        json!({"command": command, "timeout_s": 300}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let ev = ndjson(&body);
    let all = format!("{}{}", text_of(&ev, "stdout"), text_of(&ev, "stderr"));
    (all, exit_of(&ev))
}

#[tokio::test]
async fn npm_and_pip_install_work_in_the_hardened_sandbox() {
    let tmp = tempfile::tempdir().unwrap();
    let sb = Arc::new(Hardened::new(tmp.path(), HardenedConfig::default()).unwrap());
    let (st, _, _) = serve(AppState::new(
        SECRET.to_vec(),
        tmp.path().to_path_buf(),
        sb.clone(),
    ))
    .await;

    std::fs::create_dir_all(st.project_dir("pkg-npm")).unwrap();
    std::fs::write(
        st.project_dir("pkg-npm").join("package.json"),
        r#"{"name":"t","version":"1.0.0","private":true,"dependencies":{"left-pad":"1.3.0"}}"#,
    )
    .unwrap();
    let (out, exit) = run(
        &st,
        "pkg-npm",
        "npm install --no-audit --no-fund && node -e \"console.log(require('left-pad')('x', 3, '-'))\"",
    )
    .await;
    assert_eq!(exit["exit_code"], 0, "{out}");
    assert!(out.contains("--x"), "{out}");
    // The cache went to the project's own home, not the working copy or the host's.
    assert!(st.home_dir("pkg-npm").join(".npm").is_dir());

    let (out, exit) = run(
        &st,
        "pkg-pip",
        "python3 -m venv .venv && .venv/bin/pip install --disable-pip-version-check -q six==1.16.0 \
         && .venv/bin/python -c 'import six; print(\"six\", six.__version__)'",
    )
    .await;
    assert_eq!(exit["exit_code"], 0, "{out}");
    assert!(out.contains("six 1.16.0"), "{out}");
    st.shutdown().await;
}
