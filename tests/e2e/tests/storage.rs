//! The Blob client and the project model against real Azurite (strict mode), Microsoft's
//! Python SDK, and injected faults.

use azure_native::ReqwestTransport;
use e2e::faults::{Action, FaultProxy};
use e2e::stack::{azurite_connection_string, Azurite};
use open_replit_core::azure::rest::{BlobError, Cond};
use open_replit_core::manifest::Manifest;
use open_replit_core::store::project::{Author, Change, Expect, ProjectMeta, Projects, StoreError};
use open_replit_core::store::BlobClient;

const C: &str = "codebase-projects";

fn client(conn: &str) -> BlobClient<ReqwestTransport> {
    azure_native::client(conn, C).unwrap()
}

fn meta(id: &str) -> ProjectMeta {
    ProjectMeta {
        id: id.into(),
        name: format!("Project {id}"),
        template: "fullstack".into(),
        created_ms: 1,
        owner: None,
    }
}

fn files(n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            (
                format!("src/file{i:03}.txt"),
                format!("content of file {i}\n").into_bytes(),
            )
        })
        .collect()
}

#[tokio::test]
async fn blob_round_trips_conditions_and_odd_names() {
    let az = Azurite::start().await.unwrap();
    let b = client(&az.connection_string());
    b.ensure_container().await.unwrap();
    b.ensure_container().await.unwrap(); // idempotent

    let names = [
        "p/plain.txt",
        "p/with space.txt",
        "p/ünïcødé/日本.md",
        "p/100%/a%20b",
        "p/a+b=c&d.txt",
    ];
    for (i, n) in names.iter().enumerate() {
        b.put(n, vec![i as u8; 3], "text/plain", Cond::None)
            .await
            .unwrap();
    }
    let listed: Vec<String> = b
        .list_all("p/", None)
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.name)
        .collect();
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(listed, want);
    for (i, n) in names.iter().enumerate() {
        assert_eq!(b.get(n).await.unwrap().body, vec![i as u8; 3], "{n}");
    }

    // An empty blob (an empty __init__.py) is a valid file.
    b.put("p/empty", Vec::new(), "text/plain", Cond::None)
        .await
        .unwrap();
    assert_eq!(b.get("p/empty").await.unwrap().body, Vec::<u8>::new());

    // Create-only: the second writer loses with a precondition error, not an overwrite.
    assert!(b
        .put("p/once", b"1".to_vec(), "text/plain", Cond::IfNoneMatchAny)
        .await
        .is_ok());
    let e = b
        .put("p/once", b"2".to_vec(), "text/plain", Cond::IfNoneMatchAny)
        .await
        .unwrap_err();
    assert!(matches!(e, BlobError::Precondition(_)), "{e:?}");
    assert_eq!(b.get("p/once").await.unwrap().body, b"1");

    // If-Match: only the version we read may be replaced.
    let etag = b.get("p/once").await.unwrap().etag.unwrap();
    let e = b
        .put(
            "p/once",
            b"3".to_vec(),
            "text/plain",
            Cond::IfMatch("\"0xdeadbeef\"".into()),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, BlobError::Precondition(_)), "{e:?}");
    b.put("p/once", b"4".to_vec(), "text/plain", Cond::IfMatch(etag))
        .await
        .unwrap();
    assert_eq!(b.get("p/once").await.unwrap().body, b"4");

    b.delete("p/once", Cond::None).await.unwrap();
    assert_eq!(b.get("p/once").await.unwrap_err(), BlobError::NotFound);
    assert!(b.get_opt("p/once").await.unwrap().is_none());

    // A wrong key is a clear 403, never retried.
    let bad = azurite_connection_string(az.port).replace("Eby8", "Xby8");
    let wrong = client(&bad);
    let e = wrong.get("p/plain.txt").await.unwrap_err();
    assert!(e.to_string().contains("403"), "{e}");
    assert_eq!(wrong.request_count(), 1);
}

#[tokio::test]
async fn listing_follows_markers_across_pages() {
    let az = Azurite::start().await.unwrap();
    let b = client(&az.connection_string());
    b.ensure_container().await.unwrap();
    for i in 0..7 {
        b.put(&format!("pg/{i}"), vec![1], "text/plain", Cond::None)
            .await
            .unwrap();
    }
    let page = b.list_page("pg/", None, None, Some(2)).await.unwrap();
    assert_eq!(page.blobs.len(), 2);
    assert!(page.next_marker.is_some());
    let before = b.request_count();
    let all = b.list_all("pg/", Some(2)).await.unwrap();
    assert_eq!(all.len(), 7);
    assert_eq!(
        b.request_count() - before,
        4,
        "7 blobs in pages of 2 take 4 requests"
    );
}

