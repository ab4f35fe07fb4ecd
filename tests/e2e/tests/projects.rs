//! Projects through the Worker: creation from every template, the file API with conflicts and
//! path rules, checkpoints with diff and restore, WebSocket announcements, and zip export.

use e2e::stack::{Options, Stack};
use e2e::ws::ProjectSocket;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Read;

async fn create(stack: &Stack, body: Value) -> (u16, Value) {
    let r = stack
        .http
        .post(format!("{}/projects", stack.worker_url))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn unzip(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a valid zip");
    let mut out = BTreeMap::new();
    for i in 0..z.len() {
        let mut f = z.by_index(i).unwrap();
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).unwrap();
        out.insert(f.name().to_string(), buf);
    }
    out
}

#[tokio::test]
async fn every_template_creates_a_project_that_exports_byte_for_byte() {
    let stack = Stack::start(Options::default()).await.unwrap();
    let (status, t) = stack.get_json("/api/templates").await.unwrap();
    assert_eq!(status, 200);
    let names: Vec<String> = t["templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    for want in ["backend", "frontend", "fullstack"] {
        assert!(names.contains(&want.to_string()), "{names:?}");
    }
    for name in &names {
        let (status, created) = create(
            &stack,
            json!({"name": format!("My {name} app!"), "template": name}),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        let id = created["project"]["id"].as_str().unwrap().to_string();
        assert!(id.starts_with(&format!("my-{name}-app-")), "{id}");
        assert_eq!(created["checkpoint"]["n"], 1);
        let r = stack
            .http
            .get(format!("{}/projects/{id}/export.zip", stack.worker_url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/zip");
        let got = unzip(&r.bytes().await.unwrap());
        let want = e2e::template_files(name);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{name}"
        );
        for (path, bytes) in &want {
            assert!(got[path] == *bytes, "{name}: {path} differs after export");
        }
    }
    // The default template is fullstack.
    let (status, created) = create(&stack, json!({})).await;
    assert_eq!(status, 201);
    assert_eq!(created["project"]["template"], "fullstack");
    // Newest first.
    let (_, list) = stack.get_json("/projects").await.unwrap();
    let listed = list["projects"].as_array().unwrap();
    assert_eq!(listed.len(), names.len() + 1);
    assert_eq!(listed[0]["id"], created["project"]["id"]);

    // Bad input: malformed JSON, unknown fields, unknown template.
    let r = stack
        .http
        .post(format!("{}/projects", stack.worker_url))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid JSON"),
        "{e}"
    );
    let (status, e) = create(&stack, json!({"template": "cobol"})).await;
    assert_eq!(status, 400);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown template"),
        "{e}"
    );
}

