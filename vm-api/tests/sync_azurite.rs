//! Sync against real Azurite: objects uploaded with the same signed client, fetched by the
//! route, verified and written; Azure errors retried, and a persistent one reported with the
//! working copy untouched.

mod common;
use axum::http::StatusCode;
use common::*;
use e2e::faults::{Action, FaultProxy};
use e2e::stack::{azurite_connection_string, Azurite};
use open_replit_core::azure::AzureConfig;
use open_replit_core::manifest::Manifest;
use serde_json::json;
use std::sync::Arc;
use vm_api::azure_blob::AzureObjects;

#[tokio::test]
async fn sync_fetches_objects_from_azurite() {
    let az = Azurite::start().await.unwrap();
    let cfg = AzureConfig::from_connection_string(&az.connection_string()).unwrap();
    let objects = AzureObjects::new(cfg, "codebase-projects");
    let contents: [&[u8]; 3] = [b"<h1>hi</h1>", "print('é')".as_bytes(), b"v2"];
    put_objects(&objects, "p1", &contents).await;
    objects.blob.ensure_container().await.unwrap(); // creating it again is fine

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

/// Azure answering 500, 503 or cutting the connection is retried (core's BlobClient); when it
/// keeps failing, sync is a clear 502 and the working copy is left as it was.
#[tokio::test]
async fn sync_retries_azure_errors_and_reports_a_persistent_one() {
    let az = Azurite::start().await.unwrap();
    let proxy = FaultProxy::start(az.port).await.unwrap();
    let objects = AzureObjects::new(
        AzureConfig::from_connection_string(&azurite_connection_string(proxy.port)).unwrap(),
        "codebase-projects",
    );
    let contents: [&[u8]; 3] = [b"a", b"b", b"c"];
    put_objects(&objects, "p2", &contents).await;

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
