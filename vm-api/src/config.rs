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
    /// Bytes of output one exec streams before reporting `truncated`.
    #[arg(long, env = "VM_API_OUTPUT_CAP_BYTES", default_value_t = 1024 * 1024)]
    pub output_cap_bytes: usize,
    /// Commands one project may run at once through /exec.
    #[arg(long, env = "VM_API_EXEC_CONCURRENCY", default_value_t = 4)]
    pub exec_concurrency: usize,
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
            .field("output_cap_bytes", &self.output_cap_bytes)
            .field("exec_concurrency", &self.exec_concurrency)
            .field(
                "azure_connection_string",
                &self.azure_connection_string.as_ref().map(|_| "<redacted>"),
            )
            .field("azure_container", &self.azure_container)
            .finish()
    }
}

impl Config {
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
