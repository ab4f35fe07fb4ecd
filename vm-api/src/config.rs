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
}

impl std::fmt::Debug for Config {
    // The secret must never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("data_dir", &self.data_dir)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
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
