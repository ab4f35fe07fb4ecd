//! The hardened sandbox: the first-layer bubblewrap mounts plus, per project, its own uid/gid,
//! network namespace (NAT without host or private access), cgroups (memory, pids, cpu),
//! rlimits (cpu time, file size, processes), a size-limited `/tmp`, a disk quota and a seccomp
//! deny-list. Every mechanism the configuration asks for is required: if one is missing at
//! startup the service refuses commands; if one fails for a command, that command is refused.

use super::cgroup::{CgroupLimits, Cgroups};
use super::identity::{self, UidMap};
use super::netns::{Networks, Tools, SLIRP_DNS};
use super::{bwrap_args, pass_fds, Bwrap, BwrapArgs, CommandSpec, Layout, Sandbox, SandboxError};
use std::collections::{BTreeSet, HashMap};
use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::process::Command;

const MIB: u64 = 1024 * 1024;

/// Resource limits and identity settings; `0` disables a limit (and the need for the
/// mechanism that enforces it). Defaults are what `vm-api --help` documents.
#[derive(Debug, Clone)]
pub struct HardenedConfig {
    /// Memory (RAM + swap) of all of a project's processes together (cgroup), MiB.
    pub memory_mb: u64,
    /// Processes/threads of a project (cgroup pids + RLIMIT_NPROC of its uid).
    pub pids: u64,
    /// CPU seconds per process (RLIMIT_CPU; SIGXCPU, then SIGKILL 5 s later).
    pub cpu_time_s: u64,
    /// Share of one core a project may use, percent (cgroup cpu quota; 100 = one core).
    pub cpu_percent: u64,
    /// Largest file a command may write (RLIMIT_FSIZE), MiB.
    pub file_size_mb: u64,
    /// Disk used by the working copy plus the project's home (caches), MiB.
    pub disk_quota_mb: u64,
    /// How often running projects' disk use is re-checked, seconds.
    pub disk_check_interval_s: u64,
    /// Size of `/tmp` and of `/var/tmp` (tmpfs), MiB.
    pub tmp_size_mb: u64,
    /// First uid of the range project uids are hashed into.
    pub uid_base: u32,
}

impl Default for HardenedConfig {
    fn default() -> Self {
        HardenedConfig {
            memory_mb: 2048,
            pids: 512,
            cpu_time_s: 3600,
            cpu_percent: 100,
            file_size_mb: 1024,
            disk_quota_mb: 4096,
            disk_check_interval_s: 10,
            tmp_size_mb: 256,
            uid_base: identity::DEFAULT_UID_BASE,
        }
    }
}

struct Shared {
    cgroups: Cgroups,
    /// Projects that ran something: every directory their commands were given (working copy,
    /// home, deployment build directories), for the disk check; removed ones are dropped.
    dirs: Mutex<HashMap<String, BTreeSet<PathBuf>>>,
    /// Each project's last measured usage and when: a command's start reuses a measurement
    /// under the quota for [`USAGE_REUSE`] instead of walking the working copy and its caches
    /// (tens of thousands of files with node_modules and .venv) every time.
    measured: Mutex<HashMap<String, (Instant, u64)>>,
    quota_bytes: u64,
    stop: AtomicBool,
}

/// How long a measurement under the quota stands in for a new walk when a command starts. The
/// disk watcher measures running projects every few seconds and kills an offender, so a command
/// started on a measurement this old cannot keep a project over its quota.
const USAGE_REUSE: Duration = Duration::from_secs(5);

impl Shared {
    fn usage(&self, project: &str) -> Option<u64> {
        let dirs: Vec<PathBuf> = {
            let mut m = self.dirs.lock().unwrap_or_else(|e| e.into_inner());
            let set = m.get_mut(project)?;
            set.retain(|d| d.exists());
            set.iter().cloned().collect()
        };
        let used: u64 = dirs.iter().map(|d| identity::disk_usage(d)).sum();
        self.measured
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(project.to_string(), (Instant::now(), used));
        Some(used)
    }

    /// The project's usage for a command about to start: a recent measurement when it was under
    /// the quota, else a new one (so files deleted to get under it count at once).
    fn usage_for_start(&self, project: &str) -> Option<u64> {
        let recent = self
            .measured
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(project)
            .filter(|(at, used)| at.elapsed() < USAGE_REUSE && *used <= self.quota_bytes)
            .map(|(_, used)| *used);
        recent.or_else(|| self.usage(project))
    }
}

pub struct Hardened {
    bwrap: PathBuf,
    setpriv: PathBuf,
    cfg: HardenedConfig,
    etc_dir: PathBuf,
    resolv: PathBuf,
    uids: UidMap,
    nets: Networks,
    seccomp: Vec<Vec<u8>>,
    shared: Arc<Shared>,
    watcher: Mutex<Option<std::thread::JoinHandle<()>>>,
    shut: AtomicBool,
}

