//! The project as a git repository (issue 17): Debian's git clones it from the Worker over
//! smart HTTP, each checkpoint is one commit (tagged `cp-N`) whose tree is exactly that
//! checkpoint's files, a later change arrives as one new commit on `git pull`, and pushing to it
//! is refused; the history is pushed to a real git server with a token, and again after a change.

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

// Several threads: git runs blocking here while the test's own git server answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_shows_each_checkpoint_as_a_commit_and_pull_brings_the_next() {
    // A local git server is a private remote: this VM API may push to it.
    let stack = Stack::start_with_vm_args(Options::default(), &["--git-private-remotes"])
        .await
        .unwrap();
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

    // Push to a real git server (git http-backend behind HTTP with a token), then again after a
    // change: one new commit there. A wrong token is refused with a clear message.
    let server = e2e::gitserver::GitServer::start("canary-push-token-7f3a9c")
        .await
        .unwrap();
    let remote = server.create("demo.git").unwrap();
    let push = |token: &str| {
        let body = serde_json::json!({"url": remote, "token": token});
        let (http, url) = (
            stack.http.clone(),
            format!("{}/projects/{id}/git/push", stack.worker_url),
        );
        async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let (s, v) = push("wrong-token").await;
    assert_eq!(s, 403, "{v}");
    assert!(v.to_string().contains("refused the credentials"), "{v}");
    let (s, v) = push(&server.token).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["checkpoint"], 5, "{v}");
    assert_eq!(v["branch"], "main");
    let authed = remote.replacen("http://", &format!("http://x:{}@", server.token), 1);
    ok(git(tmp.path(), &home, &["clone", "-q", &authed, "pushed"]));
    let pushed = tmp.path().join("pushed");
    let log = ok(git(&pushed, &home, &["log", "--format=%s"]));
    assert_eq!(log.lines().count(), 5, "{log}");
    put(&stack, &id, "notes/after-push.md", "later\n").await;
    let (s, v) = push(&server.token).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["checkpoint"], 6, "{v}");
    ok(git(&pushed, &home, &["pull", "-q", "--ff-only"]));
    let log = ok(git(&pushed, &home, &["log", "--format=%s"]));
    assert_eq!(log.lines().count(), 6, "one new commit: {log}");
    assert_eq!(log.lines().next(), Some("saved notes/after-push.md"));
    // Not a file:// or ssh remote, and no credentials in the URL.
    let r = stack
        .http
        .post(format!("{}/projects/{id}/git/push", stack.worker_url))
        .json(&serde_json::json!({"url": "file:///etc", "token": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // The token reached no log of the stack.
    for entry in std::fs::read_dir(stack.state.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            assert!(
                !text.contains(&server.token),
                "the token is in {}",
                p.display()
            );
        }
    }
}
