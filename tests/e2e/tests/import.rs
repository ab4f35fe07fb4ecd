//! Importing an existing repository as a new project (issue 17): a fullstack-shaped repository
//! built with Debian's git (plus a symlink, an executable, nested and oddly named files) is
//! served by a real `git http-backend` server behind a token; `POST /projects/import` makes it
//! a listed project whose files are the repository's tracked files byte for byte (the symlink
//! skipped), with the template inferred and checkpoint 1 by `user` saying where it came from. A
//! missing repository, a wrong token, an empty repository and a tree no template fits are clear
//! 4xx answers that list no project, and neither token reaches any log.

use e2e::gitserver::GitServer;
use e2e::stack::{Options, Stack};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const TOKEN: &str = "canary-import-token-5d81e2";
const WRONG_TOKEN: &str = "canary-wrong-import-token-a90c44";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// A new repository at `dir` with everything in it committed on `main`.
fn commit_all(dir: &Path) {
    git(dir, &["init", "-q", "--initial-branch", "main"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "first"]);
}

/// The tracked regular files of the work repository's HEAD: path → bytes (from git itself).
fn tracked(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let listing = git(dir, &["ls-tree", "-r", "-z", "HEAD"]);
    let mut files = BTreeMap::new();
    for entry in listing.split('\0').filter(|e| !e.is_empty()) {
        let (head, path) = entry.split_once('\t').unwrap();
        let mut f = head.split(' ');
        let (mode, oid) = (f.next().unwrap(), f.nth(1).unwrap());
        if mode == "100644" || mode == "100755" {
            let out = Command::new("git")
                .args(["cat-file", "blob", oid])
                .current_dir(dir)
                .output()
                .unwrap();
            files.insert(path.to_string(), out.stdout);
        }
    }
    files
}

