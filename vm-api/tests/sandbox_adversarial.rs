//! Adversarial tests of the hardened sandbox, with real bwrap, slirp4netns, cgroups and
//! processes. Each attack must fail, and afterwards the VM API must answer and a second project
//! must still run commands. Every test uses its own project ids (uids are per project id, and
//! RLIMIT_NPROC counts per uid) and its own data dir (its own cgroups and namespaces), and
//! shuts the service down at the end, which kills every process it started.

mod common;
use axum::http::StatusCode;
use common::*;
use futures_util::future::BoxFuture;
use open_replit_core::manifest::Manifest;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use vm_api::sandbox::hardened::{Hardened, HardenedConfig};
use vm_api::sync::{FetchError, ObjectSource};
use vm_api::AppState;

/// Small limits so attacks hit them quickly.
fn small() -> HardenedConfig {
    HardenedConfig {
        memory_mb: 256,
        pids: 64,
        cpu_time_s: 2,
        cpu_percent: 100,
        file_size_mb: 16,
        disk_quota_mb: 64,
        disk_check_interval_s: 1,
        tmp_size_mb: 8,
        ..HardenedConfig::default()
    }
}

#[derive(Default)]
struct MapSource(Mutex<HashMap<String, Vec<u8>>>);

impl ObjectSource for MapSource {
    fn fetch<'a>(
        &'a self,
        _p: &'a str,
        sha: &'a str,
    ) -> BoxFuture<'a, Result<Vec<u8>, FetchError>> {
        Box::pin(async move {
            self.0
                .lock()
                .unwrap()
                .get(sha)
                .cloned()
                .ok_or_else(|| FetchError::NotFound(sha.to_string()))
        })
    }
}

struct Env {
    _tmp: tempfile::TempDir,
    st: Arc<AppState>,
    sb: Arc<Hardened>,
    objects: Arc<MapSource>,
    api: SocketAddr,
    preview: SocketAddr,
}

async fn env_with(cfg: HardenedConfig) -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let sb = Arc::new(Hardened::new(tmp.path(), cfg).expect("hardened sandbox available"));
    let mut s = AppState::new(SECRET.to_vec(), tmp.path().to_path_buf(), sb.clone());
    let objects = Arc::new(MapSource::default());
    s.objects = Some(objects.clone());
    let (st, api, preview) = serve(s).await;
    Env {
        _tmp: tmp,
        st,
        sb,
        objects,
        api,
        preview,
    }
}

async fn env() -> Env {
    env_with(small()).await
}

impl Env {
    async fn exec(&self, project: &str, command: &str, timeout_s: u64) -> (String, String, Value) {
        let (s, body) = call(
            &self.st,
            "POST",
            &format!("/projects/{project}/exec"),
            json!({"command": command, "timeout_s": timeout_s}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let ev = ndjson(&body);
        (text_of(&ev, "stdout"), text_of(&ev, "stderr"), exit_of(&ev))
    }

    /// The service answers and an unrelated project runs a command normally.
    async fn still_works(&self, other: &str) {
        let r = reqwest::get(format!("http://{}/health", self.api))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let (out, err, exit) = self.exec(other, "echo ok; id -u", 30).await;
        assert_eq!(exit["exit_code"], 0, "{err}");
        let uid = self.sb.uid(other).unwrap();
        assert_eq!(out, format!("ok\n{uid}\n"), "{err}");
    }

    async fn stop(self) {
        self.st.shutdown().await;
    }
}

#[tokio::test]
async fn runs_as_project_uid_without_privileges() {
    let e = env().await;
    let uid = e.sb.uid("ident-a").unwrap();
    assert!(uid >= 100_000, "unprivileged uid: {uid}");
    assert_ne!(uid, e.sb.uid("ident-b").unwrap());
    let (out, err, exit) = e
        .exec(
            "ident-a",
            "id -u; id -g; id -G; grep -E '^(NoNewPrivs|CapEff|CapBnd|CapPrm|Seccomp):' /proc/self/status; \
             stat -c %u /project /home/user; touch made-inside; whoami",
            30,
        )
        .await;
    assert_eq!(exit["exit_code"], 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], uid.to_string());
    assert_eq!(lines[1], uid.to_string());
    assert_eq!(lines[2], uid.to_string(), "no supplementary groups");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(out.contains("CapBnd:\t0000000000000000"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "seccomp filter mode: {out}");
    assert!(out.ends_with("user\n"), "{out}");
    let host = e.st.project_dir("ident-a").join("made-inside");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&host).unwrap()),
        uid
    );
    e.still_works("ident-b").await;
    e.stop().await;
}