#[tokio::test]
async fn projects_checkpoints_restore_diff_and_conflicts() {
    let az = Azurite::start().await.unwrap();
    let b = client(&az.connection_string());
    b.ensure_container().await.unwrap();
    let p = Projects::new(&b);

    let mut fs = files(200);
    fs.push(("dup/a.txt".into(), b"same".to_vec()));
    fs.push(("dup/b.txt".into(), b"same".to_vec()));
    let cp1 = p.create(&meta("proj-a"), fs).await.unwrap();
    assert_eq!(cp1.info.n, 1);
    assert_eq!(cp1.info.author, Author::System);
    assert_eq!(cp1.manifest.files.len(), 202);
    // Identical content is stored once.
    let objects = b.list_all("proj-a/objects/", None).await.unwrap();
    assert_eq!(objects.len(), 201);
    assert!(matches!(
        p.create(&meta("proj-a"), vec![]).await,
        Err(StoreError::Exists(_))
    ));

    // Changing 1 file of 200 costs a constant number of requests: no per-file work.
    let before = b.request_count();
    let cp2 = p
        .commit(
            "proj-a",
            vec![Change::Write {
                path: "src/file007.txt".into(),
                content: b"changed".to_vec(),
            }],
            &[],
            Author::User,
            "edit file007",
        )
        .await
        .unwrap()
        .unwrap();
    let cost = b.request_count() - before;
    assert_eq!(cp2.info.n, 2);
    assert!(cost <= 5, "incremental checkpoint took {cost} requests");
    assert_eq!(
        b.list_all("proj-a/objects/", None).await.unwrap().len(),
        202
    );

    // A no-op commit makes no checkpoint.
    let same = p
        .commit(
            "proj-a",
            vec![Change::Write {
                path: "src/file007.txt".into(),
                content: b"changed".to_vec(),
            }],
            &[],
            Author::User,
            "again",
        )
        .await
        .unwrap();
    assert!(same.is_none());

    let (n, entry, body) = p
        .read_file("proj-a", "src/file007.txt", None)
        .await
        .unwrap();
    assert_eq!((n, body.as_slice()), (2, b"changed".as_slice()));
    assert_eq!(entry.size, 7);
    let (_, _, old) = p
        .read_file("proj-a", "src/file007.txt", Some(1))
        .await
        .unwrap();
    assert_eq!(old, b"content of file 7\n");

    // Delete + add, then diff and restore.
    let cp3 = p
        .commit(
            "proj-a",
            vec![
                Change::Delete {
                    path: "src/file000.txt".into(),
                },
                Change::Write {
                    path: "new.md".into(),
                    content: b"# new".to_vec(),
                },
            ],
            &[],
            Author::Agent,
            "turn 1",
        )
        .await
        .unwrap()
        .unwrap();
    let d = p.diff("proj-a", 1, cp3.info.n).await.unwrap();
    assert_eq!(d.added, ["new.md"]);
    assert_eq!(d.modified, ["src/file007.txt"]);
    assert_eq!(d.deleted, ["src/file000.txt"]);
    let cp4 = p.restore("proj-a", 1, Author::User).await.unwrap().unwrap();
    assert_eq!(cp4.info.n, 4);
    assert_eq!(cp4.manifest, cp1.manifest);
    assert_eq!(cp4.info.summary, "restored checkpoint 1");
    let list = p.list_checkpoints("proj-a").await.unwrap();
    assert_eq!(list.iter().map(|c| c.n).collect::<Vec<_>>(), [4, 3, 2, 1]);
    assert_eq!(list[1].author, Author::Agent);

    // The editor's base no longer matches: 409-style conflict, nothing written.
    let stale = Manifest::entry(b"changed").sha256;
    let e = p
        .commit(
            "proj-a",
            vec![Change::Write {
                path: "src/file007.txt".into(),
                content: b"mine".to_vec(),
            }],
            &[Expect {
                path: "src/file007.txt".into(),
                sha256: Some(stale),
            }],
            Author::User,
            "save",
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict { head: 4, .. }), "{e:?}");
    assert_eq!(p.head_number("proj-a").await.unwrap(), Some(4));

    // Path rules apply to every write.
    let e = p
        .commit(
            "proj-a",
            vec![Change::Write {
                path: "../../etc/passwd".into(),
                content: vec![],
            }],
            &[],
            Author::User,
            "x",
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("'..'"), "{e}");

    // Projects list newest first.
    let mut m = meta("proj-b");
    m.created_ms = 5;
    p.create(&m, vec![("a".into(), b"a".to_vec())])
        .await
        .unwrap();
    let ids: Vec<String> = p
        .list_projects()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, ["proj-b", "proj-a"]);
}

