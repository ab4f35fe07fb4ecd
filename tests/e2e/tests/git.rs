//! The project as a git repository (issue 17): Debian's git clones it from the Worker over
//! smart HTTP, each checkpoint is one commit (tagged `cp-N`) whose tree is exactly that
//! checkpoint's files, a later change arrives as one new commit on `git pull`, and pushing is
//! refused.

use e2e::stack::{Options, Stack};
use std::path::Path;
use std::process::Command;

fn git(dir: &Path, home: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap()
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "git failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn put(stack: &Stack, id: &str, path: &str, body: &str) {
    let r = stack
        .http
        .put(format!("{}/projects/{id}/files/{path}", stack.worker_url))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// The manifest of checkpoint `n`: path → sha256.
async fn files_at(stack: &Stack, id: &str, n: u64) -> std::collections::BTreeMap<String, String> {
    let (s, v) = stack
        .get_json(&format!("/projects/{id}/files?at={n}"))
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn clone_shows_each_checkpoint_as_a_commit_and_pull_brings_the_next() {
    let stack = Stack::start(Options::default()).await.unwrap();
    let id = stack.create_project("git demo", "frontend").await.unwrap();
    put(&stack, &id, "notes/plan.md", "first plan\n").await;
    put(
        &stack,
        &id,
        "notes/h%C3%A9llo%20w%C3%B6rld.md",
        "unicode name\n",
    )
    .await;
    let r = stack
        .http
        .delete(format!(
            "{}/projects/{id}/files/notes/plan.md",
            stack.worker_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let url = format!("{}/projects/{id}/git", stack.worker_url);
    ok(git(tmp.path(), &home, &["clone", "-q", &url, "c"]));
    let c = tmp.path().join("c");
    let subjects = ok(git(&c, &home, &["log", "--format=%s|%an"]));
    let subjects: Vec<&str> = subjects.lines().collect();
    assert_eq!(subjects.len(), 4, "{subjects:?}");
    assert_eq!(subjects[0], "deleted notes/plan.md|user");
    assert_eq!(subjects[2], "saved notes/plan.md|user");

    // Every checkpoint's tree is exactly its files, byte for byte.
    for n in 1..=4u64 {
        let want = files_at(&stack, &id, n).await;
        let tag = format!("cp-{n}");
        let listed = ok(git(
            &c,
            &home,
            &[
                "-c",
                "core.quotepath=off",
                "ls-tree",
                "-r",
                "--name-only",
                &tag,
            ],
        ));
        let got: Vec<&str> = listed.lines().collect();
        assert_eq!(
            got,
            want.keys().map(String::as_str).collect::<Vec<_>>(),
            "cp-{n}"
        );
        for (path, sha) in &want {
            let out = git(&c, &home, &["show", &format!("{tag}:{path}")]);
            assert!(out.status.success(), "{tag}:{path}");
            assert_eq!(
                &open_replit_core::vm_auth::sha256_hex(&out.stdout),
                sha,
                "{tag}:{path}"
            );
        }
    }
    assert!(c.join("notes/héllo wörld.md").is_file());
    assert!(!c.join("notes/plan.md").exists());

    // A new checkpoint is one new commit on pull.
    put(&stack, &id, "notes/next.md", "next\n").await;
    ok(git(&c, &home, &["pull", "-q", "--ff-only"]));
    let log = ok(git(&c, &home, &["log", "--format=%s"]));
    assert_eq!(log.lines().count(), 5, "{log}");
    assert_eq!(log.lines().next(), Some("saved notes/next.md"));
    assert_eq!(
        std::fs::read_to_string(c.join("notes/next.md")).unwrap(),
        "next\n"
    );

    // Read-only: a push is refused and changes nothing.
    std::fs::write(c.join("pushed.txt"), "x").unwrap();
    ok(git(&c, &home, &["add", "pushed.txt"]));
    ok(git(
        &c,
        &home,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "mine",
        ],
    ));
    let push = git(&c, &home, &["push", "-q", "origin", "HEAD:main"]);
    assert!(!push.status.success(), "a push must be refused");
    let (_, files) = stack
        .get_json(&format!("/projects/{id}/files"))
        .await
        .unwrap();
    assert!(!files.to_string().contains("pushed.txt"));
}
