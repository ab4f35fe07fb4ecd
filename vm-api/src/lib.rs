//! The VM API as a library: configuration, shared state and the routers, so tests can drive
//! `app()` with `oneshot` and no socket, or serve both listeners on loopback.

pub mod admission;
pub mod auth;
pub mod azure_blob;
pub mod browser;
pub mod changes;
pub mod config;
pub mod copy;
pub mod deploy_build;
pub mod deploy_service;
pub mod deps;
pub mod error;
pub mod exec;
pub mod fsafe;
pub mod git;
pub mod page_check;
pub mod preview;
pub mod process;
pub mod procs;
pub mod pty;
pub mod reaper;
pub mod remove;
pub mod routes;
pub mod sandbox;
pub mod search;
pub mod state;
pub mod sync;

pub use auth::signed_headers;
pub use config::Config;
pub use preview::{mint_preview_token, preview_app};
pub use routes::app;
pub use state::{AppState, Limits};