fn find(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

impl Hardened {
    /// Checks every mechanism `cfg` requires; the error names the first one missing.
    pub fn new(data_dir: &Path, cfg: HardenedConfig) -> Result<Hardened, String> {
        if !rustix::process::geteuid().is_root() {
            return Err(
                "the hardened sandbox needs root (it gives each project its own uid, \
                        network namespace and cgroups)"
                    .into(),
            );
        }
        let bwrap = Bwrap::detect()
            .ok_or("bubblewrap (bwrap) is not installed (apt-get install bubblewrap)")?
            .bwrap;
        let setpriv = find("setpriv").ok_or("setpriv is not installed (util-linux)")?;
        let seccomp = super::seccomp::programs()?;
        let tools = Tools::detect()?;
        let dir = data_dir.join("sandbox");
        let io = |p: &Path| {
            let p = p.display().to_string();
            move |e: std::io::Error| format!("{p}: {e}")
        };
        let uids = UidMap::new(dir.join("uids"), cfg.uid_base).map_err(io(&dir.join("uids")))?;
        let nets = Networks::new(tools, dir.join("netns")).map_err(io(&dir.join("netns")))?;
        let etc_dir = dir.join("etc");
        std::fs::create_dir_all(&etc_dir).map_err(io(&etc_dir))?;
        let resolv = etc_dir.join("resolv.conf");
        std::fs::write(&resolv, format!("nameserver {SLIRP_DNS}\n")).map_err(io(&resolv))?;
        // One parent group per service instance (named after its data dir), so two instances
        // on one machine never share or remove each other's groups.
        let tag = open_replit_core::vm_auth::hex(&sha2::Digest::finalize(
            <sha2::Sha256 as sha2::Digest>::new_with_prefix(
                data_dir.as_os_str().as_encoded_bytes(),
            ),
        ));
        let cgroups = Cgroups::detect(
            &format!("open-replit-{}", &tag[..12]),
            CgroupLimits {
                memory_bytes: cfg.memory_mb * MIB,
                pids: cfg.pids,
                cpu_percent: cfg.cpu_percent,
            },
        )?;
        let shared = Arc::new(Shared {
            cgroups,
            dirs: Mutex::new(HashMap::new()),
            measured: Mutex::new(HashMap::new()),
            quota_bytes: cfg.disk_quota_mb * MIB,
            stop: AtomicBool::new(false),
        });
        let watcher = (cfg.disk_quota_mb > 0 && cfg.disk_check_interval_s > 0).then(|| {
            let sh = shared.clone();
            let every = Duration::from_secs(cfg.disk_check_interval_s);
            std::thread::spawn(move || disk_watcher(sh, every))
        });
        Ok(Hardened {
            bwrap,
            setpriv,
            cfg,
            etc_dir,
            resolv,
            uids,
            nets,
            seccomp,
            shared,
            watcher: Mutex::new(watcher),
            shut: AtomicBool::new(false),
        })
    }

    /// The uid (= gid) the project's commands run as.
    pub fn uid(&self, project: &str) -> Result<u32, SandboxError> {
        self.uids.uid(project)
    }

    /// Processes currently in the project's cgroups (for tests and diagnostics).
    pub fn cgroup_pids(&self, project: &str) -> Vec<i32> {
        self.shared.cgroups.pids(project)
    }

    fn etc_files(&self, project: &str, uid: u32) -> Result<(PathBuf, PathBuf), SandboxError> {
        let d = self.etc_dir.join(project);
        let (passwd, group) = (d.join("passwd"), d.join("group"));
        if !group.exists() {
            // Written aside and renamed in: a second command starting at the same moment never
            // sees (or copies into its sandbox) a half-written file.
            static SEQ: AtomicU64 = AtomicU64::new(0);
            let (p, g) = identity::passwd_and_group(uid);
            let put = |path: &Path, text: String| {
                let n = SEQ.fetch_add(1, Ordering::Relaxed);
                let tmp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
                std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path))
            };
            std::fs::create_dir_all(&d)
                .and_then(|()| put(&passwd, p))
                .and_then(|()| put(&group, g))
                .map_err(|e| SandboxError::mechanism("per-project /etc/passwd", e))?;
        }
        Ok((passwd, group))
    }

    fn seccomp_fds(&self) -> Result<Vec<OwnedFd>, SandboxError> {
        let mech = |e: std::io::Error| SandboxError::mechanism("seccomp", e);
        self.seccomp
            .iter()
            .map(|prog| {
                let fd = rustix::fs::memfd_create("seccomp", rustix::fs::MemfdFlags::CLOEXEC)
                    .map_err(|e| mech(e.into()))?;
                let mut f = std::fs::File::from(fd);
                std::io::Write::write_all(&mut f, prog).map_err(mech)?;
                std::io::Seek::rewind(&mut f).map_err(mech)?;
                Ok(OwnedFd::from(f))
            })
            .collect()
    }
}

