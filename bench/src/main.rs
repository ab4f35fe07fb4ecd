//! `make bench`: measures what the issues ask for and prints one table. Medians over repeated
//! runs, each row beside its baseline from the same run where one exists. Never used as a test.

mod agent;
mod auth;
mod context;
mod pty;
mod publish;
mod storage;
mod table;
mod vm;

use anyhow::Result;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};
use table::{Row, Table};

#[tokio::main]
async fn main() -> Result<()> {
    let mut t = Table::default();
    // BENCH_ONLY=storage,vm runs a subset.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let on = |s: &str| only.is_empty() || only.split(',').any(|x| x.trim() == s);
    // BENCH_ONLY=latency: the latency rounds alone, printed as they are (see agent.rs).
    if only == "latency" {
        return agent::latency_only().await;
    }
    if on("size") {
        wasm_size(&mut t)?;
        bundle_size(&mut t)?;
    }
    if on("wrangler") {
        wrangler_cold_start(&mut t).await?;
    }
    // A failing section leaves a row saying so, and the others still run.
    if on("storage") {
        if let Err(e) = storage::rows(&mut t).await {
            t.push(Row::new("storage benchmarks", "FAILED".into()).note(format!("{e:#}")));
        }
    }
    if on("vm") {
        if let Err(e) = vm::rows(&mut t).await {
            t.push(Row::new("VM benchmarks", "FAILED".into()).note(format!("{e:#}")));
        }
    }
    if on("pty") {
        if let Err(e) = pty::rows(&mut t).await {
            t.push(Row::new("terminal echo benchmark", "FAILED".into()).note(format!("{e:#}")));
        }
    }
    if on("auth") {
        if let Err(e) = auth::rows(&mut t).await {
            t.push(Row::new("auth check benchmark", "FAILED".into()).note(format!("{e:#}")));
        }
    }
    if on("publish") {
        if let Err(e) = publish::rows(&mut t).await {
            t.push(Row::new("publish benchmarks", "FAILED".into()).note(format!("{e:#}")));
        }
    }
    if on("agent") {
        if let Err(e) = agent::rows(&mut t).await {
            t.push(Row::new("agent streaming benchmarks", "FAILED".into()).note(format!("{e:#}")));
        }
    }
    if on("context") {
        if let Err(e) = context::rows(&mut t).await {
            t.push(Row::new("context benchmarks", "FAILED".into()).note(format!("{e:#}")));
        }
    }
    if on("preview") {
        if let Err(e) = agent::time_to_preview(&mut t).await {
            t.push(Row::new("prompt → preview benchmark", "FAILED".into()).note(format!("{e:#}")));
        }
    }
    t.print();
    Ok(())
}

fn wasm_size(t: &mut Table) -> Result<()> {
    use std::io::Write;
    let root = e2e::repo_root();
    let wasm = std::fs::read(root.join("build/index_bg.wasm"))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&wasm)?;
    let gzip = gz.finish()?.len();
    t.push(Row::new("Worker wasm size (raw)", kib(wasm.len())).goal("—"));
    t.push(
        Row::new("Worker wasm size (gzip -9)", kib(gzip))
            .baseline("3072 KiB (free-plan limit)")
            .ratio(gzip as f64 / (3.0 * 1024.0 * 1024.0))
            .goal("< 1024 KiB"),
    );
    Ok(())
}

/// The frontend's main bundle (what the first page load needs) and its lazy chunks, as
/// recorded by `static/build.mjs`.
fn bundle_size(t: &mut Table) -> Result<()> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(
        e2e::repo_root().join("static/dist/bundle.json"),
    )?)?;
    let main = v["main_gzip_bytes"].as_u64().unwrap_or(0) as usize;
    let lazy = v["lazy_gzip_bytes"].as_u64().unwrap_or(0) as usize;
    t.push(
        Row::new("Frontend main bundle (js + css, gzip)", kib(main))
            .baseline("300 KiB budget")
            .ratio(main as f64 / (300.0 * 1024.0))
            .goal("< 300 KiB")
            .note(format!("editor + terminal lazy: {}", kib(lazy))),
    );
    Ok(())
}

fn kib(n: usize) -> String {
    format!("{:.1} KiB", n as f64 / 1024.0)
}

/// Time from spawning `wrangler dev` (fresh state directory) to the first 200 from the Worker.
async fn wrangler_cold_start(t: &mut Table) -> Result<()> {
    let root = e2e::repo_root();
    let http = reqwest::Client::new();
    let mut samples = Vec::new();
    for _ in 0..3 {
        let state = tempfile::Builder::new().prefix("or-bench-").tempdir()?;
        let port = e2e::stack::free_port();
        let start = Instant::now();
        let mut child = std::process::Command::new(root.join("node_modules/.bin/wrangler"))
            .current_dir(&root)
            .args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(["--inspector-port", &e2e::stack::free_port().to_string()])
            .arg("--persist-to")
            .arg(state.path())
            .arg("--show-interactive-dev-session=false")
            .env("PATH", e2e::stack::tool_path(&root))
            .env("OPEN_REPLIT_PREBUILT", "1")
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CI", "true")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()?;
        let url = format!("http://127.0.0.1:{port}/api/config");
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut ok = false;
        while Instant::now() < deadline {
            if let Ok(r) = http.get(&url).send().await {
                if r.status() == 200 {
                    ok = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let elapsed = start.elapsed();
        // SAFETY: signalling the process group we created just above.
        unsafe {
            libc::killpg(child.id() as i32, libc::SIGKILL);
        }
        let _ = child.wait();
        anyhow::ensure!(ok, "wrangler dev did not answer within 90 s");
        samples.push(elapsed);
    }
    t.push(
        Row::new(
            "wrangler dev cold start → first 200",
            table::ms(table::median(&mut samples)),
        )
        .note(format!("median of {}", samples.len())),
    );
    Ok(())
}
