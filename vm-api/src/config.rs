//! Command-line flags and environment for the VM API.

use clap::Parser;
use std::path::PathBuf;

#[derive(Parser, Clone)]
#[command(
    name = "vm-api",
    about = "open-replit VM API: working copies, sandboxed commands and previews"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "VM_API_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one and prints it).
    #[arg(long, env = "VM_API_PORT", default_value_t = 8000)]
    pub port: u16,
    /// Where working copies live, one directory per project.
    #[arg(long, env = "VM_API_DATA_DIR", default_value = ".state/vm-api")]
    pub data_dir: PathBuf,
    /// Shared secret for HMAC request signing; the service refuses to start without it.
    #[arg(long, env = "VM_API_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Port of the preview listener (`{project}.{preview_domain}`); 0 picks a free one.
    /// Unset means 8001, and if 8001 is taken the service runs without previews (logged), so
    /// several instances can share a machine; an explicit port that cannot be bound is fatal.
    #[arg(long, env = "VM_API_PREVIEW_PORT")]
    pub preview_port: Option<u16>,
    /// Base domain of preview hosts.
    #[arg(
        long,
        env = "VM_API_PREVIEW_DOMAIN",
        default_value = "preview.localhost"
    )]
    pub preview_domain: String,
    /// Run commands directly on the host when bwrap is missing. Never in production.
    #[arg(long, env = "VM_API_INSECURE_NO_SANDBOX")]
    pub insecure_no_sandbox: bool,
    /// Sandbox: `hardened` (per-project uid, network namespace, cgroups, rlimits, seccomp) or
    /// `basic` (bubblewrap mounts only, host network, as root).
    #[arg(long, env = "VM_API_SANDBOX", value_enum, default_value = "hardened")]
    pub sandbox: crate::sandbox::Mode,
    /// Memory (RAM + swap) of one project's processes together, MiB (cgroup; 0 = unlimited).
    #[arg(long, env = "VM_API_SANDBOX_MEMORY_MB", default_value_t = 2048)]
    pub sandbox_memory_mb: u64,
    /// Processes and threads of one project (cgroup pids + RLIMIT_NPROC; 0 = unlimited).
    #[arg(long, env = "VM_API_SANDBOX_PIDS", default_value_t = 512)]
    pub sandbox_pids: u64,
    /// CPU seconds per process (RLIMIT_CPU; 0 = unlimited). Wall time is the exec `timeout_s`.
    #[arg(long, env = "VM_API_SANDBOX_CPU_TIME_S", default_value_t = 3600)]
    pub sandbox_cpu_time_s: u64,
    /// Share of one core a project may use, percent (cgroup cpu quota; 0 = unlimited).
    #[arg(long, env = "VM_API_SANDBOX_CPU_PERCENT", default_value_t = 100)]
    pub sandbox_cpu_percent: u64,
    /// Largest file a command may write, MiB (RLIMIT_FSIZE; 0 = unlimited).
    #[arg(long, env = "VM_API_SANDBOX_FILE_SIZE_MB", default_value_t = 1024)]
    pub sandbox_file_size_mb: u64,
    /// Disk of one project's working copy plus its home/caches, MiB (0 = unlimited).
    #[arg(long, env = "VM_API_SANDBOX_DISK_QUOTA_MB", default_value_t = 4096)]
    pub sandbox_disk_quota_mb: u64,
    /// Seconds between disk-use checks of projects with running processes.
    #[arg(long, env = "VM_API_SANDBOX_DISK_CHECK_S", default_value_t = 10)]
    pub sandbox_disk_check_s: u64,
    /// Size of the sandbox's /tmp (and /var/tmp) tmpfs, MiB.
    #[arg(long, env = "VM_API_SANDBOX_TMP_MB", default_value_t = 256)]
    pub sandbox_tmp_mb: u64,
    /// First uid of the range project uids are derived into (2^30 uids from here).
    #[arg(long, env = "VM_API_SANDBOX_UID_BASE", default_value_t = crate::sandbox::identity::DEFAULT_UID_BASE)]
    pub sandbox_uid_base: u32,
    /// Installs the shared dependency cache keeps (least recently used go first; projects keep
    /// their links to an evicted one).
    #[arg(long, env = "VM_API_DEPS_CACHE_ENTRIES", default_value_t = 32)]
    pub deps_cache_entries: usize,
    /// Disk the shared dependency cache may hold, MiB (least recently used installs go first;
    /// the newest always stays).
    #[arg(long, env = "VM_API_DEPS_CACHE_MB", default_value_t = 16 * 1024)]
    pub deps_cache_mb: u64,
    /// Bytes of output one exec streams before reporting `truncated`.
    #[arg(long, env = "VM_API_OUTPUT_CAP_BYTES", default_value_t = 1024 * 1024)]
    pub output_cap_bytes: usize,
    /// Commands one project may run at once through /exec.
    #[arg(long, env = "VM_API_EXEC_CONCURRENCY", default_value_t = 4)]
    pub exec_concurrency: usize,
    /// Seconds a terminal session lives on with no client attached before it is hung up.
    #[arg(long, env = "VM_API_PTY_IDLE_SECS", default_value_t = 600)]
    pub pty_idle_secs: u64,
    /// Terminal sessions one project may have at once.
    #[arg(long, env = "VM_API_PTY_MAX_PER_PROJECT", default_value_t = 4)]
    pub pty_max_per_project: usize,
    /// Terminal sessions the service runs at once, all projects together.
    #[arg(long, env = "VM_API_PTY_MAX_TOTAL", default_value_t = 64)]
    pub pty_max_total: usize,
    /// Sandboxed process trees (commands, terminal sessions, dev servers) the host runs at
    /// once, all projects together; beyond it requests get 429.
    #[arg(long, env = "VM_API_MAX_SANDBOXES", default_value_t = 256)]
    pub max_sandboxes: usize,
    /// Dev servers the host runs at once, all projects together; beyond it starts get 429.
    #[arg(long, env = "VM_API_MAX_DEV_SERVERS", default_value_t = 64)]
    pub max_dev_servers: usize,
    /// Commands and terminal sessions one user (the signed `x-or-user`) runs at once.
    #[arg(long, env = "VM_API_MAX_COMMANDS_PER_USER", default_value_t = 8)]
    pub max_commands_per_user: usize,
    /// Seconds a project may go unused before the reaper stops its dev servers and removes its
    /// network namespace (its files stay); 0 turns the reaper off.
    #[arg(long, env = "VM_API_PROJECT_IDLE_SECS", default_value_t = 1800)]
    pub project_idle_secs: u64,
    /// Let `git push` reach remotes on loopback and private networks (a local git server in
    /// tests or development); off, such remotes are refused so a push cannot probe the host's
    /// own network.
    #[arg(long, env = "VM_API_GIT_PRIVATE_REMOTES", default_value_t = false)]
    pub git_private_remotes: bool,
    /// Azure Blob Storage connection string; sync is unavailable without it.
    #[arg(long, env = "AZURE_STORAGE_CONNECTION_STRING", hide_env_values = true)]
    pub azure_connection_string: Option<String>,
    /// Container holding `{project_id}/objects/{sha256}` blobs.
    #[arg(
        long,
        env = "AZURE_STORAGE_CONTAINER",
        default_value = "codebase-projects"
    )]
    pub azure_container: String,
}