fn disk_watcher(sh: Arc<Shared>, every: Duration) {
    let step = Duration::from_millis(200);
    let mut waited = Duration::ZERO;
    while !sh.stop.load(Ordering::Relaxed) {
        std::thread::sleep(step);
        waited += step;
        if waited < every {
            continue;
        }
        waited = Duration::ZERO;
        let projects: Vec<String> = sh
            .dirs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        for p in projects {
            if sh.cgroups.pids(&p).is_empty() {
                continue;
            }
            if let Some(used) = sh.usage(&p) {
                if used > sh.quota_bytes {
                    tracing::warn!(
                        project = %p,
                        used,
                        quota = sh.quota_bytes,
                        "disk quota exceeded: killing the project's processes"
                    );
                    sh.cgroups.kill_all(&p);
                }
            }
        }
    }
}

struct Rlimit {
    resource: libc::__rlimit_resource_t,
    soft: u64,
    hard: u64,
}

impl Hardened {
    /// The sandboxed command; `interactive` keeps it in the caller's session (see
    /// `Sandbox::interactive_command`).
    fn build(&self, spec: &CommandSpec<'_>, interactive: bool) -> Result<Command, SandboxError> {
        if self.shut.load(Ordering::Relaxed) {
            return Err(SandboxError::Unavailable(
                "the sandbox is shutting down".into(),
            ));
        }
        let project = spec.project_id;
        let uid = self.uids.uid(project)?;
        self.prepare_project(project, spec.project_dir, spec.home_dir)?;
        self.shared
            .dirs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(project.to_string())
            .or_default()
            .extend([spec.project_dir.to_path_buf(), spec.home_dir.to_path_buf()]);
        if self.cfg.disk_quota_mb > 0 {
            let used = self.shared.usage_for_start(project).unwrap_or(0);
            if used > self.shared.quota_bytes {
                return Err(SandboxError::QuotaExceeded(format!(
                    "project {project} uses {} MiB of its {} MiB (working copy and caches); \
                     delete files (e.g. node_modules) to run commands again",
                    used / MIB,
                    self.cfg.disk_quota_mb
                )));
            }
        }
        let (passwd, group) = self.etc_files(project, uid)?;
        let cgroup_joins: Vec<CString> = self.shared.cgroups.ensure(project)?;
        let netns: OwnedFd = self.nets.ensure(project)?;
        let seccomp = self.seccomp_fds()?;

        let mut options: Vec<OsString> = Vec::new();
        // setpriv needs these to switch to the project's uid; it drops them all.
        for cap in ["CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"] {
            options.extend(["--cap-add".into(), cap.into()]);
        }
        for fd in &seccomp {
            options.extend(["--add-seccomp-fd".into(), fd.as_raw_fd().to_string().into()]);
        }
        let id = uid.to_string();
        let layout = Layout {
            options,
            etc_overrides: vec![
                (passwd, "passwd"),
                (group, "group"),
                (self.resolv.clone(), "resolv.conf"),
            ],
            tmp_size: (self.cfg.tmp_size_mb > 0).then_some(self.cfg.tmp_size_mb * MIB),
            env: vec![
                ("USER".into(), "user".into()),
                ("LOGNAME".into(), "user".into()),
                ("NPM_CONFIG_CACHE".into(), "/home/user/.npm".into()),
                ("NPM_CONFIG_UPDATE_NOTIFIER".into(), "false".into()),
                ("PIP_CACHE_DIR".into(), "/home/user/.cache/pip".into()),
            ],
            exec_prefix: [
                self.setpriv.as_os_str().to_os_string(),
                format!("--reuid={id}").into(),
                format!("--regid={id}").into(),
                "--clear-groups".into(),
                "--inh-caps=-all".into(),
                "--bounding-set=-all".into(),
                "--no-new-privs".into(),
                "--".into(),
            ]
            .into(),
            interactive,
        };
        let mut limits = vec![Rlimit {
            resource: libc::RLIMIT_CORE,
            soft: 0,
            hard: 0,
        }];
        if self.cfg.pids > 0 {
            // Counted per uid, i.e. per project, across all of its commands.
            limits.push(Rlimit {
                resource: libc::RLIMIT_NPROC,
                soft: self.cfg.pids,
                hard: self.cfg.pids,
            });
        }
        if self.cfg.cpu_time_s > 0 {
            limits.push(Rlimit {
                resource: libc::RLIMIT_CPU,
                soft: self.cfg.cpu_time_s,
                hard: self.cfg.cpu_time_s + 5,
            });
        }
        if self.cfg.file_size_mb > 0 {
            let b = self.cfg.file_size_mb * MIB;
            limits.push(Rlimit {
                resource: libc::RLIMIT_FSIZE,
                soft: b,
                hard: b,
            });
        }

        let BwrapArgs { args, fds } = bwrap_args(spec, &layout)?;
        let mut cmd = Command::new(&self.bwrap);
        cmd.env_clear().args(args);
        pass_fds(&mut cmd, fds);
        let keep: Vec<i32> = seccomp.iter().map(|f| f.as_raw_fd()).collect();
        let net_fd = netns.as_raw_fd();
        // SAFETY: between fork and exec only async-signal-safe syscalls run (setns, open,
        // write, close, setrlimit, fcntl) on data prepared before the fork; the closure owns
        // the fds, which stay open until the command is dropped after spawning.
        unsafe {
            cmd.pre_exec(move || {
                let _own = (&netns, &seccomp);
                let err = std::io::Error::last_os_error;
                if libc::setns(net_fd, libc::CLONE_NEWNET) != 0 {
                    return Err(err());
                }
                for path in &cgroup_joins {
                    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        return Err(err());
                    }
                    let ok = libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
                    libc::close(fd);
                    if !ok {
                        return Err(err());
                    }
                }
                for l in &limits {
                    let r = libc::rlimit {
                        rlim_cur: l.soft,
                        rlim_max: l.hard,
                    };
                    if libc::setrlimit(l.resource, &r) != 0 {
                        return Err(err());
                    }
                }
                for fd in &keep {
                    if libc::fcntl(*fd, libc::F_SETFD, 0) != 0 {
                        return Err(err());
                    }
                }
                Ok(())
            });
        }
        Ok(cmd)
    }
}