#[tokio::test]
async fn cannot_write_system_dirs() {
    let e = env().await;
    let (out, _, exit) = e
        .exec(
            "etc-a",
            "for f in /etc/passwd /etc/evil /usr/evil /evil /home/evil; do \
               (echo x > $f) 2>/dev/null && echo WROTE $f || echo denied $f; done",
            30,
        )
        .await;
    assert_eq!(exit["exit_code"], 0);
    assert!(!out.contains("WROTE"), "{out}");
    assert_eq!(out.matches("denied").count(), 5, "{out}");
    assert!(!std::path::Path::new("/etc/evil").exists());
    assert!(!std::path::Path::new("/usr/evil").exists());
    e.still_works("etc-b").await;
    e.stop().await;
}

/// The `/etc` files reach bwrap as descriptors (`--file`): none of them, nor any other of the
/// service's, is left open in the command (`ls` itself holds 3, the directory it lists).
#[tokio::test]
async fn inherits_no_descriptors_of_the_service() {
    let e = env().await;
    let (out, err, exit) = e.exec("fds-a", "ls /proc/self/fd", 30).await;
    assert_eq!(exit["exit_code"], 0, "{err}");
    assert_eq!(out, "0\n1\n2\n3\n", "{out}");
    let (out, err, exit) = e
        .exec(
            "fds-a",
            "cat /etc/passwd /etc/hosts >/dev/null && echo ok",
            30,
        )
        .await;
    assert_eq!(exit["exit_code"], 0, "{err}");
    assert_eq!(out, "ok\n");
    e.stop().await;
}

#[tokio::test]
async fn cannot_see_other_projects_or_service_data() {
    let e = env().await;
    let (_, err, exit) = e.exec("victim", "echo s3cret > secret.txt", 30).await;
    assert_eq!(exit["exit_code"], 0, "{err}");
    let victim_host = e.st.project_dir("victim");
    let data = e.st.data_dir.clone();
    let cmd = format!(
        "cat {v}/secret.txt; cat /project/../victim/secret.txt; ls {d}; ls /home; \
         find / -xdev -name secret.txt 2>/dev/null; grep -r s3cret / --exclude-dir=proc --exclude-dir=sys -s -l | head; echo done",
        v = victim_host.display(),
        d = data.display()
    );
    let (out, _, exit) = e.exec("thief", &cmd, 60).await;
    assert_eq!(exit["exit_code"], 0);
    assert!(!out.contains("s3cret"), "{out}");
    assert!(!out.contains("secret.txt"), "{out}");
    assert!(out.ends_with("done\n"), "{out}");
    e.still_works("victim").await;
    e.stop().await;
}

#[tokio::test]
async fn cannot_read_service_environment_or_host_processes() {
    let e = env().await;
    let (out, _, _) = e
        .exec(
            "env-a",
            "cat /proc/1/environ | tr '\\0' '\\n'; cat /proc/$PPID/environ | tr '\\0' '\\n'; \
             echo; ls /proc | grep -cE '^[0-9]+$'",
            30,
        )
        .await;
    assert!(!out.contains("PATH=/root"), "{out}");
    assert!(!out.contains("CARGO"), "{out}");
    assert!(!out.contains("VM_API"), "{out}");
    // Only the sandbox's own few processes are visible.
    let visible: usize = out.lines().last().unwrap().trim().parse().unwrap();
    assert!(visible < 10, "{out}");
    e.still_works("env-b").await;
    e.stop().await;
}

