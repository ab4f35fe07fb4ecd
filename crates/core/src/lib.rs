//! Pure logic shared by the Worker (wasm32) and the VM API (native): no I/O lives here.
//!
//! Everything in this crate is deterministic and unit-tested natively with fixtures; the
//! platform crates (`src/` for the Worker, `vm-api/`) do the fetching, spawning and storing.

pub mod agent;
pub mod api;
pub mod auth;
pub mod azure;
pub mod deploy;
pub mod git;
pub mod github_repo;
pub mod health;
pub mod ids;
pub mod llm;
pub mod llm_config;
pub mod manifest;
pub mod paths;
pub mod protocol;
pub mod quota;
pub mod relay;
pub mod security_headers;
pub mod store;
pub mod template;
pub mod vault;
pub mod vm_api;
pub mod vm_auth;
pub mod zip;