impl Sandbox for Hardened {
    fn name(&self) -> &'static str {
        "bwrap-hardened"
    }

    fn command(&self, spec: &CommandSpec<'_>) -> Result<Command, SandboxError> {
        self.build(spec, false)
    }

    fn interactive_command(&self, spec: &CommandSpec<'_>) -> Result<Command, SandboxError> {
        self.build(spec, true)
    }

    fn prepare_project(
        &self,
        project_id: &str,
        project_dir: &Path,
        home_dir: &Path,
    ) -> Result<(), SandboxError> {
        let uid = self.uids.uid(project_id)?;
        for d in [project_dir, home_dir] {
            identity::own_dir(d, uid).map_err(|e| {
                SandboxError::mechanism("per-project uid", format!("{}: {e}", d.display()))
            })?;
        }
        Ok(())
    }

    fn adopt_paths(
        &self,
        project_id: &str,
        project_dir: &Path,
        paths: &[String],
    ) -> Result<(), SandboxError> {
        let uid = self.uids.uid(project_id)?;
        for p in paths {
            identity::own_path(project_dir, p, uid).map_err(|e| {
                SandboxError::mechanism("per-project uid", format!("chown {p}: {e}"))
            })?;
        }
        Ok(())
    }

    fn connect(&self, project_id: &str, port: u16) -> std::io::Result<std::net::TcpStream> {
        self.nets.connect(project_id, port)
    }

    fn project_uid(&self, project_id: &str) -> Option<u32> {
        self.uids.uid(project_id).ok()
    }

    fn kill_project(&self, project_id: &str) {
        self.shared.cgroups.kill_all(project_id);
    }

    fn release_project(&self, project_id: &str) {
        self.nets.remove(project_id);
    }

    fn forget_project(&self, project_id: &str) {
        self.shared.cgroups.remove(project_id);
        self.shared
            .dirs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(project_id);
        if crate::error::check_project_id(project_id).is_ok() {
            let _ = std::fs::remove_dir_all(self.etc_dir.join(project_id));
        }
    }

    fn has_network(&self, project_id: &str) -> bool {
        self.nets.has(project_id)
    }

    fn project_pids(&self, project_id: &str) -> Option<usize> {
        Some(self.cgroup_pids(project_id).len())
    }

    fn shutdown(&self) {
        if self.shut.swap(true, Ordering::SeqCst) {
            return;
        }
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self
            .watcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = h.join();
        }
        self.shared.cgroups.remove_all();
        self.nets.shutdown();
    }
}

impl Drop for Hardened {
    fn drop(&mut self) {
        self.shutdown();
    }
}
