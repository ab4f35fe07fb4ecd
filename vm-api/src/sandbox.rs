//! Where commands run: the `Sandbox` trait, the first-layer bubblewrap implementation
//! (`Bwrap`), the hardened one (`hardened::Hardened`: per-project uid, network namespace,
//! cgroups, rlimits, seccomp), the explicit insecure fallback and the "refuse everything"
//! stand-in used when a required mechanism is missing.

pub mod cgroup;
pub mod hardened;
pub mod identity;
pub mod netns;
pub mod seccomp;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tokio::process::Command;

/// Where the project's working copy appears inside the sandbox.
pub const PROJECT_MOUNT: &str = "/project";
/// The project's persistent home (npm/pip caches) inside the sandbox.
pub const HOME_MOUNT: &str = "/home/user";
const SAFE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One shell command to run for a project.
#[derive(Debug, Clone)]
pub struct CommandSpec<'a> {
    /// Validated project id.
    pub project_id: &'a str,
    /// Host path of the project's working copy.
    pub project_dir: &'a Path,
    /// Host path of the project's home directory (outside the working copy).
    pub home_dir: &'a Path,
    /// Validated project-relative directory; `""` is the project root.
    pub cwd: &'a str,
    /// Run with `sh -c`.
    pub shell: &'a str,
    /// Validated user environment, applied on top of the safe base environment.
    pub env: &'a BTreeMap<String, String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SandboxError {
    #[error("sandbox unavailable: {0}")]
    Unavailable(String),
    /// A protection the configuration requires could not be set up: the command is refused.
    #[error("sandbox mechanism {mechanism} unavailable: {detail}")]
    Mechanism {
        mechanism: &'static str,
        detail: String,
    },
    #[error("disk quota exceeded: {0}")]
    QuotaExceeded(String),
}