const PROBE_PY: &str = r#"
import socket, sys
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        s = socket.create_connection((host, int(port)), timeout=3)
        print("OPEN", target)
        s.close()
    except Exception as e:
        print("BLOCKED", target, type(e).__name__)
"#;

fn host_ipv4s() -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "inet").nth(1))
        .filter_map(|a| a.split('/').next().map(str::to_string))
        .filter(|a| !a.starts_with("127."))
        .collect()
}

#[tokio::test]
async fn network_blocks_host_loopback_private_ranges_and_metadata() {
    let e = env().await;
    // A host service bound on every address, to catch any route to the host.
    let trap = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let tp = trap.local_addr().unwrap().port();
    let api = e.api.port();
    let mut targets = vec![
        format!("127.0.0.1:{api}"),
        format!("127.0.0.1:{tp}"),
        format!("10.0.2.2:{api}"),
        format!("10.0.2.2:{tp}"),
        "169.254.169.254:80".to_string(),
        "10.255.255.53:53".to_string(),
        "192.168.1.1:80".to_string(),
        "172.17.0.1:80".to_string(),
        format!("localhost:{api}"),
    ];
    for a in host_ipv4s() {
        targets.push(format!("{a}:{tp}"));
        targets.push(format!("{a}:{api}"));
    }
    std::fs::create_dir_all(e.st.project_dir("net-a")).unwrap();
    std::fs::write(e.st.project_dir("net-a").join("probe.py"), PROBE_PY).unwrap();
    let (out, err, exit) = e
        .exec(
            "net-a",
            &format!("python3 probe.py {}", targets.join(" ")),
            120,
        )
        .await;
    assert_eq!(exit["exit_code"], 0, "{err}");
    assert_eq!(out.matches("BLOCKED").count(), targets.len(), "{out}");
    assert!(!out.contains("OPEN"), "{out}");
    assert!(trap.accept().is_err(), "the host trap got a connection");
    e.still_works("net-b").await;
    e.stop().await;
}

