//! Building a deployment against real Azurite and the real sandbox: the checkpoint is
//! materialized, installed and built in its own directory, the static folder is collected under
//! core's limits and stored content-addressed and create-only; failures (a step, a timeout,
//! a limit, Azure) end in one `error` event and leave no build directory behind.

mod common;
use axum::http::StatusCode;
use common::*;
use e2e::faults::{Action, FaultProxy};
use e2e::stack::{azurite_connection_string, Azurite};
use http_body_util::BodyExt;
use open_replit_core::azure::AzureConfig;
use open_replit_core::deploy::build::{BuildEvent, Built, DistLimits};
use open_replit_core::manifest::Manifest;
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;
use vm_api::azure_blob::AzureObjects;
use vm_api::sync::ObjectSource;
use vm_api::AppState;

const CONTAINER: &str = "codebase-projects";
const BUILD: &str = "mkdir -p dist/assets && echo '<h1>hi</h1>' > dist/index.html \
                     && tr a-z A-Z < app.js > dist/assets/app-3f2a.js";

fn state_with(
    tmp: &tempfile::TempDir,
    cfg: AzureConfig,
    limits: Option<DistLimits>,
) -> Arc<AppState> {
    let mut s = state(tmp);
    s.objects = Some(Arc::new(AzureObjects::new(cfg, CONTAINER)));
    s.objects_container = Some(CONTAINER.into());
    if let Some(l) = limits {
        s.limits.deploy = l;
    }
    Arc::new(s)
}

/// A checkpoint's files, uploaded as the Worker does before a build.
async fn checkpoint(check: &AzureObjects, project: &str, files: &[(&str, &[u8])]) -> Manifest {
    let contents: Vec<&[u8]> = files.iter().map(|(_, c)| *c).collect();
    put_objects(check, project, &contents).await;
    Manifest::of(files)
}

fn request(deployment: &str, m: &Manifest, build: &str) -> Value {
    json!({
        "deployment": deployment,
        "manifest": m,
        "install": [{"command": "echo installed > installed.txt"}],
        "build": [{"cwd": "", "command": build}],
        "static_dir": "dist",
        "backend_dir": "backend",
        "timeout_s": 60
    })
}