impl SandboxError {
    pub fn mechanism(mechanism: &'static str, detail: impl std::fmt::Display) -> Self {
        SandboxError::Mechanism {
            mechanism,
            detail: detail.to_string(),
        }
    }
    /// Stable error code for the API.
    pub fn code(&self) -> &'static str {
        match self {
            SandboxError::Unavailable(_) => "no_sandbox",
            SandboxError::Mechanism { .. } => "sandbox_mechanism_unavailable",
            SandboxError::QuotaExceeded(_) => "disk_quota_exceeded",
        }
    }
    /// HTTP status for the API.
    pub fn status(&self) -> axum::http::StatusCode {
        match self {
            SandboxError::QuotaExceeded(_) => axum::http::StatusCode::INSUFFICIENT_STORAGE,
            _ => axum::http::StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// Where a project's commands run. Deliberately narrow (build a command, prepare a project's
/// directories, hand files to the project, connect to a project's port, shut down) so that an
/// implementation can be a micro-VM per project instead of namespaces on a shared kernel.
pub trait Sandbox: Send + Sync {
    fn name(&self) -> &'static str;
    /// Builds the process for a command; the caller sets stdio, the process group and spawns it.
    fn command(&self, spec: &CommandSpec<'_>) -> Result<Command, SandboxError>;
    /// Like `command`, for a command that runs on a terminal the caller makes its controlling
    /// terminal (the `pty` shell): the same limits, but it stays in the caller's session so job
    /// control works. (`--new-session` guards a terminal shared with the host against
    /// `TIOCSTI`; this terminal belongs to the sandbox alone.)
    fn interactive_command(&self, spec: &CommandSpec<'_>) -> Result<Command, SandboxError> {
        self.command(spec)
    }
    /// Called whenever the service creates or uses a project's directories.
    fn prepare_project(
        &self,
        _project_id: &str,
        _project_dir: &Path,
        _home_dir: &Path,
    ) -> Result<(), SandboxError> {
        Ok(())
    }
    /// The service wrote `paths` (project-relative) into the working copy: hand them (and
    /// their parent directories) to the project's identity, never following symlinks.
    fn adopt_paths(
        &self,
        _project_id: &str,
        _project_dir: &Path,
        _paths: &[String],
    ) -> Result<(), SandboxError> {
        Ok(())
    }
    /// Connects to `port` of the project's network (the preview proxy's only way in).
    fn connect(&self, _project_id: &str, port: u16) -> std::io::Result<std::net::TcpStream> {
        let t = std::time::Duration::from_secs(5);
        std::net::TcpStream::connect_timeout(&(std::net::Ipv4Addr::LOCALHOST, port).into(), t)
            .or_else(|_| {
                std::net::TcpStream::connect_timeout(
                    &(std::net::Ipv6Addr::LOCALHOST, port).into(),
                    t,
                )
            })
    }
    /// The project's own uid when this sandbox gives every project one (the shared
    /// dependency cache hands out read-only links only under such a sandbox).
    fn project_uid(&self, _project_id: &str) -> Option<u32> {
        None
    }
    /// Kills every process the project still has (used after a dependency build).
    fn kill_project(&self, _project_id: &str) {}
    /// Removes the project's per-project kernel objects that the next command recreates (its
    /// network namespace and NAT helper): the idle reaper's teardown.
    fn release_project(&self, _project_id: &str) {}
    /// Forgets a deleted project: after `kill_project` and `release_project`, whatever else the
    /// sandbox keeps for it (its cgroups, its `/etc` copies, its directories in the disk quota).
    /// Its uid stays recorded, so it is never handed to another project.
    fn forget_project(&self, _project_id: &str) {}
    /// Whether the project has a network namespace now.
    fn has_network(&self, _project_id: &str) -> bool {
        false
    }
    /// Processes in the project's sandbox now, when the sandbox can count them.
    fn project_pids(&self, _project_id: &str) -> Option<usize> {
        None
    }
    /// Stops helpers (network daemons) and removes per-project kernel objects.
    fn shutdown(&self) {}
}

fn base_env(home: &str) -> Vec<(String, String)> {
    vec![
        ("PATH".into(), SAFE_PATH.into()),
        ("HOME".into(), home.into()),
        ("LANG".into(), "C.UTF-8".into()),
        ("TERM".into(), "dumb".into()),
        ("TMPDIR".into(), "/tmp".into()),
    ]
}

/// bubblewrap: the project bound read-write at `/project`, its home at `/home/user`, system
/// directories read-only, a fresh `/tmp`, and nothing else of the host's filesystem. The
/// sandbox's root is a tmpfs made read-only once everything is in place; the allowed `/etc`
/// files are copied into it (see [`ETC_ALLOW`]), `/etc` directories and `/usr` are read-only
/// binds.
pub struct Bwrap {
    pub bwrap: PathBuf,
}

/// The part of `/etc` programs need for users, DNS, TLS roots, time zones and Debian's
/// alternatives symlinks; the rest (shadow, ssh keys, service configs) stays hidden.
/// Directories are read-only binds; files are copied into the sandbox's (then read-only) root
/// from a descriptor opened for each command (`--file`): bubblewrap re-reads
/// `/proc/self/mountinfo` after every bind mount, and one bind per file was the largest part of
/// a command's start (7.4 ms of CPU with binds, 4.3 ms with copies, measured 2026-12-02). A copy
/// shows the file as it was when the command started; a bind showed in-place edits but not a
/// file replaced by rename, which is how packages and tools update `/etc`.
const ETC_ALLOW: &[&str] = &[
    "passwd",
    "group",
    "hosts",
    "host.conf",
    "resolv.conf",
    "nsswitch.conf",
    "gai.conf",
    "protocols",
    "services",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "pki",
    "localtime",
    "timezone",
    "alternatives",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "mime.types",
    "os-release",
    "debian_version",
    "profile",
    "bash.bashrc",
    "inputrc",
    "python3",
    "python3.11",
];

impl Bwrap {
    /// Finds bwrap on the usual paths.
    pub fn detect() -> Option<Bwrap> {
        ["/usr/bin/bwrap", "/usr/local/bin/bwrap", "/bin/bwrap"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .map(|bwrap| Bwrap { bwrap })
    }

    /// The bwrap command for `spec` under `layout`.
    fn build(&self, spec: &CommandSpec<'_>, layout: &Layout) -> Result<Command, SandboxError> {
        let BwrapArgs { args, fds } = bwrap_args(spec, layout)?;
        let mut cmd = Command::new(&self.bwrap);
        cmd.env_clear().args(args);
        pass_fds(&mut cmd, fds);
        Ok(cmd)
    }
}

/// A bwrap command line and the descriptors it names (`--file`), which must reach bwrap: they
/// are opened close-on-exec (a command spawned meanwhile by another thread never inherits
/// them) and [`pass_fds`] clears the flag in the child. bwrap closes them after copying.
pub(crate) struct BwrapArgs {
    pub args: Vec<std::ffi::OsString>,
    pub fds: Vec<std::os::fd::OwnedFd>,
}

/// Lets `fds`, and no other descriptor beyond stdio, through `cmd`'s exec (and keeps them open
/// until `cmd` is dropped). Every other descriptor is marked close-on-exec first: one the
/// service inherited without the flag (from whatever started it) would otherwise reach every
/// command. Call before adding `pre_exec` steps that let further descriptors through.
pub(crate) fn pass_fds(cmd: &mut Command, fds: Vec<std::os::fd::OwnedFd>) {
    // SAFETY: only close_range and fcntl, async-signal-safe, run between fork and exec, on
    // descriptors the closure owns (so they are open until the command is dropped after
    // spawning).
    unsafe {
        cmd.pre_exec(move || {
            const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
            if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) != 0 {
                // Kernels before 5.11: mark them one by one.
                let max = match libc::sysconf(libc::_SC_OPEN_MAX) {
                    n if n > 0 => n.min(1 << 20) as i32,
                    _ => 1 << 16,
                };
                for fd in 3..max {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            for fd in &fds {
                if libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(fd), libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Opens an `/etc` file to copy into the sandbox: `Ok(None)` when it is missing or is not a
/// regular file (a directory is bound instead).
fn open_etc_file(path: &Path) -> std::io::Result<Option<std::os::fd::OwnedFd>> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = match std::fs::OpenOptions::new()
        .read(true)
        // Never block on a FIFO; O_CLOEXEC is std's default.
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !f.metadata()?.is_file() {
        return Ok(None);
    }
    Ok(Some(f.into()))
}

/// What the hardened sandbox changes in the bwrap command line; `Default` is the first layer.
#[derive(Default)]
pub(crate) struct Layout {
    /// Extra bwrap options before the mounts (e.g. `--cap-add`, `--add-seccomp-fd`).
    pub options: Vec<std::ffi::OsString>,
    /// `/etc` files replaced by generated ones: (host file, name under /etc).
    pub etc_overrides: Vec<(PathBuf, &'static str)>,
    /// Size of the `/tmp` and `/var/tmp` tmpfs in bytes (world-writable, sticky), if limited.
    pub tmp_size: Option<u64>,
    /// Extra environment on top of the base (before the request's).
    pub env: Vec<(String, String)>,
    /// Program and arguments the shell is started through (e.g. `setpriv ... --`).
    pub exec_prefix: Vec<std::ffi::OsString>,
    /// The command runs on its own terminal (see `Sandbox::interactive_command`): no
    /// `--new-session`.
    pub interactive: bool,
}

pub(crate) fn bwrap_args(
    spec: &CommandSpec<'_>,
    layout: &Layout,
) -> Result<BwrapArgs, SandboxError> {
    let mut a: Vec<std::ffi::OsString> = Vec::new();
    let mut fds: Vec<std::os::fd::OwnedFd> = Vec::new();
    let mut push = |xs: &[&dyn AsRef<std::ffi::OsStr>]| {
        for x in xs {
            a.push(x.as_ref().to_os_string());
        }
    };
    push(&[&"--die-with-parent"]);
    if !layout.interactive {
        push(&[&"--new-session"]);
    }
    push(&[
        &"--unshare-pid",
        &"--unshare-ipc",
        &"--unshare-uts",
        &"--unshare-cgroup-try",
        &"--hostname",
        &"sandbox",
        &"--clearenv",
    ]);
    for o in &layout.options {
        push(&[o]);
    }
    // bwrap makes missing parents of mount points 0700 (root-only): create them traversable
    // for the unprivileged project uid.
    for d in ["/etc", "/home", "/var"] {
        push(&[&"--perms", &"0755", &"--dir", &d]);
    }
    push(&[&"--ro-bind", &"/usr", &"/usr"]);
    // Debian 12 has merged /usr: /bin, /lib... are symlinks into it; mirror them as such.
    for top in ["/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"] {
        match std::fs::read_link(top) {
            Ok(target) => push(&[&"--symlink", &target, &top]),
            Err(_) if Path::new(top).is_dir() => push(&[&"--ro-bind", &top, &top]),
            Err(_) => {}
        }
    }
    for name in ETC_ALLOW {
        let p = format!("/etc/{name}");
        let file = match layout.etc_overrides.iter().find(|(_, n)| n == name) {
            Some((host, _)) => Some(
                open_etc_file(host)
                    .and_then(|f| f.ok_or_else(|| std::io::ErrorKind::NotFound.into()))
                    .map_err(|e| {
                        SandboxError::mechanism("sandbox /etc", format!("{}: {e}", host.display()))
                    })?,
            ),
            // Anything that cannot be copied (a directory, a file we cannot open) is bound as
            // before, and bwrap reports what is wrong with it.
            None => open_etc_file(Path::new(&p)).unwrap_or(None),
        };
        match file {
            Some(fd) => {
                let n = std::os::fd::AsRawFd::as_raw_fd(&fd).to_string();
                fds.push(fd);
                push(&[&"--perms", &"0644", &"--file", &n, &p]);
            }
            None => push(&[&"--ro-bind-try", &p, &p]),
        }
    }
    push(&[&"--proc", &"/proc", &"--dev", &"/dev"]);
    for tmp in ["/tmp", "/var/tmp"] {
        if let Some(size) = layout.tmp_size {
            push(&[&"--perms", &"1777", &"--size", &size.to_string()]);
        }
        push(&[&"--tmpfs", &tmp]);
    }
    push(&[
        &"--bind",
        &spec.project_dir,
        &PROJECT_MOUNT,
        &"--bind",
        &spec.home_dir,
        &HOME_MOUNT,
        // The root tmpfs (the `/etc` copies, the directories bwrap made) becomes read-only;
        // the mounts on it keep their own modes.
        &"--remount-ro",
        &"/",
    ]);
    let cwd = if spec.cwd.is_empty() {
        PROJECT_MOUNT.to_string()
    } else {
        format!("{PROJECT_MOUNT}/{}", spec.cwd)
    };
    push(&[&"--chdir", &cwd]);
    for (k, v) in base_env(HOME_MOUNT)
        .into_iter()
        .chain(layout.env.iter().cloned())
        .chain(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())))
    {
        push(&[&"--setenv", &k, &v]);
    }
    push(&[&"--"]);
    for p in &layout.exec_prefix {
        push(&[p]);
    }
    push(&[&"/bin/sh", &"-c", &spec.shell]);
    Ok(BwrapArgs { args: a, fds })
}

impl Sandbox for Bwrap {
    fn name(&self) -> &'static str {
        "bwrap"
    }
    fn command(&self, spec: &CommandSpec<'_>) -> Result<Command, SandboxError> {
        self.build(spec, &Layout::default())
    }
    fn interactive_command(&self, spec: &CommandSpec<'_>) -> Result<Command, SandboxError> {
        let layout = Layout {
            interactive: true,
            ..Layout::default()
        };
        self.build(spec, &layout)
    }
}

/// Runs commands directly on the host: only with `--insecure-no-sandbox`, warning every time.
pub struct Unsandboxed;

impl Sandbox for Unsandboxed {
    fn name(&self) -> &'static str {
        "none (insecure)"
    }
    fn command(&self, spec: &CommandSpec<'_>) -> Result<Command, SandboxError> {
        tracing::warn!(
            project_dir = %spec.project_dir.display(),
            "running a command WITHOUT a sandbox (--insecure-no-sandbox)"
        );
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(spec.shell).env_clear();
        let home = spec.home_dir.to_string_lossy().into_owned();
        cmd.envs(base_env(&home));
        cmd.envs(spec.env);
        cmd.current_dir(spec.project_dir.join(spec.cwd));
        Ok(cmd)
    }
}

/// Refuses every command: bwrap is missing and the insecure fallback was not requested.
pub struct Refuse(pub String);

impl Sandbox for Refuse {
    fn name(&self) -> &'static str {
        "unavailable"
    }
    fn command(&self, _spec: &CommandSpec<'_>) -> Result<Command, SandboxError> {
        Err(SandboxError::Unavailable(self.0.clone()))
    }
}

/// Which sandbox commands run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Per-project uid, network namespace, cgroups, rlimits and seccomp (the default).
    Hardened,
    /// The first layer only: bubblewrap mounts and namespaces, as root, host network.
    Basic,
}

/// Picks the sandbox at startup. A mechanism the chosen mode needs but the machine lacks makes
/// every command fail with an error naming it: the service never quietly runs with less.
pub fn choose(
    mode: Mode,
    insecure_no_sandbox: bool,
    data_dir: &Path,
    cfg: hardened::HardenedConfig,
) -> std::sync::Arc<dyn Sandbox> {
    if insecure_no_sandbox {
        tracing::warn!("--insecure-no-sandbox: commands run directly on the host");
        return std::sync::Arc::new(Unsandboxed);
    }
    if mode == Mode::Hardened {
        return match hardened::Hardened::new(data_dir, cfg) {
            Ok(h) => std::sync::Arc::new(h),
            Err(e) => {
                tracing::error!("hardened sandbox unavailable, every command will be refused: {e}");
                std::sync::Arc::new(Refuse(format!(
                    "hardened sandbox unavailable: {e} (install what is missing, or start the VM \
                     API with --sandbox basic to accept weaker isolation)"
                )))
            }
        };
    }
    match Bwrap::detect() {
        Some(b) => std::sync::Arc::new(b),
        None => {
            tracing::error!("bwrap not found: every command will be refused");
            std::sync::Arc::new(Refuse(
                "bubblewrap (bwrap) is not installed; install it (apt-get install bubblewrap) \
                 or start the VM API with --insecure-no-sandbox"
                    .into(),
            ))
        }
    }
}
