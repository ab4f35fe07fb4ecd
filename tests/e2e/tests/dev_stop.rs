//! `make dev` stops everything it started, however it is stopped. The real `make dev` (the
//! Makefile and scripts/dev.sh, on free loopback ports with a private state directory and
//! .dev.vars, reusing the built Worker through OPEN_REPLIT_PREBUILT=1) serves a new project with
//! a running preview, a request through the preview proxy and an open WebSocket, and is then
//! stopped: Ctrl-C (SIGINT to its process group), SIGTERM and SIGHUP to the group, SIGTERM and
//! SIGHUP to the script alone, and SIGKILL of the script. Each time every process of the stack
//! (services, workerd, sandboxes, dev servers) must be gone and every port free; the next round
//! starts again on the same ports and state, as a developer's next `make dev` would.
//!
//! Before the fix, SIGTERM to the group reached dev.sh twice (make forwards it) and the second
//! one cut its cleanup short before the SIGKILL round, so Azurite (which, having served, ignored
//! SIGTERM) and at times wrangler and workerd survived; SIGKILL of the script stopped nothing.

use e2e::stack::free_port;
use e2e::ws::ProjectSocket;
use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq)]
enum To {
    /// The process group of `make dev`, as a terminal or `kill -SIG -PGID` sends it.
    Group,
    /// Only the bash running scripts/dev.sh.
    Script,
}

const ROUNDS: &[(&str, i32, To)] = &[
    (
        "Ctrl-C (SIGINT to the process group)",
        libc::SIGINT,
        To::Group,
    ),
    ("SIGTERM to the process group", libc::SIGTERM, To::Group),
    ("SIGHUP to the process group", libc::SIGHUP, To::Group),
    ("SIGTERM to the script alone", libc::SIGTERM, To::Script),
    ("SIGHUP to the script alone", libc::SIGHUP, To::Script),
    ("SIGKILL of the script alone", libc::SIGKILL, To::Script),
];

/// One process, from /proc/PID/stat. (pid, start) identifies it even if the pid is reused.
#[derive(Clone, Debug)]
struct ProcInfo {
    pid: i32,
    ppid: i32,
    sid: i32,
    start: u64,
    zombie: bool,
}

fn all_procs() -> Vec<ProcInfo> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp session ... starttime(22nd)"; comm may hold anything.
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if f.len() < 20 {
            continue;
        }
        out.push(ProcInfo {
            pid,
            ppid: f[1].parse().unwrap_or(0),
            sid: f[3].parse().unwrap_or(0),
            start: f[19].parse().unwrap_or(0),
            zombie: matches!(f[0], "Z" | "X"),
        });
    }
    out
}

fn cmdline(pid: i32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let s: String = String::from_utf8_lossy(&raw).replace('\0', " ");
    s.trim().chars().take(200).collect()
}

/// Every live process of the stack under `root` (make): its descendants, the members of every
/// session one of them leads (services run as session leaders), and their descendants (bwrap
/// puts a sandbox in yet another session). Keyed by (pid, start time), with the command line.
fn stack_procs(root: i32) -> BTreeMap<(i32, u64), String> {
    let all = all_procs();
    let mut mine: BTreeSet<i32> = BTreeSet::from([root]);
    loop {
        let before = mine.len();
        for p in &all {
            if mine.contains(&p.ppid) || mine.contains(&p.sid) {
                mine.insert(p.pid);
            }
        }
        if mine.len() == before {
            break;
        }
    }
    all.iter()
        .filter(|p| mine.contains(&p.pid) && !p.zombie)
        .map(|p| ((p.pid, p.start), cmdline(p.pid)))
        .collect()
}

/// The processes of `snapshot` that still run (same pid and start time, not a zombie).
fn survivors(snapshot: &BTreeMap<(i32, u64), String>) -> Vec<String> {
    let live: BTreeSet<(i32, u64)> = all_procs()
        .into_iter()
        .filter(|p| !p.zombie)
        .map(|p| (p.pid, p.start))
        .collect();
    snapshot
        .iter()
        .filter(|(k, _)| live.contains(k))
        .map(|((pid, _), cmd)| format!("{pid} {cmd}"))
        .collect()
}

fn kill_survivors(snapshot: &BTreeMap<(i32, u64), String>) {
    let live: BTreeSet<(i32, u64)> = all_procs().into_iter().map(|p| (p.pid, p.start)).collect();
    for (pid, start) in snapshot.keys() {
        if live.contains(&(*pid, *start)) {
            // SAFETY: a plain syscall on a process this test's stack started (same start time).
            unsafe {
                libc::kill(*pid, libc::SIGKILL);
            }
        }
    }
}

fn busy_ports(ports: &[u16]) -> Vec<u16> {
    ports
        .iter()
        .copied()
        .filter(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_err())
        .collect()
}

/// A `make dev` of this test. If the test process dies by any means, a watcher in make's
/// process group SIGKILLs the group (make and dev.sh), whose own watcher then stops the stack.
struct Dev {
    make: Child,
    watcher: Option<(Child, OwnedFd)>,
    log: std::path::PathBuf,
}