impl std::fmt::Debug for Config {
    // The secret must never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("data_dir", &self.data_dir)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("preview_port", &self.preview_port)
            .field("preview_domain", &self.preview_domain)
            .field("insecure_no_sandbox", &self.insecure_no_sandbox)
            .field("sandbox", &self.sandbox)
            .field("sandbox_limits", &self.hardened())
            .field("output_cap_bytes", &self.output_cap_bytes)
            .field("exec_concurrency", &self.exec_concurrency)
            .field("deps_cache_entries", &self.deps_cache_entries)
            .field("deps_cache_mb", &self.deps_cache_mb)
            .field("pty", &self.pty_limits())
            .field("caps", &self.caps())
            .field("project_idle_secs", &self.project_idle_secs)
            .field("git_private_remotes", &self.git_private_remotes)
            .field(
                "azure_connection_string",
                &self.azure_connection_string.as_ref().map(|_| "<redacted>"),
            )
            .field("azure_container", &self.azure_container)
            .finish()
    }
}

impl Config {
    /// The hardened sandbox's settings from the flags.
    pub fn hardened(&self) -> crate::sandbox::hardened::HardenedConfig {
        crate::sandbox::hardened::HardenedConfig {
            memory_mb: self.sandbox_memory_mb,
            pids: self.sandbox_pids,
            cpu_time_s: self.sandbox_cpu_time_s,
            cpu_percent: self.sandbox_cpu_percent,
            file_size_mb: self.sandbox_file_size_mb,
            disk_quota_mb: self.sandbox_disk_quota_mb,
            disk_check_interval_s: self.sandbox_disk_check_s,
            tmp_size_mb: self.sandbox_tmp_mb,
            uid_base: self.sandbox_uid_base,
        }
    }

    /// The terminal sessions' settings from the flags (`state.pty.limits`).
    pub fn pty_limits(&self) -> crate::pty::PtyLimits {
        crate::pty::PtyLimits {
            idle: std::time::Duration::from_secs(self.pty_idle_secs.max(1)),
            max_per_project: self.pty_max_per_project,
            max_total: self.pty_max_total,
        }
    }

    /// The admission caps from the flags (`state.admission`).
    pub fn caps(&self) -> crate::admission::Caps {
        crate::admission::Caps {
            sandboxes: self.max_sandboxes.max(1),
            dev_servers: self.max_dev_servers.max(1),
            commands_per_user: self.max_commands_per_user.max(1),
        }
    }

    /// The secret, or the reason the service must not start.
    pub fn require_secret(&self) -> anyhow::Result<Vec<u8>> {
        match self.secret.as_deref().map(str::trim) {
            Some(s) if s.len() >= 16 => Ok(s.as_bytes().to_vec()),
            Some(_) => anyhow::bail!("VM_API_SECRET must be at least 16 characters"),
            None => anyhow::bail!(
                "VM_API_SECRET is not set: the VM API refuses to start without the shared secret \
                 the Worker signs requests with (see .dev.vars.example)"
            ),
        }
    }
}
