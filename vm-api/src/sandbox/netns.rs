//! One network namespace per project, with user-mode NAT (slirp4netns, host loopback disabled)
//! as its only way out and `prohibit` routes for private, link-local and the host's own
//! addresses. The preview proxy reaches a dev server by opening its socket inside the
//! namespace, so nothing a project listens on is ever exposed on the host.

use super::SandboxError;
use std::collections::HashMap;
use std::io::Write;
use std::net::{Ipv4Addr, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The DNS forwarder slirp4netns offers inside the namespace.
pub const SLIRP_DNS: &str = "10.0.2.3";

/// Destinations a project may never reach, whatever DNS says. (10.0.2.0/24, slirp's own link,
/// stays reachable through its more specific route; slirp refuses its host-loopback alias.)
pub const BLOCKED_RANGES: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8", // only via `lo`; this catches other routes to it
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
];

pub struct Tools {
    pub slirp4netns: PathBuf,
    pub unshare: PathBuf,
    pub nsenter: PathBuf,
    pub ip: PathBuf,
}

fn find(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

impl Tools {
    /// The helper programs, or the name of the first one missing.
    pub fn detect() -> Result<Tools, String> {
        let need = |n: &str, pkg: &str| {
            find(n).ok_or_else(|| format!("{n} is not installed (apt-get install {pkg})"))
        };
        Ok(Tools {
            slirp4netns: need("slirp4netns", "slirp4netns")?,
            unshare: need("unshare", "util-linux")?,
            nsenter: need("nsenter", "util-linux")?,
            ip: need("ip", "iproute2")?,
        })
    }
}

struct ProjectNet {
    path: PathBuf,
    ns: OwnedFd,
    slirp: Mutex<Child>,
    /// slirp4netns exits when this (our end of its exit pipe) closes, even if we are killed.
    _exit_w: OwnedFd,
}

impl ProjectNet {
    fn alive(&self) -> bool {
        matches!(
            self.slirp
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .try_wait(),
            Ok(None)
        )
    }
}

pub struct Networks {
    tools: Tools,
    dir: PathBuf,
    nets: Mutex<HashMap<String, Arc<ProjectNet>>>,
}

fn mech(detail: impl std::fmt::Display) -> SandboxError {
    SandboxError::mechanism("network namespace (slirp4netns)", detail)
}

/// The host's own IPv4 addresses: slirp connects from the host, so these would reach services
/// bound to them.
fn host_addrs(ip: &Path) -> Vec<Ipv4Addr> {
    let out = Command::new(ip)
        .args(["-o", "-4", "addr", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            it.position(|w| w == "inet")?;
            it.next()?.split('/').next()?.parse().ok()
        })
        .collect()
}

fn unmount(path: &Path) {
    let _ = rustix::mount::unmount(path, rustix::mount::UnmountFlags::DETACH);
    let _ = std::fs::remove_file(path);
}

impl Networks {
    pub fn new(tools: Tools, dir: PathBuf) -> std::io::Result<Networks> {
        std::fs::create_dir_all(&dir)?;
        Ok(Networks {
            tools,
            dir,
            nets: Mutex::new(HashMap::new()),
        })
    }

    /// The project's namespace (an fd to `setns` into), created with its NAT on first use and
    /// recreated if its slirp4netns died.
    pub fn ensure(&self, project: &str) -> Result<OwnedFd, SandboxError> {
        let mut nets = self.nets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = nets.get(project) {
            if n.alive() {
                return n.ns.try_clone().map_err(mech);
            }
            tracing::warn!(
                project,
                "slirp4netns of the project died; recreating its network"
            );
            if let Some(n) = nets.remove(project) {
                self.teardown(&n);
            }
        }
        let net = self.create(project)?;
        let fd = net.ns.try_clone().map_err(mech)?;
        nets.insert(project.to_string(), Arc::new(net));
        Ok(fd)
    }

    fn create(&self, project: &str) -> Result<ProjectNet, SandboxError> {
        let path = self.dir.join(project);
        unmount(&path);
        std::fs::write(&path, b"").map_err(mech)?;
        let st = Command::new(&self.tools.unshare)
            .arg(format!("--net={}", path.display()))
            .arg("true")
            .status()
            .map_err(mech)?;
        if !st.success() {
            unmount(&path);
            return Err(mech(format!("unshare --net failed: {st}")));
        }
        let routes = self.routes_script();
        let ok = Command::new(&self.tools.nsenter)
            .arg(format!("--net={}", path.display()))
            .arg(&self.tools.ip)
            .args(["-batch", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                if let Some(mut i) = c.stdin.take() {
                    i.write_all(routes.as_bytes())?;
                }
                c.wait_with_output()
            })
            .map_err(mech)?;
        if !ok.status.success() {
            unmount(&path);
            return Err(mech(format!(
                "setting routes: {}",
                String::from_utf8_lossy(&ok.stderr).trim()
            )));
        }
        let (exit_r, exit_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| mech(std::io::Error::from(e)))?;
        let (ready_r, ready_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| mech(std::io::Error::from(e)))?;
        let log = std::fs::File::create(self.dir.join(format!("{project}.log"))).map_err(mech)?;
        let mut cmd = Command::new(&self.tools.slirp4netns);
        cmd.args([
            "--configure",
            "--mtu=65520",
            "--disable-host-loopback",
            "--enable-sandbox",
            "--enable-seccomp",
        ])
        .arg(format!("--exit-fd={}", exit_r.as_raw_fd()))
        .arg(format!("--ready-fd={}", ready_w.as_raw_fd()))
        .args(["--netns-type=path"])
        .arg(&path)
        .arg("tap0")
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(mech)?)
        .stderr(log)
        .process_group(0);
        let (er, rw) = (exit_r.as_raw_fd(), ready_w.as_raw_fd());
        // SAFETY: only async-signal-safe fcntl calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                for fd in [er, rw] {
                    if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(mech)?;
        drop((exit_r, ready_w));
        // slirp4netns writes "1" once the interface is configured.
        let pfd = rustix::event::PollFd::new(&ready_r, rustix::event::PollFlags::IN);
        let ready = rustix::event::poll(
            &mut [pfd],
            Some(&rustix::event::Timespec {
                tv_sec: 10,
                tv_nsec: 0,
            }),
        )
        .unwrap_or(0)
            > 0
            && {
                let mut b = [0u8; 1];
                rustix::io::read(&ready_r, &mut b).unwrap_or(0) == 1
            };
        if !ready {
            let _ = child.kill();
            let _ = child.wait();
            unmount(&path);
            return Err(mech(format!(
                "slirp4netns did not come up (see {})",
                self.dir.join(format!("{project}.log")).display()
            )));
        }
        // Only now: a prohibit route to the gateway before slirp configured the default route
        // would make that route invalid. Connections to the gateway itself would otherwise be
        // answered by slirp's own TCP stack (a confusing half-open "success").
        let late = Command::new(&self.tools.nsenter)
            .arg(format!("--net={}", path.display()))
            .arg(&self.tools.ip)
            .args(["route", "add", "prohibit", "10.0.2.2/32"])
            .output()
            .map_err(mech)?;
        if !late.status.success() {
            let _ = child.kill();
            let _ = child.wait();
            unmount(&path);
            return Err(mech(format!(
                "blocking the gateway: {}",
                String::from_utf8_lossy(&late.stderr).trim()
            )));
        }
        let ns = std::fs::File::open(&path).map_err(mech)?.into();
        Ok(ProjectNet {
            path,
            ns,
            slirp: Mutex::new(child),
            _exit_w: exit_w,
        })
    }

    fn routes_script(&self) -> String {
        let mut s = String::from("link set lo up\n");
        for r in BLOCKED_RANGES {
            s.push_str(&format!("route add prohibit {r}\n"));
        }
        for a in host_addrs(&self.tools.ip) {
            if !a.is_loopback() {
                s.push_str(&format!("route add prohibit {a}/32\n"));
            }
        }
        s
    }

    fn teardown(&self, n: &ProjectNet) {
        let mut c = n.slirp.lock().unwrap_or_else(|p| p.into_inner());
        let _ = c.kill();
        let _ = c.wait();
        unmount(&n.path);
    }

    /// Connects to `127.0.0.1:port` inside the project's namespace: a fresh thread joins the
    /// namespace, opens the socket (which stays in that namespace) and ends.
    pub fn connect(&self, project: &str, port: u16) -> std::io::Result<TcpStream> {
        let ns = {
            let nets = self.nets.lock().unwrap_or_else(|p| p.into_inner());
            let n = nets.get(project).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "the project has no network (nothing started)",
                )
            })?;
            n.ns.try_clone()?
        };
        std::thread::spawn(move || {
            // SAFETY: setns on this short-lived thread only; the fd is valid for the call.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let t = Duration::from_secs(5);
            TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), t).or_else(|e| {
                TcpStream::connect_timeout(&(std::net::Ipv6Addr::LOCALHOST, port).into(), t)
                    .map_err(|_| e)
            })
        })
        .join()
        .map_err(|_| std::io::Error::other("connect thread panicked"))?
    }

    /// Stops the project's NAT and removes its namespace (the next `ensure` recreates both).
    pub fn remove(&self, project: &str) -> bool {
        let n = self
            .nets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(project);
        match n {
            Some(n) => {
                self.teardown(&n);
                true
            }
            None => false,
        }
    }

    /// Whether the project has a namespace whose NAT is alive.
    pub fn has(&self, project: &str) -> bool {
        self.nets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(project)
            .is_some_and(|n| n.alive())
    }

    /// Stops every NAT and removes every namespace.
    pub fn shutdown(&self) {
        let all: Vec<_> = self
            .nets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for (_, n) in all {
            self.teardown(&n);
        }
    }
}