impl Dev {
    fn start(root: &Path, env: &[(&str, String)], log: &Path) -> Dev {
        let out = std::fs::File::create(log).unwrap();
        let mut cmd = Command::new("make");
        cmd.arg("dev")
            .current_dir(root)
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS")
            .env_remove("MAKELEVEL")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        // SAFETY: signal() is async-signal-safe. A test runner started in the background may
        // have SIGINT ignored, which make and bash would inherit; a terminal's make would not.
        unsafe {
            cmd.pre_exec(|| {
                for s in [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGHUP] {
                    libc::signal(s, libc::SIG_DFL);
                }
                Ok(())
            });
        }
        let make = cmd.spawn().expect("run make (is GNU make installed?)");
        let watcher = e2e::stack::group_watcher(make.id() as i32).ok();
        Dev {
            make,
            watcher,
            log: log.to_path_buf(),
        }
    }

    fn pid(&self) -> i32 {
        self.make.id() as i32
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The bash running scripts/dev.sh: make's child.
    fn script_pid(&self) -> Option<i32> {
        all_procs()
            .into_iter()
            .find(|p| p.ppid == self.pid() && cmdline(p.pid).contains("scripts/dev.sh"))
            .map(|p| p.pid)
    }

    fn exited(&mut self) -> bool {
        matches!(self.make.try_wait(), Ok(Some(_)))
    }

    fn wait_exit(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.exited() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    fn drop_watcher(&mut self) {
        if let Some((mut w, fd)) = self.watcher.take() {
            // Only once make is gone: closing the pipe SIGKILLs the group, i.e. the watcher.
            drop(fd);
            let _ = w.wait();
        }
    }
}

impl Drop for Dev {
    /// A failed test leaves nothing either: stop the stack as Ctrl-C would, then SIGKILL
    /// whatever of it is left.
    fn drop(&mut self) {
        if !self.exited() {
            let snapshot = stack_procs(self.pid());
            // SAFETY: plain syscalls on the process group this test created.
            unsafe {
                libc::killpg(self.pid(), libc::SIGINT);
            }
            if !self.wait_exit(Duration::from_secs(20)) {
                unsafe {
                    libc::killpg(self.pid(), libc::SIGKILL);
                }
                let _ = self.make.wait();
            }
            let deadline = Instant::now() + Duration::from_secs(15);
            while !survivors(&snapshot).is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
            }
            kill_survivors(&snapshot);
        }
        self.drop_watcher();
    }
}

struct Ports {
    worker: u16,
    vm: u16,
    azurite: u16,
    preview: u16,
    inspector: u16,
}

impl Ports {
    fn all(&self) -> Vec<u16> {
        vec![
            self.worker,
            self.vm,
            self.azurite,
            self.preview,
            self.inspector,
        ]
    }
}

/// Waits until the Worker answers (or make gives up).
async fn wait_up(dev: &mut Dev, http: &reqwest::Client, worker: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(240);
    while Instant::now() < deadline {
        if dev.exited() {
            return Err("make dev exited before the Worker answered".into());
        }
        if let Ok(r) = http
            .get(format!("{worker}/api/config"))
            .timeout(Duration::from_secs(3))
            .send()
            .await
        {
            if r.status() == 200 {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err("the Worker did not answer within 240 s".into())
}

/// What a person does with the stack: a new project, its preview started, a page through the
/// preview proxy, and the project's WebSocket left open (returned, to stay open during the stop).
async fn serve(
    http: &reqwest::Client,
    worker: &str,
    preview_port: u16,
    round: usize,
) -> Result<(String, ProjectSocket), String> {
    let created: serde_json::Value = http
        .post(format!("{worker}/projects"))
        .json(&serde_json::json!({"name": format!("dev stop {round}"), "template": "fullstack"}))
        .send()
        .await
        .map_err(|e| format!("POST /projects: {e}"))?
        .json()
        .await
        .map_err(|e| format!("POST /projects: {e}"))?;
    let id = created["project"]["id"]
        .as_str()
        .ok_or_else(|| format!("POST /projects answered {created}"))?
        .to_string();
    // The first round installs the template's dependencies; later ones use the VM API's cache.
    let r = http
        .post(format!("{worker}/projects/{id}/preview/start"))
        .timeout(Duration::from_secs(420))
        .send()
        .await
        .map_err(|e| format!("preview/start: {e}"))?;
    let status = r.status().as_u16();
    let preview: serde_json::Value = r.json().await.map_err(|e| format!("preview/start: {e}"))?;
    if status != 200 || preview["running"] != true {
        return Err(format!("preview/start answered {status}: {preview}"));
    }
    let url = preview["url"].as_str().unwrap_or_default();
    let token = url.split("or_token=").nth(1).unwrap_or_default();
    let host = format!("{id}.preview.localhost");
    let via_proxy = reqwest::Client::builder()
        .resolve(&host, ([127, 0, 0, 1], preview_port).into())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    // `running` means the dev servers started; one that is slow to listen (vite on a loaded
    // machine, past the preview start's 10 s wait) answers through the proxy a moment later.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let page = via_proxy
            .get(format!("http://{host}:{preview_port}/"))
            .header("cookie", format!("or_preview={token}"))
            .send()
            .await
            .map_err(|e| format!("the preview page: {e}"))?;
        if page.status() == 200 {
            break;
        }
        if page.status() != 502 || Instant::now() >= deadline {
            return Err(format!("the preview page answered {}", page.status()));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (ws, _) = ProjectSocket::connect(worker, &id, None)
        .await
        .map_err(|e| format!("the project's WebSocket: {e}"))?;
    Ok((id, ws))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_dev_stops_every_process_however_it_is_stopped() {
    let t0 = Instant::now();
    let root = e2e::repo_root();
    for needed in [
        "build/index.js",
        "static/dist/index.html",
        "target/debug/vm-api",
    ] {
        assert!(
            root.join(needed).exists(),
            "{needed} is missing: run `make build` (or `make test`) before the end-to-end tests"
        );
    }
    let tmp = tempfile::Builder::new()
        .prefix("or-dev-stop-")
        .tempdir()
        .unwrap();
    let dev_vars = tmp.path().join("dev.vars");
    std::fs::write(&dev_vars, "VM_API_SECRET=dev-stop-test-0123456789abcdef\n").unwrap();
    let ports = Ports {
        worker: free_port(),
        vm: free_port(),
        azurite: free_port(),
        preview: free_port(),
        inspector: free_port(),
    };
    let env: Vec<(&str, String)> = vec![
        ("PORT", ports.worker.to_string()),
        ("VM_API_PORT", ports.vm.to_string()),
        ("AZURITE_PORT", ports.azurite.to_string()),
        ("PREVIEW_PORT", ports.preview.to_string()),
        ("INSPECTOR_PORT", ports.inspector.to_string()),
        ("OPEN_REPLIT_PREBUILT", "1".into()),
        (
            "OPEN_REPLIT_STATE_DIR",
            tmp.path().join("state").display().to_string(),
        ),
        ("OPEN_REPLIT_DEV_VARS", dev_vars.display().to_string()),
    ];
    let worker = format!("http://127.0.0.1:{}", ports.worker);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();

    let mut failures: Vec<String> = Vec::new();
    for (n, (what, sig, to)) in ROUNDS.iter().enumerate() {
        let round_t0 = Instant::now();
        let busy = busy_ports(&ports.all());
        assert!(busy.is_empty(), "before round {n} ports {busy:?} are taken");
        let mut dev = Dev::start(&root, &env, &tmp.path().join(format!("make-{n}.log")));
        if let Err(e) = wait_up(&mut dev, &http, &worker).await {
            panic!("round {n} ({what}): {e}\n{}", dev.log());
        }
        let (id, ws) = match serve(&http, &worker, ports.preview, n).await {
            Ok(v) => v,
            Err(e) => panic!("round {n} ({what}): {e}\n{}", dev.log()),
        };
        let snapshot = stack_procs(dev.pid());
        let names: Vec<&String> = snapshot.values().collect();
        for part in [
            "workerd", "wrangler", "azurite", "vm-api", "bwrap", "uvicorn", "vite",
        ] {
            assert!(
                names.iter().any(|c| c.contains(part)),
                "round {n}: no {part} among the stack's processes {names:#?}"
            );
        }
        let served = round_t0.elapsed();

        let stop_t0 = Instant::now();
        let target = match to {
            To::Group => -dev.pid(),
            To::Script => dev.script_pid().expect("the bash running scripts/dev.sh"),
        };
        // SAFETY: a plain syscall on the process (group) this test started.
        unsafe {
            libc::kill(target, *sig);
        }
        let make_exited = dev.wait_exit(Duration::from_secs(60));
        // Every process of the stack gone and every port free: bounded, from the signal on.
        let deadline = stop_t0 + Duration::from_secs(60);
        let (left, busy) = loop {
            let left = survivors(&snapshot);
            let busy = busy_ports(&ports.all());
            if (left.is_empty() && busy.is_empty()) || Instant::now() > deadline {
                break (left, busy);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let stopped = stop_t0.elapsed();
        drop(ws);
        eprintln!(
            "round {n} ({what}): project {id} and its preview served after {served:.1?}, \
             {} processes; stopped in {stopped:.1?}",
            snapshot.len()
        );
        if !make_exited || !left.is_empty() || !busy.is_empty() {
            failures.push(format!(
                "round {n} ({what}): make exited: {make_exited}; still running {} s after the \
                 signal: {left:#?}; ports still taken: {busy:?}\nmake dev's output:\n{}",
                stopped.as_secs(),
                dev.log()
            ));
            // Leave nothing behind for the next round (or the next test).
            kill_survivors(&snapshot);
            let deadline = Instant::now() + Duration::from_secs(10);
            while !busy_ports(&ports.all()).is_empty() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        drop(dev);
    }
    eprintln!("all rounds in {:.1?}", t0.elapsed());
    assert!(
        failures.is_empty(),
        "make dev left processes or ports behind:\n{}",
        failures.join("\n\n")
    );
}