async fn build(st: &Arc<AppState>, project: &str, body: Value) -> Vec<BuildEvent> {
    let (code, body) = call(
        st,
        "POST",
        &format!("/projects/{project}/deployments/build"),
        body,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    ndjson(&body)
        .into_iter()
        .map(|v| serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}")))
        .collect()
}

fn built(ev: &[BuildEvent]) -> Built {
    match ev.last() {
        Some(BuildEvent::Built(b)) => b.clone(),
        other => panic!("last event is built: {other:?}\n{ev:?}"),
    }
}

fn error(ev: &[BuildEvent]) -> open_replit_core::deploy::build::BuildError {
    match ev.last() {
        Some(BuildEvent::Error(e)) => e.clone(),
        other => panic!("last event is error: {other:?}\n{ev:?}"),
    }
}

fn phases(ev: &[BuildEvent]) -> Vec<String> {
    ev.iter()
        .filter_map(|e| match e {
            BuildEvent::Phase { phase } => Some(format!("{phase:?}").to_lowercase()),
            _ => None,
        })
        .collect()
}

async fn objects_in(check: &AzureObjects, project: &str) -> usize {
    check
        .blob
        .list_all(&format!("{project}/objects/"), None)
        .await
        .unwrap()
        .len()
}

fn builds_on_disk(st: &AppState, project: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(vm_api::deploy_build::deploy_root(st, project))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_build_publishes_its_static_files_once_and_keeps_the_newest_builds() {
    let az = Azurite::start().await.unwrap();
    let cfg = AzureConfig::from_connection_string(&az.connection_string()).unwrap();
    let check = AzureObjects::new(cfg.clone(), CONTAINER);
    let files: [(&str, &[u8]); 2] = [
        ("app.js", b"console.log('hi')\n"),
        ("backend/server.js", b"//"),
    ];
    let m1 = checkpoint(&check, "b1", &files).await;
    let tmp = tempfile::tempdir().unwrap();
    let st = state_with(&tmp, cfg, None);
    assert_eq!(
        st.limits.deploy,
        DistLimits::default(),
        "production limits by default"
    );

    let ev = build(&st, "b1", request("d-1", &m1, BUILD)).await;
    assert_eq!(
        phases(&ev),
        ["materialize", "install", "build", "collect", "upload"]
    );
    assert!(
        ev.iter()
            .any(|e| matches!(e, BuildEvent::Step { index: 0, command, .. } if command == BUILD)),
        "{ev:?}"
    );
    let b = built(&ev);
    assert_eq!(b.deployment, "d-1");
    let paths: Vec<&str> = b.manifest.files.keys().map(String::as_str).collect();
    assert_eq!(paths, ["assets/app-3f2a.js", "index.html"]);
    assert_eq!((b.files, b.total, b.uploaded), (2, 2, 2));
    assert_eq!(b.bytes, b.manifest.total_bytes());
    assert!(b.backend && b.skipped.is_empty(), "{b:?}");
    // What the manifest says is what Azure holds.
    for (path, want) in [
        ("index.html", &b"<h1>hi</h1>\n"[..]),
        ("assets/app-3f2a.js", b"CONSOLE.LOG('HI')\n"),
    ] {
        let e = &b.manifest.files[path];
        assert_eq!(e.size, want.len() as u64);
        assert_eq!(check.fetch("b1", &e.sha256).await.unwrap(), want, "{path}");
    }
    // The build directory holds the checkpoint, the install's and the build's output.
    let dir = vm_api::deploy_build::deploy_dir(&st, "b1", "d-1");
    assert_eq!(std::fs::read(dir.join("backend/server.js")).unwrap(), b"//");
    assert!(dir.join("installed.txt").is_file() && dir.join("dist/index.html").is_file());
    // The dev working copy was not touched.
    assert!(!st.project_dir("b1").join("dist").exists());

    // The same checkpoint again: nothing new to store.
    let b2 = built(&build(&st, "b1", request("d-2", &m1, BUILD)).await);
    assert_eq!((b2.total, b2.uploaded), (2, 0));
    assert_eq!(b2.manifest, b.manifest);

    // One changed source file: exactly one new object.
    let m2 = checkpoint(
        &check,
        "b1",
        &[("app.js", b"console.log('bye')\n"), files[1]],
    )
    .await;
    let before = objects_in(&check, "b1").await;
    let b3 = built(&build(&st, "b1", request("d-3", &m2, BUILD)).await);
    assert_eq!((b3.total, b3.uploaded), (2, 1));
    assert_eq!(objects_in(&check, "b1").await, before + 1);

    // A rebuilt id is refused; the newest three and the live one (the `keep` file) stay.
    let (code, r) = call_json(
        &st,
        "POST",
        "/projects/b1/deployments/build",
        request("d-3", &m2, BUILD),
    )
    .await;
    assert_eq!(code, StatusCode::CONFLICT, "{r}");
    assert_eq!(r["error"]["code"], "deployment_exists");
    let root = vm_api::deploy_build::deploy_root(&st, "b1");
    std::fs::write(root.join("keep"), "d-1\n").unwrap();
    built(&build(&st, "b1", request("d-4", &m2, BUILD)).await);
    built(&build(&st, "b1", request("d-5", &m2, BUILD)).await);
    assert_eq!(
        builds_on_disk(&st, "b1"),
        ["d-1", "d-3", "d-4", "d-5", "keep"]
    );
}

#[tokio::test]
async fn failing_and_endless_steps_end_the_build_and_store_nothing() {
    let az = Azurite::start().await.unwrap();
    let cfg = AzureConfig::from_connection_string(&az.connection_string()).unwrap();
    let check = AzureObjects::new(cfg.clone(), CONTAINER);
    let m = checkpoint(&check, "b2", &[("app.js", b"x")]).await;
    let tmp = tempfile::tempdir().unwrap();
    let st = state_with(&tmp, cfg, None);
    let before = objects_in(&check, "b2").await;

    let failing = "mkdir -p dist && echo '<h1>x</h1>' > dist/index.html && echo compiling \
                   && echo 'error TS2322: not assignable' >&2 && exit 3";
    let ev = build(&st, "b2", request("d-1", &m, failing)).await;
    let e = error(&ev);
    assert_eq!(
        (e.code.as_str(), e.exit_code),
        ("step_failed", Some(3)),
        "{e:?}"
    );
    assert!(e.message.contains("exited with code 3"), "{e:?}");
    assert!(
        e.last_lines.iter().any(|l| l.contains("error TS2322")),
        "{e:?}"
    );
    assert!(!phases(&ev).contains(&"upload".to_string()), "{ev:?}");
    assert_eq!(objects_in(&check, "b2").await, before);
    assert!(
        builds_on_disk(&st, "b2").is_empty(),
        "no half-built directory"
    );

    // A step that never ends is killed at the build's timeout.
    let mut req = request("d-2", &m, "echo started; sleep 600");
    req["timeout_s"] = json!(2);
    let e = error(&build(&st, "b2", req).await);
    assert_eq!(e.code, "step_timed_out", "{e:?}");
    assert_eq!(e.exit_code, None);
    assert!(
        e.message.contains("2 s") && e.last_lines == ["started"],
        "{e:?}"
    );
    assert!(builds_on_disk(&st, "b2").is_empty());

    // While one build runs, a second one of the same project is refused.
    let mut slow = request("d-3", &m, "sleep 600");
    slow["timeout_s"] = json!(3);
    let bytes = slow.to_string().into_bytes();
    let first = vm_api::app(st.clone())
        .oneshot(signed_request(
            "POST",
            "/projects/b2/deployments/build",
            &bytes,
        ))
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let (code, r) = call_json(
        &st,
        "POST",
        "/projects/b2/deployments/build",
        request("d-4", &m, BUILD),
    )
    .await;
    assert_eq!(code, StatusCode::CONFLICT, "{r}");
    assert_eq!(r["error"]["code"], "build_running");
    let body = first.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(ndjson(&body).last().unwrap()["code"], "step_timed_out");
    // Free again once it ended.
    built(&build(&st, "b2", request("d-4", &m, BUILD)).await);
}

/// A caller that leaves stops the build, even a silent step, and frees the project's slot.
#[tokio::test]
async fn a_caller_that_leaves_stops_the_build() {
    let az = Azurite::start().await.unwrap();
    let cfg = AzureConfig::from_connection_string(&az.connection_string()).unwrap();
    let check = AzureObjects::new(cfg.clone(), CONTAINER);
    let m = checkpoint(&check, "b6", &[("app.js", b"x")]).await;
    let tmp = tempfile::tempdir().unwrap();
    let st = state_with(&tmp, cfg, None);
    let mut req = request("d-1", &m, "sleep 600");
    req["timeout_s"] = json!(900);
    let bytes = req.to_string().into_bytes();
    let resp = vm_api::app(st.clone())
        .oneshot(signed_request(
            "POST",
            "/projects/b6/deployments/build",
            &bytes,
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut seen = String::new();
    while !seen.contains(r#""phase":"build","index":0"#) {
        let frame = body.frame().await.expect("the stream goes on").unwrap();
        seen.push_str(&String::from_utf8_lossy(&frame.into_data().unwrap()));
    }
    assert!(st.deploy_builds.running("b6"));
    drop(body);
    assert!(
        eventually(30, || !st.deploy_builds.running("b6")).await,
        "the build ended when its caller left"
    );
    assert!(eventually(10, || builds_on_disk(&st, "b6").is_empty()).await);
}

#[tokio::test]
async fn the_static_folder_is_held_to_its_limits_and_symlinks_are_not_followed() {
    let az = Azurite::start().await.unwrap();
    let cfg = AzureConfig::from_connection_string(&az.connection_string()).unwrap();
    let check = AzureObjects::new(cfg.clone(), CONTAINER);
    let m = checkpoint(&check, "b3", &[("app.js", b"x")]).await;
    let tmp = tempfile::tempdir().unwrap();
    let limits = DistLimits {
        max_files: 3,
        max_file_bytes: 1000,
        max_total_bytes: 1500,
    };
    let st = state_with(&tmp, cfg, Some(limits));

    let with_link = "mkdir -p dist && echo a > dist/a.html && ln -s /etc/passwd dist/passwd";
    let b = built(&build(&st, "b3", request("d-1", &m, with_link)).await);
    assert_eq!(b.manifest.files.keys().collect::<Vec<_>>(), ["a.html"]);
    let s: Vec<(&str, &str)> = b
        .skipped
        .iter()
        .map(|s| (s.path.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(s, [("passwd", "symlink")]);

    let too_many = "mkdir -p dist/x && for i in 1 2 3 4 5; do echo $i > dist/x/$i.html; done";
    let before = objects_in(&check, "b3").await;
    let e = error(&build(&st, "b3", request("d-2", &m, too_many)).await);
    assert_eq!(e.code, "too_many_files", "{e:?}");
    assert!(e.message.contains("more than 3 files"), "{e:?}");
    assert_eq!(objects_in(&check, "b3").await, before);

    let big = "mkdir -p dist && head -c 1001 /dev/zero > dist/big.bin";
    let e = error(&build(&st, "b3", request("d-4", &m, big)).await);
    assert_eq!(e.code, "file_too_large", "{e:?}");
    assert!(
        e.message.contains("big.bin is 1001 bytes") && e.message.contains("at most 1000"),
        "{e:?}"
    );
    let heavy =
        "mkdir -p dist && head -c 800 /dev/zero > dist/a && head -c 800 /dev/urandom > dist/b";
    let e = error(&build(&st, "b3", request("d-5", &m, heavy)).await);
    assert_eq!(e.code, "too_many_bytes", "{e:?}");
    assert!(e.message.contains("1600 bytes; the limit is 1500"), "{e:?}");

    // A static folder reached through a symlink is not followed either.
    let linked = "mkdir -p real && echo a > real/a.html && ln -s real dist";
    let e = error(&build(&st, "b3", request("d-3", &m, linked)).await);
    assert_eq!(e.code, "static_dir_missing", "{e:?}");
    assert_eq!(builds_on_disk(&st, "b3"), ["d-1"]);
}

#[tokio::test]
async fn bad_requests_are_refused_before_anything_runs() {
    let az = Azurite::start().await.unwrap();
    let cfg = AzureConfig::from_connection_string(&az.connection_string()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let st = state_with(&tmp, cfg, None);
    let m = Manifest::of(&[("app.js", b"x")]);
    let cases = [
        ("deployment", json!("../../x"), "invalid_deployment"),
        ("deployment", json!("d-UPPER"), "invalid_deployment"),
        ("static_dir", json!("../../etc/passwd"), "invalid_dir"),
        ("backend_dir", json!("/etc"), "invalid_dir"),
        ("timeout_s", json!(901), "invalid_timeout"),
        ("unknown", json!(1), "invalid_json"),
    ];
    for (field, value, code) in cases {
        let mut req = request("d-1", &m, BUILD);
        req[field] = value;
        let (status, r) = call_json(&st, "POST", "/projects/b4/deployments/build", req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {r}");
        assert_eq!(r["error"]["code"], code, "{field}: {r}");
    }
    let (status, r) = call_json(
        &st,
        "POST",
        "/projects/b4/deployments/build",
        json!({"deployment": "d-1", "manifest": {"files": {"../x": {"sha256": "0".repeat(64), "size": 1}}}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{r}");
    // Unsigned: refused by the HMAC middleware like every route.
    let unsigned = axum::http::Request::post("/projects/b4/deployments/build")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(
            request("d-1", &m, BUILD).to_string(),
        ))
        .unwrap();
    let resp = vm_api::app(st.clone()).oneshot(unsigned).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(builds_on_disk(&st, "b4").is_empty());
}

/// Azure refusing writes: retried, then one clear error; no build directory stays.
#[tokio::test]
async fn azure_errors_end_the_build_with_nothing_half_recorded() {
    let az = Azurite::start().await.unwrap();
    let proxy = FaultProxy::start(az.port).await.unwrap();
    let cfg = AzureConfig::from_connection_string(&azurite_connection_string(proxy.port)).unwrap();
    let check = AzureObjects::new(cfg.clone(), CONTAINER);
    let m = checkpoint(&check, "b5", &[("app.js", b"x")]).await;
    let tmp = tempfile::tempdir().unwrap();
    let st = state_with(&tmp, cfg, None);
    let before = objects_in(&check, "b5").await;

    proxy.set_rule(|_, method, _| {
        if method == "PUT" {
            Action::Status(503)
        } else {
            Action::Forward
        }
    });
    let ev = build(&st, "b5", request("d-1", &m, BUILD)).await;
    let e = error(&ev);
    assert_eq!(e.code, "object_upload_failed", "{e:?}");
    assert!(e.message.contains("503"), "{e:?}");
    assert!(
        proxy.log().iter().filter(|(m, _, _)| m == "PUT").count() >= 2,
        "retried: {:?}",
        proxy.log()
    );
    assert!(builds_on_disk(&st, "b5").is_empty());

    // Reads failing: the checkpoint cannot be materialized.
    proxy.set_rule(|_, method, _| {
        if method == "GET" {
            Action::Status(500)
        } else {
            Action::Forward
        }
    });
    let e = error(&build(&st, "b5", request("d-2", &m, BUILD)).await);
    assert_eq!(
        (e.code.as_str(), format!("{:?}", e.phase)),
        ("object_fetch_failed", "Materialize".into()),
        "{e:?}"
    );
    assert!(builds_on_disk(&st, "b5").is_empty());

    proxy.set_rule(|_, _, _| Action::Forward);
    assert_eq!(objects_in(&check, "b5").await, before);
    let b = built(&build(&st, "b5", request("d-3", &m, BUILD)).await);
    assert_eq!(b.uploaded, 2);
}

/// Under the hardened sandbox (the production one): installs go through the shared dependency
/// cache into the build directory, steps run as the project's own uid, and the disk quota
/// counts the build directory while it exists.
#[tokio::test]
async fn hardened_builds_use_the_dependency_cache_and_the_project_s_quota() {
    use vm_api::sandbox::hardened::{Hardened, HardenedConfig};
    use vm_api::sandbox::Sandbox;
    let az = Azurite::start().await.unwrap();
    let cfg = AzureConfig::from_connection_string(&az.connection_string()).unwrap();
    let check = AzureObjects::new(cfg.clone(), CONTAINER);
    let files: [(&str, &[u8]); 1] = [("package.json", b"{\"name\":\"app\"}")];
    let m = checkpoint(&check, "h1", &files).await;
    let tmp = tempfile::tempdir().unwrap();
    let hc = HardenedConfig {
        disk_quota_mb: 64,
        disk_check_interval_s: 1,
        ..HardenedConfig::default()
    };
    let sb = Arc::new(Hardened::new(tmp.path(), hc).expect("hardened sandbox available"));
    let mut s = AppState::new(SECRET.to_vec(), tmp.path().to_path_buf(), sb.clone());
    s.objects = Some(Arc::new(AzureObjects::new(cfg, CONTAINER)));
    let st = Arc::new(s);

    let req = |deployment: &str, build: &str| {
        let mut r = request(deployment, &m, build);
        r["install"] = json!([{
            "command": "mkdir -p node_modules/lib && echo 'lib v1' > node_modules/lib/index.js",
            "when_changed": ["package.json"], "outputs": ["node_modules"]
        }]);
        r["timeout_s"] = json!(120);
        r
    };
    let build_cmd =
        "mkdir -p dist && cp node_modules/lib/index.js dist/lib.js && id -u > dist/uid.txt";
    let ev = build(&st, "h1", req("d-1", build_cmd)).await;
    let b = built(&ev);
    let uid = sb.project_uid("h1").unwrap();
    let sha = &b.manifest.files["uid.txt"].sha256;
    assert_eq!(
        check.fetch("h1", sha).await.unwrap(),
        format!("{uid}\n").as_bytes()
    );
    assert_eq!(
        check
            .fetch("h1", &b.manifest.files["lib.js"].sha256)
            .await
            .unwrap(),
        b"lib v1\n"
    );
    // The second build of the same manifests links the cached install.
    let ev = build(&st, "h1", req("d-2", build_cmd)).await;
    built(&ev);
    let out: String = ev
        .iter()
        .filter_map(|e| match e {
            BuildEvent::Stdout { data } => Some(data.as_str()),
            _ => None,
        })
        .collect();
    assert!(out.contains("linked from the cache"), "{out}");

    // The quota counts the working copy and the build directory together: 36 MiB in each
    // pass the 64 MiB the project has, and the build is stopped. Once its directory is gone,
    // the project runs commands again.
    let (code, body) = call(
        &st,
        "POST",
        "/projects/h1/exec",
        json!({"command": "for i in 1 2 3; do head -c 12M /dev/zero > w$i; done", "scan": false}),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let fill =
        "mkdir -p big && for i in 1 2 3; do head -c 12M /dev/zero > big/f$i; done; sleep 100";
    let e = error(&build(&st, "h1", req("d-3", fill)).await);
    assert_eq!(
        (e.code.as_str(), e.exit_code),
        ("step_failed", None),
        "{e:?}"
    );
    assert!(!builds_on_disk(&st, "h1").contains(&"d-3".to_string()));
    let (code, body) = call(
        &st,
        "POST",
        "/projects/h1/exec",
        json!({"command": "true", "scan": false}),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    st.shutdown().await;
}
