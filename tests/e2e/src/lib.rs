//! End-to-end test support: the real local stack (Azurite, the VM API, `wrangler dev`) on free
//! loopback ports, and a scripted OpenAI-compatible LLM server. Test code only; never shipped.

pub mod faults;
pub mod llm;
pub mod stack;
pub mod ws;

/// The repository root (two levels above this crate).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root exists")
}