#[tokio::test]
async fn dev_server_reachable_only_through_preview_proxy() {
    let e = env().await;
    std::fs::create_dir_all(e.st.project_dir("web-a")).unwrap();
    std::fs::write(e.st.project_dir("web-a").join("index.html"), "hello from a").unwrap();
    let (s, v) = call_json(
        &e.st,
        "POST",
        "/projects/web-a/processes",
        json!({"name": "web", "command": "exec python3 -m http.server \"$PORT\" --bind 127.0.0.1"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let port = v["port"].as_u64().unwrap() as u16;
    // The preview proxy reaches it (inside the project's namespace).
    let token = vm_api::mint_preview_token(SECRET, "web-a", vm_api::auth::now_unix() + 600);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut body = String::new();
    for _ in 0..100 {
        let r = client
            .get(format!("http://{}/index.html?or_token={token}", e.preview))
            .header(
                "host",
                format!("web-a.preview.localhost:{}", e.preview.port()),
            )
            .send()
            .await
            .unwrap();
        let cookie = r
            .headers()
            .get("set-cookie")
            .map(|c| c.to_str().unwrap().to_string());
        let r = client
            .get(format!("http://{}/index.html", e.preview))
            .header(
                "host",
                format!("web-a.preview.localhost:{}", e.preview.port()),
            )
            .header(
                "cookie",
                cookie
                    .unwrap_or_default()
                    .split(';')
                    .next()
                    .unwrap()
                    .to_string(),
            )
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            body = r.text().await.unwrap();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(body, "hello from a");
    // The host does not see it...
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    // ...and neither does another project.
    std::fs::create_dir_all(e.st.project_dir("web-b")).unwrap();
    std::fs::write(e.st.project_dir("web-b").join("probe.py"), PROBE_PY).unwrap();
    let (out, _, _) = e
        .exec(
            "web-b",
            &format!("python3 probe.py 127.0.0.1:{port} 10.0.2.2:{port}"),
            60,
        )
        .await;
    assert_eq!(out.matches("BLOCKED").count(), 2, "{out}");
    // The project itself can test its own server from a command.
    let (out, _, _) = e
        .exec("web-a", &format!("python3 -c \"import urllib.request as u; print(u.urlopen('http://127.0.0.1:{port}/index.html').read().decode())\""), 60)
        .await;
    assert_eq!(out.trim(), "hello from a");
    e.still_works("web-b").await;
    e.stop().await;
}

#[tokio::test]
async fn fork_bomb_is_contained() {
    let e = env().await;
    let st = e.st.clone();
    let bomb = tokio::spawn(async move {
        call(
            &st,
            "POST",
            "/projects/bomb-a/exec",
            // Every f leaves a sleeper behind, so the processes stay at the limit long enough
            // to be counted from outside (dash gives up on a failed fork at once).
            json!({"command": "f() { sleep 3 & f | f & }; f; sleep 5", "timeout_s": 15}),
        )
        .await
    });
    // Watch the project's process count from the host while the bomb runs.
    let mut most = 0;
    while !bomb.is_finished() {
        most = most.max(e.sb.cgroup_pids("bomb-a").len());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (s, body) = bomb.await.unwrap();
    assert_eq!(s, StatusCode::OK);
    let ev = ndjson(&body);
    let exit = exit_of(&ev);
    assert!(
        most > 10,
        "the bomb did run ({most} processes); exit {exit}; stderr: {}",
        text_of(&ev, "stderr")
            .chars()
            .take(2000)
            .collect::<String>()
    );
    assert!(most <= 64, "held to the pids limit, saw {most}");
    assert!(
        text_of(&ev, "stderr").contains("Cannot fork"),
        "the kernel refused forks at the limit"
    );
    e.still_works("bomb-b").await;
    // The project itself recovers once its processes are gone.
    assert!(eventually(30, || e.sb.cgroup_pids("bomb-a").is_empty()).await);
    let (out, _, exit) = e.exec("bomb-a", "echo alive", 30).await;
    assert_eq!(
        (out.as_str(), exit["exit_code"].clone()),
        ("alive\n", json!(0))
    );
    e.stop().await;
}

#[tokio::test]
async fn memory_limit_kills_a_4_gib_allocation() {
    let e = env().await;
    let (out, _, exit) = e
        .exec(
            "mem-a",
            "python3 -c \"b = b'x' * (4 << 30); print('ALLOCATED', len(b))\"",
            60,
        )
        .await;
    assert!(!out.contains("ALLOCATED"), "{out}");
    assert_ne!(exit["exit_code"], 0);
    assert_eq!(exit["timed_out"], false);
    e.still_works("mem-b").await;
    e.stop().await;
}

#[tokio::test]
async fn file_size_limit_stops_a_100_gib_file() {
    let e = env().await;
    let (out, _, exit) = e
        .exec(
            "fsize-a",
            "head -c 100G /dev/zero > big; echo rc=$?; truncate -s 100G sparse; echo trunc=$?; \
             fallocate -l 100G falloc; echo falloc=$?",
            120,
        )
        .await;
    assert_eq!(exit["timed_out"], false);
    assert!(!out.contains("rc=0"), "{out}");
    assert!(!out.contains("trunc=0"), "{out}");
    assert!(!out.contains("falloc=0"), "{out}");
    let dir = e.st.project_dir("fsize-a");
    for f in ["big", "sparse", "falloc"] {
        let len = std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(len <= 16 * 1024 * 1024, "{f} is {len} bytes");
    }
    e.still_works("fsize-b").await;
    e.stop().await;
}

#[tokio::test]
async fn tmp_is_size_limited() {
    let e = env().await;
    let (out, _, _) = e
        .exec(
            "tmp-a",
            "head -c 12M /dev/zero > /tmp/x; echo rc=$?; stat -c %s /tmp/x",
            30,
        )
        .await;
    assert!(out.contains("rc=1"), "{out}");
    let size: u64 = out.lines().last().unwrap().trim().parse().unwrap();
    assert!(size <= 8 * 1024 * 1024, "{out}");
    e.still_works("tmp-b").await;
    e.stop().await;
}

#[tokio::test]
async fn cpu_time_limit_ends_an_endless_loop() {
    let e = env().await;
    let (_, _, exit) = e.exec("cpu-a", "while :; do :; done", 300).await;
    assert_eq!(
        exit["timed_out"], false,
        "RLIMIT_CPU ended it, not the timeout"
    );
    assert_ne!(exit["exit_code"], 0);
    e.still_works("cpu-b").await;
    e.stop().await;
}

#[tokio::test]
async fn timeout_kills_grandchildren() {
    let e = env().await;
    let (_, _, exit) = e
        .exec("late-a", "(sleep 3; touch /project/marker) & sleep 100", 1)
        .await;
    assert_eq!(exit["timed_out"], true);
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert!(!e.st.project_dir("late-a").join("marker").exists());
    assert!(e.sb.cgroup_pids("late-a").is_empty());
    e.still_works("late-b").await;
    e.stop().await;
}

#[tokio::test]
async fn symlink_to_etc_is_not_a_way_out() {
    let e = env().await;
    let (out, _, _) = e
        .exec(
            "link-a",
            "ln -s /etc etc-link; (echo pwned > etc-link/pwned) 2>/dev/null && echo WROTE; \
             ln -s /etc/hostname host-link; (echo pwned >> host-link) 2>/dev/null && echo WROTE2; echo end",
            30,
        )
        .await;
    assert!(!out.contains("WROTE"), "{out}");
    assert!(!std::path::Path::new("/etc/pwned").exists());
    // The sync API must not write through the planted links either.
    let content = b"pwned by sync".to_vec();
    let entry = Manifest::entry(&content);
    e.objects
        .0
        .lock()
        .unwrap()
        .insert(entry.sha256.clone(), content);
    for path in ["etc-link/pwned-by-sync", "host-link"] {
        let mut files = std::collections::BTreeMap::new();
        files.insert(path.to_string(), entry.clone());
        let (s, v) = call_json(
            &e.st,
            "POST",
            "/projects/link-a/sync",
            json!({"manifest": Manifest { files }}),
        )
        .await;
        // A symlink leaf is replaced (never written through); a symlinked directory on the way
        // is unlinked (never followed) and replaced by a real one, reported as displaced.
        assert_eq!(s, StatusCode::OK, "{v}");
        if path != "host-link" {
            assert_eq!(v["displaced"], json!(["etc-link"]), "{v}");
        }
    }
    assert!(!std::path::Path::new("/etc/pwned-by-sync").exists());
    assert_ne!(std::fs::read("/etc/hostname").unwrap(), b"pwned by sync");
    // What sync wrote belongs to the project.
    let md = std::fs::symlink_metadata(e.st.project_dir("link-a").join("host-link")).unwrap();
    assert!(md.is_file());
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&md),
        e.sb.uid("link-a").unwrap()
    );
    e.still_works("link-b").await;
    e.stop().await;
}

#[tokio::test]
async fn no_user_namespaces_ptrace_or_dangerous_syscalls() {
    let e = env().await;
    let py = r#"
import ctypes, os, subprocess, time
libc = ctypes.CDLL(None, use_errno=True)
def sc(name, nr, *args):
    r = libc.syscall(nr, *args)
    print(name, r, ctypes.get_errno())
sib = subprocess.Popen(["sleep", "30"])
time.sleep(0.2)
r = libc.ptrace(16, sib.pid, 0, 0)
print("ptrace", r, ctypes.get_errno())
sc("bpf", 321, 0, 0, 0)
sc("keyctl", 250, 0, 0, 0)
sc("perf_event_open", 298, 0, 0, -1, -1, 0)
sc("userfaultfd", 323, 0)
sc("io_uring_setup", 425, 1, 0)
sc("unshare_user", 272, 0x10000000)
sc("mount", 165, 0, 0, 0, 0, 0)
sib.kill()
"#;
    std::fs::create_dir_all(e.st.project_dir("sys-a")).unwrap();
    std::fs::write(e.st.project_dir("sys-a").join("s.py"), py).unwrap();
    let (out, err, _) = e
        .exec(
            "sys-a",
            "unshare -U true; echo unshare=$?; unshare -Ur id; echo unshare_r=$?; python3 s.py",
            60,
        )
        .await;
    assert!(out.contains("unshare=1"), "{out}{err}");
    assert!(out.contains("unshare_r=1"), "{out}{err}");
    for name in [
        "ptrace",
        "bpf",
        "keyctl",
        "perf_event_open",
        "userfaultfd",
        "io_uring_setup",
        "unshare_user",
        "mount",
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing: {out}{err}"));
        assert!(
            line.ends_with(" -1 1"),
            "{name} must fail with EPERM: {line}"
        );
    }
    e.still_works("sys-b").await;
    e.stop().await;
}

#[tokio::test]
async fn a_gibibyte_of_output_is_truncated() {
    let e = env().await;
    let (s, body) = call(
        &e.st,
        "POST",
        "/projects/out-a/exec",
        json!({"command": "head -c 1G /dev/zero | tr '\\0' x; echo finished >&2", "timeout_s": 300}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        body.len() < 3 * 1024 * 1024,
        "response is {} bytes",
        body.len()
    );
    let ev = ndjson(&body);
    let exit = exit_of(&ev);
    assert_eq!(exit["truncated"], true);
    assert_eq!(exit["exit_code"], 0);
    e.still_works("out-b").await;
    e.stop().await;
}

#[tokio::test]
async fn disk_quota_stops_a_project_filling_the_disk() {
    let e = env().await;
    // Each file stays under the 16 MiB file limit; together they pass the 64 MiB quota.
    let (_, _, exit) = e
        .exec(
            "disk-a",
            "for i in 1 2 3 4 5 6 7 8; do head -c 12M /dev/urandom > f$i; done; sleep 100",
            120,
        )
        .await;
    assert_eq!(exit["timed_out"], false, "the quota watcher ended it");
    let (s, v) = call_json(
        &e.st,
        "POST",
        "/projects/disk-a/exec",
        json!({"command": "echo hi"}),
    )
    .await;
    assert_eq!(s, StatusCode::INSUFFICIENT_STORAGE, "{v}");
    assert_eq!(v["error"]["code"], "disk_quota_exceeded");
    e.still_works("disk-b").await;
    e.stop().await;
}

#[tokio::test]
async fn missing_mechanism_refuses_commands() {
    let tmp = tempfile::tempdir().unwrap();
    // The namespace directory cannot be created: the sandbox must refuse, not degrade.
    std::fs::create_dir_all(tmp.path().join("sandbox")).unwrap();
    std::fs::write(tmp.path().join("sandbox").join("netns"), "").unwrap();
    let sb = vm_api::sandbox::choose(vm_api::sandbox::Mode::Hardened, false, tmp.path(), small());
    assert_eq!(sb.name(), "unavailable");
    let st = Arc::new(AppState::new(SECRET.to_vec(), tmp.path().to_path_buf(), sb));
    let (s, v) = call_json(&st, "POST", "/projects/p/exec", json!({"command": "true"})).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("hardened sandbox unavailable"), "{msg}");
    assert!(msg.contains("netns"), "names the mechanism: {msg}");
}