#[tokio::test]
async fn five_concurrent_writers_make_exactly_fifty_checkpoints() {
    let az = Azurite::start().await.unwrap();
    let conn = az.connection_string();
    let b = client(&conn);
    b.ensure_container().await.unwrap();
    Projects::new(&b)
        .create(&meta("race"), vec![("seed".into(), b"0".to_vec())])
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..5 {
        let conn = conn.clone();
        tasks.push(tokio::spawn(async move {
            let b = client(&conn);
            let p = Projects::new(&b);
            for k in 0..10 {
                let cp = p
                    .commit(
                        "race",
                        vec![Change::Write {
                            path: format!("w{w}.txt"),
                            content: format!("{k}").into_bytes(),
                        }],
                        &[],
                        Author::Agent,
                        &format!("writer {w} step {k}"),
                    )
                    .await
                    .expect("commit under contention");
                assert!(cp.is_some());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let p = Projects::new(&b);
    let list = p.list_checkpoints("race").await.unwrap();
    assert_eq!(list.len(), 51, "1 from creation + 5 × 10");
    assert_eq!(
        list.iter().map(|c| c.n).collect::<Vec<_>>(),
        (1..=51).rev().collect::<Vec<_>>()
    );
    // No lost update: every writer's last write is in the head.
    let head = p.head("race").await.unwrap().unwrap();
    for w in 0..5 {
        let (_, _, body) = p
            .read_file("race", &format!("w{w}.txt"), None)
            .await
            .unwrap();
        assert_eq!(body, b"9", "writer {w}");
    }
    assert_eq!(head.manifest.files.len(), 6);
}

#[tokio::test]
async fn retries_500_then_succeeds_and_never_retries_4xx() {
    let az = Azurite::start().await.unwrap();
    let proxy = FaultProxy::start(az.port).await.unwrap();
    let b = client(&azurite_connection_string(proxy.port));
    b.ensure_container().await.unwrap();
    proxy.set_rule(|n, m, _| {
        if n == 0 && m == "PUT" {
            Action::Status(500)
        } else {
            Action::Forward
        }
    });
    b.put("r/x", b"ok".to_vec(), "text/plain", Cond::None)
        .await
        .unwrap();
    let log = proxy.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0].2, Action::Status(500));
    assert_eq!(b.get("r/x").await.unwrap().body, b"ok");

    // A dropped connection is retried too.
    proxy.set_rule(|n, _, _| {
        if n == 0 {
            Action::Drop
        } else {
            Action::Forward
        }
    });
    assert_eq!(b.get("r/x").await.unwrap().body, b"ok");
    assert_eq!(proxy.log().len(), 2);

    // 4xx goes straight to the caller.
    proxy.set_rule(|_, _, _| Action::Status(400));
    let e = b.get("r/x").await.unwrap_err();
    assert!(matches!(e, BlobError::Http { status: 400, .. }), "{e:?}");
    assert_eq!(proxy.log().len(), 1);

    // Persistent 5xx gives up after a bounded number of attempts with a clear error.
    proxy.set_rule(|_, _, _| Action::Status(503));
    let e = b.get("r/x").await.unwrap_err();
    assert!(e.to_string().contains("503"), "{e}");
    assert_eq!(proxy.log().len(), 4);
}

#[tokio::test]
async fn azurite_stopping_mid_checkpoint_leaves_no_half_written_checkpoint() {
    let mut az = Azurite::start().await.unwrap();
    let proxy = FaultProxy::start(az.port).await.unwrap();
    let b = client(&azurite_connection_string(proxy.port));
    b.ensure_container().await.unwrap();
    let p = Projects::new(&b);
    p.create(&meta("half"), files(3)).await.unwrap();

    // The storage dies after the objects went up, just as the checkpoint is written.
    proxy.set_rule(|_, m, path| {
        if m == "PUT" && path.contains("/checkpoints/") {
            Action::Drop
        } else {
            Action::Forward
        }
    });
    let many: Vec<Change> = (0..20)
        .map(|i| Change::Write {
            path: format!("big/{i}.txt"),
            content: format!("v2 {i}").into_bytes(),
        })
        .collect();
    let e = p
        .commit("half", many.clone(), &[], Author::Agent, "turn")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("unreachable"), "{e}");
    proxy.set_rule(|_, _, _| Action::Forward);
    assert_eq!(p.head_number("half").await.unwrap(), Some(1));
    assert_eq!(
        p.head("half").await.unwrap().unwrap().manifest.files.len(),
        3
    );

    // Really stopped: a clear error naming the host, and nothing changes.
    az.stop();
    let e = p
        .commit("half", many.clone(), &[], Author::Agent, "turn")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("Azure Blob"), "{e}");
    az.restart().await.unwrap();
    assert_eq!(p.head_number("half").await.unwrap(), Some(1));
    // And the same commit succeeds once storage is back.
    let cp = p
        .commit("half", many, &[], Author::Agent, "turn")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cp.info.n, 2);
}