fn encode(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            seg.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn import(stack: &Stack, body: serde_json::Value) -> (u16, serde_json::Value) {
    let r = stack
        .http
        .post(format!("{}/projects/import", stack.worker_url))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn project_ids(stack: &Stack) -> Vec<String> {
    let (s, v) = stack.get_json("/projects").await.unwrap();
    assert_eq!(s, 200, "{v}");
    v["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect()
}

// Several threads: the test's own git server answers while the VM API's git clones from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_becomes_a_project_with_its_files_and_its_template() {
    // The local git server is a private remote: this VM API may import from it.
    let stack = Stack::start_with_vm_args(Options::default(), &["--git-private-remotes"])
        .await
        .unwrap();
    let server = GitServer::start(TOKEN).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();

    // A fullstack-shaped repository from the templates, with a few extras.
    let work = tmp.path().join("shop");
    let templates = stack.root.join("templates");
    copy_dir(&templates.join("frontend"), &work.join("frontend"));
    copy_dir(&templates.join("backend"), &work.join("backend"));
    std::fs::copy(
        templates.join("fullstack/README.md"),
        work.join("README.md"),
    )
    .unwrap();
    std::fs::create_dir_all(work.join("notes/deep/er")).unwrap();
    std::fs::write(work.join("notes/deep/er/plan.md"), "nested\n").unwrap();
    std::fs::write(
        work.join("notes/h\u{e9}llo w\u{f6}rld.md"),
        "unicode name\n",
    )
    .unwrap();
    std::fs::write(work.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::write(work.join("binary.bin"), [0u8, 159, 146, 150, 255, 10, 13]).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(work.join("run.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    std::os::unix::fs::symlink("README.md", work.join("readme-link")).unwrap();
    commit_all(&work);
    let want = tracked(&work);
    assert!(want.contains_key("frontend/package.json") && !want.contains_key("readme-link"));
    let head = git(&work, &["rev-parse", "HEAD"]).trim().to_string();
    let url = server.create_from("shop.git", &work).unwrap();

    let before = project_ids(&stack).await;
    let (s, v) = import(&stack, serde_json::json!({"url": url, "token": TOKEN})).await;
    assert_eq!(s, 201, "{v}");
    let id = v["project"]["id"].as_str().unwrap().to_string();
    assert_eq!(v["project"]["name"], "shop", "{v}");
    assert_eq!(v["project"]["template"], "fullstack", "{v}");
    assert_eq!(v["import"]["template_inferred"], true, "{v}");
    assert_eq!(v["import"]["commit"], head.as_str(), "{v}");
    let summary = format!("Imported from {url} at {}", &head[..7]);
    assert_eq!(v["checkpoint"]["n"], 1, "{v}");
    assert_eq!(v["checkpoint"]["author"], "user", "{v}");
    assert_eq!(v["checkpoint"]["summary"], summary.as_str(), "{v}");
    let skipped = v["import"]["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{v}");
    assert_eq!(skipped[0]["path"], "readme-link");
    assert_eq!(skipped[0]["reason"], "symlink");

    // Listed, with exactly the tracked regular files, byte for byte.
    let after = project_ids(&stack).await;
    assert!(after.contains(&id), "{after:?}");
    assert_eq!(after.len(), before.len() + 1);
    let (s, files) = stack
        .get_json(&format!("/projects/{id}/files"))
        .await
        .unwrap();
    assert_eq!(s, 200, "{files}");
    assert_eq!(files["checkpoint"], 1);
    let got: Vec<&str> = files["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(got, want.keys().map(String::as_str).collect::<Vec<_>>());
    for (path, bytes) in &want {
        let r = stack
            .http
            .get(format!(
                "{}/projects/{id}/files/{}",
                stack.worker_url,
                encode(path)
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(&r.bytes().await.unwrap()[..], &bytes[..], "{path}");
    }
    let (_, cps) = stack
        .get_json(&format!("/projects/{id}/checkpoints"))
        .await
        .unwrap();
    let cps = cps["checkpoints"].as_array().unwrap();
    assert_eq!(cps.len(), 1, "{cps:?}");
    assert_eq!(cps[0]["author"], "user");
    assert_eq!(cps[0]["summary"], summary.as_str());

    // A name and a template given win; a tree no template fits needs one.
    let plain = tmp.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::write(plain.join("README.md"), "just text\n").unwrap();
    commit_all(&plain);
    let plain_url = server.create_from("plain.git", &plain).unwrap();
    let blob = azure_native::client(
        &e2e::stack::azurite_connection_string(stack.azurite_port),
        "codebase-projects",
    )
    .unwrap();
    let prefixes_before = blob.list_top_prefixes().await.unwrap();
    let (s, v) = import(
        &stack,
        serde_json::json!({"url": plain_url, "token": TOKEN}),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v.to_string()
            .contains("could not tell which template this repository fits"),
        "{v}"
    );
    // The files were saved before the template was asked for: nothing of them is left.
    assert_eq!(blob.list_top_prefixes().await.unwrap(), prefixes_before);
    let (s, v) = import(
        &stack,
        serde_json::json!({"url": plain_url, "token": TOKEN, "template": "frontend", "name": "Notes"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["project"]["template"], "frontend");
    assert_eq!(v["project"]["name"], "Notes");
    let (s, v) = import(
        &stack,
        serde_json::json!({"url": plain_url, "token": TOKEN, "template": "rails"}),
    )
    .await;
    assert_eq!(s, 400, "{v}");

    // Clear refusals, none of which lists a project.
    let listed = project_ids(&stack).await.len();
    let (s, v) = import(
        &stack,
        serde_json::json!({"url": format!("{}/missing.git", server.url), "token": TOKEN}),
    )
    .await;
    assert_eq!(s, 404, "{v}");
    assert!(v.to_string().contains("no repository"), "{v}");
    let (s, v) = import(
        &stack,
        serde_json::json!({"url": url, "token": WRONG_TOKEN}),
    )
    .await;
    assert_eq!(s, 403, "{v}");
    assert!(v.to_string().contains("refused access"), "{v}");
    assert!(!v.to_string().contains(WRONG_TOKEN), "{v}");
    let empty = server.create("empty.git").unwrap();
    let (s, v) = import(&stack, serde_json::json!({"url": empty, "token": TOKEN})).await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("no commits"), "{v}");
    let (s, v) = import(
        &stack,
        serde_json::json!({"url": url, "token": TOKEN, "branch": "nope"}),
    )
    .await;
    assert_eq!(s, 404, "{v}");
    for bad in [
        "file:///etc",
        "ssh://git@example.com/x.git",
        "http://x:y@127.0.0.1/x.git",
    ] {
        let (s, v) = import(&stack, serde_json::json!({"url": bad})).await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
    assert_eq!(project_ids(&stack).await.len(), listed);

    // Every clone's scratch directory is gone.
    let scratch = stack.state.path().join("vm-data/import");
    let left: Vec<_> = std::fs::read_dir(&scratch)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");

    // Neither token reached any log of the stack.
    for entry in std::fs::read_dir(stack.state.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            for t in [TOKEN, WRONG_TOKEN] {
                assert!(!text.contains(t), "a token is in {}", p.display());
            }
        }
    }
}
