//! The idle reaper on the real stack (hardened sandbox, slirp4netns): a project whose preview
//! nobody uses loses its dev servers and its network namespace after `--project-idle-secs`;
//! its files stay, and the next preview start brings everything back and the page loads.

use e2e::stack::{Options, Stack};
use std::time::{Duration, Instant};

const IDLE_SECS: &str = "4";

/// `GET /projects/{id}/host-status` on the VM API, signed as the Worker signs (reading it does
/// not count as use).
async fn host_status(stack: &Stack, id: &str) -> serde_json::Value {
    let r = stack
        .vm_call(
            reqwest::Method::GET,
            &format!("/projects/{id}/host-status"),
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Command lines of the slirp4netns processes serving `id`'s namespace.
fn slirps_of(id: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let raw = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmd.contains("slirp4netns") && cmd.contains(&format!("/netns/{id} ")) {
            out.push(cmd);
        }
    }
    out
}

/// Starts the preview through the Worker (installing and starting on demand) and loads its page
/// through the preview proxy.
async fn start_and_load(stack: &Stack, id: &str) {
    let r = stack
        .http
        .post(format!("{}/projects/{id}/preview/start", stack.worker_url))
        .timeout(Duration::from_secs(420))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let preview: serde_json::Value = r.json().await.unwrap();
    assert!(
        status == 200 && preview["running"] == true,
        "preview/start answered {status}: {preview}"
    );
    let url = preview["url"].as_str().unwrap();
    let token = url.split("or_token=").nth(1).unwrap();
    let host = format!("{id}.preview.localhost");
    let via_proxy = reqwest::Client::builder()
        .resolve(&host, ([127, 0, 0, 1], stack.preview_port).into())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let page = via_proxy
        .get(format!("http://{host}:{}/", stack.preview_port))
        .header("cookie", format!("or_preview={token}"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "the preview page");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<html") || html.contains("<!doctype"),
        "{html}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reaper_stops_an_idle_project_and_the_next_preview_start_brings_it_back() {
    let stack = Stack::start_with_vm_args(Options::default(), &["--project-idle-secs", IDLE_SECS])
        .await
        .unwrap();
    let id = stack.create_project("reaped", "frontend").await.unwrap();

    start_and_load(&stack, &id).await;
    let up = host_status(&stack, &id).await;
    assert_ne!(up["running_processes"], serde_json::json!([]), "{up}");
    assert_eq!(up["network"], true, "{up}");
    assert!(up["sandbox_pids"].as_u64().unwrap_or(0) > 0, "{up}");
    assert_eq!(slirps_of(&id).len(), 1, "one NAT helper for the project");

    // Nobody touches the project: the reaper takes its servers, processes and namespace.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = up;
    loop {
        let gone = last["running_processes"] == serde_json::json!([])
            && last["network"] == false
            && last["sandbox_pids"] == 0;
        if gone && slirps_of(&id).is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the idle project was not reaped: {last}; slirp4netns: {:?}",
            slirps_of(&id)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        last = host_status(&stack, &id).await;
    }
    // Its files stay: the working copy on the VM host, and the project in storage.
    let working_copy = stack.state.path().join("vm-data/projects").join(&id);
    assert!(
        working_copy.join("package.json").is_file() && working_copy.join("node_modules").exists(),
        "the working copy (and its install) stays after reaping"
    );
    let (status, tree) = stack
        .get_json(&format!("/projects/{id}/files"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(tree["files"].as_array().is_some_and(|f| !f.is_empty()));

    // The next preview start installs what it must and starts the servers again.
    start_and_load(&stack, &id).await;
    let back = host_status(&stack, &id).await;
    assert_ne!(back["running_processes"], serde_json::json!([]), "{back}");
    assert_eq!(back["network"], true, "{back}");
    assert_eq!(slirps_of(&id).len(), 1);
}
