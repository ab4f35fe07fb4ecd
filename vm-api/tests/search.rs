//! `POST /projects/{id}/search` through the signed router: matches as path and line, the
//! project's `.gitignore`, `.git`, symlinks and binary files skipped, every bound, bad input.

mod common;

use axum::http::StatusCode;
use common::{call_json, state};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use vm_api::AppState;

fn write(root: &Path, rel: &str, content: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// A small project: sources, ignored dependencies, git's own files, a binary, a symlink.
fn project(st: &AppState, outside: &Path) {
    let root = st.project_dir("p1");
    write(&root, ".gitignore", b"node_modules/\n*.log\n");
    write(
        &root,
        "src/App.tsx",
        b"import { useState } from 'react'\nexport function App() {\n  const [n, setN] = useState(0)\n  return n\n}\n",
    );
    write(
        &root,
        "src/lib/util.ts",
        b"export const USESTATE_NOTE = 1\r\n",
    );
    write(&root, "backend/app.py", b"def use_state():\n    pass\n");
    write(
        &root,
        "node_modules/react/index.js",
        b"export function useState() {}\n",
    );
    write(&root, "debug.log", b"useState failed\n");
    write(&root, ".git/config", b"useState in git\n");
    write(&root, "image.bin", b"useState\0\x01\x02");
    write(outside, "secret.txt", b"useState outside the project\n");
    std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(outside, root.join("linkdir")).unwrap();
}

async fn search(st: &Arc<AppState>, body: Value) -> (StatusCode, Value) {
    call_json(st, "POST", "/projects/p1/search", body).await
}

fn hits(v: &Value) -> Vec<String> {
    v["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}:{}: {}",
                m["path"].as_str().unwrap(),
                m["line"],
                m["text"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn finds_lines_and_skips_ignored_git_binary_and_symlinked_files() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let st = state(&tmp);
    project(&st, outside.path());
    let st = Arc::new(st);

    let (s, v) = search(&st, json!({"pattern": "useState"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        hits(&v),
        [
            "src/App.tsx:1: import { useState } from 'react'",
            "src/App.tsx:3:   const [n, setN] = useState(0)"
        ]
    );
    assert_eq!(v["files_skipped"], 1, "the binary file: {v}");
    assert!(v.get("stopped").is_none(), "{v}");
    // .gitignore, src/App.tsx, src/lib/util.ts, backend/app.py, image.bin: no node_modules,
    // no *.log, no .git, no symlinks.
    assert_eq!(v["files_scanned"], 5, "{v}");

    let (_, v) = search(&st, json!({"pattern": "use_?state", "ignore_case": true})).await;
    assert_eq!(
        hits(&v),
        [
            "backend/app.py:1: def use_state():",
            "src/App.tsx:1: import { useState } from 'react'",
            "src/App.tsx:3:   const [n, setN] = useState(0)",
            "src/lib/util.ts:1: export const USESTATE_NOTE = 1"
        ]
    );
    // Scoped by directory, by file and by glob.
    let (_, v) = search(&st, json!({"pattern": "(?i)usestate", "path": "src/lib"})).await;
    assert_eq!(
        hits(&v),
        ["src/lib/util.ts:1: export const USESTATE_NOTE = 1"]
    );
    let (_, v) = search(&st, json!({"pattern": "pa.s", "path": "backend/app.py"})).await;
    assert_eq!(hits(&v), ["backend/app.py:2:     pass"]);
    let (_, v) = search(&st, json!({"pattern": "(?i)usestate", "glob": "*.ts"})).await;
    assert_eq!(
        hits(&v),
        ["src/lib/util.ts:1: export const USESTATE_NOTE = 1"]
    );
    let (_, v) = search(&st, json!({"pattern": "nothing-like-this"})).await;
    assert_eq!(hits(&v), Vec::<String>::new());
}

#[tokio::test]
async fn every_bound_stops_the_search_and_says_which() {
    let tmp = tempfile::tempdir().unwrap();
    let mut st = state(&tmp);
    let root = st.project_dir("p1");
    for i in 0..30 {
        write(&root, &format!("f{i:02}.txt"), b"hit one\nhit two\n");
    }
    write(
        &root,
        "long.md",
        format!("hit {}\n", "é".repeat(400)).as_bytes(),
    );
    write(&root, "zbig.txt", &b"hit\n".repeat(1000));
    st.limits.search.max_file_bytes = 1000;
    let st = Arc::new(st);

    // Matches: the request's own cap, under the service's.
    let (_, v) = search(&st, json!({"pattern": "hit", "max_matches": 5})).await;
    assert_eq!(v["matches"].as_array().unwrap().len(), 5);
    assert_eq!(v["stopped"], "max_matches");
    let (_, v) = search(&st, json!({"pattern": "hit", "max_matches": 100000})).await;
    assert_eq!(v["matches"].as_array().unwrap().len(), 61, "{v}");
    assert!(
        v.get("stopped").is_none(),
        "all fit under the cap of 200: {v}"
    );
    // Files larger than the cap are counted as skipped, not read.
    assert_eq!(v["files_skipped"], 1, "{v}");
    // A long line is cut at a character boundary, ending in an ellipsis.
    let long = v["matches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["path"] == "long.md")
        .unwrap()["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        long.len() <= 300 + "…".len() && long.ends_with('…'),
        "{long}"
    );

    let tight = |f: &dyn Fn(&mut vm_api::search::SearchLimits)| {
        let tmp2 = tempfile::tempdir().unwrap();
        let mut st2 = state(&tmp2);
        st2.data_dir = tmp.path().to_path_buf();
        f(&mut st2.limits.search);
        (tmp2, Arc::new(st2))
    };
    let (_t, st2) = tight(&|l| l.max_files = 3);
    let (_, v) = search(&st2, json!({"pattern": "hit"})).await;
    assert_eq!(
        (v["files_scanned"].as_u64(), v["stopped"].as_str()),
        (Some(3), Some("max_files")),
        "{v}"
    );
    let (_t, st2) = tight(&|l| l.max_matches = 2);
    let (_, v) = search(&st2, json!({"pattern": "hit"})).await;
    assert_eq!(
        (
            v["matches"].as_array().unwrap().len(),
            v["stopped"].as_str()
        ),
        (2, Some("max_matches"))
    );
    let (_t, st2) = tight(&|l| l.time = Duration::ZERO);
    let (_, v) = search(&st2, json!({"pattern": "hit"})).await;
    assert_eq!(
        (v["files_scanned"].as_u64(), v["stopped"].as_str()),
        (Some(0), Some("time")),
        "{v}"
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let st = state(&tmp);
    project(&st, outside.path());
    let st = Arc::new(st);
    for (body, code, needle) in [
        (
            json!({"pattern": "use(State"}),
            "invalid_pattern",
            "unclosed group",
        ),
        (json!({"pattern": ""}), "invalid_pattern", "empty"),
        (
            json!({"pattern": "a", "glob": "{a,"}),
            "invalid_glob",
            "glob",
        ),
        (
            json!({"pattern": "a", "path": "../etc"}),
            "invalid_path",
            "path",
        ),
        (
            json!({"pattern": "a", "path": "/etc"}),
            "invalid_path",
            "path",
        ),
        (
            json!({"pattern": "a", "regex": true}),
            "invalid_json",
            "unknown field",
        ),
        (
            json!({"pattern": "a{99999}{99999}"}),
            "invalid_pattern",
            "pattern",
        ),
    ] {
        let (s, v) = search(&st, body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["error"]["code"], code, "{body}: {v}");
        let msg = v["error"]["message"].as_str().unwrap().to_lowercase();
        assert!(msg.contains(needle), "{body}: {msg}");
    }
    let (s, v) = call_json(&st, "POST", "/projects/p2/search", json!({"pattern": "a"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"]["code"], "no_working_copy");
    // The project is untouched.
    assert!(st.project_dir("p1").join("src/App.tsx").is_file());
}
