//! Where commands run: the `Sandbox` trait and its bubblewrap implementation, plus the explicit
//! insecure fallback and the "refuse everything" stand-in used when bwrap is missing.

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
}

/// Builds the process for a command; the caller sets stdio, the process group and spawns it.
pub trait Sandbox: Send + Sync {
    fn name(&self) -> &'static str;
    fn command(&self, spec: &CommandSpec<'_>) -> Result<Command, SandboxError>;
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
/// directories read-only, a fresh `/tmp`, and nothing else of the host's filesystem.
pub struct Bwrap {
    pub bwrap: PathBuf,
}

/// The part of `/etc` programs need for users, DNS, TLS roots, time zones and Debian's
/// alternatives symlinks; the rest (shadow, ssh keys, service configs) stays hidden.
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

    fn args(&self, spec: &CommandSpec<'_>) -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = Vec::new();
        let mut push = |xs: &[&dyn AsRef<std::ffi::OsStr>]| {
            for x in xs {
                a.push(x.as_ref().to_os_string());
            }
        };
        push(&[
            &"--die-with-parent",
            &"--new-session",
            &"--unshare-pid",
            &"--unshare-ipc",
            &"--unshare-uts",
            &"--unshare-cgroup-try",
            &"--hostname",
            &"sandbox",
            &"--clearenv",
        ]);
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
            push(&[&"--ro-bind-try", &p, &p]);
        }
        push(&[
            &"--proc",
            &"/proc",
            &"--dev",
            &"/dev",
            &"--tmpfs",
            &"/tmp",
            &"--tmpfs",
            &"/var/tmp",
            &"--bind",
            &spec.project_dir,
            &PROJECT_MOUNT,
            &"--bind",
            &spec.home_dir,
            &HOME_MOUNT,
        ]);
        let cwd = if spec.cwd.is_empty() {
            PROJECT_MOUNT.to_string()
        } else {
            format!("{PROJECT_MOUNT}/{}", spec.cwd)
        };
        push(&[&"--chdir", &cwd]);
        for (k, v) in base_env(HOME_MOUNT)
            .into_iter()
            .chain(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())))
        {
            push(&[&"--setenv", &k, &v]);
        }
        push(&[&"--", &"/bin/sh", &"-c", &spec.shell]);
        a
    }
}

impl Sandbox for Bwrap {
    fn name(&self) -> &'static str {
        "bwrap"
    }
    fn command(&self, spec: &CommandSpec<'_>) -> Result<Command, SandboxError> {
        let mut cmd = Command::new(&self.bwrap);
        cmd.env_clear().args(self.args(spec));
        Ok(cmd)
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

/// Picks the sandbox at startup.
pub fn choose(insecure_no_sandbox: bool) -> std::sync::Arc<dyn Sandbox> {
    if insecure_no_sandbox {
        tracing::warn!("--insecure-no-sandbox: commands run directly on the host");
        return std::sync::Arc::new(Unsandboxed);
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
