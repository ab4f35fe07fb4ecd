//! VM API rows: a sandboxed `true` against plain fork/exec, a 200-file sync cold and with one
//! change, and preview-proxy throughput against direct access.

use crate::table::{median, ms, percentile, Row, Table};
use anyhow::{Context, Result};
use e2e::stack::{free_port, spawn, tool_path, Azurite, Proc};
use open_replit_core::store::project::{Author, Change, ProjectMeta, Projects};
use open_replit_core::vm_auth;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub struct VmApi {
    pub url: String,
    pub preview_port: u16,
    pub secret: Vec<u8>,
    pub http: reqwest::Client,
    pub proc: Proc,
    _dir: tempfile::TempDir,
}

impl VmApi {
    pub async fn start(azurite_conn: &str) -> Result<VmApi> {
        Self::start_with(azurite_conn, &[]).await
    }

    pub async fn start_with(azurite_conn: &str, extra: &[&str]) -> Result<VmApi> {
        let root = e2e::repo_root();
        // `OPEN_REPLIT_VM_API_BIN` (as for the e2e stack, and as `make bench` sets it) picks
        // the binary, so two builds can be compared without swapping files.
        let bin = std::env::var_os("OPEN_REPLIT_VM_API_BIN")
            .map(std::path::PathBuf::from)
            .into_iter()
            .chain(
                ["target/native-release/vm-api", "target/debug/vm-api"]
                    .iter()
                    .map(|p| root.join(p)),
            )
            .find(|p| p.exists())
            .context("build vm-api first")?;
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let preview_port = free_port();
        let secret = "bench-secret-0123456789abcdef";
        let proc = spawn(
            "vm-api",
            std::process::Command::new(bin)
                .args([
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                    "--preview-port",
                    &preview_port.to_string(),
                ])
                .arg("--data-dir")
                .arg(dir.path().join("data"))
                .args(extra)
                .env_clear()
                .env("PATH", tool_path(&root))
                .env("VM_API_SECRET", secret)
                .env("AZURE_STORAGE_CONNECTION_STRING", azurite_conn)
                .env("RUST_LOG", "warn"),
            dir.path(),
        )?;
        let http = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if http.get(format!("{url}/health")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(VmApi {
            url,
            preview_port,
            secret: secret.as_bytes().to_vec(),
            http,
            proc,
            _dir: dir,
        })
    }

    /// One exec of `true` in project `bench-exec` (with or without its change scan), checked
    /// to succeed; how long the round trip took.
    pub async fn exec_true(&self, scan: bool) -> Result<std::time::Duration> {
        let t0 = Instant::now();
        let (s, body) = self
            .call(
                "POST",
                "/projects/bench-exec/exec",
                Some(&json!({"command": "true", "scan": scan})),
            )
            .await?;
        anyhow::ensure!(
            s == 200 && body.contains("\"exit_code\":0"),
            "exec: {s} {body}"
        );
        Ok(t0.elapsed())
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, String)> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let path = vm_auth::with_nonce(path, N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs() as i64;
        let mut rb = self
            .http
            .request(method.parse()?, format!("{}{path}", self.url));
        for (k, v) in vm_auth::request_headers(&self.secret, method, &path, ts, &bytes, None) {
            rb = rb.header(k, v);
        }
        let r = rb
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await?;
        Ok((r.status().as_u16(), r.text().await?))
    }

    /// Resident memory of the service, in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.proc.pid())
    }
}

/// Resident memory of a process and all its descendants, in KiB.
pub fn tree_rss_kib(pid: u32) -> u64 {
    let mut total = rss_kib(pid);
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                total += tree_rss_kib(c);
            }
        }
    }
    total
}

pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