#[tokio::test]
async fn file_api_checkpoints_conflicts_and_announcements() {
    let stack = Stack::start(Options::default()).await.unwrap();
    let (_, created) = create(&stack, json!({"name": "files", "template": "backend"})).await;
    let id = created["project"]["id"].as_str().unwrap().to_string();
    let base = format!("{}/projects/{id}", stack.worker_url);
    let (mut ws, hello) = ProjectSocket::connect(&stack.worker_url, &id, None)
        .await
        .unwrap();
    assert_eq!(hello["last_seq"], 0);

    let (status, tree) = stack
        .get_json(&format!("/projects/{id}/files"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(tree["checkpoint"], 1);
    let readme = tree["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "requirements.txt")
        .expect("requirements.txt in the tree")
        .clone();
    assert_eq!(readme["sha256"].as_str().unwrap().len(), 64);

    // Save a new file (a name with a space and unicode) based on checkpoint 1.
    let url = format!("{base}/files/notes/h%C3%A9llo%20world.md?base=1");
    let r = stack.http.put(&url).body("# one").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["checkpoint"]["n"], 2);
    assert_eq!(v["checkpoint"]["author"], "user");
    let ev = ws.until("checkpoint_created").await.unwrap().0;
    assert_eq!(ev["seq"], 1);
    assert_eq!(ev["checkpoint"]["n"], 2);
    assert_eq!(ev["diff"]["added"], json!(["notes/héllo world.md"]));

    let r = stack
        .http
        .get(format!("{base}/files/notes/h%C3%A9llo%20world.md"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-checkpoint"], "2");
    assert_eq!(r.text().await.unwrap(), "# one");

    // Someone else saves from checkpoint 2; our editor still thinks it is at 1: conflict, both kept.
    let r = stack
        .http
        .put(format!("{base}/files/notes/h%C3%A9llo%20world.md?base=2"))
        .body("# theirs")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = stack.http.put(&url).body("# mine").send().await.unwrap();
    assert_eq!(r.status(), 409);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "conflict");
    assert_eq!(e["path"], "notes/héllo world.md");
    assert_eq!(e["head"], 3);
    let cur = stack
        .http
        .get(format!("{base}/files/notes/h%C3%A9llo%20world.md"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(cur, "# theirs");

    // Delete, list, diff, restore.
    let r = stack
        .http
        .delete(format!("{base}/files/notes/h%C3%A9llo%20world.md?base=3"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, cps) = stack
        .get_json(&format!("/projects/{id}/checkpoints"))
        .await
        .unwrap();
    let ns: Vec<u64> = cps["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, [4, 3, 2, 1]);
    let (_, d) = stack
        .get_json(&format!("/projects/{id}/checkpoints/3/diff?from=1"))
        .await
        .unwrap();
    assert_eq!(d["diff"]["added"], json!(["notes/héllo world.md"]));
    let r = stack
        .http
        .post(format!("{base}/checkpoints/3/restore"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["checkpoint"]["n"], 5);
    assert_eq!(v["checkpoint"]["summary"], "restored checkpoint 3");
    let cur = stack
        .http
        .get(format!("{base}/files/notes/h%C3%A9llo%20world.md"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(cur, "# theirs");

    // A late joiner replays everything it missed, in order, without duplicates.
    let (mut late, hello) = ProjectSocket::connect(&stack.worker_url, &id, Some(1))
        .await
        .unwrap();
    assert_eq!(hello["last_seq"], 4);
    let mut seqs = Vec::new();
    for _ in 0..3 {
        seqs.push(late.next().await.unwrap()["seq"].as_u64().unwrap());
    }
    assert_eq!(seqs, [2, 3, 4]);
    assert!(late
        .drain(std::time::Duration::from_millis(300))
        .await
        .is_empty());
}

#[tokio::test]
async fn path_rules_and_limits_through_http() {
    // Room for exactly two more files than the backend template has.
    let cap = e2e::template_files("backend").len() + 2;
    let stack = Stack::start(Options {
        vars: vec![("MAX_PROJECT_FILES".into(), cap.to_string())],
        ..Default::default()
    })
    .await
    .unwrap();
    let (_, created) = create(&stack, json!({"template": "backend"})).await;
    let id = created["project"]["id"].as_str().unwrap().to_string();
    // Renaming: trimmed; empty, too long, control characters or malformed JSON refused and the
    // name kept; an unknown project a 404.
    let rename = |body: String| {
        stack
            .http
            .patch(format!("{}/projects/{id}", stack.worker_url))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = rename(json!({"name": "  Shop front  "}).to_string())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["project"]["name"], "Shop front", "{v}");
    assert_eq!(v["project"]["id"], id.as_str());
    for bad in [
        json!({"name": "   "}).to_string(),
        json!({"name": "x".repeat(101)}).to_string(),
        json!({"name": "a\u{7}b"}).to_string(),
        json!({"name": "ok", "owner": "mallory"}).to_string(),
        "{\"name\": ".to_string(),
    ] {
        let r = rename(bad.clone()).await.unwrap();
        assert_eq!(r.status(), 400, "{bad}: {}", r.text().await.unwrap());
    }
    let (_, got) = stack.get_json(&format!("/projects/{id}")).await.unwrap();
    assert_eq!(got["project"]["name"], "Shop front", "{got}");
    assert_eq!(
        got["project"]["template"], "backend",
        "the rest of the meta is kept"
    );
    let r = stack
        .http
        .patch(format!("{}/projects/nope-123", stack.worker_url))
        .body(json!({"name": "x"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let base = format!("{}/projects/{id}/files", stack.worker_url);
    let cases = [
        ("..%2F..%2Fetc%2Fpasswd", "parent_segment"),
        ("a/..%2F..%2Fb", "parent_segment"),
        ("%2Fetc%2Fpasswd", "absolute"),
        ("a%5Cb", "backslash"),
        ("a%00b", "control_char"),
        (".git/config", "git_dir"),
        ("a%2F%2Fb", "empty_segment"),
        ("%zz", "bad_request"),
    ];
    for (p, rule) in cases {
        for method in ["GET", "PUT", "DELETE"] {
            let r = stack
                .http
                .request(method.parse().unwrap(), format!("{base}/{p}"))
                .body("x")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400, "{method} {p}");
            let e: Value = r.json().await.unwrap();
            assert_eq!(e["error"]["code"], rule, "{method} {p}: {e}");
        }
    }
    let long = "a".repeat(1100);
    let r = stack
        .http
        .put(format!("{base}/{long}"))
        .body("x")
        .send()
        .await
        .unwrap();
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "too_long", "{e}");

    // A huge file is refused with 413, and the project is unchanged.
    let big = vec![b'x'; open_replit_core::paths::MAX_FILE_BYTES + 1];
    let r = stack
        .http
        .put(format!("{base}/big.bin"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let (_, cps) = stack
        .get_json(&format!("/projects/{id}/checkpoints"))
        .await
        .unwrap();
    assert_eq!(cps["checkpoints"].as_array().unwrap().len(), 1);

    // The file-count cap: two more files fit, the third is refused by rule and nothing changes.
    for name in ["one.txt", "two.txt"] {
        let r = stack
            .http
            .put(format!("{base}/{name}"))
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name}");
    }
    let r = stack
        .http
        .put(format!("{base}/three.txt"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "too_many_files", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("the limit is {cap}")),
        "{e}"
    );
    let (_, cps) = stack
        .get_json(&format!("/projects/{id}/checkpoints"))
        .await
        .unwrap();
    assert_eq!(cps["checkpoints"].as_array().unwrap().len(), 3);

    // Unknown files and checkpoints are 404s; bad numbers are 400s.
    let r = stack
        .http
        .get(format!("{base}/nope.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let (s, _) = stack
        .get_json(&format!("/projects/{id}/checkpoints/99/diff"))
        .await
        .unwrap();
    assert_eq!(s, 404);
    let (s, _) = stack
        .get_json(&format!("/projects/{id}/files?at=abc"))
        .await
        .unwrap();
    assert_eq!(s, 400);
    let (s, _) = stack
        .get_json("/projects/no-such-project-x1")
        .await
        .unwrap();
    assert_eq!(s, 404);
}

/// The files of a tree listing, path → sha256.
fn tree_of(v: &Value) -> BTreeMap<String, String> {
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

/// A fork is a new project with the source's current files as checkpoint 1 and objects of its
/// own: changing it leaves the source alone, and deleting the source leaves it whole.
#[tokio::test]
async fn a_fork_has_the_current_files_and_outlives_its_source() {
    let stack = Stack::start(Options::default()).await.unwrap();
    let (_, created) = create(&stack, json!({"name": "Shop", "template": "backend"})).await;
    let src = created["project"]["id"].as_str().unwrap().to_string();
    let r = stack
        .http
        .put(format!(
            "{}/projects/{src}/files/notes/plan.md",
            stack.worker_url
        ))
        .body("# the plan\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let fork = |id: &str, body: &str| {
        stack
            .http
            .post(format!("{}/projects/{id}/fork", stack.worker_url))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };

    // Bad input first: an unknown field, malformed JSON, an unknown project.
    for bad in [r#"{"name": "x", "owner": "mallory"}"#, r#"{"name": "#] {
        let r = fork(&src, bad).await.unwrap();
        assert_eq!(r.status(), 400, "{bad}: {}", r.text().await.unwrap());
    }
    let r = fork("nope-1234", "{}").await.unwrap();
    assert_eq!(r.status(), 404);

    let r = fork(&src, "").await.unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    let copy = v["project"]["id"].as_str().unwrap().to_string();
    assert_ne!(copy, src);
    assert_eq!(v["project"]["name"], "Shop (fork)", "{v}");
    assert_eq!(v["project"]["template"], "backend");
    assert_eq!(v["checkpoint"]["n"], 1);
    assert_eq!(v["checkpoint"]["author"], "user");
    assert_eq!(
        v["checkpoint"]["summary"],
        "Forked from Shop at checkpoint 2"
    );
    assert_eq!(v["fork"]["checkpoint"], 2);
    let (_, src_tree) = stack
        .get_json(&format!("/projects/{src}/files"))
        .await
        .unwrap();
    let (_, copy_tree) = stack
        .get_json(&format!("/projects/{copy}/files"))
        .await
        .unwrap();
    assert_eq!(tree_of(&copy_tree), tree_of(&src_tree));
    assert!(tree_of(&copy_tree).contains_key("notes/plan.md"));

    // Changing the fork leaves the source alone.
    let r = stack
        .http
        .put(format!(
            "{}/projects/{copy}/files/notes/plan.md",
            stack.worker_url
        ))
        .body("# my own plan\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, cps) = stack
        .get_json(&format!("/projects/{src}/checkpoints"))
        .await
        .unwrap();
    assert_eq!(cps["checkpoints"].as_array().unwrap().len(), 2);

    // The source deleted: the fork still reads every file, from objects of its own.
    let r = stack
        .http
        .delete(format!("{}/projects/{src}", stack.worker_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    for path in tree_of(&src_tree).keys() {
        let r = stack
            .http
            .get(format!("{}/projects/{copy}/files/{path}", stack.worker_url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let body = stack
        .http
        .get(format!(
            "{}/projects/{copy}/files/notes/plan.md",
            stack.worker_url
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "# my own plan\n");
}