fn python() -> std::path::PathBuf {
    e2e::repo_root().join(".state/venv-test/bin/python")
}

#[tokio::test]
async fn microsoft_sdk_reads_ours_and_we_read_theirs() {
    let az = Azurite::start().await.unwrap();
    let conn = az.connection_string();
    let b = client(&conn);
    b.ensure_container().await.unwrap();
    let script = e2e::repo_root().join("tests/python/azure_sdk_compat.py");
    let name = "compat/ours with space/ü%.bin";
    let content: Vec<u8> = (0..=255u8).collect();
    b.put(
        name,
        content.clone(),
        "application/octet-stream",
        Cond::None,
    )
    .await
    .unwrap();
    let hex: String = content.iter().map(|b| format!("{b:02x}")).collect();
    let out = std::process::Command::new(python())
        .arg(&script)
        .args([conn.as_str(), C, "read", name, &hex])
        .output()
        .expect("run the Azure SDK (installed by scripts/ensure-tools.sh)");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let theirs = "compat/theirs ✓/x%20y.txt";
    let out = std::process::Command::new(python())
        .arg(&script)
        .args([conn.as_str(), C, "write", theirs, "68656c6c6f"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(b.get(theirs).await.unwrap().body, b"hello");
    let names: Vec<String> = b
        .list_all("compat/", None)
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.name)
        .collect();
    assert!(names.contains(&theirs.to_string()), "{names:?}");
}

/// Removing a project takes every blob under its prefix and nothing of a neighbour whose id
/// shares its first characters; a second removal finds nothing and still succeeds; a removal
/// cut short by a failing store is reported and can be run again to the end.
#[tokio::test]
async fn a_removed_project_leaves_no_blob_and_touches_no_neighbour() {
    let az = Azurite::start().await.unwrap();
    let b = client(&az.connection_string());
    b.ensure_container().await.unwrap();
    let p = Projects::new(&b);
    p.create(&meta("gone-1"), files(30)).await.unwrap();
    p.commit(
        "gone-1",
        vec![Change::Write {
            path: "src/file001.txt".into(),
            content: b"second".to_vec(),
        }],
        &[],
        Author::User,
        "edit",
    )
    .await
    .unwrap();
    p.create(&meta("gone-10"), files(3)).await.unwrap();
    let before = b.list_all("gone-1/", None).await.unwrap().len();
    assert_eq!(before, 1 + 31 + 2, "meta, 31 objects, 2 checkpoints");

    // A store that fails every delete after the first three: the removal says so, and the
    // project already stopped being listed (its meta went first).
    let proxy = FaultProxy::start(az.port).await.unwrap();
    let flaky = client(&azurite_connection_string(proxy.port));
    proxy.set_rule(|n, m, _| {
        if m == "DELETE" && n > 3 {
            Action::Status(500)
        } else {
            Action::Forward
        }
    });
    assert!(Projects::new(&flaky)
        .delete_project("gone-1")
        .await
        .is_err());
    assert!(matches!(
        p.meta("gone-1").await,
        Err(StoreError::NotFound(_))
    ));
    let left = b.list_all("gone-1/", None).await.unwrap().len();
    assert!(left > 0 && left < before, "{left} of {before} left");

    // Run again: it finishes.
    assert_eq!(p.delete_project("gone-1").await.unwrap(), left);
    assert!(b.list_all("gone-1/", None).await.unwrap().is_empty());
    assert!(matches!(
        p.meta("gone-1").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(b.list_all("gone-10/", None).await.unwrap().len(), 1 + 3 + 1);
    let ids: Vec<String> = p
        .list_projects()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, vec!["gone-10".to_string()]);
    assert_eq!(p.delete_project("gone-1").await.unwrap(), 0);
    assert!(p.delete_project("../etc").await.is_err());
}