pub async fn rows(t: &mut Table) -> Result<()> {
    let az = Azurite::start().await?;
    let conn = az.connection_string();
    let vm = VmApi::start(&conn).await?;

    // Exec round trip of `true`, sandboxed, against plain fork/exec in this process: the
    // command alone (`scan: false`), and with the change scan every command then pays,
    // interleaved so both see the same machine.
    let mut sandboxed = Vec::new();
    let mut with_scan = Vec::new();
    for i in 0..120 {
        let scan = i % 2 == 1;
        let took = vm.exec_true(scan).await?;
        if scan {
            with_scan.push(took);
        } else {
            sandboxed.push(took);
        }
    }
    let mut plain = Vec::new();
    for _ in 0..60 {
        let t0 = Instant::now();
        std::process::Command::new("true").status()?;
        plain.push(t0.elapsed());
    }
    let (s50, s99, p50) = (
        percentile(&mut sandboxed, 50),
        percentile(&mut sandboxed, 99),
        median(&mut plain),
    );
    t.push(
        Row::new(
            "Exec round trip of `true` in the sandbox (p50 / p99)",
            format!("{} / {}", ms(s50), ms(s99)),
        )
        .baseline(format!(
            "plain fork/exec {:.2} ms",
            p50.as_secs_f64() * 1000.0
        ))
        .ratio(s50.as_secs_f64() / p50.as_secs_f64())
        .goal("≤ 10 ms p50")
        .note("HTTP + HMAC + the hardened sandbox + NDJSON; no change scan"),
    );
    // The same command with a pause before each, as a person's commands come: cgroup v1
    // migration (the write to `cgroup.procs`) waits for an RCU grace period once the lock
    // behind it went idle, which back-to-back commands never see.
    let mut idle = Vec::new();
    for _ in 0..15 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let took = vm.exec_true(false).await?;
        idle.push(took);
    }
    let i50 = median(&mut idle);
    t.push(
        Row::new(
            "Exec round trip of `true` after 200 ms idle (p50)",
            ms(i50),
        )
        .baseline(format!("back to back {}", ms(s50)))
        .ratio(i50.as_secs_f64() / s50.as_secs_f64())
        .note("median of 15; the hardened sandbox's cgroup v1 moves pay an RCU grace period after idle"),
    );
    let (w50, w99) = (
        percentile(&mut with_scan, 50),
        percentile(&mut with_scan, 99),
    );
    t.push(
        Row::new(
            "Exec round trip of `true` with its change scan (p50 / p99)",
            format!("{} / {}", ms(w50), ms(w99)),
        )
        .baseline(format!("the same without the scan {}", ms(s50)))
        .ratio(w50.as_secs_f64() / s50.as_secs_f64())
        .note("what every command pays: the exec, then the scan of an empty project"),
    );

    // The same `true` under the first-layer sandbox, and npm install with a warm cache under both.
    let basic = VmApi::start_with(&conn, &["--sandbox", "basic"]).await?;
    let mut first_layer = Vec::new();
    for _ in 0..60 {
        let took = basic.exec_true(false).await?;
        first_layer.push(took);
    }
    let (b50, b99) = (
        percentile(&mut first_layer, 50),
        percentile(&mut first_layer, 99),
    );
    t.push(
        Row::new(
            "Hardened sandbox `true` (p50 / p99)",
            format!("{} / {}", ms(s50), ms(s99)),
        )
        .baseline(format!("first layer {} / {}", ms(b50), ms(b99)))
        .ratio(s50.as_secs_f64() / b50.as_secs_f64())
        .note("uid + netns/slirp4netns + cgroups + seccomp on top of bubblewrap"),
    );
    let blob0 = azure_native::client(&conn, "codebase-projects").map_err(anyhow::Error::msg)?;
    blob0.ensure_container().await?;
    let front: Vec<(String, Vec<u8>)> = e2e::template_files("frontend").into_iter().collect();
    let meta0 = ProjectMeta {
        id: "bench-npm".into(),
        name: "npm".into(),
        template: "frontend".into(),
        created_ms: 1,
        owner: None,
    };
    let cp0 = Projects::new(&blob0).create(&meta0, front).await?;
    let mut warm_npm = Vec::new();
    for api in [&vm, &basic] {
        let (s, b) = api
            .call(
                "POST",
                "/projects/bench-npm/sync",
                Some(&json!({"manifest": cp0.manifest})),
            )
            .await?;
        anyhow::ensure!(s == 200, "sync: {s} {b}");
        let install = json!({"command": "npm install --no-audit --no-fund --prefer-offline", "timeout_s": 600});
        let (s, b) = api
            .call("POST", "/projects/bench-npm/exec", Some(&install))
            .await?;
        anyhow::ensure!(
            s == 200 && b.contains("\"exit_code\":0"),
            "cold npm install: {s} {}",
            b.chars().rev().take(400).collect::<String>()
        );
        let mut runs = Vec::new();
        for _ in 0..3 {
            api.call(
                "POST",
                "/projects/bench-npm/exec",
                Some(&json!({"command": "rm -rf node_modules"})),
            )
            .await?;
            let t0 = Instant::now();
            let (s, b) = api
                .call("POST", "/projects/bench-npm/exec", Some(&install))
                .await?;
            anyhow::ensure!(
                s == 200 && b.contains("\"exit_code\":0"),
                "warm npm install: {s}"
            );
            runs.push(t0.elapsed());
        }
        warm_npm.push(median(&mut runs));
    }
    t.push(
        Row::new(
            "npm install of the frontend template, warm cache, hardened sandbox",
            ms(warm_npm[0]),
        )
        .baseline(format!("first layer {}", ms(warm_npm[1])))
        .ratio(warm_npm[0].as_secs_f64() / warm_npm[1].as_secs_f64())
        .note("median of 3; node_modules removed each time, the project's npm cache kept"),
    );
    drop(basic);

    // Sync of a 200-file project, cold, then with one file changed.
    let blob = azure_native::client(&conn, "codebase-projects").map_err(anyhow::Error::msg)?;
    blob.ensure_container().await?;
    let p = Projects::new(&blob);
    let files: Vec<(String, Vec<u8>)> = (0..200)
        .map(|i| {
            (
                format!("src/f{i:03}.txt"),
                format!("file {i}\n").repeat(50).into_bytes(),
            )
        })
        .collect();
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for round in 0..5 {
        let id = format!("bench-sync-{round}");
        let meta = ProjectMeta {
            id: id.clone(),
            name: id.clone(),
            template: "fullstack".into(),
            created_ms: 1,
            owner: None,
        };
        let cp = p.create(&meta, files.clone()).await?;
        let t0 = Instant::now();
        let (s, b) = vm
            .call(
                "POST",
                &format!("/projects/{id}/sync"),
                Some(&json!({"manifest": cp.manifest})),
            )
            .await?;
        anyhow::ensure!(s == 200, "sync: {s} {b}");
        cold.push(t0.elapsed());
        let cp2 = p
            .commit(
                &id,
                vec![Change::Write {
                    path: "src/f010.txt".into(),
                    content: b"changed".to_vec(),
                }],
                &[],
                Author::User,
                "x",
            )
            .await?
            .context("a checkpoint")?;
        let t0 = Instant::now();
        let (s, b) = vm
            .call(
                "POST",
                &format!("/projects/{id}/sync"),
                Some(&json!({"manifest": cp2.manifest})),
            )
            .await?;
        anyhow::ensure!(s == 200 && b.contains("src/f010.txt"), "sync: {s} {b}");
        warm.push(t0.elapsed());
    }
    let (c, w) = (median(&mut cold), median(&mut warm));
    t.push(
        Row::new("VM sync of a 200-file project, cold", ms(c))
            .note("fetches 200 objects from Azurite"),
    );
    t.push(
        Row::new("VM sync of the same project, 1 file changed", ms(w))
            .baseline(format!("cold {}", ms(c)))
            .ratio(w.as_secs_f64() / c.as_secs_f64())
            .note("fetches 1 object"),
    );

    // Preview-proxy throughput against direct access to the same dev server.
    let (s, b) = vm
        .call(
            "POST",
            "/projects/bench-sync-0/processes",
            Some(
                &json!({"name": "web", "command": "python3 -m http.server $PORT --bind 127.0.0.1"}),
            ),
        )
        .await?;
    anyhow::ensure!(s == 201, "start: {s} {b}");
    // The sandboxed dev server is reachable only through the proxy (its own network namespace),
    // so the direct baseline is the same server run on the host over a copy of the same file.
    let host_dir = tempfile::tempdir()?;
    std::fs::create_dir_all(host_dir.path().join("src"))?;
    std::fs::write(host_dir.path().join("src/f001.txt"), &files[1].1)?;
    let host_port = free_port();
    let mut host_server = spawn(
        "host-http",
        std::process::Command::new("python3")
            .args([
                "-m",
                "http.server",
                &host_port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .current_dir(host_dir.path()),
        host_dir.path(),
    )?;
    let direct_url = format!("http://127.0.0.1:{host_port}/src/f001.txt");
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client.get(&direct_url).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let token = vm_auth::mint_preview_token(
        &vm.secret,
        "bench-sync-0",
        (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()
            + 600) as i64,
    );
    // The preview host resolves to loopback; connect to 127.0.0.1 with the right Host header.
    let proxied = reqwest::Client::builder()
        .resolve(
            "bench-sync-0.preview.localhost",
            format!("127.0.0.1:{}", vm.preview_port).parse()?,
        )
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let base = format!("http://bench-sync-0.preview.localhost:{}", vm.preview_port);
    let r = proxied
        .get(format!("{base}/?or_token={token}"))
        .send()
        .await?;
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("preview cookie")?
        .to_string();
    let n = 400;
    let t0 = Instant::now();
    for _ in 0..n {
        let r = client.get(&direct_url).send().await?;
        r.bytes().await?;
    }
    let direct = n as f64 / t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    for _ in 0..n {
        let r = proxied
            .get(format!("{base}/src/f001.txt"))
            .header("cookie", &cookie)
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "proxy answered {}", r.status());
        r.bytes().await?;
    }
    let via = n as f64 / t0.elapsed().as_secs_f64();
    host_server.kill();
    t.push(
        Row::new(
            "Preview proxy throughput (sequential GETs)",
            format!("{via:.0} req/s"),
        )
        .baseline(format!("direct {direct:.0} req/s"))
        .ratio(via / direct)
        .note("python http.server as the dev server"),
    );

    // Memory: the service with 20 idle projects (5 synced above + 15 more), and one dev server.
    for i in 0..15 {
        let id = format!("bench-idle-{i}");
        let meta = ProjectMeta {
            id: id.clone(),
            name: id.clone(),
            template: "fullstack".into(),
            created_ms: 1,
            owner: None,
        };
        let cp = p.create(&meta, files[..20].to_vec()).await?;
        vm.call(
            "POST",
            &format!("/projects/{id}/sync"),
            Some(&json!({"manifest": cp.manifest})),
        )
        .await?;
    }
    t.push(
        Row::new(
            "VM API memory (RSS) with 20 idle projects",
            format!("{:.1} MiB", vm.rss_kib() as f64 / 1024.0),
        )
        .note("one python dev server running"),
    );
    scan_rows(t, &vm).await?;
    Ok(())
}

