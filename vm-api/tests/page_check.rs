//! `POST /projects/{id}/preview-check`: a real headless Chromium loads a real dev server's page
//! through the preview proxy and reports its status, uncaught exception, console error, failed
//! request and the other-origin request it did not make; and the clear errors when there is
//! nothing to load or the input is bad.

mod common;
use axum::http::StatusCode;
use common::*;
use serde_json::{json, Value};

const PAGE: &str = r#"<!doctype html><html><head><title>t</title></head><body>
<h1>app</h1>
<script>
console.error("render failed:", "bad state");
fetch("/api/missing").catch(() => {});
fetch("http://127.0.0.1:TRAP/elsewhere").catch(() => {});
fetch("http://localhost:TRAP/again").catch(() => {});
fetch("http://127.0.0.1:API/health").catch(() => {});
throw new Error("boom on load");
</script></body></html>"#;

async fn start_site(st: &std::sync::Arc<vm_api::AppState>, project: &str, page: &str) {
    let dir = st.project_dir(project);
    std::fs::create_dir_all(dir.join("dist")).unwrap();
    std::fs::write(dir.join("dist/index.html"), page).unwrap();
    std::fs::write(dir.join("dist/ok.html"), "<!doctype html><p>fine</p>").unwrap();
    let (s, v) = call_json(
        st,
        "POST",
        &format!("/projects/{project}/processes"),
        json!({"name": "web", "command": "exec python3 -m http.server \"$PORT\" --bind 127.0.0.1", "cwd": "dist"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = call_json(
        st,
        "GET",
        &format!("/projects/{project}/processes/web/ready?timeout_ms=60000"),
        Value::Null,
    )
    .await;
    assert_eq!((s, &v["ready"]), (StatusCode::OK, &json!(true)), "{v}");
}

#[tokio::test]
async fn a_page_that_throws_on_load_is_reported() {
    if vm_api::page_check::find_chromium().is_none() {
        panic!("chromium is required (scripts/ensure-tools.sh with NEED_CHROMIUM=1 installs it)");
    }
    let tmp = tempfile::tempdir().unwrap();
    let (st, api, _preview) = serve(state(&tmp)).await;
    // A listener on the host's loopback that the page tries to reach, with the VM API itself.
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let page = PAGE
        .replace("TRAP", &trap.local_addr().unwrap().port().to_string())
        .replace("API", &api.port().to_string());
    start_site(&st, "site", &page).await;

    let (s, v) = call_json(&st, "POST", "/projects/site/preview-check", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["loaded"], true, "{v}");
    assert!(
        v["url"]
            .as_str()
            .unwrap()
            .starts_with("http://site.preview.localhost:"),
        "{v}"
    );
    assert!(
        !v["url"].as_str().unwrap().contains("or_token"),
        "no credentials in the reply: {v}"
    );
    let problems = v["problems"].as_array().unwrap();
    let has = |kind: &str, needle: &str| {
        problems
            .iter()
            .any(|p| p["kind"] == kind && format!("{}{}", p["message"], p["url"]).contains(needle))
    };
    assert!(has("exception", "boom on load"), "{v}");
    assert!(has("console", "render failed: bad state"), "{v}");
    assert!(has("http", "/api/missing"), "{v}");
    let blocked: Vec<&str> = v["blocked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap())
        .collect();
    for want in ["/elsewhere", "/again", "/health"] {
        assert!(
            blocked.iter().any(|b| b.ends_with(want)),
            "{want} is reported as not made: {v}"
        );
    }
    assert!(
        trap.accept().is_err(),
        "the page reached nothing on the host's loopback"
    );

    // A clean page has no problems.
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/site/preview-check",
        json!({"path": "/ok.html"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["status"].as_u64(),
            v["problems"].as_array().unwrap().len()
        ),
        (Some(200), 0),
        "{v}"
    );
    st.shutdown().await;
}

#[tokio::test]
async fn nothing_to_load_or_bad_input_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (st, _api, _preview) = serve(state(&tmp)).await;
    let (s, v) = call_json(&st, "POST", "/projects/idle/preview-check", json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "no_dev_server");
    for body in [
        json!({"path": "http://example.com/"}),
        json!({"path": "//example.com/"}),
        json!({"path": "/a b"}),
    ] {
        let (s, v) = call_json(&st, "POST", "/projects/idle/preview-check", body.clone()).await;
        assert_eq!(
            (s, &v["error"]["code"]),
            (StatusCode::BAD_REQUEST, &json!("invalid_path")),
            "{body}: {v}"
        );
    }
    let (s, v) = call_json(
        &st,
        "POST",
        "/projects/idle/preview-check",
        json!({"url": "/"}),
    )
    .await;
    assert_eq!(
        (s, &v["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_json")),
        "{v}"
    );
    // Without a preview listener the check says so.
    let tmp2 = tempfile::tempdir().unwrap();
    let st2 = std::sync::Arc::new(state(&tmp2));
    let (s, v) = call_json(&st2, "POST", "/projects/idle/preview-check", json!({})).await;
    assert_eq!(
        (s, &v["error"]["code"]),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            &json!("no_preview_listener")
        ),
        "{v}"
    );
}