/// Every file under `dir`, hashed: what a scan without the size/mtime/inode cache would cost.
fn hash_tree(dir: &std::path::Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                if let Ok(b) = std::fs::read(e.path()) {
                    std::hint::black_box(vm_auth::sha256_hex(&b));
                    n += 1;
                }
            }
        }
    }
    n
}

/// The change scan every command now pays: nothing changed on a 5,000-file project with an
/// installed (ignored) node_modules, against hashing the whole tree; and one changed file.
async fn scan_rows(t: &mut Table, vm: &VmApi) -> Result<()> {
    let project = "bench-scan";
    // 5,000 project files in 50 folders, and 20,000 files under node_modules (ignored).
    let make =
        "printf 'node_modules/\\n' > .gitignore && for d in $(seq 50); do mkdir -p src/d$d; \
                for f in $(seq 100); do echo \"$d $f\" > src/d$d/f$f.ts; done; done && \
                for d in $(seq 200); do mkdir -p node_modules/p$d; for f in $(seq 100); do \
                echo $f > node_modules/p$d/f$f.js; done; done && rm src/d50/f100.ts";
    let (s, b) = vm
        .call(
            "POST",
            &format!("/projects/{project}/exec"),
            Some(&json!({"command": make, "timeout_s": 600, "scan": false})),
        )
        .await?;
    anyhow::ensure!(
        s == 200 && b.contains("\"exit_code\":0"),
        "make files: {s} {b}"
    );
    // The first scan saves all 5,000 files (4,999 + .gitignore, the default file limit); the
    // ones after it find nothing.
    let (s, b) = vm
        .call("POST", &format!("/projects/{project}/changes"), None)
        .await?;
    anyhow::ensure!(s == 200, "first scan: {s} {b}");
    let first: Value = serde_json::from_str(&b)?;
    anyhow::ensure!(
        first["added"].as_array().map(Vec::len) == Some(5000),
        "first scan saw {} files",
        first["added"].as_array().map(Vec::len).unwrap_or(0)
    );
    let mut quiet = Vec::new();
    let mut walked = 0;
    for _ in 0..20 {
        let t0 = Instant::now();
        let (s, b) = vm
            .call("POST", &format!("/projects/{project}/changes"), None)
            .await?;
        quiet.push(t0.elapsed());
        let v: Value = serde_json::from_str(&b)?;
        anyhow::ensure!(
            s == 200 && v["added"] == json!([]) && v["stats"]["hashed"] == 0,
            "quiet scan: {s} {b}"
        );
        walked = v["stats"]["walked"].as_u64().unwrap_or(0);
    }
    let dir = vm._dir.path().join("data/projects").join(project);
    let mut full = Vec::new();
    let mut hashed = 0;
    for _ in 0..5 {
        let t0 = Instant::now();
        hashed = hash_tree(&dir);
        full.push(t0.elapsed());
    }
    let (q, f) = (median(&mut quiet), median(&mut full));
    t.push(
        Row::new(
            "Change scan, nothing changed (5,000 files + ignored node_modules)",
            ms(q),
        )
        .baseline(format!("full sha256 of the tree {} ({hashed} files)", ms(f)))
        .ratio(q.as_secs_f64() / f.as_secs_f64())
        .goal("≤ 20 ms")
        .note(format!(
            "median of 20 POST /changes (HTTP + HMAC + walk of {walked} files, stat only); node_modules never walked"
        )),
    );
    let mut one = Vec::new();
    for i in 0..5 {
        let (s, b) = vm
            .call(
                "POST",
                &format!("/projects/{project}/exec"),
                Some(&json!({"command": format!("echo {i} >> src/d1/f1.ts"), "scan": false})),
            )
            .await?;
        anyhow::ensure!(s == 200, "edit: {s} {b}");
        let t0 = Instant::now();
        let (s, b) = vm
            .call("POST", &format!("/projects/{project}/changes"), None)
            .await?;
        one.push(t0.elapsed());
        let v: Value = serde_json::from_str(&b)?;
        anyhow::ensure!(
            s == 200
                && v["modified"].as_array().map(Vec::len) == Some(1)
                && v["stats"]["uploaded"] == 1,
            "one change: {s} {b}"
        );
    }
    t.push(
        Row::new("Change scan, 1 file changed", ms(median(&mut one)))
            .baseline(format!("nothing changed {}", ms(q)))
            .ratio(median(&mut one).as_secs_f64() / q.as_secs_f64())
            .goal("one object uploaded")
            .note("median of 5; each uploaded exactly 1 object (checked)"),
    );
    // Starting a command must not cost O(project): the sandbox's disk-quota check once walked
    // the working copy and its caches on every start. Interleaved with an empty project, so
    // both see the same load; scan off, so only the start and the command are measured.
    let (mut big, mut empty) = (Vec::new(), Vec::new());
    for _ in 0..30 {
        for (p, out) in [(project, &mut big), ("bench-exec", &mut empty)] {
            let t0 = Instant::now();
            let (s, b) = vm
                .call(
                    "POST",
                    &format!("/projects/{p}/exec"),
                    Some(&json!({"command": "true", "scan": false})),
                )
                .await?;
            out.push(t0.elapsed());
            anyhow::ensure!(
                s == 200 && b.contains("\"exit_code\":0"),
                "exec in {p}: {s} {b}"
            );
        }
    }
    let (b50, e50) = (median(&mut big), median(&mut empty));
    t.push(
        Row::new(
            "Exec of `true` in the 25,000-file project (scan off)",
            ms(b50),
        )
        .baseline(format!("an empty project {}", ms(e50)))
        .ratio(b50.as_secs_f64() / e50.as_secs_f64())
        .goal("≈ 1× (independent of project size)")
        .note("median of 30 each, interleaved; the quota check reuses a measurement under the quota for 5 s"),
    );
    Ok(())
}
